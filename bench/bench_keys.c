/*
 * bench_keys.c: session keys issued end to end, pairs per second.
 *
 * Why this exists: a session key is only useful once BOTH devices hold it,
 * and the cluster head hands the copies out only after the key's audit
 * record (KEY_ISSUED) is durable in the ledger. So the figure that matters
 * is not "requests handled" but "pairs that can talk": A asks on its ch
 * topic for a key with B, and the pair counts once A and B have each
 * received their session_key inbox message, opened the box with the real
 * crypto a device does (ig_keybox_open with the precomputed X25519 box key)
 * and found the same key inside. Every counted pair therefore implies a
 * KEY_ISSUED record that was fdatasync'd before either copy left the broker:
 * durability is part of what is measured, by construction of the plugin.
 *
 * One process drives all devices (2 x --pairs, e.g. 200 devices = 100
 * pairs) from one poll() loop. Like bench_publish, it speaks MQTT 3.1.1
 * itself, because libmosquitto's one-send-per-packet, byte-by-byte reads
 * would make the load generator, not the broker, the limit. Each pair keeps
 * --window requests in flight; a request is {"type":"session_key",
 * "peer":B,"nonce":N}, QoS 1 like the agent sends it, and inboxes are
 * subscribed at QoS 1 like the agent does.
 *
 * A monitor subscribes iotguard/C/stats (run the broker with
 * plugin_opt_stats_interval 1) so the tool can print the plugin's own view:
 * keys issued per second between two stats messages taken under load, and
 * the ledger's submit-to-durable commit latency.
 *
 *   bench_keys --port P [--cluster C] [--pairs N] [--window W] [--duration S]
 *              [--warmup S] [--pid BROKER_PID] [--qos 0|1] [--goal PAIRS_PER_S] [--probe S]
 *
 * After the throughput run, --probe S (1.5; 0 = off) seconds with one pair
 * and one request in flight show what a single device waits for its key.
 *
 * Identities are the benchmark's: devices dev-0000000.. and monitor mon-000
 * from `bench_scale mkledger` (keys derived from the id with a fixed
 * benchmark string, so they are public: never use them outside a benchmark).
 * The broker needs plugin_opt_key_requests_per_minute raised (run.sh sets
 * it), or the plugin's rate limit is what gets measured.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <sodium.h>

#include "ig_aead.h"
#include "ig_common.h"
#include "ig_keys.h"
#include "ig_token.h"

#define BENCH_NAME "bench_keys"
#define SEED_KEY "iotguard-bench-seed-v1"   /* must match bench_scale.c */
#define MAX_PAIRS 2048
#define MAX_WINDOW 64
#define RBUF_MAX (16u * 1024u * 1024u)
#define REQUEST_TIMEOUT_S 5.0
#define MAX_LATENCIES (4u * 1024u * 1024u)

/* ---- small helpers -------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg, const char *detail)
{
	fprintf(stderr, BENCH_NAME ": %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		die("out of memory", NULL);
	return q;
}

static uint64_t self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* On-CPU time of every thread of the broker (the ledger writer included),
 * from schedstat: a cost per operation that does not depend on how much of its
 * core the broker got on a shared machine. */
static uint64_t process_cpu_ns(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char p2[320];
		snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, de->d_name);
		FILE *f = fopen(p2, "r");
		unsigned long long ns = 0;
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				total += ns;
			fclose(f);
		}
	}
	closedir(d);
	return total;
}

static void bench_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	uint8_t seed[IG_SEED_BYTES];
	crypto_generichash(seed, IG_SEED_BYTES, (const uint8_t *)id, strlen(id), (const uint8_t *)SEED_KEY,
	                   sizeof SEED_KEY - 1);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}

/* ---- minimal MQTT 3.1.1 client (what the benchmark needs, no more) ------- */

typedef struct conn {
	int fd;
	uint8_t *w;
	size_t wcap, wlen, woff;
	uint8_t *r;
	size_t rcap, rlen;
	uint16_t next_pid;
} conn;

typedef void (*packet_fn)(void *ctx, conn *c, uint8_t type, const uint8_t *body, size_t len);

static size_t put_varint(uint8_t *p, size_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v % 128;
		v /= 128;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

static size_t put_str(uint8_t *p, const char *s, size_t len)
{
	p[0] = (uint8_t)(len >> 8);
	p[1] = (uint8_t)len;
	memcpy(p + 2, s, len);
	return len + 2;
}

static void conn_reserve(conn *c, size_t n)
{
	if (c->wlen + n <= c->wcap)
		return;
	if (c->woff) {
		memmove(c->w, c->w + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	size_t cap = c->wcap ? c->wcap : 4096;
	while (c->wlen + n > cap)
		cap *= 2;
	if (cap != c->wcap) {
		c->w = xrealloc(c->w, cap);
		c->wcap = cap;
	}
}

/* Appends a PUBLISH and returns where its payload (plen bytes) goes. */
static uint8_t *conn_publish_begin(conn *c, const char *topic, size_t tlen, size_t plen, int qos)
{
	size_t rem = 2 + tlen + (qos ? 2 : 0) + plen;
	conn_reserve(c, 5 + rem);
	uint8_t *p = c->w + c->wlen;
	size_t h = 0;
	p[h++] = (uint8_t)(0x30 | (qos << 1));
	h += put_varint(p + h, rem);
	h += put_str(p + h, topic, tlen);
	if (qos) {
		if (++c->next_pid == 0)
			c->next_pid = 1;
		p[h++] = (uint8_t)(c->next_pid >> 8);
		p[h++] = (uint8_t)c->next_pid;
	}
	c->wlen += h + plen;
	return p + h;
}

static void conn_publish(conn *c, const char *topic, const void *payload, size_t plen, int qos)
{
	memcpy(conn_publish_begin(c, topic, strlen(topic), plen, qos), payload, plen);
}

static void conn_subscribe(conn *c, const char *filter, int qos)
{
	size_t flen = strlen(filter), rem = 2 + 2 + flen + 1;
	conn_reserve(c, 5 + rem);
	uint8_t *p = c->w + c->wlen;
	size_t h = 0;
	p[h++] = 0x82;
	h += put_varint(p + h, rem);
	p[h++] = 0;
	p[h++] = 1;
	h += put_str(p + h, filter, flen);
	p[h++] = (uint8_t)qos;
	c->wlen += h;
}

static void conn_ack(conn *c, uint8_t type, const uint8_t pid[2])
{
	conn_reserve(c, 4);
	c->w[c->wlen++] = type;
	c->w[c->wlen++] = 2;
	c->w[c->wlen++] = pid[0];
	c->w[c->wlen++] = pid[1];
}

/* Writes what is buffered; false if the connection is broken. */
static bool conn_flush(conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->w + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return false;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	return true;
}

static bool conn_wants_write(const conn *c)
{
	return c->wlen > c->woff;
}

/* TCP connect, CONNECT, CONNACK (blocking); then non-blocking. */
static void conn_open(conn *c, int port, const char *id, const char *password)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("connect to the broker on 127.0.0.1 failed", strerror(errno));
	uint8_t body[1024], pkt[1100];
	size_t n = 0, idl = strlen(id), pwl = strlen(password);
	n += put_str(body + n, "MQTT", 4);
	body[n++] = 4;
	body[n++] = 0x02 | 0x80 | 0x40;     /* clean session, username, password */
	body[n++] = 0;
	body[n++] = 0;                      /* no keepalive: runs are short */
	n += put_str(body + n, id, idl);
	n += put_str(body + n, id, idl);
	n += put_str(body + n, password, pwl);
	size_t h = 0;
	pkt[h++] = 0x10;
	h += put_varint(pkt + h, n);
	memcpy(pkt + h, body, n);
	for (size_t off = 0; off < h + n;) {
		ssize_t k = write(c->fd, pkt + off, h + n - off);
		if (k <= 0)
			die("sending CONNECT failed", strerror(errno));
		off += (size_t)k;
	}
	uint8_t ack[4];
	for (size_t got = 0; got < 4;) {
		ssize_t k = read(c->fd, ack + got, 4 - got);
		if (k <= 0)
			die("the broker closed the connection before CONNACK (is the ledger the benchmark's?)", id);
		got += (size_t)k;
	}
	if (ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0) {
		fprintf(stderr, BENCH_NAME ": %s: CONNACK refused (return code %d); was the ledger made by "
		                "'bench_scale mkledger' with enough devices and a monitor?\n", id, ack[3]);
		exit(1);
	}
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die("fcntl O_NONBLOCK", strerror(errno));
	c->rcap = 64 * 1024;
	c->r = xrealloc(NULL, c->rcap);
}

static void conn_close(conn *c)
{
	if (c->fd >= 0) {
		static const uint8_t disconnect[2] = {0xe0, 0};
		if (write(c->fd, disconnect, 2) < 0) {
			/* the broker may be gone already; closing is all that is left */
		}
		close(c->fd);
	}
	free(c->w);
	free(c->r);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

/* Reads everything available and hands each complete packet to fn.
 * False when the broker closed the connection. */
static bool conn_read(conn *c, packet_fn fn, void *ctx)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= RBUF_MAX)
				die("a packet larger than 16 MiB arrived", NULL);
			c->rcap *= 2;
			c->r = xrealloc(c->r, c->rcap);
		}
		ssize_t n = read(c->fd, c->r + c->rlen, c->rcap - c->rlen);
		if (n == 0)
			return false;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			return false;
		}
		c->rlen += (size_t)n;
		size_t off = 0;
		while (off + 2 <= c->rlen) {
			size_t len = 0, mult = 1, h = 1;
			bool complete = false;
			for (; h < 5 && off + h < c->rlen; h++) {
				uint8_t b = c->r[off + h];
				len += (b & 127u) * mult;
				mult *= 128;
				if (!(b & 128)) {
					complete = true;
					h++;
					break;
				}
			}
			if (!complete || off + h + len > c->rlen)
				break;
			fn(ctx, c, c->r[off], c->r + off + h, len);
			off += h + len;
		}
		memmove(c->r, c->r + off, c->rlen - off);
		c->rlen -= off;
	}
}

/* Splits a PUBLISH body; queues its PUBACK when QoS 1. */
static bool publish_parts(conn *c, uint8_t type, const uint8_t *b, size_t len, const char **topic, size_t *tlen,
                          const uint8_t **payload, size_t *plen)
{
	int qos = (type >> 1) & 3;
	if (len < 2)
		return false;
	*tlen = ((size_t)b[0] << 8) | b[1];
	size_t off = 2 + *tlen + (qos ? 2 : 0);
	if (off > len)
		return false;
	*topic = (const char *)b + 2;
	if (qos == 1)
		conn_ack(c, 0x40, b + 2 + *tlen);
	*payload = b + off;
	*plen = len - off;
	return true;
}

/* ---- the benchmark ---------------------------------------------------------- */

typedef struct slot {
	bool busy, got_a, got_b;
	uint64_t seq;
	double sent_at;
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint8_t key[IG_AEAD_KEY_BYTES];
} slot;

/* B's copy can arrive before A's (they go out on different sockets). */
typedef struct early {
	bool used;
	double at;
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint8_t key[IG_AEAD_KEY_BYTES];
} early;

typedef struct pair {
	int a, b;
	uint64_t next_seq;
	int outstanding;
	slot slots[MAX_WINDOW];
	early early[2 * MAX_WINDOW];
} pair;

typedef struct device {
	conn c;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	int pair;
	bool is_a;
	bool subscribed;
	ig_box_key bk;
} device;

typedef struct stats_snap {
	bool have;
	double ts_ms, received_at;
	double issued, refused, height, batches, pending;
	double commit_last, commit_avg, commit_max;
} stats_snap;

typedef struct bench {
	const char *cluster;
	int qos, window, npairs, ndev;
	device *dev;
	pair *pairs;
	conn mon;
	int mon_subacks;
	bool have_ch_pk;
	uint8_t ch_pk[IG_PK_BYTES];
	int subacks;
	/* counters */
	bool counting;
	uint64_t completed, key_msgs, errors, timeouts, bad, mismatched, early_overflow;
	uint64_t error_codes_n;
	char error_codes[8][40];
	uint64_t error_code_count[8];
	float *lat_ms;
	size_t nlat;
	stats_snap last_stats;
	int stats_seen;
} bench;

static double jnum(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void count_error(bench *B, const char *code)
{
	B->errors++;
	for (uint64_t i = 0; i < B->error_codes_n; i++)
		if (!strcmp(B->error_codes[i], code)) {
			B->error_code_count[i]++;
			return;
		}
	if (B->error_codes_n < 8) {
		snprintf(B->error_codes[B->error_codes_n], sizeof B->error_codes[0], "%s", code);
		B->error_code_count[B->error_codes_n++] = 1;
	}
}

static void send_request(bench *B, pair *p, int s)
{
	device *a = &B->dev[p->a];
	slot *sl = &p->slots[s];
	memset(sl, 0, sizeof *sl);
	sl->busy = true;
	sl->seq = ++p->next_seq;
	sl->sent_at = now_s();
	char json[256];
	int n = snprintf(json, sizeof json, "{\"type\":\"session_key\",\"peer\":\"%s\",\"nonce\":\"p%d.s%d.%" PRIu64 "\"}",
	                 B->dev[p->b].id, (int)(p - B->pairs), s, sl->seq);
	conn_publish(&a->c, a->ch_topic, json, (size_t)n, B->qos);
	p->outstanding++;
}

static void finish(bench *B, pair *p, slot *sl, double now)
{
	B->completed++;
	if (B->counting) {
		if (B->nlat < MAX_LATENCIES)
			B->lat_ms[B->nlat++] = (float)((now - sl->sent_at) * 1000.0);
	}
	sodium_memzero(sl, sizeof *sl);
	p->outstanding--;
}

/* Opens one session_key inbox message the way a device does and returns
 * the key, or false (counted as bad) if anything does not check out. */
static bool open_key(bench *B, device *d, const cJSON *m, ig_session_key *sk)
{
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(m, "key_id");
	const cJSON *peer = cJSON_GetObjectItemCaseSensitive(m, "peer");
	const cJSON *suite = cJSON_GetObjectItemCaseSensitive(m, "suite");
	const cJSON *dir = cJSON_GetObjectItemCaseSensitive(m, "direction");
	const cJSON *bn = cJSON_GetObjectItemCaseSensitive(m, "box_nonce");
	const cJSON *box = cJSON_GetObjectItemCaseSensitive(m, "box");
	uint8_t key_id[IG_KEY_ID_BYTES], nonce[IG_KEYBOX_NONCE_BYTES], raw[512];
	size_t raw_len = 0;
	if (!cJSON_IsString(kid) || !cJSON_IsString(peer) || !cJSON_IsString(suite) || !cJSON_IsNumber(dir) ||
	    !cJSON_IsString(bn) || !cJSON_IsString(box) ||
	    ig_hex_decode(key_id, sizeof key_id, kid->valuestring, strlen(kid->valuestring)) != IG_OK ||
	    ig_hex_decode(nonce, sizeof nonce, bn->valuestring, strlen(bn->valuestring)) != IG_OK ||
	    sodium_base642bin(raw, sizeof raw, box->valuestring, strlen(box->valuestring), NULL, &raw_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	if (ig_keybox_open(sk, raw, raw_len, nonce, &d->bk) != IG_OK)
		return false;
	const char *want_peer = B->dev[d->is_a ? B->pairs[d->pair].b : B->pairs[d->pair].a].id;
	return memcmp(sk->key_id, key_id, sizeof key_id) == 0 && sk->direction == (d->is_a ? 0 : 1) &&
	       (int)dir->valuedouble == sk->direction && strcmp(sk->peer, want_peer) == 0 &&
	       strcmp(peer->valuestring, want_peer) == 0 && ig_suite_parse(suite->valuestring) == sk->suite &&
	       sk->expires_at > ig_now_ms() / 1000;
}

static void on_inbox(bench *B, device *d, const uint8_t *payload, size_t plen)
{
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	const cJSON *type = m ? cJSON_GetObjectItemCaseSensitive(m, "type") : NULL;
	pair *p = &B->pairs[d->pair];
	double now = now_s();
	if (!cJSON_IsString(type)) {
		B->bad++;
	} else if (!strcmp(type->valuestring, "error")) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "error");
		count_error(B, cJSON_IsString(code) ? code->valuestring : "?");
		/* Errors carry no nonce: retire the oldest request still waiting. */
		slot *oldest = NULL;
		for (int s = 0; s < B->window; s++)
			if (p->slots[s].busy && !p->slots[s].got_a && (!oldest || p->slots[s].seq < oldest->seq))
				oldest = &p->slots[s];
		if (oldest && d->is_a) {
			sodium_memzero(oldest, sizeof *oldest);
			p->outstanding--;
		}
	} else if (!strcmp(type->valuestring, "session_key")) {
		ig_session_key sk;
		B->key_msgs++;
		if (!open_key(B, d, m, &sk)) {
			B->bad++;
		} else if (d->is_a) {
			int pi = -1, s = -1;
			uint64_t seq = 0;
			if (sscanf(sk.request_nonce, "p%d.s%d.%" SCNu64, &pi, &s, &seq) != 3 || pi != d->pair || s < 0 ||
			    s >= B->window || !p->slots[s].busy || p->slots[s].seq != seq || p->slots[s].got_a) {
				B->bad++;
			} else {
				slot *sl = &p->slots[s];
				sl->got_a = true;
				memcpy(sl->key_id, sk.key_id, IG_KEY_ID_BYTES);
				memcpy(sl->key, sk.key, IG_AEAD_KEY_BYTES);
				for (int e = 0; e < 2 * MAX_WINDOW; e++) {
					early *ea = &p->early[e];
					if (ea->used && memcmp(ea->key_id, sk.key_id, IG_KEY_ID_BYTES) == 0) {
						if (sodium_memcmp(ea->key, sl->key, IG_AEAD_KEY_BYTES) != 0)
							B->mismatched++;
						sodium_memzero(ea, sizeof *ea);
						sl->got_b = true;
						break;
					}
				}
				if (sl->got_b)
					finish(B, p, sl, now);
			}
		} else {
			slot *sl = NULL;
			for (int s = 0; s < B->window && !sl; s++)
				if (p->slots[s].busy && p->slots[s].got_a &&
				    memcmp(p->slots[s].key_id, sk.key_id, IG_KEY_ID_BYTES) == 0)
					sl = &p->slots[s];
			if (sl) {
				if (sodium_memcmp(sk.key, sl->key, IG_AEAD_KEY_BYTES) != 0)
					B->mismatched++;
				sl->got_b = true;
				finish(B, p, sl, now);
			} else {
				early *ea = NULL;
				for (int e = 0; e < 2 * MAX_WINDOW && !ea; e++)
					if (!p->early[e].used)
						ea = &p->early[e];
				if (!ea) {
					B->early_overflow++;
				} else {
					ea->used = true;
					ea->at = now;
					memcpy(ea->key_id, sk.key_id, IG_KEY_ID_BYTES);
					memcpy(ea->key, sk.key, IG_AEAD_KEY_BYTES);
				}
			}
		}
		sodium_memzero(&sk, sizeof sk);
	} else {
		B->bad++;
	}
	cJSON_Delete(m);
}

static void on_device_packet(void *ctx, conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	device *d = (device *)((char *)c - offsetof(device, c));
	switch (type & 0xf0) {
	case 0x90:
		if (len < 3 || body[2] == 0x80)
			die("the broker refused a device's inbox subscription", d->id);
		d->subscribed = true;
		B->subacks++;
		break;
	case 0x30: {
		const char *topic;
		const uint8_t *payload;
		size_t tlen, plen;
		if (publish_parts(c, type, body, len, &topic, &tlen, &payload, &plen))
			on_inbox(B, d, payload, plen);
		else
			B->bad++;
		break;
	}
	default:
		break;   /* PUBACKs for our QoS 1 requests */
	}
}

static void on_monitor_packet(void *ctx, conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	if ((type & 0xf0) == 0x90) {
		if (len < 3 || body[2] == 0x80)
			die("the broker refused the monitor's subscription (is mon-000 a monitor in the ledger?)", NULL);
		B->mon_subacks++;
		return;
	}
	if ((type & 0xf0) != 0x30)
		return;
	const char *topic;
	const uint8_t *payload;
	size_t tlen, plen;
	if (!publish_parts(c, type, body, len, &topic, &tlen, &payload, &plen))
		return;
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	if (!m)
		return;
	if (tlen >= 5 && !memcmp(topic + tlen - 5, "/head", 5)) {
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(m, "ch_pubkey");
		if (cJSON_IsString(pk) && ig_hex_decode(B->ch_pk, IG_PK_BYTES, pk->valuestring, strlen(pk->valuestring)) == IG_OK)
			B->have_ch_pk = true;
	} else {
		stats_snap s = {.have = true, .received_at = now_s()};
		s.ts_ms = jnum(m, "ts", NULL, NULL);
		s.issued = jnum(m, "keys", "issued", NULL);
		s.refused = jnum(m, "keys", "refused", NULL);
		s.height = jnum(m, "ledger", "height", NULL);
		s.batches = jnum(m, "ledger", "batches", NULL);
		s.pending = jnum(m, "ledger", "pending", NULL);
		s.commit_last = jnum(m, "ledger", "commit_latency_us", "last");
		s.commit_avg = jnum(m, "ledger", "commit_latency_us", "avg");
		s.commit_max = jnum(m, "ledger", "commit_latency_us", "max");
		B->last_stats = s;
		B->stats_seen++;
	}
	cJSON_Delete(m);
}

/* One pass over every socket: write, poll, read. */
static void pump(bench *B, struct pollfd *pfd, int timeout_ms)
{
	int nf = 0;
	pfd[nf].fd = B->mon.fd;
	pfd[nf].events = POLLIN | (conn_wants_write(&B->mon) ? POLLOUT : 0);
	nf++;
	for (int i = 0; i < B->ndev; i++) {
		pfd[nf].fd = B->dev[i].c.fd;
		pfd[nf].events = POLLIN | (conn_wants_write(&B->dev[i].c) ? POLLOUT : 0);
		nf++;
	}
	int pr = poll(pfd, (nfds_t)nf, timeout_ms);
	if (pr < 0 && errno != EINTR)
		die("poll", strerror(errno));
	if (pr <= 0)
		return;
	if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
		if (!conn_read(&B->mon, on_monitor_packet, B))
			die("the broker closed the monitor's connection", NULL);
	for (int i = 0; i < B->ndev; i++) {
		if (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR))
			if (!conn_read(&B->dev[i].c, on_device_packet, B))
				die("the broker closed a device's connection (ACL refusal, or a takeover?)", B->dev[i].id);
	}
	if (conn_wants_write(&B->mon) && !conn_flush(&B->mon))
		die("the monitor's connection broke", NULL);
	for (int i = 0; i < B->ndev; i++)
		if (conn_wants_write(&B->dev[i].c) && !conn_flush(&B->dev[i].c))
			die("a device's connection broke", B->dev[i].id);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

typedef struct phase_result {
	uint64_t counted, unfinished;
	double rate, secs, cpu_us, self_us, busy, p50, p99, max;
	stats_snap s_begin, s_end;
} phase_result;

/* Keeps `window` requests in flight for the first `active` pairs. With
 * want_stats, sending goes on past the timed window until a stats message
 * taken after it arrives, so two stats messages bracket a loaded interval.
 * Ends with a drain, so nothing is left half-delivered. */
static phase_result run_load(bench *B, int active, int window, double warmup, double duration, bool want_stats,
                             int pid, struct pollfd *pfd)
{
	phase_result res = {0};
	double t0 = now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = 0, t_stopped = 0;
	uint64_t cpu0 = 0, cpu_used = 0, self0 = 0, self_used = 0, done0 = 0;
	int stats_at_count = 0;
	bool ended = false;
	double stop_sending_at = t_end + (want_stats ? 2.5 : 0);
	B->window = window;
	B->nlat = 0;
	for (;;) {
		double now = now_s();
		if (!B->counting && !ended && now >= t_count) {
			B->counting = true;
			t_counted = now;
			cpu0 = pid ? process_cpu_ns(pid) : 0;
			self0 = self_cpu_ns();
			done0 = B->completed;
			stats_at_count = B->stats_seen;
		}
		if (B->counting && now >= t_end) {
			B->counting = false;
			ended = true;
			t_stopped = now;
			res.counted = B->completed - done0;
			cpu_used = pid ? process_cpu_ns(pid) - cpu0 : 0;
			self_used = self_cpu_ns() - self0;
		}
		/* The first stats taken after counting began, and the first after
		 * the window: their difference is the plugin's view of the load. */
		if (want_stats && B->stats_seen > stats_at_count && B->counting && !res.s_begin.have)
			res.s_begin = B->last_stats;
		if (ended && want_stats && B->last_stats.have && B->last_stats.received_at > t_end && res.s_begin.have &&
		    B->last_stats.ts_ms > res.s_begin.ts_ms) {
			res.s_end = B->last_stats;
			break;
		}
		if (ended && now >= stop_sending_at)
			break;
		for (int pi = 0; pi < active; pi++) {
			pair *p = &B->pairs[pi];
			for (int s = 0; s < window && p->outstanding < window; s++) {
				if (!p->slots[s].busy)
					send_request(B, p, s);
			}
			for (int s = 0; s < window; s++) {
				slot *sl = &p->slots[s];
				if (sl->busy && now - sl->sent_at > REQUEST_TIMEOUT_S) {
					B->timeouts++;
					sodium_memzero(sl, sizeof *sl);
					p->outstanding--;
				}
			}
		}
		pump(B, pfd, 20);
	}
	double drain_until = now_s() + 3.0;
	for (;;) {
		res.unfinished = 0;
		for (int pi = 0; pi < active; pi++)
			res.unfinished += (uint64_t)B->pairs[pi].outstanding;
		if (!res.unfinished || now_s() > drain_until)
			break;
		pump(B, pfd, 20);
	}
	res.secs = t_stopped - t_counted;
	res.rate = res.secs > 0 ? (double)res.counted / res.secs : 0;
	if (res.counted) {
		res.cpu_us = (double)cpu_used / 1e3 / (double)res.counted;
		res.self_us = (double)self_used / 1e3 / (double)res.counted;
		res.busy = (double)cpu_used / 1e9 / res.secs;
	}
	if (B->nlat) {
		qsort(B->lat_ms, B->nlat, sizeof *B->lat_ms, cmp_float);
		res.p50 = B->lat_ms[B->nlat / 2];
		res.p99 = B->lat_ms[(size_t)((double)B->nlat * 0.99)];
		res.max = B->lat_ms[B->nlat - 1];
	}
	return res;
}

static void mint(char *tok, size_t cap, const char *cluster, const char *id)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	bench_keypair(id, pk, sk);
	uint64_t now = ig_now_ms() / 1000;
	if (ig_token_mint(tok, cap, sk, cluster, id, now, now + 600, NULL) < 0)
		die("minting a token failed", id);
	sodium_memzero(sk, sizeof sk);
}

int main(int argc, char **argv)
{
	int port = 0, pid = 0;
	double duration = 5.0, warmup = 1.0, goal = 5000, probe = 1.5;
	bench B = {.cluster = "bench", .qos = 1, .window = 4, .npairs = 100};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("option needs a value", a);
		if (!strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--cluster"))
			B.cluster = v;
		else if (!strcmp(a, "--pairs"))
			B.npairs = atoi(v);
		else if (!strcmp(a, "--window"))
			B.window = atoi(v);
		else if (!strcmp(a, "--duration"))
			duration = atof(v);
		else if (!strcmp(a, "--warmup"))
			warmup = atof(v);
		else if (!strcmp(a, "--pid"))
			pid = atoi(v);
		else if (!strcmp(a, "--qos"))
			B.qos = atoi(v);
		else if (!strcmp(a, "--goal"))
			goal = atof(v);
		else if (!strcmp(a, "--probe"))
			probe = atof(v);
		else {
			fprintf(stderr, "usage: bench_keys --port P [--cluster C] [--pairs N] [--window W] [--duration S]\n"
			                "                  [--warmup S] [--pid BROKER_PID] [--qos 0|1] [--goal PAIRS_PER_S] [--probe S]\n");
			return 2;
		}
		i++;
	}
	if (port <= 0 || B.npairs < 1 || B.npairs > MAX_PAIRS || B.window < 1 || B.window > MAX_WINDOW ||
	    duration <= 0 || duration > 50 || warmup < 0 || probe < 0 || probe > 10 || (B.qos != 0 && B.qos != 1))
		die("need --port; 1 <= pairs <= 2048, 1 <= window <= 64, 0 < duration <= 50, qos 0 or 1", NULL);
	if (ig_init() != IG_OK)
		die("libsodium failed to initialise", NULL);

	B.ndev = 2 * B.npairs;
	B.dev = calloc((size_t)B.ndev, sizeof *B.dev);
	B.pairs = calloc((size_t)B.npairs, sizeof *B.pairs);
	B.lat_ms = malloc(MAX_LATENCIES * sizeof *B.lat_ms);
	struct pollfd *pfd = calloc((size_t)B.ndev + 1, sizeof *pfd);
	if (!B.dev || !B.pairs || !B.lat_ms || !pfd)
		die("out of memory", NULL);

	/* The monitor learns the cluster-head key the way a device does (the
	 * retained ledger head) and reads the plugin's stats. */
	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	mint(tok, sizeof tok, B.cluster, "mon-000");
	conn_open(&B.mon, port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B.cluster);
	conn_subscribe(&B.mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/stats", B.cluster);
	conn_subscribe(&B.mon, topic, 0);
	double t_setup = now_s();
	for (int i = 0; i < B.ndev; i++) {
		device *d = &B.dev[i];
		snprintf(d->id, sizeof d->id, "dev-%07d", i);
		snprintf(d->ch_topic, sizeof d->ch_topic, "iotguard/%s/ch/%s", B.cluster, d->id);
		d->pair = i / 2;
		d->is_a = (i % 2) == 0;
		mint(tok, sizeof tok, B.cluster, d->id);
		conn_open(&d->c, port, d->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B.cluster, d->id);
		conn_subscribe(&d->c, topic, 1);
		if (d->is_a)
			B.pairs[d->pair].a = i;
		else
			B.pairs[d->pair].b = i;
	}
	while ((B.subacks < B.ndev || !B.have_ch_pk || B.mon_subacks < 2) && now_s() - t_setup < 10)
		pump(&B, pfd, 50);
	if (!B.have_ch_pk)
		die("no retained iotguard/<cluster>/ledger/head with ch_pubkey arrived within 10 s", NULL);
	if (B.subacks < B.ndev)
		die("not every device's inbox subscription was acknowledged within 10 s", NULL);
	for (int i = 0; i < B.ndev; i++) {
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_keypair(B.dev[i].id, pk, sk);
		if (ig_box_key_for_ch(&B.dev[i].bk, sk, B.ch_pk) != IG_OK)
			die("X25519 box key for a device failed", B.dev[i].id);
		sodium_memzero(sk, sizeof sk);
	}
	printf("== bench_keys: session keys issued end to end: %d pairs (%d devices, one poll() loop), %d requests in "
	       "flight per pair, QoS %d, %.1f s (+%.1f s warm-up) ==\n",
	       B.npairs, B.ndev, B.window, B.qos, duration, warmup);
	printf("a pair counts once A and B both opened their session_key box (ig_keybox_open) and found the same key;\n"
	       "the plugin sends those boxes only after the KEY_ISSUED record is fdatasync'd, so every counted pair\n"
	       "is a durable audit record.\n");
	fflush(stdout);

	phase_result main_run = run_load(&B, B.npairs, B.window, warmup, duration, true, pid, pfd);
	double rate = main_run.rate;
	printf("pairs done in the timed window: %" PRIu64 " in %.2f s = %.0f pairs/s   (target >= %.0f: %s)\n",
	       main_run.counted, main_run.secs, rate, goal, rate >= goal ? "PASS" : "MISS");
	printf("RESULT keys.pairs_per_s %.0f\n", rate);
	if (main_run.counted) {
		printf("request -> both copies opened: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", main_run.p50, main_run.p99,
		       main_run.max);
		printf("RESULT keys.latency_p50_ms %.2f\nRESULT keys.latency_p99_ms %.2f\n", main_run.p50, main_run.p99);
		if (pid) {
			printf("broker CPU per pair: %.1f us (all broker threads: event loop + ledger writer); ", main_run.cpu_us);
			printf("broker busy %.0f%% of one core\n", main_run.busy * 100);
			printf("RESULT keys.cpu_us %.1f\n", main_run.cpu_us);
		}
		printf("load generator CPU per pair: %.1f us (two box opens, JSON, the request)\n", main_run.self_us);
	}
	const stats_snap *sb = &main_run.s_begin, *se = &main_run.s_end;
	if (sb->have && se->have && se->ts_ms > sb->ts_ms) {
		double dt = (se->ts_ms - sb->ts_ms) / 1000.0;
		double issued = se->issued - sb->issued;
		double recs = se->height - sb->height, batches = se->batches - sb->batches;
		printf("plugin stats over %.1f s under load: keys issued %.0f/s, refused %.0f, ledger +%.0f records in "
		       "%.0f fdatasyncs (%.1f records/fsync)\n",
		       dt, issued / dt, se->refused - sb->refused, recs, batches, batches > 0 ? recs / batches : 0);
		printf("ledger commit latency (submit -> durable, plugin stats): last %.0f us, avg %.0f us, max %.0f us\n",
		       se->commit_last, se->commit_avg, se->commit_max);
		printf("RESULT keys.plugin_issued_per_s %.0f\n", issued / dt);
		printf("RESULT keys.commit_avg_us %.0f\nRESULT keys.commit_max_us %.0f\nRESULT keys.commit_last_us %.0f\n",
		       se->commit_avg, se->commit_max, se->commit_last);
	} else {
		printf("plugin stats: none received (run the broker with plugin_opt_stats_interval 1)\n");
	}
	uint64_t inflight = main_run.unfinished;
	if (probe > 0) {
		/* One request at a time from one pair: what a single device waits. */
		phase_result light = run_load(&B, 1, 1, 0.2, probe, false, 0, pfd);
		inflight += light.unfinished;
		if (light.counted) {
			printf("light load (1 pair, 1 request in flight, %.1f s): %" PRIu64 " keys, request -> both copies "
			       "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			       probe, light.counted, light.p50, light.p99, light.max);
			printf("RESULT keys.light_p50_ms %.2f\nRESULT keys.light_p99_ms %.2f\n", light.p50, light.p99);
		}
	}
	printf("total: %" PRIu64 " pairs, %" PRIu64 " key messages opened; errors %" PRIu64, B.completed, B.key_msgs,
	       B.errors);
	for (uint64_t i = 0; i < B.error_codes_n; i++)
		printf("%s%s=%" PRIu64, i ? ", " : " (", B.error_codes[i], B.error_code_count[i]);
	printf("%s; bad/unopenable %" PRIu64 ", key mismatches %" PRIu64 ", timeouts %" PRIu64 ", unfinished %" PRIu64 "\n",
	       B.error_codes_n ? ")" : "", B.bad, B.mismatched, B.timeouts, inflight);
	printf("RESULT keys.failures %" PRIu64 "\n", B.errors + B.bad + B.mismatched + B.timeouts + B.early_overflow);
	fflush(stdout);

	for (int i = 0; i < B.ndev; i++)
		conn_close(&B.dev[i].c);
	conn_close(&B.mon);
	sodium_memzero(B.dev, (size_t)B.ndev * sizeof *B.dev);
	sodium_memzero(B.pairs, (size_t)B.npairs * sizeof *B.pairs);
	free(B.dev);
	free(B.pairs);
	free(B.lat_ms);
	free(pfd);
	return B.mismatched || B.bad ? 1 : 0;
}
