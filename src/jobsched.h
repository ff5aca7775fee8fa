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

/* the version of the SQL objects this library works with */
#define JOBSCHED_VERSION "1.1"

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
extern int	jobsched_batch_max_bytes;
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
extern void jobsched_guc_warn_risky(void);

/* a DNS-1123 label: a Job's or a namespace's name, and the job-name label */
#define JOBSCHED_NAME_MAX 63

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
	char		namespace[JOBSCHED_NAME_MAX + 1];
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
extern void jobsched_shmem_set_listening(bool listening);
extern void jobsched_shmem_publish_config(void);
extern void jobsched_shmem_snapshot(JobschedShared *copy, uint64 *wakeups);
extern void jobsched_shmem_count_wakeup(void);
extern int	jobsched_shmem_awake_worker_procno(void);
extern void jobsched_shmem_add_cancel_request(void);
extern uint64 jobsched_shmem_cancel_requests(void);
extern uint32 jobsched_shmem_doorbell_swap(uint32 state);
extern bool jobsched_shmem_doorbell_change(uint32 *expected, uint32 state);
extern void jobsched_shmem_count_requests(int requests, int errors, int submitted,
										  bool api_ok);
extern void jobsched_shmem_set_dispatch(int in_flight, TimestampTz paused_until);
extern void jobsched_shmem_set_cleanup(uint64 jobs_deleted, uint64 pods_deleted);

/* wake-up (wake.c) */
#define JOBSCHED_DOORBELL_ARMED	0	/* the next commit sets the worker's latch */
#define JOBSCHED_DOORBELL_QUIET	1	/* the worker will look anyway */
#define JOBSCHED_DOORBELL_NOTED	2	/* ... and commits came meanwhile */

extern void jobsched_wake_init(void);
extern void jobsched_wake_mark_worker_process(void);
extern void jobsched_wake_doorbell_quiet(void);
extern bool jobsched_wake_doorbell_arm(void);

/* what the worker puts on every Job it creates (render.c) and looks for */
#define JOBSCHED_LABEL_MANAGED_BY	"app.kubernetes.io/managed-by"
#define JOBSCHED_LABEL_JOB_ID		"jobsched.io/job-id"
#define JOBSCHED_LABEL_TYPE			"jobsched.io/type"
#define JOBSCHED_LABEL_INSTANCE		"jobsched.io/instance"
#define JOBSCHED_MANAGED_BY_VALUE	"jobsched"
#define JOBSCHED_ANNOTATION_PROOF	"jobsched.io/proof"

/* etcd's default limit on one object, which the API server enforces */
#define JOBSCHED_OBJECT_MAX_BYTES	1572864

/* the installation's identity, Job names and proofs (naming.c) */
#define JOBSCHED_INSTANCE_LEN 10	/* hex digits of the instance */

/* what a proof binds together: a Job and one run of one row */
typedef struct JobschedProofInput
{
	const char *namespace;
	const char *name;
	int64		job_id;
	int			run;
	TimestampTz created_at;		/* the row's created_at */
} JobschedProofInput;

extern bool jobsched_installation_load(void);
extern const char *jobsched_instance_id(void);
extern char *jobsched_legacy_instance_id(void);
extern uint32 jobsched_identity_generation(void);
extern TimestampTz jobsched_labels_trusted_before(void);
extern char *jobsched_job_name(const char *instance, const char *type,
							   int64 job_id, int run);
extern char *jobsched_proof(const JobschedProofInput *in);
extern bool jobsched_proof_check(const char *proof, const char *namespace,
								 const char *name, int64 job_id, int *run,
								 TimestampTz *created_at);

/* helpers for every layer (util.c) */
extern long jobsched_ms_until(TimestampTz now, TimestampTz then);
extern long jobsched_min_timeout(long a, long b);
extern int	jobsched_backoff_ms(int failures, int cap_ms);
extern char *jobsched_clean_text(const char *text, int max_bytes);
extern bool jobsched_is_dns_label(const char *s);

/* the background worker (worker.c) */
extern void jobsched_worker_register(void);
extern PGDLLEXPORT void jobsched_worker_main(Datum main_arg);

#endif							/* JOBSCHED_H */
