/*
 * test_ledger.c: the ledger must keep every acknowledged record across
 * reopen and crash, cut only a genuine torn tail, and refuse (naming the
 * record) every other kind of damage: tampered bytes, removed or reordered
 * records, a forged or inconsistent checkpoint.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_checkpoint.h"
#include "ig_crc32c.h"
#include "ig_keyfile.h"
#include "ig_ledger.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_tiles.h"
#include "ig_state.h"
#include "testutil.h"

static char root[256];
static char ldir[300];
static char log_path[340];
static char cp_path[340];
static char key_file[340];
static char logbuf[16384];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_tempdir(root, sizeof root, "ledger", 0);
	snprintf(ldir, sizeof ldir, "%s/ledger", root);
	snprintf(log_path, sizeof log_path, "%s/%s", ldir, IG_LEDGER_LOG);
	snprintf(cp_path, sizeof cp_path, "%s/%s", ldir, IG_LEDGER_CHECKPOINT);
	snprintf(key_file, sizeof key_file, "%s/%s", ldir, IG_LEDGER_KEY);
	tu_log_capture(logbuf, sizeof logbuf);
}

static void teardown(void)
{
	cr_assert_eq(tu_rmtree(root), 0, "cannot remove %s", root);
}

TestSuite(ledger, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static uint64_t append_enroll(ig_ledger *l, const char *id)
{
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, id);
	ig_record rec;
	ig_error err = {0};
	int rc = ig_ledger_append(l, IG_REC_ENROLL, body, len, &rec, &err);
	cr_assert_eq(rc, IG_OK, "append %s: %s", id, err.msg);
	return rec.index;
}

static ig_ledger *open_ledger(bool writer)
{
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = writer};
	int rc = ig_ledger_open(&l, ldir, &opts, &err);
	cr_assert_eq(rc, IG_OK, "open: %s", err.msg);
	return l;
}

/* The ledger format make_ledger writes: the newest unless a test asks for
 * format 1, which must keep verifying and taking appends. */
static unsigned test_format = IG_FORMAT_VERSION;

static ig_merkle_hash test_tree(void)
{
	return test_format >= IG_FORMAT_V2 ? IG_MERKLE_SHA256 : IG_MERKLE_BLAKE2B;
}

/* The Merkle leaf of a record, written out from docs/LEDGER.md rather than
 * taken from the scanner: format 1 uses the record hash, format 2
 * SHA-256(0x00 || whole frame). */
static void test_leaf(uint8_t out[IG_HASH_BYTES], const uint8_t *frame, const ig_record *rec)
{
	if (test_format >= IG_FORMAT_V2) {
		uint8_t zero = 0;
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, &zero, 1);
		crypto_hash_sha256_update(&st, frame, rec->frame_len);
		crypto_hash_sha256_final(&st, out);
	} else {
		memcpy(out, rec->hash, IG_HASH_BYTES);
	}
}

/* A closed ledger holding genesis + n enroll records, fully checkpointed. */
static void make_ledger(unsigned n)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_ledger_init_format(ldir, "testc", test_format, pk, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = open_ledger(true);
	for (unsigned i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "dev%u", i);
		cr_assert_eq(append_enroll(l, id), i + 1);
	}
	ig_ledger_close(l);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long sz = ftell(f);
	cr_assert(sz >= 0);
	rewind(f);
	uint8_t *buf = malloc((size_t)sz + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	buf[sz] = 0;
	*len = (size_t)sz;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static off_t file_size(const char *path)
{
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	return sb.st_size;
}

/* Offsets of each frame, walking frame_len. */
static size_t frame_offsets(const uint8_t *buf, size_t len, size_t *offs, size_t max)
{
	size_t n = 0, off = 0;
	while (off + 8 <= len && n < max) {
		offs[n++] = off;
		off += ig_get_u32(buf + off + 4);
	}
	cr_assert_eq(off, len, "log does not end on a frame boundary");
	return n;
}

static void fix_crc(uint8_t *frame, uint32_t flen)
{
	ig_put_u32(frame + flen - 4, ig_crc32c(0, frame, flen - 4));
}

static int verify(ig_verify_result *res, ig_error *err)
{
	memset(err, 0, sizeof *err);
	return ig_ledger_verify(ldir, NULL, NULL, NULL, NULL, res, err);
}

static int try_open_writer(ig_error *err)
{
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	memset(err, 0, sizeof *err);
	int rc = ig_ledger_open(&l, ldir, &opts, err);
	if (rc == IG_OK)
		ig_ledger_close(l);
	return rc;
}

/* The message names record `index` either as the damaged record or as the
 * predecessor whose hash no longer chains. */
static bool names_record(const char *msg, uint64_t index)
{
	char a[64], b[64];
	snprintf(a, sizeof a, "record %llu:", (unsigned long long)index);
	snprintf(b, sizeof b, "record %llu)", (unsigned long long)index);
	return strstr(msg, a) || strstr(msg, b);
}

static void sign_checkpoint(uint64_t size, const uint8_t root_hash[IG_HASH_BYTES], const uint8_t *sk_or_null)
{
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	ig_error err = {0};
	if (sk_or_null)
		memcpy(sk, sk_or_null, sizeof sk);
	else
		cr_assert_eq(ig_keyfile_read(key_file, sk, pk, &err), IG_OK, "%s", err.msg);
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	cr_assert(ig_checkpoint_origin(cp.origin, sizeof cp.origin, "testc") > 0);
	cp.size = size;
	memcpy(cp.root, root_hash, IG_HASH_BYTES);
	char text[IG_CHECKPOINT_MAX + 1];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	cr_assert(n > 0);
	write_file(cp_path, text, (size_t)n);
	sodium_memzero(sk, sizeof sk);
}

/* Merkle root of the first k records of the log in buf. */
static void prefix_root(const uint8_t *buf, size_t len, size_t k, uint8_t out[IG_HASH_BYTES])
{
	size_t offs[256];
	size_t n = frame_offsets(buf, len, offs, 256);
	cr_assert(k <= n);
	uint8_t (*leaves)[IG_HASH_BYTES] = calloc(k ? k : 1, IG_HASH_BYTES);
	for (size_t i = 0; i < k; i++) {
		ig_record rec;
		cr_assert_eq(ig_record_decode(buf + offs[i], len - offs[i], &rec), IG_FRAME_OK);
		test_leaf(leaves[i], buf + offs[i], &rec);
	}
	ig_merkle_root_of_hash(test_tree(), (const uint8_t(*)[IG_HASH_BYTES])leaves, k, out);
	free(leaves);
}

/* ---- basics ---- */

typedef struct replay {
	uint64_t count;
	uint64_t types[8];
	bool order_ok;
} replay;

static int count_record(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)err;
	replay *r = ctx;
	if (rec->index != r->count)
		r->order_ok = false;
	r->count++;
	r->types[rec->type < 8 ? rec->type : 0]++;
	return IG_OK;
}

Test(ledger, init_open_append_reopen)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES], zero[IG_PK_BYTES] = {0};
	cr_assert_eq(ig_ledger_init(ldir, "testc", pk, &err), IG_OK, "%s", err.msg);
	cr_assert_neq(memcmp(pk, zero, sizeof pk), 0);

	struct stat sb;
	cr_assert_eq(stat(key_file, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "ch.key mode is %o", sb.st_mode & 0777);
	cr_assert_eq(stat(ldir, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0700);

	/* A second init must not clobber the ledger or its key. */
	cr_assert_eq(ig_ledger_init(ldir, "testc", pk, &err), IG_ERR_EXISTS);
	cr_assert(strstr(err.msg, "already holds a ledger"), "%s", err.msg);
	char other[400];
	snprintf(other, sizeof other, "%s/other", root);
	cr_assert_eq(ig_ledger_init(other, "bad/name", pk, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_ledger_init(other, "", pk, &err), IG_ERR_INVAL);

	ig_ledger *l = open_ledger(true);
	cr_assert_str_eq(ig_ledger_cluster(l), "testc");
	cr_assert_eq(memcmp(ig_ledger_ch_pk(l), pk, IG_PK_BYTES), 0);
	cr_assert_not_null(ig_ledger_ch_sk(l));
	cr_assert_eq(ig_ledger_height(l), 1);
	cr_assert(ig_ledger_event_fd(l) >= 0);

	uint8_t body[512];
	ig_record rec, last;
	for (unsigned i = 1; i <= 10; i++) {
		char id[16];
		snprintf(id, sizeof id, "dev%u", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, &rec, &err), IG_OK, "%s", err.msg);
		cr_assert_eq(rec.index, i);
		cr_assert_eq(rec.type, IG_REC_ENROLL);
		cr_assert_null(rec.body);
		cr_assert(rec.ts_ms > 0);
		if (i > 1)
			cr_assert_eq(memcmp(rec.prev_hash, last.hash, IG_HASH_BYTES), 0);
		last = rec;
	}
	cr_assert_eq(ig_ledger_height(l), 11);
	uint8_t head[IG_HASH_BYTES];
	ig_ledger_head(l, head);
	cr_assert_eq(memcmp(head, last.hash, IG_HASH_BYTES), 0);

	/* Oversized bodies are refused up front. */
	uint8_t *big = calloc(1, IG_REC_MAX_BODY + 1);
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, big, IG_REC_MAX_BODY + 1, NULL, NULL), IG_ERR_RANGE);
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, big, IG_REC_MAX_BODY + 1, NULL, &err), IG_ERR_RANGE);
	/* Format 2: one frame is one tlog entry, whose length is a uint16. */
	const size_t v2_max = IG_FORMAT_V2_MAX_FRAME - IG_REC_OVERHEAD;
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, big, v2_max + 1, NULL, NULL), IG_ERR_RANGE);
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, big, v2_max + 1, NULL, &err), IG_ERR_RANGE);
	cr_assert(strstr(err.msg, "65471-byte limit of ledger format 2"), "%s", err.msg);
	free(big);

	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	char text[IG_CHECKPOINT_MAX + 1];
	ig_checkpoint cp;
	int tlen = ig_ledger_checkpoint(l, text, sizeof text, &cp);
	cr_assert(tlen > 0);
	cr_assert_eq(cp.size, 11);
	cr_assert_eq(ig_ledger_checkpoint(l, text, 10, NULL), IG_ERR_RANGE);
	ig_checkpoint cp2;
	cr_assert_eq(ig_checkpoint_verify(text, (size_t)tlen, "iotguard/testc", pk, &cp2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(cp2.root, cp.root, IG_HASH_BYTES), 0);
	cr_assert(ig_ledger_checkpoint_changed(l));
	cr_assert(!ig_ledger_checkpoint_changed(l));

	ig_ledger_stats st;
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.height, 11);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.records_committed, 10);
	cr_assert_eq(st.batches, 10);
	cr_assert_eq(st.checkpoint_size, 11);
	cr_assert(st.max_commit_us >= st.avg_commit_us);
	ig_ledger_close(l);

	/* Reopen: same height, same head, every record replayed in order. */
	replay r = {.order_ok = true};
	ig_ledger_open_opts opts = {.writer = true, .on_record = count_record, .ctx = &r};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(r.count, 11);
	cr_assert(r.order_ok);
	cr_assert_eq(r.types[IG_REC_GENESIS], 1);
	cr_assert_eq(r.types[IG_REC_ENROLL], 10);
	cr_assert_eq(ig_ledger_height(l), 11);
	uint8_t head2[IG_HASH_BYTES];
	ig_ledger_head(l, head2);
	cr_assert_eq(memcmp(head, head2, IG_HASH_BYTES), 0);
	cr_assert_eq(append_enroll(l, "after-reopen"), 11);
	ig_ledger_close(l);

	/* Read-only opens see the facts but cannot append. */
	l = open_ledger(false);
	cr_assert_eq(ig_ledger_height(l), 12);
	cr_assert_null(ig_ledger_ch_sk(l));
	cr_assert_eq(ig_ledger_event_fd(l), -1);
	cr_assert_eq(ig_ledger_poll(l), 0);
	size_t len = tu_device_enroll_body(body, sizeof body, "ro");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, NULL, NULL), IG_ERR_STATE);
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_STATE);
	cr_assert(ig_ledger_checkpoint(l, NULL, 0, &cp) > 0);
	cr_assert_eq(cp.size, 12);
	ig_ledger_head(l, head2);
	ig_ledger_close(l);

	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 12);
	cr_assert_eq(res.checkpoint_size, 12);
	cr_assert_eq(res.torn_bytes, 0);
	cr_assert_str_eq(res.cluster, "testc");
	cr_assert_eq(memcmp(res.head, head2, IG_HASH_BYTES), 0);
	cr_assert_str_empty(logbuf);
}

Test(ledger, missing_ledger_is_not_found)
{
	ig_error err = {0};
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "iotguard init"), "%s", err.msg);
	cr_assert_eq(mkdir(ldir, 0700), 0);
	cr_assert_eq(try_open_writer(&err), IG_ERR_NOTFOUND);
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = false};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_ERR_NOTFOUND);
	cr_assert_null(l);
}

typedef struct reject_ctx {
	uint64_t at;
	uint64_t seen;
} reject_ctx;

static int reject_at(void *ctx, const ig_record *rec, ig_error *err)
{
	reject_ctx *r = ctx;
	r->seen++;
	if (rec->index == r->at)
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll of an id already active");
	return IG_OK;
}

static void count_progress(void *ctx, uint64_t records, uint64_t bytes, uint64_t total)
{
	uint64_t *last = ctx;
	cr_assert(bytes <= total);
	*last = records;
}

Test(ledger, on_record_error_aborts_open_and_progress_reports)
{
	make_ledger(3);
	ig_ledger *l = NULL;
	ig_error err = {0};
	reject_ctx r = {.at = 2};
	ig_ledger_open_opts opts = {.writer = true, .on_record = reject_at, .ctx = &r};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_ERR_CORRUPT);
	cr_assert_null(l);
	cr_assert_eq(r.seen, 3);
	cr_assert(strstr(err.msg, "ledger record 2: enroll of an id already active"), "%s", err.msg);

	/* The lock was released on the failed open. */
	uint64_t progressed = 0;
	opts = (ig_ledger_open_opts){.writer = true, .progress = count_progress, .progress_ctx = &progressed};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(progressed, 4);
	ig_ledger_close(l);
}

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 60

typedef struct submitter {
	ig_ledger *l;
	int id;
	uint64_t indices[PER_THREAD];
} submitter;

static void *submit_thread(void *arg)
{
	submitter *s = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char id[32];
		snprintf(id, sizeof id, "t%d-%d", s->id, i);
		s->indices[i] = append_enroll(s->l, id);
	}
	return NULL;
}

typedef struct async_ctx {
	int done;
	int failed;
	uint64_t last_index;
	bool ordered;
} async_ctx;

static void async_done(void *ctx, int status, const ig_record *rec)
{
	async_ctx *a = ctx;
	if (status != IG_OK) {
		a->failed++;
		if (status == IG_ERR_UNKNOWN)
			cr_assert_not_null(rec); /* the index it has if the next open finds it */
		else
			cr_assert_null(rec);
		return;
	}
	cr_assert_not_null(rec);
	cr_assert_not_null(rec->body);
	if (a->done > 0 && rec->index != a->last_index + 1)
		a->ordered = false;
	a->last_index = rec->index;
	a->done++;
}

typedef struct order_check {
	int next_seq[THREADS];
	uint64_t count;
	bool ok;
} order_check;

static int check_order(void *ctx, const ig_record *rec, ig_error *err)
{
	order_check *o = ctx;
	o->count++;
	if (rec->type != IG_REC_ENROLL)
		return IG_OK;
	ig_enroll e;
	cr_assert_eq(ig_record_enroll_decode(rec->body, rec->body_len, &e, err), IG_OK);
	int t, seq;
	if (sscanf(e.id, "t%d-%d", &t, &seq) == 2) {
		if (t < 0 || t >= THREADS || seq != o->next_seq[t])
			o->ok = false;
		else
			o->next_seq[t]++;
	}
	return IG_OK;
}

Test(ledger, concurrent_submitters_all_durable_and_ordered)
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	pthread_t th[THREADS];
	submitter subs[THREADS];
	for (int t = 0; t < THREADS; t++) {
		subs[t] = (submitter){.l = l, .id = t};
		cr_assert_eq(pthread_create(&th[t], NULL, submit_thread, &subs[t]), 0);
	}
	/* Meanwhile an event-loop style submitter. */
	async_ctx a = {.ordered = true};
	int submitted = 0;
	uint8_t body[512];
	while (submitted < 200 || a.done + a.failed < submitted) {
		if (submitted < 200) {
			char id[32];
			snprintf(id, sizeof id, "async-%d", submitted);
			size_t len = tu_device_enroll_body(body, sizeof body, id);
			cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, async_done, &a), IG_OK);
			submitted++;
		}
		struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
		cr_assert(poll(&pfd, 1, submitted < 200 ? 0 : 5000) >= 0);
		ig_ledger_poll(l);
	}
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_join(th[t], NULL), 0);
	cr_assert_eq(a.done, 200);
	cr_assert_eq(a.failed, 0);

	uint64_t total = THREADS * PER_THREAD + 200;
	cr_assert_eq(ig_ledger_height(l), total + 1);
	bool *seen = calloc(total + 1, 1);
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			uint64_t idx = subs[t].indices[i];
			cr_assert(idx >= 1 && idx <= total);
			cr_assert(!seen[idx], "index %llu acknowledged twice", (unsigned long long)idx);
			seen[idx] = true;
			if (i > 0)
				cr_assert(idx > subs[t].indices[i - 1]);
		}
	}
	free(seen);
	ig_ledger_stats st;
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.records_committed, total);
	cr_assert_eq(st.pending, 0);
	cr_assert(st.batches <= total);
	ig_ledger_close(l);

	order_check o = {.ok = true};
	ig_ledger_open_opts opts = {.writer = false, .on_record = check_order, .ctx = &o};
	ig_error err = {0};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(o.count, total + 1);
	cr_assert(o.ok, "a thread's records are out of order in the log");
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(o.next_seq[t], PER_THREAD);
	ig_ledger_close(l);
}

typedef struct verifier_ctx {
	ig_ledger *l;
	volatile bool stop;
} verifier_ctx;

static void *append_loop(void *arg)
{
	verifier_ctx *v = arg;
	for (int i = 0; i < 300 && !v->stop; i++) {
		char id[32];
		snprintf(id, sizeof id, "live%d", i);
		append_enroll(v->l, id);
	}
	return NULL;
}

Test(ledger, verify_and_readers_while_writer_appends)
{
	make_ledger(2);
	ig_ledger *l = open_ledger(true);
	ig_error err = {0};

	/* A second writer is refused with a message that says what to do. */
	cr_assert_eq(try_open_writer(&err), IG_ERR_LOCKED);
	cr_assert(strstr(err.msg, "is in use by another writer (is the broker running?); stop it or use the online mode"),
	          "%s", err.msg);
	cr_assert(strstr(err.msg, ldir), "%s", err.msg);

	verifier_ctx v = {.l = l};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, append_loop, &v), 0);
	uint64_t prev = 0;
	for (int i = 0; i < 15; i++) {
		ig_verify_result res;
		cr_assert_eq(verify(&res, &err), IG_OK, "verify during appends: %s", err.msg);
		cr_assert(res.height >= prev);
		cr_assert(res.checkpoint_size <= res.height);
		prev = res.height;
		ig_ledger *ro = open_ledger(false);
		cr_assert(ig_ledger_height(ro) >= 3);
		ig_ledger_close(ro);
		usleep(2000);
	}
	v.stop = true;
	cr_assert_eq(pthread_join(th, NULL), 0);
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.torn_bytes, 0);
	cr_assert_eq(res.height, res.checkpoint_size);
}

/* ---- torn tails ---- */

/* Genesis + 6 records where the checkpoint covers only the first 6, so the
 * last record is not yet covered (as after a crash before a checkpoint). */
static uint8_t *make_uncovered_tail(size_t *len, size_t *last_off)
{
	make_ledger(5);
	size_t cplen;
	uint8_t *old_cp = read_file(cp_path, &cplen);
	ig_ledger *l = open_ledger(true);
	cr_assert_eq(append_enroll(l, "last"), 6);
	ig_ledger_close(l);
	write_file(cp_path, old_cp, cplen);
	free(old_cp);
	uint8_t *buf = read_file(log_path, len);
	size_t offs[16];
	cr_assert_eq(frame_offsets(buf, *len, offs, 16), 7);
	*last_off = offs[6];
	return buf;
}

Test(ledger, torn_tail_at_every_byte_of_last_record)
{
	size_t len, last_off;
	uint8_t *buf = make_uncovered_tail(&len, &last_off);
	ig_error err = {0};
	ig_verify_result res;

	/* The full log with an older checkpoint is fine: nothing to cut. */
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 7);
	cr_assert_eq(res.checkpoint_size, 6);
	cr_assert_eq(res.torn_bytes, 0);

	for (size_t keep = 0; keep < len - last_off; keep++) {
		write_file(log_path, buf, last_off + keep);
		cr_assert_eq(verify(&res, &err), IG_OK, "keep %zu: %s", keep, err.msg);
		cr_assert_eq(res.height, 6, "keep %zu", keep);
		cr_assert_eq(res.torn_bytes, keep, "keep %zu", keep);

		logbuf[0] = '\0';
		ig_ledger *l = open_ledger(true);
		cr_assert_eq(ig_ledger_height(l), 6);
		ig_ledger_close(l);
		cr_assert_eq(file_size(log_path), (off_t)last_off, "keep %zu: tail not cut", keep);
		if (keep > 0) {
			char want[96];
			snprintf(want, sizeof want, "record 6 was torn by a crash; cut %zu bytes at offset %zu", keep, last_off);
			cr_assert(strstr(logbuf, want), "keep %zu: log was: %s", keep, logbuf);
		} else {
			cr_assert_str_empty(logbuf);
		}
	}
	/* After the cut the ledger continues normally. */
	ig_ledger *l = open_ledger(true);
	cr_assert_eq(append_enroll(l, "again"), 6);
	ig_ledger_close(l);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 7);
	cr_assert_eq(res.checkpoint_size, 7);
	free(buf);
}

Test(ledger, read_only_open_reports_torn_tail_without_cutting)
{
	size_t len, last_off;
	uint8_t *buf = make_uncovered_tail(&len, &last_off);
	write_file(log_path, buf, len - 10);
	ig_ledger *l = open_ledger(false);
	cr_assert_eq(ig_ledger_height(l), 6);
	ig_ledger_close(l);
	cr_assert_eq(file_size(log_path), (off_t)(len - 10));
	cr_assert(strstr(logbuf, "torn record 6"), "%s", logbuf);
	free(buf);
}

Test(ledger, torn_checkpointed_record_is_corruption)
{
	make_ledger(4);
	size_t len;
	uint8_t *buf = read_file(log_path, &len);
	size_t offs[16];
	cr_assert_eq(frame_offsets(buf, len, offs, 16), 5);
	for (size_t cut = 1; cut < len - offs[4]; cut += 7) {
		write_file(log_path, buf, len - cut);
		ig_error err;
		ig_verify_result res;
		cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
		cr_assert(names_record(err.msg, 4), "%s", err.msg);
		cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
		cr_assert(strstr(err.msg, "tampered or corrupt") && !strstr(err.msg, "refusing"), "%s", err.msg);
	}
	/* Removing the last record entirely: the checkpoint outgrows the log. */
	write_file(log_path, buf, offs[4]);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "checkpoint covers 5 records"), "%s", err.msg);
	free(buf);
}

Test(ledger, garbage_after_last_record_is_cut)
{
	make_ledger(3);
	size_t len;
	uint8_t *buf = read_file(log_path, &len);
	uint8_t *junk = malloc(len + 4096);
	memcpy(junk, buf, len);
	ig_error err;
	ig_verify_result res;

	struct {
		const char *what;
		size_t n;
	} cases[] = {{"random", 1000}, {"zeros", 4096}, {"fake header", 200}, {"one byte", 1}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = cases[c].n;
		if (c == 0)
			randombytes_buf(junk + len, n);
		else
			memset(junk + len, 0, n);
		if (c == 2) {
			/* Looks like a frame start, but the checksum cannot hold. */
			memcpy(junk + len, IG_REC_MAGIC, 4);
			ig_put_u32(junk + len + 4, 150);
			memset(junk + len + 8, 0xab, n - 8);
		}
		if (c == 3)
			junk[len] = 'I';
		write_file(log_path, junk, len + n);
		cr_assert_eq(verify(&res, &err), IG_OK, "%s: %s", cases[c].what, err.msg);
		cr_assert_eq(res.torn_bytes, n, "%s", cases[c].what);
		cr_assert_eq(res.height, 4);
		logbuf[0] = '\0';
		ig_ledger *l = open_ledger(true);
		cr_assert_eq(ig_ledger_height(l), 4);
		ig_ledger_close(l);
		cr_assert_eq(file_size(log_path), (off_t)len, "%s", cases[c].what);
		char want[64];
		snprintf(want, sizeof want, "cut %zu bytes", n);
		cr_assert(strstr(logbuf, want), "%s: %s", cases[c].what, logbuf);
	}

	/* Garbage followed by a complete, checksum-valid frame is not a tear. */
	size_t offs[8];
	cr_assert_eq(frame_offsets(buf, len, offs, 8), 4);
	size_t flen = len - offs[3];
	memset(junk + len, 0x77, 50);
	memcpy(junk + len + 50, buf + offs[3], flen);
	write_file(log_path, junk, len + 50 + flen);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "not a torn tail"), "%s", err.msg);
	cr_assert(names_record(err.msg, 4), "%s", err.msg);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert_eq(file_size(log_path), (off_t)(len + 50 + flen), "a corrupt log must not be cut");
	free(junk);
	free(buf);
}

/* ---- tampering ---- */

Test(ledger, tamper_every_byte_of_middle_record)
{
	make_ledger(6);
	size_t len;
	uint8_t *orig = read_file(log_path, &len);
	size_t offs[16];
	cr_assert_eq(frame_offsets(orig, len, offs, 16), 7);
	const size_t target = 3;
	size_t off = offs[target];
	uint32_t flen = ig_get_u32(orig + off + 4);
	uint8_t *buf = malloc(len);

	for (uint32_t b = 0; b < flen; b++) {
		for (int fix = 0; fix < 2; fix++) {
			if (fix && b >= flen - 4)
				continue; /* "fixing" the checksum bytes would undo the change */
			memcpy(buf, orig, len);
			buf[off + b] ^= (uint8_t)(1u << (b % 8));
			if (fix)
				fix_crc(buf + off, flen);
			write_file(log_path, buf, len);
			ig_error err;
			ig_verify_result res;
			int rc = verify(&res, &err);
			cr_assert_eq(rc, IG_ERR_CORRUPT, "byte %u fix %d: verify returned %d", b, fix, rc);
			cr_assert(names_record(err.msg, target), "byte %u fix %d: %s", b, fix, err.msg);
			cr_assert(strstr(err.msg, "tampered or corrupt"), "%s", err.msg);
			if (b % 4 == 0 || fix == 0) {
				rc = try_open_writer(&err);
				cr_assert_eq(rc, IG_ERR_CORRUPT, "byte %u fix %d: open returned %d", b, fix, rc);
				cr_assert(names_record(err.msg, target), "byte %u fix %d: %s", b, fix, err.msg);
				cr_assert(strstr(err.msg, "tampered or corrupt") && !strstr(err.msg, "refusing"), "%s", err.msg);
			}
		}
	}
	/* The exact wording for a broken chain. */
	memcpy(buf, orig, len);
	buf[off + IG_REC_HEADER_BYTES + 5] ^= 1;
	fix_crc(buf + off, flen);
	write_file(log_path, buf, len);
	ig_error err;
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert_str_eq(err.msg, "ledger record 4: hash chain broken (prev_hash does not match record 3) — "
	                          "tampered or corrupt");
	free(buf);
	free(orig);
}

Test(ledger, tamper_last_checkpointed_record_fails_on_merkle_root)
{
	make_ledger(4);
	size_t len;
	uint8_t *buf = read_file(log_path, &len);
	size_t offs[8];
	cr_assert_eq(frame_offsets(buf, len, offs, 8), 5);
	uint32_t flen = (uint32_t)(len - offs[4]);
	buf[offs[4] + 20] ^= 0x40; /* its timestamp */
	fix_crc(buf + offs[4], flen);
	write_file(log_path, buf, len);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);
	free(buf);
}

Test(ledger, removed_duplicated_or_swapped_records_fail)
{
	make_ledger(6);
	size_t len;
	uint8_t *orig = read_file(log_path, &len);
	size_t offs[16];
	cr_assert_eq(frame_offsets(orig, len, offs, 16), 7);
	size_t f3 = offs[4] - offs[3], f4 = offs[5] - offs[4];
	uint8_t *buf = malloc(len + f3);
	ig_error err;
	ig_verify_result res;

	/* Delete record 3. */
	memcpy(buf, orig, offs[3]);
	memcpy(buf + offs[3], orig + offs[4], len - offs[4]);
	write_file(log_path, buf, len - f3);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger record 3: holds index 4"), "%s", err.msg);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 3), "%s", err.msg);

	/* Duplicate record 3. */
	memcpy(buf, orig, offs[4]);
	memcpy(buf + offs[4], orig + offs[3], f3);
	memcpy(buf + offs[4] + f3, orig + offs[4], len - offs[4]);
	write_file(log_path, buf, len + f3);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 4), "%s", err.msg);

	/* Swap records 3 and 4. */
	memcpy(buf, orig, len);
	memcpy(buf + offs[3], orig + offs[4], f4);
	memcpy(buf + offs[3] + f4, orig + offs[3], f3);
	write_file(log_path, buf, len);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 3), "%s", err.msg);

	/* Drop the genesis record. */
	write_file(log_path, orig + offs[1], len - offs[1]);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger record 0: not a genesis record"), "%s", err.msg);

	/* Empty log. */
	write_file(log_path, orig, 0);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 0), "%s", err.msg);
	free(buf);
	free(orig);
}

Test(ledger, random_damage_never_passes)
{
	make_ledger(5);
	size_t len;
	uint8_t *orig = read_file(log_path, &len);
	uint8_t *buf = malloc(len + 64);
	ig_error err;
	ig_verify_result res;
	for (int i = 0; i < 300; i++) {
		memcpy(buf, orig, len);
		size_t n = len;
		switch (i % 3) {
		case 0: /* flip a few random bits anywhere: everything is checkpointed */
			for (int k = 0; k < 1 + i % 4; k++)
				buf[randombytes_uniform((uint32_t)len)] ^= (uint8_t)(1u << randombytes_uniform(8));
			if (memcmp(buf, orig, len) == 0)
				continue;
			break;
		case 1: /* truncate anywhere */
			n = randombytes_uniform((uint32_t)len);
			break;
		case 2: /* overwrite a random span with random bytes */
		{
			size_t at = randombytes_uniform((uint32_t)len);
			size_t span = 1 + randombytes_uniform(64);
			if (at + span > len)
				span = len - at;
			randombytes_buf(buf + at, span);
			if (memcmp(buf, orig, len) == 0)
				continue;
			break;
		}
		}
		write_file(log_path, buf, n);
		int rc = verify(&res, &err);
		cr_assert_eq(rc, IG_ERR_CORRUPT, "iteration %d: damage went unnoticed (rc %d)", i, rc);
		cr_assert(strstr(err.msg, "ledger "), "%s", err.msg);
	}
	/* Pure garbage as a log. */
	for (int i = 0; i < 50; i++) {
		size_t n = 1 + randombytes_uniform(2000);
		randombytes_buf(buf, n < len ? n : len);
		if (i % 2)
			memcpy(buf, IG_REC_MAGIC, 4);
		write_file(log_path, buf, n < len ? n : len);
		cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT, "garbage %d", i);
	}
	free(buf);
	free(orig);
}

/* ---- checkpoints ---- */

Test(ledger, bad_checkpoint_signature_fails)
{
	make_ledger(3);
	size_t cplen;
	char *orig = (char *)read_file(cp_path, &cplen);
	ig_error err;
	ig_verify_result res;

	/* Change one character of the signature. */
	char *bad = strdup(orig);
	size_t at = cplen - 10;
	bad[at] = bad[at] == 'A' ? 'B' : 'A';
	write_file(cp_path, bad, cplen);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger checkpoint"), "%s", err.msg);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "tampered or corrupt") && !strstr(err.msg, "refusing"), "%s", err.msg);

	/* Change the size line without re-signing. */
	strcpy(bad, orig);
	char *nl = strchr(bad, '\n');
	cr_assert_not_null(nl);
	cr_assert_eq(nl[1], '4');
	nl[1] = '3';
	write_file(cp_path, bad, cplen);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);

	/* A well-formed checkpoint signed by some other key. */
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES], rootv[IG_HASH_BYTES];
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	prefix_root(log, len, 4, rootv);
	sign_checkpoint(4, rootv, sk);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);

	/* Empty, missing and oversized checkpoints. */
	write_file(cp_path, "", 0);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	char huge[IG_CHECKPOINT_MAX + 100];
	memset(huge, 'x', sizeof huge);
	write_file(cp_path, huge, sizeof huge);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert_eq(unlink(cp_path), 0);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "checkpoint missing"), "%s", err.msg);

	/* The genuine one still works. */
	write_file(cp_path, orig, cplen);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	sodium_memzero(sk, sizeof sk);
	free(log);
	free(bad);
	free(orig);
}

static void checkpoint_sizes_and_roots(void);

Test(ledger, checkpoint_sizes_and_roots)
{
	checkpoint_sizes_and_roots();
}

/* Format 1 (BLAKE2b tree over record hashes) keeps verifying and writing. */
Test(ledger, checkpoint_sizes_and_roots_format_1)
{
	test_format = IG_FORMAT_V1;
	checkpoint_sizes_and_roots();
}

static void checkpoint_sizes_and_roots(void)
{
	make_ledger(6);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	uint8_t rootv[IG_HASH_BYTES];
	ig_error err;
	ig_verify_result res;

	/* Larger than the log, correctly signed. */
	prefix_root(log, len, 7, rootv);
	sign_checkpoint(9, rootv, NULL);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "checkpoint covers 9 records but"), "%s", err.msg);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);

	/* Right size, wrong root. */
	prefix_root(log, len, 6, rootv);
	sign_checkpoint(7, rootv, NULL);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);

	/* An older, smaller checkpoint is valid; a writer brings it up to date. */
	prefix_root(log, len, 3, rootv);
	sign_checkpoint(3, rootv, NULL);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.checkpoint_size, 3);
	cr_assert_eq(res.height, 7);
	ig_ledger *l = open_ledger(true);
	ig_ledger_stats st;
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.checkpoint_size, 3);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.checkpoint_size, 7);
	cr_assert(ig_ledger_checkpoint_changed(l));
	ig_ledger_close(l);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.checkpoint_size, 7);
	prefix_root(log, len, 7, rootv);
	cr_assert_eq(memcmp(res.root, rootv, IG_HASH_BYTES), 0);
	free(log);
}

Test(ledger, wrong_or_loose_key_file_refuses_writer)
{
	make_ledger(1);
	ig_error err;
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	cr_assert_eq(ig_keyfile_write(key_file, sk, true, &err), IG_OK, "%s", err.msg);
	sodium_memzero(sk, sizeof sk);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger record 0: the genesis cluster-head key does not match"), "%s", err.msg);
	/* Readers do not need the key. */
	ig_ledger *l = open_ledger(false);
	ig_ledger_close(l);
	cr_assert_eq(chmod(key_file, 0644), 0);
	cr_assert_neq(try_open_writer(&err), IG_OK);
}

/* ---- write failures ---- */

/* A torn write through the I/O hooks: once armed, writes of the log accept
 * `budget` more bytes in total and then fail with EIO, as a dying disk or a
 * crash mid-write would leave them. */
typedef struct torn_io {
	atomic_long budget;          /* -1: disarmed */
} torn_io;

static ssize_t torn_pwrite(void *ctx, const char *file, int fd, const void *buf, size_t len, off_t off)
{
	torn_io *t = ctx;
	long left = atomic_load(&t->budget);
	if (left < 0 || strcmp(file, IG_LEDGER_LOG) != 0)
		return pwrite(fd, buf, len, off);
	if (left == 0) {
		errno = EIO;
		return -1;
	}
	size_t n = (size_t)left < len ? (size_t)left : len;
	ssize_t w = pwrite(fd, buf, n, off);
	if (w > 0)
		atomic_fetch_sub(&t->budget, (long)w);
	return w;
}

static int torn_sync(void *ctx, const char *file, int fd)
{
	(void)ctx;
	return strcmp(file, IG_LEDGER_LOG) == 0 ? fdatasync(fd) : fsync(fd);
}

static ig_ledger *open_with_torn_io(torn_io *t)
{
	static ig_ledger_io io = {.pwrite = torn_pwrite, .sync = torn_sync};
	io.ctx = t;
	atomic_store(&t->budget, -1);
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = true, .io = &io};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "open: %s", err.msg);
	return l;
}

Test(ledger, torn_write_then_reopen_recovers_acknowledged_records)
{
	make_ledger(0);
	torn_io torn;
	ig_ledger *l = open_with_torn_io(&torn);
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "ok%d", i);
		cr_assert_eq(append_enroll(l, id), (uint64_t)i + 1);
	}
	ig_error err = {0};
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK);
	off_t before = file_size(log_path);
	uint8_t head[IG_HASH_BYTES];
	ig_ledger_head(l, head);

	atomic_store(&torn.budget, 100);
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "lost");
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_IO);
	cr_assert(strstr(err.msg, "not written"), "%s", err.msg);
	cr_assert(strstr(logbuf, "writing ledger.log failed: Input/output error"), "%s", logbuf);
	/* Everything after the failure is refused; nothing is acknowledged. */
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_IO);
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, NULL, NULL), IG_ERR_IO);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_ERR_IO);
	cr_assert_eq(ig_ledger_height(l), 6);
	uint8_t head2[IG_HASH_BYTES];
	ig_ledger_head(l, head2);
	cr_assert_eq(memcmp(head, head2, IG_HASH_BYTES), 0);
	ig_ledger_close(l);
	cr_assert_eq(file_size(log_path), before + 100);

	logbuf[0] = '\0';
	l = open_ledger(true);
	cr_assert_eq(ig_ledger_height(l), 6);
	ig_ledger_head(l, head2);
	cr_assert_eq(memcmp(head, head2, IG_HASH_BYTES), 0);
	cr_assert(strstr(logbuf, "record 6 was torn by a crash; cut 100 bytes"), "%s", logbuf);
	cr_assert_eq(append_enroll(l, "after"), 6);
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 7);
}

Test(ledger, failed_batch_fails_every_pending_async_append)
{
	make_ledger(2);
	torn_io torn;
	ig_ledger *l = open_with_torn_io(&torn);
	atomic_store(&torn.budget, 0);
	async_ctx a = {.ordered = true};
	uint8_t body[512];
	int accepted = 0;
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "a%d", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		int rc = ig_ledger_submit(l, IG_REC_ENROLL, body, len, async_done, &a);
		cr_assert(rc == IG_OK || rc == IG_ERR_IO);
		accepted += rc == IG_OK;
	}
	cr_assert(accepted >= 1);
	while (a.failed < accepted) {
		struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
		cr_assert(poll(&pfd, 1, 5000) == 1, "completion never signalled");
		ig_ledger_poll(l);
	}
	cr_assert_eq(a.done, 0);
	cr_assert_eq(a.failed, accepted);
	ig_ledger_stats st;
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.height, 3);
	ig_ledger_close(l);
	ig_ledger *r = open_ledger(true);
	cr_assert_eq(ig_ledger_height(r), 3);
	ig_ledger_close(r);
}

Test(ledger, close_delivers_pending_completions)
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	async_ctx a = {.ordered = true};
	uint8_t body[512];
	for (int i = 0; i < 50; i++) {
		char id[16];
		snprintf(id, sizeof id, "c%d", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, async_done, &a), IG_OK);
	}
	ig_ledger_close(l);
	cr_assert_eq(a.done, 50);
	cr_assert(a.ordered);
	cr_assert_eq(a.last_index, 50);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 51);
	cr_assert_eq(res.checkpoint_size, 51);
}

/* genesis + n enrolls with long ids, written through the async path: a log
 * of about n * 190 bytes, fully checkpointed. */
static void make_big_ledger(unsigned n)
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	uint8_t body[512];
	async_ctx a = {.ordered = true};
	for (unsigned i = 0; i < n; i++) {
		char id[IG_ID_MAX + 1];
		snprintf(id, sizeof id, "big-%07u-padding-padding-padding-padding-padding-padding", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, async_done, &a), IG_OK);
	}
	ig_error err = {0};
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	cr_assert_eq(a.done, (int)n);
	cr_assert(a.ordered, "completions must run in index order");
}

/* Logs above a few MB are scanned by two threads; damage must be found and
 * named the same way, including at chunk boundaries. */
Test(ledger, large_ledger_parallel_scan_finds_damage)
{
	const unsigned n = 32000;
	make_big_ledger(n);
	ig_error err = {0};

	size_t len;
	uint8_t *orig = read_file(log_path, &len);
	cr_assert(len > (5u << 20), "log of %zu bytes is too small to exercise the parallel scan", len);
	size_t *offs = malloc((n + 1) * sizeof *offs);
	size_t off = 0;
	for (unsigned i = 0; i <= n; i++) {
		offs[i] = off;
		off += ig_get_u32(orig + off + 4);
	}
	cr_assert_eq(off, len);

	replay r = {.order_ok = true};
	ig_verify_result res;
	cr_assert_eq(ig_ledger_verify(ldir, count_record, &r, NULL, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, n + 1);
	cr_assert_eq(r.count, n + 1);
	cr_assert(r.order_ok);

	uint8_t *buf = malloc(len);
	const unsigned targets[] = {1, 4095, 4096, 4097, 8191, 8192, 12345, n - 1, n};
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		unsigned idx = targets[t];
		uint32_t flen = ig_get_u32(orig + offs[idx] + 4);
		for (int fix = 0; fix < 2; fix++) {
			memcpy(buf, orig, len);
			buf[offs[idx] + IG_REC_HEADER_BYTES + 3] ^= 0x20;
			if (fix)
				fix_crc(buf + offs[idx], flen);
			write_file(log_path, buf, len);
			int rc = verify(&res, &err);
			cr_assert_eq(rc, IG_ERR_CORRUPT, "record %u fix %d: rc %d", idx, fix, rc);
			if (fix && idx == n)
				cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);
			else
				cr_assert(names_record(err.msg, idx), "record %u fix %d: %s", idx, fix, err.msg);
		}
	}
	/* A torn tail past an older checkpoint, on a large log. */
	uint8_t rootv[IG_HASH_BYTES];
	ig_merkle_acc acc;
	ig_merkle_init_hash(&acc, test_tree());
	for (unsigned i = 0; i < n; i++) {
		ig_record rec;
		cr_assert_eq(ig_record_decode(orig + offs[i], len - offs[i], &rec), IG_FRAME_OK);
		uint8_t leaf[IG_HASH_BYTES];
		test_leaf(leaf, orig + offs[i], &rec);
		ig_merkle_push(&acc, leaf);
	}
	ig_merkle_root(&acc, rootv);
	sign_checkpoint(n, rootv, NULL);
	write_file(log_path, orig, len - 7);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, n);
	cr_assert_eq(res.torn_bytes, offs[n] + ig_get_u32(orig + offs[n] + 4) - 7 - offs[n]);
	free(buf);
	free(offs);
	free(orig);
}

Test(ledger, idle_writer_checkpoints_without_being_asked)
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	cr_assert(!ig_ledger_checkpoint_changed(l));
	cr_assert_eq(append_enroll(l, "idle1"), 1);
	/* No sync: going idle is enough (within a few ms). */
	ig_ledger_stats st;
	for (int i = 0; i < 500; i++) {
		ig_ledger_get_stats(l, &st);
		if (st.checkpoint_size == 2)
			break;
		usleep(2000);
	}
	cr_assert_eq(st.checkpoint_size, 2);
	cr_assert(ig_ledger_checkpoint_changed(l));
	/* The event fd wakes an event loop for the new checkpoint as well. */
	struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 0), 1);
	cr_assert_eq(ig_ledger_poll(l), 0);
	cr_assert_eq(poll(&pfd, 1, 0), 0, "poll must drain the event fd");
	size_t cplen;
	char *text = (char *)read_file(cp_path, &cplen);
	cr_assert(strstr(text, "iotguard/testc\n2\n"), "%s", text);
	free(text);
	ig_ledger_close(l);
}

/* ---- acknowledged means covered by a durable signed checkpoint ---- */

/* The size line of the checkpoint file as it is on disk now. */
static uint64_t disk_checkpoint_size(void)
{
	size_t len;
	char *text = (char *)read_file(cp_path, &len);
	char *nl = strchr(text, '\n');
	cr_assert_not_null(nl);
	uint64_t size = strtoull(nl + 1, NULL, 10);
	free(text);
	return size;
}

typedef struct cp_probe {
	int done;
	int uncovered;
} cp_probe;

static void probe_done(void *ctx, int status, const ig_record *rec)
{
	cp_probe *p = ctx;
	cr_assert_eq(status, IG_OK);
	if (disk_checkpoint_size() < rec->index + 1)
		p->uncovered++;
	p->done++;
}

Test(ledger, acknowledged_records_are_covered_by_the_checkpoint_on_disk)
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	/* Blocking appends: the moment append returns. */
	for (int i = 0; i < 40; i++) {
		char id[16];
		snprintf(id, sizeof id, "b%d", i);
		uint64_t index = append_enroll(l, id);
		uint64_t size = disk_checkpoint_size();
		cr_assert(size >= index + 1, "record %llu acknowledged but the checkpoint on disk covers only %llu",
		          (unsigned long long)index, (unsigned long long)size);
	}
	/* Async: the moment the completion runs (the plugin's path). */
	cp_probe p = {0};
	uint8_t body[512];
	for (int i = 0; i < 40; i++) {
		char id[16];
		snprintf(id, sizeof id, "s%d", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, probe_done, &p), IG_OK);
		if (i % 8 == 7) {
			while (p.done < i + 1) {
				struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
				cr_assert(poll(&pfd, 1, 5000) == 1, "completion never signalled");
				ig_ledger_poll(l);
			}
		}
	}
	cr_assert_eq(p.done, 40);
	cr_assert_eq(p.uncovered, 0);
	ig_ledger_stats st;
	ig_ledger_get_stats(l, &st);
	cr_assert_eq(st.checkpoint_size, st.height);
	ig_ledger_close(l);
}

/* What a crash right after the 5th acknowledgement leaves on disk: the
 * files copied while the writer is still open. */
static uint8_t *snapshot_after_acks(size_t *log_len, char **cp_text, size_t *cp_len, size_t offs[16])
{
	make_ledger(0);
	ig_ledger *l = open_ledger(true);
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "ack%d", i);
		cr_assert_eq(append_enroll(l, id), (uint64_t)i + 1);
	}
	*cp_text = (char *)read_file(cp_path, cp_len);
	uint8_t *log = read_file(log_path, log_len);
	ig_ledger_close(l);
	cr_assert_eq(frame_offsets(log, *log_len, offs, 16), 6);
	return log;
}

Test(ledger, log_cut_at_an_acknowledged_record_boundary_is_refused)
{
	size_t len, cplen, offs[16];
	char *cp;
	uint8_t *log = snapshot_after_acks(&len, &cp, &cplen, offs);
	for (int drop = 1; drop <= 2; drop++) {
		/* Cut exactly at a frame boundary: every remaining frame is valid. */
		write_file(log_path, log, offs[6 - drop]);
		write_file(cp_path, cp, cplen);
		ig_error err;
		ig_verify_result res;
		cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT, "cutting %d acknowledged records went unnoticed", drop);
		cr_assert(strstr(err.msg, "shorter than its signed checkpoint"), "%s", err.msg);
		cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
		cr_assert(strstr(err.msg, "shorter than its signed checkpoint"), "%s", err.msg);
		cr_assert(strstr(err.msg, "tampered or corrupt"), "%s", err.msg);
		/* The refusal did not cut or change anything. */
		cr_assert_eq(file_size(log_path), (off_t)offs[6 - drop]);
	}
	free(log);
	free(cp);
}

Test(ledger, bit_flip_in_the_last_acknowledged_record_is_refused)
{
	size_t len, cplen, offs[16];
	char *cp;
	uint8_t *log = snapshot_after_acks(&len, &cp, &cplen, offs);
	uint32_t flen = (uint32_t)(len - offs[5]);
	for (int fix = 0; fix < 2; fix++) {
		for (uint32_t at = 8; at < flen; at += 13) {
			uint8_t *bad = malloc(len);
			memcpy(bad, log, len);
			bad[offs[5] + at] ^= 0x10;
			if (fix)
				fix_crc(bad + offs[5], flen);
			write_file(log_path, bad, len);
			write_file(cp_path, cp, cplen);
			ig_error err;
			ig_verify_result res;
			int rc = verify(&res, &err);
			cr_assert_eq(rc, IG_ERR_CORRUPT, "flip at %u (crc fixed %d) passed verify (torn %llu)", at, fix,
			             (unsigned long long)res.torn_bytes);
			cr_assert(names_record(err.msg, 5) || strstr(err.msg, "Merkle root"), "%s", err.msg);
			cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
			cr_assert_eq(file_size(log_path), (off_t)len, "a writer open cut a checkpointed record");
			free(bad);
		}
	}
	free(log);
	free(cp);
}

Test(ledger, torn_tail_beyond_the_checkpoint_is_still_cut)
{
	size_t len, cplen, offs[16];
	char *cp;
	uint8_t *log = snapshot_after_acks(&len, &cp, &cplen, offs);
	/* A crash mid-write of the next batch: half of a frame after the
	 * checkpointed records. */
	uint8_t *torn = malloc(len + 200);
	memcpy(torn, log, len);
	memcpy(torn + len, log + offs[5], 100);
	write_file(log_path, torn, len + 100);
	write_file(cp_path, cp, cplen);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.torn_bytes, 100);
	ig_ledger *l = open_ledger(true);
	cr_assert_eq(ig_ledger_height(l), 6);
	ig_ledger_close(l);
	cr_assert(strstr(logbuf, "record 6 was torn by a crash; cut 100 bytes"), "%s", logbuf);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.torn_bytes, 0);
	free(torn);
	free(log);
	free(cp);
}

/* ---- disk full and failed fsync, through the I/O hooks ---- */

typedef struct fault {
	atomic_bool log_full;        /* log writes fail with ENOSPC */
	atomic_bool cp_full;         /* checkpoint.tmp writes fail with ENOSPC */
	atomic_bool log_sync_fails;  /* fdatasync of the log fails with EIO */
	atomic_int full_hits;
	bool partial;                /* a full write first accepts half of its bytes */
	bool half_given;             /* writer thread only */
} fault;

static ssize_t fault_pwrite(void *ctx, const char *file, int fd, const void *buf, size_t len, off_t off)
{
	fault *f = ctx;
	bool full = strcmp(file, IG_LEDGER_LOG) == 0 ? atomic_load(&f->log_full)
	                                              : atomic_load(&f->cp_full) && strcmp(file, IG_LEDGER_CHECKPOINT_TMP) == 0;
	if (full) {
		atomic_fetch_add(&f->full_hits, 1);
		/* As the kernel does: a short write first, ENOSPC on the next call. */
		if (f->partial && len > 1 && !f->half_given) {
			f->half_given = true;
			return pwrite(fd, buf, len / 2, off);
		}
		f->half_given = false;
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

static int fault_sync(void *ctx, const char *file, int fd)
{
	fault *f = ctx;
	if (strcmp(file, IG_LEDGER_LOG) == 0) {
		if (atomic_load(&f->log_sync_fails)) {
			errno = EIO;
			return -1;
		}
		return fdatasync(fd);
	}
	return fsync(fd);
}

static ig_ledger *open_with_faults(fault *f)
{
	static ig_ledger_io io = {.pwrite = fault_pwrite, .sync = fault_sync};
	io.ctx = f;
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = true, .io = &io};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "open: %s", err.msg);
	return l;
}

typedef struct status_log {
	int n;
	int status[64];
	uint64_t index[64];
} status_log;

static void log_status(void *ctx, int status, const ig_record *rec)
{
	status_log *s = ctx;
	cr_assert(s->n < 64);
	s->status[s->n] = status;
	s->index[s->n] = rec ? rec->index : UINT64_MAX;
	s->n++;
}

static void poll_for(ig_ledger *l, status_log *s, int want, int timeout_ms)
{
	for (int waited = 0; s->n < want && waited < timeout_ms; waited += 10) {
		struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
		(void)poll(&pfd, 1, 10);
		ig_ledger_poll(l);
	}
}

static void disk_full_is_retried(bool on_checkpoint, bool partial)
{
	make_ledger(2);
	fault f = {.partial = partial};
	ig_ledger *l = open_with_faults(&f);
	atomic_store(on_checkpoint ? &f.cp_full : &f.log_full, true);
	status_log s = {0};
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "held");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_OK);
	while (atomic_load(&f.full_hits) < 3)
		usleep(1000);
	/* Held, not acknowledged, not failed. */
	poll_for(l, &s, 1, 50);
	cr_assert_eq(s.n, 0, "a record was answered while the disk is full");
	/* New records are refused, saying why and what to do. */
	len = tu_device_enroll_body(body, sizeof body, "refused");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_ERR_NOSPACE);
	ig_error err = {0};
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_NOSPACE);
	cr_assert(strstr(err.msg, "disk is full") && strstr(err.msg, "free space"), "%s", err.msg);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_ERR_NOSPACE);
	cr_assert(strstr(logbuf, "the disk is full (ENOSPC)"), "%s", logbuf);

	/* Space comes back: the held record is written and acknowledged with
	 * no reopen, and the ledger takes records again. */
	atomic_store(on_checkpoint ? &f.cp_full : &f.log_full, false);
	poll_for(l, &s, 1, 5000);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.status[0], IG_OK);
	cr_assert_eq(s.index[0], 3);
	cr_assert(disk_checkpoint_size() >= 4);
	cr_assert_eq(append_enroll(l, "after"), 4);
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 5);
	cr_assert_eq(res.torn_bytes, 0);
}

Test(ledger, enospc_writing_the_log_is_retried_without_reopen) { disk_full_is_retried(false, false); }
Test(ledger, enospc_after_a_partial_log_write_is_retried) { disk_full_is_retried(false, true); }
Test(ledger, enospc_writing_the_checkpoint_is_retried) { disk_full_is_retried(true, false); }

Test(ledger, records_queued_behind_a_full_disk_fail_as_not_written)
{
	make_ledger(1);
	fault f = {0};
	ig_ledger *l = open_with_faults(&f);
	atomic_store(&f.log_full, true);
	status_log s = {0};
	uint8_t body[512];
	int accepted = 0;
	for (int i = 0; i < 30; i++) {
		char id[16];
		snprintf(id, sizeof id, "q%d", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		int rc = ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s);
		cr_assert(rc == IG_OK || rc == IG_ERR_NOSPACE, "rc %d", rc);
		accepted += rc == IG_OK;
	}
	while (atomic_load(&f.full_hits) < 2)
		usleep(1000);
	/* Closing while the disk is still full: the held batch was never
	 * written (every write failed at byte 0), so its records are certainly
	 * absent, as are the ones queued behind it. */
	ig_ledger_close(l);
	cr_assert_eq(s.n, accepted);
	for (int i = 0; i < s.n; i++)
		cr_assert_eq(s.status[i], IG_ERR_NOSPACE, "completion %d: %d", i, s.status[i]);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 2);
}

Test(ledger, close_on_a_full_disk_after_a_partial_write_answers_unknown)
{
	make_ledger(1);
	fault f = {.partial = true};
	ig_ledger *l = open_with_faults(&f);
	atomic_store(&f.log_full, true);
	status_log s = {0};
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "p0");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_OK);
	len = tu_device_enroll_body(body, sizeof body, "p1");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_OK);
	while (atomic_load(&f.full_hits) < 2)
		usleep(1000);
	ig_ledger_close(l);
	/* Both records went out in one batch or two; whichever frame the
	 * kernel accepted whole may be found by the next open. None may be
	 * reported as certainly absent unless none of its bytes were taken. */
	cr_assert(s.n >= 1);
	ig_ledger *r = open_ledger(false);
	uint64_t h = ig_ledger_height(r);
	ig_ledger_close(r);
	for (int i = 0; i < s.n; i++) {
		cr_assert(s.status[i] == IG_ERR_UNKNOWN || s.status[i] == IG_ERR_NOSPACE, "status %d", s.status[i]);
		if (s.status[i] == IG_ERR_NOSPACE)
			cr_assert(s.index[i] == UINT64_MAX);
		else
			cr_assert(s.index[i] >= 2);
	}
	/* A record found by the next open was never reported absent. */
	for (int i = 0; i < s.n; i++)
		if (s.status[i] == IG_ERR_NOSPACE)
			cr_assert(h <= 2 + (uint64_t)i, "record %d reported absent but found", i);
}

Test(ledger, failed_fdatasync_answers_unknown_and_stops_the_writer)
{
	make_ledger(1);
	fault f = {0};
	ig_ledger *l = open_with_faults(&f);
	atomic_store(&f.log_sync_fails, true);
	status_log s = {0};
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "maybe");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_OK);
	poll_for(l, &s, 1, 5000);
	cr_assert_eq(s.n, 1);
	/* The bytes reached the kernel: the record may be there. */
	cr_assert_eq(s.status[0], IG_ERR_UNKNOWN);
	cr_assert_eq(s.index[0], 2);
	cr_assert(strstr(logbuf, "fdatasync of ledger.log failed") && strstr(logbuf, "never retried"), "%s", logbuf);
	/* A failed fsync is never retried: even with the disk healthy again
	 * the writer takes nothing until reopened. */
	atomic_store(&f.log_sync_fails, false);
	usleep(50000);
	ig_error err = {0};
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, log_status, &s), IG_ERR_IO);
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_IO);
	cr_assert(strstr(err.msg, "reopen"), "%s", err.msg);
	ig_ledger_close(l);
	/* Here the page cache did keep it: the next open finds the record it
	 * could not promise, which is why it was answered "unknown". */
	l = open_ledger(true);
	cr_assert_eq(ig_ledger_height(l), 3);
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.checkpoint_size, 3);
}

/* ---- error messages never carry raw bytes from a tampered file ---- */

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
		if (extra < 0 || (extra == 1 && *p < 0xc2))
			return false;
		p++;
		for (int i = 0; i < extra; i++, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

Test(ledger, tampered_checkpoint_bytes_are_escaped_in_errors)
{
	make_ledger(1);
	size_t len;
	char *orig = (char *)read_file(cp_path, &len);
	char *nl = strchr(orig, '\n');
	cr_assert_not_null(nl);
	/* Same checkpoint, origin line replaced by bytes that are not UTF-8. */
	char bad[IG_CHECKPOINT_MAX + 64];
	int n = snprintf(bad, sizeof bad, "iotguard/te\xff\xfest\xc3%s", nl);
	cr_assert(n > 0 && (size_t)n < sizeof bad);
	write_file(cp_path, bad, (size_t)n);
	ig_error err;
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "checkpoint origin is"), "%s", err.msg);
	cr_assert(strstr(err.msg, "te\\xff\\xfest\\xc3"), "%s", err.msg);
	cr_assert(utf8_valid(err.msg), "raw bytes copied into: %s", err.msg);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(utf8_valid(err.msg), "raw bytes copied into: %s", err.msg);
	free(orig);
}

/* ---- what docs/LEDGER.md section 1-2 promise about the files ---- */

static mode_t mode_of(const char *path)
{
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0, "%s", path);
	return sb.st_mode & 07777;
}

Test(ledger, file_sizes_and_modes_are_as_documented)
{
	mode_t old = umask(077);
	make_ledger(1);
	cr_assert_eq(file_size(key_file), 92, "ch.key is one 92-byte line");
	cr_assert_eq(mode_of(key_file), 0600);
	cr_assert_eq(mode_of(log_path), 0600, "0644 less umask 077");
	cr_assert_eq(mode_of(cp_path), 0600, "0644 less umask 077");
	/* The checkpoint is re-created by each writer: its mode follows the
	 * writer's umask, ch.key stays 0600 whatever the umask. */
	umask(022);
	ig_ledger *l = open_ledger(true);
	cr_assert_eq(append_enroll(l, "umask"), 2);
	ig_ledger_close(l);
	cr_assert_eq(mode_of(cp_path), 0644);
	cr_assert_eq(mode_of(log_path), 0600, "ledger.log keeps the mode init gave it");
	cr_assert_eq(mode_of(key_file), 0600);
	umask(old);
}

/* ---- replay: census, stateless checks, memory (issue 8) ---- */


typedef struct census_seen {
	int calls;
	uint64_t records_before;     /* records on_record had seen when the census came */
	ig_ledger_census c;
	uint64_t records;
} census_seen;

static void take_census_cb(void *ctx, const ig_ledger_census *c)
{
	census_seen *s = ctx;
	s->calls++;
	s->records_before = s->records;
	s->c = *c;
}

static int census_record(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)rec;
	(void)err;
	((census_seen *)ctx)->records++;
	return IG_OK;
}

Test(ledger, census_counts_frames_by_type_before_the_first_record)
{
	make_ledger(5);
	ig_ledger *l = open_ledger(true);
	ig_error err = {0};
	const uint8_t odd[7] = {1, 2, 3, 4, 5, 6, 7};
	cr_assert_eq(ig_ledger_append(l, 40, odd, sizeof odd, NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_ledger_append(l, 40, odd, 3, NULL, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	/* the last record stays past the checkpoint, so it may be torn below */
	size_t cplen;
	uint8_t *old_cp = read_file(cp_path, &cplen);
	l = open_ledger(true);
	cr_assert_eq(ig_ledger_append(l, 100, odd, 5, NULL, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	write_file(cp_path, old_cp, cplen);
	free(old_cp);
	size_t len;
	uint8_t *buf = read_file(log_path, &len);
	size_t offs[16];
	cr_assert_eq(frame_offsets(buf, len, offs, 16), 9);
	uint64_t enroll_bytes = 0;
	for (int i = 1; i <= 5; i++)
		enroll_bytes += ig_get_u32(buf + offs[i] + 4) - IG_REC_OVERHEAD;

	census_seen s = {0};
	ig_ledger_open_opts opts = {.on_record = census_record, .on_census = take_census_cb, .ctx = &s};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.records_before, 0, "the census came after %llu records", (unsigned long long)s.records_before);
	cr_assert_eq(s.records, 9);
	cr_assert_eq(s.c.records, 9);
	cr_assert_eq(s.c.bytes, len);
	cr_assert_eq(s.c.of_type[IG_REC_GENESIS], 1);
	cr_assert_eq(s.c.of_type[IG_REC_ENROLL], 5);
	cr_assert_eq(s.c.body_bytes[IG_REC_ENROLL], enroll_bytes);
	cr_assert_eq(s.c.of_type[40], 2);
	cr_assert_eq(s.c.body_bytes[40], 10);
	uint64_t typed = 0;
	for (int t = 0; t < IG_LEDGER_CENSUS_TYPES; t++)
		typed += s.c.of_type[t];
	cr_assert_eq(typed, 8, "type 100 is counted only in records");

	/* A torn tail is counted as far as its header parses; the open then
	 * cuts it. A header cut short ends the count. */
	write_file(log_path, buf, len - 2);
	s = (census_seen){0};
	opts.writer = true;
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	cr_assert_eq(s.c.records, 8);
	cr_assert_eq(s.records, 8);
	free(buf);
}

typedef struct refuse_ctx {
	uint64_t refuse_at;
	bool silent;                 /* refuse without a message */
	uint64_t applied;
	uint64_t last_applied;
} refuse_ctx;

static int refuse_one(void *ctx, const ig_record *rec, ig_error *err)
{
	refuse_ctx *c = ctx;
	if (rec->index == c->refuse_at) {
		if (c->silent)
			return IG_ERR_RANGE;
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll record: field role (9) is not a known role");
	}
	c->applied++;
	c->last_applied = rec->index;
	return IG_OK;
}

/* A refusal by on_record names that record in the words open() has always
 * used, after every record before it was applied, whether the scan ran on
 * one thread (small log) or checked ahead on a second one (big log). */
static void refusal_case(uint64_t at, bool silent)
{
	refuse_ctx c = {.refuse_at = at, .silent = silent};
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = true, .on_record = refuse_one, .ctx = &c};
	int rc = ig_ledger_open(&l, ldir, &opts, &err);
	cr_assert_null(l);
	cr_assert_eq(rc, silent ? IG_ERR_RANGE : IG_ERR_CORRUPT);
	cr_assert_eq(err.code, rc);
	char want[200];
	if (silent)
		snprintf(want, sizeof want, "ledger record %llu: rejected by the record handler (code %d)",
		         (unsigned long long)at, IG_ERR_RANGE);
	else
		snprintf(want, sizeof want, "ledger record %llu: enroll record: field role (9) is not a known role",
		         (unsigned long long)at);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(c.applied, at, "applied %llu records before the refused one", (unsigned long long)c.applied);
	cr_assert_eq(c.last_applied, at - 1);
}

Test(ledger, refusal_on_a_big_log_reads_as_on_a_small_one)
{
	make_ledger(8);
	refusal_case(3, false);
	refusal_case(8, true);
	ig_error err = {0};
	cr_assert_eq(try_open_writer(&err), IG_OK, "%s", err.msg);   /* the lock was released each time */
	tu_rmtree(ldir);
	make_big_ledger(30000);
	cr_assert_gt(file_size(log_path), 5 << 20);
	refusal_case(1, false);
	refusal_case(1024, false);
	refusal_case(1025, true);
	refusal_case(29999, true);
	refusal_case(30000, false);
	cr_assert_eq(try_open_writer(&err), IG_OK, "%s", err.msg);
}

/* Bytes of file-backed memory this process has resident. */
static long rss_file_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	cr_assert_not_null(f);
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "RssFile: %ld kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_geq(kb, 0, "no RssFile in /proc/self/status");
	return kb;
}

typedef struct rss_probe {
	uint64_t last_index;
	long at_end_kb;
} rss_probe;

static int probe_rss(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)err;
	rss_probe *p = ctx;
	if (rec->index == p->last_index)
		p->at_end_kb = rss_file_kb();
	return IG_OK;
}

/* The scan maps the log; pages it has checked and applied must not stay
 * resident, or replaying a 1 GB log adds 1 GB to the broker's peak memory. */
Test(ledger, replay_gives_the_mapped_log_back_as_it_goes, .timeout = 120)
{
	const unsigned n = 200000;
	make_big_ledger(n);
	off_t log_bytes = file_size(log_path);
	cr_assert_gt(log_bytes, 32 << 20);
	ig_error err = {0};
	for (int writer = 0; writer < 2; writer++) {
		rss_probe p = {.last_index = n};
		long before = rss_file_kb();
		ig_ledger *l = NULL;
		ig_ledger_open_opts opts = {.writer = writer, .on_record = probe_rss, .ctx = &p};
		cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
		ig_ledger_close(l);
		long grown = p.at_end_kb - before;
		cr_assert_lt(grown * 1024, log_bytes / 3,
		             "%ld kB of a %lld-byte log were still mapped at the last record", grown,
		             (long long)log_bytes);
	}
}

Test(ledger, scan_buffer_checks_a_ledger_in_memory)
{
	size_t len, last_off;
	uint8_t *buf = make_uncovered_tail(&len, &last_off);
	size_t cp_len;
	char *cp = (char *)read_file(cp_path, &cp_len);
	ig_error err = {0};
	ig_verify_result want, got;
	cr_assert_eq(verify(&want, &err), IG_OK, "%s", err.msg);

	replay r = {.order_ok = true};
	census_seen s = {0};
	ig_ledger_open_opts opts = {.on_record = count_record, .ctx = &r};
	cr_assert_eq(ig_ledger_scan_buffer(buf, len, cp, cp_len, &opts, &got, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &want, sizeof got), 0, "scan_buffer and verify disagree");
	cr_assert_eq(got.height, 7);
	cr_assert_eq(r.count, 7);
	cr_assert(r.order_ok);
	opts = (ig_ledger_open_opts){.on_census = take_census_cb, .ctx = &s};
	cr_assert_eq(ig_ledger_scan_buffer(buf, len, cp, cp_len, &opts, NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(s.c.records, 7);
	cr_assert_eq(ig_ledger_scan_buffer(buf, len, cp, cp_len, NULL, &got, &err), IG_OK, "%s", err.msg);

	/* A torn tail past the checkpoint is reported, not an error. */
	cr_assert_eq(ig_ledger_scan_buffer(buf, len - 5, cp, cp_len, NULL, &got, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(got.height, 6);
	cr_assert_eq(got.torn_bytes, len - 5 - last_off);
	/* The caller's buffer is only read. */
	uint8_t *copy = malloc(len);
	memcpy(copy, buf, len);
	/* Damage inside the checkpoint fails with the message verify gives. */
	copy[last_off - 10] ^= 0x01;
	write_file(log_path, copy, len);
	ig_error file_err = {0};
	cr_assert_eq(verify(&got, &file_err), IG_ERR_CORRUPT);
	uint8_t *before = malloc(len);
	memcpy(before, copy, len);
	cr_assert_eq(ig_ledger_scan_buffer(copy, len, cp, cp_len, NULL, &got, &err), IG_ERR_CORRUPT);
	cr_assert_str_eq(err.msg, file_err.msg);
	cr_assert(names_record(err.msg, 5), "%s", err.msg);
	cr_assert_eq(memcmp(copy, before, len), 0);

	/* Nothing, or no checkpoint, or a checkpoint too big to be one. */
	cr_assert_eq(ig_ledger_scan_buffer(buf, 0, cp, cp_len, NULL, &got, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger record 0: (memory)/ledger.log is empty"), "%s", err.msg);
	cr_assert_eq(ig_ledger_scan_buffer(buf, len, NULL, 0, NULL, &got, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger checkpoint (memory)/checkpoint"), "%s", err.msg);
	char *huge = calloc(1, IG_CHECKPOINT_MAX + 2);
	memset(huge, 'a', IG_CHECKPOINT_MAX + 1);
	cr_assert_eq(ig_ledger_scan_buffer(buf, len, huge, IG_CHECKPOINT_MAX + 1, NULL, &got, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "is larger than"), "%s", err.msg);
	cr_assert_eq(ig_ledger_scan_buffer(NULL, 5, cp, cp_len, NULL, &got, &err), IG_ERR_INVAL);
	free(huge);
	free(before);
	free(copy);
	free(cp);
	free(buf);
}

/* ig_state_replay_opts (tables sized from the census, slots prefetched)
 * must rebuild the same state and fail with the same code and words as
 * ig_state_apply on every record. */
static int replay_with(bool replay_opts, uint64_t *active, ig_error *err)
{
	ig_state *st = ig_state_new();
	cr_assert_not_null(st);
	ig_ledger_open_opts opts = {.writer = true};
	if (replay_opts) {
		ig_state_replay_opts(st, &opts);
		cr_assert_not_null(opts.on_census);
		cr_assert_not_null(opts.ahead);
	} else {
		opts.on_record = ig_state_on_record;
		opts.ctx = st;
	}
	ig_ledger *l = NULL;
	memset(err, 0, sizeof *err);
	int rc = ig_ledger_open(&l, ldir, &opts, err);
	*active = ig_registry_count(ig_state_registry(st), IG_ID_ACTIVE, IG_ROLE_NONE);
	ig_ledger_close(l);
	ig_state_free(st);
	return rc;
}

static void same_replay(int want_rc, uint64_t want_active)
{
	ig_error a, b;
	uint64_t na, nb;
	int ra = replay_with(false, &na, &a);
	int rb = replay_with(true, &nb, &b);
	cr_assert_eq(ra, want_rc, "ig_state_on_record: %d %s", ra, a.msg);
	cr_assert_eq(rb, ra, "replay opts: %d %s", rb, b.msg);
	cr_assert_str_eq(b.msg, a.msg);
	if (want_rc == IG_OK) {
		cr_assert_eq(na, want_active);
		cr_assert_eq(nb, want_active);
	}
}

Test(ledger, state_replay_opts_match_ig_state_apply)
{
	make_ledger(20);
	same_replay(IG_OK, 20);
	/* a body the spec refuses (role 9), then a state rule break */
	ig_ledger *l = open_ledger(true);
	uint8_t body[256], pk[IG_PK_BYTES] = {0};
	size_t pos = 0;
	const uint8_t role = 9;
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 1, "dev-x", 5), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 2, &role, 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 3, pk, sizeof pk), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 4, "admin1", 6), IG_OK);
	ig_error err = {0};
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, pos, NULL, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);
	same_replay(IG_ERR_CORRUPT, 0);
	ig_error e1;
	uint64_t n;
	replay_with(true, &n, &e1);
	cr_assert(strstr(e1.msg, "ledger record 21: "), "%s", e1.msg);

	tu_rmtree(ldir);
	make_ledger(3);
	l = open_ledger(true);
	append_enroll(l, "dev1");   /* already active */
	ig_ledger_close(l);
	same_replay(IG_ERR_CORRUPT, 0);

	/* and on a log big enough for the second thread */
	tu_rmtree(ldir);
	make_big_ledger(30000);
	same_replay(IG_OK, 30000);
}

/* The ledger of LEDGER.md §12 (three frames and the checkpoint signed with
 * the vector key) passes the scan on memory and rebuilds its state: the
 * same bytes fuzz_ledger_scan starts from. `from` finds the vectors of one
 * format within the section. */
static void documented_ledger_scans(const char *from, unsigned version)
{
	const char *doc = tu_read_doc("LEDGER.md");
	const char *sec = strstr(doc, "\n## 12");
	cr_assert_not_null(sec);
	const char *p = strstr(sec, from);
	cr_assert_not_null(p, "'%s' not found in LEDGER.md §12", from);
	uint8_t log[512];
	size_t log_len = 0;
	for (int i = 0; i < 3; i++) {
		p = strstr(p, "```\n49475231");
		cr_assert_not_null(p, "frame %d not found in LEDGER.md §12", i);
		p += 4;
		const char *end = strchr(p, '\n');
		size_t bin;
		cr_assert_eq(sodium_hex2bin(log + log_len, sizeof log - log_len, p, (size_t)(end - p), NULL, &bin, NULL),
		             0);
		log_len += bin;
		p = end;
	}
	const char *cp = strstr(p, "```\niotguard/demo\n");
	cr_assert_not_null(cp);
	cp += 4;
	const char *cp_end = strstr(cp, "```");
	cr_assert_not_null(cp_end);

	ig_genesis g;
	ig_record rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_decode(log, log_len, &rec), IG_FRAME_OK);
	cr_assert_eq(ig_record_genesis_decode(rec.body, rec.body_len, &g, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(g.version, version);

	ig_state *st = ig_state_new();
	ig_ledger_open_opts opts = {0};
	ig_state_replay_opts(st, &opts);
	ig_verify_result res;
	cr_assert_eq(ig_ledger_scan_buffer(log, log_len, cp, (size_t)(cp_end - cp), &opts, &res, &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(res.height, 3);
	cr_assert_eq(res.checkpoint_size, 3);
	cr_assert_eq(res.torn_bytes, 0);
	cr_assert_str_eq(res.cluster, "demo");
	const ig_identity *dev1 = ig_registry_find(ig_state_registry(st), "dev1", 4);
	cr_assert_not_null(dev1);
	cr_assert_eq(dev1->status, IG_ID_REVOKED);
	ig_state_free(st);

	/* A checkpoint over the other format's tree of the same frames, signed
	 * by the same key, is refused: the genesis version decides the hash. */
	ig_merkle_hash other = version == IG_FORMAT_V1 ? IG_MERKLE_SHA256 : IG_MERKLE_BLAKE2B;
	ig_merkle_acc acc;
	ig_merkle_init_hash(&acc, other);
	for (size_t off = 0; off < log_len; off += rec.frame_len) {
		cr_assert_eq(ig_record_decode(log + off, log_len - off, &rec), IG_FRAME_OK);
		uint8_t leaf[IG_HASH_BYTES];
		if (other == IG_MERKLE_SHA256)
			ig_merkle_hash_leaf(other, leaf, log + off, rec.frame_len);
		else
			memcpy(leaf, rec.hash, IG_HASH_BYTES);
		ig_merkle_push(&acc, leaf);
	}
	uint8_t seed[32], pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	crypto_sign_seed_keypair(pk, sk, seed);
	ig_checkpoint wrong = {.origin = "iotguard/demo", .size = 3};
	ig_merkle_root(&acc, wrong.root);
	char text[IG_CHECKPOINT_MAX + 1];
	int tlen = ig_checkpoint_sign(text, sizeof text, &wrong, sk);
	cr_assert_gt(tlen, 0);
	cr_assert_eq(ig_ledger_scan_buffer(log, log_len, text, (size_t)tlen, NULL, &res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);
	sodium_memzero(sk, sizeof sk);
}

Test(ledger, scan_buffer_accepts_the_documented_ledger)
{
	documented_ledger_scans("**Keys**", IG_FORMAT_V1);
}

Test(ledger, scan_buffer_accepts_the_documented_format_2_ledger)
{
	documented_ledger_scans("**Format 2: the same three records.**", IG_FORMAT_V2);
}

/* ---- the Merkle hashing split between the scan's two threads ---- */

/* A run of 2^h leaves folded as one subtree root leaves the accumulator
 * exactly as pushing the leaves one by one: same size, same compact range,
 * same roots from then on. The scan's verifier thread hashes such runs and
 * the applier folds them in. */
Test(ledger, merkle_subtree_push_equals_leaf_pushes)
{
	enum { N = 3000 };
	uint8_t(*leaves)[IG_HASH_BYTES] = malloc(N * sizeof *leaves);
	cr_assert_not_null(leaves);
	for (unsigned i = 0; i < N; i++)
		crypto_generichash(leaves[i], IG_HASH_BYTES, (const uint8_t *)&i, sizeof i, NULL, 0);
	for (unsigned h = 0; h <= 10; h++) {
		uint64_t run = UINT64_C(1) << h;
		const uint64_t starts[] = {0, run, 2 * run, 3 * run, 5 * run, 1024, 2048};
		for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
			uint64_t start = starts[s];
			if (start % run != 0 || start + run + 3 > N)
				continue;
			ig_merkle_acc one, folded, sub;
			ig_merkle_init(&one);
			ig_merkle_init(&folded);
			ig_merkle_init(&sub);
			for (uint64_t i = 0; i < start; i++) {
				ig_merkle_push(&one, leaves[i]);
				ig_merkle_push(&folded, leaves[i]);
			}
			for (uint64_t i = start; i < start + run; i++) {
				ig_merkle_push(&one, leaves[i]);
				ig_merkle_push(&sub, leaves[i]);
			}
			cr_assert_eq(sub.depth, 1);
			ig_merkle_push_subtree(&folded, sub.stack[0], h);
			cr_assert_eq(folded.size, one.size, "h %u start %llu", h, (unsigned long long)start);
			cr_assert_eq(folded.depth, one.depth, "h %u start %llu", h, (unsigned long long)start);
			for (int d = 0; d < one.depth; d++)
				cr_assert_eq(memcmp(folded.stack[d], one.stack[d], IG_HASH_BYTES), 0, "h %u start %llu level %d",
				             h, (unsigned long long)start, d);
			for (uint64_t i = start + run; i < start + run + 3; i++) {
				ig_merkle_push(&folded, leaves[i]);
				uint8_t got[IG_HASH_BYTES], want[IG_HASH_BYTES];
				ig_merkle_root(&folded, got);
				ig_merkle_root_of((const uint8_t(*)[IG_HASH_BYTES])leaves, i + 1, want);
				cr_assert_eq(memcmp(got, want, IG_HASH_BYTES), 0, "h %u start %llu size %llu", h,
				             (unsigned long long)start, (unsigned long long)(i + 1));
			}
		}
	}
	free(leaves);
}

/* An applier slower than the verifier: the ring fills up and the verifier
 * takes over Merkle runs (the balancing in ledger_scan.c). */
static int slow_record(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)err;
	uint8_t h[IG_HASH_BYTES];
	crypto_generichash(h, sizeof h, rec->hash, IG_HASH_BYTES, NULL, 0);
	for (int i = 0; i < 6; i++)
		crypto_generichash(h, sizeof h, h, sizeof h, NULL, 0);
	(*(uint64_t *)ctx)++;
	return IG_OK;
}

/* Wherever the signed checkpoint ends (inside a chunk, on a chunk or run
 * boundary, at the last record), and whichever thread hashed which part of
 * the tree, a big log's root is checked at exactly the checkpoint's size
 * with the same verdict and message, and the accumulator handed to the
 * writer continues the tree correctly. */
static void roots_at_every_checkpoint_size(void);

Test(ledger, merkle_root_checked_at_every_checkpoint_size_on_a_big_log, .timeout = 240)
{
	roots_at_every_checkpoint_size();
}

Test(ledger, merkle_root_checked_at_every_checkpoint_size_on_a_big_log_format_1, .timeout = 240)
{
	test_format = IG_FORMAT_V1;
	roots_at_every_checkpoint_size();
}

static void roots_at_every_checkpoint_size(void)
{
	const unsigned n = 30000;
	make_big_ledger(n);
	cr_assert_gt(file_size(log_path), 5 << 20);
	size_t len;
	uint8_t *orig = read_file(log_path, &len);
	uint8_t(*hashes)[IG_HASH_BYTES] = malloc((n + 2) * sizeof *hashes);
	cr_assert_not_null(hashes);
	size_t off = 0;
	for (unsigned i = 0; i <= n; i++) {
		ig_record rec;
		cr_assert_eq(ig_record_decode(orig + off, len - off, &rec), IG_FRAME_OK);
		test_leaf(hashes[i], orig + off, &rec);
		off += rec.frame_len;
	}
	cr_assert_eq(off, len);
	uint8_t all[IG_HASH_BYTES];
	ig_merkle_root_of_hash(test_tree(), (const uint8_t(*)[IG_HASH_BYTES])hashes, n + 1, all);

	const uint64_t sizes[] = {1, 2, 1023, 1024, 1025, 2047, 2048, 2051, 4096, 8192, 12345, 16384, 29999, 30000, 30001};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		uint64_t size = sizes[s];
		uint8_t rootv[IG_HASH_BYTES];
		ig_merkle_root_of_hash(test_tree(), (const uint8_t(*)[IG_HASH_BYTES])hashes, size, rootv);
		for (int slow = 0; slow < 2; slow++) {
			uint64_t applied = 0;
			ig_verify_result res;
			ig_error err = {0};
			sign_checkpoint(size, rootv, NULL);
			int rc = ig_ledger_verify(ldir, slow ? slow_record : NULL, &applied, NULL, NULL, &res, &err);
			cr_assert_eq(rc, IG_OK, "size %llu slow %d: %s", (unsigned long long)size, slow, err.msg);
			cr_assert_eq(res.height, n + 1);
			cr_assert_eq(res.checkpoint_size, size);
			cr_assert_eq(memcmp(res.root, all, IG_HASH_BYTES), 0, "size %llu slow %d", (unsigned long long)size,
			             slow);
			cr_assert_eq(applied, slow ? n + 1 : 0);

			uint8_t wrong[IG_HASH_BYTES];
			memcpy(wrong, rootv, sizeof wrong);
			wrong[7] ^= 0x01;
			sign_checkpoint(size, wrong, NULL);
			memset(&err, 0, sizeof err);
			rc = ig_ledger_verify(ldir, slow ? slow_record : NULL, &applied, NULL, NULL, &res, &err);
			cr_assert_eq(rc, IG_ERR_CORRUPT, "size %llu slow %d", (unsigned long long)size, slow);
			char want[300];
			snprintf(want, sizeof want,
			         "ledger checkpoint (size %llu): the Merkle root of records 0..%llu does not match the signed "
			         "root (a record was altered) — tampered or corrupt",
			         (unsigned long long)size, (unsigned long long)(size - 1));
			cr_assert_str_eq(err.msg, want);
		}
	}

	/* The writer goes on from the accumulator the scan built. */
	sign_checkpoint(n + 1, all, NULL);
	uint64_t applied = 0;
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = true, .on_record = slow_record, .ctx = &applied};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(applied, n + 1);
	cr_assert_eq(append_enroll(l, "after-the-scan"), n + 1);
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, n + 2);
	cr_assert_eq(res.checkpoint_size, n + 2);
	free(orig);
	orig = read_file(log_path, &len);
	ig_record rec;
	cr_assert_eq(ig_record_decode(orig + off, len - off, &rec), IG_FRAME_OK);
	test_leaf(hashes[n + 1], orig + off, &rec);
	ig_merkle_root_of_hash(test_tree(), (const uint8_t(*)[IG_HASH_BYTES])hashes, n + 2, all);
	cr_assert_eq(memcmp(res.root, all, IG_HASH_BYTES), 0);
	free(hashes);
	free(orig);
}

/* ---- moving a format-1 ledger to format 2 (LEDGER.md 7.12) ---- */

/* Appends a frame of `type` with `body` after the last record of the log
 * in buf (len bytes, n frames), chained to it. Returns the new length. */
static size_t append_raw_frame(uint8_t *buf, size_t len, size_t cap, uint16_t type, const uint8_t *body,
                               size_t body_len)
{
	size_t offs[256];
	size_t n = frame_offsets(buf, len, offs, 256);
	ig_record last;
	cr_assert_eq(ig_record_decode(buf + offs[n - 1], len - offs[n - 1], &last), IG_FRAME_OK);
	ig_record rec = {.index = last.index + 1, .ts_ms = last.ts_ms, .type = type, .body = body,
	                 .body_len = (uint32_t)body_len};
	memcpy(rec.prev_hash, last.hash, IG_HASH_BYTES);
	int flen = ig_record_encode(buf + len, cap - len, &rec);
	cr_assert_gt(flen, 0);
	return len + (size_t)flen;
}

Test(ledger, upgrade_moves_a_format_1_ledger_to_format_2)
{
	test_format = IG_FORMAT_V1;
	make_ledger(5);
	size_t old_cp_len;
	uint8_t *old_cp = read_file(cp_path, &old_cp_len);

	ig_error err = {0};
	ig_ledger *l = open_ledger(true);
	ig_record rec;
	cr_assert_eq(ig_ledger_append(l, IG_REC_FORMAT, (const uint8_t *)"x", 1, NULL, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_ledger_submit(l, IG_REC_FORMAT, (const uint8_t *)"x", 1, NULL, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_ledger_upgrade(l, "offline:test", &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.index, 6);
	cr_assert_eq(append_enroll(l, "after-1"), 7);
	cr_assert_eq(append_enroll(l, "after-2"), 8);
	cr_assert_eq(ig_ledger_upgrade(l, "offline:test", &rec, &err), IG_ERR_STATE);
	cr_assert(strstr(err.msg, "already format 2"), "%s", err.msg);
	ig_ledger_close(l);

	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 9);
	cr_assert_eq(res.checkpoint_size, 9);
	cr_assert_eq(res.format, IG_FORMAT_V2);
	cr_assert_eq(res.format_index, 6);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	uint8_t want[IG_HASH_BYTES], blake[IG_HASH_BYTES];
	test_format = IG_FORMAT_V2; /* the tree of every frame, the genesis's included */
	prefix_root(log, len, 9, want);
	cr_assert_eq(memcmp(res.root, want, IG_HASH_BYTES), 0, "the root is format 2's tree over all 9 frames");

	/* The format-1 checkpoint from before the upgrade still verifies: the
	 * log only grew. At the format record's size and after, only format
	 * 2's tree is accepted. */
	write_file(cp_path, old_cp, old_cp_len);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.checkpoint_size, 6);
	test_format = IG_FORMAT_V1;
	prefix_root(log, len, 7, blake);
	sign_checkpoint(7, blake, NULL);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);
	test_format = IG_FORMAT_V2;
	prefix_root(log, len, 7, want);
	sign_checkpoint(7, want, NULL);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);

	/* Altering a record from before the upgrade is still found. */
	size_t offs[256];
	frame_offsets(log, len, offs, 256);
	prefix_root(log, len, 9, want);
	sign_checkpoint(9, want, NULL);
	uint8_t *bad = malloc(len);
	memcpy(bad, log, len);
	bad[offs[2] + IG_REC_HEADER_BYTES + 4] ^= 1;
	fix_crc(bad + offs[2], ig_get_u32(bad + offs[2] + 4));
	write_file(log_path, bad, len);
	cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 3), "%s", err.msg); /* the chain breaks at the next record */

	/* A writer reopens the upgraded ledger and goes on in format 2. */
	write_file(log_path, log, len);
	l = open_ledger(true);
	cr_assert_eq(append_enroll(l, "after-3"), 9);
	ig_ledger_close(l);
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	free(log);
	log = read_file(log_path, &len);
	prefix_root(log, len, 10, want);
	cr_assert_eq(memcmp(res.root, want, IG_HASH_BYTES), 0);
	free(bad);
	free(log);
	free(old_cp);
}

/* A format record may stand once, in a format-1 ledger, and say 2. */
Test(ledger, misplaced_format_records_are_corruption)
{
	ig_format_rec f = {.version = IG_FORMAT_V2, .by = "offline:test"};
	uint8_t body[128], bad_body[128];
	int blen = ig_record_format_encode(body, sizeof body, &f);
	cr_assert_gt(blen, 0);
	/* Version 1: the encoder refuses nonsense, so this one is built by hand. */
	memcpy(bad_body, body, (size_t)blen);
	cr_assert_eq(bad_body[4], IG_FORMAT_V2);
	bad_body[4] = IG_FORMAT_V1;
	int bad_len = blen;
	struct {
		unsigned format;
		int count;
		const uint8_t *body;
		int len;
		const char *why;
	} cases[] = {
		{IG_FORMAT_V2, 1, body, blen, "already format 2"},
		{IG_FORMAT_V1, 2, body, blen, "already format 2"},
		{IG_FORMAT_V1, 1, bad_body, bad_len, "only format 2 follows format 1"},
		{IG_FORMAT_V1, 1, (const uint8_t *)"\x01\x00\x01\x02", 4, "bad format body"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		tu_rmtree(ldir);
		test_format = cases[c].format;
		make_ledger(2);
		size_t len;
		uint8_t *log = read_file(log_path, &len);
		uint8_t *buf = malloc(len + 1024);
		memcpy(buf, log, len);
		for (int k = 0; k < cases[c].count; k++)
			len = append_raw_frame(buf, len, len + 1024, IG_REC_FORMAT, cases[c].body, (size_t)cases[c].len);
		write_file(log_path, buf, len);
		ig_verify_result res;
		ig_error err = {0};
		/* Unsigned records past the checkpoint are still checked. */
		cr_assert_eq(verify(&res, &err), IG_ERR_CORRUPT, "case %zu", c);
		cr_assert(strstr(err.msg, cases[c].why), "case %zu: %s", c, err.msg);
		free(buf);
		free(log);
	}
}

/* On a log big enough for the two-thread scan, the switch lands mid-chunk:
 * the chunk before it is cut short and the next ones realign, and the
 * root is still format 2's tree over every frame. */
Test(ledger, upgrade_of_a_big_ledger_scans_on_two_threads, .timeout = 240)
{
	test_format = IG_FORMAT_V1;
	const unsigned n = 30000;
	make_big_ledger(n);
	ig_error err = {0};
	ig_ledger *l = open_ledger(true);
	ig_record rec;
	cr_assert_eq(ig_ledger_upgrade(l, "offline:test", &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.index, n + 1);
	for (unsigned i = 0; i < 1500; i++) {
		char id[32];
		snprintf(id, sizeof id, "late-%u", i);
		cr_assert_eq(append_enroll(l, id), n + 2 + i);
	}
	ig_ledger_close(l);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	uint64_t total = n + 2 + 1500;
	uint8_t(*leaves)[IG_HASH_BYTES] = malloc(total * sizeof *leaves);
	size_t off = 0;
	for (uint64_t i = 0; i < total; i++) {
		cr_assert_eq(ig_record_decode(log + off, len - off, &rec), IG_FRAME_OK);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves[i], log + off, rec.frame_len);
		off += rec.frame_len;
	}
	cr_assert_eq(off, len);
	uint8_t want[IG_HASH_BYTES];
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t(*)[IG_HASH_BYTES])leaves, total, want);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, total);
	cr_assert_eq(res.format_index, n + 1);
	cr_assert_eq(memcmp(res.root, want, IG_HASH_BYTES), 0);
	free(leaves);
	free(log);
}

/* ---- format 2: the tree at open comes from checked tiles (ledger_tree.c) ---- */

/* The reference root of the first k frames of the log file. */
static void file_root(size_t k, uint8_t out[IG_HASH_BYTES])
{
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	prefix_root(log, len, k, out);
	free(log);
}

Test(ledger, writer_open_trusts_only_tiles_that_check_out)
{
	make_ledger(40);
	char tile[PATH_MAX];
	snprintf(tile, sizeof tile, "%s/tlog/tile/0/000.p/41", ldir);
	cr_assert_eq(access(tile, F_OK), 0, "init and the writer keep the tiles");

	/* Sound tiles: the writer opens without a word and goes on. */
	ig_ledger *l = open_ledger(true);
	cr_assert_eq(append_enroll(l, "x1"), 41);
	ig_ledger_close(l);
	cr_assert_str_empty(logbuf);
	uint8_t want[IG_HASH_BYTES], got[IG_HASH_BYTES];
	ig_error err = {0};
	file_root(42, want);
	for (uint64_t i = 0; i < 42; i++) {
		uint8_t leaf[IG_HASH_BYTES], path_leaf[IG_HASH_BYTES];
		cr_assert_eq(ig_tiles_node(ldir, 42, 0, i, leaf, &err), IG_OK, "%s", err.msg);
		size_t len;
		uint8_t *log = read_file(log_path, &len);
		size_t offs[256];
		frame_offsets(log, len, offs, 256);
		ig_record rec;
		cr_assert_eq(ig_record_decode(log + offs[i], len - offs[i], &rec), IG_FRAME_OK);
		test_leaf(path_leaf, log + offs[i], &rec);
		cr_assert_eq(memcmp(leaf, path_leaf, IG_HASH_BYTES), 0, "leaf %" PRIu64, i);
		free(log);
	}
	ig_tiles_reader *r;
	cr_assert_eq(ig_tiles_reader_open(&r, ldir, 42, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_proof_root(got, IG_MERKLE_SHA256, 42, ig_tiles_reader_node, r, &err), IG_OK, "%s", err.msg);
	ig_tiles_reader_close(r);
	cr_assert_eq(memcmp(got, want, IG_HASH_BYTES), 0, "the tiles hold the signed tree");

	/* A damaged tile is not believed: the writer hashes the log, says so,
	 * rebuilds the tiles, and the next open trusts them again. */
	snprintf(tile, sizeof tile, "%s/tlog/tile/0/000.p/42", ldir);
	size_t tlen;
	uint8_t *t = read_file(tile, &tlen);
	cr_assert_eq(tlen, 42 * 32);
	t[5 * 32] ^= 1;
	write_file(tile, t, tlen);
	free(t);
	l = open_ledger(true);
	cr_assert(strstr(logbuf, "its tiles cannot vouch for the log"), "%s", logbuf);
	cr_assert(strstr(logbuf, "rebuilding them"), "%s", logbuf);
	cr_assert_eq(append_enroll(l, "x2"), 42);
	ig_ledger_close(l);
	logbuf[0] = '\0';
	l = open_ledger(true);
	ig_ledger_close(l);
	cr_assert_str_empty(logbuf);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	file_root(43, want);
	cr_assert_eq(memcmp(res.root, want, IG_HASH_BYTES), 0);

	/* Deleted tiles are rebuilt the same way. */
	char tdir[PATH_MAX];
	snprintf(tdir, sizeof tdir, "%s/tlog", ldir);
	tu_rmtree(tdir);
	logbuf[0] = '\0';
	l = open_ledger(true);
	ig_ledger_close(l);
	cr_assert(strstr(logbuf, "rebuilding them"), "%s", logbuf);
	cr_assert_eq(ig_tiles_node(ldir, 43, 0, 42, got, &err), IG_OK, "%s", err.msg);
}

/* The last signed record has no successor whose prev_hash would give its
 * alteration away, so only the tree can: with sound tiles the inclusion
 * check fails, the log is hashed, and the root refuses it. */
Test(ledger, writer_open_with_tiles_still_refuses_an_altered_last_record)
{
	make_ledger(6);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	size_t offs[256];
	size_t n = frame_offsets(log, len, offs, 256);
	cr_assert_eq(n, 7);
	log[offs[6] + IG_REC_HEADER_BYTES + 4] ^= 1;
	fix_crc(log + offs[6], ig_get_u32(log + offs[6] + 4));
	write_file(log_path, log, len);
	ig_error err;
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "Merkle root"), "%s", err.msg);
	/* and an altered earlier record breaks the chain, as always */
	log[offs[6] + IG_REC_HEADER_BYTES + 4] ^= 1;
	fix_crc(log + offs[6], ig_get_u32(log + offs[6] + 4));
	log[offs[3] + IG_REC_HEADER_BYTES + 4] ^= 1;
	fix_crc(log + offs[3], ig_get_u32(log + offs[3] + 4));
	write_file(log_path, log, len);
	cr_assert_eq(try_open_writer(&err), IG_ERR_CORRUPT);
	cr_assert(names_record(err.msg, 4), "%s", err.msg);
	free(log);
}

/* Records past the checkpoint (a crash between a batch's fdatasync and its
 * checkpoint) join the tree and the tiles from the log, and are signed. */
Test(ledger, writer_open_adds_the_unsigned_tail_to_the_tiles)
{
	make_ledger(6);
	size_t len;
	uint8_t *log = read_file(log_path, &len);
	uint8_t *buf = malloc(len + 2048);
	memcpy(buf, log, len);
	uint8_t body[512];
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "tail%d", i);
		size_t blen = tu_device_enroll_body(body, sizeof body, id);
		len = append_raw_frame(buf, len, len + 2048, IG_REC_ENROLL, body, blen);
	}
	write_file(log_path, buf, len);
	ig_ledger *l = open_ledger(true);
	ig_error err = {0};
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(append_enroll(l, "after"), 10);
	ig_ledger_close(l);
	cr_assert_null(strstr(logbuf, "rebuilding"), "%s", logbuf);
	ig_verify_result res;
	cr_assert_eq(verify(&res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.checkpoint_size, 11);
	uint8_t got[IG_HASH_BYTES];
	ig_tiles_reader *r;
	cr_assert_eq(ig_tiles_reader_open(&r, ldir, 11, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_proof_root(got, IG_MERKLE_SHA256, 11, ig_tiles_reader_node, r, &err), IG_OK, "%s", err.msg);
	ig_tiles_reader_close(r);
	cr_assert_eq(memcmp(got, res.root, IG_HASH_BYTES), 0);
	free(buf);
	free(log);
}
