/*
 * loadgen.c: the MQTT client and helpers the load generators share (see
 * loadgen.h for why they speak MQTT themselves).
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <sodium.h>

#include "ig_token.h"

#define SEED_KEY "iotguard-bench-seed-v1"   /* must match bench_scale.c */

const char *lg_name = "bench";

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void die(const char *msg, const char *detail)
{
	fprintf(stderr, "%s: %s%s%s\n", lg_name, msg, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		die("out of memory", NULL);
	return q;
}

uint64_t self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

uint64_t process_cpu_ns(int pid)
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

void bench_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	uint8_t seed[IG_SEED_BYTES];
	crypto_generichash(seed, IG_SEED_BYTES, (const uint8_t *)id, strlen(id), (const uint8_t *)SEED_KEY,
	                   sizeof SEED_KEY - 1);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}

/* ---- minimal MQTT 3.1.1 client ---- */

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

void conn_reserve(conn *c, size_t n)
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

uint8_t *conn_publish_begin(conn *c, const char *topic, size_t tlen, size_t plen, int qos)
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

void conn_publish(conn *c, const char *topic, const void *payload, size_t plen, int qos)
{
	memcpy(conn_publish_begin(c, topic, strlen(topic), plen, qos), payload, plen);
}

void conn_subscribe(conn *c, const char *filter, int qos)
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

void conn_ack(conn *c, uint8_t type, const uint8_t pid[2])
{
	conn_reserve(c, 4);
	c->w[c->wlen++] = type;
	c->w[c->wlen++] = 2;
	c->w[c->wlen++] = pid[0];
	c->w[c->wlen++] = pid[1];
}

bool conn_flush(conn *c)
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

bool conn_wants_write(const conn *c)
{
	return c->wlen > c->woff;
}

/* Blocking until CONNACK, so setup errors surface one at a time. */
int conn_try_open(conn *c, int port, const char *id, const char *password, int *connack_rc)
{
	memset(c, 0, sizeof *c);
	*connack_rc = -1;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(c->fd);
		c->fd = -1;
		return 1;
	}
	uint8_t body[1024], pkt[1100];
	size_t n = 0, idl = strlen(id), pwl = strlen(password);
	if (idl > 256 || pwl > 600)
		die("client id or password too long for the benchmark client", id);
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
	bool ok = true;
	for (size_t off = 0; ok && off < h + n;) {
		ssize_t k = write(c->fd, pkt + off, h + n - off);
		if (k <= 0)
			ok = false;
		else
			off += (size_t)k;
	}
	uint8_t ack[4];
	for (size_t got = 0; ok && got < 4;) {
		ssize_t k = read(c->fd, ack + got, 4 - got);
		if (k <= 0)
			ok = false;
		else
			got += (size_t)k;
	}
	if (ok && ack[0] == 0x20 && ack[1] == 2)
		*connack_rc = ack[3];
	if (!ok || *connack_rc != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die("fcntl O_NONBLOCK", strerror(errno));
	c->rcap = 64 * 1024;
	c->r = xrealloc(NULL, c->rcap);
	return 0;
}

void conn_open(conn *c, int port, const char *id, const char *password)
{
	int connack = -1, rc = conn_try_open(c, port, id, password, &connack);
	if (rc == 1)
		die("connect to the broker on 127.0.0.1 failed", strerror(errno));
	if (rc != 0 && connack < 0)
		die("the broker closed the connection before CONNACK (is the ledger the benchmark's?)", id);
	if (rc != 0) {
		fprintf(stderr, "%s: %s: CONNACK refused (return code %d); was the ledger made by 'bench_scale mkledger' "
		                "(or 'bench_bank mkledger') with enough devices and a monitor?\n", lg_name, id, connack);
		exit(1);
	}
}

void conn_close(conn *c)
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

bool conn_read(conn *c, packet_fn fn, void *ctx)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= LG_RBUF_MAX)
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

bool publish_parts(conn *c, uint8_t type, const uint8_t *b, size_t len, const char **topic, size_t *tlen,
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

size_t packet_len(const uint8_t *p)
{
	size_t len = 0, mult = 1, h = 1;
	for (; h < 5; h++) {
		len += (p[h] & 127u) * mult;
		mult *= 128;
		if (!(p[h] & 128))
			break;
	}
	return h + 1 + len;
}

/* ---- identities and process readings ---- */

void bench_token(char *tok, size_t cap, const char *cluster, const char *id)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	bench_keypair(id, pk, sk);
	uint64_t now = ig_now_ms() / 1000;
	if (ig_token_mint(tok, cap, sk, cluster, id, now, now + 600, NULL) < 0)
		die("minting a token failed", id);
	sodium_memzero(sk, sizeof sk);
}

double jnum(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

long proc_status_kb(int pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

struct cJSON *monitor_packet(conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                             uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk)
{
	if ((type & 0xf0) == 0x90) {
		if (len < 3 || body[2] == 0x80)
			die("the broker refused the monitor's subscription (is mon-000 a monitor in the ledger?)", NULL);
		(*subacks)++;
		return NULL;
	}
	const char *topic;
	const uint8_t *payload;
	size_t tlen, plen;
	if ((type & 0xf0) != 0x30 || !publish_parts(c, type, body, len, &topic, &tlen, &payload, &plen))
		return NULL;
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	if (m && tlen >= 5 && !memcmp(topic + tlen - 5, "/head", 5)) {
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(m, "ch_pubkey");
		if (cJSON_IsString(pk) && ig_hex_decode(ch_pk, IG_PK_BYTES, pk->valuestring, strlen(pk->valuestring)) == IG_OK)
			*have_ch_pk = true;
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}
