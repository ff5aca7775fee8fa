// Admission of a Job create request, in kube-apiserver's order:
//   decode   (400: wrong types, wrong kind, strict unknown fields; Warning
//             headers for unknown fields otherwise)
//   default  (SetDefaults_Job / SetDefaults_PodSpec, generateName,
//             generateSelector)
//   validate (422: ValidateJob of Kubernetes 1.28)
// Schema deviations found while decoding are reported as "violations" so
// tests can assert that the client only sends schema-conformant bodies.

import { randomUUID } from "node:crypto";
import { schemas, pointerToField } from "./schema.mjs";
import { FieldError, JOBS, badRequest, invalid } from "./status.mjs";
import { dns1123LabelErrors, dns1123SubdomainErrors, labelKeyErrors, labelValueErrors, randomSuffix } from "./names.mjs";
import { matchLabelSelectorObject } from "./selectors.mjs";

export const CONTROLLER_UID = "batch.kubernetes.io/controller-uid";
export const JOB_NAME = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID = "controller-uid";
const LEGACY_JOB_NAME = "job-name";

// Fields the kubernetes-models schema (generated from a newer Kubernetes)
// knows but a 1.28 server does not: there they are unknown fields (warned
// about or, under Strict, rejected).  Alpha fields behind disabled feature
// gates in 1.28 are accepted by the decoder but dropped (PrepareForCreate).
const UNKNOWN_IN_1_28 = ["managedBy", "successPolicy"];
const DROPPED_IN_1_28 = ["backoffLimitPerIndex", "maxFailedIndexes", "podReplacementPolicy"];

export const FIELD_VALIDATION_MODES = ["Strict", "Warn", "Ignore"];

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function valueAtPointer(root, ptr) {
	let v = root;
	for (const raw of ptr.split("/").slice(1)) {
		if (v == null) return undefined;
		v = v[raw.replace(/~1/g, "/").replace(/~0/g, "~")];
	}
	return v;
}

const jsonTypeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "object" ? "object" : typeof v);

/**
 * Decode a Job body posted to namespace `namespace`.
 * Mutates `body` (it is the freshly parsed request and owned by us).
 * Pushes schema violations to `ctx.violations` and warnings to `ctx.warnings`
 * even when it throws, so the request log shows them.
 * Returns the list of FieldErrors the schema found (required, enum), which
 * the real server would report at validation time (422).
 */
export function decodeJob(body, namespace, fieldValidation, ctx) {
	if (!isPlainObject(body)) {
		throw badRequest(`couldn't get version/kind; json parse error: json: cannot unmarshal ${jsonTypeOf(body)} into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }`);
	}
	if (body.apiVersion !== undefined && body.apiVersion !== "batch/v1") {
		throw badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (batch/v1)`);
	}
	if (body.kind !== undefined && body.kind !== "Job") {
		throw badRequest(`${body.kind} in version "v1" cannot be handled as a Job: no kind "${body.kind}" is registered for version "batch/v1"`);
	}
	// The server fills in kind/apiVersion from the URL; the schema requires them.
	body.apiVersion ??= "batch/v1";
	body.kind ??= "Job";

	const cannotHandle = `Job in version "v1" cannot be handled as a Job`;
	const deferred = [];
	let decodeError = null;
	for (const e of schemas.Job.errors(body)) {
		const field = pointerToField(e.instancePath);
		const violationPath = e.keyword === "required" ? joinField(field, e.params.missingProperty) : field;
		ctx.violations.push({ path: violationPath, keyword: e.keyword, message: violationMessage(e) });
		if (e.keyword === "type" || e.keyword === "format") {
			// Go's JSON decoder stops at the first value of the wrong type.
			if (!decodeError) {
				const v = valueAtPointer(body, e.instancePath);
				const goType = e.keyword === "format" ? e.params.format : e.params.type;
				decodeError = badRequest(`${cannotHandle}: json: cannot unmarshal ${jsonTypeOf(v)} into Go struct field Job.${field} of type ${goType}`);
			}
		} else if (e.keyword === "required") {
			deferred.push(FieldError.required(violationPath));
		} else if (e.keyword === "enum") {
			deferred.push(FieldError.notSupported(field, valueAtPointer(body, e.instancePath), e.params.allowedValues));
		} else {
			deferred.push(FieldError.invalid(field, valueAtPointer(body, e.instancePath), e.message));
		}
	}

	const prune = fieldValidation !== "Strict";
	const unknown = schemas.Job.unknownFields(body, prune);
	for (const path of unknown) ctx.violations.push({ path, keyword: "unknown", message: `unknown field "${path}"` });
	if (isPlainObject(body.spec)) {
		for (const f of UNKNOWN_IN_1_28) {
			if (f in body.spec) {
				unknown.push(`spec.${f}`);
				if (prune) delete body.spec[f];
			}
		}
	}
	if (decodeError) throw decodeError;
	if (unknown.length > 0) {
		if (fieldValidation === "Strict") {
			throw badRequest(`${cannotHandle}: strict decoding error: ${unknown.map((p) => `unknown field "${p}"`).join(", ")}`);
		}
		if (fieldValidation !== "Ignore") for (const p of unknown) ctx.warnings.push(`unknown field "${p}"`);
	}

	const meta = body.metadata;
	if (isPlainObject(meta) && meta.namespace && meta.namespace !== namespace) {
		throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
	}
	return deferred;
}

const joinField = (parent, child) => (parent ? `${parent}.${child}` : child);

function violationMessage(e) {
	if (e.keyword === "required") return `required field "${e.params.missingProperty}" is missing`;
	if (e.keyword === "enum") return `${e.message}: ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
	if (e.keyword === "format") return `must match format "${e.params.format}"`;
	return e.message;
}

// ---------------------------------------------------------------------------
// Defaulting

function pullPolicyFor(image) {
	if (typeof image !== "string" || image.includes("@")) return "IfNotPresent";
	const lastSlash = image.lastIndexOf("/");
	const colon = image.lastIndexOf(":");
	const tag = colon > lastSlash ? image.slice(colon + 1) : "latest";
	return tag === "latest" ? "Always" : "IfNotPresent";
}

function defaultContainer(c) {
	if (!isPlainObject(c)) return;
	c.terminationMessagePath ||= "/dev/termination-log";
	c.terminationMessagePolicy ||= "File";
	c.imagePullPolicy ||= pullPolicyFor(c.image);
	c.resources ??= {};
	for (const p of c.ports ?? []) if (isPlainObject(p)) p.protocol ||= "TCP";
}

/** SetDefaults_PodSpec and SetDefaults_Container, the parts clients see. */
export function defaultPodSpec(ps) {
	ps.restartPolicy ||= "Always";
	ps.terminationGracePeriodSeconds ??= 30;
	ps.dnsPolicy ||= "ClusterFirst";
	ps.securityContext ??= {};
	ps.schedulerName ||= "default-scheduler";
	for (const c of ps.containers ?? []) defaultContainer(c);
	for (const c of ps.initContainers ?? []) defaultContainer(c);
}

/**
 * Turn a decoded body into the Job the server would store: server-set
 * metadata (uid, generation; the store adds resourceVersion and
 * creationTimestamp), SetDefaults_Job, generateName and generateSelector.
 */
export function prepareJob(body, namespace) {
	const inMeta = isPlainObject(body.metadata) ? body.metadata : {};
	const spec = isPlainObject(body.spec) ? body.spec : {};
	if (!isPlainObject(spec.template)) spec.template = {};
	const tmpl = spec.template;
	if (!isPlainObject(tmpl.spec)) tmpl.spec = {};

	let name = inMeta.name;
	if (!name && inMeta.generateName) name = inMeta.generateName.slice(0, 58) + randomSuffix();

	const uid = randomUUID();
	const metadata = { name, generateName: inMeta.generateName, namespace, uid };
	for (const [k, v] of Object.entries(inMeta)) {
		if (!(k in metadata) && !SERVER_SET_META.has(k)) metadata[k] = v;
	}
	metadata.generation = 1;

	// SetDefaults_Job.  When the Job has no labels it takes the template's
	// labels *map* — the very map generateSelector then fills, so on the real
	// server such a Job's own labels include job-name and controller-uid.
	if (spec.completions == null && spec.parallelism == null) spec.completions = 1;
	spec.parallelism ??= 1;
	spec.backoffLimit ??= 6;
	spec.completionMode ??= "NonIndexed";
	spec.suspend ??= false;
	for (const f of DROPPED_IN_1_28) delete spec[f];
	const tmplMeta = isPlainObject(tmpl.metadata) ? tmpl.metadata : (tmpl.metadata = {});
	const aliasLabels = tmplMeta.labels != null && (metadata.labels == null || Object.keys(metadata.labels).length === 0);

	if (spec.manualSelector !== true) {
		tmplMeta.labels ??= {};
		const l = tmplMeta.labels;
		for (const key of [LEGACY_JOB_NAME, JOB_NAME]) if (!(key in l)) l[key] = name ?? "";
		for (const key of [LEGACY_CONTROLLER_UID, CONTROLLER_UID]) if (!(key in l)) l[key] = uid;
		spec.selector ??= {};
		spec.selector.matchLabels ??= {};
		if (!(CONTROLLER_UID in spec.selector.matchLabels)) spec.selector.matchLabels[CONTROLLER_UID] = uid;
	}
	if (aliasLabels) metadata.labels = tmplMeta.labels;
	tmplMeta.creationTimestamp ??= null;
	defaultPodSpec(tmpl.spec);

	return { metadata, spec, status: {} };
}

// Metadata a client may send but the server overwrites or clears on create.
const SERVER_SET_META = new Set(["uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]);

// ---------------------------------------------------------------------------
// Validation (pkg/apis/batch/validation.ValidateJob as of 1.28)

function validateLabels(labels, field, errs) {
	if (!isPlainObject(labels)) return;
	for (const [k, v] of Object.entries(labels)) {
		for (const msg of labelKeyErrors(k)) errs.push(FieldError.invalid(field, k, msg));
		for (const msg of labelValueErrors(String(v))) errs.push(FieldError.invalid(field, v, msg));
	}
}

const TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024; // apimachinery's TotalAnnotationSizeLimitB

function validateAnnotations(annotations, field, errs) {
	if (!isPlainObject(annotations)) return;
	let size = 0;
	for (const [k, v] of Object.entries(annotations)) {
		for (const msg of labelKeyErrors(k.toLowerCase())) errs.push(FieldError.invalid(field, k, msg));
		size += Buffer.byteLength(k) + Buffer.byteLength(String(v));
	}
	// Keys and values together, in bytes; big payloads belong elsewhere.
	if (size > TOTAL_ANNOTATION_SIZE_LIMIT) errs.push(new FieldError("TooLong", field, "", `must have at most ${TOTAL_ANNOTATION_SIZE_LIMIT} bytes`));
}

function validateHasLabel(labels, key, expected, errs) {
	const field = `spec.template.metadata.labels[${key}]`;
	if (!labels || !(key in labels)) errs.push(FieldError.required(field, expected));
	else if (labels[key] !== expected) errs.push(FieldError.invalid(field, labels, expected));
}

function validateContainers(list, field, names, errs) {
	if (!Array.isArray(list)) return;
	list.forEach((c, i) => {
		if (!isPlainObject(c)) return;
		const at = `${field}[${i}]`;
		if (!c.name) errs.push(FieldError.required(`${at}.name`));
		else {
			for (const msg of dns1123LabelErrors(c.name)) errs.push(FieldError.invalid(`${at}.name`, c.name, msg));
			if (names.has(c.name)) errs.push(new FieldError("Duplicate", `${at}.name`, c.name));
			names.add(c.name);
		}
		if (!c.image) errs.push(FieldError.required(`${at}.image`));
	});
}

function validatePodTemplate(tmpl, errs) {
	validateLabels(tmpl.metadata?.labels, "spec.template.labels", errs);
	validateAnnotations(tmpl.metadata?.annotations, "spec.template.annotations", errs);
	const ps = tmpl.spec;
	const names = new Set();
	validateContainers(ps.initContainers, "spec.template.spec.initContainers", names, errs);
	if (!Array.isArray(ps.containers) || ps.containers.length === 0) errs.push(FieldError.required("spec.template.spec.containers"));
	else validateContainers(ps.containers, "spec.template.spec.containers", names, errs);
}

/**
 * Validate a prepared Job.  `schemaErrors` are the required/enum problems
 * found by the schema at decode time; they are reported unless a semantic
 * check already covers the same field.  Throws a 422 ApiError.
 */
export function validateJob(job, schemaErrors) {
	const errs = [];
	const { metadata, spec } = job;

	// ValidateObjectMeta
	if (!metadata.name) errs.push(FieldError.required("metadata.name", "name or generateName is required"));
	else for (const msg of dns1123SubdomainErrors(metadata.name)) errs.push(FieldError.invalid("metadata.name", metadata.name, msg));
	validateLabels(metadata.labels, "metadata.labels", errs);
	validateAnnotations(metadata.annotations, "metadata.annotations", errs);

	// validateGeneratedSelector: the template must carry the generated labels.
	const tmplLabels = spec.template.metadata?.labels;
	if (spec.manualSelector !== true && spec.selector) {
		const expected = {
			[LEGACY_CONTROLLER_UID]: metadata.uid,
			[LEGACY_JOB_NAME]: metadata.name,
			[CONTROLLER_UID]: metadata.uid,
			[JOB_NAME]: metadata.name,
		};
		for (const [k, v] of Object.entries(expected)) validateHasLabel(tmplLabels, k, v, errs);
		if (!matchLabelSelectorObject(spec.selector, expected)) errs.push(FieldError.invalid("spec.selector", spec.selector, "`selector` not auto-generated"));
	}

	// validateJobSpec
	for (const f of ["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"]) {
		if (typeof spec[f] === "number" && spec[f] < 0) errs.push(FieldError.invalid(`spec.${f}`, spec[f], "must be greater than or equal to 0"));
	}
	if (spec.completionMode !== "NonIndexed" && spec.completionMode !== "Indexed") {
		errs.push(FieldError.notSupported("spec.completionMode", spec.completionMode, ["NonIndexed", "Indexed"]));
	} else if (spec.completionMode === "Indexed" && spec.completions == null) {
		errs.push(FieldError.required("spec.completions", "when completion mode is Indexed"));
	}
	validatePodTemplate(spec.template, errs);
	// RestartPolicy was defaulted to Always when absent, which Jobs refuse.
	const rp = spec.template.spec.restartPolicy;
	if (rp !== "OnFailure" && rp !== "Never") errs.push(FieldError.notSupported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"]));

	// ValidateJobSpec: the selector must select the pods the Job will make.
	if (!spec.selector) errs.push(FieldError.required("spec.selector"));
	else if (!matchLabelSelectorObject(spec.selector, tmplLabels ?? {})) {
		errs.push(FieldError.invalid("spec.template.metadata.labels", tmplLabels ?? {}, "`selector` does not match template `labels`"));
	}

	const covered = new Set(errs.map((e) => e.field));
	for (const e of schemaErrors) if (!covered.has(e.field)) errs.push(e);
	if (errs.length) throw invalid(JOBS, metadata.name ?? "", errs);
}

/** WarningsOnCreate: Job names are used for pod hostnames. */
export function jobCreateWarnings(job) {
	const msgs = dns1123LabelErrors(job.metadata.name);
	if (msgs.length === 0) return [];
	return [`metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [${msgs.join(" ")}]`];
}

// ---------------------------------------------------------------------------
// DeleteOptions

const PROPAGATION = ["Foreground", "Background", "Orphan"];

/**
 * Merge DeleteOptions from the query and an optional JSON body, checking
 * the body against the DeleteOptions schema.  Returns
 * {propagationPolicy, preconditions, dryRun, orphanDependents}.
 */
export function decodeDeleteOptions(query, body, ctx) {
	const opts = {};
	if (body != null) {
		if (!isPlainObject(body)) throw badRequest("couldn't get version/kind; json parse error: expected a DeleteOptions object");
		for (const e of schemas.DeleteOptions.errors(body)) {
			ctx.violations.push({ path: pointerToField(e.instancePath), keyword: e.keyword, message: violationMessage(e) });
		}
		for (const path of schemas.DeleteOptions.unknownFields(body)) {
			ctx.violations.push({ path, keyword: "unknown", message: `unknown field "${path}"` });
		}
		Object.assign(opts, body);
	}
	if (query.has("propagationPolicy")) opts.propagationPolicy = query.get("propagationPolicy");
	if (query.has("orphanDependents")) opts.orphanDependents = query.get("orphanDependents") === "true";
	if (query.has("dryRun")) opts.dryRun = query.getAll("dryRun");
	if (query.has("gracePeriodSeconds")) opts.gracePeriodSeconds = Number(query.get("gracePeriodSeconds"));

	const errs = [];
	if (opts.propagationPolicy != null && !PROPAGATION.includes(opts.propagationPolicy)) {
		errs.push(FieldError.notSupported("propagationPolicy", opts.propagationPolicy, [...PROPAGATION, "nil"]));
	}
	if (opts.propagationPolicy != null && opts.orphanDependents != null) {
		errs.push(FieldError.invalid("propagationPolicy", opts.propagationPolicy, "orphanDependents and deletionPropagation cannot be both set"));
	}
	if (errs.length) {
		throw invalid({ kind: "DeleteOptions", group: "meta.k8s.io", resource: "deleteoptions" }, "", errs);
	}
	// The deprecated boolean maps onto the policies.
	if (opts.propagationPolicy == null && opts.orphanDependents != null) {
		opts.propagationPolicy = opts.orphanDependents ? "Orphan" : "Background";
	}
	opts.dryRun = Array.isArray(opts.dryRun) && opts.dryRun.includes("All");
	return opts;
}

