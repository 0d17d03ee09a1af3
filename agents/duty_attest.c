/*
 * duty_attest.c: telling the cluster head what software this device runs.
 *
 * Why this exists: the cluster head refuses entropy from agents whose
 * measurement is not on its allow list, and records every new measurement
 * in the ledger. The measurement covers the running executable and the
 * configuration that changes its behaviour, and each report is signed with
 * the identity key and timestamped, so it cannot be replayed for another
 * device or moment. (It is a self-report: it catches drift and mistakes,
 * not a compromised device that lies.)
 */
#include "duties.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ig_attest_config(char *out, size_t cap, const char *cluster, const char *id, unsigned entropy_interval_s,
                     const char *peer)
{
	int n = snprintf(out, cap, "cluster=%s\nid=%s\nentropy_interval=%u\npeer=%s\n", cluster, id, entropy_interval_s,
	                 peer ? peer : "");
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

int ig_attest_measure(uint8_t out[IG_HASH_BYTES], const char *exe_path, const char *config, ig_error *err)
{
	crypto_generichash_state st;
	uint8_t buf[16384];
	int fd = open(exe_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot read %s to measure this program: %s", exe_path, strerror(errno));
	crypto_generichash_init(&st, NULL, 0, IG_HASH_BYTES);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			close(fd);
			return ig_error_set(err, IG_ERR_IO, "cannot read %s to measure this program: %s", exe_path,
			                    strerror(saved));
		}
		crypto_generichash_update(&st, buf, (size_t)n);
	}
	close(fd);
	crypto_generichash_update(&st, (const uint8_t *)config, strlen(config));
	crypto_generichash_final(&st, out, IG_HASH_BYTES);
	return IG_OK;
}

int ig_attest_init(ig_attest_state *s, const char *exe_path, const char *config, ig_error *err)
{
	memset(s, 0, sizeof *s);
	int rc = ig_attest_measure(s->measurement, exe_path, config, err);
	if (rc == IG_OK)
		ig_hex_encode(s->measurement_hex, s->measurement, sizeof s->measurement);
	return rc;
}

size_t ig_attest_signed_bytes(uint8_t *out, size_t cap, const char *id, const uint8_t m[IG_HASH_BYTES], uint64_t ts_ms)
{
	size_t dlen = sizeof IG_ATTEST_DOMAIN - 1, idlen = strlen(id);
	size_t need = dlen + 1 + idlen + 1 + IG_HASH_BYTES + 8;
	if (need > cap)
		return 0;
	uint8_t *p = out;
	memcpy(p, IG_ATTEST_DOMAIN, dlen);
	p += dlen;
	*p++ = 0;
	memcpy(p, id, idlen);
	p += idlen;
	*p++ = 0;
	memcpy(p, m, IG_HASH_BYTES);
	p += IG_HASH_BYTES;
	ig_put_u64(p, ts_ms);
	return need;
}

int ig_attest_request(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *id,
                      const uint8_t m[IG_HASH_BYTES], uint64_t ts_ms)
{
	uint8_t msg[sizeof IG_ATTEST_DOMAIN + IG_ID_MAX + 2 + IG_HASH_BYTES + 8];
	uint8_t sig[crypto_sign_BYTES];
	char m_hex[2 * IG_HASH_BYTES + 1], sig_hex[2 * crypto_sign_BYTES + 1];

	if (!ig_id_valid(id, strlen(id)))
		return IG_ERR_INVAL;
	size_t len = ig_attest_signed_bytes(msg, sizeof msg, id, m, ts_ms);
	if (len == 0 || crypto_sign_detached(sig, NULL, msg, len, sk) != 0)
		return IG_ERR_CRYPTO;
	ig_hex_encode(m_hex, m, IG_HASH_BYTES);
	ig_hex_encode(sig_hex, sig, sizeof sig);
	int n = snprintf(out, cap, "{\"type\":\"attest\",\"measurement\":\"%s\",\"ts\":%" PRIu64 ",\"sig\":\"%s\"}", m_hex,
	                 ts_ms, sig_hex);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

/* ---- the duty ------------------------------------------------------------- */

struct sign_ctx {
	const ig_agent *a;
	const ig_attest_state *s;
	char *out;
	size_t cap;
};

static int sign_request(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct sign_ctx *c = ctx;
	return ig_attest_request(c->out, c->cap, sk, ig_agent_id(c->a), c->s->measurement, ig_now_ms());
}

static void attest_send(ig_agent *a, ig_attest_state *s, uint64_t now_us)
{
	char request[512];
	struct sign_ctx c = {.a = a, .s = s, .out = request, .cap = sizeof request};
	s->next_us = now_us + (uint64_t)IG_ATTEST_PERIOD_S * 1000000u;
	int n = ig_agent_with_key(a, sign_request, &c);
	if (n < 0) {
		ig_log(IG_LOG_ERR, "cannot sign the attestation (error %d)", n);
		return;
	}
	if (ig_agent_request(a, request, (size_t)n) == IG_OK) {
		s->sent++;
		ig_log(IG_LOG_INFO, "attestation sent (measurement %s)", s->measurement_hex);
	}
}

static void attest_on_connect(ig_agent *a, void *state)
{
	attest_send(a, state, ig_mono_us());
}

static void attest_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_attest_state *s = state;
	if (now_us >= s->next_us)
		attest_send(a, s, now_us);
}

static size_t attest_status(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_attest_state *s = state;
	(void)a;
	int n = snprintf(out, cap, ",\"measurement\":\"%s\"", s->measurement_hex);
	return n < 0 ? 0 : (size_t)n;
}

const ig_duty_ops ig_duty_attest = {
	.name = "attest",
	.on_connect = attest_on_connect,
	.on_tick = attest_on_tick,
	.status_fields = attest_status,
};
