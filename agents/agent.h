/*
 * agent.h: the device agent's core and its "duties".
 *
 * Why this exists: every device must do the same few things to be a good
 * citizen of a cluster (stay connected with a fresh token, announce its
 * status, leave a will, listen on its inbox). That lifecycle lives in the
 * core (agent.c) and never changes when a device learns a new job. A new
 * job (ping, join, attestation, entropy, session keys; coin payloads
 * later) is a duty: a small table of callbacks the core calls when the
 * connection comes up, when a message arrives and on every loop tick.
 * Duties never touch libmosquitto or the key directly; they go through the
 * ig_agent_* calls below.
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
	/* A broker without the iotguard plugin (--plain-broker): no token, no
	 * cluster head; the inbox is not trusted (anyone may publish there), so
	 * inbox messages are ignored. Anonymous unless username is set, then
	 * username and password (the caller keeps and finally wipes it). */
	bool plain;
	const char *username;
	const char *password;
} ig_agent_config;

typedef struct ig_agent ig_agent;

/* A duty. Every callback is optional and runs on the agent's one thread.
 * Unless a duty owns the session (session_password below), callbacks run
 * only for normal sessions, i.e. ones opened with a connection token. */
typedef struct ig_duty_ops {
	const char *name;
	/* The connection is up: the inbox is subscribed, the online status sent. */
	void (*on_connect)(ig_agent *a, void *state);
	/* An inbox message whose "type" is `type`. Return true if this duty
	 * consumed it, so the core can tell about messages nobody handles. */
	bool (*on_inbox)(ig_agent *a, void *state, const char *type, const struct cJSON *msg);
	/* Called about twice a second while connected, after on_connect;
	 * now_us is monotonic. */
	void (*on_tick)(ig_agent *a, void *state, uint64_t now_us);
	/* The agent is stopping: wipe any secrets held in state. */
	void (*on_stop)(ig_agent *a, void *state);
	/* A message on a topic other than the inbox (one a duty subscribed to
	 * with ig_agent_subscribe). Every duty is offered it; return true if
	 * this duty used it (only for the "nobody handles it" debug line). */
	bool (*on_message)(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len);
	/* Extra members for the online status heartbeat: writes text such as
	 * `,"entropy":"ok"` (leading comma, valid JSON members) into out and
	 * returns its length; 0 adds nothing. Output that does not fit is dropped. */
	size_t (*status_fields)(ig_agent *a, void *state, char *out, size_t cap);
	/* Before every connection attempt. A duty that needs a session of its
	 * own (joining with a join token) writes the MQTT password into out and
	 * returns its length; 0 means "use a normal token". A negative return
	 * stops the agent. Such a session belongs to that duty alone: the core
	 * sends no status and sets no will (the session may not publish them)
	 * and only that duty's callbacks run until the next connect. */
	int (*session_password)(ig_agent *a, void *state, char *out, size_t cap);
	/* The broker refused a CONNECT (MQTT reason code). Called for the
	 * owning duty of a private session, else for every duty. */
	void (*on_refused)(ig_agent *a, void *state, int reason);
	/* The agent is stopping for good while a normal session is up. Called
	 * about every 100 ms, before the offline status goes out, for at most
	 * IG_AGENT_LEAVE_WAIT_US; inbox and other messages are still delivered
	 * meanwhile. A duty with business to settle first (the collector handing
	 * its unspent coins back) sends its requests here and returns true
	 * while it waits for the answers; false when it has nothing (left) to do. */
	bool (*on_leave)(ig_agent *a, void *state, uint64_t now_us);
} ig_duty_ops;

#define IG_AGENT_MAX_DUTIES 12
#define IG_AGENT_STATUS_MAX 2048      /* bytes of one status message, duty fields included (kp peers) */
/* How long a clean stop waits for duties' on_leave business: bounded, so a
 * silent broker cannot make SIGTERM hang (the offline status and DISCONNECT
 * that follow wait at most 4 s more). */
#define IG_AGENT_LEAVE_WAIT_US 5000000u

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
/* Publishes to any topic the role may write (no retain). IG_ERR_STATE if
 * not connected. */
int ig_agent_publish(ig_agent *a, const char *topic, const void *payload, size_t len, int qos);
/* Subscribes for this connection (subscriptions end with it, so duties
 * subscribe again in on_connect). A refused SUBACK is logged. */
int ig_agent_subscribe(ig_agent *a, const char *filter, int qos);
/* Runs fn with the identity secret key readable, then locks it away again.
 * Returns fn's result. fn must not keep the pointer. */
typedef int (*ig_agent_key_fn)(void *ctx, const uint8_t sk[IG_SK_BYTES]);
int ig_agent_with_key(ig_agent *a, ig_agent_key_fn fn, void *ctx);
/* Ends the current session cleanly and connects again at once, asking the
 * duties for credentials afresh (after a join, to come back as enrolled). */
void ig_agent_reconnect(ig_agent *a);
/* Stops the agent as a signal would; ig_agent_run returns IG_OK and
 * ig_agent_exit_status tells main which status to exit with. */
void ig_agent_stop(ig_agent *a, int exit_status);
int ig_agent_exit_status(const ig_agent *a);
/* True while a normal (token, or plain-broker) session is up. */
bool ig_agent_online(const ig_agent *a);
/* True when connected to a plain broker (cfg.plain): there is no cluster
 * head to ask, and nothing on the inbox comes from one. */
bool ig_agent_plain(const ig_agent *a);
const char *ig_agent_id(const ig_agent *a);
const char *ig_agent_cluster(const ig_agent *a);
const uint8_t *ig_agent_public_key(const ig_agent *a);

/* Log sink for ig_log(): timestamped lines on stderr. Never pass secrets. */
void ig_agent_log_init(const char *id, bool verbose);

/* Retry delay after `failures` consecutive failed attempts (0 = first
 * retry): 1 s doubling to 60 s, times a random factor in [0.8, 1.2].
 * Exposed for the unit test. */
uint64_t ig_agent_backoff_us(unsigned failures);

#endif
