/*
 * svc_keys.c: the session-key service (ig_svc_keys.h; docs/PROTOCOL.md,
 * "session_key", seed 003).
 *
 * Why this exists: see ig_svc_keys.h. The refusal chain runs in a fixed
 * order (who asks, what was asked, how often, about whom), so the same
 * request always gets the same answer; the key itself exists only in the
 * pending append and in the two boxes, and is wiped as soon as they are
 * sealed or the append fails.
 */
#include "ig_svc_keys.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_EVERY_S 10
#define RATE_WINDOW_MS 60000u

/* A key the cluster head handed out, remembered (without the key) until it
 * expires so revocation can tell the surviving peer. */
typedef struct issued_key {
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint64_t expires_at;
	char a[IG_ID_MAX + 1];
	char b[IG_ID_MAX + 1];
} issued_key;

struct ig_svc_keys {
	ig_state *st;
	ig_pool *pool;
	uint8_t ch_sk[IG_SK_BYTES];
	ig_svc_keys_config cfg;
	ig_svc_keys_online_fn online;
	void *online_ctx;

	issued_key *keys;
	size_t count, cap;
	uint64_t pruned_at_s;

	uint64_t issued, refused, revocation_notices;
};

/* The append in flight: the key as A will receive it. */
typedef struct key_pending {
	ig_svc_keys *k;
	ig_session_key key;
	char a[IG_ID_MAX + 1];
} key_pending;

ig_svc_keys *ig_svc_keys_new(ig_state *st, ig_pool *pool, const uint8_t ch_sk[IG_SK_BYTES],
                             const ig_svc_keys_config *cfg, ig_svc_keys_online_fn online, void *online_ctx)
{
	ig_svc_keys *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	k->st = st;
	k->pool = pool;
	memcpy(k->ch_sk, ch_sk, IG_SK_BYTES);
	k->cfg = *cfg;
	k->online = online;
	k->online_ctx = online_ctx;
	return k;
}

void ig_svc_keys_free(ig_svc_keys *k)
{
	if (!k)
		return;
	free(k->keys);
	sodium_memzero(k, sizeof *k);
	free(k);
}


int ig_svc_keys_decode(ig_svc_keys_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	const cJSON *peer = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "peer") : NULL;
	const cJSON *nonce = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "nonce") : NULL;
	bool nonce_good = cJSON_IsString(nonce) && ig_decision_nonce_ok(nonce->valuestring);
	if (nonce_good)
		memcpy(out->nonce, nonce->valuestring, strlen(nonce->valuestring) + 1);
	if (!nonce_good || !cJSON_IsString(peer) || !ig_id_valid(peer->valuestring, strlen(peer->valuestring)))
		return IG_ERR_INVAL;
	memcpy(out->peer, peer->valuestring, strlen(peer->valuestring) + 1);
	return IG_OK;
}

static bool rate_ok(const ig_svc_keys *k, ig_device *d, uint64_t now_ms)
{
	if (now_ms - d->key_window_ms >= RATE_WINDOW_MS) {
		d->key_window_ms = now_ms;
		d->key_requests = 0;
	}
	return ++d->key_requests <= k->cfg.requests_per_minute;
}

/* One holder's session_key message, or NULL (no box key, out of memory). */
static cJSON *boxed_copy(ig_svc_keys *k, const ig_identity *to, const ig_session_key *sk)
{
	const ig_box_key *bk = ig_state_box_key(k->st, to, k->ch_sk);
	uint8_t box[512], nonce[IG_KEYBOX_NONCE_BYTES];
	int n = bk ? ig_keybox_seal(box, sizeof box, nonce, sk, bk) : IG_ERR_CRYPTO;
	if (n < 0)
		return NULL;
	char key_id[2 * IG_KEY_ID_BYTES + 1], nonce_hex[2 * IG_KEYBOX_NONCE_BYTES + 1];
	char box_b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(key_id, sk->key_id, IG_KEY_ID_BYTES);
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(box_b64, sizeof box_b64, box, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "session_key");
	cJSON_AddStringToObject(o, "key_id", key_id);
	cJSON_AddStringToObject(o, "peer", sk->peer);
	cJSON_AddStringToObject(o, "suite", ig_suite_name(sk->suite));
	cJSON_AddNumberToObject(o, "expires_at", (double)sk->expires_at);
	cJSON_AddNumberToObject(o, "direction", sk->direction);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", box_b64);
	return o;
}

static void remember(ig_svc_keys *k, const ig_session_key *sk, const char *a, const char *b)
{
	if (k->count == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 256;
		issued_key *grown = realloc(k->keys, cap * sizeof *grown);
		if (!grown)
			return;   /* revocation notices for this key are lost; it still expires */
		k->keys = grown;
		k->cap = cap;
	}
	issued_key *e = &k->keys[k->count++];
	memcpy(e->key_id, sk->key_id, IG_KEY_ID_BYTES);
	e->expires_at = sk->expires_at;
	snprintf(e->a, sizeof e->a, "%s", a);
	snprintf(e->b, sizeof e->b, "%s", b);
}

static void on_key_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	key_pending *kp = ctx;
	ig_svc_keys *k = kp->k;
	const char *nonce = kp->key.request_nonce;
	const ig_identity *a = ig_state_active(k->st, kp->a, IG_ROLE_NONE);
	const ig_identity *b = ig_state_active(k->st, kp->key.peer, IG_ROLE_NONE);
	if (status == IG_ERR_UNKNOWN) {
		/* The key_issued record may be replayed, but no holder got the
		 * key: an unused key in the audit trail is harmless, so a new
		 * request once the broker is back is the whole recovery. */
		k->refused++;
		if (a)
			ig_decision_refuse(out, "session_key", nonce, IG_DECISION_E_OUTCOME_UNKNOWN,
			                   "a disk write failed after the key_issued record was written, so it may or may "
			                   "not be durable; the key was given to neither device: ask for a new session key "
			                   "once the broker is back");
	} else if (status == IG_ERR_CONFLICT) {
		/* A key_issued record breaks no state rule, so only a record of
		 * another broker that ended a device's enrolment can have made it
		 * obsolete: name that, or say plainly what happened. */
		k->refused++;
		if (a && b)
			ig_decision_refuse(out, "session_key", nonce, "conflict",
			                   "another broker changed the shared ledger first, so the key was not recorded "
			                   "and given to neither device; ask for a new session key");
		else if (a)
			ig_decision_refuse(out, "session_key", nonce, "revoked",
			                   "the peer was revoked through another broker; no key was issued");
	} else if (status != IG_OK) {
		k->refused++;
		if (a)
			ig_decision_refuse(out, "session_key", nonce, "storage_failed",
			                   "the key was not recorded and given to neither device: %s",
			                   ig_decision_ledger_refusal(status));
	} else if (!a || !b) {
		/* Revoked while the record was written: neither gets the key. */
		k->refused++;
		if (a)
			ig_decision_refuse(out, "session_key", nonce, "revoked", "the peer was revoked; no key was issued");
	} else {
		ig_session_key for_b = kp->key;
		for_b.direction = 1;
		for_b.request_nonce[0] = '\0';
		snprintf(for_b.peer, sizeof for_b.peer, "%s", kp->a);
		cJSON *to_a = boxed_copy(k, a, &kp->key);
		cJSON *to_b = boxed_copy(k, b, &for_b);
		sodium_memzero(&for_b, sizeof for_b);
		/* Both copies or neither: a key only one side holds is useless.
		 * Two replies to valid ids always fit a decision. */
		if (to_a && to_b) {
			ig_decision_reply(out, a->id, to_a);
			ig_decision_reply(out, b->id, to_b);
			k->issued++;
			remember(k, &kp->key, kp->a, kp->key.peer);
		} else {
			cJSON_Delete(to_a);
			cJSON_Delete(to_b);
			k->refused++;
		}
	}
	sodium_memzero(kp, sizeof *kp);
	free(kp);
}

void ig_svc_keys_request(ig_decision *out, ig_svc_keys *k, const ig_policy *policy, const char *id,
                         const cJSON *req, uint64_t now_ms)
{
	ig_svc_keys_req r;
	int parsed = ig_svc_keys_decode(&r, req);
	const ig_identity *a = ig_state_active(k->st, id, IG_ROLE_NONE);
	ig_device *d = a ? ig_state_device(k->st, id) : NULL;
	const ig_identity *b = NULL;
	const char *err = NULL, *msg = NULL;

	if (!a || !d) {
		err = "revoked", msg = "this identity is not active";
	} else if (parsed != IG_OK) {
		err = "malformed", msg = "session_key needs \"peer\" (an id) and \"nonce\" (1..64 printable characters)";
	} else if (!rate_ok(k, d, now_ms)) {
		err = "rate_limited", msg = "too many key requests this minute; slow down";
	} else if (strcmp(r.peer, id) == 0) {
		err = "malformed", msg = "a session key needs two different devices";
	} else if (!(b = ig_registry_find(ig_state_registry(k->st), r.peer, strlen(r.peer)))) {
		err = "peer_unknown", msg = "the peer is not enrolled";
	} else if (b->status != IG_ID_ACTIVE) {
		err = "revoked", msg = "the peer is revoked; no key can be issued";
	} else if (!ig_policy_pair_allowed(policy, (ig_role)a->role, (ig_role)b->role)) {
		err = "not_allowed", msg = "the policy does not allow session keys between these roles";
	} else if (!k->online || !k->online(k->online_ctx, b->id)) {
		err = "peer_offline", msg = "the peer is not connected; retry when it is online";
	}
	if (err) {
		k->refused++;
		ig_decision_refuse(out, "session_key", r.nonce, err, "%s", msg);
		return;
	}

	key_pending *kp = calloc(1, sizeof *kp);
	if (!kp) {
		ig_decision_refuse(out, "session_key", r.nonce, "internal",
		                   "the cluster head is out of memory; retry in a moment");
		return;
	}
	kp->k = k;
	snprintf(kp->a, sizeof kp->a, "%s", id);
	ig_session_key *sk = &kp->key;
	randombytes_buf(sk->key_id, IG_KEY_ID_BYTES);
	sk->expires_at = now_ms / 1000 + k->cfg.session_key_ttl_s;
	sk->suite = ig_suite_preferred();
	sk->direction = 0;
	snprintf(sk->peer, sizeof sk->peer, "%s", b->id);
	snprintf(sk->request_nonce, sizeof sk->request_nonce, "%s", r.nonce);
	if (ig_pool_derive(k->pool, sk->key, sizeof sk->key, "session-key", sk->key_id, IG_KEY_ID_BYTES) != IG_OK) {
		sodium_memzero(kp, sizeof *kp);
		free(kp);
		ig_decision_refuse(out, "session_key", r.nonce, "internal", "key derivation failed");
		return;
	}
	ig_key_issued rec = {.expires_at = sk->expires_at, .suite = (uint8_t)sk->suite};
	memcpy(rec.key_id, sk->key_id, IG_KEY_ID_BYTES);
	snprintf(rec.a, sizeof rec.a, "%s", id);
	snprintf(rec.b, sizeof rec.b, "%s", b->id);
	uint8_t body[256];
	int blen = ig_record_key_issued_encode(body, sizeof body, &rec);
	if (blen < 0 || !ig_decision_append(out, IG_REC_KEY_ISSUED, body, (size_t)blen, on_key_done, kp)) {
		sodium_memzero(kp, sizeof *kp);
		free(kp);
		k->refused++;
		ig_decision_refuse(out, "session_key", r.nonce, "storage_failed",
		                   "the ledger is not accepting records; try again later");
	}
}

static cJSON *revoked_notice(const issued_key *e, const char *peer)
{
	char key_id[2 * IG_KEY_ID_BYTES + 1];
	ig_hex_encode(key_id, e->key_id, IG_KEY_ID_BYTES);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "key_revoked");
	cJSON_AddStringToObject(o, "key_id", key_id);
	cJSON_AddStringToObject(o, "peer", peer);
	cJSON_AddStringToObject(o, "reason", "peer_revoked");
	return o;
}

bool ig_svc_keys_on_revoke(ig_decision *out, ig_svc_keys *k, const char *id, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000;
	for (size_t i = 0; i < k->count && out->n_replies < IG_DECISION_REPLIES_MAX;) {
		issued_key *e = &k->keys[i];
		bool is_a = strcmp(e->a, id) == 0, is_b = strcmp(e->b, id) == 0;
		if (!is_a && !is_b) {
			i++;
			continue;
		}
		if (e->expires_at > now_s) {
			/* Out of memory loses this one notice; the key still expires.
			 * The loop bound keeps the reply within the decision. */
			cJSON *o = revoked_notice(e, id);
			if (o) {
				ig_decision_reply(out, is_a ? e->b : e->a, o);
				k->revocation_notices++;
			}
		}
		k->keys[i] = k->keys[--k->count];
	}
	return out->n_replies > 0;
}

void ig_svc_keys_prune(ig_svc_keys *k, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000;
	if (now_s - k->pruned_at_s < PRUNE_EVERY_S)
		return;
	k->pruned_at_s = now_s;
	for (size_t i = 0; i < k->count;) {
		if (k->keys[i].expires_at <= now_s)
			k->keys[i] = k->keys[--k->count];
		else
			i++;
	}
}

void ig_svc_keys_get_counts(const ig_svc_keys *k, ig_svc_keys_counts *out)
{
	out->issued = k->issued;
	out->refused = k->refused;
	out->live = k->count;
	out->revocation_notices = k->revocation_notices;
}

void ig_svc_keys_stats(const ig_svc_keys *k, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "keys");
	cJSON_AddNumberToObject(o, "issued", (double)k->issued);
	cJSON_AddNumberToObject(o, "refused", (double)k->refused);
	cJSON_AddNumberToObject(o, "live", (double)k->count);
	cJSON_AddNumberToObject(o, "revocation_notices", (double)k->revocation_notices);
	cJSON_AddStringToObject(o, "suite", ig_suite_name(ig_suite_preferred()));
}
