/* jobsched--1.0.sql: the SQL surface of jobsched */

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
 * column belongs to the worker.  States:
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
	finished_at timestamptz
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

/* The claim query's path: pending rows in priority order. */
CREATE INDEX jobs_pending_idx ON jobsched.jobs (priority DESC, id)
	WHERE state = 'pending';
/* The next pending row to fall due (run_after, retry_at), for the worker's timer. */
CREATE INDEX jobs_pending_due_idx ON jobsched.jobs (greatest(run_after, retry_at))
	WHERE state = 'pending';
/* Rows whose Job is alive, for status sync, cancellation and crash recovery. */
CREATE INDEX jobs_active_idx ON jobsched.jobs (state, type)
	WHERE state IN ('claimed', 'submitted', 'running');
/* Cancel requests the worker has yet to carry out. */
CREATE INDEX jobs_cancel_requested_idx ON jobsched.jobs (id)
	WHERE cancel_requested_at IS NOT NULL AND state IN ('claimed', 'submitted', 'running');
/* Finished rows by age, for purge(). */
CREATE INDEX jobs_finished_at_idx ON jobsched.jobs (finished_at)
	WHERE finished_at IS NOT NULL;

/* Both tables hold user data: pg_dump must dump their rows. */
SELECT pg_catalog.pg_extension_config_dump('jobsched.job_types', '');
SELECT pg_catalog.pg_extension_config_dump('jobsched.jobs', '');

/*
 * Wake-up.  The trigger fires only for rows that need the worker: a new or
 * re-queued pending row, or a new cancel request.  The C function rings the
 * doorbell once per transaction, by NOTIFY or by a commit-time latch
 * (jobsched.wake_mode), and does nothing inside the worker itself.
 */
CREATE FUNCTION jobsched.wake_worker()
	RETURNS trigger
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'jobsched_wake_worker';

CREATE TRIGGER jobs_wake_worker_on_insert
	AFTER INSERT ON jobsched.jobs
	FOR EACH ROW
	WHEN (NEW.state = 'pending')
	EXECUTE FUNCTION jobsched.wake_worker();

CREATE TRIGGER jobs_wake_worker_on_update
	AFTER UPDATE OF state, cancel_requested_at ON jobsched.jobs
	FOR EACH ROW
	WHEN ((NEW.state = 'pending' AND OLD.state <> 'pending')
		  OR (NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL))
	EXECUTE FUNCTION jobsched.wake_worker();

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
 * deletes the Job with its pods, then the row reads cancelled.
 */
CREATE FUNCTION jobsched.cancel(job_id bigint)
	RETURNS text
	LANGUAGE plpgsql
	SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $cancel$
DECLARE
	current_state text;
BEGIN
	SELECT j.state INTO current_state
		FROM jobsched.jobs j WHERE j.id = job_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job % does not exist', job_id
			USING ERRCODE = 'no_data_found';
	END IF;
	IF current_state = 'pending' THEN
		UPDATE jobsched.jobs
			SET state = 'cancelled', cancel_requested_at = now(),
				finished_at = now(), retry_at = NULL
			WHERE id = job_id;
		RETURN 'cancelled';
	ELSIF current_state IN ('claimed', 'submitted', 'running') THEN
		UPDATE jobsched.jobs
			SET cancel_requested_at = coalesce(cancel_requested_at, now())
			WHERE id = job_id;
		RETURN 'cancelling';
	ELSE
		RAISE EXCEPTION 'job % is already %', job_id, current_state
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Only pending, submitted and running jobs can be cancelled.',
				  HINT = 'Submit a new job to run the work again.';
	END IF;
END
$cancel$;

COMMENT ON FUNCTION jobsched.cancel(bigint) IS
'Cancel a job: returns cancelled, or cancelling while the worker deletes its Kubernetes Job';

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

/* The Job name the worker uses for a job: deterministic, a DNS-1123 label. */
CREATE FUNCTION jobsched.job_name(type text, job_id bigint)
	RETURNS text
	LANGUAGE c STRICT STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'jobsched_sql_job_name';

/* The manifest the worker would POST for a job, without posting it. */
CREATE FUNCTION jobsched.render(job_id bigint)
	RETURNS jsonb
	LANGUAGE c STRICT STABLE
	AS 'MODULE_PATHNAME', 'jobsched_render';

COMMENT ON FUNCTION jobsched.render(bigint) IS
'The batch/v1 Job manifest the worker would create for this job';

/* The worker's shared-memory state: answers even while the API is down. */
CREATE FUNCTION jobsched.worker_state(
	OUT worker_pid integer,
	OUT listening boolean,
	OUT enabled boolean,
	OUT wake_mode text,
	OUT namespace text,
	OUT config_loaded_at timestamptz,
	OUT instance text,
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
	AS 'MODULE_PATHNAME', 'jobsched_worker_state';

CREATE VIEW jobsched.status AS
	SELECT w.worker_pid,
		   w.listening,
		   w.enabled,
		   w.wake_mode,
		   w.namespace,
		   w.config_loaded_at,
		   w.instance,
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
		  FROM jobsched.jobs) c;

COMMENT ON VIEW jobsched.status IS
'One row: the worker (from shared memory) and the number of jobs in each state';

/*
 * Privileges, decided here rather than inherited: nothing is reachable
 * without USAGE on the schema.  A role granted USAGE can enqueue (INSERT of
 * the user columns, or submit()), read jobs, job types and the status, and
 * preview a manifest.  Changing job types, updating or deleting jobs,
 * cancel() and purge() stay with the extension owner until granted.
 */
REVOKE ALL ON SCHEMA jobsched FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA jobsched FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA jobsched FROM PUBLIC;

GRANT SELECT ON jobsched.job_types TO PUBLIC;
GRANT SELECT ON jobsched.jobs TO PUBLIC;
GRANT INSERT (type, params, priority, run_after) ON jobsched.jobs TO PUBLIC;
GRANT SELECT ON jobsched.status TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.submit(text, jsonb, integer, timestamptz) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.job_name(text, bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.render(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION jobsched.worker_state() TO PUBLIC;
