/*
 * cmd_witness.c: `iotguard witness`, a long-running C2SP tlog-witness that
 * cosigns the cluster head's checkpoints over MQTT, and
 * `iotguard witness --print-vkey`, which prints its key for the policy.
 *
 * Why this exists: a cluster head that holds its own key can show different
 * histories to different devices, or roll its log back. A witness is a
 * separate party (its own key, its own host) that cosigns a checkpoint only
 * when it is consistent with the last one it cosigned, so a fork or a
 * rollback cannot collect the quorum devices and auditors require
 * (docs/PROTOCOL.md, "Witnesses"). The decision itself is lib's
 * (ig_witness_add_checkpoint); this file is the transport and the order of
 * effects: the new state is saved durably BEFORE the cosignature leaves, so
 * a witness killed at any point never cosigns two trees of the same size.
 *
 * The witness is an enrolled identity of role `witness`: it mints its own
 * connection tokens with its key (a fresh one for every connection),
 * subscribes to its inbox and answers on its ch topic, and reconnects when
 * the broker goes away. It trusts exactly one log key, given on the command
 * line (--log-key, the cluster head's public key that `iotguard init`
 * prints): pinning it on first use would let whoever answers first choose.
 */
#include "cli.h"
#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "ig_keyfile.h"
#include "ig_token.h"
#include "ig_witness.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WITNESS_TOKEN_TTL_S 600      /* each connection mints its own; the policy's witness TTL may be lower */
#define WITNESS_KEEPALIVE_S 30
#define WITNESS_RETRY_MAX_MS 5000    /* reconnect backoff cap */
/* Test hook: milliseconds to wait after the state is durable and before the
 * answer is published, so a test can kill -9 the witness in between. */
#define WITNESS_PAUSE_ENV "IG_WITNESS_TEST_PAUSE_MS"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

typedef struct witness {
	const char *id, *cluster, *state_path;
	char origin[IG_CLUSTER_MAX + 16];
	char inbox[IG_CLUSTER_MAX + IG_ID_MAX + 32];
	char answer_topic[IG_CLUSTER_MAX + IG_ID_MAX + 32];
	ig_cosig_vkey log_key;
	uint8_t sk[IG_SK_BYTES];
	ig_witness_state state;
	struct mosquitto *mosq;
	bool connected, subscribed;
	int connack_rc;
	uint64_t pause_ms;
	uint64_t answered, cosigned, refused;
} witness;

static void wlog(const witness *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(const witness *w, const char *fmt, ...)
{
	char ts[40];
	cli_format_ts(ts, sizeof ts, ig_now_ms());
	fprintf(stderr, "%s iotguard witness %s: ", ts, w->id);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	(void)flags;
	(void)props;
	witness *w = obj;
	w->connack_rc = rc;
	if (rc != 0) {
		wlog(w, "broker refused the connection: %s (is '%s' enrolled with role witness, and --key its key?)",
		     mosquitto_reason_string(rc), w->id);
		return;
	}
	w->connected = true;
	int src = mosquitto_subscribe_v5(mosq, NULL, w->inbox, 1, 0, NULL);
	if (src != MOSQ_ERR_SUCCESS)
		wlog(w, "cannot subscribe to %s: %s", w->inbox, mosquitto_strerror(src));
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted,
                         const mosquitto_property *props)
{
	(void)mosq;
	(void)mid;
	(void)props;
	witness *w = obj;
	if (qos_count < 1 || granted[0] >= 0x80) {
		wlog(w, "the broker refused the subscription to %s; check the policy's witness role", w->inbox);
		return;
	}
	w->subscribed = true;
	wlog(w, "following %s at size %" PRIu64 "; waiting on %s", w->origin, w->state.size, w->inbox);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	witness *w = obj;
	if (w->connected && !g_stop)
		wlog(w, "disconnected: %s; reconnecting", mosquitto_reason_string(rc));
	w->connected = false;
	w->subscribed = false;
}

static void pause_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop)
		;
}

/* Publishes {"type":"witness_cosignature","status":..,...} on our ch topic. */
static void answer(witness *w, int status, uint64_t size, bool has_size, const ig_witness_answer *ans,
                   const char *error)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "type", "witness_cosignature");
	cJSON_AddNumberToObject(o, "status", status);
	if (has_size)
		cJSON_AddNumberToObject(o, "size", (double)size);
	if (status == IG_WITNESS_OK && ans)
		cJSON_AddStringToObject(o, "cosignature", ans->lines);
	if (status == IG_WITNESS_CONFLICT && ans)
		cJSON_AddNumberToObject(o, "known_size", (double)ans->known_size);
	if (error && status != IG_WITNESS_OK)
		cJSON_AddStringToObject(o, "error", error);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!json)
		return;
	int rc = mosquitto_publish_v5(w->mosq, NULL, w->answer_topic, (int)strlen(json), json, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		wlog(w, "cannot publish the answer: %s (the cluster head will ask again)", mosquitto_strerror(rc));
	free(json);
	w->answered++;
}

/* The checkpoint's size line, for the answer's "size" (the cluster head
 * matches answers to its request by it); false if it has none. */
static bool checkpoint_size(const ig_witness_request *req, uint64_t *size)
{
	const char *nl = memchr(req->checkpoint, '\n', req->checkpoint_len);
	if (!nl)
		return false;
	const char *p = nl + 1, *end = req->checkpoint + req->checkpoint_len;
	uint64_t v = 0;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*size = v;
	return p < end && *p == '\n';
}

static void handle_request(witness *w, const char *text, size_t len)
{
	ig_witness_request req;
	ig_error err = {0};
	if (ig_witness_request_parse(&req, text, len, &err) != IG_OK) {
		wlog(w, "refused a malformed request (400): %s", err.msg);
		answer(w, IG_WITNESS_BAD_REQUEST, 0, false, NULL, err.msg);
		w->refused++;
		return;
	}
	uint64_t size = 0;
	bool has_size = checkpoint_size(&req, &size);
	ig_witness_answer ans;
	uint64_t now = (uint64_t)time(NULL);
	int rc = ig_witness_add_checkpoint(&ans, &w->state, &req, &w->log_key, w->id, w->sk, now, &err);
	if (rc < 0) {
		wlog(w, "cannot decide on the checkpoint: %s", err.msg);
		return;
	}
	if (rc != IG_WITNESS_OK) {
		wlog(w, "REFUSED checkpoint of size %" PRIu64 " (old %" PRIu64 ", status %d): %s; this witness "
		     "cosigned size %" PRIu64 " last", size, req.old_size, rc, err.msg, w->state.size);
		answer(w, rc, size, has_size, &ans, err.msg);
		w->refused++;
		return;
	}
	/* Durable before the cosignature can leave: a crash after this line
	 * and before the answer only makes the cluster head ask again. */
	if (ig_witness_state_save(w->state_path, &ans.state, &err) != IG_OK) {
		wlog(w, "cannot save the state, so the checkpoint of size %" PRIu64 " is not cosigned: %s", size,
		     err.msg);
		answer(w, 500, size, has_size, NULL, "the witness could not save its state; it will answer a retry");
		return;
	}
	w->state = ans.state;
	if (w->pause_ms)
		pause_ms(w->pause_ms);
	answer(w, IG_WITNESS_OK, size, has_size, &ans, NULL);
	w->cosigned++;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	witness *w = obj;
	if (!msg->payload || msg->payloadlen <= 0)
		return;
	cJSON *o = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *request = cJSON_GetObjectItemCaseSensitive(o, "request");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "witness_add_checkpoint") != 0) {
		/* Other inbox messages (a welcome, an error) are not for a witness. */
		if (cJSON_IsString(type))
			wlog(w, "ignored an inbox message of type '%.40s'", type->valuestring);
		cJSON_Delete(o);
		return;
	}
	if (!cJSON_IsString(request)) {
		answer(w, IG_WITNESS_BAD_REQUEST, 0, false, NULL, "\"request\" must be the add-checkpoint text");
		cJSON_Delete(o);
		return;
	}
	handle_request(w, request->valuestring, strlen(request->valuestring));
	cJSON_Delete(o);
}

static int witness_help(void)
{
	printf("Usage: iotguard witness --host HOST [--port PORT] --cluster C --id W --key FILE --state FILE\n"
	       "                        --log-key HEX [--tls-ca FILE]\n"
	       "       iotguard witness --print-vkey --id W --key FILE\n"
	       "Cosign the cluster head's checkpoints (C2SP tlog-witness over MQTT) until stopped.\n"
	       "  --id W         this witness's enrolled identity id (role witness); also its key name\n"
	       "  --key FILE     its identity key file (iotguard keygen)\n"
	       "  --state FILE   the last checkpoint it cosigned; created if missing, never reset:\n"
	       "                 a damaged state file stops the witness\n"
	       "  --log-key HEX  the cluster head's public key (iotguard init prints it)\n"
	       "  --print-vkey   print the vkey to list in the policy's \"witnesses\".\"keys\" and exit\n");
	return CLI_EXIT_OK;
}

static int print_vkey(const char *id, const char *key_path)
{
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	ig_error err = {0};
	int rc = ig_keyfile_read(key_path, sk, pk, &err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	ig_cosig_vkey k;
	char text[IG_COSIG_VKEY_MAX];
	if (ig_cosig_vkey_make(&k, id, IG_COSIG_TYPE_COSIG_V1, pk) != IG_OK ||
	    ig_cosig_vkey_encode(text, sizeof text, &k) < 0) {
		cli_error("cannot make a vkey for '%s'", id);
		return CLI_EXIT_ERR;
	}
	printf("%s\n", text);
	return CLI_EXIT_OK;
}

/* Loads the state, or creates it for a witness that never cosigned. A
 * damaged file is never replaced: starting over could cosign a fork. */
static int load_state(witness *w)
{
	ig_error err = {0};
	int rc = ig_witness_state_load(&w->state, w->state_path, &err);
	if (rc == IG_ERR_NOTFOUND) {
		if (ig_witness_state_init(&w->state, w->origin) != IG_OK ||
		    ig_witness_state_save(w->state_path, &w->state, &err) != IG_OK) {
			cli_error("cannot create the state file %s: %s", w->state_path, err.msg);
			return CLI_EXIT_ERR;
		}
		wlog(w, "created %s: a new witness of %s", w->state_path, w->origin);
		return CLI_EXIT_OK;
	}
	if (rc != IG_OK) {
		cli_error("refusing to start: %s", err.msg);
		return CLI_EXIT_ERR;
	}
	if (strcmp(w->state.origin, w->origin) != 0) {
		cli_error("refusing to start: %s is the state of log '%s', not of '%s'; give each log its own state "
		          "file", w->state_path, w->state.origin, w->origin);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* One connection attempt with a freshly minted token. */
static bool connect_once(witness *w, const char *key_path, const char *host, int port, bool first)
{
	char token[IG_TOKEN_TEXT_MAX];
	char what[IG_ID_MAX + 16];
	snprintf(what, sizeof what, "a token for %s", w->id);
	if (!cli_mint_token(key_path, w->cluster, w->id, WITNESS_TOKEN_TTL_S, token, sizeof token, what))
		return false;
	int rc = mosquitto_username_pw_set(w->mosq, w->id, token);
	sodium_memzero(token, sizeof token);
	if (rc != MOSQ_ERR_SUCCESS)
		return false;
	rc = first ? mosquitto_connect_bind_v5(w->mosq, host, port, WITNESS_KEEPALIVE_S, NULL, NULL)
	           : mosquitto_reconnect(w->mosq);
	if (rc != MOSQ_ERR_SUCCESS) {
		wlog(w, "cannot connect to %s:%d: %s; retrying", host, port,
		     rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return false;
	}
	return true;
}

int cmd_witness(int argc, char **argv)
{
	const char *host = NULL, *cluster = NULL, *id = NULL, *key_path = NULL, *state_path = NULL;
	const char *log_hex = NULL, *tls_ca = NULL;
	uint64_t port = 1883;
	bool print = false;
	const cli_option opts[] = {
		CLI_TEXT("host", 0, &host),
		CLI_NUMBER("port", 0, &port, 1, 65535),
		CLI_TEXT("cluster", 0, &cluster),
		CLI_REQUIRED("id", 0, &id, "W"),
		CLI_REQUIRED("key", 0, &key_path, "FILE"),
		CLI_TEXT("state", 0, &state_path),
		CLI_TEXT("log-key", 0, &log_hex),
		CLI_TEXT("tls-ca", 0, &tls_ca),
		CLI_FLAG("print-vkey", 0, &print),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? witness_help() : rc;
	if (!cli_check_id("--id", id))
		return CLI_EXIT_ERR;
	if (print)
		return print_vkey(id, key_path);
	if (!host)
		return cli_missing("--host HOST");
	if (!cluster)
		return cli_missing("--cluster C");
	if (!state_path)
		return cli_missing("--state FILE");
	if (!log_hex)
		return cli_missing("--log-key HEX (the cluster head's public key, as 'iotguard init' prints it)");
	if (!cli_check_id("--cluster", cluster))
		return CLI_EXIT_ERR;

	static witness w;
	w.id = id;
	w.cluster = cluster;
	w.state_path = state_path;
	ig_checkpoint_origin(w.origin, sizeof w.origin, cluster);
	snprintf(w.inbox, sizeof w.inbox, "iotguard/%s/dev/%s/inbox", cluster, id);
	snprintf(w.answer_topic, sizeof w.answer_topic, "iotguard/%s/ch/%s", cluster, id);
	uint8_t log_pk[IG_PK_BYTES];
	if (strlen(log_hex) != 2 * IG_PK_BYTES ||
	    ig_hex_decode(log_pk, sizeof log_pk, log_hex, strlen(log_hex)) != IG_OK ||
	    ig_cosig_vkey_make(&w.log_key, w.origin, IG_COSIG_TYPE_ED25519, log_pk) != IG_OK) {
		cli_error("--log-key must be the cluster head's public key, 64 hex characters");
		return CLI_EXIT_ERR;
	}
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	if (ig_keyfile_read(key_path, w.sk, pk, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	const char *pause = getenv(WITNESS_PAUSE_ENV);
	w.pause_ms = pause ? strtoull(pause, NULL, 10) : 0;
	rc = load_state(&w);
	if (rc != CLI_EXIT_OK) {
		sodium_memzero(w.sk, sizeof w.sk);
		return rc;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	w.mosq = mosquitto_new(id, true, &w);
	if (!w.mosq) {
		cli_error("cannot create an MQTT client: %s", strerror(errno));
		sodium_memzero(w.sk, sizeof w.sk);
		mosquitto_lib_cleanup();
		return CLI_EXIT_ERR;
	}
	mosquitto_int_option(w.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	/* An answer is one small packet: do not let Nagle hold it for the ACK. */
	mosquitto_int_option(w.mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(w.mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(w.mosq, on_subscribe);
	mosquitto_message_v5_callback_set(w.mosq, on_message);
	mosquitto_disconnect_v5_callback_set(w.mosq, on_disconnect);
	if (tls_ca && (rc = mosquitto_tls_set(w.mosq, tls_ca, NULL, NULL, NULL, NULL)) != MOSQ_ERR_SUCCESS) {
		cli_error("cannot use --tls-ca %s: %s", tls_ca, mosquitto_strerror(rc));
		mosquitto_destroy(w.mosq);
		sodium_memzero(w.sk, sizeof w.sk);
		mosquitto_lib_cleanup();
		return CLI_EXIT_ERR;
	}

	bool first = true, live = false;
	uint64_t backoff_ms = 100;
	while (!g_stop) {
		if (!live) {
			live = connect_once(&w, key_path, host, (int)port, first);
			if (live)
				first = false;
			else {
				pause_ms(backoff_ms);
				backoff_ms = backoff_ms * 2 > WITNESS_RETRY_MAX_MS ? WITNESS_RETRY_MAX_MS : backoff_ms * 2;
				continue;
			}
		}
		rc = mosquitto_loop(w.mosq, 200, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			live = false;
			pause_ms(backoff_ms);
			backoff_ms = backoff_ms * 2 > WITNESS_RETRY_MAX_MS ? WITNESS_RETRY_MAX_MS : backoff_ms * 2;
		} else if (w.subscribed) {
			backoff_ms = 100;
		}
	}
	wlog(&w, "stopping: %" PRIu64 " answers, %" PRIu64 " cosigned, %" PRIu64 " refused; last cosigned size %"
	     PRIu64, w.answered, w.cosigned, w.refused, w.state.size);
	if (w.connected) {
		mosquitto_disconnect_v5(w.mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		mosquitto_loop(w.mosq, 100, 1);
	}
	mosquitto_destroy(w.mosq);
	mosquitto_lib_cleanup();
	sodium_memzero(w.sk, sizeof w.sk);
	return CLI_EXIT_OK;
}
