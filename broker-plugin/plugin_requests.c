/*
 * plugin_requests.c: requests that identities send to the cluster head on
 * their own iotguard/<cluster>/ch/<id> topic.
 *
 * Why this exists: the ch topic is the device's channel to the cluster head
 * (later issues put join, session-key and coin requests here). Answers go
 * only to the asking client's inbox. Every other message passes through
 * with one prefix comparison, so ordinary traffic pays nearly nothing.
 *
 * With several brokers (docs/PROTOCOL.md "Several brokers") two more
 * things live here. Inbox messages are published with normal routing in
 * shared mode, so a bridge carries them to whichever broker holds the
 * device. And messages that arrived over a bridge are never requests:
 * Mosquitto 2.0.11 skips the ACL for its own bridge connection
 * (security.c: context->bridge) but still raises MOSQ_EVT_MESSAGE for what
 * it receives on it, with the bridge's local_username (normally none) as
 * username (plugin_public.c); on the hub the leaf is an ordinary client
 * authenticated as a bridge identity. So a request is acted on only when
 * its publisher is the client that holds the live session of the topic's
 * id; a bridged device status only tells this broker that the device is
 * online elsewhere (for the session-key service's peer check).
 */
#include "plugin.h"
#include "plugin_service.h"

#include "ig_idmap.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IG_REQUEST_MAX 8192
#define STATUS_MAX 8192
/* A bridged "online" status counts this long: the agent's heartbeat is 30 s
 * by default, and a broker that dies takes its devices' wills with it, so
 * an entry must fade by itself rather than claim a device forever. */
#define PRESENCE_TTL_MS (180u * 1000u)

bool ig_plugin_shared(const ig_plugin *pl)
{
	return pl->cfg.ledger_dsn[0] != '\0';
}

void ig_plugin_reply(ig_plugin *pl, const char *id, cJSON *o)
{
	char topic[IG_TOPIC_MAX];
	snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", pl->cluster, id);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	/* The ACL lets only <id> (and bridge identities) read an inbox, so
	 * routing it normally reaches <id> here or over a bridge and nobody
	 * else. One broker keeps the targeted publish: no routing to pay. */
	if (ig_plugin_shared(pl))
		ig_plugin_publish(topic, json, false);
	else
		ig_plugin_send_to(id, topic, json);
	free(json);
}

/* True when client holds the live session of id: the one publisher whose
 * message on id's topics may be acted on. A leaf's bridge connection has
 * no session (the plugin never authenticated it), and on the hub a bridge
 * holds its own id's session, never a device's. */
static bool publisher_is(const ig_plugin *pl, const struct mosquitto *client, const char *id, size_t id_len)
{
	const char *username = mosquitto_client_username(client);
	if (!username || strlen(username) != id_len || strncmp(username, id, id_len) != 0)
		return false;
	const ig_session *s = ig_sessions_find(&pl->sessions, username);
	return s && s->client == client && s->role != IG_ROLE_BRIDGE;
}

/* A message that crossed a bridge: on a leaf, from its own bridge
 * connection (no session: no username, or the configured local_username);
 * on the hub, from a client authenticated as a bridge identity. */
static bool from_bridge(const ig_plugin *pl, const struct mosquitto *client)
{
	const char *username = mosquitto_client_username(client);
	if (!username)
		return true;
	const ig_session *s = ig_sessions_find(&pl->sessions, username);
	return !s || s->client != client || s->role == IG_ROLE_BRIDGE;
}

/* ---- presence on other brokers --------------------------------------- */

typedef struct presence {
	uint64_t seen_ms;   /* monotonic: when the last bridged status arrived */
	bool online;
} presence;

static ig_idmap *g_presence;   /* one per process, like the broker's plugin */

void ig_plugin_presence_free(void)
{
	ig_idmap_free(g_presence, false);
	g_presence = NULL;
}

bool ig_plugin_remote_online(const ig_plugin *pl, const char *id)
{
	if (!ig_plugin_shared(pl) || !g_presence || !id)
		return false;
	const presence *p = ig_idmap_get(g_presence, id);
	return p && p->online && ig_mono_us() / 1000 - p->seen_ms <= PRESENCE_TTL_MS;
}

/* A status of an active identity that arrived over a bridge: "online" or
 * any other state (offline, revoked, an empty retained payload). Only ids
 * the registry knows get an entry, so the map is bounded by the registry. */
static void note_presence(ig_plugin *pl, const char *id, size_t id_len, const void *payload, uint32_t len)
{
	char key[IG_ID_MAX + 1];
	if (id_len == 0 || id_len > IG_ID_MAX)
		return;
	memcpy(key, id, id_len);
	key[id_len] = '\0';
	if (!ig_state_active(pl->state, key, IG_ROLE_NONE))
		return;
	bool online = false;
	if (len > 0 && len <= STATUS_MAX) {
		cJSON *st = cJSON_ParseWithLength(payload, len);
		const cJSON *state = st ? cJSON_GetObjectItemCaseSensitive(st, "state") : NULL;
		online = cJSON_IsString(state) && strcmp(state->valuestring, "online") == 0;
		cJSON_Delete(st);
	}
	if (!g_presence && !(g_presence = ig_idmap_new(sizeof(presence))))
		return;   /* out of memory: this device looks offline elsewhere, as before */
	presence *p = online ? ig_idmap_put(g_presence, key) : ig_idmap_get(g_presence, key);
	if (p) {
		p->online = online;
		p->seen_ms = ig_mono_us() / 1000;
	}
}

/* A refusal of the request itself, rendered like every service's
 * (ig_decision_error_json): the one place an error's JSON is built. */
static void refuse(ig_plugin *pl, const char *id, const char *request, const char *code, const char *message)
{
	ig_decision d;
	memset(&d, 0, sizeof d);
	ig_decision_refuse(&d, request, NULL, code, "%s", message);
	ig_plugin_carry_out(pl, id, &d);
}

static void handle_request(ig_plugin *pl, const char *id, const void *payload, uint32_t len)
{
	if (len > IG_REQUEST_MAX) {
		refuse(pl, id, NULL, "too_large", "requests are limited to 8 KiB");
		return;
	}
	cJSON *req = cJSON_ParseWithLength(payload, len);
	const cJSON *type = req ? cJSON_GetObjectItemCaseSensitive(req, "type") : NULL;
	if (!cJSON_IsString(type)) {
		cJSON_Delete(req);
		refuse(pl, id, NULL, "malformed", "expected a JSON object with a string \"type\"; see docs/PROTOCOL.md");
		return;
	}
	const ig_session *s = ig_sessions_find(&pl->sessions, id);
	bool joining = s && s->joining && !ig_registry_find(pl->reg, id, strlen(id));
	const ig_service *svc = ig_plugin_service_for(type->valuestring, NULL);
	/* An error names the request it answers only with a type some service
	 * knows (a static string), never by echoing whatever a client sent. */
	if (joining && !(svc && svc->open_to_joining)) {
		refuse(pl, id, ig_plugin_service_request_name(type->valuestring), "not_enrolled",
		       "this session may only ask to join");
	} else if (svc) {
		ig_plugin_services_request(pl, id, type->valuestring, req);
	} else {
		char msg[600];
		snprintf(msg, sizeof msg, "unknown request type; this cluster head understands: %s",
		         ig_plugin_services_request_list());
		refuse(pl, id, NULL, "unknown_type", msg);
	}
	cJSON_Delete(req);
}

/* iotguard/C/dev/<id>/<topic> for a service's dev_topic (entropy), from
 * <id> itself on this broker (the ACL ensures it; checked again here, with
 * the session, so a bridged copy is never taken). Every other device
 * message (status, data) passes after one table lookup; in shared mode a
 * status that crossed a bridge is noted as presence first. */
static void consume_dev_message(ig_plugin *pl, const struct mosquitto_evt_message *ed)
{
	const char *id = ed->topic + pl->topic_dev_prefix_len;
	const char *slash = strchr(id, '/');
	if (!slash)
		return;
	size_t id_len = (size_t)(slash - id);
	if (ig_plugin_shared(pl) && strcmp(slash + 1, "status") == 0 && from_bridge(pl, ed->client)) {
		note_presence(pl, id, id_len, ed->payload, ed->payloadlen);
		return;
	}
	if (!ig_plugin_services_consume(slash + 1) || !publisher_is(pl, ed->client, id, id_len))
		return;
	ig_plugin_services_dev_message(pl, mosquitto_client_username(ed->client), slash + 1, ed->payload,
	                               ed->payloadlen);
}

int ig_plugin_on_message(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_message *ed = event_data;
	/* Device traffic first: it is nearly every message, so it is decided
	 * with one prefix compare. */
	if (strncmp(ed->topic, pl->topic_dev_prefix, pl->topic_dev_prefix_len) == 0) {
		consume_dev_message(pl, ed);
		return MOSQ_ERR_SUCCESS;
	}
	if (strncmp(ed->topic, pl->topic_ch_prefix, pl->topic_ch_prefix_len) != 0) {
		/* Another broker's accepted single-use nonces (plugin_nonces.c). */
		if (ig_plugin_shared(pl) && ig_plugin_nonces_topic(ed->topic))
			ig_plugin_nonces_receive(pl, ig_plugin_auth_replay(), ed->client && from_bridge(pl, ed->client),
			                         ed->payload, ed->payloadlen, ig_now_ms() / 1000);
		return MOSQ_ERR_SUCCESS;
	}
	const char *id = ed->topic + pl->topic_ch_prefix_len;
	/* The ACL lets only <id> publish here; check again rather than trust a
	 * custom policy (or a bridge that carries ch topics) to be right. */
	if (!publisher_is(pl, ed->client, id, strlen(id)))
		return MOSQ_ERR_ACL_DENIED;
	handle_request(pl, id, ed->payload, ed->payloadlen);
	return MOSQ_ERR_SUCCESS;
}
