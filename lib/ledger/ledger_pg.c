/*
 * ledger_pg.c: the ledger object in shared mode, its records in PostgreSQL
 * (docs/LEDGER.md 16).
 *
 * Why this exists: several brokers must agree on one ledger, and the plugin
 * and its services must not care whether the ledger is a file or a table.
 * So the same ig_ledger answers the same API (submit/poll, facts, sync,
 * stats); only its thread differs. One thread per ledger owns one libpq
 * connection. It appends (group commit, like the file writer) in one
 * transaction that locks the head row, catches up with what other brokers
 * appended, re-checks the batch against a shadow copy of the state that
 * includes every record any broker appended (a coin redeemed elsewhere is now
 * refused: IG_ERR_CONFLICT), inserts, signs the new checkpoint, moves the head
 * and commits; only then are the records acknowledged. Between appends it
 * follows: LISTEN for new heads (and look every poll_ms anyway), fetch the
 * new frames, check frame, index, chain, hash and the head's signed
 * checkpoint against the Merkle root, and hand them to ig_ledger_poll as
 * their own entries, in index order with this broker's completions.
 *
 * The broker's loop never waits on PostgreSQL: submit only queues (or
 * refuses at once with IG_ERR_UNAVAILABLE while the database is unreachable)
 * and poll only runs what the thread finished. The framing, hashing, Merkle
 * tree, checkpoint signing, full check at open, key loading and tiles are
 * the file ledger's own code (ledger.c, ledger_scan.c, ledger_tree.c).
 *
 * Failure rules. A COMMIT whose outcome is unknown (the connection broke
 * during it) is resolved by reconnecting and looking at the rows at the
 * batch's indexes: our hashes there mean committed. Anything that does not
 * check out while following (a bad frame, a broken chain, a checkpoint that
 * does not sign the root, a head below what this broker saw) is tampering or
 * lost acknowledged records: the ledger then refuses appends until reopened
 * and keeps answering reads from memory.
 */
#include "ig_checkpoint.h"
#include "ig_ledger.h"
#include "ig_merkle.h"
#include "ig_pg.h"
#include "ig_record.h"
#include "ig_tiles.h"
#include "ledger_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BATCH 4096
#define DEFAULT_BACKOFF_MIN_MS 100
#define DEFAULT_BACKOFF_MAX_MS 5000
#define DEFAULT_POLL_MS 1000
/* How long the thread tries to learn whether a COMMIT that lost its
 * connection happened, before it answers "outcome unknown". */
#define RESOLVE_MAX_US 15000000u

/* The queue, the list ig_ledger_poll runs (own completions and followed
 * records, as append_node entries), blocking appends and the stats are the
 * file writer's (ledger_writer.c, in l). */

struct ledger_pg {
	char *dsn;
	char broker[IG_PG_BROKER_MAX + 1];
	char where[320];             /* "PostgreSQL at <dsn, password masked>" for messages */
	ig_record_fn on_follow;
	void *follow_ctx;
	int (*shadow_apply)(void *shadow_ctx, const ig_record *rec, ig_error *err);
	void (*shadow_reset)(void *shadow_ctx);
	void *shadow_ctx;
	uint32_t backoff_min_ms, backoff_max_ms, poll_ms;

	ig_pg *pg;                   /* the thread's (open's before it starts); NULL while disconnected */
	int wake_fd;                 /* submit/close/publish wake the thread out of poll() */
	pthread_t thread;
	bool thread_started;

	/* Guarded by l->mu. */
	bool in_flight;
	bool stopping;
	bool failed;                 /* tampering or lost records seen: appends refused until reopened */
	char fail_msg[512];
	bool connected;
	bool waiting;                /* the thread sleeps in poll(): wake it through wake_fd */
	uint64_t followed, conflicts, reconnects, lag_last_us, refusals;

	/* The thread's own (its batches are encoded in l->wbuf). */
	bool shadow_dirty;           /* the shadow holds records that were not committed */
};

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void wake_thread_locked(ledger_pg *p)
{
	if (p->waiting && p->wake_fd >= 0) {
		uint64_t one = 1;
		ssize_t n = write(p->wake_fd, &one, sizeof one);
		(void)n; /* EAGAIN: already readable */
	}
}

static void free_list(append_node *n)
{
	while (n) {
		append_node *next = n->next;
		free(n);
		n = next;
	}
}

/* Format 2's leaf is the SHA-256 of the whole frame, format 1's the record hash. */
static void acc_push(ig_merkle_acc *acc, const uint8_t *frame, size_t len, const uint8_t hash[IG_HASH_BYTES])
{
	if (acc->hash == IG_MERKLE_SHA256) {
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, len);
		ig_merkle_push(acc, leaf);
	} else {
		ig_merkle_push(acc, hash);
	}
}

/* Tampering, or records lost by the database: from now on appends are
 * refused (reads go on from memory) until the ledger is reopened. */
static void enter_failed(ig_ledger *l, const ig_error *why)
{
	ledger_pg *p = l->pg;
	ig_log(IG_LOG_ERR, "shared ledger (%s): %s; this broker refuses appends until it is restarted (it keeps "
	       "authenticating from memory); run iotguard verify --dsn",
	       p->where, why->msg);
	pthread_mutex_lock(&l->mu);
	p->failed = true;
	snprintf(p->fail_msg, sizeof p->fail_msg, "%s", why->msg);
	ledger_fail_queue_locked(l, IG_ERR_IO);
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
}

/* The connection is gone: say so once, refuse appends until it is back. */
static void conn_lost(ig_ledger *l, const ig_error *why)
{
	ledger_pg *p = l->pg;
	ig_pg_close(p->pg);
	p->pg = NULL;
	pthread_mutex_lock(&l->mu);
	bool was = p->connected;
	p->connected = false;
	ledger_fail_queue_locked(l, IG_ERR_UNAVAILABLE);
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
	if (was)
		ig_log(IG_LOG_ERR, "shared ledger: %s is unreachable: %s; appends are refused as storage_failed until it "
		       "is back; retrying",
		       p->where, why && why->msg[0] ? why->msg : "the connection broke");
}

/* After a failed call: was it the connection? */
static bool check_conn(ig_ledger *l, int rc, const ig_error *e)
{
	ledger_pg *p = l->pg;
	if (p->pg && ig_pg_ok(p->pg) && rc != IG_ERR_UNAVAILABLE)
		return true;
	conn_lost(l, e);
	return false;
}

/* ---- format 2's tiles, fed with every record, own and followed ----------------- */

static void tiles_feed(ig_ledger *l, size_t n, const uint8_t *const *frame, const size_t *len, const char *cp_text,
                       size_t cp_len)
{
	if (!l->tiles || n == 0)
		return;
	uint8_t(*leaf)[IG_HASH_BYTES] = malloc(n * sizeof *leaf);
	ig_error e = {0};
	int rc;
	if (!leaf) {
		rc = ig_error_set(&e, IG_ERR_NOMEM, "out of memory");
	} else {
		for (size_t i = 0; i < n; i++)
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf[i], frame[i], len[i]);
		rc = ig_tiles_append(l->tiles, (const uint8_t(*)[IG_HASH_BYTES])leaf, frame, len, n, &e);
		if (rc == IG_OK)
			rc = ig_tiles_publish(l->tiles, cp_text, cp_len, &e);
	}
	free(leaf);
	if (rc != IG_OK) {
		ig_log(IG_LOG_ERR, "ledger %s: writing its tiles failed (%s); the shared ledger goes on without them, and "
		       "they are rebuilt when the broker is restarted",
		       l->dir, e.msg);
		ig_tiles_close(l->tiles);
		l->tiles = NULL;
	}
}

/* ---- following: fetch and verify what other writers appended ------------------- */

typedef struct fetch_ctx {
	ig_ledger *l;
	uint64_t next;
	uint8_t prev[IG_HASH_BYTES];
	ig_merkle_acc acc;
	append_node *head, *tail;
	size_t n;
	uint64_t last_ts;
	uint64_t updated_us;
} fetch_ctx;

static int corrupt_row(ig_error *err, uint64_t idx, const char *what)
{
	return ig_error_set(err, IG_ERR_CORRUPT, "ledger record %" PRIu64 " in PostgreSQL: %s — tampered or corrupt",
	                    idx, what);
}

static int fetch_row(void *vctx, const ig_pg_row *row, ig_error *err)
{
	fetch_ctx *c = vctx;
	ig_ledger *l = c->l;
	uint64_t i = c->next;
	if (row->idx != i)
		return corrupt_row(err, i, "the rows skip an index");
	if (row->frame_len > ledger_max_frame(atomic_load(&l->version)) || row->frame_len < IG_REC_OVERHEAD)
		return corrupt_row(err, i, "a frame of a size the format does not allow");
	append_node *n = ledger_node_new(0, row->frame, row->frame_len);
	if (!n)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory following the shared ledger");
	n->followed = true;
	n->updated_us = c->updated_us;
	const char *bad = NULL;
	ig_frame_status st = ig_record_decode(n->body, row->frame_len, &n->rec);
	if (st != IG_FRAME_OK)
		bad = ig_record_frame_status_text(st);
	else if (n->rec.frame_len != row->frame_len)
		bad = "the frame is shorter than its row";
	else if (n->rec.index != i)
		bad = "the frame holds another index (a record is missing, duplicated or out of order)";
	else if (memcmp(n->rec.prev_hash, c->prev, IG_HASH_BYTES) != 0)
		bad = "hash chain broken (prev_hash does not match the record before)";
	else if (memcmp(n->rec.hash, row->hash, IG_HASH_BYTES) != 0 || n->rec.type != row->type)
		bad = "its hash or type column disagrees with the frame";
	else if (n->rec.type == IG_REC_GENESIS)
		bad = "a second genesis record";
	else if (n->rec.type == IG_REC_FORMAT)
		bad = "a format record (a shared ledger is never upgraded in place: upgrade the file ledger, then "
		      "migrate)";
	if (bad) {
		free(n);
		return corrupt_row(err, i, bad);
	}
	acc_push(&c->acc, n->body, row->frame_len, n->rec.hash);
	memcpy(c->prev, n->rec.hash, IG_HASH_BYTES);
	c->last_ts = n->rec.ts_ms;
	ledger_list_push(&c->head, &c->tail, n);
	c->n++;
	c->next++;
	return IG_OK;
}

static void shadow_apply_logged(ig_ledger *l, const ig_record *rec, const char *what)
{
	ledger_pg *p = l->pg;
	if (!p->shadow_apply)
		return;
	ig_error e = {0};
	if (p->shadow_apply(p->shadow_ctx, rec, &e) != IG_OK)
		ig_log(IG_LOG_ERR, "shared ledger: record %" PRIu64 " (%s, %s) does not apply to this broker's state: %s; "
		       "the brokers' states differ: restart this broker",
		       rec->index, ig_record_type_name(rec->type), what, e.msg);
}

/* Brings this ledger to the head h (read by the caller, locked or not):
 * the records [known, h->height) are fetched, verified against the chain and
 * h's signed checkpoint, applied to the shadow and queued for
 * ig_ledger_poll. IG_ERR_CORRUPT (and the ledger failed) when anything does
 * not check out; another code when the database did not answer. */
static int catch_up(ig_ledger *l, const ig_pg_head *h, ig_error *err)
{
	ledger_pg *p = l->pg;
	uint64_t known = l->acc.size;
	if (h->height < known) {
		ig_error_set(err, IG_ERR_CORRUPT, "PostgreSQL's ledger ends at %" PRIu64 " records but this broker saw %" PRIu64
		             ": acknowledged records were lost; use synchronous replication (docs/SCALING.md)",
		             h->height, known);
		enter_failed(l, err);
		return IG_ERR_CORRUPT;
	}
	if (h->height == known) {
		if (sodium_memcmp(h->head, l->head, IG_HASH_BYTES) != 0) {
			ig_error_set(err, IG_ERR_CORRUPT, "the head row names another record %" PRIu64 " than the one this "
			             "broker saw: the ledger was rewritten",
			             known - 1);
			enter_failed(l, err);
			return IG_ERR_CORRUPT;
		}
		return IG_OK;
	}
	fetch_ctx c = {.l = l, .next = known, .acc = l->acc, .updated_us = h->updated_us, .last_ts = l->last_ts};
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	memcpy(c.prev, l->head, IG_HASH_BYTES);
	int rc = ig_pg_rows(p->pg, known, h->height, fetch_row, &c, err);
	if (rc == IG_OK && c.next != h->height)
		rc = corrupt_row(err, c.next, "missing");
	if (rc == IG_OK) {
		ig_error e = {0};
		uint8_t root[IG_HASH_BYTES];
		ig_merkle_root(&c.acc, root);
		if (ig_checkpoint_verify(h->checkpoint, h->cp_len, l->origin, l->ch_pk, &cp, &e) != IG_OK)
			rc = ig_error_set(err, IG_ERR_CORRUPT, "the head's checkpoint (size %" PRIu64 ") is not signed by the "
			                  "cluster-head key: %s — tampered",
			                  h->height, e.msg);
		else if (cp.size != h->height || sodium_memcmp(cp.root, root, IG_HASH_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT, "the head's signed checkpoint (size %" PRIu64 ") does not cover "
			                  "records %" PRIu64 "..%" PRIu64 " as stored (a record was altered) — tampered",
			                  cp.size, known, h->height - 1);
		else if (sodium_memcmp(h->head, c.prev, IG_HASH_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT, "the head row's hash is not record %" PRIu64 "'s — tampered",
			                  h->height - 1);
	}
	if (rc != IG_OK) {
		free_list(c.head);
		if (rc == IG_ERR_CORRUPT)
			enter_failed(l, err);
		return rc;
	}
	const uint8_t **frames = l->tiles ? malloc(c.n * sizeof *frames) : NULL;
	size_t *lens = l->tiles ? malloc(c.n * sizeof *lens) : NULL;
	size_t k = 0;
	for (append_node *n = c.head; n; n = n->next, k++) {
		shadow_apply_logged(l, &n->rec, "followed");
		if (frames && lens) {
			frames[k] = n->body;
			lens[k] = n->body_len;
		}
	}
	l->acc = c.acc;
	l->last_ts = c.last_ts > l->last_ts ? c.last_ts : l->last_ts;
	if (frames && lens)
		tiles_feed(l, c.n, frames, lens, h->checkpoint, h->cp_len);
	else if (l->tiles) {
		ig_log(IG_LOG_ERR, "ledger %s: out of memory feeding the tiles; they stop until a restart", l->dir);
		ig_tiles_close(l->tiles);
		l->tiles = NULL;
	}
	free(frames);
	free(lens);
	pthread_mutex_lock(&l->mu);
	memcpy(l->head, c.prev, IG_HASH_BYTES);
	memcpy(l->cp_text, h->checkpoint, h->cp_len);
	l->cp_text[h->cp_len] = '\0';
	l->cp_len = h->cp_len;
	l->cp = cp;
	atomic_store(&l->height, h->height);
	for (append_node *n = c.head; n;) {
		append_node *next = n->next;
		ledger_done_push_locked(l, n);
		n = next;
	}
	p->followed += c.n;
	atomic_store(&l->checkpoint_changed, true);
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
	return IG_OK;
}

static int follow(ig_ledger *l, ig_error *err)
{
	ig_pg_head h;
	int rc = ig_pg_head_get(l->pg->pg, &h, err);
	if (rc != IG_OK)
		return rc;
	return catch_up(l, &h, err);
}

/* ---- the shadow after a failed transaction ------------------------------------- */

typedef struct resync_ctx {
	ig_ledger *l;
	uint64_t next;
	uint8_t prev[IG_HASH_BYTES];
} resync_ctx;

static int resync_row(void *vctx, const ig_pg_row *row, ig_error *err)
{
	resync_ctx *c = vctx;
	ig_record rec;
	ig_frame_status st = ig_record_decode(row->frame, row->frame_len, &rec);
	if (st != IG_FRAME_OK || rec.index != c->next || rec.frame_len != row->frame_len ||
	    memcmp(rec.prev_hash, c->prev, IG_HASH_BYTES) != 0)
		return corrupt_row(err, c->next, "it is not the record this broker verified earlier");
	shadow_apply_logged(c->l, &rec, "re-applied");
	memcpy(c->prev, rec.hash, IG_HASH_BYTES);
	c->next++;
	return IG_OK;
}

/* Forgets the shadow and re-applies every record this broker has verified,
 * read again from the database; the chain must end at the head it knows, so
 * the database cannot slip it other records. */
static int resync_shadow(ig_ledger *l, ig_error *err)
{
	ledger_pg *p = l->pg;
	if (!p->shadow_reset) {
		p->shadow_dirty = false;
		return IG_OK;
	}
	p->shadow_reset(p->shadow_ctx);
	resync_ctx c = {.l = l, .next = 0};
	int rc = ig_pg_rows(p->pg, 0, l->acc.size, resync_row, &c, err);
	if (rc == IG_OK && sodium_memcmp(c.prev, l->head, IG_HASH_BYTES) != 0)
		rc = ig_error_set(err, IG_ERR_CORRUPT, "re-reading records 0..%" PRIu64 " from PostgreSQL gave another "
		                  "chain than this broker verified — tampered",
		                  l->acc.size - 1);
	if (rc == IG_OK)
		p->shadow_dirty = false;
	else if (rc == IG_ERR_CORRUPT)
		enter_failed(l, err);
	return rc;
}

/* ---- appending ------------------------------------------------------------------ */

typedef struct batch {
	append_node *head;
	size_t count;
	size_t accepted;
	uint64_t *idx;
	uint16_t *type;
	uint8_t (*hash)[IG_HASH_BYTES];
	const uint8_t **frame;
	size_t *flen;
	ig_merkle_acc acc;
	uint64_t first_index;
	uint8_t head_hash[IG_HASH_BYTES];
	uint64_t ts;
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	ig_checkpoint cp;
} batch;

static void batch_free(batch *b)
{
	free(b->idx);
	free(b->type);
	free(b->hash);
	free(b->frame);
	free(b->flen);
}

/* Frames the batch after the head (index, one timestamp, prev_hash) and
 * re-checks each record against the shadow: a refused one is marked
 * IG_ERR_CONFLICT and the next takes its index. */
static int frame_batch(ig_ledger *l, batch *b, ig_error *err)
{
	ledger_pg *p = l->pg;
	size_t need;
	if (ledger_wbuf_fit(l, b->head, &need) != IG_OK)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for a batch of %zu bytes", need);
	b->idx = malloc(b->count * sizeof *b->idx);
	b->type = malloc(b->count * sizeof *b->type);
	b->hash = malloc(b->count * sizeof *b->hash);
	b->frame = malloc(b->count * sizeof *b->frame);
	b->flen = malloc(b->count * sizeof *b->flen);
	if (!b->idx || !b->type || !b->hash || !b->frame || !b->flen)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for a batch of %zu records", b->count);
	uint64_t ts = ledger_batch_ts(l);
	b->ts = ts;
	b->acc = l->acc;
	b->first_index = l->acc.size;
	uint8_t prev[IG_HASH_BYTES];
	memcpy(prev, l->head, IG_HASH_BYTES);
	size_t pos = 0;
	b->accepted = 0;
	for (append_node *n = b->head; n; n = n->next) {
		ig_record *rec = &n->rec;
		int len = ledger_encode_node(l, n, b->acc.size, ts, prev, pos);
		if (len < 0)
			return ig_error_set(err, IG_ERR_INVAL, "cannot encode record %" PRIu64 " (code %d)", rec->index, len);
		if (p->shadow_apply) {
			ig_error e = {0};
			if (p->shadow_apply(p->shadow_ctx, rec, &e) != IG_OK) {
				n->status = IG_ERR_CONFLICT;
				continue;
			}
			p->shadow_dirty = true;
		}
		n->status = IG_OK;
		acc_push(&b->acc, l->wbuf + pos, (size_t)len, rec->hash);
		size_t k = b->accepted++;
		b->idx[k] = rec->index;
		b->type[k] = rec->type;
		memcpy(b->hash[k], rec->hash, IG_HASH_BYTES);
		b->frame[k] = l->wbuf + pos;
		b->flen[k] = (size_t)len;
		memcpy(prev, rec->hash, IG_HASH_BYTES);
		pos += (size_t)len;
	}
	memcpy(b->head_hash, prev, IG_HASH_BYTES);
	return IG_OK;
}

/* The batch committed: the facts move, the records are acknowledged (in
 * index order; refused ones complete IG_ERR_CONFLICT in their place). */
static void finish_batch(ig_ledger *l, batch *b)
{
	ledger_pg *p = l->pg;
	if (b->accepted > 0) {
		l->acc = b->acc;
		l->last_ts = b->ts;
		tiles_feed(l, b->accepted, b->frame, b->flen, b->cp_text, b->cp_len);
	}
	p->shadow_dirty = false;
	uint64_t now = ig_mono_us();
	pthread_mutex_lock(&l->mu);
	if (b->accepted > 0) {
		memcpy(l->head, b->head_hash, IG_HASH_BYTES);
		memcpy(l->cp_text, b->cp_text, b->cp_len + 1);
		l->cp_len = b->cp_len;
		l->cp = b->cp;
		atomic_store(&l->height, b->acc.size);
		atomic_store(&l->checkpoint_changed, true);
		l->batches++;
		l->records_committed += b->accepted;
	}
	bool first = true;
	for (append_node *n = b->head; n;) {
		append_node *next = n->next;
		if (n->status == IG_OK) {
			ledger_count_latency_locked(l, n, now, first);
			first = false;
		} else {
			p->conflicts++;
		}
		ledger_complete_locked(l, n, n->status);
		n = next;
	}
	b->head = NULL;
	p->in_flight = false;
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
}

static void abandon_batch(ig_ledger *l, batch *b, int status)
{
	pthread_mutex_lock(&l->mu);
	ledger_complete_list_locked(l, b->head, status);
	b->head = NULL;
	l->pg->in_flight = false;
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
}

static bool stopping(ig_ledger *l)
{
	pthread_mutex_lock(&l->mu);
	bool s = l->pg->stopping;
	pthread_mutex_unlock(&l->mu);
	return s;
}

static int connect_db(ig_ledger *l, ig_error *err);

typedef struct probe_ctx {
	uint8_t hash[IG_HASH_BYTES];
	bool got;
} probe_ctx;

static int probe_row(void *vctx, const ig_pg_row *row, ig_error *err)
{
	(void)err;
	probe_ctx *c = vctx;
	ig_record rec;
	if (ig_record_decode(row->frame, row->frame_len, &rec) == IG_FRAME_OK) {
		memcpy(c->hash, rec.hash, IG_HASH_BYTES);
		c->got = true;
	}
	return IG_OK;
}

/* COMMIT lost its connection: reconnect and look whether the batch's first
 * row is there (the transaction is all or nothing, and a record's hash
 * covers its index, time and body). 1: committed, 0: not, -1: could not
 * tell within RESOLVE_MAX_US. */
static int resolve_commit(ig_ledger *l, const batch *b)
{
	ledger_pg *p = l->pg;
	uint64_t deadline = ig_mono_us() + RESOLVE_MAX_US;
	uint32_t backoff = p->backoff_min_ms;
	for (;;) {
		ig_error e = {0};
		if (!p->pg && connect_db(l, &e) != IG_OK) {
			ig_pg_close(p->pg);
			p->pg = NULL;
		}
		if (p->pg) {
			ig_pg_head h;
			int rc = ig_pg_head_get(p->pg, &h, &e);
			if (rc == IG_OK && h.height <= b->first_index)
				return 0;
			if (rc == IG_OK) {
				probe_ctx c = {.got = false};
				rc = ig_pg_rows(p->pg, b->first_index, b->first_index + 1, probe_row, &c, &e);
				if (rc == IG_OK)
					return c.got && sodium_memcmp(c.hash, b->hash[0], IG_HASH_BYTES) == 0 ? 1 : 0;
			}
			if (rc == IG_ERR_CORRUPT || rc == IG_ERR_NOTFOUND)
				return -1;
			if (!ig_pg_ok(p->pg)) {
				ig_pg_close(p->pg);
				p->pg = NULL;
			}
		}
		if (ig_mono_us() >= deadline || stopping(l))
			return -1;
		struct timespec ts = {.tv_sec = backoff / 1000, .tv_nsec = (long)(backoff % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		backoff = backoff * 2 > p->backoff_max_ms ? p->backoff_max_ms : backoff * 2;
	}
}

/* Connects, LISTENs and says the database is back. */
static int connect_db(ig_ledger *l, ig_error *err)
{
	ledger_pg *p = l->pg;
	ig_pg *pg = NULL;
	int rc = ig_pg_connect(&pg, p->dsn, err);
	if (rc == IG_OK)
		rc = ig_pg_listen(pg, err);
	if (rc != IG_OK) {
		ig_pg_close(pg);
		return rc;
	}
	p->pg = pg;
	pthread_mutex_lock(&l->mu);
	bool was = p->connected;
	p->connected = true;
	p->reconnects++;
	pthread_mutex_unlock(&l->mu);
	if (!was)
		ig_log(IG_LOG_WARN, "shared ledger: %s is reachable again; appends are accepted", p->where);
	return IG_OK;
}

/* One append transaction for everything queued (up to the batch limits):
 * lock the head, catch up, frame and re-check, insert, sign, move the head,
 * commit; acknowledge only after COMMIT returned. */
static void run_append(ig_ledger *l)
{
	ledger_pg *p = l->pg;
	batch *b = calloc(1, sizeof *b);
	pthread_mutex_lock(&l->mu);
	if (!l->queue_head || !b) {
		if (l->queue_head && !b) {
			ledger_fail_queue_locked(l, IG_ERR_NOMEM);
			ledger_notify_locked(l);
		}
		pthread_mutex_unlock(&l->mu);
		free(b);
		return;
	}
	size_t count;
	append_node *head = ledger_take_batch_locked(l, &count);
	p->in_flight = true;
	pthread_mutex_unlock(&l->mu);
	b->head = head;
	b->count = count;

	ig_error e = {0};
	ig_pg_head h;
	int rc = ig_pg_begin_append(p->pg, &h, &e);
	bool began = rc == IG_OK;
	if (rc == IG_OK)
		rc = catch_up(l, &h, &e);
	if (rc == IG_OK)
		rc = frame_batch(l, b, &e);
	if (rc == IG_OK && b->accepted == 0) {
		/* Every record was refused: nothing to write, the lock goes. */
		ig_pg_rollback(p->pg);
		finish_batch(l, b);
		batch_free(b);
		free(b);
		return;
	}
	if (rc == IG_OK)
		rc = ig_pg_insert(p->pg, b->accepted, b->idx, b->type, (const uint8_t(*)[IG_HASH_BYTES])b->hash, b->frame,
		                  b->flen, p->broker, &e);
	if (rc == IG_OK) {
		memset(&b->cp, 0, sizeof b->cp);
		memcpy(b->cp.origin, l->origin, sizeof b->cp.origin);
		b->cp.size = b->acc.size;
		ig_merkle_root(&b->acc, b->cp.root);
		int len = ig_checkpoint_sign(b->cp_text, sizeof b->cp_text, &b->cp, l->ch_sk);
		if (len < 0)
			rc = ig_error_set(&e, len, "cannot sign the checkpoint (code %d)", len);
		else
			b->cp_len = (size_t)len;
	}
	if (rc == IG_OK)
		rc = ig_pg_set_head(p->pg, b->acc.size, b->head_hash, atomic_load(&l->version), b->cp_text, b->cp_len,
		                    p->broker, &e);
	if (rc == IG_OK) {
		rc = ig_pg_commit(p->pg, &e);
		if (rc == IG_OK) {
			finish_batch(l, b);
		} else if (rc == IG_ERR_UNKNOWN) {
			conn_lost(l, &e);
			int r = resolve_commit(l, b);
			if (r == 1) {
				ig_log(IG_LOG_WARN, "shared ledger: the connection broke during COMMIT of records %" PRIu64
				       "..%" PRIu64 "; they were committed (found in %s)",
				       b->first_index, b->first_index + b->accepted - 1, p->where);
				finish_batch(l, b);
			} else {
				ig_log(IG_LOG_ERR, "shared ledger: the connection broke during COMMIT of records %" PRIu64
				       "..%" PRIu64 "; %s",
				       b->first_index, b->first_index + b->accepted - 1,
				       r == 0 ? "they were not committed (nothing was written)"
				              : "whether they were committed cannot be told yet: they are reported as "
				                "outcome unknown, and arrive as followed records if they were");
				abandon_batch(l, b, r == 0 ? IG_ERR_UNAVAILABLE : IG_ERR_UNKNOWN);
			}
		}
		if (rc == IG_OK || rc == IG_ERR_UNKNOWN) {
			batch_free(b);
			free(b);
			return;
		}
	}
	/* Not committed. */
	if (began && p->pg && ig_pg_ok(p->pg))
		ig_pg_rollback(p->pg);
	int status = rc == IG_ERR_CORRUPT ? IG_ERR_IO
	             : rc == IG_ERR_NOMEM || rc == IG_ERR_INVAL ? rc
	             : IG_ERR_UNAVAILABLE;
	abandon_batch(l, b, status);
	if (rc != IG_ERR_CORRUPT && check_conn(l, rc, &e))
		ig_log(IG_LOG_ERR, "shared ledger: an append transaction failed, %zu records were not written: %s",
		       b->count, e.msg);
	batch_free(b);
	free(b);
}

/* ---- the thread ------------------------------------------------------------------ */

/* Sleeps until a submit, a close or a publish wakes it, the socket has
 * input, or deadline_us (monotonic; 0 = none) passes. */
static void idle_wait(ig_ledger *l, int sock, uint64_t deadline_us)
{
	ledger_pg *p = l->pg;
	pthread_mutex_lock(&l->mu);
	if (l->queue_head || p->stopping || l->cosigned_pending) {
		pthread_mutex_unlock(&l->mu);
		return;
	}
	p->waiting = true;
	pthread_mutex_unlock(&l->mu);
	struct pollfd fds[2] = {{.fd = p->wake_fd, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
	int timeout = -1;
	if (deadline_us) {
		uint64_t now = ig_mono_us();
		timeout = deadline_us > now ? (int)((deadline_us - now + 999) / 1000) : 0;
	}
	int r = poll(fds, sock >= 0 ? 2 : 1, timeout);
	(void)r;
	pthread_mutex_lock(&l->mu);
	p->waiting = false;
	pthread_mutex_unlock(&l->mu);
	uint64_t v;
	ssize_t n = read(p->wake_fd, &v, sizeof v);
	(void)n;
}

static void *pg_main(void *arg)
{
	ig_ledger *l = arg;
	ledger_pg *p = l->pg;
	uint32_t backoff = p->backoff_min_ms;
	uint64_t retry_at = 0, next_look = 0;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		bool stop = p->stopping, work = l->queue_head != NULL, failed = p->failed, cos = l->cosigned_pending;
		pthread_mutex_unlock(&l->mu);
		if (cos) {
			/* The tiles are this thread's, as the file writer's are its. */
			pthread_mutex_lock(&l->mu);
			ledger_publish_cosigned_locked(l);
			pthread_mutex_unlock(&l->mu);
			continue;
		}
		if (failed) {
			if (stop)
				break;
			idle_wait(l, -1, 0);
			continue;
		}
		ig_error e = {0};
		if (!p->pg) {
			if (stop)
				break;
			uint64_t now = ig_mono_us();
			if (now >= retry_at) {
				if (connect_db(l, &e) == IG_OK) {
					next_look = 0;
					continue;
				}
				retry_at = now + (uint64_t)backoff * 1000u;
				backoff = backoff * 2 > p->backoff_max_ms ? p->backoff_max_ms : backoff * 2;
			}
			idle_wait(l, -1, retry_at);
			continue;
		}
		if (p->shadow_dirty) {
			int rc = resync_shadow(l, &e);
			if (rc != IG_OK && rc != IG_ERR_CORRUPT)
				conn_lost(l, &e);
			continue;
		}
		if (work) {
			/* Notifications that came with the transaction's results wait
			 * in libpq's queue: ig_pg_notifications returns them below. */
			run_append(l);
			continue;
		}
		if (stop)
			break;
		int n = ig_pg_notifications(p->pg, &e);
		if (n < 0) {
			conn_lost(l, &e);
			continue;
		}
		if (n > 0 || ig_mono_us() >= next_look) {
			int rc = follow(l, &e);
			if (rc == IG_OK)
				backoff = p->backoff_min_ms;
			else if (rc != IG_ERR_CORRUPT)
				conn_lost(l, &e);
			next_look = ig_mono_us() + (uint64_t)p->poll_ms * 1000u;
			continue;
		}
		idle_wait(l, ig_pg_socket(p->pg), next_look);
	}
	pthread_mutex_lock(&l->mu);
	ledger_fail_queue_locked(l, p->failed ? IG_ERR_IO : IG_ERR_UNAVAILABLE);
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- the public API's shared-mode half ------------------------------------------------ */

static int enqueue(ig_ledger *l, append_node *n)
{
	ledger_pg *p = l->pg;
	int rc = IG_OK;
	pthread_mutex_lock(&l->mu);
	if (p->failed) {
		rc = IG_ERR_IO;
	} else if (p->stopping) {
		rc = IG_ERR_CLOSED;
	} else if (!p->connected) {
		p->refusals++;
		rc = IG_ERR_UNAVAILABLE;
	} else {
		ledger_queue_push_locked(l, n);
		wake_thread_locked(p);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int ledger_pg_submit(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len, ig_append_done_fn done,
                     void *ctx)
{
	append_node *n = ledger_node_new(type, body, len);
	if (!n)
		return IG_ERR_NOMEM;
	n->done = done;
	n->ctx = ctx;
	int rc = enqueue(l, n);
	if (rc != IG_OK)
		free(n);
	return rc;
}

int ledger_pg_poll(ig_ledger *l)
{
	ledger_pg *p = l->pg;
	append_node *n = ledger_take_done(l);
	int ran = 0;
	bool have_lag = false;
	uint64_t lag = 0;
	while (n) {
		append_node *next = n->next;
		if (n->followed) {
			if (p->on_follow) {
				ig_error e = {0};
				if (p->on_follow(p->follow_ctx, &n->rec, &e) != IG_OK)
					ig_log(IG_LOG_ERR, "shared ledger: followed record %" PRIu64 " (%s) was refused by this broker's "
					       "state: %s",
					       n->rec.index, ig_record_type_name(n->rec.type), e.msg);
			}
			uint64_t now = real_us();
			lag = now > n->updated_us ? now - n->updated_us : 0;
			have_lag = true;
			free(n);
		} else {
			ledger_run_done(n);
		}
		ran++;
		n = next;
	}
	if (have_lag) {
		pthread_mutex_lock(&l->mu);
		p->lag_last_us = lag;
		pthread_mutex_unlock(&l->mu);
	}
	return ran;
}

static int status_error(ig_ledger *l, int rc, uint64_t index, ig_error *err)
{
	ledger_pg *p = l->pg;
	switch (rc) {
	case IG_ERR_CONFLICT:
		return ig_error_set(err, rc, "shared ledger: the record no longer applies: another broker changed the "
		                    "ledger first; it was not written");
	case IG_ERR_UNAVAILABLE:
		return ig_error_set(err, rc, "shared ledger: %s is unreachable; the record was not written: retry once "
		                    "the database is back (the broker reconnects by itself)",
		                    p->where);
	case IG_ERR_UNKNOWN:
		return ig_error_set(err, rc, "shared ledger: the connection to %s broke during COMMIT of record %" PRIu64
		                    ", so it may or may not be in the ledger; check with `iotguard verify --dsn`",
		                    p->where, index);
	case IG_ERR_CLOSED:
		return ig_error_set(err, rc, "shared ledger is closing; the record was not appended");
	case IG_ERR_NOMEM:
		return ig_error_set(err, rc, "shared ledger: out of memory; the record was not written");
	default: {
		char msg[sizeof p->fail_msg];
		pthread_mutex_lock(&l->mu);
		memcpy(msg, p->fail_msg, sizeof msg);
		pthread_mutex_unlock(&l->mu);
		return ig_error_set(err, rc, "shared ledger (%s) refuses appends: %s; restart the broker after "
		                    "checking the database with `iotguard verify --dsn`",
		                    p->where, msg[0] ? msg : "an append failed");
	}
	}
}

int ledger_pg_append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len, ig_record *rec_out,
                     ig_error *err)
{
	append_node *n = ledger_node_new(type, body, len);
	if (!n)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory appending to the shared ledger");
	return ledger_append_wait(l, n, enqueue, status_error, rec_out, err);
}

int ledger_pg_sync(ig_ledger *l, ig_error *err)
{
	ledger_pg *p = l->pg;
	pthread_mutex_lock(&l->mu);
	l->sync_waiters++;
	while (!p->failed && p->connected && (l->queue_head || p->in_flight))
		pthread_cond_wait(&l->done_cond, &l->mu);
	l->sync_waiters--;
	bool failed = p->failed, connected = p->connected;
	pthread_mutex_unlock(&l->mu);
	if (failed)
		return status_error(l, IG_ERR_IO, 0, err);
	if (!connected)
		return status_error(l, IG_ERR_UNAVAILABLE, 0, err);
	return IG_OK;
}

int ledger_pg_publish_cosigned(ig_ledger *l, const char *text, size_t len, uint64_t size)
{
	ledger_pg *p = l->pg;
	int rc = IG_OK;
	pthread_mutex_lock(&l->mu);
	if (p->stopping || p->failed) {
		rc = IG_ERR_CLOSED;
	} else {
		ledger_hold_cosigned_locked(l, text, len, size);
		wake_thread_locked(p);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

bool ig_ledger_is_shared(const ig_ledger *l)
{
	return l && l->pg;
}

void ig_ledger_get_shared_stats(ig_ledger *l, ig_ledger_shared_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!l || !l->pg)
		return;
	ledger_pg *p = l->pg;
	pthread_mutex_lock(&l->mu);
	st->connected = p->connected && !p->failed;
	st->followed = p->followed;
	st->conflicts = p->conflicts;
	st->reconnects = p->reconnects;
	st->follow_lag_us_last = p->lag_last_us;
	st->unavailable_refusals = p->refusals;
	pthread_mutex_unlock(&l->mu);
}

void ledger_pg_stop(ig_ledger *l)
{
	ledger_pg *p = l->pg;
	pthread_mutex_lock(&l->mu);
	p->stopping = true;
	wake_thread_locked(p);
	bool started = p->thread_started;
	pthread_mutex_unlock(&l->mu);
	if (started)
		pthread_join(p->thread, NULL);
	pthread_mutex_lock(&l->mu);
	p->thread_started = false;
	ledger_fail_queue_locked(l, IG_ERR_CLOSED);
	l->event_pending = true;
	ledger_notify_locked(l);
	pthread_mutex_unlock(&l->mu);
	(void)ledger_pg_poll(l);
}

void ledger_pg_free(ledger_pg *p)
{
	if (!p)
		return;
	ig_pg_close(p->pg);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	free(p->dsn);
	free(p);
}

/* ---- open ----------------------------------------------------------------------------- */

typedef struct open_ctx {
	const ig_ledger_open_opts *opts;
	ledger_pg *p;
} open_ctx;

static int open_record(void *vctx, const ig_record *rec, ig_error *err)
{
	open_ctx *c = vctx;
	int rc = IG_OK;
	if (c->opts->on_record)
		rc = c->opts->on_record(c->opts->ctx, rec, err);
	if (rc == IG_OK && c->p->shadow_apply)
		rc = c->p->shadow_apply(c->p->shadow_ctx, rec, err);
	return rc;
}

static void open_census(void *vctx, const ig_ledger_census *census)
{
	open_ctx *c = vctx;
	c->opts->on_census(c->opts->ctx, census);
}

static void open_ahead(void *vctx, const ig_record *rec)
{
	open_ctx *c = vctx;
	c->opts->ahead(c->opts->ctx, rec);
}

/* The genesis record's ch_pk, read before the full check so a wrong key
 * file is refused before anything is replayed. */
static int check_key(const ledger_pg *p, const uint8_t *log, size_t len, const uint8_t key_pk[IG_PK_BYTES],
                     const char *keydir, ig_error *err)
{
	ig_record g;
	ig_genesis gen;
	ig_error e = {0};
	if (ig_record_decode(log, len, &g) != IG_FRAME_OK || g.type != IG_REC_GENESIS ||
	    ig_record_genesis_decode(g.body, g.body_len, &gen, &e) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT, "ledger record 0 in %s is not a readable genesis record — "
		                    "tampered or corrupt; run iotguard verify --dsn",
		                    p->where);
	if (sodium_memcmp(gen.ch_pk, key_pk, IG_PK_BYTES) != 0)
		return ig_error_set(err, IG_ERR_CRYPTO, "%s/%s is not the cluster-head key of the ledger in %s (cluster "
		                    "%s): copy ch.key from the broker that made the ledger into %s",
		                    keydir, IG_LEDGER_KEY, p->where, gen.cluster, keydir);
	return IG_OK;
}

int ig_ledger_open_shared(ig_ledger **out, const char *keydir, const ig_ledger_open_opts *opts,
                          const ig_ledger_shared_opts *shared, ig_error *err)
{
	if (!out || !keydir || !opts || !shared || !shared->dsn || !shared->broker)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open_shared: missing argument");
	*out = NULL;
	if (!opts->writer)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open_shared: shared mode needs a writer open");
	size_t blen = strlen(shared->broker);
	if (blen < 1 || blen > IG_PG_BROKER_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "broker name '%.80s' must be 1..%d characters", shared->broker,
		                    IG_PG_BROKER_MAX);
	if (!shared->shadow_apply != !shared->shadow_reset)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open_shared: shadow_apply and shadow_reset go together");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	ig_ledger *l = ledger_alloc(keydir);
	ledger_pg *p = l ? calloc(1, sizeof *p) : NULL;
	if (!p) {
		ledger_free(l);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory opening the shared ledger");
	}
	l->pg = p;
	p->wake_fd = -1;
	l->writer = true;
	l->max_batch = opts->max_batch ? opts->max_batch : DEFAULT_MAX_BATCH;
	l->io = ledger_sys_io;
	p->dsn = strdup(shared->dsn);
	memcpy(p->broker, shared->broker, blen + 1);
	p->on_follow = shared->on_follow;
	p->follow_ctx = shared->follow_ctx;
	p->shadow_apply = shared->shadow_apply;
	p->shadow_reset = shared->shadow_reset;
	p->shadow_ctx = shared->shadow_ctx;
	p->backoff_min_ms = shared->backoff_min_ms ? shared->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
	p->backoff_max_ms = shared->backoff_max_ms ? shared->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
	if (p->backoff_max_ms < p->backoff_min_ms)
		p->backoff_max_ms = p->backoff_min_ms;
	p->poll_ms = shared->poll_ms ? shared->poll_ms : DEFAULT_POLL_MS;
	uint8_t *log = NULL;
	size_t log_len = 0;
	ledger_scan_out *so = NULL;
	ig_pg_head *h = NULL;
	int rc;
	if (!p->dsn) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory opening the shared ledger");
		goto fail;
	}

	/* The keys first, as a file open: the lock keeps two brokers of one
	 * machine from sharing DIR (each writes its own tiles there). */
	uint8_t key_pk[IG_PK_BYTES];
	bool sealed = false;
	rc = ledger_open_dir(l, true, err);
	if (rc == IG_ERR_LOCKED)
		ig_error_set(err, rc, "%s is in use by another broker (or tool): in shared mode every broker needs its own "
		             "copy of this directory (cp -a it; the key is the same)",
		             keydir);
	if (rc < 0)
		goto fail;
	rc = ledger_load_key(l, opts->sealed_ok, key_pk, &sealed, err);
	if (rc != IG_OK)
		goto fail;

	/* LISTEN before the export: a head moved in between wakes the thread. */
	rc = ig_pg_connect(&p->pg, p->dsn, err);
	if (rc != IG_OK)
		goto fail;
	snprintf(p->where, sizeof p->where, "PostgreSQL at %s", ig_pg_dsn_display(p->pg));
	rc = ig_pg_listen(p->pg, err);
	if (rc != IG_OK)
		goto fail;
	h = malloc(sizeof *h);
	so = malloc(sizeof *so);
	if (!h || !so) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory opening the shared ledger");
		goto fail;
	}
	rc = ig_pg_export(p->pg, &log, &log_len, h, NULL, NULL, err);
	if (rc == IG_ERR_NOTFOUND)
		ig_error_set(err, rc, "%s holds no iotguard ledger: create one with `iotguard init --ledger %s --dsn DSN "
		             "--cluster NAME`, or move a file ledger there with `iotguard migrate`",
		             p->where, keydir);
	if (rc != IG_OK)
		goto fail;
	if (!sealed) {
		rc = check_key(p, log, log_len, key_pk, keydir, err);
		if (rc != IG_OK)
			goto fail;
	}

	open_ctx oc = {.opts = opts, .p = p};
	ledger_scan_in in = {
		.dir = p->where,
		.dir_fd = -1,
		.log_fd = -1,
		.buf = log,
		.buf_len = log_len,
		.cp_text = h->checkpoint,
		.cp_len = h->cp_len,
		.on_record = open_record,
		.ctx = &oc,
		.on_census = opts->on_census ? open_census : NULL,
		.ahead = opts->ahead ? open_ahead : NULL,
		.progress = opts->progress,
		.progress_ctx = opts->progress_ctx,
	};
	rc = ledger_scan(&in, so, err);
	if (rc != IG_OK)
		goto fail;
	if (so->torn_bytes > 0 || so->height != h->height || so->cp.size != so->height ||
	    sodium_memcmp(so->head, h->head, IG_HASH_BYTES) != 0) {
		rc = ig_error_set(err, IG_ERR_CORRUPT, "%s: the records (%" PRIu64 " whole, %" PRIu64 " bytes of damage "
		                  "after them) do not match the head row (height %" PRIu64 ") and its checkpoint (size %"
		                  PRIu64 ") — tampered or corrupt; run iotguard verify --dsn",
		                  p->where, so->height, so->torn_bytes, h->height, so->cp.size);
		goto fail;
	}
	ledger_adopt_scan(l, so);
	l->log_end = 0;
	if (l->acc.hash == IG_MERKLE_SHA256) {
		/* Derived data, as for files: a failure costs the tiles only. */
		ig_error te = {0};
		if (ledger_tiles_start_map(l, log, log_len, so->cp_last_off, &te) != IG_OK)
			ig_log(IG_LOG_ERR, "ledger %s: cannot write its tiles in %s/%s/: %s; the shared ledger works, but this "
			       "broker serves no tiles or proofs until it is restarted with the problem fixed",
			       keydir, keydir, IG_TILES_SUBDIR, te.msg);
	}
	free(log);
	log = NULL;

	l->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->event_fd < 0 || p->wake_fd < 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot create an eventfd: %s", strerror(errno));
		goto fail;
	}
	p->connected = true;
	int prc = pthread_create(&p->thread, NULL, pg_main, l);
	if (prc != 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot start the shared ledger's thread: %s", strerror(prc));
		goto fail;
	}
	p->thread_started = true;
	ig_log(IG_LOG_INFO, "shared ledger of cluster %s: %s, broker %s, %" PRIu64 " records%s", l->cluster, p->where,
	       p->broker, atomic_load(&l->height), sealed ? ", sealed (appends wait for the key)" : "");
	free(so);
	free(h);
	*out = l;
	return IG_OK;
fail:
	free(log);
	free(so);
	free(h);
	ledger_free(l);
	return rc < 0 ? rc : IG_ERR_IO;
}
