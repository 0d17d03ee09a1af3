/* tests/fuzz/fuzz_kp.c: fuzzes the key-ring parsers (lib/kp/kp.c).
 *
 * Why this exists: hellos and path messages arrive on m2m topics anyone in
 * the cluster can publish on, the revoked statement is a retained message
 * (on a plain broker, from anyone), the ring plaintext comes out of a box
 * and the ring file off the disk; each parser must refuse malformed bytes
 * cleanly and never accept what it did not check. The first byte picks a
 * mode, the rest is its input. "raw" modes feed the bytes to the parser;
 * "wrapped" modes first make them authentic (append the right mac, seal
 * them in the right box, sign them), so the fuzzer also explores the code
 * after the mac, box and signature checks. Invariants: a message verifies
 * only if it parses, an authentic message verifies exactly when it parses,
 * and whatever parses is rebuilt byte for byte from the parsed fields.
 * The keys are the vectors' (docs/PROTOCOL.md "Key rings: byte layouts and
 * test vectors", from the independent tests/kp/ reference), so the seed
 * corpus (mkcorpus.py) holds messages that really verify: K_ab for hellos
 * and path macs, the direct session key for v2 data, the ring file key and
 * device public key, and the cluster-head key of fuzz_common.h (seed 00..1f)
 * for the revoked statement. */
#include "fuzz_common.h"
#include "ig_kp.h"
#include "ig_m2m.h"

#include <stdbool.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOPIC "iotguard/demo/m2m/b/a"
#define HELLO_LABEL "iotguard kp hello v1"
#define PATH_LABEL "iotguard kp path v1"

/* pair.ab, session.direct.key, file.key and dev.pk of the vectors. */
static const uint8_t k_mac[32] = {
	0x0e, 0x03, 0xe0, 0x50, 0x7a, 0xd2, 0xe9, 0x1a, 0xc6, 0xd1, 0x08, 0xd3, 0x51, 0x19, 0xe6, 0xee,
	0xca, 0x95, 0x7c, 0x3b, 0x99, 0x41, 0x94, 0xea, 0xa9, 0x95, 0xdf, 0x2a, 0x5a, 0x0d, 0xbd, 0xa8,
};
static const uint8_t k_data[32] = {
	0x20, 0x15, 0xc4, 0x6d, 0xd6, 0x4e, 0x04, 0xd7, 0x6b, 0xba, 0x94, 0x31, 0x04, 0x77, 0x28, 0xab,
	0xd3, 0xbd, 0x5f, 0x7e, 0xbc, 0xd4, 0x90, 0x1f, 0x4d, 0x60, 0xa2, 0xf8, 0xdb, 0x97, 0xda, 0xbb,
};
static const uint8_t k_file[32] = {
	0x3e, 0x84, 0xd8, 0x72, 0x38, 0x9e, 0xdf, 0x41, 0x04, 0x26, 0x85, 0x9d, 0xe9, 0x46, 0x80, 0x54,
	0x11, 0xf3, 0x0b, 0xe2, 0xe2, 0x89, 0x90, 0x61, 0xe0, 0x0f, 0xd7, 0xc9, 0x78, 0xf2, 0x7c, 0x7d,
};
static const uint8_t k_pk[32] = {
	0x29, 0xac, 0xba, 0xe1, 0x41, 0xbc, 0xca, 0xf0, 0xb2, 0x2e, 0x1a, 0x94, 0xd3, 0x4d, 0x0b, 0xc7,
	0x36, 0x1e, 0x52, 0x6d, 0x0b, 0xfe, 0x12, 0xc8, 0x97, 0x94, 0xbc, 0x93, 0x22, 0x96, 0x6d, 0xd7,
};
static uint8_t k_path[32], ch_pk[32], ch_sk[64];

static void init_keys(void)
{
	static bool done;
	if (done)
		return;
	for (size_t i = 0; i < 32; i++)
		k_path[i] = (uint8_t)(0xa0 + i); /* the vectors' path key a0..bf */
	fuzz_vector_keypair(ch_pk, ch_sk);
	done = true;
}

/* HMAC(K, label || 0 || topic || 0 || body), written here from the text
 * rather than through kp.c. */
static void mac_of(uint8_t out[32], const uint8_t K[32], const char *label, const uint8_t *body, size_t len)
{
	crypto_auth_hmacsha256_state st;
	const uint8_t zero = 0;
	crypto_auth_hmacsha256_init(&st, K, 32);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label));
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)TOPIC, strlen(TOPIC));
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, out);
}

static void hello(const uint8_t *msg, size_t len, bool authentic)
{
	ig_kp_hello h;
	static uint8_t again[IG_KP_HELLO_MAX];
	int p = ig_kp_hello_parse(&h, msg, len);
	int v = ig_kp_hello_verify(msg, len, k_mac, TOPIC);
	FUZZ_ASSERT(p == IG_OK || p == IG_ERR_INVAL);
	FUZZ_ASSERT(v == IG_OK || v == IG_ERR_INVAL || v == IG_ERR_CRYPTO);
	if (v == IG_OK)
		FUZZ_ASSERT(p == IG_OK);
	if (authentic)
		FUZZ_ASSERT((p == IG_OK) == (v == IG_OK));
	if (p == IG_OK) {
		FUZZ_ASSERT(h.kind == 1 || h.kind == 2);
		FUZZ_ASSERT(h.source == 1 || (h.n >= 1 && h.n <= IG_KP_PAIR_MAX_IDS));
		int n = ig_kp_hello_build(again, sizeof again, &h, k_mac, TOPIC);
		FUZZ_ASSERT(n == (int)len);
		/* Same fields: same bytes up to the mac; the same mac only if authentic. */
		FUZZ_ASSERT(memcmp(again, msg, len - 32) == 0);
		FUZZ_ASSERT((memcmp(again + len - 32, msg + len - 32, 32) == 0) == (v == IG_OK));
	}
}

static void path(const uint8_t *msg, size_t len, bool authentic)
{
	ig_kp_path p;
	static uint8_t again[IG_KP_PATH_MAX];
	uint8_t key[32];
	int rc = ig_kp_path_parse(&p, msg, len);
	int v = ig_kp_path_request_verify(msg, len, k_mac, TOPIC);
	int o = ig_kp_path_key_open(key, msg, len, k_mac, TOPIC);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL);
	if (v == IG_OK)
		FUZZ_ASSERT(rc == IG_OK && p.kind == 1);
	if (o == IG_OK)
		FUZZ_ASSERT(rc == IG_OK && p.kind == 2 && memcmp(key, k_path, 32) == 0);
	if (authentic && rc == IG_OK)
		FUZZ_ASSERT(p.kind == 1 ? v == IG_OK : o == IG_OK);
	if (rc != IG_OK)
		return;
	FUZZ_ASSERT(p.n >= 1 && p.n <= IG_KP_PAIR_MAX_IDS);
	FUZZ_ASSERT(strlen(p.b) >= 1 && (p.kind == 1 ? p.a[0] == '\0' : strcmp(p.a, p.b) != 0));
	if (p.kind == 1) {
		int n = ig_kp_path_request_build(again, sizeof again, &p, k_mac, TOPIC);
		FUZZ_ASSERT(n == (int)len && memcmp(again, msg, len - 32) == 0);
	} else if (o == IG_OK && !sodium_is_zero(p.box_nonce, sizeof p.box_nonce)) {
		int n = ig_kp_path_key_build(again, sizeof again, &p, k_mac, TOPIC, key);
		FUZZ_ASSERT(n == (int)len && memcmp(again, msg, len) == 0);
	}
}

/* Body || the box of k_path under the AD the text defines, with the nonce
 * at the body's box-nonce position (the last 24 bytes of the body). */
static size_t wrap_path(uint8_t *out, size_t cap, const uint8_t *body, size_t len)
{
	if (len < 2 || len + 48 > cap || len > IG_KP_PATH_MAX)
		return 0;
	memcpy(out, body, len);
	if (body[1] != 2) {
		mac_of(out + len, k_mac, PATH_LABEL, body, len);
		return len + 32;
	}
	if (len < 24)
		return 0;
	static uint8_t ad[64 + IG_KP_PATH_MAX];
	size_t n = 0;
	memcpy(ad, PATH_LABEL, strlen(PATH_LABEL));
	n += strlen(PATH_LABEL);
	ad[n++] = 0;
	memcpy(ad + n, TOPIC, strlen(TOPIC));
	n += strlen(TOPIC);
	ad[n++] = 0;
	memcpy(ad + n, body, len);
	n += len;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + len, NULL, k_path, 32, ad, n, NULL, body + len - 24, k_mac);
	return len + 48;
}

static void revoked(const uint8_t *json, size_t len)
{
	ig_kp_revoked r, back;
	ig_error err;
	int rc = ig_kp_revoked_parse(&r, json, len, ch_pk, &err);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO || rc == IG_ERR_NOMEM);
	if (rc != IG_OK) {
		FUZZ_ASSERT(r.ids == NULL && r.devices == NULL);
		return;
	}
	FUZZ_ASSERT(ig_kp_params_check(&r.params, NULL) == IG_OK);
	for (size_t i = 0; i < r.n_ids; i++)
		FUZZ_ASSERT(r.ids[i] < r.params.pool && (i == 0 || r.ids[i] > r.ids[i - 1]));
	for (size_t i = 1; i < r.n_devices; i++)
		FUZZ_ASSERT(strcmp(r.devices[i - 1], r.devices[i]) < 0);
	char *text = ig_kp_revoked_json(&r, ch_sk);
	FUZZ_ASSERT(text);
	FUZZ_ASSERT(ig_kp_revoked_parse(&back, (const uint8_t *)text, strlen(text), ch_pk, NULL) == IG_OK);
	FUZZ_ASSERT(back.serial == r.serial && back.n_ids == r.n_ids && back.n_devices == r.n_devices);
	FUZZ_ASSERT(r.n_ids == 0 || memcmp(back.ids, r.ids, r.n_ids * sizeof r.ids[0]) == 0);
	free(text);
	ig_kp_revoked_free(&back);
	ig_kp_revoked_free(&r);
}

/* A statement from fuzz bytes: params, serial, ids and devices; when the
 * writer signs it, the parser must take it back unchanged. */
static void revoked_wrapped(const uint8_t *d, size_t len)
{
	if (len < 16)
		return;
	ig_kp_revoked r;
	memset(&r, 0, sizeof r);
	strcpy(r.cluster, "demo");
	r.params.epoch = 1 + d[0];
	r.params.pool = 2 + ((uint32_t)d[1] << 8 | d[2]);
	r.params.ring = 1 + d[3];
	r.params.q = (uint8_t)(1 + d[4] % 4);
	memcpy(r.params.seed, d, 16);
	r.serial = d[5];
	size_t nd = d[6] % 4, ni = (len - 16) / 2;
	r.ids = malloc((ni ? ni : 1) * sizeof *r.ids);
	r.devices = calloc(nd ? nd : 1, sizeof *r.devices);
	if (!r.ids || !r.devices)
		abort();
	for (size_t i = 0; i < ni; i++)
		r.ids[i] = (uint32_t)d[16 + 2 * i] << 8 | d[17 + 2 * i];
	r.n_ids = ni;
	for (size_t i = 0; i < nd; i++)
		snprintf(r.devices[i], sizeof r.devices[i], "%c%u", d[7 + i] & 0x40 ? 'D' : 'd', d[7 + i] % 8);
	r.n_devices = nd;
	char *text = ig_kp_revoked_json(&r, ch_sk);
	if (text) {
		revoked((const uint8_t *)text, strlen(text));
		ig_kp_revoked back;
		FUZZ_ASSERT(ig_kp_revoked_parse(&back, (const uint8_t *)text, strlen(text), ch_pk, NULL) == IG_OK);
		ig_kp_revoked_free(&back);
		free(text);
	}
	ig_kp_revoked_free(&r);
}

static void ring_plain(const uint8_t *in, size_t len)
{
	static uint32_t ids[IG_KP_RING_MAX];
	static uint8_t keys[IG_KP_RING_MAX][32];
	static uint8_t again[64 + 1 + IG_ID_MAX + 36 * IG_KP_RING_MAX];
	ig_kp_params p;
	int rc = ig_kp_ring_plain_parse(&p, ids, keys, in, len, "a");
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_NOMEM);
	if (rc != IG_OK)
		return;
	int n = ig_kp_ring_plain(again, sizeof again, &p, "a", ids, (const uint8_t(*)[32])keys);
	FUZZ_ASSERT(n == (int)len && memcmp(again, in, len) == 0);
}

/* A ring plaintext from fuzz bytes (small pools keep each run fast). */
static void ring_plain_wrapped(const uint8_t *d, size_t len)
{
	if (len < 8)
		return;
	static uint32_t ids[IG_KP_RING_MAX];
	static uint8_t keys[IG_KP_RING_MAX][32];
	static uint8_t buf[64 + 1 + IG_ID_MAX + 36 * IG_KP_RING_MAX];
	ig_kp_params p;
	memset(&p, 0, sizeof p);
	p.epoch = 1 + d[0];
	p.pool = 2 + ((uint32_t)d[1] << 8 | d[2]);
	p.ring = 1 + (((uint32_t)d[3] << 8 | d[4]) % (p.pool < IG_KP_RING_MAX ? p.pool : IG_KP_RING_MAX));
	p.q = 1;
	memcpy(p.seed, d, 8);
	FUZZ_ASSERT(ig_kp_ring_ids(ids, p.seed, "a", p.pool, p.ring) == IG_OK);
	for (size_t i = 0; i < p.ring; i++)
		memset(keys[i], (int)(i + d[5]), 32);
	int n = ig_kp_ring_plain(buf, sizeof buf, &p, "a", ids, (const uint8_t(*)[32])keys);
	FUZZ_ASSERT(n > 0);
	ring_plain(buf, (size_t)n);
	/* One fuzz-chosen bit flipped: a change of ring, q (1 -> 0), the device
	 * id or an id never parses. (A changed pool or seed may, in a tiny pool,
	 * pick the same ids; the epoch and the keys are not checked here.) */
	size_t at = ((size_t)d[6] << 8 | d[7]) % (size_t)n;
	buf[at] ^= 0x01;
	ig_kp_params back;
	int rc = ig_kp_ring_plain_parse(&back, ids, keys, buf, (size_t)n, "a");
	bool strict = (at >= 12 && at < 17) || at == 49 || at == 50 || (at >= 51 && (at - 51) % 36 < 4);
	if (strict)
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
	ring_plain(buf, (size_t)n);
}

static void file_open(const uint8_t *in, size_t len, bool wrap)
{
	uint8_t *plain = NULL, *sealed = NULL;
	size_t plen = 0, slen = 0;
	if (wrap) {
		FUZZ_ASSERT(ig_kp_file_seal(&sealed, &slen, k_file, k_pk, in, len) == IG_OK);
		FUZZ_ASSERT(ig_kp_file_open(&plain, &plen, k_file, k_pk, sealed, slen) == IG_OK);
		FUZZ_ASSERT(plen == len && (len == 0 || memcmp(plain, in, len) == 0));
		free(plain);
		sealed[len % slen] ^= 0x80;
		FUZZ_ASSERT(ig_kp_file_open(&plain, &plen, k_file, k_pk, sealed, slen) != IG_OK);
		FUZZ_ASSERT(plain == NULL);
		free(sealed);
		return;
	}
	int rc = ig_kp_file_open(&plain, &plen, k_file, k_pk, in, len);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO);
	if (rc == IG_OK) {
		FUZZ_ASSERT(plen + 48 == len);
		free(plain);
	}
}

static void m2m_v2(const uint8_t *msg, size_t len)
{
	static uint8_t out[IG_M2M_MAX_PLAINTEXT];
	ig_m2m_header h, h2;
	int hp = ig_m2m_parse_header_v(msg, len, 2, &h);
	for (uint8_t dir = 0; dir < 2; dir++) {
		int n = ig_m2m_open_v(out, sizeof out, msg, len, 2, k_data, dir, TOPIC, &h2);
		if (n >= 0) {
			FUZZ_ASSERT(hp == IG_OK && h.version == 2 && h.suite == IG_SUITE_XCHACHA20POLY1305);
			static uint8_t again[IG_M2M_MAX_PLAINTEXT + 64];
			int m = ig_m2m_seal_v(again, sizeof again, 2, h2.suite, k_data, h2.key_id, dir, h2.counter, TOPIC, out,
			                      (size_t)n);
			FUZZ_ASSERT(m == (int)len && memcmp(again, msg, len) == 0);
		}
	}
	/* Never accepted as version 1. */
	FUZZ_ASSERT(len == 0 || msg[0] != 2 || ig_m2m_parse_header(msg, len, &h) != IG_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_keys();
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	static uint8_t wrapped[IG_KP_PATH_MAX + IG_KP_HELLO_MAX + 64];
	switch (data[0] % 9) {
	case 0:
		hello(in, len, false);
		break;
	case 1:
		if (len + 32 <= sizeof wrapped) {
			memcpy(wrapped, in, len);
			mac_of(wrapped + len, k_mac, HELLO_LABEL, in, len);
			hello(wrapped, len + 32, true);
		}
		break;
	case 2:
		path(in, len, false);
		break;
	case 3: {
		size_t n = wrap_path(wrapped, sizeof wrapped, in, len);
		if (n)
			path(wrapped, n, true);
		break;
	}
	case 4:
		revoked(in, len);
		break;
	case 5:
		revoked_wrapped(in, len);
		break;
	case 6:
		ring_plain(in, len);
		ring_plain_wrapped(in, len);
		break;
	case 7:
		file_open(in, len, false);
		file_open(in, len, true);
		break;
	default:
		m2m_v2(in, len);
		break;
	}
	return 0;
}
