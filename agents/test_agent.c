/*
 * test_agent.c: unit tests for the parts of the agent that need no broker.
 *
 * Why this exists: the backoff schedule decides how hard a fleet hits a
 * recovering broker; its bounds must hold for every draw of the jitter.
 * The connection lifecycle itself is tested against a real broker by the
 * integration tests.
 */
#include <criterion/criterion.h>
#include <sodium.h>

#include "agent.h"

Test(agent_backoff, doubles_from_one_second_to_sixty_with_jitter)
{
	cr_assert_eq(ig_init(), IG_OK);
	static const uint64_t nominal_s[] = {1, 2, 4, 8, 16, 32, 60, 60, 60, 60};
	for (unsigned failures = 0; failures < 10; failures++) {
		uint64_t nominal = nominal_s[failures] * 1000000u;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int draw = 0; draw < 400; draw++) {
			uint64_t d = ig_agent_backoff_us(failures);
			cr_assert_geq(d, nominal * 8 / 10, "failures %u: %lu below -20%%", failures, (unsigned long)d);
			cr_assert_leq(d, nominal * 12 / 10, "failures %u: %lu above +20%%", failures, (unsigned long)d);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* The jitter must actually vary: 400 draws spanning < 10% would mean it is broken. */
		cr_assert_gt(hi - lo, nominal / 10, "failures %u: jitter range too narrow", failures);
	}
}

Test(agent_backoff, huge_failure_counts_stay_capped)
{
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_leq(ig_agent_backoff_us(UINT32_MAX), 72000000u);
	cr_assert_geq(ig_agent_backoff_us(UINT32_MAX), 48000000u);
}

Test(agent_config, rejects_bad_identity_before_touching_the_key)
{
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1883, .cluster = "c1", .id = "bad id!",
	                       .key_path = "/nonexistent", .heartbeat_s = 30, .ttl_s = 300};
	ig_agent *a = (ig_agent *)1;
	ig_error err = {0};
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert_null(a);
	cr_assert(strstr(err.msg, "identity id") != NULL, "message: %s", err.msg);

	cfg.id = "dev1";
	cfg.cluster = "";
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "cluster") != NULL, "message: %s", err.msg);

	cfg.cluster = "c1";
	cfg.port = 70000;
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "port") != NULL, "message: %s", err.msg);
}
