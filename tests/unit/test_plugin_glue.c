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

#include "broker_stubs.h"
#include "ig_admin.h"
#include "ig_checkpoint.h"
#include "ig_ledger.h"
#include "ig_record.h"
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

static int publish_from(struct mosquitto *client, const char *topic, const void *payload, size_t len)
{
	struct mosquitto_evt_message ev;
	memset(&ev, 0, sizeof ev);
	ev.client = client;
	ev.topic = (char *)topic;
	ev.payload = (void *)payload;
	ev.payloadlen = (uint32_t)len;
	ev.qos = 1;
	return bs_fire(MOSQ_EVT_MESSAGE, &ev);
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
