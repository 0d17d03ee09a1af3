/*
 * duty_entropy.c: contributing device entropy to the cluster head.
 *
 * Why this exists: see ig_entropy.h. The device's part is to never send
 * what it cannot vouch for: every raw sample passes the continuous health
 * tests of its source first, and one failure ends contributions for the
 * life of the process (a stuck source does not heal by itself, and a human
 * should look), visible in the status heartbeat. Blocks are sealed to the
 * pinned cluster-head key only, carry a sequence number that grows across
 * restarts (it starts from the wall clock), and are never logged.
 */
#include "duties.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define MIN_CREDITED_BITS 256.0
#define JITTER_SAMPLES 1024
#define INTERRUPT_SAMPLES 128      /* each costs a 1 ms pause in the sampler */
#define SENSOR_SAMPLES 256

static const struct {
	ig_entropy_source src;
	const char *name;
	double h;                  /* claimed min-entropy per raw sample, deliberately low */
	size_t samples;
} sources[IG_ENTROPY_SOURCES] = {
	{IG_SRC_JITTER, "jitter", 1.0, JITTER_SAMPLES},
	{IG_SRC_INTERRUPTS, "interrupts", 0.5, INTERRUPT_SAMPLES},
	{IG_SRC_SENSORS, "sensors", 0.25, SENSOR_SAMPLES},
};

int ig_entropy_duty_init(ig_entropy_state *e, unsigned interval_s, const ig_pin_state *pin)
{
	memset(e, 0, sizeof *e);
	e->interval_s = interval_s;
	e->pin = pin;
	for (size_t i = 0; i < IG_ENTROPY_SOURCES; i++) {
		int rc = ig_health_init(&e->health[i], sources[i].h, false);
		if (rc != IG_OK)
			return rc;
	}
	return IG_OK;
}

uint64_t ig_entropy_delay_us(unsigned interval_s)
{
	uint64_t permille = 750 + randombytes_uniform(501);   /* +-25% */
	return (uint64_t)interval_s * 1000u * permille;
}

uint64_t ig_entropy_next_seq(uint64_t last, uint64_t now_ms)
{
	return now_ms > last ? now_ms : last + 1;
}

int ig_entropy_block_from(ig_entropy_state *e, const uint8_t *const raw[IG_ENTROPY_SOURCES],
                          const size_t n[IG_ENTROPY_SOURCES], uint8_t block[IG_ENTROPY_BLOCK_BYTES],
                          ig_entropy_counts *counts)
{
	uint8_t debiased[(JITTER_SAMPLES + INTERRUPT_SAMPLES + SENSOR_SAMPLES) / 2];
	size_t used = 0;
	memset(counts, 0, sizeof *counts);
	if (e->failed)
		return IG_ERR_STATE;
	for (size_t i = 0; i < IG_ENTROPY_SOURCES; i++) {
		if (n[i] > sources[i].samples)
			return IG_ERR_RANGE;
		for (size_t k = 0; k < n[i]; k++) {
			if (!ig_health_feed(&e->health[i], raw[i][k])) {
				e->failed = true;
				snprintf(e->failure, sizeof e->failure, "%s: %s", sources[i].name, e->health[i].failure);
				return IG_ERR_STATE;
			}
		}
		counts->raw[i] = n[i];
		counts->credited_bits += (double)n[i] * sources[i].h;
	}
	if (counts->credited_bits < MIN_CREDITED_BITS)
		return IG_ERR_RANGE;
	for (size_t i = 0; i < IG_ENTROPY_SOURCES; i++) {
		if (n[i] == 0)
			continue;
		size_t bits = ig_entropy_debias(debiased + used, sizeof debiased - used, raw[i], n[i]);
		counts->debiased_bits += bits;
		used += bits / 8;
	}
	ig_entropy_condition(block, debiased, used);
	sodium_memzero(debiased, sizeof debiased);
	return IG_OK;
}

int ig_entropy_collect(ig_entropy_state *e, uint8_t block[IG_ENTROPY_BLOCK_BYTES], ig_entropy_counts *counts)
{
	uint8_t raw[IG_ENTROPY_SOURCES][JITTER_SAMPLES];
	const uint8_t *ptr[IG_ENTROPY_SOURCES];
	size_t n[IG_ENTROPY_SOURCES];
	for (size_t i = 0; i < IG_ENTROPY_SOURCES; i++) {
		n[i] = ig_entropy_sample(sources[i].src, raw[i], sources[i].samples);
		ptr[i] = raw[i];
	}
	int rc = ig_entropy_block_from(e, ptr, n, block, counts);
	sodium_memzero(raw, sizeof raw);
	return rc;
}

int ig_entropy_seal(uint8_t out[IG_ENTROPY_SEALED_BYTES], uint64_t seq, const uint8_t block[IG_ENTROPY_BLOCK_BYTES],
                    const uint8_t ch_pk[IG_PK_BYTES])
{
	uint8_t x25519[crypto_box_PUBLICKEYBYTES];
	uint8_t m[8 + IG_ENTROPY_BLOCK_BYTES];
	if (crypto_sign_ed25519_pk_to_curve25519(x25519, ch_pk) != 0)
		return IG_ERR_CRYPTO;
	ig_put_u64(m, seq);
	memcpy(m + 8, block, IG_ENTROPY_BLOCK_BYTES);
	int rc = crypto_box_seal(out, m, sizeof m, x25519);
	sodium_memzero(m, sizeof m);
	return rc == 0 ? IG_OK : IG_ERR_CRYPTO;
}

int ig_entropy_payload(char *out, size_t cap, uint64_t seq, const uint8_t sealed[IG_ENTROPY_SEALED_BYTES])
{
	char b64[sodium_base64_ENCODED_LEN(IG_ENTROPY_SEALED_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, sealed, IG_ENTROPY_SEALED_BYTES, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(out, cap, "{\"seq\":%" PRIu64 ",\"sealed\":\"%s\"}", seq, b64);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

/* ---- the duty ------------------------------------------------------------- */

static void entropy_send(ig_agent *a, ig_entropy_state *e)
{
	uint8_t block[IG_ENTROPY_BLOCK_BYTES], sealed[IG_ENTROPY_SEALED_BYTES];
	char payload[256], topic[IG_CLUSTER_MAX + IG_ID_MAX + 32];
	ig_entropy_counts c;

	if (!e->pin->known) {
		e->skipped++;
		if (!e->warned_no_key)
			ig_log(IG_LOG_WARN, "entropy not sent: no cluster-head key pinned yet (no %s, no ledger head seen)",
			       e->pin->path);
		e->warned_no_key = true;
		return;
	}
	int rc = ig_entropy_collect(e, block, &c);
	if (rc == IG_ERR_STATE) {
		ig_log(IG_LOG_ERR, "entropy health test failed (%s): contributions stopped for good; check the device "
		                   "and restart the agent", e->failure);
		return;
	}
	if (rc != IG_OK) {
		e->skipped++;
		ig_log(IG_LOG_WARN, "entropy round skipped: sources gave %zu+%zu+%zu samples, crediting %.0f bits (need %.0f)",
		       c.raw[0], c.raw[1], c.raw[2], c.credited_bits, MIN_CREDITED_BITS);
		return;
	}
	uint64_t seq = ig_entropy_next_seq(e->seq, ig_now_ms());
	rc = ig_entropy_seal(sealed, seq, block, e->pin->pk);
	sodium_memzero(block, sizeof block);
	if (rc != IG_OK) {
		ig_log(IG_LOG_ERR, "cannot seal entropy to the pinned cluster-head key (not a valid Ed25519 key?)");
		return;
	}
	e->seq = seq;
	int n = ig_entropy_payload(payload, sizeof payload, seq, sealed);
	snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/entropy", ig_agent_cluster(a), ig_agent_id(a));
	if (n < 0 || ig_agent_publish(a, topic, payload, (size_t)n, 1) != IG_OK)
		return;
	e->sent++;
	ig_log(IG_LOG_INFO, "entropy block %" PRIu64 " sent (seq %" PRIu64 "; raw samples jitter %zu, interrupts %zu, "
	                    "sensors %zu; %zu debiased bits)",
	       e->sent, seq, c.raw[0], c.raw[1], c.raw[2], c.debiased_bits);
}

static void entropy_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_entropy_state *e = state;
	if (e->failed || e->interval_s == 0)
		return;
	if (e->next_us == 0)
		e->next_us = now_us + ig_entropy_delay_us(e->interval_s);
	if (now_us < e->next_us)
		return;
	e->next_us = now_us + ig_entropy_delay_us(e->interval_s);
	entropy_send(a, e);
}

static size_t entropy_status(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_entropy_state *e = state;
	char safe[sizeof e->failure];
	(void)a;
	if (e->interval_s == 0)
		return 0;
	if (!e->failed)
		return (size_t)snprintf(out, cap, ",\"entropy\":\"ok\"");
	/* The reason comes from our own library, but it goes into JSON. */
	size_t k = 0;
	for (const char *p = e->failure; *p && k + 1 < sizeof safe; p++)
		safe[k++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '?';
	safe[k] = '\0';
	int n = snprintf(out, cap, ",\"entropy\":\"failed: %s\"", safe);
	return n < 0 ? 0 : (size_t)n;
}

const ig_duty_ops ig_duty_entropy = {
	.name = "entropy",
	.on_tick = entropy_on_tick,
	.status_fields = entropy_status,
};
