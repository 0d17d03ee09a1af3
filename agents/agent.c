/*
 * agent.c: the device agent core: connection lifecycle, tokens, status.
 *
 * Why this exists: a device proves itself at every CONNECT with a token that
 * lives only minutes, so each attempt must carry a token minted just before
 * it. libmosquitto's own reconnect would replay the stale password, so this
 * file drives mosquitto_loop() itself, mints a fresh token before every
 * connect and reconnect, backs off with jitter when the broker is away or
 * says no, keeps the retained status topic truthful (online heartbeats,
 * an offline will, an explicit offline on shutdown) and hands inbox
 * messages to the duties (agent.h). A duty may own a session (joining
 * with a join token): then the core stays out of its way, since such a
 * session may neither publish status nor leave a will. On a plain broker
 * (no plugin, --plain-broker) there is no token to mint: the agent connects
 * anonymously or with a user name and password, and ignores its inbox,
 * which anyone there may publish to.
 */
#include "agent.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ig_keyfile.h"
#include "ig_token.h"

#define TOPIC_MAX (32 + IG_CLUSTER_MAX + IG_ID_MAX)
#define PASSWORD_MAX 512                    /* fits a normal token and a join token */
#define MAX_DUTY_SUBS 8
#define BACKOFF_BASE_US 1000000u
#define BACKOFF_MAX_US 60000000u
#define BACKOFF_MAX_DOUBLINGS 6             /* 2^6 s > 60 s: no point counting further */
#define STABLE_CONNECTION_US 10000000u      /* a connection this long resets the backoff */
#define CONNACK_TIMEOUT_US 15000000u
#define LOOP_SLICE_MS 500                   /* bounds how late a signal is noticed */
#define OFFLINE_ACK_WAIT_US 3000000u
#define DISCONNECT_WAIT_US 1000000u

typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state;

struct duty {
	const ig_duty_ops *ops;
	void *state;
};

struct ig_agent {
	ig_agent_config cfg;            /* host, key_path, tls_ca point at the caller's strings */
	char id[IG_ID_MAX + 1];
	char cluster[IG_CLUSTER_MAX + 1];
	char topic_status[TOPIC_MAX];
	char topic_inbox[TOPIC_MAX];
	char topic_ch[TOPIC_MAX];
	uint8_t *sk;                    /* guarded memory, no access except in ig_agent_with_key */
	uint8_t pk[IG_PK_BYTES];
	struct mosquitto *mosq;

	link_state link;
	bool host_set;                  /* after the first connect, attempts use mosquitto_reconnect */
	unsigned failures;              /* consecutive failed attempts: drives the backoff */
	char problem[320];              /* why the current attempt or connection failed */
	uint64_t started_us;            /* monotonic, for uptime_s */
	uint64_t attempt_us;
	uint64_t connected_us;
	uint64_t next_attempt_us;
	uint64_t next_heartbeat_us;
	uint64_t seq;                   /* status messages sent by this run */
	int inbox_sub_mid;
	int offline_mid;
	bool offline_acked;
	bool stopping;                  /* our own DISCONNECT: nothing to report */
	int owner;                      /* duty owning the current session, -1: a normal session */
	bool duties_started;            /* on_connect ran for this session: ticks may follow */
	bool reconnect_requested;
	bool stop_requested;
	int exit_status;
	struct { int mid; char filter[TOPIC_MAX]; } subs[MAX_DUTY_SUBS];  /* duty SUBSCRIBEs awaiting SUBACK */

	struct duty duties[IG_AGENT_MAX_DUTIES];
	size_t nduties;
};

/* ---- logging -------------------------------------------------------------- */

static char log_id[IG_ID_MAX + 1] = "?";
static bool log_verbose;

static void log_sink(void *ctx, ig_log_level level, const char *msg)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	(void)ctx;
	if (level == IG_LOG_DEBUG && !log_verbose)
		return;
	struct timespec ts;
	struct tm tm;
	char when[32] = "";
	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ iotguard-agent[%s] %s: %s\n", when, ts.tv_nsec / 1000000L, log_id,
	        names[level], msg);
}

void ig_agent_log_init(const char *id, bool verbose)
{
	if (id && ig_id_valid(id, strlen(id)))
		snprintf(log_id, sizeof log_id, "%s", id);
	log_verbose = verbose;
	ig_log_set(log_sink, NULL);
}

/* Text that came from the network goes into logs only as printable ASCII,
 * so a hostile payload cannot forge log lines or smuggle escape codes. */
static const char *printable(char *out, size_t cap, const char *in, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		unsigned char c = (unsigned char)in[i];
		out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (n + 4 >= cap && len > n) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static void on_mosquitto_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	(void)mosq;
	(void)obj;
	(void)level;
	ig_log(IG_LOG_DEBUG, "libmosquitto: %s", str);
}

/* libmosquitto's messages end with a full stop; ours go mid-sentence. */
static const char *mosq_error_text(char *out, size_t cap, int rc)
{
	snprintf(out, cap, "%s", rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	size_t n = strlen(out);
	if (n > 0 && out[n - 1] == '.')
		out[n - 1] = '\0';
	if (rc == MOSQ_ERR_TLS && n + 48 < cap)
		strcat(out, " (check --tls-ca and the broker's certificate)");
	return out;
}

/* ---- backoff --------------------------------------------------------------- */

uint64_t ig_agent_backoff_us(unsigned failures)
{
	uint64_t delay = BACKOFF_BASE_US;
	for (unsigned i = 0; i < failures && i < BACKOFF_MAX_DOUBLINGS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_US)
		delay = BACKOFF_MAX_US;
	/* +-20% jitter, so a fleet that lost its broker does not return in
	 * lockstep and knock it over again. */
	uint64_t permille = 800 + randombytes_uniform(401);
	return delay * permille / 1000;
}

static void schedule_retry(ig_agent *a, uint64_t now)
{
	uint64_t delay = ig_agent_backoff_us(a->failures);
	if (a->failures < BACKOFF_MAX_DOUBLINGS)
		a->failures++;
	a->next_attempt_us = now + delay;
	a->link = LINK_DOWN;
	if (a->stop_requested)
		ig_log(IG_LOG_WARN, "%s", a->problem);
	else
		ig_log(IG_LOG_WARN, "%s; retrying in %.1f s", a->problem, (double)delay / 1e6);
	a->problem[0] = '\0';
}

/* ---- status and requests ------------------------------------------------ */

static int publish_status(ig_agent *a, const char *state, int *mid)
{
	char payload[IG_AGENT_STATUS_MAX];
	uint64_t uptime_s = (ig_mono_us() - a->started_us) / 1000000u;
	int n = snprintf(payload, sizeof payload,
	                 "{\"id\":\"%s\",\"state\":\"%s\",\"ts\":%" PRIu64 ",\"seq\":%" PRIu64
	                 ",\"uptime_s\":%" PRIu64,
	                 a->id, state, ig_now_ms(), a->seq + 1, uptime_s);
	if (n < 0 || (size_t)n >= sizeof payload)
		return IG_ERR_RANGE;
	/* Duty fields describe a running device: heartbeats only. */
	for (size_t i = 0; i < a->nduties && strcmp(state, "online") == 0; i++) {
		if (!a->duties[i].ops->status_fields)
			continue;
		size_t room = sizeof payload - (size_t)n - 2;  /* keep space for "}" and NUL */
		size_t extra = a->duties[i].ops->status_fields(a, a->duties[i].state, payload + n, room);
		if (extra < room)
			n += (int)extra;
		payload[n] = '\0';
	}
	payload[n++] = '}';
	payload[n] = '\0';
	int rc = mosquitto_publish_v5(a->mosq, mid, a->topic_status, n, payload, 1, true, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_WARN, "cannot publish %s status: %s", state, mosquitto_strerror(rc));
		return IG_ERR_IO;
	}
	a->seq++;
	ig_log(IG_LOG_DEBUG, "status %s published (seq %" PRIu64 ")", state, a->seq);
	return IG_OK;
}

int ig_agent_request(ig_agent *a, const char *json, size_t len)
{
	if (a->link != LINK_UP)
		return IG_ERR_STATE;
	if (len > INT32_MAX)
		return IG_ERR_RANGE;
	int rc = mosquitto_publish_v5(a->mosq, NULL, a->topic_ch, (int)len, json, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_WARN, "cannot send a request to the cluster head: %s", mosquitto_strerror(rc));
		return IG_ERR_IO;
	}
	return IG_OK;
}

int ig_agent_publish(ig_agent *a, const char *topic, const void *payload, size_t len, int qos)
{
	if (a->link != LINK_UP)
		return IG_ERR_STATE;
	if (len > INT32_MAX)
		return IG_ERR_RANGE;
	int rc = mosquitto_publish_v5(a->mosq, NULL, topic, (int)len, payload, qos, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_WARN, "cannot publish to %s: %s", topic, mosquitto_strerror(rc));
		return IG_ERR_IO;
	}
	return IG_OK;
}

int ig_agent_subscribe(ig_agent *a, const char *filter, int qos)
{
	if (a->link != LINK_UP)
		return IG_ERR_STATE;
	int mid = -1;
	int rc = mosquitto_subscribe_v5(a->mosq, &mid, filter, qos, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_WARN, "cannot subscribe to %s: %s", filter, mosquitto_strerror(rc));
		return IG_ERR_IO;
	}
	for (size_t i = 0; i < MAX_DUTY_SUBS; i++) {
		if (a->subs[i].mid <= 0) {
			a->subs[i].mid = mid;
			snprintf(a->subs[i].filter, sizeof a->subs[i].filter, "%s", filter);
			break;
		}
	}
	return IG_OK;
}

int ig_agent_with_key(ig_agent *a, ig_agent_key_fn fn, void *ctx)
{
	if (sodium_mprotect_readonly(a->sk) != 0) {
		ig_log(IG_LOG_ERR, "cannot unlock the key in memory: %s", strerror(errno));
		return IG_ERR_IO;
	}
	int rc = fn(ctx, a->sk);
	sodium_mprotect_noaccess(a->sk);
	return rc;
}

void ig_agent_reconnect(ig_agent *a) { a->reconnect_requested = true; }

void ig_agent_stop(ig_agent *a, int exit_status)
{
	a->stop_requested = true;
	a->exit_status = exit_status;
}

int ig_agent_exit_status(const ig_agent *a) { return a->exit_status; }
bool ig_agent_online(const ig_agent *a) { return a->link == LINK_UP && a->owner < 0; }
bool ig_agent_plain(const ig_agent *a) { return a->cfg.plain; }
const char *ig_agent_id(const ig_agent *a) { return a->id; }
const char *ig_agent_cluster(const ig_agent *a) { return a->cluster; }
const uint8_t *ig_agent_public_key(const ig_agent *a) { return a->pk; }

/* The duties that hear about the current session: its owner alone, or all. */
static bool duty_active(const ig_agent *a, size_t i) { return a->owner < 0 || (size_t)a->owner == i; }

/* ---- libmosquitto callbacks ----------------------------------------------- */

static const char *refusal_hint(const ig_agent *a, int reason)
{
	switch (reason) {
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
		if (a->cfg.plain)
			return a->cfg.username ? "not authorised: check --username and --password-file"
			                       : "not authorised: the broker does not allow anonymous clients "
			                         "(give --username and --password-file)";
		return "not authorised: check enrolment, key and clock";
	case MQTT_RC_CLIENTID_NOT_VALID:
		return "client id rejected: check --id";
	case MQTT_RC_BANNED:
		return "banned: ask the cluster operator";
	case MQTT_RC_SERVER_UNAVAILABLE:
	case MQTT_RC_SERVER_BUSY:
		return "broker unavailable";
	case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
		return "broker does not speak MQTT v5";
	default:
		return "refused";
	}
}

static void on_connect(struct mosquitto *mosq, void *obj, int reason, int flags,
                       const mosquitto_property *props)
{
	ig_agent *a = obj;
	(void)flags;
	if (reason != 0) {
		char *why = NULL;
		char safe[160] = "";
		if (mosquitto_property_read_string(props, MQTT_PROP_REASON_STRING, &why, false) && why) {
			printable(safe, sizeof safe, why, strlen(why));
			free(why);
		}
		/* The broker does not say which check failed (that would help an
		 * attacker); the default device limit is the likeliest --ttl trap. */
		bool long_ttl = !a->cfg.plain && a->cfg.ttl_s > 600 && (reason == MQTT_RC_NOT_AUTHORIZED ||
		                                       reason == MQTT_RC_BAD_USERNAME_OR_PASSWORD);
		snprintf(a->problem, sizeof a->problem,
		         "connection refused by broker: %s%s (reason %d, %s%s%s)", refusal_hint(a, reason),
		         long_ttl ? "; also --ttl, which may exceed the role's token lifetime limit" : "",
		         reason, mosquitto_reason_string(reason), safe[0] ? ": " : "", safe);
		for (size_t i = 0; i < a->nduties; i++)
			if (duty_active(a, i) && a->duties[i].ops->on_refused)
				a->duties[i].ops->on_refused(a, a->duties[i].state, reason);
		return;
	}
	a->link = LINK_UP;
	a->connected_us = ig_mono_us();
	a->problem[0] = '\0';
	ig_log(IG_LOG_INFO, "connected to %s:%d%s", a->cfg.host, a->cfg.port,
	       a->owner >= 0 ? " (join session)" : "");

	int rc = mosquitto_subscribe_v5(mosq, &a->inbox_sub_mid, a->topic_inbox, 1, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		ig_log(IG_LOG_WARN, "cannot subscribe to %s: %s", a->topic_inbox, mosquitto_strerror(rc));
	if (a->owner < 0)
		publish_status(a, "online", NULL);
	a->next_heartbeat_us = a->connected_us + (uint64_t)a->cfg.heartbeat_s * 1000000u;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	ig_agent *a = obj;
	(void)mosq;
	(void)props;
	if (mid != a->inbox_sub_mid) {
		for (size_t i = 0; i < MAX_DUTY_SUBS; i++) {
			if (a->subs[i].mid != mid)
				continue;
			if (count < 1 || granted[0] >= 0x80)
				ig_log(IG_LOG_ERR, "broker refused the subscription %s (%s): check the role policy",
				       a->subs[i].filter, mosquitto_reason_string(count < 1 ? MQTT_RC_UNSPECIFIED : granted[0]));
			else
				ig_log(IG_LOG_DEBUG, "subscribed to %s", a->subs[i].filter);
			a->subs[i].mid = 0;
		}
		return;
	}
	if (count < 1 || granted[0] >= 0x80) {
		int reason = count < 1 ? MQTT_RC_UNSPECIFIED : granted[0];
		ig_log(IG_LOG_ERR, "broker refused the inbox subscription %s (%s): check the role policy",
		       a->topic_inbox, mosquitto_reason_string(reason));
		return;
	}
	ig_log(IG_LOG_DEBUG, "subscribed to %s", a->topic_inbox);
	/* Duties start only now: replies to their requests land in the inbox. */
	a->duties_started = true;
	for (size_t i = 0; i < a->nduties; i++)
		if (duty_active(a, i) && a->duties[i].ops->on_connect)
			a->duties[i].ops->on_connect(a, a->duties[i].state);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
	ig_agent *a = obj;
	(void)mosq;
	(void)props;
	if (reason >= 0x80)
		ig_log(IG_LOG_WARN, "broker refused message %d (%s): check the role policy", mid,
		       mosquitto_reason_string(reason));
	if (mid == a->offline_mid)
		a->offline_acked = reason < 0x80;
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	ig_agent *a = obj;
	(void)mosq;
	(void)props;
	if (a->stopping || a->problem[0])
		return;  /* our own goodbye, or the CONNACK refusal already said why */
	/* rc is an MQTT reason code when the broker sent DISCONNECT, otherwise a
	 * libmosquitto error. Both namespaces are small integers; v5 reason
	 * codes that end a connection are all >= 0x80. */
	char text[128];
	const char *why = rc >= 0x80 ? mosquitto_reason_string(rc) : mosq_error_text(text, sizeof text, rc);
	snprintf(a->problem, sizeof a->problem, "%s: %s",
	         a->link == LINK_UP ? "connection lost" : "connection failed", why);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	ig_agent *a = obj;
	char safe_topic[160], safe_type[48];
	(void)mosq;
	(void)props;
	printable(safe_topic, sizeof safe_topic, msg->topic, strlen(msg->topic));
	if (strcmp(msg->topic, a->topic_inbox) == 0 && a->cfg.plain) {
		ig_log(IG_LOG_DEBUG, "ignoring %d bytes on %s: on a plain broker anyone may publish there", msg->payloadlen,
		       safe_topic);
		return;
	}
	if (strcmp(msg->topic, a->topic_inbox) != 0) {
		/* Every duty sees it: several may follow one topic (the pin and the
		 * log check both read the ledger head). */
		bool taken = false;
		for (size_t i = 0; i < a->nduties; i++)
			if (duty_active(a, i) && a->duties[i].ops->on_message &&
			    a->duties[i].ops->on_message(a, a->duties[i].state, msg->topic, msg->payload,
			                                 msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0))
				taken = true;
		if (!taken)
			ig_log(IG_LOG_DEBUG, "ignoring a message on %s", safe_topic);
		return;
	}
	cJSON *json = msg->payloadlen > 0 ? cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen) : NULL;
	const cJSON *type = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "type") : NULL;
	if (!json) {
		ig_log(IG_LOG_INFO, "inbox %s: %d bytes, not JSON", safe_topic, msg->payloadlen);
	} else if (!cJSON_IsString(type)) {
		ig_log(IG_LOG_INFO, "inbox %s: %d bytes, JSON without a \"type\"", safe_topic, msg->payloadlen);
	} else {
		printable(safe_type, sizeof safe_type, type->valuestring, strlen(type->valuestring));
		ig_log(IG_LOG_INFO, "inbox %s: %d bytes, type %s", safe_topic, msg->payloadlen, safe_type);

		bool handled = false;
		if (strcmp(type->valuestring, "error") == 0) {
			const cJSON *code = cJSON_GetObjectItemCaseSensitive(json, "error");
			const cJSON *text = cJSON_GetObjectItemCaseSensitive(json, "message");
			char safe_code[48] = "?", safe_text[256] = "";
			if (cJSON_IsString(code))
				printable(safe_code, sizeof safe_code, code->valuestring, strlen(code->valuestring));
			if (cJSON_IsString(text))
				printable(safe_text, sizeof safe_text, text->valuestring, strlen(text->valuestring));
			ig_log(IG_LOG_WARN, "cluster head reports error %s: %s", safe_code, safe_text);
			handled = true;
		}
		for (size_t i = 0; i < a->nduties; i++)
			if (duty_active(a, i) && a->duties[i].ops->on_inbox &&
			    a->duties[i].ops->on_inbox(a, a->duties[i].state, type->valuestring, json))
				handled = true;
		if (!handled)
			ig_log(IG_LOG_DEBUG, "no duty handles inbox type %s", safe_type);
	}
	cJSON_Delete(json);
}

/* ---- lifecycle ------------------------------------------------------------ */

struct mint_ctx {
	const ig_agent *a;
	char *out;
	size_t cap;
};

static int mint_token(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct mint_ctx *m = ctx;
	uint64_t now_s = ig_now_ms() / 1000u;
	return ig_token_mint(m->out, m->cap, sk, m->a->cluster, m->a->id, now_s, now_s + m->a->cfg.ttl_s, NULL);
}

/* The will is what the broker says when we vanish; a private session may
 * not publish status, so it must not leave one either. */
static int set_will(ig_agent *a, bool on)
{
	char will[128];
	if (!on)
		return mosquitto_will_clear(a->mosq) == MOSQ_ERR_SUCCESS ? IG_OK : IG_ERR_INVAL;
	int n = snprintf(will, sizeof will, "{\"id\":\"%s\",\"state\":\"offline\"}", a->id);
	if (n < 0 || (size_t)n >= sizeof will)
		return IG_ERR_RANGE;
	int rc = mosquitto_will_set_v5(a->mosq, a->topic_status, n, will, 1, true, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_ERR, "cannot set the will on %s: %s", a->topic_status, mosquitto_strerror(rc));
		return IG_ERR_INVAL;
	}
	return IG_OK;
}

/* Puts fresh credentials in place: a duty's own session password if one
 * asks for it, else a freshly minted token. The password leaves our memory
 * wiped; libmosquitto keeps its own copy until the next attempt replaces it. */
static int set_fresh_credentials(ig_agent *a)
{
	char password[PASSWORD_MAX];
	int n = 0;
	a->owner = -1;
	for (size_t i = 0; i < a->nduties && n == 0; i++) {
		if (!a->duties[i].ops->session_password)
			continue;
		n = a->duties[i].ops->session_password(a, a->duties[i].state, password, sizeof password);
		if (n > 0)
			a->owner = (int)i;
		else if (n < 0) {
			sodium_memzero(password, sizeof password);
			return n;  /* the duty said why */
		}
	}
	if (n == 0 && a->cfg.plain) {
		/* No plugin, so no token: anonymous, or the configured account. */
		int rc = mosquitto_username_pw_set(a->mosq, a->cfg.username, a->cfg.username ? a->cfg.password : NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			ig_log(IG_LOG_ERR, "cannot set MQTT credentials: %s", mosquitto_strerror(rc));
			return IG_ERR_NOMEM;
		}
		return set_will(a, true);
	}
	if (n == 0) {
		struct mint_ctx m = {.a = a, .out = password, .cap = sizeof password};
		n = ig_agent_with_key(a, mint_token, &m);
		if (n < 0) {
			sodium_memzero(password, sizeof password);
			ig_log(IG_LOG_ERR, "cannot mint a connection token (error %d): check the key file and --ttl", n);
			return n;
		}
	}
	int rc = mosquitto_username_pw_set(a->mosq, a->id, password);
	sodium_memzero(password, sizeof password);
	if (rc != MOSQ_ERR_SUCCESS) {
		ig_log(IG_LOG_ERR, "cannot set MQTT credentials: %s", mosquitto_strerror(rc));
		return IG_ERR_NOMEM;
	}
	return set_will(a, a->owner < 0);
}

/* One connection attempt. Returns a negative code only for failures no
 * retry can fix; network trouble schedules a retry instead. */
static int attempt_connect(ig_agent *a, uint64_t now)
{
	int rc = set_fresh_credentials(a);
	if (rc != IG_OK)
		return rc;
	a->attempt_us = now;
	a->problem[0] = '\0';
	a->stopping = false;
	a->reconnect_requested = false;
	a->duties_started = false;
	for (size_t i = 0; i < MAX_DUTY_SUBS; i++)
		a->subs[i].mid = 0;
	a->offline_acked = false;
	a->offline_mid = -1;
	ig_log(IG_LOG_DEBUG, "connecting to %s:%d", a->cfg.host, a->cfg.port);
	if (!a->host_set) {
		rc = mosquitto_connect_bind_v5(a->mosq, a->cfg.host, a->cfg.port, (int)a->cfg.keepalive_s, NULL, NULL);
		if (rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_NOMEM) {
			ig_log(IG_LOG_ERR, "cannot set up a connection to %s:%d: %s", a->cfg.host, a->cfg.port,
			       mosquitto_strerror(rc));
			return IG_ERR_INVAL;
		}
		a->host_set = true;
	} else {
		rc = mosquitto_reconnect(a->mosq);
	}
	if (rc == MOSQ_ERR_SUCCESS) {
		a->link = LINK_CONNECTING;
		return IG_OK;
	}
	char text[128];
	snprintf(a->problem, sizeof a->problem, "cannot connect to %s:%d: %s", a->cfg.host, a->cfg.port,
	         mosq_error_text(text, sizeof text, rc));
	schedule_retry(a, now);
	return IG_OK;
}

static void link_lost(ig_agent *a, uint64_t now, int loop_rc)
{
	if (a->link == LINK_UP && now - a->connected_us > STABLE_CONNECTION_US)
		a->failures = 0;
	if (!a->problem[0]) {
		char text[128];
		snprintf(a->problem, sizeof a->problem, "%s: %s",
		         a->link == LINK_UP ? "connection lost" : "connection failed",
		         mosq_error_text(text, sizeof text, loop_rc));
	}
	schedule_retry(a, now);
}

static void tick(ig_agent *a, uint64_t now)
{
	if (a->owner < 0 && now >= a->next_heartbeat_us) {
		uint64_t period = (uint64_t)a->cfg.heartbeat_s * 1000000u;
		publish_status(a, "online", NULL);
		a->next_heartbeat_us += period;
		if (a->next_heartbeat_us <= now)  /* we were stalled: do not burst */
			a->next_heartbeat_us = now + period;
	}
	for (size_t i = 0; i < a->nduties && a->duties_started; i++)
		if (duty_active(a, i) && a->duties[i].ops->on_tick)
			a->duties[i].ops->on_tick(a, a->duties[i].state, now);
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000L};
	nanosleep(&ts, NULL);  /* a signal cuts it short, which is what we want */
}

/* Runs the loop until `done` says stop or the deadline passes. */
static void loop_until(ig_agent *a, uint64_t deadline, bool (*done)(const ig_agent *))
{
	while (!done(a) && ig_mono_us() < deadline && mosquitto_socket(a->mosq) >= 0)
		if (mosquitto_loop(a->mosq, 100, 1) != MOSQ_ERR_SUCCESS)
			break;
}

static bool offline_done(const ig_agent *a) { return a->offline_acked; }
static bool socket_closed(const ig_agent *a) { return mosquitto_socket(a->mosq) < 0; }

/* Lets duties settle their business with the cluster head before a final
 * goodbye (on_leave), serving the connection meanwhile, for a bounded time. */
static void settle_duties(ig_agent *a)
{
	uint64_t deadline = ig_mono_us() + IG_AGENT_LEAVE_WAIT_US;
	for (;;) {
		uint64_t now = ig_mono_us();
		bool busy = false;
		for (size_t i = 0; i < a->nduties; i++)
			if (a->duties[i].ops->on_leave && a->duties[i].ops->on_leave(a, a->duties[i].state, now))
				busy = true;
		if (!busy)
			return;
		if (now >= deadline) {
			ig_log(IG_LOG_WARN, "stopping without every answer from the cluster head (waited %u s)",
			       IG_AGENT_LEAVE_WAIT_US / 1000000u);
			return;
		}
		int rc = mosquitto_loop(a->mosq, 100, 1);
		if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(a->mosq) < 0) {
			char text[128];
			ig_log(IG_LOG_WARN, "connection lost while stopping: %s",
			       rc != MOSQ_ERR_SUCCESS ? mosq_error_text(text, sizeof text, rc) : "the socket closed");
			a->link = LINK_DOWN;
			return;
		}
	}
}

/* Says goodbye properly: offline status (normal sessions), DISCONNECT.
 * final: the agent stops (not a reconnect), so duties may settle first. */
static void leave(ig_agent *a, bool final)
{
	int reason = MQTT_RC_NORMAL_DISCONNECTION;
	if (final && a->link == LINK_UP && a->owner < 0 && a->duties_started)
		settle_duties(a);
	a->stopping = true;
	if (a->link == LINK_UP && a->owner < 0) {
		if (publish_status(a, "offline", &a->offline_mid) == IG_OK)
			loop_until(a, ig_mono_us() + OFFLINE_ACK_WAIT_US, offline_done);
		if (!a->offline_acked) {
			/* Ask the broker to publish the will, so the retained status
			 * does not keep saying "online". */
			ig_log(IG_LOG_WARN, "offline status not acknowledged; asking the broker to publish the will");
			reason = MQTT_RC_DISCONNECT_WITH_WILL_MSG;
		}
	}
	if (a->link != LINK_DOWN && mosquitto_socket(a->mosq) >= 0) {
		int rc = mosquitto_disconnect_v5(a->mosq, reason, NULL);
		if (rc == MOSQ_ERR_SUCCESS)
			loop_until(a, ig_mono_us() + DISCONNECT_WAIT_US, socket_closed);
	}
	a->link = LINK_DOWN;
}

int ig_agent_run(ig_agent *a, volatile sig_atomic_t *stop)
{
	a->next_attempt_us = ig_mono_us();
	while (!*stop && !a->stop_requested) {
		if (a->reconnect_requested) {
			a->reconnect_requested = false;
			ig_log(IG_LOG_INFO, "reconnecting with fresh credentials");
			leave(a, false);
			a->failures = 0;
			a->next_attempt_us = ig_mono_us();
			continue;
		}
		uint64_t now = ig_mono_us();
		if (a->link == LINK_DOWN) {
			if (now < a->next_attempt_us) {
				uint64_t wait = a->next_attempt_us - now;
				sleep_us(wait < LOOP_SLICE_MS * 1000u ? wait : LOOP_SLICE_MS * 1000u);
				continue;
			}
			int rc = attempt_connect(a, now);
			if (rc != IG_OK)
				return rc;
			continue;
		}
		int rc = mosquitto_loop(a->mosq, LOOP_SLICE_MS, 1);
		now = ig_mono_us();
		if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(a->mosq) < 0) {
			link_lost(a, now, rc);
		} else if (a->link == LINK_CONNECTING && now - a->attempt_us > CONNACK_TIMEOUT_US) {
			snprintf(a->problem, sizeof a->problem, "no CONNACK from %s:%d within %u s", a->cfg.host,
			         a->cfg.port, CONNACK_TIMEOUT_US / 1000000u);
			mosquitto_disconnect(a->mosq);
			schedule_retry(a, now);
		} else if (a->link == LINK_UP) {
			tick(a, now);
		}
	}
	if (*stop)
		ig_log(IG_LOG_INFO, "stopping (signal %d)", (int)*stop);
	else
		ig_log(IG_LOG_INFO, "stopping (exit status %d)", a->exit_status);
	leave(a, true);
	ig_log(IG_LOG_INFO, "disconnected; stopped");
	return IG_OK;
}

int ig_agent_add_duty(ig_agent *a, const ig_duty_ops *ops, void *state)
{
	if (!ops || a->nduties >= IG_AGENT_MAX_DUTIES)
		return IG_ERR_RANGE;
	a->duties[a->nduties].ops = ops;
	a->duties[a->nduties].state = state;
	a->nduties++;
	return IG_OK;
}

static int setup_mqtt(ig_agent *a, ig_error *err)
{
	int rc;

	a->mosq = mosquitto_new(a->id, true, a);
	if (!a->mosq)
		return ig_error_set(err, IG_ERR_NOMEM, "cannot create the MQTT client: %s", strerror(errno));
	rc = mosquitto_int_option(a->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (rc != MOSQ_ERR_SUCCESS)
		return ig_error_set(err, IG_ERR_INVAL, "cannot select MQTT v5: %s", mosquitto_strerror(rc));

	/* Small request/reply messages: do not let Nagle hold them back. */
	rc = mosquitto_int_option(a->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	if (rc != MOSQ_ERR_SUCCESS)
		return ig_error_set(err, IG_ERR_INVAL, "cannot set TCP_NODELAY: %s", mosquitto_strerror(rc));

	if (set_will(a, true) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "cannot set the will on %s", a->topic_status);

	if (a->cfg.tls_ca) {
		/* libmosquitto only says "invalid arguments" for a missing file. */
		FILE *ca = fopen(a->cfg.tls_ca, "r");
		if (!ca)
			return ig_error_set(err, IG_ERR_IO, "cannot read --tls-ca %s: %s", a->cfg.tls_ca, strerror(errno));
		fclose(ca);
		rc = mosquitto_tls_set(a->mosq, a->cfg.tls_ca, NULL, NULL, NULL, NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			return ig_error_set(err, IG_ERR_INVAL, "cannot use --tls-ca %s: %s (is it a PEM CA certificate?)",
			                    a->cfg.tls_ca, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	}

	mosquitto_connect_v5_callback_set(a->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(a->mosq, on_disconnect);
	mosquitto_subscribe_v5_callback_set(a->mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(a->mosq, on_publish);
	mosquitto_message_v5_callback_set(a->mosq, on_message);
	if (a->cfg.verbose)
		mosquitto_log_callback_set(a->mosq, on_mosquitto_log);
	return IG_OK;
}

int ig_agent_new(ig_agent **out, const ig_agent_config *cfg, ig_error *err)
{
	char pk_hex[2 * IG_PK_BYTES + 1];
	int rc;

	*out = NULL;
	if (!cfg->host || !cfg->host[0])
		return ig_error_set(err, IG_ERR_INVAL, "no broker host given");
	if (cfg->port < 1 || cfg->port > 65535)
		return ig_error_set(err, IG_ERR_INVAL, "port %d out of range 1..65535", cfg->port);
	if (!cfg->cluster || !ig_id_valid(cfg->cluster, strlen(cfg->cluster)))
		return ig_error_set(err, IG_ERR_INVAL, "invalid cluster name: use 1..64 of [A-Za-z0-9_.-]");
	if (!cfg->id || !ig_id_valid(cfg->id, strlen(cfg->id)))
		return ig_error_set(err, IG_ERR_INVAL, "invalid identity id: use 1..64 of [A-Za-z0-9_.-]");
	if (cfg->heartbeat_s == 0 || cfg->ttl_s == 0)
		return ig_error_set(err, IG_ERR_INVAL, "heartbeat and ttl must be at least 1 second");
	if (cfg->username && (!cfg->plain || !cfg->password))
		return ig_error_set(err, IG_ERR_INVAL, "a user name needs plain-broker mode and a password");

	ig_agent *a = calloc(1, sizeof *a);
	if (!a)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	a->cfg = *cfg;
	if (a->cfg.keepalive_s == 0)
		a->cfg.keepalive_s = 60;
	snprintf(a->id, sizeof a->id, "%s", cfg->id);
	snprintf(a->cluster, sizeof a->cluster, "%s", cfg->cluster);
	snprintf(a->topic_status, sizeof a->topic_status, "iotguard/%s/dev/%s/status", a->cluster, a->id);
	snprintf(a->topic_inbox, sizeof a->topic_inbox, "iotguard/%s/dev/%s/inbox", a->cluster, a->id);
	snprintf(a->topic_ch, sizeof a->topic_ch, "iotguard/%s/ch/%s", a->cluster, a->id);
	a->started_us = ig_mono_us();
	a->inbox_sub_mid = -1;
	a->offline_mid = -1;
	a->owner = -1;

	a->sk = sodium_malloc(IG_SK_BYTES);
	if (!a->sk) {
		free(a);
		return ig_error_set(err, IG_ERR_NOMEM, "cannot allocate guarded memory for the key");
	}
	rc = ig_keyfile_read(cfg->key_path, a->sk, a->pk, err);
	if (rc != IG_OK) {
		ig_agent_free(a);
		return rc;
	}
	sodium_mprotect_noaccess(a->sk);
	ig_hex_encode(pk_hex, a->pk, sizeof a->pk);

	rc = setup_mqtt(a, err);
	if (rc != IG_OK) {
		ig_agent_free(a);
		return rc;
	}
	ig_log(IG_LOG_INFO, "identity %s (public key %s), cluster %s, broker %s:%d%s%s%s%s", a->id, pk_hex,
	       a->cluster, cfg->host, cfg->port, cfg->tls_ca ? " (TLS)" : "",
	       !cfg->plain ? "" : cfg->username ? " (plain broker, user " : " (plain broker, anonymous)",
	       cfg->plain && cfg->username ? cfg->username : "", cfg->plain && cfg->username ? ")" : "");
	*out = a;
	return IG_OK;
}

void ig_agent_free(ig_agent *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nduties; i++)
		if (a->duties[i].ops->on_stop)
			a->duties[i].ops->on_stop(a, a->duties[i].state);
	if (a->mosq)
		mosquitto_destroy(a->mosq);
	if (a->sk)
		sodium_free(a->sk);  /* zeroes the key before releasing it */
	free(a);
}
