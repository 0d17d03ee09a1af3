/*
 * prover_fixture.h: a small format-2 ledger with its tiles on disk, and
 * its frames read back, for the prover's and the proof service's tests.
 *
 * Why this exists: both tests need proofs made from real tiles (the ones
 * the ledger's writer keeps) and an answer computed another way to compare
 * them with: the leaves hashed here from ledger.log itself.
 */
#ifndef IG_PROVER_FIXTURE_H
#define IG_PROVER_FIXTURE_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_checkpoint.h"
#include "ig_ledger.h"
#include "ig_merkle.h"
#include "ig_record.h"
#include "testutil.h"

typedef struct pf_ledger {
	char dir[512];
	char text[IG_CHECKPOINT_MAX + 1];   /* the checkpoint after the last append */
	size_t text_len;
	ig_checkpoint cp;
	uint8_t *log;                       /* ledger.log */
	size_t log_len;
	uint64_t n;                         /* records */
	size_t *off;                        /* frame i at log + off[i], frame_len[i] bytes */
	size_t *len;
	uint8_t (*leaf)[IG_HASH_BYTES];     /* SHA-256(0x00 || frame i) */
} pf_ledger;

static void pf_done(void *ctx, int status, const ig_record *rec)
{
	(void)ctx;
	(void)rec;
	cr_assert_eq(status, IG_OK);
}

/* A format-2 ledger of n records (genesis + n-1 device enrolments) in a
 * scratch dir, closed again; format 1 when v1 (no tiles). */
static inline void pf_make(pf_ledger *f, const char *tag, uint64_t n, bool v1)
{
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "%s/ledger", tu_scratch_dir(tag));
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init_format(f->dir, "demo", v1 ? IG_FORMAT_V1 : IG_FORMAT_V2, pk, &err), IG_OK, "%s",
	             err.msg);
	ig_ledger *l;
	ig_ledger_open_opts o = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, f->dir, &o, &err), IG_OK, "%s", err.msg);
	for (uint64_t i = 1; i < n; i++) {
		char id[32];
		uint8_t body[512];
		snprintf(id, sizeof id, "dev-%llu", (unsigned long long)i);
		size_t blen = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, blen, pf_done, NULL), IG_OK);
		if (i % 97 == 0)   /* several batches: several checkpoints and partial tiles */
			cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	}
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	ig_ledger_poll(l);
	int tl = ig_ledger_checkpoint(l, f->text, sizeof f->text, &f->cp);
	cr_assert_gt(tl, 0);
	f->text_len = (size_t)tl;
	ig_ledger_close(l);
	cr_assert_eq(f->cp.size, n);

	char path[600];
	snprintf(path, sizeof path, "%s/%s", f->dir, IG_LEDGER_LOG);
	f->log = (uint8_t *)tu_read_file(path, &f->log_len);
	f->n = n;
	f->off = calloc(n, sizeof *f->off);
	f->len = calloc(n, sizeof *f->len);
	f->leaf = calloc(n, sizeof *f->leaf);
	cr_assert(f->off && f->len && f->leaf);
	size_t at = 0;
	for (uint64_t i = 0; i < n; i++) {
		ig_record rec;
		cr_assert_eq(ig_record_decode(f->log + at, f->log_len - at, &rec), IG_FRAME_OK);
		f->off[i] = at;
		f->len[i] = rec.frame_len;
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, f->leaf[i], f->log + at, rec.frame_len);
		at += rec.frame_len;
	}
}

/* Root of the first size leaves, by the recursive reference (no tiles). */
static inline void pf_root(const pf_ledger *f, uint64_t size, uint8_t root[IG_HASH_BYTES])
{
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t(*)[IG_HASH_BYTES])f->leaf, size, root);
}

static inline void pf_free(pf_ledger *f)
{
	free(f->log);
	free(f->off);
	free(f->len);
	free(f->leaf);
}

#endif
