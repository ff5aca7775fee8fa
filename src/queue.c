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
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "jobsched.h"
#include "queue.h"

/* the caller's memory context, current again after jobsched_queue_end() */
static MemoryContext queue_caller_cxt = NULL;

static Datum queue_text_array(char **values, int n);
static SPIPlanPtr queue_record_plan = NULL;

/*
 * The statements that change rows the worker holds find them by id: the
 * claim updates an array of ids, the others join on id.  Where a row must
 * be in a given state, that state is a parameter, so no plan can scan
 * jobs_active_idx for it instead: that partial index keeps an entry for
 * every row that passed through those states since the last vacuum, and a
 * bitmap scan cannot mark the dead ones, so such a scan grows with the
 * table's recent past.  (The claim's search for due rows walks
 * jobs_pending_idx in order with a plain index scan, which does mark the
 * dead entries it passes.)
 */
/* when the next pending row not yet due falls due (run_after, retry_at) */
#define QUEUE_NEXT_DUE_SQL \
"SELECT min(greatest(run_after, retry_at))" \
"  FROM jobsched.jobs" \
" WHERE state = 'pending'" \
"   AND greatest(run_after, retry_at) > now()"

#define QUEUE_CLAIM_SQL(type_filter) \
"UPDATE jobsched.jobs j SET state = 'claimed'" \
"  FROM jobsched.job_types t" \
" WHERE j.id = ANY (ARRAY(" \
"        SELECT id FROM jobsched.jobs" \
"         WHERE state = 'pending'" \
"           AND (retry_at IS NULL OR retry_at <= now())" \
"           AND (run_after IS NULL OR run_after <= now())" \
"           AND " type_filter \
"         ORDER BY priority DESC, id" \
"         LIMIT $1" \
"         FOR UPDATE SKIP LOCKED))" \
"   AND t.name = j.type " \
"RETURNING j.id, j.type, j.params::text, t.template::text, t.namespace," \
"          j.attempts, j.retryable_failures, j.priority," \
/* once per statement: when does the next pending row fall due? */ \
"          (" QUEUE_NEXT_DUE_SQL ")"

/*
 * The common case: no job type is capped.  That condition is checked once,
 * before the scan, and leaves the scan's estimates alone, so the scan walks
 * jobs_pending_idx in order for the few rows it needs.  ($2 is unused.)
 */
static const char queue_claim_uncapped_sql[] =
QUEUE_CLAIM_SQL("NOT EXISTS (SELECT FROM jobsched.job_types"
				"             WHERE max_in_flight IS NOT NULL)");

/*
 * Capped types exist: rows of every type but those ($2 NULL), or of one of
 * them.  The CASE keeps the planner from estimating "type <> ALL (...)",
 * which it takes to pass almost no rows when there are few types (1 -
 * 1/ndistinct), and then sorts the whole backlog to find the first few.
 */
static const char queue_claim_capped_sql[] =
QUEUE_CLAIM_SQL("CASE WHEN $2::text IS NULL"
				"     THEN type <> ALL (ARRAY(SELECT name FROM jobsched.job_types"
				"                              WHERE max_in_flight IS NOT NULL))"
				"     ELSE type = $2 END");

static const char queue_next_due_sql[] = QUEUE_NEXT_DUE_SQL;

/* room left under each job type's cap on jobs in flight */
static const char queue_caps_sql[] =
"SELECT t.name,"
"       t.max_in_flight - (SELECT count(*) FROM jobsched.jobs a"
"                           WHERE a.type = t.name"
"                             AND a.state IN ('claimed', 'submitted', 'running'))::int"
"  FROM jobsched.job_types t"
" WHERE t.max_in_flight IS NOT NULL";

static const char queue_record_sql[] =
"UPDATE jobsched.jobs j SET"
"   state = CASE WHEN o.state = 'pending' AND j.cancel_requested_at IS NOT NULL"
"           THEN 'cancelled' ELSE o.state END,"
"   k8s_namespace = coalesce(o.ns, j.k8s_namespace),"
"   k8s_name = coalesce(o.name, j.k8s_name),"
"   k8s_uid = coalesce(o.uid, j.k8s_uid),"
"   attempts = j.attempts + o.attempted,"
"   retryable_failures = j.retryable_failures + o.retryable,"
"   retry_at = CASE WHEN o.state = 'pending' AND o.delay_ms > 0"
"              THEN now() + o.delay_ms * interval '1 millisecond' END,"
"   last_error = CASE WHEN o.state = 'submitted' THEN NULL"
"                ELSE coalesce(o.error, j.last_error) END,"
"   submitted_at = CASE WHEN o.state = 'submitted' THEN now()"
"                  ELSE j.submitted_at END,"
"   finished_at = CASE WHEN o.state = 'failed' OR"
"                      (o.state = 'pending' AND j.cancel_requested_at IS NOT NULL)"
"                 THEN now()"
"                 ELSE j.finished_at END"
"  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
"              $6::text[], $7::int[], $8::int[], $9::int[])"
"       AS o(id, state, ns, name, uid, error, attempted, retryable, delay_ms)"
" WHERE j.id = o.id AND j.state = $10 "
"RETURNING j.state = 'submitted' AND j.cancel_requested_at IS NOT NULL";

/*
 * Is the extension installed?  get_extension_oid() scans pg_extension,
 * which no syscache covers, and this is asked in every transaction of the
 * worker, on the path from a commit to its Job.  So once the extension has
 * been seen, that answer stands until the queue table's relcache entry is
 * invalidated, as dropping the table (with the extension) does; the
 * invalidation is taken in at the start of the next transaction.
 */
static bool queue_extension_seen = false;
static Oid	queue_jobs_relid = InvalidOid;

static void
queue_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == queue_jobs_relid)
		queue_extension_seen = false;
}

static bool
queue_extension_installed(void)
{
	static bool callback_registered = false;

	if (queue_extension_seen)
		return true;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(queue_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(get_extension_oid("jobsched", true)))
		return false;
	queue_jobs_relid = get_relname_relid("jobs", get_namespace_oid("jobsched", false));
	queue_extension_seen = OidIsValid(queue_jobs_relid);
	return queue_extension_seen;
}

/* After an error: look the extension up again before trusting it. */
void
jobsched_queue_reset(void)
{
	queue_extension_seen = false;
}

/*
 * Open a transaction with SPI and a snapshot.  Returns false if the
 * extension is not installed in this database (yet, or any more); the
 * caller still calls jobsched_queue_end().
 */
bool
jobsched_queue_begin(const char *activity)
{
	queue_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	return queue_extension_installed();
}

void
jobsched_queue_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * Back to the context current before jobsched_queue_begin(): the commit
	 * left us in TopMemoryContext, and the SPI and transaction contexts are
	 * gone.
	 */
	MemoryContextSwitchTo(queue_caller_cxt);
}

/*
 * Prepare a statement for the life of the worker.  Always a generic plan:
 * these statements run thousands of times a second, and the plan cache
 * would otherwise keep planning the claim anew for its NULL parameter.
 */
static SPIPlanPtr
queue_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

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

/* highest priority first, then oldest: the order the claim promises */
static int
queue_job_order(const void *a, const void *b)
{
	const JobschedJob *x = (const JobschedJob *) a;
	const JobschedJob *y = (const JobschedJob *) b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/*
 * Run one claim statement (sql, prepared into *plan on first use) for rows
 * of every type, every type but the capped ones (only_type NULL), or one
 * capped type.  Appends to *jobs, in priority order.  When it claimed rows,
 * also says when the next pending row falls due (0: none), which the
 * statement computes once.
 */
static int
queue_claim_some(SPIPlanPtr *plan, const char *sql, int limit, const char *only_type,
				 const char *default_namespace, MemoryContext cxt,
				 JobschedJob **jobs, int njobs, TimestampTz *next_due)
{
	Datum		args[2];
	char		nulls[2] = {' ', only_type ? ' ' : 'n'};
	int			rc;
	uint64		i;

	if (*plan == NULL)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};

		*plan = queue_prepare(sql, 2, argtypes);
	}
	args[0] = Int32GetDatum(limit);
	args[1] = only_type ? CStringGetTextDatum(only_type) : (Datum) 0;
	rc = SPI_execute_plan(*plan, args, nulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim jobs: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return njobs;

	*jobs = *jobs ?
		repalloc(*jobs, sizeof(JobschedJob) * (njobs + SPI_processed)) :
		MemoryContextAlloc(cxt, sizeof(JobschedJob) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JobschedJob *job = &(*jobs)[njobs + i];
		bool		isnull;

		memset(job, 0, sizeof(JobschedJob));
		job->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		job->type = queue_text_value(tuple, desc, 2, cxt);
		job->params = queue_text_value(tuple, desc, 3, cxt);
		job->template = queue_text_value(tuple, desc, 4, cxt);
		job->namespace = queue_text_value(tuple, desc, 5, cxt);
		if (job->namespace == NULL)
			job->namespace = MemoryContextStrdup(cxt, default_namespace);
		job->attempts = queue_int_value(tuple, desc, 6);
		job->retryable_failures = queue_int_value(tuple, desc, 7);
		job->priority = queue_int_value(tuple, desc, 8);
		job->outcome = OUTCOME_NONE;
	}
	qsort(&(*jobs)[njobs], SPI_processed, sizeof(JobschedJob), queue_job_order);
	if (next_due)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 9, &isnull);

		*next_due = isnull ? 0 : DatumGetTimestampTz(d);
	}
	return njobs + (int) SPI_processed;
}

static TimestampTz
queue_next_due(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	Datum		d;
	int			rc;

	if (plan == NULL)
		plan = queue_prepare(queue_next_due_sql, 0, NULL);
	rc = SPI_execute_plan(plan, NULL, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the next due job: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Claim up to limit due pending rows, highest priority first, skipping
 * rows others have locked (a cancel in progress, say), and never taking
 * a job type past its cap on jobs in flight (job_types.max_in_flight).
 * Fills *jobs_out with an array allocated in cxt and returns its length;
 * *next_due says when the next pending row not yet due falls due (0:
 * none), for the worker's timer.
 *
 * The common case is one statement, which claims nothing if any type is
 * capped.  Then the types without a cap are claimed together, and each
 * capped type, whose room depends on its jobs in flight, on its own.
 */
int
jobsched_queue_claim(int limit, const char *default_namespace,
					 MemoryContext cxt, JobschedJob **jobs_out,
					 TimestampTz *next_due)
{
	static SPIPlanPtr uncapped_plan = NULL;
	static SPIPlanPtr capped_plan = NULL;
	static SPIPlanPtr caps_plan = NULL;
	int			njobs;
	uint64		i;
	int			rc;

	*jobs_out = NULL;
	*next_due = 0;
	njobs = queue_claim_some(&uncapped_plan, queue_claim_uncapped_sql, limit, NULL,
							 default_namespace, cxt, jobs_out, 0, next_due);
	if (njobs > 0)
		return njobs;			/* and no type is capped */
	*next_due = queue_next_due();

	if (caps_plan == NULL)
		caps_plan = queue_prepare(queue_caps_sql, 0, NULL);
	rc = SPI_execute_plan(caps_plan, NULL, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read job type caps: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return njobs;
	else
	{
		SPITupleTable *caps = SPI_tuptable;
		uint64		ncaps = SPI_processed;

		njobs = queue_claim_some(&capped_plan, queue_claim_capped_sql, limit, NULL,
								 default_namespace, cxt, jobs_out, njobs, NULL);
		for (i = 0; i < ncaps && njobs < limit; i++)
		{
			char	   *type = SPI_getvalue(caps->vals[i], caps->tupdesc, 1);
			int			room = queue_int_value(caps->vals[i], caps->tupdesc, 2);

			if (room > 0)
				njobs = queue_claim_some(&capped_plan, queue_claim_capped_sql,
										 Min(room, limit - njobs), type, default_namespace,
										 cxt, jobs_out, njobs, NULL);
		}
	}
	return njobs;
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
queue_int8_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
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
 * operator's change.  Returns true if a job that was just submitted had
 * been asked to cancel meanwhile: its Job must now be deleted.
 */
bool
jobsched_queue_record(JobschedJob **jobs, int njobs)
{
	Datum		args[10];
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
		Oid			argtypes[10] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
			TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		INT4ARRAYOID, INT4ARRAYOID, TEXTOID};

		queue_record_plan = queue_prepare(queue_record_sql, 10, argtypes);
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

	args[0] = queue_int8_array(ids, njobs);
	args[1] = queue_text_array(state, njobs);
	args[2] = queue_text_array(ns, njobs);
	args[3] = queue_text_array(name, njobs);
	args[4] = queue_text_array(uid, njobs);
	args[5] = queue_text_array(error, njobs);
	args[6] = queue_int_array(attempted, njobs);
	args[7] = queue_int_array(retryable, njobs);
	args[8] = queue_int_array(delay, njobs);
	args[9] = CStringGetTextDatum("claimed");

	rc = SPI_execute_plan(queue_record_plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record job outcomes: %s", SPI_result_code_string(rc));
	for (i = 0; i < (int) SPI_processed; i++)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
									   &isnull)))
			return true;
	}
	return false;
}

/*
 * The namespaces this database uses: the default, its job types', and
 * those of Jobs that are alive.  A List of palloc'd strings in cxt.
 */
List *
jobsched_queue_namespaces(const char *default_namespace, MemoryContext cxt)
{
	Datum		args[1] = {CStringGetTextDatum(default_namespace)};
	Oid			argtypes[1] = {TEXTOID};
	List	   *result = NIL;
	MemoryContext old;
	int			rc;
	uint64		i;

	rc = SPI_execute_with_args("SELECT $1 UNION"
							   " SELECT coalesce(namespace, $1) FROM jobsched.job_types UNION"
							   " SELECT k8s_namespace FROM jobsched.jobs"
							   "  WHERE state IN ('claimed', 'submitted', 'running')"
							   "    AND k8s_namespace IS NOT NULL",
							   1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list namespaces: %s", SPI_result_code_string(rc));
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1));
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * Move rows forward to what their Jobs say: running, succeeded, failed,
 * or gone (deleted before it finished: cancelled if asked for, else
 * failed).  Rows only ever move forward, and only for the Job they
 * created (uid).  Returns the ids of rows that just failed (a List of
 * int64 pointers, in cxt), for the caller to add pod details.
 */
List *
jobsched_queue_apply_status(JobschedJobStatus *statuses, int n, MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[7];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	char	  **uid = palloc(sizeof(char *) * n);
	char	  **state = palloc(sizeof(char *) * n);
	char	  **error = palloc(sizeof(char *) * n);
	char	  **started = palloc(sizeof(char *) * n);
	char	  **finished = palloc(sizeof(char *) * n);
	char	   *alive[] = {"submitted", "running"};
	List	   *failed = NIL;
	int			rc;
	int			i;
	uint64		r;

	if (plan == NULL)
	{
		Oid			argtypes[7] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		plan = queue_prepare(
							 "UPDATE jobsched.jobs j SET"
							 "   state = CASE WHEN o.state <> 'gone' THEN o.state"
							 "                WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'"
							 "                ELSE 'failed' END,"
							 "   started_at = coalesce(j.started_at,"
							 "                         greatest(o.started_at::timestamptz, j.submitted_at)),"
							 "   finished_at = CASE WHEN o.state = 'running' THEN j.finished_at"
							 "                 ELSE greatest(coalesce(o.finished_at::timestamptz, now()),"
							 "                               j.submitted_at) END,"
							 "   last_error = CASE WHEN o.state = 'failed' THEN o.error"
							 "                     WHEN o.state = 'gone' AND j.cancel_requested_at IS NULL"
							 "                     THEN o.error ELSE j.last_error END"
							 "  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
							 "              $5::text[], $6::text[])"
							 "       AS o(id, uid, state, error, started_at, finished_at)"
							 " WHERE j.id = o.id"
							 "   AND (j.k8s_uid IS NULL OR j.k8s_uid = o.uid)"
							 "   AND j.state = ANY ($7)"
							 "   AND o.state <> j.state "
							 "RETURNING j.id, j.state",
							 7, argtypes);
	}

	for (i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(statuses[i].id);
		uid[i] = statuses[i].uid;
		state[i] = (char *) statuses[i].state;
		error[i] = statuses[i].error;
		started[i] = statuses[i].started_at;
		finished[i] = statuses[i].finished_at;
	}
	args[0] = queue_int8_array(ids, n);
	args[1] = queue_text_array(uid, n);
	args[2] = queue_text_array(state, n);
	args[3] = queue_text_array(error, n);
	args[4] = queue_text_array(started, n);
	args[5] = queue_text_array(finished, n);
	args[6] = queue_text_array(alive, lengthof(alive));

	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record Job status: %s", SPI_result_code_string(rc));

	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		char	   *st = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);

		if (strcmp(st, "failed") == 0)
		{
			/* the List outlives SPI_finish(): build it in the caller's context */
			MemoryContext old = MemoryContextSwitchTo(cxt);
			int64	   *id = palloc(sizeof(int64));

			*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
											  SPI_tuptable->tupdesc, 1, &isnull));
			failed = lappend(failed, id);
			MemoryContextSwitchTo(old);
		}
	}
	return failed;
}

/*
 * After a complete LIST of a namespace: rows whose Job existed before the
 * list began but was not in it were deleted behind our back.  They must
 * not stay running forever.
 */
int
jobsched_queue_mark_missing(const char *namespace, TimestampTz listed_at,
							int64 *seen, int nseen)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[3];
	Datum	   *ids = palloc(sizeof(Datum) * Max(nseen, 1));
	int			rc;
	int			i;

	if (plan == NULL)
	{
		Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, INT8ARRAYOID};

		plan = queue_prepare(
							 "UPDATE jobsched.jobs SET"
							 "   state = CASE WHEN cancel_requested_at IS NOT NULL"
							 "           THEN 'cancelled' ELSE 'failed' END,"
							 "   finished_at = now(),"
							 "   last_error = CASE WHEN cancel_requested_at IS NOT NULL THEN last_error"
							 "                ELSE 'the Job was deleted before it finished' END"
							 " WHERE state IN ('submitted', 'running')"
							 "   AND k8s_namespace = $1 AND submitted_at < $2"
							 "   AND NOT (id = ANY ($3))",
							 3, argtypes);
	}
	for (i = 0; i < nseen; i++)
		ids[i] = Int64GetDatum(seen[i]);
	args[0] = CStringGetTextDatum(namespace);
	args[1] = TimestampTzGetDatum(listed_at);
	args[2] = queue_int8_array(ids, nseen);
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record deleted Jobs: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* Add details (the failing pod's reason and exit code) to a failed row. */
void
jobsched_queue_append_error(int64 id, const char *detail)
{
	Datum		args[2] = {Int64GetDatum(id), CStringGetTextDatum(detail)};
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	int			rc;

	rc = SPI_execute_with_args("UPDATE jobsched.jobs"
							   "   SET last_error = coalesce(last_error || '; ', '') || $2"
							   " WHERE id = $1 AND state = 'failed'",
							   2, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record pod details: %s", SPI_result_code_string(rc));
}

/* Jobs asked to be cancelled whose Kubernetes Job must be deleted. */
int
jobsched_queue_cancel_requests(int limit, MemoryContext cxt, JobschedDoomedJob **out)
{
	Datum		args[1] = {Int32GetDatum(limit)};
	Oid			argtypes[1] = {INT4OID};
	JobschedDoomedJob *jobs;
	int			rc;
	uint64		i;

	rc = SPI_execute_with_args("SELECT id, k8s_namespace, k8s_name, k8s_uid"
							   "  FROM jobsched.jobs"
							   " WHERE cancel_requested_at IS NOT NULL"
							   "   AND state IN ('submitted', 'running')"
							   " ORDER BY id LIMIT $1",
							   1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read cancel requests: %s", SPI_result_code_string(rc));
	*out = NULL;
	if (SPI_processed == 0)
		return 0;
	jobs = MemoryContextAllocZero(cxt, sizeof(JobschedDoomedJob) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		jobs[i].id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		jobs[i].namespace = queue_text_value(tuple, desc, 2, cxt);
		jobs[i].name = queue_text_value(tuple, desc, 3, cxt);
		jobs[i].uid = queue_text_value(tuple, desc, 4, cxt);
	}
	*out = jobs;
	return (int) SPI_processed;
}

/* The Job of a cancelled job is gone (or could not be deleted: error). */
void
jobsched_queue_record_cancelled(int64 id, const char *error)
{
	Datum		args[2] = {Int64GetDatum(id), (Datum) 0};
	char		nulls[2] = {' ', error ? ' ' : 'n'};
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	int			rc;

	if (error)
		args[1] = CStringGetTextDatum(error);
	if (error)
		rc = SPI_execute_with_args("UPDATE jobsched.jobs SET last_error = $2"
								   " WHERE id = $1",
								   2, argtypes, args, nulls, false, 0);
	else
		rc = SPI_execute_with_args("UPDATE jobsched.jobs"
								   "   SET state = 'cancelled', finished_at = now(),"
								   "       k8s_deleted_at = now()"
								   " WHERE id = $1 AND state IN ('submitted', 'running')",
								   1, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record a cancellation: %s", SPI_result_code_string(rc));
}

/*
 * Cleanup deleted this job's Job.  A Job still active at that age makes
 * its row failed, and the row says why.
 */
void
jobsched_queue_record_cleanup(int64 id, bool was_active, const char *message)
{
	Datum		args[3] = {Int64GetDatum(id), BoolGetDatum(was_active),
	CStringGetTextDatum(message)};
	Oid			argtypes[3] = {INT8OID, BOOLOID, TEXTOID};
	int			rc;

	rc = SPI_execute_with_args("UPDATE jobsched.jobs SET"
							   "   k8s_deleted_at = now(),"
							   "   state = CASE WHEN $2 AND state IN ('submitted', 'running')"
							   "           THEN 'failed' ELSE state END,"
							   "   finished_at = coalesce(finished_at, now()),"
							   "   last_error = CASE WHEN $2 AND (state IN ('submitted', 'running')"
							   "                     OR last_error = 'the Job was deleted before it finished')"
							   "                THEN $3 ELSE last_error END"
							   " WHERE id = $1",
							   3, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record a cleanup: %s", SPI_result_code_string(rc));
}
