/*
 * clients.c: the clients of a bench_bank run: collectors that mint and
 * publish sealed data, analysts that redeem it, mon-000 (ledger head and
 * plugin stats) and, for routing, mon-001; what each does with a packet;
 * and the poll loop that drives them all.
 *
 * Why this exists: the load and routing phases (load.c, route.c) differ in
 * what they send, not in how replies are checked: a coin or a redeemed key
 * counts only once its box opened and the data decrypted, the same way in
 * every phase.
 */
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bank.h"
#include "ig_token.h"

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

void bank_send_mint(bench *B, collector *c)
{
	char json[128];
	uint64_t seq = ++c->mint_seq;
	int n = snprintf(json, sizeof json, "{\"type\":\"mint\",\"count\":%d,\"nonce\":\"m%" PRIu64 "\"}",
	                 IG_COINS_PER_REQUEST, seq);
	bench_conn_publish(&c->c, c->ch_topic, json, (size_t)n, 1);
	c->mint_sent_at[seq % MINT_RING] = bench_now_s();
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
	double now = bench_now_s();
	B->coins_received += k;
	if (B->counting) {
		B->minted_counted += k;
		bench_stats_lat_add_ms(&B->mint_lat, 1000.0 * (now - c->mint_sent_at[seq % MINT_RING]));
	}
	if (B->ph == PH_STOCK) {
		if (c->ncoins + k > c->coins_cap) {
			size_t cap = c->coins_cap ? c->coins_cap * 2 : 1024;
			while (cap < c->ncoins + k)
				cap *= 2;
			c->coins = bench_xrealloc(c->coins, cap * IG_COIN_BYTES);
			c->coins_cap = cap;
		}
		memcpy(c->coins[c->ncoins], plain, (size_t)n);
		c->ncoins += k;
	}
	sodium_memzero(plain, sizeof plain);
}

static void on_collector_packet(void *ctx, bench_conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	collector *c = (collector *)((char *)cn - offsetof(collector, c));
	bench_conn_msg msg;
	if (!bench_conn_take_publish(cn, type, body, len, c->id, &c->subacks, &msg))
		return;
	cJSON *m = cJSON_ParseWithLength((const char *)msg.payload, msg.plen);
	const char *t = m ? jstr(m, "type") : NULL;
	if (t && !strcmp(t, "coins")) {
		on_coins(B, c, m);
	} else {
		const char *e = m ? jstr(m, "error") : NULL;
		bench_stats_codes_add(&B->errors, e ? e : "unparsable");
		if (e && jstr(m, "nonce") && jstr(m, "nonce")[0] == 'm')
			c->mints_in_flight--;
		if (B->errors.total <= 3)
			fprintf(stderr, BENCH_NAME ": %s: inbox: %.*s\n", c->id, (int)(msg.plen < 300 ? msg.plen : 300),
			        (const char *)msg.payload);
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
	if (ci < 0 || len > MSG_MAX ||
	    ig_coin_data_parse(msg, len, &hdr, &hlen, &suite, &nonce, &ct, &ctlen) != IG_OK) {
		B->bad_data++;
		return;
	}
	if (hlen > IG_COIN_HEADER_SEALED_MAX) {
		B->bad_data++;
		return;
	}
	if (!a->nfree)
		bench_die("an analyst has more redeems in flight than its table holds", a->id);
	int s = a->free_slots[--a->nfree];
	pending *p = &a->p[s];
	p->busy = true;
	p->gen++;
	p->collector = ci;
	p->len = len;
	memcpy(p->msg, msg, len);
	ig_coin_header_hash(p->header_hash, hdr, hlen);
	p->sent_at = bench_now_s();
	char b64[sodium_base64_ENCODED_LEN(IG_COIN_HEADER_SEALED_MAX, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, hdr, hlen, sodium_base64_VARIANT_ORIGINAL);
	char json[1024];
	int n = snprintf(json, sizeof json, "{\"type\":\"redeem\",\"topic\":\"%.*s\",\"header\":\"%s\",\"nonce\":\"%d.%" PRIu32 "\"}",
	                 (int)tlen, topic, b64, s, p->gen);
	if (n <= 0 || (size_t)n >= sizeof json)
		bench_die("a redeem request does not fit", NULL);
	bench_conn_publish(&a->c, a->ch_topic, json, (size_t)n, 1);
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
			bench_stats_codes_add(&B->errors, jstr(m, "error") ? jstr(m, "error") : "error");
		cJSON_Delete(m);
		return;
	}
	pending *p = &a->p[s];
	collector *c = &B->col[p->collector];
	if (strcmp(t, "redeemed") != 0) {
		const char *e = jstr(m, "error");
		bench_stats_codes_add(&B->errors, e ? e : t);
		if (B->errors.total <= 3)
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
		int k = ig_coin_data_open_redeemed(out, sizeof out, p->msg, p->len, c->topic, plain, plain + 64);
		/* The payload says which collector and message it is. */
		if (k != (int)B->payload_len || ig_get_u32(out) != (uint32_t)c->idx || ig_get_u32(out + 4) >= c->nmsgs) {
			B->bad_data++;
		} else {
			double now = bench_now_s();
			B->redeems_done++;
			if (B->counting) {
				B->redeemed_counted++;
				bench_stats_lat_add_ms(&B->redeem_lat, 1000.0 * (now - c->sent_at[ig_get_u32(out + 4)]));
			}
		}
	}
	sodium_memzero(plain, sizeof plain);
	release(a, p, c);
	cJSON_Delete(m);
}

static void on_analyst_packet(void *ctx, bench_conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	analyst *a = (analyst *)((char *)cn - offsetof(analyst, c));
	bench_conn_msg msg;
	if (!bench_conn_take_publish(cn, type, body, len, a->id, &a->subacks, &msg))
		return;
	if (msg.tlen > 6 && !memcmp(msg.topic + msg.tlen - 6, "/inbox", 6))
		on_redeem_reply(B, a, msg.payload, msg.plen);
	else
		on_data(B, a, msg.topic, msg.tlen, msg.payload, msg.plen);
}

/* ---- monitors ------------------------------------------------------------------ */

static void on_monitor_packet(void *ctx, bench_conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	stats_snap s = {0};
	cJSON *m = bench_conn_monitor_stats(cn, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk, &s.l);
	if (!m)
		return;
	s.minted = bench_jnum(m, "bank", "minted", NULL);
	s.redeemed = bench_jnum(m, "bank", "redeemed", NULL);
	const cJSON *bank = cJSON_GetObjectItemCaseSensitive(m, "bank");
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(bank, "refused"), *r;
	cJSON_ArrayForEach(r, ref) if (cJSON_IsNumber(r)) s.refused_total += r->valuedouble;
	B->last_stats = s;
	B->stats_seen++;
	cJSON_Delete(m);
}

static void on_router_packet(void *ctx, bench_conn *cn, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	bench_conn_msg msg;
	if (!bench_conn_take_publish(cn, type, body, len, "mon-001 to iotguard/C/dev/+/data/+ (policy?)",
	                             &B->router_subacks, &msg))
		return;
	int ci = collector_of_topic(B, msg.topic, msg.tlen);
	mode md;
	if (msg.plen == B->payload_len)
		md = MODE_PLAIN;
	else if (msg.plen == B->msg_len)
		md = memcmp(msg.payload, IG_COIN_DATA_MAGIC, 4) == 0 ? MODE_SEALED : MODE_PADDED;
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

/* Connections in order: mon-000, mon-001 while it is open, the collectors,
 * the analysts. */
static bench_conn *conn_at(void *ctx, int i, const char **id, bench_conn_packet_fn *fn)
{
	bench *B = ctx;
	if (i == 0) {
		*id = "mon-000";
		*fn = on_monitor_packet;
		return &B->mon;
	}
	i--;
	if (B->router.fd >= 0) {
		if (i == 0) {
			*id = "mon-001";
			*fn = on_router_packet;
			return &B->router;
		}
		i--;
	}
	if (i < B->ncol) {
		*id = B->col[i].id;
		*fn = on_collector_packet;
		return &B->col[i].c;
	}
	*id = B->ana[i - B->ncol].id;
	*fn = on_analyst_packet;
	return &B->ana[i - B->ncol].c;
}

void bank_pump(bench *B, int timeout_ms)
{
	B->set.n = 1 + (B->router.fd >= 0) + B->ncol + B->nana;
	bench_conn_pump(&B->set, timeout_ms);
}

/* ---- connecting and closing ------------------------------------------------------- */

void bank_clients_open(bench *B)
{
	B->ph = PH_SETUP;
	B->router.fd = -1;
	B->col = calloc((size_t)B->ncol, sizeof *B->col);
	B->ana = calloc((size_t)B->nana, sizeof *B->ana);
	struct pollfd *pfd = calloc((size_t)(2 + B->ncol + B->nana), sizeof *pfd);
	if (!B->col || !B->ana || !pfd)
		bench_die("out of memory", NULL);
	B->set = (bench_conn_set){.client = conn_at, .closed_why = "(ACL refusal, takeover, or the broker died)",
	                          .ctx = B, .pfd = pfd};
	bench_stats_lat_init(&B->redeem_lat, MAX_LATENCIES);
	bench_stats_lat_init(&B->mint_lat, MAX_LATENCIES);
	B->suite = ig_suite_preferred();

	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B->cluster, "mon-000", 600);
	bench_conn_open(&B->mon, B->port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B->cluster);
	bench_conn_subscribe(&B->mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/stats", B->cluster);
	bench_conn_subscribe(&B->mon, topic, 0);
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		c->idx = i;
		bank_collector_id(c->id, sizeof c->id, i);
		snprintf(c->ch_topic, sizeof c->ch_topic, "iotguard/%s/ch/%s", B->cluster, c->id);
		c->topic_len = (size_t)snprintf(c->topic, sizeof c->topic, "iotguard/%s/dev/%s/data/bank", B->cluster, c->id);
		c->route_topic_len =
			(size_t)snprintf(c->route_topic, sizeof c->route_topic, "iotguard/%s/dev/%s/data/route", B->cluster, c->id);
		bench_id_token(tok, sizeof tok, B->cluster, c->id, 600);
		bench_conn_open(&c->c, B->port, c->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B->cluster, c->id);
		bench_conn_subscribe(&c->c, topic, 1);
	}
	int per_analyst = (B->ncol + B->nana - 1) / B->nana;
	for (int i = 0; i < B->nana; i++) {
		analyst *a = &B->ana[i];
		bank_analyst_id(a->id, sizeof a->id, i);
		snprintf(a->ch_topic, sizeof a->ch_topic, "iotguard/%s/ch/%s", B->cluster, a->id);
		bench_id_token(tok, sizeof tok, B->cluster, a->id, 600);
		bench_conn_open(&a->c, B->port, a->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B->cluster, a->id);
		bench_conn_subscribe(&a->c, topic, 1);
		a->want_subacks = 1;
		/* Collectors are split between the analysts; each subscribes to its
		 * collectors' bank stream (a filter inside the analyst policy's
		 * iotguard/C/dev/+/data/+). */
		for (int c = i; c < B->ncol; c += B->nana) {
			snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/data/bank", B->cluster, B->col[c].id);
			bench_conn_subscribe(&a->c, topic, B->qos);
			a->want_subacks++;
		}
		a->cap = per_analyst * B->window + 8;
		a->p = calloc((size_t)a->cap, sizeof *a->p);
		a->free_slots = calloc((size_t)a->cap, sizeof *a->free_slots);
		if (!a->p || !a->free_slots)
			bench_die("out of memory", NULL);
		for (int s = a->cap - 1; s >= 0; s--)
			a->free_slots[a->nfree++] = s;
	}
	double t_setup = bench_now_s();
	for (;;) {
		bool ready = B->have_ch_pk && B->mon_subacks >= 2;
		for (int i = 0; i < B->ncol; i++)
			ready = ready && B->col[i].subacks >= 1;
		for (int i = 0; i < B->nana; i++)
			ready = ready && B->ana[i].subacks >= B->ana[i].want_subacks;
		if (ready)
			break;
		if (bench_now_s() - t_setup > 10)
			bench_die("subscriptions or the retained ledger head (ch_pubkey) did not arrive within 10 s", NULL);
		bank_pump(B, 50);
	}
	for (int i = 0; i < B->ncol + B->nana; i++) {
		const char *id = i < B->ncol ? B->col[i].id : B->ana[i - B->ncol].id;
		ig_box_key *bk = i < B->ncol ? &B->col[i].bk : &B->ana[i - B->ncol].bk;
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_id_keypair(id, pk, sk);
		if (ig_keybox_key_for_ch(bk, sk, B->ch_pk) != IG_OK)
			bench_die("X25519 box key failed", id);
		sodium_memzero(sk, sizeof sk);
	}
	uint8_t probe[MSG_MAX], hh[IG_HASH_BYTES], coin[IG_COIN_BYTES] = {0}, pt[MAX_PAYLOAD] = {0};
	int ml = ig_coin_data_seal(probe, sizeof probe, B->ch_pk, coin, B->suite, B->col[0].id, B->col[0].topic, pt,
	                           B->payload_len, hh);
	if (ml <= 0)
		bench_die("ig_coin_data_seal failed (suite or cluster-head key unusable?)", NULL);
	B->msg_len = (size_t)ml;
}

void bank_router_open(bench *B)
{
	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B->cluster, "mon-001", 600);
	bench_conn_open(&B->router, B->port, "mon-001", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/dev/+/data/+", B->cluster);
	bench_conn_subscribe(&B->router, topic, B->qos);
	double t = bench_now_s();
	while (B->router_subacks < 1 && bench_now_s() - t < 5)
		bank_pump(B, 20);
	if (B->router_subacks < 1)
		bench_die("mon-001's subscription was not acknowledged", NULL);
}

void bank_router_close(bench *B)
{
	bench_conn_close(&B->router);
	B->router.fd = -1;
}

void bank_clients_close(bench *B)
{
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		bench_conn_close(&c->c);
		free(c->coins);
		free(c->msgs);
		free(c->sent_at);
		free(c->route_msgs);
	}
	for (int i = 0; i < B->nana; i++) {
		bench_conn_close(&B->ana[i].c);
		sodium_memzero(B->ana[i].p, (size_t)B->ana[i].cap * sizeof *B->ana[i].p);
		free(B->ana[i].p);
		free(B->ana[i].free_slots);
	}
	bench_conn_close(&B->mon);
	free(B->col);
	free(B->ana);
	free(B->set.pfd);
	bench_stats_lat_free(&B->redeem_lat);
	bench_stats_lat_free(&B->mint_lat);
}
