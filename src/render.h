/*-------------------------------------------------------------------------
 *
 * render.h
 *	  Rendering a job type's template into the batch/v1 Job manifest
 *	  submitted for one row of jobsched.jobs.
 *
 * The renderer is pure: it reads its input, touches no catalog, no shared
 * memory and no network, and reports problems with the job or its template
 * as a message instead of an ERROR, so the worker can fail that one job and
 * move on.  See render.c for the placeholder syntax and the rules.
 *
 * IDENTIFICATION
 *	  src/render.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_RENDER_H
#define JOBSCHED_RENDER_H

typedef struct JobschedRenderInput
{
	int64		job_id;
	const char *job_type;		/* jobsched.jobs.type, a DNS-1123 label */
	const char *job_name;		/* deterministic metadata.name, computed by
								 * the caller */
	const char *namespace;		/* target namespace */
	const char *instance;		/* short hex identity of this database, used
								 * as a label value */
	const char *proof;			/* the jobsched.io/proof annotation, or NULL
								 * to leave it out (jobsched.render()) */
	const char *params_json;	/* jsonb params as text; a JSON object */
	const char *template_json;	/* jsonb template as text; a batch/v1 Job
								 * manifest */
} JobschedRenderInput;

/*
 * Renders the Job manifest.  On success returns the compact JSON text,
 * palloc'd in CurrentMemoryContext, and leaves *error NULL.  On a problem
 * with the job or its template (never a crash, never an ereport(ERROR)),
 * returns NULL and sets *error to a palloc'd, user-facing, single-line message
 * such as: template placeholder "{{params.input}}" at spec.template.spec.containers[0].args[1] refers to missing param "input"
 *
 * Out of memory (in palloc or in cJSON) is not the job's fault and is raised
 * as an ERROR like anywhere else in the backend; no cJSON memory leaks then.
 * So is a NULL pointer in *in, which is a bug in the caller.
 */
extern char *jobsched_render_job(const JobschedRenderInput *in, char **error);

#endif							/* JOBSCHED_RENDER_H */
