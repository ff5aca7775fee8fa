"""Postmaster death stops the worker at once, even mid-request.

Runs last (the file name sorts last): it kills the session's server, then
starts it again for anything that might follow.
"""
import os
import signal
import time

from conftest import submit
from harness import wait_for


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_postmaster_death_stops_the_worker_within_a_second(pg, api):
    api.fault(mode="hang", methods=["POST"])
    submit(pg)
    wait_for("a request in flight", lambda: pg.status()["in_flight"] == 1)
    worker = pg.worker_pid()
    with open(os.path.join(pg.datadir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    # this server's processes only: others may run on the machine
    children = [pid for pid in pids() if parent(pid) == postmaster]
    assert worker in children
    started = time.monotonic()
    os.kill(postmaster, signal.SIGKILL)
    wait_for("the worker to exit", lambda: not alive(worker), timeout=1.0, interval=0.01)
    assert time.monotonic() - started < 1.0
    api.fault(mode="none")

    # leave a working server behind; a killed postmaster nobody reaps stays a
    # zombie that PostgreSQL would take for a live one, so drop its lock files
    wait_for("every backend of this server to exit",
             lambda: not any(alive(pid) for pid in children), timeout=10)
    assert not alive(postmaster)
    os.unlink(os.path.join(pg.datadir, "postmaster.pid"))
    os.unlink(os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}.lock"))
    pg.start()
    pg.conn = pg.connect()
    pg.wait_worker()
