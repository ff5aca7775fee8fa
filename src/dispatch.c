/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *	  From claimed rows to Kubernetes Jobs.
 *
 *	  One pass claims a batch of due pending rows (queue.c), renders each
 *	  template with its proof (render.c, naming.c) and starts the creates
 *	  (kube.c), at most jobsched.max_in_flight at a time.  As answers
 *	  arrive each job gets an outcome; outcomes are recorded in one short
 *	  transaction when the work in hand is done, when many have piled up,
 *	  or after a few milliseconds.  What an answer means:
 *
 *	  - 2xx: submitted.  409: look the Job up; one whose proof holds for
 *	    this row is ours (an earlier try), anyone else's fails the job.
 *	  - a create whose answer was lost (the request went out, then a
 *	    timeout, a dropped connection, or a 5xx) may have made the Job: the
 *	    row is "unsettled", and before it is created again or failed the
 *	    worker looks the Job up by name (and status sync takes any Job of
 *	    it that it sees).  A row fails for transport reasons only once it is
 *	    known that no Job of it exists.
 *	  - network, 5xx, 429: not the job's fault.  Back to pending with a
 *	    backoff (Retry-After honoured, up to jobsched.backoff_max); failed
 *	    after jobsched.max_attempts such failures.
 *	  - 401, 403, 404 (namespace), TLS that cannot be verified: for an
 *	    operator to fix without touching the rows.  Pending, never failed.
 *	    A 401 also re-reads the token.
 *	  - other 4xx, and templates that cannot be rendered: failed, with the
 *	    reason in last_error.
 *
 *	  Any failure that is not the job's own pauses submissions for everyone
 *	  (the API-wide pause below), so an outage costs a few requests, not
 *	  one per row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cJSON.h>

#include "access/xact.h"
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

/* request purposes */
#define DISPATCH_CREATE		1
#define DISPATCH_LOOKUP		2	/* after 409, or to settle an unsettled row */
#define DISPATCH_PROBE		3	/* is the API answering again? */

/* flush outcomes once this many wait, or the oldest is this old */
#define DISPATCH_FLUSH_COUNT	256
#define DISPATCH_FLUSH_MS		10
/* outcomes of rows someone holds are tried again after this */
#define DISPATCH_DEFER_MS		200
/* how often to look for ALTER EXTENSION UPDATE, which rings no doorbell */
#define DISPATCH_OLD_SCHEMA_MS	1000

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

/*
 * During an outage the API is probed at least this often, and a probe
 * waits at most this long for its answer: submissions resume within about
 * twice this of the API answering, however long the outage was.
 */
#define DISPATCH_PROBE_MAX_MS	10000

/* rows an outage delayed, remembered to be made due when it is over */
#define DISPATCH_DELAYED_MAX	10000

typedef enum DispatchFault
{
	FAULT_TRANSIENT,			/* network, 5xx, 429: retry, then fail */
	FAULT_OPERATOR,				/* 401, 403, 404, TLS: retry, never fail */
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

/*
 * The API-wide pause, a circuit breaker.  A failure that is not the job's
 * own takes one backoff step and pauses submissions; requests that were
 * already in flight when it came (sharing its epoch) fail with the same
 * outage and take no further step.  When the pause is over a probe asks
 * whether the API answers; any answer to any request of the worker's lifts
 * the pause too.  Then creates go one at a time until one succeeds.  A
 * Retry-After is honoured up to jobsched.backoff_max, whatever else
 * answers.  A reload clears it all.
 */
typedef struct DispatchPause
{
	TimestampTz until;			/* no creates before this; 0: not paused */
	TimestampTz hold_until;		/* a Retry-After, honoured regardless */
	TimestampTz began;			/* when the outage began; 0: no outage */
	TimestampTz stepped_at;		/* when the last step was taken */
	bool		api_down;		/* the last step was the API not answering */
	int			steps;			/* steps taken since a create last succeeded */
	uint64		epoch;			/* bumped by every step */
	bool		trial;			/* one create at a time until one succeeds */
	KubeRequest *probe;			/* in flight, or NULL */
	int64	   *delayed;		/* rows the outage gave a backoff */
	int			ndelayed;
	bool		release_delayed;	/* make them due at the next flush */
} DispatchPause;

typedef struct Dispatcher
{
	MemoryContext cxt;			/* batches, outcomes, the pause's lists */
	dlist_head	batches;
	JobschedBatch *current;		/* the batch being sent */
	int			in_flight;		/* our requests (not watches etc.) */

	/* outcomes waiting to be recorded */
	JobschedJob **outcomes;
	int			noutcomes;
	int			outcomes_cap;
	TimestampTz first_outcome_at;
	TimestampTz deferred_until; /* rows someone held: not before this */

	/* the extension is there and crash leftovers are recovered */
	bool		ready;
	TimestampTz last_ready_check;
	bool		told_old_schema;

	/* when to claim */
	bool		work_maybe;		/* a wake-up came, or the last claim was full */
	TimestampTz claim_not_before;	/* while jobs stream in (claim_delay) */
	TimestampTz last_claim_at;
	TimestampTz last_found_at;
	TimestampTz last_poll_at;
	TimestampTz next_due;		/* the earliest pending row falls due; 0: none */
	int			freed_since_trim;

	/* a submitted job was asked to cancel meanwhile (worker.c hands it on) */
	bool		cancel_due;

	DispatchPause pause;
} Dispatcher;

static Dispatcher d;

static void dispatch_create_done(KubeRequest *req);
static void dispatch_lookup_done(KubeRequest *req);
static void dispatch_probe_done(KubeRequest *req);

void
jobsched_dispatch_init(void)
{
	memset(&d, 0, sizeof(d));
	d.cxt = AllocSetContextCreate(TopMemoryContext, "jobsched dispatch",
								  ALLOCSET_DEFAULT_SIZES);
	dlist_init(&d.batches);
	d.work_maybe = true;
}

/* A wake-up: rows may have become pending, or the extension installed. */
void
jobsched_dispatch_wake(void)
{
	d.work_maybe = true;
	if (!d.ready)
		d.last_ready_check = 0;
}

/* A submitted job was asked to cancel: the caller wakes cancel.c. */
bool
jobsched_dispatch_take_cancel_due(void)
{
	bool		due = d.cancel_due;

	d.cancel_due = false;
	return due;
}

/* ---- the API-wide pause ---- */

static void
dispatch_pause_clear(void)
{
	if (d.pause.probe)
	{
		jobsched_kube_request_cancel(d.pause.probe);
		jobsched_kube_request_free(d.pause.probe);
	}
	d.pause.probe = NULL;
	d.pause.until = d.pause.hold_until = d.pause.began = d.pause.stepped_at = 0;
	d.pause.steps = 0;
	d.pause.trial = false;
	d.pause.api_down = false;
	d.pause.release_delayed = (d.pause.ndelayed > 0);
	d.work_maybe = true;
}

/*
 * A request that was not the job's fault failed.  epoch is the pause's
 * epoch when the request started: only the first failure of an outage
 * takes a step.
 */
static void
dispatch_pause_step(uint64 epoch, int retry_after_s, bool api_down, const char *why)
{
	TimestampTz now = GetCurrentTimestamp();
	int			cap = Min(jobsched_backoff_max, DISPATCH_PROBE_MAX_MS);

	if (retry_after_s > 0)
	{
		int			hold = (int) Min((int64) retry_after_s * 1000, (int64) jobsched_backoff_max);
		TimestampTz hold_until = TimestampTzPlusMilliseconds(now, hold);

		if (hold_until > d.pause.hold_until)
		{
			ereport(LOG,
					(errmsg("the Kubernetes API asked to wait %d s; pausing Job submissions for %d ms",
							retry_after_s, hold),
					 errdetail("Retry-After is honoured up to jobsched.backoff_max.")));
			d.pause.hold_until = hold_until;
		}
	}

	if (epoch == d.pause.epoch)
	{
		int			delay;
		bool		capped;

		d.pause.epoch++;
		d.pause.steps++;
		d.pause.stepped_at = now;
		d.pause.api_down = api_down;
		d.pause.trial = true;
		if (d.pause.began == 0)
			d.pause.began = now;
		delay = jobsched_backoff_ms(d.pause.steps, cap);
		d.pause.until = TimestampTzPlusMilliseconds(now, delay);

		/* each length once: the steps up to the cap, which then stays */
		capped = (double) jobsched_backoff_base * (1 << Min(d.pause.steps - 1, 20)) > cap * 2.0;
		if (d.pause.steps == 1)
			ereport(WARNING,
					(errmsg("pausing Job submissions for %d ms", delay),
					 errdetail_internal("%s", why)));
		else if (!capped)
			ereport(LOG,
					(errmsg("the Kubernetes API still fails; pausing Job submissions for %d ms",
							delay),
					 errdetail_internal("%s", why)));
	}
	d.pause.until = Max(d.pause.until, d.pause.hold_until);
}

/* The API answers again: the next create may go, and rows the outage delayed are due. */
static void
dispatch_pause_lift(TimestampTz now)
{
	if (d.pause.probe)
	{
		jobsched_kube_request_cancel(d.pause.probe);
		jobsched_kube_request_free(d.pause.probe);
		d.pause.probe = NULL;
	}
	if (d.pause.until != 0)
		ereport(LOG,
				(errmsg("the Kubernetes API answers again after %ld s; resuming Job submissions",
						(long) ((now - d.pause.began) / USECS_PER_SEC))));
	d.pause.until = 0;
	d.pause.release_delayed = (d.pause.ndelayed > 0);
	d.work_maybe = true;
}

/* A create succeeded: the outage, if any, is over. */
static void
dispatch_api_ok(void)
{
	if (d.pause.until != 0)
		dispatch_pause_lift(GetCurrentTimestamp());
	d.pause.steps = 0;
	d.pause.trial = false;
	d.pause.began = 0;
}

static void
dispatch_probe_done(KubeRequest *req)
{
	d.pause.probe = NULL;
	if (req->curl_result == 0 && req->http_status > 0 && req->http_status < 500 &&
		req->http_status != 429)
		dispatch_pause_lift(GetCurrentTimestamp());
	else
		dispatch_pause_step(req->tag, req->retry_after, req->http_status != 429,
							jobsched_kube_describe_failure(req));
	jobsched_kube_request_free(req);
}

/*
 * While paused: lift the pause if the API has answered anyone since the
 * outage's last step, else probe it when the pause is over.  Returns true
 * while creates must wait.
 */
static bool
dispatch_pause_check(TimestampTz now)
{
	if (d.pause.until == 0)
		return false;
	if (now < d.pause.hold_until)
		return true;
	if (d.pause.api_down && jobsched_kube_last_answer_at() > d.pause.stepped_at)
	{
		dispatch_pause_lift(now);
		return false;
	}
	if (now >= d.pause.until && d.pause.probe == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(d.cxt);
		char	   *namespace = jobsched_guc_namespace();
		char	   *path = psprintf("/apis/batch/v1/namespaces/%s/jobs?limit=1&labelSelector=%s",
									namespace, jobsched_kube_instance_selector());

		d.pause.probe = jobsched_kube_request_new(KUBE_GET, path, NULL, dispatch_probe_done,
												  NULL, DISPATCH_PROBE);
		d.pause.probe->tag = d.pause.epoch;
		d.pause.probe->timeout_ms = Min(jobsched_request_timeout, DISPATCH_PROBE_MAX_MS);
		MemoryContextSwitchTo(old);
		jobsched_kube_request_start(d.pause.probe);
	}
	return true;
}

/* Remember a row the outage delayed, to make it due when the outage ends. */
static void
dispatch_pause_delayed(int64 id)
{
	if (d.pause.delayed == NULL)
		d.pause.delayed = MemoryContextAlloc(d.cxt, sizeof(int64) * DISPATCH_DELAYED_MAX);
	if (d.pause.ndelayed < DISPATCH_DELAYED_MAX)
		d.pause.delayed[d.pause.ndelayed++] = id;
}

/* Settings were reloaded: a pause starts over (jobsched.enabled off/on too). */
void
jobsched_dispatch_reload(void)
{
	if (d.pause.until != 0)
		ereport(LOG,
				(errmsg("the settings were reloaded; resuming Job submissions")));
	dispatch_pause_clear();
	d.work_maybe = true;
}

/* ---- outcomes ---- */

static void
dispatch_stats(int requests, int errors, int submitted, bool api_ok)
{
	jobsched_shmem_count_requests(requests, errors, submitted, api_ok);
}

/* Give a job its outcome and queue it for recording. */
static void
dispatch_resolve(JobschedJob *job, JobschedOutcome outcome, const char *error)
{
	job->outcome = outcome;
	job->error = error ? MemoryContextStrdup(job->batch->cxt,
											 jobsched_clean_text(error, JOBSCHED_ERROR_LEN * 4))
		: NULL;

	if (d.noutcomes == d.outcomes_cap)
	{
		int			cap = Max(d.outcomes_cap * 2, 1024);

		if (d.outcomes == NULL)
			d.outcomes = MemoryContextAlloc(d.cxt, sizeof(JobschedJob *) * cap);
		else
			d.outcomes = repalloc(d.outcomes, sizeof(JobschedJob *) * cap);
		d.outcomes_cap = cap;
	}
	if (d.noutcomes == 0)
		d.first_outcome_at = GetCurrentTimestamp();
	d.outcomes[d.noutcomes++] = job;
}

static DispatchFault
dispatch_classify(const KubeRequest *req)
{
	long		status = req->http_status;

	if (req->curl_result != 0)
		return jobsched_kube_tls_failure(req) ? FAULT_OPERATOR : FAULT_TRANSIENT;
	if (status == 401 || status == 403 || status == 404)
		return FAULT_OPERATOR;
	if (status == 408 || status == 429 || status >= 500 || status < 400)
		return FAULT_TRANSIENT;
	return FAULT_REJECTED;
}

/* Could this failed create have made the Job all the same? */
static bool
dispatch_may_have_created(const KubeRequest *req)
{
	if (req->method != KUBE_POST)
		return false;
	if (req->curl_result != 0)
		return req->sent;
	return req->http_status >= 500 || req->http_status == 408;
}

/*
 * A request for this job went wrong: decide between retrying and failing,
 * and whether to pause everyone.
 */
static void
dispatch_failed_request(JobschedJob *job, KubeRequest *req, uint64 epoch)
{
	char	   *why = jobsched_clean_text(jobsched_kube_describe_failure(req), 1000);
	DispatchFault fault = dispatch_classify(req);

	/* a look-up the API calls a bad request says nothing about the job */
	if (fault == FAULT_REJECTED && req->method != KUBE_POST)
		fault = FAULT_TRANSIENT;

	if (dispatch_may_have_created(req))
		job->unsettled = true;
	dispatch_stats(1, 1, 0, fault == FAULT_REJECTED);

	switch (fault)
	{
		case FAULT_REJECTED:
			/* the API's words may quote the job's params: they go to its row only */
			ereport(LOG,
					(errmsg("job " INT64_FORMAT " failed: the Kubernetes API rejected its Job",
							job->id)));
			jobsched_shmem_set_error(psprintf("job " INT64_FORMAT ": the Kubernetes API rejected its Job (see its last_error)",
											  job->id));
			dispatch_resolve(job, OUTCOME_FAILED, why);
			return;

		case FAULT_OPERATOR:
			jobsched_shmem_set_error(why);
			if (req->http_status == 401)
				jobsched_kube_invalidate_token();
			dispatch_pause_step(epoch, req->retry_after, false, why);
			job->retryable = 0;
			job->delay_ms = jobsched_backoff_ms(job->attempts + 1, jobsched_backoff_max);
			dispatch_pause_delayed(job->id);
			dispatch_resolve(job, OUTCOME_RETRY, why);
			return;

		case FAULT_TRANSIENT:
			jobsched_shmem_set_error(why);
			dispatch_pause_step(epoch, req->retry_after, req->http_status != 429, why);
			job->retryable = 1;
			if (job->retryable_failures + 1 >= jobsched_max_attempts && !job->unsettled)
			{
				ereport(LOG,
						(errmsg("job " INT64_FORMAT " failed after %d attempts",
								job->id, job->retryable_failures + 1),
						 errdetail_internal("%s", why)));
				dispatch_resolve(job, OUTCOME_FAILED,
								 psprintf("gave up after %d attempts: %s",
										  job->retryable_failures + 1, why));
				return;
			}
			job->delay_ms = jobsched_backoff_ms(job->retryable_failures + 1,
												jobsched_backoff_max);
			dispatch_pause_delayed(job->id);
			dispatch_resolve(job, OUTCOME_RETRY, why);
			return;
	}
}

/* ---- requests ---- */

/* the pause's epoch when a job's request started, kept with the request */
static void
dispatch_start(JobschedJob *job, KubeMethod method, const char *path,
			   const char *body, KubeDoneCallback on_done, int purpose)
{
	MemoryContext old = MemoryContextSwitchTo(job->batch->cxt);
	KubeRequest *req = jobsched_kube_request_new(method, path, body, on_done,
												 job, purpose);

	req->tag = d.pause.epoch;
	MemoryContextSwitchTo(old);
	jobsched_kube_request_start(req);
	d.in_flight++;
}

/* Render a claimed job with its proof and start its create. */
static void
dispatch_create(JobschedJob *job)
{
	JobschedRenderInput in;
	JobschedProofInput proof;
	char	   *manifest;
	char	   *error = NULL;

	proof.namespace = job->namespace;
	proof.name = job->name;
	proof.job_id = job->id;
	proof.run = job->run;
	proof.created_at = job->created_at;

	in.job_id = job->id;
	in.job_type = job->type;
	in.job_name = job->name;
	in.namespace = job->namespace;
	in.instance = jobsched_instance_id();
	in.proof = jobsched_proof(&proof);
	in.params_json = job->params;
	in.template_json = job->template;

	manifest = jobsched_render_job(&in, &error);
	if (manifest == NULL)
	{
		ereport(LOG,
				(errmsg("job " INT64_FORMAT " failed: its Job cannot be rendered", job->id)));
		dispatch_resolve(job, OUTCOME_FAILED, psprintf("cannot render the Job: %s", error));
		return;
	}

	job->attempted = 1;
	dispatch_start(job, KUBE_POST,
				   psprintf("/apis/batch/v1/namespaces/%s/jobs?fieldValidation=Strict",
							job->namespace),
				   manifest, dispatch_create_done, DISPATCH_CREATE);
}

/* Look the Job of a job up by name: after 409, or to settle a lost create. */
static void
dispatch_lookup(JobschedJob *job)
{
	dispatch_start(job, KUBE_GET,
				   psprintf("/apis/batch/v1/namespaces/%s/jobs/%s", job->namespace, job->name),
				   NULL, dispatch_lookup_done, DISPATCH_LOOKUP);
}

/* A claimed job's turn: settle an unsettled create first, else create. */
static void
dispatch_send(JobschedJob *job)
{
	if (job->unsettled)
		dispatch_lookup(job);
	else
		dispatch_create(job);
}

static void
dispatch_submitted(JobschedJob *job, const char *uid)
{
	job->uid = MemoryContextStrdup(job->batch->cxt, uid);
	job->unsettled = false;
	dispatch_api_ok();
	dispatch_stats(1, 0, 1, true);
	dispatch_resolve(job, OUTCOME_SUBMITTED, NULL);
}

static void
dispatch_create_done(KubeRequest *req)
{
	JobschedJob *job = (JobschedJob *) req->owner;
	long		status = req->http_status;

	d.in_flight--;
	if (req->curl_result == 0 && status >= 200 && status < 300)
	{
		cJSON	   *root = req->response ? cJSON_Parse(req->response) : NULL;
		char	   *uid = jobsched_kobject_string(root, "metadata", "uid", NULL);

		if (jobsched_kube_uid_ok(uid))
			dispatch_submitted(job, uid);
		else
		{
			/* created, but the answer does not say which Job: look it up */
			job->unsettled = true;
			job->delay_ms = 0;
			dispatch_resolve(job, OUTCOME_RETRY, NULL);
		}
		cJSON_Delete(root);
	}
	else if (req->curl_result == 0 && status == 409)
	{
		/* a Job of that name exists: ours from an earlier try, or not? */
		dispatch_stats(1, 0, 0, true);
		dispatch_lookup(job);
	}
	else
		dispatch_failed_request(job, req, req->tag);

	jobsched_kube_request_free(req);
}

/* Is this Job the one of this run of this row (see kobject.c)? */
static bool
dispatch_job_is_ours(JobschedJob *job, cJSON *root)
{
	int			run;
	TimestampTz created_at;
	bool		legacy;

	if (!jobsched_kobject_proven(root, job->name, job->id, &run, &created_at, &legacy))
		return false;
	if (legacy)
		return job->run == 0 && job->created_at < jobsched_labels_trusted_before();
	return run == job->run && created_at == job->created_at;
}

static void
dispatch_lookup_done(KubeRequest *req)
{
	JobschedJob *job = (JobschedJob *) req->owner;
	long		status = req->http_status;

	d.in_flight--;
	if (req->curl_result == 0 && status == 200)
	{
		cJSON	   *root = jobsched_kobject_parse(req);
		char	   *uid = jobsched_kobject_string(root, "metadata", "uid", NULL);

		if (dispatch_job_is_ours(job, root) && jobsched_kube_uid_ok(uid))
			dispatch_submitted(job, uid);
		else
		{
			char	   *msg = psprintf("a Job named \"%s\" already exists in namespace \"%s\" and is not this job's (it carries no valid %s)",
									   job->name, job->namespace, JOBSCHED_ANNOTATION_PROOF);

			ereport(LOG,
					(errmsg("job " INT64_FORMAT " failed: a Job of its name is not its own", job->id),
					 errdetail_internal("%s", msg)));
			dispatch_stats(1, 0, 0, true);
			job->unsettled = false;
			dispatch_resolve(job, OUTCOME_FAILED, msg);
		}
		cJSON_Delete(root);
	}
	else if (req->curl_result == 0 && status == 404)
	{
		/* no Job of this run exists: whatever happened before, none was made */
		dispatch_stats(1, 0, 0, true);
		job->unsettled = false;
		if (job->retryable_failures >= jobsched_max_attempts)
			dispatch_resolve(job, OUTCOME_FAILED,
							 psprintf("gave up after %d attempts, and no Job of it exists; the last failure: %s",
									  job->retryable_failures,
									  job->last_error ? job->last_error : "unknown"));
		else
			dispatch_create(job);
	}
	else
		dispatch_failed_request(job, req, req->tag);

	jobsched_kube_request_free(req);
}

/* ---- recording ---- */

/*
 * Record outcomes in one transaction.  On an error (a user's trigger on
 * jobsched.jobs that rejects one row, say) the transaction is rolled back
 * and the error returned, palloc'd in d.cxt; NULL on success.
 */
static ErrorData *
dispatch_record(JobschedJob **jobs, int njobs, QueueRecorded *recorded)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;
	int			i;

	PG_TRY();
	{
		QueueState state = jobsched_queue_begin("recording job outcomes");

		if (state == QUEUE_READY && njobs > 0)
			d.cancel_due |= jobsched_queue_record(jobs, njobs, recorded);
		else
			for (i = 0; i < njobs; i++)
				recorded[i] = (state == QUEUE_BUSY) ? RECORD_DEFERRED : RECORD_DROPPED;
		if (state == QUEUE_READY && d.pause.release_delayed)
		{
			jobsched_queue_retry_now(d.pause.delayed, d.pause.ndelayed);
			d.pause.release_delayed = false;
			d.pause.ndelayed = 0;
		}
		jobsched_queue_end();
		if (state == QUEUE_MISSING || state == QUEUE_OLD_SCHEMA)
			d.ready = false;
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(d.cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	return edata;
}

/* Say that a job's outcome could not be recorded. */
static void
dispatch_unrecorded(JobschedJob *job, ErrorData *edata)
{
	ereport(WARNING,
			(errmsg("could not record the outcome of job " INT64_FORMAT, job->id),
			 errdetail_internal("%s", edata->message),
			 errhint("The job stays claimed until the worker restarts.")));
	jobsched_shmem_set_error(psprintf("job " INT64_FORMAT ": %s", job->id, edata->message));
	FreeErrorData(edata);
}

/* An outcome is done with: its row has it, or needs it no more. */
static void
dispatch_forget(JobschedJob *job)
{
	JobschedBatch *batch = job->batch;
	TimestampTz now = GetCurrentTimestamp();

	if (job->outcome == OUTCOME_RETRY && job->delay_ms > 0)
	{
		TimestampTz due = TimestampTzPlusMilliseconds(now, job->delay_ms);

		if (d.next_due == 0 || due < d.next_due)
			d.next_due = due;
	}
	else if (job->outcome == OUTCOME_RETRY || job->outcome == OUTCOME_RELEASE)
		d.work_maybe = true;

	if (--batch->unrecorded == 0)
	{
		if (batch == d.current)
			d.current = NULL;
		d.freed_since_trim += batch->njobs;
		dlist_delete(&batch->node);
		MemoryContextDelete(batch->cxt);
	}
}

/*
 * Record the outcomes waiting, and drop batches that are done.  Should the
 * batch fail, each outcome is recorded on its own, so one row that cannot
 * be updated does not hold up the others: it stays claimed (and is
 * settled when the worker restarts), and the log says why.  Outcomes of
 * rows someone holds wait for a later flush.
 */
static void
dispatch_flush(void)
{
	QueueRecorded *recorded;
	ErrorData  *edata;
	int			kept = 0;
	int			i;

	if (d.noutcomes == 0 && !d.pause.release_delayed)
		return;

	recorded = palloc(sizeof(QueueRecorded) * Max(d.noutcomes, 1));
	edata = dispatch_record(d.outcomes, d.noutcomes, recorded);
	if (edata != NULL)
	{
		FreeErrorData(edata);
		for (i = 0; i < d.noutcomes; i++)
		{
			edata = dispatch_record(&d.outcomes[i], 1, &recorded[i]);
			if (edata != NULL)
			{
				dispatch_unrecorded(d.outcomes[i], edata);
				recorded[i] = RECORD_DROPPED;
			}
		}
	}

	for (i = 0; i < d.noutcomes; i++)
	{
		if (recorded[i] == RECORD_DEFERRED)
			d.outcomes[kept++] = d.outcomes[i];
		else
			dispatch_forget(d.outcomes[i]);
	}
	d.noutcomes = kept;
	if (kept > 0)
		d.deferred_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   DISPATCH_DEFER_MS);
	pfree(recorded);
}

/* ---- claiming ---- */

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

	if (d.freed_since_trim < DISPATCH_TRIM_JOBS || !dlist_is_empty(&d.batches))
		return -1;
	due = TimestampTzPlusMilliseconds(d.last_found_at, DISPATCH_TRIM_IDLE_MS);
	if (now < due)
		return jobsched_ms_until(now, due);
	malloc_trim(0);
	d.freed_since_trim = 0;
#endif
	return -1;
}

/*
 * Should the next claim wait for claim_delay?  Jobs streaming in (the
 * claim found several, one or more for each DISPATCH_STREAM_GAP_US since
 * the last) are given claim_delay to gather, rather than a claim, a round
 * of requests and a record for every commit or two.  The rate, not the
 * count: what gathers during the delay must not count as a stream by
 * itself, or jobs coming a few milliseconds apart would wait for the
 * delay forever after.  A job that comes alone is claimed at once, even
 * right after the last claim.
 *
 * This is one half of how wake-ups are batched; the other is the doorbell
 * (wake.c), which the worker arms only when it would sleep: while it waits
 * out claim_delay, commits only note that they came.
 */
static void
dispatch_note_claim(int n, bool full, TimestampTz now)
{
	if (n > 1 && !full && jobsched_claim_delay > 0 &&
		now - d.last_claim_at < (TimestampTz) n * DISPATCH_STREAM_GAP_US)
		d.claim_not_before = TimestampTzPlusMilliseconds(now, jobsched_claim_delay);
	d.last_claim_at = now;
	if (n > 0)
		d.last_found_at = now;
}

/* Claim a batch of due rows and give them their names. */
static void
dispatch_claim(void)
{
	MemoryContext cxt;
	JobschedBatch *batch;
	JobschedJob *volatile jobs = NULL;
	volatile int n = 0;
	int			i;
	char	   *namespace = jobsched_guc_namespace();
	volatile QueueState state = QUEUE_MISSING;
	TimestampTz due = 0;
	bool		full = false;

	cxt = AllocSetContextCreate(d.cxt, "jobsched batch", ALLOCSET_DEFAULT_SIZES);
	jobsched_wake_doorbell_quiet();
	PG_TRY();
	{
		state = jobsched_queue_begin("claiming pending jobs");
		if (state == QUEUE_READY)
		{
			JobschedJob *claimed = NULL;

			n = jobsched_queue_claim(jobsched_batch_size,
									 (int64) jobsched_batch_max_bytes * 1024,
									 namespace, cxt, &claimed, &due, &full);
			jobs = claimed;
		}
		jobsched_queue_end();
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (state == QUEUE_MISSING || state == QUEUE_OLD_SCHEMA)
		d.ready = false;
	if (state == QUEUE_BUSY)
	{
		/* someone holds the table: look again shortly */
		MemoryContextDelete(cxt);
		d.next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DISPATCH_DEFER_MS);
		d.work_maybe = false;
		return;
	}
	/* a claim that ran out of rows or bytes may have left due rows behind */
	d.work_maybe = full;
	if (state == QUEUE_READY)
	{
		dispatch_note_claim(n, full, GetCurrentTimestamp());
		/* all due rows taken: wake up when the next one falls due */
		if (!full && due != 0 && (d.next_due == 0 || due < d.next_due))
			d.next_due = due;
	}
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
	dlist_push_tail(&d.batches, &batch->node);
	d.current = batch;

	for (i = 0; i < n; i++)
	{
		jobs[i].batch = batch;
		jobs[i].name = MemoryContextStrdup(cxt, jobsched_job_name(jobsched_instance_id(),
																  jobs[i].type, jobs[i].id,
																  jobs[i].run));
	}
}

/*
 * Is the extension there, and have the leftovers of a crash been
 * recovered?  Rows left claimed go back to pending as unsettled: a create
 * of theirs may have reached the API before the crash.
 */
static void
dispatch_prepare(TimestampTz now)
{
	int			recovered = 0;
	bool		all = true;
	QueueState state;

	d.last_ready_check = now;
	jobsched_wake_doorbell_quiet();
	state = jobsched_queue_begin("recovering claimed jobs");
	if (state == QUEUE_READY)
		recovered = jobsched_queue_recover_claimed(&all);
	jobsched_queue_end();

	if (state == QUEUE_OLD_SCHEMA && !d.told_old_schema)
	{
		char	   *msg = psprintf("the jobsched extension's SQL objects are version %s, but the library is %s",
								   jobsched_queue_schema_version(), JOBSCHED_VERSION);

		ereport(WARNING,
				(errmsg("%s", msg),
				 errhint("Run ALTER EXTENSION jobsched UPDATE in database \"%s\"; the worker waits until then.",
						 jobsched_database)));
		jobsched_shmem_set_error(psprintf("%s: run ALTER EXTENSION jobsched UPDATE", msg));
		d.told_old_schema = true;
	}
	if (state != QUEUE_READY)
	{
		/*
		 * Someone holds the table, or the schema waits for its update: look
		 * again soon, not after poll_interval.
		 */
		if (state == QUEUE_BUSY || state == QUEUE_OLD_SCHEMA)
			d.last_ready_check = now - (TimestampTz) jobsched_poll_interval * 1000 +
				(state == QUEUE_BUSY ? DISPATCH_DEFER_MS : DISPATCH_OLD_SCHEMA_MS) * 1000;
		return;
	}
	if (d.told_old_schema)
		ereport(LOG,
				(errmsg("the jobsched extension's SQL objects are now version %s; the worker carries on",
						jobsched_queue_schema_version())));
	d.told_old_schema = false;
	if (recovered > 0)
		ereport(LOG,
				(errmsg("%d claimed jobs from an earlier run are pending again",
						recovered),
				 errdetail("Their Jobs are looked up before they are created again.")));
	d.ready = all;
	if (!all)
		d.last_ready_check = now - (TimestampTz) jobsched_poll_interval * 1000 +
			DISPATCH_DEFER_MS * 1000;
	d.work_maybe = true;
}

/* Hand back what was claimed but not sent (disabled, or paused). */
static void
dispatch_release_unsent(void)
{
	while (d.current && d.current->next_unstarted < d.current->njobs)
		dispatch_resolve(&d.current->jobs[d.current->next_unstarted++],
						 OUTCOME_RELEASE, NULL);
}

/* Claim and send while there is room in flight and work may wait. */
static void
dispatch_send_work(void)
{
	int			limit = d.pause.trial ? 1 : jobsched_max_in_flight;

	for (;;)
	{
		if (d.current == NULL || d.current->next_unstarted >= d.current->njobs)
		{
			if (!d.work_maybe || d.claim_not_before != 0 || d.in_flight >= limit)
				break;
			d.current = NULL;
			dispatch_claim();
			if (d.current == NULL)
				break;
		}
		while (d.current->next_unstarted < d.current->njobs && d.in_flight < limit)
			dispatch_send(&d.current->jobs[d.current->next_unstarted++]);
		if (d.in_flight >= limit)
			break;
	}
}

/* When must the dispatcher act next?  ms from now; -1: when woken. */
static long
dispatch_next_action(TimestampTz now, bool paused)
{
	long		timeout;
	long		trim_in;

	if (d.work_maybe && d.claim_not_before == 0 && !paused && jobsched_enabled &&
		d.in_flight < (d.pause.trial ? 1 : jobsched_max_in_flight))
		return 0;
	timeout = jobsched_ms_until(now, d.last_poll_at +
								(TimestampTz) jobsched_poll_interval * 1000);
	if (d.next_due != 0)
		timeout = Min(timeout, jobsched_ms_until(now, d.next_due));
	if (paused && d.pause.probe == NULL)
		timeout = Min(timeout, jobsched_ms_until(now, Max(d.pause.until, d.pause.hold_until)));
	if (d.claim_not_before != 0)
		timeout = Min(timeout, jobsched_ms_until(now, d.claim_not_before));
	if (d.noutcomes > 0)
		timeout = Min(timeout, d.deferred_until > now ?
					  jobsched_ms_until(now, d.deferred_until) : DISPATCH_FLUSH_MS);
	trim_in = dispatch_trim_when_idle(now);
	if (trim_in >= 0)
		timeout = Min(timeout, trim_in);
	return timeout;
}

/*
 * One pass of the dispatcher.  Returns how long the worker may sleep
 * before the dispatcher needs another pass, in ms (-1: until woken).
 */
long
jobsched_dispatch_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		paused;

	if (!d.ready)
	{
		if (now >= d.last_ready_check + (TimestampTz) jobsched_poll_interval * 1000)
			dispatch_prepare(now);
		if (!d.ready)
		{
			/* the first job queued once the extension is there rings */
			if (jobsched_enabled && !jobsched_wake_doorbell_arm())
				d.last_ready_check = 0;
			return jobsched_ms_until(now, d.last_ready_check +
									 (TimestampTz) jobsched_poll_interval * 1000);
		}
	}

	if (now >= d.last_poll_at + (TimestampTz) jobsched_poll_interval * 1000)
	{
		d.work_maybe = true;
		d.last_poll_at = now;
	}
	if (d.next_due != 0 && now >= d.next_due)
	{
		d.work_maybe = true;
		d.next_due = 0;
	}
	if (d.claim_not_before != 0 && now >= d.claim_not_before)
		d.claim_not_before = 0;
	paused = dispatch_pause_check(now);

	if (!jobsched_enabled || paused)
		dispatch_release_unsent();
	else
		dispatch_send_work();

	/* while jobs are gathering, their outcomes can wait for company too */
	if (d.pause.release_delayed ||
		(d.noutcomes > 0 && now >= d.deferred_until &&
		 (d.noutcomes >= DISPATCH_FLUSH_COUNT ||
		  (d.in_flight == 0 && d.claim_not_before == 0) ||
		  TimestampDifferenceExceeds(d.first_outcome_at, now, DISPATCH_FLUSH_MS))))
		dispatch_flush();

	jobsched_shmem_set_dispatch(d.in_flight, paused ? Max(d.pause.until, d.pause.hold_until) : 0);

	/*
	 * Nothing more to claim for now: arm the doorbell, unless commits came
	 * since the last claim, or a disabled or paused dispatcher could not act
	 * on it (it looks again when that ends).
	 */
	if (!d.work_maybe && d.claim_not_before == 0 && !paused && jobsched_enabled &&
		!jobsched_wake_doorbell_arm())
		d.work_maybe = true;

	return dispatch_next_action(GetCurrentTimestamp(), paused);
}

/*
 * Forget all work in hand after an error.  The rows stay claimed; the
 * next pass puts them back to pending, unsettled.
 */
void
jobsched_dispatch_reset(void)
{
	while (!dlist_is_empty(&d.batches))
	{
		JobschedBatch *batch = dlist_container(JobschedBatch, node,
											   dlist_pop_head_node(&d.batches));

		MemoryContextDelete(batch->cxt);
	}
	d.current = NULL;
	d.in_flight = 0;
	d.noutcomes = 0;
	d.ready = false;
	d.last_ready_check = 0;
	d.work_maybe = true;
	d.claim_not_before = 0;
	/* the probe was abandoned with every other request */
	d.pause.probe = NULL;
}
