/*
 * ig_sessions.h: the live sessions, one per connected identity.
 *
 * Why this exists: the admin API ("connected"), the ACL check, revocation,
 * the join service and the stats all ask "is id connected, and as what?".
 * The table used to be hand-rolled inside the plugin, reachable only
 * through a real broker; here it rests on the shared ig_idtable, with a
 * memory budget, and is unit-tested on its own. The connection handle is
 * opaque (Mosquitto's struct mosquitto * in the plugin): it is only stored
 * and compared, never dereferenced.
 */
#ifndef IG_SESSIONS_H
#define IG_SESSIONS_H

#include "ig_common.h"
#include "ig_join.h"

/* Sessions held at most (the budget of the table; about 200 bytes each
 * when full). A CONNECT beyond it is refused rather than left untracked. */
#define IG_SESSIONS_MAX ((size_t)1 << 22)

/* One connected, authenticated client. Keyed by id: Mosquitto keeps client
 * ids unique, and a takeover replaces the entry before the old connection's
 * DISCONNECT arrives, which is why the client handle is compared there. */
typedef struct ig_session {
	const void *client;
	uint8_t role;
	bool used;
	/* Authenticated by a join token: not enrolled yet, may only ask to join. */
	bool joining;
	bool join_in_flight;
	uint8_t join_pk[IG_PK_BYTES];
	uint8_t join_code_id[IG_JOIN_CODE_ID_BYTES];
	char id[IG_ID_MAX + 1];
} ig_session;

struct ig_idtable;
typedef struct ig_sessions {
	struct ig_idtable *t;
	size_t count;                          /* sessions open now */
	uint64_t by_role[IG_ROLE_COUNT];       /* of which, per role */
} ig_sessions;

/* False when out of memory. */
bool ig_sessions_init(ig_sessions *s) IG_NODISCARD;
void ig_sessions_free(ig_sessions *s);

/* The session of id, or NULL. The pointer is valid until the next open or
 * close on the table. */
const ig_session *ig_sessions_find(const ig_sessions *s, const char *id);
ig_session *ig_sessions_find_mut(ig_sessions *s, const char *id);

/* Opens id's session for client with role; a session id already has is
 * taken over (the new connection replaces the old one's entry, joining
 * fields cleared). NULL when out of memory or at IG_SESSIONS_MAX (or id
 * is not 1..IG_ID_MAX chars): the caller refuses the connection. */
ig_session *ig_sessions_open(ig_sessions *s, const void *client, const char *id, uint8_t role);

/* Closes id's session if client holds it; false for a connection that
 * never held it (a refused attempt, or the loser of a takeover). */
bool ig_sessions_close(ig_sessions *s, const void *client, const char *id);

#endif
