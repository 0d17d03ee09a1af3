/*
 * kp.c: key-ring derivations, ring ids, pairwise keys and the key-ring wire
 * messages (ig_kp.h; the layouts are docs/PROTOCOL.md "Key rings: byte
 * layouts and test vectors").
 *
 * Why this exists: the cluster head deals rings, devices derive pairwise and
 * session keys from them, and both must agree byte for byte with the
 * independent reference (tests/kp/). Every parser here reads untrusted bytes
 * from the broker or the disk, so each one checks bounds, id validity and
 * ordering before it trusts a field, and refuses the whole input otherwise.
 */
#include "ig_kp.h"

#include "ig_hkdf.h"
#include "ig_json.h"

#include <cJSON.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define POOL_SECRET_INFO "iotguard kp pool secret v1"
#define RING_SEED_INFO "iotguard kp ring seed v1"
#define POOL_KEY_INFO "iotguard kp pool v1"
#define LIT_LEN(s) (sizeof(s) - 1)

int ig_kp_params_check(const ig_kp_params *p, ig_error *err)
{
	if (!p)
		return ig_error_set(err, IG_ERR_INVAL, "key ring parameters missing");
	if (p->epoch < 1)
		return ig_error_set(err, IG_ERR_INVAL, "key ring epoch must be >= 1");
	if (p->pool < 2 || p->pool > IG_KP_POOL_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "key ring pool %u out of range: must be 2..%u", p->pool,
		                    IG_KP_POOL_MAX);
	if (p->ring < 1 || p->ring > IG_KP_RING_MAX || p->ring > p->pool)
		return ig_error_set(err, IG_ERR_INVAL, "key ring ring %u out of range: must be 1..%u and <= pool",
		                    p->ring, IG_KP_RING_MAX);
	if (p->q < 1 || p->q > IG_KP_Q_MAX || p->q > p->ring)
		return ig_error_set(err, IG_ERR_INVAL, "key ring q %u out of range: must be 1..%u and <= ring",
		                    p->q, IG_KP_Q_MAX);
	return IG_OK;
}

void ig_kp_pool_secret(uint8_t out[32], const uint8_t ch_seed[32], uint64_t epoch)
{
	uint8_t info[LIT_LEN(POOL_SECRET_INFO) + 8];
	memcpy(info, POOL_SECRET_INFO, LIT_LEN(POOL_SECRET_INFO));
	ig_put_u64(info + LIT_LEN(POOL_SECRET_INFO), epoch);
	(void)ig_hkdf(out, 32, NULL, 0, ch_seed, 32, info, sizeof info);
}

void ig_kp_ring_seed(uint8_t out[32], const uint8_t pool_secret[32])
{
	(void)ig_hkdf(out, 32, NULL, 0, pool_secret, 32, (const uint8_t *)RING_SEED_INFO, LIT_LEN(RING_SEED_INFO));
}

void ig_kp_pool_key(uint8_t out[32], const uint8_t pool_secret[32], uint32_t i)
{
	uint8_t info[LIT_LEN(POOL_KEY_INFO) + 4];
	memcpy(info, POOL_KEY_INFO, LIT_LEN(POOL_KEY_INFO));
	ig_put_u32(info + LIT_LEN(POOL_KEY_INFO), i);
	(void)ig_hkdf(out, 32, NULL, 0, pool_secret, 32, info, sizeof info);
}

void ig_kp_pool_keys(uint8_t (*out)[32], const uint8_t pool_secret[32], const uint32_t *ids, size_t n)
{
	/* HKDF with L = 32 is T(1) = HMAC(PRK, info || 0x01): the PRK and the
	 * HMAC state keyed with it are the same for every id, so they are made
	 * once and copied. */
	uint8_t prk[IG_HKDF_PRK_BYTES];
	crypto_auth_hmacsha256_state keyed, st;
	ig_hkdf_extract(prk, NULL, 0, pool_secret, 32);
	crypto_auth_hmacsha256_init(&keyed, prk, sizeof prk);
	for (size_t k = 0; k < n; k++) {
		uint8_t tail[LIT_LEN(POOL_KEY_INFO) + 4 + 1];
		memcpy(tail, POOL_KEY_INFO, LIT_LEN(POOL_KEY_INFO));
		ig_put_u32(tail + LIT_LEN(POOL_KEY_INFO), ids[k]);
		tail[sizeof tail - 1] = 0x01;
		st = keyed;
		crypto_auth_hmacsha256_update(&st, tail, sizeof tail);
		crypto_auth_hmacsha256_final(&st, out[k]);
	}
	sodium_memzero(&st, sizeof st);
	sodium_memzero(&keyed, sizeof keyed);
	sodium_memzero(prk, sizeof prk);
}

/* Valid device id or cluster name (1..64 of [A-Za-z0-9_.-]); *len set. */
static bool id_ok(const char *s, size_t *len)
{
	if (!s)
		return false;
	size_t n = strnlen(s, IG_ID_MAX + 1);
	if (!ig_id_valid(s, n))
		return false;
	if (len)
		*len = n;
	return true;
}

#define TOPIC_MAX 65535 /* the MQTT limit for a topic name */

static bool topic_ok(const char *topic, size_t *len)
{
	if (!topic)
		return false;
	*len = strnlen(topic, TOPIC_MAX + 1);
	return *len >= 1 && *len <= TOPIC_MAX;
}

/* Strictly ascending and every id below the largest possible pool: the
 * shape every id list on the wire must have. */
static bool ids_ascending(const uint32_t *ids, size_t n, uint32_t bound)
{
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= bound)
			return false;
		if (i > 0 && ids[i] <= ids[i - 1])
			return false;
	}
	return true;
}

/* ---- A.1 ring ids ---------------------------------------------------- */

#define RING_IDS_LABEL "iotguard kp ring ids v1"

/* Position of v in the ascending chosen[0..n), or where it would go. */
static size_t sorted_find(const uint32_t *chosen, size_t n, uint32_t v, bool *found)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (chosen[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < n && chosen[lo] == v;
	return lo;
}

int ig_kp_ring_ids(uint32_t *ids, const uint8_t seed[32], const char *device_id, uint32_t pool, uint32_t ring)
{
	size_t id_len;
	if (!ids || !seed || !id_ok(device_id, &id_len))
		return IG_ERR_INVAL;
	if (pool < 2 || pool > IG_KP_POOL_MAX || ring < 1 || ring > IG_KP_RING_MAX || ring > pool)
		return IG_ERR_INVAL;

	/* Rejection sampling: words at or above limit would make the low ids
	 * of a pool that does not divide 2^32 slightly more likely. */
	const uint64_t two32 = (uint64_t)1 << 32;
	const uint64_t limit = two32 - (two32 % pool);
	uint8_t msg[LIT_LEN(RING_IDS_LABEL) + 1 + IG_ID_MAX + 1 + 4];
	size_t msg_len = 0;
	memcpy(msg, RING_IDS_LABEL, LIT_LEN(RING_IDS_LABEL));
	msg_len += LIT_LEN(RING_IDS_LABEL);
	msg[msg_len++] = 0x00;
	memcpy(msg + msg_len, device_id, id_len);
	msg_len += id_len;
	msg[msg_len++] = 0x00;

	/* ids doubles as the ascending set of chosen ids: the result is the
	 * sorted set, and the choice order only decides which ids get in. */
	size_t n = 0;
	uint8_t block[crypto_auth_hmacsha256_BYTES];
	for (uint32_t j = 0; n < ring; j++) {
		ig_put_u32(msg + msg_len, j);
		crypto_auth_hmacsha256(block, msg, msg_len + 4, seed);
		for (size_t w = 0; w < 8 && n < ring; w++) {
			uint32_t x = ig_get_u32(block + 4 * w);
			if ((uint64_t)x >= limit)
				continue;
			uint32_t c = x % pool;
			bool found;
			size_t at = sorted_find(ids, n, c, &found);
			if (found)
				continue;
			memmove(ids + at + 1, ids + at, (n - at) * sizeof *ids);
			ids[at] = c;
			n++;
		}
		if (j == UINT32_MAX && n < ring)
			return IG_ERR_RANGE; /* unreachable for m <= P, but never loop forever */
	}
	return IG_OK;
}

/* ---- A.2 ring hash --------------------------------------------------- */

#define RING_HASH_LABEL "iotguard kp ring v1"

void ig_kp_ring_hash(uint8_t out[32], uint64_t epoch, const char *device_id, const uint32_t *ids,
                     const uint8_t (*keys)[32], uint32_t ring)
{
	crypto_hash_sha256_state st;
	uint8_t b[8];
	size_t id_len = strnlen(device_id, IG_ID_MAX);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)RING_HASH_LABEL, LIT_LEN(RING_HASH_LABEL) + 1);
	ig_put_u64(b, epoch);
	crypto_hash_sha256_update(&st, b, 8);
	b[0] = (uint8_t)id_len;
	crypto_hash_sha256_update(&st, b, 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)device_id, id_len);
	ig_put_u32(b, ring);
	crypto_hash_sha256_update(&st, b, 4);
	for (uint32_t i = 0; i < ring; i++) {
		ig_put_u32(b, ids[i]);
		crypto_hash_sha256_update(&st, b, 4);
		crypto_hash_sha256_update(&st, keys[i], 32);
	}
	crypto_hash_sha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

/* ---- A.3 shared ids and the pairwise key ----------------------------- */

size_t ig_kp_shared(uint32_t *out, size_t cap, const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                    const uint32_t *bad, size_t nbad)
{
	size_t i = 0, j = 0, k = 0, n = 0;
	if (!a || !b || (cap > 0 && !out))
		return 0;
	if (!bad)
		nbad = 0;
	while (i < na && j < nb && n < cap) {
		if (a[i] < b[j]) {
			i++;
		} else if (b[j] < a[i]) {
			j++;
		} else {
			uint32_t v = a[i];
			while (k < nbad && bad[k] < v)
				k++;
			if (!(k < nbad && bad[k] == v))
				out[n++] = v;
			i++;
			j++;
		}
	}
	return n;
}

#define PAIR_LABEL "iotguard kp pair v1"

int ig_kp_pair_key(uint8_t out[32], uint64_t epoch, const char *id_a, const char *id_b, const uint32_t *ids,
                   const uint8_t (*keys)[32], size_t n)
{
	size_t la, lb;
	if (!out || !ids || !keys || !id_ok(id_a, &la) || !id_ok(id_b, &lb))
		return IG_ERR_INVAL;
	if (n < 1 || n > IG_KP_PAIR_MAX_IDS || !ids_ascending(ids, n, IG_KP_POOL_MAX))
		return IG_ERR_INVAL;
	if (strcmp(id_a, id_b) == 0)
		return IG_ERR_INVAL; /* a device has no pairwise key with itself */
	/* lo, hi by bytewise order, so both ends derive the same key. */
	const char *lo = id_a, *hi = id_b;
	size_t llo = la, lhi = lb;
	if (strcmp(id_a, id_b) > 0) {
		lo = id_b;
		hi = id_a;
		llo = lb;
		lhi = la;
	}
	uint8_t ikm[IG_KP_PAIR_MAX_IDS * 32];
	for (size_t i = 0; i < n; i++)
		memcpy(ikm + 32 * i, keys[i], 32);
	uint8_t info[LIT_LEN(PAIR_LABEL) + 1 + 8 + 1 + IG_ID_MAX + 1 + IG_ID_MAX + 2 + 4 * IG_KP_PAIR_MAX_IDS];
	size_t o = 0;
	memcpy(info, PAIR_LABEL, LIT_LEN(PAIR_LABEL));
	o += LIT_LEN(PAIR_LABEL);
	info[o++] = 0x00;
	ig_put_u64(info + o, epoch);
	o += 8;
	info[o++] = (uint8_t)llo;
	memcpy(info + o, lo, llo);
	o += llo;
	info[o++] = (uint8_t)lhi;
	memcpy(info + o, hi, lhi);
	o += lhi;
	ig_put_u16(info + o, (uint16_t)n);
	o += 2;
	for (size_t i = 0; i < n; i++, o += 4)
		ig_put_u32(info + o, ids[i]);
	int rc = ig_hkdf(out, 32, NULL, 0, ikm, 32 * n, info, o);
	sodium_memzero(ikm, sizeof ikm);
	return rc;
}

/* ---- A.4 session ----------------------------------------------------- */

#define SESSION_LABEL "iotguard kp session v1"

void ig_kp_session(uint8_t key[32], uint8_t key_id[16], const uint8_t static_key[32],
                   const uint8_t na[32], const uint8_t nb[32], const char *initiator, const char *responder)
{
	uint8_t salt[64], okm[48];
	uint8_t info[LIT_LEN(SESSION_LABEL) + 1 + IG_ID_MAX + 1 + IG_ID_MAX];
	size_t li = strnlen(initiator, IG_ID_MAX), lr = strnlen(responder, IG_ID_MAX), o = 0;
	memcpy(salt, na, 32);
	memcpy(salt + 32, nb, 32);
	memcpy(info, SESSION_LABEL, LIT_LEN(SESSION_LABEL));
	o += LIT_LEN(SESSION_LABEL);
	info[o++] = 0x00;
	memcpy(info + o, initiator, li);
	o += li;
	info[o++] = 0x00;
	memcpy(info + o, responder, lr);
	o += lr;
	(void)ig_hkdf(okm, sizeof okm, salt, sizeof salt, static_key, 32, info, o);
	memcpy(key, okm, 32);
	memcpy(key_id, okm + 32, 16);
	sodium_memzero(okm, sizeof okm);
}

/* ---- shared by the hello and path macs -------------------------------- */

/* HMAC-SHA256(K, label || 0x00 || topic || 0x00 || body). The label names
 * the message kind and the topic binds cluster, sender and receiver, so a
 * mac is valid for exactly one kind of message on one topic. */
static void topic_mac(uint8_t mac[32], const uint8_t K[32], const char *label, const char *topic, size_t topic_len,
                      const uint8_t *body, size_t body_len)
{
	crypto_auth_hmacsha256_state st;
	const uint8_t zero = 0;
	crypto_auth_hmacsha256_init(&st, K, 32);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label));
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)topic, topic_len);
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, body, body_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof st);
}

/* ---- A.4 hello ------------------------------------------------------- */

#define HELLO_VERSION 3
#define HELLO_LABEL "iotguard kp hello v1"
#define MAC_BYTES 32

/* The length a hello with these fields has (mac included); 0 if invalid. */
static size_t hello_len(const ig_kp_hello *h, size_t *via_len)
{
	size_t n = 11;
	if (h->kind != 1 && h->kind != 2)
		return 0;
	if (h->epoch < 1)
		return 0;
	if (h->source == 0) {
		if (h->n < 1 || h->n > IG_KP_PAIR_MAX_IDS || !ids_ascending(h->ids, h->n, IG_KP_POOL_MAX))
			return 0;
		n += 2 + 4 * (size_t)h->n;
	} else if (h->source == 1) {
		if (!id_ok(h->via, via_len))
			return 0;
		n += 16 + 1 + *via_len;
	} else {
		return 0;
	}
	n += 32 + (h->kind == 2 ? 32 : 0) + MAC_BYTES;
	return n;
}

int ig_kp_hello_build(uint8_t *out, size_t cap, const ig_kp_hello *h, const uint8_t K[32], const char *topic)
{
	size_t topic_len, via_len = 0;
	if (!out || !h || !K || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	size_t total = hello_len(h, &via_len);
	if (total == 0)
		return IG_ERR_INVAL;
	if (cap < total)
		return IG_ERR_RANGE;
	size_t o = 0;
	out[o++] = HELLO_VERSION;
	out[o++] = h->kind;
	ig_put_u64(out + o, h->epoch);
	o += 8;
	out[o++] = h->source;
	if (h->source == 0) {
		ig_put_u16(out + o, h->n);
		o += 2;
		for (size_t i = 0; i < h->n; i++, o += 4)
			ig_put_u32(out + o, h->ids[i]);
	} else {
		memcpy(out + o, h->path_id, 16);
		o += 16;
		out[o++] = (uint8_t)via_len;
		memcpy(out + o, h->via, via_len);
		o += via_len;
	}
	memcpy(out + o, h->na, 32);
	o += 32;
	if (h->kind == 2) {
		memcpy(out + o, h->nb, 32);
		o += 32;
	}
	topic_mac(out + o, K, HELLO_LABEL, topic, topic_len, out, o);
	o += MAC_BYTES;
	return (int)o;
}

int ig_kp_hello_parse(ig_kp_hello *h, const uint8_t *msg, size_t len)
{
	if (!h || !msg)
		return IG_ERR_INVAL;
	ig_kp_hello t;
	memset(&t, 0, sizeof t);
	if (len < 11 || len > IG_KP_HELLO_MAX)
		return IG_ERR_INVAL;
	if (msg[0] != HELLO_VERSION)
		return IG_ERR_INVAL;
	t.kind = msg[1];
	if (t.kind != 1 && t.kind != 2)
		return IG_ERR_INVAL;
	t.epoch = ig_get_u64(msg + 2);
	if (t.epoch < 1)
		return IG_ERR_INVAL;
	t.source = msg[10];
	size_t o = 11;
	if (t.source == 0) {
		if (len < o + 2)
			return IG_ERR_INVAL;
		t.n = ig_get_u16(msg + o);
		o += 2;
		if (t.n < 1 || t.n > IG_KP_PAIR_MAX_IDS || len < o + 4 * (size_t)t.n)
			return IG_ERR_INVAL;
		for (size_t i = 0; i < t.n; i++, o += 4)
			t.ids[i] = ig_get_u32(msg + o);
		if (!ids_ascending(t.ids, t.n, IG_KP_POOL_MAX))
			return IG_ERR_INVAL;
	} else if (t.source == 1) {
		if (len < o + 16 + 1)
			return IG_ERR_INVAL;
		memcpy(t.path_id, msg + o, 16);
		o += 16;
		size_t c = msg[o++];
		if (c < 1 || c > IG_ID_MAX || len < o + c || !ig_id_valid((const char *)msg + o, c))
			return IG_ERR_INVAL;
		memcpy(t.via, msg + o, c);
		t.via[c] = '\0';
		o += c;
	} else {
		return IG_ERR_INVAL;
	}
	size_t rest = 32 + (t.kind == 2 ? 32 : 0) + MAC_BYTES;
	if (len != o + rest)
		return IG_ERR_INVAL;
	memcpy(t.na, msg + o, 32);
	o += 32;
	if (t.kind == 2)
		memcpy(t.nb, msg + o, 32);
	*h = t;
	return IG_OK;
}

int ig_kp_hello_verify(const uint8_t *msg, size_t len, const uint8_t K[32], const char *topic)
{
	ig_kp_hello h;
	size_t topic_len;
	if (!K || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	if (ig_kp_hello_parse(&h, msg, len) != IG_OK)
		return IG_ERR_INVAL;
	uint8_t mac[MAC_BYTES];
	topic_mac(mac, K, HELLO_LABEL, topic, topic_len, msg, len - MAC_BYTES);
	int ok = sodium_memcmp(mac, msg + len - MAC_BYTES, MAC_BYTES) == 0;
	sodium_memzero(mac, sizeof mac);
	return ok ? IG_OK : IG_ERR_CRYPTO;
}

/* ---- A.6 path messages ----------------------------------------------- */

#define PATH_VERSION 4
#define PATH_LABEL "iotguard kp path v1"
#define PATH_BOX_BYTES (32 + crypto_aead_xchacha20poly1305_ietf_ABYTES)

/* version | kind | epoch | n | ids: the head both path kinds share. */
static size_t path_head(uint8_t *out, uint8_t kind, const ig_kp_path *p)
{
	size_t o = 0;
	out[o++] = PATH_VERSION;
	out[o++] = kind;
	ig_put_u64(out + o, p->epoch);
	o += 8;
	ig_put_u16(out + o, p->n);
	o += 2;
	for (size_t i = 0; i < p->n; i++, o += 4)
		ig_put_u32(out + o, p->ids[i]);
	return o;
}

static bool path_head_ok(const ig_kp_path *p)
{
	return p->epoch >= 1 && p->n >= 1 && p->n <= IG_KP_PAIR_MAX_IDS &&
	       ids_ascending(p->ids, p->n, IG_KP_POOL_MAX);
}

int ig_kp_path_request_build(uint8_t *out, size_t cap, const ig_kp_path *p, const uint8_t K[32], const char *topic)
{
	size_t topic_len, lb;
	if (!out || !p || !K || !topic_ok(topic, &topic_len) || !path_head_ok(p) || !id_ok(p->b, &lb))
		return IG_ERR_INVAL;
	size_t total = 12 + 4 * (size_t)p->n + 1 + lb + 16 + MAC_BYTES;
	if (cap < total)
		return IG_ERR_RANGE;
	size_t o = path_head(out, 1, p);
	out[o++] = (uint8_t)lb;
	memcpy(out + o, p->b, lb);
	o += lb;
	memcpy(out + o, p->req_id, 16);
	o += 16;
	topic_mac(out + o, K, PATH_LABEL, topic, topic_len, out, o);
	return (int)(o + MAC_BYTES);
}

/* AD = label || 0x00 || topic || 0x00 || head (every byte before the box). */
static uint8_t *path_ad(size_t *ad_len, const char *topic, size_t topic_len, const uint8_t *head, size_t head_len)
{
	size_t n = LIT_LEN(PATH_LABEL) + 1 + topic_len + 1 + head_len;
	uint8_t *ad = malloc(n);
	if (!ad)
		return NULL;
	size_t o = 0;
	memcpy(ad, PATH_LABEL, LIT_LEN(PATH_LABEL));
	o += LIT_LEN(PATH_LABEL);
	ad[o++] = 0x00;
	memcpy(ad + o, topic, topic_len);
	o += topic_len;
	ad[o++] = 0x00;
	memcpy(ad + o, head, head_len);
	*ad_len = n;
	return ad;
}

int ig_kp_path_key_build(uint8_t *out, size_t cap, ig_kp_path *p, const uint8_t K[32], const char *topic,
                         const uint8_t path_key[32])
{
	size_t topic_len, la, lb;
	if (!out || !p || !K || !path_key || !topic_ok(topic, &topic_len) || !path_head_ok(p) ||
	    !id_ok(p->a, &la) || !id_ok(p->b, &lb) || strcmp(p->a, p->b) == 0)
		return IG_ERR_INVAL;
	size_t total = 12 + 4 * (size_t)p->n + 1 + la + 1 + lb + 16 + 16 + 24 + PATH_BOX_BYTES;
	if (cap < total)
		return IG_ERR_RANGE;
	/* A fresh random nonce per box: K_CX is long-lived and C keeps no
	 * counter across restarts, so only randomness rules out a repeat. */
	if (sodium_is_zero(p->box_nonce, sizeof p->box_nonce))
		randombytes_buf(p->box_nonce, sizeof p->box_nonce);
	size_t o = path_head(out, 2, p);
	out[o++] = (uint8_t)la;
	memcpy(out + o, p->a, la);
	o += la;
	out[o++] = (uint8_t)lb;
	memcpy(out + o, p->b, lb);
	o += lb;
	memcpy(out + o, p->req_id, 16);
	o += 16;
	memcpy(out + o, p->path_id, 16);
	o += 16;
	memcpy(out + o, p->box_nonce, 24);
	o += 24;
	size_t ad_len;
	uint8_t *ad = path_ad(&ad_len, topic, topic_len, out, o);
	if (!ad)
		return IG_ERR_NOMEM;
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + o, &clen, path_key, 32, ad, ad_len, NULL, p->box_nonce, K);
	free(ad);
	return (int)(o + PATH_BOX_BYTES);
}

/* Reads "len (1) || id" at *o; false when out of bounds or not a valid id. */
static bool read_id(char out[IG_ID_MAX + 1], const uint8_t *msg, size_t len, size_t *o)
{
	if (*o >= len)
		return false;
	size_t c = msg[(*o)++];
	if (c < 1 || c > IG_ID_MAX || len - *o < c || !ig_id_valid((const char *)msg + *o, c))
		return false;
	memcpy(out, msg + *o, c);
	out[c] = '\0';
	*o += c;
	return true;
}

/* Parses and reports where the mac (kind 1) or the box (kind 2) starts. */
static int path_parse(ig_kp_path *p, size_t *tail, const uint8_t *msg, size_t len)
{
	if (!p || !msg || len < 12 || len > IG_KP_PATH_MAX)
		return IG_ERR_INVAL;
	ig_kp_path t;
	memset(&t, 0, sizeof t);
	if (msg[0] != PATH_VERSION)
		return IG_ERR_INVAL;
	t.kind = msg[1];
	if (t.kind != 1 && t.kind != 2)
		return IG_ERR_INVAL;
	t.epoch = ig_get_u64(msg + 2);
	t.n = ig_get_u16(msg + 10);
	size_t o = 12;
	if (t.epoch < 1 || t.n < 1 || t.n > IG_KP_PAIR_MAX_IDS || len - o < 4 * (size_t)t.n)
		return IG_ERR_INVAL;
	for (size_t i = 0; i < t.n; i++, o += 4)
		t.ids[i] = ig_get_u32(msg + o);
	if (!ids_ascending(t.ids, t.n, IG_KP_POOL_MAX))
		return IG_ERR_INVAL;
	if (t.kind == 2 && !read_id(t.a, msg, len, &o))
		return IG_ERR_INVAL;
	if (!read_id(t.b, msg, len, &o))
		return IG_ERR_INVAL;
	if (t.kind == 2 && strcmp(t.a, t.b) == 0)
		return IG_ERR_INVAL;
	if (len - o < 16)
		return IG_ERR_INVAL;
	memcpy(t.req_id, msg + o, 16);
	o += 16;
	if (t.kind == 1) {
		if (len - o != MAC_BYTES)
			return IG_ERR_INVAL;
	} else {
		if (len - o != 16 + 24 + PATH_BOX_BYTES)
			return IG_ERR_INVAL;
		memcpy(t.path_id, msg + o, 16);
		o += 16;
		memcpy(t.box_nonce, msg + o, 24);
		o += 24;
	}
	*p = t;
	*tail = o;
	return IG_OK;
}

int ig_kp_path_parse(ig_kp_path *p, const uint8_t *msg, size_t len)
{
	size_t tail;
	return path_parse(p, &tail, msg, len);
}

int ig_kp_path_request_verify(const uint8_t *msg, size_t len, const uint8_t K[32], const char *topic)
{
	ig_kp_path p;
	size_t tail, topic_len;
	if (!K || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	if (path_parse(&p, &tail, msg, len) != IG_OK || p.kind != 1)
		return IG_ERR_INVAL;
	uint8_t mac[MAC_BYTES];
	topic_mac(mac, K, PATH_LABEL, topic, topic_len, msg, tail);
	int ok = sodium_memcmp(mac, msg + tail, MAC_BYTES) == 0;
	sodium_memzero(mac, sizeof mac);
	return ok ? IG_OK : IG_ERR_CRYPTO;
}

int ig_kp_path_key_open(uint8_t path_key[32], const uint8_t *msg, size_t len, const uint8_t K[32],
                        const char *topic)
{
	ig_kp_path p;
	size_t tail, topic_len;
	if (!path_key || !K || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	if (path_parse(&p, &tail, msg, len) != IG_OK || p.kind != 2)
		return IG_ERR_INVAL;
	size_t ad_len;
	uint8_t *ad = path_ad(&ad_len, topic, topic_len, msg, tail);
	if (!ad)
		return IG_ERR_NOMEM;
	uint8_t pk[32];
	unsigned long long plen = 0;
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(pk, &plen, NULL, msg + tail, PATH_BOX_BYTES, ad, ad_len,
	                                                    p.box_nonce, K);
	free(ad);
	if (rc != 0 || plen != 32) {
		sodium_memzero(pk, sizeof pk);
		return IG_ERR_CRYPTO;
	}
	memcpy(path_key, pk, 32);
	sodium_memzero(pk, sizeof pk);
	return IG_OK;
}

/* ---- A.7 the revoked statement ---------------------------------------- */

#define REVOKED_LABEL "iotguard kp revoked v1"
/* Far above any real statement (2^24 ids of up to 9 characters each), and
 * low enough that a hostile retained message cannot exhaust memory. */
#define REVOKED_JSON_MAX (256u << 20)

void ig_kp_revoked_free(ig_kp_revoked *r)
{
	if (!r)
		return;
	free(r->ids);
	free(r->devices);
	memset(r, 0, sizeof *r);
}

/* Everything the statement must satisfy besides its signature. */
static int revoked_check(const ig_kp_revoked *r, ig_error *err)
{
	if (!id_ok(r->cluster, NULL))
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: cluster name invalid");
	int rc = ig_kp_params_check(&r->params, err);
	if (rc != IG_OK) {
		ig_error_prefix(err, "kp revoked statement: ");
		return rc;
	}
	if ((r->n_ids > 0 && !r->ids) || (r->n_devices > 0 && !r->devices))
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: id list missing");
	if (r->n_ids > r->params.pool || !ids_ascending(r->ids, r->n_ids, r->params.pool))
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: ids must be strictly ascending and "
		                    "below pool %u", r->params.pool);
	if (r->n_devices > UINT32_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: too many devices");
	for (size_t i = 0; i < r->n_devices; i++) {
		if (!id_ok(r->devices[i], NULL))
			return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: device %zu is not a valid id", i);
		if (i > 0 && strcmp(r->devices[i - 1], r->devices[i]) >= 0)
			return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: devices must be strictly "
			                    "ascending (bytewise)");
	}
	return IG_OK;
}

int ig_kp_revoked_bytes(uint8_t **out, size_t *len, const ig_kp_revoked *r)
{
	size_t lc;
	if (!out || !len || !r || !id_ok(r->cluster, &lc))
		return IG_ERR_INVAL;
	if ((r->n_ids > 0 && !r->ids) || (r->n_devices > 0 && !r->devices) || r->n_ids > UINT32_MAX ||
	    r->n_devices > UINT32_MAX)
		return IG_ERR_INVAL;
	size_t n = LIT_LEN(REVOKED_LABEL) + 1 + 1 + lc + 8 + 4 + 4 + 1 + 32 + 8 + 4 + 4 * r->n_ids + 4;
	for (size_t i = 0; i < r->n_devices; i++) {
		size_t ld;
		if (!id_ok(r->devices[i], &ld))
			return IG_ERR_INVAL;
		n += 1 + ld;
	}
	uint8_t *b = malloc(n);
	if (!b)
		return IG_ERR_NOMEM;
	size_t o = 0;
	memcpy(b, REVOKED_LABEL, LIT_LEN(REVOKED_LABEL));
	o += LIT_LEN(REVOKED_LABEL);
	b[o++] = 0x00;
	b[o++] = (uint8_t)lc;
	memcpy(b + o, r->cluster, lc);
	o += lc;
	ig_put_u64(b + o, r->params.epoch);
	o += 8;
	ig_put_u32(b + o, r->params.pool);
	o += 4;
	ig_put_u32(b + o, r->params.ring);
	o += 4;
	b[o++] = r->params.q;
	memcpy(b + o, r->params.seed, 32);
	o += 32;
	ig_put_u64(b + o, r->serial);
	o += 8;
	ig_put_u32(b + o, (uint32_t)r->n_ids);
	o += 4;
	for (size_t i = 0; i < r->n_ids; i++, o += 4)
		ig_put_u32(b + o, r->ids[i]);
	ig_put_u32(b + o, (uint32_t)r->n_devices);
	o += 4;
	for (size_t i = 0; i < r->n_devices; i++) {
		size_t ld = strlen(r->devices[i]);
		b[o++] = (uint8_t)ld;
		memcpy(b + o, r->devices[i], ld);
		o += ld;
	}
	*out = b;
	*len = o;
	return IG_OK;
}

char *ig_kp_revoked_json(const ig_kp_revoked *r, const uint8_t ch_sk[64])
{
	if (!r || !ch_sk || revoked_check(r, NULL) != IG_OK)
		return NULL;
	/* JSON numbers are exact only up to 2^53 - 1 (ig_json.h). */
	if (r->params.epoch > IG_JSON_UINT_MAX || r->serial > IG_JSON_UINT_MAX)
		return NULL;
	uint8_t *bytes;
	size_t blen;
	if (ig_kp_revoked_bytes(&bytes, &blen, r) != IG_OK)
		return NULL;
	uint8_t sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, bytes, blen, ch_sk);
	free(bytes);

	char seed_hex[65], sig_hex[2 * crypto_sign_BYTES + 1];
	ig_hex_encode(seed_hex, r->params.seed, 32);
	ig_hex_encode(sig_hex, sig, sizeof sig);
	char *text = NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON *ids = cJSON_CreateArray(), *devs = cJSON_CreateArray();
	bool ok = o && ids && devs;
	for (size_t i = 0; ok && i < r->n_ids; i++) {
		cJSON *v = cJSON_CreateNumber((double)r->ids[i]);
		ok = v && cJSON_AddItemToArray(ids, v);
	}
	for (size_t i = 0; ok && i < r->n_devices; i++) {
		cJSON *v = cJSON_CreateString(r->devices[i]);
		ok = v && cJSON_AddItemToArray(devs, v);
	}
	if (ok) {
		ok = cJSON_AddStringToObject(o, "type", "kp_revoked") &&
		     cJSON_AddStringToObject(o, "cluster", r->cluster) &&
		     cJSON_AddNumberToObject(o, "epoch", (double)r->params.epoch) &&
		     cJSON_AddNumberToObject(o, "pool", (double)r->params.pool) &&
		     cJSON_AddNumberToObject(o, "ring", (double)r->params.ring) &&
		     cJSON_AddNumberToObject(o, "q", (double)r->params.q) &&
		     cJSON_AddStringToObject(o, "seed", seed_hex) &&
		     cJSON_AddNumberToObject(o, "serial", (double)r->serial);
	}
	if (ok) {
		cJSON_AddItemToObject(o, "ids", ids);
		ids = NULL;
		cJSON_AddItemToObject(o, "devices", devs);
		devs = NULL;
		ok = cJSON_AddStringToObject(o, "sig", sig_hex) != NULL;
	}
	if (ok)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(ids);
	cJSON_Delete(devs);
	cJSON_Delete(o);
	return text;
}

/* Lowercase hex of exactly outlen bytes (the statement's only encoding). */
static bool hex_field(uint8_t *out, size_t outlen, const cJSON *item)
{
	if (!cJSON_IsString(item) || !item->valuestring)
		return false;
	const char *s = item->valuestring;
	size_t n = strlen(s);
	if (n != 2 * outlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return ig_hex_decode(out, outlen, s, n) == IG_OK;
}

static const char *const revoked_members[] = {"type", "cluster", "epoch", "pool", "ring", "q",
                                              "seed", "serial", "ids", "devices", "sig"};
#define REVOKED_MEMBERS (sizeof revoked_members / sizeof revoked_members[0])

int ig_kp_revoked_parse(ig_kp_revoked *r, const uint8_t *json, size_t len, const uint8_t ch_pk[32],
                        ig_error *err)
{
	if (!r)
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: no output given");
	memset(r, 0, sizeof *r);
	if (!json || !ch_pk || len == 0)
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: empty");
	if (len > REVOKED_JSON_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: %zu bytes, more than the %u allowed",
		                    len, REVOKED_JSON_MAX);
	/* Every string of a genuine statement is an id or hex, so a NUL or an
	 * escape can only be an attempt at a second spelling of the same
	 * signed bytes ("a\u0000b" reads as "a"). */
	if (memchr(json, '\0', len) || memchr(json, '\\', len))
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: contains a NUL or an escape");
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts((const char *)json, len, &end, false);
	size_t off = o && end && end >= (const char *)json && end <= (const char *)json + len
	                     ? (size_t)(end - (const char *)json)
	                     : len;
	while (o && off < len && (json[off] == ' ' || json[off] == '\t' || json[off] == '\n' || json[off] == '\r'))
		off++;
	if (!o || off != len || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: not a JSON object");
	}

	int rc = IG_ERR_INVAL;
	ig_kp_revoked t;
	memset(&t, 0, sizeof t);
	uint8_t sig[crypto_sign_BYTES];
	uint8_t *bytes = NULL;
	size_t blen = 0;
	uint64_t v;

	/* Exactly the members of A.7, each once: an unsigned extra member or a
	 * duplicate could carry a meaning the signature does not cover. */
	unsigned seen[REVOKED_MEMBERS] = {0};
	for (const cJSON *m = o->child; m; m = m->next) {
		size_t k = 0;
		while (k < REVOKED_MEMBERS && (!m->string || strcmp(m->string, revoked_members[k]) != 0))
			k++;
		if (k == REVOKED_MEMBERS || seen[k]++) {
			ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: unexpected or repeated member \"%.64s\"",
			             m->string ? m->string : "");
			goto out;
		}
	}
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "kp_revoked") != 0) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: type is not \"kp_revoked\"");
		goto out;
	}
	const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "cluster");
	if (!cJSON_IsString(cl) || !id_ok(cl->valuestring, NULL)) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: cluster missing or not a valid name");
		goto out;
	}
	strcpy(t.cluster, cl->valuestring);
	if (ig_json_uint_field(&t.params.epoch, o, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    ig_json_uint_field(&v, o, "pool", 2, IG_KP_POOL_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: epoch or pool missing or out of range");
		goto out;
	}
	t.params.pool = (uint32_t)v;
	if (ig_json_uint_field(&v, o, "ring", 1, IG_KP_RING_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: ring missing or out of range");
		goto out;
	}
	t.params.ring = (uint32_t)v;
	if (ig_json_uint_field(&v, o, "q", 1, IG_KP_Q_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: q missing or out of range");
		goto out;
	}
	t.params.q = (uint8_t)v;
	if (!hex_field(t.params.seed, 32, cJSON_GetObjectItemCaseSensitive(o, "seed"))) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: seed is not 64 lowercase hex characters");
		goto out;
	}
	if (ig_json_uint_field(&t.serial, o, "serial", 0, IG_JSON_UINT_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: serial missing or out of range");
		goto out;
	}
	if (!hex_field(sig, sizeof sig, cJSON_GetObjectItemCaseSensitive(o, "sig"))) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: sig is not 128 lowercase hex characters");
		goto out;
	}
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
	const cJSON *devs = cJSON_GetObjectItemCaseSensitive(o, "devices");
	if (!cJSON_IsArray(ids) || !cJSON_IsArray(devs)) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: ids and devices must be arrays");
		goto out;
	}
	size_t nids = (size_t)cJSON_GetArraySize(ids), ndev = (size_t)cJSON_GetArraySize(devs);
	if (nids > t.params.pool) {
		ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: more ids than the pool holds");
		goto out;
	}
	t.ids = nids ? malloc(nids * sizeof *t.ids) : NULL;
	t.devices = ndev ? malloc(ndev * sizeof *t.devices) : NULL;
	if ((nids && !t.ids) || (ndev && !t.devices)) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "kp revoked statement: out of memory");
		goto out;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, ids) {
		if (ig_json_uint(&v, it, 0, t.params.pool - 1) != IG_OK) {
			ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: id %zu is not a whole number below pool %u",
			             t.n_ids, t.params.pool);
			goto out;
		}
		t.ids[t.n_ids++] = (uint32_t)v;
	}
	cJSON_ArrayForEach(it, devs) {
		if (!cJSON_IsString(it) || !id_ok(it->valuestring, NULL)) {
			ig_error_set(err, IG_ERR_INVAL, "kp revoked statement: device %zu is not a valid id", t.n_devices);
			goto out;
		}
		strcpy(t.devices[t.n_devices++], it->valuestring);
	}
	rc = revoked_check(&t, err);
	if (rc != IG_OK)
		goto out;
	rc = ig_kp_revoked_bytes(&bytes, &blen, &t);
	if (rc != IG_OK) {
		ig_error_set(err, rc, "kp revoked statement: cannot build the signed bytes");
		goto out;
	}
	if (crypto_sign_verify_detached(sig, bytes, blen, ch_pk) != 0) {
		rc = ig_error_set(err, IG_ERR_CRYPTO, "kp revoked statement: signature does not verify under the "
		                  "cluster-head key; ignore it (forged, or from another cluster)");
		goto out;
	}
	*r = t;
	memset(&t, 0, sizeof t);
	rc = IG_OK;
out:
	free(bytes);
	ig_kp_revoked_free(&t);
	cJSON_Delete(o);
	return rc;
}

/* ---- A.8 the key_ring box plaintext ----------------------------------- */

#define RING_PLAIN_HEAD (8 + 4 + 4 + 1 + 32)

int ig_kp_ring_plain(uint8_t *out, size_t cap, const ig_kp_params *p, const char *device_id,
                     const uint32_t *ids, const uint8_t (*keys)[32])
{
	size_t lid;
	if (!out || !p || !ids || !keys || !id_ok(device_id, &lid) || ig_kp_params_check(p, NULL) != IG_OK)
		return IG_ERR_INVAL;
	if (!ids_ascending(ids, p->ring, p->pool))
		return IG_ERR_INVAL;
	size_t total = RING_PLAIN_HEAD + 1 + lid + 36 * (size_t)p->ring;
	if (cap < total)
		return IG_ERR_RANGE;
	size_t o = 0;
	ig_put_u64(out + o, p->epoch);
	o += 8;
	ig_put_u32(out + o, p->pool);
	o += 4;
	ig_put_u32(out + o, p->ring);
	o += 4;
	out[o++] = p->q;
	memcpy(out + o, p->seed, 32);
	o += 32;
	out[o++] = (uint8_t)lid;
	memcpy(out + o, device_id, lid);
	o += lid;
	for (size_t i = 0; i < p->ring; i++) {
		ig_put_u32(out + o, ids[i]);
		memcpy(out + o + 4, keys[i], 32);
		o += 36;
	}
	return (int)o;
}

int ig_kp_ring_plain_parse(ig_kp_params *p, uint32_t *ids, uint8_t (*keys)[32], const uint8_t *in, size_t len,
                           const char *device_id)
{
	size_t lid;
	if (!p || !ids || !keys || !in || !id_ok(device_id, &lid))
		return IG_ERR_INVAL;
	if (len < RING_PLAIN_HEAD + 1)
		return IG_ERR_INVAL;
	ig_kp_params t;
	memset(&t, 0, sizeof t);
	size_t o = 0;
	t.epoch = ig_get_u64(in + o);
	o += 8;
	t.pool = ig_get_u32(in + o);
	o += 4;
	t.ring = ig_get_u32(in + o);
	o += 4;
	t.q = in[o++];
	memcpy(t.seed, in + o, 32);
	o += 32;
	if (ig_kp_params_check(&t, NULL) != IG_OK)
		return IG_ERR_INVAL;
	/* The box is for one device: a ring dealt to another must not be
	 * taken for ours, even under a valid box. */
	if (in[o++] != lid || len - o < lid || memcmp(in + o, device_id, lid) != 0)
		return IG_ERR_INVAL;
	o += lid;
	if (len - o != 36 * (size_t)t.ring)
		return IG_ERR_INVAL;
	uint32_t *want = malloc(t.ring * sizeof *want);
	if (!want)
		return IG_ERR_NOMEM;
	int rc = ig_kp_ring_ids(want, t.seed, device_id, t.pool, t.ring);
	for (size_t i = 0; rc == IG_OK && i < t.ring; i++)
		if (ig_get_u32(in + o + 36 * i) != want[i])
			rc = IG_ERR_INVAL;
	if (rc != IG_OK) {
		free(want);
		return IG_ERR_INVAL;
	}
	for (size_t i = 0; i < t.ring; i++) {
		ids[i] = want[i];
		memcpy(keys[i], in + o + 36 * i + 4, 32);
	}
	free(want);
	*p = t;
	return IG_OK;
}

/* ---- A.9 KEYFILE.ring -------------------------------------------------- */

#define FILE_MAGIC "IGKRING1"
#define FILE_MAGIC_BYTES 8
#define FILE_KEY_INFO "iotguard kp ring file v1"
#define FILE_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define FILE_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
/* A ring file holds one ring (at most 1024 x 36 bytes) and the revoked
 * set; 64 MiB is far beyond any real one and refuses a file that is not. */
#define FILE_MAX (64u << 20)

void ig_kp_file_key(uint8_t out[32], const uint8_t seed32[32])
{
	(void)ig_hkdf(out, 32, NULL, 0, seed32, 32, (const uint8_t *)FILE_KEY_INFO, LIT_LEN(FILE_KEY_INFO));
}

/* AD = magic || identity public key: a ring file copied under another
 * identity's key file does not open. */
static void file_ad(uint8_t ad[FILE_MAGIC_BYTES + 32], const uint8_t pk[32])
{
	memcpy(ad, FILE_MAGIC, FILE_MAGIC_BYTES);
	memcpy(ad + FILE_MAGIC_BYTES, pk, 32);
}

int ig_kp_file_seal(uint8_t **out, size_t *len, const uint8_t file_key[32], const uint8_t pk[32],
                    const uint8_t *plain, size_t plain_len)
{
	if (!out || !len || !file_key || !pk || (plain_len > 0 && !plain))
		return IG_ERR_INVAL;
	if (plain_len > FILE_MAX - FILE_MAGIC_BYTES - FILE_NONCE_BYTES - FILE_TAG_BYTES)
		return IG_ERR_RANGE;
	size_t n = FILE_MAGIC_BYTES + FILE_NONCE_BYTES + plain_len + FILE_TAG_BYTES;
	uint8_t *b = malloc(n);
	if (!b)
		return IG_ERR_NOMEM;
	memcpy(b, FILE_MAGIC, FILE_MAGIC_BYTES);
	randombytes_buf(b + FILE_MAGIC_BYTES, FILE_NONCE_BYTES);
	uint8_t ad[FILE_MAGIC_BYTES + 32];
	file_ad(ad, pk);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(b + FILE_MAGIC_BYTES + FILE_NONCE_BYTES, &clen, plain, plain_len,
	                                           ad, sizeof ad, NULL, b + FILE_MAGIC_BYTES, file_key);
	*out = b;
	*len = n;
	return IG_OK;
}

int ig_kp_file_open(uint8_t **plain, size_t *plain_len, const uint8_t file_key[32], const uint8_t pk[32],
                    const uint8_t *in, size_t len)
{
	if (!plain || !plain_len || !file_key || !pk || !in)
		return IG_ERR_INVAL;
	*plain = NULL;
	*plain_len = 0;
	if (len < FILE_MAGIC_BYTES + FILE_NONCE_BYTES + FILE_TAG_BYTES || len > FILE_MAX)
		return IG_ERR_INVAL;
	if (memcmp(in, FILE_MAGIC, FILE_MAGIC_BYTES) != 0)
		return IG_ERR_INVAL;
	size_t clen = len - FILE_MAGIC_BYTES - FILE_NONCE_BYTES;
	size_t n = clen - FILE_TAG_BYTES;
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return IG_ERR_NOMEM;
	uint8_t ad[FILE_MAGIC_BYTES + 32];
	file_ad(ad, pk);
	unsigned long long got = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(b, &got, NULL, in + FILE_MAGIC_BYTES + FILE_NONCE_BYTES, clen,
	                                               ad, sizeof ad, in + FILE_MAGIC_BYTES, file_key) != 0 ||
	    got != n) {
		sodium_memzero(b, n ? n : 1);
		free(b);
		return IG_ERR_CRYPTO;
	}
	*plain = b;
	*plain_len = n;
	return IG_OK;
}
