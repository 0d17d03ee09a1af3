/*
 * ledger_scan.c: the full check of a ledger log, shared by open() and by
 * audits (ig_ledger_verify).
 *
 * Why this exists: a ledger is only worth its signed checkpoint if every
 * reader checks the log against it the same way. One scanner checks every
 * frame and checksum, every hash and chain link, the genesis record and its
 * key, and the Merkle root of the records the checkpoint covers, and it
 * tells a torn tail left by a crash from tampering: a bad frame inside the
 * checkpointed records, or one followed by a complete record, is tampering;
 * a bad frame after the last checkpointed record with nothing valid after it
 * can only be a torn write that was never acknowledged.
 *
 * It works on a read-only mapping of the log, so it is safe while a writer
 * appends, and on large logs it decodes on a second core (see scan_chunk).
 */
#include "ig_checkpoint.h"
#include "ig_crc32c.h"
#include "ig_merkle.h"
#include "ig_record.h"
#include "ledger_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRESS_EVERY 65536
#define SCAN_CHUNK 4096
/* Below this a second hashing thread costs more than it saves. */
#define PARALLEL_MIN_BYTES (4u << 20)

static int corrupt(ig_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int corrupt(ig_error *err, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return ig_error_set(err, IG_ERR_CORRUPT, "%s — tampered or corrupt", what);
}

/* A frame whose checksum holds was written completely; a torn write cannot
 * produce one (short of a 1 in 2^32 accident), so finding one after a bad
 * frame means the damage is not a torn tail. */
static bool crc_valid_frame_at(const uint8_t *p, size_t avail)
{
	if (avail < IG_REC_OVERHEAD || memcmp(p, IG_REC_MAGIC, 4) != 0)
		return false;
	uint32_t flen = ig_get_u32(p + 4);
	if (flen < IG_REC_OVERHEAD || flen > IG_REC_MAX_BODY + IG_REC_OVERHEAD || flen > avail)
		return false;
	return ig_crc32c(0, p, flen - 4) == ig_get_u32(p + flen - 4);
}

static bool find_valid_frame(const uint8_t *map, size_t size, size_t from, size_t *found)
{
	while (from < size) {
		const uint8_t *p = memmem(map + from, size - from, IG_REC_MAGIC, 4);
		if (!p)
			return false;
		size_t at = (size_t)(p - map);
		if (crc_valid_frame_at(p, size - at)) {
			*found = at;
			return true;
		}
		from = at + 1;
	}
	return false;
}

/* Decoding (checksum + BLAKE2b of every frame) is most of a scan's work and
 * independent per frame, while the chain and Merkle checks must run in
 * order. Large logs therefore run as a two-stage pipeline: a helper thread
 * decodes chunk k+1 while the calling thread checks chunk k and finds the
 * frame boundaries of chunk k+2. Buffers are allocated once per scan. */
typedef struct scan_chunk {
	size_t *offs;
	ig_record *recs;
	uint8_t *status;         /* ig_frame_status per frame */
	size_t n;
	bool header_bad;         /* the walk stopped at a header that does not parse */
	size_t end;              /* where the walk stopped */
} scan_chunk;

typedef struct scan_helper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const uint8_t *map;
	size_t size;
	scan_chunk *job;         /* posted chunk, NULL when idle */
	bool quit;
} scan_helper;

static void decode_chunk(const uint8_t *map, size_t size, scan_chunk *c)
{
	for (size_t k = 0; k < c->n; k++)
		c->status[k] = (uint8_t)ig_record_decode(map + c->offs[k], size - c->offs[k], &c->recs[k]);
}

static void *scan_helper_main(void *arg)
{
	scan_helper *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->job && !h->quit)
			pthread_cond_wait(&h->cv, &h->mu);
		if (!h->job)
			break;
		scan_chunk *c = h->job;
		pthread_mutex_unlock(&h->mu);
		decode_chunk(h->map, h->size, c);
		pthread_mutex_lock(&h->mu);
		h->job = NULL;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static bool scan_helper_start(scan_helper *h, const uint8_t *map, size_t size)
{
	memset(h, 0, sizeof *h);
	h->map = map;
	h->size = size;
	if (pthread_mutex_init(&h->mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&h->cv, NULL) != 0) {
		pthread_mutex_destroy(&h->mu);
		return false;
	}
	if (pthread_create(&h->thread, NULL, scan_helper_main, h) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return false;
	}
	return true;
}

/* Lets a posted job finish (its buffers are freed next), then joins. */
static void scan_helper_stop(scan_helper *h)
{
	pthread_mutex_lock(&h->mu);
	h->quit = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
}

static void decode_start(scan_helper *h, const uint8_t *map, size_t size, scan_chunk *c)
{
	if (!h) {
		decode_chunk(map, size, c);
		return;
	}
	pthread_mutex_lock(&h->mu);
	h->job = c;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void decode_wait(scan_helper *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	while (h->job)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

/* Finds up to SCAN_CHUNK frame boundaries from *off using the headers alone;
 * a header that does not parse ends the walk and is examined later. */
static void walk_chunk(const uint8_t *map, size_t size, size_t *off, scan_chunk *c)
{
	size_t at = *off, n = 0;
	c->header_bad = false;
	while (n < SCAN_CHUNK && at < size) {
		uint32_t flen;
		if (size - at < 8 || memcmp(map + at, IG_REC_MAGIC, 4) != 0 ||
		    (flen = ig_get_u32(map + at + 4)) < IG_REC_OVERHEAD || flen > IG_REC_MAX_BODY + IG_REC_OVERHEAD ||
		    flen > size - at) {
			c->header_bad = true;
			break;
		}
		c->offs[n++] = at;
		at += flen;
	}
	c->n = n;
	c->end = at;
	*off = at;
}

static bool chunk_alloc(scan_chunk *c)
{
	memset(c, 0, sizeof *c);
	c->offs = malloc(SCAN_CHUNK * sizeof *c->offs);
	c->recs = malloc(SCAN_CHUNK * sizeof *c->recs);
	c->status = malloc(SCAN_CHUNK);
	return c->offs && c->recs && c->status;
}

static void chunk_free(scan_chunk *c)
{
	free(c->offs);
	free(c->recs);
	free(c->status);
}

static int check_genesis(const ledger_scan_in *in, ledger_scan_out *out, const uint8_t *map, size_t size, ig_error *err)
{
	static const uint8_t zero[IG_HASH_BYTES];
	ig_record g;
	ig_frame_status st = ig_record_decode(map, size, &g);
	if (st != IG_FRAME_OK)
		return corrupt(err, "ledger record 0: the genesis record is unreadable (%s)", ig_frame_status_text(st));
	if (g.index != 0 || g.type != IG_REC_GENESIS || memcmp(g.prev_hash, zero, IG_HASH_BYTES) != 0)
		return corrupt(err, "ledger record 0: not a genesis record (type %s, index %" PRIu64 ")",
		               ig_record_type_name(g.type), g.index);
	ig_error e = {0};
	if (ig_genesis_decode(g.body, g.body_len, &out->genesis, &e) != IG_OK)
		return corrupt(err, "ledger record 0: bad genesis body: %s", e.msg);
	if (out->genesis.version != IG_FORMAT_VERSION)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger format version %u is not supported by this iotguard (it reads version %d); "
		                    "use a matching iotguard release",
		                    out->genesis.version, IG_FORMAT_VERSION);
	if (in->expect_pk && sodium_memcmp(in->expect_pk, out->genesis.ch_pk, IG_PK_BYTES) != 0)
		return corrupt(err,
		               "ledger record 0: the genesis cluster-head key does not match %s/%s (wrong key file, "
		               "or the genesis record was altered)",
		               in->dir, IG_LEDGER_KEY);
	if (ig_checkpoint_origin(out->origin, sizeof out->origin, out->genesis.cluster) < 0)
		return corrupt(err, "ledger record 0: invalid cluster name in the genesis record");
	e.msg[0] = '\0';
	if (ig_checkpoint_verify(out->cp_text, out->cp_len, out->origin, out->genesis.ch_pk, &out->cp, &e) != IG_OK)
		return corrupt(err, "ledger checkpoint %s/%s: %s (it must be signed by the cluster-head key of "
		               "genesis record 0)",
		               in->dir, IG_LEDGER_CHECKPOINT, e.msg);
	return IG_OK;
}

/* Checks one decoded, checksum-valid record against its predecessor and
 * feeds it to the Merkle accumulator and the caller. */
static int accept_record(const ledger_scan_in *in, ledger_scan_out *out, const ig_record *rec, bool *merkle_bad, ig_error *err)
{
	uint64_t i = out->height;
	if (rec->index != i)
		return corrupt(err, "ledger record %" PRIu64 ": holds index %" PRIu64
		               " (a record is missing, duplicated or out of order)",
		               i, rec->index);
	if (i > 0 && memcmp(rec->prev_hash, out->head, IG_HASH_BYTES) != 0)
		return corrupt(err, "ledger record %" PRIu64 ": hash chain broken (prev_hash does not match record %" PRIu64 ")",
		               i, i - 1);
	if (i > 0 && rec->type == IG_REC_GENESIS)
		return corrupt(err, "ledger record %" PRIu64 ": a second genesis record", i);
	if (in->on_record) {
		ig_error cb = {0};
		int rc = in->on_record(in->ctx, rec, &cb);
		if (rc != IG_OK) {
			if (cb.msg[0] == '\0')
				snprintf(cb.msg, sizeof cb.msg, "rejected by the record handler (code %d)", rc);
			return ig_error_set(err, rc, "ledger record %" PRIu64 ": %s", i, cb.msg);
		}
	}
	memcpy(out->head, rec->hash, IG_HASH_BYTES);
	out->last_ts = rec->ts_ms;
	out->height = i + 1;
	ig_merkle_push(&out->acc, rec->hash);
	if (out->acc.size == out->cp.size) {
		uint8_t root[IG_HASH_BYTES];
		ig_merkle_root(&out->acc, root);
		/* Reported after the scan: a chain break in the next record names
		 * the altered record more precisely than a root mismatch does. */
		if (memcmp(root, out->cp.root, IG_HASH_BYTES) != 0)
			*merkle_bad = true;
	}
	return IG_OK;
}

static int scan_map(const ledger_scan_in *in, ledger_scan_out *out, const uint8_t *map, size_t size, ig_error *err)
{
	int rc = check_genesis(in, out, map, size, err);
	if (rc != IG_OK)
		return rc;

	bool merkle_bad = false;
	if (out->cp.size == 0) {
		uint8_t root[IG_HASH_BYTES];
		ig_merkle_root(&out->acc, root);
		merkle_bad = memcmp(root, out->cp.root, IG_HASH_BYTES) != 0;
	}

	scan_chunk chunks[2];
	bool ok = chunk_alloc(&chunks[0]);
	ok = chunk_alloc(&chunks[1]) && ok;
	if (!ok) {
		chunk_free(&chunks[0]);
		chunk_free(&chunks[1]);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory scanning the ledger");
	}
	scan_helper helper, *h = NULL;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (size >= PARALLEL_MIN_BYTES && cpus > 1 && scan_helper_start(&helper, map, size))
		h = &helper;

	size_t off = 0;
	bool bad = false;
	size_t bad_off = 0;
	ig_frame_status bad_st = IG_FRAME_OK;
	uint64_t next_progress = PROGRESS_EVERY;
	int cur = 0;
	walk_chunk(map, size, &off, &chunks[0]);
	decode_start(h, map, size, &chunks[0]);
	for (;;) {
		scan_chunk *c = &chunks[cur], *next = &chunks[cur ^ 1];
		bool more = !c->header_bad && off < size;
		if (more)
			walk_chunk(map, size, &off, next);
		decode_wait(h);
		if (more)
			decode_start(h, map, size, next);

		for (size_t k = 0; k < c->n; k++) {
			if (c->status[k] == IG_FRAME_BAD_FLAGS) {
				rc = corrupt(err, "ledger record %" PRIu64 ": %s", out->height,
				             ig_frame_status_text(IG_FRAME_BAD_FLAGS));
				break;
			}
			if (c->status[k] != IG_FRAME_OK) {
				bad = true;
				bad_off = c->offs[k];
				bad_st = (ig_frame_status)c->status[k];
				break;
			}
			rc = accept_record(in, out, &c->recs[k], &merkle_bad, err);
			if (rc != IG_OK)
				break;
			out->good_bytes = c->offs[k] + c->recs[k].frame_len;
		}
		if (rc != IG_OK || bad)
			break;
		if (c->header_bad) {
			ig_record tmp;
			bad = true;
			bad_off = c->end;
			bad_st = ig_record_decode(map + c->end, size - c->end, &tmp);
			if (bad_st == IG_FRAME_OK) /* cannot happen: the header check is stricter */
				bad_st = IG_FRAME_BAD_LENGTH;
			break;
		}
		if (in->progress && out->height >= next_progress) {
			in->progress(in->progress_ctx, out->height, out->good_bytes, size);
			next_progress = out->height + PROGRESS_EVERY;
		}
		if (!more)
			break;
		cur ^= 1;
	}
	if (h)
		scan_helper_stop(h);
	chunk_free(&chunks[0]);
	chunk_free(&chunks[1]);
	if (rc != IG_OK)
		return rc;

	if (bad) {
		size_t valid_at;
		if (out->height < out->cp.size)
			return corrupt(err, "ledger record %" PRIu64 ": %s at byte %zu, inside the signed checkpoint "
			               "(size %" PRIu64 ")",
			               out->height, ig_frame_status_text(bad_st), bad_off, out->cp.size);
		if (find_valid_frame(map, size, bad_off + 1, &valid_at))
			return corrupt(err, "ledger record %" PRIu64 ": %s at byte %zu, but a complete record follows "
			               "at byte %zu (not a torn tail)",
			               out->height, ig_frame_status_text(bad_st), bad_off, valid_at);
		out->torn_bytes = size - bad_off;
		out->torn_index = out->height;
	}
	if (out->height < out->cp.size)
		return corrupt(err, "ledger checkpoint covers %" PRIu64 " records but %s/%s holds only %" PRIu64
		               ": the log is shorter than its signed checkpoint (acknowledged records were removed)",
		               out->cp.size, in->dir, IG_LEDGER_LOG, out->height);
	if (merkle_bad)
		return corrupt(err, "ledger checkpoint (size %" PRIu64 "): the Merkle root of records 0..%" PRIu64
		               " does not match the signed root (a record was altered)",
		               out->cp.size, out->cp.size - 1);
	if (in->progress)
		in->progress(in->progress_ctx, out->height, out->good_bytes, size);
	return IG_OK;
}

int ledger_scan(const ledger_scan_in *in, ledger_scan_out *out, ig_error *err)
{
	memset(out, 0, sizeof *out);
	ig_merkle_init(&out->acc);
	/* The checkpoint is read before the log's size is taken: a concurrent
	 * writer only checkpoints durable records, so the log we then see holds
	 * at least everything this checkpoint covers. */
	int rc = ledger_read_checkpoint_file(in->dir_fd, in->dir, out->cp_text, &out->cp_len, err);
	if (rc != IG_OK)
		return rc;
	struct stat sb;
	if (fstat(in->log_fd, &sb) != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot stat %s/%s: %s", in->dir, IG_LEDGER_LOG, strerror(errno));
	if (sb.st_size == 0)
		return corrupt(err, "ledger record 0: %s/%s is empty (no genesis record)", in->dir, IG_LEDGER_LOG);
	if ((uint64_t)sb.st_size > SIZE_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "%s/%s is too large to map", in->dir, IG_LEDGER_LOG);
	size_t size = (size_t)sb.st_size;
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, in->log_fd, 0);
	if (map == MAP_FAILED)
		return ig_error_set(err, IG_ERR_IO, "cannot map %s/%s: %s", in->dir, IG_LEDGER_LOG, strerror(errno));
	(void)madvise(map, size, MADV_SEQUENTIAL);
	(void)ig_crc32c(0, "", 0); /* builds the tables before any helper thread runs */
	rc = scan_map(in, out, map, size, err);
	munmap(map, size);
	return rc;
}
