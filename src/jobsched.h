/*-------------------------------------------------------------------------
 *
 * jobsched.h
 *	  Declarations shared by the modules of jobsched: settings, shared
 *	  state, and the entry points each module offers the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_H
#define JOBSCHED_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/spin.h"

/* settings (guc.c); each C variable mirrors its jobsched.* name */
typedef enum JobschedWakeMode
{
	JOBSCHED_WAKE_NOTIFY,
	JOBSCHED_WAKE_LATCH
} JobschedWakeMode;

extern char *jobsched_database;
extern char *jobsched_channel;
extern int	jobsched_wake_mode;
extern bool jobsched_enabled;
extern char *jobsched_kube_api_url;
extern char *jobsched_kube_token_file;
extern char *jobsched_kube_ca_file;
extern char *jobsched_kube_client_cert_file;
extern char *jobsched_kube_client_key_file;
extern char *jobsched_namespace;
extern int	jobsched_cleanup_age;
extern char *jobsched_cleanup_selector;
extern bool jobsched_cleanup_spare_active;
extern int	jobsched_cleanup_interval;
extern int	jobsched_poll_interval;
extern int	jobsched_sync_interval;
extern int	jobsched_batch_size;
extern int	jobsched_claim_delay;
extern int	jobsched_max_in_flight;
extern int	jobsched_request_timeout;
extern int	jobsched_max_attempts;
extern int	jobsched_backoff_base;
extern int	jobsched_backoff_max;

extern void jobsched_guc_define(void);
extern char *jobsched_guc_api_url(void);
extern char *jobsched_guc_namespace(void);
extern const char *jobsched_wake_mode_name(int mode);

/* shared state (shmem.c) */
#define JOBSCHED_ERROR_LEN 512

typedef struct JobschedShared
{
	slock_t		mutex;			/* protects everything below */
	pid_t		worker_pid;		/* 0 when no worker runs */
	int			worker_procno;	/* its PGPROC index, for SetLatch; -1 if none */
	bool		listening;
	/* the settings as the worker last loaded them */
	TimestampTz config_loaded_at;
	bool		enabled;
	int			wake_mode;
	char		namespace[64];
	int			in_flight;
	uint64		jobs_submitted;
	uint64		api_requests;
	uint64		api_errors;
	TimestampTz last_error_at;
	TimestampTz last_api_success_at;
	TimestampTz paused_until;
	TimestampTz last_cleanup_at;
	uint64		last_cleanup_jobs_deleted;
	uint64		last_cleanup_pods_deleted;
	char		last_error[JOBSCHED_ERROR_LEN];

	/* bumped by every commit that asked to cancel a job (not under mutex) */
	pg_atomic_uint64 cancel_requests;
	/* times the worker's latch woke it (written by the worker only) */
	pg_atomic_uint64 wakeups;
	/* the latch mode's doorbell, JOBSCHED_DOORBELL_* (wake.c) */
	pg_atomic_uint32 doorbell;
} JobschedShared;

extern JobschedShared *jobsched_shared;

extern void jobsched_shmem_request(void);
extern void jobsched_shmem_startup(void);
extern void jobsched_shmem_set_error(const char *message);
extern void jobsched_shmem_set_worker(pid_t pid, int procno);
extern void jobsched_shmem_publish_config(void);

/* wake-up (wake.c) */
#define JOBSCHED_DOORBELL_ARMED	0	/* the next commit sets the worker's latch */
#define JOBSCHED_DOORBELL_QUIET	1	/* the worker will look anyway */
#define JOBSCHED_DOORBELL_NOTED	2	/* ... and commits came meanwhile */

extern void jobsched_wake_init(void);
extern void jobsched_wake_mark_worker_process(void);
extern void jobsched_wake_doorbell_quiet(void);
extern bool jobsched_wake_doorbell_arm(void);

/* database identity and Job names (naming.c) */
#define JOBSCHED_INSTANCE_LEN 10	/* hex digits of the identity hash */
#define JOBSCHED_NAME_MAX 63		/* a DNS-1123 label, and the job-name label */

extern const char *jobsched_instance_id(void);
extern char *jobsched_job_name(const char *type, int64 job_id);

/* the background worker (worker.c) */
extern void jobsched_worker_register(void);
extern PGDLLEXPORT void jobsched_worker_main(Datum main_arg);
extern long jobsched_ms_until(TimestampTz now, TimestampTz then);

#endif							/* JOBSCHED_H */
