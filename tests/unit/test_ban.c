/*
 * test_ban.c: the brute-force tables (lib/identity/ban.c). The per-address table used
 * to be one entry per hash slot, so two colliding addresses wiped each
 * other's count; these tests pin exact keys, bans that survive eviction
 * pressure, IPv6 /64 aggregation, and the per-identity budget's refill.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ig_ban.h"

static const ig_ban_rules rules = {.limit = 5, .window_ms = 60000, .ban_ms = 30000};

static ig_ban_addr A(const char *text)
{
	ig_ban_addr k;
	ig_ban_addr_parse(&k, text);
	return k;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

TestSuite(ban, .init = setup);

Test(ban, address_keys)
{
	ig_ban_addr a = A("10.0.0.1"), b = A("::ffff:10.0.0.1"), c = A("10.0.0.2");
	cr_assert_eq(a.kind, 4);
	cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "an IPv4-mapped address is the IPv4 address");
	cr_assert_neq(memcmp(&a, &c, sizeof a), 0);
	ig_ban_addr d = A("2001:db8:1:2:aaaa::1"), e = A("2001:db8:1:2:bbbb:cccc:dddd:eeee"), f = A("2001:db8:1:3::1");
	cr_assert_eq(d.kind, 6);
	cr_assert_eq(memcmp(&d, &e, sizeof d), 0, "one /64 is one key");
	cr_assert_neq(memcmp(&d, &f, sizeof d), 0, "another /64 is another key");
	ig_ban_addr g = A("not an address"), h = A(NULL), i = A("");
	cr_assert_eq(g.kind, 0);
	cr_assert_neq(memcmp(&g, &h, sizeof g), 0);
	cr_assert_eq(memcmp(&h, &i, sizeof h), 0);
}

Test(ban, limit_bans_and_ban_ends)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 64), IG_OK);
	ig_ban_addr k = A("192.0.2.7");
	uint64_t t = 1000000;
	cr_assert_not(ig_ban_has_failed(b, &k, &rules, t));
	for (int i = 1; i < 5; i++) {
		uint32_t n;
		cr_assert_eq(ig_ban_failed(b, &k, &rules, t + (uint64_t)i, &n), IG_BAN_COUNTED);
		cr_assert_eq(n, (uint32_t)i);
		cr_assert_not(ig_ban_banned(b, &k, t + (uint64_t)i));
	}
	cr_assert(ig_ban_has_failed(b, &k, &rules, t + 10));
	cr_assert_eq(ig_ban_failed(b, &k, &rules, t + 5, NULL), IG_BAN_NOW_BANNED);
	cr_assert(ig_ban_banned(b, &k, t + 6));
	cr_assert(ig_ban_banned(b, &k, t + 5 + 29999));
	cr_assert_not(ig_ban_banned(b, &k, t + 5 + 30000));
	/* Failures older than the window are forgotten. */
	cr_assert_not(ig_ban_has_failed(b, &k, &rules, t + 5 + 60000));
	ig_ban_free(b);
}

Test(ban, limit_zero_counts_but_never_bans)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 64), IG_OK);
	ig_ban_rules r = rules;
	r.limit = 0;
	ig_ban_addr k = A("192.0.2.8");
	for (int i = 0; i < 100; i++)
		cr_assert_eq(ig_ban_failed(b, &k, &r, 1000, NULL), IG_BAN_COUNTED);
	cr_assert_not(ig_ban_banned(b, &k, 1000));
	cr_assert(ig_ban_has_failed(b, &k, &r, 1000));
	ig_ban_free(b);
}

/* The regression: in a table of one bucket every address collides, and
 * alternating two addresses must still ban both. */
Test(ban, alternating_colliding_addresses_are_both_banned)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 1), IG_OK);
	cr_assert_eq(ig_ban_capacity(b), IG_BAN_WAYS);
	ig_ban_addr x = A("198.51.100.1"), y = A("198.51.100.2");
	for (int i = 0; i < 5; i++) {
		ig_ban_failed(b, &x, &rules, 5000 + (uint64_t)i, NULL);
		ig_ban_failed(b, &y, &rules, 5000 + (uint64_t)i, NULL);
	}
	cr_assert(ig_ban_banned(b, &x, 5010));
	cr_assert(ig_ban_banned(b, &y, 5010));
	ig_ban_free(b);
}

Test(ban, banned_entries_survive_eviction_pressure)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 1), IG_OK);   /* one bucket of IG_BAN_WAYS */
	char text[32];
	/* Ban IG_BAN_WAYS - 1 addresses. */
	for (int a = 0; a < IG_BAN_WAYS - 1; a++) {
		snprintf(text, sizeof text, "203.0.113.%d", a);
		ig_ban_addr k = A(text);
		for (int i = 0; i < 5; i++)
			ig_ban_failed(b, &k, &rules, 100, NULL);
		cr_assert(ig_ban_banned(b, &k, 100));
	}
	/* Thousands of other addresses fail once each: they share the one
	 * free way and never displace a ban. */
	for (int a = 0; a < 5000; a++) {
		snprintf(text, sizeof text, "10.%d.%d.1", a / 256, a % 256);
		ig_ban_addr k = A(text);
		cr_assert_eq(ig_ban_failed(b, &k, &rules, 200 + (uint64_t)a, NULL), IG_BAN_COUNTED);
	}
	for (int a = 0; a < IG_BAN_WAYS - 1; a++) {
		snprintf(text, sizeof text, "203.0.113.%d", a);
		ig_ban_addr k = A(text);
		cr_assert(ig_ban_banned(b, &k, 20000), "ban of %s was evicted", text);
	}
	/* Fill the last way with a ban: a newcomer is now untracked, not a victim-maker. */
	ig_ban_addr last = A("203.0.113.200");
	for (int i = 0; i < 5; i++)
		ig_ban_failed(b, &last, &rules, 20000, NULL);
	cr_assert(ig_ban_banned(b, &last, 20000));
	ig_ban_addr newcomer = A("192.0.2.200");
	cr_assert_eq(ig_ban_failed(b, &newcomer, &rules, 20001, NULL), IG_BAN_UNTRACKED);
	cr_assert_eq(ig_ban_count_banned(b, 20001), IG_BAN_WAYS);
	/* Once the bans end, their entries are free again. */
	cr_assert_eq(ig_ban_failed(b, &newcomer, &rules, 100 + 30000 + 60000, NULL), IG_BAN_COUNTED);
	ig_ban_free(b);
}

Test(ban, eviction_takes_the_oldest_unbanned)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 1), IG_OK);
	char text[32];
	for (int a = 0; a < IG_BAN_WAYS; a++) {
		snprintf(text, sizeof text, "172.16.0.%d", a);
		ig_ban_addr k = A(text);
		ig_ban_failed(b, &k, &rules, 1000 + (uint64_t)a, NULL);
	}
	ig_ban_addr n = A("172.16.1.1");
	ig_ban_failed(b, &n, &rules, 2000, NULL);
	ig_ban_addr oldest = A("172.16.0.0"), second = A("172.16.0.1");
	cr_assert_not(ig_ban_has_failed(b, &oldest, &rules, 2001), "the oldest entry should have been replaced");
	cr_assert(ig_ban_has_failed(b, &second, &rules, 2001));
	cr_assert(ig_ban_has_failed(b, &n, &rules, 2001));
	ig_ban_free(b);
}

Test(ban, bad_arguments)
{
	ig_ban *b = (ig_ban *)1;
	cr_assert_eq(ig_ban_new(&b, 0), IG_ERR_INVAL);
	cr_assert_null(b);
	ig_ban_ids *t = (ig_ban_ids *)1;
	cr_assert_eq(ig_ban_ids_new(&t, 0, 10), IG_ERR_INVAL);
	cr_assert_null(t);
	ig_ban_free(NULL);
	ig_ban_ids_free(NULL);
	cr_assert(ig_ban_ids_allow(NULL, "x", 0));
}

/* ---- per-identity budget ---- */

Test(ban, id_budget_spends_and_refills)
{
	ig_ban_ids *t;
	cr_assert_eq(ig_ban_ids_new(&t, 64, 60), IG_OK);   /* 60 per minute: one per second */
	uint64_t now = 1000000;
	cr_assert(ig_ban_ids_allow(t, "dev1", now));
	for (int i = 0; i < 60; i++) {
		cr_assert(ig_ban_ids_allow(t, "dev1", now), "check %d", i);
		ig_ban_ids_charge(t, "dev1", now);
	}
	cr_assert_not(ig_ban_ids_allow(t, "dev1", now));
	cr_assert(ig_ban_ids_allow(t, "dev2", now), "one id's budget is not another's");
	cr_assert_not(ig_ban_ids_allow(t, "dev1", now + 999));
	cr_assert(ig_ban_ids_allow(t, "dev1", now + 1000), "one check per second comes back");
	ig_ban_ids_charge(t, "dev1", now + 1000);
	cr_assert_not(ig_ban_ids_allow(t, "dev1", now + 1000));
	/* Charging while empty does not push the id into debt beyond empty. */
	for (int i = 0; i < 1000; i++)
		ig_ban_ids_charge(t, "dev1", now + 1000);
	cr_assert(ig_ban_ids_allow(t, "dev1", now + 2000));
	/* A full minute refills the whole budget, no more. */
	uint64_t later = now + 3600 * 1000;
	for (int i = 0; i < 60; i++) {
		cr_assert(ig_ban_ids_allow(t, "dev1", later));
		ig_ban_ids_charge(t, "dev1", later);
	}
	cr_assert_not(ig_ban_ids_allow(t, "dev1", later));
	ig_ban_ids_free(t);
}

Test(ban, id_budget_table_is_bounded_and_keeps_debtors)
{
	ig_ban_ids *t;
	cr_assert_eq(ig_ban_ids_new(&t, 1, 2), IG_OK);   /* one bucket */
	for (int i = 0; i < 2; i++)
		ig_ban_ids_charge(t, "victim", 5000);
	cr_assert_not(ig_ban_ids_allow(t, "victim", 5000));
	/* Other ids with one failure each: less in debt than the victim, so they
	 * displace each other, never the victim. */
	char id[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "other%d", i);
		ig_ban_ids_charge(t, id, 5000);
	}
	cr_assert_not(ig_ban_ids_allow(t, "victim", 5000));
	ig_ban_ids_set_budget(t, 600000);
	cr_assert(ig_ban_ids_allow(t, "victim", 5001), "a bigger budget refills faster");
	ig_ban_ids_free(t);
}

/* ---- on the shared table (lib/base/idtable.c) ---- */

/* The budget is what the caller asked for, to a multiple of IG_BAN_WAYS,
 * not doubled to a power of two: the plugin's 49152 entries fill exactly
 * 65536 slots. */
Test(ban, capacity_is_the_budget_asked_for)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 49152), IG_OK);
	cr_assert_eq(ig_ban_capacity(b), 49152);
	ig_ban_free(b);
	cr_assert_eq(ig_ban_new(&b, 9), IG_OK);
	cr_assert_eq(ig_ban_capacity(b), 2 * IG_BAN_WAYS);
	ig_ban_free(b);
}

/* A full table under a flood of one-off addresses: every live ban
 * survives and the flood's newcomers are still counted (they displace each
 * other). A newcomer is untracked only if all 8 entries near its slot are
 * live bans; at 100 bans in 4096 entries that is a 1e-13 event, so the
 * assertion holds for any hash key. */
Test(ban, bans_survive_a_flood_through_a_full_table)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 4096), IG_OK);
	char text[48];
	for (int a = 0; a < 100; a++) {
		snprintf(text, sizeof text, "2001:db8:%x::1", a);
		ig_ban_addr k = A(text);
		for (int i = 0; i < 5; i++)
			ig_ban_failed(b, &k, &rules, 1000, NULL);
		cr_assert(ig_ban_banned(b, &k, 1000));
	}
	size_t untracked = 0;
	for (int a = 0; a < 100000; a++) {
		snprintf(text, sizeof text, "10.%d.%d.%d", a >> 16, (a >> 8) & 255, a & 255);
		ig_ban_addr k = A(text);
		if (ig_ban_failed(b, &k, &rules, 2000 + (uint64_t)a / 100, NULL) == IG_BAN_UNTRACKED)
			untracked++;
	}
	cr_assert_eq(untracked, 0, "with 100 bans in 4096 entries, every newcomer finds an unbanned victim");
	cr_assert_eq(ig_ban_count_banned(b, 3000), 100);
	for (int a = 0; a < 100; a++) {
		snprintf(text, sizeof text, "2001:db8:%x::1", a);
		ig_ban_addr k = A(text);
		cr_assert(ig_ban_banned(b, &k, 3000), "ban of %s was evicted", text);
	}
	/* The most recent newcomer is tracked. */
	ig_ban_addr last = A("10.1.134.159");   /* a = 99999 */
	cr_assert(ig_ban_has_failed(b, &last, &rules, 3000));
	ig_ban_free(b);
}

/* The id budget on the shared table: ids in debt keep their debt while
 * newcomers churn through a full table. (A debtor is displaced only when
 * all 8 entries near a newcomer's slot are deeper in debt: with 20 of 1024
 * that never happens in practice.) */
Test(ban, id_budget_debtors_survive_a_flood_of_ids)
{
	ig_ban_ids *t;
	cr_assert_eq(ig_ban_ids_new(&t, 1024, 2), IG_OK);
	char id[32];
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof id, "victim%d", i);
		ig_ban_ids_charge(t, id, 5000);
		ig_ban_ids_charge(t, id, 5000);
		cr_assert_not(ig_ban_ids_allow(t, id, 5000));
	}
	for (int i = 0; i < 50000; i++) {
		snprintf(id, sizeof id, "other%d", i);
		ig_ban_ids_charge(t, id, 5000);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof id, "victim%d", i);
		cr_assert_not(ig_ban_ids_allow(t, id, 5000), "%s lost its debt", id);
	}
	ig_ban_ids_free(t);
}

/* ig_ban_look answers the CONNECT path's two questions with one lookup; it
 * must give the same answers as asking them one by one, at every stage of an
 * address's life: never seen, failing, banned, ban over, window over. */
Test(ban, look_agrees_with_banned_and_has_failed)
{
	ig_ban *b;
	cr_assert_eq(ig_ban_new(&b, 64), IG_OK);
	ig_ban_addr k = A("192.0.2.9"), other = A("192.0.2.10");
	uint64_t t = 5000000;
	for (int i = 0; i < 5; i++)
		(void)ig_ban_failed(b, &k, &rules, t + (uint64_t)i, NULL);
	const uint64_t at[] = {t - 1, t, t + 4, t + 5, t + 4 + 29999, t + 4 + 30000, t + 4 + 59999, t + 4 + 60000,
	                       t + 4 + 90000};
	int seen_banned = 0, seen_failed_only = 0, seen_clear = 0;
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		bool banned = true, failed = true;
		ig_ban_look(&banned, &failed, b, &k, &rules, at[i]);
		cr_assert_eq(banned, ig_ban_banned(b, &k, at[i]), "banned differs at +%llu",
		             (unsigned long long)(at[i] - t));
		cr_assert_eq(failed, ig_ban_has_failed(b, &k, &rules, at[i]), "has_failed differs at +%llu",
		             (unsigned long long)(at[i] - t));
		seen_banned += banned;
		seen_failed_only += failed && !banned;
		seen_clear += !failed;
		ig_ban_look(&banned, &failed, b, &other, &rules, at[i]);
		cr_assert(!banned && !failed, "an address never seen is neither banned nor failing");
	}
	cr_assert(seen_banned && seen_failed_only && seen_clear, "every stage was looked at");
	bool banned = true, failed = true;
	ig_ban_look(&banned, &failed, NULL, &k, &rules, t);
	cr_assert(!banned && !failed, "no table: nothing known");
	ig_ban_free(b);
}
