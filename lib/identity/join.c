/*
 * join.c: one-time join codes and the join token.
 *
 * Why this exists: a new device must prove two things in one CONNECT, with
 * no identity enrolled yet: that it holds a code an admin issued (the MAC,
 * keyed with the code's secret) and that it holds the private key it wants
 * enrolled (the Ed25519 signature, which also covers the MAC). The token is
 * attacker-controlled input that arrives before any authentication, so the
 * parser shares token.c's strict text form, head and signature
 * (tokenfmt.c): exactly one accepted encoding, exact length, all layout
 * checks before any crypto. Which codes exist and are unused is the
 * ledger's business: joincodes.c.
 */
#include "ig_join.h"

#include "ig_hkdf.h"
#include "ig_record.h"
#include "ig_registry.h"
#include "ig_tokenfmt.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define CODE_PREFIX_LEN (sizeof IG_JOIN_CODE_PREFIX - 1)
#define DOMAIN_LEN (sizeof IG_JOIN_DOMAIN) /* includes the 0x00 separator */
#define JOIN_KEY_INFO "iotguard join codes v1"
#define SECRET_LABEL "iotguard-join-code-v1"
#define NONCE_BYTES 16
#define MAC_BYTES 32
#define SIG_BYTES 64
#define VERSION 1
/* Everything but cluster and id: version, two length bytes, pk, code_id,
 * issued_at, expires_at, nonce, mac, sig. */
#define FIXED_BYTES (3 + IG_PK_BYTES + IG_JOIN_CODE_ID_BYTES + 8 + 8 + NONCE_BYTES + MAC_BYTES + SIG_BYTES)
#define BIN_MAX (FIXED_BYTES + IG_CLUSTER_MAX + IG_ID_MAX)

/* ---- codes ---------------------------------------------------------------- */

void ig_join_key_derive(ig_join_key *jk, const uint8_t ch_sk[IG_SK_BYTES])
{
	/* libsodium's secret key is seed || pk; only the seed is secret input. */
	if (ig_hkdf(jk->k, sizeof jk->k, NULL, 0, ch_sk, IG_SEED_BYTES, (const uint8_t *)JOIN_KEY_INFO,
	            sizeof JOIN_KEY_INFO - 1) != IG_OK)
		sodium_memzero(jk->k, sizeof jk->k); /* cannot happen: 32 bytes is in range */
}

void ig_join_secret(const ig_join_key *jk, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                    uint8_t secret[IG_JOIN_SECRET_BYTES])
{
	crypto_auth_hmacsha256_state st;
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_init(&st, jk->k, sizeof jk->k);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)SECRET_LABEL, sizeof SECRET_LABEL - 1);
	crypto_auth_hmacsha256_update(&st, code_id, IG_JOIN_CODE_ID_BYTES);
	crypto_auth_hmacsha256_final(&st, mac);
	memcpy(secret, mac, IG_JOIN_SECRET_BYTES);
	sodium_memzero(&st, sizeof st);
	sodium_memzero(mac, sizeof mac);
}

void ig_join_code_hash(uint8_t hash[IG_HASH_BYTES], const uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                       const uint8_t secret[IG_JOIN_SECRET_BYTES])
{
	uint8_t buf[IG_JOIN_CODE_ID_BYTES + IG_JOIN_SECRET_BYTES];
	memcpy(buf, code_id, IG_JOIN_CODE_ID_BYTES);
	memcpy(buf + IG_JOIN_CODE_ID_BYTES, secret, IG_JOIN_SECRET_BYTES);
	crypto_generichash(hash, IG_HASH_BYTES, buf, sizeof buf, NULL, 0);
	sodium_memzero(buf, sizeof buf);
}

void ig_join_code_new(const ig_join_key *jk, uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                      uint8_t hash[IG_HASH_BYTES], char text[IG_JOIN_CODE_TEXT_LEN + 1])
{
	uint8_t raw[IG_JOIN_CODE_ID_BYTES + IG_JOIN_SECRET_BYTES];
	(void)ig_init();
	randombytes_buf(code_id, IG_JOIN_CODE_ID_BYTES);
	memcpy(raw, code_id, IG_JOIN_CODE_ID_BYTES);
	ig_join_secret(jk, code_id, raw + IG_JOIN_CODE_ID_BYTES);
	ig_join_code_hash(hash, code_id, raw + IG_JOIN_CODE_ID_BYTES);
	memcpy(text, IG_JOIN_CODE_PREFIX, CODE_PREFIX_LEN);
	ig_hex_encode(text + CODE_PREFIX_LEN, raw, sizeof raw);
	sodium_memzero(raw, sizeof raw);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int ig_join_code_parse(const char *text, uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                       uint8_t secret[IG_JOIN_SECRET_BYTES])
{
	if (!text || !code_id || !secret)
		return IG_ERR_INVAL;
	size_t len = strnlen(text, 4096);
	if (len >= 4096)
		return IG_ERR_INVAL;
	size_t start = 0, end = len;
	while (start < end && is_space(text[start]))
		start++;
	while (end > start && is_space(text[end - 1]))
		end--;
	if (end - start != IG_JOIN_CODE_TEXT_LEN)
		return IG_ERR_INVAL;
	for (size_t i = 0; i < CODE_PREFIX_LEN; i++)
		if (lower(text[start + i]) != IG_JOIN_CODE_PREFIX[i])
			return IG_ERR_INVAL;
	uint8_t raw[IG_JOIN_CODE_ID_BYTES + IG_JOIN_SECRET_BYTES];
	/* sodium_hex2bin accepts both cases and, with no ignore set, nothing else */
	int rc = ig_hex_decode(raw, sizeof raw, text + start + CODE_PREFIX_LEN, 2 * sizeof raw);
	if (rc == IG_OK) {
		memcpy(code_id, raw, IG_JOIN_CODE_ID_BYTES);
		memcpy(secret, raw + IG_JOIN_CODE_ID_BYTES, IG_JOIN_SECRET_BYTES);
	}
	sodium_memzero(raw, sizeof raw);
	return rc == IG_OK ? IG_OK : IG_ERR_INVAL;
}

/* ---- token ---------------------------------------------------------------- */

/* HMAC-SHA256(secret, domain || 0x00 || bytes before the mac). */
static void token_mac(uint8_t mac[MAC_BYTES], const uint8_t secret[IG_JOIN_SECRET_BYTES], const uint8_t *bin,
                      size_t len)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, secret, IG_JOIN_SECRET_BYTES);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)IG_JOIN_DOMAIN, DOMAIN_LEN);
	crypto_auth_hmacsha256_update(&st, bin, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof st);
}

int ig_join_token_mint(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *cluster, const char *id,
                       const char *code_text, uint64_t issued_at, uint64_t expires_at, const uint8_t nonce[16])
{
	if (!out || !sk || !cluster || !id || !code_text)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	size_t cluster_len, id_len;
	if (ig_tokenfmt_names(cluster, id, &cluster_len, &id_len) != IG_OK)
		return IG_ERR_INVAL;
	if (expires_at <= issued_at || expires_at - issued_at > IG_JOIN_MAX_TTL)
		return IG_ERR_RANGE;

	uint8_t code_id[IG_JOIN_CODE_ID_BYTES], secret[IG_JOIN_SECRET_BYTES];
	if (ig_join_code_parse(code_text, code_id, secret) != IG_OK)
		return IG_ERR_INVAL;

	uint8_t bin[BIN_MAX];
	size_t pos = ig_tokenfmt_head_put(bin, VERSION, cluster, cluster_len, id, id_len);
	crypto_sign_ed25519_sk_to_pk(bin + pos, sk);
	pos += IG_PK_BYTES;
	memcpy(bin + pos, code_id, IG_JOIN_CODE_ID_BYTES);
	pos += IG_JOIN_CODE_ID_BYTES;
	ig_put_u64(bin + pos, issued_at);
	pos += 8;
	ig_put_u64(bin + pos, expires_at);
	pos += 8;
	if (nonce)
		memcpy(bin + pos, nonce, NONCE_BYTES);
	else
		randombytes_buf(bin + pos, NONCE_BYTES);
	pos += NONCE_BYTES;
	token_mac(bin + pos, secret, bin, pos);
	pos += MAC_BYTES;
	sodium_memzero(secret, sizeof secret);

	int rc = ig_tokenfmt_sign(bin + pos, IG_JOIN_DOMAIN, bin, pos, sk);
	if (rc == IG_OK)
		rc = ig_tokenfmt_text_encode(out, cap, IG_JOIN_TOKEN_PREFIX, bin, pos + SIG_BYTES);
	/* The text is a credential until the code is used or it expires. */
	sodium_memzero(bin, sizeof bin);
	return rc;
}

/* Decodes the text form into bin and checks the layout. Returns the binary
 * length, or IG_ERR_INVAL. */
static int decode(const char *text, size_t len, uint8_t bin[BIN_MAX], ig_join_claims *c)
{
	int bin_len = ig_tokenfmt_text_decode(text, len, IG_JOIN_TOKEN_PREFIX, IG_JOIN_TOKEN_TEXT_MAX, bin, BIN_MAX);
	if (bin_len < 0)
		return IG_ERR_INVAL;
	memset(c, 0, sizeof *c);
	int at = ig_tokenfmt_head_get(bin, (size_t)bin_len, VERSION, FIXED_BYTES, c->cluster, c->id);
	if (at < 0)
		return IG_ERR_INVAL;
	size_t pos = (size_t)at;
	memcpy(c->pk, bin + pos, IG_PK_BYTES);
	pos += IG_PK_BYTES;
	memcpy(c->code_id, bin + pos, IG_JOIN_CODE_ID_BYTES);
	pos += IG_JOIN_CODE_ID_BYTES;
	c->issued_at = ig_get_u64(bin + pos);
	pos += 8;
	c->expires_at = ig_get_u64(bin + pos);
	pos += 8;
	memcpy(c->nonce, bin + pos, NONCE_BYTES);
	return bin_len;
}

int ig_join_token_parse(const char *text, size_t len, ig_join_claims *c)
{
	if (!c)
		return IG_ERR_INVAL;
	uint8_t bin[BIN_MAX];
	int n = decode(text, len, bin, c);
	sodium_memzero(bin, sizeof bin);
	if (n < 0) {
		memset(c, 0, sizeof *c);
		return IG_ERR_INVAL;
	}
	return IG_OK;
}

int ig_join_token_verify(const char *text, size_t len, const uint8_t secret[IG_JOIN_SECRET_BYTES],
                         ig_join_claims *c)
{
	if (!secret || !c)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t bin[BIN_MAX];
	int n = decode(text, len, bin, c);
	if (n < 0) {
		sodium_memzero(bin, sizeof bin);
		memset(c, 0, sizeof *c);
		return IG_ERR_INVAL;
	}
	size_t sig_at = (size_t)n - SIG_BYTES, mac_at = sig_at - MAC_BYTES;

	uint8_t mac[MAC_BYTES];
	token_mac(mac, secret, bin, mac_at);
	bool ok = sodium_memcmp(mac, bin + mac_at, MAC_BYTES) == 0;
	sodium_memzero(mac, sizeof mac);
	if (ok)
		ok = ig_tokenfmt_verify(bin + sig_at, IG_JOIN_DOMAIN, bin, sig_at, c->pk) == IG_OK;
	sodium_memzero(bin, sizeof bin);
	if (!ok) {
		memset(c, 0, sizeof *c);
		return IG_ERR_CRYPTO;
	}
	return IG_OK;
}

/* ---- admission -------------------------------------------------------------- */

bool ig_join_id_claimable(const ig_registry *reg, const char *id, size_t id_len)
{
	if (!reg || !id || !ig_id_valid(id, id_len))
		return false;
	/* A revoked id stays in the registry; a code must not inherit anything
	 * an earlier key of that id held, so any entry at all refuses. */
	return ig_registry_find(reg, id, id_len) == NULL;
}
