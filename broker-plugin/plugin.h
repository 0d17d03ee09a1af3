/*
 * plugin.h: state shared by the plugin's glue files.
 *
 * Why this exists: the plugin is split by broker event (auth, ACL, admin
 * API, device requests, ticks), and those files share one state object.
 * Everything that decides anything lives in lib/; these files only translate
 * Mosquitto events into lib calls and lib results into MQTT messages.
 */
#ifndef IG_PLUGIN_H
#define IG_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "ig_admin.h"
#include "ig_auth.h"
#include "ig_common.h"
#include "ig_ledger.h"
#include "ig_policy.h"
#include "ig_registry.h"

#define IG_TOPIC_MAX 256

/* One connected, authenticated client. Keyed by id: Mosquitto keeps client
 * ids unique, and a takeover replaces the entry before the old connection's
 * DISCONNECT arrives, which is why the client pointer is compared there. */
typedef struct ig_session {
	const struct mosquitto *client;
	uint8_t role;
	bool used;
	char id[IG_ID_MAX + 1];
} ig_session;

typedef struct ig_sessions {
	ig_session *slots;
	size_t cap, count;
	uint64_t by_role[IG_ROLE_COUNT];
} ig_sessions;

/* Per-address failure counter that turns brute force into cheap refusals. */
typedef struct ig_ban_entry {
	char addr[48];
	uint32_t failures;
	uint64_t window_start_ms;
	uint64_t banned_until_ms;
} ig_ban_entry;

typedef struct ig_plugin_config {
	char ledger_dir[4096];
	char policy_path[4096];          /* "" = built-in default policy */
	uint32_t max_ttl_s[IG_ROLE_COUNT];
	uint32_t clock_skew_s;
	uint32_t stats_interval_s;       /* 0 = no stats */
	uint32_t auth_fail_limit;        /* failures per address per minute before a ban; 0 = off */
	uint32_t auth_ban_s;
} ig_plugin_config;

typedef struct ig_plugin {
	mosquitto_plugin_id_t *pid;
	ig_plugin_config cfg;
	ig_ledger *ledger;
	ig_registry *reg;
	ig_policy *policy;
	char cluster[IG_CLUSTER_MAX + 1];
	uint8_t ch_pk[IG_PK_BYTES];

	/* Topics, built once. */
	char topic_events[IG_TOPIC_MAX];
	char topic_head[IG_TOPIC_MAX];
	char topic_stats[IG_TOPIC_MAX];
	char topic_ch_prefix[IG_TOPIC_MAX];   /* "iotguard/C/ch/" */
	size_t topic_ch_prefix_len;

	ig_sessions sessions;
	ig_ban_entry bans[256];

	uint64_t start_ms;
	uint64_t next_stats_ms;
	bool head_published;

	/* Counters for stats. */
	uint64_t auth_accepted;
	uint64_t auth_refused[IG_AUTH_RESULT_COUNT];
	uint64_t acl_denied_publish, acl_denied_subscribe, acl_denied_read;
	uint64_t admin_commands, ch_requests;
	uint32_t admin_inflight;              /* durable admin commands awaiting the disk */
} ig_plugin;

/* plugin.c */
void ig_plugin_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Publishes to one client only (never routed to subscribers). */
void ig_plugin_send_to(const char *client_id, const char *topic, const char *json);
/* Publishes to every subscriber allowed to read topic. */
void ig_plugin_publish(const char *topic, const char *json, bool retain);
void ig_plugin_publish_event(ig_plugin *pl, const ig_record *rec);

/* plugin_auth.c */
int ig_plugin_on_basic_auth(int event, void *event_data, void *userdata);
int ig_plugin_on_ext_auth_start(int event, void *event_data, void *userdata);
int ig_plugin_on_disconnect(int event, void *event_data, void *userdata);
bool ig_sessions_init(ig_sessions *s);
void ig_sessions_free(ig_sessions *s);
const ig_session *ig_sessions_find(const ig_sessions *s, const char *id);

/* plugin_acl.c */
int ig_plugin_on_acl_check(int event, void *event_data, void *userdata);

/* plugin_admin.c */
int ig_plugin_on_control(int event, void *event_data, void *userdata);
/* Cuts every live connection of id (revocation). Returns true if one was cut. */
bool ig_plugin_disconnect_identity(ig_plugin *pl, const char *id);

/* plugin_requests.c */
int ig_plugin_on_message(int event, void *event_data, void *userdata);

#endif
