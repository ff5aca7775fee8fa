-- 1.0, as it shipped, updated to 1.1 in place: rows and job types survive,
-- the instance (and so the names of the Jobs 1.0 made) stays.
CREATE EXTENSION jobsched VERSION '1.0';
INSERT INTO jobsched.job_types (name, template) VALUES
  ('old', '{"apiVersion": "batch/v1", "kind": "Job",
            "spec": {"template": {"spec": {"restartPolicy": "Never",
              "containers": [{"name": "main", "image": "busybox"}]}}}}');
INSERT INTO jobsched.jobs (type, params) SELECT 'old', jsonb_build_object('n', g)
  FROM generate_series(1, 7) g;
UPDATE jobsched.jobs SET state = (ARRAY['pending', 'claimed', 'submitted', 'running',
                                        'succeeded', 'failed', 'cancelled'])[id],
                         k8s_uid = CASE WHEN id BETWEEN 3 AND 7 THEN 'uid-' || id END;
SELECT jobsched.job_name('old', 3) AS old_name \gset
CREATE TABLE upgrade_before AS SELECT * FROM jobsched.jobs;

ALTER EXTENSION jobsched UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'jobsched';
SELECT jobsched.job_name('old', 3) = :'old_name' AS same_job_names,
       (SELECT labels_trusted_before IS NOT NULL FROM jobsched.installation) AS old_jobs_by_label;
SELECT count(*) AS rows_changed
  FROM upgrade_before b FULL JOIN jobsched.jobs j USING (id)
 WHERE row(b.*) IS DISTINCT FROM row(j.id, j.type, j.params, j.state, j.priority, j.run_after,
         j.k8s_namespace, j.k8s_name, j.k8s_uid, j.attempts, j.retryable_failures, j.retry_at,
         j.last_error, j.cancel_requested_at, j.k8s_deleted_at, j.created_at, j.submitted_at,
         j.started_at, j.finished_at);
SELECT count(*) AS jobs, bool_and(run = 0) AS first_run, bool_and(params_bytes > 0) AS sized,
       bool_and(owner = current_user::regrole) AS owned_by_updater
  FROM jobsched.jobs;
SELECT jobsched.retry(7), jobsched.cancel(1);

DROP TABLE upgrade_before;
DROP EXTENSION jobsched;
