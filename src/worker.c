/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The jobsched background worker: registration, signals, LISTEN, the
 *	  main loop, and recovery from errors.
 *
 *	  The worker LISTENs in-process on jobsched.channel; a notification
 *	  (or the commit-time latch of wake.c) only sets its latch, and the
 *	  worker rescans the queue, so the payload never matters.  It drains
 *	  its notifications on every pass, with no transaction open, or the
 *	  cluster-wide NOTIFY queue could not be trimmed.
 *
 *	  An error during a pass is reported and cleaned up the way autovacuum
 *	  does it, and the worker carries on: one bad row or one failed
 *	  statement never stops the queue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "cancel.h"
#include "cleanup.h"
#include "compat.h"
#include "dispatch.h"
#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"
#include "sync.h"

/* after an error, wait this long before the next pass */
#define WORKER_ERROR_PAUSE_MS 1000

static char *worker_listening_channel = NULL;
static uint64 worker_cancel_requests_seen = 0;
static MemoryContext worker_pass_cxt = NULL;

void
jobsched_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* not too eager: a missing database must not flood the log */
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "jobsched");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "jobsched_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "jobsched worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "jobsched worker");
	RegisterBackgroundWorker(&worker);
}

static void
worker_on_exit(int code, Datum arg)
{
	jobsched_shmem_set_worker(0, -1);
}

/*
 * LISTEN on jobsched.channel (again, if it changed).  SQL LISTEN is refused
 * in a background worker; Async_Listen registers us at commit.
 */
static void
worker_listen(void)
{
	if (worker_listening_channel &&
		strcmp(worker_listening_channel, jobsched_channel) == 0)
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (worker_listening_channel)
		Async_Unlisten(worker_listening_channel);
	Async_Listen(jobsched_channel);
	CommitTransactionCommand();

	if (worker_listening_channel)
		pfree(worker_listening_channel);
	worker_listening_channel = MemoryContextStrdup(TopMemoryContext, jobsched_channel);
	jobsched_shmem_set_listening(true);
	elog(DEBUG1, "listening on channel \"%s\"", jobsched_channel);
}

/*
 * Read the notifications that arrived: each already set our latch, which
 * is all they are for.  Must run outside any transaction.
 */
static void
worker_drain_notifications(void)
{
	Assert(!IsTransactionOrTransactionBlock());
	if (notifyInterruptPending)
	{
		ProcessNotifyInterrupt(false);
		jobsched_dispatch_wake();
	}
}

/* Commits that asked to cancel a job since the last look? */
static void
worker_check_cancel_requests(void)
{
	uint64		seen = jobsched_shmem_cancel_requests();

	if (seen != worker_cancel_requests_seen)
	{
		worker_cancel_requests_seen = seen;
		jobsched_cancel_wake();
	}
}

/*
 * The settings changed (SIGHUP): every duty takes them up at once, a pause
 * of submissions is lifted, and settings that may hurt are said in the log.
 */
static void
worker_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	jobsched_guc_warn_risky();
	jobsched_kube_configure();
	jobsched_dispatch_reload();
	jobsched_sync_reload();
	jobsched_cancel_wake();
	/* last: whoever waits for the reload sees it done */
	jobsched_shmem_publish_config();
}

static void
worker_loop(void)
{
	for (;;)
	{
		long		timeout;
		KubeRequest *req;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			worker_reload();
		worker_listen();		/* again, if the channel changed */
		worker_drain_notifications();
		worker_check_cancel_requests();

		MemoryContextReset(worker_pass_cxt);
		MemoryContextSwitchTo(worker_pass_cxt);

		timeout = jobsched_dispatch_run();
		/* creates go out before the other duties run */
		jobsched_kube_kick();
		if (jobsched_dispatch_take_cancel_due())
			jobsched_cancel_wake();
		timeout = jobsched_min_timeout(timeout, jobsched_cancel_run());
		timeout = jobsched_min_timeout(timeout, jobsched_sync_run());
		timeout = jobsched_min_timeout(timeout, jobsched_cleanup_run());

		if (jobsched_kube_wait(timeout, PG_WAIT_EXTENSION))
		{
			ResetLatch(MyLatch);
			jobsched_shmem_count_wakeup();
			jobsched_dispatch_wake();
		}
		while ((req = jobsched_kube_next_done()) != NULL)
			req->on_done(req);
	}
}

/*
 * Clean up after an error in a pass, the way autovacuum does, so the next
 * pass starts from a clean state.  Rows left claimed are recovered by the
 * next pass.
 */
static void
worker_recover_from_error(void)
{
	ErrorData  *edata;

	HOLD_INTERRUPTS();
	EmitErrorReport();
	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	jobsched_shmem_set_error(edata->message);
	FreeErrorData(edata);
	/* libcurl lets go of every request first, then each module its memory */
	jobsched_kube_abandon_all();
	jobsched_queue_reset();
	jobsched_dispatch_reset();
	jobsched_sync_reset();
	jobsched_cancel_reset();
	jobsched_cleanup_reset();
	MemoryContextReset(worker_pass_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	RESUME_INTERRUPTS();

	/* do not spin on an error that repeats */
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 WORKER_ERROR_PAUSE_MS, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

void
jobsched_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(jobsched_database, NULL, 0);
	pgstat_report_appname("jobsched worker");

	/*
	 * The worker runs as the bootstrap superuser inside someone else's
	 * database.  Nothing a user can create may change what it executes: its
	 * statements resolve names in pg_catalog only (pg_temp, last, is never
	 * searched for functions or operators), as PostgreSQL's own advice for
	 * SECURITY DEFINER functions says.  The statements name their tables
	 * with their schema as well.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Our own bookkeeping may be lost in a crash without harm: claimed rows
	 * are recovered and retried creates meet 409 for Jobs that are ours.
	 * Not waiting for the WAL flush keeps the worker fast.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker's statements are planned once and kept (queue.c).  A plan
	 * made while jobsched.jobs was small would read the whole table on every
	 * claim once it has grown, until autovacuum's next ANALYZE: look rows up
	 * by index, always.  That makes the estimated cost of any plan that still
	 * holds a sequential scan huge, and statements this short must never pay
	 * for JIT compilation.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	jobsched_wake_mark_worker_process();
	jobsched_shmem_set_worker(MyProcPid, jobsched_my_procno());
	before_shmem_exit(worker_on_exit, (Datum) 0);

	worker_pass_cxt = AllocSetContextCreate(TopMemoryContext, "jobsched worker pass",
											ALLOCSET_DEFAULT_SIZES);
	jobsched_kobject_init();
	jobsched_dispatch_init();
	jobsched_sync_init();
	jobsched_cancel_init();
	jobsched_cleanup_init();
	jobsched_kube_init();
	jobsched_shmem_publish_config();
	jobsched_guc_warn_risky();

	ereport(LOG,
			(errmsg("worker started for database \"%s\"", jobsched_database),
			 errdetail("Kubernetes API at %s, wake mode %s.",
					   jobsched_kube_url(),
					   jobsched_wake_mode_name(jobsched_wake_mode))));

	for (;;)
	{
		PG_TRY();
		{
			worker_loop();
		}
		PG_CATCH();
		{
			worker_recover_from_error();
		}
		PG_END_TRY();
	}
}
