/*
 * duty_analyst.c: the analyst: redeems collectors' coins and answers with
 * statistics.
 *
 * Why this exists: an analyst sees every data message but can read none of
 * them until the bank burns the message's coin for it (a durable, one-time
 * act) and hands back the payload and result keys. This duty asks the bank
 * for each message it sees, checks that the bank's reply is for exactly the
 * message it asked about (nonce, header hash, suite and payload nonce, in
 * the clear and inside the box), decrypts, keeps running statistics per
 * collector and stream, and publishes them sealed under the coin's result
 * key, so only the collector can read them and only as the answer to that
 * message. A payload it cannot use (not a JSON object, or not opening
 * with the coin's keys) still gets an answer, an error result, since the
 * coin is burned either way. A refused redeem is logged here and told to
 * nobody (the coin was not burned; the collector refunds it when no result
 * comes). A redeem of unknown outcome (the bank's disk failed after its
 * record was handed over) is not a refusal: the coin may be burned, so the
 * same redeem is sent again with back-off until the bank answers it either
 * way, since the bank gives its redeemer the same keys again. Keys are
 * wiped as soon as the result is out.
 */
#include "wallet.h"
#include "ig_json.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_PERIOD_US 60000000u
#define RESULT_MAX 2048
#define REDEEM_REQUEST_MAX (IG_BANK_TOPIC_MAX + 512)
#define RETRY_UNSENT_US 1000000u      /* a due resend that could not go out is tried again this much later */

int ig_analyst_init(ig_analyst_state *an, const ig_pin_state *pin)
{
	memset(an, 0, sizeof *an);
	an->pin = pin;
	return IG_OK;
}

/* ---- pending redeems -------------------------------------------------------------- */

ig_redeem *ig_redeem_add(ig_redeem_table *t, const char *topic, const char *collector, const char *stream,
                         const uint8_t *msg, size_t len, uint64_t now_ms, int *err)
{
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	*err = IG_ERR_INVAL;
	if (ig_coin_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len) != IG_OK ||
	    strlen(topic) >= IG_BANK_TOPIC_MAX || strlen(collector) > IG_ID_MAX || strlen(stream) > IG_ID_MAX)
		return NULL;
	ig_redeem *r = NULL;
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING && !r; i++)
		if (!t->r[i].used)
			r = &t->r[i];
	*err = IG_ERR_RANGE;
	if (!r)
		return NULL;
	*err = IG_ERR_NOMEM;
	uint8_t *copy = malloc(len);
	if (!copy)
		return NULL;
	memcpy(copy, msg, len);
	memset(r, 0, sizeof *r);
	r->used = true;
	r->msg = copy;
	r->len = len;
	r->suite = suite;
	memcpy(r->payload_nonce, nonce, IG_COIN_NONCE_BYTES);
	crypto_generichash(r->header_hash, IG_HASH_BYTES, header, header_len, NULL, 0);
	snprintf(r->topic, sizeof r->topic, "%s", topic);
	snprintf(r->collector, sizeof r->collector, "%s", collector);
	snprintf(r->stream, sizeof r->stream, "%s", stream);
	ig_bank_nonce(r->nonce);
	r->sent_ms = now_ms;
	*err = IG_OK;
	return r;
}

ig_redeem *ig_redeem_find(ig_redeem_table *t, const char *nonce)
{
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++)
		if (t->r[i].used && strcmp(t->r[i].nonce, nonce) == 0)
			return &t->r[i];
	return NULL;
}

void ig_redeem_drop(ig_redeem *r)
{
	free(r->msg);
	memset(r, 0, sizeof *r);
}

size_t ig_redeem_expire(ig_redeem_table *t, uint64_t now_ms, uint64_t timeout_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++) {
		/* A redeem waiting to be resent is not unanswered: its own
		 * retry budget bounds it. */
		if (t->r[i].used && !t->r[i].retry_at_us && now_ms - t->r[i].sent_ms >= timeout_ms) {
			ig_redeem_drop(&t->r[i]);
			n++;
		}
	}
	return n;
}

size_t ig_redeem_count(const ig_redeem_table *t)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++)
		n += t->r[i].used;
	return n;
}

void ig_redeem_clear(ig_redeem_table *t)
{
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++)
		if (t->r[i].used)
			ig_redeem_drop(&t->r[i]);
}

int ig_redeem_request(char *out, size_t cap, const ig_redeem *r)
{
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (ig_coin_data_parse(r->msg, r->len, &header, &header_len, &suite, &nonce, &ct, &ct_len) != IG_OK)
		return IG_ERR_INVAL;
	size_t b64_cap = sodium_base64_ENCODED_LEN(header_len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64_cap);
	if (!b64)
		return IG_ERR_NOMEM;
	sodium_bin2base64(b64, b64_cap, header, header_len, sodium_base64_VARIANT_ORIGINAL);
	/* topic, nonce and base64 need no JSON escaping: ids, hex and [A-Za-z0-9+/=]. */
	int n = snprintf(out, cap, "{\"type\":\"redeem\",\"topic\":\"%s\",\"header\":\"%s\",\"nonce\":\"%s\"}", r->topic,
	                 b64, r->nonce);
	free(b64);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

int ig_redeem_accept(const ig_redeem *r, const cJSON *msg, const ig_box_key *bk, uint8_t payload_key[32],
                     uint8_t result_key[32], ig_error *err)
{
	const cJSON *hash_hex = cJSON_GetObjectItemCaseSensitive(msg, "header_hash");
	const cJSON *suite = cJSON_GetObjectItemCaseSensitive(msg, "suite");
	uint8_t hash[IG_HASH_BYTES], box[IG_REDEEM_BOX_BYTES];
	if (!cJSON_IsString(hash_hex) ||
	    ig_hex_decode(hash, sizeof hash, hash_hex->valuestring, strlen(hash_hex->valuestring)) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "the reply has no valid \"header_hash\"");
	if (sodium_memcmp(hash, r->header_hash, IG_HASH_BYTES) != 0)
		return ig_error_set(err, IG_ERR_INVAL, "the reply names another message (header_hash differs)");
	if (!cJSON_IsString(suite) || ig_suite_parse(suite->valuestring) != r->suite)
		return ig_error_set(err, IG_ERR_INVAL, "the reply names another suite than the message");
	int n = ig_ch_box_open(box, sizeof box, msg, bk);
	if (n == IG_ERR_CRYPTO)
		return ig_error_set(err, IG_ERR_CRYPTO, "the box is not from the pinned cluster head or was altered");
	if (n != IG_REDEEM_BOX_BYTES) {
		sodium_memzero(box, sizeof box);
		return ig_error_set(err, IG_ERR_INVAL, "the box is malformed (%d)", n);
	}
	const uint8_t *boxed_nonce = box + 64, *boxed_hash = box + 64 + IG_COIN_NONCE_BYTES;
	if (sodium_memcmp(boxed_hash, r->header_hash, IG_HASH_BYTES) != 0 ||
	    sodium_memcmp(boxed_nonce, r->payload_nonce, IG_COIN_NONCE_BYTES) != 0) {
		sodium_memzero(box, sizeof box);
		return ig_error_set(err, IG_ERR_CRYPTO, "the boxed header hash or payload nonce is not the message's");
	}
	memcpy(payload_key, box, 32);
	memcpy(result_key, box + 32, 32);
	sodium_memzero(box, sizeof box);
	return IG_OK;
}

/* ---- running statistics --------------------------------------------------------- */

ig_stat_series *ig_stats_series(ig_stats *st, const char *collector, const char *stream)
{
	ig_stat_series *free_slot = NULL, *oldest = NULL;
	st->clock++;
	for (size_t i = 0; i < IG_STATS_MAX_SERIES; i++) {
		ig_stat_series *s = &st->s[i];
		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (strcmp(s->collector, collector) == 0 && strcmp(s->stream, stream) == 0) {
			s->touched = st->clock;
			return s;
		}
		if (!oldest || s->touched < oldest->touched)
			oldest = s;
	}
	ig_stat_series *s = free_slot ? free_slot : oldest;
	memset(s, 0, sizeof *s);
	s->used = true;
	snprintf(s->collector, sizeof s->collector, "%s", collector);
	snprintf(s->stream, sizeof s->stream, "%s", stream);
	s->touched = st->clock;
	return s;
}

int ig_stats_add(ig_stat_series *s, const char *name, double v)
{
	if (!isfinite(v) || strlen(name) == 0 || strlen(name) > IG_STATS_NAME_MAX)
		return IG_ERR_INVAL;
	ig_stat_field *f = NULL;
	for (size_t i = 0; i < s->nfields && !f; i++)
		if (strcmp(s->field[i].name, name) == 0)
			f = &s->field[i];
	if (!f) {
		if (s->nfields >= IG_STATS_MAX_FIELDS)
			return IG_ERR_RANGE;
		f = &s->field[s->nfields++];
		memset(f, 0, sizeof *f);
		snprintf(f->name, sizeof f->name, "%s", name);
		f->min = f->max = v;
	}
	/* Welford's update: no sum that grows without bound or loses precision. */
	f->count++;
	f->mean += (v - f->mean) / (double)f->count;
	if (v < f->min)
		f->min = v;
	if (v > f->max)
		f->max = v;
	return IG_OK;
}

/* Field names come from the network and go into JSON and logs. */
static bool field_name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= IG_STATS_NAME_MAX && ig_id_valid(name, n);
}

int ig_stats_feed(ig_stat_series *s, const cJSON *payload)
{
	if (!cJSON_IsObject(payload))
		return IG_ERR_INVAL;
	int fed = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, payload) {
		if (!cJSON_IsNumber(item) || !item->string || !field_name_ok(item->string) || strcmp(item->string, "seq") == 0 ||
		    strcmp(item->string, "t") == 0)
			continue;
		if (ig_stats_add(s, item->string, item->valuedouble) == IG_OK)
			fed++;
	}
	s->messages++;
	return fed;
}

const ig_stat_field *ig_stats_field(const ig_stat_series *s, const char *name)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (strcmp(s->field[i].name, name) == 0)
			return &s->field[i];
	return NULL;
}

int ig_stats_result(char *out, size_t cap, const ig_stat_series *s, uint64_t seq)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *stats = root ? cJSON_AddObjectToObject(root, "stats") : NULL;
	int rc = IG_ERR_NOMEM;
	if (!stats || !cJSON_AddNumberToObject(root, "seq", (double)seq))
		goto done;
	for (size_t i = 0; i < s->nfields; i++) {
		const ig_stat_field *f = &s->field[i];
		cJSON *o = cJSON_AddObjectToObject(stats, f->name);
		if (!o || !cJSON_AddNumberToObject(o, "count", (double)f->count) || !cJSON_AddNumberToObject(o, "mean", f->mean) ||
		    !cJSON_AddNumberToObject(o, "min", f->min) || !cJSON_AddNumberToObject(o, "max", f->max))
			goto done;
	}
	rc = IG_ERR_RANGE;
	if (cap > INT32_MAX || !cJSON_PrintPreallocated(root, out, (int)cap, false))
		goto done;
	rc = (int)strlen(out);
done:
	cJSON_Delete(root);
	return rc;
}

/* "load mean 0.52 [0.10..0.90], temp_c mean 41.3 [40.0..43.0] (5 messages)" */
static void summary(char *out, size_t cap, const ig_stat_series *s)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->nfields && used < cap; i++) {
		const ig_stat_field *f = &s->field[i];
		int n = snprintf(out + used, cap - used, "%s%s mean %.10g [%.10g..%.10g]", i ? ", " : "", f->name, f->mean,
		                 f->min, f->max);
		if (n < 0)
			return;
		used += (size_t)n;
	}
	if (used < cap)
		snprintf(out + used, cap - used, "%s(%" PRIu64 " messages)", used ? " " : "", s->messages);
}

/* ---- the duty --------------------------------------------------------------------- */

static void report(const ig_analyst_state *an)
{
	const ig_analyst_counters *k = &an->counters;
	size_t series = 0;
	for (size_t i = 0; i < IG_STATS_MAX_SERIES; i++)
		series += an->stats.s[i].used;
	ig_log(IG_LOG_INFO,
	       "analyst: data messages %" PRIu64 ", redeemed %" PRIu64 ", refused %" PRIu64 ", results sent %" PRIu64
	       ", error results sent %" PRIu64 ", dropped %" PRIu64 ", resent after unknown outcome %" PRIu64
	       ", given up %" PRIu64 "; %zu redeems pending; %zu series",
	       k->messages, k->redeemed, k->refused, k->results, k->error_results, k->dropped, k->retried, k->gave_up,
	       ig_redeem_count(&an->redeems), series);
}

static void analyst_on_connect(ig_agent *a, void *state)
{
	ig_analyst_state *an = state;
	char filter[IG_BANK_TOPIC_MAX];
	snprintf(filter, sizeof filter, "iotguard/%s/dev/+/data/+", ig_agent_cluster(a));
	ig_agent_subscribe(a, filter, 1);
	uint64_t now = ig_mono_us();
	if (!an->next_report_us)
		an->next_report_us = now + REPORT_PERIOD_US;
	/* The broker may be back after the failure that left these redeems
	 * unknown: resend them at once (the next tick). */
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++)
		if (an->redeems.r[i].used && an->redeems.r[i].retry_at_us > now)
			an->redeems.r[i].retry_at_us = now;
}

static bool analyst_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_analyst_state *an = state;
	char collector[IG_ID_MAX + 1], stream[IG_ID_MAX + 1];
	if (ig_bank_topic_split(topic, ig_agent_cluster(a), "data", collector, stream) != IG_OK)
		return false;
	an->counters.messages++;
	if (!ig_ch_box_ensure(a, &an->box, an->pin)) {
		char why[PATH_MAX + 64];
		an->counters.dropped++;
		ig_log(an->warned_no_pin ? IG_LOG_DEBUG : IG_LOG_WARN, "data from %s/%s not redeemed: %s", collector, stream,
		       ig_pin_untrusted_why(an->pin, why, sizeof why));
		an->warned_no_pin = true;
		return true;
	}
	int err = IG_OK;
	ig_redeem *r = ig_redeem_add(&an->redeems, topic, collector, stream, payload, len, ig_now_ms(), &err);
	if (!r) {
		an->counters.dropped++;
		ig_log(IG_LOG_WARN, "data from %s/%s (%zu bytes) dropped: %s", collector, stream, len,
		       err == IG_ERR_INVAL ? "not a well-formed data message"
		       : err == IG_ERR_RANGE ? "too many redeems awaiting the bank"
		                             : "out of memory");
		return true;
	}
	char request[REDEEM_REQUEST_MAX];
	int n = ig_redeem_request(request, sizeof request, r);
	if (n < 0 || ig_agent_request(a, request, (size_t)n) != IG_OK) {
		an->counters.dropped++;
		ig_log(IG_LOG_WARN, "data from %s/%s dropped: cannot send the redeem request", collector, stream);
		ig_redeem_drop(r);
		return true;
	}
	ig_log(IG_LOG_DEBUG, "redeem requested for %s/%s (%zu bytes)", collector, stream, len);
	return true;
}

int ig_analyst_error_result(char *out, size_t cap, const char *code, const char *message)
{
	/* code and message are our own constants: no escaping needed. */
	int n = snprintf(out, cap, "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

/* Seals text under r's result key and publishes it on r's results topic. */
static int publish_result(ig_agent *a, const ig_redeem *r, const uint8_t result_key[32], const char *text, size_t len)
{
	char results_topic[IG_BANK_TOPIC_MAX];
	uint8_t sealed[RESULT_MAX + 128];
	snprintf(results_topic, sizeof results_topic, "iotguard/%s/dev/%s/results/%s", ig_agent_cluster(a), r->collector,
	         r->stream);
	int slen = ig_coin_result_seal(sealed, sizeof sealed, result_key, r->suite, r->header_hash, results_topic,
	                               (const uint8_t *)text, len);
	if (slen < 0)
		return slen;
	return ig_agent_publish(a, results_topic, sealed, (size_t)slen, 1);
}

/* The coin is burned whatever the payload holds, so a payload we cannot
 * use still gets an answer: the collector learns why, instead of waiting
 * for a result that never comes. */
static void answer_error(ig_agent *a, ig_analyst_state *an, const ig_redeem *r, const uint8_t result_key[32],
                         const char *code, const char *message)
{
	char result[256];
	int n = ig_analyst_error_result(result, sizeof result, code, message);
	if (n < 0 || publish_result(a, r, result_key, result, (size_t)n) != IG_OK) {
		an->counters.dropped++;
		ig_log(IG_LOG_ERR, "cannot send the %s error result to %s/%s", code, r->collector, r->stream);
		return;
	}
	an->counters.error_results++;
	ig_log(IG_LOG_WARN, "data from %s/%s: %s; error result %s sent", r->collector, r->stream, message, code);
}

/* Decrypts r's message, updates its series, publishes the sealed result. */
static void answer(ig_agent *a, ig_analyst_state *an, const ig_redeem *r, const uint8_t payload_key[32],
                   const uint8_t result_key[32])
{
	uint8_t *pt = malloc(IG_COIN_DATA_MAX_PAYLOAD + 1);
	char result[RESULT_MAX], line[512];
	if (!pt) {
		an->counters.dropped++;
		return;
	}
	int n = ig_coin_data_open(pt, IG_COIN_DATA_MAX_PAYLOAD, r->msg, r->len, r->topic, payload_key);
	if (n < 0) {
		free(pt);
		answer_error(a, an, r, result_key, IG_RESULT_ERR_UNDECRYPTABLE,
		             "the payload does not open with the keys of its coin");
		return;
	}
	cJSON *json = cJSON_ParseWithLength((const char *)pt, (size_t)n);
	sodium_memzero(pt, (size_t)n);
	free(pt);
	if (!cJSON_IsObject(json)) {
		cJSON_Delete(json);
		answer_error(a, an, r, result_key, IG_RESULT_ERR_NOT_JSON, "the payload is not a JSON object");
		return;
	}
	const cJSON *seq_item = cJSON_GetObjectItemCaseSensitive(json, "seq");
	uint64_t seq = 0;
	if (ig_json_uint(&seq, seq_item, 0, IG_JSON_UINT_MAX) != IG_OK)
		seq = 0;   /* no usable seq: the result says 0 */
	ig_stat_series *s = ig_stats_series(&an->stats, r->collector, r->stream);
	ig_stats_feed(s, json);
	cJSON_Delete(json);

	int rlen = ig_stats_result(result, sizeof result, s, seq);
	int rc = rlen < 0 ? rlen : publish_result(a, r, result_key, result, (size_t)rlen);
	if (rc != IG_OK) {
		an->counters.dropped++;
		ig_log(IG_LOG_ERR, "cannot send the result for %s/%s seq %" PRIu64 " (error %d)", r->collector, r->stream,
		       seq, rc);
		return;
	}
	an->counters.results++;
	summary(line, sizeof line, s);
	ig_log(IG_LOG_INFO, "%s/%s seq %" PRIu64 ": %s; result sent (%d bytes)", r->collector, r->stream, seq, line, rlen);
}

static bool handle_redeemed(ig_agent *a, ig_analyst_state *an, const cJSON *msg)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	ig_redeem *r = cJSON_IsString(nonce) ? ig_redeem_find(&an->redeems, nonce->valuestring) : NULL;
	if (!r) {
		ig_log(IG_LOG_WARN, "redeemed reply ignored: its nonce matches no redeem of ours");
		return true;
	}
	ig_error err = {0};
	uint8_t payload_key[32], result_key[32];
	if (!ig_ch_box_ensure(a, &an->box, an->pin) ||
	    ig_redeem_accept(r, msg, &an->box.bk, payload_key, result_key, &err) != IG_OK) {
		an->counters.dropped++;
		ig_log(IG_LOG_WARN, "redeemed reply for %s/%s rejected: %s", r->collector, r->stream,
		       err.msg[0] ? err.msg : "no trusted cluster-head key");
		ig_redeem_drop(r);
		return true;
	}
	an->counters.redeemed++;
	answer(a, an, r, payload_key, result_key);
	sodium_memzero(payload_key, sizeof payload_key);
	sodium_memzero(result_key, sizeof result_key);
	ig_redeem_drop(r);
	return true;
}

static bool handle_error(ig_analyst_state *an, const cJSON *msg)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
	ig_redeem *r = cJSON_IsString(nonce) ? ig_redeem_find(&an->redeems, nonce->valuestring) : NULL;
	if (!r)
		return false;
	char safe[48] = "?";
	if (cJSON_IsString(code)) {
		size_t k = 0;
		for (const char *p = code->valuestring; *p && k + 1 < sizeof safe; p++)
			safe[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
		safe[k] = '\0';
	}
	if (strcmp(safe, "outcome_unknown") == 0) {
		/* The coin may be burned: giving up now could waste it, and
		 * repeating the redeem is safe (docs/PROTOCOL.md, "Unknown
		 * outcomes"). */
		if (r->retries < IG_REDEEM_MAX_RETRIES) {
			uint64_t delay = ig_agent_backoff_us(r->retries);
			r->retry_at_us = ig_mono_us() + delay;
			ig_log(IG_LOG_WARN, "the redeem of the message from %s/%s has an unknown outcome (the bank's disk "
			                    "failed); sending it again in %.1f s (retry %u of %u)", r->collector, r->stream,
			       (double)delay / 1e6, r->retries + 1, IG_REDEEM_MAX_RETRIES);
			return true;
		}
		an->counters.gave_up++;
		ig_log(IG_LOG_ERR, "the redeem of the message from %s/%s still has an unknown outcome after %u retries; "
		                   "given up, no result (the collector refunds the coin if it was not burned)",
		       r->collector, r->stream, r->retries);
		ig_redeem_drop(r);
		return true;
	}
	an->counters.refused++;
	ig_log(IG_LOG_INFO, "the bank refused to redeem the message from %s/%s: %s; no result", r->collector, r->stream,
	       safe);
	ig_redeem_drop(r);
	return true;
}

int ig_analyst_retry_prepare(ig_analyst_state *an, char *out, size_t cap, uint64_t now_us, ig_redeem **r)
{
	*r = NULL;
	for (size_t i = 0; i < IG_REDEEM_MAX_PENDING; i++) {
		ig_redeem *x = &an->redeems.r[i];
		if (!x->used || !x->retry_at_us || x->retry_at_us > now_us)
			continue;
		*r = x;
		return ig_redeem_request(out, cap, x);
	}
	return 0;
}

void ig_analyst_retry_sent(ig_analyst_state *an, ig_redeem *r, uint64_t now_ms)
{
	r->retry_at_us = 0;
	r->retries++;
	r->sent_ms = now_ms;   /* unanswered from now on: the usual timeout applies */
	an->counters.retried++;
}

/* Sends every resend that is due; one that cannot go out (no connection)
 * waits, and a reconnect makes it due at once. */
static void send_retries(ig_agent *a, ig_analyst_state *an, uint64_t now_us)
{
	char request[REDEEM_REQUEST_MAX];
	ig_redeem *r;
	int n;
	while ((n = ig_analyst_retry_prepare(an, request, sizeof request, now_us, &r)) != 0) {
		if (n < 0) {
			/* ig_redeem_add parsed this message, so it always rebuilds;
			 * never loop on one that does not. */
			an->counters.dropped++;
			ig_log(IG_LOG_ERR, "cannot rebuild the redeem of the message from %s/%s (error %d); dropped",
			       r->collector, r->stream, n);
			ig_redeem_drop(r);
			continue;
		}
		if (ig_agent_request(a, request, (size_t)n) != IG_OK) {
			r->retry_at_us = now_us + RETRY_UNSENT_US;
			continue;
		}
		ig_analyst_retry_sent(an, r, ig_now_ms());
		ig_log(IG_LOG_INFO, "redeem of the message from %s/%s sent again (retry %u of %u)", r->collector, r->stream,
		       r->retries, IG_REDEEM_MAX_RETRIES);
	}
}

static bool analyst_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_analyst_state *an = state;
	if (strcmp(type, "redeemed") == 0)
		return handle_redeemed(a, an, msg);
	if (strcmp(type, "error") == 0)
		return handle_error(an, msg);
	return false;
}

static void analyst_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_analyst_state *an = state;
	send_retries(a, an, now_us);
	size_t expired = ig_redeem_expire(&an->redeems, ig_now_ms(), IG_REDEEM_TIMEOUT_MS);
	if (expired) {
		an->counters.dropped += expired;
		ig_log(IG_LOG_WARN, "%zu redeems got no answer from the bank within %u s; given up", expired,
		       IG_REDEEM_TIMEOUT_MS / 1000u);
	}
	if (now_us >= an->next_report_us) {
		an->next_report_us = now_us + REPORT_PERIOD_US;
		report(an);
	}
}

static void analyst_on_stop(ig_agent *a, void *state)
{
	ig_analyst_state *an = state;
	(void)a;
	report(an);
	ig_redeem_clear(&an->redeems);
	ig_ch_box_wipe(&an->box);
}

const ig_duty_ops ig_duty_analyst = {
	.name = "analyst",
	.on_connect = analyst_on_connect,
	.on_inbox = analyst_on_inbox,
	.on_tick = analyst_on_tick,
	.on_stop = analyst_on_stop,
	.on_message = analyst_on_message,
};
