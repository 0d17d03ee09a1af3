/*
 * test_plugin_sealed.c: the plugin started on a sealed ledger (no ch.key,
 * only ch.key.sealed), driven through its broker callbacks with recorded
 * broker stubs (broker_stubs.h), and unsealed in the same process with
 * ig_plugin_unseal.
 *
 * Why this exists: a sealed cluster head must still authenticate enrolled
 * identities and answer reads, refuse everything that needs the key with
 * error "sealed" (which clients retry), and come back whole when the
 * custody service hands it the key. The custody service that rebuilds the
 * key is tested through real shares elsewhere; here the key is the one the
 * test moved away.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_stubs.h"
#include "ig_admin.h"
#include "ig_custody.h"
#include "ig_keyfile.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "plugin.h"
#include "testutil.h"

#define CLUSTER "sealed"
#define CH(id) "iotguard/" CLUSTER "/ch/" id
#define DEV(id) "iotguard/" CLUSTER "/dev/" id
#define INBOX(id) DEV(id) "/inbox"
#define STATS_TOPIC "iotguard/" CLUSTER "/stats"

static char ledger_dir[512];
static char key_file[600], key_away[600], sealed_file[600];
static uint8_t ch_sk[IG_SK_BYTES];
static int pid_token;
static mosquitto_plugin_id_t *const pid = (mosquitto_plugin_id_t *)&pid_token;
static ig_plugin *plugin;
static struct mosquitto *dev1, *dev2, *adm;

static void enroll(ig_ledger *l, const char *id, ig_role role, uint8_t seed_first)
{
	uint8_t pk[32], sk[64], body[512];
	tu_seed_keypair(pk, sk, seed_first);
	sodium_memzero(sk, sizeof sk);
	ig_error err = {0};
	size_t len = tu_enroll_body(body, sizeof body, id, role, pk, "admin");
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_OK, "%s", err.msg);
}

/* dev1, dev2 and the admin adm, enrolled offline; then the key is moved
 * away (kept in ch_sk) and a placeholder ch.key.sealed put in its place. */
static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	bs_reset();
	const char *dir = tu_scratch_dir("sealed-glue");
	snprintf(ledger_dir, sizeof ledger_dir, "%s/ledger", dir);
	snprintf(key_file, sizeof key_file, "%s/%s", ledger_dir, IG_LEDGER_KEY);
	snprintf(key_away, sizeof key_away, "%s/ch.key.away", dir);
	snprintf(sealed_file, sizeof sealed_file, "%s/%s", ledger_dir, IG_CUSTODY_SEALED_FILE);
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(ledger_dir, CLUSTER, NULL, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts lo = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, ledger_dir, &lo, &err), IG_OK, "%s", err.msg);
	enroll(l, "dev1", IG_ROLE_DEVICE, 0x10);
	enroll(l, "dev2", IG_ROLE_DEVICE, 0x30);
	enroll(l, "adm", IG_ROLE_ADMIN, 0x50);
	ig_ledger_close(l);
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_keyfile_read(key_file, ch_sk, pk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rename(key_file, key_away), 0, "%s", strerror(errno));
	tu_write_file(sealed_file, "placeholder", 11);
	dev1 = bs_client_new("dev1", "dev1", "10.0.0.1");
	dev2 = bs_client_new("dev2", "dev2", "10.0.0.2");
	adm = bs_client_new("adm", "adm", "10.0.0.9");
}

static void teardown(void)
{
	if (plugin)
		mosquitto_plugin_cleanup(plugin, NULL, 0);
	plugin = NULL;
	bs_client_free(dev1);
	bs_client_free(dev2);
	bs_client_free(adm);
	bs_reset();
	sodium_memzero(ch_sk, sizeof ch_sk);
}

TestSuite(sealed_glue, .init = setup, .fini = teardown, .timeout = 60);

static int start_with(struct mosquitto_opt *opts, int n)
{
	void *ud = NULL;
	int rc = mosquitto_plugin_init(pid, &ud, opts, n);
	if (rc == MOSQ_ERR_SUCCESS)
		plugin = ud;
	return rc;
}

static void start(void)
{
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir}, {.key = "stats_interval", .value = "1"}};
	int rc = start_with(opts, 2);
	cr_assert_eq(rc, MOSQ_ERR_SUCCESS, "a sealed plugin must start (rc %d); BS_VERBOSE=1 shows its log", rc);
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

static int request(struct mosquitto *client, const char *topic, const char *json)
{
	struct mosquitto_evt_message ev;
	memset(&ev, 0, sizeof ev);
	ev.client = client;
	ev.topic = (char *)topic;
	ev.payload = (void *)json;
	ev.payloadlen = (uint32_t)strlen(json);
	ev.qos = 1;
	return fire_message(&ev);
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

static int tick(void)
{
	struct mosquitto_evt_tick ev;
	memset(&ev, 0, sizeof ev);
	return bs_fire(MOSQ_EVT_TICK, &ev);
}

static cJSON *parse_publish(const bs_publish *p)
{
	cr_assert_not_null(p);
	cJSON *o = cJSON_ParseWithLength(p->payload, p->len);
	cr_assert_not_null(o, "not JSON: %s", p->payload);
	return o;
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(f) ? f->valuestring : NULL;
}

/* The request's one answer is a "sealed" error naming it and its nonce. */
static void assert_sealed(struct mosquitto *client, const char *id, const char *json, const char *req,
                          const char *nonce, const char *what)
{
	char topic[128], inbox[128];
	snprintf(topic, sizeof topic, "iotguard/" CLUSTER "/ch/%s", id);
	snprintf(inbox, sizeof inbox, "iotguard/" CLUSTER "/dev/%s/inbox", id);
	bs_forget_calls();
	cr_assert_eq(request(client, topic, json), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count(), 1, "%s: expected one answer, got %zu", req, bs_publish_count());
	const bs_publish *p = bs_publish_at(0);
	cr_assert_str_eq(p->client_id, id);
	cr_assert_str_eq(p->topic, inbox);
	cJSON *o = parse_publish(p);
	cr_assert_str_eq(str_field(o, "type"), "error");
	cr_assert_str_eq(str_field(o, "error"), "sealed", "%s: %s", req, p->payload);
	cr_assert_str_eq(str_field(o, "request"), req);
	if (nonce)
		cr_assert_str_eq(str_field(o, "nonce"), nonce);
	const char *msg = str_field(o, "message");
	cr_assert_not_null(msg);
	cr_assert_not_null(strstr(msg, "the cluster head is sealed: "), "%s", msg);
	cr_assert_not_null(strstr(msg, "custody holders must connect before it can "), "%s", msg);
	cr_assert_not_null(strstr(msg, what), "%s", msg);
	cr_assert_not_null(strstr(msg, "; retry later"), "%s", msg);
	cJSON_Delete(o);
}

/* The newest stats object (published by a tick; the caller deletes it). */
static cJSON *stats_now(void)
{
	plugin->next_stats_ms = 0;
	bs_forget_calls();
	tick();
	const bs_publish *p = bs_publish_find(NULL, STATS_TOPIC);
	cr_assert_not_null(p, "no stats published");
	return parse_publish(p);
}

/* The admin API's one response for the last control event. */
static cJSON *admin_response(void)
{
	const bs_publish *p = NULL;
	for (int i = 0; i < 500 && !(p = bs_publish_find("adm", IG_ADMIN_RESPONSE_TOPIC)); i++) {
		usleep(10000);
		tick();
	}
	cr_assert_not_null(p, "no admin response");
	cJSON *o = parse_publish(p);
	cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "responses"), 0);
	cr_assert_not_null(r);
	cJSON *copy = cJSON_Duplicate(r, true);
	cJSON_Delete(o);
	return copy;
}

Test(sealed_glue, starts_sealed_and_refuses_what_needs_the_key)
{
	start();
	cr_assert(ig_plugin_sealed(plugin));
	cr_assert(bs_log_contains(MOSQ_LOG_WARNING, "sealed: "), "the start must say it is sealed");
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "3 active identities"), "the ledger was replayed");
	const int events[] = {MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_ACL_CHECK, MOSQ_EVT_CONTROL, MOSQ_EVT_MESSAGE, MOSQ_EVT_TICK};
	for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
		cr_assert_eq(bs_callback_count_for(events[i]), 1, "event %d is not handled while sealed", events[i]);

	/* What needs no key works: ping, and the admin API's reads. */
	bs_forget_calls();
	cr_assert_eq(request(dev1, CH("dev1"), "{\"type\":\"ping\",\"nonce\":\"p\"}"), MOSQ_ERR_SUCCESS);
	cJSON *o = parse_publish(bs_publish_find("dev1", INBOX("dev1")));
	cr_assert_str_eq(str_field(o, "type"), "pong");
	cJSON_Delete(o);

	assert_sealed(dev1, "dev1", "{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"k-1\"}", "session_key",
	              "k-1", "issue session keys");
	assert_sealed(dev1, "dev1", "{\"type\":\"mint\",\"count\":2,\"nonce\":\"m-1\"}", "mint", "m-1", "mint");
	assert_sealed(dev1, "dev1", "{\"type\":\"balance\"}", "balance", NULL, "bank");
	assert_sealed(dev2, "dev2", "{\"type\":\"attest\",\"measurement\":\"00\",\"ts\":1,\"sig\":\"00\"}", "attest",
	              NULL, "record attestations");
	/* Key rings derive from the key: refused; devices keep the rings they hold. */
	assert_sealed(dev1, "dev1", "{\"type\":\"key_ring\",\"nonce\":\"kr-1\"}", "key_ring", "kr-1", "deal key rings");
	/* A nonce is carried back only when it is one a service would accept. */
	bs_forget_calls();
	request(dev1, CH("dev1"), "{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"has space\"}");
	o = parse_publish(bs_publish_at(0));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "nonce"));
	cJSON_Delete(o);

	/* Entropy on the dev topic is dropped, unanswered, and counted. */
	bs_forget_calls();
	cr_assert_eq(request(dev1, DEV("dev1") "/entropy", "{\"seq\":1}"), MOSQ_ERR_SUCCESS);
	cr_assert_eq(bs_publish_count(), 0);

	/* Admin changes are refused as sealed; reads are answered. */
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"enroll\",\"id\":\"dev9\",\"role\":\"device\",\"pubkey\":\""
	             "0101010101010101010101010101010101010101010101010101010101010101\",\"correlation\":\"c1\"}]}");
	cJSON *r = admin_response();
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "ok")));
	cr_assert_str_eq(str_field(r, "error"), "sealed");
	cr_assert_not_null(strstr(str_field(r, "message"), "before it can record an enrolment"));
	cJSON_Delete(r);
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"revoke\",\"id\":\"dev2\",\"correlation\":\"c2\"}]}");
	r = admin_response();
	cr_assert_str_eq(str_field(r, "error"), "sealed");
	cJSON_Delete(r);
	cr_assert_eq(bs_kick_count(), 0, "a refused revoke cuts nobody off");
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"create_join_codes\",\"role\":\"device\",\"correlation\":\"c3\"}]}");
	r = admin_response();
	cr_assert_str_eq(str_field(r, "error"), "sealed");
	cJSON_Delete(r);
	/* kp_rotate would append: refused as sealed (counted); kp_status says why too. */
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"kp_rotate\",\"correlation\":\"c5\"}]}");
	r = admin_response();
	cr_assert_str_eq(str_field(r, "error"), "sealed");
	cr_assert_not_null(strstr(str_field(r, "message"), "before it can deal key rings"), "%s", str_field(r, "message"));
	cJSON_Delete(r);
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"kp_status\",\"correlation\":\"c6\"}]}");
	r = admin_response();
	cr_assert_str_eq(str_field(r, "error"), "sealed");
	cJSON_Delete(r);
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"get_identity\",\"id\":\"dev2\",\"correlation\":\"c4\"}]}");
	r = admin_response();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")), "reads need no key");
	cJSON_Delete(r);

	/* A join token cannot be checked without the join key. */
	bs_forget_calls();
	struct mosquitto *joiner = bs_client_new("newdev", "newdev", "10.0.0.7");
	struct mosquitto_evt_basic_auth ba = {.client = joiner, .username = "newdev", .password = "igj1.AAAAAAAA"};
	int rc = bs_fire(MOSQ_EVT_BASIC_AUTH, &ba);
	bs_client_free(joiner);
	cr_assert_eq(rc, MOSQ_ERR_AUTH);
	cr_assert(bs_log_contains(-1, "no join key to check join codes with"), "the refusal must say why");

	/* Stats: sealed, the refusals counted, no section of a deferred service. */
	o = stats_now();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "sealed")));
	const cJSON *sr = cJSON_GetObjectItemCaseSensitive(o, "sealed_refused");
	cr_assert_eq(tu_json_num(sr, "requests"), 6);
	cr_assert_eq(tu_json_num(sr, "dev_messages"), 1);
	cr_assert_eq(tu_json_num(sr, "admin"), 4);
	cr_assert_eq(tu_json_num(sr, "joins"), 1);
	cr_assert_eq(tu_json_num(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "auth"), "refused"),
	                         "sealed"), 1);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "keys"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "bank"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "kp"));
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o, "proofs"), "proofs need no key");
	cJSON_Delete(o);
}

/* The custody_* and kp_* commands open their slot alike: the command (its
 * family's prefix alone when too long to echo) and correlation (empty when
 * too long) echoed, and a field the command does not take refused as
 * malformed before the command is looked at, each command with its own
 * extra fields. */
static cJSON *admin_one(const char *command_json)
{
	char buf[512];
	snprintf(buf, sizeof buf, "{\"commands\":[%s]}", command_json);
	bs_forget_calls();
	control(adm, buf);
	return admin_response();
}

static void assert_unknown_field(const char *command_json, const char *command, const char *corr, const char *msg)
{
	cJSON *r = admin_one(command_json);
	cr_assert_str_eq(str_field(r, "command"), command);
	cr_assert_str_eq(str_field(r, "correlation"), corr);
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "ok")));
	cr_assert_str_eq(str_field(r, "error"), "malformed", "%s", command_json);
	cr_assert_str_eq(str_field(r, "message"), msg);
	cJSON_Delete(r);
}

Test(sealed_glue, custody_and_kp_slots_echo_and_refuse_unknown_fields)
{
	start();
	assert_unknown_field("{\"command\":\"kp_status\",\"correlation\":\"k1\",\"bogus\":1}", "kp_status", "k1",
	                     "kp_status: unknown field \"bogus\"; remove it");
	assert_unknown_field("{\"command\":\"kp_rotate\",\"correlation\":\"k2\",\"sig\":\"x\"}", "kp_rotate", "k2",
	                     "kp_rotate: unknown field \"sig\"; remove it");
	assert_unknown_field("{\"command\":\"custody_status\",\"correlation\":\"c1\",\"pk\":\"00\"}", "custody_status",
	                     "c1", "custody_status: unknown field \"pk\"; remove it");
	assert_unknown_field("{\"command\":\"custody_recover\",\"correlation\":\"c2\",\"pk\":\"00\",\"sig\":\"x\"}",
	                     "custody_recover", "c2", "custody_recover: unknown field \"sig\"; remove it");
	assert_unknown_field("{\"command\":\"custody_approve\",\"correlation\":\"c3\",\"pk\":\"00\"}",
	                     "custody_approve", "c3", "custody_approve: unknown field \"pk\"; remove it");
	/* A name too long to echo is answered under its prefix; a correlation
	 * too long, with an empty one. */
	char long_corr[IG_ADMIN_CORRELATION_MAX + 2];
	memset(long_corr, 'a', sizeof long_corr - 1);
	long_corr[sizeof long_corr - 1] = '\0';
	char cmd[512];
	snprintf(cmd, sizeof cmd, "{\"command\":\"kp_%s\",\"correlation\":\"%s\",\"x\":1}",
	         "abcdefghijklmnopqrstuvwxyz0123456789", long_corr);
	cJSON *r = admin_one(cmd);
	cr_assert_str_eq(str_field(r, "command"), "kp_");
	cr_assert_str_eq(str_field(r, "correlation"), "");
	cr_assert_str_eq(str_field(r, "error"), "malformed");
	cJSON_Delete(r);
	snprintf(cmd, sizeof cmd, "{\"command\":\"custody_%s\",\"correlation\":\"c4\"}",
	         "abcdefghijklmnopqrstuvwxyz0123456789");
	r = admin_one(cmd);
	cr_assert_str_eq(str_field(r, "command"), "custody_");
	cr_assert_str_eq(str_field(r, "correlation"), "c4");
	cr_assert_str_eq(str_field(r, "error"), "unknown_command", "%s", str_field(r, "message"));
	cJSON_Delete(r);
	/* The fields a command takes are not refused as unknown. */
	r = admin_one("{\"command\":\"custody_recover\",\"correlation\":\"c5\",\"pk\":\"zz\",\"request\":\"r\","
	              "\"approval\":[]}");
	cr_assert_str_eq(str_field(r, "command"), "custody_recover");
	cr_assert_null(strstr(str_field(r, "message"), "unknown field"), "%s", str_field(r, "message"));
	cJSON_Delete(r);
	r = admin_one("{\"command\":\"custody_approve\",\"correlation\":\"c6\",\"sig\":\"zz\"}");
	cr_assert_null(strstr(str_field(r, "message"), "unknown field"), "%s", str_field(r, "message"));
	cJSON_Delete(r);
}

Test(sealed_glue, unseal_refuses_a_wrong_key_then_serves_everything)
{
	start();
	uint8_t other_pk[IG_PK_BYTES], other_sk[IG_SK_BYTES];
	tu_seed_keypair(other_pk, other_sk, 0x77);
	ig_error err = {0};
	cr_assert_eq(ig_plugin_unseal(plugin, other_sk, &err), IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "not the genesis key"), "%s", err.msg);
	cr_assert(ig_plugin_sealed(plugin));
	assert_sealed(dev1, "dev1", "{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"k-2\"}", "session_key",
	              "k-2", "issue session keys");

	bs_forget_calls();
	memset(&err, 0, sizeof err);
	cr_assert_eq(ig_plugin_unseal(plugin, ch_sk, &err), IG_OK, "%s", err.msg);
	cr_assert_not(ig_plugin_sealed(plugin));
	cr_assert(bs_log_contains(MOSQ_LOG_NOTICE, "iotguard: unsealed"), "the unseal must be logged");
	cr_assert_eq(bs_publish_count(), 0, "the unseal publishes nothing itself");
	cr_assert_eq(ig_plugin_unseal(plugin, ch_sk, &err), IG_ERR_STATE);

	/* The key service answers again (dev2 is not connected: peer_offline,
	 * an answer only a running service gives). */
	bs_forget_calls();
	request(dev1, CH("dev1"), "{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"k-3\"}");
	cJSON *o = parse_publish(bs_publish_at(0));
	cr_assert_str_neq(str_field(o, "error") ? str_field(o, "error") : "", "sealed");
	cJSON_Delete(o);

	/* The ledger takes records again: an admin enrolment is durable. */
	bs_forget_calls();
	control(adm, "{\"commands\":[{\"command\":\"enroll\",\"id\":\"dev9\",\"role\":\"device\",\"pubkey\":\""
	             "0101010101010101010101010101010101010101010101010101010101010101\",\"correlation\":\"c1\"}]}");
	cJSON *r = admin_response();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")), "%s", str_field(r, "message"));
	cr_assert_eq(tu_json_num(r, "index"), 4);
	cJSON_Delete(r);

	o = stats_now();
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "sealed")));
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o, "keys"), "the deferred services report again");
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o, "kp"));
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o, "joins"));
	cJSON_Delete(o);

	/* Durable under the genesis key: the record is in the verified ledger. */
	mosquitto_plugin_cleanup(plugin, NULL, 0);
	plugin = NULL;
	ig_verify_result res;
	cr_assert_eq(ig_ledger_verify(ledger_dir, NULL, NULL, NULL, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 5);
	cr_assert_eq(res.checkpoint_size, 5);
}

/* Neither ch.key nor ch.key.sealed: the start fails as it always did. */
Test(sealed_glue, no_key_at_all_still_refuses_to_start)
{
	cr_assert_eq(unlink(sealed_file), 0);
	struct mosquitto_opt opts[] = {{.key = "ledger", .value = ledger_dir}};
	cr_assert_eq(start_with(opts, 1), MOSQ_ERR_UNKNOWN);
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "open key file"), "today's message names the key file");
	cr_assert(bs_log_contains(MOSQ_LOG_ERR, "; refusing to start"));
	cr_assert_eq(bs_callback_count(), 0);
}
