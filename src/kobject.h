/*-------------------------------------------------------------------------
 *
 * kobject.h
 *	  Reading the Kubernetes objects the API answers with (cJSON trees).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_KOBJECT_H
#define JOBSCHED_KOBJECT_H

#include <cJSON.h>

#include "datatype/timestamp.h"
#include "kube.h"

extern void jobsched_kobject_init(void);
extern cJSON *jobsched_kobject_get(cJSON *obj, const char *a, const char *b,
								   const char *c);
extern char *jobsched_kobject_string(cJSON *obj, const char *a, const char *b,
									 const char *c);
extern TimestampTz jobsched_kobject_parse_time(const char *s);
extern TimestampTz jobsched_kobject_time(cJSON *obj, const char *a, const char *b,
										 const char *c);
extern cJSON *jobsched_kobject_finished(cJSON *job, bool *succeeded);
extern int64 jobsched_kobject_job_id(cJSON *obj);
extern bool jobsched_kobject_proven(cJSON *obj, const char *job_name, int64 id,
									int *run, TimestampTz *created_at, bool *legacy);
extern cJSON *jobsched_kobject_parse(const KubeRequest *req);

#endif							/* JOBSCHED_KOBJECT_H */
