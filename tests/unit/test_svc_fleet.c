/*
 * test_svc_fleet.c: the fleet listing without a broker (docs/PROTOCOL.md,
 * "Fleet listing"): what an entry says (zone only when set, a wallet only
 * for devices, revoked ones as revoked, no public key), paging in the
 * registry's order, the limits, who may ask, the per-identity rate, the
 * parts a page is sent in (each at most 3,800 bytes, at most 64, in order,
 * each with its own offset; an empty listing is one empty part), and the
 * stats.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_svc_fleet.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW_MS 1767225600000ull

static ig_state *st;
static ig_svc_fleet *svc;
static uint8_t pk[32];

static void enroll_zone(const char *id, ig_role role, const char *zone)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "%s", id);
	e.role = role;
	memcpy(e.pk, pk, sizeof e.pk);
	snprintf(e.by, sizeof e.by, "admin1");
	e.has_zone = zone != NULL;
	if (zone)
		snprintf(e.zone, sizeof e.zone, "%s", zone);
	uint8_t body[512];
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_gt(n, 0);
	fx_apply(st, IG_REC_ENROLL, body, (size_t)n);
}

static void credit(const char *id, uint64_t amount)
{
	ig_credit_rec c = {.amount = amount};
	snprintf(c.id, sizeof c.id, "%s", id);
	snprintf(c.by, sizeof c.by, "admin1");
	uint8_t body[256];
	int n = ig_bank_credit_encode(body, sizeof body, &c);
	cr_assert_gt(n, 0);
	fx_apply(st, IG_REC_CREDIT, body, (size_t)n);
}

static void mint(const char *id, uint32_t count)
{
	static ig_mint_rec m;   /* 2 KiB of hashes */
	memset(&m, 0, sizeof m);
	snprintf(m.owner, sizeof m.owner, "%s", id);
	m.expires_at = NOW_MS / 1000 + 3600;
	m.count = count;
	tu_rand_bytes(&m.hashes[0][0], sizeof m.hashes);
	static uint8_t body[4096];
	int n = ig_bank_mint_encode(body, sizeof body, &m);
	cr_assert_gt(n, 0);
	fx_apply(st, IG_REC_COIN_MINT, body, (size_t)n);
}

/* "connected" for the view: dev1 and mon1 are. */
static bool connected(void *ctx, const char *id)
{
	(void)ctx;
	return strcmp(id, "dev1") == 0 || strcmp(id, "mon1") == 0;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(pk, (uint8_t[64]){0}, 0x20);
	st = ig_state_new();
	cr_assert_not_null(st);
	svc = ig_svc_fleet_new(&(ig_svc_fleet_config){.requests_per_minute = IG_SVC_FLEET_RATE_DEFAULT});
	cr_assert_not_null(svc);
	fx_enroll(st, "admin1", IG_ROLE_ADMIN, pk);
	fx_enroll(st, "mon1", IG_ROLE_MONITOR, pk);
	enroll_zone("dev1", IG_ROLE_DEVICE, "b2");
	fx_enroll(st, "dev2", IG_ROLE_DEVICE, pk);
	fx_enroll(st, "an1", IG_ROLE_ANALYST, pk);
	fx_enroll(st, "mon2", IG_ROLE_MONITOR, pk);
	fx_revoke(st, "mon2");
	credit("dev1", 43);
	mint("dev1", 3);
}

static void teardown(void)
{
	ig_svc_fleet_free(svc);
	ig_state_free(st);
	svc = NULL;
	st = NULL;
}

TestSuite(svc_fleet, .init = setup, .fini = teardown);

static void ask(ig_decision *d, const char *id, const char *json, uint64_t now_ms)
{
	cJSON *req = cJSON_Parse(json);
	cr_assert_not_null(req, "test JSON: %s", json);
	ig_svc_fleet_view view = {.st = st, .height = 1234, .connected = connected};
	memset(d, 0, sizeof *d);
	ig_svc_fleet_request(d, svc, id, req, &view, now_ms);
	cJSON_Delete(req);
}

/* What the last reply() assembled from: its parts. */
static int n_parts;

/* The page d decided (its parts, replies to "to" on d's chain, in order),
 * checked part by part as a client assembles them: every part a complete
 * fleet object of at most IG_SVC_FLEET_PART_MAX bytes, part 0..parts-1 in
 * order, the same nonce, total and height, each offset where the previous
 * part ended, no part empty unless it is the only one. Returns the first
 * part's head with every part's identities; d is cleared. */
static cJSON *reply(ig_decision *d, const char *to)
{
	cr_assert_eq(d->kind, IG_DECISION_REPLY, "expected a reply, got kind %d (%s: %s)", d->kind,
	             d->error ? d->error : "", d->message);
	cJSON *page = NULL, *all = cJSON_CreateArray();
	int n = 0;
	double next_offset = 0;
	for (ig_decision *x = d; x; x = x->next) {
		cr_assert_eq(x->kind, IG_DECISION_REPLY, "only replies in the chain");
		for (size_t r = 0; r < x->n_replies; r++, n++) {
			cr_assert_str_eq(x->replies[r].to, to);
			cJSON *o = x->replies[r].body;
			char *text = cJSON_PrintUnformatted(o);
			size_t len = strlen(text);
			free(text);
			cr_assert_leq(len, IG_SVC_FLEET_PART_MAX, "part %d is %zu bytes", n, len);
			cr_assert_str_eq(tu_json_str(o, "type"), "fleet");
			cr_assert_eq(tu_json_num(o, "part"), n, "parts in order");
			cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "identities");
			cr_assert(cJSON_IsArray(ids));
			if (n == 0) {
				page = cJSON_Duplicate(o, true);
				cJSON_DeleteItemFromObjectCaseSensitive(page, "part");
				cJSON_DeleteItemFromObjectCaseSensitive(page, "identities");
				next_offset = tu_json_num(o, "offset");
			} else {
				cr_assert_str_eq(tu_json_str(o, "nonce"), tu_json_str(page, "nonce"));
				cr_assert_eq(tu_json_num(o, "total"), tu_json_num(page, "total"));
				cr_assert_eq(tu_json_num(o, "height"), tu_json_num(page, "height"));
				cr_assert_eq(tu_json_num(o, "parts"), tu_json_num(page, "parts"));
			}
			cr_assert_eq(tu_json_num(o, "offset"), next_offset, "part %d starts where part %d ended", n, n - 1);
			int k = cJSON_GetArraySize(ids);
			next_offset += k;
			for (int i = 0; i < k; i++)
				cJSON_AddItemToArray(all, cJSON_Duplicate(cJSON_GetArrayItem(ids, i), true));
		}
	}
	cr_assert_gt(n, 0);
	cr_assert_leq(n, IG_SVC_FLEET_PARTS_MAX);
	cr_assert_eq(tu_json_num(page, "parts"), n, "\"parts\" counts the parts sent");
	if (n > 1)
		cr_assert_gt(cJSON_GetArraySize(all), 0);
	ig_decision_clear(d);
	cJSON_AddItemToObject(page, "identities", all);
	n_parts = n;
	return page;
}

static const cJSON *entry(const cJSON *o, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "identities"), i);
}

static int entries(const cJSON *o)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "identities"));
}

static bool has(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name) != NULL;
}

Test(svc_fleet, a_monitor_sees_every_identity_with_role_zone_status_and_wallet)
{
	ig_decision d;
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"f-1\"}", NOW_MS);
	cJSON *o = reply(&d, "mon1");
	cr_expect_str_eq(tu_json_str(o, "nonce"), "f-1");
	cr_expect_eq(tu_json_num(o, "total"), 6);
	cr_expect_eq(tu_json_num(o, "offset"), 0);
	cr_expect_eq(tu_json_num(o, "height"), 1234, "the height the glue says the state reflects");
	cr_assert_eq(entries(o), 6);

	/* The registry's order: enrolment order. */
	const char *order[] = {"admin1", "mon1", "dev1", "dev2", "an1", "mon2"};
	for (int i = 0; i < 6; i++) {
		cr_expect_str_eq(tu_json_str(entry(o, i), "id"), order[i]);
		cr_expect_not(has(entry(o, i), "pubkey"), "no public keys: the listing stays small");
		cr_expect_eq(tu_json_num(entry(o, i), "enrolled_ts"), 1767225600000.0);
	}
	const cJSON *dev1 = entry(o, 2), *dev2 = entry(o, 3), *mon2 = entry(o, 5), *an1 = entry(o, 4);
	cr_expect_str_eq(tu_json_str(dev1, "role"), "device");
	cr_expect_str_eq(tu_json_str(dev1, "status"), "active");
	cr_expect_str_eq(tu_json_str(dev1, "zone"), "b2");
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dev1, "connected")));
	cr_expect_eq(tu_json_num(dev1, "balance"), 40, "43 credited, 3 minted");
	cr_expect_eq(tu_json_num(dev1, "outstanding"), 3);
	cr_expect_not(has(dev2, "zone"), "a zone only when the enrolment named one");
	cr_expect_eq(tu_json_num(dev2, "balance"), 0);
	cr_expect_eq(tu_json_num(dev2, "outstanding"), 0);
	cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(dev2, "connected")));
	cr_expect_not(has(an1, "balance") || has(an1, "outstanding"), "a wallet only for devices");
	cr_expect_str_eq(tu_json_str(mon2, "status"), "revoked");
	cr_expect_str_eq(tu_json_str(mon2, "role"), "monitor");
	cJSON_Delete(o);

	/* An admin may ask too. */
	ask(&d, "admin1", "{\"type\":\"fleet\",\"nonce\":\"a\"}", NOW_MS);
	o = reply(&d, "admin1");
	cr_expect_eq(entries(o), 6);
	cJSON_Delete(o);
}

Test(svc_fleet, pages_follow_offset_and_limit)
{
	ig_decision d;
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"p\",\"offset\":2,\"limit\":3}", NOW_MS);
	cJSON *o = reply(&d, "mon1");
	cr_expect_eq(tu_json_num(o, "total"), 6);
	cr_expect_eq(tu_json_num(o, "offset"), 2);
	cr_assert_eq(entries(o), 3);
	cr_expect_str_eq(tu_json_str(entry(o, 0), "id"), "dev1");
	cr_expect_str_eq(tu_json_str(entry(o, 2), "id"), "an1");
	cJSON_Delete(o);

	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"p\",\"offset\":5,\"limit\":1000}", NOW_MS);
	o = reply(&d, "mon1");
	cr_assert_eq(entries(o), 1);
	cr_expect_str_eq(tu_json_str(entry(o, 0), "id"), "mon2");
	cJSON_Delete(o);

	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"p\",\"offset\":4294967295}", NOW_MS);
	o = reply(&d, "mon1");
	cr_expect_eq(entries(o), 0, "past the end: an empty page");
	cr_expect_eq(tu_json_num(o, "total"), 6);
	cJSON_Delete(o);

	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"p\",\"limit\":1}", NOW_MS);
	o = reply(&d, "mon1");
	cr_expect_eq(entries(o), 1);
	cJSON_Delete(o);
}

Test(svc_fleet, only_active_monitors_and_admins_may_list)
{
	const char *who[] = {"dev1", "an1", "mon2" /* revoked */, "ghost" /* never enrolled */};
	for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
		ig_decision d;
		ask(&d, who[i], "{\"type\":\"fleet\",\"nonce\":\"n-1\"}", NOW_MS);
		fx_expect_refusal(&d, "fleet", "not_allowed", "n-1", "monitors and admins");
		ig_decision_clear(&d);
	}
}

Test(svc_fleet, malformed_requests_are_refused)
{
	const char *bad[] = {
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":0}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":1001}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":-1}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":2.5}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":\"5\"}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":1e300}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"offset\":-1}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"offset\":0.5}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"offset\":4294967296}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"offset\":null}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"role\":\"device\"}",
		"{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":5,\"limit\":6}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ig_decision d;
		ask(&d, "mon1", bad[i], NOW_MS);
		fx_expect_refusal(&d, "fleet", "malformed", "m", NULL);
		ig_decision_clear(&d);
	}
	/* Without a usable nonce the refusal carries none. */
	const char *no_nonce[] = {
		"{\"type\":\"fleet\"}",
		"{\"type\":\"fleet\",\"nonce\":\"\"}",
		"{\"type\":\"fleet\",\"nonce\":\"has space\"}",
		"{\"type\":\"fleet\",\"nonce\":7}",
	};
	for (size_t i = 0; i < sizeof no_nonce / sizeof no_nonce[0]; i++) {
		ig_decision d;
		ask(&d, "mon1", no_nonce[i], NOW_MS);
		fx_expect_refusal(&d, "fleet", "malformed", "", "nonce");
		ig_decision_clear(&d);
	}
	/* A malformed request from a device is malformed, not a listing. */
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"fleet\",\"nonce\":\"m\",\"limit\":0}", NOW_MS);
	fx_expect_refusal(&d, "fleet", "malformed", "m", "limit");
	ig_decision_clear(&d);
}

Test(svc_fleet, at_most_120_requests_per_identity_per_minute)
{
	ig_decision d;
	for (int i = 0; i < IG_SVC_FLEET_RATE_DEFAULT; i++) {
		ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"r\",\"limit\":1}", NOW_MS + (uint64_t)i * 100);
		cr_assert_eq(d.kind, IG_DECISION_REPLY, "request %d: %s", i + 1, d.message);
		ig_decision_clear(&d);
	}
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"r-121\"}", NOW_MS + 59000);
	fx_expect_refusal(&d, "fleet", "rate_limited", "r-121", "120");
	ig_decision_clear(&d);
	/* Per identity: the admin is not slowed by the monitor. */
	ask(&d, "admin1", "{\"type\":\"fleet\",\"nonce\":\"a\",\"limit\":1}", NOW_MS + 59000);
	cr_expect_eq(d.kind, IG_DECISION_REPLY);
	ig_decision_clear(&d);
	/* A new minute, a new allowance. */
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"r\",\"limit\":1}", NOW_MS + 60000);
	cr_expect_eq(d.kind, IG_DECISION_REPLY, "%s", d.message);
	ig_decision_clear(&d);

	/* Refusals by role are not counted against the rate of anyone. */
	cJSON *stats = cJSON_CreateObject();
	ig_svc_fleet_stats(svc, stats);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(stats, "fleet");
	cr_expect_eq(tu_json_num(f, "served"), IG_SVC_FLEET_RATE_DEFAULT + 2);
	cr_expect_eq(tu_json_num(f, "refused"), 1);
	cJSON_Delete(stats);
}

/* A 64-character nonce of the characters JSON escapes, so the parts' head
 * bound is tested at its widest. */
#define WIDE_NONCE "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"" \
                   "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\""

/* 1000 identities with the longest ids and zones: a page with limit 1000
 * needs more than 64 parts, so it is cut after 64 full ones, and paging on
 * from the last part's offset + its identities covers every identity
 * exactly once. */
Test(svc_fleet, a_page_is_cut_after_64_parts_of_at_most_3800_bytes)
{
	char id[IG_ID_MAX + 1], zone[IG_ID_MAX + 1];
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "%0*d", IG_ID_MAX, i);
		snprintf(zone, sizeof zone, "z%0*d", IG_ID_MAX - 1, i);
		enroll_zone(id, IG_ROLE_DEVICE, zone);
		if (i % 100 == 0)
			credit(id, 1000000000);
	}
	/* The nonce's JSON: 64 characters, 32 of them '"' and '\\'. */
	cr_assert_eq(strlen(WIDE_NONCE), 64);
	cJSON *jn = cJSON_CreateString(WIDE_NONCE);
	char *nonce_json = cJSON_PrintUnformatted(jn);
	cJSON_Delete(jn);
	uint64_t offset = 0;
	int pages = 0, seen = 0, cut = 0;
	while (offset < 1006) {
		char req[256];
		snprintf(req, sizeof req, "{\"type\":\"fleet\",\"nonce\":%s,\"offset\":%llu,\"limit\":1000}", nonce_json,
		         (unsigned long long)offset);
		ig_decision d;
		ask(&d, "mon1", req, NOW_MS);
		/* The chain's parts before reply() takes them: each but the last
		 * nearly full (another entry of up to 256 bytes did not fit). */
		int k = 0;
		for (ig_decision *x = &d; x; x = x->next)
			for (size_t r = 0; r < x->n_replies; r++, k++) {
				char *text = cJSON_PrintUnformatted(x->replies[r].body);
				size_t len = strlen(text);
				free(text);
				if (x->next || r + 1 < x->n_replies)
					cr_expect_gt(len, IG_SVC_FLEET_PART_MAX - 300, "part %d of the page at %llu: %zu bytes", k,
					             (unsigned long long)offset, len);
			}
		cJSON *o = reply(&d, "mon1");
		cr_assert_str_eq(tu_json_str(o, "nonce"), WIDE_NONCE);
		cr_assert_eq(tu_json_num(o, "total"), 1006);
		cr_assert_eq(tu_json_num(o, "offset"), offset);
		int n = entries(o);
		cr_assert_gt(n, 0, "never an empty page before the end");
		cr_assert_leq(n, 1000);
		if (offset + (uint64_t)n < 1006) {
			cr_expect_eq(n_parts, IG_SVC_FLEET_PARTS_MAX, "a page is cut only when its 64 parts are full");
			cr_expect_lt(n, 1000);
			cut++;
		}
		for (int i = 0; i < n; i++) {
			const char *got = tu_json_str(entry(o, i), "id");
			if (offset + (uint64_t)i >= 6) {
				snprintf(id, sizeof id, "%0*d", IG_ID_MAX, (int)offset + i - 6);
				cr_expect_str_eq(got, id);
			}
		}
		cJSON_Delete(o);
		seen += n;
		offset += (uint64_t)n;
		pages++;
	}
	free(nonce_json);
	cr_expect_eq(seen, 1006);
	cr_expect_geq(cut, 1, "long entries: the first page is cut");
	cr_expect_eq(pages, cut + 1);
}

/* Ids like a real fleet's: the default page of 500 in parts of about 3,800
 * bytes, as many as the bytes need, none more. */
Test(svc_fleet, a_default_page_comes_in_as_many_parts_as_its_bytes_need)
{
	char id[IG_ID_MAX + 1];
	for (int i = 0; i < 600; i++) {
		snprintf(id, sizeof id, "sensor-%04d", i);
		enroll_zone(id, IG_ROLE_DEVICE, i % 2 ? "b2" : NULL);
	}
	ig_decision d;
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"d-1\"}", NOW_MS);
	size_t bytes = 0;
	for (ig_decision *x = &d; x; x = x->next)
		for (size_t r = 0; r < x->n_replies; r++) {
			char *text = cJSON_PrintUnformatted(x->replies[r].body);
			bytes += strlen(text);
			free(text);
		}
	cJSON *o = reply(&d, "mon1");
	cr_expect_eq(entries(o), 500, "the default limit, uncut");
	cr_expect_eq(tu_json_num(o, "total"), 606);
	/* Every part but the last ended because an entry of under 150 bytes did
	 * not fit: none is shorter than 3,600 bytes. */
	cr_expect_gt(bytes, (size_t)(n_parts - 1) * (IG_SVC_FLEET_PART_MAX - 200), "%d parts for %zu bytes", n_parts,
	             bytes);
	cr_expect_gt(n_parts, 10);
	cJSON_Delete(o);
}

/* Past the end, and a listing with nothing in range: one part, empty. */
Test(svc_fleet, an_empty_listing_is_one_empty_part)
{
	ig_decision d;
	ask(&d, "mon1", "{\"type\":\"fleet\",\"nonce\":\"e\",\"offset\":6}", NOW_MS);
	cr_assert_eq(d.kind, IG_DECISION_REPLY);
	cr_assert_eq(d.n_replies, 1);
	cr_assert_null(d.next);
	const cJSON *o = d.replies[0].body;
	cr_expect_eq(tu_json_num(o, "part"), 0);
	cr_expect_eq(tu_json_num(o, "parts"), 1);
	cr_expect_eq(tu_json_num(o, "offset"), 6);
	cr_expect_eq(tu_json_num(o, "total"), 6);
	cr_expect_eq(entries(o), 0);
	ig_decision_clear(&d);
}

Test(svc_fleet, config_is_checked)
{
	cr_expect_null(ig_svc_fleet_new(NULL));
	cr_expect_null(ig_svc_fleet_new(&(ig_svc_fleet_config){.requests_per_minute = 0}));
	ig_svc_fleet_free(NULL);
}
