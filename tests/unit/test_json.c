/*
 * test_json.c: ig_json_uint, the one checked path from a JSON number to an
 * integer. Every value that used to be cast blindly (1e308, 1e10 into an
 * int, NaN from 1e400-1e400, fractions, negatives) must be refused here, so
 * the callers in the plugin, CLI and agent never see it.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <math.h>
#include <stdint.h>

#include "ig_json.h"

static int from_text(uint64_t *out, const char *json, uint64_t min, uint64_t max)
{
	cJSON *v = cJSON_Parse(json);
	cr_assert_not_null(v, "test JSON must parse: %s", json);
	int rc = ig_json_uint(out, v, min, max);
	cJSON_Delete(v);
	return rc;
}

Test(json, whole_numbers_in_range)
{
	uint64_t v = 99;
	cr_assert_eq(from_text(&v, "0", 0, 10), IG_OK);
	cr_assert_eq(v, 0);
	cr_assert_eq(from_text(&v, "64", 1, 64), IG_OK);
	cr_assert_eq(v, 64);
	cr_assert_eq(from_text(&v, "1.0", 1, 64), IG_OK, "1.0 is a whole number");
	cr_assert_eq(v, 1);
	cr_assert_eq(from_text(&v, "1e3", 0, 1000), IG_OK);
	cr_assert_eq(v, 1000);
	cr_assert_eq(from_text(&v, "-0", 0, 10), IG_OK);
	cr_assert_eq(v, 0);
	cr_assert_eq(from_text(&v, "9007199254740991", 0, UINT64_MAX), IG_OK);
	cr_assert_eq(v, IG_JSON_UINT_MAX);
}

Test(json, huge_values_are_refused_not_cast)
{
	uint64_t v = 7;
	/* the two values fuzzing found through a real broker */
	cr_assert_eq(from_text(&v, "1e300", 0, UINT64_MAX), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "1e10", 1, 64), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "1e308", 0, UINT64_MAX), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "1e400", 0, UINT64_MAX), IG_ERR_RANGE, "strtod gives +inf");
	cr_assert_eq(from_text(&v, "-1e400", 0, UINT64_MAX), IG_ERR_RANGE, "-inf");
	cr_assert_eq(from_text(&v, "18446744073709551616", 0, UINT64_MAX), IG_ERR_RANGE, "2^64");
	cr_assert_eq(from_text(&v, "9007199254740992", 0, UINT64_MAX), IG_ERR_RANGE, "2^53 is not exact");
	cr_assert_eq(v, 7, "a refused value leaves *out alone");
}

Test(json, negatives_fractions_and_bounds)
{
	uint64_t v = 7;
	cr_assert_eq(from_text(&v, "-1", 0, 10), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "-1e300", 0, 10), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "0.5", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(from_text(&v, "2.000001", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(from_text(&v, "0", 1, 10), IG_ERR_RANGE);
	cr_assert_eq(from_text(&v, "11", 1, 10), IG_ERR_RANGE);
	cr_assert_eq(v, 7);
}

Test(json, non_numbers)
{
	uint64_t v = 7;
	cr_assert_eq(from_text(&v, "\"5\"", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(from_text(&v, "true", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(from_text(&v, "null", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(from_text(&v, "[1]", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_json_uint(&v, NULL, 0, 10), IG_ERR_INVAL);
	cJSON *nan_item = cJSON_CreateNumber(NAN);
	cr_assert_eq(ig_json_uint(&v, nan_item, 0, 10), IG_ERR_INVAL);
	cJSON_Delete(nan_item);
	cr_assert_eq(v, 7);
}

Test(json, field_lookup)
{
	cJSON *o = cJSON_Parse("{\"count\":3,\"ts\":1e300,\"Count\":5}");
	uint64_t v = 0;
	cr_assert_eq(ig_json_uint_field(&v, o, "count", 1, 64), IG_OK);
	cr_assert_eq(v, 3);
	cr_assert_eq(ig_json_uint_field(&v, o, "ts", 0, UINT64_MAX), IG_ERR_RANGE);
	cr_assert_eq(ig_json_uint_field(&v, o, "missing", 0, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_json_uint_field(&v, NULL, "count", 0, 10), IG_ERR_INVAL);
	cJSON_Delete(o);
}
