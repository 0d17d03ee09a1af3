/* tests/fuzz/fuzz_keybox.c: fuzzes the session-key box a device opens.
 *
 * Why this exists: the box arrives on the device's inbox topic; the agent
 * must reject anything not sealed by the cluster head before it trusts a
 * byte of the plaintext (key, peer id, request nonce). Input: the 24-byte
 * box nonce, then the box. Invariant: with the docs' box key (PROTOCOL.md,
 * "Session-key box") only the docs' box opens, to the docs' plaintext. */
#include "fuzz_common.h"
#include "ig_keybox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t k_box_key[32] = {
	0x7b, 0x91, 0x59, 0x7e, 0x6a, 0x0d, 0xbe, 0x2a, 0xcd, 0x34, 0xf1, 0x3f, 0x7f, 0xe3, 0x45, 0xf7,
	0x82, 0xc9, 0x3b, 0x04, 0x3f, 0x27, 0x5a, 0x80, 0xe5, 0xf8, 0x10, 0xb6, 0x0f, 0xa6, 0xba, 0x12,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < IG_KEYBOX_NONCE_BYTES)
		return 0;
	ig_box_key bk;
	memcpy(bk.k, k_box_key, sizeof bk.k);
	ig_session_key sk;
	memset(&sk, 0, sizeof sk);
	if (ig_keybox_open(&sk, data + IG_KEYBOX_NONCE_BYTES, size - IG_KEYBOX_NONCE_BYTES, data, &bk) == 0) {
		for (size_t i = 0; i < sizeof sk.key; i++)
			FUZZ_ASSERT(sk.key[i] == i);
		for (size_t i = 0; i < sizeof sk.key_id; i++)
			FUZZ_ASSERT(sk.key_id[i] == 0x40 + i);
		FUZZ_ASSERT(sk.expires_at == 1700003600 && sk.direction == 0);
		FUZZ_ASSERT(strcmp(sk.peer, "b") == 0 && strcmp(sk.request_nonce, "req-1") == 0);
	}
	sodium_memzero(&sk, sizeof sk);
	return 0;
}
