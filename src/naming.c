/*-------------------------------------------------------------------------
 *
 * naming.c
 *	  This database's identity and the deterministic Job names built on it.
 *
 *	  The identity hashes the cluster's system identifier with the
 *	  database's OID: two databases sharing a namespace never take each
 *	  other's Jobs, and a promoted physical standby, which keeps both,
 *	  recognizes the Jobs its primary created.  A Job's name is derived
 *	  from the row alone, so a create retried after a crash or a timeout
 *	  meets 409 AlreadyExists instead of making a second Job.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "jobsched.h"

PG_FUNCTION_INFO_V1(jobsched_sql_job_name);

static char naming_instance[JOBSCHED_INSTANCE_LEN + 1];

/* Hex identity of this database, JOBSCHED_INSTANCE_LEN digits. */
const char *
jobsched_instance_id(void)
{
	if (naming_instance[0] == '\0')
	{
		uint64		key[2];
		uint64		hash;

		Assert(OidIsValid(MyDatabaseId));
		key[0] = GetSystemIdentifier();
		key[1] = (uint64) MyDatabaseId;
		hash = hash_bytes_extended((const unsigned char *) key, sizeof(key), 0);
		snprintf(naming_instance, sizeof(naming_instance), "%010llx",
				 (unsigned long long) (hash & UINT64CONST(0xffffffffff)));
	}
	return naming_instance;
}

/*
 * "<type>-<id>-<instance>", with the type shortened so the whole fits in
 * a DNS-1123 label of JOBSCHED_NAME_MAX characters.  The type is itself a
 * DNS-1123 label (a constraint on job_types), so the result is one too.
 * palloc'd.
 */
char *
jobsched_job_name(const char *type, int64 job_id)
{
	char		suffix[64];
	int			suffix_len;
	int			prefix_len;

	suffix_len = snprintf(suffix, sizeof(suffix), "-" INT64_FORMAT "-%s",
						  job_id, jobsched_instance_id());
	prefix_len = Min((int) strlen(type), JOBSCHED_NAME_MAX - suffix_len);
	while (prefix_len > 0 && type[prefix_len - 1] == '-')
		prefix_len--;
	if (prefix_len == 0)
		return psprintf("job%s", suffix);
	return psprintf("%.*s%s", prefix_len, type, suffix);
}

Datum
jobsched_sql_job_name(PG_FUNCTION_ARGS)
{
	char	   *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		job_id = PG_GETARG_INT64(1);

	PG_RETURN_TEXT_P(cstring_to_text(jobsched_job_name(type, job_id)));
}
