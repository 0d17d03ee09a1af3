/*
 * ledger.c: the append-only, hash-chained, group-committed ledger.
 *
 * Why this exists: the cluster head's identity decisions must be provable
 * later and must survive a crash, yet the broker's event loop must never wait
 * on the disk. Three parts live here because they must agree byte for byte:
 *
 *   init      creates the directory, the cluster-head key, the genesis record
 *             and the first checkpoint;
 *   scan      checks a whole log (frames, chain, Merkle root against the
 *             signed checkpoint) for open() and for audits, and tells a torn
 *             tail left by a crash from tampering;
 *   writer    one thread that takes every queued append, writes them with one
 *             write(), makes them durable with one fdatasync() (group
 *             commit), writes a signed checkpoint covering them, and only
 *             then hands completions back to the caller's thread.
 *
 * Acknowledging only what a durable checkpoint covers is what makes loss
 * detectable: a log cut at a record boundary, or a record altered, anywhere
 * in what was ever acknowledged, contradicts the signed checkpoint. Records
 * past the checkpoint were never acknowledged, so a bad frame there with
 * nothing valid after it can only be a torn write and may be cut.
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
 */
#include "ig_ledger.h"

#include "ig_checkpoint.h"
#include "ig_crc32c.h"
#include "ig_keyfile.h"
#include "ig_merkle.h"
#include "ig_record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BATCH 4096
/* While the disk is full the held batch is retried after 10 ms, doubling up
 * to once a second: quick recovery when space comes back, little load while
 * it does not. */
#define NOSPACE_RETRY_MIN_US 10000
#define NOSPACE_RETRY_MAX_US 1000000
/* A batch's buffer is capped so a burst of large bodies cannot make one
 * write() allocate hundreds of megabytes. */
#define MAX_BATCH_BYTES (8u << 20)
/* Blocking submitters resubmit within microseconds of being woken; if the
 * writer checkpointed in that gap it would add two fsyncs to every batch.
 * "Idle" therefore means the queue stayed empty this long. */
#define IDLE_GRACE_US 1000
/* Upper bound on how long the writer waits for returning submitters before
 * an fdatasync (see writer_main); normally half an fdatasync. */
#define MAX_GATHER_US 2000
#define PROGRESS_EVERY 65536
#define SCAN_CHUNK 4096
/* Below this a second hashing thread costs more than it saves. */
#define PARALLEL_MIN_BYTES (4u << 20)

/* ---- small I/O helpers ---------------------------------------------------- */

static ssize_t sys_pwrite(void *ctx, const char *file, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	(void)file;
	return pwrite(fd, buf, len, off);
}

static int sys_sync(void *ctx, const char *file, int fd)
{
	(void)ctx;
	return strcmp(file, IG_LEDGER_LOG) == 0 ? fdatasync(fd) : fsync(fd);
}

static const ig_ledger_io sys_io = {.pwrite = sys_pwrite, .sync = sys_sync, .ctx = NULL};

/* ledger.log and checkpoint hold nothing secret (they are what auditors
 * verify), so they are created 0644 less the creating process's umask: the
 * operator's umask decides whether others may read them. ch.key is always
 * 0600 (ig_keyfile.h); a directory init creates is 0700 less the umask. */
#define LEDGER_FILE_MODE 0644

/* ENOSPC and EDQUOT both mean "no room now, nothing lost": worth a retry. */
static bool errno_is_full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/* Writes len bytes at off; *done gets how many were accepted before a
 * failure (errno says why). */
static int pwrite_all(const ig_ledger_io *io, const char *file, int fd, const uint8_t *buf, size_t len,
                      uint64_t off, size_t *done)
{
	size_t got = 0;
	int rc = 0;
	while (got < len) {
		ssize_t n = io->pwrite(io->ctx, file, fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		if (n == 0) {
			errno = EIO;
			rc = -1;
			break;
		}
		got += (size_t)n;
	}
	if (done)
		*done = got;
	return rc;
}

/* Replaces the checkpoint atomically: a crash leaves either the old or the
 * new one, never a mix. Returns IG_ERR_NOSPACE when the disk was full before
 * any fsync (the old checkpoint is intact and a retry is safe), IG_ERR_IO for
 * anything else. */
static int write_checkpoint_file(const ig_ledger_io *io, int dir_fd, const char *dir, const char *text,
                                 size_t len, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_CHECKPOINT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, LEDGER_FILE_MODE);
	if (fd < 0)
		return ig_error_set(err, errno_is_full(errno) ? IG_ERR_NOSPACE : IG_ERR_IO,
		                    "cannot create %s/%s: %s", dir, IG_LEDGER_CHECKPOINT_TMP, strerror(errno));
	if (pwrite_all(io, IG_LEDGER_CHECKPOINT_TMP, fd, (const uint8_t *)text, len, 0, NULL) != 0) {
		int e = errno;
		close(fd);
		return ig_error_set(err, errno_is_full(e) ? IG_ERR_NOSPACE : IG_ERR_IO, "cannot write %s/%s: %s", dir,
		                    IG_LEDGER_CHECKPOINT_TMP, strerror(e));
	}
	if (io->sync(io->ctx, IG_LEDGER_CHECKPOINT_TMP, fd) != 0) {
		int e = errno;
		close(fd);
		return ig_error_set(err, IG_ERR_IO, "fsync of %s/%s failed: %s", dir, IG_LEDGER_CHECKPOINT_TMP,
		                    strerror(e));
	}
	if (close(fd) != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot write %s/%s: %s", dir, IG_LEDGER_CHECKPOINT_TMP,
		                    strerror(errno));
	if (renameat(dir_fd, IG_LEDGER_CHECKPOINT_TMP, dir_fd, IG_LEDGER_CHECKPOINT) != 0)
		return ig_error_set(err, errno_is_full(errno) ? IG_ERR_NOSPACE : IG_ERR_IO,
		                    "cannot rename %s/%s to %s: %s", dir, IG_LEDGER_CHECKPOINT_TMP, IG_LEDGER_CHECKPOINT,
		                    strerror(errno));
	if (io->sync(io->ctx, ".", dir_fd) != 0)
		return ig_error_set(err, IG_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(errno));
	return IG_OK;
}

static int read_checkpoint_file(int dir_fd, const char *dir, char *out, size_t *len, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_CHECKPOINT, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger checkpoint missing (%s/%s); restore it from a backup or a "
			                    "published ledger head",
			                    dir, IG_LEDGER_CHECKPOINT);
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_CHECKPOINT, strerror(errno));
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, out + got, IG_CHECKPOINT_MAX + 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			return ig_error_set(err, IG_ERR_IO, "cannot read %s/%s: %s", dir, IG_LEDGER_CHECKPOINT, strerror(e));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > IG_CHECKPOINT_MAX) {
			close(fd);
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger checkpoint %s/%s is larger than %d bytes — tampered or corrupt",
			                    dir, IG_LEDGER_CHECKPOINT, IG_CHECKPOINT_MAX);
		}
	}
	close(fd);
	out[got] = '\0';
	*len = got;
	return IG_OK;
}

static int open_dir(const char *dir, ig_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_NOTFOUND,
			                    "ledger %s not found; create it with `iotguard init --ledger %s --cluster NAME`",
			                    dir, dir);
		return ig_error_set(err, IG_ERR_IO, "cannot open ledger directory %s: %s", dir, strerror(errno));
	}
	return fd;
}

static int open_log(int dir_fd, const char *dir, int flags, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_LOG, flags | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_NOTFOUND,
			                    "%s/%s not found: %s is not a ledger; create one with `iotguard init`", dir,
			                    IG_LEDGER_LOG, dir);
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_LOG, strerror(errno));
	}
	return fd;
}

static int take_lock(int dir_fd, const char *dir, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_LOCK, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return ig_error_set(err, IG_ERR_LOCKED,
			                    "ledger %s is in use by another writer (is the broker running?); stop it "
			                    "or use the online mode",
			                    dir);
		return ig_error_set(err, IG_ERR_IO, "cannot lock %s/%s: %s", dir, IG_LEDGER_LOCK, strerror(e));
	}
	return fd;
}

static int key_path(char *out, size_t cap, const char *dir, ig_error *err)
{
	int n = snprintf(out, cap, "%s/%s", dir, IG_LEDGER_KEY);
	if (n < 0 || (size_t)n >= cap)
		return ig_error_set(err, IG_ERR_RANGE, "ledger path %s is too long", dir);
	return IG_OK;
}

/* ---- scan: the full check shared by open() and verify() ------------------- */

typedef struct scan_in {
	const char *dir;
	int dir_fd;
	int log_fd;
	const uint8_t *expect_pk;       /* writer: ch.key's public key; NULL otherwise */
	ig_record_fn on_record;
	void *ctx;
	ig_progress_fn progress;
	void *progress_ctx;
} scan_in;

typedef struct scan_out {
	ig_genesis genesis;
	char origin[IG_CLUSTER_MAX + 16];
	ig_checkpoint cp;
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	uint64_t height;
	uint8_t head[IG_HASH_BYTES];
	ig_merkle_acc acc;
	uint64_t good_bytes;            /* end of the last valid record */
	uint64_t torn_bytes;
	uint64_t torn_index;            /* index the torn record would have had */
	uint64_t last_ts;
} scan_out;

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

static int check_genesis(const scan_in *in, scan_out *out, const uint8_t *map, size_t size, ig_error *err)
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
static int accept_record(const scan_in *in, scan_out *out, const ig_record *rec, bool *merkle_bad, ig_error *err)
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

static int scan_map(const scan_in *in, scan_out *out, const uint8_t *map, size_t size, ig_error *err)
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

static int scan_ledger(const scan_in *in, scan_out *out, ig_error *err)
{
	memset(out, 0, sizeof *out);
	ig_merkle_init(&out->acc);
	/* The checkpoint is read before the log's size is taken: a concurrent
	 * writer only checkpoints durable records, so the log we then see holds
	 * at least everything this checkpoint covers. */
	int rc = read_checkpoint_file(in->dir_fd, in->dir, out->cp_text, &out->cp_len, err);
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

/* ---- the ledger object ----------------------------------------------------- */

/* A blocking append sleeps on its own semaphore, so a finished batch wakes
 * exactly the threads whose records it holds, never every waiter, and
 * never while the writer holds mu. A wakeup costs several microseconds on
 * a VM, so the writer posts only the first waiter of a batch and each woken
 * waiter posts two more (a binary tree): the writer is back at its next
 * fdatasync after one post, and 64 waiters are awake after 6 rounds. */
typedef struct append_waiter {
	sem_t done;
	int status;
	ig_record rec;
	struct append_waiter *wake_a, *wake_b;  /* posted by this waiter once it wakes */
} append_waiter;

typedef struct append_node {
	struct append_node *next;
	ig_append_done_fn done;
	void *ctx;
	append_waiter *waiter; /* blocking append; NULL for submit */
	uint64_t submit_us;
	int status;
	uint16_t type;
	uint32_t body_len;
	ig_record rec;
	uint8_t body[];
} append_node;

struct ig_ledger {
	char *dir;
	int dir_fd, log_fd, lock_fd, event_fd;
	bool writer;
	char cluster[IG_CLUSTER_MAX + 1];
	char origin[IG_CLUSTER_MAX + 16];
	uint8_t ch_pk[IG_PK_BYTES];
	uint8_t ch_sk[IG_SK_BYTES];
	uint32_t max_batch;
	ig_ledger_io io;

	pthread_mutex_t mu;
	pthread_cond_t work_cond;    /* the writer waits here for work */
	pthread_cond_t done_cond;    /* ig_ledger_sync waits here */
	pthread_t thread;
	bool thread_started;

	/* Guarded by mu. */
	append_node *queue_head, *queue_tail;
	append_node *done_head, *done_tail;
	uint64_t queued;             /* nodes in queue_head..queue_tail */
	size_t wake_writer_at;       /* 0: writer busy; else signal it at this queue length */
	bool in_flight;              /* a batch is being written or waits for disk space */
	bool stopping;
	bool failed;
	bool nospace;                /* the held batch waits for disk space */
	bool event_pending;
	/* Not guarded: the broker's loop checks these on every pass, so they
	 * must cost no lock and no system call when nothing happened. */
	atomic_bool poll_work;
	atomic_bool checkpoint_changed;
	int sync_waiters;
	long fail_after;
	uint8_t head[IG_HASH_BYTES];
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	ig_checkpoint cp;
	uint64_t pending;
	uint64_t batches;
	uint64_t records_committed;
	uint64_t last_commit_us, max_commit_us, latency_sum_us;
	uint64_t nospace_events;
	_Atomic uint64_t height;     /* read lock-free by ig_ledger_height */

	/* Owned by the writer thread (and by open before it starts). */
	append_waiter **wake;        /* blocking appends to post once mu is released */
	size_t wake_n, wake_cap;
	ig_merkle_acc acc;           /* every record in the log that is durable */
	ig_merkle_acc acc_tmp;
	uint64_t log_end;
	uint64_t last_ts;
	uint64_t fsync_avg_us;       /* moving average of fdatasync time */
	uint64_t gather_us;          /* see writer_main */
	uint8_t *wbuf;
	size_t wcap;
};

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
	long fail_after;
	batch_stage stage;
	ig_checkpoint cp;
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
} write_batch;

/* How an attempt at a batch ended. */
typedef enum { RUN_OK, RUN_NOSPACE, RUN_FAILED } run_result;

static void notify_locked(ig_ledger *l)
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

/* The record (index, hash) is reported for IG_OK and for IG_ERR_UNKNOWN: in
 * the second case it is what the record is if the next open finds it. */
static bool status_has_record(int status)
{
	return status == IG_OK || status == IG_ERR_UNKNOWN;
}

static void complete_locked(ig_ledger *l, append_node *n, int status)
{
	n->status = status;
	l->pending--;
	if (n->waiter) {
		append_waiter *w = n->waiter;
		w->status = status;
		if (status_has_record(status)) {
			w->rec = n->rec;
			w->rec.body = NULL;
		}
		free(n);
		if (l->wake_n == l->wake_cap) {
			size_t cap = l->wake_cap ? 2 * l->wake_cap : 256;
			append_waiter **nw = realloc(l->wake, cap * sizeof *nw);
			if (!nw) {
				sem_post(&w->done); /* slower under mu, but correct */
				return;
			}
			l->wake = nw;
			l->wake_cap = cap;
		}
		l->wake[l->wake_n++] = w;
		return;
	}
	n->next = NULL;
	if (l->done_tail)
		l->done_tail->next = n;
	else
		l->done_head = n;
	l->done_tail = n;
	l->event_pending = true;
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

static void fail_list_locked(ig_ledger *l, append_node *n, int status)
{
	while (n) {
		append_node *next = n->next;
		complete_locked(l, n, status);
		n = next;
	}
}

/* Fails every queued record that was never written with `status`. */
static void fail_queue_locked(ig_ledger *l, int status)
{
	append_node *q = l->queue_head;
	l->queue_head = l->queue_tail = NULL;
	l->queued = 0;
	fail_list_locked(l, q, status);
}

static void enter_failed_locked(ig_ledger *l)
{
	l->failed = true;
	l->nospace = false;
	fail_queue_locked(l, IG_ERR_IO);
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
		complete_locked(l, n, maybe ? IG_ERR_UNKNOWN : absent_status);
		n = next;
	}
	b->head = NULL;
	b->count = 0;
}

/* Encodes the batch into one buffer and fixes its indexes, timestamp and
 * hashes. Runs on the writer thread without mu. */
static int encode_batch(ig_ledger *l, write_batch *b)
{
	size_t need = 0;
	for (append_node *n = b->head; n; n = n->next)
		need += (size_t)n->body_len + IG_REC_OVERHEAD;
	if (need > l->wcap) {
		size_t cap = l->wcap ? l->wcap : 65536;
		while (cap < need)
			cap *= 2;
		uint8_t *nb = realloc(l->wbuf, cap);
		if (!nb) {
			ig_log(IG_LOG_ERR, "ledger %s: out of memory for a write batch of %zu bytes; appends are refused",
			       l->dir, need);
			return IG_ERR_NOMEM;
		}
		l->wbuf = nb;
		l->wcap = cap;
	}

	uint64_t ts = ig_now_ms();
	if (ts < l->last_ts)
		ts = l->last_ts; /* timestamps never go backwards in the log, even if the clock does */
	l->acc_tmp = l->acc;
	uint64_t index = l->acc.size;
	const uint8_t *prev = l->head;
	size_t pos = 0;
	for (append_node *n = b->head; n; n = n->next) {
		ig_record *rec = &n->rec;
		memset(rec, 0, sizeof *rec);
		rec->index = index++;
		rec->ts_ms = ts;
		rec->type = n->type;
		memcpy(rec->prev_hash, prev, IG_HASH_BYTES);
		rec->body = n->body;
		rec->body_len = n->body_len;
		int len = ig_record_encode(l->wbuf + pos, l->wcap - pos, rec);
		if (len < 0) {
			ig_log(IG_LOG_ERR, "ledger %s: cannot encode record %" PRIu64 " (code %d); appends are refused",
			       l->dir, rec->index, len);
			return IG_ERR_INVAL;
		}
		pos += (size_t)len;
		prev = rec->hash;
		ig_merkle_push(&l->acc_tmp, rec->hash);
	}
	b->bytes = pos;
	b->ts = ts;
	b->written = 0;
	b->stage = STAGE_WRITE;
	return IG_OK;
}

/* Writes the batch to the log and makes it durable with one fdatasync. */
static run_result write_log(ig_ledger *l, write_batch *b)
{
	size_t done = 0;
	if (b->fail_after >= 0) {
		size_t cut = (size_t)b->fail_after < b->bytes ? (size_t)b->fail_after : b->bytes;
		(void)pwrite_all(&l->io, IG_LEDGER_LOG, l->log_fd, l->wbuf, cut, l->log_end, &done);
		if (done > b->written)
			b->written = done;
		ig_log(IG_LOG_ERR, "ledger %s: injected write failure after %zu of %zu bytes; appends are refused",
		       l->dir, cut, b->bytes);
		return RUN_FAILED;
	}
	int rc = pwrite_all(&l->io, IG_LEDGER_LOG, l->log_fd, l->wbuf, b->bytes, l->log_end, &done);
	int e = errno;
	if (done > b->written)
		b->written = done;
	if (rc != 0) {
		if (errno_is_full(e))
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
		       l->dir, IG_LEDGER_LOG, strerror(e), errno_is_full(e) ? " (the disk is full)" : "");
		return RUN_FAILED;
	}
	uint64_t took = ig_mono_us() - sync_start;
	l->fsync_avg_us = l->fsync_avg_us ? (7 * l->fsync_avg_us + took) / 8 : took;
	l->gather_us = l->fsync_avg_us / 2 < MAX_GATHER_US ? l->fsync_avg_us / 2 : MAX_GATHER_US;
	l->acc = l->acc_tmp;
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
	                 : write_checkpoint_file(&l->io, l->dir_fd, l->dir, b->cp_text, (size_t)len, &e);
	if (rc == IG_ERR_NOSPACE)
		return RUN_NOSPACE;
	if (rc != IG_OK) {
		ig_log(IG_LOG_ERR, "ledger %s: %s; appends are refused until the disk is fixed and the ledger reopened",
		       l->dir, e.msg);
		return RUN_FAILED;
	}
	b->cp_len = (size_t)len;
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
	bool first = true;
	for (append_node *n = b->head; n;) {
		append_node *next = n->next;
		uint64_t lat = now >= n->submit_us ? now - n->submit_us : 0;
		if (first) {
			l->last_commit_us = lat;
			first = false;
		}
		if (lat > l->max_commit_us)
			l->max_commit_us = lat;
		l->latency_sum_us += lat;
		if (!next)
			memcpy(l->head, n->rec.hash, IG_HASH_BYTES);
		complete_locked(l, n, IG_OK);
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
		fail_queue_locked(l, IG_ERR_NOSPACE);
		*retry_at = ig_mono_us() + *retry_us;
		*retry_us = *retry_us * 2 > NOSPACE_RETRY_MAX_US ? NOSPACE_RETRY_MAX_US : *retry_us * 2;
		notify_locked(l);
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
	notify_locked(l);
	return true;
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

	pthread_mutex_lock(&l->mu);
	if (!b) {
		ig_log(IG_LOG_ERR, "ledger %s: out of memory starting the writer; appends are refused", l->dir);
		enter_failed_locked(l);
		notify_locked(l);
	}
	for (;;) {
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
				notify_locked(l);
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
				notify_locked(l);
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
			append_node *head = l->queue_head, *tail = head;
			size_t count = 1, bytes = (size_t)head->body_len + IG_REC_OVERHEAD;
			while (tail->next && count < l->max_batch &&
			       bytes + tail->next->body_len + IG_REC_OVERHEAD <= MAX_BATCH_BYTES) {
				tail = tail->next;
				bytes += (size_t)tail->body_len + IG_REC_OVERHEAD;
				count++;
			}
			l->queue_head = tail->next;
			if (!l->queue_head)
				l->queue_tail = NULL;
			tail->next = NULL;
			l->queued -= count;
			memset(b, 0, offsetof(write_batch, cp_text));
			b->head = head;
			b->count = count;
			b->fail_after = l->fail_after;
			l->in_flight = true;
			pthread_mutex_unlock(&l->mu);
			int rc = encode_batch(l, b);
			pthread_mutex_lock(&l->mu);
			if (rc != IG_OK) {
				l->in_flight = false;
				fail_list_locked(l, b->head, rc);
				b->head = NULL;
				enter_failed_locked(l);
				notify_locked(l);
				continue;
			}
			held = !attempt_batch_locked(l, b, &retry_us, &retry_at);
			if (!held && !l->failed) {
				last_batch = count;
				gather_until = ig_mono_us() + l->gather_us;
			}
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
		pthread_cond_wait(&l->work_cond, &l->mu);
		l->wake_writer_at = 0;
	}
	pthread_mutex_unlock(&l->mu);
	free(b);
	return NULL;
}

static void ledger_free(ig_ledger *l)
{
	if (!l)
		return;
	if (l->log_fd >= 0)
		close(l->log_fd);
	if (l->lock_fd >= 0)
		close(l->lock_fd); /* drops the flock */
	if (l->event_fd >= 0)
		close(l->event_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
	sodium_memzero(l->ch_sk, sizeof l->ch_sk);
	pthread_cond_destroy(&l->work_cond);
	pthread_cond_destroy(&l->done_cond);
	pthread_mutex_destroy(&l->mu);
	free(l->wbuf);
	free(l->wake);
	free(l->dir);
	free(l);
}

static ig_ledger *ledger_alloc(const char *dir)
{
	ig_ledger *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->dir_fd = l->log_fd = l->lock_fd = l->event_fd = -1;
	l->fail_after = -1;
	l->dir = strdup(dir);
	pthread_condattr_t ca;
	bool ok = l->dir != NULL;
	ok = ok && pthread_mutex_init(&l->mu, NULL) == 0;
	ok = ok && pthread_condattr_init(&ca) == 0;
	if (ok) {
		/* The idle grace is timed on the monotonic clock, like ig_mono_us. */
		ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&l->work_cond, &ca) == 0;
		pthread_condattr_destroy(&ca);
	}
	ok = ok && pthread_cond_init(&l->done_cond, NULL) == 0;
	if (!ok) {
		free(l->dir);
		free(l);
		return NULL;
	}
	return l;
}

int ig_ledger_open(ig_ledger **out, const char *dir, const ig_ledger_open_opts *opts, ig_error *err)
{
	static const ig_ledger_open_opts no_opts;
	if (!out || !dir)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open: missing argument");
	*out = NULL;
	if (!opts)
		opts = &no_opts;
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	ig_ledger *l = ledger_alloc(dir);
	if (!l)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory opening ledger %s", dir);
	l->writer = opts->writer;
	l->max_batch = opts->max_batch ? opts->max_batch : DEFAULT_MAX_BATCH;
	l->io = opts->io ? *opts->io : sys_io;
	int rc;
	if (!l->io.pwrite || !l->io.sync) {
		rc = ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open: an I/O hook table needs both pwrite and sync");
		goto fail;
	}

	rc = open_dir(dir, err);
	if (rc < 0)
		goto fail;
	l->dir_fd = rc;
	if (l->writer) {
		rc = take_lock(l->dir_fd, dir, err);
		if (rc < 0)
			goto fail;
		l->lock_fd = rc;
	}
	rc = open_log(l->dir_fd, dir, l->writer ? O_RDWR : O_RDONLY, err);
	if (rc < 0)
		goto fail;
	l->log_fd = rc;
	uint8_t key_pk[IG_PK_BYTES];
	if (l->writer) {
		char path[PATH_MAX];
		rc = key_path(path, sizeof path, dir, err);
		if (rc == IG_OK)
			rc = ig_keyfile_read(path, l->ch_sk, key_pk, err);
		if (rc != IG_OK)
			goto fail;
	}

	scan_out *so = malloc(sizeof *so);
	if (!so) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory opening ledger %s", dir);
		goto fail;
	}
	scan_in in = {
		.dir = dir,
		.dir_fd = l->dir_fd,
		.log_fd = l->log_fd,
		.expect_pk = l->writer ? key_pk : NULL,
		.on_record = opts->on_record,
		.ctx = opts->ctx,
		.progress = opts->progress,
		.progress_ctx = opts->progress_ctx,
	};
	rc = scan_ledger(&in, so, err);
	if (rc == IG_OK && so->torn_bytes > 0) {
		if (l->writer) {
			if (ftruncate(l->log_fd, (off_t)so->good_bytes) != 0 || fsync(l->log_fd) != 0) {
				rc = ig_error_set(err, IG_ERR_IO, "cannot cut the torn tail of %s/%s: %s", dir,
				                  IG_LEDGER_LOG, strerror(errno));
			} else {
				ig_log(IG_LOG_WARN,
				       "ledger %s: record %" PRIu64 " was torn by a crash; cut %" PRIu64
				       " bytes at offset %" PRIu64 " (it was never acknowledged)",
				       dir, so->torn_index, so->torn_bytes, so->good_bytes);
			}
		} else {
			ig_log(IG_LOG_WARN,
			       "ledger %s: %" PRIu64 " bytes of a torn record %" PRIu64 " follow the last valid record "
			       "(a crash or a write in progress); the next writer open cuts them",
			       dir, so->torn_bytes, so->torn_index);
		}
	}
	if (rc != IG_OK) {
		free(so);
		goto fail;
	}
	memcpy(l->cluster, so->genesis.cluster, sizeof l->cluster);
	memcpy(l->origin, so->origin, sizeof l->origin);
	memcpy(l->ch_pk, so->genesis.ch_pk, IG_PK_BYTES);
	memcpy(l->head, so->head, IG_HASH_BYTES);
	memcpy(l->cp_text, so->cp_text, so->cp_len + 1);
	l->cp_len = so->cp_len;
	l->cp = so->cp;
	l->acc = so->acc;
	l->log_end = so->good_bytes;
	l->last_ts = so->last_ts;
	atomic_store(&l->height, so->height);
	free(so);

	if (l->writer) {
		l->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (l->event_fd < 0) {
			rc = ig_error_set(err, IG_ERR_IO, "cannot create an eventfd: %s", strerror(errno));
			goto fail;
		}
		if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
			rc = ig_error_set(err, IG_ERR_IO, "cannot start the ledger writer thread");
			goto fail;
		}
		l->thread_started = true;
	}
	*out = l;
	return IG_OK;
fail:
	ledger_free(l);
	return rc < 0 ? rc : IG_ERR_IO;
}

void ig_ledger_close(ig_ledger *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		l->stopping = true;
		pthread_cond_signal(&l->work_cond);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
		l->thread_started = false;
		(void)ig_ledger_poll(l);
	}
	ledger_free(l);
}

/* ---- facts ------------------------------------------------------------------ */

const char *ig_ledger_cluster(const ig_ledger *l) { return l->cluster; }
const uint8_t *ig_ledger_ch_pk(const ig_ledger *l) { return l->ch_pk; }
const uint8_t *ig_ledger_ch_sk(const ig_ledger *l) { return l->writer ? l->ch_sk : NULL; }

uint64_t ig_ledger_height(const ig_ledger *l)
{
	return atomic_load(&((ig_ledger *)l)->height);
}

void ig_ledger_head(const ig_ledger *l, uint8_t hash[IG_HASH_BYTES])
{
	ig_ledger *m = (ig_ledger *)l; /* the mutex is not part of the ledger's value */
	pthread_mutex_lock(&m->mu);
	memcpy(hash, m->head, IG_HASH_BYTES);
	pthread_mutex_unlock(&m->mu);
}

int ig_ledger_checkpoint(ig_ledger *l, char *out, size_t cap, ig_checkpoint *cp)
{
	pthread_mutex_lock(&l->mu);
	int len = (int)l->cp_len;
	if (out) {
		if (cap < l->cp_len + 1) {
			pthread_mutex_unlock(&l->mu);
			return IG_ERR_RANGE;
		}
		memcpy(out, l->cp_text, l->cp_len + 1);
	}
	if (cp)
		*cp = l->cp;
	pthread_mutex_unlock(&l->mu);
	return len;
}

/* ---- appending ----------------------------------------------------------------- */

static append_node *node_new(uint16_t type, const uint8_t *body, size_t len)
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
	if (l->queue_tail)
		l->queue_tail->next = n;
	else
		l->queue_head = n;
	l->queue_tail = n;
	l->pending++;
	l->queued++;
	/* Only wake the writer when it waits for work, or for this many records. */
	if (l->wake_writer_at && l->queued >= l->wake_writer_at)
		pthread_cond_signal(&l->work_cond);
	pthread_mutex_unlock(&l->mu);
	return IG_OK;
}

static int check_submit(const ig_ledger *l, const uint8_t *body, size_t len)
{
	if (!l->writer)
		return IG_ERR_STATE;
	if (len > IG_REC_MAX_BODY)
		return IG_ERR_RANGE;
	if (len > 0 && !body)
		return IG_ERR_INVAL;
	return IG_OK;
}

int ig_ledger_submit(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_append_done_fn done, void *ctx)
{
	int rc = check_submit(l, body, len);
	if (rc != IG_OK)
		return rc;
	append_node *n = node_new(type, body, len);
	if (!n)
		return IG_ERR_NOMEM;
	n->done = done;
	n->ctx = ctx;
	rc = enqueue(l, n);
	if (rc != IG_OK)
		free(n);
	return rc;
}

int ig_ledger_poll(ig_ledger *l)
{
	if (!l->writer)
		return 0;
	if (!atomic_exchange(&l->poll_work, false))
		return 0;
	uint64_t count;
	/* Drain before taking the list: a completion added after the take
	 * re-arms the fd, so no wakeup is lost. */
	ssize_t r = read(l->event_fd, &count, sizeof count);
	(void)r;
	pthread_mutex_lock(&l->mu);
	append_node *n = l->done_head;
	l->done_head = l->done_tail = NULL;
	pthread_mutex_unlock(&l->mu);
	int ran = 0;
	while (n) {
		append_node *next = n->next;
		if (n->done)
			n->done(n->ctx, n->status, status_has_record(n->status) ? &n->rec : NULL);
		free(n);
		ran++;
		n = next;
	}
	return ran;
}

int ig_ledger_event_fd(const ig_ledger *l) { return l->event_fd; }

bool ig_ledger_checkpoint_changed(ig_ledger *l)
{
	return atomic_exchange(&l->checkpoint_changed, false);
}

/* Says why a record was refused or not written, and what to do. */
static int refusal_error(const ig_ledger *l, int rc, ig_error *err)
{
	switch (rc) {
	case IG_ERR_CLOSED:
		return ig_error_set(err, rc, "ledger %s is closing; the record was not appended", l->dir);
	case IG_ERR_NOSPACE:
		return ig_error_set(err, rc, "ledger %s: the disk is full (ENOSPC); the record was not written: free space "
		                    "on the filesystem holding %s and retry (the ledger resumes by itself, no restart "
		                    "needed)",
		                    l->dir, l->dir);
	case IG_ERR_NOMEM:
		return ig_error_set(err, rc, "ledger %s: out of memory; the record was not written", l->dir);
	default:
		return ig_error_set(err, rc, "ledger %s: an earlier write or fsync failed, so it refuses appends and "
		                    "this record was not written; fix the disk (see the log) and reopen the ledger",
		                    l->dir);
	}
}

int ig_ledger_append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_record *rec_out, ig_error *err)
{
	int rc = check_submit(l, body, len);
	if (rc == IG_ERR_STATE)
		return ig_error_set(err, rc, "ledger %s is open read-only; appends need a writer open", l->dir);
	if (rc == IG_ERR_RANGE)
		return ig_error_set(err, rc, "record body of %zu bytes exceeds the %d-byte limit", len, IG_REC_MAX_BODY);
	if (rc != IG_OK)
		return ig_error_set(err, rc, "ig_ledger_append: missing body");
	append_node *n = node_new(type, body, len);
	if (!n)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory appending to ledger %s", l->dir);
	append_waiter w;
	memset(&w, 0, sizeof w);
	if (sem_init(&w.done, 0, 0) != 0) {
		free(n);
		return ig_error_set(err, IG_ERR_NOMEM, "cannot create a semaphore: %s", strerror(errno));
	}
	n->waiter = &w;
	rc = enqueue(l, n); /* from here on the writer owns (and frees) n */
	if (rc != IG_OK) {
		free(n);
		sem_destroy(&w.done);
		return refusal_error(l, rc, err);
	}
	while (sem_wait(&w.done) != 0 && errno == EINTR)
		;
	if (w.wake_a)
		sem_post(&w.wake_a->done);
	if (w.wake_b)
		sem_post(&w.wake_b->done);
	sem_destroy(&w.done);
	rc = w.status;
	if (rc == IG_OK) {
		if (rec_out)
			*rec_out = w.rec;
	} else if (rc == IG_ERR_UNKNOWN) {
		ig_error_set(err, rc, "ledger %s: a write or fsync failed after record %" PRIu64 " was handed to the disk, "
		             "so it may or may not be in the ledger (check with `iotguard verify` after fixing the disk "
		             "and reopening); the ledger refuses appends until reopened",
		             l->dir, w.rec.index);
	} else {
		refusal_error(l, rc, err);
	}
	return rc;
}

int ig_ledger_sync(ig_ledger *l, ig_error *err)
{
	if (!l->writer)
		return ig_error_set(err, IG_ERR_STATE, "ledger %s is open read-only; nothing to sync", l->dir);
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

void ig_ledger_test_fail_write(ig_ledger *l, long after_bytes)
{
	pthread_mutex_lock(&l->mu);
	l->fail_after = after_bytes < 0 ? -1 : after_bytes;
	pthread_mutex_unlock(&l->mu);
}

/* ---- auditing ------------------------------------------------------------------- */

int ig_ledger_verify(const char *dir, ig_record_fn on_record, void *ctx,
                     ig_progress_fn progress, void *progress_ctx,
                     ig_verify_result *res, ig_error *err)
{
	if (!dir)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_verify: missing directory");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");
	int dir_fd = open_dir(dir, err);
	if (dir_fd < 0)
		return dir_fd;
	int log_fd = open_log(dir_fd, dir, O_RDONLY, err);
	if (log_fd < 0) {
		close(dir_fd);
		return log_fd;
	}
	scan_out *so = malloc(sizeof *so);
	int rc;
	if (!so) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory verifying ledger %s", dir);
	} else {
		scan_in in = {
			.dir = dir,
			.dir_fd = dir_fd,
			.log_fd = log_fd,
			.on_record = on_record,
			.ctx = ctx,
			.progress = progress,
			.progress_ctx = progress_ctx,
		};
		rc = scan_ledger(&in, so, err);
		if (rc == IG_OK && res) {
			memset(res, 0, sizeof *res);
			res->height = so->height;
			memcpy(res->head, so->head, IG_HASH_BYTES);
			ig_merkle_root(&so->acc, res->root);
			res->checkpoint_size = so->cp.size;
			res->torn_bytes = so->torn_bytes;
			memcpy(res->cluster, so->genesis.cluster, sizeof res->cluster);
		}
		free(so);
	}
	close(log_fd);
	close(dir_fd);
	return rc;
}

/* ---- init ------------------------------------------------------------------------- */

/* Makes a newly created directory's own entry durable. */
static int fsync_parent(const char *dir, ig_error *err)
{
	char parent[PATH_MAX];
	size_t len = strnlen(dir, sizeof parent);
	if (len >= sizeof parent)
		return ig_error_set(err, IG_ERR_RANGE, "ledger path %s is too long", dir);
	memcpy(parent, dir, len + 1);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	char *slash = strrchr(parent, '/');
	if (!slash)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open %s: %s", parent, strerror(errno));
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot fsync %s: %s", parent, strerror(e));
	return IG_OK;
}

int ig_ledger_init(const char *dir, const char *cluster, uint8_t ch_pk[IG_PK_BYTES], ig_error *err)
{
	if (!dir || !cluster)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_init: missing argument");
	if (!ig_id_valid(cluster, strnlen(cluster, IG_CLUSTER_MAX + 1)))
		return ig_error_set(err, IG_ERR_INVAL,
		                    "cluster name '%.80s' is invalid: use 1..64 characters from [A-Za-z0-9_.-]", cluster);
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	bool created = false;
	if (mkdir(dir, 0700) == 0)
		created = true;
	else if (errno != EEXIST)
		return ig_error_set(err, IG_ERR_IO, "cannot create ledger directory %s: %s", dir, strerror(errno));
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open ledger directory %s: %s", dir, strerror(errno));

	int lock_fd = -1, log_fd = -1, rc;
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	if (faccessat(dir_fd, IG_LEDGER_LOG, F_OK, 0) == 0) {
		rc = ig_error_set(err, IG_ERR_EXISTS, "%s already holds a ledger (%s exists); choose an empty directory",
		                  dir, IG_LEDGER_LOG);
		goto out;
	}
	rc = take_lock(dir_fd, dir, err);
	if (rc < 0)
		goto out;
	lock_fd = rc;

	char path[PATH_MAX];
	rc = key_path(path, sizeof path, dir, err);
	if (rc != IG_OK)
		goto out;
	rc = ig_key_generate(pk, sk);
	if (rc != IG_OK) {
		rc = ig_error_set(err, rc, "cannot generate the cluster-head key");
		goto out;
	}
	rc = ig_keyfile_write(path, sk, false, err);
	if (rc != IG_OK) {
		if (rc == IG_ERR_EXISTS)
			ig_error_set(err, rc, "%s exists but %s/%s does not (an earlier init failed?); remove the key file or "
			             "choose an empty directory",
			             path, dir, IG_LEDGER_LOG);
		goto out;
	}

	log_fd = openat(dir_fd, IG_LEDGER_LOG, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, LEDGER_FILE_MODE);
	if (log_fd < 0) {
		rc = ig_error_set(err, errno == EEXIST ? IG_ERR_EXISTS : IG_ERR_IO, "cannot create %s/%s: %s", dir,
		                  IG_LEDGER_LOG, strerror(errno));
		goto out;
	}
	ig_genesis g;
	memset(&g, 0, sizeof g);
	memcpy(g.cluster, cluster, strlen(cluster) + 1);
	memcpy(g.ch_pk, pk, IG_PK_BYTES);
	g.version = IG_FORMAT_VERSION;
	uint8_t body[256], frame[256 + IG_REC_OVERHEAD];
	int blen = ig_genesis_encode(body, sizeof body, &g);
	if (blen < 0) {
		rc = ig_error_set(err, blen, "cannot encode the genesis record");
		goto out;
	}
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.index = 0;
	rec.ts_ms = ig_now_ms();
	rec.type = IG_REC_GENESIS;
	rec.body = body;
	rec.body_len = (uint32_t)blen;
	int flen = ig_record_encode(frame, sizeof frame, &rec);
	if (flen < 0) {
		rc = ig_error_set(err, flen, "cannot encode the genesis record");
		goto out;
	}
	if (pwrite_all(&sys_io, IG_LEDGER_LOG, log_fd, frame, (size_t)flen, 0, NULL) != 0 || fdatasync(log_fd) != 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot write %s/%s: %s", dir, IG_LEDGER_LOG, strerror(errno));
		goto out;
	}

	ig_merkle_acc acc;
	ig_merkle_init(&acc);
	ig_merkle_push(&acc, rec.hash);
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	if (ig_checkpoint_origin(cp.origin, sizeof cp.origin, cluster) < 0) {
		rc = ig_error_set(err, IG_ERR_INVAL, "cluster name '%s' is too long", cluster);
		goto out;
	}
	cp.size = 1;
	ig_merkle_root(&acc, cp.root);
	char text[IG_CHECKPOINT_MAX + 1];
	int tlen = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	if (tlen < 0) {
		rc = ig_error_set(err, tlen, "cannot sign the first checkpoint");
		goto out;
	}
	rc = write_checkpoint_file(&sys_io, dir_fd, dir, text, (size_t)tlen, err);
	if (rc != IG_OK)
		goto out;
	if (fsync(dir_fd) != 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot fsync directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (created) {
		rc = fsync_parent(dir, err);
		if (rc != IG_OK)
			goto out;
	}
	if (ch_pk)
		memcpy(ch_pk, pk, IG_PK_BYTES);
	rc = IG_OK;
out:
	sodium_memzero(sk, sizeof sk);
	if (log_fd >= 0)
		close(log_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	close(dir_fd);
	return rc;
}
