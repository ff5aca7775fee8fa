"""A Job is a row's Job only with proof, and a row gets at most one Job per
run: also when answers are lost, Jobs are removed before a retry, the
extension is created again, or someone forges Jobs with our labels."""
import json

from conftest import JOB_TEMPLATE, drive, submit, submitted
from harness import NAMESPACE, wait_for


def server_jobs(api, prefix=""):
    return [j for j in api.jobs() if j["metadata"]["name"].startswith(prefix)]


def forge(api, pg, name, job_id, **status):
    """A Job anyone who may create Jobs can make: our labels, a made-up proof."""
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NAMESPACE,
                        "labels": {"app.kubernetes.io/managed-by": "jobsched",
                                   "jobsched.io/job-id": str(job_id), "jobsched.io/type": "echo",
                                   "jobsched.io/instance": pg.status()["instance"]},
                        "annotations": {"jobsched.io/proof": "v1:0:1:" + "f" * 64}},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "x", "image": "busybox"}]}}}}
    if status:
        job["status"] = status
    return api.call("POST", "/objects", {"kind": "Job", "object": job})


# ---- lost answers -----------------------------------------------------------

def test_a_lost_answer_then_a_job_removed_by_ttl_is_not_run_twice(pg, api):
    """The create is stored but the answer is a 503; the Job runs, finishes
    and is removed (ttlSecondsAfterFinished) before the worker would retry.
    The watch saw it: the row takes its outcome, and no second Job is made.
    (A 503, not a dropped connection: libcurl itself sends a request again
    over a fresh connection when a reused one dies before any answer.)"""
    template = json.loads(json.dumps(JOB_TEMPLATE))
    template["spec"]["ttlSecondsAfterFinished"] = 0
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('ttl', %s)",
               (json.dumps(template),))
    pg.set_config(backoff_base="4s")
    # the worker watches (a Job that lives and dies while nobody watches
    # can be known by no one: see the README)
    wait_for("a watch", lambda: [r for r in api.requests("GET") if "watch" in r["query"]])
    api.fault(mode="status", status=503, after=True, count=1, methods=["POST"])
    job_id = submit(pg, job_type="ttl")
    job = wait_for("the Job the lost create made", lambda: server_jobs(api, "ttl-"))[0]
    api.call("POST", f"/jobs/{NAMESPACE}/{job['metadata']['name']}/status", {"phase": "succeeded"})
    wait_for("the TTL controller", lambda: server_jobs(api, "ttl-") == [])
    done = pg.wait_state(job_id, "succeeded", timeout=15)
    assert done["k8s_uid"] == job["metadata"]["uid"]
    assert done["create_unsettled_at"] is None
    assert len(api.creates()) == 1, "a second Job was created"


def test_a_lost_answer_is_settled_before_the_job_fails(pg, api):
    """max_attempts = 1 and the only create's answer is a 504 after the Job
    was stored: the row is not failed while its Job exists and runs."""
    pg.set_config(max_attempts=1)
    api.fault(mode="status", status=504, after=True, count=1, methods=["POST"])
    job_id = submit(pg)
    # the watch sees the Job, or a look-up by name finds it
    row = pg.wait_state(job_id, "submitted", timeout=15)
    (job,) = api.jobs()
    assert row["k8s_uid"] == job["metadata"]["uid"]
    assert row["create_unsettled_at"] is None
    assert len(api.creates()) == 1


def test_a_crash_between_create_and_record_is_settled_by_a_lookup(pg, api):
    """A row left claimed is pending again as unsettled: the worker looks
    its Job up and takes it (proof), without a second create."""
    job_id = submit(pg)
    row = pg.wait_state(job_id, "submitted")
    # as after a crash between the create and the record
    pg.execute("UPDATE jobsched.jobs SET state = 'claimed', k8s_uid = NULL WHERE id = %s",
               (job_id,))
    pg.execute("SELECT pg_terminate_backend(%s)", (pg.worker_pid(),))
    pg.wait_worker()
    again = pg.wait_state(job_id, "submitted", timeout=30)
    assert again["k8s_uid"] == row["k8s_uid"]
    assert len(api.creates()) == 1


# ---- identity -----------------------------------------------------------------

def test_a_new_installation_never_takes_an_old_ones_jobs(pg, api):
    pg.execute("TRUNCATE jobsched.jobs RESTART IDENTITY")
    first = submitted(pg)
    pg.execute("DROP EXTENSION jobsched")
    pg.execute("CREATE EXTENSION jobsched")
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('echo', %s)",
               (json.dumps(JOB_TEMPLATE),))
    again = submitted(pg)
    assert again["id"] == first["id"]          # ids start over
    assert again["k8s_name"] != first["k8s_name"]
    assert again["k8s_uid"] != first["k8s_uid"]
    assert len(api.jobs()) == 2
    # the old installation's Job is not this row's
    drive(api, first, phase="failed")
    drive(api, again, phase="succeeded")
    pg.wait_state(again["id"], "succeeded", timeout=10)


def test_ids_that_start_over_do_not_adopt_the_old_jobs(pg, api):
    pg.execute("TRUNCATE jobsched.jobs RESTART IDENTITY")
    first = submitted(pg)
    pg.execute("TRUNCATE jobsched.jobs RESTART IDENTITY")
    job_id = submit(pg)
    assert job_id == 1 and first["id"] == 1
    failed = pg.wait_state(job_id, "failed")
    assert "is not this job's" in failed["last_error"]
    assert failed["k8s_uid"] is None
    # a new run has a name of its own
    assert pg.value("SELECT jobsched.retry(%s)", (job_id,)) == 1
    rerun = pg.wait_state(job_id, "submitted")
    assert "-r1-" in rerun["k8s_name"]
    assert len(api.jobs()) == 2


def test_a_finished_row_put_back_to_pending_runs_as_a_new_job(pg, api):
    row = submitted(pg)
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=10)
    pg.execute("UPDATE jobsched.jobs SET state = 'pending' WHERE id = %s", (row["id"],))
    again = pg.wait_state(row["id"], "submitted")
    assert again["run"] == 1
    assert again["k8s_name"] != row["k8s_name"] and again["k8s_uid"] != row["k8s_uid"]
    assert again["finished_at"] is None and again["last_error"] is None
    assert len(api.jobs()) == 2


# ---- forgeries ------------------------------------------------------------------

def test_a_forged_job_in_the_place_of_a_deleted_one_is_not_reported(pg, api):
    """Someone deletes a row's Job and creates one of the same name, with
    our labels and a finished status: the row learns its Job is gone."""
    row = submitted(pg)
    drive(api, row, phase="running")
    pg.wait_state(row["id"], "running", timeout=5)
    api.call("DELETE", f"/jobs/{NAMESPACE}/{row['k8s_name']}")
    forge(api, pg, row["k8s_name"], row["id"],
          conditions=[{"type": "Complete", "status": "True"}], succeeded=1)
    gone = pg.wait_state(row["id"], ("failed", "succeeded"), timeout=10)
    assert gone["state"] == "failed"
    assert gone["last_error"] == "the Job was deleted before it finished"


def test_cancel_deletes_only_the_job_it_means(pg, api):
    row = submitted(pg)
    # the row's Job is replaced by someone else's of the same name
    api.call("DELETE", f"/jobs/{NAMESPACE}/{row['k8s_name']}")
    other = forge(api, pg, row["k8s_name"], row["id"])
    assert pg.value("SELECT jobsched.cancel(%s)", (row["id"],)) == "cancelling"
    pg.wait_state(row["id"], "cancelled", timeout=10)
    (survivor,) = api.jobs()
    assert survivor["metadata"]["uid"] == other["metadata"]["uid"]
    (delete,) = api.requests("DELETE")
    assert delete["body"]["preconditions"] == {"uid": row["k8s_uid"]}
    assert delete["status"] == 409


def test_cleanup_neither_deletes_nor_records_forgeries(pg, api):
    row = submitted(pg)
    forge(api, pg, "forged-old", row["id"], active=1)
    api.call("POST", f"/jobs/{NAMESPACE}/forged-old/creationTimestamp",
             {"time": "2020-01-01T00:00:00Z"})
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_interval="1s")
    wait_for("a cleanup", lambda: pg.value(
        "SELECT last_cleanup_at > coalesce(%s, '-infinity') FROM jobsched.status", (before,)))
    assert {j["metadata"]["name"] for j in api.jobs()} == {row["k8s_name"], "forged-old"}
    # with every Job in reach, the forgery goes, but the row is not told
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_selector="*")
    wait_for("a cleanup", lambda: pg.value(
        "SELECT last_cleanup_at > %s FROM jobsched.status", (before,)))
    assert {j["metadata"]["name"] for j in api.jobs()} == {row["k8s_name"]}
    kept = pg.job(row["id"])
    assert kept["state"] == "submitted" and kept["k8s_deleted_at"] is None
