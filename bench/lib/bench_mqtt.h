/*
 * bench_mqtt.h: the one MQTT 3.1.1 encoder (and fixed-header decoder) the
 * benches use.
 *
 * Why this exists: the load generators speak MQTT themselves, because
 * libmosquitto's one-send()-per-packet writes and byte-by-byte reads would
 * make the load generator, not the broker, the limit. bench_publish,
 * bench_flood and the shared client (bench_conn.h) each had an encoder of
 * their own; this is the one they now share.
 *
 * Only what the benches send: CONNECT with clean session and no keepalive,
 * SUBSCRIBE of one filter, PUBLISH at QoS 0/1, 2-byte acknowledgements. The
 * caller provides buffers large enough (sizes below); a CONNECT that would
 * not fit ends the process.
 */
#ifndef IOTGUARD_BENCH_MQTT_H
#define IOTGUARD_BENCH_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room a PUBLISH or SUBSCRIBE fixed header plus a 2-byte-length string and
 * packet id need besides the string itself. */
#define BENCH_MQTT_HEADER_MAX 5

/* Remaining-length varint; returns bytes written (1..4). */
size_t bench_mqtt_put_varint(uint8_t *p, size_t v);
/* 2-byte big-endian length then the bytes; returns len + 2. */
size_t bench_mqtt_put_str(uint8_t *p, const char *s, size_t len);

/* CONNECT (clean session, keepalive 0), client id id; user and pw may be
 * NULL. Returns its length; dies if it would not fit in cap. */
size_t bench_mqtt_connect(uint8_t *out, size_t cap, const char *id, const char *user, const char *pw);
/* SUBSCRIBE with packet id 1 of one filter; out needs flen + 11 bytes. */
size_t bench_mqtt_subscribe(uint8_t *out, const char *filter, size_t flen, int qos);
/* The part of a PUBLISH before its payload of plen bytes: fixed header,
 * topic and (qos 1) packet id pid, whose offset goes to *pid_off (0 for QoS
 * 0). out needs tlen + 11 bytes. Returns the header's length. */
size_t bench_mqtt_publish_header(uint8_t *out, const char *topic, size_t tlen, size_t plen, int qos, uint16_t pid,
                                 size_t *pid_off);

/* Splits the packet at p (avail bytes buffered) into its fixed header of
 * *hdr bytes and body of *body bytes; false if it is not all there yet. */
bool bench_mqtt_frame(const uint8_t *p, size_t avail, size_t *hdr, size_t *body);
/* Length of the whole packet at p, for packets this process encoded. */
size_t bench_mqtt_packet_len(const uint8_t *p);
/* Splits a PUBLISH body of len bytes (first byte type); *pid is NULL at QoS
 * 0. False if malformed. */
bool bench_mqtt_publish_parts(uint8_t type, const uint8_t *b, size_t len, const char **topic, size_t *tlen,
                              const uint8_t **pid, const uint8_t **payload, size_t *plen);

#endif
