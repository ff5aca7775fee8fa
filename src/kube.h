/*-------------------------------------------------------------------------
 *
 * kube.h
 *	  A small asynchronous Kubernetes API client on libcurl's multi
 *	  interface, driven from the worker's WaitEventSet.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_KUBE_H
#define JOBSCHED_KUBE_H

/* the most an answer may take unless the request says otherwise */
#define KUBE_MAX_RESPONSE		(8 * 1024 * 1024)
/* the most a page of a single Job, or a watch's unread events, may take */
#define KUBE_BIG_RESPONSE		(64 * 1024 * 1024)

#include "datatype/timestamp.h"
#include "lib/ilist.h"

typedef enum KubeMethod
{
	KUBE_GET,
	KUBE_POST,
	KUBE_DELETE
} KubeMethod;

typedef struct KubeRequest KubeRequest;
typedef void (*KubeDoneCallback) (KubeRequest *req);

struct KubeRequest
{
	/* set by the caller */
	KubeMethod	method;
	char	   *path;			/* below the API URL, with query string */
	char	   *body;			/* JSON, or NULL */
	KubeDoneCallback on_done;	/* called by the worker once it finished */
	void	   *owner;			/* the caller's object */
	int			purpose;		/* what the caller asked for */
	uint64		tag;			/* the caller's, too */
	long		timeout_ms;		/* 0: jobsched.request_timeout */
	size_t		max_response;	/* 0: KUBE_MAX_RESPONSE; more fails the request */

	/* the outcome, valid once kube_next_done() returned the request */
	long		http_status;	/* 0 when no response came */
	int			curl_result;	/* CURLcode */
	char		curl_error[256];
	char	   *response;		/* NUL-terminated body (malloc'd), or NULL */
	size_t		response_len;
	int			retry_after;	/* Retry-After in seconds, or -1 */
	bool		sent;			/* the request left us: it may have had effect */
	TimestampTz started_at;		/* when it was handed to libcurl */
	bool		overflow;		/* the answer was larger than max_response */

	/* private to kube.c */
	void	   *easy;
	struct curl_slist *headers;
	size_t		response_cap;
	dlist_node	node;
};

extern void jobsched_kube_init(void);
extern void jobsched_kube_configure(void);
extern void jobsched_kube_invalidate_token(void);
extern const char *jobsched_kube_url(void);

extern KubeRequest *jobsched_kube_request_new(KubeMethod method, const char *path,
											  const char *body,
											  KubeDoneCallback on_done,
											  void *owner, int purpose);
extern void jobsched_kube_request_start(KubeRequest *req);
extern void jobsched_kube_request_free(KubeRequest *req);
extern void jobsched_kube_request_cancel(KubeRequest *req);
extern void jobsched_kube_consume(KubeRequest *req, size_t len);
extern KubeRequest *jobsched_kube_next_done(void);
extern void jobsched_kube_abandon_all(void);

extern void jobsched_kube_kick(void);
extern bool jobsched_kube_wait(long timeout_ms, uint32 wait_event_info);

extern TimestampTz jobsched_kube_last_answer_at(void);
extern bool jobsched_kube_tls_failure(const KubeRequest *req);
extern char *jobsched_kube_escape(const char *text);
extern char *jobsched_kube_instance_selector(void);
extern bool jobsched_kube_uid_ok(const char *uid);
extern char *jobsched_kube_delete_options(const char *uid);
extern char *jobsched_kube_status_message(const KubeRequest *req);
extern char *jobsched_kube_describe_failure(const KubeRequest *req);

#endif							/* JOBSCHED_KUBE_H */
