/*
 * ig_workq.h: one worker thread and its job queue, for a service that must
 * not do slow work (sealing, Shamir, disk, deriving key rings) on the broker
 * event loop.
 *
 * Why this exists: the custody and key-ring services each carried the same
 * hand-written thread, queue, "done" list collected in the tick, count of
 * jobs out, and stop/join at shutdown. This is that piece once. A service
 * embeds an ig_work link in its own job struct; the worker runs jobs one at
 * a time in the order submitted, and the event loop takes the finished ones
 * back, oldest first, in its tick. The queue never frees a job: what the
 * service gets back (finished, or unrun at stop) it completes and frees as
 * it always did.
 *
 * Threads: ig_workq_submit, ig_workq_take_done, ig_workq_outstanding and
 * ig_workq_stop are called from one thread (the event loop); the run
 * function is called on the worker thread only.
 */
#ifndef IG_WORKQ_H
#define IG_WORKQ_H

#include "ig_common.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* Embedded in a service's job; the queue links jobs through it. */
typedef struct ig_work {
	struct ig_work *next;
} ig_work;

/* Runs one job on the worker thread. */
typedef void (*ig_workq_run_fn)(void *ctx, ig_work *w);

/* Embed and zero (calloc); the fields are the queue's own. A zeroed,
 * never-started queue may be stopped. */
typedef struct ig_workq {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ig_work *queue, *queue_tail;  /* guarded by mu */
	ig_work *done;                /* guarded by mu; newest first */
	bool stop;                    /* guarded by mu */
	unsigned outstanding;         /* event loop only: submitted, not yet taken back */
	ig_workq_run_fn run;
	void *ctx;
} ig_workq;

/* Starts the worker thread, which calls run(ctx, job) for each job.
 * IG_OK, or IG_ERR_IO when the thread (or its lock) cannot be made; the
 * queue is then as if never started. */
int ig_workq_start(ig_workq *q, ig_workq_run_fn run, void *ctx) IG_NODISCARD;

/* Queues w (its link is overwritten) behind the jobs already queued. */
void ig_workq_submit(ig_workq *q, ig_work *w);

/* The jobs the worker has finished since the last call, oldest first,
 * linked through next (NULL: none); they no longer count as outstanding. */
ig_work *ig_workq_take_done(ig_workq *q);

/* Jobs submitted and not yet taken back by ig_workq_take_done. */
unsigned ig_workq_outstanding(const ig_workq *q);

/* Stops the worker after the job it is running (if any), joins it, and
 * hands back every job not taken back: first the unrun ones in submit
 * order, then the finished ones, oldest first, linked through next. The
 * queue is then as if never started. */
ig_work *ig_workq_stop(ig_workq *q);

#endif
