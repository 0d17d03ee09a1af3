/*
 * plugin_acl.c: per-message and per-subscription access checks.
 *
 * Why this exists: Mosquitto asks on every PUBLISH, SUBSCRIBE and delivery.
 * The answer comes from the role policy (lib/policy.c) for the identity the
 * registry knows under the client's username; a revoked or unknown identity
 * gets nothing, even in the instant before its connection is cut.
 */
#include "plugin.h"

#include <stdio.h>
#include <string.h>

/* "$share/<group>/<filter>" subscribes to <filter>; check that. */
static const char *strip_shared(const char *filter)
{
	if (strncmp(filter, "$share/", 7) != 0)
		return filter;
	const char *slash = strchr(filter + 7, '/');
	return slash ? slash + 1 : "";
}

/* A device connected with a join token is not enrolled yet: it may send
 * requests on its own ch topic and read its own inbox, nothing else. */
static bool joining_allows(ig_plugin *pl, const struct mosquitto_evt_acl_check *ed, const char *id)
{
	const ig_session *s = ig_sessions_find(&pl->sessions, id);
	if (!s || !s->joining || s->client != ed->client)
		return false;
	char topic[2 * IG_TOPIC_MAX + IG_ID_MAX];
	switch (ed->access) {
	case MOSQ_ACL_WRITE:
		snprintf(topic, sizeof topic, "%s%s", pl->topic_ch_prefix, id);
		return !ed->retain && strcmp(ed->topic, topic) == 0;
	case MOSQ_ACL_SUBSCRIBE:
		/* As on the normal path, "$share/<group>/<inbox>" is the inbox. */
		snprintf(topic, sizeof topic, "%s%s/inbox", pl->topic_dev_prefix, id);
		return strcmp(strip_shared(ed->topic), topic) == 0;
	case MOSQ_ACL_READ:
		snprintf(topic, sizeof topic, "%s%s/inbox", pl->topic_dev_prefix, id);
		return strcmp(ed->topic, topic) == 0;
	default:
		return false;
	}
}

int ig_plugin_on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_acl_check *ed = event_data;

	if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
		return MOSQ_ERR_SUCCESS;   /* dropping access is always allowed */

	const char *username = mosquitto_client_username(ed->client);
	const ig_identity *who = username ? ig_registry_find(pl->reg, username, strlen(username)) : NULL;
	bool active = who && who->status == IG_ID_ACTIVE;
	if (!active && username && joining_allows(pl, ed, username))
		return MOSQ_ERR_SUCCESS;
	const char *id = who ? who->id : "";
	ig_role role = who ? (ig_role)who->role : IG_ROLE_NONE;

	switch (ed->access) {
	case MOSQ_ACL_WRITE:
		if (active && ig_policy_allows(pl->policy, role, IG_ACCESS_PUBLISH, pl->cluster, id, ed->topic) &&
		    (!ed->retain || ig_policy_allows(pl->policy, role, IG_ACCESS_RETAIN, pl->cluster, id, ed->topic)))
			return MOSQ_ERR_SUCCESS;
		pl->acl_denied_publish++;
		return MOSQ_ERR_ACL_DENIED;
	case MOSQ_ACL_SUBSCRIBE:
		if (active && ig_policy_allows(pl->policy, role, IG_ACCESS_SUBSCRIBE, pl->cluster, id, strip_shared(ed->topic)))
			return MOSQ_ERR_SUCCESS;
		pl->acl_denied_subscribe++;
		return MOSQ_ERR_ACL_DENIED;
	case MOSQ_ACL_READ:
		if (active && ig_policy_allows(pl->policy, role, IG_ACCESS_READ, pl->cluster, id, ed->topic))
			return MOSQ_ERR_SUCCESS;
		pl->acl_denied_read++;
		return MOSQ_ERR_ACL_DENIED;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
}
