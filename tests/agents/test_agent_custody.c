/*
 * test_agent_custody.c: unit tests for the device agent as a custody holder.
 *
 * Why this exists: a holder that acknowledges a share it has not kept, or a
 * bad share, leaves the cluster head's key unrecoverable without anyone
 * knowing until the day it is needed; one that keeps old epochs, or releases
 * to the wrong key, hands a thief of an old disk what it needs. These tests
 * play the cluster head (its own key, a real Shamir deal, real boxes) against
 * the custody duty of a real, never connected agent: a good deal is kept in
 * KEY.shares (0600, decodable) before the ack and not when the file cannot
 * be written; a bad box, a tampered commitment, a wrong index or an untrusted
 * pin get bad_share; activation wipes older epochs, on disk too; a request is
 * answered with a box the requester opens, and k releases rebuild S; unknown
 * and old epochs get no_share and old_epoch; a damaged store stops the start;
 * the battery file and power_supply directory are read as documented; no log
 * line carries a share.
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_testutil.h"
#include "duties.h"
#include "ig_custody.h"
#include "ig_keyfile.h"
#include "ig_vss.h"
#include "testutil.h"

#define MAXN 5

/* ---- the cluster head's side ------------------------------------------------ */

typedef struct dealer {
	uint8_t ch_pk[IG_PK_BYTES], ch_sk[IG_SK_BYTES];
	uint8_t secret[32];
	uint8_t shares[MAXN][32], commitments[MAXN][32];
	unsigned k, n;
	uint64_t epoch;
} dealer;

static void dealer_keys(dealer *d)
{
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_eq(ig_keyfile_generate(d->ch_pk, d->ch_sk), IG_OK);
	crypto_core_ristretto255_scalar_random(d->secret);
}

/* A fresh polynomial for the same secret, as a rotation deals. */
static void dealer_epoch(dealer *d, uint64_t epoch, unsigned k, unsigned n)
{
	d->epoch = epoch;
	d->k = k;
	d->n = n;
	cr_assert_eq(ig_vss_deal(d->shares, d->commitments, d->secret, k, n), IG_OK);
}

typedef struct deal_opts {
	unsigned box_index;          /* 0: the message's index */
	const uint8_t *share;        /* NULL: the share of box_index */
	bool flip_box;
	bool swap_commitment;        /* a different point as C_1 in the message */
	uint64_t box_epoch;          /* 0: the dealer's */
} deal_opts;

static cJSON *deal_msg(const dealer *d, const uint8_t dev_pk[IG_PK_BYTES], unsigned index, const deal_opts *o)
{
	deal_opts none = {0};
	if (!o)
		o = &none;
	unsigned bi = o->box_index ? o->box_index : index;
	ig_box_key bk;
	ig_custody_deal dd = {.epoch = o->box_epoch ? o->box_epoch : d->epoch, .index = (uint8_t)bi, .k = (uint8_t)d->k,
	                      .n = (uint8_t)d->n};
	memcpy(dd.share, o->share ? o->share : d->shares[bi - 1], 32);
	ig_custody_commitments_hash(dd.commitments_hash, dd.epoch, (const uint8_t(*)[32])d->commitments, d->k);
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	cr_assert_eq(ig_keybox_key_for_device(&bk, d->ch_sk, dev_pk), IG_OK);
	cr_assert_eq(ig_custody_deal_seal(box, nonce, &dd, &bk), IG_OK);
	if (o->flip_box)
		box[40] ^= 0x01;

	char hex[65], b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "custody_deal");
	cJSON_AddNumberToObject(m, "epoch", (double)d->epoch);
	cJSON_AddNumberToObject(m, "k", d->k);
	cJSON_AddNumberToObject(m, "n", d->n);
	cJSON_AddNumberToObject(m, "index", index);
	cJSON *cm = cJSON_AddArrayToObject(m, "commitments");
	for (unsigned j = 0; j < d->k; j++) {
		uint8_t point[32];
		memcpy(point, d->commitments[j], 32);
		if (o->swap_commitment && j == 1)
			crypto_core_ristretto255_random(point);
		ig_hex_encode(hex, point, 32);
		cJSON_AddItemToArray(cm, cJSON_CreateString(hex));
	}
	char nhex[49];
	ig_hex_encode(nhex, nonce, sizeof nonce);
	cJSON_AddStringToObject(m, "box_nonce", nhex);
	sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(m, "box", b64);
	return m;
}

static cJSON *active_msg(uint64_t epoch)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "custody_active");
	cJSON_AddNumberToObject(m, "epoch", (double)epoch);
	return m;
}

static cJSON *request_msg(uint64_t epoch, const uint8_t request[16], const uint8_t xpk[32])
{
	char rhex[33], phex[65];
	ig_hex_encode(rhex, request, 16);
	ig_hex_encode(phex, xpk, 32);
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "custody_request");
	cJSON_AddNumberToObject(m, "epoch", (double)epoch);
	cJSON_AddStringToObject(m, "request", rhex);
	cJSON_AddStringToObject(m, "pk", phex);
	return m;
}

/* ---- the holder's side ------------------------------------------------------- */

typedef struct holder {
	char dir[256], key[320];
	ig_agent *ag;
	ig_pin_state pin;
	ig_custody_state cs;
} holder;

static void holder_pin(holder *h, const uint8_t ch_pk[IG_PK_BYTES])
{
	memset(&h->pin, 0, sizeof h->pin);
	snprintf(h->pin.path, sizeof h->pin.path, "%s.ch", h->key);
	h->pin.known = true;
	memcpy(h->pin.pk, ch_pk, IG_PK_BYTES);
}

static holder *holder_new(const char *id, const uint8_t ch_pk[IG_PK_BYTES])
{
	holder *h = calloc(1, sizeof *h);
	cr_assert_not_null(h);
	tu_agent_key(h->dir, sizeof h->dir, h->key, sizeof h->key, id);
	h->ag = tu_agent_offline("c1", id, h->key);
	holder_pin(h, ch_pk);
	ig_error err = {0};
	cr_assert_eq(ig_custody_duty_init(&h->cs, h->ag, &h->pin, h->key, NULL, &err), IG_OK, "%s", err.msg);
	return h;
}

static void holder_free(holder *h)
{
	ig_duty_custody.on_stop(h->ag, &h->cs);
	cr_assert(tu_all_zero(h->cs.held, sizeof h->cs.held), "on_stop leaves shares in memory");
	ig_agent_free(h->ag);
	free(h);
}

/* Hands msg to the holder (and deletes it); the request it sends back, parsed, or NULL. */
static cJSON *send(holder *h, cJSON *msg)
{
	static char reply[1024];
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
	int n = ig_custody_handle(&h->cs, h->ag, type->valuestring, msg, reply, sizeof reply);
	cJSON_Delete(msg);
	cr_assert(n >= 0, "ig_custody_handle failed: %d", n);
	if (n == 0)
		return NULL;
	cr_assert_eq((size_t)n, strlen(reply));
	cJSON *r = cJSON_Parse(reply);
	cr_assert_not_null(r, "not JSON: %s", reply);
	return r;
}

static const char *str_or_null(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An ack for epoch/index, without an error. */
static void assert_ack(cJSON *r, uint64_t epoch, unsigned index)
{
	cr_assert_not_null(r, "no custody_ack sent");
	cr_assert_str_eq(tu_json_str(r, "type"), "custody_ack");
	cr_assert_eq((uint64_t)tu_json_num(r, "epoch"), epoch);
	cr_assert_eq((unsigned)tu_json_num(r, "index"), index);
	cr_assert_gt(strlen(tu_json_str(r, "nonce")), 0);
	cr_assert_null(str_or_null(r, "error"), "unexpected refusal: %s", str_or_null(r, "message"));
	cJSON_Delete(r);
}

/* A refusal with this code, whose message mentions `about`. */
static void assert_refused(cJSON *r, const char *type, const char *code, const char *about)
{
	cr_assert_not_null(r, "no %s sent", type);
	cr_assert_str_eq(tu_json_str(r, "type"), type);
	cr_assert_str_eq(tu_json_str(r, "error"), code);
	cr_assert(strstr(tu_json_str(r, "message"), about), "message '%s' does not mention '%s'",
	          tu_json_str(r, "message"), about);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(r, "box"));
	cJSON_Delete(r);
}

/* KEY.shares decoded with the holder's own key file. */
static size_t read_store(const holder *h, ig_custody_held *held)
{
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	size_t len = 0, count = 0;
	ig_error err = {0};
	char *buf = tu_read_file(h->cs.path, &len);
	cr_assert_eq(ig_keyfile_read(h->key, sk, pk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_custody_store_decode(held, IG_CUSTODY_HELD_MAX, &count, (const uint8_t *)buf, len, sk,
	                                     ig_agent_id(h->ag), &err),
	             IG_OK, "%s", err.msg);
	sodium_memzero(sk, sizeof sk);
	free(buf);
	return count;
}

static void status_of(holder *h, char *out, size_t cap)
{
	size_t n = ig_duty_custody.status_fields(h->ag, &h->cs, out, cap);
	cr_assert_lt(n, cap);
	out[n] = '\0';
}

/* ---- never a share in a log line -------------------------------------------- */

static char logged[1 << 16];

static void capture(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	size_t n = strlen(logged);
	snprintf(logged + n, sizeof logged - n, "%s\n", msg);
}

static void assert_not_logged(const uint8_t share[32])
{
	char hex[65], b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(hex, share, 32);
	sodium_bin2base64(b64, sizeof b64, share, 32, sodium_base64_VARIANT_ORIGINAL);
	cr_assert_null(strstr(logged, hex), "a share in the log");
	cr_assert_null(strstr(logged, b64), "a share in the log");
	hex[16] = '\0';
	cr_assert_null(strstr(logged, hex), "part of a share in the log");
}

/* ---- deals --------------------------------------------------------------------- */

Test(custody_holder, deal_is_kept_before_the_ack)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 3);
	holder *h = holder_new("dev1", d.ch_pk);
	logged[0] = '\0';
	ig_log_set(capture, NULL);

	cr_assert_eq(access(h->cs.path, F_OK), -1, "no store before any deal");
	assert_ack(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 2, NULL)), 1, 2);

	/* The ack came after the file: it exists, is 0600 and holds the share. */
	struct stat st;
	cr_assert_eq(stat(h->cs.path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	static ig_custody_held held[IG_CUSTODY_HELD_MAX];
	cr_assert_eq(read_store(h, held), 1);
	cr_assert_eq(held[0].epoch, 1);
	cr_assert_eq(held[0].index, 2);
	cr_assert_eq(held[0].k, 2);
	cr_assert_eq(held[0].n, 3);
	cr_assert_not(held[0].active);
	cr_assert_eq(memcmp(held[0].share, d.shares[1], 32), 0);
	cr_assert_eq(memcmp(held[0].commitments, d.commitments, 2 * 32), 0);
	cr_assert_eq(memcmp(held[0].ch_pk, d.ch_pk, 32), 0);
	char st_text[512];
	status_of(h, st_text, sizeof st_text);
	cr_assert(strstr(st_text, ",\"custody\":{\"epochs\":[1]}"), "%s", st_text);
	cr_assert(strstr(logged, "custody: holding share 2 of epoch 1 (k=2, n=3)"), "%s", logged);

	/* The same deal again (its ack lost): acknowledged again, nothing changes. */
	assert_ack(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 2, NULL)), 1, 2);
	cr_assert_eq(h->cs.count, 1);
	cr_assert_eq(h->cs.dealt, 1);

	/* A restarted agent reads it back. */
	static ig_custody_state again;
	ig_error err = {0};
	cr_assert_eq(ig_custody_duty_init(&again, h->ag, &h->pin, h->key, NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(again.count, 1);
	cr_assert_eq(memcmp(again.held[0].share, d.shares[1], 32), 0);
	ig_duty_custody.on_stop(h->ag, &again);

	assert_not_logged(d.shares[1]);
	ig_log_set(NULL, NULL);
	holder_free(h);
}

Test(custody_holder, no_ack_when_the_store_cannot_be_written)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 3);
	holder *h = holder_new("dev1", d.ch_pk);
	/* A directory where KEY.shares goes: the rename over it fails. */
	cr_assert_eq(mkdir(h->cs.path, 0700), 0);
	cr_assert_null(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 1, NULL)), "acknowledged a share not kept");
	cr_assert_eq(h->cs.count, 0);
	cr_assert(tu_all_zero(h->cs.next, sizeof h->cs.next));
	cr_assert(tu_all_zero(&h->cs.cand, sizeof h->cs.cand));
	cr_assert_eq(rmdir(h->cs.path), 0);
	assert_ack(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 1, NULL)), 1, 1);
	cr_assert_eq(h->cs.count, 1);
	holder_free(h);
}

Test(custody_holder, bad_deals_get_bad_share)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 4, 3, 5);
	holder *h = holder_new("dev1", d.ch_pk);
	const uint8_t *pk = ig_agent_public_key(h->ag);
	logged[0] = '\0';
	ig_log_set(capture, NULL);

	deal_opts flip = {.flip_box = true};
	assert_refused(send(h, deal_msg(&d, pk, 2, &flip)), "custody_ack", "bad_share", "does not open");
	deal_opts swap = {.swap_commitment = true};
	assert_refused(send(h, deal_msg(&d, pk, 2, &swap)), "custody_ack", "bad_share", "commitments do not match");
	/* The box says share 3, the message index 2. */
	deal_opts other_box = {.box_index = 3};
	assert_refused(send(h, deal_msg(&d, pk, 2, &other_box)), "custody_ack", "bad_share", "differ from the message");
	/* Box and message say 2, but the share is f(3): the commitments catch it. */
	deal_opts wrong_share = {.share = d.shares[2]};
	assert_refused(send(h, deal_msg(&d, pk, 2, &wrong_share)), "custody_ack", "bad_share", "does not verify");
	/* A share that is not f(i) at all. */
	uint8_t junk[32];
	crypto_core_ristretto255_scalar_random(junk);
	deal_opts junk_share = {.share = junk};
	assert_refused(send(h, deal_msg(&d, pk, 2, &junk_share)), "custody_ack", "bad_share", "does not verify");
	/* Boxed for another epoch than the message says. */
	deal_opts other_epoch = {.box_epoch = 5};
	assert_refused(send(h, deal_msg(&d, pk, 2, &other_epoch)), "custody_ack", "bad_share", "differ from the message");

	/* Boxed by another cluster-head key than the pinned one. */
	static dealer impostor;
	dealer_keys(&impostor);
	dealer_epoch(&impostor, 4, 3, 5);
	assert_refused(send(h, deal_msg(&impostor, pk, 2, NULL)), "custody_ack", "bad_share", "does not open");

	/* k, n and index out of range. */
	cJSON *m = deal_msg(&d, pk, 2, NULL);
	cJSON_ReplaceItemInObject(m, "n", cJSON_CreateNumber(2));
	assert_refused(send(h, m), "custody_ack", "bad_share", "out of range");
	m = deal_msg(&d, pk, 2, NULL);
	cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(m, "commitments"), 0);
	assert_refused(send(h, m), "custody_ack", "bad_share", "k points");

	/* No pin, or a refused log: nothing from that cluster head is taken. */
	h->pin.known = false;
	assert_refused(send(h, deal_msg(&d, pk, 2, NULL)), "custody_ack", "bad_share", "no cluster-head key pinned");
	h->pin.known = true;
	h->pin.refused = true;
	assert_refused(send(h, deal_msg(&d, pk, 2, NULL)), "custody_ack", "bad_share", "log was refused");
	h->pin.refused = false;

	/* Without an epoch or index, there is nothing to answer. */
	m = deal_msg(&d, pk, 2, NULL);
	cJSON_DeleteItemFromObject(m, "epoch");
	cr_assert_null(send(h, m));

	cr_assert_eq(h->cs.count, 0);
	cr_assert_eq(access(h->cs.path, F_OK), -1, "a refused share was stored");
	cr_assert_eq(h->cs.refused, 11);
	/* The good one still goes through. */
	assert_ack(send(h, deal_msg(&d, pk, 2, NULL)), 4, 2);
	for (unsigned i = 0; i < 3; i++)
		assert_not_logged(d.shares[i]);
	assert_not_logged(junk);
	ig_log_set(NULL, NULL);
	holder_free(h);
}

/* ---- epochs ---------------------------------------------------------------------- */

Test(custody_holder, activation_wipes_older_epochs)
{
	static dealer d;
	static ig_custody_held held[IG_CUSTODY_HELD_MAX];
	char st_text[512];
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 3);
	holder *h = holder_new("dev1", d.ch_pk);
	const uint8_t *pk = ig_agent_public_key(h->ag);
	assert_ack(send(h, deal_msg(&d, pk, 3, NULL)), 1, 3);
	cr_assert_null(send(h, active_msg(1)));
	cr_assert_eq(read_store(h, held), 1);
	cr_assert(held[0].active);
	uint8_t old_share[32];
	memcpy(old_share, d.shares[2], 32);

	/* Rotation: epoch 2 is dealt while 1 stays active and usable. */
	dealer_epoch(&d, 2, 2, 3);
	assert_ack(send(h, deal_msg(&d, pk, 1, NULL)), 2, 1);
	cr_assert_eq(read_store(h, held), 2);
	status_of(h, st_text, sizeof st_text);
	cr_assert(strstr(st_text, ",\"custody\":{\"epochs\":[1,2],\"active\":1}"), "%s", st_text);
	uint8_t rq[16] = {1}, xpk[32], xsk[32];
	crypto_box_keypair(xpk, xsk);
	cJSON *r = send(h, request_msg(1, rq, xpk));
	cr_assert_not_null(r);
	cr_assert_not_null(str_or_null(r, "box"), "the active epoch 1 is not released while 2 is dealt");
	cJSON_Delete(r);

	/* An older epoch than the active one is never taken. */
	static dealer older;
	memcpy(&older, &d, sizeof d);
	dealer_epoch(&older, 1, 2, 3);
	assert_refused(send(h, deal_msg(&older, pk, 1, NULL)), "custody_ack", "bad_share", "already active");

	cr_assert_null(send(h, active_msg(2)));
	cr_assert_eq(h->cs.count, 1);
	cr_assert_eq(read_store(h, held), 1, "the old epoch is still on disk");
	cr_assert_eq(held[0].epoch, 2);
	cr_assert(held[0].active);
	cr_assert_eq(memcmp(held[0].share, d.shares[0], 32), 0);
	assert_refused(send(h, deal_msg(&older, pk, 1, NULL)), "custody_ack", "bad_share", "older than the active epoch 2");
	status_of(h, st_text, sizeof st_text);
	cr_assert(strstr(st_text, ",\"custody\":{\"epochs\":[2],\"active\":2}"), "%s", st_text);

	/* Epoch 1 is void now: its requester learns it is old. */
	assert_refused(send(h, request_msg(1, rq, xpk)), "custody_share", "old_epoch", "older than the active epoch 2");
	/* An activation of an older epoch changes nothing. */
	cr_assert_null(send(h, active_msg(1)));
	cr_assert_eq(h->cs.count, 1);
	cr_assert(h->cs.held[0].active);

	/* Rotated out: epoch 3 is active without this device; epoch 2 is void too. */
	cr_assert_null(send(h, active_msg(3)));
	cr_assert_eq(h->cs.count, 0);
	cr_assert_eq(read_store(h, held), 0);
	status_of(h, st_text, sizeof st_text);
	cr_assert_null(strstr(st_text, "custody"), "%s", st_text);
	holder_free(h);
}

Test(custody_holder, a_newer_deal_replaces_one_never_activated)
{
	static dealer d;
	static ig_custody_held held[IG_CUSTODY_HELD_MAX];
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 2);
	holder *h = holder_new("dev1", d.ch_pk);
	const uint8_t *pk = ig_agent_public_key(h->ag);
	assert_ack(send(h, deal_msg(&d, pk, 1, NULL)), 1, 1);
	cr_assert_null(send(h, active_msg(1)));
	dealer_epoch(&d, 2, 2, 2);
	assert_ack(send(h, deal_msg(&d, pk, 1, NULL)), 2, 1);
	/* The deal of 2 was abandoned (a holder went away); 3 replaces it. */
	dealer_epoch(&d, 3, 2, 2);
	assert_ack(send(h, deal_msg(&d, pk, 2, NULL)), 3, 2);
	cr_assert_eq(read_store(h, held), IG_CUSTODY_HELD_MAX);
	cr_assert_eq(held[0].epoch, 1);
	cr_assert(held[0].active);
	cr_assert_eq(held[1].epoch, 3);
	cr_assert_eq(held[1].index, 2);
	/* A late copy of the abandoned deal does not push out the newer one. */
	static dealer late;
	memcpy(&late, &d, sizeof d);
	dealer_epoch(&late, 2, 2, 2);
	assert_refused(send(h, deal_msg(&late, pk, 1, NULL)), "custody_ack", "bad_share", "being dealt");
	cr_assert_eq(h->cs.count, 2);
	holder_free(h);
}

/* ---- requests -------------------------------------------------------------------- */

/* Opens a custody_share with the holder's public key; returns the share's index. */
static unsigned open_release(cJSON *r, const holder *h, uint64_t epoch, const uint8_t rq[16], const uint8_t xsk[32],
                             uint8_t share[32])
{
	char rhex[33];
	ig_hex_encode(rhex, rq, 16);
	cr_assert_not_null(r, "no custody_share sent");
	cr_assert_str_eq(tu_json_str(r, "type"), "custody_share");
	cr_assert_null(str_or_null(r, "error"), "refused: %s", str_or_null(r, "message"));
	cr_assert_eq((uint64_t)tu_json_num(r, "epoch"), epoch);
	cr_assert_str_eq(tu_json_str(r, "request"), rhex);
	cr_assert_gt(strlen(tu_json_str(r, "nonce")), 0);
	uint8_t nonce[24], box[IG_CUSTODY_RELEASE_BOX_BYTES];
	size_t n = 0;
	cr_assert_eq(tu_unhex(nonce, sizeof nonce, tu_json_str(r, "box_nonce")), sizeof nonce);
	const char *b64 = tu_json_str(r, "box");
	cr_assert_eq(sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL),
	             0);
	cr_assert_eq(n, sizeof box);
	ig_custody_release rel;
	cr_assert_eq(ig_custody_release_open(&rel, box, sizeof box, nonce, ig_agent_public_key(h->ag), xsk), IG_OK);
	cr_assert_eq(rel.epoch, epoch);
	cr_assert_eq(memcmp(rel.request, rq, 16), 0);
	cr_assert_eq(rel.index, (unsigned)tu_json_num(r, "index"));
	memcpy(share, rel.share, 32);
	/* Only the holder's key opens it as the holder's. */
	uint8_t other_pk[32], other_sk[64];
	cr_assert_eq(ig_keyfile_generate(other_pk, other_sk), IG_OK);
	cr_assert_neq(ig_custody_release_open(&rel, box, sizeof box, nonce, other_pk, xsk), IG_OK);
	cJSON_Delete(r);
	return rel.index;
}

Test(custody_holder, requests_are_answered_with_a_release_box)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 7, 2, 3);
	holder *a = holder_new("dev-a", d.ch_pk), *b = holder_new("dev-b", d.ch_pk);
	logged[0] = '\0';
	ig_log_set(capture, NULL);
	assert_ack(send(a, deal_msg(&d, ig_agent_public_key(a->ag), 1, NULL)), 7, 1);
	assert_ack(send(b, deal_msg(&d, ig_agent_public_key(b->ag), 3, NULL)), 7, 3);
	cr_assert_null(send(a, active_msg(7)));
	cr_assert_null(send(b, active_msg(7)));

	uint8_t rq[16], xpk[32], xsk[32], shares[2][32], idx[2], S[32];
	randombytes_buf(rq, sizeof rq);
	crypto_box_keypair(xpk, xsk);
	idx[0] = (uint8_t)open_release(send(a, request_msg(7, rq, xpk)), a, 7, rq, xsk, shares[0]);
	idx[1] = (uint8_t)open_release(send(b, request_msg(7, rq, xpk)), b, 7, rq, xsk, shares[1]);
	cr_assert_eq(idx[0], 1);
	cr_assert_eq(idx[1], 3);
	cr_assert_eq(memcmp(shares[0], d.shares[0], 32), 0);
	cr_assert_eq(memcmp(shares[1], d.shares[2], 32), 0);
	/* k = 2 releases rebuild S, which matches commitment 0. */
	cr_assert_eq(ig_vss_combine(S, idx, (const uint8_t(*)[32])shares, 2), IG_OK);
	cr_assert_eq(memcmp(S, d.secret, 32), 0);
	cr_assert_eq(ig_vss_check_secret(S, d.commitments[0]), IG_OK);
	char rhex[33];
	ig_hex_encode(rhex, rq, sizeof rq);
	char want[128];
	snprintf(want, sizeof want, "custody: released share of epoch 7 to request %s (index 1)", rhex);
	cr_assert(strstr(logged, want), "%s", logged);

	/* An epoch it does not hold: no_share, and no box. */
	assert_refused(send(a, request_msg(8, rq, xpk)), "custody_share", "no_share", "holds no share of epoch 8");
	/* No request id or key: nothing to answer. */
	cJSON *m = request_msg(7, rq, xpk);
	cJSON_ReplaceItemInObject(m, "pk", cJSON_CreateString("00"));
	cr_assert_null(send(a, m));
	/* A refused log: no share leaves the device. */
	a->pin.refused = true;
	assert_refused(send(a, request_msg(7, rq, xpk)), "custody_share", "no_share", "log was refused");
	a->pin.refused = false;
	cr_assert_eq(a->cs.released, 1);

	assert_not_logged(d.shares[0]);
	assert_not_logged(d.shares[2]);
	ig_log_set(NULL, NULL);
	holder_free(a);
	holder_free(b);
}

/* ---- the store at start ---------------------------------------------------------- */

static int init_again(holder *h, const char *key, ig_error *err)
{
	static ig_custody_state s;
	int rc = ig_custody_duty_init(&s, h->ag, &h->pin, key, NULL, err);
	ig_duty_custody.on_stop(h->ag, &s);
	return rc;
}

Test(custody_holder, a_damaged_store_stops_the_start)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 3);
	holder *h = holder_new("dev1", d.ch_pk);
	assert_ack(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 2, NULL)), 1, 2);
	size_t len = 0;
	char *good = tu_read_file(h->cs.path, &len);
	ig_error err = {0};
	cr_assert_eq(init_again(h, h->key, &err), IG_OK, "%s", err.msg);

	/* One flipped bit. */
	char *bad = malloc(len);
	memcpy(bad, good, len);
	bad[len / 2] ^= 0x10;
	tu_write_file(h->cs.path, bad, len);
	memset(&err, 0, sizeof err);
	cr_assert_eq(init_again(h, h->key, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, h->cs.path), "the error does not name the file: %s", err.msg);
	cr_assert(strstr(err.msg, "move it aside"), "the error does not say what to do: %s", err.msg);

	/* Truncated, and not a store at all. */
	tu_write_file(h->cs.path, good, len - 1);
	cr_assert_eq(init_again(h, h->key, &err), IG_ERR_CORRUPT);
	tu_write_file(h->cs.path, "IGCSTOR1", 8);
	cr_assert_eq(init_again(h, h->key, &err), IG_ERR_CORRUPT);

	/* Another identity's store (copied over): it does not decrypt. */
	holder *o = holder_new("dev2", d.ch_pk);
	tu_write_file(o->cs.path, good, len);
	memset(&err, 0, sizeof err);
	cr_assert_eq(init_again(o, o->key, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, o->cs.path), "%s", err.msg);

	/* Readable by others. */
	tu_write_file(h->cs.path, good, len);
	cr_assert_eq(chmod(h->cs.path, 0640), 0);
	memset(&err, 0, sizeof err);
	cr_assert_neq(init_again(h, h->key, &err), IG_OK);
	cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
	cr_assert_eq(chmod(h->cs.path, 0600), 0);
	cr_assert_eq(init_again(h, h->key, &err), IG_OK, "%s", err.msg);
	free(bad);
	free(good);
	holder_free(o);
	holder_free(h);
}

/* ---- power ----------------------------------------------------------------------- */

Test(custody_power, battery_file_contents)
{
	ig_battery b;
	cr_assert_eq(ig_battery_parse(&b, "mains", 5), IG_OK);
	cr_assert(b.known && b.mains && !b.has_percent);
	cr_assert_eq(ig_battery_parse(&b, " 42\n", 4), IG_OK);
	cr_assert(b.known && !b.mains && b.has_percent && b.percent == 42);
	cr_assert_eq(ig_battery_parse(&b, "0", 1), IG_OK);
	cr_assert(b.has_percent && b.percent == 0);
	cr_assert_eq(ig_battery_parse(&b, "100\n", 4), IG_OK);
	cr_assert_eq(b.percent, 100);
	static const char *const bad[] = {"", "\n", "101", "-1", "4.5", "1000", "Mains", "mains power", "42%", "0x10",
	                                  "4 2"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(ig_battery_parse(&b, bad[i], strlen(bad[i])), IG_ERR_INVAL, "'%s' accepted", bad[i]);
		cr_assert_not(b.known);
	}
}

static void supply(const char *dir, const char *name, const char *type, const char *file, const char *value)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/%s/type", dir, name);
	tu_write_file(path, type, strlen(type));
	snprintf(path, sizeof path, "%s/%s/%s", dir, name, file);
	tu_write_file(path, value, strlen(value));
}

Test(custody_power, status_reports_the_power)
{
	static dealer d;
	char out[512], path[512];
	ig_battery b;
	dealer_keys(&d);
	holder *h = holder_new("dev1", d.ch_pk);

	/* A laptop on its charger. */
	const char *sys = tu_scratch_dir("power");
	snprintf(h->cs.power_dir, sizeof h->cs.power_dir, "%s", sys);
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, "", "an empty power_supply says nothing");
	supply(sys, "AC", "Mains\n", "online", "1\n");
	supply(sys, "BAT0", "Battery\n", "capacity", "57\n");
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, ",\"battery\":{\"percent\":57,\"mains\":true}");
	/* Unplugged, with a second, emptier battery. */
	supply(sys, "AC", "Mains\n", "online", "0\n");
	supply(sys, "BAT1", "Battery\n", "capacity", "23\n");
	supply(sys, "usb0", "USB\n", "online", "1\n");
	cr_assert_eq(ig_battery_read(&b, NULL, sys), IG_OK);
	cr_assert(b.known && !b.mains && b.has_percent && b.percent == 23);
	/* An unplugged supply and no battery: runs on something unseen, so unknown. */
	const char *usb = tu_scratch_dir("usb");
	supply(usb, "AC", "Mains\n", "online", "0\n");
	supply(usb, "usb0", "USB\n", "online", "1\n");
	cr_assert_eq(ig_battery_read(&b, NULL, usb), IG_OK);
	cr_assert_not(b.known);
	/* A desktop: mains only. */
	const char *desk = tu_scratch_dir("desk");
	supply(desk, "ACAD", "Mains\n", "online", "1\n");
	cr_assert_eq(ig_battery_read(&b, NULL, desk), IG_OK);
	cr_assert(b.known && b.mains && !b.has_percent);
	/* No power_supply class at all. */
	cr_assert_neq(ig_battery_read(&b, NULL, "/nonexistent/power_supply"), IG_OK);
	cr_assert_not(b.known);

	/* --battery-file wins over the directory and is re-read every heartbeat. */
	snprintf(path, sizeof path, "%s/battery", h->dir);
	snprintf(h->cs.battery_file, sizeof h->cs.battery_file, "%s", path);
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, "", "a missing battery file says nothing");
	tu_write_file(path, "mains\n", 6);
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, ",\"battery\":{\"mains\":true}");
	tu_write_file(path, "18", 2);
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, ",\"battery\":{\"percent\":18,\"mains\":false}");
	tu_write_file(path, "full", 4);
	status_of(h, out, sizeof out);
	cr_assert_str_eq(out, "");

	/* With a share held, both members; the whole is valid JSON. */
	tu_write_file(path, "64", 2);
	dealer_epoch(&d, 3, 2, 2);
	assert_ack(send(h, deal_msg(&d, ig_agent_public_key(h->ag), 2, NULL)), 3, 2);
	cr_assert_null(send(h, active_msg(3)));
	status_of(h, out, sizeof out);
	char whole[600];
	snprintf(whole, sizeof whole, "{\"id\":\"dev1\"%s}", out);
	cJSON *j = cJSON_Parse(whole);
	cr_assert_not_null(j, "%s", whole);
	const cJSON *bat = cJSON_GetObjectItemCaseSensitive(j, "battery");
	const cJSON *cus = cJSON_GetObjectItemCaseSensitive(j, "custody");
	cr_assert_eq(tu_json_num(bat, "percent"), 64);
	cr_assert_eq(tu_json_num(cus, "active"), 3);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cus, "epochs")), 1);
	cJSON_Delete(j);
	/* A status buffer too small for it: nothing half-written is kept. */
	cr_assert_eq(ig_custody_status(&h->cs, &(ig_battery){.known = true, .mains = true}, out, 20), 20);
	holder_free(h);
}

/* ---- admin unseal mode (docs/PROTOCOL.md "Custody: admin approval") ---------------- */

/* A deal carrying the admin list the dealer signed (or `sign_sk`'s
 * signature, to forge one). */
static cJSON *deal_with_admins(const dealer *d, const uint8_t dev_pk[IG_PK_BYTES], unsigned index,
                               uint8_t admins[][32], size_t n, const uint8_t *sign_sk)
{
	cJSON *m = deal_msg(d, dev_pk, index, NULL);
	uint8_t sig[64];
	ig_custody_approve_admins_sort(admins, n);
	cr_assert_eq(ig_custody_approve_admins_sign(sig, "c1", d->epoch, (const uint8_t(*)[32])admins, n,
	                                    sign_sk ? sign_sk : d->ch_sk), IG_OK);
	cJSON *as = cJSON_AddArrayToObject(m, "admins");
	char hex[65], b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
	for (size_t i = 0; i < n; i++) {
		ig_hex_encode(hex, admins[i], 32);
		cJSON_AddItemToArray(as, cJSON_CreateString(hex));
	}
	sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(m, "admins_sig", b64);
	return m;
}

/* request_msg with an approval signed by admin_sk (as admin_pk) over
 * (sreq, sxpk) at size 9 and root 0x33.. */
static cJSON *approved_request(uint64_t epoch, const uint8_t request[16], const uint8_t xpk[32],
                               const uint8_t sreq[16], const uint8_t sxpk[32], const uint8_t admin_pk[32],
                               const uint8_t admin_sk[64])
{
	cJSON *m = request_msg(epoch, request, xpk);
	uint8_t root[32], sig[64];
	memset(root, 0x33, sizeof root);
	cr_assert_eq(ig_custody_approve_sign(sig, "c1", sreq, sxpk, 9, root, admin_sk), IG_OK);
	char hex[65], sb64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
	char rb64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(hex, admin_pk, 32);
	sodium_bin2base64(sb64, sizeof sb64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(rb64, sizeof rb64, root, sizeof root, sodium_base64_VARIANT_ORIGINAL);
	cJSON *ap = cJSON_AddObjectToObject(m, "approval");
	cJSON_AddStringToObject(ap, "admin_pk", hex);
	cJSON_AddStringToObject(ap, "sig", sb64);
	cJSON_AddNumberToObject(ap, "size", 9);
	cJSON_AddStringToObject(ap, "root", rb64);
	return m;
}

Test(custody_holder, admin_mode_releases_only_against_an_admin_approval)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 4, 2, 3);
	uint8_t admin_pk[32], admin_sk[64], other_pk[32], other_sk[64], admins[2][32];
	crypto_sign_keypair(admin_pk, admin_sk);
	crypto_sign_keypair(other_pk, other_sk);
	holder *h = holder_new("dev-a", d.ch_pk);
	const uint8_t *pk = ig_agent_public_key(h->ag);
	char path[400];
	snprintf(path, sizeof path, "%s.custody-admins", h->key);

	/* A list not signed by the pinned cluster-head key: bad_share, nothing kept. */
	memcpy(admins[0], admin_pk, 32);
	assert_refused(send(h, deal_with_admins(&d, pk, 2, admins, 1, other_sk)), "custody_ack", "bad_share",
	               "not signed by the pinned cluster-head key");
	cr_assert_eq(h->cs.count, 0);
	cr_assert_neq(access(path, F_OK), 0);

	/* The signed list is kept (0600) with the share, before the ack. */
	memcpy(admins[0], admin_pk, 32);
	assert_ack(send(h, deal_with_admins(&d, pk, 2, admins, 1, NULL)), 4, 2);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0, "no %s", path);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	char admin_hex[65];
	ig_hex_encode(admin_hex, admin_pk, 32);
	cr_assert(strstr(text, admin_hex) && strstr(text, "\"epoch\":4"), "%s", text);
	free(text);
	cr_assert_null(send(h, active_msg(4)));

	uint8_t rq[16], rq2[16], xpk[32], xsk[32], share[32];
	randombytes_buf(rq, sizeof rq);
	randombytes_buf(rq2, sizeof rq2);
	crypto_box_keypair(xpk, xsk);
	/* No approval, a forged one (a key not in the list), one for another
	 * request id, one for another pk: not_approved, no box. */
	assert_refused(send(h, request_msg(4, rq, xpk)), "custody_share", "not_approved", "carries no admin approval");
	assert_refused(send(h, approved_request(4, rq, xpk, rq, xpk, other_pk, other_sk)), "custody_share",
	               "not_approved", "not in the admin list");
	cJSON *m = approved_request(4, rq, xpk, rq, xpk, admin_pk, other_sk);   /* admin's name, other's signature */
	assert_refused(send(h, m), "custody_share", "not_approved", "does not verify");
	assert_refused(send(h, approved_request(4, rq, xpk, rq2, xpk, admin_pk, admin_sk)), "custody_share",
	               "not_approved", "does not verify");
	uint8_t xpk2[32], xsk2[32];
	crypto_box_keypair(xpk2, xsk2);
	assert_refused(send(h, approved_request(4, rq, xpk2, rq, xpk, admin_pk, admin_sk)), "custody_share",
	               "not_approved", "does not verify");
	m = approved_request(4, rq, xpk, rq, xpk, admin_pk, admin_sk);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(m, "approval"), "size", cJSON_CreateNumber(10));
	assert_refused(send(h, m), "custody_share", "not_approved", "does not verify");
	cr_assert_eq(h->cs.released, 0);
	/* The admin's approval of this very request: released. */
	cr_assert_eq(open_release(send(h, approved_request(4, rq, xpk, rq, xpk, admin_pk, admin_sk)), h, 4, rq, xsk,
	                          share), 2);
	cr_assert_eq(memcmp(share, d.shares[1], 32), 0);

	/* After a restart the list still guards the share. */
	ig_duty_custody.on_stop(h->ag, &h->cs);
	ig_error err = {0};
	cr_assert_eq(ig_custody_duty_init(&h->cs, h->ag, &h->pin, h->key, NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(h->cs.n_admins, 1);
	assert_refused(send(h, request_msg(4, rq, xpk)), "custody_share", "not_approved", "carries no admin approval");

	/* Epoch 5 dealt in auto mode (no list) and activated: epoch 4's list is
	 * dropped with its share, and epoch 5 is released without approval. */
	dealer_epoch(&d, 5, 2, 3);
	assert_ack(send(h, deal_msg(&d, pk, 1, NULL)), 5, 1);
	cr_assert_null(send(h, active_msg(5)));
	cr_assert_eq(h->cs.n_admins, 0);
	text = tu_read_file(path, &len);
	cr_assert_str_eq(text, "[]");
	free(text);
	cr_assert_eq(open_release(send(h, request_msg(5, rq, xpk)), h, 5, rq, xsk, share), 1);
	holder_free(h);
}

Test(custody_holder, a_damaged_admin_list_file_stops_the_start)
{
	static dealer d;
	dealer_keys(&d);
	dealer_epoch(&d, 1, 2, 3);
	holder *h = holder_new("dev-a", d.ch_pk);
	uint8_t admins[1][32];
	crypto_sign_keypair(admins[0], (uint8_t[64]){0});
	assert_ack(send(h, deal_with_admins(&d, ig_agent_public_key(h->ag), 1, admins, 1, NULL)), 1, 1);
	char path[400];
	snprintf(path, sizeof path, "%s.custody-admins", h->key);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("[{\"epoch\":1,\"admins\":[\"zz\"]}]", f);
	fclose(f);
	ig_error err = {0};
	cr_assert_eq(init_again(h, h->key, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "custody admin lists") && strstr(err.msg, "damaged"), "%s", err.msg);
	chmod(path, 0622);
	cr_assert_eq(init_again(h, h->key, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
	holder_free(h);
}
