-- Every function of the extension pins its search_path, so nothing a user
-- creates (in public, say) can change what it resolves.
SELECT p.oid::regprocedure AS unpinned
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jobsched'
 WHERE NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

-- One identity, with a secret of 32 random bytes that only the owner reads.
SELECT count(*) AS identities, bool_and(length(secret) = 32) AS secret_ok,
       bool_and(instance = (SELECT instance FROM jobsched.status)) AS instance_shown
  FROM jobsched.installation;
SELECT has_column_privilege('public', 'jobsched.installation', 'secret', 'SELECT') AS public_reads_secret;

-- A finished job put back to pending, by whoever may, is a new run: a new
-- Job name, nothing of the old Job kept.
SELECT jobsched.submit('resize', '{"args": []}') AS done_job \gset
UPDATE jobsched.jobs SET state = 'failed', k8s_name = jobsched.job_name('resize', :done_job),
       k8s_uid = '0b1d9c84-6f0e-4c7a-9d55-2a1e9a1f0c11', finished_at = now(),
       last_error = 'the Job failed'
 WHERE id = :done_job;
UPDATE jobsched.jobs SET state = 'pending' WHERE id = :done_job
  RETURNING state, run, k8s_name, k8s_uid, finished_at, last_error;
SELECT jobsched.job_name('resize', :done_job, 1) ~ ('^resize-' || :done_job || '-r1-[0-9a-f]{10}$') AS run_in_name,
       jobsched.job_name('resize', :done_job, 1) <> jobsched.job_name('resize', :done_job) AS new_name;
-- A job not finished is not "run again" by the same update.
UPDATE jobsched.jobs SET state = 'running' WHERE id = :done_job;
UPDATE jobsched.jobs SET state = 'pending' WHERE id = :done_job RETURNING run;

-- A pending job whose create may have reached the API is not cancelled
-- blindly: the worker first settles whether its Job exists.
UPDATE jobsched.jobs SET create_unsettled_at = now() WHERE id = :done_job;
SELECT jobsched.cancel(:done_job);
SELECT state, cancel_requested_at IS NOT NULL AS requested FROM jobsched.jobs WHERE id = :done_job;

-- Job names: a DNS-1123 label or an error, whatever the input.
SELECT jobsched.job_name('Not_A_Type', 1);
SELECT jobsched.job_name('', 1);
SELECT jobsched.job_name('resize', 0);
SELECT jobsched.job_name('resize', 1, -1);
SELECT jobsched.job_name(repeat('x', 64), 1);
SELECT jobsched.job_name('x', 9223372036854775807, 2147483647) ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
       AND length(jobsched.job_name('x', 9223372036854775807, 2147483647)) <= 63 AS longest_is_label;

-- Params that no Kubernetes object could hold are refused, and not stored.
SELECT count(*) AS before FROM jobsched.jobs \gset
SELECT jobsched.submit('resize', jsonb_build_object('blob', repeat('x', 1600000)));
\set VERBOSITY terse
INSERT INTO jobsched.jobs (type, params) VALUES ('resize', jsonb_build_object('blob', repeat('x', 1600000)));
\set VERBOSITY default
SELECT count(*) = :before AS nothing_stored FROM jobsched.jobs;
SELECT jobsched.submit('resize', jsonb_build_object('blob', repeat('x', 1000000))) > 0 AS big_but_fits;

DELETE FROM jobsched.jobs;
