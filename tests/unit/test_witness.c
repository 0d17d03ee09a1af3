/*
 * test_witness.c: the witness's add-checkpoint decision, its texts and its
 * durable state.
 *
 * Why this exists: the witness is what stops a cluster head from showing a
 * fork or a rollback to devices that require cosignatures. Every outcome of
 * C2SP tlog-witness add-checkpoint is exercised on real SHA-256 trees and
 * real consistency proofs (lib/ledger/ig_proof.h), a fork (same size,
 * another root; or a larger tree not extending the cosigned one) and a
 * rollback are refused, and a torn or garbled state file is refused rather
 * than silently reset (a reset witness could cosign a fork).
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_witness.h"
#include "testutil.h"

#define W_NAME "iotguard-witness/w1"
#define MAXLEAVES 64
#define NOW 1700000000u

static uint8_t ch_pk[32], ch_sk[64], w_pk[32], w_sk[64], other_pk[32], other_sk[64];
static ig_cosig_vkey log_key, w_key;
/* Two histories: A, and B which shares A's first 5 leaves then differs. */
static uint8_t leaves_a[MAXLEAVES][32], leaves_b[MAXLEAVES][32];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(w_pk, w_sk, 0x40);
	tu_seed_keypair(other_pk, other_sk, 0x20);
	cr_assert_eq(ig_cosig_vkey_make(&log_key, "iotguard/demo", IG_COSIG_TYPE_ED25519, ch_pk), IG_OK);
	cr_assert_eq(ig_cosig_vkey_make(&w_key, W_NAME, IG_COSIG_TYPE_COSIG_V1, w_pk), IG_OK);
	for (int i = 0; i < MAXLEAVES; i++) {
		char e[32];
		int n = snprintf(e, sizeof e, "record %d", i);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves_a[i], (const uint8_t *)e, (size_t)n);
		n = snprintf(e, sizeof e, i < 5 ? "record %d" : "forged %d", i);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves_b[i], (const uint8_t *)e, (size_t)n);
	}
}

TestSuite(witness, .init = setup);

static void root_of(uint8_t root[32], uint8_t (*leaves)[32], uint64_t n)
{
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])leaves, n, root);
}

/* A checkpoint of the first n leaves, signed by sk under origin. */
static int checkpoint(char *out, size_t cap, const char *origin, uint8_t (*leaves)[32], uint64_t n,
                      const uint8_t *sk)
{
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	snprintf(cp.origin, sizeof cp.origin, "%s", origin);
	cp.size = n;
	root_of(cp.root, leaves, n);
	int len = ig_checkpoint_sign(out, cap, &cp, sk);
	cr_assert_gt(len, 0);
	return len;
}

static void proof(ig_witness_request *req, uint8_t (*leaves)[32], uint64_t old, uint64_t size)
{
	ig_proof_mem mem = {IG_MERKLE_SHA256, (const uint8_t (*)[32])leaves, MAXLEAVES};
	ig_error err = {0};
	cr_assert_eq(ig_proof_consistency(req->proof, IG_WITNESS_PROOF_MAX, &req->proof_len, IG_MERKLE_SHA256, old,
	                                  size, ig_proof_mem_node, &mem, &err),
	             IG_OK, "%s", err.msg);
}

/* One request from the history `leaves`: old -> size, with its proof. */
typedef struct call {
	char text[IG_CHECKPOINT_MAX];
	ig_witness_request req;
	ig_witness_answer ans;
	ig_error err;
} call;

static int ask(call *c, const ig_witness_state *st, uint8_t (*leaves)[32], uint64_t old, uint64_t size)
{
	memset(c, 0, sizeof *c);
	int len = checkpoint(c->text, sizeof c->text, "iotguard/demo", leaves, size, ch_sk);
	c->req.old_size = old;
	if (old > 0 && old < size)
		proof(&c->req, leaves, old, size);
	c->req.checkpoint = c->text;
	c->req.checkpoint_len = (size_t)len;
	return ig_witness_add_checkpoint(&c->ans, st, &c->req, &log_key, W_NAME, w_sk, NOW, &c->err);
}

static ig_witness_state fresh(void)
{
	ig_witness_state st;
	cr_assert_eq(ig_witness_state_init(&st, "iotguard/demo"), IG_OK);
	return st;
}

Test(witness, fresh_state_is_size_zero_with_the_empty_root)
{
	ig_witness_state st = fresh();
	cr_assert_eq(st.size, 0u);
	/* SHA-256 of nothing. */
	tu_assert_hex(st.root, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cr_assert_eq(ig_witness_state_init(&st, "bad origin"), IG_ERR_INVAL);
}

Test(witness, ok_cosigns_and_returns_the_state_to_persist)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 5), IG_WITNESS_OK, "%s", c.err.msg);
	cr_assert_eq(c.ans.outcome, IG_WITNESS_OK);
	cr_assert_eq(c.ans.state.size, 5u);
	uint8_t r5[32];
	root_of(r5, leaves_a, 5);
	cr_assert_arr_eq(c.ans.state.root, r5, 32);
	cr_assert_str_eq(c.ans.state.origin, "iotguard/demo");
	/* The line is a cosignature/v1 by the witness at NOW, over this checkpoint. */
	size_t body, off;
	cr_assert_eq(ig_checkpoint_split(c.text, c.req.checkpoint_len, &body, &off, NULL), IG_OK);
	uint64_t t = 0;
	cr_assert_eq(ig_cosig_verify_line(&t, c.ans.lines, c.ans.lines_len, &w_key, c.text, body, NULL), IG_OK);
	cr_assert_eq(t, NOW);
	cr_assert_eq(strlen(c.ans.lines), c.ans.lines_len);
	/* The caller's input state is not touched. */
	cr_assert_eq(st.size, 0u);

	/* Then 5 -> 13 with a consistency proof, then 13 -> 13 again (same root). */
	st = c.ans.state;
	cr_assert_eq(ask(&c, &st, leaves_a, 5, 13), IG_WITNESS_OK, "%s", c.err.msg);
	cr_assert_gt(c.req.proof_len, 0u);
	cr_assert_eq(c.ans.state.size, 13u);
	st = c.ans.state;
	cr_assert_eq(ask(&c, &st, leaves_a, 13, 13), IG_WITNESS_OK, "%s", c.err.msg);
	cr_assert_eq(c.ans.state.size, 13u);
	cr_assert_arr_eq(c.ans.state.root, st.root, 32);
	/* A checkpoint with cosignatures of others already on it is fine. */
	char more[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_add_signatures(more, sizeof more, c.text, c.req.checkpoint_len, c.ans.lines,
	                                     c.ans.lines_len, NULL);
	cr_assert_gt(n, 0);
	ig_witness_answer ans;
	ig_witness_request req = c.req;
	req.checkpoint = more;
	req.checkpoint_len = (size_t)n;
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &req, &log_key, W_NAME, w_sk, NOW + 1, NULL), IG_WITNESS_OK);
}

Test(witness, every_size_step_with_a_real_proof_is_accepted)
{
	for (uint64_t old = 1; old < 20; old++)
		for (uint64_t size = old + 1; size <= 21; size++) {
			ig_witness_state st;
			cr_assert_eq(ig_witness_state_init(&st, "iotguard/demo"), IG_OK);
			st.size = old;
			root_of(st.root, leaves_a, old);
			call c;
			cr_assert_eq(ask(&c, &st, leaves_a, old, size), IG_WITNESS_OK, "%lu -> %lu: %s", (unsigned long)old,
			             (unsigned long)size, c.err.msg);
		}
}

Test(witness, unknown_origin_is_404)
{
	ig_witness_state st = fresh();
	call c;
	memset(&c, 0, sizeof c);
	int len = checkpoint(c.text, sizeof c.text, "iotguard/other", leaves_a, 3, ch_sk);
	c.req.checkpoint = c.text;
	c.req.checkpoint_len = (size_t)len;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_UNKNOWN_ORIGIN);
	cr_assert_eq(c.ans.lines_len, 0u);
	/* A prefix of our origin is another origin too. */
	len = checkpoint(c.text, sizeof c.text, "iotguard/dem", leaves_a, 3, ch_sk);
	c.req.checkpoint_len = (size_t)len;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNKNOWN_ORIGIN);
	c.req.checkpoint_len = 0;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNKNOWN_ORIGIN);
}

Test(witness, missing_or_bad_log_signature_is_403)
{
	ig_witness_state st = fresh();
	call c;
	/* Signed by another key under our origin. */
	memset(&c, 0, sizeof c);
	int len = checkpoint(c.text, sizeof c.text, "iotguard/demo", leaves_a, 3, other_sk);
	c.req.checkpoint = c.text;
	c.req.checkpoint_len = (size_t)len;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_FORBIDDEN);
	/* Our key, signature altered. */
	len = checkpoint(c.text, sizeof c.text, "iotguard/demo", leaves_a, 3, ch_sk);
	c.text[len - 10] = c.text[len - 10] == 'A' ? 'B' : 'A';
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_FORBIDDEN);
	/* Unsigned: the body and the blank line only. */
	len = checkpoint(c.text, sizeof c.text, "iotguard/demo", leaves_a, 3, ch_sk);
	size_t body, off;
	cr_assert_eq(ig_checkpoint_split(c.text, (size_t)len, &body, &off, NULL), IG_OK);
	c.req.checkpoint_len = off;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_FORBIDDEN);
	/* Body changed under a valid-looking signature. */
	len = checkpoint(c.text, sizeof c.text, "iotguard/demo", leaves_a, 3, ch_sk);
	c.text[14] = '4';
	c.req.checkpoint_len = (size_t)len;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_FORBIDDEN);
	cr_assert_eq(c.ans.lines_len, 0u);
}

Test(witness, malformed_checkpoint_and_old_above_size_are_400)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 4, 3), IG_WITNESS_BAD_REQUEST);
	cr_assert_eq(c.ans.lines_len, 0u);
	/* An extension line (iotguard's checkpoints have none). */
	const char *ext = "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\next\n\n\xe2\x80\x94 x AAAAAAA=\n";
	c.req.old_size = 0;
	c.req.proof_len = 0;
	c.req.checkpoint = ext;
	c.req.checkpoint_len = strlen(ext);
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_BAD_REQUEST);
}

Test(witness, old_size_other_than_the_cosigned_size_is_409_with_that_size)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 8), IG_WITNESS_OK);
	st = c.ans.state;
	cr_assert_eq(ask(&c, &st, leaves_a, 5, 13), IG_WITNESS_CONFLICT);
	cr_assert_eq(c.ans.known_size, 8u);
	cr_assert_eq(c.ans.lines_len, 0u);
	char body[64];
	cr_assert_eq(ig_witness_answer_encode(body, sizeof body, &c.ans), 2);
	cr_assert_str_eq(body, "8\n");
	/* Old 0 after cosigning: the client learns the size (tlog-witness's bootstrap). */
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 13), IG_WITNESS_CONFLICT);
	cr_assert_eq(c.ans.known_size, 8u);
}

Test(witness, rollback_to_a_smaller_size_is_refused)
{
	ig_witness_state st = fresh();
	st.size = 13;
	root_of(st.root, leaves_a, 13);
	call c;
	/* Honest old size, smaller checkpoint: 400. */
	cr_assert_eq(ask(&c, &st, leaves_a, 13, 8), IG_WITNESS_BAD_REQUEST);
	/* The smaller size claimed as old: 409 saying 13. */
	cr_assert_eq(ask(&c, &st, leaves_a, 8, 8), IG_WITNESS_CONFLICT);
	cr_assert_eq(c.ans.known_size, 13u);
	cr_assert_eq(c.ans.lines_len, 0u);
}

Test(witness, fork_same_size_other_root_is_422)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 8), IG_WITNESS_OK);
	st = c.ans.state;
	cr_assert_eq(ask(&c, &st, leaves_b, 8, 8), IG_WITNESS_UNPROCESSABLE);
	cr_assert(strstr(c.err.msg, "fork") != NULL, "%s", c.err.msg);
	cr_assert_eq(c.ans.lines_len, 0u);
	/* A nonempty proof between equal sizes is refused too. */
	cr_assert_eq(ask(&c, &st, leaves_a, 8, 8), IG_WITNESS_OK);
	c.req.proof_len = 1;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNPROCESSABLE);
}

Test(witness, fork_that_grows_is_422)
{
	/* The witness cosigned A at 8; B shares only 5 leaves with A, and its
	 * own proof 8 -> 13 is valid for B, not for what the witness saw. */
	ig_witness_state st = fresh();
	st.size = 8;
	root_of(st.root, leaves_a, 8);
	call c;
	cr_assert_eq(ask(&c, &st, leaves_b, 8, 13), IG_WITNESS_UNPROCESSABLE);
	cr_assert_eq(c.ans.lines_len, 0u);
	/* And a garbled proof of A itself. */
	cr_assert_eq(ask(&c, &st, leaves_a, 8, 13), IG_WITNESS_OK);
	c.req.proof[0][0] ^= 1;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNPROCESSABLE);
	/* A proof one hash short. */
	cr_assert_eq(ask(&c, &st, leaves_a, 8, 13), IG_WITNESS_OK);
	c.req.proof_len--;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNPROCESSABLE);
}

Test(witness, proof_with_old_size_zero_is_422)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 8), IG_WITNESS_OK);
	c.req.proof_len = 1;
	cr_assert_eq(ig_witness_add_checkpoint(&c.ans, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &c.err),
	             IG_WITNESS_UNPROCESSABLE);
}

Test(witness, size_zero_needs_the_empty_root)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 0), IG_WITNESS_OK, "%s", c.err.msg);
	cr_assert_eq(c.ans.state.size, 0u);
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	strcpy(cp.origin, "iotguard/demo");
	cp.root[0] = 1;
	char text[IG_CHECKPOINT_MAX];
	int len = ig_checkpoint_sign(text, sizeof text, &cp, ch_sk);
	ig_witness_request req = {.old_size = 0, .checkpoint = text, .checkpoint_len = (size_t)len};
	ig_witness_answer ans;
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &req, &log_key, W_NAME, w_sk, NOW, NULL),
	             IG_WITNESS_UNPROCESSABLE);
}

Test(witness, wrong_calls_are_errors_not_outcomes)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 3), IG_WITNESS_OK);
	ig_witness_answer ans;
	ig_error err = {0};
	ig_witness_state other;
	cr_assert_eq(ig_witness_state_init(&other, "iotguard/other"), IG_OK);
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &other, &c.req, &log_key, W_NAME, w_sk, NOW, &err), IG_ERR_STATE);
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &c.req, &w_key, W_NAME, w_sk, NOW, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &c.req, &log_key, W_NAME, w_sk, 0, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &c.req, &log_key, "bad name", w_sk, NOW, &err), IG_ERR_INVAL);
	cr_assert_eq(ans.lines_len, 0u);
	cr_assert_eq(ig_witness_add_checkpoint(NULL, &st, &c.req, &log_key, W_NAME, w_sk, NOW, &err), IG_ERR_INVAL);
}

/* ---- texts ---------------------------------------------------------------- */

Test(witness, request_text_round_trips_and_is_strict)
{
	ig_witness_state st = fresh();
	st.size = 5;
	root_of(st.root, leaves_a, 5);
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 5, 13), IG_WITNESS_OK);
	char text[IG_CHECKPOINT_MAX + 4096];
	int n = ig_witness_request_encode(text, sizeof text, &c.req);
	cr_assert_gt(n, 0);
	cr_assert(strncmp(text, "old 5\n", 6) == 0);
	ig_witness_request req;
	ig_error err = {0};
	cr_assert_eq(ig_witness_request_parse(&req, text, (size_t)n, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(req.old_size, 5u);
	cr_assert_eq(req.proof_len, c.req.proof_len);
	cr_assert_arr_eq(req.proof, c.req.proof, 32 * req.proof_len);
	cr_assert_eq(req.checkpoint_len, c.req.checkpoint_len);
	cr_assert_arr_eq(req.checkpoint, c.text, req.checkpoint_len);
	/* The parsed request is decided exactly like the original. */
	ig_witness_answer ans;
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &req, &log_key, W_NAME, w_sk, NOW, NULL), IG_WITNESS_OK);
	cr_assert_str_eq(ans.lines, c.ans.lines);
	/* Every truncation is refused or parses to a shorter checkpoint that
	 * the decision then refuses. */
	for (int cut = 0; cut < n; cut++) {
		char *p = malloc((size_t)cut + 1);
		memcpy(p, text, (size_t)cut);
		ig_witness_request r;
		if (ig_witness_request_parse(&r, p, (size_t)cut, NULL) == IG_OK)
			cr_assert_neq(ig_witness_add_checkpoint(&ans, &st, &r, &log_key, W_NAME, w_sk, NOW, NULL), IG_WITNESS_OK,
			              "cut at %d accepted", cut);
		free(p);
	}
	/* Pinned: old 0, no proof. */
	ig_witness_request zero = {.old_size = 0, .checkpoint = "CP\n", .checkpoint_len = 3};
	cr_assert_eq(ig_witness_request_encode(text, sizeof text, &zero), 10);
	cr_assert_str_eq(text, "old 0\n\nCP\n");
	const char *bad[] = {
		"old 05\n\nx", "old -1\n\nx", "old 1 \n\nx", "Old 1\n\nx", "old\n\nx", "old 1\n\n",
		"old 18446744073709551616\n\nx", "old 1\nAAAA\n\nx",
		"old 1\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf81=\n\nx", /* non-canonical */
		"old 1\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\nx",   /* no empty line */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(ig_witness_request_parse(&req, bad[i], strlen(bad[i]), &err), IG_ERR_INVAL, "accepted %s",
		             bad[i]);
	/* 63 proof lines parse; 64 do not. */
	char many[64 * 45 + 64];
	size_t o = (size_t)snprintf(many, sizeof many, "old 1\n");
	for (int i = 0; i < 64; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n");
	char with63[sizeof many];
	memcpy(with63, many, o - 45);
	memcpy(with63 + o - 45, "\nx", 2);
	cr_assert_eq(ig_witness_request_parse(&req, with63, o - 45 + 2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(req.proof_len, 63u);
	memcpy(many + o, "\nx", 2);
	cr_assert_eq(ig_witness_request_parse(&req, many, o + 2, &err), IG_ERR_INVAL);
	/* The encoder refuses too small a buffer at every size. */
	n = ig_witness_request_encode(text, sizeof text, &c.req);
	for (int cap = 0; cap <= n; cap++)
		cr_assert_eq(ig_witness_request_encode(text, (size_t)cap, &c.req), IG_ERR_RANGE, "cap %d", cap);
}

Test(witness, answer_texts)
{
	ig_witness_state st = fresh();
	call c;
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 3), IG_WITNESS_OK);
	char body[IG_WITNESS_ANSWER_MAX];
	int n = ig_witness_answer_encode(body, sizeof body, &c.ans);
	cr_assert_eq(n, (int)c.ans.lines_len);
	cr_assert_str_eq(body, c.ans.lines);
	ig_witness_answer a;
	ig_error err = {0};
	cr_assert_eq(ig_witness_answer_parse(&a, 200, body, (size_t)n, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(a.outcome, IG_WITNESS_OK);
	cr_assert_str_eq(a.lines, c.ans.lines);
	cr_assert_eq(ig_witness_answer_parse(&a, 409, "42\n", 3, &err), IG_OK);
	cr_assert_eq(a.outcome, IG_WITNESS_CONFLICT);
	cr_assert_eq(a.known_size, 42u);
	cr_assert_eq(ig_witness_answer_parse(&a, 422, "", 0, &err), IG_OK);
	cr_assert_eq(a.outcome, IG_WITNESS_UNPROCESSABLE);
	cr_assert_eq(ig_witness_answer_encode(body, sizeof body, &a), 0);
	cr_assert_str_eq(body, "");
	cr_assert_eq(ig_witness_answer_parse(&a, 409, "042\n", 4, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 409, "42", 2, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 500, "", 0, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 200, "", 0, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 200, "hello\n", 6, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 200, body, 0, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_witness_answer_parse(&a, 200, c.ans.lines, c.ans.lines_len - 1, &err), IG_ERR_INVAL);
}

/* ---- the state file ------------------------------------------------------- */

#define STATE_VEC                                                                                     \
	"iotguard-witness-state/v1\n"                                                                      \
	"origin iotguard/demo\n"                                                                           \
	"size 3\n"                                                                                         \
	"root hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n"                                              \
	"sha256 78d467ca732619a0d0c919fed4f300ddf4911bdb00836d23ff96e5372578495c\n"

static ig_witness_state vec_state(void)
{
	ig_witness_state st = fresh();
	st.size = 3;
	tu_unhex(st.root, 32, "84706b1b7a1fbbf31865f7949f0b440d814e99bc77c200c9aa4e850f10ab7fcd");
	return st;
}

Test(witness, state_text_is_pinned)
{
	ig_witness_state st = vec_state();
	char text[IG_WITNESS_STATE_FILE_MAX];
	cr_assert_eq(ig_witness_state_encode(text, sizeof text, &st), (int)strlen(STATE_VEC));
	cr_assert_str_eq(text, STATE_VEC);
	ig_witness_state got;
	ig_error err = {0};
	cr_assert_eq(ig_witness_state_parse(&got, STATE_VEC, strlen(STATE_VEC), &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(got.origin, st.origin);
	cr_assert_eq(got.size, 3u);
	cr_assert_arr_eq(got.root, st.root, 32);
	cr_assert_not_null(strstr(tu_read_doc("LEDGER.md"), "```\n" STATE_VEC "```"));
}

Test(witness, state_save_load_round_trip_is_private_and_leaves_no_temp)
{
	const char *dir = tu_scratch_dir("witness");
	char path[512], tmp[540];
	snprintf(path, sizeof path, "%s/state", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());   /* ig_durable_replace's temporary */
	ig_witness_state st, got;
	ig_error err = {0};
	cr_assert_eq(ig_witness_state_load(&got, path, &err), IG_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "backup") != NULL, "%s", err.msg);

	call c;
	st = fresh();
	cr_assert_eq(ask(&c, &st, leaves_a, 0, 21), IG_WITNESS_OK);
	cr_assert_eq(ig_witness_state_save(path, &c.ans.state, &err), IG_OK, "%s", err.msg);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	cr_assert_neq(access(tmp, F_OK), 0, "temp file left behind");
	cr_assert_eq(ig_witness_state_load(&got, path, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &c.ans.state, sizeof got), 0);

	/* Replacing works (and a stale temp from a crash is overwritten). */
	tu_write_file(tmp, "junk", 4);
	st = got;
	cr_assert_eq(ask(&c, &st, leaves_a, 21, 40), IG_WITNESS_OK);
	cr_assert_eq(ig_witness_state_save(path, &c.ans.state, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_witness_state_load(&got, path, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(got.size, 40u);
	/* The reloaded witness refuses a fork of what it cosigned before the restart. */
	cr_assert_eq(ask(&c, &got, leaves_b, 40, 40), IG_WITNESS_UNPROCESSABLE);

	/* A symlink in place of the state file is not followed. */
	char link[520];
	snprintf(link, sizeof link, "%s/link", dir);
	cr_assert_eq(symlink(path, link), 0);
	cr_assert_eq(ig_witness_state_load(&got, link, &err), IG_ERR_IO);
	/* A directory that does not exist: an error, nothing written. */
	snprintf(link, sizeof link, "%s/none/state", dir);
	cr_assert_eq(ig_witness_state_save(link, &got, &err), IG_ERR_IO);
}

Test(witness, torn_or_garbled_state_is_refused_never_reset)
{
	const char *dir = tu_scratch_dir("witness-bad");
	char path[512];
	snprintf(path, sizeof path, "%s/state", dir);
	const size_t n = strlen(STATE_VEC);
	ig_witness_state got;
	ig_error err;
	/* Every torn length (a crash without the rename protocol, a copy cut short). */
	for (size_t cut = 0; cut < n; cut++) {
		tu_write_file(path, STATE_VEC, cut);
		memset(&err, 0, sizeof err);
		cr_assert_eq(ig_witness_state_load(&got, path, &err), IG_ERR_CORRUPT, "torn at %zu accepted", cut);
		cr_assert(strstr(err.msg, "never start over") != NULL, "%s", err.msg);
	}
	/* Every single-bit change in every byte (e.g. "size 3" -> "size 2"). */
	char buf[sizeof STATE_VEC];
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++) {
			memcpy(buf, STATE_VEC, n);
			buf[i] = (char)(buf[i] ^ (1 << b));
			cr_assert_eq(ig_witness_state_parse(&got, buf, n, NULL), IG_ERR_CORRUPT, "byte %zu bit %d accepted", i, b);
		}
	/* Trailing bytes, a second copy, an oversize file. */
	char twice[2 * sizeof STATE_VEC];
	snprintf(twice, sizeof twice, "%s%s", STATE_VEC, STATE_VEC);
	cr_assert_eq(ig_witness_state_parse(&got, twice, strlen(twice), NULL), IG_ERR_CORRUPT);
	cr_assert_eq(ig_witness_state_parse(&got, STATE_VEC "\n", n + 1, NULL), IG_ERR_CORRUPT);
	char big[IG_WITNESS_STATE_FILE_MAX + 100];
	memset(big, 'x', sizeof big);
	tu_write_file(path, big, sizeof big);
	cr_assert_eq(ig_witness_state_load(&got, path, &err), IG_ERR_CORRUPT);
	/* A well-formed state with a leading zero in the size, checksum made to match: still refused. */
	const char *lines = "iotguard-witness-state/v1\norigin iotguard/demo\nsize 03\n"
	                    "root hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n";
	uint8_t d[32];
	crypto_hash_sha256(d, (const uint8_t *)lines, strlen(lines));
	char hex[65], text[512];
	ig_hex_encode(hex, d, 32);
	snprintf(text, sizeof text, "%ssha256 %s\n", lines, hex);
	cr_assert_eq(ig_witness_state_parse(&got, text, strlen(text), NULL), IG_ERR_CORRUPT);
}

/* docs/LEDGER.md 15.5: the first request for the section 12 checkpoint, to a
 * witness that never cosigned, at 1700000000; the line is the one
 * tests/tlog/note.py computes, and the state saved is section 15.4's. */
Test(witness, the_documented_first_request_vector)
{
	const char *request = "old 0\n\n"
	                      "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n\n"
	                      "\xe2\x80\x94 iotguard/demo "
	                      "XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=\n";
	const char *w1_line = "\xe2\x80\x94 iotguard-witness/w1 "
	                      "nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/"
	                      "VqK2mDBlAd/l+3DcKHmDg==\n";
	ig_witness_request req;
	ig_error err = {0};
	cr_assert_eq(ig_witness_request_parse(&req, request, strlen(request), &err), IG_OK, "%s", err.msg);
	ig_witness_state st = fresh();
	ig_witness_answer ans;
	cr_assert_eq(ig_witness_add_checkpoint(&ans, &st, &req, &log_key, W_NAME, w_sk, 1700000000, &err), IG_WITNESS_OK,
	             "%s", err.msg);
	cr_assert_str_eq(ans.lines, w1_line);
	char body[IG_WITNESS_ANSWER_MAX];
	cr_assert_eq(ig_witness_answer_encode(body, sizeof body, &ans), (int)strlen(w1_line));
	cr_assert_str_eq(body, w1_line);
	char state[IG_WITNESS_STATE_FILE_MAX];
	cr_assert_eq(ig_witness_state_encode(state, sizeof state, &ans.state), (int)strlen(STATE_VEC));
	cr_assert_str_eq(state, STATE_VEC);
	/* Re-encoding the parsed request gives the same bytes. */
	char again[1024];
	cr_assert_eq(ig_witness_request_encode(again, sizeof again, &req), (int)strlen(request));
	cr_assert_str_eq(again, request);
}
