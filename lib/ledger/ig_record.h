/*
 * ig_record.h: the ledger's record framing and typed record bodies.
 *
 * Why this exists: the byte layout of a record is the contract between the
 * ledger writer, the verifier, `iotguard show`, and any third-party auditor.
 * Keeping encode/decode in one place (and nowhere else) means the layout in
 * docs/LEDGER.md has exactly one implementation to match.
 *
 * Frame (all integers big-endian):
 *   off  size  field
 *   0    4     magic "IGR1"
 *   4    4     frame_len: total bytes of this frame, header..crc inclusive
 *   8    8     index (0 = genesis, then +1 per record)
 *   16   8     timestamp, Unix milliseconds
 *   24   2     type (IG_REC_*)
 *   26   2     flags (0; readers reject unknown flags)
 *   28   32    prev_hash: hash of record index-1 (all zero for genesis)
 *   60   n     body (n = frame_len - 64), a TLV list
 *   60+n 4     crc32c over bytes [0, 60+n)
 *
 * Record hash = BLAKE2b-256(0x00 || bytes[0, 60+n)), i.e. the RFC 6962 leaf
 * hash of the record with BLAKE2b-256 as H. It chains the log and is the
 * Merkle leaf.
 *
 * Body: a sequence of TLVs, tag u8, len u16, value. Tags are per record type.
 * Readers ignore tags they do not know, so later versions can add fields;
 * required tags must be present exactly once.
 */
#ifndef IG_RECORD_H
#define IG_RECORD_H

#include "ig_common.h"

#define IG_REC_MAGIC "IGR1"
#define IG_REC_HEADER_BYTES 60
#define IG_REC_OVERHEAD 64          /* header + crc */
#define IG_REC_MAX_BODY 65536       /* a frame larger than this is corrupt */
/* Ledger format versions (the genesis record's `version`). 1: the Merkle
 * tree hashes with BLAKE2b over record hashes. 2: the tree is RFC 6962 with
 * SHA-256 over whole frames, as the C2SP tlog specifications hash it, so
 * tiles, proofs and witnesses interoperate; entry bundles carry uint16
 * lengths, so a format-2 frame is at most 65535 bytes. IG_FORMAT_VERSION is
 * the newest this code reads and what `iotguard init` writes. */
#define IG_FORMAT_V1 1
#define IG_FORMAT_V2 2
#define IG_FORMAT_VERSION IG_FORMAT_V2
#define IG_FORMAT_V2_MAX_FRAME 65535

/* Record types. Later issues add types in the ranges noted; a reader that
 * meets a type it does not know still verifies framing, hash and chain. */
enum ig_record_type {
	IG_REC_GENESIS = 1,
	IG_REC_ENROLL = 2,
	IG_REC_REVOKE = 3,
	IG_REC_FORMAT = 4,        /* a format-1 ledger moves to format 2 (iotguard upgrade) */
	/* 16..31: key service */
	IG_REC_JOIN_CODE = 16,    /* a one-time join code was created (hash only) */
	IG_REC_JOIN_USED = 17,    /* a join code was consumed by a device */
	IG_REC_KEY_ISSUED = 18,   /* a session key was issued to a pair (never the key) */
	IG_REC_ATTEST = 19,       /* an agent's measurement was first seen or changed */
	/* 32..47: bank (credit, coins) */
	/* 48..51: custody of the cluster-head key (docs/LEDGER.md 7.13-7.16) */
	IG_REC_CUSTODY_EPOCH = 48,     /* a k-of-n epoch was dealt: holders and commitments, never a share */
	IG_REC_CUSTODY_ACTIVE = 49,    /* every holder of the epoch acknowledged; older epochs are void */
	IG_REC_CUSTODY_BAD_SHARE = 50, /* a holder refused its share (or sent a bad one) */
	IG_REC_CUSTODY_SEALED = 51,    /* ch.key is kept only sealed from now on */
	/* 52..54: key rings, predistributed pool keys (docs/LEDGER.md 7.17-7.19) */
	IG_REC_KP_EPOCH = 52,          /* a key-ring pool epoch starts: its parameters and public ring seed */
	IG_REC_KP_RING = 53,           /* a device's ring was dealt: device, epoch, ring hash (never a key) */
	IG_REC_KP_COMPROMISED = 54,    /* a revoked device's ring ids are compromised in this epoch */
};
const char *ig_record_type_name(uint16_t type);   /* "genesis", ...; "unknown" */

/* A decoded frame. body points into the buffer it was decoded from. */
typedef struct ig_record {
	uint64_t index;
	uint64_t ts_ms;
	uint16_t type;
	uint16_t flags;
	uint8_t prev_hash[IG_HASH_BYTES];
	const uint8_t *body;
	uint32_t body_len;
	uint8_t hash[IG_HASH_BYTES];     /* filled by ig_record_decode / ig_record_encode */
	uint32_t frame_len;
} ig_record;

/* Writes a full frame for rec (index, ts_ms, type, prev_hash, body) into out
 * and fills rec->hash and rec->frame_len. Returns frame length, or a negative
 * IG_ERR_* if cap is too small or the body too large. */
int ig_record_encode(uint8_t *out, size_t cap, ig_record *rec);

/* Frame check results, so the ledger can tell a torn tail from tampering. */
typedef enum {
	IG_FRAME_OK = 0,
	IG_FRAME_SHORT,       /* fewer bytes than the header or frame_len says: torn */
	IG_FRAME_BAD_MAGIC,   /* not a frame start: torn or corrupt */
	IG_FRAME_BAD_LENGTH,  /* frame_len < 64 or > IG_REC_MAX_BODY + 64 */
	IG_FRAME_BAD_CRC,     /* checksum mismatch: torn or corrupt */
	IG_FRAME_BAD_FLAGS,
} ig_frame_status;
const char *ig_record_frame_status_text(ig_frame_status st);

/* Decodes one frame from buf[0..len). On IG_FRAME_OK fills rec (including
 * the computed hash). Does not check the chain; the ledger does. */
ig_frame_status ig_record_decode(const uint8_t *buf, size_t len, ig_record *rec);

/* BLAKE2b-256(0x00 || frame[0..frame_len-4)). */
void ig_record_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *frame, size_t frame_len);

/* ---- TLV bodies ---------------------------------------------------------- */

/* Genesis tags */
#define IG_TAG_GENESIS_CLUSTER 1   /* string */
#define IG_TAG_GENESIS_CH_PK 2     /* 32 bytes */
#define IG_TAG_GENESIS_VERSION 3   /* u16 */
/* Enroll tags */
#define IG_TAG_ENROLL_ID 1         /* string */
#define IG_TAG_ENROLL_ROLE 2       /* u8, ig_role */
#define IG_TAG_ENROLL_PK 3         /* 32 bytes */
#define IG_TAG_ENROLL_BY 4         /* string: admin id, or "offline:<user>", or "join:<code_id hex>" */
#define IG_TAG_ENROLL_JOIN_CODE 5  /* optional, 8 bytes: the join code this enrolment consumed */
#define IG_TAG_ENROLL_ZONE 6       /* optional, id string: the zone the device stands in (custody holders) */
/* Revoke tags */
#define IG_TAG_REVOKE_ID 1
#define IG_TAG_REVOKE_REASON 2     /* string, 0..256 bytes */
#define IG_TAG_REVOKE_BY 3
/* Format tags */
#define IG_TAG_FORMAT_VERSION 1    /* u16: the format from this record on (2) */
#define IG_TAG_FORMAT_BY 2         /* string: who upgraded ("offline:<user>") */

/* Join-code tags */
#define IG_TAG_JOIN_CODE_ID 1      /* 8 bytes */
#define IG_TAG_JOIN_CODE_HASH 2    /* 32 bytes: BLAKE2b-256(code_id || secret) */
#define IG_TAG_JOIN_CODE_ROLE 3    /* u8 */
#define IG_TAG_JOIN_CODE_EXPIRES 4 /* u64, Unix seconds */
#define IG_TAG_JOIN_CODE_BY 5      /* string */
/* Join-used tags */
#define IG_TAG_JOIN_USED_CODE_ID 1 /* 8 bytes */
#define IG_TAG_JOIN_USED_ID 2      /* string: the device that joined */
/* Key-issued tags */
#define IG_TAG_KEY_ID 1            /* 16 bytes */
#define IG_TAG_KEY_A 2             /* string: requester */
#define IG_TAG_KEY_B 3             /* string: peer */
#define IG_TAG_KEY_EXPIRES 4       /* u64, Unix seconds */
#define IG_TAG_KEY_SUITE 5         /* u8, ig_suite */
/* Attest tags */
#define IG_TAG_ATTEST_ID 1         /* string */
#define IG_TAG_ATTEST_MEASUREMENT 2 /* 32 bytes */
#define IG_TAG_ATTEST_ALLOWED 3    /* u8: 1 allowed, 0 not allowed, 2 no list configured */

/* Custody-epoch tags */
#define IG_TAG_CUSTODY_EPOCH 1       /* u64, >= 1 (the same tag in all four custody records) */
#define IG_TAG_CUSTODY_K 2           /* u8, 2..255 */
#define IG_TAG_CUSTODY_N 3           /* u8, 2..255, >= k */
#define IG_TAG_CUSTODY_HOLDERS 4     /* n ids, each as len (u8) | id, in holder index order */
#define IG_TAG_CUSTODY_COMMITMENTS 5 /* k × 32 bytes: C_0 .. C_{k-1}, ristretto255 points */
#define IG_TAG_CUSTODY_REASON 6      /* word: initial, timer, revoked, offline, admin */
#define IG_TAG_CUSTODY_BY 7          /* string */
/* Custody-active tags: IG_TAG_CUSTODY_EPOCH only. */
/* Custody-bad-share tags */
#define IG_TAG_CUSTODY_BAD_HOLDER 2  /* id string */
#define IG_TAG_CUSTODY_BAD_REASON 3  /* string, 0..256 bytes */
/* Custody-sealed tags */
#define IG_TAG_CUSTODY_SEALED_C0 2   /* 32 bytes: S·G, the active epoch's commitment 0 */
#define IG_TAG_CUSTODY_SEALED_BY 3   /* string */

/* Kp-epoch tags */
#define IG_TAG_KP_EPOCH 1            /* u64, >= 1 (the same tag in all three key-ring records) */
#define IG_TAG_KP_POOL 2             /* u32, 2..2^24: P, the pool size */
#define IG_TAG_KP_RING 3             /* u32, 1..1024, <= P: m, the ring size */
#define IG_TAG_KP_Q 4                /* u8, 1..16, <= m: shared ids a pairwise key needs */
#define IG_TAG_KP_SEED 5             /* 32 bytes: the public ring seed of the epoch */
#define IG_TAG_KP_REASON 6           /* word: initial, policy, rotate */
#define IG_TAG_KP_BY 7               /* string: the admin, or the cluster name when automatic */
/* Kp-ring tags (IG_TAG_KP_EPOCH too) */
#define IG_TAG_KP_RING_ID 2          /* id string: the device */
#define IG_TAG_KP_RING_HASH 3        /* 32 bytes: the ring hash (docs/PROTOCOL.md A.2), never a key */
/* Kp-compromised tags (IG_TAG_KP_EPOCH too) */
#define IG_TAG_KP_COMPROMISED_ID 2   /* id string: the revoked device */
#define IG_TAG_KP_COMPROMISED_IDS 3  /* m × u32, strictly ascending: its ring ids */

#define IG_KP_REC_RING_MAX 1024      /* ids per kp_compromised (IG_KP_RING_MAX) */
#define IG_KP_REASON_MAX 7           /* the longest kp_epoch reason word */

#define IG_CUSTODY_N_MAX 255         /* holders (and commitments) per epoch */
#define IG_CUSTODY_REASON_MAX 7      /* the longest custody_epoch reason word */

#define IG_REASON_MAX 256
#define IG_BY_MAX 80

typedef struct ig_genesis {
	char cluster[IG_CLUSTER_MAX + 1];
	uint8_t ch_pk[IG_PK_BYTES];
	uint16_t version;
} ig_genesis;

typedef struct ig_format_rec {
	uint16_t version;
	char by[IG_BY_MAX + 1];
} ig_format_rec;

typedef struct ig_enroll {
	char id[IG_ID_MAX + 1];
	ig_role role;
	uint8_t pk[IG_PK_BYTES];
	char by[IG_BY_MAX + 1];
	bool has_join_code;
	uint8_t join_code[8];
	bool has_zone;
	char zone[IG_ID_MAX + 1];
} ig_enroll;

typedef struct ig_revoke {
	char id[IG_ID_MAX + 1];
	char reason[IG_REASON_MAX + 1];
	char by[IG_BY_MAX + 1];
} ig_revoke;

typedef struct ig_join_code_rec {
	uint8_t code_id[8];
	uint8_t hash[IG_HASH_BYTES];
	ig_role role;
	uint64_t expires_at;
	char by[IG_BY_MAX + 1];
} ig_join_code_rec;

typedef struct ig_join_used {
	uint8_t code_id[8];
	char id[IG_ID_MAX + 1];
} ig_join_used;

typedef struct ig_key_issued {
	uint8_t key_id[16];
	char a[IG_ID_MAX + 1];
	char b[IG_ID_MAX + 1];
	uint64_t expires_at;
	uint8_t suite;
} ig_key_issued;

typedef struct ig_attest {
	char id[IG_ID_MAX + 1];
	uint8_t measurement[IG_HASH_BYTES];
	uint8_t allowed;
} ig_attest;

/* custody_epoch: holders[i-1] is holder i; holder_count == n and
 * commitment_count == k (the codec checks both, and k <= n). */
typedef struct ig_custody_epoch_rec {
	uint64_t epoch;
	uint8_t k, n;
	uint32_t holder_count;
	char holders[IG_CUSTODY_N_MAX][IG_ID_MAX + 1];
	uint32_t commitment_count;
	uint8_t commitments[IG_CUSTODY_N_MAX][IG_HASH_BYTES];
	char reason[IG_CUSTODY_REASON_MAX + 1];
	char by[IG_BY_MAX + 1];
} ig_custody_epoch_rec;

typedef struct ig_custody_active_rec {
	uint64_t epoch;
} ig_custody_active_rec;

typedef struct ig_custody_bad_share_rec {
	uint64_t epoch;
	char holder[IG_ID_MAX + 1];
	char reason[IG_REASON_MAX + 1];
} ig_custody_bad_share_rec;

typedef struct ig_custody_sealed_rec {
	uint64_t epoch;
	uint8_t c0[IG_HASH_BYTES];
	char by[IG_BY_MAX + 1];
} ig_custody_sealed_rec;

/* kp_epoch: the parameters of a key-ring pool epoch (the pool keys derive
 * from the cluster-head key; only the public seed is recorded). */
typedef struct ig_kp_epoch_rec {
	uint64_t epoch;
	uint32_t pool, ring;
	uint8_t q;
	uint8_t seed[32];
	char reason[IG_KP_REASON_MAX + 1];
	char by[IG_BY_MAX + 1];
} ig_kp_epoch_rec;

typedef struct ig_kp_ring_rec {
	uint64_t epoch;
	char id[IG_ID_MAX + 1];
	uint8_t ring_hash[IG_HASH_BYTES];
} ig_kp_ring_rec;

/* kp_compromised: ids[0..id_count) strictly ascending (the codec checks). */
typedef struct ig_kp_compromised_rec {
	uint64_t epoch;
	char id[IG_ID_MAX + 1];
	uint32_t id_count;
	uint32_t ids[IG_KP_REC_RING_MAX];
} ig_kp_compromised_rec;

/* Encoders return the body length, or a negative IG_ERR_* (bad field, cap too
 * small). Decoders return IG_OK or IG_ERR_CORRUPT with a message naming the
 * missing or bad field. */
int ig_record_genesis_encode(uint8_t *out, size_t cap, const ig_genesis *g);
int ig_record_genesis_decode(const uint8_t *body, size_t len, ig_genesis *g, ig_error *err);
int ig_record_enroll_encode(uint8_t *out, size_t cap, const ig_enroll *e);
int ig_record_enroll_decode(const uint8_t *body, size_t len, ig_enroll *e, ig_error *err);
int ig_record_revoke_encode(uint8_t *out, size_t cap, const ig_revoke *r);
int ig_record_revoke_decode(const uint8_t *body, size_t len, ig_revoke *r, ig_error *err);
int ig_record_format_encode(uint8_t *out, size_t cap, const ig_format_rec *f);
int ig_record_format_decode(const uint8_t *body, size_t len, ig_format_rec *f, ig_error *err);
/* ig_rec_: the join-code records, not the secret code itself (ig_join_*). */
int ig_record_join_code_encode(uint8_t *out, size_t cap, const ig_join_code_rec *j);
int ig_record_join_code_decode(const uint8_t *body, size_t len, ig_join_code_rec *j, ig_error *err);
int ig_record_join_used_encode(uint8_t *out, size_t cap, const ig_join_used *j);
int ig_record_join_used_decode(const uint8_t *body, size_t len, ig_join_used *j, ig_error *err);
int ig_record_key_issued_encode(uint8_t *out, size_t cap, const ig_key_issued *k);
int ig_record_key_issued_decode(const uint8_t *body, size_t len, ig_key_issued *k, ig_error *err);
int ig_record_attest_encode(uint8_t *out, size_t cap, const ig_attest *a);
int ig_record_attest_decode(const uint8_t *body, size_t len, ig_attest *a, ig_error *err);
int ig_record_custody_epoch_encode(uint8_t *out, size_t cap, const ig_custody_epoch_rec *c);
int ig_record_custody_epoch_decode(const uint8_t *body, size_t len, ig_custody_epoch_rec *c, ig_error *err);
int ig_record_custody_active_encode(uint8_t *out, size_t cap, const ig_custody_active_rec *c);
int ig_record_custody_active_decode(const uint8_t *body, size_t len, ig_custody_active_rec *c, ig_error *err);
int ig_record_custody_bad_share_encode(uint8_t *out, size_t cap, const ig_custody_bad_share_rec *c);
int ig_record_custody_bad_share_decode(const uint8_t *body, size_t len, ig_custody_bad_share_rec *c,
                                       ig_error *err);
int ig_record_custody_sealed_encode(uint8_t *out, size_t cap, const ig_custody_sealed_rec *c);
int ig_record_custody_sealed_decode(const uint8_t *body, size_t len, ig_custody_sealed_rec *c, ig_error *err);
int ig_record_kp_epoch_encode(uint8_t *out, size_t cap, const ig_kp_epoch_rec *c);
int ig_record_kp_epoch_decode(const uint8_t *body, size_t len, ig_kp_epoch_rec *c, ig_error *err);
int ig_record_kp_ring_encode(uint8_t *out, size_t cap, const ig_kp_ring_rec *c);
int ig_record_kp_ring_decode(const uint8_t *body, size_t len, ig_kp_ring_rec *c, ig_error *err);
int ig_record_kp_compromised_encode(uint8_t *out, size_t cap, const ig_kp_compromised_rec *c);
int ig_record_kp_compromised_decode(const uint8_t *body, size_t len, ig_kp_compromised_rec *c, ig_error *err);

/* Decodes the body of any known record type (unknown types pass), so an
 * auditor can check rule 5 of docs/LEDGER.md section 4: IG_OK, or
 * IG_ERR_CORRUPT naming the bad field. */
int ig_record_body_check(const ig_record *rec, ig_error *err);

/* Generic TLV walking, for later record types and for `show`. Implemented
 * in recspec.c, next to the table-driven body codec that is built on it. */
typedef struct ig_tlv_iter {
	const uint8_t *p, *end;
} ig_tlv_iter;
void ig_record_tlv_iter_init(ig_tlv_iter *it, const uint8_t *body, size_t len);
/* Returns 1 and fills tag/val/vlen for the next TLV, 0 at the end, or
 * IG_ERR_CORRUPT if a TLV runs past the body. */
int ig_record_tlv_next(ig_tlv_iter *it, uint8_t *tag, const uint8_t **val, uint16_t *vlen);
/* Appends one TLV at out[*pos]; IG_ERR_RANGE if it does not fit. */
int ig_record_tlv_put(uint8_t *out, size_t cap, size_t *pos, uint8_t tag, const void *val, size_t vlen);

/* Renders a record as one JSON object (no trailing newline) for `show --json`
 * and for ledger events: {"index","ts","type","hash","prev", ...typed fields}.
 * Never includes secrets (records hold none). Caller frees with free(). */
char *ig_record_to_json(const ig_record *rec);

#endif
