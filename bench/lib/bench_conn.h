/*
 * bench_conn.h: the minimal poll()-driven MQTT 3.1.1 client the load
 * generators share, and one pass of their poll loop.
 *
 * Why this exists: bench_keys, bench_m2m, bench_entropy, bench_flood and
 * bench_bank drive hundreds of devices from one poll() loop. One copy of
 * that client (buffers, partial writes, packet framing) keeps the tools
 * measuring the same thing the same way.
 *
 * Not a general MQTT client: CONNECT is blocking (then the socket goes
 * non-blocking), no keepalive, QoS 0/1 only, one filter per SUBSCRIBE, and
 * every failure ends the process (a benchmark has nothing to recover).
 */
#ifndef IOTGUARD_BENCH_CONN_H
#define IOTGUARD_BENCH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "ig_common.h"

#define BENCH_CONN_RBUF_MAX (16u * 1024u * 1024u)   /* largest packet a connection accepts */

typedef struct bench_conn {
	int fd;
	uint8_t *w;
	size_t wcap, wlen, woff;      /* bytes [woff, wlen) are queued for writing */
	uint8_t *r;
	size_t rcap, rlen;
	uint16_t next_pid;
} bench_conn;

typedef void (*bench_conn_packet_fn)(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len);

/* TCP connect to 127.0.0.1:port, CONNECT with client id = username = id
 * (clean session), CONNACK checked; then the socket is non-blocking.
 * password NULL: no username or password (an anonymous broker). */
void bench_conn_open(bench_conn *c, int port, const char *id, const char *password);
/* The same without dying: 0 connected; 1 TCP connect refused (broker not
 * listening yet); -1 closed or refused at CONNECT (*connack_rc = the CONNACK
 * return code, or -1 if none came). c->fd is -1 unless 0 was returned. */
int bench_conn_try_open(bench_conn *c, int port, const char *id, const char *password, int *connack_rc);
/* DISCONNECT, close, free; c can be opened again. */
void bench_conn_close(bench_conn *c);
/* Makes room for n more bytes in the write buffer. */
void bench_conn_reserve(bench_conn *c, size_t n);
/* Appends a PUBLISH and returns where its payload (plen bytes) goes. */
uint8_t *bench_conn_publish_begin(bench_conn *c, const char *topic, size_t tlen, size_t plen, int qos);
void bench_conn_publish(bench_conn *c, const char *topic, const void *payload, size_t plen, int qos);
void bench_conn_subscribe(bench_conn *c, const char *filter, int qos);
/* Appends a 4-byte acknowledgement (PUBACK 0x40, ...) for packet id pid. */
void bench_conn_ack(bench_conn *c, uint8_t type, const uint8_t pid[2]);
/* Writes what is buffered; false if the connection is broken. */
bool bench_conn_flush(bench_conn *c);
bool bench_conn_wants_write(const bench_conn *c);
/* Reads everything available and hands each complete packet to fn; false
 * when the broker closed the connection. */
bool bench_conn_read(bench_conn *c, bench_conn_packet_fn fn, void *ctx);
/* Splits a PUBLISH body; queues its PUBACK when QoS 1. */
bool bench_conn_publish_parts(bench_conn *c, uint8_t type, const uint8_t *b, size_t len, const char **topic,
                              size_t *tlen, const uint8_t **payload, size_t *plen);

/* bench_conn_monitor_packet for a monitor that also reads the plugin's
 * stats: fills *ledger from a stats message and returns it (parsed JSON,
 * for the caller's own fields, which it frees); NULL for anything else. */
struct bench_stats_ledger;
struct cJSON *bench_conn_monitor_stats(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                                       uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk, struct bench_stats_ledger *ledger);

/* Sorts a packet a client received. A SUBACK is checked (a refusal ends the
 * process, naming who) and counted in *subacks; a PUBLISH is split (its
 * PUBACK queued) and true returned; anything else (acknowledgements of what
 * the client sent) returns false. */
typedef struct bench_conn_msg {
	const char *topic;         /* not NUL-terminated: tlen bytes */
	size_t tlen;
	const uint8_t *payload;
	size_t plen;
} bench_conn_msg;

bool bench_conn_take_publish(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, const char *who,
                             int *subacks, bench_conn_msg *msg);

/* A monitor connection's routine packets: counts its SUBACKs (dying if one
 * was refused) and pins the cluster-head key from the retained ledger head.
 * Returns any other PUBLISH as parsed JSON (the caller frees it), else NULL. */
struct cJSON;
struct cJSON *bench_conn_monitor_packet(bench_conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                                        uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk);

/* The options every load generator takes, into uint64_t port and pid and
 * const char *cluster: the broker's port, the cluster, and the broker's pid
 * (0: unknown; else its CPU per operation is printed). */
#define BENCH_CONN_CLI_OPTIONS(port, cluster, pid) \
	CLI_NUMBER("port", 0, (port), 1, 65535), CLI_TEXT("cluster", 0, (cluster)), \
	CLI_NUMBER("pid", 0, (pid), 0, INT32_MAX)

/* The connections one poll() loop drives, for bench_conn_pump: either a
 * monitor then an array of clients (structs stride bytes apart, each with
 * its bench_conn at conn_off and its id, a char array, at id_off; see
 * BENCH_CONN_ARRAY), or, when client is set, whatever it returns. */
typedef struct bench_conn_set {
	int n;                    /* connections in all, the monitor included */
	bench_conn *mon;
	const char *mon_id;
	bench_conn_packet_fn on_mon;
	void *devs;
	size_t stride, conn_off, id_off;
	bench_conn_packet_fn on_dev;
	/* Connection i, its id (for messages) and what handles its packets. */
	bench_conn *(*client)(void *ctx, int i, const char **id, bench_conn_packet_fn *fn);
	const char *closed_why;   /* appended when the broker closes one: "(ACL refusal?)" */
	void *ctx;                /* handed to every packet handler */
	struct pollfd *pfd;       /* n entries */
} bench_conn_set;

#define BENCH_CONN_ARRAY(arr, type) \
	.devs = (arr), .stride = sizeof(type), .conn_off = offsetof(type, c), .id_off = offsetof(type, id)

/* One pass over every connection: write what is queued, poll (timeout_ms),
 * read, write the acknowledgements reading queued. Dies when the broker
 * closes a connection or one breaks. */
void bench_conn_pump(const bench_conn_set *s, int timeout_ms);

#endif
