/*
 * cmd_dashboard.c: `iotguard dashboard-config`, which writes the operator
 * dashboard's trust anchor, config.json (docs/DASHBOARD.md).
 *
 * Why this exists: the page verifies the signed ledger head itself, so it
 * must learn the cluster-head key from somewhere other than the broker it
 * is checking. The operator's side holds the truth: the genesis record of
 * the ledger (the key `iotguard init` printed) and the policy's witness
 * keys. This command reads both with the same code the broker and `verify`
 * use, checking the whole ledger on the way (a config cut from a tampered
 * ledger would pin the wrong key), and writes the file next to the served
 * page atomically, so the broker never serves half a file. The file holds
 * only public keys: mode 0644, so the broker's user can read it.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ig_cosig.h"
#include "ig_durable.h"
#include "ig_ledger.h"
#include "ig_policy.h"
#include "ig_record.h"

/* A WebSocket URL the page is told to use; longer is not a URL anyone types. */
#define DASH_URL_MAX 512

enum { OPT_LEDGER = 256, OPT_DSN, OPT_POLICY, OPT_URL, OPT_OUT, OPT_HELP };

static int dashboard_help(void)
{
	printf("Usage: iotguard dashboard-config (--ledger DIR | --dsn DSN [--ledger KEYDIR])\n"
	       "                                 [--policy FILE] [--url URL] [--out FILE]\n"
	       "Writes the dashboard's config.json: the cluster name and cluster-head public\n"
	       "key from the ledger's genesis record, and the policy's witness keys and quorum.\n"
	       "The page pins that key and verifies every signed head against it. Put the file\n"
	       "next to the page's index.html (the broker's http_dir). The whole ledger is\n"
	       "checked first, as 'iotguard verify' does; it needs no lock, so the broker may\n"
	       "run.\n\n"
	       "  --ledger DIR     the ledger directory (the broker's plugin_opt_ledger)\n"
	       "  --dsn DSN        the shared ledger in PostgreSQL instead; with --ledger, that\n"
	       "                   directory's ch.key must be the ledger's key\n"
	       "  --policy FILE    the broker's policy file: its \"witnesses\" (keys and quorum)\n"
	       "                   go into the file, so the page checks the head's cosignatures.\n"
	       "                   Without it, or when the policy names no witnesses, none\n"
	       "  --url URL        the ws:// or wss:// URL the page connects to (default: the\n"
	       "                   address the page was loaded from)\n"
	       "  --out FILE       write FILE (replaced atomically, mode 0644) instead of stdout\n"
	       "  --help           show this help\n\n"
	       "Exit status: 0 written, 1 error, 2 the ledger failed verification.\n");
	return CLI_EXIT_OK;
}

/* What the scan keeps from the ledger: the genesis record's cluster and key. */
typedef struct genesis_pick {
	bool found;
	ig_genesis g;
} genesis_pick;

static int pick_genesis(void *ctx, const ig_record *rec, ig_error *err)
{
	genesis_pick *p = ctx;
	if (rec->index != 0 || rec->type != IG_REC_GENESIS)
		return IG_OK;
	if (ig_record_genesis_decode(rec->body, rec->body_len, &p->g, err) != IG_OK)
		return err->code ? err->code : IG_ERR_CORRUPT;
	p->found = true;
	return IG_OK;
}

/* A URL the page can hand to new WebSocket(): ws:// or wss://, a host, no
 * spaces or control bytes (the value lands in a JSON file that a browser
 * reads; it is not a place for anything else). */
static bool check_url(const char *url)
{
	size_t len = strlen(url);
	const char *rest = NULL;
	if (strncmp(url, "wss://", 6) == 0)
		rest = url + 6;
	else if (strncmp(url, "ws://", 5) == 0)
		rest = url + 5;
	if (!rest || !*rest || *rest == '/' || len > DASH_URL_MAX) {
		cli_error("--url '%s' is not a WebSocket URL: give wss://HOST:PORT/ (or ws:// on localhost), "
		          "at most %d characters",
		          url, DASH_URL_MAX);
		return false;
	}
	for (const char *c = url; *c; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '"' || *c == '\\') {
			cli_error("--url must not contain spaces, quotes, backslashes, control or non-ASCII characters");
			return false;
		}
	}
	if (rest == url + 5) {
		/* A plain ws:// URL carries the connection token in clear. */
		size_t hl = strcspn(rest, ":/");
		bool local = (hl == 9 && strncmp(rest, "localhost", 9) == 0) ||
		             (hl == 9 && strncmp(rest, "127.0.0.1", 9) == 0) || strncmp(rest, "[::1]", 5) == 0;
		if (!local)
			cli_warn("--url %s is plain ws://: the page's connection tokens would cross the network in clear "
			         "(and browsers give crypto.subtle only to https pages or localhost); use a wss:// listener",
			         url);
	}
	return true;
}

/* The "witnesses" object from the policy, or NULL (*rc CLI_EXIT_OK) when it
 * names none; NULL with *rc set after saying what is wrong. */
static cJSON *policy_witnesses(const char *path, int *rc)
{
	*rc = CLI_EXIT_OK;
	ig_policy *pol = NULL;
	ig_error err = { 0 };
	if (ig_policy_load(path, &pol, &err) != IG_OK) {
		cli_error("--policy: %s", err.msg);
		*rc = CLI_EXIT_ERR;
		return NULL;
	}
	const ig_cosig_vkey *keys = NULL;
	size_t quorum = 0;
	size_t n = ig_policy_witnesses(pol, &keys, &quorum);
	cJSON *w = NULL;
	if (n > 0) {
		cJSON *list;
		w = cJSON_CreateObject();
		if (!w || !(list = cJSON_AddArrayToObject(w, "keys")))
			goto nomem;
		for (size_t i = 0; i < n; i++) {
			char vkey[IG_COSIG_VKEY_MAX];
			cJSON *s;
			if (ig_cosig_vkey_encode(vkey, sizeof vkey, &keys[i]) < 0) {
				cli_error("--policy %s: cannot encode witness key %zu", path, i + 1);
				cJSON_Delete(w);
				ig_policy_free(pol);
				*rc = CLI_EXIT_ERR;
				return NULL;
			}
			if (!(s = cJSON_CreateString(vkey)) || !cJSON_AddItemToArray(list, s)) {
				cJSON_Delete(s);
				goto nomem;
			}
		}
		if (!cJSON_AddNumberToObject(w, "quorum", (double)quorum))
			goto nomem;
	}
	ig_policy_free(pol);
	return w;
nomem:
	cJSON_Delete(w);
	ig_policy_free(pol);
	cli_error("out of memory");
	*rc = CLI_EXIT_ERR;
	return NULL;
}

int cmd_dashboard_config(int argc, char **argv)
{
	const char *dir = NULL, *dsn = NULL, *policy = NULL, *url = NULL, *out = NULL;
	const cli_option opts[] = {
		CLI_TEXT("ledger", OPT_LEDGER, &dir),
		CLI_TEXT("dsn", OPT_DSN, &dsn),
		CLI_TEXT("policy", OPT_POLICY, &policy),
		CLI_TEXT("url", OPT_URL, &url),
		CLI_TEXT("out", OPT_OUT, &out),
		CLI_HELP_OPTION(OPT_HELP),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? dashboard_help() : rc;
	if (!dir && !dsn)
		return cli_missing("--ledger DIR (or --dsn DSN)");
	if (url && !check_url(url))
		return CLI_EXIT_ERR;
	if (out && !*out) {
		cli_error("--out needs a file name (leave it out to print to stdout)");
		return CLI_EXIT_ERR;
	}

	/* The policy first: a mistake there is found before a long ledger check. */
	cJSON *witnesses = NULL;
	if (policy) {
		witnesses = policy_witnesses(policy, &rc);
		if (rc != CLI_EXIT_OK)
			return rc;
	}

	/* Say plainly what is missing before the ledger code words it as a
	 * failed open. */
	if (!dsn) {
		char log_path[4096];
		struct stat st;
		const char *why = stat(dir, &st) != 0 ? strerror(errno) : !S_ISDIR(st.st_mode) ? "not a directory" : NULL;
		if (why) {
			cli_error("--ledger %s: %s; give the ledger directory 'iotguard init --ledger' created "
			          "(the broker's plugin_opt_ledger)",
			          dir, why);
			cJSON_Delete(witnesses);
			return CLI_EXIT_ERR;
		}
		int n = snprintf(log_path, sizeof log_path, "%s/%s", dir, IG_LEDGER_LOG);
		if (n < 0 || (size_t)n >= sizeof log_path) {
			cli_error("--ledger: the path is too long");
			cJSON_Delete(witnesses);
			return CLI_EXIT_ERR;
		}
		if (access(log_path, F_OK) != 0) {
			cli_error("--ledger %s holds no ledger (%s is missing): give the directory 'iotguard init "
			          "--ledger' created (the broker's plugin_opt_ledger)",
			          dir, IG_LEDGER_LOG);
			cJSON_Delete(witnesses);
			return CLI_EXIT_ERR;
		}
	}

	/* The whole ledger, checked: the key written is the one every record
	 * and the signed checkpoint agree on. */
	genesis_pick pick = { 0 };
	ig_verify_result res;
	memset(&res, 0, sizeof res);
	ig_error err = { 0 };
	bool checked = false;
	rc = cli_ledger_read(dir, dsn, pick_genesis, &pick, NULL, NULL, &res, &checked, &err);
	if (rc != IG_OK) {
		cli_error("%s", err.msg[0] ? err.msg : "cannot read the ledger");
		cJSON_Delete(witnesses);
		return dsn ? cli_ledger_read_exit(rc, checked) : cli_exit_for(rc);
	}
	if (!pick.found) {
		cli_error("the ledger has no genesis record: it is not an iotguard ledger");
		cJSON_Delete(witnesses);
		return CLI_EXIT_BAD_LEDGER;
	}

	bool has_witnesses = witnesses != NULL;
	char ch_hex[2 * IG_PK_BYTES + 1];
	ig_hex_encode(ch_hex, pick.g.ch_pk, IG_PK_BYTES);
	cJSON *cfg = cJSON_CreateObject();
	char *text = NULL;
	if (!cfg || !cJSON_AddStringToObject(cfg, "cluster", pick.g.cluster) ||
	    !cJSON_AddStringToObject(cfg, "ch_pubkey", ch_hex)) {
		cJSON_Delete(witnesses);
		goto nomem;
	}
	if (witnesses && !cJSON_AddItemToObject(cfg, "witnesses", witnesses)) {
		cJSON_Delete(witnesses);
		goto nomem;
	}
	if (url && !cJSON_AddStringToObject(cfg, "url", url))
		goto nomem;
	text = cJSON_Print(cfg);
	cJSON_Delete(cfg);
	cfg = NULL;
	if (!text)
		goto nomem;
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line)
		goto nomem;
	text = line;
	text[len++] = '\n';
	text[len] = '\0';

	if (!out) {
		bool ok = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0;
		free(text);
		if (!ok) {
			cli_error("cannot write to stdout");
			return CLI_EXIT_ERR;
		}
		return CLI_EXIT_OK;
	}
	rc = ig_durable_replace_mode(out, text, len, 0644, "dashboard config", &err);
	free(text);
	if (rc != IG_OK) {
		cli_error("%s; check that the directory exists and is writable", err.msg);
		return CLI_EXIT_ERR;
	}
	fprintf(stderr, "iotguard dashboard-config: wrote %s for cluster %s (cluster-head key %.16s...%s)\n", out,
	        pick.g.cluster, ch_hex, has_witnesses ? ", with the policy's witnesses" : "");
	return CLI_EXIT_OK;
nomem:
	cJSON_Delete(cfg);
	free(text);
	cli_error("out of memory");
	return CLI_EXIT_ERR;
}
