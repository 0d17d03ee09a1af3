/*
 * test_prover.c: the proof worker (lib/ledger/prover.c) against a real
 * format-2 ledger's tiles: every proof it hands back checks out against
 * the tree hashed here from ledger.log; a full queue is refused; and a
 * damaged or missing tile gives an error, never a wrong proof.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <unistd.h>

#include "ig_prover.h"
#include "ig_tiles.h"
#include "prover_fixture.h"

#define N 300   /* over one full tile (256) and a partial one of 44 */

static ig_prover_job *job_for(const pf_ledger *f, ig_prover_kind kind, uint64_t a, uint64_t b)
{
	ig_prover_job *j = ig_prover_job_new(kind, f->text, f->text_len, &f->cp);
	cr_assert_not_null(j);
	if (kind == IG_PROVER_INCLUSION)
		j->index = a;
	j->from = a;
	j->to = b;
	return j;
}

/* The next finished job, waiting for the worker (5 s at most). */
static ig_prover_job *take_wait(ig_prover *p)
{
	for (int i = 0; i < 100; i++) {
		ig_prover_job *j = ig_prover_take(p);
		if (j)
			return j;
		struct pollfd pfd = {.fd = ig_prover_event_fd(p), .events = POLLIN};
		poll(&pfd, 1, 50);
	}
	cr_assert_fail("the proof worker finished nothing in 5 s");
	return NULL;
}

static void expect_inclusion(const pf_ledger *f, const ig_prover_job *j, uint64_t index)
{
	cr_assert_eq(j->status, IG_OK, "record %llu: %s", (unsigned long long)index, j->message);
	cr_assert_eq(j->entry_len, f->len[index]);
	cr_assert_eq(memcmp(j->entry, f->log + f->off[index], j->entry_len), 0, "the entry is record %llu's frame",
	             (unsigned long long)index);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, f->leaf[index], index, f->n,
	                                       (const uint8_t(*)[IG_HASH_BYTES])j->path, j->path_len, f->cp.root),
	             IG_OK);
	uint8_t root[IG_HASH_BYTES];
	pf_root(f, f->n, root);
	cr_assert_eq(memcmp(root, f->cp.root, IG_HASH_BYTES), 0, "the signed root is the tree of ledger.log");
}

Test(prover, proves_every_record_and_checkpoint_text_is_kept)
{
	pf_ledger f;
	pf_make(&f, "prov-inc", N, false);
	ig_prover *p;
	ig_error err = {0};
	cr_assert_eq(ig_prover_new(&p, f.dir, N, &err), IG_OK, "%s", err.msg);
	for (uint64_t i = 0; i < N; i++) {
		ig_prover_job *j = job_for(&f, IG_PROVER_INCLUSION, i, 0);
		snprintf(j->requester, sizeof j->requester, "dev-%llu", (unsigned long long)i);
		cr_assert_eq(ig_prover_submit(p, j), IG_OK);
	}
	bool seen[N] = {false};
	for (uint64_t k = 0; k < N; k++) {
		ig_prover_job *j = take_wait(p);
		uint64_t i = j->index;
		cr_assert_lt(i, N);
		cr_assert(!seen[i]);
		seen[i] = true;
		char want[32];
		snprintf(want, sizeof want, "dev-%llu", (unsigned long long)i);
		cr_assert_str_eq(j->requester, want, "the caller's labels come back untouched");
		cr_assert_str_eq(j->checkpoint, f.text);
		cr_assert_geq(j->done_us, j->queued_us);
		expect_inclusion(&f, j, i);
		ig_prover_job_free(j);
	}
	cr_assert_eq(ig_prover_depth(p), 0);
	cr_assert(!ig_prover_ready(p));
	ig_prover_free(p);
	pf_free(&f);
}

Test(prover, consistency_proofs_lead_to_both_roots)
{
	pf_ledger f;
	pf_make(&f, "prov-con", N, false);
	ig_prover *p;
	ig_error err = {0};
	cr_assert_eq(ig_prover_new(&p, f.dir, 4, &err), IG_OK, "%s", err.msg);
	static const uint64_t pairs[][2] = {{0, N},   {1, N},   {97, N},  {255, N}, {256, N}, {257, N}, {N, N},
	                                    {N - 1, N}, {5, 194}, {194, 257}, {1, 2},  {3, 3},   {0, 0},  {100, 256}};
	for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
		uint64_t from = pairs[k][0], to = pairs[k][1];
		cr_assert_eq(ig_prover_submit(p, job_for(&f, IG_PROVER_CONSISTENCY, from, to)), IG_OK);
		ig_prover_job *j = take_wait(p);
		cr_assert_eq(j->status, IG_OK, "%llu -> %llu: %s", (unsigned long long)from, (unsigned long long)to,
		             j->message);
		uint8_t r_old[IG_HASH_BYTES], r_new[IG_HASH_BYTES];
		pf_root(&f, from, r_old);
		pf_root(&f, to, r_new);
		cr_assert_eq((int)j->path_len, ig_proof_consistency_len(from, to));
		cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, from, r_old, to, r_new,
		                                         (const uint8_t(*)[IG_HASH_BYTES])j->path, j->path_len),
		             IG_OK, "%llu -> %llu", (unsigned long long)from, (unsigned long long)to);
		ig_prover_job_free(j);
	}
	ig_prover_free(p);
	pf_free(&f);
}

Test(prover, full_queue_and_bad_sizes_are_refused_at_submit)
{
	pf_ledger f;
	pf_make(&f, "prov-q", 20, false);
	ig_prover *p;
	ig_error err = {0};
	cr_assert_eq(ig_prover_new(&p, f.dir, 2, &err), IG_OK, "%s", err.msg);
	/* Finished jobs not taken back count: two in, two out, then full. */
	cr_assert_eq(ig_prover_submit(p, job_for(&f, IG_PROVER_INCLUSION, 1, 0)), IG_OK);
	cr_assert_eq(ig_prover_submit(p, job_for(&f, IG_PROVER_CONSISTENCY, 3, 20)), IG_OK);
	ig_prover_job *extra = job_for(&f, IG_PROVER_INCLUSION, 2, 0);
	cr_assert_eq(ig_prover_submit(p, extra), IG_ERR_RANGE);
	cr_assert_eq(ig_prover_depth(p), 2);
	ig_prover_job *j = take_wait(p);
	ig_prover_job_free(j);
	cr_assert_eq(ig_prover_submit(p, extra), IG_OK, "a slot is free again once a job is taken back");

	ig_prover_job *bad[] = {
		job_for(&f, IG_PROVER_INCLUSION, 20, 0),       /* index == size */
		job_for(&f, IG_PROVER_CONSISTENCY, 5, 4),      /* from > to */
		job_for(&f, IG_PROVER_CONSISTENCY, 5, 21),     /* to > size */
		job_for(&f, (ig_prover_kind)7, 1, 2),          /* no such kind */
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		cr_assert_eq(ig_prover_submit(p, bad[k]), IG_ERR_INVAL, "bad job %zu", k);
		ig_prover_job_free(bad[k]);
	}
	cr_assert_null(ig_prover_job_new(IG_PROVER_INCLUSION, f.text, IG_CHECKPOINT_MAX + 1, &f.cp));
	/* Freeing with jobs still queued or finished frees them (ASan/valgrind). */
	ig_prover_free(p);
	pf_free(&f);
}

static void flip_byte(const char *path, size_t at)
{
	size_t len;
	char *d = tu_read_file(path, &len);
	cr_assert_lt(at, len, "%s", path);
	d[at] ^= 0x40;
	tu_write_file(path, d, len);
	free(d);
}

/* Runs an inclusion of every record synchronously (the worker's step) and
 * checks that each is either a proof that holds against the true root or
 * an error that says the tiles are missing or damaged. Returns how many
 * failed. */
static unsigned prove_all(const pf_ledger *f, bool *failed)
{
	ig_tiles_reader *r = NULL;
	unsigned bad = 0;
	for (uint64_t i = 0; i < f->n; i++) {
		ig_prover_job *j = job_for(f, IG_PROVER_INCLUSION, i, 0);
		ig_prover_run(f->dir, &r, j);
		failed[i] = j->status != IG_OK;
		if (j->status == IG_OK) {
			expect_inclusion(f, j, i);
		} else {
			bad++;
			cr_assert(j->status == IG_ERR_CORRUPT || j->status == IG_ERR_NOTFOUND, "record %llu: %d",
			          (unsigned long long)i, j->status);
			cr_assert_eq(j->path_len, 0);
			cr_assert_null(j->entry);
			cr_assert_not_null(strstr(j->message, "tiles"), "%s", j->message);
			cr_assert_null(r, "a tile error drops the reader and its cache");
		}
		ig_prover_job_free(j);
	}
	ig_tiles_reader_close(r);
	return bad;
}

Test(prover, damaged_or_missing_tiles_give_errors_never_wrong_proofs)
{
	pf_ledger f;
	pf_make(&f, "prov-bad", N, false);
	char t0[700], t1[700], e1[700], keep[720];
	snprintf(t0, sizeof t0, "%s/tlog/tile/0/000", f.dir);
	snprintf(t1, sizeof t1, "%s/tlog/tile/1/000.p/1", f.dir);
	snprintf(e1, sizeof e1, "%s/tlog/tile/entries/001.p/44", f.dir);
	bool failed[N];

	/* Leaf hash 10 damaged: record 10 (its entry no longer matches) and
	 * every record whose path holds leaf 10's hash (record 11) fail; the
	 * self-check catches the paths the reader cannot. */
	size_t len0;
	char *orig0 = tu_read_file(t0, &len0);
	flip_byte(t0, 10 * IG_HASH_BYTES + 3);
	cr_assert_gt(prove_all(&f, failed), 0);
	cr_assert(failed[10] && failed[11]);
	cr_assert(!failed[290], "records under other tiles are still proved");
	tu_write_file(t0, orig0, len0);

	/* The level-1 node over leaves 0..255: a wrong sibling for every record
	 * 256..299, caught only by checking against the signed root. */
	flip_byte(t1, 7);
	cr_assert_gt(prove_all(&f, failed), 0);
	cr_assert(failed[256] && failed[299]);
	cr_assert(!failed[3], "records 0..255 do not need that node");
	flip_byte(t1, 7);

	/* A missing entry bundle: NOTFOUND for the records in it, retriable. */
	snprintf(keep, sizeof keep, "%s.keep", e1);
	cr_assert_eq(rename(e1, keep), 0);
	ig_tiles_reader *r = NULL;
	ig_prover_job *j = job_for(&f, IG_PROVER_INCLUSION, 280, 0);
	ig_prover_run(f.dir, &r, j);
	cr_assert_eq(j->status, IG_ERR_NOTFOUND, "%s", j->message);
	cr_assert_null(r);
	cr_assert_eq(rename(keep, e1), 0);
	ig_prover_run(f.dir, &r, j);
	cr_assert_eq(j->status, IG_OK, "the same job succeeds once the tile is back: %s", j->message);
	expect_inclusion(&f, j, 280);
	ig_prover_job_free(j);

	/* Consistency from 256: the old root is that damaged node, so the
	 * path (only the root of 256..299) fails the check: an error, not a
	 * proof. */
	ig_tiles_reader_close(r);   /* it keeps the good copy of the tile in its cache */
	r = NULL;
	flip_byte(t1, 0);
	j = job_for(&f, IG_PROVER_CONSISTENCY, 256, N);
	ig_prover_run(f.dir, &r, j);
	cr_assert_eq(j->status, IG_ERR_CORRUPT, "%s", j->message);
	cr_assert_eq(j->path_len, 0);
	ig_prover_job_free(j);
	flip_byte(t1, 0);
	cr_assert_eq(prove_all(&f, failed), 0, "repaired tiles prove everything again");
	ig_tiles_reader_close(r);
	free(orig0);
	pf_free(&f);
}

Test(prover, a_format1_ledger_has_no_tiles_to_prove_from)
{
	pf_ledger f;
	pf_make(&f, "prov-v1", 5, true);
	ig_tiles_reader *r = NULL;
	ig_prover_job *j = job_for(&f, IG_PROVER_INCLUSION, 1, 0);
	ig_prover_run(f.dir, &r, j);
	cr_assert_neq(j->status, IG_OK);
	cr_assert_null(r);
	ig_prover_job_free(j);
	pf_free(&f);
}

/* Threads of this process, as the kernel counts them. */
static int threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	cr_assert_not_null(f, "cannot read /proc/self/status");
	char line[256];
	int n = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	cr_assert(n > 0, "no Threads: line in /proc/self/status");
	return n;
}

/* A broker that serves no proofs stays single-threaded (a second thread
 * costs every relayed message a file refcount): the worker starts with the
 * first job and exits when idle, and the next job starts it again. */
Test(prover, the_worker_runs_only_while_there_is_work)
{
	pf_ledger f;
	pf_make(&f, "prov-idle", N, false);
	int base = threads();
	ig_prover *p;
	ig_error err = {0};
	cr_assert_eq(ig_prover_new(&p, f.dir, 4, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(threads(), base, "no thread before the first job");
	for (int round = 0; round < 2; round++) {
		ig_prover_job *j = job_for(&f, IG_PROVER_INCLUSION, 1, 0);
		cr_assert_eq(ig_prover_submit(p, j), IG_OK);
		j = take_wait(p);
		cr_assert_eq(j->status, IG_OK, "%s", j->message);
		ig_prover_job_free(j);
		cr_assert_eq(threads(), base + 1, "round %d: the job started the worker", round);
		bool gone = false;
		for (int waited = 0; waited < 5000 && !gone; waited += 20) {
			gone = threads() == base;
			if (!gone)
				usleep(20000);
		}
		cr_assert(gone, "round %d: an idle worker must exit; %d threads (base %d)", round, threads(), base);
	}
	ig_prover_free(p);
	pf_free(&f);
}
