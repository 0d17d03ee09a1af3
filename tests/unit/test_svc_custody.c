/*
 * test_svc_custody.c: the custody service's decisions (lib/custody/svc_custody.c)
 * without a broker.
 *
 * Why this exists: the integration test shows custody end to end with real
 * agents; this one drives the service step by step the way the plugin does
 * (records applied to an ig_state, done called with the ledger's verdict,
 * its worker's results collected by ticks) and plays the holders with the
 * crypto helpers, so each rule can be checked on its own: a deal's boxes
 * open only for their holder and verify, activation waits for every ack,
 * acks and shares of the wrong epoch or index are refused, seal removes
 * ch.key only after its record, a sealed start unseals at k good shares
 * and names the holder of a tampered one, and a rotation keeps C_0.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_custody.h"
#include "ig_custody_approve.h"
#include "ig_keyfile.h"
#include "ig_svc_custody.h"
#include "ig_vss.h"
#include "svc_fixture.h"

#define NDEV 3
#define QMAX 64

static const char *const devs[NDEV] = {"d1", "d2", "d3"};

typedef struct fake {
	bool online[NDEV];
	bool sealed;
	uint8_t ch_pk[32], ch_sk[64];
	uint8_t unsealed_sk[64];
	int unseals;
	ig_decision q[QMAX];
	size_t nq;
	char events[QMAX][32];
	char event_holder[QMAX][IG_ID_MAX + 1];
	char event_message[QMAX][320];
	size_t nev;
	char *state;
	const char *seal_error;
	bool seal_done;
	uint32_t roles;   /* what env_holder_roles answers (the policy's holder_roles) */
} fake;

static fake F;
static ig_state *st;
static ig_pool pool;
static uint8_t dev_pk[NDEV][32], dev_sk[NDEV][64];
static char dir[512];

static int dev_index(const char *id)
{
	for (int i = 0; i < NDEV; i++)
		if (!strcmp(devs[i], id))
			return i;
	return -1;
}

static bool env_online(void *ctx, const char *id)
{
	(void)ctx;
	int i = dev_index(id);
	return i >= 0 && F.online[i];
}
static bool env_sealed(void *ctx) { (void)ctx; return F.sealed; }
static const uint8_t *env_ch_sk(void *ctx) { (void)ctx; return F.sealed ? NULL : F.ch_sk; }
static int env_unseal(void *ctx, const uint8_t sk[64], ig_error *err)
{
	(void)ctx;
	(void)err;
	memcpy(F.unsealed_sk, sk, 64);
	F.unseals++;
	F.sealed = false;
	return IG_OK;
}
static void env_carry_out(void *ctx, ig_decision *d)
{
	(void)ctx;
	/* Chains are flattened: each link is queued on its own. */
	while (d) {
		cr_assert_lt(F.nq, QMAX);
		ig_decision *next = d->next;
		F.q[F.nq] = *d;
		F.q[F.nq].next = NULL;
		F.nq++;
		memset(d, 0, sizeof *d);
		d = next;
	}
}
static void env_event(void *ctx, cJSON *ev)
{
	(void)ctx;
	if (F.nev < QMAX) {
		snprintf(F.events[F.nev], sizeof F.events[0], "%s", tu_json_str(ev, "event"));
		const cJSON *h = cJSON_GetObjectItem(ev, "holder");
		snprintf(F.event_holder[F.nev], sizeof F.event_holder[0], "%s", h ? h->valuestring : "");
		const cJSON *m = cJSON_GetObjectItem(ev, "message");
		snprintf(F.event_message[F.nev], sizeof F.event_message[0], "%s", cJSON_IsString(m) ? m->valuestring : "");
		F.nev++;
	}
	cJSON_Delete(ev);
}
static uint32_t env_holder_roles(void *ctx)
{
	(void)ctx;
	return F.roles;
}
static void env_publish(void *ctx, const char *json)
{
	(void)ctx;
	free(F.state);
	F.state = strdup(json);
}

static bool admin_mode;   /* the next svc_new_n is in admin unseal mode */

static bool env_ledger_head(void *ctx, uint64_t *size, uint8_t root[32])
{
	(void)ctx;
	*size = 5;
	memset(root, 0x44, 32);
	return true;
}

static ig_svc_custody *svc_new_n(unsigned n)
{
	ig_svc_custody_config cfg = {.k = 2, .n = n, .rotate_s = 86400, .holder_timeout_s = 3600, .deal_timeout_s = 60,
	                             .unseal_admin = admin_mode, .cluster = "c1"};
	snprintf(cfg.ledger_dir, sizeof cfg.ledger_dir, "%s", dir);
	memcpy(cfg.ch_pk, F.ch_pk, 32);
	ig_svc_custody_env env = {.online = env_online, .sealed = env_sealed, .ch_sk = env_ch_sk, .unseal = env_unseal,
	                          .carry_out = env_carry_out, .event = env_event, .publish_state = env_publish,
	                          .holder_roles = env_holder_roles, .ledger_head = env_ledger_head};
	ig_error err = {0};
	ig_svc_custody *c = ig_svc_custody_new(st, &pool, &cfg, &env, &err);
	cr_assert_not_null(c, "%s", err.msg);
	return c;
}

static ig_svc_custody *svc_new(void)
{
	return svc_new_n(3);
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	memset(&F, 0, sizeof F);
	tu_tempdir(dir, sizeof dir, "svc-custody", 1);
	ig_keyfile_generate(F.ch_pk, F.ch_sk);
	char path[600];
	snprintf(path, sizeof path, "%s/ch.key", dir);
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_write(path, F.ch_sk, false, &err), IG_OK, "%s", err.msg);
	st = ig_state_new();
	cr_assert_not_null(st);
	memset(&pool, 0, sizeof pool);
	for (int i = 0; i < NDEV; i++) {
		tu_seed_keypair(dev_pk[i], dev_sk[i], (uint8_t)(16 * (i + 1)));
		fx_enroll(st, devs[i], IG_ROLE_DEVICE, dev_pk[i]);
		F.online[i] = true;
	}
	F.roles = 1u << IG_ROLE_DEVICE;
	admin_mode = false;
}

static void teardown(void)
{
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	free(F.state);
	ig_state_free(st);
}

TestSuite(svc_custody, .init = setup, .fini = teardown, .timeout = 60);

/* Takes the oldest queued decision. */
static ig_decision take(void)
{
	cr_assert_gt(F.nq, 0, "no decision was carried out; state %s", F.state ? F.state : "-");
	ig_decision d = F.q[0];
	memmove(&F.q[0], &F.q[1], (F.nq - 1) * sizeof F.q[0]);
	F.nq--;
	return d;
}

/* Takes the oldest queued append, dropping the replies queued before it.
 * While the worker computes a deal's shares the tests advance the clock a
 * second per tick, so on a loaded machine a restarted service may ask the
 * holders for S again before the deal is ready; those asks are replies,
 * and what the caller waits for is the deal's append. */
static ig_decision take_append(void)
{
	ig_decision d = take();
	while (d.kind == IG_DECISION_REPLY && F.nq > 0) {
		ig_decision_clear(&d);
		d = take();
	}
	return d;
}

/* Applies an append to the state and reports it durable; returns its done's output. */
static ig_decision durable(ig_decision *d, uint16_t type)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND);
	cr_assert_eq(d->rec_type, type);
	fx_apply(st, d->rec_type, d->body, d->body_len);
	ig_record rec = {.type = type};
	ig_decision out;
	fx_complete(d, IG_OK, &rec, &out);
	return out;
}

static bool has_event(const char *name, const char *holder)
{
	for (size_t i = 0; i < F.nev; i++)
		if (!strcmp(F.events[i], name) && (!holder || !strcmp(F.event_holder[i], holder)))
			return true;
	return false;
}

/* Ticks (a second apart in service time) until the event shows, or fails. */
static void tick_until(ig_svc_custody *c, uint64_t *now, const char *event)
{
	for (int i = 0; i < 500 && !has_event(event, NULL); i++) {
		*now += 10;
		ig_svc_custody_tick(c, *now);
		usleep(2000);
	}
	cr_assert(has_event(event, NULL), "no %s event", event);
}

/* Ticks a second on, and again once the worker had time to finish what
 * that tick handed it (a deal's shares are computed there). */
static void tick_settle(ig_svc_custody *c, uint64_t *now)
{
	ig_svc_custody_tick(c, *now += 1000);
	usleep(10000);
	ig_svc_custody_tick(c, *now += 1);
}

/* Ticks until a decision is carried out (a deal computed on the worker). */
static void tick_until_decision(ig_svc_custody *c, uint64_t *now)
{
	ig_svc_custody_tick(c, *now += 1000);
	for (int i = 0; i < 400 && F.nq == 0; i++) {
		usleep(5000);
		ig_svc_custody_tick(c, *now += 1);
	}
}

static void status(ig_svc_custody *c, int i, uint64_t now)
{
	const char *s = "{\"id\":\"x\",\"state\":\"online\",\"uptime_s\":100,\"battery\":{\"percent\":80,\"mains\":false}}";
	ig_decision none = {0};
	ig_svc_custody_status_message(&none, c, devs[i], s, strlen(s), now);
	cr_assert_eq(none.kind, IG_DECISION_NONE);
}

static cJSON *ack(const char *nonce, uint64_t epoch, unsigned index)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "custody_ack");
	cJSON_AddStringToObject(o, "nonce", nonce);
	cJSON_AddNumberToObject(o, "epoch", (double)epoch);
	cJSON_AddNumberToObject(o, "index", index);
	return o;
}

/* Holder state as the test keeps it. */
static uint8_t share_of[NDEV][32];
static unsigned index_of[NDEV];
static bool dealt_to[NDEV];   /* in the newest deal */

/* Opens each custody_deal in out as its holder would and checks it. */
static void open_deals_n(ig_decision *out, uint64_t epoch, uint8_t C[][32], unsigned *k, unsigned n)
{
	cr_assert_eq(out->kind, IG_DECISION_REPLY);
	cr_assert_eq(out->n_replies, n);
	memset(dealt_to, 0, sizeof dealt_to);
	for (size_t r = 0; r < out->n_replies; r++) {
		int i = dev_index(out->replies[r].to);
		cr_assert_geq(i, 0);
		cJSON *m = out->replies[r].body;
		cr_assert_str_eq(tu_json_str(m, "type"), "custody_deal");
		cr_assert_eq((uint64_t)tu_json_num(m, "epoch"), epoch);
		*k = (unsigned)tu_json_num(m, "k");
		unsigned idx = (unsigned)tu_json_num(m, "index");
		cJSON *cs = cJSON_GetObjectItem(m, "commitments");
		for (unsigned j = 0; j < *k; j++)
			tu_unhex(C[j], 32, cJSON_GetArrayItem(cs, (int)j)->valuestring);
		uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
		size_t blen = 0;
		tu_unhex(nonce, sizeof nonce, tu_json_str(m, "box_nonce"));
		cr_assert_eq(sodium_base642bin(box, sizeof box, tu_json_str(m, "box"), strlen(tu_json_str(m, "box")), NULL,
		                               &blen, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
		ig_box_key bk, other;
		cr_assert_eq(ig_keybox_key_for_ch(&bk, dev_sk[i], F.ch_pk), IG_OK);
		cr_assert_eq(ig_keybox_key_for_ch(&other, dev_sk[(i + 1) % NDEV], F.ch_pk), IG_OK);
		ig_custody_deal d;
		cr_assert_neq(ig_custody_deal_open(&d, box, blen, nonce, &other), IG_OK, "another holder opened the box");
		cr_assert_eq(ig_custody_deal_open(&d, box, blen, nonce, &bk), IG_OK);
		cr_assert_eq(d.epoch, epoch);
		cr_assert_eq(d.index, idx);
		cr_assert_eq(ig_vss_verify(d.share, idx, (const uint8_t(*)[32])C, *k), IG_OK);
		memcpy(share_of[i], d.share, 32);
		index_of[i] = idx;
		dealt_to[i] = true;
	}
}

static void open_deals(ig_decision *out, uint64_t epoch, uint8_t C[][32], unsigned *k)
{
	open_deals_n(out, epoch, C, k, 3);
}

/* Deals an epoch to d1..d3 and makes it active; returns C_0 in c0. */
static void deal_active(ig_svc_custody *c, uint64_t *now, uint64_t epoch, uint8_t c0[32])
{
	for (int i = 0; i < 40 && F.nq == 0; i++) {
		*now += 1000;
		ig_svc_custody_tick(c, *now);
		usleep(5000);   /* the shares are computed on the worker */
	}
	for (int i = 0; i < 400 && F.nq == 0; i++) {
		ig_svc_custody_tick(c, *now += 1);
		usleep(5000);
	}
	ig_decision d = take_append();
	ig_decision out = durable(&d, IG_REC_CUSTODY_EPOCH);
	uint8_t C[IG_VSS_MAX][32];
	unsigned k = 0;
	open_deals(&out, epoch, C, &k);
	cr_assert_eq(k, 2);
	memcpy(c0, C[0], 32);
	ig_decision_clear(&out);

	/* Acks: the wrong index, an old epoch, then all three. */
	ig_decision r = {0};
	cJSON *a = ack("n-1", epoch, index_of[0] % 3 + 1);
	ig_svc_custody_ack(&r, c, devs[0], a, *now);
	cJSON_Delete(a);
	fx_expect_refusal(&r, "custody_ack", "not_holder", "n-1", NULL);
	ig_decision_clear(&r);
	a = ack("n-2", epoch + 1, index_of[0]);
	ig_svc_custody_ack(&r, c, devs[0], a, *now);
	cJSON_Delete(a);
	fx_expect_refusal(&r, "custody_ack", "not_dealing", "n-2", NULL);
	ig_decision_clear(&r);
	for (int i = 0; i < NDEV; i++) {
		memset(&r, 0, sizeof r);
		a = ack("n-3", epoch, index_of[i]);
		ig_svc_custody_ack(&r, c, devs[i], a, *now);
		cJSON_Delete(a);
		if (i < NDEV - 1) {
			cr_assert_eq(r.kind, IG_DECISION_NONE, "activated before every holder acked");
			continue;
		}
		ig_decision act = durable(&r, IG_REC_CUSTODY_ACTIVE);
		cr_assert_eq(act.kind, IG_DECISION_REPLY);
		cr_assert_eq(act.n_replies, 3);
		cr_assert_str_eq(tu_json_str(act.replies[0].body, "type"), "custody_active");
		ig_decision_clear(&act);
	}
	cr_assert_eq(ig_state_custody(st)->active.epoch, epoch);
}

/* A custody_share request from holder i for request req/pk. */
static cJSON *share_msg(int i, uint64_t epoch, const char *req_hex, const char *pk_hex, const uint8_t share[32])
{
	ig_custody_release r = {.epoch = epoch, .index = (uint8_t)index_of[i]};
	tu_unhex(r.request, 16, req_hex);
	memcpy(r.share, share, 32);
	uint8_t xpk[32], box[IG_CUSTODY_RELEASE_BOX_BYTES], nonce[24];
	tu_unhex(xpk, 32, pk_hex);
	cr_assert_eq(ig_custody_release_seal(box, nonce, &r, xpk, dev_sk[i]), IG_OK);
	char nonce_hex[49], b64[200];
	ig_hex_encode(nonce_hex, nonce, 24);
	sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "custody_share");
	cJSON_AddStringToObject(o, "nonce", "s-1");
	cJSON_AddNumberToObject(o, "epoch", (double)epoch);
	cJSON_AddNumberToObject(o, "index", index_of[i]);
	cJSON_AddStringToObject(o, "request", req_hex);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", b64);
	return o;
}

static void seal_done(void *ctx, const char *error, const char *message)
{
	(void)ctx;
	(void)message;
	F.seal_error = error;
	F.seal_done = true;
}

Test(svc_custody, deal_seal_sealed_start_bad_share_unseal_rotation)
{
	uint64_t now = 1767225600000ull;
	ig_svc_custody *c = svc_new();
	char path[600], sealed_path[600];
	snprintf(path, sizeof path, "%s/ch.key", dir);
	snprintf(sealed_path, sizeof sealed_path, "%s/ch.key.sealed", dir);

	/* Seal refused before an epoch is active. */
	ig_decision d = {0};
	const char *error = NULL;
	char msg[300];
	cr_assert_not(ig_svc_custody_seal(&d, c, "admin1", seal_done, NULL, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "no_epoch");

	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	uint8_t c0[32];
	deal_active(c, &now, 1, c0);
	tick_until(c, &now, "sealed_file");
	cr_assert_eq(access(sealed_path, F_OK), 0);
	struct stat sb;
	cr_assert_eq(stat(sealed_path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);

	/* Seal: the record first, then ch.key goes. */
	cr_assert(ig_svc_custody_seal(&d, c, "admin1", seal_done, NULL, &error, msg, sizeof msg), "%s", msg);
	cr_assert_eq(access(path, F_OK), 0, "ch.key removed before its record was durable");
	ig_decision none = durable(&d, IG_REC_CUSTODY_SEALED);
	ig_decision_clear(&none);
	for (int i = 0; i < 500 && !F.seal_done; i++) {
		ig_svc_custody_tick(c, now += 10);
		usleep(2000);
	}
	cr_assert(F.seal_done);
	cr_assert_null(F.seal_error);
	cr_assert_neq(access(path, F_OK), 0, "ch.key is still there");
	cr_assert(ig_state_custody(st)->sealed);
	ig_svc_custody_free(c);
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	F.nq = 0;

	/* A sealed start: every online holder is asked. */
	F.sealed = true;
	F.nev = 0;
	c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 3, "one custody_request per online holder");
	char req_hex[33] = "", pk_hex[65] = "";
	for (int i = 0; i < 3; i++) {
		ig_decision q = take();
		cr_assert_eq(q.kind, IG_DECISION_REPLY);
		cJSON *m = q.replies[0].body;
		cr_assert_str_eq(tu_json_str(m, "type"), "custody_request");
		cr_assert_eq(tu_json_num(m, "epoch"), 1);
		snprintf(req_hex, sizeof req_hex, "%s", tu_json_str(m, "request"));
		snprintf(pk_hex, sizeof pk_hex, "%s", tu_json_str(m, "pk"));
		ig_decision_clear(&q);
	}
	/* d1 lies: refused, named, no record yet (sealed), still sealed. */
	uint8_t wrong[32];
	memcpy(wrong, share_of[0], 32);
	wrong[0] ^= 1;
	ig_decision r = {0};
	cJSON *m = share_msg(0, 1, req_hex, pk_hex, wrong);
	ig_svc_custody_share(&r, c, "d1", m, now);
	cJSON_Delete(m);
	cr_assert_eq(r.kind, IG_DECISION_NONE);
	tick_until(c, &now, "bad_share");
	cr_assert(has_event("bad_share", "d1"));
	cr_assert_eq(F.nq, 0, "a record was appended while sealed");
	cr_assert(F.sealed);
	/* A share for another request, and one from a non-holder index. */
	m = share_msg(1, 1, "00112233445566778899aabbccddeeff", pk_hex, share_of[1]);
	ig_svc_custody_share(&r, c, "d2", m, now);
	cJSON_Delete(m);
	fx_expect_refusal(&r, "custody_share", "not_requested", "s-1", NULL);
	ig_decision_clear(&r);
	/* d2 then d3: unsealed with the genesis key, and the bad share's record follows. */
	for (int i = 1; i < NDEV; i++) {
		m = share_msg(i, 1, req_hex, pk_hex, share_of[i]);
		ig_svc_custody_share(&r, c, devs[i], m, now);
		cJSON_Delete(m);
		cr_assert_eq(r.kind, IG_DECISION_NONE);
	}
	tick_until(c, &now, "unsealed");
	cr_assert_eq(F.unseals, 1);
	cr_assert_eq(sodium_memcmp(F.unsealed_sk, F.ch_sk, 64), 0);
	cr_assert_eq(F.nq, 1, "the queued custody_bad_share record");
	ig_decision bad = take();
	ig_decision none2 = durable(&bad, IG_REC_CUSTODY_BAD_SHARE);
	ig_decision_clear(&none2);
	cr_assert_eq(ig_state_custody(st)->bad_shares, 1);

	/* Rotation: epoch 2, same C_0; an epoch-1 share is then old. */
	cr_assert(ig_svc_custody_rotate(c, "admin1", &error, msg, sizeof msg), "%s", msg);
	uint8_t c0b[32];
	deal_active(c, &now, 2, c0b);
	cr_assert_eq(memcmp(c0, c0b, 32), 0, "a rotation changed the secret");
	cr_assert_str_eq(ig_state_custody(st)->active.reason, "admin");
	m = share_msg(1, 1, req_hex, pk_hex, share_of[1]);
	ig_svc_custody_share(&r, c, "d2", m, now);
	cJSON_Delete(m);
	fx_expect_refusal(&r, "custody_share", "old_epoch", "s-1", NULL);
	ig_decision_clear(&r);
	ig_svc_custody_free(c);
}

Test(svc_custody, config_needs_both_and_k_at_least_two)
{
	ig_error err = {0};
	ig_svc_custody_config cfg = {.k = 2, .n = 0};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_ERR_INVAL);
	cfg = (ig_svc_custody_config){.k = 1, .n = 3};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_ERR_INVAL);
	cfg = (ig_svc_custody_config){.k = 4, .n = 3};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_ERR_INVAL);
	cfg = (ig_svc_custody_config){.k = 2, .n = 256};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_ERR_INVAL);
	cfg = (ig_svc_custody_config){.k = 255, .n = 255};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_OK);
	cfg = (ig_svc_custody_config){0};
	cr_expect_eq(ig_svc_custody_config_check(&cfg, &err), IG_OK);
}

Test(svc_custody, too_few_online_holders_waits_and_says_so)
{
	uint64_t now = 1767225600000ull;
	F.online[2] = false;
	ig_svc_custody *c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	for (int i = 0; i < 5; i++)
		tick_settle(c, &now);
	cr_assert_eq(F.nq, 0, "dealt with only two holders online");
	cr_assert_not_null(F.state);
	cr_assert_not_null(strstr(F.state, "\"state\":\"dealing\""), "%s", F.state);
	cr_assert_not_null(strstr(F.state, "2 eligible"), "%s", F.state);
	F.online[2] = true;
	tick_until_decision(c, &now);
	cr_assert_eq(F.nq, 1, "the third holder came online: a deal");
	ig_decision d = take();   /* ends the deal's append before the service goes */
	ig_decision none = {0};
	fx_complete(&d, IG_ERR_IO, NULL, &none);
	ig_decision_clear(&none);
	ig_svc_custody_free(c);
}

Test(svc_custody, unsealed_start_whose_secret_cannot_be_rebuilt_deals_a_new_one_on_request)
{
	uint64_t now = 1767225600000ull;
	ig_svc_custody *c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	uint8_t c0[32];
	deal_active(c, &now, 1, c0);
	tick_until(c, &now, "sealed_file");
	ig_svc_custody_free(c);
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	F.nq = 0;
	F.nev = 0;

	/* A restart with ch.key on disk: S is asked for, nobody answers. */
	c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 3, "the holders are asked for S");
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	F.nq = 0;
	/* Nothing is dealt on its own while the shares may still come... */
	for (int i = 0; i < 5; i++)
		ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 0);
	/* ...but an admin's rotation deals a new secret: C_0 changes, and the
	 * sealed file is rewritten for it once the epoch is active. */
	const char *error = NULL;
	char msg[300];
	cr_assert(ig_svc_custody_rotate(c, "admin1", &error, msg, sizeof msg), "%s", msg);
	uint8_t c0b[32];
	deal_active(c, &now, 2, c0b);
	cr_assert_neq(memcmp(c0, c0b, 32), 0, "the new epoch shares the old secret nobody could rebuild");
	tick_until(c, &now, "sealed_file");
	/* The rewritten ch.key.sealed opens with the new shares. */
	uint8_t S[32], idx[2] = {(uint8_t)index_of[0], (uint8_t)index_of[1]}, sh[2][32];
	memcpy(sh[0], share_of[0], 32);
	memcpy(sh[1], share_of[1], 32);
	cr_assert_eq(ig_vss_combine(S, idx, (const uint8_t(*)[32])sh, 2), IG_OK);
	char sealed_path[600];
	snprintf(sealed_path, sizeof sealed_path, "%s/ch.key.sealed", dir);
	size_t len = 0;
	char *sealed = tu_read_file(sealed_path, &len);
	uint8_t sk[64];
	ig_error err = {0};
	cr_assert_eq(ig_custody_unseal(sk, S, F.ch_pk, (const uint8_t *)sealed, len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(sk, F.ch_sk, 64), 0);
	free(sealed);
	ig_svc_custody_free(c);
}

/* Deals an epoch of n (< NDEV) holders, acks it, and returns the activation's
 * replies (the caller inspects and clears them). */
static ig_decision deal_active_n(ig_svc_custody *c, uint64_t *now, uint64_t epoch, unsigned n)
{
	for (int i = 0; i < 40 && F.nq == 0; i++) {
		*now += 1000;
		ig_svc_custody_tick(c, *now);
		usleep(5000);   /* the shares are computed on the worker */
	}
	for (int i = 0; i < 400 && F.nq == 0; i++) {
		ig_svc_custody_tick(c, *now += 1);
		usleep(5000);
	}
	ig_decision d = take_append();
	ig_decision out = durable(&d, IG_REC_CUSTODY_EPOCH);
	uint8_t C[IG_VSS_MAX][32];
	unsigned k = 0;
	open_deals_n(&out, epoch, C, &k, n);
	ig_decision_clear(&out);
	unsigned acked = 0;
	ig_decision act = {0};
	for (int i = 0; i < NDEV; i++) {
		if (!dealt_to[i])
			continue;
		ig_decision r = {0};
		cJSON *a = ack("n-1", epoch, index_of[i]);
		ig_svc_custody_ack(&r, c, devs[i], a, *now);
		cJSON_Delete(a);
		if (++acked < n) {
			cr_assert_eq(r.kind, IG_DECISION_NONE);
			continue;
		}
		act = durable(&r, IG_REC_CUSTODY_ACTIVE);
	}
	cr_assert_eq(ig_state_custody(st)->active.epoch, epoch);
	return act;
}

/* Whether act holds a custody_active for epoch addressed to id. */
static bool told_active(const ig_decision *act, const char *id, uint64_t epoch)
{
	for (const ig_decision *d = act; d; d = d->next)
		for (size_t r = 0; d->kind == IG_DECISION_REPLY && r < d->n_replies; r++)
			if (!strcmp(d->replies[r].to, id) && !strcmp(tu_json_str(d->replies[r].body, "type"), "custody_active") &&
			    (uint64_t)tu_json_num(d->replies[r].body, "epoch") == epoch)
				return true;
	return false;
}

static ig_decision status_text(ig_svc_custody *c, int i, const char *s, uint64_t now)
{
	ig_decision out = {0};
	ig_svc_custody_status_message(&out, c, devs[i], s, strlen(s), now);
	return out;
}

static const char *const low_battery =
	"{\"id\":\"x\",\"state\":\"online\",\"uptime_s\":100,\"battery\":{\"percent\":10,\"mains\":false},"
	"\"custody\":{\"epochs\":[1],\"active\":1}}";

/* Issue 9: a holder left out of a rotation kept a share of the same S for
 * ever. Online, it is told with the activation; offline, when it is back
 * and its status still shows the old epoch. */
Test(svc_custody, holders_left_out_of_a_rotation_are_told_the_new_epoch_is_active)
{
	uint64_t now = 1767225600000ull;
	ig_svc_custody *c = svc_new_n(2);
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	ig_decision act = deal_active_n(c, &now, 1, 2);
	cr_assert(dealt_to[0] && dealt_to[1] && !dealt_to[2], "d1 and d2 (by id) hold epoch 1");
	cr_assert_eq(act.n_replies, 2, "only the holders hear of the first epoch");
	ig_decision_clear(&act);

	/* d1's battery runs low: the rotation deals to d2 and d3; d1, online
	 * and left out, hears of epoch 2 with them. */
	ig_decision none = status_text(c, 0, low_battery, now);
	cr_assert_eq(none.kind, IG_DECISION_NONE, "epoch 1 is the active one: nothing to tell");
	const char *error = NULL;
	char msg[300];
	cr_assert(ig_svc_custody_rotate(c, "admin1", &error, msg, sizeof msg), "%s", msg);
	act = deal_active_n(c, &now, 2, 2);
	cr_assert(!dealt_to[0] && dealt_to[1] && dealt_to[2]);
	cr_assert(told_active(&act, "d1", 2), "the left-out holder d1 was not told");
	cr_assert(told_active(&act, "d2", 2) && told_active(&act, "d3", 2));
	ig_decision_clear(&act);

	/* Another rotation while d2 is offline: d2 (left out) is not told now... */
	const char *d2_epoch2 = "{\"id\":\"x\",\"state\":\"online\",\"uptime_s\":5,\"battery\":{\"percent\":10,"
	                        "\"mains\":false},\"custody\":{\"epochs\":[2],\"active\":2}}";
	none = status_text(c, 1, d2_epoch2, now);
	cr_assert_eq(none.kind, IG_DECISION_NONE);
	const char *d1_back = "{\"id\":\"x\",\"state\":\"online\",\"uptime_s\":5,\"battery\":{\"percent\":90,"
	                      "\"mains\":false}}";
	none = status_text(c, 0, d1_back, now);
	cr_assert_eq(none.kind, IG_DECISION_NONE, "a device holding nothing is told nothing");
	F.online[1] = false;
	cr_assert(ig_svc_custody_rotate(c, "admin1", &error, msg, sizeof msg), "%s", msg);
	act = deal_active_n(c, &now, 3, 2);
	cr_assert(dealt_to[0] && !dealt_to[1] && dealt_to[2]);
	cr_assert_not(told_active(&act, "d2", 3), "a message to an offline device");
	ig_decision_clear(&act);

	/* ...but when it is back and its status shows epoch 2, once per epoch,
	 * again after a minute if it still shows it. */
	F.online[1] = true;
	ig_decision t = status_text(c, 1, d2_epoch2, now);
	cr_assert(told_active(&t, "d2", 3), "the returning holder of a void epoch was not told");
	ig_decision_clear(&t);
	t = status_text(c, 1, d2_epoch2, now + 1000);
	cr_assert_eq(t.kind, IG_DECISION_NONE, "told again a second later");
	t = status_text(c, 1, d2_epoch2, now + 61000);
	cr_assert(told_active(&t, "d2", 3), "not told again a minute later");
	ig_decision_clear(&t);
	/* A status showing the active epoch, or a newer one being dealt, is left alone. */
	const char *current = "{\"id\":\"x\",\"state\":\"online\",\"custody\":{\"epochs\":[3,4],\"active\":3}}";
	t = status_text(c, 2, current, now);
	cr_assert_eq(t.kind, IG_DECISION_NONE);
	ig_svc_custody_free(c);
}

/* The policy's holder_roles is asked at each deal: with only analysts
 * allowed the three devices are not eligible; once devices are allowed
 * again (a reloaded policy) the next look deals. */
Test(svc_custody, holder_roles_come_from_the_host_at_each_deal)
{
	uint64_t now = 1767225600000ull;
	F.roles = 1u << IG_ROLE_ANALYST;
	ig_svc_custody *c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	for (int i = 0; i < 3; i++)
		tick_settle(c, &now);
	cr_assert_eq(F.nq, 0, "dealt to devices while only analysts may hold");
	cr_assert_not_null(strstr(F.state, "0 eligible"), "%s", F.state);
	F.roles = (1u << IG_ROLE_ANALYST) | (1u << IG_ROLE_DEVICE);
	tick_until_decision(c, &now);
	cr_assert_eq(F.nq, 1, "devices allowed again: a deal");
	ig_decision d = take();   /* the custody_epoch append: refused, so the deal ends before the service */
	ig_decision none = {0};
	fx_complete(&d, IG_ERR_IO, NULL, &none);
	ig_decision_clear(&none);
	ig_svc_custody_free(c);
}

/* The admin list a deal carries, checked as a holder checks it. */
static void assert_deal_admins(const cJSON *m, uint64_t epoch, const uint8_t pks[][32], size_t n)
{
	const cJSON *as = cJSON_GetObjectItem(m, "admins");
	cr_assert_eq((size_t)cJSON_GetArraySize(as), n, "the deal carries %d admins", cJSON_GetArraySize(as));
	uint8_t got[4][32], sig[64];
	for (size_t i = 0; i < n; i++)
		tu_unhex(got[i], 32, cJSON_GetArrayItem(as, (int)i)->valuestring);
	cr_assert_eq(memcmp(got, pks, n * 32), 0, "the admins are not the active ones in ascending order");
	size_t len = 0;
	const char *b64 = tu_json_str(m, "admins_sig");
	cr_assert_eq(sodium_base642bin(sig, sizeof sig, b64, strlen(b64), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "c1", epoch, (const uint8_t(*)[32])got, n, F.ch_pk), IG_OK);
}

static void approve_sig(uint8_t sig[64], const char *req_hex, const char *pk_hex, uint64_t size, const uint8_t *sk)
{
	uint8_t rq[16], xpk[32], root[32];
	tu_unhex(rq, 16, req_hex);
	tu_unhex(xpk, 32, pk_hex);
	memset(root, 0x44, 32);
	cr_assert_eq(ig_custody_approve_sign(sig, "c1", rq, xpk, size, root, sk), IG_OK);
}

Test(svc_custody, admin_mode_signs_the_admin_list_and_asks_for_shares_only_once_approved)
{
	uint64_t now = 1767225600000ull;
	uint8_t apk[2][32], ask[2][64], mpk[32], msk[64];
	tu_seed_keypair(apk[0], ask[0], 200);
	tu_seed_keypair(apk[1], ask[1], 201);
	tu_seed_keypair(mpk, msk, 202);
	admin_mode = true;
	ig_svc_custody *c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	/* No admin yet: nothing is dealt (nobody could ever approve). */
	for (int i = 0; i < 3; i++)
		tick_settle(c, &now);
	cr_assert_eq(F.nq, 0, "dealt in admin mode without an admin");
	cr_assert_not_null(strstr(F.state, "at least one active admin"), "%s", F.state);
	fx_enroll(st, "adm1", IG_ROLE_ADMIN, apk[0]);
	fx_enroll(st, "mon1", IG_ROLE_MONITOR, mpk);
	now += 5000;
	tick_until_decision(c, &now);
	ig_decision d = take_append();
	ig_decision out = durable(&d, IG_REC_CUSTODY_EPOCH);
	cr_assert_eq(out.n_replies, 3);
	for (size_t r = 0; r < out.n_replies; r++)
		assert_deal_admins(out.replies[r].body, 1, (const uint8_t(*)[32])apk, 1);
	uint8_t C[IG_VSS_MAX][32];
	unsigned k = 0;
	open_deals(&out, 1, C, &k);
	ig_decision_clear(&out);
	for (int i = 0; i < NDEV; i++) {
		ig_decision r = {0};
		cJSON *a = ack("n", 1, index_of[i]);
		ig_svc_custody_ack(&r, c, devs[i], a, now);
		cJSON_Delete(a);
		if (i == NDEV - 1) {
			ig_decision act = durable(&r, IG_REC_CUSTODY_ACTIVE);
			ig_decision_clear(&act);
		}
	}
	/* Enrolling a second admin re-deals (reason admin) with both, ascending. */
	fx_enroll(st, "adm2", IG_ROLE_ADMIN, apk[1]);
	uint8_t sorted[2][32];
	memcpy(sorted, apk, sizeof sorted);
	ig_custody_approve_admins_sort(sorted, 2);
	tick_until_decision(c, &now);
	d = take();
	out = durable(&d, IG_REC_CUSTODY_EPOCH);
	cr_assert_str_eq(ig_state_custody(st)->dealt.reason, "admin");
	assert_deal_admins(out.replies[0].body, 2, (const uint8_t(*)[32])sorted, 2);
	ig_decision_clear(&out);
	ig_svc_custody_free(c);
	for (size_t i = 0; i < F.nq; i++)
		ig_decision_clear(&F.q[i]);
	F.nq = 0;

	/* A start without S (epoch 1 stays active: epoch 2 was not acked): no
	 * request goes out; the status shows what to approve. */
	F.sealed = true;
	c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	for (int i = 0; i < 3; i++)
		ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 0, "a share was asked for before an admin approved");
	cJSON *st_json = cJSON_Parse(F.state);
	const cJSON *pa = cJSON_GetObjectItem(st_json, "pending_approval");
	cr_assert_not_null(pa, "%s", F.state);
	char req_hex[33], pk_hex[65];
	snprintf(req_hex, sizeof req_hex, "%s", tu_json_str(pa, "request"));
	snprintf(pk_hex, sizeof pk_hex, "%s", tu_json_str(pa, "pk"));
	cr_assert_eq(tu_json_num(pa, "size"), 5);
	cJSON_Delete(st_json);

	uint8_t sig[64];
	const char *error = NULL;
	char msg[300];
	/* Refused: a monitor, a signature over another size, another admin's
	 * signature under adm1's name. */
	approve_sig(sig, req_hex, pk_hex, 5, msk);
	cr_assert_not(ig_svc_custody_approve(c, "mon1", sig, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "not_admin");
	approve_sig(sig, req_hex, pk_hex, 6, ask[0]);
	cr_assert_not(ig_svc_custody_approve(c, "adm1", sig, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "bad_signature");
	approve_sig(sig, req_hex, pk_hex, 5, ask[1]);
	cr_assert_not(ig_svc_custody_approve(c, "adm1", sig, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "bad_signature");
	ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 0);
	/* adm1's own: every online holder is asked, with the approval. */
	approve_sig(sig, req_hex, pk_hex, 5, ask[0]);
	cr_assert(ig_svc_custody_approve(c, "adm1", sig, &error, msg, sizeof msg), "%s", msg);
	cr_assert(has_event("approved", NULL));
	ig_svc_custody_tick(c, now += 1000);
	cr_assert_eq(F.nq, 3);
	for (int i = 0; i < 3; i++) {
		ig_decision q = take();
		const cJSON *m = q.replies[0].body;
		const cJSON *ap = cJSON_GetObjectItem(m, "approval");
		cr_assert_not_null(ap);
		char adm_hex[65];
		ig_hex_encode(adm_hex, apk[0], 32);
		cr_assert_str_eq(tu_json_str(ap, "admin_pk"), adm_hex);
		cr_assert_str_eq(tu_json_str(m, "request"), req_hex);
		ig_decision_clear(&q);
	}
	cr_assert_not(ig_svc_custody_approve(c, "adm1", sig, &error, msg, sizeof msg));
	cr_assert_str_eq(error, "not_pending");
	ig_svc_custody_free(c);
}

/* ---- a shared ledger: another broker's custody record came first ---------- */

static const char *event_message(const char *name)
{
	for (size_t i = 0; i < F.nev; i++)
		if (!strcmp(F.events[i], name))
			return F.event_message[i];
	return NULL;
}

static uint64_t dealt_epoch(const ig_decision *d)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND);
	cr_assert_eq(d->rec_type, IG_REC_CUSTODY_EPOCH);
	static ig_custody_epoch_rec r;
	ig_error err = {0};
	cr_assert_eq(ig_record_custody_epoch_decode(d->body, d->body_len, &r, &err), IG_OK, "%s", err.msg);
	return r.epoch;
}

Test(svc_custody, a_deal_whose_epoch_another_broker_dealt_first_is_abandoned_and_the_next_goes_above_it)
{
	uint64_t now = 1767225600000ull;
	ig_svc_custody *c = svc_new();
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	tick_until_decision(c, &now);
	ig_decision d = take();
	cr_assert_eq(dealt_epoch(&d), 1);
	/* Another broker's custody_epoch 1 reached the shared ledger first and
	 * was followed; ours comes back refused. */
	fx_apply(st, d.rec_type, d.body, d.body_len);
	ig_decision none = {0};
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &none);
	cr_expect_eq(none.kind, IG_DECISION_NONE, "no deal is sent for a record that was not written");
	ig_decision_clear(&none);
	cr_assert(has_event("deal_abandoned", NULL));
	const char *why = event_message("deal_abandoned");
	cr_expect(why && strstr(why, "another broker"), "%s", why ? why : "-");
	cr_expect_null(strstr(why ? why : "", "disk"), "not a disk fault: %s", why ? why : "-");

	/* The next deal starts from the ledger: epoch 2. (A completion runs
	 * at the wall clock's time: the retry is due after it.) */
	now = ig_now_ms() + 10000;
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	tick_until_decision(c, &now);
	cr_assert_eq(F.nq, 1, "no new deal after the conflict");
	d = take();
	cr_expect_eq(dealt_epoch(&d), 2);
	fx_complete(&d, IG_ERR_UNAVAILABLE, NULL, &none);
	ig_decision_clear(&none);
	const char *down = NULL;
	for (size_t i = 0; i < F.nev; i++)
		if (!strcmp(F.events[i], "deal_abandoned"))
			down = F.event_message[i];
	cr_expect(down && strstr(down, "unreachable"), "%s", down ? down : "-");
	ig_svc_custody_free(c);
}

Test(svc_custody, a_seal_refused_for_a_conflict_or_an_unreachable_database_keeps_ch_key)
{
	uint64_t now = 1767225600000ull;
	ig_svc_custody *c = svc_new();
	char path[600];
	snprintf(path, sizeof path, "%s/ch.key", dir);
	for (int i = 0; i < NDEV; i++)
		status(c, i, now);
	uint8_t c0[32];
	deal_active(c, &now, 1, c0);
	tick_until(c, &now, "sealed_file");
	ig_decision d = {0}, none = {0};
	const char *error = NULL;
	char msg[300];
	cr_assert(ig_svc_custody_seal(&d, c, "admin1", seal_done, NULL, &error, msg, sizeof msg), "%s", msg);
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &none);
	ig_decision_clear(&none);
	cr_assert(F.seal_done, "answered at once");
	cr_assert_str_eq(F.seal_error, "conflict");
	cr_assert_eq(access(path, F_OK), 0, "ch.key was kept");

	F.seal_done = false;
	memset(&d, 0, sizeof d);
	cr_assert(ig_svc_custody_seal(&d, c, "admin1", seal_done, NULL, &error, msg, sizeof msg), "not stuck: %s", msg);
	fx_complete(&d, IG_ERR_UNAVAILABLE, NULL, &none);
	ig_decision_clear(&none);
	cr_assert(F.seal_done);
	cr_assert_str_eq(F.seal_error, "storage_failed");
	cr_assert_eq(access(path, F_OK), 0, "ch.key was kept");
	ig_svc_custody_free(c);
}
