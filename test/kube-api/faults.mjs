// Fault injection for the API port: error statuses, API Priority and
// Fairness style 429s, requests that never get an answer, and connections
// dropped without one.  Optionally only for the next N matching requests,
// and optionally *after* the request took effect (the client then cannot
// tell whether a create happened: the case that idempotent retries are for).

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
	if (body.after != null) cfg.after = Boolean(body.after);
	return cfg;
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
	 * The fault to apply to this request, or null.  Consumes one unit of a
	 * count-limited fault; when it runs out the mode reverts to none.
	 */
	take(method, path) {
		const cfg = this.cfg;
		if (cfg.mode === "none") return null;
		if (cfg.methods && !cfg.methods.includes(method)) return null;
		if (cfg.path_prefix && !path.startsWith(cfg.path_prefix)) return null;
		if (this.remaining !== null && --this.remaining <= 0) {
			this.cfg = { mode: "none" };
			this.remaining = null;
		}
		return cfg;
	}

	/** Hold a response open until the fault is changed or the server stops. */
	hold(res) {
		this.hung.add(res);
		res.on("close", () => this.hung.delete(res));
	}

	releaseHung() {
		for (const res of this.hung) res.socket?.destroy();
		this.hung.clear();
	}
}

export const TOO_MANY_REQUESTS_BODY = "Too many requests, please try again later.\n";
