"""The jobsched demo: a throwaway PostgreSQL with jobsched preloaded and the
local Kubernetes API test server.  A few jobs go from pending to submitted;
the test server then runs them to completion (as a cluster would), the rows
follow, and jobsched.status is printed.  Everything is removed at the end.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))

from harness import JOB_TEMPLATE, servers  # noqa: E402


def show(pg, title, sql):
    with pg.conn.cursor() as cur:
        cur.execute(sql)
        cols = [d[0] for d in cur.description]
        rows = [[("" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                 for v in r] for r in cur.fetchall()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    print(f"\n{title}")
    print("  " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  " + "-+-".join("-" * w for w in widths))
    for r in rows:
        print("  " + " | ".join(v.ljust(w) for v, w in zip(r, widths)))


def main():
    with servers("jobsched-demo-", settings={"poll_interval": "1s"}) as (api, pg):
        print(f"Kubernetes API test server at {api.url}")
        print(f"PostgreSQL with jobsched on port {pg.port}, database {pg.conn.info.dbname}")

        pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('greet', %s)",
                   (json.dumps(JOB_TEMPLATE),))
        ids = [pg.value("SELECT jobsched.submit('greet', %s)",
                        (json.dumps({"args": ["echo", f"hello {who}"]}),))
               for who in ("ada", "grace", "linus")]
        show(pg, "Enqueued:", "SELECT id, type, params, state FROM jobsched.jobs ORDER BY id")

        for job_id in ids:
            pg.wait_state(job_id, ("submitted", "running", "succeeded"))
        show(pg, "The worker created the Jobs:",
             "SELECT id, state, k8s_name, k8s_uid, attempts FROM jobsched.jobs ORDER BY id")

        # the test server plays the cluster: each Job runs, then completes
        namespace = pg.status()["namespace"]
        for name in [j["k8s_name"] for j in pg.jobs()]:
            api.call("POST", f"/jobs/{namespace}/{name}/status", {"phase": "running"})
            api.call("POST", f"/jobs/{namespace}/{name}/status", {"phase": "succeeded"})
        for job_id in ids:
            pg.wait_state(job_id, "succeeded", timeout=15)
        show(pg, "The rows follow their Jobs (status sync):",
             "SELECT id, state, submitted_at::time(0), finished_at::time(0)"
             " FROM jobsched.jobs ORDER BY id")
        show(pg, "SELECT * FROM jobsched.status:",
             "SELECT worker_pid, listening, wake_mode, pending, submitted, running, succeeded,"
             " failed, cancelled, jobs_submitted, api_requests, last_api_success_at::time(0)"
             " FROM jobsched.status")
        print()


if __name__ == "__main__":
    main()
