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

-- The cases below render a template straight from a literal: r() adds the
-- job type, submits one job with the params and returns the part of the
-- manifest at "path".  A failed render rolls the job type back with it.
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.r(template jsonb, params jsonb DEFAULT '{}',
                          path text[] DEFAULT '{x}')
  RETURNS jsonb LANGUAGE plpgsql AS $r$
DECLARE
  t text := 'r' || (SELECT count(*) FROM jobsched.job_types);
  j bigint;
BEGIN
  INSERT INTO jobsched.job_types (name, template)
    VALUES (t, '{"spec": {"template": {}}}'::jsonb || template);
  j := jobsched.submit(t, params);
  RETURN jobsched.render(j) #> path;
END
$r$;

-- Numbers come out exactly as written, in the template and in params,
-- injected whole or as text: integers beyond 2^53 and beyond int64, long
-- decimals, trailing zeros, exponents (jsonb writes them out in full).
SELECT pg_temp.r('{"x": [9007199254740993, 12345678901234567890,
                         -99999999999999999999999, 123456789012345,
                         1234567890123456, -123456789012345, 0, -0, 0.0,
                         2.50, 0.1000000000000000000001,
                         3.14159265358979323846264338327950288,
                         1.5e-7, 1E+2, 1e30, -2.5e-3]}');
SELECT pg_temp.r('{"x": "1e400 is {{params.big}}"}', '{"big": 1e400}') = to_jsonb('1e400 is 1' || repeat('0', 400)) AS exponent_in_full;
SELECT pg_temp.r('{"x": {"n": "{{params.n}}", "s": "n={{params.n}}", "o": "{{params.o}}",
                         "t": "o={{params.o}}", "1e5": 18446744073709551616, "v2.0": [1.10]}}',
                 '{"n": 18446744073709551617,
                   "o": {"9": "0.5", "a": [-0.000000000000000000001, 36028797018963969], "b": {"c": 1.000}}}');

-- Whitespace inside the braces is allowed; a string that is exactly one
-- placeholder takes the value's own type, anything else is text.
SELECT pg_temp.r('{"x": ["{{ params.a }}", "{{params. a}}", "{{\tparams.a\t}}",
                         "<{{ params.b }}>", "{{ params.c }}", "{{params.d}}",
                         "{{params.e}}|{{params.f}}|{{params.c}}|{{params.d}}"]}',
                 '{"a": [1, "two"], "b": "text", "c": {"k": [true, null]},
                   "d": false, "e": true, "f": null}');
SELECT jsonb_typeof(m->'x'->0) AS id, jsonb_typeof(m->'x'->1) AS type,
       jsonb_typeof(m->'x'->2) AS name,
       (m->'x'->>0)::bigint = (m->'metadata'->'labels'->>'jobsched.io/job-id')::bigint AS id_is_the_job_id,
       m->'x'->>1 = m->'metadata'->'labels'->>'jobsched.io/type' AS type_is_the_type,
       m->'x'->>2 = m->'metadata'->>'name' AS name_is_the_name,
       m->'x'->>3 = format('%s/%s/%s', m->'x'->>0, m->'x'->>1, m->'x'->>2) AS embedded
  FROM pg_temp.r('{"x": ["{{ job.id }}", "{{job.type }}", "{{ job.name}}",
                         "{{job.id}}/{{job.type}}/{{job.name}}"]}',
                 path => '{}') m;

-- Inserted text is never expanded again, and keys are never substituted.
SELECT pg_temp.r('{"x": {"{{params.a}}": "{{params.a}} {{params.b}}"}}',
                 '{"a": "{{params.b}}", "b": "{{job.id}}"}');

-- An unterminated "{{" is literal text, alone or after a placeholder.
SELECT pg_temp.r('{"x": ["{{params.a", "echo {{ not closed", "{{params.a}} {{",
                         "{{params.a}}}", "}}{{params.a}}{{"]}',
                 '{"a": "A"}');

-- Many params, found by binary search in jsonb's key order (shorter
-- first): every one, whatever its length, its place or its characters.
SELECT pg_temp.r('{"x": ["{{params.a}},{{params.b}},{{params.z}},{{params.ab}},{{params.ba}},{{params.a.b}},{{params.k1}},{{params.k2}},{{params.k10}},{{params.Z}},{{params.abc}},{{params.}},{{params.a_very_long_parameter_name}}",
                         "{{params.k10}}", "{{params.a_very_long_parameter_name}}", "{{params.a}}"]}',
                 '{"a": 1, "b": 2, "z": 3, "ab": 4, "ba": 5, "a.b": 6, "k1": 7,
                   "k2": 8, "k10": [9], "Z": 10, "abc": 11, "": 12,
                   "a_very_long_parameter_name": {"v": 13}}');
SELECT pg_temp.r('{"x": "{{params.k3}}"}',
                 '{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7,
                   "h": 8, "k1": 9, "k10": 10, "k30": 11}');
SELECT pg_temp.r('{"x": "{{params.aa}}"}', '{"a": 1, "b": 2}');

-- Unknown placeholders; a long one is cut in the message, control
-- characters are escaped, and the path names every step.
SELECT pg_temp.r('{"x": "{{{{params.a}}}}"}', '{"a": "A"}');
SELECT pg_temp.r('{"x": "{{params}}"}');
SELECT pg_temp.r('{"x": "{{ job.ID }}"}');
SELECT pg_temp.r('{"x": "{{}}"}');
SELECT pg_temp.r('{"x": "{{job.id}}{{job.\nid\t\"x\\}}"}');
SELECT pg_temp.r(jsonb_build_object('x', '{{params.' || repeat('k', 200) || '}}'));
SELECT pg_temp.r('{"x": [{"a.b": {"": [0, {"9x": {"ok_-": [1, "{{params.nope}}"]}}]}}]}');
SELECT pg_temp.r('{"metadata": {"labels": {"app.kubernetes.io/part-of": "{{params.part}}"}}}');

-- Nesting: as deep as cJSON parses is fine; deeper is a clear error, for
-- the template and for the params.
SELECT jsonb_typeof(pg_temp.r(jsonb_build_object('x', repeat('[', 998) || '"{{job.type}}"' || repeat(']', 998)))) AS deep;
SELECT jsonb_array_length(pg_temp.r(jsonb_build_object('x', (repeat('[', 999) || repeat(']', 999))::jsonb))) AS deepest;
SELECT pg_temp.r(jsonb_build_object('x', (repeat('[', 1000) || repeat(']', 1000))::jsonb));
SELECT pg_temp.r('{"x": "{{params.a}}"}',
                 jsonb_build_object('a', (repeat('{"a": ', 1000) || '1' || repeat('}', 1000))::jsonb));

-- The fields the worker sets: apiVersion and kind (added if missing), name,
-- namespace, our labels on the Job and its pods, no forged proof, no
-- fields the API server owns; metadata or labels injected whole count too.
SELECT pg_temp.r('{"status": {"active": 1},
                   "metadata": {"uid": "u", "resourceVersion": "1", "creationTimestamp": "t",
                                "generateName": "g-", "name": "n", "namespace": "ns",
                                "annotations": {"jobsched.io/proof": "forged", "keep": "me"}},
                   "spec": {"template": {"metadata": "{{params.podmeta}}", "spec": {}}}}',
                 '{"podmeta": {"labels": {"jobsched.io/type": "forged", "tier": "web"},
                               "annotations": {"jobsched.io/proof": "forged"}}}', '{}')
         #- '{metadata,name}' #- '{metadata,labels,jobsched.io/instance}'
         #- '{metadata,labels,jobsched.io/job-id}'
         #- '{spec,template,metadata,labels,jobsched.io/instance}'
         #- '{spec,template,metadata,labels,jobsched.io/job-id}' AS manifest;
SELECT pg_temp.r('{"metadata": {"annotations": "{{params.a}}"}}', '{"a": 5}', '{metadata,annotations}') AS annotations_as_given;
SELECT pg_temp.r('{"apiVersion": null}');
SELECT pg_temp.r('{"metadata": "{{params.m}}"}', '{"m": "meta"}');
SELECT pg_temp.r('{"metadata": {"labels": [1]}}');
SELECT pg_temp.r('{"spec": {"template": {"metadata": {"labels": "{{params.l}}"}}}}', '{"l": null}');
SELECT pg_temp.r('{"spec": {"template": {"metadata": 7}}}');

-- A rendered Job larger than a Kubernetes object can hold.
SELECT pg_temp.r('{"x": ["{{params.big}}", "{{params.big}}"]}',
                 jsonb_build_object('big', repeat('x', 800000)));

-- The table's constraints keep out templates and params the renderer
-- refuses all the same, should the constraints be gone.
BEGIN;
\set ON_ERROR_ROLLBACK on
ALTER TABLE jobsched.job_types DROP CONSTRAINT template_is_json_object,
  DROP CONSTRAINT template_is_batch_v1_job, DROP CONSTRAINT template_has_pod_template;
ALTER TABLE jobsched.jobs DROP CONSTRAINT params_is_json_object;
INSERT INTO jobsched.job_types (name, template) VALUES
  ('no-spec', '{"apiVersion": "batch/v1"}'), ('str-spec', '{"spec": "s"}'),
  ('no-pod', '{"spec": {}}'), ('str-pod', '{"spec": {"template": [1]}}'),
  ('v2', '{"apiVersion": "batch/v2", "spec": {"template": {}}}'),
  ('kind', '{"kind": 1, "spec": {"template": {}}}'),
  ('array', '[1]'), ('string', '"s"');
INSERT INTO jobsched.jobs (type, params) VALUES ('no-spec', '{}'), ('str-spec', '{}'),
  ('no-pod', '{}'), ('str-pod', '{}'), ('v2', '{}'), ('kind', '{}'),
  ('array', '{}'), ('string', '{}'), ('no-pod', '[]'), ('no-pod', 'true');
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'no-spec';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'str-spec';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'no-pod' AND params = '{}';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'str-pod';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'v2';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'kind';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'array';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE type = 'string';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE params = '[]';
SELECT jobsched.render(id) FROM jobsched.jobs WHERE params = 'true';
ROLLBACK;
\set ON_ERROR_ROLLBACK off
\set SHOW_CONTEXT errors
