/*
 * duty_m2m.c: session keys with a peer, and encrypted messages to it.
 *
 * Why this exists: devices talk to each other through the broker, which
 * must not read or alter what they say. The cluster head hands both ends a
 * fresh key in boxes only they can open; this duty asks for keys (and for
 * new ones before the old expire or wear out), sends a small message every
 * interval under the newest key, and runs every received message through
 * the checks in m2m_keys.c. It logs who sent what size under which key id,
 * never a key or a plaintext, and counts every drop by reason. When the
 * cluster head cannot help (it refuses, is sealed, or stays silent) the
 * duty falls back to a key-ring session with the peer (the kp duty), so a
 * pair keeps talking; a later cluster-head key takes over again.
 */
#include "duties.h"

#include <cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define REQUEST_WAIT_US 30000000u     /* an unanswered request is retried after this */
#define REQUEST_GAP_US 2000000u       /* at least this between two requests, whatever happens */
#define NO_PIN_RETRY_US 1000000u
#define NO_PIN_PATIENCE_US 5000000u   /* the retained ledger head normally arrives within milliseconds */
#define REPORT_PERIOD_US 60000000u
#define M2M_TOPIC_MAX (32 + IG_CLUSTER_MAX + 2 * IG_ID_MAX)
#define M2M_PLAINTEXT_MAX 128
#define IG_M2M_MAX_FAILURES 16        /* ig_agent_backoff_us is at its 60 s ceiling long before */

int ig_m2m_init(ig_m2m_state *m, const char *peer, unsigned send_interval_s, const ig_pin_state *pin)
{
	memset(m, 0, sizeof *m);
	if (peer && peer[0]) {
		if (!ig_id_valid(peer, strlen(peer)))
			return IG_ERR_INVAL;
		snprintf(m->peer, sizeof m->peer, "%s", peer);
	}
	m->send_interval_s = send_interval_s;
	m->pin = pin;
	m->kp_fallback_s = IG_M2M_KP_FALLBACK_S;
	return IG_OK;
}

void ig_m2m_use_kp(ig_m2m_state *m, ig_kpa *kp, bool offline_keys, unsigned fallback_s)
{
	m->kp = kp;
	m->offline_keys = offline_keys;
	m->kp_fallback_s = fallback_s ? fallback_s : IG_M2M_KP_FALLBACK_S;
}

/* From now on the pair uses key-ring sessions until a cluster-head key
 * arrives; why says what the cluster head did (or that it was not asked). */
static void start_fallback(ig_m2m_state *m, const char *why)
{
	if (m->kp_fallback || m->revoked_refusal)
		return;
	if (!m->kp) {
		if (!m->warned_no_kp)
			ig_log(IG_LOG_WARN, "no session key with %s (cluster head: %s) and no key rings to fall back on", m->peer,
			       why);
		m->warned_no_kp = true;
		return;
	}
	m->kp_fallback = true;
	m->next_want_us = 0;
	ig_log(IG_LOG_INFO, "using predistributed keys with %s (cluster head: %s)%s", m->peer, why,
	       ig_kpa_has_ring(m->kp) ? "" : "; this device holds no key ring yet");
}

static void maybe_want(ig_m2m_state *m, uint64_t now_us)
{
	if (!m->kp_fallback || !m->kp || now_us < m->next_want_us || ig_kpa_ready(m->kp, m->peer))
		return;
	/* A no-op while a hello or path request is pending; else it starts one
	 * (or says why it cannot, and the next try comes after this gap). */
	ig_kpa_want(m->kp, m->peer, ig_now_ms());
	m->next_want_us = now_us + 5000000u;
}

static void report(ig_m2m_state *m)
{
	char line[512];
	if (ig_m2m_counters_format(line, sizeof line, &m->counters) > 0)
		ig_log(IG_LOG_INFO, "m2m: %s; live keys %zu; sent under key-ring sessions %" PRIu64, line,
		       ig_keytable_live(&m->keys), m->kp_sent);
}

static void log_wiped(void *ctx, const ig_m2m_key *k, ig_key_slot_state why)
{
	char id[9];
	(void)ctx;
	ig_key_id_prefix(id, k->k.key_id);
	ig_log(IG_LOG_INFO, "session key %s... with %s %s; wiped", id, k->k.peer,
	       why == IG_SLOT_EXPIRED ? "expired" : "replaced by a newer key");
}

/* ---- requesting keys -------------------------------------------------------- */

static void maybe_request(ig_agent *a, ig_m2m_state *m, uint64_t now_us)
{
	uint64_t now_ms = ig_now_ms(), now_s = now_ms / 1000u;
	ig_m2m_key *k = ig_keytable_newest(&m->keys, m->peer, now_s);
	if ((k && !ig_keytable_needs_rekey(k, now_s)) || now_us < m->next_request_us)
		return;
	if (!ig_ch_box_ensure(a, &m->box, m->pin)) {
		bool refused = m->pin->refused;
		if (refused ? !m->warned_refused : !m->warned_no_pin && now_us - m->connected_us > NO_PIN_PATIENCE_US) {
			char why[PATH_MAX + 64];
			ig_log(refused ? IG_LOG_ERR : IG_LOG_WARN, "cannot ask for session keys: %s",
			       ig_pin_untrusted_why(m->pin, why, sizeof why));
			*(refused ? &m->warned_refused : &m->warned_no_pin) = true;
		}
		m->next_request_us = now_us + NO_PIN_RETRY_US;
		return;
	}
	char nonce[IG_M2M_NONCE_HEX + 1], request[160];
	ig_nonce_set_new(&m->nonces, nonce, now_ms);
	int n = snprintf(request, sizeof request, "{\"type\":\"session_key\",\"peer\":\"%s\",\"nonce\":\"%s\"}", m->peer,
	                 nonce);
	if (n < 0 || (size_t)n >= sizeof request || ig_agent_request(a, request, (size_t)n) != IG_OK) {
		ig_nonce_set_take(&m->nonces, nonce);
		return;
	}
	m->next_request_us = now_us + REQUEST_WAIT_US;
	if (!k && !m->first_request_us)
		m->first_request_us = now_us;
	if (!k)
		ig_log(IG_LOG_INFO, "session key requested for peer %s", m->peer);
	else
		ig_log(IG_LOG_INFO, "new session key requested for peer %s (current key expires in %" PRIu64 " s, %" PRIu64
		                    " messages sent with it)", m->peer, k->k.expires_at - now_s, k->sent);
}

/* Codes that need an operator (docs/PROTOCOL.md, "Asking for a session
 * key: retry policy"): waiting the longest delay at once. Every other
 * refusal (peer_offline, peer_unknown, rate_limited, storage_failed,
 * outcome_unknown, internal, and codes this agent does not know) backs off
 * from 1 s, doubling up to 60 s. An unknown peer may still join by itself,
 * so it backs off normally. */
static bool needs_operator(const char *code)
{
	return strcmp(code, "not_allowed") == 0 || strcmp(code, "revoked") == 0;
}

static bool handle_error(ig_m2m_state *m, const cJSON *msg)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
	/* Only an error naming one of our session_key requests is a refusal
	 * of it: an attest's or a bank request's error is someone else's. */
	if (!m->peer[0] || !cJSON_IsString(code) || !ig_nonce_set_take_error(&m->nonces, msg))
		return false;
	char safe[48];
	size_t k = 0;
	for (const char *p = code->valuestring; *p && k + 1 < sizeof safe; p++)
		safe[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	safe[k] = '\0';
	if (needs_operator(safe))
		m->request_failures = IG_M2M_MAX_FAILURES;
	uint64_t delay = ig_agent_backoff_us(m->request_failures);
	if (m->request_failures < IG_M2M_MAX_FAILURES)
		m->request_failures++;
	m->next_request_us = ig_mono_us() + delay;
	if (strcmp(safe, "outcome_unknown") == 0)
		ig_log(IG_LOG_WARN, "session key request for %s has an unknown outcome (a disk write failed at the cluster "
		                    "head; neither device got the key); asking again in %.1f s", m->peer, (double)delay / 1e6);
	else
		ig_log(strcmp(safe, "peer_offline") == 0 ? IG_LOG_INFO : IG_LOG_WARN,
		       "session key request for %s refused (%s); asking again in %.1f s", m->peer, safe, (double)delay / 1e6);
	/* "revoked" says this device or the peer is revoked: key rings must not
	 * route around a revocation (the signed revoked statement retires the
	 * device's ids too), so only the other refusals fall back. */
	if (strcmp(safe, "revoked") == 0) {
		if (!m->revoked_refusal)
			ig_log(IG_LOG_INFO, "no fallback to key rings with %s: the cluster head says one of us is revoked",
			       m->peer);
		m->revoked_refusal = true;   /* also no fallback on the timeout, until a key arrives */
	} else if (!ig_keytable_newest(&m->keys, m->peer, ig_now_ms() / 1000u))
		start_fallback(m, safe);
	return true;
}

static bool handle_session_key(ig_agent *a, ig_m2m_state *m, const cJSON *msg)
{
	ig_error err = {0};
	char id[9];
	if (!ig_ch_box_ensure(a, &m->box, m->pin)) {
		char why[PATH_MAX + 64];
		m->counters.keys_rejected++;
		ig_log(m->pin->refused ? IG_LOG_ERR : IG_LOG_WARN, "session key refused: %s",
		       ig_pin_untrusted_why(m->pin, why, sizeof why));
		return true;
	}
	uint64_t now_s = ig_now_ms() / 1000u;
	ig_m2m_key *k = ig_m2m_accept_key(&m->keys, &m->nonces, msg, &m->box.bk, ig_agent_id(a), now_s, &err);
	if (!k) {
		if (err.code == IG_ERR_EXISTS) {
			ig_log(IG_LOG_DEBUG, "%s", err.msg);
			return true;
		}
		m->counters.keys_rejected++;
		ig_log(IG_LOG_WARN, "session key rejected: %s", err.msg);
		return true;
	}
	m->counters.keys_received++;
	ig_key_id_prefix(id, k->k.key_id);
	ig_log(IG_LOG_INFO, "session key %s... with %s accepted (%s, we send as direction %u, expires in %" PRIu64 " s)", id,
	       k->k.peer, ig_suite_name(k->k.suite), k->k.direction, k->k.expires_at - now_s);
	if (strcmp(k->k.peer, m->peer) == 0) {
		m->request_failures = 0;
		m->next_request_us = ig_mono_us() + REQUEST_GAP_US;
		m->first_request_us = 0;
		m->revoked_refusal = false;
		if (m->kp_fallback && !m->offline_keys) {
			m->kp_fallback = false;
			ig_log(IG_LOG_INFO, "cluster-head session keys with %s again (key-ring sessions no longer used to send)",
			       m->peer);
		}
	}
	return true;
}

static bool handle_revoked(ig_m2m_state *m, const cJSON *msg)
{
	const cJSON *id_hex = cJSON_GetObjectItemCaseSensitive(msg, "key_id");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(msg, "reason");
	uint8_t key_id[IG_KEY_ID_BYTES];
	char id[9];
	if (!cJSON_IsString(id_hex) || ig_hex_decode(key_id, sizeof key_id, id_hex->valuestring, strlen(id_hex->valuestring)) != IG_OK) {
		ig_log(IG_LOG_WARN, "key_revoked message without a valid key_id ignored");
		return true;
	}
	ig_key_id_prefix(id, key_id);
	ig_m2m_key *k = ig_keytable_find(&m->keys, key_id);
	if (!k || k->state != IG_SLOT_LIVE) {
		ig_log(IG_LOG_INFO, "cluster head revoked session key %s..., which this device no longer holds", id);
		return true;
	}
	ig_keytable_wipe(k, IG_SLOT_REVOKED);
	ig_log(IG_LOG_WARN, "cluster head revoked session key %s... with %s (%s); wiped", id, k->k.peer,
	       cJSON_IsString(reason) && ig_id_valid(reason->valuestring, strlen(reason->valuestring)) ? reason->valuestring
	                                                                                              : "no valid reason");
	return true;
}

/* ---- sending and receiving -------------------------------------------------- */

static void maybe_send(ig_agent *a, ig_m2m_state *m, uint64_t now_us)
{
	uint64_t period = (uint64_t)m->send_interval_s * 1000000u;
	if (m->send_interval_s == 0 || now_us < m->next_send_us)
		return;
	m->next_send_us += period;
	if (m->next_send_us <= now_us)
		m->next_send_us = now_us + period;

	uint64_t now_ms = ig_now_ms();
	/* --offline-keys: a key the peer asked the cluster head for still opens
	 * its messages, but this device sends under key rings only. */
	ig_m2m_key *k = m->offline_keys ? NULL : ig_keytable_newest(&m->keys, m->peer, now_ms / 1000u);
	char topic[M2M_TOPIC_MAX], pt[M2M_PLAINTEXT_MAX];
	if (!k && m->kp && ig_kpa_ready(m->kp, m->peer)) {
		/* No cluster-head key: a key-ring session carries it (m2m version 2). */
		int ptn = snprintf(pt, sizeof pt, "{\"n\":%" PRIu64 ",\"t\":%" PRIu64 "}", m->messages + 1, now_ms);
		if (ptn < 0 || (size_t)ptn >= sizeof pt)
			return;
		if (ig_kpa_send(m->kp, m->peer, (const uint8_t *)pt, (size_t)ptn, now_ms) != IG_OK)
			return;
		m->messages++;
		m->kp_sent++;
		ig_log(IG_LOG_DEBUG, "m2m to %s under a key-ring session: %d bytes", m->peer, ptn);
		return;
	}
	if (!k) {
		ig_log(IG_LOG_DEBUG, "no session key with %s yet; message skipped", m->peer);
		return;
	}
	uint8_t out[IG_M2M_HEADER_BYTES + M2M_PLAINTEXT_MAX + IG_AEAD_TAG_BYTES];
	snprintf(topic, sizeof topic, "iotguard/%s/m2m/%s/%s", ig_agent_cluster(a), m->peer, ig_agent_id(a));
	int ptn = snprintf(pt, sizeof pt, "{\"n\":%" PRIu64 ",\"t\":%" PRIu64 "}", m->messages + 1, now_ms);
	if (ptn < 0 || (size_t)ptn >= sizeof pt)
		return;
	uint64_t counter = k->sent + 1;
	int n = ig_m2m_seal(out, sizeof out, k->k.suite, k->k.key, k->k.key_id, k->k.direction, counter, topic,
	                    (const uint8_t *)pt, (size_t)ptn);
	if (n < 0) {
		ig_log(IG_LOG_ERR, "cannot seal an m2m message (error %d)", n);
		return;
	}
	k->sent = counter;   /* a counter is spent once sealed, sent or not */
	if (ig_agent_publish(a, topic, out, (size_t)n, 1) != IG_OK)
		return;
	m->messages++;
	m->counters.sent++;
	ig_keytable_used(&m->keys, k, now_ms);
	char id[9];
	ig_key_id_prefix(id, k->k.key_id);
	ig_log(IG_LOG_DEBUG, "m2m to %s: key %s..., counter %" PRIu64 ", %d bytes", m->peer, id, counter, ptn);
}

static bool m2m_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_m2m_state *m = state;
	char prefix[M2M_TOPIC_MAX];
	int pn = snprintf(prefix, sizeof prefix, "iotguard/%s/m2m/%s/", ig_agent_cluster(a), ig_agent_id(a));
	if (pn < 0 || strncmp(topic, prefix, (size_t)pn) != 0)
		return false;
	if (len > 0 && payload[0] >= 2 && payload[0] <= 4)
		return false;   /* key-ring versions: the kp duty's, counted there */
	const char *from = topic + pn;
	uint8_t pt[IG_M2M_MAX_PLAINTEXT];
	ig_m2m_key *k = NULL;
	uint64_t counter = 0;
	ig_m2m_drop why = IG_DROP_MALFORMED;
	char id[9] = "none";
	int n = -1;
	if (ig_id_valid(from, strlen(from)))
		n = ig_m2m_receive(&m->keys, topic, from, payload, len, ig_now_ms(), pt, sizeof pt, &k, &counter, &why);
	if (k)
		ig_key_id_prefix(id, k->k.key_id);
	if (n < 0) {
		m->counters.drops[why]++;
		ig_log(IG_LOG_DEBUG, "m2m message dropped (%s): %zu bytes on key %s, counter %" PRIu64, ig_m2m_drop_name(why),
		       len, id, counter);
		return true;
	}
	sodium_memzero(pt, (size_t)n);
	m->counters.received++;
	ig_log(IG_LOG_INFO, "m2m from %s: key %s..., counter %" PRIu64 ", %d bytes", from, id, counter, n);
	return true;
}

/* ---- the duty ------------------------------------------------------------- */

static void m2m_on_connect(ig_agent *a, void *state)
{
	ig_m2m_state *m = state;
	char filter[M2M_TOPIC_MAX];
	uint64_t now = ig_mono_us();
	m->connected_us = now;
	m->warned_refused = false;   /* said once per connection */
	snprintf(filter, sizeof filter, "iotguard/%s/m2m/%s/+", ig_agent_cluster(a), ig_agent_id(a));
	ig_agent_subscribe(a, filter, 1);
	if (m->next_request_us > now + REQUEST_GAP_US)
		m->next_request_us = now;   /* a new session: ask at once unless we just asked */
	if (!m->next_report_us)
		m->next_report_us = now + REPORT_PERIOD_US;
	if (!m->next_send_us)
		m->next_send_us = now + (uint64_t)m->send_interval_s * 1000000u;
}

static bool m2m_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_m2m_state *m = state;
	if (strcmp(type, "session_key") == 0)
		return handle_session_key(a, m, msg);
	if (strcmp(type, "key_revoked") == 0)
		return handle_revoked(m, msg);
	if (strcmp(type, "error") == 0)
		return handle_error(m, msg);
	return false;
}

static void m2m_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_m2m_state *m = state;
	uint64_t now_ms = ig_now_ms();
	ig_keytable_sweep(&m->keys, now_ms, log_wiped, NULL);
	ig_nonce_set_expire(&m->nonces, now_ms);
	if (now_us >= m->next_report_us) {
		m->next_report_us = now_us + REPORT_PERIOD_US;
		report(m);
	}
	if (!m->peer[0])
		return;
	if (m->offline_keys || ig_agent_plain(a)) {
		start_fallback(m, ig_agent_plain(a) ? "none on a plain broker" : "not asked (--offline-keys)");
	} else {
		maybe_request(a, m, now_us);
		if (!m->kp_fallback && m->first_request_us &&
		    now_us - m->first_request_us >= (uint64_t)m->kp_fallback_s * 1000000u &&
		    !ig_keytable_newest(&m->keys, m->peer, ig_now_ms() / 1000u)) {
			char why[64];
			snprintf(why, sizeof why, "no key within %u s", m->kp_fallback_s);
			start_fallback(m, why);
		}
	}
	maybe_want(m, now_us);
	maybe_send(a, m, now_us);
}

static void m2m_on_stop(ig_agent *a, void *state)
{
	ig_m2m_state *m = state;
	(void)a;
	report(m);
	ig_keytable_wipe_all(&m->keys);
	ig_ch_box_wipe(&m->box);
}

const ig_duty_ops ig_duty_m2m = {
	.name = "m2m",
	.on_connect = m2m_on_connect,
	.on_inbox = m2m_on_inbox,
	.on_tick = m2m_on_tick,
	.on_stop = m2m_on_stop,
	.on_message = m2m_on_message,
};
