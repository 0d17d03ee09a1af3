/*
 * svc_fixture.h: what the unit tests of lib's services (test_svc_*.c)
 * share: a cluster state built by applying records, a policy from text, and
 * the steps of carrying out a decision by hand.
 *
 * Why this exists: a service is tested the way the plugin runs it (records
 * applied to an ig_state, a request, the decision read, done called with
 * the ledger's verdict) but without a broker; written once so the three
 * service tests cannot drift in how they drive it.
 */
#ifndef IG_SVC_FIXTURE_H
#define IG_SVC_FIXTURE_H

#include <criterion/criterion.h>

#include <cJSON.h>
#include <string.h>

#include "ig_decision.h"
#include "ig_policy.h"
#include "ig_state.h"
#include "testutil.h"

/* Applies one record of type with body to st as the next ledger index. */
static inline void fx_apply(ig_state *st, uint16_t type, const uint8_t *body, size_t len)
{
	static uint64_t next_index = 1;
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.index = next_index++;
	rec.ts_ms = 1767225600000ull;
	rec.type = type;
	rec.body = body;
	rec.body_len = (uint32_t)len;
	ig_error err = {0};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "record %u: %s", type, err.msg);
}

static inline void fx_enroll(ig_state *st, const char *id, ig_role role, const uint8_t pk[32])
{
	uint8_t body[512];
	fx_apply(st, IG_REC_ENROLL, body, tu_enroll_body(body, sizeof body, id, role, pk, "admin"));
}

static inline void fx_revoke(ig_state *st, const char *id)
{
	uint8_t body[512];
	fx_apply(st, IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, id, "admin"));
}

static inline ig_policy *fx_policy(const char *json)
{
	ig_policy *p = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(json, strlen(json), &p, &err), IG_OK, "policy: %s", err.msg);
	return p;
}

/* Takes the append out of d (cleared) and reports the ledger's verdict to
 * its done, which fills out. */
static inline void fx_complete(ig_decision *d, int status, const ig_record *rec, ig_decision *out)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND);
	ig_decision_done_fn done = d->done;
	void *ctx = d->done_ctx;
	d->done = NULL;
	ig_decision_clear(d);
	memset(out, 0, sizeof *out);
	done(ctx, status, rec, out);
}

/* Fails unless d refuses request with error (and nonce, "" = none), and its
 * message contains part (NULL = any). */
static inline void fx_expect_refusal(const ig_decision *d, const char *request, const char *error, const char *nonce,
                                     const char *part)
{
	cr_assert_eq(d->kind, IG_DECISION_REFUSE, "expected a refusal %s, got kind %d", error, d->kind);
	cr_expect_str_eq(d->error, error, "message: %s", d->message);
	cr_expect_str_eq(d->request, request);
	cr_expect_str_eq(d->nonce, nonce);
	if (part)
		cr_expect_not_null(strstr(d->message, part), "\"%s\" not in \"%s\"", part, d->message);
	cJSON *o = ig_decision_error_json(d);
	cr_assert_not_null(o);
	cr_expect_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "error");
	cr_expect_eq(cJSON_GetObjectItem(o, "nonce") != NULL, nonce[0] != '\0', "nonce only when there is one");
	cJSON_Delete(o);
}

#endif
