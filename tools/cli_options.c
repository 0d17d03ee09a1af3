/*
 * cli_options.c: option parsing shared by every `iotguard` command.
 *
 * Why this exists: each command used to carry its own getopt loop, number
 * checks and "is required" messages, and copies drift. Commands now declare
 * a table of options (cli.h) and this file walks argv once for all of them,
 * so an option is spelt, checked and complained about the same way
 * everywhere.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ig_json.h"

/* The most options one command takes (the identity commands have 14). */
#define CLI_OPTIONS_MAX 32

const char *cli_program = "iotguard";
bool cli_commands = true;
const char *cli_cmd = "";

/* "iotguard enroll: ..." or "bench_bank run: warning: ...": the program and
 * the command name every message, so a script's log says who complained. */
static void vmessage(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s%s%s: %s", cli_program, cli_cmd[0] ? " " : "", cli_cmd, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("warning: ", fmt, ap);
	va_end(ap);
}

int cli_usage_hint(void)
{
	if (cli_commands)
		fprintf(stderr, "Try '%s %s --help'.\n", cli_program, cli_cmd[0] ? cli_cmd : "help");
	else
		fprintf(stderr, "Try '%s --help'.\n", cli_program);
	return CLI_EXIT_ERR;
}

int cli_missing(const char *what)
{
	cli_error("%s is required", what);
	return cli_usage_hint();
}

/* For getopt's '?' and ':' results. getopt itself stays quiet (the leading
 * ':' in the option string) so that every message carries our prefix. */
static int bad_option(int c, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	if (c == ':')
		cli_error("option '%s' needs a value", arg);
	else if (optopt && optopt < 256)
		cli_error("unknown option '-%c'", optopt);
	else
		cli_error("unknown option '%s'", arg);
	return cli_usage_hint();
}

static bool parse_u64(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!text || !*text || *text == '-' || *text == '+') {
		cli_error("%s needs a whole number, got '%s'", opt, text ? text : "");
		return false;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0') {
		cli_error("%s needs a whole number, got '%s'", opt, text);
		return false;
	}
	if (v < min || v > max) {
		cli_error("%s must be between %" PRIu64 " and %" PRIu64 ", got %llu", opt, min, max, v);
		return false;
	}
	*out = (uint64_t)v;
	return true;
}

static bool parse_real(const char *opt, const char *text, double min, double max, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = text && *text ? strtod(text, &end) : 0;
	if (!text || !*text || errno != 0 || *end != '\0' || !isfinite(v)) {
		cli_error("%s needs a number, got '%s'", opt, text ? text : "");
		return false;
	}
	if (v < min || v > max) {
		cli_error("%s must be between %g and %g, got %s", opt, min, max, text);
		return false;
	}
	*out = v;
	return true;
}

bool cli_check_id(const char *opt, const char *value)
{
	if (!ig_id_valid(value, strlen(value))) {
		cli_error("%s '%s' is not valid: use 1..%d characters of A-Z a-z 0-9 _ . -", opt, value,
		          IG_ID_MAX);
		return false;
	}
	return true;
}

/* Stores one option's value where its table entry points. */
static int take_option(const cli_option *o, const char *arg)
{
	if (o->is_help)
		return CLI_HELP;
	char spelt[64];
	snprintf(spelt, sizeof spelt, "--%s", o->name);
	if (o->flag) {
		*o->flag = true;
	} else if (o->number) {
		if (!parse_u64(spelt, arg, o->min, o->max, o->number))
			return cli_usage_hint();
	} else if (o->real) {
		if (!parse_real(spelt, arg, o->rmin, o->rmax, o->real))
			return cli_usage_hint();
	} else if (o->list) {
		if (*o->list_n >= o->list_max) {
			cli_error("%s may be given at most %zu times", spelt, o->list_max);
			return cli_usage_hint();
		}
		o->list[(*o->list_n)++] = arg;
	} else {
		*o->text = arg;
	}
	return CLI_PARSED;
}

int cli_parse(int argc, char **argv, const cli_option *opts)
{
	struct option longopts[CLI_OPTIONS_MAX + 1];
	size_t n = 0;
	for (; opts[n].name; n++) {
		if (n == CLI_OPTIONS_MAX) {
			cli_error("internal error: more than %d options", CLI_OPTIONS_MAX);
			return CLI_EXIT_ERR;
		}
		bool takes_value = opts[n].text || opts[n].number || opts[n].real || opts[n].list;
		longopts[n] = (struct option){ opts[n].name, takes_value ? required_argument : no_argument,
		                               NULL, opts[n].val };
	}
	memset(&longopts[n], 0, sizeof longopts[n]);

	int c, which = -1;
	while ((c = getopt_long(argc, argv, ":", longopts, &which)) != -1) {
		if (c == '?' || c == ':' || which < 0 || (size_t)which >= n)
			return bad_option(c, argv);
		int rc = take_option(&opts[which], optarg);
		if (rc != CLI_PARSED)
			return rc;
		which = -1;
	}
	if (optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		return cli_usage_hint();
	}
	/* In table order, so the operator hears about the first one. */
	for (size_t i = 0; i < n; i++) {
		if (opts[i].required && !*opts[i].text) {
			char what[64];
			snprintf(what, sizeof what, "--%s %s", opts[i].name, opts[i].required);
			return cli_missing(what);
		}
	}
	return CLI_PARSED;
}

int cli_online_ready(cli_online *on, const char *what, uint64_t port, uint64_t timeout_s)
{
	if (!on->host || !on->cluster || !on->user || !on->key_path) {
		cli_error("%s works through the broker: it needs %s", what,
		          !on->host ? "--host HOST" : !on->cluster ? "--cluster NAME" : !on->user ? "--user ADMIN_ID" : "--key FILE");
		return cli_usage_hint();
	}
	if (!cli_check_id("--cluster", on->cluster) || !cli_check_id("--user", on->user))
		return CLI_EXIT_ERR;
	on->port = (int)port;
	on->timeout_s = (int)timeout_s;
	return CLI_EXIT_OK;
}

const char *cli_json_str(const cJSON *o, const char *name, const char *dflt)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(f) ? f->valuestring : dflt;
}

uint64_t cli_json_uint(const cJSON *o, const char *name)
{
	uint64_t v = 0;
	return ig_json_uint_field(&v, o, name, 0, IG_JSON_UINT_MAX) == IG_OK ? v : 0;
}
