/* tests/fuzz/fuzz_tlogproof.c: fuzzes C2SP tlog-proof texts and the proof verifiers.
 *
 * Why this exists: `iotguard proof verify` and the agents read proof files
 * and proof replies that anyone can have written. Invariants: a text that
 * parses is the one spelling ig_tlogproof_format gives its fields (format
 * reproduces it byte for byte); with the vector key's checkpoint of the
 * docs' example tree (RFC 6962's eight reference entries, docs/LEDGER.md
 * section 13), an inclusion proof passes only for an entry really in it, at
 * its own index; and the parsed hashes, read as a consistency proof from size `index`
 * to that tree, pass only with the true old root. */
#include "fuzz_common.h"
#include "ig_checkpoint.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_tlogproof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_pk[IG_PK_BYTES];
static uint8_t g_leaves[8][IG_HASH_BYTES];
static uint8_t g_roots[9][IG_HASH_BYTES];
static uint8_t g_extra[IG_TLOGPROOF_EXTRA_MAX];
static char g_again[IG_TLOGPROOF_TEXT_MAX + 1];

static void init(void)
{
	static int done;
	static const uint8_t entries[8][16] = {
		{0}, {0x00}, {0x10}, {0x20, 0x21}, {0x30, 0x31}, {0x40, 0x41, 0x42, 0x43},
		{0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
		{0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f},
	};
	static const size_t lens[8] = {0, 1, 1, 2, 2, 4, 8, 16};
	uint8_t sk[IG_SK_BYTES];
	if (done)
		return;
	done = 1;
	fuzz_vector_keypair(g_pk, sk);
	sodium_memzero(sk, sizeof sk);
	for (int i = 0; i < 8; i++)
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, g_leaves[i], entries[i], lens[i]);
	for (int n = 0; n <= 8; n++)
		ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[IG_HASH_BYTES])g_leaves, (uint64_t)n,
		                       g_roots[n]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	ig_tlogproof p;
	ig_error err;
	if (ig_tlogproof_parse(&p, g_extra, sizeof g_extra, (const char *)data, size, &err) != IG_OK)
		return 0;

	int n = ig_tlogproof_format(g_again, sizeof g_again, p.has_extra ? g_extra : NULL, p.extra_len, p.index,
	                            (const uint8_t (*)[IG_HASH_BYTES])p.path, p.n, p.checkpoint, p.checkpoint_len);
	FUZZ_ASSERT(n >= 0 && (size_t)n == size && memcmp(g_again, data, size) == 0);

	/* Consistency from size `index` to the example tree: only the true old
	 * root can pass, and never for a size past 8. */
	const uint8_t (*path)[IG_HASH_BYTES] = (const uint8_t (*)[IG_HASH_BYTES])p.path;
	if (p.n > 0 && ig_proof_consistency_verify(IG_MERKLE_SHA256, p.index, path[0], 8, g_roots[8], path + 1,
	                                           p.n - 1) == IG_OK) {
		FUZZ_ASSERT(p.index <= 8);
		FUZZ_ASSERT(p.index == 0 || memcmp(path[0], g_roots[p.index], IG_HASH_BYTES) == 0);
	}

	ig_checkpoint cp;
	if (ig_checkpoint_verify(p.checkpoint, p.checkpoint_len, "iotguard/demo", g_pk, &cp, &err) != IG_OK ||
	    !p.has_extra)
		return 0;
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, g_extra, p.extra_len);
	/* Checkpoints the vector key signed for other trees (other docs
	 * vectors) say nothing about this one; for the example's tree, only
	 * its own entries at their own indexes pass. */
	if (cp.size == 8 && memcmp(cp.root, g_roots[8], IG_HASH_BYTES) == 0 &&
	    ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, p.index, cp.size, path, p.n, cp.root) == IG_OK)
		FUZZ_ASSERT(p.index < 8 && memcmp(leaf, g_leaves[p.index], IG_HASH_BYTES) == 0);
	return 0;
}
