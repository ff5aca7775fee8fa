/*-------------------------------------------------------------------------
 *
 * preview.c
 *	  jobsched.render(job_id): the manifest the worker would create for a
 *	  job, rendered by the worker's own code, so users can check a
 *	  template and its params before (or after) the worker uses them.
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
#include "render.h"

PG_FUNCTION_INFO_V1(jobsched_render);

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
	char	   *type;
	char	   *params;
	char	   *template;
	char	   *namespace;
	bool		isnull;
	int			rc;

	SPI_connect();
	rc = SPI_execute_with_args("SELECT j.type, j.params::text, t.template::text, t.namespace"
							   "  FROM jobsched.jobs j"
							   "  JOIN jobsched.job_types t ON t.name = j.type"
							   " WHERE j.id = $1",
							   1, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read job " INT64_FORMAT ": %s", job_id,
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job " INT64_FORMAT " does not exist", job_id)));

	type = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	params = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	template = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	namespace = isnull ? default_namespace :
		MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4));
	SPI_finish();

	in.job_id = job_id;
	in.job_type = type;
	in.job_name = jobsched_job_name(type, job_id);
	in.namespace = namespace;
	in.instance = jobsched_instance_id();
	in.params_json = params;
	in.template_json = template;

	manifest = jobsched_render_job(&in, &error);
	if (manifest == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot render the Job of job " INT64_FORMAT, job_id),
				 errdetail("%s", error),
				 errhint("Fix the job type's template or the job's params; the worker fails such a job.")));

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(manifest)));
}
