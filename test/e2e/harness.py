"""The servers the end-to-end tests and the demo run: the Kubernetes API test
server (test/kube-api) on loopback with a fresh CA, and a throwaway PostgreSQL
15 cluster with jobsched preloaded, run by the current (non-root) user.
"""
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE_API = os.path.join(ROOT, "test", "kube-api")
PG_BIN = subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
DBNAME = "jobsched_e2e"
TOKEN = "e2e-token-7f3a9c1d2b4e6f80"
NAMESPACE = "jobsched-test"

JOB_TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36",
                                "args": "{{params.args}}"}],
            }
        },
    },
}


def wait_for(what, predicate, timeout=20.0, interval=0.02):
    """Poll predicate until it returns a truthy value; fail with what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class KubeApi:
    """The test server and its control API."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.certs = os.path.join(workdir, "certs")
        self.token_file = os.path.join(workdir, "token")
        subprocess.run(["bash", os.path.join(KUBE_API, "make-certs.sh"), self.certs],
                       check=True, capture_output=True)
        with open(os.path.join(workdir, "server-token"), "w") as f:
            f.write(TOKEN)
        self.write_token(TOKEN)
        self.log = open(os.path.join(workdir, "kube-api.log"), "w")
        self.proc = subprocess.Popen(
            ["node", os.path.join(KUBE_API, "server.mjs"), "--certs", self.certs,
             "--token-file", os.path.join(workdir, "server-token"),
             "--port", "0", "--control-port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Kubernetes API test server did not start; see "
                               + self.log.name)
        info = json.loads(line)
        self.port = info["port"]
        self.control = f"http://127.0.0.1:{info['control_port']}"
        self.url = f"https://127.0.0.1:{self.port}"

    def write_token(self, token):
        tmp = self.token_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(token + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.token_file)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def kube(self, method, path, body=None, timeout=60):
        """A request to the API port itself, as another client of the cluster
        (kubectl, a controller) would make it: HTTPS, the CA, the token."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return json.loads(resp.read().decode() or "null")

    def requests(self, method=None, path_prefix=None):
        out = self.call("GET", "/requests")
        if method:
            out = [r for r in out if r["method"] == method]
        if path_prefix:
            out = [r for r in out if r["path"].startswith(path_prefix)]
        return out

    def creates(self):
        return [r for r in self.requests("POST", "/apis/batch/v1/")]

    def jobs(self):
        return self.call("GET", "/jobs")

    def reset(self):
        self.call("DELETE", "/state")
        self.call("PUT", "/tokens", {"tokens": [TOKEN], "forbidden": []})
        self.call("PUT", "/namespaces", {"namespaces": ["default", NAMESPACE, "jobsched-other"]})
        self.write_token(TOKEN)

    def fault(self, **kw):
        self.call("PUT", "/fault", kw)

    def violations(self):
        return self.call("GET", "/violations")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Queries:
    """execute/query/value on self.conn, an autocommit connection."""

    def execute(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def value(self, sql, args=None):
        rows = self.query(sql, args)
        return rows[0][0] if rows else None


class Postgres(Queries):
    """A throwaway cluster with jobsched preloaded, run by this (non-root) user:
    started, with the database and the extension created, unless start is
    false (then only initialised and configured)."""

    def __init__(self, workdir, api, settings=None, fsync=False, tcp=False, start=True):
        self.datadir = os.path.join(workdir, "pgdata")
        self.logfile = os.path.join(workdir, "postgres.log")
        self.sockdir = workdir
        # below Linux's ephemeral ports (32768 and up), which outgoing
        # connections on this machine may hold
        self.port = 12000 + os.getpid() % 20000
        subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '{"127.0.0.1" if tcp else ""}'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
shared_preload_libraries = 'jobsched'
fsync = {'on' if fsync else 'off'}
log_line_prefix = '%m %b[%p] '
jobsched.database = '{DBNAME}'
jobsched.kube_api_url = '{api.url}'
jobsched.kube_token_file = '{api.token_file}'
jobsched.kube_ca_file = '{api.certs}/ca.crt'
jobsched.namespace = '{NAMESPACE}'
# only wake-ups and retry timers drive the worker: a test passes only if they work
jobsched.poll_interval = '1h'
jobsched.backoff_base = '100ms'
jobsched.backoff_max = '1s'
jobsched.request_timeout = '5s'
""")
            for name, value in (settings or {}).items():
                f.write(f"jobsched.{name} = '{value}'\n")
        if not start:
            return
        self.start()
        self.psql_admin(f"CREATE DATABASE {DBNAME}")
        self.conn = self.connect()
        self.execute("CREATE EXTENSION jobsched")

    def start(self):
        wrapper = os.environ.get("JOBSCHED_PG_WRAPPER")
        if not wrapper:
            started = subprocess.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-l",
                                      self.logfile, "-w", "start"], capture_output=True, text=True)
            if started.returncode != 0:
                log = self.server_log()[-2000:] if os.path.exists(self.logfile) else ""
                raise RuntimeError(f"PostgreSQL did not start:\n{started.stdout}{started.stderr}{log}")
            return
        # JOBSCHED_PG_WRAPPER runs the server under a tool, e.g. valgrind (see the README)
        with open(self.logfile, "a") as log:
            subprocess.Popen(wrapper.split() + [os.path.join(PG_BIN, "postgres"), "-D", self.datadir],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the server to accept connections", lambda: subprocess.run(
            [os.path.join(PG_BIN, "pg_isready"), "-q", "-h", self.sockdir, "-p", str(self.port)]
        ).returncode == 0, timeout=120, interval=0.5)

    def stop(self):
        subprocess.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-m", "fast",
                        "-w", "stop"], capture_output=True)

    def psql_admin(self, sql):
        subprocess.run([os.path.join(PG_BIN, "psql"), "-h", self.sockdir, "-p", str(self.port),
                        "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                        "-c", sql], check=True, capture_output=True)

    def connect(self, dbname=DBNAME):
        conn = psycopg2.connect(host=self.sockdir, port=self.port, user="postgres",
                                dbname=dbname)
        conn.autocommit = True
        return conn

    def status(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT * FROM jobsched.status")
            cols = [d[0] for d in cur.description]
            return dict(zip(cols, cur.fetchone()))

    def worker_pid(self):
        return self.value("SELECT worker_pid FROM jobsched.status")

    def wait_worker(self, timeout=30):
        return wait_for("the jobsched worker to run and listen",
                        lambda: self.value("SELECT worker_pid FROM jobsched.status"
                                           " WHERE listening AND config_loaded_at IS NOT NULL"),
                        timeout=timeout, interval=0.1)

    def set_config(self, **settings):
        """ALTER SYSTEM + reload, and wait until the worker has reloaded."""
        before = self.value("SELECT config_loaded_at FROM jobsched.status")
        for name, value in settings.items():
            if value is None:
                self.execute(f"ALTER SYSTEM RESET jobsched.{name}")
            else:
                self.execute(f"ALTER SYSTEM SET jobsched.{name} = %s", (str(value),))
        self.execute("SELECT pg_reload_conf()")
        wait_for("the worker to reload its settings",
                 lambda: self.value("SELECT config_loaded_at > %s FROM jobsched.status",
                                    (before,)), interval=0.05)
        # this session's own backend re-reads postgresql.conf at its next query
        time.sleep(0)

    def jobs(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT * FROM jobsched.jobs ORDER BY id")
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def job(self, job_id):
        with self.conn.cursor() as cur:
            cur.execute("SELECT * FROM jobsched.jobs WHERE id = %s", (job_id,))
            cols = [d[0] for d in cur.description]
            row = cur.fetchone()
            return dict(zip(cols, row)) if row else None

    def wait_state(self, job_id, states, timeout=20):
        if isinstance(states, str):
            states = (states,)
        return wait_for(f"job {job_id} to reach {states}",
                        lambda: (lambda j: j if j and j["state"] in states else None)(
                            self.job(job_id)), timeout=timeout)

    def server_log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()


@contextlib.contextmanager
def servers(prefix, settings=None, fsync=False, tcp=False):
    """Both servers in a fresh directory, for the demo and the benchmarks;
    stopped and removed afterwards, whatever happens."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    api = pg = None
    try:
        api = KubeApi(workdir)
        api.reset()
        pg = Postgres(workdir, api, settings=settings, fsync=fsync, tcp=tcp)
        pg.wait_worker()
        yield api, pg
    except BaseException:
        if pg and os.path.exists(pg.logfile):
            with open(pg.logfile, errors="replace") as f:
                print("--- the end of the server log:\n" + "".join(f.readlines()[-40:]))
        raise
    finally:
        if pg:
            pg.stop()
        if api:
            api.stop()
        shutil.rmtree(workdir, ignore_errors=True)
