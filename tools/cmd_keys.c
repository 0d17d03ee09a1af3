/*
 * cmd_keys.c: `iotguard keygen`, `pubkey` and `token`.
 *
 * Why this exists: these are the only commands that touch secret keys
 * without a ledger. Their stdout is meant for shell substitution
 * (`--pubkey "$(iotguard keygen --out k)"`, `-P "$(iotguard token ...)"`),
 * so they print exactly one value and nothing else, and every secret is
 * wiped before returning. The online client mints its admin token through
 * cli_mint_token here too, so a secret key is read and wiped in one place.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ig_keyfile.h"
#include "ig_token.h"

#define TOKEN_TTL_DEFAULT 300
/* A bridge token (docs/PROTOCOL.md "Several brokers") may live up to a year;
 * the broker caps every role's lifetime itself (ttl_<role>). */
#define TOKEN_TTL_MAX (365 * 86400)

void cli_print_pk(const uint8_t pk[IG_PK_BYTES])
{
	char hex[2 * IG_PK_BYTES + 1];
	ig_hex_encode(hex, pk, IG_PK_BYTES);
	printf("%s\n", hex);
}

bool cli_mint_token(const char *key_path, const char *cluster, const char *id, uint64_t ttl_s,
                    char *token, size_t cap, const char *what)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	int rc = ig_keyfile_read(key_path, sk, pk, &err);
	if (rc != IG_OK) {
		sodium_memzero(sk, sizeof sk);
		cli_error("%s", err.msg);
		return false;
	}
	uint64_t now = ig_now_ms() / 1000;
	int len = ig_token_mint(token, cap, sk, cluster, id, now, now + ttl_s, NULL);
	sodium_memzero(sk, sizeof sk);
	if (len < 0) {
		sodium_memzero(token, cap);
		cli_error("cannot mint %s (error %d)", what, len);
		return false;
	}
	return true;
}

static int keygen_help(void)
{
	printf("Usage: iotguard keygen --out FILE [--force]\n"
	       "Creates a new Ed25519 identity key in FILE (mode 0600) and prints only its\n"
	       "public key, as 64 hex characters, for 'iotguard enroll --pubkey'.\n\n"
	       "  --out FILE   where to write the secret key\n"
	       "  --force      replace FILE if it exists\n"
	       "  --help       show this help\n");
	return CLI_EXIT_OK;
}

int cmd_keygen(int argc, char **argv)
{
	const char *out = NULL;
	bool force = false;
	const cli_option opts[] = {
		CLI_REQUIRED("out", 'o', &out, "FILE"),
		CLI_FLAG("force", 'f', &force),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? keygen_help() : rc;

	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	rc = ig_keyfile_generate(pk, sk);
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
	cli_print_pk(pk);
	return CLI_EXIT_OK;
}

static int pubkey_help(void)
{
	printf("Usage: iotguard pubkey --key FILE\n"
	       "Prints the public key (64 hex characters) of a key file.\n\n"
	       "  --key FILE   the key file (from 'iotguard keygen', or a ledger's ch.key)\n"
	       "  --help       show this help\n");
	return CLI_EXIT_OK;
}

int cmd_pubkey(int argc, char **argv)
{
	const char *key = NULL;
	const cli_option opts[] = {
		CLI_REQUIRED("key", 'k', &key, "FILE"),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? pubkey_help() : rc;

	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_error err = { 0 };
	rc = ig_keyfile_read(key, sk, pk, &err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	cli_print_pk(pk);
	return CLI_EXIT_OK;
}

static int token_help(void)
{
	printf("Usage: iotguard token --id ID --key FILE --cluster NAME [--ttl SECONDS]\n"
	       "Mints a connection token and prints only the token, for use as the MQTT\n"
	       "password with client id and username ID, e.g.\n"
	       "  mosquitto_sub -i ID -u ID -P \"$(iotguard token --id ID --key FILE --cluster C)\" ...\n\n"
	       "  --id ID          the identity the token is for (must match the key's enrollment)\n"
	       "  --key FILE       that identity's key file\n"
	       "  --cluster NAME   the cluster the token is valid in\n"
	       "  --ttl SECONDS    lifetime, 1..%d (default %d); the broker also caps it per role\n"
	       "                   (a bridge token: up to 30 days by default, 2592000)\n"
	       "  --help           show this help\n",
	       TOKEN_TTL_MAX, TOKEN_TTL_DEFAULT);
	return CLI_EXIT_OK;
}

int cmd_token(int argc, char **argv)
{
	const char *id = NULL, *key = NULL, *cluster = NULL;
	uint64_t ttl = TOKEN_TTL_DEFAULT;
	const cli_option opts[] = {
		CLI_REQUIRED("id", 'i', &id, "ID"),
		CLI_REQUIRED("key", 'k', &key, "FILE"),
		CLI_REQUIRED("cluster", 'c', &cluster, "NAME"),
		CLI_NUMBER("ttl", 't', &ttl, 1, TOKEN_TTL_MAX),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? token_help() : rc;
	if (!cli_check_id("--id", id) || !cli_check_id("--cluster", cluster))
		return CLI_EXIT_ERR;

	char token[IG_TOKEN_TEXT_MAX];
	if (!cli_mint_token(key, cluster, id, ttl, token, sizeof token, "the token"))
		return CLI_EXIT_ERR;
	printf("%s\n", token);
	sodium_memzero(token, sizeof token);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERR;
}
