/*
 * prover.c: the proof worker (ig_prover.h).
 *
 * Why this exists: see ig_prover.h. One thread, one bounded FIFO of jobs in
 * and one FIFO of finished jobs out; the broker's side only ever takes the
 * mutex for a pointer swap, never while a proof is being made.
 */
#include "ig_prover.h"

#include "ig_merkle.h"
#include "ig_record.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct ig_prover {
	char *dir;
	size_t queue_max;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started;         /* guarded by mu: thread is joinable */
	bool thread_running;         /* guarded by mu: it has not decided to exit */
	bool stop;
	ig_prover_job **in;          /* ring of queue_max */
	size_t in_head, in_count;
	ig_prover_job **out;         /* ring of queue_max: a job is in one ring or running, never more */
	size_t out_head, out_count;
	size_t running;
	atomic_bool ready;
	int event_fd;
};

ig_prover_job *ig_prover_job_new(ig_prover_kind kind, const char *checkpoint, size_t len, const ig_checkpoint *cp)
{
	if (!checkpoint || !cp || len > IG_CHECKPOINT_MAX)
		return NULL;
	ig_prover_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->checkpoint = malloc(len + 1);
	if (!j->checkpoint) {
		free(j);
		return NULL;
	}
	memcpy(j->checkpoint, checkpoint, len);
	j->checkpoint[len] = '\0';
	j->checkpoint_len = len;
	j->kind = kind;
	j->cp = *cp;
	return j;
}

void ig_prover_job_free(ig_prover_job *job)
{
	if (!job)
		return;
	free(job->checkpoint);
	free(job->entry);
	free(job);
}

/* ---- one proof -------------------------------------------------------------- */

static void fail(ig_prover_job *job, int status, const char *fmt, const char *detail)
{
	job->status = status;
	snprintf(job->message, sizeof job->message, fmt, detail);
	job->path_len = 0;
	free(job->entry);
	job->entry = NULL;
	job->entry_len = 0;
}

static bool sizes_ok(const ig_prover_job *job)
{
	if (job->kind == IG_PROVER_INCLUSION)
		return job->index < job->cp.size;
	if (job->kind == IG_PROVER_CONSISTENCY)
		return job->from <= job->to && job->to <= job->cp.size;
	return false;
}

/* A reader's error: the tiles are not what the checkpoint needs. */
static void tile_failure(ig_tiles_reader **reader, ig_prover_job *job, int rc, const ig_error *err)
{
	ig_tiles_reader_close(*reader);
	*reader = NULL;
	fail(job, rc == IG_ERR_NOMEM ? IG_ERR_NOMEM : (rc == IG_ERR_NOTFOUND ? IG_ERR_NOTFOUND : IG_ERR_CORRUPT),
	     "the log's tiles cannot prove it: %.200s", err->msg);
}

static void prove_inclusion(ig_tiles_reader **reader, ig_prover_job *job)
{
	ig_error err = { 0 };
	job->entry = malloc(IG_FORMAT_V2_MAX_FRAME);
	if (!job->entry) {
		fail(job, IG_ERR_NOMEM, "out of memory%s", "");
		return;
	}
	int rc = ig_tiles_reader_entry(*reader, job->index, job->entry, IG_FORMAT_V2_MAX_FRAME, &job->entry_len, &err);
	if (rc == IG_OK)
		rc = ig_proof_inclusion(job->path, IG_PROOF_MAX, &job->path_len, IG_MERKLE_SHA256, job->index, job->cp.size,
		                        ig_tiles_reader_node, *reader, &err);
	if (rc != IG_OK) {
		tile_failure(reader, job, rc, &err);
		return;
	}
	/* Finished jobs wait for the broker's tick: keep only the frame. */
	uint8_t *fit = realloc(job->entry, job->entry_len ? job->entry_len : 1);
	if (fit)
		job->entry = fit;
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, job->entry, job->entry_len);
	if (ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, job->index, job->cp.size,
	                              (const uint8_t(*)[IG_HASH_BYTES])job->path, job->path_len, job->cp.root) != IG_OK) {
		ig_tiles_reader_close(*reader);
		*reader = NULL;
		fail(job, IG_ERR_CORRUPT, "the log's tiles do not lead to the signed checkpoint's root%s (damaged tiles)",
		     "");
	}
}

static void prove_consistency(ig_tiles_reader **reader, ig_prover_job *job)
{
	ig_error err = { 0 };
	uint8_t old_root[IG_HASH_BYTES], new_root[IG_HASH_BYTES];
	int rc = ig_proof_consistency(job->path, IG_PROOF_MAX, &job->path_len, IG_MERKLE_SHA256, job->from, job->to,
	                              ig_tiles_reader_node, *reader, &err);
	bool anchored = true;
	if (rc == IG_OK && job->to == job->cp.size) {
		memcpy(new_root, job->cp.root, IG_HASH_BYTES);
	} else if (rc == IG_OK) {
		/* The root of `to` is not signed: it counts only once the tiles
		 * also prove it extends to the signed checkpoint. */
		uint8_t link[IG_PROOF_MAX][IG_HASH_BYTES];
		size_t n = 0;
		rc = ig_proof_root(new_root, IG_MERKLE_SHA256, job->to, ig_tiles_reader_node, *reader, &err);
		if (rc == IG_OK)
			rc = ig_proof_consistency(link, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, job->to, job->cp.size,
			                          ig_tiles_reader_node, *reader, &err);
		if (rc == IG_OK)
			anchored = ig_proof_consistency_verify(IG_MERKLE_SHA256, job->to, new_root, job->cp.size, job->cp.root,
			                                       (const uint8_t(*)[IG_HASH_BYTES])link, n) == IG_OK;
	}
	if (rc == IG_OK && job->from > 0)
		rc = ig_proof_root(old_root, IG_MERKLE_SHA256, job->from, ig_tiles_reader_node, *reader, &err);
	if (rc != IG_OK) {
		tile_failure(reader, job, rc, &err);
		return;
	}
	if (!anchored || ig_proof_consistency_verify(IG_MERKLE_SHA256, job->from, job->from ? old_root : NULL, job->to,
	                                             new_root, (const uint8_t(*)[IG_HASH_BYTES])job->path,
	                                             job->path_len) != IG_OK) {
		ig_tiles_reader_close(*reader);
		*reader = NULL;
		fail(job, IG_ERR_CORRUPT, "the log's tiles do not lead to the signed checkpoint's root%s (damaged tiles)",
		     "");
	}
}

void ig_prover_run(const char *ledger_dir, ig_tiles_reader **reader, ig_prover_job *job)
{
	job->status = IG_OK;
	job->message[0] = '\0';
	if (!sizes_ok(job)) {
		fail(job, IG_ERR_INVAL, "the sizes asked for are not within the checkpoint%s", "");
		return;
	}
	if (*reader && ig_tiles_reader_size(*reader) != job->cp.size)
		ig_tiles_reader_set_size(*reader, job->cp.size);
	if (!*reader) {
		ig_error err = { 0 };
		int rc = ig_tiles_reader_open(reader, ledger_dir, job->cp.size, &err);
		if (rc != IG_OK) {
			*reader = NULL;
			tile_failure(reader, job, rc, &err);
			return;
		}
	}
	if (job->kind == IG_PROVER_INCLUSION)
		prove_inclusion(reader, job);
	else
		prove_consistency(reader, job);
}

/* ---- the worker --------------------------------------------------------------- */

/* The worker exits after this long with nothing to do, and the next submit
 * starts it again: while a second thread exists, the kernel refcounts the
 * file on every system call of the broker's event loop (about 0.5 us per
 * relayed message; ledger_writer.c measured it), so a broker that serves no
 * proofs must stay single-threaded. */
#define PROVER_IDLE_EXIT_US 1000000

static void *worker(void *arg)
{
	ig_prover *p = arg;
	ig_tiles_reader *reader = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		uint64_t exit_at = ig_mono_us() + PROVER_IDLE_EXIT_US;
		while (!p->stop && p->in_count == 0) {
			uint64_t now = ig_mono_us();
			if (now >= exit_at)
				break;
			struct timespec ts = {.tv_sec = (time_t)(exit_at / 1000000u),
			                      .tv_nsec = (long)(exit_at % 1000000u) * 1000};
			pthread_cond_timedwait(&p->cond, &p->mu, &ts);
		}
		if (p->stop || p->in_count == 0)
			break;
		ig_prover_job *job = p->in[p->in_head];
		p->in_head = (p->in_head + 1) % p->queue_max;
		p->in_count--;
		p->running++;
		pthread_mutex_unlock(&p->mu);

		ig_prover_run(p->dir, &reader, job);
		job->done_us = ig_mono_us();

		pthread_mutex_lock(&p->mu);
		p->running--;
		p->out[(p->out_head + p->out_count) % p->queue_max] = job;
		p->out_count++;
		atomic_store_explicit(&p->ready, true, memory_order_release);
		if (p->event_fd >= 0) {
			uint64_t one = 1;
			ssize_t n = write(p->event_fd, &one, sizeof one);
			(void)n;   /* a full counter is still readable */
		}
	}
	p->thread_running = false;
	pthread_mutex_unlock(&p->mu);
	ig_tiles_reader_close(reader);
	return NULL;
}

/* Under mu: makes sure a worker runs, joining one that exited when idle
 * (it released mu before returning, so the join cannot wait on it). */
static int worker_ensure_locked(ig_prover *p)
{
	if (p->thread_running)
		return 0;
	if (p->thread_started) {
		pthread_join(p->thread, NULL);
		p->thread_started = false;
	}
	int rc = pthread_create(&p->thread, NULL, worker, p);
	if (rc != 0)
		return rc;
	p->thread_started = true;
	p->thread_running = true;
	return 0;
}

int ig_prover_new(ig_prover **out, const char *ledger_dir, size_t queue_max, ig_error *err)
{
	*out = NULL;
	if (!ledger_dir || queue_max == 0 || queue_max > 1000000)
		return ig_error_set(err, IG_ERR_INVAL, "the proof queue needs a ledger directory and 1..1000000 slots");
	ig_prover *p = calloc(1, sizeof *p);
	if (!p)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the proof worker");
	p->queue_max = queue_max;
	p->event_fd = -1;
	p->dir = strdup(ledger_dir);
	p->in = calloc(queue_max, sizeof *p->in);
	p->out = calloc(queue_max, sizeof *p->out);
	if (!p->dir || !p->in || !p->out) {
		free(p->dir);
		free(p->in);
		free(p->out);
		free(p);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the proof worker");
	}
	atomic_init(&p->ready, false);
	p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int rc = IG_OK;
	if (p->event_fd < 0)
		rc = ig_error_set(err, IG_ERR_IO, "cannot create an eventfd for the proof worker: %s", strerror(errno));
	else if (pthread_mutex_init(&p->mu, NULL) != 0)
		rc = ig_error_set(err, IG_ERR_NOMEM, "cannot make the proof worker's mutex");
	else {
		/* The idle deadline is on the monotonic clock (ig_mono_us). */
		pthread_condattr_t ca;
		bool ok = pthread_condattr_init(&ca) == 0;
		if (ok) {
			ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&p->cond, &ca) == 0;
			pthread_condattr_destroy(&ca);
		}
		if (!ok) {
			pthread_mutex_destroy(&p->mu);
			rc = ig_error_set(err, IG_ERR_NOMEM, "cannot make the proof worker's condition");
		}
	}
	if (rc != IG_OK) {
		if (p->event_fd >= 0)
			close(p->event_fd);
		free(p->dir);
		free(p->in);
		free(p->out);
		free(p);
		return rc;
	}
	*out = p;
	return IG_OK;
}

int ig_prover_submit(ig_prover *p, ig_prover_job *job)
{
	if (!job || !sizes_ok(job))
		return IG_ERR_INVAL;
	pthread_mutex_lock(&p->mu);
	if (p->in_count + p->running + p->out_count >= p->queue_max) {
		pthread_mutex_unlock(&p->mu);
		return IG_ERR_RANGE;
	}
	int e = worker_ensure_locked(p);
	if (e != 0) {
		pthread_mutex_unlock(&p->mu);
		return IG_ERR_NOMEM; /* no thread: the caller answers "busy, retry" */
	}
	job->queued_us = ig_mono_us();
	p->in[(p->in_head + p->in_count) % p->queue_max] = job;
	p->in_count++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	return IG_OK;
}

bool ig_prover_ready(const ig_prover *p)
{
	return atomic_load_explicit(&((ig_prover *)p)->ready, memory_order_acquire);
}

ig_prover_job *ig_prover_take(ig_prover *p)
{
	if (!ig_prover_ready(p))
		return NULL;
	pthread_mutex_lock(&p->mu);
	ig_prover_job *job = NULL;
	if (p->out_count) {
		job = p->out[p->out_head];
		p->out_head = (p->out_head + 1) % p->queue_max;
		p->out_count--;
	}
	if (p->out_count == 0) {
		atomic_store_explicit(&p->ready, false, memory_order_relaxed);
		uint64_t n;
		ssize_t r = read(p->event_fd, &n, sizeof n);   /* nonblocking: clears the counter */
		(void)r;
	}
	pthread_mutex_unlock(&p->mu);
	return job;
}

int ig_prover_event_fd(const ig_prover *p)
{
	return p->event_fd;
}

size_t ig_prover_depth(const ig_prover *p)
{
	ig_prover *m = (ig_prover *)p;   /* the mutex is not part of the prover's value */
	pthread_mutex_lock(&m->mu);
	size_t n = m->in_count + m->running + m->out_count;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void ig_prover_free(ig_prover *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	bool started = p->thread_started;
	pthread_mutex_unlock(&p->mu);
	if (started)
		pthread_join(p->thread, NULL);
	for (size_t i = 0; i < p->in_count; i++)
		ig_prover_job_free(p->in[(p->in_head + i) % p->queue_max]);
	for (size_t i = 0; i < p->out_count; i++)
		ig_prover_job_free(p->out[(p->out_head + i) % p->queue_max]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	close(p->event_fd);
	free(p->in);
	free(p->out);
	free(p->dir);
	free(p);
}
