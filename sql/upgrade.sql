-- 1.0, as it shipped, updated to 1.1 in place: rows and job types survive,
-- the instance (and so the names of the Jobs 1.0 made) stays, and the schema
-- is the one a fresh 1.1 install makes.

-- Everything the extension owns, one line per fact: each member object and,
-- for the schema's relations, columns, defaults, constraints, indexes,
-- triggers, policies and row security; function and view definitions;
-- privileges (and the initial ones pg_dump relies on), comments, and the
-- tables whose rows pg_dump keeps.  pg_dump shows none of this: it dumps an
-- extension as one CREATE EXTENSION.
CREATE TEMP VIEW extension_catalog AS
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'jobsched'),
member AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rel AS (
  SELECT c.* FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'jobsched'))
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM member
UNION ALL
SELECT format('relation %s kind=%s persistence=%s rls=%s force=%s options=%s acl=%s',
              oid::regclass, relkind, relpersistence, relrowsecurity, relforcerowsecurity,
              reloptions, relacl)
  FROM rel
UNION ALL
SELECT format('column %s.%s #%s %s notnull=%s identity=%s generated=%s default=%s acl=%s',
              a.attrelid::regclass, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod),
              a.attnotnull, a.attidentity, a.attgenerated,
              pg_get_expr(ad.adbin, ad.adrelid), a.attacl)
  FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %s on %s: %s', conname, conrelid::regclass, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE connamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'jobsched')
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN rel ON rel.oid = i.indrelid
UNION ALL
SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
  FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT format('policy %s on %s %s to %s using %s check %s', policyname, tablename, cmd,
              roles, qual, with_check)
  FROM pg_policies WHERE schemaname = 'jobsched'
UNION ALL
SELECT format('view %s: %s', oid::regclass, pg_get_viewdef(oid)) FROM rel WHERE relkind = 'v'
UNION ALL
SELECT format('sequence %s.%s %s start=%s min=%s max=%s by=%s cycle=%s cache=%s', schemaname,
              sequencename, data_type, start_value, min_value, max_value, increment_by, cycle,
              cache_size)
  FROM pg_sequences WHERE schemaname = 'jobsched'
UNION ALL
SELECT format('function %s acl=%s: %s', p.oid::regprocedure, p.proacl, pg_get_functiondef(p.oid))
  FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'jobsched')
UNION ALL
SELECT format('type %s kind=%s acl=%s', oid::regtype, typtype, typacl)
  FROM pg_type WHERE typnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'jobsched')
UNION ALL
SELECT format('schema acl=%s', nspacl) FROM pg_namespace WHERE nspname = 'jobsched'
UNION ALL
SELECT format('initial privileges %s: %s', pg_describe_object(i.classoid, i.objoid, i.objsubid),
              i.initprivs)
  FROM pg_init_privs i JOIN member m ON (m.classid, m.objid) = (i.classoid, i.objoid)
UNION ALL
SELECT format('comment %s: %s', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
  FROM pg_description d
 WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM member)
    OR (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rel))
UNION ALL
SELECT format('dumped rows %s where %L', c.oid::regclass, w.cond)
  FROM ext, unnest(ext.extconfig, ext.extcondition) AS w(relid, cond)
  JOIN pg_class c ON c.oid = w.relid;

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
CREATE TABLE job_types_before AS SELECT * FROM jobsched.job_types;

ALTER EXTENSION jobsched UPDATE TO '1.1';
CREATE TEMP TABLE updated_catalog AS SELECT * FROM extension_catalog;
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
SELECT count(*) AS job_types_changed
  FROM job_types_before b FULL JOIN jobsched.job_types t USING (name)
 WHERE row(b.*) IS DISTINCT FROM row(t.*);
SELECT jobsched.retry(7), jobsched.cancel(1);

-- The updated schema is the fresh one: nothing missing, nothing extra.
DROP TABLE upgrade_before, job_types_before;
DROP EXTENSION jobsched;
CREATE EXTENSION jobsched;
SELECT count(*) > 100 AS catalog_described FROM extension_catalog;
SELECT 'only after the update' AS side, * FROM (TABLE updated_catalog EXCEPT ALL TABLE extension_catalog) u
UNION ALL
SELECT 'only when fresh', * FROM (TABLE extension_catalog EXCEPT ALL TABLE updated_catalog) f
ORDER BY 1, 2;
DROP EXTENSION jobsched;
