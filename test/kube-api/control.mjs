// The control port: plain HTTP + JSON for the test harness to inspect what
// the client sent, inject faults, and play the rest of the cluster (Job
// status, ages, foreign objects, bulk creation and deletion, the TTL
// controller, watch storms, watch and pagination expiry).

import { ApiError, JOBS, PODS, jsonWithKind } from "./status.mjs";
import { FaultError } from "./faults.mjs";
import { BulkError, bulkCreateJobs } from "./bulk.mjs";
import { selectorsOf } from "./api.mjs";

const PROPAGATION = ["Background", "Foreground", "Orphan"];

class ControlError extends Error {
	constructor(code, message) {
		super(message);
		this.code = code;
	}
}

const bad = (msg) => new ControlError(400, msg);

function readJson(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on("data", (c) => chunks.push(c));
		req.on("error", reject);
		req.on("end", () => {
			const text = Buffer.concat(chunks).toString("utf8").trim();
			if (text === "") return resolve({});
			try {
				resolve(JSON.parse(text));
			} catch (err) {
				reject(bad(`invalid JSON body: ${err.message}`));
			}
		});
	});
}

function reply(res, code, body) {
	const text = typeof body === "string" ? body : JSON.stringify(body);
	res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) }).end(text);
}

const objectsJson = (res, objects) => `[${objects.map((o) => jsonWithKind(res, o)).join(",")}]`;

function stringList(v, what) {
	if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw bad(`${what} must be a list of strings`);
	return v;
}

/** Routes: "METHOD /path" or a pattern with {ns}/{name}. */
function routes(state) {
	const { store, hub, lister, cluster, faults, log } = state;
	const listOf = (res, query) => [...store.iterate(res, query.get("namespace") ?? "")];
	return [
		["GET", /^\/health$/, () => ({ ok: true })],

		["GET", /^\/requests$/, (_m, q) => log.since(Number(q.get("since") ?? 0))],
		["DELETE", /^\/requests$/, () => (log.clear(), { ok: true })],
		["GET", /^\/violations$/, () => log.violations],
		["DELETE", /^\/violations$/, () => (log.clearViolations(), { ok: true })],
		["GET", /^\/log$/, () => log.settings()],
		[
			"PUT",
			/^\/log$/,
			(_m, _q, body) => {
				try {
					return log.configure(body);
				} catch (err) {
					throw bad(err.message);
				}
			},
		],

		["GET", /^\/tokens$/, () => ({ tokens: state.auth.tokens.size, forbidden: state.auth.forbidden.size, user: state.auth.user })],
		[
			"PUT",
			/^\/tokens$/,
			(_m, _q, body) => {
				state.setTokens({
					tokens: body.tokens == null ? null : stringList(body.tokens, "tokens"),
					forbidden: body.forbidden == null ? null : stringList(body.forbidden, "forbidden"),
					user: body.user,
				});
				return { ok: true };
			},
		],

		["GET", /^\/fault$/, () => faults.get()],
		["PUT", /^\/fault$/, (_m, _q, body) => faults.set(body)],
		["DELETE", /^\/fault$/, () => (faults.clear(), faults.get())],

		["GET", /^\/latency$/, () => ({ ms: state.latencyMs })],
		[
			"PUT",
			/^\/latency$/,
			(_m, _q, body) => {
				const ms = Number(body.ms ?? 0);
				if (!Number.isFinite(ms) || ms < 0) throw bad("ms must be a non-negative number");
				state.latencyMs = ms;
				return { ms };
			},
		],

		["GET", /^\/namespaces$/, () => ({ namespaces: [...state.namespaces.keys()] })],
		[
			"PUT",
			/^\/namespaces$/,
			(_m, _q, body) => {
				state.setNamespaces(stringList(body.namespaces, "namespaces"));
				return { namespaces: [...state.namespaces.keys()] };
			},
		],

		["GET", /^\/jobs$/, (_m, q) => objectsJson(JOBS, listOf(JOBS, q))],
		["GET", /^\/pods$/, (_m, q) => objectsJson(PODS, listOf(PODS, q))],
		["DELETE", /^\/state$/, () => (state.reset(), { ok: true })],

		[
			"POST",
			/^\/jobs\/([^/]+)\/([^/]+)\/status$/,
			([, ns, name], _q, body) => {
				if (body.status === undefined && typeof body.phase !== "string") throw bad('body needs "phase" (pending|running|succeeded|failed) or "status"');
				try {
					return jsonWithKind(JOBS, cluster.setJobPhase(ns, name, body));
				} catch (err) {
					if (err instanceof ApiError) throw err;
					throw bad(err.message);
				}
			},
		],
		[
			"POST",
			/^\/jobs\/([^/]+)\/([^/]+)\/creationTimestamp$/,
			([, ns, name], _q, body) => {
				const ms = Date.parse(body.time);
				if (typeof body.time !== "string" || Number.isNaN(ms)) throw bad('body needs "time" as RFC 3339, e.g. "2020-01-01T00:00:00Z"');
				return jsonWithKind(JOBS, cluster.setCreationTimestamp(ns, name, body.time));
			},
		],
		// Many Jobs at once, for tests and benchmarks; see bulk.mjs.
		["POST", /^\/jobs\/([^/]+)\/bulk$/, ([, ns], _q, body) => bulkCreateJobs(state, ns, body)],
		// Deletions done by someone else (an operator, kubectl).
		[
			"DELETE",
			/^\/jobs\/([^/]+)$/,
			([, ns], q) => {
				const policy = q.get("propagationPolicy") ?? "Background";
				if (!PROPAGATION.includes(policy)) throw bad(`propagationPolicy must be one of ${PROPAGATION.join(", ")}`);
				return cluster.deleteJobs(ns, { ...selectorsOf(q, JOBS), propagationPolicy: policy });
			},
		],
		[
			"DELETE",
			/^\/jobs\/([^/]+)\/([^/]+)$/,
			([, ns, name], q) => cluster.deleteJob(ns, name, { propagationPolicy: q.get("propagationPolicy") ?? "Background" }).body,
		],
		["DELETE", /^\/pods\/([^/]+)\/([^/]+)$/, ([, ns, name]) => jsonWithKind(PODS, cluster.deletePod(ns, name))],
		[
			"POST",
			/^\/objects$/,
			(_m, _q, body) => {
				const res = { Job: JOBS, Pod: PODS }[body.kind];
				if (!res) throw bad('kind must be "Job" or "Pod"');
				if (body.object === null || typeof body.object !== "object") throw bad("object must be a JSON object");
				try {
					return jsonWithKind(res, cluster.insertObject(res, body.object));
				} catch (err) {
					if (err instanceof ApiError) throw err;
					throw bad(err.message);
				}
			},
		],

		[
			"GET",
			/^\/watch$/,
			() => ({ bookmark_ms: hub.bookmarkMs, end_at_once: hub.endAtOnce, watchers: hub.watchers.size, history: hub.history.length, floor_rv: hub.floorRV }),
		],
		[
			"PUT",
			/^\/watch$/,
			(_m, _q, body) => {
				if (body.bookmark_ms == null && body.end_at_once == null) throw bad('body needs "bookmark_ms" and/or "end_at_once"');
				if (body.end_at_once != null && typeof body.end_at_once !== "boolean") throw bad("end_at_once must be true or false");
				if (body.bookmark_ms != null) {
					const ms = Number(body.bookmark_ms);
					if (!Number.isFinite(ms) || ms < 10) throw bad("bookmark_ms must be a number >= 10");
					hub.setBookmarkInterval(ms);
				}
				if (body.end_at_once != null) hub.endAtOnce = body.end_at_once;
				return { bookmark_ms: hub.bookmarkMs, end_at_once: hub.endAtOnce };
			},
		],
		[
			"POST",
			/^\/watch\/close$/,
			() => {
				const closed = hub.watchers.size;
				hub.closeAll();
				return { closed };
			},
		],
		["POST", /^\/watch\/compact$/, () => (hub.compact(), { floor_rv: hub.floorRV })],
		["POST", /^\/continue\/expire$/, () => ({ expired: lister.expireAll() })],

		["GET", /^\/ttl$/, () => state.ttl.settings()],
		[
			"PUT",
			/^\/ttl$/,
			(_m, _q, body) => {
				try {
					return state.ttl.configure(body);
				} catch (err) {
					throw bad(err.message);
				}
			},
		],

		[
			"GET",
			/^\/stats$/,
			() => ({
				resource_version: store.currentRV,
				jobs: store.count(JOBS),
				pods: store.count(PODS),
				watchers: hub.watchers.size,
				requests: log.seq,
				memory_rss: process.memoryUsage().rss,
				heap_used: process.memoryUsage().heapUsed,
			}),
		],
	];
}

export function createControlHandler(state) {
	const table = routes(state);
	return async (req, res) => {
		const url = new URL(req.url, "http://control");
		try {
			const candidates = table.filter(([, re]) => re.test(url.pathname));
			if (candidates.length === 0) throw new ControlError(404, `no control endpoint ${url.pathname}`);
			const hit = candidates.find(([m]) => m === req.method);
			if (!hit) throw new ControlError(405, `${req.method} not allowed on ${url.pathname}`);
			const body = await readJson(req);
			const match = hit[1].exec(url.pathname).map((s, i) => (i === 0 ? s : decodeURIComponent(s)));
			reply(res, 200, hit[2](match, url.searchParams, body));
		} catch (err) {
			if (err instanceof ControlError) reply(res, err.code, { error: err.message });
			else if (err instanceof FaultError || err instanceof BulkError) reply(res, 400, { error: err.message });
			else if (err instanceof ApiError) reply(res, err.code, { error: err.message, status: err.toStatus() });
			else {
				console.error("kube-api control: internal error:", err);
				reply(res, 500, { error: String(err?.message ?? err) });
			}
		}
	};
}
