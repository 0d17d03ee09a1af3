/*
 * ig_keybox.h: one-time session keys from the cluster head to a device pair
 * (seed 003), and the box that carries each copy.
 *
 * Why this exists: the key must reach exactly A and B, each copy must be
 * provably from the cluster head (crypto_box authenticates the sender, the
 * cluster head's X25519 key being derived from its Ed25519 identity), and
 * each copy is bound to its purpose: key id, peer, direction, expiry, suite
 * and, for the requester, its request nonce.
 *
 * Boxed plaintext (big-endian):
 *   32 key | 16 key_id | 8 expires_at (Unix s) | 1 suite | 1 direction |
 *   1 peer_len | peer | 1 nonce_len (0..64) | request nonce
 * Box: crypto_box_easy(plaintext, 24-byte random nonce,
 *        recipient = ed25519_pk_to_curve25519(device pk),
 *        sender    = ed25519_sk_to_curve25519(cluster-head sk))
 */
#ifndef IG_KEYBOX_H
#define IG_KEYBOX_H

#include "ig_aead.h"
#include "ig_common.h"

#define IG_KEYBOX_NONCE_BYTES 24
#define IG_REQUEST_NONCE_MAX 64

typedef struct ig_session_key {
	uint8_t key[IG_AEAD_KEY_BYTES];
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint64_t expires_at;
	ig_suite suite;
	uint8_t direction;                    /* 0: this holder requested it (A), 1: peer (B) */
	char peer[IG_ID_MAX + 1];
	char request_nonce[IG_REQUEST_NONCE_MAX + 1];
} ig_session_key;

/* Precomputed X25519 shared key between the cluster head and one device,
 * so issuing a key costs two symmetric boxes, not two scalar mults. */
typedef struct ig_box_key { uint8_t k[32]; } ig_box_key;
int ig_keybox_key_for_device(ig_box_key *bk, const uint8_t ch_sk[IG_SK_BYTES], const uint8_t device_pk[IG_PK_BYTES]);
int ig_keybox_key_for_ch(ig_box_key *bk, const uint8_t device_sk[IG_SK_BYTES], const uint8_t ch_pk[IG_PK_BYTES]);

/* Seals sk for one holder: out = box (plaintext + 16 bytes MAC); nonce is
 * filled. Returns the box length. */
int ig_keybox_seal(uint8_t *out, size_t cap, uint8_t nonce[IG_KEYBOX_NONCE_BYTES], const ig_session_key *sk,
                   const ig_box_key *bk);
/* Opens a box; IG_ERR_CRYPTO if not from the cluster head or tampered. */
int ig_keybox_open(ig_session_key *sk, const uint8_t *box, size_t len, const uint8_t nonce[IG_KEYBOX_NONCE_BYTES],
                   const ig_box_key *bk) IG_NODISCARD;

#endif
