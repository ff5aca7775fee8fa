/*-------------------------------------------------------------------------
 *
 * sync.h
 *	  Keeping each row in step with its Job (sync.c).  Like every duty of
 *	  the worker's, a run function the main loop calls every pass, which
 *	  returns how long it may sleep (ms, -1: until woken), and a reset for
 *	  error recovery.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_SYNC_H
#define JOBSCHED_SYNC_H

extern void jobsched_sync_init(void);
extern long jobsched_sync_run(void);
extern void jobsched_sync_reset(void);
extern void jobsched_sync_reload(void);

#endif							/* JOBSCHED_SYNC_H */
