// Name and label syntax checks with the exact wording of
// k8s.io/apimachinery/pkg/util/validation, so 422 messages read like the
// real server's.

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE = `(${QUALIFIED_NAME})?`;

const dns1123LabelRe = new RegExp(`^${DNS1123_LABEL}$`);
const dns1123SubdomainRe = new RegExp(`^${DNS1123_SUBDOMAIN}$`);
const qualifiedNameRe = new RegExp(`^${QUALIFIED_NAME}$`);
const labelValueRe = new RegExp(`^${LABEL_VALUE}$`);

const tooLong = (n) => `must be no more than ${n} characters`;

function regexError(msg, fmt, examples) {
	const ex = examples.map((e) => `'${e}'`).join(",  or ");
	return `${msg} (e.g. ${ex}, regex used for validation is '${fmt}')`;
}

/** IsDNS1123Label: Pod/container names and (recommended) Job names. */
export function dns1123LabelErrors(value) {
	const errs = [];
	if (value.length > 63) errs.push(tooLong(63));
	if (!dns1123LabelRe.test(value)) {
		errs.push(
			regexError(
				"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
				DNS1123_LABEL,
				["my-name", "123-abc"],
			),
		);
	}
	return errs;
}

/** IsDNS1123Subdomain: object names (Jobs are validated like RCs). */
export function dns1123SubdomainErrors(value) {
	const errs = [];
	if (value.length > 253) errs.push(tooLong(253));
	if (!dns1123SubdomainRe.test(value)) {
		errs.push(
			regexError(
				"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
				DNS1123_SUBDOMAIN,
				["example.com"],
			),
		);
	}
	return errs;
}

/** IsQualifiedName: label and annotation keys, "[prefix/]name". */
export function labelKeyErrors(key) {
	const errs = [];
	const parts = key.split("/");
	let name;
	if (parts.length === 1) {
		name = parts[0];
	} else if (parts.length === 2) {
		const [prefix] = parts;
		name = parts[1];
		if (prefix.length === 0) errs.push("prefix part must be non-empty");
		else for (const e of dns1123SubdomainErrors(prefix)) errs.push(`prefix part ${e}`);
	} else {
		return [
			regexError(
				"a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
				QUALIFIED_NAME,
				["MyName", "my.name", "123-abc"],
			) + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
		];
	}
	if (name.length === 0) errs.push("name part must be non-empty");
	else if (name.length > 63) errs.push(`name part ${tooLong(63)}`);
	if (name.length > 0 && !qualifiedNameRe.test(name)) {
		errs.push(
			"name part " +
				regexError(
					"must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
					QUALIFIED_NAME,
					["MyName", "my.name", "123-abc"],
				),
		);
	}
	return errs;
}

/** IsValidLabelValue. */
export function labelValueErrors(value) {
	const errs = [];
	if (value.length > 63) errs.push(tooLong(63));
	if (!labelValueRe.test(value)) {
		errs.push(
			regexError(
				"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
				LABEL_VALUE,
				["MyValue", "my_value", "12345"],
			),
		);
	}
	return errs;
}

// utilrand.String's alphabet: no vowels (no accidental words) and no
// confusable characters.  Used for generateName and pod name suffixes.
const ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789";

export function randomSuffix(n = 5) {
	let s = "";
	for (let i = 0; i < n; i++) s += ALPHANUMS[Math.floor(Math.random() * ALPHANUMS.length)];
	return s;
}
