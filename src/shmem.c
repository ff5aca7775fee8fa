/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The worker's state in shared memory: every read and write of it goes
 *	  through the functions here (the status view reads it through
 *	  status.c, so it answers without the worker's help, even while the
 *	  Kubernetes API is down).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "jobsched.h"

JobschedShared *jobsched_shared = NULL;

void
jobsched_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(JobschedShared)));
}

void
jobsched_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobsched_shared = ShmemInitStruct("jobsched", sizeof(JobschedShared), &found);
	if (!found)
	{
		memset(jobsched_shared, 0, sizeof(JobschedShared));
		SpinLockInit(&jobsched_shared->mutex);
		jobsched_shared->worker_procno = -1;
		pg_atomic_init_u64(&jobsched_shared->cancel_requests, 0);
		pg_atomic_init_u64(&jobsched_shared->wakeups, 0);
		/* a worker looks at start anyway */
		pg_atomic_init_u32(&jobsched_shared->doorbell, JOBSCHED_DOORBELL_NOTED);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Remember the latest error for jobsched.status, which everyone with USAGE
 * reads: never a secret, never a job's params (the API's words about one
 * job's manifest go to that job's row only).
 */
void
jobsched_shmem_set_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *clean = jobsched_clean_text(message, JOBSCHED_ERROR_LEN - 1);

	SpinLockAcquire(&jobsched_shared->mutex);
	strlcpy(jobsched_shared->last_error, clean, JOBSCHED_ERROR_LEN);
	jobsched_shared->last_error_at = now;
	SpinLockRelease(&jobsched_shared->mutex);
	pfree(clean);
}

void
jobsched_shmem_set_worker(pid_t pid, int procno)
{
	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->worker_pid = pid;
	jobsched_shared->worker_procno = procno;
	if (pid == 0)
	{
		jobsched_shared->listening = false;
		jobsched_shared->config_loaded_at = 0;
		jobsched_shared->in_flight = 0;
	}
	SpinLockRelease(&jobsched_shared->mutex);
}

void
jobsched_shmem_set_listening(bool listening)
{
	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->listening = listening;
	SpinLockRelease(&jobsched_shared->mutex);
}

/* The worker's latch woke it (the worker is the only writer). */
void
jobsched_shmem_count_wakeup(void)
{
	pg_atomic_write_u64(&jobsched_shared->wakeups,
						pg_atomic_read_u64(&jobsched_shared->wakeups) + 1);
}

/*
 * The worker's latch, when it runs and acts on wake-ups; -1 otherwise.
 * It publishes being enabled under the same mutex before it rescans, so a
 * commit that saw it disabled is visible to that scan.
 */
int
jobsched_shmem_awake_worker_procno(void)
{
	int			procno;

	SpinLockAcquire(&jobsched_shared->mutex);
	procno = jobsched_shared->enabled ? jobsched_shared->worker_procno : -1;
	SpinLockRelease(&jobsched_shared->mutex);
	return procno;
}

/* A committed jobsched.cancel(): counted, for the worker to notice. */
void
jobsched_shmem_add_cancel_request(void)
{
	pg_atomic_fetch_add_u64(&jobsched_shared->cancel_requests, 1);
}

uint64
jobsched_shmem_cancel_requests(void)
{
	return pg_atomic_read_u64(&jobsched_shared->cancel_requests);
}

/* The doorbell (see wake.c): set it to state, return what it was. */
uint32
jobsched_shmem_doorbell_swap(uint32 state)
{
	return pg_atomic_exchange_u32(&jobsched_shared->doorbell, state);
}

/*
 * Set the doorbell to state if it is *expected; else *expected gets what
 * it is.  Returns whether it was set.
 */
bool
jobsched_shmem_doorbell_change(uint32 *expected, uint32 state)
{
	return pg_atomic_compare_exchange_u32(&jobsched_shared->doorbell, expected, state);
}

/* Requests made to the API, and whether one just worked. */
void
jobsched_shmem_count_requests(int requests, int errors, int submitted, bool api_ok)
{
	TimestampTz now = api_ok ? GetCurrentTimestamp() : 0;

	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->api_requests += requests;
	jobsched_shared->api_errors += errors;
	jobsched_shared->jobs_submitted += submitted;
	if (api_ok)
		jobsched_shared->last_api_success_at = now;
	SpinLockRelease(&jobsched_shared->mutex);
}

/* The dispatcher's requests in flight, and until when it is paused (0: not). */
void
jobsched_shmem_set_dispatch(int in_flight, TimestampTz paused_until)
{
	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->in_flight = in_flight;
	jobsched_shared->paused_until = paused_until;
	SpinLockRelease(&jobsched_shared->mutex);
}

/* A cleanup run is over. */
void
jobsched_shmem_set_cleanup(uint64 jobs_deleted, uint64 pods_deleted)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->last_cleanup_at = now;
	jobsched_shared->last_cleanup_jobs_deleted = jobs_deleted;
	jobsched_shared->last_cleanup_pods_deleted = pods_deleted;
	SpinLockRelease(&jobsched_shared->mutex);
}

/* Show the settings the worker now works with (after start and SIGHUP). */
void
jobsched_shmem_publish_config(void)
{
	char	   *namespace = jobsched_guc_namespace();
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&jobsched_shared->mutex);
	jobsched_shared->enabled = jobsched_enabled;
	jobsched_shared->wake_mode = jobsched_wake_mode;
	strlcpy(jobsched_shared->namespace, namespace, sizeof(jobsched_shared->namespace));
	jobsched_shared->config_loaded_at = now;
	SpinLockRelease(&jobsched_shared->mutex);
	pfree(namespace);
}

/* A consistent copy of the shared state, for jobsched.worker_state(). */
void
jobsched_shmem_snapshot(JobschedShared *copy, uint64 *wakeups)
{
	if (jobsched_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jobsched shared memory is not initialized"),
				 errhint("Add jobsched to shared_preload_libraries in postgresql.conf and restart the server.")));
	SpinLockAcquire(&jobsched_shared->mutex);
	memcpy(copy, jobsched_shared, sizeof(JobschedShared));
	SpinLockRelease(&jobsched_shared->mutex);
	*wakeups = pg_atomic_read_u64(&jobsched_shared->wakeups);
}
