/*
 * bench_conn.c: the load generators' MQTT client and poll pass (see
 * bench_conn.h for why they speak MQTT themselves).
 */
#include "bench_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>

#include "bench.h"
#include "bench_mqtt.h"
#include "bench_stats.h"

void bench_conn_reserve(bench_conn *c, size_t n)
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
		c->w = bench_xrealloc(c->w, cap);
		c->wcap = cap;
	}
}

uint8_t *bench_conn_publish_begin(bench_conn *c, const char *topic, size_t tlen, size_t plen, int qos)
{
	bench_conn_reserve(c, BENCH_MQTT_HEADER_MAX + 4 + tlen + plen);
	if (qos && ++c->next_pid == 0)
		c->next_pid = 1;
	size_t pid_off;
	size_t h = bench_mqtt_publish_header(c->w + c->wlen, topic, tlen, plen, qos, c->next_pid, &pid_off);
	uint8_t *payload = c->w + c->wlen + h;
	c->wlen += h + plen;
	return payload;
}

void bench_conn_publish(bench_conn *c, const char *topic, const void *payload, size_t plen, int qos)
{
	memcpy(bench_conn_publish_begin(c, topic, strlen(topic), plen, qos), payload, plen);
}

void bench_conn_subscribe(bench_conn *c, const char *filter, int qos)
{
	size_t flen = strlen(filter);
	bench_conn_reserve(c, flen + 11);
	c->wlen += bench_mqtt_subscribe(c->w + c->wlen, filter, flen, qos);
}

void bench_conn_ack(bench_conn *c, uint8_t type, const uint8_t pid[2])
{
	bench_conn_reserve(c, 4);
	c->w[c->wlen++] = type;
	c->w[c->wlen++] = 2;
	c->w[c->wlen++] = pid[0];
	c->w[c->wlen++] = pid[1];
}

bool bench_conn_flush(bench_conn *c)
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

bool bench_conn_wants_write(const bench_conn *c)
{
	return c->wlen > c->woff;
}

/* Blocking until CONNACK, so setup errors surface one at a time. */
int bench_conn_try_open(bench_conn *c, int port, const char *id, const char *password, int *connack_rc)
{
	memset(c, 0, sizeof *c);
	*connack_rc = -1;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		bench_die("socket", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(c->fd);
		c->fd = -1;
		return 1;
	}
	uint8_t pkt[2100];
	size_t n = bench_mqtt_connect(pkt, sizeof pkt, id, password ? id : NULL, password);
	bool ok = true;
	for (size_t off = 0; ok && off < n;) {
		ssize_t k = write(c->fd, pkt + off, n - off);
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
		bench_die("fcntl O_NONBLOCK", strerror(errno));
	c->rcap = 64 * 1024;
	c->r = bench_xrealloc(NULL, c->rcap);
	return 0;
}

void bench_conn_open(bench_conn *c, int port, const char *id, const char *password)
{
	int connack = -1, rc = bench_conn_try_open(c, port, id, password, &connack);
	if (rc == 1)
		bench_die("connect to the broker on 127.0.0.1 failed", strerror(errno));
	if (rc != 0 && connack < 0)
		bench_die("the broker closed the connection before CONNACK (is the ledger the benchmark's?)", id);
	if (rc != 0)
		bench_dief("%s: CONNACK refused (return code %d); was the ledger made by 'bench_scale mkledger' "
		           "(or 'bench_bank mkledger') with enough devices and a monitor?", id, connack);
}

void bench_conn_close(bench_conn *c)
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

bool bench_conn_read(bench_conn *c, bench_conn_packet_fn fn, void *ctx)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= BENCH_CONN_RBUF_MAX)
				bench_die("a packet larger than 16 MiB arrived", NULL);
			c->rcap *= 2;
			c->r = bench_xrealloc(c->r, c->rcap);
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
		size_t off = 0, h, len;
		while (off + 2 <= c->rlen && bench_mqtt_frame(c->r + off, c->rlen - off, &h, &len)) {
			fn(ctx, c, c->r[off], c->r + off + h, len);
			off += h + len;
		}
		memmove(c->r, c->r + off, c->rlen - off);
		c->rlen -= off;
	}
}

bool bench_conn_publish_parts(bench_conn *c, uint8_t type, const uint8_t *b, size_t len, const char **topic,
                              size_t *tlen, const uint8_t **payload, size_t *plen)
{
	const uint8_t *pid;
	if (!bench_mqtt_publish_parts(type, b, len, topic, tlen, &pid, payload, plen))
		return false;
	if (pid && ((type >> 1) & 3) == 1)
		bench_conn_ack(c, 0x40, pid);
	return true;
}

bool bench_conn_take_publish(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, const char *who,
                             int *subacks, bench_conn_msg *msg)
{
	if ((type & 0xf0) == 0x90) {
		if (len < 3 || body[2] == 0x80)
			bench_die("the broker refused a subscription of", who);
		(*subacks)++;
		return false;
	}
	return (type & 0xf0) == 0x30 &&
	       bench_conn_publish_parts(c, type, body, len, &msg->topic, &msg->tlen, &msg->payload, &msg->plen);
}

struct cJSON *bench_conn_monitor_packet(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                                        uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk)
{
	bench_conn_msg msg;
	if (!bench_conn_take_publish(c, type, body, len, "mon-000 (is it a monitor in the ledger?)", subacks, &msg))
		return NULL;
	const char *topic = msg.topic;
	size_t tlen = msg.tlen;
	cJSON *m = cJSON_ParseWithLength((const char *)msg.payload, msg.plen);
	if (m && tlen >= 5 && !memcmp(topic + tlen - 5, "/head", 5)) {
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(m, "ch_pubkey");
		if (cJSON_IsString(pk) && ig_hex_decode(ch_pk, IG_PK_BYTES, pk->valuestring, strlen(pk->valuestring)) == IG_OK)
			*have_ch_pk = true;
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

static void flush_or_die(bench_conn *c, const char *id)
{
	if (bench_conn_wants_write(c) && !bench_conn_flush(c))
		bench_die("a connection broke while writing (refused by the ACL?)", id);
}

static bench_conn *conn_at(const bench_conn_set *s, int i, const char **id, bench_conn_packet_fn *fn)
{
	if (s->client)
		return s->client(s->ctx, i, id, fn);
	if (i == 0) {
		*id = s->mon_id;
		*fn = s->on_mon;
		return s->mon;
	}
	char *d = (char *)s->devs + (size_t)(i - 1) * s->stride;
	*id = d + s->id_off;
	*fn = s->on_dev;
	return (bench_conn *)(void *)(d + s->conn_off);
}

void bench_conn_pump(const bench_conn_set *s, int timeout_ms)
{
	struct pollfd *pfd = s->pfd;
	const char *id;
	bench_conn_packet_fn fn;
	for (int i = 0; i < s->n; i++) {
		bench_conn *c = conn_at(s, i, &id, &fn);
		flush_or_die(c, id);
		pfd[i].fd = c->fd;
		pfd[i].events = POLLIN | (bench_conn_wants_write(c) ? POLLOUT : 0);
	}
	int pr = poll(pfd, (nfds_t)s->n, timeout_ms);
	if (pr < 0 && errno != EINTR)
		bench_die("poll", strerror(errno));
	if (pr <= 0)
		return;
	for (int i = 0; i < s->n; i++) {
		bench_conn *c = conn_at(s, i, &id, &fn);
		if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !bench_conn_read(c, fn, s->ctx))
			bench_dief("the broker closed %s's connection %s", id, s->closed_why);
		flush_or_die(c, id);
	}
}

struct cJSON *bench_conn_monitor_stats(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                                       uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk, bench_stats_ledger *ledger)
{
	cJSON *m = bench_conn_monitor_packet(c, type, body, len, subacks, ch_pk, have_ch_pk);
	if (m)
		bench_stats_ledger_read(ledger, m);
	return m;
}
