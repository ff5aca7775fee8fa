/*-------------------------------------------------------------------------
 *
 * status.c
 *	  jobsched.worker_state(), which the jobsched.status view shows: the
 *	  worker's state as shmem.c keeps it, and the settings in force.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "jobsched.h"

PG_FUNCTION_INFO_V1(jobsched_worker_state);

static void
status_timestamp(TimestampTz ts, Datum *value, bool *isnull)
{
	*isnull = (ts == 0);
	*value = TimestampTzGetDatum(ts);
}

/* One column of jobsched.worker_state(), by name: *v, or *n for null. */
static void
status_column(const JobschedShared *copy, uint64 wakeups, bool running,
			  const char *name, Datum *v, bool *n)
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
		status_timestamp(copy->config_loaded_at, v, n);
	else if (strcmp(name, "in_flight") == 0)
		*v = Int32GetDatum(copy->in_flight);
	else if (strcmp(name, "wakeups") == 0)
		*v = Int64GetDatum((int64) wakeups);
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
		status_timestamp(copy->last_error_at, v, n);
	else if (strcmp(name, "last_api_success_at") == 0)
		status_timestamp(copy->last_api_success_at, v, n);
	else if (strcmp(name, "paused_until") == 0)
		status_timestamp(copy->paused_until, v, n);
	else if (strcmp(name, "last_cleanup_at") == 0)
		status_timestamp(copy->last_cleanup_at, v, n);
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
	uint64		wakeups;
	bool		running;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	jobsched_shmem_snapshot(&copy, &wakeups);

	/* the worker's own view of the settings while it runs, else ours */
	running = (copy.worker_pid != 0 && copy.config_loaded_at != 0);
	values = palloc0(sizeof(Datum) * tupdesc->natts);
	nulls = palloc0(sizeof(bool) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
		status_column(&copy, wakeups, running, NameStr(TupleDescAttr(tupdesc, i)->attname),
					  &values[i], &nulls[i]);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
