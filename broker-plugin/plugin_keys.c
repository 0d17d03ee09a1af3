/*
 * plugin_keys.c: one-time session keys for a pair of devices (seed 003).
 *
 * Why this exists: device A asks for a key with B; the cluster head checks
 * both identities, the pair policy and that B is online, derives a fresh
 * key from its pool (with fresh OS randomness, ig_pool_derive), writes an
 * audit record without the key, and only when that is durable boxes one
 * copy to each device. It remembers who shares which key (never the key)
 * until expiry, so revoking either device can tell the other at once.
 */
#include "plugin.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_EVERY_S 10

typedef struct key_pending {
	ig_plugin *pl;
	ig_session_key key;                   /* as A will receive it */
	char a[IG_ID_MAX + 1];
} key_pending;

static const ig_identity *active(ig_plugin *pl, const char *id)
{
	const ig_identity *i = ig_registry_find(pl->reg, id, strlen(id));
	return i && i->status == IG_ID_ACTIVE ? i : NULL;
}

static bool deliver(ig_plugin *pl, const ig_identity *to, const ig_session_key *sk)
{
	const ig_box_key *bk = ig_state_box_key(pl->state, to, ig_ledger_ch_sk(pl->ledger));
	uint8_t box[512], nonce[IG_KEYBOX_NONCE_BYTES];
	int n = bk ? ig_keybox_seal(box, sizeof box, nonce, sk, bk) : IG_ERR_CRYPTO;
	if (n < 0)
		return false;
	char key_id[2 * IG_KEY_ID_BYTES + 1], nonce_hex[2 * IG_KEYBOX_NONCE_BYTES + 1];
	char box_b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(key_id, sk->key_id, IG_KEY_ID_BYTES);
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(box_b64, sizeof box_b64, box, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "session_key");
	cJSON_AddStringToObject(o, "key_id", key_id);
	cJSON_AddStringToObject(o, "peer", sk->peer);
	cJSON_AddStringToObject(o, "suite", ig_suite_name(sk->suite));
	cJSON_AddNumberToObject(o, "expires_at", (double)sk->expires_at);
	cJSON_AddNumberToObject(o, "direction", sk->direction);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", box_b64);
	ig_plugin_reply(pl, to->id, o);
	return true;
}

static void remember(ig_plugin *pl, const ig_session_key *sk, const char *a, const char *b)
{
	if (pl->keys_count == pl->keys_cap) {
		size_t cap = pl->keys_cap ? pl->keys_cap * 2 : 256;
		ig_issued_key *grown = realloc(pl->keys, cap * sizeof *grown);
		if (!grown)
			return;   /* revocation notices for this key are lost; it still expires */
		pl->keys = grown;
		pl->keys_cap = cap;
	}
	ig_issued_key *k = &pl->keys[pl->keys_count++];
	memcpy(k->key_id, sk->key_id, IG_KEY_ID_BYTES);
	k->expires_at = sk->expires_at;
	snprintf(k->a, sizeof k->a, "%s", a);
	snprintf(k->b, sizeof k->b, "%s", b);
}

static void on_key_durable(void *ctx, int status, const ig_record *rec)
{
	key_pending *kp = ctx;
	ig_plugin *pl = kp->pl;
	const ig_identity *a = active(pl, kp->a), *b = active(pl, kp->key.peer);
	if (status == IG_ERR_UNKNOWN) {
		/* The key_issued record may be replayed, but no holder got the
		 * key: an unused key in the audit trail is harmless, so a new
		 * request once the broker is back is the whole recovery. */
		pl->keys_refused++;
		if (a)
			ig_plugin_reply_error(pl, kp->a, "session_key", kp->key.request_nonce, IG_PLUGIN_E_OUTCOME_UNKNOWN,
			                      "a disk write failed after the key_issued record was written, so it may or may "
			                      "not be durable; the key was given to neither device: ask for a new session key "
			                      "once the broker is back");
	} else if (status != IG_OK) {
		pl->keys_refused++;
		if (a) {
			char msg[300];
			snprintf(msg, sizeof msg, "the key was not recorded and given to neither device: %s",
			         ig_plugin_ledger_refusal(status));
			ig_plugin_reply_error(pl, kp->a, "session_key", kp->key.request_nonce, "storage_failed", msg);
		}
	} else {
		ig_plugin_publish_event(pl, rec);
		if (!a || !b) {
			/* Revoked while the record was written: neither gets the key. */
			pl->keys_refused++;
			if (a)
				ig_plugin_reply_error(pl, kp->a, "session_key", kp->key.request_nonce, "revoked", "the peer was revoked; no key was issued");
		} else {
			ig_session_key for_b = kp->key;
			for_b.direction = 1;
			for_b.request_nonce[0] = '\0';
			snprintf(for_b.peer, sizeof for_b.peer, "%s", kp->a);
			bool ok = deliver(pl, a, &kp->key) && deliver(pl, b, &for_b);
			sodium_memzero(&for_b, sizeof for_b);
			if (ok) {
				pl->keys_issued++;
				remember(pl, &kp->key, kp->a, kp->key.peer);
			} else {
				pl->keys_refused++;
			}
		}
	}
	sodium_memzero(kp, sizeof *kp);
	free(kp);
}

static bool rate_ok(ig_plugin *pl, ig_device *d)
{
	uint64_t now = ig_now_ms();
	if (now - d->key_window_ms >= 60000) {
		d->key_window_ms = now;
		d->key_requests = 0;
	}
	return ++d->key_requests <= pl->cfg.key_requests_per_minute;
}

static bool nonce_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > IG_REQUEST_NONCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

void ig_plugin_key_request(ig_plugin *pl, const char *id, const cJSON *req)
{
	const cJSON *peer = cJSON_GetObjectItemCaseSensitive(req, "peer");
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(req, "nonce");
	const ig_identity *a = active(pl, id);
	ig_device *d = ig_state_device(pl->state, id);
	const char *err = NULL, *msg = NULL;
	const ig_identity *b = NULL;
	/* Every answer names the request it answers: a device may have an
	 * attest and a key request in flight at once. */
	const char *echo = cJSON_IsString(nonce) && nonce_ok(nonce->valuestring) ? nonce->valuestring : NULL;

	if (!a || !d) {
		err = "revoked", msg = "this identity is not active";
	} else if (!cJSON_IsString(peer) || !ig_id_valid(peer->valuestring, strlen(peer->valuestring)) ||
	           !cJSON_IsString(nonce) || !nonce_ok(nonce->valuestring)) {
		err = "malformed", msg = "session_key needs \"peer\" (an id) and \"nonce\" (1..64 printable characters)";
	} else if (!rate_ok(pl, d)) {
		err = "rate_limited", msg = "too many key requests this minute; slow down";
	} else if (strcmp(peer->valuestring, id) == 0) {
		err = "malformed", msg = "a session key needs two different devices";
	} else if (!(b = ig_registry_find(pl->reg, peer->valuestring, strlen(peer->valuestring)))) {
		err = "peer_unknown", msg = "the peer is not enrolled";
	} else if (b->status != IG_ID_ACTIVE) {
		err = "revoked", msg = "the peer is revoked; no key can be issued";
	} else if (!ig_policy_pair_allowed(pl->policy, (ig_role)a->role, (ig_role)b->role)) {
		err = "not_allowed", msg = "the policy does not allow session keys between these roles";
	} else {
		const ig_session *s = ig_sessions_find(&pl->sessions, b->id);
		if (!s || s->joining)
			err = "peer_offline", msg = "the peer is not connected; retry when it is online";
	}
	if (err) {
		pl->keys_refused++;
		ig_plugin_reply_error(pl, id, "session_key", echo, err, msg);
		return;
	}

	key_pending *kp = calloc(1, sizeof *kp);
	if (!kp)
		return;
	kp->pl = pl;
	snprintf(kp->a, sizeof kp->a, "%s", id);
	ig_session_key *sk = &kp->key;
	randombytes_buf(sk->key_id, IG_KEY_ID_BYTES);
	sk->expires_at = ig_now_ms() / 1000 + pl->cfg.session_key_ttl_s;
	sk->suite = ig_suite_preferred();
	sk->direction = 0;
	snprintf(sk->peer, sizeof sk->peer, "%s", b->id);
	snprintf(sk->request_nonce, sizeof sk->request_nonce, "%s", nonce->valuestring);
	if (ig_pool_derive(&pl->pool, sk->key, sizeof sk->key, "session-key", sk->key_id, IG_KEY_ID_BYTES) != IG_OK) {
		sodium_memzero(kp, sizeof *kp);
		free(kp);
		ig_plugin_reply_error(pl, id, "session_key", echo, "internal", "key derivation failed");
		return;
	}
	ig_key_issued rec = {.expires_at = sk->expires_at, .suite = (uint8_t)sk->suite};
	memcpy(rec.key_id, sk->key_id, IG_KEY_ID_BYTES);
	snprintf(rec.a, sizeof rec.a, "%s", id);
	snprintf(rec.b, sizeof rec.b, "%s", b->id);
	uint8_t body[256];
	int blen = ig_key_issued_encode(body, sizeof body, &rec);
	if (blen < 0 || ig_ledger_submit(pl->ledger, IG_REC_KEY_ISSUED, body, (size_t)blen, on_key_durable, kp) != IG_OK) {
		sodium_memzero(kp, sizeof *kp);
		free(kp);
		pl->keys_refused++;
		ig_plugin_reply_error(pl, id, "session_key", echo, "storage_failed", "the ledger is not accepting records; try again later");
	}
}

static void notify_revoked(ig_plugin *pl, const char *to, const ig_issued_key *k, const char *peer)
{
	char key_id[2 * IG_KEY_ID_BYTES + 1];
	ig_hex_encode(key_id, k->key_id, IG_KEY_ID_BYTES);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "key_revoked");
	cJSON_AddStringToObject(o, "key_id", key_id);
	cJSON_AddStringToObject(o, "peer", peer);
	cJSON_AddStringToObject(o, "reason", "peer_revoked");
	ig_plugin_reply(pl, to, o);
	pl->keys_revoked_notices++;
}

void ig_plugin_keys_on_revoke(ig_plugin *pl, const char *id)
{
	uint64_t now = ig_now_ms() / 1000;
	for (size_t i = 0; i < pl->keys_count;) {
		ig_issued_key *k = &pl->keys[i];
		bool is_a = strcmp(k->a, id) == 0, is_b = strcmp(k->b, id) == 0;
		if (!is_a && !is_b) {
			i++;
			continue;
		}
		if (k->expires_at > now)
			notify_revoked(pl, is_a ? k->b : k->a, k, id);
		pl->keys[i] = pl->keys[--pl->keys_count];
	}
}

void ig_plugin_keys_prune(ig_plugin *pl, uint64_t now_s)
{
	if (now_s - pl->keys_pruned_at < PRUNE_EVERY_S)
		return;
	pl->keys_pruned_at = now_s;
	for (size_t i = 0; i < pl->keys_count;) {
		if (pl->keys[i].expires_at <= now_s)
			pl->keys[i] = pl->keys[--pl->keys_count];
		else
			i++;
	}
}

void ig_plugin_keys_stats(ig_plugin *pl, cJSON *stats)
{
	cJSON *k = cJSON_AddObjectToObject(stats, "keys");
	cJSON_AddNumberToObject(k, "issued", (double)pl->keys_issued);
	cJSON_AddNumberToObject(k, "refused", (double)pl->keys_refused);
	cJSON_AddNumberToObject(k, "live", (double)pl->keys_count);
	cJSON_AddNumberToObject(k, "revocation_notices", (double)pl->keys_revoked_notices);
	cJSON_AddStringToObject(k, "suite", ig_suite_name(ig_suite_preferred()));
	cJSON *j = cJSON_AddObjectToObject(stats, "joins");
	cJSON_AddNumberToObject(j, "completed", (double)pl->joins_completed);
	cJSON_AddNumberToObject(j, "failed", (double)pl->joins_failed);
	cJSON_AddNumberToObject(j, "codes_unused", (double)ig_joincodes_count(pl->codes, IG_CODE_UNUSED));
}
