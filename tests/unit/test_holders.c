/*
 * test_holders.c: ig_holders_choose, the documented algorithm of
 * docs/PROTOCOL.md "Custody: choosing holders": who is eligible, how
 * candidates rank (power, then longest up, then id), and how zones share
 * the holders round-robin (the 3 zones, n = 6 -> 2 per zone).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ig_holders.h"
#include "testutil.h"

static ig_holder_candidate dev(const char *id, const char *zone, uint64_t up_ms)
{
	return (ig_holder_candidate){.id = id, .zone = zone, .role = IG_ROLE_DEVICE, .active = true, .online = true,
	                             .attested = true, .battery_known = true, .mains = true, .up_ms = up_ms};
}

static const ig_holders_opts defaults = {.role_mask = 0, .min_battery = IG_HOLDERS_DEFAULT_MIN_BATTERY};

Test(holders, three_zones_of_four_n_six_gives_two_per_zone)
{
	static char ids[12][8];
	ig_holder_candidate c[12];
	const char *zones[3] = {"a", "b", "c"};
	for (int i = 0; i < 12; i++) {
		snprintf(ids[i], sizeof ids[i], "dev%02d", i);
		/* zone a holds the longest-up devices, so the other zones must still get their share */
		c[i] = dev(ids[i], zones[i / 4], (uint64_t)(1000 - i));
	}
	size_t chosen[6];
	ig_error err = {0};
	cr_assert_eq(ig_holders_choose(chosen, c, 12, 6, &defaults, &err), IG_OK, "%s", err.msg);
	int per_zone[3] = {0};
	for (int i = 0; i < 6; i++)
		per_zone[chosen[i] / 4]++;
	cr_expect_eq(per_zone[0], 2);
	cr_expect_eq(per_zone[1], 2);
	cr_expect_eq(per_zone[2], 2);
	/* Round robin, zones in order of their best member, each zone in rank order. */
	size_t expect[6] = {0, 4, 8, 1, 5, 9};
	for (int i = 0; i < 6; i++)
		cr_expect_eq(chosen[i], expect[i], "holder %d: %s, expected %s", i + 1, c[chosen[i]].id, c[expect[i]].id);
}

Test(holders, zones_are_ordered_by_their_best_member_and_no_zone_is_a_zone)
{
	ig_holder_candidate c[] = {
		dev("a1", "a", 10), dev("a2", "a", 9), dev("n1", NULL, 50), dev("n2", "", 5), dev("b1", "b", 20),
	};
	size_t chosen[5];
	ig_error err = {0};
	cr_assert_eq(ig_holders_choose(chosen, c, 5, 5, &defaults, &err), IG_OK, "%s", err.msg);
	/* zone "" (n1 up 50) first, then b (20), then a (10); round 2: n2, a2 */
	const char *expect[] = {"n1", "b1", "a1", "n2", "a2"};
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(c[chosen[i]].id, expect[i], "holder %d", i + 1);
}

Test(holders, power_ranks_before_uptime)
{
	ig_holder_candidate c[] = {
		dev("low", NULL, 900), dev("unknown", NULL, 800), dev("mains", NULL, 1), dev("charged", NULL, 2),
		dev("edge", NULL, 3),
	};
	c[0].mains = false;
	c[0].battery_percent = 29;        /* below 30: low */
	c[1].battery_known = false;       /* no battery reported: unknown */
	c[3].mains = false;
	c[3].battery_percent = 80;
	c[4].mains = false;
	c[4].battery_percent = 30;        /* exactly the threshold counts as powered */
	cr_expect_eq(ig_holders_power(&c[0], &defaults), IG_HOLDER_POWER_LOW);
	cr_expect_eq(ig_holders_power(&c[1], &defaults), IG_HOLDER_POWER_UNKNOWN);
	cr_expect_eq(ig_holders_power(&c[4], &defaults), IG_HOLDER_POWER_GOOD);
	size_t chosen[5];
	ig_error err = {0};
	cr_assert_eq(ig_holders_choose(chosen, c, 5, 5, &defaults, &err), IG_OK, "%s", err.msg);
	const char *expect[] = {"edge", "charged", "mains", "unknown", "low"};
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(c[chosen[i]].id, expect[i], "holder %d", i + 1);

	/* A higher threshold makes "edge" (30%) and "charged" (80% < 90) low. */
	ig_holders_opts strict = {.min_battery = 90};
	cr_assert_eq(ig_holders_choose(chosen, c, 5, 2, &strict, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(c[chosen[0]].id, "mains");
	cr_expect_str_eq(c[chosen[1]].id, "unknown");
}

Test(holders, ties_go_to_the_longest_up_then_the_id)
{
	ig_holder_candidate c[] = {dev("d-b", NULL, 100), dev("d-c", NULL, 100), dev("d-a", NULL, 100), dev("old", NULL, 101)};
	size_t chosen[4];
	ig_error err = {0};
	cr_assert_eq(ig_holders_choose(chosen, c, 4, 4, &defaults, &err), IG_OK, "%s", err.msg);
	const char *expect[] = {"old", "d-a", "d-b", "d-c"};
	for (int i = 0; i < 4; i++)
		cr_expect_str_eq(c[chosen[i]].id, expect[i], "holder %d", i + 1);
}

Test(holders, only_eligible_candidates_hold)
{
	ig_holder_candidate c[] = {
		dev("offline", NULL, 9), dev("revoked", NULL, 9), dev("unattested", NULL, 9), dev("analyst", NULL, 9),
		dev("ok1", NULL, 1), dev("ok2", NULL, 2),
	};
	c[0].online = false;
	c[1].active = false;
	c[2].attested = false;
	c[3].role = IG_ROLE_ANALYST;
	for (int i = 0; i < 4; i++)
		cr_expect_not(ig_holders_eligible(&c[i], &defaults), "%s", c[i].id);
	size_t chosen[3];
	ig_error err = {0};
	cr_assert_eq(ig_holders_choose(chosen, c, 6, 2, &defaults, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(c[chosen[0]].id, "ok2");
	cr_expect_str_eq(c[chosen[1]].id, "ok1");

	cr_expect_eq(ig_holders_choose(chosen, c, 6, 3, &defaults, &err), IG_ERR_RANGE);
	cr_expect(strstr(err.msg, "2 eligible devices") != NULL, "%s", err.msg);

	/* holder_roles ["device", "analyst"] */
	ig_holders_opts roles = {.role_mask = (1u << IG_ROLE_DEVICE) | (1u << IG_ROLE_ANALYST), .min_battery = 30};
	cr_assert_eq(ig_holders_choose(chosen, c, 6, 3, &roles, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(c[chosen[0]].id, "analyst");
}

Test(holders, refuses_bad_arguments)
{
	ig_holder_candidate c[] = {dev("a", NULL, 1), dev("b", NULL, 1)};
	size_t chosen[2];
	ig_error err = {0};
	cr_expect_eq(ig_holders_choose(chosen, c, 2, 0, &defaults, &err), IG_ERR_INVAL);
	cr_expect_eq(ig_holders_choose(chosen, c, 2, 256, &defaults, &err), IG_ERR_INVAL);
	c[1].id = NULL;
	cr_expect_eq(ig_holders_choose(chosen, c, 2, 1, &defaults, &err), IG_ERR_INVAL);
	cr_expect_eq(ig_holders_choose(chosen, NULL, 0, 1, &defaults, &err), IG_ERR_RANGE, "no candidates at all");
}
