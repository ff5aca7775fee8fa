/*-------------------------------------------------------------------------
 *
 * jobsched.c
 *	  Library entry point: settings, shared memory, the wake-up hook and
 *	  the background worker are all set up from _PG_init, which therefore
 *	  must run in the postmaster through shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "compat.h"
#include "jobsched.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
jobsched_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	jobsched_shmem_request();
}

static void
jobsched_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	jobsched_shmem_startup();
}

void
_PG_init(void)
{
	/*
	 * The worker, its shared memory and the postmaster-only settings exist
	 * only when the postmaster loads us.  Loading later (LOAD, or a C
	 * function of a database where the extension was created without
	 * preloading) would give a queue nobody serves, so say how to fix it.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jobsched must be loaded via shared_preload_libraries"),
				 errhint("Add jobsched to shared_preload_libraries in postgresql.conf and restart the server.")));

	jobsched_guc_define();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = jobsched_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = jobsched_shmem_startup_hook;

	jobsched_wake_init();

	/*
	 * pg_upgrade starts both clusters in binary-upgrade mode, with our
	 * library preloaded, while it dumps, restores and moves the data: a
	 * worker there would submit or change jobs the real cluster then knows
	 * nothing of.
	 */
	if (IsBinaryUpgrade)
	{
		ereport(LOG,
				(errmsg("jobsched worker not started: the server runs in binary-upgrade mode")));
		return;
	}
	jobsched_worker_register();
}
