/*-------------------------------------------------------------------------
 *
 * kobject.c
 *	  Reading the Kubernetes objects the API answers with: fields by path,
 *	  times, whether a Job has finished, and whether an object is provably
 *	  one this installation made for a given row.
 *
 *	  Everything here reads untrusted input: anyone who can create Jobs in
 *	  a namespace can put anything in one.  Nothing here throws on bad
 *	  input; it is treated as absent.
 *
 *	  In the worker, cJSON allocates in the current memory context (see
 *	  jobsched_kobject_init), so a tree held when an ERROR is thrown goes
 *	  with the context the error recovery resets, like any palloc'd memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "jobsched.h"
#include "kobject.h"

/*
 * cJSON expects NULL when memory runs out, so an ERROR must never jump out
 * of it: no ereport here.
 */
static void *
kobject_json_alloc(size_t size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
kobject_json_free(void *pointer)
{
	if (pointer != NULL)
		pfree(pointer);
}

/*
 * Make cJSON allocate with palloc, in the worker only: the hooks are
 * global to the process, and a backend may load other libraries that use
 * cJSON.  Every tree must then be deleted within the memory context (and
 * SPI connection) it was made in, which is the case: trees live for one
 * callback or one function.
 */
void
jobsched_kobject_init(void)
{
	cJSON_Hooks hooks = {kobject_json_alloc, kobject_json_free};

	cJSON_InitHooks(&hooks);
}

/* obj.a.b.c (b and c may be NULL); NULL when any step is missing. */
cJSON *
jobsched_kobject_get(cJSON *obj, const char *a, const char *b, const char *c)
{
	cJSON	   *node = obj;

	if (node && a)
		node = cJSON_GetObjectItemCaseSensitive(node, a);
	if (node && b)
		node = cJSON_GetObjectItemCaseSensitive(node, b);
	if (node && c)
		node = cJSON_GetObjectItemCaseSensitive(node, c);
	return node;
}

/* The string at obj.a.b.c, or NULL if there is none. */
char *
jobsched_kobject_string(cJSON *obj, const char *a, const char *b, const char *c)
{
	cJSON	   *node = jobsched_kobject_get(obj, a, b, c);

	return cJSON_IsString(node) ? node->valuestring : NULL;
}

/* n digits at s, as a number; -1 if they are not all digits */
static int
kobject_digits(const char *s, int n)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * An RFC 3339 time as Kubernetes writes them (metav1.Time and MicroTime:
 * "2006-01-02T15:04:05Z", optionally with a fraction and a numeric zone),
 * or 0 for anything else.
 */
TimestampTz
jobsched_kobject_parse_time(const char *s)
{
	int			year,
				mon,
				day,
				hour,
				min,
				sec;
	int64		usec = 0;
	int			offset = 0;
	const char *p;

	if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return 0;
	year = kobject_digits(s, 4);
	mon = kobject_digits(s + 5, 2);
	day = kobject_digits(s + 8, 2);
	hour = kobject_digits(s + 11, 2);
	min = kobject_digits(s + 14, 2);
	sec = kobject_digits(s + 17, 2);
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > day_tab[isleap(year)][mon - 1] ||
		hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
		return 0;
	p = s + 19;
	if (*p == '.')
	{
		int			scale = 100000;

		for (p++; *p >= '0' && *p <= '9'; p++)
		{
			usec += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if ((*p == '+' || *p == '-') && kobject_digits(p + 1, 2) >= 0 && p[3] == ':' &&
			 kobject_digits(p + 4, 2) >= 0)
	{
		offset = (kobject_digits(p + 1, 2) * 60 + kobject_digits(p + 4, 2)) * 60;
		if (*p == '-')
			offset = -offset;
		p += 6;
	}
	else
		return 0;
	if (*p != '\0')
		return 0;

	return ((int64) (date2j(year, mon, day) - POSTGRES_EPOCH_JDATE) * SECS_PER_DAY +
			hour * SECS_PER_HOUR + min * SECS_PER_MINUTE + sec - offset) * USECS_PER_SEC +
		usec;
}

/* The time at obj.a.b.c, or 0. */
TimestampTz
jobsched_kobject_time(cJSON *obj, const char *a, const char *b, const char *c)
{
	return jobsched_kobject_parse_time(jobsched_kobject_string(obj, a, b, c));
}

/*
 * A Job has finished only when a Complete or Failed condition is True.
 * Returns that condition (and which it is), or NULL.
 */
cJSON *
jobsched_kobject_finished(cJSON *job, bool *succeeded)
{
	cJSON	   *cond;

	cJSON_ArrayForEach(cond, jobsched_kobject_get(job, "status", "conditions", NULL))
	{
		char	   *type = jobsched_kobject_string(cond, "type", NULL, NULL);
		char	   *truth = jobsched_kobject_string(cond, "status", NULL, NULL);

		if (type == NULL || truth == NULL || strcmp(truth, "True") != 0)
			continue;
		if (strcmp(type, "Complete") == 0 || strcmp(type, "Failed") == 0)
		{
			if (succeeded)
				*succeeded = (type[0] == 'C');
			return cond;
		}
	}
	return NULL;
}

/*
 * The row id in the labels of an object this installation made (its
 * job-id label, with our instance label), or 0 for anyone else's.  Labels
 * select; they prove nothing (see jobsched_kobject_proven).
 */
int64
jobsched_kobject_job_id(cJSON *obj)
{
	cJSON	   *labels = jobsched_kobject_get(obj, "metadata", "labels", NULL);
	char	   *id = jobsched_kobject_string(labels, JOBSCHED_LABEL_JOB_ID, NULL, NULL);
	char	   *instance = jobsched_kobject_string(labels, JOBSCHED_LABEL_INSTANCE, NULL, NULL);
	char	   *end;
	int64		value;

	if (id == NULL || instance == NULL || strcmp(instance, jobsched_instance_id()) != 0)
		return 0;
	errno = 0;
	value = strtoi64(id, &end, 10);
	if (errno != 0 || *end != '\0' || value <= 0)
		return 0;
	return value;
}

/*
 * Is this object (a Job, or a pod of one: job_name says whose) provably
 * one this installation made for row id?  Its proof annotation must hold
 * for its namespace, the Job's name and the id; then *run and *created_at
 * say which run of the row, created when, it vouches for, and the caller
 * must match those against the row.  An object created before this
 * installation signed its Jobs (an update from 1.0) counts by its labels:
 * *legacy is then set and run and created_at are unknown.
 */
bool
jobsched_kobject_proven(cJSON *obj, const char *job_name, int64 id,
						int *run, TimestampTz *created_at, bool *legacy)
{
	char	   *proof = jobsched_kobject_string(obj, "metadata", "annotations",
												JOBSCHED_ANNOTATION_PROOF);
	char	   *namespace = jobsched_kobject_string(obj, "metadata", "namespace", NULL);
	TimestampTz trusted_before = jobsched_labels_trusted_before();

	*legacy = false;
	*run = 0;
	*created_at = 0;
	if (id <= 0 || job_name == NULL)
		return false;
	if (jobsched_proof_check(proof, namespace, job_name, id, run, created_at))
		return true;
	if (trusted_before != 0 && jobsched_kobject_job_id(obj) == id)
	{
		TimestampTz created = jobsched_kobject_time(obj, "metadata", "creationTimestamp", NULL);

		if (created != 0 && created < trusted_before)
		{
			*legacy = true;
			return true;
		}
	}
	return false;
}

/* The parsed body of a 200 answer, or NULL.  The caller cJSON_Deletes it. */
cJSON *
jobsched_kobject_parse(const KubeRequest *req)
{
	if (req->curl_result != 0 || req->http_status != 200 || req->response == NULL)
		return NULL;
	return cJSON_Parse(req->response);
}
