/*
 * ledger_writer.c: the group-commit writer thread and the append API.
 *
 * Why this exists: the broker's event loop must never wait on the disk, yet
 * a state change may be acknowledged only once it is durable. Appends are
 * queued to one writer thread (as Redis's bio.c hands fsync to a background
 * thread) that takes every queued record, writes them with one write(),
 * makes them durable with one fdatasync() (group commit), writes a signed
 * checkpoint covering them, and only then hands completions back to the
 * caller's thread (ig_ledger_poll, or the blocking ig_ledger_append).
 *
 * Acknowledging only what a durable checkpoint covers is what makes loss
 * detectable: a log cut at a record boundary, or a record altered, anywhere
 * in what was ever acknowledged, contradicts the signed checkpoint. Records
 * past the checkpoint were never acknowledged, so the next open may cut a
 * torn frame there (ledger_scan.c).
 *
 * Failure rule: once an fsync fails, nothing more is acknowledged. A failed
 * fdatasync() may have dropped dirty pages, so retrying it could "succeed"
 * without the data being on disk; the ledger refuses all further appends
 * (submit returns IG_ERR_IO) until it is reopened, which rescans and cuts any
 * torn tail. A write() that fails with ENOSPC before any fsync of its batch
 * lost nothing the kernel had accepted, so the writer keeps that batch and
 * rewrites the same bytes at the same offset until the disk has room.
 * Acknowledged implies durable; the converse does not hold: complete frames
 * of a batch whose fsync failed or was cut short by a crash may still be
 * there at the next open, as with any write-ahead log, which is why such
 * records complete as IG_ERR_UNKNOWN, never as "not written". The file is
 * not truncated after a failed write because a concurrent auditor may have
 * it mapped (reading past a shrunken end is SIGBUS).
 *
 * All file I/O goes through the ig_ledger_io hooks given at open, so tests
 * inject a full disk, a torn write or a failing fsync without a special
 * build.
 *
 * The writer thread exits once it has been idle for WRITER_IDLE_EXIT_US
 * (nothing queued, nothing held, the checkpoint covering the log) and the
 * next append starts it again. A second thread in the broker's process is
 * not free even while it sleeps: Linux then takes and drops a reference to
 * the file on every read, write and epoll_ctl of the event loop (a shared
 * file table), which measured ~0.5 us of broker CPU per relayed message
 * (bench/run.sh, plugin vs null plugin). A broker that only relays
 * messages should not pay for a ledger it is not writing. Exiting cannot
 * undo the other half: glibc (2.36) stays in its multi-threaded mode once
 * any thread has run (cancellable read/write, locked malloc), about 570
 * instructions per relayed QoS 1 message in Mosquitto's own calls;
 * bench/run.sh's "null-plugin-mt" rows measure that ceiling.
 */
#include "ig_checkpoint.h"
#include "ig_custody.h"
#include "ig_merkle.h"
#include "ig_record.h"
#include "ig_tiles.h"
#include "ledger_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* While the disk is full the held batch is retried after 10 ms, doubling up
 * to once a second: quick recovery when space comes back, little load while
 * it does not. */
#define NOSPACE_RETRY_MIN_US 10000
#define NOSPACE_RETRY_MAX_US 1000000
/* Blocking submitters resubmit within microseconds of being woken; if the
 * writer checkpointed in that gap it would add two fsyncs to every batch.
 * "Idle" therefore means the queue stayed empty this long. */
#define IDLE_GRACE_US 1000
/* Upper bound on how long the writer waits for returning submitters before
 * an fdatasync (see writer_main); normally half an fdatasync. */
#define MAX_GATHER_US 2000
/* How long the writer waits for work before exiting (see the top). Long
 * enough that a steady trickle of requests keeps one thread; starting one
 * costs tens of microseconds, next to a milliseconds-long fdatasync. */
#define WRITER_IDLE_EXIT_US 1000000

/* ---- queued appends (append_node, append_waiter: ledger_int.h) ------------------ */

/* One group commit, from encoding to the checkpoint that covers it. It is
 * kept across attempts while the disk is full, so a retry rewrites exactly
 * the bytes (same indexes, timestamp and hashes) the failed attempt began. */
typedef enum { STAGE_WRITE, STAGE_CHECKPOINT } batch_stage;

typedef struct write_batch {
	append_node *head;           /* NULL for a checkpoint-only batch */
	size_t count;
	size_t bytes;                /* encoded length in l->wbuf */
	uint64_t ts;
	size_t written;              /* most bytes of wbuf any attempt handed to the kernel */
	batch_stage stage;
	ig_checkpoint cp;
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
} write_batch;

/* How an attempt at a batch ended. */
typedef enum { RUN_OK, RUN_NOSPACE, RUN_FAILED } run_result;

void ledger_notify_locked(ig_ledger *l)
{
	if (l->sync_waiters > 0)
		pthread_cond_broadcast(&l->done_cond);
	if (l->event_pending)
		atomic_store(&l->poll_work, true);
	if (l->event_pending && l->event_fd >= 0) {
		uint64_t one = 1;
		ssize_t n = write(l->event_fd, &one, sizeof one);
		(void)n; /* EAGAIN means the counter is already non-zero: still readable */
	}
	l->event_pending = false;
}

/* Hands w to the writer's wake_waiters, to post once mu is released; false
 * when w must be posted now: in shared mode (its completions also come from
 * the closing thread, which never runs wake_waiters) or without memory
 * (slower under mu, but correct). */
static bool defer_wake_locked(ig_ledger *l, append_waiter *w)
{
	if (l->pg)
		return false;
	if (l->wake_n == l->wake_cap) {
		size_t cap = l->wake_cap ? 2 * l->wake_cap : 256;
		append_waiter **nw = realloc(l->wake, cap * sizeof *nw);
		if (!nw)
			return false;
		l->wake = nw;
		l->wake_cap = cap;
	}
	l->wake[l->wake_n++] = w;
	return true;
}

void ledger_done_push_locked(ig_ledger *l, append_node *n)
{
	ledger_list_push(&l->done_head, &l->done_tail, n);
	l->event_pending = true;
}

void ledger_complete_locked(ig_ledger *l, append_node *n, int status)
{
	n->status = status;
	l->pending--;
	if (n->waiter) {
		append_waiter *w = n->waiter;
		w->status = status;
		if (ledger_status_has_record(status)) {
			w->rec = n->rec;
			w->rec.body = NULL;
		}
		free(n);
		if (!defer_wake_locked(l, w))
			sem_post(&w->done);
		return;
	}
	ledger_done_push_locked(l, n);
}

/* Wakes the blocking appenders completed since the last call, as a tree
 * (see append_waiter). Called by the writer without mu; a waiter may return
 * and drop its stack frame as soon as it is posted, so each one's links are
 * set before the first post. */
static void wake_waiters(ig_ledger *l)
{
	size_t n = l->wake_n;
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		l->wake[i]->wake_a = 2 * i + 1 < n ? l->wake[2 * i + 1] : NULL;
		l->wake[i]->wake_b = 2 * i + 2 < n ? l->wake[2 * i + 2] : NULL;
	}
	l->wake_n = 0;
	sem_post(&l->wake[0]->done);
}

void ledger_complete_list_locked(ig_ledger *l, append_node *n, int status)
{
	while (n) {
		append_node *next = n->next;
		ledger_complete_locked(l, n, status);
		n = next;
	}
}

void ledger_fail_queue_locked(ig_ledger *l, int status)
{
	append_node *q = l->queue_head;
	l->queue_head = l->queue_tail = NULL;
	l->queued = 0;
	ledger_complete_list_locked(l, q, status);
}

void ledger_count_latency_locked(ig_ledger *l, const append_node *n, uint64_t now, bool first)
{
	uint64_t lat = now >= n->submit_us ? now - n->submit_us : 0;
	if (first)
		l->last_commit_us = lat;
	if (lat > l->max_commit_us)
		l->max_commit_us = lat;
	l->latency_sum_us += lat;
}

append_node *ledger_take_batch_locked(ig_ledger *l, size_t *count)
{
	append_node *head = l->queue_head, *tail = head;
	size_t n = 1, bytes = (size_t)head->body_len + IG_REC_OVERHEAD;
	while (tail->next && n < l->max_batch &&
	       bytes + tail->next->body_len + IG_REC_OVERHEAD <= LEDGER_MAX_BATCH_BYTES) {
		tail = tail->next;
		bytes += (size_t)tail->body_len + IG_REC_OVERHEAD;
		n++;
	}
	l->queue_head = tail->next;
	if (!l->queue_head)
		l->queue_tail = NULL;
	tail->next = NULL;
	l->queued -= n;
	*count = n;
	return head;
}

int ledger_wbuf_fit(ig_ledger *l, const append_node *head, size_t *need)
{
	size_t len = 0;
	for (const append_node *n = head; n; n = n->next)
		len += (size_t)n->body_len + IG_REC_OVERHEAD;
	*need = len;
	if (len <= l->wcap)
		return IG_OK;
	size_t cap = l->wcap ? l->wcap : 65536;
	while (cap < len)
		cap *= 2;
	uint8_t *nb = realloc(l->wbuf, cap);
	if (!nb)
		return IG_ERR_NOMEM;
	l->wbuf = nb;
	l->wcap = cap;
	return IG_OK;
}

static void enter_failed_locked(ig_ledger *l)
{
	l->failed = true;
	l->nospace = false;
	ledger_fail_queue_locked(l, IG_ERR_IO);
}

/* Completes a batch that will not be acknowledged. Frames the kernel took
 * whole may be in the log at the next open, so they are "unknown"; a frame
 * cut short is a torn tail the next open removes, and frames never written
 * are certainly absent: those get `absent_status`. Once the log was synced
 * (STAGE_CHECKPOINT) every frame may be there. */
static void give_up_batch_locked(ig_ledger *l, write_batch *b, int absent_status)
{
	size_t end = 0;
	for (append_node *n = b->head; n;) {
		append_node *next = n->next;
		end += (size_t)n->body_len + IG_REC_OVERHEAD;
		bool maybe = b->stage == STAGE_CHECKPOINT || end <= b->written;
		ledger_complete_locked(l, n, maybe ? IG_ERR_UNKNOWN : absent_status);
		n = next;
	}
	b->head = NULL;
	b->count = 0;
}

/* Format 2's tree (SHA-256 leaves of whole frames) over every frame of the
 * log and then the first `batch_len` bytes of frames encoded ahead of a
 * format record in the same batch: what the accumulator becomes at that
 * record (docs/LEDGER.md 7.12). Reads the whole log once; only `iotguard
 * upgrade` writes a format record. */
static int format_switch_acc(ig_ledger *l, const uint8_t *batch, size_t batch_len, ig_merkle_acc *acc)
{
	ig_merkle_init_hash(acc, IG_MERKLE_SHA256);
	const uint8_t *map = NULL;
	if (l->log_end > 0) {
		map = mmap(NULL, (size_t)l->log_end, PROT_READ, MAP_SHARED, l->log_fd, 0);
		if (map == MAP_FAILED) {
			ig_log(IG_LOG_ERR, "ledger %s: cannot map %s to move it to format 2: %s", l->dir, IG_LEDGER_LOG,
			       strerror(errno));
			return IG_ERR_IO;
		}
	}
	const struct {
		const uint8_t *p;
		size_t len;
	} parts[2] = {{map, (size_t)l->log_end}, {batch, batch_len}};
	int rc = IG_OK;
	for (int k = 0; k < 2 && rc == IG_OK; k++)
		for (size_t off = 0; off + 8 <= parts[k].len;) {
			uint32_t flen = ig_get_u32(parts[k].p + off + 4);
			if (flen < IG_REC_OVERHEAD || flen > IG_FORMAT_V2_MAX_FRAME || flen > parts[k].len - off) {
				ig_log(IG_LOG_ERR, "ledger %s: record %" PRIu64 " cannot be a format-2 entry (%" PRIu32 " bytes)",
				       l->dir, acc->size, flen);
				rc = IG_ERR_RANGE;
				break;
			}
			uint8_t leaf[IG_HASH_BYTES];
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, parts[k].p + off, flen);
			ig_merkle_push(acc, leaf);
			off += flen;
		}
	if (map)
		munmap((void *)map, (size_t)l->log_end);
	return rc;
}

int ledger_encode_node(ig_ledger *l, append_node *n, uint64_t index, uint64_t ts,
                       const uint8_t prev[IG_HASH_BYTES], size_t pos)
{
	ig_record *rec = &n->rec;
	memset(rec, 0, sizeof *rec);
	rec->index = index;
	rec->ts_ms = ts;
	rec->type = n->type;
	memcpy(rec->prev_hash, prev, IG_HASH_BYTES);
	rec->body = n->body;
	rec->body_len = n->body_len;
	return ig_record_encode(l->wbuf + pos, l->wcap - pos, rec);
}

/* Encodes the batch into one buffer and fixes its indexes, timestamp and
 * hashes. Runs on the writer thread without mu. */
static int encode_batch(ig_ledger *l, write_batch *b)
{
	size_t need;
	if (ledger_wbuf_fit(l, b->head, &need) != IG_OK) {
		ig_log(IG_LOG_ERR, "ledger %s: out of memory for a write batch of %zu bytes; appends are refused", l->dir,
		       need);
		return IG_ERR_NOMEM;
	}

	if (l->tiles && b->count > l->tcap) {
		size_t cap = b->count;
		void *a = realloc(l->tleaf, cap * sizeof *l->tleaf), *e = NULL, *n = NULL;
		if (a)
			l->tleaf = a;
		if (a && (e = realloc(l->tentry, cap * sizeof *l->tentry)) != NULL)
			l->tentry = e;
		if (e && (n = realloc(l->tlen, cap * sizeof *l->tlen)) != NULL)
			l->tlen = n;
		if (!n) {
			ig_log(IG_LOG_ERR, "ledger %s: out of memory for a batch's tiles; appends are refused", l->dir);
			return IG_ERR_NOMEM;
		}
		l->tcap = cap;
	}

	uint64_t ts = ledger_batch_ts(l);
	l->acc_tmp = l->acc;
	uint64_t index = l->acc.size;
	const uint8_t *prev = l->head;
	size_t pos = 0, k = 0;
	for (append_node *n = b->head; n; n = n->next, k++) {
		ig_record *rec = &n->rec;
		int len = ledger_encode_node(l, n, index++, ts, prev, pos);
		if (len < 0) {
			ig_log(IG_LOG_ERR, "ledger %s: cannot encode record %" PRIu64 " (code %d); appends are refused",
			       l->dir, rec->index, len);
			return IG_ERR_INVAL;
		}
		if (rec->type == IG_REC_FORMAT && l->acc_tmp.hash != IG_MERKLE_SHA256) {
			int rc = format_switch_acc(l, l->wbuf, pos, &l->acc_tmp);
			if (rc != IG_OK)
				return rc;
		}
		if (l->acc_tmp.hash == IG_MERKLE_SHA256) {
			uint8_t leaf[IG_HASH_BYTES];
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, l->wbuf + pos, (size_t)len);
			ig_merkle_push(&l->acc_tmp, leaf);
			if (l->tiles) {
				memcpy(l->tleaf[k], leaf, IG_HASH_BYTES);
				l->tlen[k] = (size_t)len;
			}
		} else {
			ig_merkle_push(&l->acc_tmp, rec->hash);
		}
		pos += (size_t)len;
		prev = rec->hash;
	}
	b->bytes = pos;
	b->ts = ts;
	b->written = 0;
	b->stage = STAGE_WRITE;
	return IG_OK;
}

/* Tiles are derived data, written after the batch is durable and before
 * its checkpoint, so a published checkpoint never names a missing tile. A
 * failure costs the tiles, never the batch: they stop, and the next open
 * rebuilds them. */
static void tiles_stop(ig_ledger *l, const ig_error *e)
{
	ig_log(IG_LOG_ERR, "ledger %s: writing its tiles failed (%s); the ledger goes on without them, and they are "
	       "rebuilt when it is next opened",
	       l->dir, e->msg);
	ig_tiles_close(l->tiles);
	l->tiles = NULL;
}

static void tiles_append_batch(ig_ledger *l, const write_batch *b)
{
	if (!l->tiles || b->count == 0)
		return;
	size_t pos = 0;
	for (size_t k = 0; k < b->count; k++) {
		l->tentry[k] = l->wbuf + pos;
		pos += l->tlen[k];
	}
	ig_error e = {0};
	if (ig_tiles_append(l->tiles, (const uint8_t(*)[IG_HASH_BYTES])l->tleaf, l->tentry, l->tlen, b->count, &e) !=
	    IG_OK)
		tiles_stop(l, &e);
}

/* Writes the batch to the log and makes it durable with one fdatasync. */
static run_result write_log(ig_ledger *l, write_batch *b)
{
	size_t done = 0;
	int rc = ledger_pwrite_all(&l->io, IG_LEDGER_LOG, l->log_fd, l->wbuf, b->bytes, l->log_end, &done);
	int e = errno;
	if (done > b->written)
		b->written = done;
	if (rc != 0) {
		if (ledger_errno_is_full(e))
			return RUN_NOSPACE;
		ig_log(IG_LOG_ERR, "ledger %s: writing %s failed: %s; appends are refused until the disk is fixed "
		       "and the ledger reopened",
		       l->dir, IG_LEDGER_LOG, strerror(e));
		return RUN_FAILED;
	}
	/* Never retried: after a failed fdatasync the kernel may have dropped the
	 * dirty pages, and a second call could report success for lost data. */
	uint64_t sync_start = ig_mono_us();
	if (l->io.sync(l->io.ctx, IG_LEDGER_LOG, l->log_fd) != 0) {
		e = errno;
		ig_log(IG_LOG_ERR, "ledger %s: fdatasync of %s failed: %s%s; appends are refused until the disk is "
		       "fixed and the ledger reopened (a failed fsync is never retried)",
		       l->dir, IG_LEDGER_LOG, strerror(e), ledger_errno_is_full(e) ? " (the disk is full)" : "");
		return RUN_FAILED;
	}
	uint64_t took = ig_mono_us() - sync_start;
	tiles_append_batch(l, b);
	l->fsync_avg_us = l->fsync_avg_us ? (7 * l->fsync_avg_us + took) / 8 : took;
	l->gather_us = l->fsync_avg_us / 2 < MAX_GATHER_US ? l->fsync_avg_us / 2 : MAX_GATHER_US;
	l->acc = l->acc_tmp;
	if (l->acc.hash == IG_MERKLE_SHA256)
		l->version = IG_FORMAT_V2; /* a format record was in the batch, or already was */
	l->log_end += b->bytes;
	l->last_ts = b->ts;
	b->stage = STAGE_CHECKPOINT;
	return RUN_OK;
}

/* Signs and writes a checkpoint covering every durable record. */
static run_result write_batch_checkpoint(ig_ledger *l, write_batch *b)
{
	memset(&b->cp, 0, sizeof b->cp);
	memcpy(b->cp.origin, l->origin, sizeof b->cp.origin);
	b->cp.size = l->acc.size;
	ig_merkle_root(&l->acc, b->cp.root);
	ig_error e = {0};
	int len = ig_checkpoint_sign(b->cp_text, sizeof b->cp_text, &b->cp, l->ch_sk);
	int rc = len < 0 ? ig_error_set(&e, len, "cannot sign the checkpoint (code %d)", len)
	                 : ledger_write_checkpoint_file(&l->io, l->dir_fd, l->dir, b->cp_text, (size_t)len, &e);
	if (rc == IG_ERR_NOSPACE)
		return RUN_NOSPACE;
	if (rc != IG_OK) {
		ig_log(IG_LOG_ERR, "ledger %s: %s; appends are refused until the disk is fixed and the ledger reopened",
		       l->dir, e.msg);
		return RUN_FAILED;
	}
	b->cp_len = (size_t)len;
	ig_error te = {0};
	if (l->tiles && ig_tiles_publish(l->tiles, b->cp_text, b->cp_len, &te) != IG_OK)
		tiles_stop(l, &te);
	return RUN_OK;
}

/* Runs (or resumes) a batch: log write + fdatasync, then the checkpoint.
 * On the writer thread without mu. */
static run_result run_batch(ig_ledger *l, write_batch *b)
{
	if (b->stage == STAGE_WRITE) {
		run_result r = write_log(l, b);
		if (r != RUN_OK)
			return r;
	}
	return write_batch_checkpoint(l, b);
}

/* The batch and a checkpoint covering it are durable: publish both. */
static void finish_batch_locked(ig_ledger *l, write_batch *b)
{
	memcpy(l->cp_text, b->cp_text, b->cp_len + 1);
	l->cp_len = b->cp_len;
	l->cp = b->cp;
	atomic_store(&l->checkpoint_changed, true);
	l->event_pending = true;

	uint64_t now = ig_mono_us();
	for (append_node *n = b->head; n;) {
		append_node *next = n->next;
		ledger_count_latency_locked(l, n, now, n == b->head);
		if (!next)
			memcpy(l->head, n->rec.hash, IG_HASH_BYTES);
		ledger_complete_locked(l, n, IG_OK);
		n = next;
	}
	atomic_store(&l->height, l->acc.size);
	if (b->head) {
		l->batches++;
		l->records_committed += b->count;
	}
	b->head = NULL;
	b->count = 0;
}

static void wait_until_locked(ig_ledger *l, uint64_t deadline_us)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000u),
	                      .tv_nsec = (long)(deadline_us % 1000000u) * 1000};
	pthread_cond_timedwait(&l->work_cond, &l->mu, &ts);
}

/* Runs one attempt at *b without mu and settles it. Returns true when the
 * batch is finished (acknowledged or failed), false while it waits for
 * disk space. */
static bool attempt_batch_locked(ig_ledger *l, write_batch *b, uint64_t *retry_us, uint64_t *retry_at)
{
	l->in_flight = true;
	pthread_mutex_unlock(&l->mu);
	run_result r = run_batch(l, b);
	pthread_mutex_lock(&l->mu);
	if (r == RUN_NOSPACE) {
		if (!l->nospace) {
			l->nospace_events++;
			ig_log(IG_LOG_ERR,
			       "ledger %s: the disk is full (ENOSPC) writing %s; %zu records wait and are retried until "
			       "there is room, new records are refused meanwhile: free space on the filesystem holding "
			       "%s (no restart is needed)",
			       l->dir, b->stage == STAGE_WRITE ? IG_LEDGER_LOG : IG_LEDGER_CHECKPOINT, b->count, l->dir);
		}
		l->nospace = true;
		/* Records behind the held batch were never written: say so now
		 * rather than keep their senders waiting on the disk. */
		ledger_fail_queue_locked(l, IG_ERR_NOSPACE);
		*retry_at = ig_mono_us() + *retry_us;
		*retry_us = *retry_us * 2 > NOSPACE_RETRY_MAX_US ? NOSPACE_RETRY_MAX_US : *retry_us * 2;
		ledger_notify_locked(l);
		return false;
	}
	if (l->nospace) {
		l->nospace = false;
		if (r == RUN_OK)
			ig_log(IG_LOG_WARN, "ledger %s: there is room on the disk again; the held records are durable and "
			       "new records are accepted",
			       l->dir);
	}
	*retry_us = NOSPACE_RETRY_MIN_US;
	l->in_flight = false;
	if (r == RUN_OK) {
		finish_batch_locked(l, b);
	} else {
		give_up_batch_locked(l, b, IG_ERR_IO);
		enter_failed_locked(l);
	}
	ledger_notify_locked(l);
	return true;
}

/* Writes the cosigned checkpoint a witness quorum produced over
 * DIR/tlog/checkpoint, but only while the tiles still end at its size: a
 * newer batch's own checkpoint is never replaced by an older tree, and the
 * next batch replaces this one (its cosignatures then come with the next
 * quorum). The writer owns the tiles, so the check cannot race a batch. */
void ledger_publish_cosigned_locked(ig_ledger *l)
{
	char text[IG_CHECKPOINT_MAX + 1];
	size_t len = l->cosigned_len;
	uint64_t size = l->cosigned_size;
	memcpy(text, l->cosigned_text, len);
	l->cosigned_pending = false;
	pthread_mutex_unlock(&l->mu);
	ig_error e = {0};
	if (l->tiles && ig_tiles_size(l->tiles) == size && ig_tiles_publish(l->tiles, text, len, &e) != IG_OK)
		ig_log(IG_LOG_WARN, "ledger %s: the cosigned checkpoint of size %" PRIu64 " was not written to the "
		       "tiles: %s (the head on MQTT carries it)", l->dir, size, e.msg);
	pthread_mutex_lock(&l->mu);
}

static void *writer_main(void *arg)
{
	ig_ledger *l = arg;
	uint64_t idle_deadline = 0;   /* checkpoint if still idle at this time */
	uint64_t gather_until = 0;    /* wait for returning submitters until this */
	size_t last_batch = 0;
	write_batch *b = calloc(1, sizeof *b);
	bool held = false;            /* *b waits for disk space */
	uint64_t retry_us = NOSPACE_RETRY_MIN_US, retry_at = 0;
	uint64_t exit_at = 0;         /* exit if still idle at this time */

	pthread_mutex_lock(&l->mu);
	if (!b) {
		ig_log(IG_LOG_ERR, "ledger %s: out of memory starting the writer; appends are refused", l->dir);
		enter_failed_locked(l);
		ledger_notify_locked(l);
	}
	for (;;) {
		if (l->queue_head || held || (l->acc.size > l->cp.size && !l->failed))
			exit_at = 0;
		if (l->wake_n) {
			pthread_mutex_unlock(&l->mu);
			wake_waiters(l);
			pthread_mutex_lock(&l->mu);
		}
		if (held) {
			if (l->stopping) {
				ig_log(IG_LOG_ERR, "ledger %s: closing while the disk is full; %zu records were not "
				       "acknowledged (any written whole are kept by the next open)",
				       l->dir, b->count);
				give_up_batch_locked(l, b, IG_ERR_NOSPACE);
				held = false;
				l->in_flight = false;
				l->nospace = false;
				l->failed = true;
				ledger_notify_locked(l);
				continue;
			}
			if (ig_mono_us() < retry_at) {
				wait_until_locked(l, retry_at);
				continue;
			}
			held = !attempt_batch_locked(l, b, &retry_us, &retry_at);
			continue;
		}
		if (l->queue_head) {
			idle_deadline = 0;
			if (l->failed || !b) {
				enter_failed_locked(l);
				ledger_notify_locked(l);
				continue;
			}
			/* The submitters of the batch just committed are usually about to
			 * submit again; starting the next fdatasync with half of them
			 * would split them into two alternating half-size batches. So
			 * wait a fraction of an fdatasync for the queue to reach the last
			 * batch's size. A lone or sporadic submitter never waits. */
			if (gather_until && l->queued < last_batch && !l->stopping && l->sync_waiters == 0 &&
			    ig_mono_us() < gather_until) {
				l->wake_writer_at = last_batch;
				wait_until_locked(l, gather_until);
				l->wake_writer_at = 0;
				continue;
			}
			gather_until = 0;
			/* Group commit: everything queued (up to the limits) goes in one
			 * write, one fdatasync and one checkpoint. */
			size_t count;
			append_node *head = ledger_take_batch_locked(l, &count);
			memset(b, 0, offsetof(write_batch, cp_text));
			b->head = head;
			b->count = count;
			l->in_flight = true;
			pthread_mutex_unlock(&l->mu);
			int rc = encode_batch(l, b);
			pthread_mutex_lock(&l->mu);
			if (rc != IG_OK) {
				l->in_flight = false;
				ledger_complete_list_locked(l, b->head, rc);
				b->head = NULL;
				enter_failed_locked(l);
				ledger_notify_locked(l);
				continue;
			}
			held = !attempt_batch_locked(l, b, &retry_us, &retry_at);
			if (!held && !l->failed) {
				last_batch = count;
				gather_until = ig_mono_us() + l->gather_us;
			}
			continue;
		}
		if (l->cosigned_pending) {
			ledger_publish_cosigned_locked(l);
			continue;
		}
		/* Records in the log beyond the checkpoint (a crash between a batch's
		 * fdatasync and its checkpoint) were never acknowledged; once idle,
		 * sign them so a later cut of the log is detected. gather_until
		 * stays: the first returning submitter wakes us and the gather
		 * above then waits for the rest. */
		l->wake_writer_at = 1;
		if (!l->failed && b && l->acc.size > l->cp.size) {
			uint64_t now = ig_mono_us();
			if (!l->stopping && l->sync_waiters == 0) {
				if (idle_deadline == 0)
					idle_deadline = now + IDLE_GRACE_US;
				if (now < idle_deadline) {
					wait_until_locked(l, idle_deadline);
					l->wake_writer_at = 0;
					continue;
				}
			}
			idle_deadline = 0;
			l->wake_writer_at = 0;
			memset(b, 0, offsetof(write_batch, cp_text));
			b->stage = STAGE_CHECKPOINT;
			held = !attempt_batch_locked(l, b, &retry_us, &retry_at);
			continue;
		}
		idle_deadline = 0;
		if (l->stopping)
			break;
		/* Nothing to do: wait for work, and exit if none comes; enqueue
		 * joins this thread and starts another. Only here is the writer's
		 * local state (gather, held batch) empty, so nothing is lost. */
		if (exit_at == 0)
			exit_at = ig_mono_us() + WRITER_IDLE_EXIT_US;
		if (ig_mono_us() < exit_at)
			wait_until_locked(l, exit_at);
		else if (l->sync_waiters > 0)
			pthread_cond_wait(&l->work_cond, &l->mu);
		else {
			l->wake_writer_at = 0;
			l->thread_running = false;
			break;
		}
		l->wake_writer_at = 0;
		continue;
	}
	pthread_mutex_unlock(&l->mu);
	free(b);
	return NULL;
}

/* ---- starting and stopping -------------------------------------------------- */

/* Under mu: makes sure a writer runs, joining one that exited when idle.
 * The join cannot wait on mu: an exiting writer has already released it. */
static int writer_ensure_locked(ig_ledger *l)
{
	if (l->thread_running)
		return 0;
	if (l->thread_started) {
		pthread_join(l->thread, NULL);
		l->thread_started = false;
	}
	int rc = pthread_create(&l->thread, NULL, writer_main, l);
	if (rc != 0)
		return rc;
	l->thread_started = true;
	l->thread_running = true;
	return 0;
}

int ledger_writer_start(ig_ledger *l, ig_error *err)
{
	l->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->event_fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot create an eventfd: %s", strerror(errno));
	/* Sealed: no key to sign with, so no thread (it would sign a checkpoint
	 * for records past the last one at once); ig_ledger_unseal starts it.
	 * The eventfd exists already, so a caller's poll loop keeps one fd. */
	if (atomic_load(&l->sealed))
		return IG_OK;
	/* Started at open even with nothing queued: it signs any records the
	 * scan found beyond the checkpoint, then exits when idle. */
	pthread_mutex_lock(&l->mu);
	int rc = writer_ensure_locked(l);
	pthread_mutex_unlock(&l->mu);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot start the ledger writer thread: %s", strerror(rc));
	return IG_OK;
}

int ledger_writer_unseal(ig_ledger *l, const uint8_t sk[IG_SK_BYTES], ig_error *err)
{
	pthread_mutex_lock(&l->mu);
	if (l->stopping) {
		pthread_mutex_unlock(&l->mu);
		return ig_error_set(err, IG_ERR_CLOSED, "ledger %s is closing; it was not unsealed", l->dir);
	}
	/* No thread runs while sealed, so nothing reads ch_sk yet; the thread
	 * created below sees it (pthread_create orders the writes before it). */
	memcpy(l->ch_sk, sk, IG_SK_BYTES);
	atomic_store(&l->sealed, false);
	if (l->pg) {
		/* Shared mode's thread already runs (it follows while sealed); it
		 * reads ch_sk under mu, only for a batch submitted after this. */
		pthread_mutex_unlock(&l->mu);
		return IG_OK;
	}
	int rc = writer_ensure_locked(l);
	if (rc != 0) {
		atomic_store(&l->sealed, true);
		sodium_memzero(l->ch_sk, sizeof l->ch_sk);
	}
	pthread_mutex_unlock(&l->mu);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "ledger %s: cannot start the writer thread: %s; it stays sealed, "
		                    "retry the unseal",
		                    l->dir, strerror(rc));
	return IG_OK;
}

void ledger_writer_stop(ig_ledger *l)
{
	pthread_mutex_lock(&l->mu);
	l->stopping = true;   /* from here on enqueue starts no writer */
	pthread_cond_signal(&l->work_cond);
	bool started = l->thread_started;
	pthread_t thread = l->thread;
	pthread_mutex_unlock(&l->mu);
	if (!started)
		return;
	pthread_join(thread, NULL);
	pthread_mutex_lock(&l->mu);
	l->thread_started = false;
	l->thread_running = false;
	pthread_mutex_unlock(&l->mu);
	(void)ig_ledger_poll(l);
}

/* ---- appending ----------------------------------------------------------------- */

append_node *ledger_node_new(uint16_t type, const uint8_t *body, size_t len)
{
	append_node *n = malloc(sizeof *n + len);
	if (!n)
		return NULL;
	memset(n, 0, sizeof *n);
	n->type = type;
	n->body_len = (uint32_t)len;
	if (len)
		memcpy(n->body, body, len);
	n->submit_us = ig_mono_us();
	return n;
}

int ig_ledger_publish_cosigned(ig_ledger *l, const char *text, size_t len, uint64_t size)
{
	if (!l || !text || len == 0 || len > IG_CHECKPOINT_MAX)
		return IG_ERR_RANGE;
	if (l->pg)
		return ledger_pg_publish_cosigned(l, text, len, size);
	pthread_mutex_lock(&l->mu);
	int rc = IG_OK;
	if (l->stopping || l->failed)
		rc = IG_ERR_CLOSED;
	else if (!atomic_load(&l->sealed) && writer_ensure_locked(l) != 0)
		rc = IG_ERR_NOMEM;   /* sealed: kept for the thread ig_ledger_unseal starts */
	if (rc == IG_OK) {
		ledger_hold_cosigned_locked(l, text, len, size);
		pthread_cond_signal(&l->work_cond);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void ledger_queue_push_locked(ig_ledger *l, append_node *n)
{
	ledger_list_push(&l->queue_head, &l->queue_tail, n);
	l->pending++;
	l->queued++;
}

/* Queues n; returns IG_OK or why not (n is then still the caller's). */
static int enqueue(ig_ledger *l, append_node *n)
{
	pthread_mutex_lock(&l->mu);
	if (l->failed) {
		pthread_mutex_unlock(&l->mu);
		return IG_ERR_IO;
	}
	if (l->nospace) {
		pthread_mutex_unlock(&l->mu);
		return IG_ERR_NOSPACE;
	}
	if (l->stopping) {
		pthread_mutex_unlock(&l->mu);
		return IG_ERR_CLOSED;
	}
	if (writer_ensure_locked(l) != 0) {
		pthread_mutex_unlock(&l->mu);
		return IG_ERR_NOMEM;   /* no thread: the system is out of resources */
	}
	ledger_queue_push_locked(l, n);
	/* Only wake the writer when it waits for work, or for this many records. */
	if (l->wake_writer_at && l->queued >= l->wake_writer_at)
		pthread_cond_signal(&l->work_cond);
	pthread_mutex_unlock(&l->mu);
	return IG_OK;
}

static int check_submit(const ig_ledger *l, uint16_t type, const uint8_t *body, size_t len)
{
	if (!l->writer)
		return IG_ERR_STATE;
	if (atomic_load(&l->sealed))
		return IG_ERR_SEALED;
	if (type == IG_REC_FORMAT)
		return IG_ERR_INVAL; /* only ig_ledger_upgrade writes one */
	if (len > ledger_max_frame(l->version) - IG_REC_OVERHEAD)
		return IG_ERR_RANGE;
	if (len > 0 && !body)
		return IG_ERR_INVAL;
	return IG_OK;
}

int ig_ledger_submit(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_append_done_fn done, void *ctx)
{
	int rc = check_submit(l, type, body, len);
	if (rc != IG_OK)
		return rc;
	if (l->pg)
		return ledger_pg_submit(l, type, body, len, done, ctx);
	append_node *n = ledger_node_new(type, body, len);
	if (!n)
		return IG_ERR_NOMEM;
	n->done = done;
	n->ctx = ctx;
	rc = enqueue(l, n);
	if (rc != IG_OK)
		free(n);
	return rc;
}

append_node *ledger_take_done(ig_ledger *l)
{
	/* A plain load first: this runs on every pass of the broker's loop, and
	 * an exchange is a locked instruction even when nothing happened. */
	if (!atomic_load_explicit(&l->poll_work, memory_order_relaxed) || !atomic_exchange(&l->poll_work, false))
		return NULL;
	uint64_t count;
	/* Drain before taking the list: a completion added after the take
	 * re-arms the fd, so no wakeup is lost. */
	ssize_t r = read(l->event_fd, &count, sizeof count);
	(void)r;
	pthread_mutex_lock(&l->mu);
	append_node *n = l->done_head;
	l->done_head = l->done_tail = NULL;
	pthread_mutex_unlock(&l->mu);
	return n;
}

void ledger_run_done(append_node *n)
{
	if (n->done)
		n->done(n->ctx, n->status, ledger_status_has_record(n->status) ? &n->rec : NULL);
	free(n);
}

int ig_ledger_poll(ig_ledger *l)
{
	if (!l->writer)
		return 0;
	if (l->pg)
		return ledger_pg_poll(l);
	append_node *n = ledger_take_done(l);
	int ran = 0;
	while (n) {
		append_node *next = n->next;
		ledger_run_done(n);
		ran++;
		n = next;
	}
	return ran;
}

int ig_ledger_event_fd(const ig_ledger *l) { return l->event_fd; }

bool ig_ledger_checkpoint_changed(ig_ledger *l)
{
	return atomic_load_explicit(&l->checkpoint_changed, memory_order_relaxed) &&
	       atomic_exchange(&l->checkpoint_changed, false);
}

/* Says why a record was refused or not written, and what to do (index:
 * the record's, for IG_ERR_UNKNOWN). */
static int refusal_error(ig_ledger *l, int rc, uint64_t index, ig_error *err)
{
	switch (rc) {
	case IG_ERR_UNKNOWN:
		return ig_error_set(err, rc, "ledger %s: a write or fsync failed after record %" PRIu64 " was handed to the "
		                    "disk, so it may or may not be in the ledger (check with `iotguard verify` after fixing "
		                    "the disk and reopening); the ledger refuses appends until reopened",
		                    l->dir, index);
	case IG_ERR_CLOSED:
		return ig_error_set(err, rc, "ledger %s is closing; the record was not appended", l->dir);
	case IG_ERR_NOSPACE:
		return ig_error_set(err, rc, "ledger %s: the disk is full (ENOSPC); the record was not written: free space "
		                    "on the filesystem holding %s and retry (the ledger resumes by itself, no restart "
		                    "needed)",
		                    l->dir, l->dir);
	case IG_ERR_NOMEM:
		return ig_error_set(err, rc, "ledger %s: out of memory; the record was not written", l->dir);
	case IG_ERR_SEALED:
		return ig_error_set(err, rc, "ledger %s is sealed (no %s, only %s); the record was not written: unseal "
		                    "it first (k custody holders must connect to the broker)",
		                    l->dir, IG_LEDGER_KEY, IG_CUSTODY_SEALED_FILE);
	default:
		return ig_error_set(err, rc, "ledger %s: an earlier write or fsync failed, so it refuses appends and "
		                    "this record was not written; fix the disk (see the log) and reopen the ledger",
		                    l->dir);
	}
}

static int append_wait(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len, ig_record *rec_out,
                       ig_error *err);

int ig_ledger_append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_record *rec_out, ig_error *err)
{
	int rc = check_submit(l, type, body, len);
	if (rc == IG_ERR_STATE)
		return ig_error_set(err, rc, "ledger %s is open read-only; appends need a writer open", l->dir);
	if (rc == IG_ERR_SEALED)
		return refusal_error(l, rc, 0, err);
	if (rc == IG_ERR_RANGE)
		return ig_error_set(err, rc, "record body of %zu bytes exceeds the %" PRIu32 "-byte limit of ledger format %u",
		                    len, ledger_max_frame(l->version) - IG_REC_OVERHEAD, l->version);
	if (rc != IG_OK)
		return ig_error_set(err, rc, type == IG_REC_FORMAT ? "ig_ledger_append: format records are written by "
		                    "ig_ledger_upgrade only" : "ig_ledger_append: missing body");
	if (l->pg)
		return ledger_pg_append(l, type, body, len, rec_out, err);
	return append_wait(l, type, body, len, rec_out, err);
}

int ledger_append_wait(ig_ledger *l, append_node *n, ledger_enqueue_fn enqueue, ledger_explain_fn explain,
                       ig_record *rec_out, ig_error *err)
{
	append_waiter w;
	memset(&w, 0, sizeof w);
	if (sem_init(&w.done, 0, 0) != 0) {
		free(n);
		return ig_error_set(err, IG_ERR_NOMEM, "cannot create a semaphore: %s", strerror(errno));
	}
	n->waiter = &w;
	int rc = enqueue(l, n); /* from here on the thread owns (and frees) n */
	if (rc != IG_OK) {
		free(n);
		sem_destroy(&w.done);
		return explain(l, rc, 0, err);
	}
	while (sem_wait(&w.done) != 0 && errno == EINTR)
		;
	if (w.wake_a)
		sem_post(&w.wake_a->done);
	if (w.wake_b)
		sem_post(&w.wake_b->done);
	sem_destroy(&w.done);
	if (w.status != IG_OK)
		return explain(l, w.status, w.rec.index, err);
	if (rec_out)
		*rec_out = w.rec;
	return IG_OK;
}

/* Appends one record and waits until it is durable (or not written). */
static int append_wait(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len, ig_record *rec_out,
                       ig_error *err)
{
	append_node *n = ledger_node_new(type, body, len);
	if (!n)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory appending to ledger %s", l->dir);
	return ledger_append_wait(l, n, enqueue, refusal_error, rec_out, err);
}

int ig_ledger_sync(ig_ledger *l, ig_error *err)
{
	if (!l->writer)
		return ig_error_set(err, IG_ERR_STATE, "ledger %s is open read-only; nothing to sync", l->dir);
	if (atomic_load(&l->sealed))
		return ig_error_set(err, IG_ERR_SEALED, "ledger %s is sealed: nothing can be signed until the custody "
		                    "holders unseal its key", l->dir);
	if (l->pg)
		return ledger_pg_sync(l, err);
	pthread_mutex_lock(&l->mu);
	l->sync_waiters++;
	pthread_cond_signal(&l->work_cond);
	while (!l->failed && !l->nospace && (l->queue_head || l->in_flight || atomic_load(&l->height) > l->cp.size))
		pthread_cond_wait(&l->done_cond, &l->mu);
	l->sync_waiters--;
	bool failed = l->failed, nospace = l->nospace;
	pthread_mutex_unlock(&l->mu);
	if (nospace)
		return ig_error_set(err, IG_ERR_NOSPACE, "ledger %s: the disk is full (ENOSPC); records wait to be written: "
		                    "free space on the filesystem holding %s (no restart needed)",
		                    l->dir, l->dir);
	if (failed)
		return ig_error_set(err, IG_ERR_IO, "ledger %s: a write or fsync failed; records may not be durable, "
		                    "fix the disk and reopen it",
		                    l->dir);
	return IG_OK;
}

void ig_ledger_get_stats(ig_ledger *l, ig_ledger_stats *st)
{
	/* Both modes keep these figures in l. */
	pthread_mutex_lock(&l->mu);
	st->height = atomic_load(&l->height);
	st->pending = l->pending;
	st->batches = l->batches;
	st->records_committed = l->records_committed;
	st->last_commit_us = l->last_commit_us;
	st->max_commit_us = l->max_commit_us;
	st->avg_commit_us = l->records_committed ? l->latency_sum_us / l->records_committed : 0;
	st->checkpoint_size = l->cp.size;
	pthread_mutex_unlock(&l->mu);
}

int ig_ledger_upgrade(ig_ledger *l, const char *by, ig_record *rec_out, ig_error *err)
{
	if (!l->writer)
		return ig_error_set(err, IG_ERR_STATE, "ledger %s is open read-only; an upgrade needs a writer open", l->dir);
	if (l->pg)
		return ig_error_set(err, IG_ERR_STATE, "the shared ledger in PostgreSQL cannot be upgraded in place; upgrade "
		                    "the file ledger before migrating (iotguard upgrade, then iotguard migrate)");
	if (atomic_load(&l->sealed))
		return ig_error_set(err, IG_ERR_SEALED, "ledger %s is sealed: an upgrade appends a record, which needs "
		                    "the key; unseal it first", l->dir);
	if (l->version != IG_FORMAT_V1)
		return ig_error_set(err, IG_ERR_STATE, "ledger %s is already format %u; there is nothing to upgrade", l->dir,
		                    l->version);
	ig_format_rec f = {.version = IG_FORMAT_V2};
	if (!by || strlen(by) < 1 || strlen(by) > IG_BY_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_upgrade: `by` must be 1..%d bytes", IG_BY_MAX);
	memcpy(f.by, by, strlen(by) + 1);
	uint8_t body[IG_BY_MAX + 16];
	int blen = ig_record_format_encode(body, sizeof body, &f);
	if (blen < 0)
		return ig_error_set(err, blen, "cannot encode the format record");
	/* Everything queued is written first, so the log read below is the
	 * whole log; then a dry run of the writer's own computation refuses a
	 * log with a record too large for format 2 before anything changes. */
	int rc = ig_ledger_sync(l, err);
	if (rc != IG_OK)
		return rc;
	ig_merkle_acc acc;
	rc = format_switch_acc(l, NULL, 0, &acc);
	if (rc == IG_ERR_RANGE)
		return ig_error_set(err, rc, "ledger %s: record %" PRIu64 " is larger than the %d bytes format 2 allows a "
		                    "record (one tlog entry), so this ledger must stay format 1",
		                    l->dir, acc.size, IG_FORMAT_V2_MAX_FRAME);
	if (rc != IG_OK)
		return ig_error_set(err, rc, "ledger %s: cannot read %s to move it to format 2 (see the log)", l->dir,
		                    IG_LEDGER_LOG);
	return append_wait(l, IG_REC_FORMAT, body, (size_t)blen, rec_out, err);
}
