/*-------------------------------------------------------------------------
 *
 * render.c
 *	  Render a job type's template into the batch/v1 Job manifest for one
 *	  job.
 *
 * The template is a full Job manifest (jsonb, handed to us as text).  Inside
 * any JSON string value of it, at any depth, these placeholders are replaced:
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
 * - Numbers keep the exact text the template or params spelled them with.
 *	 cJSON keeps numbers as doubles and would print 12345678901234567890 as
 *	 1.2345678901234567e+19 (which Kubernetes rejects for an int64 field) and
 *	 1e400 as null; see render_keep_numbers().
 * - Messages name placeholders, JSON paths and param names, all of which come
 *	 from the template; they never quote a param's value, which may be
 *	 secret.
 *
 * Memory: cJSON allocates with malloc.  Every cJSON pointer we own lives in
 * RenderState and is freed in a PG_FINALLY block, so neither an error return
 * nor an ERROR thrown by palloc (or by check_stack_depth) in the middle
 * leaks it.  A new cJSON node is linked into a tree we own before anything
 * else can throw.
 *
 * Cost: a string without "{{" is checked with one strstr() and not copied.
 * Params are looked up through a sorted index once there are more than a
 * handful of them, so rendering is linear in the size of the template plus
 * the size of what it inserts.
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

#include "compat.h"
#include "jobsched.h"
#include "render.h"

/* at most this many bytes of template text are quoted in a message */
#define RENDER_QUOTE_MAX	128

/* with more params than this, look them up through a sorted index */
#define RENDER_INDEX_MIN	8

/* an integer with at most this many digits prints the same from a double */
#define RENDER_EXACT_DIGITS 15

typedef enum RenderPlaceholderKind
{
	RENDER_PH_PARAM,
	RENDER_PH_JOB_ID,
	RENDER_PH_JOB_TYPE,
	RENDER_PH_JOB_NAME,
	RENDER_PH_UNKNOWN
} RenderPlaceholderKind;

/* one placeholder found in a template string */
typedef struct RenderPlaceholder
{
	RenderPlaceholderKind kind;
	const char *text;			/* the placeholder as written, from "{{" */
	size_t		textlen;		/* ... through "}}" */
	const char *key;			/* RENDER_PH_PARAM: the param name (not
								 * NUL-terminated) */
	size_t		keylen;
} RenderPlaceholder;

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

/* an entry of the sorted params index */
typedef struct RenderParam
{
	const char *name;
	size_t		len;
	int			pos;			/* position in params, to keep the first of
								 * duplicate keys */
	cJSON	   *value;
} RenderParam;

/* where render_keep_numbers() is in the text the tree was parsed from */
typedef struct RenderCursor
{
	const char *pos;
	bool		in_step;		/* false once tree and text disagree */
} RenderCursor;

typedef struct RenderState
{
	const JobschedRenderInput *in;

	/* cJSON memory (malloc); freed in jobsched_render_job's PG_FINALLY */
	cJSON	   *template;
	cJSON	   *params;
	char	   *printed;		/* printed text not yet copied and freed */

	/* palloc'd scratch */
	bool		params_numbers_kept;
	int			nparams;		/* -1 until counted */
	RenderParam *index;			/* NULL if params are few */
	bool		buf_ready;
	StringInfoData buf;			/* builds substituted strings */
	char		job_id[MAXINT8LEN + 1];

	/* outcome */
	char	   *result;
	char	   *error;
} RenderState;

static bool render_run(RenderState *st);
static cJSON *render_parse(RenderState *st, const char *text,
						   const char *what);
static bool render_too_deep(const char *text);
static bool render_check_member(RenderState *st, const char *key,
								const char *expected);
static void render_keep_numbers(cJSON *node, RenderCursor *cur);
static void render_keep_number(cJSON *item, RenderCursor *cur);
static bool render_is_number_char(char c);
static bool render_is_short_integer(const char *s, size_t len);
static bool render_is_json_number(const char *s, size_t len);
static bool render_walk(RenderState *st, cJSON *container,
						const RenderPath *up);
static bool render_expand_string(RenderState *st, cJSON *parent, cJSON *item,
								 const RenderPath *path);
static void render_classify(const char *open, const char *close,
							RenderPlaceholder *ph);
static bool render_resolve(RenderState *st, const RenderPlaceholder *ph,
						   const RenderPath *path, cJSON **value);
static cJSON *render_find_param(RenderState *st, const char *key,
								size_t keylen);
static void render_build_index(RenderState *st);
static int	render_name_cmp(const char *a, size_t alen,
							const char *b, size_t blen);
static int	render_param_cmp(const void *a, const void *b);
static void render_append_value(RenderState *st, const cJSON *value);
static bool render_finish(RenderState *st);
static bool render_get_object(RenderState *st, cJSON *parent,
							  const char *key, cJSON *after,
							  const char *pathname, cJSON **object);
static bool render_get_existing_object(RenderState *st, cJSON *parent,
									   const char *key, const char *pathname,
									   cJSON **object);
static cJSON *render_force_string(cJSON *obj, const char *key,
								  const char *value, cJSON *after);
static void render_force_labels(RenderState *st, cJSON *labels);
static bool render_force_proof(RenderState *st, cJSON *metadata,
							   const char *pathname);
static void render_delete_member(cJSON *obj, const char *key);
static void render_replace(cJSON *parent, cJSON *old, cJSON *replacement);
static void render_link_after(cJSON *obj, cJSON *item, cJSON *after);
static char *render_new_key(const char *key);
static char *render_path_text(const RenderPath *path);
static char *render_quote(const char *s, size_t len);
static const char *render_type_name(const cJSON *item);
static bool render_space(char c);
static void render_out_of_memory(void) pg_attribute_noreturn();


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

	*error = NULL;

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
		if (st->printed != NULL)
			cJSON_free(st->printed);
	}
	PG_END_TRY();

	result = st->result;
	*error = st->error;
	Assert((result == NULL) != (*error == NULL));

	if (st->buf_ready)
		pfree(st->buf.data);
	if (st->index != NULL)
		pfree(st->index);
	pfree(st);

	return result;
}

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
	RenderCursor cur;
	size_t		len;

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
	cur.pos = st->in->template_json;
	cur.in_step = true;
	render_keep_numbers(st->template, &cur);

	if (!render_walk(st, st->template, NULL))
		return false;
	if (!render_finish(st))
		return false;

	st->printed = cJSON_PrintUnformatted(st->template);
	if (st->printed == NULL)
		render_out_of_memory();
	len = strlen(st->printed);
	if (len > JOBSCHED_OBJECT_MAX_BYTES)
	{
		st->error = psprintf("the rendered Job takes %zu bytes; a Kubernetes object may hold at most %d",
							 len, JOBSCHED_OBJECT_MAX_BYTES);
		return false;
	}
	st->result = palloc(len + 1);
	memcpy(st->result, st->printed, len + 1);
	cJSON_free(st->printed);
	st->printed = NULL;

	return true;
}

/*
 * render_parse
 *		Parse text that must hold one JSON object.
 *
 * On failure sets st->error, naming the input as "what", and returns NULL.
 * Trailing text after the value is rejected.  The byte offset of a syntax
 * error is reported, never the text around it (params may be secret).
 * cJSON refuses nesting deeper than CJSON_NESTING_LIMIT, which jsonb
 * allows, so that gets its own message.  cJSON also reports running out of
 * memory as a syntax error, which cannot be told apart here.
 */
static cJSON *
render_parse(RenderState *st, const char *text, const char *what)
{
	const char *end = NULL;
	cJSON	   *json;

	json = cJSON_ParseWithOpts(text, &end, true);
	if (json == NULL)
	{
		size_t		textlen = strlen(text);

		if (render_too_deep(text))
			st->error = psprintf("%s is nested more than %d levels deep",
								 what, CJSON_NESTING_LIMIT);
		else if (end != NULL && end >= text && end <= text + textlen)
			st->error = psprintf("%s is not valid JSON (error near byte %zu)",
								 what, (size_t) (end - text));
		else
			st->error = psprintf("%s is not valid JSON", what);
		return NULL;
	}

	if (!cJSON_IsObject(json))
	{
		const char *type = render_type_name(json);

		/* no palloc while we hold json but not st */
		cJSON_Delete(json);
		st->error = psprintf("%s must be a JSON object, not %s", what, type);
		return NULL;
	}

	return json;
}

/*
 * render_too_deep
 *		Does JSON text nest arrays and objects deeper than cJSON accepts?
 *
 * Only called once parsing has failed, to explain why.
 */
static bool
render_too_deep(const char *text)
{
	const char *p;
	int			depth = 0;

	for (p = text; *p != '\0'; p++)
	{
		if (*p == '"')
		{
			for (p++; *p != '"' && *p != '\0'; p++)
			{
				if (*p == '\\' && p[1] != '\0')
					p++;
			}
			if (*p == '\0')
				break;
		}
		else if (*p == '[' || *p == '{')
		{
			if (++depth > CJSON_NESTING_LIMIT)
				return true;
		}
		else if (*p == ']' || *p == '}')
			depth--;
	}
	return false;
}

/*
 * render_check_member
 *		If the template has top-level member "key", it must be the string
 *		"expected".
 */
static bool
render_check_member(RenderState *st, const char *key, const char *expected)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(st->template, key);

	if (item == NULL)
		return true;
	if (!cJSON_IsString(item) || item->valuestring == NULL)
	{
		st->error = psprintf("template \"%s\" must be the string \"%s\", not %s",
							 key, expected, render_type_name(item));
		return false;
	}
	if (strcmp(item->valuestring, expected) != 0)
	{
		st->error = psprintf("template \"%s\" must be \"%s\", not %s",
							 key, expected,
							 render_quote(item->valuestring,
										  strlen(item->valuestring)));
		return false;
	}
	return true;
}

/*
 * render_keep_numbers
 *		Make the numbers under "node" print exactly as they were written.
 *
 * cJSON keeps a number only as a double.  Walking the tree in document order
 * alongside the text it was parsed from (cJSON keeps members in order), we
 * find each number's token and turn the node into a cJSON_Raw node holding
 * that token, which cJSON_PrintUnformatted() emits verbatim.  Integers of
 * up to 15 digits, by far the most common, print identically from the
 * double and are left alone, so they cost no allocation.  A token is used
 * only if it is a well-formed JSON number whose value is the node's value;
 * at the first disagreement we stop and leave the remaining numbers to
 * cJSON's own formatting.
 *
 * Everything else that reads numbers here treats cJSON_Raw as a number.
 */
static void
render_keep_numbers(cJSON *node, RenderCursor *cur)
{
	cJSON	   *item;

	check_stack_depth();

	for (item = node->child; item != NULL && cur->in_step; item = item->next)
	{
		if (cJSON_IsNumber(item))
			render_keep_number(item, cur);
		else if (item->child != NULL)
			render_keep_numbers(item, cur);
	}
}

/* Match one number node with the next number token of the text. */
static void
render_keep_number(cJSON *item, RenderCursor *cur)
{
	const char *p = cur->pos;
	const char *start;
	size_t		len;
	double		value;
	char	   *end;
	char	   *copy;

	/* skip to the next number token that is not inside a string */
	for (;;)
	{
		char		c = *p;

		if (c == '\0')
		{
			cur->in_step = false;
			return;
		}
		if (c == '"')
		{
			for (p++; *p != '"'; p++)
			{
				if (*p == '\0')
				{
					cur->in_step = false;
					return;
				}
				if (*p == '\\' && p[1] != '\0')
					p++;
			}
			p++;
			continue;
		}
		if (c == '-' || (c >= '0' && c <= '9'))
			break;
		p++;
	}

	/* the same characters cJSON hands to strtod() */
	start = p;
	while (render_is_number_char(*p))
		p++;
	cur->pos = p;
	len = p - start;

	if (render_is_short_integer(start, len))
		return;

	/*
	 * cJSON accepts a few things JSON does not (such as a leading zero); we
	 * never emit those verbatim, but the token was still consumed by the
	 * same node, so the cursor stays in step.
	 */
	if (!render_is_json_number(start, len))
		return;

	/* the token ends at a character strtod() cannot consume */
	value = strtod(start, &end);
	if (end != p || value != item->valuedouble)
	{
		cur->in_step = false;
		return;
	}

	copy = cJSON_malloc(len + 1);
	if (copy == NULL)
		render_out_of_memory();
	memcpy(copy, start, len);
	copy[len] = '\0';
	item->valuestring = copy;
	item->type = (item->type & ~0xFF) | cJSON_Raw;
}

static bool
render_is_number_char(char c)
{
	return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' ||
		c == 'e' || c == 'E';
}

/* -?(0|[1-9][0-9]*) with at most RENDER_EXACT_DIGITS digits */
static bool
render_is_short_integer(const char *s, size_t len)
{
	size_t		i = 0;

	if (len > 0 && s[0] == '-')
		i++;
	if (i == len || len - i > RENDER_EXACT_DIGITS)
		return false;
	if (s[i] == '0' && len - i > 1)
		return false;
	for (; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* the JSON number grammar (RFC 8259 section 6) */
static bool
render_is_json_number(const char *s, size_t len)
{
	const char *p = s;
	const char *end = s + len;

#define RENDER_DIGIT(p) ((p) < end && *(p) >= '0' && *(p) <= '9')

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (RENDER_DIGIT(p))
	{
		while (RENDER_DIGIT(p))
			p++;
	}
	else
		return false;

	if (p < end && *p == '.')
	{
		p++;
		if (!RENDER_DIGIT(p))
			return false;
		while (RENDER_DIGIT(p))
			p++;
	}

	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!RENDER_DIGIT(p))
			return false;
		while (RENDER_DIGIT(p))
			p++;
	}

#undef RENDER_DIGIT

	return p == end;
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
			if (item->valuestring != NULL &&
				strstr(item->valuestring, "{{") != NULL &&
				!render_expand_string(st, container, item, &here))
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

/*
 * render_expand_string
 *		Substitute the placeholders of one string node that contains "{{".
 *
 * If the whole string is one placeholder, the node is replaced by a node of
 * the value's own type.  Otherwise the values are inserted as text into a
 * new string, built in st->buf from the pieces of the original, so inserted
 * text is never scanned for placeholders.
 */
static bool
render_expand_string(RenderState *st, cJSON *parent, cJSON *item,
					 const RenderPath *path)
{
	const char *s = item->valuestring;
	const char *pos = s;
	const char *open = strstr(s, "{{");
	const char *close;
	RenderPlaceholder ph;
	cJSON	   *value;
	char	   *copy;

	Assert(open != NULL);
	close = strstr(open + 2, "}}");
	if (close == NULL)
		return true;			/* unterminated: literal text */

	if (open == s && close[2] == '\0')
	{
		cJSON	   *node = NULL;

		render_classify(open, close, &ph);
		if (!render_resolve(st, &ph, path, &value))
			return false;

		switch (ph.kind)
		{
			case RENDER_PH_PARAM:
				node = cJSON_Duplicate(value, true);
				if (node != NULL && node->string != NULL)
				{
					/* the copy gets the template's key, not the param's */
					if (!(node->type & cJSON_StringIsConst))
						cJSON_free(node->string);
					node->string = NULL;
					node->type &= ~cJSON_StringIsConst;
				}
				break;
			case RENDER_PH_JOB_ID:
				/* a number, spelled exactly (see render_keep_numbers) */
				node = cJSON_CreateRaw(st->job_id);
				break;
			case RENDER_PH_JOB_TYPE:
				node = cJSON_CreateString(st->in->job_type);
				break;
			case RENDER_PH_JOB_NAME:
				node = cJSON_CreateString(st->in->job_name);
				break;
			case RENDER_PH_UNKNOWN:
				Assert(false);	/* render_resolve refused it */
				break;
		}
		if (node == NULL)
			render_out_of_memory();
		render_replace(parent, item, node);
		return true;
	}

	if (!st->buf_ready)
	{
		initStringInfo(&st->buf);
		st->buf_ready = true;
	}
	else
		resetStringInfo(&st->buf);

	for (;;)
	{
		appendBinaryStringInfo(&st->buf, pos, open - pos);

		render_classify(open, close, &ph);
		if (!render_resolve(st, &ph, path, &value))
			return false;

		switch (ph.kind)
		{
			case RENDER_PH_PARAM:
				render_append_value(st, value);
				break;
			case RENDER_PH_JOB_ID:
				appendStringInfoString(&st->buf, st->job_id);
				break;
			case RENDER_PH_JOB_TYPE:
				appendStringInfoString(&st->buf, st->in->job_type);
				break;
			case RENDER_PH_JOB_NAME:
				appendStringInfoString(&st->buf, st->in->job_name);
				break;
			case RENDER_PH_UNKNOWN:
				Assert(false);
				break;
		}

		pos = close + 2;
		open = strstr(pos, "{{");
		if (open == NULL)
			break;
		close = strstr(open + 2, "}}");
		if (close == NULL)
			break;				/* unterminated: the rest is literal */
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
 * render_classify
 *		Tell what the placeholder from "open" ("{{") to "close" ("}}") is.
 */
static void
render_classify(const char *open, const char *close, RenderPlaceholder *ph)
{
	const char *b = open + 2;
	const char *e = close;
	size_t		len;

	ph->text = open;
	ph->textlen = close + 2 - open;
	ph->key = NULL;
	ph->keylen = 0;

	while (b < e && render_space(*b))
		b++;
	while (e > b && render_space(e[-1]))
		e--;
	len = e - b;

	if (len == 6 && memcmp(b, "job.id", 6) == 0)
		ph->kind = RENDER_PH_JOB_ID;
	else if (len == 8 && memcmp(b, "job.type", 8) == 0)
		ph->kind = RENDER_PH_JOB_TYPE;
	else if (len == 8 && memcmp(b, "job.name", 8) == 0)
		ph->kind = RENDER_PH_JOB_NAME;
	else if (len >= 7 && memcmp(b, "params.", 7) == 0)
	{
		b += 7;
		while (b < e && render_space(*b))
			b++;
		ph->kind = RENDER_PH_PARAM;
		ph->key = b;
		ph->keylen = e - b;
	}
	else
		ph->kind = RENDER_PH_UNKNOWN;
}

/*
 * render_resolve
 *		Check that a placeholder can be substituted; for a param, find its
 *		value.
 *
 * Sets st->error and returns false for an unknown placeholder or a missing
 * param.  The message quotes the placeholder and the param name, which come
 * from the template, never the params.
 */
static bool
render_resolve(RenderState *st, const RenderPlaceholder *ph,
			   const RenderPath *path, cJSON **value)
{
	*value = NULL;

	if (ph->kind == RENDER_PH_UNKNOWN)
	{
		st->error = psprintf("template placeholder %s at %s is unknown "
							 "(expected {{params.KEY}}, {{job.id}}, "
							 "{{job.type}} or {{job.name}})",
							 render_quote(ph->text, ph->textlen),
							 render_path_text(path));
		return false;
	}
	if (ph->kind != RENDER_PH_PARAM)
		return true;

	*value = render_find_param(st, ph->key, ph->keylen);
	if (*value == NULL)
	{
		st->error = psprintf("template placeholder %s at %s refers to missing param %s",
							 render_quote(ph->text, ph->textlen),
							 render_path_text(path),
							 render_quote(ph->key, ph->keylen));
		return false;
	}
	return true;
}

/*
 * render_find_param
 *		The top-level member of params named key[0..keylen), or NULL.
 *
 * The first use also makes the params' numbers print as written (params are
 * parsed eagerly to validate them, but most templates use few of them).
 * With duplicate keys, which jsonb never produces, the first one wins.
 */
static cJSON *
render_find_param(RenderState *st, const char *key, size_t keylen)
{
	cJSON	   *item;

	if (!st->params_numbers_kept)
	{
		RenderCursor cur;

		cur.pos = st->in->params_json;
		cur.in_step = true;
		render_keep_numbers(st->params, &cur);
		st->params_numbers_kept = true;
	}

	if (st->nparams < 0)
		render_build_index(st);

	if (st->index == NULL)
	{
		for (item = st->params->child; item != NULL; item = item->next)
		{
			if (item->string != NULL &&
				strncmp(item->string, key, keylen) == 0 &&
				item->string[keylen] == '\0')
				return item;
		}
		return NULL;
	}
	else
	{
		int			lo = 0;
		int			hi = st->nparams;

		/* the first entry not less than key */
		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (render_name_cmp(st->index[mid].name, st->index[mid].len,
								key, keylen) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < st->nparams &&
			render_name_cmp(st->index[lo].name, st->index[lo].len,
							key, keylen) == 0)
			return st->index[lo].value;
		return NULL;
	}
}

/*
 * render_build_index
 *		Count the params and, if there are many, sort them for binary search.
 */
static void
render_build_index(RenderState *st)
{
	cJSON	   *item;
	int			n = 0;

	for (item = st->params->child; item != NULL; item = item->next)
		n++;
	st->nparams = n;
	if (n <= RENDER_INDEX_MIN)
		return;

	st->index = palloc(sizeof(RenderParam) * n);
	n = 0;
	for (item = st->params->child; item != NULL; item = item->next)
	{
		if (item->string == NULL)
			continue;
		st->index[n].name = item->string;
		st->index[n].len = strlen(item->string);
		st->index[n].pos = n;
		st->index[n].value = item;
		n++;
	}
	st->nparams = n;
	qsort(st->index, n, sizeof(RenderParam), render_param_cmp);
}

/* byte order on (name, length) pairs; a proper prefix sorts first */
static int
render_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int			cmp = memcmp(a, b, Min(alen, blen));

	if (cmp != 0)
		return cmp;
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return 0;
}

static int
render_param_cmp(const void *a, const void *b)
{
	const RenderParam *pa = (const RenderParam *) a;
	const RenderParam *pb = (const RenderParam *) b;
	int			cmp = render_name_cmp(pa->name, pa->len, pb->name, pb->len);

	if (cmp != 0)
		return cmp;
	return pa->pos - pb->pos;
}

/*
 * render_append_value
 *		Append a param's value to st->buf as text: a string raw, anything
 *		else as its compact JSON text.
 *
 * cJSON prints into malloc'd memory; it is parked in st->printed while it is
 * copied into the palloc'd buffer, which may throw.
 */
static void
render_append_value(RenderState *st, const cJSON *value)
{
	switch (value->type & 0xFF)
	{
		case cJSON_String:
		case cJSON_Raw:
			appendStringInfoString(&st->buf, value->valuestring);
			break;
		case cJSON_True:
			appendStringInfoString(&st->buf, "true");
			break;
		case cJSON_False:
			appendStringInfoString(&st->buf, "false");
			break;
		case cJSON_NULL:
			appendStringInfoString(&st->buf, "null");
			break;
		default:
			st->printed = cJSON_PrintUnformatted(value);
			if (st->printed == NULL)
				render_out_of_memory();
			appendStringInfoString(&st->buf, st->printed);
			cJSON_free(st->printed);
			st->printed = NULL;
			break;
	}
}

/*
 * render_finish
 *		Set the fields the worker relies on, whatever the template says.
 *
 * apiVersion and kind, metadata.name and metadata.namespace, and our four
 * labels on the Job and on its pod template; fields the API server owns are
 * dropped.  Members we add go where a person would write them (apiVersion,
 * kind and metadata first, name and namespace first in metadata, labels
 * last); members we override keep their place.  Runs after substitution,
 * so it also covers metadata or labels that a param injected whole.
 */
static bool
render_finish(RenderState *st)
{
	const JobschedRenderInput *in = st->in;
	cJSON	   *root = st->template;
	cJSON	   *item;
	cJSON	   *metadata;
	cJSON	   *labels;
	cJSON	   *spec;
	cJSON	   *podtemplate;

	item = render_force_string(root, "apiVersion", "batch/v1", NULL);
	item = render_force_string(root, "kind", "Job", item);
	if (!render_get_object(st, root, "metadata", item, "metadata", &metadata))
		return false;
	render_delete_member(root, "status");

	item = render_force_string(metadata, "name", in->job_name, NULL);
	(void) render_force_string(metadata, "namespace", in->namespace, item);
	render_delete_member(metadata, "generateName");
	render_delete_member(metadata, "resourceVersion");
	render_delete_member(metadata, "uid");
	render_delete_member(metadata, "creationTimestamp");

	if (!render_get_object(st, metadata, "labels",
						   metadata->child ? metadata->child->prev : NULL,
						   "metadata.labels", &labels))
		return false;
	render_force_labels(st, labels);
	if (!render_force_proof(st, metadata, "metadata.annotations"))
		return false;

	if (!render_get_existing_object(st, root, "spec", "spec", &spec) ||
		!render_get_existing_object(st, spec, "template", "spec.template",
									&podtemplate))
		return false;
	if (!render_get_object(st, podtemplate, "metadata", NULL,
						   "spec.template.metadata", &metadata))
		return false;
	if (!render_get_object(st, metadata, "labels",
						   metadata->child ? metadata->child->prev : NULL,
						   "spec.template.metadata.labels", &labels))
		return false;
	render_force_labels(st, labels);
	if (!render_force_proof(st, metadata, "spec.template.metadata.annotations"))
		return false;

	return true;
}

/*
 * Put the proof in the annotations of "metadata" (the Job's, and its pod
 * template's, so its pods carry it too), replacing any the template has.
 */
static bool
render_force_proof(RenderState *st, cJSON *metadata, const char *pathname)
{
	cJSON	   *annotations;

	if (st->in->proof == NULL)
	{
		/* no forged proof passes through, not even in a preview */
		annotations = cJSON_GetObjectItemCaseSensitive(metadata, "annotations");
		if (cJSON_IsObject(annotations))
			render_delete_member(annotations, JOBSCHED_ANNOTATION_PROOF);
		return true;
	}
	if (!render_get_object(st, metadata, "annotations",
						   metadata->child ? metadata->child->prev : NULL,
						   pathname, &annotations))
		return false;
	render_force_string(annotations, JOBSCHED_ANNOTATION_PROOF, st->in->proof,
						annotations->child ? annotations->child->prev : NULL);
	return true;
}

/*
 * render_get_object
 *		Find the object member "key" of "parent", creating an empty one after
 *		"after" (at the head if NULL) if there is none.
 *
 * A member that is there but not an object is an error: replacing it would
 * silently throw away what the template says.
 */
static bool
render_get_object(RenderState *st, cJSON *parent, const char *key,
				  cJSON *after, const char *pathname, cJSON **object)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(parent, key);

	if (item == NULL)
	{
		char	   *name;

		item = cJSON_CreateObject();
		if (item == NULL)
			render_out_of_memory();
		name = render_new_key(key);
		if (name == NULL)
		{
			cJSON_Delete(item);
			render_out_of_memory();
		}
		item->string = name;
		render_link_after(parent, item, after);
	}
	else if (!cJSON_IsObject(item))
	{
		st->error = psprintf("template \"%s\" must be an object, not %s",
							 pathname, render_type_name(item));
		return false;
	}

	*object = item;
	return true;
}

/* Like render_get_object, but the member must already be there. */
static bool
render_get_existing_object(RenderState *st, cJSON *parent, const char *key,
						   const char *pathname, cJSON **object)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(parent, key);

	if (item == NULL)
	{
		st->error = psprintf("template has no \"%s\" object", pathname);
		return false;
	}
	if (!cJSON_IsObject(item))
	{
		st->error = psprintf("template \"%s\" must be an object, not %s",
							 pathname, render_type_name(item));
		return false;
	}

	*object = item;
	return true;
}

/*
 * render_force_string
 *		Make the member "key" of "obj" the string "value", and return it.
 *
 * An existing member is replaced where it stands; any further members with
 * the same key are removed, since a reader that takes the last of duplicate
 * keys (as Kubernetes does) would otherwise see the template's value.  A new
 * member goes after "after", or at the head if "after" is NULL.
 */
static cJSON *
render_force_string(cJSON *obj, const char *key, const char *value,
					cJSON *after)
{
	cJSON	   *node;
	cJSON	   *item;
	cJSON	   *next;
	bool		placed = false;

	node = cJSON_CreateString(value);
	if (node == NULL)
		render_out_of_memory();

	for (item = obj->child; item != NULL; item = next)
	{
		next = item->next;
		if (item->string == NULL || strcmp(item->string, key) != 0)
			continue;
		if (!placed)
		{
			render_replace(obj, item, node);
			placed = true;
		}
		else
			cJSON_Delete(cJSON_DetachItemViaPointer(obj, item));
	}

	if (!placed)
	{
		char	   *name = render_new_key(key);

		if (name == NULL)
		{
			cJSON_Delete(node);
			render_out_of_memory();
		}
		node->string = name;
		render_link_after(obj, node, after);
	}

	return node;
}

/* Set our four labels, overriding the template's values for those keys. */
static void
render_force_labels(RenderState *st, cJSON *labels)
{
	const JobschedRenderInput *in = st->in;

#define RENDER_LAST(obj) ((obj)->child ? (obj)->child->prev : NULL)
	render_force_string(labels, JOBSCHED_LABEL_MANAGED_BY,
						JOBSCHED_MANAGED_BY_VALUE, RENDER_LAST(labels));
	render_force_string(labels, JOBSCHED_LABEL_JOB_ID,
						st->job_id, RENDER_LAST(labels));
	render_force_string(labels, JOBSCHED_LABEL_TYPE,
						in->job_type, RENDER_LAST(labels));
	render_force_string(labels, JOBSCHED_LABEL_INSTANCE,
						in->instance, RENDER_LAST(labels));
#undef RENDER_LAST
}

/* Remove every member "key" of "obj". */
static void
render_delete_member(cJSON *obj, const char *key)
{
	cJSON	   *item;

	while ((item = cJSON_DetachItemFromObjectCaseSensitive(obj, key)) != NULL)
		cJSON_Delete(item);
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
	replacement->type = (replacement->type & ~cJSON_StringIsConst) |
		(old->type & cJSON_StringIsConst);
	old->string = NULL;
	old->type &= ~cJSON_StringIsConst;

	(void) cJSON_ReplaceItemViaPointer(parent, old, replacement);
}

/*
 * render_link_after
 *		Link a detached "item" into "obj" after "after", or at the head if
 *		"after" is NULL.
 *
 * cJSON has no insert-after; this keeps its list invariants (the first
 * child's prev is the last child, the last child's next is NULL).
 */
static void
render_link_after(cJSON *obj, cJSON *item, cJSON *after)
{
	if (after == NULL)
	{
		cJSON	   *first = obj->child;

		if (first == NULL)
		{
			item->prev = item;
			item->next = NULL;
		}
		else
		{
			item->next = first;
			item->prev = first->prev;
			first->prev = item;
		}
		obj->child = item;
	}
	else
	{
		item->prev = after;
		item->next = after->next;
		if (after->next != NULL)
			after->next->prev = item;
		else
			obj->child->prev = item;
		after->next = item;
	}
}

/* A key for a new member, in cJSON's memory; NULL if out of memory. */
static char *
render_new_key(const char *key)
{
	size_t		len = strlen(key);
	char	   *copy = cJSON_malloc(len + 1);

	if (copy != NULL)
		memcpy(copy, key, len + 1);
	return copy;
}

/*
 * render_path_text
 *		Spell out a template path, such as
 *		spec.template.spec.containers[0].args[1].
 *
 * Members whose names are not simple identifiers are written ["like.this"],
 * so label keys stay unambiguous.
 */
static char *
render_path_text(const RenderPath *path)
{
	const RenderPath *p;
	const RenderPath **steps;
	int			depth = 0;
	int			i;
	StringInfoData out;

	for (p = path; p != NULL; p = p->up)
		depth++;
	steps = palloc(sizeof(RenderPath *) * Max(depth, 1));
	i = depth;
	for (p = path; p != NULL; p = p->up)
		steps[--i] = p;

	initStringInfo(&out);
	for (i = 0; i < depth; i++)
	{
		const char *key = steps[i]->key;
		bool		simple;
		const char *c;

		if (key == NULL)
		{
			appendStringInfo(&out, "[%d]", steps[i]->index);
			continue;
		}

		simple = (key[0] != '\0' && !(key[0] >= '0' && key[0] <= '9'));
		for (c = key; *c != '\0' && simple; c++)
			simple = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
					  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-');
		if (simple)
		{
			if (out.len > 0)
				appendStringInfoChar(&out, '.');
			appendStringInfoString(&out, key);
		}
		else
			appendStringInfo(&out, "[%s]", render_quote(key, strlen(key)));
	}
	pfree(steps);

	return out.data;
}

/*
 * render_quote
 *		Quote template text for a message: double quotes, backslash escapes
 *		for quotes, backslashes and control characters (so the message stays
 *		on one line), and cut to RENDER_QUOTE_MAX bytes on a character
 *		boundary.
 */
static char *
render_quote(const char *s, size_t len)
{
	StringInfoData out;
	size_t		keep = len;
	size_t		i;

	if (len > RENDER_QUOTE_MAX)
		keep = pg_mbcliplen(s, (int) Min(len, (size_t) PG_INT32_MAX),
							RENDER_QUOTE_MAX);

	initStringInfo(&out);
	appendStringInfoChar(&out, '"');
	for (i = 0; i < keep; i++)
	{
		unsigned char c = (unsigned char) s[i];

		switch (c)
		{
			case '"':
				appendStringInfoString(&out, "\\\"");
				break;
			case '\\':
				appendStringInfoString(&out, "\\\\");
				break;
			case '\n':
				appendStringInfoString(&out, "\\n");
				break;
			case '\r':
				appendStringInfoString(&out, "\\r");
				break;
			case '\t':
				appendStringInfoString(&out, "\\t");
				break;
			default:
				if (c < 0x20 || c == 0x7f)
					appendStringInfo(&out, "\\u%04x", c);
				else
					appendStringInfoChar(&out, (char) c);
				break;
		}
	}
	if (keep < len)
		appendStringInfoString(&out, "...");
	appendStringInfoChar(&out, '"');

	return out.data;
}

/* The JSON type of a node, as a message would say it. */
static const char *
render_type_name(const cJSON *item)
{
	switch (item->type & 0xFF)
	{
		case cJSON_False:
		case cJSON_True:
			return "a boolean";
		case cJSON_NULL:
			return "null";
		case cJSON_Number:
		case cJSON_Raw:
			return "a number";
		case cJSON_String:
			return "a string";
		case cJSON_Array:
			return "an array";
		case cJSON_Object:
			return "an object";
	}
	return "an invalid value";
}

/* JSON whitespace plus the other ASCII spaces someone might type */
static bool
render_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		c == '\v';
}

static void
render_out_of_memory(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("cJSON could not allocate memory while rendering a job manifest.")));
}
