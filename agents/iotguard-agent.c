/*
 * iotguard-agent.c: command line of the device agent.
 *
 * Why this exists: it turns arguments into an ig_agent_config, picks the
 * duties, installs the signal handlers and maps outcomes to exit codes.
 * Everything about staying connected lives in agent.c, every job in a
 * duty_<name>.c, so this file only grows by an option and a line per duty.
 *
 * Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime failure (key file,
 * TLS setup, ...), 2 usage error, 3 a problem only a human can fix (the
 * cluster head refused the join code).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "agent.h"
#include "duties.h"
#include "wallet.h"

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
	      "  --id ID           identity id: enrolled, or the new one with --join-code\n"
	      "                    (also the MQTT client id and username)\n"
	      "  --key FILE        identity secret key file (mode 0600, from `iotguard keygen`,\n"
	      "                    or created by --join-code)\n"
	      "  --heartbeat S     seconds between status heartbeats (default 30)\n"
	      "  --ttl S           lifetime of each connection token in seconds (default 300)\n"
	      "  --tls-ca FILE     connect with TLS, trusting this PEM CA certificate\n"
	      "  --ping            after each connect, ping the cluster head and log the pong\n"
	      "  --join-code CODE  join the cluster with this one-time code (igjc1-...): if\n"
	      "                    FILE does not exist a new key is generated there and its\n"
	      "                    public key printed; after the welcome the cluster-head key\n"
	      "                    is kept in FILE.ch and the agent carries on as enrolled.\n"
	      "                    Ignored (with a notice) once FILE.ch exists\n"
	      "  --entropy-interval S\n"
	      "                    contribute a sealed, health-tested entropy block every S\n"
	      "                    seconds (+-25%; 0 = off, the default; else 2..86400)\n"
	      "  --peer B          ask the cluster head for session keys with device B and\n"
	      "                    send it an encrypted message every --send-interval\n"
	      "  --send-interval S seconds between messages to --peer (default 10; 0 = keys\n"
	      "                    only)\n"
	      "  --collect-interval S\n"
	      "                    collector: every S seconds (+-10%) send a sensor reading\n"
	      "                    (load, free memory, temperature) on iotguard/C/dev/ID/data/\n"
	      "                    STREAM, sealed and paid for with one coin from the bank;\n"
	      "                    keeps at least 8 coins (mints 16 at a time), logs each\n"
	      "                    analyst result and refunds unanswered coins; on SIGINT/\n"
	      "                    SIGTERM it hands every coin it holds back to the bank\n"
	      "                    first (waiting at most 5 s) (0 = off, the default)\n"
	      "  --stream NAME     collector: the data stream name (default \"readings\")\n"
	      "  --result-timeout S\n"
	      "                    collector: refund a coin whose message got no result\n"
	      "                    within S seconds (default 60)\n"
	      "  --role R          device (the default) or analyst: an analyst redeems every\n"
	      "                    data message of the cluster at the bank, keeps running\n"
	      "                    statistics per collector and stream and sends each\n"
	      "                    collector its sealed result, or an error result for a\n"
	      "                    payload it cannot use (no m2m, no --peer)\n"
	      "  --witness-key VKEY\n"
	      "                    a witness's C2SP vkey (from `iotguard witness --print-vkey`);\n"
	      "                    repeat for each witness. The agent then accepts a ledger\n"
	      "                    head only once --witness-quorum of them cosigned it\n"
	      "  --witness-quorum K\n"
	      "                    cosignatures required (1..number of --witness-key; default:\n"
	      "                    all of them)\n"
	      "  --battery-file F  report the device's power from F (\"mains\" or a battery\n"
	      "                    percentage 0..100, re-read at every heartbeat) instead\n"
	      "                    of /sys/class/power_supply\n"
	      "  --offline-keys    never ask the cluster head for session keys with --peer:\n"
	      "                    use key-ring sessions only (FILE.ring)\n"
	      "  --kp-fallback-s S fall back to key-ring sessions with --peer when the\n"
	      "                    cluster head sent no key within S seconds of the first\n"
	      "                    request (default 10; a refusal falls back at once)\n"
	      "  --kp-via ID[,ID...]\n"
	      "                    devices that may relay a path key when --peer and this\n"
	      "                    device share too few ring keys, tried in order (at most 8)\n"
	      "  --plain-broker    the broker has no iotguard plugin: no token, no cluster\n"
	      "                    head; only m2m with --peer under key-ring sessions. Needs\n"
	      "                    FILE.ring (run once against the cluster to receive it);\n"
	      "                    FILE.ch, if present, checks revoked statements\n"
	      "  --username U      plain broker: connect as MQTT user U (default: anonymous)\n"
	      "  --password-file F plain broker: the password for --username is the first\n"
	      "                    line of F (keep F mode 0600)\n"
	      "  --verbose         debug logging (never includes tokens or keys)\n"
	      "  --help            show this text\n"
	      "\n"
	      "Always: the agent pins the cluster-head key (FILE.ch, else trust on first use\n"
	      "of the signed ledger head), reports a signed measurement of itself and its\n"
	      "configuration at each connect and every 5 minutes, and accepts session keys\n"
	      "and encrypted messages from peers that asked for a key with it. It checks\n"
	      "the cluster's log: at each connect it has the cluster head prove that its\n"
	      "enrolment is in the log, it keeps the last checkpoint it accepted in\n"
	      "FILE.head and accepts a newer one only with a consistency proof. A fork or\n"
	      "a rollback is written to FILE.head.refused, logged as an error and shown in\n"
	      "the status, and the agent accepts no new keys from the cluster head until\n"
	      "an operator deletes that file.\n"
	      "\n"
	      "An enrolled agent is also a custody holder: when the cluster head deals it\n"
	      "a share of its custody secret, it checks the share against the published\n"
	      "commitments, keeps it encrypted in FILE.shares (mode 0600) before it\n"
	      "acknowledges, wipes older epochs once a newer one is active, and releases\n"
	      "its share, boxed to the requester, when the cluster head asks. Its status\n"
	      "reports the epochs it holds and the device's power (\"battery\").\n"
	      "\n"
	      "When the cluster's policy has predistribution, the agent holds a key ring:\n"
	      "it asks for one when the signed, retained iotguard/C/kp/revoked announces\n"
	      "a pool epoch it holds no ring for, keeps it encrypted in FILE.ring (mode\n"
	      "0600), answers peers' hellos and relays path keys for them. With --peer it\n"
	      "uses cluster-head session keys when it gets them and falls back to key-ring\n"
	      "sessions when the cluster head refuses (sealed, not_allowed, ...) or stays\n"
	      "silent; the status reports them under \"kp\".\n"
	      "\n"
	      "Logs go to stderr. Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime\n"
	      "failure, 2 on a usage error, 3 when the join code was refused (ask the\n"
	      "cluster operator for a new one).\n",
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

/* Everything the duties need, in one place so main() stays about options. */
struct duty_states {
	ig_pin_state pin;
	ig_join_state join;
	ig_attest_state attest;
	ig_entropy_state entropy;
	ig_m2m_state m2m;
	ig_ping_state ping;
	ig_collect_state collect;
	ig_analyst_state analyst;
	ig_log_state log;
	ig_custody_state custody;
	ig_kp_state kp;
};

/* The witnesses whose cosignatures a ledger head needs (--witness-key). */
struct witness_options {
	ig_cosig_vkey keys[IG_CHECKPOINT_COSIGS_MAX];
	size_t n;
	unsigned long quorum;      /* 0: all of them */
};

/* The key-ring options and plain-broker mode. */
struct kp_options {
	bool offline_keys;
	unsigned fallback_s;                     /* 0: the default */
	char via_buf[IG_KPA_VIA_MAX][IG_ID_MAX + 1];
	const char *via[IG_KPA_VIA_MAX];
	size_t n_via;
	char password[256];                      /* --password-file's first line; wiped at exit */
};

/* The coin duties' options. */
struct bank_options {
	bool analyst;
	unsigned collect_interval;   /* 0 = not a collector */
	const char *stream;
	unsigned result_timeout;
};

static int add_duty(ig_agent *agent, const ig_duty_ops *ops, void *state)
{
	if (ig_agent_add_duty(agent, ops, state) == IG_OK)
		return 0;
	fprintf(stderr, "iotguard-agent: too many duties (adding %s)\n", ops->name);
	return -1;
}

/* Plain-broker mode: no cluster head, so no pin, log, attest, custody,
 * entropy or ping duty; only the key ring and m2m with --peer. FILE.ch is
 * optional (revoked statements are checked only with it); FILE.ring is not. */
static int run_plain(const ig_agent_config *cfg, struct duty_states *d, const char *peer, unsigned send_interval,
                     const struct kp_options *kpo)
{
	ig_error err = {0};
	ig_agent *agent = NULL;
	if (!d->pin.known)
		ig_log(IG_LOG_INFO, "no %s: revoked statements cannot be checked on this plain broker", d->pin.path);
	if (ig_agent_new(&agent, cfg, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot start the agent");
		return 1;
	}
	if (ig_kp_duty_init(&d->kp, agent, &d->pin, cfg->key_path, kpo->via, kpo->n_via, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot set up the key ring");
		ig_agent_free(agent);
		return 1;
	}
	if (!ig_kpa_has_ring(d->kp.kpa)) {
		fprintf(stderr, "iotguard-agent: no key ring in %s: run the agent once against the cluster (with the plugin) "
		                "to receive one\n", d->kp.ring_path);
		ig_agent_free(agent);
		return 1;
	}
	if (ig_m2m_init(&d->m2m, peer, send_interval, &d->pin) != IG_OK) {
		fputs("iotguard-agent: cannot set up the m2m duty\n", stderr);
		ig_agent_free(agent);
		return 1;
	}
	ig_m2m_use_kp(&d->m2m, d->kp.kpa, true, kpo->fallback_s);
	if (add_duty(agent, &ig_duty_kp, &d->kp) != 0 || add_duty(agent, &ig_duty_m2m, &d->m2m) != 0) {
		ig_agent_free(agent);
		return 1;
	}
	int rc = ig_agent_run(agent, &stop_signal);
	int status = rc == IG_OK ? ig_agent_exit_status(agent) : 1;
	ig_agent_free(agent);
	return status;
}

/* The first line of --password-file, without its line end. */
static int read_password_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "iotguard-agent: cannot read --password-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	bool ok = fgets(out, (int)cap, f) != NULL;
	fclose(f);
	size_t n = ok ? strcspn(out, "\r\n") : 0;
	if (ok && out[n] == '\0' && n + 1 >= cap) {
		fprintf(stderr, "iotguard-agent: --password-file %s: the password is longer than %zu bytes\n", path, cap - 2);
		sodium_memzero(out, cap);
		return -1;
	}
	out[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "iotguard-agent: --password-file %s: the first line is empty (put the password there)\n", path);
		return -1;
	}
	return 0;
}

/* --kp-via ID[,ID...] into kpo->via. */
static int parse_via(struct kp_options *kpo, const char *list, const char *self)
{
	const char *p = list;
	for (;;) {
		size_t n = strcspn(p, ",");
		if (kpo->n_via >= IG_KPA_VIA_MAX)
			return usage_error("--kp-via names more than 8 devices: '%s'", list);
		if (n == 0 || n > IG_ID_MAX || !ig_id_valid(p, n))
			return usage_error("--kp-via '%s' must be device ids ([A-Za-z0-9_.-], 1..64) separated by commas", list);
		memcpy(kpo->via_buf[kpo->n_via], p, n);
		kpo->via_buf[kpo->n_via][n] = '\0';
		if (self && strcmp(kpo->via_buf[kpo->n_via], self) == 0)
			return usage_error("--kp-via '%s' names this device itself", list);
		kpo->via[kpo->n_via] = kpo->via_buf[kpo->n_via];
		kpo->n_via++;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

/* Prepares the key (joining may create it), the duties and the agent, and
 * runs it. Returns the exit status. */
static int run(const ig_agent_config *cfg, char *join_code, unsigned entropy_interval, const char *peer,
               unsigned send_interval, bool ping, const struct bank_options *bank, const struct witness_options *wit,
               const char *battery_file, const struct kp_options *kpo)
{
	static struct duty_states d;   /* large (key table, replay windows): keep it off the stack */
	ig_error err = {0};
	char config[512], pk_hex[2 * IG_PK_BYTES + 1];
	bool joining = false;

	if (ig_pin_init(&d.pin, cfg->key_path, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg);
		return 1;
	}
	if (join_code && d.pin.known) {
		ig_log(IG_LOG_INFO, "--join-code ignored: %s exists, so this key has joined already", d.pin.path);
	} else if (join_code) {
		int rc = ig_join_init(&d.join, join_code, &d.pin, &err);
		sodium_memzero(join_code, strlen(join_code));  /* keep it out of ps from now on */
		if (rc != IG_OK) {
			fprintf(stderr, "iotguard-agent: %s\n", err.msg);
			return EXIT_USAGE;
		}
		if (ig_join_prepare_key(cfg->key_path, pk_hex, &err) != IG_OK) {
			fprintf(stderr, "iotguard-agent: %s\n", err.msg);
			return 1;
		}
		if (pk_hex[0]) {
			printf("%s\n", pk_hex);
			fflush(stdout);
			ig_log(IG_LOG_INFO, "generated a new key in %s (public key %s)", cfg->key_path, pk_hex);
		}
		joining = true;
	}

	if (cfg->plain)
		return run_plain(cfg, &d, peer, send_interval, kpo);
	if (ig_log_init(&d.log, &d.pin, cfg->key_path, cfg->cluster, wit->keys, wit->n, wit->quorum ? wit->quorum : wit->n,
	                &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg);
		return 1;
	}

	ig_agent *agent = NULL;
	if (ig_agent_new(&agent, cfg, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot start the agent");
		return 1;
	}
	if (ig_attest_config(config, sizeof config, cfg->cluster, cfg->id, entropy_interval, peer) < 0 ||
	    ig_attest_init(&d.attest, "/proc/self/exe", config, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot measure this program");
		ig_agent_free(agent);
		return 1;
	}
	ig_log(IG_LOG_INFO, "measurement %s", d.attest.measurement_hex);
	if (ig_custody_duty_init(&d.custody, agent, &d.pin, cfg->key_path, battery_file, &err) != IG_OK) {
		fprintf(stderr, "iotguard-agent: %s\n", err.msg);
		ig_agent_free(agent);
		return 1;
	}
	d.ping.nonce[0] = '\0';
	if (ig_entropy_duty_init(&d.entropy, entropy_interval, &d.pin) != IG_OK ||
	    ig_m2m_init(&d.m2m, peer, send_interval, &d.pin) != IG_OK ||
	    (bank->collect_interval &&
	     ig_collect_init(&d.collect, bank->collect_interval, bank->stream, bank->result_timeout, &d.pin) != IG_OK) ||
	    ig_analyst_init(&d.analyst, &d.pin) != IG_OK) {
		fputs("iotguard-agent: cannot set up the entropy, m2m, collect or analyst duty\n", stderr);
		ig_agent_free(agent);
		return 1;
	}
	if (!bank->analyst) {
		if (ig_kp_duty_init(&d.kp, agent, &d.pin, cfg->key_path, kpo->via, kpo->n_via, &err) != IG_OK) {
			fprintf(stderr, "iotguard-agent: %s\n", err.msg[0] ? err.msg : "cannot set up the key ring");
			ig_agent_free(agent);
			return 1;
		}
		ig_m2m_use_kp(&d.m2m, d.kp.kpa, kpo->offline_keys, kpo->fallback_s);
	}
	if (add_duty(agent, &ig_duty_pin, &d.pin) != 0 || (joining && add_duty(agent, &ig_duty_join, &d.join) != 0) ||
	    add_duty(agent, &ig_duty_log, &d.log) != 0 ||
	    add_duty(agent, &ig_duty_attest, &d.attest) != 0 ||
	    add_duty(agent, &ig_duty_custody, &d.custody) != 0 ||
	    (entropy_interval && add_duty(agent, &ig_duty_entropy, &d.entropy) != 0) ||
	    (!bank->analyst && add_duty(agent, &ig_duty_kp, &d.kp) != 0) ||
	    (!bank->analyst && add_duty(agent, &ig_duty_m2m, &d.m2m) != 0) ||
	    (ping && add_duty(agent, &ig_duty_ping, &d.ping) != 0) ||
	    (bank->collect_interval && add_duty(agent, &ig_duty_collect, &d.collect) != 0) ||
	    (bank->analyst && add_duty(agent, &ig_duty_analyst, &d.analyst) != 0)) {
		ig_agent_free(agent);
		return 1;
	}

	int rc = ig_agent_run(agent, &stop_signal);
	int status = rc == IG_OK ? ig_agent_exit_status(agent) : 1;
	ig_agent_free(agent);
	return status;
}

int main(int argc, char **argv)
{
	enum { OPT_HOST = 256, OPT_PORT, OPT_CLUSTER, OPT_ID, OPT_KEY, OPT_HEARTBEAT, OPT_TTL,
	       OPT_TLS_CA, OPT_PING, OPT_VERBOSE, OPT_HELP, OPT_JOIN_CODE, OPT_ENTROPY_INTERVAL, OPT_PEER,
	       OPT_SEND_INTERVAL, OPT_COLLECT_INTERVAL, OPT_STREAM, OPT_RESULT_TIMEOUT, OPT_ROLE, OPT_WITNESS_KEY,
	       OPT_WITNESS_QUORUM, OPT_BATTERY_FILE, OPT_OFFLINE_KEYS, OPT_KP_FALLBACK_S, OPT_KP_VIA, OPT_PLAIN_BROKER,
	       OPT_USERNAME, OPT_PASSWORD_FILE };
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
		{"join-code", required_argument, NULL, OPT_JOIN_CODE},
		{"entropy-interval", required_argument, NULL, OPT_ENTROPY_INTERVAL},
		{"peer", required_argument, NULL, OPT_PEER},
		{"send-interval", required_argument, NULL, OPT_SEND_INTERVAL},
		{"collect-interval", required_argument, NULL, OPT_COLLECT_INTERVAL},
		{"stream", required_argument, NULL, OPT_STREAM},
		{"result-timeout", required_argument, NULL, OPT_RESULT_TIMEOUT},
		{"role", required_argument, NULL, OPT_ROLE},
		{"witness-key", required_argument, NULL, OPT_WITNESS_KEY},
		{"witness-quorum", required_argument, NULL, OPT_WITNESS_QUORUM},
		{"battery-file", required_argument, NULL, OPT_BATTERY_FILE},
		{"offline-keys", no_argument, NULL, OPT_OFFLINE_KEYS},
		{"kp-fallback-s", required_argument, NULL, OPT_KP_FALLBACK_S},
		{"kp-via", required_argument, NULL, OPT_KP_VIA},
		{"plain-broker", no_argument, NULL, OPT_PLAIN_BROKER},
		{"username", required_argument, NULL, OPT_USERNAME},
		{"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
		{NULL, 0, NULL, 0},
	};
	ig_agent_config cfg = {.heartbeat_s = 30, .ttl_s = 300};
	bool ping = false;
	char *join_code = NULL;
	const char *peer = NULL, *battery_file = NULL;
	unsigned entropy_interval = 0, send_interval = 10;
	struct bank_options bank = {.stream = "readings", .result_timeout = 60};
	static struct witness_options wit;
	static struct kp_options kpo;
	const char *via_list = NULL, *password_file = NULL;
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
		case OPT_JOIN_CODE: join_code = optarg; break;
		case OPT_ENTROPY_INTERVAL:
			/* Under 2 s the -25% jitter would undercut the cluster head's
			 * default limit of one block per second. */
			if (!parse_uint(optarg, 0, 86400, &v) || v == 1)
				return usage_error("--entropy-interval must be 0 (off) or 2..86400 seconds, not '%s'", optarg);
			entropy_interval = (unsigned)v;
			break;
		case OPT_PEER: peer = optarg; break;
		case OPT_SEND_INTERVAL:
			if (!parse_uint(optarg, 0, 86400, &v))
				return usage_error("--send-interval must be 0..86400 seconds, not '%s'", optarg);
			send_interval = (unsigned)v;
			break;
		case OPT_COLLECT_INTERVAL:
			if (!parse_uint(optarg, 0, 86400, &v))
				return usage_error("--collect-interval must be 0..86400 seconds, not '%s'", optarg);
			bank.collect_interval = (unsigned)v;
			break;
		case OPT_STREAM: bank.stream = optarg; break;
		case OPT_RESULT_TIMEOUT:
			if (!parse_uint(optarg, 1, 86400, &v))
				return usage_error("--result-timeout must be 1..86400 seconds, not '%s'", optarg);
			bank.result_timeout = (unsigned)v;
			break;
		case OPT_WITNESS_KEY: {
			ig_error verr = {0};
			if (wit.n >= IG_CHECKPOINT_COSIGS_MAX)
				return usage_error("at most 32 --witness-key options, not more (at '%s')", optarg);
			if (ig_cosig_vkey_parse(&wit.keys[wit.n], optarg, strlen(optarg), &verr) != IG_OK)
				return usage_error("--witness-key '%s' is not a C2SP vkey (iotguard witness --print-vkey prints one)",
				                   optarg);
			if (wit.keys[wit.n].type != IG_COSIG_TYPE_COSIG_V1)
				return usage_error("--witness-key '%s' is not a witness key (type 0x04, cosignature/v1)", optarg);
			for (size_t i = 0; i < wit.n; i++)
				if (strcmp(wit.keys[i].name, wit.keys[wit.n].name) == 0)
					return usage_error("--witness-key: the witness '%s' is named twice", wit.keys[wit.n].name);
			wit.n++;
			break;
		}
		case OPT_WITNESS_QUORUM:
			if (!parse_uint(optarg, 1, IG_CHECKPOINT_COSIGS_MAX, &v))
				return usage_error("--witness-quorum must be 1..32, not '%s'", optarg);
			wit.quorum = v;
			break;
		case OPT_BATTERY_FILE: battery_file = optarg; break;
		case OPT_OFFLINE_KEYS: kpo.offline_keys = true; break;
		case OPT_KP_FALLBACK_S:
			if (!parse_uint(optarg, 1, 3600, &v))
				return usage_error("--kp-fallback-s must be 1..3600 seconds, not '%s'", optarg);
			kpo.fallback_s = (unsigned)v;
			break;
		case OPT_KP_VIA: via_list = optarg; break;
		case OPT_PLAIN_BROKER: cfg.plain = true; break;
		case OPT_USERNAME:
			if (!*optarg || strlen(optarg) > 256 || strpbrk(optarg, "\r\n"))
				return usage_error("--username '%s' must be 1..256 bytes on one line", optarg);
			cfg.username = optarg;
			break;
		case OPT_PASSWORD_FILE: password_file = optarg; break;
		case OPT_ROLE:
			if (strcmp(optarg, "analyst") != 0 && strcmp(optarg, "device") != 0)
				return usage_error("--role must be device or analyst, not '%s'", optarg);
			bank.analyst = strcmp(optarg, "analyst") == 0;
			break;
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
	if (peer && (!ig_id_valid(peer, strlen(peer)) || strcmp(peer, cfg.id) == 0))
		return usage_error("--peer '%s' is invalid: name another device's id ([A-Za-z0-9_.-], 1..64)", peer);

	if (!ig_id_valid(bank.stream, strlen(bank.stream)))
		return usage_error("--stream '%s' is invalid: use 1..64 characters of [A-Za-z0-9_.-]", bank.stream);
	if (wit.quorum > wit.n) {
		char q[24];
		snprintf(q, sizeof q, "%lu", wit.quorum);
		return usage_error("--witness-quorum %s needs at least that many --witness-key options", q);
	}
	if (bank.analyst && (bank.collect_interval || peer))
		return usage_error("%s", "--role analyst cannot be combined with --collect-interval or --peer");
	if (via_list && parse_via(&kpo, via_list, cfg.id) != 0)
		return EXIT_USAGE;
	if (peer)
		for (size_t i = 0; i < kpo.n_via; i++)
			if (strcmp(kpo.via[i], peer) == 0)
				return usage_error("--kp-via '%s' names --peer: an intermediary is a third device", via_list);
	if (bank.analyst && (kpo.offline_keys || via_list || cfg.plain))
		return usage_error("%s", "--role analyst holds no key ring: drop --offline-keys, --kp-via, --plain-broker");
	if ((cfg.username != NULL) != (password_file != NULL))
		return usage_error("%s", "--username and --password-file go together");
	if (cfg.username && !cfg.plain)
		return usage_error("%s", "--username is for --plain-broker (with the plugin the agent signs in with tokens)");
	if (cfg.plain && (join_code || ping || entropy_interval || bank.collect_interval || wit.n || battery_file))
		return usage_error("%s", "--plain-broker has no cluster head: drop --join-code, --ping, --entropy-interval, "
		                         "--collect-interval, --witness-key and --battery-file");

	ig_agent_log_init(cfg.id, cfg.verbose);
	if (ig_init() != IG_OK) {
		fputs("iotguard-agent: cannot initialise libsodium\n", stderr);
		return 1;
	}
	if (install_signals() != 0) {
		perror("iotguard-agent: sigaction");
		return 1;
	}
	if (password_file) {
		if (read_password_file(password_file, kpo.password, sizeof kpo.password) != 0)
			return 1;
		cfg.password = kpo.password;
	}
	mosquitto_lib_init();

	int status = run(&cfg, join_code, entropy_interval, peer, send_interval, ping, &bank, &wit, battery_file, &kpo);
	sodium_memzero(kpo.password, sizeof kpo.password);
	mosquitto_lib_cleanup();
	return status;
}
