/*-------------------------------------------------------------------------
 *
 * sync.h
 *	  The worker's periodic duties besides dispatch: status sync (sync.c),
 *	  cancellation (cancel.c) and cleanup (cleanup.c).  Each has a run
 *	  function the main loop calls every pass, which returns how long it
 *	  may sleep (ms, -1: until woken), and a reset for error recovery.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_SYNC_H
#define JOBSCHED_SYNC_H

extern void jobsched_sync_init(void);
extern long jobsched_sync_run(void);
extern void jobsched_sync_reset(void);

extern void jobsched_cancel_init(void);
extern void jobsched_cancel_wake(void);
extern long jobsched_cancel_run(void);
extern void jobsched_cancel_reset(void);

extern void jobsched_cleanup_init(void);
extern long jobsched_cleanup_run(void);
extern void jobsched_cleanup_reset(void);

#endif							/* JOBSCHED_SYNC_H */
