/*
 * test_listeners.c: mosquitto.conf listeners and their TLS, read the way
 * Mosquitto 2.0.11 reads them (lib/base/listeners.c).
 *
 * Why this exists: the plugin's start-up warning about plaintext listeners
 * is only worth having if it is right: a missed plaintext listener leaks
 * tokens silently, a false alarm teaches operators to ignore the log.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ig_listeners.h"

static ig_listener_set set;

/* Feeds a whole configuration, one line at a time; include_dir lines are
 * answered with the text in `included` (at level 1). */
static void feed(const char *text, const char *included)
{
	char line[512], dir[256];
	ig_listeners_init(&set);
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		cr_assert_lt(n, sizeof line);
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (p[n] == '\n');
		int r = ig_listeners_line(&set, line, 0, dir, sizeof dir);
		cr_assert_geq(r, 0);
		if (r == 1) {
			cr_assert_not_null(included, "unexpected include_dir %s", dir);
			for (const char *q = included; *q;) {
				size_t m = strcspn(q, "\n");
				memcpy(line, q, m);
				line[m] = '\0';
				q += m + (q[m] == '\n');
				cr_assert_eq(ig_listeners_line(&set, line, 1, dir, sizeof dir), 0);
			}
		}
	}
	ig_listeners_finish(&set, NULL, 0);
}

Test(listeners, tls_and_plaintext_listeners_are_told_apart)
{
	feed("per_listener_settings false\n"
	     "listener 8883 0.0.0.0\n"
	     "certfile /etc/mosquitto/certs/server.crt\n"
	     "keyfile /etc/mosquitto/certs/server.key\n"
	     "cafile /etc/mosquitto/certs/ca.crt\n"
	     "listener 1883 127.0.0.1\n"
	     "listener 9001\n"
	     "protocol websockets\n"
	     "message_size_limit 131072\n",
	     NULL);
	cr_assert_eq(set.n, 3);
	cr_assert_eq(set.l[0].port, 8883);
	cr_assert_str_eq(set.l[0].bind, "0.0.0.0");
	cr_assert(ig_listeners_tls(&set.l[0]));
	cr_assert_eq(set.l[1].port, 1883);
	cr_assert_str_eq(set.l[1].bind, "127.0.0.1");
	cr_assert_not(ig_listeners_tls(&set.l[1]));
	cr_assert_eq(set.l[2].port, 9001);
	cr_assert_str_eq(set.l[2].bind, "");
	cr_assert(set.l[2].websockets);
	cr_assert_not(ig_listeners_tls(&set.l[2]));
	cr_assert_eq(set.message_size_limit, 131072);
}

Test(listeners, a_certificate_without_key_or_a_cafile_alone_is_not_tls)
{
	feed("listener 8883\ncertfile /c.crt\nlistener 8884\ncafile /ca.crt\nlistener 8885\npsk_hint hint\n", NULL);
	cr_assert_eq(set.n, 3);
	cr_assert_not(ig_listeners_tls(&set.l[0]));
	cr_assert_not(ig_listeners_tls(&set.l[1]));
	cr_assert(ig_listeners_tls(&set.l[2]), "PSK encrypts too");
	cr_assert_eq(set.message_size_limit, 0);
}

Test(listeners, options_before_any_listener_make_the_default_listener)
{
	feed("certfile /s.crt\nkeyfile /s.key\nlistener 1884\n", NULL);
	cr_assert_eq(set.n, 2);
	cr_assert_eq(set.l[0].port, 1884);
	cr_assert_not(ig_listeners_tls(&set.l[0]));
	cr_assert(set.l[1].is_default);
	cr_assert_eq(set.l[1].port, 1883, "the default listener's port defaults to 1883");
	cr_assert(ig_listeners_tls(&set.l[1]));

	/* "port" and "bind_address" set the default listener wherever they stand. */
	feed("listener 8883\ncertfile /s.crt\nkeyfile /s.key\nport 1999\nbind_address 10.0.0.1\n", NULL);
	cr_assert_eq(set.n, 2);
	cr_assert(ig_listeners_tls(&set.l[0]));
	cr_assert_eq(set.l[1].port, 1999);
	cr_assert_str_eq(set.l[1].bind, "10.0.0.1");
	cr_assert_not(ig_listeners_tls(&set.l[1]));
}

Test(listeners, no_listener_means_localhost_1883_in_plaintext)
{
	feed("allow_anonymous false\n# listener 8883\n  \n", NULL);
	cr_assert_eq(set.n, 2);
	cr_assert_str_eq(set.l[0].bind, "127.0.0.1");
	cr_assert_str_eq(set.l[1].bind, "::1");
	cr_assert_eq(set.l[0].port, 1883);
	cr_assert_not(ig_listeners_tls(&set.l[0]));

	unsigned ports[] = {2000};
	ig_listeners_init(&set);
	ig_listeners_finish(&set, ports, 1);
	cr_assert_eq(set.n, 2);
	cr_assert_eq(set.l[0].port, 2000, "the broker's -p ports replace 1883");
}

Test(listeners, include_dir_files_continue_the_current_listener)
{
	feed("listener 8883\ninclude_dir /etc/mosquitto/conf.d\n", "certfile /s.crt\nkeyfile /s.key\nlistener 1883\n"
	                                                           "include_dir /ignored/at/level/1\n");
	cr_assert_eq(set.n, 2);
	cr_assert(ig_listeners_tls(&set.l[0]));
	cr_assert_not(ig_listeners_tls(&set.l[1]));
	char dir[8];
	ig_listeners_init(&set);
	cr_assert_eq(ig_listeners_line(&set, "include_dir /a/path/that/does/not/fit", 0, dir, sizeof dir), IG_ERR_RANGE);
}

Test(listeners, unix_sockets_and_comments_after_the_port)
{
	feed("listener 0 /run/mosquitto.sock\nlistener 1883 # all addresses\n", NULL);
	cr_assert_eq(set.n, 2);
	cr_assert_eq(set.l[0].port, 0);
	cr_assert_str_eq(set.l[0].bind, "/run/mosquitto.sock");
	cr_assert_str_eq(set.l[1].bind, "", "a comment is not a bind address");
}

Test(listeners, the_table_is_bounded)
{
	ig_listeners_init(&set);
	char dir[8], line[32];
	for (int i = 0; i < IG_LISTENERS_MAX + 5; i++) {
		snprintf(line, sizeof line, "listener %d", 2000 + i);
		cr_assert_eq(ig_listeners_line(&set, line, 0, dir, sizeof dir), 0);
		cr_assert_eq(ig_listeners_line(&set, "certfile /x", 0, dir, sizeof dir), 0);
	}
	ig_listeners_finish(&set, NULL, 0);
	cr_assert_eq(set.n, IG_LISTENERS_MAX);
	cr_assert(set.truncated);
}
