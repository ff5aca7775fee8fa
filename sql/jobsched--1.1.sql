/* jobsched--1.1.sql: the SQL surface of jobsched, installed fresh */

\echo Use "CREATE EXTENSION jobsched" to load this file. \quit

/*
 * The background worker serves exactly one database, named by the postmaster
 * setting jobsched.database.  Creating the extension anywhere else would give
 * a queue that nobody reads, so refuse it here, before anything is created.
 */
DO $check$
DECLARE
	target text := current_setting('jobsched.database', true);
BEGIN
	IF target IS NULL THEN
		RAISE EXCEPTION 'jobsched must be loaded via shared_preload_libraries'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Add jobsched to shared_preload_libraries in postgresql.conf and restart the server.';
	END IF;
	IF target <> current_database() THEN
		RAISE EXCEPTION 'jobsched can only be created in database "%"', target
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'The jobsched background worker connects to the database named by jobsched.database.',
				  HINT = format('Connect to database "%s", or set jobsched.database = ''%s'' in postgresql.conf and restart the server.',
								target, current_database());
	END IF;
END
$check$;

/*
 * Who this installation is.  instance names the Jobs of this database (a
 * label value and part of every Job name), so two databases sharing a
 * namespace never take each other's Jobs.  secret, readable by the
 * extension owner only, signs every Job the worker creates
 * (jobsched.io/proof): labels are for selecting, the proof is what makes a
 * Job this row's Job.  Both come with the data, so a promoted standby or a
 * restored dump follows the Jobs its origin created; a new CREATE EXTENSION
 * makes a new installation, which never takes the old one's Jobs.
 *
 * The oldest row is the identity: a restored dump adds its origin's row
 * beside the one CREATE EXTENSION made, and the older one wins.
 * labels_trusted_before is set when 1.0, which signed nothing, was updated:
 * Jobs created before then are recognised by their labels.
 */
CREATE TABLE jobsched.installation (
	instance text NOT NULL
		CONSTRAINT instance_is_ten_hex_digits
		CHECK (instance ~ '^[0-9a-f]{10}$'),
	secret bytea NOT NULL
		CONSTRAINT secret_has_32_bytes
		CHECK (pg_catalog.length(secret) >= 32),
	labels_trusted_before timestamptz,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE jobsched.installation IS
'This installation''s identity: instance (in every Job name and label) and the secret that signs its Jobs (owner only)';

INSERT INTO jobsched.installation (instance, secret)
	SELECT pg_catalog.substr(pg_catalog.encode(pg_catalog.sha256(
				pg_catalog.convert_to(pg_catalog.gen_random_uuid()::text, 'UTF8')), 'hex'), 1, 10),
		   pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '') ||
							 pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex');

/*
 * Job types: a named batch/v1 Job manifest.  Templates decide which images
 * run in the cluster, so only the extension owner may change them.
 */
CREATE TABLE jobsched.job_types (
	name text PRIMARY KEY
		CONSTRAINT job_type_name_is_dns_label
		CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 63),
	template jsonb NOT NULL
		CONSTRAINT template_is_json_object
		CHECK (jsonb_typeof(template) = 'object')
		CONSTRAINT template_is_batch_v1_job
		CHECK (coalesce(template ->> 'apiVersion', 'batch/v1') = 'batch/v1'
			   AND coalesce(template ->> 'kind', 'Job') = 'Job')
		CONSTRAINT template_has_pod_template
		CHECK (coalesce(jsonb_typeof(template -> 'spec' -> 'template') = 'object', false)),
	namespace text
		CONSTRAINT namespace_is_dns_label
		CHECK (namespace ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(namespace) <= 63),
	max_in_flight integer
		CONSTRAINT max_in_flight_is_positive
		CHECK (max_in_flight > 0),
	description text,
	created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE jobsched.job_types IS
'Kinds of work: each row is a batch/v1 Job manifest with {{params.KEY}} and {{job.*}} placeholders';
COMMENT ON COLUMN jobsched.job_types.namespace IS
'Namespace the Jobs of this type run in; null means jobsched.namespace';
COMMENT ON COLUMN jobsched.job_types.max_in_flight IS
'At most this many jobs of this type submitted or running at once; null means no cap';

/*
 * The queue.  Users insert (type, params, priority, run_after); every other
 * column belongs to the worker, but for the two requests a user may make of
 * a job of theirs: cancel (cancel_requested_at) and run it again (run).
 * States:
 *   pending    waiting to be submitted (also while backing off: see retry_at)
 *   claimed    internal: the worker is submitting it right now
 *   submitted  the Job exists in Kubernetes
 *   running    the Job has started
 *   succeeded, failed, cancelled: final
 */
CREATE TABLE jobsched.jobs (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	type text NOT NULL REFERENCES jobsched.job_types (name),
	params jsonb NOT NULL DEFAULT '{}'
		CONSTRAINT params_is_json_object
		CHECK (jsonb_typeof(params) = 'object'),
	state text NOT NULL DEFAULT 'pending'
		CONSTRAINT state_is_known
		CHECK (state IN ('pending', 'claimed', 'submitted', 'running',
						 'succeeded', 'failed', 'cancelled')),
	priority integer NOT NULL DEFAULT 0,
	run_after timestamptz,
	k8s_namespace text,
	k8s_name text,
	k8s_uid text,
	attempts integer NOT NULL DEFAULT 0,
	retryable_failures integer NOT NULL DEFAULT 0,
	retry_at timestamptz,
	last_error text,
	cancel_requested_at timestamptz,
	k8s_deleted_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	submitted_at timestamptz,
	started_at timestamptz,
	finished_at timestamptz,
	owner regrole NOT NULL
		DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)),
	run integer NOT NULL DEFAULT 0
		CONSTRAINT run_is_not_negative
		CHECK (run >= 0),
	create_unsettled_at timestamptz,
	params_bytes integer
		GENERATED ALWAYS AS (pg_catalog.octet_length(params::text)) STORED
		CONSTRAINT params_fit_in_a_kubernetes_object
		CHECK (params_bytes <= 1572864)
);

COMMENT ON TABLE jobsched.jobs IS
'The job queue: insert (type, params) and the worker turns the row into a Kubernetes Job';
COMMENT ON COLUMN jobsched.jobs.attempts IS
'Number of times the worker tried to create the Job';
COMMENT ON COLUMN jobsched.jobs.retryable_failures IS
'Attempts that failed for transient reasons (network, 5xx, 429); the job fails after jobsched.max_attempts of them';
COMMENT ON COLUMN jobsched.jobs.k8s_deleted_at IS
'When jobsched deleted the Kubernetes Job (cancel or cleanup)';
COMMENT ON COLUMN jobsched.jobs.retry_at IS
'A pending job is not tried again before this time (backoff)';
COMMENT ON COLUMN jobsched.jobs.owner IS
'The role that queued the job: it (and the members of it and of jobsched_admin) may see, render, cancel and retry it';
COMMENT ON COLUMN jobsched.jobs.run IS
'How many times the job was run again (jobsched.retry()); each run is a new Job with its own name';
COMMENT ON COLUMN jobsched.jobs.create_unsettled_at IS
'A create was sent but its answer was lost: the worker looks the Job up before it creates it again';
COMMENT ON COLUMN jobsched.jobs.params_bytes IS
'Size of params as JSON text; a Kubernetes object holds at most 1.5 MiB';

/* The claim query's path: pending rows in priority order. */
CREATE INDEX jobs_pending_idx ON jobsched.jobs (priority DESC, id)
	WHERE state = 'pending';
/* The next pending row to fall due (run_after, retry_at), for the worker's timer. */
CREATE INDEX jobs_pending_due_idx ON jobsched.jobs (greatest(run_after, retry_at))
	WHERE state = 'pending';
/* Rows whose Job is alive, for status sync, cancellation and crash recovery. */
CREATE INDEX jobs_active_idx ON jobsched.jobs (state, type)
	WHERE state IN ('claimed', 'submitted', 'running');
/* Finished rows by age, for purge(). */
CREATE INDEX jobs_finished_at_idx ON jobsched.jobs (finished_at)
	WHERE finished_at IS NOT NULL;
/* Cancel requests the worker has yet to carry out (a Job may exist). */
CREATE INDEX jobs_cancel_pending_idx ON jobsched.jobs (id)
	WHERE cancel_requested_at IS NOT NULL
	  AND state IN ('pending', 'claimed', 'submitted', 'running');
/* Rows whose create may have happened unseen, for status sync. */
CREATE INDEX jobs_unsettled_idx ON jobsched.jobs (id)
	WHERE create_unsettled_at IS NOT NULL;
/* The namespaces of Jobs that are or may be alive, found by skipping through this. */
CREATE INDEX jobs_live_namespace_idx ON jobsched.jobs (k8s_namespace)
	WHERE state IN ('claimed', 'submitted', 'running') OR create_unsettled_at IS NOT NULL;

/* The three tables hold user data: pg_dump must dump their rows. */
SELECT pg_catalog.pg_extension_config_dump('jobsched.installation', '');
SELECT pg_catalog.pg_extension_config_dump('jobsched.job_types', '');
SELECT pg_catalog.pg_extension_config_dump('jobsched.jobs', '');

/*
 * Who sees what.  A job belongs to the role that queued it: that role, the
 * roles that are members of it, and the members of jobsched_admin see,
 * render, cancel and retry it; nobody else sees it at all.  The status
 * view's counts cover every job (the view reads as its owner).  The
 * extension owner, the worker and other superusers are not bound by
 * these policies.
 */
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'jobsched_admin') THEN
		CREATE ROLE jobsched_admin NOLOGIN;
	END IF;
END
$roles$;

ALTER TABLE jobsched.jobs ENABLE ROW LEVEL SECURITY;

CREATE POLICY jobs_seen_by_their_owner ON jobsched.jobs
	FOR SELECT
	USING (coalesce((SELECT pg_catalog.pg_has_role(r.oid, 'USAGE')
					   FROM pg_catalog.pg_roles r WHERE r.rolname = 'jobsched_admin'), false)
		   OR pg_catalog.pg_has_role(owner::oid, 'USAGE'));
CREATE POLICY jobs_queued_as_oneself ON jobsched.jobs
	FOR INSERT
	WITH CHECK (owner = pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)));
CREATE POLICY jobs_changed_by_their_owner ON jobsched.jobs
	FOR UPDATE
	USING (coalesce((SELECT pg_catalog.pg_has_role(r.oid, 'USAGE')
					   FROM pg_catalog.pg_roles r WHERE r.rolname = 'jobsched_admin'), false)
		   OR pg_catalog.pg_has_role(owner::oid, 'USAGE'));
/* DELETE (and purge()) are the owner's until granted; then the same rows */
CREATE POLICY jobs_deleted_by_their_owner ON jobsched.jobs
	FOR DELETE
	USING (coalesce((SELECT pg_catalog.pg_has_role(r.oid, 'USAGE')
					   FROM pg_catalog.pg_roles r WHERE r.rolname = 'jobsched_admin'), false)
		   OR pg_catalog.pg_has_role(owner::oid, 'USAGE'));

/*
 * Wake-up.  The trigger fires only for rows that need the worker: a new or
 * re-queued pending row, or a new cancel request.  The C function rings the
 * doorbell once per transaction, by NOTIFY or by a commit-time latch
 * (jobsched.wake_mode), and does nothing inside the worker itself.
 */
CREATE FUNCTION jobsched.wake_worker()
	RETURNS trigger
	LANGUAGE c
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'jobsched_wake_worker';

CREATE TRIGGER jobs_wake_worker_on_insert
	AFTER INSERT ON jobsched.jobs
	FOR EACH ROW
	WHEN (NEW.state = 'pending')
	EXECUTE FUNCTION jobsched.wake_worker();

CREATE TRIGGER jobs_wake_worker_on_update
	AFTER UPDATE OF state, run, cancel_requested_at ON jobsched.jobs
	FOR EACH ROW
	WHEN ((NEW.state = 'pending' AND OLD.state <> 'pending')
		  OR (NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL))
	EXECUTE FUNCTION jobsched.wake_worker();

/*
 * The two requests a user may make of a job: cancel it (set
 * cancel_requested_at) and run it again once it finished (bump run, or put
 * it back to pending).  Whatever the UPDATE said, this decides what the row
 * becomes: users may update only those two columns, and the worker never
 * updates them, nor puts a finished row back to pending.
 *
 * A job run again is a new Job: run is part of its name and its proof, so
 * it can never take its previous Job for its own.  A pending job is
 * cancelled at once, unless a create may have reached the API unseen
 * (create_unsettled_at): then the worker settles that first.
 */
CREATE FUNCTION jobsched.job_request()
	RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $job_request$
DECLARE
	finished constant text[] := ARRAY['succeeded', 'failed', 'cancelled'];
BEGIN
	IF NEW.run IS DISTINCT FROM OLD.run
	   OR (NEW.state = 'pending' AND OLD.state = ANY (finished)) THEN
		IF NOT (OLD.state = ANY (finished)) THEN
			RAISE EXCEPTION 'job % is still %', OLD.id, OLD.state
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Only succeeded, failed and cancelled jobs can be run again.',
					  HINT = format('Cancel it first with jobsched.cancel(%s).', OLD.id);
		END IF;
		NEW.run := OLD.run + 1;
		NEW.state := 'pending';
		NEW.k8s_namespace := NULL;
		NEW.k8s_name := NULL;
		NEW.k8s_uid := NULL;
		NEW.retryable_failures := 0;
		NEW.retry_at := NULL;
		NEW.last_error := NULL;
		NEW.cancel_requested_at := NULL;
		NEW.k8s_deleted_at := NULL;
		NEW.submitted_at := NULL;
		NEW.started_at := NULL;
		NEW.finished_at := NULL;
		NEW.create_unsettled_at := NULL;
		RETURN NEW;
	END IF;

	IF NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at THEN
		IF OLD.state = ANY (finished) THEN
			RAISE EXCEPTION 'job % is already %', OLD.id, OLD.state
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Only pending, submitted and running jobs can be cancelled.',
					  HINT = format('Run it again with jobsched.retry(%s).', OLD.id);
		ELSIF OLD.cancel_requested_at IS NOT NULL THEN
			NEW.cancel_requested_at := OLD.cancel_requested_at;	/* the first request stands */
		ELSE
			NEW.cancel_requested_at := now();
			IF OLD.state = 'pending' AND OLD.create_unsettled_at IS NULL THEN
				NEW.state := 'cancelled';
				NEW.finished_at := now();
				NEW.retry_at := NULL;
			END IF;
		END IF;
	END IF;
	RETURN NEW;
END
$job_request$;

CREATE TRIGGER jobs_job_request
	BEFORE UPDATE OF state, run, cancel_requested_at ON jobsched.jobs
	FOR EACH ROW
	WHEN (NEW.run IS DISTINCT FROM OLD.run
		  OR NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at
		  OR (NEW.state = 'pending' AND OLD.state IN ('succeeded', 'failed', 'cancelled')))
	EXECUTE FUNCTION jobsched.job_request();

/*
 * submit: enqueue a job, with the checks a direct INSERT makes spelled out
 * as errors that say what to do.
 */
CREATE FUNCTION jobsched.submit(type text,
								params jsonb DEFAULT '{}',
								priority integer DEFAULT 0,
								run_after timestamptz DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $submit$
DECLARE
	new_id bigint;
	params_size integer;
BEGIN
	IF type IS NULL THEN
		RAISE EXCEPTION 'job type must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
		RAISE EXCEPTION 'params must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The value given is %s.',
								  coalesce('a JSON ' || jsonb_typeof(params), 'null')),
				  HINT = 'Pass the parameters as an object, for example ''{"input": "s3://bucket/key"}''.';
	END IF;
	params_size := octet_length(params::text);
	IF params_size > 1572864 THEN
		RAISE EXCEPTION 'params are too large for a Kubernetes Job'
			USING ERRCODE = 'program_limit_exceeded',
				  DETAIL = format('The params take %s bytes as JSON; a Kubernetes object may hold at most 1572864 bytes.',
								  params_size),
				  HINT = 'Keep large inputs elsewhere (an object store, a table) and pass a reference in params.';
	END IF;
	IF NOT EXISTS (SELECT FROM jobsched.job_types t WHERE t.name = submit.type) THEN
		RAISE EXCEPTION 'job type "%" does not exist', type
			USING ERRCODE = 'undefined_object',
				  HINT = coalesce('Known job types: ' ||
								  (SELECT string_agg(t.name, ', ' ORDER BY t.name)
								   FROM jobsched.job_types t) || '.',
								  'Create one with INSERT INTO jobsched.job_types (name, template).');
	END IF;
	INSERT INTO jobsched.jobs (type, params, priority, run_after)
		VALUES (submit.type, submit.params, coalesce(submit.priority, 0), submit.run_after)
		RETURNING id INTO new_id;
	RETURN new_id;
END
$submit$;

COMMENT ON FUNCTION jobsched.submit(text, jsonb, integer, timestamptz) IS
'Enqueue a job of the given type; returns its id';

/*
 * cancel: a pending job is cancelled at once (the row lock orders us against
 * a claim in flight); a job whose Job exists is marked, and the worker
 * deletes the Job with its pods, then the row reads cancelled.  The caller
 * must be allowed to see the job; jobsched.job_request() does the rest.
 */
CREATE FUNCTION jobsched.cancel(job_id bigint)
	RETURNS text
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $cancel$
DECLARE
	new_state text;
BEGIN
	UPDATE jobsched.jobs j SET cancel_requested_at = now()
		WHERE j.id = job_id
		RETURNING j.state INTO new_state;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job % does not exist', job_id
			USING ERRCODE = 'no_data_found',
				  HINT = 'Jobs queued by other roles are not visible: only their owners and members of jobsched_admin may cancel them.';
	END IF;
	RETURN CASE WHEN new_state = 'cancelled' THEN 'cancelled' ELSE 'cancelling' END;
END
$cancel$;

COMMENT ON FUNCTION jobsched.cancel(bigint) IS
'Cancel a job: returns cancelled, or cancelling while the worker deletes its Kubernetes Job';

/* retry: run a finished job again, as a new Job; returns its run number. */
CREATE FUNCTION jobsched.retry(job_id bigint)
	RETURNS integer
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $retry$
DECLARE
	new_run integer;
BEGIN
	UPDATE jobsched.jobs j SET run = j.run + 1
		WHERE j.id = job_id
		RETURNING j.run INTO new_run;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job % does not exist', job_id
			USING ERRCODE = 'no_data_found',
				  HINT = 'Jobs queued by other roles are not visible: only their owners and members of jobsched_admin may run them again.';
	END IF;
	RETURN new_run;
END
$retry$;

COMMENT ON FUNCTION jobsched.retry(bigint) IS
'Run a succeeded, failed or cancelled job again as a new Kubernetes Job; returns the new run number';

/* purge: delete finished rows; cleanup never deletes rows by itself. */
CREATE FUNCTION jobsched.purge(older_than interval)
	RETURNS bigint
	LANGUAGE sql
	SET search_path = pg_catalog, pg_temp
	AS $purge$
	WITH gone AS (
		DELETE FROM jobsched.jobs
			WHERE state IN ('succeeded', 'failed', 'cancelled')
			  AND finished_at < now() - older_than
			RETURNING 1)
	SELECT count(*) FROM gone;
$purge$;

COMMENT ON FUNCTION jobsched.purge(interval) IS
'Delete finished jobs that finished more than older_than ago; returns how many';

/* The Job name the worker uses for a run of a job: deterministic, a DNS-1123 label. */
CREATE FUNCTION jobsched.job_name(type text, job_id bigint, run integer DEFAULT 0)
	RETURNS text
	LANGUAGE c STRICT STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'jobsched_job_name_of_run';

COMMENT ON FUNCTION jobsched.job_name(text, bigint, integer) IS
'The name of the Kubernetes Job of a run of a job: <type>-<id>[-r<run>]-<instance>';

/* The manifest the worker would POST for a job, without posting it. */
CREATE FUNCTION jobsched.render(job_id bigint)
	RETURNS jsonb
	LANGUAGE c STRICT STABLE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'jobsched_render';

COMMENT ON FUNCTION jobsched.render(bigint) IS
'The batch/v1 Job manifest the worker would create for this job (without the proof only the worker can sign)';

/* The worker's shared-memory state: answers even while the API is down. */
CREATE FUNCTION jobsched.worker_state(
	OUT worker_pid integer,
	OUT listening boolean,
	OUT enabled boolean,
	OUT wake_mode text,
	OUT namespace text,
	OUT config_loaded_at timestamptz,
	OUT in_flight integer,
	OUT wakeups bigint,
	OUT jobs_submitted bigint,
	OUT api_requests bigint,
	OUT api_errors bigint,
	OUT last_error text,
	OUT last_error_at timestamptz,
	OUT last_api_success_at timestamptz,
	OUT paused_until timestamptz,
	OUT last_cleanup_at timestamptz,
	OUT last_cleanup_jobs_deleted bigint,
	OUT last_cleanup_pods_deleted bigint)
	RETURNS record
	LANGUAGE c STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'jobsched_worker_state';

CREATE VIEW jobsched.status AS
	SELECT w.worker_pid,
		   w.listening,
		   w.enabled,
		   w.wake_mode,
		   w.namespace,
		   w.config_loaded_at,
		   i.instance,
		   c.pending,
		   c.claimed,
		   c.submitted,
		   c.running,
		   c.succeeded,
		   c.failed,
		   c.cancelled,
		   w.in_flight,
		   w.wakeups,
		   w.jobs_submitted,
		   w.api_requests,
		   w.api_errors,
		   w.last_error,
		   w.last_error_at,
		   w.last_api_success_at,
		   w.paused_until,
		   w.last_cleanup_at,
		   w.last_cleanup_jobs_deleted,
		   w.last_cleanup_pods_deleted
	FROM jobsched.worker_state() w,
		 (SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
				 count(*) FILTER (WHERE state = 'claimed') AS claimed,
				 count(*) FILTER (WHERE state = 'submitted') AS submitted,
				 count(*) FILTER (WHERE state = 'running') AS running,
				 count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
				 count(*) FILTER (WHERE state = 'failed') AS failed,
				 count(*) FILTER (WHERE state = 'cancelled') AS cancelled
		  FROM jobsched.jobs) c,
		 (SELECT instance FROM jobsched.installation
		   ORDER BY created_at, instance LIMIT 1) i;

COMMENT ON VIEW jobsched.status IS
'One row: the worker (from shared memory) and the number of jobs in each state';

/*
 * Privileges, decided here rather than inherited: nothing is reachable
 * without USAGE on the schema.  A role granted USAGE can enqueue (INSERT of
 * the user columns, or submit()), see, render, cancel and retry its own jobs
 * (row-level security above), read job types and the status.  Changing job
 * types, other columns of jobs, deleting jobs and purge() stay with the
 * extension owner until granted.
 */
REVOKE ALL ON SCHEMA jobsched FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA jobsched FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA jobsched FROM PUBLIC;

GRANT SELECT (instance, created_at) ON jobsched.installation TO PUBLIC;
GRANT SELECT ON jobsched.job_types TO PUBLIC;
GRANT SELECT ON jobsched.jobs TO PUBLIC;
GRANT INSERT (type, params, priority, run_after) ON jobsched.jobs TO PUBLIC;
GRANT UPDATE (run, cancel_requested_at) ON jobsched.jobs TO PUBLIC;
GRANT SELECT ON jobsched.status TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.submit(text, jsonb, integer, timestamptz) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.cancel(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.retry(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.job_name(text, bigint, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.render(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.worker_state() TO PUBLIC;
