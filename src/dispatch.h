/*-------------------------------------------------------------------------
 *
 * dispatch.h
 *	  From claimed rows to Kubernetes Jobs: rendering, the create requests,
 *	  what each answer means for the row, backoff, and recording.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBSCHED_DISPATCH_H
#define JOBSCHED_DISPATCH_H

#include "kube.h"

extern void jobsched_dispatch_init(void);
extern void jobsched_dispatch_wake(void);
extern long jobsched_dispatch_run(void);
extern void jobsched_dispatch_reset(void);
extern void jobsched_dispatch_reload(void);
extern bool jobsched_dispatch_take_cancel_due(void);

#endif							/* JOBSCHED_DISPATCH_H */
