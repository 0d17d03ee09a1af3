/*
 * test_agent_m2m.c: unit tests for the agent's session keys and m2m checks.
 *
 * Why this exists: a key table that picks different keys at the two ends,
 * a nonce that can be used twice, or a receive path that moves its replay
 * window on a forged message all fail quietly in production. These tests
 * build real key boxes and real sealed messages with the library and try
 * to get bad ones past the agent: every field mismatch, every byte flipped,
 * replays, wrong topics, wrong senders, expired and revoked keys. The m2m
 * duty itself is fed the cluster head's error answers through a real,
 * never connected agent: only an error naming its key request may refuse
 * it, and each refusal is retried on the documented back-off. Such a
 * refusal, or silence, makes the pair fall back to key rings until a
 * cluster-head key arrives again (never with --offline-keys).
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duties.h"
#include "ig_keyfile.h"
#include "m2m_keys.h"
#include "agent_testutil.h"
#include "testutil.h"

#define NOW_S 1700000000ull
#define NOW_MS (NOW_S * 1000ull)

static ig_session_key make_key(const char *peer, uint8_t direction, uint64_t expires_at, uint8_t id_byte)
{
	ig_session_key k;
	memset(&k, 0, sizeof k);
	randombytes_buf(k.key, sizeof k.key);
	memset(k.key_id, id_byte, sizeof k.key_id);
	k.expires_at = expires_at;
	k.suite = IG_SUITE_XCHACHA20POLY1305;
	k.direction = direction;
	snprintf(k.peer, sizeof k.peer, "%s", peer);
	return k;
}

/* ---- key table ------------------------------------------------------------ */

Test(m2m_keytable, add_find_and_duplicates)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable t;
	memset(&t, 0, sizeof t);
	ig_session_key k = make_key("b", 0, NOW_S + 3600, 1);
	ig_m2m_key *s = ig_keytable_add(&t, &k, NOW_S);
	cr_assert_not_null(s);
	cr_assert_eq(s->state, IG_SLOT_LIVE);
	cr_assert_arr_eq(s->k.key, k.key, 32);
	cr_assert_eq(ig_keytable_find(&t, k.key_id), s);
	cr_assert_null(ig_keytable_add(&t, &k, NOW_S), "a duplicate key id must not be added twice");
	uint8_t other[16] = {9};
	cr_assert_null(ig_keytable_find(&t, other));
	cr_assert_eq(ig_keytable_live(&t), 1);
	char prefix[9];
	ig_key_id_prefix(prefix, k.key_id);
	cr_assert_str_eq(prefix, "01010101");
}

Test(m2m_keytable, newest_is_the_same_choice_at_both_ends)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	ig_session_key k1 = make_key("b", 0, NOW_S + 3600, 0x10);
	ig_session_key k2 = make_key("b", 1, NOW_S + 3600, 0x20);   /* same expiry: larger id wins */
	ig_session_key k3 = make_key("b", 0, NOW_S + 1800, 0x30);   /* larger id, but expires earlier */
	ig_session_key kc = make_key("c", 0, NOW_S + 7200, 0x40);   /* another peer */
	/* A receives them in one order, B (with peer "a") in the reverse. */
	cr_assert_not_null(ig_keytable_add(&a, &k1, NOW_S));
	cr_assert_not_null(ig_keytable_add(&a, &k2, NOW_S));
	cr_assert_not_null(ig_keytable_add(&a, &k3, NOW_S));
	cr_assert_not_null(ig_keytable_add(&a, &kc, NOW_S));
	ig_session_key r3 = k3, r2 = k2, r1 = k1;
	snprintf(r3.peer, sizeof r3.peer, "a");
	snprintf(r2.peer, sizeof r2.peer, "a");
	snprintf(r1.peer, sizeof r1.peer, "a");
	cr_assert_not_null(ig_keytable_add(&b, &r3, NOW_S));
	cr_assert_not_null(ig_keytable_add(&b, &r2, NOW_S));
	cr_assert_not_null(ig_keytable_add(&b, &r1, NOW_S));

	ig_m2m_key *na = ig_keytable_newest(&a, "b", NOW_S), *nb = ig_keytable_newest(&b, "a", NOW_S);
	cr_assert_not_null(na);
	cr_assert_not_null(nb);
	cr_assert_eq(na->k.key_id[0], 0x20);
	cr_assert_eq(nb->k.key_id[0], 0x20);
	cr_assert_null(ig_keytable_newest(&a, "nobody", NOW_S));
	/* Expired keys and tombstones are never chosen. */
	cr_assert_eq(ig_keytable_newest(&a, "b", NOW_S + 1800)->k.key_id[0], 0x20);
	cr_assert_null(ig_keytable_newest(&a, "b", NOW_S + 3600));
	ig_keytable_wipe(ig_keytable_find(&a, k2.key_id), IG_SLOT_REVOKED);
	cr_assert_eq(ig_keytable_newest(&a, "b", NOW_S)->k.key_id[0], 0x10);
	ig_keytable_wipe_all(&a);
	ig_keytable_wipe_all(&b);
	cr_assert(tu_all_zero((const uint8_t *)&a, sizeof a));
}

Test(m2m_keytable, rekey_when_close_to_expiry_or_worn_out)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable t;
	memset(&t, 0, sizeof t);
	ig_session_key k = make_key("b", 0, NOW_S + 3600, 1);
	ig_m2m_key *s = ig_keytable_add(&t, &k, NOW_S);
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S));
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S + 3600 - 61));
	cr_assert(ig_keytable_needs_rekey(s, NOW_S + 3600 - 60));
	s->sent = IG_M2M_REKEY_MESSAGES - 1;
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S));
	s->sent = IG_M2M_REKEY_MESSAGES;
	cr_assert(ig_keytable_needs_rekey(s, NOW_S));

	/* A key issued for 30 s must not look due at once, or the agent would
	 * ask for keys in a loop: half its life is the margin. */
	ig_session_key short_key = make_key("b", 0, NOW_S + 30, 2);
	s = ig_keytable_add(&t, &short_key, NOW_S);
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S));
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S + 14));
	cr_assert(ig_keytable_needs_rekey(s, NOW_S + 15));

	/* The holder of the peer's copy waits longer, so one new key serves both. */
	ig_session_key theirs = make_key("b", 1, NOW_S + 3600, 3);
	s = ig_keytable_add(&t, &theirs, NOW_S);
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S + 3600 - 60));
	cr_assert(!ig_keytable_needs_rekey(s, NOW_S + 3600 - 31));
	cr_assert(ig_keytable_needs_rekey(s, NOW_S + 3600 - 30));
}

static int wiped_reports;
static void count_report(void *ctx, const ig_m2m_key *k, ig_key_slot_state why)
{
	(void)ctx;
	(void)k;
	(void)why;
	wiped_reports++;
}

Test(m2m_keytable, first_use_of_a_new_key_retires_the_old_after_a_grace)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable t;
	memset(&t, 0, sizeof t);
	ig_session_key old = make_key("b", 0, NOW_S + 100, 1), fresh = make_key("b", 0, NOW_S + 3700, 2);
	ig_session_key other = make_key("c", 0, NOW_S + 50, 3);
	ig_m2m_key *so = ig_keytable_add(&t, &old, NOW_S), *sf = ig_keytable_add(&t, &fresh, NOW_S);
	ig_m2m_key *sc = ig_keytable_add(&t, &other, NOW_S);
	ig_keytable_used(&t, so, NOW_MS);          /* using the older key retires nothing */
	cr_assert_eq(sf->retire_at_ms, 0);
	ig_keytable_used(&t, sf, NOW_MS + 5);
	cr_assert_eq(so->retire_at_ms, NOW_MS + 5 + IG_M2M_RETIRE_GRACE_MS);
	cr_assert_eq(sc->retire_at_ms, 0, "another peer's key is not touched");

	wiped_reports = 0;
	cr_assert_eq(ig_keytable_sweep(&t, NOW_MS + 5 + IG_M2M_RETIRE_GRACE_MS - 1, count_report, NULL), 0);
	cr_assert_eq(so->state, IG_SLOT_LIVE);
	cr_assert_eq(ig_keytable_sweep(&t, NOW_MS + 5 + IG_M2M_RETIRE_GRACE_MS, count_report, NULL), 1);
	cr_assert_eq(so->state, IG_SLOT_RETIRED);
	cr_assert(tu_all_zero(so->k.key, 32), "a retired key must be wiped");
	cr_assert_eq(wiped_reports, 1);
	/* Expiry wipes too, and leaves a tombstone naming the reason. */
	cr_assert_eq(ig_keytable_sweep(&t, (NOW_S + 50) * 1000, count_report, NULL), 1);
	cr_assert_eq(sc->state, IG_SLOT_EXPIRED);
	cr_assert(tu_all_zero(sc->k.key, 32));
	cr_assert_eq(ig_keytable_find(&t, other.key_id), sc);
	cr_assert_eq(ig_keytable_live(&t), 1);
}

Test(m2m_keytable, full_table_evicts_tombstones_then_the_soonest_expiry)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable t;
	memset(&t, 0, sizeof t);
	for (int i = 0; i < IG_M2M_MAX_KEYS; i++) {
		ig_session_key k = make_key("b", 0, NOW_S + 1000 + (uint64_t)(i == 3 ? 0 : 100 * i + 500), (uint8_t)(i + 1));
		cr_assert_not_null(ig_keytable_add(&t, &k, NOW_S));
	}
	uint8_t id5[16];
	memset(id5, 5, 16);
	ig_keytable_wipe(ig_keytable_find(&t, id5), IG_SLOT_REVOKED);
	ig_session_key k = make_key("b", 0, NOW_S + 5000, 0x50);
	cr_assert_not_null(ig_keytable_add(&t, &k, NOW_S));
	cr_assert_null(ig_keytable_find(&t, id5), "the tombstone goes first");
	uint8_t id4[16];
	memset(id4, 4, 16);    /* i == 3: the soonest expiry */
	cr_assert_not_null(ig_keytable_find(&t, id4));
	k = make_key("b", 0, NOW_S + 5000, 0x51);
	cr_assert_not_null(ig_keytable_add(&t, &k, NOW_S));
	cr_assert_null(ig_keytable_find(&t, id4), "then the live key that expires soonest");
	cr_assert_eq(ig_keytable_live(&t), IG_M2M_MAX_KEYS);
}

/* ---- request nonces ---------------------------------------------------------- */

Test(m2m_nonces, each_nonce_matches_once)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_nonce_set s;
	memset(&s, 0, sizeof s);
	char n1[33], n2[33];
	ig_nonce_set_new(&s, n1, 1000);
	ig_nonce_set_new(&s, n2, 2000);
	cr_assert_eq(strlen(n1), 32);
	cr_assert_str_neq(n1, n2);
	cr_assert_eq(ig_nonce_set_count(&s), 2);
	cr_assert_eq(ig_nonce_set_newest_ms(&s), 2000);
	cr_assert(!ig_nonce_set_take(&s, "short"));
	cr_assert(!ig_nonce_set_take(&s, NULL));
	char wrong[33];
	memcpy(wrong, n1, 33);
	wrong[31] = wrong[31] == '0' ? '1' : '0';
	cr_assert(!ig_nonce_set_take(&s, wrong));
	cr_assert(ig_nonce_set_take(&s, n1));
	cr_assert(!ig_nonce_set_take(&s, n1), "a nonce must not match twice");
	cr_assert_eq(ig_nonce_set_count(&s), 1);
	ig_nonce_set_forget_oldest(&s);
	cr_assert(!ig_nonce_set_take(&s, n2));
	cr_assert_eq(ig_nonce_set_count(&s), 0);
	cr_assert_eq(ig_nonce_set_newest_ms(&s), 0);
}

Test(m2m_nonces, full_set_forgets_the_oldest_and_old_ones_expire)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_nonce_set s;
	memset(&s, 0, sizeof s);
	char n[IG_M2M_MAX_NONCES + 1][33];
	for (int i = 0; i <= IG_M2M_MAX_NONCES; i++)
		ig_nonce_set_new(&s, n[i], 1000 + (uint64_t)i);
	cr_assert_eq(ig_nonce_set_count(&s), IG_M2M_MAX_NONCES);
	cr_assert(!ig_nonce_set_take(&s, n[0]), "the oldest must have been forgotten");
	cr_assert(ig_nonce_set_take(&s, n[IG_M2M_MAX_NONCES]));
	ig_nonce_set_expire(&s, 1001 + IG_M2M_NONCE_TTL_MS);   /* n[1] is exactly TTL old */
	cr_assert(!ig_nonce_set_take(&s, n[1]));
	cr_assert(ig_nonce_set_take(&s, n[2]));
}

/* ---- counters ----------------------------------------------------------------- */

Test(m2m_counters, names_and_format)
{
	for (int i = 0; i < IG_DROP_COUNT; i++)
		for (int j = i + 1; j < IG_DROP_COUNT; j++)
			cr_assert_str_neq(ig_m2m_drop_name((ig_m2m_drop)i), ig_m2m_drop_name((ig_m2m_drop)j));
	cr_assert_str_eq(ig_m2m_drop_name(IG_DROP_UNKNOWN_KEY), "unknown_key");
	cr_assert_str_eq(ig_m2m_drop_name(IG_DROP_TOO_OLD), "too_old");
	ig_m2m_counters c = {.sent = 5, .received = 4, .keys_received = 2};
	c.drops[IG_DROP_REPLAYED] = 3;
	c.drops[IG_DROP_TAMPERED] = 1;
	cr_assert_eq(ig_m2m_drops_total(&c), 4);
	char out[512];
	cr_assert_gt(ig_m2m_counters_format(out, sizeof out, &c), 0);
	cr_assert(strstr(out, "sent 5, received 4, dropped 4 (") == out, "%s", out);
	cr_assert(strstr(out, "replayed=3") && strstr(out, "tampered=1") && strstr(out, "unknown_key=0"), "%s", out);
	cr_assert_eq(ig_m2m_counters_format(out, 20, &c), IG_ERR_RANGE);
}

/* ---- receiving ----------------------------------------------------------------- */

#define TOPIC_TO_B "iotguard/c1/m2m/b/a"

/* A table for "a" (requester, direction 0) and for "b" (direction 1)
 * holding the same key. */
static void pair(ig_keytable *ta, ig_keytable *tb, ig_session_key *k)
{
	memset(ta, 0, sizeof *ta);
	memset(tb, 0, sizeof *tb);
	*k = make_key("b", 0, NOW_S + 3600, 0x77);
	cr_assert_not_null(ig_keytable_add(ta, k, NOW_S));
	ig_session_key kb = *k;
	kb.direction = 1;
	snprintf(kb.peer, sizeof kb.peer, "a");
	cr_assert_not_null(ig_keytable_add(tb, &kb, NOW_S));
}

static int seal_from_a(uint8_t *out, size_t cap, const ig_session_key *k, uint64_t counter, const char *topic)
{
	static const char pt[] = "{\"n\":1,\"t\":0}";
	int n = ig_m2m_seal(out, cap, k->suite, k->key, k->key_id, 0, counter, topic, (const uint8_t *)pt, sizeof pt - 1);
	cr_assert_gt(n, 0);
	return n;
}

static ig_m2m_drop receive_drop(ig_keytable *t, const char *topic, const char *from, const uint8_t *msg, size_t len,
                                uint64_t now_ms)
{
	uint8_t pt[256];
	ig_m2m_key *k;
	uint64_t counter;
	ig_m2m_drop why = IG_DROP_COUNT;
	int n = ig_m2m_receive(t, topic, from, msg, len, now_ms, pt, sizeof pt, &k, &counter, &why);
	return n >= 0 ? IG_DROP_COUNT : why;
}

Test(m2m_receive, genuine_message_once_then_replayed)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable ta, tb;
	ig_session_key k;
	pair(&ta, &tb, &k);
	uint8_t msg[256], pt[256];
	int n = seal_from_a(msg, sizeof msg, &k, 1, TOPIC_TO_B);
	ig_m2m_key *got;
	uint64_t counter;
	ig_m2m_drop why;
	int len = ig_m2m_receive(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS, pt, sizeof pt, &got, &counter, &why);
	cr_assert_eq(len, 13);
	cr_assert_eq(memcmp(pt, "{\"n\":1,\"t\":0}", 13), 0);
	cr_assert_eq(counter, 1);
	cr_assert_eq(got->received, 1);
	cr_assert_neq(got->first_use_ms, 0);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_REPLAYED);
	/* A's own message does not open at A: the direction is part of the nonce. */
	cr_assert_eq(receive_drop(&ta, TOPIC_TO_B, "b", msg, (size_t)n, NOW_MS), IG_DROP_TAMPERED);
}

Test(m2m_receive, wrong_topic_sender_key_or_time_is_dropped)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable ta, tb;
	ig_session_key k;
	pair(&ta, &tb, &k);
	uint8_t msg[256];
	int n = seal_from_a(msg, sizeof msg, &k, 5, TOPIC_TO_B);
	/* Moved to another sender's topic, or sealed for another topic. */
	cr_assert_eq(receive_drop(&tb, "iotguard/c1/m2m/b/c", "c", msg, (size_t)n, NOW_MS), IG_DROP_TAMPERED);
	int m = seal_from_a(msg, sizeof msg, &k, 6, "iotguard/c1/m2m/x/a");
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)m, NOW_MS), IG_DROP_TAMPERED);
	/* The failed attempts did not move the window: counter 5 still opens. */
	n = seal_from_a(msg, sizeof msg, &k, 5, TOPIC_TO_B);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_COUNT);
	/* Expired. */
	n = seal_from_a(msg, sizeof msg, &k, 7, TOPIC_TO_B);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, (NOW_S + 3600) * 1000), IG_DROP_EXPIRED);
	/* Unknown key. */
	ig_session_key stranger = make_key("b", 0, NOW_S + 3600, 0x99);
	n = seal_from_a(msg, sizeof msg, &stranger, 1, TOPIC_TO_B);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_UNKNOWN_KEY);
	/* Revoked. */
	n = seal_from_a(msg, sizeof msg, &k, 8, TOPIC_TO_B);
	ig_keytable_wipe(ig_keytable_find(&tb, k.key_id), IG_SLOT_REVOKED);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_REVOKED);
	/* Garbage. */
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, 5, NOW_MS), IG_DROP_MALFORMED);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", NULL, 0, NOW_MS), IG_DROP_MALFORMED);
}

Test(m2m_receive, far_behind_the_window_is_too_old)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable ta, tb;
	ig_session_key k;
	pair(&ta, &tb, &k);
	uint8_t msg[256];
	int n = seal_from_a(msg, sizeof msg, &k, 5000, TOPIC_TO_B);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_COUNT);
	n = seal_from_a(msg, sizeof msg, &k, 2, TOPIC_TO_B);
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_TOO_OLD);
	n = seal_from_a(msg, sizeof msg, &k, 4999, TOPIC_TO_B);   /* late but inside the window */
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_COUNT);
}

Test(m2m_receive, every_flipped_byte_is_dropped_and_never_accepted)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable ta, tb;
	ig_session_key k;
	pair(&ta, &tb, &k);
	uint8_t msg[256];
	int n = seal_from_a(msg, sizeof msg, &k, 9, TOPIC_TO_B);
	for (int i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			msg[i] ^= (uint8_t)(1u << bit);
			ig_m2m_drop why = receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS);
			cr_assert_neq(why, IG_DROP_COUNT, "byte %d bit %d accepted", i, bit);
			msg[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Truncations. */
	for (int len = 0; len < n; len++)
		cr_assert_neq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)len, NOW_MS), IG_DROP_COUNT, "len %d", len);
	/* And the genuine one still opens: nothing above moved the window. */
	cr_assert_eq(receive_drop(&tb, TOPIC_TO_B, "a", msg, (size_t)n, NOW_MS), IG_DROP_COUNT);
}

Test(m2m_receive, random_input_never_crashes_or_opens)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_keytable ta, tb;
	ig_session_key k;
	pair(&ta, &tb, &k);
	uint8_t msg[200];
	for (int i = 0; i < 3000; i++) {
		size_t len = randombytes_uniform(sizeof msg + 1);
		randombytes_buf(msg, len);
		if (len > 18 && (i & 1)) {      /* half of them with a known key id */
			msg[0] = 1;
			msg[1] = (uint8_t)k.suite;
			memcpy(msg + 2, k.key_id, 16);
		}
		cr_assert_neq(receive_drop(&tb, TOPIC_TO_B, "a", msg, len, NOW_MS), IG_DROP_COUNT);
	}
}

/* ---- accepting keys from the cluster head ------------------------------------------ */

struct ch_fixture {
	uint8_t ch_pk[32], ch_sk[64], dev_pk[32], dev_sk[64];
	ig_box_key ch_side, dev_side;
	ig_keytable t;
	ig_nonce_set nonces;
};

static void setup_ch(struct ch_fixture *f)
{
	memset(f, 0, sizeof *f);
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_eq(ig_keyfile_generate(f->ch_pk, f->ch_sk), IG_OK);
	cr_assert_eq(ig_keyfile_generate(f->dev_pk, f->dev_sk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_device(&f->ch_side, f->ch_sk, f->dev_pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&f->dev_side, f->dev_sk, f->ch_pk), IG_OK);
}

/* The inbox message the cluster head would send for k, boxed with bk. */
static cJSON *key_message(const ig_session_key *k, const ig_box_key *bk)
{
	uint8_t box[512], nonce[IG_KEYBOX_NONCE_BYTES];
	char id_hex[33], nonce_hex[49], b64[1024];
	int n = ig_keybox_seal(box, sizeof box, nonce, k, bk);
	cr_assert_gt(n, 0);
	ig_hex_encode(id_hex, k->key_id, 16);
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(b64, sizeof b64, box, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "session_key");
	cJSON_AddStringToObject(o, "key_id", id_hex);
	cJSON_AddStringToObject(o, "peer", k->peer);
	cJSON_AddStringToObject(o, "suite", ig_suite_name(k->suite));
	cJSON_AddNumberToObject(o, "expires_at", (double)k->expires_at);
	cJSON_AddNumberToObject(o, "direction", k->direction);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", b64);
	return o;
}

static ig_m2m_key *accept(struct ch_fixture *f, cJSON *msg, ig_error *err)
{
	ig_m2m_key *k = ig_m2m_accept_key(&f->t, &f->nonces, msg, &f->dev_side, "a", NOW_S, err);
	cJSON_Delete(msg);
	return k;
}

Test(m2m_accept, requested_key_with_our_nonce_once)
{
	struct ch_fixture f;
	setup_ch(&f);
	ig_session_key k = make_key("b", 0, NOW_S + 3600, 0x11);
	ig_nonce_set_new(&f.nonces, k.request_nonce, NOW_MS);
	ig_error err = {0};
	ig_m2m_key *s = accept(&f, key_message(&k, &f.ch_side), &err);
	cr_assert_not_null(s, "%s", err.msg);
	cr_assert_arr_eq(s->k.key, k.key, 32);
	cr_assert_eq(s->k.direction, 0);
	cr_assert_eq(ig_nonce_set_count(&f.nonces), 0, "the nonce is forgotten once used");
	/* The same delivery again: a duplicate, not a second key. */
	cr_assert_null(accept(&f, key_message(&k, &f.ch_side), &err));
	cr_assert_eq(err.code, IG_ERR_EXISTS);
	/* A new key answering the same (spent) nonce is refused. */
	ig_session_key k2 = k;
	memset(k2.key_id, 0x12, 16);
	cr_assert_null(accept(&f, key_message(&k2, &f.ch_side), &err));
	cr_assert(strstr(err.msg, "nonce") != NULL, "%s", err.msg);
	/* A peer-side key (direction 1) needs no nonce. */
	ig_session_key kb = make_key("c", 1, NOW_S + 3600, 0x13);
	cr_assert_not_null(accept(&f, key_message(&kb, &f.ch_side), &err), "%s", err.msg);
	cr_assert_eq(ig_keytable_live(&f.t), 2);
}

Test(m2m_accept, boxes_not_from_the_pinned_cluster_head_are_refused)
{
	struct ch_fixture f;
	setup_ch(&f);
	uint8_t other_pk[32], other_sk[64];
	ig_box_key impostor;
	cr_assert_eq(ig_keyfile_generate(other_pk, other_sk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_device(&impostor, other_sk, f.dev_pk), IG_OK);
	ig_session_key k = make_key("c", 1, NOW_S + 3600, 0x21);
	ig_error err = {0};
	cr_assert_null(accept(&f, key_message(&k, &impostor), &err));
	cr_assert_eq(err.code, IG_ERR_CRYPTO);

	/* Every byte of a genuine box, flipped. */
	cJSON *msg = key_message(&k, &f.ch_side);
	const char *b64 = cJSON_GetObjectItem(msg, "box")->valuestring;
	uint8_t box[512];
	size_t len;
	cr_assert_eq(sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	for (size_t i = 0; i < len; i++) {
		char tampered[1024];
		box[i] ^= 0x04;
		sodium_bin2base64(tampered, sizeof tampered, box, len, sodium_base64_VARIANT_ORIGINAL);
		box[i] ^= 0x04;
		cJSON_ReplaceItemInObject(msg, "box", cJSON_CreateString(tampered));
		cr_assert_null(ig_m2m_accept_key(&f.t, &f.nonces, msg, &f.dev_side, "a", NOW_S, &err), "byte %zu", i);
	}
	cJSON_Delete(msg);
	cr_assert_eq(ig_keytable_live(&f.t), 0);
}

Test(m2m_accept, cleartext_must_match_the_box)
{
	struct ch_fixture f;
	setup_ch(&f);
	ig_session_key k = make_key("c", 1, NOW_S + 3600, 0x31);
	ig_error err = {0};
	static const char *const fields[] = {"key_id", "peer", "suite", "expires_at", "direction"};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		cJSON *msg = key_message(&k, &f.ch_side);
		cJSON *v;
		if (strcmp(fields[i], "key_id") == 0)
			v = cJSON_CreateString("31313131313131313131313131313132");
		else if (strcmp(fields[i], "peer") == 0)
			v = cJSON_CreateString("d");
		else if (strcmp(fields[i], "suite") == 0)
			v = cJSON_CreateString(ig_suite_available(IG_SUITE_AES256GCM) ? "aes256gcm" : "nonsense");
		else if (strcmp(fields[i], "expires_at") == 0)
			v = cJSON_CreateNumber((double)(NOW_S + 7200));
		else
			v = cJSON_CreateNumber(0);
		cJSON_ReplaceItemInObject(msg, fields[i], v);
		cr_assert_null(accept(&f, msg, &err), "changed %s accepted", fields[i]);
	}
	/* Missing fields and wrong types. */
	static const char *const all[] = {"key_id", "peer", "suite", "expires_at", "direction", "box_nonce", "box"};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		cJSON *msg = key_message(&k, &f.ch_side);
		cJSON_DeleteItemFromObject(msg, all[i]);
		cr_assert_null(accept(&f, msg, &err), "missing %s accepted", all[i]);
		msg = key_message(&k, &f.ch_side);
		cJSON_ReplaceItemInObject(msg, all[i], cJSON_CreateBool(1));
		cr_assert_null(accept(&f, msg, &err), "boolean %s accepted", all[i]);
	}
	cr_assert_eq(ig_keytable_live(&f.t), 0);
	cr_assert_not_null(accept(&f, key_message(&k, &f.ch_side), &err), "%s", err.msg);
}

Test(m2m_accept, expired_or_self_keys_are_refused)
{
	struct ch_fixture f;
	setup_ch(&f);
	ig_error err = {0};
	ig_session_key k = make_key("c", 1, NOW_S, 0x41);
	cr_assert_null(accept(&f, key_message(&k, &f.ch_side), &err));
	cr_assert(strstr(err.msg, "expired") != NULL, "%s", err.msg);
	k = make_key("a", 1, NOW_S + 3600, 0x42);   /* "a" is ourselves */
	cr_assert_null(accept(&f, key_message(&k, &f.ch_side), &err));
	cr_assert_eq(ig_keytable_live(&f.t), 0);
}

/* ---- the m2m duty's answers from the cluster head --------------------------------- */

/* An m2m duty on a real agent that never connects: its key requests cannot
 * be sent, so the test makes one as maybe_request does and feeds the
 * cluster head's inbox answers to the duty. */
struct duty_fixture {
	char dir[64], key[128];
	ig_pin_state pin;
	ig_m2m_state m;
	ig_agent *a;
	char nonce[IG_M2M_NONCE_HEX + 1];
};

static void duty_setup(struct duty_fixture *f)
{
	tu_agent_key(f->dir, sizeof f->dir, f->key, sizeof f->key, "a");
	f->a = tu_agent_offline("c1", "a", f->key);
	memset(&f->pin, 0, sizeof f->pin);
	cr_assert_eq(ig_m2m_init(&f->m, "b", 0, &f->pin), IG_OK);
}

/* A session_key request for peer b is outstanding, unanswered for 30 s. */
static void duty_request(struct duty_fixture *f)
{
	ig_nonce_set_new(&f->m.nonces, f->nonce, ig_now_ms());
	f->m.next_request_us = ig_mono_us() + 30000000u;
}

static void duty_teardown(struct duty_fixture *f)
{
	ig_duty_m2m.on_stop(f->a, &f->m);
	ig_agent_free(f->a);
}

static bool feed_error(struct duty_fixture *f, const char *code, const char *request, const char *nonce)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", code);
	if (request)
		cJSON_AddStringToObject(o, "request", request);
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	cJSON_AddStringToObject(o, "message", "test");
	bool handled = ig_duty_m2m.on_inbox(f->a, &f->m, "error", o);
	cJSON_Delete(o);
	return handled;
}

Test(m2m_duty, errors_answering_other_requests_leave_the_key_request_alone)
{
	static struct duty_fixture f;
	duty_setup(&f);
	duty_request(&f);
	uint64_t wait = f.m.next_request_us;
	/* An attest refused while our key request is in flight... */
	cr_assert(!feed_error(&f, "malformed", "attest", NULL), "an attest's malformed is not ours");
	cr_assert(!feed_error(&f, "storage_failed", "attest", NULL));
	cr_assert(!feed_error(&f, "outcome_unknown", "attest", NULL));
	/* ... a bank request's error, with its own nonce ... */
	cr_assert(!feed_error(&f, "storage_failed", "mint", "0123456789abcdef0123456789abcdef"));
	/* ... a session_key error quoting a nonce that is not ours ... */
	cr_assert(!feed_error(&f, "peer_offline", "session_key", "fedcba9876543210fedcba9876543210"));
	/* ... and an error that names no request (an older cluster head). */
	cr_assert(!feed_error(&f, "internal", NULL, NULL));
	cr_assert_eq(ig_nonce_set_count(&f.m.nonces), 1, "the key request is still outstanding");
	cr_assert_eq(f.m.next_request_us, wait, "its retry is not moved");
	cr_assert_eq(f.m.request_failures, 0);

	/* The refusal of our request, by its nonce, is ours. */
	uint64_t before = ig_mono_us();
	cr_assert(feed_error(&f, "peer_offline", "session_key", f.nonce));
	uint64_t after = ig_mono_us();
	cr_assert_eq(ig_nonce_set_count(&f.m.nonces), 0);
	cr_assert_geq(f.m.next_request_us, before + 800000u);
	cr_assert_leq(f.m.next_request_us, after + 1200000u);
	cr_assert_eq(f.m.request_failures, 1);

	/* A session_key error without a nonce answers the oldest request. */
	duty_request(&f);
	cr_assert(feed_error(&f, "rate_limited", "session_key", NULL));
	cr_assert_eq(ig_nonce_set_count(&f.m.nonces), 0);
	duty_teardown(&f);
}

Test(m2m_duty, outcome_unknown_follows_the_retry_policy)
{
	static struct duty_fixture f;
	duty_setup(&f);
	duty_request(&f);
	/* Not the 30 s wait of an unanswered request: 1 s, +-20 %. */
	uint64_t before = ig_mono_us();
	cr_assert(feed_error(&f, "outcome_unknown", "session_key", f.nonce), "outcome_unknown answers our request");
	uint64_t after = ig_mono_us();
	cr_assert_eq(ig_nonce_set_count(&f.m.nonces), 0);
	cr_assert_geq(f.m.next_request_us, before + 800000u);
	cr_assert_leq(f.m.next_request_us, after + 1200000u);
	/* Doubling after each further refusal... */
	duty_request(&f);
	before = ig_mono_us();
	cr_assert(feed_error(&f, "outcome_unknown", "session_key", f.nonce));
	after = ig_mono_us();
	cr_assert_geq(f.m.next_request_us, before + 1600000u);
	cr_assert_leq(f.m.next_request_us, after + 2400000u);
	duty_request(&f);
	before = ig_mono_us();
	cr_assert(feed_error(&f, "storage_failed", "session_key", f.nonce));
	after = ig_mono_us();
	cr_assert_geq(f.m.next_request_us, before + 3200000u);
	cr_assert_leq(f.m.next_request_us, after + 4800000u);
	/* ... up to 60 s. */
	for (int i = 0; i < 10; i++) {
		duty_request(&f);
		cr_assert(feed_error(&f, "outcome_unknown", "session_key", f.nonce));
	}
	cr_assert_leq(f.m.next_request_us, ig_mono_us() + 72000000u);
	cr_assert_geq(f.m.next_request_us, ig_mono_us() + 47000000u);
	/* A new connection (the broker is back) ends a wait longer than 2 s. */
	ig_duty_m2m.on_connect(f.a, &f.m);
	cr_assert_leq(f.m.next_request_us, ig_mono_us());
	duty_teardown(&f);
}

Test(m2m_duty, operator_refusals_wait_the_longest_delay_at_once)
{
	static struct duty_fixture f;
	duty_setup(&f);
	duty_request(&f);
	uint64_t before = ig_mono_us();
	cr_assert(feed_error(&f, "not_allowed", "session_key", f.nonce));
	uint64_t after = ig_mono_us();
	cr_assert_geq(f.m.next_request_us, before + 48000000u);
	cr_assert_leq(f.m.next_request_us, after + 72000000u);
	duty_teardown(&f);
}

/* ---- the fallback to key rings (issue 10) ---------------------------------------- */

static void no_publish(void *ctx, const char *topic, const uint8_t *msg, size_t len)
{
	(void)ctx, (void)topic, (void)msg, (void)len;
}

/* A key-ring state without a ring (a fresh KEY.ring path): enough for the
 * m2m duty to decide to fall back; the kp side then says it has no ring. */
static ig_kpa *fixture_kpa(struct duty_fixture *f, char *ring_path, size_t cap)
{
	uint8_t file_key[32], pk[32];
	ig_kpa *k = NULL;
	ig_error err = {0};
	snprintf(ring_path, cap, "%s.ring", f->key);
	randombytes_buf(file_key, sizeof file_key);
	randombytes_buf(pk, sizeof pk);
	ig_kpa_config cfg = {.cluster = "c1", .self_id = "a", .ring_path = ring_path, .publish = no_publish};
	cr_assert_eq(ig_kpa_new(&k, &cfg, file_key, pk, &err), IG_OK, "%s", err.msg);
	return k;
}

Test(m2m_duty, a_refusal_naming_our_request_falls_back_to_key_rings)
{
	static struct duty_fixture f;
	static char ring_path[256];
	duty_setup(&f);
	ig_kpa *kp = fixture_kpa(&f, ring_path, sizeof ring_path);
	ig_m2m_use_kp(&f.m, kp, false, 0);
	cr_assert_eq(f.m.kp_fallback_s, IG_M2M_KP_FALLBACK_S, "default --kp-fallback-s");
	duty_request(&f);
	/* Someone else's refusal is not a reason to fall back ... */
	cr_assert(!feed_error(&f, "sealed", "mint", "0123456789abcdef0123456789abcdef"));
	cr_assert(!f.m.kp_fallback);
	/* ... the refusal of our session_key request is. */
	cr_assert(feed_error(&f, "sealed", "session_key", f.nonce));
	cr_assert(f.m.kp_fallback, "a sealed cluster head makes the pair use key rings");
	ig_duty_m2m.on_stop(f.a, &f.m);
	ig_kpa_free(kp);
	ig_agent_free(f.a);
}

Test(m2m_duty, a_revoked_refusal_does_not_fall_back)
{
	static struct duty_fixture f;
	static char ring_path[256];
	duty_setup(&f);
	ig_kpa *kp = fixture_kpa(&f, ring_path, sizeof ring_path);
	ig_m2m_use_kp(&f.m, kp, false, 0);
	duty_request(&f);
	/* The peer (or this device) is revoked: key rings must not route around it. */
	cr_assert(feed_error(&f, "revoked", "session_key", f.nonce));
	cr_assert(!f.m.kp_fallback, "a revoked peer must not get a key-ring session");
	/* ... nor later, when no key came within the fallback time. */
	f.m.first_request_us = 1;   /* asked long ago */
	ig_duty_m2m.on_tick(f.a, &f.m, ig_mono_us());
	cr_assert(!f.m.kp_fallback, "the fallback timer must not route around a revocation");
	ig_duty_m2m.on_stop(f.a, &f.m);
	ig_kpa_free(kp);
	ig_agent_free(f.a);
}

Test(m2m_duty, without_key_rings_a_refusal_only_retries)
{
	static struct duty_fixture f;
	duty_setup(&f);
	duty_request(&f);
	cr_assert(feed_error(&f, "not_allowed", "session_key", f.nonce));
	cr_assert(!f.m.kp_fallback, "nothing to fall back on");
	cr_assert(f.m.warned_no_kp);
	duty_teardown(&f);
}

Test(m2m_duty, no_key_within_the_fallback_time_falls_back)
{
	static struct duty_fixture f;
	static char ring_path[256];
	duty_setup(&f);
	ig_kpa *kp = fixture_kpa(&f, ring_path, sizeof ring_path);
	ig_m2m_use_kp(&f.m, kp, false, 3);
	f.m.next_request_us = ig_mono_us() + 30000000u;   /* a request is in flight */
	f.m.first_request_us = ig_mono_us() - 2000000u;   /* sent 2 s ago */
	ig_duty_m2m.on_tick(f.a, &f.m, ig_mono_us());
	cr_assert(!f.m.kp_fallback, "2 s < --kp-fallback-s 3");
	f.m.first_request_us = ig_mono_us() - 3100000u;
	ig_duty_m2m.on_tick(f.a, &f.m, ig_mono_us());
	cr_assert(f.m.kp_fallback, "3.1 s without a key");
	ig_duty_m2m.on_stop(f.a, &f.m);
	ig_kpa_free(kp);
	ig_agent_free(f.a);
}

Test(m2m_duty, offline_keys_never_ask_the_cluster_head)
{
	static struct duty_fixture f;
	static char ring_path[256];
	duty_setup(&f);
	ig_kpa *kp = fixture_kpa(&f, ring_path, sizeof ring_path);
	ig_m2m_use_kp(&f.m, kp, true, 0);
	ig_duty_m2m.on_tick(f.a, &f.m, ig_mono_us());
	cr_assert(f.m.kp_fallback);
	cr_assert_eq(f.m.first_request_us, 0, "no session_key request");
	cr_assert_eq(ig_nonce_set_count(&f.m.nonces), 0);
	ig_duty_m2m.on_stop(f.a, &f.m);
	ig_kpa_free(kp);
	ig_agent_free(f.a);
}

Test(m2m_duty, key_ring_versions_are_left_to_the_kp_duty)
{
	static struct duty_fixture f;
	duty_setup(&f);
	uint8_t msg[64];
	memset(msg, 0x5a, sizeof msg);
	for (uint8_t v = 2; v <= 4; v++) {
		msg[0] = v;
		cr_assert(!ig_duty_m2m.on_message(f.a, &f.m, "iotguard/c1/m2m/a/b", msg, sizeof msg),
		          "version %u belongs to the kp duty", v);
	}
	cr_assert_eq(ig_m2m_drops_total(&f.m.counters), 0, "and is not counted as an m2m drop");
	msg[0] = 1;
	cr_assert(ig_duty_m2m.on_message(f.a, &f.m, "iotguard/c1/m2m/a/b", msg, sizeof msg));
	msg[0] = 9;
	cr_assert(ig_duty_m2m.on_message(f.a, &f.m, "iotguard/c1/m2m/a/b", msg, sizeof msg));
	cr_assert_eq(ig_m2m_drops_total(&f.m.counters), 2, "version 1 and unknown versions stay m2m drops");
	duty_teardown(&f);
}

Test(m2m_duty, a_later_cluster_head_key_takes_over_again)
{
	static struct duty_fixture f;
	static char ring_path[256];
	uint8_t ch_pk[32], ch_sk[64];
	ig_box_key ch_side;
	duty_setup(&f);
	ig_kpa *kp = fixture_kpa(&f, ring_path, sizeof ring_path);
	ig_m2m_use_kp(&f.m, kp, false, 0);
	duty_request(&f);
	cr_assert(feed_error(&f, "sealed", "session_key", f.nonce));
	cr_assert(f.m.kp_fallback);

	/* The cluster head is back (unsealed) and deals a key with b. */
	cr_assert_eq(ig_keyfile_generate(ch_pk, ch_sk), IG_OK);
	f.pin.known = true;
	memcpy(f.pin.pk, ch_pk, sizeof ch_pk);
	cr_assert_eq(ig_keybox_key_for_device(&ch_side, ch_sk, ig_agent_public_key(f.a)), IG_OK);
	ig_session_key k = make_key("b", 1, ig_now_ms() / 1000u + 3600, 0x77);
	cJSON *msg = key_message(&k, &ch_side);
	cr_assert(ig_duty_m2m.on_inbox(f.a, &f.m, "session_key", msg));
	cJSON_Delete(msg);
	cr_assert_eq(ig_keytable_live(&f.m.keys), 1, "the key was accepted");
	cr_assert(!f.m.kp_fallback, "cluster-head keys are used again");

	/* With --offline-keys the key still opens b's messages, but sending stays on key rings. */
	ig_m2m_use_kp(&f.m, kp, true, 0);
	f.m.kp_fallback = true;
	k = make_key("b", 1, ig_now_ms() / 1000u + 3600, 0x78);
	msg = key_message(&k, &ch_side);
	cr_assert(ig_duty_m2m.on_inbox(f.a, &f.m, "session_key", msg));
	cJSON_Delete(msg);
	cr_assert_eq(ig_keytable_live(&f.m.keys), 2);
	cr_assert(f.m.kp_fallback);
	sodium_memzero(ch_sk, sizeof ch_sk);
	sodium_memzero(&ch_side, sizeof ch_side);
	ig_duty_m2m.on_stop(f.a, &f.m);
	ig_kpa_free(kp);
	ig_agent_free(f.a);
}
