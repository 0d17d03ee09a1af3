/* tests/fuzz/fuzz_join.c: fuzzes join codes ("igjc1-...") and join tokens
 * ("igj1.").
 *
 * Why this exists: a joining device is not enrolled yet, so both texts come
 * from a stranger. Invariants: a parsed code re-formats to a text that parses
 * to the same bytes; a join token only verifies, with the docs' vector secret,
 * when its claims are the vector's (nobody else holds that secret and key). */
#include <stdio.h>

#include "fuzz_common.h"
#include "ig_join.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* PROTOCOL.md "Join test vector". */
static const uint8_t k_secret[IG_JOIN_SECRET_BYTES] = {
	0x7b, 0xb4, 0x8d, 0x06, 0xc7, 0xb9, 0xb1, 0xd0, 0xc3, 0x68, 0x47, 0xee, 0x7e, 0x71, 0x96, 0xbd,
};
static const uint8_t k_code_id[IG_JOIN_CODE_ID_BYTES] = { 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17 };

/* Field by field: the parsers leave bytes after the strings' NUL as they were. */
static int claims_equal(const ig_join_claims *a, const ig_join_claims *b)
{
	return strcmp(a->cluster, b->cluster) == 0 && strcmp(a->id, b->id) == 0 &&
	       memcmp(a->pk, b->pk, sizeof a->pk) == 0 && memcmp(a->code_id, b->code_id, sizeof a->code_id) == 0 &&
	       a->issued_at == b->issued_at && a->expires_at == b->expires_at &&
	       memcmp(a->nonce, b->nonce, sizeof a->nonce) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	uint8_t id[IG_JOIN_CODE_ID_BYTES], sec[IG_JOIN_SECRET_BYTES];
	if (ig_join_code_parse(s, id, sec) == 0) {
		char again[64];
		int n = snprintf(again, sizeof again, "igjc1-");
		for (size_t i = 0; i < sizeof id; i++)
			n += snprintf(again + n, sizeof again - (size_t)n, "%02x", id[i]);
		for (size_t i = 0; i < sizeof sec; i++)
			n += snprintf(again + n, sizeof again - (size_t)n, "%02X", sec[i]);
		uint8_t id2[IG_JOIN_CODE_ID_BYTES], sec2[IG_JOIN_SECRET_BYTES];
		FUZZ_ASSERT(ig_join_code_parse(again, id2, sec2) == 0);
		FUZZ_ASSERT(memcmp(id, id2, sizeof id) == 0 && memcmp(sec, sec2, sizeof sec) == 0);
	}
	free(s);

	ig_join_claims c, v;
	if (ig_join_token_parse((const char *)data, size, &c) == 0) {
		FUZZ_ASSERT(memchr(c.id, '\0', sizeof c.id) && memchr(c.cluster, '\0', sizeof c.cluster));
		if (ig_join_token_verify((const char *)data, size, k_secret, &v) == 0) {
			FUZZ_ASSERT(claims_equal(&c, &v));
			FUZZ_ASSERT(memcmp(v.code_id, k_code_id, sizeof k_code_id) == 0);
			FUZZ_ASSERT(strcmp(v.cluster, "demo") == 0 && strcmp(v.id, "sensor-9") == 0);
			FUZZ_ASSERT(v.issued_at == 1767225600 && v.expires_at == 1767225900);
		}
	} else {
		FUZZ_ASSERT(ig_join_token_verify((const char *)data, size, k_secret, &v) != 0);
	}
	return 0;
}
