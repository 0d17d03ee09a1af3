/*
 * test_agent_log.c: unit tests for the device's own check of the log.
 *
 * Why this exists: a device that accepts a proof it should refuse, or
 * refuses a head it should accept, fails silently: the first lets a forked
 * cluster head through, the second cuts a fleet off its keys. These tests
 * take the proofs of docs/PROTOCOL.md's example (computed there by the
 * independent Python code) and try to get altered ones past the checks:
 * another identity or key, a flipped hash, another signer, wrong sizes.
 * They check the relation of two checkpoints, the head and refusal files,
 * the witness quorum, and drive the log duty through a real, never
 * connected agent: a head is not kept before the enrolment is proven in
 * one; a second signed tree of the size kept is refused, the refusal is
 * durable, reported in the status, and stops keys.
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_testutil.h"
#include "duties.h"
#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "loghead.h"
#include "testutil.h"

/* docs/PROTOCOL.md, "Log proofs": cluster demo, sensor-1's enrolment. */
#define EX_CH_PK "5c60a7ad36222c5f1667952308d83f93f0c5f5aed793b0d1f455b3332043e61a"
#define EX_DEV_PK "de4a61367065936409748cf21bc129725cf13568ae57fc2921d34f7b34de860b"
#define EX_CHECKPOINT                                                                                                  \
	"iotguard/demo\\n3\\niXMFCdvS0c7dIWpqJMA5YalvpCvAiqJzyMIglojgC8U=\\n\\n\\u2014 iotguard/demo "                           \
	"WajFDD7OgO7JL5HLIH+My0y8GT1qLUlk3XjdyyEtI8UeLvXfxggFFiXfZ+KqaAjGbbRp7PkZ4kYYFgbqqOLajoHnKQw=\\n"
#define EX_INCLUSION                                                                                                   \
	"{\"type\":\"log_inclusion_proof\",\"nonce\":\"enr-1\",\"index\":2,\"entry\":"                                        \
	"\"SUdSMQAAAIEAAAAAAAAAAgAAAaJDrqKXAAIAAKZ4hcK3ZUbHieJ7wLu6Ne/8XCfNKX11cgxC5Djzk3rjAQAIc2Vuc29yLTECAAEBAwAg3kphNnBlk2Q" \
	"JdIzyG8EpclzxNWiuV/wpIdNPezTehgsEAAxvZmZsaW5lOnJvb3QFXAor\",\"proof\":["                                             \
	"\"hPxRgEFl4nwaeKmNvGR02eBsrT1HUcTJkYqc7356sSw=\"],\"checkpoint\":\"" EX_CHECKPOINT "\"}"
#define EX_CONSISTENCY                                                                                                 \
	"{\"type\":\"log_consistency_proof\",\"nonce\":\"con-1\",\"from\":2,\"to\":3,\"proof\":["                             \
	"\"Fgg5hXiW/s4+lIrfPB6rHjsdr9xoM/53xYXUbvVuK58=\"],\"checkpoint\":\"" EX_CHECKPOINT "\"}"
#define EX_ROOT2 "hPxRgEFl4nwaeKmNvGR02eBsrT1HUcTJkYqc7356sSw="
#define EX_ROOT3 "iXMFCdvS0c7dIWpqJMA5YalvpCvAiqJzyMIglojgC8U="

static void b64_32(uint8_t out[32], const char *b64)
{
	size_t n = 0;
	cr_assert(sodium_base642bin(out, 32, b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	          n == 32);
}

static ig_loghead_trust example_trust(void)
{
	ig_loghead_trust t;
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_init(), IG_OK);
	tu_unhex(pk, sizeof pk, EX_CH_PK);
	cr_assert_eq(ig_loghead_trust_init(&t, "demo", pk), IG_OK);
	return t;
}

static int check_enrollment(const char *json, const ig_loghead_trust *t, const char *id, const char *pk_hex,
                            uint64_t *index, ig_error *err)
{
	static ig_loghead cp;
	uint8_t pk[IG_PK_BYTES];
	tu_unhex(pk, sizeof pk, pk_hex);
	cJSON *m = cJSON_Parse(json);
	cr_assert_not_null(m);
	int rc = ig_loghead_check_enrollment(&cp, index, m, t, id, pk, err);
	cJSON_Delete(m);
	return rc;
}

/* The example with one substring replaced. */
static char *altered(const char *json, const char *from, const char *to)
{
	const char *at = strstr(json, from);
	cr_assert_not_null(at, "%s not in the example", from);
	char *out = malloc(strlen(json) + strlen(to) + 1);
	sprintf(out, "%.*s%s%s", (int)(at - json), json, to, at + strlen(from));
	return out;
}

Test(agent_log, the_protocol_example_proves_sensor_1s_enrolment)
{
	ig_loghead_trust t = example_trust();
	ig_error err = {0};
	uint64_t index = 99;
	cr_assert_eq(check_enrollment(EX_INCLUSION, &t, "sensor-1", EX_DEV_PK, &index, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(index, 2);
	/* The example is the one in the document. */
	cr_assert_not_null(strstr(tu_read_doc("PROTOCOL.md"), "\"proof\":[\"hPxRgEFl4nwaeKmNvGR02eBsrT1HUcTJkYqc7356sSw=\"]"));
}

Test(agent_log, another_identity_key_hash_or_signer_is_refused)
{
	ig_loghead_trust t = example_trust();
	ig_error err = {0};
	uint64_t index = 0;
	/* Someone else's enrolment, or this id with another key: the cluster
	 * head sent a record that is not this device's. */
	cr_assert_eq(check_enrollment(EX_INCLUSION, &t, "sensor-2", EX_DEV_PK, &index, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "another identity"), "%s", err.msg);
	cr_assert_eq(check_enrollment(EX_INCLUSION, &t, "sensor-1", EX_CH_PK, &index, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "another public key"), "%s", err.msg);
	/* A flipped path hash does not lead to the signed root. */
	char *bad = altered(EX_INCLUSION, "hPxRgEFl4nwa", "hPxRgEFl4nwb");
	cr_assert_eq(check_enrollment(bad, &t, "sensor-1", EX_DEV_PK, &index, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "does not lead to the root"), "%s", err.msg);
	free(bad);
	/* Another index than the record's own. */
	bad = altered(EX_INCLUSION, "\"index\":2", "\"index\":1");
	cr_assert_eq(check_enrollment(bad, &t, "sensor-1", EX_DEV_PK, &index, &err), IG_ERR_CORRUPT);
	free(bad);
	/* Signed by another key: not evidence against the cluster head. */
	ig_loghead_trust other = t;
	other.ch_pk[0] ^= 1;
	cr_assert_eq(check_enrollment(EX_INCLUSION, &other, "sensor-1", EX_DEV_PK, &index, &err), IG_ERR_CRYPTO);
	/* Malformed answers are just unusable. */
	bad = altered(EX_INCLUSION, "\"proof\":[", "\"proof\":[\"AAAA\",");
	cr_assert_eq(check_enrollment(bad, &t, "sensor-1", EX_DEV_PK, &index, &err), IG_ERR_INVAL);
	free(bad);
	bad = altered(EX_INCLUSION, "\"entry\":", "\"entri\":");
	cr_assert_eq(check_enrollment(bad, &t, "sensor-1", EX_DEV_PK, &index, &err), IG_ERR_INVAL);
	free(bad);
}

static int check_consistency(const char *json, uint64_t from, const char *from_b64, uint64_t to, const char *to_b64,
                             ig_error *err)
{
	uint8_t r1[32], r2[32];
	b64_32(r1, from_b64);
	b64_32(r2, to_b64);
	cJSON *m = cJSON_Parse(json);
	int rc = ig_loghead_check_consistency(m, from, r1, to, r2, err);
	cJSON_Delete(m);
	return rc;
}

Test(agent_log, the_protocol_example_proves_size_3_extends_size_2)
{
	ig_error err = {0};
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_eq(check_consistency(EX_CONSISTENCY, 2, EX_ROOT2, 3, EX_ROOT3, &err), IG_OK, "%s", err.msg);
	/* A device that kept another size-2 tree: a fork. */
	cr_assert_eq(check_consistency(EX_CONSISTENCY, 2, EX_ROOT3, 3, EX_ROOT3, &err), IG_ERR_CORRUPT);
	cr_assert_eq(check_consistency(EX_CONSISTENCY, 2, EX_ROOT2, 3, EX_ROOT2, &err), IG_ERR_CORRUPT);
	/* An answer for other sizes than asked is not used. */
	cr_assert_eq(check_consistency(EX_CONSISTENCY, 1, EX_ROOT2, 3, EX_ROOT3, &err), IG_ERR_INVAL);
	cr_assert(strstr(err.msg, "not the 1 to 3 asked for"), "%s", err.msg);
}

/* A checkpoint of size/root signed by sk, parsed under trust. */
static void signed_head(ig_loghead *out, const ig_loghead_trust *t, const uint8_t sk[IG_SK_BYTES], uint64_t size,
                        uint8_t root_byte)
{
	ig_checkpoint cp = {.size = size};
	snprintf(cp.origin, sizeof cp.origin, "%s", t->origin);
	memset(cp.root, root_byte, sizeof cp.root);
	char text[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	cr_assert_gt(n, 0);
	ig_error err = {0};
	cr_assert_eq(ig_loghead_parse(out, t, text, (size_t)n, &err), IG_OK, "%s", err.msg);
}

static ig_loghead_trust fresh_trust(uint8_t sk[IG_SK_BYTES], const char *cluster)
{
	uint8_t pk[IG_PK_BYTES];
	ig_loghead_trust t;
	cr_assert_eq(ig_init(), IG_OK);
	crypto_sign_keypair(pk, sk);
	cr_assert_eq(ig_loghead_trust_init(&t, cluster, pk), IG_OK);
	return t;
}

Test(agent_log, two_checkpoints_relate_as_first_same_newer_older_or_fork)
{
	static ig_loghead a, b;
	uint8_t sk[IG_SK_BYTES];
	ig_loghead_trust t = fresh_trust(sk, "c1");
	signed_head(&a, &t, sk, 10, 1);
	cr_assert_eq(ig_loghead_compare(NULL, &a), IG_LOGHEAD_FIRST);
	cr_assert_eq(ig_loghead_compare(&a, &a), IG_LOGHEAD_SAME);
	signed_head(&b, &t, sk, 11, 2);
	cr_assert_eq(ig_loghead_compare(&a, &b), IG_LOGHEAD_NEWER);
	cr_assert_eq(ig_loghead_compare(&b, &a), IG_LOGHEAD_OLDER);
	signed_head(&b, &t, sk, 10, 3);
	cr_assert_eq(ig_loghead_compare(&a, &b), IG_LOGHEAD_FORK);
}

Test(agent_log, the_witness_quorum_counts_valid_cosignatures)
{
	static ig_loghead h;
	uint8_t sk[IG_SK_BYTES], wsk[2][IG_SK_BYTES], wpk[2][IG_PK_BYTES];
	ig_loghead_trust t = fresh_trust(sk, "c1");
	signed_head(&h, &t, sk, 5, 7);
	const char *names[2] = {"w1", "w2"};
	for (int i = 0; i < 2; i++) {
		crypto_sign_keypair(wpk[i], wsk[i]);
		cr_assert_eq(ig_cosig_vkey_make(&t.witnesses[i], names[i], IG_COSIG_TYPE_COSIG_V1, wpk[i]), IG_OK);
	}
	t.nwitnesses = 2;
	t.quorum = 1;
	ig_error err = {0};
	cr_assert_eq(ig_loghead_parse(&h, &t, h.text, h.len, &err), IG_OK);
	cr_assert_eq(h.cosigned, 0);
	cr_assert_not(ig_loghead_witnessed(&h, &t));
	/* w1 cosigns the body (up to the blank line). */
	size_t body = (size_t)(strstr(h.text, "\n\n") - h.text) + 1;
	char line[IG_COSIG_LINE_MAX], text[IG_CHECKPOINT_MAX];
	int n = ig_cosig_sign(line, sizeof line, "w1", wsk[0], 1767225600, h.text, body);
	cr_assert_gt(n, 0);
	int len = ig_checkpoint_add_signatures(text, sizeof text, h.text, h.len, line, (size_t)n, &err);
	cr_assert_gt(len, 0, "%s", err.msg);
	cr_assert_eq(ig_loghead_parse(&h, &t, text, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(h.cosigned, 1);
	cr_assert(ig_loghead_witnessed(&h, &t));
	t.quorum = 2;
	cr_assert_not(ig_loghead_witnessed(&h, &t));
	/* A line in w2's name made with w1's key does not count for w2. */
	n = ig_cosig_sign(line, sizeof line, "w2", wsk[0], 1767225600, h.text, body);
	char worse[IG_CHECKPOINT_MAX];
	len = ig_checkpoint_add_signatures(worse, sizeof worse, text, strlen(text), line, (size_t)n, &err);
	cr_assert_gt(len, 0);
	/* (The key id differs, so it is another key's line and skipped.) */
	cr_assert_eq(ig_loghead_parse(&h, &t, worse, (size_t)len, &err), IG_OK);
	cr_assert_eq(h.cosigned, 1);
}

Test(agent_log, the_head_file_is_private_verbatim_and_checked_on_load)
{
	static ig_loghead h, got;
	uint8_t sk[IG_SK_BYTES];
	ig_loghead_trust t = fresh_trust(sk, "c1");
	signed_head(&h, &t, sk, 42, 9);
	char path[512];
	snprintf(path, sizeof path, "%s/dev.key.head", tu_scratch_dir("loghead"));
	ig_error err = {0};
	cr_assert_eq(ig_loghead_load(&got, path, &t, &err), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_loghead_store(&h, path, &err), IG_OK, "%s", err.msg);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	cr_assert_eq(len, h.len);
	cr_assert_str_eq(text, h.text);   /* any C2SP note tool reads it */
	free(text);
	cr_assert_eq(ig_loghead_load(&got, path, &t, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(got.cp.size, 42);
	/* Signed by another key, or damaged: an error that names the file. */
	uint8_t sk2[IG_SK_BYTES];
	ig_loghead_trust t2 = fresh_trust(sk2, "c1");
	cr_assert_eq(ig_loghead_load(&got, path, &t2, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, path), "%s", err.msg);
	tu_write_file(path, "iotguard/c1\n42\n", 15);
	cr_assert_neq(ig_loghead_load(&got, path, &t, &err), IG_OK);
}

Test(agent_log, a_refusal_round_trips_and_a_strange_file_still_refuses)
{
	static ig_loghead h;
	uint8_t sk[IG_SK_BYTES];
	ig_loghead_trust t = fresh_trust(sk, "c1");
	signed_head(&h, &t, sk, 8, 1);
	char path[512], reason[16], detail[IG_LOGHEAD_DETAIL_MAX];
	snprintf(path, sizeof path, "%s/dev.key.head.refused", tu_scratch_dir("refusal"));
	ig_error err = {0};
	cr_assert_eq(ig_loghead_refusal_read(path, reason, detail, &err), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_loghead_refusal_write(path, "rollback", "size 5 after size 8\nsecond line", &h, "x\n", 2,
	                                      1767225600123ull, &err),
	             IG_OK, "%s", err.msg);
	cr_assert_eq(ig_loghead_refusal_read(path, reason, detail, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(reason, "rollback");
	cr_assert_str_eq(detail, "size 5 after size 8 second line");   /* one line */
	char *text = tu_read_file(path, NULL);
	cr_assert(strstr(text, "time 1767225600123\n"));
	cr_assert(strstr(text, "\naccepted:\n"));
	cr_assert(strstr(text, h.text));
	cr_assert(strstr(text, "offending:\nx\n"));
	free(text);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	tu_write_file(path, "hello\n", 6);
	cr_assert_eq(ig_loghead_refusal_read(path, reason, detail, &err), IG_ERR_CORRUPT);
	cr_assert_str_eq(reason, "unknown");
}

/* ---- the duty, through a real agent that never connects ---------------- */

static void head_payload(char *out, size_t cap, const ig_loghead *h)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "checkpoint", h->text);
	char *s = cJSON_PrintUnformatted(o);
	snprintf(out, cap, "%s", s);
	free(s);
	cJSON_Delete(o);
}

Test(agent_log, a_second_tree_of_the_same_size_is_refused_durably_and_stops_keys)
{
	static ig_pin_state pin;
	static ig_log_state l, again;
	static ig_loghead a, b;
	char dir[256], key[300], payload[IG_CHECKPOINT_MAX + 64], status[1024];
	uint8_t sk[IG_SK_BYTES];
	ig_error err = {0};
	tu_agent_key(dir, sizeof dir, key, sizeof key, "dev1");
	ig_loghead_trust t = fresh_trust(sk, "c1");
	cr_assert_eq(ig_pin_init(&pin, key, &err), IG_OK);
	cr_assert_eq(ig_pin_store(&pin, t.ch_pk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_log_init(&l, &pin, key, "c1", NULL, 0, 0, &err), IG_OK, "%s", err.msg);
	ig_agent *ag = tu_agent_offline("c1", "dev1", key);

	/* Before its enrolment is proven in one, the device keeps no head: a
	 * ledger head alone is set aside. */
	signed_head(&a, &t, sk, 6, 1);
	head_payload(payload, sizeof payload, &a);
	cr_assert(ig_duty_log.on_message(ag, &l, "iotguard/c1/ledger/head", (const uint8_t *)payload, strlen(payload)));
	cr_assert_not(l.have);
	cr_assert_neq(access(l.head_path, F_OK), 0);

	/* A device that kept the size-6 tree (an earlier run: KEY.head). */
	cr_assert_eq(ig_loghead_store(&a, l.head_path, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_log_init(&l, &pin, key, "c1", NULL, 0, 0, &err), IG_OK, "%s", err.msg);
	cr_assert(l.have);
	cr_assert_eq(l.accepted.cp.size, 6);
	cr_assert(ig_pin_trusted(&pin));
	ig_duty_log.on_message(ag, &l, "iotguard/c1/ledger/head", (const uint8_t *)payload, strlen(payload));
	cr_assert_not(pin.refused, "the same tree again is fine");
	size_t n = ig_duty_log.status_fields(ag, &l, status, sizeof status);
	status[n] = '\0';
	cr_assert_str_eq(status, ",\"log\":{\"state\":\"checking\",\"size\":6}");

	/* Another topic is not the duty's. */
	cr_assert_not(ig_duty_log.on_message(ag, &l, "iotguard/c2/ledger/head", (const uint8_t *)payload, strlen(payload)));

	/* A second tree of size 6: refused at once, with the evidence. */
	signed_head(&b, &t, sk, 6, 2);
	head_payload(payload, sizeof payload, &b);
	ig_duty_log.on_message(ag, &l, "iotguard/c1/ledger/head", (const uint8_t *)payload, strlen(payload));
	cr_assert(pin.refused);
	cr_assert_not(ig_pin_trusted(&pin));
	cr_assert_str_eq(l.reason, "fork");
	char *text = tu_read_file(l.refused_path, NULL);
	cr_assert(strstr(text, a.text) && strstr(text, b.text));
	free(text);
	n = ig_duty_log.status_fields(ag, &l, status, sizeof status);
	status[n] = '\0';
	cJSON *st = cJSON_Parse(status + strlen(",\"log\":"));
	cr_assert_not_null(st, "%s", status);
	cr_assert_str_eq(tu_json_str(st, "state"), "refused");
	cr_assert_str_eq(tu_json_str(st, "reason"), "fork");
	cJSON_Delete(st);
	char why[PATH_MAX + 64];
	cr_assert(strstr(ig_pin_untrusted_why(&pin, why, sizeof why), ".head.refused"), "%s", why);
	/* KEY.head still holds the accepted tree. */
	text = tu_read_file(l.head_path, NULL);
	cr_assert_str_eq(text, a.text);
	free(text);

	/* A restarted agent reads the refusal back and still refuses. */
	static ig_pin_state pin2;
	cr_assert_eq(ig_pin_init(&pin2, key, &err), IG_OK);
	cr_assert_eq(ig_log_init(&again, &pin2, key, "c1", NULL, 0, 0, &err), IG_OK, "%s", err.msg);
	cr_assert(pin2.refused);
	cr_assert_str_eq(again.reason, "fork");
	cr_assert(again.have);
	cr_assert_eq(again.accepted.cp.size, 6);

	/* Without the pin, a kept head is an error that says what to delete. */
	unlink(pin.path);
	static ig_pin_state nopin;
	cr_assert_eq(ig_pin_init(&nopin, key, &err), IG_OK);
	cr_assert_eq(ig_log_init(&again, &nopin, key, "c1", NULL, 0, 0, &err), IG_ERR_STATE);
	cr_assert(strstr(err.msg, "delete"), "%s", err.msg);
	ig_agent_free(ag);
}
