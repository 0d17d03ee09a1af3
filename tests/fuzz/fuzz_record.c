/* tests/fuzz/fuzz_record.c: fuzzes ledger frames and their TLV bodies.
 *
 * Why this exists: the ledger file is read back at every start and by the
 * auditor (`iotguard verify`), and a copied or damaged ledger is untrusted
 * bytes. Invariants: a frame that decodes re-encodes to the same bytes and
 * hash; a body that decodes re-encodes to a body that decodes to the same
 * fields; the body check never crashes whatever the type. */
#include "fuzz_common.h"
#include "ig_bank.h"
#include "ig_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_out[IG_REC_MAX_BODY + IG_REC_OVERHEAD];

/* decode(body) -> encode -> decode must give the same struct. */
#define BODY_ROUNDTRIP(T, dec, enc, body, len)                                  \
	do {                                                                    \
		T a_, b_;                                                       \
		memset(&a_, 0, sizeof a_);                                      \
		memset(&b_, 0, sizeof b_);                                      \
		if (dec((body), (len), &a_, NULL) == 0) {                       \
			int n_ = enc(g_out, sizeof g_out, &a_);                 \
			FUZZ_ASSERT(n_ >= 0);                                   \
			FUZZ_ASSERT(dec(g_out, (size_t)n_, &b_, NULL) == 0);    \
			FUZZ_ASSERT(memcmp(&a_, &b_, sizeof a_) == 0);          \
		}                                                               \
	} while (0)

static void bodies(const uint8_t *body, size_t len)
{
	BODY_ROUNDTRIP(ig_genesis, ig_record_genesis_decode, ig_record_genesis_encode, body, len);
	BODY_ROUNDTRIP(ig_enroll, ig_record_enroll_decode, ig_record_enroll_encode, body, len);
	BODY_ROUNDTRIP(ig_revoke, ig_record_revoke_decode, ig_record_revoke_encode, body, len);
	BODY_ROUNDTRIP(ig_join_code_rec, ig_record_join_code_decode, ig_record_join_code_encode, body, len);
	BODY_ROUNDTRIP(ig_join_used, ig_record_join_used_decode, ig_record_join_used_encode, body, len);
	BODY_ROUNDTRIP(ig_key_issued, ig_record_key_issued_decode, ig_record_key_issued_encode, body, len);
	BODY_ROUNDTRIP(ig_attest, ig_record_attest_decode, ig_record_attest_encode, body, len);
	BODY_ROUNDTRIP(ig_credit_rec, ig_bank_credit_decode, ig_bank_credit_encode, body, len);
	BODY_ROUNDTRIP(ig_mint_rec, ig_bank_mint_decode, ig_bank_mint_encode, body, len);
	BODY_ROUNDTRIP(ig_redeem_rec, ig_bank_redeem_decode, ig_bank_redeem_encode, body, len);
	BODY_ROUNDTRIP(ig_refund_rec, ig_bank_refund_decode, ig_bank_refund_encode, body, len);
	BODY_ROUNDTRIP(ig_custody_epoch_rec, ig_record_custody_epoch_decode, ig_record_custody_epoch_encode, body, len);
	BODY_ROUNDTRIP(ig_custody_active_rec, ig_record_custody_active_decode, ig_record_custody_active_encode, body,
	               len);
	BODY_ROUNDTRIP(ig_custody_bad_share_rec, ig_record_custody_bad_share_decode, ig_record_custody_bad_share_encode,
	               body, len);
	BODY_ROUNDTRIP(ig_custody_sealed_rec, ig_record_custody_sealed_decode, ig_record_custody_sealed_encode, body,
	               len);
	BODY_ROUNDTRIP(ig_kp_epoch_rec, ig_record_kp_epoch_decode, ig_record_kp_epoch_encode, body, len);
	BODY_ROUNDTRIP(ig_kp_ring_rec, ig_record_kp_ring_decode, ig_record_kp_ring_encode, body, len);
	BODY_ROUNDTRIP(ig_kp_compromised_rec, ig_record_kp_compromised_decode, ig_record_kp_compromised_encode, body,
	               len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	if (ig_record_decode(data, size, &rec) == IG_FRAME_OK) {
		FUZZ_ASSERT(rec.frame_len <= size && rec.frame_len >= IG_REC_OVERHEAD);
		FUZZ_ASSERT(rec.body >= data && rec.body + rec.body_len <= data + rec.frame_len);
		ig_record again = rec;
		int n = ig_record_encode(g_out, sizeof g_out, &again);
		FUZZ_ASSERT(n == (int)rec.frame_len);
		FUZZ_ASSERT(memcmp(g_out, data, rec.frame_len) == 0);
		FUZZ_ASSERT(memcmp(again.hash, rec.hash, sizeof rec.hash) == 0);
		ig_error err;
		int rc = ig_record_body_check(&rec, &err);
		FUZZ_ASSERT(rc == 0 || rc == IG_ERR_CORRUPT);
		bodies(rec.body, rec.body_len);
	} else {
		/* Frames are rare under mutation; the TLV decoders get the raw bytes too. */
		bodies(data, size);
	}
	return 0;
}
