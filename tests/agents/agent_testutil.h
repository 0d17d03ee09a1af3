/*
 * agent_testutil.h: a real device agent for unit tests, without a broker.
 *
 * Why this exists: the agent tests drive duties through a real ig_agent that
 * never connects. Each test file used to make its own key directory, key and
 * agent the same way; this is that code once, on top of testutil.h.
 */
#ifndef IG_AGENT_TESTUTIL_H
#define IG_AGENT_TESTUTIL_H

#include <stddef.h>

#include "agent.h"

/* Initialises libsodium and libmosquitto, makes a scratch directory (removed
 * when the test process exits) into dir, and a fresh identity key file
 * <dir>/<id>.key into key. */
void tu_agent_key(char *dir, size_t dir_cap, char *key, size_t key_cap, const char *id);

/* An agent for cluster/id with that key file, pointed at a port nothing
 * listens on: it is never connected, so duties can be driven by hand. */
ig_agent *tu_agent_offline(const char *cluster, const char *id, const char *key);

#endif
