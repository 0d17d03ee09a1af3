/*
 * duty_kp.c: the device's key ring on the wire.
 *
 * Why this exists: a device must keep talking securely to its peers when
 * the cluster head cannot hand out session keys (sealed, refusing, or
 * absent on a plain broker). The decisions (which ids, whether a hello or a
 * path key is genuine, when sessions die) live in kp_agent.c without a
 * broker; this duty moves bytes between them and MQTT: it asks the cluster
 * head for a ring when it holds none or a newer epoch was announced, hands
 * boxed rings and the signed revoked statement to kp_agent.c, feeds it the
 * m2m messages of versions 2, 3 and 4 and publishes what it answers. It
 * logs who sent what size under which key-ring session, never a key.
 */
#include "duties.h"

#include <cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_kp.h"

#define KP_TOPIC_MAX (32 + IG_CLUSTER_MAX + 2 * IG_ID_MAX)
#define NO_PIN_PATIENCE_US 5000000u    /* the retained ledger head normally arrives within milliseconds */
#define ASK_WAIT_US 30000000u          /* an unanswered key_ring request is asked again after this */
#define MAX_ASK_FAILURES 6
#define KP_PENDING_MAX (4u << 20)        /* a revoked statement kept until the cluster head is pinned */

/* ---- set-up ----------------------------------------------------------------- */

struct file_key_ctx {
	uint8_t *out;
};

static int derive_file_key(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct file_key_ctx *c = ctx;
	ig_kp_file_key(c->out, sk);   /* the first 32 bytes of an Ed25519 secret key are its seed */
	return IG_OK;
}

static void kp_publish(void *ctx, const char *topic, const uint8_t *msg, size_t len)
{
	ig_agent *a = ctx;
	ig_agent_publish(a, topic, msg, len, 1);   /* the core logs a failure; retries are the tick's */
}

int ig_kp_duty_init(ig_kp_state *k, ig_agent *a, const ig_pin_state *pin, const char *key_path,
                    const char *const *via, size_t n_via, ig_error *err)
{
	memset(k, 0, sizeof *k);
	k->pin = pin;
	int n = snprintf(k->ring_path, sizeof k->ring_path, "%s.ring", key_path);
	if (n < 0 || (size_t)n >= sizeof k->ring_path)
		return ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long for its .ring file", key_path);
	if (n_via > IG_KPA_VIA_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "at most %d --kp-via candidates, not %zu", IG_KPA_VIA_MAX, n_via);
	for (size_t i = 0; i < n_via; i++) {
		if (!ig_id_valid(via[i], strlen(via[i])))
			return ig_error_set(err, IG_ERR_INVAL, "--kp-via candidate %zu is not a device id", i + 1);
		snprintf(k->via[i], sizeof k->via[i], "%s", via[i]);
		k->via_ptr[i] = k->via[i];
	}
	k->n_via = n_via;

	uint8_t file_key[32];
	struct file_key_ctx fc = {.out = file_key};
	if (ig_agent_with_key(a, derive_file_key, &fc) != IG_OK)
		return ig_error_set(err, IG_ERR_IO, "cannot derive the key-ring file key from %s", key_path);
	ig_kpa_config cfg = {
		.cluster = ig_agent_cluster(a),
		.self_id = ig_agent_id(a),
		.ring_path = k->ring_path,
		.via = k->via_ptr,
		.n_via = k->n_via,
		.publish = kp_publish,
		.publish_ctx = a,
	};
	int rc = ig_kpa_new(&k->kpa, &cfg, file_key, ig_agent_public_key(a), err);
	sodium_memzero(file_key, sizeof file_key);
	if (rc != IG_OK)
		return rc;
	if (ig_kpa_has_ring(k->kpa))
		ig_log(IG_LOG_INFO, "key ring of pool epoch %" PRIu64 " loaded from %s", ig_kpa_epoch(k->kpa), k->ring_path);
	return IG_OK;
}

/* ---- asking for a ring ----------------------------------------------------- */

/* A ring is asked for only once a verified revoked statement announced an
 * epoch above the ring held (or any epoch, when none is held): the
 * statement is retained, so it arrives at every connect where the cluster
 * runs key rings, and a cluster without them gets no request at all. */
static bool needs_ring(const ig_kp_state *k) { return k->want_newer; }

static void maybe_ask(ig_agent *a, ig_kp_state *k, uint64_t now_us)
{
	if (ig_agent_plain(a) || k->stop_asking || !needs_ring(k) || now_us < k->next_ask_us)
		return;
	if (k->asked && k->nonce[0] == '\0')
		return;   /* asked and answered on this connection: once is enough */
	if (!ig_ch_box_ensure(a, &k->box, k->pin)) {
		if (!k->warned_no_pin && now_us - k->connected_us > NO_PIN_PATIENCE_US) {
			char why[PATH_MAX + 64];
			ig_log(IG_LOG_WARN, "cannot ask for a key ring: %s", ig_pin_untrusted_why(k->pin, why, sizeof why));
			k->warned_no_pin = true;
		}
		return;
	}
	uint8_t raw[16];
	char request[96];
	randombytes_buf(raw, sizeof raw);
	ig_hex_encode(k->nonce, raw, sizeof raw);
	int n = snprintf(request, sizeof request, "{\"type\":\"key_ring\",\"nonce\":\"%s\"}", k->nonce);
	if (n < 0 || (size_t)n >= sizeof request || ig_agent_request(a, request, (size_t)n) != IG_OK) {
		k->nonce[0] = '\0';
		k->next_ask_us = now_us + ig_agent_backoff_us(0);
		return;
	}
	ig_kpa_set_ring_nonce(k->kpa, k->nonce);
	k->asked = true;
	k->next_ask_us = now_us + ASK_WAIT_US;
	if (ig_kpa_has_ring(k->kpa))
		ig_log(IG_LOG_INFO, "key ring of a newer pool epoch requested (ours is epoch %" PRIu64 ")",
		       ig_kpa_epoch(k->kpa));
	else
		ig_log(IG_LOG_INFO, "key ring requested (none held)");
}

static void handle_ring(ig_agent *a, ig_kp_state *k, const cJSON *msg)
{
	ig_error err = {0};
	if (!ig_ch_box_ensure(a, &k->box, k->pin)) {
		char why[PATH_MAX + 64];
		ig_log(k->pin->refused ? IG_LOG_ERR : IG_LOG_WARN, "key ring refused: %s",
		       ig_pin_untrusted_why(k->pin, why, sizeof why));
		return;
	}
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	bool ours = cJSON_IsString(nonce) && k->nonce[0] && strcmp(nonce->valuestring, k->nonce) == 0;
	int rc = ig_kpa_accept_ring(k->kpa, msg, &k->box.bk, &err);
	if (rc == IG_ERR_EXISTS) {
		ig_log(IG_LOG_DEBUG, "%s", err.msg[0] ? err.msg : "the same key ring again");
	} else if (rc != IG_OK) {
		ig_log(IG_LOG_WARN, "key ring rejected: %s", err.msg[0] ? err.msg : "invalid");
		return;
	} else {
		k->rings++;   /* kp_agent.c logged where it is stored */
		ig_log(IG_LOG_DEBUG, "key ring of pool epoch %" PRIu64 " %s", ig_kpa_epoch(k->kpa),
		       ours ? "received as asked" : "dealt unasked");
	}
	if (ours) {
		k->nonce[0] = '\0';
		ig_kpa_set_ring_nonce(k->kpa, NULL);
	}
	k->want_newer = false;
	k->failures = 0;
}

/* Refusals worth asking again on the same connection; every other code
 * (not_enabled, not_allowed, revoked, sealed, malformed, codes this agent
 * does not know) waits for the next connection or a newer epoch. */
static bool retriable(const char *code)
{
	static const char *const codes[] = {"rate_limited", "epoch_pending", "storage_failed", "outcome_unknown",
	                                    "internal"};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

static bool handle_error(ig_kp_state *k, const cJSON *msg)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(msg, "request");
	if (!k->nonce[0] || !cJSON_IsString(code))
		return false;
	/* Only an error naming our key_ring request refuses it. */
	if (cJSON_IsString(nonce) ? strcmp(nonce->valuestring, k->nonce) != 0
	                          : !cJSON_IsString(request) || strcmp(request->valuestring, "key_ring") != 0)
		return false;
	char safe[48];
	size_t n = 0;
	for (const char *p = code->valuestring; *p && n + 1 < sizeof safe; p++)
		safe[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	safe[n] = '\0';
	k->nonce[0] = '\0';
	ig_kpa_set_ring_nonce(k->kpa, NULL);
	if (retriable(safe) && k->failures < MAX_ASK_FAILURES) {
		uint64_t delay = ig_agent_backoff_us(k->failures++);
		k->next_ask_us = ig_mono_us() + delay;
		k->asked = false;
		ig_log(IG_LOG_INFO, "key ring request refused (%s); asking again in %.1f s", safe, (double)delay / 1e6);
		return true;
	}
	k->stop_asking = true;
	if (strcmp(safe, "not_enabled") == 0)
		ig_log(IG_LOG_INFO, "the cluster head deals no key rings (no predistribution in its policy)");
	else
		ig_log(IG_LOG_WARN, "key ring request refused (%s); %s", safe,
		       ig_kpa_has_ring(k->kpa) ? "keeping the ring we hold" : "no ring until the next connection");
	return true;
}

/* ---- the revoked statement and m2m messages ------------------------------- */

static void handle_revoked(ig_agent *a, ig_kp_state *k, const uint8_t *payload, size_t len)
{
	ig_error err = {0};
	bool newer = false;
	if (len == 0)
		return;   /* a cleared retained message says nothing */
	if (!ig_pin_trusted(k->pin)) {
		/* A first connect pins the cluster head from the retained ledger
		 * head, which may come after this retained statement: keep it
		 * (the newest only) and check it in the tick once pinned. */
		if (!ig_agent_plain(a) && len <= KP_PENDING_MAX) {
			uint8_t *copy = malloc(len);
			if (copy) {
				memcpy(copy, payload, len);
				free(k->pending);
				k->pending = copy;
				k->pending_len = len;
				return;
			}
		}
		if (!k->warned_no_ch) {
			char why[PATH_MAX + 64];
			ig_log(IG_LOG_WARN, "revoked statement not checked: %s", ig_pin_untrusted_why(k->pin, why, sizeof why));
			k->warned_no_ch = true;
		}
		return;
	}
	int rc = ig_kpa_accept_revoked(k->kpa, payload, len, k->pin->pk, &newer, ig_now_ms(), &err);
	if (rc == IG_ERR_EXISTS) {
		ig_log(IG_LOG_DEBUG, "%s", err.msg[0] ? err.msg : "revoked statement already known");
	} else if (rc != IG_OK) {
		ig_log(IG_LOG_WARN, "revoked statement refused: %s", err.msg[0] ? err.msg : "invalid");
		return;
	} else {
		ig_log(IG_LOG_INFO, "revoked statement accepted%s", newer ? " (it announces a newer pool epoch)" : "");
	}
	if (newer && !k->want_newer) {
		k->want_newer = true;
		k->stop_asking = false;
		if (!k->nonce[0]) {   /* a request in flight is answered with the newest ring anyway */
			k->asked = false;
			k->next_ask_us = 0;
		}
		if (ig_agent_plain(a))
			ig_log(IG_LOG_WARN, "a newer pool epoch exists: connect once to the cluster (with the plugin) for its ring");
	}
}

static void handle_m2m(ig_kp_state *k, const char *topic, const char *from, const uint8_t *payload, size_t len)
{
	uint8_t pt[IG_M2M_MAX_PLAINTEXT];
	int why = IG_DROP_MALFORMED;
	int n = ig_kpa_on_message(k->kpa, topic, from, payload, len, ig_now_ms(), pt, sizeof pt, &why);
	if (n < 0) {
		ig_log(IG_LOG_DEBUG, "key-ring message from %s dropped (%s): %zu bytes, version %u", from,
		       ig_kpa_drop_name(why), len, payload[0]);
		return;
	}
	if (payload[0] != 2)
		return;   /* a hello or a path message, handled (kp_agent.c logs the outcome) */
	sodium_memzero(pt, (size_t)n);
	k->received++;
	ig_kpa_rx_info rx;
	char id[2 * 4 + 1] = "?";
	if (!ig_kpa_last_rx(k->kpa, &rx)) {
		memset(&rx, 0, sizeof rx);
	} else {
		ig_hex_encode(id, rx.key_id, 4);
	}
	ig_log(IG_LOG_INFO, "m2m from %s (key ring session %s..., %s%s): counter %" PRIu64 ", %d bytes", from, id,
	       rx.path ? "via " : "direct", rx.path ? rx.via : "", rx.counter, n);
	sodium_memzero(&rx, sizeof rx);
}

/* ---- the duty ------------------------------------------------------------- */

static void kp_on_connect(ig_agent *a, void *state)
{
	ig_kp_state *k = state;
	char topic[KP_TOPIC_MAX];
	k->connected_us = ig_mono_us();
	k->asked = false;
	k->stop_asking = false;
	k->nonce[0] = '\0';
	k->failures = 0;
	k->next_ask_us = 0;
	k->warned_no_pin = false;
	ig_kpa_set_ring_nonce(k->kpa, NULL);
	snprintf(topic, sizeof topic, "iotguard/%s/kp/revoked", ig_agent_cluster(a));
	ig_agent_subscribe(a, topic, 1);
	/* The m2m topics are subscribed by the m2m duty, which always runs next
	 * to this one: Mosquitto 2.0.11 leaks a subscription made twice by one
	 * client (sub__add, seen under valgrind). */
}

static bool kp_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_kp_state *k = state;
	if (strcmp(type, "key_ring") == 0) {
		handle_ring(a, k, msg);
		return true;
	}
	if (strcmp(type, "error") == 0)
		return handle_error(k, msg);
	return false;
}

static bool kp_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_kp_state *k = state;
	char prefix[KP_TOPIC_MAX];
	int pn = snprintf(prefix, sizeof prefix, "iotguard/%s/kp/revoked", ig_agent_cluster(a));
	if (pn > 0 && strcmp(topic, prefix) == 0) {
		handle_revoked(a, k, payload, len);
		return true;
	}
	pn = snprintf(prefix, sizeof prefix, "iotguard/%s/m2m/%s/", ig_agent_cluster(a), ig_agent_id(a));
	if (pn < 0 || strncmp(topic, prefix, (size_t)pn) != 0 || len == 0 || payload[0] < 2 || payload[0] > 4)
		return false;
	const char *from = topic + pn;
	if (!ig_id_valid(from, strlen(from))) {
		ig_log(IG_LOG_DEBUG, "key-ring message on %zu-byte topic with an invalid sender dropped", strlen(topic));
		return true;
	}
	handle_m2m(k, topic, from, payload, len);
	return true;
}

static void kp_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_kp_state *k = state;
	if (k->pending && ig_pin_trusted(k->pin)) {
		uint8_t *stmt = k->pending;
		size_t len = k->pending_len;
		k->pending = NULL;
		k->pending_len = 0;
		handle_revoked(a, k, stmt, len);
		free(stmt);
	}
	ig_kpa_tick(k->kpa, ig_now_ms());
	maybe_ask(a, k, now_us);
}

static void kp_on_stop(ig_agent *a, void *state)
{
	ig_kp_state *k = state;
	(void)a;
	ig_kpa_free(k->kpa);
	k->kpa = NULL;
	free(k->pending);
	k->pending = NULL;
	k->pending_len = 0;
	ig_ch_box_wipe(&k->box);
}

static size_t kp_status_fields(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_kp_state *k = state;
	(void)a;
	return k->kpa ? ig_kpa_status(k->kpa, out, cap) : 0;
}

const ig_duty_ops ig_duty_kp = {
	.name = "kp",
	.on_connect = kp_on_connect,
	.on_inbox = kp_on_inbox,
	.on_tick = kp_on_tick,
	.on_stop = kp_on_stop,
	.on_message = kp_on_message,
	.status_fields = kp_status_fields,
};
