/*
 * duty_join.c: joining a cluster with a one-time join code.
 *
 * Why this exists: a new device holds only a code an admin printed. It
 * proves code and key in one CONNECT (the join token), asks to join, and
 * learns from the welcome which cluster-head key to trust from now on.
 * Every refusal of a code (used, expired, unknown, this id taken) needs a
 * human, so the agent stops with exit status 3 instead of retrying; only
 * network trouble is retried.
 */
#include "duties.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ig_keyfile.h"
#include "ig_json.h"

#define JOIN_TOKEN_TTL_S 300
#define WELCOME_TIMEOUT_US 60000000u
#define MAX_WELCOME_TIMEOUTS 3

int ig_join_prepare_key(const char *key_path, char pk_hex[2 * IG_PK_BYTES + 1], ig_error *err)
{
	struct stat st;
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	pk_hex[0] = '\0';
	if (stat(key_path, &st) == 0)
		return IG_OK;
	if (errno != ENOENT)
		return ig_error_set(err, IG_ERR_IO, "cannot check key file %s: %s", key_path, strerror(errno));
	int rc = ig_keyfile_generate(pk, sk);
	if (rc == IG_OK)
		rc = ig_keyfile_write(key_path, sk, false, err);
	else
		ig_error_set(err, rc, "cannot generate a key pair");
	sodium_memzero(sk, sizeof sk);
	if (rc == IG_OK)
		ig_hex_encode(pk_hex, pk, sizeof pk);
	return rc;
}

int ig_join_init(ig_join_state *j, const char *code, ig_pin_state *pin, ig_error *err)
{
	uint8_t id_and_secret[IG_JOIN_CODE_ID_BYTES + IG_JOIN_SECRET_BYTES];
	memset(j, 0, sizeof *j);
	j->pin = pin;
	if (ig_join_code_parse(code, id_and_secret, id_and_secret + IG_JOIN_CODE_ID_BYTES) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "join code is malformed: expected %s followed by 48 hex digits",
		                    IG_JOIN_CODE_PREFIX);
	memcpy(j->code, IG_JOIN_CODE_PREFIX, sizeof IG_JOIN_CODE_PREFIX - 1);
	ig_hex_encode(j->code + sizeof IG_JOIN_CODE_PREFIX - 1, id_and_secret, sizeof id_and_secret);
	sodium_memzero(id_and_secret, sizeof id_and_secret);
	j->joining = true;
	return IG_OK;
}

static void join_done(ig_join_state *j)
{
	j->joining = false;
	sodium_memzero(j->code, sizeof j->code);
}

static void give_up(ig_agent *a, ig_join_state *j, const char *why)
{
	ig_log(IG_LOG_ERR, "join failed: %s", why);
	join_done(j);
	j->checking_enrolled = false;
	ig_agent_stop(a, IG_EXIT_NEEDS_HUMAN);
}

struct mint_ctx {
	const ig_agent *a;
	const char *code;
	char *out;
	size_t cap;
};

static int mint_join_token(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct mint_ctx *m = ctx;
	uint64_t now_s = ig_now_ms() / 1000u;
	return ig_join_token_mint(m->out, m->cap, sk, ig_agent_cluster(m->a), ig_agent_id(m->a), m->code, now_s,
	                          now_s + JOIN_TOKEN_TTL_S, NULL);
}

static int join_password(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_join_state *j = state;
	if (!j->joining)
		return 0;
	j->sent_this_session = false;
	struct mint_ctx m = {.a = a, .code = j->code, .out = out, .cap = cap};
	int n = ig_agent_with_key(a, mint_join_token, &m);
	if (n <= 0) {
		ig_log(IG_LOG_ERR, "cannot mint a join token (error %d): check the key file and the join code", n);
		return n < 0 ? n : IG_ERR_INVAL;
	}
	return n;
}

static void join_on_connect(ig_agent *a, void *state)
{
	ig_join_state *j = state;
	static const char request[] = "{\"type\":\"join\"}";
	if (j->checking_enrolled) {
		/* A normal token worked: an earlier join request went through but
		 * its welcome never arrived. The pin duty learns the key from the
		 * ledger head. */
		ig_log(IG_LOG_INFO, "this key is enrolled: an earlier join request succeeded though its welcome was "
		                    "lost; continuing as an enrolled device");
		j->checking_enrolled = false;
		return;
	}
	if (!j->joining)
		return;
	if (ig_agent_request(a, request, sizeof request - 1) != IG_OK)
		return;  /* the connection is going; the next one asks again */
	j->sent_this_session = true;
	j->sent_before = true;
	j->sent_us = ig_mono_us();
	ig_log(IG_LOG_INFO, "join requested; waiting for the welcome");
}

static void join_on_refused(ig_agent *a, void *state, int reason)
{
	ig_join_state *j = state;
	char why[256];
	if (j->checking_enrolled) {
		give_up(a, j, "the join token was refused after an earlier join request, and this key is not enrolled "
		              "either; ask the cluster operator for a new join code");
		return;
	}
	if (!j->joining)
		return;
	if (j->sent_before) {
		/* The code may have been consumed by our own earlier request. */
		ig_log(IG_LOG_WARN, "join token refused after an earlier join request; checking whether this key is "
		                    "already enrolled");
		join_done(j);
		j->checking_enrolled = true;
		return;
	}
	snprintf(why, sizeof why,
	         "the cluster head refused the join token (MQTT reason %d): the code is used, expired or unknown, or "
	         "id %s is already enrolled (then run without --join-code); ask the cluster operator",
	         reason, ig_agent_id(a));
	give_up(a, j, why);
}

static bool handle_welcome(ig_agent *a, ig_join_state *j, const cJSON *msg)
{
	const cJSON *cluster = cJSON_GetObjectItemCaseSensitive(msg, "cluster");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *pk_hex = cJSON_GetObjectItemCaseSensitive(msg, "ch_pubkey");
	const cJSON *index = cJSON_GetObjectItemCaseSensitive(msg, "index");
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};

	if (!cJSON_IsString(cluster) || strcmp(cluster->valuestring, ig_agent_cluster(a)) != 0 ||
	    !cJSON_IsString(id) || strcmp(id->valuestring, ig_agent_id(a)) != 0) {
		ig_log(IG_LOG_WARN, "welcome ignored: it names another cluster or id");
		return true;
	}
	uint64_t enroll_index = 0;
	if (!cJSON_IsString(pk_hex) || ig_hex_decode(pk, sizeof pk, pk_hex->valuestring, strlen(pk_hex->valuestring)) != IG_OK ||
	    ig_json_uint(&enroll_index, index, 1, IG_JSON_UINT_MAX) != IG_OK) {
		ig_log(IG_LOG_WARN, "welcome ignored: it lacks a valid ch_pubkey or index");
		return true;
	}
	if (ig_pin_store(j->pin, pk, &err) != IG_OK) {
		/* Enrolled, but without the pin entropy and session keys cannot
		 * work until the ledger head supplies it; say so and go on. */
		ig_log(IG_LOG_ERR, "joined, but cannot save the cluster-head key: %s", err.msg);
	}
	ig_log(IG_LOG_INFO, "joined cluster %s as %s (ledger index %" PRIu64 "%s%s)", ig_agent_cluster(a), ig_agent_id(a),
	       enroll_index, cJSON_IsString(role) && ig_role_parse(role->valuestring) ? ", role " : "",
	       cJSON_IsString(role) && ig_role_parse(role->valuestring) ? role->valuestring : "");
	ig_log(IG_LOG_INFO, "cluster-head key %s saved to %s", pk_hex->valuestring, j->pin->path);
	join_done(j);
	ig_agent_reconnect(a);
	return true;
}

static bool join_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_join_state *j = state;
	if (!j->joining)
		return false;
	if (strcmp(type, "welcome") == 0)
		return handle_welcome(a, j, msg);
	if (strcmp(type, "error") == 0) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
		char why[160];
		char safe[48] = "?";
		if (cJSON_IsString(code)) {
			size_t n = 0;
			for (const char *c = code->valuestring; *c && n + 1 < sizeof safe; c++)
				safe[n++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
			safe[n] = '\0';
		}
		snprintf(why, sizeof why, "the cluster head answered the join request with error %s; ask the cluster "
		                          "operator for a new join code", safe);
		give_up(a, j, why);
		return true;
	}
	return false;
}

static void join_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_join_state *j = state;
	if (!j->joining || !j->sent_this_session || now_us - j->sent_us < WELCOME_TIMEOUT_US)
		return;
	j->sent_this_session = false;
	if (++j->timeouts >= MAX_WELCOME_TIMEOUTS) {
		give_up(a, j, "no welcome from the cluster head after 3 join requests; check the broker's iotguard plugin");
		return;
	}
	ig_log(IG_LOG_WARN, "no welcome within %u s of the join request; reconnecting to ask again",
	       WELCOME_TIMEOUT_US / 1000000u);
	ig_agent_reconnect(a);
}

static void join_on_stop(ig_agent *a, void *state)
{
	(void)a;
	join_done(state);
}

const ig_duty_ops ig_duty_join = {
	.name = "join",
	.on_connect = join_on_connect,
	.on_inbox = join_on_inbox,
	.on_tick = join_on_tick,
	.on_stop = join_on_stop,
	.session_password = join_password,
	.on_refused = join_on_refused,
};
