/* tests/fuzz/fuzz_custody_vectors.h: the custody test vectors of
 * docs/PROTOCOL.md ("Custody test vectors", computed by
 * tests/custody/vectors.py), for the fuzz_custody_* targets.
 *
 * Why this exists: a fuzzer that opens boxes and files under random keys
 * never gets past the MAC. With the documented keys the seed corpus (made by
 * mkcorpus.py from the same section) holds inputs that really open, so the
 * fuzzer explores the parsers behind the AEAD; and the harnesses can wrap
 * fuzzed plaintexts in valid boxes under exactly these keys. Each target
 * checks at start that the documented file or box still opens, so a format
 * change that left these values behind fails loudly instead of fuzzing only
 * the MAC check. The values are copied from the docs, not computed by the
 * code under test. */
#ifndef IG_FUZZ_CUSTODY_VECTORS_H
#define IG_FUZZ_CUSTODY_VECTORS_H

#include "fuzz_common.h"
#include "ig_common.h"

#define V_COEFF0 "dce2b04eadf69a3c24fe2c9e730a2b31635e80146bdb85e2e827b1c9df41910d"
#define V_SHARE1 "f0bddc4178943f1374f94c2c6a827fb907d23ebf05d31818d6ada1da40d14706"
#define V_SHARE2 "17bdf3807545d4aebbb3336d87fde58e1c6b346a58300ca1f2d60b08b34d660e"
#define V_SHARE3 "77380a527043345f4ef3f11a0e88a087a129611563f35f7d3ea3ef5136b7ec05"
#define V_SHARE4 "ead70b6f9d5484d4d8f1767bbb156dcd960dc5c0251c14adb9124db8ca0ddb0c"
#define V_SHARE5 "96f30c1ec8b29f5eae75d348d2b28d36fc16606ca0aa28306425243b70513103"
#define V_COMMIT0 "982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604"
#define V_COMMIT1 "5a841964aadc531c3917285241a5135f8a20d69340ad03e5d7803c6cf808056a"
#define V_COMMIT2 "c0214667e45b8158bde223b1c80ddce6ef0e1d30100241ccad93f94c1a30b200"
#define V_COMMIT_HASH "af31dfb85981aa2a8ddc812760f5eb90de73ec8ea5efce371dbc13707832a386"
#define V_SEAL_KEY "029edde427dc4ae948a7920c6da8e02ddd610487b4ef3951d6af7726b3f18566"
#define V_CH_SEED "5594172078da2e35b25d51127c08982ed76c2698f023699c43227602ff3fa648"
#define V_CH_PK "bf383fcea08f7b6dd19f95a8e5d1d5a4db8df764251abe633775569a0ae85a08"
#define V_SEAL_NONCE "e2b5344f2cec7d993995a148f9a4a6382497a9ba03bcc244"
#define V_HOLDER2_SEED "4c6fd1616ec9936a8f95d13da9c77c0392aacb97ea027d65d60161d3f0f64af4"
#define V_HOLDER2_PK "df1d0b547e6ba3fc1858799ab6e0a24ce3cc4c8ffcba7c172843fb3c3f24e76e"
#define V_DEAL_BOX_KEY "67b85f3c738a1b7a37350cfb9c822adf7742b3fa3b712bee65480c9aadd5246b"
#define V_DEAL_NONCE "357640282b851ec2b0e01b091c1afcfe9d79e801dced0ff0"
#define V_DEAL_BOX                                                                                                      \
	"f1d98b38dbf06af6cc179d49f0bbe9dace263e613cd4576a1f2053a3606342d2b208461519e212fa695025ac528daa0523a1b202c97d8a4f" \
	"cbd1f75088cd4f43a2292bd9b91c9e3b5ca02969cda95e829217f27ee4cf0b01a54c66610e9015"
#define V_REQUESTER_XSK "88ca9bd316972e3256ae36949a4642c7bc1e14dcff8c01b1dd6c6e933fc7ff40"
#define V_REQUESTER_XPK "1e7f728b1edee98962473c92a422bb49fcff3441e57ca2c5c0e918a21d0b762e"
#define V_RELEASE_NONCE "5d6a20ad3b9563a82f76f0c8a3b1cca7199ed31902656773"
#define V_RELEASE_BOX                                                                                                   \
	"6b2c92986fca8315fc7e077a570bfe0c6fff6c4e032a30cbf4fece4f904f4af324d072c83c04d4486739a291ac0dbb9688dac8d9e87df579" \
	"d65d003dee630c76a96e4282ede13e838b166dcb82"
#define V_STORE_ID "dev-02"
#define V_STORE_KEY "5102f84059350f15d38938d5c4b5c5a03b90d07481df3cabde3cb24d1b10ce1e"
#define V_STORE_NONCE "74190dd9421ec1fb5737e8bf22750f31304f24fd08c579f0"

/* l, the ristretto255 group order, little-endian: a scalar is canonical
 * when it is below this (checked here without libsodium's reduction, so
 * the oracle does not share the code under test's idea of "canonical"). */
static const uint8_t fuzz_l[32] = {
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

static inline int fuzz_scalar_canonical(const uint8_t s[32])
{
	for (int i = 31; i >= 0; i--) {
		if (s[i] < fuzz_l[i])
			return 1;
		if (s[i] > fuzz_l[i])
			return 0;
	}
	return 0;   /* equal to l */
}

static inline int fuzz_is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* An output a refusal left alone (every byte still fill) or wiped: never
 * a partly written secret. */
static inline int fuzz_untouched_or_zero(const uint8_t *p, size_t n, uint8_t fill)
{
	size_t z = 0, f = 0;
	for (size_t i = 0; i < n; i++) {
		z += p[i] == 0;
		f += p[i] == fill;
	}
	return z == n || f == n;
}

static inline void fuzz_unhex(uint8_t *out, size_t len, const char *hex)
{
	if (ig_hex_decode(out, len, hex, strlen(hex)) != IG_OK)
		abort();
}

static inline uint64_t fuzz_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* An Ed25519 key pair from a documented seed. */
static inline void fuzz_seed_keypair(uint8_t pk[32], uint8_t sk[64], const char *seed_hex)
{
	uint8_t seed[32];
	if (sodium_init() < 0)
		abort();
	fuzz_unhex(seed, sizeof seed, seed_hex);
	crypto_sign_seed_keypair(pk, sk, seed);
}

#endif
