/* tests/fuzz/fuzz_svc_bank.c: fuzzes the bank's request decoders and the
 * bank service behind them (lib/bank/svc_bank.c).
 *
 * Why this exists: mint, redeem, refund and balance requests are JSON from
 * any enrolled device or analyst, decoded by the bank before anything else
 * looks at them. Invariants: a nonce is either "" or 1..64 printable
 * characters; an accepted request has the fields its type needs, within
 * their bounds; and a decision that is dropped instead of carried out (its
 * done runs with IG_ERR_CLOSED) leaves the cluster state as it was: no
 * credit reserved, no coin in flight, no balance changed. */
#include <cJSON.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_record.h"
#include "ig_svc_bank.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ig_state *st;
static ig_svc_bank *bank;
static ig_pool pool;
static uint8_t ch_pk[crypto_sign_PUBLICKEYBYTES], ch_sk[crypto_sign_SECRETKEYBYTES];
/* The docs' coin (00..1f, PROTOCOL.md "Coin test vectors"), minted to their
 * collector sensor-1 and sealed to their bank key (seed 20..3f): the seed
 * corpus's redeem of it passes every check and reaches the append. */
static uint8_t coin_hash[IG_HASH_BYTES];
#define COLLECTOR "sensor-1"

static void apply(uint64_t index, uint16_t type, const uint8_t *body, int len)
{
	FUZZ_ASSERT(len > 0);
	ig_record rec = {.index = index, .ts_ms = 1767225600000ull, .type = type, .body = body, .body_len = (uint32_t)len};
	ig_error err = {0};
	FUZZ_ASSERT(ig_state_apply(st, &rec, &err) == IG_OK);
}

static void enroll(uint64_t index, const char *id, ig_role role, uint8_t first)
{
	uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)(first + i);
	crypto_sign_seed_keypair(pk, sk, seed);
	ig_enroll e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "%s", id);
	snprintf(e.by, sizeof e.by, "admin");
	e.role = role;
	memcpy(e.pk, pk, sizeof e.pk);
	uint8_t body[512];
	apply(index, IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &e));
}

static void setup(void)
{
	if (sodium_init() < 0)
		abort();
	uint8_t seed[crypto_sign_SEEDBYTES];
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)(0x20 + i);
	crypto_sign_seed_keypair(ch_pk, ch_sk, seed);
	uint8_t key[32] = {0};
	ig_pool_init(&pool, key);
	st = ig_state_new();
	ig_svc_bank_config cfg = {.coin_ttl_s = 3600, .cluster = "demo"};
	bank = ig_svc_bank_new(&cfg);
	FUZZ_ASSERT(st && bank);
	enroll(1, COLLECTOR, IG_ROLE_DEVICE, 0x40);
	enroll(2, "an1", IG_ROLE_ANALYST, 0x60);
	ig_credit_rec c = {.amount = 100};
	snprintf(c.id, sizeof c.id, COLLECTOR);
	snprintf(c.by, sizeof c.by, "admin");
	uint8_t body[4096];
	apply(3, IG_REC_CREDIT, body, ig_bank_credit_encode(body, sizeof body, &c));
	/* The coin 00..1f, minted to the collector, never expiring. */
	ig_mint_rec m;
	memset(&m, 0, sizeof m);
	snprintf(m.owner, sizeof m.owner, COLLECTOR);
	m.expires_at = UINT32_MAX;
	m.count = 1;
	uint8_t coin[32];
	for (size_t i = 0; i < sizeof coin; i++)
		coin[i] = (uint8_t)i;
	ig_coin_hash(coin_hash, coin);
	memcpy(m.hashes[0], coin_hash, sizeof coin_hash);
	apply(4, IG_REC_COIN_MINT, body, ig_bank_mint_encode(body, sizeof body, &m));
}

static void check_nonce(const char *nonce)
{
	size_t len = strlen(nonce);
	FUZZ_ASSERT(len <= IG_SVC_BANK_NONCE_MAX);
	for (size_t i = 0; i < len; i++)
		FUZZ_ASSERT(nonce[i] >= 0x21 && nonce[i] <= 0x7e);
}

static void check_decoders(const cJSON *req)
{
	ig_svc_bank_mint_req m;
	int rc = ig_svc_bank_decode_mint(&m, req);
	check_nonce(m.nonce);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL || rc == IG_ERR_RANGE);
	if (rc == IG_OK)
		FUZZ_ASSERT(m.nonce[0] && m.count >= 1 && m.count <= IG_COINS_PER_REQUEST);

	ig_svc_bank_redeem_req r;
	rc = ig_svc_bank_decode_redeem(&r, req);
	check_nonce(r.nonce);
	FUZZ_ASSERT(strcmp(r.nonce, m.nonce) == 0);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL);
	if (rc == IG_OK)
		FUZZ_ASSERT(r.nonce[0] && r.topic && r.header_len <= sizeof r.header);
	else
		FUZZ_ASSERT(r.header_len == 0 && !r.topic);

	ig_svc_bank_refund_req f;
	rc = ig_svc_bank_decode_refund(&f, req);
	check_nonce(f.nonce);
	FUZZ_ASSERT(rc == IG_OK || rc == IG_ERR_INVAL);
	if (rc == IG_OK) {
		FUZZ_ASSERT(f.nonce[0] && f.n >= 1 && f.n <= IG_COINS_PER_REQUEST);
		static const uint8_t zero[IG_HASH_BYTES];
		for (uint32_t i = 0; i < f.n; i++)
			if (f.coins[i].malformed)
				FUZZ_ASSERT(memcmp(f.coins[i].hash, zero, sizeof zero) == 0);
	}

	ig_svc_bank_balance_req b;
	FUZZ_ASSERT(ig_svc_bank_decode_balance(&b, req) == IG_OK);
	check_nonce(b.nonce);
}

/* Asks the bank and drops the decision; the state must be as before. */
static void check_service(const cJSON *req, const char *id, const char *type)
{
	ig_coins *coins = ig_state_coins(st);
	uint64_t balance = ig_coins_balance(coins, COLLECTOR);
	ig_svc_bank_env env = {.state = st, .ch_sk = ch_sk, .pool = &pool, .now_s = 1767225600};
	ig_decision d;
	memset(&d, 0, sizeof d);
	ig_svc_bank_request(bank, &env, id, type, req, &d);
	if (d.kind == IG_DECISION_REFUSE)
		FUZZ_ASSERT(d.error && d.message[0]);
	ig_decision_clear(&d);
	ig_coin_info info;
	FUZZ_ASSERT(ig_coins_find(coins, coin_hash, &info) == IG_OK);
	FUZZ_ASSERT(info.state == IG_COIN_MINTED && !info.in_flight);
	FUZZ_ASSERT(ig_coins_reserved(coins, COLLECTOR) == 0);
	FUZZ_ASSERT(ig_coins_balance(coins, COLLECTOR) == balance);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st)
		setup();
	cJSON *req = cJSON_ParseWithLength((const char *)data, size);
	check_decoders(req);
	if (cJSON_IsObject(req)) {
		static const char *const types[] = {"mint", "redeem", "refund", "balance"};
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "type");
		for (size_t i = 0; i < 4; i++)
			if (!cJSON_IsString(t) || strcmp(t->valuestring, types[i]) == 0) {
				check_service(req, COLLECTOR, types[i]);
				check_service(req, "an1", types[i]);
			}
	}
	cJSON_Delete(req);
	return 0;
}
