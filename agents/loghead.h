/*
 * loghead.h: what a device remembers of the cluster's log, and the checks
 * that let it tell a log that grew from one that was forked or rolled back.
 *
 * Why this exists: a checkpoint signed by the cluster head proves only that
 * the cluster head said it. A cluster head (or whoever holds its key) could
 * show this device one history and other devices another, or roll history
 * back to before a revocation. A device that keeps the last checkpoint it
 * accepted, and accepts a newer one only with a consistency proof from it,
 * cannot be shown a fork or a rollback without noticing; two signed
 * checkpoints it cannot reconcile are evidence it keeps for a human.
 *
 * These are the pure parts of the agent's log duty (duty_log.c): the head
 * and refusal files, the comparison of two checkpoints and the checks of the
 * cluster head's proof answers (docs/PROTOCOL.md, "Log proofs" and "Checking
 * the log on the device"). No MQTT here, so the unit tests drive them with
 * the protocol's own examples.
 */
#ifndef IG_LOGHEAD_H
#define IG_LOGHEAD_H

#include "ig_checkpoint.h"
#include "ig_common.h"
#include "ig_cosig.h"

struct cJSON;

#define IG_LOGHEAD_SUFFIX ".head"                  /* KEYFILE.head: the accepted checkpoint, verbatim */
#define IG_LOGHEAD_REFUSED_SUFFIX ".head.refused"  /* KEYFILE.head.refused: why the log was refused */
#define IG_LOGHEAD_REFUSED_MAGIC "iotguard-agent log refusal v1"
#define IG_LOGHEAD_DETAIL_MAX 320

/* Whom the device trusts to sign the log: the pinned cluster-head key under
 * the cluster's origin and, optionally, a quorum of witnesses. */
typedef struct ig_loghead_trust {
	char origin[IG_CLUSTER_MAX + 16];              /* "iotguard/<cluster>" */
	uint8_t ch_pk[IG_PK_BYTES];
	ig_cosig_vkey witnesses[IG_CHECKPOINT_COSIGS_MAX];
	size_t nwitnesses;
	size_t quorum;                                 /* 0: witnesses are not required */
} ig_loghead_trust;

/* A checkpoint whose cluster-head signature verified. */
typedef struct ig_loghead {
	ig_checkpoint cp;
	size_t cosigned;                               /* valid cosignatures of trust->witnesses */
	size_t len;
	char text[IG_CHECKPOINT_MAX];                  /* as signed, NUL-terminated */
} ig_loghead;

/* Fills trust's origin and key. IG_ERR_INVAL for a bad cluster name. */
int ig_loghead_trust_init(ig_loghead_trust *trust, const char *cluster, const uint8_t ch_pk[IG_PK_BYTES]);

/* Checks text's signature by the cluster head and counts the witnesses'
 * cosignatures into out. IG_ERR_CRYPTO (a bad signature, or a witness line
 * that claims a trusted key and fails), IG_ERR_RANGE (too long), or the
 * parser's IG_ERR_CORRUPT / IG_ERR_INVAL, with err saying which. */
int ig_loghead_parse(ig_loghead *out, const ig_loghead_trust *trust, const char *text, size_t len,
                     ig_error *err) IG_NODISCARD;

/* True if h carries the quorum of cosignatures the device requires. */
bool ig_loghead_witnessed(const ig_loghead *h, const ig_loghead_trust *trust);

/* How a candidate checkpoint relates to the accepted one. */
typedef enum {
	IG_LOGHEAD_FIRST,   /* nothing accepted yet */
	IG_LOGHEAD_SAME,    /* same size and root */
	IG_LOGHEAD_NEWER,   /* larger: needs a consistency proof from the accepted size */
	IG_LOGHEAD_OLDER,   /* smaller: is it a prefix of the accepted tree? (a rollback if the cluster head cannot show it) */
	IG_LOGHEAD_FORK,    /* same size, another root: two signed trees that cannot both be the log */
} ig_loghead_relation;
ig_loghead_relation ig_loghead_compare(const ig_loghead *accepted, const ig_loghead *cand);

/* Checks a log_inclusion_proof answer for the device's own enrolment: the
 * checkpoint verifies (into cp_out); the entry is the frame of an `enroll`
 * record of `id` with public key `pk` whose header index is the answer's
 * `index`; and SHA-256(0x00 || entry) is at that index in the checkpoint's
 * tree. *index gets the record's index.
 *   IG_OK          proven
 *   IG_ERR_INVAL   the answer is malformed (not evidence of anything)
 *   IG_ERR_CRYPTO  the checkpoint is not signed by the pinned key
 *   IG_ERR_CORRUPT the cluster head signed a tree it cannot show the
 *                  enrolment in, or sent another record: it is not keeping
 *                  the log it claims */
int ig_loghead_check_enrollment(ig_loghead *cp_out, uint64_t *index, const struct cJSON *answer,
                                const ig_loghead_trust *trust, const char *id, const uint8_t pk[IG_PK_BYTES],
                                ig_error *err) IG_NODISCARD;

/* Checks a log_consistency_proof answer: it is for from -> to, and its path
 * leads from from_root (size from) to to_root (size to), the roots the
 * device holds itself (the answer's own checkpoint is not used: it may be
 * newer than `to`).
 *   IG_OK, IG_ERR_INVAL (malformed, or for other sizes),
 *   IG_ERR_CORRUPT (the proof does not lead to both roots: a fork). */
int ig_loghead_check_consistency(const struct cJSON *answer, uint64_t from, const uint8_t from_root[IG_HASH_BYTES],
                                 uint64_t to, const uint8_t to_root[IG_HASH_BYTES], ig_error *err) IG_NODISCARD;

/* KEYFILE.head: the accepted checkpoint, exactly as signed (any C2SP note
 * tool reads it), mode 0600, replaced atomically and durably. Load
 * verifies it with trust (IG_ERR_NOTFOUND if there is none; any other
 * error means the file is damaged or signed by another key). */
int ig_loghead_load(ig_loghead *out, const char *path, const ig_loghead_trust *trust, ig_error *err) IG_NODISCARD;
int ig_loghead_store(const ig_loghead *h, const char *path, ig_error *err);

/* KEYFILE.head.refused: the device's durable refusal of the cluster head's
 * log, kept until an operator deletes it:
 *   iotguard-agent log refusal v1\n
 *   reason <fork|rollback|enrollment>\n
 *   time <unix ms>\n
 *   detail <one line>\n
 *   \n
 *   accepted:\n<the accepted checkpoint, or nothing>
 *   offending:\n<the checkpoint that contradicts it>
 * The checkpoints are the evidence: signed by the cluster head, they show
 * what it claimed. Read returns reason and detail (IG_ERR_NOTFOUND if there
 * is no refusal; IG_ERR_CORRUPT for a file that does not start as above,
 * which still counts as a refusal). */
int ig_loghead_refusal_write(const char *path, const char *reason, const char *detail, const ig_loghead *accepted,
                             const char *offending, size_t offending_len, uint64_t now_ms, ig_error *err);
int ig_loghead_refusal_read(const char *path, char reason[16], char detail[IG_LOGHEAD_DETAIL_MAX],
                            ig_error *err) IG_NODISCARD;

#endif
