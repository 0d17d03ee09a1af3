/* tests/fuzz/fuzz_svc_keys.c: fuzzes the request decoders of the key,
 * attestation and entropy services (lib/keys/svc_keys.c, svc_attest.c,
 * svc_entropy.c), and the key and attest requests whole, against a small
 * cluster state.
 *
 * Why this exists: these payloads come from any enrolled device (a session
 * key or attest request on its ch topic, an entropy sample on its dev
 * topic), and used to be parsed inline in the plugin, reachable only
 * through a broker. Invariants: a decoded request holds only what the
 * protocol allows (a valid peer id, a 1..64-character printable nonce, a
 * timestamp within 2^53-1); a refused sample's block is wiped; every
 * decision is a refusal naming its request, or an append, never a reply
 * before the record is durable. */
#include <cJSON.h>

#include "fuzz_common.h"
#include "ig_json.h"
#include "ig_svc_attest.h"
#include "ig_svc_entropy.h"
#include "ig_svc_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ig_state *st;
static ig_pool pool;
static ig_policy *policy;
static ig_svc_keys *keys;
static ig_svc_attest *attest;
static uint8_t ch_pk[32], ch_sk[64], ch_x_pk[32], ch_x_sk[32];

static bool always_online(void *ctx, const char *id)
{
	(void)ctx;
	(void)id;
	return true;
}

static void enroll(const char *id, uint64_t index)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	memcpy(e.id, id, strlen(id) + 1);
	memcpy(e.by, "admin", 6);
	e.role = IG_ROLE_DEVICE;
	memcpy(e.pk, ch_pk, sizeof e.pk);   /* any valid key will do */
	uint8_t body[512];
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	FUZZ_ASSERT(n > 0);
	ig_record rec = {.index = index, .type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)n};
	ig_error err;
	FUZZ_ASSERT(ig_state_apply(st, &rec, &err) == IG_OK);
}

static void setup(void)
{
	fuzz_vector_keypair(ch_pk, ch_sk);
	FUZZ_ASSERT(crypto_sign_ed25519_pk_to_curve25519(ch_x_pk, ch_pk) == 0);
	FUZZ_ASSERT(crypto_sign_ed25519_sk_to_curve25519(ch_x_sk, ch_sk) == 0);
	st = ig_state_new();
	FUZZ_ASSERT(st);
	enroll("sensor-1", 1);
	enroll("sensor-2", 2);
	extern const char ig_policy_default_json[];
	ig_error err;
	FUZZ_ASSERT(ig_policy_parse(ig_policy_default_json, strlen(ig_policy_default_json), &policy, &err) == IG_OK);
	uint8_t pool_key[32] = {1};
	ig_pool_init(&pool, pool_key);
	/* A large rate, so the fuzzer keeps reaching the checks after it. */
	ig_svc_keys_config kc = {.session_key_ttl_s = 600, .requests_per_minute = UINT32_MAX};
	keys = ig_svc_keys_new(st, &pool, ch_sk, &kc, always_online, NULL);
	ig_svc_attest_config ac = {.max_per_hour = 12};
	attest = ig_svc_attest_new(st, &ac);
	FUZZ_ASSERT(keys && attest);
}

static void check_decision(ig_decision *d, const char *request)
{
	FUZZ_ASSERT(d->kind == IG_DECISION_NONE || d->kind == IG_DECISION_REFUSE || d->kind == IG_DECISION_APPEND);
	if (d->kind == IG_DECISION_REFUSE) {
		FUZZ_ASSERT(d->request && strcmp(d->request, request) == 0 && d->error && d->message[0]);
		cJSON *o = ig_decision_error_json(d);
		FUZZ_ASSERT(o);
		cJSON_Delete(o);
	}
	ig_decision_clear(d);   /* an append completes as not written */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st)
		setup();

	uint64_t seq = 0;
	uint8_t block[IG_ENTROPY_BLOCK_BYTES];
	if (ig_svc_entropy_decode(&seq, block, data, size, ch_x_pk, ch_x_sk) == IG_OK)
		FUZZ_ASSERT(seq >= 1 && seq <= IG_JSON_UINT_MAX && size <= 1024);
	else
		for (size_t i = 0; i < sizeof block; i++)
			FUZZ_ASSERT(block[i] == 0);

	cJSON *req = cJSON_ParseWithLength((const char *)data, size);
	if (!req)
		return 0;
	ig_svc_keys_req kr;
	int krc = ig_svc_keys_decode(&kr, req);
	size_t nlen = strnlen(kr.nonce, sizeof kr.nonce);
	FUZZ_ASSERT(nlen < sizeof kr.nonce);
	for (size_t i = 0; i < nlen; i++)
		FUZZ_ASSERT(kr.nonce[i] >= 0x21 && kr.nonce[i] <= 0x7e);
	if (krc == IG_OK)
		FUZZ_ASSERT(nlen >= 1 && ig_id_valid(kr.peer, strlen(kr.peer)));

	ig_svc_attest_req ar;
	if (ig_svc_attest_decode(&ar, req) == IG_OK)
		FUZZ_ASSERT(ar.ts_ms <= IG_JSON_UINT_MAX);

	ig_decision d;
	memset(&d, 0, sizeof d);
	ig_svc_keys_request(&d, keys, policy, "sensor-1", req, 1767225600000ull);
	check_decision(&d, "session_key");
	memset(&d, 0, sizeof d);
	(void)ig_svc_attest_request(&d, attest, policy, "sensor-1", req, 1767225600000ull);
	check_decision(&d, "attest");
	/* Forget the device's memory, so a run does not depend on earlier inputs. */
	ig_state_device_forget(st, "sensor-1");
	cJSON_Delete(req);
	return 0;
}
