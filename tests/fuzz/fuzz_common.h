/* tests/fuzz/fuzz_common.h: the fixed keys every fuzz target verifies with.
 *
 * Why this exists: a verifier fuzzed with a random key per run proves little;
 * with the docs' test-vector seed (0x00..0x1f, docs/PROTOCOL.md) the seed
 * corpus holds inputs that really verify, so the fuzzer explores the paths
 * after a good signature too, and "verify succeeded" can be checked against
 * the one message that key ever signed. Never use this seed for anything else. */
#ifndef IG_FUZZ_COMMON_H
#define IG_FUZZ_COMMON_H

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void fuzz_vector_keypair(uint8_t pk[crypto_sign_PUBLICKEYBYTES], uint8_t sk[crypto_sign_SECRETKEYBYTES])
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)i;
	if (sodium_init() < 0)
		abort();
	crypto_sign_seed_keypair(pk, sk, seed);
}

/* A NUL-terminated copy of the input, for parsers that take C strings.
 * Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#define FUZZ_ASSERT(cond) do { if (!(cond)) { __builtin_trap(); } } while (0)

#endif
