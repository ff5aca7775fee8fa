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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "e2e"))

from harness import JOB_TEMPLATE, PG_BIN, KubeApi, Postgres, wait_for  # noqa: E402

NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$request_method $status';
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


def pss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return None


def reset(pg):
    pg.execute("TRUNCATE jobsched.jobs")


def bench_latency(pg, api, n):
    reset(pg)
    api.call("DELETE", "/requests")
    conn = pg.connect()
    conn.autocommit = False
    committed = {}
    with conn.cursor() as cur:
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-jobs", type=int, default=500)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="jobsched-bench-")
    api = pg = nginx = None
    try:
        api = KubeApi(workdir)
        api.reset()
        pg = Postgres(workdir, api, settings={"poll_interval": "1s", "wake_mode": "latch",
                                              "max_in_flight": "16", "batch_size": "500"},
                      fsync=True)
        pg.wait_worker()
        pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('bench', %s)",
                   (json.dumps(JOB_TEMPLATE | {"spec": {"template": {"spec": {
                       "restartPolicy": "Never",
                       "containers": [{"name": "main", "image": "busybox:1.36"}]}}}}),))
        print(f"machine: {os.cpu_count()} cores; PostgreSQL {pg.value('SHOW server_version')}; "
              f"synchronous_commit on, fsync on")

        print(f"\n== commit -> POST latency ({args.latency_jobs} jobs, one per transaction)")
        for mode in ("latch", "notify"):
            pg.set_config(wake_mode=mode)
            lat = bench_latency(pg, api, args.latency_jobs)
            print(f"  wake_mode={mode:6}  p50 {pct(lat, 50):.2f} ms   p90 {pct(lat, 90):.2f} ms   "
                  f"p99 {pct(lat, 99):.2f} ms   max {max(lat):.2f} ms")
        api.call("DELETE", "/state")

        print(f"\n== sustained throughput ({args.jobs} jobs inserted in one transaction)")
        rate, elapsed, creates = bench_throughput(
            pg, args.jobs, lambda: len(api.requests("POST")))
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
        time.sleep(0.5)
        pg.set_config(kube_api_url=f"https://127.0.0.1:{port}")

        def nginx_posts():
            subprocess.run(["kill", "-USR1", str(nginx.pid)])  # reopen = flush the log buffer
            time.sleep(0.5)
            with open(os.path.join(nginx_dir, "access.log")) as f:
                return sum(1 for line in f if line.startswith("POST"))

        for batch in (50, 500, 5000):
            pg.set_config(batch_size=batch)
            before = nginx_posts()
            rate, elapsed, creates = bench_throughput(pg, args.jobs, nginx_posts)
            print(f"  fast API (nginx), batch_size {batch:5}: {rate:,.0f} jobs/s ({elapsed:.2f} s); "
                  f"creates sent {creates - before}, rows submitted {args.jobs}, "
                  f"lost {args.jobs - (creates - before) if creates - before < args.jobs else 0}, "
                  f"duplicated {max(creates - before - args.jobs, 0)}")
        pid = pg.worker_pid()
        print(f"\n== worker memory: PSS {pss_kb(pid) / 1024:.1f} MB (pid {pid}, after the runs above)")

        print(f"\n== pgbench: one-row INSERT, {args.clients} clients, {args.pgbench_seconds} s each")
        pg.set_config(enabled="off", batch_size=None, kube_api_url=None)
        results = {}
        pg.execute("ALTER TABLE jobsched.jobs DISABLE TRIGGER USER")
        results["no trigger"] = pgbench(pg, workdir, args.pgbench_seconds, args.clients)
        pg.execute("ALTER TABLE jobsched.jobs ENABLE TRIGGER USER")
        for mode in ("notify", "latch"):
            pg.set_config(wake_mode=mode)
            reset(pg)
            results[f"wake_mode={mode}"] = pgbench(pg, workdir, args.pgbench_seconds, args.clients)
        base = results["no trigger"]
        for name, tps in results.items():
            print(f"  {name:18} {tps:10,.0f} tps   ({(tps / base - 1) * 100:+.1f} % vs no trigger)")
    finally:
        if nginx:
            nginx.terminate()
        if pg:
            pg.stop()
        if api:
            api.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
