/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Keeping each row in step with its Job: LIST + WATCH per namespace.
 *
 *	  For every namespace this database uses, the worker LISTs its Jobs
 *	  (paginated, by this installation's instance label) and then WATCHes
 *	  from the list's resourceVersion, so a change reaches its row within
 *	  moments.  Each watch asks the server to end it after
 *	  jobsched.sync_interval and is started again from the last
 *	  resourceVersion (bookmarks keep it fresh), so no connection that died
 *	  silently can leave rows staler than that.  An expired resourceVersion
 *	  (410, as an ERROR event inside the stream or as an answer) means a
 *	  relist, and a relist now and then finds rows whose Job was deleted
 *	  behind our back while nobody watched.
 *
 *	  A Job takes a row only if it is provably the row's: its uid is the
 *	  one the row recorded, or, for a row whose create is unsettled (its
 *	  answer was lost), its proof holds for the row's run and creation time
 *	  (queue.c).  Labels only select.
 *
 *	  Lists and watches that fail, and watches the server ends at once, are
 *	  tried again with a backoff of at most sync_interval; a page too large
 *	  to read is asked for again with a smaller limit, down to one Job.
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
#define SYNC_RELIST_MS		(30 * 60 * 1000)
#define SYNC_SHORT_WATCH_MS 1000
#define SYNC_WATCH_MAX_S	290
/* longer resource versions are not used (relists instead) */
#define SYNC_RESOURCE_VERSION_MAX 63
#define SYNC_TEXT_MAX		1000
/* a status whose row is claimed or held is tried again this often, this long */
#define SYNC_DEFER_MS		200
#define SYNC_DEFER_MAX_MS	60000
/* at most this many statuses are recorded in one transaction */
#define SYNC_FLUSH_MAX		2000
/* from this many statuses on, those that cannot change a row are dropped first */
#define SYNC_FILTER_MIN		200

typedef struct SyncNamespace
{
	char		name[JOBSCHED_NAME_MAX + 1];
	bool		in_use;

	/* listing */
	KubeRequest *list_req;
	MemoryContext listing_cxt;	/* the continue token and the uids seen */
	char	   *continue_token; /* of the page to ask for; NULL: the first */
	int			page_limit;		/* halved after a page too large to read */
	TimestampTz list_started_at;
	TimestampTz next_list_at;
	int			list_failures;
	char	  **seen;			/* uids of the Jobs in this listing */
	int			nseen;
	int			seen_cap;
	bool		check_missing;	/* a complete listing awaits the flush */

	/* watching */
	KubeRequest *watch_req;
	char		resource_version[SYNC_RESOURCE_VERSION_MAX + 1];
	TimestampTz watch_started_at;
	TimestampTz next_watch_at;
	int			watch_failures; /* failed or at once ended watches in a row */

	dlist_node	node;
} SyncNamespace;

static MemoryContext sync_cxt = NULL;	/* namespaces and their requests */
static MemoryContext sync_batch_cxt = NULL; /* statuses waiting for the flush */
static MemoryContext sync_pods_cxt = NULL;	/* pod detail requests */
static int	sync_pods_in_flight = 0;
static dlist_head sync_namespaces = DLIST_STATIC_INIT(sync_namespaces);
static JobschedJobStatus *sync_pending = NULL;
static int	sync_npending = 0;
static int	sync_pending_cap = 0;
static TimestampTz sync_last_refresh = 0;
static uint32 sync_generation = 0;	/* of the identity the lists are for */
static int	sync_nurgent = 0;	/* pending statuses that change a row now */
static TimestampTz sync_flush_at = 0;	/* the others wait till then (0: none) */

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
	sync_pods_cxt = AllocSetContextCreate(sync_cxt, "jobsched sync pods",
										  ALLOCSET_DEFAULT_SIZES);
}

static void
sync_stop_request(KubeRequest **slot)
{
	if (*slot)
	{
		jobsched_kube_request_cancel(*slot);
		jobsched_kube_request_free(*slot);
		*slot = NULL;
	}
}

static void
sync_forget_listing(SyncNamespace *ns)
{
	MemoryContextReset(ns->listing_cxt);
	ns->continue_token = NULL;
	ns->seen = NULL;
	ns->nseen = ns->seen_cap = 0;
	ns->check_missing = false;
}

static void
sync_drop_namespace(SyncNamespace *ns)
{
	sync_stop_request(&ns->list_req);
	sync_stop_request(&ns->watch_req);
	MemoryContextDelete(ns->listing_cxt);
	dlist_delete(&ns->node);
	pfree(ns);
}

/* Let go of the statuses waiting for the flush, and their memory. */
static void
sync_forget_pending(void)
{
	MemoryContextReset(sync_batch_cxt);
	sync_pending = NULL;
	sync_npending = sync_pending_cap = sync_nurgent = 0;
	sync_flush_at = 0;
}

/* Forget everything (error recovery, or the worker disabled). */
void
jobsched_sync_reset(void)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &sync_namespaces)
		sync_drop_namespace(dlist_container(SyncNamespace, node, iter.cur));
	sync_forget_pending();
	/* the requests were abandoned with every other (worker.c) or just now */
	MemoryContextReset(sync_pods_cxt);
	sync_pods_in_flight = 0;
	sync_last_refresh = 0;
}

/*
 * Settings were reloaded: watches end and start again with the new
 * sync_interval, and failed lists and watches are tried again at once.
 */
void
jobsched_sync_reload(void)
{
	dlist_iter	iter;

	dlist_foreach(iter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

		sync_stop_request(&ns->watch_req);
		ns->next_watch_at = 0;
		ns->watch_failures = 0;
		if (ns->list_req == NULL && ns->list_failures > 0)
			ns->next_list_at = 0;
		ns->list_failures = 0;
	}
	sync_last_refresh = 0;
}

/* the delay before trying a list or watch again after n failures */
static TimestampTz
sync_retry_at(int failures)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   jobsched_backoff_ms(failures,
														   Min(jobsched_sync_interval,
															   jobsched_backoff_max)));
}

/*
 * Remember what a Job said, for the next flush.  News that changes a row
 * (running, finished, gone) is recorded at the end of this pass; a Job
 * that has not started, and statuses kept for later (deferred), are news
 * only for a row whose create is unsettled, and wait up to SYNC_DEFER_MS
 * for company, so a stream of new Jobs costs no statement each.
 */
static void
sync_queue(const JobschedJobStatus *st, bool urgent)
{
	MemoryContext old = MemoryContextSwitchTo(sync_batch_cxt);
	JobschedJobStatus *p;

	if (sync_npending == sync_pending_cap)
	{
		sync_pending_cap = Max(sync_pending_cap * 2, 256);
		sync_pending = sync_pending ?
			repalloc_huge(sync_pending, sizeof(JobschedJobStatus) * sync_pending_cap) :
			palloc(sizeof(JobschedJobStatus) * sync_pending_cap);
	}
	p = &sync_pending[sync_npending++];
	*p = *st;
	p->namespace = pstrdup(st->namespace);
	p->name = pstrdup(st->name);
	p->uid = pstrdup(st->uid);
	p->proof = st->proof ? pstrdup(st->proof) : NULL;
	p->error = st->error ? jobsched_clean_text(st->error, SYNC_TEXT_MAX) : NULL;
	MemoryContextSwitchTo(old);
	if (urgent)
		sync_nurgent++;
	else if (sync_flush_at == 0)
		sync_flush_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SYNC_DEFER_MS);
}

/*
 * Read one Job object of this installation: which row, which state, and
 * is it provably that row's?  Returns its uid (for a listing's count of
 * what exists), or NULL for a Job that is not one of this installation's.
 * deleted: the object comes from a DELETED event.
 */
static char *
sync_observe(SyncNamespace *ns, cJSON *job, bool deleted)
{
	cJSON	   *status = jobsched_kobject_get(job, "status", NULL, NULL);
	cJSON	   *active = jobsched_kobject_get(status, "active", NULL, NULL);
	cJSON	   *finished;
	bool		succeeded = false;
	JobschedJobStatus st;

	memset(&st, 0, sizeof(st));
	st.seen_at = GetCurrentTimestamp();
	st.id = jobsched_kobject_job_id(job);
	st.namespace = jobsched_kobject_string(job, "metadata", "namespace", NULL);
	st.name = jobsched_kobject_string(job, "metadata", "name", NULL);
	st.uid = jobsched_kobject_string(job, "metadata", "uid", NULL);
	if (st.id == 0 || st.name == NULL || st.namespace == NULL ||
		strcmp(st.namespace, ns->name) != 0 || !jobsched_kube_uid_ok(st.uid))
		return NULL;
	st.proof = jobsched_kobject_string(job, "metadata", "annotations",
									   JOBSCHED_ANNOTATION_PROOF);
	st.proven = jobsched_proof_check(st.proof, st.namespace, st.name, st.id,
									 &st.run, &st.created_at);
	st.started_at = jobsched_kobject_time(status, "startTime", NULL, NULL);

	finished = jobsched_kobject_finished(job, &succeeded);
	if (finished && succeeded)
	{
		st.state = "succeeded";
		st.finished_at = jobsched_kobject_time(status, "completionTime", NULL, NULL);
		if (st.finished_at == 0)
			st.finished_at = jobsched_kobject_time(finished, "lastTransitionTime", NULL, NULL);
	}
	else if (finished)
	{
		char	   *reason = jobsched_kobject_string(finished, "reason", NULL, NULL);
		char	   *message = jobsched_kobject_string(finished, "message", NULL, NULL);

		st.state = "failed";
		st.finished_at = jobsched_kobject_time(finished, "lastTransitionTime", NULL, NULL);
		st.error = psprintf("the Job failed: %s%s%s", reason ? reason : "Failed",
							message ? ": " : "", message ? message : "");
	}
	else if (deleted)
	{
		st.state = "gone";
		st.error = "the Job was deleted before it finished";
	}
	else if (st.started_at != 0 || (cJSON_IsNumber(active) && active->valuedouble > 0))
		st.state = "running";
	else
		st.state = "submitted";

	sync_queue(&st, strcmp(st.state, "submitted") != 0);
	return st.uid;
}

static KubeRequest *
sync_start(SyncNamespace *ns, const char *path, KubeDoneCallback on_done,
		   long timeout_ms, size_t max_response)
{
	MemoryContext old = MemoryContextSwitchTo(sync_cxt);
	KubeRequest *req = jobsched_kube_request_new(KUBE_GET, path, NULL, on_done, ns, 0);

	MemoryContextSwitchTo(old);
	req->timeout_ms = timeout_ms;
	req->max_response = max_response;
	jobsched_kube_request_start(req);
	return req;
}

static void
sync_start_list(SyncNamespace *ns)
{
	char	   *path;

	if (ns->continue_token == NULL)
	{
		sync_forget_listing(ns);
		ns->list_started_at = GetCurrentTimestamp();
	}
	path = psprintf("/apis/batch/v1/namespaces/%s/jobs?labelSelector=%s&limit=%d%s%s",
					ns->name, jobsched_kube_instance_selector(), ns->page_limit,
					ns->continue_token ? "&continue=" : "",
					ns->continue_token ? jobsched_kube_escape(ns->continue_token) : "");
	ns->list_req = sync_start(ns, path, sync_list_done, 0,
							  ns->page_limit == 1 ? KUBE_BIG_RESPONSE : 0);
}

/* how long the server should keep a watch open: about sync_interval */
static int
sync_watch_seconds(void)
{
	return Max(1, Min(jobsched_sync_interval / 1000, SYNC_WATCH_MAX_S));
}

static void
sync_start_watch(SyncNamespace *ns)
{
	int			seconds = sync_watch_seconds();
	char	   *path;

	path = psprintf("/apis/batch/v1/namespaces/%s/jobs?watch=1&allowWatchBookmarks=true"
					"&labelSelector=%s&resourceVersion=%s&timeoutSeconds=%d",
					ns->name, jobsched_kube_instance_selector(), ns->resource_version,
					seconds);
	ns->watch_started_at = GetCurrentTimestamp();
	ns->watch_req = sync_start(ns, path, sync_watch_done, (seconds + 5) * 1000L,
							   KUBE_BIG_RESPONSE);
}

static void
sync_note_failure(SyncNamespace *ns, KubeRequest *req, const char *what)
{
	char	   *why = jobsched_kube_describe_failure(req);

	jobsched_shmem_set_error(psprintf("status sync (%s, namespace %s): %s", what, ns->name, why));
	ereport(DEBUG1,
			(errmsg_internal("status sync of namespace \"%s\": %s", ns->name, why)));
}

/* Note a uid the listing saw. */
static void
sync_seen(SyncNamespace *ns, const char *uid)
{
	MemoryContext old = MemoryContextSwitchTo(ns->listing_cxt);

	if (ns->nseen == ns->seen_cap)
	{
		ns->seen_cap = Max(ns->seen_cap * 2, 1024);
		ns->seen = ns->seen ? repalloc_huge(ns->seen, sizeof(char *) * ns->seen_cap) :
			palloc(sizeof(char *) * ns->seen_cap);
	}
	ns->seen[ns->nseen++] = pstrdup(uid);
	MemoryContextSwitchTo(old);
}

static void
sync_list_done(KubeRequest *req)
{
	SyncNamespace *ns = (SyncNamespace *) req->owner;
	cJSON	   *root;
	cJSON	   *item;
	char	   *next;
	char	   *rv;

	ns->list_req = NULL;
	if (req->overflow && ns->page_limit > 1)
	{
		/* a page too large to read: ask for the same page, smaller */
		ns->page_limit = Max(ns->page_limit / 2, 1);
		ns->next_list_at = 0;
		jobsched_kube_request_free(req);
		return;
	}
	root = jobsched_kobject_parse(req);
	if (root == NULL)
	{
		if (req->curl_result == 0 && req->http_status == 410)
		{
			/* continue token expired: start over */
			sync_forget_listing(ns);
			ns->next_list_at = 0;
		}
		else
		{
			sync_note_failure(ns, req, "list");
			ns->next_list_at = sync_retry_at(++ns->list_failures);
		}
		jobsched_kube_request_free(req);
		return;
	}
	ns->list_failures = 0;

	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "items"))
	{
		char	   *uid = sync_observe(ns, item, false);

		if (uid)
			sync_seen(ns, uid);
	}

	next = jobsched_kobject_string(root, "metadata", "continue", NULL);
	rv = jobsched_kobject_string(root, "metadata", "resourceVersion", NULL);
	if (next && next[0] != '\0')
	{
		ns->continue_token = MemoryContextStrdup(ns->listing_cxt, next);
		ns->page_limit = Min(ns->page_limit * 2, SYNC_PAGE_SIZE);
		ns->next_list_at = 0;
	}
	else
	{
		ns->continue_token = NULL;
		ns->check_missing = true;
		ns->next_list_at = TimestampTzPlusMilliseconds(ns->list_started_at,
													   Max(SYNC_RELIST_MS,
														   jobsched_sync_interval));
		if (ns->watch_req == NULL && rv && strlen(rv) < sizeof(ns->resource_version))
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
		if (cJSON_IsNumber(code) && code->valuedouble == 410)
		{
			ns->resource_version[0] = '\0';
			sync_forget_listing(ns);
			ns->next_list_at = 0;
		}
		else
			ns->next_watch_at = sync_retry_at(++ns->watch_failures);
		keep = false;
	}
	else
	{
		if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
			(void) sync_observe(ns, object, false);
		else if (strcmp(type, "DELETED") == 0)
			(void) sync_observe(ns, object, true);
		/* BOOKMARK: only the resourceVersion matters */
		if (rv && strlen(rv) < sizeof(ns->resource_version))
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
			sync_stop_request(&ns->watch_req);
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
	long		lasted_ms = (long) ((GetCurrentTimestamp() - ns->watch_started_at) / 1000);

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
		sync_forget_listing(ns);
		ns->next_list_at = 0;
	}
	else if (failed)
	{
		sync_note_failure(ns, req, "watch");
		ns->next_watch_at = sync_retry_at(++ns->watch_failures);
	}
	else if (lasted_ms < Min(SYNC_SHORT_WATCH_MS, sync_watch_seconds() * 500L))
	{
		/* the server ended it at once: do not make that a storm */
		ns->next_watch_at = sync_retry_at(++ns->watch_failures);
	}
	else
	{
		ns->watch_failures = 0;
		ns->next_watch_at = 0;	/* ended as asked: watch on */
	}
	jobsched_kube_request_free(req);
}

/* Details of a failed Job's pod: reason and exit code of its container. */
static void
sync_pods_done(KubeRequest *req)
{
	int64		job_id = (int64) req->tag;
	cJSON	   *root;
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
				char	   *pod_name = jobsched_kobject_string(pod, "metadata", "name", NULL);
				char	   *container = jobsched_kobject_string(cs, "name", NULL, NULL);

				if (term == NULL || (cJSON_IsNumber(code) && code->valuedouble == 0))
					continue;
				detail = jobsched_clean_text(psprintf("pod %s container %s: %s, exit code %d",
													  pod_name ? pod_name : "?",
													  container ? container : "?",
													  reason ? reason : "terminated",
													  cJSON_IsNumber(code) ? code->valueint : -1),
											 SYNC_TEXT_MAX);
				break;
			}
			if (detail)
				break;
		}
	}
	cJSON_Delete(root);
	if (detail)
	{
		if (jobsched_queue_begin("recording pod details") == QUEUE_READY)
			jobsched_queue_append_error(job_id, detail);
		jobsched_queue_end();
	}
	jobsched_kube_request_free(req);
	if (--sync_pods_in_flight == 0)
		MemoryContextReset(sync_pods_cxt);
}

/* Ask for the pods of a Job that just failed. */
static void
sync_ask_for_pods(const JobschedJobStatus *st)
{
	MemoryContext old = MemoryContextSwitchTo(sync_pods_cxt);
	char	   *path = psprintf("/api/v1/namespaces/%s/pods?labelSelector="
								"batch.kubernetes.io%%2Fjob-name%%3D%s",
								st->namespace, jobsched_kube_escape(st->name));
	KubeRequest *req = jobsched_kube_request_new(KUBE_GET, path, NULL, sync_pods_done,
												 NULL, 0);

	req->tag = (uint64) st->id;
	MemoryContextSwitchTo(old);
	jobsched_kube_request_start(req);
	sync_pods_in_flight++;
}

/* an event, and its place in the order events came */
typedef struct SyncRef
{
	JobschedJobStatus *st;
	int			seq;
} SyncRef;

/*
 * By row, then by Job (a row's Job deleted and another of its name made
 * are two Jobs, each with its own news), the latest event first.
 */
static int
sync_ref_cmp(const void *a, const void *b)
{
	const SyncRef *x = a;
	const SyncRef *y = b;
	int			c;

	if (x->st->id != y->st->id)
		return x->st->id < y->st->id ? -1 : 1;
	c = strcmp(x->st->uid, y->st->uid);
	if (c != 0)
		return c;
	return y->seq - x->seq;
}

static int
sync_status_cmp(const void *a, const void *b)
{
	const JobschedJobStatus *x = a;
	const JobschedJobStatus *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

static int
sync_uid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * After a complete listing: rows whose Job existed before it began but was
 * not in it were deleted behind our back.  Sorting the uids seen makes it
 * n log n, however many Jobs there are.
 */
static void
sync_check_missing(SyncNamespace *ns, MemoryContext cxt)
{
	JobschedLiveJob *live;
	int64	   *missing;
	int			nmissing = 0;
	int			nlive;
	int			i;

	nlive = jobsched_queue_live_jobs(ns->name, ns->list_started_at, cxt, &live);
	if (nlive == 0)
		return;
	if (ns->nseen > 1)
		qsort(ns->seen, ns->nseen, sizeof(char *), sync_uid_cmp);
	missing = MemoryContextAlloc(cxt, sizeof(int64) * nlive);
	for (i = 0; i < nlive; i++)
		if (ns->nseen == 0 ||
			bsearch(&live[i].uid, ns->seen, ns->nseen, sizeof(char *), sync_uid_cmp) == NULL)
			missing[nmissing++] = live[i].id;
	if (nmissing > 0)
		jobsched_queue_mark_missing(missing, nmissing);
}

static int
sync_id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * Drop the statuses that cannot change a row: a Job that has not started
 * is news only for a row without a uid (its create's answer lost, or still
 * to come: "open").  Such rows are few; in a relist of many Jobs, most
 * statuses are of Jobs not started, and need no row looked at.  Returns
 * how many statuses remain, at the front.
 */
static int
sync_drop_no_news(JobschedJobStatus *statuses, int n, int64 *open, int nopen)
{
	int			kept = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		JobschedJobStatus *st = &statuses[i];

		if (strcmp(st->state, "submitted") == 0 &&
			bsearch(&st->id, open, nopen, sizeof(int64), sync_id_cmp) == NULL)
			continue;
		statuses[kept++] = *st;
	}
	return kept;
}

/* The latest status of each Job, in order of row; palloc'd. */
static JobschedJobStatus *
sync_latest_statuses(int *n)
{
	SyncRef    *refs = palloc(sizeof(SyncRef) * Max(sync_npending, 1));
	JobschedJobStatus *statuses = palloc(sizeof(JobschedJobStatus) * Max(sync_npending, 1));
	int			i;

	for (i = 0; i < sync_npending; i++)
	{
		refs[i].st = &sync_pending[i];
		refs[i].seq = i;
	}
	qsort(refs, sync_npending, sizeof(SyncRef), sync_ref_cmp);
	*n = 0;
	for (i = 0; i < sync_npending; i++)
		if (*n == 0 || statuses[*n - 1].id != refs[i].st->id ||
			strcmp(statuses[*n - 1].uid, refs[i].st->uid) != 0)
			statuses[(*n)++] = *refs[i].st;
	pfree(refs);
	return statuses;
}

/*
 * In one transaction: apply the first *napply of the n statuses (fewer than
 * n when there are many, or when news-less ones were dropped: *n says how
 * many remain), and note Jobs missing from complete listings.  *failed gets
 * the ids of rows that just failed.
 */
static QueueState
sync_record(JobschedJobStatus *statuses, int *n, int *napply, bool *deferred,
			int64 **failed, int *nfailed)
{
	MemoryContext cxt = CurrentMemoryContext;
	QueueState	state = jobsched_queue_begin("recording Job status");
	dlist_iter	iter;

	*napply = 0;
	*nfailed = 0;
	if (state == QUEUE_READY)
	{
		/* worth a look at the open rows when there is much to drop */
		if (*n >= SYNC_FILTER_MIN)
		{
			int64	   *open;
			int			nopen = jobsched_queue_open_rows(cxt, &open);

			*n = sync_drop_no_news(statuses, *n, open, nopen);
		}
		/* a relist of many Jobs is recorded a slice a pass: dispatch goes on */
		*napply = Min(*n, SYNC_FLUSH_MAX);
		if (*napply > 0)
			*nfailed = jobsched_queue_apply_status(statuses, *napply, cxt, failed, deferred);
		dlist_foreach(iter, &sync_namespaces)
		{
			SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

			if (ns->check_missing)
				sync_check_missing(ns, cxt);
		}
	}
	jobsched_queue_end();
	return state;
}

/*
 * Statuses whose row was claimed (its create's answer not yet recorded)
 * or held by someone are tried again shortly, for a while, and those
 * beyond this pass's slice soon too (at the next pass if they are news):
 * copied out of the batch's memory before it goes.
 */
static void
sync_requeue(JobschedJobStatus *statuses, int n, int napply, const bool *deferred,
			 TimestampTz now)
{
	int			nkept = 0;
	int			nurgent = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		JobschedJobStatus *st = &statuses[i];

		if (i < napply &&
			(!deferred[i] || now - st->seen_at > SYNC_DEFER_MAX_MS * (TimestampTz) 1000))
			continue;
		if (i >= napply && strcmp(st->state, "submitted") != 0)
			nurgent++;
		st->namespace = pstrdup(st->namespace);
		st->name = pstrdup(st->name);
		st->uid = pstrdup(st->uid);
		st->proof = st->proof ? pstrdup(st->proof) : NULL;
		st->error = st->error ? pstrdup(st->error) : NULL;
		statuses[nkept++] = *st;
	}
	sync_forget_pending();
	for (i = 0; i < nkept; i++)
		sync_queue(&statuses[i], false);
	sync_nurgent = nurgent;
}

/* Record what was seen: the latest status per job, then missing Jobs. */
static void
sync_flush(void)
{
	JobschedJobStatus *statuses;
	bool	   *deferred;
	int64	   *failed = NULL;
	int			nfailed;
	int			napply;
	int			n;
	int			i;
	TimestampTz now = GetCurrentTimestamp();
	dlist_iter	iter;
	bool		any_missing = false;

	dlist_foreach(iter, &sync_namespaces)
		any_missing |= dlist_container(SyncNamespace, node, iter.cur)->check_missing;
	if (!any_missing && sync_nurgent == 0 &&
		(sync_npending == 0 || now < sync_flush_at))
		return;

	statuses = sync_latest_statuses(&n);
	deferred = palloc0(sizeof(bool) * Max(n, 1));
	if (sync_record(statuses, &n, &napply, deferred, &failed, &nfailed) == QUEUE_BUSY)
	{
		/* someone holds the table: all of it waits a little */
		sync_nurgent = 0;
		sync_flush_at = TimestampTzPlusMilliseconds(now, SYNC_DEFER_MS);
		return;
	}

	dlist_foreach(iter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

		if (ns->check_missing && ns->list_req == NULL && ns->continue_token == NULL)
			sync_forget_listing(ns);
	}

	/* ask for the pods of the Jobs that just failed */
	for (i = 0; i < nfailed; i++)
	{
		JobschedJobStatus key;
		JobschedJobStatus *st;

		key.id = failed[i];
		st = bsearch(&key, statuses, napply, sizeof(JobschedJobStatus), sync_status_cmp);
		if (st)
			sync_ask_for_pods(st);
	}
	sync_requeue(statuses, n, napply, deferred, now);
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
	QueueState	state;

	sync_last_refresh = now;
	state = jobsched_queue_begin("listing namespaces");
	if (state == QUEUE_READY)
		names = jobsched_queue_namespaces(default_ns, cxt);
	jobsched_queue_end();
	if (state != QUEUE_READY)
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
		if (ns == NULL && strlen(name) < sizeof(ns->name))
		{
			ns = MemoryContextAllocZero(sync_cxt, sizeof(SyncNamespace));
			strlcpy(ns->name, name, sizeof(ns->name));
			ns->page_limit = SYNC_PAGE_SIZE;
			ns->listing_cxt = AllocSetContextCreate(sync_cxt, "jobsched sync listing",
													ALLOCSET_DEFAULT_SIZES);
			dlist_push_tail(&sync_namespaces, &ns->node);
		}
		if (ns)
			ns->in_use = true;
	}
	dlist_foreach_modify(miter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, miter.cur);

		if (!ns->in_use)
			sync_drop_namespace(ns);
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
	TimestampTz next_refresh;
	long		timeout;
	dlist_iter	iter;

	if (!jobsched_enabled)
	{
		if (!dlist_is_empty(&sync_namespaces))
			jobsched_sync_reset();
		return -1;
	}
	/* a new installation: the Jobs followed so far are not its own */
	if (sync_generation != jobsched_identity_generation())
	{
		jobsched_sync_reset();
		sync_generation = jobsched_identity_generation();
	}

	/* computed each time, so a lowered sync_interval applies at once */
	next_refresh = sync_last_refresh + (TimestampTz) jobsched_sync_interval * 1000;
	if (now >= next_refresh)
	{
		sync_refresh_namespaces(now);
		next_refresh = now + (TimestampTz) jobsched_sync_interval * 1000;
	}

	timeout = jobsched_ms_until(now, next_refresh);
	dlist_foreach(iter, &sync_namespaces)
	{
		SyncNamespace *ns = dlist_container(SyncNamespace, node, iter.cur);

		sync_read_watch(ns);
		if (ns->list_req == NULL && now >= ns->next_list_at)
			sync_start_list(ns);
		if (ns->watch_req == NULL && ns->resource_version[0] != '\0' &&
			now >= ns->next_watch_at)
			sync_start_watch(ns);
		if (ns->list_req == NULL)
			timeout = Min(timeout, jobsched_ms_until(now, ns->next_list_at));
		if (ns->watch_req == NULL && ns->resource_version[0] != '\0')
			timeout = Min(timeout, jobsched_ms_until(now, ns->next_watch_at));
	}
	sync_flush();
	if (sync_nurgent > 0)
		timeout = 0;			/* the rest of a large batch */
	else if (sync_npending > 0)
		timeout = Min(timeout, Max(jobsched_ms_until(GetCurrentTimestamp(),
													 sync_flush_at), 1));
	return timeout;
}
