/*
 * iotguard-agent.c: command line of the device agent.
 *
 * Why this exists: it turns arguments into an ig_agent_config, picks the
 * duties, installs the signal handlers and maps outcomes to exit codes.
 * Everything about staying connected lives in agent.c, every job in a
 * duty_<name>.c, so this file only grows by an option and a line per duty.
 *
 * Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime failure (key file,
 * TLS setup, ...), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "duties.h"

enum { EXIT_USAGE = 2 };

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *out)
{
	fputs("Usage: iotguard-agent --host H --port P --cluster C --id ID --key FILE [options]\n"
	      "\n"
	      "Device agent for an iotguard cluster: connects with a freshly minted token on\n"
	      "every (re)connect, keeps iotguard/C/dev/ID/status up to date and listens on\n"
	      "iotguard/C/dev/ID/inbox.\n"
	      "\n"
	      "  --host H          broker host name or address\n"
	      "  --port P          broker port (1..65535)\n"
	      "  --cluster C       cluster name\n"
	      "  --id ID           enrolled identity id (also the MQTT client id and username)\n"
	      "  --key FILE        identity secret key file (mode 0600, from `iotguard keygen`)\n"
	      "  --heartbeat S     seconds between status heartbeats (default 30)\n"
	      "  --ttl S           lifetime of each connection token in seconds (default 300)\n"
	      "  --tls-ca FILE     connect with TLS, trusting this PEM CA certificate\n"
	      "  --ping            after each connect, ping the cluster head and log the pong\n"
	      "  --verbose         debug logging (never includes tokens or keys)\n"
	      "  --help            show this text\n"
	      "\n"
	      "Logs go to stderr. Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime\n"
	      "failure, 2 on a usage error.\n",
	      out);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("iotguard-agent: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'iotguard-agent --help'.\n", stderr);
	return EXIT_USAGE;
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;  /* no SA_RESTART: a signal must cut sleeps and select() short */
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = SIG_IGN;  /* a dead broker socket must be an error code, not death */
	return sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
	enum { OPT_HOST = 256, OPT_PORT, OPT_CLUSTER, OPT_ID, OPT_KEY, OPT_HEARTBEAT, OPT_TTL,
	       OPT_TLS_CA, OPT_PING, OPT_VERBOSE, OPT_HELP };
	static const struct option options[] = {
		{"host", required_argument, NULL, OPT_HOST},
		{"port", required_argument, NULL, OPT_PORT},
		{"cluster", required_argument, NULL, OPT_CLUSTER},
		{"id", required_argument, NULL, OPT_ID},
		{"key", required_argument, NULL, OPT_KEY},
		{"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
		{"ttl", required_argument, NULL, OPT_TTL},
		{"tls-ca", required_argument, NULL, OPT_TLS_CA},
		{"ping", no_argument, NULL, OPT_PING},
		{"verbose", no_argument, NULL, OPT_VERBOSE},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	ig_agent_config cfg = {.heartbeat_s = 30, .ttl_s = 300};
	bool ping = false;
	unsigned long v;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case OPT_HOST: cfg.host = optarg; break;
		case OPT_PORT:
			if (!parse_uint(optarg, 1, 65535, &v))
				return usage_error("--port must be a number from 1 to 65535, not '%s'", optarg);
			cfg.port = (int)v;
			break;
		case OPT_CLUSTER: cfg.cluster = optarg; break;
		case OPT_ID: cfg.id = optarg; break;
		case OPT_KEY: cfg.key_path = optarg; break;
		case OPT_HEARTBEAT:
			if (!parse_uint(optarg, 1, 86400, &v))
				return usage_error("--heartbeat must be 1..86400 seconds, not '%s'", optarg);
			cfg.heartbeat_s = (unsigned)v;
			break;
		case OPT_TTL:
			if (!parse_uint(optarg, 1, 86400, &v))
				return usage_error("--ttl must be 1..86400 seconds, not '%s'", optarg);
			cfg.ttl_s = (unsigned)v;
			break;
		case OPT_TLS_CA: cfg.tls_ca = optarg; break;
		case OPT_PING: ping = true; break;
		case OPT_VERBOSE: cfg.verbose = true; break;
		case OPT_HELP: usage(stdout); return 0;
		default: {
			const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
			if (optopt >= OPT_HOST)
				return usage_error("option '%s' needs a value", bad);
			return usage_error("unknown option '%s'", bad);
		}
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg.host)
		return usage_error("%s", "--host is required (the broker address)");
	if (!cfg.port)
		return usage_error("%s", "--port is required (the broker port)");
	if (!cfg.cluster)
		return usage_error("%s", "--cluster is required (the cluster name)");
	if (!ig_id_valid(cfg.cluster, strlen(cfg.cluster)))
		return usage_error("--cluster '%s' is invalid: use 1..64 characters of [A-Za-z0-9_.-]", cfg.cluster);
	if (!cfg.id)
		return usage_error("%s", "--id is required (the enrolled identity id)");
	if (!ig_id_valid(cfg.id, strlen(cfg.id)))
		return usage_error("--id '%s' is invalid: use 1..64 characters of [A-Za-z0-9_.-]", cfg.id);
	if (!cfg.key_path)
		return usage_error("%s", "--key is required (the identity's secret key file)");

	ig_agent_log_init(cfg.id, cfg.verbose);
	if (ig_init() != IG_OK) {
		fputs("iotguard-agent: cannot initialise libsodium\n", stderr);
		return 1;
	}
	if (install_signals() != 0) {
		perror("iotguard-agent: sigaction");
		return 1;
	}
	mosquitto_lib_init();

	ig_error err = {0};
	ig_agent *agent = NULL;
	int rc = ig_agent_new(&agent, &cfg, &err);
	if (rc != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot start the agent");
		mosquitto_lib_cleanup();
		return 1;
	}

	ig_ping_state ping_state = {.nonce = ""};
	if (ping && ig_agent_add_duty(agent, &ig_duty_ping, &ping_state) != IG_OK) {
		fputs("iotguard-agent: too many duties\n", stderr);
		ig_agent_free(agent);
		mosquitto_lib_cleanup();
		return 1;
	}

	rc = ig_agent_run(agent, &stop_signal);
	ig_agent_free(agent);
	mosquitto_lib_cleanup();
	return rc == IG_OK ? 0 : 1;
}
