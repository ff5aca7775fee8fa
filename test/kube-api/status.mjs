// metav1.Status errors shaped like kube-apiserver's (k8s.io/apimachinery
// pkg/api/errors), plus field.Error formatting for 422 responses.

/** An API failure that the HTTP layer turns into a Status response. */
export class ApiError extends Error {
	constructor(code, reason, message, details, metadata = {}) {
		super(message);
		this.code = code;
		this.reason = reason;
		this.details = details;
		this.metadata = metadata;
	}

	toStatus() {
		return statusObject(this.code, this.reason, this.message, this.details, this.metadata);
	}
}

/** Field order matches the real server's JSON. Undefined members are omitted by JSON.stringify. */
export function statusObject(code, reason, message, details, metadata = {}) {
	return { kind: "Status", apiVersion: "v1", metadata, status: "Failure", message, reason, details, code };
}

export function successStatus(details) {
	return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details };
}

// Resource descriptors: what error messages call a resource.
export const JOBS = { resource: "jobs", group: "batch", version: "v1", kind: "Job", listKind: "JobList" };
export const PODS = { resource: "pods", group: "", version: "v1", kind: "Pod", listKind: "PodList" };
export const NAMESPACES = { resource: "namespaces", group: "", version: "v1", kind: "Namespace", listKind: "NamespaceList" };

export const apiVersionOf = (res) => (res.group ? `${res.group}/${res.version}` : res.version);
const qualified = (res) => (res.group ? `${res.resource}.${res.group}` : res.resource);
const groupKind = (res) => (res.group ? `${res.kind}.${res.group}` : res.kind);
const detailsFor = (res, name) => ({ name, group: res.group || undefined, kind: res.resource });

export const notFound = (res, name) => new ApiError(404, "NotFound", `${qualified(res)} "${name}" not found`, detailsFor(res, name));

export const alreadyExists = (res, name) =>
	new ApiError(409, "AlreadyExists", `${qualified(res)} "${name}" already exists`, detailsFor(res, name));

export const conflict = (res, name, why) =>
	new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${qualified(res)} "${name}": ${why}`, detailsFor(res, name));

/**
 * A DeleteOptions precondition that does not hold.  rest.BeforeDelete checks
 * it before storage is touched and, unlike the storage layer, names the
 * resource by its kind: "Job.batch", details.kind "Job".
 */
export function preconditionFailed(res, name, why) {
	const gr = { ...res, resource: res.kind };
	return new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${why}`, detailsFor(gr, name));
}

/** The body is over MaxRequestBodyBytes; NewRequestEntityTooLargeError sets no details. */
export const requestEntityTooLarge = (limit) => new ApiError(413, "RequestEntityTooLarge", `Request entity too large: limit is ${limit}`);

/**
 * etcd refused the write as bigger than its --max-request-bytes.  The
 * apiserver does not map this error (kubernetes#112152): it is answered as
 * an unknown error, 500 with no reason and etcd's own words.
 */
export const etcdRequestTooLarge = () => new ApiError(500, undefined, "etcdserver: request is too large");

export const badRequest = (message) => new ApiError(400, "BadRequest", message);

export const unauthorized = () => new ApiError(401, "Unauthorized", "Unauthorized");

export function forbidden(res, verb, name, namespace, user) {
	const what = name ? `${qualified(res)} "${name}"` : qualified(res);
	const scope = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
	const msg = `${what} is forbidden: User "${user}" cannot ${verb} resource "${res.resource}" in API group "${res.group}" ${scope}`;
	return new ApiError(403, "Forbidden", msg, detailsFor(res, name || undefined));
}

export const pathNotFound = () => new ApiError(404, "NotFound", "the server could not find the requested resource", {});

export const methodNotAllowed = () =>
	new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});

export const expired = (message, metadata) => new ApiError(410, "Expired", message, undefined, metadata);

const REASONS = {
	400: "BadRequest",
	401: "Unauthorized",
	403: "Forbidden",
	404: "NotFound",
	405: "MethodNotAllowed",
	409: "Conflict",
	410: "Expired",
	413: "RequestEntityTooLarge",
	415: "UnsupportedMediaType",
	422: "Invalid",
	429: "TooManyRequests",
	500: "InternalError",
	503: "ServiceUnavailable",
	504: "Timeout",
};

const DEFAULT_MESSAGES = {
	500: "Internal error occurred: injected fault",
	503: "the server is currently unable to handle the request",
	504: "the server was unable to return a response in the time allotted, but may still be processing the request",
};

/** A Status for an arbitrary code (fault injection). */
export function statusForCode(code, message) {
	return statusObject(code, REASONS[code], message ?? DEFAULT_MESSAGES[code] ?? `injected fault (HTTP ${code})`, {});
}

// ---------------------------------------------------------------------------
// field.Error (k8s.io/apimachinery/pkg/util/validation/field)

const TYPE_TEXT = {
	Invalid: "Invalid value",
	Required: "Required value",
	NotSupported: "Unsupported value",
	Duplicate: "Duplicate value",
	Forbidden: "Forbidden",
	TooLong: "Too long",
};

/** Go's %q / %v / %#v, approximately, for values quoted in messages. */
function goValue(v) {
	if (v === null || v === undefined) return "null";
	if (typeof v === "string") return JSON.stringify(v);
	if (typeof v === "number" || typeof v === "boolean") return String(v);
	if (typeof v === "object" && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string")) {
		const body = Object.keys(v)
			.sort()
			.map((k) => `${JSON.stringify(k)}:${JSON.stringify(v[k])}`)
			.join(", ");
		return `map[string]string{${body}}`;
	}
	return JSON.stringify(v);
}

export class FieldError {
	/**
	 * @param type    Invalid | Required | NotSupported | Duplicate | Forbidden
	 * @param field   kube field path, e.g. "spec.template.spec.containers[0].name"
	 * @param value   the offending value (Invalid, NotSupported, Duplicate)
	 * @param detail  extra text; for NotSupported the list of supported values
	 */
	constructor(type, field, value, detail = "") {
		this.type = type;
		this.field = field;
		this.value = value;
		this.detail = detail;
	}

	static invalid(field, value, detail) {
		return new FieldError("Invalid", field, value, detail);
	}

	static required(field, detail = "") {
		return new FieldError("Required", field, undefined, detail);
	}

	static notSupported(field, value, supported) {
		const detail = supported.length ? `supported values: ${supported.map((s) => JSON.stringify(s)).join(", ")}` : "";
		return new FieldError("NotSupported", field, value, detail);
	}

	/** ErrorBody(): the message without the field path, as in causes[].message. */
	body() {
		let s = TYPE_TEXT[this.type];
		// ErrorBody() leaves the value out of these.
		if (!["Required", "Forbidden", "TooLong"].includes(this.type)) s += `: ${goValue(this.value)}`;
		if (this.detail) s += `: ${this.detail}`;
		return s;
	}

	toString() {
		return `${this.field}: ${this.body()}`;
	}

	cause() {
		return { reason: `FieldValue${this.type}`, message: this.body(), field: this.field };
	}
}

/**
 * errors.NewInvalid: 422 with every cause listed, while the message
 * de-duplicates identical lines like ErrorList.ToAggregate() does.
 */
export function invalid(res, name, fieldErrors) {
	const lines = [...new Set(fieldErrors.map(String))];
	const agg = lines.length === 1 ? lines[0] : `[${lines.join(", ")}]`;
	return new ApiError(422, "Invalid", `${groupKind(res)} "${name}" is invalid: ${agg}`, {
		name,
		group: res.group || undefined,
		kind: res.kind,
		causes: fieldErrors.map((e) => e.cause()),
	});
}

/**
 * JSON of a stored object with kind/apiVersion in front, as single-object
 * responses and watch events carry them (list items do not).
 */
export function jsonWithKind(res, obj) {
	const body = JSON.stringify(obj);
	const head = `{"kind":"${res.kind}","apiVersion":"${apiVersionOf(res)}"`;
	return body === "{}" ? `${head}}` : `${head},${body.slice(1)}`;
}
