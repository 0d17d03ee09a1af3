/*
 * test_custody.c: the custody secret, ch.key.sealed, the deal and release
 * boxes and the holder's KEYFILE.shares (lib/custody/custody.c).
 *
 * Why this exists: these bytes cross disks and networks, and other programs
 * (the agent, `iotguard custody recover`, third-party clients written from
 * docs/PROTOCOL.md) must read them. The vectors below come from
 * tests/custody/vectors.py, an implementation that shares no code with the
 * C, and are in docs/PROTOCOL.md ("Custody: byte layouts and test vectors").
 * C output with random nonces is checked by opening it with plain libsodium
 * and comparing the plaintext with the pinned layout; the pinned boxes and
 * files are opened by the C. Then every flipped byte, wrong key, wrong
 * context and authenticated-but-malformed content is refused.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_custody.h"
#include "ig_hkdf.h"
#include "ig_vss.h"
#include "testutil.h"

/* tests/custody/vectors.py */
#define V_DEAL_A_COEFF0 "dce2b04eadf69a3c24fe2c9e730a2b31635e80146bdb85e2e827b1c9df41910d"
#define V_DEAL_A_SHARE2 "17bdf3807545d4aebbb3336d87fde58e1c6b346a58300ca1f2d60b08b34d660e"
#define V_DEAL_A_COMMITMENT0 "982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604"
#define V_DEAL_A_COMMITMENT1 "5a841964aadc531c3917285241a5135f8a20d69340ad03e5d7803c6cf808056a"
#define V_DEAL_A_COMMITMENT2 "c0214667e45b8158bde223b1c80ddce6ef0e1d30100241ccad93f94c1a30b200"
#define V_DEAL_A_COMMITMENTS_HASH "af31dfb85981aa2a8ddc812760f5eb90de73ec8ea5efce371dbc13707832a386"
#define V_DEAL_B_SHARE2 "dac1610a2a68f0cd92a9d6714de2e28b3b9ba87a9aa550f97380578ac90c080e"
#define V_DEAL_B_COMMITMENT0 "982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604"
#define V_DEAL_B_COMMITMENT1 "9eb8febc6f0ba5a1608579475fd1b1378dadb325da102b307ee19ee7a803fb66"
#define V_SEAL_KEY "029edde427dc4ae948a7920c6da8e02ddd610487b4ef3951d6af7726b3f18566"
#define V_CH_SEED "5594172078da2e35b25d51127c08982ed76c2698f023699c43227602ff3fa648"
#define V_CH_PK "bf383fcea08f7b6dd19f95a8e5d1d5a4db8df764251abe633775569a0ae85a08"
#define V_SEALED_NONCE "e2b5344f2cec7d993995a148f9a4a6382497a9ba03bcc244"
#define V_SEALED_FILE \
	"4947435345414c31982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604e2b5344f2cec7d99" \
	"3995a148f9a4a6382497a9ba03bcc2443cffdbf6dac369676b4947a0c86669eee69d5449b20fb725050f0e6c82c8ed7c" \
	"23b9d05008dd60fe63ed62a9942510d7a7f8a4a6cc862d00cc5379f25fa8991cceb28c539c7ddd77d3e1efd4f92b6bc4" \
	"0b73e1f5b43b0bed2ae455a8521aa580fec1c175e82b340899322c08"
#define V_HOLDER2_SEED "4c6fd1616ec9936a8f95d13da9c77c0392aacb97ea027d65d60161d3f0f64af4"
#define V_HOLDER2_PK "df1d0b547e6ba3fc1858799ab6e0a24ce3cc4c8ffcba7c172843fb3c3f24e76e"
#define V_DEAL_BOX_BOX_KEY "67b85f3c738a1b7a37350cfb9c822adf7742b3fa3b712bee65480c9aadd5246b"
#define V_DEAL_BOX_NONCE "357640282b851ec2b0e01b091c1afcfe9d79e801dced0ff0"
#define V_DEAL_BOX_PLAINTEXT \
	"49474431000000000000000702030517bdf3807545d4aebbb3336d87fde58e1c6b346a58300ca1f2d60b08b34d660eaf" \
	"31dfb85981aa2a8ddc812760f5eb90de73ec8ea5efce371dbc13707832a386"
#define V_DEAL_BOX_BOX \
	"f1d98b38dbf06af6cc179d49f0bbe9dace263e613cd4576a1f2053a3606342d2b208461519e212fa695025ac528daa05" \
	"23a1b202c97d8a4fcbd1f75088cd4f43a2292bd9b91c9e3b5ca02969cda95e829217f27ee4cf0b01a54c66610e9015"
#define V_RELEASE_BOX_REQUESTER_XSK "88ca9bd316972e3256ae36949a4642c7bc1e14dcff8c01b1dd6c6e933fc7ff40"
#define V_RELEASE_BOX_REQUESTER_XPK "1e7f728b1edee98962473c92a422bb49fcff3441e57ca2c5c0e918a21d0b762e"
#define V_RELEASE_BOX_REQUEST "ea69c76d04cef9f93db9ac49c8413ac2"
#define V_RELEASE_BOX_NONCE "5d6a20ad3b9563a82f76f0c8a3b1cca7199ed31902656773"
#define V_RELEASE_BOX_PLAINTEXT \
	"49475231ea69c76d04cef9f93db9ac49c8413ac200000000000000070217bdf3807545d4aebbb3336d87fde58e1c6b34" \
	"6a58300ca1f2d60b08b34d660e"
#define V_RELEASE_BOX_BOX \
	"6b2c92986fca8315fc7e077a570bfe0c6fff6c4e032a30cbf4fece4f904f4af324d072c83c04d4486739a291ac0dbb96" \
	"88dac8d9e87df579d65d003dee630c76a96e4282ede13e838b166dcb82"
#define V_STORE_ID "dev-02"
#define V_STORE_KEY "5102f84059350f15d38938d5c4b5c5a03b90d07481df3cabde3cb24d1b10ce1e"
#define V_STORE_NONCE "74190dd9421ec1fb5737e8bf22750f31304f24fd08c579f0"
#define V_STORE_PLAINTEXT \
	"02bf383fcea08f7b6dd19f95a8e5d1d5a4db8df764251abe633775569a0ae85a0800000000000000070203050117bdf3" \
	"807545d4aebbb3336d87fde58e1c6b346a58300ca1f2d60b08b34d660e982110a0faa00f492137316fe2f01f4ea21972" \
	"cf01adca3a66dfaa42328706045a841964aadc531c3917285241a5135f8a20d69340ad03e5d7803c6cf808056ac02146" \
	"67e45b8158bde223b1c80ddce6ef0e1d30100241ccad93f94c1a30b200bf383fcea08f7b6dd19f95a8e5d1d5a4db8df7" \
	"64251abe633775569a0ae85a08000000000000000802020500dac1610a2a68f0cd92a9d6714de2e28b3b9ba87a9aa550" \
	"f97380578ac90c080e982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa42328706049eb8febc6f0ba5" \
	"a1608579475fd1b1378dadb325da102b307ee19ee7a803fb66"
#define V_STORE_FILE \
	"49474353544f523174190dd9421ec1fb5737e8bf22750f31304f24fd08c579f003e5045748aaaa88f11b8b8153d47634" \
	"fb159b84ea0597bbe882150c6c3185d846c728bd79970918078f5cfcd332a7ac9e6ed5e174226beb274afa3d966700d6" \
	"53c70be842a3650d190a39ee3ece64ebef22983a3df73cf21055c8dacbf65b4294180c5295421e0162583c8e7cdb7ac0" \
	"70e7a9ff22dfaeacaf4b32afb914648ac8a9592037111444ba863f66fd251a311fbca443d0a966c12f27e5e4b6520394" \
	"906f2192225c19d47724210e297959c827e200d6b0732ac0322a9aa9859727c0eb6d59483a36406574d9a40260460dea" \
	"92d063e83361cc0bc46ff2727f9e1324915abfa80cc1902b3d7a17f43b798dc4e909468059635064ff9d99ce16cf915e" \
	"c7e9d5e13aca579f6461c6f3ddd9bf3087241d4bec97d598e2905dfddffcf562f67f0b1853b4c04dff12e184dce53d84" \
	"f07c37b3ee3d3c48115c40028b8527709c6e5b3788a6ff3645"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

static void unhex32(uint8_t out[32], const char *hex)
{
	cr_assert_eq(tu_unhex(out, 32, hex), 32);
}

/* The fixed parties of the vectors. */
typedef struct fixture {
	uint8_t S[32];
	uint8_t ch_pk[32], ch_sk[64];
	uint8_t h_pk[32], h_sk[64];
	uint8_t comms_a[3][32], comms_b[2][32];
	uint8_t share_a2[32], share_b2[32];
} fixture;

static void load(fixture *f)
{
	uint8_t seed[32];
	unhex32(f->S, V_DEAL_A_COEFF0);
	unhex32(seed, V_CH_SEED);
	cr_assert_eq(crypto_sign_seed_keypair(f->ch_pk, f->ch_sk, seed), 0);
	uint8_t want[32];
	unhex32(want, V_CH_PK);
	cr_assert_arr_eq(f->ch_pk, want, 32);
	unhex32(seed, V_HOLDER2_SEED);
	cr_assert_eq(crypto_sign_seed_keypair(f->h_pk, f->h_sk, seed), 0);
	unhex32(want, V_HOLDER2_PK);
	cr_assert_arr_eq(f->h_pk, want, 32);
	unhex32(f->comms_a[0], V_DEAL_A_COMMITMENT0);
	unhex32(f->comms_a[1], V_DEAL_A_COMMITMENT1);
	unhex32(f->comms_a[2], V_DEAL_A_COMMITMENT2);
	unhex32(f->comms_b[0], V_DEAL_B_COMMITMENT0);
	unhex32(f->comms_b[1], V_DEAL_B_COMMITMENT1);
	unhex32(f->share_a2, V_DEAL_A_SHARE2);
	unhex32(f->share_b2, V_DEAL_B_SHARE2);
}

static void keyfile_text(char out[128], const uint8_t sk[64])
{
	char hex[65];
	ig_hex_encode(hex, sk, 32);
	snprintf(out, 128, "iotguard-ed25519-secret-v1 %s\n", hex);
}

/* ------------------------------------------------------------ secret --- */

Test(custody, secret_new_is_a_fresh_canonical_nonzero_scalar, .init = setup)
{
	uint8_t a[32], b[32], c[32];
	cr_assert_eq(ig_custody_secret_new(a, NULL, 0), IG_OK);
	cr_assert_eq(ig_custody_secret_new(b, (const uint8_t *)"pool", 4), IG_OK);
	cr_assert_eq(ig_custody_secret_new(c, (const uint8_t *)"pool", 4), IG_OK);
	cr_assert_arr_neq(a, b, 32);
	cr_assert_arr_neq(b, c, 32, "the OS randomness must make two secrets differ for the same extra");
	uint8_t G[32];
	cr_assert_eq(crypto_scalarmult_ristretto255_base(G, a), 0);
	cr_assert_eq(ig_vss_check_secret(a, G), IG_OK);   /* canonical and non-zero */
	cr_assert_eq(ig_custody_secret_new(a, NULL, 3), IG_ERR_INVAL);
}

Test(custody, pinned_seal_key_and_commitments_hash, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t key[32], want[32];
	ig_custody_seal_key(key, f.S);
	unhex32(want, V_SEAL_KEY);
	cr_assert_arr_eq(key, want, 32);
	/* The formula, through the HKDF the rest of iotguard uses. */
	uint8_t again[32];
	cr_assert_eq(ig_hkdf(again, 32, NULL, 0, f.S, 32, (const uint8_t *)"iotguard custody v1", 19), IG_OK);
	cr_assert_arr_eq(again, want, 32);
	uint8_t h[32];
	ig_custody_commitments_hash(h, 7, (const uint8_t(*)[32])f.comms_a, 3);
	unhex32(want, V_DEAL_A_COMMITMENTS_HASH);
	cr_assert_arr_eq(h, want, 32);
	ig_custody_commitments_hash(h, 8, (const uint8_t(*)[32])f.comms_a, 3);
	cr_assert_arr_neq(h, want, 32, "the epoch is part of the hash");
	ig_custody_commitments_hash(h, 7, (const uint8_t(*)[32])f.comms_a, 2);
	cr_assert_arr_neq(h, want, 32, "k is part of the hash");
}

/* ----------------------------------------------------- ch.key.sealed --- */

Test(custody, pinned_sealed_file_unseals, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t sealed[256], sk[64], C0[32], plain[256];
	size_t len = tu_unhex(sealed, sizeof sealed, V_SEALED_FILE), plain_len = 0;
	char text[128];
	keyfile_text(text, f.ch_sk);
	cr_assert_eq(len, strlen(text) + IG_CUSTODY_SEALED_OVERHEAD);
	ig_error err = {0};
	cr_assert_eq(ig_custody_unseal(sk, f.S, f.ch_pk, sealed, len, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(sk, f.ch_sk, 64);
	cr_assert_eq(ig_custody_unseal_file(plain, sizeof plain, &plain_len, f.S, f.ch_pk, sealed, len, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(plain_len, strlen(text));
	cr_assert_arr_eq(plain, text, plain_len, "recover must give back the ch.key file byte for byte");
	cr_assert_eq(ig_custody_sealed_c0(C0, sealed, len), IG_OK);
	cr_assert_arr_eq(C0, f.comms_a[0], 32);
	cr_assert_eq(ig_custody_sealed_c0(C0, sealed, IG_CUSTODY_SEALED_OVERHEAD - 1), IG_ERR_INVAL);
	sealed[0] ^= 1;
	cr_assert_eq(ig_custody_sealed_c0(C0, sealed, len), IG_ERR_INVAL);
}

/* C's seal with its random nonce, opened with libsodium and the pinned key:
 * the header and AD are exactly as documented. */
Test(custody, seal_layout_matches_the_documented_one, .init = setup)
{
	fixture f;
	load(&f);
	char text[128];
	keyfile_text(text, f.ch_sk);
	size_t tl = strlen(text), len = 0;
	uint8_t out[256], key[32], ad[72], pt[256];
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, (const uint8_t *)text, tl), IG_OK);
	cr_assert_eq(len, tl + IG_CUSTODY_SEALED_OVERHEAD);
	cr_assert_arr_eq(out, "IGCSEAL1", 8);
	cr_assert_arr_eq(out + 8, f.comms_a[0], 32);
	unhex32(key, V_SEAL_KEY);
	memcpy(ad, out, 40);
	memcpy(ad + 40, f.ch_pk, 32);
	unsigned long long pl = 0;
	cr_assert_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pl, NULL, out + 64, len - 64, ad, 72, out + 40, key),
	             0);
	cr_assert_eq(pl, tl);
	cr_assert_arr_eq(pt, text, tl);
	/* Two seals differ (fresh nonce) and both unseal. */
	uint8_t out2[256], sk[64];
	size_t len2 = 0;
	cr_assert_eq(ig_custody_seal(out2, sizeof out2, &len2, f.S, f.ch_pk, (const uint8_t *)text, tl), IG_OK);
	cr_assert_arr_neq(out + 40, out2 + 40, 24);
	cr_assert_eq(ig_custody_unseal(sk, f.S, f.ch_pk, out2, len2, NULL), IG_OK);
	cr_assert_arr_eq(sk, f.ch_sk, 64);
}

Test(custody, unseal_refuses_every_flipped_byte, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t sealed[256], sk[64];
	size_t len = tu_unhex(sealed, sizeof sealed, V_SEALED_FILE);
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit += 3) {
			sealed[i] ^= (uint8_t)(1u << bit);
			ig_error err = {0};
			memset(sk, 0x55, sizeof sk);
			int rc = ig_custody_unseal(sk, f.S, f.ch_pk, sealed, len, &err);
			cr_assert_neq(rc, IG_OK, "flipped bit %d of byte %zu accepted", bit, i);
			cr_assert_neq(err.msg[0], 0, "no message for byte %zu", i);
			cr_assert(tu_all_zero(sk, sizeof sk) || sk[0] == 0x55, "a refused unseal leaked key bytes");
			sealed[i] ^= (uint8_t)(1u << bit);
		}
	/* Truncated and extended files. */
	for (size_t cut = 0; cut < len; cut += 13)
		cr_assert_neq(ig_custody_unseal(sk, f.S, f.ch_pk, sealed, cut, NULL), IG_OK, "length %zu", cut);
	sealed[len] = 0;
	cr_assert_neq(ig_custody_unseal(sk, f.S, f.ch_pk, sealed, len + 1, NULL), IG_OK);
}

Test(custody, unseal_refuses_wrong_secret_or_cluster_head, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t sealed[256], sk[64], other[32];
	size_t len = tu_unhex(sealed, sizeof sealed, V_SEALED_FILE);
	ig_error err = {0};
	cr_assert_eq(ig_custody_secret_new(other, NULL, 0), IG_OK);
	cr_assert_eq(ig_custody_unseal(sk, other, f.ch_pk, sealed, len, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "C0"), "%s", err.msg);
	cr_assert_eq(ig_custody_unseal(sk, f.S, f.h_pk, sealed, len, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "authentication"), "%s", err.msg);
}

/* An attacker who knows S (or a bug) seals some other key for the genesis
 * public key: the AEAD is fine, the key is not the genesis key. */
Test(custody, unseal_refuses_a_key_that_is_not_the_genesis_key, .init = setup)
{
	fixture f;
	load(&f);
	char text[128];
	keyfile_text(text, f.h_sk);   /* the holder's key, not the cluster head's */
	uint8_t out[256], sk[64], plain[256];
	size_t len = 0, pl = 0;
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, (const uint8_t *)text, strlen(text)), IG_OK);
	ig_error err = {0};
	memset(sk, 0x55, sizeof sk);
	cr_assert_eq(ig_custody_unseal(sk, f.S, f.ch_pk, out, len, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "not the genesis key"), "%s", err.msg);
	cr_assert(sk[0] == 0x55 || tu_all_zero(sk, sizeof sk));
	cr_assert_eq(ig_custody_unseal_file(plain, sizeof plain, &pl, f.S, f.ch_pk, out, len, &err), IG_ERR_CRYPTO);
	cr_assert(tu_all_zero(plain, strlen(text)), "refused plaintext must be wiped");
	/* Not a key file at all. */
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, (const uint8_t *)"hello\n", 6), IG_OK);
	cr_assert_eq(ig_custody_unseal(sk, f.S, f.ch_pk, out, len, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "not a key file"), "%s", err.msg);
}

Test(custody, seal_bounds, .init = setup)
{
	fixture f;
	load(&f);
	static uint8_t big[4097], out[4097 + IG_CUSTODY_SEALED_OVERHEAD];
	size_t len = 0;
	memset(big, 'a', sizeof big);
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, big, 4097), IG_ERR_RANGE);
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, big, 4096), IG_OK);
	cr_assert_eq(len, 4096 + IG_CUSTODY_SEALED_OVERHEAD);
	cr_assert_eq(ig_custody_seal(out, 10 + IG_CUSTODY_SEALED_OVERHEAD - 1, &len, f.S, f.ch_pk, big, 10),
	             IG_ERR_RANGE);
	uint8_t zero[32] = {0};
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, zero, f.ch_pk, big, 10), IG_ERR_INVAL);
	uint8_t plain[16];
	size_t pl;
	cr_assert_eq(ig_custody_seal(out, sizeof out, &len, f.S, f.ch_pk, big, 100), IG_OK);
	cr_assert_eq(ig_custody_unseal_file(plain, sizeof plain, &pl, f.S, f.ch_pk, out, len, NULL), IG_ERR_RANGE);
}

/* ---------------------------------------------------------- deal box --- */

static ig_custody_deal pinned_deal(const fixture *f)
{
	ig_custody_deal d;
	memset(&d, 0, sizeof d);
	d.epoch = 7;
	d.index = 2;
	d.k = 3;
	d.n = 5;
	memcpy(d.share, f->share_a2, 32);
	unhex32(d.commitments_hash, V_DEAL_A_COMMITMENTS_HASH);
	return d;
}

static void assert_deal_eq(const ig_custody_deal *a, const ig_custody_deal *b)
{
	cr_assert_eq(a->epoch, b->epoch);
	cr_assert_eq(a->index, b->index);
	cr_assert_eq(a->k, b->k);
	cr_assert_eq(a->n, b->n);
	cr_assert_arr_eq(a->share, b->share, 32);
	cr_assert_arr_eq(a->commitments_hash, b->commitments_hash, 32);
}

Test(custody, pinned_deal_box_opens_on_the_holder, .init = setup)
{
	fixture f;
	load(&f);
	ig_box_key on_ch, on_dev;
	cr_assert_eq(ig_keybox_key_for_device(&on_ch, f.ch_sk, f.h_pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&on_dev, f.h_sk, f.ch_pk), IG_OK);
	uint8_t want[32];
	unhex32(want, V_DEAL_BOX_BOX_KEY);
	cr_assert_arr_eq(on_ch.k, want, 32);
	cr_assert_arr_eq(on_dev.k, want, 32);
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	cr_assert_eq(tu_unhex(box, sizeof box, V_DEAL_BOX_BOX), sizeof box);
	cr_assert_eq(tu_unhex(nonce, sizeof nonce, V_DEAL_BOX_NONCE), 24);
	ig_custody_deal d, exp = pinned_deal(&f);
	cr_assert_eq(ig_custody_deal_open(&d, box, sizeof box, nonce, &on_dev), IG_OK);
	assert_deal_eq(&d, &exp);
	cr_assert_eq(ig_vss_verify(d.share, d.index, (const uint8_t(*)[32])f.comms_a, d.k), IG_OK);
}

Test(custody, deal_box_layout_and_round_trip, .init = setup)
{
	fixture f;
	load(&f);
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_device(&bk, f.ch_sk, f.h_pk), IG_OK);
	ig_custody_deal d = pinned_deal(&f), back;
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24], pt[79], want[79];
	cr_assert_eq(ig_custody_deal_seal(box, nonce, &d, &bk), IG_OK);
	cr_assert_eq(crypto_box_open_easy_afternm(pt, box, sizeof box, nonce, bk.k), 0);
	cr_assert_eq(tu_unhex(want, sizeof want, V_DEAL_BOX_PLAINTEXT), 79);
	cr_assert_arr_eq(pt, want, 79);
	cr_assert_eq(ig_custody_deal_open(&back, box, sizeof box, nonce, &bk), IG_OK);
	assert_deal_eq(&back, &d);
	/* Every flipped byte of box and nonce, and every wrong length. */
	for (size_t i = 0; i < sizeof box; i++) {
		box[i] ^= 0x01;
		cr_assert_eq(ig_custody_deal_open(&back, box, sizeof box, nonce, &bk), IG_ERR_CRYPTO, "byte %zu", i);
		box[i] ^= 0x01;
	}
	for (size_t i = 0; i < 24; i++) {
		nonce[i] ^= 0x80;
		cr_assert_eq(ig_custody_deal_open(&back, box, sizeof box, nonce, &bk), IG_ERR_CRYPTO);
		nonce[i] ^= 0x80;
	}
	cr_assert_eq(ig_custody_deal_open(&back, box, sizeof box - 1, nonce, &bk), IG_ERR_INVAL);
	/* Another holder's key cannot open it. */
	uint8_t o_pk[32], o_sk[64];
	tu_seed_keypair(o_pk, o_sk, 9);
	ig_box_key other;
	cr_assert_eq(ig_keybox_key_for_ch(&other, o_sk, f.ch_pk), IG_OK);
	cr_assert_eq(ig_custody_deal_open(&back, box, sizeof box, nonce, &other), IG_ERR_CRYPTO);
}

/* Authentic (from the cluster head) but not a valid deal: refused. */
Test(custody, deal_box_refuses_malformed_contents, .init = setup)
{
	fixture f;
	load(&f);
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_device(&bk, f.ch_sk, f.h_pk), IG_OK);
	uint8_t good[79];
	cr_assert_eq(tu_unhex(good, sizeof good, V_DEAL_BOX_PLAINTEXT), 79);
	struct { size_t off; uint8_t val; } bad[] = {
		{0, 'X'},            /* magic */
		{11, 0},             /* epoch 0 */
		{12, 0},             /* index 0 */
		{12, 6},             /* index > n */
		{13, 1},             /* k = 1 */
		{13, 6},             /* k > n */
		{46, 0xff},          /* share >= l */
	};
	for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
		uint8_t pt[79], box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
		memcpy(pt, good, sizeof pt);
		if (bad[t].off == 11)
			memset(pt + 4, 0, 8);
		else
			pt[bad[t].off] = bad[t].val;
		randombytes_buf(nonce, sizeof nonce);
		cr_assert_eq(crypto_box_easy_afternm(box, pt, sizeof pt, nonce, bk.k), 0);
		ig_custody_deal d;
		cr_assert_eq(ig_custody_deal_open(&d, box, sizeof box, nonce, &bk), IG_ERR_INVAL, "case %zu", t);
	}
	ig_custody_deal d = pinned_deal(&f);
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	d.index = 0;
	cr_assert_eq(ig_custody_deal_seal(box, nonce, &d, &bk), IG_ERR_INVAL);
}

/* ------------------------------------------------------- release box --- */

Test(custody, pinned_release_box_opens_on_the_requester, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t xsk[32], xpk[32], want[32];
	unhex32(xsk, V_RELEASE_BOX_REQUESTER_XSK);
	cr_assert_eq(crypto_scalarmult_base(xpk, xsk), 0);
	unhex32(want, V_RELEASE_BOX_REQUESTER_XPK);
	cr_assert_arr_eq(xpk, want, 32);
	uint8_t box[IG_CUSTODY_RELEASE_BOX_BYTES], nonce[24], request[16];
	cr_assert_eq(tu_unhex(box, sizeof box, V_RELEASE_BOX_BOX), sizeof box);
	cr_assert_eq(tu_unhex(nonce, 24, V_RELEASE_BOX_NONCE), 24);
	cr_assert_eq(tu_unhex(request, 16, V_RELEASE_BOX_REQUEST), 16);
	ig_custody_release r;
	cr_assert_eq(ig_custody_release_open(&r, box, sizeof box, nonce, f.h_pk, xsk), IG_OK);
	cr_assert_arr_eq(r.request, request, 16);
	cr_assert_eq(r.epoch, 7);
	cr_assert_eq(r.index, 2);
	cr_assert_arr_eq(r.share, f.share_a2, 32);
	/* Claimed as another holder's release: refused (the box authenticates the holder). */
	cr_assert_eq(ig_custody_release_open(&r, box, sizeof box, nonce, f.ch_pk, xsk), IG_ERR_CRYPTO);
}

Test(custody, release_box_layout_and_round_trip, .init = setup)
{
	fixture f;
	load(&f);
	uint8_t xsk[32], xpk[32];
	crypto_box_keypair(xpk, xsk);
	ig_custody_release r, back;
	memset(&r, 0, sizeof r);
	cr_assert_eq(tu_unhex(r.request, 16, V_RELEASE_BOX_REQUEST), 16);
	r.epoch = 7;
	r.index = 2;
	memcpy(r.share, f.share_a2, 32);
	uint8_t box[IG_CUSTODY_RELEASE_BOX_BYTES], nonce[24], pt[61], want[61], hx[32];
	cr_assert_eq(ig_custody_release_seal(box, nonce, &r, xpk, f.h_sk), IG_OK);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(hx, f.h_pk), 0);
	cr_assert_eq(crypto_box_open_easy(pt, box, sizeof box, nonce, hx, xsk), 0);
	cr_assert_eq(tu_unhex(want, sizeof want, V_RELEASE_BOX_PLAINTEXT), 61);
	cr_assert_arr_eq(pt, want, 61);
	cr_assert_eq(ig_custody_release_open(&back, box, sizeof box, nonce, f.h_pk, xsk), IG_OK);
	cr_assert_arr_eq(&back.request, r.request, 16);
	cr_assert_eq(back.epoch, 7);
	cr_assert_eq(back.index, 2);
	cr_assert_arr_eq(back.share, r.share, 32);
	for (size_t i = 0; i < sizeof box; i++) {
		box[i] ^= 0x20;
		cr_assert_eq(ig_custody_release_open(&back, box, sizeof box, nonce, f.h_pk, xsk), IG_ERR_CRYPTO,
		             "byte %zu", i);
		box[i] ^= 0x20;
	}
	cr_assert_eq(ig_custody_release_open(&back, box, sizeof box + 1, nonce, f.h_pk, xsk), IG_ERR_INVAL);
	/* Another requester's key cannot open it. */
	uint8_t xpk2[32], xsk2[32];
	crypto_box_keypair(xpk2, xsk2);
	cr_assert_eq(ig_custody_release_open(&back, box, sizeof box, nonce, f.h_pk, xsk2), IG_ERR_CRYPTO);
	/* Authentic but malformed: wrong magic, epoch 0, index 0. */
	uint8_t hxsk[32];
	cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(hxsk, f.h_sk), 0);
	for (int t = 0; t < 3; t++) {
		uint8_t p2[61];
		memcpy(p2, want, 61);
		if (t == 0)
			p2[3] = '2';
		else if (t == 1)
			memset(p2 + 20, 0, 8);
		else
			p2[28] = 0;
		cr_assert_eq(crypto_box_easy(box, p2, 61, nonce, xpk, hxsk), 0);
		cr_assert_eq(ig_custody_release_open(&back, box, sizeof box, nonce, f.h_pk, xsk), IG_ERR_INVAL, "case %d", t);
	}
	/* A small-order requester key is refused at seal time. */
	uint8_t small[32] = {0};
	cr_assert_eq(ig_custody_release_seal(box, nonce, &r, small, f.h_sk), IG_ERR_CRYPTO);
}

/* ------------------------------------------------------- store file --- */

static void pinned_entries(const fixture *f, ig_custody_held h[2])
{
	memset(h, 0, 2 * sizeof *h);
	memcpy(h[0].ch_pk, f->ch_pk, 32);
	h[0].epoch = 7;
	h[0].index = 2;
	h[0].k = 3;
	h[0].n = 5;
	h[0].active = true;
	memcpy(h[0].share, f->share_a2, 32);
	memcpy(h[0].commitments, f->comms_a, sizeof f->comms_a);
	memcpy(h[1].ch_pk, f->ch_pk, 32);
	h[1].epoch = 8;
	h[1].index = 2;
	h[1].k = 2;
	h[1].n = 5;
	h[1].active = false;
	memcpy(h[1].share, f->share_b2, 32);
	memcpy(h[1].commitments, f->comms_b, sizeof f->comms_b);
}

static void assert_held_eq(const ig_custody_held *a, const ig_custody_held *b)
{
	cr_assert_arr_eq(a->ch_pk, b->ch_pk, 32);
	cr_assert_eq(a->epoch, b->epoch);
	cr_assert_eq(a->index, b->index);
	cr_assert_eq(a->k, b->k);
	cr_assert_eq(a->n, b->n);
	cr_assert_eq(a->active, b->active);
	cr_assert_arr_eq(a->share, b->share, 32);
	cr_assert_arr_eq(a->commitments, b->commitments, (size_t)a->k * 32);
}

static uint8_t store_buf[IG_CUSTODY_STORE_MAX + 64];

Test(custody, pinned_store_file_decodes, .init = setup)
{
	fixture f;
	load(&f);
	size_t len = tu_unhex(store_buf, sizeof store_buf, V_STORE_FILE), count = 0;
	ig_custody_held got[2], want[2];
	pinned_entries(&f, want);
	ig_error err = {0};
	cr_assert_eq(ig_custody_store_decode(got, 2, &count, store_buf, len, f.h_sk, V_STORE_ID, &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(count, 2);
	assert_held_eq(&got[0], &want[0]);
	assert_held_eq(&got[1], &want[1]);
	cr_assert_eq(ig_vss_verify(got[1].share, got[1].index, (const uint8_t(*)[32])got[1].commitments, got[1].k),
	             IG_OK);
	/* The wrong id or the wrong identity key cannot read it. */
	cr_assert_eq(ig_custody_store_decode(got, 2, &count, store_buf, len, f.h_sk, "dev-03", &err), IG_ERR_CRYPTO);
	cr_assert_eq(ig_custody_store_decode(got, 2, &count, store_buf, len, f.ch_sk, V_STORE_ID, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "authentication"), "%s", err.msg);
	/* Room for one entry only. */
	cr_assert_eq(ig_custody_store_decode(got, 1, &count, store_buf, len, f.h_sk, V_STORE_ID, &err), IG_ERR_RANGE);
}

Test(custody, store_layout_and_round_trip, .init = setup)
{
	fixture f;
	load(&f);
	ig_custody_held h[2], back[2];
	pinned_entries(&f, h);
	size_t len = 0, count = 9;
	cr_assert_eq(ig_custody_store_encode(store_buf, sizeof store_buf, &len, h, 2, f.h_sk, V_STORE_ID), IG_OK);
	cr_assert_arr_eq(store_buf, "IGCSTOR1", 8);
	static uint8_t pt[IG_CUSTODY_STORE_MAX], want[IG_CUSTODY_STORE_MAX];
	size_t wl = tu_unhex(want, sizeof want, V_STORE_PLAINTEXT);
	cr_assert_eq(len, 8 + 24 + wl + 16);
	uint8_t key[32], ad[8 + 6];
	unhex32(key, V_STORE_KEY);
	memcpy(ad, "IGCSTOR1dev-02", 14);
	unsigned long long pl = 0;
	cr_assert_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pl, NULL, store_buf + 32, len - 32, ad, 14,
	                                                        store_buf + 8, key),
	             0);
	cr_assert_eq(pl, wl);
	cr_assert_arr_eq(pt, want, wl);
	ig_error err = {0};
	cr_assert_eq(ig_custody_store_decode(back, 2, &count, store_buf, len, f.h_sk, V_STORE_ID, &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(count, 2);
	assert_held_eq(&back[0], &h[0]);
	assert_held_eq(&back[1], &h[1]);
	/* No entries: a holder that wiped everything. */
	cr_assert_eq(ig_custody_store_encode(store_buf, sizeof store_buf, &len, h, 0, f.h_sk, V_STORE_ID), IG_OK);
	cr_assert_eq(len, 8 + 24 + 1 + 16);
	cr_assert_eq(ig_custody_store_decode(back, 2, &count, store_buf, len, f.h_sk, V_STORE_ID, &err), IG_OK);
	cr_assert_eq(count, 0);
	/* Bounds on encode. */
	cr_assert_eq(ig_custody_store_encode(store_buf, 8 + 24 + 16, &len, h, 0, f.h_sk, V_STORE_ID), IG_ERR_RANGE);
	cr_assert_eq(ig_custody_store_encode(store_buf, sizeof store_buf, &len, h, 3, f.h_sk, V_STORE_ID),
	             IG_ERR_INVAL);
	cr_assert_eq(ig_custody_store_encode(store_buf, sizeof store_buf, &len, h, 2, f.h_sk, "bad id"), IG_ERR_INVAL);
}

Test(custody, store_max_size_fits, .init = setup)
{
	fixture f;
	load(&f);
	static ig_custody_held h[2], back[2];
	static uint8_t coeffs[255][32], shares[255][32];
	for (int e = 0; e < 2; e++) {
		for (int j = 0; j < 255; j++)
			do
				crypto_core_ristretto255_scalar_random(coeffs[j]);
			while (sodium_is_zero(coeffs[j], 32));
		cr_assert_eq(ig_vss_deal_coeffs(shares, h[e].commitments, (const uint8_t(*)[32])coeffs, 255, 255), IG_OK);
		memcpy(h[e].ch_pk, f.ch_pk, 32);
		h[e].epoch = 10 + (uint64_t)e;
		h[e].index = 255;
		h[e].k = h[e].n = 255;
		memcpy(h[e].share, shares[254], 32);
	}
	size_t len = 0, count = 0;
	cr_assert_eq(ig_custody_store_encode(store_buf, IG_CUSTODY_STORE_MAX, &len, h, 2, f.h_sk, V_STORE_ID), IG_OK);
	cr_assert_eq(len, IG_CUSTODY_STORE_MAX);
	cr_assert_eq(ig_custody_store_decode(back, 2, &count, store_buf, len, f.h_sk, V_STORE_ID, NULL), IG_OK);
	assert_held_eq(&back[1], &h[1]);
}

Test(custody, store_refuses_every_flipped_byte, .init = setup)
{
	fixture f;
	load(&f);
	size_t len = tu_unhex(store_buf, sizeof store_buf, V_STORE_FILE), count = 0;
	ig_custody_held got[2];
	for (size_t i = 0; i < len; i++) {
		store_buf[i] ^= 0x04;
		ig_error err = {0};
		memset(got, 0, sizeof got);
		int rc = ig_custody_store_decode(got, 2, &count, store_buf, len, f.h_sk, V_STORE_ID, &err);
		cr_assert_neq(rc, IG_OK, "flipped byte %zu accepted", i);
		cr_assert_neq(err.msg[0], 0);
		cr_assert(tu_all_zero(got, sizeof got), "a refused decode must wipe the output");
		store_buf[i] ^= 0x04;
	}
	for (size_t cut = 0; cut < len; cut += 7)
		cr_assert_neq(ig_custody_store_decode(got, 2, &count, store_buf, cut, f.h_sk, V_STORE_ID, NULL), IG_OK);
}

/* Authentic (sealed under the right key and id) but not something encode
 * writes: each refused with its own message. */
Test(custody, store_refuses_malformed_plaintext, .init = setup)
{
	fixture f;
	load(&f);
	static uint8_t good[IG_CUSTODY_STORE_MAX], pt[IG_CUSTODY_STORE_MAX + 64];
	size_t gl = tu_unhex(good, sizeof good, V_STORE_PLAINTEXT);
	uint8_t key[32];
	unhex32(key, V_STORE_KEY);
	size_t e1 = 1 + 76 + 3 * 32;   /* offset of the second entry */
	struct { const char *what, *msg; } cases[] = {
		{"count 3", "entries"},
		{"trailing byte", "trailing"},
		{"truncated entry", "truncated"},
		{"flags 2", "flags"},
		{"k > n", "invalid"},
		{"index 0", "invalid"},
		{"epoch 0", "invalid"},
		{"share >= l", "invalid share"},
		{"commitment not a point", "not a ristretto255 point"},
		{"duplicate epoch", "twice"},
		{"empty plaintext", "not a custody share file"},
	};
	for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
		size_t pl = gl;
		memcpy(pt, good, gl);
		switch (t) {
		case 0: pt[0] = 3; break;
		case 1: pt[pl++] = 0; break;
		case 2: pl = gl - 1; break;
		case 3: pt[1 + 43] = 2; break;
		case 4: pt[1 + 41] = 6; break;
		case 5: pt[1 + 40] = 0; break;
		case 6: memset(pt + 1 + 32, 0, 8); break;
		case 7: memset(pt + 1 + 44, 0xff, 32); break;
		case 8: memset(pt + 1 + 76 + 32, 0xff, 32); break;
		case 9: memcpy(pt + e1 + 32, pt + 1 + 32, 8); break;   /* second entry's epoch = 7 */
		case 10: pl = 0; break;
		}
		uint8_t nonce[24];
		randombytes_buf(nonce, sizeof nonce);
		memcpy(store_buf, "IGCSTOR1", 8);
		memcpy(store_buf + 8, nonce, 24);
		unsigned long long cl = 0;
		cr_assert_eq(crypto_aead_xchacha20poly1305_ietf_encrypt(store_buf + 32, &cl, pt, pl,
		                                                        (const uint8_t *)"IGCSTOR1dev-02", 14, NULL, nonce,
		                                                        key),
		             0);
		ig_custody_held got[2];
		memset(got, 0, sizeof got);
		size_t count = 0;
		ig_error err = {0};
		int rc = ig_custody_store_decode(got, 2, &count, store_buf, 32 + (size_t)cl, f.h_sk, V_STORE_ID, &err);
		cr_assert_eq(rc, IG_ERR_INVAL, "%s: rc %d", cases[t].what, rc);
		cr_assert(tu_all_zero(got, sizeof got), "%s: entries decoded before the error must be wiped", cases[t].what);
		cr_assert(strstr(err.msg, cases[t].msg), "%s: message '%s'", cases[t].what, err.msg);
	}
}
