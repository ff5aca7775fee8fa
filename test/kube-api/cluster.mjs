// What the rest of a cluster would do around the API: the Job controller
// creating a Job's pod, the garbage collector honouring propagationPolicy,
// and (driven by the test through the control API) pods running, succeeding
// or failing, and Jobs deleted wholesale.  All changes go through the
// Store, so they bump resourceVersions and reach watchers.

import { randomBytes } from "node:crypto";
import { JOBS, PODS, notFound, preconditionFailed, successStatus } from "./status.mjs";
import { randomSuffix } from "./names.mjs";
import { matchFields, matchLabels } from "./selectors.mjs";
import { timestamp } from "./store.mjs";

export class Cluster {
	constructor(store) {
		this.store = store;
	}

	/**
	 * Store a validated Job and, unless suspended (or `pod` is false), the
	 * one pod the controller would start.  `maxBytes`: see Store.insert.
	 */
	createJob(job, { pod = true, maxBytes = 0 } = {}) {
		const stored = this.store.insert(JOBS, job, { maxBytes });
		if (pod && stored.spec.suspend !== true && stored.spec.parallelism !== 0) this.store.insert(PODS, podFor(stored));
		return stored;
	}

	/**
	 * Delete every Job in `namespace` that matches the selectors, as
	 * `kubectl delete jobs --all` or a deletecollection by someone else
	 * would; the pods go too unless the policy is Orphan.  Returns
	 * {deleted, pods_deleted}.
	 */
	deleteJobs(namespace, { labelReqs = [], fieldReqs = [], propagationPolicy = "Background" } = {}) {
		const victims = [];
		for (const job of this.store.iterate(JOBS, namespace)) {
			if (matchLabels(labelReqs, job.metadata.labels) && matchFields(fieldReqs, job)) victims.push(job.metadata.name);
		}
		const podsBefore = this.store.count(PODS);
		// One re-sort on the next list beats thousands of splices.
		if (victims.length > 1000) {
			this.store.dropIndex(JOBS);
			this.store.dropIndex(PODS);
		}
		for (const name of victims) this.deleteJob(namespace, name, { propagationPolicy });
		return { deleted: victims.length, pods_deleted: podsBefore - this.store.count(PODS) };
	}

	/**
	 * Delete a Job with the batch/v1 semantics (see NOTES): no policy means
	 * Orphan.  Returns {code, body} where body is what the API responds:
	 * a success Status when the Job is gone at once (Background), or the Job
	 * as updated with deletionTimestamp and the GC finalizer (Orphan,
	 * Foreground) — the GC's work is then done immediately.
	 */
	deleteJob(namespace, name, opts) {
		const job = this.store.get(JOBS, namespace, name);
		if (!job) throw notFound(JOBS, name);
		checkPreconditions(JOBS, job, opts.preconditions);
		const policy = opts.propagationPolicy ?? "Orphan";
		const podKeys = this.store.podsOwnedBy(job.metadata.uid);
		// orphanDependents=false asks for cascading; the server answers 202 (a historical quirk).
		const code = opts.orphanDependents === false ? 202 : 200;

		if (policy === "Background") {
			const body = successStatus({ name, group: "batch", kind: "jobs", uid: job.metadata.uid });
			if (!opts.dryRun) {
				this.store.remove(JOBS, namespace, name);
				for (const key of podKeys) this.removePodKey(key);
			}
			return { code, body, object: false };
		}

		const finalizer = policy === "Foreground" ? "foregroundDeletion" : "orphan";
		const mark = (o) => {
			o.metadata.deletionTimestamp ??= timestamp();
			o.metadata.deletionGracePeriodSeconds = 0;
			o.metadata.finalizers = [...new Set([...(o.metadata.finalizers ?? []), finalizer])];
		};
		if (opts.dryRun) {
			const preview = structuredClone(job);
			mark(preview);
			return { code, body: preview, object: true };
		}
		const marked = this.store.update(JOBS, namespace, name, mark);
		for (const key of podKeys) {
			const [ns, podName] = splitKey(key);
			if (policy === "Foreground") {
				this.store.remove(PODS, ns, podName);
			} else {
				// Orphaning removes the owner reference from each dependent.
				this.store.update(PODS, ns, podName, (p) => {
					p.metadata.ownerReferences = p.metadata.ownerReferences.filter((r) => r.uid !== job.metadata.uid);
					if (p.metadata.ownerReferences.length === 0) delete p.metadata.ownerReferences;
				});
			}
		}
		this.store.remove(JOBS, namespace, name);
		return { code, body: marked, object: true };
	}

	/** Delete a pod at once (as if its grace period had passed); returns the pod as deleted. */
	deletePod(namespace, name, opts = {}) {
		const pod = this.store.get(PODS, namespace, name);
		if (!pod) throw notFound(PODS, name);
		checkPreconditions(PODS, pod, opts.preconditions);
		const grace = opts.gracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
		const gone = opts.dryRun ? pod : this.store.remove(PODS, namespace, name);
		return { ...gone, metadata: { ...gone.metadata, deletionTimestamp: timestamp(), deletionGracePeriodSeconds: grace } };
	}

	removePodKey(key) {
		const [ns, name] = splitKey(key);
		if (this.store.get(PODS, ns, name)) this.store.remove(PODS, ns, name);
	}

	/**
	 * Drive a Job (and its pods) to a phase, as the Job controller and kubelet
	 * would report it.  req: {phase: pending|running|succeeded|failed, reason,
	 * message, pod_reason, exit_code} or {status: {...}} to set Job status verbatim.
	 */
	setJobPhase(namespace, name, req) {
		const job = this.store.get(JOBS, namespace, name);
		if (!job) throw notFound(JOBS, name);
		const now = timestamp();
		const podKeys = this.store.podsOwnedBy(job.metadata.uid);
		if (req.status !== undefined) {
			return this.store.update(JOBS, namespace, name, (j) => {
				j.status = req.status;
			});
		}
		const phase = PHASES[req.phase];
		if (!phase) throw new Error(`phase must be one of ${Object.keys(PHASES).join(", ")}`);
		const startTime = job.status?.startTime ?? now;
		for (const key of podKeys) {
			const [ns, podName] = splitKey(key);
			this.store.update(PODS, ns, podName, (p) => {
				p.status = phase.pod(p, req, p.status?.startTime ?? now, now);
			});
		}
		return this.store.update(JOBS, namespace, name, (j) => {
			j.status = phase.job(req, startTime, now);
		});
	}

	/** Back-date a Job and its pods (for age-based cleanup tests). */
	setCreationTimestamp(namespace, name, time) {
		const job = this.store.get(JOBS, namespace, name);
		if (!job) throw notFound(JOBS, name);
		for (const key of this.store.podsOwnedBy(job.metadata.uid)) {
			const [ns, podName] = splitKey(key);
			this.store.update(PODS, ns, podName, (p) => {
				p.metadata.creationTimestamp = time;
			});
		}
		return this.store.update(JOBS, namespace, name, (j) => {
			j.metadata.creationTimestamp = time;
		});
	}

	/** Insert an object verbatim (foreign Jobs, orphan pods); no validation. */
	insertObject(res, obj) {
		const { kind: _kind, apiVersion: _apiVersion, ...rest } = structuredClone(obj);
		rest.metadata ??= {};
		rest.metadata.namespace ??= "default";
		if (!rest.metadata.name) throw new Error("object.metadata.name is required");
		if (res === PODS) rest.status ??= { phase: "Pending" };
		if (res === JOBS) rest.status ??= {};
		return this.store.insert(res, rest);
	}
}

function splitKey(key) {
	const i = key.indexOf("/");
	return [key.slice(0, i), key.slice(i + 1)];
}

/**
 * DeleteOptions.preconditions, in rest.BeforeDelete's words.  (The storage
 * layer's "Precondition failed: UID in precondition: …" form is only seen
 * when the object changes between that check and the etcd transaction,
 * which cannot happen here.)
 */
function checkPreconditions(res, obj, pre) {
	if (!pre) return;
	const { name, uid, resourceVersion } = obj.metadata;
	if (pre.uid != null && pre.uid !== uid) {
		throw preconditionFailed(res, name, `the UID in the precondition (${pre.uid}) does not match the UID in record (${uid}). The object might have been deleted and then recreated`);
	}
	if (pre.resourceVersion != null && pre.resourceVersion !== resourceVersion) {
		throw preconditionFailed(
			res,
			name,
			`the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ResourceVersion in record (${resourceVersion}). The object might have been modified`,
		);
	}
}

/** The pod the Job controller creates from the template (generateName "<job>-"). */
function podFor(job) {
	const t = job.spec.template;
	const base = `${job.metadata.name}-`.slice(0, 58);
	const metadata = {
		name: base + randomSuffix(),
		generateName: `${job.metadata.name}-`,
		namespace: job.metadata.namespace,
		labels: { ...(t.metadata?.labels ?? {}) },
		ownerReferences: [
			{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true },
		],
	};
	if (t.metadata?.annotations) metadata.annotations = { ...t.metadata.annotations };
	// A shallow copy suffices: stored objects are never mutated in place.
	const serviceAccountName = t.spec.serviceAccountName ?? "default";
	const spec = { ...t.spec, serviceAccountName, serviceAccount: t.spec.serviceAccount ?? serviceAccountName };
	return { metadata, spec, status: { phase: "Pending", qosClass: "BestEffort" } };
}

const containerId = () => `containerd://${randomBytes(32).toString("hex")}`;
const containersOf = (p) => p.spec?.containers ?? [];

function containerStatuses(p, state, ready) {
	return containersOf(p).map((c) => ({
		name: c.name,
		state,
		lastState: {},
		ready,
		restartCount: 0,
		image: c.image,
		imageID: "",
		containerID: containerId(),
		started: ready,
	}));
}

// Job and pod status for each phase, shaped like the 1.28 Job controller's.
const PHASES = {
	pending: {
		job: () => ({}),
		pod: () => ({ phase: "Pending", qosClass: "BestEffort" }),
	},
	running: {
		job: (_req, startTime) => ({ startTime, active: 1, ready: 1, uncountedTerminatedPods: {} }),
		pod: (p, _req, startTime) => ({
			phase: "Running",
			startTime,
			containerStatuses: containerStatuses(p, { running: { startedAt: startTime } }, true),
			qosClass: "BestEffort",
		}),
	},
	succeeded: {
		job: (_req, startTime, now) => ({
			conditions: [{ type: "Complete", status: "True", lastProbeTime: now, lastTransitionTime: now }],
			startTime,
			completionTime: now,
			succeeded: 1,
			ready: 0,
			uncountedTerminatedPods: {},
		}),
		pod: (p, _req, startTime, now) => ({
			phase: "Succeeded",
			startTime,
			containerStatuses: containerStatuses(p, { terminated: { exitCode: 0, reason: "Completed", startedAt: startTime, finishedAt: now } }, false),
			qosClass: "BestEffort",
		}),
	},
	failed: {
		job: (req, startTime, now) => ({
			conditions: [
				{
					type: "Failed",
					status: "True",
					lastProbeTime: now,
					lastTransitionTime: now,
					reason: req.reason ?? "BackoffLimitExceeded",
					message: req.message ?? "Job has reached the specified backoff limit",
				},
			],
			startTime,
			failed: 1,
			ready: 0,
			uncountedTerminatedPods: {},
		}),
		pod: (p, req, startTime, now) => {
			const terminated = { exitCode: req.exit_code ?? 1, reason: req.pod_reason ?? "Error", startedAt: startTime, finishedAt: now };
			return { phase: "Failed", startTime, containerStatuses: containerStatuses(p, { terminated }, false), qosClass: "BestEffort" };
		},
	},
};

