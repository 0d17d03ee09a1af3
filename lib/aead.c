/*
 * aead.c: the two AEAD suites, the m2m message envelope and its replay
 * window.
 *
 * Why this exists: devices talk to each other with session keys from the
 * cluster head. One file owns everything that touches those keys on the
 * wire, so the nonce rule (direction || counter, never random, never
 * reused) and the rule "authenticate first, then move the replay window"
 * are implemented once. Layouts are documented in ig_aead.h and
 * docs/PROTOCOL.md ("Cryptography").
 */
#include "ig_aead.h"

#include <limits.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define M2M_VERSION 1
#define M2M_AAD_DOMAIN "iotguard-m2m-v1"
#define M2M_AAD_DOMAIN_BYTES (sizeof M2M_AAD_DOMAIN - 1)
#define M2M_TOPIC_MAX 65535 /* the MQTT limit for a topic name */

/* ---- suites -------------------------------------------------------------- */

static atomic_bool force_fallback;

const char *ig_suite_name(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM: return "aes256gcm";
	case IG_SUITE_XCHACHA20POLY1305: return "xchacha20poly1305";
	case IG_SUITE_NONE: break;
	}
	return "none";
}

ig_suite ig_suite_parse(const char *name)
{
	if (!name)
		return IG_SUITE_NONE;
	if (strcmp(name, "aes256gcm") == 0)
		return IG_SUITE_AES256GCM;
	if (strcmp(name, "xchacha20poly1305") == 0)
		return IG_SUITE_XCHACHA20POLY1305;
	return IG_SUITE_NONE;
}

void ig_suite_force_fallback(bool on)
{
	atomic_store(&force_fallback, on);
}

static bool fallback_forced(void)
{
	if (atomic_load(&force_fallback))
		return true;
	/* Read on every call so a test (or an operator's wrapper script) can set
	 * it at any time; a suite is chosen once per issued key, not per byte. */
	const char *env = getenv("IOTGUARD_FORCE_XCHACHA");
	return env && strcmp(env, "1") == 0;
}

bool ig_suite_available(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM:
		/* libsodium's AES-GCM needs AES-NI and PCLMUL; its CPU probe runs in
		 * sodium_init, so the answer is only meaningful after ig_init. */
		return ig_init() == IG_OK && crypto_aead_aes256gcm_is_available() == 1;
	case IG_SUITE_XCHACHA20POLY1305:
		return true;
	case IG_SUITE_NONE:
		break;
	}
	return false;
}

ig_suite ig_suite_preferred(void)
{
	if (!fallback_forced() && ig_suite_available(IG_SUITE_AES256GCM))
		return IG_SUITE_AES256GCM;
	return IG_SUITE_XCHACHA20POLY1305;
}

size_t ig_suite_nonce_bytes(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM: return crypto_aead_aes256gcm_NPUBBYTES;
	case IG_SUITE_XCHACHA20POLY1305: return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	case IG_SUITE_NONE: break;
	}
	return 0;
}

/* ---- generic AEAD ---------------------------------------------------------- */

/* Shared argument checks; IG_OK or the error to return. */
static int aead_args(ig_suite s, const void *in, size_t len, const uint8_t *aad, size_t aad_len,
                     const uint8_t *nonce, const uint8_t *key)
{
	if (s != IG_SUITE_AES256GCM && s != IG_SUITE_XCHACHA20POLY1305)
		return IG_ERR_INVAL;
	if ((len > 0 && !in) || (aad_len > 0 && !aad) || !nonce || !key)
		return IG_ERR_INVAL;
	if (!ig_suite_available(s))
		return IG_ERR_STATE; /* AES-256-GCM on a CPU without AES-NI */
	return IG_OK;
}

int ig_aead_seal(ig_suite s, uint8_t *out, size_t cap, const uint8_t *pt, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES])
{
	int rc = aead_args(s, pt, len, aad, aad_len, nonce, key);
	if (rc != IG_OK)
		return rc;
	if (len > (size_t)INT_MAX - IG_AEAD_TAG_BYTES)
		return IG_ERR_RANGE;
	if (!out || cap < len + IG_AEAD_TAG_BYTES)
		return IG_ERR_RANGE;

	unsigned long long clen = 0;
	if (s == IG_SUITE_AES256GCM)
		rc = crypto_aead_aes256gcm_encrypt(out, &clen, pt, len, aad, aad_len, NULL, nonce, key);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, pt, len, aad, aad_len, NULL, nonce, key);
	if (rc != 0 || clen != len + IG_AEAD_TAG_BYTES)
		return IG_ERR_CRYPTO;
	return (int)clen;
}

int ig_aead_open(ig_suite s, uint8_t *out, size_t cap, const uint8_t *ct, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES])
{
	int rc = aead_args(s, ct, len, aad, aad_len, nonce, key);
	if (rc != IG_OK)
		return rc;
	if (len < IG_AEAD_TAG_BYTES)
		return IG_ERR_INVAL; /* cannot even hold the tag */
	if (len > (size_t)INT_MAX)
		return IG_ERR_RANGE;
	size_t pt_len = len - IG_AEAD_TAG_BYTES;
	if ((pt_len > 0 && !out) || cap < pt_len)
		return IG_ERR_RANGE;

	/* libsodium writes nothing through a NULL m only when mlen is 0; give it
	 * a harmless byte so an empty message needs no special case. */
	uint8_t dummy;
	uint8_t *dst = pt_len > 0 ? out : &dummy;
	unsigned long long mlen = 0;
	if (s == IG_SUITE_AES256GCM)
		rc = crypto_aead_aes256gcm_decrypt(dst, &mlen, NULL, ct, len, aad, aad_len, nonce, key);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, ct, len, aad, aad_len, nonce, key);
	if (rc != 0 || mlen != pt_len) {
		/* Never leave unauthenticated plaintext behind. */
		if (pt_len > 0)
			sodium_memzero(out, pt_len);
		return IG_ERR_CRYPTO;
	}
	return (int)mlen;
}

/* ---- m2m envelope ------------------------------------------------------------ */

/* nonce = direction || zeros || counter (big-endian, last 8 bytes). */
static void m2m_nonce(uint8_t *nonce, size_t nonce_len, uint8_t direction, uint64_t counter)
{
	memset(nonce, 0, nonce_len);
	nonce[0] = direction;
	ig_put_u64(nonce + nonce_len - 8, counter);
}

/* AAD = "iotguard-m2m-v1" || 0x00 || topic || 0x00 || key id || counter.
 * Binding the topic means a message replayed onto another pair's topic (or
 * back to its sender) fails; binding key id and counter makes the header
 * authenticated even though it travels in the clear. Returns the AAD length
 * and sets *aad (to stack or to heap *owned, which the caller frees). */
static size_t m2m_aad(uint8_t *stack, size_t stack_cap, uint8_t **aad, uint8_t **owned, const char *topic,
                      size_t topic_len, const uint8_t key_id[IG_KEY_ID_BYTES], uint64_t counter)
{
	size_t n = M2M_AAD_DOMAIN_BYTES + 1 + topic_len + 1 + IG_KEY_ID_BYTES + 8;
	uint8_t *p = stack;
	*owned = NULL;
	if (n > stack_cap) {
		p = malloc(n);
		if (!p)
			return 0;
		*owned = p;
	}
	*aad = p;
	memcpy(p, M2M_AAD_DOMAIN, M2M_AAD_DOMAIN_BYTES);
	p += M2M_AAD_DOMAIN_BYTES;
	*p++ = 0x00;
	memcpy(p, topic, topic_len);
	p += topic_len;
	*p++ = 0x00;
	memcpy(p, key_id, IG_KEY_ID_BYTES);
	p += IG_KEY_ID_BYTES;
	ig_put_u64(p, counter);
	return n;
}

static bool topic_ok(const char *topic, size_t *len)
{
	if (!topic)
		return false;
	*len = strnlen(topic, M2M_TOPIC_MAX + 1);
	return *len >= 1 && *len <= M2M_TOPIC_MAX;
}

int ig_m2m_seal(uint8_t *out, size_t cap, ig_suite suite, const uint8_t key[IG_AEAD_KEY_BYTES],
                const uint8_t key_id[IG_KEY_ID_BYTES], uint8_t direction, uint64_t counter,
                const char *topic, const uint8_t *pt, size_t pt_len)
{
	size_t topic_len;
	if (!out || !key || !key_id || (pt_len > 0 && !pt) || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	if (suite != IG_SUITE_AES256GCM && suite != IG_SUITE_XCHACHA20POLY1305)
		return IG_ERR_INVAL;
	if (direction > 1 || counter == 0)
		return IG_ERR_INVAL;
	if (pt_len > IG_M2M_MAX_PLAINTEXT)
		return IG_ERR_RANGE;
	if (cap < IG_M2M_HEADER_BYTES + pt_len + IG_AEAD_TAG_BYTES)
		return IG_ERR_RANGE;

	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	m2m_nonce(nonce, ig_suite_nonce_bytes(suite), direction, counter);
	uint8_t stack[512], *aad, *owned;
	size_t aad_len = m2m_aad(stack, sizeof stack, &aad, &owned, topic, topic_len, key_id, counter);
	if (aad_len == 0)
		return IG_ERR_NOMEM;

	int rc = ig_aead_seal(suite, out + IG_M2M_HEADER_BYTES, cap - IG_M2M_HEADER_BYTES, pt, pt_len, aad,
	                      aad_len, nonce, key);
	free(owned);
	if (rc < 0)
		return rc;
	out[0] = M2M_VERSION;
	out[1] = (uint8_t)suite;
	memcpy(out + 2, key_id, IG_KEY_ID_BYTES);
	ig_put_u64(out + 2 + IG_KEY_ID_BYTES, counter);
	return IG_M2M_HEADER_BYTES + rc;
}

int ig_m2m_parse_header(const uint8_t *msg, size_t len, ig_m2m_header *h)
{
	if (!msg || !h)
		return IG_ERR_INVAL;
	if (len < IG_M2M_HEADER_BYTES + IG_AEAD_TAG_BYTES ||
	    len > IG_M2M_HEADER_BYTES + IG_M2M_MAX_PLAINTEXT + IG_AEAD_TAG_BYTES)
		return IG_ERR_INVAL;
	if (msg[0] != M2M_VERSION)
		return IG_ERR_INVAL;
	if (msg[1] != IG_SUITE_AES256GCM && msg[1] != IG_SUITE_XCHACHA20POLY1305)
		return IG_ERR_INVAL;
	uint64_t counter = ig_get_u64(msg + 2 + IG_KEY_ID_BYTES);
	if (counter == 0)
		return IG_ERR_INVAL;
	h->version = msg[0];
	h->suite = (ig_suite)msg[1];
	memcpy(h->key_id, msg + 2, IG_KEY_ID_BYTES);
	h->counter = counter;
	return IG_OK;
}

int ig_m2m_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const uint8_t key[IG_AEAD_KEY_BYTES],
                uint8_t direction, const char *topic, ig_m2m_header *h)
{
	ig_m2m_header local;
	size_t topic_len;
	if (!h)
		h = &local;
	if (!key || direction > 1 || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	int rc = ig_m2m_parse_header(msg, len, h);
	if (rc != IG_OK)
		return rc;

	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	m2m_nonce(nonce, ig_suite_nonce_bytes(h->suite), direction, h->counter);
	uint8_t stack[512], *aad, *owned;
	size_t aad_len = m2m_aad(stack, sizeof stack, &aad, &owned, topic, topic_len, h->key_id, h->counter);
	if (aad_len == 0)
		return IG_ERR_NOMEM;
	rc = ig_aead_open(h->suite, out, cap, msg + IG_M2M_HEADER_BYTES, len - IG_M2M_HEADER_BYTES, aad, aad_len,
	                  nonce, key);
	free(owned);
	return rc;
}

/* ---- replay window ------------------------------------------------------------ */

#define WINDOW_WORDS (IG_REPLAY_WINDOW / 64)

void ig_replay_init(ig_replay_window *w)
{
	memset(w, 0, sizeof *w);
}

static bool window_bit(const ig_replay_window *w, uint64_t age)
{
	return (w->bits[age / 64] >> (age % 64)) & 1u;
}

ig_replay_result ig_replay_check(const ig_replay_window *w, uint64_t counter)
{
	if (counter == 0)
		return IG_REPLAY_INVALID;
	if (w->highest == 0 || counter > w->highest)
		return IG_REPLAY_OK;
	uint64_t age = w->highest - counter;
	if (age >= IG_REPLAY_WINDOW)
		return IG_REPLAY_TOO_OLD;
	return window_bit(w, age) ? IG_REPLAY_DUPLICATE : IG_REPLAY_OK;
}

/* Ages every remembered counter by shift (bit i moves to bit i + shift);
 * bits that leave the window are forgotten. */
static void window_shift(ig_replay_window *w, uint64_t shift)
{
	if (shift >= IG_REPLAY_WINDOW) {
		memset(w->bits, 0, sizeof w->bits);
		return;
	}
	size_t words = (size_t)(shift / 64);
	unsigned bits = (unsigned)(shift % 64);
	for (size_t j = WINDOW_WORDS; j-- > 0;) {
		uint64_t v = 0;
		if (j >= words) {
			v = w->bits[j - words] << bits;
			if (bits != 0 && j >= words + 1)
				v |= w->bits[j - words - 1] >> (64 - bits);
		}
		w->bits[j] = v;
	}
}

void ig_replay_commit(ig_replay_window *w, uint64_t counter)
{
	if (counter == 0)
		return;
	if (w->highest == 0) {
		memset(w->bits, 0, sizeof w->bits);
		w->highest = counter;
	} else if (counter > w->highest) {
		window_shift(w, counter - w->highest);
		w->highest = counter;
	}
	uint64_t age = w->highest - counter;
	if (age < IG_REPLAY_WINDOW)
		w->bits[age / 64] |= (uint64_t)1 << (age % 64);
}
