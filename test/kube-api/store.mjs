// In-memory object storage with etcd's observable properties: one global,
// increasing resourceVersion shared by all resources, keys ordered
// "namespace/name" (as etcd orders /registry/<resource>/<ns>/<name>), and a
// change feed that the watch hub turns into watch events.
//
// Stored objects are never mutated after they are published: updates
// clone, change and replace.  Watch history and paginated list snapshots can
// therefore hold plain references to old versions.

import { randomUUID } from "node:crypto";
import { JOBS, PODS, alreadyExists, notFound } from "./status.mjs";

/** RFC 3339 with seconds precision, as metav1.Time serialises. */
export const timestamp = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export const keyOf = (namespace, name) => `${namespace}/${name}`;

/** One resource's objects, with a lazily sorted key index for listing. */
class Table {
	constructor(res) {
		this.res = res;
		this.objects = new Map();
		this.sorted = null; // rebuilt on demand: creates stay O(1)
	}

	sortedKeys() {
		if (!this.sorted) this.sorted = [...this.objects.keys()].sort();
		return this.sorted;
	}

	/** Index of the first sorted key > `after` (binary search). */
	upperBound(after) {
		const keys = this.sortedKeys();
		let lo = 0;
		let hi = keys.length;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if (keys[mid] <= after) lo = mid + 1;
			else hi = mid;
		}
		return lo;
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
	 * key `after`.  Yields lazily so a paginated list stops early.
	 */
	*iterate(res, namespace, after = "") {
		const t = this.table(res);
		const keys = t.sortedKeys();
		// Keys sharing the "namespace/" prefix are contiguous in sorted order.
		const prefix = namespace ? `${namespace}/` : "";
		let i = lowerBound(keys, prefix);
		if (after) i = Math.max(i, t.upperBound(after));
		for (; i < keys.length && keys[i].startsWith(prefix); i++) yield t.objects.get(keys[i]);
	}

	/** Store a new object: uid, resourceVersion and creationTimestamp are set if absent. */
	insert(res, obj) {
		const t = this.table(res);
		const m = obj.metadata;
		const key = keyOf(m.namespace, m.name);
		if (t.objects.has(key)) throw alreadyExists(res, m.name);
		m.uid ??= randomUUID();
		m.creationTimestamp ??= timestamp();
		m.resourceVersion = String(this.nextRV());
		t.objects.set(key, obj);
		t.sorted = null;
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
		t.objects.set(key, next);
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
		t.objects.delete(key);
		t.sorted = null;
		this.indexOwner(res, key, old, false);
		const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(this.nextRV()) } };
		this.publish(res, "DELETED", gone, old);
		return gone;
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
			t.sorted = null;
		}
		this.podsByOwner.clear();
	}
}

function lowerBound(keys, key) {
	let lo = 0;
	let hi = keys.length;
	while (lo < hi) {
		const mid = (lo + hi) >>> 1;
		if (keys[mid] < key) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}
