/*
 * test_admin.c: the admin API parser is the gate between a network message
 * and a ledger write, so every field is tried missing, mistyped, too long
 * and out of range, and what the CLI builds must parse back unchanged.
 * Then what a command means, the same for the broker and the offline CLI:
 * every admission rule's refusal code against a state built from records,
 * the record an admitted change appends, and the identity and list views.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_admin.h"
#include "ig_bank.h"
#include "ig_registry.h"
#include "ig_state.h"
#include "svc_fixture.h"
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

/* ---- admission rules and views (lib/cluster/admin_rules.c) ---------------------- */

/* A state built from records, as a replay builds it (svc_fixture.h); each
 * test runs in its own process, so record indexes start at 1. */
static ig_state *st;

static void state_setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	st = ig_state_new();
	cr_assert_not_null(st);
}

static void state_teardown(void)
{
	ig_state_free(st);
}

static void enroll(const char *id, ig_role role, uint8_t key_first)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, key_first);
	fx_enroll(st, id, role, pk);
}

static void revoke_id(const char *id)
{
	fx_revoke(st, id);
}

static ig_admin_cmd command(ig_admin_kind kind, const char *id)
{
	ig_admin_cmd c;
	memset(&c, 0, sizeof c);
	c.kind = kind;
	snprintf(c.command, sizeof c.command, "%s", ig_admin_kind_name(kind));
	snprintf(c.id, sizeof c.id, "%s", id ? id : "");
	c.role = IG_ROLE_NONE;
	c.status_filter = -1;
	return c;
}

/* Refused with code, and the message holds every one of the words. */
static void expect_refused(const ig_admin_cmd *c, const char *code, const char *w1, const char *w2)
{
	ig_admin_refusal why;
	cr_assert_not(ig_admin_admit(&why, st, c), "%s %s should be refused", c->command, c->id);
	cr_expect_str_eq(why.code, code, "%s %s: %s", c->command, c->id, why.message);
	cr_expect(strstr(why.message, w1), "'%s' should be in: %s", w1, why.message);
	if (w2)
		cr_expect(strstr(why.message, w2), "'%s' should be in: %s", w2, why.message);
}

static void expect_admitted(const ig_admin_cmd *c)
{
	ig_admin_refusal why;
	cr_expect(ig_admin_admit(&why, st, c), "%s %s should go ahead: %s", c->command, c->id, why.message);
}

Test(admin_rules, enroll, .init = state_setup, .fini = state_teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("dev2", IG_ROLE_DEVICE, 2);
	revoke_id("dev2");

	ig_admin_cmd c = command(IG_ADMIN_ENROLL, "new1");
	c.role = IG_ROLE_DEVICE;
	expect_admitted(&c);
	c.reenroll = true;
	expect_admitted(&c);   /* on an id never enrolled it changes nothing */

	c = command(IG_ADMIN_ENROLL, "dev1");
	c.role = IG_ROLE_DEVICE;
	expect_refused(&c, IG_ADMIN_E_EXISTS, "dev1 is already enrolled", "revoke it first");
	c.reenroll = true;
	expect_refused(&c, IG_ADMIN_E_EXISTS, "already enrolled", NULL);

	c = command(IG_ADMIN_ENROLL, "dev2");
	c.role = IG_ROLE_DEVICE;
	expect_refused(&c, IG_ADMIN_E_ALREADY_REVOKED, "--reenroll", "\"reenroll\":true");
	expect_refused(&c, IG_ADMIN_E_ALREADY_REVOKED, "was revoked (ledger index 3)", NULL);
	c.reenroll = true;
	expect_admitted(&c);

	c = command(IG_ADMIN_ENROLL, "x");
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "role", NULL);
	c = command(IG_ADMIN_ENROLL, "bad id");
	c.role = IG_ROLE_DEVICE;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "\"id\"", NULL);
}

Test(admin_rules, in_flight_changes, .init = state_setup, .fini = state_teardown)
{
	/* What the broker holds while a record is on its way to the disk. */
	enroll("dev1", IG_ROLE_DEVICE, 1);
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 5);
	cr_assert_eq(ig_registry_reserve(ig_state_registry(st), "dev5", IG_ROLE_DEVICE, pk), IG_OK);
	cr_assert_eq(ig_registry_mark_revoked(ig_state_registry(st), "dev1", 0), IG_OK);

	ig_admin_cmd c = command(IG_ADMIN_ENROLL, "dev5");
	c.role = IG_ROLE_DEVICE;
	expect_refused(&c, IG_ADMIN_E_EXISTS, "pending", NULL);
	c = command(IG_ADMIN_REVOKE, "dev5");
	expect_refused(&c, IG_ADMIN_E_EXISTS, "still being enrolled", "retry");

	c = command(IG_ADMIN_REVOKE, "dev1");
	expect_refused(&c, IG_ADMIN_E_ALREADY_REVOKED, "dev1 is already revoked", NULL);
	c = command(IG_ADMIN_ENROLL, "dev1");
	c.role = IG_ROLE_DEVICE;
	expect_refused(&c, IG_ADMIN_E_ALREADY_REVOKED, "--reenroll", NULL);
	c.reenroll = true;
	expect_refused(&c, IG_ADMIN_E_EXISTS, "revocation in flight", "retry");
}

Test(admin_rules, revoke, .init = state_setup, .fini = state_teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("dev2", IG_ROLE_DEVICE, 2);
	revoke_id("dev2");
	ig_admin_cmd c = command(IG_ADMIN_REVOKE, "dev1");
	expect_admitted(&c);
	c = command(IG_ADMIN_REVOKE, "nobody");
	expect_refused(&c, IG_ADMIN_E_NOT_FOUND, "nobody is not enrolled", "nothing to revoke");
	c = command(IG_ADMIN_REVOKE, "dev2");
	expect_refused(&c, IG_ADMIN_E_ALREADY_REVOKED, "dev2 is already revoked (ledger index 3)", NULL);
}

Test(admin_rules, credit, .init = state_setup, .fini = state_teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("an1", IG_ROLE_ANALYST, 2);
	enroll("dev2", IG_ROLE_DEVICE, 3);
	revoke_id("dev2");
	ig_admin_cmd c = command(IG_ADMIN_CREDIT, "dev1");
	c.amount = 5;
	expect_admitted(&c);
	c.amount = IG_CREDIT_MAX;
	expect_admitted(&c);
	c.amount = 0;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "amount", NULL);
	c.amount = IG_CREDIT_MAX + 1;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "amount", NULL);
	const char *others[] = {"an1", "dev2", "nobody"};
	for (size_t i = 0; i < 3; i++) {
		c = command(IG_ADMIN_CREDIT, others[i]);
		c.amount = 5;
		expect_refused(&c, IG_ADMIN_E_NOT_FOUND, "is not an active device", "only collectors (devices) get credit");
	}
}

Test(admin_rules, join_codes, .init = state_setup, .fini = state_teardown)
{
	ig_admin_cmd c = command(IG_ADMIN_JOIN_CODES, NULL);
	c.ttl = IG_JOIN_CODE_TTL_DEFAULT;
	c.count = 1;
	c.role = IG_ROLE_DEVICE;
	expect_admitted(&c);
	c.role = IG_ROLE_ANALYST;
	c.count = IG_ADMIN_JOIN_CODES_MAX;
	expect_admitted(&c);
	c.role = IG_ROLE_ADMIN;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "only for roles device and analyst", "enroll admins by public key");
	c.role = IG_ROLE_MONITOR;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "monitors", NULL);
	c.role = IG_ROLE_DEVICE;
	c.count = 0;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "count", NULL);
	c.count = IG_ADMIN_JOIN_CODES_MAX + 1;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "count", NULL);
	c.count = 1;
	c.ttl = 59;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "ttl", NULL);
	c.ttl = IG_JOIN_CODE_TTL_MAX + 1;
	expect_refused(&c, IG_ADMIN_E_MALFORMED, "ttl", NULL);
	/* The parser applies the same role rule. */
	ig_admin_cmd p;
	ig_error err = {0};
	cr_expect_eq(parse_text("{\"command\":\"create_join_codes\",\"role\":\"monitor\"}", &p, &err), IG_ERR_INVAL);
	cr_expect(strstr(err.msg, "only for roles device and analyst"), "%s", err.msg);
	cr_expect(ig_admin_join_role_allowed(IG_ROLE_DEVICE) && ig_admin_join_role_allowed(IG_ROLE_ANALYST));
	cr_expect_not(ig_admin_join_role_allowed(IG_ROLE_NONE));
}

Test(admin_rules, reads, .init = state_setup, .fini = state_teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	ig_admin_cmd c = command(IG_ADMIN_GET, "dev1");
	expect_admitted(&c);
	c = command(IG_ADMIN_GET, "nobody");
	expect_refused(&c, IG_ADMIN_E_NOT_FOUND, "nobody is not enrolled", NULL);
	cJSON *resp = cJSON_CreateObject();
	cr_expect_eq(ig_admin_read(resp, st, &c, NULL, NULL), IG_ERR_NOTFOUND);
	c = command(IG_ADMIN_LIST, NULL);
	expect_admitted(&c);
	c = command(IG_ADMIN_REVOKE, "dev1");
	cr_expect_eq(ig_admin_read(resp, st, &c, NULL, NULL), IG_ERR_INVAL, "a change is not a read");
	cJSON_Delete(resp);
}

Test(admin_rules, records_decode_back, .init = state_setup, .fini = state_teardown)
{
	uint8_t body[1024];
	uint16_t type = 0;
	ig_error err = {0};

	ig_admin_cmd c = command(IG_ADMIN_ENROLL, "dev1");
	c.role = IG_ROLE_ANALYST;
	tu_seq_bytes(c.pk, 32, 7);
	int n = ig_admin_record(body, sizeof body, &type, &c, "admin1");
	cr_assert_gt(n, 0);
	cr_expect_eq(type, IG_REC_ENROLL);
	ig_enroll e;
	cr_assert_eq(ig_record_enroll_decode(body, (size_t)n, &e, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(e.id, "dev1");
	cr_expect_eq(e.role, IG_ROLE_ANALYST);
	cr_expect_eq(memcmp(e.pk, c.pk, 32), 0);
	cr_expect_str_eq(e.by, "admin1");
	cr_expect_not(e.has_join_code);

	c = command(IG_ADMIN_REVOKE, "dev1");
	snprintf(c.reason, sizeof c.reason, "stolen");
	n = ig_admin_record(body, sizeof body, &type, &c, "offline:root");
	cr_assert_gt(n, 0);
	cr_expect_eq(type, IG_REC_REVOKE);
	ig_revoke r;
	cr_assert_eq(ig_record_revoke_decode(body, (size_t)n, &r, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(r.reason, "stolen");
	cr_expect_str_eq(r.by, "offline:root");

	c = command(IG_ADMIN_CREDIT, "dev1");
	c.amount = 42;
	n = ig_admin_record(body, sizeof body, &type, &c, "admin1");
	cr_assert_gt(n, 0);
	cr_expect_eq(type, IG_REC_CREDIT);
	ig_credit_rec cr;
	cr_assert_eq(ig_bank_credit_decode(body, (size_t)n, &cr, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(cr.amount, 42);
	cr_expect_str_eq(cr.id, "dev1");

	c = command(IG_ADMIN_LIST, NULL);
	cr_expect_lt(ig_admin_record(body, sizeof body, &type, &c, "admin1"), 0, "a read appends nothing");
	c = command(IG_ADMIN_ENROLL, "dev1");
	c.role = IG_ROLE_DEVICE;
	cr_expect_lt(ig_admin_record(body, 8, &type, &c, "admin1"), 0, "too small a buffer");
}

static bool connected_if_dev(void *ctx, const char *id)
{
	int *calls = ctx;
	(*calls)++;
	return strncmp(id, "dev", 3) == 0;
}

Test(admin_views, identity_object, .init = state_setup, .fini = state_teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("mon1", IG_ROLE_MONITOR, 2);
	revoke_id("mon1");
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 1);
	char hex[65];
	ig_hex_encode(hex, pk, 32);

	int calls = 0;
	cJSON *o = ig_admin_identity_json(ig_state_identity(st, "dev1"), connected_if_dev, &calls);
	cr_assert_not_null(o);
	cr_expect_str_eq(tu_json_str(o, "id"), "dev1");
	cr_expect_str_eq(tu_json_str(o, "role"), "device");
	cr_expect_str_eq(tu_json_str(o, "status"), "active");
	cr_expect_str_eq(tu_json_str(o, "pubkey"), hex);
	cr_expect_eq(tu_json_num(o, "enrolled_index"), 1);
	cr_expect_eq(tu_json_num(o, "enrolled_ts"), 1767225600000.0);
	cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "revoked_index"), "only when revoked");
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "connected")));
	cr_expect_eq(calls, 1);
	cJSON_Delete(o);

	o = ig_admin_identity_json(ig_state_identity(st, "mon1"), connected_if_dev, &calls);
	cr_expect_str_eq(tu_json_str(o, "status"), "revoked");
	cr_expect_eq(tu_json_num(o, "revoked_index"), 3);
	cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "connected")));
	cJSON_Delete(o);

	/* Offline nobody knows: no "connected" at all, rather than a guess. */
	o = ig_admin_identity_json(ig_state_identity(st, "dev1"), NULL, NULL);
	cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "connected"));
	cr_expect_eq(cJSON_GetArraySize(o), 6);
	cJSON_Delete(o);

	ig_admin_cmd c = command(IG_ADMIN_GET, "mon1");
	cJSON *resp = cJSON_CreateObject();
	cr_assert_eq(ig_admin_read(resp, st, &c, NULL, NULL), IG_OK);
	cr_expect_str_eq(tu_json_str(cJSON_GetObjectItemCaseSensitive(resp, "identity"), "id"), "mon1");
	cJSON_Delete(resp);
}

/* The ids of a list page, "a,b,", and its total. */
static void list_page(char *ids, size_t cap, double *total, const ig_admin_cmd *c)
{
	cJSON *resp = cJSON_CreateObject();
	cr_assert_eq(ig_admin_read(resp, st, c, NULL, NULL), IG_OK);
	*total = tu_json_num(resp, "total");
	cr_expect_eq(tu_json_num(resp, "offset"), c->offset);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "identities"), *it;
	cr_assert(cJSON_IsArray(arr));
	ids[0] = '\0';
	cJSON_ArrayForEach(it, arr) {
		strncat(ids, tu_json_str(it, "id"), cap - strlen(ids) - 1);
		strncat(ids, ",", cap - strlen(ids) - 1);
	}
	cJSON_Delete(resp);
}

Test(admin_views, list_filters_and_pages, .init = state_setup, .fini = state_teardown)
{
	enroll("d1", IG_ROLE_DEVICE, 1);
	enroll("a1", IG_ROLE_ANALYST, 2);
	enroll("d2", IG_ROLE_DEVICE, 3);
	enroll("d3", IG_ROLE_DEVICE, 4);
	enroll("d4", IG_ROLE_DEVICE, 5);
	revoke_id("d2");
	char ids[256];
	double total;

	ig_admin_cmd c = command(IG_ADMIN_LIST, NULL);
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "d1,a1,d2,d3,d4,", "limit 0 is all, in enrolment order");
	cr_expect_eq(total, 5);

	c.role = IG_ROLE_DEVICE;
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "d1,d2,d3,d4,");
	cr_expect_eq(total, 4);

	c.status_filter = IG_ID_ACTIVE;
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "d1,d3,d4,");
	cr_expect_eq(total, 3);

	c.offset = 1;
	c.limit = 1;
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "d3,", "one page of one, after the first match");
	cr_expect_eq(total, 3, "total counts every match, not the page");

	c.offset = 3;
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "", "past the end: an empty page");
	cr_expect_eq(total, 3);

	c = command(IG_ADMIN_LIST, NULL);
	c.status_filter = IG_ID_REVOKED;
	c.limit = 100;
	list_page(ids, sizeof ids, &total, &c);
	cr_expect_str_eq(ids, "d2,");
	cr_expect_eq(total, 1);

	/* The parser's default page is what the broker uses. */
	ig_admin_cmd p;
	parse_ok("{\"command\":\"list_identities\",\"role\":\"analyst\"}", &p);
	list_page(ids, sizeof ids, &total, &p);
	cr_expect_str_eq(ids, "a1,");
}

/* An enroll's zone: parsed and built like the other optional fields, written
 * as the enroll record's tag 6 only when given, and shown in the identity
 * views once the record is applied. */
Test(admin_rules, enroll_zone, .init = state_setup, .fini = state_teardown)
{
	ig_admin_cmd c;
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\"}", &c);
	cr_expect_str_eq(c.zone, "", "absent means none");
	parse_ok("{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\","
	         "\"zone\":\"north-1\"}", &c);
	cr_expect_str_eq(c.zone, "north-1");
	ig_error err = {0};
	const char *bad[] = {"\"\"", "\"north wing\"", "3", "null",
	                     "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"" /* 65 */};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char json[512];
		snprintf(json, sizeof json,
		         "{\"command\":\"enroll\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" PK_HEX "\",\"zone\":%s}",
		         bad[i]);
		cr_expect_eq(parse_text(json, &c, &err), IG_ERR_INVAL, "zone %s should be refused", bad[i]);
		cr_expect(strstr(err.msg, "zone"), "%s", err.msg);
	}
	cr_expect_eq(parse_text("{\"command\":\"revoke\",\"id\":\"dev1\",\"zone\":\"a\"}", &c, &err), IG_ERR_INVAL,
	             "only enroll takes a zone");

	ig_admin_cmd in = command(IG_ADMIN_ENROLL, "dev1");
	in.role = IG_ROLE_DEVICE;
	snprintf(in.zone, sizeof in.zone, "rack.7");
	char *json = ig_admin_build_request(&in);
	cr_assert(strstr(json, "\"zone\":\"rack.7\""), "%s", json);
	free(json);
	in.zone[0] = '\0';
	json = ig_admin_build_request(&in);
	cr_assert_null(strstr(json, "zone"), "not sent unless set: %s", json);
	free(json);

	/* The record, applied, and the views. */
	uint8_t body[1024];
	uint16_t type = 0;
	ig_admin_cmd e = command(IG_ADMIN_ENROLL, "dev1");
	e.role = IG_ROLE_DEVICE;
	tu_seq_bytes(e.pk, 32, 9);
	snprintf(e.zone, sizeof e.zone, "north-1");
	int n = ig_admin_record(body, sizeof body, &type, &e, "admin1");
	cr_assert_gt(n, 0);
	fx_apply(st, type, body, (size_t)n);
	enroll("dev2", IG_ROLE_DEVICE, 2);
	cr_expect_str_eq(ig_state_zone(st, "dev1"), "north-1");

	ig_admin_cmd g = command(IG_ADMIN_GET, "dev1");
	cJSON *resp = cJSON_CreateObject();
	cr_assert_eq(ig_admin_read(resp, st, &g, NULL, NULL), IG_OK);
	cr_expect_str_eq(tu_json_str(cJSON_GetObjectItemCaseSensitive(resp, "identity"), "zone"), "north-1");
	cJSON_Delete(resp);

	ig_admin_cmd l = command(IG_ADMIN_LIST, NULL);
	resp = cJSON_CreateObject();
	cr_assert_eq(ig_admin_read(resp, st, &l, NULL, NULL), IG_OK);
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(resp, "identities");
	cr_assert_eq(cJSON_GetArraySize(items), 2);
	cr_expect_str_eq(tu_json_str(cJSON_GetArrayItem(items, 0), "zone"), "north-1");
	cr_expect_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 1), "zone"), "dev2 has none");
	cJSON_Delete(resp);
}

/* A change whose record was not written: a shared ledger's conflict is
 * "conflict" (final: re-read), an unreachable database storage_failed
 * (retriable), and a revoke says it stays in force on a storage failure. */
Test(admin, not_written_conflict_and_unreachable_database)
{
	ig_admin_refusal why;
	static const ig_admin_kind kinds[] = {IG_ADMIN_ENROLL, IG_ADMIN_REVOKE, IG_ADMIN_CREDIT, IG_ADMIN_JOIN_CODES};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		ig_admin_not_written(&why, kinds[i], IG_ERR_CONFLICT);
		cr_expect_str_eq(why.code, "conflict");
		cr_expect_not_null(strstr(why.message, "another broker changed"), "%s", why.message);
		cr_expect_not_null(strstr(why.message, "re-read and retry"), "%s", why.message);
		ig_admin_not_written(&why, kinds[i], IG_ERR_UNAVAILABLE);
		cr_expect_str_eq(why.code, "storage_failed");
		cr_expect_not_null(strstr(why.message, "database"), "%s", why.message);
		cr_expect_not_null(strstr(why.message, "retry"), "%s", why.message);
	}
	ig_admin_not_written(&why, IG_ADMIN_ENROLL, IG_ERR_CONFLICT);
	cr_expect_str_eq(why.message, "nothing was enrolled: another broker changed this identity first; re-read and retry");
	ig_admin_not_written(&why, IG_ADMIN_REVOKE, IG_ERR_NOSPACE);
	cr_expect_str_eq(why.code, "storage_failed");
	cr_expect_not_null(strstr(why.message, "in force until the broker restarts"), "%s", why.message);
	cr_expect_not_null(strstr(why.message, "ENOSPC"), "%s", why.message);
}
