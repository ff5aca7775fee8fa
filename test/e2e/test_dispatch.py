"""From an INSERT to a Kubernetes Job: the worker against the API test server."""
import json
import os
import re
import signal
import time

import psycopg2
import pytest

from conftest import JOB_TEMPLATE, expected_proof, submit
from harness import NAMESPACE, TOKEN, wait_for


def test_worker_runs_and_listens(pg):
    st = pg.status()
    assert st["worker_pid"] is not None
    assert st["listening"] is True
    assert st["enabled"] is True
    assert st["namespace"] == NAMESPACE


def test_pending_to_submitted_with_exactly_the_expected_body(pg, api):
    job_id = submit(pg, {"args": ["echo", "hello"]})
    expected = pg.value("SELECT jobsched.render(%s)", (job_id,))
    row = pg.wait_state(job_id, "submitted")

    creates = api.creates()
    assert len(creates) == 1
    post = creates[0]
    assert post["path"] == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    assert post["query"].get("fieldValidation") == "Strict"
    assert post["token_ok"] is True
    body = post["body"]
    # the worker signs the Job and its pods; render() cannot (no secret)
    proofs = [body["metadata"]["annotations"].pop("jobsched.io/proof"),
              body["spec"]["template"]["metadata"]["annotations"].pop("jobsched.io/proof")]
    for meta in (body["metadata"], body["spec"]["template"]["metadata"]):
        if not meta["annotations"]:
            del meta["annotations"]
    assert body == expected
    assert proofs[0] == proofs[1] == expected_proof(pg, job_id)

    name = pg.value("SELECT jobsched.job_name('echo', %s)", (job_id,))
    assert body["metadata"]["name"] == name
    assert body["metadata"]["namespace"] == NAMESPACE
    instance = pg.status()["instance"]
    for labels in (body["metadata"]["labels"], body["spec"]["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/managed-by"] == "jobsched"
        assert labels["jobsched.io/job-id"] == str(job_id)
        assert labels["jobsched.io/type"] == "echo"
        assert labels["jobsched.io/instance"] == instance
    assert body["spec"]["template"]["spec"]["containers"][0]["args"] == ["echo", "hello"]

    stored = {j["metadata"]["name"]: j for j in api.jobs()}
    assert row["k8s_name"] == name
    assert row["k8s_namespace"] == NAMESPACE
    assert row["k8s_uid"] == stored[name]["metadata"]["uid"]
    assert row["submitted_at"] is not None
    assert row["attempts"] == 1
    assert pg.status()["last_api_success_at"] is not None


def test_100_jobs_in_one_transaction_are_each_submitted_once(pg, api):
    with pg.conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO jobsched.jobs (type, params)"
                    " SELECT 'echo', jsonb_build_object('args', jsonb_build_array(g::text))"
                    " FROM generate_series(1, 100) g")
        cur.execute("COMMIT")
    wait_for("100 jobs submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 100)
    creates = api.creates()
    names = [r["body"]["metadata"]["name"] for r in creates]
    assert len(names) == 100
    assert len(set(names)) == 100
    assert sorted(names) == sorted(r[0] for r in pg.query("SELECT k8s_name FROM jobsched.jobs"))
    assert len(api.jobs()) == 100


def test_api_down_then_back(pg, api):
    pg.set_config(kube_api_url="https://127.0.0.1:1")
    ids = [submit(pg) for _ in range(5)]
    wait_for("an attempt and a pause while the API is down",
             lambda: pg.status()["paused_until"] is not None and
             any(j["attempts"] >= 1 for j in pg.jobs()))
    assert {j["state"] for j in pg.jobs()} == {"pending"}
    tried = [j for j in pg.jobs() if j["attempts"] >= 1]
    assert "could not reach the Kubernetes API" in tried[0]["last_error"]
    assert tried[0]["retryable_failures"] >= 1
    assert "could not reach" in pg.status()["last_error"]
    assert api.creates() == []

    pg.set_config(kube_api_url=None)
    for job_id in ids:
        pg.wait_state(job_id, "submitted")
    names = [r["body"]["metadata"]["name"] for r in api.creates()]
    assert len(names) == len(set(names)) == 5


def test_429_storm_honours_retry_after(pg, api):
    # one request at a time: each create after a 429 was sent once the worker
    # had the answer (with several in flight, one started before the answer
    # arrived may reach the server much later, after a TLS handshake)
    pg.set_config(max_in_flight=1)
    api.fault(mode="429", retry_after=1, count=5, methods=["POST"])
    ids = [submit(pg) for _ in range(10)]
    for job_id in ids:
        pg.wait_state(job_id, "submitted", timeout=30)
    posts = api.creates()
    rejected = [r for r in posts if r["status"] == 429]
    assert len(rejected) == 5
    # after a 429 with Retry-After: 1, nothing new comes for a second
    for r in rejected:
        answered = r["ts"] + r["duration_ms"]
        later = [p for p in posts if p["ts"] > answered]
        if later:
            assert later[0]["ts"] - answered >= 950, "a request came before Retry-After elapsed"
    created = [r["body"]["metadata"]["name"] for r in posts if r["status"] == 201]
    assert len(created) == len(set(created)) == 10
    assert sum(j["attempts"] for j in pg.jobs()) == len(posts)


def rotate_server_token(api, new_token):
    """The cluster now wants new_token: the worker's token is wrong until the file changes."""
    api.call("PUT", "/tokens", {"tokens": [new_token], "forbidden": []})


def test_wrong_token_then_right_token_without_restart(pg, api):
    pid = pg.worker_pid()
    rotated = "rotated-token-5d1c0a77e2b94f3c"
    rotate_server_token(api, rotated)
    started = pg.value("SELECT now()")
    job_id = submit(pg)
    wait_for("a 401", lambda: pg.job(job_id)["last_error"] is not None)
    job = pg.job(job_id)
    assert job["last_error"] == "Kubernetes API answered 401: Unauthorized"
    assert job["state"] == "pending"
    assert job["retryable_failures"] == 0, "credential errors never count toward failing"
    assert [r["status"] for r in api.creates()][0] == 401
    # the status view says so too, now (not an error left by an earlier test);
    # the watch, renewed meanwhile with the same token, may have said it last
    st = pg.status()
    assert st["last_error_at"] is not None and st["last_error_at"] > started, \
        f"the status view does not report this 401: {st['last_error']!r} at {st['last_error_at']}"
    assert re.fullmatch(r"(status sync \((list|watch), namespace %s\): )?"
                        r"Kubernetes API answered 401: Unauthorized" % re.escape(NAMESPACE),
                        st["last_error"]), st["last_error"]

    api.write_token(rotated)
    pg.wait_state(job_id, "submitted", timeout=30)
    assert pg.worker_pid() == pid
    assert api.creates()[-1]["token_ok"] is True


def test_forbidden_and_missing_namespace_keep_jobs_pending(pg, api):
    api.call("PUT", "/namespaces", {"namespaces": ["default"]})
    job_id = submit(pg)
    wait_for("a 404 for the namespace", lambda: "404" in (pg.job(job_id)["last_error"] or ""))
    assert pg.job(job_id)["state"] == "pending"
    api.call("PUT", "/namespaces", {"namespaces": ["default", NAMESPACE]})
    pg.wait_state(job_id, "submitted", timeout=30)

    api.call("PUT", "/tokens", {"tokens": [TOKEN], "forbidden": [TOKEN]})
    job_id = submit(pg)
    wait_for("a 403", lambda: "403" in (pg.job(job_id)["last_error"] or ""))
    assert pg.job(job_id)["state"] == "pending"
    api.call("PUT", "/tokens", {"tokens": [TOKEN], "forbidden": []})
    pg.wait_state(job_id, "submitted", timeout=30)


def test_missing_param_fails_the_job_without_a_request(pg, api):
    job_id = submit(pg, {"not_args": 1})
    job = pg.wait_state(job_id, "failed")
    assert 'missing param "args"' in job["last_error"]
    assert job["finished_at"] is not None
    assert api.creates() == []


def test_the_worker_signs_over_a_forged_proof_and_fails_annotations_that_are_not_an_object(pg, api):
    """The proof paths jobsched.render() cannot show (it has no secret)."""
    template = json.loads(json.dumps(JOB_TEMPLATE))
    template["metadata"] = {"annotations": {"jobsched.io/proof": "v1:0:1:" + "f" * 64,
                                            "team": "data"}}
    template["spec"]["template"]["metadata"] = {"annotations": "{{params.pod_annotations}}"}
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('signed', %s)",
               (json.dumps(template),))
    bad = submit(pg, {"args": ["true"], "pod_annotations": 5}, job_type="signed")
    job = pg.wait_state(bad, "failed")
    assert ('template "spec.template.metadata.annotations" must be an object, not a number'
            in job["last_error"])
    assert api.creates() == []

    good = submit(pg, {"args": ["true"], "pod_annotations": {"jobsched.io/proof": "forged"}},
                  job_type="signed")
    pg.wait_state(good, "submitted")
    body = api.creates()[-1]["body"]
    proof = expected_proof(pg, good)
    assert body["metadata"]["annotations"] == {"jobsched.io/proof": proof, "team": "data"}
    assert body["spec"]["template"]["metadata"]["annotations"] == {"jobsched.io/proof": proof}


def test_rejected_manifest_fails_with_the_api_message(pg, api):
    bad = {"apiVersion": "batch/v1", "kind": "Job",
           "spec": {"template": {"spec": {"restartPolicy": "Always",
                                          "containers": [{"name": "x", "image": "busybox"}]}}}}
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('always', %s)",
               (json.dumps(bad),))
    job_id = submit(pg, {}, job_type="always")
    job = pg.wait_state(job_id, "failed")
    assert "422" in job["last_error"]
    assert "restartPolicy" in job["last_error"]

    typo = {"apiVersion": "batch/v1", "kind": "Job",
            "spec": {"backofLimit": 3, "template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "x", "image": "busybox"}]}}}}
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('typo', %s)",
               (json.dumps(typo),))
    job_id = submit(pg, {}, job_type="typo")
    job = pg.wait_state(job_id, "failed")
    assert "400" in job["last_error"]
    assert "backofLimit" in job["last_error"]
    api.call("DELETE", "/violations")


def test_conflict_with_our_own_job_counts_as_submitted(pg, api):
    job_id = submit(pg)
    pg.wait_state(job_id, "submitted")
    uid = pg.job(job_id)["k8s_uid"]
    # as after a crash between the create and the record: the row is pending again
    pg.execute("UPDATE jobsched.jobs SET state = 'pending' WHERE id = %s", (job_id,))
    row = pg.wait_state(job_id, "submitted")
    assert row["k8s_uid"] == uid
    name = row["k8s_name"]
    statuses = [r["status"] for r in api.requests()
                if r["method"] == "POST" or r["path"].endswith("/jobs/" + name)]
    assert statuses == [201, 409, 200]
    assert len(api.jobs()) == 1


@pytest.mark.parametrize("forged", [False, True])
def test_conflict_with_someone_elses_job_fails(pg, api, forged):
    """A Job that squats on the name is never adopted, not even one that
    carries this row's labels: only a proof made with the secret counts."""
    job_id = pg.value("SELECT nextval(pg_get_serial_sequence('jobsched.jobs', 'id'))") + 1
    name = pg.value("SELECT jobsched.job_name('echo', %s)", (job_id,))
    labels = {"team": "other"}
    annotations = {}
    if forged:
        labels = {"app.kubernetes.io/managed-by": "jobsched", "jobsched.io/job-id": str(job_id),
                  "jobsched.io/type": "echo", "jobsched.io/instance": pg.status()["instance"]}
        annotations = {"jobsched.io/proof": "v1:0:1:" + "0" * 64}
    api.call("POST", "/objects", {"kind": "Job", "object": {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                     "annotations": annotations},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "x", "image": "busybox"}]}}}}})
    assert submit(pg) == job_id
    job = pg.wait_state(job_id, "failed")
    assert "already exists" in job["last_error"]
    assert "is not this job's" in job["last_error"]
    assert job["k8s_uid"] is None


def test_a_row_that_cannot_be_updated_does_not_hold_up_the_others(pg, api):
    # a user's trigger rejects the worker's update of one row
    pg.execute("""CREATE FUNCTION public.reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN
                    IF NEW.params ? 'poison' AND NEW.state = 'submitted' THEN
                      RAISE EXCEPTION 'poisoned row %', NEW.id;
                    END IF;
                    RETURN NEW;
                  END $$""")
    pg.execute("CREATE TRIGGER reject_poison BEFORE UPDATE ON jobsched.jobs"
               " FOR EACH ROW EXECUTE FUNCTION public.reject_poison()")
    try:
        pid = pg.worker_pid()
        with pg.conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'echo',"
                        " CASE WHEN g = 3 THEN '{\"args\": [], \"poison\": 1}'::jsonb"
                        " ELSE '{\"args\": []}' END FROM generate_series(1, 6) g RETURNING id")
            ids = [r[0] for r in cur.fetchall()]
            cur.execute("COMMIT")
        poisoned = ids[2]
        for job_id in ids:
            if job_id != poisoned:
                pg.wait_state(job_id, "submitted")
        wait_for("the warning", lambda: f"could not record the outcome of job {poisoned}"
                 in pg.server_log())
        assert pg.job(poisoned)["state"] == "claimed"
        assert pg.worker_pid() == pid
        assert f"poisoned row {poisoned}" in pg.status()["last_error"]
        # the worker goes on with new work
        pg.wait_state(submit(pg), "submitted")
    finally:
        pg.execute("DROP TRIGGER reject_poison ON jobsched.jobs")
        pg.execute("DROP FUNCTION public.reject_poison()")


def test_transient_errors_fail_the_job_after_max_attempts(pg, api):
    pg.set_config(max_attempts=3)
    # a 503 to a create may come after the Job was stored: before failing
    # the row, the worker looks the Job up, and fails it only on a 404
    api.fault(mode="status", status=503, methods=["POST"])
    job_id = submit(pg)
    job = pg.wait_state(job_id, "failed", timeout=30)
    assert job["attempts"] == 3
    assert "gave up after 3 attempts" in job["last_error"]
    assert "no Job of it exists" in job["last_error"]
    assert "503" in job["last_error"]
    name = job["k8s_name"]
    lookups = [r for r in api.requests("GET") if r["path"].endswith("/jobs/" + name)]
    assert lookups and lookups[-1]["status"] == 404
    assert api.jobs() == []


def test_sighup_changes_a_setting_live(pg, api):
    pid = pg.worker_pid()
    pg.set_config(namespace="jobsched-other")
    assert pg.status()["namespace"] == "jobsched-other"
    job_id = submit(pg)
    row = pg.wait_state(job_id, "submitted")
    assert row["k8s_namespace"] == "jobsched-other"
    assert api.creates()[0]["path"] == "/apis/batch/v1/namespaces/jobsched-other/jobs"
    assert pg.worker_pid() == pid


def test_disabled_worker_submits_nothing_until_enabled(pg, api):
    pg.set_config(enabled="off")
    job_id = submit(pg)
    # a NOTIFY is a doorbell: ring it and give the worker a full pass
    pg.execute("NOTIFY job_scheduler")
    pg.set_config(max_in_flight=8)
    assert pg.job(job_id)["state"] == "pending"
    assert api.creates() == []
    pg.set_config(enabled="on")
    pg.wait_state(job_id, "submitted")


def test_latch_commits_leave_a_disabled_worker_asleep(pg, api):
    pg.set_config(wake_mode="latch")
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == "latch")
    wakeups = lambda: pg.value("SELECT wakeups FROM jobsched.status")
    before = wakeups()
    ids = [submit(pg) for _ in range(20)]
    for job_id in ids:
        pg.wait_state(job_id, "submitted")
    assert wakeups() - before >= 1, "commits that queue work wake an enabled worker"

    pg.set_config(enabled="off")
    before = wakeups()
    ids = [submit(pg) for _ in range(50)]
    # a reload is a wake-up the worker must act on: once it has, every
    # commit above has either woken it or never will
    pg.set_config(max_in_flight=8)
    assert wakeups() - before <= 2, "50 commits woke a disabled worker"
    assert {pg.job(job_id)["state"] for job_id in ids} == {"pending"}
    pg.set_config(enabled="on")
    for job_id in ids:
        pg.wait_state(job_id, "submitted")


def test_claim_delay_gathers_a_stream_of_commits(pg, api):
    pg.set_config(wake_mode="latch", claim_delay="500ms")
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == "latch")
    before = pg.value("SELECT wakeups FROM jobsched.status")
    # a stream of 300 commits, three every millisecond or so
    pg.execute("""DO $$ BEGIN
                    FOR i IN 1..100 LOOP
                      FOR j IN 1..3 LOOP
                        PERFORM jobsched.submit('echo', '{"args": ["hi"]}');
                        COMMIT;
                      END LOOP;
                      PERFORM pg_sleep(0.001);
                    END LOOP;
                  END $$""")
    ids = [row[0] for row in pg.query("SELECT id FROM jobsched.jobs ORDER BY id")]
    assert len(ids) == 300
    for job_id in ids:
        pg.wait_state(job_id, "submitted")
    # the first commit rings; the rest find the doorbell rung, or come while
    # the worker waits claim_delay, and are claimed together
    assert pg.value("SELECT wakeups FROM jobsched.status") - before <= 10
    assert sorted(int(r["body"]["metadata"]["labels"]["jobsched.io/job-id"])
                  for r in api.creates()) == ids


def test_jobs_that_come_apart_are_claimed_at_once_after_a_stream(pg, api):
    pg.set_config(wake_mode="latch", claim_delay="1s")
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == "latch")
    wakeups = lambda: pg.value("SELECT wakeups FROM jobsched.status")
    # a stream: one job, then 200 more committed hard on its heels
    first = submit(pg)
    pg.execute("SELECT jobsched.submit('echo', '{\"args\": [\"hi\"]}') FROM generate_series(1, 200)")
    # then jobs 20 ms apart, for two seconds: those that come while the
    # worker waits out claim_delay are claimed together, and must not make
    # it wait again; the rest come alone, each claimed on its own wake-up
    before = wakeups()
    apart = []
    for _ in range(100):
        apart.append(submit(pg))
        time.sleep(0.02)
    for job_id in [first] + apart:
        pg.wait_state(job_id, "submitted")
    assert pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 301
    woken = wakeups() - before
    assert woken <= 75, "the stream did not make the worker wait claim_delay"
    assert woken >= 25, "jobs 20 ms apart kept waiting for claim_delay"


@pytest.mark.parametrize("mode", ["notify", "latch"])
def test_each_wake_mode_wakes_the_worker(pg, api, mode):
    pg.set_config(wake_mode=mode)
    assert pg.status()["wake_mode"] == mode
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == mode)
    # poll_interval is an hour: only the wake-up can get these submitted
    for _ in range(3):
        pg.wait_state(submit(pg), "submitted", timeout=10)


def test_manual_notify_wakes_the_worker(pg, api):
    pg.set_config(wake_mode="latch")
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == "latch")
    # a row the trigger does not see: the owner inserting it with a trigger disabled
    pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER jobs_wake_worker_on_insert")
    try:
        job_id = submit(pg)
    finally:
        pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER jobs_wake_worker_on_insert")
    pg.execute("NOTIFY job_scheduler")
    pg.wait_state(job_id, "submitted")


def test_the_worker_never_wakes_itself(pg, api):
    """The worker's own updates never ring the doorbell; a user's updates
    that need the worker do.  In notify mode a ring is a NOTIFY on the
    channel, which a listening session receives with the sender's pid.  The
    worker's updates here: claimed rows put back to pending after failed
    creates (the wake-up trigger's WHEN lets that through: only the trigger
    function's check that it runs in the worker keeps it quiet), submitted,
    running, succeeded, failed, cancelled.  (sql/status.sql shows which
    updates reach the trigger function at all.)"""
    assert pg.status()["wake_mode"] == "notify"
    worker = pg.worker_pid()
    me = pg.value("SELECT pg_backend_pid()")
    listener = pg.connect()
    try:
        listener.cursor().execute("LISTEN job_scheduler")

        # three failed creates: claimed -> pending, three times, by the worker
        api.fault(mode="429", retry_after=0, count=3, methods=["POST"])
        row = pg.wait_state(submit(pg), "submitted", timeout=30)     # ring 1 (insert)
        assert [r["status"] for r in api.creates()].count(429) == 3
        assert row["attempts"] >= 4
        api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/status",
                 {"phase": "running"})
        pg.wait_state(row["id"], "running")
        api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/status",
                 {"phase": "succeeded"})
        pg.wait_state(row["id"], "succeeded")
        assert pg.value("SELECT jobsched.retry(%s)", (row["id"],)) == 1   # ring 2
        pg.wait_state(row["id"], "submitted")
        assert pg.value("SELECT jobsched.cancel(%s)", (row["id"],)) == "cancelling"  # ring 3
        pg.wait_state(row["id"], "cancelled")
        api.fault(mode="status", status=422, count=1, methods=["POST"])
        pg.wait_state(submit(pg), "failed")                             # ring 4 (insert)

        # notifications arrive in commit order: once this one is in, every
        # earlier one is
        pg.execute("NOTIFY job_scheduler, 'end of test'")
        notes = []

        def the_end():
            listener.poll()
            notes.extend(listener.notifies)
            listener.notifies.clear()
            return any(n.payload == "end of test" for n in notes)
        wait_for("the last notification", the_end)
    finally:
        listener.close()
    assert pg.worker_pid() == worker
    senders = [n.pid for n in notes if n.channel == "job_scheduler"]
    assert worker not in senders, "the worker woke itself"
    assert senders == [me] * 5, "a user's update that needs the worker did not ring"


def test_notify_queue_stays_drained(pg, api):
    pg.set_config(wake_mode="notify", enabled="off")
    payload = "x" * 7000
    with pg.conn.cursor() as cur:
        for _ in range(3000):
            cur.execute("SELECT pg_notify('job_scheduler', %s)", (payload,))
    for _ in range(200):
        submit(pg)
    # 21 MB went through the queue; the worker is its only listener
    wait_for("the notification queue to be drained",
             lambda: pg.value("SELECT pg_notification_queue_usage()") < 0.0002, timeout=20)
    assert pg.status()["listening"] is True


def test_kill_9_mid_batch_loses_and_duplicates_nothing(pg, api):
    api.call("PUT", "/latency", {"ms": 20})
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params)"
                    " SELECT 'echo', '{\"args\": []}' FROM generate_series(1, 300)")
    wait_for("some jobs submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") >= 20)
    pid = pg.worker_pid()
    os.kill(pid, signal.SIGKILL)
    # the postmaster restarts every backend after a crash: reconnect
    def reconnected():
        # until the postmaster has reset every backend, a connection may
        # still see the old worker in shared memory
        try:
            pg.conn = pg.connect()
            return pg.value("SELECT worker_pid FROM jobsched.status"
                            " WHERE listening AND worker_pid <> %s", (pid,))
        except psycopg2.Error:
            return None
    new_pid = wait_for("the worker to come back", reconnected, timeout=60, interval=0.2)
    assert new_pid != pid
    wait_for("all 300 submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 300,
             timeout=60)
    stored = api.jobs()
    assert len(stored) == 300
    assert len({j["metadata"]["name"] for j in stored}) == 300
    uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in stored}
    for job in pg.jobs():
        assert uids[job["k8s_name"]] == job["k8s_uid"]


def test_sigterm_stops_the_worker_within_a_second_mid_request(pg, api):
    api.fault(mode="hang", methods=["POST"])
    job_id = submit(pg)
    wait_for("a request in flight", lambda: pg.status()["in_flight"] == 1)
    pid = pg.worker_pid()
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    wait_for("the worker to exit", gone, timeout=1.0, interval=0.01)
    assert time.monotonic() - started < 1.0
    api.fault(mode="none")
    pg.wait_worker(timeout=30)
    pg.wait_state(job_id, "submitted", timeout=30)
    assert len(api.jobs()) == 1


@pytest.mark.parametrize("mode", ["notify", "latch"])
def test_the_extension_dropped_and_created_again(pg, api, mode):
    """The worker outlives its extension quietly and takes up a new one at
    once.  It remembers that the extension is installed: dropping the queue
    table must make it look again, though the schema stays behind."""
    pg.set_config(wake_mode=mode)
    wait_for("this session to see the mode",
             lambda: pg.value("SHOW jobsched.wake_mode") == mode)
    errors_before = pg.status()["last_error_at"]
    pid = pg.worker_pid()
    pg.execute("DROP EXTENSION jobsched")
    try:
        assert pg.value("SELECT count(*) FROM pg_namespace WHERE nspname = 'jobsched'") == 1
        # ring and wait for the worker to look: the first look finds the
        # queue gone, the second looks for the extension as at startup
        for _ in range(2):
            since = pg.value("SELECT clock_timestamp()")
            pg.execute("NOTIFY job_scheduler")
            wait_for("the worker to look for the queue", lambda: pg.value(
                "SELECT state_change > %s FROM pg_stat_activity WHERE pid = %s",
                (since, pid)))
    finally:
        pg.execute("CREATE EXTENSION jobsched")
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('echo', %s)",
               (json.dumps(JOB_TEMPLATE),))
    # poll_interval is an hour: the job's own wake-up must get it submitted
    pg.wait_state(submit(pg), "submitted", timeout=10)
    assert pg.worker_pid() == pid
    assert pg.status()["last_error_at"] == errors_before, pg.status()["last_error"]


def test_status_answers_while_the_api_is_down(pg, api):
    api.fault(mode="drop")
    job_id = submit(pg)
    wait_for("a failed attempt", lambda: pg.job(job_id)["attempts"] >= 1)
    st = pg.status()
    assert st["worker_pid"] is not None
    assert st["pending"] == 1
    assert st["last_error"] is not None and st["last_error_at"] is not None
    api.fault(mode="none")
    pg.wait_state(job_id, "submitted", timeout=30)


def plant_token(api, token):
    """Put token in the worker's token file; return what the worker will
    read there: the value a leak would show."""
    api.write_token(token)
    with open(api.token_file) as f:
        return f.read().strip()


def test_the_token_never_leaks(pg, api):
    """Tokens the worker reads from its token file stay out of everything it
    writes: the PostgreSQL server log (its DEBUG1 messages too), every row's
    last_error, jobsched.status, pg_stat_activity, and what it sends the API
    outside the Authorization header (paths, queries, bodies: the test server
    keeps those, never headers).  First the worker is made to use its token
    and report on it every way it can: a token the cluster does not know
    (401), one it forbids (403), a token file it refuses, then the right one.
    A trace is a whole token or its first or last 20 characters, so a message
    that cuts a token short or quotes a part of it is caught too."""
    started = pg.value("SELECT now()")
    pg.execute("ALTER SYSTEM SET log_min_messages = 'debug1'")
    pg.execute("SELECT pg_reload_conf()")
    right = "leakcheck-right-" + os.urandom(24).hex()
    unknown = "leakcheck-unknown-" + os.urandom(24).hex()
    first_line = "leakcheck-line-" + os.urandom(24).hex()
    planted = []
    try:
        # a token the cluster does not know: 401
        api.call("PUT", "/tokens", {"tokens": [right], "forbidden": []})
        planted.append(plant_token(api, unknown))
        job_id = submit(pg)
        wait_for("a 401", lambda: (pg.job(job_id)["last_error"] or "").startswith(
            "Kubernetes API answered 401"))

        # the cluster's token, without the rights: 403
        api.call("PUT", "/tokens", {"tokens": [right], "forbidden": [right]})
        planted.append(plant_token(api, right))
        wait_for("a 403", lambda: (pg.job(job_id)["last_error"] or "").startswith(
            "Kubernetes API answered 403"), timeout=30)

        # a token file the worker refuses (two lines), read after the next
        # 401: it warns, naming the file, and sends no token
        warned = pg.server_log().count("does not hold a usable token")
        api.write_token(first_line + "\n" + right)
        with open(api.token_file) as f:
            planted.extend(line.strip() for line in f if line.strip())
        api.call("PUT", "/tokens", {"tokens": [TOKEN], "forbidden": []})
        wait_for("the warning about the token file", lambda: pg.server_log().count(
            "does not hold a usable token") > warned, timeout=30)

        # the right token again: the job goes
        api.call("PUT", "/tokens", {"tokens": [right], "forbidden": []})
        planted.append(plant_token(api, right))
        pg.wait_state(job_id, "submitted", timeout=30)
    finally:
        pg.execute("ALTER SYSTEM RESET log_min_messages")
        pg.execute("SELECT pg_reload_conf()")
    assert set(planted) == {unknown, right, first_line}
    assert pg.value("SELECT last_error_at > %s FROM jobsched.status", (started,)), \
        "the status view did not report this test's failures"

    places = {
        "the server log": pg.server_log(),
        "a job's last_error": "\n".join(
            row[0] or "" for row in pg.query("SELECT last_error FROM jobsched.jobs")),
        "jobsched.status": json.dumps(pg.status(), default=str),
        "pg_stat_activity": "\n".join(row[0] for row in pg.query(
            "SELECT concat_ws(' ', application_name, query) FROM pg_stat_activity")),
        "a request's path, query or body": json.dumps(api.requests()),
    }
    for token in planted:
        for trace in (token, token[:20], token[-20:]):
            for place, text in places.items():
                assert trace not in text, f"{place} holds {trace!r}"
