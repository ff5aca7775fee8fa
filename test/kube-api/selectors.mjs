// Label and field selectors with the grammar and semantics of
// k8s.io/apimachinery/pkg/labels and pkg/fields, so that a client's query
// strings are checked the way kube-apiserver checks them.

import { labelKeyErrors, labelValueErrors } from "./names.mjs";

export class SelectorError extends Error {}

// ---------------------------------------------------------------------------
// Label selectors: "a=b,c!=d,e,!f,g in (h,i),j notin (k),l>3"

const SPECIAL = new Set([",", "=", "!", "(", ")", "<", ">"]);

/** Split a label selector into tokens (identifiers and operators). */
function tokenize(input) {
	const tokens = [];
	let i = 0;
	while (i < input.length) {
		const c = input[i];
		if (/\s/.test(c)) {
			i++;
		} else if (c === "=" && input[i + 1] === "=") {
			tokens.push({ op: "==" });
			i += 2;
		} else if (c === "!" && input[i + 1] === "=") {
			tokens.push({ op: "!=" });
			i += 2;
		} else if (SPECIAL.has(c)) {
			tokens.push({ op: c });
			i++;
		} else {
			let j = i;
			while (j < input.length && !SPECIAL.has(input[j]) && !/\s/.test(input[j])) j++;
			tokens.push({ id: input.slice(i, j) });
			i = j;
		}
	}
	return tokens;
}

function checkKey(key) {
	const errs = labelKeyErrors(key);
	if (errs.length) throw new SelectorError(`unable to parse requirement: key: Invalid value: ${JSON.stringify(key)}: ${errs.join("; ")}`);
}

function checkValue(key, value) {
	const errs = labelValueErrors(value);
	if (errs.length) {
		throw new SelectorError(`unable to parse requirement: values[0][${key}]: Invalid value: ${JSON.stringify(value)}: ${errs.join("; ")}`);
	}
}

/**
 * Parse a label selector string into a list of requirements
 * {key, op, values}; an empty string selects everything.
 * Throws SelectorError with a kube-like message on bad syntax.
 */
export function parseLabelSelector(input) {
	const tokens = tokenize(input ?? "");
	const reqs = [];
	let pos = 0;
	const peek = () => tokens[pos];
	const next = () => tokens[pos++];
	const expectId = (what) => {
		const t = next();
		if (!t || t.id === undefined) throw new SelectorError(`found '${t?.op ?? ""}', expected: ${what}`);
		return t.id;
	};
	while (pos < tokens.length) {
		let t = next();
		if (t.op === "!") {
			const key = expectId("identifier after '!'");
			checkKey(key);
			reqs.push({ key, op: "!" });
		} else if (t.id !== undefined) {
			const key = t.id;
			checkKey(key);
			const o = peek();
			if (!o || o.op === ",") {
				reqs.push({ key, op: "exists" });
			} else if (o.op === "=" || o.op === "==" || o.op === "!=") {
				next();
				// An empty value ("a=") is legal and means the empty string.
				const v = peek()?.id !== undefined ? next().id : "";
				checkValue(key, v);
				reqs.push({ key, op: o.op === "!=" ? "!=" : "=", values: [v] });
			} else if (o.op === "<" || o.op === ">") {
				next();
				const v = expectId("a number");
				if (!/^-?\d+$/.test(v)) throw new SelectorError(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
				reqs.push({ key, op: o.op, values: [Number(v)] });
			} else if (o.id === "in" || o.id === "notin") {
				next();
				if (next()?.op !== "(") throw new SelectorError(`found '${tokens[pos - 1]?.id ?? ""}', expected: '('`);
				const values = [];
				for (;;) {
					const v = peek();
					if (v?.op === ")") {
						next();
						break;
					}
					if (v?.id !== undefined) {
						next();
						checkValue(key, v.id);
						values.push(v.id);
					} else if (v?.op === ",") {
						next();
					} else {
						throw new SelectorError(`found '${v?.op ?? ""}', expected: ',', ')' or identifier`);
					}
				}
				if (values.length === 0) throw new SelectorError(`unable to parse requirement: for 'in', 'notin' operators, values set can't be empty`);
				reqs.push({ key, op: o.id, values });
			} else {
				throw new SelectorError(`found '${o.op ?? o.id}', expected: in, notin, =, ==, !=, gt, lt`);
			}
		} else {
			throw new SelectorError(`found '${t.op}', expected: !, identifier, or 'end of string'`);
		}
		t = peek();
		if (t && t.op !== ",") throw new SelectorError(`found '${t.op ?? t.id}', expected: ',' or 'end of string'`);
		if (t) next();
	}
	return reqs;
}

/** Does a labels object satisfy every requirement? */
export function matchLabels(reqs, labels) {
	for (const r of reqs) {
		const has = labels != null && Object.prototype.hasOwnProperty.call(labels, r.key);
		const v = has ? labels[r.key] : undefined;
		switch (r.op) {
			case "exists":
				if (!has) return false;
				break;
			case "!":
				if (has) return false;
				break;
			case "=":
				if (!has || v !== r.values[0]) return false;
				break;
			case "!=":
				if (has && v === r.values[0]) return false;
				break;
			case "in":
				if (!has || !r.values.includes(v)) return false;
				break;
			case "notin":
				if (has && r.values.includes(v)) return false;
				break;
			case "<":
			case ">": {
				if (!has || !/^-?\d+$/.test(v)) return false;
				const n = Number(v);
				if (r.op === "<" ? !(n < r.values[0]) : !(n > r.values[0])) return false;
				break;
			}
			default:
				return false;
		}
	}
	return true;
}

/**
 * Match a metav1.LabelSelector object ({matchLabels, matchExpressions}),
 * as used in Job.spec.selector.  A null selector matches nothing, an empty
 * one everything (metav1.LabelSelectorAsSelector).
 */
export function matchLabelSelectorObject(sel, labels) {
	if (sel == null) return false;
	const reqs = [];
	for (const [key, value] of Object.entries(sel.matchLabels ?? {})) reqs.push({ key, op: "=", values: [value] });
	for (const e of sel.matchExpressions ?? []) {
		const op = { In: "in", NotIn: "notin", Exists: "exists", DoesNotExist: "!" }[e.operator];
		if (!op) return false;
		reqs.push({ key: e.key, op, values: e.values ?? [] });
	}
	return matchLabels(reqs, labels);
}

// ---------------------------------------------------------------------------
// Field selectors: "metadata.name=x,status.phase!=Running"

/** Split on unescaped separators; "\," "\=" "\\" escape them (fields.EscapeValue). */
function splitEscaped(s, sep) {
	const parts = [];
	let cur = "";
	for (let i = 0; i < s.length; i++) {
		if (s[i] === "\\" && i + 1 < s.length) {
			cur += s[i] + s[i + 1];
			i++;
		} else if (s[i] === sep) {
			parts.push(cur);
			cur = "";
		} else cur += s[i];
	}
	parts.push(cur);
	return parts;
}

const unescape = (s) => s.replace(/\\(.)/g, "$1");

/**
 * Parse a field selector against the fields a resource supports
 * (`fieldGetters`: name -> (object) => string).  Unsupported fields are a
 * 400 on the real server ("field label not supported: ...").
 */
export function parseFieldSelector(input, fieldGetters) {
	const reqs = [];
	if (!input) return reqs;
	for (const part of splitEscaped(input, ",")) {
		if (part.trim() === "") continue;
		const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/s.exec(part);
		if (!m) throw new SelectorError(`invalid selector: '${input}'; can't understand '${part}'`);
		const field = m[1].trim();
		const get = fieldGetters[field];
		if (!get) throw new SelectorError(`field label not supported: ${field}`);
		reqs.push({ get, negate: m[2] === "!=", value: unescape(m[3]) });
	}
	return reqs;
}

export function matchFields(reqs, obj) {
	for (const r of reqs) {
		if ((r.get(obj) === r.value) === r.negate) return false;
	}
	return true;
}
