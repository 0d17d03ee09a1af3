/*
 * m2m.c: the device-to-device message envelope.
 *
 * Why this exists: the nonce rule (direction || counter, never random,
 * never reused) and the AAD that binds topic, key id and counter are
 * implemented once, so sender and receiver cannot drift apart. Layout in
 * ig_m2m.h and docs/PROTOCOL.md ("Cryptography"); the receiver checks and
 * moves its replay window (ig_replay.h) around ig_m2m_open.
 */
#include "ig_m2m.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The AAD label is "iotguard-m2m-v" followed by the version digit: v1 for
 * cluster-head session keys, v2 for key-ring sessions (ig_kp.h), so a message
 * can never be moved from one kind of session to the other. */
#define M2M_AAD_PREFIX "iotguard-m2m-v"
#define M2M_AAD_PREFIX_BYTES (sizeof M2M_AAD_PREFIX - 1)
#define M2M_AAD_DOMAIN_BYTES (M2M_AAD_PREFIX_BYTES + 1)
#define M2M_TOPIC_MAX 65535 /* the MQTT limit for a topic name */

/* nonce = direction || zeros || counter (big-endian, last 8 bytes). */
static void m2m_nonce(uint8_t *nonce, size_t nonce_len, uint8_t direction, uint64_t counter)
{
	memset(nonce, 0, nonce_len);
	nonce[0] = direction;
	ig_put_u64(nonce + nonce_len - 8, counter);
}

/* AAD = "iotguard-m2m-v<version>" || 0x00 || topic || 0x00 || key id || counter.
 * Binding the topic means a message replayed onto another pair's topic (or
 * back to its sender) fails; binding key id and counter makes the header
 * authenticated even though it travels in the clear. Returns the AAD length
 * and sets *aad (to stack or to heap *owned, which the caller frees). */
static size_t m2m_aad(uint8_t *stack, size_t stack_cap, uint8_t **aad, uint8_t **owned, const char *topic,
                      size_t topic_len, uint8_t version, const uint8_t key_id[IG_KEY_ID_BYTES],
                      uint64_t counter)
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
	memcpy(p, M2M_AAD_PREFIX, M2M_AAD_PREFIX_BYTES);
	p += M2M_AAD_PREFIX_BYTES;
	*p++ = (uint8_t)('0' + version);
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

/* Version 1 runs both suites; version 2 (key-ring sessions) only
 * XChaCha20-Poly1305, which every device can run. */
static bool version_suite_ok(uint8_t version, unsigned suite)
{
	if (version == 1)
		return suite == IG_SUITE_AES256GCM || suite == IG_SUITE_XCHACHA20POLY1305;
	if (version == 2)
		return suite == IG_SUITE_XCHACHA20POLY1305;
	return false;
}

int ig_m2m_seal_v(uint8_t *out, size_t cap, uint8_t version, ig_suite suite, const uint8_t key[32],
                  const uint8_t key_id[16], uint8_t direction, uint64_t counter, const char *topic,
                  const uint8_t *pt, size_t pt_len)
{
	size_t topic_len;
	if (!out || !key || !key_id || (pt_len > 0 && !pt) || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	if (!version_suite_ok(version, suite))
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
	size_t aad_len = m2m_aad(stack, sizeof stack, &aad, &owned, topic, topic_len, version, key_id, counter);
	if (aad_len == 0)
		return IG_ERR_NOMEM;

	int rc = ig_aead_seal(suite, out + IG_M2M_HEADER_BYTES, cap - IG_M2M_HEADER_BYTES, pt, pt_len, aad,
	                      aad_len, nonce, key);
	free(owned);
	if (rc < 0)
		return rc;
	out[0] = version;
	out[1] = (uint8_t)suite;
	memcpy(out + 2, key_id, IG_KEY_ID_BYTES);
	ig_put_u64(out + 2 + IG_KEY_ID_BYTES, counter);
	return IG_M2M_HEADER_BYTES + rc;
}

int ig_m2m_seal(uint8_t *out, size_t cap, ig_suite suite, const uint8_t key[IG_AEAD_KEY_BYTES],
                const uint8_t key_id[IG_KEY_ID_BYTES], uint8_t direction, uint64_t counter,
                const char *topic, const uint8_t *pt, size_t pt_len)
{
	return ig_m2m_seal_v(out, cap, 1, suite, key, key_id, direction, counter, topic, pt, pt_len);
}

int ig_m2m_parse_header_v(const uint8_t *msg, size_t len, uint8_t version, ig_m2m_header *h)
{
	if (!msg || !h)
		return IG_ERR_INVAL;
	if (len < IG_M2M_HEADER_BYTES + IG_AEAD_TAG_BYTES ||
	    len > IG_M2M_HEADER_BYTES + IG_M2M_MAX_PLAINTEXT + IG_AEAD_TAG_BYTES)
		return IG_ERR_INVAL;
	if (msg[0] != version)
		return IG_ERR_INVAL;
	if (!version_suite_ok(version, msg[1]))
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

int ig_m2m_parse_header(const uint8_t *msg, size_t len, ig_m2m_header *h)
{
	return ig_m2m_parse_header_v(msg, len, 1, h);
}

int ig_m2m_open_v(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, uint8_t version,
                  const uint8_t key[32], uint8_t direction, const char *topic, ig_m2m_header *h)
{
	ig_m2m_header local;
	size_t topic_len;
	if (!h)
		h = &local;
	if (!key || direction > 1 || !topic_ok(topic, &topic_len))
		return IG_ERR_INVAL;
	int rc = ig_m2m_parse_header_v(msg, len, version, h);
	if (rc != IG_OK)
		return rc;

	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	m2m_nonce(nonce, ig_suite_nonce_bytes(h->suite), direction, h->counter);
	uint8_t stack[512], *aad, *owned;
	size_t aad_len = m2m_aad(stack, sizeof stack, &aad, &owned, topic, topic_len, version, h->key_id,
	                         h->counter);
	if (aad_len == 0)
		return IG_ERR_NOMEM;
	rc = ig_aead_open(h->suite, out, cap, msg + IG_M2M_HEADER_BYTES, len - IG_M2M_HEADER_BYTES, aad, aad_len,
	                  nonce, key);
	free(owned);
	return rc;
}

int ig_m2m_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const uint8_t key[IG_AEAD_KEY_BYTES],
                uint8_t direction, const char *topic, ig_m2m_header *h)
{
	return ig_m2m_open_v(out, cap, msg, len, 1, key, direction, topic, h);
}
