/*
 * pg.c: the ledger's records in PostgreSQL (docs/LEDGER.md 16), the SQL side.
 *
 * Why this exists: several brokers share one ledger through a database that
 * already knows how to be durable, replicated and failed over. This file is
 * the only place that speaks SQL: it keeps one libpq connection per ig_pg,
 * sends every byte string as a binary parameter (frames are opaque bytes, so
 * no escaping can ever change them), and turns libpq's failures into the
 * project's error shape: which server (the DSN with its password masked),
 * what failed, what to do. A broken connection is IG_ERR_UNAVAILABLE so the
 * callers can retry; a row whose SQL columns disagree with its frame is
 * IG_ERR_CORRUPT naming the record, because only someone writing to the
 * tables outside iotguard can cause it.
 */
#include "ig_pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_record.h"

/* Type OIDs of the parameters we send (pg_type.h; stable across versions). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25

/* Rows per SELECT when reading and per INSERT when writing: bounds memory
 * (a frame is at most 64 KiB) and keeps under the protocol's 65535
 * parameters per statement. */
#define ROWS_CHUNK 512

/* How long the server lets one of our transactions sit idle holding its
 * locks (see ig_pg_connect). */
#define IG_PG_IDLE_TX_TIMEOUT "30s"

struct ig_pg {
	PGconn *conn;
	char *display;     /* the DSN for messages, password masked */
	bool broken;       /* the connection failed; close and connect again */
};

/* ---- the DSN for messages ---------------------------------------------- */

/* Rebuilds the DSN from libpq's own parse of it (so URIs and key=value
 * strings both work) with the password replaced; never prints what libpq
 * could not parse, since the password could be anywhere in it. */
char *ig_pg_dsn_mask(const char *dsn)
{
	if (!dsn || !*dsn)
		return strdup("(libpq defaults: PGHOST, PGPORT, PGDATABASE, ...)");
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
	if (!opts) {
		if (perr)
			PQfreemem(perr);
		return strdup("(unparsable DSN)");
	}
	size_t cap = 64, len = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val)
			cap += strlen(o->keyword) + 2 * strlen(o->val) + 8;
	char *out = malloc(cap);
	if (!out) {
		PQconninfoFree(opts);
		return NULL;
	}
	out[0] = '\0';
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		bool secret = strcmp(o->keyword, "password") == 0 || (o->dispchar && o->dispchar[0] == '*');
		const char *v = secret ? "***" : o->val;
		bool quote = !*v || strpbrk(v, " \t\n\r'\\") != NULL;
		len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", len ? " " : "", o->keyword, quote ? "'" : "");
		for (const char *p = v; *p; p++) {
			if (quote && (*p == '\'' || *p == '\\'))
				out[len++] = '\\';
			out[len++] = *p;
		}
		if (quote)
			out[len++] = '\'';
		out[len] = '\0';
	}
	PQconninfoFree(opts);
	return out;
}

const char *ig_pg_dsn_display(const ig_pg *pg)
{
	return pg && pg->display ? pg->display : "(no DSN)";
}

bool ig_pg_ok(const ig_pg *pg)
{
	return pg && pg->conn && !pg->broken && PQstatus(pg->conn) == CONNECTION_OK;
}

/* ---- errors -------------------------------------------------------------- */

/* libpq's messages end in a newline and may hold several lines; one line
 * reads better inside our sentence. */
static void one_line(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; src && *src && n + 1 < cap; src++) {
		char c = (*src == '\n' || *src == '\r' || *src == '\t') ? ' ' : *src;
		if (c != ' ' || (n && dst[n - 1] != ' '))
			dst[n++] = c;
	}
	while (n && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

static bool state_is_connection(const char *st)
{
	/* 08: connection exception; 57P01..57P05: the server shuts down or
	 * is shut down; 25006: read-only transaction (we reached a standby:
	 * after a failover, connecting again finds the new primary). */
	return st && (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0 || strcmp(st, "25006") == 0);
}

/* Sets err from a failed command: the code follows what the caller can do
 * about it. res may be NULL (out of memory or connection gone). */
static int pg_fail(ig_pg *pg, ig_error *err, PGresult *res, const char *what)
{
	char msg[300];
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	one_line(msg, sizeof msg, primary ? primary : PQerrorMessage(pg->conn));
	if (!msg[0])
		snprintf(msg, sizeof msg, "no answer");
	bool conn_lost = PQstatus(pg->conn) != CONNECTION_OK || state_is_connection(st);
	if (conn_lost) {
		pg->broken = true;
		return ig_error_set(err, IG_ERR_UNAVAILABLE,
		                    "PostgreSQL at %s: %s failed: %s; the database is unreachable (or is a standby): "
		                    "nothing was written; check the server and retry",
		                    pg->display, what, msg);
	}
	if (st && (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0))
		return ig_error_set(err, IG_ERR_NOTFOUND,
		                    "PostgreSQL at %s holds no iotguard ledger (%s: %s); run iotguard init --dsn "
		                    "or iotguard migrate",
		                    pg->display, what, msg);
	if (st && strcmp(st, "23505") == 0)
		return ig_error_set(err, IG_ERR_CONFLICT,
		                    "PostgreSQL at %s: %s failed: %s; another writer stored these rows first", pg->display,
		                    what, msg);
	if (st && (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0))
		return ig_error_set(err, IG_ERR_CONFLICT,
		                    "PostgreSQL at %s: %s failed: %s; another writer got in the way; retry", pg->display,
		                    what, msg);
	if (st && strncmp(st, "42", 2) == 0 && strcmp(st, "42P01") != 0)
		return ig_error_set(err, IG_ERR_IO,
		                    "PostgreSQL at %s: %s failed: %s (SQLSTATE %s); the role in the DSN needs "
		                    "USAGE on schema iotguard and SELECT, INSERT, UPDATE on its tables",
		                    pg->display, what, msg, st);
	return ig_error_set(err, IG_ERR_IO, "PostgreSQL at %s: %s failed: %s (SQLSTATE %s); see the server's log",
	                    pg->display, what, msg, st ? st : "none");
}

/* IG_OK while the connection works; else IG_ERR_UNAVAILABLE naming what
 * the caller was about to do. */
static int conn_check(const ig_pg *pg, const char *what, ig_error *err)
{
	if (ig_pg_ok(pg))
		return IG_OK;
	return ig_error_set(err, IG_ERR_UNAVAILABLE, "PostgreSQL at %s: %s: the connection is broken; connect again",
	                    ig_pg_dsn_display(pg), what);
}

/* Runs a command with n (at most 8) binary parameters; IG_OK when it
 * returned `want`. */
static int exec_params(ig_pg *pg, const char *sql, int n, const Oid *types, const char *const *vals,
                       const int *lens, ExecStatusType want, const char *what, ig_error *err)
{
	static const int fmts[8] = {1, 1, 1, 1, 1, 1, 1, 1};
	PGresult *r = PQexecParams(pg->conn, sql, n, types, vals, lens, fmts, 1);
	int rc = r && PQresultStatus(r) == want ? IG_OK : pg_fail(pg, err, r, what);
	PQclear(r);
	return rc;
}

/* Runs a command without parameters; IG_OK when it returned `want`. */
static int exec_simple(ig_pg *pg, const char *sql, ExecStatusType want, const char *what, ig_error *err)
{
	if (conn_check(pg, what, err) != IG_OK)
		return IG_ERR_UNAVAILABLE;
	PGresult *res = PQexec(pg->conn, sql);
	int rc = IG_OK;
	if (!res || PQresultStatus(res) != want)
		rc = pg_fail(pg, err, res, what);
	PQclear(res);
	return rc;
}

/* The libpq default prints server notices (e.g. "schema already exists,
 * skipping") to stderr; the library never prints on its own. A FATAL that
 * arrives while the connection is idle (the administrator ended the
 * session, the server shuts down) reaches libpq as a notice, and the
 * socket's end only later: mark the connection broken now, so a follower
 * waiting on the socket reconnects at once. */
static void quiet_notices(void *arg, const PGresult *res)
{
	ig_pg *pg = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		pg->broken = true;
}

/* ---- connect ------------------------------------------------------------- */

int ig_pg_connect(ig_pg **out, const char *dsn, ig_error *err)
{
	*out = NULL;
	ig_pg *pg = calloc(1, sizeof *pg);
	if (!pg)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory connecting to PostgreSQL");
	pg->display = ig_pg_dsn_mask(dsn);
	if (!pg->display) {
		free(pg);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory connecting to PostgreSQL");
	}
	if (dsn && *dsn) {
		char *perr = NULL;
		PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
		if (!opts) {
			char m[300];
			one_line(m, sizeof m, perr ? perr : "malformed");
			if (perr)
				PQfreemem(perr);
			ig_pg_close(pg);
			return ig_error_set(err, IG_ERR_INVAL,
			                    "PostgreSQL DSN is not a libpq connection string: %s; write it as "
			                    "'host=H port=P dbname=D user=U' (password in ~/.pgpass)",
			                    m);
		}
		PQconninfoFree(opts);
	}
	/* Our defaults come first: with expand_dbname, whatever the DSN says
	 * overrides them. Keepalives let a follower waiting on the socket
	 * notice a dead server within ~15 s; connect_timeout bounds a connect
	 * to a host that does not answer. */
	const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
	                            "keepalives_count", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"10", "1", "5", "2", "3", "iotguard", dsn ? dsn : "", NULL};
	pg->conn = PQconnectdbParams(keys, vals, 1);
	if (!pg->conn) {
		ig_pg_close(pg);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory connecting to PostgreSQL");
	}
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		char m[300];
		one_line(m, sizeof m, PQerrorMessage(pg->conn));
		int rc = ig_error_set(err, IG_ERR_UNAVAILABLE,
		                      "PostgreSQL at %s cannot be reached: %s; check that the server runs, the DSN's "
		                      "host/port/dbname/user, and ~/.pgpass (or PGPASSFILE) for the password",
		                      pg->display, m);
		ig_pg_close(pg);
		return rc;
	}
	PQsetNoticeReceiver(pg->conn, quiet_notices, pg);
	if (PQsetClientEncoding(pg->conn, "UTF8") != 0) {
		int rc = pg_fail(pg, err, NULL, "SET client_encoding UTF8");
		ig_pg_close(pg);
		return rc;
	}
	/* An appender that vanishes mid-transaction (its host lost, not
	 * closed) would hold the head row lock until the server's TCP
	 * keepalive gives up, two hours by default, stopping every broker's
	 * appends. Our transactions never sit idle for long, so the server may
	 * end one that does. */
	int rc = exec_simple(pg, "SET idle_in_transaction_session_timeout = '" IG_PG_IDLE_TX_TIMEOUT "'",
	                     PGRES_COMMAND_OK, "SET idle_in_transaction_session_timeout", err);
	if (rc != IG_OK) {
		ig_pg_close(pg);
		return rc;
	}
	*out = pg;
	return IG_OK;
}

void ig_pg_close(ig_pg *pg)
{
	if (!pg)
		return;
	if (pg->conn)
		PQfinish(pg->conn);
	free(pg->display);
	free(pg);
}

/* ---- schema -------------------------------------------------------------- */

static const char SCHEMA_SQL[] =
	"BEGIN;"
	"CREATE SCHEMA IF NOT EXISTS iotguard;"
	"CREATE TABLE IF NOT EXISTS iotguard.meta ("
	" one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	" schema_version int NOT NULL,"
	" cluster text NOT NULL,"
	" ch_pk bytea NOT NULL,"
	" created timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE IF NOT EXISTS iotguard.records ("
	" idx bigint PRIMARY KEY CHECK (idx >= 0),"
	" type integer NOT NULL,"
	" hash bytea NOT NULL UNIQUE,"
	" frame bytea NOT NULL,"
	" broker text NOT NULL,"
	" appended timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE IF NOT EXISTS iotguard.head ("
	" one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	" height bigint NOT NULL,"
	" head bytea NOT NULL,"
	" format integer NOT NULL,"
	" checkpoint text NOT NULL,"
	" broker text NOT NULL,"
	" updated timestamptz NOT NULL DEFAULT now());"
	"COMMIT;";

int ig_pg_create_schema(ig_pg *pg, ig_error *err)
{
	int rc = exec_simple(pg, SCHEMA_SQL, PGRES_COMMAND_OK, "creating schema iotguard", err);
	if (rc != IG_OK && ig_pg_ok(pg))
		ig_pg_rollback(pg);
	return rc;
}

/* ---- reading helpers ----------------------------------------------------- */

static uint64_t col_u64(const PGresult *r, int row, int col)
{
	return PQgetlength(r, row, col) == 8 ? ig_get_u64((const uint8_t *)PQgetvalue(r, row, col)) : 0;
}

static uint32_t col_u32(const PGresult *r, int row, int col)
{
	return PQgetlength(r, row, col) == 4 ? ig_get_u32((const uint8_t *)PQgetvalue(r, row, col)) : 0;
}

/* The head row and meta, read with results in binary. */
static const char HEAD_SQL[] =
	"SELECT m.schema_version, m.cluster, m.ch_pk, h.height, h.head, h.format, h.checkpoint, h.broker,"
	" (extract(epoch FROM h.updated) * 1000000)::bigint"
	" FROM iotguard.meta m, iotguard.head h";

static int head_read(ig_pg *pg, ig_pg_head *out, bool for_update, ig_error *err)
{
	memset(out, 0, sizeof *out);
	if (conn_check(pg, "reading the head", err) != IG_OK)
		return IG_ERR_UNAVAILABLE;
	char sql[sizeof HEAD_SQL + 32];
	snprintf(sql, sizeof sql, "%s%s", HEAD_SQL, for_update ? " FOR UPDATE OF h" : "");
	PGresult *r = PQexecParams(pg->conn, sql, 0, NULL, NULL, NULL, NULL, 1);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = pg_fail(pg, err, r, for_update ? "locking the head row" : "reading the head row");
		PQclear(r);
		return rc;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return ig_error_set(err, IG_ERR_NOTFOUND,
		                    "PostgreSQL at %s holds no iotguard ledger (tables iotguard.meta/head are empty); run "
		                    "iotguard init --dsn or iotguard migrate",
		                    pg->display);
	}
	int rc = IG_OK;
	uint32_t version = col_u32(r, 0, 0);
	int cl = PQgetlength(r, 0, 1), cpl = PQgetlength(r, 0, 6), bl = PQgetlength(r, 0, 7);
	if (version != IG_PG_SCHEMA_VERSION) {
		rc = ig_error_set(err, IG_ERR_STATE,
		                  "PostgreSQL at %s: iotguard.meta says schema version %u but this iotguard knows %d; "
		                  "use the iotguard release that made it",
		                  pg->display, version, IG_PG_SCHEMA_VERSION);
	} else if (cl < 1 || cl > IG_CLUSTER_MAX || PQgetlength(r, 0, 2) != IG_PK_BYTES ||
	           PQgetlength(r, 0, 3) != 8 || PQgetlength(r, 0, 4) != IG_HASH_BYTES || PQgetlength(r, 0, 5) != 4 ||
	           cpl < 1 || cpl > IG_CHECKPOINT_MAX || bl > IG_PG_BROKER_MAX || PQgetlength(r, 0, 8) != 8) {
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "PostgreSQL at %s: iotguard.meta or iotguard.head holds a malformed value (cluster, "
		                  "ch_pk, head or checkpoint has the wrong length): the tables were changed outside "
		                  "iotguard; run iotguard verify --dsn and restore from a backup",
		                  pg->display);
	} else {
		memcpy(out->cluster, PQgetvalue(r, 0, 1), (size_t)cl);
		memcpy(out->ch_pk, PQgetvalue(r, 0, 2), IG_PK_BYTES);
		out->height = col_u64(r, 0, 3);
		memcpy(out->head, PQgetvalue(r, 0, 4), IG_HASH_BYTES);
		out->format = col_u32(r, 0, 5);
		memcpy(out->checkpoint, PQgetvalue(r, 0, 6), (size_t)cpl);
		out->cp_len = (size_t)cpl;
		memcpy(out->broker, PQgetvalue(r, 0, 7), (size_t)bl);
		int64_t us = (int64_t)col_u64(r, 0, 8);
		out->updated_us = us > 0 ? (uint64_t)us : 0;
		if ((int64_t)out->height < 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT, "PostgreSQL at %s: iotguard.head.height is negative",
			                  pg->display);
	}
	PQclear(r);
	return rc;
}

int ig_pg_head_get(ig_pg *pg, ig_pg_head *out, ig_error *err)
{
	return head_read(pg, out, false, err);
}

int ig_pg_row_check(const ig_pg_row *row, ig_error *err)
{
	ig_record rec;
	ig_frame_status st = ig_record_decode(row->frame, row->frame_len, &rec);
	if (st != IG_FRAME_OK)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %llu: the frame in iotguard.records is damaged (%s): tampered or "
		                    "corrupt; restore the database from a backup",
		                    (unsigned long long)row->idx, ig_record_frame_status_text(st));
	if (rec.frame_len != row->frame_len)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %llu: iotguard.records.frame holds %zu bytes but the frame says %u: "
		                    "tampered or corrupt",
		                    (unsigned long long)row->idx, row->frame_len, rec.frame_len);
	if (rec.index != row->idx)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %llu: column idx says %llu but the frame says index %llu: tampered "
		                    "(the table was changed outside iotguard)",
		                    (unsigned long long)row->idx, (unsigned long long)row->idx,
		                    (unsigned long long)rec.index);
	if (rec.type != row->type)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %llu: column type says %u but the frame says %u (%s): tampered (the "
		                    "table was changed outside iotguard)",
		                    (unsigned long long)row->idx, row->type, rec.type, ig_record_type_name(rec.type));
	if (memcmp(rec.hash, row->hash, IG_HASH_BYTES) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %llu: column hash disagrees with the frame's hash: tampered (the "
		                    "table was changed outside iotguard)",
		                    (unsigned long long)row->idx);
	return IG_OK;
}

int ig_pg_rows(ig_pg *pg, uint64_t from, uint64_t to, ig_pg_row_fn fn, void *ctx, ig_error *err)
{
	if (conn_check(pg, "reading records", err) != IG_OK)
		return IG_ERR_UNAVAILABLE;
	if (from > to || to > (uint64_t)INT64_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "ig_pg_rows: bad range %llu..%llu", (unsigned long long)from,
		                    (unsigned long long)to);
	uint64_t next = from;
	while (next < to) {
		uint8_t p_from[8], p_to[8], p_lim[8];
		uint64_t lim = to - next < ROWS_CHUNK ? to - next : ROWS_CHUNK;
		ig_put_u64(p_from, next);
		ig_put_u64(p_to, to);
		ig_put_u64(p_lim, lim);
		const Oid types[3] = {OID_INT8, OID_INT8, OID_INT8};
		const char *vals[3] = {(const char *)p_from, (const char *)p_to, (const char *)p_lim};
		const int lens[3] = {8, 8, 8}, fmts[3] = {1, 1, 1};
		PGresult *r = PQexecParams(pg->conn,
		                           "SELECT idx, type, hash, frame, broker FROM iotguard.records"
		                           " WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3",
		                           3, types, vals, lens, fmts, 1);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
			int rc = pg_fail(pg, err, r, "reading iotguard.records");
			PQclear(r);
			return rc;
		}
		int n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger record %llu: missing from iotguard.records at %s (the head says "
			                    "records up to %llu exist): rows were deleted; restore from a backup",
			                    (unsigned long long)next, pg->display, (unsigned long long)to - 1);
		}
		for (int i = 0; i < n; i++) {
			char broker[IG_PG_BROKER_MAX + 1];
			ig_pg_row row = {0};
			row.idx = col_u64(r, i, 0);
			if (row.idx != next) {
				PQclear(r);
				return ig_error_set(err, IG_ERR_CORRUPT,
				                    "ledger record %llu: missing from iotguard.records at %s (the next row "
				                    "is %llu): rows were deleted; restore from a backup",
				                    (unsigned long long)next, pg->display, (unsigned long long)row.idx);
			}
			uint32_t type = col_u32(r, i, 1);
			int bl = PQgetlength(r, i, 4);
			if (PQgetlength(r, i, 1) != 4 || type > UINT16_MAX || PQgetlength(r, i, 2) != IG_HASH_BYTES ||
			    bl > IG_PG_BROKER_MAX) {
				PQclear(r);
				return ig_error_set(err, IG_ERR_CORRUPT,
				                    "ledger record %llu: iotguard.records holds a malformed type, hash or "
				                    "broker column: tampered (the table was changed outside iotguard)",
				                    (unsigned long long)next);
			}
			row.type = (uint16_t)type;
			memcpy(row.hash, PQgetvalue(r, i, 2), IG_HASH_BYTES);
			row.frame = (const uint8_t *)PQgetvalue(r, i, 3);
			row.frame_len = (size_t)PQgetlength(r, i, 3);
			memcpy(broker, PQgetvalue(r, i, 4), (size_t)bl);
			broker[bl] = '\0';
			row.broker = broker;
			int rc = fn ? fn(ctx, &row, err) : IG_OK;
			if (rc != IG_OK) {
				PQclear(r);
				return rc;
			}
			next++;
		}
		PQclear(r);
	}
	return IG_OK;
}

/* ---- the append transaction ---------------------------------------------- */

int ig_pg_begin_append(ig_pg *pg, ig_pg_head *head, ig_error *err)
{
	int rc = exec_simple(pg, "BEGIN", PGRES_COMMAND_OK, "BEGIN", err);
	if (rc != IG_OK)
		return rc;
	rc = head_read(pg, head, true, err);
	if (rc != IG_OK)
		ig_pg_rollback(pg);
	return rc;
}

/* One multi-row INSERT of rows [0, n): five parameters a row. */
static int insert_chunk(ig_pg *pg, size_t n, const uint64_t *idx, const uint16_t *type,
                        const uint8_t (*hash)[IG_HASH_BYTES], const uint8_t *const *frame, const size_t *frame_len,
                        const char *broker, ig_error *err)
{
	size_t np = 5 * n;
	size_t sqlcap = 64 + n * 48;
	char *sql = malloc(sqlcap);
	Oid *types = malloc(np * sizeof *types);
	const char **vals = malloc(np * sizeof *vals);
	int *lens = malloc(np * sizeof *lens), *fmts = malloc(np * sizeof *fmts);
	uint8_t (*nums)[12] = malloc(n * sizeof *nums);
	int rc = IG_OK;
	if (!sql || !types || !vals || !lens || !fmts || !nums) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory inserting %zu records into PostgreSQL", n);
		goto out;
	}
	size_t bl = strlen(broker);
	size_t len = (size_t)snprintf(sql, sqlcap, "INSERT INTO iotguard.records (idx, type, hash, frame, broker) VALUES ");
	for (size_t i = 0; i < n; i++) {
		size_t b = 5 * i;
		if (frame_len[i] > INT32_MAX || idx[i] > (uint64_t)INT64_MAX) {
			rc = ig_error_set(err, IG_ERR_RANGE, "ledger record %llu: too large to insert",
			                  (unsigned long long)idx[i]);
			goto out;
		}
		len += (size_t)snprintf(sql + len, sqlcap - len, "%s($%zu,$%zu,$%zu,$%zu,$%zu)", i ? "," : "", b + 1,
		                        b + 2, b + 3, b + 4, b + 5);
		ig_put_u64(nums[i], idx[i]);
		ig_put_u32(nums[i] + 8, type[i]);
		types[b] = OID_INT8, vals[b] = (const char *)nums[i], lens[b] = 8;
		types[b + 1] = OID_INT4, vals[b + 1] = (const char *)nums[i] + 8, lens[b + 1] = 4;
		types[b + 2] = OID_BYTEA, vals[b + 2] = (const char *)hash[i], lens[b + 2] = IG_HASH_BYTES;
		types[b + 3] = OID_BYTEA, vals[b + 3] = (const char *)frame[i], lens[b + 3] = (int)frame_len[i];
		types[b + 4] = OID_TEXT, vals[b + 4] = broker, lens[b + 4] = (int)bl;
		for (size_t k = 0; k < 5; k++)
			fmts[b + k] = 1;
	}
	PGresult *r = PQexecParams(pg->conn, sql, (int)np, types, vals, lens, fmts, 1);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = pg_fail(pg, err, r, "inserting into iotguard.records");
	else if (strtoull(PQcmdTuples(r), NULL, 10) != n)
		rc = ig_error_set(err, IG_ERR_IO, "PostgreSQL at %s: inserting %zu records stored %s rows; see the server's log",
		                  pg->display, n, PQcmdTuples(r));
	PQclear(r);
out:
	free(sql);
	free(types);
	free(vals);
	free(lens);
	free(fmts);
	free(nums);
	return rc;
}

static int broker_check(const ig_pg *pg, const char *broker, ig_error *err)
{
	if (!broker || !*broker || strlen(broker) > IG_PG_BROKER_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "PostgreSQL at %s: the broker name must be 1..%d characters",
		                    ig_pg_dsn_display(pg), IG_PG_BROKER_MAX);
	return IG_OK;
}

/* Before a write: the broker name fits its column and the connection works. */
static int write_check(const ig_pg *pg, const char *broker, const char *what, ig_error *err)
{
	int rc = broker_check(pg, broker, err);
	return rc != IG_OK ? rc : conn_check(pg, what, err);
}

int ig_pg_insert(ig_pg *pg, size_t n, const uint64_t *idx, const uint16_t *type,
                 const uint8_t (*hash)[IG_HASH_BYTES], const uint8_t *const *frame, const size_t *frame_len,
                 const char *broker, ig_error *err)
{
	int rc = write_check(pg, broker, "inserting records", err);
	if (rc != IG_OK)
		return rc;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < ROWS_CHUNK ? n - done : ROWS_CHUNK;
		rc = insert_chunk(pg, k, idx + done, type + done, hash + done, frame + done, frame_len + done, broker, err);
		if (rc != IG_OK)
			return rc;
		done += k;
	}
	return IG_OK;
}

/* updated uses clock_timestamp(), not now(): now() is when the transaction
 * began (before the lock wait), and followers measure their lag from it. */
int ig_pg_set_head(ig_pg *pg, uint64_t height, const uint8_t head[IG_HASH_BYTES], unsigned format,
                   const char *checkpoint, size_t cp_len, const char *broker, ig_error *err)
{
	int rc = write_check(pg, broker, "moving the head", err);
	if (rc != IG_OK)
		return rc;
	if (cp_len == 0 || cp_len > IG_CHECKPOINT_MAX || height > (uint64_t)INT64_MAX || format > INT32_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "PostgreSQL at %s: moving the head: bad checkpoint or height",
		                    pg->display);
	uint8_t h8[8], f4[4];
	ig_put_u64(h8, height);
	ig_put_u32(f4, format);
	const Oid types[5] = {OID_INT8, OID_BYTEA, OID_INT4, OID_TEXT, OID_TEXT};
	const char *vals[5] = {(const char *)h8, (const char *)head, (const char *)f4, checkpoint, broker};
	const int lens[5] = {8, IG_HASH_BYTES, 4, (int)cp_len, (int)strlen(broker)};
	const int fmts[5] = {1, 1, 1, 1, 1};
	PGresult *r = PQexecParams(pg->conn,
	                           "WITH u AS (UPDATE iotguard.head SET height = $1, head = $2, format = $3,"
	                           " checkpoint = $4, broker = $5, updated = clock_timestamp() RETURNING height)"
	                           " SELECT pg_notify('" IG_PG_CHANNEL "', height::text) FROM u",
	                           5, types, vals, lens, fmts, 1);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = pg_fail(pg, err, r, "updating iotguard.head");
	else if (PQntuples(r) != 1)
		rc = ig_error_set(err, IG_ERR_NOTFOUND,
		                  "PostgreSQL at %s: iotguard.head has no row: the database holds no ledger; run iotguard "
		                  "init --dsn or iotguard migrate",
		                  pg->display);
	PQclear(r);
	return rc;
}

int ig_pg_commit(ig_pg *pg, ig_error *err)
{
	if (!ig_pg_ok(pg))
		return ig_error_set(err, IG_ERR_UNAVAILABLE,
		                    "PostgreSQL at %s: COMMIT: the connection was already broken: nothing was committed",
		                    ig_pg_dsn_display(pg));
	PGresult *r = PQexec(pg->conn, "COMMIT");
	int rc = IG_OK;
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		/* A transaction that had failed answers COMMIT with ROLLBACK. */
		if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
			rc = ig_error_set(err, IG_ERR_STATE,
			                  "PostgreSQL at %s: COMMIT rolled back (an earlier statement of the transaction "
			                  "failed): nothing was written",
			                  pg->display);
	} else {
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (PQstatus(pg->conn) != CONNECTION_OK || !r || state_is_connection(st)) {
			char m[300];
			one_line(m, sizeof m, r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn));
			pg->broken = true;
			rc = ig_error_set(err, IG_ERR_UNKNOWN,
			                  "PostgreSQL at %s: the connection broke during COMMIT (%s): the records may or "
			                  "may not be stored; reconnect and read the head to find out",
			                  pg->display, m);
		} else {
			rc = pg_fail(pg, err, r, "COMMIT");
		}
	}
	PQclear(r);
	return rc;
}

void ig_pg_rollback(ig_pg *pg)
{
	if (!ig_pg_ok(pg))
		return;
	PGresult *r = PQexec(pg->conn, "ROLLBACK");
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		if (PQstatus(pg->conn) != CONNECTION_OK)
			pg->broken = true;
	}
	PQclear(r);
}

/* ---- following ----------------------------------------------------------- */

int ig_pg_listen(ig_pg *pg, ig_error *err)
{
	return exec_simple(pg, "LISTEN " IG_PG_CHANNEL, PGRES_COMMAND_OK, "LISTEN " IG_PG_CHANNEL, err);
}

int ig_pg_socket(const ig_pg *pg)
{
	return ig_pg_ok(pg) ? PQsocket(pg->conn) : -1;
}

int ig_pg_notifications(ig_pg *pg, ig_error *err)
{
	if (!ig_pg_ok(pg))
		return ig_error_set(err, IG_ERR_UNAVAILABLE,
		                    "PostgreSQL at %s: the connection is broken; connect again", ig_pg_dsn_display(pg));
	/* PQconsumeInput only reads; PQnotifies parses, and only then does a
	 * FATAL the server sent reach quiet_notices. */
	bool read_ok = PQconsumeInput(pg->conn) != 0;
	int n = 0;
	PGnotify *nt;
	while ((nt = PQnotifies(pg->conn)) != NULL) {
		if (strcmp(nt->relname, IG_PG_CHANNEL) == 0 && n < INT32_MAX)
			n++;
		PQfreemem(nt);
	}
	if (!read_ok || PQstatus(pg->conn) != CONNECTION_OK || pg->broken) {
		char m[300];
		one_line(m, sizeof m, read_ok && PQstatus(pg->conn) == CONNECTION_OK ? "the server ended the session"
		                                                                      : PQerrorMessage(pg->conn));
		pg->broken = true;
		return ig_error_set(err, IG_ERR_UNAVAILABLE,
		                    "PostgreSQL at %s: the connection broke: %s; reconnect and LISTEN again", pg->display,
		                    m);
	}
	return n;
}

/* ---- whole ledgers ------------------------------------------------------- */

/* What a walk over a ledger's frames learns: the facts meta and head hold. */
typedef struct ledger_facts {
	ig_genesis genesis;
	unsigned format;
	uint64_t height;
	uint8_t head[IG_HASH_BYTES];
} ledger_facts;

/* Feeds one frame (already checked against its columns, or just decoded)
 * to the facts: the genesis gives cluster, key and format, a format record
 * moves the format. */
static int facts_add(ledger_facts *f, const ig_record *rec, ig_error *err)
{
	if (rec->index == 0) {
		if (rec->type != IG_REC_GENESIS)
			return ig_error_set(err, IG_ERR_CORRUPT, "ledger record 0: not a genesis record (type %u)", rec->type);
		int rc = ig_record_genesis_decode(rec->body, rec->body_len, &f->genesis, err);
		if (rc != IG_OK)
			return ig_error_prefix(err, "ledger record 0: ");
		f->format = f->genesis.version;
	} else if (rec->type == IG_REC_FORMAT) {
		ig_format_rec fr;
		int rc = ig_record_format_decode(rec->body, rec->body_len, &fr, err);
		if (rc != IG_OK)
			return ig_error_prefix(err, "ledger record %llu: ", (unsigned long long)rec->index);
		f->format = fr.version;
	}
	f->height = rec->index + 1;
	memcpy(f->head, rec->hash, IG_HASH_BYTES);
	return IG_OK;
}

/* The head's checkpoint must be signed by the genesis key and cover exactly
 * the records stored; its root is the verifier's (ig_ledger_scan_buffer). */
static int checkpoint_covers(const char *what, const ledger_facts *f, const char *cp, size_t cp_len, ig_error *err)
{
	char origin[IG_CLUSTER_MAX + 16];
	ig_checkpoint c;
	if (ig_checkpoint_origin(origin, sizeof origin, f->genesis.cluster) < 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s: the genesis cluster name is malformed", what);
	int rc = ig_checkpoint_verify(cp, cp_len, origin, f->genesis.ch_pk, &c, err);
	if (rc != IG_OK)
		return ig_error_prefix(err, "%s: the checkpoint: ", what);
	if (c.size != f->height)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s: the checkpoint covers %llu records but there are %llu",
		                    what, (unsigned long long)c.size, (unsigned long long)f->height);
	return IG_OK;
}

int ig_pg_import(ig_pg *pg, const uint8_t *log, size_t log_len, const char *checkpoint, size_t cp_len,
                 const char *broker, ig_error *err)
{
	int rc = broker_check(pg, broker, err);
	if (rc != IG_OK)
		return rc;
	/* Walk the frames first: nothing is sent for a ledger we cannot store. */
	ledger_facts f;
	memset(&f, 0, sizeof f);
	size_t count = 0;
	for (size_t off = 0; off < log_len;) {
		ig_record rec;
		ig_frame_status st = ig_record_decode(log + off, log_len - off, &rec);
		if (st != IG_FRAME_OK)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "importing: ledger record %zu at byte %zu: %s; run iotguard verify on the "
			                    "ledger (a torn tail is repaired by opening it once with the broker)",
			                    count, off, ig_record_frame_status_text(st));
		if (rec.index != count)
			return ig_error_set(err, IG_ERR_CORRUPT, "importing: ledger record %zu says index %llu", count,
			                    (unsigned long long)rec.index);
		rc = facts_add(&f, &rec, err);
		if (rc != IG_OK)
			return rc;
		off += rec.frame_len;
		count++;
	}
	if (count == 0)
		return ig_error_set(err, IG_ERR_INVAL, "importing: the ledger is empty (no genesis record)");
	if (!checkpoint || cp_len == 0 || cp_len > IG_CHECKPOINT_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "importing: the checkpoint is empty or too long");
	rc = checkpoint_covers("importing", &f, checkpoint, cp_len, err);
	if (rc != IG_OK)
		return rc;

	rc = ig_pg_create_schema(pg, err);
	if (rc != IG_OK)
		return rc;
	rc = exec_simple(pg, "BEGIN", PGRES_COMMAND_OK, "BEGIN", err);
	if (rc != IG_OK)
		return rc;
	/* Two imports racing: the second waits here, then sees the first's meta. */
	rc = exec_simple(pg, "LOCK TABLE iotguard.meta IN EXCLUSIVE MODE", PGRES_COMMAND_OK, "locking iotguard.meta",
	                 err);
	if (rc != IG_OK)
		goto fail;
	PGresult *r = PQexecParams(pg->conn, "SELECT cluster FROM iotguard.meta", 0, NULL, NULL, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = pg_fail(pg, err, r, "reading iotguard.meta");
		PQclear(r);
		goto fail;
	}
	if (PQntuples(r) > 0) {
		char cl[IG_CLUSTER_MAX + 1];
		one_line(cl, sizeof cl, PQgetvalue(r, 0, 0));
		rc = ig_error_set(err, IG_ERR_EXISTS,
		                  "PostgreSQL at %s already holds ledger of cluster %s; use another database (or drop "
		                  "schema iotguard there if that ledger is no longer wanted)",
		                  pg->display, cl);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	r = PQexecParams(pg->conn, "SELECT count(*) FROM iotguard.records", 0, NULL, NULL, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = pg_fail(pg, err, r, "reading iotguard.records");
		PQclear(r);
		goto fail;
	}
	bool stray = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
	PQclear(r);
	if (stray) {
		rc = ig_error_set(err, IG_ERR_EXISTS,
		                  "PostgreSQL at %s: iotguard.records holds rows but iotguard.meta none (a half-made "
		                  "ledger); drop schema iotguard there and try again",
		                  pg->display);
		goto fail;
	}
	{
		uint8_t v4[4];
		ig_put_u32(v4, IG_PG_SCHEMA_VERSION);
		const Oid types[3] = {OID_INT4, OID_TEXT, OID_BYTEA};
		const char *vals[3] = {(const char *)v4, f.genesis.cluster, (const char *)f.genesis.ch_pk};
		const int lens[3] = {4, (int)strlen(f.genesis.cluster), IG_PK_BYTES};
		rc = exec_params(pg, "INSERT INTO iotguard.meta (schema_version, cluster, ch_pk) VALUES ($1, $2, $3)", 3,
		                 types, vals, lens, PGRES_COMMAND_OK, "inserting into iotguard.meta", err);
		if (rc != IG_OK)
			goto fail;
	}
	{
		uint64_t idx[ROWS_CHUNK];
		uint16_t type[ROWS_CHUNK];
		uint8_t (*hash)[IG_HASH_BYTES] = malloc(ROWS_CHUNK * sizeof *hash);
		const uint8_t *frame[ROWS_CHUNK];
		size_t flen[ROWS_CHUNK];
		if (!hash) {
			rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory importing the ledger");
			goto fail;
		}
		size_t k = 0;
		for (size_t off = 0; off < log_len && rc == IG_OK;) {
			ig_record rec;
			(void)ig_record_decode(log + off, log_len - off, &rec);
			idx[k] = rec.index;
			type[k] = rec.type;
			memcpy(hash[k], rec.hash, IG_HASH_BYTES);
			frame[k] = log + off;
			flen[k] = rec.frame_len;
			k++;
			off += rec.frame_len;
			if (k == ROWS_CHUNK || off >= log_len) {
				rc = insert_chunk(pg, k, idx, type, (const uint8_t(*)[IG_HASH_BYTES])hash, frame, flen, broker, err);
				k = 0;
			}
		}
		free(hash);
		if (rc != IG_OK)
			goto fail;
	}
	{
		uint8_t h8[8], f4[4];
		ig_put_u64(h8, f.height);
		ig_put_u32(f4, f.format);
		const Oid types[5] = {OID_INT8, OID_BYTEA, OID_INT4, OID_TEXT, OID_TEXT};
		const char *vals[5] = {(const char *)h8, (const char *)f.head, (const char *)f4, checkpoint, broker};
		const int lens[5] = {8, IG_HASH_BYTES, 4, (int)cp_len, (int)strlen(broker)};
		rc = exec_params(pg, "INSERT INTO iotguard.head (height, head, format, checkpoint, broker) VALUES ($1, $2, $3, "
		                 "$4, $5)",
		                 5, types, vals, lens, PGRES_COMMAND_OK, "inserting into iotguard.head", err);
		if (rc != IG_OK)
			goto fail;
	}
	rc = exec_simple(pg, "SELECT pg_notify('" IG_PG_CHANNEL "', (SELECT height::text FROM iotguard.head))",
	                 PGRES_TUPLES_OK, "pg_notify", err);
	if (rc != IG_OK)
		goto fail;
	return ig_pg_commit(pg, err);
fail:
	ig_pg_rollback(pg);
	return rc;
}

/* Export: every row's columns are checked against its frame, the frames are
 * appended to the log, and the facts are gathered to check meta and head. */
typedef struct export_ctx {
	uint8_t *buf;
	size_t len, cap;
	ledger_facts facts;
	ig_pg_row_fn user;
	void *user_ctx;
} export_ctx;

static int export_row(void *vctx, const ig_pg_row *row, ig_error *err)
{
	export_ctx *x = vctx;
	int rc = ig_pg_row_check(row, err);
	if (rc != IG_OK)
		return rc;
	if (x->user) {
		rc = x->user(x->user_ctx, row, err);
		if (rc != IG_OK)
			return rc;
	}
	if (x->len + row->frame_len > x->cap) {
		size_t cap = x->cap ? x->cap : 1u << 16;
		while (cap < x->len + row->frame_len)
			cap *= 2;
		uint8_t *nb = realloc(x->buf, cap);
		if (!nb)
			return ig_error_set(err, IG_ERR_NOMEM, "out of memory reading the ledger from PostgreSQL (%zu bytes)",
			                    cap);
		x->buf = nb;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, row->frame, row->frame_len);
	x->len += row->frame_len;
	ig_record rec;
	(void)ig_record_decode(row->frame, row->frame_len, &rec); /* checked OK by ig_pg_row_check */
	return facts_add(&x->facts, &rec, err);
}

int ig_pg_export(ig_pg *pg, uint8_t **log, size_t *log_len, ig_pg_head *head, ig_pg_row_fn rows, void *ctx,
                 ig_error *err)
{
	*log = NULL;
	*log_len = 0;
	int rc = exec_simple(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "BEGIN", err);
	if (rc != IG_OK)
		return rc;
	export_ctx x;
	memset(&x, 0, sizeof x);
	x.user = rows;
	x.user_ctx = ctx;
	rc = head_read(pg, head, false, err);
	if (rc == IG_OK && head->height == 0)
		rc = ig_error_set(err, IG_ERR_CORRUPT, "PostgreSQL at %s: iotguard.head says the ledger has no records",
		                  pg->display);
	if (rc == IG_OK)
		rc = ig_pg_rows(pg, 0, head->height, export_row, &x, err);
	if (rc == IG_OK) {
		/* Rows past the head would be records no checkpoint covers. */
		uint8_t h8[8];
		ig_put_u64(h8, head->height);
		const Oid t[1] = {OID_INT8};
		const char *v[1] = {(const char *)h8};
		const int l[1] = {8}, fm[1] = {1};
		PGresult *r = PQexecParams(pg->conn, "SELECT min(idx) FROM iotguard.records WHERE idx >= $1", 1, t, v, l,
		                           fm, 0);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
			rc = pg_fail(pg, err, r, "reading iotguard.records");
		else if (!PQgetisnull(r, 0, 0))
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "ledger record %s: stored in iotguard.records past the head (height %llu): "
			                  "tampered (rows were added outside iotguard)",
			                  PQgetvalue(r, 0, 0), (unsigned long long)head->height);
		PQclear(r);
	}
	if (rc == IG_OK) {
		ledger_facts *f = &x.facts;
		if (strcmp(f->genesis.cluster, head->cluster) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "PostgreSQL at %s: iotguard.meta.cluster is '%s' but the genesis record says '%s': "
			                  "tampered",
			                  pg->display, head->cluster, f->genesis.cluster);
		else if (memcmp(f->genesis.ch_pk, head->ch_pk, IG_PK_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "PostgreSQL at %s: iotguard.meta.ch_pk differs from the genesis record's key: tampered",
			                  pg->display);
		else if (memcmp(f->head, head->head, IG_HASH_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "PostgreSQL at %s: iotguard.head.head is not the hash of record %llu: tampered",
			                  pg->display, (unsigned long long)head->height - 1);
		else if (f->format != head->format)
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "PostgreSQL at %s: iotguard.head.format says %u but the records say format %u: "
			                  "tampered",
			                  pg->display, head->format, f->format);
		else
			rc = checkpoint_covers("iotguard.head", f, head->checkpoint, head->cp_len, err);
	}
	/* A read-only snapshot: ending it cannot lose anything, so a broken
	 * connection here is simply unavailable (not ig_pg_commit's unknown). */
	if (rc == IG_OK)
		rc = exec_simple(pg, "COMMIT", PGRES_COMMAND_OK, "ending the read", err);
	else
		ig_pg_rollback(pg);
	if (rc != IG_OK) {
		free(x.buf);
		return rc;
	}
	if (!x.buf) /* unreachable: height >= 1 */
		return ig_error_set(err, IG_ERR_CORRUPT, "PostgreSQL at %s: no records", pg->display);
	*log = x.buf;
	*log_len = x.len;
	return IG_OK;
}
