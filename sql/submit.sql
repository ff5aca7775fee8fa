-- submit() enqueues and explains what is wrong.
SELECT jobsched.submit('resize', '{"args": ["x"]}') > 0 AS submitted;
SELECT jobsched.submit('resize') > 0 AS submitted_without_params;
SELECT jobsched.submit('nope', '{}');
SELECT jobsched.submit('resize', '[]');
SELECT jobsched.submit('resize', '3');
SELECT jobsched.submit('resize', NULL);
SELECT jobsched.submit(NULL, '{}');
SELECT type, params, state, priority FROM jobsched.jobs ORDER BY id;

-- Priority and run_after are stored.
SELECT jobsched.submit('resize', '{}', 5, now() + interval '1 hour') AS delayed_job \gset
SELECT priority, run_after > now() AS delayed FROM jobsched.jobs WHERE id = :delayed_job;

-- cancel(): a pending job is cancelled at once; finished jobs are an error.
SELECT jobsched.cancel(min(id)) FROM jobsched.jobs;
SELECT state, finished_at IS NOT NULL AS finished FROM jobsched.jobs ORDER BY id LIMIT 1;
SELECT jobsched.cancel(min(id)) FROM jobsched.jobs;
SELECT jobsched.cancel(-1);

-- A job whose Job exists is marked; the worker deletes the Job.
UPDATE jobsched.jobs SET state = 'running' WHERE id = (SELECT max(id) FROM jobsched.jobs);
SELECT jobsched.cancel(max(id)) FROM jobsched.jobs;
SELECT state, cancel_requested_at IS NOT NULL AS requested FROM jobsched.jobs
 WHERE id = (SELECT max(id) FROM jobsched.jobs);

-- purge() removes only finished rows older than asked.
SELECT jobsched.purge('1 hour');
UPDATE jobsched.jobs SET finished_at = now() - interval '2 hours' WHERE state = 'cancelled';
SELECT jobsched.purge('1 hour');
SELECT count(*) FROM jobsched.jobs WHERE state = 'cancelled';
