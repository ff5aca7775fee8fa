/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The worker's state in shared memory, and jobsched.worker_state(),
 *	  which reads it.  Being in shared memory, the status answers without
 *	  the worker's help, even while the Kubernetes API is down.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "jobsched.h"

JobschedShared *jobsched_shared = NULL;

PG_FUNCTION_INFO_V1(jobsched_worker_state);

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

static void
shmem_timestamp(TimestampTz ts, Datum *value, bool *isnull)
{
	*isnull = (ts == 0);
	*value = TimestampTzGetDatum(ts);
}

/* One column of jobsched.worker_state(), by name: *v, or *n for null. */
static void
shmem_state_column(const JobschedShared *copy, bool running, const char *name,
				   Datum *v, bool *n)
{
	if (strcmp(name, "worker_pid") == 0)
	{
		*n = (copy->worker_pid == 0);
		*v = Int32GetDatum(copy->worker_pid);
	}
	else if (strcmp(name, "listening") == 0)
		*v = BoolGetDatum(copy->listening);
	else if (strcmp(name, "enabled") == 0)
		*v = BoolGetDatum(running ? copy->enabled : jobsched_enabled);
	else if (strcmp(name, "wake_mode") == 0)
		*v = CStringGetTextDatum(jobsched_wake_mode_name(running ? copy->wake_mode :
														 jobsched_wake_mode));
	else if (strcmp(name, "namespace") == 0)
		*v = CStringGetTextDatum(running ? copy->namespace : jobsched_guc_namespace());
	else if (strcmp(name, "config_loaded_at") == 0)
		shmem_timestamp(copy->config_loaded_at, v, n);
	else if (strcmp(name, "in_flight") == 0)
		*v = Int32GetDatum(copy->in_flight);
	else if (strcmp(name, "wakeups") == 0)
		*v = Int64GetDatum((int64) pg_atomic_read_u64(&jobsched_shared->wakeups));
	else if (strcmp(name, "jobs_submitted") == 0)
		*v = Int64GetDatum((int64) copy->jobs_submitted);
	else if (strcmp(name, "api_requests") == 0)
		*v = Int64GetDatum((int64) copy->api_requests);
	else if (strcmp(name, "api_errors") == 0)
		*v = Int64GetDatum((int64) copy->api_errors);
	else if (strcmp(name, "last_error") == 0)
	{
		*n = (copy->last_error[0] == '\0');
		*v = CStringGetTextDatum(copy->last_error);
	}
	else if (strcmp(name, "last_error_at") == 0)
		shmem_timestamp(copy->last_error_at, v, n);
	else if (strcmp(name, "last_api_success_at") == 0)
		shmem_timestamp(copy->last_api_success_at, v, n);
	else if (strcmp(name, "paused_until") == 0)
		shmem_timestamp(copy->paused_until, v, n);
	else if (strcmp(name, "last_cleanup_at") == 0)
		shmem_timestamp(copy->last_cleanup_at, v, n);
	else if (strcmp(name, "last_cleanup_jobs_deleted") == 0)
	{
		*n = (copy->last_cleanup_at == 0);
		*v = Int64GetDatum((int64) copy->last_cleanup_jobs_deleted);
	}
	else if (strcmp(name, "last_cleanup_pods_deleted") == 0)
	{
		*n = (copy->last_cleanup_at == 0);
		*v = Int64GetDatum((int64) copy->last_cleanup_pods_deleted);
	}
	else if (strcmp(name, "instance") == 0)
	{
		/* only 1.0 declares it here; 1.1 reads jobsched.installation */
		*v = CStringGetTextDatum(jobsched_legacy_instance_id());
	}
	else
		*n = true;
}

/*
 * jobsched.worker_state(): the columns are filled by name, so the function
 * answers whichever version of the SQL objects declared it (a column this
 * library does not know is null).
 */
Datum
jobsched_worker_state(PG_FUNCTION_ARGS)
{
	JobschedShared copy;
	TupleDesc	tupdesc;
	Datum	   *values;
	bool	   *nulls;
	bool		running;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (jobsched_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jobsched shared memory is not initialized"),
				 errhint("Add jobsched to shared_preload_libraries in postgresql.conf and restart the server.")));

	SpinLockAcquire(&jobsched_shared->mutex);
	memcpy(&copy, jobsched_shared, sizeof(JobschedShared));
	SpinLockRelease(&jobsched_shared->mutex);

	/* the worker's own view of the settings while it runs, else ours */
	running = (copy.worker_pid != 0 && copy.config_loaded_at != 0);
	values = palloc0(sizeof(Datum) * tupdesc->natts);
	nulls = palloc0(sizeof(bool) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
		shmem_state_column(&copy, running, NameStr(TupleDescAttr(tupdesc, i)->attname),
						   &values[i], &nulls[i]);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
