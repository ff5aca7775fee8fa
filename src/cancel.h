/*-------------------------------------------------------------------------
 *
 * cancel.h
 *	  Carrying out jobsched.cancel() for jobs whose Job may exist (cancel.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_CANCEL_H
#define JOBSCHED_CANCEL_H

extern void jobsched_cancel_init(void);
extern void jobsched_cancel_wake(void);
extern long jobsched_cancel_run(void);
extern void jobsched_cancel_reset(void);

#endif							/* JOBSCHED_CANCEL_H */
