/*
 * bank.h: what the pieces of bench_bank share: its limits, the state of one
 * run (collectors, analysts, monitors and their counters) and each piece's
 * entry points.
 *
 * Why this exists: bench_bank measures four things that share identities
 * and clients but nothing else, and one 1.7k-line file had them interleaved.
 * Each concept now has its file: ledger.c (the identities' ledger, and the
 * 10M-coin one rss starts a broker on), clients.c (the clients of a run and
 * what they do with each packet), load.c (durable mints + redeems per
 * second), route.c (coin-sealed data against plaintext through the broker),
 * rss.c (broker memory per outstanding coin); main.c reads the options.
 */
#ifndef IOTGUARD_BENCH_BANK_H
#define IOTGUARD_BENCH_BANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_stats.h"
#include "ig_aead.h"
#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_common.h"
#include "ig_keybox.h"

#define BENCH_NAME "bench_bank"
#define MAX_COLLECTORS 1000
#define MAX_ANALYSTS 64
#define MAX_PAYLOAD 1024
#define MSG_MAX (MAX_PAYLOAD + IG_COIN_DATA_OVERHEAD_MAX)
#define MINT_RING 8                  /* mint requests in flight per collector, at most */
#define ROUTE_POOL 64                /* sealed messages per routing collector, sent in turn */
#define MAX_ROUNDS 16
#define RSS_COLLECTORS 100           /* collectors in rss's ledgers */
#define MAX_LATENCIES (4u * 1024u * 1024u)
#define BOX_COINS_MAX (IG_COINS_PER_REQUEST * IG_COIN_BYTES + crypto_box_MACBYTES)
#define REDEEM_PLAIN (32 + 32 + IG_COIN_NONCE_BYTES + IG_HASH_BYTES)

typedef enum phase { PH_SETUP, PH_STOCK, PH_BANK, PH_ROUTE } phase;
typedef enum mode { MODE_PLAIN = 0, MODE_PADDED = 1, MODE_SEALED = 2, MODES = 3 } mode;

typedef struct collector {
	bench_conn c;
	int idx;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	char topic[200];                  /* iotguard/C/dev/<id>/data/bank */
	size_t topic_len;
	char route_topic[200];            /* iotguard/C/dev/<id>/data/route */
	size_t route_topic_len;
	int subacks;
	ig_box_key bk;
	/* coins from the stock phase until they are sealed (then wiped) */
	uint8_t (*coins)[IG_COIN_BYTES];
	size_t ncoins, coins_cap;
	/* pre-sealed messages, msg_len bytes each */
	uint8_t *msgs;
	size_t nmsgs, next_msg;
	double *sent_at;                  /* per message, when it was published */
	uint8_t *route_msgs;              /* ROUTE_POOL sealed messages for .../data/route */
	size_t nroute, route_next;
	/* bank phase */
	uint64_t data_out;                /* published, not yet redeemed or refused */
	uint64_t coins_asked, published;
	uint64_t mint_lead;               /* 0..63, random: collectors refill out of step */
	int mints_in_flight;
	uint64_t mint_seq;
	double mint_sent_at[MINT_RING];
	/* routing phase */
	uint64_t r_sent, r_received, r_written_off;
} collector;

typedef struct pending {
	bool busy;
	uint32_t gen;
	int collector;
	double sent_at;
	uint8_t header_hash[IG_HASH_BYTES];
	size_t len;
	uint8_t msg[MSG_MAX];
} pending;

typedef struct analyst {
	bench_conn c;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	int subacks, want_subacks;
	ig_box_key bk;
	pending *p;
	int cap;
	int *free_slots;
	int nfree;
} analyst;

typedef struct stats_snap {
	bench_stats_ledger l;
	double minted, redeemed, refused_total;
} stats_snap;

typedef struct bench {
	const char *cluster;
	int port, qos;
	int ncol, nana, window, route_pairs;
	size_t payload_len, msg_len;
	ig_suite suite;
	collector *col;
	analyst *ana;
	bench_conn mon, router;                 /* mon-000: head + stats; mon-001: data (routing phase) */
	int mon_subacks, router_subacks;
	bool have_ch_pk;
	uint8_t ch_pk[IG_PK_BYTES];
	phase ph;
	bool counting;
	bench_conn_set set;
	/* counters (whole run unless said) */
	uint64_t minted_counted, redeemed_counted;
	uint64_t coins_received, redeems_done, redeems_sent;
	uint64_t bad_boxes, bad_data, unmatched;
	bench_stats_codes errors;
	bench_stats_lat redeem_lat, mint_lat;
	stats_snap last_stats;
	uint64_t stats_seen;
	/* routing */
	mode send_mode;
	uint8_t plain_pt[MAX_PAYLOAD], padded_pt[MSG_MAX];
	uint64_t r_received_mode[MODES], r_unknown;
} bench;


/* What `run` was asked to do (main.c reads it from the options). */
typedef struct run_opts {
	int pid, rounds;
	size_t stock;
	double seal_budget, duration, warmup, mint_probe, route_duration, slice, goal;
	uint64_t route_window;
} run_opts;

/* ledger.c */
void bank_collector_id(char *out, size_t cap, int i);
void bank_analyst_id(char *out, size_t cap, int i);
/* Monitors, analysts, and collectors (devices) with `credit` each. */
void bank_build_identities(bench_id_builder *b, int collectors, int analysts, int monitors, uint64_t credit);
/* RSS_COLLECTORS collectors and `coins` minted coins in records of 64;
 * returns seconds. */
double bank_build_coin_ledger(const char *dir, const char *cluster, uint64_t coins);

/* clients.c */
/* Connects mon-000, the collectors and the analysts, waits for their
 * subscriptions and the cluster-head key; sets B->msg_len. */
void bank_clients_open(bench *B);
void bank_clients_close(bench *B);
/* Connects mon-001 to count routed data (route.c's phase). */
void bank_router_open(bench *B);
void bank_router_close(bench *B);
void bank_send_mint(bench *B, collector *c);
/* One pass of the poll loop over every connection. */
void bank_pump(bench *B, int timeout_ms);

/* load.c: stock, then timed mints + redeems, then mints alone. Returns what
 * was left unfinished. */
uint64_t bank_load_run(bench *B, const run_opts *o);

/* route.c: plaintext vs coin-sealed data through the broker. */
void bank_route_run(bench *B, const run_opts *o);

/* rss.c */
int bank_rss_run(const char *plugin, const char *work, uint64_t coins, int port, int broker_cpu, int client_cpu);

#endif
