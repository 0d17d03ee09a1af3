/*
 * test_svc_proof.c: the log-proof service without a broker: every refusal
 * (malformed, not_enrolled, rate_limited, no_tiles, beyond_checkpoint,
 * bad_range, busy, proof_unavailable), the replies of accepted requests
 * (decoded from their JSON and verified against the signed root), and the
 * stats.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_svc_proof.h"
#include "prover_fixture.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW_MS 1767225600000ull
#define N 40

static pf_ledger lg;
static ig_state *st;
static ig_prover *prover;
static ig_svc_proof *svc;
static ig_svc_proof_log logv;

static void teardown(void);

static void start(size_t queue, uint32_t per_minute, bool v1)
{
	teardown();   /* whatever an earlier init made (see setup_rate) */
	cr_assert_eq(ig_init(), IG_OK);
	pf_make(&lg, "svcproof", N, v1);
	st = ig_state_new();
	cr_assert_not_null(st);
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x20);
	fx_enroll(st, "dev1", IG_ROLE_DEVICE, pk);
	fx_enroll(st, "gone", IG_ROLE_DEVICE, pk);
	fx_revoke(st, "gone");
	ig_error err = {0};
	cr_assert_eq(ig_prover_new(&prover, lg.dir, queue, &err), IG_OK, "%s", err.msg);
	ig_svc_proof_config cfg = {.requests_per_minute = per_minute};
	svc = ig_svc_proof_new(ig_state_registry(st), prover, &cfg);
	cr_assert_not_null(svc);
	logv = (ig_svc_proof_log){.format = v1 ? 1 : 2, .checkpoint = lg.text, .checkpoint_len = lg.text_len,
	                          .cp = lg.cp};
}

static void setup(void)
{
	start(8, 1000, false);
}

/* Per-test worlds. Whether Criterion also runs the suite's init and fini
 * for a test that names its own differs between its versions, so start()
 * and teardown() may each run twice without harm. */
static void setup_rate(void)
{
	start(64, 3, false);
}

static void setup_v1(void)
{
	start(8, 100, true);
}

static void setup_small_queue(void)
{
	start(2, 100, false);
}

static void teardown(void)
{
	ig_svc_proof_free(svc);
	ig_prover_free(prover);
	ig_state_free(st);
	pf_free(&lg);
	svc = NULL;
	prover = NULL;
	st = NULL;
	memset(&lg, 0, sizeof lg);
}

/* Sends the request text as id; returns the decision (caller clears). */
static void ask(ig_decision *d, const char *id, const char *json)
{
	cJSON *req = cJSON_Parse(json);
	cr_assert_not_null(req, "%s", json);
	const char *type = cJSON_GetObjectItem(req, "type")->valuestring;
	const char *stype = strcmp(type, "log_inclusion") == 0 ? "log_inclusion" : "log_consistency";
	memset(d, 0, sizeof *d);
	ig_svc_proof_request(d, svc, id, stype, req, &logv, NOW_MS);
	cJSON_Delete(req);
}

static void expect_refused(const char *id, const char *json, const char *error, const char *nonce, const char *part)
{
	ig_decision d;
	ask(&d, id, json);
	cr_assert_eq(d.kind, IG_DECISION_REFUSE, "%s was not refused", json);
	cr_assert_not_null(strstr(json, d.request), "the refusal names the request");
	fx_expect_refusal(&d, d.request, error, nonce, part);
	ig_decision_clear(&d);
}

/* The next answer of the service, waiting for the prover (5 s at most). */
static void collect(ig_decision *d, char requester[IG_ID_MAX + 1])
{
	for (int i = 0; i < 100; i++) {
		memset(d, 0, sizeof *d);
		if (ig_svc_proof_collect(d, svc, requester))
			return;
		struct pollfd pfd = {.fd = ig_prover_event_fd(prover), .events = POLLIN};
		poll(&pfd, 1, 50);
	}
	cr_assert_fail("no proof came back in 5 s");
}

static size_t b64(uint8_t *out, size_t cap, const char *s)
{
	size_t n = 0;
	cr_assert_eq(sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL), 0, "%s",
	             s);
	return n;
}

static size_t path_of(const cJSON *o, uint8_t (*path)[IG_HASH_BYTES])
{
	const cJSON *p = cJSON_GetObjectItem(o, "proof");
	cr_assert(cJSON_IsArray(p));
	size_t n = 0;
	const cJSON *h;
	cJSON_ArrayForEach(h, p)
	{
		cr_assert_lt(n, IG_PROOF_MAX);
		cr_assert_eq(b64(path[n++], IG_HASH_BYTES, h->valuestring), IG_HASH_BYTES);
	}
	return n;
}

TestSuite(svc_proof, .init = setup, .fini = teardown);

Test(svc_proof, malformed_requests)
{
	expect_refused("dev1", "{\"type\":\"log_inclusion\"}", "malformed", "", "exactly one of");
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1,\"of\":\"enrollment\"}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"of\":\"revocation\"}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":-1}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1.5}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":\"3\"}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1e300}", "malformed", "", NULL);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1,\"nonce\":\"\"}", "malformed", "", "nonce");
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1,\"nonce\":5}", "malformed", "", "nonce");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"nonce\":\"n1\"}", "malformed", "n1", "\"from\"");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":1,\"to\":true}", "malformed", "", NULL);
	cr_assert_eq(ig_prover_depth(prover), 0, "nothing was queued");
}

Test(svc_proof, sizes_beyond_the_checkpoint_and_backwards_ranges)
{
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":40,\"nonce\":\"a\"}", "beyond_checkpoint", "a",
	               "size 40");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":3,\"to\":41}", "beyond_checkpoint", "", "size 40");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":41}", "bad_range", "", "only grows");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":9,\"to\":8}", "bad_range", "", NULL);
}

Test(svc_proof, enrolment_of_an_identity_without_one)
{
	expect_refused("gone", "{\"type\":\"log_inclusion\",\"of\":\"enrollment\"}", "not_enrolled", "", "gone");
	expect_refused("nobody", "{\"type\":\"log_inclusion\",\"of\":\"enrollment\"}", "not_enrolled", "", NULL);
}

Test(svc_proof, inclusion_reply_holds_against_the_signed_root)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":33,\"nonce\":\"x-1\"}");
	cr_assert_eq(d.kind, IG_DECISION_NONE, "accepted: the answer comes later");
	char who[IG_ID_MAX + 1];
	collect(&d, who);
	cr_assert_str_eq(who, "dev1");
	cr_assert_eq(d.kind, IG_DECISION_REPLY);
	cr_assert_eq(d.n_replies, 1);
	cr_assert_str_eq(d.replies[0].to, "dev1");
	const cJSON *o = d.replies[0].body;
	cr_assert_str_eq(tu_json_str(o, "type"), "log_inclusion_proof");
	cr_assert_str_eq(tu_json_str(o, "nonce"), "x-1");
	cr_assert_eq(tu_json_num(o, "index"), 33);
	cr_assert_str_eq(tu_json_str(o, "checkpoint"), lg.text, "the checkpoint text, verbatim");
	static uint8_t frame[IG_FORMAT_V2_MAX_FRAME];
	size_t flen = b64(frame, sizeof frame, tu_json_str(o, "entry"));
	cr_assert_eq(flen, lg.len[33]);
	cr_assert_eq(memcmp(frame, lg.log + lg.off[33], flen), 0);
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES], leaf[IG_HASH_BYTES];
	size_t n = path_of(o, path);
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, flen);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, 33, N, (const uint8_t(*)[IG_HASH_BYTES])path, n,
	                                       lg.cp.root),
	             IG_OK);
	ig_decision_clear(&d);

	/* "of":"enrollment" proves the record the registry holds for the id. */
	const ig_identity *idn = ig_registry_find(ig_state_registry(st), "dev1", 4);
	cr_assert_not_null(idn);
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"of\":\"enrollment\"}");
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	collect(&d, who);
	cr_assert_eq(d.kind, IG_DECISION_REPLY);
	o = d.replies[0].body;
	cr_assert_eq(tu_json_num(o, "index"), (double)idn->enrolled_index);
	cr_assert_null(cJSON_GetObjectItem(o, "nonce"), "no nonce asked, none echoed");
	ig_decision_clear(&d);
}

Test(svc_proof, consistency_reply_defaults_to_the_checkpoint_size)
{
	ig_decision d;
	char who[IG_ID_MAX + 1];
	static const struct { const char *req; uint64_t from, to; } cases[] = {
		{"{\"type\":\"log_consistency\",\"from\":7}", 7, N},
		{"{\"type\":\"log_consistency\",\"from\":7,\"to\":29}", 7, 29},
		{"{\"type\":\"log_consistency\",\"from\":0}", 0, N},
		{"{\"type\":\"log_consistency\",\"from\":40,\"to\":40}", 40, 40},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		ask(&d, "dev1", cases[k].req);
		cr_assert_eq(d.kind, IG_DECISION_NONE, "%s", cases[k].req);
		collect(&d, who);
		cr_assert_eq(d.kind, IG_DECISION_REPLY, "%s: %s", cases[k].req, d.message);
		const cJSON *o = d.replies[0].body;
		cr_assert_str_eq(tu_json_str(o, "type"), "log_consistency_proof");
		cr_assert_eq(tu_json_num(o, "from"), (double)cases[k].from);
		cr_assert_eq(tu_json_num(o, "to"), (double)cases[k].to);
		cr_assert_str_eq(tu_json_str(o, "checkpoint"), lg.text);
		uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES], r_old[IG_HASH_BYTES], r_new[IG_HASH_BYTES];
		size_t n = path_of(o, path);
		pf_root(&lg, cases[k].from, r_old);
		pf_root(&lg, cases[k].to, r_new);
		cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, cases[k].from, r_old, cases[k].to, r_new,
		                                         (const uint8_t(*)[IG_HASH_BYTES])path, n),
		             IG_OK, "%s", cases[k].req);
		ig_decision_clear(&d);
	}
}

Test(svc_proof, rate_limit_per_identity_and_minute, .init = setup_rate, .fini = teardown)
{
	ig_decision d;
	for (int i = 0; i < 3; i++) {
		ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":1}");
		cr_assert_eq(d.kind, IG_DECISION_NONE);
	}
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":1,\"nonce\":\"r\"}", "rate_limited", "r",
	               "3 proof requests");
	ask(&d, "dev2", "{\"type\":\"log_inclusion\",\"index\":1}");
	cr_assert_eq(d.kind, IG_DECISION_NONE, "another identity has its own budget");
	/* A new minute, a new budget. */
	cJSON *req = cJSON_Parse("{\"type\":\"log_inclusion\",\"index\":2}");
	memset(&d, 0, sizeof d);
	ig_svc_proof_request(&d, svc, "dev1", "log_inclusion", req, &logv, NOW_MS + 60000);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	cJSON_Delete(req);
}

Test(svc_proof, format1_ledgers_have_no_tiles, .init = setup_v1, .fini = teardown)
{
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":1}", "no_tiles", "", "iotguard upgrade");
	expect_refused("dev1", "{\"type\":\"log_consistency\",\"from\":1}", "no_tiles", "", "iotguard upgrade");
}

Test(svc_proof, a_full_queue_is_busy_and_stats_count_it, .init = setup_small_queue, .fini = teardown)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":1}");
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":2}");
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	expect_refused("dev1", "{\"type\":\"log_inclusion\",\"index\":3,\"nonce\":\"b\"}", "busy", "b", "retry");
	char who[IG_ID_MAX + 1];
	for (int i = 0; i < 2; i++) {
		collect(&d, who);
		cr_assert_eq(d.kind, IG_DECISION_REPLY);
		ig_decision_clear(&d);
	}
	memset(&d, 0, sizeof d);
	cr_assert(!ig_svc_proof_collect(&d, svc, who), "nothing left");
	cJSON *stats = cJSON_CreateObject();
	ig_svc_proof_stats(svc, stats);
	const cJSON *p = cJSON_GetObjectItem(stats, "proofs");
	cr_assert_not_null(p);
	cr_assert_eq(tu_json_num(p, "served"), 2);
	cr_assert_eq(tu_json_num(p, "refused"), 1);
	cr_assert_eq(tu_json_num(p, "failed"), 0);
	cr_assert_eq(tu_json_num(p, "queue"), 0);
	cr_assert_geq(tu_json_num(p, "avg_latency_us"), 0);
	cJSON_Delete(stats);
}

Test(svc_proof, damaged_tiles_are_proof_unavailable_and_retriable)
{
	char t0[700];
	snprintf(t0, sizeof t0, "%s/tlog/tile/0/000.p/40", lg.dir);
	size_t len;
	char *orig = tu_read_file(t0, &len);
	char *bad = malloc(len);
	memcpy(bad, orig, len);
	bad[5 * IG_HASH_BYTES] ^= 1;
	tu_write_file(t0, bad, len);
	ig_decision d;
	char who[IG_ID_MAX + 1];
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":4,\"nonce\":\"t\"}");
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	collect(&d, who);
	fx_expect_refusal(&d, "log_inclusion", "proof_unavailable", "t", "retry");
	ig_decision_clear(&d);
	tu_write_file(t0, orig, len);
	ask(&d, "dev1", "{\"type\":\"log_inclusion\",\"index\":4,\"nonce\":\"t\"}");
	collect(&d, who);
	cr_assert_eq(d.kind, IG_DECISION_REPLY, "the retry is answered once the tile is right: %s", d.message);
	ig_decision_clear(&d);
	cJSON *stats = cJSON_CreateObject();
	ig_svc_proof_stats(svc, stats);
	cr_assert_eq(tu_json_num(cJSON_GetObjectItem(stats, "proofs"), "failed"), 1);
	cJSON_Delete(stats);
	free(bad);
	free(orig);
}
