/*
 * test_svc_entropy.c: the entropy service without a broker. Samples sealed
 * to the cluster head the way the agent seals them; every refusal reason
 * (malformed in each of its forms, replayed, over_rate, attestation),
 * counted in total and per device, never answered; only accepted samples
 * reach the pool; and the stats object.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_svc_entropy.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW_MS 1767225600000ull
#define MIN_INTERVAL_MS 1000u

static uint8_t ch_pk[32], ch_sk[64], ch_x_pk[32], ch_x_sk[32], pk1[32], sk1[64];
static ig_state *st;
static ig_pool pool;
static ig_svc_entropy *svc;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(pk1, sk1, 0x20);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(ch_x_pk, ch_pk), 0);
	cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(ch_x_sk, ch_sk), 0);
	st = ig_state_new();
	cr_assert_not_null(st);
	fx_enroll(st, "dev1", IG_ROLE_DEVICE, pk1);
	ig_svc_entropy_config cfg = {.min_interval_ms = MIN_INTERVAL_MS};
	svc = ig_svc_entropy_new(st, &pool, ch_pk, ch_sk, &cfg);
	cr_assert_not_null(svc);
}

static void teardown(void)
{
	ig_svc_entropy_free(svc);
	ig_state_free(st);
}

TestSuite(svc_entropy, .init = setup, .fini = teardown);

/* {"seq":outer,"sealed":base64(seal(u64 inner || block))} sealed to to_x_pk. */
static char *sample(uint64_t outer, uint64_t inner, uint8_t fill, const uint8_t to_x_pk[32])
{
	uint8_t plain[8 + IG_ENTROPY_BLOCK_BYTES], box[crypto_box_SEALBYTES + sizeof plain];
	ig_put_u64(plain, inner);
	memset(plain + 8, fill, IG_ENTROPY_BLOCK_BYTES);
	cr_assert_eq(crypto_box_seal(box, plain, sizeof plain, to_x_pk), 0);
	char b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	char *json = malloc(512);
	cr_assert_not_null(json);
	snprintf(json, 512, "{\"seq\":%llu,\"sealed\":\"%s\"}", (unsigned long long)outer, b64);
	return json;
}

static int send(const char *id, const char *json, uint64_t now_ms)
{
	ig_decision d;
	memset(&d, 0, sizeof d);
	int r = ig_svc_entropy_message(&d, svc, id, json, strlen(json), now_ms);
	cr_expect_eq(d.kind, IG_DECISION_NONE, "a sample is never answered");
	return r;
}

static int send_sample(uint64_t outer, uint64_t inner, uint64_t now_ms)
{
	char *json = sample(outer, inner, (uint8_t)outer, ch_x_pk);
	int r = send("dev1", json, now_ms);
	free(json);
	return r;
}

static ig_svc_entropy_counts counts(void)
{
	ig_svc_entropy_counts c;
	ig_svc_entropy_get_counts(svc, &c);
	return c;
}

Test(svc_entropy, pool_is_seeded_at_start)
{
	cr_expect_eq(pool.inputs, 1, "the cluster head's own randomness is the first input");
	cr_expect_not(tu_all_zero(pool.key, sizeof pool.key));
}

Test(svc_entropy, accepted_sample_is_mixed_in)
{
	uint8_t before[64];
	memcpy(before, pool.state, sizeof before);
	cr_expect_eq(send_sample(1, 1, NOW_MS), IG_SVC_ENTROPY_ACCEPTED);
	cr_expect_eq(pool.inputs, 2);
	cr_expect_neq(memcmp(before, pool.state, sizeof before), 0);
	cr_expect_eq(send_sample(5, 5, NOW_MS + MIN_INTERVAL_MS), IG_SVC_ENTROPY_ACCEPTED, "sequences may skip");
	cr_expect_eq(counts().accepted, 2);
	const ig_device *d = ig_state_device_find(st, "dev1");
	cr_assert_not_null(d);
	cr_expect_eq(d->entropy_accepted, 2);
	cr_expect_eq(d->entropy_last_seq, 5);
}

Test(svc_entropy, malformed_in_every_form)
{
	uint8_t other_pk[32], other_sk[64], other_x[32];
	tu_seed_keypair(other_pk, other_sk, 0x90);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(other_x, other_pk), 0);
	char *wrong_key = sample(1, 1, 7, other_x);
	char *seq_mismatch = sample(2, 3, 7, ch_x_pk);
	char *seq_zero = sample(0, 0, 7, ch_x_pk);
	char big[1100];
	memset(big, ' ', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	char *good = sample(9, 9, 7, ch_x_pk);
	memcpy(big + sizeof big - 1 - strlen(good), good, strlen(good));   /* valid JSON, over 1024 bytes */
	const char *cases[] = {
		wrong_key, seq_mismatch, seq_zero, big, "not json", "[]", "{\"seq\":1}", "{\"seq\":1,\"sealed\":\"!!\"}",
		"{\"seq\":1,\"sealed\":\"AAAA\"}", "{\"seq\":1.5,\"sealed\":\"AAAA\"}", "{\"seq\":\"1\",\"sealed\":\"AAAA\"}",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(send("dev1", cases[i], NOW_MS), IG_ENT_MALFORMED, "case %zu", i);
	size_t n = sizeof cases / sizeof cases[0];
	cr_expect_eq(counts().refused[IG_ENT_MALFORMED], n);
	cr_expect_eq(ig_state_device_find(st, "dev1")->entropy_refused[IG_ENT_MALFORMED], n);
	cr_expect_eq(pool.inputs, 1, "nothing refused reaches the pool");
	/* the same good sample, not padded, is accepted */
	cr_expect_eq(send("dev1", good, NOW_MS), IG_SVC_ENTROPY_ACCEPTED);
	free(wrong_key);
	free(seq_mismatch);
	free(seq_zero);
	free(good);
}

Test(svc_entropy, decoder_opens_only_boxes_for_the_cluster_head)
{
	char *json = sample(42, 42, 0xab, ch_x_pk);
	uint64_t seq = 0;
	uint8_t block[IG_ENTROPY_BLOCK_BYTES];
	cr_assert_eq(ig_svc_entropy_decode(&seq, block, json, strlen(json), ch_x_pk, ch_x_sk), IG_OK);
	cr_expect_eq(seq, 42);
	uint8_t want[IG_ENTROPY_BLOCK_BYTES];
	memset(want, 0xab, sizeof want);
	cr_expect_eq(memcmp(block, want, sizeof want), 0);
	json[strlen(json) - 5] ^= 1;   /* a tampered box */
	cr_expect_eq(ig_svc_entropy_decode(&seq, block, json, strlen(json), ch_x_pk, ch_x_sk), IG_ERR_INVAL);
	cr_expect(tu_all_zero(block, sizeof block), "a refused block is wiped");
	free(json);
}

Test(svc_entropy, replayed_and_over_rate)
{
	cr_expect_eq(send_sample(10, 10, NOW_MS), IG_SVC_ENTROPY_ACCEPTED);
	cr_expect_eq(send_sample(10, 10, NOW_MS + 5000), IG_ENT_REPLAYED);
	cr_expect_eq(send_sample(9, 9, NOW_MS + 5000), IG_ENT_REPLAYED);
	cr_expect_eq(send_sample(11, 11, NOW_MS + MIN_INTERVAL_MS - 1), IG_ENT_OVER_RATE);
	cr_expect_eq(send_sample(11, 11, NOW_MS + MIN_INTERVAL_MS), IG_SVC_ENTROPY_ACCEPTED);
	ig_svc_entropy_counts c = counts();
	cr_expect_eq(c.accepted, 2);
	cr_expect_eq(c.refused[IG_ENT_REPLAYED], 2);
	cr_expect_eq(c.refused[IG_ENT_OVER_RATE], 1);
	cr_expect_eq(pool.inputs, 3);
}

Test(svc_entropy, flagged_device_is_refused_before_anything_is_opened)
{
	ig_device *d = ig_state_device(st, "dev1");
	cr_assert_not_null(d);
	d->attest = IG_ATTEST_DISALLOWED;
	cr_expect_eq(send_sample(1, 1, NOW_MS), IG_ENT_ATTESTATION);
	cr_expect_eq(send("dev1", "not even json", NOW_MS), IG_ENT_ATTESTATION);
	cr_expect_eq(counts().refused[IG_ENT_ATTESTATION], 2);
	cr_expect_eq(pool.inputs, 1);
	d->attest = IG_ATTEST_ALLOWED;
	cr_expect_eq(send_sample(1, 1, NOW_MS), IG_SVC_ENTROPY_ACCEPTED);
}

Test(svc_entropy, stats_object)
{
	cr_expect_eq(send_sample(1, 1, NOW_MS), IG_SVC_ENTROPY_ACCEPTED);
	cr_expect_eq(send_sample(1, 1, NOW_MS + 5000), IG_ENT_REPLAYED);
	cr_expect_eq(send("dev2", "junk", NOW_MS), IG_ENT_MALFORMED);
	cJSON *stats = cJSON_CreateObject();
	ig_svc_entropy_stats(svc, stats);
	/* devices are listed in the state's order, so they are compared one by one */
	cJSON *devices = cJSON_DetachItemFromObject(cJSON_GetObjectItem(stats, "entropy"), "devices");
	cr_assert_not_null(devices);
	char *json = cJSON_PrintUnformatted(stats);
	cr_expect_str_eq(json, "{\"entropy\":{\"accepted\":1,\"refused\":{\"malformed\":1,\"replayed\":1,\"over_rate\":0,"
	                       "\"attestation\":0},\"pool_inputs\":2}}");
	free(json);
	cr_expect_eq(cJSON_GetArraySize(devices), 2);
	char *d1 = cJSON_PrintUnformatted(cJSON_GetObjectItem(devices, "dev1"));
	char *d2 = cJSON_PrintUnformatted(cJSON_GetObjectItem(devices, "dev2"));
	cr_expect_str_eq(d1, "{\"accepted\":1,\"refused\":1}");
	cr_expect_str_eq(d2, "{\"accepted\":0,\"refused\":1}");
	free(d1);
	free(d2);
	cJSON_Delete(devices);
	cJSON_Delete(stats);
}
