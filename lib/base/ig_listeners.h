/*
 * ig_listeners.h: which listeners a mosquitto.conf opens, and whether they
 * encrypt.
 *
 * Why this exists: a connection token is a bearer credential, so a listener
 * without TLS hands it to anyone on the path. Mosquitto 2.0.11 gives a
 * plugin no list of listeners and no way to ask whether a client's
 * connection uses TLS (mosquitto_client_certificate() sees only client
 * certificates), so the plugin reads the same configuration the broker
 * read and warns about every plaintext listener at start. The rules here
 * follow Mosquitto 2.0's src/conf.c: options before the first "listener"
 * line configure the default listener (created only if one of them is
 * set), "include_dir" is honoured in the main file only, a listener
 * encrypts when it has "certfile" (with "keyfile") or "psk_hint", and a
 * configuration with no listener at all listens on localhost:1883 (or on
 * the -p ports), in plaintext. Pure parsing: the caller reads the files.
 */
#ifndef IG_LISTENERS_H
#define IG_LISTENERS_H

#include "ig_common.h"

#define IG_LISTENERS_MAX 64
#define IG_LISTENER_BIND_MAX 128

typedef struct ig_listener_info {
	unsigned port;                        /* 0: a Unix socket (bind holds its path) */
	char bind[IG_LISTENER_BIND_MAX + 1];  /* "" = every address; truncated if longer */
	bool has_cert, has_key, has_psk;
	bool websockets;
	bool is_default;                      /* made from options before any "listener" line */
} ig_listener_info;

typedef struct ig_listener_set {
	ig_listener_info l[IG_LISTENERS_MAX];
	size_t n;
	bool truncated;                       /* more listeners than IG_LISTENERS_MAX */
	ig_listener_info deflt;               /* the default listener being described */
	bool deflt_used;                      /* some option created it */
	bool in_listener;                     /* a "listener" line came: options go to l[n-1] */
	uint64_t message_size_limit;          /* 0 = not set (Mosquitto's default: no limit below 256 MiB) */
} ig_listener_set;

void ig_listeners_init(ig_listener_set *s);

/* Feeds one configuration line (no newline needed). level 0 is the main
 * file. Returns 1 when the line is an "include_dir DIR" the caller must
 * read now (level 0 only: every "*.conf" file in DIR in strcmp order, each
 * line at level 1), with DIR copied into include_dir; else 0. A path that
 * does not fit is IG_ERR_RANGE. */
int ig_listeners_line(ig_listener_set *s, const char *line, int level, char *include_dir, size_t cap);

/* After the last line: adds the default listener if one was described, or,
 * if there is no listener at all, Mosquitto's fallback: 127.0.0.1 and ::1
 * on each of cmd_ports (the broker's -p options), or on 1883. */
void ig_listeners_finish(ig_listener_set *s, const unsigned *cmd_ports, size_t ncmd_ports);

/* True if the listener encrypts: certfile and keyfile, or psk_hint. */
bool ig_listeners_tls(const ig_listener_info *l);

#endif
