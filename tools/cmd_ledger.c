/*
 * cmd_ledger.c: commands that work on a ledger directory directly:
 * `init`, `verify`, `show`, and the offline side of enroll/revoke/list/get.
 *
 * Why this exists: before the broker runs (bootstrap: the first admin) and
 * for audits, the operator works on the files themselves. Changes take the
 * writer lock so they can never interleave with a running broker; reads go
 * through the full verifier, which needs no lock, so they are safe while the
 * broker writes and they never show state from a ledger that fails its
 * checks.
 *
 * Every one of them rebuilds the cluster state through ig_state_apply, as
 * the broker does on start, so they refuse the same ledgers; and the
 * offline changes use lib's admission rules and views (ig_admin_admit,
 * ig_admin_record, ig_admin_read), so they answer as the broker would.
 */
#include <cJSON.h>
#include <sodium.h>
#include <inttypes.h>
#include <pwd.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ig_coins.h"
#include "ig_join.h"
#include "ig_ledger.h"
#include "ig_registry.h"
#include "ig_state.h"

#define PROGRESS_EVERY_RECORDS 1000000u

void cli_format_ts(char *out, size_t cap, uint64_t ts_ms)
{
	time_t secs = (time_t)(ts_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&secs, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, cap, "%" PRIu64 "ms", ts_ms);
		return;
	}
	size_t n = strlen(out);
	snprintf(out + n, cap - n, ".%03uZ", (unsigned)(ts_ms % 1000));
}

/* ---- init ---------------------------------------------------------------- */

static int init_help(void)
{
	printf("Usage: iotguard init --ledger DIR --cluster NAME [--dsn DSN]\n"
	       "Creates a ledger directory: a new cluster-head key (DIR/ch.key, mode 0600),\n"
	       "the genesis record and a first signed checkpoint. Prints the cluster-head\n"
	       "public key (64 hex); auditors use it to check checkpoints.\n\n"
	       "  --ledger DIR     the directory to create (must not hold a ledger)\n"
	       "  --cluster NAME   cluster name: 1..64 of A-Z a-z 0-9 _ . -\n"
	       "  --format N       ledger format: 2 (default: an RFC 6962 SHA-256 tree, served as\n"
	       "                   C2SP tiles, with proofs and witnesses) or 1 (the older BLAKE2b\n"
	       "                   tree; docs/LEDGER.md section 8)\n"
	       "  --dsn DSN        a shared ledger for several brokers (docs/LEDGER.md section 16):\n"
	       "                   the records go to this PostgreSQL database (libpq connection\n"
	       "                   string; password in ~/.pgpass), DIR gets only ch.key; refuses\n"
	       "                   a database that holds a ledger already\n"
	       "  --help           show this help\n");
	return CLI_EXIT_OK;
}

int cmd_init(int argc, char **argv)
{
	const char *dir = NULL, *cluster = NULL, *dsn = NULL;
	uint64_t format = IG_FORMAT_VERSION;
	const cli_option opts[] = {
		CLI_REQUIRED("ledger", 'l', &dir, "DIR"),
		CLI_REQUIRED("cluster", 'c', &cluster, "NAME"),
		CLI_NUMBER("format", 0, &format, IG_FORMAT_V1, IG_FORMAT_VERSION),
		CLI_TEXT("dsn", 'd', &dsn),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? init_help() : rc;
	if (!cli_check_id("--cluster", cluster))
		return CLI_EXIT_ERR;
	if (dsn)
		return cli_pg_init(dir, dsn, cluster, (unsigned)format);

	uint8_t pk[IG_PK_BYTES];
	ig_error err = { 0 };
	rc = ig_ledger_init_format(dir, cluster, (unsigned)format, pk, &err);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	cli_print_pk(pk);
	return CLI_EXIT_OK;
}

/* ---- progress for long scans ------------------------------------------- */

typedef struct progress_state {
	bool enabled;
	bool tty;
	bool printed;
	uint64_t next;
} progress_state;

/* Long scans report progress only when someone watches a terminal, unless
 * the operator asks for it (verify --progress). */
static progress_state progress_start(void)
{
	progress_state ps = { .tty = isatty(STDERR_FILENO) == 1, .next = PROGRESS_EVERY_RECORDS };
	ps.enabled = ps.tty;
	return ps;
}

static void progress_report(void *ctx, uint64_t records, uint64_t bytes, uint64_t total_bytes)
{
	progress_state *ps = ctx;
	if (!ps->enabled || records < ps->next)
		return;
	ps->next = (records / PROGRESS_EVERY_RECORDS + 1) * PROGRESS_EVERY_RECORDS;
	double pct = total_bytes ? 100.0 * (double)bytes / (double)total_bytes : 100.0;
	fprintf(stderr, "%siotguard %s: %" PRIu64 " records checked, %.0f%% of %.1f MB%s",
	        ps->tty ? "\r" : "", cli_cmd, records, pct, (double)total_bytes / 1e6,
	        ps->tty ? "" : "\n");
	ps->printed = true;
}

static void progress_end(progress_state *ps)
{
	if (ps->printed && ps->tty)
		fputc('\n', stderr);
	ps->printed = false;
}

/* ---- verify -------------------------------------------------------------- */

static int verify_help(void)
{
	printf("Usage: iotguard verify (--ledger DIR | --dsn DSN [--ledger KEYDIR]) [--progress]\n"
	       "Checks every record's frame, checksum, hash and chain link, the genesis\n"
	       "record, the checkpoint signature and the Merkle root, and replays the\n"
	       "records' bodies and state rules (identities, join codes, coins) as the\n"
	       "broker does on start. Needs no lock, so it can run while the broker\n"
	       "writes. Exit status 0 if the ledger is intact,\n"
	       "printing 'ledger OK: cluster C, height N, head H, checkpoint size M';\n"
	       "2 if it is not (the message names the first bad record; a log shorter\n"
	       "than its signed checkpoint is tampering), 1 on usage errors.\n\n"
	       "  --ledger DIR   the ledger directory\n"
	       "  --dsn DSN      the shared ledger in PostgreSQL instead (docs/LEDGER.md 16): the\n"
	       "                 same checks, plus every row's SQL columns against its record and\n"
	       "                 the meta and head rows against the records; with --ledger, that\n"
	       "                 directory's ch.key must be the ledger's key. Exit 1 if the\n"
	       "                 database cannot be reached or holds no ledger\n"
	       "  --progress     report progress on stderr (default: only on a terminal)\n"
	       "  --help         show this help\n");
	return CLI_EXIT_OK;
}

int cmd_verify(int argc, char **argv)
{
	const char *dir = NULL, *dsn = NULL;
	progress_state ps = progress_start();
	const cli_option opts[] = {
		CLI_TEXT("ledger", 'l', &dir),
		CLI_TEXT("dsn", 'd', &dsn),
		CLI_FLAG("progress", 'p', &ps.enabled),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? verify_help() : rc;
	if (!dir && !dsn)
		return cli_missing("--ledger DIR (or --dsn DSN)");

	/* The whole state, so a ledger the broker would refuse to start on
	 * (a revoke of an id never enrolled, a redeem of an unknown coin) is
	 * refused here too, by the same rules. */
	ig_verify_result res;
	ig_error err = { 0 };
	bool checked = false;
	rc = cli_ledger_check(dir, dsn, progress_report, &ps, &res, &checked, &err);
	progress_end(&ps);
	if (rc != IG_OK) {
		cli_error("%s", err.msg[0] ? err.msg : rc == IG_ERR_NOMEM ? "out of memory" : "verification failed");
		return cli_ledger_read_exit(rc, checked);
	}
	char head[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(head, res.head, IG_HASH_BYTES);
	printf("ledger OK: cluster %s, height %" PRIu64 ", head %s, checkpoint size %" PRIu64 "\n",
	       res.cluster, res.height, head, res.checkpoint_size);
	if (res.torn_bytes > 0)
		cli_warn("%" PRIu64 " bytes after the last valid record are an incomplete write "
		         "(a crash, or a write in progress); the next writer open cuts them off",
		         res.torn_bytes);
	return CLI_EXIT_OK;
}

/* ---- show ---------------------------------------------------------------- */

typedef struct show_state {
	bool as_json;
	uint64_t from;
	uint64_t limit;    /* 0 = all */
	uint64_t shown;
	bool done;         /* stopped early on purpose, not a failure */
	bool write_failed;
} show_state;

/* Record strings come from whoever enrolled or revoked; keep control bytes
 * out of the operator's terminal. */
static void print_clean(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void print_record_line(const ig_record *rec)
{
	char when[40], hash[2 * IG_HASH_BYTES + 1];
	cli_format_ts(when, sizeof when, rec->ts_ms);
	ig_hex_encode(hash, rec->hash, IG_HASH_BYTES);
	printf("#%-6" PRIu64 " %s %-7s ", rec->index, when, ig_record_type_name(rec->type));

	ig_error err = { 0 };
	char pk[2 * IG_PK_BYTES + 1];
	switch (rec->type) {
	case IG_REC_GENESIS: {
		ig_genesis g;
		if (ig_record_genesis_decode(rec->body, rec->body_len, &g, &err) != IG_OK)
			goto undecodable;
		ig_hex_encode(pk, g.ch_pk, IG_PK_BYTES);
		printf("cluster=%s ch_pubkey=%s version=%u", g.cluster, pk, (unsigned)g.version);
		break;
	}
	case IG_REC_FORMAT: {
		ig_format_rec f;
		if (ig_record_format_decode(rec->body, rec->body_len, &f, &err) != IG_OK)
			goto undecodable;
		printf("version=%u by=%s", (unsigned)f.version, f.by);
		break;
	}
	case IG_REC_ENROLL: {
		ig_enroll e;
		if (ig_record_enroll_decode(rec->body, rec->body_len, &e, &err) != IG_OK)
			goto undecodable;
		ig_hex_encode(pk, e.pk, IG_PK_BYTES);
		printf("id=%s role=%s pubkey=%s by=", e.id, ig_role_name(e.role), pk);
		print_clean(e.by);
		if (e.has_zone)
			printf(" zone=%s", e.zone);
		break;
	}
	case IG_REC_CUSTODY_EPOCH: {
		ig_custody_epoch_rec *c = malloc(sizeof *c);   /* 25 KB: not on the stack */
		if (!c) {
			ig_error_set(&err, IG_ERR_NOMEM, "out of memory");
			goto undecodable;
		}
		if (ig_record_custody_epoch_decode(rec->body, rec->body_len, c, &err) != IG_OK) {
			free(c);
			goto undecodable;
		}
		printf("epoch=%" PRIu64 " k=%u n=%u holders=", c->epoch, c->k, c->n);
		for (unsigned i = 0; i < c->n; i++)
			printf("%s%s", i ? "," : "", c->holders[i]);
		printf(" reason=%s by=", c->reason);
		print_clean(c->by);
		free(c);
		break;
	}
	case IG_REC_CUSTODY_ACTIVE: {
		ig_custody_active_rec a;
		if (ig_record_custody_active_decode(rec->body, rec->body_len, &a, &err) != IG_OK)
			goto undecodable;
		printf("epoch=%" PRIu64, a.epoch);
		break;
	}
	case IG_REC_CUSTODY_BAD_SHARE: {
		ig_custody_bad_share_rec b;
		if (ig_record_custody_bad_share_decode(rec->body, rec->body_len, &b, &err) != IG_OK)
			goto undecodable;
		printf("epoch=%" PRIu64 " holder=%s reason=\"", b.epoch, b.holder);
		print_clean(b.reason);
		printf("\"");
		break;
	}
	case IG_REC_CUSTODY_SEALED: {
		ig_custody_sealed_rec c;
		if (ig_record_custody_sealed_decode(rec->body, rec->body_len, &c, &err) != IG_OK)
			goto undecodable;
		ig_hex_encode(pk, c.c0, IG_HASH_BYTES);
		printf("epoch=%" PRIu64 " c0=%s by=", c.epoch, pk);
		print_clean(c.by);
		break;
	}
	case IG_REC_KP_EPOCH: {
		ig_kp_epoch_rec k;
		if (ig_record_kp_epoch_decode(rec->body, rec->body_len, &k, &err) != IG_OK)
			goto undecodable;
		ig_hex_encode(pk, k.seed, sizeof k.seed);
		printf("epoch=%" PRIu64 " pool=%u ring=%u q=%u seed=%s reason=%s by=", k.epoch, k.pool, k.ring,
		       (unsigned)k.q, pk, k.reason);
		print_clean(k.by);
		break;
	}
	case IG_REC_KP_RING: {
		ig_kp_ring_rec k;
		if (ig_record_kp_ring_decode(rec->body, rec->body_len, &k, &err) != IG_OK)
			goto undecodable;
		ig_hex_encode(pk, k.ring_hash, sizeof k.ring_hash);
		printf("epoch=%" PRIu64 " id=%s ring_hash=%s", k.epoch, k.id, pk);
		break;
	}
	case IG_REC_KP_COMPROMISED: {
		ig_kp_compromised_rec *k = malloc(sizeof *k);   /* 4 KB of ids: not on the stack */
		if (!k) {
			ig_error_set(&err, IG_ERR_NOMEM, "out of memory");
			goto undecodable;
		}
		if (ig_record_kp_compromised_decode(rec->body, rec->body_len, k, &err) != IG_OK) {
			free(k);
			goto undecodable;
		}
		printf("epoch=%" PRIu64 " id=%s count=%u ids=", k->epoch, k->id, k->id_count);
		for (uint32_t i = 0; i < k->id_count; i++)
			printf("%s%u", i ? "," : "", k->ids[i]);
		free(k);
		break;
	}
	case IG_REC_REVOKE: {
		ig_revoke r;
		if (ig_record_revoke_decode(rec->body, rec->body_len, &r, &err) != IG_OK)
			goto undecodable;
		printf("id=%s reason=\"", r.id);
		print_clean(r.reason);
		printf("\" by=");
		print_clean(r.by);
		break;
	}
	default:
		printf("type=%u body=%" PRIu32 " bytes", (unsigned)rec->type, rec->body_len);
		break;
	}
	printf(" hash=%.16s\n", hash);
	return;
undecodable:
	printf("(body does not decode: %s) hash=%.16s\n", err.msg, hash);
}

static int show_record(void *ctx, const ig_record *rec, ig_error *err)
{
	show_state *st = ctx;
	if (rec->index < st->from)
		return IG_OK;
	if (st->as_json) {
		char *json = ig_record_to_json(rec);
		if (!json)
			return ig_error_set(err, IG_ERR_NOMEM, "out of memory rendering record %" PRIu64,
			                    rec->index);
		printf("%s\n", json);
		free(json);
	} else {
		print_record_line(rec);
	}
	if (ferror(stdout)) {
		st->write_failed = true;
		st->done = true;
		return ig_error_set(err, IG_ERR_IO, "cannot write to stdout");
	}
	st->shown++;
	if (st->limit && st->shown >= st->limit) {
		st->done = true;
		return ig_error_set(err, IG_ERR_STATE, "limit reached");
	}
	return IG_OK;
}

static int show_help(void)
{
	printf("Usage: iotguard show (--ledger DIR | --dsn DSN) [--json] [--from N] [--limit N]\n"
	       "Prints ledger records, one per line, after checking each one. Needs no\n"
	       "lock, so it works while the broker writes.\n\n"
	       "  --ledger DIR   the ledger directory\n"
	       "  --dsn DSN      the shared ledger in PostgreSQL instead (checked as verify --dsn)\n"
	       "  --json         one JSON object per line (same shape as ledger events)\n"
	       "  --from N       start at record index N (default 0, the genesis record)\n"
	       "  --limit N      print at most N records\n"
	       "  --help         show this help\n");
	return CLI_EXIT_OK;
}

int cmd_show(int argc, char **argv)
{
	const char *dir = NULL, *dsn = NULL;
	show_state st = { 0 };
	const cli_option opts[] = {
		CLI_TEXT("ledger", 'l', &dir),
		CLI_TEXT("dsn", 'd', &dsn),
		CLI_FLAG("json", 'j', &st.as_json),
		CLI_NUMBER("from", 'f', &st.from, 0, UINT64_MAX),
		CLI_NUMBER("limit", 'n', &st.limit, 1, UINT64_MAX),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? show_help() : rc;
	if (!dir && !dsn)
		return cli_missing("--ledger DIR (or --dsn DSN)");

	ig_verify_result res;
	memset(&res, 0, sizeof res);
	ig_error err = { 0 };
	bool checked = false;
	rc = cli_ledger_read(dir, dsn, show_record, &st, NULL, NULL, &res, &checked, &err);
	if (fflush(stdout) != 0)
		st.write_failed = true;
	if (st.write_failed) {
		cli_error("cannot write to stdout");
		return CLI_EXIT_ERR;
	}
	if (rc != IG_OK && !st.done) {
		cli_error("%s", err.msg[0] ? err.msg : "cannot read the ledger");
		return dsn ? cli_ledger_read_exit(rc, checked) : cli_exit_for(rc);
	}
	if (rc == IG_OK && res.torn_bytes > 0)
		cli_warn("%" PRIu64 " bytes after the last record are an incomplete write (not shown)",
		         res.torn_bytes);
	return CLI_EXIT_OK;
}

/* ---- offline identity commands ------------------------------------------ */

cJSON *cli_response_new(const ig_admin_cmd *cmd, bool ok)
{
	cJSON *resp = cJSON_CreateObject();
	if (!resp)
		return NULL;
	cJSON_AddStringToObject(resp, "command", cmd->command);
	cJSON_AddBoolToObject(resp, "ok", ok);
	return resp;
}

/* The answer to a command lib's admission rule refused. */
static cJSON *response_refused(const ig_admin_cmd *cmd, const ig_admin_refusal *why)
{
	cJSON *resp = cli_response_new(cmd, false);
	if (resp && (!cJSON_AddStringToObject(resp, "error", why->code) ||
	             !cJSON_AddStringToObject(resp, "message", why->message))) {
		cJSON_Delete(resp);
		return NULL;
	}
	return resp;
}

/* Who made an offline change, for the record's "by" field: the name of the
 * process's real uid as the system knows it ("offline:root"), never $USER,
 * which any caller can set; "offline:uid<N>" when the uid has no name (or
 * one outside the identity alphabet), as in a bare container. */
static void offline_by(char *out, size_t cap)
{
	uid_t uid = getuid();
	const struct passwd *pw = getpwuid(uid);
	if (pw && pw->pw_name && ig_id_valid(pw->pw_name, strlen(pw->pw_name)))
		snprintf(out, cap, "offline:%s", pw->pw_name);
	else
		snprintf(out, cap, "offline:uid%u", (unsigned)uid);
}

typedef struct same_key_state {
	const uint8_t *pk;
	const char *id;
} same_key_state;

static bool warn_same_key(void *ctx, const ig_identity *idn)
{
	same_key_state *sk = ctx;
	if (idn->status == IG_ID_ACTIVE && strcmp(idn->id, sk->id) != 0 &&
	    memcmp(idn->pk, sk->pk, IG_PK_BYTES) == 0)
		cli_warn("this public key is already enrolled as '%s'; each identity should have "
		         "its own key", idn->id);
	return true;
}

static int check_cluster(const char *dir, const char *have, const char *want)
{
	if (want && strcmp(have, want) != 0) {
		cli_error("ledger %s belongs to cluster '%s', not '%s'", dir, have, want);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* Opens the ledger as its one writer, for the offline changes, and checks
 * it is the cluster the operator named, if any. On failure prints why and
 * returns the exit code, with *out NULL. When the broker holds the lock,
 * suggest_online also tells the operator how to make the change through it. */
static int open_writer(const char *dir, const char *cluster, const ig_ledger_open_opts *opts,
                       bool suggest_online, ig_ledger **out)
{
	ig_error err = { 0 };
	*out = NULL;
	int rc = ig_ledger_open(out, dir, opts, &err);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		if (rc == IG_ERR_LOCKED && suggest_online)
			fprintf(stderr, "The broker (or another iotguard command) is using this ledger. While "
			                "the broker runs, change identities through it instead:\n"
			                "  iotguard %s --host HOST --port PORT --cluster NAME --user ADMIN_ID "
			                "--key ADMIN_KEY ...\n", cli_cmd);
		return cli_exit_for(rc);
	}
	int exit_code = check_cluster(dir, ig_ledger_cluster(*out), cluster);
	if (exit_code != CLI_EXIT_OK) {
		ig_ledger_close(*out);
		*out = NULL;
	}
	return exit_code;
}

/* Applies a record this writer just appended, so the answer reads the state
 * after it, as the broker's does. body is the appended body (the ledger's
 * copy is gone once ig_ledger_append returns). */
static int apply_appended(ig_state *st, const ig_record *appended, uint16_t type, const uint8_t *body,
                          size_t body_len)
{
	ig_record rec = *appended;
	rec.type = type;
	rec.body = body;
	rec.body_len = (uint32_t)body_len;
	ig_error err = { 0 };
	if (ig_state_apply(st, &rec, &err) != IG_OK) {
		cli_error("ledger record %" PRIu64 " was written, but the cluster state refuses it: %s; run "
		          "'iotguard verify' on the ledger", rec.index, err.msg);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* enroll/revoke/credit: the offline changes, admitted against the state the
 * whole ledger builds (identities, join codes, coins). */
static int offline_change(const char *dir, const char *cluster, const ig_admin_cmd *cmd, ig_state *st,
                          cJSON **resp)
{
	ig_ledger_open_opts opts = { .writer = true, .on_record = ig_state_on_record, .ctx = st };
	ig_ledger *l;
	int exit_code = open_writer(dir, cluster, &opts, true, &l);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;

	ig_admin_refusal why;
	if (!ig_admin_admit(&why, st, cmd)) {
		*resp = response_refused(cmd, &why);
		goto out;
	}
	if (cmd->kind == IG_ADMIN_ENROLL) {
		same_key_state sk = { .pk = cmd->pk, .id = cmd->id };
		ig_state_identity_foreach(st, warn_same_key, &sk);
	}
	char by[IG_BY_MAX + 1];
	offline_by(by, sizeof by);
	uint8_t body[1024];
	uint16_t type;
	int body_len = ig_admin_record(body, sizeof body, &type, cmd, by);
	if (body_len < 0) {
		cli_error("cannot encode the %s record (error %d)", cmd->command, body_len);
		exit_code = CLI_EXIT_ERR;
		goto out;
	}
	ig_error err = { 0 };
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	if (ig_ledger_append(l, type, body, (size_t)body_len, &rec, &err) != IG_OK) {
		cli_error("%s", err.msg);
		exit_code = CLI_EXIT_ERR;
		goto out;
	}
	/* What the revoke record's state rule (lib/bank/coins.c) cancels: the same
	 * figures the broker reports, read before the rule runs. */
	ig_coins *coins = ig_state_coins(st);
	uint64_t cancelled_credit = ig_coins_balance(coins, cmd->id);
	uint64_t cancelled_coins = ig_coins_outstanding(coins, cmd->id);
	exit_code = apply_appended(st, &rec, type, body, (size_t)body_len);
	if (exit_code != CLI_EXIT_OK)
		goto out;
	*resp = cli_response_new(cmd, true);
	if (*resp) {
		cJSON_AddNumberToObject(*resp, "index", (double)rec.index);
		cJSON_AddStringToObject(*resp, "id", cmd->id);
		if (cmd->kind == IG_ADMIN_CREDIT)
			cJSON_AddNumberToObject(*resp, "balance", (double)ig_coins_balance(coins, cmd->id));
		if (cmd->kind == IG_ADMIN_REVOKE) {
			cJSON_AddNumberToObject(*resp, "cancelled_credit", (double)cancelled_credit);
			cJSON_AddNumberToObject(*resp, "cancelled_coins", (double)cancelled_coins);
		}
	}
out:
	ig_ledger_close(l);
	if (exit_code == CLI_EXIT_OK && !*resp) {
		cli_error("out of memory");
		exit_code = CLI_EXIT_ERR;
	}
	return exit_code;
}

/* join-code: the codes derive from the cluster-head key, which only a
 * writer holds, so this needs the ledger unlocked like enroll. */
static int offline_join_codes(const char *dir, const char *cluster, const ig_admin_cmd *cmd, ig_state *st,
                              cJSON **resp)
{
	ig_ledger_open_opts opts = { .writer = true, .on_record = ig_state_on_record, .ctx = st };
	ig_ledger *l;
	int exit_code = open_writer(dir, cluster, &opts, false, &l);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, st, cmd)) {
		ig_ledger_close(l);
		*resp = response_refused(cmd, &why);
		if (!*resp) {
			cli_error("out of memory");
			return CLI_EXIT_ERR;
		}
		return CLI_EXIT_OK;
	}

	ig_error err = { 0 };
	ig_join_key jk;
	ig_join_key_derive(&jk, ig_ledger_ch_sk(l));
	uint64_t expires = (uint64_t)time(NULL) + cmd->ttl;
	cJSON *codes = cJSON_CreateArray();
	char by[IG_BY_MAX + 1];
	offline_by(by, sizeof by);
	for (uint32_t i = 0; exit_code == CLI_EXIT_OK && i < cmd->count; i++) {
		ig_join_code_rec r = { .role = cmd->role, .expires_at = expires };
		char text[IG_JOIN_CODE_TEXT_LEN + 1];
		ig_join_code_new(&jk, r.code_id, r.hash, text);
		snprintf(r.by, sizeof r.by, "%s", by);
		uint8_t body[256];
		ig_record rec;
		memset(&rec, 0, sizeof rec);
		int n = ig_record_join_code_encode(body, sizeof body, &r);
		if (n < 0 || ig_ledger_append(l, IG_REC_JOIN_CODE, body, (size_t)n, &rec, &err) != IG_OK) {
			cli_error("cannot record join code %u: %s", i + 1, n < 0 ? "encoding failed" : err.msg);
			exit_code = CLI_EXIT_ERR;
		} else {
			exit_code = apply_appended(st, &rec, IG_REC_JOIN_CODE, body, (size_t)n);
			if (exit_code == CLI_EXIT_OK)
				cJSON_AddItemToArray(codes, cJSON_CreateString(text));
		}
		sodium_memzero(text, sizeof text);
	}
	sodium_memzero(&jk, sizeof jk);
	ig_ledger_close(l);
	if (exit_code != CLI_EXIT_OK) {
		cJSON_Delete(codes);
		return exit_code;
	}
	*resp = cli_response_new(cmd, true);
	if (!*resp) {
		cJSON_Delete(codes);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	cJSON_AddStringToObject(*resp, "role", ig_role_name(cmd->role));
	cJSON_AddNumberToObject(*resp, "expires_at", (double)expires);
	cJSON_AddItemToObject(*resp, "codes", codes);
	return CLI_EXIT_OK;
}

/* list/get: read through the verifier, so no lock is needed. Offline
 * nobody knows who is connected, so the views carry no "connected". */
static int offline_read(const char *dir, const char *cluster, const ig_admin_cmd *cmd, ig_state *st,
                        cJSON **resp)
{
	ig_verify_result res;
	memset(&res, 0, sizeof res);
	ig_error err = { 0 };
	progress_state ps = progress_start();
	int rc = ig_ledger_verify(dir, ig_state_on_record, st, progress_report, &ps, &res, &err);
	progress_end(&ps);
	if (rc != IG_OK) {
		cli_error("%s", err.msg[0] ? err.msg : "cannot read the ledger");
		return cli_exit_for(rc);
	}
	int exit_code = check_cluster(dir, res.cluster, cluster);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;

	ig_admin_refusal why;
	if (!ig_admin_admit(&why, st, cmd)) {
		*resp = response_refused(cmd, &why);
	} else {
		*resp = cli_response_new(cmd, true);
		if (*resp && ig_admin_read(*resp, st, cmd, NULL, NULL) != IG_OK) {
			cJSON_Delete(*resp);
			*resp = NULL;
		}
	}
	if (!*resp) {
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

int cli_offline_run(const char *ledger_dir, const char *cluster, const ig_admin_cmd *cmd,
                    cJSON **resp)
{
	*resp = NULL;
	ig_state *st = ig_state_new();
	if (!st) {
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	int rc;
	if (cmd->kind == IG_ADMIN_JOIN_CODES)
		rc = offline_join_codes(ledger_dir, cluster, cmd, st, resp);
	else if (cmd->kind == IG_ADMIN_ENROLL || cmd->kind == IG_ADMIN_REVOKE || cmd->kind == IG_ADMIN_CREDIT)
		rc = offline_change(ledger_dir, cluster, cmd, st, resp);
	else
		rc = offline_read(ledger_dir, cluster, cmd, st, resp);
	ig_state_free(st);
	return rc;
}

/* ---- upgrade ------------------------------------------------------------- */

static int upgrade_help(void)
{
	printf("Usage: iotguard upgrade --ledger DIR\n\n"
	       "Moves a format-1 ledger (BLAKE2b Merkle tree) to format 2 (the RFC 6962\n"
	       "SHA-256 tree of the C2SP tlog specifications), in place and append-only:\n"
	       "it checks the whole ledger as the broker does on start, appends one\n"
	       "'format' record, and from then on every checkpoint commits to format 2's\n"
	       "tree over every record, the old ones included. Checkpoints signed before\n"
	       "keep verifying. Stop the broker first: the command takes the ledger's\n"
	       "writer lock. A ledger with a record over 65535 bytes cannot move.\n"
	       "docs/LEDGER.md section 7.12 has the details.\n\n"
	       "  --ledger DIR   the ledger directory\n"
	       "  --help         show this help\n");
	return CLI_EXIT_OK;
}

int cmd_upgrade(int argc, char **argv)
{
	const char *dir = NULL;
	const cli_option opts[] = {
		CLI_REQUIRED("ledger", 'l', &dir, "DIR"),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? upgrade_help() : rc;

	/* Opening replays every record into the cluster state, so a ledger the
	 * broker would refuse to start on is refused before anything is
	 * written. */
	ig_state *st = ig_state_new();
	if (!st) {
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	ig_ledger_open_opts oo = { .writer = true, .on_record = ig_state_on_record, .ctx = st };
	ig_ledger *l;
	int exit_code = open_writer(dir, NULL, &oo, false, &l);
	if (exit_code != CLI_EXIT_OK) {
		ig_state_free(st);
		return exit_code;
	}
	char by[IG_BY_MAX + 1];
	offline_by(by, sizeof by);
	ig_record rec;
	ig_error err = { 0 };
	rc = ig_ledger_upgrade(l, by, &rec, &err);
	ig_ledger_close(l);
	ig_state_free(st);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		return cli_exit_for(rc);
	}
	ig_verify_result res;
	memset(&res, 0, sizeof res);
	rc = ig_ledger_verify(dir, NULL, NULL, NULL, NULL, &res, &err);
	if (rc != IG_OK) {
		cli_error("the upgraded ledger fails verification: %s", err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	char root[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(root, res.root, IG_HASH_BYTES);
	printf("ledger upgraded: cluster %s, format %u from record %" PRIu64 ", checkpoint size %" PRIu64
	       ", root %s\n",
	       res.cluster, res.format, res.format_index, res.checkpoint_size, root);
	return CLI_EXIT_OK;
}
