/*
 * sessions.c: the live-session table (see ig_sessions.h).
 *
 * Why this exists: so that who is connected is decided and counted in lib,
 * on the shared table, and tested without a broker. It starts small (most
 * brokers hold few sessions) and grows to its budget.
 */
#include "ig_sessions.h"

#include "ig_idtable.h"

#include <stdio.h>
#include <string.h>

#define INITIAL_SESSIONS 768

bool ig_sessions_init(ig_sessions *s)
{
	memset(s, 0, sizeof *s);
	return ig_idtable_new(&s->t, IG_ID_MAX, sizeof(ig_session), INITIAL_SESSIONS, IG_SESSIONS_MAX) == IG_OK;
}

void ig_sessions_free(ig_sessions *s)
{
	ig_idtable_free(s->t);
	memset(s, 0, sizeof *s);
}

ig_session *ig_sessions_find_mut(ig_sessions *s, const char *id)
{
	if (!s || !s->t || !id)
		return NULL;
	return ig_idtable_find(s->t, id, strnlen(id, IG_ID_MAX + 1));
}

const ig_session *ig_sessions_find(const ig_sessions *s, const char *id)
{
	return ig_sessions_find_mut((ig_sessions *)s, id);
}

ig_session *ig_sessions_open(ig_sessions *s, const void *client, const char *id, uint8_t role)
{
	if (!s || !s->t || !id || role >= IG_ROLE_COUNT)
		return NULL;
	size_t len = strnlen(id, IG_ID_MAX + 1);
	void *v;
	bool added;
	if (ig_idtable_put(s->t, id, len, &v, &added) != IG_OK)
		return NULL;
	ig_session *e = v;
	if (added) {
		s->count++;
		e->used = true;
		memcpy(e->id, id, len);
		e->id[len] = '\0';
	} else {
		s->by_role[e->role]--;   /* takeover: the old connection's entry is replaced */
	}
	e->client = client;
	e->role = role;
	e->joining = false;
	e->join_in_flight = false;
	memset(e->join_pk, 0, sizeof e->join_pk);
	memset(e->join_code_id, 0, sizeof e->join_code_id);
	s->by_role[role]++;
	return e;
}

bool ig_sessions_close(ig_sessions *s, const void *client, const char *id)
{
	ig_session *e = ig_sessions_find_mut(s, id);
	if (!e || e->client != client)
		return false;
	s->by_role[e->role]--;
	s->count--;
	ig_idtable_remove_value(s->t, e);
	return true;
}
