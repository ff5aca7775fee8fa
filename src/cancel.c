/*-------------------------------------------------------------------------
 *
 * cancel.c
 *	  Carrying out jobsched.cancel() for jobs whose Job exists: delete the
 *	  Job with propagationPolicy=Background, so its pods go too (the batch/v1
 *	  default orphans them), then record the row as cancelled.
 *
 *	  jobsched.cancel() marks the row; its commit bumps a counter in shared
 *	  memory and wakes the worker (wake.c), which then scans for marked
 *	  rows; it also scans every sync_interval.  A
 *	  pending row is cancelled by cancel() itself and never gets here; a
 *	  row cancelled while claimed gets here once its create is recorded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "jobsched.h"
#include "kube.h"
#include "queue.h"
#include "sync.h"

#define CANCEL_BATCH 100

static MemoryContext cancel_cxt = NULL;
static int	cancel_in_flight = 0;
static bool cancel_due = true;
static TimestampTz cancel_next_scan = 0;

static void cancel_done(KubeRequest *req);

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
	if (jobsched_queue_begin("jobsched: recording a cancellation"))
		jobsched_queue_record_cancelled(id, error);
	jobsched_queue_end();
}

static void
cancel_done(KubeRequest *req)
{
	JobschedDoomedJob *job = (JobschedDoomedJob *) req->owner;
	long		status = req->http_status;

	/* deleted, or already gone: either way the Job is no more */
	if (req->curl_result == 0 && (status == 200 || status == 202 || status == 404))
	{
		ereport(LOG,
				(errmsg("jobsched: job " INT64_FORMAT " cancelled; its Job \"%s\" was deleted",
						job->id, job->name)));
		cancel_record(job->id, NULL);
	}
	else
	{
		char	   *why = jobsched_kube_describe_failure(req);
		char	   *msg = psprintf("could not delete the Job to cancel it: %s", why);

		jobsched_shmem_set_error(msg);
		cancel_record(job->id, msg);
	}
	jobsched_kube_request_free(req);
	if (--cancel_in_flight == 0)
		MemoryContextReset(cancel_cxt);
}

/*
 * Delete the Jobs of rows marked for cancelling.  Returns the ms until the
 * next scan is due.
 */
long
jobsched_cancel_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	JobschedDoomedJob *jobs = NULL;
	int			n = 0;
	int			i;
	bool		ready;

	if (!jobsched_enabled)
		return -1;
	if ((cancel_due || now >= cancel_next_scan) && cancel_in_flight == 0)
	{
		cancel_due = false;
		cancel_next_scan = TimestampTzPlusMilliseconds(now, jobsched_sync_interval);
		ready = jobsched_queue_begin("jobsched: reading cancel requests");
		if (ready)
			n = jobsched_queue_cancel_requests(CANCEL_BATCH, cancel_cxt, &jobs);
		jobsched_queue_end();

		for (i = 0; i < n; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(cancel_cxt);
			char	   *path = psprintf("/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background",
										jobs[i].namespace, jobs[i].name);
			KubeRequest *req = jobsched_kube_request_new(KUBE_DELETE, path, NULL,
														 cancel_done, &jobs[i], 0);

			MemoryContextSwitchTo(old);
			jobsched_kube_request_start(req);
			cancel_in_flight++;
		}
		/* a full batch: more may wait */
		if (n == CANCEL_BATCH)
			cancel_due = true;
	}
	return jobsched_ms_until(now, cancel_next_scan);
}
