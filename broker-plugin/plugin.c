/*
 * plugin.c: loading, configuration, reload and the tick that drives the
 * ledger's completions, the published head and the stats.
 *
 * Why this exists: it is the only file that knows the plugin's lifecycle.
 * The broker is single-threaded, so nothing here waits on the disk: the
 * ledger's writer thread syncs, and each tick collects what became durable.
 *
 * The lifecycle has one more step when the cluster head's key is kept only
 * sealed (ch.key.sealed, issue 9): the plugin starts without the key,
 * authenticates and serves proofs, and ig_plugin_unseal later finishes what
 * start would have done with the key.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool g_shutting_down;

void ig_plugin_log(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	mosquitto_log_printf(level, "iotguard: %s", buf);
}

static void lib_log_sink(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	static const int map[] = {MOSQ_LOG_ERR, MOSQ_LOG_WARNING, MOSQ_LOG_INFO, MOSQ_LOG_DEBUG};
	mosquitto_log_printf(map[level], "iotguard: %s", msg);
}

void ig_plugin_send_to(const char *client_id, const char *topic, const char *json)
{
	if (g_shutting_down || !json)
		return;
	/* mosquitto_broker_publish_copy: the broker takes its own copy, so the
	 * caller's buffer (often cJSON output) is freed by the caller. */
	int rc = mosquitto_broker_publish_copy(client_id, topic, (int)strlen(json), json, 1, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		ig_plugin_log(MOSQ_LOG_WARNING, "could not queue a message on %s (error %d)", topic, rc);
}

void ig_plugin_publish(const char *topic, const char *json, bool retain)
{
	if (g_shutting_down || !json)
		return;
	int rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(json), json, 1, retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		ig_plugin_log(MOSQ_LOG_WARNING, "could not publish on %s (error %d)", topic, rc);
}

void ig_plugin_publish_event(ig_plugin *pl, const ig_record *rec)
{
	char *json = ig_record_to_json(rec);
	char *with_broker = NULL;
	if (json && pl->cfg.broker_name[0]) {
		/* Shared mode: which broker published it, as the last field. The
		 * name is [A-Za-z0-9_.-] (parse_config), so it needs no escaping. */
		size_t n = strlen(json);
		size_t cap = n + sizeof ",\"broker\":\"\"" + strlen(pl->cfg.broker_name);
		with_broker = n > 1 && json[n - 1] == '}' ? malloc(cap) : NULL;
		if (with_broker)
			snprintf(with_broker, cap, "%.*s,\"broker\":\"%s\"}", (int)(n - 1), json, pl->cfg.broker_name);
		free(json);
		json = with_broker;
	}
	if (!json) {
		ig_plugin_log(MOSQ_LOG_WARNING, "ledger record %llu: could not render the event (out of memory)",
		              (unsigned long long)rec->index);
		return;
	}
	ig_plugin_publish(pl->topic_events, json, false);
	free(json);
}

/* ---- configuration ---------------------------------------------------- */

static const uint32_t default_ttl[IG_ROLE_COUNT] = {
	[IG_ROLE_DEVICE] = 600, [IG_ROLE_ANALYST] = 3600, [IG_ROLE_MONITOR] = 86400, [IG_ROLE_ADMIN] = 300,
	[IG_ROLE_WITNESS] = 3600, [IG_ROLE_BRIDGE] = 30 * 86400,
};

static int parse_u32(const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno || !end || *end || end == value || value[0] == '-' || v < min || v > max) {
		ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_%s '%s' is not a number in %u..%u; fix mosquitto.conf",
		              name, value, min, max);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* plugin_opt_broker_name: what stats, events and records' `by` name it by. */
static bool broker_name_valid(const char *v)
{
	size_t n = strlen(v);
	if (n < 1 || n > IG_PLUGIN_BROKER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Shared mode's options agree with each other (docs/PROTOCOL.md "Several
 * brokers"): a DSN needs the broker's name, and a name means nothing
 * without a DSN. */
static int check_shared(const ig_plugin_config *cfg)
{
	if (cfg->broker_name[0] && !cfg->ledger_dsn[0]) {
		ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_broker_name '%s' is set but plugin_opt_ledger_dsn is not: a broker "
		              "name only means something with a ledger shared in PostgreSQL; remove plugin_opt_broker_name, "
		              "or add plugin_opt_ledger_dsn (docs/PROTOCOL.md \"Several brokers\")", cfg->broker_name);
		return -1;
	}
	if (cfg->ledger_dsn[0] && !cfg->broker_name[0]) {
		ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_ledger_dsn needs plugin_opt_broker_name NAME, unique per broker "
		              "(1 to %d characters of A-Z a-z 0-9 _ . -; it names the broker in stats, events and the "
		              "records it appends); add it to mosquitto.conf", IG_PLUGIN_BROKER_NAME_MAX);
		return -1;
	}
	return 0;
}

static int parse_config(ig_plugin_config *cfg, struct mosquitto_opt *opts, int count)
{
	memset(cfg, 0, sizeof *cfg);
	memcpy(cfg->max_ttl_s, default_ttl, sizeof default_ttl);
	cfg->clock_skew_s = 30;
	cfg->stats_interval_s = 10;
	cfg->auth_fail_limit = 20;
	cfg->auth_ban_s = 60;
	cfg->auth_id_budget = 60;
	cfg->replay_cache_max = 4000000;
	cfg->entropy_min_interval_ms = 1000;
	cfg->session_key_ttl_s = 3600;
	cfg->key_requests_per_minute = 600;
	cfg->coin_ttl_s = 86400;
	cfg->attest_max_per_hour = 12;
	cfg->proof_requests_per_minute = 120;
	cfg->proof_queue = 256;
	ig_plugin_custody_defaults(cfg);

	for (int i = 0; i < count; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		if (!k || !v) {
			ig_plugin_log(MOSQ_LOG_ERR, "plugin option %d has no value; fix mosquitto.conf", i);
			return -1;
		}
		int rc = 0;
		if (!strcmp(k, "ledger")) {
			if (snprintf(cfg->ledger_dir, sizeof cfg->ledger_dir, "%s", v) >= (int)sizeof cfg->ledger_dir)
				rc = -1;
		} else if (!strcmp(k, "ledger_dsn")) {
			size_t n = strlen(v);
			if (n >= sizeof cfg->ledger_dsn || strspn(v, " \t") == n) {
				ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_ledger_dsn must be a libpq connection string of 1 to %zu "
				              "bytes (e.g. host=pg1,pg2 dbname=iotguard target_session_attrs=read-write); fix "
				              "mosquitto.conf", sizeof cfg->ledger_dsn - 1);
				return -1;
			}
			memcpy(cfg->ledger_dsn, v, n + 1);
		} else if (!strcmp(k, "broker_name")) {
			if (!broker_name_valid(v)) {
				ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_broker_name '%s' must be 1 to %d characters of A-Z a-z 0-9 "
				              "_ . -; fix mosquitto.conf", v, IG_PLUGIN_BROKER_NAME_MAX);
				return -1;
			}
			snprintf(cfg->broker_name, sizeof cfg->broker_name, "%s", v);
		} else if (!strcmp(k, "policy")) {
			if (snprintf(cfg->policy_path, sizeof cfg->policy_path, "%s", v) >= (int)sizeof cfg->policy_path)
				rc = -1;
		} else if (!strncmp(k, "ttl_", 4)) {
			ig_role role = ig_role_parse(k + 4);
			if (role == IG_ROLE_NONE) {
				ig_plugin_log(MOSQ_LOG_ERR, "unknown option plugin_opt_%s: roles are device, analyst, monitor, admin, witness, bridge", k);
				return -1;
			}
			rc = parse_u32(k, v, 1, ig_policy_ttl_limit(role), &cfg->max_ttl_s[role]);
		} else if (!strcmp(k, "clock_skew")) {
			rc = parse_u32(k, v, 0, 3600, &cfg->clock_skew_s);
		} else if (!strcmp(k, "stats_interval")) {
			rc = parse_u32(k, v, 0, 86400, &cfg->stats_interval_s);
		} else if (!strcmp(k, "auth_fail_limit")) {
			rc = parse_u32(k, v, 0, 1000000, &cfg->auth_fail_limit);
		} else if (!strcmp(k, "auth_ban_seconds")) {
			rc = parse_u32(k, v, 1, 86400, &cfg->auth_ban_s);
		} else if (!strcmp(k, "auth_id_budget")) {
			rc = parse_u32(k, v, 0, 1000000, &cfg->auth_id_budget);
		} else if (!strcmp(k, "replay_cache_max")) {
			rc = parse_u32(k, v, 1000, 100000000, &cfg->replay_cache_max);
		} else if (!strcmp(k, "entropy_min_interval_ms")) {
			rc = parse_u32(k, v, 0, 3600000, &cfg->entropy_min_interval_ms);
		} else if (!strcmp(k, "session_key_ttl")) {
			rc = parse_u32(k, v, 10, 7 * 86400, &cfg->session_key_ttl_s);
		} else if (!strcmp(k, "coin_ttl")) {
			rc = parse_u32(k, v, 60, 365 * 86400, &cfg->coin_ttl_s);
		} else if (!strcmp(k, "key_requests_per_minute")) {
			rc = parse_u32(k, v, 1, 10000000, &cfg->key_requests_per_minute);
		} else if (!strcmp(k, "attest_max_per_hour")) {
			rc = parse_u32(k, v, 1, 3600, &cfg->attest_max_per_hour);
		} else if (!strcmp(k, "proof_requests_per_minute")) {
			rc = parse_u32(k, v, 1, 1000000, &cfg->proof_requests_per_minute);
		} else if (!strcmp(k, "proof_queue")) {
			rc = parse_u32(k, v, 1, 100000, &cfg->proof_queue);
		} else if (!strncmp(k, "custody_", 8)) {
			rc = ig_plugin_custody_option(cfg, k, v);
		} else {
			ig_plugin_log(MOSQ_LOG_ERR,
			              "unknown option plugin_opt_%s; known: ledger, policy, ledger_dsn, broker_name, ttl_<role>, clock_skew, "
			              "stats_interval, auth_fail_limit, auth_ban_seconds, auth_id_budget, replay_cache_max, "
			              "entropy_min_interval_ms, session_key_ttl, key_requests_per_minute, coin_ttl, "
			              "attest_max_per_hour, proof_requests_per_minute, proof_queue, custody_*", k);
			return -1;
		}
		if (rc)
			return -1;
	}
	if (check_shared(cfg) != 0)
		return -1;
	if (!cfg->ledger_dir[0]) {
		if (cfg->ledger_dsn[0])
			ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_ledger is missing; with plugin_opt_ledger_dsn it is the "
			              "directory holding the cluster-head key (ch.key, made by 'iotguard init --ledger DIR "
			              "--dsn DSN --cluster NAME'; every broker of the cluster has a copy)");
		else
			ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_ledger is missing; point it at a ledger made with "
			                            "'iotguard init --ledger DIR --cluster NAME'");
		return -1;
	}
	return 0;
}

static int load_policy(const ig_plugin_config *cfg, ig_policy **out)
{
	ig_error err = {0};
	int rc;
	if (cfg->policy_path[0])
		rc = ig_policy_load(cfg->policy_path, out, &err);
	else
		rc = ig_policy_parse(ig_policy_default_json, strlen(ig_policy_default_json), out, &err);
	if (rc != IG_OK)
		ig_plugin_log(MOSQ_LOG_ERR, "policy %s: %s", cfg->policy_path[0] ? cfg->policy_path : "(built-in)", err.msg);
	return rc;
}

/* The policy file's max_token_ttl wins over the ttl_<role> option. */
static void apply_ttls(ig_plugin *pl)
{
	for (int r = 0; r < IG_ROLE_COUNT; r++) {
		uint32_t from_policy = ig_policy_max_ttl(pl->policy, (ig_role)r);
		pl->max_ttl_s[r] = from_policy ? from_policy : pl->cfg.max_ttl_s[r];
	}
}

/* ---- head and stats ----------------------------------------------------- */

void ig_plugin_publish_head(ig_plugin *pl, const char *text, const ig_checkpoint *cp, const char *const *witnesses,
                            size_t n)
{
	char root_b64[sodium_base64_ENCODED_LEN(IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(root_b64, sizeof root_b64, cp->root, IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
	char pk_hex[2 * IG_PK_BYTES + 1];
	ig_hex_encode(pk_hex, pl->ch_pk, IG_PK_BYTES);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "origin", cp->origin);
	cJSON_AddNumberToObject(o, "size", (double)cp->size);
	cJSON_AddStringToObject(o, "root", root_b64);
	cJSON_AddStringToObject(o, "ch_pubkey", pk_hex);
	cJSON_AddStringToObject(o, "checkpoint", text);
	if (n) {
		cJSON_AddBoolToObject(o, "cosigned", true);
		cJSON *ws = cJSON_AddArrayToObject(o, "witnesses");
		for (size_t i = 0; ws && i < n; i++)
			cJSON_AddItemToArray(ws, cJSON_CreateString(witnesses[i]));
	}
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_publish(pl->topic_head, json, true);
	free(json);
}

static void publish_head(ig_plugin *pl)
{
	char text[IG_CHECKPOINT_MAX];
	ig_checkpoint cp;
	if (ig_ledger_checkpoint(pl->ledger, text, sizeof text, &cp) < 0)
		return;
	ig_plugin_publish_head(pl, text, &cp, NULL, 0);
	pl->head_published = true;
	pl->head_seq++;
}

static void publish_stats(ig_plugin *pl, uint64_t now_ms)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "ts", (double)now_ms);
	cJSON_AddStringToObject(o, "cluster", pl->cluster);
	cJSON_AddNumberToObject(o, "uptime_s", (double)((now_ms - pl->start_ms) / 1000));
	if (pl->cfg.broker_name[0])
		cJSON_AddStringToObject(o, "broker", pl->cfg.broker_name);

	cJSON *conn = cJSON_AddObjectToObject(o, "connected");
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		cJSON_AddNumberToObject(conn, ig_role_name((ig_role)r), (double)pl->sessions.by_role[r]);
	cJSON_AddNumberToObject(conn, "total", (double)pl->sessions.count);

	ig_plugin_auth_stats(o);

	cJSON *acl = cJSON_AddObjectToObject(o, "acl");
	cJSON_AddNumberToObject(acl, "denied_publish", (double)pl->acl_denied_publish);
	cJSON_AddNumberToObject(acl, "denied_subscribe", (double)pl->acl_denied_subscribe);
	cJSON_AddNumberToObject(acl, "denied_read", (double)pl->acl_denied_read);

	cJSON *ids = cJSON_AddObjectToObject(o, "identities");
	cJSON_AddNumberToObject(ids, "active", (double)ig_registry_count(pl->reg, IG_ID_ACTIVE, IG_ROLE_NONE));
	cJSON_AddNumberToObject(ids, "revoked", (double)ig_registry_count(pl->reg, IG_ID_REVOKED, IG_ROLE_NONE));

	ig_ledger_stats st;
	ig_ledger_get_stats(pl->ledger, &st);
	cJSON *led = cJSON_AddObjectToObject(o, "ledger");
	cJSON_AddNumberToObject(led, "height", (double)st.height);
	cJSON_AddNumberToObject(led, "pending", (double)st.pending);
	cJSON_AddNumberToObject(led, "checkpoint_size", (double)st.checkpoint_size);
	cJSON_AddNumberToObject(led, "batches", (double)st.batches);
	cJSON *lat = cJSON_AddObjectToObject(led, "commit_latency_us");
	cJSON_AddNumberToObject(lat, "last", (double)st.last_commit_us);
	cJSON_AddNumberToObject(lat, "avg", (double)st.avg_commit_us);
	cJSON_AddNumberToObject(lat, "max", (double)st.max_commit_us);

	if (pl->cfg.ledger_dsn[0]) {
		ig_ledger_shared_stats sh;
		ig_ledger_get_shared_stats(pl->ledger, &sh);
		cJSON *so = cJSON_AddObjectToObject(o, "shared");
		cJSON_AddBoolToObject(so, "connected", sh.connected);
		cJSON_AddNumberToObject(so, "followed", (double)sh.followed);
		cJSON_AddNumberToObject(so, "conflicts", (double)sh.conflicts);
		cJSON_AddNumberToObject(so, "reconnects", (double)sh.reconnects);
		cJSON_AddNumberToObject(so, "follow_lag_ms", (double)sh.follow_lag_us_last / 1000.0);
		cJSON_AddNumberToObject(so, "unavailable_refusals", (double)sh.unavailable_refusals);
		ig_plugin_nonces_stats(so);
	}

	cJSON_AddBoolToObject(o, "sealed", pl->sealed);
	cJSON *sr = cJSON_AddObjectToObject(o, "sealed_refused");
	cJSON_AddNumberToObject(sr, "requests", (double)pl->sealed_refused_requests);
	cJSON_AddNumberToObject(sr, "dev_messages", (double)pl->sealed_dropped_dev_messages);
	cJSON_AddNumberToObject(sr, "admin", (double)pl->sealed_refused_admin);
	cJSON_AddNumberToObject(sr, "joins", (double)pl->sealed_refused_joins);

	ig_plugin_services_stats(pl, o);

	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_publish(pl->topic_stats, json, false);
	free(json);
}

static int on_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	ig_plugin *pl = userdata;
	ig_plugin_run_pending_kicks(pl);
	ig_ledger_poll(pl->ledger);
	if (ig_ledger_checkpoint_changed(pl->ledger) || !pl->head_published)
		publish_head(pl);
	/* One clock read per loop pass: this runs between every few messages. */
	uint64_t now = ig_now_ms();
	ig_plugin_auth_tick(pl, now / 1000 * 1000);
	ig_plugin_nonces_tick();
	ig_plugin_services_tick(pl, now);
	if (pl->cfg.stats_interval_s) {
		if (now >= pl->next_stats_ms) {
			publish_stats(pl, now);
			pl->next_stats_ms = now + (uint64_t)pl->cfg.stats_interval_s * 1000u;
		}
	}
	return MOSQ_ERR_SUCCESS;
}

/* Mosquitto 2.0 hands a reload no plugin options (they are read only at
 * start), so SIGHUP re-reads the policy file, which also carries the role
 * token TTLs ("max_token_ttl"). Options, if a later broker passes them,
 * are applied too. */
static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_reload *ed = event_data;
	ig_plugin_config cfg = pl->cfg;
	if (ed && ed->option_count > 0) {
		if (parse_config(&cfg, ed->options, ed->option_count) != 0) {
			ig_plugin_log(MOSQ_LOG_ERR, "reload: configuration rejected; keeping the previous policy and TTLs");
			return MOSQ_ERR_PLUGIN_DEFER;
		}
		if (strcmp(cfg.ledger_dir, pl->cfg.ledger_dir) != 0)
			ig_plugin_log(MOSQ_LOG_WARNING, "reload: plugin_opt_ledger changed; a ledger cannot be swapped live, "
			                                "restart the broker to use %s", cfg.ledger_dir);
		memcpy(cfg.ledger_dir, pl->cfg.ledger_dir, sizeof cfg.ledger_dir);
		if (strcmp(cfg.ledger_dsn, pl->cfg.ledger_dsn) != 0) {
			char shown[512];
			ig_plugin_dsn_display(shown, sizeof shown, cfg.ledger_dsn);
			ig_plugin_log(MOSQ_LOG_WARNING, "reload: plugin_opt_ledger_dsn changed; a ledger cannot be swapped "
			              "live, restart the broker to use '%s'", shown);
		}
		if (strcmp(cfg.broker_name, pl->cfg.broker_name) != 0)
			ig_plugin_log(MOSQ_LOG_WARNING, "reload: plugin_opt_broker_name changed; the name records and events "
			              "carry cannot change live, restart the broker to use '%s'", cfg.broker_name);
		memcpy(cfg.ledger_dsn, pl->cfg.ledger_dsn, sizeof cfg.ledger_dsn);
		memcpy(cfg.broker_name, pl->cfg.broker_name, sizeof cfg.broker_name);
	}
	ig_policy *policy = NULL;
	if (load_policy(&cfg, &policy) != IG_OK) {
		ig_plugin_log(MOSQ_LOG_ERR, "reload: policy rejected; keeping the previous policy and TTLs");
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	ig_policy_free(pl->policy);
	pl->policy = policy;
	pl->cfg = cfg;
	pl->next_stats_ms = 0;
	apply_ttls(pl);
	ig_plugin_log(MOSQ_LOG_NOTICE, "reloaded policy %s; token TTLs: device %us, analyst %us, monitor %us, admin %us, witness %us, bridge %us",
	              cfg.policy_path[0] ? cfg.policy_path : "(built-in)", pl->max_ttl_s[IG_ROLE_DEVICE],
	              pl->max_ttl_s[IG_ROLE_ANALYST], pl->max_ttl_s[IG_ROLE_MONITOR], pl->max_ttl_s[IG_ROLE_ADMIN],
	              pl->max_ttl_s[IG_ROLE_WITNESS], pl->max_ttl_s[IG_ROLE_BRIDGE]);
	/* Other plugins get their reload too. */
	return MOSQ_ERR_PLUGIN_DEFER;
}

/* ---- sealed ------------------------------------------------------------ */

bool ig_plugin_sealed(const ig_plugin *pl)
{
	return pl->sealed;
}

void ig_plugin_sealed_message(const ig_plugin *pl, char *out, size_t cap, const char *what)
{
	const ig_custody_view *cv = ig_state_custody(pl->state);
	unsigned k = cv ? cv->active.k : 0;
	char who[48];
	if (k)
		snprintf(who, sizeof who, "%u custody holders", k);
	else
		snprintf(who, sizeof who, "enough custody holders");
	snprintf(out, cap, "the cluster head is sealed: %s must connect before it can %s; retry later", who,
	         what && what[0] ? what : "do this");
}

int ig_plugin_unseal(ig_plugin *pl, const uint8_t sk[IG_SK_BYTES], ig_error *err)
{
	if (!pl || !sk)
		return ig_error_set(err, IG_ERR_INVAL, "ig_plugin_unseal: missing argument");
	if (!pl->sealed)
		return ig_error_set(err, IG_ERR_STATE, "the cluster head is not sealed");
	int rc;
	if (ig_ledger_sealed(pl->ledger)) {
		rc = ig_ledger_unseal(pl->ledger, sk, err);
		if (rc != IG_OK) {
			ig_plugin_log(MOSQ_LOG_ERR, "unseal refused: %s", err ? err->msg : "(no reason given)");
			return rc;
		}
		ig_join_key_derive(&pl->join_key, ig_ledger_ch_sk(pl->ledger));
	} else if (sodium_memcmp(ig_ledger_ch_sk(pl->ledger), sk, IG_SK_BYTES) != 0) {
		/* A retry after a service failed to start: the ledger has its key. */
		return ig_error_set(err, IG_ERR_CRYPTO, "the key given is not the one the ledger was unsealed with");
	}
	if (ig_plugin_services_unseal(pl) != 0)
		return ig_error_set(err, IG_ERR_NOMEM, "the ledger is unsealed but %zu service(s) could not start (see the "
		                    "broker log); their requests are still refused as sealed: unseal again to retry",
		                    ig_plugin_services_deferred());
	pl->sealed = false;
	ig_plugin_log(MOSQ_LOG_NOTICE, "unsealed: cluster '%s' has its key again; session keys, coins, joins, entropy "
	              "and admin changes are served", pl->cluster);
	return IG_OK;
}

/* ---- lifecycle --------------------------------------------------------- */

static void replay_progress(void *ctx, uint64_t records, uint64_t bytes, uint64_t total)
{
	(void)ctx;
	ig_plugin_log(MOSQ_LOG_INFO, "loading ledger: %llu records (%llu of %llu bytes)", (unsigned long long)records,
	              (unsigned long long)bytes, (unsigned long long)total);
}

static void plugin_free(ig_plugin *pl)
{
	if (!pl)
		return;
	if (pl->ledger)
		ig_ledger_close(pl->ledger);
	ig_state_free(pl->shadow);   /* after close: the ledger's thread used it */
	ig_plugin_services_free(pl);
	ig_state_free(pl->state);
	ig_policy_free(pl->policy);
	ig_sessions_free(&pl->sessions);
	ig_plugin_auth_free(pl);
	ig_plugin_presence_free();
	ig_plugin_nonces_free();
	ig_pool_wipe(&pl->pool);
	sodium_memzero(pl, sizeof *pl);
	free(pl);
}

static int build_topics(ig_plugin *pl)
{
	const char *c = pl->cluster;
	int n1 = snprintf(pl->topic_events, IG_TOPIC_MAX, "iotguard/%s/ledger/events", c);
	int n2 = snprintf(pl->topic_head, IG_TOPIC_MAX, "iotguard/%s/ledger/head", c);
	int n3 = snprintf(pl->topic_stats, IG_TOPIC_MAX, "iotguard/%s/stats", c);
	int n4 = snprintf(pl->topic_ch_prefix, IG_TOPIC_MAX, "iotguard/%s/ch/", c);
	int n5 = snprintf(pl->topic_dev_prefix, IG_TOPIC_MAX, "iotguard/%s/dev/", c);
	if (n1 < 0 || n2 < 0 || n3 < 0 || n4 < 0 || n5 < 0 || n1 >= IG_TOPIC_MAX || n4 >= IG_TOPIC_MAX ||
	    n5 >= IG_TOPIC_MAX)
		return -1;
	pl->topic_ch_prefix_len = (size_t)n4;
	pl->topic_dev_prefix_len = (size_t)n5;
	return 0;
}

/* Every broker event the plugin handles, registered at init and removed at
 * cleanup from this one list. */
static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
	const void *data;
} callbacks[] = {
	{MOSQ_EVT_BASIC_AUTH, ig_plugin_on_basic_auth, NULL},
	{MOSQ_EVT_EXT_AUTH_START, ig_plugin_on_ext_auth_start, NULL},
	{MOSQ_EVT_ACL_CHECK, ig_plugin_on_acl_check, NULL},
	{MOSQ_EVT_CONTROL, ig_plugin_on_control, IG_ADMIN_TOPIC},
	{MOSQ_EVT_MESSAGE, ig_plugin_on_message, NULL},
	{MOSQ_EVT_TICK, on_tick, NULL},
	{MOSQ_EVT_RELOAD, on_reload, NULL},
	{MOSQ_EVT_DISCONNECT, ig_plugin_on_disconnect, NULL},
};
#define N_CALLBACKS (sizeof callbacks / sizeof callbacks[0])

static void unregister_callbacks(mosquitto_plugin_id_t *pid, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mosquitto_callback_unregister(pid, callbacks[i].event, callbacks[i].cb, callbacks[i].data);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
                          int option_count)
{
	if (ig_init() != IG_OK) {
		ig_plugin_log(MOSQ_LOG_ERR, "libsodium failed to initialise; refusing to start");
		return MOSQ_ERR_UNKNOWN;
	}
	ig_log_set(lib_log_sink, NULL);

	ig_plugin *pl = calloc(1, sizeof *pl);
	if (!pl)
		return MOSQ_ERR_NOMEM;
	pl->pid = identifier;
	pl->start_ms = ig_now_ms();
	g_shutting_down = false;

	if (parse_config(&pl->cfg, options, option_count) != 0 || load_policy(&pl->cfg, &pl->policy) != IG_OK) {
		plugin_free(pl);
		return MOSQ_ERR_INVAL;
	}
	apply_ttls(pl);
	pl->state = ig_state_new();
	if (pl->state) {
		pl->reg = ig_state_registry(pl->state);
		pl->codes = ig_state_joincodes(pl->state);
		pl->coins = ig_state_coins(pl->state);
	}
	if (!pl->state || !ig_sessions_init(&pl->sessions) || ig_plugin_auth_init(pl) != 0) {
		plugin_free(pl);
		return MOSQ_ERR_NOMEM;
	}

	uint64_t t0 = ig_mono_us();
	ig_error err = {0};
	ig_ledger_open_opts lo = {.writer = true, .sealed_ok = true, .progress = replay_progress, .progress_ctx = pl};
	ig_state_replay_opts(pl->state, &lo);   /* tables sized from the ledger's census */
	char dsn_shown[512] = "";
	int open_rc;
	if (pl->cfg.ledger_dsn[0]) {
		ig_ledger_shared_opts so;
		ig_plugin_shared_opts(pl, &so);
		ig_plugin_dsn_display(dsn_shown, sizeof dsn_shown, pl->cfg.ledger_dsn);
		open_rc = ig_ledger_open_shared(&pl->ledger, pl->cfg.ledger_dir, &lo, &so, &err);
		if (open_rc != IG_OK) {
			ig_plugin_log(MOSQ_LOG_ERR, "shared ledger in PostgreSQL at '%s' (keys in %s): %s; refusing to start",
			              dsn_shown, pl->cfg.ledger_dir, err.msg);
			pl->ledger = NULL;
			plugin_free(pl);
			return MOSQ_ERR_UNKNOWN;
		}
	} else {
		open_rc = ig_ledger_open(&pl->ledger, pl->cfg.ledger_dir, &lo, &err);
	}
	if (open_rc != IG_OK) {
		struct stat st;
		char hint[160] = "";
		if (err.code == IG_ERR_IO && stat(pl->cfg.ledger_dir, &st) == 0 && st.st_uid != geteuid())
			snprintf(hint, sizeof hint, " (the broker runs as uid %u but uid %u owns the ledger: chown it to "
			         "the broker's user, or set 'user' in mosquitto.conf)", (unsigned)geteuid(), (unsigned)st.st_uid);
		ig_plugin_log(MOSQ_LOG_ERR, "ledger %s: %s%s; refusing to start", pl->cfg.ledger_dir, err.msg, hint);
		pl->ledger = NULL;
		plugin_free(pl);
		return MOSQ_ERR_UNKNOWN;
	}
	snprintf(pl->cluster, sizeof pl->cluster, "%s", ig_ledger_cluster(pl->ledger));
	memcpy(pl->ch_pk, ig_ledger_ch_pk(pl->ledger), IG_PK_BYTES);
	if (build_topics(pl) != 0) {
		plugin_free(pl);
		return MOSQ_ERR_INVAL;
	}
	ig_plugin_nonces_init(pl);
	/* Spent coins past expiry are dead weight: drop them before serving. */
	ig_coins_prune(pl->coins, ig_now_ms() / 1000);
	pl->sealed = ig_ledger_sealed(pl->ledger);
	if (!pl->sealed && !ig_ledger_ch_sk(pl->ledger)) {
		ig_plugin_log(MOSQ_LOG_ERR, "the ledger holds no cluster-head key (ch.key); refusing to start");
		plugin_free(pl);
		return MOSQ_ERR_UNKNOWN;
	}
	if (!pl->sealed)
		ig_join_key_derive(&pl->join_key, ig_ledger_ch_sk(pl->ledger));
	if (ig_plugin_services_init(pl) != 0) {
		plugin_free(pl);
		return MOSQ_ERR_UNKNOWN;
	}

	for (size_t i = 0; i < N_CALLBACKS; i++) {
		int rc = mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb, callbacks[i].data, pl);
		if (rc != MOSQ_ERR_SUCCESS) {
			ig_plugin_log(MOSQ_LOG_ERR, "could not register callback for event %d (error %d); refusing to start",
			              callbacks[i].event, rc);
			unregister_callbacks(identifier, i);
			plugin_free(pl);
			return rc;
		}
	}

	ig_plugin_tls_warn();
	if (pl->sealed)
		ig_plugin_log(MOSQ_LOG_WARNING, "sealed: %s holds no ch.key, only ch.key.sealed; enrolled identities "
		              "connect and log proofs are served, but session keys, coins, joins, entropy, attestations "
		              "and admin changes are refused as \"sealed\" until the custody holders unseal the key",
		              pl->cfg.ledger_dir);
	if (pl->cfg.ledger_dsn[0])
		ig_plugin_log(MOSQ_LOG_NOTICE, "cluster '%s': shared mode, broker '%s', ledger in PostgreSQL at '%s' (keys in "
		              "%s) open, height %llu, %llu active identities, loaded in %llu ms", pl->cluster,
		              pl->cfg.broker_name, dsn_shown, pl->cfg.ledger_dir, (unsigned long long)ig_ledger_height(pl->ledger),
		              (unsigned long long)ig_registry_count(pl->reg, IG_ID_ACTIVE, IG_ROLE_NONE),
		              (unsigned long long)((ig_mono_us() - t0) / 1000));
	else
		ig_plugin_log(MOSQ_LOG_NOTICE, "cluster '%s': ledger %s open, height %llu, %llu active identities, loaded in "
		              "%llu ms", pl->cluster, pl->cfg.ledger_dir, (unsigned long long)ig_ledger_height(pl->ledger),
		              (unsigned long long)ig_registry_count(pl->reg, IG_ID_ACTIVE, IG_ROLE_NONE),
		              (unsigned long long)((ig_mono_us() - t0) / 1000));
	*userdata = pl;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	ig_plugin *pl = userdata;
	if (!pl)
		return MOSQ_ERR_SUCCESS;
	unregister_callbacks(pl->pid, N_CALLBACKS);
	/* Completions that run while the ledger drains must not publish into a
	 * broker that is shutting down. */
	g_shutting_down = true;
	pl->closing = true;
	plugin_free(pl);
	return MOSQ_ERR_SUCCESS;
}
