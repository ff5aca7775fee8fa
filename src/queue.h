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

/* what the status sync saw of one Job (see sync.c) */
typedef struct JobschedJobStatus
{
	int64		id;				/* from the Job's jobsched.io/job-id label */
	char	   *uid;
	const char *state;			/* running, succeeded, failed, or gone */
	char	   *error;			/* failed, gone: why */
	char	   *started_at;		/* RFC 3339, or NULL */
	char	   *finished_at;	/* RFC 3339, or NULL */
} JobschedJobStatus;

/* a job whose Job the worker must delete */
typedef struct JobschedDoomedJob
{
	int64		id;
	char	   *namespace;
	char	   *name;
	char	   *uid;
} JobschedDoomedJob;

extern bool jobsched_queue_begin(const char *activity);
extern void jobsched_queue_end(void);
extern void jobsched_queue_reset(void);
extern int	jobsched_queue_recover_claimed(void);
extern int	jobsched_queue_claim(int limit, const char *default_namespace,
								 MemoryContext cxt, JobschedJob **jobs_out,
								 TimestampTz *next_due);
extern bool jobsched_queue_record(JobschedJob **jobs, int njobs);
extern List *jobsched_queue_namespaces(const char *default_namespace,
									   MemoryContext cxt);
extern List *jobsched_queue_apply_status(JobschedJobStatus *statuses, int n,
										 MemoryContext cxt);
extern int	jobsched_queue_mark_missing(const char *namespace, TimestampTz listed_at,
										int64 *seen, int nseen);
extern void jobsched_queue_append_error(int64 id, const char *detail);
extern int	jobsched_queue_cancel_requests(int limit, MemoryContext cxt,
										   JobschedDoomedJob **out);
extern void jobsched_queue_record_cancelled(int64 id, const char *error);
extern void jobsched_queue_record_cleanup(int64 id, bool was_active, const char *message);

#endif							/* JOBSCHED_QUEUE_H */
