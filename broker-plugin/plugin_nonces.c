/*
 * plugin_nonces.c: single-use tokens stay single-use across brokers.
 *
 * Why this exists: each broker keeps its own replay cache (plugin_auth.c,
 * lib/identity/nonces.c), so with several brokers a captured single-use
 * token could connect once more on every other broker within its
 * lifetime. In shared mode this broker publishes the nonces of the
 * single-use tokens it accepted on iotguard/<C>/bridge/nonces (a bridged
 * topic), batched per broker tick, and remembers the nonces that arrive
 * there over a bridge, so a replay elsewhere is refused as "replayed" once
 * the batch has crossed (docs/PROTOCOL.md "Several brokers").
 *
 * Only a broker's own accepted nonces are published, never ones learnt
 * from a bridge: the hub's normal routing already passes a leaf's batch on
 * to the other leaves, and try_private keeps it from coming back, so
 * nothing loops. What arrives is taken only from a bridge (the check
 * plugin_requests.c makes for device statuses; the ACL lets nobody else
 * publish here anyway) and is parsed strictly (lib/identity/nonce_share.c).
 * A nonce is not secret: without the token's signature it opens nothing.
 */
#include "plugin.h"

#include "ig_nonce_share.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

static struct {
	char topic[IG_TOPIC_MAX];
	/* Own accepted nonces not yet published: a full batch is published at
	 * once, the rest at the next tick. */
	ig_nonce_share_entry pending[IG_NONCE_SHARE_MAX];
	size_t npending;
	uint8_t buf[IG_NONCE_SHARE_MSG_MAX];
	uint64_t sent, batches_sent, publish_failed;
	uint64_t received, known, dropped_full, malformed, not_from_bridge;
	bool full_logged;   /* one warning per stretch of a full cache */
} g_share;

void ig_plugin_nonces_init(ig_plugin *pl)
{
	memset(&g_share, 0, sizeof g_share);
	snprintf(g_share.topic, sizeof g_share.topic, "iotguard/%s/bridge/nonces", pl->cluster);
}

void ig_plugin_nonces_free(void)
{
	memset(&g_share, 0, sizeof g_share);
}

bool ig_plugin_nonces_topic(const char *topic)
{
	return g_share.topic[0] && topic && strcmp(topic, g_share.topic) == 0;
}

static void flush(void)
{
	if (g_share.npending == 0)
		return;
	size_t len = 0;
	size_t n = g_share.npending;
	g_share.npending = 0;
	if (ig_nonce_share_encode(g_share.buf, sizeof g_share.buf, &len, g_share.pending, n) != IG_OK)
		return;   /* cannot happen: n is 1..IG_NONCE_SHARE_MAX and buf holds the largest batch */
	/* Normal routing, QoS 1, not retained: the bridges subscribe to it. */
	int rc = mosquitto_broker_publish_copy(NULL, g_share.topic, (int)len, g_share.buf, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		g_share.publish_failed++;
		ig_plugin_log(MOSQ_LOG_WARNING, "could not publish %zu single-use token nonces on %s (error %d): other "
		              "brokers accept those tokens once more until they expire", n, g_share.topic, rc);
		return;
	}
	g_share.sent += n;
	g_share.batches_sent++;
}

void ig_plugin_nonces_note(const uint8_t nonce[IG_NONCES_NONCE_BYTES], uint64_t expires_at)
{
	if (!g_share.topic[0])
		return;
	ig_nonce_share_entry *e = &g_share.pending[g_share.npending++];
	memcpy(e->nonce, nonce, IG_NONCES_NONCE_BYTES);
	e->expires_at = expires_at;
	if (g_share.npending == IG_NONCE_SHARE_MAX)
		flush();
}

void ig_plugin_nonces_tick(void)
{
	flush();
}

/* A bridged nonce that does not fit: not remembered, and nothing is refused
 * for it. Logged once per stretch of a full cache. */
static void note_full(const ig_plugin *pl)
{
	g_share.dropped_full++;
	if (g_share.full_logged)
		return;
	g_share.full_logged = true;
	ig_plugin_log(MOSQ_LOG_WARNING, "the single-use token cache holds 3/4 of plugin_opt_replay_cache_max (%u), the "
	              "share other brokers' nonces may take: the nonces they accepted are not remembered here, so those "
	              "tokens can connect once more on this broker until they expire; raise plugin_opt_replay_cache_max "
	              "for the whole cluster's single-use connect rate", pl->cfg.replay_cache_max);
}

void ig_plugin_nonces_receive(ig_plugin *pl, ig_nonces *replay, bool from_bridge, const void *payload, uint32_t len,
                              uint64_t now_s)
{
	if (!from_bridge) {
		g_share.not_from_bridge++;
		return;
	}
	static ig_nonce_share_entry got[IG_NONCE_SHARE_MAX];   /* the broker's one thread */
	size_t n = 0;
	if (ig_nonce_share_decode(got, IG_NONCE_SHARE_MAX, &n, payload, len) != IG_OK) {
		g_share.malformed++;
		return;
	}
	/* A token this cluster accepts expires at most skew + the longest
	 * single-use lifetime from now; a later expires_at only keeps a slot
	 * busy, so it is cut there. */
	uint64_t longest = 0;
	for (int r = 0; r < IG_ROLE_COUNT; r++)
		if (ig_policy_single_use(pl->policy, (ig_role)r) && pl->max_ttl_s[r] > longest)
			longest = pl->max_ttl_s[r];
	uint64_t latest = now_s + pl->cfg.clock_skew_s + longest;
	/* Other brokers' nonces may fill the cache only up to 3/4 of
	 * replay_cache_max: the rest is this broker's own, so the other
	 * brokers' load never makes it refuse its own single-use logins. */
	size_t limit = (size_t)pl->cfg.replay_cache_max / 4 * 3;
	for (size_t i = 0; i < n; i++) {
		if (!replay)
			break;
		uint64_t exp = got[i].expires_at < latest ? got[i].expires_at : latest;
		if (exp <= now_s) {
			g_share.known++;   /* expired already: the token is refused as expired anyway */
			continue;
		}
		if (ig_nonces_count(replay) >= limit) {
			ig_nonces_sweep(replay, now_s, 256);   /* expired nonces may still hold slots */
			if (ig_nonces_count(replay) >= limit) {
				note_full(pl);
				continue;
			}
		}
		switch (ig_nonces_check_add(replay, got[i].nonce, exp, now_s)) {
		case IG_NONCES_FRESH:
			g_share.received++;
			g_share.full_logged = false;
			break;
		case IG_NONCES_SEEN:
			g_share.known++;
			break;
		default:
			note_full(pl);   /* out of memory: not remembered */
			break;
		}
	}
}

void ig_plugin_nonces_stats(struct cJSON *shared)
{
	cJSON *o = cJSON_AddObjectToObject(shared, "nonces_shared");
	cJSON_AddNumberToObject(o, "sent", (double)g_share.sent);
	cJSON_AddNumberToObject(o, "batches_sent", (double)g_share.batches_sent);
	cJSON_AddNumberToObject(o, "publish_failed", (double)g_share.publish_failed);
	cJSON_AddNumberToObject(o, "received", (double)g_share.received);
	cJSON_AddNumberToObject(o, "known", (double)g_share.known);
	cJSON_AddNumberToObject(o, "dropped_full", (double)g_share.dropped_full);
	cJSON_AddNumberToObject(o, "malformed", (double)g_share.malformed);
	cJSON_AddNumberToObject(o, "not_from_bridge", (double)g_share.not_from_bridge);
}
