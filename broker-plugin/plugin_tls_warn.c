/*
 * plugin_tls_warn.c: at start, warns about every listener that carries
 * tokens in plaintext, and about a missing message_size_limit.
 *
 * Why this exists: a connection token is a bearer credential until it
 * expires, so a listener without TLS hands it to anyone who can watch the
 * path. Plaintext stays possible (a lab on loopback), but never silently.
 * Mosquitto 2.0.11 tells a plugin neither its listeners nor whether a
 * client's connection is encrypted, so this reads the configuration file
 * the broker was started with (its -c argument in /proc/self/cmdline, and
 * the include_dir files it names) and applies Mosquitto's own rules
 * (lib/base/listeners.c). It runs once, in plugin init, before any client: the
 * file reads cannot stall the event loop.
 */
#include "plugin.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_listeners.h"

#define CMDLINE_MAX 65536
#define MAX_CMD_PORTS 16
#define INCLUDE_FILES_MAX 256
/* Comfortably above the largest legitimate message (a data message of
 * 65536 + 250 bytes, an admin request of 64 KiB): see README, "TLS and
 * message size". */
#define IG_RECOMMENDED_MESSAGE_SIZE_LIMIT 131072

struct conf_source {
	char path[PATH_MAX];
	bool found;
	unsigned cmd_ports[MAX_CMD_PORTS];
	size_t ncmd_ports;
};

/* The broker's -c (last one wins, as in Mosquitto) and -p arguments. Under
 * a wrapper such as valgrind the wrapper's arguments come first; none of
 * them is a bare -c or -p. */
static bool read_cmdline(struct conf_source *src)
{
	FILE *f = fopen("/proc/self/cmdline", "rb");
	if (!f)
		return false;
	char *buf = malloc(CMDLINE_MAX + 1);
	if (!buf) {
		fclose(f);
		return false;
	}
	size_t n = fread(buf, 1, CMDLINE_MAX, f);
	fclose(f);
	buf[n] = '\0';
	const char *args[512];
	size_t nargs = 0;
	for (size_t i = 0; i < n && nargs < sizeof args / sizeof args[0]; i += strlen(buf + i) + 1)
		args[nargs++] = buf + i;
	for (size_t i = 0; i + 1 < nargs; i++) {
		if (strcmp(args[i], "-c") == 0 || strcmp(args[i], "--config-file") == 0) {
			snprintf(src->path, sizeof src->path, "%s", args[i + 1]);
			src->found = true;
			i++;
		} else if ((strcmp(args[i], "-p") == 0 || strcmp(args[i], "--port") == 0) && src->ncmd_ports < MAX_CMD_PORTS) {
			int port = atoi(args[i + 1]);
			if (port > 0 && port <= 65535)
				src->cmd_ports[src->ncmd_ports++] = (unsigned)port;
			i++;
		}
	}
	free(buf);
	return true;
}

/* Mosquitto's include_dir order (conf_includedir.c scmp_p): case-blind
 * first, then by case. */
static int include_order(const void *p1, const void *p2)
{
	const char *s1 = *(const char *const *)p1, *s2 = *(const char *const *)p2;
	for (; s1[0] && s2[0]; s1++, s2++) {
		int r = toupper((unsigned char)s1[0]) - toupper((unsigned char)s2[0]);
		if (r != 0)
			return r;
		if (s1[0] != s2[0])
			return s1[0] - s2[0];
	}
	return toupper((unsigned char)s1[0]) - toupper((unsigned char)s2[0]);
}

static int feed_file(ig_listener_set *s, const char *path, int level, char *problem, size_t cap);

static int feed_include_dir(ig_listener_set *s, const char *dir, char *problem, size_t cap)
{
	DIR *dh = opendir(dir);
	if (!dh) {
		snprintf(problem, cap, "cannot open include_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	char *names[INCLUDE_FILES_MAX];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dh)) != NULL && n < INCLUDE_FILES_MAX) {
		size_t len = strlen(de->d_name);
		if (len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0 && (names[n] = strdup(de->d_name)) != NULL)
			n++;
	}
	closedir(dh);
	qsort(names, n, sizeof names[0], include_order);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (rc == 0 && (size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) < sizeof path)
			rc = feed_file(s, path, 1, problem, cap);
		free(names[i]);
	}
	return rc;
}

static int feed_file(ig_listener_set *s, const char *path, int level, char *problem, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(problem, cap, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL, include_dir[PATH_MAX];
	size_t linecap = 0;
	int rc = 0;
	while (rc == 0 && getline(&line, &linecap, f) >= 0) {
		int r = ig_listeners_line(s, line, level, include_dir, sizeof include_dir);
		if (r == 1)
			rc = feed_include_dir(s, include_dir, problem, cap);
	}
	free(line);
	fclose(f);
	return rc;
}

static void describe(char *out, size_t cap, const ig_listener_info *l)
{
	const char *bind = l->bind[0] ? l->bind : "every address";
	snprintf(out, cap, "%s%s port %u on %s", l->is_default ? "default listener" : "listener",
	         l->websockets ? " (websockets)" : "", l->port, bind);
}

void ig_plugin_tls_warn(void)
{
	struct conf_source src = {0};
	char problem[PATH_MAX + 128] = "";
	if (!read_cmdline(&src) || !src.found) {
		ig_plugin_log(MOSQ_LOG_WARNING, "cannot tell which listeners use TLS (no -c FILE in /proc/self/cmdline): "
		                                "make sure every network listener has certfile and keyfile, since "
		                                "connection tokens are bearer credentials");
		return;
	}
	ig_listener_set *s = malloc(sizeof *s);
	if (!s)
		return;
	ig_listeners_init(s);
	if (feed_file(s, src.path, 0, problem, sizeof problem) != 0) {
		ig_plugin_log(MOSQ_LOG_WARNING, "cannot tell which listeners use TLS (%s): make sure every network "
		                                "listener has certfile and keyfile, since connection tokens are bearer "
		                                "credentials", problem);
		free(s);
		return;
	}
	ig_listeners_finish(s, src.cmd_ports, src.ncmd_ports);
	size_t plain = 0, tls = 0;
	for (size_t i = 0; i < s->n; i++) {
		const ig_listener_info *l = &s->l[i];
		char what[IG_LISTENER_BIND_MAX + 64];
		if (l->port == 0)
			continue;   /* a Unix socket: local, guarded by its file mode */
		describe(what, sizeof what, l);
		if (ig_listeners_tls(l)) {
			tls++;
			continue;
		}
		plain++;
		ig_plugin_log(MOSQ_LOG_WARNING, "%s has no TLS: connection tokens and join codes cross it in plaintext, "
		                                "and anyone who sees one can connect as its identity until it expires. "
		                                "Add certfile and keyfile to it (see tools/mkcerts.sh and the README, "
		                                "\"TLS and message size\"); plaintext is for a loopback-only lab setup",
		              what);
	}
	if (s->truncated)
		ig_plugin_log(MOSQ_LOG_WARNING, "more than %d listeners in %s: only the first were checked for TLS",
		              IG_LISTENERS_MAX, src.path);
	if (plain == 0)
		ig_plugin_log(MOSQ_LOG_INFO, "every network listener (%zu) uses TLS", tls);
	if (s->message_size_limit == 0)
		ig_plugin_log(MOSQ_LOG_WARNING, "no message_size_limit in %s: any client may publish messages of up to "
		                                "256 MiB. Set message_size_limit %d (iotguard's largest message is "
		                                "about 64 KiB)",
		              src.path, IG_RECOMMENDED_MESSAGE_SIZE_LIMIT);
	free(s);
}
