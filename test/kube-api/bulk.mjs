// Bulk creation of Jobs through the control port, for tests and benchmarks
// that need many Jobs (100,000) at once without 100,000 API requests.
//
// The template goes through the API's decode (Strict), defaulting and
// validation once.  Each Job is then built from it with its own name, uid,
// generated selector and labels, and the labels and annotations given for
// it, and validated like a create (ValidateJob, which is cheap; the schema
// pass is what costs, and only the template needs it).  All Jobs share the
// one defaulted pod spec object: stored objects are never mutated in place
// (see store.mjs), so the sharing is invisible and keeps 100,000 Jobs small.

import { JOBS, NAMESPACES, PODS, alreadyExists, notFound } from "./status.mjs";
import { decodeJob, defaultPodSpec, prepareJob, validateJob } from "./validate.mjs";

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

export class BulkError extends Error {}

function stringMap(v, what) {
	if (v == null) return undefined;
	if (!isPlainObject(v) || !Object.values(v).every((x) => typeof x === "string")) throw new BulkError(`${what} must be an object of strings`);
	return v;
}

/** Per-name maps: {name: {key: value}}. */
function byName(v, what) {
	if (v == null) return {};
	if (!isPlainObject(v)) throw new BulkError(`${what} must be an object keyed by Job name`);
	for (const [name, m] of Object.entries(v)) stringMap(m, `${what}.${name}`);
	return v;
}

/** `names`, or `count` names `${prefix}${start + i}`. */
function namesOf(body) {
	if (body.names != null) {
		if (!Array.isArray(body.names) || !body.names.every((n) => typeof n === "string" && n !== "")) throw new BulkError("names must be a list of non-empty strings");
		return body.names;
	}
	const count = Number(body.count);
	const start = Number(body.start ?? 0);
	if (!Number.isInteger(count) || count < 0) throw new BulkError('body needs "names" (a list) or "count" (a non-negative integer)');
	if (!Number.isInteger(start) || start < 0) throw new BulkError("start must be a non-negative integer");
	const prefix = String(body.prefix ?? "job-");
	return Array.from({ length: count }, (_, i) => `${prefix}${start + i}`);
}

/** Check and normalise a POST /jobs/{ns}/bulk body. */
function parseBody(body) {
	if (!isPlainObject(body.template)) throw new BulkError("template must be a Job object");
	const names = namesOf(body);
	const seen = new Set();
	for (const n of names) {
		if (seen.has(n)) throw new BulkError(`name ${JSON.stringify(n)} is given twice`);
		seen.add(n);
	}
	const created = body.creation_timestamp;
	if (created != null && (typeof created !== "string" || Number.isNaN(Date.parse(created)))) {
		throw new BulkError('creation_timestamp must be RFC 3339, e.g. "2020-01-01T00:00:00Z"');
	}
	if (body.status != null && !isPlainObject(body.status)) throw new BulkError("status must be an object (a JobStatus)");
	return {
		template: body.template,
		names,
		labels: byName(body.labels_by_name, "labels_by_name"),
		annotations: byName(body.annotations_by_name, "annotations_by_name"),
		pods: body.pods === true,
		status: body.status ?? null,
		creationTimestamp: created ?? null,
	};
}

/**
 * The template decoded once, as a create of its first Job would decode it;
 * throws the API's 400/422 for a bad template.  The pod spec is defaulted
 * here so that prepareJob finds nothing left to fill in it (and so never
 * writes to the shared object).
 */
function decodeTemplate(template, namespace, firstName) {
	const body = structuredClone(template);
	body.metadata = { ...(isPlainObject(body.metadata) ? body.metadata : {}), name: firstName };
	delete body.metadata.generateName;
	const ctx = { violations: [], warnings: [] };
	const schemaErrors = decodeJob(body, namespace, "Strict", ctx);
	const first = prepareJob(structuredClone(body), namespace);
	validateJob(first, schemaErrors);
	// SetDefaults_Job does not depend on the name: do it once here, so the
	// Jobs' specs are born with the defaults (cheaper than adding them to each).
	const { template: _t, selector: _s, ...defaulted } = first.spec;
	body.spec = { ...body.spec, ...defaulted };
	defaultPodSpec(body.spec.template.spec);
	return body;
}

/** A fresh body for one Job: its own maps wherever prepareJob writes, the shared pod spec. */
function bodyFor(tpl, name, labels, annotations) {
	const meta = { ...tpl.metadata, name };
	if (labels) meta.labels = { ...(tpl.metadata.labels ?? {}), ...labels };
	if (annotations) meta.annotations = { ...(tpl.metadata.annotations ?? {}), ...annotations };
	const t = tpl.spec.template;
	const tmplMeta = isPlainObject(t.metadata) ? { ...t.metadata } : {};
	if (tmplMeta.labels) tmplMeta.labels = { ...tmplMeta.labels };
	const spec = { ...tpl.spec, template: { ...t, metadata: tmplMeta } };
	if (tpl.spec.selector) spec.selector = structuredClone(tpl.spec.selector);
	return { metadata: meta, spec };
}

/**
 * POST /jobs/{ns}/bulk.  All Jobs are built and checked before any is
 * stored, so a refused request changes nothing.  Returns
 * {created, pods, first_resource_version, resource_version, ms}.
 */
export function bulkCreateJobs(state, namespace, rawBody) {
	const t0 = performance.now();
	const req = parseBody(rawBody);
	const { store, cluster } = state;
	if (!state.namespaces.has(namespace)) throw notFound(NAMESPACES, namespace);
	if (req.names.length === 0) return { created: 0, pods: 0, first_resource_version: null, resource_version: store.currentRV, ms: 0 };
	const tpl = decodeTemplate(req.template, namespace, req.names[0]);

	const jobs = req.names.map((name) => {
		if (store.get(JOBS, namespace, name)) throw alreadyExists(JOBS, name);
		const job = prepareJob(bodyFor(tpl, name, req.labels[name], req.annotations[name]), namespace);
		validateJob(job, []);
		// Storage round-trips the object: the Job's labels no longer alias the template's.
		if (job.metadata.labels) job.metadata.labels = { ...job.metadata.labels };
		if (req.creationTimestamp) job.metadata.creationTimestamp = req.creationTimestamp;
		if (req.status) job.status = req.status;
		return job;
	});

	const podsBefore = store.count(PODS);
	// One re-sort on the next list beats thousands of splices.
	if (jobs.length > 1000) {
		store.dropIndex(JOBS);
		if (req.pods) store.dropIndex(PODS);
	}
	const first = store.currentRV + 1;
	for (const job of jobs) cluster.createJob(job, { pod: req.pods });
	return {
		created: jobs.length,
		pods: store.count(PODS) - podsBefore,
		first_resource_version: first,
		resource_version: store.currentRV,
		ms: Math.round(performance.now() - t0),
	};
}
