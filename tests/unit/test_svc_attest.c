/*
 * test_svc_attest.c: the attestation service without a broker. Reports
 * signed the way the agent signs them; every refusal (malformed, stale,
 * bad_signature, over_rate in both its forms) and every fate of the attest
 * record (outcome_unknown, storage_failed, durable); the verdicts
 * (allowed, disallowed = flagged, unlisted) and the stats object.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_svc_attest.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW_MS 1767225600000ull
#define GOOD_HEX "1111111111111111111111111111111111111111111111111111111111111111"

static uint8_t pk1[32], sk1[64], pka[32], ska[64], pkx[32], skx[64];
static ig_state *st;
static ig_policy *policy;
static ig_svc_attest *svc;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(pk1, sk1, 0x20);
	tu_seed_keypair(pka, ska, 0x60);
	tu_seed_keypair(pkx, skx, 0x90);
	st = ig_state_new();
	cr_assert_not_null(st);
	fx_enroll(st, "dev1", IG_ROLE_DEVICE, pk1);
	fx_enroll(st, "an1", IG_ROLE_ANALYST, pka);
	fx_enroll(st, "gone", IG_ROLE_DEVICE, pkx);
	fx_revoke(st, "gone");
	policy = fx_policy("{\"version\":1,\"roles\":{\"device\":{\"publish\":[],\"subscribe\":[]},"
	                   "\"analyst\":{\"publish\":[],\"subscribe\":[]}},"
	                   "\"attestation\":{\"device\":[\"" GOOD_HEX "\"]}}");
	ig_svc_attest_config cfg = {.max_per_hour = 3};
	svc = ig_svc_attest_new(st, &cfg);
	cr_assert_not_null(svc);
}

static void teardown(void)
{
	ig_svc_attest_free(svc);
	ig_policy_free(policy);
	ig_state_free(st);
}

TestSuite(svc_attest, .init = setup, .fini = teardown);

/* The report JSON for id's measurement m at ts, signed with sk. */
static cJSON *report(const char *id, const uint8_t m[32], uint64_t ts, const uint8_t sk[64])
{
	uint8_t msg[19 + IG_ID_MAX + 1 + 32 + 8];
	size_t n = 0;
	memcpy(msg, "iotguard-attest-v1", 19);   /* with its 0x00 */
	n = 19;
	memcpy(msg + n, id, strlen(id));
	n += strlen(id);
	msg[n++] = 0;
	memcpy(msg + n, m, 32);
	n += 32;
	ig_put_u64(msg + n, ts);
	n += 8;
	uint8_t sig[64];
	crypto_sign_detached(sig, NULL, msg, n, sk);
	char mhex[65], shex[129];
	ig_hex_encode(mhex, m, 32);
	ig_hex_encode(shex, sig, 64);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "attest");
	cJSON_AddStringToObject(o, "measurement", mhex);
	cJSON_AddNumberToObject(o, "ts", (double)ts);
	cJSON_AddStringToObject(o, "sig", shex);
	return o;
}

static bool run(ig_decision *d, const char *id, const cJSON *req, uint64_t now_ms)
{
	memset(d, 0, sizeof d[0]);
	return ig_svc_attest_request(d, svc, policy, id, req, now_ms);
}

static void good(uint8_t m[32])
{
	cr_assert_eq(ig_hex_decode(m, 32, GOOD_HEX, 64), IG_OK);
}

static ig_svc_attest_counts counts(void)
{
	ig_svc_attest_counts c;
	ig_svc_attest_get_counts(svc, &c);
	return c;
}

Test(svc_attest, first_allowed_report_is_recorded_then_unchanged_costs_nothing)
{
	uint8_t m[32];
	good(m);
	cJSON *req = report("dev1", m, NOW_MS, sk1);
	ig_decision d, out;
	cr_expect_not(run(&d, "dev1", req, NOW_MS));
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_expect_eq(d.rec_type, IG_REC_ATTEST);
	ig_attest rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_attest_decode(d.body, d.body_len, &rec, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(rec.id, "dev1");
	cr_expect_eq(memcmp(rec.measurement, m, 32), 0);
	cr_expect_eq(rec.allowed, 1);
	const ig_device *dev = ig_state_device_find(st, "dev1");
	cr_assert_not_null(dev);
	cr_expect(dev->attest_in_flight);
	cr_expect_eq(dev->attest, IG_ATTEST_ALLOWED);

	fx_complete(&d, IG_OK, NULL, &out);
	cr_expect_eq(out.kind, IG_DECISION_NONE, "an accepted report is not answered");
	cr_expect_not(dev->attest_in_flight);

	/* the same report again changes nothing and writes nothing */
	cr_expect_not(run(&d, "dev1", req, NOW_MS + 1000));
	cr_expect_eq(d.kind, IG_DECISION_NONE);
	cr_expect_eq(counts().reports, 2);
	cJSON_Delete(req);
}

Test(svc_attest, not_active_is_ignored)
{
	uint8_t m[32];
	good(m);
	cJSON *req = report("gone", m, NOW_MS, skx);
	ig_decision d;
	cr_expect_not(run(&d, "gone", req, NOW_MS));
	cr_expect_eq(d.kind, IG_DECISION_NONE);
	cr_expect_not(run(&d, "nobody", req, NOW_MS));
	cr_expect_eq(d.kind, IG_DECISION_NONE);
	cr_expect_eq(counts().reports, 0);
	cJSON_Delete(req);
}

Test(svc_attest, malformed)
{
	const char *cases[] = {
		"{\"type\":\"attest\"}",
		"{\"measurement\":\"11\",\"ts\":1,\"sig\":\"00\"}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":-1,\"sig\":\"00\"}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":1.5,\"sig\":\"00\"}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":1e300,\"sig\":\"00\"}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":\"1\",\"sig\":\"00\"}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":1,\"sig\":5}",
		"{\"measurement\":\"" GOOD_HEX "\",\"ts\":1}",
		"[1]",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *req = cJSON_Parse(cases[i]);
		cr_assert_not_null(req, "%s", cases[i]);
		ig_decision d;
		run(&d, "dev1", req, NOW_MS);
		fx_expect_refusal(&d, "attest", "malformed", "", "\"measurement\" (64 hex)");
		ig_decision_clear(&d);
		cJSON_Delete(req);
	}
	cr_expect_eq(counts().reports, 0);
}

Test(svc_attest, stale_both_ways)
{
	uint8_t m[32];
	good(m);
	uint64_t ts[] = {NOW_MS - 10 * 60 * 1000 - 1, NOW_MS + 10 * 60 * 1000 + 1};
	for (size_t i = 0; i < 2; i++) {
		cJSON *req = report("dev1", m, ts[i], sk1);
		ig_decision d;
		run(&d, "dev1", req, NOW_MS);
		fx_expect_refusal(&d, "attest", "stale", "", "check the clock");
		ig_decision_clear(&d);
		cJSON_Delete(req);
	}
	/* exactly 10 minutes off is still fresh */
	cJSON *req = report("dev1", m, NOW_MS - 10 * 60 * 1000, sk1);
	ig_decision d;
	run(&d, "dev1", req, NOW_MS);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);
	cJSON_Delete(req);
}

Test(svc_attest, bad_signature)
{
	uint8_t m[32];
	good(m);
	ig_decision d;
	/* another key, another id, a signature that is not hex */
	cJSON *reqs[3] = {report("dev1", m, NOW_MS, skx), report("an1", m, NOW_MS, sk1), report("dev1", m, NOW_MS, sk1)};
	cJSON_ReplaceItemInObject(reqs[2], "sig", cJSON_CreateString("zz"));
	for (size_t i = 0; i < 3; i++) {
		run(&d, "dev1", reqs[i], NOW_MS);
		fx_expect_refusal(&d, "attest", "bad_signature", "", "enrolled key");
		ig_decision_clear(&d);
		cJSON_Delete(reqs[i]);
	}
	cr_expect_eq(counts().reports, 0);
	const ig_device *dev = ig_state_device_find(st, "dev1");
	cr_expect(!dev || dev->attest == IG_ATTEST_NONE, "no verdict without a signature");
}

Test(svc_attest, disallowed_flags_the_device_and_unlisted_role_is_not_checked)
{
	uint8_t bad[32];
	tu_seq_bytes(bad, sizeof bad, 0x40);
	cJSON *req = report("dev1", bad, NOW_MS, sk1);
	ig_decision d;
	cr_expect(run(&d, "dev1", req, NOW_MS), "a newly flagged device is reported for the log");
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	ig_attest rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_attest_decode(d.body, d.body_len, &rec, &err), IG_OK);
	cr_expect_eq(rec.allowed, 0);
	cr_expect_eq(ig_state_device_find(st, "dev1")->attest, IG_ATTEST_DISALLOWED);
	cr_expect_eq(counts().disallowed, 1);
	ig_decision out;
	fx_complete(&d, IG_OK, NULL, &out);
	cJSON_Delete(req);

	cJSON *areq = report("an1", bad, NOW_MS, ska);
	cr_expect_not(run(&d, "an1", areq, NOW_MS));
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_assert_eq(ig_record_attest_decode(d.body, d.body_len, &rec, &err), IG_OK);
	cr_expect_eq(rec.allowed, 2, "the analyst role has no list");
	cr_expect_eq(ig_state_device_find(st, "an1")->attest, IG_ATTEST_UNLISTED);
	fx_complete(&d, IG_OK, NULL, &out);
	cJSON_Delete(areq);

	cJSON *stats = cJSON_CreateObject();
	ig_svc_attest_stats(svc, stats);
	char *json = cJSON_PrintUnformatted(stats);
	cr_expect_str_eq(json, "{\"attestation\":{\"reports\":2,\"over_rate\":0,\"flagged\":[\"dev1\"]}}");
	free(json);
	cJSON_Delete(stats);
}

Test(svc_attest, over_rate_while_in_flight_and_beyond_the_hourly_budget)
{
	uint8_t m[32];
	ig_decision d, out;
	tu_seq_bytes(m, sizeof m, 1);
	cJSON *req = report("dev1", m, NOW_MS, sk1);
	run(&d, "dev1", req, NOW_MS);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cJSON_Delete(req);

	/* a change while the first record is being written waits */
	tu_seq_bytes(m, sizeof m, 2);
	req = report("dev1", m, NOW_MS, sk1);
	ig_decision d2;
	run(&d2, "dev1", req, NOW_MS);
	fx_expect_refusal(&d2, "attest", "over_rate", "", "still being recorded");
	ig_decision_clear(&d2);
	fx_complete(&d, IG_OK, NULL, &out);
	run(&d, "dev1", req, NOW_MS + 1);
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "after the first is durable, the change is recorded");
	fx_complete(&d, IG_OK, NULL, &out);
	cJSON_Delete(req);

	tu_seq_bytes(m, sizeof m, 3);
	req = report("dev1", m, NOW_MS, sk1);
	run(&d, "dev1", req, NOW_MS + 2);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	fx_complete(&d, IG_OK, NULL, &out);
	cJSON_Delete(req);

	/* a fourth change within the hour: refused, the last one stands */
	tu_seq_bytes(m, sizeof m, 4);
	req = report("dev1", m, NOW_MS, sk1);
	run(&d, "dev1", req, NOW_MS + 3);
	fx_expect_refusal(&d, "attest", "over_rate", "", "more than 3 measurement changes this hour");
	ig_decision_clear(&d);
	uint8_t last[32];
	tu_seq_bytes(last, sizeof last, 3);
	cr_expect_eq(memcmp(ig_state_device_find(st, "dev1")->measurement, last, 32), 0);
	cr_expect_eq(counts().over_rate, 2);
	/* an hour later it is recorded */
	cJSON_Delete(req);
	req = report("dev1", m, NOW_MS + 3600000 + 3, sk1);
	run(&d, "dev1", req, NOW_MS + 3600000 + 3);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);
	cJSON_Delete(req);
}

Test(svc_attest, record_not_durable_is_answered)
{
	uint8_t m[32];
	good(m);
	cJSON *req = report("dev1", m, NOW_MS, sk1);
	ig_decision d, out;
	run(&d, "dev1", req, NOW_MS);
	fx_complete(&d, IG_ERR_UNKNOWN, NULL, &out);
	fx_expect_refusal(&out, "attest", IG_DECISION_E_OUTCOME_UNKNOWN, "", "report the measurement again");
	ig_decision_clear(&out);
	const ig_device *dev = ig_state_device_find(st, "dev1");
	cr_expect_not(dev->attest_in_flight);
	cr_expect_eq(memcmp(dev->measurement, m, 32), 0, "may be durable: the measurement stands");

	/* certainly not written: the measurement is forgotten, so the same
	 * report counts as a change and is written next time */
	tu_seq_bytes(m, sizeof m, 9);
	cJSON_Delete(req);
	req = report("dev1", m, NOW_MS, sk1);
	run(&d, "dev1", req, NOW_MS + 1);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	fx_complete(&d, IG_ERR_IO, NULL, &out);
	fx_expect_refusal(&out, "attest", "storage_failed", "", "the measurement was not recorded");
	ig_decision_clear(&out);
	cr_expect(tu_all_zero(dev->measurement, 32));
	run(&d, "dev1", req, NOW_MS + 2);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);   /* completes it as IG_ERR_CLOSED */
	cr_expect_not(dev->attest_in_flight);
	cJSON_Delete(req);
}

/* A shared ledger: unreachable database (retriable storage_failed) and a
 * conflict both leave nothing in flight and the measurement forgotten, so
 * the next report is recorded. */
Test(svc_attest, unreachable_database_and_conflict_are_answered_and_forget_the_measurement)
{
	uint8_t m[32];
	good(m);
	cJSON *req = report("dev1", m, NOW_MS, sk1);
	ig_decision d, out;
	run(&d, "dev1", req, NOW_MS);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	fx_complete(&d, IG_ERR_UNAVAILABLE, NULL, &out);
	fx_expect_refusal(&out, "attest", "storage_failed", "", "unreachable");
	ig_decision_clear(&out);
	const ig_device *dev = ig_state_device_find(st, "dev1");
	cr_expect_not(dev->attest_in_flight);
	cr_expect(tu_all_zero(dev->measurement, 32));

	run(&d, "dev1", req, NOW_MS + 1);
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "the retry is recorded");
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &out);
	fx_expect_refusal(&out, "attest", "conflict", "", "another broker");
	ig_decision_clear(&out);
	cr_expect_not(dev->attest_in_flight);
	cr_expect(tu_all_zero(dev->measurement, 32));
	cJSON_Delete(req);
}
