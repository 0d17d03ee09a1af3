/*
 * nonce_share.c: encodes and decodes the batch of single-use token nonces
 * brokers send each other (ig_nonce_share.h).
 *
 * Why this exists: the plugin's glue (broker-plugin/plugin_nonces.c) must
 * read what arrives over a bridge without trusting it; keeping the layout
 * here, with no broker, lets the strict parse be tested on its own. The
 * parse accepts exactly one length per count, so a truncated, padded or
 * oversized message is refused as a whole rather than half-applied.
 */
#include "ig_nonce_share.h"

#include <string.h>

size_t ig_nonce_share_size(size_t count)
{
	return IG_NONCE_SHARE_HEADER_BYTES + count * IG_NONCE_SHARE_ENTRY_BYTES;
}

int ig_nonce_share_encode(uint8_t *out, size_t cap, size_t *out_len, const ig_nonce_share_entry *entries,
                          size_t count)
{
	*out_len = 0;
	if (count == 0 || count > IG_NONCE_SHARE_MAX || !entries || !out)
		return IG_ERR_INVAL;
	size_t need = ig_nonce_share_size(count);
	if (cap < need)
		return IG_ERR_RANGE;
	out[0] = IG_NONCE_SHARE_VERSION;
	out[1] = (uint8_t)(count >> 8);
	out[2] = (uint8_t)count;
	uint8_t *p = out + IG_NONCE_SHARE_HEADER_BYTES;
	for (size_t i = 0; i < count; i++) {
		memcpy(p, entries[i].nonce, IG_NONCES_NONCE_BYTES);
		p += IG_NONCES_NONCE_BYTES;
		for (int b = 7; b >= 0; b--)
			*p++ = (uint8_t)(entries[i].expires_at >> (8 * b));
	}
	*out_len = need;
	return IG_OK;
}

int ig_nonce_share_decode(ig_nonce_share_entry *out, size_t cap, size_t *count, const uint8_t *msg, size_t len)
{
	*count = 0;
	if (!msg || len < IG_NONCE_SHARE_HEADER_BYTES || len > IG_NONCE_SHARE_MSG_MAX ||
	    msg[0] != IG_NONCE_SHARE_VERSION)
		return IG_ERR_INVAL;
	size_t n = ((size_t)msg[1] << 8) | msg[2];
	if (n == 0 || n > IG_NONCE_SHARE_MAX || len != ig_nonce_share_size(n))
		return IG_ERR_INVAL;
	if (!out || cap < n)
		return IG_ERR_RANGE;
	const uint8_t *p = msg + IG_NONCE_SHARE_HEADER_BYTES;
	for (size_t i = 0; i < n; i++) {
		memcpy(out[i].nonce, p, IG_NONCES_NONCE_BYTES);
		p += IG_NONCES_NONCE_BYTES;
		uint64_t v = 0;
		for (int b = 0; b < 8; b++)
			v = (v << 8) | *p++;
		out[i].expires_at = v;
	}
	*count = n;
	return IG_OK;
}
