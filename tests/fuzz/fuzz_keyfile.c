/* tests/fuzz/fuzz_keyfile.c: fuzzes the key-file parser on bytes
 * (ig_keyfile_parse, lib/base/keyfile.c; docs/PROTOCOL.md "Key file format").
 *
 * Why this exists: a key file is read from disk by every program, and the
 * agent's --key may point anywhere; the parser must refuse every file that
 * is not exactly the documented line without reading past it or keeping
 * secret bytes around. Invariants: a file that parses is exactly the prefix,
 * 64 lowercase hex characters and at most one newline, and the key pair is
 * the one its seed derives; a file that does not parse leaves both outputs
 * wiped and an error message that names the source. */
#include "fuzz_common.h"
#include "ig_keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX_LEN (sizeof IG_KEYFILE_PREFIX - 1)

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A heap copy of exactly size bytes, so ASan sees any read past it. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	memset(sk, 0xa5, sizeof sk);
	memset(pk, 0xa5, sizeof pk);
	ig_error err;
	memset(&err, 0, sizeof err);
	int rc = ig_keyfile_parse(sk, pk, buf, size, "fuzz.key", &err);
	if (rc == IG_OK) {
		size_t body = size - (size > 0 && buf[size - 1] == '\n');
		FUZZ_ASSERT(body == PREFIX_LEN + 64 && memcmp(buf, IG_KEYFILE_PREFIX, PREFIX_LEN) == 0);
		char hex[65];
		ig_hex_encode(hex, sk, 32);
		FUZZ_ASSERT(memcmp(hex, buf + PREFIX_LEN, 64) == 0);
		uint8_t pk2[IG_PK_BYTES], sk2[IG_SK_BYTES];
		crypto_sign_seed_keypair(pk2, sk2, sk);
		FUZZ_ASSERT(memcmp(pk, pk2, sizeof pk) == 0 && memcmp(sk, sk2, sizeof sk) == 0);
		sodium_memzero(sk2, sizeof sk2);
		sodium_memzero(hex, sizeof hex);
	} else {
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
		FUZZ_ASSERT(all_zero(sk, sizeof sk) && all_zero(pk, sizeof pk));
		FUZZ_ASSERT(strstr(err.msg, "key file fuzz.key") != NULL);
	}
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(buf, size);
	free(buf);
	return 0;
}
