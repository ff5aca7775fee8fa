/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  The doorbell: the trigger function that wakes the worker when a row
 *	  needs it, by NOTIFY or by setting the worker's latch at commit.
 *
 *	  NOTIFY takes a cluster-wide lock at commit, held through the WAL
 *	  flush, so notifying commits run one at a time.  The latch mode keeps
 *	  a flag per transaction instead and rings a doorbell from a commit
 *	  callback, once the rows are visible; it takes no lock.  Either way a
 *	  wake-up only says "rescan": the worker never relies on it carrying
 *	  anything, so none can be lost or double-counted.
 *
 *	  The doorbell is one word in shared memory.  The worker arms it when it
 *	  has looked at the queue and would sleep; the first commit after that
 *	  swaps it to NOTED and sets the worker's latch, and every later commit
 *	  swaps it too but finds it rung already, so a stream of commits costs
 *	  one wake-up per scan, not one per commit.  Before each scan the worker
 *	  sets it QUIET: commits visible to the scan need not ring, and those
 *	  after it leave NOTED behind, which the worker finds when it tries to
 *	  arm it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "storage/latch.h"
#include "storage/proc.h"

#include "jobsched.h"

PG_FUNCTION_INFO_V1(jobsched_wake_worker);

/* true in the worker: its own updates must not wake itself */
static bool wake_in_worker = false;

/* latch mode: this transaction queued work, set the latch at commit */
static bool wake_at_commit = false;

/*
 * This transaction asked to cancel a job.  At commit, once the request is
 * visible, a counter in shared memory says so and the latch is set (in
 * either mode): the worker scans for cancel requests only when the counter
 * moved, not on every wake-up for new rows.
 */
static bool wake_cancel_at_commit = false;

void
jobsched_wake_mark_worker_process(void)
{
	wake_in_worker = true;
}

static void
wake_set_worker_latch(void)
{
	/*
	 * A disabled worker acts on no wake-up, so it is left asleep: it
	 * rescans when a reload enables it.
	 */
	int			procno = jobsched_shmem_awake_worker_procno();

	/*
	 * A stale procno (the worker just exited) sets some other process's
	 * latch: a spurious wake-up, which every latch user tolerates.
	 */
	if (procno >= 0 && procno < (int) ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_cancel_at_commit)
			{
				jobsched_shmem_add_cancel_request();
				wake_set_worker_latch();
			}
			else if (wake_at_commit &&
					 jobsched_shmem_doorbell_swap(JOBSCHED_DOORBELL_NOTED) ==
					 JOBSCHED_DOORBELL_ARMED)
				wake_set_worker_latch();
			wake_at_commit = wake_cancel_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction is found by the poll */
			wake_at_commit = wake_cancel_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * The worker is about to scan the queue: what is committed now, it will
 * see, so commits need not ring until it arms the doorbell again.  A full
 * barrier, before the scan's snapshot.
 */
void
jobsched_wake_doorbell_quiet(void)
{
	(void) jobsched_shmem_doorbell_swap(JOBSCHED_DOORBELL_QUIET);
}

/*
 * The worker would sleep: arm the doorbell.  Returns false if commits
 * came since the last scan, which the worker must scan for instead.
 */
bool
jobsched_wake_doorbell_arm(void)
{
	uint32		expected = JOBSCHED_DOORBELL_QUIET;

	return jobsched_shmem_doorbell_change(&expected, JOBSCHED_DOORBELL_ARMED) ||
		expected == JOBSCHED_DOORBELL_ARMED;
}

void
jobsched_wake_init(void)
{
	RegisterXactCallback(wake_xact_callback, NULL);
}

/*
 * Trigger function on jobsched.jobs.  The triggers' WHEN clauses already
 * limit it to rows that need the worker; duplicate NOTIFYs within one
 * transaction are folded by PostgreSQL.
 */
Datum
jobsched_wake_worker(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jobsched.wake_worker() must be called as a trigger")));

	if (wake_in_worker || jobsched_shared == NULL)
		return PointerGetDatum(NULL);

	/* the update trigger: a cancel request (or a row put back to pending) */
	if (TRIGGER_FIRED_BY_UPDATE(((TriggerData *) fcinfo->context)->tg_event))
		wake_cancel_at_commit = true;

	if (jobsched_wake_mode == JOBSCHED_WAKE_LATCH)
		wake_at_commit = true;
	else
		Async_Notify(jobsched_channel, NULL);

	return PointerGetDatum(NULL);
}
