/*
 * ig_json.h: whole numbers out of JSON, checked.
 *
 * Why this exists: cJSON hands every number over as a double, and turning a
 * double that does not fit into an integer type is undefined behaviour in C
 * ("count":1e10 into an int, "ts":1e300 into a uint64_t). Every place that
 * reads a count, a timestamp, a sequence number or an index from a message
 * goes through this one check instead of casting, so a hostile or broken
 * peer gets a refusal, never UB.
 */
#ifndef IG_JSON_H
#define IG_JSON_H

#include "ig_common.h"

struct cJSON;

/* The largest whole number a JSON number (an IEEE double) carries exactly:
 * 2^53 - 1. Above it, neighbouring integers collapse, so no field that must
 * be exact may go higher. */
#define IG_JSON_UINT_MAX 9007199254740991ull

/* Reads item as a whole number in [min, max] into *out. IG_OK; otherwise
 * IG_ERR_INVAL (item is NULL, not a number, NaN, or has a fraction) or
 * IG_ERR_RANGE (infinite, negative, outside [min, max], or above
 * IG_JSON_UINT_MAX), and *out is left untouched. Never converts a double
 * that does not fit. */
int ig_json_uint(uint64_t *out, const struct cJSON *item, uint64_t min, uint64_t max)
	__attribute__((warn_unused_result));

/* The same for the member name of obj (absent = IG_ERR_INVAL). */
int ig_json_uint_field(uint64_t *out, const struct cJSON *obj, const char *name, uint64_t min, uint64_t max)
	__attribute__((warn_unused_result));

#endif
