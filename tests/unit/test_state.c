/*
 * test_state.c: ig_state_apply is the one meaning of a ledger for the
 * broker, the CLI's offline writer and `iotguard verify`, so its order, its
 * refusals and what it wipes are pinned here, and so is the CLI's use of it:
 * verify refuses a ledger whose chain is sound but which breaks a state rule.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ig_bank.h"
#include "ig_coins.h"
#include "ig_ledger.h"
#include "ig_state.h"
#include "svc_fixture.h"
#include "testutil.h"

static ig_state *st;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	st = ig_state_new();
	cr_assert_not_null(st);
}

static void teardown(void)
{
	ig_state_free(st);
}

/* Records that must apply go through fx_apply (svc_fixture.h, which fails
 * the test otherwise); this one reports the verdict. A refused record takes
 * no ledger index, so it borrows one far from fx_apply's. */
static int apply(uint16_t type, const uint8_t *body, size_t len, ig_error *err)
{
	static uint64_t borrowed = 1000;
	ig_record rec = {.index = borrowed, .ts_ms = 1767225600000ull, .type = type, .body = body,
	                 .body_len = (uint32_t)len};
	int rc = ig_state_apply(st, &rec, err);
	if (rc == IG_OK)
		borrowed++;
	return rc;
}

static void enroll(const char *id, ig_role role, uint8_t key_first)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, key_first);
	fx_enroll(st, id, role, pk);
}

static int revoke_id(const char *id, ig_error *err)
{
	uint8_t body[512];
	return apply(IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, id, "admin1"), err);
}

static int credit(const char *id, uint64_t amount, ig_error *err)
{
	uint8_t body[256];
	ig_credit_rec r = {.amount = amount};
	snprintf(r.id, sizeof r.id, "%s", id);
	snprintf(r.by, sizeof r.by, "admin1");
	int n = ig_bank_credit_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	return apply(IG_REC_CREDIT, body, (size_t)n, err);
}

static int mint(const char *owner, uint32_t count, uint8_t first, ig_error *err)
{
	static uint8_t body[4096];
	static ig_mint_rec r;
	memset(&r, 0, sizeof r);
	snprintf(r.owner, sizeof r.owner, "%s", owner);
	r.expires_at = 4000000000ull;
	r.count = count;
	for (uint32_t i = 0; i < count; i++)
		tu_seq_bytes(r.hashes[i], 32, (uint8_t)(first + i));
	int n = ig_bank_mint_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	return apply(IG_REC_COIN_MINT, body, (size_t)n, err);
}

static int redeem(uint8_t first, const char *collector, ig_error *err)
{
	uint8_t body[256];
	ig_redeem_rec r;
	memset(&r, 0, sizeof r);
	tu_seq_bytes(r.coin_hash, 32, first);
	snprintf(r.analyst, sizeof r.analyst, "an1");
	snprintf(r.collector, sizeof r.collector, "%s", collector);
	int n = ig_bank_redeem_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	return apply(IG_REC_COIN_REDEEM, body, (size_t)n, err);
}

Test(state, applies_identities_coins_and_reads_them_back, .init = setup, .fini = teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("an1", IG_ROLE_ANALYST, 2);
	ig_error err = {0};
	cr_assert_eq(credit("dev1", 10, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(mint("dev1", 3, 0x40, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(redeem(0x40, "dev1", &err), IG_OK, "%s", err.msg);

	cr_expect_eq(ig_coins_balance(ig_state_coins(st), "dev1"), 7);
	cr_expect_eq(ig_coins_outstanding(ig_state_coins(st), "dev1"), 2);
	cr_expect_not_null(ig_state_active(st, "dev1", IG_ROLE_DEVICE));
	cr_expect_null(ig_state_active(st, "dev1", IG_ROLE_ANALYST), "the role must match");
	const ig_identity *an = ig_state_identity(st, "an1");
	cr_assert_not_null(an);
	cr_expect_eq(an->enrolled_index, 2);
	cr_expect_null(ig_state_identity(st, "nobody"));
}

static bool collect(void *ctx, const ig_identity *idn)
{
	char *out = ctx;
	strcat(out, idn->id);
	strcat(out, ",");
	return strcmp(idn->id, "b") != 0;   /* stops after b */
}

Test(state, identity_foreach_in_enrolment_order_and_stops, .init = setup, .fini = teardown)
{
	enroll("c", IG_ROLE_DEVICE, 1);
	enroll("a", IG_ROLE_DEVICE, 2);
	enroll("b", IG_ROLE_DEVICE, 3);
	enroll("d", IG_ROLE_DEVICE, 4);
	char seen[64] = "";
	ig_state_identity_foreach(st, collect, seen);
	cr_expect_str_eq(seen, "c,a,b,");
}

Test(state, body_check_runs_first_and_changes_nothing, .init = setup, .fini = teardown)
{
	uint8_t pk[32], sk[64], body[512];
	tu_seed_keypair(pk, sk, 1);
	size_t n = tu_enroll_body(body, sizeof body, "dev1", IG_ROLE_DEVICE, pk, "admin1");
	ig_error err = {0};
	/* Cut inside a field: the spec engine refuses it before any index sees it. */
	cr_assert_neq(apply(IG_REC_ENROLL, body, n - 3, &err), IG_OK);
	cr_expect_neq(err.msg[0], '\0', "the error says what is wrong");
	cr_expect_null(ig_state_identity(st, "dev1"));
}

Test(state, identities_before_coins_and_a_refusal_leaves_the_rest, .init = setup, .fini = teardown)
{
	/* Credit names no identity rule (the coin index does not know ids), so
	 * a ledger could credit a never-enrolled id; its revoke is refused by
	 * the registry, which runs before the coins: the balance survives. */
	ig_error err = {0};
	cr_assert_eq(credit("ghost", 5, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(revoke_id("ghost", &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "never enrolled"), "%s", err.msg);
	cr_expect_eq(ig_coins_balance(ig_state_coins(st), "ghost"), 5, "the coin rule did not run");
}

Test(state, refuses_every_state_rule_break, .init = setup, .fini = teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	ig_error err = {0};

	/* Identities. */
	uint8_t pk[32], sk[64], body[512];
	tu_seed_keypair(pk, sk, 9);
	size_t n = tu_enroll_body(body, sizeof body, "dev1", IG_ROLE_DEVICE, pk, "admin1");
	cr_expect_eq(apply(IG_REC_ENROLL, body, n, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "already active"), "%s", err.msg);
	const ig_identity *d = ig_state_identity(st, "dev1");
	cr_assert_not_null(d);
	cr_expect_eq(d->enrolled_index, 1, "the old enrolment stands");

	memset(&err, 0, sizeof err);
	cr_expect_eq(revoke_id("nobody", &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "never enrolled"), "%s", err.msg);

	cr_assert_eq(revoke_id("dev1", &err), IG_OK, "%s", err.msg);
	memset(&err, 0, sizeof err);
	cr_expect_eq(revoke_id("dev1", &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "already revoked"), "%s", err.msg);

	/* Coins. */
	enroll("dev2", IG_ROLE_DEVICE, 2);
	cr_assert_eq(credit("dev2", 2, &err), IG_OK, "%s", err.msg);
	memset(&err, 0, sizeof err);
	cr_expect_neq(mint("dev2", 3, 0x10, &err), IG_OK, "3 coins on a credit of 2 is an overdraft");
	cr_expect_neq(err.msg[0], '\0');
	cr_expect_eq(ig_coins_outstanding(ig_state_coins(st), "dev2"), 0);
	memset(&err, 0, sizeof err);
	cr_expect_neq(redeem(0x77, "dev2", &err), IG_OK, "a redeem of a coin never minted");
	cr_expect_neq(err.msg[0], '\0');
}

Test(state, enrol_and_revoke_wipe_the_ids_device_memory, .init = setup, .fini = teardown)
{
	enroll("dev1", IG_ROLE_DEVICE, 1);
	enroll("dev2", IG_ROLE_DEVICE, 2);
	ig_device *d1 = ig_state_device(st, "dev1");
	ig_device *d2 = ig_state_device(st, "dev2");
	cr_assert(d1 && d2);
	d1->entropy_last_seq = 42;
	d1->key_requests = 7;
	d1->attest = IG_ATTEST_ALLOWED;
	d2->entropy_last_seq = 9;

	ig_error err = {0};
	cr_assert_eq(revoke_id("dev1", &err), IG_OK, "%s", err.msg);
	const ig_device *after = ig_state_device_find(st, "dev1");
	cr_assert_not_null(after);
	cr_expect(tu_all_zero(after, sizeof *after), "a revocation wipes the id's memory");
	cr_expect_eq(ig_state_device_find(st, "dev2")->entropy_last_seq, 9, "other ids keep theirs");

	/* Memory gathered between the revocation and a re-enrolment (it cannot
	 * be, but a new key must not inherit it even so). */
	ig_state_device(st, "dev1")->entropy_last_seq = 5;
	enroll("dev1", IG_ROLE_DEVICE, 3);
	after = ig_state_device_find(st, "dev1");
	cr_expect(tu_all_zero(after, sizeof *after), "an enrolment wipes the id's memory");
	cr_expect_eq(ig_state_device_count(st), 2);
}

/* An identity as the registry holds it, for id with key pk (the flexible
 * id makes it a heap object). */
static ig_identity *identity_with(const char *id, const uint8_t pk[32])
{
	size_t len = strlen(id);
	ig_identity *idn = calloc(1, sizeof *idn + len + 1);
	cr_assert_not_null(idn);
	memcpy(idn->pk, pk, 32);
	idn->id_len = (uint8_t)len;
	memcpy(idn->id, id, len + 1);
	idn->status = IG_ID_ACTIVE;
	idn->role = IG_ROLE_DEVICE;
	return idn;
}

Test(state, box_key_is_cached_and_rederived_when_the_key_changes, .init = setup, .fini = teardown)
{
	uint8_t ch_pk[32], ch_sk[64], pk_a[32], sk_a[64], pk_b[32], sk_b[64];
	tu_seed_keypair(ch_pk, ch_sk, 0);
	tu_seed_keypair(pk_a, sk_a, 1);
	tu_seed_keypair(pk_b, sk_b, 3);
	enroll("dev1", IG_ROLE_DEVICE, 1);
	const ig_identity *who = ig_state_identity(st, "dev1");
	cr_assert_not_null(who);

	ig_box_key want_a, want_b;
	cr_assert_eq(ig_keybox_key_for_device(&want_a, ch_sk, pk_a), IG_OK);
	cr_assert_eq(ig_keybox_key_for_device(&want_b, ch_sk, pk_b), IG_OK);
	cr_assert_neq(memcmp(&want_a, &want_b, sizeof want_a), 0);

	const ig_box_key *k = ig_state_box_key(st, who, ch_sk);
	cr_assert_not_null(k);
	cr_expect_eq(memcmp(k, &want_a, sizeof want_a), 0);

	/* Cached: a second call derives nothing (a planted value comes back). */
	ig_device *d = ig_state_device(st, "dev1");
	memset(d->box.k, 0xAB, sizeof d->box.k);
	k = ig_state_box_key(st, who, ch_sk);
	cr_expect_eq(k->k[0], 0xAB, "the cached key is used while the device key is the same");

	/* The id's key changed under the cache (no wipe in between): derived
	 * again for the new key. */
	ig_identity *moved = identity_with("dev1", pk_b);
	k = ig_state_box_key(st, moved, ch_sk);
	cr_assert_not_null(k);
	cr_expect_eq(memcmp(k, &want_b, sizeof want_b), 0);
	cr_expect_eq(memcmp(ig_state_device_find(st, "dev1")->box_pk, pk_b, 32), 0);
	free(moved);

	/* Revoked and enrolled again with key B: the wipe drops the cache and
	 * the next call derives B's key. */
	ig_error err = {0};
	cr_assert_eq(revoke_id("dev1", &err), IG_OK, "%s", err.msg);
	cr_expect_not(ig_state_device_find(st, "dev1")->box_ready);
	enroll("dev1", IG_ROLE_DEVICE, 3);
	who = ig_state_identity(st, "dev1");
	k = ig_state_box_key(st, who, ch_sk);
	cr_assert_not_null(k);
	cr_expect_eq(memcmp(k, &want_b, sizeof want_b), 0);
}

/* ---- the CLI rebuilds state through ig_state ---------------------------- */

/* A ledger with a sound chain and checkpoint whose record 1 is `type` with
 * body: the lib writer appends anything, only replays judge meaning. */
static const char *ledger_with(const char *tag, uint16_t type, const uint8_t *body, size_t len)
{
	static char dir[512];
	snprintf(dir, sizeof dir, "%s/ledger", tu_scratch_dir(tag));
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(dir, "c1", pk, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, dir, &opts, &err), IG_OK, "%s", err.msg);
	ig_record rec;
	cr_assert_eq(ig_ledger_append(l, type, body, len, &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.index, 1);
	ig_ledger_close(l);
	/* The frames, chain and checkpoint are sound. */
	ig_verify_result res;
	cr_assert_eq(ig_ledger_verify(dir, NULL, NULL, NULL, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 2);
	return dir;
}

/* Runs the iotguard CLI (its path comes from the build) with args; returns
 * its exit status and its stderr in err_out. */
static int run_cli(char *err_out, size_t cap, const char *args)
{
	const char *cli = getenv("IG_IOTGUARD");
	cr_assert_not_null(cli, "IG_IOTGUARD must name the iotguard binary (set by tests/meson.build)");
	char errfile[600], cmd[2048];
	snprintf(errfile, sizeof errfile, "%s/stderr", tu_scratch_dir("cli"));
	snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>'%s'", cli, args, errfile);
	int status = system(cmd);
	cr_assert(status != -1 && WIFEXITED(status), "could not run %s", cmd);
	char *text = tu_read_file(errfile, NULL);
	snprintf(err_out, cap, "%s", text);
	free(text);
	return WEXITSTATUS(status);
}

Test(state_cli, verify_refuses_a_revoke_of_an_id_never_enrolled, .init = setup, .fini = teardown)
{
	uint8_t body[512];
	const char *dir = ledger_with("revoke", IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, "ghost", "x"));
	char args[700], err[4096];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_expect_eq(run_cli(err, sizeof err, args), 2, "verify must refuse it: %s", err);
	cr_expect(strstr(err, "ledger record 1") && strstr(err, "never enrolled"), "%s", err);

	/* The offline reader and writer refuse the same ledger. */
	snprintf(args, sizeof args, "list --ledger '%s'", dir);
	cr_expect_neq(run_cli(err, sizeof err, args), 0, "list must refuse it");
	cr_expect(strstr(err, "never enrolled"), "%s", err);
}

Test(state_cli, verify_refuses_a_redeem_of_an_unknown_coin, .init = setup, .fini = teardown)
{
	uint8_t body[256];
	ig_redeem_rec r;
	memset(&r, 0, sizeof r);
	tu_seq_bytes(r.coin_hash, 32, 0x55);
	snprintf(r.analyst, sizeof r.analyst, "an1");
	snprintf(r.collector, sizeof r.collector, "dev1");
	int n = ig_bank_redeem_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	const char *dir = ledger_with("redeem", IG_REC_COIN_REDEEM, body, (size_t)n);
	char args[700], err[4096];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_expect_eq(run_cli(err, sizeof err, args), 2, "verify must refuse it: %s", err);
	cr_expect(strstr(err, "ledger record 1"), "%s", err);

	/* An offline change does not append to it either. */
	snprintf(args, sizeof args, "credit --ledger '%s' --id dev1 --amount 1", dir);
	cr_expect_neq(run_cli(err, sizeof err, args), 0, "credit must refuse to write on it");
	cr_expect(strstr(err, "ledger record 1"), "%s", err);
}

/* The rules as separate passes: body check, registry, join codes, coins.
 * ig_state_apply decodes an enroll once and hands the decoded body on; it
 * must still give every record the verdict and the message of these passes
 * (run here on the parts of a second state). */
static int apply_in_passes(ig_state *ref, const ig_record *rec, ig_error *err)
{
	int rc = ig_record_body_check(rec, err);
	if (rc == IG_OK)
		rc = ig_registry_apply(ig_state_registry(ref), rec, err);
	if (rc == IG_OK)
		rc = ig_joincodes_apply(ig_state_joincodes(ref), rec, err);
	if (rc == IG_OK)
		rc = ig_coins_apply(ig_state_coins(ref), rec, err);
	return rc;
}

Test(state, enroll_decoded_once_gives_the_verdicts_and_messages_of_the_passes, .init = setup, .fini = teardown)
{
	ig_state *ref = ig_state_new();
	cr_assert_not_null(ref);
	uint8_t bodies[16][512];
	size_t lens[16];
	uint16_t types[16];
	size_t n = 0;
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 1);

	types[n] = IG_REC_ENROLL; /* applies */
	lens[n] = tu_enroll_body(bodies[n], sizeof bodies[n], "dev1", IG_ROLE_DEVICE, pk, "admin1");
	n++;
	types[n] = IG_REC_ENROLL; /* already active */
	lens[n] = tu_enroll_body(bodies[n], sizeof bodies[n], "dev1", IG_ROLE_DEVICE, pk, "admin1");
	n++;
	types[n] = IG_REC_ENROLL; /* cut inside a field */
	lens[n] = tu_enroll_body(bodies[n], sizeof bodies[n], "dev2", IG_ROLE_DEVICE, pk, "admin1") - 3;
	n++;
	types[n] = IG_REC_ENROLL; /* a field twice */
	lens[n] = tu_enroll_body(bodies[n], sizeof bodies[n], "dev3", IG_ROLE_DEVICE, pk, "admin1");
	{
		size_t pos = lens[n];
		cr_assert_eq(ig_record_tlv_put(bodies[n], sizeof bodies[n], &pos, 1, "dev3", 4), IG_OK);
		lens[n] = pos;
	}
	n++;
	{
		/* Role byte out of range, id with a bad character, no id at all,
		 * and a join code nobody issued (the join-code pass refuses it). */
		ig_enroll e = {0};
		snprintf(e.id, sizeof e.id, "dev4");
		snprintf(e.by, sizeof e.by, "admin1");
		e.role = IG_ROLE_DEVICE;
		memcpy(e.pk, pk, 32);
		uint8_t raw[512];
		int len = ig_record_enroll_encode(raw, sizeof raw, &e);
		cr_assert_gt(len, 0);
		ig_tlv_iter it;
		uint8_t tag;
		const uint8_t *v;
		uint16_t vlen;
		for (int variant = 0; variant < 3; variant++) {
			size_t pos = 0;
			ig_record_tlv_iter_init(&it, raw, (size_t)len);
			while (ig_record_tlv_next(&it, &tag, &v, &vlen) == 1) {
				if (variant == 0 && tag == 2) {
					uint8_t bad_role = 9;
					cr_assert_eq(ig_record_tlv_put(bodies[n], sizeof bodies[n], &pos, tag, &bad_role, 1), IG_OK);
				} else if (variant == 1 && tag == 1) {
					cr_assert_eq(ig_record_tlv_put(bodies[n], sizeof bodies[n], &pos, tag, "de v4", 5), IG_OK);
				} else if (!(variant == 2 && tag == 1)) {
					cr_assert_eq(ig_record_tlv_put(bodies[n], sizeof bodies[n], &pos, tag, v, vlen), IG_OK);
				}
			}
			types[n] = IG_REC_ENROLL;
			lens[n++] = pos;
		}
		e.has_join_code = true;
		tu_seq_bytes(e.join_code, 8, 0x40);
		snprintf(e.id, sizeof e.id, "dev5");
		len = ig_record_enroll_encode(bodies[n], sizeof bodies[n], &e);
		cr_assert_gt(len, 0);
		types[n] = IG_REC_ENROLL;
		lens[n++] = (size_t)len;
	}
	types[n] = IG_REC_REVOKE; /* dev1 revoked, then a join code claims it */
	lens[n] = tu_revoke_body(bodies[n], sizeof bodies[n], "dev1", "admin1");
	n++;
	{
		ig_enroll e = {0};
		snprintf(e.id, sizeof e.id, "dev1");
		snprintf(e.by, sizeof e.by, "join:4041424344454647");
		e.role = IG_ROLE_DEVICE;
		memcpy(e.pk, pk, 32);
		e.has_join_code = true;
		tu_seq_bytes(e.join_code, 8, 0x40);
		int len = ig_record_enroll_encode(bodies[n], sizeof bodies[n], &e);
		cr_assert_gt(len, 0);
		types[n] = IG_REC_ENROLL;
		lens[n++] = (size_t)len;
	}
	types[n] = IG_REC_ENROLL; /* an admin re-enrols the revoked id */
	lens[n] = tu_enroll_body(bodies[n], sizeof bodies[n], "dev1", IG_ROLE_DEVICE, pk, "admin1");
	n++;

	int refused = 0;
	uint64_t index = 1;
	for (size_t i = 0; i < n; i++) {
		ig_record rec = {.index = index, .ts_ms = 1767225600000ull, .type = types[i], .body = bodies[i],
		                 .body_len = (uint32_t)lens[i]};
		ig_error got = {0}, want = {0};
		int rc_want = apply_in_passes(ref, &rec, &want);
		int rc_got = ig_state_apply(st, &rec, &got);
		cr_assert_eq(rc_got, rc_want, "record %zu: %d, the passes say %d (%s)", i, rc_got, rc_want, want.msg);
		cr_assert_eq(got.code, want.code, "record %zu", i);
		cr_assert_str_eq(got.msg, want.msg, "record %zu", i);
		if (rc_want == IG_OK)
			index++;
		else
			refused++;
	}
	cr_assert_eq(refused, 8, "the list holds 8 bad records, %d refused", refused);
	const ig_identity *a = ig_state_identity(st, "dev1"), *b = ig_state_identity(ref, "dev1");
	cr_assert(a && b);
	cr_assert_eq(a->status, IG_ID_ACTIVE);
	cr_assert_eq(a->enrolled_index, b->enrolled_index);
	cr_assert_eq(a->revoked_index, b->revoked_index);
	/* A refusal by a later pass: the passes one after the other leave what
	 * the earlier ones did (dev5 enrolled, its unknown code then refused),
	 * ig_state_apply changes nothing (a shared ledger re-checks records and
	 * drops the refused ones: test_state_conflict.c). */
	const ig_identity *c = ig_state_identity(st, "dev5"), *d = ig_state_identity(ref, "dev5");
	cr_assert_not_null(d, "the registry's pass enrolled dev5 before the code's pass refused it");
	cr_assert_null(c, "ig_state_apply refused dev5's record but enrolled it");
	for (const char *const *id = (const char *const[]){"dev2", "dev3", "dev4", NULL}; *id; id++)
		cr_assert_null(ig_state_identity(st, *id), "%s was refused by the body check", *id);
	ig_state_free(ref);
}
