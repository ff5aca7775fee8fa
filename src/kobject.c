/*-------------------------------------------------------------------------
 *
 * kobject.c
 *	  Reading the Kubernetes objects the API answers with: fields by path,
 *	  whether a Job has finished, and whether an object is one of ours.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "jobsched.h"
#include "kobject.h"
#include "render.h"

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
 * The row id of an object this database made (its job-id label, with our
 * instance label), or 0 for anyone else's.
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

/* The parsed body of a 200 answer, or NULL.  The caller cJSON_Deletes it. */
cJSON *
jobsched_kobject_parse(const KubeRequest *req)
{
	if (req->curl_result != 0 || req->http_status != 200 || req->response == NULL)
		return NULL;
	return cJSON_Parse(req->response);
}
