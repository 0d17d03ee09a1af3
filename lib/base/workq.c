/*
 * workq.c: the worker thread and job queue of ig_workq.h, shared by the
 * services that keep slow work off the broker event loop.
 */
#include "ig_workq.h"

static void *worker_main(void *arg)
{
	ig_workq *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->queue && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		ig_work *w = q->queue;
		q->queue = w->next;
		if (!q->queue)
			q->queue_tail = NULL;
		pthread_mutex_unlock(&q->mu);
		q->run(q->ctx, w);
		pthread_mutex_lock(&q->mu);
		w->next = q->done;
		q->done = w;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int ig_workq_start(ig_workq *q, ig_workq_run_fn run, void *ctx)
{
	q->queue = q->queue_tail = q->done = NULL;
	q->stop = false;
	q->outstanding = 0;
	q->run = run;
	q->ctx = ctx;
	if (pthread_mutex_init(&q->mu, NULL) != 0)
		return IG_ERR_IO;
	if (pthread_cond_init(&q->cv, NULL) != 0) {
		pthread_mutex_destroy(&q->mu);
		return IG_ERR_IO;
	}
	if (pthread_create(&q->thread, NULL, worker_main, q) != 0) {
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		return IG_ERR_IO;
	}
	q->started = true;
	return IG_OK;
}

void ig_workq_submit(ig_workq *q, ig_work *w)
{
	pthread_mutex_lock(&q->mu);
	w->next = NULL;
	if (q->queue_tail)
		q->queue_tail->next = w;
	else
		q->queue = w;
	q->queue_tail = w;
	q->outstanding++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* The done list is built by pushing (newest first): turned around, it is
 * the order the jobs finished in. */
static ig_work *reversed(ig_work *list, unsigned *n)
{
	ig_work *rev = NULL;
	while (list) {
		ig_work *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
		(*n)++;
	}
	return rev;
}

ig_work *ig_workq_take_done(ig_workq *q)
{
	if (!q->started)
		return NULL;
	pthread_mutex_lock(&q->mu);
	ig_work *list = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->mu);
	unsigned n = 0;
	ig_work *out = reversed(list, &n);
	q->outstanding -= n;
	return out;
}

unsigned ig_workq_outstanding(const ig_workq *q)
{
	return q->outstanding;
}

ig_work *ig_workq_stop(ig_workq *q)
{
	if (!q->started)
		return NULL;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	unsigned n = 0;
	ig_work *finished = reversed(q->done, &n);
	ig_work *all = q->queue;
	if (q->queue_tail)
		q->queue_tail->next = finished;
	else
		all = finished;
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	q->queue = q->queue_tail = q->done = NULL;
	q->outstanding = 0;
	q->started = false;
	return all;
}
