// The TTL-after-finished controller: a Job with spec.ttlSecondsAfterFinished
// is deleted that many seconds after it finished (its Complete or Failed
// condition's lastTransitionTime), as kube-controller-manager's
// ttlafterfinished controller does it: Foreground propagation and a UID
// precondition.  It watches the store's change feed, so a Job finishes
// however its status was set (control API phase or verbatim status, bulk
// creation, POST /objects).

import { JOBS, PODS } from "./status.mjs";
import { keyOf } from "./store.mjs";

export const TTL_POLICIES = ["Foreground", "Background", "Orphan"];
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit; longer waits re-arm

/** IsJobFinished + jobFinishTime: the finishing condition, or null. */
function finishCondition(job) {
	for (const c of job.status?.conditions ?? []) {
		if ((c.type === "Complete" || c.type === "Failed") && c.status === "True") return c;
	}
	return null;
}

export class TtlController {
	constructor(store, cluster) {
		this.store = store;
		this.cluster = cluster;
		this.entries = new Map(); // "ns/name" -> {uid, since, ttl, expireAt, timer}
		this.due = new Set(); // keys to delete once the current change is done
		this.reset();
	}

	reset() {
		for (const e of this.entries.values()) clearTimeout(e.timer);
		this.entries.clear();
		this.due.clear();
		this.enabled = true;
		this.policy = "Foreground";
	}

	settings() {
		return { enabled: this.enabled, propagation_policy: this.policy, scheduled: this.entries.size };
	}

	/** Store change feed: (re)schedule or forget a Job's deletion. */
	observe(res, type, job) {
		if (res !== JOBS) return;
		const key = keyOf(job.metadata.namespace, job.metadata.name);
		const old = this.entries.get(key);
		const cond = type === "DELETED" || job.metadata.deletionTimestamp ? null : finishCondition(job);
		const ttl = job.spec?.ttlSecondsAfterFinished;
		if (!this.enabled || !cond || typeof ttl !== "number" || ttl < 0) {
			if (old) this.forget(key);
			return;
		}
		const since = cond.lastTransitionTime ?? "";
		if (old && old.uid === job.metadata.uid && old.since === since && old.ttl === ttl) return;
		if (old) clearTimeout(old.timer);
		// lastTransitionTime has whole seconds.  For a Job that finished just
		// now, count from now, so that "deleted N s after it finished" holds to
		// the millisecond in tests; older finish times are taken as they are.
		const now = Date.now();
		const condMs = Date.parse(since);
		const finishedAt = Number.isNaN(condMs) || (now >= condMs && now - condMs < 1000) ? now : condMs;
		const entry = { uid: job.metadata.uid, since, ttl, expireAt: finishedAt + ttl * 1000, timer: null };
		this.entries.set(key, entry);
		this.arm(key, entry);
	}

	arm(key, entry) {
		const wait = entry.expireAt - Date.now();
		if (wait <= 0) {
			// After the change that finished the Job has been published and the
			// caller (a control request) is done, but before any further request
			// is read: ttlSecondsAfterFinished 0 is deterministic for tests.
			if (this.due.size === 0) queueMicrotask(() => this.flush());
			this.due.add(key);
			return;
		}
		entry.timer = setTimeout(() => this.fire(key), Math.min(wait, MAX_TIMER_MS));
		entry.timer.unref();
	}

	flush() {
		const keys = [...this.due];
		this.due.clear();
		// Many Jobs expiring at once (bulk-created, back-dated): one re-sort
		// on the next list beats thousands of splices.
		if (keys.length > 1000) {
			this.store.dropIndex(JOBS);
			this.store.dropIndex(PODS);
		}
		for (const key of keys) this.fire(key);
	}

	fire(key) {
		const entry = this.entries.get(key);
		if (!entry) return;
		if (entry.expireAt > Date.now()) return this.arm(key, entry); // a clamped timer
		this.forget(key);
		const [namespace, name] = [key.slice(0, key.indexOf("/")), key.slice(key.indexOf("/") + 1)];
		const job = this.store.get(JOBS, namespace, name);
		if (!job || job.metadata.uid !== entry.uid) return;
		try {
			this.cluster.deleteJob(namespace, name, { propagationPolicy: this.policy, preconditions: { uid: entry.uid } });
		} catch (err) {
			// Runs from a timer: an exception here would stop the server.
			console.error(`kube-api: TTL deletion of ${key} failed:`, err);
		}
	}

	forget(key) {
		clearTimeout(this.entries.get(key)?.timer);
		this.entries.delete(key);
		this.due.delete(key);
	}

	/** PUT /ttl: {enabled, propagation_policy}. Turning it off forgets what was scheduled. */
	configure({ enabled, propagation_policy: policy }) {
		if (policy != null) {
			if (!TTL_POLICIES.includes(policy)) throw new Error(`propagation_policy must be one of ${TTL_POLICIES.join(", ")}`);
			this.policy = policy;
		}
		if (enabled != null) {
			if (typeof enabled !== "boolean") throw new Error("enabled must be true or false");
			this.enabled = enabled;
			if (!enabled) {
				for (const key of [...this.entries.keys()]) this.forget(key);
			} else {
				// Pick up the Jobs that finished while it was off, as a restarted controller would.
				for (const job of [...this.store.iterate(JOBS, "")]) this.observe(JOBS, "MODIFIED", job);
			}
		}
		return this.settings();
	}
}
