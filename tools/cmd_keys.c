/*
 * cmd_keys.c: `iotguard keygen`, `pubkey` and `token`.
 *
 * Why this exists: these are the only commands that touch secret keys
 * without a ledger. Their stdout is meant for shell substitution
 * (`--pubkey "$(iotguard keygen --out k)"`, `-P "$(iotguard token ...)"`),
 * so they print exactly one value and nothing else, and every secret is
 * wiped before returning.
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ig_keyfile.h"
#include "ig_token.h"

#define TOKEN_TTL_DEFAULT 300
#define TOKEN_TTL_MAX 86400

static void print_pk(const uint8_t pk[IG_PK_BYTES])
{
	char hex[2 * IG_PK_BYTES + 1];
	ig_hex_encode(hex, pk, IG_PK_BYTES);
	printf("%s\n", hex);
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, longopts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'f': force = true; break;
		case 'h':
			printf("Usage: iotguard keygen --out FILE [--force]\n"
			       "Creates a new Ed25519 identity key in FILE (mode 0600) and prints only its\n"
			       "public key, as 64 hex characters, for 'iotguard enroll --pubkey'.\n\n"
			       "  --out FILE   where to write the secret key\n"
			       "  --force      replace FILE if it exists\n"
			       "  --help       show this help\n");
			return CLI_EXIT_OK;
		default:
			return cli_bad_option(c, argv);
		}
	}
	if (!cli_no_extra_args(argc, argv, optind))
		return cli_usage_hint();
	if (!out) {
		cli_error("--out FILE is required");
		return cli_usage_hint();
	}

	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	int rc = ig_key_generate(pk, sk);
	if (rc != IG_OK) {
		sodium_memzero(sk, sizeof sk);
		cli_error("cannot generate a key pair (error %d)", rc);
		return CLI_EXIT_ERR;
	}
	rc = ig_keyfile_write(out, sk, force, &err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		if (rc == IG_ERR_EXISTS && !force)
			fprintf(stderr, "iotguard keygen: --force replaces it (the old key is then lost)\n");
		return CLI_EXIT_ERR;
	}
	print_pk(pk);
	return CLI_EXIT_OK;
}

int cmd_pubkey(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key = NULL;
	int c;
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, longopts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'h':
			printf("Usage: iotguard pubkey --key FILE\n"
			       "Prints the public key (64 hex characters) of a key file.\n\n"
			       "  --key FILE   the key file (from 'iotguard keygen', or a ledger's ch.key)\n"
			       "  --help       show this help\n");
			return CLI_EXIT_OK;
		default:
			return cli_bad_option(c, argv);
		}
	}
	if (!cli_no_extra_args(argc, argv, optind))
		return cli_usage_hint();
	if (!key) {
		cli_error("--key FILE is required");
		return cli_usage_hint();
	}
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	int rc = ig_keyfile_read(key, sk, pk, &err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	print_pk(pk);
	return CLI_EXIT_OK;
}

int cmd_token(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "key", required_argument, NULL, 'k' },
		{ "cluster", required_argument, NULL, 'c' },
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *id = NULL, *key = NULL, *cluster = NULL;
	uint64_t ttl = TOKEN_TTL_DEFAULT;
	int c;
	while ((c = getopt_long(argc, argv, CLI_OPTSTRING, longopts, NULL)) != -1) {
		switch (c) {
		case 'i': id = optarg; break;
		case 'k': key = optarg; break;
		case 'c': cluster = optarg; break;
		case 't':
			if (!cli_parse_u64("--ttl", optarg, 1, TOKEN_TTL_MAX, &ttl))
				return cli_usage_hint();
			break;
		case 'h':
			printf("Usage: iotguard token --id ID --key FILE --cluster NAME [--ttl SECONDS]\n"
			       "Mints a connection token and prints only the token, for use as the MQTT\n"
			       "password with client id and username ID, e.g.\n"
			       "  mosquitto_sub -i ID -u ID -P \"$(iotguard token --id ID --key FILE --cluster C)\" ...\n\n"
			       "  --id ID          the identity the token is for (must match the key's enrollment)\n"
			       "  --key FILE       that identity's key file\n"
			       "  --cluster NAME   the cluster the token is valid in\n"
			       "  --ttl SECONDS    lifetime, 1..%d (default %d); the broker also caps it per role\n"
			       "  --help           show this help\n",
			       TOKEN_TTL_MAX, TOKEN_TTL_DEFAULT);
			return CLI_EXIT_OK;
		default:
			return cli_bad_option(c, argv);
		}
	}
	if (!cli_no_extra_args(argc, argv, optind))
		return cli_usage_hint();
	if (!id || !key || !cluster) {
		cli_error("%s is required", !id ? "--id ID" : !key ? "--key FILE" : "--cluster NAME");
		return cli_usage_hint();
	}
	if (!cli_check_id("--id", id) || !cli_check_id("--cluster", cluster))
		return CLI_EXIT_ERR;

	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	int rc = ig_keyfile_read(key, sk, pk, &err);
	if (rc != IG_OK) {
		sodium_memzero(sk, sizeof sk);
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	char token[IG_TOKEN_TEXT_MAX];
	uint64_t now = ig_now_ms() / 1000;
	int len = ig_token_mint(token, sizeof token, sk, cluster, id, now, now + ttl, NULL);
	sodium_memzero(sk, sizeof sk);
	if (len < 0) {
		sodium_memzero(token, sizeof token);
		cli_error("cannot mint the token (error %d)", len);
		return CLI_EXIT_ERR;
	}
	printf("%s\n", token);
	sodium_memzero(token, sizeof token);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERR;
}
