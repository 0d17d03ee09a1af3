/* tests/fuzz/fuzz_token.c: fuzzes the CONNECT password parser.
 *
 * Why this exists: the token text ("igt1." + base64url) is the first thing
 * the broker reads from an unauthenticated client, before any key lookup.
 * Invariants: decode and parse agree; verify with the docs' vector key only
 * ever accepts the exact binary that key signed (the PROTOCOL.md vector), so
 * a malleable encoding or a forged signature shows up as a crash. */
#include "fuzz_common.h"
#include "ig_token.h"

static uint8_t g_pk[IG_PK_BYTES];
static ig_token_decoded g_vector;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init(void)
{
	static int done;
	uint8_t sk[IG_SK_BYTES];
	uint8_t nonce[IG_TOKEN_NONCE_BYTES];
	char text[IG_TOKEN_TEXT_MAX + 1];
	if (done)
		return;
	done = 1;
	fuzz_vector_keypair(g_pk, sk);
	for (size_t i = 0; i < sizeof nonce; i++)
		nonce[i] = (uint8_t)(0xa0 + i);
	/* The PROTOCOL.md test vector's inputs. */
	int n = ig_token_mint(text, sizeof text, sk, "demo", "sensor-1", 1767225600, 1767225900, nonce);
	FUZZ_ASSERT(n > 0);
	FUZZ_ASSERT(ig_token_decode(&g_vector, text, (size_t)n) == 0);
	sodium_memzero(sk, sizeof sk);
}

/* Field by field: the parsers leave bytes after the strings' NUL as they were. */
static int claims_equal(const ig_token_claims *a, const ig_token_claims *b)
{
	return a->version == b->version && strcmp(a->cluster, b->cluster) == 0 && strcmp(a->id, b->id) == 0 &&
	       a->issued_at == b->issued_at && a->expires_at == b->expires_at &&
	       memcmp(a->nonce, b->nonce, sizeof a->nonce) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	const char *text = (const char *)data;
	ig_token_decoded d;
	ig_token_claims c;
	int rd = ig_token_decode(&d, text, size);
	int rp = ig_token_parse(text, size, &c);
	FUZZ_ASSERT((rd == 0) == (rp == 0));
	if (rd == 0) {
		FUZZ_ASSERT(claims_equal(&d.claims, &c));
		FUZZ_ASSERT(d.len <= sizeof d.bin);
		FUZZ_ASSERT(memchr(c.id, '\0', sizeof c.id) && memchr(c.cluster, '\0', sizeof c.cluster));
		int rv = ig_token_verify_decoded(&d, g_pk);
		ig_token_claims vc;
		int rv2 = ig_token_verify(text, size, g_pk, &vc);
		FUZZ_ASSERT((rv == 0) == (rv2 == 0));
		if (rv == 0) {
			FUZZ_ASSERT(d.len == g_vector.len && memcmp(d.bin, g_vector.bin, d.len) == 0);
			FUZZ_ASSERT(claims_equal(&vc, &g_vector.claims));
		}
	}
	return 0;
}
