/*
 * entropy.c: device entropy, from raw samples to the cluster head's pool.
 *
 * Why this exists: devices see timing jitter, interrupt and network
 * counters and sensor noise the cluster head cannot, so they contribute
 * conditioned blocks to a keyed pool on the cluster head. A broken source
 * must be noticed on the device before it contributes anything, which is
 * what the NIST SP 800-90B section 4.4 continuous health tests are for; and
 * since device entropy is never trusted alone, every pool derivation also
 * takes fresh OS randomness.
 *
 * How SP 800-90B 4.4 is read here (alpha = 2^-20, H = claimed min-entropy
 * per sample):
 *   Repetition count test (4.4.1): A = first sample, B = 1. For each later
 *     sample: if it equals A, B += 1 and the test fails when B >= C;
 *     otherwise A = sample, B = 1. C = 1 + ceil(20 / H), so a run of C
 *     identical samples (probability <= 2^-20 for a source that really has
 *     H bits per sample) is a failure.
 *   Adaptive proportion test (4.4.2): windows of W samples that do not
 *     overlap. The first sample of a window is the reference A and B = 1
 *     (the reference counts itself); each of the next W - 1 samples that
 *     equals A adds 1, and the test fails as soon as B >= C. After W
 *     samples the next sample starts a new window.
 *     C = 1 + CRITBINOM(W, 2^-H, 1 - alpha): CRITBINOM(n, p, q) is the
 *     smallest k whose binomial CDF(k; n, p) is >= q. W = 512, or 1024 for
 *     binary samples.
 * The CDF is evaluated without libm (the library does not link it): the
 * binomial weights are built outward from the mode by the exact ratio
 * P(k+1)/P(k) = (n-k)/(k+1) * p/(1-p), which cannot overflow and only
 * underflows in tails far below alpha, and the upper tail beyond k is summed
 * directly so no 1 - CDF cancellation occurs.
 */
#include "ig_entropy.h"
#include "ig_hkdf.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALPHA_LOG2 20              /* alpha = 2^-20 */
#define APT_WINDOW 512
#define APT_WINDOW_BINARY 1024

/* ---- cutoffs -------------------------------------------------------------- */

static bool claimed_h_valid(double h)
{
	return h > 0.0 && h <= 8.0;   /* false for NaN too */
}

uint32_t ig_health_rct_cutoff(double h)
{
	if (!claimed_h_valid(h))
		return 0;
	double q = (double)ALPHA_LOG2 / h;
	if (q >= (double)(UINT32_MAX - 2))
		return UINT32_MAX;
	uint32_t c = (uint32_t)q;      /* floor, q > 0 */
	if ((double)c < q)
		c++;                       /* ceil */
	return 1 + c;
}

/* 2^-h for 0 < h <= 8 without libm: halve for the integer part, Taylor
 * series of e^x with x = -f ln 2 in (-0.7, 0] for the fraction; 40 terms is
 * far past double precision at |x| < 0.7. */
static double exp2_neg(double h)
{
	double r = 1.0;
	while (h >= 1.0) {
		r *= 0.5;
		h -= 1.0;
	}
	double x = -h * 0.69314718055994530942, term = 1.0, sum = 1.0;
	for (int k = 1; k <= 40; k++) {
		term *= x / k;
		sum += term;
	}
	return r * sum;
}

/* CRITBINOM(n, p, 1 - 2^-20): smallest k with P(X > k) <= 2^-20 for
 * X ~ Binomial(n, p), 0 < p < 1, n <= APT_WINDOW_BINARY. */
static uint32_t critbinom(uint32_t n, double p)
{
	const double alpha = 1.0 / (double)(1u << ALPHA_LOG2);
	double w[APT_WINDOW_BINARY + 1];
	uint32_t mode = (uint32_t)((double)(n + 1) * p);
	if (mode > n)
		mode = n;
	double odds = p / (1.0 - p);
	w[mode] = 1.0;
	for (uint32_t k = mode; k < n; k++)          /* P(k+1) / P(k) */
		w[k + 1] = w[k] * ((double)(n - k) / (double)(k + 1)) * odds;
	for (uint32_t k = mode; k > 0; k--)          /* P(k-1) / P(k) */
		w[k - 1] = w[k] * ((double)k / (double)(n - k + 1)) / odds;
	double total = 0.0;
	for (uint32_t k = 0; k <= n; k++)
		total += w[k];
	/* Walk down from the top: tail = P(X > k) * total. */
	double tail = 0.0;
	uint32_t k = n;
	while (k > 0 && (tail + w[k]) <= alpha * total) {
		tail += w[k];
		k--;
	}
	return k;
}

uint32_t ig_health_apt_cutoff(uint32_t window, double h)
{
	/* SP 800-90B defines two windows; anything up to the larger is accepted */
	if (!claimed_h_valid(h) || window < 2 || window > APT_WINDOW_BINARY)
		return 0;
	return 1 + critbinom(window, exp2_neg(h));
}

int ig_health_init(ig_health *t, double h, bool binary)
{
	if (!t)
		return IG_ERR_INVAL;
	memset(t, 0, sizeof *t);
	if (!claimed_h_valid(h) || (binary && h > 1.0))
		return IG_ERR_RANGE;   /* a bit cannot carry more than one bit of entropy */
	t->h = h;
	t->apt_window = binary ? APT_WINDOW_BINARY : APT_WINDOW;
	t->rct_cutoff = ig_health_rct_cutoff(h);
	t->apt_cutoff = ig_health_apt_cutoff(t->apt_window, h);
	return IG_OK;
}

bool ig_health_feed(ig_health *t, uint8_t sample)
{
	if (!t || t->failed)
		return false;
	if (t->rct_cutoff == 0 || t->apt_cutoff == 0) {
		/* never initialised: refuse rather than pass everything */
		t->failed = true;
		snprintf(t->failure, sizeof t->failure, "health tests not initialised");
		return false;
	}
	t->samples++;

	/* Repetition count test. */
	if (t->samples > 1 && sample == t->rct_last) {
		t->rct_run++;
		if (t->rct_run >= t->rct_cutoff) {
			t->failed = true;
			snprintf(t->failure, sizeof t->failure,
			         "repetition count test: %u identical samples (cutoff %u)", t->rct_run, t->rct_cutoff);
			return false;
		}
	} else {
		t->rct_last = sample;
		t->rct_run = 1;
	}

	/* Adaptive proportion test. */
	if (!t->have_first) {
		t->apt_first = sample;
		t->apt_count = 1;
		t->apt_seen = 1;
		t->have_first = true;
	} else {
		t->apt_seen++;
		if (sample == t->apt_first) {
			t->apt_count++;
			if (t->apt_count >= t->apt_cutoff) {
				t->failed = true;
				snprintf(t->failure, sizeof t->failure,
				         "adaptive proportion test: %u of %u samples equal the first (cutoff %u)",
				         t->apt_count, t->apt_window, t->apt_cutoff);
				return false;
			}
		}
	}
	if (t->apt_seen >= t->apt_window)
		t->have_first = false;   /* the next sample opens a new window */
	return true;
}

/* ---- Von Neumann ---------------------------------------------------------- */

size_t ig_vn_debias(uint8_t *out, size_t out_cap, const uint8_t *in, size_t in_len)
{
	if (!out || !in || out_cap == 0)
		return 0;
	size_t bytes = 0;
	unsigned acc = 0, nbits = 0;
	for (size_t i = 0; i < in_len && bytes < out_cap; i++) {
		for (unsigned b = 0; b < 8 && bytes < out_cap; b += 2) {
			unsigned first = (in[i] >> b) & 1u, second = (in[i] >> (b + 1)) & 1u;
			if (first == second)
				continue;
			acc |= first << nbits;   /* 10 -> 1, 01 -> 0: the first bit of the pair */
			if (++nbits == 8) {
				out[bytes++] = (uint8_t)acc;
				acc = 0;
				nbits = 0;
			}
		}
	}
	return bytes * 8;
}

void ig_entropy_condition(uint8_t block[IG_ENTROPY_BLOCK_BYTES], const uint8_t *in, size_t len)
{
	static const uint8_t empty[1];
	crypto_generichash(block, IG_ENTROPY_BLOCK_BYTES, in ? in : empty, in ? len : 0, NULL, 0);
}

/* ---- sources ---------------------------------------------------------------
 *
 * Each source returns the low byte of something that moves unpredictably;
 * the health tests, not these functions, decide whether it moved enough.
 */

static bool mono_raw_ns(uint64_t *ns)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC_RAW, &ts) != 0)
		return false;
	*ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return true;
}

/* Timing jitter: how long a short, data-dependent walk over a buffer larger
 * than L1 takes varies with caches, TLB, branch predictors, interrupts and
 * frequency scaling. */
#define JITTER_BUF (64 * 1024)
#define JITTER_STEPS 64

static size_t sample_jitter(uint8_t *out, size_t cap)
{
	uint8_t *buf = calloc(1, JITTER_BUF);
	if (!buf)
		return 0;
	volatile uint8_t *vbuf = buf;   /* the walk must not be optimised away */
	uint64_t prev;
	if (!mono_raw_ns(&prev)) {
		free(buf);
		return 0;
	}
	size_t idx = 0, n = 0;
	for (; n < cap; n++) {
		for (size_t j = 0; j < JITTER_STEPS; j++) {
			idx = (idx * 33u + vbuf[idx] + j + (prev & 0xffu)) & (JITTER_BUF - 1);
			vbuf[idx] = (uint8_t)(vbuf[idx] + (uint8_t)(j ^ idx));
		}
		uint64_t now;
		if (!mono_raw_ns(&now))
			break;
		out[n] = (uint8_t)(now - prev);
		prev = now;
	}
	free(buf);
	return n;
}

/* Sum of the per-CPU counters on every line of /proc/interrupts: after the
 * "NN:" label come one decimal count per CPU, then the controller name. */
static bool sum_interrupts(uint64_t *sum)
{
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return false;
	char *line = NULL;
	size_t line_cap = 0;
	uint64_t s = 0;
	bool any = false;
	while (getline(&line, &line_cap, f) > 0) {
		char *p = strchr(line, ':');
		if (!p)
			continue;   /* the CPU header line */
		p++;
		for (;;) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9')
				break;
			char *end;
			unsigned long long v = strtoull(p, &end, 10);
			if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\0')
				break;   /* "5-edge": part of the name, not a count */
			s += v;
			any = true;
			p = end;
		}
	}
	free(line);
	fclose(f);
	*sum = s;
	return any;
}

/* Receive and transmit byte and packet counters of every interface. */
static bool sum_net(uint64_t *sum)
{
	FILE *f = fopen("/proc/net/dev", "r");
	if (!f)
		return false;
	char *line = NULL;
	size_t line_cap = 0;
	uint64_t s = 0;
	bool any = false;
	while (getline(&line, &line_cap, f) > 0) {
		char *p = strchr(line, ':');
		if (!p)
			continue;   /* header lines */
		p++;
		unsigned long long v[10];
		int n = 0;
		while (n < 10) {
			char *end;
			errno = 0;
			v[n] = strtoull(p, &end, 10);
			if (end == p || errno)
				break;
			p = end;
			n++;
		}
		if (n == 10) {
			s += v[0] + v[1] + v[8] + v[9];   /* rx bytes, rx packets, tx bytes, tx packets */
			any = true;
		}
	}
	free(line);
	fclose(f);
	*sum = s;
	return any;
}

/* Counters barely move between back-to-back reads (measured: the delta is
 * 0 in 98% of reads), so reads are spaced by a short sleep. */
#define COUNTER_PAUSE_NS 1000000L

static bool counters(uint64_t *sum)
{
	uint64_t irq = 0, net = 0;
	bool have_irq = sum_interrupts(&irq);
	bool have_net = sum_net(&net);
	*sum = irq + net;
	return have_irq || have_net;
}

static size_t sample_interrupts(uint8_t *out, size_t cap)
{
	uint64_t prev;
	if (!counters(&prev))
		return 0;
	size_t n = 0;
	for (; n < cap; n++) {
		struct timespec pause = {0, COUNTER_PAUSE_NS};
		while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
			;
		uint64_t now;
		if (!counters(&now))
			break;
		out[n] = (uint8_t)(now - prev);
		prev = now;
	}
	return n;
}

/* Sensors update every second or so, so reading one in a loop only repeats
 * its value (and would trip the repetition count test): each call reads
 * every sensor found once. */
#define SENSOR_MAX 256

static bool read_long(const char *path, long long *v)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fscanf(f, "%lld", v) == 1;
	fclose(f);
	return ok;
}

static bool has_prefix_suffix(const char *name, const char *prefix, const char *suffix)
{
	size_t n = strlen(name), pl = strlen(prefix), sl = strlen(suffix);
	return n > pl + sl && strncmp(name, prefix, pl) == 0 && strcmp(name + n - sl, suffix) == 0;
}

/* Reads every matching file in the subdirectories of base whose names start
 * with dir_prefix; appends the low bytes to out. */
static size_t read_sensor_dirs(const char *base, const char *dir_prefix, bool hwmon, uint8_t *out, size_t cap,
                               size_t n)
{
	DIR *d = opendir(base);
	if (!d)
		return n;
	struct dirent *de;
	while (n < cap && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, dir_prefix, strlen(dir_prefix)) != 0)
			continue;
		char dir[512];
		snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
		if (!hwmon) {
			char path[600];
			long long v;
			snprintf(path, sizeof path, "%s/temp", dir);
			if (read_long(path, &v))
				out[n++] = (uint8_t)v;
			continue;
		}
		DIR *sd = opendir(dir);
		if (!sd)
			continue;
		struct dirent *fe;
		while (n < cap && (fe = readdir(sd)) != NULL) {
			if (!has_prefix_suffix(fe->d_name, "temp", "_input") && !has_prefix_suffix(fe->d_name, "in", "_input") &&
			    !has_prefix_suffix(fe->d_name, "fan", "_input"))
				continue;
			char path[800];
			long long v;
			snprintf(path, sizeof path, "%s/%s", dir, fe->d_name);
			if (read_long(path, &v))
				out[n++] = (uint8_t)v;
		}
		closedir(sd);
	}
	closedir(d);
	return n;
}

static size_t sample_sensors(uint8_t *out, size_t cap)
{
	if (cap > SENSOR_MAX)
		cap = SENSOR_MAX;
	size_t n = read_sensor_dirs("/sys/class/hwmon", "hwmon", true, out, cap, 0);
	return read_sensor_dirs("/sys/class/thermal", "thermal_zone", false, out, cap, n);
}

size_t ig_entropy_sample(ig_entropy_source src, uint8_t *out, size_t cap)
{
	if (!out || cap == 0)
		return 0;
	switch (src) {
	case IG_SRC_JITTER: return sample_jitter(out, cap);
	case IG_SRC_INTERRUPTS: return sample_interrupts(out, cap);
	case IG_SRC_SENSORS: return sample_sensors(out, cap);
	}
	return 0;
}

/* ---- cluster-head pool -----------------------------------------------------
 *
 * Every input is framed with its lengths, so two different sequences of
 * (id, seq, block) can never produce the same hash input: ("ab", block) and
 * ("a", "b" || block) differ in the id length byte.
 */

#define POOL_INIT_LABEL "iotguard-pool-v1"
#define POOL_RATCHET_LABEL "ratchet"
#define POOL_PURPOSE_MAX 128
#define POOL_KEY_ID_MAX 128

void ig_pool_init(ig_pool *p, const uint8_t key[32])
{
	if (!p || !key)
		return;
	(void)ig_init();   /* BLAKE2b works either way; ig_pool_derive checks it */
	memset(p, 0, sizeof *p);
	memcpy(p->key, key, sizeof p->key);
	/* A key-dependent starting state, so two pools with different keys
	 * differ before any input. */
	crypto_generichash(p->state, sizeof p->state, (const uint8_t *)POOL_INIT_LABEL, sizeof POOL_INIT_LABEL - 1,
	                   p->key, sizeof p->key);
}

void ig_pool_mix(ig_pool *p, const char *id, uint64_t seq, const uint8_t *block, size_t len)
{
	if (!p || !id || (!block && len > 0))
		return;
	size_t id_len = strnlen(id, 256);
	if (id_len > 255 || len > UINT32_MAX)
		return;   /* cannot be framed unambiguously; callers pass ids of <= 64 bytes */
	uint8_t frame[1 + 255 + 8 + 4];
	size_t pos = 0;
	frame[pos++] = (uint8_t)id_len;
	memcpy(frame + pos, id, id_len);
	pos += id_len;
	ig_put_u64(frame + pos, seq);
	pos += 8;
	ig_put_u32(frame + pos, (uint32_t)len);
	pos += 4;

	crypto_generichash_state st;
	crypto_generichash_init(&st, p->key, sizeof p->key, sizeof p->state);
	crypto_generichash_update(&st, p->state, sizeof p->state);
	crypto_generichash_update(&st, frame, pos);
	if (len > 0)
		crypto_generichash_update(&st, block, len);
	crypto_generichash_final(&st, p->state, sizeof p->state);
	sodium_memzero(&st, sizeof st);
	sodium_memzero(frame, sizeof frame);
	p->inputs++;
}

/* state = BLAKE2b-512(key, "ratchet" || state): the old state cannot be
 * recomputed from the new one. */
static void pool_ratchet(ig_pool *p)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, p->key, sizeof p->key, sizeof p->state);
	crypto_generichash_update(&st, (const uint8_t *)POOL_RATCHET_LABEL, sizeof POOL_RATCHET_LABEL - 1);
	crypto_generichash_update(&st, p->state, sizeof p->state);
	crypto_generichash_final(&st, p->state, sizeof p->state);
	sodium_memzero(&st, sizeof st);
}

int ig_pool_derive(ig_pool *p, uint8_t *out, size_t out_len, const char *purpose, const uint8_t *key_id,
                   size_t key_id_len)
{
	if (!p || !out || !purpose || (!key_id && key_id_len > 0))
		return IG_ERR_INVAL;
	if (out_len == 0 || out_len > IG_HKDF_MAX_OUT)
		return IG_ERR_RANGE;
	size_t purpose_len = strnlen(purpose, POOL_PURPOSE_MAX + 1);
	if (purpose_len > POOL_PURPOSE_MAX || key_id_len > POOL_KEY_ID_MAX)
		return IG_ERR_RANGE;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t info[POOL_PURPOSE_MAX + 1 + POOL_KEY_ID_MAX];
	size_t info_len = 0;
	memcpy(info, purpose, purpose_len);
	info_len += purpose_len;
	info[info_len++] = 0x00;
	if (key_id_len > 0)
		memcpy(info + info_len, key_id, key_id_len);
	info_len += key_id_len;

	/* The OS share: even a pool fed only by hostile devices yields keys at
	 * least as strong as the OS generator. */
	uint8_t salt[32];
	randombytes_buf(salt, sizeof salt);
	int rc = ig_hkdf(out, out_len, salt, sizeof salt, p->state, sizeof p->state, info, info_len);
	pool_ratchet(p);
	sodium_memzero(salt, sizeof salt);
	sodium_memzero(info, sizeof info);
	if (rc != IG_OK)
		sodium_memzero(out, out_len);
	return rc;
}

void ig_pool_wipe(ig_pool *p)
{
	if (p)
		sodium_memzero(p, sizeof *p);
}

/* ---- attestation rate ------------------------------------------------------ */

ig_attest_decision ig_attest_admit(ig_attest_rate *r, bool changed, bool in_flight, uint64_t now_ms,
                                   uint32_t max_per_hour)
{
	if (!r || !changed)
		return IG_ATTEST_UNCHANGED;
	if (in_flight || max_per_hour == 0)
		return IG_ATTEST_REFUSED_RATE;
	/* A clock that stepped back opens a new window rather than stretching
	 * the old one for ever. */
	bool window_over = r->window_start_ms == 0 || now_ms < r->window_start_ms ||
	                   now_ms - r->window_start_ms >= IG_ATTEST_WINDOW_MS;
	uint32_t recorded = window_over ? 0 : r->recorded;
	if (recorded >= max_per_hour)
		return IG_ATTEST_REFUSED_RATE;
	if (window_over)
		r->window_start_ms = now_ms;
	r->recorded = recorded + 1;
	return IG_ATTEST_RECORD;
}
