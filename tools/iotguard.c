/*
 * iotguard.c: the admin tool's entry point, dispatch and identity commands.
 *
 * Why this exists: operators need one binary that manages a cluster both
 * when the broker is down (straight on the ledger directory) and while it
 * runs (through the broker's admin API, since the broker then owns the
 * ledger). This file parses the shared options, picks the mode, and renders
 * the answer the same way whichever mode produced it.
 */
#include <cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ig_json.h"
#include "ig_registry.h"

int cli_exit_for(int ig_code)
{
	if (ig_code == IG_ERR_CORRUPT || ig_code == IG_ERR_CRYPTO)
		return CLI_EXIT_BAD_LEDGER;
	return CLI_EXIT_ERR;
}

/* The library never prints; route its log lines to stderr, under the
 * running command's name, so warnings such as "cut a torn tail" are seen. */
static void log_to_stderr(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	if (level == IG_LOG_DEBUG)
		return;
	if (level == IG_LOG_INFO) {
		fprintf(stderr, "iotguard %s: %s\n", cli_cmd, msg);
		return;
	}
	if (level == IG_LOG_WARN)
		cli_warn("%s", msg);
	else
		cli_error("%s", msg);
}

/* ---- identity commands: enroll, revoke, list, get ------------------------ */

/* Option values from 256 up, so a misused option is named in full in errors. */
enum {
	OPT_LEDGER = 256, OPT_HOST, OPT_PORT, OPT_CLUSTER, OPT_USER, OPT_KEY, OPT_TIMEOUT,
	OPT_TLS_CA, OPT_JSON, OPT_HELP, OPT_ID, OPT_PUBKEY, OPT_ROLE, OPT_REASON, OPT_STATUS,
	OPT_OFFSET, OPT_LIMIT, OPT_TTL, OPT_COUNT, OPT_AMOUNT, OPT_REENROLL, OPT_ZONE,
};

/* Which identity commands accept an option (bit per ig_admin_kind). */
#define K(kind) (1u << (kind))
#define K_ALL (K(IG_ADMIN_ENROLL) | K(IG_ADMIN_REVOKE) | K(IG_ADMIN_LIST) | K(IG_ADMIN_GET) | K(IG_ADMIN_JOIN_CODES) | K(IG_ADMIN_CREDIT))

static const char where_help[] =
	"Where (exactly one of):\n"
	"  --ledger DIR         offline: work on the ledger directory directly. Changes\n"
	"                       need the ledger unlocked (broker stopped); reads work\n"
	"                       while the broker runs.\n"
	"  --host HOST          online: send the command to the broker's admin API\n"
	"    --port PORT          broker port (default 1883)\n"
	"    --cluster NAME       cluster name (the token is bound to it)\n"
	"    --user ADMIN_ID      an enrolled admin identity (MQTT client id and username)\n"
	"    --key FILE           that admin's key file\n"
	"    --timeout SECONDS    give up after this long (default 10)\n"
	"    --tls-ca FILE        use TLS, trusting this CA file\n"
	"Output:\n"
	"  --json               print the response as JSON instead of a summary\n"
	"  --help               show this help\n";

static int identity_help(ig_admin_kind kind)
{
	switch (kind) {
	case IG_ADMIN_ENROLL:
		printf("Usage: iotguard enroll --id ID --pubkey HEX --role ROLE [--zone ZONE] [--reenroll] (--ledger DIR | --host HOST ...)\n"
		       "Records a new identity in the ledger so it can connect.\n\n"
		       "  --id ID              identity id: 1..64 of A-Z a-z 0-9 _ . -\n"
		       "  --pubkey HEX         its Ed25519 public key, 64 hex (from 'iotguard keygen')\n"
		       "  --role ROLE          device, analyst, monitor, admin, witness or bridge\n"
		       "  --reenroll           allow ID to be a revoked identity: it gets the new key and\n"
		       "                       starts clean (no credit, coins or session keys). Without\n"
		       "                       it, enrolling a revoked id is refused\n"
		       "  --zone ZONE          where the device stands (1..64 of A-Z a-z 0-9 _ . -), kept in\n"
		       "                       the ledger; custody spreads its share holders over zones\n");
		break;
	case IG_ADMIN_REVOKE:
		printf("Usage: iotguard revoke --id ID [--reason TEXT] (--ledger DIR | --host HOST ...)\n"
		       "Revokes an identity; online, its live session is disconnected.\n\n"
		       "  --id ID              the identity to revoke\n"
		       "  --reason TEXT        why (kept in the ledger, up to %d bytes)\n",
		       IG_REASON_MAX);
		break;
	case IG_ADMIN_LIST:
		printf("Usage: iotguard list [--role ROLE] [--status STATUS] (--ledger DIR | --host HOST ...)\n"
		       "Lists identities.\n\n"
		       "  --role ROLE          only this role\n"
		       "  --status STATUS      only active, revoked or pending\n"
		       "  --offset N           skip the first N matches\n"
		       "  --limit N            show at most N (default: all)\n");
		break;
	case IG_ADMIN_GET:
		printf("Usage: iotguard get --id ID (--ledger DIR | --host HOST ...)\n"
		       "Shows one identity.\n\n"
		       "  --id ID              the identity to show\n");
		break;
	case IG_ADMIN_CREDIT:
		printf("Usage: iotguard credit --id ID --amount N (--ledger DIR | --host HOST ...)\n"
		       "Grants a collector credit for N coins; the ledger records the grant.\n\n"
		       "  --id ID              the collector (an enrolled device)\n"
		       "  --amount N           coins to grant, 1..%u\n", IG_CREDIT_MAX);
		break;
	case IG_ADMIN_JOIN_CODES:
		printf("Usage: iotguard join-code --role ROLE [--ttl SECONDS] [--count N] (--ledger DIR | --host HOST ...)\n"
		       "Creates one-time join codes; a device joins with 'iotguard-agent ... --join-code CODE'.\n"
		       "The codes are printed once, one per line; the ledger keeps only their hashes.\n\n"
		       "  --role ROLE          the role a device joining with a code gets\n"
		       "  --ttl SECONDS        how long the codes stay usable (default %d, at most %d)\n"
		       "  --count N            how many codes (default 1, at most %d)\n",
		       IG_JOIN_CODE_TTL_DEFAULT, IG_JOIN_CODE_TTL_MAX, IG_ADMIN_JOIN_CODES_MAX);
		break;
	}
	printf("\n%s", where_help);
	return CLI_EXIT_OK;
}

static int parse_status(const char *s)
{
	for (int st = IG_ID_PENDING; st <= IG_ID_REVOKED; st++)
		if (strcmp(s, ig_registry_status_name((ig_id_status)st)) == 0)
			return st;
	return -2;
}

static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool json_u64(const cJSON *obj, const char *name, uint64_t *out)
{
	return ig_json_uint_field(out, obj, name, 0, IG_JSON_UINT_MAX) == IG_OK;
}


static void print_identity(const cJSON *idn)
{
	uint64_t v;
	const char *s;
	char when[40];
	printf("id:             %s\n", (s = json_str(idn, "id")) ? s : "?");
	printf("role:           %s\n", (s = json_str(idn, "role")) ? s : "?");
	printf("status:         %s\n", (s = json_str(idn, "status")) ? s : "?");
	printf("pubkey:         %s\n", (s = json_str(idn, "pubkey")) ? s : "?");
	if (json_u64(idn, "enrolled_index", &v))
		printf("enrolled index: %" PRIu64 "\n", v);
	if (json_u64(idn, "enrolled_ts", &v)) {
		cli_format_ts(when, sizeof when, v);
		printf("enrolled at:    %s\n", when);
	}
	if (json_u64(idn, "revoked_index", &v))
		printf("revoked index:  %" PRIu64 "\n", v);
	if ((s = json_str(idn, "zone")))
		printf("zone:           %s\n", s);
	const cJSON *conn = cJSON_GetObjectItemCaseSensitive(idn, "connected");
	if (cJSON_IsBool(conn))
		printf("connected:      %s\n", cJSON_IsTrue(conn) ? "yes" : "no");
}

static void print_identity_table(const cJSON *resp)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(resp, "identities");
	int shown = cJSON_GetArraySize(list);
	bool any_connected = false;
	const cJSON *idn;
	cJSON_ArrayForEach(idn, list)
		if (cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(idn, "connected")))
			any_connected = true;

	if (shown > 0) {
		printf("%-24s %-8s %-8s %8s %s%s\n", "ID", "ROLE", "STATUS", "INDEX",
		       any_connected ? "CONNECTED " : "", "PUBKEY");
		cJSON_ArrayForEach(idn, list) {
			const char *id = json_str(idn, "id"), *role = json_str(idn, "role");
			const char *status = json_str(idn, "status"), *pk = json_str(idn, "pubkey");
			uint64_t index = 0;
			json_u64(idn, "enrolled_index", &index);
			const cJSON *conn = cJSON_GetObjectItemCaseSensitive(idn, "connected");
			const char *conn_text = !any_connected ? "" : cJSON_IsTrue(conn) ? "yes       " : "no        ";
			printf("%-24s %-8s %-8s %8" PRIu64 " %s%s\n", id ? id : "?", role ? role : "?",
			       status ? status : "?", index, conn_text, pk ? pk : "?");
		}
	}
	uint64_t total = (uint64_t)shown;
	json_u64(resp, "total", &total);
	if (total == (uint64_t)shown)
		printf("%d identit%s\n", shown, shown == 1 ? "y" : "ies");
	else
		printf("%d of %" PRIu64 " matching identities shown\n", shown, total);
}

/* Prints a response element; returns the exit code it implies. */
static int print_response(const ig_admin_cmd *cmd, const cJSON *resp, bool as_json)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(resp, "ok");
	if (as_json) {
		char *text = cJSON_PrintUnformatted(resp);
		if (!text) {
			cli_error("out of memory rendering the response");
			return CLI_EXIT_ERR;
		}
		printf("%s\n", text);
		free(text);
	}
	if (!cJSON_IsTrue(ok)) {
		const char *msg = json_str(resp, "message"), *code = json_str(resp, "error");
		if (msg)
			cli_error("%s", msg);
		else
			cli_error("the command failed (%s)", code ? code : "no reason given");
		return CLI_EXIT_ERR;
	}
	if (as_json)
		return CLI_EXIT_OK;

	uint64_t index = 0;
	const char *id = json_str(resp, "id");
	switch (cmd->kind) {
	case IG_ADMIN_ENROLL:
		json_u64(resp, "index", &index);
		printf("enrolled %s as %s at ledger index %" PRIu64 "\n", id ? id : cmd->id,
		       ig_role_name(cmd->role), index);
		break;
	case IG_ADMIN_REVOKE: {
		json_u64(resp, "index", &index);
		const cJSON *disc = cJSON_GetObjectItemCaseSensitive(resp, "disconnected");
		uint64_t credit = 0, coins = 0;
		json_u64(resp, "cancelled_credit", &credit);
		json_u64(resp, "cancelled_coins", &coins);
		printf("revoked %s at ledger index %" PRIu64 "%s\n", id ? id : cmd->id, index,
		       cJSON_IsTrue(disc) ? "; its live session was disconnected" : "");
		if (credit || coins)
			printf("cancelled %s's credit of %" PRIu64 " coin(s) and %" PRIu64 " unspent coin(s)\n",
			       id ? id : cmd->id, credit, coins);
		break;
	}
	case IG_ADMIN_GET: {
		const cJSON *idn = cJSON_GetObjectItemCaseSensitive(resp, "identity");
		if (!cJSON_IsObject(idn)) {
			cli_error("the response has no identity object");
			return CLI_EXIT_ERR;
		}
		print_identity(idn);
		break;
	}
	case IG_ADMIN_LIST:
		print_identity_table(resp);
		break;
	case IG_ADMIN_CREDIT: {
		uint64_t balance = 0;
		json_u64(resp, "index", &index);
		json_u64(resp, "balance", &balance);
		printf("credited %s with %u coin(s) at ledger index %" PRIu64 "; balance %" PRIu64 "\n",
		       id ? id : cmd->id, cmd->amount, index, balance);
		break;
	}
	case IG_ADMIN_JOIN_CODES: {
		/* Only the codes go to stdout, one per line, so they can be piped
		 * to the devices; this is the one time they are shown. */
		const cJSON *codes = cJSON_GetObjectItemCaseSensitive(resp, "codes"), *c;
		uint64_t expires = 0;
		json_u64(resp, "expires_at", &expires);
		cJSON_ArrayForEach(c, codes)
			if (cJSON_IsString(c))
				printf("%s\n", c->valuestring);
		char when[64];
		cli_format_ts(when, sizeof when, expires * 1000);
		fprintf(stderr, "iotguard join-code: %d one-time code(s) for role %s, valid until %s; "
		                "they are not stored anywhere and cannot be shown again\n",
		        cJSON_GetArraySize(codes), ig_role_name(cmd->role), when);
		break;
	}
	}
	return CLI_EXIT_OK;
}

static int identity_command(ig_admin_kind kind, int argc, char **argv)
{
	const char *ledger = NULL, *pubkey = NULL, *role = NULL, *id = NULL;
	const char *reason = NULL, *status = NULL, *zone = NULL;
	cli_online on = { 0 };
	bool as_json = false, reenroll = false;
	/* Numbers parse as uint64_t; the table's bounds make the narrowing
	 * below safe. 0 means not given. */
	uint64_t port = 1883, timeout_s = 10, offset = 0, limit = 0, amount = 0, ttl = 0, count = 0;

	const struct {
		cli_option opt;
		unsigned kinds;
	} all[] = {
		{ CLI_TEXT("ledger", OPT_LEDGER, &ledger), K_ALL },
		{ CLI_TEXT("host", OPT_HOST, &on.host), K_ALL },
		{ CLI_NUMBER("port", OPT_PORT, &port, 1, 65535), K_ALL },
		{ CLI_TEXT("cluster", OPT_CLUSTER, &on.cluster), K_ALL },
		{ CLI_TEXT("user", OPT_USER, &on.user), K_ALL },
		{ CLI_TEXT("key", OPT_KEY, &on.key_path), K_ALL },
		{ CLI_NUMBER("timeout", OPT_TIMEOUT, &timeout_s, 1, 3600), K_ALL },
		{ CLI_TEXT("tls-ca", OPT_TLS_CA, &on.tls_ca), K_ALL },
		{ CLI_FLAG("json", OPT_JSON, &as_json), K_ALL },
		{ CLI_HELP_OPTION(OPT_HELP), K_ALL },
		{ CLI_TEXT("id", OPT_ID, &id), K(IG_ADMIN_ENROLL) | K(IG_ADMIN_REVOKE) | K(IG_ADMIN_GET) | K(IG_ADMIN_CREDIT) },
		{ CLI_NUMBER("amount", OPT_AMOUNT, &amount, 1, IG_CREDIT_MAX), K(IG_ADMIN_CREDIT) },
		{ CLI_TEXT("pubkey", OPT_PUBKEY, &pubkey), K(IG_ADMIN_ENROLL) },
		{ CLI_FLAG("reenroll", OPT_REENROLL, &reenroll), K(IG_ADMIN_ENROLL) },
		{ CLI_TEXT("zone", OPT_ZONE, &zone), K(IG_ADMIN_ENROLL) },
		{ CLI_TEXT("role", OPT_ROLE, &role), K(IG_ADMIN_ENROLL) | K(IG_ADMIN_LIST) | K(IG_ADMIN_JOIN_CODES) },
		{ CLI_NUMBER("ttl", OPT_TTL, &ttl, 60, IG_JOIN_CODE_TTL_MAX), K(IG_ADMIN_JOIN_CODES) },
		{ CLI_NUMBER("count", OPT_COUNT, &count, 1, IG_ADMIN_JOIN_CODES_MAX), K(IG_ADMIN_JOIN_CODES) },
		{ CLI_TEXT("reason", OPT_REASON, &reason), K(IG_ADMIN_REVOKE) },
		{ CLI_TEXT("status", OPT_STATUS, &status), K(IG_ADMIN_LIST) },
		{ CLI_NUMBER("offset", OPT_OFFSET, &offset, 0, UINT32_MAX), K(IG_ADMIN_LIST) },
		{ CLI_NUMBER("limit", OPT_LIMIT, &limit, 1, UINT32_MAX), K(IG_ADMIN_LIST) },
	};
	cli_option opts[sizeof all / sizeof all[0] + 1];
	size_t n = 0;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i].kinds & K(kind))
			opts[n++] = all[i].opt;
	opts[n] = (cli_option)CLI_OPTIONS_END;

	int parsed = cli_parse(argc, argv, opts);
	if (parsed != CLI_PARSED)
		return parsed == CLI_HELP ? identity_help(kind) : parsed;

	on.port = (int)port;
	on.timeout_s = (int)timeout_s;
	ig_admin_cmd cmd;
	memset(&cmd, 0, sizeof cmd);
	cmd.kind = kind;
	cmd.status_filter = -1;
	snprintf(cmd.command, sizeof cmd.command, "%s", ig_admin_kind_name(kind));
	cmd.offset = (uint32_t)offset;
	cmd.limit = (uint32_t)limit;  /* 0 (unset) means all, to both runners */
	cmd.amount = (uint32_t)amount;
	cmd.ttl = (uint32_t)ttl;
	cmd.count = (uint32_t)count;
	cmd.reenroll = reenroll;
	if (zone) {
		if (!cli_check_id("--zone", zone))
			return CLI_EXIT_ERR;
		snprintf(cmd.zone, sizeof cmd.zone, "%s", zone);
	}

	if (kind == IG_ADMIN_JOIN_CODES) {
		if (!role) {
			cli_error("--role is required (the role devices joining with these codes get)");
			return cli_usage_hint();
		}
		if (!cmd.ttl)
			cmd.ttl = IG_JOIN_CODE_TTL_DEFAULT;
		if (!cmd.count)
			cmd.count = 1;
	} else if (kind != IG_ADMIN_LIST) {
		if (!id)
			return cli_missing("--id");
		if (!cli_check_id("--id", id))
			return CLI_EXIT_ERR;
		snprintf(cmd.id, sizeof cmd.id, "%s", id);
	}
	if (kind == IG_ADMIN_CREDIT && !cmd.amount) {
		cli_error("--amount is required (how many coins the collector may mint)");
		return cli_usage_hint();
	}
	if (kind == IG_ADMIN_ENROLL) {
		if (!pubkey)
			return cli_missing("--pubkey");
		if (!role)
			return cli_missing("--role");
		if (strlen(pubkey) != 2 * IG_PK_BYTES ||
		    ig_hex_decode(cmd.pk, sizeof cmd.pk, pubkey, strlen(pubkey)) != IG_OK) {
			cli_error("--pubkey must be %d hex characters (the output of 'iotguard keygen' "
			          "or 'iotguard pubkey'), got '%s'", 2 * IG_PK_BYTES, pubkey);
			return CLI_EXIT_ERR;
		}
	}
	if (role) {
		cmd.role = ig_role_parse(role);
		if (cmd.role == IG_ROLE_NONE) {
			cli_error("--role '%s' is not a role: use device, analyst, monitor, admin, witness or bridge", role);
			return CLI_EXIT_ERR;
		}
	}
	if (kind == IG_ADMIN_JOIN_CODES && cmd.role != IG_ROLE_DEVICE && cmd.role != IG_ROLE_ANALYST) {
		cli_error("join codes are only for roles device and analyst; enroll %ss by public key with "
		          "'iotguard enroll'", ig_role_name(cmd.role));
		return CLI_EXIT_ERR;
	}
	if (status) {
		cmd.status_filter = parse_status(status);
		if (cmd.status_filter < 0) {
			cli_error("--status '%s' is not a status: use active, revoked or pending", status);
			return CLI_EXIT_ERR;
		}
	}
	if (reason) {
		if (strlen(reason) > IG_REASON_MAX) {
			cli_error("--reason is %zu bytes; at most %d are kept", strlen(reason), IG_REASON_MAX);
			return CLI_EXIT_ERR;
		}
		snprintf(cmd.reason, sizeof cmd.reason, "%s", reason);
	}

	if (ledger && on.host) {
		cli_error("give either --ledger (offline) or --host (online), not both");
		return cli_usage_hint();
	}
	if (!ledger && !on.host) {
		cli_error("say where to work: --ledger DIR (offline, on the ledger directory) or "
		          "--host HOST --cluster NAME --user ADMIN_ID --key FILE (online, via the broker)");
		return cli_usage_hint();
	}
	if (on.cluster && !cli_check_id("--cluster", on.cluster))
		return CLI_EXIT_ERR;

	cJSON *resp = NULL;
	int rc;
	if (ledger) {
		if (on.user || on.key_path || on.tls_ca)
			cli_warn("--user, --key and --tls-ca only apply with --host; ignoring them");
		rc = cli_offline_run(ledger, on.cluster, &cmd, &resp);
	} else {
		if (!on.cluster || !on.user || !on.key_path) {
			cli_error("online mode needs %s", !on.cluster ? "--cluster NAME"
			                                  : !on.user  ? "--user ADMIN_ID"
			                                              : "--key FILE");
			return cli_usage_hint();
		}
		if (!cli_check_id("--user", on.user))
			return CLI_EXIT_ERR;
		rc = cli_online_run(&on, &cmd, &resp);
	}
	if (!resp)
		return rc == CLI_EXIT_OK ? CLI_EXIT_ERR : rc;
	rc = print_response(&cmd, resp, as_json);
	cJSON_Delete(resp);
	return rc;
}

int cmd_enroll(int argc, char **argv) { return identity_command(IG_ADMIN_ENROLL, argc, argv); }
int cmd_revoke(int argc, char **argv) { return identity_command(IG_ADMIN_REVOKE, argc, argv); }
int cmd_list(int argc, char **argv) { return identity_command(IG_ADMIN_LIST, argc, argv); }
int cmd_get(int argc, char **argv) { return identity_command(IG_ADMIN_GET, argc, argv); }
int cmd_join_code(int argc, char **argv) { return identity_command(IG_ADMIN_JOIN_CODES, argc, argv); }
int cmd_credit(int argc, char **argv) { return identity_command(IG_ADMIN_CREDIT, argc, argv); }

/* ---- dispatch ------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "init", cmd_init, "create a ledger directory with a new cluster-head key" },
	{ "keygen", cmd_keygen, "create an identity key file; print its public key" },
	{ "pubkey", cmd_pubkey, "print the public key of a key file" },
	{ "token", cmd_token, "mint a connection token (the MQTT password)" },
	{ "enroll", cmd_enroll, "enroll an identity (offline or via the broker)" },
	{ "revoke", cmd_revoke, "revoke an identity (offline or via the broker)" },
	{ "list", cmd_list, "list identities" },
	{ "get", cmd_get, "show one identity" },
	{ "join-code", cmd_join_code, "create one-time join codes for new devices" },
	{ "credit", cmd_credit, "grant a collector credit for coins" },
	{ "verify", cmd_verify, "check a ledger end to end" },
	{ "show", cmd_show, "print ledger records" },
	{ "upgrade", cmd_upgrade, "move a format-1 ledger to format 2 (C2SP tlog hashing)" },
	{ "migrate", cmd_migrate, "move a file ledger into PostgreSQL (several brokers share it)" },
	{ "export", cmd_export, "write the shared ledger in PostgreSQL out as a file ledger" },
	{ "proof", cmd_proof, "write or check a C2SP tlog-proof that a record is in the log" },
	{ "witness", cmd_witness, "cosign the cluster head's checkpoints (a C2SP tlog-witness)" },
	{ "custody", cmd_custody, "device-quorum custody of the cluster-head key: status, seal, rotate" },
	{ "kp", cmd_kp, "predistributed key rings: status, rotate, simulate" },
	{ "dashboard-config", cmd_dashboard_config, "write the dashboard's config.json (its pinned keys)" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void main_help(FILE *out)
{
	fprintf(out, "Usage: iotguard COMMAND [OPTIONS]\n"
	             "Administers an iotguard cluster: keys, tokens, identities and the ledger.\n\n"
	             "Commands:\n");
	int width = 8;   /* the names column fits the longest name */
	for (size_t i = 0; i < N_COMMANDS; i++)
		if ((int)strlen(commands[i].name) > width)
			width = (int)strlen(commands[i].name);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-*s %s\n", width, commands[i].name, commands[i].summary);
	fprintf(out, "  %-*s %s\n", width, "help", "show this help, or 'help COMMAND' for a command's help");
	fprintf(out, "\nOptions:\n  --version  print the version\n  --help     show this help\n"
	             "\nExit status: 0 success, 1 error, 2 the ledger failed verification.\n");
}

static int run_command(const char *name, int argc, char **argv)
{
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(name, commands[i].name) == 0) {
			cli_cmd = commands[i].name;
			return commands[i].run(argc, argv);
		}
	}
	cli_error("unknown command '%s'", name);
	fprintf(stderr, "Try 'iotguard help'.\n");
	return CLI_EXIT_ERR;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		main_help(stderr);
		return CLI_EXIT_ERR;
	}
	const char *name = argv[1];
	if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
		printf("iotguard %s\n", IG_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		if (strcmp(name, "help") == 0 && argc >= 3) {
			char *help_argv[] = { argv[2], (char *)"--help", NULL };
			return run_command(argv[2], 2, help_argv);
		}
		main_help(stdout);
		return CLI_EXIT_OK;
	}
	if (ig_init() != IG_OK) {
		cli_error("cannot initialise libsodium");
		return CLI_EXIT_ERR;
	}
	ig_log_set(log_to_stderr, NULL);
	return run_command(name, argc - 1, argv + 1);
}
