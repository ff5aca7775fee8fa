// Fault injection for the API port: error statuses, API Priority and
// Fairness style 429s, requests that never get an answer (or that end in a
// reset after a while), and connections dropped without one.  Optionally
// only for the next N matching requests, and optionally *after* the request
// took effect (the client then cannot tell whether a create happened: the
// case that idempotent retries are for).  Filters narrow a fault to some
// requests, so that a test can, say, fail Job lists while watches work.

const MODES = ["none", "status", "429", "hang", "drop"];

export class FaultError extends Error {}

/** Check and normalise a PUT /fault body. */
function parseConfig(body) {
	if (body === null || typeof body !== "object") throw new FaultError("body must be a JSON object");
	const mode = String(body.mode ?? "none");
	if (!MODES.includes(mode)) throw new FaultError(`mode must be one of ${MODES.join(", ")}`);
	const cfg = { mode };
	if (mode === "status") {
		const status = Number(body.status ?? 503);
		if (!Number.isInteger(status) || status < 100 || status > 599) throw new FaultError("status must be an HTTP status code");
		cfg.status = status;
		if (body.message != null) cfg.message = String(body.message);
	}
	if (mode === "429" || body.retry_after != null) {
		const ra = Number(body.retry_after ?? 1);
		if (!Number.isInteger(ra) || ra < 0) throw new FaultError("retry_after must be a non-negative integer (seconds)");
		cfg.retry_after = ra;
	}
	if (body.count != null) {
		const count = Number(body.count);
		if (!Number.isInteger(count) || count < 1) throw new FaultError("count must be a positive integer");
		cfg.count = count;
	}
	if (body.methods != null) {
		if (!Array.isArray(body.methods)) throw new FaultError("methods must be a list");
		cfg.methods = body.methods.map((m) => String(m).toUpperCase());
	}
	if (body.path_prefix != null) cfg.path_prefix = String(body.path_prefix);
	if (body.path != null) cfg.path = String(body.path);
	if (body.watch != null) {
		if (typeof body.watch !== "boolean") throw new FaultError("watch must be true (watch requests only) or false (all but watches)");
		cfg.watch = body.watch;
	}
	if (body.query != null) cfg.query = parseQueryFilter(body.query);
	if (body.after != null) cfg.after = Boolean(body.after);
	if (body.close_after_ms != null) {
		if (mode !== "hang") throw new FaultError("close_after_ms applies to mode hang only");
		const ms = Number(body.close_after_ms);
		if (!Number.isInteger(ms) || ms < 0) throw new FaultError("close_after_ms must be a non-negative integer");
		cfg.close_after_ms = ms;
	}
	return cfg;
}

/** {"fieldSelector": "metadata.name=foo", ...}: exact values a request's query must hold. */
function parseQueryFilter(q) {
	if (q === null || typeof q !== "object" || Array.isArray(q)) throw new FaultError("query must be an object of query parameter names to values");
	const out = {};
	for (const [k, v] of Object.entries(q)) {
		if (!["string", "number", "boolean"].includes(typeof v)) throw new FaultError(`query.${k} must be a string`);
		out[k] = String(v);
	}
	return out;
}

/**
 * Does the fault's filter select this request?  `req` is {method, path,
 * query (URLSearchParams), watch}.  A query key may repeat in a URL; any of
 * its values matching is enough.
 */
function selects(cfg, req) {
	if (cfg.methods && !cfg.methods.includes(req.method)) return false;
	if (cfg.path_prefix && !req.path.startsWith(cfg.path_prefix)) return false;
	if (cfg.path != null && req.path !== cfg.path) return false;
	if (cfg.watch != null && cfg.watch !== req.watch) return false;
	if (cfg.query) {
		for (const [k, v] of Object.entries(cfg.query)) if (!req.query.getAll(k).includes(v)) return false;
	}
	return true;
}

export class Faults {
	constructor() {
		this.cfg = { mode: "none" };
		this.remaining = null; // requests left for a count-limited fault
		this.hung = new Set(); // responses being held by "hang"
	}

	/** Replace the fault; requests hung by the previous one are closed. */
	set(body) {
		const cfg = parseConfig(body);
		this.releaseHung();
		this.cfg = cfg;
		this.remaining = cfg.count ?? null;
		return this.get();
	}

	get() {
		return { ...this.cfg, remaining: this.remaining };
	}

	clear() {
		this.releaseHung();
		this.cfg = { mode: "none" };
		this.remaining = null;
	}

	/**
	 * The fault to apply to this request ({method, path, query, watch}), or
	 * null.  Consumes one unit of a count-limited fault; when it runs out the
	 * mode reverts to none.
	 */
	take(req) {
		const cfg = this.cfg;
		if (cfg.mode === "none" || !selects(cfg, req)) return null;
		if (this.remaining !== null && --this.remaining <= 0) {
			this.cfg = { mode: "none" };
			this.remaining = null;
		}
		return cfg;
	}

	/**
	 * Hold a response open until the fault is changed or the server stops,
	 * or, with `closeAfterMs`, until then: the socket is destroyed with no
	 * response, as when a network hang ends in a reset.
	 */
	hold(res, closeAfterMs = null) {
		this.hung.add(res);
		const timer = closeAfterMs == null ? null : setTimeout(() => res.socket?.destroy(), closeAfterMs);
		res.on("close", () => {
			clearTimeout(timer);
			this.hung.delete(res);
		});
	}

	releaseHung() {
		for (const res of this.hung) res.socket?.destroy();
		this.hung.clear();
	}
}

export const TOO_MANY_REQUESTS_BODY = "Too many requests, please try again later.\n";
