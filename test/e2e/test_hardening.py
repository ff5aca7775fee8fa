"""What makes the worker safe to run in a shared production database: it
recovers from outages at once and pauses only as long as it must, does not
storm a failing API, never waits for a lock a user holds, takes up changed
settings at once, holds a bounded amount of memory, and stores only text
fit to store."""
import datetime
import json
import os
import re
import time

from conftest import drive, submit, submitted
from harness import NAMESPACE, wait_for


def log_from(pg, start):
    return pg.server_log()[start:]


def watches(api):
    return [r for r in api.requests("GET") if r["query"].get("watch") in ("1", "true")]


def lists(api):
    return [r for r in api.requests("GET") if r["path"].endswith("/jobs")
            and "watch" not in r["query"]]


def insert_jobs(pg, n, params='{"args": []}'):
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params)"
                    " SELECT 'echo', %s::jsonb FROM generate_series(1, %s)", (params, n))


# ---- outages ----------------------------------------------------------------

def test_one_outage_is_one_backoff_step(pg, api):
    """Eight creates in flight fail together: one step of backoff, not eight."""
    pg.set_config(max_in_flight=8, backoff_base="4s", backoff_max="10min")
    api.fault(mode="hang", close_after_ms=300, methods=["POST"])
    start = len(pg.server_log())
    insert_jobs(pg, 8)
    wait_for("eight failed creates", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE attempts >= 1 AND state = 'pending'") == 8)
    paused = pg.value("SELECT paused_until - now() FROM jobsched.status")
    assert paused is not None and paused <= datetime.timedelta(seconds=4), paused
    pauses = re.findall(r"pausing Job submissions for (\d+) ms", log_from(pg, start))
    assert len(pauses) == 1 and int(pauses[0]) <= 4000, pauses
    api.fault(mode="none")


def test_the_queue_flows_again_within_30_s_of_the_api_answering(pg, api):
    """With the default backoff, however long the outage: every request
    fails for 12 s (watches and lists too), then the API answers."""
    pg.set_config(backoff_base="1s", backoff_max="5min", request_timeout="30s")
    api.fault(mode="hang", close_after_ms=1000)
    ids = [submit(pg) for _ in range(5)]
    time.sleep(12)
    assert {pg.job(i)["state"] for i in ids} == {"pending"}
    assert pg.status()["paused_until"] is not None
    api.fault(mode="none")
    answered = time.monotonic()
    for job_id in ids:
        pg.wait_state(job_id, "submitted", timeout=40)
    recovered = time.monotonic() - answered
    assert recovered < 30, f"the queue flowed again only {recovered:.1f} s after the API answered"
    names = [r["body"]["metadata"]["name"] for r in api.creates() if r["status"] == 201]
    assert len(names) == len(set(names)) == 5


def test_retry_after_is_capped_by_backoff_max(pg, api):
    pg.set_config(backoff_max="2s", max_in_flight=1)
    api.fault(mode="429", retry_after=999999, count=1, methods=["POST"])
    job_id = submit(pg)
    wait_for("the 429", lambda: pg.job(job_id)["attempts"] >= 1)
    paused = pg.value("SELECT paused_until - now() FROM jobsched.status")
    assert paused is not None and paused <= datetime.timedelta(seconds=2), paused
    pg.wait_state(job_id, "submitted", timeout=10)
    posts = api.creates()
    assert [r["status"] for r in posts] == [429, 201]
    gap = posts[1]["ts"] - (posts[0]["ts"] + posts[0]["duration_ms"])
    assert 900 <= gap <= 4000, gap


def test_a_reload_clears_a_pause(pg, api):
    pg.set_config(backoff_max="1h")
    api.fault(mode="429", retry_after=3600, count=1, methods=["POST"])
    job_id = submit(pg)
    wait_for("a long pause", lambda: pg.value(
        "SELECT paused_until > now() + interval '30 minutes' FROM jobsched.status"))
    start = len(pg.server_log())
    pg.set_config(max_in_flight=8)
    pg.wait_state(job_id, "submitted", timeout=10)
    assert "the settings were reloaded; resuming Job submissions" in log_from(pg, start)
    assert pg.status()["paused_until"] is None


# ---- storms -----------------------------------------------------------------

def last_seq(api):
    return max((r["seq"] for r in api.requests()), default=0)


def assert_backs_off(requests):
    """Requests the worker repeats after failures: never a storm (the first
    delay is at least backoff_base / 2, 50 ms here), and growing towards
    backoff_max (1 s here; the fifth delay is 500 ms to 1 s)."""
    gaps = [round(b["ts"] - a["ts"]) for a, b in zip(requests, requests[1:])]
    assert min(gaps) >= 40, f"delays between attempts, ms: {gaps}"
    assert gaps[4] >= 400, f"delays between attempts, ms: {gaps}"


def test_a_watch_the_server_ends_at_once_backs_off(pg, api):
    submitted(pg)
    wait_for("a watch", lambda: watches(api))
    api.call("PUT", "/watch", {"end_at_once": True})
    since = last_seq(api)
    api.call("POST", "/watch/close")
    storm = wait_for("six watches the server ends at once", lambda: (
        lambda w: w if len(w) >= 6 else None)([r for r in watches(api) if r["seq"] > since]))
    api.call("PUT", "/watch", {"end_at_once": False})
    assert_backs_off(storm[:6])


def test_a_failing_list_backs_off(pg, api):
    """The first list of a namespace the worker starts to follow fails, and
    fails again: it backs off, and syncs once the list works."""
    other = "jobsched-other"
    pg.execute("UPDATE jobsched.job_types SET namespace = %s", (other,))
    api.fault(mode="status", status=500, methods=["GET"], watch=False,
              path_prefix=f"/apis/batch/v1/namespaces/{other}/jobs")
    row = pg.wait_state(submit(pg), "submitted")
    failing = wait_for("six failing lists", lambda: (
        lambda found: found if len(found) >= 6 else None)(
            [r for r in lists(api) if r["path"].startswith(f"/apis/batch/v1/namespaces/{other}/")]))
    api.fault(mode="none")
    assert_backs_off(failing[:6])
    assert all(r["status"] == 500 for r in failing[:6])
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=10)


# ---- locks users hold ---------------------------------------------------------

def worker_waits_for_a_lock(pg, pid):
    return pg.value("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    (pid,))


def test_a_row_a_user_holds_does_not_stop_the_worker(pg, api):
    held = submitted(pg)
    pid = pg.worker_pid()
    user = pg.connect()
    user.autocommit = False
    try:
        with user.cursor() as cur:
            # BEGIN; SELECT jobsched.cancel(42); ... left open
            cur.execute("SELECT jobsched.cancel(%s)", (held["id"],))
        other = submitted(pg)
        drive(api, other, phase="running")
        pg.wait_state(other["id"], "running", timeout=5)
        drive(api, other, phase="succeeded")
        pg.wait_state(other["id"], "succeeded", timeout=5)
        assert not worker_waits_for_a_lock(pg, pid)
        assert pg.job(held["id"])["state"] == "submitted"
        user.commit()
    finally:
        user.close()
    done = pg.wait_state(held["id"], "cancelled", timeout=10)
    assert done["k8s_deleted_at"] is not None


def test_a_table_a_user_locks_does_not_stop_the_worker(pg, api):
    waiting = submit(pg)
    pg.wait_state(waiting, "submitted")
    pid = pg.worker_pid()
    user = pg.connect()
    user.autocommit = False
    try:
        with user.cursor() as cur:
            cur.execute("LOCK TABLE jobsched.jobs IN EXCLUSIVE MODE")
        pg.execute("NOTIFY job_scheduler")
        # a worker in a lock queue could not reload its settings
        pg.set_config(max_in_flight=7)
        pg.set_config(max_in_flight=6)
        assert not worker_waits_for_a_lock(pg, pid)
        assert pg.worker_pid() == pid
        user.commit()
    finally:
        user.close()
    pg.wait_state(submit(pg), "submitted", timeout=10)


# ---- settings -----------------------------------------------------------------

def test_a_lowered_poll_interval_takes_effect_at_once(pg, api):
    pg.set_config(poll_interval="1h")
    pg.set_config(poll_interval="1s")
    # a row no trigger announces: only the poll can find it
    pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER jobs_wake_worker_on_insert")
    try:
        job_id = submit(pg)
    finally:
        pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER jobs_wake_worker_on_insert")
    pg.wait_state(job_id, "submitted", timeout=5)


def test_a_lowered_sync_interval_takes_effect_at_once(pg, api):
    pg.set_config(sync_interval="1h")
    submitted(pg)
    wait_for("a watch", lambda: watches(api))
    pg.set_config(sync_interval="1s")
    since = last_seq(api)
    # with 1h still in force, no watch would end for an hour
    wait_for("two watches renewed after sync_interval (1 s)",
             lambda: len([r for r in watches(api) if r["seq"] > since]) >= 2, timeout=5)


def test_a_small_cleanup_age_draws_a_warning(pg, api):
    start = len(pg.server_log())
    pg.set_config(cleanup_age="60s")
    log = log_from(pg, start)
    assert "WARNING:  jobsched.cleanup_age is 60 s: cleanup deletes Jobs still running" in log
    assert "jobsched.cleanup_spare_active" in log
    start = len(pg.server_log())
    pg.set_config(cleanup_spare_active="on")
    assert "cleanup_age is" not in log_from(pg, start)


def test_tls_that_cannot_be_verified_keeps_jobs_pending(pg, api):
    """A wrong CA is for an operator to fix, like 401 and 403."""
    wrong_ca = os.path.join(api.certs, "client.crt")
    pg.set_config(kube_ca_file=wrong_ca, max_attempts=1)
    job_id = submit(pg)
    job = wait_for("a TLS failure", lambda: (lambda j: j if j["attempts"] >= 1 and
                                             j["last_error"] else None)(pg.job(job_id)))
    # libcurl's own words follow; every version here names the certificate
    assert re.match(r"could not reach the Kubernetes API at https://127\.0\.0\.1:\d+: .*certificate",
                    job["last_error"]), job["last_error"]
    assert job["state"] == "pending" and job["retryable_failures"] == 0
    assert api.creates() == []
    pg.set_config(kube_ca_file=None)
    pg.wait_state(job_id, "submitted", timeout=15)


# ---- memory -------------------------------------------------------------------

def reset_peak_rss(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def test_a_claim_holds_a_bounded_number_of_bytes(pg, api):
    """40 jobs of 1 MB params each: a claim takes 4 MB of them, not all 40
    (which took the worker's peak up by 77 MB here, against 21 MB)."""
    pg.set_config(batch_max_bytes="4MB", enabled="off", max_in_flight=1)
    insert_jobs(pg, 40, json.dumps({"args": ["x"], "blob": "b" * 1000000}))
    pid = pg.worker_pid()
    reset_peak_rss(pid)
    before = peak_rss_kb(pid)
    pg.set_config(enabled="on")
    wait_for("40 jobs submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 40, timeout=60)
    grown_mb = (peak_rss_kb(pid) - before) / 1024
    assert grown_mb < 40, f"the worker's peak memory grew by {grown_mb:.0f} MB"


def big_foreign_job(pg, api, name, mb):
    """A Job that carries our labels (anyone may put them on), but no proof,
    and a few MB of annotations."""
    api.call("POST", "/objects", {"kind": "Job", "object": {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"jobsched.io/instance": pg.status()["instance"],
                                "jobsched.io/job-id": "1"},
                     "annotations": {"padding": "p" * (mb * 1024 * 1024)}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "x", "image": "busybox"}]}}}}})


def test_jobs_too_big_for_a_page_stop_neither_sync_nor_cleanup(pg, api):
    for i in range(4):
        big_foreign_job(pg, api, f"big-{i}", 2)
    row = submitted(pg)
    # the watch starts from a list, whose pages now overflow the 8 MB cap
    api.call("POST", "/watch/compact")
    api.call("POST", "/watch/close")
    drive(api, row, phase="succeeded")
    pg.wait_state(row["id"], "succeeded", timeout=30)
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_interval="1s")
    wait_for("a cleanup", lambda: pg.value(
        "SELECT last_cleanup_at > coalesce(%s, '-infinity') FROM jobsched.status", (before,)),
        timeout=30)
    # not ours: no proof, so neither cleaned up nor taken for a row's Job
    assert len([j for j in api.jobs() if j["metadata"]["name"].startswith("big-")]) == 4
    assert pg.job(1) is None or pg.job(1)["k8s_name"] != "big-0"


# ---- what is stored -------------------------------------------------------------

def test_text_from_the_api_is_stored_whole_characters_only(pg, api):
    long = "é" * 3000
    api.fault(mode="status", status=422, message="invalid: " + long, methods=["POST"])
    job_id = submit(pg)
    job = pg.wait_state(job_id, "failed")
    stored = job["last_error"]
    assert "422" in stored and stored.endswith("é")
    assert len(stored.encode()) <= 4096
    assert pg.value("SELECT last_error = convert_from(convert_to(last_error, 'UTF8'), 'UTF8')"
                    " FROM jobsched.jobs WHERE id = %s", (job_id,))
    # the status view, which everyone reads, does not repeat it
    assert "é" not in (pg.status()["last_error"] or "")


def test_the_token_never_goes_over_plain_http(pg, api):
    """http:// is allowed for a proxy on this machine (kubectl proxy), which
    authenticates itself: the worker sends it no token."""
    import http.server
    import threading

    seen = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.command, self.headers.get("Authorization")))
            self.send_response(404)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pg.set_config(kube_api_url=f"http://127.0.0.1:{server.server_address[1]}")
        job_id = submit(pg)
        wait_for("requests to the proxy", lambda: any(m == "POST" for m, _ in seen))
        assert seen and all(auth is None for _, auth in seen), seen
        # the proxy answered 404 (no namespace): pending, for an operator to fix
        wait_for("the 404 recorded", lambda: (lambda j: j["state"] == "pending" and
                                               j["attempts"] >= 1)(pg.job(job_id)))
    finally:
        pg.set_config(kube_api_url=None)
        server.shutdown()
