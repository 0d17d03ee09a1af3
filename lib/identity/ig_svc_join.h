/*
 * ig_svc_join.h: the join service, a new device enrolling itself with a
 * one-time join code (docs/PROTOCOL.md, "Joining the cluster").
 *
 * Why this exists: a device must be able to enrol itself with a code an
 * admin printed, without an operator per device. Mosquitto 2.0 cannot hold
 * a CONNACK until a record is durable, so the join takes two steps, both
 * decided here without a broker:
 * - at CONNECT, ig_svc_join_auth checks the join token against the ledger's
 *   join codes and, if it passes, yields the ticket of a "joining" session
 *   (its own ch topic and inbox, no more);
 * - {"type":"join"} from that session, ig_svc_join_request, appends the
 *   ENROLL record and, once it is durable, the JOIN_USED record; the welcome
 *   is answered when both are settled.
 * The service remembers which joins are being written (a repeated request
 * is ignored meanwhile) and counts completed and failed joins.
 */
#ifndef IG_SVC_JOIN_H
#define IG_SVC_JOIN_H

#include <stdint.h>

#include "ig_auth.h"
#include "ig_common.h"
#include "ig_decision.h"
#include "ig_join.h"
#include "ig_state.h"

typedef struct ig_svc_join ig_svc_join;

/* What a join token proved at CONNECT: the joining fields of the session it
 * opens (the id, the code's role, the device's new key, the code). */
typedef struct ig_svc_join_ticket {
	char id[IG_ID_MAX + 1];
	ig_role role;
	uint8_t pk[IG_PK_BYTES];
	uint8_t code_id[IG_JOIN_CODE_ID_BYTES];
} ig_svc_join_ticket;

/* Told once per completed join (after the welcome is decided), for the
 * caller's log: the service itself has no log. */
typedef void (*ig_svc_join_joined_fn)(void *ctx, const char *id, ig_role role, uint64_t enroll_index);

typedef struct ig_svc_join_config {
	const char *cluster;                 /* this cluster's name (copied) */
	const uint8_t *ch_pk;                /* IG_PK_BYTES: the key the welcome names (copied) */
	uint32_t clock_skew_s;               /* a token may be issued this far in the future */
	ig_svc_join_joined_fn joined;        /* optional */
	void *joined_ctx;
} ig_svc_join_config;

typedef struct ig_svc_join_counts {
	uint64_t completed;                  /* welcomes sent */
	uint64_t failed;                     /* joins whose ENROLL was not (certainly) written */
} ig_svc_join_counts;

/* NULL when out of memory or the config is incomplete (no key, or a
 * cluster name that is empty or longer than IG_CLUSTER_MAX). */
ig_svc_join *ig_svc_join_new(const ig_svc_join_config *cfg);
/* Joins still being written are detached: their completions then free
 * themselves and answer nothing. NULL is ignored. */
void ig_svc_join_free(ig_svc_join *svc);

/* The CONNECT check of a join token (docs/PROTOCOL.md, "Flow", step 2), in
 * this order: it parses (MALFORMED); client_id and username (when given)
 * equal its id (ID_MISMATCH); its cluster is ours (WRONG_CLUSTER); the
 * ledger never enrolled the id (ID_TAKEN); the code exists (CODE_UNKNOWN),
 * is unused and not being used by a join in flight (CODE_USED) and unexpired
 * at now_s (CODE_EXPIRED); the secret re-derived with jk matches the code's
 * hash and the token's MAC and signature verify (BAD_SIGNATURE); its own
 * lifetime is at most IG_JOIN_MAX_TTL (TTL_TOO_LONG), it is not issued
 * beyond now_s + clock skew (NOT_YET_VALID) nor expired (EXPIRED).
 * On IG_AUTH_OK, out holds the session's ticket. why (if not NULL) gets a
 * static sentence saying what failed and what to do; it never carries the
 * token or anything the token claims. Costs one Ed25519 verify, only once
 * every ledger check passed. */
ig_auth_result ig_svc_join_auth(ig_svc_join_ticket *out, const char **why, const ig_svc_join *svc, ig_state *st,
                                const ig_join_key *jk, const char *username, const char *client_id,
                                const char *token, size_t token_len, uint64_t now_s);

/* {"type":"join"} from id. ticket is the requesting session's (NULL when it
 * did not connect with a join token). Decides:
 * - a refusal "not_joining", "code_used", "code_expired", "id_taken" or
 *   "internal" (request "join", no nonce);
 * - nothing, when a join of id is being written already;
 * - or an APPEND of the ENROLL record (by "join:<code_id hex>", naming the
 *   code, with the code's role and the ticket's key). The id is reserved in
 *   the registry and the code marked in flight until the ENROLL is settled.
 *   Its done chains the APPEND of the JOIN_USED record when the ENROLL is
 *   durable, and that one's done answers {"type":"welcome",...} whatever its
 *   own fate (the ENROLL alone consumes the code). An ENROLL not durable is
 *   answered "outcome_unknown" (IG_ERR_UNKNOWN) or "storage_failed", and the
 *   reservation is released.
 * The carrier applies each durable record to st before calling done. */
void ig_svc_join_request(ig_decision *out, ig_svc_join *svc, ig_state *st, const char *id,
                         const ig_svc_join_ticket *ticket, uint64_t now_s);

/* True while a join of id is being written. */
bool ig_svc_join_in_flight(const ig_svc_join *svc, const char *id);
ig_svc_join_counts ig_svc_join_get_counts(const ig_svc_join *svc);

#endif
