/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Small helpers every layer of the worker may use: time arithmetic for
 *	  deadlines, backoff with jitter, text from outside made safe to
 *	  store, and the DNS-1123 label check.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "jobsched.h"

/*
 * Milliseconds from now until then, rounded up so a sleep never ends just
 * before a deadline; 0 once it has passed.
 */
long
jobsched_ms_until(TimestampTz now, TimestampTz then)
{
	if (then <= now)
		return 0;
	return (long) Min((then - now) / 1000 + 1, (TimestampTz) INT_MAX);
}

/* the shorter of two sleeps; -1 is "until woken" */
long
jobsched_min_timeout(long a, long b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return Min(a, b);
}

/*
 * The delay before try number "failures" + 1: jobsched.backoff_base,
 * doubled per failure, at most cap_ms, with "equal jitter" (half kept, half
 * random), so clients that failed together do not retry together.
 */
int
jobsched_backoff_ms(int failures, int cap_ms)
{
	double		delay;

	delay = jobsched_backoff_base * pow(2.0, Min(Max(failures, 1) - 1, 30));
	delay = Min(delay, (double) Max(cap_ms, 1));
	delay = delay / 2 + pg_prng_double(&pg_global_prng_state) * delay / 2;
	return (int) Min(delay, (double) INT_MAX);
}

/*
 * Text that came from outside (an API answer, a Job's status) made fit to
 * store in a text column and to show: valid in the database's encoding,
 * control characters turned into spaces, and at most max_bytes long, cut
 * at a character boundary.  The API speaks UTF-8: in a database of another
 * encoding, characters beyond ASCII become '?'.  palloc'd.
 */
char *
jobsched_clean_text(const char *text, int max_bytes)
{
	StringInfoData out;
	const unsigned char *p = (const unsigned char *) text;
	bool		utf8 = (GetDatabaseEncoding() == PG_UTF8);

	initStringInfo(&out);
	while (*p)
	{
		int			len = pg_utf_mblen(p);

		if (*p < 0x80)
		{
			if (out.len + 1 > max_bytes)
				break;
			appendStringInfoChar(&out, (*p < 0x20 || *p == 0x7f) ? ' ' : (char) *p);
			p++;
			continue;
		}
		if (len > 1 && strnlen((const char *) p, len) == (size_t) len &&
			pg_utf8_islegal(p, len) && utf8)
		{
			if (out.len + len > max_bytes)
				break;
			appendBinaryStringInfo(&out, (const char *) p, len);
			p += len;
			continue;
		}
		/* invalid UTF-8, or not representable here: one '?' per byte run */
		if (out.len + 1 > max_bytes)
			break;
		appendStringInfoChar(&out, '?');
		if (len > 1 && strnlen((const char *) p, len) == (size_t) len &&
			pg_utf8_islegal(p, len))
			p += len;
		else
			p++;
	}
	return out.data;
}

/* Is s a DNS-1123 label (lowercase letters, digits, '-'; 1-63 long)? */
bool
jobsched_is_dns_label(const char *s)
{
	size_t		len = strlen(s);
	const char *c;

	if (len == 0 || len > JOBSCHED_NAME_MAX || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return true;
}
