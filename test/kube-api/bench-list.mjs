// Big-list benchmark: starts its own server, bulk-creates N Jobs of ~1.5 KB
// (POST /jobs/{ns}/bulk), and pages through them with limit/continue, with
// and without a labelSelector, as a client's relist would.
//
//   node bench-list.mjs [--jobs 100000] [--limit 500] [--watch]
//
// --watch keeps a Job watch open during the creation (so the server also
// serialises every ADDED event).  Prints one JSON object.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
const TOKEN = "bench-list-token";
const NS = "default";

const { values } = parseArgs({ options: { jobs: { type: "string", default: "100000" }, limit: { type: "string", default: "500" }, watch: { type: "boolean", default: false } } });
const total = Number(values.jobs);
const limit = Number(values.limit);

const dir = mkdtempSync(join(tmpdir(), "kube-api-bench-"));
execFileSync("sh", [join(HERE, "make-certs.sh"), dir]);
writeFileSync(join(dir, "token"), `${TOKEN}\n`);
const server = spawn(process.execPath, [join(HERE, "server.mjs"), "--certs", dir, "--token-file", join(dir, "token")], { stdio: ["ignore", "pipe", "inherit"] });
const { port, control_port: controlPort } = JSON.parse(await new Promise((resolve) => createInterface({ input: server.stdout }).once("line", resolve)));
const agent = new Agent({ keepAlive: true, ca: readFileSync(join(dir, "ca.crt")) });

function control(method, path, body) {
	const payload = body === undefined ? undefined : JSON.stringify(body);
	return new Promise((resolve, reject) => {
		const req = httpRequest({ host: "127.0.0.1", port: controlPort, method, path, headers: { "Content-Type": "application/json" } }, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => {
				const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
				if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${JSON.stringify(parsed)}`));
				else resolve(parsed);
			});
		});
		req.on("error", reject);
		req.end(payload);
	});
}

function get(path) {
	return new Promise((resolve, reject) => {
		const req = request({ host: "127.0.0.1", port, path, agent, servername: "localhost", headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
		});
		req.on("error", reject);
		req.end();
	});
}

// A Job as a scheduler would make it: ~1.5 KB as stored.
const template = {
	apiVersion: "batch/v1",
	kind: "Job",
	metadata: {
		labels: { "app.kubernetes.io/managed-by": "jobsched", "app.kubernetes.io/name": "bench" },
		annotations: { "jobsched.example.com/queue": "default", "jobsched.example.com/submitted-by": "bench-list" },
	},
	spec: {
		backoffLimit: 0,
		ttlSecondsAfterFinished: 3600,
		template: {
			metadata: { labels: { "app.kubernetes.io/managed-by": "jobsched" } },
			spec: {
				restartPolicy: "Never",
				containers: [
					{
						name: "main",
						image: "registry.example.com/batch/worker:1.4.2",
						command: ["/bin/sh", "-c", "exec /usr/local/bin/worker --queue default --once"],
						env: [
							{ name: "QUEUE", value: "default" },
							{ name: "LOG_LEVEL", value: "info" },
						],
						resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
					},
				],
			},
		},
	},
};

const names = Array.from({ length: total }, (_, i) => `job-${String(i).padStart(6, "0")}`);
const labels_by_name = {};
names.forEach((n, i) => (labels_by_name[n] = { "jobsched.example.com/id": String(i), "jobsched.example.com/state": i % 10 === 0 ? "done" : "queued" }));

/** Page through `path` with limit/continue; per-page times and totals. */
async function pageThrough(path) {
	const times = [];
	let items = 0;
	let bytes = 0;
	let cont = "";
	const t0 = performance.now();
	do {
		const s = performance.now();
		const body = await get(`${path}${path.includes("?") ? "&" : "?"}limit=${limit}${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`);
		const page = JSON.parse(body);
		times.push(performance.now() - s);
		bytes += body.length;
		items += page.items.length;
		cont = page.metadata.continue;
	} while (cont);
	const ms = performance.now() - t0;
	const sorted = [...times].sort((a, b) => a - b);
	const pct = (p) => Number(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(1));
	return { items, pages: times.length, seconds: Number((ms / 1000).toFixed(2)), first_page_ms: Number(times[0].toFixed(1)), page_p50_ms: pct(0.5), page_p99_ms: pct(0.99), mbytes: Number((bytes / 1e6).toFixed(1)) };
}

const result = { jobs: total, limit };
try {
	const rss0 = (await control("GET", "/stats")).memory_rss;
	let watchReq = null;
	if (values.watch) {
		watchReq = request({ host: "127.0.0.1", port, path: `/apis/batch/v1/namespaces/${NS}/jobs?watch=1`, agent: false, ca: readFileSync(join(dir, "ca.crt")), servername: "localhost", headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => res.resume());
		watchReq.on("error", () => {});
		watchReq.end();
	}
	let t = performance.now();
	const created = await control("POST", `/jobs/${NS}/bulk`, { template, names, labels_by_name });
	result.bulk_create_seconds = Number(((performance.now() - t) / 1000).toFixed(2));
	result.bulk_create_server_ms = created.ms;
	const one = JSON.parse(await get(`/apis/batch/v1/namespaces/${NS}/jobs/${names[0]}`));
	result.job_json_bytes = Buffer.byteLength(JSON.stringify(one));
	global.gc?.();
	const stats = await control("GET", "/stats");
	result.rss_mb_before = Math.round(rss0 / 2 ** 20);
	result.rss_mb_after = Math.round(stats.memory_rss / 2 ** 20);
	result.heap_mb_after = Math.round(stats.heap_used / 2 ** 20);

	result.paged_with_selector = await pageThrough(`/apis/batch/v1/namespaces/${NS}/jobs?labelSelector=${encodeURIComponent("jobsched.example.com/state=queued")}`);
	result.paged_all = await pageThrough(`/apis/batch/v1/namespaces/${NS}/jobs`);
	// A client that creates a Job and then lists: the key index is kept up
	// to date, not re-sorted.
	await control("POST", `/jobs/${NS}/bulk`, { template, names: ["job-extra"] });
	t = performance.now();
	await get(`/apis/batch/v1/namespaces/${NS}/jobs?limit=${limit}`);
	result.first_page_after_one_create_ms = Number((performance.now() - t).toFixed(1));
	const end = await control("GET", "/stats");
	result.rss_mb_end = Math.round(end.memory_rss / 2 ** 20);
	result.heap_mb_end = Math.round(end.heap_used / 2 ** 20);
	watchReq?.destroy();
} finally {
	agent.destroy();
	server.kill("SIGTERM");
	rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 1));
