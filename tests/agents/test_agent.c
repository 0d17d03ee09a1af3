/*
 * test_agent.c: unit tests for the parts of the agent that need no broker.
 *
 * Why this exists: the backoff schedule decides how hard a fleet hits a
 * recovering broker; its bounds must hold for every draw of the jitter.
 * Attestation bytes, entropy sealing and health failures, the pinned
 * cluster-head key and join-code handling are checked here too, since a
 * mistake in any of them fails silently on a real device. The connection
 * lifecycle itself is tested against a real broker by the integration
 * tests; the m2m key table in test_agent_m2m.c.
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "duties.h"
#include "ig_checkpoint.h"
#include "ig_keyfile.h"
#include "agent_testutil.h"
#include "testutil.h"

Test(agent_backoff, doubles_from_one_second_to_sixty_with_jitter)
{
	cr_assert_eq(ig_init(), IG_OK);
	static const uint64_t nominal_s[] = {1, 2, 4, 8, 16, 32, 60, 60, 60, 60};
	for (unsigned failures = 0; failures < 10; failures++) {
		uint64_t nominal = nominal_s[failures] * 1000000u;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int draw = 0; draw < 400; draw++) {
			uint64_t d = ig_agent_backoff_us(failures);
			cr_assert_geq(d, nominal * 8 / 10, "failures %u: %lu below -20%%", failures, (unsigned long)d);
			cr_assert_leq(d, nominal * 12 / 10, "failures %u: %lu above +20%%", failures, (unsigned long)d);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* The jitter must actually vary: 400 draws spanning < 10% would mean it is broken. */
		cr_assert_gt(hi - lo, nominal / 10, "failures %u: jitter range too narrow", failures);
	}
}

Test(agent_backoff, huge_failure_counts_stay_capped)
{
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_leq(ig_agent_backoff_us(UINT32_MAX), 72000000u);
	cr_assert_geq(ig_agent_backoff_us(UINT32_MAX), 48000000u);
}

Test(agent_config, rejects_bad_identity_before_touching_the_key)
{
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1883, .cluster = "c1", .id = "bad id!",
	                       .key_path = "/nonexistent", .heartbeat_s = 30, .ttl_s = 300};
	ig_agent *a = (ig_agent *)1;
	ig_error err = {0};
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert_null(a);
	cr_assert(strstr(err.msg, "identity id") != NULL, "message: %s", err.msg);

	cfg.id = "dev1";
	cfg.cluster = "";
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "cluster") != NULL, "message: %s", err.msg);

	cfg.cluster = "c1";
	cfg.port = 70000;
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "port") != NULL, "message: %s", err.msg);
}

Test(agent_config, a_user_name_is_only_for_plain_brokers_with_a_password)
{
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1883, .cluster = "c1", .id = "dev1",
	                       .key_path = "/nonexistent", .heartbeat_s = 30, .ttl_s = 300, .username = "u1",
	                       .password = "pw"};
	ig_agent *a = (ig_agent *)1;
	ig_error err = {0};
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL, "with the plugin the agent signs in with tokens");
	cr_assert_null(a);
	cr_assert(strstr(err.msg, "plain-broker") != NULL, "message: %s", err.msg);
	cfg.plain = true;
	cfg.password = NULL;
	cr_assert_eq(ig_agent_new(&a, &cfg, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "password") != NULL, "message: %s", err.msg);
}

/* ---- attestation ----------------------------------------------------------- */

Test(agent_attest, config_string_is_exact)
{
	char out[256];
	cr_assert_eq(ig_attest_config(out, sizeof out, "c1", "dev1", 30, "dev2"), 49);
	cr_assert_str_eq(out, "cluster=c1\nid=dev1\nentropy_interval=30\npeer=dev2\n");
	cr_assert_gt(ig_attest_config(out, sizeof out, "c1", "dev1", 0, NULL), 0);
	cr_assert_str_eq(out, "cluster=c1\nid=dev1\nentropy_interval=0\npeer=\n");
	cr_assert_eq(ig_attest_config(out, 10, "c1", "dev1", 0, NULL), IG_ERR_RANGE);
}

Test(agent_attest, measurement_is_blake2b_of_file_then_config)
{
	cr_assert_eq(ig_init(), IG_OK);
	const char *dir = tu_scratch_dir("agent");
	char path[128];
	snprintf(path, sizeof path, "%s/exe", dir);
	uint8_t body[40000];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)(i * 7 + 3);
	tu_write_file(path, body, sizeof body);
	const char *config = "cluster=c1\nid=dev1\nentropy_interval=0\npeer=\n";

	uint8_t want[32], got[32], other[32];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, body, sizeof body);
	crypto_generichash_update(&st, (const uint8_t *)config, strlen(config));
	crypto_generichash_final(&st, want, 32);
	cr_assert_eq(ig_attest_measure(got, path, config, NULL), IG_OK);
	cr_assert_arr_eq(got, want, 32);

	/* Any change of configuration or program changes the measurement. */
	cr_assert_eq(ig_attest_measure(other, path, "cluster=c1\nid=dev1\nentropy_interval=5\npeer=\n", NULL), IG_OK);
	cr_assert_neq(memcmp(other, want, 32), 0);
	body[12345] ^= 1;
	tu_write_file(path, body, sizeof body);
	cr_assert_eq(ig_attest_measure(other, path, config, NULL), IG_OK);
	cr_assert_neq(memcmp(other, want, 32), 0);

	ig_error err = {0};
	snprintf(path, sizeof path, "%s/missing", dir);
	cr_assert_eq(ig_attest_measure(other, path, config, &err), IG_ERR_IO);
	cr_assert(strstr(err.msg, "missing") != NULL, "message: %s", err.msg);

	ig_attest_state s;
	cr_assert_eq(ig_attest_init(&s, "/proc/self/exe", config, NULL), IG_OK);
	cr_assert_eq(strlen(s.measurement_hex), 64);
	char status[128];
	size_t n = ig_duty_attest.status_fields(NULL, &s, status, sizeof status);
	cr_assert_eq(n, strlen(status));
	cr_assert(strstr(status, ",\"measurement\":\"") == status && strstr(status, s.measurement_hex));
}

Test(agent_attest, request_is_signed_over_the_documented_bytes)
{
	cr_assert_eq(ig_init(), IG_OK);
	uint8_t pk[32], sk[64], m[32], other_pk[32], other_sk[64];
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	cr_assert_eq(ig_keyfile_generate(other_pk, other_sk), IG_OK);
	tu_seq_bytes(m, 32, 0xa0);
	uint64_t ts = 1700000000123ull;

	uint8_t bytes[256];
	size_t len = ig_attest_signed_bytes(bytes, sizeof bytes, "dev1", m, ts);
	cr_assert_eq(len, 18 + 1 + 4 + 1 + 32 + 8);
	cr_assert_eq(memcmp(bytes, "iotguard-attest-v1\0dev1\0", 24), 0);
	cr_assert_arr_eq(bytes + 24, m, 32);
	cr_assert_eq(ig_get_u64(bytes + 56), ts);
	cr_assert_eq(ig_attest_signed_bytes(bytes, len - 1, "dev1", m, ts), 0);

	char req[512];
	int n = ig_attest_request(req, sizeof req, sk, "dev1", m, ts);
	cr_assert_gt(n, 0);
	cJSON *j = cJSON_Parse(req);
	cr_assert_not_null(j);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "attest");
	char m_hex[65];
	ig_hex_encode(m_hex, m, 32);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "measurement")->valuestring, m_hex);
	cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "ts")->valuedouble, ts);
	const char *sig_hex = cJSON_GetObjectItem(j, "sig")->valuestring;
	uint8_t sig[64];
	cr_assert_eq(ig_hex_decode(sig, 64, sig_hex, strlen(sig_hex)), IG_OK);
	cr_assert_eq(crypto_sign_verify_detached(sig, bytes, len, pk), 0);
	cr_assert_neq(crypto_sign_verify_detached(sig, bytes, len, other_pk), 0);
	/* Bound to id, measurement and time: every byte matters. */
	for (size_t i = 0; i < len; i++) {
		bytes[i] ^= 0x01;
		cr_assert_neq(crypto_sign_verify_detached(sig, bytes, len, pk), 0, "byte %zu", i);
		bytes[i] ^= 0x01;
	}
	cJSON_Delete(j);
	cr_assert_eq(ig_attest_request(req, sizeof req, sk, "bad id", m, ts), IG_ERR_INVAL);
	cr_assert_eq(ig_attest_request(req, 100, sk, "dev1", m, ts), IG_ERR_RANGE);
	sodium_memzero(sk, sizeof sk);
}

/* ---- entropy ----------------------------------------------------------------- */

static const ig_pin_state no_pin;

static void random_samples(uint8_t *out, size_t n)
{
	randombytes_buf(out, n);
}

Test(agent_entropy, sealed_block_opens_only_with_the_cluster_head_key)
{
	cr_assert_eq(ig_init(), IG_OK);
	uint8_t ch_pk[32], ch_sk[64], x_pk[32], x_sk[32], block[32], sealed[IG_ENTROPY_SEALED_BYTES], opened[40];
	cr_assert_eq(ig_keyfile_generate(ch_pk, ch_sk), IG_OK);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x_pk, ch_pk), 0);
	cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(x_sk, ch_sk), 0);
	randombytes_buf(block, sizeof block);
	uint64_t seq = 1700000000000ull;

	cr_assert_eq(ig_entropy_seal(sealed, seq, block, ch_pk), IG_OK);
	cr_assert_eq(crypto_box_seal_open(opened, sealed, sizeof sealed, x_pk, x_sk), 0);
	cr_assert_eq(ig_get_u64(opened), seq);
	cr_assert_arr_eq(opened + 8, block, 32);
	for (size_t i = 0; i < sizeof sealed; i += 7) {
		sealed[i] ^= 0x80;
		cr_assert_neq(crypto_box_seal_open(opened, sealed, sizeof sealed, x_pk, x_sk), 0, "byte %zu", i);
		sealed[i] ^= 0x80;
	}

	char payload[256];
	int n = ig_entropy_payload(payload, sizeof payload, seq, sealed);
	cr_assert_gt(n, 0);
	cJSON *j = cJSON_Parse(payload);
	cr_assert_not_null(j);
	cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "seq")->valuedouble, seq);
	const char *b64 = cJSON_GetObjectItem(j, "sealed")->valuestring;
	uint8_t decoded[128];
	size_t dlen = 0;
	cr_assert_eq(sodium_base642bin(decoded, sizeof decoded, b64, strlen(b64), NULL, &dlen, NULL,
	                               sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_eq(dlen, sizeof sealed);
	cr_assert_arr_eq(decoded, sealed, dlen);
	cJSON_Delete(j);
	cr_assert_eq(ig_entropy_payload(payload, 40, seq, sealed), IG_ERR_RANGE);

	uint8_t bad_pk[32];
	memset(bad_pk, 0, sizeof bad_pk);
	bad_pk[0] = 2;   /* not on the curve / small order */
	(void)ig_entropy_seal(sealed, seq, block, bad_pk);   /* must not crash; result is checked by libsodium */
	sodium_memzero(ch_sk, sizeof ch_sk);
	sodium_memzero(x_sk, sizeof x_sk);
}

Test(agent_entropy, delay_jitters_within_a_quarter_and_seq_only_grows)
{
	cr_assert_eq(ig_init(), IG_OK);
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < 2000; i++) {
		uint64_t d = ig_entropy_delay_us(60);
		cr_assert_geq(d, 45000000u);
		cr_assert_leq(d, 75000000u);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	cr_assert_gt(hi - lo, 20000000u, "jitter too narrow: %lu..%lu", (unsigned long)lo, (unsigned long)hi);
	cr_assert_eq(ig_entropy_next_seq(0, 1000), 1000);
	cr_assert_eq(ig_entropy_next_seq(1000, 1000), 1001);
	cr_assert_eq(ig_entropy_next_seq(5000, 1000), 5001);   /* clock stepped back: still increases */
	cr_assert_eq(ig_entropy_next_seq(UINT64_C(1) << 50, ig_now_ms()), (UINT64_C(1) << 50) + 1);
}

Test(agent_entropy, good_samples_give_fresh_blocks)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_entropy_state e;
	cr_assert_eq(ig_entropy_duty_init(&e, 10, &no_pin), IG_OK);
	uint8_t raw0[1024], raw1[128], b1[32], b2[32];
	const uint8_t *raw[3] = {raw0, raw1, NULL};
	size_t n[3] = {sizeof raw0, sizeof raw1, 0};
	ig_entropy_counts c;
	random_samples(raw0, sizeof raw0);
	random_samples(raw1, sizeof raw1);
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, b1, &c), IG_OK);
	cr_assert_eq(c.raw[0], 1024);
	cr_assert_eq(c.raw[1], 128);
	cr_assert_float_eq(c.credited_bits, 1024 + 64, 0.01);
	cr_assert_gt(c.debiased_bits, 2000);   /* ~ (1024+128)*8/4 = 2304 expected */
	cr_assert_lt(c.debiased_bits, 2700);
	random_samples(raw0, sizeof raw0);
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, b2, &c), IG_OK);
	cr_assert_neq(memcmp(b1, b2, 32), 0);
	cr_assert(!e.failed);
	char status[128];
	ig_duty_entropy.status_fields(NULL, &e, status, sizeof status);
	cr_assert_str_eq(status, ",\"entropy\":\"ok\"");

	/* Too little credited entropy: the round is skipped, not failed. */
	n[0] = 100;
	n[1] = 0;
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, b2, &c), IG_ERR_RANGE);
	cr_assert(!e.failed);
	/* More samples than the sampler may hand in. */
	n[1] = 4096;
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, b2, &c), IG_ERR_RANGE);
}

Test(agent_entropy, stuck_source_stops_contributions_for_good)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_entropy_state e;
	cr_assert_eq(ig_entropy_duty_init(&e, 10, &no_pin), IG_OK);
	uint8_t raw0[1024], raw1[128], block[32];
	const uint8_t *raw[3] = {raw0, raw1, NULL};
	size_t n[3] = {sizeof raw0, sizeof raw1, 0};
	ig_entropy_counts c;
	random_samples(raw0, sizeof raw0);
	memset(raw1, 7, sizeof raw1);   /* interrupts stuck: RCT cutoff at H = 0.5 is 41 */
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, block, &c), IG_ERR_STATE);
	cr_assert(e.failed);
	cr_assert(strstr(e.failure, "interrupts: ") == e.failure, "failure: %s", e.failure);
	char status[256];
	size_t len = ig_duty_entropy.status_fields(NULL, &e, status, sizeof status);
	cr_assert_eq(len, strlen(status));
	cr_assert(strstr(status, ",\"entropy\":\"failed: interrupts: ") == status, "status: %s", status);
	/* The status members must be valid JSON whatever the failure text says. */
	char doc[300];
	snprintf(doc, sizeof doc, "{\"id\":\"d\"%s}", status);
	cJSON *j = cJSON_Parse(doc);
	cr_assert_not_null(j, "not JSON: %s", doc);
	cJSON_Delete(j);

	/* Good samples later do not heal it. */
	random_samples(raw1, sizeof raw1);
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, block, &c), IG_ERR_STATE);

	/* A jitter source stuck for 21 samples (H = 1) trips too. */
	cr_assert_eq(ig_entropy_duty_init(&e, 10, &no_pin), IG_OK);
	random_samples(raw0, sizeof raw0);
	memset(raw0 + 500, 0, 21);
	cr_assert_eq(ig_entropy_block_from(&e, raw, n, block, &c), IG_ERR_STATE);
	cr_assert(strstr(e.failure, "jitter: ") == e.failure, "failure: %s", e.failure);
	/* Too little room: the length says so and the core drops the member. */
	cr_assert_geq(ig_duty_entropy.status_fields(NULL, &e, status, 10), 10);
}

Test(agent_entropy, this_host_sources_pass_their_health_tests)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_entropy_state e;
	cr_assert_eq(ig_entropy_duty_init(&e, 10, &no_pin), IG_OK);
	uint8_t block[32];
	ig_entropy_counts c;
	for (int round = 0; round < 3; round++) {
		int rc = ig_entropy_collect(&e, block, &c);
		cr_assert_eq(rc, IG_OK, "round %d: rc %d (%s)", round, rc, e.failure);
		cr_assert_geq(c.credited_bits, 256.0);
	}
}

/* ---- the pinned cluster-head key ------------------------------------------- */

static int head_json(char *out, size_t cap, const char *cluster, const uint8_t pk[32], const uint8_t sign_sk[64])
{
	char note[IG_CHECKPOINT_MAX], pk_hex[65];
	ig_checkpoint cp = {.size = 3};
	memset(cp.root, 0x42, sizeof cp.root);
	cr_assert_gt(ig_checkpoint_origin(cp.origin, sizeof cp.origin, cluster), 0);
	const char *origin = cp.origin;
	cr_assert_gt(ig_checkpoint_sign(note, sizeof note, &cp, sign_sk), 0);
	ig_hex_encode(pk_hex, pk, 32);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "origin", origin);
	cJSON_AddNumberToObject(o, "size", 3);
	cJSON_AddStringToObject(o, "ch_pubkey", pk_hex);
	cJSON_AddStringToObject(o, "checkpoint", note);
	char *s = cJSON_PrintUnformatted(o);
	int n = snprintf(out, cap, "%s", s);
	free(s);
	cJSON_Delete(o);
	return n;
}

Test(agent_pin, file_round_trip_mode_and_corruption)
{
	cr_assert_eq(ig_init(), IG_OK);
	const char *dir = tu_scratch_dir("agent");
	char key[128];
	snprintf(key, sizeof key, "%s/dev.key", dir);
	ig_pin_state p;
	ig_error err = {0};
	cr_assert_eq(ig_pin_init(&p, key, &err), IG_OK);
	cr_assert(!p.known);
	cr_assert(strstr(p.path, "/dev.key.ch") != NULL);

	uint8_t pk[32], sk[64];
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	cr_assert_eq(ig_pin_store(&p, pk, &err), IG_OK, "%s", err.msg);
	struct stat st;
	cr_assert_eq(stat(p.path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_size, 65);

	ig_pin_state q;
	cr_assert_eq(ig_pin_init(&q, key, &err), IG_OK);
	cr_assert(q.known);
	cr_assert_arr_eq(q.pk, pk, 32);

	tu_write_file(p.path, "zz\n", 3);
	cr_assert_eq(ig_pin_init(&q, key, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "delete it") != NULL, "message: %s", err.msg);
	char hex[66];
	ig_hex_encode(hex, pk, 32);
	hex[63] = '\0';   /* one digit short */
	tu_write_file(p.path, hex, 63);
	cr_assert_eq(ig_pin_init(&q, key, &err), IG_ERR_CORRUPT);
	sodium_memzero(sk, sizeof sk);
}

Test(agent_pin, ledger_head_pins_once_then_must_agree)
{
	cr_assert_eq(ig_init(), IG_OK);
	const char *dir = tu_scratch_dir("agent");
	char key[128], head[2048];
	snprintf(key, sizeof key, "%s/dev.key", dir);
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	cr_assert_eq(ig_keyfile_generate(pk2, sk2), IG_OK);
	ig_pin_state p;
	ig_error err = {0};
	cr_assert_eq(ig_pin_init(&p, key, &err), IG_OK);

	/* A head whose checkpoint is not signed by the key it names pins nothing. */
	int n = head_json(head, sizeof head, "c1", pk, sk2);
	cr_assert_neq(ig_pin_from_head(&p, "c1", (const uint8_t *)head, (size_t)n, &err), IG_OK);
	cr_assert(!p.known);
	/* Nor one for another cluster, nor garbage. */
	n = head_json(head, sizeof head, "c2", pk, sk);
	cr_assert_neq(ig_pin_from_head(&p, "c1", (const uint8_t *)head, (size_t)n, &err), IG_OK);
	cr_assert_neq(ig_pin_from_head(&p, "c1", (const uint8_t *)"{\"ch_pubkey\":1}", 15, &err), IG_OK);
	cr_assert_neq(ig_pin_from_head(&p, "c1", (const uint8_t *)"not json", 8, &err), IG_OK);
	cr_assert(!p.known);

	n = head_json(head, sizeof head, "c1", pk, sk);
	cr_assert_eq(ig_pin_from_head(&p, "c1", (const uint8_t *)head, (size_t)n, &err), IG_OK, "%s", err.msg);
	cr_assert(p.known);
	cr_assert_arr_eq(p.pk, pk, 32);
	ig_pin_state q;
	cr_assert_eq(ig_pin_init(&q, key, &err), IG_OK);
	cr_assert(q.known, "pin must be saved to FILE.ch");

	/* A self-consistent head for another key is refused, the pin kept. */
	n = head_json(head, sizeof head, "c1", pk2, sk2);
	cr_assert_eq(ig_pin_from_head(&p, "c1", (const uint8_t *)head, (size_t)n, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "not the pinned key") != NULL, "message: %s", err.msg);
	cr_assert_arr_eq(p.pk, pk, 32);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(sk2, sizeof sk2);
}

/* ---- join ------------------------------------------------------------------- */

Test(agent_join, code_is_validated_and_key_created_once)
{
	cr_assert_eq(ig_init(), IG_OK);
	const char *dir = tu_scratch_dir("agent");
	char key[128], pk_hex[65];
	snprintf(key, sizeof key, "%s/new.key", dir);
	ig_pin_state pin;
	ig_join_state j;
	ig_error err = {0};
	cr_assert_eq(ig_pin_init(&pin, key, &err), IG_OK);

	cr_assert_eq(ig_join_init(&j, "igjc1-00", &pin, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_join_init(&j, "", &pin, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_join_init(&j, "igjc2-000102030405060708090a0b0c0d0e0f1011121314151617", &pin, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_join_init(&j, "  IGJC1-000102030405060708090A0B0C0D0E0F1011121314151617 ", &pin, &err), IG_OK,
	             "%s", err.msg);
	cr_assert(j.joining);
	cr_assert_str_eq(j.code, "igjc1-000102030405060708090a0b0c0d0e0f1011121314151617");

	cr_assert_eq(ig_join_prepare_key(key, pk_hex, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(strlen(pk_hex), 64);
	struct stat st;
	cr_assert_eq(stat(key, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	uint8_t sk[64], pk[32];
	cr_assert_eq(ig_keyfile_read(key, sk, pk, &err), IG_OK);
	char hex[65];
	ig_hex_encode(hex, pk, 32);
	cr_assert_str_eq(hex, pk_hex);
	/* An existing key is used as is. */
	cr_assert_eq(ig_join_prepare_key(key, pk_hex, &err), IG_OK);
	cr_assert_str_eq(pk_hex, "");
	uint8_t sk2[64], pk2[32];
	cr_assert_eq(ig_keyfile_read(key, sk2, pk2, &err), IG_OK);
	cr_assert_arr_eq(pk2, pk, 32);
	/* The code is wiped when the duty stops. */
	ig_duty_join.on_stop(NULL, &j);
	cr_assert(!j.joining);
	for (size_t i = 0; i < sizeof j.code; i++)
		cr_assert_eq(j.code[i], 0);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(sk2, sizeof sk2);
}

/* The join duty's decisions, driven through a real (never connected) agent. */
struct join_fixture {
	char dir[64], key[128];
	ig_pin_state pin;
	ig_join_state j;
	ig_agent *a;
};

static void join_setup(struct join_fixture *f)
{
	tu_agent_key(f->dir, sizeof f->dir, f->key, sizeof f->key, "dev9");
	ig_error err = {0};
	cr_assert_eq(ig_pin_init(&f->pin, f->key, &err), IG_OK);
	cr_assert_eq(ig_join_init(&f->j, "igjc1-000102030405060708090a0b0c0d0e0f1011121314151617", &f->pin, &err), IG_OK);
	f->a = tu_agent_offline("c1", "dev9", f->key);
	cr_assert_eq(ig_agent_add_duty(f->a, &ig_duty_join, &f->j), IG_OK);
}

Test(agent_join, join_token_only_while_joining)
{
	struct join_fixture f;
	join_setup(&f);
	char pw[512];
	int n = ig_duty_join.session_password(f.a, &f.j, pw, sizeof pw);
	cr_assert_gt(n, 0);
	cr_assert(strncmp(pw, "igj1.", 5) == 0, "%s", pw);
	ig_join_claims c;
	cr_assert_eq(ig_join_token_parse(pw, (size_t)n, &c), IG_OK);
	cr_assert_str_eq(c.id, "dev9");
	cr_assert_str_eq(c.cluster, "c1");
	cr_assert_arr_eq(c.pk, ig_agent_public_key(f.a), 32);
	cr_assert_eq(c.expires_at - c.issued_at, 300);
	f.j.joining = false;
	cr_assert_eq(ig_duty_join.session_password(f.a, &f.j, pw, sizeof pw), 0, "enrolled: normal token");
	ig_agent_free(f.a);
}

Test(agent_join, welcome_pins_the_key_and_ends_joining)
{
	struct join_fixture f;
	join_setup(&f);
	uint8_t ch_pk[32], ch_sk[64];
	char hex[65];
	cr_assert_eq(ig_keyfile_generate(ch_pk, ch_sk), IG_OK);
	ig_hex_encode(hex, ch_pk, 32);
	char msg[512];
	/* For someone else: ignored. */
	snprintf(msg, sizeof msg, "{\"type\":\"welcome\",\"cluster\":\"c1\",\"id\":\"dev8\",\"role\":\"device\","
	                          "\"ch_pubkey\":\"%s\",\"index\":7}", hex);
	cJSON *j = cJSON_Parse(msg);
	cr_assert(ig_duty_join.on_inbox(f.a, &f.j, "welcome", j));
	cJSON_Delete(j);
	cr_assert(f.j.joining);
	cr_assert(!f.pin.known);
	snprintf(msg, sizeof msg, "{\"type\":\"welcome\",\"cluster\":\"c1\",\"id\":\"dev9\",\"role\":\"device\","
	                          "\"ch_pubkey\":\"%s\",\"index\":7}", hex);
	j = cJSON_Parse(msg);
	cr_assert(ig_duty_join.on_inbox(f.a, &f.j, "welcome", j));
	cJSON_Delete(j);
	cr_assert(!f.j.joining);
	cr_assert(f.pin.known);
	cr_assert_arr_eq(f.pin.pk, ch_pk, 32);
	ig_pin_state reread;
	cr_assert_eq(ig_pin_init(&reread, f.key, NULL), IG_OK);
	cr_assert(reread.known, "welcome must save FILE.ch");
	cr_assert_eq(ig_agent_exit_status(f.a), 0);
	for (size_t i = 0; i < sizeof f.j.code; i++)
		cr_assert_eq(f.j.code[i], 0, "the code must be wiped once used");
	ig_agent_free(f.a);
	sodium_memzero(ch_sk, sizeof ch_sk);
}

Test(agent_join, refusals_need_a_human)
{
	struct join_fixture f;
	join_setup(&f);
	cJSON *err = cJSON_Parse("{\"type\":\"error\",\"error\":\"code_used\",\"message\":\"used\"}");
	cr_assert(ig_duty_join.on_inbox(f.a, &f.j, "error", err));
	cJSON_Delete(err);
	cr_assert_eq(ig_agent_exit_status(f.a), IG_EXIT_NEEDS_HUMAN);
	cr_assert(!f.j.joining);
	ig_agent_free(f.a);

	/* A refused CONNACK before any join request: stop at once. */
	join_setup(&f);
	ig_duty_join.on_refused(f.a, &f.j, 135);
	cr_assert_eq(ig_agent_exit_status(f.a), IG_EXIT_NEEDS_HUMAN);
	ig_agent_free(f.a);
}

Test(agent_join, refusal_after_a_request_tries_a_normal_token_once)
{
	struct join_fixture f;
	join_setup(&f);
	/* The earlier session sent {"type":"join"}; its welcome was lost. */
	f.j.sent_before = true;
	ig_duty_join.on_refused(f.a, &f.j, 135);
	cr_assert_eq(ig_agent_exit_status(f.a), 0, "must not give up yet");
	cr_assert(!f.j.joining);
	cr_assert(f.j.checking_enrolled);
	char pw[512];
	cr_assert_eq(ig_duty_join.session_password(f.a, &f.j, pw, sizeof pw), 0, "next attempt uses a normal token");
	/* The normal token is refused too: now give up. */
	ig_duty_join.on_refused(f.a, &f.j, 135);
	cr_assert_eq(ig_agent_exit_status(f.a), IG_EXIT_NEEDS_HUMAN);
	ig_agent_free(f.a);

	/* ... or it is accepted: carry on as enrolled. */
	join_setup(&f);
	f.j.sent_before = true;
	ig_duty_join.on_refused(f.a, &f.j, 135);
	ig_duty_join.on_connect(f.a, &f.j);
	cr_assert(!f.j.checking_enrolled);
	cr_assert_eq(ig_agent_exit_status(f.a), 0);
	ig_agent_free(f.a);
}
