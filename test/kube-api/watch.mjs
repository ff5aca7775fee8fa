// Watch streams: newline-delimited JSON events over a chunked 200 response,
// replay from a retained history window, periodic BOOKMARKs, the
// "410 Expired inside a 200 stream" behaviour of kube-apiserver's watch
// cache, and a "watch storm" switch that ends every new stream at once.

import { apiVersionOf, jsonWithKind, statusObject } from "./status.mjs";
import { matchFields, matchLabels } from "./selectors.mjs";

const DEFAULT_TIMEOUT_S = 1800; // kube's minRequestTimeout

class Watcher {
	constructor(hub, httpRes, opts) {
		this.hub = hub;
		this.httpRes = httpRes;
		this.res = opts.res;
		this.namespace = opts.namespace;
		this.labelReqs = opts.labelReqs;
		this.fieldReqs = opts.fieldReqs;
		this.bookmarks = opts.bookmarks;
		this.closed = false;
		const timeoutS = opts.timeoutSeconds ?? DEFAULT_TIMEOUT_S;
		this.timer = setTimeout(() => this.close(), timeoutS * 1000);
		httpRes.on("close", () => this.close());
	}

	matches(obj) {
		if (this.namespace && obj.metadata.namespace !== this.namespace) return false;
		return matchLabels(this.labelReqs, obj.metadata.labels) && matchFields(this.fieldReqs, obj);
	}

	/**
	 * Translate a store change into what this watcher sees: objects moving
	 * into its selector are ADDED, moving out are DELETED (with the previous
	 * content), as the watch cache does.
	 */
	deliver(ev) {
		const now = this.matches(ev.obj);
		const before = ev.prev !== null && ev.type === "MODIFIED" ? this.matches(ev.prev) : now;
		if (ev.type === "MODIFIED") {
			if (now && before) this.writeEvent(ev, "MODIFIED");
			else if (now) this.writeRaw("ADDED", ev.json());
			else if (before) {
				const gone = { ...ev.prev, metadata: { ...ev.prev.metadata, resourceVersion: ev.obj.metadata.resourceVersion } };
				this.writeRaw("DELETED", jsonWithKind(this.res, gone));
			}
		} else if (now) {
			this.writeEvent(ev, ev.type);
		}
	}

	writeEvent(ev, type) {
		this.write(ev.line(type));
	}

	writeRaw(type, objectJson) {
		this.write(`{"type":"${type}","object":${objectJson}}\n`);
	}

	write(chunk) {
		if (!this.closed) this.httpRes.write(chunk);
	}

	bookmark(rv) {
		const obj = `{"kind":"${this.res.kind}","apiVersion":"${apiVersionOf(this.res)}","metadata":{"resourceVersion":"${rv}"}}`;
		this.writeRaw("BOOKMARK", obj);
	}

	close() {
		if (this.closed) return;
		this.closed = true;
		clearTimeout(this.timer);
		this.hub.watchers.delete(this);
		this.httpRes.end();
	}
}

/** One change, serialised lazily and at most once however many watchers see it. */
class Event {
	constructor(res, type, obj, prev) {
		this.rv = Number(obj.metadata.resourceVersion);
		this.res = res;
		this.type = type;
		this.obj = obj;
		this.prev = prev;
		this.cachedJson = null;
		this.lines = null;
	}

	json() {
		return (this.cachedJson ??= jsonWithKind(this.res, this.obj));
	}

	line(type) {
		this.lines ??= {};
		return (this.lines[type] ??= `{"type":"${type}","object":${this.json()}}\n`);
	}

	/** Drop the serialised forms once delivered: history would otherwise hold ~2x every object's JSON. */
	release() {
		this.cachedJson = null;
		this.lines = null;
	}
}

export class WatchHub {
	/** `currentRV()` reports the store's latest resourceVersion (for bookmarks and compaction). */
	constructor(currentRV, { maxHistory = 100_000, bookmarkMs = 1000 } = {}) {
		this.currentRV = currentRV;
		this.maxHistory = maxHistory;
		this.history = [];
		// Every event with rv > floorRV is still in `history`; older RVs are expired.
		this.floorRV = 0;
		this.watchers = new Set();
		// Watch storm: each new stream ends right after its initial events.
		this.endAtOnce = false;
		this.defaultBookmarkMs = bookmarkMs;
		this.setBookmarkInterval(bookmarkMs);
	}

	/** Store change feed. */
	publish(res, type, obj, prev) {
		const ev = new Event(res, type, obj, prev);
		this.history.push(ev);
		if (this.history.length > this.maxHistory * 1.25) {
			// Trim in batches so the array shift stays amortised O(1).
			const dropped = this.history.splice(0, this.history.length - this.maxHistory);
			this.floorRV = dropped[dropped.length - 1].rv;
		}
		for (const w of this.watchers) if (w.res === res) w.deliver(ev);
		ev.release();
	}

	/**
	 * Start a watch on `httpRes`.  `resourceVersion` unset or "0" first sends
	 * the current objects (from `initial()`) as ADDED; otherwise events after
	 * it are replayed from history, or, if it is older than the window, a
	 * single ERROR event with a 410 Status ends the stream.  In a watch
	 * storm (`endAtOnce`) the stream ends after the ADDED events, and one
	 * from an RV ends with no event: the client learns nothing new by
	 * re-watching, which is what makes a storm hurt.
	 */
	start(httpRes, opts, initial) {
		httpRes.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
		httpRes.flushHeaders();
		const w = new Watcher(this, httpRes, opts);
		const rv = opts.resourceVersion;
		if (rv === undefined || rv === "" || rv === "0") {
			for (const obj of initial()) if (w.matches(obj)) w.writeRaw("ADDED", jsonWithKind(opts.res, obj));
		} else {
			const from = Number(rv);
			if (from < this.floorRV) {
				const status = statusObject(410, "Expired", `too old resource version: ${from} (${this.floorRV})`);
				w.writeRaw("ERROR", JSON.stringify(status));
				w.close();
				return w;
			}
			if (!this.endAtOnce) {
				for (let i = this.firstAfter(from); i < this.history.length; i++) {
					const ev = this.history[i];
					if (ev.res !== opts.res) continue;
					w.deliver(ev);
					ev.release();
				}
			}
		}
		if (this.endAtOnce) {
			w.close();
			return w;
		}
		this.watchers.add(w);
		return w;
	}

	/** Index of the first history event with rv > `rv`. */
	firstAfter(rv) {
		let lo = 0;
		let hi = this.history.length;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (this.history[mid].rv <= rv) lo = mid + 1;
			else hi = mid;
		}
		return lo;
	}

	/** Forget history up to now: watches from any older RV get 410. */
	compact() {
		this.history = [];
		this.floorRV = this.currentRV();
	}

	closeAll() {
		for (const w of [...this.watchers]) w.close();
	}

	/** One timer for all streams; changing the interval applies to open streams too. */
	setBookmarkInterval(ms) {
		clearInterval(this.bookmarkTimer);
		this.bookmarkMs = ms;
		this.bookmarkTimer = setInterval(() => {
			const rv = this.currentRV();
			for (const w of this.watchers) if (w.bookmarks) w.bookmark(rv);
		}, ms);
		this.bookmarkTimer.unref();
	}

	reset() {
		this.closeAll();
		this.compact();
		this.endAtOnce = false;
		this.setBookmarkInterval(this.defaultBookmarkMs);
	}

	stop() {
		clearInterval(this.bookmarkTimer);
		this.closeAll();
	}
}
