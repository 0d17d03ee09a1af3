/* tests/fuzz/fuzz_custody_svc.c: fuzzes the cluster head's custody
 * requests (ig_svc_custody_ack, ig_svc_custody_share and
 * ig_svc_custody_status_message; lib/custody/svc_custody.c) through their
 * public entry points, as the plugin calls them.
 *
 * Why this exists: custody_ack and custody_share come from any enrolled
 * device, and a holder's answer decides whether an epoch becomes active or
 * the sealed cluster head gets its key back; the decoders are static in
 * svc_custody.c and interleaved with the decisions, so they are fuzzed the
 * way fuzz_svc_keys fuzzes its services: with a small real cluster state.
 * Each input (JSON) goes to two fresh services, so a run never depends on
 * earlier inputs: (1) one dealing epoch 1 (k = 2, n = 3) to d1..d3, its
 * custody_epoch reported durable, which gets the input as an ack from each
 * holder, then the holders' own good acks; (2) one sealed, collecting the
 * active epoch 1 (custody_epoch and custody_active applied), which gets the
 * input as a custody_share from each holder. In (2) the placeholders
 * "request":"REQUEST" and "box":"BOX" become the service's real request id
 * and a real release box of that holder's share (with its "box_nonce"), so
 * the fuzzer reaches the checks after the decoding and the worker's box
 * check. The input is also each holder's status message. Invariants: every
 * decision is nothing, a refusal naming its request with a documented code
 * and a message, or (acks) the append of custody_active once all three
 * holders acked; the deal's replies are the three boxes. */
#include <cJSON.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "ig_custody.h"
#include "ig_json.h"
#include "ig_record.h"
#include "ig_svc_custody.h"
#include "ig_vss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NDEV 3
#define QMAX 32
#define NOW 1767225600000ull

static const char *const devs[NDEV] = {"d1", "d2", "d3"};
static uint8_t dev_pk[NDEV][32], dev_sk[NDEV][64], ch_pk[32], ch_sk[64];
static uint8_t col_shares[NDEV][32];
static ig_state *st_deal, *st_col;
static ig_pool pool;
static char dir[64];
static uint64_t rec_index;

/* What the service carried out (chains flattened). */
static ig_decision q[QMAX];
static size_t nq;
static bool sealed_now;

static bool env_online(void *ctx, const char *id)
{
	(void)ctx;
	(void)id;
	return true;
}
static bool env_sealed(void *ctx)
{
	(void)ctx;
	return sealed_now;
}
static const uint8_t *env_ch_sk(void *ctx)
{
	(void)ctx;
	return sealed_now ? NULL : ch_sk;
}
static int env_unseal(void *ctx, const uint8_t sk[64], ig_error *err)
{
	(void)ctx;
	(void)sk;
	(void)err;
	return IG_OK;
}
static void env_carry_out(void *ctx, ig_decision *d)
{
	(void)ctx;
	while (d) {
		ig_decision *next = d->next;
		if (nq < QMAX) {
			q[nq] = *d;
			q[nq].next = NULL;
			nq++;
			memset(d, 0, sizeof *d);
		} else {
			d->next = NULL;
			ig_decision_clear(d);
		}
		d = next;
	}
}
static void env_event(void *ctx, cJSON *ev)
{
	(void)ctx;
	FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ev, "event")));
	cJSON_Delete(ev);
}
static void env_publish(void *ctx, const char *json)
{
	(void)ctx;
	FUZZ_ASSERT(json && json[0] == '{');
}

static void drop_queue(void)
{
	for (size_t i = 0; i < nq; i++)
		ig_decision_clear(&q[i]);
	nq = 0;
}

static void apply(ig_state *st, uint16_t type, const uint8_t *body, int len)
{
	FUZZ_ASSERT(len > 0);
	ig_record rec = {.index = ++rec_index, .ts_ms = NOW, .type = type, .body = body, .body_len = (uint32_t)len};
	ig_error err;
	FUZZ_ASSERT(ig_state_apply(st, &rec, &err) == IG_OK);
}

static void enroll_all(ig_state *st)
{
	for (int i = 0; i < NDEV; i++) {
		ig_enroll e;
		memset(&e, 0, sizeof e);
		snprintf(e.id, sizeof e.id, "%s", devs[i]);
		snprintf(e.by, sizeof e.by, "admin");
		e.role = IG_ROLE_DEVICE;
		memcpy(e.pk, dev_pk[i], 32);
		uint8_t body[512];
		apply(st, IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &e));
	}
}

static void cleanup(void)
{
	rmdir(dir);
}

static void setup(void)
{
	fuzz_vector_keypair(ch_pk, ch_sk);
	for (int i = 0; i < NDEV; i++) {
		uint8_t seed[32];
		memset(seed, 0x40 + i, sizeof seed);
		crypto_sign_seed_keypair(dev_pk[i], dev_sk[i], seed);
	}
	uint8_t pool_key[32] = {7};
	ig_pool_init(&pool, pool_key);
	snprintf(dir, sizeof dir, "/tmp/fuzz-custody-svc.XXXXXX");
	FUZZ_ASSERT(mkdtemp(dir));   /* the services' ledger directory; nothing here writes it */
	atexit(cleanup);

	st_deal = ig_state_new();
	st_col = ig_state_new();
	FUZZ_ASSERT(st_deal && st_col);
	enroll_all(st_deal);
	enroll_all(st_col);

	/* Epoch 1 of a known polynomial, active, for the collecting service. */
	uint8_t coeffs[2][32] = {{0x11, 0x22, 0x33}, {0x44, 0x55, 0x66}}, C[2][32];
	FUZZ_ASSERT(ig_vss_deal_coeffs(col_shares, C, (const uint8_t(*)[32])coeffs, 2, NDEV) == IG_OK);
	ig_custody_epoch_rec *er = calloc(1, sizeof *er);
	uint8_t *body = malloc(4096);
	FUZZ_ASSERT(er && body);
	er->epoch = 1;
	er->k = 2;
	er->n = NDEV;
	er->holder_count = NDEV;
	for (int i = 0; i < NDEV; i++)
		snprintf(er->holders[i], sizeof er->holders[i], "%s", devs[i]);
	er->commitment_count = 2;
	memcpy(er->commitments, C, sizeof C);
	snprintf(er->reason, sizeof er->reason, "initial");
	snprintf(er->by, sizeof er->by, "cluster-head");
	apply(st_col, IG_REC_CUSTODY_EPOCH, body, ig_record_custody_epoch_encode(body, 4096, er));
	ig_custody_active_rec ar = {.epoch = 1};
	apply(st_col, IG_REC_CUSTODY_ACTIVE, body, ig_record_custody_active_encode(body, 4096, &ar));
	free(er);
	free(body);
}

static ig_svc_custody *svc_new(ig_state *st)
{
	ig_svc_custody_config cfg = {.k = 2, .n = NDEV, .rotate_s = 86400, .holder_timeout_s = 3600,
	                             .deal_timeout_s = 60};
	snprintf(cfg.ledger_dir, sizeof cfg.ledger_dir, "%s", dir);
	memcpy(cfg.ch_pk, ch_pk, 32);
	ig_svc_custody_env env = {.online = env_online, .sealed = env_sealed, .ch_sk = env_ch_sk, .unseal = env_unseal,
	                          .carry_out = env_carry_out, .event = env_event, .publish_state = env_publish};
	ig_error err;
	memset(&err, 0, sizeof err);
	ig_svc_custody *c = ig_svc_custody_new(st, &pool, &cfg, &env, &err);
	FUZZ_ASSERT(c);
	return c;
}

static bool one_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

static void check_refusal(const ig_decision *d, const char *request, const char *const *codes)
{
	FUZZ_ASSERT(d->request && strcmp(d->request, request) == 0);
	FUZZ_ASSERT(d->error && one_of(d->error, codes) && d->message[0]);
	cJSON *o = ig_decision_error_json(d);
	FUZZ_ASSERT(o);
	cJSON_Delete(o);
}

static const char *const ack_codes[] = {"malformed", "revoked", "old_epoch", "not_dealing", "not_holder", NULL};
static const char *const share_codes[] = {"malformed", "revoked", "old_epoch", "unknown_epoch", "not_requested",
                                          "not_holder", NULL};

/* A status message from id: at most a custody_active telling it which
 * epoch is active. */
static void status(ig_svc_custody *c, const char *id, const void *payload, size_t len, uint64_t now)
{
	ig_decision d;
	memset(&d, 0, sizeof d);
	ig_svc_custody_status_message(&d, c, id, payload, len, now);
	FUZZ_ASSERT(d.kind == IG_DECISION_NONE || d.kind == IG_DECISION_REPLY);
	for (size_t r = 0; r < d.n_replies; r++) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(d.replies[r].body, "type");
		FUZZ_ASSERT(strcmp(d.replies[r].to, id) == 0 && cJSON_IsString(t) &&
		            strcmp(t->valuestring, "custody_active") == 0);
	}
	ig_decision_clear(&d);
}

/* The append of custody_active for epoch 1, the first of this deal. */
static void activated(const ig_decision *d, bool *appended)
{
	FUZZ_ASSERT(d->rec_type == IG_REC_CUSTODY_ACTIVE && !*appended);
	ig_custody_active_rec ar;
	ig_error err;
	FUZZ_ASSERT(ig_record_custody_active_decode(d->body, d->body_len, &ar, &err) == IG_OK && ar.epoch == 1);
	*appended = true;
}

/* The input as an ack to a service dealing epoch 1. */
static void deal_phase(const cJSON *req, const uint8_t *data, size_t size)
{
	sealed_now = false;
	ig_svc_custody *c = svc_new(st_deal);
	const char *st = "{\"state\":\"online\",\"uptime_s\":100,\"battery\":{\"percent\":80,\"mains\":false}}";
	for (int i = 0; i < NDEV; i++)
		status(c, devs[i], st, strlen(st), NOW);
	ig_svc_custody_tick(c, NOW);
	/* The shares are computed on the service's worker; a later tick deals. */
	for (int i = 0; i < 20000 && nq == 0; i++) {
		usleep(50);
		ig_svc_custody_tick(c, NOW + 1);
	}
	FUZZ_ASSERT(nq == 1 && q[0].kind == IG_DECISION_APPEND && q[0].rec_type == IG_REC_CUSTODY_EPOCH);
	/* The record is durable (not applied: every input deals epoch 1 again). */
	ig_decision_done_fn done = q[0].done;
	void *ctx = q[0].done_ctx;
	q[0].done = NULL;
	drop_queue();
	ig_record rec = {.type = IG_REC_CUSTODY_EPOCH};
	ig_decision out;
	memset(&out, 0, sizeof out);
	done(ctx, IG_OK, &rec, &out);
	FUZZ_ASSERT(out.kind == IG_DECISION_REPLY && out.n_replies == NDEV && !out.next);
	unsigned index_of[NDEV] = {0};
	for (size_t r = 0; r < out.n_replies; r++) {
		const cJSON *b = out.replies[r].body;
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type");
		FUZZ_ASSERT(cJSON_IsString(t) && strcmp(t->valuestring, "custody_deal") == 0);
		uint64_t idx = 0;
		FUZZ_ASSERT(ig_json_uint_field(&idx, b, "index", 1, NDEV) == IG_OK);
		for (int i = 0; i < NDEV; i++)
			if (strcmp(out.replies[r].to, devs[i]) == 0)
				index_of[i] = (unsigned)idx;
	}
	ig_decision_clear(&out);

	/* One message acks one index: the input alone never activates. */
	for (int i = 0; i < NDEV; i++) {
		ig_decision d;
		memset(&d, 0, sizeof d);
		ig_svc_custody_ack(&d, c, devs[i], req, NOW + 1);
		if (d.kind == IG_DECISION_REFUSE)
			check_refusal(&d, "custody_ack", ack_codes);
		else
			FUZZ_ASSERT(d.kind == IG_DECISION_NONE);
		ig_decision_clear(&d);
	}
	/* The holders' own acks: the one that completes all three indices (the
	 * input may have acked one) makes custody_active, once, unless the
	 * input abandoned the deal (an "error" ack). The append is cleared
	 * unwritten, so its done abandons the deal. */
	bool appended = false;
	for (int i = 0; i < NDEV; i++) {
		cJSON *a = cJSON_CreateObject();
		FUZZ_ASSERT(a);
		cJSON_AddStringToObject(a, "nonce", "n-1");
		cJSON_AddNumberToObject(a, "epoch", 1);
		cJSON_AddNumberToObject(a, "index", index_of[i]);
		ig_decision d;
		memset(&d, 0, sizeof d);
		ig_svc_custody_ack(&d, c, devs[i], a, NOW + 2);
		cJSON_Delete(a);
		if (d.kind == IG_DECISION_REFUSE)
			check_refusal(&d, "custody_ack", ack_codes);
		else if (d.kind == IG_DECISION_APPEND)
			activated(&d, &appended);
		else
			FUZZ_ASSERT(d.kind == IG_DECISION_NONE);
		ig_decision_clear(&d);
	}
	/* The raw input as each holder's status message. */
	for (int i = 0; i < NDEV; i++)
		status(c, devs[i], data, size, NOW + 3);
	cJSON *s = cJSON_CreateObject();
	FUZZ_ASSERT(s);
	ig_svc_custody_status_json(c, s, NOW + 3);
	cJSON_Delete(s);
	ig_svc_custody_free(c);
	drop_queue();
}

static void set_string(cJSON *o, const char *name, const char *value)
{
	cJSON *v = cJSON_CreateString(value);
	FUZZ_ASSERT(v);
	if (!cJSON_ReplaceItemInObjectCaseSensitive(o, name, v))
		cJSON_Delete(v);
}

static bool is_placeholder(const cJSON *o, const char *name, const char *value)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && strcmp(v->valuestring, value) == 0;
}

/* The input as a custody_share to a sealed service collecting epoch 1. */
static void collect_phase(const cJSON *req, const uint8_t *data, size_t size)
{
	sealed_now = true;
	ig_svc_custody *c = svc_new(st_col);
	ig_svc_custody_tick(c, NOW);
	/* One custody_request per holder, all with the same request id and key. */
	FUZZ_ASSERT(nq == NDEV);
	char request_hex[33] = "", pk_hex[65] = "";
	for (size_t i = 0; i < nq; i++) {
		FUZZ_ASSERT(q[i].kind == IG_DECISION_REPLY && q[i].n_replies == 1);
		const cJSON *b = q[i].replies[0].body;
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(b, "request");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "pk");
		FUZZ_ASSERT(cJSON_IsString(r) && strlen(r->valuestring) == 32 && cJSON_IsString(p) &&
		            strlen(p->valuestring) == 64);
		FUZZ_ASSERT(!request_hex[0] || strcmp(request_hex, r->valuestring) == 0);
		memcpy(request_hex, r->valuestring, 33);
		memcpy(pk_hex, p->valuestring, 65);
	}
	drop_queue();

	for (int i = 0; i < NDEV; i++) {
		cJSON *m = cJSON_Duplicate(req, 1);
		if (!m)
			break;
		if (cJSON_IsObject(m)) {
			if (is_placeholder(m, "request", "REQUEST"))
				set_string(m, "request", request_hex);
			if (is_placeholder(m, "box", "BOX")) {
				ig_custody_release r = {.epoch = 1, .index = (uint8_t)(i + 1)};
				FUZZ_ASSERT(ig_hex_decode(r.request, 16, request_hex, 32) == IG_OK);
				memcpy(r.share, col_shares[i], 32);
				uint8_t xpk[32], box[IG_CUSTODY_RELEASE_BOX_BYTES], nonce[24];
				FUZZ_ASSERT(ig_hex_decode(xpk, 32, pk_hex, 64) == IG_OK);
				FUZZ_ASSERT(ig_custody_release_seal(box, nonce, &r, xpk, dev_sk[i]) == IG_OK);
				char nonce_hex[49], b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
				ig_hex_encode(nonce_hex, nonce, sizeof nonce);
				sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
				set_string(m, "box", b64);
				if (cJSON_GetObjectItemCaseSensitive(m, "box_nonce"))
					set_string(m, "box_nonce", nonce_hex);
			}
		}
		ig_decision d;
		memset(&d, 0, sizeof d);
		ig_svc_custody_share(&d, c, devs[i], m, NOW + 1);
		if (d.kind == IG_DECISION_REFUSE)
			check_refusal(&d, "custody_share", share_codes);
		else
			FUZZ_ASSERT(d.kind == IG_DECISION_NONE);
		ig_decision_clear(&d);
		cJSON_Delete(m);
	}
	for (int i = 0; i < NDEV; i++)
		status(c, devs[i], data, size, NOW + 2);
	ig_svc_custody_free(c);   /* waits for a box check in hand, drops the rest */
	drop_queue();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st_deal)
		setup();
	cJSON *req = cJSON_ParseWithLength((const char *)data, size);
	if (!req)
		return 0;
	deal_phase(req, data, size);
	collect_phase(req, data, size);
	cJSON_Delete(req);
	return 0;
}
