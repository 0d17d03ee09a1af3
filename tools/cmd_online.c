/*
 * cmd_online.c: the admin API client behind `--host` for enroll, revoke,
 * list and get.
 *
 * Why this exists: while the broker runs it owns the ledger lock, so
 * identity changes must go through it. This is a short-lived MQTT v5 client:
 * connect as the admin with a freshly minted token, subscribe to the
 * response topic, publish one request per command and wait for the answer
 * carrying our correlation id. It drives libmosquitto with mosquitto_loop()
 * against a deadline so a silent broker can never hang the tool.
 */
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ig_json.h"
#include "ig_token.h"

#define ADMIN_TOKEN_TTL 300
#define KEEPALIVE_S 30
#define LOOP_SLICE_MS 100

typedef struct online_session {
	struct mosquitto *mosq;
	const cli_online *on;

	bool connack_seen;
	int connack_rc;

	int sub_mid;
	bool suback_seen;
	int granted_qos;

	int pub_mid;
	bool puback_seen;
	int puback_rc;

	char correlation[IG_ADMIN_CORRELATION_MAX + 1];
	cJSON *response;        /* the matching response element, owned */

	bool disconnected;
	int disconnect_rc;
} online_session;

/* ---- callbacks: they only record what arrived; the waits decide -------- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	(void)mosq; (void)flags; (void)props;
	online_session *s = obj;
	s->connack_seen = true;
	s->connack_rc = rc;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted,
                         const mosquitto_property *props)
{
	(void)mosq; (void)props;
	online_session *s = obj;
	if (mid != s->sub_mid)
		return;
	s->suback_seen = true;
	s->granted_qos = qos_count > 0 ? granted[0] : MQTT_RC_UNSPECIFIED;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason_code,
                       const mosquitto_property *props)
{
	(void)mosq; (void)props;
	online_session *s = obj;
	if (mid != s->pub_mid)
		return;
	s->puback_seen = true;
	s->puback_rc = reason_code;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)mosq; (void)props;
	online_session *s = obj;
	if (s->response || !msg->topic || strcmp(msg->topic, IG_ADMIN_RESPONSE_TOPIC) != 0 ||
	    msg->payloadlen <= 0)
		return;
	cJSON *root = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
	if (!root)
		return;  /* not ours to judge; keep waiting for a well-formed answer */
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "responses");
	int n = cJSON_GetArraySize(list);
	for (int i = 0; i < n; i++) {
		cJSON *elem = cJSON_GetArrayItem(list, i);
		cJSON *corr = cJSON_GetObjectItemCaseSensitive(elem, "correlation");
		if (!cJSON_IsString(corr))
			continue;
		/* A request-level refusal (forbidden, malformed) cannot name our
		 * correlation and carries ""; we have one request in flight, so it
		 * is the answer to it. */
		bool ours = strcmp(corr->valuestring, s->correlation) == 0 ||
		            (corr->valuestring[0] == '\0' &&
		             !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(elem, "ok")));
		if (ours) {
			s->response = cJSON_DetachItemFromArray(list, i);
			break;
		}
	}
	cJSON_Delete(root);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	(void)mosq; (void)props;
	online_session *s = obj;
	s->disconnected = true;
	s->disconnect_rc = rc;
}

/* ---- waiting ------------------------------------------------------------ */

static uint64_t now_ms(void) { return ig_mono_us() / 1000; }

typedef bool (*wait_done_fn)(const online_session *s);

static bool connack_arrived(const online_session *s) { return s->connack_seen; }
static bool suback_arrived(const online_session *s) { return s->suback_seen; }
static bool answer_arrived(const online_session *s)
{
	/* A refused PUBACK means no answer will come. */
	return s->response || (s->puback_seen && s->puback_rc >= 0x80);
}

static void report_lost(const online_session *s, int loop_rc)
{
	const cli_online *on = s->on;
	/* Reason codes from a server DISCONNECT are >= 0x80; smaller values are
	 * libmosquitto's own MOSQ_ERR_* codes. */
	if (s->disconnected && s->disconnect_rc >= 0x80)
		cli_error("the broker at %s:%d closed the connection: %s", on->host, on->port,
		          mosquitto_reason_string(s->disconnect_rc));
	else if (loop_rc == MOSQ_ERR_ERRNO)
		cli_error("lost the connection to %s:%d: %s", on->host, on->port, strerror(errno));
	else
		cli_error("lost the connection to %s:%d: %s", on->host, on->port,
		          mosquitto_strerror(loop_rc));
}

/* Runs the network loop until done() or the deadline. Returns true if done;
 * otherwise prints why not (timeout_what names what we waited for). */
static bool wait_for(online_session *s, wait_done_fn done, const char *timeout_what)
{
	uint64_t deadline = now_ms() + (uint64_t)s->on->timeout_s * 1000;
	while (!done(s)) {
		uint64_t now = now_ms();
		if (now >= deadline) {
			cli_error("no %s from %s:%d within %d s", timeout_what, s->on->host, s->on->port,
			          s->on->timeout_s);
			return false;
		}
		uint64_t left = deadline - now;
		int rc = mosquitto_loop(s->mosq, left < LOOP_SLICE_MS ? (int)left : LOOP_SLICE_MS, 1);
		if (done(s))
			return true;
		if (rc != MOSQ_ERR_SUCCESS) {
			/* A refused CONNACK also ends the connection; say why it ended. */
			if (s->connack_seen && s->connack_rc != 0)
				return true;
			report_lost(s, rc);
			return false;
		}
	}
	return true;
}

/* ---- connect / request / close ----------------------------------------- */

static bool connack_refused_is_auth(int rc)
{
	return rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD ||
	       rc == CONNACK_REFUSED_NOT_AUTHORIZED || rc == CONNACK_REFUSED_BAD_USERNAME_PASSWORD;
}

static bool session_open(online_session *s)
{
	const cli_online *on = s->on;
	s->mosq = mosquitto_new(on->user, true, s);
	if (!s->mosq) {
		cli_error("cannot create an MQTT client: %s", strerror(errno));
		return false;
	}
	mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_connect_v5_callback_set(s->mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(s->mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(s->mosq, on_publish);
	mosquitto_message_v5_callback_set(s->mosq, on_message);
	mosquitto_disconnect_v5_callback_set(s->mosq, on_disconnect);

	if (on->tls_ca) {
		int rc = mosquitto_tls_set(s->mosq, on->tls_ca, NULL, NULL, NULL, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			cli_error("cannot use --tls-ca %s: %s", on->tls_ca,
			          rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
			return false;
		}
	}

	char token[IG_TOKEN_TEXT_MAX];
	char what[IG_ID_MAX + 16];
	snprintf(what, sizeof what, "a token for %s", on->user);
	if (!cli_mint_token(on->key_path, on->cluster, on->user, ADMIN_TOKEN_TTL, token, sizeof token, what))
		return false;
	int rc = mosquitto_username_pw_set(s->mosq, on->user, token);
	sodium_memzero(token, sizeof token);
	if (rc != MOSQ_ERR_SUCCESS) {
		cli_error("cannot set the MQTT credentials: %s", mosquitto_strerror(rc));
		return false;
	}

	rc = mosquitto_connect_bind_v5(s->mosq, on->host, on->port, KEEPALIVE_S, NULL, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		cli_error("cannot connect to %s:%d: %s (is the broker running there?)", on->host, on->port,
		          rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return false;
	}
	if (!wait_for(s, connack_arrived, "CONNACK"))
		return false;
	if (s->connack_rc != 0) {
		if (connack_refused_is_auth(s->connack_rc))
			cli_error("broker refused the connection: not authorised (check --user/--key/--cluster, "
			          "token TTL and that the admin is enrolled)");
		else
			cli_error("broker refused the connection: %s", mosquitto_reason_string(s->connack_rc));
		return false;
	}

	rc = mosquitto_subscribe_v5(s->mosq, &s->sub_mid, IG_ADMIN_RESPONSE_TOPIC, 1, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		cli_error("cannot subscribe to %s: %s", IG_ADMIN_RESPONSE_TOPIC, mosquitto_strerror(rc));
		return false;
	}
	if (!wait_for(s, suback_arrived, "SUBACK"))
		return false;
	if (s->granted_qos >= 0x80) {
		cli_error("admin API not available: subscription refused (is %s an admin?)", on->user);
		return false;
	}
	return true;
}

static void session_close(online_session *s)
{
	if (!s->mosq)
		return;
	if (s->connack_seen && s->connack_rc == 0 && !s->disconnected) {
		mosquitto_disconnect_v5(s->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		/* One short pass so the DISCONNECT leaves before the socket closes. */
		mosquitto_loop(s->mosq, 10, 1);
	}
	mosquitto_destroy(s->mosq);
	s->mosq = NULL;
	cJSON_Delete(s->response);
	s->response = NULL;
}

/* Sends one command and waits for its response element (returned, owned by
 * the caller) or prints why there is none. */
static cJSON *session_request(online_session *s, const ig_admin_cmd *cmd_in)
{
	ig_admin_cmd cmd = *cmd_in;
	uint8_t rnd[8];
	char rnd_hex[2 * sizeof rnd + 1];
	randombytes_buf(rnd, sizeof rnd);
	ig_hex_encode(rnd_hex, rnd, sizeof rnd);
	snprintf(cmd.correlation, sizeof cmd.correlation, "iotguard-cli-%s", rnd_hex);
	memcpy(s->correlation, cmd.correlation, sizeof s->correlation);

	cJSON_Delete(s->response);
	s->response = NULL;
	s->puback_seen = false;

	char *payload = ig_admin_build_request(&cmd);
	if (!payload) {
		cli_error("cannot build the %s request", cmd.command);
		return NULL;
	}
	size_t len = strlen(payload);
	int rc = mosquitto_publish_v5(s->mosq, &s->pub_mid, IG_ADMIN_TOPIC, (int)len, payload, 1, false, NULL);
	free(payload);
	if (rc != MOSQ_ERR_SUCCESS) {
		cli_error("cannot publish the request: %s", mosquitto_strerror(rc));
		return NULL;
	}
	if (!wait_for(s, answer_arrived, "admin API response")) {
		if (!s->response && !s->disconnected)
			fprintf(stderr, "iotguard %s: is the iotguard plugin loaded on that broker? "
			                "A longer --timeout helps if it is just busy.\n", cli_cmd);
		return NULL;
	}
	if (!s->response) {
		cli_error("broker refused the admin request: %s (is %s an admin?)",
		          mosquitto_reason_string(s->puback_rc), s->on->user);
		return NULL;
	}
	cJSON *resp = s->response;
	s->response = NULL;
	return resp;
}

/* Sends one command given as a JSON object (a command the ig_admin_cmd
 * builder does not know, such as custody_status) and waits for its answer. */
static cJSON *session_request_json(online_session *s, const cJSON *command)
{
	uint8_t rnd[8];
	char rnd_hex[2 * sizeof rnd + 1];
	randombytes_buf(rnd, sizeof rnd);
	ig_hex_encode(rnd_hex, rnd, sizeof rnd);
	snprintf(s->correlation, sizeof s->correlation, "iotguard-cli-%s", rnd_hex);
	cJSON_Delete(s->response);
	s->response = NULL;
	s->puback_seen = false;

	cJSON *root = cJSON_CreateObject();
	cJSON *cmds = root ? cJSON_AddArrayToObject(root, "commands") : NULL;
	cJSON *o = cmds ? cJSON_Duplicate(command, true) : NULL;
	char *payload = NULL;
	if (o) {
		cJSON_AddItemToArray(cmds, o);
		cJSON_DeleteItemFromObject(o, "correlation");
		if (cJSON_AddStringToObject(o, "correlation", s->correlation))
			payload = cJSON_PrintUnformatted(root);
	}
	cJSON_Delete(root);
	if (!payload) {
		cli_error("cannot build the request (out of memory)");
		return NULL;
	}
	int rc = mosquitto_publish_v5(s->mosq, &s->pub_mid, IG_ADMIN_TOPIC, (int)strlen(payload), payload, 1, false,
	                              NULL);
	free(payload);
	if (rc != MOSQ_ERR_SUCCESS) {
		cli_error("cannot publish the request: %s", mosquitto_strerror(rc));
		return NULL;
	}
	if (!wait_for(s, answer_arrived, "admin API response"))
		return NULL;
	if (!s->response) {
		cli_error("broker refused the admin request: %s (is %s an admin?)", mosquitto_reason_string(s->puback_rc),
		          s->on->user);
		return NULL;
	}
	cJSON *resp = s->response;
	s->response = NULL;
	return resp;
}

/* One connection to the broker for one exchange: fn's answer, or NULL
 * (after saying why). */
typedef cJSON *(*session_fn)(online_session *s, const void *arg);
static int run_session(const cli_online *on, session_fn fn, const void *arg, cJSON **resp)
{
	*resp = NULL;
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
		cli_error("cannot initialise libmosquitto");
		return CLI_EXIT_ERR;
	}
	online_session s;
	memset(&s, 0, sizeof s);
	s.on = on;
	if (session_open(&s))
		*resp = fn(&s, arg);
	session_close(&s);
	mosquitto_lib_cleanup();
	return *resp ? CLI_EXIT_OK : CLI_EXIT_ERR;
}

static cJSON *json_exchange(online_session *s, const void *command)
{
	return session_request_json(s, command);
}

int cli_online_json(const cli_online *on, const cJSON *command, cJSON **resp)
{
	return run_session(on, json_exchange, command, resp);
}

void cli_print_answer_json(cJSON *resp)
{
	cJSON_DeleteItemFromObject(resp, "correlation");
	char *json = cJSON_Print(resp);
	if (json)
		printf("%s\n", json);
	cJSON_free(json);
}

int cli_print_answer(cJSON *resp, const char *command, bool as_json, void (*print_ok)(const cJSON *),
                     const char *ok_default)
{
	bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"));
	if (as_json) {
		cli_print_answer_json(resp);
	} else if (!ok) {
		cli_error("%s refused (%s): %s", command, cli_json_str(resp, "error", "?"), cli_json_str(resp, "message", ""));
	} else if (print_ok) {
		print_ok(resp);
	} else {
		printf("%s\n", cli_json_str(resp, "message", ok_default));
	}
	cJSON_Delete(resp);
	return ok ? CLI_EXIT_OK : CLI_EXIT_ERR;
}

/* Lists may exceed one response; fetch page by page into one element. */
static cJSON *session_list_all(online_session *s, const ig_admin_cmd *cmd)
{
	cJSON *all = cJSON_CreateArray();
	if (!all) {
		cli_error("out of memory");
		return NULL;
	}
	uint64_t want = cmd->limit ? cmd->limit : UINT64_MAX;
	uint64_t got = 0, total = 0;
	for (;;) {
		ig_admin_cmd page = *cmd;
		page.offset = cmd->offset + (uint32_t)got;
		uint64_t left = want - got;
		page.limit = left < IG_ADMIN_LIST_MAX ? (uint32_t)left : IG_ADMIN_LIST_MAX;
		cJSON *resp = session_request(s, &page);
		if (!resp) {
			cJSON_Delete(all);
			return NULL;
		}
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"))) {
			cJSON_Delete(all);
			return resp;
		}
		/* A broker's number, but still a double: checked, never cast blindly. */
		if (ig_json_uint_field(&total, resp, "total", 0, IG_JSON_UINT_MAX) != IG_OK)
			total = 0;
		cJSON *ids = cJSON_GetObjectItemCaseSensitive(resp, "identities");
		int n = cJSON_GetArraySize(ids);
		while (cJSON_GetArraySize(ids) > 0)
			cJSON_AddItemToArray(all, cJSON_DetachItemFromArray(ids, 0));
		cJSON_Delete(resp);
		got += (uint64_t)n;
		if (n == 0 || got >= want || cmd->offset + got >= total)
			break;
	}
	cJSON *out = cli_response_new(cmd, true);
	if (!out) {
		cJSON_Delete(all);
		cli_error("out of memory");
		return NULL;
	}
	cJSON_AddNumberToObject(out, "total", (double)total);
	cJSON_AddNumberToObject(out, "offset", (double)cmd->offset);
	cJSON_AddItemToObject(out, "identities", all);
	return out;
}

static cJSON *cmd_exchange(online_session *s, const void *arg)
{
	const ig_admin_cmd *cmd = arg;
	return cmd->kind == IG_ADMIN_LIST ? session_list_all(s, cmd) : session_request(s, cmd);
}

int cli_online_run(const cli_online *on, const ig_admin_cmd *cmd, cJSON **resp)
{
	return run_session(on, cmd_exchange, cmd, resp);
}
