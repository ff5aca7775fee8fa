// Schema checks for request bodies, driven by the official Kubernetes OpenAPI
// schemas as shipped (compiled to ajv validators) by the kubernetes-models
// package.
//
// Two questions are asked of a body:
//   1. Does it match the schema's types, enums, formats and required fields?
//      The compiled validator answers that directly.
//   2. Which of its fields does the schema not know?  kube-apiserver drops
//      (or, with fieldValidation=Strict, rejects) those, but the validators
//      accept them silently.  The package ships no JSON schema documents, so
//      the property tree is *derived from the validators themselves* at
//      start-up: we feed a validator a Proxy that records every property it
//      reads (a generated validator reads exactly the properties its schema
//      declares), every object it enumerates (that is a map such as labels)
//      and every type it complains about (which tells us where arrays and
//      leaves are).  That way the tree can never drift from the schema used
//      for validation, and nothing is written out by hand.

import { Job } from "kubernetes-models/batch/v1/Job";
import { DeleteOptions } from "@kubernetes-models/apimachinery/apis/meta/v1/DeleteOptions";

// Node kinds of the derived property tree.
const OBJECT = "object"; // known properties in `props`
const ARRAY = "array"; // element schema in `items`
const MAP = "map"; // free keys (labels, annotations, resource lists)
const ANY = "any"; // free-form object (e.g. managedFields[].fieldsV1)
const LEAF = "leaf"; // scalar (string, integer, boolean, int-or-string...)

/**
 * Run a kubernetes-models class's validator on `data` without copying it
 * (`new Model(data)` would deep-copy the body on every request).
 * Returns the ajv error list, empty when valid.
 */
function makeValidator(ModelClass) {
	const validate = ModelClass.prototype.validate;
	return (data) => {
		try {
			validate.call(data);
			return [];
		} catch (err) {
			if (!Array.isArray(err.errors)) throw err;
			return err.errors;
		}
	};
}

function escapePointer(segment) {
	return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

/**
 * Derive the property tree of a validator by probing it with recording
 * proxies.  Every pointer starts out as an object; when the validator says
 * "must be array" at a pointer, the next round presents an array of one
 * element there, which reveals the element schema.  A handful of rounds
 * reaches a fixed point (4 for a Job).
 */
function deriveTree(validate, maxDepth = 40) {
	const arrays = new Set();
	for (let round = 0; round < 64; round++) {
		const reads = new Map(); // pointer -> Set of property names read
		const enumerated = new Set(); // pointers whose keys were enumerated
		const proxyAt = (ptr, depth) => {
			if (depth > maxDepth) return undefined; // guard against recursive schemas
			if (arrays.has(ptr)) return new Proxy([proxyAt(`${ptr}/0`, depth + 1)], {});
			return new Proxy(
				{},
				{
					get(_target, prop) {
						// Symbols come from coercion attempts (e.g. Symbol.toPrimitive), not from the schema.
						if (typeof prop === "symbol") return undefined;
						let seen = reads.get(ptr);
						if (!seen) reads.set(ptr, (seen = new Set()));
						seen.add(prop);
						return proxyAt(`${ptr}/${escapePointer(prop)}`, depth + 1);
					},
					ownKeys() {
						enumerated.add(ptr);
						return [];
					},
				},
			);
		};
		const typeErrors = new Map();
		let newArrays = 0;
		for (const err of validate(proxyAt("", 0))) {
			if (err.keyword !== "type") continue;
			typeErrors.set(err.instancePath, err.params.type);
			if (err.params.type === "array" && !arrays.has(err.instancePath)) {
				arrays.add(err.instancePath);
				newArrays++;
			}
		}
		if (newArrays === 0) return buildNode("", { reads, enumerated, typeErrors, arrays });
	}
	throw new Error("schema probe did not converge");
}

function buildNode(ptr, probe) {
	if (probe.arrays.has(ptr)) return { kind: ARRAY, items: buildNode(`${ptr}/0`, probe) };
	const expected = probe.typeErrors.get(ptr);
	if (expected !== undefined && expected !== "object") return { kind: LEAF };
	const props = probe.reads.get(ptr);
	if (props && props.size > 0) {
		const children = new Map();
		for (const name of props) children.set(name, buildNode(`${ptr}/${escapePointer(name)}`, probe));
		return { kind: OBJECT, props: children };
	}
	if (probe.enumerated.has(ptr)) return { kind: MAP };
	return { kind: ANY };
}

/**
 * Convert an ajv JSON pointer ("/spec/template/spec/containers/0/name") into
 * the field path notation kube-apiserver uses in its messages
 * ("spec.template.spec.containers[0].name").
 */
export function pointerToField(ptr) {
	let out = "";
	for (const raw of ptr.split("/").slice(1)) {
		const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
		if (/^\d+$/.test(seg)) out += `[${seg}]`;
		else out += out ? `.${seg}` : seg;
	}
	return out;
}

/**
 * Collect the fields of `value` that the tree does not know, as kube field
 * paths.  When `prune` is set the unknown fields are deleted in place (the
 * caller owns the freshly parsed body), which is what the API server does
 * in the Warn and Ignore modes.
 */
function collectUnknown(value, node, path, prune, out) {
	if (value === null || typeof value !== "object") return;
	if (node.kind === ARRAY) {
		if (!Array.isArray(value)) return;
		for (let i = 0; i < value.length; i++) collectUnknown(value[i], node.items, `${path}[${i}]`, prune, out);
		return;
	}
	if (node.kind !== OBJECT || Array.isArray(value)) return;
	for (const key of Object.keys(value)) {
		const child = node.props.get(key);
		const childPath = path ? `${path}.${key}` : key;
		if (child === undefined) {
			out.push(childPath);
			if (prune) delete value[key];
		} else if (child.kind !== LEAF) {
			collectUnknown(value[key], child, childPath, prune, out);
		}
	}
}

/** A compiled schema: validation plus unknown-field detection. */
export class Schema {
	constructor(ModelClass) {
		this.validate = makeValidator(ModelClass);
		this.tree = deriveTree(this.validate);
	}

	/** ajv errors for `body` (empty array when it conforms). */
	errors(body) {
		return this.validate(body);
	}

	/** Unknown field paths of `body`; deletes them from `body` when `prune`. */
	unknownFields(body, prune = false) {
		const out = [];
		collectUnknown(body, this.tree, "", prune, out);
		return out;
	}
}

// Compiled once at start-up; probing the Job schema takes a few tens of ms.
export const schemas = {
	Job: new Schema(Job),
	DeleteOptions: new Schema(DeleteOptions),
};
