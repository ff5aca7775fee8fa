"""Updating the extension in place: this library meets the 1.0 schema, waits
for ALTER EXTENSION jobsched UPDATE, and then carries on with the rows and
the Jobs 1.0 left, submitting none of them twice.

The schema itself (a 1.0 install updated equals a fresh 1.1 one) is proved
by the pg_regress test "upgrade"; pg_upgrade by test_pg_upgrade.py.
"""
import copy
import json

from harness import JOB_TEMPLATE, NAMESPACE, wait_for

LEGACY_STATES = ["pending", "claimed", "claimed", "submitted", "running",
                 "succeeded", "failed", "cancelled"]


def reinstall(pg, version):
    pg.execute("DROP EXTENSION jobsched")
    pg.execute(f"CREATE EXTENSION jobsched VERSION '{version}'")
    pg.execute("INSERT INTO jobsched.job_types (name, template) VALUES ('echo', %s)",
               (json.dumps(JOB_TEMPLATE),))


def job_made_by_1_0(pg, api, job_id):
    """The Job the 1.0 worker created for a row: its name and its four
    labels on the Job and on the pod template, and no proof annotation."""
    name = pg.value("SELECT jobsched.job_name('echo', %s)", (job_id,))
    labels = {"app.kubernetes.io/managed-by": "jobsched", "jobsched.io/job-id": str(job_id),
              "jobsched.io/type": "echo", "jobsched.io/instance": pg.status()["instance"]}
    job = copy.deepcopy(JOB_TEMPLATE)
    job["metadata"] = {"name": name, "namespace": NAMESPACE, "labels": labels}
    job["spec"]["template"]["metadata"] = {"labels": labels}
    job["spec"]["template"]["spec"]["containers"][0]["args"] = ["hi"]
    return api.kube("POST", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", job)


def test_an_old_schema_waits_for_its_update_then_the_queue_carries_on(pg, api):
    reinstall(pg, "1.0")
    try:
        check_the_update(pg, api)
    finally:
        # later tests want a fresh 1.1 installation, not one that trusts labels
        reinstall(pg, "1.1")


def check_the_update(pg, api):
    ids = [pg.value("SELECT jobsched.submit('echo', '{\"args\": [\"hi\"]}')")
           for _ in LEGACY_STATES]
    made = {}
    for job_id, state in zip(ids, LEGACY_STATES):
        live = state in ("submitted", "running")
        # a claim whose create reached the API before 1.0 stopped
        adopted = state == "claimed" and job_id == ids[2]
        if live or adopted:
            made[job_id] = job_made_by_1_0(pg, api, job_id)
        uid = made[job_id]["metadata"]["uid"] if live else None
        pg.execute("UPDATE jobsched.jobs SET state = %s, k8s_uid = %s,"
                   " k8s_namespace = CASE WHEN %s THEN %s END,"
                   " k8s_name = CASE WHEN %s THEN jobsched.job_name(type, id) END,"
                   " attempts = CASE WHEN state <> 'pending' THEN 1 ELSE 0 END"
                   " WHERE id = %s", (state, uid, live, NAMESPACE, live, job_id))
    running = ids[LEGACY_STATES.index("running")]
    api.call("POST", f"/jobs/{NAMESPACE}/{made[running]['metadata']['name']}/status",
             {"phase": "running"})
    before = {j["id"]: j for j in pg.jobs()}

    # the worker says what to do, in the log and in the (1.0) status view,
    # and waits: the rows are as they were, the API saw only our creates
    wait_for("the worker to ask for the update",
             lambda: "ALTER EXTENSION jobsched UPDATE" in (pg.status()["last_error"] or ""))
    assert "HINT:  Run ALTER EXTENSION jobsched UPDATE" in pg.server_log()
    assert len(api.creates()) == len(made)
    assert {j["id"]: j for j in pg.jobs()} == before

    pg.execute("ALTER EXTENSION jobsched UPDATE")
    assert pg.value("SELECT extversion FROM pg_extension WHERE extname = 'jobsched'") == "1.1"

    # pending and claimed rows get their Job; the claim whose Job exists
    # adopts it; live Jobs keep syncing; finished rows stay as they were
    pending, claimed_new, claimed_made = ids[0], ids[1], ids[2]
    for job_id in (pending, claimed_new, claimed_made):
        pg.wait_state(job_id, ("submitted", "running"), timeout=10)
    assert pg.job(claimed_made)["k8s_uid"] == made[claimed_made]["metadata"]["uid"]
    for job_id in ids[:5]:
        row = pg.job(job_id)
        api.call("POST", f"/jobs/{row['k8s_namespace']}/{row['k8s_name']}/status",
                 {"phase": "succeeded"})
    for job_id in ids[:5]:
        pg.wait_state(job_id, "succeeded")
    for job_id in ids[5:]:
        assert pg.job(job_id)["state"] == before[job_id]["state"]
        assert pg.job(job_id)["k8s_uid"] is None

    names = [c["body"]["metadata"]["name"] for c in api.creates()]
    assert len(names) == len(set(names)) == len(made) + 2, names
    assert "are now version 1.1; the worker carries on" in pg.server_log()
