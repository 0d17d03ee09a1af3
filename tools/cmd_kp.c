/*
 * cmd_kp.c: `iotguard kp status|rotate|simulate` (docs/PROTOCOL.md, "Key
 * rings"; docs/KEYRINGS.md for the simulator).
 *
 * Why this exists: the key-ring pool is the cluster head's running state
 * (its epoch, how many rings were dealt, which ids a revocation retired), so
 * status and rotate are asked of the broker through the admin API, with the
 * same options and admin session as the other online commands (cmd_online.c).
 * simulate needs no broker: it measures rings from the real library against
 * the analytical figures, so an operator can choose P, m and q before
 * turning predistribution on (tools/kp_simulate.c).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_HOST = 256, OPT_PORT, OPT_CLUSTER, OPT_USER, OPT_KEY, OPT_TIMEOUT, OPT_TLS_CA, OPT_JSON, OPT_HELP };

static int kp_help(void)
{
	printf("Usage: iotguard kp status|rotate --host HOST [--port PORT] --cluster C --user ADMIN_ID --key FILE\n"
	       "                    [--tls-ca FILE] [--timeout S] [--json]\n"
	       "       iotguard kp simulate --pool P --ring m --q q --nodes N --captured X [--seed HEX] [--json]\n"
	       "Predistributed key rings (the policy's \"predistribution\": {\"pool\", \"ring\", \"q\"}).\n\n"
	       "  status    the pool epoch and its parameters, the public ring seed, how many rings were dealt\n"
	       "            this epoch, the compromised ids and the revoked devices they came from, and the serial\n"
	       "            of the signed revoked statement on iotguard/<cluster>/kp/revoked\n"
	       "  rotate    retire the pool: start a new epoch (a new pool secret, so every ring key changes and\n"
	       "            nothing compromised carries over) and deal new rings to the devices as they ask\n"
	       "  simulate  assign rings with the real library code and print the measured share probability,\n"
	       "            connectivity and capture resilience next to the theory (no broker needed; see\n"
	       "            'iotguard kp simulate --help')\n\n"
	       "  --json    print the broker's answer as JSON\n");
	return CLI_EXIT_OK;
}

static void print_status(const cJSON *r)
{
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "enabled")) && !cli_json_uint(r, "epoch")) {
		printf("key rings:        off (the policy has no \"predistribution\" section)\n");
		return;
	}
	printf("key rings:        %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "enabled"))
	                                     ? "on"
	                                     : "off in the policy (the last epoch's rings stay valid)");
	printf("epoch:            %llu\n", (unsigned long long)cli_json_uint(r, "epoch"));
	printf("pool P:           %llu\n", (unsigned long long)cli_json_uint(r, "pool"));
	printf("ring m:           %llu\n", (unsigned long long)cli_json_uint(r, "ring"));
	printf("q:                %llu\n", (unsigned long long)cli_json_uint(r, "q"));
	printf("ring seed:        %s\n", cli_json_str(r, "seed", "-"));
	printf("rings dealt:      %llu\n", (unsigned long long)cli_json_uint(r, "rings"));
	printf("compromised ids:  %llu\n", (unsigned long long)cli_json_uint(r, "compromised_ids"));
	const cJSON *devs = cJSON_GetObjectItemCaseSensitive(r, "compromised_devices");
	printf("revoked holders:  %d", cJSON_GetArraySize(devs));
	const cJSON *d;
	const char *sep = " (";
	cJSON_ArrayForEach(d, devs) {
		if (cJSON_IsString(d)) {
			printf("%s%s", sep, d->valuestring);
			sep = ", ";
		}
	}
	printf("%s\n", strcmp(sep, ", ") == 0 ? ")" : "");
	printf("revoked serial:   %llu\n", (unsigned long long)cli_json_uint(r, "serial"));
	const char *pending = cli_json_str(r, "pending", NULL);
	if (pending)
		printf("note:             %s\n", pending);
}

int cmd_kp(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
			return kp_help();
		cli_error("say what to do: status, rotate or simulate");
		return cli_usage_hint();
	}
	const char *what = argv[1];
	if (!strcmp(what, "simulate"))
		return ig_cmd_kp_simulate(argc - 1, argv + 1);
	const char *command = !strcmp(what, "status") ? "kp_status" : !strcmp(what, "rotate") ? "kp_rotate" : NULL;
	if (!command) {
		cli_error("unknown kp command '%s': use status, rotate or simulate", what);
		return cli_usage_hint();
	}
	cli_online on = {0};
	bool as_json = false;
	uint64_t port = 1883, timeout_s = 10;
	const cli_option opts[] = {
		CLI_TEXT("host", OPT_HOST, &on.host),
		CLI_NUMBER("port", OPT_PORT, &port, 1, 65535),
		CLI_TEXT("cluster", OPT_CLUSTER, &on.cluster),
		CLI_TEXT("user", OPT_USER, &on.user),
		CLI_TEXT("key", OPT_KEY, &on.key_path),
		CLI_NUMBER("timeout", OPT_TIMEOUT, &timeout_s, 1, 3600),
		CLI_TEXT("tls-ca", OPT_TLS_CA, &on.tls_ca),
		CLI_FLAG("json", OPT_JSON, &as_json),
		CLI_HELP_OPTION(OPT_HELP),
		CLI_OPTIONS_END,
	};
	int parsed = cli_parse(argc - 1, argv + 1, opts);
	if (parsed != CLI_PARSED)
		return parsed == CLI_HELP ? kp_help() : parsed;
	char name[32];
	snprintf(name, sizeof name, "kp %s", what);
	int ready = cli_online_ready(&on, name, port, timeout_s);
	if (ready != CLI_EXIT_OK)
		return ready;

	cJSON *cmd = cJSON_CreateObject();
	if (!cmd || !cJSON_AddStringToObject(cmd, "command", command)) {
		cJSON_Delete(cmd);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	cJSON *resp = NULL;
	int rc = cli_online_json(&on, cmd, &resp);
	cJSON_Delete(cmd);
	if (!resp)
		return rc == CLI_EXIT_OK ? CLI_EXIT_ERR : rc;
	return cli_print_answer(resp, command, as_json, !strcmp(what, "status") ? print_status : NULL, "done");
}
