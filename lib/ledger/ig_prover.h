/*
 * ig_prover.h: a worker thread that makes inclusion and consistency proofs
 * from a format-2 ledger's tiles, off the broker's event loop.
 *
 * Why this exists: devices ask the cluster head for proofs (docs/PROTOCOL.md,
 * "Log proofs"). One proof reads a handful of tiles from disk and hashes up
 * to a few hundred nodes, which must never run in a broker callback. The
 * caller (the plugin's proof service) hands a job to the queue and collects
 * it, finished, from its tick; a full queue is refused at once, so a burst
 * of requests costs the broker nothing but the refusals.
 *
 * A job names the signed checkpoint its proof must lead to (the caller's
 * current one: the ledger writes the tiles of a size before it signs it, so
 * they exist). Every proof is checked against that checkpoint's root before
 * it is handed back (ig_proof_*_verify): a missing, short or damaged tile
 * gives a job with status IG_ERR_NOTFOUND or IG_ERR_CORRUPT and a message,
 * never a wrong proof. Such a failure is retriable: the writer rewrites
 * the tiles at its next open, and a newer checkpoint reads other tiles.
 *
 * Thread model: ig_prover_submit, ig_prover_take and the figures are called
 * from one thread (the broker's); the worker owns its tiles reader.
 */
#ifndef IG_PROVER_H
#define IG_PROVER_H

#include "ig_common.h"
#include "ig_checkpoint.h"
#include "ig_proof.h"
#include "ig_tiles.h"

typedef enum ig_prover_kind {
	IG_PROVER_INCLUSION = 1,     /* record `index` in the checkpoint's tree */
	IG_PROVER_CONSISTENCY = 2,   /* tree of `from` leaves -> tree of `to` leaves */
} ig_prover_kind;

#define IG_PROVER_NONCE_MAX 64

typedef struct ig_prover_job {
	/* ---- filled by the caller ---- */
	ig_prover_kind kind;
	uint64_t index;                       /* inclusion */
	uint64_t from, to;                    /* consistency: from <= to <= cp.size */
	ig_checkpoint cp;                     /* the signed checkpoint (parsed) the proof leads to */
	char *checkpoint;                     /* its text, NUL-terminated, owned by the job */
	size_t checkpoint_len;
	/* The caller's labels, handed back untouched (who asked, what to echo). */
	char requester[IG_ID_MAX + 1];
	char nonce[IG_PROVER_NONCE_MAX + 1];

	/* ---- filled by the prover ---- */
	int status;                           /* IG_OK, or why there is no proof */
	char message[256];                    /* what failed, when status != IG_OK */
	uint8_t *entry;                       /* inclusion: the record's frame, owned by the job */
	size_t entry_len;
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t path_len;
	uint64_t queued_us, done_us;          /* monotonic: submit and completion */
} ig_prover_job;

/* A job for kind with a copy of the checkpoint text (len bytes) and its
 * parsed form; NULL when out of memory or the text is over
 * IG_CHECKPOINT_MAX. */
ig_prover_job *ig_prover_job_new(ig_prover_kind kind, const char *checkpoint, size_t len, const ig_checkpoint *cp);
void ig_prover_job_free(ig_prover_job *job);

typedef struct ig_prover ig_prover;

/* A prover for the tiles of ledger_dir (DIR/tlog). queue_max jobs may wait
 * or run at once (>= 1). Its worker thread starts with the first job and
 * exits after a second with none, so a broker that serves no proofs stays
 * single-threaded. */
IG_NODISCARD int ig_prover_new(ig_prover **out, const char *ledger_dir, size_t queue_max, ig_error *err);

/* Hands job to the worker (the prover owns it until ig_prover_take returns
 * it), starting the worker if it is not running. IG_ERR_RANGE when
 * queue_max jobs are already queued, running or finished and not taken back,
 * IG_ERR_NOMEM when no worker thread could be started (either way the caller
 * keeps job and answers "busy, retry"), IG_ERR_INVAL for a job whose sizes
 * are out of its checkpoint (index >= size, from > to, to > size) or an
 * unknown kind. */
IG_NODISCARD int ig_prover_submit(ig_prover *p, ig_prover_job *job);

/* True when a finished job is waiting: one atomic load, for every tick. */
bool ig_prover_ready(const ig_prover *p);
/* The oldest finished job, or NULL; the caller frees it. */
ig_prover_job *ig_prover_take(ig_prover *p);
/* Readable (an eventfd) when a finished job is waiting, for callers with
 * their own poll loop; ig_prover_take clears it once none is left. */
int ig_prover_event_fd(const ig_prover *p);

/* Jobs queued or running, not yet taken back as finished. */
size_t ig_prover_depth(const ig_prover *p);

/* Stops the worker (after the job it is running) and frees every job not
 * taken. */
void ig_prover_free(ig_prover *p);

/* Makes the proof of job synchronously, on the calling thread, with the
 * caller's reader (reopened at the job's size if it is NULL or at another
 * size; closed and set to NULL after a tile error, so the next job does not
 * read a damaged tile from the cache). This is the worker's step, public
 * for the benchmark and the tests. Sets job->status and job->message. */
void ig_prover_run(const char *ledger_dir, ig_tiles_reader **reader, ig_prover_job *job);

#endif
