-- The extension refuses databases other than jobsched.database.
CREATE DATABASE jobsched_elsewhere;
\c jobsched_elsewhere
-- (PostgreSQL 18 adds the script's text to the context; the message is the point.)
\set SHOW_CONTEXT never
CREATE EXTENSION jobsched;
\set SHOW_CONTEXT errors
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

-- The cleanup selector is empty, "*", or a Kubernetes label selector:
-- anything else, a blank one included, would select more than meant.
ALTER SYSTEM SET jobsched.cleanup_selector = ' ';
ALTER SYSTEM SET jobsched.cleanup_selector = 'app in (a';
ALTER SYSTEM SET jobsched.cleanup_selector = 'app batch';
ALTER SYSTEM SET jobsched.cleanup_selector = 'app=b@d';
ALTER SYSTEM SET jobsched.cleanup_selector = ',';
ALTER SYSTEM SET jobsched.cleanup_selector = 'app=batch, tier!=web,env in (a, b),!legacy,example.com/team==x,size>3';
ALTER SYSTEM RESET jobsched.cleanup_selector;

-- The API URL carries no credentials, and plain http only to this machine;
-- the value is never repeated in the message.
ALTER SYSTEM SET jobsched.kube_api_url = 'https://admin:s3cret@k8s.example:6443';
ALTER SYSTEM SET jobsched.kube_api_url = 'http://k8s.example:8080';
ALTER SYSTEM SET jobsched.kube_api_url = 'ftp://k8s.example';
ALTER SYSTEM SET jobsched.kube_api_url = 'http://127.0.0.1:8001';
ALTER SYSTEM SET jobsched.kube_api_url = 'https://[fd00::1]:6443/';
ALTER SYSTEM RESET jobsched.kube_api_url;
