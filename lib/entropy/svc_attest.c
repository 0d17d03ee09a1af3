/*
 * svc_attest.c: the attestation service (ig_svc_attest.h; docs/PROTOCOL.md,
 * "attest").
 *
 * Why this exists: see ig_svc_attest.h. The report is checked before the
 * verdict is taken, so an unsigned report cannot flag (or unflag) a device;
 * and the verdict changes the device's memory at once (its entropy is
 * refused from the next sample) while the audit record follows.
 */
#include "ig_svc_attest.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_attest.h"
#include "ig_json.h"

#define ATTEST_DOMAIN "iotguard-attest-v1"
#define ATTEST_MAX_AGE_MS (10u * 60u * 1000u)

struct ig_svc_attest {
	ig_state *st;
	ig_svc_attest_config cfg;
	uint64_t reports, over_rate, disallowed;
};

typedef struct attest_pending {
	ig_svc_attest *a;
	char id[IG_ID_MAX + 1];
} attest_pending;

ig_svc_attest *ig_svc_attest_new(ig_state *st, const ig_svc_attest_config *cfg)
{
	ig_svc_attest *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->st = st;
	a->cfg = *cfg;
	return a;
}

void ig_svc_attest_free(ig_svc_attest *a)
{
	free(a);
}

int ig_svc_attest_decode(ig_svc_attest_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(req))
		return IG_ERR_INVAL;
	const cJSON *mj = cJSON_GetObjectItemCaseSensitive(req, "measurement");
	const cJSON *tsj = cJSON_GetObjectItemCaseSensitive(req, "ts");
	const cJSON *sj = cJSON_GetObjectItemCaseSensitive(req, "sig");
	if (!cJSON_IsString(mj) ||
	    ig_hex_decode(out->measurement, sizeof out->measurement, mj->valuestring, strlen(mj->valuestring)) != IG_OK ||
	    ig_json_uint(&out->ts_ms, tsj, 0, IG_JSON_UINT_MAX) != IG_OK || !cJSON_IsString(sj))
		return IG_ERR_INVAL;
	out->sig_hex_ok = ig_hex_decode(out->sig, sizeof out->sig, sj->valuestring, strlen(sj->valuestring)) == IG_OK;
	return IG_OK;
}

bool ig_svc_attest_verify(const ig_identity *who, const ig_svc_attest_req *r)
{
	if (!r->sig_hex_ok)
		return false;
	uint8_t msg[sizeof ATTEST_DOMAIN + IG_ID_MAX + 1 + IG_HASH_BYTES + 8];
	size_t n = 0;
	memcpy(msg, ATTEST_DOMAIN, sizeof ATTEST_DOMAIN);   /* includes the 0x00 separator */
	n += sizeof ATTEST_DOMAIN;
	memcpy(msg + n, who->id, who->id_len);
	n += who->id_len;
	msg[n++] = 0;
	memcpy(msg + n, r->measurement, IG_HASH_BYTES);
	n += IG_HASH_BYTES;
	ig_put_u64(msg + n, r->ts_ms);
	n += 8;
	return crypto_sign_verify_detached(r->sig, msg, n, who->pk) == 0;
}

static void on_attest_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	attest_pending *ap = ctx;
	ig_device *d = ig_state_device(ap->a->st, ap->id);
	if (d)
		d->attest_in_flight = false;
	if (status == IG_ERR_UNKNOWN) {
		/* An accepted report gets no reply, so a silent loss would look
		 * like success; the agent reports again at its next connect, which
		 * after the restart is a first report and recorded. */
		ig_decision_refuse(out, "attest", NULL, IG_DECISION_E_OUTCOME_UNKNOWN,
		                   "a disk write failed after the attest record was written, so it may or may not be "
		                   "durable; report the measurement again once the broker is back");
	} else if (status != IG_OK) {
		/* Certainly not recorded: forget the measurement, so that the same
		 * report again counts as a change and is written. The verdict
		 * stays, so a disallowed device stays refused. */
		if (d)
			sodium_memzero(d->measurement, sizeof d->measurement);
		if (status == IG_ERR_CONFLICT)
			/* An attest record breaks no state rule; a record of another
			 * broker (this id revoked or re-enrolled there) came first. */
			ig_decision_refuse(out, "attest", NULL, "conflict",
			                   "another broker changed this identity in the shared ledger first, so the "
			                   "measurement was not recorded; reconnect and report it again");
		else
			ig_decision_refuse(out, "attest", NULL, "storage_failed", "the measurement was not recorded: %s",
			                   ig_decision_ledger_refusal(status));
	}
	free(ap);
}

bool ig_svc_attest_request(ig_decision *out, ig_svc_attest *a, const ig_policy *policy, const char *id,
                           const cJSON *req, uint64_t now_ms)
{
	const ig_identity *who = ig_state_active(a->st, id, IG_ROLE_NONE);
	ig_device *d = who ? ig_state_device(a->st, id) : NULL;
	if (!d)
		return false;
	ig_svc_attest_req r;
	if (ig_svc_attest_decode(&r, req) != IG_OK) {
		ig_decision_refuse(out, "attest", NULL, "malformed", "attest needs \"measurement\" (64 hex), \"ts\" (Unix "
		                   "ms, a whole number up to 2^53-1) and \"sig\" (128 hex)");
		return false;
	}
	if ((r.ts_ms > now_ms ? r.ts_ms - now_ms : now_ms - r.ts_ms) > ATTEST_MAX_AGE_MS) {
		ig_decision_refuse(out, "attest", NULL, "stale",
		                   "attestation timestamp is more than 10 minutes off; check the clock");
		return false;
	}
	if (!ig_svc_attest_verify(who, &r)) {
		ig_decision_refuse(out, "attest", NULL, "bad_signature",
		                   "attestation signature does not verify with the enrolled key");
		return false;
	}
	a->reports++;
	int verdict = ig_policy_measurement_allowed(policy, (ig_role)who->role, r.measurement);
	uint8_t state = verdict == 1 ? IG_ATTEST_ALLOWED : verdict == 0 ? IG_ATTEST_DISALLOWED : IG_ATTEST_UNLISTED;
	bool changed = d->attest != state || sodium_memcmp(d->measurement, r.measurement, IG_HASH_BYTES) != 0;
	/* Every accepted change is a ledger record, so changes are rationed
	 * (lib/entropy/attest.c); a refused one leaves the last recorded state. */
	ig_attest_decision dec = ig_attest_admit(&d->attest_rate, changed, d->attest_in_flight, now_ms,
	                                         a->cfg.max_per_hour);
	if (dec == IG_ATTEST_REFUSED_RATE) {
		a->over_rate++;
		if (d->attest_in_flight)
			ig_decision_refuse(out, "attest", NULL, "over_rate",
			                   "the previous measurement is still being recorded; report the new one again in a "
			                   "moment");
		else
			ig_decision_refuse(out, "attest", NULL, "over_rate",
			                   "more than %u measurement changes this hour; the last recorded measurement stands",
			                   a->cfg.max_per_hour);
		return false;
	}
	bool flagged = state == IG_ATTEST_DISALLOWED && changed;
	if (flagged)
		a->disallowed++;
	memcpy(d->measurement, r.measurement, IG_HASH_BYTES);
	d->attest = state;
	if (dec != IG_ATTEST_RECORD)
		return flagged;
	/* First report, or a change: that is worth an audit record. */
	ig_attest rec = {.allowed = verdict == 1 ? 1 : verdict == 0 ? 0 : 2};
	snprintf(rec.id, sizeof rec.id, "%s", id);
	memcpy(rec.measurement, r.measurement, IG_HASH_BYTES);
	uint8_t body[256];
	int blen = ig_record_attest_encode(body, sizeof body, &rec);
	attest_pending *ap = blen < 0 ? NULL : calloc(1, sizeof *ap);
	if (!ap)
		return flagged;   /* the verdict holds; the next change is recorded */
	ap->a = a;
	snprintf(ap->id, sizeof ap->id, "%s", id);
	if (!ig_decision_append(out, IG_REC_ATTEST, body, (size_t)blen, on_attest_done, ap)) {
		free(ap);
		return flagged;
	}
	d->attest_in_flight = true;
	return flagged;
}

void ig_svc_attest_get_counts(const ig_svc_attest *a, ig_svc_attest_counts *out)
{
	out->reports = a->reports;
	out->over_rate = a->over_rate;
	out->disallowed = a->disallowed;
}

static bool add_flagged(void *ctx, const char *id, ig_device *d)
{
	if (d->attest == IG_ATTEST_DISALLOWED)
		cJSON_AddItemToArray(ctx, cJSON_CreateString(id));
	return true;
}

void ig_svc_attest_stats(const ig_svc_attest *a, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "attestation");
	cJSON_AddNumberToObject(o, "reports", (double)a->reports);
	cJSON_AddNumberToObject(o, "over_rate", (double)a->over_rate);
	cJSON *flagged = cJSON_AddArrayToObject(o, "flagged");
	ig_state_device_foreach(a->st, add_flagged, flagged);
}
