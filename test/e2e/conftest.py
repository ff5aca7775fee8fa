"""End-to-end fixtures: a real PostgreSQL 15 with jobsched preloaded, and the
Kubernetes API test server (test/kube-api) on loopback with a fresh CA.

Both are started once per session.  Each test starts from an empty queue,
an empty API server and the default settings.
"""
import hashlib
import hmac
import json
import os
import shutil
import tempfile

import pytest

from harness import JOB_TEMPLATE, KubeApi, Postgres, wait_for

@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="jobsched-e2e-")
    yield d
    if os.environ.get("JOBSCHED_KEEP_TMP"):
        print("kept", d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def api(workdir):
    server = KubeApi(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster(workdir, api):
    cluster = Postgres(workdir, api)
    yield cluster
    cluster.stop()


SETTINGS_TESTS_CHANGE = ["enabled", "wake_mode", "namespace", "max_attempts",
                         "max_in_flight", "batch_size", "kube_api_url", "channel", "claim_delay"]


@pytest.fixture
def pg(pg_cluster, api):
    """The cluster, with an empty queue, default settings and a clean API server."""
    pg = pg_cluster
    pg.conn.close()
    pg.conn = pg.connect()
    # empty the queue first, so restoring settings does not set old rows going
    pg.execute("TRUNCATE jobsched.jobs, jobsched.job_types")
    changed = pg.query("SELECT name FROM pg_file_settings WHERE name LIKE 'jobsched.%%'"
                       " AND sourcefile LIKE '%%postgresql.auto.conf'")
    if changed:
        pg.set_config(**{name.split(".", 1)[1]: None for (name,) in changed})
    pg.wait_worker()
    api.fault(mode="none")
    wait_for("requests of earlier tests to finish", lambda: pg.status()["in_flight"] == 0)
    api.reset()
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('echo', %s)",
               (json.dumps(JOB_TEMPLATE),))
    yield pg
    violations = api.violations()
    assert violations == [], f"the API server saw bodies that violate the schema: {violations}"


def submit(pg, params=None, job_type="echo"):
    return pg.value("SELECT jobsched.submit(%s, %s)",
                    (job_type, json.dumps(params if params is not None else {"args": ["hi"]})))


def submitted(pg, params=None, job_type="echo"):
    """A job submitted and its row in state submitted."""
    return pg.wait_state(submit(pg, params, job_type), "submitted")


# a creationTimestamp old enough for any cleanup_age
OLD = "2020-01-01T00:00:00Z"


def drive(api, row, **body):
    """Set the status of a row's Job in the test server, as a controller would."""
    api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/status", body)


def age(api, row, when=OLD):
    """Backdate a row's Job."""
    api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/creationTimestamp",
             {"time": when})


def server_job(api, name):
    return next((j for j in api.jobs() if j["metadata"]["name"] == name), None)


def delete_behind_the_watch(api, row):
    """Delete a row's Job where the watch cannot tell: its history is
    compacted around the delete and the watch closed (410), so only a relist
    finds the Job gone."""
    wait_for("the watch", lambda: any("watch" in r["query"] for r in api.requests("GET")))
    api.call("POST", "/watch/compact")
    api.call("DELETE", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}")
    api.call("POST", "/watch/compact")
    api.call("POST", "/watch/close")


def proof_for(pg, namespace, name, job_id, run, created_usec):
    """A jobsched.io/proof as the worker makes it: an HMAC-SHA256 with the
    installation's secret (readable by superusers) over the Job's namespace
    and name and the row's id, run and creation time."""
    secret = pg.value("SELECT secret FROM jobsched.installation ORDER BY created_at LIMIT 1")
    message = f"v1\n{namespace}\n{name}\n{job_id}\n{run}\n{created_usec}".encode()
    mac = hmac.new(bytes(secret), message, hashlib.sha256).hexdigest()
    return f"v1:{run}:{created_usec}:{mac}"


def expected_proof(pg, job_id):
    """The jobsched.io/proof a Job of this job's current run must carry."""
    ns, name, run, created = pg.query(
        "SELECT coalesce(j.k8s_namespace, t.namespace, current_setting('jobsched.namespace')),"
        "       jobsched.job_name(j.type, j.id, j.run), j.run,"
        "       ((extract(epoch FROM j.created_at) - 946684800) * 1000000)::bigint"
        "  FROM jobsched.jobs j JOIN jobsched.job_types t ON t.name = j.type"
        " WHERE j.id = %s", (job_id,))[0]
    return proof_for(pg, ns, name, job_id, run, created)
