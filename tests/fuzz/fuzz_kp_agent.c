/* tests/fuzz/fuzz_kp_agent.c: fuzzes ig_kpa_on_message (agents/kp_agent.c),
 * the device's handler of key-ring hellos, path messages and v2 data, on a
 * loaded instance, as tests/agents/test_agent_kp.c drives it.
 *
 * Why this exists: every byte of these messages comes from whoever can
 * publish on the device's m2m topics. The instance is "dev-a" of cluster
 * "demo", its ring (epoch 1, pool 100, ring 30, q 1) dealt by the docs'
 * cluster-head seed (0x00..0x1f) and read from its KEYFILE.ring at every
 * input, with a live session with "dev-b" and a path key with "dev-c" via
 * "dev-d". Input: byte 0 picks the sender (dev-b, dev-c, dev-d, dev-e);
 * byte 1 a mode: 0 the rest as it is; 1 the rest is a hello whose mac is
 * made right (under K of the sender and its ids, or the path key), so the
 * fuzzer gets past the mac (with an odd n, its ids become the ones really
 * shared with the sender, up to n); 2 the rest (after 8 counter bytes) is sealed as
 * v2 from dev-b under the live session; 3 the rest is a path message whose
 * mac or box is made right (ids as in mode 1). Each input is then delivered twice and the tick
 * run. Invariants: the result is -1 with a known reason, 0, or a plaintext
 * length that fits (only for a v2 message); everything published goes to
 * iotguard/demo/m2m/<peer>/dev-a and parses as a hello or path message; the
 * status is JSON; nothing crashes or leaks (ASan). */
#include <cJSON.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "ig_keybox.h"
#include "ig_kp.h"
#include "ig_m2m.h"
#include "kp_agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ch_pk[32], ch_sk[64], pool_secret[32];
static ig_kp_params params;
static uint8_t a_pk[32], a_sk[64], a_file_key[32];
static char dir[128], ring_path[256];
static const char *const senders[] = {"dev-b", "dev-c", "dev-d", "dev-e"};
/* The session key with dev-b and the path key with dev-c, as the peers hold them. */
static uint8_t b_key[32], b_key_id[16];
static uint8_t c_path_key[32], c_path_id[16];

static ig_kpa *kpa;
static uint8_t pub_msg[8][1024];
static size_t pub_len[8], pub_n;

static void quiet(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

static void on_publish(void *ctx, const char *topic, const uint8_t *msg, size_t len)
{
	(void)ctx;
	FUZZ_ASSERT(strncmp(topic, "iotguard/demo/m2m/", 18) == 0);
	size_t tl = strlen(topic);
	FUZZ_ASSERT(tl > 6 && strcmp(topic + tl - 6, "/dev-a") == 0);
	FUZZ_ASSERT(len > 0 && (msg[0] == 2 || msg[0] == 3 || msg[0] == 4));
	if (msg[0] == 3) {
		ig_kp_hello h;
		FUZZ_ASSERT(ig_kp_hello_parse(&h, msg, len) == IG_OK);
	} else if (msg[0] == 4) {
		ig_kp_path p;
		FUZZ_ASSERT(ig_kp_path_parse(&p, msg, len) == IG_OK);
	}
	if (pub_n < 8 && len <= sizeof pub_msg[0]) {
		memcpy(pub_msg[pub_n], msg, len);
		pub_len[pub_n++] = len;
	}
}

static void ring_of(uint32_t *ids, uint8_t (*keys)[32], const char *id)
{
	FUZZ_ASSERT(ig_kp_ring_ids(ids, params.seed, id, params.pool, params.ring) == IG_OK);
	for (uint32_t i = 0; i < params.ring; i++)
		ig_kp_pool_key(keys[i], pool_secret, ids[i]);
}

/* K between dev-a and peer over their lowest shared ids; n = 0 when none. */
static size_t pair(uint8_t K[32], uint32_t *ids, const char *peer)
{
	uint32_t ra[30], rp[30];
	uint8_t ka[30][32], kp[30][32], keys[IG_KP_PAIR_MAX_IDS][32];
	ring_of(ra, ka, "dev-a");
	ring_of(rp, kp, peer);
	size_t n = ig_kp_shared(ids, IG_KP_PAIR_MAX_IDS, ra, 30, rp, 30, NULL, 0);
	for (size_t i = 0; i < n; i++)
		ig_kp_pool_key(keys[i], pool_secret, ids[i]);
	if (n)
		FUZZ_ASSERT(ig_kp_pair_key(K, 1, "dev-a", peer, ids, (const uint8_t(*)[32])keys, n) == IG_OK);
	return n;
}

static void topic_to_a(char out[96], const char *from)
{
	snprintf(out, 96, "iotguard/demo/m2m/dev-a/%s", from);
}

/* dev-a opened from its ring file, with a session with dev-b (dev-b
 * initiates) and a path key with dev-c via dev-d. */
static void open_instance(void)
{
	ig_kpa_config cfg = {.cluster = "demo", .self_id = "dev-a", .ring_path = ring_path, .publish = on_publish};
	ig_error err = {0};
	FUZZ_ASSERT(ig_kpa_new(&kpa, &cfg, a_file_key, a_pk, &err) == IG_OK);
	FUZZ_ASSERT(ig_kpa_has_ring(kpa));
	char topic[96];
	uint8_t K[32], msg[IG_KP_HELLO_MAX];
	ig_kp_hello h = {.kind = 1, .epoch = 1, .source = 0};
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	h.n = (uint16_t)pair(K, ids, "dev-b");
	FUZZ_ASSERT(h.n > 0);
	memcpy(h.ids, ids, h.n * sizeof *ids);
	memset(h.na, 0x40, 32);
	topic_to_a(topic, "dev-b");
	int len = ig_kp_hello_build(msg, sizeof msg, &h, K, topic);
	int why;
	pub_n = 0;
	FUZZ_ASSERT(ig_kpa_on_message(kpa, topic, "dev-b", msg, (size_t)len, 1, NULL, 0, &why) == 0);
	FUZZ_ASSERT(pub_n == 1);
	ig_kp_hello r;
	FUZZ_ASSERT(ig_kp_hello_parse(&r, pub_msg[0], pub_len[0]) == IG_OK);
	ig_kp_session(b_key, b_key_id, K, h.na, r.nb, "dev-b", "dev-a");

	/* dev-d hands dev-a (the target) a path key with dev-c. */
	ig_kp_path p = {.kind = 2, .epoch = 1};
	p.n = (uint16_t)pair(K, p.ids, "dev-d");
	FUZZ_ASSERT(p.n > 0);
	snprintf(p.a, sizeof p.a, "dev-c");
	snprintf(p.b, sizeof p.b, "dev-a");
	memset(p.req_id, 0xd0, 16);
	memcpy(p.path_id, c_path_id, 16);
	uint8_t pm[IG_KP_PATH_MAX];
	topic_to_a(topic, "dev-d");
	len = ig_kp_path_key_build(pm, sizeof pm, &p, K, topic, c_path_key);
	FUZZ_ASSERT(len > 0);
	FUZZ_ASSERT(ig_kpa_on_message(kpa, topic, "dev-d", pm, (size_t)len, 2, NULL, 0, &why) == 0);
	sodium_memzero(K, sizeof K);
}

static void setup(void)
{
	fuzz_vector_keypair(ch_pk, ch_sk);
	ig_log_set(quiet, NULL);
	params = (ig_kp_params){.epoch = 1, .pool = 100, .ring = 30, .q = 1};
	ig_kp_pool_secret(pool_secret, ch_sk, 1);
	ig_kp_ring_seed(params.seed, pool_secret);
	uint8_t seed[32];
	for (size_t i = 0; i < 32; i++)
		seed[i] = (uint8_t)(0x20 + i);
	crypto_sign_seed_keypair(a_pk, a_sk, seed);
	ig_kp_file_key(a_file_key, a_sk);
	memset(c_path_key, 0xa0, 32);
	memset(c_path_id, 0xc0, 16);
	snprintf(dir, sizeof dir, "/tmp/fuzz-kp-agent.XXXXXX");
	FUZZ_ASSERT(mkdtemp(dir) != NULL);
	snprintf(ring_path, sizeof ring_path, "%s/dev-a.key.ring", dir);

	/* The ring arrives as the cluster head deals it. */
	ig_kpa_config cfg = {.cluster = "demo", .self_id = "dev-a", .ring_path = ring_path, .publish = on_publish};
	ig_error err = {0};
	FUZZ_ASSERT(ig_kpa_new(&kpa, &cfg, a_file_key, a_pk, &err) == IG_OK);
	uint32_t ids[30];
	uint8_t keys[30][32], plain[2048], box[2048 + 16], hash[32], nonce[24] = {0};
	ring_of(ids, keys, "dev-a");
	ig_kp_ring_hash(hash, 1, "dev-a", ids, (const uint8_t(*)[32])keys, 30);
	int n = ig_kp_ring_plain(plain, sizeof plain, &params, "dev-a", ids, (const uint8_t(*)[32])keys);
	FUZZ_ASSERT(n > 0);
	ig_box_key bk;
	FUZZ_ASSERT(ig_keybox_key_for_device(&bk, ch_sk, a_pk) == IG_OK);
	FUZZ_ASSERT(crypto_box_easy_afternm(box, plain, (size_t)n, nonce, bk.k) == 0);
	char b64[4096], seed_hex[65], hash_hex[65], nonce_hex[49];
	sodium_bin2base64(b64, sizeof b64, box, (size_t)n + 16, sodium_base64_VARIANT_ORIGINAL);
	ig_hex_encode(seed_hex, params.seed, 32);
	ig_hex_encode(hash_hex, hash, 32);
	ig_hex_encode(nonce_hex, nonce, 24);
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "key_ring");
	cJSON_AddNumberToObject(m, "epoch", 1);
	cJSON_AddNumberToObject(m, "pool", 100);
	cJSON_AddNumberToObject(m, "ring", 30);
	cJSON_AddNumberToObject(m, "q", 1);
	cJSON_AddStringToObject(m, "seed", seed_hex);
	cJSON_AddStringToObject(m, "ring_hash", hash_hex);
	cJSON_AddStringToObject(m, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(m, "box", b64);
	ig_box_key dbk;
	FUZZ_ASSERT(ig_keybox_key_for_ch(&dbk, a_sk, ch_pk) == IG_OK);
	FUZZ_ASSERT(ig_kpa_accept_ring(kpa, m, &dbk, &err) == IG_OK);
	cJSON_Delete(m);
	ig_kpa_free(kpa);
	kpa = NULL;
}

/* Mode 1: the mac made right for the hello's fields. */
static size_t fix_hello(uint8_t *out, size_t cap, const char *from, const char *topic, const uint8_t *in, size_t len)
{
	ig_kp_hello h;
	if (len > cap || ig_kp_hello_parse(&h, in, len) != IG_OK)
		return 0;
	uint8_t K[32];
	if (h.source == 1) {
		memcpy(K, c_path_key, 32);
	} else {
		/* Odd n: the ids really shared with the sender (up to n), so the checks after the ids run. */
		uint32_t real[IG_KP_PAIR_MAX_IDS];
		size_t m = pair(K, real, from);
		if (h.n % 2 == 1 && m > 0) {
			h.n = (uint16_t)(h.n < m ? h.n : m);
			memcpy(h.ids, real, h.n * sizeof *real);
		}
		uint8_t keys[IG_KP_PAIR_MAX_IDS][32];
		for (size_t i = 0; i < h.n; i++)
			ig_kp_pool_key(keys[i], pool_secret, h.ids[i] % params.pool);
		if (ig_kp_pair_key(K, h.epoch, "dev-a", from, h.ids, (const uint8_t(*)[32])keys, h.n) != IG_OK)
			return 0;
	}
	int n = ig_kp_hello_build(out, cap, &h, K, topic);
	return n > 0 ? (size_t)n : 0;
}

/* Mode 3: the mac or the box made right under K between dev-a and the sender over the message's ids. */
static size_t fix_path(uint8_t *out, size_t cap, const char *from, const char *topic, const uint8_t *in, size_t len)
{
	ig_kp_path p;
	if (len > cap || ig_kp_path_parse(&p, in, len) != IG_OK)
		return 0;
	uint8_t keys[IG_KP_PAIR_MAX_IDS][32], K[32];
	uint32_t real[IG_KP_PAIR_MAX_IDS];
	size_t m = pair(K, real, from);
	if (p.n % 2 == 1 && m > 0) {
		p.n = (uint16_t)(p.n < m ? p.n : m);
		memcpy(p.ids, real, p.n * sizeof *real);
	}
	for (size_t i = 0; i < p.n; i++)
		ig_kp_pool_key(keys[i], pool_secret, p.ids[i] % params.pool);
	if (ig_kp_pair_key(K, p.epoch, "dev-a", from, p.ids, (const uint8_t(*)[32])keys, p.n) != IG_OK)
		return 0;
	int n = p.kind == 1 ? ig_kp_path_request_build(out, cap, &p, K, topic)
	                    : ig_kp_path_key_build(out, cap, &p, K, topic, c_path_key);
	return n > 0 ? (size_t)n : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	const char *from = senders[data[0] % 4];
	uint8_t mode = data[1] % 4;
	data += 2;
	size -= 2;
	open_instance();
	char topic[96];
	topic_to_a(topic, from);
	uint8_t *msg = malloc(size + 64 + IG_KP_PATH_MAX + IG_M2M_HEADER_BYTES + 16);
	FUZZ_ASSERT(msg);
	size_t len = size;
	memcpy(msg, data, size);
	if (mode == 1) {
		len = fix_hello(msg, size + 64 + IG_KP_PATH_MAX, from, topic, data, size);
	} else if (mode == 2 && size >= 8) {
		uint64_t counter = 0;
		for (int i = 0; i < 8; i++)
			counter = counter << 8 | data[i];
		char btopic[96];
		topic_to_a(btopic, "dev-b");
		int n = ig_m2m_seal_v(msg, size + 64 + IG_KP_PATH_MAX + IG_M2M_HEADER_BYTES + 16, 2,
		                      IG_SUITE_XCHACHA20POLY1305, b_key, b_key_id, 0, counter ? counter : 1, btopic,
		                      data + 8, size - 8);
		len = n > 0 ? (size_t)n : 0;
	} else if (mode == 3) {
		len = fix_path(msg, size + 64 + IG_KP_PATH_MAX, from, topic, data, size);
	}
	if (len == 0) {
		memcpy(msg, data, size);
		len = size;
	}
	for (int round = 0; round < 2; round++) {
		uint8_t pt[256];
		int why = -1;
		pub_n = 0;
		int rc = ig_kpa_on_message(kpa, topic, from, msg, len, 1000 + (uint64_t)round, pt, sizeof pt, &why);
		FUZZ_ASSERT(rc >= -1);
		if (rc == -1)
			FUZZ_ASSERT(why >= 0 && why < IG_KPA_DROP_COUNT && strcmp(ig_kpa_drop_name(why), "?") != 0);
		if (rc > 0) {
			FUZZ_ASSERT(len > 0 && msg[0] == 2 && (size_t)rc <= sizeof pt);
			ig_kpa_rx_info rx;
			FUZZ_ASSERT(ig_kpa_last_rx(kpa, &rx));
		}
		/* The same bytes again are never accepted as new data. */
		if (round == 1 && len > 0 && msg[0] == 2)
			FUZZ_ASSERT(rc <= 0);
	}
	ig_kpa_tick(kpa, 6000);
	char st[2048];
	size_t n = ig_kpa_status(kpa, st, sizeof st);
	FUZZ_ASSERT(n < sizeof st && strncmp(st, ",\"kp\":", 6) == 0);
	cJSON *o = cJSON_Parse(st + 6);
	FUZZ_ASSERT(o != NULL);
	cJSON_Delete(o);
	ig_kpa_free(kpa);
	kpa = NULL;
	free(msg);
	return 0;
}
