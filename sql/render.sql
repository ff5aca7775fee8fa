-- jobsched.render() shows the manifest the worker would create.
INSERT INTO jobsched.job_types (name, template, namespace) VALUES
  ('render-demo', '{
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"generateName": "ignored-", "labels": {"team": "data", "jobsched.io/job-id": "forged"}},
    "spec": {"backoffLimit": "{{params.retries}}",
             "template": {"spec": {"restartPolicy": "Never",
               "containers": [{"name": "main", "image": "busybox:{{params.tag}}",
                               "args": "{{params.args}}",
                               "env": [{"name": "JOB", "value": "{{job.name}} #{{job.id}} of {{job.type}}"}]}]}}}}',
   'batch');
SELECT jobsched.submit('render-demo', '{"retries": 2, "tag": "1.36", "args": ["echo", "{{params.tag}}"]}') AS render_job \gset
SELECT m #- '{metadata,name}' #- '{metadata,labels,jobsched.io/instance}'
          #- '{metadata,labels,jobsched.io/job-id}'
          #- '{spec,template,metadata,labels,jobsched.io/instance}'
          #- '{spec,template,metadata,labels,jobsched.io/job-id}'
          #- '{spec,template,spec,containers,0,env}' AS manifest
  FROM jobsched.render(:render_job) m;
SELECT m->'metadata'->>'name' = jobsched.job_name('render-demo', :render_job) AS name_is_deterministic,
       m->'metadata'->'labels'->>'jobsched.io/job-id' = :render_job::text AS job_label,
       m->'spec'->'template'->'metadata'->'labels'->>'jobsched.io/job-id' = :render_job::text AS pod_label,
       m->'metadata'->'labels'->>'jobsched.io/instance' = (SELECT instance FROM jobsched.status) AS instance_label,
       m->'spec'->'template'->'spec'->'containers'->0->'env'->0->>'value'
         = jobsched.job_name('render-demo', :render_job) || ' #' || :render_job || ' of render-demo' AS embedded
  FROM jobsched.render(:render_job) m;

-- A missing param is an error that names it; its value is never shown.
SELECT jobsched.submit('render-demo', '{"retries": 1, "tag": "secret-value"}') AS missing_job \gset
SELECT jobsched.render(:missing_job);
-- An unknown placeholder, too.
INSERT INTO jobsched.job_types (name, template) VALUES
  ('typo', '{"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "{{jobs.id}}"}]}}}}');
SELECT jobsched.submit('typo') AS typo_job \gset
SELECT jobsched.render(:typo_job);
-- The default namespace comes from jobsched.namespace.
SELECT jobsched.submit('resize', '{"args": []}') AS plain_job \gset
SELECT m->'metadata'->>'namespace' AS namespace FROM jobsched.render(:plain_job) m;
SELECT jobsched.render(-5);
