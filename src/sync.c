/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Keeping each row in step with its Job: LIST + WATCH per namespace.
 *
 *	  For every namespace this database uses, the worker LISTs its Jobs
 *	  (paginated, by this database's instance label) and then WATCHes from
 *	  the list's resourceVersion, so a change reaches its row within
 *	  moments.  Bookmarks keep the resourceVersion fresh; an expired one
 *	  (410, as an ERROR event inside the stream) means a relist.  A relist
 *	  every jobsched.sync_interval bounds staleness whatever happens to the
 *	  watch, and finds rows whose Job was deleted behind our back.
 *
 *	  The watch is one more request in the worker's libcurl multi handle:
 *	  it never blocks dispatch, and it is read as it arrives, from the main
 *	  loop, never from inside a libcurl callback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "lib/ilist.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "jobsched.h"
#include "kobject.h"
#include "kube.h"
#include "queue.h"
#include "sync.h"

#define SYNC_PAGE_SIZE		500
#define SYNC_WATCH_SECONDS	290
#define SYNC_RETRY_MS		1000

typedef struct SyncNamespace
{
	char		name[64];
	bool		in_use;

	/* listing */
	KubeRequest *list_req;
	TimestampTz list_started_at;
	TimestampTz next_list_at;
	int64	   *seen;			/* job ids in the listing so far */
	int			nseen;
	int			seen_cap;
	bool		check_missing;	/* a complete listing awaits the flush */

	/* watching */
	KubeRequest *watch_req;
	char		resource_version[64];
	TimestampTz next_watch_at;

	dlist_node	node;
} SyncNamespace;

/* what a status update needs besides the row: where to find its pods */
typedef struct SyncPending
{
	JobschedJobStatus status;
	char		namespace[64];
	char	   *name;
	int			seq;
} SyncPending;

static MemoryContext sync_cxt = NULL;	/* namespaces */
static MemoryContext sync_batch_cxt = NULL; /* pending updates */
static dlist_head sync_namespaces = DLIST_STATIC_INIT(sync_namespaces);
static SyncPending *sync_pending = NULL;
static int	sync_npending = 0;
static int	sync_pending_cap = 0;
static TimestampTz sync_next_refresh = 0;
static char sync_selector[128];

static void sync_list_done(KubeRequest *req);
static void sync_watch_done(KubeRequest *req);
static void sync_pods_done(KubeRequest *req);

void
jobsched_sync_init(void)
{
	sync_cxt = AllocSetContextCreate(TopMemoryContext, "jobsched sync",
									 ALLOCSET_DEFAULT_SIZES);
	sync_batch_cxt = AllocSetContextCreate(sync_cxt, "jobsched sync batch",
										   ALLOCSET_DEFAULT_SIZES);
	/* a label selector, URL-encoded: jobsched.io/instance=<id> */
	snprintf(sync_selector, sizeof(sync_selector), "jobsched.io%%2Finstance%%3D%s",
			 jobsched_instance_id());
}

static void
sync_stop_namespace(SyncNamespace *ns)
{
	if (ns->list_req)
	{
		jobsched_kube_request_cancel(ns->list_req);
		jobsched_kube_request_free(ns->list_req);
		ns->list_req = NULL;
	}
	if (ns->watch_req)
	{
		jobsched_kube_request_cancel(ns->watch_req);
		jobsched_kube_request_free(ns->watch_req);
		ns->watch_req = NULL;
	}
	ns->nseen = 0;
	ns->check_missing = false;
}

/* Forget everything (error recovery, or the worker disabled). */
void
jobsched_sync_reset(void)
{
	while (!dlist_is_empty(&sync_namespaces))
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node,
											dlist_pop_head_node(&sync_namespaces));

		sync_stop_namespace(ns);
		if (ns->seen)
			pfree(ns->seen);
		pfree(ns);
	}
	MemoryContextReset(sync_batch_cxt);
	sync_pending = NULL;
	sync_npending = 0;
	sync_pending_cap = 0;
	sync_next_refresh = 0;
}

static void
sync_queue(SyncNamespace *ns, const JobschedJobStatus *st, const char *name)
{
	MemoryContext old = MemoryContextSwitchTo(sync_batch_cxt);
	SyncPending *p;

	if (sync_npending == sync_pending_cap)
	{
		sync_pending_cap = Max(sync_pending_cap * 2, 256);
		sync_pending = sync_pending ?
			repalloc(sync_pending, sizeof(SyncPending) * sync_pending_cap) :
			palloc(sizeof(SyncPending) * sync_pending_cap);
	}
	p = &sync_pending[sync_npending];
	p->seq = sync_npending++;
	p->status.id = st->id;
	p->status.uid = st->uid ? pstrdup(st->uid) : NULL;
	p->status.state = st->state;
	p->status.error = st->error ? pstrdup(st->error) : NULL;
	p->status.started_at = st->started_at ? pstrdup(st->started_at) : NULL;
	p->status.finished_at = st->finished_at ? pstrdup(st->finished_at) : NULL;
	strlcpy(p->namespace, ns->name, sizeof(p->namespace));
	p->name = pstrdup(name ? name : "");
	MemoryContextSwitchTo(old);
}

/*
 * Read one Job object: ours?  Which state does it say?  Returns its row's
 * id, or 0 for a Job that is not one of this database's.  deleted: the
 * object comes from a DELETED event.
 */
static int64
sync_observe(SyncNamespace *ns, cJSON *job, bool deleted)
{
	cJSON	   *status = jobsched_kobject_get(job, "status", NULL, NULL);
	cJSON	   *active = jobsched_kobject_get(status, "active", NULL, NULL);
	cJSON	   *finished;
	bool		succeeded = false;
	JobschedJobStatus st;

	memset(&st, 0, sizeof(st));
	st.id = jobsched_kobject_job_id(job);
	if (st.id == 0)
		return 0;
	st.uid = jobsched_kobject_string(job, "metadata", "uid", NULL);
	st.started_at = jobsched_kobject_string(status, "startTime", NULL, NULL);

	finished = jobsched_kobject_finished(job, &succeeded);
	if (finished && succeeded)
	{
		st.state = "succeeded";
		st.finished_at = jobsched_kobject_string(status, "completionTime", NULL, NULL);
		if (st.finished_at == NULL)
			st.finished_at = jobsched_kobject_string(finished, "lastTransitionTime", NULL, NULL);
	}
	else if (finished)
	{
		char	   *reason = jobsched_kobject_string(finished, "reason", NULL, NULL);
		char	   *message = jobsched_kobject_string(finished, "message", NULL, NULL);

		st.state = "failed";
		st.finished_at = jobsched_kobject_string(finished, "lastTransitionTime", NULL, NULL);
		st.error = psprintf("the Job failed: %s%s%s", reason ? reason : "Failed",
							message ? ": " : "", message ? message : "");
	}
	else if (deleted)
	{
		st.state = "gone";
		st.error = "the Job was deleted before it finished";
	}
	else if (st.started_at != NULL || (cJSON_IsNumber(active) && active->valueint > 0))
		st.state = "running";
	else
		return st.id;			/* ours, not started yet: nothing to record */

	sync_queue(ns, &st, jobsched_kobject_string(job, "metadata", "name", NULL));
	return st.id;
}

static void
sync_start(SyncNamespace *ns, KubeRequest **slot, const char *path,
		   KubeDoneCallback on_done, long timeout_ms)
{
	MemoryContext old = MemoryContextSwitchTo(sync_cxt);
	KubeRequest *req = jobsched_kube_request_new(KUBE_GET, path, NULL, on_done, ns, 0);

	MemoryContextSwitchTo(old);
	req->timeout_ms = timeout_ms;
	jobsched_kube_request_start(req);
	*slot = req;
}

static void
sync_start_list(SyncNamespace *ns, const char *continue_token)
{
	char	   *path;

	if (continue_token == NULL)
	{
		ns->list_started_at = GetCurrentTimestamp();
		ns->nseen = 0;
		path = psprintf("/apis/batch/v1/namespaces/%s/jobs?labelSelector=%s&limit=%d",
						ns->name, sync_selector, SYNC_PAGE_SIZE);
	}
	else
		path = psprintf("/apis/batch/v1/namespaces/%s/jobs?labelSelector=%s&limit=%d&continue=%s",
						ns->name, sync_selector, SYNC_PAGE_SIZE,
						jobsched_kube_escape(continue_token));
	sync_start(ns, &ns->list_req, path, sync_list_done, 0);
}

static void
sync_start_watch(SyncNamespace *ns)
{
	char	   *path;

	path = psprintf("/apis/batch/v1/namespaces/%s/jobs?watch=1&allowWatchBookmarks=true"
					"&labelSelector=%s&resourceVersion=%s&timeoutSeconds=%d",
					ns->name, sync_selector, ns->resource_version, SYNC_WATCH_SECONDS);
	sync_start(ns, &ns->watch_req, path, sync_watch_done,
			   (SYNC_WATCH_SECONDS + 30) * 1000L);
}

static void
sync_retry_later(SyncNamespace *ns, KubeRequest *req, TimestampTz *when)
{
	char	   *why = jobsched_kube_describe_failure(req);

	jobsched_shmem_set_error(why);
	ereport(DEBUG1,
			(errmsg_internal("jobsched: status sync of namespace \"%s\": %s", ns->name, why)));
	*when = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SYNC_RETRY_MS);
}

static void
sync_list_done(KubeRequest *req)
{
	SyncNamespace *ns = (SyncNamespace *) req->owner;
	cJSON	   *root = NULL;
	cJSON	   *item;
	char	   *next;
	char	   *rv;

	ns->list_req = NULL;
	if ((root = jobsched_kobject_parse(req)) == NULL)
	{
		if (req->curl_result == 0 && req->http_status == 410)
			ns->next_list_at = 0;	/* continue token expired: start over */
		else
			sync_retry_later(ns, req, &ns->next_list_at);
		ns->nseen = 0;
		jobsched_kube_request_free(req);
		return;
	}

	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "items"))
	{
		int64		id = sync_observe(ns, item, false);

		if (id == 0)
			continue;
		if (ns->nseen == ns->seen_cap)
		{
			ns->seen_cap = Max(ns->seen_cap * 2, 1024);
			ns->seen = ns->seen ?
				repalloc(ns->seen, sizeof(int64) * ns->seen_cap) :
				MemoryContextAlloc(sync_cxt, sizeof(int64) * ns->seen_cap);
		}
		ns->seen[ns->nseen++] = id;
	}

	next = jobsched_kobject_string(root, "metadata", "continue", NULL);
	rv = jobsched_kobject_string(root, "metadata", "resourceVersion", NULL);
	if (next && next[0] != '\0')
		sync_start_list(ns, next);
	else
	{
		ns->check_missing = true;
		ns->next_list_at = TimestampTzPlusMilliseconds(ns->list_started_at,
													   jobsched_sync_interval);
		if (ns->watch_req == NULL && rv)
		{
			strlcpy(ns->resource_version, rv, sizeof(ns->resource_version));
			ns->next_watch_at = 0;
		}
	}
	cJSON_Delete(root);
	jobsched_kube_request_free(req);
}

/* Handle one event line of a watch.  Returns false when the watch must end. */
static bool
sync_watch_event(SyncNamespace *ns, const char *line)
{
	cJSON	   *event = cJSON_Parse(line);
	cJSON	   *object;
	char	   *type;
	char	   *rv;
	bool		keep = true;

	if (event == NULL)
		return false;
	type = jobsched_kobject_string(event, "type", NULL, NULL);
	object = cJSON_GetObjectItemCaseSensitive(event, "object");
	rv = jobsched_kobject_string(object, "metadata", "resourceVersion", NULL);

	if (type == NULL || strcmp(type, "ERROR") == 0)
	{
		/* an ERROR event, or an error answer instead of a stream */
		cJSON	   *code = cJSON_GetObjectItemCaseSensitive(type ? object : event, "code");

		/* 410 Gone: our resourceVersion is too old; relist now */
		if (cJSON_IsNumber(code) && code->valueint == 410)
		{
			ns->resource_version[0] = '\0';
			ns->next_list_at = 0;
		}
		else
			ns->next_watch_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															SYNC_RETRY_MS);
		keep = false;
	}
	else
	{
		if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
			(void) sync_observe(ns, object, false);
		else if (strcmp(type, "DELETED") == 0)
			(void) sync_observe(ns, object, true);
		/* BOOKMARK: only the resourceVersion matters */
		if (rv)
			strlcpy(ns->resource_version, rv, sizeof(ns->resource_version));
	}
	cJSON_Delete(event);
	return keep;
}

/* Read the complete lines a watch has received so far. */
static void
sync_read_watch(SyncNamespace *ns)
{
	KubeRequest *req = ns->watch_req;
	size_t		start = 0;
	char	   *nl;

	if (req == NULL || req->response == NULL)
		return;
	while (start < req->response_len &&
		   (nl = memchr(req->response + start, '\n', req->response_len - start)) != NULL)
	{
		*nl = '\0';
		if (!sync_watch_event(ns, req->response + start))
		{
			jobsched_kube_request_cancel(req);
			jobsched_kube_request_free(req);
			ns->watch_req = NULL;
			return;
		}
		start = nl - req->response + 1;
	}
	if (start > 0)
		jobsched_kube_consume(req, start);
}

static void
sync_watch_done(KubeRequest *req)
{
	SyncNamespace *ns = (SyncNamespace *) req->owner;
	bool		failed = (req->curl_result != 0 || req->http_status != 200);

	if (!failed)
	{
		sync_read_watch(ns);
		if (ns->watch_req == NULL)
			return;				/* an event ended it, and freed it */
	}
	ns->watch_req = NULL;
	if (failed && req->curl_result == 0 && req->http_status == 410)
	{
		ns->resource_version[0] = '\0';
		ns->next_list_at = 0;
	}
	else if (failed)
		sync_retry_later(ns, req, &ns->next_watch_at);
	else
		ns->next_watch_at = 0;	/* timed out normally: watch again */
	jobsched_kube_request_free(req);
}

/* Details of a failed Job's pod: reason and exit code of its container. */
static void
sync_pods_done(KubeRequest *req)
{
	int64		job_id = *(int64 *) req->owner;
	cJSON	   *root = NULL;
	cJSON	   *pod;
	char	   *detail = NULL;

	if ((root = jobsched_kobject_parse(req)) != NULL)
	{
		cJSON_ArrayForEach(pod, cJSON_GetObjectItemCaseSensitive(root, "items"))
		{
			cJSON	   *cs;

			cJSON_ArrayForEach(cs, jobsched_kobject_get(pod, "status", "containerStatuses", NULL))
			{
				cJSON	   *term = jobsched_kobject_get(cs, "state", "terminated", NULL);
				cJSON	   *code = jobsched_kobject_get(term, "exitCode", NULL, NULL);
				char	   *reason = jobsched_kobject_string(term, "reason", NULL, NULL);

				if (term == NULL || (cJSON_IsNumber(code) && code->valueint == 0))
					continue;
				detail = psprintf("pod %s container %s: %s, exit code %d",
								  jobsched_kobject_string(pod, "metadata", "name", NULL),
								  jobsched_kobject_string(cs, "name", NULL, NULL),
								  reason ? reason : "terminated",
								  cJSON_IsNumber(code) ? code->valueint : -1);
				break;
			}
			if (detail)
				break;
		}
	}
	cJSON_Delete(root);
	if (detail)
	{
		if (jobsched_queue_begin("jobsched: recording pod details"))
			jobsched_queue_append_error(job_id, detail);
		jobsched_queue_end();
	}
	jobsched_kube_request_free(req);
}

static int
sync_pending_cmp(const void *a, const void *b)
{
	const SyncPending *x = a;
	const SyncPending *y = b;

	if (x->status.id != y->status.id)
		return x->status.id < y->status.id ? -1 : 1;
	return x->seq - y->seq;
}

/* Record what was seen: the latest status per job, then missing Jobs. */
static void
sync_flush(void)
{
	JobschedJobStatus *statuses;
	List	   *failed = NIL;
	ListCell   *lc;
	dlist_iter	iter;
	int			n = 0;
	int			i;
	bool		any_missing = false;
	MemoryContext cxt = CurrentMemoryContext;

	dlist_foreach(iter, &sync_namespaces)
		any_missing |= dlist_container(SyncNamespace, node, iter.cur)->check_missing;
	if (sync_npending == 0 && !any_missing)
		return;

	qsort(sync_pending, sync_npending, sizeof(SyncPending), sync_pending_cmp);
	statuses = palloc(sizeof(JobschedJobStatus) * Max(sync_npending, 1));
	for (i = 0; i < sync_npending; i++)
	{
		/* keep the last event of each job */
		if (i + 1 < sync_npending && sync_pending[i + 1].status.id == sync_pending[i].status.id)
			continue;
		statuses[n++] = sync_pending[i].status;
	}

	if (jobsched_queue_begin("jobsched: recording Job status"))
	{
		if (n > 0)
			failed = jobsched_queue_apply_status(statuses, n, cxt);
		dlist_foreach(iter, &sync_namespaces)
		{
			SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

			if (!ns->check_missing)
				continue;
			jobsched_queue_mark_missing(ns->name, ns->list_started_at, ns->seen, ns->nseen);
			ns->check_missing = false;
		}
	}
	jobsched_queue_end();

	/* ask for the pods of the jobs that just failed */
	foreach(lc, failed)
	{
		int64		id = *(int64 *) lfirst(lc);

		for (i = 0; i < sync_npending; i++)
		{
			SyncPending *p = &sync_pending[i];

			if (p->status.id == id && p->name[0] != '\0')
			{
				MemoryContext old = MemoryContextSwitchTo(sync_cxt);
				int64	   *owner = palloc(sizeof(int64));
				char	   *path = psprintf("/api/v1/namespaces/%s/pods?labelSelector="
											"batch.kubernetes.io%%2Fjob-name%%3D%s",
											p->namespace, p->name);
				KubeRequest *req;

				*owner = id;
				req = jobsched_kube_request_new(KUBE_GET, path, NULL, sync_pods_done,
												owner, 0);
				MemoryContextSwitchTo(old);
				jobsched_kube_request_start(req);
				break;
			}
		}
	}

	MemoryContextReset(sync_batch_cxt);
	sync_pending = NULL;
	sync_npending = 0;
	sync_pending_cap = 0;
}

/* Which namespaces to follow: refreshed every sync_interval. */
static void
sync_refresh_namespaces(TimestampTz now)
{
	char	   *default_ns = jobsched_guc_namespace();
	MemoryContext cxt = CurrentMemoryContext;
	List	   *names = NIL;
	ListCell   *lc;
	dlist_mutable_iter miter;
	bool		ready;

	sync_next_refresh = TimestampTzPlusMilliseconds(now, jobsched_sync_interval);
	ready = jobsched_queue_begin("jobsched: listing namespaces");
	if (ready)
		names = jobsched_queue_namespaces(default_ns, cxt);
	jobsched_queue_end();
	if (!ready)
		return;

	dlist_foreach_modify(miter, &sync_namespaces)
		dlist_container(SyncNamespace, node, miter.cur)->in_use = false;
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		SyncNamespace *ns = NULL;

		dlist_foreach_modify(miter, &sync_namespaces)
		{
			SyncNamespace *cand = dlist_container(SyncNamespace, node, miter.cur);

			if (strcmp(cand->name, name) == 0)
				ns = cand;
		}
		if (ns == NULL)
		{
			ns = MemoryContextAllocZero(sync_cxt, sizeof(SyncNamespace));
			strlcpy(ns->name, name, sizeof(ns->name));
			dlist_push_tail(&sync_namespaces, &ns->node);
		}
		ns->in_use = true;
	}
	dlist_foreach_modify(miter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, miter.cur);

		if (ns->in_use)
			continue;
		sync_stop_namespace(ns);
		dlist_delete(miter.cur);
		if (ns->seen)
			pfree(ns->seen);
		pfree(ns);
	}
}

/*
 * One pass: start the lists and watches that are due, read what watches
 * brought, record it.  Returns the ms until sync wants the next pass
 * (-1: only when woken).
 */
long
jobsched_sync_run(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout;
	dlist_iter	iter;

	if (!jobsched_enabled)
	{
		if (!dlist_is_empty(&sync_namespaces))
			jobsched_sync_reset();
		return -1;
	}

	if (now >= sync_next_refresh)
		sync_refresh_namespaces(now);

	timeout = jobsched_ms_until(now, sync_next_refresh);
	dlist_foreach(iter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

		sync_read_watch(ns);
		if (ns->list_req == NULL && now >= ns->next_list_at)
			sync_start_list(ns, NULL);
		if (ns->watch_req == NULL && ns->resource_version[0] != '\0' &&
			now >= ns->next_watch_at)
			sync_start_watch(ns);
		if (ns->list_req == NULL)
			timeout = Min(timeout, jobsched_ms_until(now, ns->next_list_at));
		if (ns->watch_req == NULL && ns->resource_version[0] != '\0')
			timeout = Min(timeout, jobsched_ms_until(now, ns->next_watch_at));
	}
	sync_flush();
	return timeout;
}
