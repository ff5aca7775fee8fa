// The Kubernetes API port: request pipeline (log, latency, faults, authn,
// authz), routing of the batch/v1 Jobs and core/v1 pods/namespaces paths,
// and the handlers.  Every failure leaves as a metav1.Status, except the
// 429 of a fault, which like API Priority and Fairness is plain text.

import { randomUUID } from "node:crypto";
import {
	ApiError,
	JOBS,
	NAMESPACES,
	PODS,
	alreadyExists,
	apiVersionOf,
	badRequest,
	forbidden,
	jsonWithKind,
	methodNotAllowed,
	notFound,
	pathNotFound,
	requestEntityTooLarge,
	statusForCode,
	statusObject,
	unauthorized,
} from "./status.mjs";
import { SelectorError, parseFieldSelector, parseLabelSelector } from "./selectors.mjs";
import { FIELD_VALIDATION_MODES, decodeDeleteOptions, decodeJob, jobCreateWarnings, prepareJob, validateJob } from "./validate.mjs";
import { TOO_MANY_REQUESTS_BODY } from "./faults.mjs";
import { timestamp } from "./store.mjs";

const MAX_BODY_BYTES = 3 * 1024 * 1024; // kube-apiserver's request body limit (MaxRequestBodyBytes)
// etcd's default --max-request-bytes.  kube-apiserver allows twice as much
// in a body because JSON shrinks on the way to etcd's protobuf; here the
// stored object's JSON is measured, a stricter and simpler stand-in.
const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
const STREAMING = Symbol("streaming"); // a handler took over the response (watch)

const VERSION = {
	major: "1",
	minor: "28",
	gitVersion: "v1.28.7",
	gitCommit: "c8dcb00be9961ec36d141d2e4103f85f92bcf291",
	gitTreeState: "clean",
	goVersion: "go1.21.7",
	compiler: "gc",
	platform: "linux/amd64",
};

// Field selectors each resource supports (the registry's GetAttrs).
const FIELDS = {
	jobs: {
		"metadata.name": (o) => o.metadata.name,
		"metadata.namespace": (o) => o.metadata.namespace,
		"status.successful": (o) => String(o.status?.succeeded ?? 0),
	},
	pods: {
		"metadata.name": (o) => o.metadata.name,
		"metadata.namespace": (o) => o.metadata.namespace,
		"spec.nodeName": (o) => o.spec?.nodeName ?? "",
		"spec.restartPolicy": (o) => o.spec?.restartPolicy ?? "",
		"spec.schedulerName": (o) => o.spec?.schedulerName ?? "",
		"spec.serviceAccountName": (o) => o.spec?.serviceAccountName ?? "",
		"status.phase": (o) => o.status?.phase ?? "",
		"status.podIP": (o) => o.status?.podIP ?? "",
		"status.nominatedNodeName": (o) => o.status?.nominatedNodeName ?? "",
	},
	namespaces: {
		"metadata.name": (o) => o.metadata.name,
		"status.phase": (o) => o.status?.phase ?? "",
	},
};

// Verbs each resource serves here.
const VERBS = {
	jobs: new Set(["get", "list", "watch", "create", "delete", "deletecollection"]),
	pods: new Set(["get", "list", "watch", "delete", "deletecollection"]),
	namespaces: new Set(["get", "list"]),
};

const json = (code, body) => ({ code, body: typeof body === "string" ? body : JSON.stringify(body) });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function createApiHandler(state) {
	return (req, res) => {
		handle(state, req, res).catch((err) => {
			console.error("kube-api: internal error:", err);
			if (!res.headersSent) {
				const body = JSON.stringify(statusObject(500, "InternalError", `Internal error occurred: ${err.message}`, {}));
				res.writeHead(500, { "Content-Type": "application/json" }).end(body);
			} else res.destroy();
		});
	};
}

async function handle(state, req, res) {
	const qi = req.url.indexOf("?");
	const path = qi < 0 ? req.url : req.url.slice(0, qi);
	const query = new URLSearchParams(qi < 0 ? "" : req.url.slice(qi + 1));
	const entry = state.log.start(req.method, path, Object.fromEntries(query));
	const rctx = { state, req, res, entry, path, query, warnings: [], violations: [], afterFault: null, authn: null, finished: false };
	res.on("close", () => state.log.finish(entry));

	// null: over the limit.  Only the handlers that read a body refuse it
	// (413), after authentication and faults, as in kube-apiserver.
	const raw = await readBody(req);
	state.log.setBody(entry, raw ?? "");

	if (state.latencyMs > 0) await sleep(state.latencyMs);
	authenticate(rctx);

	const fault = state.faults.take({ method: req.method, path, query, watch: isWatch(path, query) });
	if (fault) {
		entry.fault = fault.mode;
		// A stream cannot be answered "after the fact"; fault it up front.
		if (!fault.after || isWatch(path, query)) return applyFault(rctx, fault);
		rctx.afterFault = fault;
	}

	let result;
	try {
		result = route(rctx, raw);
	} catch (err) {
		if (!(err instanceof ApiError)) throw err;
		result = json(err.code, err.toStatus());
	}
	if (result !== STREAMING) send(rctx, result);
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		let size = 0;
		req.on("data", (c) => {
			size += c.length;
			if (size <= MAX_BODY_BYTES) chunks.push(c);
		});
		req.on("end", () => resolve(size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString("utf8")));
		req.on("error", reject);
	});
}

/** Record the outcome once, whatever path the response took. */
function finishEntry(rctx, status) {
	if (rctx.finished) return;
	rctx.finished = true;
	rctx.entry.status = status;
	rctx.entry.warnings = rctx.warnings;
	rctx.state.log.addViolations(rctx.entry, rctx.violations);
}

function send(rctx, { code, body, contentType = "application/json" }) {
	if (rctx.afterFault) return applyFault(rctx, rctx.afterFault);
	const headers = {
		"Content-Type": contentType,
		"Content-Length": Buffer.byteLength(body),
		"Cache-Control": "no-cache, private",
		"Audit-Id": randomUUID(),
	};
	// One Warning header per warning, RFC 7234 form as kube sends it.
	if (rctx.warnings.length) headers.Warning = rctx.warnings.map((w) => `299 - ${JSON.stringify(w)}`);
	finishEntry(rctx, code);
	rctx.res.writeHead(code, headers).end(body);
}

function applyFault(rctx, fault) {
	const { state, req, res } = rctx;
	switch (fault.mode) {
		case "429": {
			finishEntry(rctx, 429);
			res.writeHead(429, {
				"Content-Type": "text/plain; charset=utf-8",
				"Content-Length": Buffer.byteLength(TOO_MANY_REQUESTS_BODY),
				"Retry-After": String(fault.retry_after),
				"X-Content-Type-Options": "nosniff",
			}).end(TOO_MANY_REQUESTS_BODY);
			return;
		}
		case "status": {
			const body = JSON.stringify(statusForCode(fault.status, fault.message));
			const headers = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
			if (fault.retry_after != null) headers["Retry-After"] = String(fault.retry_after);
			finishEntry(rctx, fault.status);
			res.writeHead(fault.status, headers).end(body);
			return;
		}
		case "hang":
			finishEntry(rctx, null);
			state.faults.hold(res, fault.close_after_ms);
			return;
		case "drop":
			finishEntry(rctx, null);
			req.socket.destroy();
			return;
		default:
			throw new Error(`unknown fault mode ${fault.mode}`);
	}
}

// ---------------------------------------------------------------------------
// Routing

const isWatch = (path, query) => query.get("watch") === "true" || query.get("watch") === "1" || path.includes("/watch/");

/**
 * Map a path to {res, namespace, name, subresource, watch}, or to
 * {nonResource} for /version and the health checks; null if unknown.
 */
function parseRoute(path, query) {
	let segs;
	try {
		segs = path.split("/").filter(Boolean).map(decodeURIComponent);
	} catch {
		return null;
	}
	let watch = isWatch("", query);
	let rest;
	let group;
	if (segs[0] === "api" && segs[1] === "v1") {
		group = "";
		rest = segs.slice(2);
	} else if (segs[0] === "apis" && segs[1] === "batch" && segs[2] === "v1") {
		group = "batch";
		rest = segs.slice(3);
	} else if (segs.length === 1 && ["version", "healthz", "livez", "readyz"].includes(segs[0])) {
		return { nonResource: segs[0] };
	} else {
		return null;
	}
	if (rest[0] === "watch") {
		watch = true;
		rest = rest.slice(1);
	}
	let namespace = "";
	let resource;
	let name = "";
	let subresource = "";
	if (rest[0] === "namespaces" && rest.length >= 3) {
		[, namespace, resource, name = "", subresource = ""] = rest;
		if (rest.length > 5) return null;
	} else if (rest[0] === "namespaces" && group === "" && rest.length <= 2) {
		[resource, name = ""] = rest;
	} else if (rest.length === 1) {
		[resource] = rest;
	} else {
		return null;
	}
	const res = group === "batch" ? (resource === "jobs" ? JOBS : null) : { pods: PODS, namespaces: NAMESPACES }[resource];
	if (!res) return null;
	if (subresource && !(res === JOBS && subresource === "status")) return null;
	return { res, namespace, name, subresource, watch };
}

function verbOf(method, r) {
	if (r.name) return { GET: "get", DELETE: "delete", PUT: "update", PATCH: "patch" }[method] ?? method.toLowerCase();
	if (method === "GET") return r.watch ? "watch" : "list";
	return { POST: "create", DELETE: "deletecollection" }[method] ?? method.toLowerCase();
}

/**
 * Authentication: who is calling?  Runs before faults (as in kube, where
 * API Priority and Fairness comes after authentication) so that the log
 * shows token_ok for every request, faulted or not.  Enforced by authorize().
 */
function authenticate(rctx) {
	const { state, req, entry } = rctx;
	const header = req.headers.authorization;
	let token = null;
	if (header !== undefined) {
		const m = /^Bearer\s+(.*)$/i.exec(header);
		token = m ? m[1].trim() : "";
	}
	const { tokens, forbidden: denied } = state.auth;
	entry.token_ok = token !== null && (tokens.has(token) || denied.has(token));
	rctx.authn = {
		hasHeader: header !== undefined,
		// A client certificate from the test CA authenticates too (mTLS) when
		// no bearer token is sent; a bad token is rejected even with one.
		// `authorized` alone is not enough: on a resumed TLS session without
		// a client certificate OpenSSL reports the (skipped) verification as OK.
		certOk: header === undefined && req.socket.authorized === true && Boolean(req.socket.getPeerCertificate?.()?.raw),
		forbidden: entry.token_ok && denied.has(token),
	};
}

/** Enforce authentication (401) and authorisation (403); marks the log entry. */
function authorize(rctx, r, verb) {
	const { state, entry, authn } = rctx;
	if (r.nonResource) {
		// /version and the health checks are public, but bad credentials are not.
		if (authn.hasHeader && !entry.token_ok) throw unauthorized();
	} else {
		if (!entry.token_ok && !authn.certOk) throw unauthorized();
		if (authn.forbidden) throw forbidden(r.res, verb, r.name, r.namespace, state.auth.user);
	}
	entry.authorized = true;
}

function route(rctx, raw) {
	const { req, path, query } = rctx;
	const r = parseRoute(path, query);
	if (!r) {
		authorize(rctx, { nonResource: true });
		throw pathNotFound();
	}
	const verb = r.nonResource ? null : verbOf(req.method, r);
	authorize(rctx, r, verb);
	if (r.nonResource) return nonResource(req.method, r.nonResource);
	if (!VERBS[r.res.resource].has(verb) || (r.subresource && verb !== "get")) throw methodNotAllowed();
	// Namespaced resources are created and collection-deleted per namespace only.
	if ((verb === "create" || verb === "deletecollection") && !r.namespace) throw methodNotAllowed();

	// limitedReadBody: only the verbs that decode a body read it.
	if (raw === null && ["create", "delete", "deletecollection"].includes(verb)) throw requestEntityTooLarge(MAX_BODY_BYTES);

	switch (verb) {
		case "get":
			return json(200, jsonWithKind(r.res, getObject(rctx.state, r)));
		case "list":
			return listObjects(rctx, r);
		case "watch":
			return watchObjects(rctx, r);
		case "create":
			return createJob(rctx, r, raw);
		case "delete":
			return deleteObject(rctx, r, raw);
		case "deletecollection":
			return deleteCollection(rctx, r, raw);
		default:
			throw methodNotAllowed();
	}
}

function nonResource(method, what) {
	if (method !== "GET") throw methodNotAllowed();
	if (what === "version") return json(200, VERSION);
	return { code: 200, body: "ok", contentType: "text/plain; charset=utf-8" };
}

// ---------------------------------------------------------------------------
// Handlers

function getObject(state, r) {
	if (r.res === NAMESPACES) {
		const ns = state.namespaces.get(r.name);
		if (!ns) throw notFound(NAMESPACES, r.name);
		return ns;
	}
	const obj = state.store.get(r.res, r.namespace, r.name);
	if (!obj) throw notFound(r.res, r.name);
	return obj;
}

/** Parsed labelSelector and fieldSelector of a request (400 if malformed). */
export function selectorsOf(query, res) {
	try {
		return {
			labelReqs: parseLabelSelector(query.get("labelSelector") ?? ""),
			fieldReqs: parseFieldSelector(query.get("fieldSelector") ?? "", FIELDS[res.resource]),
		};
	} catch (err) {
		if (err instanceof SelectorError) throw badRequest(err.message);
		throw err;
	}
}

function listObjects({ state, query }, r) {
	const { labelReqs, fieldReqs } = selectorsOf(query, r.res);
	if (r.res === NAMESPACES) {
		const items = [...state.namespaces.values()];
		return json(200, { kind: "NamespaceList", apiVersion: "v1", metadata: { resourceVersion: String(state.store.currentRV) }, items });
	}
	const limit = Number.parseInt(query.get("limit") ?? "0", 10);
	const list = state.lister.list(r.res, {
		namespace: r.namespace,
		labelReqs,
		fieldReqs,
		limit: Number.isFinite(limit) && limit > 0 ? limit : 0,
		continueToken: query.get("continue") || null,
		resourceVersion: query.get("resourceVersion") ?? undefined,
	});
	return json(200, list);
}

function watchObjects(rctx, r) {
	const { state, query, res, entry } = rctx;
	const { labelReqs, fieldReqs } = selectorsOf(query, r.res);
	const rv = query.get("resourceVersion") ?? undefined;
	if (rv !== undefined && rv !== "" && !/^\d+$/.test(rv)) throw badRequest(`invalid resource version: ${JSON.stringify(rv)}`);
	const timeout = query.has("timeoutSeconds") ? Number(query.get("timeoutSeconds")) : undefined;
	const bookmarks = query.get("allowWatchBookmarks") === "true" || query.get("allowWatchBookmarks") === "1";
	finishEntry(rctx, 200);
	entry.watch = true;
	state.hub.start(
		res,
		{ res: r.res, namespace: r.namespace, labelReqs, fieldReqs, bookmarks, resourceVersion: rv, timeoutSeconds: timeout > 0 ? timeout : undefined },
		() => state.store.iterate(r.res, r.namespace),
	);
	return STREAMING;
}

function parseJsonBody(raw) {
	try {
		return JSON.parse(raw);
	} catch (err) {
		throw badRequest(`couldn't get version/kind; json parse error: ${err.message}`);
	}
}

function checkContentType(req) {
	const ct = (req.headers["content-type"] ?? "application/json").toLowerCase();
	if (!ct.startsWith("application/json") && !ct.startsWith("application/merge-patch+json")) {
		throw new ApiError(
			415,
			"UnsupportedMediaType",
			// The real server's words; it would also take YAML and protobuf, this one only JSON.
			"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
			{},
		);
	}
}

function createJob(rctx, r, raw) {
	const { state, query, req } = rctx;
	const mode = query.get("fieldValidation") || "Warn";
	if (!FIELD_VALIDATION_MODES.includes(mode)) {
		throw badRequest(`fieldValidation must be one of ${FIELD_VALIDATION_MODES.join(", ")}, got ${JSON.stringify(mode)}`);
	}
	checkContentType(req);
	const body = parseJsonBody(raw);
	// decode (400) -> namespace lifecycle admission (404) -> validation (422) -> storage (409)
	const schemaErrors = decodeJob(body, r.namespace, mode, rctx);
	if (!state.namespaces.has(r.namespace)) throw notFound(NAMESPACES, r.namespace);
	const job = prepareJob(body, r.namespace);
	validateJob(job, schemaErrors);
	// Storage round-trips the object: the Job's labels no longer alias the template's.
	if (job.metadata.labels) job.metadata.labels = { ...job.metadata.labels };
	rctx.warnings.push(...jobCreateWarnings(job));
	if (query.getAll("dryRun").includes("All")) {
		if (state.store.get(JOBS, r.namespace, job.metadata.name)) throw alreadyExists(JOBS, job.metadata.name);
		job.metadata.creationTimestamp = timestamp();
		return json(201, jsonWithKind(JOBS, job));
	}
	return json(201, jsonWithKind(JOBS, state.cluster.createJob(job, { maxBytes: ETCD_MAX_REQUEST_BYTES })));
}

function deleteOptionsOf(rctx, raw) {
	let body = null;
	if (raw.trim() !== "") {
		checkContentType(rctx.req);
		body = parseJsonBody(raw);
	}
	return decodeDeleteOptions(rctx.query, body, rctx);
}

function deleteObject(rctx, r, raw) {
	const opts = deleteOptionsOf(rctx, raw);
	const { cluster } = rctx.state;
	if (r.res === JOBS) {
		const out = cluster.deleteJob(r.namespace, r.name, opts);
		return json(out.code, out.object ? jsonWithKind(JOBS, out.body) : out.body);
	}
	return json(200, jsonWithKind(PODS, cluster.deletePod(r.namespace, r.name, opts)));
}

function deleteCollection(rctx, r, raw) {
	const { state, query } = rctx;
	const opts = deleteOptionsOf(rctx, raw);
	const { labelReqs, fieldReqs } = selectorsOf(query, r.res);
	const victims = state.lister.list(r.res, { namespace: r.namespace, labelReqs, fieldReqs, limit: 0 }).items;
	// One re-sort on the next list beats thousands of splices.
	if (victims.length > 1000 && !opts.dryRun) {
		state.store.dropIndex(JOBS);
		state.store.dropIndex(PODS);
	}
	const items = [];
	for (const obj of victims) {
		const { namespace, name } = obj.metadata;
		if (r.res === JOBS) {
			const out = state.cluster.deleteJob(namespace, name, opts);
			items.push(out.object ? out.body : obj);
		} else {
			items.push(state.cluster.deletePod(namespace, name, opts));
		}
	}
	return json(200, { kind: r.res.listKind, apiVersion: apiVersionOf(r.res), metadata: { resourceVersion: String(state.store.currentRV) }, items });
}
