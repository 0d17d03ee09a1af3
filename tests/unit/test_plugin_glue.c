/*
 * test_plugin_glue.c: the plugin's glue, run against recorded broker stubs
 * (broker_stubs.h) and a real ledger, with no broker and no network.
 *
 * Why this exists: the services are unit-tested in lib/, but what turns
 * broker events into their calls (option parsing, the callback table, the
 * ch-topic routing and its refusals, the ACL answer, the published head)
 * was reachable only through a running Mosquitto. These tests drive it
 * through the broker callbacks the plugin registers, so they keep to
 * behaviour that outlives a rewrite of any one feature file.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_stubs.h"
#include "ig_admin.h"
#include "ig_checkpoint.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_token.h"
#include "plugin.h"
#include "testutil.h"

#define CLUSTER "glue"
#define CH(id) "iotguard/" CLUSTER "/ch/" id
#define DEV(id) "iotguard/" CLUSTER "/dev/" id
#define INBOX(id) DEV(id) "/inbox"
#define HEAD_TOPIC "iotguard/" CLUSTER "/ledger/head"

static char ledger_dir[512];
static uint8_t ch_pk[IG_PK_BYTES];
static uint64_t ledger_records;   /* genesis included */
static int pid_token;
static mosquitto_plugin_id_t *const pid = (mosquitto_plugin_id_t *)&pid_token;
static void *plugin;              /* the plugin's userdata once started */
static struct mosquitto *dev1, *dev2, *dev3, *ana1;

static void append(ig_ledger *l, uint16_t type, const uint8_t *body, size_t len)
{
	ig_error err = {0};
	cr_assert_eq(ig_ledger_append(l, type, body, len, NULL, &err), IG_OK, "ledger append: %s", err.msg);
	ledger_records++;
}

static void enroll(ig_ledger *l, const char *id, ig_role role, uint8_t seed_first)
{
	uint8_t pk[32], sk[64], body[512];
	tu_seed_keypair(pk, sk, seed_first);
	sodium_memzero(sk, sizeof sk);
	append(l, IG_REC_ENROLL, body, tu_enroll_body(body, sizeof body, id, role, pk, "admin"));
}

/* A ledger made by the lib, as `iotguard init` and offline `enroll` would:
 * devices dev1 and dev2, analyst ana1, and dev3 enrolled then revoked. */
static void make_ledger(void)
{
	snprintf(ledger_dir, sizeof ledger_dir, "%s/ledger", tu_scratch_dir("glue"));
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(ledger_dir, CLUSTER, ch_pk, &err), IG_OK, "%s", err.msg);
	ledger_records = 1;
	ig_ledger *l = NULL;
	ig_ledger_open_opts lo = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, ledger_dir, &lo, &err), IG_OK, "%s", err.msg);
	enroll(l, "dev1", IG_ROLE_DEVICE, 0x10);
	enroll(l, "dev2", IG_ROLE_DEVICE, 0x30);
	enroll(l, "ana1", IG_ROLE_ANALYST, 0x50);
	enroll(l, "dev3", IG_ROLE_DEVICE, 0x70);
	uint8_t body[256];
	append(l, IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, "dev3", "admin"));
	ig_ledger_close(l);
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	bs_reset();
	make_ledger();
	dev1 = bs_client_new("dev1", "dev1", "10.0.0.1");
	dev2 = bs_client_new("dev2", "dev2", "10.0.0.2");
	dev3 = bs_client_new("dev3", "dev3", "10.0.0.3");
	ana1 = bs_client_new("ana1", "ana1", "10.0.0.4");
}

static void teardown(void)
{
	if (plugin)
		mosquitto_plugin_cleanup(plugin, NULL, 0);
	plugin = NULL;
	bs_client_free(dev1);
	bs_client_free(dev2);
	bs_client_free(dev3);
	bs_client_free(ana1);
	bs_reset();
}

TestSuite(glue, .init = setup, .fini = teardown);

static int start_with(struct mosquitto_opt *opts, int n)
{
	void *ud = NULL;
	int rc = mosquitto_plugin_init(pid, &ud, opts, n);
	if (rc == MOSQ_ERR_SUCCESS)
		plugin = ud;
	else
		cr_assert_null(ud, "a refused start must not hand the broker a plugin");
	return rc;
}

static void start(void)
{
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir}};
	int rc = start_with(opts, 1);
	cr_assert_eq(rc, MOSQ_ERR_SUCCESS, "plugin refused to start (rc %d); BS_VERBOSE=1 shows its log", rc);
}

/* Mosquitto hands the plugin messages only from clients the plugin
 * authenticated, which hold a session; a message from a connection without
 * one came over a bridge and is never a request (plugin_requests.c). A stub
 * client that did not log in holds its id's session for the one event. */
static int fire_message(struct mosquitto_evt_message *ev)
{
	ig_plugin *pl = plugin;
	const char *id = mosquitto_client_username(ev->client);
	const ig_session *s = pl && id ? ig_sessions_find(&pl->sessions, id) : NULL;
	bool opened = false;
	if (pl && id && !s) {
		const ig_identity *who = ig_registry_find(pl->reg, id, strlen(id));
		cr_assert_not_null(ig_sessions_open(&pl->sessions, ev->client, id, who ? who->role : IG_ROLE_DEVICE));
		opened = true;
	}
	int rc = bs_fire(MOSQ_EVT_MESSAGE, ev);
	if (opened)
		ig_sessions_close(&pl->sessions, ev->client, id);
	return rc;
}

static int publish_from(struct mosquitto *client, const char *topic, const void *payload, size_t len)
{
	struct mosquitto_evt_message ev;
	memset(&ev, 0, sizeof ev);
	ev.client = client;
	ev.topic = (char *)topic;
	ev.payload = (void *)payload;
	ev.payloadlen = (uint32_t)len;
	ev.qos = 1;
	return fire_message(&ev);
}

static int request(struct mosquitto *client, const char *topic, const char *json)
{
	return publish_from(client, topic, json, strlen(json));
}

static int acl(struct mosquitto *client, int access, const char *topic, bool retain)
{
	struct mosquitto_evt_acl_check ev;
	memset(&ev, 0, sizeof ev);
	ev.client = client;
	ev.topic = topic;
	ev.access = access;
	ev.retain = retain;
	ev.qos = 1;
	return bs_fire(MOSQ_EVT_ACL_CHECK, &ev);
}

static int tick(void)
{
	struct mosquitto_evt_tick ev;
	memset(&ev, 0, sizeof ev);
	return bs_fire(MOSQ_EVT_TICK, &ev);
}

/* The one message the last request produced: to client id's inbox only,
 * QoS 1, not retained. The caller deletes the parsed object. */
static cJSON *only_reply_to(const char *id, const char *inbox)
{
	cr_assert_eq(bs_publish_count(), 1, "expected exactly one message, got %zu", bs_publish_count());
	const bs_publish *p = bs_publish_at(0);
	cr_assert_not_null(p->client_id, "a reply was broadcast on %s instead of sent to one client", p->topic);
	cr_assert_str_eq(p->client_id, id);
	cr_assert_str_eq(p->topic, inbox);
	cr_assert_eq(p->qos, 1);
	cr_assert_not(p->retain, "a reply must not be retained");
	cJSON *o = cJSON_ParseWithLength(p->payload, p->len);
	cr_assert_not_null(o, "reply is not JSON: %s", p->payload);
	return o;
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(f) ? f->valuestring : NULL;
}

static void assert_error_reply(const char *id, const char *inbox, const char *code)
{
	cJSON *o = only_reply_to(id, inbox);
	cr_assert_str_eq(str_field(o, "type"), "error");
	cr_assert_str_eq(str_field(o, "error"), code);
	cr_assert_not_null(str_field(o, "message"), "an error must say what to do");
	cJSON_Delete(o);
}

/* ---- starting: options and the callback table ------------------------- */

static void assert_refused(struct mosquitto_opt *opts, int n, int want_rc, const char *log_says)
{
	bs_reset();
	cr_assert_eq(start_with(opts, n), want_rc, "expected rc %d for a start that must say \"%s\"", want_rc, log_says);
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, log_says), "no error log saying \"%s\"", log_says);
	cr_assert_eq(bs_callback_count(), 0, "a refused start left %zu callbacks registered", bs_callback_count());
}

Test(glue, bad_options_refused_with_a_message)
{
	struct mosquitto_opt unknown[] = {{.key = "ledger", .value = ledger_dir}, {.key = "colour", .value = "red"}};
	assert_refused(unknown, 2, MOSQ_ERR_INVAL, "unknown option plugin_opt_colour; known: ledger, policy");

	struct mosquitto_opt role[] = {{.key = "ttl_wizard", .value = "60"}, {.key = "ledger", .value = ledger_dir}};
	assert_refused(role, 2, MOSQ_ERR_INVAL, "roles are device, analyst, monitor, admin, witness");

	const char *bad_skews[] = {"abc", "-1", "3601", "", "12x", "99999999999999999999"};
	for (size_t i = 0; i < sizeof bad_skews / sizeof bad_skews[0]; i++) {
		struct mosquitto_opt skew[] = {{.key = "ledger", .value = ledger_dir},
		                               {.key = "clock_skew", .value = (char *)bad_skews[i]}};
		char says[128];
		snprintf(says, sizeof says, "plugin_opt_clock_skew '%s' is not a number in 0..3600; fix mosquitto.conf",
		         bad_skews[i]);
		assert_refused(skew, 2, MOSQ_ERR_INVAL, says);
	}

	struct mosquitto_opt ttl[] = {{.key = "ledger", .value = ledger_dir}, {.key = "ttl_device", .value = "0"}};
	assert_refused(ttl, 2, MOSQ_ERR_INVAL, "plugin_opt_ttl_device '0' is not a number in 1..604800");

	struct mosquitto_opt novalue[] = {{.key = "ledger", .value = ledger_dir}, {.key = "coin_ttl", .value = NULL}};
	assert_refused(novalue, 2, MOSQ_ERR_INVAL, "plugin option 1 has no value");
}

Test(glue, ledger_missing_refused)
{
	assert_refused(NULL, 0, MOSQ_ERR_INVAL, "plugin_opt_ledger is missing; point it at a ledger made with "
	                                        "'iotguard init --ledger DIR --cluster NAME'");
	struct mosquitto_opt only_skew[] = {{.key = "clock_skew", .value = "5"}};
	assert_refused(only_skew, 1, MOSQ_ERR_INVAL, "plugin_opt_ledger is missing");

	char nowhere[600];
	snprintf(nowhere, sizeof nowhere, "%s/no-such-ledger", tu_scratch_dir("glue-none"));
	struct mosquitto_opt missing[] = {{.key = "ledger", .value = nowhere}};
	assert_refused(missing, 1, MOSQ_ERR_UNKNOWN, "; refusing to start");
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, nowhere), "the refusal must name the ledger directory");
}

Test(glue, good_options_accepted)
{
	struct mosquitto_opt opts[] = {
		{.key = "ledger", .value = ledger_dir}, {.key = "ttl_device", .value = "60"},
		{.key = "clock_skew", .value = "0"},    {.key = "stats_interval", .value = "0"},
		{.key = "coin_ttl", .value = "3600"},   {.key = "auth_fail_limit", .value = "0"},
	};
	cr_assert_eq(start_with(opts, (int)(sizeof opts / sizeof opts[0])), MOSQ_ERR_SUCCESS);
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "cluster 'glue': ledger"), "no start-up line");
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "3 active identities"), "the start-up line must count the active ids");
}

static const struct {
	int event;
	const char *name;
} k_events[] = {
	{MOSQ_EVT_BASIC_AUTH, "basic auth"}, {MOSQ_EVT_EXT_AUTH_START, "extended auth start"},
	{MOSQ_EVT_ACL_CHECK, "ACL check"},   {MOSQ_EVT_CONTROL, "control"},
	{MOSQ_EVT_MESSAGE, "message"},       {MOSQ_EVT_TICK, "tick"},
	{MOSQ_EVT_RELOAD, "reload"},         {MOSQ_EVT_DISCONNECT, "disconnect"},
};
#define N_EVENTS (sizeof k_events / sizeof k_events[0])

Test(glue, callback_table_registered_and_removed)
{
	start();
	cr_assert_eq(bs_callback_count(), N_EVENTS, "registered %zu callbacks", bs_callback_count());
	for (size_t i = 0; i < N_EVENTS; i++) {
		cr_assert_eq(bs_callback_count_for(k_events[i].event), 1, "%s: not registered once", k_events[i].name);
		const bs_callback *c = bs_callback_for(k_events[i].event);
		cr_assert_eq(c->pid, pid, "%s: registered under another plugin id", k_events[i].name);
		cr_assert_eq(c->userdata, plugin, "%s: gets another userdata than init returned", k_events[i].name);
	}
	/* The admin API's control topic is the event data of the control event. */
	const bs_callback *ctl = bs_callback_for(MOSQ_EVT_CONTROL);
	cr_assert_not_null(ctl->event_data);
	cr_assert_str_eq((const char *)ctl->event_data, IG_ADMIN_TOPIC);

	cr_assert_eq(mosquitto_plugin_cleanup(plugin, NULL, 0), MOSQ_ERR_SUCCESS);
	plugin = NULL;
	cr_assert_eq(bs_callback_count(), 0, "cleanup left %zu callbacks registered", bs_callback_count());
	cr_assert_eq(bs_unregister_count(), N_EVENTS);
}

/* A broker that refuses one registration: the plugin says which, removes
 * the ones it made and refuses to start, with the broker's code. */
Test(glue, failed_registration_unwinds)
{
	bs_fail_register_at(4, MOSQ_ERR_NOMEM);
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir}};
	cr_assert_eq(start_with(opts, 1), MOSQ_ERR_NOMEM);
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "could not register callback for event"), "no log of the failure");
	cr_assert_eq(bs_callback_count(), 0, "%zu callbacks left behind", bs_callback_count());
	cr_assert_eq(bs_unregister_count(), 3);
	/* The ledger was closed again: a second start can take its lock. */
	bs_reset();
	start();
}

/* ---- requests on the ch topic ------------------------------------------ */

Test(glue, ping_answered_to_the_askers_inbox_only)
{
	start();
	size_t before = bs_publish_count();
	cr_assert_eq(before, 0, "nothing is published before the first tick");
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"ping\",\"nonce\":\"n-1\"}"), MOSQ_ERR_SUCCESS);
	cJSON *o = only_reply_to("dev1", INBOX("dev1"));
	cr_assert_str_eq(str_field(o, "type"), "pong");
	cr_assert_str_eq(str_field(o, "nonce"), "n-1");
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
	cr_assert(cJSON_IsNumber(ts) && ts->valuedouble > 1.6e12, "pong needs a millisecond timestamp");
	cJSON_Delete(o);
}

Test(glue, ping_with_a_bad_nonce_refused)
{
	start();
	cr_assert_eq(request(dev2, CH("dev2"), "{\"type\":\"ping\",\"nonce\":7}"), MOSQ_ERR_SUCCESS);
	cJSON *o = only_reply_to("dev2", INBOX("dev2"));
	cr_assert_str_eq(str_field(o, "error"), "malformed");
	cr_assert_str_eq(str_field(o, "request"), "ping");
	cJSON_Delete(o);
}

/* Only <id> may ask on ch/<id>: a client under another username, or none,
 * is denied and nobody gets an answer. */
Test(glue, request_from_another_username_refused)
{
	start();
	cr_assert_eq(request(dev2, CH("dev1"), "{\"type\":\"ping\"}"), MOSQ_ERR_ACL_DENIED);
	struct mosquitto *anon = bs_client_new("anon", NULL, NULL);
	int rc = request(anon, CH("dev1"), "{\"type\":\"ping\"}");
	bs_client_free(anon);
	cr_assert_eq(rc, MOSQ_ERR_ACL_DENIED);
	/* A username that only starts like the id is not the id. */
	struct mosquitto *longer = bs_client_new("dev10", "dev10", NULL);
	rc = request(longer, CH("dev1"), "{\"type\":\"ping\"}");
	bs_client_free(longer);
	cr_assert_eq(rc, MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(bs_publish_count(), 0, "a refused request was answered");
}

Test(glue, unknown_type_answered_unknown_type)
{
	start();
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"frobnicate\",\"nonce\":\"x\"}"), MOSQ_ERR_SUCCESS);
	cJSON *o = only_reply_to("dev1", INBOX("dev1"));
	cr_assert_str_eq(str_field(o, "type"), "error");
	cr_assert_str_eq(str_field(o, "error"), "unknown_type");
	/* Never echo a type the cluster head does not know. */
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "request"));
	const char *msg = str_field(o, "message");
	cr_assert_not_null(msg);
	cr_assert_not_null(strstr(msg, "ping"), "the message must list the known types: %s", msg);
	cr_assert_null(strstr(msg, "frobnicate"));
	cJSON_Delete(o);
}

Test(glue, malformed_request_refused)
{
	start();
	const char *bad[] = {"not json", "[\"type\",\"ping\"]", "{\"type\":1}", "{}", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bs_forget_calls();
		cr_assert_eq(request(dev1, CH("dev1"), bad[i]), MOSQ_ERR_SUCCESS);
		assert_error_reply("dev1", INBOX("dev1"), "malformed");
	}
}

/* 8 KiB is the limit: one byte over is refused as too large before it is
 * parsed; a request of exactly the limit is served. */
Test(glue, oversized_request_refused)
{
	start();
	size_t limit = 8192;
	char *big = malloc(limit + 2);
	cr_assert_not_null(big);
	memset(big, ' ', limit + 1);
	memcpy(big, "{\"type\":\"ping\"}", 15);
	big[limit + 1] = '\0';
	cr_assert_eq(publish_from(dev1, CH("dev1"), big, limit + 1), MOSQ_ERR_SUCCESS);
	cJSON *o = only_reply_to("dev1", INBOX("dev1"));
	cr_assert_str_eq(str_field(o, "error"), "too_large");
	cr_assert_not_null(strstr(str_field(o, "message"), "8 KiB"));
	cJSON_Delete(o);

	bs_forget_calls();
	cr_assert_eq(publish_from(dev1, CH("dev1"), big, limit), MOSQ_ERR_SUCCESS);
	o = only_reply_to("dev1", INBOX("dev1"));
	cr_assert_str_eq(str_field(o, "type"), "pong", "a request of exactly 8 KiB must be served");
	cJSON_Delete(o);
	free(big);
}

/* Ordinary traffic is not the plugin's: no answer, no refusal. */
Test(glue, other_topics_pass_through)
{
	start();
	cr_assert_eq(request(dev1, DEV("dev1") "/status", "{\"type\":\"ping\"}"), MOSQ_ERR_SUCCESS);
	cr_assert_eq(request(dev1, "iotguard/other/ch/dev1", "{\"type\":\"ping\"}"), MOSQ_ERR_SUCCESS);
	cr_assert_eq(request(dev1, "unrelated/topic", "x"), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count(), 0);
}

/* ---- the ACL ----------------------------------------------------------- */

Test(glue, acl_device_own_topics_allowed)
{
	start();
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, CH("dev1"), false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/status", false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/status", true), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/data/temp", false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, INBOX("dev1"), false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, "$share/g/" INBOX("dev1"), false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_READ, INBOX("dev1"), false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, HEAD_TOPIC, false), MOSQ_ERR_SUCCESS);
	/* asked twice (the second answer may come from the cache) */
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/status", false), MOSQ_ERR_SUCCESS);
}

Test(glue, acl_device_other_devices_topics_denied)
{
	start();
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, CH("dev2"), false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev2") "/status", false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev2") "/data/temp", false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, INBOX("dev2"), false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, "$share/g/" INBOX("dev2"), false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_READ, INBOX("dev2"), false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev1, MOSQ_ACL_SUBSCRIBE, DEV("+") "/inbox", false), MOSQ_ERR_ACL_DENIED);
	/* retaining needs a retain pattern too: entropy has none */
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/entropy", true), MOSQ_ERR_ACL_DENIED);
	/* the analyst may read devices' data; a device may not */
	cr_assert_eq(acl(ana1, MOSQ_ACL_SUBSCRIBE, DEV("dev1") "/data/temp", false), MOSQ_ERR_SUCCESS);
	cr_assert_eq(acl(dev2, MOSQ_ACL_SUBSCRIBE, DEV("dev1") "/data/temp", false), MOSQ_ERR_ACL_DENIED);
	/* dropping access is always allowed */
	cr_assert_eq(acl(dev1, MOSQ_ACL_UNSUBSCRIBE, INBOX("dev2"), false), MOSQ_ERR_SUCCESS);
}

/* A revoked or unknown identity, or a client without a username, gets
 * nothing, even on what would be its own topics. */
Test(glue, acl_revoked_and_unknown_denied)
{
	start();
	cr_assert_eq(acl(dev3, MOSQ_ACL_WRITE, DEV("dev3") "/status", false), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(acl(dev3, MOSQ_ACL_SUBSCRIBE, INBOX("dev3"), false), MOSQ_ERR_ACL_DENIED);
	struct mosquitto *ghost = bs_client_new("ghost", "ghost", NULL);
	struct mosquitto *anon = bs_client_new("anon", NULL, NULL);
	int rc1 = acl(ghost, MOSQ_ACL_WRITE, DEV("ghost") "/status", false);
	int rc2 = acl(anon, MOSQ_ACL_SUBSCRIBE, HEAD_TOPIC, false);
	bs_client_free(ghost);
	bs_client_free(anon);
	cr_assert_eq(rc1, MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(rc2, MOSQ_ERR_ACL_DENIED);
}

/* ---- the tick and the ledger head -------------------------------------- */

Test(glue, tick_publishes_the_retained_head_once)
{
	start();
	cr_assert_eq(tick(), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count_on(HEAD_TOPIC), 1, "the first tick must publish the head");
	const bs_publish *p = bs_publish_find(NULL, HEAD_TOPIC);
	cr_assert_not_null(p, "the head must go to every subscriber, not one client");
	cr_assert(p->retain, "the head must be retained for late subscribers");
	cr_assert_eq(p->qos, 1);

	cJSON *o = cJSON_ParseWithLength(p->payload, p->len);
	cr_assert_not_null(o, "head is not JSON: %s", p->payload);
	cr_assert_str_eq(str_field(o, "origin"), "iotguard/" CLUSTER);
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "size");
	cr_assert(cJSON_IsNumber(size));
	cr_assert_eq((uint64_t)size->valuedouble, ledger_records);
	char pk_hex[2 * IG_PK_BYTES + 1];
	ig_hex_encode(pk_hex, ch_pk, IG_PK_BYTES);
	cr_assert_str_eq(str_field(o, "ch_pubkey"), pk_hex);

	/* The checkpoint verifies under the cluster-head key and agrees with
	 * the fields beside it. */
	const char *text = str_field(o, "checkpoint");
	cr_assert_not_null(text);
	ig_checkpoint cp;
	ig_error err = {0};
	cr_assert_eq(ig_checkpoint_verify(text, strlen(text), "iotguard/" CLUSTER, ch_pk, &cp, &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(cp.size, ledger_records);
	char root_b64[sodium_base64_ENCODED_LEN(IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(root_b64, sizeof root_b64, cp.root, IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
	cr_assert_str_eq(str_field(o, "root"), root_b64);
	cJSON_Delete(o);

	/* Nothing new in the ledger: later ticks do not publish it again. */
	cr_assert_eq(tick(), MOSQ_ERR_SUCCESS);
	cr_assert_eq(tick(), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count_on(HEAD_TOPIC), 1, "the head was republished without a change");
}

/* A broker that cannot queue the head: the plugin logs it and goes on. */
Test(glue, publish_failure_logged)
{
	start();
	bs_set_publish_rc(MOSQ_ERR_NOMEM);
	cr_assert_eq(tick(), MOSQ_ERR_SUCCESS);
	cr_assert(bs_log_contains(MOSQ_LOG_WARNING, "could not publish on " HEAD_TOPIC), "no warning");
}

/* ---- shared mode: options, followed records, `by`, stats ---------------- */

Test(glue, shared_options_refused_with_a_message)
{
	struct mosquitto_opt name_alone[] = {{.key = "ledger", .value = ledger_dir}, {.key = "broker_name", .value = "b1"}};
	assert_refused(name_alone, 2, MOSQ_ERR_INVAL, "plugin_opt_broker_name 'b1' is set but plugin_opt_ledger_dsn is "
	               "not: a broker name only means something with a ledger shared in PostgreSQL");

	struct mosquitto_opt dsn_alone[] = {{.key = "ledger", .value = ledger_dir},
	                                    {.key = "ledger_dsn", .value = "host=127.0.0.1 dbname=iotguard"}};
	assert_refused(dsn_alone, 2, MOSQ_ERR_INVAL, "plugin_opt_ledger_dsn needs plugin_opt_broker_name NAME, unique "
	               "per broker");

	const char *bad_names[] = {"", "b 1", "b/1", "brok\xc3\xa9r", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 33 */};
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		struct mosquitto_opt o[] = {{.key = "ledger", .value = ledger_dir},
		                            {.key = "ledger_dsn", .value = "host=127.0.0.1 dbname=iotguard"},
		                            {.key = "broker_name", .value = (char *)bad_names[i]}};
		char says[160];
		snprintf(says, sizeof says, "plugin_opt_broker_name '%s' must be 1 to 32 characters of A-Z a-z 0-9 _ . -",
		         bad_names[i]);
		assert_refused(o, 3, MOSQ_ERR_INVAL, says);
	}

	struct mosquitto_opt blank[] = {{.key = "ledger", .value = ledger_dir}, {.key = "ledger_dsn", .value = "  "},
	                                {.key = "broker_name", .value = "b1"}};
	assert_refused(blank, 3, MOSQ_ERR_INVAL, "plugin_opt_ledger_dsn must be a libpq connection string");

	struct mosquitto_opt no_keys[] = {{.key = "ledger_dsn", .value = "host=127.0.0.1 dbname=iotguard"},
	                                  {.key = "broker_name", .value = "b1"}};
	assert_refused(no_keys, 2, MOSQ_ERR_INVAL, "plugin_opt_ledger is missing; with plugin_opt_ledger_dsn it is the "
	               "directory holding the cluster-head key");

	/* The list of known options names the new ones. */
	struct mosquitto_opt unknown[] = {{.key = "ledger", .value = ledger_dir}, {.key = "ledger_dns", .value = "x"}};
	assert_refused(unknown, 2, MOSQ_ERR_INVAL, "known: ledger, policy, ledger_dsn, broker_name,");
}

/* A database nobody answers at: the start is refused, naming the server
 * with its password masked, and the password is in no log line. A name of
 * exactly 32 characters passes the option check. */
Test(glue, shared_unreachable_database_refused_without_the_password)
{
	struct mosquitto_opt o[] = {
		{.key = "ledger", .value = ledger_dir},
		{.key = "ledger_dsn", .value = "host=127.0.0.1 port=1 dbname=iotguard password=sekrit-pw connect_timeout=2"},
		{.key = "broker_name", .value = "b.1-_aaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	};
	cr_assert_eq(strlen(o[2].value), 32);
	assert_refused(o, 3, MOSQ_ERR_UNKNOWN, "shared ledger in PostgreSQL at '");
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "password=***"), "the refusal names the server, password masked");
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "host=127.0.0.1"), "the refusal names the server");
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "; refusing to start"));
	cr_assert_not(bs_log_contains(-1, "sekrit-pw"), "a log line shows the database password");
}

Test(glue, dsn_display_masks_every_password)
{
	/* Key=value and URI forms, quoted values, tabs: the password never
	 * shows, what identifies the server does. */
	static const struct {
		const char *dsn, *must;
	} cases[] = {
		{"host=pg1,pg2 dbname=iotguard target_session_attrs=read-write", "host=pg1,pg2"},
		{"host=pg1 password=s3cret user=ig", "password=***"},
		{"password = 's3 \\' cret' host=pg1", "password=***"},
		{"host=pg1\tpassword=s3cret", "host=pg1"},
		{"postgresql://ig:s3cret@pg1:5432,pg2/iotguard?sslmode=require", "password=***"},
		{"postgres://pg1/iotguard?user=ig&password=s3cret&sslmode=require", "password=***"},
		{"host=pg1 password='s3cret", "(unparsable DSN)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[512];
		ig_plugin_dsn_display(out, sizeof out, cases[i].dsn);
		cr_assert(strstr(out, cases[i].must), "DSN %zu shown as '%s', lacks '%s'", i, out, cases[i].must);
		cr_assert_not(strstr(out, "s3cret"), "DSN %zu shows its password: '%s'", i, out);
		cr_assert_not(strstr(out, "cret'"), "DSN %zu shows part of its password: '%s'", i, out);
	}
	char small[8];
	ig_plugin_dsn_display(small, sizeof small, "host=pg1 password=s3cret");
	cr_assert_eq(strlen(small), sizeof small - 1, "a short buffer is cut, never overrun");
}

/* dev1 connects with a token as the broker would see it: basic auth with
 * its id as username. */
static void connect_dev1(void)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x10);
	char token[512];
	uint64_t now = ig_now_ms() / 1000;
	cr_assert_gt(ig_token_mint(token, sizeof token, sk, CLUSTER, "dev1", now, now + 300, NULL), 0);
	sodium_memzero(sk, sizeof sk);
	struct mosquitto_evt_basic_auth ba = {.client = dev1, .username = "dev1", .password = token};
	cr_assert_eq(bs_fire(MOSQ_EVT_BASIC_AUTH, &ba), MOSQ_ERR_SUCCESS, "dev1's token was refused");
}

/* A record as the shared ledger hands over another broker's: framed, the
 * next index of this ledger. */
static ig_record followed(uint16_t type, const uint8_t *body, size_t len)
{
	ig_plugin *pl = plugin;
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.index = ig_ledger_height(pl->ledger);
	rec.ts_ms = ig_now_ms();
	rec.type = type;
	rec.body = body;
	rec.body_len = (uint32_t)len;
	ig_ledger_head(pl->ledger, rec.prev_hash);
	static uint8_t frame[4096];
	cr_assert_gt(ig_record_encode(frame, sizeof frame, &rec), 0);
	return rec;
}

static cJSON *event_json(void)
{
	const bs_publish *p = bs_publish_find(NULL, "iotguard/" CLUSTER "/ledger/events");
	cr_assert_not_null(p, "no ledger event was published");
	cJSON *o = cJSON_ParseWithLength(p->payload, p->len);
	cr_assert_not_null(o, "event is not JSON: %s", p->payload);
	return o;
}

/* Another broker revoked dev1, connected here: it is cut off (with its
 * will, as a local revoke does), its remembered ACL decisions are void,
 * the event names this broker and the retained status says revoked. */
Test(glue, followed_revoke_cuts_the_device_here)
{
	start();
	ig_plugin *pl = plugin;
	snprintf(pl->cfg.broker_name, sizeof pl->cfg.broker_name, "b2");   /* as plugin_opt_broker_name does */
	connect_dev1();
	for (int i = 0; i < 3; i++)   /* decided once, then remembered */
		cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/status", false), MOSQ_ERR_SUCCESS);
	bs_forget_calls();

	uint8_t body[256];
	ig_record rec = followed(IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, "dev1", "adm@b1"));
	ig_error err = {0};
	cr_assert_eq(ig_plugin_on_follow(pl, &rec, &err), IG_OK);

	cr_assert_eq(bs_kick_count(), 1, "the device must be cut off here");
	cr_assert_str_eq(bs_kick_at(0)->name, "dev1");
	cr_assert_not(bs_kick_at(0)->by_username);
	cr_assert(bs_kick_at(0)->with_will, "monitors see the device go offline");
	cr_assert_eq(acl(dev1, MOSQ_ACL_WRITE, DEV("dev1") "/status", false), MOSQ_ERR_ACL_DENIED,
	             "a remembered ACL decision outlived the followed revocation");
	const ig_identity *who = ig_registry_find(pl->reg, "dev1", 4);
	cr_assert(who && who->status == IG_ID_REVOKED);
	cr_assert_eq(who->revoked_index, rec.index);

	cJSON *ev = event_json();
	cr_assert_str_eq(str_field(ev, "type"), "revoke");
	cr_assert_str_eq(str_field(ev, "id"), "dev1");
	cr_assert_str_eq(str_field(ev, "by"), "adm@b1");
	cr_assert_str_eq(str_field(ev, "broker"), "b2", "the event names the broker that published it");
	cJSON_Delete(ev);
	const bs_publish *st = bs_publish_find(NULL, DEV("dev1") "/status");
	cr_assert_not_null(st, "no revoked status");
	cr_assert(st->retain);
	cr_assert_not_null(strstr(st->payload, "\"state\":\"revoked\""), "%s", st->payload);
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "revoked dev1 by adm@b1 on another broker"));
}

/* Another broker enrolled dev9: it is let in here at once, and nobody is
 * cut off. */
Test(glue, followed_enroll_lets_the_device_in)
{
	start();
	struct mosquitto *dev9 = bs_client_new("dev9", "dev9", "10.0.0.9");
	int before = acl(dev9, MOSQ_ACL_WRITE, DEV("dev9") "/status", false);
	uint8_t pk[32], sk[64], body[512];
	tu_seed_keypair(pk, sk, 0x90);
	sodium_memzero(sk, sizeof sk);
	ig_record rec = followed(IG_REC_ENROLL, body, tu_enroll_body(body, sizeof body, "dev9", IG_ROLE_DEVICE, pk, "adm@b1"));
	ig_error err = {0};
	int rc = ig_plugin_on_follow(plugin, &rec, &err);
	int after = acl(dev9, MOSQ_ACL_WRITE, DEV("dev9") "/status", false);
	bs_client_free(dev9);
	cr_assert_eq(before, MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(rc, IG_OK);
	cr_assert_eq(after, MOSQ_ERR_SUCCESS, "a followed enrolment must let the device in");
	cr_assert_eq(bs_kick_count(), 0);
	cJSON *ev = event_json();
	cr_assert_str_eq(str_field(ev, "type"), "enroll");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(ev, "broker"), "file mode: events carry no broker");
	cJSON_Delete(ev);
}

static int control(struct mosquitto *client, const char *json)
{
	struct mosquitto_evt_control ev;
	memset(&ev, 0, sizeof ev);
	ev.client = client;
	ev.topic = IG_ADMIN_TOPIC;
	ev.payload = json;
	ev.payloadlen = (uint32_t)strlen(json);
	ev.qos = 1;
	return bs_fire(MOSQ_EVT_CONTROL, &ev);
}

/* The `by` of the newest event after an admin enroll by admin_id. */
static char *enroll_by(struct mosquitto *admin, const char *admin_id, const char *new_id)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, (uint8_t)new_id[3]);
	sodium_memzero(sk, sizeof sk);
	char pk_hex[65], req[300];
	ig_hex_encode(pk_hex, pk, sizeof pk);
	snprintf(req, sizeof req, "{\"commands\":[{\"command\":\"enroll\",\"id\":\"%s\",\"role\":\"device\","
	         "\"pubkey\":\"%s\"}]}", new_id, pk_hex);
	bs_forget_calls();
	cr_assert_eq(control(admin, req), MOSQ_ERR_SUCCESS);
	const bs_publish *p = NULL;
	for (int i = 0; i < 500 && !(p = bs_publish_find(admin_id, IG_ADMIN_RESPONSE_TOPIC)); i++) {
		usleep(10000);
		tick();
	}
	cr_assert_not_null(p, "no admin response");
	cr_assert_not_null(strstr(p->payload, "\"ok\":true"), "%s", p->payload);
	cJSON *ev = event_json();
	char *by = strdup(str_field(ev, "by"));
	cJSON_Delete(ev);
	return by;
}

/* An admin command's records name the broker that took it, when the pair
 * fits the 80 bytes of `by`. */
Test(glue, admin_records_name_the_broker)
{
	static const char long_admin[] = "adm-with-a-long-name-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";   /* 64 */
	cr_assert_eq(strlen(long_admin), 64);
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts lo = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, ledger_dir, &lo, &err), IG_OK, "%s", err.msg);
	enroll(l, "adm", IG_ROLE_ADMIN, 0xa0);
	enroll(l, long_admin, IG_ROLE_ADMIN, 0xc0);
	ig_ledger_close(l);
	struct mosquitto *adm = bs_client_new("adm", "adm", "10.0.0.5");
	struct mosquitto *adm_long = bs_client_new(long_admin, long_admin, "10.0.0.6");

	start();
	char *plain = enroll_by(adm, "adm", "dev7");
	ig_plugin *pl = plugin;
	snprintf(pl->cfg.broker_name, sizeof pl->cfg.broker_name, "%s", "broker-one-aaaaaaaaaaaaaaaaaaaaa");   /* 32 */
	char *named = enroll_by(adm, "adm", "dev8");
	char *too_long = enroll_by(adm_long, long_admin, "dev9");
	bs_client_free(adm);
	bs_client_free(adm_long);
	cr_assert_str_eq(plain, "adm", "file mode: by is the admin's id, as before");
	cr_assert_str_eq(named, "adm@broker-one-aaaaaaaaaaaaaaaaaaaaa");
	cr_assert_str_eq(too_long, long_admin, "a pair over 80 bytes keeps the id alone");
	free(plain);
	free(named);
	free(too_long);
}

static cJSON *stats_now(void)
{
	ig_plugin *pl = plugin;
	pl->next_stats_ms = 0;
	bs_forget_calls();
	tick();
	const bs_publish *p = bs_publish_find(NULL, "iotguard/" CLUSTER "/stats");
	cr_assert_not_null(p, "no stats published");
	cJSON *o = cJSON_ParseWithLength(p->payload, p->len);
	cr_assert_not_null(o);
	return o;
}

/* Stats name the broker when it has a name; the "shared" figures come only
 * with a shared ledger, so a file-mode broker's stats are as before. */
Test(glue, stats_name_the_broker)
{
	start();
	cJSON *o = stats_now();
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "broker"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "shared"));
	cJSON_Delete(o);
	ig_plugin *pl = plugin;
	snprintf(pl->cfg.broker_name, sizeof pl->cfg.broker_name, "b3");
	o = stats_now();
	cr_assert_str_eq(str_field(o, "broker"), "b3");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "shared"), "file mode has no shared figures");
	cJSON_Delete(o);
}

/* The shared ledger cannot be swapped, nor the broker renamed, by a
 * reload that brings options: each change is warned about (the password
 * masked) and the running values stay. */
Test(glue, reload_keeps_the_shared_ledger_options)
{
	start();
	ig_plugin *pl = plugin;
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir},
	                               {.key = "ledger_dsn", .value = "host=pg9 password=hunter2 dbname=iotguard"},
	                               {.key = "broker_name", .value = "b9"}};
	struct mosquitto_evt_reload ev = {.options = opts, .option_count = 3};
	cr_assert_eq(bs_fire(MOSQ_EVT_RELOAD, &ev), MOSQ_ERR_PLUGIN_DEFER);
	cr_assert(bs_log_contains(MOSQ_LOG_WARNING, "reload: plugin_opt_ledger_dsn changed; a ledger cannot be swapped "
	                                            "live, restart the broker to use '"));
	cr_assert(bs_log_contains(MOSQ_LOG_WARNING, "password=***"), "the new DSN is shown, password masked");
	cr_assert(bs_log_contains(MOSQ_LOG_WARNING, "reload: plugin_opt_broker_name changed"));
	cr_assert_not(bs_log_contains(-1, "hunter2"), "a log line shows the database password");
	cr_assert_str_eq(pl->cfg.ledger_dsn, "", "the running broker must keep its ledger");
	cr_assert_str_eq(pl->cfg.broker_name, "");

	/* A name without a DSN is refused as at start; nothing changes. */
	struct mosquitto_opt name_only[] = {{.key = "ledger", .value = ledger_dir}, {.key = "broker_name", .value = "b9"}};
	struct mosquitto_evt_reload ev2 = {.options = name_only, .option_count = 2};
	bs_forget_calls();
	cr_assert_eq(bs_fire(MOSQ_EVT_RELOAD, &ev2), MOSQ_ERR_PLUGIN_DEFER);
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "reload: configuration rejected"));
	cr_assert_str_eq(pl->cfg.broker_name, "");
}

/* ---- several brokers: delivery and bridged messages (docs/PROTOCOL.md "Several brokers") ---- */

/* One broker sends an inbox message to the client alone; in shared mode it
 * is routed, so a bridge carries it to the broker holding the device. */
Test(glue, inbox_replies_are_routed_in_shared_mode_only)
{
	start();
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"ping\",\"nonce\":\"file\"}"), MOSQ_ERR_SUCCESS);
	cJSON_Delete(only_reply_to("dev1", INBOX("dev1")));
	bs_forget_calls();
	ig_plugin *pl = plugin;
	snprintf(pl->cfg.ledger_dsn, sizeof pl->cfg.ledger_dsn, "host=127.0.0.1 dbname=iotguard");
	cr_assert(ig_plugin_shared(pl));
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"ping\",\"nonce\":\"shared\"}"), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count(), 1);
	const bs_publish *p = bs_publish_at(0);
	cr_assert_null(p->client_id, "shared mode routes the reply (got it sent to %s alone)", p->client_id);
	cr_assert_str_eq(p->topic, INBOX("dev1"));
	cr_assert(p->qos == 1 && !p->retain);
	cr_assert(strstr(p->payload, "\"shared\"") != NULL, "%s", p->payload);
	pl->cfg.ledger_dsn[0] = '\0';
}

/* A leaf's own bridge connection carries no session here (the plugin never
 * authenticated it) and Mosquitto gives it the bridge's local_username,
 * which may be anything: what it brings is never a request or a
 * contribution, even on a topic naming that username. A bridge identity
 * on the hub never speaks for a device either. */
Test(glue, messages_from_a_bridge_are_never_requests)
{
	start();
	struct mosquitto *leaf_bridge = bs_client_new("local.br2", "dev1", NULL);
	struct mosquitto_evt_message ev = {.client = leaf_bridge, .topic = CH("dev1"), .qos = 1,
	                                   .payload = "{\"type\":\"ping\",\"nonce\":\"bridged\"}"};
	ev.payloadlen = (uint32_t)strlen(ev.payload);
	cr_assert_eq(bs_fire(MOSQ_EVT_MESSAGE, &ev), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(bs_publish_count(), 0, "a bridged request was answered");

	/* dev1 itself (its session) is answered as always... */
	connect_dev1();
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"ping\",\"nonce\":\"own\"}"), MOSQ_ERR_SUCCESS);
	cJSON_Delete(only_reply_to("dev1", INBOX("dev1")));
	bs_forget_calls();
	/* ...and while it holds the session, a copy over the bridge still is not. */
	cr_assert_eq(bs_fire(MOSQ_EVT_MESSAGE, &ev), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(bs_publish_count(), 0);
	bs_client_free(leaf_bridge);

	/* A bridge identity's session never passes for a device's. */
	ig_plugin *pl = plugin;
	struct mosquitto *hub_side = bs_client_new("br2", "br2", "10.0.0.8");
	cr_assert_not_null(ig_sessions_open(&pl->sessions, hub_side, "br2", IG_ROLE_BRIDGE));
	struct mosquitto_evt_message own = {.client = hub_side, .topic = CH("br2"), .qos = 1,
	                                    .payload = "{\"type\":\"ping\",\"nonce\":\"b\"}"};
	own.payloadlen = (uint32_t)strlen(own.payload);
	cr_assert_eq(bs_fire(MOSQ_EVT_MESSAGE, &own), MOSQ_ERR_ACL_DENIED);
	cr_assert_eq(bs_publish_count(), 0, "a bridge's own ch message was taken as a request");
	ig_sessions_close(&pl->sessions, hub_side, "br2");
	bs_client_free(hub_side);
}

/* ---- several brokers: single-use token nonces cross the bridges (plugin_nonces.c) ---- */

#include "ig_nonce_share.h"

#define NONCES_TOPIC "iotguard/" CLUSTER "/bridge/nonces"

/* client logs in as id (keypair seed first) with a token of this nonce;
 * returns the broker's answer. */
static int login_with_nonce(struct mosquitto *client, const char *id, uint8_t seed_first, const uint8_t nonce[16],
                            uint64_t expires_at)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, seed_first);
	char token[512];
	uint64_t now = ig_now_ms() / 1000;
	cr_assert_gt(ig_token_mint(token, sizeof token, sk, CLUSTER, id, now, expires_at, nonce), 0);
	sodium_memzero(sk, sizeof sk);
	struct mosquitto_evt_basic_auth ba = {.client = client, .username = (char *)id, .password = token};
	return bs_fire(MOSQ_EVT_BASIC_AUTH, &ba);
}

static void logout(struct mosquitto *client)
{
	struct mosquitto_evt_disconnect ev = {.client = client};
	cr_assert_eq(bs_fire(MOSQ_EVT_DISCONNECT, &ev), MOSQ_ERR_SUCCESS);
}

static void shared_on(void)
{
	ig_plugin *pl = plugin;
	snprintf(pl->cfg.ledger_dsn, sizeof pl->cfg.ledger_dsn, "host=127.0.0.1 dbname=iotguard");
	snprintf(pl->cfg.broker_name, sizeof pl->cfg.broker_name, "b1");
}

static void shared_off(void)
{
	ig_plugin *pl = plugin;
	pl->cfg.ledger_dsn[0] = '\0';
	pl->cfg.broker_name[0] = '\0';
}

static int bridged_nonces(struct mosquitto *from, const uint8_t *payload, size_t len)
{
	struct mosquitto_evt_message ev;
	memset(&ev, 0, sizeof ev);
	ev.client = from;
	ev.topic = NONCES_TOPIC;
	ev.payload = (void *)payload;
	ev.payloadlen = (uint32_t)len;
	ev.qos = 1;
	return bs_fire(MOSQ_EVT_MESSAGE, &ev);
}

static double nonces_stat(const char *name)
{
	cJSON *o = stats_now();
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shared");
	const cJSON *ns = sh ? cJSON_GetObjectItemCaseSensitive(sh, "nonces_shared") : NULL;
	const cJSON *v = ns ? cJSON_GetObjectItemCaseSensitive(ns, name) : NULL;
	cr_assert(cJSON_IsNumber(v), "stats lack shared.nonces_shared.%s", name);
	double d = v->valuedouble;
	cJSON_Delete(o);
	return d;
}

/* Each accepted single-use login's nonce goes out at the next tick, all of
 * a tick's in one routed QoS 1 message, in shared mode only. */
Test(glue, accepted_single_use_nonces_published_per_tick_in_shared_mode)
{
	start();
	uint8_t n1[16], n2[16], n3[16];
	memset(n1, 0x11, 16);
	memset(n2, 0x22, 16);
	memset(n3, 0x33, 16);
	uint64_t exp = ig_now_ms() / 1000 + 300;

	/* file mode: nothing is shared */
	cr_assert_eq(login_with_nonce(dev1, "dev1", 0x10, n3, exp), MOSQ_ERR_SUCCESS);
	logout(dev1);
	tick();
	cr_assert_eq(bs_publish_count_on(NONCES_TOPIC), 0, "a one-broker cluster published nonces");

	shared_on();
	bs_forget_calls();
	cr_assert_eq(login_with_nonce(dev1, "dev1", 0x10, n1, exp), MOSQ_ERR_SUCCESS);
	cr_assert_eq(login_with_nonce(dev2, "dev2", 0x30, n2, exp + 7), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count_on(NONCES_TOPIC), 0, "published before the tick: one publish per login");
	tick();
	cr_assert_eq(bs_publish_count_on(NONCES_TOPIC), 1);
	const bs_publish *p = bs_publish_find(NULL, NONCES_TOPIC);
	cr_assert_not_null(p);
	cr_assert(p->qos == 1 && !p->retain && !p->client_id);
	ig_nonce_share_entry got[4];
	size_t n = 0;
	cr_assert_eq(ig_nonce_share_decode(got, 4, &n, (const uint8_t *)p->payload, p->len), IG_OK);
	cr_assert_eq(n, 2u);
	cr_assert_eq(memcmp(got[0].nonce, n1, 16), 0);
	cr_assert_eq(got[0].expires_at, exp);
	cr_assert_eq(memcmp(got[1].nonce, n2, 16), 0);
	cr_assert_eq(got[1].expires_at, exp + 7);
	/* nothing new: no message; a re-check of a live session is no new login */
	bs_forget_calls();
	tick();
	cr_assert_eq(bs_publish_count_on(NONCES_TOPIC), 0);
	cr_assert_eq(nonces_stat("sent"), 2.0);
	cr_assert_eq(nonces_stat("batches_sent"), 1.0);
	logout(dev1);
	logout(dev2);
	shared_off();
}

/* A nonce another broker accepted, arriving over the leaf's own bridge
 * connection (no username), makes the same token a replay here; it is
 * never published again (no loops). */
Test(glue, bridged_nonce_makes_the_token_a_replay_here)
{
	start();
	shared_on();
	uint8_t nonce[16];
	memset(nonce, 0x5c, 16);
	uint64_t exp = ig_now_ms() / 1000 + 300;
	ig_nonce_share_entry e;
	memcpy(e.nonce, nonce, 16);
	e.expires_at = exp;
	uint8_t msg[64];
	size_t len = 0;
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, &e, 1), IG_OK);
	struct mosquitto *leaf_bridge = bs_client_new("local.br2", NULL, NULL);
	cr_assert_eq(bridged_nonces(leaf_bridge, msg, len), MOSQ_ERR_SUCCESS);
	bs_forget_calls();
	tick();
	cr_assert_eq(bs_publish_count_on(NONCES_TOPIC), 0, "a nonce learnt from a bridge was published again");
	cr_assert_eq(login_with_nonce(dev1, "dev1", 0x10, nonce, exp), MOSQ_ERR_AUTH);
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "replayed"), "the refusal names the replay");
	cr_assert_eq(nonces_stat("received"), 1.0);

	/* The same batch again changes nothing; on the hub a bridge identity's
	 * session is a bridge too. */
	ig_plugin *pl = plugin;
	struct mosquitto *hub_side = bs_client_new("br2", "br2", "10.0.0.8");
	cr_assert_not_null(ig_sessions_open(&pl->sessions, hub_side, "br2", IG_ROLE_BRIDGE));
	memset(e.nonce, 0x5d, 16);
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, &e, 1), IG_OK);
	cr_assert_eq(bridged_nonces(hub_side, msg, len), MOSQ_ERR_SUCCESS);
	cr_assert_eq(login_with_nonce(dev2, "dev2", 0x30, e.nonce, exp), MOSQ_ERR_AUTH);
	cr_assert_eq(nonces_stat("received"), 2.0);
	ig_sessions_close(&pl->sessions, hub_side, "br2");
	bs_client_free(hub_side);
	bs_client_free(leaf_bridge);
	shared_off();
}

/* A device (which the ACL stops anyway) cannot make others' tokens
 * replays, and malformed batches are counted and dropped whole. */
Test(glue, nonces_from_a_device_or_malformed_are_dropped)
{
	start();
	shared_on();
	uint8_t nonce[16];
	memset(nonce, 0x77, 16);
	uint64_t exp = ig_now_ms() / 1000 + 300;
	ig_nonce_share_entry e;
	memcpy(e.nonce, nonce, 16);
	e.expires_at = exp;
	uint8_t msg[64];
	size_t len = 0;
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, &e, 1), IG_OK);
	cr_assert_eq(publish_from(dev1, NONCES_TOPIC, msg, len), MOSQ_ERR_SUCCESS);
	cr_assert_eq(nonces_stat("not_from_bridge"), 1.0);
	struct mosquitto *leaf_bridge = bs_client_new("local.br2", NULL, NULL);
	cr_assert_eq(bridged_nonces(leaf_bridge, msg, len - 1), MOSQ_ERR_SUCCESS);   /* truncated */
	msg[0] = 2;
	cr_assert_eq(bridged_nonces(leaf_bridge, msg, len), MOSQ_ERR_SUCCESS);       /* unknown version */
	cr_assert_eq(bridged_nonces(leaf_bridge, (const uint8_t *)"{}", 2), MOSQ_ERR_SUCCESS);
	cr_assert_eq(nonces_stat("malformed"), 3.0);
	cr_assert_eq(nonces_stat("received"), 0.0);
	cr_assert_eq(login_with_nonce(dev2, "dev2", 0x30, nonce, exp), MOSQ_ERR_SUCCESS,
	             "a dropped batch made a token a replay");
	logout(dev2);
	bs_client_free(leaf_bridge);
	shared_off();
}

/* Bridged nonces fill at most 3/4 of the replay cache: the rest are
 * counted and logged once, and this broker's own single-use logins are
 * still accepted. */
Test(glue, bridged_nonces_fill_at_most_three_quarters_of_the_cache)
{
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir}, {.key = "replay_cache_max", .value = "1000"}};
	cr_assert_eq(start_with(opts, 2), MOSQ_ERR_SUCCESS);
	shared_on();
	static ig_nonce_share_entry es[IG_NONCE_SHARE_MAX];
	static uint8_t msg[IG_NONCE_SHARE_MSG_MAX];
	uint64_t exp = ig_now_ms() / 1000 + 300;
	for (size_t i = 0; i < IG_NONCE_SHARE_MAX; i++) {
		memset(es[i].nonce, 0, 16);
		memcpy(es[i].nonce, &i, sizeof i);
		es[i].nonce[15] = 0xee;
		es[i].expires_at = exp;
	}
	size_t len = 0;
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, es, IG_NONCE_SHARE_MAX), IG_OK);
	struct mosquitto *leaf_bridge = bs_client_new("local.br2", NULL, NULL);
	cr_assert_eq(bridged_nonces(leaf_bridge, msg, len), MOSQ_ERR_SUCCESS);
	es[0].nonce[14] = 1;   /* one more batch, partly new */
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, es, IG_NONCE_SHARE_MAX), IG_OK);
	cr_assert_eq(bridged_nonces(leaf_bridge, msg, len), MOSQ_ERR_SUCCESS);
	size_t warned = 0;
	for (size_t i = 0; i < bs_log_count(); i++)
		if (strstr(bs_log_at(i)->text, "the share other brokers' nonces may take"))
			warned++;
	cr_assert_eq(warned, 1u, "the full cache is logged once, not per nonce");
	cr_assert_eq(nonces_stat("received"), 750.0);
	cr_assert_eq(nonces_stat("dropped_full"), 2.0 * IG_NONCE_SHARE_MAX - 750, "what does not fit is dropped");
	uint8_t own[16];
	memset(own, 0x99, 16);
	cr_assert_eq(login_with_nonce(dev1, "dev1", 0x10, own, exp), MOSQ_ERR_SUCCESS,
	             "other brokers' nonces made this broker refuse its own login");
	logout(dev1);
	bs_client_free(leaf_bridge);
	shared_off();
}
