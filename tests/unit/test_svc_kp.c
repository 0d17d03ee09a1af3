/*
 * test_svc_kp.c: the key-ring service's decisions (lib/kp/svc_kp.c) without
 * a broker.
 *
 * Why this exists: the integration test shows rings dealt end to end; this
 * one drives the service step by step the way the plugin does (records
 * applied to an ig_state, done called with the ledger's verdict, the
 * worker's rings collected by ticks) and plays the device with the crypto
 * helpers, so each rule is checked on its own: every refusal of key_ring,
 * the first epoch and its seed, a ring answered only once its kp_ring is
 * durable and opening only for its device, a second request answered from
 * the ledger, the disk's failures, an unasked deal at enrolment, retiring a
 * revoked ring (and not before its revocation is durable), the signed
 * statement, kp_rotate, and a policy change starting a new epoch.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ig_keybox.h"
#include "ig_keyfile.h"
#include "ig_kp.h"
#include "ig_kp_view.h"
#include "ig_svc_kp.h"
#include "svc_fixture.h"

#define QMAX 64
#define NDEV 3

static const char *const devs[NDEV] = {"d1", "d2", "d3"};

static const char POLICY_KP[] =
	"{\"version\":1,\"roles\":{},\"predistribution\":{\"pool\":1000,\"ring\":30,\"q\":1}}";
static const char POLICY_KP2[] =
	"{\"version\":1,\"roles\":{},\"predistribution\":{\"pool\":2000,\"ring\":40,\"q\":2}}";
static const char POLICY_OFF[] = "{\"version\":1,\"roles\":{}}";

typedef struct fake {
	bool online[NDEV + 1];
	uint8_t ch_pk[32], ch_sk[64];
	ig_policy *policy;
	ig_decision q[QMAX];
	size_t nq;
	char *statement;
	int statements;
	const char *rotate_error;
	char rotate_msg[IG_DECISION_MESSAGE_MAX];
	int rotate_done;
} fake;

static fake F;
static ig_state *st;
static uint8_t dev_pk[NDEV + 1][32], dev_sk[NDEV + 1][64];

static int dev_index(const char *id)
{
	for (int i = 0; i < NDEV; i++)
		if (!strcmp(devs[i], id))
			return i;
	return !strcmp(id, "d4") ? NDEV : -1;
}

static bool env_online(void *ctx, const char *id)
{
	(void)ctx;
	int i = dev_index(id);
	return i >= 0 && F.online[i];
}
static const uint8_t *env_ch_sk(void *ctx) { (void)ctx; return F.ch_sk; }
static const ig_policy *env_policy(void *ctx) { (void)ctx; return F.policy; }
static void env_carry_out(void *ctx, ig_decision *d)
{
	(void)ctx;
	/* Chains are flattened: each link is queued on its own. */
	ig_decision *first = d;
	while (d) {
		cr_assert_lt(F.nq, QMAX);
		ig_decision *next = d->next;
		F.q[F.nq] = *d;
		F.q[F.nq].next = NULL;
		F.nq++;
		if (d != first)
			free(d);
		else
			memset(d, 0, sizeof *d);
		d = next;
	}
}
static void env_publish(void *ctx, const char *json)
{
	(void)ctx;
	free(F.statement);
	F.statement = strdup(json);
	F.statements++;
}

static void set_policy(const char *json)
{
	ig_policy_free(F.policy);
	F.policy = fx_policy(json);
}

static ig_svc_kp *svc_new(void)
{
	ig_svc_kp_config cfg = {.cluster = "c1"};
	ig_svc_kp_env env = {.online = env_online, .ch_sk = env_ch_sk, .policy = env_policy,
	                     .carry_out = env_carry_out, .publish_revoked = env_publish};
	ig_error err = {0};
	ig_svc_kp *k = ig_svc_kp_new(st, &cfg, &env, &err);
	cr_assert_not_null(k, "%s", err.msg);
	return k;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	memset(&F, 0, sizeof F);
	ig_keyfile_generate(F.ch_pk, F.ch_sk);
	st = ig_state_new();
	cr_assert_not_null(st);
	for (int i = 0; i < NDEV; i++) {
		tu_seed_keypair(dev_pk[i], dev_sk[i], (uint8_t)(16 * (i + 1)));
		fx_enroll(st, devs[i], IG_ROLE_DEVICE, dev_pk[i]);
		F.online[i] = true;
	}
	tu_seed_keypair(dev_pk[NDEV], dev_sk[NDEV], 0x70);
	uint8_t apk[32], ask[64];
	tu_seed_keypair(apk, ask, 0x90);
	fx_enroll(st, "an1", IG_ROLE_ANALYST, apk);
	set_policy(POLICY_KP);
}

static void teardown(void)
{
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	free(F.statement);
	ig_policy_free(F.policy);
	ig_state_free(st);
}

TestSuite(svc_kp, .init = setup, .fini = teardown, .timeout = 60);

static ig_decision take(void)
{
	cr_assert_gt(F.nq, 0, "no decision was carried out");
	ig_decision d = F.q[0];
	memmove(&F.q[0], &F.q[1], (F.nq - 1) * sizeof F.q[0]);
	F.nq--;
	return d;
}

/* Applies an append to the state (as the carrier does) and reports it durable. */
static ig_decision durable(ig_decision *d, uint16_t type)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND);
	cr_assert_eq(d->rec_type, type, "append of type %u, expected %u", d->rec_type, type);
	fx_apply(st, d->rec_type, d->body, d->body_len);
	ig_record rec = {.type = type};
	ig_decision out;
	fx_complete(d, IG_OK, &rec, &out);
	return out;
}

/* Ticks (a second apart) until a decision is carried out. */
static void tick_until_decision(ig_svc_kp *k, uint64_t *now)
{
	ig_svc_kp_tick(k, *now += 1000);
	for (int i = 0; i < 400 && F.nq == 0; i++) {
		usleep(5000);
		ig_svc_kp_tick(k, *now += 1);
	}
	cr_assert_gt(F.nq, 0, "no decision after the worker had time");
}

static cJSON *request(const char *nonce)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "key_ring");
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	return o;
}

static void ask(ig_svc_kp *k, const char *id, const char *nonce, ig_decision *out, uint64_t now)
{
	cJSON *r = request(nonce);
	memset(out, 0, sizeof *out);
	ig_svc_kp_request(out, k, id, r, now);
	cJSON_Delete(r);
}

/* Starts epoch 1 (the tick's initial kp_epoch, made durable). */
static void start_epoch(ig_svc_kp *k, uint64_t *now)
{
	tick_until_decision(k, now);
	ig_decision d = take();
	ig_decision out = durable(&d, IG_REC_KP_EPOCH);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
}

/* Opens a key_ring message as device i would and checks it against the
 * library: the params, ids == ig_kp_ring_ids, keys == the pool keys, the
 * ring hash; returns the epoch. */
static uint64_t open_ring(const cJSON *m, int i, const char *nonce)
{
	cr_assert_str_eq(tu_json_str(m, "type"), "key_ring");
	const cJSON *n = cJSON_GetObjectItem(m, "nonce");
	if (nonce)
		cr_assert_str_eq(n ? n->valuestring : "", nonce);
	else
		cr_assert_null(n, "an unasked ring carries no nonce");
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_ch(&bk, dev_sk[i], F.ch_pk), IG_OK);
	uint8_t bnonce[24];
	cr_assert_eq(tu_unhex(bnonce, 24, tu_json_str(m, "box_nonce")), 24);
	const char *b64 = tu_json_str(m, "box");
	size_t cap = strlen(b64), blen = 0;
	uint8_t *box = malloc(cap), *plain = malloc(cap);
	cr_assert_eq(sodium_base642bin(box, cap, b64, strlen(b64), NULL, &blen, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_eq(crypto_box_open_easy_afternm(plain, box, blen, bnonce, bk.k), 0, "the box opens for its device");
	ig_kp_params p;
	uint32_t ids[1024];
	static uint8_t keys[1024][32];
	cr_assert_eq(ig_kp_ring_plain_parse(&p, ids, keys, plain, blen - crypto_box_MACBYTES, devs[i]), IG_OK);
	cr_assert_eq(p.epoch, (uint64_t)tu_json_num(m, "epoch"));
	cr_assert_eq(p.pool, (uint32_t)tu_json_num(m, "pool"));
	cr_assert_eq(p.ring, (uint32_t)tu_json_num(m, "ring"));
	cr_assert_eq(p.q, (uint8_t)tu_json_num(m, "q"));
	uint8_t seed[32], ps[32], want_seed[32];
	cr_assert_eq(tu_unhex(seed, 32, tu_json_str(m, "seed")), 32);
	cr_assert_eq(memcmp(seed, p.seed, 32), 0);
	ig_kp_pool_secret(ps, F.ch_sk, p.epoch);
	ig_kp_ring_seed(want_seed, ps);
	cr_assert_eq(memcmp(want_seed, p.seed, 32), 0, "the seed is the epoch's");
	for (uint32_t j = 0; j < p.ring; j++) {
		uint8_t key[32];
		ig_kp_pool_key(key, ps, ids[j]);
		cr_assert_eq(memcmp(key, keys[j], 32), 0, "key %u is pool key %u", j, ids[j]);
	}
	uint8_t h[32], got[32];
	ig_kp_ring_hash(h, p.epoch, devs[i], ids, (const uint8_t(*)[32])keys, p.ring);
	cr_assert_eq(tu_unhex(got, 32, tu_json_str(m, "ring_hash")), 32);
	cr_assert_eq(memcmp(h, got, 32), 0);
	uint8_t recorded[32];
	cr_assert(ig_kp_view_ring(ig_state_kp(st), devs[i], recorded), "the answer comes after its kp_ring");
	cr_assert_eq(memcmp(recorded, h, 32), 0);
	free(box);
	free(plain);
	return p.epoch;
}

static void expect_reply_refusal(const ig_decision *d, const char *to, const char *error, const char *nonce)
{
	cr_assert_eq(d->kind, IG_DECISION_REPLY);
	cr_assert_eq(d->n_replies, 1);
	cr_assert_str_eq(d->replies[0].to, to);
	const cJSON *b = d->replies[0].body;
	cr_assert_str_eq(tu_json_str(b, "type"), "error");
	cr_assert_str_eq(tu_json_str(b, "error"), error);
	cr_assert_str_eq(tu_json_str(b, "request"), "key_ring");
	cr_assert_str_eq(tu_json_str(b, "nonce"), nonce);
}

/* ---- refusals ------------------------------------------------------------ */

Test(svc_kp, refusals_without_a_broker)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	ig_decision d;

	ask(k, "ghost", "n1", &d, now);
	fx_expect_refusal(&d, "key_ring", "revoked", "n1", "not active");
	ig_decision_clear(&d);
	ask(k, "d1", NULL, &d, now);
	fx_expect_refusal(&d, "key_ring", "malformed", "", "nonce");
	ig_decision_clear(&d);
	ask(k, "d1", "has space", &d, now);
	fx_expect_refusal(&d, "key_ring", "malformed", "", NULL);
	ig_decision_clear(&d);
	ask(k, "an1", "n2", &d, now);
	fx_expect_refusal(&d, "key_ring", "not_allowed", "n2", "device");
	ig_decision_clear(&d);
	/* No epoch recorded yet; ten requests a minute per device. */
	for (int i = 0; i < 10; i++) {
		char n[16];
		snprintf(n, sizeof n, "r%d", i);
		ask(k, "d3", n, &d, now);
		fx_expect_refusal(&d, "key_ring", "epoch_pending", n, "not recorded yet");
		ig_decision_clear(&d);
	}
	ask(k, "d3", "r10", &d, now);
	fx_expect_refusal(&d, "key_ring", "rate_limited", "r10", NULL);
	ig_decision_clear(&d);
	ask(k, "d3", "r11", &d, now + 60000);
	fx_expect_refusal(&d, "key_ring", "epoch_pending", "r11", NULL);
	ig_decision_clear(&d);
	/* The epoch append in flight. */
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 1);
	ask(k, "d2", "n4", &d, now);
	fx_expect_refusal(&d, "key_ring", "epoch_pending", "n4", "being recorded");
	ig_decision_clear(&d);
	ig_decision e = take();
	ig_decision none = durable(&e, IG_REC_KP_EPOCH);
	cr_assert_eq(none.kind, IG_DECISION_NONE);
	/* Now accepted (computed on the worker). */
	ask(k, "d1", "n6", &d, now);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	/* Requests waiting for one ring are bounded. */
	int waiting = 0, limited = 0;
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof n, "w%d", i);
		ask(k, "d1", n, &d, now);
		if (d.kind == IG_DECISION_NONE)
			waiting++;
		else {
			fx_expect_refusal(&d, "key_ring", "rate_limited", n, "waiting");
			limited++;
		}
		ig_decision_clear(&d);
	}
	cr_assert_eq(waiting, 3);
	cr_assert_eq(limited, 2);

	/* Predistribution off: not_enabled, even with an epoch. */
	set_policy(POLICY_OFF);
	ask(k, "d1", "n5", &d, now);
	fx_expect_refusal(&d, "key_ring", "not_enabled", "n5", "predistribution");
	ig_decision_clear(&d);

	ig_svc_kp_counts c;
	ig_svc_kp_get_counts(k, &c);
	cr_assert_geq(c.refused, 8);
	ig_svc_kp_free(k);
}

/* ---- the first epoch ------------------------------------------------------- */

Test(svc_kp, no_epoch_while_the_policy_has_none)
{
	set_policy(POLICY_OFF);
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	for (int i = 0; i < 3; i++)
		ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 0, "no kp_epoch without predistribution");
	cr_assert_eq(F.statements, 0);
	ig_svc_kp_free(k);
}

Test(svc_kp, initial_epoch_and_signed_statement)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	ig_svc_kp_tick(k, now);
	cr_assert_eq(F.nq, 1);
	ig_decision d = take();
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	ig_kp_epoch_rec rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_epoch_decode(d.body, d.body_len, &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.epoch, 1);
	cr_assert_eq(rec.pool, 1000);
	cr_assert_eq(rec.ring, 30);
	cr_assert_eq(rec.q, 1);
	cr_assert_str_eq(rec.reason, "initial");
	cr_assert_str_eq(rec.by, "c1");
	uint8_t ps[32], seed[32];
	ig_kp_pool_secret(ps, F.ch_sk, 1);
	ig_kp_ring_seed(seed, ps);
	cr_assert_eq(memcmp(rec.seed, seed, 32), 0);
	/* One at a time: the next tick does not append another. */
	ig_svc_kp_tick(k, now += 2000);
	cr_assert_eq(F.nq, 0);
	cr_assert_eq(F.statements, 0, "no statement before an epoch is durable");
	ig_decision out = durable(&d, IG_REC_KP_EPOCH);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	cr_assert_eq(F.statements, 1, "the statement is published once the epoch is durable");
	ig_kp_revoked r;
	cr_assert_eq(ig_kp_revoked_parse(&r, (const uint8_t *)F.statement, strlen(F.statement), F.ch_pk, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(r.params.epoch, 1);
	cr_assert_eq(r.n_ids, 0);
	cr_assert_eq(r.serial, ig_kp_view_serial(ig_state_kp(st)));
	cr_assert_str_eq(r.cluster, "c1");
	ig_kp_revoked_free(&r);
	/* Unchanged: not published again. */
	ig_svc_kp_tick(k, now += 2000);
	cr_assert_eq(F.statements, 1);
	ig_svc_kp_free(k);
}

/* ---- dealing ------------------------------------------------------------------ */

Test(svc_kp, ring_answered_once_its_record_is_durable)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d;
	ask(k, "d1", "abc", &d, now);
	cr_assert_eq(d.kind, IG_DECISION_NONE, "the ring is computed on the worker, not answered here");
	/* A second request meanwhile waits for the same ring. */
	ask(k, "d1", "def", &d, now);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	tick_until_decision(k, &now);
	ig_decision app = take();
	cr_assert_eq(app.kind, IG_DECISION_APPEND, "kp_ring first, no answer yet");
	ig_kp_ring_rec rr;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_ring_decode(app.body, app.body_len, &rr, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(rr.id, "d1");
	cr_assert_eq(rr.epoch, 1);
	ig_decision out = durable(&app, IG_REC_KP_RING);
	cr_assert_eq(out.kind, IG_DECISION_REPLY);
	cr_assert_eq(out.n_replies, 2);
	cr_assert_str_eq(out.replies[0].to, "d1");
	open_ring(out.replies[0].body, 0, "abc");
	open_ring(out.replies[1].body, 0, "def");
	cr_assert_eq(memcmp(tu_json_str(out.replies[0].body, "ring_hash"), tu_json_str(out.replies[1].body, "ring_hash"),
	                    64), 0);
	ig_decision_clear(&out);

	/* Asked again: the ledger has the ring, so the answer comes at once
	 * after the worker, with no second kp_ring. */
	ask(k, "d1", "ghi", &d, now);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	tick_until_decision(k, &now);
	ig_decision again = take();
	cr_assert_eq(again.kind, IG_DECISION_REPLY);
	open_ring(again.replies[0].body, 0, "ghi");
	ig_decision_clear(&again);
	cr_assert_eq(ig_kp_view_rings(ig_state_kp(st)), 1);

	ig_svc_kp_counts c;
	ig_svc_kp_get_counts(k, &c);
	cr_assert_eq(c.dealt, 3);
	cr_assert_eq(c.rings_recorded, 1);
	cJSON *stats = cJSON_CreateObject();
	ig_svc_kp_stats(k, stats);
	const cJSON *s = cJSON_GetObjectItem(stats, "kp");
	cr_assert_eq(tu_json_num(s, "epoch"), 1);
	cr_assert_eq(tu_json_num(s, "rings"), 1);
	cr_assert_eq(tu_json_num(s, "dealt"), 3);
	cr_assert_eq(tu_json_num(s, "requests"), 3);
	cJSON_Delete(stats);
	ig_svc_kp_free(k);
}

Test(svc_kp, disk_failures)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d, out;
	ask(k, "d1", "a1", &d, now);
	tick_until_decision(k, &now);
	d = take();
	fx_complete(&d, IG_ERR_IO, NULL, &out);
	expect_reply_refusal(&out, "d1", "storage_failed", "a1");
	ig_decision_clear(&out);
	cr_assert(!ig_kp_view_ring(ig_state_kp(st), "d1", NULL));

	ask(k, "d2", "a2", &d, now);
	tick_until_decision(k, &now);
	d = take();
	fx_complete(&d, IG_ERR_UNKNOWN, NULL, &out);
	expect_reply_refusal(&out, "d2", "outcome_unknown", "a2");
	ig_decision_clear(&out);
	/* Nothing more is appended until a restart: a second kp_ring for d2
	 * could follow one that was written after all. */
	ask(k, "d3", "a3", &d, now);
	tick_until_decision(k, &now);
	d = take();
	expect_reply_refusal(&d, "d3", "storage_failed", "a3");
	ig_decision_clear(&d);
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	ig_decision rot;
	memset(&rot, 0, sizeof rot);
	cr_assert(!ig_svc_kp_rotate(&rot, k, "admin", NULL, NULL, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "storage_failed");
	ig_svc_kp_free(k);
}

Test(svc_kp, revoked_while_computed)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d;
	ask(k, "d2", "x", &d, now);
	fx_revoke(st, "d2");
	tick_until_decision(k, &now);
	d = take();
	expect_reply_refusal(&d, "d2", "revoked", "x");
	ig_decision_clear(&d);
	ig_svc_kp_free(k);
}

Test(svc_kp, unasked_ring_at_enrolment)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	/* d4 enrolled while online: kp_ring, then the ring without a nonce. */
	F.online[NDEV] = true;
	uint8_t body[512];
	size_t len = tu_enroll_body(body, sizeof body, "d4", IG_ROLE_DEVICE, dev_pk[NDEV], "admin");
	fx_apply(st, IG_REC_ENROLL, body, len);
	ig_record rec = {.type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)len};
	ig_svc_kp_on_record(k, &rec);
	ig_svc_kp_on_record(k, &rec);   /* harmless to repeat */
	tick_until_decision(k, &now);
	cr_assert_eq(F.nq, 1);
	ig_decision d = take();
	ig_decision out = durable(&d, IG_REC_KP_RING);
	cr_assert_eq(out.kind, IG_DECISION_REPLY);
	cr_assert_eq(out.n_replies, 1);
	cr_assert_str_eq(out.replies[0].to, "d4");
	/* open_ring checks device names by index; d4 is index NDEV. */
	cr_assert_str_eq(tu_json_str(out.replies[0].body, "type"), "key_ring");
	cr_assert_null(cJSON_GetObjectItem(out.replies[0].body, "nonce"));
	ig_decision_clear(&out);

	/* An analyst's enrolment deals nothing. */
	uint8_t apk[32], ask_[64];
	tu_seed_keypair(apk, ask_, 0xa0);
	len = tu_enroll_body(body, sizeof body, "an2", IG_ROLE_ANALYST, apk, "admin");
	fx_apply(st, IG_REC_ENROLL, body, len);
	rec.body_len = (uint32_t)len;
	ig_svc_kp_on_record(k, &rec);
	ig_svc_kp_tick(k, now += 1000);
	usleep(20000);
	ig_svc_kp_tick(k, now += 1);
	cr_assert_eq(F.nq, 0);
	ig_svc_kp_free(k);
}

Test(svc_kp, unasked_ring_for_an_offline_device_is_recorded_not_sent)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	F.online[1] = false;
	uint8_t body[512];
	size_t len = tu_enroll_body(body, sizeof body, "d4", IG_ROLE_DEVICE, dev_pk[NDEV], "admin");
	fx_apply(st, IG_REC_ENROLL, body, len);
	ig_record rec = {.type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)len};
	ig_svc_kp_on_record(k, &rec);   /* d4 is offline (F.online[NDEV] false) */
	tick_until_decision(k, &now);
	ig_decision d = take();
	ig_decision out = durable(&d, IG_REC_KP_RING);
	cr_assert_eq(out.kind, IG_DECISION_NONE, "nothing to send to an offline device");
	cr_assert(ig_kp_view_ring(ig_state_kp(st), "d4", NULL));
	ig_svc_kp_free(k);
}

/* ---- retiring a revoked ring ---------------------------------------------------- */

/* Deals device i's ring (request, worker, durable kp_ring). */
static void deal(ig_svc_kp *k, int i, uint64_t *now)
{
	ig_decision d;
	ask(k, devs[i], "deal", &d, *now);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	tick_until_decision(k, now);
	d = take();
	ig_decision out = durable(&d, IG_REC_KP_RING);
	cr_assert_eq(out.kind, IG_DECISION_REPLY);
	open_ring(out.replies[0].body, i, "deal");
	ig_decision_clear(&out);
}

Test(svc_kp, revoking_a_ring_holder_retires_its_ids)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	deal(k, 0, &now);
	deal(k, 1, &now);
	int before = F.statements;

	/* The revocation takes effect before its record is durable: nothing
	 * is appended then (kp_compromised must follow the revoke record). */
	cr_assert_eq(ig_registry_mark_revoked(ig_state_registry(st), "d1", 0), IG_OK);
	ig_svc_kp_on_revoke(k, "d1");
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 0, "no kp_compromised before the revoke record is durable");

	fx_revoke(st, "d1");
	ig_svc_kp_on_revoke(k, "d1");
	ig_svc_kp_on_revoke(k, "d1");   /* harmless to repeat */
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 1);
	ig_decision d = take();
	ig_kp_compromised_rec *rec = calloc(1, sizeof *rec);
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_compromised_decode(d.body, d.body_len, rec, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(rec->id, "d1");
	cr_assert_eq(rec->epoch, 1);
	ig_kp_params p;
	cr_assert(ig_kp_view_params(ig_state_kp(st), &p));
	uint32_t ids[30];
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "d1", p.pool, p.ring), IG_OK);
	cr_assert_eq(rec->id_count, 30);
	cr_assert_eq(memcmp(rec->ids, ids, sizeof ids), 0, "the ids are d1's ring");
	free(rec);
	ig_decision out = durable(&d, IG_REC_KP_COMPROMISED);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	cr_assert_eq(F.statements, before + 1, "republished once kp_compromised is durable");
	ig_kp_revoked r;
	cr_assert_eq(ig_kp_revoked_parse(&r, (const uint8_t *)F.statement, strlen(F.statement), F.ch_pk, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(r.n_ids, 30);
	cr_assert_eq(memcmp(r.ids, ids, sizeof ids), 0);
	cr_assert_eq(r.n_devices, 1);
	cr_assert_str_eq(r.devices[0], "d1");
	cr_assert_eq(r.serial, ig_kp_view_serial(ig_state_kp(st)));
	ig_kp_revoked_free(&r);
	/* The statement does not verify under another key. */
	uint8_t other_pk[32], other_sk[64];
	ig_keyfile_generate(other_pk, other_sk);
	cr_assert_eq(ig_kp_revoked_parse(&r, (const uint8_t *)F.statement, strlen(F.statement), other_pk, &err),
	             IG_ERR_CRYPTO);

	/* Done once: another tick appends nothing. */
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 0);

	cJSON *s = cJSON_CreateObject();
	ig_svc_kp_status_json(k, s);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "enabled")));
	cr_assert_eq(tu_json_num(s, "epoch"), 1);
	cr_assert_eq(tu_json_num(s, "rings"), 2);
	cr_assert_eq(tu_json_num(s, "compromised_ids"), 30);
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(s, "compromised_devices"), 0)->valuestring, "d1");
	cr_assert_eq(strlen(tu_json_str(s, "seed")), 64);
	cJSON_Delete(s);
	ig_svc_kp_free(k);
}

Test(svc_kp, revoked_before_start_is_retired_at_start)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	deal(k, 2, &now);
	ig_svc_kp_free(k);
	fx_revoke(st, "d3");   /* while no service ran (a sealed cluster head, say) */
	k = svc_new();
	tick_until_decision(k, &now);
	ig_decision d = take();
	ig_decision out = durable(&d, IG_REC_KP_COMPROMISED);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	cr_assert(ig_kp_view_compromised_device(ig_state_kp(st), "d3"));
	ig_svc_kp_free(k);
}

/* ---- rotate, policy change ------------------------------------------------------- */

static void rotate_done(void *ctx, const char *error, const char *message)
{
	(void)ctx;
	F.rotate_done++;
	F.rotate_error = error;
	snprintf(F.rotate_msg, sizeof F.rotate_msg, "%s", message);
}

Test(svc_kp, rotate)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	deal(k, 0, &now);
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	ig_decision d;
	memset(&d, 0, sizeof d);
	cr_assert(ig_svc_kp_rotate(&d, k, "admin", rotate_done, NULL, &error, msg, sizeof msg), "%s", msg);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	ig_kp_epoch_rec rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_epoch_decode(d.body, d.body_len, &rec, &err), IG_OK);
	cr_assert_eq(rec.epoch, 2);
	cr_assert_str_eq(rec.reason, "rotate");
	cr_assert_str_eq(rec.by, "admin");
	/* Busy while it is in flight; a key_ring waits too. */
	ig_decision d2;
	memset(&d2, 0, sizeof d2);
	cr_assert(!ig_svc_kp_rotate(&d2, k, "admin", rotate_done, NULL, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "busy");
	ig_decision r;
	ask(k, "d2", "w", &r, now);
	fx_expect_refusal(&r, "key_ring", "epoch_pending", "w", NULL);
	ig_decision_clear(&r);
	cr_assert_eq(F.rotate_done, 0, "answered only once durable");
	int before = F.statements;
	ig_decision out = durable(&d, IG_REC_KP_EPOCH);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	cr_assert_eq(F.rotate_done, 1);
	cr_assert_null(F.rotate_error);
	cr_assert_not_null(strstr(F.rotate_msg, "epoch 2"), "%s", F.rotate_msg);
	cr_assert_eq(F.statements, before + 1, "the new epoch's statement is published");
	cr_assert_eq(ig_kp_view_rings(ig_state_kp(st)), 0, "a new epoch starts with no rings");
	/* d1 gets a new ring of epoch 2. */
	ig_decision a;
	ask(k, "d1", "e2", &a, now + 120000);
	cr_assert_eq(a.kind, IG_DECISION_NONE);
	tick_until_decision(k, &now);
	a = take();
	out = durable(&a, IG_REC_KP_RING);
	cr_assert_eq(open_ring(out.replies[0].body, 0, "e2"), 2);
	ig_decision_clear(&out);

	/* A failed append is reported as such. */
	memset(&d, 0, sizeof d);
	cr_assert(ig_svc_kp_rotate(&d, k, "admin", rotate_done, NULL, &error, msg, sizeof msg));
	fx_complete(&d, IG_ERR_NOSPACE, NULL, &out);
	cr_assert_eq(F.rotate_done, 2);
	cr_assert_str_eq(F.rotate_error, "storage_failed");

	set_policy(POLICY_OFF);
	memset(&d, 0, sizeof d);
	cr_assert(!ig_svc_kp_rotate(&d, k, "admin", rotate_done, NULL, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "not_enabled");
	ig_svc_kp_free(k);
}

Test(svc_kp, policy_change_starts_a_new_epoch)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	set_policy(POLICY_KP2);
	ig_decision r;
	ask(k, "d1", "p", &r, now);
	fx_expect_refusal(&r, "key_ring", "epoch_pending", "p", "policy");
	ig_decision_clear(&r);
	tick_until_decision(k, &now);
	ig_decision d = take();
	ig_kp_epoch_rec rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_epoch_decode(d.body, d.body_len, &rec, &err), IG_OK);
	cr_assert_eq(rec.epoch, 2);
	cr_assert_eq(rec.pool, 2000);
	cr_assert_eq(rec.ring, 40);
	cr_assert_eq(rec.q, 2);
	cr_assert_str_eq(rec.reason, "policy");
	ig_decision out = durable(&d, IG_REC_KP_EPOCH);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	ig_svc_kp_tick(k, now += 2000);
	cr_assert_eq(F.nq, 0, "the policy's epoch is current now");
	ig_svc_kp_free(k);
}

/* Nothing for the old epoch is appended behind a new kp_epoch: it would be
 * applied after it and name an epoch that is no longer current. */
Test(svc_kp, nothing_for_the_old_epoch_behind_a_new_one)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	deal(k, 1, &now);
	ig_decision d;
	ask(k, "d1", "old", &d, now);
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	ig_decision rot;
	memset(&rot, 0, sizeof rot);
	cr_assert(ig_svc_kp_rotate(&rot, k, "admin", rotate_done, NULL, &error, msg, sizeof msg), "%s", msg);
	/* d2 is revoked while the epoch append is in flight. */
	fx_revoke(st, "d2");
	ig_svc_kp_on_revoke(k, "d2");
	tick_until_decision(k, &now);
	d = take();
	expect_reply_refusal(&d, "d1", "epoch_pending", "old");
	ig_decision_clear(&d);
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 0, "no kp_compromised behind the epoch append");
	ig_decision out = durable(&rot, IG_REC_KP_EPOCH);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 0, "d2 has no ring in the new epoch: nothing to retire");
	ig_svc_kp_free(k);
}

/* Revoked while its kp_ring is being written: the record stands (it comes
 * first in the log), no ring is sent, and once the revocation is durable
 * the ring's ids are retired. */
Test(svc_kp, revoked_while_its_record_is_written)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d;
	ask(k, "d1", "race", &d, now);
	tick_until_decision(k, &now);
	d = take();
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_assert_eq(ig_registry_mark_revoked(ig_state_registry(st), "d1", 0), IG_OK);   /* the admin command */
	ig_svc_kp_on_revoke(k, "d1");
	ig_decision out = durable(&d, IG_REC_KP_RING);
	expect_reply_refusal(&out, "d1", "revoked", "race");
	ig_decision_clear(&out);
	cr_assert(ig_kp_view_ring(ig_state_kp(st), "d1", NULL));
	fx_revoke(st, "d1");   /* the revoke record, durable */
	ig_svc_kp_on_revoke(k, "d1");
	ig_svc_kp_tick(k, now += 1000);
	cr_assert_eq(F.nq, 1);
	d = take();
	out = durable(&d, IG_REC_KP_COMPROMISED);
	cr_assert_eq(out.kind, IG_DECISION_NONE);
	cr_assert(ig_kp_view_compromised_device(ig_state_kp(st), "d1"));
	ig_svc_kp_free(k);
}

/* ---- a shared ledger: another broker's key-ring record came first -------- */

Test(svc_kp, a_ring_recorded_first_through_another_broker_is_sent)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d, out;
	ask(k, "d1", "a1", &d, now);
	tick_until_decision(k, &now);
	d = take();
	cr_assert_eq(d.rec_type, IG_REC_KP_RING);
	/* The device asked through another broker too, whose kp_ring (the same
	 * ring: a function of the epoch and the id) was followed first. */
	fx_apply(st, d.rec_type, d.body, d.body_len);
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &out);
	cr_assert_eq(out.kind, IG_DECISION_REPLY, "kind %d", out.kind);
	open_ring(out.replies[0].body, 0, "a1");
	ig_decision_clear(&out);
	ig_svc_kp_counts c;
	ig_svc_kp_get_counts(k, &c);
	cr_assert_eq(c.rings_recorded, 0, "this broker recorded nothing");
	ig_svc_kp_free(k);
}

Test(svc_kp, an_epoch_started_first_through_another_broker_is_a_conflict_and_its_ring_epoch_pending)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision ring, out;
	ask(k, "d2", "a2", &ring, now);
	tick_until_decision(k, &now);
	ring = take();
	cr_assert_eq(ring.rec_type, IG_REC_KP_RING);
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	ig_decision rot;
	memset(&rot, 0, sizeof rot);
	cr_assert(ig_svc_kp_rotate(&rot, k, "admin", rotate_done, NULL, &error, msg, sizeof msg), "%s", msg);
	/* Another broker's kp_epoch 2 (the same record: the epoch's seed comes
	 * from the shared ch.key) reached the ledger first. */
	fx_apply(st, rot.rec_type, rot.body, rot.body_len);
	fx_complete(&rot, IG_ERR_CONFLICT, NULL, &out);
	ig_decision_clear(&out);
	cr_assert_eq(F.rotate_done, 1);
	cr_assert_str_eq(F.rotate_error, "conflict");
	cr_assert_not_null(strstr(F.rotate_msg, "another broker"), "%s", F.rotate_msg);
	fx_complete(&ring, IG_ERR_CONFLICT, NULL, &out);
	expect_reply_refusal(&out, "d2", "epoch_pending", "a2");
	ig_decision_clear(&out);
	/* Not stuck: the next request is recorded in the new epoch. */
	ask(k, "d2", "a3", &ring, now + 120000);
	tick_until_decision(k, &now);
	ring = take();
	cr_assert_eq(ring.kind, IG_DECISION_APPEND);
	out = durable(&ring, IG_REC_KP_RING);
	cr_assert_eq(open_ring(out.replies[0].body, 1, "a3"), 2);
	ig_decision_clear(&out);
	ig_svc_kp_free(k);
}

Test(svc_kp, an_unreachable_database_is_storage_failed_and_does_not_stop_the_service)
{
	ig_svc_kp *k = svc_new();
	uint64_t now = 1000000;
	start_epoch(k, &now);
	ig_decision d, out;
	ask(k, "d1", "a1", &d, now);
	tick_until_decision(k, &now);
	d = take();
	fx_complete(&d, IG_ERR_UNAVAILABLE, NULL, &out);
	expect_reply_refusal(&out, "d1", "storage_failed", "a1");
	cr_assert_not_null(strstr(tu_json_str(out.replies[0].body, "message"), "unreachable"));
	ig_decision_clear(&out);
	ask(k, "d1", "a2", &d, now + 120000);
	tick_until_decision(k, &now);
	d = take();
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "the retry is recorded");
	ig_decision_clear(&d);
	ig_svc_kp_free(k);
}
