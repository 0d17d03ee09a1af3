/*
 * test_proof.c: Merkle inclusion and consistency proofs (lib/ledger/proof.c).
 *
 * Why this exists: a device that accepts a forged proof accepts a forked or
 * rewritten log, and one that rejects a good proof cannot talk to its
 * cluster head at all. So: every proof of every small tree verifies; each
 * pinned proof is byte for byte the one the independent implementation
 * written from RFC 6962 (tests/tlog/rfc6962.py, run as a program) printed;
 * any change to a hash, an index, a size or a root is refused; a failing
 * node reader fails the proof with its message; and trees up to 2^63
 * leaves work, through a reader whose leaves are all alike but one.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ig_merkle.h"
#include "ig_proof.h"
#include "testutil.h"

#define MAXN 70

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

/* The two trees the Python printed vectors for: RFC 6962's eight reference
 * entries, and entries be32(0), be32(1), ... */
enum tree { TREE_REFERENCE, TREE_COUNTER };

static const char *const reference_entries[8] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
};

static uint64_t make_leaves(uint8_t (*leaves)[IG_HASH_BYTES], ig_merkle_hash h, enum tree t, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint8_t entry[16];
		size_t len;
		if (t == TREE_REFERENCE) {
			cr_assert_lt(i, 8);
			len = tu_unhex(entry, sizeof entry, reference_entries[i]);
		} else {
			ig_put_u32(entry, (uint32_t)i);
			len = 4;
		}
		ig_merkle_hash_leaf(h, leaves[i], entry, len);
	}
	return n;
}

typedef struct root_vector {
	ig_merkle_hash h;
	enum tree tree;
	uint64_t size;
	const char *root;
} root_vector;

enum kind { V_INCLUSION, V_CONSISTENCY };
typedef struct proof_vector {
	enum kind kind;
	ig_merkle_hash h;
	enum tree tree;
	uint64_t a, b;      /* index and size, or old and new size */
	const char *path;   /* the hashes, concatenated, in hex */
} proof_vector;

/* Printed by `/usr/bin/python3 tests/tlog/rfc6962.py`. */
static const root_vector root_vectors[] = {
	{IG_MERKLE_SHA256, TREE_REFERENCE, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 1, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 2, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 3, "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 4, "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 5, "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 6, "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 7, "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"},
	{IG_MERKLE_SHA256, TREE_REFERENCE, 8, "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"},
	{IG_MERKLE_SHA256, TREE_COUNTER, 70, "11f946924f15a5393e1ae038f53cf09a2d45373fc434a1f8b3e13f51b6bb5077"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 0, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 1, "03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 2, "607844f4b0299f5c45d63dd035de1f8d697711c7f092b8fa82325f670f6d386a"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 3, "6ee5d7ded74104b2316b73f9843e14d16d9c5f553a39cbd7da7c3c8238fe0b0e"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 4, "dad1013557a71536d36ab10db2ea4847bed7ded78aa9d2682ffc0e221e758444"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 5, "a69507075082f2f7bd0e3e23bd31d7082c4c78ce98d87d897f7990eecf7d6ec5"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 6, "76840409bd8cc8be20c053d9569472d0bbea7b4f483cd5ae0624ef253c64f227"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 7, "ae8349a901b95ac305157e4ff4f5cf486653fed085ea4dd59a59c9375682933e"},
	{IG_MERKLE_BLAKE2B, TREE_REFERENCE, 8, "59cc7108743d34853ea37ea07558da3407712c7f0fdb76e59753eb243e0c438e"},
	{IG_MERKLE_BLAKE2B, TREE_COUNTER, 70, "e3990dbda4feee3193c022491ff75948a724e851b0ec59fad360789220f791b9"},
};
static const proof_vector proof_vectors[] = {
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 0, 1,
	  ""},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 2, 5,
	  "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"
	  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
	  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 0, 8,
	  "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
	  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 5, 8,
	  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
	  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 7, 8,
	  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
	  "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_REFERENCE, 3, 7,
	  "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"
	  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
	  "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 1, 8,
	  "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
	  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 3, 7,
	  "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"
	  "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"
	  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
	  "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 4, 8,
	  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 6, 8,
	  "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
	  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 2, 5,
	  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
	  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_REFERENCE, 7, 8,
	  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
	  "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"
	  "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
	  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_COUNTER, 37, 70,
	  "bcf3015d73e616a8e56cd2627133bbe43fce731bbfc159b309e5dd211b08ad5b"
	  "54fc9b0108210aaa30f3f628c05379e3583dc869c835cf285159c7d148decea4"
	  "c86385f82ca450e73811c2c55ef81d49de93d2dda60a8f28dba97c5879c077bd"
	  "d2d4a923934d24200847758e5fa21b21134a7fe75af3dd5ef0b99162aa02f748"
	  "88552f6f90c8c4cf287223921932a36b7bf4c1589d38cb144264acafc31dde2e"
	  "bdfdcbbb20d6327627639273378a289c6bdb22b22d1a45cae37f6e9f0761bf3c"
	  "11646aef58562a97baa2839fbe39e110c1f126c629d140ad3d7f963ae3a7393d"},
	{V_INCLUSION, IG_MERKLE_SHA256, TREE_COUNTER, 69, 70,
	  "45b9369a7c9ec5bb8c82cbfae89e7d53e07fea08b88f89ccb527f4d5fd0e2632"
	  "6feff4dee73a0ad7e9d680f320a0deac33c9977c437e5506d73d139397ace275"
	  "54dd1c2aaf0a20c174fc9df80919a65ef5b240dc55890e91daec1cdd063c6f1e"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_COUNTER, 23, 70,
	  "fd33e7b1d619a086d406223bd47b25f81a93c60e40a3b8b6dfc5a67fc59f1aac"
	  "d9d27a95bf4983241169cd03024a2a998992e9ab6cded343d2028c2d6eb1db1f"
	  "f02c64b7121b40b5f85ce578e10745c3ca1ab7cef3d62d6fbb8e3799c052f854"
	  "9d79a81a066b5ca48cca6a119a3da397f834e70eede387850ce6cbefa5eeae3c"
	  "5e291e8d7603c1c30dfbbbb01d761ce7042645c3433e3eaaf881b5fa9b86cdbc"
	  "62a77d6fd48269288f766d07046e320b07fa34c21e57f78a45e110768dcf9308"
	  "57980692e2f26162de6dc30224c3415c6896a8e422ec0bab76b260be947cc1b4"
	  "11646aef58562a97baa2839fbe39e110c1f126c629d140ad3d7f963ae3a7393d"},
	{V_CONSISTENCY, IG_MERKLE_SHA256, TREE_COUNTER, 64, 70,
	  "11646aef58562a97baa2839fbe39e110c1f126c629d140ad3d7f963ae3a7393d"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 0, 1,
	  ""},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 2, 5,
	  "a6706460b05dbc4c39cb8af5b4440569b84ff5d2adfaa422f48a48a0b71be13d"
	  "607844f4b0299f5c45d63dd035de1f8d697711c7f092b8fa82325f670f6d386a"
	  "3234371fe31af918988719ccf80cc04c639e69fee40c584ca7d63b5bdb352197"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 0, 8,
	  "9ee6dfb61a2fb903df487c401663825643bb825d41695e63df8af6162ab145a6"
	  "4410d256c615d5be5efd88bfe791098db5ef8adc6e4b6d5950ce34f9fbbfc83d"
	  "b0932ab3e3f71f186a2a2b9247eff0a6e3d8693b2836284645743bcb34c823aa"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 5, 8,
	  "3234371fe31af918988719ccf80cc04c639e69fee40c584ca7d63b5bdb352197"
	  "f4b02aedb9eca168d47f50db39a464a01d57961153f2708878e45cf3d3d17ae4"
	  "dad1013557a71536d36ab10db2ea4847bed7ded78aa9d2682ffc0e221e758444"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 7, 8,
	  "a3bed5e158df12f73a12124698eeeefde5d59fc298f5878aa5431e6c445e78bf"
	  "858268af4f1eb286011123329b72d29d9fecd88a2ec4b919a555a36deef1cd65"
	  "dad1013557a71536d36ab10db2ea4847bed7ded78aa9d2682ffc0e221e758444"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 3, 7,
	  "d68ce33bc8951dc8ddd17978c2b8d4862c930dcf3e579b0019e0846d3d988992"
	  "607844f4b0299f5c45d63dd035de1f8d697711c7f092b8fa82325f670f6d386a"
	  "a5101562728c1725e896ba7247c0e279dea02dafd803e0063a678769bfd0fbbb"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 1, 8,
	  "9ee6dfb61a2fb903df487c401663825643bb825d41695e63df8af6162ab145a6"
	  "4410d256c615d5be5efd88bfe791098db5ef8adc6e4b6d5950ce34f9fbbfc83d"
	  "b0932ab3e3f71f186a2a2b9247eff0a6e3d8693b2836284645743bcb34c823aa"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 3, 7,
	  "d68ce33bc8951dc8ddd17978c2b8d4862c930dcf3e579b0019e0846d3d988992"
	  "a6706460b05dbc4c39cb8af5b4440569b84ff5d2adfaa422f48a48a0b71be13d"
	  "607844f4b0299f5c45d63dd035de1f8d697711c7f092b8fa82325f670f6d386a"
	  "a5101562728c1725e896ba7247c0e279dea02dafd803e0063a678769bfd0fbbb"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 4, 8,
	  "b0932ab3e3f71f186a2a2b9247eff0a6e3d8693b2836284645743bcb34c823aa"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 6, 8,
	  "858268af4f1eb286011123329b72d29d9fecd88a2ec4b919a555a36deef1cd65"
	  "f4b02aedb9eca168d47f50db39a464a01d57961153f2708878e45cf3d3d17ae4"
	  "dad1013557a71536d36ab10db2ea4847bed7ded78aa9d2682ffc0e221e758444"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 2, 5,
	  "4410d256c615d5be5efd88bfe791098db5ef8adc6e4b6d5950ce34f9fbbfc83d"
	  "3234371fe31af918988719ccf80cc04c639e69fee40c584ca7d63b5bdb352197"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_REFERENCE, 7, 8,
	  "a3bed5e158df12f73a12124698eeeefde5d59fc298f5878aa5431e6c445e78bf"
	  "dc134b289e7e21c3f12173d31f349583688a65cf33aabbc99e3df2b946f80257"
	  "858268af4f1eb286011123329b72d29d9fecd88a2ec4b919a555a36deef1cd65"
	  "dad1013557a71536d36ab10db2ea4847bed7ded78aa9d2682ffc0e221e758444"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_COUNTER, 37, 70,
	  "2710e931ffe015dff07b47abe52bd8b266695dd5a653aa694a068d39dc6f3a41"
	  "68b3d2e4d5322364275ddfea9dd2500b0c5e861db3a9cfeb69ffeee91ab25af2"
	  "7444bde97aef14502fc8eb53d34729073ab2f885edd8635c4877174dc747db5b"
	  "e3cc732a8ff308079c43be16419690d9104c721c77c1cbe2c8772b367bb39a87"
	  "7cf60567a9ecfb388754e220c3016f34338dfcad2a5f74ecbcfa6186298441de"
	  "9158220e380838abd5283935a9252078c5eff386a16fd1494c4479683756c331"
	  "5c41e204968e7fe78700f189b6d8545cbf1f1489775ab8144883753e42fd8a78"},
	{V_INCLUSION, IG_MERKLE_BLAKE2B, TREE_COUNTER, 69, 70,
	  "0ef585bf4ec007d0ebb4fbc1c55b4de713641d324283abcbee5184149bd4e408"
	  "d700bc191e989a79738ccde30c6051c417169f7c679defa33ff29b5b32dc2222"
	  "a35058885c8a740b7dd935050dc9a088198e1221ff1dc928f9c8cc4b7647505b"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_COUNTER, 23, 70,
	  "af4843de1b6ca496831c80676cda6b658055566cf7f20c2be4e1fdc02fbc4426"
	  "ae8176f85d173a4d0a91d7f0976dcab03e85b8a95334ef5fd14356d5ac0938d0"
	  "752e28ab9d8e516a7fb0c84dd208135484df791ac216f46c2845916d711c2429"
	  "58f14354f34de998be5d344f5dbf4f8ca827fd55157670519a181b8d0dbb31b8"
	  "3ec8610e4136b740811b53a43043e4b1990c79b63c882e765a593c41fc883017"
	  "40dfb13fb90e9eeeb44345a6f2f5084b2747e1c92f58c76bbbc22fae99695662"
	  "cc9e2af243899080bb2484f4aba3afb485f35860509ee0862c70339b0cad47f7"
	  "5c41e204968e7fe78700f189b6d8545cbf1f1489775ab8144883753e42fd8a78"},
	{V_CONSISTENCY, IG_MERKLE_BLAKE2B, TREE_COUNTER, 64, 70,
	  "5c41e204968e7fe78700f189b6d8545cbf1f1489775ab8144883753e42fd8a78"},
};

static void assert_path_hex(const uint8_t (*path)[IG_HASH_BYTES], size_t n, const char *hex)
{
	cr_assert_eq(strlen(hex), n * 2 * IG_HASH_BYTES, "proof has %zu hashes, the vector %zu", n,
	             strlen(hex) / (2 * IG_HASH_BYTES));
	for (size_t i = 0; i < n; i++) {
		char want[2 * IG_HASH_BYTES + 1];
		memcpy(want, hex + i * 2 * IG_HASH_BYTES, 2 * IG_HASH_BYTES);
		want[2 * IG_HASH_BYTES] = '\0';
		tu_assert_hex(path[i], IG_HASH_BYTES, want);
	}
}

Test(proof, roots_match_the_independent_implementation, .init = setup)
{
	for (size_t v = 0; v < sizeof root_vectors / sizeof root_vectors[0]; v++) {
		const root_vector *rv = &root_vectors[v];
		uint8_t leaves[MAXN][IG_HASH_BYTES];
		ig_proof_mem mem = {rv->h, leaves, make_leaves(leaves, rv->h, rv->tree, rv->size)};
		uint8_t root[IG_HASH_BYTES];
		ig_error err;
		cr_assert_eq(ig_proof_root(root, rv->h, rv->size, ig_proof_mem_node, &mem, &err), IG_OK, "%s", err.msg);
		tu_assert_hex(root, IG_HASH_BYTES, rv->root);
	}
}

Test(proof, proofs_match_the_independent_implementation, .init = setup)
{
	for (size_t v = 0; v < sizeof proof_vectors / sizeof proof_vectors[0]; v++) {
		const proof_vector *pv = &proof_vectors[v];
		uint8_t leaves[MAXN][IG_HASH_BYTES];
		ig_proof_mem mem = {pv->h, leaves, make_leaves(leaves, pv->h, pv->tree, pv->b)};
		uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES], root[IG_HASH_BYTES], old_root[IG_HASH_BYTES];
		size_t n = 99;
		ig_error err;
		cr_assert_eq(ig_proof_root(root, pv->h, pv->b, ig_proof_mem_node, &mem, &err), IG_OK, "%s", err.msg);
		if (pv->kind == V_INCLUSION) {
			cr_assert_eq(ig_proof_inclusion(path, IG_PROOF_MAX, &n, pv->h, pv->a, pv->b, ig_proof_mem_node, &mem,
			                                &err), IG_OK, "%s", err.msg);
			assert_path_hex((const uint8_t (*)[IG_HASH_BYTES])path, n, pv->path);
			cr_assert_eq(ig_proof_inclusion_verify(pv->h, leaves[pv->a], pv->a, pv->b,
			                                       (const uint8_t (*)[IG_HASH_BYTES])path, n, root), IG_OK);
		} else {
			cr_assert_eq(ig_proof_consistency(path, IG_PROOF_MAX, &n, pv->h, pv->a, pv->b, ig_proof_mem_node,
			                                  &mem, &err), IG_OK, "%s", err.msg);
			assert_path_hex((const uint8_t (*)[IG_HASH_BYTES])path, n, pv->path);
			cr_assert_eq(ig_proof_root(old_root, pv->h, pv->a, ig_proof_mem_node, &mem, &err), IG_OK);
			cr_assert_eq(ig_proof_consistency_verify(pv->h, pv->a, old_root, pv->b, root,
			                                         (const uint8_t (*)[IG_HASH_BYTES])path, n), IG_OK);
		}
	}
}

/* RFC 6962 section 2.1.3's worked example (7 leaves d0..d6, named nodes a..l):
 * the shapes, written out by hand from the RFC's figures. */
Test(proof, rfc6962_worked_example_shapes, .init = setup)
{
	uint8_t L[7][IG_HASH_BYTES];
	for (uint8_t i = 0; i < 7; i++)
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, L[i], &i, 1);
	uint8_t g[32], h[32], i_[32], k[32], l[32];
	ig_merkle_hash_node(IG_MERKLE_SHA256, g, L[0], L[1]);
	ig_merkle_hash_node(IG_MERKLE_SHA256, h, L[2], L[3]);
	ig_merkle_hash_node(IG_MERKLE_SHA256, i_, L[4], L[5]);
	ig_merkle_hash_node(IG_MERKLE_SHA256, k, g, h);
	ig_merkle_hash_node(IG_MERKLE_SHA256, l, i_, L[6]);
	ig_proof_mem mem = {IG_MERKLE_SHA256, L, 7};
	uint8_t p[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n;
	/* consistency 3 -> 7 = [c, d, g, l]; 4 -> 7 = [l]; 6 -> 7 = [i, j, k] */
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 3, 7, ig_proof_mem_node, &mem, NULL), 0);
	cr_assert_eq(n, 4);
	cr_assert_arr_eq(p[0], L[2], 32);
	cr_assert_arr_eq(p[1], L[3], 32);
	cr_assert_arr_eq(p[2], g, 32);
	cr_assert_arr_eq(p[3], l, 32);
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 4, 7, ig_proof_mem_node, &mem, NULL), 0);
	cr_assert_eq(n, 1);
	cr_assert_arr_eq(p[0], l, 32);
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 6, 7, ig_proof_mem_node, &mem, NULL), 0);
	cr_assert_eq(n, 3);
	cr_assert_arr_eq(p[0], i_, 32);
	cr_assert_arr_eq(p[1], L[6], 32);
	cr_assert_arr_eq(p[2], k, 32);
	/* audit path of d0 = [b, h, l], of d6 = [i, k] */
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 0, 7, ig_proof_mem_node, &mem, NULL), 0);
	cr_assert_eq(n, 3);
	cr_assert_arr_eq(p[0], L[1], 32);
	cr_assert_arr_eq(p[1], h, 32);
	cr_assert_arr_eq(p[2], l, 32);
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 6, 7, ig_proof_mem_node, &mem, NULL), 0);
	cr_assert_eq(n, 2);
	cr_assert_arr_eq(p[0], i_, 32);
	cr_assert_arr_eq(p[1], k, 32);
}

/* The proof in a heap block of exactly n hashes, so that ASan sees any read
 * past n. */
static uint8_t (*exact_copy(const uint8_t (*p)[IG_HASH_BYTES], size_t n))[IG_HASH_BYTES]
{
	uint8_t (*c)[IG_HASH_BYTES] = malloc(n ? n * IG_HASH_BYTES : 1);
	cr_assert_not_null(c);
	if (n)
		memcpy(c, p, n * IG_HASH_BYTES);
	return c;
}

#define CP(p) ((const uint8_t (*)[IG_HASH_BYTES])(p))

static void every_inclusion_proof(ig_merkle_hash hh, uint64_t maxn)
{
	uint8_t leaves[MAXN][IG_HASH_BYTES];
	make_leaves(leaves, hh, TREE_COUNTER, maxn);
	for (uint64_t size = 1; size <= maxn; size++) {
		ig_proof_mem mem = {hh, leaves, size};
		uint8_t root[IG_HASH_BYTES], ref[IG_HASH_BYTES];
		cr_assert_eq(ig_proof_root(root, hh, size, ig_proof_mem_node, &mem, NULL), IG_OK);
		ig_merkle_root_of_hash(hh, CP(leaves), size, ref);
		cr_assert_arr_eq(root, ref, IG_HASH_BYTES, "root of %" PRIu64, size);
		for (uint64_t i = 0; i < size; i++) {
			uint8_t p[IG_PROOF_MAX + 1][IG_HASH_BYTES];
			size_t n;
			ig_error err;
			cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, hh, i, size, ig_proof_mem_node, &mem, &err),
			             IG_OK, "%s", err.msg);
			cr_assert_eq((int)n, ig_proof_inclusion_len(i, size));
			uint8_t (*x)[IG_HASH_BYTES] = exact_copy(CP(p), n);
			cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, size, CP(x), n, root), IG_OK,
			             "leaf %" PRIu64 " of %" PRIu64, i, size);
			free(x);
			/* Any flipped bit in any hash. */
			for (size_t j = 0; j < n; j++) {
				p[j][j % IG_HASH_BYTES] ^= 0x01;
				cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, size, CP(p), n, root), IG_ERR_CORRUPT);
				p[j][j % IG_HASH_BYTES] ^= 0x01;
			}
			/* Another leaf, index or root. */
			if (size > 1) {
				uint64_t o = (i + 1) % size;
				cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[o], i, size, CP(p), n, root), IG_ERR_CORRUPT);
				cr_assert_neq(ig_proof_inclusion_verify(hh, leaves[i], o, size, CP(p), n, root), IG_OK);
			}
			uint8_t bad_root[IG_HASH_BYTES];
			memcpy(bad_root, root, sizeof bad_root);
			bad_root[31] ^= 0x80;
			cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, size, CP(p), n, bad_root), IG_ERR_CORRUPT);
			/* Wrong length: one hash short, one too many. */
			if (n > 0)
				cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, size, CP(p), n - 1, root), IG_ERR_CORRUPT);
			memcpy(p[n], root, IG_HASH_BYTES);
			cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, size, CP(p), n + 1, root), IG_ERR_CORRUPT);
			/* Another size: refused whenever its proof has another length
			 * (one of the same shape gives the same hash; the signed
			 * checkpoint, not the proof, binds size to root). */
			for (uint64_t s2 = i + 1; s2 <= maxn; s2++) {
				if (s2 == size || ig_proof_inclusion_len(i, s2) == (int)n)
					continue;
				cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], i, s2, CP(p), n, root), IG_ERR_CORRUPT);
			}
			/* An index past the size. */
			cr_assert_eq(ig_proof_inclusion_verify(hh, leaves[i], size, size, CP(p), n, root), IG_ERR_INVAL);
		}
	}
}

Test(proof, every_inclusion_proof_up_to_70_verifies_and_any_change_fails, .init = setup)
{
	every_inclusion_proof(IG_MERKLE_SHA256, MAXN);
}

Test(proof, every_inclusion_proof_blake2b, .init = setup)
{
	every_inclusion_proof(IG_MERKLE_BLAKE2B, 33);
}

static void every_consistency_proof(ig_merkle_hash hh, uint64_t maxn)
{
	uint8_t leaves[MAXN][IG_HASH_BYTES], roots[MAXN + 1][IG_HASH_BYTES];
	make_leaves(leaves, hh, TREE_COUNTER, maxn);
	for (uint64_t s = 0; s <= maxn; s++)
		ig_merkle_root_of_hash(hh, CP(leaves), s, roots[s]);
	for (uint64_t size = 1; size <= maxn; size++) {
		ig_proof_mem mem = {hh, leaves, size};
		for (uint64_t old = 0; old <= size; old++) {
			uint8_t p[IG_PROOF_MAX + 1][IG_HASH_BYTES];
			size_t n;
			ig_error err;
			cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, hh, old, size, ig_proof_mem_node, &mem, &err),
			             IG_OK, "%s", err.msg);
			cr_assert_eq((int)n, ig_proof_consistency_len(old, size));
			uint8_t (*x)[IG_HASH_BYTES] = exact_copy(CP(p), n);
			cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], size, roots[size], CP(x), n), IG_OK,
			             "%" PRIu64 " -> %" PRIu64, old, size);
			free(x);
			if (old == 0 || old == size) {
				cr_assert_eq(n, 0);
				continue;
			}
			cr_assert_gt(n, 0);
			for (size_t j = 0; j < n; j++) {
				p[j][(j * 7) % IG_HASH_BYTES] ^= 0x40;
				cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], size, roots[size], CP(p), n),
				             IG_ERR_CORRUPT, "%" PRIu64 " -> %" PRIu64 " hash %zu", old, size, j);
				p[j][(j * 7) % IG_HASH_BYTES] ^= 0x40;
			}
			/* A forked old tree (another root at the same size), or a new root
			 * that is not the one the proof leads to. */
			cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old - 1], size, roots[size], CP(p), n),
			             IG_ERR_CORRUPT);
			cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], size, roots[size - 1], CP(p), n),
			             IG_ERR_CORRUPT);
			cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], size, roots[size], CP(p), n - 1),
			             IG_ERR_CORRUPT);
			memcpy(p[n], roots[size], IG_HASH_BYTES);
			cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], size, roots[size], CP(p), n + 1),
			             IG_ERR_CORRUPT);
			/* Other sizes, where the proof's length differs. */
			for (uint64_t o2 = 1; o2 < size; o2++)
				if (o2 != old && ig_proof_consistency_len(o2, size) != (int)n)
					cr_assert_eq(ig_proof_consistency_verify(hh, o2, roots[old], size, roots[size], CP(p), n),
					             IG_ERR_CORRUPT);
			for (uint64_t s2 = old + 1; s2 <= maxn; s2++)
				if (s2 != size && ig_proof_consistency_len(old, s2) != (int)n)
					cr_assert_eq(ig_proof_consistency_verify(hh, old, roots[old], s2, roots[size], CP(p), n),
					             IG_ERR_CORRUPT);
			/* Backwards. */
			cr_assert_eq(ig_proof_consistency_verify(hh, size, roots[size], old, roots[old], CP(p), n),
			             IG_ERR_INVAL);
		}
	}
}

Test(proof, every_consistency_proof_up_to_70_verifies_and_any_change_fails, .init = setup)
{
	every_consistency_proof(IG_MERKLE_SHA256, MAXN);
}

Test(proof, every_consistency_proof_blake2b, .init = setup)
{
	every_consistency_proof(IG_MERKLE_BLAKE2B, 33);
}

Test(proof, rfc9162_edge_cases, .init = setup)
{
	uint8_t leaves[8][IG_HASH_BYTES], r3[32], r5[32], empty[32];
	make_leaves(leaves, IG_MERKLE_SHA256, TREE_REFERENCE, 8);
	ig_proof_mem mem = {IG_MERKLE_SHA256, leaves, 8};
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, CP(leaves), 3, r3);
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, CP(leaves), 5, r5);
	ig_merkle_hash_empty(IG_MERKLE_SHA256, empty);
	uint8_t p[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n = 7;
	ig_error err;

	/* index >= size */
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 5, 5, ig_proof_mem_node, &mem, &err),
	             IG_ERR_INVAL);
	cr_assert_not_null(strstr(err.msg, "index 5 is not below the tree size 5"), "%s", err.msg);
	cr_assert_eq(n, 0);
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 0, 0, ig_proof_mem_node, &mem, &err),
	             IG_ERR_INVAL);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaves[0], 0, 0, CP(p), 0, empty), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_inclusion_len(3, 3), -1);
	/* A one-leaf tree: the empty proof, and the root is the leaf. */
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 0, 1, ig_proof_mem_node, &mem, &err),
	             IG_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaves[0], 0, 1, NULL, 0, leaves[0]), IG_OK);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaves[1], 0, 1, NULL, 0, leaves[0]), IG_ERR_CORRUPT);

	/* old_size > new_size */
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 5, 3, ig_proof_mem_node, &mem, &err),
	             IG_ERR_INVAL);
	cr_assert_not_null(strstr(err.msg, "old size 5 is larger than the new size 3"), "%s", err.msg);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 5, r5, 3, r3, NULL, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_consistency_len(5, 3), -1);
	/* old_size == 0: the empty proof, consistent with anything; a
	 * non-empty one is not a proof of that. */
	n = 7;
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 0, 5, ig_proof_mem_node, &mem, &err),
	             IG_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 0, NULL, 5, r5, NULL, 0), IG_OK);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 0, empty, 0, empty, NULL, 0), IG_OK);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 0, empty, 5, r5, CP(leaves), 1), IG_ERR_CORRUPT);
	/* old_size == new_size: the empty proof, and the roots must be equal
	 * (two roots of one size are a fork). */
	n = 7;
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 5, 5, ig_proof_mem_node, &mem, &err),
	             IG_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 5, r5, 5, r5, NULL, 0), IG_OK);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 5, r5, 5, r3, NULL, 0), IG_ERR_CORRUPT);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 5, r5, 5, r5, CP(leaves), 1), IG_ERR_CORRUPT);
	/* 0 < old < new with an empty proof. */
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 3, r3, 5, r5, NULL, 0), IG_ERR_CORRUPT);
	/* Missing arguments. */
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 3, NULL, 5, r5, CP(p), 3), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, NULL, 0, 5, CP(p), 3, r5), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaves[0], 0, 5, NULL, 3, r5), IG_ERR_INVAL);
	/* Sizes above 2^63. */
	cr_assert_eq(ig_proof_inclusion_len(0, IG_PROOF_SIZE_MAX + 1), -1);
	cr_assert_eq(ig_proof_consistency_len(1, IG_PROOF_SIZE_MAX + 1), -1);
	cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 0, UINT64_MAX, ig_proof_mem_node, &mem,
	                                &err), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 1, UINT64_MAX, ig_proof_mem_node,
	                                  &mem, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaves[0], 0, UINT64_MAX, CP(p), 64, r5), IG_ERR_INVAL);
	cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, 1, r3, UINT64_MAX, r5, CP(p), 64), IG_ERR_INVAL);
}

Test(proof, too_little_room_is_a_range_error, .init = setup)
{
	uint8_t leaves[8][IG_HASH_BYTES];
	make_leaves(leaves, IG_MERKLE_SHA256, TREE_REFERENCE, 8);
	ig_proof_mem mem = {IG_MERKLE_SHA256, leaves, 8};
	uint8_t p[3][IG_HASH_BYTES];
	size_t n;
	ig_error err;
	cr_assert_eq(ig_proof_inclusion(p, 2, &n, IG_MERKLE_SHA256, 2, 5, ig_proof_mem_node, &mem, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_proof_inclusion(p, 3, &n, IG_MERKLE_SHA256, 2, 5, ig_proof_mem_node, &mem, &err), IG_OK);
	cr_assert_eq(ig_proof_inclusion(NULL, 0, &n, IG_MERKLE_SHA256, 2, 5, ig_proof_mem_node, &mem, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_proof_consistency(p, 3, &n, IG_MERKLE_SHA256, 3, 7, ig_proof_mem_node, &mem, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_proof_consistency(NULL, 0, &n, IG_MERKLE_SHA256, 3, 7, ig_proof_mem_node, &mem, &err),
	             IG_ERR_RANGE);
	cr_assert_eq(ig_proof_consistency(p, 1, &n, IG_MERKLE_SHA256, 4, 8, ig_proof_mem_node, &mem, &err), IG_OK);
	cr_assert_eq(n, 1);
}

/* A reader that fails on its k-th call, like a tile that cannot be read. */
typedef struct failing {
	ig_proof_mem mem;
	int calls, fail_at, code;
	bool say_why;
} failing;

static int failing_node(void *ctx, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err)
{
	failing *f = ctx;
	if (++f->calls == f->fail_at) {
		if (f->say_why)
			return ig_error_set(err, f->code, "tile 0/%" PRIu64 " cannot be read: Input/output error", index);
		return f->code;
	}
	return ig_proof_mem_node(&f->mem, level, index, out, err);
}

Test(proof, a_reader_error_fails_the_proof_with_its_message, .init = setup)
{
	uint8_t leaves[MAXN][IG_HASH_BYTES];
	make_leaves(leaves, IG_MERKLE_SHA256, TREE_COUNTER, MAXN);
	uint8_t p[IG_PROOF_MAX][IG_HASH_BYTES], root[IG_HASH_BYTES];
	size_t n;
	ig_error err;
	/* Each read of each kind of proof, in turn, fails. */
	for (int at = 1; at <= 6; at++) {
		for (int kind = 0; kind < 3; kind++) {
			failing f = {{IG_MERKLE_SHA256, leaves, MAXN}, 0, at, IG_ERR_IO, (at % 2) == 1};
			memset(&err, 0, sizeof err);
			int rc;
			if (kind == 0)
				rc = ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 37, 69, failing_node, &f, &err);
			else if (kind == 1)
				rc = ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 23, 69, failing_node, &f, &err);
			else
				rc = ig_proof_root(root, IG_MERKLE_SHA256, 63, failing_node, &f, &err);
			cr_assert_eq(rc, IG_ERR_IO, "kind %d, read %d", kind, at);
			cr_assert_eq(err.code, IG_ERR_IO);
			if (f.say_why)
				cr_assert_not_null(strstr(err.msg, "cannot be read: Input/output error"), "%s", err.msg);
			else
				cr_assert_not_null(strstr(err.msg, "reading the subtree at level"), "%s", err.msg);
		}
	}
	/* A reader's positive return is still a failure. */
	failing f = {{IG_MERKLE_SHA256, leaves, MAXN}, 0, 1, 1, false};
	cr_assert_eq(ig_proof_root(root, IG_MERKLE_SHA256, 5, failing_node, &f, &err), IG_ERR_IO);
}

Test(proof, mem_reader_refuses_nodes_outside_its_leaves, .init = setup)
{
	uint8_t leaves[5][IG_HASH_BYTES], out[IG_HASH_BYTES];
	make_leaves(leaves, IG_MERKLE_SHA256, TREE_REFERENCE, 5);
	ig_proof_mem mem = {IG_MERKLE_SHA256, leaves, 5};
	ig_error err;
	cr_assert_eq(ig_proof_mem_node(&mem, 2, 0, out, &err), IG_OK);
	cr_assert_eq(ig_proof_mem_node(&mem, 2, 1, out, &err), IG_ERR_RANGE);  /* leaves 4..7: ragged */
	cr_assert_eq(ig_proof_mem_node(&mem, 0, 5, out, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_proof_mem_node(&mem, 64, 0, out, &err), IG_ERR_RANGE);
	/* A tree of 5 asks for no ragged node. */
	uint8_t p[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n;
	for (uint64_t i = 0; i < 5; i++)
		cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, i, 5, ig_proof_mem_node, &mem, &err),
		             IG_OK, "%s", err.msg);
}

/* ---- huge trees ----------------------------------------------------------
 * Every leaf is H(0x00 || "a") but leaf `special`, which is H(0x00 || "b"),
 * so a node's hash is computed in O(level): a subtree without the special
 * leaf is the same for every index. */
typedef struct synthetic {
	uint64_t special;
	uint8_t plain[64][IG_HASH_BYTES]; /* plain[l]: a perfect subtree of 2^l ordinary leaves */
} synthetic;

static void synthetic_init(synthetic *s, uint64_t special)
{
	s->special = special;
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, s->plain[0], (const uint8_t *)"a", 1);
	for (int l = 1; l < 64; l++)
		ig_merkle_hash_node(IG_MERKLE_SHA256, s->plain[l], s->plain[l - 1], s->plain[l - 1]);
}

static void synthetic_hash(const synthetic *s, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES])
{
	if ((s->special >> level) != index) {
		memcpy(out, s->plain[level], IG_HASH_BYTES);
	} else if (level == 0) {
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, out, (const uint8_t *)"b", 1);
	} else {
		uint8_t l[IG_HASH_BYTES], r[IG_HASH_BYTES];
		synthetic_hash(s, level - 1, 2 * index, l);
		synthetic_hash(s, level - 1, 2 * index + 1, r);
		ig_merkle_hash_node(IG_MERKLE_SHA256, out, l, r);
	}
}

static int synthetic_node(void *ctx, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err)
{
	(void)err;
	cr_assert_lt(level, 64);
	synthetic_hash(ctx, level, index, out);
	return IG_OK;
}

Test(proof, trees_up_to_2_pow_63, .init = setup)
{
	const uint64_t big = IG_PROOF_SIZE_MAX;
	const uint64_t sizes[] = {big, big - 1, (big >> 1) + 12345, (UINT64_C(1) << 40) + 7, 3000000001u};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		uint64_t size = sizes[k];
		const uint64_t specials[] = {0, size - 1, size / 3, size - 2};
		for (size_t j = 0; j < sizeof specials / sizeof specials[0]; j++) {
			synthetic s;
			synthetic_init(&s, specials[j]);
			uint8_t root[IG_HASH_BYTES], leaf[IG_HASH_BYTES], other[IG_HASH_BYTES];
			cr_assert_eq(ig_proof_root(root, IG_MERKLE_SHA256, size, synthetic_node, &s, NULL), IG_OK);
			synthetic_hash(&s, 0, s.special, leaf);
			synthetic_hash(&s, 0, s.special ^ 1, other);
			uint8_t p[IG_PROOF_MAX][IG_HASH_BYTES];
			size_t n;
			ig_error err;
			cr_assert_eq(ig_proof_inclusion(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, s.special, size, synthetic_node,
			                                &s, &err), IG_OK, "%s", err.msg);
			cr_assert_leq(n, 63);
			cr_assert_eq((int)n, ig_proof_inclusion_len(s.special, size));
			cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, s.special, size, CP(p), n, root), IG_OK);
			cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, other, s.special, size, CP(p), n, root),
			             IG_ERR_CORRUPT);
			cr_assert_neq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, s.special ^ 1, size, CP(p), n, root),
			              IG_OK);
			/* Consistency from sizes around the special leaf to size. */
			const uint64_t olds[] = {1, s.special, s.special + 1, size - 1, size / 2, (size / 2) | 1};
			for (size_t m = 0; m < sizeof olds / sizeof olds[0]; m++) {
				uint64_t old = olds[m];
				if (old == 0 || old > size)
					continue;
				uint8_t old_root[IG_HASH_BYTES];
				cr_assert_eq(ig_proof_root(old_root, IG_MERKLE_SHA256, old, synthetic_node, &s, NULL), IG_OK);
				cr_assert_eq(ig_proof_consistency(p, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, old, size, synthetic_node,
				                                  &s, &err), IG_OK, "%s", err.msg);
				cr_assert_leq(n, IG_PROOF_MAX);
				cr_assert_eq((int)n, ig_proof_consistency_len(old, size));
				cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, old, old_root, size, root, CP(p), n), IG_OK,
				             "%" PRIu64 " -> %" PRIu64, old, size);
				if (n > 0) {
					p[n - 1][0] ^= 1;
					cr_assert_eq(ig_proof_consistency_verify(IG_MERKLE_SHA256, old, old_root, size, root, CP(p), n),
					             IG_ERR_CORRUPT);
				}
			}
		}
	}
	/* The longest proofs: 63 hashes for inclusion, 64 for consistency. */
	cr_assert_eq(ig_proof_inclusion_len(big - 1, big), 63);
	cr_assert_eq(ig_proof_consistency_len(big - 1, big), 64);
	cr_assert_eq(ig_proof_consistency_len(big - 3, big - 1), 63 + 1);
}

/* docs/LEDGER.md section 13.2 prints these vectors; the document and the
 * code must not drift apart. */
Test(proof, ledger_md_prints_the_pinned_vectors, .init = setup)
{
	const char *doc = tu_read_doc("LEDGER.md");
	const char *sec = strstr(doc, "### 13.2 Proof test vectors");
	cr_assert_not_null(sec, "docs/LEDGER.md has no section 13.2");
	int found = 0;
	for (size_t v = 0; v < sizeof root_vectors / sizeof root_vectors[0]; v++) {
		const root_vector *rv = &root_vectors[v];
		if (rv->h == IG_MERKLE_BLAKE2B && rv->size != 8)
			continue;
		char line[128];
		snprintf(line, sizeof line, "MTH(D[%" PRIu64 "]) = %s\n", rv->size, rv->root);
		/* The SHA-256 and BLAKE2b roots of D[8] differ, so each is found once. */
		cr_expect_not_null(strstr(sec, line), "section 13.2 lacks %s", line);
		found++;
	}
	for (size_t v = 0; v < sizeof proof_vectors / sizeof proof_vectors[0]; v++) {
		const proof_vector *pv = &proof_vectors[v];
		if (pv->path[0] == '\0')
			continue;
		if (pv->h == IG_MERKLE_BLAKE2B && !(pv->tree == TREE_REFERENCE && ((pv->kind == V_INCLUSION && pv->a == 2 &&
		    pv->b == 5) || (pv->kind == V_CONSISTENCY && pv->a == 3 && pv->b == 7))))
			continue;
		char block[64 * 72];
		size_t o = (size_t)snprintf(block, sizeof block, "%s(%" PRIu64 ", D[%" PRIu64 "]) =\n",
		                            pv->kind == V_INCLUSION ? "PATH" : "PROOF", pv->a, pv->b);
		for (size_t i = 0; i < strlen(pv->path); i += 64)
			o += (size_t)snprintf(block + o, sizeof block - o, "  %.64s\n", pv->path + i);
		cr_expect_not_null(strstr(sec, block), "section 13.2 lacks\n%s", block);
		found++;
	}
	cr_assert_eq(found, 28, "checked %d vectors", found);
}
