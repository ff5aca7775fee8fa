/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  What differs between the PostgreSQL major versions jobsched builds
 *	  against (15, 17 and 18), in one place.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_COMPAT_H
#define JOBSCHED_COMPAT_H

#include "storage/latch.h"
#include "storage/proc.h"

/* shmem_request_hook came with 15 */
#if PG_VERSION_NUM < 150000
#error "jobsched needs PostgreSQL 15 or later"
#endif

/* 17 gave wait event sets a resource owner (none: we free ours ourselves) */
#if PG_VERSION_NUM >= 170000
#define jobsched_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define jobsched_create_wait_event_set(nevents) \
	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/* 17 dropped PGPROC.pgprocno for a function */
#if PG_VERSION_NUM >= 170000
#define jobsched_my_procno() GetNumberFromPGProc(MyProc)
#else
#define jobsched_my_procno() (MyProc->pgprocno)
#endif

/* 18 replaced pg_attribute_noreturn() with pg_noreturn, written before */
#ifndef pg_attribute_noreturn
#define pg_attribute_noreturn() __attribute__((noreturn))
#endif

#endif							/* JOBSCHED_COMPAT_H */
