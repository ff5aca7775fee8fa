/*-------------------------------------------------------------------------
 *
 * cleanup.h
 *	  Deleting old Jobs and the pods they leave behind (cleanup.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_CLEANUP_H
#define JOBSCHED_CLEANUP_H

extern void jobsched_cleanup_init(void);
extern long jobsched_cleanup_run(void);
extern void jobsched_cleanup_reset(void);

#endif							/* JOBSCHED_CLEANUP_H */
