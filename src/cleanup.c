/*-------------------------------------------------------------------------
 *
 * cleanup.c
 *	  Deleting old Jobs and the pods they leave behind.
 *
 *	  Every jobsched.cleanup_interval, for each namespace this database
 *	  uses: list the Jobs (paginated; by default only this database's, by
 *	  its instance label; jobsched.cleanup_selector widens that), delete
 *	  those created longer than jobsched.cleanup_age ago with
 *	  propagationPolicy=Background, so their pods go too; then list the
 *	  pods of Jobs and delete those whose Job was just deleted or no longer
 *	  exists and that are themselves that old.  Jobs cannot be filtered by
 *	  age on the server, so age is checked here, from creationTimestamp.
 *
 *	  A Job still active at that age is deleted too, unless
 *	  jobsched.cleanup_spare_active says otherwise, and its row says so.
 *	  Rows are never deleted here (see jobsched.purge()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"
#include "sync.h"

#define CLEANUP_PAGE_SIZE 500

typedef enum CleanupPhase
{
	CLEANUP_IDLE,
	CLEANUP_JOBS,				/* listing and deleting Jobs */
	CLEANUP_PODS				/* listing and deleting pods */
} CleanupPhase;

typedef struct CleanupName
{
	char		name[64];		/* hash key */
	bool		deleted;		/* deleted by this cleanup */
} CleanupName;

static MemoryContext cleanup_cxt = NULL;	/* one cleanup run */
static CleanupPhase cleanup_phase = CLEANUP_IDLE;
static TimestampTz cleanup_last_start = 0;
static TimestampTz cleanup_cutoff = 0;
static List *cleanup_namespaces = NIL;
static ListCell *cleanup_current = NULL;
static HTAB *cleanup_jobs = NULL;	/* Jobs seen in the current namespace */
static KubeRequest *cleanup_list_req = NULL;
static int	cleanup_deletes_in_flight = 0;
static bool cleanup_list_done = false;
static uint64 cleanup_jobs_deleted = 0;
static uint64 cleanup_pods_deleted = 0;

static void cleanup_list_jobs_done(KubeRequest *req);
static void cleanup_list_pods_done(KubeRequest *req);

void
jobsched_cleanup_init(void)
{
	cleanup_cxt = AllocSetContextCreate(TopMemoryContext, "jobsched cleanup",
										ALLOCSET_DEFAULT_SIZES);
}

void
jobsched_cleanup_reset(void)
{
	MemoryContextReset(cleanup_cxt);
	cleanup_phase = CLEANUP_IDLE;
	cleanup_namespaces = NIL;
	cleanup_current = NULL;
	cleanup_jobs = NULL;
	cleanup_list_req = NULL;
	cleanup_deletes_in_flight = 0;
	/* the next run comes at the interval: the error may repeat */
	cleanup_last_start = GetCurrentTimestamp();
}

/* The label selector for Jobs, URL-encoded; palloc'd. */
static char *
cleanup_job_selector(void)
{
	const char *raw = jobsched_cleanup_selector;

	if (raw == NULL || raw[0] == '\0')
		return psprintf("jobsched.io%%2Finstance%%3D%s", jobsched_instance_id());
	if (strcmp(raw, "*") == 0)
		return pstrdup("");
	return jobsched_kube_escape(raw);
}

static const char *
cleanup_namespace(void)
{
	return (const char *) lfirst(cleanup_current);
}

static void
cleanup_start_list(const char *continue_token)
{
	MemoryContext old = MemoryContextSwitchTo(cleanup_cxt);
	char	   *selector;
	char	   *path;

	if (cleanup_phase == CLEANUP_JOBS)
	{
		selector = cleanup_job_selector();
		path = psprintf("/apis/batch/v1/namespaces/%s/jobs?limit=%d&labelSelector=%s",
						cleanup_namespace(), CLEANUP_PAGE_SIZE, selector);
	}
	else
	{
		/* the pods of Jobs: they carry the job-name label */
		selector = cleanup_job_selector();
		path = psprintf("/api/v1/namespaces/%s/pods?limit=%d&labelSelector=%s%sbatch.kubernetes.io%%2Fjob-name",
						cleanup_namespace(), CLEANUP_PAGE_SIZE, selector,
						selector[0] ? "%2C" : "");
	}
	if (continue_token)
		path = psprintf("%s&continue=%s", path, jobsched_kube_escape(continue_token));
	cleanup_list_req = jobsched_kube_request_new(KUBE_GET, path, NULL,
												 cleanup_phase == CLEANUP_JOBS ?
												 cleanup_list_jobs_done : cleanup_list_pods_done,
												 NULL, 0);
	MemoryContextSwitchTo(old);
	cleanup_list_done = false;
	jobsched_kube_request_start(cleanup_list_req);
}

/* Move to the next namespace, or the next phase, or finish. */
static void
cleanup_advance(void)
{
	if (cleanup_list_req != NULL || cleanup_deletes_in_flight > 0 || !cleanup_list_done)
		return;

	if (cleanup_phase == CLEANUP_JOBS)
	{
		cleanup_phase = CLEANUP_PODS;
		cleanup_start_list(NULL);
		return;
	}

	cleanup_current = lnext(cleanup_namespaces, cleanup_current);
	if (cleanup_current != NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = 64;
		ctl.entrysize = sizeof(CleanupName);
		ctl.hcxt = cleanup_cxt;
		cleanup_jobs = hash_create("jobsched cleanup jobs", 256, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		cleanup_phase = CLEANUP_JOBS;
		cleanup_start_list(NULL);
		return;
	}

	/* done with every namespace */
	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->last_cleanup_at = GetCurrentTimestamp();
	jobsched_shared->last_cleanup_jobs_deleted = cleanup_jobs_deleted;
	jobsched_shared->last_cleanup_pods_deleted = cleanup_pods_deleted;
	SpinLockRelease(&jobsched_shared->mutex);
	if (cleanup_jobs_deleted > 0 || cleanup_pods_deleted > 0)
		ereport(LOG,
				(errmsg("jobsched: cleanup deleted " UINT64_FORMAT " Jobs and " UINT64_FORMAT " pods",
						cleanup_jobs_deleted, cleanup_pods_deleted)));
	MemoryContextReset(cleanup_cxt);
	cleanup_namespaces = NIL;
	cleanup_current = NULL;
	cleanup_jobs = NULL;
	cleanup_phase = CLEANUP_IDLE;
}

/* A list failed: give up this run; the next one comes at the interval. */
static void
cleanup_abort(KubeRequest *req)
{
	char	   *why = jobsched_kube_describe_failure(req);

	jobsched_shmem_set_error(psprintf("cleanup: %s", why));
	ereport(LOG,
			(errmsg("jobsched: cleanup of namespace \"%s\" stopped", cleanup_namespace()),
			 errdetail_internal("%s", why)));
}

/* Created before the cutoff?  Unparsable timestamps count as young. */
static bool
cleanup_is_old(cJSON *obj)
{
	char	   *created = jobsched_kobject_string(obj, "metadata", "creationTimestamp", NULL);
	Datum		ts;

	if (created == NULL)
		return false;
	ts = DirectFunctionCall3(timestamptz_in, CStringGetDatum(created),
							 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	return DatumGetTimestampTz(ts) < cleanup_cutoff;
}

/*
 * The Job as the API deleted it, if the answer carries it: a Job that
 * finished between our list and our delete was not active after all.
 */
static bool
cleanup_was_active(const KubeRequest *req, bool listed_active)
{
	cJSON	   *root;
	bool		active = listed_active;

	if (!listed_active || req->response == NULL)
		return listed_active;
	root = cJSON_Parse(req->response);
	if (jobsched_kobject_finished(root, NULL) != NULL)
		active = false;
	cJSON_Delete(root);
	return active;
}

typedef struct CleanupDelete
{
	int64		job_id;			/* our row, or 0 */
	bool		active;
	bool		is_pod;
} CleanupDelete;

static void
cleanup_delete_done(KubeRequest *req)
{
	CleanupDelete *d = (CleanupDelete *) req->owner;
	long		status = req->http_status;

	cleanup_deletes_in_flight--;
	if (req->curl_result == 0 && (status == 200 || status == 202 || status == 404))
	{
		if (d->is_pod)
			cleanup_pods_deleted++;
		else
		{
			cleanup_jobs_deleted++;
			if (d->job_id != 0)
			{
				char	   *msg = psprintf("deleted by cleanup while still active, more than %d s after it was created (jobsched.cleanup_age)",
										   jobsched_cleanup_age);

				if (jobsched_queue_begin("jobsched: recording cleanup"))
					jobsched_queue_record_cleanup(d->job_id, cleanup_was_active(req, d->active),
												  msg);
				jobsched_queue_end();
			}
		}
	}
	else
		jobsched_shmem_set_error(psprintf("cleanup: %s", jobsched_kube_describe_failure(req)));
	jobsched_kube_request_free(req);
	cleanup_advance();
}

static void
cleanup_delete(const char *path, int64 job_id, bool active, bool is_pod)
{
	MemoryContext old = MemoryContextSwitchTo(cleanup_cxt);
	CleanupDelete *d = palloc0(sizeof(CleanupDelete));
	KubeRequest *req;

	d->job_id = job_id;
	d->active = active;
	d->is_pod = is_pod;
	req = jobsched_kube_request_new(KUBE_DELETE, path, NULL, cleanup_delete_done, d, 0);
	MemoryContextSwitchTo(old);
	cleanup_deletes_in_flight++;
	jobsched_kube_request_start(req);
}

/*
 * A page of a list arrived: its parsed body, or NULL after giving up on
 * this namespace (the request is then freed, and the run moves on).
 */
static cJSON *
cleanup_page(KubeRequest *req)
{
	cJSON	   *root = jobsched_kobject_parse(req);

	cleanup_list_req = NULL;
	if (root != NULL)
		return root;
	cleanup_abort(req);
	jobsched_kube_request_free(req);
	cleanup_phase = CLEANUP_PODS;	/* skip to this namespace's end */
	cleanup_list_done = true;
	cleanup_advance();
	return NULL;
}

/* After a page: ask for the next one, or note the list is complete. */
static void
cleanup_page_done(KubeRequest *req, cJSON *root)
{
	char	   *next = jobsched_kobject_string(root, "metadata", "continue", NULL);

	if (next && next[0] != '\0')
		cleanup_start_list(pstrdup(next));
	else
		cleanup_list_done = true;
	cJSON_Delete(root);
	jobsched_kube_request_free(req);
	cleanup_advance();
}

static void
cleanup_list_jobs_done(KubeRequest *req)
{
	cJSON	   *root = cleanup_page(req);
	cJSON	   *item;

	if (root == NULL)
		return;

	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "items"))
	{
		char	   *name = jobsched_kobject_string(item, "metadata", "name", NULL);
		CleanupName *entry;
		bool		found;
		bool		active;

		if (name == NULL || strlen(name) >= 64)
			continue;
		entry = hash_search(cleanup_jobs, name, HASH_ENTER, &found);
		entry->deleted = false;
		if (!cleanup_is_old(item))
			continue;
		active = (jobsched_kobject_finished(item, NULL) == NULL);
		if (active && jobsched_cleanup_spare_active)
			continue;
		entry->deleted = true;
		cleanup_delete(psprintf("/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background",
								cleanup_namespace(), name),
					   jobsched_kobject_job_id(item), active, false);
	}
	cleanup_page_done(req, root);
}

static void
cleanup_list_pods_done(KubeRequest *req)
{
	cJSON	   *root = cleanup_page(req);
	cJSON	   *item;

	if (root == NULL)
		return;

	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "items"))
	{
		char	   *name = jobsched_kobject_string(item, "metadata", "name", NULL);
		char	   *job = jobsched_kobject_string(item, "metadata", "labels",
												  "batch.kubernetes.io/job-name");
		CleanupName *entry;

		if (name == NULL || job == NULL || strlen(job) >= 64)
			continue;
		entry = hash_search(cleanup_jobs, job, HASH_FIND, NULL);
		/* a pod of a Job just deleted, or an old pod whose Job is gone */
		if ((entry && entry->deleted) || (entry == NULL && cleanup_is_old(item)))
			cleanup_delete(psprintf("/api/v1/namespaces/%s/pods/%s",
									cleanup_namespace(), name),
						   0, false, true);
	}
	cleanup_page_done(req, root);
}

/* Start a cleanup run when one is due.  Returns ms until the next one. */
long
jobsched_cleanup_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_run;
	bool		ready;
	HASHCTL		ctl;

	if (!jobsched_enabled)
		return -1;
	/* computed each time, so a reloaded interval applies at once */
	next_run = cleanup_last_start + (TimestampTz) jobsched_cleanup_interval * USECS_PER_SEC;
	if (cleanup_phase == CLEANUP_IDLE && now >= next_run)
	{
		char	   *default_ns = jobsched_guc_namespace();

		cleanup_last_start = now;
		next_run = now + (TimestampTz) jobsched_cleanup_interval * USECS_PER_SEC;
		cleanup_cutoff = now - (TimestampTz) jobsched_cleanup_age * USECS_PER_SEC;
		cleanup_jobs_deleted = cleanup_pods_deleted = 0;

		ready = jobsched_queue_begin("jobsched: listing namespaces for cleanup");
		if (ready)
			cleanup_namespaces = jobsched_queue_namespaces(default_ns, cleanup_cxt);
		jobsched_queue_end();
		if (!ready || cleanup_namespaces == NIL)
			return jobsched_cleanup_interval * 1000L;

		ctl.keysize = 64;
		ctl.entrysize = sizeof(CleanupName);
		ctl.hcxt = cleanup_cxt;
		cleanup_jobs = hash_create("jobsched cleanup jobs", 256, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		cleanup_current = list_head(cleanup_namespaces);
		cleanup_phase = CLEANUP_JOBS;
		cleanup_start_list(NULL);
	}
	if (cleanup_phase != CLEANUP_IDLE)
		return -1;				/* the answers wake us */
	return jobsched_ms_until(now, next_run);
}
