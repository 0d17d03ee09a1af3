/* tests/fuzz/fuzz_custody_boxes.c: fuzzes the deal and release boxes
 * (ig_custody_deal_open, ig_custody_release_open) and the verifiable
 * Shamir checks (ig_vss_verify, ig_vss_combine, ig_vss_check_secret,
 * ig_vss_deal_coeffs); lib/custody/custody.c and vss.c, docs/PROTOCOL.md
 * "Custody: byte layouts and test vectors".
 *
 * Why this exists: a deal box arrives at a holder over MQTT and a release
 * box at the requester, both from whoever controls the broker, and the
 * shares and commitments they carry are numbers a forger chooses; a holder
 * or requester that crashes on them, accepts a field out of range, or
 * rebuilds a wrong secret from a "valid" set loses the key. The input is
 * used as: (1) nonce (24) | box, opened as holder 2 (deal) and as the
 * documented requester (release), under the docs' keys, so the seeds (the
 * documented boxes) really open; (2) the PLAINTEXT of a deal box and of a
 * release box, boxed here under the same keys, so the field checks behind
 * the MAC are fuzzed; an independent oracle says which plaintexts must
 * open (magic, ranges, a canonical non-zero share), and what opens seals
 * again and opens equal; (3) numbers for the VSS functions: fuzzed shares,
 * commitments, indices and counts must never crash or verify wrongly,
 * any set of >= 3 distinct shares of the docs' deal A combines to its
 * secret (and 2 never do), and a deal of fuzzed coefficients verifies
 * share by share, combines back to a_0 from any k of them, and rejects a
 * share moved by one. */
#include "fuzz_custody_vectors.h"
#include "ig_custody.h"
#include "ig_keybox.h"
#include "ig_vss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEAL_PT 79
#define RELEASE_PT 61

static uint8_t ch_pk[32], ch_sk[64], h_pk[32], h_sk[64], h_xsk[32], req_xsk[32], req_xpk[32];
static uint8_t secret[32], shares[5][32], commitments[3][32];
static ig_box_key bk;

static void setup(void)
{
	fuzz_seed_keypair(ch_pk, ch_sk, V_CH_SEED);
	fuzz_seed_keypair(h_pk, h_sk, V_HOLDER2_SEED);
	FUZZ_ASSERT(crypto_sign_ed25519_sk_to_curve25519(h_xsk, h_sk) == 0);
	fuzz_unhex(req_xsk, 32, V_REQUESTER_XSK);
	fuzz_unhex(req_xpk, 32, V_REQUESTER_XPK);
	fuzz_unhex(secret, 32, V_COEFF0);
	const char *sh[5] = {V_SHARE1, V_SHARE2, V_SHARE3, V_SHARE4, V_SHARE5};
	for (int i = 0; i < 5; i++)
		fuzz_unhex(shares[i], 32, sh[i]);
	fuzz_unhex(commitments[0], 32, V_COMMIT0);
	fuzz_unhex(commitments[1], 32, V_COMMIT1);
	fuzz_unhex(commitments[2], 32, V_COMMIT2);
	FUZZ_ASSERT(ig_keybox_key_for_ch(&bk, h_sk, ch_pk) == IG_OK);
	uint8_t want[32];
	fuzz_unhex(want, 32, V_DEAL_BOX_KEY);
	FUZZ_ASSERT(memcmp(bk.k, want, 32) == 0);
	/* The documented boxes open, so the seeds reach the field checks. */
	uint8_t nonce[24], box[IG_CUSTODY_DEAL_BOX_BYTES], rbox[IG_CUSTODY_RELEASE_BOX_BYTES];
	fuzz_unhex(nonce, 24, V_DEAL_NONCE);
	fuzz_unhex(box, sizeof box, V_DEAL_BOX);
	ig_custody_deal d;
	FUZZ_ASSERT(ig_custody_deal_open(&d, box, sizeof box, nonce, &bk) == IG_OK && d.epoch == 7 && d.index == 2);
	fuzz_unhex(nonce, 24, V_RELEASE_NONCE);
	fuzz_unhex(rbox, sizeof rbox, V_RELEASE_BOX);
	ig_custody_release r;
	FUZZ_ASSERT(ig_custody_release_open(&r, rbox, sizeof rbox, nonce, h_pk, req_xsk) == IG_OK && r.index == 2);
	FUZZ_ASSERT(ig_vss_check_secret(secret, commitments[0]) == IG_OK);
}

/* The oracle for a deal box plaintext (docs/PROTOCOL.md "Deal box"). */
static int deal_pt_ok(const uint8_t *p, size_t n)
{
	return n == DEAL_PT && memcmp(p, "IGD1", 4) == 0 && fuzz_be64(p + 4) >= 1 && p[13] >= 2 && p[14] >= p[13] &&
	       p[12] >= 1 && p[12] <= p[14] && fuzz_scalar_canonical(p + 15) && !fuzz_is_zero(p + 15, 32);
}

static int release_pt_ok(const uint8_t *p, size_t n)
{
	return n == RELEASE_PT && memcmp(p, "IGR1", 4) == 0 && fuzz_be64(p + 20) >= 1 && p[28] >= 1 &&
	       fuzz_scalar_canonical(p + 29) && !fuzz_is_zero(p + 29, 32);
}

static void check_deal(const ig_custody_deal *d)
{
	FUZZ_ASSERT(d->epoch >= 1 && d->k >= 2 && d->n >= d->k && d->index >= 1 && d->index <= d->n);
	FUZZ_ASSERT(fuzz_scalar_canonical(d->share) && !fuzz_is_zero(d->share, 32));
	/* What opens, seals again and opens equal. */
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	ig_custody_deal d2;
	FUZZ_ASSERT(ig_custody_deal_seal(box, nonce, d, &bk) == IG_OK);
	FUZZ_ASSERT(ig_custody_deal_open(&d2, box, sizeof box, nonce, &bk) == IG_OK);
	FUZZ_ASSERT(d->epoch == d2.epoch && d->index == d2.index && d->k == d2.k && d->n == d2.n &&
	            memcmp(d->share, d2.share, 32) == 0 && memcmp(d->commitments_hash, d2.commitments_hash, 32) == 0);
}

static void check_release(const ig_custody_release *r)
{
	FUZZ_ASSERT(r->epoch >= 1 && r->index >= 1 && fuzz_scalar_canonical(r->share) && !fuzz_is_zero(r->share, 32));
	uint8_t box[IG_CUSTODY_RELEASE_BOX_BYTES], nonce[24];
	ig_custody_release r2;
	FUZZ_ASSERT(ig_custody_release_seal(box, nonce, r, req_xpk, h_sk) == IG_OK);
	FUZZ_ASSERT(ig_custody_release_open(&r2, box, sizeof box, nonce, h_pk, req_xsk) == IG_OK);
	FUZZ_ASSERT(memcmp(r->request, r2.request, 16) == 0 && r->epoch == r2.epoch && r->index == r2.index &&
	            memcmp(r->share, r2.share, 32) == 0);
	/* Only holder 2 made it: another holder key does not open it. */
	FUZZ_ASSERT(ig_custody_release_open(&r2, box, sizeof box, nonce, ch_pk, req_xsk) == IG_ERR_CRYPTO);
}

/* (1) nonce | box as received. */
static void boxes_as_received(const uint8_t *data, size_t size)
{
	if (size < 24)
		return;
	uint8_t nonce[24];
	memcpy(nonce, data, 24);
	size_t len = size - 24;
	uint8_t *box = malloc(len ? len : 1);
	FUZZ_ASSERT(box);
	memcpy(box, data + 24, len);
	ig_custody_deal d;
	int rc = ig_custody_deal_open(&d, box, len, nonce, &bk);
	if (rc == IG_OK)
		check_deal(&d);
	else
		FUZZ_ASSERT(rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO);
	ig_custody_release r;
	rc = ig_custody_release_open(&r, box, len, nonce, h_pk, req_xsk);
	if (rc == IG_OK)
		check_release(&r);
	else
		FUZZ_ASSERT(rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO);
	free(box);
}

/* (2) The input as the plaintext of valid boxes. */
static void boxes_around(const uint8_t *data, size_t size)
{
	if (size > 256)
		return;
	uint8_t nonce[24] = {1};
	uint8_t *box = malloc(size + crypto_box_MACBYTES);
	FUZZ_ASSERT(box);
	FUZZ_ASSERT(crypto_box_easy_afternm(box, data, size, nonce, bk.k) == 0);
	ig_custody_deal d;
	memset(&d, 0, sizeof d);
	int rc = ig_custody_deal_open(&d, box, size + crypto_box_MACBYTES, nonce, &bk);
	FUZZ_ASSERT((rc == IG_OK) == deal_pt_ok(data, size));
	if (rc == IG_OK) {
		FUZZ_ASSERT(d.epoch == fuzz_be64(data + 4) && d.index == data[12] && d.k == data[13] && d.n == data[14] &&
		            memcmp(d.share, data + 15, 32) == 0 && memcmp(d.commitments_hash, data + 47, 32) == 0);
		check_deal(&d);
	} else {
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
	}
	/* The release box: from holder 2 to the requester. */
	FUZZ_ASSERT(crypto_box_easy(box, data, size, nonce, req_xpk, h_xsk) == 0);
	ig_custody_release r;
	memset(&r, 0, sizeof r);
	rc = ig_custody_release_open(&r, box, size + crypto_box_MACBYTES, nonce, h_pk, req_xsk);
	FUZZ_ASSERT((rc == IG_OK) == release_pt_ok(data, size));
	if (rc == IG_OK) {
		FUZZ_ASSERT(memcmp(r.request, data + 4, 16) == 0 && r.epoch == fuzz_be64(data + 20) && r.index == data[28] &&
		            memcmp(r.share, data + 29, 32) == 0);
		check_release(&r);
	} else {
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
	}
	free(box);
}

/* A canonical scalar from 32 fuzzed bytes (reduced, as a dealer's random
 * coefficient would be). */
static void to_scalar(uint8_t out[32], const uint8_t *in, size_t avail)
{
	uint8_t wide[64] = {0};
	memcpy(wide, in, avail < 32 ? avail : 32);
	crypto_core_ristretto255_scalar_reduce(out, wide);
}

/* (3) The VSS functions on fuzzed numbers. */
static void vss(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	/* Raw: fuzzed share, commitments, index and k (any value, also out of
	 * range), read from a buffer of 255 points so any k in range is safe. */
	static uint8_t C[IG_VSS_MAX][32], sh[IG_VSS_MAX][32];
	static uint8_t idx[IG_VSS_MAX];
	/* k: 0..15 mostly; with bit 0 of data[1], the edge 250..255 or out of
	 * range 256..505 (a large k costs k point multiplications). */
	unsigned k = !(data[1] & 1) ? data[0] % 16u : data[0] >= 250 ? data[0] : 256u + data[0];
	unsigned index = data[1] >> 1;                          /* 0..127 */
	memset(C, 0, sizeof C);
	size_t rest = size - 2;
	memcpy(C, data + 2, rest < sizeof C ? rest : sizeof C);
	uint8_t share[32] = {0};
	if (rest > 32)
		memcpy(share, data + size - 32, 32);
	int rc = ig_vss_verify(share, index, (const uint8_t(*)[32])C, k);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL);
	if (rc == IG_OK)
		FUZZ_ASSERT(k >= 2 && k <= IG_VSS_MAX && index >= 1 && fuzz_scalar_canonical(share));
	if (k < 2 || k > IG_VSS_MAX || index < 1)
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
	/* Against deal A's real commitments: exactly the dealt share verifies. */
	if (index >= 1 && index <= 5) {
		rc = ig_vss_verify(share, index, (const uint8_t(*)[32])commitments, 3);
		FUZZ_ASSERT((rc == IG_OK) == (memcmp(share, shares[index - 1], 32) == 0));
		FUZZ_ASSERT(ig_vss_verify(shares[index - 1], index, (const uint8_t(*)[32])commitments, 3) == IG_OK);
	}

	/* Raw combine: m fuzzed indices and shares. */
	unsigned m = data[0];
	memset(idx, 0, sizeof idx);
	memset(sh, 0, sizeof sh);
	memcpy(idx, data + 2, rest < m ? rest : m);
	if (rest > m)
		memcpy(sh, data + 2 + m, rest - m < sizeof sh ? rest - m : sizeof sh);
	uint8_t S[32];
	rc = ig_vss_combine(S, idx, (const uint8_t(*)[32])sh, m);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO);
	if (rc == IG_OK) {
		FUZZ_ASSERT(m >= 1 && fuzz_scalar_canonical(S));
		int seen[256] = {0};
		for (unsigned i = 0; i < m; i++) {
			FUZZ_ASSERT(idx[i] != 0 && !seen[idx[i]] && fuzz_scalar_canonical(sh[i]));
			seen[idx[i]] = 1;
		}
	}
	if (m == 0)
		FUZZ_ASSERT(rc == IG_ERR_INVAL);

	/* Deal A: the subset and order of its shares chosen by the input. */
	unsigned pick = 0;
	uint8_t a_idx[5];
	uint8_t a_sh[5][32];
	for (size_t i = 2; i < size && pick < 5; i++) {
		unsigned want = data[i] % 5;
		int dup = 0;
		for (unsigned j = 0; j < pick; j++)
			dup |= a_idx[j] == want + 1;
		if (dup)
			continue;
		a_idx[pick] = (uint8_t)(want + 1);
		memcpy(a_sh[pick], shares[want], 32);
		pick++;
	}
	if (pick >= 1) {
		FUZZ_ASSERT(ig_vss_combine(S, a_idx, (const uint8_t(*)[32])a_sh, pick) == IG_OK);
		FUZZ_ASSERT((memcmp(S, secret, 32) == 0) == (pick >= 3));
		FUZZ_ASSERT((ig_vss_check_secret(S, commitments[0]) == IG_OK) == (pick >= 3));
	}

	/* A deal of fuzzed coefficients: small k and n, so each input is quick. */
	unsigned dk = 2 + data[0] % 4, dn = dk + data[1] % 4;   /* 2..5, k..k+3 */
	uint8_t coeffs[5][32], dshares[8][32], dC[5][32];
	for (unsigned j = 0; j < dk; j++)
		to_scalar(coeffs[j], rest > 32 * j ? data + 2 + 32 * j : (const uint8_t *)"", rest > 32 * j ? rest - 32 * j : 0);
	rc = ig_vss_deal_coeffs(dshares, dC, (const uint8_t(*)[32])coeffs, dk, dn);
	int any_zero = 0;
	for (unsigned j = 0; j < dk; j++)
		any_zero |= fuzz_is_zero(coeffs[j], 32);
	FUZZ_ASSERT((rc == IG_OK) == !any_zero);
	if (rc != IG_OK)
		return;
	for (unsigned i = 1; i <= dn; i++)
		FUZZ_ASSERT(ig_vss_verify(dshares[i - 1], i, (const uint8_t(*)[32])dC, dk) == IG_OK);
	/* Moved by one, a share no longer verifies. */
	uint8_t one[32] = {1}, moved[32];
	unsigned which = data[size - 1] % dn;
	crypto_core_ristretto255_scalar_add(moved, dshares[which], one);
	FUZZ_ASSERT(ig_vss_verify(moved, which + 1, (const uint8_t(*)[32])dC, dk) == IG_ERR_CRYPTO);
	/* Any k of them (from a fuzzed start, wrapping) give back a_0. */
	uint8_t sub_idx[5], sub_sh[5][32];
	unsigned start = data[size - 1] % dn;
	for (unsigned j = 0; j < dk; j++) {
		unsigned i = (start + j) % dn;
		sub_idx[j] = (uint8_t)(i + 1);
		memcpy(sub_sh[j], dshares[i], 32);
	}
	FUZZ_ASSERT(ig_vss_combine(S, sub_idx, (const uint8_t(*)[32])sub_sh, dk) == IG_OK);
	FUZZ_ASSERT(memcmp(S, coeffs[0], 32) == 0 && ig_vss_check_secret(S, dC[0]) == IG_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	boxes_as_received(data, size);
	boxes_around(data, size);
	vss(data, size);
	return 0;
}
