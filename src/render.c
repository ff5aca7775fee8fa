/*-------------------------------------------------------------------------
 *
 * render.c
 *	  Render a job type's template into the batch/v1 Job manifest for one
 *	  job.
 *
 * The template is a full Job manifest.  Inside any JSON string value of
 * it, at any depth, these placeholders are replaced:
 *
 *		{{params.KEY}}	the top-level member KEY of the job's params; KEY is
 *						everything between "params." and "}}", trimmed, and may
 *						contain dots (it is never a path)
 *		{{job.id}}		the job's id
 *		{{job.type}}	the job's type
 *		{{job.name}}	the Job's metadata.name
 *
 * Whitespace is allowed inside the braces ("{{ params.x }}").  A string that
 * is exactly one placeholder, with nothing around it, is replaced by the
 * value with its own JSON type (so "args": "{{params.args}}" injects a list,
 * and "{{job.id}}" is a number).  A placeholder inside a longer string
 * inserts the value as text: strings raw, everything else as its compact
 * JSON text.  Object keys are never substituted.
 *
 * Choices the contract leaves open, made here on purpose:
 *
 * - We work on the parsed cJSON tree and never paste text, so no param can
 *	 change the manifest's structure; and we never look at inserted text
 *	 again, so a param whose value contains "{{params.other}}" is inserted
 *	 literally (no recursive substitution).
 * - A "{{" with no "}}" after it is literal text, not an error: shell
 *	 snippets in args may legitimately contain "{{", and such a string can
 *	 never be mistaken for a placeholder.  A terminated "{{...}}" that is not
 *	 one of the forms above is an error (most likely a typo), so there is no
 *	 way to write a literal "{{x}}"; the contract does not ask for one.
 * - Numbers keep the exact text they are written with.  cJSON keeps numbers
 *	 as doubles and would print 12345678901234567890 as
 *	 1.2345678901234567e+19, which Kubernetes rejects for an int64 field;
 *	 see render_keep_numbers().
 * - Messages name placeholders, JSON paths and param names, all of which come
 *	 from the template; they never quote a param's value, which may be
 *	 secret.
 *
 * Both inputs are jsonb's text output (the callers select template::text
 * and params::text), and the code relies on what that guarantees: no
 * duplicate keys; an object's keys in jsonb's order (shorter first, then
 * bytewise); every number written out in full as -?digits[.digits], never
 * with an exponent.  The one thing jsonb accepts and cJSON refuses is
 * nesting deeper than CJSON_NESTING_LIMIT, which gets its own message.
 *
 * Memory: in a backend (jobsched.render()) cJSON allocates with malloc; in
 * the worker, in the current memory context (kobject.c).  Either way every
 * cJSON pointer we own lives in RenderState and is freed in a PG_FINALLY
 * block, so neither an error return nor an ERROR thrown by palloc (or by
 * check_stack_depth) in the middle leaks it.  A new cJSON node is linked into a tree we own before anything
 * else can throw.
 *
 * Cost: a string without "{{" is checked with one strstr() and not copied.
 * Params are looked up by binary search, so rendering is close to linear in
 * the size of the template plus the size of what it inserts.
 *
 * IDENTIFICATION
 *	  src/render.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cJSON.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "compat.h"
#include "jobsched.h"
#include "render.h"

/* at most this many bytes of template text are quoted in a message */
#define RENDER_QUOTE_MAX	128

/* an integer with at most this many digits prints the same from a double */
#define RENDER_EXACT_DIGITS 15

/* the characters of a member name a path spells without quotes */
#define RENDER_NAME_CHARS \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

/*
 * Where we are in the template, kept on the C stack while walking it, so a
 * path is only spelled out when there is an error to report.
 */
typedef struct RenderPath
{
	const struct RenderPath *up;
	const char *key;			/* member name; NULL for an array element */
	int			index;			/* position in the array, if key is NULL */
} RenderPath;

/* what a placeholder stands for */
typedef struct RenderValue
{
	const cJSON *param;			/* a param's value; NULL for a job field */
	const char *text;			/* the job field's text */
	bool		is_number;		/* the job field is a number ({{job.id}}) */
} RenderValue;

typedef struct RenderState
{
	const JobschedRenderInput *in;

	/* cJSON's memory; freed in jobsched_render_job's PG_FINALLY */
	cJSON	   *template;
	cJSON	   *params;
	char	   *printed;		/* printed text not yet copied and freed */

	/* palloc'd scratch */
	int			nparams;		/* -1 until the params are first used */
	cJSON	  **index;			/* the params, in key order */
	StringInfoData buf;			/* builds substituted strings; data is NULL
								 * until first used */
	char		job_id[MAXINT8LEN + 1];

	/* outcome */
	char	   *result;
	char	   *error;
} RenderState;

static void render_out_of_memory(void) pg_attribute_noreturn();


/* ---- small helpers ---- */

static void
render_out_of_memory(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("cJSON could not allocate memory while rendering a job manifest.")));
}

/* The JSON type of a node, as a message would say it. */
static const char *
render_type_name(const cJSON *item)
{
	if (cJSON_IsBool(item))
		return "a boolean";
	if (cJSON_IsNull(item))
		return "null";
	if (cJSON_IsNumber(item) || cJSON_IsRaw(item))
		return "a number";
	if (cJSON_IsString(item))
		return "a string";
	return cJSON_IsArray(item) ? "an array" : "an object";
}

/* JSON whitespace plus the other ASCII spaces someone might type */
static bool
render_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		c == '\v';
}

/*
 * render_quote
 *		Quote template text for a message as a JSON string (so the message
 *		stays on one line), cut to RENDER_QUOTE_MAX bytes on a character
 *		boundary, with "..." inside the quotes if cut.
 */
static char *
render_quote(const char *s, size_t len)
{
	StringInfoData out;
	size_t		keep = len;

	if (len > RENDER_QUOTE_MAX)
		keep = pg_mbcliplen(s, (int) Min(len, (size_t) PG_INT32_MAX),
							RENDER_QUOTE_MAX);
	initStringInfo(&out);
	escape_json(&out, pnstrdup(s, keep));
	if (keep < len)
	{
		out.data[--out.len] = '\0';	/* reopen the quotes */
		appendStringInfoString(&out, "...\"");
	}
	return out.data;
}

/*
 * render_append_path
 *		Spell out a template path, such as
 *		spec.template.spec.containers[0].args[1].
 *
 * Members whose names are not simple identifiers are written ["like.this"],
 * so label keys stay unambiguous.
 */
static void
render_append_path(StringInfo out, const RenderPath *path)
{
	const char *key = path->key;

	check_stack_depth();
	if (path->up != NULL)
		render_append_path(out, path->up);

	if (key == NULL)
		appendStringInfo(out, "[%d]", path->index);
	else if (key[0] != '\0' && !(key[0] >= '0' && key[0] <= '9') &&
			 key[strspn(key, RENDER_NAME_CHARS)] == '\0')
		appendStringInfo(out, "%s%s", path->up != NULL ? "." : "", key);
	else
		appendStringInfo(out, "[%s]", render_quote(key, strlen(key)));
}

/*
 * render_append_json
 *		Append the compact JSON text of "node" to "out".
 *
 * cJSON prints into memory of its own; it is parked in st->printed while it
 * is copied into the palloc'd buffer, which may throw.
 */
static void
render_append_json(RenderState *st, StringInfo out, const cJSON *node)
{
	st->printed = cJSON_PrintUnformatted(node);
	if (st->printed == NULL)
		render_out_of_memory();
	appendStringInfoString(out, st->printed);
	cJSON_free(st->printed);
	st->printed = NULL;
}

/* Skip the JSON string that starts at "p"; stops at the end of the text. */
static const char *
render_skip_string(const char *p)
{
	for (p++; *p != '"' && *p != '\0'; p++)
	{
		if (*p == '\\' && p[1] != '\0')
			p++;
	}
	return *p == '"' ? p + 1 : p;
}


/* ---- parsing ---- */

/*
 * render_too_deep
 *		Does JSON text nest arrays and objects deeper than cJSON accepts?
 *
 * Only called once parsing has failed, to explain why.
 */
static bool
render_too_deep(const char *p)
{
	int			depth = 0;

	while (*p != '\0')
	{
		if (*p == '"')
		{
			p = render_skip_string(p);
			continue;
		}
		if ((*p == '[' || *p == '{') && ++depth > CJSON_NESTING_LIMIT)
			return true;
		if (*p == ']' || *p == '}')
			depth--;
		p++;
	}
	return false;
}

/*
 * render_parse
 *		Parse text that must hold one JSON object.
 *
 * On failure sets st->error, naming the input as "what", and returns NULL.
 * jsonb's text fails only by nesting too deep, by running out of memory
 * (which cJSON reports as a syntax error) or, with a cJSON that lacks the
 * fix for CVE-2023-26819, by a number of more than 63 characters; the byte
 * offset is reported, never the text around it (params may be secret).
 * The object check is what the tables' constraints already ensure.
 */
static cJSON *
render_parse(RenderState *st, const char *text, const char *what)
{
	const char *end = text;
	cJSON	   *json = cJSON_ParseWithOpts(text, &end, true);
	const char *type;

	if (json == NULL)
	{
		if (render_too_deep(text))
			st->error = psprintf("%s is nested more than %d levels deep",
								 what, CJSON_NESTING_LIMIT);
		else
			st->error = psprintf("%s is not valid JSON (error near byte %zu)",
								 what, (size_t) (end - text));
		return NULL;
	}
	if (cJSON_IsObject(json))
		return json;

	/* no palloc while we hold json but not st */
	type = render_type_name(json);
	cJSON_Delete(json);
	st->error = psprintf("%s must be a JSON object, not %s", what, type);
	return NULL;
}

/*
 * render_check_member
 *		If the template has top-level member "key", it must be the string
 *		"expected".  The constraints on jobsched.job_types let only null
 *		through.
 */
static bool
render_check_member(RenderState *st, const char *key, const char *expected)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(st->template, key);

	if (item == NULL ||
		(cJSON_IsString(item) && strcmp(item->valuestring, expected) == 0))
		return true;
	if (cJSON_IsString(item))
		st->error = psprintf("template \"%s\" must be \"%s\", not %s",
							 key, expected,
							 render_quote(item->valuestring,
										  strlen(item->valuestring)));
	else
		st->error = psprintf("template \"%s\" must be the string \"%s\", not %s",
							 key, expected, render_type_name(item));
	return false;
}

/* Match one number node with the next number token of the text. */
static void
render_keep_number(cJSON *item, const char **text)
{
	const char *p = *text;
	const char *start;
	size_t		len;
	char	   *copy;

	/* outside strings, jsonb's text has a '-' or a digit only in numbers */
	while (*p != '\0' && *p != '-' && !(*p >= '0' && *p <= '9'))
		p = (*p == '"') ? render_skip_string(p) : p + 1;
	start = p;
	p += strspn(p, "-0123456789.");
	*text = p;
	len = p - start;

	if (len - (*start == '-') <= RENDER_EXACT_DIGITS &&
		memchr(start, '.', len) == NULL)
		return;

	copy = cJSON_malloc(len + 1);
	if (copy == NULL)
		render_out_of_memory();
	memcpy(copy, start, len);
	copy[len] = '\0';
	item->valuestring = copy;
	item->type = (item->type & ~0xFF) | cJSON_Raw;
}

/*
 * render_keep_numbers
 *		Make the numbers under "node" print exactly as "*text", the text the
 *		tree was parsed from, spells them.
 *
 * cJSON keeps members in document order, so walking the tree alongside the
 * text finds each number's token.  Integers of up to 15 digits, by far the
 * most common, print identically from the double and are left alone, so
 * they cost no allocation; any other number becomes a cJSON_Raw node
 * holding its token, which cJSON_PrintUnformatted() emits verbatim.
 * Everything else that reads numbers here treats cJSON_Raw as a number.
 */
static void
render_keep_numbers(cJSON *node, const char **text)
{
	cJSON	   *item;

	check_stack_depth();

	for (item = node->child; item != NULL; item = item->next)
	{
		if (cJSON_IsNumber(item))
			render_keep_number(item, text);
		else if (item->child != NULL)
			render_keep_numbers(item, text);
	}
}


/* ---- params ---- */

/* jsonb's order of keys: shorter first, then bytewise */
static int
render_key_cmp(const char *a, const char *b, size_t blen)
{
	size_t		alen = strlen(a);

	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, blen);
}

/*
 * render_prepare_params
 *		Make the params' numbers print as written and list the params for
 *		binary search, which jsonb's text already has them in order for.
 *
 * Done on first use: params are parsed eagerly to validate them, but many
 * templates use none.
 */
static void
render_prepare_params(RenderState *st)
{
	const char *text = st->in->params_json;
	cJSON	   *item;
	int			n = 0;

	render_keep_numbers(st->params, &text);

	for (item = st->params->child; item != NULL; item = item->next)
		n++;
	st->index = palloc(sizeof(cJSON *) * Max(n, 1));
	st->nparams = 0;
	for (item = st->params->child; item != NULL; item = item->next)
	{
		Assert(st->nparams == 0 ||
			   render_key_cmp(st->index[st->nparams - 1]->string,
							  item->string, strlen(item->string)) < 0);
		st->index[st->nparams++] = item;
	}
}

/* The top-level member of params named key[0..keylen), or NULL. */
static const cJSON *
render_find_param(RenderState *st, const char *key, size_t keylen)
{
	int			lo = 0;
	int			hi;

	if (st->nparams < 0)
		render_prepare_params(st);

	hi = st->nparams;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			cmp = render_key_cmp(st->index[mid]->string, key, keylen);

		if (cmp == 0)
			return st->index[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}


/* ---- substitution ---- */

/*
 * Set st->error about the placeholder from "open" to "close": it names the
 * placeholder and where it is, both from the template.
 */
static bool
render_placeholder_error(RenderState *st, const char *open, const char *close,
						 const RenderPath *path, const char *problem)
{
	StringInfoData msg;

	initStringInfo(&msg);
	appendStringInfo(&msg, "template placeholder %s at ",
					 render_quote(open, close + 2 - open));
	render_append_path(&msg, path);
	appendStringInfo(&msg, " %s", problem);
	st->error = msg.data;
	return false;
}

/*
 * render_resolve
 *		Find what the placeholder from "open" ("{{") to "close" ("}}")
 *		stands for.
 *
 * Sets st->error and returns false for an unknown placeholder or a missing
 * param.  The message quotes the param's name, never its value.
 */
static bool
render_resolve(RenderState *st, const char *open, const char *close,
			   const RenderPath *path, RenderValue *value)
{
	const char *b = open + 2;
	const char *e = close;
	size_t		len;

	while (b < e && render_space(*b))
		b++;
	while (e > b && render_space(e[-1]))
		e--;
	len = e - b;

	memset(value, 0, sizeof(RenderValue));
	if (len == 6 && memcmp(b, "job.id", 6) == 0)
	{
		value->text = st->job_id;
		value->is_number = true;
	}
	else if (len == 8 && memcmp(b, "job.type", 8) == 0)
		value->text = st->in->job_type;
	else if (len == 8 && memcmp(b, "job.name", 8) == 0)
		value->text = st->in->job_name;
	else if (len >= 7 && memcmp(b, "params.", 7) == 0)
	{
		for (b += 7; b < e && render_space(*b); b++)
			;
		value->param = render_find_param(st, b, e - b);
		if (value->param == NULL)
			return render_placeholder_error(st, open, close, path,
											psprintf("refers to missing param %s",
													 render_quote(b, e - b)));
	}
	else
		return render_placeholder_error(st, open, close, path,
										"is unknown (expected {{params.KEY}}, {{job.id}}, "
										"{{job.type}} or {{job.name}})");
	return true;
}

/*
 * render_replace
 *		Put "replacement" where "old" is in "parent", under old's key, and
 *		free "old".
 */
static void
render_replace(cJSON *parent, cJSON *old, cJSON *replacement)
{
	Assert(replacement->string == NULL);
	replacement->string = old->string;
	old->string = NULL;
	(void) cJSON_ReplaceItemViaPointer(parent, old, replacement);
}

/* Replace a string that is exactly one placeholder by its typed value. */
static void
render_replace_whole(cJSON *parent, cJSON *item, const RenderValue *value)
{
	cJSON	   *node;

	if (value->param != NULL)
	{
		node = cJSON_Duplicate(value->param, true);
		if (node != NULL)
		{
			/* the copy gets the template's key, not the param's */
			cJSON_free(node->string);
			node->string = NULL;
		}
	}
	else if (value->is_number)
		node = cJSON_CreateRaw(value->text);	/* spelled exactly */
	else
		node = cJSON_CreateString(value->text);
	if (node == NULL)
		render_out_of_memory();
	render_replace(parent, item, node);
}

/* The next "{{" at or after "s" that has a "}}" after it, or NULL. */
static const char *
render_next_open(const char *s, const char **close)
{
	const char *open = strstr(s, "{{");

	*close = open ? strstr(open + 2, "}}") : NULL;
	return *close ? open : NULL;
}

/*
 * render_expand_string
 *		Substitute the placeholders of one string node.
 *
 * A string without "{{" costs one strstr() and is not copied.  If the whole string is one placeholder, the node is replaced by a node of
 * the value's own type.  Otherwise the values are inserted as text into a
 * new string, built in st->buf from the pieces of the original, so inserted
 * text is never scanned for placeholders.
 */
static bool
render_expand_string(RenderState *st, cJSON *parent, cJSON *item,
					 const RenderPath *path)
{
	const char *pos = item->valuestring;
	const char *close;
	const char *open = render_next_open(pos, &close);
	RenderValue value;
	char	   *copy;

	if (open == NULL)
		return true;			/* none; an unterminated "{{" is literal */

	if (open == pos && close[2] == '\0')
	{
		if (!render_resolve(st, open, close, path, &value))
			return false;
		render_replace_whole(parent, item, &value);
		return true;
	}

	if (st->buf.data == NULL)
		initStringInfo(&st->buf);
	else
		resetStringInfo(&st->buf);
	for (; open != NULL; open = render_next_open(pos, &close))
	{
		appendBinaryStringInfo(&st->buf, pos, open - pos);
		if (!render_resolve(st, open, close, path, &value))
			return false;
		if (value.param == NULL)
			appendStringInfoString(&st->buf, value.text);
		else if (cJSON_IsString(value.param) || cJSON_IsRaw(value.param))
			appendStringInfoString(&st->buf, value.param->valuestring);
		else
			render_append_json(st, &st->buf, value.param);
		pos = close + 2;
	}
	appendStringInfoString(&st->buf, pos);

	copy = cJSON_malloc(st->buf.len + 1);
	if (copy == NULL)
		render_out_of_memory();
	memcpy(copy, st->buf.data, st->buf.len + 1);
	cJSON_free(item->valuestring);
	item->valuestring = copy;
	return true;
}

/*
 * render_walk
 *		Substitute placeholders in every string value under "container".
 *
 * A node that replaces a string is not walked: what a param brings in is
 * never expanded again.  Stops at the first problem, in document order.
 */
static bool
render_walk(RenderState *st, cJSON *container, const RenderPath *up)
{
	bool		is_object = cJSON_IsObject(container);
	cJSON	   *item = container->child;
	int			index = 0;

	check_stack_depth();

	while (item != NULL)
	{
		/* fetched first: render_expand_string may replace item */
		cJSON	   *next = item->next;
		RenderPath	here;

		here.up = up;
		here.key = is_object ? item->string : NULL;
		here.index = index;

		if (cJSON_IsString(item))
		{
			if (!render_expand_string(st, container, item, &here))
				return false;
		}
		else if (item->child != NULL)
		{
			if (!render_walk(st, item, &here))
				return false;
		}

		item = next;
		index++;
	}

	return true;
}


/* ---- the fields the worker sets ---- */

/* The last member of "obj", to add a member after; NULL if it is empty. */
static cJSON *
render_last(const cJSON *obj)
{
	return obj->child ? obj->child->prev : NULL;
}

/*
 * render_add_member
 *		Link the new member "item" into "obj" under "key", after "after", or
 *		at the head if "after" is NULL.
 *
 * On running out of memory, "item" is freed before the ERROR.
 */
static void
render_add_member(cJSON *obj, const char *key, cJSON *item, cJSON *after)
{
	size_t		len = strlen(key) + 1;

	item->string = cJSON_malloc(len);
	if (item->string == NULL)
	{
		cJSON_Delete(item);
		render_out_of_memory();
	}
	memcpy(item->string, key, len);

	if (after == NULL)
		(void) cJSON_InsertItemInArray(obj, 0, item);
	else if (after->next == NULL)
		(void) cJSON_AddItemToArray(obj, item);
	else
	{
		/* cJSON has no insert-after */
		item->prev = after;
		item->next = after->next;
		after->next->prev = item;
		after->next = item;
	}
}

/*
 * render_get_object
 *		Find the member "key" of "parent", "where" in the template; if there
 *		is none, create an empty object after "after" if "create", or fail.
 *
 * A member that is there but not an object is an error: replacing it would
 * silently throw away what the template says.
 */
static bool
render_get_object(RenderState *st, cJSON *parent, const char *key,
				  bool create, cJSON *after, const char *where,
				  cJSON **object)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(parent, key);
	const char *dot = where[0] != '\0' ? "." : "";

	if (item == NULL && create)
	{
		item = cJSON_CreateObject();
		if (item == NULL)
			render_out_of_memory();
		render_add_member(parent, key, item, after);
	}
	else if (item == NULL)
	{
		st->error = psprintf("template has no \"%s%s%s\" object",
							 where, dot, key);
		return false;
	}
	else if (!cJSON_IsObject(item))
	{
		st->error = psprintf("template \"%s%s%s\" must be an object, not %s",
							 where, dot, key, render_type_name(item));
		return false;
	}

	*object = item;
	return true;
}

/*
 * render_force_string
 *		Make the member "key" of "obj" the string "value", and return it.
 *
 * An existing member is replaced where it stands; a new one goes after
 * "after", or at the head if "after" is NULL.
 */
static cJSON *
render_force_string(cJSON *obj, const char *key, const char *value,
					cJSON *after)
{
	cJSON	   *node = cJSON_CreateString(value);
	cJSON	   *old;

	if (node == NULL)
		render_out_of_memory();
	old = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (old != NULL)
		render_replace(obj, old, node);
	else
		render_add_member(obj, key, node, after);
	return node;
}

/*
 * render_mark
 *		Put our four labels and the proof annotation in "metadata" (the
 *		Job's, or its pod template's, so its pods carry them too), "where"
 *		in the template, overriding the template's values for those keys.
 */
static bool
render_mark(RenderState *st, cJSON *metadata, const char *where)
{
	const JobschedRenderInput *in = st->in;
	cJSON	   *labels;
	cJSON	   *annotations;

	if (!render_get_object(st, metadata, "labels", true,
						   render_last(metadata), where, &labels))
		return false;
	render_force_string(labels, JOBSCHED_LABEL_MANAGED_BY,
						JOBSCHED_MANAGED_BY_VALUE, render_last(labels));
	render_force_string(labels, JOBSCHED_LABEL_JOB_ID, st->job_id,
						render_last(labels));
	render_force_string(labels, JOBSCHED_LABEL_TYPE, in->job_type,
						render_last(labels));
	render_force_string(labels, JOBSCHED_LABEL_INSTANCE, in->instance,
						render_last(labels));

	if (in->proof == NULL)
	{
		/* no forged proof passes through, not even in a preview */
		annotations = cJSON_GetObjectItemCaseSensitive(metadata, "annotations");
		if (cJSON_IsObject(annotations))
			cJSON_DeleteItemFromObjectCaseSensitive(annotations,
													JOBSCHED_ANNOTATION_PROOF);
		return true;
	}
	if (!render_get_object(st, metadata, "annotations", true,
						   render_last(metadata), where, &annotations))
		return false;
	render_force_string(annotations, JOBSCHED_ANNOTATION_PROOF, in->proof,
						render_last(annotations));
	return true;
}

/*
 * render_finish
 *		Set the fields the worker relies on, whatever the template says.
 *
 * apiVersion and kind, metadata.name and metadata.namespace, and our labels
 * and proof on the Job and on its pod template; fields the API server owns
 * are dropped.  Members we add go where a person would write them
 * (apiVersion, kind and metadata first, name and namespace first in
 * metadata, labels last); members we override keep their place.  Runs
 * after substitution, so it also covers metadata or labels that a param
 * injected whole.  spec.template is an object by the table's constraint.
 */
static bool
render_finish(RenderState *st)
{
	cJSON	   *root = st->template;
	cJSON	   *item;
	cJSON	   *metadata;
	cJSON	   *spec;
	cJSON	   *pod;

	item = render_force_string(root, "apiVersion", "batch/v1", NULL);
	item = render_force_string(root, "kind", "Job", item);
	if (!render_get_object(st, root, "metadata", true, item, "", &metadata))
		return false;
	cJSON_DeleteItemFromObjectCaseSensitive(root, "status");

	item = render_force_string(metadata, "name", st->in->job_name, NULL);
	(void) render_force_string(metadata, "namespace", st->in->namespace, item);
	cJSON_DeleteItemFromObjectCaseSensitive(metadata, "generateName");
	cJSON_DeleteItemFromObjectCaseSensitive(metadata, "resourceVersion");
	cJSON_DeleteItemFromObjectCaseSensitive(metadata, "uid");
	cJSON_DeleteItemFromObjectCaseSensitive(metadata, "creationTimestamp");
	if (!render_mark(st, metadata, "metadata"))
		return false;

	if (!render_get_object(st, root, "spec", false, NULL, "", &spec) ||
		!render_get_object(st, spec, "template", false, NULL, "spec", &pod) ||
		!render_get_object(st, pod, "metadata", true, NULL, "spec.template",
						   &metadata))
		return false;
	return render_mark(st, metadata, "spec.template.metadata");
}


/* ---- the whole ---- */

/*
 * render_run
 *		Parse, check, substitute, force our fields, print.
 *
 * Returns false with st->error set on a problem with the job or template;
 * on success st->result holds the palloc'd manifest.
 */
static bool
render_run(RenderState *st)
{
	const char *text = st->in->template_json;
	StringInfoData out;

	st->params = render_parse(st, st->in->params_json, "params");
	if (st->params == NULL)
		return false;
	st->template = render_parse(st, st->in->template_json, "template");
	if (st->template == NULL)
		return false;

	/*
	 * apiVersion and kind are checked as written: a template for some other
	 * kind of object is a mistake that overwriting the two fields would hide.
	 */
	if (!render_check_member(st, "apiVersion", "batch/v1") ||
		!render_check_member(st, "kind", "Job"))
		return false;

	/* must run before the tree is changed: it follows the text */
	render_keep_numbers(st->template, &text);

	if (!render_walk(st, st->template, NULL) || !render_finish(st))
		return false;

	initStringInfo(&out);
	render_append_json(st, &out, st->template);
	if (out.len > JOBSCHED_OBJECT_MAX_BYTES)
	{
		st->error = psprintf("the rendered Job takes %d bytes; a Kubernetes object may hold at most %d",
							 out.len, JOBSCHED_OBJECT_MAX_BYTES);
		pfree(out.data);
		return false;
	}
	st->result = out.data;
	return true;
}

/*
 * jobsched_render_job
 *		Render the manifest for one job; see render.h for the contract.
 *
 * This wrapper owns the cJSON memory: whatever render_run() leaves in the
 * state, or whatever it was holding when an ERROR went by, is freed here.
 */
char *
jobsched_render_job(const JobschedRenderInput *in, char **error)
{
	RenderState *st;
	char	   *result;

	if (in == NULL || error == NULL || in->job_type == NULL ||
		in->job_name == NULL || in->namespace == NULL ||
		in->instance == NULL || in->params_json == NULL ||
		in->template_json == NULL)
		elog(ERROR, "jobsched_render_job called with a NULL argument");

	/*
	 * The state lives in palloc'd memory behind a pointer that never changes
	 * after PG_TRY's setjmp, so PG_FINALLY reads what render_run() stored in
	 * it without any volatile qualifiers.
	 */
	st = palloc0(sizeof(RenderState));
	st->in = in;
	st->nparams = -1;
	snprintf(st->job_id, sizeof(st->job_id), INT64_FORMAT, in->job_id);

	PG_TRY();
	{
		(void) render_run(st);
	}
	PG_FINALLY();
	{
		cJSON_Delete(st->template);
		cJSON_Delete(st->params);
		cJSON_free(st->printed);
	}
	PG_END_TRY();

	result = st->result;
	*error = st->error;
	Assert((result == NULL) != (*error == NULL));

	if (st->buf.data != NULL)
		pfree(st->buf.data);
	if (st->index != NULL)
		pfree(st->index);
	pfree(st);

	return result;
}
