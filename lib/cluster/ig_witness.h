/*
 * ig_witness.h: a witness's decision on a checkpoint (C2SP tlog-witness
 * add-checkpoint), its durable state, and the request/answer texts.
 *
 * Why this exists: a cluster head that signs two different trees of the same
 * size, or rolls its log back, can show each device its own history. A
 * witness remembers the latest tree it cosigned and cosigns a new one only
 * with a consistency proof from it, so a fork or a rollback cannot collect
 * the cosignatures a device requires. The decision is a pure function of
 * (stored state, request, keys, time) with no broker and no disk, so every
 * outcome is unit-tested; the state file codec is here too, strict, because
 * a witness that silently started over could cosign a fork.
 *
 * Outcomes are the tlog-witness HTTP status codes, so the protocol maps 1:1:
 *   200 ok: cosignature line(s), and the new state to persist BEFORE answering
 *   400 bad request: malformed, or old size > checkpoint size
 *   403 forbidden: no valid signature by the log's key
 *   404 not found: the checkpoint's origin is not the log this witness follows
 *   409 conflict: old size != the size last cosigned (answer carries that size)
 *   422 unprocessable: bad consistency proof, a proof with old size 0, a size-0
 *       tree whose root is not the empty hash, or the same size with another
 *       root (a fork)
 *
 * Atomicity: the caller runs ig_witness_add_checkpoint and
 * ig_witness_state_save for one request at a time (one lock around both), or
 * two racing requests could roll the stored size back (tlog-witness).
 */
#ifndef IG_WITNESS_H
#define IG_WITNESS_H

#include "ig_common.h"
#include "ig_cosig.h"

#define IG_WITNESS_PROOF_MAX 63        /* consistency proof lines a request may carry (tlog-witness) */
#define IG_WITNESS_ANSWER_MAX 1024     /* the signature lines of a 200 answer */
#define IG_WITNESS_STATE_FILE_MAX 512  /* a state file is far smaller; anything larger is refused */

typedef enum ig_witness_outcome {
	IG_WITNESS_OK = 200,
	IG_WITNESS_BAD_REQUEST = 400,
	IG_WITNESS_FORBIDDEN = 403,
	IG_WITNESS_UNKNOWN_ORIGIN = 404,
	IG_WITNESS_CONFLICT = 409,
	IG_WITNESS_UNPROCESSABLE = 422,
} ig_witness_outcome;

/* The latest checkpoint this witness cosigned for its log. A witness that
 * never cosigned holds size 0 and the empty tree's root. */
typedef struct ig_witness_state {
	char origin[IG_COSIG_NAME_MAX + 1];
	uint64_t size;
	uint8_t root[IG_HASH_BYTES];     /* RFC 6962 SHA-256 root */
} ig_witness_state;

/* An add-checkpoint request. checkpoint points at the signed checkpoint text
 * (into the parsed request text, or the caller's buffer). */
typedef struct ig_witness_request {
	uint64_t old_size;
	uint8_t proof[IG_WITNESS_PROOF_MAX][IG_HASH_BYTES];
	size_t proof_len;
	const char *checkpoint;
	size_t checkpoint_len;
} ig_witness_request;

typedef struct ig_witness_answer {
	ig_witness_outcome outcome;
	uint64_t known_size;               /* 409: the size this witness last cosigned */
	ig_witness_state state;            /* 200: what the witness must persist before answering */
	char lines[IG_WITNESS_ANSWER_MAX]; /* 200: "\u2014 <name> <base64>\n" lines, NUL-terminated */
	size_t lines_len;
} ig_witness_answer;

/* The state of a witness that never cosigned for origin: size 0, root
 * SHA-256(""). Only for a witness set up anew; never to replace a state
 * file that cannot be read. */
int ig_witness_state_init(ig_witness_state *st, const char *origin);

/* Decides one add-checkpoint request. log_key is the log's key (type 0x01,
 * name = origin, as the cluster head signs); st must be this log's state.
 * witness_name/witness_sk sign the cosignature at time now (POSIX seconds,
 * >= 1); the key is only read. Returns the outcome (>= 200, ans filled,
 * err says why for a refusal) or a negative IG_ERR_* when the call itself
 * is wrong (bad arguments, a state of another log). */
int ig_witness_add_checkpoint(ig_witness_answer *ans, const ig_witness_state *st, const ig_witness_request *req,
                              const ig_cosig_vkey *log_key, const char *witness_name,
                              const uint8_t witness_sk[IG_SK_BYTES], uint64_t now, ig_error *err) IG_NODISCARD;

/* The request text: "old <N>\n", one base64 proof hash per line, "\n", then
 * the checkpoint. Returns the length (NUL-terminated) or IG_ERR_*. */
int ig_witness_request_encode(char *out, size_t cap, const ig_witness_request *req);

/* Strict parse of a request text; req->checkpoint points into text.
 * IG_ERR_INVAL (answer 400) with the reason otherwise. */
int ig_witness_request_parse(ig_witness_request *req, const char *text, size_t len, ig_error *err) IG_NODISCARD;

/* The answer body tlog-witness defines for ans->outcome: the signature lines
 * for 200, "<known size>\n" (text/x.tlog.size) for 409, empty otherwise.
 * Returns the length (NUL-terminated) or IG_ERR_*. */
int ig_witness_answer_encode(char *out, size_t cap, const ig_witness_answer *ans);

/* Parses an answer body received with status (one of the outcomes): for
 * 200, one or more well-formed signature lines; for 409, the size line.
 * Signatures are not checked here (ig_cosig_verify_line does). */
int ig_witness_answer_parse(ig_witness_answer *ans, int status, const char *body, size_t len,
                            ig_error *err) IG_NODISCARD;

/* The state file text:
 *   "iotguard-witness-state/v1\norigin <origin>\nsize <N>\nroot <base64>\n"
 *   "sha256 <64 hex of SHA-256 of the four lines above>\n"
 * Returns the length (NUL-terminated) or IG_ERR_*. */
int ig_witness_state_encode(char *out, size_t cap, const ig_witness_state *st);
/* Strict parse: any other byte, a damaged line or a checksum mismatch is
 * IG_ERR_CORRUPT with a message telling the operator not to start over. */
int ig_witness_state_parse(ig_witness_state *st, const char *text, size_t len, ig_error *err) IG_NODISCARD;

/* Durable replace: <path>.tmp (mode 0600, never through a symlink), write,
 * fsync, rename over path, fsync the directory. On failure the old file is
 * intact. */
int ig_witness_state_save(const char *path, const ig_witness_state *st, ig_error *err) IG_NODISCARD;
/* Reads and parses path. IG_ERR_NOTFOUND if it does not exist (the caller
 * decides whether this witness is new), IG_ERR_CORRUPT if it is damaged,
 * IG_ERR_IO otherwise; never a default state. */
int ig_witness_state_load(ig_witness_state *st, const char *path, ig_error *err) IG_NODISCARD;

#endif
