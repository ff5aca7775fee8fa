/* jobsched--1.0--1.1.sql: from 1.0 to 1.1 */

\echo Use "ALTER EXTENSION jobsched UPDATE TO '1.1'" to load this file. \quit

/*
 * 1.1 makes jobsched safe to run in a shared database: every Job carries a
 * proof of the installation that made it (a secret only the extension owner
 * reads), jobs belong to the role that queued them (row-level security),
 * users may cancel and run again their own jobs, a job may run again as a
 * new Job, and params too large for any Job are refused.  Functions pin
 * their search_path.
 *
 * The instance this database had under 1.0 is kept, so the Jobs 1.0 made
 * keep their names and labels; they carry no proof, so Jobs created before
 * this update are recognised by their labels (labels_trusted_before).
 * Existing jobs belong to the role that runs this update.
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

CREATE FUNCTION jobsched.legacy_instance() RETURNS text
	LANGUAGE c STRICT
	AS 'MODULE_PATHNAME', 'jobsched_legacy_instance';

INSERT INTO jobsched.installation (instance, secret, labels_trusted_before)
	SELECT jobsched.legacy_instance(),
		   pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '') ||
							 pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'),
		   pg_catalog.now();

DROP FUNCTION jobsched.legacy_instance();

SELECT pg_catalog.pg_extension_config_dump('jobsched.installation', '');

ALTER TABLE jobsched.jobs
	ADD COLUMN owner regrole NOT NULL
		DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)),
	ADD COLUMN run integer NOT NULL DEFAULT 0
		CONSTRAINT run_is_not_negative
		CHECK (run >= 0),
	ADD COLUMN create_unsettled_at timestamptz,
	ADD COLUMN params_bytes integer
		GENERATED ALWAYS AS (pg_catalog.octet_length(params::text)) STORED
		CONSTRAINT params_fit_in_a_kubernetes_object
		CHECK (params_bytes <= 1572864);

COMMENT ON COLUMN jobsched.jobs.owner IS
'The role that queued the job: it (and the members of it and of jobsched_admin) may see, render, cancel and retry it';
COMMENT ON COLUMN jobsched.jobs.run IS
'How many times the job was run again (jobsched.retry()); each run is a new Job with its own name';
COMMENT ON COLUMN jobsched.jobs.create_unsettled_at IS
'A create was sent but its answer was lost: the worker looks the Job up before it creates it again';
COMMENT ON COLUMN jobsched.jobs.params_bytes IS
'Size of params as JSON text; a Kubernetes object holds at most 1.5 MiB';

DROP INDEX jobsched.jobs_cancel_requested_idx;
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

ALTER FUNCTION jobsched.wake_worker() SET search_path = pg_catalog, pg_temp;

/* jobsched.retry() updates run, which puts the row back to pending */
DROP TRIGGER jobs_wake_worker_on_update ON jobsched.jobs;
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

CREATE OR REPLACE FUNCTION jobsched.submit(type text,
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

CREATE OR REPLACE FUNCTION jobsched.cancel(job_id bigint)
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

DROP FUNCTION jobsched.job_name(text, bigint);

/* The Job name the worker uses for a run of a job: deterministic, a DNS-1123 label. */
CREATE FUNCTION jobsched.job_name(type text, job_id bigint, run integer DEFAULT 0)
	RETURNS text
	LANGUAGE c STRICT STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'jobsched_job_name_of_run';

COMMENT ON FUNCTION jobsched.job_name(text, bigint, integer) IS
'The name of the Kubernetes Job of a run of a job: <type>-<id>[-r<run>]-<instance>';

ALTER FUNCTION jobsched.render(bigint) SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION jobsched.render(bigint) IS
'The batch/v1 Job manifest the worker would create for this job (without the proof only the worker can sign)';

/* worker_state() no longer says the instance: the status view reads it from jobsched.installation */
DROP VIEW jobsched.status;
DROP FUNCTION jobsched.worker_state();

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
