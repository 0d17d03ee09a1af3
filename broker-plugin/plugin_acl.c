/*
 * plugin_acl.c: per-message and per-subscription access checks.
 *
 * Why this exists: Mosquitto asks on every PUBLISH, SUBSCRIBE and delivery.
 * The answer comes from the role policy (lib/identity/policy.c) for the identity the
 * registry knows under the client's username; a revoked or unknown identity
 * gets nothing, even in the instant before its connection is cut.
 *
 * The registry decides on every check: its lookup is skipped only while
 * the registry's generation is the one at which this client's identity
 * was last seen active, and any enrol or revoke changes it, so revocation
 * needs no cache invalidation. Only an active identity's policy decisions
 * are remembered
 * (lib/identity/aclcache.c), keyed by its id, role and the policy's generation, so a
 * SIGHUP reload replaces them all at once. Decisions for joining devices
 * are never cached: they depend on the session table, which changes as
 * connections come and go. A client's decisions are dropped at its
 * DISCONNECT (plugin_auth.c).
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
	const char *topic = !ed->topic ? "" : ed->access == MOSQ_ACL_SUBSCRIBE ? strip_shared(ed->topic) : ed->topic;
	/* The cache's access code: Mosquitto's access, and for a publish whether
	 * it is retained (which also needs a "retain" pattern). */
	uint8_t code = (uint8_t)(ed->access * 2 + (ed->access == MOSQ_ACL_WRITE && ed->retain ? 1 : 0));
	/* The registry lookup (a SipHash and a probe) is skipped while the
	 * registry is unchanged since this client's identity was last seen
	 * active in it: any enrol or revoke changes its generation. That test
	 * and the cached decision take one probe of the cache (this runs for
	 * the publish and for each delivery of every relayed message). */
	uint64_t reg_gen = ig_registry_generation(pl->reg);
	ig_aclcache_key key = {.client = ed->client, .id = username, .generation = ig_policy_generation(pl->policy),
	                       .access = code, .topic = topic, .topic_len = strlen(topic), .registry_generation = reg_gen};
	uint8_t memo_role;
	ig_aclcache_result cached =
		username ? ig_aclcache_get_known(pl->aclcache, &key, &memo_role) : IG_ACLCACHE_UNKNOWN;
	const char *id = username;
	ig_role role;
	if (cached != IG_ACLCACHE_UNKNOWN) {
		role = (ig_role)memo_role;
		key.role = memo_role;
	} else {
		const ig_identity *who = username ? ig_registry_find(pl->reg, username, strlen(username)) : NULL;
		bool active = who && who->status == IG_ID_ACTIVE;
		if (!active && username && joining_allows(pl, ed, username))
			return MOSQ_ERR_SUCCESS;
		id = who ? who->id : "";
		role = who ? (ig_role)who->role : IG_ROLE_NONE;
		key.id = id;
		key.role = (uint8_t)role;
		key.registry_generation = active ? reg_gen : 0;
		cached = active ? ig_aclcache_get(pl->aclcache, &key) : IG_ACLCACHE_DENY;
	}
	bool allowed;
	if (cached != IG_ACLCACHE_MISS) {
		allowed = cached == IG_ACLCACHE_ALLOW;
	} else {
		switch (ed->access) {
		case MOSQ_ACL_WRITE:
			allowed = ig_policy_allows(pl->policy, role, IG_ACCESS_PUBLISH, pl->cluster, id, topic) &&
			          (!ed->retain || ig_policy_allows(pl->policy, role, IG_ACCESS_RETAIN, pl->cluster, id, topic));
			break;
		case MOSQ_ACL_SUBSCRIBE:
			allowed = ig_policy_allows(pl->policy, role, IG_ACCESS_SUBSCRIBE, pl->cluster, id, topic);
			break;
		case MOSQ_ACL_READ:
			allowed = ig_policy_allows(pl->policy, role, IG_ACCESS_READ, pl->cluster, id, topic);
			break;
		default:
			return MOSQ_ERR_ACL_DENIED;
		}
		/* Only for a connected client: Mosquitto also checks deliveries to
		 * offline persistent sessions, and sends no second DISCONNECT when
		 * it frees those, so their slots would never be released. */
		const ig_session *live = ig_sessions_find(&pl->sessions, id);
		if (live && live->client == ed->client)
			ig_aclcache_put(pl->aclcache, &key, allowed);
	}
	if (allowed)
		return MOSQ_ERR_SUCCESS;
	switch (ed->access) {
	case MOSQ_ACL_WRITE:
		pl->acl_denied_publish++;
		break;
	case MOSQ_ACL_SUBSCRIBE:
		pl->acl_denied_subscribe++;
		break;
	case MOSQ_ACL_READ:
		pl->acl_denied_read++;
		break;
	default:
		break;
	}
	return MOSQ_ERR_ACL_DENIED;
}
