/*
 * ig_ledger.h: the append-only, hash-chained, group-committed ledger.
 *
 * Why this exists: every identity decision the cluster head makes must be
 * provable later and must survive a crash. The ledger is one directory:
 *
 *   ledger.log      records (ig_record.h), appended only
 *   checkpoint      newest signed checkpoint (ig_checkpoint.h), replaced by
 *                   temp file -> fsync -> rename -> fsync(dir)
 *   ch.key          cluster-head Ed25519 secret key, mode 0600 (ig_keyfile.h)
 *   ch.key.sealed   the same key sealed under the custody secret (ig_custody.h),
 *                   once `iotguard custody seal` removed ch.key
 *   lock            flock()ed by the single writer
 *
 * Durability: appends are queued to one writer thread that writes every
 * queued record, makes them durable with one fdatasync() for the whole batch
 * (group commit), writes a signed checkpoint covering them (temp file ->
 * fsync -> rename -> fsync(dir)), and only then reports them durable. So
 * every acknowledged record is covered by a durable signed checkpoint, and
 * removing or altering one is always detected as tampering. Callers on an
 * event loop (the plugin) use ig_ledger_submit() + ig_ledger_poll(); they
 * never wait on the disk. Tools use the blocking ig_ledger_append().
 *
 * Recovery at open: the log is scanned (ledger_scan.c: on a large log, on
 * two threads) and every frame, hash and chain link is checked, the Merkle root is recomputed and compared with the signed
 * checkpoint. A log holding fewer records than its checkpoint, or a bad frame
 * inside the checkpointed records, is tampering and fails the open. A bad
 * frame after the last checkpointed record, with nothing valid after it, is
 * a torn tail from a crash (never acknowledged): a writer cuts it off with a
 * warning. Anything else fails with an error naming the record.
 */
#ifndef IG_LEDGER_H
#define IG_LEDGER_H

#include "ig_common.h"
#include "ig_record.h"
#include "ig_checkpoint.h"

#include <sys/types.h>

typedef struct ig_ledger ig_ledger;

#define IG_LEDGER_LOG "ledger.log"
#define IG_LEDGER_CHECKPOINT "checkpoint"
#define IG_LEDGER_KEY "ch.key"
#define IG_LEDGER_LOCK "lock"

/* Creates dir (if absent) with a new cluster-head key, a genesis record and
 * a first checkpoint. Refuses if dir already holds a ledger. Fills ch_pk. */
int ig_ledger_init(const char *dir, const char *cluster, uint8_t ch_pk[IG_PK_BYTES], ig_error *err);
/* The same with a chosen format (ig_record.h: IG_FORMAT_V1 or IG_FORMAT_V2;
 * ig_ledger_init writes the newest). */
int ig_ledger_init_format(const char *dir, const char *cluster, unsigned version, uint8_t ch_pk[IG_PK_BYTES],
                          ig_error *err);

/* Called once per record, in order, while open() replays the log (and by
 * ig_ledger_scan). Return IG_OK to go on; anything else aborts the open with
 * that code (fill err to say why, e.g. "enroll of an id already active"). */
typedef int (*ig_record_fn)(void *ctx, const ig_record *rec, ig_error *err);

/* Progress while scanning large ledgers: records done, bytes done, bytes total. */
typedef void (*ig_progress_fn)(void *ctx, uint64_t records, uint64_t bytes, uint64_t total_bytes);

/* What the log holds, counted from the frame headers before anything is
 * checked, so a replay can size its tables once instead of doubling them
 * (and briefly holding both copies) as records arrive. Only a hint: the
 * frames are checked afterwards, and the count stops at the first header
 * that does not parse, so a damaged log can only make it smaller than what
 * the file's size allows. */
#define IG_LEDGER_CENSUS_TYPES 64
typedef struct ig_ledger_census {
	uint64_t records;                                  /* frames whose header parses */
	uint64_t bytes;                                    /* size of the log */
	uint64_t of_type[IG_LEDGER_CENSUS_TYPES];          /* frames per record type (types >= 64: only in records) */
	uint64_t body_bytes[IG_LEDGER_CENSUS_TYPES];       /* their body bytes, per type */
} ig_ledger_census;
typedef void (*ig_census_fn)(void *ctx, const ig_ledger_census *census);

/* Told about a record a few records before on_record gets it, on the same
 * thread, so the handler can start loading the memory it will touch (a
 * hash table slot far away in a big table): a hint, which must change
 * nothing. */
typedef void (*ig_record_hint_fn)(void *ctx, const ig_record *rec);

/* The writer's file I/O, replaceable so tests can inject faults (a full
 * disk, a failing fsync) without a special build. Each hook behaves like the
 * system call it replaces: it returns -1 with errno set on failure. `file`
 * names what is being written: IG_LEDGER_LOG, IG_LEDGER_CHECKPOINT_TMP, or
 * "." for the ledger directory. */
typedef struct ig_ledger_io {
	ssize_t (*pwrite)(void *ctx, const char *file, int fd, const void *buf, size_t len, off_t off);
	/* fdatasync() for IG_LEDGER_LOG, fsync() for the others */
	int (*sync)(void *ctx, const char *file, int fd);
	void *ctx;
} ig_ledger_io;

#define IG_LEDGER_CHECKPOINT_TMP "checkpoint.tmp"

typedef struct ig_ledger_open_opts {
	bool writer;                 /* take the lock, cut a torn tail, start the writer thread */
	/* Writer only. With no ch.key but a ch.key.sealed (a sealed cluster
	 * head, docs/PROTOCOL.md "A sealed cluster head"), open anyway: take the
	 * lock, check and replay everything, cut a torn tail, but start no
	 * writer thread; appends answer IG_ERR_SEALED until ig_ledger_unseal.
	 * False: such a ledger fails to open, saying it is sealed. */
	bool sealed_ok;
	ig_record_fn on_record;      /* may be NULL */
	void *ctx;
	ig_census_fn on_census;      /* may be NULL; called once with ctx, after the genesis record and the
	                                checkpoint are verified and before the first on_record */
	ig_record_hint_fn ahead;     /* may be NULL; see ig_record_hint_fn */
	ig_progress_fn progress;     /* may be NULL */
	void *progress_ctx;
	/* Writer tuning: records per batch (and per checkpoint); 0 = 4096. */
	uint32_t max_batch;
	/* NULL: the real system calls. Copied at open. */
	const ig_ledger_io *io;
} ig_ledger_open_opts;

int ig_ledger_open(ig_ledger **out, const char *dir, const ig_ledger_open_opts *opts, ig_error *err) IG_NODISCARD;

/* Shared mode (docs/LEDGER.md 16): records in PostgreSQL, keys in keydir. */
typedef struct ig_ledger_shared_opts {
	const char *dsn;                 /* libpq connection string; may list several hosts */
	const char *broker;              /* plugin_opt_broker_name: written with every record it appends */
	/* Records other writers appended, verified (frame, chain, hash, and a checkpoint signed by
	 * ch_pk whose root covers them), run on the ig_ledger_poll thread in index order,
	 * interleaved with this writer's completions so every record (own or foreign) reaches
	 * the caller exactly once and in index order. */
	ig_record_fn on_follow;
	void *follow_ctx;
	/* The writer thread's own copy of the state, for step 3 of an append (re-check the batch
	 * against the state including every record any broker appended). apply: like
	 * ig_state_apply, must change nothing when it refuses; reset: forget everything (the
	 * thread then re-applies every record from genesis; used after a COMMIT whose outcome is
	 * unknown and after reconnecting). Both run only on the writer thread. */
	int (*shadow_apply)(void *shadow_ctx, const ig_record *rec, ig_error *err);
	void (*shadow_reset)(void *shadow_ctx);
	void *shadow_ctx;
	/* Reconnect backoff after a lost connection: first, max (ms); 0 = 100 ms, 5000 ms. */
	uint32_t backoff_min_ms, backoff_max_ms;
	/* How often the follower looks at the head without a notification (safety net); 0 = 1000 ms. */
	uint32_t poll_ms;
} ig_ledger_shared_opts;

/* Opens the shared ledger: connects, reads every record (ig_pg_export), runs the same full check
 * as a file open (ig_ledger_scan_buffer; on_record/census/ahead/progress from opts), feeds every
 * record to shadow_apply too, loads the key from keydir (ch.key; or sealed_ok and ch.key.sealed,
 * as for files; the genesis ch_pk must match, compared in constant time), and starts its thread.
 * opts->writer must be true. Errors say what failed and what to do (unreachable, no ledger in
 * that database: "run iotguard init --dsn", key does not match: "copy ch.key from the broker that
 * made the ledger"). */
int ig_ledger_open_shared(ig_ledger **out, const char *keydir, const ig_ledger_open_opts *opts,
                          const ig_ledger_shared_opts *shared, ig_error *err) IG_NODISCARD;
/* True for a ledger opened with ig_ledger_open_shared. */
bool ig_ledger_is_shared(const ig_ledger *l);
/* Shared mode figures for stats (zeros in file mode). */
typedef struct ig_ledger_shared_stats {
	bool connected;
	uint64_t followed;            /* records of other writers applied */
	uint64_t conflicts;           /* own records refused by the re-check (IG_ERR_CONFLICT) */
	uint64_t reconnects;
	uint64_t follow_lag_us_last;  /* other writer's COMMIT (head.updated) -> our on_follow; last */
	uint64_t unavailable_refusals;/* submits refused while the database was unreachable */
} ig_ledger_shared_stats;
void ig_ledger_get_shared_stats(ig_ledger *l, ig_ledger_shared_stats *st);

/* Waits for every submitted record to be durable (their completions are
 * still delivered by the next ig_ledger_poll if the caller wants them; close
 * runs them), stops the writer, drops the lock. A batch held by a full disk
 * is given up: its records complete as IG_ERR_UNKNOWN or IG_ERR_NOSPACE. */
void ig_ledger_close(ig_ledger *l);

/* ---- facts ---- */
const char *ig_ledger_cluster(const ig_ledger *l);
const uint8_t *ig_ledger_ch_pk(const ig_ledger *l);
/* The cluster-head secret key (writer only; NULL for read-only opens and
 * while sealed). The plugin uses it for signing and boxes; never log it. */
const uint8_t *ig_ledger_ch_sk(const ig_ledger *l);
/* True while a writer open made with sealed_ok has no key: it holds the lock
 * and answers every read, but submit, append, sync and upgrade answer
 * IG_ERR_SEALED and no checkpoint is signed. */
bool ig_ledger_sealed(const ig_ledger *l);
/* Hands a sealed ledger its key (rebuilt by the custody service) and starts
 * the writer thread, which then signs any records a crash left past the
 * checkpoint. IG_ERR_CRYPTO when sk is not a well-formed Ed25519 key whose
 * public half is the genesis record's ch_pk (compared in constant time; the
 * ledger stays sealed); IG_ERR_STATE when the ledger is not sealed;
 * IG_ERR_IO when the thread cannot start (still sealed). sk is copied; the
 * caller wipes its own. Call it from the thread that owns the ledger (the
 * broker's); it does no disk I/O. */
int ig_ledger_unseal(ig_ledger *l, const uint8_t sk[IG_SK_BYTES], ig_error *err) IG_NODISCARD;
/* The ledger's format now (ig_record.h): the genesis record's, or 2 once a
 * format record moved it (docs/LEDGER.md 7.12). Only format 2 has tiles. */
unsigned ig_ledger_format(const ig_ledger *l);
/* Number of durable records (genesis included). */
uint64_t ig_ledger_height(const ig_ledger *l);
/* Hash of the newest durable record. */
void ig_ledger_head(const ig_ledger *l, uint8_t hash[IG_HASH_BYTES]);

/* Copies the newest signed checkpoint text (NUL-terminated) and its
 * parsed form. Returns text length. */
int ig_ledger_checkpoint(ig_ledger *l, char *out, size_t cap, ig_checkpoint *cp);

/* ---- appending ---- */

/* Completion, run on the thread that calls ig_ledger_poll. status is:
 *   IG_OK           the record and a signed checkpoint covering it are
 *                   durable (rec is the framed record: index, ts, hash);
 *   IG_ERR_UNKNOWN  a write or fsync failed after the record's bytes were
 *                   handed to the kernel: it may or may not be in the log at
 *                   the next open (rec holds the index and hash it has if it
 *                   is). Callers must answer "outcome unknown", never "it did
 *                   not happen";
 *   IG_ERR_NOSPACE  the disk was full and the record was never written;
 *   IG_ERR_IO, IG_ERR_NOMEM, IG_ERR_INVAL, IG_ERR_CLOSED
 *                   the record was not written and never will be.
 * rec is NULL for every status but IG_OK and IG_ERR_UNKNOWN. */
typedef void (*ig_append_done_fn)(void *ctx, int status, const ig_record *rec);

/* Queues a record; never blocks on disk. The body is copied. The writer
 * assigns index, timestamp and prev_hash. Returns IG_OK, IG_ERR_RANGE (body
 * too large), IG_ERR_CLOSED, IG_ERR_STATE (read-only open), IG_ERR_SEALED
 * (a sealed open, until ig_ledger_unseal), IG_ERR_NOSPACE
 * (the disk is full: the writer holds the batch that hit ENOSPC and retries
 * it by itself; new records are refused until it succeeds), IG_ERR_IO (an
 * earlier write or sync failed: the ledger takes no more records until it
 * is reopened), IG_ERR_NOMEM or IG_ERR_INVAL.
 *
 * Disk full: a batch whose write of the log or of the checkpoint failed
 * with ENOSPC (or EDQUOT) before any fsync failed is kept and rewritten,
 * byte for byte at the same offset, every 10 ms to 1 s until it succeeds;
 * its records are acknowledged then. Records queued behind it complete with
 * IG_ERR_NOSPACE. A failed fsync/fdatasync is never retried (the kernel may
 * have dropped the dirty pages): the ledger then refuses every record until
 * it is reopened. Acknowledged records are always there at the next open. */
int ig_ledger_submit(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_append_done_fn done, void *ctx);

/* Runs completions of records that became durable (or failed) since the last
 * call, in index order. Returns how many ran. Cheap when there are none. */
int ig_ledger_poll(ig_ledger *l);

/* Fd that becomes readable when ig_ledger_poll has work (an eventfd), for
 * callers with their own poll loop; -1 if unavailable. */
int ig_ledger_event_fd(const ig_ledger *l);

/* Set when a new checkpoint was written since the last call (clears it). */
bool ig_ledger_checkpoint_changed(ig_ledger *l);

/* Hands the writer thread a checkpoint that a witness quorum cosigned (this
 * ledger's signed checkpoint of `size` plus cosignature lines) to replace
 * DIR/tlog/checkpoint, which it does only if the tiles still end at that
 * size. Returns at once (no file I/O on the caller's thread); only the
 * newest text handed is written. IG_ERR_RANGE for a text over
 * IG_CHECKPOINT_MAX, IG_ERR_CLOSED when the ledger stops or failed. While
 * sealed the text is kept and written once ig_ledger_unseal starts the
 * writer thread. */
int ig_ledger_publish_cosigned(ig_ledger *l, const char *text, size_t len, uint64_t size);

/* Blocking append for tools: submits, waits until durable. Fills rec_out's
 * index/ts/hash if non-NULL (rec_out->body is not valid after return). */
int ig_ledger_append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                     ig_record *rec_out, ig_error *err);

/* Moves a format-1 ledger to format 2 (docs/LEDGER.md 7.12): appends the
 * format record, after which every checkpoint is format 2's SHA-256 tree
 * over all frames, and waits until it is durable. Reads the whole log
 * (twice); for `iotguard upgrade`, with no other writer. Refuses a ledger
 * that is format 2 already, or holds a frame over 65535 bytes. by is who
 * upgrades ("offline:<user>"). */
int ig_ledger_upgrade(ig_ledger *l, const char *by, ig_record *rec_out, ig_error *err);

/* Waits until everything submitted is durable and a checkpoint covers it.
 * IG_ERR_STATE on a read-only open, IG_ERR_SEALED while sealed (nothing can
 * be signed), IG_ERR_NOSPACE while the disk is full,
 * IG_ERR_IO once the writer has failed. */
int ig_ledger_sync(ig_ledger *l, ig_error *err);

/* ---- figures for stats ---- */
typedef struct ig_ledger_stats {
	uint64_t height;             /* durable records */
	uint64_t pending;            /* submitted, not yet durable */
	uint64_t batches;            /* fdatasync calls so far */
	uint64_t records_committed;  /* by this open */
	uint64_t last_commit_us;     /* submit -> durable latency of the newest batch's oldest record */
	uint64_t max_commit_us;
	uint64_t avg_commit_us;      /* mean over all records committed by this open */
	uint64_t checkpoint_size;    /* size covered by the newest checkpoint */
} ig_ledger_stats;
void ig_ledger_get_stats(ig_ledger *l, ig_ledger_stats *st);

/* ---- auditing (read-only; safe while a writer holds the ledger) ---- */
typedef struct ig_verify_result {
	uint64_t height;
	uint8_t head[IG_HASH_BYTES];
	uint8_t root[IG_HASH_BYTES];
	uint64_t checkpoint_size;
	uint64_t torn_bytes;         /* bytes past the last valid record (a torn tail) */
	char cluster[IG_CLUSTER_MAX + 1];
	unsigned format;             /* ledger format at the head (1 or 2) */
	uint64_t format_index;       /* the record that moved a format-1 ledger to 2; 0 if none */
} ig_verify_result;

/* Full check: frames, checksums, hashes, chain, genesis, checkpoint
 * signature, Merkle root at the checkpoint size. Calls on_record (if
 * non-NULL) for each record, in order. Error messages name the first bad
 * record: "ledger record 812: hash mismatch (tampered or corrupt)". */
int ig_ledger_verify(const char *dir, ig_record_fn on_record, void *ctx,
                     ig_progress_fn progress, void *progress_ctx,
                     ig_verify_result *res, ig_error *err) IG_NODISCARD;

/* The same full check on memory: log holds the bytes of a ledger.log,
 * checkpoint the text of its checkpoint file. Uses opts' on_record, ctx,
 * on_census, ahead and progress (the rest is ignored; opts may be NULL) and
 * answers as a read-only open would (a torn tail is reported in
 * res->torn_bytes and is not an error). Error messages name the ledger
 * "(memory)". For fuzzing and for tools that hold a ledger in memory. */
int ig_ledger_scan_buffer(const uint8_t *log, size_t log_len, const char *checkpoint, size_t checkpoint_len,
                          const ig_ledger_open_opts *opts, ig_verify_result *res, ig_error *err) IG_NODISCARD;

#endif
