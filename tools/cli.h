/*
 * cli.h: what the pieces of the `iotguard` admin tool share.
 *
 * Why this exists: identity commands (enroll, revoke, list, get) run either
 * offline against a ledger directory or online through the broker's admin
 * API. Both paths produce the same response element the admin API defines
 * (ig_admin.h), so one printer renders both and the two modes cannot drift
 * apart in what they show the operator.
 */
#ifndef IG_CLI_H
#define IG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_admin.h"
#include "ig_common.h"

#ifndef IG_VERSION
#define IG_VERSION "unknown"
#endif

/* Exit codes: 0 success, 1 any error, 2 the ledger failed verification. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_ERR = 1, CLI_EXIT_BAD_LEDGER = 2 };

/* Name of the running command ("enroll"), used to prefix every message. */
extern const char *cli_cmd;

/* "iotguard <cmd>: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option parsing helpers; they print the error themselves and return false. */
bool cli_parse_u64(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out);
bool cli_check_id(const char *opt, const char *value);
/* Complains about leftover positional arguments after getopt. */
bool cli_no_extra_args(int argc, char **argv, int optind_now);
/* Every command parses with getopt_long(argc, argv, CLI_OPTSTRING, ...):
 * the leading ':' keeps getopt quiet so errors carry our prefix. */
#define CLI_OPTSTRING ":"
/* For getopt's '?' / ':' results: prints the problem and the help hint,
 * returns CLI_EXIT_ERR. */
int cli_bad_option(int c, char **argv);
/* Prints "Try 'iotguard <cmd> --help'." and returns CLI_EXIT_ERR. */
int cli_usage_hint(void);

/* Maps a library error code to the process exit code for commands that read
 * a ledger: tampering or corruption is 2, everything else 1. */
int cli_exit_for(int ig_code);

/* "2024-05-01T12:00:00.123Z" (UTC) for a Unix-milliseconds timestamp. */
void cli_format_ts(char *out, size_t cap, uint64_t ts_ms);

/* Where online commands go. */
typedef struct cli_online {
	const char *host;
	int port;
	const char *cluster;
	const char *user;      /* admin id: MQTT client id and username */
	const char *key_path;  /* the admin's key file */
	const char *tls_ca;    /* NULL: plain TCP */
	int timeout_s;
} cli_online;

/* Runs identity commands. Each fills *resp with a response element shaped
 * like the admin API's ({"command","ok",...}); for list_identities the
 * element holds every requested identity. Returns a CLI exit code; on a
 * transport or local failure it prints the error and leaves *resp NULL.
 * A response with "ok":false is returned as success of the transport: the
 * caller prints it. */
struct cJSON;
int cli_offline_run(const char *ledger_dir, const char *cluster, const ig_admin_cmd *cmd,
                    struct cJSON **resp);
int cli_online_run(const cli_online *on, const ig_admin_cmd *cmd, struct cJSON **resp);

/* Commands. argv[0] is the command name. Each returns an exit code. */
int cmd_init(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_join_code(int argc, char **argv);
int cmd_credit(int argc, char **argv);

#endif
