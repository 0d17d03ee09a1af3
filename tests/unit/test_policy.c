/*
 * test_policy.c: the access rules are the broker's only line of defence
 * after authentication, so these tests try to make a device read or write
 * something it must not, and try to load every kind of broken policy.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ig_policy.h"
#include "ig_topic.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static ig_policy *parse_ok(const char *json)
{
	ig_policy *p = NULL;
	ig_error err = {0};
	int rc = ig_policy_parse(json, strlen(json), &p, &err);
	cr_assert_eq(rc, IG_OK, "policy should parse: %s\n%s", err.msg, json);
	cr_assert_not_null(p);
	return p;
}

static ig_policy *default_policy(void)
{
	return parse_ok(ig_policy_default_json);
}

/* ---- the default policy ------------------------------------------------- */

Test(policy, default_equals_config_file_byte_for_byte)
{
	size_t len;
	char *file = tu_read_file(IG_SOURCE_ROOT "/config/policy.json", &len);
	size_t embedded = strlen(ig_policy_default_json);
	cr_assert_eq(embedded, len, "embedded policy is %zu bytes, config/policy.json %zu", embedded, len);
	cr_assert_eq(memcmp(file, ig_policy_default_json, len), 0,
	             "lib/identity/policy_default.c and config/policy.json differ; regenerate one from the other");
	free(file);
}

Test(policy, load_config_file)
{
	ig_policy *p = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_policy_load(IG_SOURCE_ROOT "/config/policy.json", &p, &err), IG_OK, "%s", err.msg);
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, IG_ACCESS_PUBLISH, "C", "dev1", "iotguard/C/ch/dev1"));
	ig_policy_free(p);
}

Test(policy, load_missing_file_names_path)
{
	ig_policy *p = (ig_policy *)1;
	ig_error err = {0};
	cr_assert_eq(ig_policy_load("/nonexistent/iotguard/policy.json", &p, &err), IG_ERR_IO);
	cr_expect_null(p);
	cr_expect_not_null(strstr(err.msg, "/nonexistent/iotguard/policy.json"), "%s", err.msg);
}

typedef struct access_case {
	ig_access a;
	const char *topic;
	bool allowed;
} access_case;

static void check_cases(const ig_policy *p, ig_role role, const char *id, const access_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(ig_policy_allows(p, role, cases[i].a, "C", id, cases[i].topic), cases[i].allowed,
		             "%s %s access %d to '%s' should be %s", ig_role_name(role), id, (int)cases[i].a,
		             cases[i].topic, cases[i].allowed ? "allowed" : "denied");
}

#define PUB IG_ACCESS_PUBLISH
#define RET IG_ACCESS_RETAIN
#define SUB IG_ACCESS_SUBSCRIBE
#define READ IG_ACCESS_READ

static const access_case device_cases[] = {
	{PUB, "iotguard/C/ch/dev1", true}, {PUB, "iotguard/C/dev/dev1/status", true},
	{PUB, "iotguard/C/ch/dev2", false}, {PUB, "iotguard/C/dev/dev2/status", false},
	{PUB, "iotguard/D/ch/dev1", false}, {PUB, "iotguard/C/dev/dev1/inbox", false},
	{PUB, "iotguard/C/ledger/head", false}, {PUB, "iotguard/C/ledger/events", false},
	{PUB, "iotguard/C/stats", false}, {PUB, "$CONTROL/iotguard/v1", false},
	{PUB, "iotguard/C/ch/+", false}, {PUB, "iotguard/C/ch/#", false}, {PUB, "iotguard/C/ch/dev1/x", false},
	{PUB, "iotguard/C/ch", false}, {PUB, "iotguard/C/ch/dev1/", false}, {PUB, "/iotguard/C/ch/dev1", false},
	{PUB, "iotguard/{cluster}/ch/{id}", false}, {PUB, "iotguard/C/ch/DEV1", false},
	{RET, "iotguard/C/dev/dev1/status", true}, {RET, "iotguard/C/ch/dev1", false},
	{RET, "iotguard/C/dev/dev2/status", false},
	{SUB, "iotguard/C/dev/dev1/inbox", true}, {SUB, "iotguard/C/ledger/head", true},
	{SUB, "iotguard/C/#", false}, {SUB, "#", false}, {SUB, "+/#", false}, {SUB, "iotguard/#", false},
	{SUB, "iotguard/C/dev/dev2/inbox", false}, {SUB, "iotguard/C/dev/+/inbox", false},
	{SUB, "iotguard/C/dev/+/status", false}, {SUB, "iotguard/C/dev/dev1/#", false},
	{SUB, "iotguard/C/dev/dev1/+", false}, {SUB, "iotguard/C/ledger/#", false},
	{SUB, "iotguard/C/ledger/+", false}, {SUB, "iotguard/C/stats", false},
	{SUB, "iotguard/+/dev/dev1/inbox", false}, {SUB, "$CONTROL/iotguard/v1/response", false},
	{SUB, "$CONTROL/#", false}, {SUB, "$SYS/#", false}, {SUB, "iotguard/C/dev/dev1/inbox/#", false},
	{SUB, "iotguard/C/dev/dev1/inbox/x", false}, {SUB, "iotguard/C/dev/#/inbox", false},
	{READ, "iotguard/C/dev/dev1/inbox", true}, {READ, "iotguard/C/ledger/head", true},
	{READ, "iotguard/C/dev/dev2/inbox", false}, {READ, "iotguard/C/dev/dev2/status", false},
	{READ, "iotguard/C/stats", false}, {READ, "iotguard/C/ledger/events", false},
	{READ, "iotguard/C/dev/+/inbox", false},
};

Test(policy, device_rights)
{
	ig_policy *p = default_policy();
	check_cases(p, IG_ROLE_DEVICE, "dev1", device_cases, sizeof device_cases / sizeof device_cases[0]);
	ig_policy_free(p);
}

Test(policy, analyst_rights_match_device)
{
	ig_policy *p = default_policy();
	check_cases(p, IG_ROLE_ANALYST, "dev1", device_cases, sizeof device_cases / sizeof device_cases[0]);
	ig_policy_free(p);
}

static const access_case monitor_cases[] = {
	{PUB, "iotguard/C/ch/mon1", true}, {PUB, "iotguard/C/dev/mon1/status", true},
	{PUB, "iotguard/C/dev/dev1/status", false}, {PUB, "$CONTROL/iotguard/v1", false},
	{PUB, "iotguard/C/stats", false}, {RET, "iotguard/C/dev/mon1/status", true},
	{RET, "iotguard/C/dev/dev1/status", false},
	{SUB, "iotguard/C/dev/+/status", true}, {SUB, "iotguard/C/dev/dev7/status", true},
	{SUB, "iotguard/C/ledger/#", true}, {SUB, "iotguard/C/ledger/head", true},
	{SUB, "iotguard/C/ledger/events", true}, {SUB, "iotguard/C/ledger/+", true},
	{SUB, "iotguard/C/stats", true}, {SUB, "iotguard/C/dev/mon1/inbox", true},
	{SUB, "iotguard/C/#", false}, {SUB, "iotguard/C/dev/#", false}, {SUB, "iotguard/C/dev/+/#", false},
	{SUB, "iotguard/C/dev/+/+", false}, {SUB, "iotguard/C/dev/dev7/inbox", false},
	{SUB, "iotguard/C/dev/+/inbox", false}, {SUB, "iotguard/C/+", false},
	{SUB, "iotguard/D/ledger/#", false}, {SUB, "$CONTROL/iotguard/v1/response", false},
	{SUB, "#", false},
	{READ, "iotguard/C/dev/dev7/status", true}, {READ, "iotguard/C/ledger/events", true},
	{READ, "iotguard/C/stats", true}, {READ, "iotguard/C/dev/dev7/inbox", false},
	{READ, "$CONTROL/iotguard/v1/response", false},
};

Test(policy, monitor_rights)
{
	ig_policy *p = default_policy();
	check_cases(p, IG_ROLE_MONITOR, "mon1", monitor_cases, sizeof monitor_cases / sizeof monitor_cases[0]);
	ig_policy_free(p);
}

Test(policy, admin_rights)
{
	static const access_case admin_extra[] = {
		{PUB, "$CONTROL/iotguard/v1", true}, {PUB, "$CONTROL/iotguard/v1/response", false},
		{PUB, "$CONTROL/dynamic-security/v1", false}, {RET, "$CONTROL/iotguard/v1", false},
		{SUB, "$CONTROL/iotguard/v1/response", true}, {SUB, "$CONTROL/iotguard/v1", false},
		{SUB, "$CONTROL/#", false}, {SUB, "$CONTROL/iotguard/v1/+", false}, {SUB, "$CONTROL/+/v1/response", false},
		{SUB, "+/iotguard/v1/response", false}, {SUB, "#", false}, {SUB, "iotguard/C/#", false},
		{READ, "$CONTROL/iotguard/v1/response", true}, {READ, "$CONTROL/dynamic-security/v1/response", false},
	};
	ig_policy *p = default_policy();
	/* admins have every monitor right; $CONTROL rows differ by design */
	for (size_t i = 0; i < sizeof monitor_cases / sizeof monitor_cases[0]; i++)
		if (strncmp(monitor_cases[i].topic, "$CONTROL", 8) != 0)
			check_cases(p, IG_ROLE_ADMIN, "mon1", &monitor_cases[i], 1);
	check_cases(p, IG_ROLE_ADMIN, "admin1", admin_extra, sizeof admin_extra / sizeof admin_extra[0]);
	ig_policy_free(p);
}

Test(policy, bad_arguments_deny)
{
	ig_policy *p = default_policy();
	const char *t = "iotguard/C/ch/dev1";
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(NULL, IG_ROLE_DEVICE, PUB, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_NONE, PUB, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, (ig_role)IG_ROLE_COUNT, PUB, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, (ig_role)-1, PUB, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, (ig_access)0, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, (ig_access)5, "C", "dev1", t));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "dev1", NULL));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "dev1", ""));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "dev1", ""));
	ig_policy_free(p);
}

/* ---- placeholders ------------------------------------------------------- */

Test(policy, placeholder_substitution)
{
	ig_policy *p = default_policy();
	char id64[65], id65[66], topic[128];
	memset(id64, 'x', 64);
	id64[64] = '\0';
	memset(id65, 'x', 65);
	id65[65] = '\0';

	snprintf(topic, sizeof topic, "iotguard/C/ch/%s", id64);
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", id64, topic), "64-char id is valid");
	snprintf(topic, sizeof topic, "iotguard/C/ch/%s", id65);
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", id65, topic), "65-char id is invalid");

	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "my-cluster.1", "dev_1.a-b",
	                           "iotguard/my-cluster.1/ch/dev_1.a-b"));
	/* ids that would smuggle levels or wildcards never match */
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "a/b", "iotguard/C/ch/a/b"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "+", "iotguard/C/dev/+/inbox"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "#", "iotguard/C/dev/#"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "", "iotguard/C/ch/"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", NULL, "iotguard/C/ch/"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "d ev", "iotguard/C/ch/d ev"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "$x", "iotguard/C/ch/$x"));
	/* a bad cluster poisons {cluster} levels the same way */
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "+", "dev1", "iotguard/+/dev/dev1/inbox"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C/x", "dev1", "iotguard/C/x/ch/dev1"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, NULL, "dev1", "iotguard//ch/dev1"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "", "dev1", "iotguard//ch/dev1"));
	ig_policy_free(p);
}

Test(policy, placeholder_only_poisons_its_own_levels)
{
	ig_policy *p = parse_ok("{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"fixed/topic\",\"own/{id}\"],"
	                        "\"subscribe\":[\"{cluster}/+/{id}/#\"]}}}");
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "bad/id", "fixed/topic"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "bad/id", "own/bad/id"));
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "d1", "C/x/d1/#"));
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "d1", "C/+/d1"));
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, READ, "C", "d1", "C/x/d1/y/z"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "d1", "C/+/+/#"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "d1", "C/#"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, RET, "C", "d1", "fixed/topic"), "no retain list");
	cr_expect_not(ig_policy_allows(p, IG_ROLE_MONITOR, PUB, "C", "d1", "fixed/topic"), "role absent");
	ig_policy_free(p);
}

Test(policy, leading_wildcards_never_grant_dollar_topics)
{
	ig_policy *p = parse_ok("{\"version\":1,\"roles\":{\"admin\":{\"publish\":[\"#\"],"
	                        "\"subscribe\":[\"#\",\"+/x\"],\"retain\":[\"+/#\"]}}}");
	cr_expect(ig_policy_allows(p, IG_ROLE_ADMIN, PUB, "C", "a1", "a/b"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, PUB, "C", "a1", "$CONTROL/iotguard/v1"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, PUB, "C", "a1", "$CONTROL/dynamic-security/v1"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, RET, "C", "a1", "$SYS/x"));
	cr_expect(ig_policy_allows(p, IG_ROLE_ADMIN, SUB, "C", "a1", "#"));
	cr_expect(ig_policy_allows(p, IG_ROLE_ADMIN, SUB, "C", "a1", "+/+/#"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, SUB, "C", "a1", "$SYS/#"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, SUB, "C", "a1", "$x/x"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, READ, "C", "a1", "$SYS/broker/uptime"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ADMIN, READ, "C", "a1", "$CONTROL/iotguard/v1/response"));
	ig_policy_free(p);
}

Test(policy, empty_policy_denies_everything)
{
	ig_policy *p = parse_ok("{\"version\":1,\"roles\":{}}");
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		for (int a = PUB; a <= READ; a++)
			cr_expect_not(ig_policy_allows(p, (ig_role)r, (ig_access)a, "C", "x", "a"));
	ig_policy_free(p);
	p = parse_ok("{\"version\":1,\"roles\":{\"device\":{\"publish\":[],\"subscribe\":[],\"retain\":[]}}}");
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "x", "a"));
	ig_policy_free(p);
}

/* ---- malformed policies -------------------------------------------------- */

Test(policy, malformed_policies_are_rejected_with_a_message)
{
	struct { const char *json, *needle; } cases[] = {
		{"", "invalid JSON"},
		{"{", "invalid JSON"},
		{"{\"version\":1,\"roles\":{}", "invalid JSON"},
		{"{\"version\":1,\"roles\":{}} x", "unexpected text"},
		{"{\"version\":1,\"roles\":{}}{}", "unexpected text"},
		{"null", "top level must be an object"},
		{"[]", "top level must be an object"},
		{"\"policy\"", "top level must be an object"},
		{"{\"version\":1}", "\"roles\" is missing"},
		{"{\"roles\":{}}", "\"version\" is missing"},
		{"{\"version\":2,\"roles\":{}}", "\"version\" must be the number 1"},
		{"{\"version\":1.5,\"roles\":{}}", "\"version\" must be the number 1"},
		{"{\"version\":\"1\",\"roles\":{}}", "\"version\" must be the number 1"},
		{"{\"version\":true,\"roles\":{}}", "\"version\" must be the number 1"},
		{"{\"version\":1,\"roles\":[]}", "roles: must be an object"},
		{"{\"version\":1,\"roles\":null}", "roles: must be an object"},
		{"{\"version\":1,\"roles\":{},\"extra\":1}", "unknown top-level key \"extra\""},
		{"{\"version\":1,\"version\":1,\"roles\":{}}", "\"version\" appears twice"},
		{"{\"version\":1,\"roles\":{\"superuser\":{}}}", "unknown role \"superuser\""},
		{"{\"version\":1,\"roles\":{\"none\":{}}}", "unknown role \"none\""},
		{"{\"version\":1,\"roles\":{\"Device\":{}}}", "unknown role \"Device\""},
		{"{\"version\":1,\"roles\":{\"device\":{},\"device\":{}}}", "roles: key \"device\" appears twice"},
		{"{\"version\":1,\"roles\":{\"device\":[]}}", "roles.device: must be an object"},
		{"{\"version\":1,\"roles\":{\"device\":\"all\"}}", "roles.device: must be an object"},
		{"{\"version\":1,\"roles\":{\"device\":{\"pub\":[]}}}", "roles.device: unknown key \"pub\""},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[],\"publish\":[]}}}",
		 "roles.device: key \"publish\" appears twice"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":\"a/b\"}}}", "roles.device.publish: must be an array"},
		{"{\"version\":1,\"roles\":{\"device\":{\"retain\":{}}}}", "roles.device.retain: must be an array"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[1]}}}", "roles.device.publish[0]: must be a string"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[null]}}}", "roles.device.publish[0]: must be a string"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[[\"a\"]]}}}", "roles.device.publish[0]: must be a string"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"\"]}}}", "roles.device.publish[0]: empty pattern"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"a/#/b\"]}}}",
		 "roles.device.publish[0]: 'a/#/b' is not a valid MQTT filter"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"a\",\"a/b#\"]}}}",
		 "roles.device.subscribe[1]: 'a/b#' is not a valid MQTT filter"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"a+/b\"]}}}", "is not a valid MQTT filter"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"+a\"]}}}", "is not a valid MQTT filter"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"#/\"]}}}", "is not a valid MQTT filter"},
		{"{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"a\",\"b\",\"{id}x\"]}}}",
		 "policy.json: roles.device.publish[2]: '{id}' must be a whole topic level"},
		{"{\"version\":1,\"roles\":{\"monitor\":{\"retain\":[\"a/dev-{cluster}/b\"]}}}",
		 "roles.monitor.retain[0]: '{cluster}' must be a whole topic level"},
		{"{\"version\":1,\"roles\":{\"admin\":{\"subscribe\":[\"a/{ID}\"]}}}",
		 "roles.admin.subscribe[0]: level '{ID}' has a brace but is not a placeholder"},
		{"{\"version\":1,\"roles\":{\"admin\":{\"subscribe\":[\"a/{cluster\"]}}}", "has a brace"},
		{"{\"version\":1,\"roles\":{\"admin\":{\"subscribe\":[\"a/id}\"]}}}", "has a brace"},
		{"{\"version\":1,\"roles\":{\"admin\":{\"subscribe\":[\"{user}/x\"]}}}", "has a brace"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"a/\\u0000#\"]}}}", "\"\\u0000\" at line 1"},
		{"{\"version\":1,\"roles\":{\"device\":{\"subscribe\":[\"\\\"\\u0000\"]}}}", "\\u0000"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ig_policy *p = (ig_policy *)1;
		ig_error err = {0};
		int rc = ig_policy_parse(cases[i].json, strlen(cases[i].json), &p, &err);
		cr_expect_eq(rc, IG_ERR_INVAL, "case %zu should fail: %s", i, cases[i].json);
		cr_expect_null(p, "case %zu leaves no policy", i);
		cr_expect_eq(strncmp(err.msg, "policy.json: ", 13), 0, "case %zu message names the file: %s", i, err.msg);
		cr_expect_not_null(strstr(err.msg, cases[i].needle), "case %zu: message '%s' should contain '%s'", i,
		                   err.msg, cases[i].needle);
		if (rc == IG_OK)
			ig_policy_free(p);
	}
}

Test(policy, escaped_backslash_before_u0000_is_literal_text)
{
	/* JSON "a\\u0000" is the 7 characters a \ u 0 0 0 0, not a NUL */
	ig_policy *p = parse_ok("{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"a\\\\u0000\"]}}}");
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "d", "a\\u0000"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "d", "a"));
	ig_policy_free(p);
}

Test(policy, json_error_reports_line_and_column)
{
	const char *json = "{\n  \"version\": 1,\n  \"roles\": {,}\n}\n";
	ig_policy *p = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_ERR_INVAL);
	cr_expect_not_null(strstr(err.msg, "line 3"), "%s", err.msg);
}

Test(policy, nul_byte_and_oversized_pattern_rejected)
{
	ig_policy *p = NULL;
	ig_error err = {0};
	const char with_nul[] = "{\"version\":1,\"roles\":{}}\0";
	cr_expect_eq(ig_policy_parse(with_nul, sizeof with_nul - 1, &p, &err), IG_ERR_INVAL);
	cr_expect_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
	cr_expect_eq(ig_policy_parse(NULL, 0, &p, &err), IG_ERR_INVAL);

	const char *head = "{\"version\":1,\"roles\":{\"device\":{\"publish\":[\"";
	const char *tail = "\"]}}}";
	size_t n = strlen(head) + 65536 + strlen(tail) + 1;
	char *json = malloc(n);
	cr_assert_not_null(json);
	strcpy(json, head);
	memset(json + strlen(head), 'a', 65536);
	strcpy(json + strlen(head) + 65536, tail);
	cr_expect_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_ERR_INVAL);
	cr_expect_not_null(strstr(err.msg, "at most 65535 bytes"), "%s", err.msg);
	free(json);
}

Test(policy, every_truncation_of_default_is_rejected)
{
	size_t len = strlen(ig_policy_default_json);
	for (size_t n = 0; n + 1 < len; n++) {
		ig_policy *p = NULL;
		ig_error err = {0};
		int rc = ig_policy_parse(ig_policy_default_json, n, &p, &err);
		cr_expect_eq(rc, IG_ERR_INVAL, "truncated to %zu bytes should fail", n);
		cr_expect_neq(err.msg[0], '\0');
		ig_policy_free(p);
	}
	/* dropping only the final newline leaves a valid document */
	ig_policy *p = NULL;
	cr_expect_eq(ig_policy_parse(ig_policy_default_json, len - 1, &p, NULL), IG_OK);
	ig_policy_free(p);
}

Test(policy, every_byte_mutation_never_crashes)
{
	size_t len = strlen(ig_policy_default_json);
	char *buf = malloc(len);
	cr_assert_not_null(buf);
	static const char repl[] = {'"', '{', '}', '/', '#', '+', 'x', ' ', '\\', 0x7f};
	size_t rejected = 0;
	for (size_t i = 0; i < len; i++) {
		memcpy(buf, ig_policy_default_json, len);
		buf[i] = repl[i % sizeof repl];
		ig_policy *p = NULL;
		ig_error err = {0};
		int rc = ig_policy_parse(buf, len, &p, &err);
		if (rc == IG_OK) {
			cr_expect_not_null(p);
			/* whatever it now says, it must still deny $-topics to wildcards */
			cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, SUB, "C", "d", "#"));
			ig_policy_free(p);
		} else {
			cr_expect_null(p);
			cr_expect_neq(err.msg[0], '\0', "mutation at %zu fails with a message", i);
			rejected++;
		}
	}
	cr_expect_gt(rejected, len / 2, "most single-byte corruptions must be caught");
	free(buf);
}

/* ---- fuzz ---------------------------------------------------------------- */

Test(policy, fuzz_policy_allows_never_crashes)
{
	ig_policy *p = default_policy();
	char t[48], id[12], cluster[12];
	for (int i = 0; i < 20000; i++) {
		tu_rand_string(t, 40, "iotguard/C/dev1ch+#$ {}");
		tu_rand_string(id, 8, "dev1/+#$");
		tu_rand_string(cluster, 3, "C/+#");
		for (int a = 0; a <= 5; a++) {
			bool ok = ig_policy_allows(p, IG_ROLE_DEVICE, (ig_access)a, cluster, id, t);
			if (ok) {
				cr_assert(a >= PUB && a <= READ);
				/* every default pattern starts with iotguard/{cluster} */
				cr_assert(ig_id_valid(cluster, strlen(cluster)), "allowed with bad cluster '%s': '%s'",
				          cluster, t);
				if (strstr(t, "/ledger/") == NULL)
					cr_assert(ig_id_valid(id, strlen(id)), "allowed with bad id: '%s' '%s'", id, t);
				cr_assert(a == SUB ? ig_topic_filter_valid(t) : ig_topic_valid(t));
			}
		}
	}
	ig_policy_free(p);
}

/* ---- key service (issue 3): entropy, m2m, pairs, measurements ------------ */

Test(policy, entropy_topics_are_write_only)
{
	ig_policy *p = default_policy();
	const char *ids[] = {"dev1", "dev2"};
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++) {
		for (size_t k = 0; k < 2; k++) {
			char topic[64];
			snprintf(topic, sizeof topic, "iotguard/C/dev/%s/entropy", ids[k]);
			cr_expect_not(ig_policy_allows(p, (ig_role)r, READ, "C", "dev1", topic), "%s reads %s",
			              ig_role_name((ig_role)r), topic);
			cr_expect_not(ig_policy_allows(p, (ig_role)r, SUB, "C", "dev1", topic), "%s subscribes %s",
			              ig_role_name((ig_role)r), topic);
		}
		const char *filters[] = {"iotguard/C/dev/+/entropy", "iotguard/C/dev/dev1/+", "iotguard/C/dev/dev1/#",
		                         "iotguard/C/dev/#", "iotguard/C/#", "#"};
		for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++)
			cr_expect_not(ig_policy_allows(p, (ig_role)r, SUB, "C", "dev1", filters[k]), "%s subscribes %s",
			              ig_role_name((ig_role)r), filters[k]);
	}
	/* a device publishes only its own entropy, never retained */
	cr_expect(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "dev1", "iotguard/C/dev/dev1/entropy"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, PUB, "C", "dev1", "iotguard/C/dev/dev2/entropy"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_DEVICE, RET, "C", "dev1", "iotguard/C/dev/dev1/entropy"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_ANALYST, PUB, "C", "dev1", "iotguard/C/dev/dev1/entropy"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_MONITOR, PUB, "C", "dev1", "iotguard/C/dev/dev1/entropy"));
	ig_policy_free(p);
}

Test(policy, m2m_topic_rights)
{
	/* iotguard/C/m2m/<to>/<from>: a sender names itself as <from>, a
	 * receiver reads only what is addressed to it */
	static const access_case peer_cases[] = {
		{PUB, "iotguard/C/m2m/dev2/dev1", true}, {PUB, "iotguard/C/m2m/dev1/dev1", true},
		{PUB, "iotguard/C/m2m/dev1/dev2", false}, {PUB, "iotguard/C/m2m/dev2/dev3", false},
		{PUB, "iotguard/C/m2m/dev2", false}, {PUB, "iotguard/C/m2m/dev2/dev1/x", false},
		{PUB, "iotguard/D/m2m/dev2/dev1", false}, {RET, "iotguard/C/m2m/dev2/dev1", false},
		{SUB, "iotguard/C/m2m/dev1/+", true}, {SUB, "iotguard/C/m2m/dev1/dev2", true},
		{SUB, "iotguard/C/m2m/dev2/+", false}, {SUB, "iotguard/C/m2m/+/dev1", false},
		{SUB, "iotguard/C/m2m/#", false}, {SUB, "iotguard/C/m2m/dev1/#", false},
		{SUB, "iotguard/C/m2m/+/+", false},
		{READ, "iotguard/C/m2m/dev1/dev2", true}, {READ, "iotguard/C/m2m/dev2/dev1", false},
		{READ, "iotguard/C/m2m/dev1/dev2/x", false},
	};
	static const access_case watcher_cases[] = {
		{SUB, "iotguard/C/m2m/#", true}, {SUB, "iotguard/C/m2m/+/+", true},
		{SUB, "iotguard/C/m2m/dev1/dev2", true}, {READ, "iotguard/C/m2m/dev1/dev2", true},
		{SUB, "iotguard/D/m2m/#", false}, {PUB, "iotguard/C/m2m/dev1/mon1", false},
		{PUB, "iotguard/C/m2m/mon1/dev1", false},
	};
	ig_policy *p = default_policy();
	check_cases(p, IG_ROLE_DEVICE, "dev1", peer_cases, sizeof peer_cases / sizeof peer_cases[0]);
	check_cases(p, IG_ROLE_ANALYST, "dev1", peer_cases, sizeof peer_cases / sizeof peer_cases[0]);
	check_cases(p, IG_ROLE_MONITOR, "mon1", watcher_cases, sizeof watcher_cases / sizeof watcher_cases[0]);
	check_cases(p, IG_ROLE_ADMIN, "mon1", watcher_cases, sizeof watcher_cases / sizeof watcher_cases[0]);
	ig_policy_free(p);
}

Test(policy, pair_rule_needs_both_sides)
{
	ig_policy *p = default_policy();
	cr_expect(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_DEVICE));
	for (int a = IG_ROLE_DEVICE; a < IG_ROLE_COUNT; a++)
		for (int b = IG_ROLE_DEVICE; b < IG_ROLE_COUNT; b++)
			if (a != IG_ROLE_DEVICE || b != IG_ROLE_DEVICE)
				cr_expect_not(ig_policy_pair_allowed(p, (ig_role)a, (ig_role)b), "%d-%d", a, b);
	ig_policy_free(p);

	p = parse_ok("{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"analyst\"]}}");
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_ANALYST), "analyst did not list device");
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_ANALYST, IG_ROLE_DEVICE));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_DEVICE));
	ig_policy_free(p);

	p = parse_ok("{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"analyst\",\"device\"],"
	             "\"analyst\":[\"device\"],\"admin\":[]}}");
	cr_expect(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_ANALYST));
	cr_expect(ig_policy_pair_allowed(p, IG_ROLE_ANALYST, IG_ROLE_DEVICE));
	cr_expect(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_DEVICE));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_ANALYST, IG_ROLE_ANALYST));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_ADMIN, IG_ROLE_DEVICE));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_NONE, IG_ROLE_DEVICE));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, (ig_role)IG_ROLE_COUNT));
	cr_expect_not(ig_policy_pair_allowed(p, (ig_role)-1, IG_ROLE_DEVICE));
	cr_expect_not(ig_policy_pair_allowed(NULL, IG_ROLE_DEVICE, IG_ROLE_DEVICE));
	ig_policy_free(p);

	p = parse_ok("{\"version\":1,\"roles\":{}}");
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_DEVICE, IG_ROLE_DEVICE), "no m2m section: no pairs");
	ig_policy_free(p);
}

Test(policy, measurement_lists)
{
	uint8_t m1[32], m2[32];
	for (int i = 0; i < 32; i++) {
		m1[i] = (uint8_t)i;
		m2[i] = (uint8_t)(0xa0 + i);
	}
	ig_policy *p = default_policy();
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		cr_expect_eq(ig_policy_measurement_allowed(p, (ig_role)r, m1), 2, "default has no lists");
	ig_policy_free(p);

	p = parse_ok("{\"version\":1,\"roles\":{},\"attestation\":{"
	             "\"device\":[\"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\","
	             "\"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\"],"
	             "\"monitor\":[]}}");
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_DEVICE, m1), 1);
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_DEVICE, m2), 0);
	uint8_t ff[32];
	memset(ff, 0xff, 32);
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_DEVICE, ff), 1, "upper-case hex is accepted");
	m1[31] ^= 1;
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_DEVICE, m1), 0, "one bit off");
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_ANALYST, m1), 2);
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_MONITOR, m1), 0, "empty list allows nothing");
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_DEVICE, NULL), 0);
	cr_expect_eq(ig_policy_measurement_allowed(p, IG_ROLE_NONE, m1), 0);
	cr_expect_eq(ig_policy_measurement_allowed(NULL, IG_ROLE_DEVICE, m1), 0);
	ig_policy_free(p);
}

Test(policy, malformed_key_service_sections_are_rejected)
{
#define H64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	struct { const char *json, *needle; } cases[] = {
		{"{\"version\":1,\"roles\":{},\"m2m\":[]}", "m2m: must be an object"},
		{"{\"version\":1,\"roles\":{},\"m2m\":null}", "m2m: must be an object"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{},\"m2m\":{}}", "key \"m2m\" appears twice"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"robot\":[]}}", "m2m: unknown role \"robot\""},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":\"device\"}}", "m2m.device: must be an array"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[1]}}", "m2m.device[0]: must be a role name"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"device\",null]}}", "m2m.device[1]: must be a role"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"Device\"]}}", "m2m.device[0]: unknown role \"Device\""},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"none\"]}}", "unknown role \"none\""},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[\"device\",\"device\"]}}", "m2m.device[1]: \"device\" is "
		 "listed twice"},
		{"{\"version\":1,\"roles\":{},\"m2m\":{\"device\":[],\"device\":[]}}", "m2m: key \"device\" appears twice"},
		{"{\"version\":1,\"roles\":{},\"attestation\":[]}", "attestation: must be an object"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"robot\":[]}}", "attestation: unknown role \"robot\""},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":{}}}", "attestation.device: must be an array"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[7]}}", "attestation.device[0]: must be a string"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[\"" H64 "0\"]}}", "attestation.device[0]: '"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[\"" H64 "\",\"00\"]}}",
		 "attestation.device[1]: '00' is not 64 hex characters"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[\"\"]}}", "is not 64 hex"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":"
		 "[\"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"]}}", "is not 64 hex"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":"
		 "[\" 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"]}}", "is not 64 hex"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[\"" H64 "\",\"" H64 "\"]}}",
		 "attestation.device[1]: measurement is listed twice"},
		{"{\"version\":1,\"roles\":{},\"attestation\":{\"device\":[],\"device\":[]}}",
		 "attestation: key \"device\" appears twice"},
		{"{\"version\":1,\"roles\":{},\"attest\":{}}", "unknown top-level key \"attest\""},
	};
#undef H64
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ig_policy *p = (ig_policy *)1;
		ig_error err = {0};
		int rc = ig_policy_parse(cases[i].json, strlen(cases[i].json), &p, &err);
		cr_expect_eq(rc, IG_ERR_INVAL, "case %zu should fail: %s", i, cases[i].json);
		cr_expect_null(p, "case %zu leaves no policy", i);
		cr_expect_not_null(strstr(err.msg, cases[i].needle), "case %zu: message '%s' should contain '%s'", i,
		                   err.msg, cases[i].needle);
		if (rc == IG_OK)
			ig_policy_free(p);
	}
	/* the sections are optional and may be empty */
	ig_policy *p = parse_ok("{\"version\":1,\"roles\":{},\"m2m\":{},\"attestation\":{}}");
	ig_policy_free(p);
}

/* ---- single_use (issue 7) ------------------------------------------------ */

Test(policy, single_use_defaults_and_parse)
{
	ig_policy *p = default_policy();
	cr_assert(ig_policy_single_use(p, IG_ROLE_DEVICE), "devices' tokens are single-use by default");
	cr_assert(ig_policy_single_use(p, IG_ROLE_ADMIN), "admins' tokens are single-use by default");
	cr_assert_not(ig_policy_single_use(p, IG_ROLE_ANALYST));
	cr_assert_not(ig_policy_single_use(p, IG_ROLE_MONITOR));
	cr_assert_not(ig_policy_single_use(p, IG_ROLE_NONE));
	cr_assert_not(ig_policy_single_use(p, (ig_role)99));
	cr_assert_not(ig_policy_single_use(NULL, IG_ROLE_DEVICE));
	ig_policy_free(p);

	p = parse_ok("{\"version\":1,\"roles\":{\"monitor\":{\"single_use\":true},\"device\":{\"single_use\":false}}}");
	cr_assert(ig_policy_single_use(p, IG_ROLE_MONITOR));
	cr_assert_not(ig_policy_single_use(p, IG_ROLE_DEVICE));
	cr_assert_not(ig_policy_single_use(p, IG_ROLE_ADMIN), "absent means off");
	ig_policy_free(p);

	const char *bad[] = {
		"{\"version\":1,\"roles\":{\"device\":{\"single_use\":1}}}",
		"{\"version\":1,\"roles\":{\"device\":{\"single_use\":\"true\"}}}",
		"{\"version\":1,\"roles\":{\"device\":{\"single_use\":null}}}",
		"{\"version\":1,\"roles\":{\"device\":{\"single_use\":true,\"single_use\":true}}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ig_policy *q = NULL;
		ig_error err = {0};
		cr_assert_neq(ig_policy_parse(bad[i], strlen(bad[i]), &q, &err), IG_OK, "%s", bad[i]);
		cr_assert_null(q);
		cr_assert(strstr(err.msg, "single_use") != NULL, "message names the key: %s", err.msg);
	}
}

/* ---- witnesses (issue 12) ------------------------------------------------ */

Test(policy, witness_role_reaches_only_its_ch_topic_and_inbox)
{
	ig_policy *p = default_policy();
	cr_expect(ig_policy_allows(p, IG_ROLE_WITNESS, PUB, "C", "w1", "iotguard/C/ch/w1"));
	cr_expect(ig_policy_allows(p, IG_ROLE_WITNESS, SUB, "C", "w1", "iotguard/C/dev/w1/inbox"));
	cr_expect(ig_policy_allows(p, IG_ROLE_WITNESS, READ, "C", "w1", "iotguard/C/dev/w1/inbox"));
	cr_expect(ig_policy_single_use(p, IG_ROLE_WITNESS));
	const char *denied_pub[] = {"iotguard/C/ch/w2", "iotguard/C/dev/w1/status", "iotguard/C/dev/w1/data/t",
	                            "iotguard/C/dev/w1/entropy", "iotguard/C/ledger/head", "iotguard/C/m2m/w2/w1"};
	for (size_t i = 0; i < sizeof denied_pub / sizeof denied_pub[0]; i++)
		cr_expect_not(ig_policy_allows(p, IG_ROLE_WITNESS, PUB, "C", "w1", denied_pub[i]), "%s", denied_pub[i]);
	const char *denied_sub[] = {"iotguard/C/dev/w2/inbox", "iotguard/C/ledger/head", "iotguard/C/dev/+/data/+",
	                            "iotguard/C/stats", "iotguard/C/#", "#"};
	for (size_t i = 0; i < sizeof denied_sub / sizeof denied_sub[0]; i++)
		cr_expect_not(ig_policy_allows(p, IG_ROLE_WITNESS, SUB, "C", "w1", denied_sub[i]), "%s", denied_sub[i]);
	cr_expect_not(ig_policy_allows(p, IG_ROLE_WITNESS, RET, "C", "w1", "iotguard/C/ch/w1"));
	cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_WITNESS, IG_ROLE_DEVICE));
	/* the default policy names no witnesses */
	const ig_cosig_vkey *keys = (const ig_cosig_vkey *)1;
	size_t quorum = 9;
	cr_expect_eq(ig_policy_witnesses(p, &keys, &quorum), 0);
	cr_expect_null(keys);
	cr_expect_eq(quorum, 0);
	ig_policy_free(p);
}

/* A vkey text for name with a fixed key (seed byte `seed`) and type. */
static void witness_vkey(char *out, size_t cap, const char *name, uint8_t type, uint8_t seed)
{
	uint8_t s[32], pk[32], sk[64];
	memset(s, seed, sizeof s);
	crypto_sign_seed_keypair(pk, sk, s);
	ig_cosig_vkey k;
	cr_assert_eq(ig_cosig_vkey_make(&k, name, type, pk), IG_OK);
	cr_assert_gt(ig_cosig_vkey_encode(out, cap, &k), 0);
}

static void witness_policy(char *out, size_t cap, const char *keys_json, const char *quorum_json)
{
	snprintf(out, cap, "{\"version\":1,\"roles\":{},\"witnesses\":{\"keys\":%s%s%s}}", keys_json,
	         quorum_json ? ",\"quorum\":" : "", quorum_json ? quorum_json : "");
}

static void witness_refused(const char *json, const char *needle)
{
	ig_policy *p = (ig_policy *)1;
	ig_error err = {0};
	cr_expect_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_ERR_INVAL, "%s", json);
	cr_expect_null(p);
	cr_expect(strstr(err.msg, needle) != NULL, "error '%s' should mention '%s'", err.msg, needle);
}

Test(policy, witnesses_parse_keys_and_quorum)
{
	char v1[IG_COSIG_VKEY_MAX], v2[IG_COSIG_VKEY_MAX], v3[IG_COSIG_VKEY_MAX], keys[1024], json[2048];
	witness_vkey(v1, sizeof v1, "w1", IG_COSIG_TYPE_COSIG_V1, 1);
	witness_vkey(v2, sizeof v2, "w2", IG_COSIG_TYPE_COSIG_V1, 2);
	witness_vkey(v3, sizeof v3, "w3", IG_COSIG_TYPE_COSIG_V1, 3);
	snprintf(keys, sizeof keys, "[\"%s\",\"%s\",\"%s\"]", v1, v2, v3);
	witness_policy(json, sizeof json, keys, "2");
	ig_policy *p = parse_ok(json);
	const ig_cosig_vkey *k = NULL;
	size_t quorum = 0;
	cr_assert_eq(ig_policy_witnesses(p, &k, &quorum), 3);
	cr_expect_eq(quorum, 2);
	cr_expect_str_eq(k[0].name, "w1");
	cr_expect_str_eq(k[2].name, "w3");
	cr_expect_eq(k[1].type, IG_COSIG_TYPE_COSIG_V1);
	char again[IG_COSIG_VKEY_MAX];
	cr_assert_gt(ig_cosig_vkey_encode(again, sizeof again, &k[1]), 0);
	cr_expect_str_eq(again, v2);
	ig_policy_free(p);
}

Test(policy, witnesses_refuse_what_could_never_cosign)
{
	char v1[IG_COSIG_VKEY_MAX], v2[IG_COSIG_VKEY_MAX], plain[IG_COSIG_VKEY_MAX], slash[IG_COSIG_VKEY_MAX];
	char keys[1024], json[2048];
	witness_vkey(v1, sizeof v1, "w1", IG_COSIG_TYPE_COSIG_V1, 1);
	witness_vkey(v2, sizeof v2, "w1", IG_COSIG_TYPE_COSIG_V1, 2);
	witness_vkey(plain, sizeof plain, "w3", IG_COSIG_TYPE_ED25519, 3);
	witness_vkey(slash, sizeof slash, "w/4", IG_COSIG_TYPE_COSIG_V1, 4);

	snprintf(keys, sizeof keys, "[\"%s\"]", v1);
	witness_policy(json, sizeof json, keys, "0");
	witness_refused(json, "witnesses.quorum: must be a whole number from 1 to 1");
	witness_policy(json, sizeof json, keys, "2");
	witness_refused(json, "witnesses.quorum");
	witness_policy(json, sizeof json, keys, "1.5");
	witness_refused(json, "witnesses.quorum");
	witness_policy(json, sizeof json, keys, NULL);
	witness_refused(json, "witnesses.quorum");
	witness_policy(json, sizeof json, "[]", "1");
	witness_refused(json, "witnesses.keys: lists 0 keys");
	witness_policy(json, sizeof json, "\"x\"", "1");
	witness_refused(json, "witnesses.keys: must be an array");
	witness_policy(json, sizeof json, "[\"w1+00000000+AA==\"]", "1");
	witness_refused(json, "witnesses.keys[0]: 'w1+00000000+AA==' is not a vkey");
	witness_policy(json, sizeof json, "[7]", "1");
	witness_refused(json, "witnesses.keys[0]: must be a vkey string");

	snprintf(keys, sizeof keys, "[\"%s\",\"%s\"]", v1, v2);
	witness_policy(json, sizeof json, keys, "1");
	witness_refused(json, "witnesses.keys[1]: witness 'w1' is listed twice");
	snprintf(keys, sizeof keys, "[\"%s\"]", plain);
	witness_policy(json, sizeof json, keys, "1");
	witness_refused(json, "has type 0x01");
	snprintf(keys, sizeof keys, "[\"%s\"]", slash);
	witness_policy(json, sizeof json, keys, "1");
	witness_refused(json, "name 'w/4' is not an identity id");

	snprintf(json, sizeof json, "{\"version\":1,\"roles\":{},\"witnesses\":{\"keys\":[\"%s\"],\"quorum\":1,"
	         "\"extra\":1}}", v1);
	witness_refused(json, "witnesses: unknown key \"extra\"");
	witness_refused("{\"version\":1,\"roles\":{},\"witnesses\":[]}", "witnesses: must be an object");

	/* 33 keys: more than a checkpoint can carry */
	size_t off = 0;
	static char many[33 * (IG_COSIG_VKEY_MAX + 3) + 8];
	many[off++] = '[';
	for (int i = 0; i < 33; i++) {
		char name[8], v[IG_COSIG_VKEY_MAX];
		snprintf(name, sizeof name, "w%d", i);
		witness_vkey(v, sizeof v, name, IG_COSIG_TYPE_COSIG_V1, (uint8_t)i);
		off += (size_t)snprintf(many + off, sizeof many - off, "%s\"%s\"", i ? "," : "", v);
	}
	snprintf(many + off, sizeof many - off, "]");
	static char big[sizeof many + 128];
	witness_policy(big, sizeof big, many, "2");
	witness_refused(big, "witnesses.keys: lists 33 keys");
}

/* ---- custody holder roles (issue 9) ---------------------------------------- */

static void custody_refused(const char *section, const char *needle)
{
	char json[512];
	snprintf(json, sizeof json, "{\"version\":1,\"roles\":{},\"custody\":%s}", section);
	ig_policy *p = (ig_policy *)1;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_ERR_INVAL, "accepted: %s", json);
	cr_assert_null(p);
	cr_assert(strstr(err.msg, needle), "error '%s' does not mention '%s'", err.msg, needle);
}

Test(policy, custody_holder_roles_parse_and_default_to_device)
{
	ig_policy *p = default_policy();
	cr_expect_eq(ig_policy_custody_holder_roles(p), 1u << IG_ROLE_DEVICE);
	ig_policy_free(p);
	p = parse_ok("{\"version\":1,\"roles\":{}}");
	cr_expect_eq(ig_policy_custody_holder_roles(p), 1u << IG_ROLE_DEVICE, "no section: devices only");
	ig_policy_free(p);
	cr_expect_eq(ig_policy_custody_holder_roles(NULL), 1u << IG_ROLE_DEVICE);
	p = parse_ok("{\"version\":1,\"roles\":{},\"custody\":{\"holder_roles\":[\"device\",\"analyst\"]}}");
	cr_expect_eq(ig_policy_custody_holder_roles(p), (1u << IG_ROLE_DEVICE) | (1u << IG_ROLE_ANALYST));
	ig_policy_free(p);
	p = parse_ok("{\"version\":1,\"roles\":{},\"custody\":{\"holder_roles\":[\"analyst\"]}}");
	cr_expect_eq(ig_policy_custody_holder_roles(p), 1u << IG_ROLE_ANALYST, "a list replaces the default");
	ig_policy_free(p);
	p = parse_ok("{\"version\":1,\"roles\":{},\"custody\":{}}");
	cr_expect_eq(ig_policy_custody_holder_roles(p), 1u << IG_ROLE_DEVICE);
	ig_policy_free(p);
}

Test(policy, custody_holder_roles_refuse_unknown_roles_and_bad_shapes)
{
	custody_refused("{\"holder_roles\":[\"device\",\"robot\"]}", "custody.holder_roles[1]: unknown role \"robot\"");
	custody_refused("{\"holder_roles\":[\"Device\"]}", "unknown role \"Device\"");
	custody_refused("{\"holder_roles\":[]}", "non-empty array");
	custody_refused("{\"holder_roles\":\"device\"}", "non-empty array");
	custody_refused("{\"holder_roles\":[1]}", "custody.holder_roles[0]: must be a role name string");
	custody_refused("{\"holder_roles\":[\"device\",\"device\"]}", "listed twice");
	custody_refused("{\"holders\":[\"device\"]}", "custody: unknown key \"holders\"");
	custody_refused("[\"device\"]", "custody: must be an object");
	custody_refused("{\"holder_roles\":[\"device\"],\"holder_roles\":[\"analyst\"]}", "custody");
}

/* ---- key rings (issue 10) ---------------------------------------------------- */

static void kp_refused(const char *section, const char *needle)
{
	char json[512];
	snprintf(json, sizeof json, "{\"version\":1,\"roles\":{},\"predistribution\":%s}", section);
	ig_policy *p = (ig_policy *)1;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_ERR_INVAL, "accepted: %s", json);
	cr_assert_null(p);
	cr_assert(strstr(err.msg, needle), "error '%s' does not mention '%s'", err.msg, needle);
}

Test(policy, predistribution_parses_and_is_off_when_absent)
{
	uint32_t P = 7, m = 7;
	uint8_t q = 7;
	ig_policy *p = default_policy();
	cr_expect(!ig_policy_kp(p, &P, &m, &q), "the default policy has no predistribution");
	cr_expect_eq(P, 7, "outputs untouched when off");
	ig_policy_free(p);
	cr_expect(!ig_policy_kp(NULL, &P, &m, &q));
	p = parse_ok("{\"version\":1,\"roles\":{},\"predistribution\":{\"pool\":10000,\"ring\":75,\"q\":2}}");
	cr_assert(ig_policy_kp(p, &P, &m, &q));
	cr_expect_eq(P, 10000);
	cr_expect_eq(m, 75);
	cr_expect_eq(q, 2);
	cr_expect(ig_policy_kp(p, NULL, NULL, NULL));
	ig_policy_free(p);
	/* The edges of every range. */
	p = parse_ok("{\"version\":1,\"roles\":{},\"predistribution\":{\"pool\":2,\"ring\":1,\"q\":1}}");
	cr_assert(ig_policy_kp(p, &P, &m, &q));
	cr_expect_eq(P, 2);
	ig_policy_free(p);
	p = parse_ok("{\"version\":1,\"roles\":{},\"predistribution\":{\"pool\":16777216,\"ring\":1024,\"q\":16}}");
	cr_assert(ig_policy_kp(p, &P, &m, &q));
	cr_expect_eq(P, 16777216);
	cr_expect_eq(m, 1024);
	cr_expect_eq(q, 16);
	ig_policy_free(p);
}

Test(policy, predistribution_errors_name_the_field)
{
	kp_refused("{\"ring\":75,\"q\":1}", "predistribution.pool is missing");
	kp_refused("{\"pool\":100,\"q\":1}", "predistribution.ring is missing");
	kp_refused("{\"pool\":100,\"ring\":10}", "predistribution.q is missing");
	kp_refused("{\"pool\":1,\"ring\":1,\"q\":1}", "predistribution.pool: must be a whole number from 2 to 16777216");
	kp_refused("{\"pool\":16777217,\"ring\":1,\"q\":1}", "predistribution.pool");
	kp_refused("{\"pool\":100.5,\"ring\":1,\"q\":1}", "predistribution.pool");
	kp_refused("{\"pool\":\"100\",\"ring\":1,\"q\":1}", "predistribution.pool");
	kp_refused("{\"pool\":5000,\"ring\":0,\"q\":1}", "predistribution.ring: must be a whole number from 1 to 1024");
	kp_refused("{\"pool\":5000,\"ring\":1025,\"q\":1}", "predistribution.ring");
	kp_refused("{\"pool\":5000,\"ring\":20,\"q\":0}", "predistribution.q: must be a whole number from 1 to 16");
	kp_refused("{\"pool\":5000,\"ring\":20,\"q\":17}", "predistribution.q");
	kp_refused("{\"pool\":50,\"ring\":60,\"q\":1}", "predistribution.ring: 60 is more than the pool (50)");
	kp_refused("{\"pool\":50,\"ring\":3,\"q\":4}", "predistribution.q: 4 is more than the ring (3)");
	kp_refused("{\"pool\":50,\"ring\":3,\"q\":1,\"size\":2}", "predistribution: unknown key \"size\"");
	kp_refused("[1,2,3]", "predistribution: must be an object");
	kp_refused("{\"pool\":50,\"pool\":60,\"ring\":3,\"q\":1}", "predistribution");
}

Test(policy, kp_revoked_is_readable_by_every_role_but_witness)
{
	ig_policy *p = default_policy();
	const ig_role readers[] = {IG_ROLE_DEVICE, IG_ROLE_ANALYST, IG_ROLE_MONITOR, IG_ROLE_ADMIN};
	for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
		const char *r = ig_role_name(readers[i]);
		cr_expect(ig_policy_allows(p, readers[i], SUB, "C", "x1", "iotguard/C/kp/revoked"), "%s subscribes", r);
		cr_expect(ig_policy_allows(p, readers[i], READ, "C", "x1", "iotguard/C/kp/revoked"), "%s reads", r);
		cr_expect(!ig_policy_allows(p, readers[i], PUB, "C", "x1", "iotguard/C/kp/revoked"), "%s may not publish", r);
		cr_expect(!ig_policy_allows(p, readers[i], RET, "C", "x1", "iotguard/C/kp/revoked"), "%s may not retain", r);
		cr_expect(!ig_policy_allows(p, readers[i], SUB, "C", "x1", "iotguard/D/kp/revoked"), "%s: other cluster", r);
		cr_expect(!ig_policy_allows(p, readers[i], SUB, "C", "x1", "iotguard/C/kp/#"), "%s: exact topic only", r);
		cr_expect(!ig_policy_allows(p, readers[i], SUB, "C", "x1", "iotguard/C/kp/+"), "%s: exact topic only", r);
	}
	cr_expect(!ig_policy_allows(p, IG_ROLE_WITNESS, SUB, "C", "w1", "iotguard/C/kp/revoked"));
	ig_policy_free(p);
}

/* ---- bridges (issue 11, docs/PROTOCOL.md "Several brokers") ------------- */

/* Exactly the bridged topics, for any device id, both ways; nothing of the
 * cluster head's own (requests, ledger, stats, custody, key rings, admin). */
Test(policy, bridge_role_reaches_exactly_the_bridged_topics)
{
	ig_policy *p = default_policy();
	const char *bridged[] = {"iotguard/C/dev/dev1/inbox", "iotguard/C/dev/dev2/status",
	                         "iotguard/C/dev/dev1/data/temp", "iotguard/C/dev/dev1/results/r1",
	                         "iotguard/C/m2m/dev1/dev2", "iotguard/C/dev/b1/inbox", "iotguard/C/bridge/nonces"};
	for (size_t i = 0; i < sizeof bridged / sizeof bridged[0]; i++) {
		cr_expect(ig_policy_allows(p, IG_ROLE_BRIDGE, PUB, "C", "b1", bridged[i]), "publish %s", bridged[i]);
		cr_expect(ig_policy_allows(p, IG_ROLE_BRIDGE, READ, "C", "b1", bridged[i]), "read %s", bridged[i]);
	}
	/* the filters of config/bridge-leaf.conf's topic lines */
	const char *filters[] = {"iotguard/C/dev/+/inbox", "iotguard/C/dev/+/status", "iotguard/C/dev/+/data/#",
	                         "iotguard/C/dev/+/results/#", "iotguard/C/m2m/#", "iotguard/C/bridge/nonces"};
	for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
		cr_expect(ig_policy_allows(p, IG_ROLE_BRIDGE, SUB, "C", "b1", filters[i]), "subscribe %s", filters[i]);
	cr_expect(ig_policy_allows(p, IG_ROLE_BRIDGE, RET, "C", "b1", "iotguard/C/dev/dev1/status"),
	          "retained device statuses cross the bridge as published");
	cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, RET, "C", "b1", "iotguard/C/dev/dev1/inbox"));
	cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, RET, "C", "b1", "iotguard/C/m2m/dev1/dev2"));

	const char *never[] = {"iotguard/C/ch/b1", "iotguard/C/ch/dev1", "iotguard/C/dev/dev1/entropy",
	                       "iotguard/C/ledger/head", "iotguard/C/ledger/events", "iotguard/C/stats",
	                       "iotguard/C/custody", "iotguard/C/custody/state", "iotguard/C/kp/revoked",
	                       "$CONTROL/iotguard/v1", "$CONTROL/iotguard/v1/response",
	                       "$SYS/broker/connection/b1/state", "iotguard/D/dev/dev1/inbox",
	                       "iotguard/C/dev/dev1/inbox/x", "iotguard/C/m2mx/a/b"};
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, PUB, "C", "b1", never[i]), "publish %s", never[i]);
		cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, READ, "C", "b1", never[i]), "read %s", never[i]);
		cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, SUB, "C", "b1", never[i]), "subscribe %s", never[i]);
	}
	const char *wide[] = {"#", "iotguard/#", "iotguard/C/#", "iotguard/C/dev/#", "iotguard/C/dev/+/#",
	                      "iotguard/C/+/+/inbox", "iotguard/C/ch/#", "iotguard/+/dev/+/inbox"};
	for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
		cr_expect_not(ig_policy_allows(p, IG_ROLE_BRIDGE, SUB, "C", "b1", wide[i]), "subscribe %s", wide[i]);
	/* no session keys with anyone */
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		cr_expect_not(ig_policy_pair_allowed(p, IG_ROLE_BRIDGE, (ig_role)r));
	ig_policy_free(p);
}

/* A bridge presents one configured token at every reconnect: never
 * single-use, and its lifetime may reach a year (ttl_bridge, 30 days by
 * default in the plugin) while every other role stays within 7 days. */
Test(policy, bridge_tokens_are_long_lived_and_never_single_use)
{
	ig_policy *p = default_policy();
	cr_expect_not(ig_policy_single_use(p, IG_ROLE_BRIDGE));
	cr_expect_eq(ig_policy_max_ttl(p, IG_ROLE_BRIDGE), 0, "the plugin's ttl_bridge applies by default");
	ig_policy_free(p);
	cr_expect_eq(ig_policy_ttl_limit(IG_ROLE_BRIDGE), 365u * 86400u);
	cr_expect_eq(ig_policy_ttl_limit(IG_ROLE_DEVICE), 7u * 86400u);
	cr_expect_eq(ig_policy_ttl_limit(IG_ROLE_WITNESS), 7u * 86400u);

	p = parse_ok("{\"version\":1,\"roles\":{\"bridge\":{\"max_token_ttl\":31536000,\"single_use\":false}}}");
	cr_expect_eq(ig_policy_max_ttl(p, IG_ROLE_BRIDGE), 31536000u);
	cr_expect_not(ig_policy_single_use(p, IG_ROLE_BRIDGE));
	ig_policy_free(p);

	const char *bad[][2] = {
		{"{\"version\":1,\"roles\":{\"bridge\":{\"single_use\":true}}}", "reconnect"},
		{"{\"version\":1,\"roles\":{\"bridge\":{\"max_token_ttl\":31536001}}}", "31536000"},
		{"{\"version\":1,\"roles\":{\"device\":{\"max_token_ttl\":2592000}}}", "604800"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ig_policy *q = (ig_policy *)1;
		ig_error err = {0};
		cr_expect_eq(ig_policy_parse(bad[i][0], strlen(bad[i][0]), &q, &err), IG_ERR_INVAL, "%s", bad[i][0]);
		cr_expect_null(q);
		cr_expect(strstr(err.msg, bad[i][1]) != NULL, "error '%s' should mention '%s'", err.msg, bad[i][1]);
	}
}
