/*
 * ig_kp.h: key rings (Eschenauer-Gligor / q-composite key predistribution).
 *
 * Why this exists: devices must keep talking to each other when the cluster
 * head cannot hand out session keys (sealed, refusing, or absent on a plain
 * broker). Each device holds a ring of m keys drawn from a pool of P keys;
 * two devices that share at least q pool ids derive a pairwise key from the
 * shared keys without asking anyone, and a third device that shares ids with
 * both can hand them a path key. This header fixes every derivation and
 * every byte layout of the feature (docs/PROTOCOL.md "Key rings: byte
 * layouts and test vectors"), so the cluster head, the agent, the CLI and
 * the independent Python reference (tests/kp/) compute the same bytes.
 * Big-endian integers everywhere; "HKDF" is ig_hkdf (RFC 5869, SHA-256).
 */
#ifndef IG_KP_H
#define IG_KP_H

#include "ig_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IG_KP_KEY_BYTES 32
#define IG_KP_SEED_BYTES 32
#define IG_KP_POOL_MAX (1u << 24)
#define IG_KP_RING_MAX 1024
#define IG_KP_Q_MAX 16
#define IG_KP_PAIR_MAX_IDS 64
#define IG_KP_NONCE_BYTES 32          /* hello nonces NA, NB */
#define IG_KP_PATH_ID_BYTES 16
#define IG_KP_REQ_ID_BYTES 16         /* path request id R */

typedef struct ig_kp_params {
	uint64_t epoch;                   /* >= 1 */
	uint32_t pool, ring;              /* P, m */
	uint8_t q;
	uint8_t seed[IG_KP_SEED_BYTES];   /* the public ring seed of this epoch */
} ig_kp_params;

/* Ranges of section 0 (epoch >= 1); IG_ERR_INVAL with err naming the bad field and the range. */
int ig_kp_params_check(const ig_kp_params *p, ig_error *err) IG_NODISCARD;

/* pool_secret = HKDF(ikm = ch_seed (the first 32 bytes of the cluster-head Ed25519 secret key),
 *                    info = "iotguard kp pool secret v1" || epoch (8), L = 32) */
void ig_kp_pool_secret(uint8_t out[32], const uint8_t ch_seed[32], uint64_t epoch);
/* seed = HKDF(ikm = pool_secret, info = "iotguard kp ring seed v1", L = 32). Public. */
void ig_kp_ring_seed(uint8_t out[32], const uint8_t pool_secret[32]);
/* pool key i = HKDF(ikm = pool_secret, info = "iotguard kp pool v1" || i (4), L = 32) */
void ig_kp_pool_key(uint8_t out[32], const uint8_t pool_secret[32], uint32_t i);
/* The same keys for ids[0..n), byte for byte, with one HKDF-Extract and one HMAC key schedule for
 * all of them: a ring of m keys costs about two SHA-256 blocks per key instead of eight, which is
 * most of the cost of dealing a ring. */
void ig_kp_pool_keys(uint8_t (*out)[32], const uint8_t pool_secret[32], const uint32_t *ids, size_t n);

/* A device's m ring ids, ascending (section A.1); ids holds `ring` entries. IG_ERR_INVAL on bad
 * pool/ring or id. */
int ig_kp_ring_ids(uint32_t *ids, const uint8_t seed[32], const char *device_id, uint32_t pool, uint32_t ring);
/* ring hash (A.2) over the ids (ascending) and their keys. */
void ig_kp_ring_hash(uint8_t out[32], uint64_t epoch, const char *device_id, const uint32_t *ids,
                     const uint8_t (*keys)[32], uint32_t ring);
/* Sorted intersection of two ascending id lists minus `bad` (ascending, may be NULL/0), at most cap
 * (the lowest). Returns the count. */
size_t ig_kp_shared(uint32_t *out, size_t cap, const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                    const uint32_t *bad, size_t nbad);
/* K_AB (A.3). ids ascending, n in 1..64, keys[i] is pool key ids[i]. Symmetric in (id_a, id_b). */
int ig_kp_pair_key(uint8_t out[32], uint64_t epoch, const char *id_a, const char *id_b, const uint32_t *ids,
                   const uint8_t (*keys)[32], size_t n);
/* Session key and key id from a completed hello (A.4). */
void ig_kp_session(uint8_t key[32], uint8_t key_id[16], const uint8_t static_key[32],
                   const uint8_t na[32], const uint8_t nb[32], const char *initiator, const char *responder);

/* A.4 hello (version 3) on the m2m topics. */
#define IG_KP_HELLO_MAX (11 + 2 + 4 * 64 + 32 + 32 + 32)
typedef struct ig_kp_hello {
	uint8_t kind;                         /* 1 or 2 */
	uint64_t epoch;
	uint8_t source;                       /* 0 direct, 1 path */
	uint16_t n; uint32_t ids[IG_KP_PAIR_MAX_IDS];            /* source 0 */
	uint8_t path_id[16]; char via[IG_ID_MAX + 1];            /* source 1 */
	uint8_t na[32], nb[32];
} ig_kp_hello;
/* Builds the message with its mac under K. Returns its length or IG_ERR_*. */
int ig_kp_hello_build(uint8_t *out, size_t cap, const ig_kp_hello *h, const uint8_t K[32], const char *topic);
/* Parses without checking the mac (to find K). IG_ERR_INVAL when malformed (bad version/kind/source,
 * n = 0 or > 64, ids not strictly ascending, bad via, wrong length). */
int ig_kp_hello_parse(ig_kp_hello *h, const uint8_t *msg, size_t len) IG_NODISCARD;
/* Constant-time mac check. IG_ERR_CRYPTO when it fails. */
int ig_kp_hello_verify(const uint8_t *msg, size_t len, const uint8_t K[32], const char *topic) IG_NODISCARD;

/* A.6 path messages (version 4) on the m2m topics. */
typedef struct ig_kp_path {
	uint8_t kind; uint64_t epoch; uint16_t n; uint32_t ids[IG_KP_PAIR_MAX_IDS];
	char a[IG_ID_MAX + 1];                 /* kind 2: requester; kind 1: unused ("") */
	char b[IG_ID_MAX + 1];                 /* the target */
	uint8_t req_id[16];
	uint8_t path_id[16], box_nonce[24];    /* kind 2 */
} ig_kp_path;
#define IG_KP_PATH_MAX 700
int ig_kp_path_request_build(uint8_t *out, size_t cap, const ig_kp_path *p, const uint8_t K[32], const char *topic);
/* kind 2: fills p->box_nonce randomly if it is all zero; seals path_key. */
int ig_kp_path_key_build(uint8_t *out, size_t cap, ig_kp_path *p, const uint8_t K[32], const char *topic,
                         const uint8_t path_key[32]);
int ig_kp_path_parse(ig_kp_path *p, const uint8_t *msg, size_t len) IG_NODISCARD;
int ig_kp_path_request_verify(const uint8_t *msg, size_t len, const uint8_t K[32], const char *topic) IG_NODISCARD;
int ig_kp_path_key_open(uint8_t path_key[32], const uint8_t *msg, size_t len, const uint8_t K[32],
                        const char *topic) IG_NODISCARD;

/* A.7 the revoked statement (retained, signed, on iotguard/<cluster>/kp/revoked). */
typedef struct ig_kp_revoked {
	char cluster[IG_CLUSTER_MAX + 1];
	ig_kp_params params;
	uint64_t serial;
	uint32_t *ids; size_t n_ids;           /* malloc'd */
	char (*devices)[IG_ID_MAX + 1]; size_t n_devices;   /* malloc'd */
} ig_kp_revoked;
void ig_kp_revoked_free(ig_kp_revoked *r);   /* frees the arrays, zeroes r */
/* Signed bytes (malloc'd into *out). */
int ig_kp_revoked_bytes(uint8_t **out, size_t *len, const ig_kp_revoked *r);
/* The JSON text with sig, malloc'd (caller frees). */
char *ig_kp_revoked_json(const ig_kp_revoked *r, const uint8_t ch_sk[64]);
/* Parses and verifies under ch_pk; checks ascending/distinct ids < pool, valid ids, params.
 * IG_ERR_INVAL malformed (also: a member other than A.7's, a repeated member, a backslash escape or
 * NUL anywhere, hex not lowercase), IG_ERR_CRYPTO bad signature. On failure r holds nothing. */
int ig_kp_revoked_parse(ig_kp_revoked *r, const uint8_t *json, size_t len, const uint8_t ch_pk[32],
                        ig_error *err) IG_NODISCARD;

/* A.8 the key_ring box plaintext (cluster head -> device). */
/* Plaintext bytes; returns length or IG_ERR_*. */
int ig_kp_ring_plain(uint8_t *out, size_t cap, const ig_kp_params *p, const char *device_id,
                     const uint32_t *ids, const uint8_t (*keys)[32]);
/* Parses a plaintext; checks that device_id matches, the params, and that ids == ig_kp_ring_ids(...).
 * ids and keys hold IG_KP_RING_MAX entries (the ring size comes from the input); p->epoch is not
 * checked against anything: the caller compares it with the message's cleartext epoch. */
int ig_kp_ring_plain_parse(ig_kp_params *p, uint32_t *ids, uint8_t (*keys)[32], const uint8_t *in, size_t len,
                           const char *device_id) IG_NODISCARD;

/* A.9 KEYFILE.ring: the device's ring at rest. */
void ig_kp_file_key(uint8_t out[32], const uint8_t seed32[32]);
int ig_kp_file_seal(uint8_t **out, size_t *len, const uint8_t file_key[32], const uint8_t pk[32],
                    const uint8_t *plain, size_t plain_len);
/* *plain is malloc'd; the caller wipes (sodium_memzero) and frees it. */
int ig_kp_file_open(uint8_t **plain, size_t *plain_len, const uint8_t file_key[32], const uint8_t pk[32],
                    const uint8_t *in, size_t len) IG_NODISCARD;

#endif
