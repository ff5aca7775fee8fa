/*-------------------------------------------------------------------------
 *
 * cancel.c
 *	  Carrying out jobsched.cancel() for jobs whose Job may exist: delete
 *	  the Job with propagationPolicy=Background, so its pods go too (the
 *	  batch/v1 default orphans them), and only the Job with the uid the row
 *	  recorded, never one that took its name since; then record the row as
 *	  cancelled.
 *
 *	  jobsched.cancel() marks the row; its commit bumps a counter in shared
 *	  memory and wakes the worker (wake.c), which then scans for marked
 *	  rows; it also scans every sync_interval.  A pending row is cancelled
 *	  by cancel() itself and never gets here, unless a create of it may
 *	  have reached the API unseen: then its Job is looked up by name and,
 *	  if its proof holds for this row, deleted.  A row cancelled while
 *	  claimed gets here once its create is recorded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cancel.h"
#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"

#define CANCEL_BATCH 100

static MemoryContext cancel_cxt = NULL;
static int	cancel_in_flight = 0;
static bool cancel_due = true;
static TimestampTz cancel_last_scan = 0;

static void cancel_delete_done(KubeRequest *req);
static void cancel_lookup_done(KubeRequest *req);

void
jobsched_cancel_init(void)
{
	cancel_cxt = AllocSetContextCreate(TopMemoryContext, "jobsched cancel",
									   ALLOCSET_DEFAULT_SIZES);
}

void
jobsched_cancel_wake(void)
{
	cancel_due = true;
}

void
jobsched_cancel_reset(void)
{
	/* the requests themselves were abandoned with the rest */
	MemoryContextReset(cancel_cxt);
	cancel_in_flight = 0;
	cancel_due = true;
}

static void
cancel_record(int64 id, const char *error)
{
	/* someone holding the row makes the next scan find it again */
	if (jobsched_queue_begin("recording a cancellation") == QUEUE_READY)
		(void) jobsched_queue_record_cancelled(id, error);
	jobsched_queue_end();
}

static void
cancel_start(JobschedDoomedJob *job, KubeMethod method, const char *body,
			 KubeDoneCallback on_done)
{
	MemoryContext old = MemoryContextSwitchTo(cancel_cxt);
	char	   *path = psprintf("/apis/batch/v1/namespaces/%s/jobs/%s",
								job->namespace, job->name);
	KubeRequest *req = jobsched_kube_request_new(method, path, body, on_done, job, 0);

	MemoryContextSwitchTo(old);
	jobsched_kube_request_start(req);
	cancel_in_flight++;
}

static void
cancel_request_done(KubeRequest *req)
{
	jobsched_kube_request_free(req);
	if (--cancel_in_flight == 0)
		MemoryContextReset(cancel_cxt);
}

/* Delete the Job with this uid. */
static void
cancel_delete(JobschedDoomedJob *job, const char *uid)
{
	char	   *body = jobsched_kube_delete_options(uid);

	if (body == NULL)
	{
		cancel_record(job->id, "could not delete the Job to cancel it: its uid is not one the API server makes");
		return;
	}
	cancel_start(job, KUBE_DELETE, body, cancel_delete_done);
}

static void
cancel_delete_done(KubeRequest *req)
{
	JobschedDoomedJob *job = (JobschedDoomedJob *) req->owner;
	long		status = req->http_status;

	/*
	 * Deleted, already gone, or 409: the precondition failed, so the name
	 * now belongs to another Job and ours is gone.
	 */
	if (req->curl_result == 0 &&
		(status == 200 || status == 202 || status == 404 || status == 409))
	{
		ereport(LOG,
				(errmsg("job " INT64_FORMAT " cancelled; its Job \"%s\" is deleted",
						job->id, job->name)));
		cancel_record(job->id, NULL);
	}
	else
	{
		char	   *msg = psprintf("could not delete the Job to cancel it: %s",
								   jobsched_kube_describe_failure(req));

		jobsched_shmem_set_error(msg);
		cancel_record(job->id, jobsched_clean_text(msg, 1000));
	}
	cancel_request_done(req);
}

/* A row without a uid: is the Job of that name this row's? */
static void
cancel_lookup_done(KubeRequest *req)
{
	JobschedDoomedJob *job = (JobschedDoomedJob *) req->owner;
	long		status = req->http_status;

	if (req->curl_result == 0 && status == 200)
	{
		cJSON	   *root = jobsched_kobject_parse(req);
		char	   *uid = jobsched_kobject_string(root, "metadata", "uid", NULL);
		int			run;
		TimestampTz created_at;
		bool		legacy;

		if (jobsched_kobject_proven(root, job->name, job->id, &run, &created_at, &legacy) &&
			(legacy ? job->created_at < jobsched_labels_trusted_before() :
			 (run == job->run && created_at == job->created_at)) && uid)
		{
			uid = pstrdup(uid);
			cJSON_Delete(root);
			cancel_delete(job, uid);
		}
		else
		{
			/* the Job of that name is someone else's: this row has none */
			cJSON_Delete(root);
			cancel_record(job->id, NULL);
		}
	}
	else if (req->curl_result == 0 && status == 404)
		cancel_record(job->id, NULL);
	else
		jobsched_shmem_set_error(psprintf("could not look up a Job to cancel it: %s",
										  jobsched_kube_describe_failure(req)));
	cancel_request_done(req);
}

/*
 * Delete the Jobs of rows marked for cancelling.  Returns the ms until the
 * next scan is due.
 */
long
jobsched_cancel_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_scan;
	JobschedDoomedJob *jobs = NULL;
	int			n = 0;
	int			i;

	if (!jobsched_enabled)
		return -1;
	/* computed each time, so a lowered sync_interval applies at once */
	next_scan = cancel_last_scan + (TimestampTz) jobsched_sync_interval * 1000;
	if ((cancel_due || now >= next_scan) && cancel_in_flight == 0)
	{
		char	   *namespace = jobsched_guc_namespace();

		cancel_due = false;
		cancel_last_scan = now;
		next_scan = now + (TimestampTz) jobsched_sync_interval * 1000;
		if (jobsched_queue_begin("reading cancel requests") == QUEUE_READY)
			n = jobsched_queue_cancel_requests(CANCEL_BATCH, namespace, cancel_cxt, &jobs);
		jobsched_queue_end();

		for (i = 0; i < n; i++)
		{
			if (jobs[i].uid)
				cancel_delete(&jobs[i], jobs[i].uid);
			else
				cancel_start(&jobs[i], KUBE_GET, NULL, cancel_lookup_done);
		}
		/* a full batch: more may wait */
		if (n == CANCEL_BATCH)
			cancel_due = true;
	}
	return jobsched_ms_until(now, next_scan);
}
