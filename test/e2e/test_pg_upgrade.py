"""pg_upgrade with jobsched preloaded and jobs queued.

pg_upgrade runs both clusters in binary-upgrade mode while it dumps the
schema, restores it and moves the data files: a worker there would submit
jobs that the upgraded cluster then knows nothing of.  The worker must stay
away; afterwards the new cluster's worker carries on with the same rows, the
same instance and the same Jobs, submitting nothing twice.

pg_upgrade accepts an old and a new cluster of the same major version, which
exercises the same binary-upgrade path as an upgrade between versions.  The
clusters and their API server are this test's own.
"""
import glob
import json
import os
import shutil
import subprocess

import pytest

from harness import JOB_TEMPLATE, PG_BIN, KubeApi, Postgres


@pytest.fixture
def upgrade_dir(workdir):
    path = os.path.join(workdir, "pg_upgrade")
    os.makedirs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def queue(pg, count):
    return [pg.value("SELECT jobsched.submit('echo', '{\"args\": [\"hi\"]}')")
            for _ in range(count)]


def kept_of(row):
    return {k: row[k] for k in ("id", "type", "params", "priority", "run", "owner",
                                "created_at")}


def drive(api, pg, job_id, phase):
    row = pg.job(job_id)
    api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/status", {"phase": phase})


def test_pg_upgrade_neither_runs_the_worker_nor_loses_a_job(upgrade_dir):
    api = KubeApi(upgrade_dir)
    old = new = None
    try:
        api.reset()
        old = Postgres(os.path.join(upgrade_dir, "old"), api)
        old.wait_worker()
        old.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('echo', %s)",
                    (json.dumps(JOB_TEMPLATE),))
        live = queue(old, 2)
        for job_id in live:
            old.wait_state(job_id, "submitted")
        drive(api, old, live[1], "running")
        old.wait_state(live[1], "running")

        # jobs queued while the worker is off, then the server stops with
        # the worker switched on again for whatever starts it next
        old.set_config(enabled="off")
        pending = queue(old, 3)
        instance = old.status()["instance"]
        names = {job_id: old.value("SELECT jobsched.job_name(type, id, run) FROM jobsched.jobs"
                                   " WHERE id = %s", (job_id,)) for job_id in live + pending}
        before = old.jobs()
        old.conn.close()
        old.stop()
        auto_conf = os.path.join(old.datadir, "postgresql.auto.conf")
        with open(auto_conf) as f:
            kept = [line for line in f if "jobsched.enabled" not in line]
        with open(auto_conf, "w") as f:
            f.writelines(kept)
        requests_before = len(api.requests())

        new = Postgres(os.path.join(upgrade_dir, "new"), api, start=False)
        upgraded = subprocess.run(
            [os.path.join(PG_BIN, "pg_upgrade"), "--retain", "-U", "postgres",
             "-b", PG_BIN, "-B", PG_BIN, "-d", old.datadir, "-D", new.datadir,
             "-p", str(old.port + 1), "-P", str(old.port + 2)],
            cwd=upgrade_dir, capture_output=True, text=True)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

        # nothing reached the API while pg_upgrade ran the servers, and the
        # servers said why
        assert api.requests()[requests_before:] == []
        server_logs = "".join(open(p, errors="replace").read() for p in glob.glob(
            os.path.join(new.datadir, "pg_upgrade_output.d", "*", "log", "pg_upgrade_server.log")))
        assert "jobsched worker not started: the server runs in binary-upgrade mode" in server_logs

        new.start()
        new.conn = new.connect()
        new.wait_worker()
        # the worker starts at once: rows it may have moved since are
        # compared by what it never changes, the live ones also by their Job
        after = new.jobs()
        assert [kept_of(j) for j in after] == [kept_of(j) for j in before]
        for a, b in zip(after, before):
            if b["id"] in live:
                assert a["k8s_uid"] == b["k8s_uid"] is not None
        assert new.status()["instance"] == instance
        for job_id in pending:
            new.wait_state(job_id, ("submitted", "running"))
        for job_id in live + pending:
            assert new.job(job_id)["k8s_name"] == names[job_id]
            drive(api, new, job_id, "succeeded")
        for job_id in live + pending:
            new.wait_state(job_id, "succeeded")

        created = [c["body"]["metadata"]["name"] for c in api.creates()]
        assert sorted(created) == sorted(names.values())
        assert api.violations() == []
    finally:
        for cluster in (new, old):
            if cluster is not None:
                cluster.stop()
        api.stop()
