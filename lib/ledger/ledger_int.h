/*
 * ledger_int.h: what the ledger's three source files share, and nothing
 * callers may see.
 *
 * Why this exists: the ledger is split the way Redis splits bio.c from
 * rio.c, by concept rather than by caller:
 *
 *   ledger.c         the directory and its files (open, lock, key, atomic
 *                    checkpoint replacement), ig_ledger_open/close, init,
 *                    verify and the facts of an open ledger;
 *   ledger_scan.c    the full check of a log: frames, chain, genesis, the
 *                    Merkle root against the signed checkpoint, torn tails,
 *                    on a file's mapping or on a buffer;
 *   ledger_writer.c  the group-commit writer thread and the append API.
 *
 * They must agree byte for byte on the object and on the file helpers, so
 * the object's layout and those helpers are declared once, here. This header
 * is private to lib/ledger*.c; the public API stays in ig_ledger.h.
 */
#ifndef IG_LEDGER_INT_H
#define IG_LEDGER_INT_H

#include "ig_checkpoint.h"
#include "ig_ledger.h"
#include "ig_merkle.h"
#include "ig_record.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

/* Keeps the helpers below out of the plugin's exported symbols. */
#define LEDGER_INTERNAL __attribute__((visibility("hidden")))

/* ledger.log and checkpoint hold nothing secret (they are what auditors
 * verify), so they are created 0644 less the creating process's umask: the
 * operator's umask decides whether others may read them. ch.key is always
 * 0600 (ig_keyfile.h); a directory init creates is 0700 less the umask. */
#define LEDGER_FILE_MODE 0644

/* The Merkle tree's hash for a ledger format (ig_record.h). */
static inline ig_merkle_hash ledger_tree_hash(unsigned version)
{
	return version >= IG_FORMAT_V2 ? IG_MERKLE_SHA256 : IG_MERKLE_BLAKE2B;
}

/* The largest frame a format allows (format 2: one tlog entry). */
static inline uint32_t ledger_max_frame(unsigned version)
{
	return version >= IG_FORMAT_V2 ? IG_FORMAT_V2_MAX_FRAME : IG_REC_MAX_BODY + IG_REC_OVERHEAD;
}

/* ---- files (ledger.c) ---- */

/* The real system calls, used when ig_ledger_open_opts.io is NULL and by init. */
LEDGER_INTERNAL extern const ig_ledger_io ledger_sys_io;

/* ENOSPC and EDQUOT both mean "no room now, nothing lost": worth a retry. */
LEDGER_INTERNAL bool ledger_errno_is_full(int e);

/* Writes len bytes at off through io; *done (if non-NULL) gets how many were
 * accepted before a failure (errno says why). Returns 0 or -1. */
LEDGER_INTERNAL int ledger_pwrite_all(const ig_ledger_io *io, const char *file, int fd, const uint8_t *buf,
                                      size_t len, uint64_t off, size_t *done);

/* Replaces the checkpoint atomically (temp file -> fsync -> rename ->
 * fsync(dir)). IG_ERR_NOSPACE when the disk was full before any fsync (the
 * old checkpoint is intact and a retry is safe), IG_ERR_IO otherwise. */
LEDGER_INTERNAL int ledger_write_checkpoint_file(const ig_ledger_io *io, int dir_fd, const char *dir,
                                                 const char *text, size_t len, ig_error *err);

/* Reads the checkpoint file into out (IG_CHECKPOINT_MAX + 1 bytes),
 * NUL-terminated; a missing or oversized file is IG_ERR_CORRUPT. */
LEDGER_INTERNAL int ledger_read_checkpoint_file(int dir_fd, const char *dir, char *out, size_t *len,
                                                ig_error *err);

/* ---- scan (ledger_scan.c) ---- */

typedef struct ledger_scan_in {
	const char *dir;                /* names the ledger in messages */
	int dir_fd;
	int log_fd;
	/* Set: scan these bytes and this checkpoint text instead of the files. */
	const uint8_t *buf;
	size_t buf_len;
	const char *cp_text;
	size_t cp_len;
	const uint8_t *expect_pk;       /* writer: ch.key's public key; NULL otherwise */
	bool tree_from_tiles;           /* format 2: take the tree from checked tiles (ledger_tree.c) */
	ig_record_fn on_record;
	void *ctx;
	ig_census_fn on_census;
	ig_record_hint_fn ahead;
	ig_progress_fn progress;
	void *progress_ctx;
} ledger_scan_in;

typedef struct ledger_scan_out {
	ig_genesis genesis;
	char origin[IG_CLUSTER_MAX + 16];
	ig_checkpoint cp;
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	uint64_t height;
	uint8_t head[IG_HASH_BYTES];
	ig_merkle_acc acc;
	unsigned version;               /* the format at the end: the genesis's, or 2 after a format record */
	uint64_t format_index;          /* index of the format record (7.12), 0 if none */
	uint64_t cp_last_off;           /* offset of record cp.size - 1 */
	bool tree_from_tiles;           /* the tree came from the tiles, not from hashing the log */
	uint64_t good_bytes;            /* end of the last valid record */
	uint64_t torn_bytes;
	uint64_t torn_index;            /* index the torn record would have had */
	uint64_t last_ts;
} ledger_scan_out;

/* The full check shared by open(), verify() and ig_ledger_scan_buffer():
 * reads the checkpoint, then maps the log (or takes in->buf) and checks
 * every record. A torn tail is reported in
 * out->torn_bytes (IG_OK); tampering fails naming the record. */
LEDGER_INTERNAL int ledger_scan(const ledger_scan_in *in, ledger_scan_out *out, ig_error *err);

/* Fills what an audit reports from a successful scan (ledger.c). */
LEDGER_INTERNAL void ledger_scan_result(const ledger_scan_out *so, ig_verify_result *res);

/* ---- the ledger object ---- */

/* ---- the format-2 tree at open, and the tiles (ledger_tree.c) ---- */

/* Format 2's tree of map[0, end) from the tiles of dir, checked against the
 * signed checkpoint cp (the record at cp_last_off is record cp->size - 1),
 * then the leaves of the records after it. An error means the tiles cannot
 * be used; the caller hashes the log instead. */
LEDGER_INTERNAL int ledger_tree_from_tiles(const char *dir, const ig_checkpoint *cp, const uint8_t *map,
                                           size_t cp_last_off, size_t end, ig_merkle_acc *acc, ig_error *err);

/* Format 2's tree of every frame in map[0, end), and its root at cp_size. */
LEDGER_INTERNAL void ledger_tree_from_log(const uint8_t *map, size_t end, uint64_t cp_size, ig_merkle_acc *acc,
                                          uint8_t root_at_cp[IG_HASH_BYTES]);

/* Defined in ledger_writer.c: queued appends and blocking waiters. */
typedef struct append_node append_node;
typedef struct append_waiter append_waiter;

struct ig_ledger {
	char *dir;
	int dir_fd, log_fd, lock_fd, event_fd;
	bool writer;
	/* A writer open with no key yet (ig_ledger_open_opts.sealed_ok): no
	 * writer thread runs and nothing is signed until ig_ledger_unseal
	 * clears it. Read by submitters on any thread, hence atomic. */
	atomic_bool sealed;
	char cluster[IG_CLUSTER_MAX + 1];
	char origin[IG_CLUSTER_MAX + 16];
	_Atomic unsigned version;    /* ledger format: the genesis record's, or 2 once upgraded */
	uint8_t ch_pk[IG_PK_BYTES];
	uint8_t ch_sk[IG_SK_BYTES];
	uint32_t max_batch;
	ig_ledger_io io;

	pthread_mutex_t mu;
	pthread_cond_t work_cond;    /* the writer waits here for work */
	pthread_cond_t done_cond;    /* ig_ledger_sync waits here */
	pthread_t thread;
	bool thread_started;         /* guarded by mu: thread is joinable */
	bool thread_running;         /* guarded by mu: it has not decided to exit */

	/* Guarded by mu. */
	append_node *queue_head, *queue_tail;
	append_node *done_head, *done_tail;
	uint64_t queued;             /* nodes in queue_head..queue_tail */
	size_t wake_writer_at;       /* 0: writer busy; else signal it at this queue length */
	bool in_flight;              /* a batch is being written or waits for disk space */
	bool stopping;
	bool failed;
	bool nospace;                /* the held batch waits for disk space */
	bool event_pending;
	/* Not guarded: the broker's loop checks these on every pass, so they
	 * must cost no lock and no system call when nothing happened. */
	atomic_bool poll_work;
	atomic_bool checkpoint_changed;
	int sync_waiters;
	uint8_t head[IG_HASH_BYTES];
	char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	ig_checkpoint cp;
	/* A witness-cosigned checkpoint for DIR/tlog/checkpoint, handed by
	 * ig_ledger_publish_cosigned to the writer thread (the newest only). */
	bool cosigned_pending;
	char cosigned_text[IG_CHECKPOINT_MAX + 1];
	size_t cosigned_len;
	uint64_t cosigned_size;
	uint64_t pending;
	uint64_t batches;
	uint64_t records_committed;
	uint64_t last_commit_us, max_commit_us, latency_sum_us;
	uint64_t nospace_events;
	_Atomic uint64_t height;     /* read lock-free by ig_ledger_height */

	/* Owned by the writer thread (and by open before it starts). */
	append_waiter **wake;        /* blocking appends to post once mu is released */
	size_t wake_n, wake_cap;
	ig_merkle_acc acc;           /* every record in the log that is durable */
	ig_merkle_acc acc_tmp;
	uint64_t log_end;
	uint64_t last_ts;
	uint64_t fsync_avg_us;       /* moving average of fdatasync time */
	uint64_t gather_us;          /* see writer_main */
	uint8_t *wbuf;
	size_t wcap;
	/* Format 2: the tiles (NULL if they could not be written), and each
	 * batch's leaves and frames for them. */
	struct ig_tiles *tiles;
	uint8_t (*tleaf)[IG_HASH_BYTES];
	const uint8_t **tentry;
	size_t *tlen;
	size_t tcap;
};

/* Opens the writer's tiles at the checkpoint and brings them to the log's
 * height (the record at cp_last_off is the checkpoint's last), rebuilding
 * them from the log when they do not check out. Format 1: nothing. */
LEDGER_INTERNAL int ledger_tiles_start(ig_ledger *l, uint64_t cp_last_off, ig_error *err);

/* ---- writer (ledger_writer.c) ---- */

/* Creates the completion eventfd and, unless the ledger is sealed, starts
 * the writer thread; open calls it last, once the scan has filled the
 * object. The thread exits when idle and the next append starts it again
 * (ledger_writer.c). */
LEDGER_INTERNAL int ledger_writer_start(ig_ledger *l, ig_error *err);

/* ig_ledger_unseal's second half, once sk is checked: under mu, installs sk
 * as the key, clears sealed and starts the writer thread; on failure the
 * ledger is sealed again with no key. */
LEDGER_INTERNAL int ledger_writer_unseal(ig_ledger *l, const uint8_t sk[IG_SK_BYTES], ig_error *err);

/* Lets the writer finish what was submitted (or give up a batch held by a
 * full disk), joins it and runs the remaining completions. No-op if it never
 * started. */
LEDGER_INTERNAL void ledger_writer_stop(ig_ledger *l);

#endif
