/*
 * listeners.c: reads mosquitto.conf lines the way Mosquitto 2.0 does, only
 * as far as listeners, their encryption and message_size_limit go.
 *
 * Why this exists: see ig_listeners.h. Getting this wrong either way is
 * costly: a missed plaintext listener leaks tokens silently, a false
 * warning teaches operators to ignore the log. So the rules mirror
 * Mosquitto's src/conf.c (v2.0.11) option by option.
 */
#include "ig_listeners.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Options that, before any "listener" line, make Mosquitto create the
 * default listener (config__read's list in conf.c, minus per-listener
 * security options, which per_listener_settings false keeps global). */
static const char *const default_listener_options[] = {
	"port", "bind_address", "bind_interface", "certfile", "keyfile", "cafile", "capath", "ciphers",
	"ciphers_tls1.3", "dhparamfile", "psk_hint", "require_certificate", "crlfile", "tls_version",
	"tls_engine", "tls_keyform", "tls_engine_kpass_sha1", "use_identity_as_username",
	"use_subject_as_username", "use_username_as_clientid", "max_connections", "max_qos",
	"max_topic_alias", "mount_point", "protocol", "socket_domain", "http_dir",
};

void ig_listeners_init(ig_listener_set *s) { memset(s, 0, sizeof *s); }

bool ig_listeners_tls(const ig_listener_info *l) { return (l->has_cert && l->has_key) || l->has_psk; }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Splits off the next space-separated token; returns its length (0 = none). */
static size_t next_token(const char **p, const char **tok)
{
	while (**p && is_space(**p))
		(*p)++;
	*tok = *p;
	while (**p && !is_space(**p))
		(*p)++;
	return (size_t)(*p - *tok);
}

static bool token_is(const char *tok, size_t n, const char *word)
{
	return strlen(word) == n && strncmp(tok, word, n) == 0;
}

static void copy_token(char *out, size_t cap, const char *tok, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(out, tok, n);
	out[n] = '\0';
}

static bool parse_uint(const char *tok, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(tok[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* The listener the current line's options go to. */
static ig_listener_info *current(ig_listener_set *s)
{
	if (s->in_listener)
		return s->n > 0 && !s->truncated ? &s->l[s->n - 1] : NULL;
	return &s->deflt;
}

int ig_listeners_line(ig_listener_set *s, const char *line, int level, char *include_dir, size_t cap)
{
	const char *p = line, *key, *val;
	size_t klen = next_token(&p, &key);
	if (klen == 0 || key[0] == '#')
		return 0;
	if (token_is(key, klen, "include_dir")) {
		if (level != 0)
			return 0;   /* Mosquitto reads include_dir in the main file only */
		/* The rest of the line, as Mosquitto takes it (strtok_r with ""). */
		while (*p && is_space(*p) && *p != '\n')
			p++;
		size_t n = strcspn(p, "\r\n");
		while (n > 0 && is_space(p[n - 1]))
			n--;
		if (n == 0)
			return 0;
		if (n >= cap)
			return IG_ERR_RANGE;
		memcpy(include_dir, p, n);
		include_dir[n] = '\0';
		return 1;
	}
	size_t vlen = next_token(&p, &val);
	if (token_is(key, klen, "listener")) {
		uint64_t port = 0;
		if (!parse_uint(val, vlen, 65535, &port))
			return 0;   /* Mosquitto refuses to start on this line anyway */
		s->in_listener = true;
		if (s->n >= IG_LISTENERS_MAX) {
			s->truncated = true;
			return 0;
		}
		ig_listener_info *l = &s->l[s->n++];
		memset(l, 0, sizeof *l);
		l->port = (unsigned)port;
		const char *bind;
		size_t blen = next_token(&p, &bind);
		if (blen > 0 && bind[0] != '#')
			copy_token(l->bind, sizeof l->bind, bind, blen);
		return 0;
	}
	if (token_is(key, klen, "message_size_limit")) {
		uint64_t v;
		if (parse_uint(val, vlen, 268435455u, &v))
			s->message_size_limit = v;
		return 0;
	}
	bool listener_option = false;
	for (size_t i = 0; i < sizeof default_listener_options / sizeof default_listener_options[0]; i++)
		if (token_is(key, klen, default_listener_options[i]))
			listener_option = true;
	if (!listener_option)
		return 0;
	/* "port" and "bind_address" describe the default listener wherever
	 * they stand (conf.c writes config->default_listener directly). */
	if (token_is(key, klen, "port")) {
		uint64_t port;
		if (parse_uint(val, vlen, 65535, &port)) {
			s->deflt.port = (unsigned)port;
			s->deflt_used = true;
		}
		return 0;
	}
	if (token_is(key, klen, "bind_address")) {
		copy_token(s->deflt.bind, sizeof s->deflt.bind, val, vlen);
		s->deflt_used = true;
		return 0;
	}
	ig_listener_info *l = current(s);
	if (!l)
		return 0;
	if (!s->in_listener)
		s->deflt_used = true;
	if (token_is(key, klen, "certfile") && vlen > 0)
		l->has_cert = true;
	else if (token_is(key, klen, "keyfile") && vlen > 0)
		l->has_key = true;
	else if (token_is(key, klen, "psk_hint") && vlen > 0)
		l->has_psk = true;
	else if (token_is(key, klen, "protocol"))
		l->websockets = token_is(val, vlen, "websockets");
	return 0;
}

static void add_local(ig_listener_set *s, const char *host, unsigned port)
{
	if (s->n >= IG_LISTENERS_MAX) {
		s->truncated = true;
		return;
	}
	ig_listener_info *l = &s->l[s->n++];
	memset(l, 0, sizeof *l);
	l->port = port;
	snprintf(l->bind, sizeof l->bind, "%s", host);
	l->is_default = true;
}

void ig_listeners_finish(ig_listener_set *s, const unsigned *cmd_ports, size_t ncmd_ports)
{
	if (s->deflt_used) {
		if (s->n >= IG_LISTENERS_MAX) {
			s->truncated = true;
		} else {
			ig_listener_info *l = &s->l[s->n++];
			*l = s->deflt;
			if (l->port == 0)
				l->port = 1883;
			l->is_default = true;
		}
	}
	if (s->n > 0 || s->truncated)
		return;
	if (ncmd_ports == 0) {
		add_local(s, "127.0.0.1", 1883);
		add_local(s, "::1", 1883);
		return;
	}
	for (size_t i = 0; i < ncmd_ports; i++) {
		add_local(s, "127.0.0.1", cmd_ports[i]);
		add_local(s, "::1", cmd_ports[i]);
	}
}
