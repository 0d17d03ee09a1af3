/*
 * broker_stubs.h: a recording stand-in for the Mosquitto broker functions
 * the plugin calls, so the glue in broker-plugin/ runs in a unit test.
 *
 * Why this exists: without it the glue (option parsing, the callback table,
 * request routing, the ACL answer, the published head) is reachable only
 * through a real broker and a network client. As the stub files in
 * Mosquitto's own test/unit/ (persist_read_stubs.c and friends) do for its
 * internals, broker_stubs.c defines the broker's exported functions; a test
 * executable links the plugin's sources with it instead of the broker. Each stub records what it was asked and
 * returns what the test set, and a test fires broker events at the callbacks
 * the plugin registered.
 *
 * `struct mosquitto` (opaque to the plugin) is a test client here: an id, a
 * username (NULL = none) and an address, made by bs_client_new.
 */
#ifndef IG_BROKER_STUBS_H
#define IG_BROKER_STUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* ---- test clients ---- */
struct mosquitto *bs_client_new(const char *id, const char *username, const char *address);
void bs_client_free(struct mosquitto *client);

/* ---- what the plugin did ---- */

/* One mosquitto_broker_publish(_copy): client_id NULL = to every allowed
 * subscriber, else to that one client. payload is NUL-terminated (for
 * JSON), len is its real length. */
typedef struct bs_publish {
	char *client_id;
	char *topic;
	char *payload;
	size_t len;
	int qos;
	bool retain;
} bs_publish;

typedef struct bs_kick {
	char *name;          /* client id or username */
	bool by_username;
	bool with_will;
} bs_kick;

typedef struct bs_log {
	int level;
	char *text;
} bs_log;

typedef struct bs_callback {
	mosquitto_plugin_id_t *pid;
	int event;
	MOSQ_FUNC_generic_callback cb;
	const void *event_data;   /* MOSQ_EVT_CONTROL: the topic */
	void *userdata;
} bs_callback;

size_t bs_publish_count(void);
const bs_publish *bs_publish_at(size_t i);
/* The newest publish on topic (and to client_id, NULL = broadcast only), or
 * NULL. */
const bs_publish *bs_publish_find(const char *client_id, const char *topic);
/* How many publishes went on topic, to anyone. */
size_t bs_publish_count_on(const char *topic);

size_t bs_kick_count(void);
const bs_kick *bs_kick_at(size_t i);

size_t bs_log_count(void);
const bs_log *bs_log_at(size_t i);
/* True if a logged line at level (or any level when level < 0) contains
 * needle. */
bool bs_log_contains(int level, const char *needle);

/* Callbacks currently registered (registered and not yet unregistered). */
size_t bs_callback_count(void);
const bs_callback *bs_callback_at(size_t i);
/* The first registration for event, or NULL (bs_callback_count_for tells
 * whether there are several). */
const bs_callback *bs_callback_for(int event);
size_t bs_callback_count_for(int event);
/* Total unregister calls that matched a registration. */
size_t bs_unregister_count(void);
/* Calls the callback registered for event, as the broker would, and
 * returns its answer; MOSQ_ERR_NOT_SUPPORTED if nothing is registered. */
int bs_fire(int event, void *event_data);

/* How many times the plugin called mosquitto_set_username (the client's
 * username, read back with mosquitto_client_username, is the new one). */
size_t bs_set_username_count(void);

/* ---- what the broker answers ---- */

/* mosquitto_broker_publish(_copy) returns rc from now on (still records). */
void bs_set_publish_rc(int rc);
/* The nth (1-based) mosquitto_callback_register from now fails with rc
 * and registers nothing; 0 = never. */
void bs_fail_register_at(int nth, int rc);
/* mosquitto_kick_client_* return rc. */
void bs_set_kick_rc(int rc);

/* Forgets the publishes, kicks and log lines so far; the registered
 * callbacks and the answers set stay (for several steps in one test). */
void bs_forget_calls(void);
/* Forgets every record and restores the default answers (all succeed).
 * Registered callbacks are forgotten too: for between plugin lifetimes. */
void bs_reset(void);

#endif
