// Self-test of the Kubernetes API test server: starts it on free ports with
// fresh certificates and talks real HTTPS to it, trusting only the test CA.
//
//   node --test test/kube-api/selftest.mjs

import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const TOKEN = "selftest-token-5f1c9a";
const NS = "jobsched-test";
const JOBS = `/apis/batch/v1/namespaces/${NS}/jobs`;

let dir;
let server;
let port;
let controlPort;
let agent;

function jobBody(name, { labels, restartPolicy = "Never", extraSpec = {} } = {}) {
	return {
		apiVersion: "batch/v1",
		kind: "Job",
		metadata: { name, ...(labels ? { labels } : {}) },
		spec: {
			...extraSpec,
			template: { spec: { restartPolicy, containers: [{ name: "main", image: "busybox:1.36", command: ["true"] }] } },
		},
	};
}

/** One HTTPS request to the API port; resolves {status, headers, body} (body parsed when JSON). */
function api(method, path, { body, token = TOKEN, headers = {}, cert } = {}) {
	const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
	const h = { ...headers };
	if (token !== null) h.Authorization = `Bearer ${token}`;
	if (payload !== undefined) {
		h["Content-Type"] ??= "application/json";
		// Node sends a DELETE body without framing unless told its length.
		h["Content-Length"] = Buffer.byteLength(payload);
	}
	return new Promise((resolve, reject) => {
		const opts = { host: "127.0.0.1", port, method, path, headers: h, agent, servername: "localhost" };
		if (cert) Object.assign(opts, { agent: false, ca: readFileSync(join(dir, "ca.crt")), ...cert });
		const req = httpsRequest(opts, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => {
				const text = Buffer.concat(chunks).toString("utf8");
				let parsed = text;
				if ((res.headers["content-type"] ?? "").startsWith("application/json")) parsed = JSON.parse(text);
				resolve({ status: res.statusCode, headers: res.headers, body: parsed });
			});
		});
		req.on("error", reject);
		req.end(payload);
	});
}

/** Control API call (plain HTTP); resolves the parsed JSON reply, rejects on non-2xx. */
function control(method, path, body) {
	return new Promise((resolve, reject) => {
		const req = httpRequest({ host: "127.0.0.1", port: controlPort, method, path, headers: { "Content-Type": "application/json" } }, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => {
				const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
				if (res.statusCode >= 300) reject(new Error(`control ${method} ${path}: ${res.statusCode} ${JSON.stringify(parsed)}`));
				else resolve(parsed);
			});
		});
		req.on("error", reject);
		req.end(body === undefined ? undefined : JSON.stringify(body));
	});
}

/**
 * Open a watch; collects events.  `next(pred)` resolves with the first
 * event (past or future) satisfying pred; `ended` resolves when the stream ends.
 */
function watch(path) {
	const events = [];
	const waiters = [];
	let resolveEnded;
	const ended = new Promise((r) => (resolveEnded = r));
	let resolveStatus;
	const status = new Promise((r) => (resolveStatus = r));
	const req = httpsRequest({ host: "127.0.0.1", port, path, headers: { Authorization: `Bearer ${TOKEN}` }, agent: false, ca: readFileSync(join(dir, "ca.crt")), servername: "localhost" }, (res) => {
		resolveStatus(res.statusCode);
		const lines = createInterface({ input: res });
		lines.on("line", (line) => {
			const ev = JSON.parse(line);
			events.push(ev);
			for (const w of [...waiters]) {
				if (w.pred(ev)) {
					waiters.splice(waiters.indexOf(w), 1);
					w.resolve(ev);
				}
			}
		});
		res.on("close", () => resolveEnded(events));
	});
	req.on("error", () => resolveEnded(events));
	req.end();
	return {
		events,
		status,
		ended,
		close: () => req.destroy(),
		next(pred, ms = 4000) {
			const seen = events.find(pred);
			if (seen) return Promise.resolve(seen);
			return new Promise((resolve, reject) => {
				const w = { pred, resolve };
				waiters.push(w);
				setTimeout(() => reject(new Error(`no matching watch event within ${ms} ms; got ${JSON.stringify(events.map((e) => e.type))}`)), ms).unref();
			});
		},
	};
}

before(async () => {
	dir = mkdtempSync(join(tmpdir(), "kube-api-selftest-"));
	execFileSync("sh", [join(HERE, "make-certs.sh"), dir]);
	writeFileSync(join(dir, "token"), `${TOKEN}\n`);
	server = spawn(process.execPath, [join(HERE, "server.mjs"), "--certs", dir, "--token-file", join(dir, "token"), "--port", "0", "--control-port", "0", "--log-file", join(dir, "requests.jsonl")], {
		stdio: ["ignore", "pipe", "inherit"],
	});
	const first = await new Promise((resolve, reject) => {
		createInterface({ input: server.stdout }).once("line", resolve);
		server.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
	});
	const info = JSON.parse(first);
	assert.equal(info.pid, server.pid);
	({ port, control_port: controlPort } = info);
	agent = new Agent({ keepAlive: true, ca: readFileSync(join(dir, "ca.crt")) });
});

after(() => {
	agent?.destroy();
	server?.kill("SIGTERM");
	if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => control("DELETE", "/state"));

describe("authentication", () => {
	test("401 Status without or with a wrong token", async () => {
		for (const token of [null, "wrong"]) {
			const r = await api("GET", JOBS, { token });
			assert.equal(r.status, 401);
			assert.deepEqual(r.body, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 });
		}
		const log = await control("GET", "/requests");
		assert.deepEqual(log.map((e) => [e.authorized, e.token_ok, e.status]), [[false, false, 401], [false, false, 401]]);
	});

	test("403 for a forbidden token, and the log never holds a token", async () => {
		await control("PUT", "/tokens", { tokens: [TOKEN], forbidden: ["nope-token"] });
		const r = await api("POST", JOBS, { token: "nope-token", body: jobBody("f1") });
		assert.equal(r.status, 403);
		assert.equal(r.body.reason, "Forbidden");
		assert.match(r.body.message, /^jobs\.batch is forbidden: User ".+" cannot create resource "jobs" in API group "batch" in the namespace "jobsched-test"$/);
		const [entry] = await control("GET", "/requests");
		assert.equal(entry.token_ok, true);
		assert.equal(entry.authorized, false);
		const everything = JSON.stringify(await control("GET", "/requests")) + readFileSync(join(dir, "requests.jsonl"), "utf8");
		assert.ok(!everything.includes("nope-token") && !everything.includes(TOKEN));
	});

	test("a client certificate from the test CA authenticates (mTLS)", async () => {
		const cert = { cert: readFileSync(join(dir, "client.crt")), key: readFileSync(join(dir, "client.key")) };
		const r = await api("GET", JOBS, { token: null, cert });
		assert.equal(r.status, 200);
	});
});

describe("jobs", () => {
	test("201 create fills server fields and defaults; GET returns it; a pod is made", async () => {
		const r = await api("POST", JOBS, { body: jobBody("job-a", { labels: { app: "x" } }) });
		assert.equal(r.status, 201);
		const job = r.body;
		assert.equal(job.kind, "Job");
		assert.match(job.metadata.uid, /^[0-9a-f-]{36}$/);
		assert.match(job.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
		assert.equal(job.metadata.generation, 1);
		assert.deepEqual(job.metadata.labels, { app: "x" });
		const uid = job.metadata.uid;
		assert.deepEqual(job.spec.template.metadata.labels, {
			"controller-uid": uid,
			"batch.kubernetes.io/controller-uid": uid,
			"job-name": "job-a",
			"batch.kubernetes.io/job-name": "job-a",
		});
		assert.deepEqual(job.spec.selector, { matchLabels: { "batch.kubernetes.io/controller-uid": uid } });
		assert.deepEqual([job.spec.parallelism, job.spec.completions, job.spec.backoffLimit, job.spec.completionMode, job.spec.suspend], [1, 1, 6, "NonIndexed", false]);
		assert.deepEqual(job.status, {});

		const got = await api("GET", `${JOBS}/job-a`);
		assert.equal(got.status, 200);
		assert.deepEqual(got.body, job);

		const pods = await api("GET", `/api/v1/namespaces/${NS}/pods`);
		assert.equal(pods.body.items.length, 1);
		const pod = pods.body.items[0];
		assert.match(pod.metadata.name, /^job-a-[a-z0-9]{5}$/);
		assert.equal(pod.kind, undefined, "list items carry no kind");
		assert.deepEqual(pod.metadata.ownerReferences[0], { apiVersion: "batch/v1", kind: "Job", name: "job-a", uid, controller: true, blockOwnerDeletion: true });
		assert.equal(pod.status.phase, "Pending");
	});

	test("409 AlreadyExists on re-create", async () => {
		assert.equal((await api("POST", JOBS, { body: jobBody("dup") })).status, 201);
		const r = await api("POST", JOBS, { body: jobBody("dup") });
		assert.equal(r.status, 409);
		assert.equal(r.body.reason, "AlreadyExists");
		assert.equal(r.body.message, 'jobs.batch "dup" already exists');
		assert.deepEqual(r.body.details, { name: "dup", group: "batch", kind: "jobs" });
	});

	test("422 for a 64-character name (the job-name label is limited to 63)", async () => {
		const name = "a".repeat(64);
		const r = await api("POST", JOBS, { body: jobBody(name) });
		assert.equal(r.status, 422);
		assert.equal(r.body.reason, "Invalid");
		assert.match(r.body.message, new RegExp(`^Job\\.batch "${name}" is invalid: .*must be no more than 63 characters`));
		assert.ok(r.body.details.causes.every((c) => c.reason === "FieldValueInvalid"));
		assert.equal((await api("POST", JOBS, { body: jobBody("a".repeat(63)) })).status, 201);
	});

	test("422 for restartPolicy Always", async () => {
		const r = await api("POST", JOBS, { body: jobBody("rp", { restartPolicy: "Always" }) });
		assert.equal(r.status, 422);
		assert.deepEqual(r.body.details.causes, [
			{ reason: "FieldValueNotSupported", message: 'Unsupported value: "Always": supported values: "OnFailure", "Never"', field: "spec.template.spec.restartPolicy" },
		]);
		assert.equal(r.body.message, 'Job.batch "rp" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"');
	});

	test("unknown fields: 400 under Strict, Warning header and dropped otherwise", async () => {
		const body = jobBody("uf", { extraSpec: { foo: 1 } });
		const strict = await api("POST", `${JOBS}?fieldValidation=Strict`, { body });
		assert.equal(strict.status, 400);
		assert.equal(strict.body.reason, "BadRequest");
		assert.equal(strict.body.message, 'Job in version "v1" cannot be handled as a Job: strict decoding error: unknown field "spec.foo"');
		const warn = await api("POST", JOBS, { body });
		assert.equal(warn.status, 201);
		assert.equal(warn.headers.warning, '299 - "unknown field \\"spec.foo\\""');
		assert.equal(warn.body.spec.foo, undefined);
		const violations = await control("GET", "/violations");
		assert.deepEqual(violations.map((v) => [v.path, v.keyword]), [["spec.foo", "unknown"], ["spec.foo", "unknown"]]);
	});

	test("a wrong type is a 400 and a recorded violation", async () => {
		const r = await api("POST", JOBS, { body: jobBody("wt", { extraSpec: { parallelism: "x" } }) });
		assert.equal(r.status, 400);
		assert.match(r.body.message, /cannot unmarshal string into Go struct field .*spec\.parallelism/);
		const [v] = await control("GET", "/violations");
		assert.equal(v.path, "spec.parallelism");
		assert.equal(v.keyword, "type");
		const [entry] = await control("GET", "/requests");
		assert.equal(entry.violations.length, 1);
		assert.deepEqual(entry.body.spec.parallelism, "x", "the log holds the body as sent");
		await control("DELETE", "/violations");
		assert.deepEqual(await control("GET", "/violations"), []);
	});

	test("label selectors on list", async () => {
		for (const [name, tier] of [["s1", "web"], ["s2", "db"], ["s3", "web"], ["s4", "cache"]]) {
			assert.equal((await api("POST", JOBS, { body: jobBody(name, { labels: { tier } }) })).status, 201);
		}
		const names = async (sel) => (await api("GET", `${JOBS}?labelSelector=${encodeURIComponent(sel)}`)).body.items.map((j) => j.metadata.name);
		assert.deepEqual(await names("tier=web"), ["s1", "s3"]);
		assert.deepEqual(await names("tier!=web"), ["s2", "s4"]);
		assert.deepEqual(await names("tier in (db,cache)"), ["s2", "s4"]);
		assert.deepEqual(await names("tier notin (db,cache),tier"), ["s1", "s3"]);
		assert.deepEqual(await names("!tier"), []);
		const all = await api("GET", "/apis/batch/v1/jobs?fieldSelector=metadata.name%3Ds2");
		assert.deepEqual(all.body.items.map((j) => j.metadata.name), ["s2"]);
		assert.equal((await api("GET", `${JOBS}?labelSelector=tier+in+db`)).status, 400);
	});

	test("limit/continue pages consistently; an expired token is 410", async () => {
		for (let i = 0; i < 5; i++) await api("POST", JOBS, { body: jobBody(`p${i}`) });
		const p1 = await api("GET", `${JOBS}?limit=2`);
		assert.deepEqual(p1.body.items.map((j) => j.metadata.name), ["p0", "p1"]);
		assert.equal(p1.body.metadata.remainingItemCount, 3);
		await api("POST", JOBS, { body: jobBody("p5") }); // not in the snapshot
		const p2 = await api("GET", `${JOBS}?limit=2&continue=${p1.body.metadata.continue}`);
		assert.deepEqual(p2.body.items.map((j) => j.metadata.name), ["p2", "p3"]);
		assert.equal(p2.body.metadata.resourceVersion, p1.body.metadata.resourceVersion);
		await control("POST", "/continue/expire");
		const gone = await api("GET", `${JOBS}?limit=2&continue=${p2.body.metadata.continue}`);
		assert.equal(gone.status, 410);
		assert.equal(gone.body.reason, "Expired");
		assert.match(gone.body.message, /^The provided continue parameter is too old/);
		// The 410 carries a token for an inconsistent continuation.
		const rest = await api("GET", `${JOBS}?limit=10&continue=${gone.body.metadata.continue}`);
		assert.deepEqual(rest.body.items.map((j) => j.metadata.name), ["p4", "p5"]);
	});

	test("DELETE: Background deletes the pods, the batch/v1 default orphans them", async () => {
		await api("POST", JOBS, { body: jobBody("orph") });
		await api("POST", JOBS, { body: jobBody("bg") });
		const podsOf = async (job) => (await api("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=job-name%3D${job}`)).body.items;

		const o = await api("DELETE", `${JOBS}/orph`);
		assert.equal(o.status, 200);
		assert.equal(o.body.kind, "Job");
		assert.deepEqual(o.body.metadata.finalizers, ["orphan"]);
		const orphans = await podsOf("orph");
		assert.equal(orphans.length, 1);
		assert.equal(orphans[0].metadata.ownerReferences, undefined);

		const b = await api("DELETE", `${JOBS}/bg`, { body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Background" } });
		assert.equal(b.status, 200);
		assert.equal(b.body.kind, "Status");
		assert.equal(b.body.status, "Success");
		assert.deepEqual(await podsOf("bg"), []);

		assert.equal((await api("DELETE", `${JOBS}/bg?propagationPolicy=Background`)).status, 404);
		assert.equal((await api("GET", `${JOBS}/bg`)).body.message, 'jobs.batch "bg" not found');
	});

	test("missing namespace is a 404 Status", async () => {
		const r = await api("POST", "/apis/batch/v1/namespaces/nope/jobs", { body: jobBody("x") });
		assert.equal(r.status, 404);
		assert.equal(r.body.message, 'namespaces "nope" not found');
	});
});

describe("faults", () => {
	test("429 with Retry-After and a plain-text body, for the next N requests only", async () => {
		await control("PUT", "/fault", { mode: "429", retry_after: 2, count: 1, methods: ["POST"] });
		assert.equal((await api("GET", JOBS)).status, 200, "methods filter");
		const r = await api("POST", JOBS, { body: jobBody("rl") });
		assert.equal(r.status, 429);
		assert.equal(r.headers["retry-after"], "2");
		assert.equal(r.body, "Too many requests, please try again later.\n");
		assert.equal((await api("POST", JOBS, { body: jobBody("rl") })).status, 201);
		assert.equal((await control("GET", "/fault")).mode, "none");
	});

	test("drop closes the connection without a response", async () => {
		await control("PUT", "/fault", { mode: "drop" });
		await assert.rejects(api("GET", JOBS), /socket hang up|ECONNRESET/);
		await control("PUT", "/fault", { mode: "none" });
		assert.equal((await api("GET", JOBS)).status, 200);
	});

	test("status fault returns a Status; after=true applies it once the request took effect", async () => {
		await control("PUT", "/fault", { mode: "status", status: 503, count: 1, after: true });
		const r = await api("POST", JOBS, { body: jobBody("lost") });
		assert.equal(r.status, 503);
		assert.equal(r.body.reason, "ServiceUnavailable");
		assert.equal((await api("GET", `${JOBS}/lost`)).status, 200, "the create happened");
	});

	test("hang holds the request until the fault is cleared", async () => {
		await control("PUT", "/fault", { mode: "hang" });
		const pending = api("GET", JOBS);
		let settled = false;
		pending.then(
			() => (settled = true),
			() => (settled = true),
		);
		await new Promise((r) => setTimeout(r, 200));
		assert.equal(settled, false);
		await control("PUT", "/fault", { mode: "none" });
		await assert.rejects(pending);
	});
});

describe("watch", () => {
	test("MODIFIED after a status change, then BOOKMARKs", async () => {
		await control("PUT", "/watch", { bookmark_ms: 100 });
		const created = (await api("POST", JOBS, { body: jobBody("w1", { labels: { app: "w" } }) })).body;
		await api("POST", JOBS, { body: jobBody("w2", { labels: { app: "other" } }) });
		const rv = created.metadata.resourceVersion;
		const w = watch(`${JOBS}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&labelSelector=app%3Dw&timeoutSeconds=10`);
		assert.equal(await w.status, 200);
		await control("POST", `/jobs/${NS}/w2/status`, { phase: "running" }); // filtered out
		await control("POST", `/jobs/${NS}/w1/status`, { phase: "failed", pod_reason: "OOMKilled", exit_code: 137 });
		const mod = await w.next((e) => e.type === "MODIFIED");
		assert.equal(mod.object.kind, "Job");
		assert.equal(mod.object.metadata.name, "w1");
		assert.ok(Number(mod.object.metadata.resourceVersion) > Number(rv));
		assert.deepEqual(
			mod.object.status.conditions.map((c) => [c.type, c.status, c.reason]),
			[["Failed", "True", "BackoffLimitExceeded"]],
		);
		const bm = await w.next((e) => e.type === "BOOKMARK");
		assert.deepEqual(Object.keys(bm.object).sort(), ["apiVersion", "kind", "metadata"]);
		assert.ok(Number(bm.object.metadata.resourceVersion) >= Number(mod.object.metadata.resourceVersion));
		assert.ok(!w.events.some((e) => e.object.metadata?.name === "w2"));
		const [pod] = (await api("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=job-name%3Dw1`)).body.items;
		assert.deepEqual(pod.status.containerStatuses[0].state.terminated.reason, "OOMKilled");
		assert.equal(pod.status.containerStatuses[0].state.terminated.exitCode, 137);
		await control("POST", "/watch/close");
		await w.ended;
	});

	test("an RV older than the compacted history gets a 410 ERROR event in a 200 stream", async () => {
		const old = (await api("POST", JOBS, { body: jobBody("c1") })).body.metadata.resourceVersion;
		await api("POST", JOBS, { body: jobBody("c2") });
		await control("POST", "/watch/compact");
		const w = watch(`/apis/batch/v1/jobs?watch=true&resourceVersion=${old}`);
		assert.equal(await w.status, 200);
		const events = await w.ended;
		assert.equal(events.length, 1);
		assert.equal(events[0].type, "ERROR");
		assert.equal(events[0].object.kind, "Status");
		assert.equal(events[0].object.code, 410);
		assert.equal(events[0].object.reason, "Expired");
		assert.match(events[0].object.message, new RegExp(`^too old resource version: ${old} \\(\\d+\\)$`));
	});

	test("without a resourceVersion the current objects come first as ADDED; the stream ends at timeoutSeconds", async () => {
		await api("POST", JOBS, { body: jobBody("i1") });
		const w = watch(`/apis/batch/v1/watch/namespaces/${NS}/jobs?timeoutSeconds=1`);
		const added = await w.next((e) => e.type === "ADDED");
		assert.equal(added.object.metadata.name, "i1");
		await api("DELETE", `${JOBS}/i1?propagationPolicy=Background`);
		assert.equal((await w.next((e) => e.type === "DELETED")).object.metadata.name, "i1");
		await w.ended;
	});
});

describe("control", () => {
	test("back-dating, foreign objects, since-filtered log", async () => {
		await api("POST", JOBS, { body: jobBody("old") });
		const job = await control("POST", `/jobs/${NS}/old/creationTimestamp`, { time: "2020-01-01T00:00:00Z" });
		assert.equal(job.metadata.creationTimestamp, "2020-01-01T00:00:00Z");
		const pods = await control("GET", "/pods");
		assert.equal(pods[0].metadata.creationTimestamp, "2020-01-01T00:00:00Z");
		await control("POST", "/objects", { kind: "Pod", object: { metadata: { name: "stray", namespace: NS, labels: { app: "x" } }, spec: { containers: [] } } });
		assert.equal((await api("GET", `/api/v1/namespaces/${NS}/pods/stray`)).body.metadata.name, "stray");
		const log = await control("GET", "/requests");
		const since = await control("GET", `/requests?since=${log[0].seq}`);
		assert.deepEqual(since.map((e) => e.seq), log.slice(1).map((e) => e.seq));
		assert.equal((await control("GET", "/health")).ok, true);
	});
});
