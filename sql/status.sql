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
SELECT tgname FROM pg_trigger WHERE tgfoid = 'jobsched.wake_worker'::regproc ORDER BY 1;
SELECT jobsched.wake_worker();
