"""jobsched benchmarks.  Prints figures; asserts nothing about speed.

1. commit -> POST latency: jobs inserted one per transaction, a few ms apart;
   the time from the client's COMMIT returning to the API test server
   receiving the create (both clocks are this machine's).
2. sustained jobs/s: 10,000 jobs inserted in one transaction, against the API
   test server (which validates every body) and against a fast API (nginx
   answering 201 with a canned Job), counting that every row was submitted
   and exactly one create was sent per row.
3. pgbench: one-row INSERTs into jobsched.jobs, 8 clients, with no trigger,
   with the NOTIFY wake-up and with the latch wake-up.
4. the worker's memory (PSS).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "e2e"))

from harness import PG_BIN, servers, wait_for  # noqa: E402

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


def bench_latency(pg, api, n, warmup=50):
    reset(pg)
    api.call("DELETE", "/requests")
    conn = pg.connect()
    conn.autocommit = False
    committed = {}
    with conn.cursor() as cur:
        for _ in range(warmup):
            cur.execute("INSERT INTO jobsched.jobs (type, params) VALUES ('bench', '{}')")
            conn.commit()
            time.sleep(0.004)
        wait_for("the warm-up", lambda: pg.value(
            "SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == warmup, timeout=60)
        reset(pg)
        api.call("DELETE", "/requests")
        for _ in range(n):
            cur.execute("INSERT INTO jobsched.jobs (type, params) VALUES ('bench', '{}') RETURNING id")
            job_id = cur.fetchone()[0]
            conn.commit()
            committed[job_id] = time.time() * 1000.0
            time.sleep(0.004)
    conn.close()
    wait_for(f"{n} jobs submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == n,
             timeout=120)
    latencies = []
    for r in api.requests("POST"):
        job_id = int(r["body"]["metadata"]["labels"]["jobsched.io/job-id"])
        latencies.append(r["ts"] - committed[job_id])
    return latencies


def bench_throughput(pg, n, count_creates):
    reset(pg)
    pg.execute("SELECT pg_stat_reset_shared('bgwriter')")
    with pg.conn.cursor() as cur:
        cur.execute("INSERT INTO jobsched.jobs (type, params) SELECT 'bench', '{}'"
                    " FROM generate_series(1, %s)", (n,))
    start = time.monotonic()
    wait_for(f"{n} jobs submitted",
             lambda: pg.value("SELECT count(*) FROM jobsched.jobs WHERE state = 'submitted'") == n,
             timeout=600, interval=0.005)
    elapsed = time.monotonic() - start
    creates = count_creates()
    return n / elapsed, elapsed, creates


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
                  $$BEGIN INSERT INTO bench_changes VALUES (NEW.id, clock_timestamp()); RETURN NULL; END$$""")
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
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--pgbench-rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--big-table-rows", type=int, default=1000000)
    ap.add_argument("--parts", default="latency,status,throughput,bigtable,pgbench",
                    help="comma-separated subset of the default")
    args = ap.parse_args()

    settings = {"poll_interval": "1s", "wake_mode": "latch", "max_in_flight": "16",
                "batch_size": "500"}
    with servers("jobsched-bench-", settings=settings, fsync=True) as (api, pg):
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
    if "throughput" in parts:
        bench_throughputs(args, api, pg, workdir, started)
    if "bigtable" in parts and args.big_table_rows:
        bench_big_table(args, api, pg)
    if "pgbench" in parts:
        bench_pgbench(args, pg, workdir)


def bench_latency_modes(args, api, pg):
    print(f"\n== commit -> POST latency ({args.latency_jobs} jobs, one per transaction)")
    for mode in ("latch", "notify"):
        pg.set_config(wake_mode=mode)
        lat = bench_latency(pg, api, args.latency_jobs)
        print(f"  wake_mode={mode:6}  p50 {pct(lat, 50):.2f} ms   p90 {pct(lat, 90):.2f} ms   "
              f"p99 {pct(lat, 99):.2f} ms   max {max(lat):.2f} ms")
    api.call("DELETE", "/state")


def bench_throughputs(args, api, pg, workdir, started):
    print(f"\n== sustained throughput ({args.jobs} jobs inserted in one transaction)")
    api.call("PUT", "/log", {"bodies": False})
    rate, elapsed, creates = bench_throughput(pg, args.jobs, lambda: len(api.requests("POST")))
    print(f"  API test server (validates every body): {rate:,.0f} jobs/s "
          f"({elapsed:.2f} s); creates sent {creates}, rows submitted {args.jobs}")
    api.call("DELETE", "/state")

    nginx_dir = os.path.join(workdir, "nginx")
    os.makedirs(nginx_dir)
    port = pg.port + 1
    with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=nginx_dir, port=port, certs=api.certs))
    nginx = subprocess.Popen(["nginx", "-p", nginx_dir, "-c", os.path.join(nginx_dir, "nginx.conf"),
                              "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    started.append(nginx)
    time.sleep(0.5)
    pg.set_config(kube_api_url=f"https://127.0.0.1:{port}", enabled="off")

    def nginx_posts():
        subprocess.run(["kill", "-USR1", str(nginx.pid)])  # reopen = flush the log buffer
        time.sleep(0.5)
        with open(os.path.join(nginx_dir, "access.log")) as f:
            return sum(1 for line in f if " POST " in line)

    pg.set_config(enabled="on")
    for batch in (50, 500, 5000):
        pg.set_config(batch_size=batch)
        before = nginx_posts()
        rate, elapsed, creates = bench_throughput(pg, args.jobs, nginx_posts)
        sent = creates - before
        print(f"  fast API (nginx), batch_size {batch:5}: {rate:,.0f} jobs/s ({elapsed:.2f} s); "
              f"creates sent {sent}, rows submitted {args.jobs}, "
              f"lost {max(args.jobs - sent, 0)}, duplicated {max(sent - args.jobs, 0)}")
    pid = pg.worker_pid()
    pss, private = memory_kb(pid)
    print(f"\n== worker memory after the runs above: PSS {pss / 1024:.1f} MB, "
          f"private {private / 1024:.1f} MB (the rest of PSS is its share of shared buffers "
          f"and libraries)")


def bench_big_table(args, api, pg):
    print(f"\n== with {args.big_table_rows:,} finished rows in jobsched.jobs")
    pg.set_config(enabled="off", batch_size=None)
    reset(pg)
    pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER USER")
    pg.execute("INSERT INTO jobsched.jobs (type, params, state, finished_at)"
               " SELECT 'bench', '{}', 'succeeded', now() FROM generate_series(1, %s)",
               (args.big_table_rows,))
    pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
    pg.execute("VACUUM ANALYZE jobsched.jobs")
    pg.set_config(enabled="on", wake_mode="latch")
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
    api.call("DELETE", "/state")


def bench_pgbench(args, pg, workdir):
    """Rounds of each variant, interleaved, so drift on a shared machine hits
    all of them alike; the median of each is reported."""
    print(f"\n== pgbench: one-row INSERT, {args.clients} clients, {args.pgbench_seconds} s a run, "
          f"{args.pgbench_rounds} interleaved rounds, median tps")
    pg.set_config(enabled="off", batch_size=None, kube_api_url=None)
    results = {"no trigger": [], "wake_mode=notify": [], "wake_mode=latch": []}
    for _ in range(args.pgbench_rounds):
        pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER USER")
        reset(pg)
        results["no trigger"].append(pgbench(pg, workdir, args.pgbench_seconds, args.clients))
        pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
        for mode in ("notify", "latch"):
            pg.set_config(wake_mode=mode)
            reset(pg)
            results[f"wake_mode={mode}"].append(
                pgbench(pg, workdir, args.pgbench_seconds, args.clients))
    base = statistics.median(results["no trigger"])
    for name, runs in results.items():
        tps = statistics.median(runs)
        print(f"  {name:18} {tps:10,.0f} tps   ({(tps / base - 1) * 100:+.1f} % vs no trigger)   "
              f"runs: {', '.join(f'{r:,.0f}' for r in runs)}")

if __name__ == "__main__":
    main()
