/*
 * loadgen.h: what the poll()-driven broker load generators share: a minimal
 * MQTT 3.1.1 client, the benchmark identities' keys and tokens, and CPU and
 * memory readings of a process.
 *
 * Why this exists: bench_keys, bench_m2m, bench_entropy and bench_bank all
 * drive hundreds of devices from one poll() loop and speak MQTT themselves,
 * because libmosquitto's one-send()-per-packet writes and byte-by-byte reads
 * would make the load generator, not the broker, the limit. One copy of that
 * client keeps the tools measuring the same thing the same way.
 *
 * Not a general MQTT client: CONNECT is blocking (then the socket goes
 * non-blocking), no keepalive, QoS 0/1 only, one filter per SUBSCRIBE, and
 * every failure ends the process (a benchmark has nothing to recover).
 * Identities are the benchmark's: keys derived from the id with a fixed
 * string (see bench_scale.c), so they are public: never use them elsewhere.
 */
#ifndef IOTGUARD_BENCH_LOADGEN_H
#define IOTGUARD_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_common.h"

/* Printed before every message of die(); each tool sets its own name. */
extern const char *lg_name;

#define LG_RBUF_MAX (16u * 1024u * 1024u)   /* largest packet a connection accepts */

/* ---- small helpers ---- */
double now_s(void);                                  /* CLOCK_MONOTONIC, seconds */
void die(const char *msg, const char *detail) __attribute__((noreturn));
void *xrealloc(void *p, size_t n);
uint64_t self_cpu_ns(void);                          /* this process, user + system */
/* On-CPU time of every thread of process pid (a broker: its event loop and
 * ledger writer) from /proc/PID/task/TID/schedstat: a cost per operation that
 * does not depend on how much of its core the broker got. 0 if unreadable. */
uint64_t process_cpu_ns(int pid);
/* A field of /proc/PID/status in kB ("VmRSS", "RssAnon", "VmHWM"); -1 if absent. */
long proc_status_kb(int pid, const char *field);
/* Number in o.a[.b[.c]] of a JSON object, -1 if absent or not a number. */
struct cJSON;
double jnum(const struct cJSON *o, const char *a, const char *b, const char *c);

/* ---- benchmark identities ---- */
void bench_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES]);
/* A connection token for id, valid for 600 s from now. */
void bench_token(char *tok, size_t cap, const char *cluster, const char *id);

/* ---- minimal MQTT 3.1.1 client ---- */
typedef struct conn {
	int fd;
	uint8_t *w;
	size_t wcap, wlen, woff;      /* bytes [woff, wlen) are queued for writing */
	uint8_t *r;
	size_t rcap, rlen;
	uint16_t next_pid;
} conn;

typedef void (*packet_fn)(void *ctx, conn *c, uint8_t type, const uint8_t *body, size_t len);

/* TCP connect to 127.0.0.1:port, CONNECT with client id = username = id
 * (clean session), CONNACK checked; then the socket is non-blocking. */
void conn_open(conn *c, int port, const char *id, const char *password);
/* The same without dying: 0 connected; 1 TCP connect refused (broker not
 * listening yet); -1 closed or refused at CONNECT (*connack_rc = the CONNACK
 * return code, or -1 if none came). c->fd is -1 unless 0 was returned. */
int conn_try_open(conn *c, int port, const char *id, const char *password, int *connack_rc);
/* DISCONNECT, close, free; c can be opened again. */
void conn_close(conn *c);
/* Makes room for n more bytes in the write buffer. */
void conn_reserve(conn *c, size_t n);
/* Appends a PUBLISH and returns where its payload (plen bytes) goes. */
uint8_t *conn_publish_begin(conn *c, const char *topic, size_t tlen, size_t plen, int qos);
void conn_publish(conn *c, const char *topic, const void *payload, size_t plen, int qos);
void conn_subscribe(conn *c, const char *filter, int qos);
/* Appends a 4-byte acknowledgement (PUBACK 0x40, ...) for packet id pid. */
void conn_ack(conn *c, uint8_t type, const uint8_t pid[2]);
/* Writes what is buffered; false if the connection is broken. */
bool conn_flush(conn *c);
bool conn_wants_write(const conn *c);
/* Reads everything available and hands each complete packet to fn; false
 * when the broker closed the connection. */
bool conn_read(conn *c, packet_fn fn, void *ctx);
/* Splits a PUBLISH body; queues its PUBACK when QoS 1. */
bool publish_parts(conn *c, uint8_t type, const uint8_t *b, size_t len, const char **topic, size_t *tlen,
                   const uint8_t **payload, size_t *plen);
/* Length of the whole packet at p (fixed header included); for packets this
 * process encoded itself. */
size_t packet_len(const uint8_t *p);

/* A monitor connection's routine packets: counts its SUBACKs (dying if one
 * was refused) and pins the cluster-head key from the retained ledger head.
 * Returns any other PUBLISH as parsed JSON (the caller frees it), else NULL. */
struct cJSON *monitor_packet(conn *c, uint8_t type, const uint8_t *body, size_t len, int *subacks,
                             uint8_t ch_pk[IG_PK_BYTES], bool *have_ch_pk);

#endif
