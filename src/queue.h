/*-------------------------------------------------------------------------
 *
 * queue.h
 *	  The worker's view of jobsched.jobs: claiming pending rows and
 *	  recording what became of them, each in one short transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_QUEUE_H
#define JOBSCHED_QUEUE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* what jobsched_queue_begin() found */
typedef enum QueueState
{
	QUEUE_READY,				/* go ahead */
	QUEUE_MISSING,				/* the extension is not installed */
	QUEUE_OLD_SCHEMA,			/* installed, but its SQL objects are older */
	QUEUE_BUSY					/* a table is locked by someone: try later */
} QueueState;

typedef enum JobschedOutcome
{
	OUTCOME_NONE,				/* still being worked on */
	OUTCOME_SUBMITTED,			/* the Job exists */
	OUTCOME_FAILED,				/* can never be submitted as it stands */
	OUTCOME_RETRY,				/* back to pending, after a delay */
	OUTCOME_RELEASE				/* back to pending, never tried */
} JobschedOutcome;

struct JobschedBatch;

typedef struct JobschedJob
{
	/* from the claim */
	int64		id;
	char	   *type;
	char	   *params;			/* JSON text */
	char	   *template;		/* JSON text */
	char	   *namespace;
	int			attempts;
	int			retryable_failures;
	int			priority;
	int			run;
	TimestampTz created_at;
	bool		unsettled;		/* a create may have reached the API unseen */
	char	   *last_error;		/* the row's, from its last attempt */
	char	   *name;			/* the Job's metadata.name */

	/* the outcome, set by the dispatcher */
	JobschedOutcome outcome;
	char	   *uid;
	char	   *error;
	int			delay_ms;		/* OUTCOME_RETRY: not before now + this */
	int			attempted;		/* 1 if a create was tried */
	int			retryable;		/* 1 if it failed transiently */

	struct JobschedBatch *batch;
} JobschedJob;

/* what recording an outcome did (jobsched_queue_record) */
typedef enum QueueRecorded
{
	RECORDED,					/* the row has its outcome */
	RECORD_DROPPED,				/* the row is no longer claimed: nothing to do */
	RECORD_DEFERRED				/* someone holds the row: try again later */
} QueueRecorded;

/* what the status sync saw of one Job (see sync.c) */
typedef struct JobschedJobStatus
{
	int64		id;				/* from the Job's jobsched.io/job-id label */
	char	   *namespace;
	char	   *name;
	char	   *uid;
	const char *state;			/* submitted, running, succeeded, failed, gone */
	char	   *error;			/* failed, gone: why */
	TimestampTz started_at;		/* 0: not known */
	TimestampTz finished_at;	/* 0: not known */
	char	   *proof;			/* its jobsched.io/proof annotation, or NULL */
	bool		proven;			/* the proof holds for run and created_at: */
	int			run;
	TimestampTz created_at;
	TimestampTz seen_at;		/* when sync saw it (deferred ones expire) */
} JobschedJobStatus;

/* a row whose Job the worker must delete */
typedef struct JobschedDoomedJob
{
	int64		id;
	char	   *namespace;
	char	   *name;
	char	   *uid;			/* NULL: look the Job up first */
	int			run;
	TimestampTz created_at;
} JobschedDoomedJob;

/* a row whose Job should exist (jobsched_queue_live_jobs) */
typedef struct JobschedLiveJob
{
	int64		id;
	char	   *uid;
} JobschedLiveJob;

extern char *jobsched_extension_version(void);
extern QueueState jobsched_queue_begin(const char *activity);
extern void jobsched_queue_end(void);
extern void jobsched_queue_reset(void);
extern const char *jobsched_queue_schema_version(void);
extern int	jobsched_queue_recover_claimed(bool *all);
extern int	jobsched_queue_claim(int limit, int64 max_bytes, const char *default_namespace,
								 MemoryContext cxt, JobschedJob **jobs_out,
								 TimestampTz *next_due, bool *full);
extern bool jobsched_queue_record(JobschedJob **jobs, int njobs, QueueRecorded *recorded);
extern void jobsched_queue_retry_now(int64 *ids, int n);
extern List *jobsched_queue_namespaces(const char *default_namespace,
									   MemoryContext cxt);
extern int	jobsched_queue_apply_status(JobschedJobStatus *statuses, int n,
										MemoryContext cxt, int64 **failed,
										bool *deferred);
extern int	jobsched_queue_open_rows(MemoryContext cxt, int64 **out);
extern int	jobsched_queue_live_jobs(const char *namespace, TimestampTz before,
									 MemoryContext cxt, JobschedLiveJob **out);
extern int	jobsched_queue_mark_missing(int64 *ids, int n);
extern void jobsched_queue_append_error(int64 id, const char *detail);
extern int	jobsched_queue_cancel_requests(int limit, const char *default_namespace,
										   MemoryContext cxt, JobschedDoomedJob **out);
extern bool jobsched_queue_record_cancelled(int64 id, const char *error);
extern void jobsched_queue_record_cleanup(const JobschedJobStatus *job, bool was_active,
										  const char *message);

#endif							/* JOBSCHED_QUEUE_H */
