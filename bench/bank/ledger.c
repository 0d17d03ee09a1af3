/*
 * ledger.c: bench_bank's ledgers: the identities a run connects as
 * (mkledger), and the ledger full of minted coins that rss starts a broker
 * on.
 *
 * Why this exists: both are written offline through lib/ (bench_id.h's
 * builder), far faster than one CLI call per record, and they must name
 * collectors and analysts the way the run's clients do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bank.h"
#include "ig_record.h"

static void build_credit(bench_id_builder *b, const char *id, uint64_t amount)
{
	ig_credit_rec cr = {.amount = amount};
	uint8_t body[512];
	snprintf(cr.id, sizeof cr.id, "%s", id);
	snprintf(cr.by, sizeof cr.by, "offline:bench");
	bench_id_build_submit(b, IG_REC_CREDIT, body, ig_bank_credit_encode(body, sizeof body, &cr));
}

void bank_collector_id(char *out, size_t cap, int i)
{
	snprintf(out, cap, "dev-%07d", i);
}

void bank_analyst_id(char *out, size_t cap, int i)
{
	snprintf(out, cap, "ana-%03d", i);
}

/* Collectors (devices with credit), analysts, monitors. */
void bank_build_identities(bench_id_builder *b, int collectors, int analysts, int monitors, uint64_t credit)
{
	char id[IG_ID_MAX + 1];
	for (int i = 0; i < monitors; i++) {
		snprintf(id, sizeof id, "mon-%03d", i);
		bench_id_build_enroll(b, id, IG_ROLE_MONITOR, NULL);
	}
	for (int i = 0; i < analysts; i++) {
		bank_analyst_id(id, sizeof id, i);
		bench_id_build_enroll(b, id, IG_ROLE_ANALYST, NULL);
	}
	for (int i = 0; i < collectors; i++) {
		bank_collector_id(id, sizeof id, i);
		bench_id_build_enroll(b, id, IG_ROLE_DEVICE, NULL);
		build_credit(b, id, credit);
	}
}

/* Identities + credit, and `coins` minted coins in records of 64 spread over
 * the collectors. Returns seconds. */
double bank_build_coin_ledger(const char *dir, const char *cluster, uint64_t coins)
{
	double t0 = bench_now_s();
	bench_id_builder b;
	bench_id_build_begin(&b, dir, cluster, 16384);
	uint64_t per = coins / RSS_COLLECTORS + IG_COINS_PER_REQUEST;
	bank_build_identities(&b, RSS_COLLECTORS, 1, 1, per);
	static ig_mint_rec mint;
	static uint8_t body[IG_COINS_PER_REQUEST * (IG_HASH_BYTES + 4) + 512];
	uint64_t expires = ig_now_ms() / 1000 + 365u * 86400u, seed = ig_now_ms();
	for (uint64_t i = 0, r = 0; i < coins; r++) {
		memset(&mint, 0, sizeof mint);
		bank_collector_id(mint.owner, sizeof mint.owner, (int)(r % RSS_COLLECTORS));
		mint.expires_at = expires;
		mint.count = (uint32_t)(coins - i < IG_COINS_PER_REQUEST ? coins - i : IG_COINS_PER_REQUEST);
		for (uint32_t k = 0; k < mint.count; k++, i++)
			for (int w = 0; w < 4; w++) {
				uint64_t v = bench_splitmix64(seed + i * 4 + (uint64_t)w);
				memcpy(mint.hashes[k] + 8 * w, &v, 8);
			}
		bench_id_build_submit(&b, IG_REC_COIN_MINT, body, ig_bank_mint_encode(body, sizeof body, &mint));
	}
	bench_id_build_end(&b);
	return bench_now_s() - t0;
}
