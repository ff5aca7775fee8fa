/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  SPI access to jobsched.jobs for the worker.  Every function here runs
 *	  inside one short transaction opened by jobsched_queue_begin(); none
 *	  is ever open while the worker talks to the Kubernetes API.
 *
 *	  A claim moves rows from pending to the internal state claimed; the
 *	  outcome moves them on.  A crash between the two leaves rows claimed,
 *	  and recovery puts them back to pending: their Job names are
 *	  deterministic, so a create that had already succeeded meets 409 and
 *	  is recognized as ours instead of running twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "jobsched.h"
#include "queue.h"

static SPIPlanPtr queue_claim_plan = NULL;
static SPIPlanPtr queue_record_plan = NULL;

static const char queue_claim_sql[] =
"WITH due AS ("
"  SELECT id FROM jobsched.jobs"
"   WHERE state = 'pending'"
"     AND (retry_at IS NULL OR retry_at <= now())"
"     AND (run_after IS NULL OR run_after <= now())"
"   ORDER BY priority DESC, id"
"   LIMIT $1"
"   FOR UPDATE SKIP LOCKED) "
"UPDATE jobsched.jobs j SET state = 'claimed'"
"  FROM due, jobsched.job_types t"
" WHERE j.id = due.id AND t.name = j.type "
"RETURNING j.id, j.type, j.params::text, t.template::text, t.namespace,"
"          j.attempts, j.retryable_failures";

static const char queue_record_sql[] =
"UPDATE jobsched.jobs j SET"
"   state = o.state,"
"   k8s_namespace = coalesce(o.ns, j.k8s_namespace),"
"   k8s_name = coalesce(o.name, j.k8s_name),"
"   k8s_uid = coalesce(o.uid, j.k8s_uid),"
"   attempts = j.attempts + o.attempted,"
"   retryable_failures = j.retryable_failures + o.retryable,"
"   retry_at = CASE WHEN o.state = 'pending' AND o.delay_ms > 0"
"              THEN now() + o.delay_ms * interval '1 millisecond' END,"
"   last_error = coalesce(o.error, j.last_error),"
"   submitted_at = CASE WHEN o.state = 'submitted' THEN now()"
"                  ELSE j.submitted_at END,"
"   finished_at = CASE WHEN o.state = 'failed' THEN now()"
"                 ELSE j.finished_at END"
"  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
"              $6::text[], $7::int[], $8::int[], $9::int[])"
"       AS o(id, state, ns, name, uid, error, attempted, retryable, delay_ms)"
" WHERE j.id = o.id AND j.state = 'claimed'";

/*
 * Open a transaction with SPI and a snapshot.  Returns false if the
 * extension is not installed in this database (yet, or any more); the
 * caller still calls jobsched_queue_end().
 */
bool
jobsched_queue_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	return OidIsValid(get_extension_oid("jobsched", true));
}

void
jobsched_queue_end(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(cxt);
}

static SPIPlanPtr
queue_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Put rows a crash or an error left claimed back to pending. */
int
jobsched_queue_recover_claimed(void)
{
	int			rc;

	rc = SPI_execute("UPDATE jobsched.jobs SET state = 'pending' WHERE state = 'claimed'",
					 false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not recover claimed jobs: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

static char *
queue_text_value(HeapTuple tuple, TupleDesc desc, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);
	char	   *s;
	char	   *copy;

	if (isnull)
		return NULL;
	s = TextDatumGetCString(d);
	copy = MemoryContextStrdup(cxt, s);
	pfree(s);
	return copy;
}

static int
queue_int_value(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * Claim up to limit due pending rows, highest priority first, skipping
 * rows others have locked (a cancel in progress, say).  Fills *jobs_out
 * with an array allocated in cxt and returns its length.
 */
int
jobsched_queue_claim(int limit, const char *default_namespace,
					 MemoryContext cxt, JobschedJob **jobs_out)
{
	Datum		args[1];
	int			rc;
	uint64		i;
	JobschedJob *jobs;

	if (queue_claim_plan == NULL)
	{
		Oid			argtypes[1] = {INT4OID};

		queue_claim_plan = queue_prepare(queue_claim_sql, 1, argtypes);
	}
	args[0] = Int32GetDatum(limit);
	rc = SPI_execute_plan(queue_claim_plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim jobs: %s", SPI_result_code_string(rc));

	*jobs_out = NULL;
	if (SPI_processed == 0)
		return 0;

	jobs = MemoryContextAllocZero(cxt, sizeof(JobschedJob) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JobschedJob *job = &jobs[i];
		bool		isnull;

		job->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		job->type = queue_text_value(tuple, desc, 2, cxt);
		job->params = queue_text_value(tuple, desc, 3, cxt);
		job->template = queue_text_value(tuple, desc, 4, cxt);
		job->namespace = queue_text_value(tuple, desc, 5, cxt);
		if (job->namespace == NULL)
			job->namespace = MemoryContextStrdup(cxt, default_namespace);
		job->attempts = queue_int_value(tuple, desc, 6);
		job->retryable_failures = queue_int_value(tuple, desc, 7);
		job->outcome = OUTCOME_NONE;
	}
	*jobs_out = jobs;
	return (int) SPI_processed;
}

static Datum
queue_text_array(char **values, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = (values[i] == NULL);
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(values[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
queue_int_array(int *values, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = Int32GetDatum(values[i]);
	return PointerGetDatum(construct_array(elems, n, INT4OID, sizeof(int32),
										   true, TYPALIGN_INT));
}

static const char *
queue_state_name(JobschedOutcome outcome)
{
	switch (outcome)
	{
		case OUTCOME_SUBMITTED:
			return "submitted";
		case OUTCOME_FAILED:
			return "failed";
		case OUTCOME_RETRY:
		case OUTCOME_RELEASE:
		case OUTCOME_NONE:
			break;
	}
	return "pending";
}

/*
 * Record the outcomes of claimed jobs in one statement.  Only rows still
 * claimed are touched, so a row an operator changed meanwhile keeps the
 * operator's change.
 */
void
jobsched_queue_record(JobschedJob **jobs, int njobs)
{
	Datum		args[9];
	Datum	   *ids = palloc(sizeof(Datum) * njobs);
	char	  **state = palloc(sizeof(char *) * njobs);
	char	  **ns = palloc(sizeof(char *) * njobs);
	char	  **name = palloc(sizeof(char *) * njobs);
	char	  **uid = palloc(sizeof(char *) * njobs);
	char	  **error = palloc(sizeof(char *) * njobs);
	int		   *attempted = palloc(sizeof(int) * njobs);
	int		   *retryable = palloc(sizeof(int) * njobs);
	int		   *delay = palloc(sizeof(int) * njobs);
	int			i;
	int			rc;

	if (queue_record_plan == NULL)
	{
		Oid			argtypes[9] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
			TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		INT4ARRAYOID, INT4ARRAYOID};

		queue_record_plan = queue_prepare(queue_record_sql, 9, argtypes);
	}

	for (i = 0; i < njobs; i++)
	{
		JobschedJob *job = jobs[i];
		bool		known = (job->outcome == OUTCOME_SUBMITTED ||
							 job->outcome == OUTCOME_FAILED ||
							 job->outcome == OUTCOME_RETRY);

		ids[i] = Int64GetDatum(job->id);
		state[i] = (char *) queue_state_name(job->outcome);
		ns[i] = known ? job->namespace : NULL;
		name[i] = known ? job->name : NULL;
		uid[i] = job->outcome == OUTCOME_SUBMITTED ? job->uid : NULL;
		error[i] = job->error;
		attempted[i] = job->attempted;
		retryable[i] = job->retryable;
		delay[i] = job->outcome == OUTCOME_RETRY ? job->delay_ms : 0;
	}

	args[0] = PointerGetDatum(construct_array(ids, njobs, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = queue_text_array(state, njobs);
	args[2] = queue_text_array(ns, njobs);
	args[3] = queue_text_array(name, njobs);
	args[4] = queue_text_array(uid, njobs);
	args[5] = queue_text_array(error, njobs);
	args[6] = queue_int_array(attempted, njobs);
	args[7] = queue_int_array(retryable, njobs);
	args[8] = queue_int_array(delay, njobs);

	rc = SPI_execute_plan(queue_record_plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record job outcomes: %s", SPI_result_code_string(rc));
}
