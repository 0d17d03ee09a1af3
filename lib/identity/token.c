/*
 * token.c: minting, parsing and verifying connection tokens.
 *
 * Why this exists: the token is attacker-controlled input that arrives
 * before any authentication, so its parser is the broker's first line of
 * defence. It accepts exactly one encoding of each token: the exact total
 * length, in-range field lengths, valid ids, version 1, no trailing bytes,
 * canonical base64url. Everything else is refused before any crypto runs.
 * The layout is documented byte for byte in docs/PROTOCOL.md so any Ed25519
 * library can mint tokens. The text form, the head and the signature are
 * shared with the join token (tokenfmt.c).
 */
#include "ig_token.h"

#include "ig_tokenfmt.h"

#include <sodium.h>
#include <string.h>

/* Everything but cluster and id: version, two length bytes, issued_at,
 * expires_at, nonce, sig. */
#define FIXED_BYTES (3 + 8 + 8 + IG_TOKEN_NONCE_BYTES + IG_TOKEN_SIG_BYTES)

int ig_token_mint(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *cluster,
                  const char *id, uint64_t issued_at, uint64_t expires_at,
                  const uint8_t nonce[IG_TOKEN_NONCE_BYTES])
{
	if (!out || !sk || !cluster || !id)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	size_t cluster_len, id_len;
	if (ig_tokenfmt_names(cluster, id, &cluster_len, &id_len) != IG_OK)
		return IG_ERR_INVAL;

	uint8_t bin[IG_TOKEN_BIN_MAX];
	size_t pos = ig_tokenfmt_head_put(bin, IG_TOKEN_VERSION, cluster, cluster_len, id, id_len);
	ig_put_u64(bin + pos, issued_at);
	pos += 8;
	ig_put_u64(bin + pos, expires_at);
	pos += 8;
	if (nonce)
		memcpy(bin + pos, nonce, IG_TOKEN_NONCE_BYTES);
	else
		randombytes_buf(bin + pos, IG_TOKEN_NONCE_BYTES);
	pos += IG_TOKEN_NONCE_BYTES;

	int rc = ig_tokenfmt_sign(bin + pos, IG_TOKEN_DOMAIN, bin, pos, sk);
	if (rc == IG_OK)
		rc = ig_tokenfmt_text_encode(out, cap, IG_TOKEN_PREFIX, bin, pos + IG_TOKEN_SIG_BYTES);
	/* The text is a bearer credential until it expires. */
	sodium_memzero(bin, sizeof bin);
	return rc;
}

/* Decodes the text form into bin and checks the layout. Returns the binary
 * length, or IG_ERR_INVAL. */
static int decode(const char *text, size_t len, uint8_t bin[IG_TOKEN_BIN_MAX], ig_token_claims *c)
{
	int bin_len = ig_tokenfmt_text_decode(text, len, IG_TOKEN_PREFIX, IG_TOKEN_TEXT_MAX, bin, IG_TOKEN_BIN_MAX);
	if (bin_len < 0)
		return IG_ERR_INVAL;
	int pos = ig_tokenfmt_head_get(bin, (size_t)bin_len, IG_TOKEN_VERSION, FIXED_BYTES, c->cluster, c->id);
	if (pos < 0)
		return IG_ERR_INVAL;
	c->version = IG_TOKEN_VERSION;
	c->issued_at = ig_get_u64(bin + pos);
	pos += 8;
	c->expires_at = ig_get_u64(bin + pos);
	pos += 8;
	memcpy(c->nonce, bin + pos, IG_TOKEN_NONCE_BYTES);
	return bin_len;
}

int ig_token_parse(const char *text, size_t len, ig_token_claims *claims)
{
	if (!claims)
		return IG_ERR_INVAL;
	uint8_t bin[IG_TOKEN_BIN_MAX];
	int n = decode(text, len, bin, claims);
	sodium_memzero(bin, sizeof bin);
	if (n < 0) {
		memset(claims, 0, sizeof *claims);
		return IG_ERR_INVAL;
	}
	return IG_OK;
}

int ig_token_verify(const char *text, size_t len, const uint8_t pk[IG_PK_BYTES], ig_token_claims *claims)
{
	if (!pk || !claims)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t bin[IG_TOKEN_BIN_MAX];
	int n = decode(text, len, bin, claims);
	if (n < 0) {
		sodium_memzero(bin, sizeof bin);
		memset(claims, 0, sizeof *claims);
		return IG_ERR_INVAL;
	}
	size_t payload_len = (size_t)n - IG_TOKEN_SIG_BYTES;
	int rc = ig_tokenfmt_verify(bin + payload_len, IG_TOKEN_DOMAIN, bin, payload_len, pk);
	sodium_memzero(bin, sizeof bin);
	return rc;
}

int ig_token_decode(ig_token_decoded *out, const char *text, size_t len)
{
	if (!out)
		return IG_ERR_INVAL;
	int n = decode(text, len, out->bin, &out->claims);
	if (n < 0) {
		sodium_memzero(out, sizeof *out);
		return IG_ERR_INVAL;
	}
	out->len = (size_t)n;
	return IG_OK;
}

int ig_token_verify_decoded(const ig_token_decoded *t, const uint8_t pk[IG_PK_BYTES])
{
	if (!t || !pk || t->len <= IG_TOKEN_SIG_BYTES || t->len > IG_TOKEN_BIN_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	size_t payload_len = t->len - IG_TOKEN_SIG_BYTES;
	return ig_tokenfmt_verify(t->bin + payload_len, IG_TOKEN_DOMAIN, t->bin, payload_len, pk);
}
