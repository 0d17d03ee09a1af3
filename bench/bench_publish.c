/*
 * bench_publish.c: device message throughput through the plugin's ACL
 * versus plain Mosquitto, in the same run, with the ratio.
 *
 * Why this exists: once connected, a device's cost to the cluster head is
 * the ACL check on every PUBLISH it sends and on every delivery to each
 * subscriber. This measures that cost where it matters: messages per second
 * a monitor receives while P devices publish status messages to their own
 * iotguard/C/dev/<id>/status topic and the monitor holds
 * iotguard/C/dev/+/status, so every message is WRITE-checked once and
 * READ-checked once.
 *
 * The load generator speaks MQTT 3.1.1 itself instead of using libmosquitto:
 * libmosquitto writes one packet per send() and reads byte by byte, which
 * would make this process, not the broker, the bottleneck and hide the
 * plugin's cost. Here publishers write batches of pre-encoded PUBLISH
 * packets and the monitor reads 256 KiB at a time.
 *
 * Publishing is windowed: at most --window messages may be sent and not yet
 * received by the monitor, so the broker is always busy but never has to
 * drop QoS 0 messages for a slow reader (Mosquitto drops them once a
 * client's queue is full). Messages lost anyway are reported.
 *
 *   bench_publish [--publishers P] [--qos 0|1|0,1] [--duration S] [--rounds R]
 *                 [--window W] [--payload BYTES]
 *                 --target NAME:PORT:CLUSTER[:CREDFILE] ...  (repeatable)
 *                 [--pid NAME=PID] ...   (broker pid: adds broker CPU per message)
 *                 [--ratio A/B:GOAL] ...
 * CREDFILE holds "id password" lines: publishers are the first P "dev-" ids,
 * the monitor the first "mon-" id. Without it clients are anonymous.
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

#define MAX_TARGETS 4
#define MAX_PUB 256
#define MAX_ROUNDS 16
#define MAX_RATIOS 8
#define RBUF (256 * 1024)
#define WBUF (64 * 1024)
#define BATCH 64                  /* packets encoded per publisher turn */

typedef struct target {
	char name[64];
	int port;
	int pid;                      /* broker pid for CPU accounting; 0 = unknown */
	char cluster[65];
	char *pub_id[MAX_PUB], *pub_pw[MAX_PUB];
	char *mon_id, *mon_pw;
	double rate[2][MAX_ROUNDS];   /* [qos][round] */
	uint64_t lost[2][MAX_ROUNDS];
	double cpu_us[2][MAX_ROUNDS]; /* broker CPU per delivered message */
} target;

typedef struct conn {
	int fd;
	uint8_t *w;
	size_t wlen, woff;
	uint8_t *r;
	size_t rlen;
} conn;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg, const char *detail)
{
	fprintf(stderr, "bench_publish: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

/* CPU time this process has used, in ns: the load generator's own cost per
 * operation shows whether it, rather than the broker, limits the rate. */
static uint64_t self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* On-CPU time of every thread of a process, in ns (from schedstat): gives a
 * per-message cost that does not depend on how much of its core the broker
 * got from other processes on a shared machine. */
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

/* ---- MQTT 3.1.1 encoding (only what this benchmark sends) ---------------- */

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

static size_t encode_connect(uint8_t *out, const char *id, const char *user, const char *pw)
{
	uint8_t body[2048];
	size_t n = 0;
	n += put_str(body + n, "MQTT", 4);
	body[n++] = 4;                                         /* protocol level 3.1.1 */
	body[n++] = (uint8_t)(0x02 | (user ? 0x80 : 0) | (pw ? 0x40 : 0));   /* clean session */
	body[n++] = 0;
	body[n++] = 0;                                         /* keepalive off */
	n += put_str(body + n, id, strlen(id));
	if (user)
		n += put_str(body + n, user, strlen(user));
	if (pw)
		n += put_str(body + n, pw, strlen(pw));
	size_t h = 0;
	out[h++] = 0x10;
	h += put_varint(out + h, n);
	memcpy(out + h, body, n);
	return h + n;
}

static size_t encode_subscribe(uint8_t *out, const char *filter, int qos)
{
	size_t flen = strlen(filter), rem = 2 + 2 + flen + 1, h = 0;
	out[h++] = 0x82;
	h += put_varint(out + h, rem);
	out[h++] = 0;
	out[h++] = 1;                                          /* packet id */
	h += put_str(out + h, filter, flen);
	out[h++] = (uint8_t)qos;
	return h;
}

/* PUBLISH with room for a packet id when qos 1; returns length and the
 * offset of the packet id (0 for qos 0). */
static size_t encode_publish(uint8_t *out, const char *topic, int qos, const uint8_t *payload, size_t plen,
                             size_t *pid_off)
{
	size_t tlen = strlen(topic), rem = 2 + tlen + (qos ? 2 : 0) + plen, h = 0;
	out[h++] = (uint8_t)(0x30 | (qos << 1));
	h += put_varint(out + h, rem);
	h += put_str(out + h, topic, tlen);
	*pid_off = 0;
	if (qos) {
		*pid_off = h;
		out[h++] = 0;
		out[h++] = 1;
	}
	memcpy(out + h, payload, plen);
	return h + plen;
}

/* ---- connections -------------------------------------------------------- */

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write during handshake failed", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Reads one whole packet (blocking); returns its first byte, body in body. */
static int read_packet(int fd, uint8_t *body, size_t cap, size_t *blen)
{
	uint8_t b;
	if (read(fd, &b, 1) != 1)
		return -1;
	int first = b;
	size_t len = 0, mult = 1;
	for (int i = 0; i < 4; i++) {
		if (read(fd, &b, 1) != 1)
			return -1;
		len += (b & 127) * mult;
		mult *= 128;
		if (!(b & 128))
			break;
	}
	if (len > cap)
		return -1;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, body + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	*blen = len;
	return first;
}

static void conn_open(conn *c, int port, const char *id, const char *pw, const char *what)
{
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("connect to the broker failed", strerror(errno));
	uint8_t pkt[2048];
	size_t n = encode_connect(pkt, id, pw ? id : NULL, pw);
	write_all(c->fd, pkt, n);
	size_t blen;
	int first = read_packet(c->fd, pkt, sizeof pkt, &blen);
	if (first != 0x20 || blen != 2 || pkt[1] != 0) {
		fprintf(stderr, "bench_publish: %s %s: CONNACK missing or refused (return code %d)\n", what, id,
		        first == 0x20 ? pkt[1] : -1);
		exit(1);
	}
	c->w = malloc(WBUF);
	c->r = malloc(RBUF);
	if (!c->w || !c->r)
		die("out of memory", NULL);
	c->wlen = c->woff = c->rlen = 0;
}

static void conn_nonblock(conn *c)
{
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die("fcntl O_NONBLOCK", strerror(errno));
}

static void conn_close(conn *c)
{
	if (c->fd >= 0) {
		static const uint8_t disconnect[2] = {0xe0, 0};
		if (write(c->fd, disconnect, 2) < 0) {
			/* the broker may already be gone; closing is all that is left */
		}
		close(c->fd);
	}
	free(c->w);
	free(c->r);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

/* Writes what is buffered; returns false if the socket is broken. */
static bool conn_flush(conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->w + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		return false;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	return true;
}

/* ---- one phase ---------------------------------------------------------- */

typedef struct pub {
	conn c;
	uint8_t pkt[512];
	size_t pkt_len, pid_off;
	uint16_t next_pid;
	uint64_t sent;
} pub;

typedef struct result {
	double rate, cpu_us, self_us;
	uint64_t received, sent, lost;
} result;

/* Messages sent and neither received nor written off as dropped. */
static uint64_t outstanding(uint64_t sent, uint64_t received, uint64_t written_off)
{
	return sent > received + written_off ? sent - received - written_off : 0;
}

/* Parses what the monitor has read: counts PUBLISHes, queues PUBACKs. */
static uint64_t monitor_parse(conn *m)
{
	uint64_t msgs = 0;
	size_t off = 0;
	while (off + 2 <= m->rlen) {
		size_t len = 0, mult = 1, h = 1;
		bool complete = false;
		for (; h < 5 && off + h < m->rlen; h++) {
			uint8_t b = m->r[off + h];
			len += (b & 127) * mult;
			mult *= 128;
			if (!(b & 128)) {
				complete = true;
				h++;
				break;
			}
		}
		if (!complete || off + h + len > m->rlen)
			break;
		uint8_t type = m->r[off];
		if ((type & 0xf0) == 0x30) {
			msgs++;
			int qos = (type >> 1) & 3;
			if (qos) {
				const uint8_t *b = m->r + off + h;
				size_t tlen = ((size_t)b[0] << 8) | b[1];
				if (m->wlen + 4 > WBUF && !conn_flush(m))
					die("monitor connection broke", NULL);
				if (m->wlen + 4 > WBUF)
					die("monitor cannot send PUBACKs fast enough", NULL);
				m->w[m->wlen++] = 0x40;
				m->w[m->wlen++] = 2;
				m->w[m->wlen++] = b[2 + tlen];
				m->w[m->wlen++] = b[3 + tlen];
			}
		}
		off += h + len;
	}
	memmove(m->r, m->r + off, m->rlen - off);
	m->rlen -= off;
	return msgs;
}

static result run_phase(target *t, int npub, int qos, double warmup, double duration, uint64_t window,
                        size_t payload_len)
{
	pub *pubs = calloc((size_t)npub, sizeof *pubs);
	struct pollfd *pfd = calloc((size_t)npub + 1, sizeof *pfd);
	if (!pubs || !pfd)
		die("out of memory", NULL);
	conn mon;
	conn_open(&mon, t->port, t->mon_id, t->mon_pw, "monitor");
	char filter[256];
	snprintf(filter, sizeof filter, "iotguard/%s/dev/+/status", t->cluster);
	uint8_t pkt[512];
	size_t n = encode_subscribe(pkt, filter, qos), blen;
	write_all(mon.fd, pkt, n);
	int first = read_packet(mon.fd, pkt, sizeof pkt, &blen);
	if (first != 0x90 || blen != 3 || pkt[2] == 0x80)
		die("the monitor's SUBSCRIBE was refused", filter);
	conn_nonblock(&mon);

	uint8_t payload[1024];
	for (int i = 0; i < npub; i++) {
		pub *p = &pubs[i];
		conn_open(&p->c, t->port, t->pub_id[i], t->pub_pw[i], "publisher");
		conn_nonblock(&p->c);
		char topic[256];
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/status", t->cluster, t->pub_id[i]);
		int pl = snprintf((char *)payload, sizeof payload,
		                  "{\"id\":\"%s\",\"state\":\"online\",\"ts\":1700000000000,\"seq\":0,\"uptime_s\":0}",
		                  t->pub_id[i]);
		size_t plen = (size_t)pl;
		while (plen < payload_len && plen < sizeof payload)
			payload[plen++] = ' ';
		p->pkt_len = encode_publish(p->pkt, topic, qos, payload, plen, &p->pid_off);
		p->next_pid = 1;
	}

	uint64_t received = 0, received_at_start = 0, received_at_end = 0, sent = 0;
	double t0 = now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = t_count, t_stopped = t_end;
	bool counting = false, stopping = false;
	double stop_deadline = 0, last_progress = t0;
	uint64_t last_received = 0, written_off = 0, cpu_start = 0, cpu_used = 0;
	uint64_t self_start = 0, self_used = 0;
	int turn = 0;
	for (;;) {
		double now = now_s();
		if (!counting && now >= t_count) {
			counting = true;
			received_at_start = received;
			t_counted = now;
			cpu_start = t->pid ? process_cpu_ns(t->pid) : 0;
			self_start = self_cpu_ns();
		}
		if (!stopping && now >= t_end) {
			stopping = true;
			stop_deadline = now + 2.0;
			received_at_end = received;
			t_stopped = now;
			cpu_used = t->pid ? process_cpu_ns(t->pid) - cpu_start : 0;
			self_used = self_cpu_ns() - self_start;
		}
		if (stopping && (received + written_off >= sent || now >= stop_deadline))
			break;
		if (received != last_received) {
			last_received = received;
			last_progress = now;
		} else if (!stopping && now - last_progress > 0.5) {
			/* The broker dropped messages (a queue limit), so the window would
			 * never reopen: write them off as lost and go on. */
			if (getenv("BENCH_DEBUG"))
				fprintf(stderr, "stall at %.2f s: sent %" PRIu64 " received %" PRIu64 " mon wbuf %zu/%zu\n", now - t0, sent,
				        received, mon.woff, mon.wlen);
			written_off = sent - received;
			last_progress = now;
		}
		if (!stopping) {
			/* Fill publishers round-robin while the window allows. */
			for (int k = 0; k < npub && outstanding(sent, received, written_off) < window; k++) {
				pub *p = &pubs[(turn + k) % npub];
				int batch = 0;
				while (batch < BATCH && outstanding(sent, received, written_off) < window && p->c.wlen + p->pkt_len <= WBUF) {
					uint8_t *dst = p->c.w + p->c.wlen;
					memcpy(dst, p->pkt, p->pkt_len);
					if (p->pid_off) {
						dst[p->pid_off] = (uint8_t)(p->next_pid >> 8);
						dst[p->pid_off + 1] = (uint8_t)p->next_pid;
						if (++p->next_pid == 0)
							p->next_pid = 1;
					}
					p->c.wlen += p->pkt_len;
					p->sent++;
					sent++;
					batch++;
				}
				if (!conn_flush(&p->c))
					die("a publisher's connection broke (was it refused by the ACL?)", t->pub_id[(turn + k) % npub]);
			}
			turn = (turn + 1) % npub;
		}
		int nf = 0;
		pfd[nf].fd = mon.fd;
		pfd[nf].events = POLLIN | (mon.wlen > mon.woff ? POLLOUT : 0);
		nf++;
		for (int i = 0; i < npub; i++) {
			pfd[nf].fd = pubs[i].c.fd;
			pfd[nf].events = POLLIN | (pubs[i].c.wlen > pubs[i].c.woff ? POLLOUT : 0);
			nf++;
		}
		int pr = poll(pfd, (nfds_t)nf, outstanding(sent, received, written_off) < window && !stopping ? 0 : 50);
		if (pr < 0 && errno != EINTR)
			die("poll", strerror(errno));
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			for (;;) {
				ssize_t r = read(mon.fd, mon.r + mon.rlen, RBUF - mon.rlen);
				if (r > 0) {
					mon.rlen += (size_t)r;
					received += monitor_parse(&mon);
					if (mon.rlen == RBUF)
						die("monitor read buffer full of one packet", NULL);
					continue;
				}
				if (r == 0)
					die("the broker closed the monitor's connection", NULL);
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno != EINTR)
					die("monitor read", strerror(errno));
			}
		}
		if (mon.wlen > mon.woff && !conn_flush(&mon))
			die("monitor connection broke", NULL);
		for (int i = 0; i < npub; i++) {
			short re = pfd[i + 1].revents;
			if (re & (POLLIN | POLLHUP | POLLERR)) {
				uint8_t sink[16384];   /* PUBACKs for qos 1; nothing else is expected */
				ssize_t r = read(pubs[i].c.fd, sink, sizeof sink);
				if (r == 0)
					die("the broker closed a publisher's connection (ACL refusal?)", t->pub_id[i]);
			}
			if ((re & POLLOUT) && !conn_flush(&pubs[i].c))
				die("a publisher's connection broke", t->pub_id[i]);
		}
	}
	if (getenv("BENCH_DEBUG")) {
		fprintf(stderr, "end: sent %" PRIu64 " received %" PRIu64 " mon rlen %zu w %zu/%zu\n", sent, received, mon.rlen,
		        mon.woff, mon.wlen);
		for (int i = 0; i < npub; i++)
			fprintf(stderr, "  pub %d sent %" PRIu64 " w %zu/%zu\n", i, pubs[i].sent, pubs[i].c.woff, pubs[i].c.wlen);
	}
	result res = {0};
	res.sent = sent;
	res.received = received;
	res.lost = sent > received ? sent - received : 0;   /* includes written_off */
	res.rate = (double)(received_at_end - received_at_start) / (t_stopped - t_counted);
	if (received_at_end > received_at_start) {
		res.cpu_us = (double)cpu_used / 1e3 / (double)(received_at_end - received_at_start);
		res.self_us = (double)self_used / 1e3 / (double)(received_at_end - received_at_start);
	}
	for (int i = 0; i < npub; i++)
		conn_close(&pubs[i].c);
	conn_close(&mon);
	free(pubs);
	free(pfd);
	return res;
}

/* ---- main ------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		die("out of memory", NULL);
	return d;
}

static void load_target_creds(target *t, const char *path, int npub)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot open credentials file", path);
	char line[2048];
	int np = 0;
	while (fgets(line, sizeof line, f)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		if (!strncmp(line, "mon-", 4) && !t->mon_id) {
			t->mon_id = xstrdup(line);
			t->mon_pw = xstrdup(sp + 1);
		} else if (!strncmp(line, "dev-", 4) && np < npub) {
			bool dup = false;
			for (int i = 0; i < np; i++)
				dup = dup || !strcmp(t->pub_id[i], line);
			if (!dup) {
				t->pub_id[np] = xstrdup(line);
				t->pub_pw[np] = xstrdup(sp + 1);
				np++;
			}
		}
	}
	fclose(f);
	if (!t->mon_id || np < npub)
		die("credentials file needs one mon- line and enough distinct dev- lines", path);
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

int main(int argc, char **argv)
{
	target targets[MAX_TARGETS];
	const char *specs[MAX_TARGETS];
	const char *ratios[MAX_RATIOS];
	const char *pid_specs[MAX_TARGETS];
	int nt = 0, nratios = 0, npub = 8, rounds = 3, npids = 0;
	double duration = 3.0, warmup = 0.5;
	uint64_t window = 2000;
	size_t payload = 0;
	bool want_qos[2] = {true, true};
	memset(targets, 0, sizeof targets);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("option needs a value", a);
		if (!strcmp(a, "--publishers"))
			npub = atoi(v);
		else if (!strcmp(a, "--duration"))
			duration = atof(v);
		else if (!strcmp(a, "--warmup"))
			warmup = atof(v);
		else if (!strcmp(a, "--rounds"))
			rounds = atoi(v);
		else if (!strcmp(a, "--window"))
			window = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--payload"))
			payload = (size_t)atol(v);
		else if (!strcmp(a, "--qos")) {
			want_qos[0] = strchr(v, '0') != NULL;
			want_qos[1] = strchr(v, '1') != NULL;
		} else if (!strcmp(a, "--target")) {
			if (nt == MAX_TARGETS)
				die("too many --target options", NULL);
			specs[nt++] = v;
		} else if (!strcmp(a, "--pid")) {
			pid_specs[npids++ % MAX_TARGETS] = v;
		} else if (!strcmp(a, "--ratio")) {
			if (nratios == MAX_RATIOS)
				die("too many --ratio options", NULL);
			ratios[nratios++] = v;
		} else {
			fprintf(stderr, "usage: bench_publish [--publishers P] [--qos 0|1|0,1] [--duration S] [--rounds R]\n"
			                "         [--window W] [--payload BYTES] --target NAME:PORT:CLUSTER[:CREDFILE] ...\n"
			                "         [--ratio A/B:GOAL]\n");
			return 2;
		}
		i++;
	}
	if (!nt || npub < 1 || npub > MAX_PUB || rounds < 1 || rounds > MAX_ROUNDS || duration <= 0 || window < 1)
		die("need a --target, 1 <= publishers <= 256, 1 <= rounds <= 16, duration > 0, window >= 1", NULL);

	for (int i = 0; i < nt; i++) {
		target *t = &targets[i];
		char spec[4096];
		snprintf(spec, sizeof spec, "%s", specs[i]);
		char *name = strtok(spec, ":"), *port = strtok(NULL, ":"), *cluster = strtok(NULL, ":"),
		     *file = strtok(NULL, "");
		if (!name || !port || !cluster)
			die("--target needs NAME:PORT:CLUSTER[:CREDFILE]", specs[i]);
		snprintf(t->name, sizeof t->name, "%s", name);
		snprintf(t->cluster, sizeof t->cluster, "%s", cluster);
		t->port = atoi(port);
		if (file) {
			load_target_creds(t, file, npub);
		} else {
			for (int p = 0; p < npub; p++) {
				char id[32];
				snprintf(id, sizeof id, "dev-%07d", p);
				t->pub_id[p] = xstrdup(id);
			}
			t->mon_id = xstrdup("mon-000");
		}
	}

	for (int i = 0; i < npids && i < MAX_TARGETS; i++) {
		char spec[128];
		snprintf(spec, sizeof spec, "%s", pid_specs[i]);
		char *eq = strchr(spec, '=');
		bool found = false;
		if (eq) {
			*eq = '\0';
			for (int j = 0; j < nt; j++)
				if (!strcmp(targets[j].name, spec)) {
					targets[j].pid = atoi(eq + 1);
					found = true;
				}
		}
		if (!found)
			die("--pid needs NAME=PID naming a --target", pid_specs[i]);
	}
	printf("== bench_publish: messages/s received by one monitor on iotguard/C/dev/+/status from %d publishers, "
	       "window %" PRIu64 ", %d rounds x %.1f s (+%.1f s warm-up), rounds interleaved ==\n",
	       npub, window, rounds, duration, warmup);
	for (int qos = 0; qos <= 1; qos++) {
		if (!want_qos[qos])
			continue;
		for (int r = 0; r < rounds; r++) {
			for (int i = 0; i < nt; i++) {
				target *t = &targets[i];
				result res = run_phase(t, npub, qos, warmup, duration, window, payload);
				t->rate[qos][r] = res.rate;
				t->lost[qos][r] = res.lost;
				t->cpu_us[qos][r] = res.cpu_us;
				printf("qos %d round %d %-10s %9.0f msg/s  CPU us/msg: broker %5.2f, load gen %5.2f  (sent %" PRIu64
				       ", received %" PRIu64 ", lost %" PRIu64 ")\n",
				       qos, r + 1, t->name, res.rate, res.cpu_us, res.self_us, res.sent, res.received, res.lost);
				fflush(stdout);
			}
		}
		printf("-- qos %d, median of %d rounds --\n", qos, rounds);
		for (int i = 0; i < nt; i++) {
			target *t = &targets[i];
			uint64_t lost = 0;
			for (int r = 0; r < rounds; r++)
				lost += t->lost[qos][r];
			double m = median(t->rate[qos], rounds);
			printf("%-10s %9.0f msg/s  broker CPU %5.2f us/msg  lost %" PRIu64 "\n", t->name, m,
			       median(t->cpu_us[qos], rounds), lost);
			printf("RESULT publish.qos%d.%s.rate %.0f\n", qos, t->name, m);
			if (t->pid)
				printf("RESULT publish.qos%d.%s.cpu_us %.2f\n", qos, t->name, median(t->cpu_us[qos], rounds));
			printf("RESULT publish.qos%d.%s.lost %" PRIu64 "\n", qos, t->name, lost);
		}
		for (int i = 0; i < nratios; i++) {
			char spec[256];
			snprintf(spec, sizeof spec, "%s", ratios[i]);
			char *a = strtok(spec, "/"), *b = strtok(NULL, ":"), *goal = strtok(NULL, "");
			target *ta = NULL, *tb = NULL;
			for (int j = 0; j < nt; j++) {
				if (a && !strcmp(targets[j].name, a))
					ta = &targets[j];
				if (b && !strcmp(targets[j].name, b))
					tb = &targets[j];
			}
			if (!ta || !tb)
				die("--ratio names an unknown target", ratios[i]);
			double ra = median(ta->rate[qos], rounds), rb = median(tb->rate[qos], rounds);
			double q = rb > 0 ? ra / rb : 0;
			printf("qos %d ratio %s/%s = %.3f", qos, a, b, q);
			if (goal)
				printf("  (target >= %s)", goal);
			printf("\n");
			printf("RESULT publish.qos%d.ratio.%s_%s %.3f\n", qos, a, b, q);
			double ca = median(ta->cpu_us[qos], rounds), cb = median(tb->cpu_us[qos], rounds);
			if (ca > 0 && cb > 0) {
				printf("qos %d capacity ratio %s/%s = %.3f (broker CPU per message %.2f vs %.2f us)\n", qos, a, b, cb / ca,
				       ca, cb);
				printf("RESULT publish.qos%d.capacity.%s_%s %.3f\n", qos, a, b, cb / ca);
			}
		}
	}
	for (int i = 0; i < nt; i++) {
		for (int p = 0; p < npub; p++) {
			free(targets[i].pub_id[p]);
			free(targets[i].pub_pw[p]);
		}
		free(targets[i].mon_id);
		free(targets[i].mon_pw);
	}
	return 0;
}
