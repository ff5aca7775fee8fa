/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *	  From claimed rows to Kubernetes Jobs.
 *
 *	  One pass claims a batch of due pending rows (queue.c), renders each
 *	  template (render.c) and starts the creates (kube.c), at most
 *	  jobsched.max_in_flight at a time.  As answers arrive each job gets an
 *	  outcome; outcomes are recorded in one short transaction when the
 *	  work in hand is done, when many have piled up, or after a few
 *	  milliseconds.  What an answer means:
 *
 *	  - 2xx: submitted.  409: look the Job up; ours (labels) is submitted,
 *	    anyone else's fails the job.
 *	  - network, TLS, timeout, 5xx, 429: not the job's fault.  The job goes
 *	    back to pending with a backoff (Retry-After honoured) and fails
 *	    after jobsched.max_attempts such failures; submissions pause for
 *	    everyone, so an outage costs a few requests, not one per row.
 *	  - 401, 403, 404 (namespace): credentials or permissions, which an
 *	    operator fixes without touching the rows: pending with a backoff,
 *	    never failed.  A 401 also re-reads the token.
 *	  - other 4xx, and templates that cannot be rendered: failed, with the
 *	    reason in last_error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cJSON.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatch.h"
#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"
#include "render.h"
#include "sync.h"

/* request purposes */
#define DISPATCH_CREATE		1
#define DISPATCH_LOOKUP		2

/* flush outcomes once this many wait, or the oldest is this old */
#define DISPATCH_FLUSH_COUNT	256
#define DISPATCH_FLUSH_MS		10

/*
 * A claim that found several jobs, one or more for each this long since
 * the last claim, found them streaming in
 */
#define DISPATCH_STREAM_GAP_US	1000

/*
 * After this many jobs, a dispatcher that has found none for this long
 * gives free memory back (more than the longest claim_delay: not between
 * the claims of a stream, which would only take it back at once)
 */
#define DISPATCH_TRIM_JOBS		1000
#define DISPATCH_TRIM_IDLE_MS	2000

typedef enum DispatchFault
{
	FAULT_TRANSIENT,			/* network, 5xx, 429: retry, then fail */
	FAULT_CREDENTIALS,			/* 401, 403, 404: retry, never fail */
	FAULT_REJECTED				/* the job itself: fail now */
} DispatchFault;

/*
 * The jobs of one claim live in their own memory context until every one
 * of them has its outcome recorded.
 */
typedef struct JobschedBatch
{
	MemoryContext cxt;
	JobschedJob *jobs;
	int			njobs;
	int			next_unstarted; /* jobs[next_unstarted..] not sent yet */
	int			unrecorded;
	dlist_node	node;
} JobschedBatch;

static MemoryContext dispatch_cxt = NULL;
static int	dispatch_in_flight = 0;	/* our requests (not watches etc.) */
static dlist_head dispatch_batches = DLIST_STATIC_INIT(dispatch_batches);
static JobschedBatch *dispatch_current = NULL;

/* outcomes waiting to be recorded */
static JobschedJob **dispatch_outcomes = NULL;
static int	dispatch_noutcomes = 0;
static int	dispatch_outcomes_cap = 0;
static TimestampTz dispatch_first_outcome_at = 0;

/* extension installed and crash leftovers recovered */
static bool dispatch_ready = false;
static TimestampTz dispatch_next_ready_check = 0;

/* a wake-up came, or the last claim was full: rows may be due */
static bool dispatch_work_maybe = true;
/* no claim before this, while new jobs keep coming (claim_delay); 0: none */
static TimestampTz dispatch_claim_not_before = 0;
/* when the last claim ran, and when one last found jobs */
static TimestampTz dispatch_last_claim_at = 0;
static TimestampTz dispatch_last_found_at = 0;
/* jobs whose batches were freed since free memory was last given back */
static int	dispatch_freed_since_trim = 0;
static TimestampTz dispatch_next_poll = 0;
/* the earliest a pending row falls due (retry_at, run_after); 0: none known */
static TimestampTz dispatch_next_due = 0;

/* submissions paused after an API-wide failure */
static TimestampTz dispatch_paused_until = 0;
static int	dispatch_consecutive_failures = 0;

static void dispatch_create_done(KubeRequest *req);
static void dispatch_lookup_done(KubeRequest *req);

/* A pending row falls due then: make sure the worker looks no later. */
static void
dispatch_due_at(TimestampTz due)
{
	if (dispatch_next_due == 0 || due < dispatch_next_due)
		dispatch_next_due = due;
}

void
jobsched_dispatch_init(void)
{
	dispatch_cxt = AllocSetContextCreate(TopMemoryContext, "jobsched dispatch",
										 ALLOCSET_DEFAULT_SIZES);
}

/* A wake-up: rows may have become pending, or the extension installed. */
void
jobsched_dispatch_wake(void)
{
	dispatch_work_maybe = true;
	if (!dispatch_ready)
		dispatch_next_ready_check = 0;
}

/*
 * Forget all work in hand after an error.  The rows stay claimed; the
 * next pass puts them back to pending (their deterministic names make
 * the retried creates safe).
 */
void
jobsched_dispatch_reset(void)
{
	jobsched_kube_abandon_all();
	while (!dlist_is_empty(&dispatch_batches))
	{
		JobschedBatch *batch = dlist_container(JobschedBatch, node,
											   dlist_pop_head_node(&dispatch_batches));

		MemoryContextDelete(batch->cxt);
	}
	dispatch_current = NULL;
	dispatch_in_flight = 0;
	dispatch_noutcomes = 0;
	dispatch_ready = false;
	dispatch_next_ready_check = 0;
	dispatch_work_maybe = true;
	dispatch_claim_not_before = 0;
}

/* Exponential backoff with jitter, at least Retry-After. */
static int
dispatch_backoff_ms(int failures, int retry_after_s)
{
	double		delay;

	delay = jobsched_backoff_base * pow(2.0, Min(Max(failures, 1) - 1, 30));
	delay = Min(delay, (double) jobsched_backoff_max);
	/* "equal jitter": keep half, randomize the other half */
	delay = delay / 2 + pg_prng_double(&pg_global_prng_state) * delay / 2;
	if (retry_after_s > 0)
		delay = Max(delay, retry_after_s * 1000.0);
	return (int) Min(delay, (double) INT_MAX);
}

static void
dispatch_stats(int requests, int errors, int submitted, bool api_ok)
{
	TimestampTz now = api_ok ? GetCurrentTimestamp() : 0;

	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->api_requests += requests;
	jobsched_shared->api_errors += errors;
	jobsched_shared->jobs_submitted += submitted;
	if (api_ok)
		jobsched_shared->last_api_success_at = now;
	jobsched_shared->in_flight = dispatch_in_flight;
	jobsched_shared->paused_until = dispatch_paused_until;
	SpinLockRelease(&jobsched_shared->mutex);
}

/* Give a job its outcome and queue it for recording. */
static void
dispatch_resolve(JobschedJob *job, JobschedOutcome outcome, const char *error)
{
	JobschedBatch *batch = job->batch;

	job->outcome = outcome;
	job->error = error ? MemoryContextStrdup(batch->cxt, error) : NULL;

	if (dispatch_noutcomes == dispatch_outcomes_cap)
	{
		int			cap = Max(dispatch_outcomes_cap * 2, 1024);

		if (dispatch_outcomes == NULL)
			dispatch_outcomes = MemoryContextAlloc(dispatch_cxt, sizeof(JobschedJob *) * cap);
		else
			dispatch_outcomes = repalloc(dispatch_outcomes, sizeof(JobschedJob *) * cap);
		dispatch_outcomes_cap = cap;
	}
	if (dispatch_noutcomes == 0)
		dispatch_first_outcome_at = GetCurrentTimestamp();
	dispatch_outcomes[dispatch_noutcomes++] = job;
}

static void
dispatch_pause(int retry_after_s, const char *why)
{
	int			delay;

	dispatch_consecutive_failures++;
	delay = dispatch_backoff_ms(dispatch_consecutive_failures, retry_after_s);
	if (dispatch_paused_until == 0)
		ereport(WARNING,
				(errmsg("jobsched: pausing Job submissions for %d ms", delay),
				 errdetail_internal("%s", why)));
	dispatch_paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
}

static void
dispatch_api_ok(void)
{
	if (dispatch_consecutive_failures > 0)
		ereport(LOG,
				(errmsg("jobsched: the Kubernetes API answers again; resuming Job submissions")));
	dispatch_consecutive_failures = 0;
	dispatch_paused_until = 0;
}

static DispatchFault
dispatch_classify(const KubeRequest *req)
{
	long		status = req->http_status;

	if (req->curl_result != 0 || status == 0)
		return FAULT_TRANSIENT;
	if (status == 401 || status == 403 || status == 404)
		return FAULT_CREDENTIALS;
	if (status == 408 || status == 429 || status >= 500 || status < 400)
		return FAULT_TRANSIENT;
	return FAULT_REJECTED;
}

/*
 * A request for this job went wrong: decide between retrying and failing,
 * and whether to pause everyone.
 */
static void
dispatch_failed_request(JobschedJob *job, KubeRequest *req)
{
	char	   *why = jobsched_kube_describe_failure(req);
	int			delay;

	dispatch_stats(1, 1, 0, req->curl_result == 0 && req->http_status >= 400 &&
				   req->http_status < 500 && req->http_status != 401 &&
				   req->http_status != 429);
	jobsched_shmem_set_error(why);

	switch (dispatch_classify(req))
	{
		case FAULT_REJECTED:
			ereport(LOG,
					(errmsg("jobsched: job " INT64_FORMAT " failed: the Kubernetes API rejected its Job",
							job->id),
					 errdetail_internal("%s", why)));
			dispatch_resolve(job, OUTCOME_FAILED, why);
			return;

		case FAULT_CREDENTIALS:
			if (req->http_status == 401)
			{
				jobsched_kube_invalidate_token();
				dispatch_pause(req->retry_after, why);
			}
			job->retryable = 0;
			job->delay_ms = dispatch_backoff_ms(job->attempts + 1, req->retry_after);
			dispatch_resolve(job, OUTCOME_RETRY, why);
			return;

		case FAULT_TRANSIENT:
			dispatch_pause(req->retry_after, why);
			job->retryable = 1;
			if (job->retryable_failures + 1 >= jobsched_max_attempts)
			{
				char	   *msg = psprintf("gave up after %d attempts: %s",
										   job->retryable_failures + 1, why);

				ereport(LOG,
						(errmsg("jobsched: job " INT64_FORMAT " failed after %d attempts",
								job->id, job->retryable_failures + 1),
						 errdetail_internal("%s", why)));
				dispatch_resolve(job, OUTCOME_FAILED, msg);
				return;
			}
			delay = dispatch_backoff_ms(job->retryable_failures + 1, req->retry_after);
			job->delay_ms = delay;
			dispatch_resolve(job, OUTCOME_RETRY, why);
			return;
	}
}

static void
dispatch_start(JobschedJob *job, KubeMethod method, const char *path,
			   const char *body, KubeDoneCallback on_done, int purpose)
{
	MemoryContext old = MemoryContextSwitchTo(job->batch->cxt);
	KubeRequest *req = jobsched_kube_request_new(method, path, body, on_done,
												 job, purpose);

	MemoryContextSwitchTo(old);
	jobsched_kube_request_start(req);
	dispatch_in_flight++;
}

/* Render a claimed job and start its create; a bad template fails it. */
static void
dispatch_send(JobschedJob *job)
{
	JobschedRenderInput in;
	char	   *manifest;
	char	   *error = NULL;
	char	   *path;

	in.job_id = job->id;
	in.job_type = job->type;
	in.job_name = job->name;
	in.namespace = job->namespace;
	in.instance = jobsched_instance_id();
	in.params_json = job->params;
	in.template_json = job->template;

	manifest = jobsched_render_job(&in, &error);
	if (manifest == NULL)
	{
		char	   *msg = psprintf("cannot render the Job: %s", error);

		ereport(LOG,
				(errmsg("jobsched: job " INT64_FORMAT " failed: its Job cannot be rendered",
						job->id),
				 errdetail_internal("%s", msg)));
		dispatch_resolve(job, OUTCOME_FAILED, msg);
		return;
	}

	job->attempted = 1;
	path = psprintf("/apis/batch/v1/namespaces/%s/jobs?fieldValidation=Strict",
					job->namespace);
	dispatch_start(job, KUBE_POST, path, manifest, dispatch_create_done,
				   DISPATCH_CREATE);
}

static void
dispatch_submitted(JobschedJob *job, KubeRequest *req, cJSON *job_json)
{
	char	   *uid = jobsched_kobject_string(job_json, "metadata", "uid", NULL);

	if (uid)
		job->uid = MemoryContextStrdup(job->batch->cxt, uid);
	dispatch_api_ok();
	dispatch_stats(1, 0, 1, true);
	dispatch_resolve(job, OUTCOME_SUBMITTED, NULL);
}

static void
dispatch_create_done(KubeRequest *req)
{
	JobschedJob *job = (JobschedJob *) req->owner;
	long		status = req->http_status;

	dispatch_in_flight--;
	if (req->curl_result == 0 && status >= 200 && status < 300)
	{
		cJSON	   *root = req->response ? cJSON_Parse(req->response) : NULL;

		dispatch_submitted(job, req, root);
		cJSON_Delete(root);
	}
	else if (req->curl_result == 0 && status == 409)
	{
		/* a Job of that name exists: ours from an earlier try, or not? */
		char	   *path = psprintf("/apis/batch/v1/namespaces/%s/jobs/%s",
									job->namespace, job->name);

		dispatch_api_ok();
		dispatch_stats(1, 0, 0, true);
		dispatch_start(job, KUBE_GET, path, NULL, dispatch_lookup_done,
					   DISPATCH_LOOKUP);
	}
	else
		dispatch_failed_request(job, req);

	jobsched_kube_request_free(req);
}

static void
dispatch_lookup_done(KubeRequest *req)
{
	JobschedJob *job = (JobschedJob *) req->owner;
	long		status = req->http_status;

	dispatch_in_flight--;
	if (req->curl_result == 0 && status == 200)
	{
		cJSON	   *root = jobsched_kobject_parse(req);

		/* ours: this job's id and this database's instance in its labels */
		if (jobsched_kobject_job_id(root) == job->id)
			dispatch_submitted(job, req, root);
		else
		{
			char	   *msg = psprintf("a Job named \"%s\" already exists in namespace \"%s\" and was not created by this job",
									   job->name, job->namespace);

			ereport(LOG,
					(errmsg("jobsched: job " INT64_FORMAT " failed: %s", job->id, msg)));
			dispatch_stats(1, 0, 0, true);
			dispatch_resolve(job, OUTCOME_FAILED, msg);
		}
		cJSON_Delete(root);
	}
	else if (req->curl_result == 0 && status == 404)
	{
		/* deleted between our create and our look: simply create again */
		dispatch_stats(1, 0, 0, true);
		job->delay_ms = 0;
		dispatch_resolve(job, OUTCOME_RETRY, NULL);
	}
	else
		dispatch_failed_request(job, req);

	jobsched_kube_request_free(req);
}

/*
 * Record outcomes in one transaction.  On an error (a user's trigger on
 * jobsched.jobs that rejects one row, say) the transaction is rolled back
 * and the error returned, palloc'd in dispatch_cxt; NULL on success.
 */
static ErrorData *
dispatch_record(JobschedJob **jobs, int njobs)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		bool		ready = jobsched_queue_begin("jobsched: recording job outcomes");

		if (ready && jobsched_queue_record(jobs, njobs))
			jobsched_cancel_wake();
		jobsched_queue_end();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(dispatch_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	return edata;
}

/* Say that a job's outcome could not be recorded (edata NULL: it was). */
static void
dispatch_unrecorded(JobschedJob *job, ErrorData *edata)
{
	if (edata == NULL)
		return;
	ereport(WARNING,
			(errmsg("jobsched: could not record the outcome of job " INT64_FORMAT, job->id),
			 errdetail_internal("%s", edata->message),
			 errhint("The job stays claimed until the worker restarts.")));
	jobsched_shmem_set_error(psprintf("job " INT64_FORMAT ": %s", job->id, edata->message));
	FreeErrorData(edata);
}

/*
 * Record the outcomes waiting, and drop batches that are done.  Should the
 * batch fail, each outcome is recorded on its own, so one row that cannot
 * be updated does not hold up the others: it stays claimed (and is
 * retried when the worker restarts), and the log says why.
 */
static void
dispatch_flush(void)
{
	int			i;
	ErrorData  *edata;

	if (dispatch_noutcomes == 0)
		return;

	edata = dispatch_record(dispatch_outcomes, dispatch_noutcomes);
	if (edata != NULL && dispatch_noutcomes > 1)
	{
		FreeErrorData(edata);
		for (i = 0; i < dispatch_noutcomes; i++)
			dispatch_unrecorded(dispatch_outcomes[i],
								dispatch_record(&dispatch_outcomes[i], 1));
	}
	else
		dispatch_unrecorded(dispatch_outcomes[0], edata);

	for (i = 0; i < dispatch_noutcomes; i++)
	{
		JobschedJob *job = dispatch_outcomes[i];
		JobschedBatch *batch = job->batch;

		if (job->outcome == OUTCOME_RETRY && job->delay_ms > 0)
			dispatch_due_at(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														job->delay_ms));
		else if (job->outcome == OUTCOME_RETRY || job->outcome == OUTCOME_RELEASE)
			dispatch_work_maybe = true;

		if (--batch->unrecorded == 0)
		{
			if (batch == dispatch_current)
				dispatch_current = NULL;
			dispatch_freed_since_trim += batch->njobs;
			dlist_delete(&batch->node);
			MemoryContextDelete(batch->cxt);
		}
	}
	dispatch_noutcomes = 0;
}

/*
 * glibc keeps the memory that batches (and libcurl's buffers) freed; an
 * idle worker should not hold on to what it needed for ten thousand jobs
 * at once.  Once a burst has been over for a while, give it back.  Returns
 * how long until that is due, in ms (-1: nothing to do).
 */
static long
dispatch_trim_when_idle(TimestampTz now)
{
#ifdef __GLIBC__
	TimestampTz due;

	if (dispatch_freed_since_trim < DISPATCH_TRIM_JOBS ||
		!dlist_is_empty(&dispatch_batches))
		return -1;
	due = TimestampTzPlusMilliseconds(dispatch_last_found_at, DISPATCH_TRIM_IDLE_MS);
	if (now < due)
		return jobsched_ms_until(now, due);
	malloc_trim(0);
	dispatch_freed_since_trim = 0;
#endif
	return -1;
}

/* Claim a batch of due rows and render their names. */
static void
dispatch_claim(void)
{
	MemoryContext cxt;
	JobschedBatch *batch;
	JobschedJob *jobs = NULL;
	int			n;
	int			i;
	char	   *namespace = jobsched_guc_namespace();
	bool		ready;
	TimestampTz due = 0;

	cxt = AllocSetContextCreate(dispatch_cxt, "jobsched batch",
								ALLOCSET_DEFAULT_SIZES);
	jobsched_wake_doorbell_quiet();
	PG_TRY();
	{
		ready = jobsched_queue_begin("jobsched: claiming pending jobs");
		n = ready ? jobsched_queue_claim(jobsched_batch_size, namespace, cxt, &jobs, &due) : 0;
		jobsched_queue_end();
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ready)
		dispatch_ready = false;
	dispatch_work_maybe = (n == jobsched_batch_size);

	/*
	 * Before the doorbell is armed again.  Jobs streaming in (the claim
	 * found several, one or more for each DISPATCH_STREAM_GAP_US since the
	 * last) are given claim_delay to gather, rather than a claim, a round
	 * of requests and a record for every commit or two.  The rate, not the
	 * count: what gathers during the delay must not count as a stream by
	 * itself, or jobs coming a few milliseconds apart would wait for the
	 * delay forever after.  A job that comes alone is claimed at once, even
	 * right after the last claim.
	 */
	if (ready)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (n > 1 && n < jobsched_batch_size && jobsched_claim_delay > 0 &&
			now - dispatch_last_claim_at < (TimestampTz) n * DISPATCH_STREAM_GAP_US)
			dispatch_claim_not_before = TimestampTzPlusMilliseconds(now,
																	jobsched_claim_delay);
		dispatch_last_claim_at = now;
		if (n > 0)
			dispatch_last_found_at = now;
	}
	/* all due rows taken: wake up when the next one falls due */
	if (ready && n < jobsched_batch_size && due != 0)
		dispatch_due_at(due);
	if (n == 0)
	{
		MemoryContextDelete(cxt);
		return;
	}

	batch = MemoryContextAllocZero(cxt, sizeof(JobschedBatch));
	batch->cxt = cxt;
	batch->jobs = jobs;
	batch->njobs = n;
	batch->unrecorded = n;
	dlist_push_tail(&dispatch_batches, &batch->node);
	dispatch_current = batch;

	for (i = 0; i < n; i++)
	{
		jobs[i].batch = batch;
		jobs[i].name = MemoryContextStrdup(cxt, jobsched_job_name(jobs[i].type, jobs[i].id));
	}
}

/* Is the extension there, and have leftovers of a crash been recovered? */
static void
dispatch_prepare(TimestampTz now)
{
	int			recovered = 0;

	if (now < dispatch_next_ready_check)
		return;
	dispatch_next_ready_check = TimestampTzPlusMilliseconds(now, jobsched_poll_interval);

	jobsched_wake_doorbell_quiet();
	dispatch_ready = jobsched_queue_begin("jobsched: recovering claimed jobs");
	if (dispatch_ready)
		recovered = jobsched_queue_recover_claimed();
	jobsched_queue_end();

	if (recovered > 0)
		ereport(LOG,
				(errmsg("jobsched: %d claimed jobs from an earlier run are pending again",
						recovered)));
	dispatch_work_maybe = true;
}

/*
 * One pass of the dispatcher.  Returns how long the worker may sleep
 * before the dispatcher needs another pass, in ms (-1: until woken).
 */
long
jobsched_dispatch_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout;
	long		trim_in;

	if (!dispatch_ready)
	{
		dispatch_prepare(now);
		if (!dispatch_ready)
		{
			/* the first job queued once the extension is there rings */
			if (jobsched_enabled && !jobsched_wake_doorbell_arm())
				dispatch_next_ready_check = 0;
			return jobsched_ms_until(now, dispatch_next_ready_check);
		}
	}

	if (now >= dispatch_next_poll)
	{
		dispatch_work_maybe = true;
		dispatch_next_poll = TimestampTzPlusMilliseconds(now, jobsched_poll_interval);
	}
	if (dispatch_next_due != 0 && now >= dispatch_next_due)
	{
		dispatch_work_maybe = true;
		dispatch_next_due = 0;
	}
	if (dispatch_paused_until != 0 && now >= dispatch_paused_until)
	{
		dispatch_paused_until = 0;
		dispatch_work_maybe = true;
	}
	if (dispatch_claim_not_before != 0 && now >= dispatch_claim_not_before)
		dispatch_claim_not_before = 0;

	if (!jobsched_enabled || dispatch_paused_until != 0)
	{
		/* hand back what was claimed but not sent */
		while (dispatch_current &&
			   dispatch_current->next_unstarted < dispatch_current->njobs)
			dispatch_resolve(&dispatch_current->jobs[dispatch_current->next_unstarted++],
							 OUTCOME_RELEASE, NULL);
	}
	else
	{
		for (;;)
		{
			if (dispatch_current == NULL ||
				dispatch_current->next_unstarted >= dispatch_current->njobs)
			{
				if (!dispatch_work_maybe || dispatch_claim_not_before != 0 ||
					dispatch_in_flight >= jobsched_max_in_flight)
					break;
				dispatch_current = NULL;
				dispatch_claim();
				if (dispatch_current == NULL)
					break;
			}
			while (dispatch_current->next_unstarted < dispatch_current->njobs &&
				   dispatch_in_flight < jobsched_max_in_flight)
				dispatch_send(&dispatch_current->jobs[dispatch_current->next_unstarted++]);
			if (dispatch_in_flight >= jobsched_max_in_flight)
				break;
		}
	}

	/* while jobs are gathering, their outcomes can wait for company too */
	if (dispatch_noutcomes >= DISPATCH_FLUSH_COUNT ||
		(dispatch_noutcomes > 0 && dispatch_in_flight == 0 &&
		 dispatch_claim_not_before == 0) ||
		(dispatch_noutcomes > 0 &&
		 TimestampDifferenceExceeds(dispatch_first_outcome_at, now, DISPATCH_FLUSH_MS)))
		dispatch_flush();

	dispatch_stats(0, 0, 0, false);

	/*
	 * Nothing more to claim for now: arm the doorbell, unless commits came
	 * since the last claim, or a disabled or paused dispatcher could not act
	 * on it (it looks again when that ends).
	 */
	if (!dispatch_work_maybe && dispatch_claim_not_before == 0 &&
		dispatch_paused_until == 0 && jobsched_enabled &&
		!jobsched_wake_doorbell_arm())
		dispatch_work_maybe = true;

	/* when to come back */
	now = GetCurrentTimestamp();
	if (dispatch_work_maybe && dispatch_claim_not_before == 0 &&
		dispatch_paused_until == 0 && jobsched_enabled &&
		dispatch_in_flight < jobsched_max_in_flight)
		return 0;
	timeout = jobsched_ms_until(now, dispatch_next_poll);
	if (dispatch_next_due != 0)
		timeout = Min(timeout, jobsched_ms_until(now, dispatch_next_due));
	if (dispatch_paused_until != 0)
		timeout = Min(timeout, jobsched_ms_until(now, dispatch_paused_until));
	if (dispatch_claim_not_before != 0)
		timeout = Min(timeout, jobsched_ms_until(now, dispatch_claim_not_before));
	if (dispatch_noutcomes > 0)
		timeout = Min(timeout, DISPATCH_FLUSH_MS);
	trim_in = dispatch_trim_when_idle(now);
	if (trim_in >= 0)
		timeout = Min(timeout, trim_in);
	return timeout;
}
