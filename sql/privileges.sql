-- Nothing is reachable without USAGE on the schema.
CREATE ROLE jobsched_app;
CREATE ROLE jobsched_other;
CREATE ROLE jobsched_ops;
CREATE ROLE jobsched_stranger;
GRANT USAGE ON SCHEMA jobsched TO jobsched_app, jobsched_other, jobsched_ops;

SET ROLE jobsched_stranger;
SELECT jobsched.submit('resize', '{}');
SELECT count(*) FROM jobsched.status;
RESET ROLE;

-- A role granted USAGE enqueues, and owns what it queues.
SET ROLE jobsched_app;
SELECT jobsched.submit('resize', '{"args": ["from app"]}') AS app_job \gset
INSERT INTO jobsched.jobs (type, params, priority) VALUES ('resize', '{"args": []}', 1)
  RETURNING id AS app_job2 \gset
SELECT count(*) AS own_jobs, bool_and(owner = 'jobsched_app'::regrole) AS all_owned
  FROM jobsched.jobs;
SELECT count(*) > 0 AS sees_types FROM jobsched.job_types;
RESET ROLE;

-- Another role sees none of them, and can neither render, cancel nor
-- retry them; the status view shows it the counts of every job.
SET ROLE jobsched_other;
SELECT count(*) AS others_jobs_seen FROM jobsched.jobs;
SELECT jobsched.render(:app_job);
SELECT jobsched.cancel(:app_job);
SELECT jobsched.retry(:app_job);
UPDATE jobsched.jobs SET cancel_requested_at = now() WHERE id = :app_job;
SELECT pending >= 2 AS counts_every_job FROM jobsched.status;
RESET ROLE;
SELECT state FROM jobsched.jobs WHERE id = :app_job;

-- Nobody but the extension owner sets the worker's columns, another
-- owner, deletes jobs, changes job types, or reads the secret.
SET ROLE jobsched_app;
INSERT INTO jobsched.jobs (type, state) VALUES ('resize', 'succeeded');
INSERT INTO jobsched.jobs (type, k8s_name) VALUES ('resize', 'someone-elses-job');
INSERT INTO jobsched.jobs (type, owner) VALUES ('resize', 'jobsched_other');
UPDATE jobsched.jobs SET state = 'succeeded' WHERE id = :app_job;
UPDATE jobsched.jobs SET k8s_uid = 'forged' WHERE id = :app_job;
DELETE FROM jobsched.jobs;
INSERT INTO jobsched.job_types (name, template) VALUES ('evil', '{"spec": {"template": {}}}');
UPDATE jobsched.job_types SET template = '{"spec": {"template": {}}}';
DELETE FROM jobsched.job_types;
SELECT jobsched.purge('0');
SELECT secret FROM jobsched.installation;
SELECT instance ~ '^[0-9a-f]{10}$' AS instance_readable FROM jobsched.installation;

-- Its own jobs it cancels, and runs again once finished, as a new run.
SELECT jobsched.cancel(:app_job);
SELECT jobsched.cancel(:app_job);
SELECT jobsched.retry(:app_job);
SELECT state, run, cancel_requested_at IS NULL AS no_cancel, finished_at IS NULL AS unfinished
  FROM jobsched.jobs WHERE id = :app_job;
SELECT jobsched.retry(:app_job);
-- The two requests go by UPDATE too; nothing else a user writes sticks.
UPDATE jobsched.jobs SET cancel_requested_at = '2000-01-01' WHERE id = :app_job2
  RETURNING state, cancel_requested_at > now() - interval '1 minute' AS requested_now;
UPDATE jobsched.jobs SET run = run + 5 WHERE id = :app_job2 RETURNING state, run;
RESET ROLE;

-- Members of the owner role, and of jobsched_admin, act for its jobs.
SET ROLE jobsched_ops;
SELECT count(*) AS ops_sees FROM jobsched.jobs;
RESET ROLE;
GRANT jobsched_app TO jobsched_ops;
SET ROLE jobsched_ops;
SELECT count(*) AS member_sees FROM jobsched.jobs;
RESET ROLE;
REVOKE jobsched_app FROM jobsched_ops;
GRANT jobsched_admin TO jobsched_ops;
SELECT count(*) AS every_job FROM jobsched.jobs \gset
SET ROLE jobsched_ops;
SELECT count(*) = :every_job AS admin_sees_all FROM jobsched.jobs;
SELECT jobsched.cancel(:app_job);
RESET ROLE;

-- DELETE and purge(), once granted, delete a role's own finished jobs;
-- jobsched_admin's members delete everyone's.
-- (explicit ids keep the ids later tests show)
INSERT INTO jobsched.jobs (id, type, owner, state, finished_at) OVERRIDING SYSTEM VALUE VALUES
  (2001, 'resize', 'jobsched_app', 'succeeded', now() - interval '2 days'),
  (2002, 'resize', 'jobsched_other', 'failed', now() - interval '2 days');
GRANT DELETE ON jobsched.jobs TO jobsched_app, jobsched_ops;
GRANT EXECUTE ON FUNCTION jobsched.purge(interval) TO jobsched_app, jobsched_ops;
SET ROLE jobsched_app;
SELECT jobsched.purge('1 day') AS own_purged;
RESET ROLE;
SELECT owner, state FROM jobsched.jobs WHERE finished_at < now() - interval '1 day';
SET ROLE jobsched_ops;
SELECT jobsched.purge('1 day') AS admin_purged;
RESET ROLE;
REVOKE DELETE ON jobsched.jobs FROM jobsched_app, jobsched_ops;
REVOKE EXECUTE ON FUNCTION jobsched.purge(interval) FROM jobsched_app, jobsched_ops;

-- The settings that name credential files are for superusers only.
SET ROLE jobsched_app;
-- (The wording changed in PostgreSQL 16; the error code did not.)
\set VERBOSITY sqlstate
SHOW jobsched.kube_token_file;
SHOW jobsched.kube_ca_file;
\set VERBOSITY default
RESET ROLE;

DELETE FROM jobsched.jobs;
REVOKE jobsched_admin FROM jobsched_ops;
DROP OWNED BY jobsched_app, jobsched_other, jobsched_ops;
DROP ROLE jobsched_app;
DROP ROLE jobsched_other;
DROP ROLE jobsched_ops;
DROP ROLE jobsched_stranger;
