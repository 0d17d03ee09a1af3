/*
 * m2m_keys.c: the session-key table, request nonces and receive checks.
 *
 * Why this exists: see m2m_keys.h. The order of the receive checks matters:
 * everything that can be decided from the cleartext header (known key,
 * right sender, unexpired, inside the replay window) is decided before the
 * AEAD, and the replay window only moves after the tag verified, so a
 * forged message can neither be accepted nor push genuine ones out.
 */
#include "m2m_keys.h"
#include "ig_json.h"

#include <cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- key table ------------------------------------------------------------ */

ig_m2m_key *ig_keytable_find(ig_keytable *t, const uint8_t key_id[IG_KEY_ID_BYTES])
{
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++)
		if (t->slot[i].state != IG_SLOT_EMPTY && memcmp(t->slot[i].k.key_id, key_id, IG_KEY_ID_BYTES) == 0)
			return &t->slot[i];
	return NULL;
}

void ig_keytable_wipe(ig_m2m_key *k, ig_key_slot_state st)
{
	sodium_memzero(k->k.key, sizeof k->k.key);
	k->state = st;
	k->retire_at_ms = 0;
}

static ig_m2m_key *free_slot(ig_keytable *t)
{
	ig_m2m_key *victim = NULL;
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++)
		if (t->slot[i].state == IG_SLOT_EMPTY)
			return &t->slot[i];
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++)
		if (t->slot[i].state != IG_SLOT_LIVE && (!victim || t->slot[i].added < victim->added))
			victim = &t->slot[i];
	if (!victim)
		for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++)
			if (!victim || t->slot[i].k.expires_at < victim->k.expires_at)
				victim = &t->slot[i];
	sodium_memzero(victim, sizeof *victim);
	return victim;
}

ig_m2m_key *ig_keytable_add(ig_keytable *t, const ig_session_key *k, uint64_t now_s)
{
	if (ig_keytable_find(t, k->key_id))
		return NULL;
	ig_m2m_key *s = free_slot(t);
	memset(s, 0, sizeof *s);
	s->k = *k;
	s->state = IG_SLOT_LIVE;
	s->added = ++t->next_added;
	s->accepted_s = now_s;
	ig_replay_init(&s->rx);
	return s;
}

/* True if a is the better key to send with than b. */
static bool newer(const ig_m2m_key *a, const ig_m2m_key *b)
{
	if (a->k.expires_at != b->k.expires_at)
		return a->k.expires_at > b->k.expires_at;
	return memcmp(a->k.key_id, b->k.key_id, IG_KEY_ID_BYTES) > 0;
}

ig_m2m_key *ig_keytable_newest(ig_keytable *t, const char *peer, uint64_t now_s)
{
	ig_m2m_key *best = NULL;
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++) {
		ig_m2m_key *s = &t->slot[i];
		if (s->state != IG_SLOT_LIVE || s->k.expires_at <= now_s || strcmp(s->k.peer, peer) != 0)
			continue;
		if (!best || newer(s, best))
			best = s;
	}
	return best;
}

bool ig_keytable_needs_rekey(const ig_m2m_key *k, uint64_t now_s)
{
	uint64_t lifetime = k->k.expires_at > k->accepted_s ? k->k.expires_at - k->accepted_s : 0;
	uint64_t margin = lifetime < 2 * IG_M2M_REKEY_BEFORE_S ? lifetime / 2 : IG_M2M_REKEY_BEFORE_S;
	/* The peer that asked for this key asks for its successor first, and
	 * both ends receive that one: holding back avoids a second key. */
	if (k->k.direction == 1)
		margin /= 2;
	return k->k.expires_at <= now_s + margin || k->sent >= IG_M2M_REKEY_MESSAGES;
}

void ig_keytable_used(ig_keytable *t, ig_m2m_key *k, uint64_t now_ms)
{
	if (k->first_use_ms)
		return;
	k->first_use_ms = now_ms ? now_ms : 1;
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++) {
		ig_m2m_key *s = &t->slot[i];
		if (s == k || s->state != IG_SLOT_LIVE || strcmp(s->k.peer, k->k.peer) != 0 || !newer(k, s))
			continue;
		uint64_t at = now_ms + IG_M2M_RETIRE_GRACE_MS;
		if (!s->retire_at_ms || at < s->retire_at_ms)
			s->retire_at_ms = at;
	}
}

size_t ig_keytable_sweep(ig_keytable *t, uint64_t now_ms,
                         void (*report)(void *ctx, const ig_m2m_key *k, ig_key_slot_state why), void *ctx)
{
	size_t wiped = 0;
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++) {
		ig_m2m_key *s = &t->slot[i];
		if (s->state != IG_SLOT_LIVE)
			continue;
		ig_key_slot_state why;
		if (s->k.expires_at <= now_ms / 1000u)
			why = IG_SLOT_EXPIRED;
		else if (s->retire_at_ms && s->retire_at_ms <= now_ms)
			why = IG_SLOT_RETIRED;
		else
			continue;
		ig_keytable_wipe(s, why);
		wiped++;
		if (report)
			report(ctx, s, why);
	}
	return wiped;
}

size_t ig_keytable_live(const ig_keytable *t)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_M2M_MAX_KEYS; i++)
		n += t->slot[i].state == IG_SLOT_LIVE;
	return n;
}

void ig_keytable_wipe_all(ig_keytable *t)
{
	sodium_memzero(t, sizeof *t);
}

void ig_key_id_prefix(char out[9], const uint8_t key_id[IG_KEY_ID_BYTES])
{
	ig_hex_encode(out, key_id, 4);
}

/* ---- request nonces -------------------------------------------------------- */

void ig_nonce_set_new(ig_nonce_set *s, char out[IG_M2M_NONCE_HEX + 1], uint64_t now_ms)
{
	uint8_t raw[IG_M2M_NONCE_HEX / 2];
	size_t slot = 0;
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++) {
		if (!s->nonce[i][0]) {
			slot = i;
			break;
		}
		if (s->sent_ms[i] < s->sent_ms[slot])
			slot = i;
	}
	randombytes_buf(raw, sizeof raw);
	ig_hex_encode(s->nonce[slot], raw, sizeof raw);
	s->sent_ms[slot] = now_ms ? now_ms : 1;
	memcpy(out, s->nonce[slot], IG_M2M_NONCE_HEX + 1);
}

bool ig_nonce_set_take(ig_nonce_set *s, const char *nonce)
{
	if (!nonce || strlen(nonce) != IG_M2M_NONCE_HEX)
		return false;
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++) {
		if (s->nonce[i][0] && sodium_memcmp(s->nonce[i], nonce, IG_M2M_NONCE_HEX) == 0) {
			s->nonce[i][0] = '\0';
			s->sent_ms[i] = 0;
			return true;
		}
	}
	return false;
}

void ig_nonce_set_forget_oldest(ig_nonce_set *s)
{
	size_t oldest = IG_M2M_MAX_NONCES;
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++)
		if (s->nonce[i][0] && (oldest == IG_M2M_MAX_NONCES || s->sent_ms[i] < s->sent_ms[oldest]))
			oldest = i;
	if (oldest < IG_M2M_MAX_NONCES) {
		s->nonce[oldest][0] = '\0';
		s->sent_ms[oldest] = 0;
	}
}

void ig_nonce_set_expire(ig_nonce_set *s, uint64_t now_ms)
{
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++) {
		if (s->nonce[i][0] && s->sent_ms[i] + IG_M2M_NONCE_TTL_MS <= now_ms) {
			s->nonce[i][0] = '\0';
			s->sent_ms[i] = 0;
		}
	}
}

size_t ig_nonce_set_count(const ig_nonce_set *s)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++)
		n += s->nonce[i][0] != '\0';
	return n;
}

uint64_t ig_nonce_set_newest_ms(const ig_nonce_set *s)
{
	uint64_t newest = 0;
	for (size_t i = 0; i < IG_M2M_MAX_NONCES; i++)
		if (s->nonce[i][0] && s->sent_ms[i] > newest)
			newest = s->sent_ms[i];
	return newest;
}

bool ig_nonce_set_take_error(ig_nonce_set *s, const cJSON *msg)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(msg, "request");
	if (cJSON_IsString(nonce))
		return ig_nonce_set_take(s, nonce->valuestring);
	if (!cJSON_IsString(request) || strcmp(request->valuestring, "session_key") != 0 || ig_nonce_set_count(s) == 0)
		return false;
	/* Our requests always carry a valid nonce, which the cluster head
	 * echoes; without one, requests go one at a time per peer, so the
	 * oldest outstanding one is the one answered. */
	ig_nonce_set_forget_oldest(s);
	return true;
}

/* ---- counters -------------------------------------------------------------- */

const char *ig_m2m_drop_name(ig_m2m_drop d)
{
	static const char *const names[IG_DROP_COUNT] = {
		"malformed", "unknown_key", "expired", "revoked", "replayed", "too_old", "tampered",
	};
	return (unsigned)d < IG_DROP_COUNT ? names[d] : "unknown";
}

uint64_t ig_m2m_drops_total(const ig_m2m_counters *c)
{
	uint64_t total = 0;
	for (size_t i = 0; i < IG_DROP_COUNT; i++)
		total += c->drops[i];
	return total;
}

int ig_m2m_counters_format(char *out, size_t cap, const ig_m2m_counters *c)
{
	int n = snprintf(out, cap, "sent %" PRIu64 ", received %" PRIu64 ", dropped %" PRIu64 " (", c->sent,
	                 c->received, ig_m2m_drops_total(c));
	for (size_t i = 0; i < IG_DROP_COUNT && n >= 0 && (size_t)n < cap; i++)
		n += snprintf(out + n, cap - (size_t)n, "%s%s=%" PRIu64, i ? " " : "", ig_m2m_drop_name((ig_m2m_drop)i),
		              c->drops[i]);
	if (n >= 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "), keys accepted %" PRIu64 ", rejected %" PRIu64,
		              c->keys_received, c->keys_rejected);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

/* ---- receiving -------------------------------------------------------------- */

int ig_m2m_receive(ig_keytable *t, const char *topic, const char *from, const uint8_t *msg, size_t len,
                   uint64_t now_ms, uint8_t *pt, size_t pt_cap, ig_m2m_key **key, uint64_t *counter,
                   ig_m2m_drop *why)
{
	ig_m2m_header h;
	*key = NULL;
	if (ig_m2m_parse_header(msg, len, &h) != IG_OK) {
		*why = IG_DROP_MALFORMED;
		return -1;
	}
	*counter = h.counter;
	ig_m2m_key *k = ig_keytable_find(t, h.key_id);
	if (!k) {
		*why = IG_DROP_UNKNOWN_KEY;
		return -1;
	}
	*key = k;
	if (k->state == IG_SLOT_REVOKED) {
		*why = IG_DROP_REVOKED;
		return -1;
	}
	if (k->state != IG_SLOT_LIVE || k->k.expires_at <= now_ms / 1000u) {
		/* Retired keys count as expired: their time as a sending key is over. */
		*why = IG_DROP_EXPIRED;
		return -1;
	}
	/* A key belongs to exactly one pair; from another sender it is a
	 * message moved between topics. */
	if (strcmp(k->k.peer, from) != 0 || h.suite != k->k.suite) {
		*why = IG_DROP_TAMPERED;
		return -1;
	}
	switch (ig_replay_check(&k->rx, h.counter)) {
	case IG_REPLAY_OK: break;
	case IG_REPLAY_DUPLICATE: *why = IG_DROP_REPLAYED; return -1;
	case IG_REPLAY_TOO_OLD: *why = IG_DROP_TOO_OLD; return -1;
	default: *why = IG_DROP_MALFORMED; return -1;
	}
	uint8_t sender_direction = (uint8_t)(k->k.direction ^ 1u);
	int n = ig_m2m_open(pt, pt_cap, msg, len, k->k.key, sender_direction, topic, &h);
	if (n < 0) {
		*why = n == IG_ERR_CRYPTO ? IG_DROP_TAMPERED : IG_DROP_MALFORMED;
		return -1;
	}
	ig_replay_commit(&k->rx, h.counter);
	k->received++;
	ig_keytable_used(t, k, now_ms);
	return n;
}

/* ---- accepting keys -------------------------------------------------------- */

static const char *get_string(const cJSON *msg, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool get_u64(const cJSON *msg, const char *name, uint64_t *out)
{
	return ig_json_uint_field(out, msg, name, 0, IG_JSON_UINT_MAX) == IG_OK;
}

ig_m2m_key *ig_m2m_accept_key(ig_keytable *t, ig_nonce_set *nonces, const cJSON *msg, const ig_box_key *bk,
                              const char *self_id, uint64_t now_s, ig_error *err)
{
	const char *key_id_hex = get_string(msg, "key_id"), *peer = get_string(msg, "peer");
	const char *suite_name = get_string(msg, "suite"), *nonce_hex = get_string(msg, "box_nonce");
	const char *box_b64 = get_string(msg, "box");
	uint64_t expires_at, direction;
	uint8_t key_id[IG_KEY_ID_BYTES], box_nonce[IG_KEYBOX_NONCE_BYTES];
	uint8_t box[512];
	size_t box_len = 0;

	if (!key_id_hex || !peer || !suite_name || !nonce_hex || !box_b64 || !get_u64(msg, "expires_at", &expires_at) ||
	    !get_u64(msg, "direction", &direction)) {
		ig_error_set(err, IG_ERR_INVAL, "session_key message lacks a field or has one of the wrong type");
		return NULL;
	}
	ig_suite suite = ig_suite_parse(suite_name);
	if (ig_hex_decode(key_id, sizeof key_id, key_id_hex, strlen(key_id_hex)) != IG_OK ||
	    ig_hex_decode(box_nonce, sizeof box_nonce, nonce_hex, strlen(nonce_hex)) != IG_OK ||
	    sodium_base642bin(box, sizeof box, box_b64, strlen(box_b64), NULL, &box_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    direction > 1 || suite == IG_SUITE_NONE || !ig_id_valid(peer, strlen(peer))) {
		ig_error_set(err, IG_ERR_INVAL, "session_key message has a malformed key_id, box_nonce, box, direction, "
		                                "suite or peer");
		return NULL;
	}
	if (!ig_suite_available(suite)) {
		ig_error_set(err, IG_ERR_STATE, "session key suite %s is not available on this CPU", suite_name);
		return NULL;
	}

	ig_session_key sk;
	memset(&sk, 0, sizeof sk);
	if (ig_keybox_open(&sk, box, box_len, box_nonce, bk) != IG_OK) {
		ig_error_set(err, IG_ERR_CRYPTO, "session key box does not open: not from the pinned cluster head, or "
		                                 "tampered");
		return NULL;
	}
	const char *bad = NULL;
	if (memcmp(sk.key_id, key_id, sizeof key_id) != 0)
		bad = "key_id";
	else if (strcmp(sk.peer, peer) != 0)
		bad = "peer";
	else if (sk.direction != direction)
		bad = "direction";
	else if (sk.suite != suite)
		bad = "suite";
	else if (sk.expires_at != expires_at)
		bad = "expires_at";
	if (bad) {
		sodium_memzero(&sk, sizeof sk);
		ig_error_set(err, IG_ERR_CRYPTO, "session key box disagrees with the message's %s: refusing the key", bad);
		return NULL;
	}
	if (strcmp(sk.peer, self_id) == 0) {
		sodium_memzero(&sk, sizeof sk);
		ig_error_set(err, IG_ERR_INVAL, "session key names this device as its own peer: refusing it");
		return NULL;
	}
	if (sk.expires_at <= now_s) {
		sodium_memzero(&sk, sizeof sk);
		ig_error_set(err, IG_ERR_RANGE, "session key expired on arrival (check this device's clock)");
		return NULL;
	}
	if (ig_keytable_find(t, sk.key_id)) {
		sodium_memzero(&sk, sizeof sk);
		ig_error_set(err, IG_ERR_EXISTS, "session key already known (duplicate delivery)");
		return NULL;
	}
	if (sk.direction == 0 && !ig_nonce_set_take(nonces, sk.request_nonce)) {
		sodium_memzero(&sk, sizeof sk);
		ig_error_set(err, IG_ERR_STATE, "session key answers no request of ours (unknown or reused nonce): "
		                                "refusing it");
		return NULL;
	}
	ig_m2m_key *slot = ig_keytable_add(t, &sk, now_s);
	sodium_memzero(&sk, sizeof sk);
	return slot;
}
