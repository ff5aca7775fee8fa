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

/* Remember the latest error for jobsched.status (never a secret). */
void
jobsched_shmem_set_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&jobsched_shared->mutex);
	strlcpy(jobsched_shared->last_error, message, JOBSCHED_ERROR_LEN);
	jobsched_shared->last_error_at = now;
	SpinLockRelease(&jobsched_shared->mutex);
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

static Datum
shmem_timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

Datum
jobsched_worker_state(PG_FUNCTION_ARGS)
{
	JobschedShared copy;
	TupleDesc	tupdesc;
	Datum		values[19];
	bool		nulls[19];
	bool		running;
	int			i = 0;

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
	memset(nulls, 0, sizeof(nulls));
	nulls[i] = (copy.worker_pid == 0);
	values[i++] = Int32GetDatum(copy.worker_pid);
	values[i++] = BoolGetDatum(copy.listening);
	values[i++] = BoolGetDatum(running ? copy.enabled : jobsched_enabled);
	values[i++] = CStringGetTextDatum(jobsched_wake_mode_name(running ? copy.wake_mode :
															  jobsched_wake_mode));
	if (running)
		values[i++] = CStringGetTextDatum(copy.namespace);
	else
		values[i++] = CStringGetTextDatum(jobsched_guc_namespace());
	values[i] = shmem_timestamp_or_null(copy.config_loaded_at, &nulls[i]);
	i++;
	values[i++] = CStringGetTextDatum(jobsched_instance_id());
	values[i++] = Int32GetDatum(copy.in_flight);
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&jobsched_shared->wakeups));
	values[i++] = Int64GetDatum((int64) copy.jobs_submitted);
	values[i++] = Int64GetDatum((int64) copy.api_requests);
	values[i++] = Int64GetDatum((int64) copy.api_errors);
	nulls[i] = (copy.last_error[0] == '\0');
	values[i++] = CStringGetTextDatum(copy.last_error);
	values[i] = shmem_timestamp_or_null(copy.last_error_at, &nulls[i]);
	i++;
	values[i] = shmem_timestamp_or_null(copy.last_api_success_at, &nulls[i]);
	i++;
	values[i] = shmem_timestamp_or_null(copy.paused_until, &nulls[i]);
	i++;
	values[i] = shmem_timestamp_or_null(copy.last_cleanup_at, &nulls[i]);
	i++;
	nulls[i] = (copy.last_cleanup_at == 0);
	values[i++] = Int64GetDatum((int64) copy.last_cleanup_jobs_deleted);
	nulls[i] = (copy.last_cleanup_at == 0);
	values[i++] = Int64GetDatum((int64) copy.last_cleanup_pods_deleted);
	Assert(i == lengthof(values));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
