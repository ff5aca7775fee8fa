/*-------------------------------------------------------------------------
 *
 * kube.c
 *	  The Kubernetes API client: libcurl's multi interface with its
 *	  sockets and timer in the worker's WaitEventSet, next to the latch
 *	  and postmaster death, so several requests are in flight while the
 *	  worker still reacts to SIGTERM, SIGHUP and wake-ups within a
 *	  millisecond, even mid-request.
 *
 *	  libcurl calls back into this file from inside curl_multi_*.  Those
 *	  callbacks never ereport, palloc or CHECK_FOR_INTERRUPTS: a longjmp
 *	  through libcurl would corrupt it.  They use malloc and fixed tables,
 *	  and report through flags that are read after libcurl returns.
 *
 *	  The bearer token is read from a file, re-read once a minute and
 *	  after a 401 (bound service-account tokens rotate), kept in malloc'd
 *	  memory, and never written to the log or an error message.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <stdio.h>

#include <cJSON.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "jobsched.h"
#include "kube.h"

#define KUBE_TOKEN_MAX_AGE_MS	60000	/* client-go re-reads once a minute */
#define KUBE_MAX_SOCKETS		1024
#define KUBE_EXTRA_CONNECTIONS	8
#define KUBE_WAIT_EVENTS		64	/* socket events taken per wait */
#define KUBE_UID_MAX			64	/* an API server uid is a 36-character UUID */
#define KUBE_USER_AGENT			"jobsched/1.1"

StaticAssertDecl(sizeof(((KubeRequest *) 0)->curl_error) >= CURL_ERROR_SIZE,
				 "curl_error must hold CURL_ERROR_SIZE bytes");

typedef struct KubeSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} KubeSocket;

static CURLM *kube_multi = NULL;

/* settings in force, malloc'd (see jobsched_kube_configure) */
static char *kube_url = NULL;
static char *kube_ca_file = NULL;
static char *kube_cert_file = NULL;
static char *kube_key_file = NULL;
static char *kube_token_file = NULL;

/* the token's Authorization header line, malloc'd; NULL if none */
static char *kube_auth_header = NULL;
static TimestampTz kube_token_read_at = 0;
static bool kube_token_stale = true;

/* curl's sockets, maintained by kube_socket_callback */
static KubeSocket kube_sockets[KUBE_MAX_SOCKETS];
static int	kube_nsockets = 0;
static bool kube_sockets_changed = true;

/* curl's timer: -1 none, else the absolute deadline in ms */
static int64 kube_timer_deadline = -1;

static WaitEventSet *kube_wait_set = NULL;

/*
 * The latest start of a request the API answered as a working server does:
 * a watch that began before an outage and ends during it proves nothing.
 */
static TimestampTz kube_last_answer_at = 0;

/* the URL is plain http (a loopback proxy): never send the token there */
static bool kube_plain_http = false;

static dlist_head kube_running = DLIST_STATIC_INIT(kube_running);
static dlist_head kube_done = DLIST_STATIC_INIT(kube_done);
static int	kube_nrunning = 0;

static int64
kube_now_ms(void)
{
	return GetCurrentTimestamp() / 1000;
}

static char *
kube_strdup_or_null(const char *s)
{
	char	   *copy;

	if (s == NULL || s[0] == '\0')
		return NULL;
	copy = strdup(s);
	if (copy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return copy;
}

/* ---- libcurl callbacks: no ereport, no palloc ---- */

static int
kube_socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp,
					 void *socketp)
{
	int			i;

	for (i = 0; i < kube_nsockets; i++)
		if (kube_sockets[i].fd == fd)
			break;

	if (what == CURL_POLL_REMOVE)
	{
		if (i < kube_nsockets)
			kube_sockets[i] = kube_sockets[--kube_nsockets];
	}
	else if (i < kube_nsockets)
		kube_sockets[i].what = what;
	else if (kube_nsockets < KUBE_MAX_SOCKETS)
	{
		kube_sockets[kube_nsockets].fd = fd;
		kube_sockets[kube_nsockets].what = what;
		kube_nsockets++;
	}
	else
		return -1;				/* curl fails the transfer */

	kube_sockets_changed = true;
	return 0;
}

static int
kube_timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	kube_timer_deadline = timeout_ms < 0 ? -1 : kube_now_ms() + timeout_ms;
	return 0;
}

static size_t
kube_write_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	KubeRequest *req = (KubeRequest *) userp;
	size_t		len = size * nmemb;

	if (req->response_len + len + 1 > req->response_cap)
	{
		size_t		cap = Max(req->response_cap * 2, 4096);
		size_t		limit = req->max_response ? req->max_response : KUBE_MAX_RESPONSE;

		/* a watch's buffer holds what the caller has not consumed yet */
		char	   *grown;

		while (cap < req->response_len + len + 1)
			cap *= 2;
		if (req->response_len + len + 1 > limit)
		{
			req->overflow = true;
			return 0;			/* aborts the transfer */
		}
		cap = Min(cap, limit);
		grown = realloc(req->response, cap);
		if (grown == NULL)
			return 0;
		req->response = grown;
		req->response_cap = cap;
	}
	memcpy(req->response + req->response_len, data, len);
	req->response_len += len;
	req->response[req->response_len] = '\0';
	return len;
}

static size_t
kube_header_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	KubeRequest *req = (KubeRequest *) userp;
	size_t		len = size * nmemb;
	static const char name[] = "retry-after:";

	if (len > sizeof(name) - 1 && pg_strncasecmp(data, name, sizeof(name) - 1) == 0)
	{
		char		digits[16];
		size_t		i = sizeof(name) - 1;
		int			n = 0;

		while (i < len && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < len && n < (int) sizeof(digits) - 1 && data[i] >= '0' && data[i] <= '9')
			digits[n++] = data[i++];
		digits[n] = '\0';
		/* an HTTP-date form is ignored: the backoff applies instead */
		if (n > 0 && n < 7)
			req->retry_after = atoi(digits);
	}
	return len;
}

/*
 * libcurl setup failures name the option that failed (as pg_net does).  They
 * are out of memory, or a libcurl built without a feature we rely on.
 */
#define KUBE_SETOPT(easy, opt, value) \
	do { \
		CURLcode	setopt_rc_ = curl_easy_setopt((easy), (opt), (value)); \
		if (setopt_rc_ != CURLE_OK) \
			ereport(ERROR, \
					(errcode(ERRCODE_SYSTEM_ERROR), \
					 errmsg("could not set libcurl option %s", #opt), \
					 errdetail_internal("%s", curl_easy_strerror(setopt_rc_)))); \
	} while (0)

#define KUBE_MULTI_SETOPT(multi, opt, value) \
	do { \
		CURLMcode	setopt_rc_ = curl_multi_setopt((multi), (opt), (value)); \
		if (setopt_rc_ != CURLM_OK) \
			ereport(ERROR, \
					(errcode(ERRCODE_SYSTEM_ERROR), \
					 errmsg("could not set libcurl option %s", #opt), \
					 errdetail_internal("%s", curl_multi_strerror(setopt_rc_)))); \
	} while (0)

/* ---- configuration and credentials ---- */

void
jobsched_kube_init(void)
{
	CURLcode	rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl"),
				 errdetail_internal("%s", curl_easy_strerror(rc))));
	kube_multi = curl_multi_init();
	if (kube_multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	KUBE_MULTI_SETOPT(kube_multi, CURLMOPT_SOCKETFUNCTION, kube_socket_callback);
	KUBE_MULTI_SETOPT(kube_multi, CURLMOPT_TIMERFUNCTION, kube_timer_callback);
	jobsched_kube_configure();
}

/*
 * Take the settings in force (at start and after SIGHUP).  Connections
 * already open keep their TLS state; new ones use the new files.
 */
void
jobsched_kube_configure(void)
{
	char	   *url = jobsched_guc_api_url();
	size_t		len = strlen(url);

	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';

	free(kube_url);
	kube_url = kube_strdup_or_null(url);
	kube_plain_http = (strncmp(url, "http://", 7) == 0);
	free(kube_ca_file);
	kube_ca_file = kube_strdup_or_null(jobsched_kube_ca_file);
	free(kube_cert_file);
	kube_cert_file = kube_strdup_or_null(jobsched_kube_client_cert_file);
	free(kube_key_file);
	kube_key_file = kube_strdup_or_null(jobsched_kube_client_key_file);
	free(kube_token_file);
	kube_token_file = kube_strdup_or_null(jobsched_kube_token_file);
	kube_token_stale = true;
	pfree(url);

	/* room for the creates, plus watches, status, cancel and cleanup calls */
	KUBE_MULTI_SETOPT(kube_multi, CURLMOPT_MAX_HOST_CONNECTIONS,
					  (long) jobsched_max_in_flight + KUBE_EXTRA_CONNECTIONS);
	KUBE_MULTI_SETOPT(kube_multi, CURLMOPT_MAXCONNECTS,
					  (long) jobsched_max_in_flight + KUBE_EXTRA_CONNECTIONS);
}

const char *
jobsched_kube_url(void)
{
	return kube_url ? kube_url : "";
}

void
jobsched_kube_invalidate_token(void)
{
	kube_token_stale = true;
}

/*
 * Re-read the token file when it is due.  A file that cannot be read
 * leaves the request without credentials: the API answers 401, which
 * keeps jobs pending until an operator fixes the file.  Messages name
 * the file, never its contents.
 */
static void
kube_refresh_token(void)
{
	FILE	   *f;
	char	   *buf;
	size_t		len;
	int64		now = kube_now_ms();

	if (!kube_token_stale && now - kube_token_read_at / 1000 < KUBE_TOKEN_MAX_AGE_MS)
		return;
	kube_token_stale = false;
	kube_token_read_at = GetCurrentTimestamp();

	if (kube_auth_header)
	{
		explicit_bzero(kube_auth_header, strlen(kube_auth_header));
		free(kube_auth_header);
		kube_auth_header = NULL;
	}
	if (kube_token_file == NULL)
		return;

	f = AllocateFile(kube_token_file, "r");
	if (f == NULL)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not open Kubernetes token file \"%s\": %m",
						kube_token_file)));
		return;
	}
#define KUBE_TOKEN_MAX 16384
	buf = malloc(KUBE_TOKEN_MAX + 32);
	if (buf == NULL)
	{
		FreeFile(f);
		return;
	}
	memcpy(buf, "Authorization: Bearer ", 22);
	len = fread(buf + 22, 1, KUBE_TOKEN_MAX, f);
	FreeFile(f);
	while (len > 0 && (buf[22 + len - 1] == '\n' || buf[22 + len - 1] == '\r' ||
					   buf[22 + len - 1] == ' ' || buf[22 + len - 1] == '\t'))
		len--;
	buf[22 + len] = '\0';
	if (len == 0 || len >= KUBE_TOKEN_MAX || strpbrk(buf + 22, "\r\n") != NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kubernetes token file \"%s\" does not hold a usable token",
						kube_token_file),
				 errdetail("The file is empty, too long, or spans several lines.")));
		explicit_bzero(buf, KUBE_TOKEN_MAX + 32);
		free(buf);
		return;
	}
	kube_auth_header = buf;
}

/* ---- requests ---- */

KubeRequest *
jobsched_kube_request_new(KubeMethod method, const char *path, const char *body,
						  KubeDoneCallback on_done, void *owner, int purpose)
{
	KubeRequest *req = palloc0(sizeof(KubeRequest));

	req->method = method;
	req->on_done = on_done;
	req->owner = owner;
	req->purpose = purpose;
	req->path = pstrdup(path);
	req->body = body ? pstrdup(body) : NULL;
	req->retry_after = -1;
	return req;
}

/* the options every request shares: transport, timeouts, TLS, callbacks */
static void
kube_setup_transport(CURL *easy, KubeRequest *req)
{
	char	   *url = psprintf("%s%s", jobsched_kube_url(), req->path);

	KUBE_SETOPT(easy, CURLOPT_URL, url);
	pfree(url);					/* libcurl copies strings it is given */

	KUBE_SETOPT(easy, CURLOPT_PRIVATE, req);
	KUBE_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
	KUBE_SETOPT(easy, CURLOPT_PROTOCOLS_STR, kube_plain_http ? "http" : "https");
	KUBE_SETOPT(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	KUBE_SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	KUBE_SETOPT(easy, CURLOPT_TIMEOUT_MS,
				req->timeout_ms > 0 ? req->timeout_ms : (long) jobsched_request_timeout);
	KUBE_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS,
				(long) Min(jobsched_request_timeout, 10000));
	KUBE_SETOPT(easy, CURLOPT_ERRORBUFFER, req->curl_error);
	KUBE_SETOPT(easy, CURLOPT_WRITEFUNCTION, kube_write_callback);
	KUBE_SETOPT(easy, CURLOPT_WRITEDATA, req);
	KUBE_SETOPT(easy, CURLOPT_HEADERFUNCTION, kube_header_callback);
	KUBE_SETOPT(easy, CURLOPT_HEADERDATA, req);
	KUBE_SETOPT(easy, CURLOPT_USERAGENT, KUBE_USER_AGENT);

	/*
	 * Verify the server against the one CA file only: loading the system
	 * bundle costs memory and CPU on every new connection and would trust
	 * more than the cluster's CA.
	 */
	KUBE_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	KUBE_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (kube_ca_file)
	{
		KUBE_SETOPT(easy, CURLOPT_CAINFO, kube_ca_file);
		KUBE_SETOPT(easy, CURLOPT_CAPATH, (char *) NULL);
	}
	if (kube_cert_file)
		KUBE_SETOPT(easy, CURLOPT_SSLCERT, kube_cert_file);
	if (kube_key_file)
		KUBE_SETOPT(easy, CURLOPT_SSLKEY, kube_key_file);
}

/* the method, its body, and the headers (kept in req until it is released) */
static void
kube_setup_message(CURL *easy, KubeRequest *req)
{
	struct curl_slist *headers = NULL;
	struct curl_slist *h;

	switch (req->method)
	{
		case KUBE_GET:
			break;
		case KUBE_DELETE:
			KUBE_SETOPT(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
			if (req->body == NULL)
				break;
			/* FALLTHROUGH */
		case KUBE_POST:
			KUBE_SETOPT(easy, CURLOPT_POSTFIELDSIZE,
						(long) (req->body ? strlen(req->body) : 0));
			KUBE_SETOPT(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
			break;
	}

	h = curl_slist_append(headers, "Accept: application/json");
	if (h)
		h = curl_slist_append(headers = h, "Content-Type: application/json");
	if (h)
		h = curl_slist_append(headers = h, "Expect:");
	/* a token goes over TLS only (plain http is a loopback proxy's) */
	if (h && kube_auth_header && !kube_plain_http)
		h = curl_slist_append(headers = h, kube_auth_header);
	if (h == NULL)
	{
		curl_slist_free_all(headers);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	req->headers = h;
	KUBE_SETOPT(easy, CURLOPT_HTTPHEADER, h);
}

/*
 * Hand a request to libcurl.  The caller's KubeRequest (and its path and
 * body) must stay allocated until it comes back from kube_next_done()
 * or is abandoned.
 */
void
jobsched_kube_request_start(KubeRequest *req)
{
	CURLMcode	mrc;

	kube_refresh_token();

	req->easy = curl_easy_init();
	if (req->easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	kube_setup_transport(req->easy, req);
	kube_setup_message(req->easy, req);

	mrc = curl_multi_add_handle(kube_multi, req->easy);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start a Kubernetes API request"),
				 errdetail_internal("%s", curl_multi_strerror(mrc))));
	req->started_at = GetCurrentTimestamp();
	dlist_push_tail(&kube_running, &req->node);
	kube_nrunning++;
}

static void
kube_release_handle(KubeRequest *req)
{
	if (req->easy)
	{
		curl_multi_remove_handle(kube_multi, req->easy);
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
	if (req->headers)
	{
		curl_slist_free_all(req->headers);
		req->headers = NULL;
	}
}

void
jobsched_kube_request_free(KubeRequest *req)
{
	kube_release_handle(req);
	free(req->response);
	req->response = NULL;
	pfree(req->path);
	if (req->body)
		pfree(req->body);
	pfree(req);
}

/* Stop a request in flight (or forget a finished one); the caller frees it. */
void
jobsched_kube_request_cancel(KubeRequest *req)
{
	if (req->easy)
	{
		dlist_delete(&req->node);
		kube_nrunning--;
	}
	else if (req->node.next != NULL)
		dlist_delete(&req->node);	/* on the done list */
	req->node.next = req->node.prev = NULL;
	kube_release_handle(req);
}

/*
 * A streaming caller has handled the first len bytes of the response: drop
 * them, so a long watch does not grow its buffer without bound.
 */
void
jobsched_kube_consume(KubeRequest *req, size_t len)
{
	Assert(len <= req->response_len);
	memmove(req->response, req->response + len, req->response_len - len);
	req->response_len -= len;
	req->response[req->response_len] = '\0';
}

KubeRequest *
jobsched_kube_next_done(void)
{
	KubeRequest *req;

	if (dlist_is_empty(&kube_done))
		return NULL;
	req = dlist_container(KubeRequest, node, dlist_pop_head_node(&kube_done));
	req->node.next = req->node.prev = NULL;
	return req;
}

/*
 * Forget every request in flight (error recovery).  Their memory belongs
 * to the caller, who is resetting it; only libcurl's side is released.
 */
void
jobsched_kube_abandon_all(void)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &kube_running)
	{
		KubeRequest *req = dlist_container(KubeRequest, node, iter.cur);

		dlist_delete(iter.cur);
		req->node.next = req->node.prev = NULL;
		kube_release_handle(req);
		free(req->response);
		req->response = NULL;
	}
	dlist_foreach_modify(iter, &kube_done)
	{
		KubeRequest *req = dlist_container(KubeRequest, node, iter.cur);

		dlist_delete(iter.cur);
		req->node.next = req->node.prev = NULL;
		free(req->response);
		req->response = NULL;
	}
	kube_nrunning = 0;
}

/* Move finished transfers from libcurl to the done list. */
static void
kube_collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(kube_multi, &left)) != NULL)
	{
		KubeRequest *req = NULL;
		long		sent = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		if (req == NULL)
			continue;
		req->curl_result = msg->data.result;
		if (req->overflow)
			snprintf(req->curl_error, sizeof(req->curl_error),
					 "the answer is larger than %zu bytes",
					 req->max_response ? req->max_response : (size_t) KUBE_MAX_RESPONSE);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &req->http_status);
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK)
			req->sent = (sent > 0);
		else
			req->sent = true;	/* cannot tell: assume the worst */
		if (req->http_status > 0 && req->http_status < 500 && req->http_status != 429 &&
			req->started_at > kube_last_answer_at)
			kube_last_answer_at = req->started_at;
		kube_release_handle(req);
		dlist_delete(&req->node);
		dlist_push_tail(&kube_done, &req->node);
		kube_nrunning--;
	}
}

static void
kube_rebuild_wait_set(void)
{
	int			i;

	if (kube_wait_set)
		FreeWaitEventSet(kube_wait_set);
	kube_wait_set = jobsched_create_wait_event_set(kube_nsockets + 2);
	AddWaitEventToSet(kube_wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(kube_wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < kube_nsockets; i++)
	{
		uint32		events = 0;

		if (kube_sockets[i].what & CURL_POLL_IN)
			events |= WL_SOCKET_READABLE;
		if (kube_sockets[i].what & CURL_POLL_OUT)
			events |= WL_SOCKET_WRITEABLE;
		AddWaitEventToSet(kube_wait_set, events, kube_sockets[i].fd, NULL,
						  (void *) (intptr_t) kube_sockets[i].fd);
	}
	kube_sockets_changed = false;
}

/* Let libcurl act on its timer if it has run out; true if it had. */
static bool
kube_run_due_timer(void)
{
	int			running;

	if (kube_timer_deadline < 0 || kube_timer_deadline > kube_now_ms())
		return false;
	kube_timer_deadline = -1;
	curl_multi_socket_action(kube_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	return true;
}

/*
 * Let libcurl start the requests just added, now rather than at the next
 * wait: the connection or the request goes out before the caller moves
 * on to other work.
 */
void
jobsched_kube_kick(void)
{
	if (kube_run_due_timer())
		kube_collect_finished();
}

/*
 * Wait for the latch, libcurl's sockets or its timer, at most timeout_ms
 * (-1: no limit), then let libcurl make progress.  Finished requests are
 * then available from kube_next_done().  Returns true if the latch was
 * set (the caller resets it).  Postmaster death exits the process.
 */
bool
jobsched_kube_wait(long timeout_ms, uint32 wait_event_info)
{
	WaitEvent	events[KUBE_WAIT_EVENTS];
	int			nevents;
	int			i;
	bool		latch_set = false;
	int			running;

	if (kube_timer_deadline >= 0)
	{
		int64		until_timer = Max(kube_timer_deadline - kube_now_ms(), 0);

		if (timeout_ms < 0 || until_timer < timeout_ms)
			timeout_ms = (long) until_timer;
	}

	/* answers already collected (by jobsched_kube_kick) need no waiting */
	if (!dlist_is_empty(&kube_done))
		timeout_ms = 0;

	if (kube_sockets_changed || kube_wait_set == NULL)
		kube_rebuild_wait_set();

	nevents = WaitEventSetWait(kube_wait_set, timeout_ms, events,
							   lengthof(events), wait_event_info);

	for (i = 0; i < nevents; i++)
	{
		int			mask = 0;

		if (events[i].events & WL_LATCH_SET)
		{
			latch_set = true;
			continue;
		}
		if (events[i].events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		if (mask != 0)
			curl_multi_socket_action(kube_multi, (curl_socket_t) (intptr_t) events[i].user_data,
									 mask, &running);
	}

	(void) kube_run_due_timer();
	kube_collect_finished();
	return latch_set;
}

/*
 * When the latest request that the API answered as a working server does
 * (any status but 5xx and 429) was started; 0 if never.  An outage is over
 * once this is later than its start, whoever made the request.
 */
TimestampTz
jobsched_kube_last_answer_at(void)
{
	return kube_last_answer_at;
}

/*
 * Did the request fail because TLS could not be set up or the server not
 * be verified (a wrong or missing CA file, a bad client certificate)?
 * That is for an operator to fix, like 401 and 403.
 */
bool
jobsched_kube_tls_failure(const KubeRequest *req)
{
	switch ((CURLcode) req->curl_result)
	{
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_SSL_CLIENTCERT:
			return true;
		default:
			return false;
	}
}

/* The label selector of this installation's objects, URL-encoded; palloc'd. */
char *
jobsched_kube_instance_selector(void)
{
	return psprintf("jobsched.io%%2Finstance%%3D%s", jobsched_instance_id());
}

/*
 * Is this a uid as the API server makes them (a UUID), safe to store and
 * to send back?  Anything else goes nowhere near JSON or a row.
 */
bool
jobsched_kube_uid_ok(const char *uid)
{
	size_t		len;

	if (uid == NULL)
		return false;
	len = strlen(uid);
	return len > 0 && len <= KUBE_UID_MAX &&
		strspn(uid, "0123456789abcdefABCDEF-") == len;
}

/*
 * The DeleteOptions body of every delete the worker sends: the pods go
 * with their Job (the batch/v1 default would orphan them), and only the
 * object with this uid may be deleted, never one that took its name since.
 * palloc'd.
 */
char *
jobsched_kube_delete_options(const char *uid)
{
	if (uid != NULL && !jobsched_kube_uid_ok(uid))
		return NULL;
	if (uid == NULL)
		return pstrdup("{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
					   "\"propagationPolicy\":\"Background\"}");
	return psprintf("{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
					"\"propagationPolicy\":\"Background\","
					"\"preconditions\":{\"uid\":\"%s\"}}", uid);
}

/*
 * Percent-encode text for a query string (label selectors, continue
 * tokens): all but RFC 3986's unreserved characters.  palloc'd.
 */
char *
jobsched_kube_escape(const char *text)
{
	StringInfoData buf;
	const unsigned char *c;

	initStringInfo(&buf);
	for (c = (const unsigned char *) text; *c; c++)
	{
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			(*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' || *c == '~')
			appendStringInfoChar(&buf, (char) *c);
		else
			appendStringInfo(&buf, "%%%02X", *c);
	}
	return buf.data;
}

/*
 * The message of a Kubernetes Status error body, or of a plain-text body,
 * shortened to one line.  palloc'd; NULL if there is none.
 */
char *
jobsched_kube_status_message(const KubeRequest *req)
{
	cJSON	   *root;
	cJSON	   *message;
	char	   *result = NULL;

	if (req->response == NULL || req->response_len == 0)
		return NULL;

	root = cJSON_Parse(req->response);
	if (root != NULL)
	{
		message = cJSON_GetObjectItemCaseSensitive(root, "message");
		if (cJSON_IsString(message) && message->valuestring[0] != '\0')
			result = pnstrdup(message->valuestring, 1000);
		cJSON_Delete(root);
	}
	else
	{
		/* 429 and some proxies answer in plain text */
		result = pnstrdup(req->response, Min(req->response_len, 1000));
	}
	if (result)
	{
		char	   *p;
		int			len;

		for (p = result; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		len = strlen(result);
		while (len > 0 && result[len - 1] == ' ')
			result[--len] = '\0';
	}
	return result;
}

/*
 * One line that says what went wrong with a request that got no usable
 * answer, or got an error status.  palloc'd.
 */
char *
jobsched_kube_describe_failure(const KubeRequest *req)
{
	char	   *message;

	if (req->curl_result != CURLE_OK)
		return psprintf("could not reach the Kubernetes API at %s: %s",
						jobsched_kube_url(),
						req->curl_error[0] ? req->curl_error :
						curl_easy_strerror((CURLcode) req->curl_result));

	message = jobsched_kube_status_message(req);
	if (message)
		return psprintf("Kubernetes API answered %ld: %s", req->http_status, message);
	return psprintf("Kubernetes API answered %ld", req->http_status);
}
