/*
 * agent_testutil.c: the never-connected agent the agent tests share (see
 * agent_testutil.h for why).
 */
#include "agent_testutil.h"

#include <criterion/criterion.h>
#include <mosquitto.h>
#include <stdio.h>

#include "duties.h"
#include "testutil.h"

void tu_agent_key(char *dir, size_t dir_cap, char *key, size_t key_cap, const char *id)
{
	cr_assert_eq(ig_init(), IG_OK);
	mosquitto_lib_init();
	tu_tempdir(dir, dir_cap, "agent", 1);
	int n = snprintf(key, key_cap, "%s/%s.key", dir, id);
	cr_assert(n > 0 && (size_t)n < key_cap, "key path for %s does not fit %zu bytes", id, key_cap);
	char pk_hex[65];
	ig_error err = {0};
	cr_assert_eq(ig_join_prepare_key(key, pk_hex, &err), IG_OK, "%s", err.msg);
}

ig_agent *tu_agent_offline(const char *cluster, const char *id, const char *key)
{
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1, .cluster = cluster, .id = id, .key_path = key,
	                       .heartbeat_s = 30, .ttl_s = 300};
	ig_agent *a = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_OK, "%s", err.msg);
	return a;
}
