/*
 * testutil.c: the shared unit-test helpers (see testutil.h for why).
 *
 * Failures go through Criterion's asserts, so a helper that fails stops the
 * test that called it with a message naming what went wrong.
 */
#include "testutil.h"

#include <cJSON.h>
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_common.h"
#include "ig_record.h"

#ifndef IG_SOURCE_ROOT
#error "IG_SOURCE_ROOT must name the source tree (tests/meson.build sets it)"
#endif

/* ---- captured log lines ---------------------------------------------------- */

static char *log_buf;
static size_t log_cap;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_append(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	pthread_mutex_lock(&log_mu);
	size_t used = strlen(log_buf);
	snprintf(log_buf + used, log_cap - used, "%s\n", msg);
	pthread_mutex_unlock(&log_mu);
}

void tu_log_capture(char *buf, size_t cap)
{
	cr_assert(buf && cap > 0);
	pthread_mutex_lock(&log_mu);
	log_buf = buf;
	log_cap = cap;
	buf[0] = '\0';
	pthread_mutex_unlock(&log_mu);
	ig_log_set(log_append, NULL);
}

bool tu_log_has(const char *needle)
{
	pthread_mutex_lock(&log_mu);
	bool has = log_buf && strstr(log_buf, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return has;
}

/* ---- seeded random numbers ---------------------------------------------- */

static uint64_t rng_state;
static int rng_ready;

uint64_t tu_seed(void)
{
	const char *env = getenv("IG_TEST_SEED");
	if (env == NULL || *env == '\0')
		return TU_DEFAULT_SEED;
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(env, &end, 0);
	if (errno != 0 || end == env || *end != '\0') {
		fprintf(stderr, "IG_TEST_SEED=%s is not a number: use decimal or 0x-hex\n", env);
		abort();
	}
	return (uint64_t)v;
}

void tu_rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : TU_DEFAULT_SEED;
	rng_ready = 1;
}

uint64_t tu_rand(void)
{
	if (!rng_ready)
		tu_rng_seed(tu_seed());
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

uint32_t tu_rand32(void)
{
	return (uint32_t)(tu_rand() >> 32);
}

void tu_rand_bytes(uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = tu_rand();
		memcpy(out + i, &v, len - i < 8 ? len - i : 8);
	}
}

void tu_rand_string(char *out, size_t max, const char *alphabet)
{
	size_t n = tu_rand32() % (max + 1), k = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[tu_rand32() % k];
	out[n] = '\0';
}

/* The runner process sees every result; the seed is the same in every test
 * process (it comes from the environment), so it can be named here. */
ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
	if (stats->test_status == CR_STATUS_FAILED)
		fprintf(stderr, "%s::%s failed with IG_TEST_SEED=0x%016llx (set it to replay, or to try another)\n",
		        stats->test->category, stats->test->name, (unsigned long long)tu_seed());
}

/* ---- fixed material ----------------------------------------------------- */

bool tu_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

void tu_seq_bytes(uint8_t *out, size_t len, uint8_t first)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(first + i);
}

void tu_seed_keypair(uint8_t pk[32], uint8_t sk[64], uint8_t first)
{
	uint8_t seed[32];
	tu_seq_bytes(seed, sizeof seed, first);
	int rc = crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
	cr_assert_eq(rc, 0);
}

size_t tu_enroll_body(uint8_t *out, size_t cap, const char *id, ig_role role, const uint8_t pk[32], const char *by)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "%s", id);
	snprintf(e.by, sizeof e.by, "%s", by);
	e.role = role;
	memcpy(e.pk, pk, 32);
	int n = ig_record_enroll_encode(out, cap, &e);
	cr_assert_gt(n, 0, "cannot encode an enroll body for %s in %zu bytes", id, cap);
	return (size_t)n;
}

size_t tu_device_enroll_body(uint8_t *out, size_t cap, const char *id)
{
	uint8_t pk[32];
	crypto_generichash(pk, sizeof pk, (const uint8_t *)id, strlen(id), NULL, 0);
	return tu_enroll_body(out, cap, id, IG_ROLE_DEVICE, pk, "offline:test");
}

size_t tu_revoke_body(uint8_t *out, size_t cap, const char *id, const char *by)
{
	ig_revoke v;
	memset(&v, 0, sizeof v);
	snprintf(v.id, sizeof v.id, "%s", id);
	snprintf(v.by, sizeof v.by, "%s", by);
	int n = ig_record_revoke_encode(out, cap, &v);
	cr_assert_gt(n, 0, "cannot encode a revoke body for %s in %zu bytes", id, cap);
	return (size_t)n;
}

/* ---- hex ---------------------------------------------------------------- */

#define TU_HEX_MAX 4096

size_t tu_unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = strlen(hex) / 2;
	cr_assert_leq(n, cap, "hex of %zu bytes does not fit %zu: %.32s...", n, cap, hex);
	cr_assert_eq(ig_hex_decode(out, n, hex, 2 * n), IG_OK, "bad hex in test: %s", hex);
	return n;
}

void tu_assert_hex(const uint8_t *bin, size_t len, const char *expect)
{
	static char buf[2 * TU_HEX_MAX + 1];
	cr_assert_leq(len, (size_t)TU_HEX_MAX, "tu_assert_hex takes at most %d bytes", TU_HEX_MAX);
	ig_hex_encode(buf, bin, len);
	cr_assert_str_eq(buf, expect);
}

/* ---- files and directories ---------------------------------------------- */

static char auto_dirs[8][256];
static int auto_registered;

static void remove_auto_dirs(void)
{
	for (size_t i = 0; i < sizeof auto_dirs / sizeof auto_dirs[0]; i++)
		if (auto_dirs[i][0])
			(void)tu_rmtree(auto_dirs[i]);
}

void tu_tempdir(char *out, size_t cap, const char *tag, int auto_remove)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || *base == '\0')
		base = "/tmp";
	int n = snprintf(out, cap, "%s/ig-test-%s-XXXXXX", base, tag);
	cr_assert(n > 0 && (size_t)n < cap, "temp dir name for %s does not fit %zu bytes", tag, cap);
	cr_assert_not_null(mkdtemp(out), "cannot create a temp dir in %s: %s", base, strerror(errno));
	if (!auto_remove)
		return;
	size_t slot = 0;
	while (slot < sizeof auto_dirs / sizeof auto_dirs[0] && auto_dirs[slot][0])
		slot++;
	cr_assert_lt(slot, sizeof auto_dirs / sizeof auto_dirs[0], "too many auto-removed temp dirs in one test");
	cr_assert_lt(strlen(out), sizeof auto_dirs[0]);
	memcpy(auto_dirs[slot], out, strlen(out) + 1);
	if (!auto_registered) {
		auto_registered = 1;
		cr_assert_eq(atexit(remove_auto_dirs), 0);
	}
}

const char *tu_scratch_dir(const char *tag)
{
	char dir[sizeof auto_dirs[0]];
	tu_tempdir(dir, sizeof dir, tag, 1);
	for (size_t i = 0; i < sizeof auto_dirs / sizeof auto_dirs[0]; i++)
		if (strcmp(auto_dirs[i], dir) == 0)
			return auto_dirs[i];
	cr_assert_fail("tu_scratch_dir lost %s", dir);
	return NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int tu_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "cannot create %s: %s", path, strerror(errno));
	const uint8_t *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		cr_assert(w > 0, "cannot write %s: %s", path, strerror(errno));
		done += (size_t)w;
	}
	cr_assert_eq(close(fd), 0, "cannot close %s: %s", path, strerror(errno));
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	for (;;) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
		cr_assert_not_null(buf);
	}
	cr_assert_eq(ferror(f), 0, "cannot read %s", path);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

const char *tu_read_doc(const char *name)
{
	static struct {
		char name[64];
		char *text;
	} cache[4];
	for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++)
		if (cache[i].text && strcmp(cache[i].name, name) == 0)
			return cache[i].text;
	for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
		if (cache[i].text)
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/docs/%s", IG_SOURCE_ROOT, name);
		cr_assert_lt(strlen(name), sizeof cache[i].name);
		cache[i].text = tu_read_file(path, NULL);
		memcpy(cache[i].name, name, strlen(name) + 1);
		return cache[i].text;
	}
	cr_assert_fail("tu_read_doc caches at most 4 documents per test");
	return NULL;
}

/* ---- JSON ---------------------------------------------------------------- */

double tu_json_num(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	cr_assert(cJSON_IsNumber(f), "no number \"%s\"", name);
	return f->valuedouble;
}

const char *tu_json_str(const cJSON *o, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
	cr_assert(cJSON_IsString(f) && f->valuestring, "no string \"%s\"", name);
	return f->valuestring;
}
