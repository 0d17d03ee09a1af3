/*
 * test_kp.c: key rings (lib/kp/kp.c, ig_kp.h) and the version-2 m2m envelope.
 *
 * Why this exists: the cluster head, the devices and the independent Python
 * reference (tests/kp/kp_ref.py) must derive the same ring ids, pool keys,
 * pairwise and session keys and build the same messages byte for byte; the
 * vectors below come from that reference (written from the design text, not
 * from this C). The rest tries to break every parser: refusals of each
 * malformed field, every-byte tamper, truncation, wrong key / topic / public
 * key / magic, and the signed revoked statement's ordering and signature.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_hkdf.h"
#include "ig_kp.h"
#include "ig_m2m.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

/* ---- the reference's vectors (/work/notes/kp_vectors.txt, tests/kp/vectors.py) ---- */

#define V_POOL_SECRET \
	"5ea4779cef3aa257241f335b0e519b7fd5318e173b0a67904eb9cd49037a2f46"
#define V_RING_SEED \
	"d75ec5d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f60ac7ab15880bf3da"
#define V_POOL_KEY_0 \
	"838118b67abb991c12d1cd72e1f4ffb8496e4f4c698ed7a338c0f8fb10d7ad04"
#define V_POOL_KEY_1 \
	"da72b9f4770deb80ca7613296872edb4f0706ab0259376f4933b7206c8b6501e"
#define V_POOL_KEY_16777215 \
	"80707eebc0d4c737da2e171b3798e173ead205c2962abd22bda29f2113ed0b77"
#define V_RING_A_BLOCK0 \
	"beaa6ae089ee30711f57e54f6354a3250c1686b136d072d69284cb5b3f965a3a"
static const uint32_t V_RING30_A[] = {2,31,58,106,173,191,293,327,347,397,459,520,521,532,550,561,569,585,588,590,593,598,611,656,785,832,840,865,912,934};
static const uint32_t V_RING30_B[] = {62,76,123,198,256,273,281,324,331,351,449,469,527,546,548,586,616,659,684,694,737,784,833,873,877,886,906,925,927,968};
#define V_RING30_A_HASH \
	"b543629c7c6205e5f75c83e1461c944011de5bfaf268db25548987f98f0fcf27"
static const uint32_t V_RING60_A[] = {2,31,58,64,106,159,173,185,191,197,198,202,206,207,255,274,281,293,312,327,336,337,347,397,421,459,484,520,521,530,532,543,550,559,561,567,569,585,588,590,593,596,598,611,636,656,661,729,785,828,832,840,858,865,869,912,925,934,940,960};
static const uint32_t V_RING60_B[] = {0,9,37,50,53,62,76,123,127,146,149,155,186,198,223,234,256,273,281,286,316,324,331,348,351,355,421,449,469,491,520,526,527,546,548,586,616,652,659,664,684,694,701,725,737,773,776,784,833,859,873,877,885,886,906,925,927,967,968,994};
static const uint32_t V_RING60_C[] = {30,42,70,77,97,112,118,186,233,239,247,281,308,314,324,326,333,342,351,359,362,365,375,376,382,396,479,481,482,485,501,507,518,530,560,574,590,592,650,667,670,675,688,706,714,727,729,734,748,787,798,804,805,817,857,918,926,929,947,952};
static const uint32_t V_RING60_AB[] = {198,281,421,520,925};
#define V_PAIR_AB \
	"0e03e0507ad2e91ac6d108d35119e6eeca957c3b994194eaa995df2a5a0dbda8"
static const uint32_t V_RING60_AC[] = {281,530,590,729};
#define V_PAIR_AC \
	"d9f9af2e8cd79d86a58f6c275f2909887bb209a2412ec26c58df19a90abd3e41"
static const uint32_t V_RING60_BC[] = {186,281,324,351};
#define V_PAIR_BC \
	"25323ad56004bb0ed2f2747d459f9f8fcd20b4a72e8b420b53f128b16c7a7e5f"
#define V_TOPIC_BA "iotguard/demo/m2m/b/a"
#define V_TOPIC_AB "iotguard/demo/m2m/a/b"
#define V_HELLO_DIRECT_KIND1 \
	"03010000000000000001000005000000c600000119000001a5000002080000039d404142434445464748494a4b4c4d4e" \
	"4f505152535455565758595a5b5c5d5e5fd6e20d6004c68ce39dde64e7673ed440a7f7c298212dcce120df1a15828b9f" \
	"7e"
#define V_HELLO_DIRECT_KIND2 \
	"03020000000000000001000005000000c600000119000001a5000002080000039d404142434445464748494a4b4c4d4e" \
	"4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e" \
	"7f8001b8a3b7acd00bb04199f0bb5a24b59d869331a0b9d3748b50608a9a27fd8f"
#define V_SESSION_DIRECT_KEY \
	"2015c46dd64e04d76bba9431047728abd3bd5f7ebcd4901f4d60a2f8db97dabb"
#define V_SESSION_DIRECT_KEY_ID \
	"dd20bb123c4c100e3c1668af81160be9"
#define V_DATA_DIRECT_DIR0 \
	"0202dd20bb123c4c100e3c1668af81160be90000000000000001213ccd0c6c9f523293241ea6d21fc51e42b0ceae69"
#define V_DATA_DIRECT_DIR1 \
	"0202dd20bb123c4c100e3c1668af81160be90000000000000001891c321f248dc040b8a4c4dd179cdd22b404075e5d"
#define V_PATH_REQUEST \
	"04010000000000000001000400000119000002120000024e000002d90162d0d1d2d3d4d5d6d7d8d9dadbdcdddedfec11" \
	"9e489fb02cc70200e49e82aa7693a6bb79e170403879f13c8b18011dc87a"
#define V_PATH_KEY_TO_A \
	"04020000000000000001000400000119000002120000024e000002d901610162d0d1d2d3d4d5d6d7d8d9dadbdcdddedf" \
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf808182838485868788898a8b8c8d8e8f9091929394959697c943a683c219300e" \
	"33c9eeb7053ed65b5b5908c80dc86c3e4db9146ad258d26dd98a1875c7227c1144ab6fcac426d808"
#define V_PATH_KEY_TO_B \
	"040200000000000000010004000000ba00000119000001440000015f01610162d0d1d2d3d4d5d6d7d8d9dadbdcdddedf" \
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf808182838485868788898a8b8c8d8e8f90919293949596970b57b371a8c7e321" \
	"a8a5abc164a2e2fd18925efdca527740503f64d5c457fe71eef23f8846cfceac54a95d76f55be59a"
#define V_HELLO_PATH_KIND1 \
	"0301000000000000000101c0c1c2c3c4c5c6c7c8c9cacbcccdcecf0163404142434445464748494a4b4c4d4e4f505152" \
	"535455565758595a5b5c5d5e5fb8a5984faffcc487afaf8b4b353e08b483827618fb2ec3ce28e44c72882aae99"
#define V_HELLO_PATH_KIND2 \
	"0302000000000000000101c0c1c2c3c4c5c6c7c8c9cacbcccdcecf0163404142434445464748494a4b4c4d4e4f505152" \
	"535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f5c33bd" \
	"45efedd6087229bec609d46b662d2ed22273a18d76a012109048f4e1e2"
#define V_SESSION_PATH_KEY \
	"6d2d961edd03df9aa52c9862f637ab6fc555ec0a2dd2bfe96b1262a65823eeef"
#define V_SESSION_PATH_KEY_ID \
	"ad2effc919a853efddf1ec38943d4d73"
#define V_CH_PK \
	"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
static const uint32_t V_RING30_D[] = {112,115,119,141,158,164,181,298,367,379,386,406,481,535,543,558,566,638,700,719,739,753,779,807,924,941,961,976,984,998};
#define V_REVOKED_BYTES \
	"696f746775617264206b70207265766f6b6564207631000464656d6f0000000000000001000003e80000001e01d75ec5" \
	"d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f60ac7ab15880bf3da00000000000000030000001e00000070000000" \
	"73000000770000008d0000009e000000a4000000b50000012a0000016f0000017b0000018200000196000001e1000002" \
	"170000021f0000022e000002360000027e000002bc000002cf000002e3000002f10000030b000003270000039c000003" \
	"ad000003c1000003d0000003d8000003e6000000010164"
#define V_REVOKED_SIG \
	"f811dbb794fcdccc4c4c668c24cdf256afed7dc5f01f91fe46ea0e92f4af71350bfdb04652353564c6206f8372ec3323" \
	"6aad1901c5e0e1f9add61281b8d43101"
#define V_REVOKED_JSON "{\"type\":\"kp_revoked\",\"cluster\":\"demo\",\"epoch\":1,\"pool\":1000,\"ring\":30,\"q\":1,\"seed\":\"d75ec5d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f60ac7ab15880bf3da\",\"serial\":3,\"ids\":[112,115,119,141,158,164,181,298,367,379,386,406,481,535,543,558,566,638,700,719,739,753,779,807,924,941,961,976,984,998],\"devices\":[\"d\"],\"sig\":\"f811dbb794fcdccc4c4c668c24cdf256afed7dc5f01f91fe46ea0e92f4af71350bfdb04652353564c6206f8372ec33236aad1901c5e0e1f9add61281b8d43101\"}"
#define V_DEV_PK \
	"29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define V_BOX_KEY \
	"7b91597e6a0dbe2acd34f13f7fe345f782c93b043f275a80e5f810b60fa6ba12"
#define V_KEY_RING_PLAIN \
	"0000000000000001000003e80000001e01d75ec5d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f60ac7ab15880bf3" \
	"da016100000002297c010ec01495d0767f4fade41ade024d83d486beda80ae200007c9bd03692f0000001f68f35d925d" \
	"d6365f0b9f6cbcfabb44f7ae3ef54cfc407181edf5c873d0b7ca940000003a46f2f1f850178e7f27d00dd1be4e5b8df9" \
	"02726245b9140f3167cb0cd2a098900000006a4d6cc8f08bd6a027a5c3ba30310ba5a67bb1c0f31b6415d2e9a97999b7" \
	"fd15c4000000add24ea3f30e9aa067d09406f46961e8788937df30e66ed3e18083fa2b7be45a5d000000bf301d7ee4ff" \
	"7a654011ffc59972f32d170560f8198692814975e8b243b4dbb8240000012558f22be5c87d258c77187ae8b36e267c67" \
	"57362a0189988576ae8c7013e2f92d00000147f22ebbf7a4a7c702a8d7ddfb353d86c389234b5b08b80830f090fbef57" \
	"3774370000015b8599fa2f5e9692f9675364ea9adc9ad0fc3233545f13da862dde98c4c97fb6950000018d8f24e71a9d" \
	"b98943f0f4e50200b34303933e40ddd03800cf696aa55eb7839184000001cbbf3def2ebcc5306e384ec079e873ddd8b8" \
	"8f0cb19db5048c310edb15b8423b8700000208235d2e91e4b433aacbaba40e5a9e2b55a5c39f5e148bbb351e2318d69d" \
	"93998b00000209d28390a78657215267e210de65bcb5f60cad6ebebd71f1b4c9cb17599248447300000214101b59623d" \
	"b293c3b77e9e9ab278b2f3779c0d36cb4fd67b5a38073c1639482d000002266ffaf122729e09fb466c65acd9230fd8fd" \
	"0592174c11824a7f6360252f243bac0000023176ff90aefe71e227c9d5c6c0b52d87be8c88588683b4029fa2db734779" \
	"1fe83d000002398f32c70ea01731cd93f2bf8657e091c6560ae4dd7715a9eb30c7e67aff9e9731000002491df445ea85" \
	"19537e70bf5a3ecba97fc12e19f8289058ed876489cf4019e0882b0000024c270ccece4723d9e5ad7435f68fa653a984" \
	"185e9b6585304393ef775694760ca10000024ef62fa2274de4a92babdeef30eb7da76382d65973c3f6e9ec3a094830c6" \
	"1e87ba0000025179c3f1ef6b1fb4a60380b34e73b38cd6b759e572758db6d51371905a9caa1f4b0000025665a690b1cd" \
	"10e3575881c3c0b9faca28bdd327c55971406019a35379a1addf45000002634b68efb5b16ae520722a0bdd19a51bfe5b" \
	"4754e97c4f5c395be1dead65377396000002904b1abbf1c747d9ad4778349a3abaf564df0375c388c2b1b432315d4da6" \
	"b44cdf00000311a73ad0ed89fc1963899fbeb2f2abd0e4831484d6dfd653feec99237b4becaf3d00000340f93b70367f" \
	"aed5b53b44897abef85a776246f44e945e62b06a3b580c567bc4a6000003486cf3fa5477ea3f353460d5b734d933d34c" \
	"e8d3fab9054e0992a473d61d3f8e2900000361eabebcc8d215ebe950c5f5cb1e24b520e0dbe916e009220c03dbd77aa9" \
	"2cb4c900000390b0aa4cd634e8fcb2c725cf7fa5ffaeba3e32c9f65a9f1011fdc836d45b4594b4000003a600ac3ebdb3" \
	"913ec66a9ba116d51c73ca9c0fa35f333508bcc4049b62cace68e6"
#define V_KEY_RING_BOX \
	"1ec46abd3cdf867a5ab3fa84cb3d76fb96775f45f4af89d6c8a16510bd183ff897aed47b18aea373e44774880759a551" \
	"0f7fe5f5986b5126d6369615e50c9b0d3785483e191540e4f5f8efb99967d1ae552c6e20a516c1fac07f25ce3be55ea1" \
	"1fb193505702d17f8298056adf380a526f9cf70ba0e76e118aaef671f7c2312e72431848cf1075a11cf939cb5e68bc1b" \
	"914f907e452db62c2a75f824b6266ee8719a8586e2654a041aa1eea7dc46b7ddba34c2cab5f0e3d32281e7ff343a8fca" \
	"5619aa264ccab26d3d74902331335eb0065ec2219f910f125434300a8b6a85f8a77f594d3930c3a5a0c0cad61ab72718" \
	"94e674cd44189001735afbaa2112cd968bdd825592106251d472627196a8cce14bf533a2bc8abc2b1ee942f333eaad90" \
	"6f1b930255fc2c3694edce43a411f7dca0ce8d2379914bed43419680f12881db97649bf3a6403e3be8e01cc2b7b6b535" \
	"500e33961e322a8b0dc21dd1ebe14ddd491509f161db51234e31a5fe54c614138f1ec5df59e4a85861e16cab56cd02a2" \
	"e4eea7031da1e6f5bd2f2840387bea37c3e3907905d54c551eeaeb6bf69cf5eb26ec1e73c11a4a97918e20ea4543e88d" \
	"968d3128b01a0ce1503870ce5e829ff67744b1372a7557790c2c38660bd8c85c2b5da53b7cd2a7c99a7f9dba656db798" \
	"1464585b574f24e668113e886d15ad0ae7c08ac6aa92f71049668f8c589b5ad9ba36cba06dda816082cf85f2a64b981e" \
	"fb8ef46b939befd4a2b4032f7bfb4c608a2c87eada91bf78646348dd5314f4b6e080365bb985466cb5c5622c2567155e" \
	"2a6df445fd2d370099225caf1c352ad5022a9d729d80c30d793cc9793af504cfa9fce72806dd585a51b361957cc757d6" \
	"8cff96cd54fe8d71e18397ea6855eb4b0a2b932afa19f8d4c736d1d3a884f4e145d4f70ced903a935dcf5f209105fc3b" \
	"d8452ec0685425b62ff16d28dd1aa71af4a2e39b0590c54dbd4dc60217217aec9c80cd5423d4132b6a6ab2af4d2c8a04" \
	"8bc0aa4617e8f2d5ff9ffa95c84a9302231566a4ee212e4c61ef0300793412cadee1c74d8d82b2d00dc8291e99f19491" \
	"a776ef02b74cc1a2a7db499110eee8564ffeec9be5424f14ea162417c6a394578bf11b611b87fcf7da8da20f3f721d63" \
	"31dad437dff32fbbe0c4ec643b4b3daa9a5072b299b0eda0b995908d69799f5397fbadde20cf58303403be935c5378db" \
	"1d2aed317f7a57fb41069e8a48a63d07d4b24b82a5927946cdd58341e6ee8bb549dbf457babb1bb9b7c83c73178cd22b" \
	"e5e776b0b9a3f7ac6e407c283144cd7eee9964b7119ad4bca9d5f3abdfe8759cc70b82d8ea225b8e5c0aaa32efc0df58" \
	"2964a936a7246bfb9b5d77eb3b7e0559e04ea5bd1892340d640553feab2845f4fa8e58a8af5ffde77c632f7ab484b60e" \
	"84fcfbea74f260d4fbe9e97278f435a786d312e196959e1fece292779a573e907c6c994296e8c000c4c653ec2db4ce6c" \
	"d3f8cb1330b6586ac1068020de51eef3e8307d2e4a18eb4d9416b861ba5a93797cfc2d4222a9b17e9924e0798da9da70" \
	"6818d47902a3ee9910255dc7e592b2793a8ee596dd1327d8bf5cb59360c0967a1fdffeaa0c98dba4722321"
static const uint32_t V_RING4_A[] = {31,173,520,561};
static const uint32_t V_RING4_D[] = {158,298,379,638};
#define V_FILE_KEY \
	"3e84d872389edf410426859de946805411f30be2e2899061e00fd7c978f27c7d"
#define V_FILE_PLAIN \
	"0464656d6f01610000000000000001000003e80000000401d75ec5d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f6" \
	"0ac7ab15880bf3da0000001f68f35d925dd6365f0b9f6cbcfabb44f7ae3ef54cfc407181edf5c873d0b7ca94000000ad" \
	"d24ea3f30e9aa067d09406f46961e8788937df30e66ed3e18083fa2b7be45a5d00000208235d2e91e4b433aacbaba40e" \
	"5a9e2b55a5c39f5e148bbb351e2318d69d93998b0000023176ff90aefe71e227c9d5c6c0b52d87be8c88588683b4029f" \
	"a2db7347791fe83d0000000000000003000000040000009e0000012a0000017b0000027e000000010164"
#define V_FILE_BYTES \
	"49474b52494e4731e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f78521bd3f5f0982365c70c4f0092b09f8" \
	"1cc103abe80550422d174d3e74ad8b379355a5125d795a70268c7d157267fbd0cc11cba198d8b0377187f4d08e359090" \
	"38135b3e7d3498afba8c6b7e8c931a885eaf08823ba345bcea1eda22d24c5bc6e1bfd0b196f5a3abc3e7e74c731a2279" \
	"e56569038de68e5c154fa90d291861f237334542121fe73a66473695c802792fec0cc39b35903c6fe2f27d067b34e63d" \
	"f8d6263f9f58cd5168a347ac4e7eb08eea35bcb871edb41b9c1d71efd988ce66dffe9e9706caa113477746d6b17634a8" \
	"0fa025b82feed55ef97530822c4cda8972cf022bbe75d54186325a1b470984b47aa613d05dca02dc249a"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Field by field: struct copies need not carry padding bytes. */
static bool params_eq(const ig_kp_params *a, const ig_kp_params *b)
{
	return a->epoch == b->epoch && a->pool == b->pool && a->ring == b->ring && a->q == b->q &&
	       memcmp(a->seed, b->seed, 32) == 0;
}

static bool hello_eq(const ig_kp_hello *a, const ig_kp_hello *b)
{
	if (a->kind != b->kind || a->epoch != b->epoch || a->source != b->source || memcmp(a->na, b->na, 32) != 0)
		return false;
	if (a->kind == 2 && memcmp(a->nb, b->nb, 32) != 0)
		return false;
	if (a->source == 0)
		return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof a->ids[0]) == 0;
	return memcmp(a->path_id, b->path_id, 16) == 0 && strcmp(a->via, b->via) == 0;
}

static bool path_eq(const ig_kp_path *a, const ig_kp_path *b)
{
	if (a->kind != b->kind || a->epoch != b->epoch || a->n != b->n ||
	    memcmp(a->ids, b->ids, a->n * sizeof a->ids[0]) != 0 || strcmp(a->b, b->b) != 0 ||
	    memcmp(a->req_id, b->req_id, 16) != 0)
		return false;
	if (a->kind == 1)
		return true;
	return strcmp(a->a, b->a) == 0 && memcmp(a->path_id, b->path_id, 16) == 0 &&
	       memcmp(a->box_nonce, b->box_nonce, 24) == 0;
}

/* Epoch-1 pool secret from the cluster-head seed 00..1f, as every vector uses. */
static void vec_pool_secret(uint8_t ps[32])
{
	uint8_t ch_seed[32];
	tu_seq_bytes(ch_seed, 32, 0x00);
	ig_kp_pool_secret(ps, ch_seed, 1);
}

static void vec_params(ig_kp_params *p, uint32_t ring)
{
	uint8_t ps[32];
	memset(p, 0, sizeof *p);
	vec_pool_secret(ps);
	p->epoch = 1;
	p->pool = 1000;
	p->ring = ring;
	p->q = 1;
	ig_kp_ring_seed(p->seed, ps);
}

/* The pool keys of ids[0..n). */
static uint8_t (*keys_of(const uint32_t *ids, size_t n))[32]
{
	uint8_t ps[32];
	vec_pool_secret(ps);
	uint8_t(*k)[32] = calloc(n ? n : 1, 32);
	cr_assert_not_null(k);
	for (size_t i = 0; i < n; i++)
		ig_kp_pool_key(k[i], ps, ids[i]);
	return k;
}

static void assert_ids(const uint32_t *got, const uint32_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "id %zu: %u, expected %u", i, got[i], want[i]);
}

/* K_xy over all of ring60's shared ids (q = 1), as the vectors define it. */
static void vec_pair(uint8_t out[32], const char *x, const char *y, const uint32_t *ids, size_t n)
{
	uint8_t(*k)[32] = keys_of(ids, n);
	cr_assert_eq(ig_kp_pair_key(out, 1, x, y, ids, (const uint8_t(*)[32])k, n), IG_OK);
	free(k);
}

Test(kp_vectors, derivations, .init = setup)
{
	uint8_t ps[32], seed[32], k[32];
	vec_pool_secret(ps);
	tu_assert_hex(ps, 32, V_POOL_SECRET);
	ig_kp_ring_seed(seed, ps);
	tu_assert_hex(seed, 32, V_RING_SEED);
	ig_kp_pool_key(k, ps, 0);
	tu_assert_hex(k, 32, V_POOL_KEY_0);
	ig_kp_pool_key(k, ps, 1);
	tu_assert_hex(k, 32, V_POOL_KEY_1);
	ig_kp_pool_key(k, ps, 16777215);
	tu_assert_hex(k, 32, V_POOL_KEY_16777215);
}

Test(kp_vectors, ring_ids_and_hash, .init = setup)
{
	ig_kp_params p;
	vec_params(&p, 30);
	/* Block 0 of "a" is the documented HMAC: check the message layout. */
	uint8_t msg[64], block[32];
	size_t n = 0;
	memcpy(msg, "iotguard kp ring ids v1", 23);
	n = 23;
	msg[n++] = 0;
	msg[n++] = 'a';
	msg[n++] = 0;
	memset(msg + n, 0, 4);
	crypto_auth_hmacsha256(block, msg, n + 4, p.seed);
	tu_assert_hex(block, 32, V_RING_A_BLOCK0);

	uint32_t ids[60];
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "a", 1000, 30), IG_OK);
	assert_ids(ids, V_RING30_A, 30);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "b", 1000, 30), IG_OK);
	assert_ids(ids, V_RING30_B, 30);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "d", 1000, 30), IG_OK);
	assert_ids(ids, V_RING30_D, 30);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "a", 1000, 60), IG_OK);
	assert_ids(ids, V_RING60_A, 60);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "b", 1000, 60), IG_OK);
	assert_ids(ids, V_RING60_B, 60);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "c", 1000, 60), IG_OK);
	assert_ids(ids, V_RING60_C, 60);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "a", 1000, 4), IG_OK);
	assert_ids(ids, V_RING4_A, 4);
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "d", 1000, 4), IG_OK);
	assert_ids(ids, V_RING4_D, 4);

	/* ring30 of a and b share nothing; ring60 shares the documented ids. */
	uint32_t sh[64];
	cr_assert_eq(ig_kp_shared(sh, 64, V_RING30_A, 30, V_RING30_B, 30, NULL, 0), 0u);
	cr_assert_eq(ig_kp_shared(sh, 64, V_RING60_A, 60, V_RING60_B, 60, NULL, 0), N_OF(V_RING60_AB));
	assert_ids(sh, V_RING60_AB, N_OF(V_RING60_AB));
	cr_assert_eq(ig_kp_shared(sh, 64, V_RING60_A, 60, V_RING60_C, 60, NULL, 0), N_OF(V_RING60_AC));
	assert_ids(sh, V_RING60_AC, N_OF(V_RING60_AC));
	cr_assert_eq(ig_kp_shared(sh, 64, V_RING60_B, 60, V_RING60_C, 60, NULL, 0), N_OF(V_RING60_BC));
	assert_ids(sh, V_RING60_BC, N_OF(V_RING60_BC));

	uint8_t(*k)[32] = keys_of(V_RING30_A, 30), h[32];
	ig_kp_ring_hash(h, 1, "a", V_RING30_A, (const uint8_t(*)[32])k, 30);
	tu_assert_hex(h, 32, V_RING30_A_HASH);
	free(k);
}

Test(kp_vectors, pair_keys, .init = setup)
{
	uint8_t k[32];
	vec_pair(k, "a", "b", V_RING60_AB, N_OF(V_RING60_AB));
	tu_assert_hex(k, 32, V_PAIR_AB);
	vec_pair(k, "b", "a", V_RING60_AB, N_OF(V_RING60_AB));
	tu_assert_hex(k, 32, V_PAIR_AB);
	vec_pair(k, "a", "c", V_RING60_AC, N_OF(V_RING60_AC));
	tu_assert_hex(k, 32, V_PAIR_AC);
	vec_pair(k, "c", "b", V_RING60_BC, N_OF(V_RING60_BC));
	tu_assert_hex(k, 32, V_PAIR_BC);
}

static void vec_hello(ig_kp_hello *h, uint8_t kind, uint8_t source)
{
	memset(h, 0, sizeof *h);
	h->kind = kind;
	h->epoch = 1;
	h->source = source;
	if (source == 0) {
		h->n = (uint16_t)N_OF(V_RING60_AB);
		memcpy(h->ids, V_RING60_AB, sizeof V_RING60_AB);
	} else {
		tu_seq_bytes(h->path_id, 16, 0xc0);
		strcpy(h->via, "c");
	}
	tu_seq_bytes(h->na, 32, 0x40);
	if (kind == 2)
		tu_seq_bytes(h->nb, 32, 0x60);
}

Test(kp_vectors, hellos_sessions_and_data, .init = setup)
{
	uint8_t kab[32], pathk[32], msg[IG_KP_HELLO_MAX], key[32], kid[16];
	vec_pair(kab, "a", "b", V_RING60_AB, N_OF(V_RING60_AB));
	tu_seq_bytes(pathk, 32, 0xa0);
	struct {
		uint8_t kind, source;
		const uint8_t *K;
		const char *topic, *hex;
	} v[] = {
		{1, 0, kab, V_TOPIC_BA, V_HELLO_DIRECT_KIND1},
		{2, 0, kab, V_TOPIC_AB, V_HELLO_DIRECT_KIND2},
		{1, 1, pathk, V_TOPIC_BA, V_HELLO_PATH_KIND1},
		{2, 1, pathk, V_TOPIC_AB, V_HELLO_PATH_KIND2},
	};
	for (size_t i = 0; i < N_OF(v); i++) {
		ig_kp_hello h, back;
		vec_hello(&h, v[i].kind, v[i].source);
		int n = ig_kp_hello_build(msg, sizeof msg, &h, v[i].K, v[i].topic);
		cr_assert_gt(n, 0, "hello %zu", i);
		tu_assert_hex(msg, (size_t)n, v[i].hex);
		cr_assert_eq(ig_kp_hello_parse(&back, msg, (size_t)n), IG_OK);
		cr_assert(hello_eq(&back, &h), "hello %zu does not parse back to its fields", i);
		cr_assert_eq(ig_kp_hello_verify(msg, (size_t)n, v[i].K, v[i].topic), IG_OK);
	}

	uint8_t na[32], nb[32];
	tu_seq_bytes(na, 32, 0x40);
	tu_seq_bytes(nb, 32, 0x60);
	ig_kp_session(key, kid, kab, na, nb, "a", "b");
	tu_assert_hex(key, 32, V_SESSION_DIRECT_KEY);
	tu_assert_hex(kid, 16, V_SESSION_DIRECT_KEY_ID);

	uint8_t dm[64], pt[16];
	int n = ig_m2m_seal_v(dm, sizeof dm, 2, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 1, V_TOPIC_BA,
	                      (const uint8_t *)"hello", 5);
	cr_assert_eq(n, 47);
	tu_assert_hex(dm, 47, V_DATA_DIRECT_DIR0);
	ig_m2m_header hd;
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, dm, 47, 2, key, 0, V_TOPIC_BA, &hd), 5);
	cr_assert_arr_eq(pt, "hello", 5);
	cr_assert_eq(hd.version, 2);
	n = ig_m2m_seal_v(dm, sizeof dm, 2, IG_SUITE_XCHACHA20POLY1305, key, kid, 1, 1, V_TOPIC_AB,
	                  (const uint8_t *)"hello", 5);
	cr_assert_eq(n, 47);
	tu_assert_hex(dm, 47, V_DATA_DIRECT_DIR1);

	ig_kp_session(key, kid, pathk, na, nb, "a", "b");
	tu_assert_hex(key, 32, V_SESSION_PATH_KEY);
	tu_assert_hex(kid, 16, V_SESSION_PATH_KEY_ID);
}

static void vec_path(ig_kp_path *p, uint8_t kind, const uint32_t *ids, size_t n)
{
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->epoch = 1;
	p->n = (uint16_t)n;
	memcpy(p->ids, ids, n * sizeof *ids);
	if (kind == 2)
		strcpy(p->a, "a");
	strcpy(p->b, "b");
	tu_seq_bytes(p->req_id, 16, 0xd0);
	if (kind == 2) {
		tu_seq_bytes(p->path_id, 16, 0xc0);
		tu_seq_bytes(p->box_nonce, 24, 0x80);
	}
}

Test(kp_vectors, path_messages, .init = setup)
{
	uint8_t kac[32], kbc[32], pathk[32], msg[IG_KP_PATH_MAX], got[32];
	vec_pair(kac, "a", "c", V_RING60_AC, N_OF(V_RING60_AC));
	vec_pair(kbc, "b", "c", V_RING60_BC, N_OF(V_RING60_BC));
	tu_seq_bytes(pathk, 32, 0xa0);
	ig_kp_path p, back;

	vec_path(&p, 1, V_RING60_AC, N_OF(V_RING60_AC));
	int n = ig_kp_path_request_build(msg, sizeof msg, &p, kac, "iotguard/demo/m2m/c/a");
	cr_assert_gt(n, 0);
	tu_assert_hex(msg, (size_t)n, V_PATH_REQUEST);
	cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)n), IG_OK);
	cr_assert(path_eq(&back, &p));
	cr_assert_eq(ig_kp_path_request_verify(msg, (size_t)n, kac, "iotguard/demo/m2m/c/a"), IG_OK);

	vec_path(&p, 2, V_RING60_AC, N_OF(V_RING60_AC));
	n = ig_kp_path_key_build(msg, sizeof msg, &p, kac, "iotguard/demo/m2m/a/c", pathk);
	cr_assert_gt(n, 0);
	tu_assert_hex(msg, (size_t)n, V_PATH_KEY_TO_A);
	cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)n), IG_OK);
	cr_assert(path_eq(&back, &p));
	cr_assert_eq(ig_kp_path_key_open(got, msg, (size_t)n, kac, "iotguard/demo/m2m/a/c"), IG_OK);
	cr_assert_arr_eq(got, pathk, 32);

	vec_path(&p, 2, V_RING60_BC, N_OF(V_RING60_BC));
	n = ig_kp_path_key_build(msg, sizeof msg, &p, kbc, "iotguard/demo/m2m/b/c", pathk);
	cr_assert_gt(n, 0);
	tu_assert_hex(msg, (size_t)n, V_PATH_KEY_TO_B);
	cr_assert_eq(ig_kp_path_key_open(got, msg, (size_t)n, kbc, "iotguard/demo/m2m/b/c"), IG_OK);
	cr_assert_arr_eq(got, pathk, 32);
}

static void vec_revoked(ig_kp_revoked *r)
{
	memset(r, 0, sizeof *r);
	strcpy(r->cluster, "demo");
	vec_params(&r->params, 30);
	r->serial = 3;
	r->n_ids = 30;
	r->ids = malloc(30 * sizeof *r->ids);
	cr_assert_not_null(r->ids);
	memcpy(r->ids, V_RING30_D, sizeof V_RING30_D);
	r->n_devices = 1;
	r->devices = calloc(1, sizeof *r->devices);
	cr_assert_not_null(r->devices);
	strcpy(r->devices[0], "d");
}

Test(kp_vectors, revoked_statement, .init = setup)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	tu_assert_hex(pk, 32, V_CH_PK);
	ig_kp_revoked r, back;
	vec_revoked(&r);
	uint8_t *bytes;
	size_t blen;
	cr_assert_eq(ig_kp_revoked_bytes(&bytes, &blen, &r), IG_OK);
	tu_assert_hex(bytes, blen, V_REVOKED_BYTES);
	free(bytes);

	char *json = ig_kp_revoked_json(&r, sk);
	cr_assert_not_null(json);
	cr_assert_str_eq(json, V_REVOKED_JSON);
	ig_error err;
	cr_assert_eq(ig_kp_revoked_parse(&back, (const uint8_t *)V_REVOKED_JSON, strlen(V_REVOKED_JSON), pk, &err),
	             IG_OK, "%s", err.msg);
	cr_assert_str_eq(back.cluster, "demo");
	cr_assert(params_eq(&back.params, &r.params));
	cr_assert_eq(back.serial, 3u);
	cr_assert_eq(back.n_ids, 30u);
	assert_ids(back.ids, V_RING30_D, 30);
	cr_assert_eq(back.n_devices, 1u);
	cr_assert_str_eq(back.devices[0], "d");
	ig_kp_revoked_free(&back);
	cr_assert_null(back.ids);
	free(json);
	ig_kp_revoked_free(&r);
}

Test(kp_vectors, key_ring_plaintext_and_box, .init = setup)
{
	ig_kp_params p, back;
	vec_params(&p, 30);
	uint8_t(*k)[32] = keys_of(V_RING30_A, 30);
	uint8_t plain[2048];
	int n = ig_kp_ring_plain(plain, sizeof plain, &p, "a", V_RING30_A, (const uint8_t(*)[32])k);
	cr_assert_gt(n, 0);
	tu_assert_hex(plain, (size_t)n, V_KEY_RING_PLAIN);

	uint32_t ids[IG_KP_RING_MAX];
	uint8_t(*keys)[32] = calloc(IG_KP_RING_MAX, 32);
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, plain, (size_t)n, "a"), IG_OK);
	cr_assert(params_eq(&back, &p));
	assert_ids(ids, V_RING30_A, 30);
	cr_assert_eq(memcmp(keys, k, 30 * 32), 0);

	/* The documented box opens to the same plaintext under the box key. */
	uint8_t bk[32], box[2048], nonce[24], opened[2048];
	tu_unhex(bk, 32, V_BOX_KEY);
	size_t blen = tu_unhex(box, sizeof box, V_KEY_RING_BOX);
	tu_seq_bytes(nonce, 24, 0x60);
	cr_assert_eq(blen, (size_t)n + crypto_box_MACBYTES);
	cr_assert_eq(crypto_box_open_easy_afternm(opened, box, blen, nonce, bk), 0);
	cr_assert_arr_eq(opened, plain, (size_t)n);
	free(keys);
	free(k);
}

Test(kp_vectors, ring_file, .init = setup)
{
	uint8_t seed[32], fk[32], pk[32], file[1024], want[1024];
	tu_seq_bytes(seed, 32, 0x20);
	ig_kp_file_key(fk, seed);
	tu_assert_hex(fk, 32, V_FILE_KEY);
	tu_unhex(pk, 32, V_DEV_PK);
	size_t flen = tu_unhex(file, sizeof file, V_FILE_BYTES);
	size_t plen = tu_unhex(want, sizeof want, V_FILE_PLAIN);
	uint8_t *plain;
	size_t got;
	cr_assert_eq(ig_kp_file_open(&plain, &got, fk, pk, file, flen), IG_OK);
	cr_assert_eq(got, plen);
	cr_assert_arr_eq(plain, want, plen);
	free(plain);
}

/* ---- parameters and derivations ------------------------------------------------ */

Test(kp_params, ranges, .init = setup)
{
	ig_kp_params p;
	ig_error err;
	vec_params(&p, 30);
	cr_assert_eq(ig_kp_params_check(&p, &err), IG_OK);
	struct {
		uint64_t epoch;
		uint32_t pool, ring;
		uint8_t q;
		int ok;
		const char *field;
	} c[] = {
		{1, 2, 1, 1, 1, ""},           {1, IG_KP_POOL_MAX, IG_KP_RING_MAX, IG_KP_Q_MAX, 1, ""},
		{1, 2, 2, 2, 1, ""},           {0, 1000, 30, 1, 0, "epoch"},
		{1, 1, 1, 1, 0, "pool"},       {1, IG_KP_POOL_MAX + 1, 30, 1, 0, "pool"},
		{1, 0, 1, 1, 0, "pool"},       {1, 1000, 0, 1, 0, "ring"},
		{1, 2000, IG_KP_RING_MAX + 1, 1, 0, "ring"}, {1, 10, 11, 1, 0, "ring"},
		{1, 1000, 30, 0, 0, "q"},      {1, 1000, 30, IG_KP_Q_MAX + 1, 0, "q"},
		{1, 1000, 3, 4, 0, "q"},
	};
	for (size_t i = 0; i < N_OF(c); i++) {
		p.epoch = c[i].epoch;
		p.pool = c[i].pool;
		p.ring = c[i].ring;
		p.q = c[i].q;
		memset(&err, 0, sizeof err);
		int rc = ig_kp_params_check(&p, &err);
		if (c[i].ok) {
			cr_assert_eq(rc, IG_OK, "case %zu: %s", i, err.msg);
		} else {
			cr_assert_eq(rc, IG_ERR_INVAL, "case %zu accepted", i);
			cr_assert_not_null(strstr(err.msg, c[i].field), "case %zu: \"%s\" does not name %s", i, err.msg,
			                   c[i].field);
		}
	}
	cr_assert_eq(ig_kp_params_check(NULL, NULL), IG_ERR_INVAL);
}

Test(kp_derive, distinct_per_epoch_and_index, .init = setup)
{
	uint8_t ch[32], s1[32], s2[32], k0[32], k1[32], seed[32];
	tu_seq_bytes(ch, 32, 0);
	ig_kp_pool_secret(s1, ch, 1);
	ig_kp_pool_secret(s2, ch, 2);
	cr_assert_neq(memcmp(s1, s2, 32), 0, "epochs share a pool secret");
	ch[0] ^= 1;
	ig_kp_pool_secret(s2, ch, 1);
	cr_assert_neq(memcmp(s1, s2, 32), 0, "the pool secret ignores the cluster-head seed");
	ig_kp_pool_key(k0, s1, 0);
	ig_kp_pool_key(k1, s1, 1 << 8);
	cr_assert_neq(memcmp(k0, k1, 32), 0);
	ig_kp_ring_seed(seed, s1);
	cr_assert_neq(memcmp(seed, s1, 32), 0, "the public seed reveals the pool secret");
	cr_assert_neq(memcmp(seed, k0, 32), 0);
}

/* The batched derivation the cluster head deals rings with gives the same
 * bytes as one HKDF per id (the vectors pin ig_kp_pool_key). */
Test(kp_derive, batched_pool_keys_equal_single_ones, .init = setup)
{
	uint8_t ch[32], ps[32], one[32], many[5][32];
	const uint32_t ids[5] = {0, 1, 255, 65536, 16777215};
	tu_seq_bytes(ch, 32, 7);
	ig_kp_pool_secret(ps, ch, 3);
	ig_kp_pool_keys(many, ps, ids, 5);
	for (size_t i = 0; i < 5; i++) {
		ig_kp_pool_key(one, ps, ids[i]);
		cr_assert_eq(memcmp(one, many[i], 32), 0, "pool key %u differs when batched", ids[i]);
	}
	ig_kp_pool_keys(many, ps, ids, 0);   /* nothing to do is fine */
}

/* ---- A.1 ring ids ----------------------------------------------------------------- */

static bool ids_valid(const uint32_t *ids, size_t n, uint32_t pool)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= pool || (i > 0 && ids[i] <= ids[i - 1]))
			return false;
	return true;
}

Test(kp_ring, distinct_ascending_in_range, .init = setup)
{
	uint8_t seed[32];
	tu_rand_bytes(seed, 32);
	static uint32_t ids[IG_KP_RING_MAX], again[IG_KP_RING_MAX];
	struct {
		uint32_t pool, ring;
	} c[] = {{2, 1}, {2, 2}, {7, 7}, {1000, 30}, {1024, 1024}, {1025, 1024}, {IG_KP_POOL_MAX, IG_KP_RING_MAX},
	         {IG_KP_POOL_MAX - 1, 200}, {10000, 75}};
	for (size_t i = 0; i < N_OF(c); i++) {
		cr_assert_eq(ig_kp_ring_ids(ids, seed, "dev-1", c[i].pool, c[i].ring), IG_OK, "case %zu", i);
		cr_assert(ids_valid(ids, c[i].ring, c[i].pool), "case %zu: ids not distinct/ascending/in range", i);
		if (c[i].ring == c[i].pool)
			for (uint32_t j = 0; j < c[i].ring; j++)
				cr_assert_eq(ids[j], j, "a ring of the whole pool must be every id");
		cr_assert_eq(ig_kp_ring_ids(again, seed, "dev-1", c[i].pool, c[i].ring), IG_OK);
		cr_assert_arr_eq(ids, again, c[i].ring * sizeof ids[0], "not deterministic");
	}
	/* Another device or another seed: another ring. */
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "dev-1", 1000000, 100), IG_OK);
	cr_assert_eq(ig_kp_ring_ids(again, seed, "dev-2", 1000000, 100), IG_OK);
	cr_assert_neq(memcmp(ids, again, 100 * sizeof ids[0]), 0);
	seed[31] ^= 0x80;
	cr_assert_eq(ig_kp_ring_ids(again, seed, "dev-1", 1000000, 100), IG_OK);
	cr_assert_neq(memcmp(ids, again, 100 * sizeof ids[0]), 0);
	/* A shorter ring of the same device is the first ids it chose. */
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "dev-1", 1000, 60), IG_OK);
	cr_assert_eq(ig_kp_ring_ids(again, seed, "dev-1", 1000, 30), IG_OK);
	for (size_t i = 0; i < 30; i++) {
		bool found = false;
		for (size_t j = 0; j < 60; j++)
			found = found || ids[j] == again[i];
		cr_assert(found);
	}
}

Test(kp_ring, refusals, .init = setup)
{
	uint8_t seed[32] = {0};
	uint32_t ids[64];
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a", 1, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a", IG_KP_POOL_MAX + 1, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a", 100, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a", 10, 11), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a", 5000, IG_KP_RING_MAX + 1), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "", 100, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "a/b", 100, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, seed, NULL, 100, 10), IG_ERR_INVAL);
	char long_id[IG_ID_MAX + 2];
	memset(long_id, 'x', IG_ID_MAX + 1);
	long_id[IG_ID_MAX + 1] = '\0';
	cr_assert_eq(ig_kp_ring_ids(ids, seed, long_id, 100, 10), IG_ERR_INVAL);
	long_id[IG_ID_MAX] = '\0';
	cr_assert_eq(ig_kp_ring_ids(ids, seed, long_id, 100, 10), IG_OK);
	cr_assert_eq(ig_kp_ring_ids(NULL, seed, "a", 100, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_ring_ids(ids, NULL, "a", 100, 10), IG_ERR_INVAL);
}

/* A.1 written again from the text, with or without the rejection of words
 * >= limit; returns how many words it rejected. */
static size_t ref_ring(uint32_t *ids, const uint8_t seed[32], const char *dev, uint32_t pool, uint32_t ring,
                       bool reject)
{
	uint8_t msg[128], block[32];
	size_t n = 0, rejected = 0, chosen = 0;
	memcpy(msg, "iotguard kp ring ids v1", 23);
	n = 23;
	msg[n++] = 0;
	memcpy(msg + n, dev, strlen(dev));
	n += strlen(dev);
	msg[n++] = 0;
	uint64_t limit = (1ull << 32) - ((1ull << 32) % pool);
	for (uint32_t j = 0; chosen < ring; j++) {
		ig_put_u32(msg + n, j);
		crypto_auth_hmacsha256(block, msg, n + 4, seed);
		for (size_t w = 0; w < 8 && chosen < ring; w++) {
			uint32_t x = ig_get_u32(block + 4 * w);
			if (x >= limit) {
				rejected++;
				if (reject)
					continue;
			}
			uint32_t c = x % pool;
			bool dup = false;
			for (size_t k = 0; k < chosen; k++)
				dup = dup || ids[k] == c;
			if (!dup)
				ids[chosen++] = c;
		}
	}
	for (size_t i = 1; i < chosen; i++) /* insertion sort */
		for (size_t k = i; k > 0 && ids[k - 1] > ids[k]; k--) {
			uint32_t t = ids[k];
			ids[k] = ids[k - 1];
			ids[k - 1] = t;
		}
	return rejected;
}

Test(kp_ring, rejection_sampling_when_pool_does_not_divide_2_32, .init = setup)
{
	/* P = 2^23 + 1: 2^32 mod P = 8388097, so about one word in 512 is at or
	 * above the limit. Find a device whose ring meets such a word, and check
	 * the ring equals the text's (rejecting) ring and not the biased one. */
	const uint32_t pool = (1u << 23) + 1, ring = 1024;
	uint8_t seed[32];
	tu_seq_bytes(seed, 32, 0x11);
	static uint32_t got[1024], with[1024], without[1024];
	bool met = false;
	for (int d = 0; d < 20 && !met; d++) {
		char dev[16];
		snprintf(dev, sizeof dev, "d%d", d);
		size_t rej = ref_ring(with, seed, dev, pool, ring, true);
		cr_assert_eq(ig_kp_ring_ids(got, seed, dev, pool, ring), IG_OK);
		cr_assert_arr_eq(got, with, sizeof got, "device %s: ring differs from the text's", dev);
		if (rej > 0) {
			ref_ring(without, seed, dev, pool, ring, false);
			cr_assert_neq(memcmp(got, without, sizeof got), 0, "device %s: a rejected word was used", dev);
			met = true;
		}
	}
	cr_assert(met, "no device met a rejected word in 20 tries (p < 1e-17): the test lost its point");
	/* A power-of-two pool rejects nothing: limit is 2^32. */
	cr_assert_eq(ref_ring(with, seed, "d0", 1u << 24, ring, true), 0u);
	cr_assert_eq(ig_kp_ring_ids(got, seed, "d0", 1u << 24, ring), IG_OK);
	cr_assert_arr_eq(got, with, sizeof got);
}

/* ---- A.2 ring hash, A.3 shared ids and the pairwise key ---------------------------- */

Test(kp_ring, hash_covers_every_field, .init = setup)
{
	uint32_t ids[3] = {1, 5, 9};
	uint8_t keys[3][32], h0[32], h[32];
	tu_rand_bytes(&keys[0][0], sizeof keys);
	ig_kp_ring_hash(h0, 1, "a", ids, (const uint8_t(*)[32])keys, 3);
	ig_kp_ring_hash(h, 2, "a", ids, (const uint8_t(*)[32])keys, 3);
	cr_assert_neq(memcmp(h, h0, 32), 0, "epoch not covered");
	ig_kp_ring_hash(h, 1, "b", ids, (const uint8_t(*)[32])keys, 3);
	cr_assert_neq(memcmp(h, h0, 32), 0, "device not covered");
	ig_kp_ring_hash(h, 1, "a", ids, (const uint8_t(*)[32])keys, 2);
	cr_assert_neq(memcmp(h, h0, 32), 0, "m not covered");
	ids[2] = 10;
	ig_kp_ring_hash(h, 1, "a", ids, (const uint8_t(*)[32])keys, 3);
	cr_assert_neq(memcmp(h, h0, 32), 0, "ids not covered");
	ids[2] = 9;
	keys[1][31] ^= 1;
	ig_kp_ring_hash(h, 1, "a", ids, (const uint8_t(*)[32])keys, 3);
	cr_assert_neq(memcmp(h, h0, 32), 0, "keys not covered");
	keys[1][31] ^= 1;
	ig_kp_ring_hash(h, 1, "a", ids, (const uint8_t(*)[32])keys, 3);
	cr_assert_arr_eq(h, h0, 32);
}

Test(kp_shared, intersection_minus_bad_lowest_first, .init = setup)
{
	const uint32_t a[] = {1, 3, 5, 7, 9, 11, 13}, b[] = {0, 3, 4, 5, 9, 13, 20}, bad[] = {2, 5, 12};
	uint32_t out[8];
	cr_assert_eq(ig_kp_shared(out, 8, a, N_OF(a), b, N_OF(b), NULL, 0), 4u);
	const uint32_t w1[] = {3, 5, 9, 13};
	assert_ids(out, w1, 4);
	cr_assert_eq(ig_kp_shared(out, 8, b, N_OF(b), a, N_OF(a), bad, N_OF(bad)), 3u);
	const uint32_t w2[] = {3, 9, 13};
	assert_ids(out, w2, 3);
	cr_assert_eq(ig_kp_shared(out, 2, a, N_OF(a), b, N_OF(b), bad, N_OF(bad)), 2u);
	assert_ids(out, w2, 2);
	cr_assert_eq(ig_kp_shared(out, 0, a, N_OF(a), b, N_OF(b), NULL, 0), 0u);
	cr_assert_eq(ig_kp_shared(out, 8, a, 0, b, N_OF(b), NULL, 0), 0u);
	cr_assert_eq(ig_kp_shared(out, 8, a, N_OF(a), a, N_OF(a), a, N_OF(a)), 0u);
	/* At most 64 of a big intersection, the lowest. */
	static uint32_t big[200], o64[200];
	for (uint32_t i = 0; i < 200; i++)
		big[i] = 2 * i;
	cr_assert_eq(ig_kp_shared(o64, IG_KP_PAIR_MAX_IDS, big, 200, big, 200, NULL, 0), 64u);
	cr_assert_eq(o64[63], 126u);
}

Test(kp_pair, symmetric_and_bound_to_everything, .init = setup)
{
	uint32_t ids[IG_KP_PAIR_MAX_IDS + 1];
	uint8_t keys[IG_KP_PAIR_MAX_IDS + 1][32], k1[32], k2[32];
	for (uint32_t i = 0; i <= IG_KP_PAIR_MAX_IDS; i++)
		ids[i] = 3 * i + 1;
	tu_rand_bytes(&keys[0][0], sizeof keys);
	const uint8_t(*K)[32] = (const uint8_t(*)[32])keys;
	cr_assert_eq(ig_kp_pair_key(k1, 7, "sensor-1", "gateway", ids, K, 5), IG_OK);
	cr_assert_eq(ig_kp_pair_key(k2, 7, "gateway", "sensor-1", ids, K, 5), IG_OK);
	cr_assert_arr_eq(k1, k2, 32, "K_AB is not symmetric");
	cr_assert_eq(ig_kp_pair_key(k2, 8, "gateway", "sensor-1", ids, K, 5), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0, "epoch not bound");
	cr_assert_eq(ig_kp_pair_key(k2, 7, "gateway", "sensor-2", ids, K, 5), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0, "peer not bound");
	cr_assert_eq(ig_kp_pair_key(k2, 7, "gateway", "sensor-1", ids, K, 4), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0, "n not bound");
	ids[4] += 1;
	cr_assert_eq(ig_kp_pair_key(k2, 7, "gateway", "sensor-1", ids, K, 5), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0, "ids not bound");
	ids[4] -= 1;
	keys[0][0] ^= 1;
	cr_assert_eq(ig_kp_pair_key(k2, 7, "gateway", "sensor-1", ids, K, 5), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0, "keys not bound");
	/* "ab" vs "a" + "b": the length bytes keep the two ids apart. */
	cr_assert_eq(ig_kp_pair_key(k1, 7, "ab", "c", ids, K, 5), IG_OK);
	cr_assert_eq(ig_kp_pair_key(k2, 7, "a", "bc", ids, K, 5), IG_OK);
	cr_assert_neq(memcmp(k1, k2, 32), 0);

	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b", ids, K, IG_KP_PAIR_MAX_IDS), IG_OK);
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b", ids, K, IG_KP_PAIR_MAX_IDS + 1), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b", ids, K, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "a", ids, K, 5), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b c", ids, K, 5), IG_ERR_INVAL);
	uint32_t bad[3] = {5, 5, 9};
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b", bad, K, 3), IG_ERR_INVAL, "repeated id accepted");
	bad[1] = 4;
	cr_assert_eq(ig_kp_pair_key(k1, 7, "a", "b", bad, K, 3), IG_ERR_INVAL, "descending ids accepted");
}

Test(kp_session, roles_and_nonces_bound, .init = setup)
{
	uint8_t K[32], na[32], nb[32], k1[32], i1[16], k2[32], i2[16];
	tu_rand_bytes(K, 32);
	tu_rand_bytes(na, 32);
	tu_rand_bytes(nb, 32);
	ig_kp_session(k1, i1, K, na, nb, "a", "b");
	ig_kp_session(k2, i2, K, na, nb, "a", "b");
	cr_assert_arr_eq(k1, k2, 32);
	cr_assert_arr_eq(i1, i2, 16);
	ig_kp_session(k2, i2, K, na, nb, "b", "a");
	cr_assert_neq(memcmp(k1, k2, 32), 0, "roles not bound");
	ig_kp_session(k2, i2, K, nb, na, "a", "b");
	cr_assert_neq(memcmp(k1, k2, 32), 0, "nonce order not bound");
	nb[0] ^= 1;
	ig_kp_session(k2, i2, K, na, nb, "a", "b");
	cr_assert_neq(memcmp(k1, k2, 32), 0, "NB not bound");
	cr_assert_neq(memcmp(i1, i2, 16), 0);
	cr_assert_neq(memcmp(k1, i1, 16), 0, "the key id leaks the key");
}

/* ---- A.4 hello ------------------------------------------------------------------ */

#define TOPIC_BA "iotguard/demo/m2m/b/a"

static int build_hello(uint8_t *msg, size_t cap, const ig_kp_hello *h, const uint8_t K[32])
{
	return ig_kp_hello_build(msg, cap, h, K, TOPIC_BA);
}

Test(kp_hello, every_shape_round_trips, .init = setup)
{
	uint8_t K[32], msg[IG_KP_HELLO_MAX];
	tu_rand_bytes(K, 32);
	for (uint8_t kind = 1; kind <= 2; kind++) {
		for (uint8_t src = 0; src <= 1; src++) {
			ig_kp_hello h, back;
			vec_hello(&h, kind, src);
			h.epoch = 0x0102030405060708ull;
			if (src == 0) {
				h.n = IG_KP_PAIR_MAX_IDS;
				for (uint32_t i = 0; i < h.n; i++)
					h.ids[i] = IG_KP_POOL_MAX - IG_KP_PAIR_MAX_IDS + i;
			} else {
				memset(h.via, 'v', IG_ID_MAX);
				h.via[IG_ID_MAX] = '\0';
			}
			int n = build_hello(msg, sizeof msg, &h, K);
			cr_assert_gt(n, 0);
			cr_assert_leq(n, IG_KP_HELLO_MAX);
			if (kind == 2 && src == 0)
				cr_assert_eq(n, IG_KP_HELLO_MAX, "the largest hello is IG_KP_HELLO_MAX");
			cr_assert_eq(ig_kp_hello_parse(&back, msg, (size_t)n), IG_OK);
			cr_assert(hello_eq(&back, &h));
			cr_assert_eq(ig_kp_hello_verify(msg, (size_t)n, K, TOPIC_BA), IG_OK);
			cr_assert_eq(build_hello(msg, (size_t)n - 1, &h, K), IG_ERR_RANGE);
		}
	}
}

Test(kp_hello, tamper_wrong_key_wrong_topic, .init = setup)
{
	uint8_t K[32], K2[32], msg[IG_KP_HELLO_MAX], m[IG_KP_HELLO_MAX];
	tu_rand_bytes(K, 32);
	memcpy(K2, K, 32);
	K2[5] ^= 0x20;
	for (uint8_t src = 0; src <= 1; src++) {
		ig_kp_hello h, back;
		vec_hello(&h, 2, src);
		int n = build_hello(msg, sizeof msg, &h, K);
		cr_assert_gt(n, 0);
		cr_assert_eq(ig_kp_hello_verify(msg, (size_t)n, K2, TOPIC_BA), IG_ERR_CRYPTO);
		cr_assert_eq(ig_kp_hello_verify(msg, (size_t)n, K, "iotguard/demo/m2m/a/b"), IG_ERR_CRYPTO);
		cr_assert_eq(ig_kp_hello_verify(msg, (size_t)n, K, "iotguard/other/m2m/b/a"), IG_ERR_CRYPTO);
		for (int i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit += 3) {
				memcpy(m, msg, (size_t)n);
				m[i] ^= (uint8_t)(1 << bit);
				int rc = ig_kp_hello_verify(m, (size_t)n, K, TOPIC_BA);
				cr_assert(rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL, "byte %d bit %d: tamper accepted (%d)", i,
				          bit, rc);
				if (ig_kp_hello_parse(&back, m, (size_t)n) == IG_OK)
					cr_assert_eq(rc, IG_ERR_CRYPTO);
			}
		}
		for (int len = 0; len < n; len++)
			cr_assert_eq(ig_kp_hello_parse(&back, msg, (size_t)len), IG_ERR_INVAL, "truncated to %d parsed", len);
		memcpy(m, msg, (size_t)n);
		m[n] = 0;
		cr_assert_eq(ig_kp_hello_parse(&back, m, (size_t)n + 1), IG_ERR_INVAL, "trailing byte accepted");
	}
}

Test(kp_hello, malformed_refused, .init = setup)
{
	uint8_t K[32], msg[IG_KP_HELLO_MAX + 64];
	tu_rand_bytes(K, 32);
	ig_kp_hello h, back;
	vec_hello(&h, 1, 0);
	int n = build_hello(msg, sizeof msg, &h, K);
	cr_assert_gt(n, 0);
	const size_t len = (size_t)n;
	uint8_t m[sizeof msg];
#define MUT(stmt, what)                                                               \
	do {                                                                              \
		memcpy(m, msg, len);                                                          \
		stmt;                                                                         \
		cr_assert_eq(ig_kp_hello_parse(&back, m, len), IG_ERR_INVAL, "%s accepted", what); \
	} while (0)
	MUT(m[0] = 1, "version 1");
	MUT(m[0] = 4, "version 4");
	MUT(m[1] = 0, "kind 0");
	MUT(m[1] = 3, "kind 3");
	MUT(memset(m + 2, 0, 8), "epoch 0");
	MUT(m[10] = 2, "source 2");
	MUT(ig_put_u16(m + 11, 0), "n = 0");
	MUT(ig_put_u16(m + 11, 65), "n = 65");
	MUT(ig_put_u16(m + 11, 6), "n larger than the message");
	MUT(ig_put_u32(m + 13 + 4, h.ids[0]), "a repeated id");
	MUT(ig_put_u32(m + 13, h.ids[1] + 1), "descending ids");
	MUT(ig_put_u32(m + 13 + 16, IG_KP_POOL_MAX), "an id above any pool");
#undef MUT

	/* Builders refuse what the parser would. */
	ig_kp_hello bad = h;
	bad.n = 0;
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad = h;
	bad.n = 65;
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad = h;
	bad.ids[1] = bad.ids[0];
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad = h;
	bad.kind = 3;
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad = h;
	bad.source = 2;
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad = h;
	bad.epoch = 0;
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_hello_build(msg, sizeof msg, &h, K, ""), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_hello_build(msg, sizeof msg, &h, K, NULL), IG_ERR_INVAL);

	/* Source 1: the intermediary id. */
	vec_hello(&h, 1, 1);
	n = build_hello(msg, sizeof msg, &h, K);
	cr_assert_gt(n, 0);
	memcpy(m, msg, (size_t)n);
	m[27] = 0;
	cr_assert_eq(ig_kp_hello_parse(&back, m, (size_t)n), IG_ERR_INVAL, "empty via accepted");
	memcpy(m, msg, (size_t)n);
	m[28] = '/';
	cr_assert_eq(ig_kp_hello_parse(&back, m, (size_t)n), IG_ERR_INVAL, "via with '/' accepted");
	memcpy(m, msg, (size_t)n);
	m[27] = 65;
	cr_assert_eq(ig_kp_hello_parse(&back, m, (size_t)n), IG_ERR_INVAL, "via of 65 bytes accepted");
	bad = h;
	strcpy(bad.via, "c d");
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
	bad.via[0] = '\0';
	cr_assert_eq(build_hello(msg, sizeof msg, &bad, K), IG_ERR_INVAL);
}

/* ---- A.5 version-2 data messages ------------------------------------------------- */

Test(kp_m2m_v2, round_trip_and_separation_from_v1, .init = setup)
{
	uint8_t key[32], kid[16], msg[128], pt[64];
	tu_rand_bytes(key, 32);
	tu_rand_bytes(kid, 16);
	ig_m2m_header h;
	int n = ig_m2m_seal_v(msg, sizeof msg, 2, IG_SUITE_XCHACHA20POLY1305, key, kid, 1, 9, TOPIC_BA,
	                      (const uint8_t *)"data", 4);
	cr_assert_eq(n, IG_M2M_HEADER_BYTES + 4 + 16);
	cr_assert_eq(msg[0], 2);
	cr_assert_eq(ig_m2m_parse_header_v(msg, (size_t)n, 2, &h), IG_OK);
	cr_assert_eq(h.counter, 9u);
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 2, key, 1, TOPIC_BA, &h), 4);
	cr_assert_arr_eq(pt, "data", 4);
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 2, key, 0, TOPIC_BA, &h), IG_ERR_CRYPTO);
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 2, key, 1, "iotguard/demo/m2m/a/b", &h),
	             IG_ERR_CRYPTO);
	/* A v2 message is not a v1 message, even with its version byte changed:
	 * the AAD label differs. */
	cr_assert_eq(ig_m2m_parse_header(msg, (size_t)n, &h), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 1, TOPIC_BA, &h), IG_ERR_INVAL);
	msg[0] = 1;
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 1, TOPIC_BA, &h), IG_ERR_CRYPTO);
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 2, key, 1, TOPIC_BA, &h), IG_ERR_INVAL);
	/* And the other way round. */
	n = ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 1, TOPIC_BA, (const uint8_t *)"x", 1);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 1, key, 0, TOPIC_BA, &h), 1);
	msg[0] = 2;
	cr_assert_eq(ig_m2m_open_v(pt, sizeof pt, msg, (size_t)n, 2, key, 0, TOPIC_BA, &h), IG_ERR_CRYPTO);
}

Test(kp_m2m_v2, suite_2_only_and_known_versions, .init = setup)
{
	uint8_t key[32] = {0}, kid[16] = {0}, msg[128];
	ig_m2m_header h;
	cr_assert_eq(ig_m2m_seal_v(msg, sizeof msg, 2, IG_SUITE_AES256GCM, key, kid, 0, 1, TOPIC_BA,
	                           (const uint8_t *)"x", 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal_v(msg, sizeof msg, 3, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 1, TOPIC_BA,
	                           (const uint8_t *)"x", 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal_v(msg, sizeof msg, 0, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 1, TOPIC_BA,
	                           (const uint8_t *)"x", 1), IG_ERR_INVAL);
	int n = ig_m2m_seal_v(msg, sizeof msg, 2, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 1, TOPIC_BA,
	                      (const uint8_t *)"x", 1);
	cr_assert_gt(n, 0);
	msg[1] = IG_SUITE_AES256GCM;
	cr_assert_eq(ig_m2m_parse_header_v(msg, (size_t)n, 2, &h), IG_ERR_INVAL, "v2 with suite 1 parsed");
	msg[1] = IG_SUITE_XCHACHA20POLY1305;
	cr_assert_eq(ig_m2m_parse_header_v(msg, (size_t)n, 3, &h), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_parse_header_v(msg, (size_t)n, 2, &h), IG_OK);
}

/* ---- A.6 path messages --------------------------------------------------------------- */

#define TOPIC_CA "iotguard/demo/m2m/c/a"
#define TOPIC_AC "iotguard/demo/m2m/a/c"

Test(kp_path, request_round_trip_and_tamper, .init = setup)
{
	uint8_t K[32], K2[32], msg[IG_KP_PATH_MAX], m[IG_KP_PATH_MAX];
	tu_rand_bytes(K, 32);
	memcpy(K2, K, 32);
	K2[0] ^= 1;
	ig_kp_path p, back;
	vec_path(&p, 1, V_RING60_AC, N_OF(V_RING60_AC));
	int n = ig_kp_path_request_build(msg, sizeof msg, &p, K, TOPIC_CA);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)n), IG_OK);
	cr_assert_str_eq(back.a, "");
	cr_assert_eq(ig_kp_path_request_verify(msg, (size_t)n, K, TOPIC_CA), IG_OK);
	cr_assert_eq(ig_kp_path_request_verify(msg, (size_t)n, K2, TOPIC_CA), IG_ERR_CRYPTO);
	cr_assert_eq(ig_kp_path_request_verify(msg, (size_t)n, K, TOPIC_AC), IG_ERR_CRYPTO);
	uint8_t pk[32];
	cr_assert_eq(ig_kp_path_key_open(pk, msg, (size_t)n, K, TOPIC_CA), IG_ERR_INVAL, "a request opened as a key");
	for (int i = 0; i < n; i++) {
		memcpy(m, msg, (size_t)n);
		m[i] ^= 0x04;
		int rc = ig_kp_path_request_verify(m, (size_t)n, K, TOPIC_CA);
		cr_assert(rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL, "byte %d: tamper accepted", i);
	}
	for (int len = 0; len < n; len++)
		cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)len), IG_ERR_INVAL, "truncated to %d parsed", len);
	/* A hello's mac key and label cannot stand in for a path mac. */
	memcpy(m, msg, (size_t)n);
	m[0] = 3;
	cr_assert_eq(ig_kp_path_parse(&back, m, (size_t)n), IG_ERR_INVAL);
	memcpy(m, msg, (size_t)n);
	m[1] = 3;
	cr_assert_eq(ig_kp_path_parse(&back, m, (size_t)n), IG_ERR_INVAL);

	ig_kp_path bad = p;
	bad.b[0] = '\0';
	cr_assert_eq(ig_kp_path_request_build(msg, sizeof msg, &bad, K, TOPIC_CA), IG_ERR_INVAL);
	bad = p;
	bad.n = 0;
	cr_assert_eq(ig_kp_path_request_build(msg, sizeof msg, &bad, K, TOPIC_CA), IG_ERR_INVAL);
	bad = p;
	bad.ids[2] = bad.ids[1];
	cr_assert_eq(ig_kp_path_request_build(msg, sizeof msg, &bad, K, TOPIC_CA), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_path_request_build(msg, (size_t)n - 1, &p, K, TOPIC_CA), IG_ERR_RANGE);
}

Test(kp_path, key_round_trip_nonce_and_refusals, .init = setup)
{
	uint8_t K[32], K2[32], pathk[32], got[32], msg[IG_KP_PATH_MAX], m[IG_KP_PATH_MAX];
	tu_rand_bytes(K, 32);
	tu_rand_bytes(pathk, 32);
	memcpy(K2, K, 32);
	K2[31] ^= 1;
	ig_kp_path p, back;
	vec_path(&p, 2, V_RING60_AC, N_OF(V_RING60_AC));
	memset(p.box_nonce, 0, sizeof p.box_nonce);
	int n = ig_kp_path_key_build(msg, sizeof msg, &p, K, TOPIC_AC, pathk);
	cr_assert_gt(n, 0);
	cr_assert(!tu_all_zero(p.box_nonce, 24), "an all-zero box nonce was not replaced by a random one");
	uint8_t first_nonce[24];
	memcpy(first_nonce, p.box_nonce, 24);
	cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)n), IG_OK);
	cr_assert(path_eq(&back, &p));
	cr_assert_eq(ig_kp_path_key_open(got, msg, (size_t)n, K, TOPIC_AC), IG_OK);
	cr_assert_arr_eq(got, pathk, 32);
	cr_assert_eq(ig_kp_path_key_open(got, msg, (size_t)n, K2, TOPIC_AC), IG_ERR_CRYPTO);
	cr_assert_eq(ig_kp_path_key_open(got, msg, (size_t)n, K, "iotguard/demo/m2m/b/c"), IG_ERR_CRYPTO);
	cr_assert_eq(ig_kp_path_request_verify(msg, (size_t)n, K, TOPIC_AC), IG_ERR_INVAL, "a key verified as a request");
	for (int i = 0; i < n; i++) {
		memcpy(m, msg, (size_t)n);
		m[i] ^= 0x40;
		int rc = ig_kp_path_key_open(got, m, (size_t)n, K, TOPIC_AC);
		cr_assert(rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL, "byte %d: tamper accepted", i);
	}
	for (int len = 0; len < n; len++)
		cr_assert_eq(ig_kp_path_parse(&back, msg, (size_t)len), IG_ERR_INVAL, "truncated to %d parsed", len);

	/* A second build draws a new nonce; a given one is kept. */
	memset(p.box_nonce, 0, sizeof p.box_nonce);
	cr_assert_gt(ig_kp_path_key_build(m, sizeof m, &p, K, TOPIC_AC, pathk), 0);
	cr_assert_neq(memcmp(p.box_nonce, first_nonce, 24), 0);
	tu_seq_bytes(p.box_nonce, 24, 0x80);
	n = ig_kp_path_key_build(m, sizeof m, &p, K, TOPIC_AC, pathk);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_kp_path_parse(&back, m, (size_t)n), IG_OK);
	cr_assert_eq(back.box_nonce[0], 0x80);

	ig_kp_path bad = p;
	strcpy(bad.a, bad.b);
	cr_assert_eq(ig_kp_path_key_build(m, sizeof m, &bad, K, TOPIC_AC, pathk), IG_ERR_INVAL, "A == B built");
	bad = p;
	bad.a[0] = '\0';
	cr_assert_eq(ig_kp_path_key_build(m, sizeof m, &bad, K, TOPIC_AC, pathk), IG_ERR_INVAL);
	cr_assert_eq(ig_kp_path_key_build(m, (size_t)n - 1, &p, K, TOPIC_AC, pathk), IG_ERR_RANGE);
	/* A == B on the wire: rewrite "a" to "b" in a parsed message. */
	memcpy(m, msg, sizeof msg);
	size_t at = 12 + 4 * N_OF(V_RING60_AC);
	cr_assert_eq(m[at], 1);
	cr_assert_eq(m[at + 1], 'a');
	m[at + 1] = 'b';
	cr_assert_eq(ig_kp_path_parse(&back, m, (size_t)n), IG_ERR_INVAL, "requester == target parsed");
	m[at + 1] = '*';
	cr_assert_eq(ig_kp_path_parse(&back, m, (size_t)n), IG_ERR_INVAL, "invalid requester id parsed");
}

/* ---- A.7 the revoked statement ---------------------------------------------------------- */

/* Signs r's bytes with sk and writes the JSON by hand, so a statement whose
 * contents break a rule still carries a valid signature. */
static char *forge_json(const ig_kp_revoked *r, const uint8_t sk[64])
{
	uint8_t *b, sig[64];
	size_t blen;
	cr_assert_eq(ig_kp_revoked_bytes(&b, &blen, r), IG_OK);
	crypto_sign_detached(sig, NULL, b, blen, sk);
	free(b);
	char seed[65], sigh[129];
	ig_hex_encode(seed, r->params.seed, 32);
	ig_hex_encode(sigh, sig, 64);
	size_t cap = 4096 + 12 * r->n_ids + 70 * r->n_devices;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	size_t o = (size_t)snprintf(s, cap,
	                            "{\"type\":\"kp_revoked\",\"cluster\":\"%s\",\"epoch\":%llu,\"pool\":%u,\"ring\":%u,"
	                            "\"q\":%u,\"seed\":\"%s\",\"serial\":%llu,\"ids\":[",
	                            r->cluster, (unsigned long long)r->params.epoch, r->params.pool, r->params.ring,
	                            r->params.q, seed, (unsigned long long)r->serial);
	for (size_t i = 0; i < r->n_ids; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s%u", i ? "," : "", r->ids[i]);
	o += (size_t)snprintf(s + o, cap - o, "],\"devices\":[");
	for (size_t i = 0; i < r->n_devices; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s\"%s\"", i ? "," : "", r->devices[i]);
	snprintf(s + o, cap - o, "],\"sig\":\"%s\"}", sigh);
	return s;
}

static int parse_str(const char *json, const uint8_t pk[32], ig_error *err)
{
	ig_kp_revoked r;
	int rc = ig_kp_revoked_parse(&r, (const uint8_t *)json, strlen(json), pk, err);
	if (rc == IG_OK)
		ig_kp_revoked_free(&r);
	else
		cr_assert_null(r.ids, "a refused statement left its arrays behind");
	return rc;
}

Test(kp_revoked, round_trip_and_signature, .init = setup)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	tu_seed_keypair(pk, sk, 0x00);
	tu_seed_keypair(pk2, sk2, 0x40);
	ig_kp_revoked r;
	vec_revoked(&r);
	ig_error err;
	char *forged = forge_json(&r, sk);
	cr_assert_str_eq(forged, V_REVOKED_JSON, "the test's JSON writer disagrees with the vector");
	free(forged);
	char *json = ig_kp_revoked_json(&r, sk);
	cr_assert_eq(parse_str(json, pk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(parse_str(json, pk2, &err), IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "signature"));
	free(json);

	/* Signed by another key, or a field changed after signing. */
	json = ig_kp_revoked_json(&r, sk2);
	cr_assert_eq(parse_str(json, pk, &err), IG_ERR_CRYPTO);
	free(json);
	const char *edits[][2] = {{"\"serial\":3", "\"serial\":4"}, {"\"epoch\":1", "\"epoch\":2"},
	                          {"\"q\":1", "\"q\":2"},          {"\"ring\":30", "\"ring\":31"},
	                          {"\"pool\":1000", "\"pool\":1001"}, {"\"demo\"", "\"dem0\""},
	                          {"[\"d\"]", "[\"e\"]"},           {"[112,", "[111,"},
	                          {"\"seed\":\"d7", "\"seed\":\"d8"}};
	for (size_t i = 0; i < N_OF(edits); i++) {
		char buf[2048];
		const char *at = strstr(V_REVOKED_JSON, edits[i][0]);
		cr_assert_not_null(at, "edit %zu", i);
		size_t pre = (size_t)(at - V_REVOKED_JSON);
		snprintf(buf, sizeof buf, "%.*s%s%s", (int)pre, V_REVOKED_JSON, edits[i][1], at + strlen(edits[i][0]));
		cr_assert_eq(parse_str(buf, pk, &err), IG_ERR_CRYPTO, "edit %zu (%s) accepted", i, edits[i][1]);
	}
	/* Removing an id or a device is a change too. */
	r.n_ids = 29;
	json = forge_json(&r, sk2);
	cr_assert_eq(parse_str(json, pk, &err), IG_ERR_CRYPTO);
	free(json);

	/* The empty statement (no compromise yet) is valid. */
	r.n_ids = 0;
	r.n_devices = 0;
	json = ig_kp_revoked_json(&r, sk);
	cr_assert_not_null(json);
	cr_assert_eq(parse_str(json, pk, &err), IG_OK, "%s", err.msg);
	free(json);
	r.n_ids = 30;
	r.n_devices = 1;
	ig_kp_revoked_free(&r);
}

Test(kp_revoked, ordering_and_ranges_refused_even_when_signed, .init = setup)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	ig_error err;
	ig_kp_revoked r;
	vec_revoked(&r);
	r.devices = realloc(r.devices, 3 * sizeof *r.devices);
	r.n_devices = 3;
	strcpy(r.devices[0], "D");
	strcpy(r.devices[1], "a");
	strcpy(r.devices[2], "d");
	char *json = forge_json(&r, sk);
	cr_assert_eq(parse_str(json, pk, &err), IG_OK, "bytewise ascending devices refused: %s", err.msg);
	free(json);
	json = ig_kp_revoked_json(&r, sk);
	cr_assert_not_null(json);
	free(json);

	static const char *const cases[] = {
		"a repeated id", "descending ids", "an id == pool", "an id far above pool", "a repeated device",
		"devices out of order", "an invalid device id", "q > ring", "q = 0", "ring > pool", "pool = 1",
		"epoch 0", "an invalid cluster",
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		ig_kp_revoked t;
		vec_revoked(&t);
		t.devices = realloc(t.devices, 3 * sizeof *t.devices);
		t.n_devices = 3;
		memcpy(t.devices, r.devices, 3 * sizeof *r.devices);
		switch (i) {
		case 0: t.ids[3] = t.ids[2]; break;
		case 1: { uint32_t x = t.ids[3]; t.ids[3] = t.ids[4]; t.ids[4] = x; } break;
		case 2: t.ids[29] = 1000; break;
		case 3: t.ids[29] = 0xffffffffu; break;
		case 4: strcpy(t.devices[1], "D"); break;
		case 5: strcpy(t.devices[0], "a"); strcpy(t.devices[1], "D"); break;
		case 6: strcpy(t.devices[2], "d/e"); break;
		case 7: t.params.q = 31; break;
		case 8: t.params.q = 0; break;
		case 9: t.params.ring = 1001; break;
		case 10: t.params.pool = 1; break;
		case 11: t.params.epoch = 0; break;
		default: strcpy(t.cluster, "de mo"); break;
		}
		cr_assert_null(ig_kp_revoked_json(&t, sk), "%s: the JSON writer signed it", cases[i]);
		uint8_t *b;
		size_t bl;
		if (ig_kp_revoked_bytes(&b, &bl, &t) == IG_OK) {
			free(b);
			json = forge_json(&t, sk);
			cr_assert_eq(parse_str(json, pk, &err), IG_ERR_INVAL, "%s accepted", cases[i]);
			free(json);
		}
		ig_kp_revoked_free(&t);
	}
	ig_kp_revoked_free(&r);
}

Test(kp_revoked, malformed_json_refused, .init = setup)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	ig_error err;
	const char *V = V_REVOKED_JSON;
	char buf[4096];
	cr_assert_eq(parse_str(V, pk, &err), IG_OK);
	snprintf(buf, sizeof buf, "%s  \n", V);
	cr_assert_eq(parse_str(buf, pk, &err), IG_OK, "trailing whitespace refused");
	snprintf(buf, sizeof buf, "%s x", V);
	cr_assert_eq(parse_str(buf, pk, &err), IG_ERR_INVAL, "trailing text accepted");
	snprintf(buf, sizeof buf, "%.*s,\"extra\":1}", (int)strlen(V) - 1, V);
	cr_assert_eq(parse_str(buf, pk, &err), IG_ERR_INVAL, "unknown member accepted");
	snprintf(buf, sizeof buf, "%.*s,\"serial\":3}", (int)strlen(V) - 1, V);
	cr_assert_eq(parse_str(buf, pk, &err), IG_ERR_INVAL, "repeated member accepted");
	const char *bad[][2] = {
		{"\"type\":\"kp_revoked\"", "\"type\":\"kp_revoke\""},
		{"\"devices\":[\"d\"]", "\"devices\":[\"d\\u0000x\"]"},
		{"\"devices\":[\"d\"]", "\"devices\":[\"\\u0064\"]"},
		{"\"devices\":[\"d\"]", "\"devices\":[1]"},
		{"\"devices\":[\"d\"]", "\"devices\":\"d\""},
		{"\"ids\":[112,", "\"ids\":[112.5,"},
		{"\"ids\":[112,", "\"ids\":[-1,"},
		{"\"ids\":[112,", "\"ids\":[\"112\","},
		{"\"seed\":\"d7", "\"seed\":\"D7"},
		{"\"epoch\":1", "\"epoch\":1e300"},
		{"\"epoch\":1", "\"epoch\":0"},
		{"\"q\":1", "\"q\":256"},
		{"\"serial\":3", "\"serial\":-3"},
		{"\"sig\":\"f8", "\"sig\":\"F8"},
		{"\"sig\":\"f8", "\"sig\":\"f"},
	};
	for (size_t i = 0; i < N_OF(bad); i++) {
		const char *at = strstr(V, bad[i][0]);
		cr_assert_not_null(at, "case %zu", i);
		snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - V), V, bad[i][1], at + strlen(bad[i][0]));
		cr_assert_eq(parse_str(buf, pk, &err), IG_ERR_INVAL, "case %zu (%s) accepted", i, bad[i][1]);
	}
	/* Each member missing. */
	const char *members[] = {"type", "cluster", "epoch", "pool", "ring", "q", "seed", "serial", "ids", "devices", "sig"};
	for (size_t i = 0; i < N_OF(members); i++) {
		ig_kp_revoked r;
		cr_assert_eq(ig_kp_revoked_parse(&r, (const uint8_t *)V, strlen(V), pk, NULL), IG_OK);
		char needle[32];
		snprintf(needle, sizeof needle, "\"%s\":", members[i]);
		const char *at = strstr(V, needle);
		cr_assert_not_null(at);
		/* cut the member up to the next top-level comma (arrays are skipped whole) */
		const char *end = at + strlen(needle);
		int depth = 0;
		while (*end && !(depth == 0 && (*end == ',' || *end == '}'))) {
			depth += *end == '[';
			depth -= *end == ']';
			end++;
		}
		if (*end == ',')
			end++;
		else if (at[-1] == ',')
			at--;
		snprintf(buf, sizeof buf, "%.*s%s", (int)(at - V), V, end);
		cr_assert_eq(ig_kp_revoked_parse(&r, (const uint8_t *)buf, strlen(buf), pk, &err), IG_ERR_INVAL,
		             "statement without %s accepted: %s", members[i], buf);
		ig_kp_revoked_free(&r);
	}
	cr_assert_eq(parse_str("[]", pk, &err), IG_ERR_INVAL);
	cr_assert_eq(parse_str("{}", pk, &err), IG_ERR_INVAL);
	cr_assert_eq(parse_str("", pk, &err), IG_ERR_INVAL);
	uint8_t nul[] = "{\"type\":\0}";
	ig_kp_revoked r;
	cr_assert_eq(ig_kp_revoked_parse(&r, nul, sizeof nul - 1, pk, &err), IG_ERR_INVAL);
}

/* ---- A.8 ring plaintext ------------------------------------------------------------------- */

Test(kp_ring_plain, refusals, .init = setup)
{
	ig_kp_params p, back;
	vec_params(&p, 30);
	uint32_t ids[IG_KP_RING_MAX];
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, "a", p.pool, p.ring), IG_OK);
	uint8_t(*k)[32] = keys_of(ids, 30);
	uint8_t(*keys)[32] = calloc(IG_KP_RING_MAX, 32);
	uint8_t plain[2048], m[2048];
	int n = ig_kp_ring_plain(plain, sizeof plain, &p, "a", ids, (const uint8_t(*)[32])k);
	cr_assert_eq(n, 49 + 1 + 1 + 36 * 30);
	cr_assert_eq(ig_kp_ring_plain(plain, (size_t)n - 1, &p, "a", ids, (const uint8_t(*)[32])k), IG_ERR_RANGE);
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, plain, (size_t)n, "b"), IG_ERR_INVAL,
	             "a ring for a opened as b's");
	for (int len = 0; len < n; len++)
		cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, plain, (size_t)len, "a"), IG_ERR_INVAL, "len %d", len);
	memcpy(m, plain, (size_t)n);
	m[n] = 0;
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, m, (size_t)n + 1, "a"), IG_ERR_INVAL);
	/* Every other header byte and every id byte is checked (the ids
	 * against the seed, pool, ring and device); the epoch is the caller's
	 * to compare with the message, and the key bytes are the payload. */
	size_t head = 49 + 1 + 1;
	for (size_t i = 8; i < (size_t)n; i++) {
		bool in_key = i >= head && (i - head) % 36 >= 4;
		if (in_key)
			continue;
		memcpy(m, plain, (size_t)n);
		m[i] ^= 0x01;
		int rc = ig_kp_ring_plain_parse(&back, ids, keys, m, (size_t)n, "a");
		cr_assert_eq(rc, IG_ERR_INVAL, "byte %zu changed and still parsed", i);
	}
	memcpy(m, plain, (size_t)n);
	m[7] = 9;
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, m, (size_t)n, "a"), IG_OK);
	cr_assert_eq(back.epoch, 9u);
	m[7] = 0;
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, m, (size_t)n, "a"), IG_ERR_INVAL, "epoch 0 parsed");
	cr_assert_eq(ig_kp_ring_plain_parse(&back, ids, keys, plain, (size_t)n, "a"), IG_OK);
	/* Ids that are not the ring of the seed: refused on both sides. */
	ids[0] ^= 1;
	if (ids[0] < ids[1])
		cr_assert_eq(ig_kp_ring_plain(m, sizeof m, &p, "a", ids, (const uint8_t(*)[32])k) > 0, 1);
	ids[1] = ids[0];
	cr_assert_eq(ig_kp_ring_plain(m, sizeof m, &p, "a", ids, (const uint8_t(*)[32])k), IG_ERR_INVAL);
	p.q = 0;
	cr_assert_eq(ig_kp_ring_plain(m, sizeof m, &p, "a", ids, (const uint8_t(*)[32])k), IG_ERR_INVAL);
	free(keys);
	free(k);
}

/* ---- A.9 the ring file -------------------------------------------------------------------- */

Test(kp_file, seal_open_wrong_key_pk_magic, .init = setup)
{
	uint8_t seed[32], fk[32], fk2[32], pk[32], pk2[32], plain[300];
	tu_rand_bytes(seed, 32);
	ig_kp_file_key(fk, seed);
	seed[0] ^= 1;
	ig_kp_file_key(fk2, seed);
	cr_assert_neq(memcmp(fk, fk2, 32), 0);
	tu_rand_bytes(pk, 32);
	memcpy(pk2, pk, 32);
	pk2[31] ^= 0x80;
	tu_rand_bytes(plain, sizeof plain);
	uint8_t *file, *out, *file2;
	size_t flen, olen, flen2;
	cr_assert_eq(ig_kp_file_seal(&file, &flen, fk, pk, plain, sizeof plain), IG_OK);
	cr_assert_eq(flen, 8 + 24 + sizeof plain + 16);
	cr_assert_arr_eq(file, "IGKRING1", 8);
	cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, flen), IG_OK);
	cr_assert_eq(olen, sizeof plain);
	cr_assert_arr_eq(out, plain, sizeof plain);
	free(out);
	/* Every seal draws its own nonce. */
	cr_assert_eq(ig_kp_file_seal(&file2, &flen2, fk, pk, plain, sizeof plain), IG_OK);
	cr_assert_neq(memcmp(file + 8, file2 + 8, 24), 0);
	free(file2);

	cr_assert_eq(ig_kp_file_open(&out, &olen, fk2, pk, file, flen), IG_ERR_CRYPTO, "opened with the wrong key");
	cr_assert_null(out);
	cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk2, file, flen), IG_ERR_CRYPTO, "opened under another identity");
	file[3] = 'X';
	cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, flen), IG_ERR_INVAL, "bad magic accepted");
	file[3] = 'R';
	for (size_t i = 8; i < flen; i += 7) {
		file[i] ^= 1;
		cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, flen), IG_ERR_CRYPTO, "byte %zu", i);
		file[i] ^= 1;
	}
	for (size_t len = 0; len < 8 + 24 + 16; len++)
		cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, len), IG_ERR_INVAL, "len %zu", len);
	cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, flen - 1), IG_ERR_CRYPTO);
	free(file);

	/* An empty plaintext still seals and opens. */
	cr_assert_eq(ig_kp_file_seal(&file, &flen, fk, pk, NULL, 0), IG_OK);
	cr_assert_eq(ig_kp_file_open(&out, &olen, fk, pk, file, flen), IG_OK);
	cr_assert_eq(olen, 0u);
	free(out);
	free(file);
}
