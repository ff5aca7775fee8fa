// The record of API requests that tests assert on.  Headers are never
// stored, so bearer tokens cannot leak into it.  Bodies are kept as the raw
// text and parsed only when the log is read: benchmarks push thousands of
// requests per second through and rarely read the log.

import { createWriteStream } from "node:fs";
import { performance } from "node:perf_hooks";

const nowMs = () => performance.timeOrigin + performance.now();

function parseBody(raw) {
	if (!raw) return { body: null };
	try {
		return { body: JSON.parse(raw) };
	} catch {
		return { body: null, body_text: raw };
	}
}

export class RequestLog {
	constructor({ maxEntries = 100_000, file = null } = {}) {
		this.maxEntries = maxEntries;
		this.keepBodies = true;
		this.entries = [];
		this.violations = [];
		this.seq = 0;
		this.file = file ? createWriteStream(file, { flags: "a" }) : null;
	}

	/** Open an entry when a request arrives; the response fills in the rest. */
	start(method, path, query) {
		const entry = {
			seq: ++this.seq,
			ts: nowMs(),
			method,
			path,
			query,
			authorized: false,
			token_ok: false,
			bodyRaw: "",
			status: null,
			violations: [],
			warnings: [],
			fault: null,
			duration_ms: null,
		};
		this.entries.push(entry);
		if (this.entries.length > this.maxEntries * 1.25) this.entries.splice(0, this.entries.length - this.maxEntries);
		return entry;
	}

	setBody(entry, raw) {
		if (this.keepBodies) entry.bodyRaw = raw;
	}

	addViolations(entry, list) {
		for (const v of list) {
			entry.violations.push(v);
			this.violations.push({ seq: entry.seq, method: entry.method, request_path: entry.path, ...v });
		}
		if (this.violations.length > this.maxEntries) this.violations.splice(0, this.violations.length - this.maxEntries);
	}

	/** Called once the response is complete (or the connection is gone). */
	finish(entry) {
		if (entry.duration_ms !== null) return;
		entry.duration_ms = Math.round((nowMs() - entry.ts) * 1000) / 1000;
		if (this.file) this.file.write(`${JSON.stringify(render(entry))}\n`);
	}

	/** Entries with seq > `since`, rendered for the control API. */
	since(since = 0) {
		let lo = 0;
		let hi = this.entries.length;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (this.entries[mid].seq <= since) lo = mid + 1;
			else hi = mid;
		}
		return this.entries.slice(lo).map(render);
	}

	clear() {
		this.entries = [];
	}

	clearViolations() {
		this.violations = [];
	}

	configure({ max_entries, bodies }) {
		if (max_entries != null) {
			const n = Number(max_entries);
			if (!Number.isInteger(n) || n < 1) throw new Error("max_entries must be a positive integer");
			this.maxEntries = n;
		}
		if (bodies != null) this.keepBodies = Boolean(bodies);
		return this.settings();
	}

	settings() {
		return { max_entries: this.maxEntries, bodies: this.keepBodies, size: this.entries.length, last_seq: this.seq };
	}

	close() {
		this.file?.end();
	}
}

function render(e) {
	const { bodyRaw, ...rest } = e;
	return { ...rest, ...parseBody(bodyRaw) };
}
