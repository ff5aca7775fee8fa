// POST throughput of a running test server: N keep-alive HTTPS connections,
// one request in flight on each, for a fixed number of requests.
//
//   node bench.mjs --certs DIR --token-file FILE --port N [--control-port M] [--inflight 8] [--requests 20000]
//
// With --control-port the request log is switched to metadata only for the
// run (as a benchmark would) and the server state is reset afterwards.

import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
	options: {
		certs: { type: "string" },
		"token-file": { type: "string" },
		port: { type: "string" },
		"control-port": { type: "string" },
		inflight: { type: "string", default: "8" },
		requests: { type: "string", default: "20000" },
	},
});
const port = Number(values.port);
const inflight = Number(values.inflight);
const total = Number(values.requests);
const token = readFileSync(values["token-file"], "utf8").trim();
const agent = new Agent({ keepAlive: true, maxSockets: inflight, ca: readFileSync(join(values.certs, "ca.crt")) });

function control(method, path, body) {
	if (!values["control-port"]) return Promise.resolve();
	return new Promise((resolve, reject) => {
		const req = httpRequest({ host: "127.0.0.1", port: Number(values["control-port"]), method, path }, (res) => res.resume().on("end", resolve));
		req.on("error", reject);
		req.end(body && JSON.stringify(body));
	});
}

function post(i) {
	const body = JSON.stringify({
		apiVersion: "batch/v1",
		kind: "Job",
		metadata: { name: `bench-${i}`, labels: { "app.kubernetes.io/managed-by": "jobsched", "jobsched/id": String(i) } },
		spec: {
			backoffLimit: 0,
			ttlSecondsAfterFinished: 3600,
			template: { spec: { restartPolicy: "Never", containers: [{ name: "main", image: "busybox:1.36", command: ["sh", "-c", "echo hi"], env: [{ name: "JOB_ID", value: String(i) }] }] } },
		},
	});
	return new Promise((resolve, reject) => {
		const req = request(
			{
				host: "127.0.0.1",
				port,
				method: "POST",
				path: "/apis/batch/v1/namespaces/default/jobs",
				agent,
				servername: "localhost",
				headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
			},
			(res) => {
				res.resume();
				res.on("end", () => (res.statusCode === 201 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
			},
		);
		req.on("error", reject);
		req.end(body);
	});
}

await control("PUT", "/log", { bodies: false });
let next = 0;
const latencies = [];
const t0 = performance.now();
await Promise.all(
	Array.from({ length: inflight }, async () => {
		while (next < total) {
			const i = next++;
			const s = performance.now();
			await post(i);
			latencies.push(performance.now() - s);
		}
	}),
);
const secs = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
console.log(JSON.stringify({ requests: total, inflight, seconds: Number(secs.toFixed(2)), per_second: Math.round(total / secs), p50_ms: Number(pct(0.5)), p99_ms: Number(pct(0.99)) }));
await control("PUT", "/log", { bodies: true });
await control("DELETE", "/state");
agent.destroy();
