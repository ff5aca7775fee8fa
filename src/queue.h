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

extern bool jobsched_queue_begin(const char *activity);
extern void jobsched_queue_end(void);
extern int	jobsched_queue_recover_claimed(void);
extern int	jobsched_queue_claim(int limit, const char *default_namespace,
								 MemoryContext cxt, JobschedJob **jobs_out);
extern void jobsched_queue_record(JobschedJob **jobs, int njobs);

#endif							/* JOBSCHED_QUEUE_H */
