/*
 * bench_id.c: derived benchmark keys and the offline ledger builder (see
 * bench_id.h for why they are shared).
 */
#include "bench_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "bench.h"
#include "ig_token.h"

#define SEED_KEY "iotguard-bench-seed-v1"

void bench_id_format(char *out, size_t cap, const char *prefix, uint32_t i)
{
	if (!strcmp(prefix, "mon"))
		snprintf(out, cap, "mon-%03" PRIu32, i);
	else
		snprintf(out, cap, "%s-%07" PRIu32, prefix, i);
}

void bench_id_seed(uint8_t seed[IG_SEED_BYTES], const char *id)
{
	crypto_generichash(seed, IG_SEED_BYTES, (const uint8_t *)id, strlen(id), (const uint8_t *)SEED_KEY,
	                   sizeof SEED_KEY - 1);
}

void bench_id_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	uint8_t seed[IG_SEED_BYTES];
	bench_id_seed(seed, id);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}

void bench_id_token(char *tok, size_t cap, const char *cluster, const char *id, uint64_t ttl_s)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	bench_id_keypair(id, pk, sk);
	uint64_t now = ig_now_ms() / 1000;
	if (ig_token_mint(tok, cap, sk, cluster, id, now, now + ttl_s, NULL) < 0)
		bench_die("minting a token failed", id);
	sodium_memzero(sk, sizeof sk);
}

static void on_built(void *ctx, int status, const ig_record *rec)
{
	(void)rec;
	bench_id_builder *b = ctx;
	if (status == IG_OK) {
		b->done_ok++;
	} else {
		if (!b->done_failed)
			b->first_failure = status;
		b->done_failed++;
	}
}

void bench_id_build_begin(bench_id_builder *b, const char *dir, const char *cluster, uint64_t window)
{
	ig_error err = {0};
	uint8_t ch_pk[IG_PK_BYTES];
	memset(b, 0, sizeof *b);
	b->window = window;
	if (ig_ledger_init(dir, cluster, ch_pk, &err) != IG_OK)
		bench_dief("ig_ledger_init %s: %s", dir, err.msg);
	ig_ledger_open_opts opts = {.writer = true};
	if (ig_ledger_open(&b->l, dir, &opts, &err) != IG_OK)
		bench_dief("ig_ledger_open %s: %s", dir, err.msg);
}

void bench_id_build_submit(bench_id_builder *b, uint16_t type, const uint8_t *body, int len)
{
	if (len < 0)
		bench_dief("encoding a record of type %u failed (error %d)", type, len);
	int rc = ig_ledger_submit(b->l, type, body, (size_t)len, on_built, b);
	if (rc != IG_OK)
		bench_dief("ig_ledger_submit failed (error %d)", rc);
	b->submitted++;
	if ((b->submitted & 1023) == 0) {
		ig_ledger_poll(b->l);
		while (b->submitted - b->done_ok - b->done_failed > b->window) {
			usleep(500);
			ig_ledger_poll(b->l);
		}
	}
}

void bench_id_build_enroll(bench_id_builder *b, const char *id, ig_role role, const uint8_t *pk)
{
	ig_enroll e = {.role = role};
	uint8_t sk[IG_SK_BYTES], body[512];
	snprintf(e.id, sizeof e.id, "%s", id);
	if (pk) {
		memcpy(e.pk, pk, IG_PK_BYTES);
	} else {
		bench_id_keypair(id, e.pk, sk);
		sodium_memzero(sk, sizeof sk);
	}
	snprintf(e.by, sizeof e.by, "offline:bench");
	bench_id_build_submit(b, IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &e));
}

uint64_t bench_id_build_end(bench_id_builder *b)
{
	ig_error err = {0};
	if (ig_ledger_sync(b->l, &err) != IG_OK)
		bench_dief("ig_ledger_sync: %s", err.msg);
	while (b->done_ok + b->done_failed < b->submitted)
		if (ig_ledger_poll(b->l) == 0)
			usleep(1000);
	uint64_t height = ig_ledger_height(b->l);
	ig_ledger_close(b->l);
	b->l = NULL;
	if (b->done_failed)
		bench_dief("%" PRIu64 " ledger records failed to be written (first error %d)", b->done_failed,
		           b->first_failure);
	return height;
}
