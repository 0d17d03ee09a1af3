/*
 * broker_stubs.c: the broker functions the plugin calls, recorded
 * (broker_stubs.h says why).
 *
 * These replace the broker at link time: a test executable that links them
 * must not link the real broker or a library that defines the same names.
 * The broker runs plugins on one thread and so do these; nothing here locks.
 * Records grow without bound and are freed by bs_reset and at exit, so
 * ASan's leak check sees no test-harness noise.
 */
#include "broker_stubs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mosquitto {
	char *id;
	char *username;
	char *address;
};

/* A growable array of records of one kind. */
#define VEC(T) struct { T *v; size_t n, cap; }

static VEC(bs_publish) publishes;
static VEC(bs_kick) kicks;
static VEC(bs_log) logs;
static VEC(bs_callback) callbacks;
static size_t unregistered, usernames_set;
static int publish_rc = MOSQ_ERR_SUCCESS, kick_rc = MOSQ_ERR_SUCCESS;
static int fail_register_nth, fail_register_rc;
static bool cleanup_armed;

/* Out of memory in the harness is not something a test can go on from. */
static void *must(void *p)
{
	if (!p) {
		fprintf(stderr, "broker_stubs: out of memory\n");
		abort();
	}
	return p;
}

static char *dup_or_null(const char *s)
{
	return s ? must(strdup(s)) : NULL;
}

#define VEC_PUSH(vec)                                                                             \
	(((vec).n == (vec).cap                                                                        \
	      ? ((vec).cap = (vec).cap ? 2 * (vec).cap : 16,                                          \
	         (vec).v = must(realloc((vec).v, (vec).cap * sizeof *(vec).v)))                       \
	      : NULL),                                                                                \
	 memset(&(vec).v[(vec).n], 0, sizeof *(vec).v), &(vec).v[(vec).n++])

static void free_calls(void)
{
	for (size_t i = 0; i < publishes.n; i++) {
		free(publishes.v[i].client_id);
		free(publishes.v[i].topic);
		free(publishes.v[i].payload);
	}
	for (size_t i = 0; i < kicks.n; i++)
		free(kicks.v[i].name);
	for (size_t i = 0; i < logs.n; i++)
		free(logs.v[i].text);
	free(publishes.v);
	free(kicks.v);
	free(logs.v);
	memset(&publishes, 0, sizeof publishes);
	memset(&kicks, 0, sizeof kicks);
	memset(&logs, 0, sizeof logs);
}

static void free_records(void)
{
	free_calls();
	free(callbacks.v);
	memset(&callbacks, 0, sizeof callbacks);
}

static void arm_cleanup(void)
{
	if (!cleanup_armed) {
		cleanup_armed = true;
		atexit(free_records);
	}
}

void bs_forget_calls(void)
{
	free_calls();
}

void bs_reset(void)
{
	arm_cleanup();
	free_records();
	unregistered = usernames_set = 0;
	publish_rc = kick_rc = MOSQ_ERR_SUCCESS;
	fail_register_nth = fail_register_rc = 0;
}

/* ---- test clients ---- */

struct mosquitto *bs_client_new(const char *id, const char *username, const char *address)
{
	struct mosquitto *c = must(calloc(1, sizeof *c));
	c->id = dup_or_null(id);
	c->username = dup_or_null(username);
	c->address = dup_or_null(address ? address : "127.0.0.1");
	return c;
}

void bs_client_free(struct mosquitto *client)
{
	if (!client)
		return;
	free(client->id);
	free(client->username);
	free(client->address);
	free(client);
}

/* ---- the broker's exported functions ---- */

void mosquitto_log_printf(int level, const char *fmt, ...)
{
	arm_cleanup();
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	bs_log *l = VEC_PUSH(logs);
	l->level = level;
	l->text = must(text);
	if (getenv("BS_VERBOSE"))
		fprintf(stderr, "[broker log %d] %s\n", level, l->text);
}

const char *mosquitto_client_address(const struct mosquitto *client)
{
	return client ? client->address : NULL;
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
	return client ? client->id : NULL;
}

const char *mosquitto_client_username(const struct mosquitto *client)
{
	return client ? client->username : NULL;
}

int mosquitto_set_username(struct mosquitto *client, const char *username)
{
	if (!client)
		return MOSQ_ERR_INVAL;
	char *copy = dup_or_null(username);
	free(client->username);
	client->username = copy;
	usernames_set++;
	return MOSQ_ERR_SUCCESS;
}

static int kick(const char *name, bool by_username, bool with_will)
{
	arm_cleanup();
	bs_kick *k = VEC_PUSH(kicks);
	k->name = dup_or_null(name);
	k->by_username = by_username;
	k->with_will = with_will;
	return kick_rc;
}

int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will)
{
	return kick(clientid, false, with_will);
}

int mosquitto_kick_client_by_username(const char *username, bool with_will)
{
	return kick(username, true, with_will);
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen, const void *payload, int qos,
                                  bool retain, mosquitto_property *properties)
{
	arm_cleanup();
	/* The plugin passes no properties; freeing them needs libmosquitto,
	 * which a stubbed test does not link. */
	if (!topic || payloadlen < 0 || (payloadlen > 0 && !payload) || qos < 0 || qos > 2 || properties)
		return MOSQ_ERR_INVAL;
	bs_publish *p = VEC_PUSH(publishes);
	p->client_id = dup_or_null(clientid);
	p->topic = must(strdup(topic));
	p->len = (size_t)payloadlen;
	p->payload = must(malloc(p->len + 1));
	if (p->len)
		memcpy(p->payload, payload, p->len);
	p->payload[p->len] = '\0';
	p->qos = qos;
	p->retain = retain;
	return publish_rc;
}

/* Takes ownership of payload, as the broker does. */
int mosquitto_broker_publish(const char *clientid, const char *topic, int payloadlen, void *payload, int qos,
                             bool retain, mosquitto_property *properties)
{
	int rc = mosquitto_broker_publish_copy(clientid, topic, payloadlen, payload, qos, retain, properties);
	free(payload);
	return rc;
}

void *mosquitto_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

void mosquitto_free(void *mem)
{
	free(mem);
}

void *mosquitto_malloc(size_t size)
{
	return malloc(size);
}

void *mosquitto_realloc(void *ptr, size_t size)
{
	return realloc(ptr, size);
}

char *mosquitto_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static size_t find_callback(int event, MOSQ_FUNC_generic_callback cb)
{
	for (size_t i = 0; i < callbacks.n; i++)
		if (callbacks.v[i].event == event && callbacks.v[i].cb == cb)
			return i;
	return (size_t)-1;
}

/* As the broker: one registration per (event, function). */
int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func,
                                const void *event_data, void *userdata)
{
	arm_cleanup();
	if (fail_register_nth > 0 && --fail_register_nth == 0)
		return fail_register_rc;
	if (!cb_func)
		return MOSQ_ERR_INVAL;
	if (find_callback(event, cb_func) != (size_t)-1)
		return MOSQ_ERR_ALREADY_EXISTS;
	bs_callback *c = VEC_PUSH(callbacks);
	c->pid = identifier;
	c->event = event;
	c->cb = cb_func;
	c->event_data = event_data;
	c->userdata = userdata;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func,
                                  const void *event_data)
{
	(void)event_data;
	if (!cb_func)
		return MOSQ_ERR_INVAL;
	size_t i = find_callback(event, cb_func);
	if (i == (size_t)-1 || callbacks.v[i].pid != identifier)
		return MOSQ_ERR_NOT_FOUND;
	memmove(&callbacks.v[i], &callbacks.v[i + 1], (callbacks.n - i - 1) * sizeof callbacks.v[0]);
	callbacks.n--;
	unregistered++;
	return MOSQ_ERR_SUCCESS;
}

/* ---- reading the records ---- */

size_t bs_publish_count(void)
{
	return publishes.n;
}

const bs_publish *bs_publish_at(size_t i)
{
	return i < publishes.n ? &publishes.v[i] : NULL;
}

const bs_publish *bs_publish_find(const char *client_id, const char *topic)
{
	for (size_t i = publishes.n; i-- > 0;) {
		const bs_publish *p = &publishes.v[i];
		bool to_match = client_id ? p->client_id && strcmp(p->client_id, client_id) == 0 : !p->client_id;
		if (to_match && strcmp(p->topic, topic) == 0)
			return p;
	}
	return NULL;
}

size_t bs_publish_count_on(const char *topic)
{
	size_t n = 0;
	for (size_t i = 0; i < publishes.n; i++)
		n += strcmp(publishes.v[i].topic, topic) == 0;
	return n;
}

size_t bs_kick_count(void)
{
	return kicks.n;
}

const bs_kick *bs_kick_at(size_t i)
{
	return i < kicks.n ? &kicks.v[i] : NULL;
}

size_t bs_log_count(void)
{
	return logs.n;
}

const bs_log *bs_log_at(size_t i)
{
	return i < logs.n ? &logs.v[i] : NULL;
}

bool bs_log_contains(int level, const char *needle)
{
	for (size_t i = 0; i < logs.n; i++)
		if ((level < 0 || logs.v[i].level == level) && strstr(logs.v[i].text, needle))
			return true;
	return false;
}

size_t bs_callback_count(void)
{
	return callbacks.n;
}

const bs_callback *bs_callback_at(size_t i)
{
	return i < callbacks.n ? &callbacks.v[i] : NULL;
}

const bs_callback *bs_callback_for(int event)
{
	for (size_t i = 0; i < callbacks.n; i++)
		if (callbacks.v[i].event == event)
			return &callbacks.v[i];
	return NULL;
}

size_t bs_callback_count_for(int event)
{
	size_t n = 0;
	for (size_t i = 0; i < callbacks.n; i++)
		n += callbacks.v[i].event == event;
	return n;
}

size_t bs_unregister_count(void)
{
	return unregistered;
}

int bs_fire(int event, void *event_data)
{
	const bs_callback *c = bs_callback_for(event);
	if (!c)
		return MOSQ_ERR_NOT_SUPPORTED;
	/* Copy first: a callback may register or unregister and move the array. */
	bs_callback call = *c;
	return call.cb(event, event_data, call.userdata);
}

size_t bs_set_username_count(void)
{
	return usernames_set;
}

void bs_set_publish_rc(int rc)
{
	publish_rc = rc;
}

void bs_fail_register_at(int nth, int rc)
{
	fail_register_nth = nth;
	fail_register_rc = rc;
}

void bs_set_kick_rc(int rc)
{
	kick_rc = rc;
}
