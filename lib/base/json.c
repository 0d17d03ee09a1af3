/*
 * json.c: checked conversion of JSON numbers to unsigned integers.
 *
 * Why this exists: see ig_json.h. The checks run on the double itself, in an
 * order that never evaluates an out-of-range cast: NaN and infinities fail
 * the range comparison, and the comparison against 2^53 is exact because
 * 2^53 is a double.
 */
#include "ig_json.h"

#include <cJSON.h>
#include <math.h>

int ig_json_uint(uint64_t *out, const cJSON *item, uint64_t min, uint64_t max)
{
	if (!out || !item || !cJSON_IsNumber(item))
		return IG_ERR_INVAL;
	double v = item->valuedouble;
	if (isnan(v))
		return IG_ERR_INVAL;
	if (isinf(v))
		return IG_ERR_RANGE;
	if (v != floor(v))
		return IG_ERR_INVAL;
	/* Both bounds are checked on the double before any cast. */
	if (v < 0.0 || v > (double)IG_JSON_UINT_MAX)
		return IG_ERR_RANGE;
	uint64_t u = (uint64_t)v;
	if (u < min || u > max)
		return IG_ERR_RANGE;
	*out = u;
	return IG_OK;
}

int ig_json_uint_field(uint64_t *out, const cJSON *obj, const char *name, uint64_t min, uint64_t max)
{
	if (!obj || !name)
		return IG_ERR_INVAL;
	return ig_json_uint(out, cJSON_GetObjectItemCaseSensitive(obj, name), min, max);
}
