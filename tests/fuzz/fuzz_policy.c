/* tests/fuzz/fuzz_policy.c: fuzzes the policy file parser.
 *
 * Why this exists: policy.json is edited by hand and reloaded into a running
 * broker (SIGHUP / reload); a typo must be an error message, never a crash
 * inside mosquitto. Invariant: an error always carries a message. */
#include "fuzz_common.h"
#include "ig_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ig_policy *p = NULL;
	ig_error err;
	memset(&err, 0, sizeof err);
	int rc = ig_policy_parse((const char *)data, size, &p, &err);
	if (rc == 0) {
		FUZZ_ASSERT(p != NULL);
		ig_policy_free(p);
	} else {
		FUZZ_ASSERT(p == NULL);
		FUZZ_ASSERT(err.msg[0] != '\0');
	}
	return 0;
}
