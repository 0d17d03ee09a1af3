/*
 * token.c: minting, parsing and verifying connection tokens.
 *
 * Why this exists: the token is attacker-controlled input that arrives
 * before any authentication, so its parser is the broker's first line of
 * defence. It accepts exactly one encoding of each token: the exact total
 * length, in-range field lengths, valid ids, version 1, no trailing bytes,
 * canonical base64url. Everything else is refused before any crypto runs.
 * The layout is documented byte for byte in docs/PROTOCOL.md so any Ed25519
 * library can mint tokens.
 */
#include "ig_token.h"

#include <sodium.h>
#include <string.h>

#define PREFIX_LEN (sizeof IG_TOKEN_PREFIX - 1)
#define DOMAIN_LEN (sizeof IG_TOKEN_DOMAIN) /* includes the 0x00 separator */
#define FIXED_BYTES (3 + 8 + 8 + IG_TOKEN_NONCE_BYTES + IG_TOKEN_SIG_BYTES)
#define PAYLOAD_MAX (IG_TOKEN_BIN_MAX - IG_TOKEN_SIG_BYTES)

/* The signature input: a domain string so a token signature can never be
 * confused with any other signature the same key makes. */
static size_t signed_message(uint8_t *out, const uint8_t *payload, size_t payload_len)
{
	memcpy(out, IG_TOKEN_DOMAIN, DOMAIN_LEN); /* copies the NUL, which is the 0x00 */
	memcpy(out + DOMAIN_LEN, payload, payload_len);
	return DOMAIN_LEN + payload_len;
}

int ig_token_mint(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *cluster,
                  const char *id, uint64_t issued_at, uint64_t expires_at,
                  const uint8_t nonce[IG_TOKEN_NONCE_BYTES])
{
	if (!out || !sk || !cluster || !id)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	size_t cluster_len = strnlen(cluster, IG_CLUSTER_MAX + 1);
	size_t id_len = strnlen(id, IG_ID_MAX + 1);
	if (!ig_id_valid(cluster, cluster_len) || !ig_id_valid(id, id_len))
		return IG_ERR_INVAL;

	uint8_t bin[IG_TOKEN_BIN_MAX];
	size_t pos = 0;
	bin[pos++] = IG_TOKEN_VERSION;
	bin[pos++] = (uint8_t)cluster_len;
	memcpy(bin + pos, cluster, cluster_len);
	pos += cluster_len;
	bin[pos++] = (uint8_t)id_len;
	memcpy(bin + pos, id, id_len);
	pos += id_len;
	ig_put_u64(bin + pos, issued_at);
	pos += 8;
	ig_put_u64(bin + pos, expires_at);
	pos += 8;
	if (nonce)
		memcpy(bin + pos, nonce, IG_TOKEN_NONCE_BYTES);
	else
		randombytes_buf(bin + pos, IG_TOKEN_NONCE_BYTES);
	pos += IG_TOKEN_NONCE_BYTES;

	uint8_t msg[DOMAIN_LEN + PAYLOAD_MAX];
	size_t msg_len = signed_message(msg, bin, pos);
	if (crypto_sign_detached(bin + pos, NULL, msg, msg_len, sk) != 0) {
		sodium_memzero(bin, sizeof bin);
		return IG_ERR_CRYPTO;
	}
	pos += IG_TOKEN_SIG_BYTES;

	int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	size_t b64_cap = sodium_base64_ENCODED_LEN(pos, variant); /* includes the NUL */
	int rc;
	if (cap < PREFIX_LEN + b64_cap) {
		rc = IG_ERR_RANGE;
	} else {
		memcpy(out, IG_TOKEN_PREFIX, PREFIX_LEN);
		sodium_bin2base64(out + PREFIX_LEN, b64_cap, bin, pos, variant);
		rc = (int)(PREFIX_LEN + b64_cap - 1);
	}
	/* The text is a bearer credential until it expires. */
	sodium_memzero(bin, sizeof bin);
	return rc;
}

/* Decodes the text form into bin and checks the layout. Returns the binary
 * length, or IG_ERR_INVAL. */
static int decode(const char *text, size_t len, uint8_t bin[IG_TOKEN_BIN_MAX], ig_token_claims *c)
{
	if (!text || len > IG_TOKEN_TEXT_MAX || len <= PREFIX_LEN)
		return IG_ERR_INVAL;
	if (memcmp(text, IG_TOKEN_PREFIX, PREFIX_LEN) != 0)
		return IG_ERR_INVAL;

	size_t bin_len = 0;
	const char *end = NULL;
	/* libsodium rejects stray characters and non-zero leftover bits, so
	 * every accepted token has exactly one text form. */
	if (sodium_base642bin(bin, IG_TOKEN_BIN_MAX, text + PREFIX_LEN, len - PREFIX_LEN, NULL, &bin_len, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return IG_ERR_INVAL;
	if (end != text + len)
		return IG_ERR_INVAL;
	if (bin_len < FIXED_BYTES + 2)
		return IG_ERR_INVAL;

	size_t pos = 0;
	if (bin[pos++] != IG_TOKEN_VERSION)
		return IG_ERR_INVAL;
	size_t cluster_len = bin[pos++];
	if (cluster_len < 1 || cluster_len > IG_CLUSTER_MAX)
		return IG_ERR_INVAL;
	/* Need cluster, the id length byte and at least one id byte. */
	if (pos + cluster_len + 2 > bin_len)
		return IG_ERR_INVAL;
	const uint8_t *cluster = bin + pos;
	pos += cluster_len;
	size_t id_len = bin[pos++];
	if (id_len < 1 || id_len > IG_ID_MAX)
		return IG_ERR_INVAL;
	/* Exact total length: nothing missing, nothing trailing. */
	if (bin_len != FIXED_BYTES + cluster_len + id_len)
		return IG_ERR_INVAL;
	const uint8_t *id = bin + pos;
	pos += id_len;
	if (!ig_id_valid((const char *)cluster, cluster_len) || !ig_id_valid((const char *)id, id_len))
		return IG_ERR_INVAL;

	c->version = IG_TOKEN_VERSION;
	memcpy(c->cluster, cluster, cluster_len);
	c->cluster[cluster_len] = '\0';
	memcpy(c->id, id, id_len);
	c->id[id_len] = '\0';
	c->issued_at = ig_get_u64(bin + pos);
	pos += 8;
	c->expires_at = ig_get_u64(bin + pos);
	pos += 8;
	memcpy(c->nonce, bin + pos, IG_TOKEN_NONCE_BYTES);
	return (int)bin_len;
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
	uint8_t msg[DOMAIN_LEN + PAYLOAD_MAX];
	size_t msg_len = signed_message(msg, bin, payload_len);
	int ok = crypto_sign_verify_detached(bin + payload_len, msg, msg_len, pk) == 0;
	sodium_memzero(bin, sizeof bin);
	sodium_memzero(msg, sizeof msg);
	return ok ? IG_OK : IG_ERR_CRYPTO;
}
