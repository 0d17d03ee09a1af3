/*
 * tokenfmt.c: the text form, leading fields and signature shared by the
 * connection token (token.c) and the join token (join.c).
 *
 * Why this exists: both parsers are the broker's first line of defence and
 * must accept exactly one encoding of each token. Doing the strict parts once
 * keeps the two tokens equally strict.
 */
#include "ig_tokenfmt.h"

#include <sodium.h>
#include <string.h>

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

int ig_tokenfmt_text_encode(char *out, size_t cap, const char *prefix, const uint8_t *bin, size_t len)
{
	size_t prefix_len = strlen(prefix);
	size_t b64_cap = sodium_base64_ENCODED_LEN(len, B64_VARIANT); /* includes the NUL */
	if (cap < prefix_len + b64_cap)
		return IG_ERR_RANGE;
	memcpy(out, prefix, prefix_len);
	sodium_bin2base64(out + prefix_len, b64_cap, bin, len, B64_VARIANT);
	return (int)(prefix_len + b64_cap - 1);
}

int ig_tokenfmt_text_decode(const char *text, size_t len, const char *prefix, size_t text_max, uint8_t *bin,
                            size_t bin_cap)
{
	size_t prefix_len = strlen(prefix);
	if (!text || len > text_max || len <= prefix_len)
		return IG_ERR_INVAL;
	if (memcmp(text, prefix, prefix_len) != 0)
		return IG_ERR_INVAL;
	/* libsodium 1.0.18 decodes every byte from 0x80 to 0xff as the value of
	 * '_', so its own checks would let one token have many spellings. Only
	 * the 64 characters of the alphabet are accepted. */
	for (size_t i = prefix_len; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		          ch == '_';
		if (!ok)
			return IG_ERR_INVAL;
	}
	size_t bin_len = 0;
	const char *end = NULL;
	if (sodium_base642bin(bin, bin_cap, text + prefix_len, len - prefix_len, NULL, &bin_len, &end, B64_VARIANT) != 0)
		return IG_ERR_INVAL;
	if (end != text + len)
		return IG_ERR_INVAL;
	return (int)bin_len;
}

int ig_tokenfmt_names(const char *cluster, const char *id, size_t *cluster_len, size_t *id_len)
{
	*cluster_len = strnlen(cluster, IG_CLUSTER_MAX + 1);
	*id_len = strnlen(id, IG_ID_MAX + 1);
	if (!ig_id_valid(cluster, *cluster_len) || !ig_id_valid(id, *id_len))
		return IG_ERR_INVAL;
	return IG_OK;
}

size_t ig_tokenfmt_head_put(uint8_t *out, uint8_t version, const char *cluster, size_t cluster_len, const char *id,
                            size_t id_len)
{
	size_t pos = 0;
	out[pos++] = version;
	out[pos++] = (uint8_t)cluster_len;
	memcpy(out + pos, cluster, cluster_len);
	pos += cluster_len;
	out[pos++] = (uint8_t)id_len;
	memcpy(out + pos, id, id_len);
	return pos + id_len;
}

int ig_tokenfmt_head_get(const uint8_t *bin, size_t len, uint8_t version, size_t fixed_bytes,
                         char cluster[IG_CLUSTER_MAX + 1], char id[IG_ID_MAX + 1])
{
	if (len < fixed_bytes + 2)
		return IG_ERR_INVAL;
	size_t pos = 0;
	if (bin[pos++] != version)
		return IG_ERR_INVAL;
	size_t cluster_len = bin[pos++];
	if (cluster_len < 1 || cluster_len > IG_CLUSTER_MAX)
		return IG_ERR_INVAL;
	if (pos + cluster_len + 2 > len) /* cluster, the id length byte, one id byte */
		return IG_ERR_INVAL;
	const uint8_t *cluster_at = bin + pos;
	pos += cluster_len;
	size_t id_len = bin[pos++];
	if (id_len < 1 || id_len > IG_ID_MAX)
		return IG_ERR_INVAL;
	if (len != fixed_bytes + cluster_len + id_len) /* nothing missing, nothing trailing */
		return IG_ERR_INVAL;
	const uint8_t *id_at = bin + pos;
	pos += id_len;
	if (!ig_id_valid((const char *)cluster_at, cluster_len) || !ig_id_valid((const char *)id_at, id_len))
		return IG_ERR_INVAL;
	memcpy(cluster, cluster_at, cluster_len);
	cluster[cluster_len] = '\0';
	memcpy(id, id_at, id_len);
	id[id_len] = '\0';
	return (int)pos;
}

/* Ed25519 signs the whole message in one piece (Ed25519ph would change every
 * signature), so domain and message are joined in a bounded buffer. */
static size_t signed_message(uint8_t out[IG_TOKENFMT_SIGNED_MAX], const char *domain, const uint8_t *msg,
                             size_t len)
{
	size_t domain_len = strlen(domain) + 1; /* the NUL is the 0x00 separator */
	if (len > IG_TOKENFMT_SIGNED_MAX - domain_len)
		return 0;
	memcpy(out, domain, domain_len);
	memcpy(out + domain_len, msg, len);
	return domain_len + len;
}

int ig_tokenfmt_sign(uint8_t sig[IG_TOKENFMT_SIG_BYTES], const char *domain, const uint8_t *msg, size_t len,
                     const uint8_t sk[IG_SK_BYTES])
{
	uint8_t buf[IG_TOKENFMT_SIGNED_MAX];
	size_t buf_len = signed_message(buf, domain, msg, len);
	if (buf_len == 0)
		return IG_ERR_RANGE;
	int rc = crypto_sign_detached(sig, NULL, buf, buf_len, sk) == 0 ? IG_OK : IG_ERR_CRYPTO;
	sodium_memzero(buf, sizeof buf);
	return rc;
}

int ig_tokenfmt_verify(const uint8_t sig[IG_TOKENFMT_SIG_BYTES], const char *domain, const uint8_t *msg, size_t len,
                       const uint8_t pk[IG_PK_BYTES])
{
	uint8_t buf[IG_TOKENFMT_SIGNED_MAX];
	size_t buf_len = signed_message(buf, domain, msg, len);
	if (buf_len == 0)
		return IG_ERR_CRYPTO;
	int rc = crypto_sign_verify_detached(sig, buf, buf_len, pk) == 0 ? IG_OK : IG_ERR_CRYPTO;
	sodium_memzero(buf, sizeof buf);
	return rc;
}
