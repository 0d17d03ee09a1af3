/*
 * bench_bank.c: the bank end to end: durable coins per second, what sealing
 * data with coins costs against plaintext, and the broker's RAM per
 * outstanding coin.
 *
 * Why this exists: a coin is worth something only once the bank has minted
 * it durably and, later, burned it durably for one analyst. So the figure
 * that matters is acknowledged coins: a mint counts (64 coins) when the
 * collector has received its "coins" box and opened it; a redeem counts when
 * the analyst has received its "redeemed" box, opened it, and decrypted the
 * data message with the key inside. The plugin sends either box only from
 * the ledger completion of the COIN_MINT / COIN_REDEEM record, i.e. after
 * its fdatasync: every counted coin is a durable ledger record, by
 * construction of the plugin.
 *
 *   bench_bank mkledger --dir D --cluster C [--collectors 100] [--analysts 4]
 *                       [--monitors 2] [--credit 100000000]
 *   bench_bank run --port P [--cluster C] [--collectors 100] [--analysts 4]
 *                  [--stock 512] [--seal-seconds 12] [--window 8] [--duration 5]
 *                  [--warmup 1] [--mint-probe 1.5] [--payload 64] [--qos 1]
 *                  [--route-pairs 8] [--route-window 2000] [--rounds 3]
 *                  [--route-duration 1.5] [--slice 0.5] [--pid BROKER_PID] [--goal 10000]
 *   bench_bank rss --plugin SO --work DIR [--coins 10000000] [--port P]
 *                  [--broker-cpu N] [--client-cpu N]
 *
 * run, in order (one poll() loop drives every client, MQTT spoken by
 * loadgen.c):
 *  1. Stock (not timed): every collector mints --stock coins (requests of
 *     64) and seals one data message per coin with ig_data_seal. Sealing is
 *     crypto_box_seal to the bank (an X25519 key generation plus a scalar
 *     multiplication, ~70-100 us here), which on the one load-generator core
 *     would cap the run below the broker's rate, so it happens before timing
 *     and its cost is printed.
 *  2. Bank (timed): collectors publish their sealed messages on
 *     iotguard/C/dev/<id>/data/bank (QoS --qos, at most --window per
 *     collector not yet redeemed) and keep minting as they spend, like a
 *     wallet refill: a collector asks for 64 more coins whenever it has
 *     published as many coins as it has asked for in this phase (each at its
 *     own random point of that 64-coin cycle, so the collectors refill out of
 *     step), so mints/s follows the rate at which messages are published
 *     and redeemed.
 *     Analysts (ana-NNN, collectors split between them) subscribe to their
 *     collectors' data topics, send {"type":"redeem",...} for every header,
 *     open the redeemed box and decrypt the message with
 *     ig_data_open_redeemed. Printed: mints/s, redeems/s, their sum (target
 *     --goal), latencies, broker CPU per coin, and from the plugin's stats
 *     (run the broker with plugin_opt_stats_interval 1) its coin counts and
 *     ledger commit latency.
 *  3. Mint only (--mint-probe seconds): what minting alone costs the broker
 *     per coin, and how fast it goes with 2 requests in flight per collector.
 *  4. Routing: --route-pairs collectors publish on .../data/route to one
 *     monitor (mon-001 subscribed to iotguard/C/dev/+/data/+), switching every
 *     --slice seconds between plaintext payloads (same payload size),
 *     plaintext padded to the sealed message's size, and coin-sealed
 *     messages (a pool of 64 real sealed messages per collector, sent again
 *     and again: the broker only routes data, so repeated bytes cost it the
 *     same). Messages/s and broker CPU per mode, ratio sealed/plaintext; and
 *     the client-side crypto per message in a tight loop.
 * rss: writes a ledger with --coins minted coins through lib (COIN_MINT
 *     records of 64 coins) and one with the same identities and credit but no
 *     coins, starts mosquitto with the plugin on each, and prints (VmRSS
 *     difference) / coins (target <= 48 bytes per outstanding coin).
 *
 * Identities (mkledger): collectors dev-NNNNNNN (devices), analysts ana-NNN,
 * monitors mon-NNN, each collector credited --credit coins. Keys are derived
 * from the id (loadgen.c, as bench_scale does): public, benchmark-only.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <sodium.h>

#include "ig_aead.h"
#include "ig_bank.h"
#include "ig_common.h"
#include "ig_keys.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_token.h"
#include "loadgen.h"

#define BENCH_NAME "bench_bank"
#define MAX_COLLECTORS 1000
#define MAX_ANALYSTS 64
#define MAX_PAYLOAD 1024
#define MSG_MAX (MAX_PAYLOAD + IG_DATA_OVERHEAD_MAX)
#define MINT_RING 8                  /* mint requests in flight per collector, at most */
#define ROUTE_POOL 64                /* sealed messages per routing collector, sent in turn */
#define MAX_ROUNDS 16
#define MAX_LATENCIES (4u * 1024u * 1024u)
#define BOX_COINS_MAX (IG_COINS_PER_REQUEST * IG_COIN_BYTES + crypto_box_MACBYTES)
#define REDEEM_PLAIN (32 + 32 + IG_COIN_NONCE_BYTES + IG_HASH_BYTES)

/* ---- ledger building (mkledger, rss) ------------------------------------------ */

typedef struct builder {
	ig_ledger *l;
	uint64_t submitted, done_ok, done_failed;
	int first_failure;
} builder;

static void on_built(void *ctx, int status, const ig_record *rec)
{
	(void)rec;
	builder *b = ctx;
	if (status == IG_OK) {
		b->done_ok++;
	} else {
		if (!b->done_failed)
			b->first_failure = status;
		b->done_failed++;
	}
}

static void build_begin(builder *b, const char *dir, const char *cluster)
{
	ig_error err = {0};
	uint8_t ch_pk[IG_PK_BYTES];
	memset(b, 0, sizeof *b);
	if (ig_ledger_init(dir, cluster, ch_pk, &err) != IG_OK)
		die("ig_ledger_init failed", err.msg);
	ig_ledger_open_opts opts = {.writer = true};
	if (ig_ledger_open(&b->l, dir, &opts, &err) != IG_OK)
		die("ig_ledger_open failed", err.msg);
}

/* Submits without waiting, keeping at most 16k records queued so that 2 KB
 * mint records do not pile up in memory. */
static void build_submit(builder *b, uint16_t type, const uint8_t *body, int len)
{
	if (len < 0)
		die("encoding a record failed", NULL);
	if (ig_ledger_submit(b->l, type, body, (size_t)len, on_built, b) != IG_OK)
		die("ig_ledger_submit failed", NULL);
	b->submitted++;
	if ((b->submitted & 1023) == 0) {
		ig_ledger_poll(b->l);
		while (b->submitted - b->done_ok - b->done_failed > 16384) {
			usleep(500);
			ig_ledger_poll(b->l);
		}
	}
}

static void build_end(builder *b)
{
	ig_error err = {0};
	if (ig_ledger_sync(b->l, &err) != IG_OK)
		die("ig_ledger_sync failed", err.msg);
	while (b->done_ok + b->done_failed < b->submitted)
		if (ig_ledger_poll(b->l) == 0)
			usleep(1000);
	ig_ledger_close(b->l);
	b->l = NULL;
	if (b->done_failed)
		die("some ledger records failed to be written", NULL);
}

static void build_enroll(builder *b, const char *id, ig_role role)
{
	ig_enroll e = {.role = role};
	uint8_t sk[IG_SK_BYTES], body[512];
	snprintf(e.id, sizeof e.id, "%s", id);
	bench_keypair(id, e.pk, sk);
	sodium_memzero(sk, sizeof sk);
	snprintf(e.by, sizeof e.by, "offline:bench");
	build_submit(b, IG_REC_ENROLL, body, ig_enroll_encode(body, sizeof body, &e));
}

static void build_credit(builder *b, const char *id, uint64_t amount)
{
	ig_credit_rec cr = {.amount = amount};
	uint8_t body[512];
	snprintf(cr.id, sizeof cr.id, "%s", id);
	snprintf(cr.by, sizeof cr.by, "offline:bench");
	build_submit(b, IG_REC_CREDIT, body, ig_credit_encode(body, sizeof body, &cr));
}

static void collector_id(char *out, size_t cap, int i)
{
	snprintf(out, cap, "dev-%07d", i);
}

static void analyst_id(char *out, size_t cap, int i)
{
	snprintf(out, cap, "ana-%03d", i);
}

/* Collectors (devices with credit), analysts, monitors. */
static void build_identities(builder *b, int collectors, int analysts, int monitors, uint64_t credit)
{
	char id[IG_ID_MAX + 1];
	for (int i = 0; i < monitors; i++) {
		snprintf(id, sizeof id, "mon-%03d", i);
		build_enroll(b, id, IG_ROLE_MONITOR);
	}
	for (int i = 0; i < analysts; i++) {
		analyst_id(id, sizeof id, i);
		build_enroll(b, id, IG_ROLE_ANALYST);
	}
	for (int i = 0; i < collectors; i++) {
		collector_id(id, sizeof id, i);
		build_enroll(b, id, IG_ROLE_DEVICE);
		build_credit(b, id, credit);
	}
}

/* ---- the run: clients and their state -------------------------------------------- */

typedef enum phase { PH_SETUP, PH_STOCK, PH_BANK, PH_ROUTE } phase;
typedef enum mode { MODE_PLAIN = 0, MODE_PADDED = 1, MODE_SEALED = 2, MODES = 3 } mode;
static const char *const mode_names[MODES] = {"plaintext", "plaintext padded", "coin-sealed"};

typedef struct collector {
	conn c;
	int idx;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	char topic[200];                  /* iotguard/C/dev/<id>/data/bank */
	size_t topic_len;
	char route_topic[200];            /* iotguard/C/dev/<id>/data/route */
	size_t route_topic_len;
	bool subscribed;
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
	conn c;
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
	bool have;
	double ts_ms, received_at;
	double minted, redeemed, refused_total, height, batches;
	double commit_last, commit_avg, commit_max;
} stats_snap;

typedef struct lat {
	float *v;
	size_t n;
} lat;

typedef struct bench {
	const char *cluster;
	int port, qos;
	int ncol, nana, window, route_pairs;
	size_t payload_len, msg_len;
	ig_suite suite;
	collector *col;
	analyst *ana;
	conn mon, router;                 /* mon-000: head + stats; mon-001: data (routing phase) */
	int mon_subacks, router_subacks;
	bool have_ch_pk;
	uint8_t ch_pk[IG_PK_BYTES];
	phase ph;
	bool counting;
	struct pollfd *pfd;
	/* counters (whole run unless said) */
	uint64_t minted_counted, redeemed_counted;
	uint64_t coins_received, redeems_done, redeems_sent;
	uint64_t bad_boxes, bad_data, unmatched, errors;
	char error_codes[8][40];
	uint64_t error_count[8];
	int nerror_codes;
	lat redeem_lat, mint_lat;
	stats_snap last_stats;
	uint64_t stats_seen;
	/* routing */
	mode send_mode;
	uint8_t plain_pt[MAX_PAYLOAD], padded_pt[MSG_MAX];
	uint64_t r_received_mode[MODES], r_unknown;
} bench;

static void count_error(bench *B, const char *code)
{
	B->errors++;
	for (int i = 0; i < B->nerror_codes; i++)
		if (!strcmp(B->error_codes[i], code)) {
			B->error_count[i]++;
			return;
		}
	if (B->nerror_codes < 8) {
		snprintf(B->error_codes[B->nerror_codes], sizeof B->error_codes[0], "%s", code);
		B->error_count[B->nerror_codes++] = 1;
	}
}

static void lat_add(lat *l, double seconds)
{
	if (l->n < MAX_LATENCIES)
		l->v[l->n++] = (float)(seconds * 1000.0);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* p50, p99, max in ms; false if empty. */
static bool lat_summary(lat *l, double *p50, double *p99, double *max)
{
	if (!l->n)
		return false;
	qsort(l->v, l->n, sizeof *l->v, cmp_float);
	*p50 = l->v[l->n / 2];
	*p99 = l->v[(size_t)((double)l->n * 0.99)];
	*max = l->v[l->n - 1];
	return true;
}

/* Index of dev-NNNNNNN in topic iotguard/C/dev/<id>/..., or -1. */
static int collector_of_topic(const bench *B, const char *topic, size_t tlen)
{
	size_t pre = strlen("iotguard/") + strlen(B->cluster) + strlen("/dev/dev-");
	if (tlen < pre + 8 || topic[pre + 7] != '/')
		return -1;
	int v = 0;
	for (size_t i = pre; i < pre + 7; i++) {
		if (topic[i] < '0' || topic[i] > '9')
			return -1;
		v = v * 10 + (topic[i] - '0');
	}
	return v < B->ncol ? v : -1;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* box_nonce (48 hex) + box (base64) of an inbox reply, opened with bk. */
static int open_reply_box(const cJSON *m, const ig_box_key *bk, uint8_t *plain, size_t cap)
{
	const char *bn = jstr(m, "box_nonce"), *box = jstr(m, "box");
	uint8_t nonce[crypto_box_NONCEBYTES], raw[BOX_COINS_MAX + 64];
	size_t raw_len = 0;
	if (!bn || !box || ig_hex_decode(nonce, sizeof nonce, bn, strlen(bn)) != IG_OK ||
	    sodium_base642bin(raw, sizeof raw, box, strlen(box), NULL, &raw_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    raw_len < crypto_box_MACBYTES || raw_len - crypto_box_MACBYTES > cap ||
	    crypto_box_open_easy_afternm(plain, raw, raw_len, nonce, bk->k) != 0)
		return -1;
	return (int)(raw_len - crypto_box_MACBYTES);
}

/* ---- collectors ---------------------------------------------------------------- */

static void send_mint(bench *B, collector *c)
{
	char json[128];
	uint64_t seq = ++c->mint_seq;
	int n = snprintf(json, sizeof json, "{\"type\":\"mint\",\"count\":%d,\"nonce\":\"m%" PRIu64 "\"}",
	                 IG_COINS_PER_REQUEST, seq);
	conn_publish(&c->c, c->ch_topic, json, (size_t)n, 1);
	c->mint_sent_at[seq % MINT_RING] = now_s();
	c->mints_in_flight++;
	c->coins_asked += IG_COINS_PER_REQUEST;
	(void)B;
}

static void on_coins(bench *B, collector *c, const cJSON *m)
{
	const char *nonce = jstr(m, "nonce");
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(m, "count");
	uint8_t plain[BOX_COINS_MAX];
	int n = open_reply_box(m, &c->bk, plain, sizeof plain);
	c->mints_in_flight--;
	if (n <= 0 || n % IG_COIN_BYTES != 0 || !cJSON_IsNumber(count) || count->valuedouble != n / IG_COIN_BYTES ||
	    !nonce || nonce[0] != 'm') {
		B->bad_boxes++;
		sodium_memzero(plain, sizeof plain);
		return;
	}
	size_t k = (size_t)n / IG_COIN_BYTES;
	uint64_t seq = strtoull(nonce + 1, NULL, 10);
	double now = now_s();
	B->coins_received += k;
	if (B->counting) {
		B->minted_counted += k;
		lat_add(&B->mint_lat, now - c->mint_sent_at[seq % MINT_RING]);
	}
	if (B->ph == PH_STOCK) {
		if (c->ncoins + k > c->coins_cap) {
			size_t cap = c->coins_cap ? c->coins_cap * 2 : 1024;
			while (cap < c->ncoins + k)
				cap *= 2;
			c->coins = xrealloc(c->coins, cap * IG_COIN_BYTES);
			c->coins_cap = cap;
		}
		memcpy(c->coins[c->ncoins], plain, (size_t)n);
		c->ncoins += k;
	}
	sodium_memzero(plain, sizeof plain);
}

static void on_collector_packet(void *ctx, conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	collector *c = (collector *)((char *)cn - offsetof(collector, c));
	switch (type & 0xf0) {
	case 0x90:
		if (len < 3 || body[2] == 0x80)
			die("the broker refused a collector's inbox subscription", c->id);
		c->subscribed = true;
		return;
	case 0x30:
		break;
	default:
		return;   /* PUBACKs */
	}
	const char *topic;
	const uint8_t *payload;
	size_t tlen, plen;
	if (!publish_parts(cn, type, body, len, &topic, &tlen, &payload, &plen))
		return;
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	const char *t = m ? jstr(m, "type") : NULL;
	if (t && !strcmp(t, "coins")) {
		on_coins(B, c, m);
	} else {
		const char *e = m ? jstr(m, "error") : NULL;
		count_error(B, e ? e : "unparsable");
		if (e && jstr(m, "nonce") && jstr(m, "nonce")[0] == 'm')
			c->mints_in_flight--;
		if (B->errors <= 3)
			fprintf(stderr, BENCH_NAME ": %s: inbox: %.*s\n", c->id, (int)(plen < 300 ? plen : 300), (const char *)payload);
	}
	cJSON_Delete(m);
}

/* ---- analysts ------------------------------------------------------------------ */

static void on_data(bench *B, analyst *a, const char *topic, size_t tlen, const uint8_t *msg, size_t len)
{
	int ci = collector_of_topic(B, topic, tlen);
	const uint8_t *hdr, *nonce, *ct;
	size_t hlen, ctlen;
	ig_suite suite;
	if (ci < 0 || len > MSG_MAX || ig_data_parse(msg, len, &hdr, &hlen, &suite, &nonce, &ct, &ctlen) != IG_OK) {
		B->bad_data++;
		return;
	}
	if (hlen > IG_COIN_HEADER_SEALED_MAX) {
		B->bad_data++;
		return;
	}
	if (!a->nfree)
		die("an analyst has more redeems in flight than its table holds", a->id);
	int s = a->free_slots[--a->nfree];
	pending *p = &a->p[s];
	p->busy = true;
	p->gen++;
	p->collector = ci;
	p->len = len;
	memcpy(p->msg, msg, len);
	ig_coin_header_hash(p->header_hash, hdr, hlen);
	p->sent_at = now_s();
	char b64[sodium_base64_ENCODED_LEN(IG_COIN_HEADER_SEALED_MAX, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, hdr, hlen, sodium_base64_VARIANT_ORIGINAL);
	char json[1024];
	int n = snprintf(json, sizeof json, "{\"type\":\"redeem\",\"topic\":\"%.*s\",\"header\":\"%s\",\"nonce\":\"%d.%" PRIu32 "\"}",
	                 (int)tlen, topic, b64, s, p->gen);
	if (n <= 0 || (size_t)n >= sizeof json)
		die("a redeem request does not fit", NULL);
	conn_publish(&a->c, a->ch_topic, json, (size_t)n, 1);
	B->redeems_sent++;
}

static void release(analyst *a, pending *p, collector *c)
{
	p->busy = false;
	a->free_slots[a->nfree++] = (int)(p - a->p);
	if (c->data_out)
		c->data_out--;
}

static void on_redeem_reply(bench *B, analyst *a, const uint8_t *payload, size_t plen)
{
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	const char *t = m ? jstr(m, "type") : NULL, *nonce = m ? jstr(m, "nonce") : NULL;
	char *end = NULL;
	long s = nonce ? strtol(nonce, &end, 10) : -1;
	uint32_t gen = end && *end == '.' ? (uint32_t)strtoul(end + 1, NULL, 10) : 0;
	if (!t || s < 0 || s >= a->cap || !a->p[s].busy || a->p[s].gen != gen) {
		B->unmatched++;
		if (t && !strcmp(t, "error"))
			count_error(B, jstr(m, "error") ? jstr(m, "error") : "error");
		cJSON_Delete(m);
		return;
	}
	pending *p = &a->p[s];
	collector *c = &B->col[p->collector];
	if (strcmp(t, "redeemed") != 0) {
		const char *e = jstr(m, "error");
		count_error(B, e ? e : t);
		if (B->errors <= 3)
			fprintf(stderr, BENCH_NAME ": %s: redeem refused: %.*s\n", a->id, (int)(plen < 300 ? plen : 300),
			        (const char *)payload);
		release(a, p, c);
		cJSON_Delete(m);
		return;
	}
	uint8_t plain[REDEEM_PLAIN + 16], hh[IG_HASH_BYTES], out[MAX_PAYLOAD];
	const char *hh_hex = jstr(m, "header_hash");
	int n = open_reply_box(m, &a->bk, plain, sizeof plain);
	bool ok = n == REDEEM_PLAIN && hh_hex && ig_hex_decode(hh, sizeof hh, hh_hex, strlen(hh_hex)) == IG_OK &&
	          sodium_memcmp(hh, p->header_hash, IG_HASH_BYTES) == 0 &&
	          sodium_memcmp(plain + 64 + IG_COIN_NONCE_BYTES, p->header_hash, IG_HASH_BYTES) == 0;
	if (!ok) {
		B->bad_boxes++;
	} else {
		int k = ig_data_open_redeemed(out, sizeof out, p->msg, p->len, c->topic, plain, plain + 64);
		/* The payload says which collector and message it is. */
		if (k != (int)B->payload_len || ig_get_u32(out) != (uint32_t)c->idx || ig_get_u32(out + 4) >= c->nmsgs) {
			B->bad_data++;
		} else {
			double now = now_s();
			B->redeems_done++;
			if (B->counting) {
				B->redeemed_counted++;
				lat_add(&B->redeem_lat, now - c->sent_at[ig_get_u32(out + 4)]);
			}
		}
	}
	sodium_memzero(plain, sizeof plain);
	release(a, p, c);
	cJSON_Delete(m);
}

static void on_analyst_packet(void *ctx, conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	analyst *a = (analyst *)((char *)cn - offsetof(analyst, c));
	if ((type & 0xf0) == 0x90) {
		if (len < 3 || body[2] == 0x80)
			die("the broker refused an analyst's subscription (is it enrolled as an analyst?)", a->id);
		a->subacks++;
		return;
	}
	if ((type & 0xf0) != 0x30)
		return;
	const char *topic;
	const uint8_t *payload;
	size_t tlen, plen;
	if (!publish_parts(cn, type, body, len, &topic, &tlen, &payload, &plen))
		return;
	if (tlen > 6 && !memcmp(topic + tlen - 6, "/inbox", 6))
		on_redeem_reply(B, a, payload, plen);
	else
		on_data(B, a, topic, tlen, payload, plen);
}

/* ---- monitors ------------------------------------------------------------------ */

static void on_monitor_packet(void *ctx, conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	cJSON *m = monitor_packet(cn, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk);
	if (!m)
		return;
	stats_snap s = {.have = true, .received_at = now_s()};
	s.ts_ms = jnum(m, "ts", NULL, NULL);
	s.minted = jnum(m, "bank", "minted", NULL);
	s.redeemed = jnum(m, "bank", "redeemed", NULL);
	const cJSON *bank = cJSON_GetObjectItemCaseSensitive(m, "bank");
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(bank, "refused"), *r;
	cJSON_ArrayForEach(r, ref) if (cJSON_IsNumber(r)) s.refused_total += r->valuedouble;
	s.height = jnum(m, "ledger", "height", NULL);
	s.batches = jnum(m, "ledger", "batches", NULL);
	s.commit_last = jnum(m, "ledger", "commit_latency_us", "last");
	s.commit_avg = jnum(m, "ledger", "commit_latency_us", "avg");
	s.commit_max = jnum(m, "ledger", "commit_latency_us", "max");
	B->last_stats = s;
	B->stats_seen++;
	cJSON_Delete(m);
}

static void on_router_packet(void *ctx, conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	if ((type & 0xf0) == 0x90) {
		if (len < 3 || body[2] == 0x80)
			die("the broker refused mon-001's subscription to iotguard/C/dev/+/data/+ (policy?)", NULL);
		B->router_subacks++;
		return;
	}
	if ((type & 0xf0) != 0x30)
		return;
	const char *topic;
	const uint8_t *payload;
	size_t tlen, plen;
	if (!publish_parts(cn, type, body, len, &topic, &tlen, &payload, &plen))
		return;
	int ci = collector_of_topic(B, topic, tlen);
	mode md;
	if (plen == B->payload_len)
		md = MODE_PLAIN;
	else if (plen == B->msg_len)
		md = memcmp(payload, IG_DATA_MAGIC, 4) == 0 ? MODE_SEALED : MODE_PADDED;
	else
		md = MODES;
	if (ci < 0 || md == MODES) {
		B->r_unknown++;
		return;
	}
	B->col[ci].r_received++;
	B->r_received_mode[md]++;
}

/* ---- the poll loop ----------------------------------------------------------------- */

static void pump(bench *B, int timeout_ms)
{
	struct pollfd *pfd = B->pfd;
	int nf = 0;
	conn *conns[2 + MAX_COLLECTORS + MAX_ANALYSTS];
	packet_fn fns[2 + MAX_COLLECTORS + MAX_ANALYSTS];
	conns[nf] = &B->mon, fns[nf++] = on_monitor_packet;
	if (B->router.fd >= 0)
		conns[nf] = &B->router, fns[nf++] = on_router_packet;
	for (int i = 0; i < B->ncol; i++)
		conns[nf] = &B->col[i].c, fns[nf++] = on_collector_packet;
	for (int i = 0; i < B->nana; i++)
		conns[nf] = &B->ana[i].c, fns[nf++] = on_analyst_packet;
	for (int i = 0; i < nf; i++) {
		if (conn_wants_write(conns[i]) && !conn_flush(conns[i]))
			die("a connection broke while writing (refused by the ACL?)", NULL);
		pfd[i].fd = conns[i]->fd;
		pfd[i].events = POLLIN | (conn_wants_write(conns[i]) ? POLLOUT : 0);
	}
	int pr = poll(pfd, (nfds_t)nf, timeout_ms);
	if (pr < 0 && errno != EINTR)
		die("poll", strerror(errno));
	if (pr <= 0)
		return;
	for (int i = 0; i < nf; i++) {
		if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !conn_read(conns[i], fns[i], B))
			die("the broker closed a connection (ACL refusal, takeover, or the broker died)",
			    i == 0 ? "mon-000" : NULL);
		if ((pfd[i].revents & POLLOUT) && !conn_flush(conns[i]))
			die("a connection broke while writing", NULL);
	}
}

/* ---- phase 1: stock -------------------------------------------------------------- */

static void stock_mint(bench *B, size_t per_collector)
{
	B->ph = PH_STOCK;
	size_t requests = (per_collector + IG_COINS_PER_REQUEST - 1) / IG_COINS_PER_REQUEST;
	double t0 = now_s();
	for (;;) {
		bool all = true;
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			while (c->mint_seq < requests && c->mints_in_flight < 4)
				send_mint(B, c);
			all = all && c->mint_seq == requests && c->mints_in_flight == 0;
		}
		if (all)
			break;
		if (now_s() - t0 > 60)
			die("minting the stock of coins took more than 60 s (see errors above)", NULL);
		if (B->errors)
			die("the bank refused a mint while making the stock (credit? see above)", NULL);
		pump(B, 20);
	}
	for (int i = 0; i < B->ncol; i++)
		if (B->col[i].ncoins != requests * IG_COINS_PER_REQUEST)
			die("a collector did not get all its stock coins", B->col[i].id);
	double s = now_s() - t0;
	printf("stock: %d collectors minted %zu coins each in %.2f s (%zu requests of 64; not timed)\n", B->ncol,
	       requests * IG_COINS_PER_REQUEST, s, requests);
}

static void make_payload(uint8_t *pt, size_t len, uint32_t collector, uint32_t msg)
{
	randombytes_buf(pt, len);
	ig_put_u32(pt, collector);
	ig_put_u32(pt + 4, msg);
}

/* Seals the stock: the routing pool first (collectors < route_pairs), then
 * one message per coin round-robin over the collectors until the coins or
 * the time budget run out. Returns us per seal. */
static double stock_seal(bench *B, double budget_s)
{
	uint8_t pt[MAX_PAYLOAD], hh[IG_HASH_BYTES];
	size_t per = 0;
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		size_t reserve = i < B->route_pairs ? ROUTE_POOL : 0;
		if (c->ncoins <= reserve)
			die("--stock is too small to leave coins after the routing pool", NULL);
		size_t n = c->ncoins - reserve;
		c->msgs = malloc(n * B->msg_len);
		c->sent_at = calloc(n, sizeof *c->sent_at);
		if (reserve)
			c->route_msgs = malloc(reserve * B->msg_len);
		if (!c->msgs || !c->sent_at || (reserve && !c->route_msgs))
			die("out of memory for the sealed messages", NULL);
		per = per > n ? per : n;
	}
	double t0 = now_s();
	uint64_t sealed = 0;
	for (int i = 0; i < B->route_pairs; i++) {
		collector *c = &B->col[i];
		for (size_t k = 0; k < ROUTE_POOL; k++) {
			make_payload(pt, B->payload_len, (uint32_t)c->idx, (uint32_t)k);
			int n = ig_data_seal(c->route_msgs + k * B->msg_len, B->msg_len, B->ch_pk, c->coins[c->ncoins - 1 - k],
			                     B->suite, c->id, c->route_topic, pt, B->payload_len, hh);
			if (n != (int)B->msg_len)
				die("ig_data_seal failed (routing pool)", NULL);
			sealed++;
		}
		c->nroute = ROUTE_POOL;
	}
	bool out_of_time = false;
	for (size_t k = 0; k < per && !out_of_time; k++) {
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			size_t reserve = i < B->route_pairs ? ROUTE_POOL : 0;
			if (k >= c->ncoins - reserve)
				continue;
			make_payload(pt, B->payload_len, (uint32_t)c->idx, (uint32_t)k);
			int n = ig_data_seal(c->msgs + k * B->msg_len, B->msg_len, B->ch_pk, c->coins[k], B->suite, c->id,
			                     c->topic, pt, B->payload_len, hh);
			if (n != (int)B->msg_len)
				die("ig_data_seal failed", NULL);
			c->nmsgs = k + 1;
			sealed++;
		}
		if ((k & 3) == 3 && now_s() - t0 > budget_s)
			out_of_time = true;
	}
	double s = now_s() - t0;
	bool all_sealed = true;
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		all_sealed = all_sealed && c->nmsgs == c->ncoins - (i < B->route_pairs ? ROUTE_POOL : 0);
		sodium_memzero(c->coins, c->ncoins * IG_COIN_BYTES);   /* sealed or left unspent: never reused */
		c->ncoins = 0;
	}
	double us = s / (double)sealed * 1e6;
	printf("stock: sealed %" PRIu64 " data messages (%zu-byte payload -> %zu bytes, suite %s) in %.2f s = %.1f us each "
	       "on the load generator%s\n", sealed, B->payload_len, B->msg_len, ig_suite_name(B->suite), s, us,
	       all_sealed ? "" : " (time budget reached: --seal-seconds; the other coins stay unspent)");
	printf("RESULT bank.seal_us %.1f\n", us);
	return us;
}

/* ---- phase 2/3: bank load ----------------------------------------------------- */

typedef struct bank_result {
	double secs, mint_rate, redeem_rate;
	uint64_t minted, redeemed;
	double cpu_us_per_coin, self_us_per_coin, busy;
	uint64_t cpu_ns;
	stats_snap s_begin, s_end;
	bool exhausted;
	uint64_t unfinished;
} bank_result;

static bank_result run_bank(bench *B, double warmup, double duration, bool data_on, bool mints_on, bool pace,
                            int mint_window, int broker_pid)
{
	bank_result res = {0};
	B->ph = PH_BANK;
	B->minted_counted = B->redeemed_counted = 0;
	B->redeem_lat.n = B->mint_lat.n = 0;
	/* Each collector refills at its own point of its 64-coin cycle; in step,
	 * they would all cross a refill together and the count of mints in the
	 * window would jump by 64 per collector with the window's phase. */
	for (int i = 0; i < B->ncol; i++) {
		B->col[i].coins_asked = B->col[i].published = 0;
		B->col[i].mint_lead = randombytes_uniform(IG_COINS_PER_REQUEST);
	}
	double t0 = now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = 0, t_stopped = 0;
	double stop_at = t_end + 2.5;
	uint64_t cpu0 = 0, self0 = 0, cpu_used = 0, self_used = 0, seen_at_count = 0;
	bool ended = false;
	for (;;) {
		double now = now_s();
		if (!B->counting && !ended && now >= t_count) {
			B->counting = true;
			t_counted = now;
			cpu0 = broker_pid ? process_cpu_ns(broker_pid) : 0;
			self0 = self_cpu_ns();
			seen_at_count = B->stats_seen;
		}
		if (B->counting && now >= t_end) {
			B->counting = false;
			ended = true;
			t_stopped = now;
			cpu_used = broker_pid ? process_cpu_ns(broker_pid) - cpu0 : 0;
			self_used = self_cpu_ns() - self0;
		}
		/* Two stats messages bracketing the loaded interval. */
		if (B->counting && !res.s_begin.have && B->stats_seen > seen_at_count)
			res.s_begin = B->last_stats;
		if (ended && res.s_begin.have && B->last_stats.received_at > t_end && B->last_stats.ts_ms > res.s_begin.ts_ms) {
			res.s_end = B->last_stats;
			break;
		}
		if (ended && now >= stop_at)
			break;
		bool more = false, any_left = false;
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			if (data_on) {
				while (c->data_out < (uint64_t)B->window && c->next_msg < c->nmsgs) {
					size_t k = c->next_msg++;
					conn_publish(&c->c, c->topic, c->msgs + k * B->msg_len, B->msg_len, B->qos);
					c->sent_at[k] = now;
					c->data_out++;
					c->published++;
					more = true;
				}
				any_left = any_left || c->next_msg < c->nmsgs;
			}
			if (mints_on)
				while (c->mints_in_flight < mint_window &&
				       (!pace || c->coins_asked <= c->published + c->mint_lead))
					send_mint(B, c);
		}
		if (data_on && !any_left && !ended) {
			/* Out of sealed messages: the window ends here. */
			if (!B->counting)
				die("the pre-sealed messages ran out during the warm-up; raise --stock or --seal-seconds", NULL);
			res.exhausted = true;
			B->counting = false;
			ended = true;
			t_stopped = now;
			t_end = now;
			stop_at = now + 2.5;
			cpu_used = broker_pid ? process_cpu_ns(broker_pid) - cpu0 : 0;
			self_used = self_cpu_ns() - self0;
		}
		pump(B, more ? 0 : 5);
	}
	/* Drain: everything asked for is answered (or given up after 5 s). */
	double drain_until = now_s() + 5.0;
	for (;;) {
		res.unfinished = 0;
		for (int i = 0; i < B->ncol; i++)
			res.unfinished += B->col[i].data_out + (uint64_t)B->col[i].mints_in_flight;
		if (!res.unfinished || now_s() > drain_until)
			break;
		pump(B, 10);
	}
	res.secs = t_stopped - t_counted;
	res.minted = B->minted_counted;
	res.redeemed = B->redeemed_counted;
	if (res.secs > 0) {
		res.mint_rate = (double)res.minted / res.secs;
		res.redeem_rate = (double)res.redeemed / res.secs;
		res.busy = (double)cpu_used / 1e9 / res.secs;
	}
	res.cpu_ns = cpu_used;
	if (res.minted + res.redeemed) {
		res.cpu_us_per_coin = (double)cpu_used / 1e3 / (double)(res.minted + res.redeemed);
		res.self_us_per_coin = (double)self_used / 1e3 / (double)(res.minted + res.redeemed);
	}
	return res;
}

/* ---- phase 4: routing, plaintext vs sealed --------------------------------------- */

typedef struct meter {
	int pid;
	double time[MODES];
	uint64_t cpu[MODES], self[MODES];
	double mark_t;
	uint64_t mark_cpu, mark_self;
} meter;

static void meter_charge(meter *m, int md, double now)
{
	uint64_t cpu = m->pid ? process_cpu_ns(m->pid) : 0, self = self_cpu_ns();
	if (md >= 0) {
		m->time[md] += now - m->mark_t;
		m->cpu[md] += cpu - m->mark_cpu;
		m->self[md] += self - m->mark_self;
	}
	m->mark_t = now;
	m->mark_cpu = cpu;
	m->mark_self = self;
}

typedef struct route_result {
	double rate[MODES], cpu_us[MODES], self_us[MODES];
	uint64_t sent, received, lost;
} route_result;

static uint64_t r_outstanding(const collector *c)
{
	return c->r_sent > c->r_received + c->r_written_off ? c->r_sent - c->r_received - c->r_written_off : 0;
}

static void route_fill(bench *B, collector *c, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		const uint8_t *src;
		size_t len;
		switch (B->send_mode) {
		case MODE_PLAIN:
			src = B->plain_pt, len = B->payload_len;
			break;
		case MODE_PADDED:
			src = B->padded_pt, len = B->msg_len;
			break;
		default:
			src = c->route_msgs + (c->route_next++ % c->nroute) * B->msg_len, len = B->msg_len;
			break;
		}
		conn_publish(&c->c, c->route_topic, src, len, B->qos);
		c->r_sent++;
	}
}

/* One round: MODES x duration of timed load in which the senders rotate
 * through the modes every `slice` seconds (a burst of load from elsewhere
 * hits every mode alike); received messages are counted by kind, time and
 * CPU by the slice they fall in. */
static route_result run_route_round(bench *B, double warmup, double duration, double slice, uint64_t wpc, int first,
                                    int pid)
{
	B->ph = PH_ROUTE;
	memset(B->r_received_mode, 0, sizeof B->r_received_mode);
	for (int i = 0; i < B->route_pairs; i++)
		B->col[i].r_sent = B->col[i].r_received = B->col[i].r_written_off = 0;
	double t0 = now_s(), t_count = t0 + warmup, t_end = t_count + MODES * duration;
	double slice_start = t0, last_progress = t0, stop_deadline = 0;
	bool counting = false, stopping = false;
	meter mt = {.pid = pid};
	uint64_t start[MODES] = {0}, last_total = 0;
	B->send_mode = (mode)first;
	for (;;) {
		double now = now_s();
		if (!counting && !stopping && now >= t_count) {
			counting = true;
			memcpy(start, B->r_received_mode, sizeof start);
			meter_charge(&mt, -1, now);
		}
		if (!stopping && now >= t_end) {
			meter_charge(&mt, (int)B->send_mode, now);
			counting = false;
			stopping = true;
			stop_deadline = now + 2.0;
		}
		if (!stopping && now - slice_start >= slice) {
			if (counting)
				meter_charge(&mt, (int)B->send_mode, now);
			B->send_mode = (mode)((B->send_mode + 1) % MODES);
			slice_start = now;
		}
		bool all_in = true;
		uint64_t total = 0;
		for (int i = 0; i < B->route_pairs; i++) {
			all_in = all_in && r_outstanding(&B->col[i]) == 0;
			total += B->col[i].r_received;
		}
		if (stopping && (all_in || now >= stop_deadline))
			break;
		if (total != last_total) {
			last_total = total;
			last_progress = now;
		} else if (!stopping && now - last_progress > 0.5) {
			for (int i = 0; i < B->route_pairs; i++)
				B->col[i].r_written_off += r_outstanding(&B->col[i]);
			last_progress = now;
		}
		bool can_send = false;
		if (!stopping)
			for (int i = 0; i < B->route_pairs; i++) {
				collector *c = &B->col[i];
				uint64_t out = r_outstanding(c);
				if (out >= wpc)
					continue;
				uint64_t room = wpc - out;
				route_fill(B, c, room < 32 ? room : 32);
				can_send = can_send || r_outstanding(c) < wpc;
			}
		pump(B, can_send ? 0 : 20);
	}
	route_result r = {0};
	for (int i = 0; i < B->route_pairs; i++) {
		r.sent += B->col[i].r_sent;
		r.received += B->col[i].r_received;
	}
	r.lost = r.sent > r.received ? r.sent - r.received : 0;
	for (int m = 0; m < MODES; m++) {
		uint64_t counted = B->r_received_mode[m] - start[m];
		r.rate[m] = mt.time[m] > 0 ? (double)counted / mt.time[m] : 0;
		if (counted) {
			r.cpu_us[m] = (double)mt.cpu[m] / 1e3 / (double)counted;
			r.self_us[m] = (double)mt.self[m] / 1e3 / (double)counted;
		}
	}
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double tmp[MAX_ROUNDS];
	memcpy(tmp, v, (size_t)n * sizeof *v);
	qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* What the coin crypto costs the clients (and the bank) per message, in a
 * tight loop on the load generator's core, with a throwaway bank key. */
static void crypto_cost(const bench *B)
{
	uint8_t bank_pk[IG_PK_BYTES], bank_sk[IG_SK_BYTES], coin[IG_COIN_BYTES], hh[IG_HASH_BYTES];
	uint8_t pt[MAX_PAYLOAD], msg[MSG_MAX], out[MAX_PAYLOAD], keys[64];
	const char *topic = "iotguard/bench/dev/dev-0000000/data/bank";
	crypto_sign_keypair(bank_pk, bank_sk);
	randombytes_buf(pt, sizeof pt);
	const int nseal = 400, nopen = 20000;
	int len = 0;
	double t0 = now_s();
	for (int i = 0; i < nseal; i++) {
		randombytes_buf(coin, sizeof coin);
		len = ig_data_seal(msg, sizeof msg, bank_pk, coin, B->suite, "dev-0000000", topic, pt, B->payload_len, hh);
		if (len <= 0)
			die("ig_data_seal failed", NULL);
	}
	double seal_us = (now_s() - t0) / nseal * 1e6;
	/* The bank's side of a redeem: open the header (X25519), derive the keys. */
	const uint8_t *hdr, *nonce, *ct;
	size_t hlen, ctlen;
	ig_suite suite;
	if (ig_data_parse(msg, (size_t)len, &hdr, &hlen, &suite, &nonce, &ct, &ctlen) != IG_OK)
		die("ig_data_parse failed on our own message", NULL);
	ig_coin_header h;
	t0 = now_s();
	for (int i = 0; i < nseal; i++) {
		if (ig_coin_header_open(&h, hdr, hlen, bank_sk) != IG_OK)
			die("ig_coin_header_open failed on our own header", NULL);
		ig_coin_keys(h.coin, keys, keys + 32);
	}
	double bank_us = (now_s() - t0) / nseal * 1e6;
	/* The analyst's side once the bank answered: open the message. */
	t0 = now_s();
	for (int i = 0; i < nopen; i++)
		if (ig_data_open_redeemed(out, sizeof out, msg, (size_t)len, topic, keys, h.nonce) != (int)B->payload_len)
			die("ig_data_open_redeemed failed on our own message", NULL);
	double open_us = (now_s() - t0) / nopen * 1e6;
	printf("client crypto per message (%zu-byte payload, %s, tight loop on the load generator): collector seal "
	       "(ig_data_seal) %.1f us, analyst open (ig_data_open_redeemed) %.2f us, seal + open %.1f us; "
	       "the bank's header open + key derivation %.1f us (broker side, per redeem)\n",
	       B->payload_len, ig_suite_name(B->suite), seal_us, open_us, seal_us + open_us, bank_us);
	printf("RESULT bank.crypto.seal_us %.1f\nRESULT bank.crypto.open_us %.2f\nRESULT bank.crypto.seal_open_us %.1f\n"
	       "RESULT bank.crypto.bank_open_us %.1f\n", seal_us, open_us, seal_us + open_us, bank_us);
	sodium_memzero(bank_sk, sizeof bank_sk);
	sodium_memzero(&h, sizeof h);
	sodium_memzero(keys, sizeof keys);
}

/* ---- run --------------------------------------------------------------------------- */

typedef struct run_opts {
	int pid, rounds;
	size_t stock;
	double seal_budget, duration, warmup, mint_probe, route_duration, slice, goal;
	uint64_t route_window;
} run_opts;

static void print_stats_window(const char *label, const stats_snap *sb, const stats_snap *se)
{
	if (!sb->have || !se->have || se->ts_ms <= sb->ts_ms || sb->minted < 0) {
		printf("%s: plugin stats: none bracketing the window (run the broker with plugin_opt_stats_interval 1)\n",
		       label);
		return;
	}
	double dt = (se->ts_ms - sb->ts_ms) / 1000.0;
	double recs = se->height - sb->height, batches = se->batches - sb->batches;
	printf("%s: plugin stats over %.1f s: minted %.0f coins/s, redeemed %.0f/s, refused %.0f; ledger +%.0f records in "
	       "%.0f fdatasyncs (%.1f records/fsync)\n",
	       label, dt, (se->minted - sb->minted) / dt, (se->redeemed - sb->redeemed) / dt,
	       se->refused_total - sb->refused_total, recs, batches, batches > 0 ? recs / batches : 0);
	printf("%s: ledger commit latency (submit -> durable, plugin stats): last %.0f us, avg %.0f us, max %.0f us\n",
	       label, se->commit_last, se->commit_avg, se->commit_max);
}

static int cmd_run(bench *B, const run_opts *o)
{
	B->ph = PH_SETUP;
	B->router.fd = -1;
	B->col = calloc((size_t)B->ncol, sizeof *B->col);
	B->ana = calloc((size_t)B->nana, sizeof *B->ana);
	B->pfd = calloc((size_t)(2 + B->ncol + B->nana), sizeof *B->pfd);
	B->redeem_lat.v = malloc(MAX_LATENCIES * sizeof(float));
	B->mint_lat.v = malloc(MAX_LATENCIES * sizeof(float));
	if (!B->col || !B->ana || !B->pfd || !B->redeem_lat.v || !B->mint_lat.v)
		die("out of memory", NULL);
	B->suite = ig_suite_preferred();

	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_token(tok, sizeof tok, B->cluster, "mon-000");
	conn_open(&B->mon, B->port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B->cluster);
	conn_subscribe(&B->mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/stats", B->cluster);
	conn_subscribe(&B->mon, topic, 0);
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		c->idx = i;
		collector_id(c->id, sizeof c->id, i);
		snprintf(c->ch_topic, sizeof c->ch_topic, "iotguard/%s/ch/%s", B->cluster, c->id);
		c->topic_len = (size_t)snprintf(c->topic, sizeof c->topic, "iotguard/%s/dev/%s/data/bank", B->cluster, c->id);
		c->route_topic_len =
			(size_t)snprintf(c->route_topic, sizeof c->route_topic, "iotguard/%s/dev/%s/data/route", B->cluster, c->id);
		bench_token(tok, sizeof tok, B->cluster, c->id);
		conn_open(&c->c, B->port, c->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B->cluster, c->id);
		conn_subscribe(&c->c, topic, 1);
	}
	int per_analyst = (B->ncol + B->nana - 1) / B->nana;
	for (int i = 0; i < B->nana; i++) {
		analyst *a = &B->ana[i];
		analyst_id(a->id, sizeof a->id, i);
		snprintf(a->ch_topic, sizeof a->ch_topic, "iotguard/%s/ch/%s", B->cluster, a->id);
		bench_token(tok, sizeof tok, B->cluster, a->id);
		conn_open(&a->c, B->port, a->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B->cluster, a->id);
		conn_subscribe(&a->c, topic, 1);
		a->want_subacks = 1;
		/* Collectors are split between the analysts; each subscribes to its
		 * collectors' bank stream (a filter inside the analyst policy's
		 * iotguard/C/dev/+/data/+). */
		for (int c = i; c < B->ncol; c += B->nana) {
			snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/data/bank", B->cluster, B->col[c].id);
			conn_subscribe(&a->c, topic, B->qos);
			a->want_subacks++;
		}
		a->cap = per_analyst * B->window + 8;
		a->p = calloc((size_t)a->cap, sizeof *a->p);
		a->free_slots = calloc((size_t)a->cap, sizeof *a->free_slots);
		if (!a->p || !a->free_slots)
			die("out of memory", NULL);
		for (int s = a->cap - 1; s >= 0; s--)
			a->free_slots[a->nfree++] = s;
	}
	double t_setup = now_s();
	for (;;) {
		bool ready = B->have_ch_pk && B->mon_subacks >= 2;
		for (int i = 0; i < B->ncol; i++)
			ready = ready && B->col[i].subscribed;
		for (int i = 0; i < B->nana; i++)
			ready = ready && B->ana[i].subacks >= B->ana[i].want_subacks;
		if (ready)
			break;
		if (now_s() - t_setup > 10)
			die("subscriptions or the retained ledger head (ch_pubkey) did not arrive within 10 s", NULL);
		pump(B, 50);
	}
	for (int i = 0; i < B->ncol + B->nana; i++) {
		const char *id = i < B->ncol ? B->col[i].id : B->ana[i - B->ncol].id;
		ig_box_key *bk = i < B->ncol ? &B->col[i].bk : &B->ana[i - B->ncol].bk;
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_keypair(id, pk, sk);
		if (ig_box_key_for_ch(bk, sk, B->ch_pk) != IG_OK)
			die("X25519 box key failed", id);
		sodium_memzero(sk, sizeof sk);
	}
	uint8_t probe[MSG_MAX], hh[IG_HASH_BYTES], coin[IG_COIN_BYTES] = {0}, pt[MAX_PAYLOAD] = {0};
	int ml = ig_data_seal(probe, sizeof probe, B->ch_pk, coin, B->suite, B->col[0].id, B->col[0].topic, pt,
	                      B->payload_len, hh);
	if (ml <= 0)
		die("ig_data_seal failed (suite or cluster-head key unusable?)", NULL);
	B->msg_len = (size_t)ml;

	printf("== bench_bank: %d collectors, %d analysts, %zu-byte payloads (%zu bytes sealed, %s), data QoS %d, "
	       "%d data messages in flight per collector, %.1f s (+%.1f s warm-up) ==\n",
	       B->ncol, B->nana, B->payload_len, B->msg_len, ig_suite_name(B->suite), B->qos, B->window, o->duration,
	       o->warmup);
	printf("a mint counts 64 coins once the collector opened its coins box; a redeem counts once the analyst opened\n"
	       "the redeemed box and decrypted the data message with it. The plugin sends both boxes only after the\n"
	       "COIN_MINT / COIN_REDEEM record is fdatasync'd, so every counted coin is durable.\n");
	fflush(stdout);

	/* 1. stock */
	stock_mint(B, o->stock);
	double seal_us = stock_seal(B, o->seal_budget);
	fflush(stdout);

	/* 2. bank: mints paced by spending + redeems of every message */
	bank_result r = run_bank(B, o->warmup, o->duration, true, true, true, 2, o->pid);
	double total = r.mint_rate + r.redeem_rate;
	printf("-- bank, mints paced by spending (a wallet refill of 64 whenever 64 were spent) --\n");
	printf("mints: %" PRIu64 " coins in %.2f s = %.0f coins/s; redeems: %" PRIu64 " = %.0f coins/s\n", r.minted, r.secs,
	       r.mint_rate, r.redeemed, r.redeem_rate);
	printf("durable mints + redeems: %.0f coins/s   (target >= %.0f: %s)\n", total, o->goal,
	       total >= o->goal ? "PASS" : "MISS");
	if (r.exhausted)
		printf("note: the pre-sealed messages ran out before the end of the window; the window was cut to %.2f s "
		       "(raise --stock / --seal-seconds)\n", r.secs);
	double p50, p99, mx;
	if (lat_summary(&B->redeem_lat, &p50, &p99, &mx))
		printf("data publish -> redeemed and decrypted: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, mx);
	printf("RESULT bank.redeem_p50_ms %.2f\n", B->redeem_lat.n ? p50 : 0.0);
	if (lat_summary(&B->mint_lat, &p50, &p99, &mx))
		printf("mint request -> coins box opened: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, mx);
	if (o->pid && r.minted + r.redeemed)
		printf("broker CPU per coin (mint or redeem, all broker threads): %.1f us; broker busy %.0f%% of one core\n",
		       r.cpu_us_per_coin, r.busy * 100);
	printf("load generator CPU per coin: %.1f us (sealing excluded: %.1f us per message before timing)\n",
	       r.self_us_per_coin, seal_us);
	print_stats_window("bank", &r.s_begin, &r.s_end);
	printf("RESULT bank.mints_per_s %.0f\nRESULT bank.redeems_per_s %.0f\nRESULT bank.coins_per_s %.0f\n", r.mint_rate,
	       r.redeem_rate, total);
	if (o->pid)
		printf("RESULT bank.cpu_us_per_coin %.1f\nRESULT bank.busy %.2f\n", r.cpu_us_per_coin, r.busy);
	if (r.s_begin.have && r.s_end.have && r.s_end.ts_ms > r.s_begin.ts_ms)
		printf("RESULT bank.commit_avg_us %.0f\nRESULT bank.commit_max_us %.0f\nRESULT bank.commit_last_us %.0f\n",
		       r.s_end.commit_avg, r.s_end.commit_max, r.s_end.commit_last);
	fflush(stdout);

	/* 3. mint only */
	if (o->mint_probe > 0) {
		bank_result mo = run_bank(B, 0.3, o->mint_probe, false, true, false, 2, o->pid);
		printf("-- mint only (2 requests of 64 in flight per collector, %.1f s) --\n", o->mint_probe);
		printf("mints: %.0f coins/s", mo.mint_rate);
		if (o->pid && mo.minted)
			printf("; broker CPU %.2f us per minted coin (%.0f us per request of 64); broker busy %.0f%%",
			       mo.cpu_us_per_coin, mo.cpu_us_per_coin * IG_COINS_PER_REQUEST, mo.busy * 100);
		printf("\n");
		printf("RESULT bank.mint_only_per_s %.0f\n", mo.mint_rate);
		if (o->pid && mo.minted) {
			printf("RESULT bank.mint_cpu_us %.2f\n", mo.cpu_us_per_coin);
			/* What is left of the mixed run's broker CPU, per redeem. */
			if (r.redeemed) {
				double redeem_us = ((double)r.cpu_ns / 1e3 - mo.cpu_us_per_coin * (double)r.minted) / (double)r.redeemed;
				printf("so a redeem costs the broker about %.0f us (mixed run's CPU minus its mints at the mint-only "
				       "cost), i.e. at most %.0f redeems/s on one full core\n", redeem_us, 1e6 / redeem_us);
				printf("RESULT bank.redeem_cpu_us %.0f\n", redeem_us);
			}
		}
		fflush(stdout);
	}

	/* 4. routing: plaintext vs sealed data through the broker to a monitor */
	uint64_t total_unfinished = r.unfinished;
	if (o->rounds > 0 && B->route_pairs > 0) {
		bench_token(tok, sizeof tok, B->cluster, "mon-001");
		conn_open(&B->router, B->port, "mon-001", tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/+/data/+", B->cluster);
		conn_subscribe(&B->router, topic, B->qos);
		double t = now_s();
		while (B->router_subacks < 1 && now_s() - t < 5)
			pump(B, 20);
		if (B->router_subacks < 1)
			die("mon-001's subscription was not acknowledged", NULL);
		randombytes_buf(B->plain_pt, sizeof B->plain_pt);
		randombytes_buf(B->padded_pt, sizeof B->padded_pt);
		B->plain_pt[0] = B->padded_pt[0] = 'p';    /* never the data magic */
		uint64_t wpc = o->route_window / (uint64_t)B->route_pairs;
		printf("-- routing: %d collectors -> 1 monitor on iotguard/%s/dev/+/data/+, QoS %d, window %" PRIu64
		       " per collector, %d rounds x %.1f s per mode (modes rotate every %.2f s) --\n",
		       B->route_pairs, B->cluster, B->qos, wpc, o->rounds, o->route_duration, o->slice);
		crypto_cost(B);
		double rate[MODES][MAX_ROUNDS], cpu[MODES][MAX_ROUNDS], ratio[MAX_ROUNDS], ratio_pad[MAX_ROUNDS];
		uint64_t lost = 0;
		for (int rd = 0; rd < o->rounds; rd++) {
			route_result rr = run_route_round(B, 0.3, o->route_duration, o->slice, wpc, rd % MODES, o->pid);
			for (int m = 0; m < MODES; m++) {
				rate[m][rd] = rr.rate[m];
				cpu[m][rd] = rr.cpu_us[m];
			}
			ratio[rd] = rr.rate[MODE_PLAIN] > 0 ? rr.rate[MODE_SEALED] / rr.rate[MODE_PLAIN] : 0;
			ratio_pad[rd] = rr.rate[MODE_PADDED] > 0 ? rr.rate[MODE_SEALED] / rr.rate[MODE_PADDED] : 0;
			lost += rr.lost;
			printf("round %d  plaintext %7.0f msg/s, padded %7.0f, sealed %7.0f (ratio %.3f)  broker CPU us/msg "
			       "%5.1f / %5.1f / %5.1f  (sent %" PRIu64 ", received %" PRIu64 ")\n",
			       rd + 1, rr.rate[MODE_PLAIN], rr.rate[MODE_PADDED], rr.rate[MODE_SEALED], ratio[rd],
			       rr.cpu_us[MODE_PLAIN], rr.cpu_us[MODE_PADDED], rr.cpu_us[MODE_SEALED], rr.sent, rr.received);
			fflush(stdout);
		}
		printf("-- median of %d rounds --\n", o->rounds);
		for (int m = 0; m < MODES; m++)
			printf("%-17s %8.0f msg/s  broker CPU %5.1f us/msg  (%zu bytes)\n", mode_names[m], median(rate[m], o->rounds),
			       median(cpu[m], o->rounds), m == MODE_PLAIN ? B->payload_len : B->msg_len);
		double rt = median(ratio, o->rounds), rp = median(ratio_pad, o->rounds);
		double cp = median(cpu[MODE_PLAIN], o->rounds), cs = median(cpu[MODE_SEALED], o->rounds);
		printf("ratio coin-sealed/plaintext = %.3f msg/s (median of per-round ratios); against plaintext of the same "
		       "wire size %.3f; broker CPU ratio %.3f; lost %" PRIu64 "\n", rt, rp, cs > 0 ? cp / cs : 0, lost);
		printf("RESULT bank.route.plain_rate %.0f\nRESULT bank.route.sealed_rate %.0f\nRESULT bank.route.padded_rate %.0f\n"
		       "RESULT bank.route.ratio %.3f\nRESULT bank.route.ratio_padded %.3f\n",
		       median(rate[MODE_PLAIN], o->rounds), median(rate[MODE_SEALED], o->rounds),
		       median(rate[MODE_PADDED], o->rounds), rt, rp);
		if (cs > 0)
			printf("RESULT bank.route.capacity %.3f\n", cp / cs);
		conn_close(&B->router);
		B->router.fd = -1;
	}

	printf("total: %" PRIu64 " coins minted, %" PRIu64 " redeemed and decrypted, %" PRIu64 " redeem requests; errors %"
	       PRIu64, B->coins_received, B->redeems_done, B->redeems_sent, B->errors);
	for (int i = 0; i < B->nerror_codes; i++)
		printf("%s%s=%" PRIu64, i ? ", " : " (", B->error_codes[i], B->error_count[i]);
	printf("%s; bad boxes %" PRIu64 ", bad data %" PRIu64 ", unmatched replies %" PRIu64 ", unfinished %" PRIu64 "\n",
	       B->nerror_codes ? ")" : "", B->bad_boxes, B->bad_data, B->unmatched, total_unfinished);
	uint64_t failures = B->errors + B->bad_boxes + B->bad_data + B->unmatched + total_unfinished;
	printf("RESULT bank.failures %" PRIu64 "\n", failures);
	fflush(stdout);

	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		conn_close(&c->c);
		free(c->coins);
		free(c->msgs);
		free(c->sent_at);
		free(c->route_msgs);
	}
	for (int i = 0; i < B->nana; i++) {
		conn_close(&B->ana[i].c);
		sodium_memzero(B->ana[i].p, (size_t)B->ana[i].cap * sizeof *B->ana[i].p);
		free(B->ana[i].p);
		free(B->ana[i].free_slots);
	}
	conn_close(&B->mon);
	free(B->col);
	free(B->ana);
	free(B->pfd);
	free(B->redeem_lat.v);
	free(B->mint_lat.v);
	return B->bad_boxes || B->bad_data ? 1 : 0;
}

/* ---- rss: memory per outstanding coin ---------------------------------------------- */

static void pin_to(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, BENCH_NAME ": could not pin to cpu %d: %s (going on unpinned)\n", cpu, strerror(errno));
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#define RSS_COLLECTORS 100

/* Identities + credit, and `coins` minted coins in records of 64 spread over
 * the collectors. Returns seconds. */
static double build_bank_ledger(const char *dir, const char *cluster, uint64_t coins)
{
	double t0 = now_s();
	builder b;
	build_begin(&b, dir, cluster);
	uint64_t per = coins / RSS_COLLECTORS + IG_COINS_PER_REQUEST;
	build_identities(&b, RSS_COLLECTORS, 1, 1, per);
	static ig_mint_rec mint;
	static uint8_t body[IG_COINS_PER_REQUEST * (IG_HASH_BYTES + 4) + 512];
	uint64_t expires = ig_now_ms() / 1000 + 365u * 86400u, seed = ig_now_ms();
	for (uint64_t i = 0, r = 0; i < coins; r++) {
		memset(&mint, 0, sizeof mint);
		collector_id(mint.owner, sizeof mint.owner, (int)(r % RSS_COLLECTORS));
		mint.expires_at = expires;
		mint.count = (uint32_t)(coins - i < IG_COINS_PER_REQUEST ? coins - i : IG_COINS_PER_REQUEST);
		for (uint32_t k = 0; k < mint.count; k++, i++)
			for (int w = 0; w < 4; w++) {
				uint64_t v = splitmix(seed + i * 4 + (uint64_t)w);
				memcpy(mint.hashes[k] + 8 * w, &v, 8);
			}
		build_submit(&b, IG_REC_COIN_MINT, body, ig_mint_encode(body, sizeof body, &mint));
	}
	build_end(&b);
	return now_s() - t0;
}

static const char *run_as_user(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_name : "root";
}

static void remove_dir(const char *dir)
{
	static const char *const files[] = {IG_LEDGER_LOG, IG_LEDGER_CHECKPOINT, IG_LEDGER_KEY, IG_LEDGER_LOCK};
	char path[4200];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

typedef struct start_result {
	double start_s;
	long loaded_ms, rss_kb, anon_kb, hwm_kb;
} start_result;

static long parse_loaded_ms(const char *log_path)
{
	FILE *f = fopen(log_path, "r");
	if (!f)
		return -1;
	char line[2048];
	long ms = -1;
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "loaded in ");
		if (p && strstr(p, " ms"))
			ms = strtol(p + 10, NULL, 10);
	}
	fclose(f);
	return ms;
}

/* Starts mosquitto with the plugin on ledger_dir, waits for an authenticated
 * connect of dev-0000000, reads its memory 300 ms later, stops it. */
static start_result measure_broker(const char *work, const char *tag, const char *plugin, const char *ledger_dir,
                                   const char *cluster, int port, int broker_cpu)
{
	char conf_path[4200], log_path[4200], conf[8192];
	snprintf(conf_path, sizeof conf_path, "%s/bank-%s.conf", work, tag);
	snprintf(log_path, sizeof log_path, "%s/bank-%s.log", work, tag);
	snprintf(conf, sizeof conf,
	         "per_listener_settings false\nallow_anonymous false\nlistener %d 127.0.0.1\n"
	         "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
	         "user %s\nplugin %s\nplugin_opt_ledger %s\nplugin_opt_stats_interval 0\n",
	         port, run_as_user(), plugin, ledger_dir);
	FILE *cf = fopen(conf_path, "w");
	if (!cf || fputs(conf, cf) < 0 || fclose(cf) != 0)
		die("writing the broker config failed", conf_path);
	char tok[IG_TOKEN_TEXT_MAX];
	bench_token(tok, sizeof tok, cluster, "dev-0000000");
	start_result r = {.loaded_ms = -1};
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		pin_to(broker_cpu);
		if (!freopen(log_path, "w", stderr))
			_exit(127);
		execlp("mosquitto", "mosquitto", "-c", conf_path, (char *)NULL);
		fprintf(stderr, "exec mosquitto: %s\n", strerror(errno));
		_exit(127);
	}
	bool ok = false;
	while (now_s() - t0 < 120) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			die("mosquitto exited during start; see its log", log_path);
		conn c;
		int connack = -1, rc = conn_try_open(&c, port, "dev-0000000", tok, &connack);
		if (rc == 0) {
			conn_close(&c);
			ok = true;
			break;
		}
		usleep(rc == 1 ? 2000 : 20000);
	}
	r.start_s = now_s() - t0;
	if (!ok) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		die("no authenticated connect within 120 s; see the broker log", log_path);
	}
	usleep(300000);
	r.rss_kb = proc_status_kb(pid, "VmRSS");
	r.anon_kb = proc_status_kb(pid, "RssAnon");
	r.hwm_kb = proc_status_kb(pid, "VmHWM");
	kill(pid, SIGTERM);
	double tk = now_s();
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_s() - tk > 30) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	r.loaded_ms = parse_loaded_ms(log_path);
	return r;
}

static int cmd_rss(const char *plugin, const char *work, uint64_t coins, int port, int broker_cpu, int client_cpu)
{
	const char *cluster = "bench";
	char big[4096], empty[4096], log_path[4200];
	snprintf(big, sizeof big, "%s/ledger-bank-big", work);
	snprintf(empty, sizeof empty, "%s/ledger-bank-empty", work);
	remove_dir(big);
	remove_dir(empty);
	pin_to(client_cpu);
	printf("== bench_bank rss: broker memory per outstanding coin, %" PRIu64 " coins ==\n", coins);
	fflush(stdout);
	double build_s = build_bank_ledger(big, cluster, coins);
	snprintf(log_path, sizeof log_path, "%s/" IG_LEDGER_LOG, big);
	long bytes = file_size(log_path);
	printf("built a ledger with %" PRIu64 " minted coins (%" PRIu64 " coin_mint records of 64, %d collectors) through "
	       "lib in %.1f s; ledger.log %.0f MB\n", coins, (coins + 63) / 64, RSS_COLLECTORS, build_s, (double)bytes / 1e6);
	build_bank_ledger(empty, cluster, 0);
	fflush(stdout);
	start_result e = measure_broker(work, "empty", plugin, empty, cluster, port, broker_cpu);
	start_result b = measure_broker(work, "big", plugin, big, cluster, port, broker_cpu);
	printf("empty bank:      start %.2f s, plugin 'loaded in' %ld ms, VmRSS %ld kB (anon %ld), VmHWM %ld kB\n",
	       e.start_s, e.loaded_ms, e.rss_kb, e.anon_kb, e.hwm_kb);
	printf("%" PRIu64 " coins: start %.2f s, plugin 'loaded in' %ld ms, VmRSS %ld kB (anon %ld), VmHWM %ld kB\n", coins,
	       b.start_s, b.loaded_ms, b.rss_kb, b.anon_kb, b.hwm_kb);
	double per = (double)(b.rss_kb - e.rss_kb) * 1024.0 / (double)coins;
	double per_anon = (double)(b.anon_kb - e.anon_kb) * 1024.0 / (double)coins;
	double per_hwm = (double)(b.hwm_kb - e.hwm_kb) * 1024.0 / (double)coins;
	printf("broker RSS per outstanding coin: %.1f bytes (VmRSS difference / coins; anon only %.1f; peak VmHWM %.1f)   "
	       "(target <= 48: %s)\n", per, per_anon, per_hwm, per <= 48 ? "PASS" : "MISS");
	printf("RESULT bank.rss_per_coin_bytes %.1f\nRESULT bank.hwm_per_coin_bytes %.1f\nRESULT bank.rss_start_s %.2f\n"
	       "RESULT bank.rss_loaded_ms %ld\nRESULT bank.rss_build_s %.1f\nRESULT bank.rss_coins %" PRIu64 "\n",
	       per, per_hwm, b.start_s, b.loaded_ms, build_s, coins);
	fflush(stdout);
	remove_dir(big);
	remove_dir(empty);
	return 0;
}

/* ---- arguments ---------------------------------------------------------------------- */

static const char usage[] =
	"usage:\n"
	"  bench_bank mkledger --dir D --cluster C [--collectors 100] [--analysts 4] [--monitors 2] [--credit 100000000]\n"
	"  bench_bank run --port P [--cluster C] [--collectors 100] [--analysts 4] [--stock 512] [--seal-seconds 12]\n"
	"                 [--window 8] [--duration 5] [--warmup 1] [--mint-probe 1.5] [--payload 64] [--qos 0|1]\n"
	"                 [--route-pairs 8] [--route-window 2000] [--rounds 3] [--route-duration 1.5] [--slice 0.5]\n"
	"                 [--pid BROKER_PID] [--goal 10000]\n"
	"  bench_bank rss --plugin SO --work DIR [--coins 10000000] [--port P] [--broker-cpu N] [--client-cpu N]\n";

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return def;
}

static double arg_num(int argc, char **argv, const char *name, double def)
{
	const char *v = arg(argc, argv, name, NULL);
	if (!v)
		return def;
	char *end = NULL;
	double x = strtod(v, &end);
	if (!end || *end || end == v)
		die("a number is needed after", name);
	return x;
}

int main(int argc, char **argv)
{
	lg_name = BENCH_NAME;
	if (argc < 2 || (argc % 2) != 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (ig_init() != IG_OK)
		die("libsodium failed to initialise", NULL);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "mkledger")) {
		const char *dir = arg(argc, argv, "--dir", NULL), *cluster = arg(argc, argv, "--cluster", NULL);
		int ncol = (int)arg_num(argc, argv, "--collectors", 100), nana = (int)arg_num(argc, argv, "--analysts", 4);
		int nmon = (int)arg_num(argc, argv, "--monitors", 2);
		double credit = arg_num(argc, argv, "--credit", 100000000);
		if (!dir || !cluster || ncol < 1 || ncol > MAX_COLLECTORS || nana < 0 || nana > MAX_ANALYSTS || nmon < 0 ||
		    nmon > 999 || credit < 1)
			die("mkledger needs --dir and --cluster; 1 <= collectors <= 1000, 0 <= analysts <= 64, credit >= 1", NULL);
		double t0 = now_s();
		builder b;
		build_begin(&b, dir, cluster);
		build_identities(&b, ncol, nana, nmon, (uint64_t)credit);
		build_end(&b);
		fprintf(stderr, BENCH_NAME ": ledger %s: %d collectors with %.0f credit each, %d analysts, %d monitors in %.2f s\n",
		        dir, ncol, credit, nana, nmon, now_s() - t0);
		return 0;
	}
	if (!strcmp(cmd, "rss")) {
		const char *plugin = arg(argc, argv, "--plugin", NULL), *work = arg(argc, argv, "--work", NULL);
		double coins = arg_num(argc, argv, "--coins", 10000000);
		if (!plugin || !work || coins < 64 || coins > 1e9)
			die("rss needs --plugin and --work; 64 <= coins <= 1e9", NULL);
		mkdir(work, 0700);
		return cmd_rss(plugin, work, (uint64_t)coins, (int)arg_num(argc, argv, "--port", 18899),
		               (int)arg_num(argc, argv, "--broker-cpu", -1), (int)arg_num(argc, argv, "--client-cpu", -1));
	}
	if (!strcmp(cmd, "run")) {
		bench B = {.cluster = arg(argc, argv, "--cluster", "bench")};
		run_opts o = {0};
		B.port = (int)arg_num(argc, argv, "--port", 0);
		B.ncol = (int)arg_num(argc, argv, "--collectors", 100);
		B.nana = (int)arg_num(argc, argv, "--analysts", 4);
		B.window = (int)arg_num(argc, argv, "--window", 8);
		B.qos = (int)arg_num(argc, argv, "--qos", 1);
		B.payload_len = (size_t)arg_num(argc, argv, "--payload", 64);
		B.route_pairs = (int)arg_num(argc, argv, "--route-pairs", 8);
		o.stock = (size_t)arg_num(argc, argv, "--stock", 512);
		o.seal_budget = arg_num(argc, argv, "--seal-seconds", 12);
		o.duration = arg_num(argc, argv, "--duration", 5);
		o.warmup = arg_num(argc, argv, "--warmup", 1);
		o.mint_probe = arg_num(argc, argv, "--mint-probe", 1.5);
		o.route_window = (uint64_t)arg_num(argc, argv, "--route-window", 2000);
		o.rounds = (int)arg_num(argc, argv, "--rounds", 3);
		o.route_duration = arg_num(argc, argv, "--route-duration", 1.5);
		o.slice = arg_num(argc, argv, "--slice", 0.5);
		o.pid = (int)arg_num(argc, argv, "--pid", 0);
		o.goal = arg_num(argc, argv, "--goal", 10000);
		if (B.port <= 0 || B.ncol < 1 || B.ncol > MAX_COLLECTORS || B.nana < 1 || B.nana > MAX_ANALYSTS ||
		    B.window < 1 || B.window > 256 || (B.qos != 0 && B.qos != 1) || B.payload_len < 8 ||
		    B.payload_len > MAX_PAYLOAD || B.route_pairs < 0 || B.route_pairs > B.ncol || o.stock < 64 ||
		    o.stock > 100000 || o.seal_budget <= 0 || o.duration <= 0 || o.duration > 60 || o.warmup < 0 ||
		    o.mint_probe < 0 || o.rounds < 0 || o.rounds > MAX_ROUNDS || o.route_duration <= 0 || o.slice < 0.05 ||
		    (B.route_pairs && o.route_window < (uint64_t)B.route_pairs))
			die("need --port; 1 <= collectors <= 1000, 1 <= analysts <= 64, 1 <= window <= 256, qos 0|1, "
			    "8 <= payload <= 1024, route-pairs <= collectors, 64 <= stock <= 100000, 0 < duration <= 60", NULL);
		if (B.route_pairs && o.stock < ROUTE_POOL + 64)
			die("--stock must be at least 128 when --route-pairs > 0 (64 coins go to the routing pool)", NULL);
		return cmd_run(&B, &o);
	}
	fputs(usage, stderr);
	return 2;
}
