/*
 * test_workq.c: the shared worker thread and job queue (lib/base/workq.c)
 * the custody and key-ring services keep their slow work on. Checked on its
 * own: finished jobs come back in the order submitted, the outstanding count
 * follows submit and take_done, and stop hands back every job not taken
 * back (unrun and finished) without running the unrun ones.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "ig_workq.h"

typedef struct tjob {
	ig_work link;
	int n;
	bool ran;
} tjob;

typedef struct tctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int order[64];
	int n_run;
	int gate_n;                   /* the job that waits for the gate; -1: none */
	bool gate_open;
	bool gate_reached;
} tctx;

static void run(void *ctx, ig_work *w)
{
	tctx *t = ctx;
	tjob *j = (tjob *)w;
	pthread_mutex_lock(&t->mu);
	if (j->n == t->gate_n) {
		t->gate_reached = true;
		pthread_cond_broadcast(&t->cv);
		while (!t->gate_open)
			pthread_cond_wait(&t->cv, &t->mu);
	}
	j->ran = true;
	t->order[t->n_run++] = j->n;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void ctx_init(tctx *t)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->gate_n = -1;
}

static void wait_run(tctx *t, int n)
{
	pthread_mutex_lock(&t->mu);
	while (t->n_run < n)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

static void wait_gate(tctx *t)
{
	pthread_mutex_lock(&t->mu);
	while (!t->gate_reached)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

static void open_gate(tctx *t)
{
	pthread_mutex_lock(&t->mu);
	t->gate_open = true;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

Test(workq, finished_jobs_come_back_in_submit_order)
{
	tctx t;
	ctx_init(&t);
	ig_workq q;
	memset(&q, 0, sizeof q);
	cr_assert_eq(ig_workq_start(&q, run, &t), IG_OK);
	tjob jobs[40];
	for (int i = 0; i < 40; i++) {
		jobs[i] = (tjob){.n = i};
		ig_workq_submit(&q, &jobs[i].link);
	}
	int seen = 0;
	while (seen < 40) {
		for (ig_work *w = ig_workq_take_done(&q); w; w = w->next) {
			tjob *j = (tjob *)w;
			cr_assert(j->ran);
			cr_assert_eq(j->n, seen, "job %d came back where %d was due", j->n, seen);
			seen++;
		}
		cr_assert_eq(ig_workq_outstanding(&q), (unsigned)(40 - seen));
		if (seen < 40)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	for (int i = 0; i < 40; i++)
		cr_assert_eq(t.order[i], i);
	cr_assert_null(ig_workq_take_done(&q));
	cr_assert_null(ig_workq_stop(&q));
}

/* Takes finished jobs back until n have come (a job counts as run before
 * the worker files it as finished, so they may come in several takes),
 * checking the outstanding count after each take. The last one taken. */
static ig_work *take_n(ig_workq *q, unsigned n)
{
	unsigned before = ig_workq_outstanding(q), got = 0;
	ig_work *last = NULL;
	for (int tries = 0; got < n; tries++) {
		cr_assert_lt(tries, 5000, "only %u of %u jobs came back", got, n);
		for (ig_work *w = ig_workq_take_done(q); w; w = w->next, got++)
			last = w;
		cr_assert_eq(ig_workq_outstanding(q), before - got);
		if (got < n)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	cr_assert_eq(got, n);
	return last;
}

Test(workq, outstanding_counts_until_taken_back)
{
	tctx t;
	ctx_init(&t);
	ig_workq q;
	memset(&q, 0, sizeof q);
	cr_assert_eq(ig_workq_outstanding(&q), 0u);
	cr_assert_eq(ig_workq_start(&q, run, &t), IG_OK);
	tjob jobs[3] = {{.n = 0}, {.n = 1}, {.n = 2}};
	for (int i = 0; i < 3; i++)
		ig_workq_submit(&q, &jobs[i].link);
	cr_assert_eq(ig_workq_outstanding(&q), 3u);
	wait_run(&t, 3);
	/* Run but not taken back: still outstanding. */
	cr_assert_eq(ig_workq_outstanding(&q), 3u);
	cr_assert_eq(take_n(&q, 3), &jobs[2].link);
	cr_assert_eq(ig_workq_outstanding(&q), 0u);
	tjob more = {.n = 3};
	ig_workq_submit(&q, &more.link);
	cr_assert_eq(ig_workq_outstanding(&q), 1u);
	cr_assert_eq(take_n(&q, 1), &more.link);
	cr_assert_eq(ig_workq_outstanding(&q), 0u);
	cr_assert_null(ig_workq_stop(&q));
}

typedef struct stopper {
	ig_workq *q;
	ig_work *got;
} stopper;

static void *stop_main(void *arg)
{
	stopper *s = arg;
	s->got = ig_workq_stop(s->q);
	return NULL;
}

/* Job 0 finishes and is not taken back, job 1 is running when stop is
 * called, jobs 2 and 3 wait: stop lets job 1 finish, runs neither 2 nor 3,
 * and hands back 2, 3 (unrun, submit order), then 0, 1 (finished). */
Test(workq, stop_hands_back_unrun_and_unfetched_jobs)
{
	tctx t;
	ctx_init(&t);
	t.gate_n = 1;
	ig_workq q;
	memset(&q, 0, sizeof q);
	cr_assert_eq(ig_workq_start(&q, run, &t), IG_OK);
	tjob jobs[4] = {{.n = 0}, {.n = 1}, {.n = 2}, {.n = 3}};
	for (int i = 0; i < 4; i++)
		ig_workq_submit(&q, &jobs[i].link);
	wait_gate(&t);
	stopper s = {.q = &q};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, stop_main, &s), 0);
	/* Open the gate only once stop has asked the worker to stop, so the
	 * worker cannot pick up job 2 in between. */
	for (;;) {
		pthread_mutex_lock(&q.mu);
		bool asked = q.stop;
		pthread_mutex_unlock(&q.mu);
		if (asked)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	open_gate(&t);
	pthread_join(th, NULL);
	int want[4] = {2, 3, 0, 1};
	int i = 0;
	for (ig_work *w = s.got; w; w = w->next, i++) {
		cr_assert_lt(i, 4);
		cr_assert_eq(((tjob *)w)->n, want[i], "position %d: job %d, want %d", i, ((tjob *)w)->n, want[i]);
	}
	cr_assert_eq(i, 4);
	cr_assert(jobs[0].ran && jobs[1].ran);
	cr_assert(!jobs[2].ran && !jobs[3].ran);
	cr_assert_eq(t.n_run, 2);
	cr_assert_eq(ig_workq_outstanding(&q), 0u);
	/* Stopped is as never started: a second stop hands back nothing. */
	cr_assert_null(ig_workq_stop(&q));
}

Test(workq, stop_of_a_queue_never_started_is_empty)
{
	ig_workq q;
	memset(&q, 0, sizeof q);
	cr_assert_null(ig_workq_stop(&q));
	cr_assert_null(ig_workq_take_done(&q));
}
