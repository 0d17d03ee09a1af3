/* tests/fuzz/fuzz_checkpoint.c: fuzzes the signed checkpoint text.
 *
 * Why this exists: checkpoints are published and handed to auditors, who
 * feed them back to `iotguard verify`; the text parser sees whatever they
 * were given. Invariant: with the vector key, verify accepts only the
 * checkpoints that key signed in docs/LEDGER.md section 12 (size 3 over the
 * three-record root of format 1, and of format 2), never a variant of them. */
#include "fuzz_common.h"
#include "ig_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_pk[IG_PK_BYTES];
static ig_checkpoint g_cp;
static char g_text[IG_CHECKPOINT_MAX];
static size_t g_len;
static uint8_t g_root_v2[IG_HASH_BYTES];

static void init(void)
{
	static int done;
	uint8_t sk[IG_SK_BYTES];
	if (done)
		return;
	done = 1;
	fuzz_vector_keypair(g_pk, sk);
	memset(&g_cp, 0, sizeof g_cp);
	FUZZ_ASSERT(ig_checkpoint_origin(g_cp.origin, sizeof g_cp.origin, "demo") >= 0);
	static const uint8_t root[IG_HASH_BYTES] = {
		0x84, 0x70, 0x6b, 0x1b, 0x7a, 0x1f, 0xbb, 0xf3, 0x18, 0x65, 0xf7, 0x94, 0x9f, 0x0b, 0x44, 0x0d,
		0x81, 0x4e, 0x99, 0xbc, 0x77, 0xc2, 0x00, 0xc9, 0xaa, 0x4e, 0x85, 0x0f, 0x10, 0xab, 0x7f, 0xcd,
	};
	g_cp.size = 3;
	memcpy(g_cp.root, root, sizeof root);
	static const uint8_t root_v2[IG_HASH_BYTES] = {
		0x54, 0xc4, 0x69, 0x55, 0xda, 0x5e, 0xda, 0x6d, 0x2d, 0x63, 0xb8, 0x67, 0x97, 0x6d, 0xf1, 0xe3,
		0x12, 0x69, 0xd7, 0x39, 0xe1, 0xc3, 0x37, 0xfb, 0x71, 0xf8, 0xe5, 0x9f, 0xf6, 0x61, 0x70, 0xfc,
	};
	memcpy(g_root_v2, root_v2, sizeof root_v2);
	int n = ig_checkpoint_sign(g_text, sizeof g_text, &g_cp, sk);
	FUZZ_ASSERT(n > 0);
	g_len = (size_t)n;
	sodium_memzero(sk, sizeof sk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	ig_checkpoint cp;
	ig_error err;
	memset(&cp, 0, sizeof cp);
	if (ig_checkpoint_verify((const char *)data, size, "iotguard/demo", g_pk, &cp, &err) == 0) {
		FUZZ_ASSERT(strcmp(cp.origin, g_cp.origin) == 0);
		FUZZ_ASSERT(cp.size == g_cp.size);
		FUZZ_ASSERT(memcmp(cp.root, g_cp.root, sizeof cp.root) == 0 ||
		            memcmp(cp.root, g_root_v2, sizeof cp.root) == 0);
	}
	return 0;
}
