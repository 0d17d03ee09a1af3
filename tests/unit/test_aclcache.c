/*
 * test_aclcache.c: the per-client ACL decision cache (lib/identity/aclcache.c).
 *
 * Why this exists: a stale cached "allow" is a security bug that no
 * throughput figure would reveal. These tests pin that a decision comes back
 * only for the exact question it answered (client, identity, role, policy
 * generation, access, topic), that a new policy generation, another identity
 * on the same client handle, a role change and a disconnect all drop it,
 * and that memory stays bounded per client and in the number of clients.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ig_aclcache.h"
#include "ig_policy.h"

static ig_aclcache_key key_for(const void *client, const char *id, uint64_t gen, uint8_t access, const char *topic)
{
	return (ig_aclcache_key){.client = client, .id = id, .role = IG_ROLE_DEVICE, .generation = gen,
	                         .access = access, .topic = topic, .topic_len = strlen(topic)};
}

static ig_aclcache *new_cache(size_t max_clients)
{
	ig_aclcache *c = NULL;
	cr_assert_eq(ig_aclcache_new(&c, max_clients), IG_OK);
	cr_assert_not_null(c);
	return c;
}

static int client_a, client_b;   /* distinct addresses stand in for connections */

Test(aclcache, miss_then_hit_for_allow_and_deny)
{
	ig_aclcache *c = new_cache(16);
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, "iotguard/C/dev/dev-1/status");
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_MISS);
	ig_aclcache_put(c, &k, true);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_ALLOW);

	ig_aclcache_key d = key_for(&client_a, "dev-1", 1, 2, "iotguard/C/dev/dev-2/status");
	cr_assert_eq(ig_aclcache_get(c, &d), IG_ACLCACHE_MISS);
	ig_aclcache_put(c, &d, false);
	cr_assert_eq(ig_aclcache_get(c, &d), IG_ACLCACHE_DENY);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_ALLOW, "a second entry must not displace the first");
	cr_assert_eq(ig_aclcache_clients(c), 1);
	ig_aclcache_free(c);
}

Test(aclcache, answers_only_the_exact_question)
{
	ig_aclcache *c = new_cache(16);
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, "a/b/c");
	ig_aclcache_put(c, &k, true);

	ig_aclcache_key other = k;
	other.access = 3;   /* e.g. a retained publish of the same topic */
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS, "another access code must not hit");
	other = k;
	other.topic = "a/b/c/";
	other.topic_len = 6;
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS, "a longer topic must not hit");
	other = k;
	other.topic = "a/b/cX";
	other.topic_len = 5;   /* same bytes as k's topic: this is the same question */
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_ALLOW);
	other = k;
	other.topic = "a/b/d";
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS, "a different topic of the same length must not hit");
	other = k;
	other.client = &client_b;
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS, "another client must not hit");

	/* Re-deciding the same question replaces the answer, never adds a second. */
	ig_aclcache_put(c, &k, false);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_DENY);
	ig_aclcache_free(c);
}

Test(aclcache, new_policy_generation_invalidates)
{
	ig_aclcache *c = new_cache(16);
	ig_aclcache_key k = key_for(&client_a, "dev-1", 7, 2, "t/1");
	ig_aclcache_put(c, &k, true);
	ig_aclcache_key later = k;
	later.generation = 8;
	cr_assert_eq(ig_aclcache_get(c, &later), IG_ACLCACHE_MISS, "a reload must drop every remembered decision");
	ig_aclcache_put(c, &later, false);
	cr_assert_eq(ig_aclcache_get(c, &later), IG_ACLCACHE_DENY);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_MISS, "the old generation's answers are gone, not kept");
	ig_aclcache_free(c);
}

Test(aclcache, policy_generation_is_unique_per_load)
{
	ig_policy *p1 = NULL, *p2 = NULL;
	ig_error err;
	size_t len = strlen(ig_policy_default_json);
	cr_assert_eq(ig_policy_parse(ig_policy_default_json, len, &p1, &err), IG_OK);
	uint64_t g1 = ig_policy_generation(p1);
	ig_policy_free(p1);
	/* The next policy may well land at the freed address: its generation
	 * still differs, which is what the cache relies on. */
	cr_assert_eq(ig_policy_parse(ig_policy_default_json, len, &p2, &err), IG_OK);
	uint64_t g2 = ig_policy_generation(p2);
	ig_policy_free(p2);
	cr_assert_neq(g1, 0);
	cr_assert_neq(g2, 0);
	cr_assert_neq(g1, g2);
	cr_assert_eq(ig_policy_generation(NULL), 0);
}

Test(aclcache, identity_or_role_change_on_same_client_invalidates)
{
	ig_aclcache *c = new_cache(16);
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, "t/1");
	ig_aclcache_put(c, &k, true);

	/* A freed connection's address reused by another identity. */
	ig_aclcache_key other = k;
	other.id = "dev-2";
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS);
	other = k;
	other.role = IG_ROLE_MONITOR;
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS);
	/* An id that only shares a prefix. */
	other = k;
	other.id = "dev-10";
	cr_assert_eq(ig_aclcache_get(c, &other), IG_ACLCACHE_MISS);
	ig_aclcache_put(c, &other, false);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_MISS, "dev-10's slot must not answer for dev-1");
	cr_assert_eq(ig_aclcache_clients(c), 1);
	ig_aclcache_free(c);
}

Test(aclcache, disconnect_forgets_the_client)
{
	ig_aclcache *c = new_cache(16);
	ig_aclcache_key ka = key_for(&client_a, "dev-1", 1, 2, "t/1");
	ig_aclcache_key kb = key_for(&client_b, "dev-2", 1, 2, "t/2");
	ig_aclcache_put(c, &ka, true);
	ig_aclcache_put(c, &kb, true);
	cr_assert_eq(ig_aclcache_clients(c), 2);
	ig_aclcache_forget(c, &client_a);
	cr_assert_eq(ig_aclcache_clients(c), 1);
	cr_assert_eq(ig_aclcache_get(c, &ka), IG_ACLCACHE_MISS);
	cr_assert_eq(ig_aclcache_get(c, &kb), IG_ACLCACHE_ALLOW, "forgetting one client must not touch another");
	ig_aclcache_forget(c, &client_a);   /* twice, and unknown clients, are harmless */
	ig_aclcache_forget(c, NULL);
	cr_assert_eq(ig_aclcache_clients(c), 1);
	ig_aclcache_free(c);
}

Test(aclcache, bounded_entries_per_client)
{
	ig_aclcache *c = new_cache(16);
	char topics[3 * IG_ACLCACHE_WAYS][32];
	for (int i = 0; i < 3 * IG_ACLCACHE_WAYS; i++) {
		snprintf(topics[i], sizeof topics[i], "t/%d", i);
		ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topics[i]);
		ig_aclcache_put(c, &k, true);
	}
	int hits = 0;
	for (int i = 0; i < 3 * IG_ACLCACHE_WAYS; i++) {
		ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topics[i]);
		if (ig_aclcache_get(c, &k) == IG_ACLCACHE_ALLOW)
			hits++;
	}
	cr_assert_eq(hits, IG_ACLCACHE_WAYS, "a client keeps exactly its last %d decisions, got %d hits",
	             IG_ACLCACHE_WAYS, hits);
	ig_aclcache_key newest = key_for(&client_a, "dev-1", 1, 2, topics[3 * IG_ACLCACHE_WAYS - 1]);
	cr_assert_eq(ig_aclcache_get(c, &newest), IG_ACLCACHE_ALLOW);
	cr_assert_lt(ig_aclcache_client_bytes(), 2048, "per-client memory grew to %zu bytes", ig_aclcache_client_bytes());
	ig_aclcache_free(c);
}

/* Every slot keeps its own answer: filling all of them with alternating
 * allow/deny, then changing one answer and replacing another entry, must
 * leave every other answer as it was (the answers share one word). */
Test(aclcache, each_entry_keeps_its_own_answer)
{
	ig_aclcache *c = new_cache(16);
	char topics[IG_ACLCACHE_WAYS + 1][32];
	for (int i = 0; i <= IG_ACLCACHE_WAYS; i++)
		snprintf(topics[i], sizeof topics[i], "t/%d", i);
	for (int i = 0; i < IG_ACLCACHE_WAYS; i++) {
		ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topics[i]);
		ig_aclcache_put(c, &k, i % 2 == 0);
	}
	for (int i = 0; i < IG_ACLCACHE_WAYS; i++) {
		ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topics[i]);
		cr_assert_eq(ig_aclcache_get(c, &k), i % 2 == 0 ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY, "entry %d", i);
	}
	/* The same question answered again overwrites in place: 3 becomes allow. */
	ig_aclcache_key k3 = key_for(&client_a, "dev-1", 1, 2, topics[3]);
	ig_aclcache_put(c, &k3, true);
	cr_assert_eq(ig_aclcache_get(c, &k3), IG_ACLCACHE_ALLOW);
	/* A new question replaces the oldest entry (0, an allow) with a deny. */
	ig_aclcache_key extra = key_for(&client_a, "dev-1", 1, 2, topics[IG_ACLCACHE_WAYS]);
	ig_aclcache_put(c, &extra, false);
	cr_assert_eq(ig_aclcache_get(c, &extra), IG_ACLCACHE_DENY);
	ig_aclcache_key k0 = key_for(&client_a, "dev-1", 1, 2, topics[0]);
	cr_assert_eq(ig_aclcache_get(c, &k0), IG_ACLCACHE_MISS, "the oldest entry was replaced");
	for (int i = 1; i < IG_ACLCACHE_WAYS; i++) {
		ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topics[i]);
		bool allow = i == 3 || i % 2 == 0;
		cr_assert_eq(ig_aclcache_get(c, &k), allow ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY, "entry %d changed", i);
	}
	ig_aclcache_free(c);
}

Test(aclcache, long_topics_are_not_cached)
{
	ig_aclcache *c = new_cache(16);
	char topic[IG_ACLCACHE_TOPIC_MAX + 2];
	memset(topic, 'a', sizeof topic - 1);
	topic[sizeof topic - 1] = '\0';
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, topic);
	ig_aclcache_put(c, &k, true);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_MISS);
	topic[IG_ACLCACHE_TOPIC_MAX] = '\0';   /* exactly the maximum: cached */
	k.topic_len = IG_ACLCACHE_TOPIC_MAX;
	ig_aclcache_put(c, &k, true);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_ALLOW);
	ig_aclcache_free(c);
}

Test(aclcache, bounded_clients_and_growth)
{
	enum { N = 5000, MAX = 3000 };
	static char clients[N];
	ig_aclcache *c = new_cache(MAX);
	for (int i = 0; i < N; i++) {
		ig_aclcache_key k = key_for(&clients[i], "dev-1", 1, 2, "t/1");
		ig_aclcache_put(c, &k, i % 2 == 0);
	}
	cr_assert_eq(ig_aclcache_clients(c), MAX, "the number of cached clients must stop at the maximum");
	for (int i = 0; i < N; i++) {
		ig_aclcache_key k = key_for(&clients[i], "dev-1", 1, 2, "t/1");
		ig_aclcache_result want = i >= MAX ? IG_ACLCACHE_MISS : (i % 2 == 0 ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY);
		cr_assert_eq(ig_aclcache_get(c, &k), want, "client %d", i);
	}
	/* Churn: forgetting every other client keeps every remaining one findable
	 * (backward-shift deletion must not cut a probe chain). */
	for (int i = 0; i < MAX; i += 2)
		ig_aclcache_forget(c, &clients[i]);
	cr_assert_eq(ig_aclcache_clients(c), MAX / 2);
	for (int i = 1; i < MAX; i += 2) {
		ig_aclcache_key k = key_for(&clients[i], "dev-1", 1, 2, "t/1");
		cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_DENY, "client %d lost after deletions", i);
	}
	ig_aclcache_free(c);
}

Test(aclcache, bad_arguments)
{
	ig_aclcache *c = NULL;
	cr_assert_eq(ig_aclcache_new(&c, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_aclcache_new(NULL, 1), IG_ERR_INVAL);
	c = new_cache(4);
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, "");
	ig_aclcache_put(c, &k, true);
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_MISS, "an empty topic is never cached");
	cr_assert_eq(ig_aclcache_get(NULL, &k), IG_ACLCACHE_MISS);
	cr_assert_eq(ig_aclcache_get(c, NULL), IG_ACLCACHE_MISS);
	ig_aclcache_put(NULL, &k, true);
	ig_aclcache_free(NULL);
	ig_aclcache_free(c);
}

/* The identity memo that lets the ACL skip the registry lookup: known only
 * after a decision stored (or looked up) for an identity seen active at a
 * registry generation, and only while that generation holds. */
Test(aclcache, identity_memo_holds_only_for_its_registry_generation)
{
	ig_aclcache *c = new_cache(16);
	uint8_t role = 0;
	ig_aclcache_key k = key_for(&client_a, "dev-1", 1, 2, "t/1");
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 5, &role), "nothing is known before a decision");
	ig_aclcache_put(c, &k, true);
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 5, &role),
	          "a decision stored without a registry generation teaches nothing");

	k.registry_generation = 5;
	ig_aclcache_put(c, &k, true);
	cr_assert(ig_aclcache_who(c, &client_a, "dev-1", 5, &role));
	cr_assert_eq(role, IG_ROLE_DEVICE);
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 6, &role), "any registry change ends the memo");
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-2", 5, &role), "another username is another identity");
	cr_assert(!ig_aclcache_who(c, &client_b, "dev-1", 5, &role), "another connection knows nothing");
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 0, &role));

	/* A fresh lookup at generation 6 that hits renews the memo. */
	k.registry_generation = 6;
	cr_assert_eq(ig_aclcache_get(c, &k), IG_ACLCACHE_ALLOW);
	cr_assert(ig_aclcache_who(c, &client_a, "dev-1", 6, &role));

	/* A decision for another identity on the same connection resets it. */
	ig_aclcache_key other = key_for(&client_a, "dev-9", 1, 2, "t/1");
	ig_aclcache_put(c, &other, true);
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 6, &role));

	ig_aclcache_put(c, &k, true);
	ig_aclcache_forget(c, &client_a);
	cr_assert(!ig_aclcache_who(c, &client_a, "dev-1", 6, &role), "a disconnected client is forgotten");
	ig_aclcache_free(c);
}

/* xorshift32: a reproducible sequence. */
static uint32_t rnd(uint32_t *x, uint32_t n)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x % n;
}

/* ig_aclcache_get_known is the ACL's one-probe path: it must answer
 * exactly what ig_aclcache_who followed by ig_aclcache_get (with the
 * remembered role) would, or a cached "allow" could outlive a revocation,
 * a reload or an identity change. Checked against that composition after
 * every step of a seeded random sequence of stores, lookups, refreshes and
 * disconnects over a small space of clients, ids, roles, generations,
 * accesses and topics, so every combination of matches and mismatches
 * occurs. */
Test(aclcache, get_known_is_who_then_get)
{
	ig_aclcache *c = new_cache(16);
	const void *clients[] = {&client_a, &client_b};
	const char *ids[] = {"dev-1", "dev-12", "mon-1"};
	const char *topics[] = {"t/1", "t/2", "iotguard/C/dev/dev-1/status", ""};
	uint32_t x = 12345;
#define NEXT(n) rnd(&x, n)
	int unknown = 0, miss = 0, hit = 0;
	for (int step = 0; step < 20000; step++) {
		ig_aclcache_key k = key_for(clients[NEXT(2)], ids[NEXT(3)], 1 + NEXT(2), (uint8_t)NEXT(3), topics[NEXT(4)]);
		k.role = (uint8_t)(IG_ROLE_DEVICE + NEXT(2));
		k.registry_generation = NEXT(3);   /* 0: the caller did not look */
		switch (NEXT(8)) {
		case 0:
		case 1:
		case 2:
			ig_aclcache_put(c, &k, NEXT(2) == 0);
			break;
		case 3:
			(void)ig_aclcache_get(c, &k);   /* a hit refreshes the memo */
			break;
		case 4:
			if (NEXT(16) == 0)
				ig_aclcache_forget(c, k.client);
			break;
		default:
			break;
		}
		/* The question the ACL asks next, against both paths. */
		ig_aclcache_key q = key_for(clients[NEXT(2)], ids[NEXT(3)], 1 + NEXT(2), (uint8_t)NEXT(3), topics[NEXT(4)]);
		q.registry_generation = 1 + NEXT(2);
		uint8_t who_role = 0xee, known_role = 0xee;
		bool who = ig_aclcache_who(c, q.client, q.id, q.registry_generation, &who_role);
		ig_aclcache_result want = IG_ACLCACHE_UNKNOWN;
		if (who) {
			ig_aclcache_key g = q;
			g.role = who_role;
			want = ig_aclcache_get(c, &g);
		}
		ig_aclcache_result got = ig_aclcache_get_known(c, &q, &known_role);
		cr_assert_eq(got, want, "step %d: get_known %d, who+get %d", step, got, want);
		if (who)
			cr_assert_eq(known_role, who_role, "step %d: the remembered role", step);
		unknown += got == IG_ACLCACHE_UNKNOWN;
		miss += got == IG_ACLCACHE_MISS;
		hit += got >= 0;
	}
#undef NEXT
	cr_assert(unknown > 100 && miss > 100 && hit > 100, "the sequence must reach every outcome (%d unknown, %d miss, %d hit)",
	          unknown, miss, hit);
	uint8_t role;
	ig_aclcache_key q = key_for(&client_a, "dev-1", 1, 2, "t/1");
	q.registry_generation = 5;
	cr_assert_eq(ig_aclcache_get_known(NULL, &q, &role), IG_ACLCACHE_UNKNOWN);
	cr_assert_eq(ig_aclcache_get_known(c, NULL, &role), IG_ACLCACHE_UNKNOWN);
	cr_assert_eq(ig_aclcache_get_known(c, &q, NULL), IG_ACLCACHE_UNKNOWN);
	q.registry_generation = 0;
	cr_assert_eq(ig_aclcache_get_known(c, &q, &role), IG_ACLCACHE_UNKNOWN, "generation 0 is never known");
	ig_aclcache_free(c);
}
