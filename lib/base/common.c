/*
 * common.c: errors, logging, roles, id validation, hex and clocks.
 *
 * Why this exists: these are the few helpers every module needs; keeping
 * them here stops each file growing its own slightly different copy.
 */
#include "ig_common.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ig_error_set(ig_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int ig_error_prefix(ig_error *err, const char *fmt, ...)
{
	if (!err)
		return IG_ERR_INVAL;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	int plen = vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (plen < 0)
		return err->code;
	size_t p = (size_t)plen < sizeof prefix ? (size_t)plen : sizeof prefix - 1;
	size_t old = strnlen(err->msg, sizeof err->msg - 1);
	if (p + old > sizeof err->msg - 1)
		old = sizeof err->msg - 1 - p;
	memmove(err->msg + p, err->msg, old);
	memcpy(err->msg, prefix, p);
	err->msg[p + old] = '\0';
	return err->code;
}

static const char *const role_names[IG_ROLE_COUNT] = {
	[IG_ROLE_NONE] = "none",
	[IG_ROLE_DEVICE] = "device",
	[IG_ROLE_ANALYST] = "analyst",
	[IG_ROLE_MONITOR] = "monitor",
	[IG_ROLE_ADMIN] = "admin",
	[IG_ROLE_WITNESS] = "witness",
	[IG_ROLE_BRIDGE] = "bridge",
};

const char *ig_role_name(ig_role role)
{
	if ((int)role <= IG_ROLE_NONE || (int)role >= IG_ROLE_COUNT)
		return "none";
	return role_names[role];
}

ig_role ig_role_parse(const char *name)
{
	if (!name)
		return IG_ROLE_NONE;
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		if (strcmp(name, role_names[r]) == 0)
			return (ig_role)r;
	return IG_ROLE_NONE;
}

bool ig_id_valid(const char *s, size_t len)
{
	if (!s || len == 0 || len > IG_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '_' || c == '.' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

static ig_log_fn log_fn;
static void *log_ctx;

void ig_log_set(ig_log_fn fn, void *ctx)
{
	log_fn = fn;
	log_ctx = ctx;
}

void ig_log(ig_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (log_fn) {
		log_fn(log_ctx, level, buf);
		return;
	}
	static const char *const names[] = {"error", "warning", "info", "debug"};
	if (level <= IG_LOG_INFO)
		fprintf(stderr, "iotguard: %s: %s\n", names[level], buf);
}

uint64_t ig_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ig_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ig_hex_encode(char *out, const uint8_t *in, size_t len)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

int ig_hex_decode(uint8_t *out, size_t outlen, const char *hex, size_t hexlen)
{
	size_t got = 0;
	if (hexlen != 2 * outlen)
		return IG_ERR_INVAL;
	if (sodium_hex2bin(out, outlen, hex, hexlen, NULL, &got, NULL) != 0 || got != outlen)
		return IG_ERR_INVAL;
	return IG_OK;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = IG_ERR_CRYPTO;

static void do_init(void)
{
	init_rc = sodium_init() >= 0 ? IG_OK : IG_ERR_CRYPTO;
}

int ig_init(void)
{
	pthread_once(&init_once, do_init);
	return init_rc;
}
