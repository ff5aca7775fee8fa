"""Rows follow their Jobs: status sync, cancellation, cleanup, queue controls."""
import datetime
import json

import psycopg2
import pytest

from conftest import (OLD, age, delete_behind_the_watch, drive, proof_for, server_job, submit,
                      submitted)
from harness import NAMESPACE, wait_for




def server_pods(api, job_name):
    return [p for p in api.call("GET", "/pods")
            if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name]


# ---- status sync --------------------------------------------------------

def test_running_then_succeeded(pg, api):
    row = submitted(pg)
    drive(api, row, phase="running")
    running = pg.wait_state(row["id"], "running", timeout=5)
    assert running["started_at"] is not None
    drive(api, row, phase="succeeded")
    done = pg.wait_state(row["id"], "succeeded", timeout=5)
    job = server_job(api, row["k8s_name"])
    expected = datetime.datetime.fromisoformat(job["status"]["completionTime"].replace("Z", "+00:00"))
    # Kubernetes times have whole seconds: never before the row was submitted
    assert done["finished_at"] == max(expected, done["submitted_at"])
    assert done["started_at"] >= done["submitted_at"]
    assert done["last_error"] is None


def test_a_change_arrives_through_the_watch_not_a_relist(pg, api):
    # sync_interval is 10 s: a change seen within 5 s came through the watch
    row = submitted(pg)
    wait_for("the watch", lambda: any(r["query"].get("watch") in ("1", "true")
                                      for r in api.requests("GET")))
    lists_before = len([r for r in api.requests("GET") if "watch" not in r["query"]
                        and r["path"].endswith("/jobs")])
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=5)
    lists_after = len([r for r in api.requests("GET") if "watch" not in r["query"]
                       and r["path"].endswith("/jobs")])
    assert lists_after == lists_before


def test_failed_with_kubernetes_reason_and_pod_details(pg, api):
    row = submitted(pg)
    drive(api, row, phase="failed", reason="BackoffLimitExceeded",
          message="Job has reached the specified backoff limit",
          pod_reason="OOMKilled", exit_code=137)
    failed = pg.wait_state(row["id"], "failed", timeout=5)
    assert failed["finished_at"] is not None
    assert "BackoffLimitExceeded" in failed["last_error"]
    assert "backoff limit" in failed["last_error"]
    wait_for("the pod's details", lambda: "OOMKilled" in pg.job(row["id"])["last_error"])
    assert "exit code 137" in pg.job(row["id"])["last_error"]


def test_deadline_exceeded(pg, api):
    row = submitted(pg)
    drive(api, row, phase="failed", reason="DeadlineExceeded",
          message="Job was active longer than specified deadline")
    failed = pg.wait_state(row["id"], "failed", timeout=5)
    assert "DeadlineExceeded" in failed["last_error"]


def test_job_deleted_behind_our_back_does_not_stay_running(pg, api):
    row = submitted(pg)
    drive(api, row, phase="running")
    pg.wait_state(row["id"], "running", timeout=5)
    api.call("DELETE", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}")
    gone = pg.wait_state(row["id"], "failed", timeout=5)
    assert gone["last_error"] == "the Job was deleted before it finished"


def test_relist_finds_what_the_watch_missed(pg, api):
    row = submitted(pg)
    # the watch ends and its history is gone: the DELETED event is never seen
    delete_behind_the_watch(api, row)
    gone = pg.wait_state(row["id"], "failed", timeout=10)
    assert gone["last_error"] == "the Job was deleted before it finished"


def test_expired_resource_version_means_a_relist(pg, api):
    row = submitted(pg)
    wait_for("the watch", lambda: any("watch" in r["query"] for r in api.requests("GET")))
    api.call("POST", "/watch/compact")
    api.call("POST", "/watch/close")
    wait_for("a 410 and a relist", lambda: any(
        r["path"].endswith("/jobs") and "watch" not in r["query"]
        for r in api.requests("GET")[-20:]) and any(
        "watch" in r["query"] for r in api.requests("GET")[-20:]))
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=10)


def test_bookmarks_keep_the_resource_version_fresh(pg, api):
    submitted(pg)
    api.call("PUT", "/watch", {"bookmark_ms": 50})

    def watches():
        return [r for r in api.requests("GET") if "watch" in r["query"]]
    wait_for("a watch", watches)
    # a change the watch does not see (another namespace) moves the resourceVersion
    # on: only a bookmark can tell the worker
    foreign = api.call("POST", "/objects", {"kind": "Job", "object": {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "elsewhere", "namespace": "jobsched-other"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "x", "image": "busybox"}]}}}}})
    rv = int(foreign["metadata"]["resourceVersion"])

    def rewatched_from_a_bookmark():
        before = len(watches())
        api.call("POST", "/watch/close")
        wait_for("the next watch", lambda: len(watches()) > before, timeout=5)
        return int(watches()[-1]["query"]["resourceVersion"]) >= rv
    # well within sync_interval (10 s), so no relist can be what moved it
    wait_for("a watch from a bookmark's resourceVersion", rewatched_from_a_bookmark,
             timeout=3, interval=0.1)


# ---- cancellation -------------------------------------------------------

def test_cancel_pending_never_submits(pg, api):
    pg.set_config(enabled="off")
    job_id = submit(pg)
    assert pg.value("SELECT jobsched.cancel(%s)", (job_id,)) == "cancelled"
    pg.set_config(enabled="on")
    other = submit(pg)
    pg.wait_state(other, "submitted")
    assert pg.job(job_id)["state"] == "cancelled"
    assert [r["body"]["metadata"]["labels"]["jobsched.io/job-id"] for r in api.creates()] == [str(other)]


@pytest.mark.parametrize("phase", [None, "running"])
def test_cancel_deletes_the_job_and_its_pods(pg, api, phase):
    row = submitted(pg)
    if phase:
        drive(api, row, phase=phase)
        pg.wait_state(row["id"], phase, timeout=5)
    assert server_pods(api, row["k8s_name"])
    assert pg.value("SELECT jobsched.cancel(%s)", (row["id"],)) == "cancelling"
    done = pg.wait_state(row["id"], "cancelled", timeout=5)
    assert done["k8s_deleted_at"] is not None
    deletes = api.requests("DELETE")
    assert len(deletes) == 1
    assert deletes[0]["body"]["propagationPolicy"] == "Background"
    assert deletes[0]["body"]["preconditions"] == {"uid": row["k8s_uid"]}
    assert server_job(api, row["k8s_name"]) is None
    assert server_pods(api, row["k8s_name"]) == []


def test_cancel_finished_job_is_an_error(pg, api):
    row = submitted(pg)
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=5)
    with pytest.raises(psycopg2.Error) as err:
        pg.value("SELECT jobsched.cancel(%s)", (row["id"],))
    assert err.value.pgcode == "55000"
    assert "already succeeded" in err.value.pgerror
    assert err.value.diag.message_hint


def test_cancel_during_a_claim_in_flight(pg, api):
    # the create is on its way when the cancel comes: the Job is made, then deleted
    api.call("PUT", "/latency", {"ms": 400})
    job_id = submit(pg)
    wait_for("the claim", lambda: pg.job(job_id)["state"] == "claimed")
    assert pg.value("SELECT jobsched.cancel(%s)", (job_id,)) == "cancelling"
    done = pg.wait_state(job_id, "cancelled", timeout=10)
    assert done["k8s_deleted_at"] is not None
    assert api.jobs() == []


def test_cancel_while_the_create_fails(pg, api):
    # the create hangs, then fails: the row goes to cancelled, not back to pending
    api.fault(mode="hang", methods=["POST"])
    job_id = submit(pg)
    wait_for("the claim", lambda: pg.job(job_id)["state"] == "claimed")
    assert pg.value("SELECT jobsched.cancel(%s)", (job_id,)) == "cancelling"
    api.fault(mode="none")
    pg.wait_state(job_id, "cancelled", timeout=10)
    pg.execute("NOTIFY job_scheduler")
    pg.wait_state(submit(pg), "submitted")
    assert pg.job(job_id)["state"] == "cancelled"


# ---- cleanup ------------------------------------------------------------

def run_cleanup(pg, **settings):
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_interval="1s", **settings)
    wait_for("a cleanup", lambda: pg.value(
        "SELECT last_cleanup_at IS NOT NULL AND last_cleanup_at > coalesce(%s, '-infinity')"
        " FROM jobsched.status", (before,)), timeout=10)
    return pg.status()


def foreign_job(api, name, labels=None, when=OLD):
    api.call("POST", "/objects", {"kind": "Job", "object": {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {"team": "other"},
                     "creationTimestamp": when},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "x", "image": "busybox"}]}}}}})


def test_cleanup_deletes_old_jobs_and_their_pods(pg, api):
    old_done, old_active, young = submitted(pg), submitted(pg), submitted(pg)
    drive(api, old_done, phase="succeeded")
    pg.wait_state(old_done["id"], "succeeded", timeout=5)
    drive(api, old_active, phase="running")
    pg.wait_state(old_active["id"], "running", timeout=5)
    age(api, old_done)
    age(api, old_active)
    foreign_job(api, "not-ours")

    st = run_cleanup(pg)
    assert st["last_cleanup_jobs_deleted"] == 2
    names = {j["metadata"]["name"] for j in api.jobs()}
    assert names == {young["k8s_name"], "not-ours"}
    assert server_pods(api, old_done["k8s_name"]) == []
    assert server_pods(api, old_active["k8s_name"]) == []
    assert server_pods(api, young["k8s_name"])
    deletes = [r for r in api.requests("DELETE") if "/jobs/" in r["path"]]
    uids = {j["k8s_name"]: j["k8s_uid"] for j in (old_done, old_active)}
    assert sorted(r["path"].rsplit("/", 1)[1] for r in deletes) == sorted(uids)
    for r in deletes:
        # the pods go with their Job, and only the Job we mean is deleted
        assert r["body"]["propagationPolicy"] == "Background"
        assert r["body"]["preconditions"] == {"uid": uids[r["path"].rsplit("/", 1)[1]]}

    done = pg.job(old_done["id"])
    assert done["state"] == "succeeded" and done["k8s_deleted_at"] is not None
    active = wait_for("the active job's row", lambda: (lambda j: j if j["state"] == "failed" and
                      "cleanup" in (j["last_error"] or "") else None)(pg.job(old_active["id"])))
    assert "still active" in active["last_error"]
    assert pg.job(young["id"])["state"] == "submitted"
    # rows are never deleted by cleanup
    assert pg.value("SELECT count(*) FROM jobsched.jobs") == 3


def test_cleanup_can_spare_active_jobs(pg, api):
    active = submitted(pg)
    drive(api, active, phase="running")
    age(api, active)
    st = run_cleanup(pg, cleanup_spare_active="on")
    assert st["last_cleanup_jobs_deleted"] == 0
    assert server_job(api, active["k8s_name"]) is not None
    assert pg.job(active["id"])["state"] == "running"


def test_cleanup_selector_widens_to_every_job(pg, api):
    foreign_job(api, "someone-elses")
    foreign_job(api, "someone-elses-young", when=datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    run_cleanup(pg)
    assert {j["metadata"]["name"] for j in api.jobs()} == {"someone-elses", "someone-elses-young"}
    run_cleanup(pg, cleanup_selector="*")
    assert {j["metadata"]["name"] for j in api.jobs()} == {"someone-elses-young"}


def orphan_pod(api, pg, name, job_name, when, signed=True, job_id=999999):
    """A pod left behind by a Job of ours that was deleted the batch/v1
    default way (orphaning): it carries the labels and the proof its pod
    template gave it.  Unsigned, it is a forgery with our labels."""
    annotations = {"jobsched.io/proof": proof_for(pg, NAMESPACE, job_name, job_id, 0, 1)} \
        if signed else {}
    api.call("POST", "/objects", {"kind": "Pod", "object": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": when,
                     "annotations": annotations,
                     "labels": {"batch.kubernetes.io/job-name": job_name, "job-name": job_name,
                                "jobsched.io/instance": pg.status()["instance"],
                                "jobsched.io/job-id": str(job_id)}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "busybox"}]}}})


def test_cleanup_deletes_orphaned_pods(pg, api):
    # pods left behind by Jobs deleted the batch/v1 default way (orphaning)
    orphan_pod(api, pg, "old-orphan", "long-gone-job", OLD)
    orphan_pod(api, pg, "young-orphan", "just-gone-job",
               datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # with our labels but no proof: not ours to delete
    orphan_pod(api, pg, "forged-orphan", "someone-elses-job", OLD, signed=False)
    st = run_cleanup(pg)
    assert st["last_cleanup_pods_deleted"] == 1
    assert sorted(p["metadata"]["name"] for p in api.call("GET", "/pods")) == \
        ["forged-orphan", "young-orphan"]


def test_a_job_finishing_during_cleanup_keeps_its_outcome(pg, api):
    row = submitted(pg)
    drive(api, row, phase="running")
    pg.wait_state(row["id"], "running", timeout=5)
    age(api, row)
    # the list sees it active; by the time of the delete it has succeeded
    api.call("PUT", "/latency", {"ms": 300})
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_interval="1s")
    wait_for("cleanup to list", lambda: any(r["path"].endswith("/jobs") and "watch" not in r["query"]
                                             and r["query"].get("labelSelector") and r["query"].get("limit")
                                             for r in api.requests("GET")[-5:]), timeout=10)
    drive(api, row, phase="succeeded")
    wait_for("a cleanup", lambda: pg.value(
        "SELECT last_cleanup_at > coalesce(%s, '-infinity') FROM jobsched.status", (before,)),
        timeout=10)
    final = wait_for("the final state", lambda: (lambda j: j if j["state"] != "running" else None)(
        pg.job(row["id"])), timeout=10)
    assert final["state"] == "succeeded", final["last_error"]


# ---- queue controls -----------------------------------------------------

def test_run_after_is_honoured(pg, api):
    later = pg.value("SELECT jobsched.submit('echo', '{\"args\": []}', 0, now() + interval '2 seconds')")
    now = submit(pg)
    pg.wait_state(now, "submitted")
    assert pg.job(later)["state"] == "pending"
    row = pg.wait_state(later, "submitted", timeout=10)
    assert row["submitted_at"] >= row["run_after"]


def test_priority_orders_the_claim(pg, api):
    pg.set_config(enabled="off")
    low = [submit(pg) for _ in range(3)]
    high = pg.value("SELECT jobsched.submit('echo', '{\"args\": []}', 10)")
    pg.set_config(enabled="on", max_in_flight=1)
    for job_id in low + [high]:
        pg.wait_state(job_id, "submitted")
    order = [int(r["body"]["metadata"]["labels"]["jobsched.io/job-id"]) for r in api.creates()]
    assert order[0] == high
    assert order[1:] == low


def test_per_type_cap_on_jobs_in_flight(pg, api):
    pg.execute("UPDATE jobsched.job_types SET max_in_flight = 2 WHERE name = 'echo'")
    ids = [submit(pg) for _ in range(5)]
    wait_for("two submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 2)
    pg.execute("NOTIFY job_scheduler")
    pg.set_config(max_in_flight=4)  # a full pass of the worker
    assert pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'pending'") == 3
    # one finishes: one more may go
    first = pg.job(ids[0])
    drive(api, first, phase="succeeded")
    pg.wait_state(ids[0], "succeeded", timeout=5)
    pg.execute("NOTIFY job_scheduler")
    wait_for("a third submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 2 and pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'pending'") == 2)


def test_a_capped_type_does_not_hold_back_the_others(pg, api):
    pg.execute("INSERT INTO jobsched.job_types (name, template, max_in_flight)"
               " SELECT 'capped', template, 1 FROM jobsched.job_types WHERE name = 'echo'")
    capped = [submit(pg, job_type="capped") for _ in range(3)]
    free = [submit(pg) for _ in range(5)]
    for job_id in free:
        pg.wait_state(job_id, "submitted")
    wait_for("one capped job submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE type = 'capped' AND state = 'submitted'") == 1)
    pg.execute("NOTIFY job_scheduler")
    pg.set_config(max_in_flight=4)  # a full pass of the worker
    assert pg.value("SELECT count(*) FROM jobsched.jobs WHERE type = 'capped'"
                    " AND state = 'pending'") == 2
    assert {pg.job(job_id)["state"] for job_id in capped} == {"submitted", "pending"}


def test_status_shows_cleanup(pg, api):
    st = run_cleanup(pg)
    assert st["last_cleanup_at"] is not None
    assert st["last_cleanup_jobs_deleted"] == 0
    assert st["last_cleanup_pods_deleted"] == 0


# ---- faults -------------------------------------------------------------

def test_thousands_of_jobs_deleted_behind_our_back_while_syncing(pg, api):
    """kubectl delete jobs --all: every row learns its Job is gone, and the
    worker (a crash of which resets every session of the server) survives."""
    pid = pg.worker_pid()
    log_start = len(pg.server_log())
    pg.execute("INSERT INTO jobsched.jobs (type, params)"
               " SELECT 'echo', '{\"args\": []}' FROM generate_series(1, 3000)")
    wait_for("3000 jobs submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 3000, timeout=120)
    api.kube("DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs?propagationPolicy=Background")
    wait_for("every row to learn its Job is gone", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'failed'"
        " AND last_error = 'the Job was deleted before it finished'") == 3000, timeout=120)
    assert pg.worker_pid() == pid
    assert "terminated by signal" not in pg.server_log()[log_start:]
