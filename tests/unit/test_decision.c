/*
 * test_decision.c: the decision value the services fill (ig_decision.h).
 *
 * Why this exists: services that answer from their tick (custody, key
 * rings) gather replies to many devices into one decision chain; where a
 * reply lands decides whether anything is lost, so the chaining rule is
 * tested on its own.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <string.h>

#include "ig_decision.h"

static cJSON *msg(int n)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "n", n);
	return o;
}

static size_t chain_len(const ig_decision *d)
{
	size_t n = 0;
	for (; d; d = d->next)
		n++;
	return n;
}

Test(decision, reply_chained_fills_a_link_then_opens_another)
{
	ig_decision d = {0};
	for (int i = 0; i < IG_DECISION_REPLIES_MAX; i++)
		cr_assert(ig_decision_reply_chained(&d, "dev1", msg(i)));
	cr_assert_eq(d.kind, IG_DECISION_REPLY);
	cr_assert_eq(d.n_replies, IG_DECISION_REPLIES_MAX);
	cr_assert_eq(chain_len(&d), 1);
	cr_assert(ig_decision_reply_chained(&d, "dev2", msg(99)));
	cr_assert_eq(chain_len(&d), 2, "a full link must not drop the reply");
	cr_assert_eq(d.next->kind, IG_DECISION_REPLY);
	cr_assert_str_eq(d.next->replies[0].to, "dev2");
	ig_decision_clear(&d);
}

Test(decision, reply_chained_never_joins_an_append_or_refusal)
{
	ig_decision d = {0};
	uint8_t body[1] = {0};
	cr_assert(ig_decision_append(&d, 1, body, sizeof body, NULL, NULL));
	cr_assert(ig_decision_reply_chained(&d, "dev1", msg(1)));
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "the append must stay an append");
	cr_assert_eq(chain_len(&d), 2);
	cr_assert_eq(d.next->n_replies, 1);
	ig_decision_clear(&d);

	ig_decision r = {0};
	ig_decision_refuse(&r, "key_ring", "n1", "malformed", "bad");
	cr_assert(ig_decision_reply_chained(&r, "dev1", msg(2)));
	cr_assert_eq(r.kind, IG_DECISION_REFUSE);
	cr_assert_eq(chain_len(&r), 2);
	ig_decision_clear(&r);
}

Test(decision, reply_chained_without_a_body_adds_nothing)
{
	ig_decision d = {0};
	cr_assert_not(ig_decision_reply_chained(&d, "dev1", NULL));
	cr_assert_eq(d.kind, IG_DECISION_NONE);
	cr_assert_eq(chain_len(&d), 1);
	ig_decision_clear(&d);
}

/* A shared ledger's two new outcomes are named for what they are: the
 * database being unreachable is retriable, a conflict is not a disk fault. */
Test(decision, ledger_refusal_names_an_unreachable_database_and_a_conflict)
{
	const char *down = ig_decision_ledger_refusal(IG_ERR_UNAVAILABLE);
	cr_expect(strstr(down, "database") && strstr(down, "unreachable") && strstr(down, "retry"), "%s", down);
	cr_expect_null(strstr(down, "disk"), "not a disk fault: %s", down);
	const char *lost = ig_decision_ledger_refusal(IG_ERR_CONFLICT);
	cr_expect(strstr(lost, "another broker") && strstr(lost, "nothing was recorded"), "%s", lost);
	cr_expect_null(strstr(lost, "disk"), "not a disk fault: %s", lost);
	cr_expect(strstr(ig_decision_ledger_refusal(IG_ERR_IO), "disk"), "the disk default stays");
}
