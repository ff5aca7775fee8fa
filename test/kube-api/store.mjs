// In-memory object storage with etcd's observable properties: one global,
// increasing resourceVersion shared by all resources, keys ordered
// "namespace/name" (as etcd orders /registry/<resource>/<ns>/<name>), and a
// change feed that the watch hub turns into watch events.
//
// Stored objects are never mutated after they are published: updates
// clone, change and replace.  Watch history and paginated list snapshots can
// therefore hold plain references to old versions.

import { randomUUID } from "node:crypto";
import { JOBS, PODS, alreadyExists, etcdRequestTooLarge, jsonWithKind, notFound } from "./status.mjs";

// The last second formatted: bulk creation asks for the time 100,000 times.
let lastStamp = { second: NaN, text: "" };

/** RFC 3339 with seconds precision, as metav1.Time serialises. */
export function timestamp(ms = Date.now()) {
	const second = Math.floor(ms / 1000);
	if (second !== lastStamp.second) lastStamp = { second, text: new Date(second * 1000).toISOString().replace(/\.\d{3}Z$/, "Z") };
	return lastStamp.text;
}

export const keyOf = (namespace, name) => `${namespace}/${name}`;

/**
 * One resource's objects, with a key-ordered index of rows {key, obj} for
 * listing.  The rows hold the objects themselves because a walk through
 * 100,000 Map lookups in key order costs tens of milliseconds in cache
 * misses.  The index is built on demand and then kept up to date one key at
 * a time (a splice costs microseconds where re-sorting 100,000 keys costs
 * ~100 ms, which a client that creates and lists in turn would pay on every
 * list).  Bulk changes drop it instead: thousands of splices would cost
 * more than one sort.
 */
class Table {
	constructor(res) {
		this.res = res;
		this.objects = new Map();
		this.rows = null;
	}

	sortedRows() {
		if (!this.rows) {
			// Map order is creation order, often nearly sorted already: TimSort's best case.
			this.rows = [];
			for (const [key, obj] of this.objects) this.rows.push({ key, obj });
			this.rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
		}
		return this.rows;
	}

	/** Index of the first row with key >= `key` (or > `key` when `after`). */
	bound(key, after = false) {
		const rows = this.sortedRows();
		let lo = 0;
		let hi = rows.length;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (rows[mid].key < key || (after && rows[mid].key === key)) lo = mid + 1;
			else hi = mid;
		}
		return lo;
	}

	set(key, obj) {
		if (this.rows) {
			const i = this.bound(key);
			if (this.rows[i]?.key === key) this.rows[i].obj = obj;
			else this.rows.splice(i, 0, { key, obj });
		}
		this.objects.set(key, obj);
	}

	delete(key) {
		if (this.rows) {
			const i = this.bound(key);
			if (this.rows[i]?.key === key) this.rows.splice(i, 1);
		}
		this.objects.delete(key);
	}
}

export class Store {
	/** `publish(res, type, object, previous)` receives every change. */
	constructor(publish) {
		this.publish = publish;
		this.rv = 0;
		this.tables = new Map([
			[JOBS.resource, new Table(JOBS)],
			[PODS.resource, new Table(PODS)],
		]);
		// Pods by the uid of their controlling owner, so deleting a Job does
		// not scan every pod.
		this.podsByOwner = new Map();
	}

	table(res) {
		return this.tables.get(res.resource);
	}

	nextRV() {
		return ++this.rv;
	}

	get currentRV() {
		return this.rv;
	}

	get(res, namespace, name) {
		return this.table(res).objects.get(keyOf(namespace, name));
	}

	count(res) {
		return this.table(res).objects.size;
	}

	/**
	 * Objects of `res` in key order, optionally one namespace, starting after
	 * key `after`.  Yields lazily so a paginated list stops early.  The
	 * table must not change while the iteration runs (callers copy first).
	 */
	*iterate(res, namespace, after = "") {
		const t = this.table(res);
		const rows = t.sortedRows();
		// Keys sharing the "namespace/" prefix are contiguous in sorted order.
		const prefix = namespace ? `${namespace}/` : "";
		let i = t.bound(prefix);
		if (after) i = Math.max(i, t.bound(after, true));
		for (; i < rows.length && rows[i].key.startsWith(prefix); i++) yield rows[i].obj;
	}

	/**
	 * Store a new object: uid, resourceVersion and creationTimestamp are set
	 * if absent.  With `maxBytes`, an object whose JSON (as stored, with kind
	 * and apiVersion) is longer is refused as etcd refuses a request over
	 * --max-request-bytes: before the transaction runs, so even when the
	 * name is taken.
	 */
	insert(res, obj, { maxBytes = 0 } = {}) {
		const t = this.table(res);
		const m = obj.metadata;
		const key = keyOf(m.namespace, m.name);
		m.uid ??= randomUUID();
		m.creationTimestamp ??= timestamp();
		m.resourceVersion = String(this.rv + 1);
		if (maxBytes > 0 && Buffer.byteLength(jsonWithKind(res, obj)) > maxBytes) throw etcdRequestTooLarge();
		if (t.objects.has(key)) throw alreadyExists(res, m.name);
		this.rv++;
		t.set(key, obj);
		this.indexOwner(res, key, obj, true);
		this.publish(res, "ADDED", obj, null);
		return obj;
	}

	/** Replace an object with a changed clone; `mutate(clone)` does the change. */
	update(res, namespace, name, mutate) {
		const t = this.table(res);
		const key = keyOf(namespace, name);
		const old = t.objects.get(key);
		if (!old) throw notFound(res, name);
		const next = structuredClone(old);
		mutate(next);
		next.metadata.resourceVersion = String(this.nextRV());
		this.indexOwner(res, key, old, false);
		t.set(key, next);
		this.indexOwner(res, key, next, true);
		this.publish(res, "MODIFIED", next, old);
		return next;
	}

	/** Remove an object; the DELETED event carries the deletion's resourceVersion. */
	remove(res, namespace, name) {
		const t = this.table(res);
		const key = keyOf(namespace, name);
		const old = t.objects.get(key);
		if (!old) throw notFound(res, name);
		t.delete(key);
		this.indexOwner(res, key, old, false);
		const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(this.nextRV()) } };
		this.publish(res, "DELETED", gone, old);
		return gone;
	}

	/** Before changing many objects at once: the key index is rebuilt on the next list. */
	dropIndex(res) {
		this.table(res).rows = null;
	}

	/** Keys of the pods whose controller is the object with `uid`. */
	podsOwnedBy(uid) {
		return [...(this.podsByOwner.get(uid) ?? [])];
	}

	indexOwner(res, key, obj, add) {
		if (res !== PODS) return;
		for (const ref of obj.metadata.ownerReferences ?? []) {
			if (!ref?.uid) continue;
			let set = this.podsByOwner.get(ref.uid);
			if (add) {
				if (!set) this.podsByOwner.set(ref.uid, (set = new Set()));
				set.add(key);
			} else if (set) {
				set.delete(key);
				if (set.size === 0) this.podsByOwner.delete(ref.uid);
			}
		}
	}

	/** Forget every object; the resourceVersion keeps increasing, as etcd's does. */
	clear() {
		for (const t of this.tables.values()) {
			t.objects.clear();
			t.rows = null;
		}
		this.podsByOwner.clear();
	}
}
