/*
 * plugin_service.h: the table of services the plugin carries.
 *
 * Why this exists: the plugin must not be a switchboard that knows every
 * feature. A service (bank, keys, entropy, attestation, join, ...) decides
 * in lib/ and registers here with one descriptor: its name, the request
 * types it answers on iotguard/<cluster>/ch/<id>, the device topic it
 * consumes, and its hooks. Like Redis's command table or the agent's
 * ig_duty_ops, adding a service is adding a row, and the dispatcher, the
 * tick, revocation and the stats loop over rows.
 *
 * A sealed cluster head (no ch.key, only ch.key.sealed) starts without its
 * key: a row that needs it says so (needs_key), and until ig_plugin_unseal
 * its init is deferred, the dispatcher refuses its requests with error
 * "sealed", its dev-topic messages are dropped (and counted), and its tick,
 * on_revoke and stats are skipped. At the unseal the deferred rows start,
 * in table order.
 *
 * A service keeps its own state (made by init) and reads the cluster state
 * through pl->state. It never sends anything itself: it fills an
 * ig_decision and ig_plugin_carry_out sends it, or appends its record and
 * sends the replies once the record is durable.
 */
#ifndef IG_PLUGIN_SERVICE_H
#define IG_PLUGIN_SERVICE_H

#include "plugin.h"

#include "ig_decision.h"

struct cJSON;

typedef struct ig_service {
	const char *name;
	/* Request types answered on the ch topic, NULL-terminated; NULL = none. */
	const char *const *requests;
	/* True when a session authenticated by a join token (not enrolled yet)
	 * may send these requests; every other request needs an enrolled id. */
	bool open_to_joining;
	/* Consumes messages published on iotguard/<cluster>/dev/<id>/<dev_topic>
	 * by <id> itself; NULL = none. */
	const char *dev_topic;
	/* Needs the cluster-head key (or appends records, which need it to be
	 * signed): deferred while sealed (see the top). */
	bool needs_key;
	/* Ends the sealed refusal's sentence "... before it can <sealed_what>",
	 * e.g. "issue session keys"; rows with needs_key set it. */
	const char *sealed_what;

	/* Makes the service's state; NULL (after logging why) refuses to start. */
	void *(*init)(ig_plugin *pl);
	void (*free)(void *svc);
	/* One request of a listed type from id. req is the parsed JSON object. */
	void (*request)(void *svc, ig_plugin *pl, const char *id, const char *type, const struct cJSON *req,
	                ig_decision *out);
	/* One message on the dev topic from id. */
	void (*dev_message)(void *svc, ig_plugin *pl, const char *id, const void *payload, uint32_t len,
	                    ig_decision *out);
	/* Every broker tick; keep it cheap (it runs on every loop pass under load). */
	void (*tick)(void *svc, ig_plugin *pl, uint64_t now_ms);
	/* id is revoked. Called when the revocation takes effect (the admin
	 * command, before its record is durable: cutting off early is the safe
	 * side) and again once the revoke record is durable and applied, which
	 * is all a broker applying another broker's record will see. So a hook
	 * must be harmless to repeat. */
	void (*on_revoke)(void *svc, ig_plugin *pl, const char *id);
	/* Adds the service's figures to the stats object. */
	void (*stats)(void *svc, ig_plugin *pl, struct cJSON *stats);
	/* A record is durable and applied to pl->state (any record: the
	 * services' own, the admin API's, a join's); NULL = not interested.
	 * Runs inside the carrier's completion, so it only notes what to do
	 * (appending is for the tick or a decision's done). */
	void (*on_record)(void *svc, ig_plugin *pl, const ig_record *rec);
} ig_service;

/* The rows, each in its feature's glue file. */
extern const ig_service ig_service_entropy;   /* plugin_entropy.c; before keys: it keys the pool */
extern const ig_service ig_service_attest;    /* plugin_entropy.c */
extern const ig_service ig_service_keys;      /* plugin_keys.c */
extern const ig_service ig_service_bank;      /* plugin_bank.c; after entropy: coins come from the pool */
extern const ig_service ig_service_join;      /* plugin_join.c */
extern const ig_service ig_service_proof;     /* plugin_proof.c */
extern const ig_service ig_service_witness;   /* plugin_witness.c */
extern const ig_service ig_service_custody;   /* plugin_custody.c; after entropy: S mixes in the pool; runs sealed */
extern const ig_service ig_service_kp;        /* plugin_kp.c; key rings; needs the key */
extern const ig_service ig_service_fleet;     /* plugin_fleet.c; the fleet listing for monitors; runs sealed */

/* plugin_service.c */
/* Starts every service in table order (while pl->sealed, those that need
 * the key are left for ig_plugin_services_unseal); on failure frees those
 * started. */
int ig_plugin_services_init(ig_plugin *pl);
/* Starts the rows deferred while sealed, in table order. A row whose init
 * fails stays deferred (still refused as sealed) and -1 is returned; a
 * later call retries only the rows still deferred. 0 when every row runs. */
int ig_plugin_services_unseal(ig_plugin *pl);
/* Rows still waiting for the key. */
size_t ig_plugin_services_deferred(void);
void ig_plugin_services_free(ig_plugin *pl);
/* The service answering request type, or NULL. */
const ig_service *ig_plugin_service_for(const char *type, void **svc);
/* The static copy of type if some service answers it, else NULL (errors
 * name a request only with a type the cluster head knows). */
const char *ig_plugin_service_request_name(const char *type);
/* Dispatches a ch request; false when no service answers type. */
bool ig_plugin_services_request(ig_plugin *pl, const char *id, const char *type, const struct cJSON *req);
/* True when some service consumes dev-topic messages named suffix. */
bool ig_plugin_services_consume(const char *suffix);
/* Dispatches a dev-topic message; false when no service consumes suffix. */
bool ig_plugin_services_dev_message(ig_plugin *pl, const char *id, const char *suffix, const void *payload,
                                    uint32_t len);
void ig_plugin_services_tick(ig_plugin *pl, uint64_t now_ms);
void ig_plugin_services_on_revoke(ig_plugin *pl, const char *id);
/* Every running row's on_record, for a record that is durable and applied. */
void ig_plugin_services_on_record(ig_plugin *pl, const ig_record *rec);
void ig_plugin_services_stats(ig_plugin *pl, struct cJSON *stats);
/* "ping, join, ..." : every request type, for the unknown_type message. */
const char *ig_plugin_services_request_list(void);

/* Carries out d for the request of requester, and clears d. A refusal goes
 * to requester's inbox, replies to their addressees, and an append is
 * submitted to the ledger; when its fate is known, a durable record is
 * applied to pl->state and published as an event, then the decision's done
 * runs and its output is carried out in turn. Decisions chained on d
 * (d->next, ig_decision_then) are carried out after it, in order. */
void ig_plugin_carry_out(ig_plugin *pl, const char *requester, ig_decision *d);

#endif
