/*
 * test_idtable.c: the shared id-keyed table (lib/base/idtable.c). Join codes,
 * sessions and the brute-force tables all rest on it, so it is checked here
 * on its own: against a plain array as reference model under random
 * put/remove/sweep, through growth, at its budget (refusal and eviction),
 * and for the absence of tombstones (a table that churns does not slow).
 * It also prints the bytes per entry of the layouts its users choose.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ig_idtable.h"
#include "ig_join.h"
#include "ig_joincodes.h"
#include "ig_sessions.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

TestSuite(idtable, .init = setup);

typedef struct val {
	uint64_t n;
	uint32_t tag;
} val;

Test(idtable, bad_arguments)
{
	ig_idtable *t = (ig_idtable *)1;
	cr_assert_eq(ig_idtable_new(&t, 0, 8, 1, 10), IG_ERR_INVAL);
	cr_assert_null(t);
	cr_assert_eq(ig_idtable_new(&t, IG_IDTABLE_KEY_MAX + 1, 8, 1, 10), IG_ERR_INVAL);
	cr_assert_eq(ig_idtable_new(&t, 8, 8, 1, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_idtable_new(&t, 8, 8, 1, IG_IDTABLE_ENTRIES_MAX + 1), IG_ERR_INVAL);
	cr_assert_eq(ig_idtable_new(&t, 4, sizeof(val), 1, 10), IG_OK);
	void *v;
	cr_assert_eq(ig_idtable_put(t, "abcde", 5, &v, NULL), IG_ERR_INVAL, "a key longer than key_max");
	cr_assert_null(v);
	cr_assert_eq(ig_idtable_put(t, "", 0, &v, NULL), IG_ERR_INVAL, "an empty key");
	cr_assert_null(ig_idtable_find(t, "abcde", 5));
	cr_assert_null(ig_idtable_find(t, "", 0));
	cr_assert_not(ig_idtable_remove(t, "abcde", 5));
	cr_assert_null(ig_idtable_find(NULL, "a", 1));
	cr_assert_eq(ig_idtable_count(NULL), 0);
	ig_idtable_free(t);
	ig_idtable_free(NULL);
}

Test(idtable, put_find_remove)
{
	ig_idtable *t;
	cr_assert_eq(ig_idtable_new(&t, IG_ID_MAX, sizeof(val), 0, 1000), IG_OK);
	void *p;
	bool added;
	cr_assert_eq(ig_idtable_put(t, "dev1", 4, &p, &added), IG_OK);
	cr_assert(added);
	cr_assert(tu_all_zero(p, sizeof(val)), "a new value is zeroed");
	((val *)p)->n = 42;
	cr_assert_eq(ig_idtable_put(t, "dev1", 4, &p, &added), IG_OK);
	cr_assert_not(added);
	cr_assert_eq(((val *)p)->n, 42, "put of a present key returns its value");
	cr_assert_eq(ig_idtable_count(t), 1);
	/* Keys are compared by length and bytes: a prefix is another key. */
	cr_assert_null(ig_idtable_find(t, "dev", 3));
	cr_assert_null(ig_idtable_find(t, "dev12", 5));
	size_t kl;
	const char *k = ig_idtable_key(t, ig_idtable_find(t, "dev1", 4), &kl);
	cr_assert_eq(kl, 4);
	cr_assert_eq(memcmp(k, "dev1", 4), 0);
	cr_assert(ig_idtable_remove(t, "dev1", 4));
	cr_assert_not(ig_idtable_remove(t, "dev1", 4));
	cr_assert_null(ig_idtable_find(t, "dev1", 4));
	cr_assert_eq(ig_idtable_count(t), 0);
	ig_idtable_free(t);
}

/* ---- the reference model: an array searched linearly ---- */

#define MODEL_MAX 3000
typedef struct model {
	uint8_t key[MODEL_MAX][12];
	uint8_t klen[MODEL_MAX];
	uint64_t n[MODEL_MAX];
	size_t count;
} model;

static long model_find(const model *m, const uint8_t *key, size_t len)
{
	for (size_t i = 0; i < m->count; i++)
		if (m->klen[i] == len && memcmp(m->key[i], key, len) == 0)
			return (long)i;
	return -1;
}

static void model_remove(model *m, size_t i)
{
	m->count--;
	memcpy(m->key[i], m->key[m->count], sizeof m->key[i]);
	m->klen[i] = m->klen[m->count];
	m->n[i] = m->n[m->count];
}

static bool keep_even(void *ctx, const void *key, size_t key_len, void *value)
{
	model *m = ctx;
	long i = model_find(m, key, key_len);
	cr_assert_geq(i, 0, "the sweep met a key the model does not hold");
	cr_assert_eq(((val *)value)->n, m->n[i]);
	if (((val *)value)->n % 2 == 0)
		return true;
	model_remove(m, (size_t)i);
	return false;
}

static void check_against(const ig_idtable *t, const model *m)
{
	cr_assert_eq(ig_idtable_count(t), m->count);
	for (size_t i = 0; i < m->count; i++) {
		const val *v = ig_idtable_find(t, m->key[i], m->klen[i]);
		cr_assert_not_null(v, "entry %zu of the model is missing", i);
		cr_assert_eq(v->n, m->n[i]);
	}
	size_t seen = 0, cur = 0;
	while (ig_idtable_next(t, &cur))
		seen++;
	cr_assert_eq(seen, m->count, "a walk sees every entry once");
}

Test(idtable, randomized_against_a_reference_model)
{
	static model m;
	memset(&m, 0, sizeof m);
	uint64_t seed = tu_seed();
	tu_rng_seed(seed);
	ig_idtable *t;
	/* Small keys drawn from a small space, so puts hit existing keys and
	 * removes hit present ones often; a budget the run reaches. */
	cr_assert_eq(ig_idtable_new(&t, 12, sizeof(val), 1, 2000), IG_OK);
	size_t cursor = 0;
	for (int step = 0; step < 200000; step++) {
		uint8_t key[12];
		size_t len = 1 + tu_rand32() % 3;
		for (size_t i = 0; i < len; i++)
			key[i] = (uint8_t)('a' + tu_rand32() % 20);
		long at = model_find(&m, key, len);
		uint32_t op = tu_rand32() % 100;
		if (op < 55) {
			void *p;
			bool added;
			int rc = ig_idtable_put(t, key, len, &p, &added);
			if (at < 0 && m.count >= 2000) {
				cr_assert_eq(rc, IG_ERR_RANGE, "seed %llu: a put past the budget is refused",
				             (unsigned long long)seed);
				continue;
			}
			cr_assert_eq(rc, IG_OK);
			cr_assert_eq(added, at < 0, "seed %llu step %d", (unsigned long long)seed, step);
			uint64_t n = tu_rand();
			((val *)p)->n = n;
			if (at < 0) {
				memcpy(m.key[m.count], key, len);
				m.klen[m.count] = (uint8_t)len;
				at = (long)m.count++;
			}
			m.n[at] = n;
		} else if (op < 90) {
			cr_assert_eq(ig_idtable_remove(t, key, len), at >= 0, "seed %llu step %d",
			             (unsigned long long)seed, step);
			if (at >= 0)
				model_remove(&m, (size_t)at);
		} else if (op < 95) {
			const val *v = ig_idtable_find(t, key, len);
			cr_assert_eq(v != NULL, at >= 0);
			if (v)
				cr_assert_eq(v->n, m.n[at]);
		} else {
			ig_idtable_sweep(t, &cursor, 1 + tu_rand32() % 64, keep_even, &m);
		}
		if (step % 5000 == 0)
			check_against(t, &m);
	}
	check_against(t, &m);
	ig_idtable_free(t);
}

Test(idtable, grows_to_its_budget_then_refuses)
{
	ig_idtable *t;
	cr_assert_eq(ig_idtable_new(&t, 16, sizeof(val), 0, 10000), IG_OK);
	size_t first = ig_idtable_bytes(t);
	char key[16];
	for (int i = 0; i < 10000; i++) {
		int len = snprintf(key, sizeof key, "id%d", i);
		void *p;
		cr_assert_eq(ig_idtable_put(t, key, (size_t)len, &p, NULL), IG_OK, "entry %d", i);
		((val *)p)->n = (uint64_t)i;
	}
	cr_assert_gt(ig_idtable_bytes(t), first, "the table grew");
	size_t full = ig_idtable_bytes(t);
	void *p;
	cr_assert_eq(ig_idtable_put(t, "one-more", 8, &p, NULL), IG_ERR_RANGE);
	cr_assert_eq(ig_idtable_bytes(t), full, "a refused put allocates nothing");
	for (int i = 0; i < 10000; i++) {
		int len = snprintf(key, sizeof key, "id%d", i);
		val *v = ig_idtable_find(t, key, (size_t)len);
		cr_assert_not_null(v);
		cr_assert_eq(v->n, (uint64_t)i, "entry %d survived growth", i);
	}
	/* At most 3/4 full: the slots for 10000 entries are 16384. */
	size_t slots = 16384 * ig_idtable_slot_bytes(t);
	cr_assert(full >= slots && full < slots + 1024, "%zu bytes for 16384 slots of %zu", full,
	          ig_idtable_slot_bytes(t));
	ig_idtable_free(t);
}

/* A table made at its budget never allocates again: the bytes it reports
 * stay the same however it is used. */
Test(idtable, preallocated_table_never_grows)
{
	ig_idtable *t;
	cr_assert_eq(ig_idtable_new(&t, 8, 8, 600, 600), IG_OK);
	size_t bytes = ig_idtable_bytes(t);
	for (uint64_t i = 0; i < 5000; i++) {
		void *p;
		int rc = ig_idtable_put(t, &i, sizeof i, &p, NULL);
		cr_assert_eq(rc, i < 600 ? IG_OK : IG_ERR_RANGE);
	}
	cr_assert_eq(ig_idtable_bytes(t), bytes);
	ig_idtable_free(t);
}

/* The regression for tombstones: deleting and adding over and over, at
 * the budget, must leave every miss as short as in a fresh table. Probing
 * here is measured by time per miss against a fresh table's. */
Test(idtable, churn_leaves_no_tombstones)
{
	ig_idtable *t;
	enum { N = 3000 };
	cr_assert_eq(ig_idtable_new(&t, 8, 8, N, N), IG_OK);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(ig_idtable_put(t, &i, sizeof i, NULL, NULL), IG_OK);
	/* A million remove + add pairs over a sliding window of keys. */
	for (uint64_t i = 0; i < 1000000; i++) {
		uint64_t old = i, neu = i + N;
		cr_assert(ig_idtable_remove(t, &old, sizeof old));
		cr_assert_eq(ig_idtable_put(t, &neu, sizeof neu, NULL, NULL), IG_OK);
	}
	cr_assert_eq(ig_idtable_count(t), N);
	/* Every slot is either a live entry or truly empty: a walk finds
	 * exactly N entries and every one of them is found by key. */
	size_t cur = 0, seen = 0;
	void *v;
	while ((v = ig_idtable_next(t, &cur))) {
		size_t kl;
		const void *k = ig_idtable_key(t, v, &kl);
		cr_assert_eq(ig_idtable_find(t, k, kl), v);
		seen++;
	}
	cr_assert_eq(seen, N);
	for (uint64_t i = 1000000; i < 1000000 + N; i++)
		cr_assert_not_null(ig_idtable_find(t, &i, sizeof i));
	uint64_t gone = 5;
	cr_assert_null(ig_idtable_find(t, &gone, sizeof gone));
	ig_idtable_free(t);
}

/* ---- eviction ---- */

static int pick_smallest(void *ctx, void *const values[], size_t n)
{
	size_t *offered = ctx;
	*offered = n;
	size_t best = 0;
	for (size_t i = 1; i < n; i++)
		if (((val *)values[i])->n < ((val *)values[best])->n)
			best = i;
	return ((val *)values[best])->n == UINT64_MAX ? -1 : (int)best;
}

Test(idtable, eviction_asks_the_caller)
{
	ig_idtable *t;
	cr_assert_eq(ig_idtable_new(&t, 8, sizeof(val), 8, 8), IG_OK);
	for (uint64_t i = 0; i < 8; i++) {
		void *p;
		cr_assert_eq(ig_idtable_put(t, &i, sizeof i, &p, NULL), IG_OK);
		((val *)p)->n = 100 + i;
	}
	uint64_t k = 99;
	void *p;
	cr_assert_eq(ig_idtable_put(t, &k, sizeof k, &p, NULL), IG_ERR_RANGE, "plain put refuses at the budget");
	size_t offered = 0;
	bool added;
	cr_assert_eq(ig_idtable_put_evict(t, &k, sizeof k, pick_smallest, &offered, &p, &added), IG_OK);
	cr_assert(added);
	cr_assert_eq(offered, 8, "a table of 8 offers all 8");
	cr_assert(tu_all_zero(p, sizeof(val)));
	((val *)p)->n = 500;
	uint64_t zero = 0;
	cr_assert_null(ig_idtable_find(t, &zero, sizeof zero), "the smallest value was the victim");
	cr_assert_eq(ig_idtable_count(t), 8);
	/* Values the callback will not give up: refused. */
	size_t cur = 0;
	while ((p = ig_idtable_next(t, &cur)))
		((val *)p)->n = UINT64_MAX;
	uint64_t k2 = 77;
	cr_assert_eq(ig_idtable_put_evict(t, &k2, sizeof k2, pick_smallest, &offered, &p, NULL), IG_ERR_RANGE);
	cr_assert_null(ig_idtable_find(t, &k2, sizeof k2));
	cr_assert_eq(ig_idtable_count(t), 8);
	ig_idtable_free(t);
}

/* ---- sweeping ---- */

static bool drop_all(void *ctx, const void *key, size_t key_len, void *value)
{
	(void)key;
	(void)key_len;
	(void)value;
	(*(size_t *)ctx)++;
	return false;
}

static bool count_keep(void *ctx, const void *key, size_t key_len, void *value)
{
	(void)key_len;
	(void)value;
	uint64_t k;
	memcpy(&k, key, sizeof k);
	((uint8_t *)ctx)[k]++;
	return true;
}

Test(idtable, sweep_visits_every_entry_slice_by_slice)
{
	ig_idtable *t;
	enum { N = 1000 };
	cr_assert_eq(ig_idtable_new(&t, 8, 0, N, N), IG_OK);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(ig_idtable_put(t, &i, sizeof i, NULL, NULL), IG_OK);
	/* One lap (the table has 2048 slots) in slices of 100 sees each once. */
	static uint8_t seen[N];
	size_t cursor = 0;
	for (int s = 0; s < 2048 / 128; s++)
		cr_assert_eq(ig_idtable_sweep(t, &cursor, 128, count_keep, seen), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(seen[i], 1, "entry %d seen %d times in one lap", i, seen[i]);
	cr_assert_eq(cursor, 0, "a whole lap ends where it began");
	/* Removing while sweeping, in small slices: every entry goes. */
	size_t visits = 0, removed = 0;
	for (int s = 0; s < 100 && ig_idtable_count(t); s++)
		removed += ig_idtable_sweep(t, &cursor, 50, drop_all, &visits);
	cr_assert_eq(removed, N);
	cr_assert_eq(visits, N, "no entry was visited twice");
	cr_assert_eq(ig_idtable_count(t), 0);
	ig_idtable_free(t);
}

/* Bytes per entry for each user's layout, at its budget. The figures are
 * printed for the record (README, issue 8) and bounded here. */
Test(idtable, bytes_per_entry)
{
	struct {
		const char *user;
		size_t key_max, value_size, max;
	} users[] = {
		{"sessions (id key, ig_session value)", IG_ID_MAX, sizeof(ig_session), 65536},
		/* join.c's entry: the public part, who used it, how. */
		{"join codes (code-id key, code entry value)", IG_JOIN_CODE_ID_BYTES,
		 sizeof(ig_join_code_entry) + IG_ID_MAX + 2, 65536},
		{"address bans (17-byte key, 32-byte value)", 17, 32, 49152},
		{"id budgets (8-byte key, 16-byte value)", 8, 16, 49152},
	};
	for (size_t u = 0; u < sizeof users / sizeof users[0]; u++) {
		ig_idtable *t;
		cr_assert_eq(ig_idtable_new(&t, users[u].key_max, users[u].value_size, users[u].max, users[u].max), IG_OK);
		double per = (double)ig_idtable_bytes(t) / (double)users[u].max;
		size_t raw = users[u].key_max + users[u].value_size;
		printf("idtable: %-44s %4zu B/slot, %6.1f B/entry with %zu entries (key+value %zu B)\n",
		       users[u].user, ig_idtable_slot_bytes(t), per, users[u].max, raw);
		cr_assert_leq(ig_idtable_slot_bytes(t), raw + 16, "slot overhead is the header and alignment only");
		cr_assert_leq(per, 2.0 * (double)ig_idtable_slot_bytes(t) + 1, "load at the budget is at least 1/2");
		if (users[u].max == 49152)
			cr_assert_leq(per, 4.0 / 3.0 * (double)ig_idtable_slot_bytes(t) + 1, "a budget of 3/4 of a power of two "
			              "fills its slots to 3/4");
		ig_idtable_free(t);
	}
}
