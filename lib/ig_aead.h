/*
 * ig_aead.h: the two AEAD suites, the device-to-device message envelope and
 * its replay window.
 *
 * Why this exists: session keys protect m2m traffic with AES-256-GCM where
 * the CPU has AES-NI, and XChaCha20-Poly1305 everywhere else; the suite is
 * named in every message so both ends agree. Nonces are never random here:
 * they are derived from (direction, counter), so a key never sees a nonce
 * twice as long as each side counts up, and the receiver can reject
 * replays with a sliding window.
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
#ifndef IG_AEAD_H
#define IG_AEAD_H

#include "ig_common.h"

typedef enum ig_suite {
	IG_SUITE_NONE = 0,
	IG_SUITE_AES256GCM = 1,
	IG_SUITE_XCHACHA20POLY1305 = 2,
} ig_suite;

#define IG_AEAD_KEY_BYTES 32
#define IG_AEAD_TAG_BYTES 16
#define IG_KEY_ID_BYTES 16
#define IG_M2M_HEADER_BYTES (1 + 1 + IG_KEY_ID_BYTES + 8)
#define IG_M2M_MAX_PLAINTEXT 65536

const char *ig_suite_name(ig_suite s);     /* "aes256gcm", "xchacha20poly1305" */
ig_suite ig_suite_parse(const char *name);
/* AES-256-GCM if crypto_aead_aes256gcm_is_available() and not forced off,
 * else XChaCha20-Poly1305. */
ig_suite ig_suite_preferred(void);
/* For tests and for hosts that must interoperate with non-AES-NI peers:
 * forces ig_suite_preferred() to XChaCha20-Poly1305. Also set by the
 * environment variable IOTGUARD_FORCE_XCHACHA=1. */
void ig_suite_force_fallback(bool on);
bool ig_suite_available(ig_suite s);

/* Generic AEAD with an explicit nonce (12 bytes GCM, 24 bytes XChaCha).
 * out must hold len + 16. Returns ciphertext length or IG_ERR_*. */
int ig_aead_seal(ig_suite s, uint8_t *out, size_t cap, const uint8_t *pt, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES]);
/* Returns plaintext length, or IG_ERR_CRYPTO on a bad tag. */
int ig_aead_open(ig_suite s, uint8_t *out, size_t cap, const uint8_t *ct, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES]) IG_NODISCARD;
size_t ig_suite_nonce_bytes(ig_suite s);

/* m2m envelope. */
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

/* Sliding replay window over 64-bit counters (RFC 4303 style, 1024 wide). */
#define IG_REPLAY_WINDOW 1024
typedef struct ig_replay_window {
	uint64_t highest;                         /* 0 = nothing seen yet */
	uint64_t bits[IG_REPLAY_WINDOW / 64];     /* bit i: highest - i was seen */
} ig_replay_window;

typedef enum ig_replay_result {
	IG_REPLAY_OK = 0,       /* new: accept (call ig_replay_commit after decrypting) */
	IG_REPLAY_DUPLICATE,    /* seen before */
	IG_REPLAY_TOO_OLD,      /* below the window */
	IG_REPLAY_INVALID,      /* counter 0 */
} ig_replay_result;

void ig_replay_init(ig_replay_window *w);
/* Checks without changing state, so a forged message cannot move the window. */
ig_replay_result ig_replay_check(const ig_replay_window *w, uint64_t counter);
/* Records counter as seen (after the AEAD tag verified). */
void ig_replay_commit(ig_replay_window *w, uint64_t counter);

#endif
