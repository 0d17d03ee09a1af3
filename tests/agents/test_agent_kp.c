/*
 * test_agent_kp.c: unit tests for the device's key-ring logic (kp_agent.h).
 *
 * Why this exists: a key-ring device that accepts a forged hello, keeps
 * using ids a revocation exposed, or repeats a (key, nonce) pair after a
 * restart gives away every message it sends, and none of that shows while
 * things work. These tests play the cluster head (a real pool, real rings in
 * real key_ring boxes, a real signed revoked statement) and wire several
 * ig_kpa instances to each other through their publish callbacks, as the
 * broker would: a direct session and v2 data; replays and tampering dropped
 * with their reasons; hellos with a compromised id, a wrong epoch or a bad
 * mac refused; a path key through a third device when two share too few
 * ids; a revoked statement dropping what it exposes; KEYFILE.ring written,
 * read back, and refused (naming the file) when damaged, foreign or
 * group-readable; a restart that never reuses a key id and counter; and an
 * unknown key id that makes the receiver start a fresh hello.
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ig_keybox.h"
#include "ig_kp.h"
#include "ig_m2m.h"
#include "kp_agent.h"
#include "testutil.h"

#define CLUSTER "demo"
#define MAXDEV 6
#define QCAP 256

/* ---- the cluster head ----------------------------------------------------------- */

typedef struct ch {
	uint8_t pk[32], sk[64];
	uint8_t pool_secret[32];
	ig_kp_params params;
} ch;

static void ch_init(ch *c, uint64_t epoch, uint32_t pool, uint32_t ring, uint8_t q)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(c->pk, c->sk, 0x00);
	c->params = (ig_kp_params){.epoch = epoch, .pool = pool, .ring = ring, .q = q};
	ig_kp_pool_secret(c->pool_secret, c->sk, epoch);
	ig_kp_ring_seed(c->params.seed, c->pool_secret);
}

/* The inbox key_ring message for device id (pk dev_pk), as the cluster head sends it. */
static cJSON *ch_ring_msg(const ch *c, const char *id, const uint8_t dev_pk[32], const char *nonce)
{
	uint32_t m = c->params.ring;
	uint32_t *ids = calloc(m, sizeof *ids);
	uint8_t(*keys)[32] = calloc(m, 32);
	cr_assert(ids && keys);
	cr_assert_eq(ig_kp_ring_ids(ids, c->params.seed, id, c->params.pool, m), IG_OK);
	for (uint32_t i = 0; i < m; i++)
		ig_kp_pool_key(keys[i], c->pool_secret, ids[i]);
	uint8_t hash[32];
	ig_kp_ring_hash(hash, c->params.epoch, id, ids, (const uint8_t(*)[32])keys, m);
	size_t cap = 64 + 80 + (size_t)m * 36;
	uint8_t *plain = malloc(cap), *box = malloc(cap + crypto_box_MACBYTES);
	int n = ig_kp_ring_plain(plain, cap, &c->params, id, ids, (const uint8_t(*)[32])keys);
	cr_assert_gt(n, 0);
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_device(&bk, c->sk, dev_pk), IG_OK);
	uint8_t nonce_b[24];
	randombytes_buf(nonce_b, sizeof nonce_b);
	cr_assert_eq(crypto_box_easy_afternm(box, plain, (size_t)n, nonce_b, bk.k), 0);
	char *b64 = malloc(sodium_base64_ENCODED_LEN((size_t)n + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL));
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN((size_t)n + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL),
	                  box, (size_t)n + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL);
	char seed_hex[65], hash_hex[65], nonce_hex[49];
	ig_hex_encode(seed_hex, c->params.seed, 32);
	ig_hex_encode(hash_hex, hash, 32);
	ig_hex_encode(nonce_hex, nonce_b, 24);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "key_ring");
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	cJSON_AddNumberToObject(o, "epoch", (double)c->params.epoch);
	cJSON_AddNumberToObject(o, "pool", c->params.pool);
	cJSON_AddNumberToObject(o, "ring", c->params.ring);
	cJSON_AddNumberToObject(o, "q", c->params.q);
	cJSON_AddStringToObject(o, "seed", seed_hex);
	cJSON_AddStringToObject(o, "ring_hash", hash_hex);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", b64);
	free(b64);
	free(plain);
	free(box);
	free(ids);
	free(keys);
	return o;
}

/* The signed revoked statement text (malloc'd). */
static char *ch_revoked(const ch *c, uint64_t serial, const uint32_t *ids, size_t n_ids, const char *const *devs,
                        size_t n_dev)
{
	ig_kp_revoked r = {0};
	snprintf(r.cluster, sizeof r.cluster, "%s", CLUSTER);
	r.params = c->params;
	r.serial = serial;
	r.ids = calloc(n_ids + 1, sizeof *r.ids);
	if (n_ids)
		memcpy(r.ids, ids, n_ids * sizeof *ids);
	r.n_ids = n_ids;
	r.devices = calloc(n_dev + 1, sizeof *r.devices);
	for (size_t i = 0; i < n_dev; i++)
		snprintf(r.devices[i], sizeof r.devices[i], "%s", devs[i]);
	r.n_devices = n_dev;
	char *json = ig_kp_revoked_json(&r, c->sk);
	cr_assert_not_null(json, "ig_kp_revoked_json failed");
	ig_kp_revoked_free(&r);
	return json;
}

/* ---- devices and the bus between them ---------------------------------------------------- */

typedef struct msgq {
	char topic[QCAP][160];
	uint8_t *msg[QCAP];
	size_t len[QCAP];
	size_t head, tail;
} msgq;

typedef struct dev {
	char id[IG_ID_MAX + 1];
	uint8_t pk[32], sk[64], file_key[32];
	char ring_path[512];
	ig_box_key bk;
	ig_kpa *k;
	const char *via[4];
	size_t n_via;
} dev;

typedef struct net {
	msgq q;
	dev d[MAXDEV];
	size_t n;
	const char *dir;
	/* the last result and reason per receiving device, and its plaintext */
	int last_rc[MAXDEV], last_why[MAXDEV];
	uint8_t last_pt[MAXDEV][256];
} net;

static void on_publish(void *ctx, const char *topic, const uint8_t *msg, size_t len)
{
	msgq *q = ctx;
	cr_assert_lt(q->tail - q->head, QCAP, "message queue overflow");
	size_t i = q->tail++ % QCAP;
	snprintf(q->topic[i], sizeof q->topic[i], "%s", topic);
	q->msg[i] = malloc(len);
	memcpy(q->msg[i], msg, len);
	q->len[i] = len;
}

static size_t queued(const net *nt)
{
	return nt->q.tail - nt->q.head;
}

/* Removes the oldest queued message into the caller's buffers (msg malloc'd). */
static void take(net *nt, char topic[160], uint8_t **msg, size_t *len)
{
	cr_assert_gt(queued(nt), 0);
	size_t i = nt->q.head++ % QCAP;
	memcpy(topic, nt->q.topic[i], 160);
	*msg = nt->q.msg[i];
	*len = nt->q.len[i];
}

static void drain(net *nt)
{
	while (queued(nt)) {
		char t[160];
		uint8_t *m;
		size_t l;
		take(nt, t, &m, &l);
		free(m);
	}
}

static dev *find(net *nt, const char *id)
{
	for (size_t i = 0; i < nt->n; i++)
		if (strcmp(nt->d[i].id, id) == 0)
			return &nt->d[i];
	return NULL;
}

static int dev_open(net *nt, dev *d, ig_error *err)
{
	ig_kpa_config cfg = {.cluster = CLUSTER, .self_id = d->id, .ring_path = d->ring_path,
	                     .via = d->via, .n_via = d->n_via, .publish = on_publish, .publish_ctx = &nt->q};
	return ig_kpa_new(&d->k, &cfg, d->file_key, d->pk, err);
}

static dev *add_dev(net *nt, const ch *c, const char *id, uint8_t seed_first)
{
	cr_assert_lt(nt->n, MAXDEV);
	dev *d = &nt->d[nt->n++];
	memset(d, 0, sizeof *d);
	snprintf(d->id, sizeof d->id, "%s", id);
	tu_seed_keypair(d->pk, d->sk, seed_first);
	ig_kp_file_key(d->file_key, d->sk);
	if (!nt->dir)
		nt->dir = tu_scratch_dir("kpa");
	snprintf(d->ring_path, sizeof d->ring_path, "%s/%s.key.ring", nt->dir, id);
	cr_assert_eq(ig_keybox_key_for_ch(&d->bk, d->sk, c->pk), IG_OK);
	ig_error err = {0};
	cr_assert_eq(dev_open(nt, d, &err), IG_OK, "%s", err.msg);
	cr_assert_not(ig_kpa_has_ring(d->k));
	return d;
}

static void give_ring(const ch *c, dev *d)
{
	cJSON *m = ch_ring_msg(c, d->id, d->pk, NULL);
	ig_error err = {0};
	cr_assert_eq(ig_kpa_accept_ring(d->k, m, &d->bk, &err), IG_OK, "%s", err.msg);
	cJSON_Delete(m);
	cr_assert(ig_kpa_has_ring(d->k));
	cr_assert_eq(ig_kpa_epoch(d->k), c->params.epoch);
}

/* Delivers the oldest queued message to its addressee. */
static void step(net *nt, uint64_t now)
{
	char topic[160], to[IG_ID_MAX + 1], from[IG_ID_MAX + 1];
	uint8_t *msg;
	size_t len;
	take(nt, topic, &msg, &len);
	cr_assert_eq(sscanf(topic, "iotguard/" CLUSTER "/m2m/%64[^/]/%64s", to, from), 2, "topic %s", topic);
	dev *d = find(nt, to);
	cr_assert_not_null(d, "message to unknown device %s", to);
	size_t di = (size_t)(d - nt->d);
	nt->last_why[di] = -1;
	nt->last_rc[di] = ig_kpa_on_message(d->k, topic, from, msg, len, now, nt->last_pt[di], sizeof nt->last_pt[di],
	                                    &nt->last_why[di]);
	free(msg);
}

static void pump(net *nt, uint64_t now)
{
	for (int i = 0; queued(nt) && i < 1000; i++)
		step(nt, now);
	cr_assert_eq(queued(nt), 0);
}

static void net_free(net *nt)
{
	drain(nt);
	for (size_t i = 0; i < nt->n; i++)
		ig_kpa_free(nt->d[i].k);
}

static size_t ring_of(const ch *c, uint32_t *out, const char *id)
{
	cr_assert_eq(ig_kp_ring_ids(out, c->params.seed, id, c->params.pool, c->params.ring), IG_OK);
	return c->params.ring;
}

static size_t shared(const ch *c, const char *a, const char *b, uint32_t *out)
{
	uint32_t ra[1024], rb[1024], tmp[IG_KP_PAIR_MAX_IDS];
	ring_of(c, ra, a);
	ring_of(c, rb, b);
	return ig_kp_shared(out ? out : tmp, IG_KP_PAIR_MAX_IDS, ra, c->params.ring, rb, c->params.ring, NULL, 0);
}

/* a sends pt to b (must be ready); the message is left queued. */
static void send_text(dev *a, const char *b, const char *text, uint64_t now)
{
	cr_assert(ig_kpa_ready(a->k, b), "%s has no session with %s", a->id, b);
	cr_assert_eq(ig_kpa_send(a->k, b, (const uint8_t *)text, strlen(text), now), IG_OK);
}

/* A direct session between a and b (a initiates); checks both ends. */
static void connect_pair(net *nt, dev *a, dev *b, uint64_t now)
{
	cr_assert_eq(ig_kpa_want(a->k, b->id, now), IG_OK);
	cr_assert_eq(queued(nt), 1, "want sends exactly one hello");
	pump(nt, now);
	cr_assert(ig_kpa_ready(a->k, b->id));
	cr_assert(ig_kpa_ready(b->k, a->id));
}

/* The header fields of a queued v2 message i (0 = oldest). */
static void peek_header(const net *nt, size_t i, ig_m2m_header *h)
{
	size_t idx = (nt->q.head + i) % QCAP;
	cr_assert_eq(nt->q.msg[idx][0], 2);
	cr_assert_eq(ig_m2m_parse_header_v(nt->q.msg[idx], nt->q.len[idx], 2, h), IG_OK);
}

/* ---- a direct session and v2 data ----------------------------------------------------------- */

Test(agent_kp, direct_session_exchanges_v2_data)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	cr_assert_geq(shared(&c, a->id, b->id, NULL), 2, "the fixture needs two devices sharing q ids");
	give_ring(&c, a);
	give_ring(&c, b);
	cr_assert_not(ig_kpa_ready(a->k, b->id));
	connect_pair(&nt, a, b, 1000);
	/* A second want while live is a no-op. */
	cr_assert_eq(ig_kpa_want(a->k, b->id, 1001), IG_OK);
	cr_assert_eq(queued(&nt), 0);

	send_text(a, b->id, "hello b", 2000);
	ig_m2m_header h;
	peek_header(&nt, 0, &h);
	cr_assert_eq(h.suite, IG_SUITE_XCHACHA20POLY1305);
	cr_assert_eq(h.counter, 1);
	step(&nt, 2000);
	cr_assert_eq(nt.last_rc[1], 7);
	cr_assert_eq(memcmp(nt.last_pt[1], "hello b", 7), 0);
	ig_kpa_rx_info rx;
	cr_assert(ig_kpa_last_rx(b->k, &rx));
	cr_assert_eq(rx.counter, 1);
	cr_assert_not(rx.path);
	cr_assert_eq(memcmp(rx.key_id, h.key_id, 16), 0);

	send_text(b, a->id, "hello a", 2100);
	step(&nt, 2100);
	cr_assert_eq(nt.last_rc[0], 7);
	cr_assert_eq(memcmp(nt.last_pt[0], "hello a", 7), 0);

	char st[1024];
	size_t n = ig_kpa_status(a->k, st, sizeof st);
	cr_assert_lt(n, sizeof st);
	cJSON *o = cJSON_Parse(st + strlen(",\"kp\":"));
	cr_assert_not_null(o, "status is not JSON: %s", st);
	cr_assert_eq(tu_json_num(o, "epoch"), 1);
	cr_assert_eq(tu_json_num(o, "ring"), 30);
	cr_assert_eq(tu_json_num(o, "sessions"), 1);
	cr_assert_eq(tu_json_num(o, "sent"), 1);
	cr_assert_eq(tu_json_num(o, "received"), 1);
	const cJSON *peers = cJSON_GetObjectItem(o, "peers");
	cr_assert_eq(cJSON_GetArraySize(peers), 1);
	cr_assert_str_eq(tu_json_str(cJSON_GetArrayItem(peers, 0), "peer"), "dev-b");
	cr_assert_str_eq(tu_json_str(cJSON_GetArrayItem(peers, 0), "key"), "direct");
	cJSON_Delete(o);
	/* A status that does not fit says so instead of writing half. */
	cr_assert_geq(ig_kpa_status(a->k, st, 20), 20);
	net_free(&nt);
}

Test(agent_kp, replayed_and_tampered_v2_are_dropped)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	connect_pair(&nt, a, b, 1000);

	send_text(a, b->id, "one", 2000);
	char topic[160];
	uint8_t *msg;
	size_t len;
	take(&nt, topic, &msg, &len);
	uint8_t pt[64];
	int why = -1;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 2000, pt, sizeof pt, &why), 3);
	/* The same bytes again: replayed. */
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 2001, pt, sizeof pt, &why), -1);
	cr_assert_eq(why, IG_DROP_REPLAYED);
	cr_assert_str_eq(ig_kpa_drop_name(why), "replayed");

	send_text(a, b->id, "two", 2002);
	uint8_t *m2;
	size_t l2;
	take(&nt, topic, &m2, &l2);
	/* A flipped ciphertext bit: tampered, and the window did not move. */
	m2[l2 - 1] ^= 0x01;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, m2, l2, 2003, pt, sizeof pt, &why), -1);
	cr_assert_eq(why, IG_DROP_TAMPERED);
	m2[l2 - 1] ^= 0x01;
	/* The same message on another sender's topic: tampered too. */
	char other[160];
	snprintf(other, sizeof other, "iotguard/" CLUSTER "/m2m/dev-b/dev-x");
	cr_assert_eq(ig_kpa_on_message(b->k, other, "dev-x", m2, l2, 2003, pt, sizeof pt, &why), -1);
	cr_assert_eq(why, IG_DROP_TAMPERED);
	/* A flipped counter in the header: the AAD no longer matches. */
	m2[IG_M2M_HEADER_BYTES - 1] ^= 0x04;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, m2, l2, 2003, pt, sizeof pt, &why), -1);
	cr_assert_eq(why, IG_DROP_TAMPERED);
	m2[IG_M2M_HEADER_BYTES - 1] ^= 0x04;
	/* The genuine one still opens. */
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, m2, l2, 2004, pt, sizeof pt, &why), 3);
	cr_assert_eq(memcmp(pt, "two", 3), 0);
	/* A truncated one is malformed. */
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, m2, 10, 2005, pt, sizeof pt, &why), -1);
	cr_assert_eq(why, IG_DROP_MALFORMED);
	free(msg);
	free(m2);

	char st[1024];
	cr_assert_lt(ig_kpa_status(b->k, st, sizeof st), sizeof st);
	cr_assert_not_null(strstr(st, "\"replayed\":1"), "%s", st);
	cr_assert_not_null(strstr(st, "\"tampered\":3"), "%s", st);
	cr_assert_not_null(strstr(st, "\"malformed\":1"), "%s", st);
	net_free(&nt);
}

/* ---- hellos that must be refused ------------------------------------------------------------ */

/* A kind-1 hello from a to b built by hand with the given fields and K. */
static size_t forge_hello(uint8_t *out, const ch *c, const char *a, const char *b, uint64_t epoch,
                          const uint32_t *ids, size_t n, const uint8_t *K_override)
{
	ig_kp_hello h = {.kind = 1, .epoch = epoch, .source = 0, .n = (uint16_t)n};
	memcpy(h.ids, ids, n * sizeof *ids);
	randombytes_buf(h.na, 32);
	uint8_t keys[IG_KP_PAIR_MAX_IDS][32], K[32];
	for (size_t i = 0; i < n; i++)
		ig_kp_pool_key(keys[i], c->pool_secret, ids[i]);
	cr_assert_eq(ig_kp_pair_key(K, c->params.epoch, a, b, ids, (const uint8_t(*)[32])keys, n), IG_OK);
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/%s/%s", b, a);
	int len = ig_kp_hello_build(out, IG_KP_HELLO_MAX, &h, K_override ? K_override : K, topic);
	cr_assert_gt(len, 0);
	return (size_t)len;
}

Test(agent_kp, bad_hellos_are_refused)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	size_t n = shared(&c, a->id, b->id, ids);
	cr_assert_geq(n, 2);
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/dev-b/dev-a");
	uint8_t msg[IG_KP_HELLO_MAX];
	int why = -1;

	/* Genuine: accepted and answered (proves the forger is right). */
	size_t len = forge_hello(msg, &c, a->id, b->id, 1, ids, n, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 10, NULL, 0, &why), 0);
	cr_assert_eq(queued(&nt), 1);
	drain(&nt);

	/* Wrong epoch. */
	len = forge_hello(msg, &c, a->id, b->id, 2, ids, n, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 20, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_WRONG_EPOCH);
	cr_assert_str_eq(ig_kpa_drop_name(why), "wrong_epoch");

	/* Bad mac: a wrong K, and a flipped mac byte. */
	uint8_t wrong[32] = {1};
	len = forge_hello(msg, &c, a->id, b->id, 1, ids, n, wrong);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 30, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_BAD_MAC);
	len = forge_hello(msg, &c, a->id, b->id, 1, ids, n, NULL);
	msg[len - 1] ^= 0x80;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 31, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_BAD_MAC);

	/* Fewer than q ids, and an id b does not hold. */
	len = forge_hello(msg, &c, a->id, b->id, 1, ids, 1, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 40, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_NO_KEY);
	uint32_t ra[1024], rb[1024], foreign[2] = {ids[0], 0};
	ring_of(&c, ra, a->id);
	ring_of(&c, rb, b->id);
	for (uint32_t i = 0; i < c.params.ring; i++) {
		bool in_b = false;
		for (uint32_t j = 0; j < c.params.ring; j++)
			in_b |= rb[j] == ra[i];
		if (!in_b && ra[i] > ids[0]) {
			foreign[1] = ra[i];
			break;
		}
	}
	cr_assert_neq(foreign[1], 0);
	len = forge_hello(msg, &c, a->id, b->id, 1, foreign, 2, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 41, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_NO_KEY);

	/* A reply nobody asked for. */
	cr_assert_eq(ig_kpa_want(a->k, b->id, 50), IG_OK);
	drain(&nt);
	ig_kp_hello r = {.kind = 2, .epoch = 1, .source = 0, .n = (uint16_t)n};
	memcpy(r.ids, ids, n * sizeof *ids);
	randombytes_buf(r.na, 32);
	randombytes_buf(r.nb, 32);
	char atopic[160];
	snprintf(atopic, sizeof atopic, "iotguard/" CLUSTER "/m2m/dev-a/dev-b");
	uint8_t K[32] = {0};
	int rl = ig_kp_hello_build(msg, sizeof msg, &r, K, atopic);
	cr_assert_gt(rl, 0);
	cr_assert_eq(ig_kpa_on_message(a->k, atopic, b->id, msg, (size_t)rl, 51, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_UNEXPECTED);

	/* Compromised: once b accepts a statement naming one of those ids, a hello using it is refused. */
	char *rev = ch_revoked(&c, 7, ids, 1, (const char *const[]){"dev-z"}, 1);
	bool newer = true;
	ig_error err = {0};
	cr_assert_eq(ig_kpa_accept_revoked(b->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 60, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_not(newer);
	len = forge_hello(msg, &c, a->id, b->id, 1, ids, n, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 61, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_COMPROMISED);
	/* ... and so is any hello from a revoked device. */
	char *rev2 = ch_revoked(&c, 8, ids, 1, (const char *const[]){"dev-a"}, 1);
	cr_assert_eq(ig_kpa_accept_revoked(b->k, (const uint8_t *)rev2, strlen(rev2), c.pk, &newer, 62, &err), IG_OK,
	             "%s", err.msg);
	len = forge_hello(msg, &c, a->id, b->id, 1, ids + 1, n - 1, NULL);
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, 63, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_COMPROMISED);
	free(rev);
	free(rev2);
	net_free(&nt);
}

/* Every log line of a test, to look for what must (not) be there. */
static char logbuf[65536];
static void log_sink(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	size_t have = strlen(logbuf);
	snprintf(logbuf + have, sizeof logbuf - have, "%s\n", msg);
}

/* ---- a path through a third device ---------------------------------------------------------- */

Test(agent_kp, path_key_through_an_intermediary)
{
	ch c;
	ch_init(&c, 1, 1000, 30, 2);
	/* Find b sharing fewer than q ids with a, and c sharing q with both. */
	char bid[32] = "", cid[32] = "";
	for (int i = 0; i < 2000 && !bid[0]; i++) {
		snprintf(bid, sizeof bid, "dev-b%d", i);
		if (shared(&c, "dev-a", bid, NULL) >= 2)
			bid[0] = '\0';
	}
	cr_assert(bid[0]);
	for (int i = 0; i < 5000 && !cid[0]; i++) {
		snprintf(cid, sizeof cid, "dev-c%d", i);
		if (shared(&c, "dev-a", cid, NULL) < 2 || shared(&c, bid, cid, NULL) < 2)
			cid[0] = '\0';
	}
	cr_assert(cid[0], "no intermediary found for the fixture");

	ig_log_set(log_sink, NULL);
	net nt = {0};
	dev *a;
	/* a lists a useless candidate first (shares nothing usable), then c. */
	char useless[32] = "";
	for (int i = 0; i < 2000 && !useless[0]; i++) {
		snprintf(useless, sizeof useless, "dev-u%d", i);
		if (shared(&c, "dev-a", useless, NULL) >= 2)
			useless[0] = '\0';
	}
	a = add_dev(&nt, &c, "dev-a", 0x20);
	ig_kpa_free(a->k);
	a->via[0] = useless;
	a->via[1] = cid;
	a->n_via = 2;
	ig_error err = {0};
	cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
	dev *b = add_dev(&nt, &c, bid, 0x40), *cc = add_dev(&nt, &c, cid, 0x60);
	give_ring(&c, a);
	give_ring(&c, b);
	give_ring(&c, cc);

	cr_assert_eq(ig_kpa_want(a->k, b->id, 1000), IG_OK);
	cr_assert_eq(queued(&nt), 1, "one path request");
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/%s/dev-a", cid);
	cr_assert_str_eq(nt.q.topic[nt.q.head % QCAP], topic, "the request goes to the candidate sharing q with both");
	cr_assert_eq(nt.q.msg[nt.q.head % QCAP][0], 4);
	pump(&nt, 1000);
	cr_assert(ig_kpa_ready(a->k, b->id));
	cr_assert(ig_kpa_ready(b->k, a->id));

	send_text(a, b->id, "via c", 2000);
	step(&nt, 2000);
	cr_assert_eq(nt.last_rc[1], 5);
	ig_kpa_rx_info rx;
	cr_assert(ig_kpa_last_rx(b->k, &rx));
	cr_assert(rx.path);
	cr_assert_str_eq(rx.via, cid);
	send_text(b, a->id, "back", 2001);
	step(&nt, 2001);
	cr_assert_eq(nt.last_rc[0], 4);

	char st[1024];
	cr_assert_lt(ig_kpa_status(a->k, st, sizeof st), sizeof st);
	char want[128];
	snprintf(want, sizeof want, "\"key\":\"path\",\"via\":\"%s\"", cid);
	cr_assert_not_null(strstr(st, want), "%s", st);
	cr_assert_lt(ig_kpa_status(cc->k, st, sizeof st), sizeof st);
	cr_assert_not_null(strstr(st, "\"relayed\":1"), "%s", st);
	cr_assert_not_null(strstr(logbuf, "relayed a path key between dev-a and "), "%s", logbuf);
	snprintf(want, sizeof want, "path key with %s via %s", bid, cid);
	cr_assert_not_null(strstr(logbuf, want), "%s", logbuf);
	/* No ring key in any log line. */
	uint32_t ids[1024];
	ring_of(&c, ids, "dev-a");
	for (uint32_t i = 0; i < c.params.ring; i++) {
		uint8_t key[32];
		char hex[65];
		ig_kp_pool_key(key, c.pool_secret, ids[i]);
		ig_hex_encode(hex, key, 32);
		cr_assert_null(strstr(logbuf, hex));
	}

	/* Revoking the intermediary drops the path session on both ends. */
	uint32_t cids[1024];
	ring_of(&c, cids, cid);
	char *rev = ch_revoked(&c, 3, cids, c.params.ring, (const char *const[]){cid}, 1);
	bool newer;
	cr_assert_eq(ig_kpa_accept_revoked(a->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 3000, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(ig_kpa_accept_revoked(b->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 3000, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_not(ig_kpa_ready(a->k, b->id));
	cr_assert_not(ig_kpa_ready(b->k, a->id));
	free(rev);
	ig_log_set(NULL, NULL);
	net_free(&nt);
}

Test(agent_kp, relay_refusals_and_candidate_timeout)
{
	ch c;
	ch_init(&c, 1, 1000, 30, 2);
	char bid[32] = "", cid[32] = "", did[32] = "";
	for (int i = 0; i < 2000 && !bid[0]; i++) {
		snprintf(bid, sizeof bid, "dev-b%d", i);
		if (shared(&c, "dev-a", bid, NULL) >= 2)
			bid[0] = '\0';
	}
	for (int i = 0; i < 5000 && !cid[0]; i++) {
		snprintf(cid, sizeof cid, "dev-c%d", i);
		if (shared(&c, "dev-a", cid, NULL) < 2 || shared(&c, bid, cid, NULL) < 2)
			cid[0] = '\0';
	}
	for (int i = 5000; i < 10000 && !did[0]; i++) {
		snprintf(did, sizeof did, "dev-c%d", i);
		if (shared(&c, "dev-a", did, NULL) < 2 || shared(&c, bid, did, NULL) < 2)
			did[0] = '\0';
	}
	cr_assert(bid[0] && cid[0] && did[0]);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20);
	ig_kpa_free(a->k);
	a->via[0] = did;   /* silent: its request is never answered */
	a->via[1] = cid;
	a->n_via = 2;
	ig_error err = {0};
	cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
	dev *b = add_dev(&nt, &c, bid, 0x40), *cc = add_dev(&nt, &c, cid, 0x60);
	give_ring(&c, a);
	give_ring(&c, b);
	give_ring(&c, cc);

	cr_assert_eq(ig_kpa_want(a->k, b->id, 1000), IG_OK);
	cr_assert_eq(queued(&nt), 1);
	drain(&nt);   /* the first candidate never answers */
	ig_kpa_tick(a->k, 1000 + IG_KPA_PATH_RETRY_MS - 1);
	cr_assert_eq(queued(&nt), 0);
	ig_kpa_tick(a->k, 1000 + IG_KPA_PATH_RETRY_MS);
	cr_assert_eq(queued(&nt), 1, "the next candidate is asked after 5 s");
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/%s/dev-a", cid);
	cr_assert_str_eq(nt.q.topic[nt.q.head % QCAP], topic);
	pump(&nt, 7000);
	cr_assert(ig_kpa_ready(a->k, b->id));

	/* A request naming the requester itself as target: refused. */
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	size_t n = shared(&c, "dev-a", cid, ids);
	ig_kp_path req = {.kind = 1, .epoch = 1, .n = (uint16_t)n};
	memcpy(req.ids, ids, n * sizeof *ids);
	snprintf(req.b, sizeof req.b, "dev-a");
	uint8_t keys[IG_KP_PAIR_MAX_IDS][32], K[32], msg[IG_KP_PATH_MAX];
	for (size_t i = 0; i < n; i++)
		ig_kp_pool_key(keys[i], c.pool_secret, ids[i]);
	cr_assert_eq(ig_kp_pair_key(K, 1, "dev-a", cid, ids, (const uint8_t(*)[32])keys, n), IG_OK);
	int why = -1;
	randombytes_buf(req.req_id, 16);
	int len = ig_kp_path_request_build(msg, sizeof msg, &req, K, topic);
	cr_assert_gt(len, 0);
	cr_assert_eq(ig_kpa_on_message(cc->k, topic, "dev-a", msg, (size_t)len, 8000, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_REFUSED);
	/* At most 10 relays a minute per requester (1 done above). */
	snprintf(req.b, sizeof req.b, "%s", bid);
	int ok = 0, refused = 0;
	for (int i = 0; i < 12; i++) {
		randombytes_buf(req.req_id, 16);
		len = ig_kp_path_request_build(msg, sizeof msg, &req, K, topic);
		int rc = ig_kpa_on_message(cc->k, topic, "dev-a", msg, (size_t)len, 8000 + (uint64_t)i, NULL, 0, &why);
		if (rc == 0)
			ok++;
		else if (why == IG_KPA_DROP_REFUSED)
			refused++;
	}
	/* One relay before; a refused request does not count. */
	cr_assert_eq(ok, IG_KPA_RELAYS_PER_MIN - 1, "ok %d", ok);
	cr_assert_eq(refused, 12 - ok);
	drain(&nt);
	/* A path key nobody asked for (a is not waiting for one from c now): unexpected. */
	ig_kp_path pk = {.kind = 2, .epoch = 1, .n = (uint16_t)n};
	memcpy(pk.ids, ids, n * sizeof *ids);
	snprintf(pk.a, sizeof pk.a, "dev-a");
	snprintf(pk.b, sizeof pk.b, "%s", bid);
	randombytes_buf(pk.req_id, 16);
	randombytes_buf(pk.path_id, 16);
	uint8_t path_key[32] = {9};
	char atopic[160];
	snprintf(atopic, sizeof atopic, "iotguard/" CLUSTER "/m2m/dev-a/%s", cid);
	len = ig_kp_path_key_build(msg, sizeof msg, &pk, K, atopic, path_key);
	cr_assert_gt(len, 0);
	cr_assert_eq(ig_kpa_on_message(a->k, atopic, cid, msg, (size_t)len, 9000, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_UNEXPECTED);
	net_free(&nt);
}

/* ---- the revoked statement ---------------------------------------------------------------------- */

Test(agent_kp, revoked_statement_drops_affected_sessions)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40),
	    *d = add_dev(&nt, &c, "dev-d", 0x60);
	give_ring(&c, a);
	give_ring(&c, b);
	give_ring(&c, d);
	connect_pair(&nt, a, b, 1000);
	connect_pair(&nt, a, d, 1000);
	send_text(a, b->id, "before", 1500);
	char btopic[160];
	uint8_t *old;
	size_t old_len;
	take(&nt, btopic, &old, &old_len);

	/* The statement revokes d and compromises every id a and b share. */
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	size_t n = shared(&c, a->id, b->id, ids);
	char *rev = ch_revoked(&c, 5, ids, n, (const char *const[]){"dev-d"}, 1);
	bool newer = true;
	ig_error err = {0};
	cr_assert_eq(ig_kpa_accept_revoked(a->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 2000, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_not(newer);
	cr_assert_not(ig_kpa_ready(a->k, b->id), "the session over compromised ids is gone");
	cr_assert_not(ig_kpa_ready(a->k, d->id), "the session with the revoked device is gone");
	cr_assert_eq(ig_kpa_send(a->k, b->id, (const uint8_t *)"x", 1, 2001), IG_ERR_STATE);
	/* No new session with either: no usable ids with b, d is revoked. */
	cr_assert_eq(ig_kpa_want(a->k, b->id, 2002), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_kpa_want(a->k, d->id, 2002), IG_ERR_STATE);
	cr_assert_eq(queued(&nt), 0);

	/* b has not seen the statement yet: its message under the old session is dropped "revoked" by a. */
	send_text(b, a->id, "stale", 2003);
	step(&nt, 2003);
	cr_assert_eq(nt.last_rc[0], -1);
	cr_assert_eq(nt.last_why[0], IG_DROP_REVOKED);

	/* The same statement again: nothing changes; a lower serial, a bad signature or a foreign
	 * key are refused. */
	cr_assert_eq(ig_kpa_accept_revoked(a->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 2004, &err),
	             IG_ERR_EXISTS);
	char *lower = ch_revoked(&c, 4, ids, n, (const char *const[]){"dev-d"}, 1);
	cr_assert_eq(ig_kpa_accept_revoked(a->k, (const uint8_t *)lower, strlen(lower), c.pk, &newer, 2005, &err),
	             IG_ERR_STATE);
	uint8_t other_pk[32], other_sk[64];
	tu_seed_keypair(other_pk, other_sk, 0x99);
	cr_assert_neq(ig_kpa_accept_revoked(a->k, (const uint8_t *)rev, strlen(rev), other_pk, &newer, 2006, &err),
	              IG_OK);

	/* A statement of a later epoch says so (the duty then asks for a new ring). */
	ch c2;
	ch_init(&c2, 2, 100, 30, 2);
	char *next = ch_revoked(&c2, 9, NULL, 0, NULL, 0);
	cr_assert_eq(ig_kpa_accept_revoked(a->k, (const uint8_t *)next, strlen(next), c2.pk, &newer, 2007, &err), IG_OK,
	             "%s", err.msg);
	cr_assert(newer);
	/* ... and an older epoch's statement after a new ring is refused. */
	give_ring(&c2, b);
	cr_assert_eq(ig_kpa_accept_revoked(b->k, (const uint8_t *)rev, strlen(rev), c.pk, &newer, 2008, &err),
	             IG_ERR_STATE);

	/* The revoked set is in the ring file: a restarted a still refuses d. */
	ig_kpa_free(a->k);
	cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_kpa_want(a->k, d->id, 3000), IG_ERR_STATE);
	free(old);
	free(rev);
	free(lower);
	free(next);
	net_free(&nt);
}

/* ---- KEYFILE.ring ---------------------------------------------------------------------------------- */

Test(agent_kp, ring_file_round_trips_and_refuses_bad_files)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	/* An answer to a request we did not make is refused; the right nonce is accepted. */
	cJSON *m = ch_ring_msg(&c, a->id, a->pk, "00112233");
	ig_error err = {0};
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_ERR_STATE);
	ig_kpa_set_ring_nonce(a->k, "00112233");
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_ERR_EXISTS);
	cJSON_Delete(m);
	/* A ring for another device, or with a cleartext field changed, or a box under another key. */
	m = ch_ring_msg(&c, b->id, a->pk, NULL);
	cr_assert_neq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_OK);
	cJSON_Delete(m);
	m = ch_ring_msg(&c, a->id, a->pk, NULL);
	cJSON_ReplaceItemInObject(m, "q", cJSON_CreateNumber(3));
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_ERR_INVAL);
	cJSON_Delete(m);
	m = ch_ring_msg(&c, a->id, b->pk, NULL);
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_ERR_CRYPTO);
	cJSON_Delete(m);
	give_ring(&c, b);

	struct stat st;
	cr_assert_eq(stat(a->ring_path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	size_t flen;
	char *file = tu_read_file(a->ring_path, &flen);
	cr_assert_eq(memcmp(file, "IGKRING1", 8), 0);

	/* Round trip: a restarted a holds the same ring (a session with b works). */
	ig_kpa_free(a->k);
	cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
	cr_assert(ig_kpa_has_ring(a->k));
	cr_assert_eq(ig_kpa_epoch(a->k), 1);
	connect_pair(&nt, a, b, 1000);
	send_text(a, b->id, "after restart", 1100);
	step(&nt, 1100);
	cr_assert_eq(nt.last_rc[1], 13);
	ig_kpa_free(a->k);
	a->k = NULL;

	/* Damaged: one flipped byte. */
	file[flen / 2] ^= 0x01;
	tu_write_file(a->ring_path, file, flen);
	cr_assert_eq(dev_open(&nt, a, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, a->ring_path), "%s", err.msg);
	cr_assert_null(a->k);
	file[flen / 2] ^= 0x01;
	/* Truncated. */
	tu_write_file(a->ring_path, file, 20);
	cr_assert_eq(dev_open(&nt, a, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, a->ring_path), "%s", err.msg);
	/* Foreign: b's file under a's identity. */
	size_t blen;
	char *bfile = tu_read_file(b->ring_path, &blen);
	tu_write_file(a->ring_path, bfile, blen);
	cr_assert_eq(dev_open(&nt, a, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, a->ring_path), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "not this identity"), "%s", err.msg);
	/* Group-readable. */
	tu_write_file(a->ring_path, file, flen);
	cr_assert_eq(chmod(a->ring_path, 0640), 0);
	cr_assert_eq(dev_open(&nt, a, &err), IG_ERR_INVAL);
	cr_assert_not_null(strstr(err.msg, a->ring_path), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "chmod 600"), "%s", err.msg);
	cr_assert_eq(chmod(a->ring_path, 0600), 0);
	cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
	cr_assert(ig_kpa_has_ring(a->k));
	/* No key bytes in the file in the clear. */
	uint32_t ids[1024];
	ring_of(&c, ids, a->id);
	uint8_t key0[32];
	ig_kp_pool_key(key0, c.pool_secret, ids[0]);
	cr_assert_null(memmem(file, flen, key0, 32));
	free(file);
	free(bfile);
	net_free(&nt);
}

Test(agent_kp, new_epoch_ring_replaces_old_and_its_sessions)
{
	ch c, c2;
	ch_init(&c, 1, 100, 30, 2);
	ch_init(&c2, 2, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	connect_pair(&nt, a, b, 1000);
	give_ring(&c2, a);
	cr_assert_not(ig_kpa_ready(a->k, b->id), "sessions of the old epoch are wiped with its ring");
	/* An older epoch's ring is refused now. */
	cJSON *m = ch_ring_msg(&c, a->id, a->pk, NULL);
	ig_error err = {0};
	cr_assert_eq(ig_kpa_accept_ring(a->k, m, &a->bk, &err), IG_ERR_STATE);
	cJSON_Delete(m);
	/* b, still on epoch 1, refuses a's epoch-2 hello. */
	cr_assert_eq(ig_kpa_want(a->k, b->id, 2000), IG_OK);
	step(&nt, 2000);
	cr_assert_eq(nt.last_rc[1], -1);
	cr_assert_eq(nt.last_why[1], IG_KPA_DROP_WRONG_EPOCH);
	net_free(&nt);
}

/* ---- restarts ------------------------------------------------------------------------------------------ */

Test(agent_kp, restart_never_reuses_key_id_and_counter)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	struct {
		uint8_t key_id[16];
		uint64_t counter;
	} seen[64];
	size_t nseen = 0;
	uint64_t now = 1000;
	for (int run = 0; run < 4; run++) {
		connect_pair(&nt, a, b, now);
		for (int i = 0; i < 3; i++) {
			send_text(a, b->id, "tick", now);
			ig_m2m_header h;
			peek_header(&nt, 0, &h);
			for (size_t j = 0; j < nseen; j++)
				cr_assert(memcmp(seen[j].key_id, h.key_id, 16) != 0 || seen[j].counter != h.counter,
				          "(key id, counter %" PRIu64 ") repeated after a restart", h.counter);
			memcpy(seen[nseen].key_id, h.key_id, 16);
			seen[nseen++].counter = h.counter;
			step(&nt, now);
			cr_assert_eq(nt.last_rc[1], 4);
			now += 10;
		}
		/* Both restart from their files (same ring, no session). */
		ig_kpa_free(a->k);
		ig_kpa_free(b->k);
		ig_error err = {0};
		cr_assert_eq(dev_open(&nt, a, &err), IG_OK, "%s", err.msg);
		cr_assert_eq(dev_open(&nt, b, &err), IG_OK, "%s", err.msg);
		cr_assert_not(ig_kpa_ready(a->k, b->id));
		now += 1000;
	}
	/* Every run made a new key id (the counters restart at 1 under it). */
	for (size_t i = 0; i < nseen; i += 3)
		for (size_t j = i + 3; j < nseen; j += 3)
			cr_assert(memcmp(seen[i].key_id, seen[j].key_id, 16) != 0);
	net_free(&nt);
}

Test(agent_kp, unknown_key_id_triggers_a_rehello)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	connect_pair(&nt, a, b, 1000);
	/* b restarts; a still sends under the old session. */
	ig_kpa_free(b->k);
	ig_error err = {0};
	cr_assert_eq(dev_open(&nt, b, &err), IG_OK, "%s", err.msg);
	send_text(a, b->id, "lost", 2000);
	step(&nt, 2000);
	cr_assert_eq(nt.last_rc[1], -1);
	cr_assert_eq(nt.last_why[1], IG_DROP_UNKNOWN_KEY);
	cr_assert_eq(queued(&nt), 1, "b answers with a hello");
	cr_assert_eq(nt.q.msg[nt.q.head % QCAP][0], 3);
	cr_assert_eq(nt.q.msg[nt.q.head % QCAP][1], 1);
	pump(&nt, 2000);
	cr_assert(ig_kpa_ready(b->k, a->id));
	/* A second unknown message within 10 s makes no second hello. */
	ig_m2m_header h;
	uint8_t junk[IG_M2M_HEADER_BYTES + 20] = {2, 2};
	randombytes_buf(junk + 2, 16);
	junk[IG_M2M_HEADER_BYTES - 1] = 1;
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/dev-b/dev-a");
	int why;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, junk, sizeof junk, 2500, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_DROP_UNKNOWN_KEY);
	cr_assert_eq(queued(&nt), 0);
	/* a now sends under the new session, which b holds. */
	send_text(a, b->id, "found", 3000);
	peek_header(&nt, 0, &h);
	cr_assert_eq(h.counter, 1);
	step(&nt, 3000);
	cr_assert_eq(nt.last_rc[1], 5);
	net_free(&nt);
}

Test(agent_kp, hello_retries_then_backs_off)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20);
	dev *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	cr_assert_eq(ig_kpa_want(a->k, b->id, 0), IG_OK);
	cr_assert_eq(queued(&nt), 1);
	/* A retry is a new hello (its own NA: no hello is sent twice), and a late
	 * reply to the first one still completes the exchange. */
	char topic[160];
	uint8_t *h1, *h2;
	size_t l1, l2;
	take(&nt, topic, &h1, &l1);
	ig_kpa_tick(a->k, IG_KPA_HELLO_RETRY_MS - 1);
	cr_assert_eq(queued(&nt), 0);
	ig_kpa_tick(a->k, IG_KPA_HELLO_RETRY_MS);
	cr_assert_eq(queued(&nt), 1, "a retry after 5 s");
	take(&nt, topic, &h2, &l2);
	ig_kp_hello p1, p2;
	cr_assert_eq(ig_kp_hello_parse(&p1, h1, l1), IG_OK);
	cr_assert_eq(ig_kp_hello_parse(&p2, h2, l2), IG_OK);
	cr_assert_neq(memcmp(p1.na, p2.na, 32), 0, "a retry repeats no NA");
	int why;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, h1, l1, 6000, NULL, 0, &why), 0);
	pump(&nt, 6000);
	cr_assert(ig_kpa_ready(a->k, b->id));
	ig_kpa_tick(a->k, 4 * IG_KPA_HELLO_RETRY_MS);
	cr_assert_eq(queued(&nt), 0, "nothing outstanding any more");
	free(h1);
	free(h2);

	/* Unanswered: three hellos in all, then a back-off, then the tick tries again. */
	dev *d = add_dev(&nt, &c, "dev-d", 0x60);
	give_ring(&c, d);
	cr_assert_eq(ig_kpa_want(a->k, d->id, 0), IG_OK);
	drain(&nt);
	ig_kpa_tick(a->k, IG_KPA_HELLO_RETRY_MS);
	ig_kpa_tick(a->k, 2 * IG_KPA_HELLO_RETRY_MS);
	cr_assert_eq(queued(&nt), 2, "two retries");
	drain(&nt);
	ig_kpa_tick(a->k, 3 * IG_KPA_HELLO_RETRY_MS);
	cr_assert_eq(queued(&nt), 0, "gave up after 3");
	cr_assert_eq(ig_kpa_want(a->k, d->id, 3 * IG_KPA_HELLO_RETRY_MS + 1), IG_ERR_NOTFOUND, "backing off");
	cr_assert_eq(queued(&nt), 0);
	ig_kpa_tick(a->k, 3 * IG_KPA_HELLO_RETRY_MS + IG_KPA_BACKOFF_MS - 1);
	cr_assert_eq(queued(&nt), 0);
	ig_kpa_tick(a->k, 3 * IG_KPA_HELLO_RETRY_MS + IG_KPA_BACKOFF_MS);
	cr_assert_eq(queued(&nt), 1, "the tick tries again after the back-off");
	pump(&nt, 3 * IG_KPA_HELLO_RETRY_MS + IG_KPA_BACKOFF_MS);
	cr_assert(ig_kpa_ready(a->k, d->id));
	net_free(&nt);
}

Test(agent_kp, repeated_hello_gets_the_same_reply)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	cr_assert_eq(ig_kpa_want(a->k, b->id, 0), IG_OK);
	char topic[160];
	uint8_t *hello, *r1, *r2;
	size_t hl, l1, l2;
	take(&nt, topic, &hello, &hl);
	int why;
	cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, hello, hl, 1, NULL, 0, &why), 0);
	take(&nt, topic, &r1, &l1);
	cr_assert_eq(ig_kpa_on_message(b->k, "iotguard/" CLUSTER "/m2m/dev-b/dev-a", a->id, hello, hl, 2, NULL, 0, &why),
	             0);
	take(&nt, topic, &r2, &l2);
	cr_assert_eq(l1, l2);
	cr_assert_eq(memcmp(r1, r2, l1), 0);
	char st[1024];
	cr_assert_lt(ig_kpa_status(b->k, st, sizeof st), sizeof st);
	cr_assert_not_null(strstr(st, "\"sessions\":1"), "%s", st);
	cr_assert_eq(ig_kpa_on_message(a->k, topic, b->id, r2, l2, 3, NULL, 0, &why), 0);
	cr_assert(ig_kpa_ready(a->k, b->id));
	/* The reply again: a no longer waits for it. */
	cr_assert_eq(ig_kpa_on_message(a->k, topic, b->id, r1, l1, 4, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_UNEXPECTED);
	free(hello);
	free(r1);
	free(r2);
	net_free(&nt);
}

Test(agent_kp, sessions_are_capped_and_wiped)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	/* Six fresh hellos from a: b keeps at most 4 sessions with it. */
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/dev-b/dev-a");
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	size_t n = shared(&c, a->id, b->id, ids);
	for (int i = 0; i < 6; i++) {
		uint8_t msg[IG_KP_HELLO_MAX];
		size_t len = forge_hello(msg, &c, a->id, b->id, 1, ids, n, NULL);
		int why;
		cr_assert_eq(ig_kpa_on_message(b->k, topic, a->id, msg, len, (uint64_t)i, NULL, 0, &why), 0);
	}
	drain(&nt);
	char st[1024];
	cr_assert_lt(ig_kpa_status(b->k, st, sizeof st), sizeof st);
	cr_assert_not_null(strstr(st, "\"sessions\":4"), "%s", st);
	/* Sessions older than twice the limit are expired by the tick. */
	ig_kpa_tick(b->k, 2 * (uint64_t)IG_KPA_SESSION_MAX_MS + 10);
	cr_assert_lt(ig_kpa_status(b->k, st, sizeof st), sizeof st);
	cr_assert_not_null(strstr(st, "\"sessions\":0"), "%s", st);
	cr_assert_not(ig_kpa_ready(b->k, a->id));
	net_free(&nt);
}

Test(agent_kp, worn_session_asks_for_a_successor)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20), *b = add_dev(&nt, &c, "dev-b", 0x40);
	give_ring(&c, a);
	give_ring(&c, b);
	connect_pair(&nt, a, b, 1000);
	ig_kpa_tick(a->k, 1000 + IG_KPA_SESSION_MAX_MS - 1);
	cr_assert_eq(queued(&nt), 0);
	ig_kpa_tick(a->k, 1000 + IG_KPA_SESSION_MAX_MS);
	cr_assert_eq(queued(&nt), 1, "a re-hello after an hour");
	pump(&nt, 1000 + IG_KPA_SESSION_MAX_MS);
	send_text(a, b->id, "new", 1000 + IG_KPA_SESSION_MAX_MS + 1);
	ig_m2m_header h;
	peek_header(&nt, 0, &h);
	cr_assert_eq(h.counter, 1, "the successor is used");
	step(&nt, 1000 + IG_KPA_SESSION_MAX_MS + 1);
	cr_assert_eq(nt.last_rc[1], 3);
	net_free(&nt);
}

Test(agent_kp, no_ring_and_bad_input)
{
	ch c;
	ch_init(&c, 1, 100, 30, 2);
	net nt = {0};
	dev *a = add_dev(&nt, &c, "dev-a", 0x20);
	int why;
	uint8_t msg[40] = {3, 1};
	char topic[160];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/m2m/dev-a/dev-b");
	cr_assert_eq(ig_kpa_on_message(a->k, topic, "dev-b", msg, sizeof msg, 1, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_KPA_DROP_NO_RING);
	cr_assert_eq(ig_kpa_want(a->k, "dev-b", 1), IG_ERR_STATE);
	give_ring(&c, a);
	cr_assert_eq(ig_kpa_want(a->k, "dev-a", 1), IG_ERR_INVAL);
	cr_assert_eq(ig_kpa_want(a->k, "bad id!", 1), IG_ERR_INVAL);
	/* A topic that is not ours from that sender. */
	cr_assert_eq(ig_kpa_on_message(a->k, "iotguard/" CLUSTER "/m2m/dev-x/dev-b", "dev-b", msg, sizeof msg, 1, NULL, 0,
	                               &why), -1);
	cr_assert_eq(why, IG_DROP_MALFORMED);
	msg[0] = 9;
	cr_assert_eq(ig_kpa_on_message(a->k, topic, "dev-b", msg, sizeof msg, 1, NULL, 0, &why), -1);
	cr_assert_eq(why, IG_DROP_MALFORMED);
	cr_assert_str_eq(ig_kpa_drop_name(IG_KPA_DROP_REFUSED), "refused");
	cr_assert_str_eq(ig_kpa_drop_name(IG_KPA_DROP_COUNT), "?");
	net_free(&nt);
}
