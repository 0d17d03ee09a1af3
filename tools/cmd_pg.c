/*
 * cmd_pg.c: the admin tool's side of the shared ledger in PostgreSQL
 * (docs/LEDGER.md 16): `init --dsn`, `verify --dsn`, `show --dsn`,
 * `migrate` and `export`.
 *
 * Why this exists: an operator moving from one broker to several needs to
 * create a shared ledger, move an existing file ledger into the database
 * without losing or changing a byte, audit the database exactly as strictly
 * as a ledger directory, and get a file ledger back out (a backup, or a way
 * back to one broker). The records are byte for byte the file format's, so
 * every check here is the file verifier's own (ig_ledger_scan_buffer over
 * the exported bytes, with the same state replay and the same printing in
 * cmd_ledger.c); this file adds only what the database adds: the SQL
 * columns must agree with the frames (ig_pg_export), and meta and the head
 * row with the genesis record and the checkpoint.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ig_custody.h"
#include "ig_durable.h"
#include "ig_keyfile.h"
#include "ig_ledger.h"
#include "ig_pg.h"
#include "ig_state.h"

/* The `broker` column of rows the CLI writes: "cli:<user>", the user as the
 * system names the real uid (as offline changes' "by" does). */
static void cli_broker_name(char *out, size_t cap)
{
	uid_t uid = getuid();
	const struct passwd *pw = getpwuid(uid);
	if (pw && pw->pw_name && ig_id_valid(pw->pw_name, strlen(pw->pw_name)) && strlen(pw->pw_name) <= 48)
		snprintf(out, cap, "cli:%s", pw->pw_name);
	else
		snprintf(out, cap, "cli:uid%u", (unsigned)uid);
}

/* Directory names are checked once on entry (dir_ok), so every dir/name
 * below fits its PATH_BYTES buffer and join_path cannot fail after. */
#define PATH_BYTES 4096
#define DIR_MAX 3900

static bool dir_ok(const char *opt, const char *dir)
{
	if (strlen(dir) > DIR_MAX) {
		cli_error("%s: the path is longer than %d bytes", opt, DIR_MAX);
		return false;
	}
	return true;
}

static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		out[0] = '\0'; /* unreachable after dir_ok; an empty path fails loudly */
}

static int connect_or_say(ig_pg **pg, const char *dsn)
{
	ig_error err = { 0 };
	int rc = ig_pg_connect(pg, dsn, &err);
	if (rc != IG_OK)
		cli_error("%s", err.msg);
	return rc;
}

/* Reads a whole file (the ledger's log can be large: no size cap but memory). */
static int read_whole(const char *path, uint8_t **out, size_t *len, ig_error *err)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO, "cannot open %s: %s", path,
		                    strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int e = errno;
		close(fd);
		return ig_error_set(err, IG_ERR_IO, "cannot stat %s: %s", path, strerror(e));
	}
	size_t cap = (size_t)sb.st_size + 1;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, cap);
	}
	size_t n = 0;
	for (;;) {
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return ig_error_set(err, IG_ERR_NOMEM, "out of memory reading %s", path);
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return ig_error_set(err, IG_ERR_IO, "cannot read %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = n;
	return IG_OK;
}

/* A file ledger's two files in dir, whole: ledger.log and checkpoint. */
static int read_ledger_files(const char *dir, uint8_t **log, size_t *log_len, uint8_t **cp, size_t *cp_len,
                             ig_error *err)
{
	char path[PATH_BYTES];
	join_path(path, sizeof path, dir, IG_LEDGER_LOG);
	int rc = read_whole(path, log, log_len, err);
	if (rc != IG_OK)
		return rc;
	join_path(path, sizeof path, dir, IG_LEDGER_CHECKPOINT);
	rc = read_whole(path, cp, cp_len, err);
	if (rc != IG_OK) {
		free(*log);
		*log = NULL;
	}
	return rc;
}

/* Checks that keydir's ch.key is the shared ledger's cluster-head key, so
 * brokers given that directory can append. A sealed key (custody) has no
 * ch.key to compare: said, not failed. */
static int check_keydir(const char *keydir, const ig_pg_head *h, ig_error *err)
{
	char path[PATH_BYTES];
	join_path(path, sizeof path, keydir, IG_LEDGER_KEY);
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	int rc = ig_keyfile_read(path, sk, pk, err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK) {
		char sealed[PATH_BYTES];
		join_path(sealed, sizeof sealed, keydir, IG_CUSTODY_SEALED_FILE);
		if (access(path, F_OK) != 0 && access(sealed, F_OK) == 0) {
			cli_warn("%s holds only the sealed key (%s): it cannot be compared with the ledger's key here",
			         keydir, IG_CUSTODY_SEALED_FILE);
			return IG_OK;
		}
		return ig_error_prefix(err, "the key directory: ");
	}
	if (sodium_memcmp(pk, h->ch_pk, IG_PK_BYTES) != 0)
		return ig_error_set(err, IG_ERR_STATE,
		                    "%s is not the cluster-head key of the shared ledger (cluster %s): brokers given %s "
		                    "could not append; copy ch.key from the directory of the broker that made the ledger",
		                    path, h->cluster, keydir);
	return IG_OK;
}

/* The whole shared ledger as a file ledger's bytes, its SQL columns, meta
 * and head row checked (ig_pg_export), and keydir's key (if given). */
static int pg_fetch(const char *dsn, const char *keydir, uint8_t **log, size_t *len, ig_pg_head *h, ig_error *err)
{
	ig_pg *pg = NULL;
	int rc = ig_pg_connect(&pg, dsn, err);
	if (rc != IG_OK)
		return rc;
	rc = ig_pg_export(pg, log, len, h, NULL, NULL, err);
	if (rc != IG_OK && rc != IG_ERR_NOTFOUND && rc != IG_ERR_UNAVAILABLE && !strstr(err->msg, "PostgreSQL at "))
		ig_error_prefix(err, "the shared ledger at PostgreSQL %s: ", ig_pg_dsn_display(pg));
	ig_pg_close(pg);
	if (rc == IG_OK && keydir) {
		rc = check_keydir(keydir, h, err);
		if (rc != IG_OK) {
			free(*log);
			*log = NULL;
		}
	}
	return rc;
}

int cli_ledger_read(const char *dir, const char *dsn, ig_record_fn on_record, void *ctx, ig_progress_fn progress,
                    void *progress_ctx, ig_verify_result *res, bool *checked, ig_error *err)
{
	if (!dsn) {
		*checked = true;
		return ig_ledger_verify(dir, on_record, ctx, progress, progress_ctx, res, err);
	}
	*checked = false;
	if (dir && strlen(dir) > DIR_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "--ledger: the path is longer than %d bytes", DIR_MAX);
	uint8_t *log = NULL;
	size_t len = 0;
	ig_pg_head *h = malloc(sizeof *h);
	if (!h)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	int rc = pg_fetch(dsn, dir, &log, &len, h, err);
	if (rc != IG_OK) {
		free(h);
		return rc;
	}
	*checked = true;
	ig_ledger_open_opts o = { .on_record = on_record, .ctx = ctx, .progress = progress,
	                          .progress_ctx = progress_ctx };
	rc = ig_ledger_scan_buffer(log, len, h->checkpoint, h->cp_len, &o, res, err);
	if (rc == IG_OK && (res->torn_bytes != 0 || res->height != h->height))
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "the shared ledger holds %" PRIu64 " whole records but its head row says %" PRIu64
		                  ": tampered",
		                  res->height, h->height);
	free(log);
	free(h);
	return rc;
}

int cli_ledger_check(const char *dir, const char *dsn, ig_progress_fn progress, void *progress_ctx,
                     ig_verify_result *res, bool *checked, ig_error *err)
{
	memset(res, 0, sizeof *res);
	*checked = false;
	ig_state *st = ig_state_new();
	if (!st)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	int rc = cli_ledger_read(dir, dsn, ig_state_on_record, st, progress, progress_ctx, res, checked, err);
	ig_state_free(st);
	return rc;
}

/* The same full check (state too) of a ledger's bytes in memory. */
static int scan_with_state(const uint8_t *log, size_t len, const char *cp, size_t cp_len, ig_verify_result *res,
                           ig_error *err)
{
	memset(res, 0, sizeof *res);
	ig_state *st = ig_state_new();
	if (!st)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	ig_ledger_open_opts so = { .on_record = ig_state_on_record, .ctx = st };
	int rc = ig_ledger_scan_buffer(log, len, cp, cp_len, &so, res, err);
	ig_state_free(st);
	return rc;
}

/* ---- init --dsn ---------------------------------------------------------- */

/* The key directory must not hold a key or a ledger already. */
static int keydir_prepare(const char *dir)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		cli_error("cannot create %s: %s", dir, strerror(errno));
		return CLI_EXIT_ERR;
	}
	const char *const taken[] = { IG_LEDGER_KEY, IG_CUSTODY_SEALED_FILE, IG_LEDGER_LOG };
	for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
		char path[PATH_BYTES];
		join_path(path, sizeof path, dir, taken[i]);
		if (access(path, F_OK) == 0) {
			cli_error("%s already exists; choose an empty directory for the new cluster's key", path);
			return CLI_EXIT_ERR;
		}
	}
	if (chmod(dir, 0700) != 0) {
		cli_error("cannot make %s private (chmod 0700): %s", dir, strerror(errno));
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* Removes the scratch ledger init made next to the key (ledger.log,
 * checkpoint, lock, format 2's tlog/ tiles; the key too when the import
 * failed), depth first, never following a link. */
static int scratch_unlink(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT)
		cli_warn("cannot remove %s: %s; remove it by hand", path, strerror(errno));
	return 0;
}

static void scratch_remove(const char *scratch)
{
	if (nftw(scratch, scratch_unlink, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		cli_warn("cannot remove %s: %s; remove it by hand", scratch, strerror(errno));
}

int cli_pg_init(const char *dir, const char *dsn, const char *cluster, unsigned format)
{
	if (!dir_ok("--ledger", dir))
		return CLI_EXIT_ERR;
	int exit_code = keydir_prepare(dir);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;
	ig_pg *pg = NULL;
	if (connect_or_say(&pg, dsn) != IG_OK)
		return CLI_EXIT_ERR;
	ig_error err = { 0 };
	ig_pg_head *h = malloc(sizeof *h);
	if (!h) {
		ig_pg_close(pg);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	int rc = ig_pg_head_get(pg, h, &err);
	if (rc == IG_OK) {
		cli_error("PostgreSQL at %s already holds ledger of cluster %s (height %" PRIu64 "); use another "
		          "database, or give brokers a copy of that ledger's ch.key instead",
		          ig_pg_dsn_display(pg), h->cluster, h->height);
		free(h);
		ig_pg_close(pg);
		return CLI_EXIT_ERR;
	}
	free(h);
	if (rc != IG_ERR_NOTFOUND) {
		cli_error("%s", err.msg);
		ig_pg_close(pg);
		return CLI_EXIT_ERR;
	}
	/* The genesis record and first checkpoint are made by the file
	 * ledger's own init, in a private scratch directory inside DIR (the
	 * key never leaves DIR), then imported: one code path for both. */
	char scratch[PATH_BYTES];
	join_path(scratch, sizeof scratch, dir, ".init-XXXXXX");
	if (!mkdtemp(scratch)) {
		cli_error("cannot create a scratch directory in %s: %s", dir, strerror(errno));
		ig_pg_close(pg);
		return CLI_EXIT_ERR;
	}
	uint8_t pk[IG_PK_BYTES];
	uint8_t *log = NULL, *cp = NULL;
	size_t log_len = 0, cp_len = 0;
	rc = ig_ledger_init_format(scratch, cluster, format, pk, &err);
	if (rc == IG_OK)
		rc = read_ledger_files(scratch, &log, &log_len, &cp, &cp_len, &err);
	char broker[IG_PG_BROKER_MAX + 1];
	cli_broker_name(broker, sizeof broker);
	if (rc == IG_OK)
		rc = ig_pg_import(pg, log, log_len, (const char *)cp, cp_len, broker, &err);
	free(log);
	free(cp);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		if (rc == IG_ERR_UNKNOWN)
			fprintf(stderr, "The key of the new ledger is kept in %s: run 'iotguard verify --dsn' to see "
			                "whether the ledger was stored; if it was, move %s/%s to %s/%s.\n",
			        scratch, scratch, IG_LEDGER_KEY, dir, IG_LEDGER_KEY);
		else
			scratch_remove(scratch);
		ig_pg_close(pg);
		return CLI_EXIT_ERR;
	}
	char key_from[PATH_BYTES], key_to[PATH_BYTES];
	join_path(key_from, sizeof key_from, scratch, IG_LEDGER_KEY);
	join_path(key_to, sizeof key_to, dir, IG_LEDGER_KEY);
	if (rename(key_from, key_to) != 0 || ig_durable_sync_parent(key_to, "cluster-head key", &err) != IG_OK) {
		cli_error("the ledger is stored in PostgreSQL, but moving its key %s to %s failed: %s; move it by hand",
		          key_from, key_to, err.msg[0] ? err.msg : strerror(errno));
		ig_pg_close(pg);
		return CLI_EXIT_ERR;
	}
	scratch_remove(scratch);
	fprintf(stderr,
	        "iotguard init: shared ledger of cluster %s created in PostgreSQL at %s; %s holds its key.\n"
	        "Copy %s to every broker of the cluster (mode 0600) and set, per broker:\n"
	        "  plugin_opt_ledger %s\n  plugin_opt_ledger_dsn %s\n  plugin_opt_broker_name <a name per broker>\n",
	        cluster, ig_pg_dsn_display(pg), key_to, key_to, dir, ig_pg_dsn_display(pg));
	ig_pg_close(pg);
	cli_print_pk(pk);
	return CLI_EXIT_OK;
}

/* ---- migrate --------------------------------------------------------------- */

static int migrate_help(void)
{
	printf("Usage: iotguard migrate --ledger DIR --dsn DSN\n"
	       "Moves a file ledger into PostgreSQL, for several brokers sharing one ledger\n"
	       "(docs/LEDGER.md section 16). Stop the broker first: this takes the ledger's\n"
	       "writer lock. It checks the whole ledger as the broker does on start, stores\n"
	       "every record in one transaction (into a database that holds no ledger yet),\n"
	       "reads it all back, checks it again and compares it byte for byte with\n"
	       "DIR's ledger.log and checkpoint. DIR's files are left in place; from then on\n"
	       "the brokers read only DIR/ch.key and keep the records in the database.\n\n"
	       "  --ledger DIR   the ledger directory\n"
	       "  --dsn DSN      libpq connection string, e.g. 'host=db1,db2 port=5432,5432\n"
	       "                 dbname=iotguard user=iotguard target_session_attrs=read-write';\n"
	       "                 keep the password in ~/.pgpass (or PGPASSFILE), not here\n"
	       "  --help         show this help\n");
	return CLI_EXIT_OK;
}

int cmd_migrate(int argc, char **argv)
{
	const char *dir = NULL, *dsn = NULL;
	const cli_option opts[] = {
		CLI_REQUIRED("ledger", 'l', &dir, "DIR"),
		CLI_REQUIRED("dsn", 'd', &dsn, "DSN"),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? migrate_help() : rc;
	if (!dir_ok("--ledger", dir))
		return CLI_EXIT_ERR;

	/* Hold the writer lock for the whole move: no broker may append to
	 * the files while (or after) they are copied. Opening checks every
	 * record and replays the state; a sealed ledger opens too. */
	ig_state *st = ig_state_new();
	if (!st) {
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	ig_error err = { 0 };
	ig_ledger *l = NULL;
	ig_ledger_open_opts oo = { .writer = true, .sealed_ok = true, .on_record = ig_state_on_record, .ctx = st };
	rc = ig_ledger_open(&l, dir, &oo, &err);
	ig_state_free(st);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		if (rc == IG_ERR_LOCKED)
			fprintf(stderr, "Stop the broker using %s first.\n", dir);
		return cli_exit_for(rc);
	}
	/* A checkpoint must cover every record (the head row holds one). */
	rc = ig_ledger_sync(l, &err);
	if (rc != IG_OK && rc != IG_ERR_SEALED) {
		cli_error("%s", err.msg);
		ig_ledger_close(l);
		return CLI_EXIT_ERR;
	}
	int exit_code = CLI_EXIT_ERR;
	uint8_t *log = NULL, *cp = NULL, *back = NULL;
	size_t log_len = 0, cp_len = 0, back_len = 0;
	ig_pg *pg = NULL;
	ig_pg_head *h = malloc(sizeof *h);
	if (!h) {
		cli_error("out of memory");
		goto out;
	}
	if (read_ledger_files(dir, &log, &log_len, &cp, &cp_len, &err) != IG_OK) {
		cli_error("%s", err.msg);
		goto out;
	}
	/* The very bytes to import, checked once more with the state rules. */
	ig_verify_result res;
	rc = scan_with_state(log, log_len, (const char *)cp, cp_len, &res, &err);
	if (rc != IG_OK || res.torn_bytes || res.checkpoint_size != res.height) {
		cli_error("%s: %s", dir, rc != IG_OK ? err.msg : "the checkpoint does not cover every record; open it with "
		                                              "the broker once (or iotguard verify) and try again");
		exit_code = rc == IG_ERR_NOMEM ? CLI_EXIT_ERR : CLI_EXIT_BAD_LEDGER;
		goto out;
	}
	if (connect_or_say(&pg, dsn) != IG_OK)
		goto out;
	char broker[IG_PG_BROKER_MAX + 1];
	cli_broker_name(broker, sizeof broker);
	rc = ig_pg_import(pg, log, log_len, (const char *)cp, cp_len, broker, &err);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		goto out;
	}
	/* Read back what the database holds and hold it against the files. */
	rc = ig_pg_export(pg, &back, &back_len, h, NULL, NULL, &err);
	if (rc != IG_OK) {
		cli_error("the ledger was stored, but reading it back failed: %s", err.msg);
		goto out;
	}
	ig_verify_result res2;
	rc = scan_with_state(back, back_len, h->checkpoint, h->cp_len, &res2, &err);
	if (rc != IG_OK) {
		cli_error("the ledger read back from PostgreSQL fails verification: %s", err.msg);
		exit_code = CLI_EXIT_BAD_LEDGER;
		goto out;
	}
	if (back_len != log_len || memcmp(back, log, log_len) != 0 || h->cp_len != cp_len ||
	    memcmp(h->checkpoint, cp, cp_len) != 0) {
		cli_error("the ledger read back from PostgreSQL differs from %s's files; do not use the database (drop "
		          "schema iotguard there) and report this",
		          dir);
		exit_code = CLI_EXIT_BAD_LEDGER;
		goto out;
	}
	char head[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(head, res2.head, IG_HASH_BYTES);
	printf("ledger migrated: cluster %s, height %" PRIu64 ", head %s, checkpoint size %" PRIu64 "\n",
	       res2.cluster, res2.height, head, res2.checkpoint_size);
	printf("%s/%s and %s/%s are left in place as a backup (they stop growing now); the brokers keep\n"
	       "only %s/%s there. In each broker's mosquitto.conf set:\n"
	       "  plugin_opt_ledger %s\n"
	       "  plugin_opt_ledger_dsn %s\n"
	       "  plugin_opt_broker_name <a name per broker>\n"
	       "(password in ~/.pgpass or PGPASSFILE, not in the DSN). Never start a broker on %s\n"
	       "in file mode again: export the database (iotguard export) to go back to one broker.\n",
	       dir, IG_LEDGER_LOG, dir, IG_LEDGER_CHECKPOINT, dir, IG_LEDGER_KEY, dir, ig_pg_dsn_display(pg), dir);
	exit_code = CLI_EXIT_OK;
out:
	ig_pg_close(pg);
	ig_ledger_close(l);
	free(log);
	free(cp);
	free(back);
	free(h);
	return exit_code;
}

/* ---- export ---------------------------------------------------------------- */

static int export_help(void)
{
	printf("Usage: iotguard export --dsn DSN --to DIR\n"
	       "Writes the shared ledger in PostgreSQL out as a file ledger: DIR/ledger.log\n"
	       "and DIR/checkpoint (DIR new or empty), durably, read in one consistent\n"
	       "snapshot while brokers keep appending; then checks DIR as 'iotguard verify'\n"
	       "does. Every row's SQL columns must agree with its record (exit 2 otherwise).\n"
	       "For a broker in file mode, copy ch.key into DIR as well.\n\n"
	       "  --dsn DSN      libpq connection string (password in ~/.pgpass)\n"
	       "  --to DIR       where to write the files\n"
	       "  --help         show this help\n");
	return CLI_EXIT_OK;
}

/* DIR must be absent or empty: checked before the database is read,
 * created (0700) only once there is something to write. */
static int dir_absent_or_empty(const char *dir, bool *absent)
{
	*absent = false;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*absent = true;
			return CLI_EXIT_OK;
		}
		cli_error("cannot open %s: %s", dir, strerror(errno));
		return CLI_EXIT_ERR;
	}
	struct dirent *e;
	bool empty = true;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = false;
	closedir(d);
	if (!empty) {
		cli_error("%s is not empty; export into a new or empty directory", dir);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* Writes dir/name whole and durably (fsync, then the directory's). */
static int write_new(const char *dir, const char *name, const void *data, size_t len, const char *what)
{
	char path[PATH_BYTES];
	join_path(path, sizeof path, dir, name);
	ig_error err = { 0 };
	if (ig_durable_replace(path, data, len, what, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

int cmd_export(int argc, char **argv)
{
	const char *dsn = NULL, *to = NULL;
	const cli_option opts[] = {
		CLI_REQUIRED("dsn", 'd', &dsn, "DSN"),
		CLI_REQUIRED("to", 't', &to, "DIR"),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? export_help() : rc;
	if (!dir_ok("--to", to))
		return CLI_EXIT_ERR;
	bool absent = false;
	int exit_code = dir_absent_or_empty(to, &absent);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;
	ig_error err = { 0 };
	uint8_t *log = NULL;
	size_t len = 0;
	ig_pg_head *h = malloc(sizeof *h);
	if (!h) {
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	rc = pg_fetch(dsn, NULL, &log, &len, h, &err);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		free(h);
		return cli_exit_for(rc);
	}
	if (absent && mkdir(to, 0700) != 0) {
		cli_error("cannot create %s: %s", to, strerror(errno));
		exit_code = CLI_EXIT_ERR;
	}
	if (absent && exit_code == CLI_EXIT_OK && ig_durable_sync_parent(to, "export directory", &err) != IG_OK) {
		cli_error("%s", err.msg);
		exit_code = CLI_EXIT_ERR;
	}
	if (exit_code == CLI_EXIT_OK)
		exit_code = write_new(to, IG_LEDGER_LOG, log, len, "exported ledger");
	if (exit_code == CLI_EXIT_OK)
		exit_code = write_new(to, IG_LEDGER_CHECKPOINT, h->checkpoint, h->cp_len, "exported checkpoint");
	free(log);
	free(h);
	if (exit_code != CLI_EXIT_OK)
		return exit_code;
	/* The files as any auditor will read them: the full check, state too. */
	ig_verify_result res;
	bool checked;
	rc = cli_ledger_check(to, NULL, NULL, NULL, &res, &checked, &err);
	if (rc != IG_OK) {
		cli_error("the exported ledger in %s fails verification: %s", to, err.msg);
		return rc == IG_ERR_NOMEM ? CLI_EXIT_ERR : CLI_EXIT_BAD_LEDGER;
	}
	char head[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(head, res.head, IG_HASH_BYTES);
	printf("ledger exported: cluster %s, height %" PRIu64 ", head %s, checkpoint size %" PRIu64 " -> %s\n",
	       res.cluster, res.height, head, res.checkpoint_size, to);
	return CLI_EXIT_OK;
}
