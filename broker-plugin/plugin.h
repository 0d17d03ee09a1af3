/*
 * plugin.h: state shared by the plugin's glue files.
 *
 * Why this exists: the plugin is split by broker event (auth, ACL, admin
 * API, device requests, ticks), and those files share one state object.
 * Everything that decides anything lives in lib/; these files only translate
 * Mosquitto events into lib calls and lib results into MQTT messages.
 */
#ifndef IG_PLUGIN_H
#define IG_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "ig_admin.h"
#include "ig_aclcache.h"
#include "ig_aead.h"
#include "ig_auth.h"
#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_coins.h"
#include "ig_common.h"
#include "ig_entropy.h"
#include "ig_idmap.h"
#include "ig_join.h"
#include "ig_joincodes.h"
#include "ig_keybox.h"
#include "ig_ledger.h"
#include "ig_policy.h"
#include "ig_pool.h"
#include "ig_registry.h"
#include "ig_sessions.h"
#include "ig_state.h"

#define IG_TOPIC_MAX 256

/* plugin_opt_custody_*: k and n both 0 = custody off (docs/PROTOCOL.md "Custody"). */
typedef struct ig_plugin_custody_config {
	uint32_t k, n;
	uint32_t rotate_s, holder_timeout_s, min_battery, deal_timeout_s;
	bool unseal_admin;   /* plugin_opt_custody_unseal admin */
} ig_plugin_custody_config;

/* plugin_opt_broker_name: 1..32 characters of [A-Za-z0-9_.-]. */
#define IG_PLUGIN_BROKER_NAME_MAX 32

typedef struct ig_plugin_config {
	char ledger_dir[4096];           /* shared mode: only the keys (ch.key or ch.key.sealed) */
	/* Shared mode (docs/PROTOCOL.md "Several brokers"): the records live in
	 * PostgreSQL at ledger_dsn (a libpq connection string); "" = file mode.
	 * broker_name is set exactly when ledger_dsn is. */
	char ledger_dsn[4096];
	char broker_name[IG_PLUGIN_BROKER_NAME_MAX + 1];
	char policy_path[4096];          /* "" = built-in default policy */
	uint32_t max_ttl_s[IG_ROLE_COUNT];
	uint32_t clock_skew_s;
	uint32_t stats_interval_s;       /* 0 = no stats */
	uint32_t auth_fail_limit;        /* failures per address per minute before a ban; 0 = off */
	uint32_t auth_ban_s;
	uint32_t auth_id_budget;         /* failed signature checks per id per minute from failing addresses; 0 = off */
	uint32_t replay_cache_max;       /* single-use nonces remembered at most */
	uint32_t entropy_min_interval_ms;
	uint32_t session_key_ttl_s;
	uint32_t key_requests_per_minute;
	uint32_t coin_ttl_s;
	uint32_t attest_max_per_hour;    /* attest records per device per hour */
	uint32_t proof_requests_per_minute;  /* log_inclusion + log_consistency per identity per minute */
	uint32_t proof_queue;            /* proofs queued or being made at once; more are refused "busy" */
	ig_plugin_custody_config custody;   /* plugin_opt_custody_* (plugin_custody.c) */
} ig_plugin_config;

typedef struct ig_plugin {
	mosquitto_plugin_id_t *pid;
	ig_plugin_config cfg;
	uint32_t max_ttl_s[IG_ROLE_COUNT];   /* in force: policy file's max_token_ttl, else cfg */
	ig_ledger *ledger;
	/* Shared mode: the writer thread's own copy of the state, which it
	 * re-checks each batch against (plugin_follow.c); NULL in file mode and
	 * after a reset until the thread applies the records again. Only that
	 * thread touches it once the ledger is open. */
	ig_state *shadow;
	/* Set by the broker's cleanup before the ledger drains: a followed
	 * record still applies, but nobody is kicked out of a broker that is
	 * stopping. */
	bool closing;
	/* The cluster state (lib/cluster/state.c); reg, codes and coins are its parts,
	 * kept as shortcuts for the glue that reads them. */
	ig_state *state;
	ig_registry *reg;
	ig_policy *policy;
	char cluster[IG_CLUSTER_MAX + 1];
	uint8_t ch_pk[IG_PK_BYTES];

	/* Topics, built once. */
	char topic_events[IG_TOPIC_MAX];
	char topic_head[IG_TOPIC_MAX];
	char topic_stats[IG_TOPIC_MAX];
	char topic_ch_prefix[IG_TOPIC_MAX];   /* "iotguard/C/ch/" */
	size_t topic_ch_prefix_len;

	ig_sessions sessions;
	/* Recent ACL decisions per client (plugin_acl.c, lib/identity/aclcache.c). */
	ig_aclcache *aclcache;

	/* Key service (issue 3). */
	ig_joincodes *codes;
	ig_join_key join_key;
	/* Keyed and seeded by the entropy service (lib/entropy/svc_entropy.c), which
	 * mixes device entropy in; session keys and coins are drawn from it. */
	ig_pool pool;
	ig_coins *coins;                    /* the bank's coin index */
	char topic_dev_prefix[IG_TOPIC_MAX]; /* "iotguard/C/dev/" */
	size_t topic_dev_prefix_len;

	uint64_t start_ms;
	uint64_t next_stats_ms;
	bool head_published;
	uint64_t head_seq;                /* +1 per signed checkpoint published as the head (the witness service follows it) */

	/* Counters for stats. */
	uint64_t acl_denied_publish, acl_denied_subscribe, acl_denied_read;

	/* Sealed start (docs/PROTOCOL.md "A sealed cluster head"): the ledger
	 * opened without ch.key; what needs the key is refused as "sealed"
	 * until ig_plugin_unseal. The counters are for stats. */
	bool sealed;
	uint64_t sealed_refused_requests;     /* ch requests of rows that need the key */
	uint64_t sealed_dropped_dev_messages; /* dev-topic messages (entropy) nobody could take */
	uint64_t sealed_refused_admin;        /* admin commands that would append */
	uint64_t sealed_refused_joins;        /* CONNECTs with a join token */
} ig_plugin;

/* plugin.c */
void ig_plugin_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Publishes to one client only (never routed to subscribers). */
void ig_plugin_send_to(const char *client_id, const char *topic, const char *json);
/* Publishes to every subscriber allowed to read topic. */
void ig_plugin_publish(const char *topic, const char *json, bool retain);
void ig_plugin_publish_event(ig_plugin *pl, const ig_record *rec);
/* Publishes the retained head iotguard/<cluster>/ledger/head for the signed
 * checkpoint text (cp parsed from it); with witnesses (n > 0) it is marked
 * "cosigned" and names them (schema/ledger-head.schema.json). */
struct ig_checkpoint;
void ig_plugin_publish_head(ig_plugin *pl, const char *text, const struct ig_checkpoint *cp,
                            const char *const *witnesses, size_t n);

/* True while the cluster head is sealed: no key, services that need it
 * deferred, appends refused. */
bool ig_plugin_sealed(const ig_plugin *pl);
/* Unseals a sealed cluster head with its key (rebuilt from custody shares):
 * ig_ledger_unseal (refuses a key that is not the genesis key: IG_ERR_CRYPTO,
 * still sealed), derives what start derives from the key (the join key),
 * starts the deferred services in table order and logs "iotguard: unsealed".
 * Publishes nothing itself. On the broker's thread only (a service's tick
 * or request); no disk I/O. IG_ERR_STATE when not sealed; IG_ERR_NOMEM when
 * a service could not start (it stays refused as sealed; calling again
 * with the key retries it). sk is the caller's to wipe. */
int ig_plugin_unseal(ig_plugin *pl, const uint8_t sk[IG_SK_BYTES], ig_error *err);
/* The sealed refusal's sentence: "the cluster head is sealed: K custody
 * holders must connect before it can <what>; retry later". */
void ig_plugin_sealed_message(const ig_plugin *pl, char *out, size_t cap, const char *what);

/* plugin_tls_warn.c: at init, warns about plaintext listeners and a
 * missing message_size_limit in the broker's configuration. */
void ig_plugin_tls_warn(void);

/* plugin_auth.c */
int ig_plugin_on_basic_auth(int event, void *event_data, void *userdata);
int ig_plugin_on_ext_auth_start(int event, void *event_data, void *userdata);
int ig_plugin_on_disconnect(int event, void *event_data, void *userdata);
/* The brute-force tables and the replay cache: made at start, swept a
 * slice per tick, freed at cleanup. init logs what failed. */
int ig_plugin_auth_init(ig_plugin *pl);
void ig_plugin_auth_tick(ig_plugin *pl, uint64_t now_ms);
void ig_plugin_auth_free(ig_plugin *pl);
/* Adds the "auth" object (accepted, refused by reason) to the stats. */
struct cJSON;
void ig_plugin_auth_stats(struct cJSON *stats);

/* The replay cache of single-use token nonces (NULL before init). */
ig_nonces *ig_plugin_auth_replay(void);

/* plugin_nonces.c: shared mode passes the nonces of accepted single-use
 * tokens to the other brokers on iotguard/<C>/bridge/nonces
 * (docs/PROTOCOL.md "Several brokers"). init builds the topic (after
 * pl->cluster is known); note queues an own accepted nonce (a full batch is
 * published at once); tick publishes what is queued; receive takes a
 * message on the topic (from_bridge: its publisher is a bridge) into
 * replay; stats adds "nonces_shared" to the "shared" stats object. */
void ig_plugin_nonces_init(ig_plugin *pl);
void ig_plugin_nonces_free(void);
bool ig_plugin_nonces_topic(const char *topic);
void ig_plugin_nonces_note(const uint8_t nonce[IG_NONCES_NONCE_BYTES], uint64_t expires_at);
void ig_plugin_nonces_tick(void);
void ig_plugin_nonces_receive(ig_plugin *pl, ig_nonces *replay, bool from_bridge, const void *payload, uint32_t len,
                              uint64_t now_s);
void ig_plugin_nonces_stats(struct cJSON *shared);

/* plugin_acl.c */
int ig_plugin_on_acl_check(int event, void *event_data, void *userdata);

/* plugin_admin.c */
int ig_plugin_on_control(int event, void *event_data, void *userdata);
/* Cuts every live connection of id (revocation). Returns true if one was cut. */
bool ig_plugin_disconnect_identity(ig_plugin *pl, const char *id);
/* Runs the disconnects deferred to the next tick (an admin revoking
 * itself); cheap when there are none. */
void ig_plugin_run_pending_kicks(ig_plugin *pl);

/* Takes a revocation into effect on this broker's connections, before its
 * record is applied here (Mosquitto checks a will against the ACL as it
 * sends it, and monitors should see the device go offline): cuts id's
 * connection and publishes its retained "revoked" status. by_client is the
 * admin that revoked (an admin revoking itself is cut at the next tick,
 * after its own PUBLISH), NULL for a record another broker appended.
 * Returns true if a connection was cut. */
bool ig_plugin_revoke_cut(ig_plugin *pl, const char *id, const char *by_client);

/* plugin_follow.c */
/* A record durable in the ledger, this broker's own or another broker's:
 * applies it to pl->state (a refusal is logged: the ledger holds it, so it
 * cannot be refused in a consistent state), runs the services' on_revoke
 * for a revoke, publishes its event and runs the services' on_record. The
 * one sequence for every completion and every followed record. */
void ig_plugin_record_durable(ig_plugin *pl, const ig_record *rec);
/* ig_ledger_shared_opts.on_follow (ctx = pl): a record another broker
 * appended, verified by the ledger, on the broker's thread in index order.
 * A revoke first cuts the id's connections (ig_plugin_revoke_cut), then
 * ig_plugin_record_durable. Always IG_OK. */
int ig_plugin_on_follow(void *ctx, const ig_record *rec, ig_error *err);
/* Fills the shared-mode options from pl's configuration: dsn, broker,
 * on_follow and the shadow state's apply and reset (ctx = pl). */
void ig_plugin_shared_opts(ig_plugin *pl, ig_ledger_shared_opts *so);
/* dsn as libpq parses it, every password as ***, for logs and errors
 * (ig_pg_dsn_mask); cut to cap. */
void ig_plugin_dsn_display(char *out, size_t cap, const char *dsn);

/* plugin_requests.c */
int ig_plugin_on_message(int event, void *event_data, void *userdata);
/* Sends a JSON object (consumed) to id's inbox: targeted in file mode,
 * routed normally in shared mode so a bridge carries it to id's broker. */
struct cJSON;
void ig_plugin_reply(ig_plugin *pl, const char *id, struct cJSON *o);
/* Shared mode: plugin_opt_ledger_dsn is set. */
bool ig_plugin_shared(const ig_plugin *pl);
/* Shared mode: id's last status that crossed a bridge said "online", less
 * than 3 minutes ago (it is connected to another broker). */
bool ig_plugin_remote_online(const ig_plugin *pl, const char *id);
void ig_plugin_presence_free(void);

/* plugin_custody.c */
/* One plugin_opt_custody_* option into cfg (logs why on failure: -1). */
int ig_plugin_custody_option(ig_plugin_config *cfg, const char *key, const char *value);
void ig_plugin_custody_defaults(ig_plugin_config *cfg);
/* The admin API's custody commands. status fills slot ("ok" and the fields);
 * rotate and seal return false with error and message when refused; a seal
 * under way calls done exactly once (error NULL: ch.key is gone). */
typedef void (*ig_plugin_custody_done_fn)(void *ctx, const char *error, const char *message);
void ig_plugin_custody_admin_status(struct cJSON *slot);
bool ig_plugin_custody_admin_rotate(const char *by, const char **error, char *message, size_t cap);
bool ig_plugin_custody_admin_seal(const char *by, ig_plugin_custody_done_fn done, void *done_ctx,
                                  const char **error, char *message, size_t cap);
/* custody_recover: the holders' shares released to pk, passed on unopened;
 * done gets the fields to answer with (result, taken) or an error. */
typedef void (*ig_plugin_custody_recover_fn)(void *ctx, const char *error, const char *message,
                                             struct cJSON *result);
/* approval: NULL or the sender's (ig_svc_custody.h; required in admin unseal mode). */
struct ig_svc_custody_approval;
bool ig_plugin_custody_admin_recover(const uint8_t pk[32], const struct ig_svc_custody_approval *approval,
                                     ig_plugin_custody_recover_fn done, void *done_ctx, const char **error,
                                     char *message, size_t cap);
/* custody_approve by admin `by` with its signature over the pending request. */
bool ig_plugin_custody_admin_approve(const char *by, const uint8_t sig[64], const char **error, char *message,
                                     size_t cap);

/* plugin_kp.c: the admin API's key-ring commands. status fills slot ("ok"
 * and the fields); rotate returns false with error and message when
 * refused, else calls done exactly once when the new epoch's record is
 * settled (error NULL: durable). */
typedef void (*ig_plugin_kp_done_fn)(void *ctx, const char *error, const char *message);
void ig_plugin_kp_admin_status(ig_plugin *pl, struct cJSON *slot);
bool ig_plugin_kp_admin_rotate(ig_plugin *pl, const char *by, ig_plugin_kp_done_fn done, void *done_ctx,
                               const char **error, char *message, size_t cap);

/* plugin_join.c */
/* Checks a join token; on IG_AUTH_OK fills out (id, role, joining fields). */
ig_auth_result ig_plugin_join_auth(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, ig_session *out);

#endif
