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

/** Control API call (plain HTTP); resolves {status, body} with the JSON reply parsed. */
function controlRaw(method, path, body) {
	const payload = body === undefined ? undefined : JSON.stringify(body);
	return new Promise((resolve, reject) => {
		const headers = { "Content-Type": "application/json" };
		if (payload !== undefined) headers["Content-Length"] = Buffer.byteLength(payload);
		const req = httpRequest({ host: "127.0.0.1", port: controlPort, method, path, headers }, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
		});
		req.on("error", reject);
		req.end(payload);
	});
}

/** Control API call; resolves the parsed JSON reply, rejects on non-2xx. */
async function control(method, path, body) {
	const r = await controlRaw(method, path, body);
	if (r.status >= 300) throw new Error(`control ${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
	return r.body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `cond` until it holds (or fail after `ms`). */
async function until(cond, ms = 4000, what = "condition") {
	const end = Date.now() + ms;
	while (!(await cond())) {
		if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
		await sleep(10);
	}
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
		// "aborted" after close(): the test asked for it.
		res.on("error", () => {});
		lines.on("error", () => {});
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

describe("fault filters and hang resets", () => {
	test("watch:false fails Job lists while watches work; watch:true fails only watches", async () => {
		await api("POST", JOBS, { body: jobBody("ff") });
		await control("PUT", "/fault", { mode: "status", status: 500, methods: ["GET"], watch: false, path_prefix: JOBS });
		assert.equal((await api("GET", JOBS)).status, 500);
		assert.equal((await api("GET", `${JOBS}/ff`)).status, 500);
		const w = watch(`${JOBS}?watch=1&timeoutSeconds=5`);
		assert.equal(await w.status, 200);
		assert.equal((await w.next((e) => e.type === "ADDED")).object.metadata.name, "ff");
		w.close();
		assert.deepEqual((await control("GET", "/fault")).watch, false);

		await control("PUT", "/fault", { mode: "status", status: 503, watch: true });
		assert.equal((await api("GET", JOBS)).status, 200);
		assert.equal((await api("GET", `${JOBS}?watch=true`)).status, 503);
		assert.equal((await api("GET", `/apis/batch/v1/watch/namespaces/${NS}/jobs`)).status, 503);
		assert.equal((await controlRaw("PUT", "/fault", { mode: "drop", watch: "yes" })).status, 400);
	});

	test("a query filter matches exact parameter values; path matches one path exactly", async () => {
		await api("POST", JOBS, { body: jobBody("fq") });
		const byName = (n) => `${JOBS}?fieldSelector=${encodeURIComponent(`metadata.name=${n}`)}`;
		await control("PUT", "/fault", { mode: "status", status: 500, query: { fieldSelector: "metadata.name=fq" } });
		assert.deepEqual((await control("GET", "/fault")).query, { fieldSelector: "metadata.name=fq" });
		assert.equal((await api("GET", byName("fq"))).status, 500);
		assert.equal((await api("GET", byName("other"))).status, 200);
		assert.equal((await api("GET", JOBS)).status, 200);

		await control("PUT", "/fault", { mode: "status", status: 500, methods: ["GET"], path: `${JOBS}/fq` });
		assert.equal((await api("GET", `${JOBS}/fq`)).status, 500);
		assert.equal((await api("GET", `${JOBS}/fq/status`)).status, 200);
		assert.equal((await api("GET", JOBS)).status, 200);
		assert.equal((await controlRaw("PUT", "/fault", { mode: "drop", query: ["x"] })).status, 400);
	});

	test("hang with close_after_ms resets the connection after that long, without a response", { timeout: 5000 }, async () => {
		await control("PUT", "/fault", { mode: "hang", close_after_ms: 300 });
		const t0 = performance.now();
		await assert.rejects(api("GET", JOBS), /socket hang up|ECONNRESET/);
		const ms = performance.now() - t0;
		assert.ok(ms >= 280 && ms < 3000, `closed after ${ms} ms`);
		const [entry] = await control("GET", "/requests");
		assert.equal(entry.fault, "hang");
		assert.equal(entry.status, null);
		await control("DELETE", "/fault");
		assert.equal((await api("GET", JOBS)).status, 200);
		assert.equal((await controlRaw("PUT", "/fault", { mode: "status", close_after_ms: 10 })).status, 400);
	});
});

describe("watch storm", () => {
	test("end_at_once: each new watch gets its ADDED events, then ends; off again by PUT or DELETE /state", async () => {
		const rv1 = (await api("POST", JOBS, { body: jobBody("st1") })).body.metadata.resourceVersion;
		await api("POST", JOBS, { body: jobBody("st2") });
		assert.deepEqual(await control("PUT", "/watch", { end_at_once: true }), { bookmark_ms: 1000, end_at_once: true });
		assert.equal((await control("GET", "/watch")).end_at_once, true);

		const w = watch(`${JOBS}?watch=1&timeoutSeconds=30`);
		assert.equal(await w.status, 200);
		const events = await w.ended;
		assert.deepEqual(events.map((e) => [e.type, e.object.metadata.name]), [["ADDED", "st1"], ["ADDED", "st2"]]);
		// From an RV: nothing, not even the replay of st2's ADDED.
		const fromRv = watch(`${JOBS}?watch=1&resourceVersion=${rv1}&timeoutSeconds=30`);
		assert.equal(await fromRv.status, 200);
		assert.deepEqual(await fromRv.ended, []);
		const log = (await control("GET", "/requests")).filter((e) => e.watch);
		assert.deepEqual(log.map((e) => [e.status, e.query.watch]), [[200, "1"], [200, "1"]]);

		await control("PUT", "/watch", { end_at_once: false });
		const open = watch(`${JOBS}?watch=1&timeoutSeconds=30`);
		await open.next((e) => e.object.metadata.name === "st2");
		await api("POST", JOBS, { body: jobBody("st3") });
		await open.next((e) => e.object.metadata.name === "st3");
		open.close();

		await control("PUT", "/watch", { end_at_once: true });
		await control("DELETE", "/state");
		assert.equal((await control("GET", "/watch")).end_at_once, false);
		assert.equal((await controlRaw("PUT", "/watch", { end_at_once: 1 })).status, 400);
	});
});

describe("bulk Jobs", () => {
	const strip = (job) => {
		// What may differ between two Jobs made from the same body.
		const { uid, name } = job.metadata;
		const text = JSON.stringify({ ...job, kind: undefined, apiVersion: undefined, metadata: { ...job.metadata, resourceVersion: undefined, creationTimestamp: undefined } });
		return JSON.parse(text.replaceAll(uid, "UID").replaceAll(name, "NAME"));
	};

	test("POST /jobs/{ns}/bulk stores valid Jobs, each its own, with ADDED events and pods on request", async () => {
		const template = jobBody("ignored", { labels: { app: "b" }, extraSpec: { ttlSecondsAfterFinished: 3600 } });
		const w = watch(`${JOBS}?watch=1&timeoutSeconds=10`);
		assert.equal(await w.status, 200);
		const r = await control("POST", `/jobs/${NS}/bulk`, {
			template,
			names: ["b-1", "b-2", "b-3"],
			labels_by_name: { "b-2": { extra: "yes" } },
			annotations_by_name: { "b-3": { "example.com/note": "x" } },
			pods: true,
		});
		assert.equal(r.created, 3);
		assert.equal(r.pods, 3);
		assert.equal(r.resource_version - r.first_resource_version, 5, "a Job and a pod each");
		const jobs = (await api("GET", JOBS)).body.items;
		assert.deepEqual(jobs.map((j) => j.metadata.name), ["b-1", "b-2", "b-3"]);
		assert.equal(new Set(jobs.map((j) => j.metadata.uid)).size, 3);
		assert.equal(new Set(jobs.map((j) => j.metadata.resourceVersion)).size, 3);
		for (const j of jobs) {
			assert.match(j.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
			assert.equal(j.spec.template.metadata.labels["batch.kubernetes.io/job-name"], j.metadata.name);
			assert.deepEqual(j.spec.selector.matchLabels, { "batch.kubernetes.io/controller-uid": j.metadata.uid });
		}
		assert.deepEqual(jobs[1].metadata.labels, { app: "b", extra: "yes" });
		assert.deepEqual(jobs[2].metadata.annotations, { "example.com/note": "x" });

		// The same Job as a create through the API would store.
		const viaApi = (await api("POST", JOBS, { body: { ...template, metadata: { ...template.metadata, name: "b-api" } } })).body;
		assert.deepEqual(strip(jobs[0]), strip(viaApi));

		for (const name of ["b-1", "b-2", "b-3"]) await w.next((e) => e.type === "ADDED" && e.object.metadata.name === name);
		w.close();
		const pods = (await api("GET", `/api/v1/namespaces/${NS}/pods`)).body.items;
		assert.deepEqual(pods.map((p) => p.metadata.ownerReferences[0].name).sort(), ["b-1", "b-2", "b-3", "b-api"]);
	});

	test("bulk: count/prefix names, back-dating and status; refusals change nothing", async () => {
		const r = await control("POST", `/jobs/${NS}/bulk`, {
			template: jobBody("x"),
			count: 3,
			prefix: "n-",
			start: 7,
			creation_timestamp: "2020-01-01T00:00:00Z",
			status: { succeeded: 1 },
		});
		assert.equal(r.created, 3);
		assert.equal(r.pods, 0);
		const jobs = await control("GET", `/jobs?namespace=${NS}`);
		assert.deepEqual(jobs.map((j) => [j.metadata.name, j.metadata.creationTimestamp, j.status.succeeded]), [
			["n-7", "2020-01-01T00:00:00Z", 1],
			["n-8", "2020-01-01T00:00:00Z", 1],
			["n-9", "2020-01-01T00:00:00Z", 1],
		]);
		const refused = async (body, code) => {
			const before = (await control("GET", "/stats")).resource_version;
			const res = await controlRaw("POST", `/jobs/${NS}/bulk`, body);
			assert.equal(res.status, code, JSON.stringify(res.body));
			assert.equal((await control("GET", "/stats")).resource_version, before);
			return res.body;
		};
		assert.equal((await refused({ template: jobBody("x"), names: ["fresh", "n-8"] }, 409)).status.reason, "AlreadyExists");
		assert.equal((await refused({ template: jobBody("x", { restartPolicy: "Always" }), names: ["fresh"] }, 422)).status.reason, "Invalid");
		assert.match((await refused({ template: jobBody("x"), names: ["fresh", "a".repeat(64)] }, 422)).error, /must be no more than 63 characters/);
		assert.equal((await refused({ template: jobBody("x", { extraSpec: { foo: 1 } }), names: ["fresh"] }, 400)).status.reason, "BadRequest");
		await refused({ template: jobBody("x"), names: ["dup", "dup"] }, 400);
		await refused({ template: jobBody("x"), names: ["fresh"], labels_by_name: { fresh: { n: 1 } } }, 400);
		assert.equal((await controlRaw("POST", "/jobs/nope/bulk", { template: jobBody("x"), names: ["a"] })).status, 404);
	});

	test("DELETE /jobs/{ns} deletes 3000 Jobs and their pods at once, with a DELETED event each", async () => {
		await control("POST", `/jobs/${NS}/bulk`, { template: jobBody("x", { labels: { app: "bulk" } }), count: 3000, prefix: "del-", pods: true });
		await control("POST", `/jobs/${NS}/bulk`, { template: jobBody("x", { labels: { app: "keep" } }), names: ["keep-1", "keep-2"], pods: true });
		const rv = (await api("GET", `${JOBS}?limit=1`)).body.metadata.resourceVersion;
		const wj = watch(`${JOBS}?watch=1&resourceVersion=${rv}&timeoutSeconds=30`);
		const wp = watch(`/api/v1/namespaces/${NS}/pods?watch=1&resourceVersion=${rv}&timeoutSeconds=30`);
		assert.equal(await wj.status, 200);
		assert.equal(await wp.status, 200);

		const t0 = performance.now();
		assert.deepEqual(await control("DELETE", `/jobs/${NS}?labelSelector=app%3Dbulk`), { deleted: 3000, pods_deleted: 3000 });
		const ms = performance.now() - t0;
		assert.ok(ms < 2000, `took ${ms} ms`);
		const deleted = (w) => w.events.filter((e) => e.type === "DELETED").length;
		await until(() => deleted(wj) === 3000 && deleted(wp) === 3000, 10_000, "3000 DELETED events each");
		wj.close();
		wp.close();
		assert.deepEqual((await api("GET", JOBS)).body.items.map((j) => j.metadata.name), ["keep-1", "keep-2"]);

		// The one-Job route still answers beside the bulk one.
		assert.equal((await control("DELETE", `/jobs/${NS}/keep-2`)).status, "Success");
		assert.deepEqual(await control("DELETE", `/jobs/${NS}?propagationPolicy=Orphan`), { deleted: 1, pods_deleted: 0 });
		assert.equal((await api("GET", `/api/v1/namespaces/${NS}/pods`)).body.items.length, 1);
		assert.equal((await controlRaw("DELETE", `/jobs/${NS}?propagationPolicy=Sideways`)).status, 400);
		assert.equal((await controlRaw("DELETE", `/jobs/${NS}?labelSelector=a+in+b`)).status, 400);
	});

	test("paging through 10,000 Jobs with a labelSelector serves every match once, at one RV", async () => {
		const labels_by_name = {};
		for (let i = 0; i < 10_000; i++) labels_by_name[`pg-${i}`] = { tier: i % 2 ? "odd" : "even" };
		await control("POST", `/jobs/${NS}/bulk`, { template: jobBody("x"), names: Object.keys(labels_by_name), labels_by_name });
		const seen = [];
		let rv = null;
		let cont = "";
		const t0 = performance.now();
		do {
			const page = (await api("GET", `${JOBS}?limit=500&labelSelector=tier%3Deven${cont ? `&continue=${cont}` : ""}`)).body;
			rv ??= page.metadata.resourceVersion;
			assert.equal(page.metadata.resourceVersion, rv);
			seen.push(...page.items.map((j) => j.metadata.name));
			cont = page.metadata.continue;
			if (seen.length === 500) await api("POST", JOBS, { body: jobBody("pg-late", { labels: { tier: "even" } }) }); // not in the snapshot
		} while (cont);
		const ms = performance.now() - t0;
		assert.equal(seen.length, 5000);
		assert.equal(new Set(seen).size, 5000);
		assert.ok(seen.every((n) => Number(n.slice(3)) % 2 === 0));
		assert.ok(ms < 5000, `took ${ms} ms`);
	});
});

describe("TTL-after-finished controller", () => {
	const withTtl = (name, ttl) => jobBody(name, { extraSpec: ttl == null ? {} : { ttlSecondsAfterFinished: ttl } });

	test("ttlSecondsAfterFinished 0: deleted before the status call returns, Foreground with a UID precondition", async () => {
		const job = (await api("POST", JOBS, { body: withTtl("t0", 0) })).body;
		await api("POST", JOBS, { body: withTtl("keep", null) });
		const w = watch(`${JOBS}?watch=1&resourceVersion=${job.metadata.resourceVersion}&timeoutSeconds=10`);
		const wp = watch(`/api/v1/namespaces/${NS}/pods?watch=1&resourceVersion=${job.metadata.resourceVersion}&timeoutSeconds=10`);
		assert.equal(await w.status, 200);
		assert.equal(await wp.status, 200);
		await control("POST", `/jobs/${NS}/t0/status`, { phase: "succeeded" });
		await control("POST", `/jobs/${NS}/keep/status`, { phase: "failed" });
		assert.equal((await api("GET", `${JOBS}/t0`)).status, 404);
		assert.equal((await api("GET", `${JOBS}/keep`)).status, 200);
		await w.next((e) => e.type === "DELETED" && e.object.metadata.name === "t0");
		await wp.next((e) => e.type === "DELETED" && e.object.metadata.ownerReferences?.[0].name === "t0");
		const t0Events = w.events.filter((e) => e.object.metadata.name === "t0").map((e) => [e.type, e.object.metadata.finalizers ?? null]);
		assert.deepEqual(t0Events, [["MODIFIED", null], ["MODIFIED", ["foregroundDeletion"]], ["DELETED", ["foregroundDeletion"]]]);
		w.close();
		wp.close();
		assert.deepEqual(await control("GET", "/ttl"), { enabled: true, propagation_policy: "Foreground", scheduled: 0 });
	});

	test("ttlSecondsAfterFinished N: deleted N seconds after it finished; PUT /ttl switches policy and pauses", async () => {
		await api("POST", JOBS, { body: withTtl("t1", 1) });
		const finished = Date.now(); // no later than the server saw the Failed condition
		await control("POST", `/jobs/${NS}/t1/status`, { phase: "failed" });
		assert.equal((await control("GET", "/ttl")).scheduled, 1);
		await sleep(700);
		assert.equal((await api("GET", `${JOBS}/t1`)).status, 200, "not before its time");
		await until(async () => (await api("GET", `${JOBS}/t1`)).status === 404, 3000, "t1 deleted");
		const after = Date.now() - finished;
		assert.ok(after >= 1000 && after < 2500, `deleted ${after} ms after finishing`);

		await control("PUT", "/ttl", { propagation_policy: "Background", enabled: false });
		const bg = (await api("POST", JOBS, { body: withTtl("t2", 0) })).body;
		const w = watch(`${JOBS}?watch=1&resourceVersion=${bg.metadata.resourceVersion}&timeoutSeconds=10`);
		assert.equal(await w.status, 200);
		await control("POST", `/jobs/${NS}/t2/status`, { phase: "succeeded" });
		assert.equal((await api("GET", `${JOBS}/t2`)).status, 200, "paused");
		await control("PUT", "/ttl", { enabled: true });
		assert.equal((await api("GET", `${JOBS}/t2`)).status, 404, "picked up once enabled");
		await w.next((e) => e.type === "DELETED");
		assert.deepEqual(w.events.map((e) => e.type), ["MODIFIED", "DELETED"], "Background: no deletionTimestamp update");
		w.close();
		assert.equal((await controlRaw("PUT", "/ttl", { propagation_policy: "Later" })).status, 400);
		await control("DELETE", "/state");
		assert.equal((await control("GET", "/ttl")).propagation_policy, "Foreground");
	});
});

describe("size limits", () => {
	const withCommandOf = (name, bytes) => {
		const body = jobBody(name);
		body.spec.template.spec.containers[0].command = ["sh", "-c", `#${"x".repeat(bytes)}`];
		return body;
	};

	test("a body over 3 MiB is a 413 Status, once authenticated", async () => {
		const r = await api("POST", JOBS, { body: withCommandOf("huge", 3 * 1024 * 1024) });
		assert.equal(r.status, 413);
		assert.deepEqual(r.body, {
			kind: "Status",
			apiVersion: "v1",
			metadata: {},
			status: "Failure",
			message: "Request entity too large: limit is 3145728",
			reason: "RequestEntityTooLarge",
			code: 413,
		});
		assert.equal((await api("POST", JOBS, { body: withCommandOf("huge", 3 * 1024 * 1024), token: null })).status, 401);
	});

	test("an object over etcd's 1.5 MiB is etcd's 500, and is not stored", async () => {
		const r = await api("POST", JOBS, { body: withCommandOf("big", 1_600_000) });
		assert.equal(r.status, 500);
		assert.deepEqual(r.body, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "etcdserver: request is too large", code: 500 });
		assert.equal((await api("GET", `${JOBS}/big`)).status, 404);
		assert.equal((await api("POST", JOBS, { body: withCommandOf("big", 1_500_000) })).status, 201);
		// Too large comes first, even for a taken name.
		assert.equal((await api("POST", JOBS, { body: withCommandOf("big", 1_600_000) })).status, 500);
		assert.equal((await api("POST", `${JOBS}?dryRun=All`, { body: withCommandOf("dry", 1_600_000) })).status, 201, "dry runs do not reach etcd");
	});

	test("annotations over 256 KiB in total are a 422", async () => {
		const body = jobBody("ann");
		body.metadata.annotations = { "example.com/a": "x".repeat(200 * 1024), "example.com/b": "x".repeat(60 * 1024) };
		const r = await api("POST", JOBS, { body });
		assert.equal(r.status, 422);
		assert.deepEqual(r.body.details.causes, [{ reason: "FieldValueTooLong", message: "Too long: must have at most 262144 bytes", field: "metadata.annotations" }]);
	});

	test("POST /objects takes 2.5 MB Jobs, and list pages carry them whole", async () => {
		const big = (name) => ({ metadata: { name, namespace: NS, annotations: { blob: "y".repeat(2_500_000) } }, spec: { template: { spec: { containers: [] } } } });
		for (const name of ["o1", "o2", "o3"]) await control("POST", "/objects", { kind: "Job", object: big(name) });
		const page = await api("GET", `${JOBS}?limit=2`);
		assert.equal(page.status, 200);
		assert.deepEqual(page.body.items.map((j) => j.metadata.name), ["o1", "o2"]);
		assert.ok(Buffer.byteLength(JSON.stringify(page.body)) > 5_000_000);
		assert.equal(page.body.items[1].metadata.annotations.blob.length, 2_500_000);
	});
});

describe("delete preconditions", () => {
	test("a UID mismatch is a 409 Conflict in BeforeDelete's words; the log keeps the DeleteOptions body", async () => {
		const job = (await api("POST", JOBS, { body: jobBody("pc") })).body;
		const wrong = "00000000-0000-0000-0000-000000000000";
		const opts = (uid) => ({ kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Background", preconditions: { uid } });
		const r = await api("DELETE", `${JOBS}/pc`, { body: opts(wrong) });
		assert.equal(r.status, 409);
		assert.deepEqual(r.body, {
			kind: "Status",
			apiVersion: "v1",
			metadata: {},
			status: "Failure",
			message: `Operation cannot be fulfilled on Job.batch "pc": the UID in the precondition (${wrong}) does not match the UID in record (${job.metadata.uid}). The object might have been deleted and then recreated`,
			reason: "Conflict",
			details: { name: "pc", group: "batch", kind: "Job" },
			code: 409,
		});
		assert.equal((await api("GET", `${JOBS}/pc`)).status, 200);
		assert.equal((await api("DELETE", `${JOBS}/pc`, { body: opts(job.metadata.uid) })).status, 200);
		const deletes = (await control("GET", "/requests")).filter((e) => e.method === "DELETE");
		assert.deepEqual(deletes.map((e) => [e.status, e.body.preconditions.uid]), [[409, wrong], [200, job.metadata.uid]]);

		await control("POST", "/objects", { kind: "Pod", object: { metadata: { name: "pp", namespace: NS }, spec: { containers: [] } } });
		const p = await api("DELETE", `/api/v1/namespaces/${NS}/pods/pp`, { body: opts(wrong) });
		assert.equal(p.status, 409);
		assert.match(p.body.message, /^Operation cannot be fulfilled on Pod "pp": the UID in the precondition/);
		assert.deepEqual(p.body.details, { name: "pp", kind: "Pod" });
	});
});
