/*
 * ig_pg.h: the ledger's records in PostgreSQL (docs/LEDGER.md 16), the SQL
 * side only.
 *
 * Why this exists: when one broker is not enough, several brokers share one
 * ledger, and the well-kept way to share durable state between processes is
 * a real database with replication and multi-host failover, not a consensus
 * protocol of our own. The records, hashes, Merkle tree and checkpoints stay
 * byte for byte those of the file format; this file only stores and fetches
 * them. Every call blocks on the network: callers are tools and the shared
 * ledger's own thread (ledger_pg.c), never the broker's event loop.
 *
 * Errors name the server (the DSN with any password masked) and say what to
 * do; a lost connection is IG_ERR_UNAVAILABLE.
 */
#ifndef IG_PG_H
#define IG_PG_H

#include "ig_common.h"
#include "ig_checkpoint.h"

#define IG_PG_SCHEMA_VERSION 1
#define IG_PG_CHANNEL "iotguard_head"
#define IG_PG_BROKER_MAX 64

typedef struct ig_pg ig_pg;

/* The head row (and meta's facts). */
typedef struct ig_pg_head {
	char cluster[IG_CLUSTER_MAX + 1];
	uint8_t ch_pk[IG_PK_BYTES];
	unsigned format;
	uint64_t height;
	uint8_t head[IG_HASH_BYTES];
	char checkpoint[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	char broker[IG_PG_BROKER_MAX + 1];
	uint64_t updated_us;   /* head.updated, microseconds since the Unix epoch */
} ig_pg_head;

/* Connects (libpq connection string: "host=a,b port=5432,5433 dbname=iotguard
 * target_session_attrs=read-write"). IG_ERR_UNAVAILABLE when no server answers. */
int ig_pg_connect(ig_pg **out, const char *dsn, ig_error *err) IG_NODISCARD;
void ig_pg_close(ig_pg *pg);
/* The DSN with password=... masked, for messages. */
const char *ig_pg_dsn_display(const ig_pg *pg);
/* Any DSN (key=value or URI) rebuilt from libpq's own parse of it with the
 * password (and every option libpq marks secret) as ***, for logs: malloc'd,
 * the caller frees; NULL when out of memory. A DSN libpq cannot parse is
 * shown as "(unparsable DSN)", never echoed, since the password could be
 * anywhere in it. */
char *ig_pg_dsn_mask(const char *dsn);
/* False once the connection broke (then close and connect again). */
bool ig_pg_ok(const ig_pg *pg);

/* Creates the schema and tables if absent (one transaction). */
int ig_pg_create_schema(ig_pg *pg, ig_error *err) IG_NODISCARD;
/* Reads meta + head. IG_ERR_NOTFOUND when the database holds no ledger
 * ("run iotguard init --dsn or iotguard migrate"). */
int ig_pg_head_get(ig_pg *pg, ig_pg_head *out, ig_error *err) IG_NODISCARD;

/* One stored record as fetched: the frame bytes plus the SQL columns, so
 * verify can check the columns agree with the frame. frame and broker point
 * into the fetched chunk: valid only during the row callback. */
typedef struct ig_pg_row {
	uint64_t idx;
	uint16_t type;
	uint8_t hash[IG_HASH_BYTES];
	const uint8_t *frame;
	size_t frame_len;
	const char *broker;
} ig_pg_row;
/* Checks a row's SQL columns against its frame: the frame decodes (magic,
 * length, checksum), its length is the column's, and idx, type and hash are
 * the frame's. IG_ERR_CORRUPT naming the record ("ledger record N: ...
 * tampered") otherwise. ig_pg_export runs it on every row. */
int ig_pg_row_check(const ig_pg_row *row, ig_error *err) IG_NODISCARD;
/* Called per row in index order; return IG_OK to go on. */
typedef int (*ig_pg_row_fn)(void *ctx, const ig_pg_row *row, ig_error *err);
/* Rows with from <= idx < to, in index order (a cursor, in chunks: bounded
 * memory). Fails IG_ERR_CORRUPT if an index is missing. */
int ig_pg_rows(ig_pg *pg, uint64_t from, uint64_t to, ig_pg_row_fn fn, void *ctx, ig_error *err) IG_NODISCARD;

/* ---- one append transaction ---- */
/* BEGIN; locks the head row (SELECT ... FOR UPDATE) and fills head. */
int ig_pg_begin_append(ig_pg *pg, ig_pg_head *head, ig_error *err) IG_NODISCARD;
/* Inserts n frames (their idx, type and hash given alongside) with broker. */
int ig_pg_insert(ig_pg *pg, size_t n, const uint64_t *idx, const uint16_t *type,
                 const uint8_t (*hash)[IG_HASH_BYTES], const uint8_t *const *frame, const size_t *frame_len,
                 const char *broker, ig_error *err) IG_NODISCARD;
/* UPDATE head (height, head, format, checkpoint, broker) and pg_notify. */
int ig_pg_set_head(ig_pg *pg, uint64_t height, const uint8_t head[IG_HASH_BYTES], unsigned format,
                   const char *checkpoint, size_t cp_len, const char *broker, ig_error *err) IG_NODISCARD;
/* COMMIT. IG_OK: durable. IG_ERR_UNKNOWN: the connection broke during
 * COMMIT (it may or may not have happened). Any other code: not committed. */
int ig_pg_commit(ig_pg *pg, ig_error *err) IG_NODISCARD;
/* ROLLBACK (best effort; a broken connection rolls back by itself). */
void ig_pg_rollback(ig_pg *pg);

/* ---- following ---- */
/* LISTEN iotguard_head. */
int ig_pg_listen(ig_pg *pg, ig_error *err) IG_NODISCARD;
/* The connection's socket, for poll(); -1 when broken. */
int ig_pg_socket(const ig_pg *pg);
/* Reads what the socket has (PQconsumeInput) and drains notifications
 * (including any libpq queued while other commands ran, so call it after a
 * transaction too, not only when the socket is readable):
 * returns how many arrived (0: none), IG_ERR_UNAVAILABLE on a broken
 * connection. Never blocks. */
int ig_pg_notifications(ig_pg *pg, ig_error *err) IG_NODISCARD;

/* ---- whole ledgers (tools) ---- */
/* Imports a complete file ledger (ledger.log bytes + checkpoint text) into an
 * empty database in one transaction: meta, every record, the head. The
 * caller has verified it. IG_ERR_EXISTS when a ledger is there already. */
int ig_pg_import(ig_pg *pg, const uint8_t *log, size_t log_len, const char *checkpoint, size_t cp_len,
                 const char *broker, ig_error *err) IG_NODISCARD;
/* The whole ledger as a file ledger's bytes, read in one REPEATABLE READ
 * snapshot: *log (malloc'd, caller frees) and the head's checkpoint text.
 * rows (may be NULL) is called per row first, for column checks. */
int ig_pg_export(ig_pg *pg, uint8_t **log, size_t *log_len, ig_pg_head *head, ig_pg_row_fn rows, void *ctx,
                 ig_error *err) IG_NODISCARD;

#endif
