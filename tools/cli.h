/*
 * cli.h: what the pieces of the `iotguard` admin tool share.
 *
 * Why this exists: identity commands (enroll, revoke, list, get) run either
 * offline against a ledger directory or online through the broker's admin
 * API. Both paths produce the same response element the admin API defines
 * (ig_admin.h), so one printer renders both and the two modes cannot drift
 * apart in what they show the operator. Likewise every command declares its
 * options as a table for one parser, so they all read and reject options
 * the same way.
 */
#ifndef IG_CLI_H
#define IG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_admin.h"
#include "ig_common.h"
#include "ig_ledger.h"

#ifndef IG_VERSION
#define IG_VERSION "unknown"
#endif

/* Exit codes: 0 success, 1 any error, 2 the ledger failed verification. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_ERR = 1, CLI_EXIT_BAD_LEDGER = 2 };

/* Name of the running command ("enroll"), used to prefix every message. */
extern const char *cli_cmd;

/* The program the help hint names, and whether it has commands: "iotguard"
 * and true unless another program (the bench tools) reuses the parser. */
extern const char *cli_program;
extern bool cli_commands;

/* "iotguard <cmd>: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- options (cli_options.c) --------------------------------------------- */

/* One option. Set exactly one of text, flag, number, real, list or is_help. */
typedef struct cli_option {
	const char *name;      /* long name without the leading "--" */
	/* getopt_long's value for it. It also shows in one complaint: for
	 * "--name=x" on an option that takes no value getopt reports this
	 * value, and cli_parse words a value below 256 as "-<letter>". */
	int val;
	const char **text;     /* takes a value, stored as given */
	const char *required;  /* text only: must be given; names the value in the
	                        * complaint ("DIR": "--ledger DIR is required") */
	bool *flag;            /* takes no value, set to true */
	uint64_t *number;      /* takes a whole number in [min, max] */
	uint64_t min, max;
	double *real;          /* takes a decimal number in [rmin, rmax] */
	double rmin, rmax;
	const char **list;     /* may be given up to list_max times; each value is
	                        * appended, *list_n counts them */
	size_t *list_n, list_max;
	bool is_help;          /* --help: stop parsing, the command shows its help */
} cli_option;

#define CLI_TEXT(n, v, dest) { .name = (n), .val = (v), .text = (dest) }
#define CLI_REQUIRED(n, v, dest, value_name) \
	{ .name = (n), .val = (v), .text = (dest), .required = (value_name) }
#define CLI_FLAG(n, v, dest) { .name = (n), .val = (v), .flag = (dest) }
#define CLI_NUMBER(n, v, dest, lo, hi) \
	{ .name = (n), .val = (v), .number = (dest), .min = (lo), .max = (hi) }
#define CLI_REAL(n, v, dest, lo, hi) \
	{ .name = (n), .val = (v), .real = (dest), .rmin = (lo), .rmax = (hi) }
#define CLI_LIST(n, v, dest, count, most) \
	{ .name = (n), .val = (v), .list = (dest), .list_n = (count), .list_max = (most) }
#define CLI_HELP_OPTION(v) { .name = "help", .val = (v), .is_help = true }
#define CLI_OPTIONS_END { .name = NULL }

/* cli_parse's answers besides an exit code. */
enum { CLI_PARSED = -1, CLI_HELP = -2 };

/* Parses argv in order, storing each option where its table entry says.
 * Stops at the first problem (printed, with the help hint; returns
 * CLI_EXIT_ERR) or at --help (returns CLI_HELP, the caller prints its help
 * and exits 0). Returns CLI_PARSED when every argument was an option and
 * every required one was given. */
int cli_parse(int argc, char **argv, const cli_option *opts);

/* Prints "<what> is required" and the help hint; returns CLI_EXIT_ERR. */
int cli_missing(const char *what);
/* Checks an identity id or cluster name; prints the rule and returns false
 * if it breaks it. */
bool cli_check_id(const char *opt, const char *value);
/* Prints "Try 'iotguard <cmd> --help'." and returns CLI_EXIT_ERR. */
int cli_usage_hint(void);

/* Maps a library error code to the process exit code for commands that read
 * a ledger: tampering or corruption is 2, everything else 1. */
int cli_exit_for(int ig_code);

/* "2024-05-01T12:00:00.123Z" (UTC) for a Unix-milliseconds timestamp. */
void cli_format_ts(char *out, size_t cap, uint64_t ts_ms);

/* Prints a public key as one line of hex: the whole stdout of the commands
 * meant for shell substitution. */
void cli_print_pk(const uint8_t pk[IG_PK_BYTES]);

/* Reads the key file and mints a connection token for id in cluster, valid
 * from now for ttl_s seconds. The secret key is wiped before returning. On
 * failure prints why ("cannot mint <what> ...") and returns false. */
bool cli_mint_token(const char *key_path, const char *cluster, const char *id, uint64_t ttl_s,
                    char *token, size_t cap, const char *what);

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
/* A new response element {"command":..,"ok":ok}; NULL when out of memory. */
struct cJSON *cli_response_new(const ig_admin_cmd *cmd, bool ok);
int cli_offline_run(const char *ledger_dir, const char *cluster, const ig_admin_cmd *cmd,
                    struct cJSON **resp);
int cli_online_run(const cli_online *on, const ig_admin_cmd *cmd, struct cJSON **resp);
/* The same for one command given as a JSON object ({"command":...}); the
 * correlation is added here. */
int cli_online_json(const cli_online *on, const struct cJSON *command, struct cJSON **resp);
/* Prints a response element as --json shows it: indented, without the
 * correlation (ours, not the broker's answer). */
void cli_print_answer_json(struct cJSON *resp);
/* Prints one command's answer and deletes it: with as_json as is, a
 * refusal as "<command> refused (<error>): <message>", else print_ok(resp),
 * or (print_ok NULL) its "message" or ok_default. CLI_EXIT_OK when the
 * answer is ok, else CLI_EXIT_ERR. */
int cli_print_answer(struct cJSON *resp, const char *command, bool as_json, void (*print_ok)(const struct cJSON *),
                     const char *ok_default);
/* Checks the options every online command needs (--host, --cluster,
 * --user, --key; "<what> works through the broker: it needs ..." when one
 * is missing) and the ids, and sets port and timeout. CLI_EXIT_OK, or the
 * exit code after saying what is wrong. */
int cli_online_ready(cli_online *on, const char *what, uint64_t port, uint64_t timeout_s);

/* A broker answer's fields as the commands print them: a string field, or
 * dflt when absent or not a string; an unsigned field, or 0. */
const char *cli_json_str(const struct cJSON *o, const char *name, const char *dflt);
uint64_t cli_json_uint(const struct cJSON *o, const char *name);

/* ---- the shared ledger in PostgreSQL (cmd_pg.c) ---- */
/* Reads and fully checks a ledger for verify and show: the directory dir
 * (ig_ledger_verify), or with dsn the shared ledger in PostgreSQL (every
 * row's SQL columns against its frame, meta and head against the records,
 * then ig_ledger_scan_buffer: the same check and callbacks), dir then being
 * an optional key directory whose ch.key must be the ledger's key. *checked
 * turns true once the ledger's bytes are in hand: a failure before it (the
 * database unreachable, no ledger there) is exit 1, after it (or IG_ERR_CORRUPT
 * / IG_ERR_CRYPTO at any point) the ledger is bad, exit 2. */
int cli_ledger_read(const char *dir, const char *dsn, ig_record_fn on_record, void *ctx, ig_progress_fn progress,
                    void *progress_ctx, ig_verify_result *res, bool *checked, ig_error *err);
/* cli_ledger_read replaying the whole state by the broker's own rules
 * (ig_state), as verify, migrate and export check a ledger; res is zeroed
 * first. */
int cli_ledger_check(const char *dir, const char *dsn, ig_progress_fn progress, void *progress_ctx,
                     ig_verify_result *res, bool *checked, ig_error *err);
/* The exit code for a cli_ledger_read failure (see there). */
static inline int cli_ledger_read_exit(int rc, bool checked)
{
	if (rc == IG_ERR_NOMEM)
		return CLI_EXIT_ERR;
	return checked || rc == IG_ERR_CORRUPT || rc == IG_ERR_CRYPTO ? CLI_EXIT_BAD_LEDGER : CLI_EXIT_ERR;
}
/* `init --dsn`: the key in dir, the genesis and first checkpoint in PostgreSQL. */
int cli_pg_init(const char *dir, const char *dsn, const char *cluster, unsigned format);

/* Commands. argv[0] is the command name. Each returns an exit code. */
int cmd_init(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_proof(int argc, char **argv);
int cmd_witness(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_join_code(int argc, char **argv);
int cmd_credit(int argc, char **argv);
int cmd_custody(int argc, char **argv);
int cmd_kp(int argc, char **argv);
int cmd_dashboard_config(int argc, char **argv);
/* `iotguard kp simulate ...` (tools/kp_simulate.c): rings from the real
 * library, measured against the analytical figures (docs/KEYRINGS.md). */
int ig_cmd_kp_simulate(int argc, char **argv);

#endif
