/*
 * test_sessions.c: the live-session table (lib/identity/sessions.c), which used to
 * live inside the plugin and could only be reached through a real broker:
 * open, takeover, close by the right connection only, the per-role counts
 * the stats report, and growth past the first allocation.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ig_sessions.h"

static int conn_a, conn_b;   /* stand-ins for Mosquitto's client handles */

Test(sessions, open_find_close)
{
	ig_sessions s;
	cr_assert(ig_sessions_init(&s));
	cr_assert_null(ig_sessions_find(&s, "dev1"));
	ig_session *e = ig_sessions_open(&s, &conn_a, "dev1", IG_ROLE_DEVICE);
	cr_assert_not_null(e);
	cr_assert_str_eq(e->id, "dev1");
	cr_assert_eq(e->client, &conn_a);
	cr_assert_eq(e->role, IG_ROLE_DEVICE);
	cr_assert_not(e->joining);
	cr_assert_eq(ig_sessions_find(&s, "dev1"), e);
	cr_assert_eq(ig_sessions_find_mut(&s, "dev1"), e);
	cr_assert_null(ig_sessions_find(&s, "dev"));
	cr_assert_eq(s.count, 1);
	cr_assert_eq(s.by_role[IG_ROLE_DEVICE], 1);
	cr_assert_not(ig_sessions_close(&s, &conn_b, "dev1"), "another connection cannot close it");
	cr_assert_eq(s.count, 1);
	cr_assert(ig_sessions_close(&s, &conn_a, "dev1"));
	cr_assert_null(ig_sessions_find(&s, "dev1"));
	cr_assert_eq(s.count, 0);
	cr_assert_eq(s.by_role[IG_ROLE_DEVICE], 0);
	cr_assert_not(ig_sessions_close(&s, &conn_a, "dev1"));
	ig_sessions_free(&s);
}

/* A takeover replaces the entry: the new connection owns it, the counts do
 * not double, and the old connection's DISCONNECT (which Mosquitto sends
 * after the new CONNECT) leaves the new session alone. */
Test(sessions, takeover)
{
	ig_sessions s;
	cr_assert(ig_sessions_init(&s));
	ig_session *e = ig_sessions_open(&s, &conn_a, "dev1", IG_ROLE_DEVICE);
	e->joining = true;
	e->join_in_flight = true;
	e->join_pk[0] = 7;
	e = ig_sessions_open(&s, &conn_b, "dev1", IG_ROLE_ANALYST);
	cr_assert_not_null(e);
	cr_assert_eq(e->client, &conn_b);
	cr_assert_not(e->joining, "the join state of the old connection is not inherited");
	cr_assert_not(e->join_in_flight);
	cr_assert_eq(e->join_pk[0], 0);
	cr_assert_eq(s.count, 1);
	cr_assert_eq(s.by_role[IG_ROLE_DEVICE], 0);
	cr_assert_eq(s.by_role[IG_ROLE_ANALYST], 1);
	cr_assert_not(ig_sessions_close(&s, &conn_a, "dev1"), "the loser of the takeover closes nothing");
	cr_assert_not_null(ig_sessions_find(&s, "dev1"));
	cr_assert(ig_sessions_close(&s, &conn_b, "dev1"));
	cr_assert_eq(s.count, 0);
	ig_sessions_free(&s);
}

Test(sessions, bad_ids_and_roles_are_refused)
{
	ig_sessions s;
	cr_assert(ig_sessions_init(&s));
	char longid[IG_ID_MAX + 2];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	cr_assert_null(ig_sessions_open(&s, &conn_a, longid, IG_ROLE_DEVICE));
	cr_assert_null(ig_sessions_open(&s, &conn_a, "", IG_ROLE_DEVICE));
	cr_assert_null(ig_sessions_open(&s, &conn_a, "x", IG_ROLE_COUNT));
	cr_assert_null(ig_sessions_find(&s, longid));
	cr_assert_null(ig_sessions_find(&s, NULL));
	cr_assert_eq(s.count, 0);
	longid[IG_ID_MAX] = '\0';   /* exactly IG_ID_MAX chars is an id */
	cr_assert_not_null(ig_sessions_open(&s, &conn_a, longid, IG_ROLE_DEVICE));
	cr_assert_not_null(ig_sessions_find(&s, longid));
	ig_sessions_free(&s);
}

/* Many sessions (past the first allocation), then half close: every
 * remaining one is still found and the counts match. */
Test(sessions, many_sessions_grow_and_shrink)
{
	ig_sessions s;
	cr_assert(ig_sessions_init(&s));
	static int conns[20000];
	char id[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "dev%d", i);
		cr_assert_not_null(ig_sessions_open(&s, &conns[i], id, (uint8_t)(1 + i % 4)), "session %d", i);
	}
	cr_assert_eq(s.count, 20000);
	for (int i = 0; i < 20000; i += 2) {
		snprintf(id, sizeof id, "dev%d", i);
		cr_assert(ig_sessions_close(&s, &conns[i], id));
	}
	cr_assert_eq(s.count, 10000);
	uint64_t total = 0;
	for (int r = 0; r < IG_ROLE_COUNT; r++)
		total += s.by_role[r];
	cr_assert_eq(total, 10000);
	for (int i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "dev%d", i);
		const ig_session *e = ig_sessions_find(&s, id);
		if (i % 2) {
			cr_assert_not_null(e, "session %d lost", i);
			cr_assert_eq(e->client, &conns[i]);
		} else {
			cr_assert_null(e);
		}
	}
	ig_sessions_free(&s);
}
