/*
 * test_admin.c: the admin API parser is the gate between a network message
 * and a ledger write, so every field is tried missing, mistyped, too long
 * and out of range, and what the CLI builds must parse back unchanged.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_admin.h"
#include "ig_registry.h"
#include "testutil.h"

#define PK_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int parse_text(const char *json, ig_admin_cmd *cmd, ig_error *err)
{
	cJSON *obj = cJSON_Parse(json);
	cr_assert_not_null(obj, "test JSON must parse: %s", json);
	int rc = ig_admin_parse_command(obj, cmd, err);
	cJSON_Delete(obj);
	return rc;
}

static void parse_ok(const char *json, ig_admin_cmd *cmd)
{
	ig_error err = {0};
	int rc = parse_text(json, cmd, &err);
	cr_assert_eq(rc, IG_OK, "should parse: %s: %s", json, err.msg);
}

Test(admin, kind_names)
{
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_ENROLL), "enroll");
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_REVOKE), "revoke");
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_LIST), "list_identities");
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_GET), "get_identity");
	cr_expect_str_eq(ig_admin_kind_name((ig_admin_kind)0), "unknown");
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_JOIN_CODES), "create_join_codes");
	cr_expect_str_eq(ig_admin_kind_name(IG_ADMIN_CREDIT), "credit");
	cr_expect_str_eq(ig_admin_kind_name((ig_admin_kind)7), "unknown");
}

Test(admin, parse_enroll)
{
	ig_admin_cmd c;
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\","
	         "\"correlation\":\"c1\"}", &c);
	cr_expect_eq(c.kind, IG_ADMIN_ENROLL);
	cr_expect_str_eq(c.command, "enroll");
	cr_expect_str_eq(c.correlation, "c1");
	cr_expect_str_eq(c.id, "dev1");
	cr_expect_eq(c.role, IG_ROLE_DEVICE);
	cr_expect_eq(c.pk[0], 0x00);
	cr_expect_eq(c.pk[1], 0x11);
	cr_expect_eq(c.pk[31], 0xff);

	parse_ok("{\"command\":\"enroll\",\"id\":\"A.b_c-9\",\"role\":\"admin\",\"pubkey\":"
	         "\"00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\"}", &c);
	cr_expect_eq(c.role, IG_ROLE_ADMIN);
	cr_expect_eq(c.pk[10], 0xaa, "uppercase hex is accepted");
	cr_expect_str_eq(c.correlation, "", "absent correlation is empty");
}

Test(admin, parse_revoke_get_list)
{
	ig_admin_cmd c;
	parse_ok("{\"command\":\"revoke\",\"id\":\"dev1\"}", &c);
	cr_expect_eq(c.kind, IG_ADMIN_REVOKE);
	cr_expect_str_eq(c.reason, "");
	parse_ok("{\"command\":\"revoke\",\"id\":\"dev1\",\"reason\":\"lost: device stolen (ticket #42)\"}", &c);
	cr_expect_str_eq(c.reason, "lost: device stolen (ticket #42)");
	parse_ok("{\"command\":\"revoke\",\"id\":\"dev1\",\"reason\":\"\"}", &c);
	cr_expect_str_eq(c.reason, "");

	char json[600], reason[IG_REASON_MAX + 1];
	memset(reason, 'r', IG_REASON_MAX);
	reason[IG_REASON_MAX] = '\0';
	snprintf(json, sizeof json, "{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"%s\"}", reason);
	parse_ok(json, &c);
	cr_expect_eq(strlen(c.reason), IG_REASON_MAX);

	parse_ok("{\"correlation\":\"x\",\"command\":\"get_identity\",\"id\":\"dev9\"}", &c);
	cr_expect_eq(c.kind, IG_ADMIN_GET);
	cr_expect_str_eq(c.id, "dev9");
	cr_expect_str_eq(c.correlation, "x");

	parse_ok("{\"command\":\"list_identities\"}", &c);
	cr_expect_eq(c.kind, IG_ADMIN_LIST);
	cr_expect_eq(c.role, IG_ROLE_NONE);
	cr_expect_eq(c.status_filter, -1);
	cr_expect_eq(c.offset, 0);
	cr_expect_eq(c.limit, 100);

	parse_ok("{\"command\":\"list_identities\",\"role\":\"monitor\",\"status\":\"revoked\",\"offset\":4294967295,"
	         "\"limit\":1000}", &c);
	cr_expect_eq(c.role, IG_ROLE_MONITOR);
	cr_expect_eq(c.status_filter, IG_ID_REVOKED);
	cr_expect_eq(c.offset, 4294967295u);
	cr_expect_eq(c.limit, IG_ADMIN_LIST_MAX);
	parse_ok("{\"command\":\"list_identities\",\"status\":\"active\",\"limit\":1,\"offset\":0}", &c);
	cr_expect_eq(c.status_filter, IG_ID_ACTIVE);
	cr_expect_eq(c.limit, 1);
	parse_ok("{\"command\":\"list_identities\",\"status\":\"pending\",\"limit\":5.0}", &c);
	cr_expect_eq(c.status_filter, IG_ID_PENDING);
	cr_expect_eq(c.limit, 5);
}

Test(admin, correlation_limits)
{
	ig_admin_cmd c;
	char json[300], corr[IG_ADMIN_CORRELATION_MAX + 2];
	memset(corr, 'k', IG_ADMIN_CORRELATION_MAX);
	corr[IG_ADMIN_CORRELATION_MAX] = '\0';
	snprintf(json, sizeof json, "{\"command\":\"get_identity\",\"id\":\"a\",\"correlation\":\"%s\"}", corr);
	parse_ok(json, &c);
	cr_expect_str_eq(c.correlation, corr);

	strcat(corr, "k");
	snprintf(json, sizeof json, "{\"command\":\"get_identity\",\"id\":\"a\",\"correlation\":\"%s\"}", corr);
	ig_error err = {0};
	cr_expect_eq(parse_text(json, &c, &err), IG_ERR_INVAL);
	cr_expect_not_null(strstr(err.msg, "correlation"), "%s", err.msg);
	cr_expect_str_eq(c.correlation, "", "an over-long correlation is not echoed");
	cr_expect_str_eq(c.command, "get_identity");
}

Test(admin, unknown_command_is_echoed)
{
	ig_admin_cmd c;
	ig_error err = {0};
	cr_expect_eq(parse_text("{\"command\":\"delete\",\"correlation\":\"c9\",\"id\":\"x\"}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(c.kind, 0);
	cr_expect_str_eq(c.command, "delete");
	cr_expect_str_eq(c.correlation, "c9");
	cr_expect_not_null(strstr(err.msg, "unknown command \"delete\""), "%s", err.msg);

	/* names longer than the echo buffer are cut, not overflowed */
	cr_expect_eq(parse_text("{\"command\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(strlen(c.command), sizeof c.command - 1);
	cr_expect_eq(strncmp(c.command, "abcdefghijklmnopqrstuvwxyz01234", sizeof c.command - 1), 0);

	cr_expect_eq(parse_text("{\"command\":\"ENROLL\"}", &c, &err), IG_ERR_INVAL);
	cr_expect_str_eq(c.command, "ENROLL");
	cr_expect_eq(parse_text("{\"command\":\"\"}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(c.kind, 0);
}

Test(admin, field_errors_keep_kind_and_echo)
{
	ig_admin_cmd c;
	ig_error err = {0};
	cr_expect_eq(parse_text("{\"command\":\"enroll\",\"correlation\":\"z\",\"id\":\"a/b\"}", &c, &err),
	             IG_ERR_INVAL);
	cr_expect_eq(c.kind, IG_ADMIN_ENROLL, "known command with bad fields keeps its kind (malformed)");
	cr_expect_str_eq(c.command, "enroll");
	cr_expect_str_eq(c.correlation, "z");
}

Test(admin, every_invalid_variant_is_rejected)
{
	struct { const char *json, *needle; } cases[] = {
		{"[]", "must be a JSON object"},
		{"\"enroll\"", "must be a JSON object"},
		{"null", "must be a JSON object"},
		{"{}", "\"command\" is missing"},
		{"{\"id\":\"dev1\"}", "\"command\" is missing"},
		{"{\"command\":1}", "\"command\" must be a string"},
		{"{\"command\":null}", "\"command\" must be a string"},
		{"{\"command\":[\"enroll\"]}", "\"command\" must be a string"},
		{"{\"command\":\"Enroll\"}", "unknown command"},
		{"{\"command\":\"get_identity\",\"id\":\"a\",\"correlation\":7}", "\"correlation\" must be a string"},
		{"{\"command\":\"get_identity\",\"id\":\"a\",\"correlation\":null}", "\"correlation\" must be a string"},
		/* enroll */
		{"{\"command\":\"enroll\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "enroll: \"id\" is missing"},
		{"{\"command\":\"enroll\",\"id\":\"\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "enroll: \"id\" must be"},
		{"{\"command\":\"enroll\",\"id\":\"a/b\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "\"id\" must be"},
		{"{\"command\":\"enroll\",\"id\":\"a b\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "\"id\" must be"},
		{"{\"command\":\"enroll\",\"id\":\"+\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "\"id\" must be"},
		{"{\"command\":\"enroll\",\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
		 "\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "1 to 64 characters"},
		{"{\"command\":\"enroll\",\"id\":7,\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", "\"id\" must be a string"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"pubkey\":\"" PK_HEX "\"}", "\"role\" is missing"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"root\",\"pubkey\":\"" PK_HEX "\"}", "unknown role \"root\""},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"none\",\"pubkey\":\"" PK_HEX "\"}", "unknown role \"none\""},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"\",\"pubkey\":\"" PK_HEX "\"}", "unknown role"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":1,\"pubkey\":\"" PK_HEX "\"}", "\"role\" must be a string"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\"}", "\"pubkey\" is missing"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":\"\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":"
		 "\"0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "0\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "00\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":"
		 "\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":"
		 "\"00 12233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}", "64 hex"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":12}", "\"pubkey\" must be a string"},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\",\"reason\":\"x\"}",
		 "enroll: unknown field \"reason\""},
		{"{\"command\":\"enroll\",\"id\":\"d\",\"id\":\"e\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}",
		 "field \"id\" appears twice"},
		{"{\"command\":\"enroll\",\"command\":\"enroll\",\"id\":\"d\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}",
		 "field \"command\" appears twice"},
		{"{\"command\":\"enroll\",\"ID\":\"d\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}",
		 "unknown field \"ID\""},
		/* revoke */
		{"{\"command\":\"revoke\"}", "revoke: \"id\" is missing"},
		{"{\"command\":\"revoke\",\"id\":\"\"}", "revoke: \"id\" must be"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"line\\nbreak\"}", "printable ASCII"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"tab\\there\"}", "printable ASCII"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"del\\u007f\"}", "printable ASCII"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"esc\\u001b[2J\"}", "printable ASCII"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":\"caf\\u00e9\"}", "printable ASCII"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reason\":7}", "\"reason\" must be a string"},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"role\":\"device\"}", "revoke: unknown field \"role\""},
		{"{\"command\":\"revoke\",\"id\":\"d\",\"reasons\":\"x\"}", "unknown field \"reasons\""},
		/* get_identity */
		{"{\"command\":\"get_identity\"}", "get_identity: \"id\" is missing"},
		{"{\"command\":\"get_identity\",\"id\":null}", "\"id\" must be a string"},
		{"{\"command\":\"get_identity\",\"id\":\"d\",\"role\":\"device\"}", "unknown field \"role\""},
		/* list_identities */
		{"{\"command\":\"list_identities\",\"role\":\"x\"}", "unknown role \"x\""},
		{"{\"command\":\"list_identities\",\"role\":null}", "\"role\" must be a string"},
		{"{\"command\":\"list_identities\",\"status\":\"deleted\"}", "\"status\" must be"},
		{"{\"command\":\"list_identities\",\"status\":\"Active\"}", "\"status\" must be"},
		{"{\"command\":\"list_identities\",\"status\":1}", "\"status\" must be a string"},
		{"{\"command\":\"list_identities\",\"offset\":-1}", "\"offset\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"offset\":1.5}", "\"offset\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"offset\":\"3\"}", "\"offset\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"offset\":4294967296}", "\"offset\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"offset\":1e300}", "\"offset\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"limit\":0}", "\"limit\" must be a whole number from 1 to 1000"},
		{"{\"command\":\"list_identities\",\"limit\":1001}", "\"limit\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"limit\":10.5}", "\"limit\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"limit\":true}", "\"limit\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"limit\":null}", "\"limit\" must be a whole number"},
		{"{\"command\":\"list_identities\",\"id\":\"d\"}", "list_identities: unknown field \"id\""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ig_admin_cmd c;
		ig_error err = {0};
		int rc = parse_text(cases[i].json, &c, &err);
		cr_expect_eq(rc, IG_ERR_INVAL, "case %zu should fail: %s", i, cases[i].json);
		cr_expect_not_null(strstr(err.msg, cases[i].needle), "case %zu: message '%s' should contain '%s'", i,
		                   err.msg, cases[i].needle);
	}
}

/* ---- build and round trip ------------------------------------------------ */

static void round_trip(const ig_admin_cmd *in)
{
	char *json = ig_admin_build_request(in);
	cr_assert_not_null(json, "build %s", ig_admin_kind_name(in->kind));
	cr_assert_lt(strlen(json), IG_ADMIN_MAX_PAYLOAD);
	cJSON *root = cJSON_Parse(json);
	cr_assert_not_null(root, "built request is JSON: %s", json);
	cr_assert_eq(cJSON_GetArraySize(root), 1, "only \"commands\" at the top: %s", json);
	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
	cr_assert(cJSON_IsArray(cmds));
	cr_assert_eq(cJSON_GetArraySize(cmds), 1);

	ig_admin_cmd out;
	ig_error err = {0};
	cr_assert_eq(ig_admin_parse_command(cJSON_GetArrayItem(cmds, 0), &out, &err), IG_OK, "%s: %s", json, err.msg);
	cr_expect_eq(out.kind, in->kind);
	cr_expect_str_eq(out.command, ig_admin_kind_name(in->kind));
	cr_expect_str_eq(out.correlation, in->correlation);
	switch (in->kind) {
	case IG_ADMIN_ENROLL:
		cr_expect_str_eq(out.id, in->id);
		cr_expect_eq(out.role, in->role);
		cr_expect_eq(out.reenroll, in->reenroll);
		cr_expect_eq(memcmp(out.pk, in->pk, IG_PK_BYTES), 0);
		break;
	case IG_ADMIN_REVOKE:
		cr_expect_str_eq(out.id, in->id);
		cr_expect_str_eq(out.reason, in->reason);
		break;
	case IG_ADMIN_GET:
		cr_expect_str_eq(out.id, in->id);
		break;
	case IG_ADMIN_LIST:
		cr_expect_eq(out.role, in->role);
		cr_expect_eq(out.status_filter, in->status_filter);
		cr_expect_eq(out.offset, in->offset);
		cr_expect_eq(out.limit, in->limit);
		break;
	case IG_ADMIN_CREDIT:
		cr_expect_str_eq(out.id, in->id);
		cr_expect_eq(out.amount, in->amount);
		break;
	case IG_ADMIN_JOIN_CODES:
		cr_expect_eq(out.role, in->role);
		cr_expect_eq(out.ttl, in->ttl);
		cr_expect_eq(out.count, in->count);
		break;
	}
	cJSON_Delete(root);
	free(json);
}

Test(admin, build_parse_round_trip)
{
	ig_admin_cmd c = {.kind = IG_ADMIN_ENROLL, .role = IG_ROLE_MONITOR};
	strcpy(c.id, "mon-1.a_b");
	for (int i = 0; i < IG_PK_BYTES; i++)
		c.pk[i] = (uint8_t)(i * 37 + 5);
	strcpy(c.correlation, "cli-1234");
	round_trip(&c);

	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++) {
		c.role = (ig_role)r;
		c.correlation[0] = '\0';
		round_trip(&c);
	}

	ig_admin_cmd rv = {.kind = IG_ADMIN_REVOKE};
	strcpy(rv.id, "dev1");
	round_trip(&rv);
	strcpy(rv.reason, "key leaked \"quoted\" \\ back/slash {x}");
	memset(rv.correlation, 'c', IG_ADMIN_CORRELATION_MAX);
	round_trip(&rv);

	ig_admin_cmd g = {.kind = IG_ADMIN_GET};
	memset(g.id, 'z', IG_ID_MAX);
	round_trip(&g);

	ig_admin_cmd l = {.kind = IG_ADMIN_LIST, .status_filter = -1, .limit = 100};
	round_trip(&l);
	for (int st = -1; st <= IG_ID_REVOKED; st++) {
		l = (ig_admin_cmd){.kind = IG_ADMIN_LIST, .role = IG_ROLE_ANALYST, .status_filter = st,
		                   .offset = 4294967295u, .limit = IG_ADMIN_LIST_MAX};
		round_trip(&l);
	}
	l = (ig_admin_cmd){.kind = IG_ADMIN_LIST, .status_filter = IG_ID_ACTIVE, .offset = 7, .limit = 1};
	round_trip(&l);

	ig_admin_cmd j = {.kind = IG_ADMIN_JOIN_CODES, .role = IG_ROLE_DEVICE, .ttl = 600, .count = IG_ADMIN_JOIN_CODES_MAX};
	round_trip(&j);

	ig_admin_cmd cr = {.kind = IG_ADMIN_CREDIT, .amount = IG_CREDIT_MAX};
	strcpy(cr.id, "collector-7");
	round_trip(&cr);
}

Test(admin, join_codes_defaults_and_limits)
{
	ig_admin_cmd cmd;
	ig_error err = {0};
	cJSON *o = cJSON_Parse("{\"command\":\"create_join_codes\",\"role\":\"device\"}");
	cr_assert_eq(ig_admin_parse_command(o, &cmd, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(cmd.kind, IG_ADMIN_JOIN_CODES);
	cr_expect_eq(cmd.ttl, IG_JOIN_CODE_TTL_DEFAULT);
	cr_expect_eq(cmd.count, 1);
	cJSON_Delete(o);
	const char *bad[] = {
		"{\"command\":\"create_join_codes\"}",
		"{\"command\":\"create_join_codes\",\"role\":\"king\"}",
		"{\"command\":\"create_join_codes\",\"role\":\"admin\"}",
		"{\"command\":\"create_join_codes\",\"role\":\"monitor\"}",
		"{\"command\":\"create_join_codes\",\"role\":\"device\",\"count\":0}",
		"{\"command\":\"create_join_codes\",\"role\":\"device\",\"count\":101}",
		"{\"command\":\"create_join_codes\",\"role\":\"device\",\"ttl\":59}",
		"{\"command\":\"create_join_codes\",\"role\":\"device\",\"ttl\":2592001}",
		"{\"command\":\"create_join_codes\",\"role\":\"device\",\"id\":\"x\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = cJSON_Parse(bad[i]);
		cr_assert_not_null(o);
		cr_expect_neq(ig_admin_parse_command(o, &cmd, &err), IG_OK, "accepted %s", bad[i]);
		cJSON_Delete(o);
	}
}

Test(admin, built_request_shape)
{
	ig_admin_cmd c = {.kind = IG_ADMIN_ENROLL, .role = IG_ROLE_DEVICE};
	strcpy(c.id, "dev1");
	strcpy(c.correlation, "c1");
	char *json = ig_admin_build_request(&c);
	cr_assert_not_null(json);
	cr_expect_str_eq(json, "{\"commands\":[{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\","
	                       "\"pubkey\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	                       "\"correlation\":\"c1\"}]}");
	free(json);

	ig_admin_cmd l = {.kind = IG_ADMIN_LIST, .status_filter = -1};
	json = ig_admin_build_request(&l);
	cr_assert_not_null(json);
	cr_expect_str_eq(json, "{\"commands\":[{\"command\":\"list_identities\"}]}",
	                 "zero offset/limit are left to the server defaults");
	free(json);
}

Test(admin, build_refuses_invalid_commands)
{
	ig_admin_cmd c = {0};
	cr_expect_null(ig_admin_build_request(NULL));
	cr_expect_null(ig_admin_build_request(&c), "kind 0");
	c.kind = (ig_admin_kind)9;
	cr_expect_null(ig_admin_build_request(&c));

	c = (ig_admin_cmd){.kind = IG_ADMIN_ENROLL, .role = IG_ROLE_DEVICE};
	cr_expect_null(ig_admin_build_request(&c), "empty id");
	strcpy(c.id, "a/b");
	cr_expect_null(ig_admin_build_request(&c), "bad id");
	strcpy(c.id, "ok");
	c.role = IG_ROLE_NONE;
	cr_expect_null(ig_admin_build_request(&c), "enroll without a role");
	c.role = (ig_role)17;
	cr_expect_null(ig_admin_build_request(&c), "enroll with an out-of-range role");
	c.role = IG_ROLE_DEVICE;
	char *json = ig_admin_build_request(&c);
	cr_expect_not_null(json);
	free(json);

	ig_admin_cmd g = {.kind = IG_ADMIN_GET};
	cr_expect_null(ig_admin_build_request(&g), "get without id");
	ig_admin_cmd r = {.kind = IG_ADMIN_REVOKE};
	strcpy(r.id, "bad id");
	cr_expect_null(ig_admin_build_request(&r));
}

/* ---- fuzz ---------------------------------------------------------------- */

Test(admin, fuzz_mutated_requests_never_crash)
{
	static const char *const seeds[] = {
		"{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\",\"correlation\":\"c1\"}",
		"{\"command\":\"revoke\",\"id\":\"dev1\",\"reason\":\"stolen\"}",
		"{\"command\":\"list_identities\",\"role\":\"device\",\"status\":\"active\",\"offset\":10,\"limit\":20}",
		"{\"command\":\"get_identity\",\"id\":\"dev1\",\"correlation\":\"q\"}",
	};
	static const char junk[] = "\"{}[],:0123456789.-e\\u abcdefnrlts#/+";
	char buf[256];
	int parsed = 0, accepted = 0;
	for (int i = 0; i < 20000; i++) {
		const char *seed = seeds[tu_rand32() % 4];
		size_t len = strlen(seed);
		memcpy(buf, seed, len + 1);
		int flips = 1 + (int)(tu_rand32() % 3);
		for (int f = 0; f < flips; f++)
			buf[tu_rand32() % len] = junk[tu_rand32() % (sizeof junk - 1)];
		if (tu_rand32() % 8 == 0)
			buf[tu_rand32() % len] = '\0';
		cJSON *obj = cJSON_Parse(buf);
		if (!obj)
			continue;
		parsed++;
		ig_admin_cmd c;
		ig_error err = {0};
		int rc = ig_admin_parse_command(obj, &c, &err);
		cr_assert(rc == IG_OK || rc == IG_ERR_INVAL);
		cr_assert_lt(strlen(c.command), sizeof c.command);
		cr_assert_leq(strlen(c.correlation), IG_ADMIN_CORRELATION_MAX);
		if (rc == IG_OK) {
			accepted++;
			cr_assert(c.kind >= IG_ADMIN_ENROLL && c.kind <= IG_ADMIN_GET);
			if (c.kind != IG_ADMIN_LIST)
				cr_assert(ig_id_valid(c.id, strlen(c.id)), "accepted bad id from %s", buf);
			round_trip(&c);
		} else {
			cr_assert_neq(err.msg[0], '\0', "rejection without a message: %s", buf);
		}
		cJSON_Delete(obj);
	}
	cr_expect_gt(parsed, 100);
	cr_expect_gt(accepted, 10);
}

/* Issue 7: re-enrolling a revoked id is explicit, and numbers are checked
 * before they are converted. */
Test(admin, reenroll_flag)
{
	ig_admin_cmd c;
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", &c);
	cr_expect_not(c.reenroll, "absent means no");
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\","
	         "\"reenroll\":true}", &c);
	cr_expect(c.reenroll);
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\","
	         "\"reenroll\":false}", &c);
	cr_expect_not(c.reenroll);
	ig_error err = {0};
	cr_expect_eq(parse_text("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\","
	                        "\"reenroll\":1}", &c, &err), IG_ERR_INVAL);
	cr_expect(strstr(err.msg, "reenroll"), "%s", err.msg);
	cr_expect_eq(parse_text("{\"command\":\"revoke\",\"id\":\"dev1\",\"reenroll\":true}", &c, &err), IG_ERR_INVAL,
	             "only enroll takes the flag");

	ig_admin_cmd in = {.kind = IG_ADMIN_ENROLL, .role = IG_ROLE_DEVICE, .reenroll = true};
	snprintf(in.id, sizeof in.id, "dev1");
	round_trip(&in);
	char *json = ig_admin_build_request(&in);
	cr_assert(strstr(json, "\"reenroll\":true"), "%s", json);
	free(json);
	in.reenroll = false;
	json = ig_admin_build_request(&in);
	cr_assert_null(strstr(json, "reenroll"), "not sent unless set: %s", json);
	free(json);
}

Test(admin, huge_numbers_are_refused_not_cast)
{
	ig_admin_cmd c;
	ig_error err = {0};
	cr_expect_eq(parse_text("{\"command\":\"credit\",\"id\":\"d\",\"amount\":1e10}", &c, &err), IG_ERR_INVAL);
	cr_expect(strstr(err.msg, "amount"), "%s", err.msg);
	cr_expect_eq(parse_text("{\"command\":\"credit\",\"id\":\"d\",\"amount\":1e308}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(parse_text("{\"command\":\"credit\",\"id\":\"d\",\"amount\":1e400}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(parse_text("{\"command\":\"list_identities\",\"offset\":1e300}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(parse_text("{\"command\":\"list_identities\",\"offset\":-1e300}", &c, &err), IG_ERR_INVAL);
	cr_expect_eq(parse_text("{\"command\":\"create_join_codes\",\"role\":\"device\",\"count\":1e19}", &c, &err),
	             IG_ERR_INVAL);
	parse_ok("{\"command\":\"list_identities\",\"offset\":4294967295}", &c);
	cr_expect_eq(c.offset, UINT32_MAX);
	parse_ok("{\"command\":\"credit\",\"id\":\"d\",\"amount\":1e9}", &c);
	cr_expect_eq(c.amount, 1000000000u);
}
