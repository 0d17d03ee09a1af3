/*
 * plugin_requests.c: requests that identities send to the cluster head on
 * their own iotguard/<cluster>/ch/<id> topic.
 *
 * Why this exists: the ch topic is the device's channel to the cluster head
 * (later issues put join, session-key and coin requests here). Answers go
 * only to the asking client's inbox. Every other message passes through
 * with one prefix comparison, so ordinary traffic pays nearly nothing.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IG_REQUEST_MAX 8192

void ig_plugin_reply(ig_plugin *pl, const char *id, cJSON *o)
{
	char topic[IG_TOPIC_MAX];
	snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", pl->cluster, id);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_send_to(id, topic, json);
	free(json);
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
 * <id> itself (the ACL ensures it; checked again here). Every other device
 * message (status, data) passes after one table lookup. */
static void consume_dev_message(ig_plugin *pl, const struct mosquitto_evt_message *ed)
{
	const char *id = ed->topic + pl->topic_dev_prefix_len;
	const char *slash = strchr(id, '/');
	if (!slash || !ig_plugin_services_consume(slash + 1))
		return;
	size_t id_len = (size_t)(slash - id);
	const char *username = mosquitto_client_username(ed->client);
	if (!username || strlen(username) != id_len || strncmp(username, id, id_len) != 0)
		return;
	ig_plugin_services_dev_message(pl, username, slash + 1, ed->payload, ed->payloadlen);
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
	if (strncmp(ed->topic, pl->topic_ch_prefix, pl->topic_ch_prefix_len) != 0)
		return MOSQ_ERR_SUCCESS;
	const char *id = ed->topic + pl->topic_ch_prefix_len;
	const char *username = mosquitto_client_username(ed->client);
	/* The ACL lets only <id> publish here; check again rather than trust a
	 * custom policy to be right. */
	if (!username || strcmp(username, id) != 0)
		return MOSQ_ERR_ACL_DENIED;
	handle_request(pl, id, ed->payload, ed->payloadlen);
	return MOSQ_ERR_SUCCESS;
}
