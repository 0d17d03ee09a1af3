/*
 * ig_nonce_share.h: the batch of single-use token nonces one broker sends
 * the others over the bridges (docs/PROTOCOL.md "Several brokers",
 * "Single-use tokens across brokers").
 *
 * Why this exists: each broker keeps its own replay cache
 * (ig_nonces.h), so without sharing a captured single-use token could
 * connect once more on every other broker of a cluster. The brokers send
 * each other the nonces of the tokens they accepted; this is the byte
 * layout, broker-free so it can be tested (and fuzzed) alone. A nonce is
 * not secret: without the token's signature it opens nothing.
 *
 * Layout: version (1 byte, 1), count (2 bytes, big-endian, 1..
 * IG_NONCE_SHARE_MAX), then count entries of the 16-byte nonce and its
 * token's expires_at (8 bytes, big-endian Unix seconds). Nothing may
 * follow the last entry.
 */
#ifndef IG_NONCE_SHARE_H
#define IG_NONCE_SHARE_H

#include "ig_common.h"
#include "ig_nonces.h"

#define IG_NONCE_SHARE_VERSION 1
#define IG_NONCE_SHARE_HEADER_BYTES 3
#define IG_NONCE_SHARE_ENTRY_BYTES (IG_NONCES_NONCE_BYTES + 8)
/* Entries per message at most: 24 KiB and a little, well under any
 * message_size_limit worth setting. */
#define IG_NONCE_SHARE_MAX 1024
#define IG_NONCE_SHARE_MSG_MAX (IG_NONCE_SHARE_HEADER_BYTES + IG_NONCE_SHARE_MAX * IG_NONCE_SHARE_ENTRY_BYTES)

typedef struct ig_nonce_share_entry {
	uint8_t nonce[IG_NONCES_NONCE_BYTES];
	uint64_t expires_at;
} ig_nonce_share_entry;

/* Bytes of a message of count entries. */
size_t ig_nonce_share_size(size_t count);

/* Writes count entries (1..IG_NONCE_SHARE_MAX) to out (cap bytes);
 * *out_len = bytes written. IG_ERR_INVAL for a count out of range,
 * IG_ERR_RANGE when cap is too small (nothing useful written). */
int ig_nonce_share_encode(uint8_t *out, size_t cap, size_t *out_len, const ig_nonce_share_entry *entries,
                          size_t count) IG_NODISCARD;

/* Reads a message: *count entries into out (room for cap entries).
 * IG_ERR_INVAL for anything that is not exactly the layout above (wrong
 * version, count 0 or above IG_NONCE_SHARE_MAX, a length that does not
 * match the count, trailing bytes); IG_ERR_RANGE when cap is too small.
 * On any error *count is 0. */
int ig_nonce_share_decode(ig_nonce_share_entry *out, size_t cap, size_t *count, const uint8_t *msg,
                          size_t len) IG_NODISCARD;

#endif
