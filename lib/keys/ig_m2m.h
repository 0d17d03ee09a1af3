/*
 * ig_m2m.h: the device-to-device message envelope.
 *
 * Why this exists: devices talk to each other with session keys from the
 * cluster head, and both ends must build the same nonce and AAD from the
 * same header bytes. Nonces are derived from (direction, counter), so a key
 * never sees a nonce twice as long as each side counts up, and the receiver
 * can reject replays with a sliding window (ig_replay.h).
 *
 * m2m message (payload on iotguard/C/m2m/<to>/<from>), binary, big-endian:
 *   1  version = 1
 *   1  suite (IG_SUITE_*)
 *   16 key id
 *   8  counter (per direction, starts at 1)
 *   n  ciphertext || 16-byte tag
 * nonce: 12 bytes (GCM) or 24 bytes (XChaCha) = direction byte || zeros ||
 *        counter (big-endian, last 8 bytes). direction 0 = sent by the
 *        requester of the key ("A"), 1 = sent by the peer ("B").
 * AAD:   "iotguard-m2m-v1" || 0x00 || topic || 0x00 || key id || counter(8)
 */
#ifndef IG_M2M_H
#define IG_M2M_H

#include "ig_aead.h"
#include "ig_common.h"

#define IG_M2M_HEADER_BYTES (1 + 1 + IG_KEY_ID_BYTES + 8)
#define IG_M2M_MAX_PLAINTEXT 65536

typedef struct ig_m2m_header {
	uint8_t version;
	ig_suite suite;
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint64_t counter;
} ig_m2m_header;

/* Builds a complete message into out. Returns its length or IG_ERR_*. */
int ig_m2m_seal(uint8_t *out, size_t cap, ig_suite suite, const uint8_t key[IG_AEAD_KEY_BYTES],
                const uint8_t key_id[IG_KEY_ID_BYTES], uint8_t direction, uint64_t counter,
                const char *topic, const uint8_t *pt, size_t pt_len);
/* Parses the header only (to find the key). IG_ERR_INVAL if malformed. */
int ig_m2m_parse_header(const uint8_t *msg, size_t len, ig_m2m_header *h);
/* Decrypts with the key found for h->key_id. Returns plaintext length or
 * IG_ERR_INVAL (malformed) / IG_ERR_CRYPTO (tampered, wrong topic, wrong key). */
int ig_m2m_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const uint8_t key[IG_AEAD_KEY_BYTES],
                uint8_t direction, const char *topic, ig_m2m_header *h) IG_NODISCARD;

/* The same envelope for an explicit version: 1 (the functions above; label
 * "iotguard-m2m-v1", both suites) or 2 (key-ring sessions, ig_kp.h; label
 * "iotguard-m2m-v2", suite 2 only). The AAD label is "iotguard-m2m-v<version>". */
int ig_m2m_seal_v(uint8_t *out, size_t cap, uint8_t version, ig_suite suite, const uint8_t key[32],
                  const uint8_t key_id[16], uint8_t direction, uint64_t counter, const char *topic,
                  const uint8_t *pt, size_t pt_len);
int ig_m2m_parse_header_v(const uint8_t *msg, size_t len, uint8_t version, ig_m2m_header *h) IG_NODISCARD;
int ig_m2m_open_v(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, uint8_t version,
                  const uint8_t key[32], uint8_t direction, const char *topic, ig_m2m_header *h) IG_NODISCARD;

#endif
