/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The jobsched.* settings, and the defaults that are computed at use
 *	  time from the pod's environment (API address, namespace).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "jobsched.h"

#define SERVICE_ACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

char	   *jobsched_database = NULL;
char	   *jobsched_channel = NULL;
int			jobsched_wake_mode = JOBSCHED_WAKE_NOTIFY;
bool		jobsched_enabled = true;
char	   *jobsched_kube_api_url = NULL;
char	   *jobsched_kube_token_file = NULL;
char	   *jobsched_kube_ca_file = NULL;
char	   *jobsched_kube_client_cert_file = NULL;
char	   *jobsched_kube_client_key_file = NULL;
char	   *jobsched_namespace = NULL;
int			jobsched_cleanup_age = 8 * 3600;
int			jobsched_cleanup_interval = 600;
char	   *jobsched_cleanup_selector = NULL;
bool		jobsched_cleanup_spare_active = false;
int			jobsched_poll_interval = 10000;
int			jobsched_sync_interval = 10000;
int			jobsched_batch_size = 500;
int			jobsched_batch_max_bytes = 16384;	/* kB */
int			jobsched_claim_delay = 100;
int			jobsched_max_in_flight = 16;
int			jobsched_request_timeout = 30000;
int			jobsched_max_attempts = 10;
int			jobsched_backoff_base = 1000;
int			jobsched_backoff_max = 300000;

static const struct config_enum_entry guc_wake_mode_options[] = {
	{"notify", JOBSCHED_WAKE_NOTIFY, false},
	{"latch", JOBSCHED_WAKE_LATCH, false},
	{NULL, 0, false}
};

/* A channel name is an identifier: reject what NOTIFY would reject. */
static bool
guc_check_channel(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The channel name must not be empty.");
		return false;
	}
	if (strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("The channel name must be shorter than %d bytes.",
							NAMEDATALEN);
		return false;
	}
	return true;
}

/* A namespace, when set, must be a DNS-1123 label, as Kubernetes requires. */
static bool
guc_check_namespace(char **newval, void **extra, GucSource source)
{
	const char *c = *newval;
	size_t		len = c ? strlen(c) : 0;

	if (len == 0)
		return true;
	for (; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			break;
	if (*c != '\0' || len > 63 || (*newval)[0] == '-' || (*newval)[len - 1] == '-')
	{
		GUC_check_errdetail("A namespace is a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit.");
		return false;
	}
	return true;
}

/* Is host (from a URL, brackets removed) this machine's loopback? */
static bool
guc_loopback_host(const char *host, size_t len)
{
	if (len == 9 && pg_strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (len == 3 && strncmp(host, "::1", 3) == 0)
		return true;
	return len >= 4 && strncmp(host, "127.", 4) == 0 &&
		strspn(host, "0123456789.") == len;
}

/*
 * The API URL, when set, must be https://, or http:// to a proxy on this
 * machine (kubectl proxy), and must not carry credentials: those belong in
 * the token and certificate files, which are read from disk, never shown.
 * The messages never repeat the value, which may hold a password.
 */
static bool
guc_check_api_url(char **newval, void **extra, GucSource source)
{
	const char *url = *newval;
	const char *authority;
	const char *host;
	size_t		authority_len;
	size_t		host_len;
	bool		plain;

	if (url == NULL || url[0] == '\0')
		return true;
	plain = (pg_strncasecmp(url, "http://", 7) == 0);
	if (!plain && pg_strncasecmp(url, "https://", 8) != 0)
	{
		GUC_check_errmsg("jobsched.kube_api_url must be an https:// URL");
		GUC_check_errhint("Use http:// only for a proxy on this machine, such as kubectl proxy on 127.0.0.1.");
		return false;
	}
	authority = url + (plain ? 7 : 8);
	authority_len = strcspn(authority, "/?#");
	if (memchr(authority, '@', authority_len) != NULL)
	{
		GUC_check_errmsg("jobsched.kube_api_url must not contain credentials");
		GUC_check_errhint("Put a bearer token in jobsched.kube_token_file, or a client certificate in jobsched.kube_client_cert_file and jobsched.kube_client_key_file.");
		return false;
	}
	if (authority_len == 0)
	{
		GUC_check_errmsg("jobsched.kube_api_url has no host");
		return false;
	}
	host = authority;
	if (host[0] == '[')
	{
		const char *end = memchr(host, ']', authority_len);

		if (end == NULL)
		{
			GUC_check_errmsg("jobsched.kube_api_url has an IPv6 address without its closing bracket");
			return false;
		}
		host++;
		host_len = end - host;
	}
	else
		host_len = strcspn(host, ":/?#");
	if (plain && !guc_loopback_host(host, host_len))
	{
		GUC_check_errmsg("jobsched.kube_api_url may use http:// only for a host on this machine");
		GUC_check_errdetail("The token would cross the network unencrypted.");
		GUC_check_errhint("Use https://, or run kubectl proxy on 127.0.0.1.");
		return false;
	}
	return true;
}

/* a label key's name part, or a label value: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, <= 63 */
static bool
guc_label_name_ok(const char *s, size_t len, bool empty_ok)
{
	size_t		i;

	if (len == 0)
		return empty_ok;
	if (len > 63 || !isalnum((unsigned char) s[0]) || !isalnum((unsigned char) s[len - 1]))
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* a label key: [DNS-1123 subdomain '/'] name */
static bool
guc_label_key_ok(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	size_t		i;

	if (slash == NULL)
		return guc_label_name_ok(s, len, false);
	if (slash == s || slash - s > 253)
		return false;
	for (i = 0; i < (size_t) (slash - s); i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			  s[i] == '-' || s[i] == '.'))
			return false;
	if (!isalnum((unsigned char) s[0]) || !isalnum((unsigned char) slash[-1]))
		return false;
	return guc_label_name_ok(slash + 1, len - (slash - s) - 1, false);
}

static const char *
guc_skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* the end of a key or value token: up to space, ',', '=', '!', '(', ')', '<', '>' */
static const char *
guc_token_end(const char *p)
{
	while (*p && !strchr(" \t,=!()<>", *p))
		p++;
	return p;
}

/*
 * One requirement of a Kubernetes label selector (labels.Parse): "key",
 * "!key", "key=v", "key==v", "key!=v", "key in (v,...)", "key notin
 * (v,...)", "key>n", "key<n".  Returns the position after it, or NULL.
 */
static const char *
guc_label_requirement(const char *p)
{
	const char *key;
	const char *end;
	bool		negated = false;

	p = guc_skip_space(p);
	if (*p == '!')
	{
		negated = true;
		p = guc_skip_space(p + 1);
	}
	key = p;
	end = guc_token_end(p);
	if (!guc_label_key_ok(key, end - key))
		return NULL;
	p = guc_skip_space(end);
	if (negated || *p == '\0' || *p == ',')
		return p;

	if (p[0] == '=' || (p[0] == '!' && p[1] == '='))
	{
		p += (p[0] == '!' || p[1] == '=') ? 2 : 1;
		p = guc_skip_space(p);
		end = guc_token_end(p);
		return guc_label_name_ok(p, end - p, true) ? guc_skip_space(end) : NULL;
	}
	if (*p == '<' || *p == '>')
	{
		p = guc_skip_space(p + 1);
		end = guc_token_end(p);
		if (end == p || strspn(p, "0123456789") != (size_t) (end - p))
			return NULL;
		return guc_skip_space(end);
	}
	if (strncmp(p, "in", 2) == 0 || strncmp(p, "notin", 5) == 0)
	{
		p += (p[0] == 'i') ? 2 : 5;
		p = guc_skip_space(p);
		if (*p != '(')
			return NULL;
		do
		{
			p = guc_skip_space(p + 1);
			end = guc_token_end(p);
			if (!guc_label_name_ok(p, end - p, true))
				return NULL;
			p = guc_skip_space(end);
		} while (*p == ',');
		if (*p != ')')
			return NULL;
		return guc_skip_space(p + 1);
	}
	return NULL;
}

/*
 * The cleanup selector: empty (this installation's Jobs), "*" (every Job
 * in the namespace), or a label selector in Kubernetes' grammar.  Anything
 * else, a blank one included, would select more than meant: refused.
 */
static bool
guc_check_cleanup_selector(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (p == NULL || p[0] == '\0' || strcmp(p, "*") == 0)
		return true;
	for (;;)
	{
		p = guc_label_requirement(p);
		if (p == NULL || (*p != '\0' && *p != ','))
		{
			GUC_check_errdetail("A label selector is a comma-separated list of requirements such as app=batch, tier!=web, env in (a,b), !legacy.");
			GUC_check_errhint("Leave it empty for the Jobs this database created, or set \"*\" for every Job in the namespace.");
			return false;
		}
		if (*p == '\0')
			return true;
		p++;					/* the comma */
	}
}

void
jobsched_guc_define(void)
{
	DefineCustomStringVariable("jobsched.database",
							   "Database the jobsched worker connects to.",
							   "CREATE EXTENSION jobsched works only in this database.",
							   &jobsched_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.channel",
							   "Channel the worker LISTENs on and the trigger NOTIFYs.",
							   "NOTIFY on this channel from any session of the database wakes the worker.",
							   &jobsched_channel,
							   "job_scheduler",
							   PGC_SIGHUP,
							   0,
							   guc_check_channel, NULL, NULL);

	DefineCustomEnumVariable("jobsched.wake_mode",
							 "How the trigger wakes the worker: notify or latch.",
							 "notify sends NOTIFY, which serializes notifying commits cluster-wide; "
							 "latch sets the worker's latch at commit, which takes no lock.",
							 &jobsched_wake_mode,
							 JOBSCHED_WAKE_NOTIFY,
							 guc_wake_mode_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("jobsched.enabled",
							 "Whether the worker submits, syncs and cleans up Jobs.",
							 "When off, the worker stays connected and drains its notifications but talks to no API.",
							 &jobsched_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.kube_api_url",
							   "URL of the Kubernetes API server.",
							   "Empty means https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, "
							   "else https://kubernetes.default.svc.",
							   &jobsched_kube_api_url,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_api_url, NULL, NULL);

	DefineCustomStringVariable("jobsched.kube_token_file",
							   "File holding the bearer token for the Kubernetes API.",
							   "Re-read at least once a minute and after every 401, since bound tokens rotate. "
							   "Empty means no token (for client certificates).",
							   &jobsched_kube_token_file,
							   SERVICE_ACCOUNT_DIR "/token",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.kube_ca_file",
							   "CA certificate file that verifies the Kubernetes API server.",
							   NULL,
							   &jobsched_kube_ca_file,
							   SERVICE_ACCOUNT_DIR "/ca.crt",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.kube_client_cert_file",
							   "Client certificate file for the Kubernetes API (out-of-cluster use).",
							   NULL,
							   &jobsched_kube_client_cert_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.kube_client_key_file",
							   "Private key file of the client certificate.",
							   NULL,
							   &jobsched_kube_client_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.namespace",
							   "Namespace for job types that name none.",
							   "Empty means the service account's namespace file, else \"default\".",
							   &jobsched_namespace,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_namespace, NULL, NULL);

	DefineCustomIntVariable("jobsched.cleanup_age",
							"Jobs (with their pods) created longer ago than this are deleted.",
							NULL,
							&jobsched_cleanup_age,
							8 * 3600, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.cleanup_interval",
							"How often the namespaces are scanned for old Jobs.",
							NULL,
							&jobsched_cleanup_interval,
							600, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("jobsched.cleanup_selector",
							   "Label selector of the Jobs cleanup may delete.",
							   "Empty means the Jobs this database created (its jobsched.io/instance label); "
							   "\"*\" means every Job in the namespace.",
							   &jobsched_cleanup_selector,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_cleanup_selector, NULL, NULL);

	DefineCustomBoolVariable("jobsched.cleanup_spare_active",
							 "Whether cleanup spares Jobs still active at jobsched.cleanup_age.",
							 "When off, such Jobs are deleted too and their rows say so.",
							 &jobsched_cleanup_spare_active,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.claim_delay",
							"While new jobs keep coming, how long the worker waits after a claim before the next.",
							"Jobs committed in the meantime are claimed, sent and recorded together, which costs "
							"less than a claim per commit.  A job that comes alone is claimed at once.",
							&jobsched_claim_delay,
							100, 0, 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.poll_interval",
							"Safety-net scan for pending jobs when no wake-up came.",
							NULL,
							&jobsched_poll_interval,
							10000, 10, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.sync_interval",
							"How stale a row's view of its Job may get.",
							NULL,
							&jobsched_sync_interval,
							10000, 100, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.batch_size",
							"Most pending jobs claimed in one transaction.",
							NULL,
							&jobsched_batch_size,
							500, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.batch_max_bytes",
							"Most bytes of params claimed in one transaction.",
							"The first job of a claim always goes; the worker holds its claimed jobs in memory until their outcomes are recorded.",
							&jobsched_batch_max_bytes,
							16384, 64, MAX_KILOBYTES,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.max_in_flight",
							"Most Kubernetes API requests in flight at once.",
							"Each in-flight request may hold one connection (an open file).",
							&jobsched_max_in_flight,
							16, 1, 256,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.request_timeout",
							"Timeout of one Kubernetes API request.",
							"A create that timed out is retried; its deterministic name prevents a duplicate.",
							&jobsched_request_timeout,
							30000, 100, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.max_attempts",
							"Transient failures (network, 5xx, 429) after which a job is failed.",
							"Credential and permission errors (401, 403, missing namespace) never fail a job.",
							&jobsched_max_attempts,
							10, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.backoff_base",
							"First retry delay after a transient failure; doubles per attempt, with jitter.",
							NULL,
							&jobsched_backoff_base,
							1000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jobsched.backoff_max",
							"Longest retry delay.",
							NULL,
							&jobsched_backoff_max,
							300000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("jobsched");
}

const char *
jobsched_wake_mode_name(int mode)
{
	return mode == JOBSCHED_WAKE_LATCH ? "latch" : "notify";
}

/*
 * The API URL in force: the setting, else the in-cluster service address
 * from the environment (as client-go's InClusterConfig does), else the
 * cluster DNS name.  palloc'd.
 */
char *
jobsched_guc_api_url(void)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");

	if (jobsched_kube_api_url && jobsched_kube_api_url[0] != '\0')
		return pstrdup(jobsched_kube_api_url);
	if (host && host[0] && port && port[0])
	{
		/* an IPv6 service address needs brackets in a URL */
		if (strchr(host, ':') != NULL)
			return psprintf("https://[%s]:%s", host, port);
		return psprintf("https://%s:%s", host, port);
	}
	return pstrdup("https://kubernetes.default.svc");
}

/*
 * The default namespace in force: the setting, else the service account's
 * namespace file, else "default".  The file is read at most once a minute.
 * palloc'd.
 */
char *
jobsched_guc_namespace(void)
{
	static char from_file[JOBSCHED_NAME_MAX + 1];
	static TimestampTz read_at = 0;
	TimestampTz now;

	if (jobsched_namespace && jobsched_namespace[0] != '\0')
		return pstrdup(jobsched_namespace);

	now = GetCurrentTimestamp();
	if (read_at == 0 || now - read_at >= 60 * USECS_PER_SEC)
	{
		FILE	   *f = AllocateFile(SERVICE_ACCOUNT_DIR "/namespace", "r");
		char		buf[256];
		size_t		len = 0;

		read_at = now;
		from_file[0] = '\0';
		if (f != NULL)
		{
			len = fread(buf, 1, sizeof(buf) - 1, f);
			FreeFile(f);
		}
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' ||
						   buf[len - 1] == '\r' || buf[len - 1] == '\t'))
			len--;
		buf[len] = '\0';
		if (len > 0 && len < sizeof(from_file) && jobsched_is_dns_label(buf))
			strlcpy(from_file, buf, sizeof(from_file));
	}
	return pstrdup(from_file[0] ? from_file : "default");
}

/*
 * Settings that are legal but may hurt: said in the log when the worker
 * loads them.
 */
void
jobsched_guc_warn_risky(void)
{
	if (jobsched_cleanup_age < 3600 && !jobsched_cleanup_spare_active)
		ereport(WARNING,
				(errmsg("jobsched.cleanup_age is %d s: cleanup deletes Jobs still running at that age",
						jobsched_cleanup_age),
				 errdetail("Cleanup deletes every Job of this database created longer ago than jobsched.cleanup_age, with its pods, and fails the rows of those still running."),
				 errhint("Raise jobsched.cleanup_age above the longest run of a Job, or set jobsched.cleanup_spare_active = on.")));
}
