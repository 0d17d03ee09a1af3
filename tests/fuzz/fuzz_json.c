/* tests/fuzz/fuzz_json.c: fuzzes the JSON-number-to-integer helper.
 *
 * Why this exists: every count, ttl, amount and timestamp a client sends goes
 * through ig_json_uint, and the bugs it prevents (1e300 into a uint64_t,
 * 1.5 truncated, -1 wrapped) are exactly what mutated JSON produces.
 * Invariants: a success lies in [min, max] and equals the double cJSON read. */
#include <cJSON.h>

#include "fuzz_common.h"
#include "ig_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	/* The first byte picks the bounds, as the callers' bounds differ. */
	static const uint64_t maxes[] = { 1, 255, 65535, 4294967295u, IG_JSON_UINT_MAX };
	uint64_t max = maxes[data[0] % (sizeof maxes / sizeof maxes[0])];
	uint64_t min = (data[0] & 0x80) ? 1 : 0;
	cJSON *item = cJSON_ParseWithLength((const char *)data + 1, size - 1);
	if (!item)
		return 0;
	uint64_t v = 0;
	int rc = ig_json_uint(&v, item, min, max);
	if (rc == 0) {
		FUZZ_ASSERT(cJSON_IsNumber(item));
		FUZZ_ASSERT(v >= min && v <= max);
		FUZZ_ASSERT((double)v == item->valuedouble);
	} else {
		FUZZ_ASSERT(rc == IG_ERR_INVAL || rc == IG_ERR_RANGE);
	}
	cJSON_Delete(item);
	return 0;
}
