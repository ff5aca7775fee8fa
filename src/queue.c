/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  SPI access to jobsched.jobs for the worker.  Every function here runs
 *	  inside one short transaction opened by jobsched_queue_begin(); none
 *	  is ever open while the worker talks to the Kubernetes API.
 *
 *	  A claim moves rows from pending to the internal state claimed; the
 *	  outcome moves them on.  A crash between the two leaves rows claimed,
 *	  and recovery puts them back to pending, as rows whose create may have
 *	  happened unseen: the worker looks their Job up before it creates one.
 *
 *	  The worker runs as a superuser in someone else's database, so every
 *	  statement here names its tables and functions with their schema and
 *	  uses operators whose operand types match exactly (the worker's
 *	  search_path is pg_catalog, pg_temp besides).  It never waits for a
 *	  user: rows someone holds a lock on are skipped (FOR UPDATE SKIP
 *	  LOCKED) and come back later, and a table someone holds a conflicting
 *	  lock on makes the whole transaction wait for the next pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "jobsched.h"
#include "queue.h"

/* the version of the SQL objects this library works with */
#define QUEUE_SCHEMA_VERSION "1.1"

/* a statement of the worker's, planned once and kept for its lifetime */
typedef struct QueueStatement
{
	const char *sql;
	int			nargs;
	Oid			argtypes[12];
	SPIPlanPtr	plan;
	bool		writes;			/* a SELECT that changes rows (a CTE) */
} QueueStatement;

/* when the next pending row not yet due falls due (run_after, retry_at) */
#define QUEUE_NEXT_DUE_SQL \
"SELECT pg_catalog.min(greatest(run_after, retry_at))" \
"  FROM jobsched.jobs" \
" WHERE state = 'pending'" \
"   AND greatest(run_after, retry_at) > pg_catalog.now()"

/*
 * The claim.  Due pending rows in priority order, as many as $1 and while
 * their params take less than $3 bytes together (the first row always
 * goes), skipping rows others have locked (a cancel in progress, say) and
 * rows asked to cancel while a create of theirs is unsettled (cancel.c
 * settles those).  The rows are found by id: see jobs_pending_idx.
 */
#define QUEUE_CLAIM_SQL(type_filter) \
"UPDATE jobsched.jobs j SET state = 'claimed'" \
"  FROM jobsched.job_types t" \
" WHERE j.id = ANY (ARRAY(" \
"        SELECT c.id FROM (" \
"          SELECT p.id, pg_catalog.sum(p.params_bytes)" \
"                         OVER (ORDER BY p.priority DESC, p.id) - p.params_bytes AS before" \
"            FROM (SELECT id, priority, params_bytes FROM jobsched.jobs" \
"                   WHERE state = 'pending'" \
"                     AND (retry_at IS NULL OR retry_at <= pg_catalog.now())" \
"                     AND (run_after IS NULL OR run_after <= pg_catalog.now())" \
"                     AND cancel_requested_at IS NULL" \
"                     AND " type_filter \
"                   ORDER BY priority DESC, id" \
"                   LIMIT $1" \
"                   FOR UPDATE SKIP LOCKED) p) c" \
"         WHERE c.before < $3))" \
"   AND t.name = j.type " \
"RETURNING j.id, j.type, j.params::text, t.template::text, t.namespace," \
"          j.attempts, j.retryable_failures, j.priority, j.run, j.created_at," \
"          j.create_unsettled_at IS NOT NULL, j.last_error, j.params_bytes," \
/* once per statement: when does the next pending row fall due? */ \
"          (" QUEUE_NEXT_DUE_SQL ")"

#define QUEUE_CLAIM_ARGS 3, {INT4OID, TEXTOID, INT8OID}

/*
 * The common case: no job type is capped.  That condition is checked once,
 * before the scan, and leaves the scan's estimates alone, so the scan walks
 * jobs_pending_idx in order for the few rows it needs.  ($2 is unused.)
 */
static QueueStatement queue_claim_uncapped = {
	QUEUE_CLAIM_SQL("NOT EXISTS (SELECT FROM jobsched.job_types"
					"             WHERE max_in_flight IS NOT NULL)"),
	QUEUE_CLAIM_ARGS
};

/*
 * Capped types exist: rows of every type but those ($2 NULL), or of one of
 * them.  The CASE keeps the planner from estimating "type <> ALL (...)",
 * which it takes to pass almost no rows when there are few types (1 -
 * 1/ndistinct), and then sorts the whole backlog to find the first few.
 */
static QueueStatement queue_claim_capped = {
	QUEUE_CLAIM_SQL("CASE WHEN $2::text IS NULL"
					"     THEN type <> ALL (ARRAY(SELECT name FROM jobsched.job_types"
					"                              WHERE max_in_flight IS NOT NULL))"
					"     ELSE type = $2 END"),
	QUEUE_CLAIM_ARGS
};

static QueueStatement queue_next_due = {QUEUE_NEXT_DUE_SQL, 0};

/* room left under each job type's cap on jobs in flight */
static QueueStatement queue_caps = {
	"SELECT t.name,"
	"       t.max_in_flight - (SELECT pg_catalog.count(*) FROM jobsched.jobs a"
	"                           WHERE a.type = t.name"
	"                             AND a.state IN ('claimed', 'submitted', 'running'))::int4"
	"  FROM jobsched.job_types t"
	" WHERE t.max_in_flight IS NOT NULL",
	0
};

/* rows a crash or an error left claimed go back to pending, unsettled */
static QueueStatement queue_recover = {
	"UPDATE jobsched.jobs SET state = 'pending',"
	"       create_unsettled_at = coalesce(create_unsettled_at, pg_catalog.now())"
	" WHERE id = ANY (ARRAY(SELECT id FROM jobsched.jobs WHERE state = 'claimed'"
	"                        FOR UPDATE SKIP LOCKED))"
	"   AND state = 'claimed'",
	0
};

static QueueStatement queue_claimed_left = {
	"SELECT pg_catalog.count(*)::int4 FROM jobsched.jobs WHERE state = 'claimed'",
	0
};

/*
 * The outcomes of claimed rows, in one statement: of the rows still
 * claimed, those we could lock (someone may hold one) get theirs.  The
 * caller asks queue_claimed_held which of the rest were held.
 */
static QueueStatement queue_record = {
	"UPDATE jobsched.jobs j SET"
	"   state = CASE WHEN o.state = 'pending' AND j.cancel_requested_at IS NOT NULL"
	"                     AND NOT o.unsettled"
	"           THEN 'cancelled' ELSE o.state END,"
	"   k8s_namespace = coalesce(o.ns, j.k8s_namespace),"
	"   k8s_name = coalesce(o.name, j.k8s_name),"
	"   k8s_uid = coalesce(o.uid, j.k8s_uid),"
	"   attempts = j.attempts + o.attempted,"
	"   retryable_failures = j.retryable_failures + o.retryable,"
	"   retry_at = o.retry_at,"
	"   create_unsettled_at = CASE WHEN o.unsettled"
	"                         THEN coalesce(j.create_unsettled_at, pg_catalog.now()) END,"
	"   last_error = CASE WHEN o.state = 'submitted' THEN NULL"
	"                ELSE coalesce(o.error, j.last_error) END,"
	"   submitted_at = CASE WHEN o.state = 'submitted' THEN pg_catalog.now()"
	"                  ELSE j.submitted_at END,"
	"   finished_at = CASE WHEN o.state = 'failed' OR"
	"                      (o.state = 'pending' AND j.cancel_requested_at IS NOT NULL"
	"                       AND NOT o.unsettled)"
	"                 THEN pg_catalog.now()"
	"                 ELSE j.finished_at END"
	"  FROM ROWS FROM ("
	"         pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]),"
	"         pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),"
	"         pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[]),"
	"         pg_catalog.unnest($7::int4[]), pg_catalog.unnest($8::int4[]),"
	"         pg_catalog.unnest($9::timestamptz[]), pg_catalog.unnest($10::bool[]))"
	"       AS o(id, state, ns, name, uid, error, attempted, retryable, retry_at, unsettled)"
	" WHERE j.id = ANY (ARRAY(SELECT id FROM jobsched.jobs"
	"                          WHERE id = ANY ($1) AND state = 'claimed'"
	"                          FOR UPDATE SKIP LOCKED))"
	"   AND o.id = j.id "
	"RETURNING j.id, j.state = 'submitted' AND j.cancel_requested_at IS NOT NULL",
	10, {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, BOOLARRAYOID}
};

/* which of these rows are still claimed (someone held them) */
static QueueStatement queue_claimed_held = {
	"SELECT id FROM jobsched.jobs WHERE id = ANY ($1) AND state = 'claimed'",
	1, {INT8ARRAYOID}
};

/* pending rows whose backoff an outage set, due again now that it is over */
static QueueStatement queue_retry_now = {
	"UPDATE jobsched.jobs SET retry_at = NULL"
	" WHERE id = ANY (ARRAY(SELECT id FROM jobsched.jobs"
	"                        WHERE id = ANY ($1) AND state = 'pending'"
	"                        FOR UPDATE SKIP LOCKED))",
	1, {INT8ARRAYOID}
};

/*
 * The namespaces this database uses: the default, its job types', and
 * those of Jobs that are or may be alive, which are found by skipping
 * through jobs_live_namespace_idx, a few index probes however many Jobs
 * there are.
 */
#define QUEUE_LIVE_NAMESPACE(after) \
"SELECT k8s_namespace FROM jobsched.jobs" \
" WHERE (state IN ('claimed', 'submitted', 'running') OR create_unsettled_at IS NOT NULL)" \
"   AND k8s_namespace " after \
" ORDER BY k8s_namespace LIMIT 1"

static QueueStatement queue_namespaces = {
	"WITH RECURSIVE live(ns) AS ("
	"   (" QUEUE_LIVE_NAMESPACE("IS NOT NULL") ")"
	"   UNION ALL"
	"   SELECT (" QUEUE_LIVE_NAMESPACE("> live.ns") ")"
	"     FROM live WHERE live.ns IS NOT NULL) "
	"SELECT $1::text UNION"
	" SELECT coalesce(namespace, $1) FROM jobsched.job_types UNION"
	" SELECT ns FROM live WHERE ns IS NOT NULL",
	1, {TEXTOID}
};

/*
 * Rows move forward to what their Jobs say, and only for the Job they
 * created (uid), or, while a create of theirs may have happened unseen,
 * for a Job whose proof holds for this row's run and creation time.  c
 * holds the rows a status is for; claimed rows (a create in flight, whose
 * answer is yet to be recorded) and rows someone holds are not changed
 * now, but said to be deferred, so the caller tries again shortly: the
 * watch may see a Job before its create's answer is in.
 */
#define QUEUE_STATUS_FITS(j, o) \
"   (" j ".k8s_uid = " o ".uid" \
"    OR (" j ".k8s_uid IS NULL" \
"        AND (" j ".create_unsettled_at IS NOT NULL OR " j ".state = 'claimed')" \
"        AND " o ".proven AND " j ".run = " o ".run AND " j ".created_at = " o ".created_at))" \
"   AND (CASE " o ".state WHEN 'submitted' THEN 1 WHEN 'running' THEN 2 ELSE 3 END) >" \
"       (CASE " j ".state WHEN 'submitted' THEN 1 WHEN 'running' THEN 2 ELSE 0 END)"

static QueueStatement queue_apply_status = {
	"WITH o AS (SELECT * FROM ROWS FROM ("
	"               pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]),"
	"               pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),"
	"               pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[]),"
	"               pg_catalog.unnest($7::timestamptz[]), pg_catalog.unnest($8::timestamptz[]),"
	"               pg_catalog.unnest($9::bool[]), pg_catalog.unnest($10::int4[]),"
	"               pg_catalog.unnest($11::timestamptz[]))"
	"             AS o(id, ns, name, uid, state, error, started_at, finished_at,"
	"                  proven, run, created_at)),"
	"     c AS (SELECT j.id, j.state FROM jobsched.jobs j JOIN o ON o.id = j.id"
	"            WHERE j.state IN ('pending', 'claimed', 'submitted', 'running') AND"
	QUEUE_STATUS_FITS("j", "o") "),"
	"     l AS (SELECT j.id FROM jobsched.jobs j"
	"            WHERE j.id IN (SELECT c.id FROM c WHERE c.state <> 'claimed')"
	"            FOR UPDATE SKIP LOCKED),"
	"     u AS (UPDATE jobsched.jobs j SET"
	"   state = CASE WHEN o.state <> 'gone' THEN o.state"
	"                WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'"
	"                ELSE 'failed' END,"
	"   k8s_namespace = o.ns, k8s_name = o.name, k8s_uid = o.uid,"
	"   create_unsettled_at = NULL,"
	"   submitted_at = coalesce(j.submitted_at, pg_catalog.now()),"
	"   started_at = CASE WHEN o.state = 'submitted' THEN j.started_at"
	"                ELSE coalesce(j.started_at,"
	"                              greatest(o.started_at,"
	"                                       coalesce(j.submitted_at, pg_catalog.now()))) END,"
	"   finished_at = CASE WHEN o.state IN ('submitted', 'running') THEN j.finished_at"
	"                 ELSE greatest(coalesce(o.finished_at, pg_catalog.now()),"
	"                               coalesce(j.submitted_at, pg_catalog.now())) END,"
	"   last_error = CASE WHEN o.state = 'failed' THEN o.error"
	"                     WHEN o.state = 'gone' AND j.cancel_requested_at IS NULL"
	"                     THEN o.error"
	"                     WHEN o.state IN ('submitted', 'running', 'succeeded') THEN NULL"
	"                     ELSE j.last_error END"
	"  FROM o, l"
	" WHERE j.id = l.id AND o.id = l.id AND j.state <> 'claimed' AND"
	QUEUE_STATUS_FITS("j", "o")
	" RETURNING j.id, o.state = 'failed' AS failed)"
	"SELECT c.id, u.id IS NOT NULL, coalesce(u.failed, false),"
	"       c.state = 'claimed' OR l.id IS NULL"
	"  FROM c LEFT JOIN l ON l.id = c.id LEFT JOIN u ON u.id = c.id",
	11, {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, BOOLARRAYOID,
	INT4ARRAYOID, TIMESTAMPTZARRAYOID},
	.writes = true
};

/*
 * Rows without a Job's uid that may take one by its proof: a create of
 * theirs may have happened unseen, or is in flight.  Few, and found
 * through two partial indexes.
 */
static QueueStatement queue_open_rows = {
	"SELECT id FROM jobsched.jobs"
	" WHERE create_unsettled_at IS NOT NULL OR state = 'claimed'"
	" ORDER BY id",
	0
};

/* rows of a namespace whose Job should exist, created before a list began */
static QueueStatement queue_live_jobs = {
	"SELECT id, k8s_uid FROM jobsched.jobs"
	" WHERE state IN ('submitted', 'running')"
	"   AND k8s_namespace = $1 AND submitted_at < $2 AND k8s_uid IS NOT NULL",
	2, {TEXTOID, TIMESTAMPTZOID}
};

/* ... and whose Job was not in the list: deleted behind our back */
static QueueStatement queue_mark_missing = {
	"UPDATE jobsched.jobs SET"
	"   state = CASE WHEN cancel_requested_at IS NOT NULL"
	"           THEN 'cancelled' ELSE 'failed' END,"
	"   finished_at = pg_catalog.now(),"
	"   last_error = CASE WHEN cancel_requested_at IS NOT NULL THEN last_error"
	"                ELSE 'the Job was deleted before it finished' END"
	" WHERE id = ANY (ARRAY(SELECT id FROM jobsched.jobs"
	"                        WHERE id = ANY ($1) AND state IN ('submitted', 'running')"
	"                        FOR UPDATE SKIP LOCKED))",
	1, {INT8ARRAYOID}
};

static QueueStatement queue_append_error = {
	"UPDATE jobsched.jobs"
	"   SET last_error = coalesce(last_error || '; ', '') || $2"
	" WHERE id = (SELECT id FROM jobsched.jobs WHERE id = $1 AND state = 'failed'"
	"              FOR UPDATE SKIP LOCKED)",
	2, {INT8OID, TEXTOID}
};

/*
 * Rows asked to cancel whose Job must be deleted: submitted and running
 * ones, and pending ones whose create is unsettled (their Job may exist).
 * Claimed rows are the dispatcher's: it hands them on once recorded.
 */
static QueueStatement queue_cancel_requests = {
	"SELECT j.id, coalesce(j.k8s_namespace, t.namespace, $2), j.k8s_name, j.k8s_uid,"
	"       j.run, j.created_at, j.type"
	"  FROM jobsched.jobs j JOIN jobsched.job_types t ON t.name = j.type"
	" WHERE j.cancel_requested_at IS NOT NULL"
	"   AND j.state IN ('pending', 'claimed', 'submitted', 'running')"
	"   AND (j.state IN ('submitted', 'running') OR"
	"        (j.state = 'pending' AND j.create_unsettled_at IS NOT NULL))"
	" ORDER BY j.id LIMIT $1",
	2, {INT4OID, TEXTOID}
};

static QueueStatement queue_cancel_failed = {
	"UPDATE jobsched.jobs SET last_error = $2"
	" WHERE id = (SELECT id FROM jobsched.jobs WHERE id = $1 FOR UPDATE SKIP LOCKED)",
	2, {INT8OID, TEXTOID}
};

static QueueStatement queue_cancelled = {
	"UPDATE jobsched.jobs"
	"   SET state = 'cancelled', finished_at = pg_catalog.now(),"
	"       k8s_deleted_at = pg_catalog.now(), create_unsettled_at = NULL, retry_at = NULL"
	" WHERE id = (SELECT id FROM jobsched.jobs WHERE id = $1"
	"              AND state IN ('pending', 'submitted', 'running')"
	"              FOR UPDATE SKIP LOCKED)",
	1, {INT8OID}
};

/*
 * Cleanup deleted a Job: only the row the Job provably belongs to (its uid,
 * or its proof for the row's run and creation time) records it.
 */
static QueueStatement queue_cleaned_up = {
	"UPDATE jobsched.jobs SET"
	"   k8s_deleted_at = pg_catalog.now(),"
	"   state = CASE WHEN $2 AND state IN ('submitted', 'running')"
	"           THEN 'failed' ELSE state END,"
	"   finished_at = coalesce(finished_at, pg_catalog.now()),"
	"   last_error = CASE WHEN $2 AND (state IN ('submitted', 'running')"
	"                     OR last_error = 'the Job was deleted before it finished')"
	"                THEN $3 ELSE last_error END"
	" WHERE id = (SELECT id FROM jobsched.jobs"
	"              WHERE id = $1"
	"                AND (k8s_uid = $4 OR ($5 AND k8s_uid IS NULL"
	"                                      AND run = $6 AND created_at = $7))"
	"              FOR UPDATE SKIP LOCKED)",
	7, {INT8OID, BOOLOID, TEXTOID, TEXTOID, BOOLOID, INT4OID, TIMESTAMPTZOID}
};

/* the caller's memory context, current again after jobsched_queue_end() */
static MemoryContext queue_caller_cxt = NULL;

/*
 * What the worker knows of the extension: looking it up scans pg_extension,
 * which no syscache covers, and it is asked in every transaction, on the
 * path from a commit to its Job.  So the answer stands until the queue
 * table's relcache entry is invalidated, as dropping it (with the
 * extension) or updating the extension (which alters it) does; the
 * invalidation is taken in at the start of the next transaction.
 */
static QueueState queue_known = QUEUE_MISSING;
static bool queue_known_valid = false;
static char queue_version[NAMEDATALEN] = "";
static Oid	queue_jobs_relid = InvalidOid;
static Oid	queue_types_relid = InvalidOid;
static Oid	queue_installation_relid = InvalidOid;

static void
queue_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == queue_jobs_relid)
		queue_known_valid = false;
}

/* The installed version of the extension, or NULL if there is none. */
char *
jobsched_extension_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("jobsched"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* Look at the extension afresh: installed?  Of our version?  Identity? */
static QueueState
queue_look_up_extension(void)
{
	static bool callback_registered = false;
	Oid			schema;
	char	   *version;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(queue_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	queue_jobs_relid = InvalidOid;
	version = jobsched_extension_version();
	if (version == NULL)
		return QUEUE_MISSING;
	strlcpy(queue_version, version, sizeof(queue_version));
	schema = get_namespace_oid("jobsched", true);
	if (OidIsValid(schema))
		queue_jobs_relid = get_relname_relid("jobs", schema);
	if (!OidIsValid(queue_jobs_relid))
		return QUEUE_MISSING;
	if (strcmp(version, QUEUE_SCHEMA_VERSION) != 0)
		return QUEUE_OLD_SCHEMA;
	queue_types_relid = get_relname_relid("job_types", schema);
	queue_installation_relid = get_relname_relid("installation", schema);
	if (!OidIsValid(queue_types_relid) || !OidIsValid(queue_installation_relid) ||
		!jobsched_installation_load())
		return QUEUE_OLD_SCHEMA;
	return QUEUE_READY;
}

/* After an error: look the extension up again before trusting it. */
void
jobsched_queue_reset(void)
{
	queue_known_valid = false;
}

/* The version of the installed SQL objects, as last looked up. */
const char *
jobsched_queue_schema_version(void)
{
	return queue_version;
}

/*
 * Open a transaction with SPI and a snapshot, and say whether the queue
 * can be used.  Unless QUEUE_READY, the caller does nothing but call
 * jobsched_queue_end().
 */
QueueState
jobsched_queue_begin(const char *activity)
{
	queue_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	/* a missing extension has no table whose invalidation would tell us */
	if (!queue_known_valid || queue_known == QUEUE_MISSING)
	{
		queue_known = queue_look_up_extension();
		queue_known_valid = true;
	}
	if (queue_known != QUEUE_READY)
		return queue_known;

	/*
	 * Whoever holds a lock that conflicts with ours (LOCK TABLE, an ALTER
	 * TABLE, a VACUUM FULL) makes the worker wait for its next pass, never
	 * in a lock queue.
	 */
	if (!ConditionalLockRelationOid(queue_jobs_relid, RowExclusiveLock) ||
		!ConditionalLockRelationOid(queue_types_relid, AccessShareLock))
		return QUEUE_BUSY;
	return QUEUE_READY;
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
 * Run one of the worker's statements, planned on first use and kept for
 * the worker's life.  Always a generic plan: these statements run thousands
 * of times a second, and the plan cache would otherwise keep planning the
 * claim anew for its NULL parameter.  Any result but the expected one is a
 * bug, reported as one.
 */
static void
queue_run(QueueStatement *st, Datum *args, const char *nulls, int expected)
{
	int			rc;

	if (st->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(st->sql, st->nargs, st->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", st->sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		st->plan = plan;
	}
	rc = SPI_execute_plan(st->plan, args, nulls,
						  expected == SPI_OK_SELECT && !st->writes, 0);
	if (rc != expected)
		elog(ERROR, "\"%s\" returned %s", st->sql, SPI_result_code_string(rc));
}

/* ---- reading results ---- */

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

static int64
queue_int8_value(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static bool
queue_bool_value(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

static TimestampTz
queue_time_value(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* ---- building array arguments ---- */

static Datum
queue_text_array(char **values, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
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

/* an array of a pass-by-value type; zero marks NULL where zero_is_null */
static Datum
queue_value_array(Datum *values, int n, Oid type, bool zero_is_null)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	if (zero_is_null)
		for (i = 0; i < n; i++)
			nulls[i] = (values[i] == (Datum) 0);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  type, typlen, typbyval, typalign));
}

/* an int8[] of ids */
static Datum
queue_id_array(int64 *ids, int n)
{
	Datum	   *values = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		values[i] = Int64GetDatum(ids[i]);
	return queue_value_array(values, n, INT8OID, false);
}

/* ---- the claim ---- */

/* Put rows a crash or an error left claimed back to pending. */
int
jobsched_queue_recover_claimed(bool *all)
{
	int			recovered;

	queue_run(&queue_recover, NULL, NULL, SPI_OK_UPDATE);
	recovered = (int) SPI_processed;
	queue_run(&queue_claimed_left, NULL, NULL, SPI_OK_SELECT);
	*all = queue_int_value(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) == 0;
	return recovered;
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
 * Run one claim statement for rows of every type, every type but the
 * capped ones (only_type NULL), or one capped type.  Appends to *jobs, in
 * priority order, and adds the size of their params to *bytes.  When it
 * claimed rows, also says when the next pending row falls due (0: none),
 * which the statement computes once.
 */
static int
queue_claim_some(QueueStatement *st, int limit, int64 max_bytes, const char *only_type,
				 const char *default_namespace, MemoryContext cxt,
				 JobschedJob **jobs, int njobs, TimestampTz *next_due, int64 *bytes)
{
	Datum		args[3];
	char		nulls[3] = {' ', only_type ? ' ' : 'n', ' '};
	uint64		i;

	args[0] = Int32GetDatum(limit);
	args[1] = only_type ? CStringGetTextDatum(only_type) : (Datum) 0;
	args[2] = Int64GetDatum(max_bytes);
	queue_run(st, args, nulls, SPI_OK_UPDATE_RETURNING);
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

		memset(job, 0, sizeof(JobschedJob));
		job->id = queue_int8_value(tuple, desc, 1);
		job->type = queue_text_value(tuple, desc, 2, cxt);
		job->params = queue_text_value(tuple, desc, 3, cxt);
		job->template = queue_text_value(tuple, desc, 4, cxt);
		job->namespace = queue_text_value(tuple, desc, 5, cxt);
		if (job->namespace == NULL)
			job->namespace = MemoryContextStrdup(cxt, default_namespace);
		job->attempts = queue_int_value(tuple, desc, 6);
		job->retryable_failures = queue_int_value(tuple, desc, 7);
		job->priority = queue_int_value(tuple, desc, 8);
		job->run = queue_int_value(tuple, desc, 9);
		job->created_at = queue_time_value(tuple, desc, 10);
		job->unsettled = queue_bool_value(tuple, desc, 11);
		job->last_error = queue_text_value(tuple, desc, 12, cxt);
		*bytes += queue_int_value(tuple, desc, 13);
		job->outcome = OUTCOME_NONE;
	}
	qsort(&(*jobs)[njobs], SPI_processed, sizeof(JobschedJob), queue_job_order);
	if (next_due)
		*next_due = queue_time_value(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 14);
	return njobs + (int) SPI_processed;
}

/*
 * Claim up to limit due pending rows whose params take at most max_bytes
 * together, highest priority first, skipping rows others have locked, and
 * never taking a job type past its cap on jobs in flight
 * (job_types.max_in_flight).  Fills *jobs_out with an array allocated in
 * cxt and returns its length; *next_due says when the next pending row not
 * yet due falls due (0: none), for the worker's timer.
 *
 * The common case is one statement, which claims nothing if any type is
 * capped.  Then the types without a cap are claimed together, and each
 * capped type, whose room depends on its jobs in flight, on its own.
 */
int
jobsched_queue_claim(int limit, int64 max_bytes, const char *default_namespace,
					 MemoryContext cxt, JobschedJob **jobs_out,
					 TimestampTz *next_due, bool *full)
{
	int64		bytes = 0;
	SPITupleTable *caps;
	uint64		ncaps;
	int			njobs;
	uint64		i;

	*jobs_out = NULL;
	*next_due = 0;
	*full = false;
	njobs = queue_claim_some(&queue_claim_uncapped, limit, max_bytes, NULL,
							 default_namespace, cxt, jobs_out, 0, next_due, &bytes);
	if (njobs > 0)
	{
		/* no type is capped; the rows or the bytes may have run out */
		*full = (njobs == limit || bytes >= max_bytes);
		return njobs;
	}
	queue_run(&queue_next_due, NULL, NULL, SPI_OK_SELECT);
	*next_due = queue_time_value(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	queue_run(&queue_caps, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	caps = SPI_tuptable;
	ncaps = SPI_processed;

	njobs = queue_claim_some(&queue_claim_capped, limit, max_bytes, NULL,
							 default_namespace, cxt, jobs_out, 0, NULL, &bytes);
	for (i = 0; i < ncaps && njobs < limit && bytes < max_bytes; i++)
	{
		char	   *type = SPI_getvalue(caps->vals[i], caps->tupdesc, 1);
		int			room = queue_int_value(caps->vals[i], caps->tupdesc, 2);

		if (room > 0)
			njobs = queue_claim_some(&queue_claim_capped, Min(room, limit - njobs),
									 max_bytes - bytes, type, default_namespace, cxt,
									 jobs_out, njobs, NULL, &bytes);
	}
	*full = (njobs == limit || bytes >= max_bytes);
	return njobs;
}

/* ---- outcomes ---- */

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
 * The rows queue_record did not update were held by someone (still
 * claimed: try again later) or are no longer claimed (an operator changed
 * them, and keeps the change).
 */
static void
queue_record_rest(JobschedJob **jobs, int njobs, QueueRecorded *recorded)
{
	int64	   *ids = palloc(sizeof(int64) * njobs);
	Datum		args[1];
	int			nrest = 0;
	int			i;
	uint64		r;

	for (i = 0; i < njobs; i++)
		if (recorded[i] != RECORDED)
			ids[nrest++] = jobs[i]->id;
	args[0] = queue_id_array(ids, nrest);
	queue_run(&queue_claimed_held, args, NULL, SPI_OK_SELECT);
	for (i = 0; i < njobs; i++)
		if (recorded[i] != RECORDED)
			recorded[i] = RECORD_DROPPED;
	for (r = 0; r < SPI_processed; r++)
	{
		int64		id = queue_int8_value(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

		for (i = 0; i < njobs; i++)
			if (jobs[i]->id == id)
				recorded[i] = RECORD_DEFERRED;
	}
}

/*
 * Record the outcomes of claimed jobs in one statement.  recorded[i] says
 * what became of jobs[i]: recorded, dropped (the row is no longer claimed:
 * an operator changed it, and keeps the change), or deferred (someone holds
 * the row: try again later).  Returns true if a job just submitted had been
 * asked to cancel meanwhile: its Job must now be deleted.
 */
bool
jobsched_queue_record(JobschedJob **jobs, int njobs, QueueRecorded *recorded)
{
	Datum		args[10];
	Datum	   *ids = palloc(sizeof(Datum) * njobs);
	char	  **state = palloc(sizeof(char *) * njobs);
	char	  **ns = palloc(sizeof(char *) * njobs);
	char	  **name = palloc(sizeof(char *) * njobs);
	char	  **uid = palloc(sizeof(char *) * njobs);
	char	  **error = palloc(sizeof(char *) * njobs);
	Datum	   *attempted = palloc(sizeof(Datum) * njobs);
	Datum	   *retryable = palloc(sizeof(Datum) * njobs);
	Datum	   *retry_at = palloc(sizeof(Datum) * njobs);
	Datum	   *unsettled = palloc(sizeof(Datum) * njobs);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool		doomed = false;
	int			i;
	uint64		r;

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
		attempted[i] = Int32GetDatum(job->attempted);
		retryable[i] = Int32GetDatum(job->retryable);
		retry_at[i] = (job->outcome == OUTCOME_RETRY && job->delay_ms > 0) ?
			TimestampTzGetDatum(TimestampTzPlusMilliseconds(now, job->delay_ms)) : (Datum) 0;
		unsettled[i] = BoolGetDatum(job->unsettled &&
									job->outcome != OUTCOME_SUBMITTED &&
									job->outcome != OUTCOME_FAILED);
		recorded[i] = RECORD_DEFERRED;
	}

	args[0] = queue_value_array(ids, njobs, INT8OID, false);
	args[1] = queue_text_array(state, njobs);
	args[2] = queue_text_array(ns, njobs);
	args[3] = queue_text_array(name, njobs);
	args[4] = queue_text_array(uid, njobs);
	args[5] = queue_text_array(error, njobs);
	args[6] = queue_value_array(attempted, njobs, INT4OID, false);
	args[7] = queue_value_array(retryable, njobs, INT4OID, false);
	args[8] = queue_value_array(retry_at, njobs, TIMESTAMPTZOID, true);
	args[9] = queue_value_array(unsettled, njobs, BOOLOID, false);

	queue_run(&queue_record, args, NULL, SPI_OK_UPDATE_RETURNING);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		id = queue_int8_value(tuple, desc, 1);

		for (i = 0; i < njobs; i++)
			if (jobs[i]->id == id)
				recorded[i] = RECORDED;
		doomed |= queue_bool_value(tuple, desc, 2);
	}

	if (SPI_processed < (uint64) njobs)
		queue_record_rest(jobs, njobs, recorded);
	return doomed;
}

/* The API answers again: rows an outage delayed are due at once. */
void
jobsched_queue_retry_now(int64 *ids, int n)
{
	Datum		args[1] = {queue_id_array(ids, n)};

	queue_run(&queue_retry_now, args, NULL, SPI_OK_UPDATE);
}

/* ---- status sync ---- */

/*
 * The namespaces this database uses: the default, its job types', and
 * those of Jobs that are (or may be) alive.  A List of palloc'd strings in
 * cxt.
 */
List *
jobsched_queue_namespaces(const char *default_namespace, MemoryContext cxt)
{
	Datum		args[1] = {CStringGetTextDatum(default_namespace)};
	List	   *result = NIL;
	MemoryContext old;
	uint64		i;

	queue_run(&queue_namespaces, args, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1));
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * Move rows forward to what their Jobs say: submitted (a Job found for a
 * row whose create was unsettled), running, succeeded, failed, or gone
 * (deleted before it finished: cancelled if asked for, else failed).
 * Returns how many rows just failed, whose ids go into *failed (palloc'd
 * in cxt), for the caller to add pod details; deferred[i] says that
 * statuses[i] could not be applied yet (the row is claimed, or someone
 * holds it) and should be tried again shortly.  The statuses must be in
 * order of id, one per Job (a row's may have more than one Job of its name
 * over time; at most one of them is the row's).
 */
int
jobsched_queue_apply_status(JobschedJobStatus *statuses, int n, MemoryContext cxt,
							int64 **failed, bool *deferred)
{
	Datum		args[11];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	char	  **ns = palloc(sizeof(char *) * n);
	char	  **name = palloc(sizeof(char *) * n);
	char	  **uid = palloc(sizeof(char *) * n);
	char	  **state = palloc(sizeof(char *) * n);
	char	  **error = palloc(sizeof(char *) * n);
	Datum	   *started = palloc(sizeof(Datum) * n);
	Datum	   *finished = palloc(sizeof(Datum) * n);
	Datum	   *proven = palloc(sizeof(Datum) * n);
	Datum	   *run = palloc(sizeof(Datum) * n);
	Datum	   *created = palloc(sizeof(Datum) * n);
	int			nfailed = 0;
	int			i;
	uint64		r;

	for (i = 0; i < n; i++)
	{
		JobschedJobStatus *st = &statuses[i];

		ids[i] = Int64GetDatum(st->id);
		ns[i] = st->namespace;
		name[i] = st->name;
		uid[i] = st->uid;
		state[i] = (char *) st->state;
		error[i] = st->error;
		started[i] = TimestampTzGetDatum(st->started_at);
		finished[i] = TimestampTzGetDatum(st->finished_at);
		proven[i] = BoolGetDatum(st->proven);
		run[i] = Int32GetDatum(st->run);
		created[i] = TimestampTzGetDatum(st->created_at);
	}
	args[0] = queue_value_array(ids, n, INT8OID, false);
	args[1] = queue_text_array(ns, n);
	args[2] = queue_text_array(name, n);
	args[3] = queue_text_array(uid, n);
	args[4] = queue_text_array(state, n);
	args[5] = queue_text_array(error, n);
	args[6] = queue_value_array(started, n, TIMESTAMPTZOID, true);
	args[7] = queue_value_array(finished, n, TIMESTAMPTZOID, true);
	args[8] = queue_value_array(proven, n, BOOLOID, false);
	args[9] = queue_value_array(run, n, INT4OID, false);
	args[10] = queue_value_array(created, n, TIMESTAMPTZOID, false);

	queue_run(&queue_apply_status, args, NULL, SPI_OK_SELECT);
	*failed = MemoryContextAlloc(cxt, sizeof(int64) * Max(SPI_processed, 1));
	memset(deferred, 0, sizeof(bool) * n);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		id = queue_int8_value(tuple, desc, 1);

		if (queue_bool_value(tuple, desc, 3))
			(*failed)[nfailed++] = id;
		if (queue_bool_value(tuple, desc, 4))
		{
			/* statuses are in order of id: the first of this one's, then all */
			int			lo = 0;
			int			hi = n;

			while (lo < hi)
			{
				int			mid = lo + (hi - lo) / 2;

				if (statuses[mid].id < id)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (; lo < n && statuses[lo].id == id; lo++)
				deferred[lo] = true;
		}
	}
	return nfailed;
}

/* The ids of the rows that may take a Job by its proof, in order, in cxt. */
int
jobsched_queue_open_rows(MemoryContext cxt, int64 **out)
{
	uint64		i;

	queue_run(&queue_open_rows, NULL, NULL, SPI_OK_SELECT);
	*out = MemoryContextAlloc(cxt, sizeof(int64) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
		(*out)[i] = queue_int8_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	return (int) SPI_processed;
}

/*
 * The rows of a namespace whose Job should exist (submitted or running,
 * submitted before "before"), with their Jobs' uids, in cxt.
 */
int
jobsched_queue_live_jobs(const char *namespace, TimestampTz before, MemoryContext cxt,
						 JobschedLiveJob **out)
{
	Datum		args[2] = {CStringGetTextDatum(namespace), TimestampTzGetDatum(before)};
	JobschedLiveJob *jobs;
	uint64		i;

	queue_run(&queue_live_jobs, args, NULL, SPI_OK_SELECT);
	jobs = MemoryContextAlloc(cxt, sizeof(JobschedLiveJob) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		jobs[i].id = queue_int8_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		jobs[i].uid = queue_text_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, cxt);
	}
	*out = jobs;
	return (int) SPI_processed;
}

/* These rows' Jobs were deleted behind our back. */
int
jobsched_queue_mark_missing(int64 *ids, int n)
{
	Datum		args[1] = {queue_id_array(ids, n)};

	queue_run(&queue_mark_missing, args, NULL, SPI_OK_UPDATE);
	return (int) SPI_processed;
}

/* Add details (the failing pod's reason and exit code) to a failed row. */
void
jobsched_queue_append_error(int64 id, const char *detail)
{
	Datum		args[2] = {Int64GetDatum(id), CStringGetTextDatum(detail)};

	queue_run(&queue_append_error, args, NULL, SPI_OK_UPDATE);
}

/* ---- cancellation and cleanup ---- */

/* Rows asked to cancel whose Job must be deleted (see the statement). */
int
jobsched_queue_cancel_requests(int limit, const char *default_namespace,
							   MemoryContext cxt, JobschedDoomedJob **out)
{
	Datum		args[2] = {Int32GetDatum(limit), CStringGetTextDatum(default_namespace)};
	JobschedDoomedJob *jobs;
	uint64		i;

	queue_run(&queue_cancel_requests, args, NULL, SPI_OK_SELECT);
	*out = NULL;
	if (SPI_processed == 0)
		return 0;
	jobs = MemoryContextAllocZero(cxt, sizeof(JobschedDoomedJob) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		jobs[i].id = queue_int8_value(tuple, desc, 1);
		jobs[i].namespace = queue_text_value(tuple, desc, 2, cxt);
		jobs[i].name = queue_text_value(tuple, desc, 3, cxt);
		jobs[i].uid = queue_text_value(tuple, desc, 4, cxt);
		jobs[i].run = queue_int_value(tuple, desc, 5);
		jobs[i].created_at = queue_time_value(tuple, desc, 6);
		if (jobs[i].name == NULL)
		{
			char	   *type = queue_text_value(tuple, desc, 7, cxt);
			MemoryContext old = MemoryContextSwitchTo(cxt);

			jobs[i].name = jobsched_job_name(jobsched_instance_id(), type,
											 jobs[i].id, jobs[i].run);
			MemoryContextSwitchTo(old);
		}
	}
	*out = jobs;
	return (int) SPI_processed;
}

/*
 * The Job of a cancelled job is gone (or, error set, could not be
 * deleted).  Returns false if someone holds the row: the next scan for
 * cancel requests finds it again.
 */
bool
jobsched_queue_record_cancelled(int64 id, const char *error)
{
	Datum		args[2] = {Int64GetDatum(id), (Datum) 0};

	if (error)
	{
		args[1] = CStringGetTextDatum(error);
		queue_run(&queue_cancel_failed, args, NULL, SPI_OK_UPDATE);
	}
	else
		queue_run(&queue_cancelled, args, NULL, SPI_OK_UPDATE);
	return SPI_processed > 0;
}

/*
 * Cleanup deleted this Job.  A Job still active at that age makes its row
 * failed, and the row says why.  Only the row the Job provably belongs to
 * is touched.
 */
void
jobsched_queue_record_cleanup(const JobschedJobStatus *job, bool was_active,
							  const char *message)
{
	Datum		args[7];

	args[0] = Int64GetDatum(job->id);
	args[1] = BoolGetDatum(was_active);
	args[2] = CStringGetTextDatum(message);
	args[3] = CStringGetTextDatum(job->uid ? job->uid : "");
	args[4] = BoolGetDatum(job->proven);
	args[5] = Int32GetDatum(job->run);
	args[6] = TimestampTzGetDatum(job->created_at);
	queue_run(&queue_cleaned_up, args, NULL, SPI_OK_UPDATE);
}
