/*-------------------------------------------------------------------------
 *
 * cleanup.c
 *	  Deleting old Jobs and the pods they leave behind.
 *
 *	  Every jobsched.cleanup_interval, for each namespace this database
 *	  uses: list the Jobs (paginated; by default only this installation's,
 *	  by its instance label; jobsched.cleanup_selector widens that), delete
 *	  those created longer than jobsched.cleanup_age ago with
 *	  propagationPolicy=Background, so their pods go too; then list the
 *	  pods of Jobs and delete those whose Job was just deleted or no longer
 *	  exists and that are themselves that old.  Jobs cannot be filtered by
 *	  age on the server, so age is checked here, from creationTimestamp.
 *
 *	  By default only objects whose proof holds (naming.c) are deleted, not
 *	  whatever carries our labels; every delete names the uid it means
 *	  (preconditions), so an object that took a name since is never hit.
 *	  A Job still active at that age is deleted too, unless
 *	  jobsched.cleanup_spare_active says otherwise, and its row says so.
 *	  Rows are never deleted here (see jobsched.purge()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cleanup.h"
#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"

#define CLEANUP_PAGE_SIZE	500

typedef enum CleanupPhase
{
	CLEANUP_IDLE,
	CLEANUP_JOBS,				/* listing and deleting Jobs */
	CLEANUP_PODS				/* listing and deleting pods */
} CleanupPhase;

typedef struct CleanupName
{
	char		name[JOBSCHED_NAME_MAX + 1];	/* hash key */
	bool		deleted;		/* deleted by this cleanup */
} CleanupName;

typedef struct CleanupDelete
{
	JobschedJobStatus job;		/* our row's Job (id 0: none) */
	bool		active;
	bool		is_pod;
} CleanupDelete;

static MemoryContext cleanup_cxt = NULL;	/* one cleanup run */
static CleanupPhase cleanup_phase = CLEANUP_IDLE;
static TimestampTz cleanup_last_start = 0;
static TimestampTz cleanup_cutoff = 0;
static List *cleanup_namespaces = NIL;
static ListCell *cleanup_current = NULL;
static HTAB *cleanup_jobs = NULL;	/* Jobs seen in the current namespace */
static KubeRequest *cleanup_list_req = NULL;
static char *cleanup_continue = NULL;
static int	cleanup_page_limit = CLEANUP_PAGE_SIZE;
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

/* Let go of a run's state, and all its memory. */
static void
cleanup_forget_run(void)
{
	MemoryContextReset(cleanup_cxt);
	cleanup_phase = CLEANUP_IDLE;
	cleanup_namespaces = NIL;
	cleanup_current = NULL;
	cleanup_jobs = NULL;
	cleanup_continue = NULL;
}

void
jobsched_cleanup_reset(void)
{
	cleanup_forget_run();
	cleanup_list_req = NULL;
	cleanup_deletes_in_flight = 0;
	/* the next run comes at the interval: the error may repeat */
	cleanup_last_start = GetCurrentTimestamp();
}

/* Only this installation's objects, unless cleanup_selector widens it. */
static bool
cleanup_only_ours(void)
{
	return jobsched_cleanup_selector == NULL || jobsched_cleanup_selector[0] == '\0';
}

/* The label selector for Jobs, URL-encoded; palloc'd. */
static char *
cleanup_job_selector(void)
{
	if (cleanup_only_ours())
		return jobsched_kube_instance_selector();
	if (strcmp(jobsched_cleanup_selector, "*") == 0)
		return pstrdup("");
	return jobsched_kube_escape(jobsched_cleanup_selector);
}

static const char *
cleanup_namespace(void)
{
	return (const char *) lfirst(cleanup_current);
}

/* Start on the Jobs of the current namespace. */
static void
cleanup_begin_namespace(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(((CleanupName *) 0)->name);
	ctl.entrysize = sizeof(CleanupName);
	ctl.hcxt = cleanup_cxt;
	cleanup_jobs = hash_create("jobsched cleanup jobs", 256, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	cleanup_phase = CLEANUP_JOBS;
	cleanup_continue = NULL;
}

/* Ask for the next page of Jobs or pods (cleanup_continue). */
static void
cleanup_start_list(void)
{
	MemoryContext old = MemoryContextSwitchTo(cleanup_cxt);
	char	   *selector = cleanup_job_selector();
	char	   *path;

	if (cleanup_phase == CLEANUP_JOBS)
		path = psprintf("/apis/batch/v1/namespaces/%s/jobs?limit=%d&labelSelector=%s",
						cleanup_namespace(), cleanup_page_limit, selector);
	else
		/* the pods of Jobs: they carry the job-name label */
		path = psprintf("/api/v1/namespaces/%s/pods?limit=%d&labelSelector=%s%sbatch.kubernetes.io%%2Fjob-name",
						cleanup_namespace(), cleanup_page_limit, selector,
						selector[0] ? "%2C" : "");
	if (cleanup_continue)
		path = psprintf("%s&continue=%s", path, jobsched_kube_escape(cleanup_continue));
	cleanup_list_req = jobsched_kube_request_new(KUBE_GET, path, NULL,
												 cleanup_phase == CLEANUP_JOBS ?
												 cleanup_list_jobs_done : cleanup_list_pods_done,
												 NULL, 0);
	if (cleanup_page_limit == 1)
		cleanup_list_req->max_response = KUBE_BIG_RESPONSE;
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
		cleanup_continue = NULL;
		cleanup_start_list();
		return;
	}

	cleanup_current = lnext(cleanup_namespaces, cleanup_current);
	if (cleanup_current != NULL)
	{
		cleanup_begin_namespace();
		cleanup_start_list();
		return;
	}

	/* done with every namespace */
	jobsched_shmem_set_cleanup(cleanup_jobs_deleted, cleanup_pods_deleted);
	if (cleanup_jobs_deleted > 0 || cleanup_pods_deleted > 0)
		ereport(LOG,
				(errmsg("cleanup deleted " UINT64_FORMAT " Jobs and " UINT64_FORMAT " pods",
						cleanup_jobs_deleted, cleanup_pods_deleted)));
	cleanup_forget_run();
}

/* Created before the cutoff?  Unreadable times count as young. */
static bool
cleanup_is_old(cJSON *obj)
{
	TimestampTz created = jobsched_kobject_time(obj, "metadata", "creationTimestamp", NULL);

	return created != 0 && created < cleanup_cutoff;
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
			if (d->job.id != 0)
			{
				char	   *msg = psprintf("deleted by cleanup while still active, more than %d s after it was created (jobsched.cleanup_age)",
										   jobsched_cleanup_age);

				if (jobsched_queue_begin("recording cleanup") == QUEUE_READY)
					jobsched_queue_record_cleanup(&d->job, cleanup_was_active(req, d->active),
												  msg);
				jobsched_queue_end();
			}
		}
	}
	else if (!(req->curl_result == 0 && status == 409))
		/* 409: the precondition failed; the object we meant is gone already */
		jobsched_shmem_set_error(psprintf("cleanup: %s", jobsched_kube_describe_failure(req)));
	jobsched_kube_request_free(req);
	cleanup_advance();
}

/* Delete an object (the one with this uid only). */
static void
cleanup_delete(const char *path, const char *uid, const CleanupDelete *what)
{
	MemoryContext old = MemoryContextSwitchTo(cleanup_cxt);
	char	   *body = jobsched_kube_delete_options(uid);
	CleanupDelete *d;
	KubeRequest *req;

	if (body == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	d = palloc(sizeof(CleanupDelete));
	*d = *what;
	if (d->job.id != 0)
	{
		d->job.uid = pstrdup(d->job.uid);
		d->job.name = NULL;
		d->job.namespace = NULL;
	}
	req = jobsched_kube_request_new(KUBE_DELETE, path, body, cleanup_delete_done, d, 0);
	MemoryContextSwitchTo(old);
	cleanup_deletes_in_flight++;
	jobsched_kube_request_start(req);
}

/*
 * A page of a list arrived: its parsed body, or NULL.  A page too large to
 * read is asked for again, smaller; a list that fails gives up this
 * namespace (the next run comes at the interval).
 */
static cJSON *
cleanup_page(KubeRequest *req)
{
	cJSON	   *root = jobsched_kobject_parse(req);

	cleanup_list_req = NULL;
	if (root != NULL)
		return root;
	if (req->overflow && cleanup_page_limit > 1)
	{
		cleanup_page_limit = Max(cleanup_page_limit / 2, 1);
		jobsched_kube_request_free(req);
		cleanup_start_list();
		return NULL;
	}
	jobsched_shmem_set_error(psprintf("cleanup: %s", jobsched_kube_describe_failure(req)));
	ereport(LOG,
			(errmsg("cleanup of namespace \"%s\" stopped", cleanup_namespace()),
			 errdetail_internal("%s", jobsched_kube_describe_failure(req))));
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

	cleanup_continue = (next && next[0] != '\0') ?
		MemoryContextStrdup(cleanup_cxt, next) : NULL;
	cJSON_Delete(root);
	jobsched_kube_request_free(req);
	if (cleanup_continue)
	{
		cleanup_page_limit = Min(cleanup_page_limit * 2, CLEANUP_PAGE_SIZE);
		cleanup_start_list();
	}
	else
		cleanup_list_done = true;
	cleanup_advance();
}

/*
 * May cleanup delete this object, and which row's is it?  By default only
 * a provably ours; with a wider selector, whatever it selected.  job_name
 * is the Job's name (for a pod, its job-name label).
 */
static bool
cleanup_may_delete(cJSON *obj, const char *job_name, JobschedJobStatus *ours)
{
	bool		legacy;

	memset(ours, 0, sizeof(*ours));
	ours->id = jobsched_kobject_job_id(obj);
	if (ours->id != 0 &&
		jobsched_kobject_proven(obj, job_name, ours->id, &ours->run, &ours->created_at, &legacy))
	{
		ours->proven = !legacy;
		ours->uid = jobsched_kobject_string(obj, "metadata", "uid", NULL);
		return true;
	}
	ours->id = 0;
	return !cleanup_only_ours();
}

/* What to do with one listed object that has a name and a uid. */
typedef void (*CleanupVisit) (cJSON *item, const char *name, const char *uid);

/* Visit every object of a page, then go on to the next page. */
static void
cleanup_visit_page(KubeRequest *req, CleanupVisit visit)
{
	cJSON	   *root = cleanup_page(req);
	cJSON	   *item;

	if (root == NULL)
		return;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "items"))
	{
		char	   *name = jobsched_kobject_string(item, "metadata", "name", NULL);
		char	   *uid = jobsched_kobject_string(item, "metadata", "uid", NULL);

		if (name != NULL && uid != NULL)
			visit(item, name, uid);
	}
	cleanup_page_done(req, root);
}

/* A Job: remember its name (for its pods), and delete it if it is due. */
static void
cleanup_visit_job(cJSON *item, const char *name, const char *uid)
{
	CleanupName *entry;
	CleanupDelete what;
	bool		found;

	if (strlen(name) > JOBSCHED_NAME_MAX)
		return;
	entry = hash_search(cleanup_jobs, name, HASH_ENTER, &found);
	entry->deleted = false;
	if (!cleanup_is_old(item) || !cleanup_may_delete(item, name, &what.job))
		return;
	what.active = (jobsched_kobject_finished(item, NULL) == NULL);
	what.is_pod = false;
	if (what.active && jobsched_cleanup_spare_active)
		return;
	entry->deleted = true;
	cleanup_delete(psprintf("/apis/batch/v1/namespaces/%s/jobs/%s",
							cleanup_namespace(), name),
				   uid, &what);
}

/* A pod of a Job just deleted, or an old pod whose Job is gone: delete it. */
static void
cleanup_visit_pod(cJSON *item, const char *name, const char *uid)
{
	char	   *job = jobsched_kobject_string(item, "metadata", "labels",
											  "batch.kubernetes.io/job-name");
	CleanupName *entry;
	CleanupDelete what;

	if (job == NULL || strlen(job) > JOBSCHED_NAME_MAX)
		return;
	entry = hash_search(cleanup_jobs, job, HASH_FIND, NULL);
	if (!((entry && entry->deleted) || (entry == NULL && cleanup_is_old(item))) ||
		!cleanup_may_delete(item, job, &what.job))
		return;
	what.job.id = 0;			/* a pod records nothing on the row */
	what.active = false;
	what.is_pod = true;
	cleanup_delete(psprintf("/api/v1/namespaces/%s/pods/%s", cleanup_namespace(), name),
				   uid, &what);
}

static void
cleanup_list_jobs_done(KubeRequest *req)
{
	cleanup_visit_page(req, cleanup_visit_job);
}

static void
cleanup_list_pods_done(KubeRequest *req)
{
	cleanup_visit_page(req, cleanup_visit_pod);
}

/* Start a cleanup run when one is due.  Returns ms until the next one. */
long
jobsched_cleanup_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_run;

	if (!jobsched_enabled)
		return -1;
	/* computed each time, so a reloaded interval applies at once */
	next_run = cleanup_last_start + (TimestampTz) jobsched_cleanup_interval * USECS_PER_SEC;
	if (cleanup_phase == CLEANUP_IDLE && now >= next_run)
	{
		char	   *default_ns = jobsched_guc_namespace();
		QueueState	state;

		cleanup_last_start = now;
		next_run = now + (TimestampTz) jobsched_cleanup_interval * USECS_PER_SEC;
		cleanup_cutoff = now - (TimestampTz) jobsched_cleanup_age * USECS_PER_SEC;
		cleanup_jobs_deleted = cleanup_pods_deleted = 0;
		cleanup_page_limit = CLEANUP_PAGE_SIZE;

		state = jobsched_queue_begin("listing namespaces for cleanup");
		if (state == QUEUE_READY)
			cleanup_namespaces = jobsched_queue_namespaces(default_ns, cleanup_cxt);
		jobsched_queue_end();
		if (state != QUEUE_READY || cleanup_namespaces == NIL)
			return jobsched_ms_until(now, next_run);

		cleanup_current = list_head(cleanup_namespaces);
		cleanup_begin_namespace();
		cleanup_start_list();
	}
	if (cleanup_phase != CLEANUP_IDLE)
		return -1;				/* the answers wake us */
	return jobsched_ms_until(now, next_run);
}
