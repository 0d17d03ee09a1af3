/*
 * test_svc_witness.c: the cluster head's witness decisions
 * (lib/cluster/svc_witness.c).
 *
 * Why this exists: the head is published as cosigned only on a quorum of
 * cosignatures that verify, and a witness's refusal (a fork, a rollback)
 * must never be retried into a cosignature or silently dropped. Each edge
 * of the per-witness machine is walked here with real Ed25519 checkpoints
 * and cosignature lines, no broker: the first request from size 0, a 409
 * that teaches the witness's size, a rollback, a 422 fork, a bad
 * cosignature, a late answer for an older checkpoint (coalescing), a lost
 * request (timeout), a policy reload.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "ig_svc_witness.h"
#include "ig_witness.h"

#define NW 3
static uint8_t ch_pk[32], ch_sk[64], w_pk[NW][32], w_sk[NW][64], bad_pk[32], bad_sk[64];
static ig_cosig_vkey keys[NW];
static const char *const names[NW] = {"w1", "w2", "w3"};

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	uint8_t seed[32];
	memset(seed, 0xc1, sizeof seed);
	crypto_sign_seed_keypair(ch_pk, ch_sk, seed);
	for (int i = 0; i < NW; i++) {
		memset(seed, 0x10 + i, sizeof seed);
		crypto_sign_seed_keypair(w_pk[i], w_sk[i], seed);
		cr_assert_eq(ig_cosig_vkey_make(&keys[i], names[i], IG_COSIG_TYPE_COSIG_V1, w_pk[i]), IG_OK);
	}
	memset(seed, 0xbb, sizeof seed);
	crypto_sign_seed_keypair(bad_pk, bad_sk, seed);
}

TestSuite(svc_witness, .init = setup);

typedef struct signed_cp {
	char text[IG_CHECKPOINT_MAX];
	size_t len, body_len;
	ig_checkpoint cp;
} signed_cp;

static void make_cp(signed_cp *c, uint64_t size, uint8_t root_byte)
{
	memset(c, 0, sizeof *c);
	cr_assert_gt(ig_checkpoint_origin(c->cp.origin, sizeof c->cp.origin, "c1"), 0);
	c->cp.size = size;
	memset(c->cp.root, root_byte, sizeof c->cp.root);
	int n = ig_checkpoint_sign(c->text, sizeof c->text, &c->cp, ch_sk);
	cr_assert_gt(n, 0);
	c->len = (size_t)n;
	size_t sigs;
	cr_assert_eq(ig_checkpoint_split(c->text, c->len, &c->body_len, &sigs, NULL), IG_OK);
}

static ig_svc_witness *service(size_t quorum)
{
	ig_svc_witness *s = ig_svc_witness_new();
	cr_assert_not_null(s);
	cr_assert_eq(ig_svc_witness_configure(s, keys, NW, quorum), IG_OK);
	return s;
}

/* A witness's answer as it comes off the wire. */
static cJSON *answer_json(int status, uint64_t size, const char *cosig, long long known_size)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "witness_cosignature");
	cJSON_AddNumberToObject(o, "status", status);
	cJSON_AddNumberToObject(o, "size", (double)size);
	if (cosig)
		cJSON_AddStringToObject(o, "cosignature", cosig);
	if (known_size >= 0)
		cJSON_AddNumberToObject(o, "known_size", (double)known_size);
	if (status != 200)
		cJSON_AddStringToObject(o, "error", "test");
	return o;
}

static int answer(ig_svc_witness *s, const char *id, int status, uint64_t size, const char *cosig,
                  long long known, uint64_t now, ig_svc_witness_verdict *v)
{
	cJSON *o = answer_json(status, size, cosig, known);
	int rc = ig_svc_witness_answer(s, id, o, now, v);
	cJSON_Delete(o);
	return rc;
}

static void cosig_line(char *out, size_t cap, int w, const uint8_t *sk, const signed_cp *c)
{
	cr_assert_gt(ig_cosig_sign(out, cap, names[w], sk, 1700000000u, c->text, c->body_len), 0);
}

/* Sends the job's request and checks its text: old size and proof lines. */
static void send(ig_svc_witness *s, const ig_svc_witness_job *job, size_t proof_len, uint64_t now)
{
	uint8_t proof[8][IG_HASH_BYTES];
	memset(proof, 0x77, sizeof proof);
	char *json = NULL;
	cr_assert_eq(ig_svc_witness_request(s, job, proof_len ? (const uint8_t (*)[IG_HASH_BYTES])proof : NULL,
	                                    proof_len, now, &json), IG_OK);
	cJSON *o = cJSON_Parse(json);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "witness_add_checkpoint");
	const char *text = cJSON_GetObjectItem(o, "request")->valuestring;
	ig_witness_request req;
	cr_assert_eq(ig_witness_request_parse(&req, text, strlen(text), NULL), IG_OK);
	cr_expect_eq(req.old_size, job->from);
	cr_expect_eq(req.proof_len, proof_len);
	cJSON_Delete(o);
	free(json);
}

Test(svc_witness, configure_refuses_sets_that_could_never_reach_a_quorum)
{
	ig_svc_witness *s = ig_svc_witness_new();
	cr_expect_eq(ig_svc_witness_configure(s, keys, NW, 0), IG_ERR_INVAL);
	cr_expect_eq(ig_svc_witness_configure(s, keys, NW, NW + 1), IG_ERR_INVAL);
	ig_cosig_vkey two[2] = {keys[0], keys[0]};
	cr_expect_eq(ig_svc_witness_configure(s, two, 2, 1), IG_ERR_INVAL, "a witness twice");
	ig_cosig_vkey plain;
	cr_assert_eq(ig_cosig_vkey_make(&plain, "w9", IG_COSIG_TYPE_ED25519, w_pk[0]), IG_OK);
	cr_expect_eq(ig_svc_witness_configure(s, &plain, 1, 1), IG_ERR_INVAL, "a type 0x01 key");
	cr_expect_eq(ig_svc_witness_configure(s, NULL, 0, 0), IG_OK, "no witnesses: off");
	cr_expect_eq(ig_svc_witness_count(s), 0);
	signed_cp c;
	make_cp(&c, 5, 1);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 0), IG_OK);
	ig_svc_witness_job job;
	cr_expect_not(ig_svc_witness_next(s, 0, &job), "nobody to ask");
	ig_svc_witness_free(s);
}

Test(svc_witness, quorum_of_valid_cosignatures_publishes_the_cosigned_checkpoint)
{
	ig_svc_witness *s = service(2);
	signed_cp c;
	make_cp(&c, 5, 1);
	ig_svc_witness_job job;
	cr_expect_not(ig_svc_witness_next(s, 0, &job), "no checkpoint yet");
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 100), IG_OK);
	ig_svc_witness_job jobs[NW];
	for (int i = 0; i < NW; i++) {
		cr_assert(ig_svc_witness_next(s, 100, &jobs[i]));
		cr_expect_eq(jobs[i].witness, (size_t)i);
		cr_expect_eq(jobs[i].from, 0);
		cr_expect_eq(jobs[i].to, 5);
		cr_expect_not(jobs[i].needs_proof, "from 0: no proof (tlog-witness)");
		send(s, &jobs[i], 0, 100);
	}
	cr_expect_not(ig_svc_witness_next(s, 200, &job), "one request in flight per witness");

	char line[IG_COSIG_LINE_MAX];
	ig_svc_witness_verdict v;
	cosig_line(line, sizeof line, 0, w_sk[0], &c);
	cr_assert_eq(answer(s, "w1", 200, 5, line, -1, 130, &v), IG_OK);
	cr_expect(v.cosigned);
	cr_expect_not(v.quorum);
	char out[IG_CHECKPOINT_MAX];
	const char *who[IG_SVC_WITNESS_MAX];
	size_t n;
	cr_expect_eq(ig_svc_witness_cosigned(s, out, sizeof out, who, &n), IG_ERR_NOTFOUND, "1 of 2");

	/* A line signed by another key under w2's name is not counted, and said loudly. */
	cosig_line(line, sizeof line, 1, bad_sk, &c);
	cr_assert_eq(answer(s, "w2", 200, 5, line, -1, 140, &v), IG_OK);
	cr_expect_not(v.cosigned);
	cr_expect(v.loud);
	cr_expect(strstr(v.message, "does not verify") != NULL, "%s", v.message);

	cosig_line(line, sizeof line, 2, w_sk[2], &c);
	cr_assert_eq(answer(s, "w3", 200, 5, line, -1, 160, &v), IG_OK);
	cr_expect(v.cosigned);
	cr_expect(v.quorum);
	int len = ig_svc_witness_cosigned(s, out, sizeof out, who, &n);
	cr_assert_gt(len, 0);
	cr_expect_eq(n, 2);
	cr_expect_str_eq(who[0], "w1");
	cr_expect_str_eq(who[1], "w3");
	/* The text verifies: the cluster head's signature and 2 cosignatures. */
	ig_checkpoint parsed;
	cr_expect_eq(ig_checkpoint_verify(out, (size_t)len, "iotguard/c1", ch_pk, &parsed, NULL), IG_OK);
	size_t valid;
	cr_expect_eq(ig_cosig_count(&valid, out, (size_t)len, keys, NW, 2, NULL), IG_OK);
	cr_expect_eq(valid, 2);

	/* A third cosignature does not publish again. */
	cosig_line(line, sizeof line, 1, w_sk[1], &c);
	ig_svc_witness_job j2;
	cr_assert(ig_svc_witness_next(s, 200 + IG_SVC_WITNESS_TIMEOUT_MS, &j2) == false || j2.witness == 1);
	cr_assert_eq(answer(s, "w2", 200, 5, line, -1, 170, &v), IG_OK);
	cr_expect(v.cosigned);
	cr_expect_not(v.quorum);

	cJSON *st = cJSON_CreateObject();
	ig_svc_witness_stats(s, st);
	cJSON *ws = cJSON_GetObjectItem(st, "witnesses");
	cr_assert_not_null(ws);
	cr_expect_eq(cJSON_GetObjectItem(ws, "cosigned_size")->valueint, 5);
	cr_expect_eq(cJSON_GetObjectItem(ws, "quorum_latency_ms")->valueint, 60);
	cr_expect_eq(cJSON_GetObjectItem(ws, "refusals")->valueint, 1);
	cJSON_Delete(st);
	ig_svc_witness_free(s);
}

Test(svc_witness, a_409_teaches_the_size_and_the_retry_carries_a_proof)
{
	ig_svc_witness *s = service(1);
	signed_cp c;
	make_cp(&c, 9, 2);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 0), IG_OK);
	ig_svc_witness_job job;
	cr_assert(ig_svc_witness_next(s, 0, &job));
	send(s, &job, 0, 0);
	ig_svc_witness_verdict v;
	cr_assert_eq(answer(s, "w1", 409, 9, NULL, 4, 10, &v), IG_OK);
	cr_expect_not(v.loud);
	cr_assert(ig_svc_witness_next(s, 10, &job));
	cr_expect_eq(job.witness, 0);
	cr_expect_eq(job.from, 4);
	cr_expect_eq(job.to, 9);
	cr_expect(job.needs_proof);
	send(s, &job, 3, 10);
	/* A 409 without the size it holds is malformed. */
	cr_expect_eq(answer(s, "w1", 409, 9, NULL, -1, 20, &v), IG_ERR_INVAL);
	/* Repeated 409s are said loudly and backed off. */
	for (int i = 0; i < IG_SVC_WITNESS_CONFLICTS_LOUD - 1; i++)
		cr_assert_eq(answer(s, "w1", 409, 9, NULL, 4, 30, &v), IG_OK);
	cr_expect(v.loud);
	ig_svc_witness_job other;
	while (ig_svc_witness_next(s, 31, &other))
		cr_expect_neq(other.witness, 0, "backed off");
	ig_svc_witness_free(s);
}

Test(svc_witness, a_rollback_and_a_fork_are_refused_loudly_and_not_retried)
{
	ig_svc_witness *s = service(2);
	signed_cp c;
	make_cp(&c, 6, 3);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 0), IG_OK);
	ig_svc_witness_job job;
	for (int i = 0; i < NW; i++) {
		cr_assert(ig_svc_witness_next(s, 0, &job));
		send(s, &job, 0, 0);
	}
	ig_svc_witness_verdict v;
	/* w1 cosigned 8 already: this 6 is a rollback. */
	cr_assert_eq(answer(s, "w1", 409, 6, NULL, 8, 5, &v), IG_OK);
	cr_expect(v.loud);
	cr_expect(strstr(v.message, "ROLLED BACK") != NULL, "%s", v.message);
	/* w2 found the proof inconsistent: a fork. */
	cr_assert_eq(answer(s, "w2", 422, 6, NULL, -1, 5, &v), IG_OK);
	cr_expect(v.loud);
	cr_expect(strstr(v.message, "w2 REFUSED the checkpoint of size 6") != NULL, "%s", v.message);
	cr_expect(strstr(v.message, "FORKED") != NULL, "%s", v.message);
	/* Neither is asked again for this checkpoint, even after the timeout. */
	cr_expect_not(ig_svc_witness_next(s, 5 + 10 * IG_SVC_WITNESS_TIMEOUT_MS, &job) && job.witness != 2);
	char out[IG_CHECKPOINT_MAX];
	const char *who[IG_SVC_WITNESS_MAX];
	size_t n;
	cr_expect_eq(ig_svc_witness_cosigned(s, out, sizeof out, who, &n), IG_ERR_NOTFOUND);

	/* A new checkpoint is offered again: w2 from 0; w1 still only beyond 8. */
	signed_cp c2;
	make_cp(&c2, 7, 4);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c2.text, c2.len, &c2.cp, 100), IG_OK);
	bool asked[NW] = {0};
	while (ig_svc_witness_next(s, 100, &job))
		asked[job.witness] = true;
	cr_expect_not(asked[0], "7 < 8: still a rollback for w1");
	cr_expect(asked[1]);
	cJSON *st = cJSON_CreateObject();
	ig_svc_witness_stats(s, st);
	cJSON *ws = cJSON_GetObjectItem(st, "witnesses");
	cr_expect_eq(cJSON_GetObjectItem(ws, "refusals")->valueint, 2);
	cJSON *w1 = cJSON_GetObjectItem(cJSON_GetObjectItem(ws, "per_witness"), "w1");
	cr_expect_eq(cJSON_GetObjectItem(w1, "last_status")->valueint, 409);
	cJSON_Delete(st);
	ig_svc_witness_free(s);
}

Test(svc_witness, only_the_newest_checkpoint_matters_and_lost_requests_are_sent_again)
{
	ig_svc_witness *s = service(1);
	signed_cp c1, c2, c3;
	make_cp(&c1, 3, 5);
	make_cp(&c2, 4, 6);
	make_cp(&c3, 5, 7);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c1.text, c1.len, &c1.cp, 0), IG_OK);
	ig_svc_witness_job job;
	cr_assert(ig_svc_witness_next(s, 0, &job));
	cr_assert_eq(job.witness, 0);
	send(s, &job, 0, 0);
	/* Two newer checkpoints while w1 is busy: only the newest is kept. */
	cr_assert_eq(ig_svc_witness_checkpoint(s, c2.text, c2.len, &c2.cp, 1), IG_OK);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c3.text, c3.len, &c3.cp, 2), IG_OK);
	while (ig_svc_witness_next(s, 3, &job))
		cr_expect_neq(job.witness, 0, "w1 is still in flight");
	/* Its answer for size 3 is no longer the newest: it teaches the size. */
	char line[IG_COSIG_LINE_MAX];
	cosig_line(line, sizeof line, 0, w_sk[0], &c1);
	ig_svc_witness_verdict v;
	cr_assert_eq(answer(s, "w1", 200, 3, line, -1, 4, &v), IG_OK);
	cr_expect_not(v.cosigned);
	cr_expect_not(v.quorum);
	cr_assert(ig_svc_witness_next(s, 4, &job));
	cr_expect_eq(job.witness, 0);
	cr_expect_eq(job.from, 3);
	cr_expect_eq(job.to, 5);
	cr_expect(job.needs_proof);
	/* The proof came back after the target moved on: nothing is sent. */
	signed_cp c4;
	make_cp(&c4, 6, 8);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c4.text, c4.len, &c4.cp, 5), IG_OK);
	char *json = (char *)1;
	uint8_t proof[1][IG_HASH_BYTES] = {{0}};
	cr_expect_eq(ig_svc_witness_request(s, &job, (const uint8_t (*)[IG_HASH_BYTES])proof, 1, 6, &json),
	             IG_ERR_NOTFOUND);
	cr_expect_null(json);
	/* The next request goes out and gets lost: sent again after the timeout. */
	cr_assert(ig_svc_witness_next(s, 6, &job));
	cr_expect_eq(job.to, 6);
	send(s, &job, 2, 6);
	cr_expect_not(ig_svc_witness_next(s, 6 + IG_SVC_WITNESS_TIMEOUT_MS - 1, &job));
	cr_assert(ig_svc_witness_next(s, 6 + IG_SVC_WITNESS_TIMEOUT_MS, &job));
	cr_expect_eq(job.witness, 0);
	/* Not sent (proof failed, or offline): asked again only after the retry delay. */
	ig_svc_witness_later(s, &job, 10000);
	cr_expect_not(ig_svc_witness_next(s, 10000 + IG_SVC_WITNESS_RETRY_MS - 1, &job) && job.witness == 0);
	ig_svc_witness_free(s);
}

Test(svc_witness, answers_from_strangers_and_malformed_answers_are_refused)
{
	ig_svc_witness *s = service(1);
	signed_cp c;
	make_cp(&c, 2, 9);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 0), IG_OK);
	ig_svc_witness_verdict v;
	char line[IG_COSIG_LINE_MAX];
	cosig_line(line, sizeof line, 0, w_sk[0], &c);
	cr_expect_eq(answer(s, "dev1", 200, 2, line, -1, 0, &v), IG_ERR_NOTFOUND);
	cr_expect(strstr(v.message, "not a witness") != NULL, "%s", v.message);
	cJSON *o = cJSON_Parse("{\"type\":\"witness_cosignature\"}");
	cr_expect_eq(ig_svc_witness_answer(s, "w1", o, 0, &v), IG_ERR_INVAL);
	cJSON_Delete(o);
	o = cJSON_Parse("{\"type\":\"witness_cosignature\",\"status\":200,\"size\":2}");
	cr_expect_eq(ig_svc_witness_answer(s, "w1", o, 0, &v), IG_ERR_INVAL, "200 without a cosignature");
	cJSON_Delete(o);
	cr_expect_eq(answer(s, "w1", 200, 2, "\xe2\x80\x94 w1 AAAA\n", -1, 0, &v), IG_OK);
	cr_expect_not(v.cosigned, "a malformed line is not a cosignature");
	cr_expect(v.loud);
	ig_svc_witness_free(s);
}

Test(svc_witness, a_policy_reload_keeps_what_is_known_of_unchanged_witnesses)
{
	ig_svc_witness *s = service(2);
	signed_cp c;
	make_cp(&c, 4, 10);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c.text, c.len, &c.cp, 0), IG_OK);
	ig_svc_witness_job job;
	cr_assert(ig_svc_witness_next(s, 0, &job));
	send(s, &job, 0, 0);
	char line[IG_COSIG_LINE_MAX];
	cosig_line(line, sizeof line, 0, w_sk[0], &c);
	ig_svc_witness_verdict v;
	cr_assert_eq(answer(s, "w1", 200, 4, line, -1, 1, &v), IG_OK);
	cr_assert(v.cosigned);
	/* Reload: w1 stays (same key), w2 gets a new key, w3 goes. */
	ig_cosig_vkey next[2] = {keys[0], keys[1]};
	cr_assert_eq(ig_cosig_vkey_make(&next[1], "w2", IG_COSIG_TYPE_COSIG_V1, bad_pk), IG_OK);
	cr_assert_eq(ig_svc_witness_configure(s, next, 2, 1), IG_OK);
	cr_expect_eq(ig_svc_witness_count(s), 2);
	char out[IG_CHECKPOINT_MAX];
	const char *who[IG_SVC_WITNESS_MAX];
	size_t n;
	cr_expect_gt(ig_svc_witness_cosigned(s, out, sizeof out, who, &n), 0, "w1's cosignature is kept");
	cr_expect_eq(n, 1);
	cr_expect_eq(answer(s, "w3", 200, 4, line, -1, 2, &v), IG_ERR_NOTFOUND, "w3 was removed");
	ig_svc_witness_free(s);
}

Test(svc_witness, a_cosignature_of_a_larger_tree_reveals_a_rollback)
{
	/* After a restart on a rolled-back ledger, a witness's late answer to
	 * the previous run's request names a size above the new checkpoint. */
	ig_svc_witness *s = service(2);
	signed_cp c8, c5;
	make_cp(&c8, 8, 11);
	make_cp(&c5, 5, 12);
	cr_assert_eq(ig_svc_witness_checkpoint(s, c5.text, c5.len, &c5.cp, 0), IG_OK);
	char line[IG_COSIG_LINE_MAX];
	cosig_line(line, sizeof line, 0, w_sk[0], &c8);
	ig_svc_witness_verdict v;
	cr_assert_eq(answer(s, "w1", 200, 8, line, -1, 1, &v), IG_OK);
	cr_expect_not(v.cosigned);
	cr_expect(v.loud);
	cr_expect(strstr(v.message, "it cosigned size 8 already, so this log was ROLLED BACK") != NULL, "%s", v.message);
	ig_svc_witness_job job;
	while (ig_svc_witness_next(s, 2, &job))
		cr_expect_neq(job.witness, 0, "w1 is not asked to cosign the smaller tree");
	ig_svc_witness_free(s);
}
