/*
 * ledger_int.h: what the ledger's source files share, and nothing
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
 *   ledger_writer.c  the group-commit writer thread and the append API;
 *   ledger_pg.c      shared mode: the same object with its records in
 *                    PostgreSQL, its own thread, reached from the public
 *                    API through l->pg (ledger_tree.c keeps the tiles).
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
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
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

/* Defined in ledger_pg.c: shared mode's connection, queue and figures. */
typedef struct ledger_pg ledger_pg;

/* ---- queued appends, shared by both modes (ledger_writer.c) ---- */

/* A batch's buffer is capped so a burst of large bodies cannot make one
 * write (or one INSERT) allocate hundreds of megabytes. */
#define LEDGER_MAX_BATCH_BYTES (8u << 20)

/* A blocking append sleeps on its own semaphore, so a finished batch wakes
 * exactly the threads whose records it holds, never every waiter, and
 * never while the writer holds mu. A wakeup costs several microseconds on
 * a VM, so the file writer posts only the first waiter of a batch and each
 * woken waiter posts two more (a binary tree): the writer is back at its
 * next fdatasync after one post, and 64 waiters are awake after 6 rounds.
 * Shared mode posts every waiter itself (wake_a, wake_b stay NULL). */
typedef struct append_waiter {
	sem_t done;
	int status;
	ig_record rec;
	struct append_waiter *wake_a, *wake_b;  /* posted by this waiter once it wakes */
} append_waiter;

/* One entry of the queue and of the list ig_ledger_poll runs: this
 * writer's record (queued, then completed) or, in shared mode, a record
 * another writer appended (followed, verified). */
typedef struct append_node {
	struct append_node *next;
	ig_append_done_fn done;
	void *ctx;
	append_waiter *waiter;       /* blocking append; NULL for submit */
	uint64_t submit_us;          /* own: when submitted (latency figures) */
	uint64_t updated_us;         /* followed: head.updated of the head that brought it */
	bool followed;
	int status;
	uint16_t type;
	uint32_t body_len;           /* own: body bytes; followed: frame bytes */
	ig_record rec;
	uint8_t body[];              /* own: the body; followed: the whole frame (rec.body points into it) */
} append_node;

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
	/* Shared mode (ledger_pg.c): the records live in PostgreSQL and this
	 * object's facts follow the database's head; NULL for a file ledger. */
	ledger_pg *pg;
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
/* The same from the log's bytes in memory (map[0, end)): shared mode has
 * no ledger.log, only the records it read from PostgreSQL. */
LEDGER_INTERNAL int ledger_tiles_start_map(ig_ledger *l, const uint8_t *map, uint64_t end, uint64_t cp_last_off,
                                           ig_error *err);

/* ---- the object's life (ledger.c), shared by both modes ---- */

LEDGER_INTERNAL ig_ledger *ledger_alloc(const char *dir);
LEDGER_INTERNAL void ledger_free(ig_ledger *l);
/* Opens l->dir (l->dir_fd) and, with lock, takes its single-writer lock (l->lock_fd). */
LEDGER_INTERNAL int ledger_open_dir(ig_ledger *l, bool lock, ig_error *err);
/* Reads the key as a writer open does (ch.key; or, with sealed_ok, no key
 * while only ch.key.sealed is there): fills l->ch_sk, l->sealed, key_pk and
 * *sealed. l->dir_fd must be open. */
LEDGER_INTERNAL int ledger_load_key(ig_ledger *l, bool sealed_ok, uint8_t key_pk[IG_PK_BYTES], bool *sealed,
                                    ig_error *err);
/* Takes the facts of a successful scan into l (cluster, key, head, checkpoint, tree). */
LEDGER_INTERNAL void ledger_adopt_scan(ig_ledger *l, const ledger_scan_out *so);

/* ---- shared mode (ledger_pg.c): what the public API dispatches to ---- */

LEDGER_INTERNAL void ledger_pg_stop(ig_ledger *l);
LEDGER_INTERNAL void ledger_pg_free(ledger_pg *p);
LEDGER_INTERNAL int ledger_pg_submit(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                                     ig_append_done_fn done, void *ctx);
LEDGER_INTERNAL int ledger_pg_poll(ig_ledger *l);
LEDGER_INTERNAL int ledger_pg_append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len,
                                     ig_record *rec_out, ig_error *err);
LEDGER_INTERNAL int ledger_pg_sync(ig_ledger *l, ig_error *err);
LEDGER_INTERNAL int ledger_pg_publish_cosigned(ig_ledger *l, const char *text, size_t len, uint64_t size);

/* ---- queue, completions and blocking appends (ledger_writer.c), shared by both modes ---- */

/* The record (index, hash) is reported for IG_OK and for IG_ERR_UNKNOWN: in
 * the second case it is what the record is if it turns out to be there. */
static inline bool ledger_status_has_record(int status)
{
	return status == IG_OK || status == IG_ERR_UNKNOWN;
}

/* A batch's timestamp: now, but never before the last record's, even if
 * the clock goes backwards. */
static inline uint64_t ledger_batch_ts(const ig_ledger *l)
{
	uint64_t ts = ig_now_ms();
	return ts < l->last_ts ? l->last_ts : ts;
}

/* Appends n to the list *head..*tail. */
static inline void ledger_list_push(append_node **head, append_node **tail, append_node *n)
{
	n->next = NULL;
	if (*tail)
		(*tail)->next = n;
	else
		*head = n;
	*tail = n;
}

/* Holds a witness-cosigned checkpoint for the thread that owns the tiles
 * (the newest only); see ledger_publish_cosigned_locked. */
static inline void ledger_hold_cosigned_locked(ig_ledger *l, const char *text, size_t len, uint64_t size)
{
	memcpy(l->cosigned_text, text, len);
	l->cosigned_len = len;
	l->cosigned_size = size;
	l->cosigned_pending = true;
}

/* A node for an own record (type, a copy of body), stamped with the submit time. */
LEDGER_INTERNAL append_node *ledger_node_new(uint16_t type, const uint8_t *body, size_t len);
/* Frames n's record (index, ts, prev_hash, then its hash) into l->wbuf at
 * pos; returns the frame's length, or ig_record_encode's negative code. */
LEDGER_INTERNAL int ledger_encode_node(ig_ledger *l, append_node *n, uint64_t index, uint64_t ts,
                                       const uint8_t prev[IG_HASH_BYTES], size_t pos);
/* Appends n to the queue (the caller has decided to accept it) and counts it pending. */
LEDGER_INTERNAL void ledger_queue_push_locked(ig_ledger *l, append_node *n);
/* Group commit: takes everything queued up to max_batch records and
 * LEDGER_MAX_BATCH_BYTES; *count gets how many. The queue must not be empty. */
LEDGER_INTERNAL append_node *ledger_take_batch_locked(ig_ledger *l, size_t *count);
/* Grows l->wbuf to hold the frames of the list at head; *need gets their
 * length. IG_ERR_NOMEM (buffer unchanged) when it cannot. */
LEDGER_INTERNAL int ledger_wbuf_fit(ig_ledger *l, const append_node *head, size_t *need);
/* Adds n to the list ig_ledger_poll runs. */
LEDGER_INTERNAL void ledger_done_push_locked(ig_ledger *l, append_node *n);
/* Completes n with status: a blocking append's waiter gets it, a submit's
 * node goes to the list ig_ledger_poll runs. */
LEDGER_INTERNAL void ledger_complete_locked(ig_ledger *l, append_node *n, int status);
LEDGER_INTERNAL void ledger_complete_list_locked(ig_ledger *l, append_node *n, int status);
/* Fails every queued record (never written) with status. */
LEDGER_INTERNAL void ledger_fail_queue_locked(ig_ledger *l, int status);
/* Tells ig_ledger_poll's caller (eventfd) and ig_ledger_sync's waiters. */
LEDGER_INTERNAL void ledger_notify_locked(ig_ledger *l);
/* Counts an acknowledged record's submit-to-durable time in the stats;
 * first: the batch's first record (last_commit_us). */
LEDGER_INTERNAL void ledger_count_latency_locked(ig_ledger *l, const append_node *n, uint64_t now, bool first);
/* ig_ledger_poll's first half: the entries finished since the last call,
 * or NULL; costs no lock and no system call when nothing happened. */
LEDGER_INTERNAL append_node *ledger_take_done(ig_ledger *l);
/* Runs an own record's completion callback and frees n. */
LEDGER_INTERNAL void ledger_run_done(append_node *n);
/* Writes the held witness-cosigned checkpoint over DIR/tlog/checkpoint
 * while the tiles still end at its size. Called with mu held, by the
 * thread that owns the tiles; releases mu while it writes. */
LEDGER_INTERNAL void ledger_publish_cosigned_locked(ig_ledger *l);

/* Queues n with enqueue and sleeps until it completes: the blocking append
 * of both modes. enqueue returns IG_OK or why n was refused (n is then
 * still the caller's); explain(l, code, index, err) says why a record was
 * refused or not written (index: the record's, for IG_ERR_UNKNOWN). n is
 * freed in every case. */
typedef int (*ledger_enqueue_fn)(ig_ledger *l, append_node *n);
typedef int (*ledger_explain_fn)(ig_ledger *l, int rc, uint64_t index, ig_error *err);
LEDGER_INTERNAL int ledger_append_wait(ig_ledger *l, append_node *n, ledger_enqueue_fn enqueue,
                                       ledger_explain_fn explain, ig_record *rec_out, ig_error *err);

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
