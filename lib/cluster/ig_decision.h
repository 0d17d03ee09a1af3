/*
 * ig_decision.h: what a service decided about one request.
 *
 * Why this exists: the services in lib/ (bank, keys, entropy, attestation,
 * join) decide; the broker plugin only carries decisions out. A decision is
 * a value, so a service is unit-tested by calling it and reading what it
 * decided, with no broker, and the plugin carries out every service's
 * decisions with one function.
 *
 * A decision is one of:
 * - nothing to send (an accepted entropy sample);
 * - a refusal: one error to the requester, naming the request and its nonce;
 * - replies to send now (to the requester, or to a peer);
 * - one record to append. Nothing is answered yet: once the ledger knows the
 *   record's fate, the carrier applies a durable record to the cluster state
 *   (ig_state_apply), publishes its event, and calls `done` with the status
 *   (IG_OK durable; IG_ERR_UNKNOWN may or may not be durable; anything else
 *   certainly not written), which fills in a second decision: the replies.
 *   `done` is called exactly once, also when the ledger refuses the record at
 *   once; it owns and frees done_ctx.
 */
#ifndef IG_DECISION_H
#define IG_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_common.h"
#include "ig_record.h"

struct cJSON;

#define IG_DECISION_REPLIES_MAX 4
#define IG_DECISION_NONCE_MAX 128
#define IG_DECISION_MESSAGE_MAX 512

typedef enum ig_decision_kind {
	IG_DECISION_NONE = 0,
	IG_DECISION_REFUSE,
	IG_DECISION_REPLY,
	IG_DECISION_APPEND,
} ig_decision_kind;

/* One JSON object for one identity's inbox. */
typedef struct ig_reply {
	char to[IG_ID_MAX + 1];
	struct cJSON *body;          /* owned by the decision */
} ig_reply;

typedef struct ig_decision ig_decision;

/* rec is the record as written when status is IG_OK or IG_ERR_UNKNOWN (when
 * known), else NULL. Fills out (already cleared) with what to send. */
typedef void (*ig_decision_done_fn)(void *done_ctx, int status, const ig_record *rec, ig_decision *out);

struct ig_decision {
	ig_decision_kind kind;

	/* IG_DECISION_REFUSE: {"type":"error","error":error,"request":request,
	 * "nonce":nonce,"message":message}; request NULL and nonce "" are left
	 * out. error and request are static strings. */
	const char *error;
	const char *request;
	char nonce[IG_DECISION_NONCE_MAX + 1];
	char message[IG_DECISION_MESSAGE_MAX];

	/* IG_DECISION_REPLY */
	ig_reply replies[IG_DECISION_REPLIES_MAX];
	size_t n_replies;

	/* IG_DECISION_APPEND */
	uint16_t rec_type;
	uint8_t *body;               /* malloc'd, owned by the decision */
	size_t body_len;
	ig_decision_done_fn done;
	void *done_ctx;

	/* Further decisions, carried out after this one in order (NULL: none),
	 * owned by it: a request that writes several records (a refund of
	 * several coins, one record each) hands them to the ledger in one pass,
	 * so they share a group commit instead of each waiting for the last one
	 * to be durable. Each record has its own done. */
	ig_decision *next;
};

/* True when s is a usable request nonce: 1..64 printable ASCII characters,
 * no space (docs/PROTOCOL.md, "Requests"); a refusal echoes only such a
 * nonce. */
#define IG_DECISION_REQUEST_NONCE_MAX 64
bool ig_decision_nonce_ok(const char *s);

/* Makes d a refusal. Returns d's kind for chaining. */
ig_decision_kind ig_decision_refuse(ig_decision *d, const char *request, const char *nonce, const char *error,
                                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Adds a reply for to (taking body). False (body freed) when full or when
 * body is NULL (out of memory); d is then a refusal "internal". */
bool ig_decision_reply(ig_decision *d, const char *to, struct cJSON *body);
/* Adds a reply for to (taking body) at the end of d's chain: to the last
 * decision when it is still empty or a reply with room, else to a new one
 * chained after it. For services that gather replies to several devices
 * (a tick's answers) into one decision. False (body freed) when out of
 * memory or body is NULL. */
bool ig_decision_reply_chained(ig_decision *d, const char *to, struct cJSON *body);
/* Makes d an append of a copy of body; false (d untouched, done not
 * called) when out of memory. */
bool ig_decision_append(ig_decision *d, uint16_t type, const uint8_t *body, size_t len, ig_decision_done_fn done,
                        void *done_ctx);
/* A new, cleared decision at the end of d's chain (d->next...); NULL when
 * out of memory. */
ig_decision *ig_decision_then(ig_decision *d);
/* One sentence for a requester whose record the ledger did not take or did
 * not certainly write: status is what ig_ledger_submit returned, or a
 * completion status other than IG_OK and IG_ERR_UNKNOWN. Says why (a full
 * disk, an unreachable shared-ledger database (IG_ERR_UNAVAILABLE: retry),
 * a change another broker made first (IG_ERR_CONFLICT) are named as such)
 * and what to do. Services answer IG_ERR_CONFLICT in their own words where
 * they have them (already_spent, code_used, ...); this is the fallback. */
const char *ig_decision_ledger_refusal(int status);
/* Error code and sentence for IG_ERR_UNKNOWN: the record may or may not be
 * durable; never answer such a request as if it did not happen. */
#define IG_DECISION_E_OUTCOME_UNKNOWN "outcome_unknown"

/* The refusal as a JSON object (NULL when out of memory). */
struct cJSON *ig_decision_error_json(const ig_decision *d);
/* Frees what d owns and zeroes it. An append whose done was never called is
 * completed with IG_ERR_CLOSED first (its output discarded), so done_ctx
 * is never leaked. */
void ig_decision_clear(ig_decision *d);

#endif
