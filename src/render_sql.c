/*-------------------------------------------------------------------------
 *
 * render_sql.c
 *	  jobsched.render(job_id): the manifest the worker would create for a
 *	  job, rendered by the worker's own code, so users can check a
 *	  template and its params before (or after) the worker uses them.
 *
 *	  It runs as the caller, so row-level security decides which jobs it
 *	  shows.  The manifest lacks only the proof annotation, which needs the
 *	  installation's secret.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "jobsched.h"
#include "queue.h"
#include "render.h"

PG_FUNCTION_INFO_V1(jobsched_render);

/* The renderer's message (it goes to last_error too) as a detail sentence. */
static char *
render_sql_sentence(const char *message)
{
	size_t		len = strlen(message);
	char	   *sentence = psprintf("%s%s", message,
									(len > 0 && message[len - 1] == '.') ? "" : ".");

	sentence[0] = pg_toupper((unsigned char) sentence[0]);
	return sentence;
}

/* SQL functions of this library need the SQL objects of its version. */
static void
render_sql_check_version(void)
{
	char	   *version = jobsched_extension_version();

	if (version == NULL || strcmp(version, JOBSCHED_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the jobsched extension's SQL objects are version %s, but the library is %s",
						version ? version : "(none)", JOBSCHED_VERSION),
				 errhint("Run ALTER EXTENSION jobsched UPDATE.")));
}

Datum
jobsched_render(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	Datum		args[1] = {Int64GetDatum(job_id)};
	Oid			argtypes[1] = {INT8OID};
	JobschedRenderInput in;
	MemoryContext cxt = CurrentMemoryContext;
	char	   *manifest;
	char	   *error = NULL;
	char	   *default_namespace = jobsched_guc_namespace();
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *type;
	char	   *namespace;
	char	   *instance;
	int			run;
	bool		isnull;
	int			rc;

	render_sql_check_version();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT j.type, j.params::text, t.template::text, t.namespace,"
							   "       j.run, i.instance"
							   "  FROM jobsched.jobs j"
							   "  JOIN jobsched.job_types t ON t.name = j.type,"
							   "       (SELECT instance FROM jobsched.installation"
							   "         ORDER BY created_at, instance LIMIT 1) i"
							   " WHERE j.id = $1",
							   1, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read job " INT64_FORMAT ": %s", job_id,
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job " INT64_FORMAT " does not exist", job_id),
				 errhint("Jobs queued by other roles are not visible: only their owners and members of jobsched_admin may render them.")));

	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	type = MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 1));
	in.params_json = MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 2));
	in.template_json = MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 3));
	(void) SPI_getbinval(tuple, desc, 4, &isnull);
	namespace = isnull ? default_namespace :
		MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 4));
	run = DatumGetInt32(SPI_getbinval(tuple, desc, 5, &isnull));
	instance = MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 6));
	SPI_finish();

	in.job_id = job_id;
	in.job_type = type;
	in.job_name = jobsched_job_name(instance, type, job_id, run);
	in.namespace = namespace;
	in.instance = instance;
	in.proof = NULL;

	manifest = jobsched_render_job(&in, &error);
	if (manifest == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot render the Job of job " INT64_FORMAT, job_id),
				 errdetail("%s", render_sql_sentence(error)),
				 errhint("Fix the job type's template or the job's params; the worker fails such a job.")));

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(manifest)));
}
