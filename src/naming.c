/*-------------------------------------------------------------------------
 *
 * naming.c
 *	  This installation's identity, the deterministic Job names built on it,
 *	  and the proof that makes a Job this row's Job.
 *
 *	  The identity lives in jobsched.installation: instance, a short random
 *	  id that goes into every Job name and the jobsched.io/instance label,
 *	  so two databases sharing a namespace never take each other's Jobs;
 *	  and secret, readable by the extension owner only.  Both are table
 *	  data, so a promoted standby or a restored dump follows the Jobs its
 *	  origin made, and a new CREATE EXTENSION starts a new installation.
 *
 *	  A Job's name is derived from its row alone (type, id, run), so a
 *	  create retried after a crash or a timeout meets 409 AlreadyExists
 *	  instead of making a second Job.  Names are predictable and labels can
 *	  be forged by anyone who may create Jobs, so neither proves anything:
 *	  each Job carries the annotation jobsched.io/proof, an HMAC-SHA256 with
 *	  the secret over the Job's namespace and name and the row's id, run and
 *	  creation time.  Only this installation can make one; a row takes a Job
 *	  for its own only when the proof holds for that row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "jobsched.h"

PG_FUNCTION_INFO_V1(jobsched_sql_job_name);
PG_FUNCTION_INFO_V1(jobsched_job_name_of_run);
PG_FUNCTION_INFO_V1(jobsched_legacy_instance);

#define NAMING_SECRET_MIN	32
#define NAMING_SECRET_MAX	64
#define NAMING_PROOF_VERSION "v1"

/* the worker's copy of the identity (jobsched_installation_load) */
static char naming_instance[JOBSCHED_INSTANCE_LEN + 1];
static uint8 naming_secret[NAMING_SECRET_MAX];
static int	naming_secret_len = 0;
static TimestampTz naming_labels_trusted_before = 0;

/* bumped whenever the loaded identity changes (a new installation) */
static uint32 naming_generation = 0;

/* owns the HMAC contexts, which OpenSSL builds register with a resource owner */
static ResourceOwner naming_resowner = NULL;

static const char naming_installation_sql[] =
"SELECT instance, secret, labels_trusted_before"
"  FROM jobsched.installation"
" ORDER BY created_at, instance LIMIT 1";

/*
 * Read this installation's identity (the worker, in a transaction with SPI
 * connected).  Returns false if there is none: an extension whose script
 * has not run to the end, or rows someone deleted.
 */
bool
jobsched_installation_load(void)
{
	bool		isnull;
	Datum		d;
	bytea	   *secret;
	char	   *instance;
	int			rc;

	rc = SPI_execute(naming_installation_sql, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read jobsched.installation: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;

	instance = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	secret = DatumGetByteaPP(d);
	if (instance == NULL || strlen(instance) != JOBSCHED_INSTANCE_LEN ||
		VARSIZE_ANY_EXHDR(secret) < NAMING_SECRET_MIN ||
		VARSIZE_ANY_EXHDR(secret) > NAMING_SECRET_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("jobsched.installation holds no usable identity"),
				 errhint("Drop and create the extension again; its Jobs are then no longer recognised as ours.")));

	if (strcmp(naming_instance, instance) != 0)
		naming_generation++;
	strlcpy(naming_instance, instance, sizeof(naming_instance));
	naming_secret_len = VARSIZE_ANY_EXHDR(secret);
	memcpy(naming_secret, VARDATA_ANY(secret), naming_secret_len);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	naming_labels_trusted_before = isnull ? 0 : DatumGetTimestampTz(d);
	return true;
}

/* The instance the worker loaded (jobsched_installation_load). */
const char *
jobsched_instance_id(void)
{
	Assert(naming_instance[0] != '\0');
	return naming_instance;
}

/*
 * Which identity the worker knows: this changes when the extension was
 * created again, and whoever keeps state derived from the instance (the
 * Jobs it follows) starts over.
 */
uint32
jobsched_identity_generation(void)
{
	return naming_generation;
}

/*
 * Jobs created before this came from jobsched 1.0, which signed nothing:
 * they are recognised by their labels.  0 for an installation that began
 * with 1.1.
 */
TimestampTz
jobsched_labels_trusted_before(void)
{
	return naming_labels_trusted_before;
}

/*
 * The instance, for SQL functions in any session: the column is readable
 * by everyone with USAGE on the schema.  palloc'd.
 */
static char *
naming_read_instance(void)
{
	char	   *instance = NULL;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute("SELECT instance FROM jobsched.installation"
					 " ORDER BY created_at, instance LIMIT 1", true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read jobsched.installation: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
		instance = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (instance == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jobsched.installation holds no identity"),
				 errhint("Drop and create the extension again.")));
	/* SPI_palloc: the caller's context, which outlives SPI_finish() */
	instance = strcpy(SPI_palloc(strlen(instance) + 1), instance);
	SPI_finish();
	return instance;
}

/*
 * "<type>-<id>[-r<run>]-<instance>", with the type shortened so the whole
 * fits in a DNS-1123 label of JOBSCHED_NAME_MAX characters (the Job's name
 * becomes its pods' job-name label, whose values are at most 63 long).
 * Read from the right, the id, run and instance are unambiguous whatever
 * the type.  The type must itself be a DNS-1123 label (a constraint on
 * job_types), so the result is one too.  palloc'd.
 */
char *
jobsched_job_name(const char *instance, const char *type, int64 job_id, int run)
{
	char		suffix[JOBSCHED_NAME_MAX + 1];
	int			suffix_len;
	int			prefix_len;

	if (run > 0)
		suffix_len = snprintf(suffix, sizeof(suffix), "-" INT64_FORMAT "-r%d-%s",
							  job_id, run, instance);
	else
		suffix_len = snprintf(suffix, sizeof(suffix), "-" INT64_FORMAT "-%s",
							  job_id, instance);
	prefix_len = Min((int) strlen(type), JOBSCHED_NAME_MAX - suffix_len);
	while (prefix_len > 0 && type[prefix_len - 1] == '-')
		prefix_len--;
	if (prefix_len == 0)
		return psprintf("job%s", suffix);
	return psprintf("%.*s%s", prefix_len, type, suffix);
}

/*
 * HMAC-SHA256 with the secret over the fields that make a Job this row's
 * Job, as lowercase hex into out (PG_SHA256_DIGEST_STRING_LENGTH bytes).
 */
static void
naming_mac(const JobschedProofInput *in, char *out)
{
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char	   *message;
	pg_hmac_ctx *ctx;
	ResourceOwner save = CurrentResourceOwner;
	int			i;
	bool		ok;

	Assert(naming_secret_len >= NAMING_SECRET_MIN);
	message = psprintf(NAMING_PROOF_VERSION "\n%s\n%s\n" INT64_FORMAT "\n%d\n" INT64_FORMAT,
					   in->namespace, in->name, in->job_id, in->run,
					   (int64) in->created_at);

	if (naming_resowner == NULL)
		naming_resowner = ResourceOwnerCreate(NULL, "jobsched proofs");
	CurrentResourceOwner = naming_resowner;
	ctx = pg_hmac_create(PG_SHA256);
	ok = (ctx != NULL &&
		  pg_hmac_init(ctx, naming_secret, naming_secret_len) == 0 &&
		  pg_hmac_update(ctx, (const uint8 *) message, strlen(message)) == 0 &&
		  pg_hmac_final(ctx, mac, sizeof(mac)) == 0);
	pg_hmac_free(ctx);
	CurrentResourceOwner = save;
	pfree(message);
	if (!ok)
		elog(ERROR, "could not compute an HMAC-SHA256");

	for (i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/*
 * The jobsched.io/proof annotation of a Job:
 * "v1:<run>:<created_at in microseconds since 2000>:<hex HMAC>".  The run
 * and creation time are spelled out so a listed Job can be checked without
 * its row: the MAC vouches for them, and the row must then match them.
 * palloc'd.
 */
char *
jobsched_proof(const JobschedProofInput *in)
{
	char		mac[PG_SHA256_DIGEST_STRING_LENGTH];

	naming_mac(in, mac);
	return psprintf(NAMING_PROOF_VERSION ":%d:" INT64_FORMAT ":%s",
					in->run, (int64) in->created_at, mac);
}

/*
 * Does the proof annotation hold for a Job of this namespace, name and row
 * id?  If so, say which run of the row and which creation time it vouches
 * for.  Any malformed text is simply no proof.
 */
bool
jobsched_proof_check(const char *proof, const char *namespace, const char *name,
					 int64 job_id, int *run, TimestampTz *created_at)
{
	JobschedProofInput in;
	char		expected[PG_SHA256_DIGEST_STRING_LENGTH];
	const char *p;
	char	   *end;
	long		r;
	int64		created;

	if (proof == NULL || namespace == NULL || name == NULL || job_id <= 0 ||
		strncmp(proof, NAMING_PROOF_VERSION ":", 3) != 0)
		return false;
	p = proof + 3;
	errno = 0;
	r = strtol(p, &end, 10);
	if (errno != 0 || end == p || *end != ':' || r < 0 || r > PG_INT32_MAX)
		return false;
	p = end + 1;
	errno = 0;
	created = strtoi64(p, &end, 10);
	if (errno != 0 || end == p || *end != ':')
		return false;
	p = end + 1;
	if (strlen(p) != PG_SHA256_DIGEST_LENGTH * 2)
		return false;

	in.namespace = namespace;
	in.name = name;
	in.job_id = job_id;
	in.run = (int) r;
	in.created_at = (TimestampTz) created;
	naming_mac(&in, expected);
	if (timingsafe_bcmp(expected, p, PG_SHA256_DIGEST_LENGTH * 2) != 0)
		return false;
	*run = in.run;
	*created_at = in.created_at;
	return true;
}

/*
 * jobsched.job_name(type, job_id, run): the name of the Job of a run of a
 * job.  Any input gets a valid DNS-1123 label or an error.
 */
Datum
jobsched_job_name_of_run(PG_FUNCTION_ARGS)
{
	char	   *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		job_id = PG_GETARG_INT64(1);
	int32		run = PG_GETARG_INT32(2);

	if (!jobsched_is_dns_label(type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid job type name"),
				 errdetail("A job type is a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit.")));
	if (job_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job id must be positive")));
	if (run < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run must not be negative")));

	PG_RETURN_TEXT_P(cstring_to_text(jobsched_job_name(naming_read_instance(),
													   type, job_id, run)));
}

/*
 * The identity jobsched 1.0 used: a hash of the cluster's system identifier
 * and the database's OID.  The update to 1.1 keeps it as the instance, so
 * the Jobs 1.0 made keep their names.
 */
char *
jobsched_legacy_instance_id(void)
{
	uint64		key[2];
	uint64		hash;

	Assert(OidIsValid(MyDatabaseId));
	key[0] = GetSystemIdentifier();
	key[1] = (uint64) MyDatabaseId;
	hash = hash_bytes_extended((const unsigned char *) key, sizeof(key), 0);
	return psprintf("%010llx", (unsigned long long) (hash & UINT64CONST(0xffffffffff)));
}

Datum
jobsched_legacy_instance(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(jobsched_legacy_instance_id()));
}

/*
 * jobsched.job_name(type, job_id) of jobsched 1.0, kept so that a server
 * running this library with the 1.0 SQL objects, before ALTER EXTENSION
 * UPDATE, still answers as 1.0 did.
 */
Datum
jobsched_sql_job_name(PG_FUNCTION_ARGS)
{
	char	   *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		job_id = PG_GETARG_INT64(1);

	PG_RETURN_TEXT_P(cstring_to_text(jobsched_job_name(jobsched_legacy_instance_id(),
													   type, job_id, 0)));
}
