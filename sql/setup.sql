-- The extension refuses databases other than jobsched.database.
CREATE DATABASE jobsched_elsewhere;
\c jobsched_elsewhere
CREATE EXTENSION jobsched;
\c contrib_regression
DROP DATABASE jobsched_elsewhere;

CREATE EXTENSION jobsched;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'jobsched';

-- Unknown jobsched.* settings are refused.
SET jobsched.no_such_setting = 1;
-- Postmaster-only settings cannot change at run time.
SET jobsched.database = 'other';
SHOW jobsched.cleanup_age;
SHOW jobsched.channel;
SHOW jobsched.wake_mode;
-- A namespace must be a DNS-1123 label.
ALTER SYSTEM SET jobsched.namespace = 'Not A Namespace';
