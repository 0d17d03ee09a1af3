/*
 * bench_proofs.c: how many log proofs per second the cluster head can make
 * at 1M records (issue 12: "proofs generated per second at 1M records").
 *
 * Why this exists: devices ask for inclusion and consistency proofs
 * (docs/PROTOCOL.md, "Log proofs"); each one is made on the prover's thread
 * from the tiles on disk. This writes the C2SP tiles of N records
 * (ig_tiles_append, 160-byte entries, as a format-2 ledger's writer keeps
 * them), then times on one thread, over random indices and sizes:
 *   - ig_proof_inclusion / ig_proof_consistency through an ig_tiles_reader
 *     alone (the path only);
 *   - ig_prover_run, what the service does per request: the entry read and
 *     checked, the path, and the self-check against the root (consistency
 *     also folds the old root from the tiles);
 *   - the same through the ig_prover thread (submit, take), queue of 256.
 * The tiles are in the page cache after the write, as a running broker's
 * recent ones are.
 *
 * Usage: bench_proofs [--dir DIR] [--records N] [--proofs P]
 * (default: a fresh directory under /var/tmp, removed at the end;
 * 1,000,000 records, 20,000 proofs per figure).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_prover.h"
#include "ig_tiles.h"

#define ENTRY_BYTES 160
#define BATCH 4096

static void write_tiles(const char *dir, uint64_t records, ig_checkpoint *cp)
{
	ig_tiles *t;
	ig_error err = {0};
	static uint8_t leaf[BATCH][IG_HASH_BYTES];
	static uint8_t frames[BATCH][ENTRY_BYTES];
	static const uint8_t *entry[BATCH];
	static size_t len[BATCH];
	if (ig_tiles_open(&t, dir, 0, &err) != IG_OK)
		bench_die("open tiles", err.msg);
	for (size_t i = 0; i < BATCH; i++) {
		entry[i] = frames[i];
		len[i] = ENTRY_BYTES;
	}
	for (uint64_t done = 0; done < records;) {
		size_t n = records - done < BATCH ? (size_t)(records - done) : BATCH;
		for (size_t i = 0; i < n; i++) {
			uint64_t v = bench_splitmix64(done + i);
			memcpy(frames[i], &v, sizeof v);
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf[i], entry[i], len[i]);
		}
		if (ig_tiles_append(t, (const uint8_t(*)[IG_HASH_BYTES])leaf, entry, len, n, &err) != IG_OK)
			bench_die("append", err.msg);
		done += n;
	}
	memset(cp, 0, sizeof *cp);
	snprintf(cp->origin, sizeof cp->origin, "iotguard/bench");
	cp->size = records;
	ig_tiles_root(t, cp->root);
	ig_tiles_close(t);
}

static uint64_t pick(uint64_t *state, uint64_t below)
{
	*state = bench_splitmix64(*state);
	return *state % below;
}

/* Paths only, through one reader: proofs/s. */
static double raw(const char *dir, const ig_checkpoint *cp, uint64_t proofs, bool inclusion)
{
	ig_tiles_reader *r;
	ig_error err = {0};
	if (ig_tiles_reader_open(&r, dir, cp->size, &err) != IG_OK)
		bench_die("reader", err.msg);
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n;
	uint64_t st = 42;
	double t0 = bench_now_s();
	for (uint64_t i = 0; i < proofs; i++) {
		int rc = inclusion ? ig_proof_inclusion(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, pick(&st, cp->size),
		                                        cp->size, ig_tiles_reader_node, r, &err)
		                   : ig_proof_consistency(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256,
		                                          1 + pick(&st, cp->size - 1), cp->size, ig_tiles_reader_node, r,
		                                          &err);
		if (rc != IG_OK)
			bench_die("proof", err.msg);
	}
	double s = bench_now_s() - t0;
	ig_tiles_reader_close(r);
	return (double)proofs / s;
}

static ig_prover_job *job(const ig_checkpoint *cp, bool inclusion, uint64_t *st)
{
	static const char text[] = "iotguard/bench\n(not signed: the prover checks against the parsed root)\n";
	ig_prover_job *j = ig_prover_job_new(inclusion ? IG_PROVER_INCLUSION : IG_PROVER_CONSISTENCY, text,
	                                     sizeof text - 1, cp);
	if (!j)
		bench_die("job", "out of memory");
	j->index = pick(st, cp->size);
	j->from = 1 + pick(st, cp->size - 1);
	j->to = cp->size;
	return j;
}

/* What the service does per request, on this thread: proofs/s. */
static double served(const char *dir, const ig_checkpoint *cp, uint64_t proofs, bool inclusion)
{
	ig_tiles_reader *r = NULL;
	uint64_t st = 7;
	double t0 = bench_now_s();
	for (uint64_t i = 0; i < proofs; i++) {
		ig_prover_job *j = job(cp, inclusion, &st);
		ig_prover_run(dir, &r, j);
		if (j->status != IG_OK)
			bench_die("prover", j->message);
		ig_prover_job_free(j);
	}
	double s = bench_now_s() - t0;
	ig_tiles_reader_close(r);
	return (double)proofs / s;
}

/* Through the worker thread, up to 256 in flight: proofs/s. */
static double threaded(const char *dir, const ig_checkpoint *cp, uint64_t proofs, bool inclusion)
{
	ig_prover *p;
	ig_error err = {0};
	if (ig_prover_new(&p, dir, 256, &err) != IG_OK)
		bench_die("prover", err.msg);
	uint64_t st = 9, sent = 0, got = 0;
	double t0 = bench_now_s();
	while (got < proofs) {
		while (sent < proofs) {
			ig_prover_job *j = job(cp, inclusion, &st);
			if (ig_prover_submit(p, j) != IG_OK) {
				ig_prover_job_free(j);
				break;
			}
			sent++;
		}
		ig_prover_job *j;
		while ((j = ig_prover_take(p)) != NULL) {
			if (j->status != IG_OK)
				bench_die("prover", j->message);
			ig_prover_job_free(j);
			got++;
		}
		struct pollfd pfd = {.fd = ig_prover_event_fd(p), .events = POLLIN};
		if (got < proofs)
			poll(&pfd, 1, 10);
	}
	double s = bench_now_s() - t0;
	ig_prover_free(p);
	return (double)proofs / s;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	uint64_t records = 1000000, proofs = 20000;
	const cli_option opts[] = {
		CLI_TEXT("dir", 0, &dir),
		CLI_NUMBER("records", 0, &records, 2, UINT32_MAX),
		CLI_NUMBER("proofs", 0, &proofs, 1, UINT32_MAX),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_name = "bench_proofs";
	bench_parse(argc, argv, NULL, opts, "usage: bench_proofs [--dir DIR] [--records N] [--proofs P]\n");
	if (ig_init() != IG_OK)
		bench_die("libsodium", "init failed");
	bool made;
	dir = bench_work_dir(dir, &made);

	ig_checkpoint cp;
	double t0 = bench_now_s();
	write_tiles(dir, records, &cp);
	printf("proofs: %" PRIu64 " records of %d bytes, tiles written in %.1f s; %" PRIu64
	       " random proofs per figure, one thread unless noted\n",
	       records, ENTRY_BYTES, bench_now_s() - t0, proofs);
	printf("%-12s %16s %22s %24s\n", "proof", "path only/s", "prover_run (served)/s", "prover thread (queue)/s");
	for (int k = 0; k < 2; k++) {
		bool inc = k == 0;
		double a = raw(dir, &cp, proofs, inc);
		double b = served(dir, &cp, proofs, inc);
		double c = threaded(dir, &cp, proofs, inc);
		printf("%-12s %16.0f %22.0f %24.0f\n", inc ? "inclusion" : "consistency", a, b, c);
		fflush(stdout);
	}
	bench_work_dir_done(dir, made, "BENCH_PROOFS_KEEP");
	return 0;
}
