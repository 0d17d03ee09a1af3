/*
 * ledger_scan.c: the full check of a ledger log, shared by open(), by audits
 * (ig_ledger_verify) and by ig_ledger_scan_buffer.
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
 * It works on bytes in memory: a read-only mapping of the log (safe while a
 * writer appends) or a caller's buffer (fuzzing, tests). On a large log it
 * uses a second core (see "pipeline" below), and it gives the mapped pages
 * back as it goes, so replaying a 1 GB log does not add 1 GB to the
 * process's peak memory.
 */
#include "ig_checkpoint.h"
#include "ig_crc32c.h"
#include "ig_merkle.h"
#include "ig_record.h"
#include "ig_tiles.h"
#include "ledger_int.h"

#include <errno.h>
#include <fcntl.h>
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
#define SCAN_CHUNK 1024
/* Chunks in flight between the two threads: enough that neither waits on
 * the other's jitter (a page fault, a table growing), few enough that the
 * records they hold stay in cache. */
#define SCAN_RING 8
/* Below this a second thread costs more than it saves. */
#define PARALLEL_MIN_BYTES (4u << 20)
/* Mapped log pages already checked and applied are given back in steps of
 * this many bytes (one madvise per step). */
#define RELEASE_STEP (8u << 20)

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

/* A record handler's refusal, in the words open() has always
 * used: "ledger record N: <what the handler said>". */
static int refused(ig_error *err, uint64_t index, int rc, const ig_error *cb)
{
	if (cb->msg[0] == '\0')
		return ig_error_set(err, rc, "ledger record %" PRIu64 ": rejected by the record handler (code %d)", index,
		                    rc);
	return ig_error_set(err, rc, "ledger record %" PRIu64 ": %s", index, cb->msg);
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

/* ---- giving mapped pages back --------------------------------------------- */

/* The pages of a shared file mapping are part of the process's resident
 * memory until unmapped; dropping them behind the scan keeps the peak at
 * the state being built rather than state + log. The page cache keeps the
 * data, so reading them again (a later error message, the torn-tail search)
 * just maps them again. Only for the scan's own mapping: on a caller's
 * anonymous buffer MADV_DONTNEED would zero it. */
typedef struct page_release {
	const uint8_t *map;
	size_t done;             /* bytes [0, done) given back */
	size_t page;
	bool on;
} page_release;

static void release_before(page_release *pr, size_t off)
{
	if (!pr->on || off < pr->done + RELEASE_STEP)
		return;
	size_t upto = off & ~(pr->page - 1);
	if (upto > pr->done && madvise((void *)(pr->map + pr->done), upto - pr->done, MADV_DONTNEED) == 0)
		pr->done = upto;
}

/* ---- census ----------------------------------------------------------------- */

/* Counts frames by type from their headers alone (no checksum, no hash), so
 * the caller can size its tables once before the replay instead of doubling
 * them record by record. It is a hint: the frames are checked afterwards,
 * and a bad header just ends the count. */
static void take_census(const uint8_t *map, size_t size, page_release *pr, ig_ledger_census *c)
{
	memset(c, 0, sizeof *c);
	c->bytes = size;
	size_t at = 0;
	while (size - at >= IG_REC_HEADER_BYTES && memcmp(map + at, IG_REC_MAGIC, 4) == 0) {
		uint32_t flen = ig_get_u32(map + at + 4);
		if (flen < IG_REC_OVERHEAD || flen > IG_REC_MAX_BODY + IG_REC_OVERHEAD || flen > size - at)
			break;
		uint16_t type = ig_get_u16(map + at + 24);
		c->records++;
		if (type < IG_LEDGER_CENSUS_TYPES) {
			c->of_type[type]++;
			c->body_bytes[type] += flen - IG_REC_OVERHEAD;
		}
		at += flen;
		release_before(pr, at);
	}
}

/* ---- genesis and checkpoint ------------------------------------------------- */

static int check_genesis(const ledger_scan_in *in, ledger_scan_out *out, const uint8_t *map, size_t size, ig_error *err)
{
	static const uint8_t zero[IG_HASH_BYTES];
	ig_record g;
	ig_frame_status st = ig_record_decode(map, size, &g);
	if (st != IG_FRAME_OK)
		return corrupt(err, "ledger record 0: the genesis record is unreadable (%s)", ig_record_frame_status_text(st));
	if (g.index != 0 || g.type != IG_REC_GENESIS || memcmp(g.prev_hash, zero, IG_HASH_BYTES) != 0)
		return corrupt(err, "ledger record 0: not a genesis record (type %s, index %" PRIu64 ")",
		               ig_record_type_name(g.type), g.index);
	ig_error e = {0};
	if (ig_record_genesis_decode(g.body, g.body_len, &out->genesis, &e) != IG_OK)
		return corrupt(err, "ledger record 0: bad genesis body: %s", e.msg);
	if (out->genesis.version < IG_FORMAT_V1 || out->genesis.version > IG_FORMAT_VERSION)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger format version %u is not supported by this iotguard (it reads versions 1 to "
		                    "%d); use a matching iotguard release",
		                    out->genesis.version, IG_FORMAT_VERSION);
	out->version = out->genesis.version;
	ig_merkle_init_hash(&out->acc, ledger_tree_hash(out->genesis.version));
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

/* ---- pipeline ----------------------------------------------------------------
 *
 * A scan has two halves. Everything that depends only on the bytes -- frame,
 * checksum, BLAKE2b record hash, index and chain link -- is done by the
 * "verifier". Applying the records to the caller's state (on_record), which
 * must see them one at a time in order, is done by the "applier". On a
 * large log with two CPUs the verifier runs on its own thread and hands the
 * applier chunks of checked records through a small ring: no allocation per
 * record, and each thread keeps its own caches.
 *
 * The Merkle tree (one BLAKE2b node per record on average) is the work the
 * two share, so that neither waits for the other: the applier folds each
 * chunk into the accumulator, and the verifier hashes part of it first --
 * the roots of aligned runs of 2^h records, which the applier pushes as
 * single subtrees (ig_merkle_push_subtree), leaving it 1/2^h of the nodes.
 * The verifier picks h for each chunk from how many chunks wait in the
 * ring: none or few (the applier keeps up) and it leaves the whole tree to
 * the applier; a filling ring and it takes more. So an audit without
 * on_record puts the tree on the otherwise idle applier, and in the
 * broker's replay of 10M enrolls each thread does about 3.5 s of CPU
 * (before, with the whole tree on the verifier: verifier 4.7 s, applier
 * 2.7 s, so the start waited on the verifier). A run never straddles the
 * checkpoint's size, where the root is compared; the accumulator, and so
 * every verdict, is the same as pushing the records one by one.
 *
 * The verifier stops at the first thing wrong and says why in the chunk;
 * the applier applies every record before it first, so the outcome and the
 * message are exactly those of checking and applying each record in turn:
 * for record k, frame -> index -> chain -> genesis -> on_record; the root
 * at the checkpoint's size is judged after the last record. */

typedef enum scan_stop {
	STOP_NONE = 0,
	STOP_BAD_FRAME,          /* a frame that is not valid (torn tail or damage; decided at the end) */
	STOP_ERROR,              /* tampering: fails the scan */
} scan_stop;

typedef struct scan_chunk {
	size_t offs[SCAN_CHUNK];
	ig_record recs[SCAN_CHUNK];
	size_t n;                /* records that passed every check of the verifier */
	size_t end;              /* where the verifier goes on */
	bool last;               /* nothing follows this chunk */
	scan_stop stop;          /* why the verifier stopped after the n records */
	size_t bad_off;          /* STOP_BAD_FRAME */
	ig_frame_status bad_st;
	int rc;                  /* STOP_ERROR */
	ig_error err;
	/* The Merkle part the verifier did: the roots of the chunk's first
	 * n_nodes aligned runs of 2^height records (none when height is 0); the
	 * applier pushes these, then the hashes of the records after them. */
	unsigned height;
	size_t n_nodes;
	uint8_t nodes[SCAN_CHUNK / 2][IG_HASH_BYTES];
	/* Format 2: the Merkle leaf of each record, SHA-256(0x00 || frame)
	 * (format 1's leaf is the record hash itself). The verifier hashed
	 * those of the first leaves_done records; the applier hashes the rest. */
	uint8_t leaves[SCAN_CHUNK][IG_HASH_BYTES];
	size_t leaves_done;
	/* The chunk starts with a format record (docs/LEDGER.md 7.12): from it
	 * on the tree is format 2's over every frame, and this is that tree of
	 * the records before it, which replaces the accumulator. */
	bool switched;
	ig_merkle_acc switch_acc;
} scan_chunk;

typedef struct verifier {
	const uint8_t *map;
	size_t size;
	size_t off;              /* next frame */
	uint64_t index;          /* index the next record must hold */
	uint8_t prev[IG_HASH_BYTES];
	uint64_t cp_size;        /* no run of records it hashes may straddle this */
	unsigned version;        /* ledger format: which tree, which frame limit */
	bool upgraded;           /* a format record was seen */
	bool skip_tree;          /* the tree comes from the tiles (ledger_tree.c) */
	ig_merkle_acc run;       /* the run of 2^height records being hashed */
} verifier;

static void stop_error(scan_chunk *c, int rc)
{
	c->stop = STOP_ERROR;
	c->rc = rc;
}

/* The most Merkle work the verifier takes on: runs of 2^MAX_HEIGHT records
 * (the whole chunk). */
#define MAX_HEIGHT 10
_Static_assert(SCAN_CHUNK == 1u << MAX_HEIGHT, "a chunk is one run at MAX_HEIGHT");

/* A format record at index i, offset at, first in its chunk: checks it may
 * stand there and hashes format 2's tree over every frame before it into
 * c->switch_acc. Those frames were verified already; their pages may have
 * been released, and the mapping reads them again. */
static int format_switch(verifier *v, scan_chunk *c, const ig_record *rec, uint64_t i, size_t at)
{
	if (v->version != IG_FORMAT_V1 || v->upgraded)
		return corrupt(&c->err, "ledger record %" PRIu64 ": a format record in a ledger that is already format %u",
		               i, v->version);
	ig_format_rec f;
	ig_error e = {0};
	if (ig_record_format_decode(rec->body, rec->body_len, &f, &e) != IG_OK)
		return corrupt(&c->err, "ledger record %" PRIu64 ": bad format body: %s", i, e.msg);
	if (f.version != IG_FORMAT_V2)
		return corrupt(&c->err, "ledger record %" PRIu64 ": moves the ledger to format %u (only format 2 "
		               "follows format 1)",
		               i, (unsigned)f.version);
	ig_merkle_init_hash(&c->switch_acc, IG_MERKLE_SHA256);
	for (size_t off = 0; off < at;) {
		uint32_t flen = ig_get_u32(v->map + off + 4);
		if (flen > IG_FORMAT_V2_MAX_FRAME)
			return corrupt(&c->err, "ledger record %" PRIu64 ": moves the ledger to format 2, but record %" PRIu64
			               " is %" PRIu32 " bytes, over format 2's %d-byte limit",
			               i, c->switch_acc.size, flen, IG_FORMAT_V2_MAX_FRAME);
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, v->map + off, flen);
		ig_merkle_push(&c->switch_acc, leaf);
		off += flen;
	}
	c->switched = true;
	v->version = IG_FORMAT_V2;
	v->upgraded = true;
	return IG_OK;
}

/* Verifies the next up to SCAN_CHUNK records into c, hashing runs of
 * 2^height of them into Merkle subtree roots, and the format-2 leaves of
 * the first leaf_share records (all of them when height > 0: a run needs
 * its leaves). */
static void verify_chunk(verifier *v, scan_chunk *c, unsigned height, size_t leaf_share)
{
	c->n = 0;
	c->stop = STOP_NONE;
	c->switched = false;
	/* A run must be aligned in the tree (every chunk but the last holds
	 * SCAN_CHUNK records, so chunks start aligned), and must not straddle
	 * the checkpoint's size: the root is compared at exactly that leaf. */
	uint64_t first = v->index;
	if (height > MAX_HEIGHT || (first & ((UINT64_C(1) << height) - 1)) != 0 ||
	    (v->cp_size > first && v->cp_size < first + SCAN_CHUNK))
		height = 0;
	if (v->skip_tree)
		height = 0;
	if (height > 0)
		leaf_share = SCAN_CHUNK;
	c->height = height;
	c->n_nodes = 0;
	ig_merkle_hash tree = ledger_tree_hash(v->version);
	ig_merkle_init_hash(&v->run, tree);
	/* A chunk ends on a multiple of SCAN_CHUNK, so the next one starts
	 * aligned even after a chunk that a format record cut short. */
	size_t limit = SCAN_CHUNK - (size_t)(first & (SCAN_CHUNK - 1));
	while (c->n < limit && v->off < v->size) {
		ig_record *rec = &c->recs[c->n];
		size_t at = v->off;
		uint64_t i = v->index;
		ig_frame_status st = ig_record_decode(v->map + at, v->size - at, rec);
		if (st == IG_FRAME_BAD_FLAGS) {
			stop_error(c, corrupt(&c->err, "ledger record %" PRIu64 ": %s", i,
			                      ig_record_frame_status_text(IG_FRAME_BAD_FLAGS)));
			break;
		}
		if (st != IG_FRAME_OK) {
			c->stop = STOP_BAD_FRAME;
			c->bad_off = at;
			c->bad_st = st;
			break;
		}
		if (rec->index != i) {
			stop_error(c, corrupt(&c->err, "ledger record %" PRIu64 ": holds index %" PRIu64
			                      " (a record is missing, duplicated or out of order)",
			                      i, rec->index));
			break;
		}
		if (i > 0 && memcmp(rec->prev_hash, v->prev, IG_HASH_BYTES) != 0) {
			stop_error(c, corrupt(&c->err, "ledger record %" PRIu64 ": hash chain broken (prev_hash does not "
			                      "match record %" PRIu64 ")",
			                      i, i - 1));
			break;
		}
		if (i > 0 && rec->type == IG_REC_GENESIS) {
			stop_error(c, corrupt(&c->err, "ledger record %" PRIu64 ": a second genesis record", i));
			break;
		}
		if (rec->type == IG_REC_FORMAT) {
			if (c->n > 0)
				break; /* the next chunk starts with it */
			int rc = format_switch(v, c, rec, i, at);
			if (rc != IG_OK) {
				stop_error(c, rc);
				break;
			}
			tree = IG_MERKLE_SHA256;
			height = 0;
			c->height = 0;
		}
		if (rec->frame_len > ledger_max_frame(v->version)) {
			stop_error(c, corrupt(&c->err, "ledger record %" PRIu64 ": a frame of %" PRIu32 " bytes, over "
			                      "the %" PRIu32 "-byte limit of ledger format %u",
			                      i, rec->frame_len, ledger_max_frame(v->version), v->version));
			break;
		}
		const uint8_t *leaf = rec->hash;
		if (v->skip_tree) {
			/* nothing: ledger_tree.c checks the tiles after the scan */
		} else if (tree == IG_MERKLE_SHA256 && c->n < leaf_share) {
			ig_merkle_hash_leaf(tree, c->leaves[c->n], v->map + at, rec->frame_len);
			leaf = c->leaves[c->n];
		}
		if (height > 0) {
			ig_merkle_push(&v->run, leaf);
			if (v->run.size == UINT64_C(1) << height) {
				memcpy(c->nodes[c->n_nodes++], v->run.stack[0], IG_HASH_BYTES);
				ig_merkle_init_hash(&v->run, tree);
			}
		}
		memcpy(v->prev, rec->hash, IG_HASH_BYTES);
		v->index = i + 1;
		v->off = at + rec->frame_len;
		c->offs[c->n++] = at;
	}
	c->leaves_done = c->n < leaf_share ? c->n : leaf_share;
	c->end = v->off;
	c->last = c->stop != STOP_NONE || v->off >= v->size;
}

/* The ring between the verifier thread and the applier. */
typedef struct scan_ring {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	verifier *v;
	scan_chunk *chunks;      /* SCAN_RING */
	unsigned head, filled;   /* guarded by mu */
	bool quit;               /* the applier gave up: stop verifying */
} scan_ring;

static void *verifier_main(void *arg)
{
	scan_ring *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->filled == SCAN_RING && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->quit)
			break;
		scan_chunk *c = &r->chunks[(r->head + r->filled) % SCAN_RING];
		/* Balancing: chunks waiting in the ring mean the applier is the
		 * slower half, so the verifier takes more of the Merkle hashing
		 * (longer runs, fewer nodes left to the applier); an emptying ring
		 * hands it back. Half a ring of slack is kept so that neither
		 * waits on the other's jitter. */
		unsigned waiting = r->filled;
		unsigned height = waiting < SCAN_RING / 2 ? 0 : waiting - SCAN_RING / 2 + 1;
		/* SHA-256 of whole frames is most of format 2's work, so the
		 * applier hashes half of a chunk's leaves unless it is the slower
		 * half already (the ring half full: it applies state too). Judged
		 * per chunk on the ring's fill, finer shares only oscillated. */
		size_t leaf_share = waiting < SCAN_RING / 2 ? SCAN_CHUNK / 2 : SCAN_CHUNK;
		pthread_mutex_unlock(&r->mu);
		verify_chunk(r->v, c, height, leaf_share);
		pthread_mutex_lock(&r->mu);
		r->filled++;
		pthread_cond_broadcast(&r->cv);
		if (c->last)
			break;
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static bool ring_start(scan_ring *r, verifier *v, scan_chunk *chunks)
{
	memset(r, 0, sizeof *r);
	r->v = v;
	r->chunks = chunks;
	if (pthread_mutex_init(&r->mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&r->cv, NULL) != 0) {
		pthread_mutex_destroy(&r->mu);
		return false;
	}
	if (pthread_create(&r->thread, NULL, verifier_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		return false;
	}
	return true;
}

static scan_chunk *ring_take(scan_ring *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->filled == 0)
		pthread_cond_wait(&r->cv, &r->mu);
	scan_chunk *c = &r->chunks[r->head];
	pthread_mutex_unlock(&r->mu);
	return c;
}

static void ring_done(scan_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->head = (r->head + 1) % SCAN_RING;
	r->filled--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Stops the verifier (it may be mid-chunk; that chunk is then dropped) and
 * joins it. After this the verifier's results may be read. */
static void ring_stop(scan_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

/* How many records ahead of on_record the `ahead` hint runs: enough to
 * cover a memory access's latency with the work of the records between. */
#define AHEAD 8

static void merkle_check(ledger_scan_out *out, bool *merkle_bad)
{
	if (out->tree_from_tiles || out->acc.size != out->cp.size)
		return;
	uint8_t root[IG_HASH_BYTES];
	ig_merkle_root(&out->acc, root);
	/* Reported after the scan: a chain break in the next record names the
	 * altered record more precisely than a root mismatch does. */
	if (memcmp(root, out->cp.root, IG_HASH_BYTES) != 0)
		*merkle_bad = true;
}

/* Adds a verified chunk's records to the Merkle accumulator: the subtree
 * roots the verifier hashed, then the records after them one by one. */
static void merkle_fold(ledger_scan_out *out, scan_chunk *c, const uint8_t *map, bool *merkle_bad)
{
	/* Checkpoints up to the format record were checked with format 1's
	 * tree (the last at the previous chunk's end); later ones with 2's. */
	if (c->switched) {
		out->acc = c->switch_acc;
		out->version = IG_FORMAT_V2;
		out->format_index = c->recs[0].index;
	}
	if (out->tree_from_tiles)
		return;
	size_t k = 0;
	for (size_t j = 0; j < c->n_nodes; j++) {
		ig_merkle_push_subtree(&out->acc, c->nodes[j], c->height);
		merkle_check(out, merkle_bad);
		k += (size_t)1 << c->height;
	}
	bool sha = out->acc.hash == IG_MERKLE_SHA256;
	if (sha)
		for (size_t j = c->leaves_done; j < c->n; j++)
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, c->leaves[j], map + c->offs[j], c->recs[j].frame_len);
	for (; k < c->n; k++) {
		ig_merkle_push(&out->acc, sha ? c->leaves[k] : c->recs[k].hash);
		merkle_check(out, merkle_bad);
	}
}

/* Applies one verified chunk. Returns IG_OK to go on; *bad is set when the
 * verifier stopped at a bad frame. */
static int apply_chunk(const ledger_scan_in *in, ledger_scan_out *out, scan_chunk *c, const uint8_t *map, bool *bad,
                       size_t *bad_off, ig_frame_status *bad_st, bool *merkle_bad, ig_error *err)
{
	if (in->ahead)
		for (size_t k = 0; k < AHEAD && k < c->n; k++)
			in->ahead(in->ctx, &c->recs[k]);
	for (size_t k = 0; k < c->n; k++) {
		const ig_record *rec = &c->recs[k];
		if (in->ahead && k + AHEAD < c->n)
			in->ahead(in->ctx, &c->recs[k + AHEAD]);
		if (in->on_record) {
			ig_error cb;
			cb.code = IG_OK;
			cb.msg[0] = '\0'; /* not the whole struct: this runs for every record */
			int rc = in->on_record(in->ctx, rec, &cb);
			if (rc != IG_OK)
				return refused(err, rec->index, rc, &cb);
		}
		out->height = rec->index + 1;
		out->last_ts = rec->ts_ms;
		out->good_bytes = c->offs[k] + rec->frame_len;
		if (out->height == out->cp.size)
			out->cp_last_off = c->offs[k];
	}
	if (c->n > 0)
		memcpy(out->head, c->recs[c->n - 1].hash, IG_HASH_BYTES);
	merkle_fold(out, c, map, merkle_bad);
	if (c->stop == STOP_ERROR) {
		if (err) {
			*err = c->err;
			err->code = c->rc;
		}
		return c->rc;
	}
	if (c->stop == STOP_BAD_FRAME) {
		*bad = true;
		*bad_off = c->bad_off;
		*bad_st = c->bad_st;
	}
	return IG_OK;
}

static int scan_map(const ledger_scan_in *in, ledger_scan_out *out, const uint8_t *map, size_t size,
                    page_release *pr, ig_error *err)
{
	int rc = check_genesis(in, out, map, size, err);
	if (rc != IG_OK)
		return rc;

	/* A format-2 ledger opened by a writer takes its tree from the tiles
	 * when they check out against the signed checkpoint, after the scan;
	 * until then the scan hashes no tree at all (ledger_tree.c says why this
	 * accepts exactly the same logs). */
	out->tree_from_tiles = in->tree_from_tiles && out->genesis.version >= IG_FORMAT_V2 && in->dir_fd >= 0 &&
	                       faccessat(in->dir_fd, IG_TILES_SUBDIR "/tile/0", F_OK, 0) == 0;
	verifier v = {.map = map, .size = size, .cp_size = out->cp.size, .version = out->genesis.version,
	              .skip_tree = out->tree_from_tiles};
	bool merkle_bad = false;
	merkle_check(out, &merkle_bad); /* a checkpoint of size 0 */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	bool parallel = size >= PARALLEL_MIN_BYTES && cpus > 1;
	scan_chunk *chunks = malloc((parallel ? SCAN_RING : 1) * sizeof *chunks);
	if (!chunks)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory scanning the ledger");
	scan_ring ring;
	if (parallel && !ring_start(&ring, &v, chunks))
		parallel = false;
	/* The verifier needs no census, so it starts first and works while
	 * the census is taken; only on_record must wait for it. */
	if (in->on_census) {
		ig_ledger_census census;
		take_census(map, size, pr, &census);
		pr->done = 0; /* the scan maps the pages again */
		in->on_census(in->ctx, &census);
	}

	bool bad = false;
	size_t bad_off = 0;
	ig_frame_status bad_st = IG_FRAME_OK;
	uint64_t next_progress = PROGRESS_EVERY;
	for (;;) {
		scan_chunk *c;
		if (parallel) {
			c = ring_take(&ring);
		} else {
			c = &chunks[0];
			verify_chunk(&v, c, 0, SCAN_CHUNK); /* one thread: nothing to balance */
		}
		rc = apply_chunk(in, out, c, map, &bad, &bad_off, &bad_st, &merkle_bad, err);
		bool last = c->last;
		size_t end = c->end;
		if (parallel)
			ring_done(&ring); /* c is the verifier's again */
		if (rc != IG_OK || last)
			break;
		release_before(pr, end);
		if (in->progress && out->height >= next_progress) {
			in->progress(in->progress_ctx, out->height, out->good_bytes, size);
			next_progress = out->height + PROGRESS_EVERY;
		}
	}
	if (parallel)
		ring_stop(&ring);
	free(chunks);
	if (rc != IG_OK)
		return rc;

	if (bad) {
		size_t valid_at;
		if (out->height < out->cp.size)
			return corrupt(err, "ledger record %" PRIu64 ": %s at byte %zu, inside the signed checkpoint "
			               "(size %" PRIu64 ")",
			               out->height, ig_record_frame_status_text(bad_st), bad_off, out->cp.size);
		if (find_valid_frame(map, size, bad_off + 1, &valid_at))
			return corrupt(err, "ledger record %" PRIu64 ": %s at byte %zu, but a complete record follows "
			               "at byte %zu (not a torn tail)",
			               out->height, ig_record_frame_status_text(bad_st), bad_off, valid_at);
		out->torn_bytes = size - bad_off;
		out->torn_index = out->height;
	}
	if (out->height < out->cp.size)
		return corrupt(err, "ledger checkpoint covers %" PRIu64 " records but %s/%s holds only %" PRIu64
		               ": the log is shorter than its signed checkpoint (acknowledged records were removed)",
		               out->cp.size, in->dir, IG_LEDGER_LOG, out->height);
	if (out->tree_from_tiles) {
		ig_error why = {0};
		if (ledger_tree_from_tiles(in->dir, &out->cp, map, (size_t)out->cp_last_off, (size_t)out->good_bytes,
		                           &out->acc, &why) != IG_OK) {
			ig_log(IG_LOG_WARN, "ledger %s: its tiles cannot vouch for the log (%s); hashing the whole log instead",
			       in->dir, why.msg);
			out->tree_from_tiles = false;
			uint8_t root[IG_HASH_BYTES];
			ledger_tree_from_log(map, (size_t)out->good_bytes, out->cp.size, &out->acc, root);
			merkle_bad = sodium_memcmp(root, out->cp.root, IG_HASH_BYTES) != 0;
		}
	}
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
	(void)ig_crc32c(0, "", 0); /* builds the tables before a verifier thread runs */
	page_release pr = {0};
	if (in->buf) {
		if (in->cp_len > IG_CHECKPOINT_MAX)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger checkpoint %s/%s is larger than %d bytes — tampered or corrupt", in->dir,
			                    IG_LEDGER_CHECKPOINT, IG_CHECKPOINT_MAX);
		memcpy(out->cp_text, in->cp_text, in->cp_len);
		out->cp_text[in->cp_len] = '\0';
		out->cp_len = in->cp_len;
		if (in->buf_len == 0)
			return corrupt(err, "ledger record 0: %s/%s is empty (no genesis record)", in->dir, IG_LEDGER_LOG);
		return scan_map(in, out, in->buf, in->buf_len, &pr, err);
	}
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
	long page = sysconf(_SC_PAGESIZE);
	pr = (page_release){.map = map, .page = page > 0 ? (size_t)page : 4096, .on = true};
	rc = scan_map(in, out, map, size, &pr, err);
	munmap(map, size);
	return rc;
}

/* ---- on memory ------------------------------------------------------------------ */

int ig_ledger_scan_buffer(const uint8_t *log, size_t log_len, const char *checkpoint, size_t checkpoint_len,
                          const ig_ledger_open_opts *opts, ig_verify_result *res, ig_error *err)
{
	static const ig_ledger_open_opts no_opts;
	if ((!log && log_len > 0) || (!checkpoint && checkpoint_len > 0))
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_scan_buffer: missing buffer");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");
	if (!opts)
		opts = &no_opts;
	static const uint8_t empty[1];
	ledger_scan_in in = {
		.dir = "(memory)",
		.dir_fd = -1,
		.log_fd = -1,
		.buf = log ? log : empty,
		.buf_len = log_len,
		.cp_text = checkpoint ? checkpoint : "",
		.cp_len = checkpoint_len,
		.on_record = opts->on_record,
		.ctx = opts->ctx,
		.on_census = opts->on_census,
		.ahead = opts->ahead,
		.progress = opts->progress,
		.progress_ctx = opts->progress_ctx,
	};
	ledger_scan_out *so = malloc(sizeof *so);
	if (!so)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory scanning a ledger in memory");
	int rc = ledger_scan(&in, so, err);
	if (rc == IG_OK && res)
		ledger_scan_result(so, res);
	free(so);
	return rc;
}
