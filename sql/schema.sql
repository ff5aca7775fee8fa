-- Job types: constraints reject bad input with named checks.
-- (terse: the DETAIL of a check violation shows the row, with a timestamp)
\set VERBOSITY terse
INSERT INTO jobsched.job_types (name, template) VALUES
  ('resize', '{"apiVersion": "batch/v1", "kind": "Job",
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox",
                                 "args": "{{params.args}}"}]}}}}');
INSERT INTO jobsched.job_types (name, template) VALUES ('Bad_Name', '{"spec": {"template": {}}}');
INSERT INTO jobsched.job_types (name, template) VALUES ('array-template', '[1, 2]');
INSERT INTO jobsched.job_types (name, template) VALUES ('pod', '{"apiVersion": "v1", "kind": "Pod", "spec": {"template": {}}}');
INSERT INTO jobsched.job_types (name, template) VALUES ('no-pod-template', '{"spec": {}}');
INSERT INTO jobsched.job_types (name, template, namespace) VALUES ('ns', '{"spec": {"template": {}}}', 'Not A Namespace');
INSERT INTO jobsched.job_types (name, template, max_in_flight) VALUES ('cap', '{"spec": {"template": {}}}', 0);
INSERT INTO jobsched.job_types (name, template) VALUES (repeat('a', 64), '{"spec": {"template": {}}}');

-- Jobs: params must be an object, the type must exist, state is known.
INSERT INTO jobsched.jobs (type, params) VALUES ('resize', '[1]');
INSERT INTO jobsched.jobs (type, params) VALUES ('resize', '"text"');
\set VERBOSITY default
INSERT INTO jobsched.jobs (type) VALUES ('nope');
\set VERBOSITY terse
INSERT INTO jobsched.jobs (type, params) VALUES ('resize', NULL);
INSERT INTO jobsched.jobs (type, state) VALUES ('resize', 'exploded');
\set VERBOSITY default
INSERT INTO jobsched.jobs (id, type) VALUES (42, 'resize');

-- A good row gets its defaults.
INSERT INTO jobsched.jobs (type, params) VALUES ('resize', '{"args": ["a"]}')
  RETURNING id, type, params, state, attempts, k8s_name, last_error, submitted_at;

-- A job type in use cannot be deleted.
DELETE FROM jobsched.job_types WHERE name = 'resize';

-- The notifier trigger fires only for rows that need the worker: a new
-- pending row, a finished row put back to pending, a new cancel request.
-- wake_calls counts the calls of its function in this transaction
-- (track_functions = all counts trigger functions too; a trigger whose WHEN
-- is false makes no call).  Rolled back: nothing reaches the worker; the
-- ids are given, so later tests see the same ones.
SET track_functions = 'all';
\set wake_calls 'SELECT coalesce(pg_stat_get_xact_function_calls(''jobsched.wake_worker''::regproc), 0) AS wake_calls'
BEGIN;
-- a new pending row: one call
INSERT INTO jobsched.jobs (id, type) OVERRIDING SYSTEM VALUE VALUES (1001, 'resize');
:wake_calls;
-- a row inserted finished (the owner may load history): none
INSERT INTO jobsched.jobs (id, type, state) OVERRIDING SYSTEM VALUE VALUES (1002, 'resize', 'succeeded');
:wake_calls;
-- changes of other columns, and of the state to anything but pending: none
UPDATE jobsched.jobs SET priority = 5, params = '{"args": ["b"]}' WHERE id = 1001;
UPDATE jobsched.jobs SET state = 'submitted' WHERE id = 1001;
:wake_calls;
-- a cancel request: one call; the same request again: none
SELECT jobsched.cancel(1001);
SELECT jobsched.cancel(1001);
:wake_calls;
-- a finished job run again (pending again): one call
SELECT jobsched.retry(1002);
:wake_calls;
ROLLBACK;
RESET track_functions;

-- Deterministic names: a DNS-1123 label of at most 63 characters.
SELECT jobsched.job_name('resize', 1) ~ '^resize-1-[0-9a-f]{10}$' AS short_name_ok;
SELECT length(jobsched.job_name(repeat('x', 63), 9223372036854775807)) AS long_name_length,
       jobsched.job_name(repeat('x', 63), 9223372036854775807) ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AS long_name_is_label;
SELECT jobsched.job_name('a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q', 1234567890123456789) ~ '[a-z0-9]-1234567890123456789-' AS no_double_dash;
SELECT jobsched.job_name('resize', 1) = jobsched.job_name('resize', 1) AS stable;
