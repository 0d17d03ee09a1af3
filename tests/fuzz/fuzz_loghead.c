/* tests/fuzz/fuzz_loghead.c: fuzzes the agent's checks of the cluster
 * head's proof answers (agents/loghead.c).
 *
 * Why this exists: a device decides from these answers whether the cluster
 * head kept its log, and whoever controls the broker controls every byte of
 * them. The input is an inbox message (JSON); it goes to the enrolment check
 * and to the consistency check with docs/PROTOCOL.md's example keys and
 * roots (the seed corpus holds those very answers, so the fuzzer reaches
 * past the signature). Invariants: nothing crashes, an accepted enrolment
 * lies inside its checkpoint's tree, and the answer's class is one of the
 * documented ones. */
#include <cJSON.h>

#include "fuzz_common.h"
#include "loghead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* docs/PROTOCOL.md, "Log proofs": cluster demo, sensor-1. */
static const char CH_PK[] = "5c60a7ad36222c5f1667952308d83f93f0c5f5aed793b0d1f455b3332043e61a";
static const char DEV_PK[] = "de4a61367065936409748cf21bc129725cf13568ae57fc2921d34f7b34de860b";
static const char ROOT2[] = "hPxRgEFl4nwaeKmNvGR02eBsrT1HUcTJkYqc7356sSw=";
static const char ROOT3[] = "iXMFCdvS0c7dIWpqJMA5YalvpCvAiqJzyMIglojgC8U=";

static void b64(uint8_t out[32], const char *s)
{
	size_t n = 0;
	if (sodium_base642bin(out, 32, s, strlen(s), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || n != 32)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ig_loghead_trust trust;
	static uint8_t dev_pk[IG_PK_BYTES], root2[32], root3[32];
	static int ready;
	static ig_loghead cp;
	if (!ready) {
		uint8_t ch_pk[IG_PK_BYTES];
		if (ig_init() != IG_OK || ig_hex_decode(ch_pk, sizeof ch_pk, CH_PK, 64) != IG_OK ||
		    ig_hex_decode(dev_pk, sizeof dev_pk, DEV_PK, 64) != IG_OK ||
		    ig_loghead_trust_init(&trust, "demo", ch_pk) != IG_OK)
			abort();
		b64(root2, ROOT2);
		b64(root3, ROOT3);
		ready = 1;
	}
	cJSON *msg = cJSON_ParseWithLength((const char *)data, size);
	if (!msg)
		return 0;
	ig_error err = {0};
	uint64_t index = UINT64_MAX;
	int rc = ig_loghead_check_enrollment(&cp, &index, msg, &trust, "sensor-1", dev_pk, &err);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO || rc == IG_ERR_CORRUPT || rc == IG_ERR_RANGE ||
	            rc == IG_ERR_NOMEM);
	if (rc == IG_OK)
		FUZZ_ASSERT(index < cp.cp.size && cp.len > 0 && cp.text[cp.len] == '\0');
	rc = ig_loghead_check_consistency(msg, 2, root2, 3, root3, &err);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_CORRUPT);
	/* The same path cannot lead to the size-3 root from a different size-2 root. */
	if (rc == IG_OK)
		FUZZ_ASSERT(ig_loghead_check_consistency(msg, 2, root3, 3, root3, &err) == IG_ERR_CORRUPT);
	cJSON_Delete(msg);
	return 0;
}
