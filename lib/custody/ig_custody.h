/*
 * ig_custody.h: the custody secret S, the sealed cluster-head key, the boxes
 * that carry shares, and a holder's encrypted share file (issue 9).
 *
 * Why this exists: a copied broker disk must be worthless without k devices.
 * ch.key is kept only as ch.key.sealed, an AEAD under a key derived from S;
 * S is split with ig_vss.h among device holders. This header fixes every
 * byte that crosses a process or a disk for that: the cluster head, the
 * agent and `iotguard custody recover` all use these functions, and
 * docs/PROTOCOL.md ("Custody: byte layouts and test vectors") documents the
 * same layouts with independently computed vectors.
 *
 * Byte layouts (integers big-endian):
 *   ch.key.sealed  = "IGCSEAL1" (8) | C0 (32) | nonce (24) | ciphertext (plain_len + 16)
 *                    XChaCha20-Poly1305-IETF, key = ig_custody_seal_key(S),
 *                    AD = "IGCSEAL1" | C0 | ch_pk (32); plaintext = the ch.key file verbatim.
 *   deal box pt    = "IGD1" | epoch (8) | index (1) | k (1) | n (1) | share (32) | commitments hash (32)  (79)
 *                    crypto_box_easy_afternm with the cluster head <-> holder ig_box_key.
 *   release box pt = "IGR1" | request (16) | epoch (8) | index (1) | share (32)                         (61)
 *                    crypto_box_easy to the requester's X25519 key from the holder's
 *                    Ed25519 identity converted to X25519.
 *   KEYFILE.shares = "IGCSTOR1" (8) | nonce (24) | XChaCha20-Poly1305-IETF ciphertext
 *                    key = HKDF-SHA256("", seed of the identity key, "iotguard custody store v1", 32),
 *                    AD = "IGCSTOR1" | identity id; plaintext = count (1) | entries, each
 *                    ch_pk (32) | epoch (8) | index (1) | k (1) | n (1) | flags (1, bit 0 active) |
 *                    share (32) | k x 32 commitments.
 */
#ifndef IG_CUSTODY_H
#define IG_CUSTODY_H

#include "ig_common.h"
#include "ig_keybox.h"

#define IG_CUSTODY_SEALED_FILE "ch.key.sealed"     /* in the ledger directory, mode 0600 */
/* S = scalar_reduce(HKDF-SHA256(salt = "", ikm = extra || 32 bytes randombytes_buf,
 *                   info = "iotguard custody secret v1", L = 64)); retried if S == 0. */
int ig_custody_secret_new(uint8_t S[32], const uint8_t *extra, size_t extra_len);
/* key = HKDF-SHA256(salt = "", ikm = S, info = "iotguard custody v1", L = 32) */
void ig_custody_seal_key(uint8_t key[32], const uint8_t S[32]);
/* ch.key.sealed = "IGCSEAL1" (8) | C0 (32) | nonce (24) | XChaCha20-Poly1305-IETF ciphertext
 *   key = ig_custody_seal_key(S), AD = the first 40 bytes (magic | C0) | ch_pk (32),
 *   plaintext = the ch.key file's bytes, verbatim (so `recover` writes a byte-identical file).
 * C0 = S·G (commitment 0 of every epoch for this S). plain_len <= 4096. */
#define IG_CUSTODY_SEALED_OVERHEAD (8 + 32 + 24 + 16)
int ig_custody_seal(uint8_t *out, size_t cap, size_t *out_len, const uint8_t S[32], const uint8_t ch_pk[32],
                    const uint8_t *plain, size_t plain_len);
/* Checks the magic, that S·G == the file's C0, and the AEAD; then ig_keyfile_parse on the plaintext and
 * that its public key == ch_pk ("the unsealed key is not the genesis key"). Fills sk (caller wipes). */
int ig_custody_unseal(uint8_t sk[IG_SK_BYTES], const uint8_t S[32], const uint8_t ch_pk[32],
                      const uint8_t *sealed, size_t len, ig_error *err) IG_NODISCARD;
/* The same, returning the plaintext key-file bytes (for `recover --out`). */
int ig_custody_unseal_file(uint8_t *plain, size_t cap, size_t *plain_len, const uint8_t S[32],
                           const uint8_t ch_pk[32], const uint8_t *sealed, size_t len, ig_error *err) IG_NODISCARD;
/* C0 from a sealed file's header (IG_ERR_INVAL when not one). */
int ig_custody_sealed_c0(uint8_t C0[32], const uint8_t *sealed, size_t len) IG_NODISCARD;

/* SHA-256("iotguard custody commitments v1" (31 bytes, no NUL) | epoch (8) | k (1) | C_0 .. C_{k-1}) */
void ig_custody_commitments_hash(uint8_t out[32], uint64_t epoch, const uint8_t commitments[][32], unsigned k);

/* A share dealt to a holder: crypto_box_easy_afternm with the precomputed ig_box_key (ig_keybox.h:
 * ig_keybox_key_for_device on the cluster head, ig_keybox_key_for_ch on the device).
 * Plaintext (79 bytes): "IGD1" | epoch (8) | index (1) | k (1) | n (1) | share (32) | commitments hash (32). */
typedef struct ig_custody_deal {
	uint64_t epoch;
	uint8_t index, k, n;
	uint8_t share[32];
	uint8_t commitments_hash[32];
} ig_custody_deal;
#define IG_CUSTODY_DEAL_BOX_BYTES (79 + 16)
int ig_custody_deal_seal(uint8_t out[IG_CUSTODY_DEAL_BOX_BYTES], uint8_t nonce[24], const ig_custody_deal *d,
                         const ig_box_key *bk);
int ig_custody_deal_open(ig_custody_deal *d, const uint8_t *box, size_t len, const uint8_t nonce[24],
                         const ig_box_key *bk) IG_NODISCARD;

/* A share released to a requester (the unsealing cluster head, or `iotguard custody recover`):
 * crypto_box_easy(plaintext, nonce, recipient = requester's ephemeral X25519 pk,
 *                 sender = crypto_sign_ed25519_sk_to_curve25519(holder's identity sk)).
 * The requester opens with the holder's Ed25519 pk (from the ledger) converted to X25519,
 * so a release is authenticated as that holder's.
 * Plaintext (61 bytes): "IGR1" | request id (16) | epoch (8) | index (1) | share (32). */
typedef struct ig_custody_release {
	uint8_t request[16];
	uint64_t epoch;
	uint8_t index;
	uint8_t share[32];
} ig_custody_release;
#define IG_CUSTODY_RELEASE_BOX_BYTES (61 + 16)
int ig_custody_release_seal(uint8_t out[IG_CUSTODY_RELEASE_BOX_BYTES], uint8_t nonce[24],
                            const ig_custody_release *r, const uint8_t requester_xpk[32],
                            const uint8_t holder_sk[IG_SK_BYTES]);
int ig_custody_release_open(ig_custody_release *r, const uint8_t *box, size_t len, const uint8_t nonce[24],
                            const uint8_t holder_pk[IG_PK_BYTES], const uint8_t requester_xsk[32]) IG_NODISCARD;

/* The holder's file KEYFILE.shares (mode 0600, written with ig_durable_replace):
 *   "IGCSTOR1" (8) | nonce (24) | XChaCha20-Poly1305-IETF ciphertext
 *   key = HKDF-SHA256(salt = "", ikm = the identity key's 32-byte seed, info = "iotguard custody store v1", 32)
 *   AD  = "IGCSTOR1" | the identity id (its bytes)
 *   plaintext = count (1, 0..IG_CUSTODY_HELD_MAX) | per entry:
 *      ch_pk (32) | epoch (8) | index (1) | k (1) | n (1) | flags (1: bit 0 = active) | share (32) | k × 32 commitments */
#define IG_CUSTODY_HELD_MAX 2     /* the active epoch and the one being dealt */
/* The largest KEYFILE.shares (two entries with k = 255): a buffer this size always fits. */
#define IG_CUSTODY_STORE_MAX (8 + 24 + 16 + 1 + IG_CUSTODY_HELD_MAX * (76 + 255 * 32))
typedef struct ig_custody_held {
	uint8_t ch_pk[32];
	uint64_t epoch;
	uint8_t index, k, n;
	bool active;
	uint8_t share[32];
	uint8_t commitments[255][32];
} ig_custody_held;
int ig_custody_store_encode(uint8_t *out, size_t cap, size_t *len, const ig_custody_held *h, size_t count,
                            const uint8_t id_sk[IG_SK_BYTES], const char *id);
int ig_custody_store_decode(ig_custody_held *h, size_t cap_count, size_t *count, const uint8_t *buf, size_t len,
                            const uint8_t id_sk[IG_SK_BYTES], const char *id, ig_error *err) IG_NODISCARD;

#endif
