-- The status view: one row, from shared memory and the table.
SELECT count(*) FROM jobsched.status;
-- (whether the worker runs yet is timing: the end-to-end tests check it)
SELECT enabled, wake_mode,
       instance ~ '^[0-9a-f]{10}$' AS instance_ok,
       in_flight, last_cleanup_at
  FROM jobsched.status;
SELECT pending = (SELECT count(*) FROM jobsched.jobs WHERE state = 'pending') AS pending_counted,
       cancelled = (SELECT count(*) FROM jobsched.jobs WHERE state = 'cancelled') AS cancelled_counted
  FROM jobsched.status;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'jobsched.status'::regclass AND attnum > 0 ORDER BY attnum;

-- The worker's own updates never ring the doorbell; other updates do.
-- Each state change the worker makes, made here the same way: none reaches
-- the wake-up function but putting a claimed row back to pending (after a
-- failed create, or a crash), and that call rings nothing in the worker,
-- which the function checks: test/e2e/test_dispatch.py
-- (test_the_worker_never_wakes_itself) listens for it.  A user's requests
-- (a new job, a cancel, a run again) reach it.  wake_calls counts its calls
-- in this transaction; rolled back, nothing reaches the worker.
SET track_functions = 'all';
\set wake_calls 'SELECT coalesce(pg_stat_get_xact_function_calls(''jobsched.wake_worker''::regproc), 0) AS wake_calls'
BEGIN;
INSERT INTO jobsched.job_types (name, template)
  VALUES ('wake', '{"spec": {"template": {"spec": {}}}}');
INSERT INTO jobsched.jobs (id, type) OVERRIDING SYSTEM VALUE VALUES (2001, 'wake'), (2002, 'wake');
-- the user's two new jobs (one statement): two calls
:wake_calls;
-- the worker: claim, a failed create (back to pending, unsettled)
UPDATE jobsched.jobs SET state = 'claimed', attempts = attempts + 1 WHERE id IN (2001, 2002);
:wake_calls;
UPDATE jobsched.jobs SET state = 'pending', retry_at = now(), last_error = 'timeout',
       create_unsettled_at = now() WHERE id = 2001;
:wake_calls;
-- the worker: claim again, submitted, running, succeeded; the other failed
UPDATE jobsched.jobs SET state = 'claimed' WHERE id = 2001;
UPDATE jobsched.jobs SET state = 'submitted', k8s_name = 'wake-1', k8s_uid = 'u1',
       submitted_at = now(), create_unsettled_at = NULL, last_error = NULL WHERE id = 2001;
UPDATE jobsched.jobs SET state = 'running', started_at = now() WHERE id = 2001;
UPDATE jobsched.jobs SET state = 'succeeded', finished_at = now() WHERE id = 2001;
UPDATE jobsched.jobs SET state = 'failed', last_error = 'rejected', finished_at = now()
 WHERE id = 2002;
:wake_calls;
-- the user runs the job again: one call
SELECT jobsched.retry(2001);
:wake_calls;
-- the worker: submitted; the user cancels: one call
UPDATE jobsched.jobs SET state = 'submitted', k8s_name = 'wake-1-r1', k8s_uid = 'u2' WHERE id = 2001;
SELECT jobsched.cancel(2001);
:wake_calls;
-- the worker deletes the Job: cancelled
UPDATE jobsched.jobs SET state = 'cancelled', k8s_deleted_at = now(), finished_at = now()
 WHERE id = 2001;
:wake_calls;
ROLLBACK;
RESET track_functions;
-- The trigger function is only a trigger.
SELECT jobsched.wake_worker();
