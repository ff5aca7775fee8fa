// LIST with limit/continue.  The real server serves every page of a
// paginated list at the resourceVersion of the first page (an etcd MVCC
// read); we get the same consistency by keeping the first page's matching
// objects as a snapshot (references only: stored objects are immutable).
// Tokens expire like etcd compaction makes them expire: after a while, or
// on demand through the control API, with kube's 410 and its
// "inconsistent continue" token.

import { apiVersionOf, badRequest, expired } from "./status.mjs";
import { matchFields, matchLabels } from "./selectors.mjs";

const TOKEN_VERSION = "meta.k8s.io/v1";
const EXPIRED_MESSAGE =
	"The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

const encodeToken = (t) => Buffer.from(JSON.stringify({ v: TOKEN_VERSION, ...t })).toString("base64url");

function decodeToken(s) {
	let t;
	try {
		t = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
	} catch {
		throw badRequest("continue key is not valid: the token is not base64-encoded JSON");
	}
	if (t?.v !== TOKEN_VERSION || typeof t.start !== "string" || typeof t.rv !== "number") {
		throw badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
	}
	return t;
}

const keyOf = (obj) => `${obj.metadata.namespace}/${obj.metadata.name}`;

export class Lister {
	constructor(store, { ttlMs = 5 * 60_000, maxSnapshots = 256 } = {}) {
		this.store = store;
		this.ttlMs = ttlMs;
		this.maxSnapshots = maxSnapshots;
		this.snapshots = new Map(); // id -> {rv, items, created}; insertion order = age
		this.nextId = 1;
	}

	/**
	 * Build a List response object.
	 * q: {namespace, labelReqs, fieldReqs, limit, continueToken, resourceVersion}
	 */
	list(res, q) {
		const filtered = q.labelReqs.length > 0 || q.fieldReqs.length > 0;
		const matches = (o) => matchLabels(q.labelReqs, o.metadata.labels) && matchFields(q.fieldReqs, o);
		// resourceVersion=0 is served from the watch cache, which (in 1.28)
		// ignores limit: the whole list comes back in one page.
		const limit = q.resourceVersion === "0" ? 0 : q.limit;

		let rv;
		let items;
		let offset = 0;
		let snapshotId = null;
		if (q.continueToken) {
			const token = decodeToken(q.continueToken);
			if (token.rv === -1) {
				// Inconsistent continuation after a 410: read current state after the key.
				rv = this.store.currentRV;
				items = [...this.store.iterate(res, q.namespace, token.start)].filter(matches);
			} else {
				const snap = this.snapshots.get(token.snap);
				if (!snap || Date.now() - snap.created > this.ttlMs) {
					this.snapshots.delete(token.snap);
					throw expired(EXPIRED_MESSAGE, { continue: encodeToken({ rv: -1, start: token.start }) });
				}
				({ rv, items } = snap);
				offset = token.off;
				snapshotId = token.snap;
			}
		} else {
			rv = this.store.currentRV;
			items = [];
			for (const o of this.store.iterate(res, q.namespace)) if (matches(o)) items.push(o);
		}

		const end = limit > 0 ? Math.min(items.length, offset + limit) : items.length;
		const page = offset === 0 && end === items.length ? items : items.slice(offset, end);
		const metadata = { resourceVersion: String(rv) };
		if (end < items.length) {
			if (snapshotId === null) snapshotId = this.keep(rv, items);
			metadata.continue = encodeToken({ rv, start: keyOf(items[end - 1]), snap: snapshotId, off: end });
			if (!filtered) metadata.remainingItemCount = items.length - end;
		} else if (snapshotId !== null) {
			this.snapshots.delete(snapshotId); // last page served
		}
		return { kind: res.listKind, apiVersion: apiVersionOf(res), metadata, items: page };
	}

	keep(rv, items) {
		const id = this.nextId++;
		this.snapshots.set(id, { rv, items, created: Date.now() });
		while (this.snapshots.size > this.maxSnapshots) this.snapshots.delete(this.snapshots.keys().next().value);
		return id;
	}

	/** Expire every outstanding continue token (control API). */
	expireAll() {
		const n = this.snapshots.size;
		this.snapshots.clear();
		return n;
	}
}
