/*
 * bench_broker.c: one way to start, measure and stop a broker for the
 * memory benches (see bench_broker.h for why it is shared).
 */
#include "bench_broker.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "ig_token.h"

int bench_broker_cli_cpu(double cpu)
{
	return cpu < 0 ? -1 : (int)cpu;
}

/* Mosquitto started as root switches to the user "mosquitto", which cannot
 * read a ledger this process created with mode 0700: stay the current user. */
const char *bench_broker_user(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_name : "root";
}

long bench_broker_loaded_ms(const char *log_path)
{
	FILE *f = fopen(log_path, "r");
	if (!f)
		return -1;
	char line[2048];
	long ms = -1;
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "loaded in ");
		if (p && strstr(p, " ms"))
			ms = strtol(p + 10, NULL, 10);
	}
	fclose(f);
	return ms;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		bench_dief("writing %s: %s", path, strerror(errno));
}

static void stop(pid_t pid, const char *tag)
{
	kill(pid, SIGTERM);
	int st;
	double tk = bench_now_s();
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (bench_now_s() - tk > 30) {
			fprintf(stderr, "%s: %s broker ignored SIGTERM for 30 s; killing it\n", bench_name, tag);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
}

bench_broker_reading bench_broker_measure(const bench_broker_opts *o)
{
	char conf_path[4200], log_path[4200], conf[8192];
	snprintf(conf_path, sizeof conf_path, "%s/%s-%s.conf", o->work, o->prefix, o->tag);
	snprintf(log_path, sizeof log_path, "%s/%s-%s.log", o->work, o->prefix, o->tag);
	snprintf(conf, sizeof conf,
	         "per_listener_settings false\nallow_anonymous false\nlistener %d 127.0.0.1\n"
	         "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
	         "user %s\nplugin %s\nplugin_opt_ledger %s\nplugin_opt_stats_interval 0\n",
	         o->port, bench_broker_user(), o->plugin, o->ledger_dir);
	write_file(conf_path, conf);
	char token[IG_TOKEN_TEXT_MAX];
	bench_id_token(token, sizeof token, o->cluster, o->id, 600);

	bench_broker_reading r = {.loaded_ms = -1};
	double t0 = bench_now_s();
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", strerror(errno));
	if (pid == 0) {
		if (o->cpu < 0)
			bench_proc_unpin();   /* not the probe's cpu, which fork passed on */
		else
			bench_proc_pin(o->cpu);
		if (!freopen(log_path, "w", stderr))
			_exit(127);
		execlp("mosquitto", "mosquitto", "-c", conf_path, (char *)NULL);
		fprintf(stderr, "exec mosquitto: %s\n", strerror(errno));
		_exit(127);
	}
	bool tcp_ok = false, ok = false;
	while (bench_now_s() - t0 < o->start_timeout_s) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			bench_dief("mosquitto exited during start (status %d); see %s", st, log_path);
		bench_conn c;
		int connack = -1, rc = bench_conn_try_open(&c, o->port, o->id, token, &connack);
		if (rc != 1 && !tcp_ok) {
			tcp_ok = true;
			r.first_tcp_s = bench_now_s() - t0;
		}
		if (rc == 0) {
			bench_conn_close(&c);
			ok = true;
			break;
		}
		usleep(rc == 1 ? 2000 : 20000);
	}
	r.start_s = bench_now_s() - t0;
	if (!ok) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		bench_dief("no authenticated connect to the %s broker within %.0f s; see %s", o->tag, o->start_timeout_s,
		           log_path);
	}
	usleep(300000);   /* let the broker settle after its first client */
	r.rss_kb = bench_proc_status_kb(pid, "VmRSS");
	r.rss_anon_kb = bench_proc_status_kb(pid, "RssAnon");
	r.rss_file_kb = bench_proc_status_kb(pid, "RssFile");
	r.hwm_kb = bench_proc_status_kb(pid, "VmHWM");
	stop(pid, o->tag);
	r.loaded_ms = bench_broker_loaded_ms(log_path);
	return r;
}

