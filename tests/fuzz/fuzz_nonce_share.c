/* tests/fuzz/fuzz_nonce_share.c: fuzzes the batch of single-use nonces brokers
 * send each other (docs/PROTOCOL.md "Single-use tokens across brokers").
 *
 * Why this exists: a broker parses these batches from whatever arrives over
 * a bridge, on its event loop. Invariants: the parser either refuses with
 * nothing read, or reads entries that encode back to exactly the input
 * bytes (the layout has one encoding), and never reads past len. */
#include "fuzz_common.h"
#include "ig_nonce_share.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ig_nonce_share_entry e[IG_NONCE_SHARE_MAX];
	static uint8_t back[IG_NONCE_SHARE_MSG_MAX];
	size_t count = 99;
	int rc = ig_nonce_share_decode(e, IG_NONCE_SHARE_MAX, &count, data, size);
	if (rc != 0) {
		FUZZ_ASSERT(count == 0);
		return 0;
	}
	FUZZ_ASSERT(count >= 1 && count <= IG_NONCE_SHARE_MAX);
	FUZZ_ASSERT(ig_nonce_share_size(count) == size);
	size_t n = 0;
	FUZZ_ASSERT(ig_nonce_share_encode(back, sizeof back, &n, e, count) == 0);
	FUZZ_ASSERT(n == size && memcmp(back, data, size) == 0);
	/* A smaller room is refused, never overrun. */
	if (count > 1) {
		size_t c2 = 7;
		FUZZ_ASSERT(ig_nonce_share_decode(e, count - 1, &c2, data, size) != 0 && c2 == 0);
	}
	return 0;
}
