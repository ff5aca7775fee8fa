"""jobsched benchmarks.  Prints figures; asserts nothing about speed.

1. commit -> POST latency: jobs inserted one per transaction, a few ms apart;
   from the server's answer to the INSERT to the worker's create, both as
   the kernel timestamped the bytes arriving on loopback (see wire.py).
2. sustained jobs/s: 10,000 jobs inserted in one transaction, against the API
   test server (which validates every body) and against a fast API (nginx
   answering 201 with a canned Job), counting that every row was submitted
   and exactly one create was sent per row.
3. pgbench: one-row INSERTs into jobsched.jobs, 8 clients, with no trigger,
   with the NOTIFY wake-up and with the latch wake-up: with the worker
   disabled (the wake-up's own cost) and with the worker sending every row
   to the fast API (the whole system).
4. the worker's memory (PSS).
5. idle: what the worker costs with 100,000 live Jobs and nothing to do, a
   relist of them, and commit -> POST meanwhile.
6. outage: how long after the API answers again, following a 40 s hang of
   every request, the queue flows again (default backoff settings).
7. notify: what 20,000 NOTIFYs on the worker's channel from a role without
   USAGE on the schema cost the worker.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from harness import PG_BIN, servers, wait_for  # noqa: E402
from wire import PgWire, Tap  # noqa: E402

NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$msec $request_method $status $request_time $connection';
    access_log {dir}/access.log bench buffer=64k;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs}/server.crt;
        ssl_certificate_key {certs}/server.key;
        location / {{
            default_type application/json;
            return 201 '{{"kind":"Job","apiVersion":"batch/v1","metadata":{{"uid":"5f8b6a2e-0000-4000-8000-000000000000"}}}}';
        }}
    }}
}}
"""


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def memory_kb(pid):
    """PSS and private (USS) memory of a process, from smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Pss"], fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def reset(pg):
    pg.execute("TRUNCATE jobsched.jobs")


def bench_latency(pg, api, n, warmup=50, keep_rows=False):
    """Jobs inserted one per transaction, 4 ms apart.  Returns the commit ->
    POST latencies in ms: from the server's answer to the INSERT reaching
    the client's socket to the worker's create reaching the API's, both as
    the kernel timestamped the bytes (see wire.py), so neither end depends
    on when the client or the API test server next gets a core.  keep_rows:
    measure with the table as it is (no warm-up, no emptying)."""
    tap = Tap(api.port)
    pg.set_config(kube_api_url=f"https://127.0.0.1:{tap.port}")
    client = PgWire("127.0.0.1", pg.port, "postgres", pg.conn.info.dbname)
    runs = (("the measured jobs", n),) if keep_rows else \
        (("the warm-up", warmup), ("the measured jobs", n))
    try:
        for what, count in runs:
            if not keep_rows:
                reset(pg)
            api.call("DELETE", "/requests")
            answered = {}
            for _ in range(count):
                values, at = client.query(
                    "INSERT INTO jobsched.jobs (type, params) VALUES ('bench', '{}') RETURNING id")
                answered[int(values[0])] = at
                time.sleep(0.004)
            wait_for(what, lambda: len(api.requests("POST")) >= count, timeout=120)
        return [tap.sent_before(r["ts"]) -
                answered[int(r["body"]["metadata"]["labels"]["jobsched.io/job-id"])]
                for r in api.requests("POST")]
    finally:
        client.close()
        pg.set_config(kube_api_url=None)
        tap.stop()


def bench_throughput(pg, n, count_creates):
    reset(pg)
    pg.execute("SELECT pg_stat_reset_shared('bgwriter')")
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
                    " FROM generate_series(1, %s)", (n,))
    pid = pg.worker_pid()
    cpu_before = cpu_seconds(pid)
    start = time.monotonic()
    wait_for(f"{n} jobs submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == n,
             timeout=600, interval=0.005)
    elapsed = time.monotonic() - start
    cpu_per_job_us = (cpu_seconds(pid) - cpu_before) / n * 1e6
    creates = count_creates()
    return n / elapsed, elapsed, creates, cpu_per_job_us


def pgbench(pg, workdir, seconds, clients):
    script = os.path.join(workdir, "insert.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO jobsched.jobs (type, params) VALUES ('bench', '{}');\n")
    out = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-h", pg.sockdir, "-p", str(pg.port),
                          "-U", "postgres", "-n", "-f", script, "-c", str(clients), "-j", "2",
                          "-T", str(seconds), pg.conn.info.dbname],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    return float(m.group(1))


def bench_status_latency(pg, api, n):
    """Time from the API recording a Job's completion to its row reading succeeded.
    A bench-only trigger stamps the row's change with clock_timestamp()."""
    reset(pg)
    pg.execute("CREATE TABLE IF NOT EXISTS bench_changes (id bigint, at timestamptz)")
    pg.execute("TRUNCATE bench_changes")
    pg.execute("""CREATE OR REPLACE FUNCTION bench_stamp() RETURNS trigger LANGUAGE plpgsql AS
                  $$BEGIN INSERT INTO public.bench_changes VALUES (NEW.id, clock_timestamp()); RETURN NULL; END$$""")
    pg.execute("DROP TRIGGER IF EXISTS bench_stamp ON jobsched.jobs")
    pg.execute("CREATE TRIGGER bench_stamp AFTER UPDATE OF state ON jobsched.jobs FOR EACH ROW"
               " WHEN (NEW.state = 'succeeded') EXECUTE FUNCTION bench_stamp()")
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
                    " FROM generate_series(1, %s)", (n,))
    wait_for("submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == n, timeout=60)
    ns = pg.status()["namespace"]
    sent = {}
    for job_id, name in pg.query("SELECT id, k8s_name FROM jobsched.jobs ORDER BY id"):
        sent[job_id] = time.time() * 1000.0
        api.call("POST", f"/jobs/{ns}/{name}/status", {"phase": "succeeded"})
        time.sleep(0.005)
    wait_for("succeeded", lambda: pg.value("SELECT count(*) FROM bench_changes") == n, timeout=60)
    rows = pg.query("SELECT id, extract(epoch FROM at) * 1000 FROM bench_changes")
    pg.execute("DROP TRIGGER bench_stamp ON jobsched.jobs")
    return [float(at) - sent[job_id] for job_id, at in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-jobs", type=int, default=500)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--pgbench-seconds", type=int, default=6)
    ap.add_argument("--pgbench-rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--big-table-rows", type=int, default=1000000)
    ap.add_argument("--live-jobs", type=int, default=100000)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--parts", default="latency,status,throughput,bigtable,pgbench,idle,outage,notify",
                    help="comma-separated subset of the default")
    args = ap.parse_args()

    settings = {"poll_interval": "1s", "wake_mode": "latch", "max_in_flight": "16",
                "batch_size": "500"}
    with servers("jobsched-bench-", settings=settings, fsync=True, tcp=True) as (api, pg):
        started = []
        try:
            run(args, api, pg, api.workdir, started)
        finally:
            for proc in started:
                proc.terminate()


def run(args, api, pg, workdir, started):
    api.call("PUT", "/log", {"bodies": True})
    template = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]}}}}
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('bench', %s)",
               (json.dumps(template),))
    print(f"machine: {os.cpu_count()} cores; PostgreSQL {pg.value('SHOW server_version')}; "
          f"synchronous_commit on, fsync on")

    parts = set(args.parts.split(","))
    if "latency" in parts:
        bench_latency_modes(args, api, pg)
    if "status" in parts:
        print("\n== status change -> row (a Job completes in the API; the watch brings it)")
        lat = bench_status_latency(pg, api, 200)
        print(f"  200 Jobs: p50 {pct(lat, 50):.2f} ms   p90 {pct(lat, 90):.2f} ms   "
              f"p99 {pct(lat, 99):.2f} ms   max {max(lat):.2f} ms")
        api.call("DELETE", "/state")
    fast_api = FastApi(api, pg, workdir, started) if parts & {"throughput", "bigtable", "pgbench"} else None
    if "throughput" in parts:
        bench_throughputs(args, api, pg, fast_api)
    if "bigtable" in parts and args.big_table_rows:
        bench_big_table(args, api, pg, fast_api)
    if "pgbench" in parts:
        bench_pgbench(args, pg, workdir, fast_api)
    if "idle" in parts:
        bench_idle(args, api, pg)
    if "outage" in parts:
        bench_outage(api, pg)
    if "notify" in parts:
        bench_notify(pg)


def bench_latency_modes(args, api, pg):
    print(f"\n== commit -> POST latency ({args.latency_jobs} jobs, one per transaction, 4 ms apart)")
    for mode in ("latch", "notify"):
        pg.set_config(wake_mode=mode)
        lat = bench_latency(pg, api, args.latency_jobs)
        print(f"  wake_mode={mode:6}  p50 {pct(lat, 50):.2f} ms   p90 {pct(lat, 90):.2f} ms   "
              f"p99 {pct(lat, 99):.2f} ms   max {max(lat):.2f} ms   create sent before the "
              f"answer: {sum(1 for x in lat if x < 0) * 100 / len(lat):.0f} %")
    print("  (from the server's answer to the INSERT to the worker's create, as the kernel\n"
          "   saw each arrive on loopback; the worker, woken at commit, may send the create\n"
          "   before the committing backend has sent its answer)")
    api.call("DELETE", "/state")


class FastApi:
    """nginx answering every request with 201 and a canned Job, over TLS with
    the test CA: the fast Kubernetes API that throughput is measured against.
    It logs each request, so creates can be counted."""

    def __init__(self, api, pg, workdir, started):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir)
        self.port = pg.port + 1
        self.url = f"https://127.0.0.1:{self.port}"
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=self.port, certs=api.certs))
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf, "-g", "daemon off;"],
                                     stderr=subprocess.DEVNULL)
        started.append(self.proc)
        time.sleep(0.5)

    def posts(self):
        subprocess.run(["kill", "-USR1", str(self.proc.pid)])  # reopen = flush the log buffer
        time.sleep(0.5)
        with open(os.path.join(self.dir, "access.log")) as f:
            return sum(1 for line in f if " POST " in line)


def bench_throughputs(args, api, pg, fast_api):
    print(f"\n== sustained throughput ({args.jobs} jobs inserted in one transaction)")
    api.call("PUT", "/log", {"bodies": False})
    rate, elapsed, creates, cpu = bench_throughput(pg, args.jobs, lambda: len(api.requests("POST")))
    print(f"  API test server (validates every body): {rate:,.0f} jobs/s "
          f"({elapsed:.2f} s, worker {cpu:.0f} us of CPU a job); creates sent {creates}, "
          f"rows submitted {args.jobs}")
    api.call("DELETE", "/state")

    pg.set_config(kube_api_url=fast_api.url)
    for batch in (50, 500, 5000):
        pg.set_config(batch_size=batch)
        before = fast_api.posts()
        rate, elapsed, creates, cpu = bench_throughput(pg, args.jobs, fast_api.posts)
        sent = creates - before
        print(f"  fast API (nginx), batch_size {batch:5}: {rate:,.0f} jobs/s ({elapsed:.2f} s, "
              f"worker {cpu:.0f} us of CPU a job); "
              f"creates sent {sent}, rows submitted {args.jobs}, "
              f"lost {max(args.jobs - sent, 0)}, duplicated {max(sent - args.jobs, 0)}")
    pg.set_config(kube_api_url=None, batch_size=None)
    pid = pg.worker_pid()
    # an idle worker gives back what a burst needed once it has found no
    # jobs for 2 s (dispatch.c); this is its size when idle
    time.sleep(3)
    pss, private = memory_kb(pid)
    print(f"\n== worker memory after the runs above, idle for 3 s: PSS {pss / 1024:.1f} MB, "
          f"private {private / 1024:.1f} MB (the rest of PSS is its share of shared buffers "
          f"and libraries)")


def bench_big_table(args, api, pg, fast_api):
    print(f"\n== with {args.big_table_rows:,} finished rows in jobsched.jobs")
    pg.set_config(enabled="off", batch_size=None)
    reset(pg)
    pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER USER")
    pg.execute("INSERT INTO jobsched.jobs (type, params, state, finished_at)"
               " SELECT 'bench', '{}', 'succeeded', now() FROM generate_series(1, %s)",
               (args.big_table_rows,))
    pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
    pg.execute("VACUUM ANALYZE jobsched.jobs")
    pg.set_config(enabled="on", wake_mode="latch", kube_api_url=fast_api.url)
    keep = pg.value("SELECT count(*) FROM jobsched.jobs")
    start = time.monotonic()
    pg.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
               " FROM generate_series(1, 10000)")
    wait_for("10,000 submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 10000, timeout=300,
        interval=0.005)
    elapsed = time.monotonic() - start
    plan = "\n    ".join(r[0] for r in pg.query(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT id FROM jobsched.jobs"
        " WHERE state = 'pending' ORDER BY priority DESC, id LIMIT 500 FOR UPDATE SKIP LOCKED"))
    print(f"  {keep:,} rows: 10,000 new jobs submitted at {10000 / elapsed:,.0f} jobs/s")
    print(f"  the claim's scan:\n    {plan}")
    reset(pg)
    pg.set_config(kube_api_url=None)
    api.call("DELETE", "/state")


def bench_idle(args, api, pg):
    """The worker with many live Jobs and nothing to do: its steady cost
    (watches renewed every sync_interval, bookmarks, the periodic scans),
    what one relist of all of them costs, and commit -> POST meanwhile."""
    n = args.live_jobs
    print(f"\n== idle with {n:,} live Jobs (default poll_interval and sync_interval)")
    reset(pg)
    api.call("DELETE", "/state")
    api.call("PUT", "/log", {"bodies": False, "max_entries": 1000})
    pg.set_config(poll_interval=None, kube_api_url=None, batch_size=None)
    start = time.monotonic()
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
                    " FROM generate_series(1, %s)", (n,))
    wait_for(f"{n:,} jobs submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == n,
        timeout=1200, interval=1)
    print(f"  {n:,} Jobs created in {time.monotonic() - start:.0f} s")
    pg.execute("VACUUM ANALYZE jobsched.jobs")
    pid = pg.worker_pid()
    for bookmark_ms in (1000, 60000):
        api.call("PUT", "/watch", {"bookmark_ms": bookmark_ms})
        api.call("POST", "/watch/close")
        time.sleep(2)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle_seconds)
        share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        print(f"  idle, bookmarks every {bookmark_ms / 1000:.0f} s: the worker used "
              f"{share * 100:.2f} % of a core over {args.idle_seconds} s")
    # a relist: a worker that starts lists every Job (as after a watch's
    # history is gone; bookmarks keep a live watch's resourceVersion fresh)
    api.call("DELETE", "/requests")
    pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
    pid = wait_for("a new worker", lambda: (lambda p: p if p and p != pid else None)(
        pg.value("SELECT worker_pid FROM jobsched.status")), timeout=60, interval=0.1)
    cpu0, t0 = 0, time.monotonic()       # all it did since it started
    pages = (n + 499) // 500

    def relisted():
        reqs = api.requests("GET")
        lists = [r["seq"] for r in reqs if r["path"].endswith("/jobs") and "watch" not in r["query"]
                 and r["status"] == 200]
        return len(lists) >= pages and any(
            r["seq"] > max(lists) for r in reqs if "watch" in r["query"])
    wait_for("the relist and a new watch", relisted, timeout=300, interval=0.2)

    def settled():
        # the statuses of the relist are recorded a slice a pass: done when
        # the worker is idle again
        before = cpu_seconds(pid)
        time.sleep(1)
        return cpu_seconds(pid) - before < 0.02
    wait_for("the worker to settle", settled, timeout=300, interval=0)
    relist_cpu = cpu_seconds(pid) - cpu0
    print(f"  one relist of {n:,} Jobs (at start, every 30 min, and after a watch's history is "
          f"gone): {relist_cpu:.2f} s of CPU, {time.monotonic() - t0 - 1:.1f} s; amortized over "
          f"30 min {relist_cpu / 1800 * 100:.2f} % of a core")
    api.call("PUT", "/log", {"bodies": True})
    lat = bench_latency(pg, api, 300, keep_rows=True)
    print(f"  commit -> POST meanwhile (idle), 300 jobs 4 ms apart: p50 {pct(lat, 50):.2f} ms   "
          f"p99 {pct(lat, 99):.2f} ms")
    pss, private = memory_kb(pid)
    print(f"  worker memory: PSS {pss / 1024:.1f} MB, private {private / 1024:.1f} MB")
    reset(pg)
    api.call("DELETE", "/state")
    api.call("PUT", "/log", {"bodies": True, "max_entries": 100000})


def bench_outage(api, pg):
    """Every request hangs for 40 s (watches and lists too), then the API
    answers: how long until the queue flows again, with the default backoff
    and request timeout."""
    print("\n== an outage: every request hangs for 40 s, then the API answers")
    reset(pg)
    api.call("DELETE", "/state")
    pg.set_config(backoff_base=None, backoff_max=None, request_timeout=None,
                  poll_interval=None)
    api.fault(mode="hang")
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
                    " FROM generate_series(1, 20)")
    time.sleep(40)
    api.fault(mode="none")
    answered = time.monotonic()
    wait_for("all 20 submitted", lambda: pg.value(
        "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == 20,
        timeout=300, interval=0.1)
    creates = api.requests("POST")
    print(f"  the queue flowed again {time.monotonic() - answered:.1f} s after the API answered; "
          f"{len(creates)} creates in all for 20 jobs")
    reset(pg)
    api.call("DELETE", "/state")


def bench_notify(pg):
    """NOTIFY is open to every role: what a role without USAGE on the schema
    can make the worker do with it."""
    n = 20000
    print(f"\n== {n:,} NOTIFYs on the worker's channel from a role without USAGE")
    reset(pg)
    pg.execute("DROP ROLE IF EXISTS bench_stranger")
    pg.execute("CREATE ROLE bench_stranger LOGIN")
    pg.set_config(wake_mode="notify")
    conn = pg.connect()
    conn.autocommit = True
    pid = pg.worker_pid()
    with conn.cursor() as cur:
        cur.execute("SET ROLE bench_stranger")
        wakeups, cpu0, t0 = (pg.value("SELECT wakeups FROM jobsched.status"),
                             cpu_seconds(pid), time.monotonic())
        for _ in range(n):
            cur.execute("NOTIFY job_scheduler")
        elapsed = time.monotonic() - t0
    time.sleep(1)
    cpu = cpu_seconds(pid) - cpu0
    woke = pg.value("SELECT wakeups FROM jobsched.status") - wakeups
    print(f"  {n:,} NOTIFYs in {elapsed:.1f} s woke the worker {woke:,} times; it used "
          f"{cpu:.2f} s of CPU ({cpu / n * 1e6:.0f} us a NOTIFY, {cpu / elapsed * 100:.0f} % of "
          f"a core meanwhile), and did nothing else")
    conn.close()
    pg.execute("DROP ROLE bench_stranger")
    pg.set_config(wake_mode=None)


def cpu_seconds(pid):
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_pgbench(args, pg, workdir, fast_api):
    """One-row INSERTs, no trigger against each wake mode, in two setups:

    - the wake-up alone: the worker is disabled, so what inserters pay is
      the trigger and the commit hook (NOTIFY's lock, or the doorbell);
    - the whole system: the worker sends every row to the fast API.  Without
      the trigger it finds rows by its poll (every second here), so this
      also counts what prompt dispatch costs: the worker working alongside
      the inserters, in smaller batches, on the same two cores.

    Each round runs the variants back to back, so drift on a shared machine
    hits them alike; a cost is the median over rounds of each round's
    ratio to its no-trigger run."""
    for setup, enabled in (("the wake-up alone (worker disabled)", "off"),
                           ("the whole system (the worker sends every row to the fast API)", "on")):
        print(f"\n== pgbench: one-row INSERT, {args.clients} clients, {args.pgbench_seconds} s a run, "
              f"{args.pgbench_rounds} rounds; {setup}")
        pg.set_config(kube_api_url=fast_api.url, enabled=enabled, batch_size=None)
        pgbench_rounds(args, pg, workdir)
    pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
    pg.set_config(kube_api_url=None, wake_mode=None, enabled=None)


def pgbench_rounds(args, pg, workdir):
    variants = ("no trigger", "notify", "latch")
    tps = {v: [] for v in variants}
    wakes = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    pid = pg.worker_pid()
    for _ in range(args.pgbench_rounds):
        for variant in variants:
            if variant == "no trigger":
                pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER USER")
            else:
                pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
                pg.set_config(wake_mode=variant)
            reset(pg)
            wakeups, cpu0 = pg.value("SELECT wakeups FROM jobsched.status"), cpu_seconds(pid)
            tps[variant].append(pgbench(pg, workdir, args.pgbench_seconds, args.clients))
            wakes[variant].append((pg.value("SELECT wakeups FROM jobsched.status") - wakeups)
                                  / args.pgbench_seconds)
            cpu[variant].append((cpu_seconds(pid) - cpu0) / args.pgbench_seconds)
            if pg.status()["enabled"]:
                wait_for("the queue to drain", lambda: pg.value(
                    "SELECT count(*) FROM jobsched.jobs WHERE state IN ('pending', 'claimed')")
                    == 0, timeout=120, interval=0.05)
    for variant in variants:
        ratios = [t / base for t, base in zip(tps[variant], tps["no trigger"])]
        change = "" if variant == "no trigger" else \
            f"{(statistics.median(ratios) - 1) * 100:+6.1f} %"
        name = variant if variant == "no trigger" else f"wake_mode={variant}"
        print(f"  {name:16} {statistics.median(tps[variant]):7,.0f} tps {change:8}  worker: "
              f"{statistics.median(wakes[variant]):5,.0f} wake-ups/s, "
              f"{statistics.median(cpu[variant]) * 100:3.0f} % of a core   "
              f"runs: {', '.join(f'{r:,.0f}' for r in tps[variant])}")


if __name__ == "__main__":
    main()
