/*
 * test_pg.c: the SQL side of the shared ledger (lib/ledger/pg.c) against a
 * real PostgreSQL server.
 *
 * Why this exists: what matters here is what only a real server shows: the
 * schema is accepted, frames come back byte for byte, the head row lock
 * serialises appenders, a notification arrives at COMMIT and not before, a
 * broken connection is reported as unavailable, and a row changed behind
 * iotguard's back is caught naming its index. One server per binary
 * (pg_fixture.h), one database per test.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ig_ledger.h"
#include "ig_pg.h"
#include "ig_record.h"
#include "pg_fixture.h"
#include "testutil.h"

/* ---- helpers ---- */

typedef struct file_ledger {
	char dir[256];
	uint8_t *log;
	size_t log_len;
	char *cp;
	size_t cp_len;
} file_ledger;

static void fl_read(file_ledger *fl)
{
	char path[512];
	free(fl->log);
	free(fl->cp);
	snprintf(path, sizeof path, "%s/" IG_LEDGER_LOG, fl->dir);
	fl->log = (uint8_t *)tu_read_file(path, &fl->log_len);
	snprintf(path, sizeof path, "%s/" IG_LEDGER_CHECKPOINT, fl->dir);
	fl->cp = tu_read_file(path, &fl->cp_len);
}

static void fl_append(file_ledger *fl, unsigned from, unsigned n, bool revoke_last)
{
	ig_error err = {0};
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, fl->dir, &opts, &err), IG_OK, "open: %s", err.msg);
	for (unsigned i = from; i < from + n; i++) {
		uint8_t body[512];
		char id[32];
		snprintf(id, sizeof id, "dev%u", i);
		size_t len = tu_device_enroll_body(body, sizeof body, id);
		cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_OK, "%s", err.msg);
	}
	if (revoke_last) {
		uint8_t body[512];
		char id[32];
		snprintf(id, sizeof id, "dev%u", from + n - 1);
		size_t len = tu_revoke_body(body, sizeof body, id, "offline:test");
		cr_assert_eq(ig_ledger_append(l, IG_REC_REVOKE, body, len, NULL, &err), IG_OK, "%s", err.msg);
	}
	ig_ledger_close(l);
	fl_read(fl);
}

/* A file ledger of genesis + n enrolls (+ a revoke), read into memory. */
static void fl_make(file_ledger *fl, unsigned format, unsigned n)
{
	memset(fl, 0, sizeof *fl);
	tu_tempdir(fl->dir, sizeof fl->dir, "pg", 1);
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init_format(fl->dir, "pgtest", format, pk, &err), IG_OK, "%s", err.msg);
	if (n)
		fl_append(fl, 0, n, true);
	else
		fl_read(fl);
}

static void fl_free(file_ledger *fl)
{
	free(fl->log);
	free(fl->cp);
}

/* A copy of fl as it is now, to compare with after fl moves on. */
static void fl_copy(file_ledger *dst, const file_ledger *src)
{
	*dst = *src;
	dst->log = malloc(src->log_len);
	cr_assert_not_null(dst->log);
	memcpy(dst->log, src->log, src->log_len);
	dst->cp = strdup(src->cp);
	cr_assert_not_null(dst->cp);
}

static ig_pg *connect_ok(const char *dsn)
{
	ig_pg *pg = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_pg_connect(&pg, dsn, &err), IG_OK, "%s", err.msg);
	cr_assert(ig_pg_ok(pg));
	return pg;
}

static void import_ok(ig_pg *pg, const file_ledger *fl)
{
	ig_error err = {0};
	cr_assert_eq(ig_pg_import(pg, fl->log, fl->log_len, fl->cp, fl->cp_len, "cli:test", &err), IG_OK, "%s",
	             err.msg);
}

/* A fresh database named after tag (its DSN in dsn[512]) holding a file
 * ledger of format with n enrolls (+ a revoke), made in fl; returns a
 * connection to it. */
static ig_pg *db_with_ledger(char *dsn, const char *tag, file_ledger *fl, unsigned format, unsigned n)
{
	pgfx_fresh_db(dsn, 512, tag);
	fl_make(fl, format, n);
	ig_pg *pg = connect_ok(dsn);
	import_ok(pg, fl);
	return pg;
}

/* The administrator ends every iotguard session of dsn's database. */
static void kill_sessions(const char *dsn)
{
	pgfx_sql(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'iotguard' "
	              "AND datname = current_database()");
}

/* Exports and checks the bytes equal the file ledger's, then runs the
 * file verifier over them. */
static void export_equals(ig_pg *pg, const file_ledger *fl)
{
	uint8_t *log = NULL;
	size_t len = 0;
	ig_pg_head h;
	ig_error err = {0};
	cr_assert_eq(ig_pg_export(pg, &log, &len, &h, NULL, NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(len, fl->log_len);
	cr_assert_eq(memcmp(log, fl->log, len), 0, "exported log differs from the file ledger's");
	cr_assert_eq(h.cp_len, fl->cp_len);
	cr_assert_eq(memcmp(h.checkpoint, fl->cp, fl->cp_len), 0);
	ig_verify_result res;
	cr_assert_eq(ig_ledger_scan_buffer(log, len, h.checkpoint, h.cp_len, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, h.height);
	free(log);
}

static int export_rc(ig_pg *pg, ig_error *err)
{
	uint8_t *log = NULL;
	size_t len = 0;
	ig_pg_head h;
	int rc = ig_pg_export(pg, &log, &len, &h, NULL, NULL, err);
	free(log);
	return rc;
}

/* ---- connecting ---- */

Test(pg, unreachable_dsn_says_so_without_password)
{
	int port = pgfx_free_port();
	char dsn[256];
	snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=x user=u password=s3cr3tpw connect_timeout=2", port);
	ig_pg *pg = (ig_pg *)0x1;
	ig_error err = {0};
	cr_assert_eq(ig_pg_connect(&pg, dsn, &err), IG_ERR_UNAVAILABLE);
	cr_assert_null(pg);
	cr_assert_not_null(strstr(err.msg, "PostgreSQL at "), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "password=***"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "cannot be reached"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, ".pgpass"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "s3cr3tpw"), "the password leaked: %s", err.msg);

	/* The URI form too. */
	snprintf(dsn, sizeof dsn, "postgresql://u:s3cr3tpw@127.0.0.1:%d/x?connect_timeout=2", port);
	cr_assert_eq(ig_pg_connect(&pg, dsn, &err), IG_ERR_UNAVAILABLE);
	cr_assert_null(strstr(err.msg, "s3cr3tpw"), "the password leaked: %s", err.msg);
	cr_assert_not_null(strstr(err.msg, "password=***"), "%s", err.msg);

	cr_assert_eq(ig_pg_connect(&pg, "host=127.0.0.1 bogus_keyword=1", &err), IG_ERR_INVAL);
	cr_assert_not_null(strstr(err.msg, "bogus_keyword"), "%s", err.msg);
}

Test(pg, display_masks_password)
{
	char dsn[512];
	pgfx_fresh_db(dsn, sizeof dsn, "disp");
	char with_pw[600];
	/* trust auth: the password is ignored by the server, kept by libpq */
	snprintf(with_pw, sizeof with_pw, "%s password=hunter2", dsn);
	ig_pg *pg = connect_ok(with_pw);
	const char *d = ig_pg_dsn_display(pg);
	cr_assert_null(strstr(d, "hunter2"), "%s", d);
	cr_assert_not_null(strstr(d, "password=***"), "%s", d);
	cr_assert_not_null(strstr(d, "host=127.0.0.1"), "%s", d);
	ig_pg_close(pg);
}

/* ---- schema and head ---- */

Test(pg, schema_create_is_idempotent_and_empty_is_notfound)
{
	char dsn[512];
	pgfx_fresh_db(dsn, sizeof dsn, "schema");
	ig_pg *pg = connect_ok(dsn);
	ig_error err = {0};
	ig_pg_head h;
	/* No schema at all: no ledger, and the message says what to run. */
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_ERR_NOTFOUND, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "iotguard init --dsn"), "%s", err.msg);
	cr_assert(ig_pg_ok(pg), "a missing table must not break the connection");
	cr_assert_eq(ig_pg_create_schema(pg, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_pg_create_schema(pg, &err), IG_OK, "%s", err.msg);
	/* Tables, no rows: still no ledger. */
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_ERR_NOTFOUND, "%s", err.msg);
	cr_assert_eq(ig_pg_begin_append(pg, &h, &err), IG_ERR_NOTFOUND, "%s", err.msg);
	/* and the failed begin left no transaction open */
	cr_assert_eq(ig_pg_create_schema(pg, &err), IG_OK, "%s", err.msg);
	ig_pg_close(pg);
}

/* ---- whole ledgers ---- */

typedef struct rows_seen {
	uint64_t next;
	unsigned n;
} rows_seen;

static int rows_cb(void *ctx, const ig_pg_row *row, ig_error *e)
{
	rows_seen *s = ctx;
	cr_assert_eq(row->idx, s->next);
	cr_assert_eq(row->type, IG_REC_ENROLL);
	cr_assert_str_eq(row->broker, "cli:test");
	cr_assert_eq(ig_pg_row_check(row, e), IG_OK);
	s->next++;
	s->n++;
	return IG_OK;
}

static void round_trip(unsigned format)
{
	char dsn[512];
	file_ledger fl;
	ig_pg *pg = db_with_ledger(dsn, format == 1 ? "rt1" : "rt2", &fl, format, 40);
	ig_pg_head h;
	ig_error err = {0};
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(h.height, 42);
	cr_assert_eq(h.format, format);
	cr_assert_str_eq(h.cluster, "pgtest");
	cr_assert_str_eq(h.broker, "cli:test");
	cr_assert(h.updated_us > 1600000000000000ull, "updated %llu", (unsigned long long)h.updated_us);
	export_equals(pg, &fl);
	/* A second import is refused, naming the cluster already there. */
	cr_assert_eq(ig_pg_import(pg, fl.log, fl.log_len, fl.cp, fl.cp_len, "cli:test", &err), IG_ERR_EXISTS);
	cr_assert_not_null(strstr(err.msg, "already holds ledger of cluster pgtest"), "%s", err.msg);
	/* ig_pg_rows: a range, in order, with the columns */
	rows_seen seen = {5, 0};
	cr_assert_eq(ig_pg_rows(pg, 5, 10, rows_cb, &seen, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(seen.n, 5);
	ig_pg_close(pg);
	fl_free(&fl);
}

Test(pg, import_export_round_trip_format2) { round_trip(IG_FORMAT_V2); }
Test(pg, import_export_round_trip_format1) { round_trip(IG_FORMAT_V1); }

Test(pg, import_refuses_a_checkpoint_that_does_not_cover_the_log)
{
	char dsn[512];
	pgfx_fresh_db(dsn, sizeof dsn, "badcp");
	file_ledger fl, other;
	fl_make(&fl, IG_FORMAT_V2, 3);
	fl_make(&other, IG_FORMAT_V2, 0);
	ig_pg *pg = connect_ok(dsn);
	ig_error err = {0};
	/* other's checkpoint: signed by another key */
	cr_assert_eq(ig_pg_import(pg, fl.log, fl.log_len, other.cp, other.cp_len, "cli:test", &err), IG_ERR_CRYPTO,
	             "%d %s", err.code, err.msg);
	/* the log cut after record 2 with the checkpoint of 5 */
	ig_record r0, r1, r2;
	cr_assert_eq(ig_record_decode(fl.log, fl.log_len, &r0), IG_FRAME_OK);
	cr_assert_eq(ig_record_decode(fl.log + r0.frame_len, fl.log_len - r0.frame_len, &r1), IG_FRAME_OK);
	size_t cut = r0.frame_len + r1.frame_len;
	cr_assert_eq(ig_record_decode(fl.log + cut, fl.log_len - cut, &r2), IG_FRAME_OK);
	cut += r2.frame_len;
	cr_assert_eq(ig_pg_import(pg, fl.log, cut, fl.cp, fl.cp_len, "cli:test", &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "covers 5 records but there are 3"), "%s", err.msg);
	/* Nothing was stored. */
	ig_pg_head h;
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_ERR_NOTFOUND, "%s", err.msg);
	import_ok(pg, &fl);
	ig_pg_close(pg);
	fl_free(&fl);
	fl_free(&other);
}

/* ---- tampering ---- */

static void tamper_case(const char *tag, const char *sql, const char *expect)
{
	char dsn[512];
	file_ledger fl;
	ig_pg *pg = db_with_ledger(dsn, tag, &fl, IG_FORMAT_V2, 8);
	pgfx_sql(dsn, sql);
	ig_error err = {0};
	cr_assert_eq(export_rc(pg, &err), IG_ERR_CORRUPT, "%s: %d %s", sql, err.code, err.msg);
	cr_assert_not_null(strstr(err.msg, expect), "%s: expected '%s' in: %s", sql, expect, err.msg);
	cr_assert(ig_pg_ok(pg));
	ig_pg_close(pg);
	fl_free(&fl);
}

Test(pg, tampered_type_column_names_the_record)
{
	tamper_case("ttype", "UPDATE iotguard.records SET type = 3 WHERE idx = 4", "ledger record 4: column type");
}

Test(pg, tampered_frame_names_the_record)
{
	/* one body byte of record 5 flipped: the CRC no longer matches */
	tamper_case("tframe",
	            "UPDATE iotguard.records SET frame = set_byte(frame, 70, get_byte(frame, 70) # 1) WHERE idx = 5",
	            "ledger record 5:");
}

Test(pg, tampered_hash_column_names_the_record)
{
	tamper_case("thash", "UPDATE iotguard.records SET hash = sha256(hash) WHERE idx = 6",
	            "ledger record 6: column hash");
}

Test(pg, deleted_row_names_the_record)
{
	tamper_case("tdel", "DELETE FROM iotguard.records WHERE idx = 3", "ledger record 3: missing");
}

Test(pg, swapped_rows_name_the_record)
{
	/* rows 2 and 3 exchange frames: the idx column no longer matches */
	tamper_case("tswap",
	            "UPDATE iotguard.records r SET frame = o.frame FROM iotguard.records o "
	            "WHERE (r.idx = 2 AND o.idx = 3) OR (r.idx = 3 AND o.idx = 2)",
	            "ledger record 2: column idx says 2 but the frame says index 3");
}

Test(pg, extra_row_past_the_head_is_caught)
{
	tamper_case("textra",
	            "INSERT INTO iotguard.records (idx, type, hash, frame, broker) SELECT 10, type, sha256(hash), frame, "
	            "broker FROM iotguard.records WHERE idx = 9",
	            "ledger record 10: stored in iotguard.records past the head");
}

Test(pg, tampered_meta_key_is_caught)
{
	tamper_case("tmeta", "UPDATE iotguard.meta SET ch_pk = sha256(ch_pk)", "meta.ch_pk differs");
}

Test(pg, tampered_head_row_is_caught)
{
	tamper_case("thead", "UPDATE iotguard.head SET head = sha256(head)", "iotguard.head.head is not the hash of record 9");
	/* a lowered head leaves rows no checkpoint covers */
	tamper_case("theight", "UPDATE iotguard.head SET height = 9",
	            "ledger record 9: stored in iotguard.records past the head");
}

/* ---- the append transaction, the lock and the notification ---- */

/* Splits the frames after byte off of fl's log into arrays for ig_pg_insert. */
typedef struct batch {
	size_t n;
	uint64_t idx[64];
	uint16_t type[64];
	uint8_t hash[64][IG_HASH_BYTES];
	const uint8_t *frame[64];
	size_t len[64];
	uint8_t head[IG_HASH_BYTES];
} batch;

static void batch_from(batch *b, const file_ledger *fl, size_t off);

/* Moves the file ledger fl on by n enrolls (dev<from>...) and puts the new
 * frames in b, to append them to PostgreSQL. */
static void fl_grow(file_ledger *fl, unsigned from, unsigned n, batch *b)
{
	size_t old_len = fl->log_len;
	fl_append(fl, from, n, false);
	batch_from(b, fl, old_len);
	cr_assert_eq(b->n, n);
}

static void insert_ok(ig_pg *pg, const batch *b)
{
	ig_error err = {0};
	cr_assert_eq(ig_pg_insert(pg, b->n, b->idx, b->type, (const uint8_t(*)[IG_HASH_BYTES])b->hash, b->frame, b->len,
	                          "broker-1", &err),
	             IG_OK, "%s", err.msg);
}

/* Moves the head to b's last record, with fl's checkpoint (of that size). */
static void set_head_ok(ig_pg *pg, uint64_t height, const batch *b, const file_ledger *fl)
{
	ig_error err = {0};
	cr_assert_eq(ig_pg_set_head(pg, height, b->head, IG_FORMAT_V2, fl->cp, fl->cp_len, "broker-1", &err), IG_OK,
	             "%s", err.msg);
}

static void batch_from(batch *b, const file_ledger *fl, size_t off)
{
	memset(b, 0, sizeof *b);
	while (off < fl->log_len) {
		ig_record rec;
		cr_assert_eq(ig_record_decode(fl->log + off, fl->log_len - off, &rec), IG_FRAME_OK);
		cr_assert_lt(b->n, 64);
		b->idx[b->n] = rec.index;
		b->type[b->n] = rec.type;
		memcpy(b->hash[b->n], rec.hash, IG_HASH_BYTES);
		b->frame[b->n] = fl->log + off;
		b->len[b->n] = rec.frame_len;
		memcpy(b->head, rec.hash, IG_HASH_BYTES);
		b->n++;
		off += rec.frame_len;
	}
}

typedef struct waiter {
	const char *dsn;
	atomic_int locked;
	uint64_t height_seen;
} waiter;

static void *second_appender(void *arg)
{
	waiter *w = arg;
	ig_pg *pg = connect_ok(w->dsn);
	ig_pg_head h;
	ig_error err = {0};
	int rc = ig_pg_begin_append(pg, &h, &err);
	atomic_store(&w->locked, rc == IG_OK ? 1 : -1);
	w->height_seen = h.height;
	ig_pg_rollback(pg);
	ig_pg_close(pg);
	return NULL;
}

Test(pg, append_transaction_locks_notifies_at_commit)
{
	char dsn[512];
	file_ledger fl;
	ig_pg *pg = db_with_ledger(dsn, "append", &fl, IG_FORMAT_V2, 3);
	batch b;
	fl_grow(&fl, 3, 4, &b); /* the file ledger moves on by 4; we append those to PG */
	cr_assert_eq(b.idx[0], 5);

	ig_pg *follower = connect_ok(dsn);
	ig_error err = {0};
	cr_assert_eq(ig_pg_listen(follower, &err), IG_OK, "%s", err.msg);
	cr_assert_geq(ig_pg_socket(follower), 0);
	cr_assert_eq(ig_pg_notifications(follower, &err), 0);

	ig_pg_head h;
	cr_assert_eq(ig_pg_begin_append(pg, &h, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(h.height, 5);
	/* Another appender waits on the head row until we commit. */
	waiter w = {.dsn = dsn};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, second_appender, &w), 0);
	insert_ok(pg, &b);
	set_head_ok(pg, 9, &b, &fl);
	usleep(300 * 1000);
	cr_assert_eq(atomic_load(&w.locked), 0, "the second appender got the head row while we held it");
	/* Nothing is delivered before COMMIT. */
	struct pollfd pfd = {.fd = ig_pg_socket(follower), .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 200), 0, "a notification arrived before COMMIT");
	cr_assert_eq(ig_pg_notifications(follower, &err), 0);
	cr_assert_eq(ig_pg_commit(pg, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "no notification within 5 s of COMMIT");
	int got = 0;
	for (int i = 0; i < 50 && got == 0; i++) {
		got = ig_pg_notifications(follower, &err);
		if (got == 0)
			usleep(10000);
	}
	cr_assert_eq(got, 1, "notifications: %d %s", got, err.msg);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(atomic_load(&w.locked), 1);
	cr_assert_eq(w.height_seen, 9, "the second appender must see the committed head");

	ig_pg_head h2;
	cr_assert_eq(ig_pg_head_get(follower, &h2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(h2.height, 9);
	cr_assert_str_eq(h2.broker, "broker-1");
	cr_assert_eq(memcmp(h2.head, b.head, IG_HASH_BYTES), 0);
	export_equals(follower, &fl);
	ig_pg_close(follower);
	ig_pg_close(pg);
	fl_free(&fl);
}

/* A database holding fl (n enrolls + a revoke) and before, a copy of it;
 * fl then moves on by `grow` records (b), and pg's open append transaction
 * has inserted them. */
static ig_pg *open_append(char *dsn, const char *tag, file_ledger *fl, file_ledger *before, unsigned n,
                          unsigned grow, batch *b)
{
	ig_pg *pg = db_with_ledger(dsn, tag, fl, IG_FORMAT_V2, n);
	fl_copy(before, fl);
	fl_grow(fl, n, grow, b);
	ig_error err = {0};
	ig_pg_head h;
	cr_assert_eq(ig_pg_begin_append(pg, &h, &err), IG_OK, "%s", err.msg);
	insert_ok(pg, b);
	return pg;
}

Test(pg, rolled_back_append_leaves_nothing_and_duplicate_is_conflict)
{
	char dsn[512];
	file_ledger fl, before;
	batch b;
	ig_pg *pg = open_append(dsn, "rollback", &fl, &before, 2, 2, &b);
	ig_pg_rollback(pg);
	export_equals(pg, &before);

	/* An index already stored: the insert fails as a conflict, and the
	 * transaction cannot commit. */
	batch old;
	batch_from(&old, &fl, 0);
	ig_error err = {0};
	ig_pg_head h;
	cr_assert_eq(ig_pg_begin_append(pg, &h, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_pg_insert(pg, 1, &old.idx[1], &old.type[1], (const uint8_t(*)[IG_HASH_BYTES])&old.hash[1],
	                          &old.frame[1], &old.len[1], "broker-1", &err),
	             IG_ERR_CONFLICT, "%d %s", err.code, err.msg);
	cr_assert_neq(ig_pg_commit(pg, &err), IG_OK);
	cr_assert(ig_pg_ok(pg));
	export_equals(pg, &before);
	/* and the connection is usable again */
	cr_assert_eq(ig_pg_begin_append(pg, &h, &err), IG_OK, "%s", err.msg);
	insert_ok(pg, &b);
	set_head_ok(pg, 6, &b, &fl);
	cr_assert_eq(ig_pg_commit(pg, &err), IG_OK, "%s", err.msg);
	export_equals(pg, &fl);
	ig_pg_close(pg);
	fl_free(&fl);
	fl_free(&before);
}

Test(pg, killed_connection_is_unavailable)
{
	char dsn[512];
	file_ledger fl;
	ig_pg *pg = db_with_ledger(dsn, "kill", &fl, IG_FORMAT_V2, 1);
	ig_error err = {0};
	cr_assert_eq(ig_pg_listen(pg, &err), IG_OK, "%s", err.msg);
	/* The administrator ends our session: the follower must notice. */
	kill_sessions(dsn);
	struct pollfd pfd = {.fd = ig_pg_socket(pg), .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	int rc = ig_pg_notifications(pg, &err);
	cr_assert_eq(rc, IG_ERR_UNAVAILABLE, "%d %s", rc, err.msg);
	cr_assert_not(ig_pg_ok(pg));
	cr_assert_eq(ig_pg_socket(pg), -1);
	ig_pg_head h;
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_ERR_UNAVAILABLE);
	cr_assert_not_null(strstr(err.msg, "connect again"), "%s", err.msg);
	ig_pg_close(pg);
	/* A fresh connection works. */
	pg = connect_ok(dsn);
	cr_assert_eq(ig_pg_head_get(pg, &h, &err), IG_OK, "%s", err.msg);
	ig_pg_close(pg);
	fl_free(&fl);
}

Test(pg, connection_lost_before_commit_is_unknown_and_nothing_is_stored)
{
	char dsn[512];
	file_ledger fl, before;
	batch b;
	ig_pg *pg = open_append(dsn, "lostcommit", &fl, &before, 1, 2, &b);
	set_head_ok(pg, 5, &b, &fl);
	kill_sessions(dsn);
	usleep(100 * 1000);
	/* From the client's side, a COMMIT without an answer may or may not
	 * have happened: the caller must look. */
	ig_error err = {0};
	int rc = ig_pg_commit(pg, &err);
	cr_assert_eq(rc, IG_ERR_UNKNOWN, "%d %s", rc, err.msg);
	cr_assert_not_null(strstr(err.msg, "may or may not"), "%s", err.msg);
	cr_assert_not(ig_pg_ok(pg));
	ig_pg_close(pg);
	/* Here it did not: the server rolled the transaction back. */
	pg = connect_ok(dsn);
	export_equals(pg, &before);
	ig_pg_close(pg);
	fl_free(&fl);
	fl_free(&before);
}
