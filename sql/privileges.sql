-- Nothing is reachable without USAGE on the schema.
CREATE ROLE jobsched_app;
CREATE ROLE jobsched_stranger;
GRANT USAGE ON SCHEMA jobsched TO jobsched_app;

SET ROLE jobsched_stranger;
SELECT jobsched.submit('resize', '{}');
SELECT count(*) FROM jobsched.status;
RESET ROLE;

-- A role granted USAGE enqueues and reads the queue and the status.
SET ROLE jobsched_app;
SELECT jobsched.submit('resize', '{"args": ["from app"]}') > 0 AS submitted;
INSERT INTO jobsched.jobs (type, params, priority) VALUES ('resize', '{"args": []}', 1);
SELECT count(*) > 0 AS sees_jobs FROM jobsched.jobs;
SELECT count(*) AS status_rows FROM jobsched.status;
SELECT count(*) > 0 AS sees_types FROM jobsched.job_types;

-- ... but cannot set the worker's columns, change rows, or change job types,
-- whose templates decide which images run in the cluster.
INSERT INTO jobsched.jobs (type, state) VALUES ('resize', 'succeeded');
INSERT INTO jobsched.jobs (type, k8s_name) VALUES ('resize', 'someone-elses-job');
UPDATE jobsched.jobs SET state = 'pending';
DELETE FROM jobsched.jobs;
INSERT INTO jobsched.job_types (name, template) VALUES ('evil', '{"spec": {"template": {}}}');
UPDATE jobsched.job_types SET template = '{"spec": {"template": {}}}';
DELETE FROM jobsched.job_types;
SELECT jobsched.purge('0');
SELECT jobsched.cancel(1);
RESET ROLE;

-- cancel() is granted on purpose, not by default.
GRANT EXECUTE ON FUNCTION jobsched.cancel(bigint) TO jobsched_app;
SET ROLE jobsched_app;
SELECT jobsched.cancel(max(id)) FROM jobsched.jobs WHERE state = 'pending';
RESET ROLE;

-- The settings that name credential files are for superusers only.
SET ROLE jobsched_app;
SHOW jobsched.kube_token_file;
SHOW jobsched.kube_ca_file;
RESET ROLE;

DROP OWNED BY jobsched_app;
DROP ROLE jobsched_app;
DROP ROLE jobsched_stranger;
