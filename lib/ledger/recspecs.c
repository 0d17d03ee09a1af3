/*
 * recspecs.c: the body layout of every ledger record type, as tables.
 *
 * Why this exists: docs/LEDGER.md section 7 specifies each record body; this
 * file is that section in C, in the same order, and nothing else. One
 * codec (recspec.c) reads these tables for every record type, so the core
 * records (record.c) and the bank's (bank.c) follow exactly the same rules,
 * and comparing a body against the document means reading one file.
 */
#include "ig_recspec.h"
#include "ig_bank.h"
#include "ig_record.h"

#include <stddef.h>

/* ---- 7.1-7.7: identities, join codes, keys, attestation ------------------- */

static const ig_field_spec genesis_fields[] = {
	{.tag = IG_TAG_GENESIS_CLUSTER, .kind = IG_FIELD_ID, .name = "cluster", IG_SPEC_AT(ig_genesis, cluster)},
	{.tag = IG_TAG_GENESIS_CH_PK, .kind = IG_FIELD_BYTES, .name = "ch_pubkey", IG_SPEC_AT(ig_genesis, ch_pk)},
	{.tag = IG_TAG_GENESIS_VERSION, .kind = IG_FIELD_VERSION, .name = "version", IG_SPEC_AT(ig_genesis, version)},
};

static const ig_field_spec enroll_fields[] = {
	{.tag = IG_TAG_ENROLL_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_enroll, id)},
	{.tag = IG_TAG_ENROLL_ROLE, .kind = IG_FIELD_ROLE, .name = "role", IG_SPEC_AT(ig_enroll, role)},
	{.tag = IG_TAG_ENROLL_PK, .kind = IG_FIELD_BYTES, .name = "pubkey", IG_SPEC_AT(ig_enroll, pk)},
	{.tag = IG_TAG_ENROLL_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_enroll, by), .min = 1, .max = IG_BY_MAX},
	/* Only enrolments made through a join code carry this tag, so records
	 * written before join codes existed keep their exact bytes. At most
	 * once: a second code would make "which code did this consume"
	 * ambiguous. */
	{.tag = IG_TAG_ENROLL_JOIN_CODE, .kind = IG_FIELD_BYTES, .name = "join_code", IG_SPEC_AT(ig_enroll, join_code),
	 .optional = true, .present_off = offsetof(ig_enroll, has_join_code)},
	/* Optional for the same reason: only an enrolment given a zone
	 * (`iotguard enroll --zone`) carries it; custody spreads its holders
	 * over zones. */
	{.tag = IG_TAG_ENROLL_ZONE, .kind = IG_FIELD_ID, .name = "zone", IG_SPEC_AT(ig_enroll, zone), .optional = true,
	 .present_off = offsetof(ig_enroll, has_zone)},
};

static const ig_field_spec revoke_fields[] = {
	{.tag = IG_TAG_REVOKE_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_revoke, id)},
	{.tag = IG_TAG_REVOKE_REASON, .kind = IG_FIELD_TEXT, .name = "reason", IG_SPEC_AT(ig_revoke, reason), .min = 0,
	 .max = IG_REASON_MAX},
	{.tag = IG_TAG_REVOKE_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_revoke, by), .min = 1, .max = IG_BY_MAX},
};

/* Written once, by `iotguard upgrade`, to move a format-1 ledger to
 * format 2 (docs/LEDGER.md 7.12). */
static const ig_field_spec format_fields[] = {
	{.tag = IG_TAG_FORMAT_VERSION, .kind = IG_FIELD_VERSION, .name = "version", IG_SPEC_AT(ig_format_rec, version)},
	{.tag = IG_TAG_FORMAT_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_format_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

/* The key-service records hold no secrets (the code hash, never the code;
 * the key id, never the key), so every field is shown in JSON. */
static const ig_field_spec join_code_fields[] = {
	{.tag = IG_TAG_JOIN_CODE_ID, .kind = IG_FIELD_BYTES, .name = "code_id", IG_SPEC_AT(ig_join_code_rec, code_id)},
	{.tag = IG_TAG_JOIN_CODE_HASH, .kind = IG_FIELD_BYTES, .name = "code_hash", IG_SPEC_AT(ig_join_code_rec, hash)},
	{.tag = IG_TAG_JOIN_CODE_ROLE, .kind = IG_FIELD_ROLE, .name = "role", IG_SPEC_AT(ig_join_code_rec, role)},
	{.tag = IG_TAG_JOIN_CODE_EXPIRES, .kind = IG_FIELD_U64, .name = "expires_at", IG_SPEC_AT(ig_join_code_rec, expires_at)},
	{.tag = IG_TAG_JOIN_CODE_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_join_code_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

static const ig_field_spec join_used_fields[] = {
	{.tag = IG_TAG_JOIN_USED_CODE_ID, .kind = IG_FIELD_BYTES, .name = "code_id", IG_SPEC_AT(ig_join_used, code_id)},
	{.tag = IG_TAG_JOIN_USED_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_join_used, id)},
};

/* Values 1 and 2 are IG_SUITE_AES256GCM and IG_SUITE_XCHACHA20POLY1305 (ig_suite.h). */
static const char *const suite_names[] = {"none", "aes256gcm", "xchacha20poly1305"};

static const ig_field_spec key_issued_fields[] = {
	{.tag = IG_TAG_KEY_ID, .kind = IG_FIELD_BYTES, .name = "key_id", IG_SPEC_AT(ig_key_issued, key_id)},
	{.tag = IG_TAG_KEY_A, .kind = IG_FIELD_ID, .name = "a", IG_SPEC_AT(ig_key_issued, a)},
	{.tag = IG_TAG_KEY_B, .kind = IG_FIELD_ID, .name = "b", IG_SPEC_AT(ig_key_issued, b)},
	{.tag = IG_TAG_KEY_EXPIRES, .kind = IG_FIELD_U64, .name = "expires_at", IG_SPEC_AT(ig_key_issued, expires_at)},
	{.tag = IG_TAG_KEY_SUITE, .kind = IG_FIELD_U8, .name = "suite", IG_SPEC_AT(ig_key_issued, suite), .min = 1, .max = 2,
	 .why = "must be one byte, 1 (aes256gcm) or 2 (xchacha20poly1305)", .value_names = suite_names},
};

static const char *const allowed_names[] = {"no", "yes", "unlisted"};

static const ig_field_spec attest_fields[] = {
	{.tag = IG_TAG_ATTEST_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_attest, id)},
	{.tag = IG_TAG_ATTEST_MEASUREMENT, .kind = IG_FIELD_BYTES, .name = "measurement", IG_SPEC_AT(ig_attest, measurement)},
	{.tag = IG_TAG_ATTEST_ALLOWED, .kind = IG_FIELD_U8, .name = "allowed", IG_SPEC_AT(ig_attest, allowed), .min = 0, .max = 2,
	 .why = "must be one byte, 0 (no), 1 (yes) or 2 (no list)", .value_names = allowed_names},
};

/* ---- 7.8-7.11: the bank (credit and coins) -------------------------------- */

static const char *const refund_reasons[] = {"expired", "cancelled", NULL};

static const ig_field_spec credit_fields[] = {
	{.tag = IG_TAG_CREDIT_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_credit_rec, id)},
	{.tag = IG_TAG_CREDIT_AMOUNT, .kind = IG_FIELD_U64, .name = "amount", IG_SPEC_AT(ig_credit_rec, amount),
	 .min = 1, .why = "must be greater than 0"},
	{.tag = IG_TAG_CREDIT_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_credit_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

/* Hashes only: the coins themselves never reach the ledger. */
static const ig_field_spec mint_fields[] = {
	{.tag = IG_TAG_MINT_OWNER, .kind = IG_FIELD_ID, .name = "owner", IG_SPEC_AT(ig_mint_rec, owner)},
	{.tag = IG_TAG_MINT_EXPIRES, .kind = IG_FIELD_U64, .name = "expires_at", IG_SPEC_AT(ig_mint_rec, expires_at)},
	{.tag = IG_TAG_MINT_HASHES, .kind = IG_FIELD_HASHES, .name = "coin_hashes", IG_SPEC_AT(ig_mint_rec, hashes),
	 .min = 1, .max = IG_COINS_PER_REQUEST, .count_off = offsetof(ig_mint_rec, count)},
};

static const ig_field_spec redeem_fields[] = {
	{.tag = IG_TAG_REDEEM_COIN_HASH, .kind = IG_FIELD_BYTES, .name = "coin_hash",
	 IG_SPEC_AT(ig_redeem_rec, coin_hash)},
	{.tag = IG_TAG_REDEEM_ANALYST, .kind = IG_FIELD_ID, .name = "analyst", IG_SPEC_AT(ig_redeem_rec, analyst)},
	{.tag = IG_TAG_REDEEM_COLLECTOR, .kind = IG_FIELD_ID, .name = "collector",
	 IG_SPEC_AT(ig_redeem_rec, collector)},
	/* Optional so that records written before it keep their bytes; with it
	 * the coin index knows the redeemer after a restart, and the same
	 * analyst's retry with the same header gets the keys again. */
	{.tag = IG_TAG_REDEEM_HEADER_HASH, .kind = IG_FIELD_BYTES, .name = "header_hash",
	 IG_SPEC_AT(ig_redeem_rec, header_hash), .optional = true, .present_off = offsetof(ig_redeem_rec, has_header_hash)},
};

static const ig_field_spec refund_fields[] = {
	{.tag = IG_TAG_REFUND_COIN_HASH, .kind = IG_FIELD_BYTES, .name = "coin_hash",
	 IG_SPEC_AT(ig_refund_rec, coin_hash)},
	{.tag = IG_TAG_REFUND_COLLECTOR, .kind = IG_FIELD_ID, .name = "collector",
	 IG_SPEC_AT(ig_refund_rec, collector)},
	{.tag = IG_TAG_REFUND_REASON, .kind = IG_FIELD_WORD, .name = "reason", IG_SPEC_AT(ig_refund_rec, reason),
	 .why = "must be \"expired\" or \"cancelled\"", .value_names = refund_reasons},
};

/* ---- 7.13-7.16: custody of the cluster-head key ---------------------------- */

static const char *const custody_reasons[] = {"initial", "timer", "revoked", "offline", "admin", NULL};

/* The points and the holders, never a share: the shares reach their holders
 * only inside boxes (docs/PROTOCOL.md "Custody"). */
static const ig_field_spec custody_epoch_fields[] = {
	{.tag = IG_TAG_CUSTODY_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_custody_epoch_rec, epoch),
	 .min = 1, .why = "must be at least 1"},
	{.tag = IG_TAG_CUSTODY_K, .kind = IG_FIELD_U8, .name = "k", IG_SPEC_AT(ig_custody_epoch_rec, k), .min = 2,
	 .max = IG_CUSTODY_N_MAX, .why = "must be one byte, 2..255"},
	{.tag = IG_TAG_CUSTODY_N, .kind = IG_FIELD_U8, .name = "n", IG_SPEC_AT(ig_custody_epoch_rec, n), .min = 2,
	 .max = IG_CUSTODY_N_MAX, .why = "must be one byte, 2..255"},
	{.tag = IG_TAG_CUSTODY_HOLDERS, .kind = IG_FIELD_IDS, .name = "holders", IG_SPEC_AT(ig_custody_epoch_rec, holders),
	 .min = 2, .max = IG_CUSTODY_N_MAX, .count_off = offsetof(ig_custody_epoch_rec, holder_count)},
	{.tag = IG_TAG_CUSTODY_COMMITMENTS, .kind = IG_FIELD_HASHES, .name = "commitments",
	 IG_SPEC_AT(ig_custody_epoch_rec, commitments), .min = 2, .max = IG_CUSTODY_N_MAX,
	 .count_off = offsetof(ig_custody_epoch_rec, commitment_count), .no_count = true},
	{.tag = IG_TAG_CUSTODY_REASON, .kind = IG_FIELD_WORD, .name = "reason", IG_SPEC_AT(ig_custody_epoch_rec, reason),
	 .why = "must be \"initial\", \"timer\", \"revoked\", \"offline\" or \"admin\"", .value_names = custody_reasons},
	{.tag = IG_TAG_CUSTODY_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_custody_epoch_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

/* n names the holders and k the polynomial's degree + 1: the lists must
 * have exactly that many entries, or a reader could not tell which holder
 * an index means or which commitments a share is checked against. */
static int custody_epoch_check(const void *rec, ig_error *err)
{
	const ig_custody_epoch_rec *c = rec;
	if (c->k > c->n)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_epoch record: k (%u) is larger than n (%u)", c->k, c->n);
	if (c->holder_count != c->n)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_epoch record: %u holders for n = %u", c->holder_count, c->n);
	if (c->commitment_count != c->k)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_epoch record: %u commitments for k = %u",
		                    c->commitment_count, c->k);
	return IG_OK;
}

static const ig_field_spec custody_active_fields[] = {
	{.tag = IG_TAG_CUSTODY_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_custody_active_rec, epoch),
	 .min = 1, .why = "must be at least 1"},
};

static const ig_field_spec custody_bad_share_fields[] = {
	{.tag = IG_TAG_CUSTODY_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_custody_bad_share_rec, epoch),
	 .min = 1, .why = "must be at least 1"},
	{.tag = IG_TAG_CUSTODY_BAD_HOLDER, .kind = IG_FIELD_ID, .name = "holder",
	 IG_SPEC_AT(ig_custody_bad_share_rec, holder)},
	{.tag = IG_TAG_CUSTODY_BAD_REASON, .kind = IG_FIELD_TEXT, .name = "reason",
	 IG_SPEC_AT(ig_custody_bad_share_rec, reason), .min = 0, .max = IG_REASON_MAX},
};

static const ig_field_spec custody_sealed_fields[] = {
	{.tag = IG_TAG_CUSTODY_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_custody_sealed_rec, epoch),
	 .min = 1, .why = "must be at least 1"},
	{.tag = IG_TAG_CUSTODY_SEALED_C0, .kind = IG_FIELD_BYTES, .name = "c0", IG_SPEC_AT(ig_custody_sealed_rec, c0)},
	{.tag = IG_TAG_CUSTODY_SEALED_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_custody_sealed_rec, by),
	 .min = 1, .max = IG_BY_MAX},
};

/* ---- 7.17-7.19: key rings (predistributed pool keys) ---------------------- */

static const char *const kp_reasons[] = {"initial", "policy", "rotate", NULL};

/* The parameters and the public ring seed, never the pool secret or a pool
 * key: those derive from the cluster-head key (docs/PROTOCOL.md "Key rings"). */
static const ig_field_spec kp_epoch_fields[] = {
	{.tag = IG_TAG_KP_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_kp_epoch_rec, epoch), .min = 1,
	 .why = "must be at least 1"},
	{.tag = IG_TAG_KP_POOL, .kind = IG_FIELD_U32, .name = "pool", IG_SPEC_AT(ig_kp_epoch_rec, pool), .min = 2,
	 .max = 1u << 24, .why = "must be a 4-byte integer, 2..16777216"},
	{.tag = IG_TAG_KP_RING, .kind = IG_FIELD_U32, .name = "ring", IG_SPEC_AT(ig_kp_epoch_rec, ring), .min = 1,
	 .max = IG_KP_REC_RING_MAX, .why = "must be a 4-byte integer, 1..1024"},
	{.tag = IG_TAG_KP_Q, .kind = IG_FIELD_U8, .name = "q", IG_SPEC_AT(ig_kp_epoch_rec, q), .min = 1, .max = 16,
	 .why = "must be one byte, 1..16"},
	{.tag = IG_TAG_KP_SEED, .kind = IG_FIELD_BYTES, .name = "seed", IG_SPEC_AT(ig_kp_epoch_rec, seed)},
	{.tag = IG_TAG_KP_REASON, .kind = IG_FIELD_WORD, .name = "reason", IG_SPEC_AT(ig_kp_epoch_rec, reason),
	 .why = "must be \"initial\", \"policy\" or \"rotate\"", .value_names = kp_reasons},
	{.tag = IG_TAG_KP_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_kp_epoch_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

/* A ring larger than the pool cannot be drawn from it, and a pairwise key
 * cannot need more shared ids than a ring holds. */
static int kp_epoch_check(const void *rec, ig_error *err)
{
	const ig_kp_epoch_rec *k = rec;
	if (k->ring > k->pool)
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_epoch record: ring (%u) is larger than pool (%u)", k->ring,
		                    k->pool);
	if (k->q > k->ring)
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_epoch record: q (%u) is larger than ring (%u)", k->q, k->ring);
	return IG_OK;
}

/* The ring hash commits to the ids and their keys; the keys themselves go
 * to the device only inside its box. */
static const ig_field_spec kp_ring_fields[] = {
	{.tag = IG_TAG_KP_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_kp_ring_rec, epoch), .min = 1,
	 .why = "must be at least 1"},
	{.tag = IG_TAG_KP_RING_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_kp_ring_rec, id)},
	{.tag = IG_TAG_KP_RING_HASH, .kind = IG_FIELD_BYTES, .name = "ring_hash", IG_SPEC_AT(ig_kp_ring_rec, ring_hash)},
};

static const ig_field_spec kp_compromised_fields[] = {
	{.tag = IG_TAG_KP_EPOCH, .kind = IG_FIELD_U64, .name = "epoch", IG_SPEC_AT(ig_kp_compromised_rec, epoch),
	 .min = 1, .why = "must be at least 1"},
	{.tag = IG_TAG_KP_COMPROMISED_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_kp_compromised_rec, id)},
	{.tag = IG_TAG_KP_COMPROMISED_IDS, .kind = IG_FIELD_U32S, .name = "ids", IG_SPEC_AT(ig_kp_compromised_rec, ids),
	 .min = 1, .max = IG_KP_REC_RING_MAX, .count_off = offsetof(ig_kp_compromised_rec, id_count)},
};

/* ---- the bodies ----------------------------------------------------------- */

const ig_body_spec ig_recspec_genesis = IG_SPEC_BODY(IG_REC_GENESIS, "genesis", genesis_fields, ig_genesis);
const ig_body_spec ig_recspec_enroll = IG_SPEC_BODY(IG_REC_ENROLL, "enroll", enroll_fields, ig_enroll);
const ig_body_spec ig_recspec_revoke = IG_SPEC_BODY(IG_REC_REVOKE, "revoke", revoke_fields, ig_revoke);
const ig_body_spec ig_recspec_format = IG_SPEC_BODY(IG_REC_FORMAT, "format", format_fields, ig_format_rec);
const ig_body_spec ig_recspec_join_code =
	IG_SPEC_BODY(IG_REC_JOIN_CODE, "join_code", join_code_fields, ig_join_code_rec);
const ig_body_spec ig_recspec_join_used =
	IG_SPEC_BODY(IG_REC_JOIN_USED, "join_used", join_used_fields, ig_join_used);
const ig_body_spec ig_recspec_key_issued =
	IG_SPEC_BODY(IG_REC_KEY_ISSUED, "key_issued", key_issued_fields, ig_key_issued);
const ig_body_spec ig_recspec_attest = IG_SPEC_BODY(IG_REC_ATTEST, "attest", attest_fields, ig_attest);
const ig_body_spec ig_recspec_credit = IG_SPEC_BODY(IG_REC_CREDIT, "credit", credit_fields, ig_credit_rec);
const ig_body_spec ig_recspec_mint = IG_SPEC_BODY(IG_REC_COIN_MINT, "coin_mint", mint_fields, ig_mint_rec);
const ig_body_spec ig_recspec_redeem =
	IG_SPEC_BODY(IG_REC_COIN_REDEEM, "coin_redeem", redeem_fields, ig_redeem_rec);
const ig_body_spec ig_recspec_refund =
	IG_SPEC_BODY(IG_REC_COIN_REFUND, "coin_refund", refund_fields, ig_refund_rec);
const ig_body_spec ig_recspec_custody_epoch = {
	.type = IG_REC_CUSTODY_EPOCH, .what = "custody_epoch", .fields = custody_epoch_fields,
	.nfields = sizeof custody_epoch_fields / sizeof custody_epoch_fields[0], .size = sizeof(ig_custody_epoch_rec),
	.check = custody_epoch_check};
const ig_body_spec ig_recspec_custody_active =
	IG_SPEC_BODY(IG_REC_CUSTODY_ACTIVE, "custody_active", custody_active_fields, ig_custody_active_rec);
const ig_body_spec ig_recspec_custody_bad_share =
	IG_SPEC_BODY(IG_REC_CUSTODY_BAD_SHARE, "custody_bad_share", custody_bad_share_fields, ig_custody_bad_share_rec);
const ig_body_spec ig_recspec_custody_sealed =
	IG_SPEC_BODY(IG_REC_CUSTODY_SEALED, "custody_sealed", custody_sealed_fields, ig_custody_sealed_rec);
const ig_body_spec ig_recspec_kp_epoch = {
	.type = IG_REC_KP_EPOCH, .what = "kp_epoch", .fields = kp_epoch_fields,
	.nfields = sizeof kp_epoch_fields / sizeof kp_epoch_fields[0], .size = sizeof(ig_kp_epoch_rec),
	.check = kp_epoch_check};
const ig_body_spec ig_recspec_kp_ring = IG_SPEC_BODY(IG_REC_KP_RING, "kp_ring", kp_ring_fields, ig_kp_ring_rec);
const ig_body_spec ig_recspec_kp_compromised =
	IG_SPEC_BODY(IG_REC_KP_COMPROMISED, "kp_compromised", kp_compromised_fields, ig_kp_compromised_rec);

/* ig_recspec_check decodes into a buffer of this size on the stack. */
_Static_assert(sizeof(ig_genesis) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_enroll) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_revoke) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_format_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_join_code_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_join_used) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_key_issued) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_attest) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_credit_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_mint_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_redeem_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_refund_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_custody_epoch_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_custody_active_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_custody_bad_share_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_custody_sealed_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_kp_epoch_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_kp_ring_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");
_Static_assert(sizeof(ig_kp_compromised_rec) <= IG_RECSPEC_REC_MAX, "IG_RECSPEC_REC_MAX too small");

static const ig_body_spec *const bodies[] = {
	&ig_recspec_genesis, &ig_recspec_enroll, &ig_recspec_revoke, &ig_recspec_format, &ig_recspec_join_code,
	&ig_recspec_join_used,
	&ig_recspec_key_issued, &ig_recspec_attest, &ig_recspec_credit, &ig_recspec_mint, &ig_recspec_redeem,
	&ig_recspec_refund, &ig_recspec_custody_epoch, &ig_recspec_custody_active, &ig_recspec_custody_bad_share,
	&ig_recspec_custody_sealed, &ig_recspec_kp_epoch, &ig_recspec_kp_ring, &ig_recspec_kp_compromised,
};

const ig_body_spec *ig_recspec_for(uint16_t type)
{
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		if (bodies[i]->type == type)
			return bodies[i];
	return NULL;
}
