/*
 * health.c: the continuous health tests on raw entropy samples.
 *
 * Why this exists: devices contribute conditioned blocks to a keyed pool on
 * the cluster head (ig_pool.h), and a broken source must be noticed on the
 * device before it contributes anything, which is what the NIST SP 800-90B
 * section 4.4 continuous health tests are for.
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
#include "ig_health.h"

#include <stdio.h>
#include <string.h>

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
