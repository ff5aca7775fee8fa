#!/usr/bin/env node
// Checks the Kubernetes manifests under deploy/.
//
//   node test/deploy/check-manifests.mjs [file.yaml ...]
//
// With no arguments it checks deploy/rbac.yaml and deploy/cloudnative-pg.yaml.
// The files are read with the small YAML reader below, which knows the plain
// subset the manifests are written in (block mappings and sequences, flow
// sequences of scalars, quoted and plain scalars, comments, `---`) and refuses
// everything else (anchors, aliases, tags, block and multi-line scalars, flow
// mappings, tabs, duplicate keys) instead of guessing. Plain scalars resolve as
// kubectl's YAML 1.1 reader does: `off`, `yes`, `500` are not strings. Then:
//   - ServiceAccount, Role, RoleBinding: validated against the official
//     Kubernetes schema (the kubernetes-models package, generated from the
//     Kubernetes OpenAPI; its validators accept unknown fields, so those are
//     looked for separately with the test API server's derived schema tree);
//   - every Role must grant exactly what the worker needs, nothing more or less:
//     batch/jobs: create get list watch delete deletecollection,
//     core pods: get list delete deletecollection;
//   - every RoleBinding must bind a Role of the same file and namespace to a
//     ServiceAccount the file defines, or to the one CloudNativePG runs a
//     Cluster of the file as (named after the Cluster);
//   - a CloudNativePG Cluster (no schema available here) gets consistency
//     checks only: jobsched preloaded, jobsched.database = the initdb database,
//     CREATE EXTENSION jobsched run there, parameters are strings, and a Role
//     bound to its ServiceAccount in the namespace its Jobs go to.
// Prints one line per document and a final "N passed, M failed"; exits 1 on any
// failure.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// kubernetes-models comes from the test API server's packages (`npm ci` in
// test/kube-api), and so does its schema-tree helper.
let ServiceAccount, Role, RoleBinding, Schema;
try {
	const models = "../kube-api/node_modules/kubernetes-models";
	({ ServiceAccount } = await import(`${models}/v1/ServiceAccount.mjs`));
	({ Role } = await import(`${models}/rbac.authorization.k8s.io/v1/Role.mjs`));
	({ RoleBinding } = await import(`${models}/rbac.authorization.k8s.io/v1/RoleBinding.mjs`));
	({ Schema } = await import("../kube-api/schema.mjs"));
	if (typeof Schema !== "function") throw new Error("test/kube-api/schema.mjs exports no Schema class");
} catch (err) {
	console.log(`FAIL cannot load the Kubernetes schema: ${err.message}`);
	console.log("     run `npm ci` in test/kube-api first");
	console.log("0 passed, 1 failed");
	process.exit(1);
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const defaultFiles = ["deploy/rbac.yaml", "deploy/cloudnative-pg.yaml"];

// What the worker needs, per "apiGroup/resource" ("" is the core group).
const REQUIRED = new Map([
	["batch/jobs", ["create", "get", "list", "watch", "delete", "deletecollection"]],
	["/pods", ["get", "list", "delete", "deletecollection"]],
]);

const RBAC_GROUP = "rbac.authorization.k8s.io";
const CNPG_GROUP_VERSION = "postgresql.cnpg.io/v1";

// Kinds with an official schema: apiVersion/kind -> model class.
const MODELS = new Map([
	["v1/ServiceAccount", ServiceAccount],
	[`${RBAC_GROUP}/v1/Role`, Role],
	[`${RBAC_GROUP}/v1/RoleBinding`, RoleBinding],
]);
const schemas = new Map();

function schemaFor(key) {
	if (!schemas.has(key)) schemas.set(key, new Schema(MODELS.get(key)));
	return schemas.get(key);
}

const display = (file) => path.relative(process.cwd(), file) || file;
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const describe = (doc) =>
	`${doc?.kind ?? "(no kind)"} ${doc?.metadata?.namespace ?? "(no namespace)"}/${doc?.metadata?.name ?? "(no name)"}`;

// ---------------------------------------------------------------------------
// YAML subset reader

class YamlError extends Error {}

const fail = (no, msg) => {
	throw new YamlError(`line ${no}: ${msg}`);
};

/** Drop a trailing comment: a `#` at the start or after a blank, outside quotes. */
function stripComment(text, no) {
	let quote = null;
	for (let i = 0; i < text.length; i++) {
		const c = text[i];
		if (quote) {
			if (quote === '"' && c === "\\") i++;
			else if (c === quote) {
				if (quote === "'" && text[i + 1] === "'") i++;
				else quote = null;
			}
			continue;
		}
		// A quote opens a quoted scalar only where a scalar may start.
		if (c === '"' || c === "'") {
			const before = text.slice(0, i).trimEnd();
			if (before === "" || /[\[,:-]$/.test(before)) {
				quote = c;
				continue;
			}
		}
		if (c === "#" && (i === 0 || /\s/.test(text[i - 1]))) return text.slice(0, i).trimEnd();
	}
	if (quote) fail(no, "unterminated quoted scalar");
	return text.trimEnd();
}

/** Parse one quoted scalar at the start of `s`; returns [value, rest]. */
function readQuoted(s, no) {
	const q = s[0];
	let out = "";
	for (let i = 1; i < s.length; i++) {
		const c = s[i];
		if (q === "'") {
			if (c === "'") {
				if (s[i + 1] === "'") {
					out += "'";
					i++;
					continue;
				}
				return [out, s.slice(i + 1)];
			}
			out += c;
			continue;
		}
		if (c === '"') return [out, s.slice(i + 1)];
		if (c !== "\\") {
			out += c;
			continue;
		}
		const e = s[++i];
		const simple = { '"': '"', "\\": "\\", "/": "/", n: "\n", t: "\t", r: "\r", "0": "\0" };
		if (e in simple) out += simple[e];
		else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) {
			out += String.fromCharCode(parseInt(s.slice(i + 1, i + 5), 16));
			i += 4;
		} else fail(no, `unsupported escape \\${e ?? ""}`);
	}
	fail(no, "unterminated quoted scalar");
}

/** A plain scalar, resolved the YAML 1.1 way (as kubectl reads manifests). */
function plainScalar(s, no) {
	if (/^[&*!|>%@`{]/.test(s)) fail(no, `unsupported YAML (${s[0]}): keep to plain block style`);
	if (/:\s/.test(s) || s.endsWith(":")) fail(no, `a plain scalar may not contain ": " (quote it): ${s}`);
	if (/^(~|null|Null|NULL)$/.test(s)) return null;
	if (/^(y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(s)) return true;
	if (/^(n|N|no|No|NO|false|False|FALSE|off|Off|OFF)$/.test(s)) return false;
	if (/^[-+]?0x[0-9a-fA-F_]+$/.test(s)) return parseInt(s.replace(/_/g, ""), 16);
	if (/^[-+]?0[0-7_]+$/.test(s)) return parseInt(s.replace(/_/g, ""), 8);
	if (/^[-+]?(0|[1-9][0-9_]*)$/.test(s)) return Number(s.replace(/_/g, ""));
	if (/^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$/.test(s) && /[0-9]/.test(s)) return Number(s.replace(/_/g, ""));
	if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s.startsWith("-") ? -Infinity : Infinity;
	if (/^\.(nan|NaN|NAN)$/.test(s)) return NaN;
	return s;
}

/** A value on the same line as its key or dash: scalar or flow sequence of scalars. */
function inlineValue(s, no) {
	if (s.startsWith("[")) {
		if (!s.endsWith("]")) fail(no, "a flow sequence must end on its own line");
		const items = [];
		let rest = s.slice(1, -1).trim();
		while (rest !== "") {
			let item;
			if (rest[0] === '"' || rest[0] === "'") {
				[item, rest] = readQuoted(rest, no);
				rest = rest.trim();
			} else {
				const comma = rest.indexOf(",");
				const text = (comma < 0 ? rest : rest.slice(0, comma)).trim();
				if (/^[\[{]/.test(text)) fail(no, "nested flow collections are not supported");
				item = plainScalar(text, no);
				rest = comma < 0 ? "" : rest.slice(comma);
			}
			items.push(item);
			if (rest === "") break;
			if (rest[0] !== ",") fail(no, `expected "," in flow sequence, found ${rest}`);
			rest = rest.slice(1).trim();
			if (rest === "") fail(no, "trailing comma in flow sequence");
		}
		return items;
	}
	if (s === "{}") return {};
	if (s[0] === '"' || s[0] === "'") {
		const [value, rest] = readQuoted(s, no);
		if (rest.trim() !== "") fail(no, `unexpected text after quoted scalar: ${rest.trim()}`);
		return value;
	}
	return plainScalar(s, no);
}

/** Split "key: rest" (plain or quoted key); null when the text is not a mapping entry. */
function splitKey(text, no) {
	if (text[0] === '"' || text[0] === "'") {
		const [key, rest] = readQuoted(text, no);
		const m = /^\s*:(\s+|$)/.exec(rest);
		return m ? { key, rest: rest.slice(m[0].length).trim() } : null;
	}
	const m = /:(\s|$)/.exec(text);
	if (!m || text.startsWith("[")) return null;
	const key = text.slice(0, m.index).trim();
	if (key === "" || /^[&*!|>%@`{?]/.test(key)) fail(no, `unsupported mapping key: ${key}`);
	// YAML 1.1 would make a key like `on`, `n` or `1` a boolean or number: refuse.
	if (typeof plainScalar(key, no) !== "string") fail(no, `mapping key ${key} is not a string in YAML 1.1 (quote it)`);
	return { key, rest: text.slice(m.index + 1).trim() };
}

const isItem = (text) => text === "-" || text.startsWith("- ");

/** Parse the lines ({no, indent, text}) of one document. */
function parseLines(lines) {
	let pos = 0;

	function node(indent) {
		return isItem(lines[pos].text) ? sequence(indent) : mapping(indent);
	}

	function sequence(indent) {
		const out = [];
		while (pos < lines.length && lines[pos].indent === indent && isItem(lines[pos].text)) {
			const { no, text } = lines[pos];
			const rest = text.slice(1).trimStart();
			if (rest === "") {
				pos++;
				out.push(pos < lines.length && lines[pos].indent > indent ? node(lines[pos].indent) : null);
			} else if (isItem(rest)) {
				fail(no, "nested sequence on one line is not supported");
			} else if (splitKey(rest, no)) {
				// "- key: value": a mapping whose keys line up with "key"
				lines[pos] = { no, indent: indent + (text.length - rest.length), text: rest };
				out.push(mapping(lines[pos].indent));
			} else {
				out.push(inlineValue(rest, no));
				pos++;
			}
			if (pos < lines.length && lines[pos].indent > indent) fail(lines[pos].no, "unexpected indentation");
		}
		return out;
	}

	function mapping(indent) {
		const out = {};
		while (pos < lines.length && lines[pos].indent === indent && !isItem(lines[pos].text)) {
			const { no, text } = lines[pos];
			const kv = splitKey(text, no);
			if (!kv) fail(no, `expected "key: value", found ${text}`);
			if (Object.prototype.hasOwnProperty.call(out, kv.key)) fail(no, `duplicate key ${kv.key}`);
			if (kv.key === "__proto__") fail(no, "key __proto__ is not allowed");
			pos++;
			let value = null;
			if (kv.rest !== "") value = inlineValue(kv.rest, no);
			else if (pos < lines.length && lines[pos].indent > indent) value = node(lines[pos].indent);
			else if (pos < lines.length && lines[pos].indent === indent && isItem(lines[pos].text)) value = sequence(indent);
			out[kv.key] = value;
			if (pos < lines.length && lines[pos].indent > indent) fail(lines[pos].no, "unexpected indentation");
		}
		return out;
	}

	if (lines.length === 0) return undefined;
	const value = node(lines[0].indent);
	if (pos < lines.length) fail(lines[pos].no, "unexpected indentation or structure");
	return value;
}

/** Every non-empty document of a YAML text: [{line, doc}]. Throws YamlError. */
function parseYamlSubset(text) {
	const docs = [];
	let current = [];
	const flush = () => {
		const doc = parseLines(current);
		if (doc !== undefined) docs.push({ line: current[0].no, doc });
		current = [];
	};
	text.replace(/^\uFEFF/, "")
		.split("\n")
		.forEach((raw, i) => {
			const no = i + 1;
			const line = raw.replace(/\r$/, "");
			if (/^---(\s|$)/.test(line)) {
				if (stripComment(line.slice(3), no) !== "") fail(no, "content after --- is not supported");
				flush();
				return;
			}
			if (/^(\.\.\.|%)/.test(line)) fail(no, "directives and document end markers are not supported");
			const lead = /^[ \t]*/.exec(line)[0];
			const text = stripComment(line.slice(lead.length), no);
			if (text === "") return;
			if (lead.includes("\t")) fail(no, "tabs in indentation");
			current.push({ no, indent: lead.length, text });
		});
	flush();
	return docs;
}

// ---------------------------------------------------------------------------

/** Parse every document of a file; returns [{line, doc}] or throws. */
function parseFile(file) {
	return parseYamlSubset(readFileSync(file, "utf8"));
}

/** Schema errors and unknown fields of a document that has an official schema. */
function schemaProblems(key, doc) {
	const problems = [];
	try {
		new (MODELS.get(key))(doc).validate();
	} catch (err) {
		if (!Array.isArray(err.errors)) throw err;
		for (const e of err.errors) problems.push(`schema: ${e.instancePath || "(root)"} ${e.message}`);
	}
	for (const field of schemaFor(key).unknownFields(doc)) problems.push(`unknown field ${field}`);
	return problems;
}

/** The Role must grant exactly REQUIRED: no wildcard, no extra verb, none missing. */
function roleProblems(doc) {
	const problems = [];
	const granted = new Set();
	const list = (v) => (Array.isArray(v) ? v : []);
	if (!Array.isArray(doc.rules)) problems.push("rules is not a list");
	list(doc.rules).forEach((rule, i) => {
		const where = `rules[${i}]`;
		if (!isObject(rule)) {
			problems.push(`${where} is not a mapping`);
			return;
		}
		for (const key of Object.keys(rule)) {
			if (!["apiGroups", "resources", "verbs"].includes(key))
				problems.push(`${where} has ${key}; jobsched's rules name API groups, resources and verbs only`);
		}
		for (const key of ["apiGroups", "resources", "verbs"]) {
			if (!Array.isArray(rule[key]) || rule[key].length === 0) problems.push(`${where}.${key} is not a non-empty list`);
			else if (rule[key].includes("*")) problems.push(`${where}.${key} has the wildcard "*"`);
		}
		for (const group of list(rule.apiGroups))
			for (const resource of list(rule.resources))
				for (const verb of list(rule.verbs)) granted.add(`${group}/${resource} ${verb}`);
	});
	const wanted = new Set();
	for (const [gr, verbs] of REQUIRED) for (const verb of verbs) wanted.add(`${gr} ${verb}`);
	const show = (t) => {
		const [gr, verb] = t.split(" ");
		const [group, resource] = gr.split("/");
		return `${verb} on ${group || "core"}/${resource}`;
	};
	for (const t of granted) if (!wanted.has(t)) problems.push(`grants ${show(t)}, which jobsched does not need`);
	for (const t of wanted) if (!granted.has(t)) problems.push(`does not grant ${show(t)}, which jobsched needs`);
	return problems;
}

/** The ServiceAccount CloudNativePG runs a Cluster's instance pods as. */
const clusterServiceAccount = (cluster) => ({ name: cluster.metadata?.name, namespace: cluster.metadata?.namespace });

function roleBindingProblems(doc, fileDocs) {
	const problems = [];
	const ns = doc.metadata?.namespace;
	const ref = doc.roleRef ?? {};
	if (ref.apiGroup !== RBAC_GROUP || ref.kind !== "Role")
		problems.push(`roleRef must be a Role of ${RBAC_GROUP}, not ${ref.kind} of ${ref.apiGroup}`);
	else if (!fileDocs.some((d) => d.kind === "Role" && d.metadata?.name === ref.name && d.metadata?.namespace === ns))
		problems.push(`roleRef names Role ${ns}/${ref.name}, which this file does not define`);
	const subjects = doc.subjects ?? [];
	if (subjects.length !== 1) problems.push(`has ${subjects.length} subjects; expected exactly one ServiceAccount`);
	for (const s of subjects) {
		if (s.kind !== "ServiceAccount") {
			problems.push(`subject ${s.kind} ${s.name} is not a ServiceAccount`);
			continue;
		}
		if (!s.namespace) {
			problems.push(`subject ServiceAccount ${s.name} has no namespace`);
			continue;
		}
		const defined = fileDocs.some(
			(d) => d.kind === "ServiceAccount" && d.metadata?.name === s.name && d.metadata?.namespace === s.namespace,
		);
		const cnpg = fileDocs.some((d) => {
			if (d.kind !== "Cluster" || d.apiVersion !== CNPG_GROUP_VERSION) return false;
			const sa = clusterServiceAccount(d);
			return sa.name === s.name && sa.namespace === s.namespace;
		});
		if (!defined && !cnpg)
			problems.push(
				`subject ServiceAccount ${s.namespace}/${s.name} is neither defined in this file ` +
					`nor the ServiceAccount of a CloudNativePG Cluster in it (named after the Cluster)`,
			);
	}
	return problems;
}

function clusterProblems(doc, fileDocs) {
	const problems = [];
	const spec = doc.spec ?? {};
	const pg = spec.postgresql ?? {};
	const params = pg.parameters ?? {};
	const tag = (spec.imageName ?? "").split("/").pop().split(":")[1] ?? "";
	if (typeof spec.imageName !== "string" || !/^15(\D|$)/.test(tag))
		problems.push(`spec.imageName must be the jobsched image with a tag starting with the major version 15`);
	if (!(pg.shared_preload_libraries ?? []).includes("jobsched"))
		problems.push("spec.postgresql.shared_preload_libraries does not include jobsched");
	if (!isObject(params)) problems.push("spec.postgresql.parameters is not a map");
	for (const [k, v] of Object.entries(isObject(params) ? params : {}))
		if (typeof v !== "string") problems.push(`spec.postgresql.parameters.${k} must be a string (quote it), not ${typeof v}`);
	const initdb = spec.bootstrap?.initdb ?? {};
	const database = initdb.database ?? "app";
	if (params["jobsched.database"] !== database)
		problems.push(`jobsched.database is ${JSON.stringify(params["jobsched.database"])}, but bootstrap.initdb.database is "${database}"`);
	if (!(initdb.postInitApplicationSQL ?? []).some((q) => /^\s*CREATE\s+EXTENSION\s+(IF\s+NOT\s+EXISTS\s+)?jobsched\b/i.test(q)))
		problems.push("bootstrap.initdb.postInitApplicationSQL does not CREATE EXTENSION jobsched");

	// The worker needs the Role, bound to the Cluster's ServiceAccount, in the
	// namespace its Jobs go to.
	const sa = clusterServiceAccount(doc);
	const jobsNamespace = params["jobsched.namespace"] || doc.metadata?.namespace;
	const bound = fileDocs.some(
		(d) =>
			d.kind === "RoleBinding" &&
			d.metadata?.namespace === jobsNamespace &&
			(d.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === sa.name && s.namespace === sa.namespace) &&
			fileDocs.some((r) => r.kind === "Role" && r.metadata?.name === d.roleRef?.name && r.metadata?.namespace === jobsNamespace),
	);
	if (!bound)
		problems.push(
			`no RoleBinding in namespace ${jobsNamespace} (where its Jobs go) binds a Role of this file ` +
				`to ServiceAccount ${sa.namespace}/${sa.name}, the one CloudNativePG runs the Cluster as`,
		);
	return problems;
}

function checkDocument(doc, fileDocs) {
	if (!isObject(doc)) return ["not a mapping"];
	const problems = [];
	if (!doc.metadata?.name) problems.push("metadata.name is missing");
	// Every object here is namespaced; an explicit namespace keeps `kubectl
	// apply` from putting it wherever the current context points.
	if (!doc.metadata?.namespace) problems.push("metadata.namespace is missing");
	const key = `${doc.apiVersion}/${doc.kind}`;
	if (MODELS.has(key)) {
		problems.push(...schemaProblems(key, doc));
		if (doc.kind === "Role") problems.push(...roleProblems(doc));
		if (doc.kind === "RoleBinding") problems.push(...roleBindingProblems(doc, fileDocs));
	} else if (key === `${CNPG_GROUP_VERSION}/Cluster`) {
		problems.push(...clusterProblems(doc, fileDocs));
	} else {
		problems.push(`unexpected ${key}: deploy/ holds ServiceAccount, Role, RoleBinding and a CloudNativePG Cluster only`);
	}
	return problems;
}

const files = (process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : defaultFiles.map((f) => path.join(repoRoot, f)));
let passed = 0;
let failed = 0;
for (const file of files) {
	let entries;
	try {
		entries = parseFile(file);
	} catch (err) {
		console.log(`FAIL ${display(file)}: ${err.message}`);
		failed++;
		continue;
	}
	if (entries.length === 0) {
		console.log(`FAIL ${display(file)}: no documents`);
		failed++;
		continue;
	}
	const fileDocs = entries.map((e) => e.doc);
	for (const { line, doc } of entries) {
		const label = `${display(file)}:${line} ${describe(doc)}`;
		const problems = checkDocument(doc, fileDocs);
		if (problems.length === 0) {
			const note = doc.kind === "Cluster" ? " (consistency checks; no schema for CloudNativePG here)" : "";
			console.log(`ok   ${label}${note}`);
			passed++;
		} else {
			console.log(`FAIL ${label}`);
			for (const p of problems) console.log(`       ${p}`);
			failed++;
		}
	}
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
