/*
 * agent.h: the device agent's core and its "duties".
 *
 * Why this exists: every device must do the same few things to be a good
 * citizen of a cluster (stay connected with a fresh token, announce its
 * status, leave a will, listen on its inbox). That lifecycle lives in the
 * core (agent.c) and never changes when a device learns a new job. A new
 * job (ping today; entropy, session keys and coin payloads later) is a
 * duty: a small table of callbacks the core calls when the connection comes
 * up, when an inbox message arrives and on every loop tick. Duties never
 * touch libmosquitto directly; they send requests with ig_agent_request().
 */
#ifndef IG_AGENT_H
#define IG_AGENT_H

#include <signal.h>

#include "ig_common.h"

struct cJSON;

typedef struct ig_agent_config {
	const char *host;
	int port;
	const char *cluster;
	const char *id;
	const char *key_path;
	unsigned heartbeat_s;     /* seconds between status heartbeats */
	unsigned ttl_s;           /* lifetime of each connection token */
	unsigned keepalive_s;     /* MQTT keepalive */
	const char *tls_ca;       /* NULL: plain TCP */
	bool verbose;             /* debug logs, including libmosquitto's */
} ig_agent_config;

typedef struct ig_agent ig_agent;

/* A duty. Every callback is optional and runs on the agent's one thread. */
typedef struct ig_duty_ops {
	const char *name;
	/* The connection is up: the inbox is subscribed, the online status sent. */
	void (*on_connect)(ig_agent *a, void *state);
	/* An inbox message whose "type" is `type`. Return true if this duty
	 * consumed it, so the core can tell about messages nobody handles. */
	bool (*on_inbox)(ig_agent *a, void *state, const char *type, const struct cJSON *msg);
	/* Called about twice a second while connected; now_us is monotonic. */
	void (*on_tick)(ig_agent *a, void *state, uint64_t now_us);
	/* The agent is stopping: wipe any secrets held in state. */
	void (*on_stop)(ig_agent *a, void *state);
} ig_duty_ops;

#define IG_AGENT_MAX_DUTIES 8

/* Reads the key (it stays in guarded memory until ig_agent_free), sets up
 * the MQTT client and the will. Errors say what to fix. */
int ig_agent_new(ig_agent **out, const ig_agent_config *cfg, ig_error *err);
int ig_agent_add_duty(ig_agent *a, const ig_duty_ops *ops, void *state);

/* Connects, reconnects with backoff, and serves until *stop becomes
 * non-zero (set by a signal handler); then publishes the offline status,
 * disconnects cleanly and returns IG_OK. */
int ig_agent_run(ig_agent *a, volatile sig_atomic_t *stop);

/* Wipes the key and frees everything. NULL is allowed. */
void ig_agent_free(ig_agent *a);

/* ---- for duties ---- */

/* Publishes a JSON request (QoS 1) to iotguard/<cluster>/ch/<id>.
 * IG_ERR_STATE if not connected. */
int ig_agent_request(ig_agent *a, const char *json, size_t len);
const char *ig_agent_id(const ig_agent *a);
const char *ig_agent_cluster(const ig_agent *a);

/* Log sink for ig_log(): timestamped lines on stderr. Never pass secrets. */
void ig_agent_log_init(const char *id, bool verbose);

/* Retry delay after `failures` consecutive failed attempts (0 = first
 * retry): 1 s doubling to 60 s, times a random factor in [0.8, 1.2].
 * Exposed for the unit test. */
uint64_t ig_agent_backoff_us(unsigned failures);

#endif
