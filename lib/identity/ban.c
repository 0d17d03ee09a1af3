/*
 * ban.c: bounded tables of login failures per address and per identity.
 *
 * Why this exists: see ig_ban.h. The earlier design kept one entry per hash
 * slot, so two addresses that shared a slot wiped each other's count and an
 * attacker alternating between them was never banned. Here every key is
 * compared exactly (both tables are ig_idtables, allocated whole at
 * creation), and at the budget a newcomer may displace only one of the few
 * entries near its home slot, never a live ban. Slots are chosen by SipHash
 * under a key drawn at start, so an attacker cannot aim many addresses at
 * one neighbourhood.
 */
#include "ig_ban.h"

#include "ig_idtable.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- address keys ---- */

void ig_ban_addr_parse(ig_ban_addr *key, const char *text)
{
	memset(key, 0, sizeof *key);
	if (!text)
		text = "";
	uint8_t a[16];
	if (inet_pton(AF_INET, text, a) == 1) {
		key->kind = 4;
		memcpy(key->bytes, a, 4);
		return;
	}
	if (inet_pton(AF_INET6, text, a) == 1) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a, mapped, sizeof mapped) == 0) {
			key->kind = 4;
			memcpy(key->bytes, a + 12, 4);
		} else {
			key->kind = 6;
			memcpy(key->bytes, a, 8);   /* the /64 */
		}
		return;
	}
	/* Not an IP address (a Unix socket, a broker quirk): one key per text. */
	crypto_generichash(key->bytes, sizeof key->bytes, (const uint8_t *)text, strlen(text), NULL, 0);
}

/* Entries for `capacity`: a whole number of IG_BAN_WAYS, the smallest
 * neighbourhood an eviction looks at. */
static size_t entries_for(size_t capacity)
{
	return (capacity + IG_BAN_WAYS - 1) / IG_BAN_WAYS * IG_BAN_WAYS;
}

/* ---- per-address table ----
 *
 * Entries live in an ig_idtable allocated whole at creation. At the budget,
 * a newcomer displaces one of the entries near its home slot (the table
 * offers up to IG_IDTABLE_EVICT_WAYS): a forgotten one first, else the
 * unbanned one whose last failure is oldest; a live ban is never a victim. */

typedef struct ban_entry {
	uint32_t failures;
	uint64_t window_start_ms;
	uint64_t last_fail_ms;
	uint64_t banned_until_ms;
} ban_entry;

struct ig_ban {
	ig_idtable *t;
};

int ig_ban_new(ig_ban **out, size_t capacity)
{
	*out = NULL;
	if (capacity == 0 || capacity > ((size_t)1 << 28))
		return IG_ERR_INVAL;
	ig_ban *b = calloc(1, sizeof *b);
	if (!b)
		return IG_ERR_NOMEM;
	size_t n = entries_for(capacity);
	int rc = ig_idtable_new(&b->t, sizeof(ig_ban_addr), sizeof(ban_entry), n, n);
	if (rc != IG_OK) {
		free(b);
		return rc;
	}
	*out = b;
	return IG_OK;
}

void ig_ban_free(ig_ban *b)
{
	if (!b)
		return;
	ig_idtable_free(b->t);
	free(b);
}

size_t ig_ban_capacity(const ig_ban *b)
{
	return ig_idtable_max(b->t);
}

static ban_entry *find(const ig_ban *b, const ig_ban_addr *key)
{
	return ig_idtable_find(b->t, key, sizeof *key);
}

bool ig_ban_banned(const ig_ban *b, const ig_ban_addr *key, uint64_t now_ms)
{
	const ban_entry *e = b ? find(b, key) : NULL;
	return e && e->banned_until_ms > now_ms;
}

static bool recent(const ban_entry *e, uint32_t window_ms, uint64_t now_ms)
{
	return e->banned_until_ms > now_ms || (now_ms >= e->last_fail_ms && now_ms - e->last_fail_ms < window_ms);
}

bool ig_ban_has_failed(const ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules, uint64_t now_ms)
{
	const ban_entry *e = b ? find(b, key) : NULL;
	return e && recent(e, rules->window_ms, now_ms);
}

void ig_ban_look(bool *banned, bool *has_failed, const ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules,
                 uint64_t now_ms)
{
	const ban_entry *e = b ? find(b, key) : NULL;
	*banned = e && e->banned_until_ms > now_ms;
	*has_failed = e && recent(e, rules->window_ms, now_ms);
}

typedef struct ban_pick {
	const ig_ban_rules *rules;
	uint64_t now_ms;
} ban_pick;

static int pick_victim(void *ctx, void *const values[], size_t n)
{
	const ban_pick *p = ctx;
	for (size_t i = 0; i < n; i++)
		if (!recent(values[i], p->rules->window_ms, p->now_ms))
			return (int)i;
	int victim = -1;
	for (size_t i = 0; i < n; i++) {
		const ban_entry *c = values[i];
		if (c->banned_until_ms > p->now_ms)
			continue;
		if (victim < 0 || c->last_fail_ms < ((const ban_entry *)values[victim])->last_fail_ms)
			victim = (int)i;
	}
	return victim;
}

ig_ban_outcome ig_ban_failed(ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules, uint64_t now_ms,
                             uint32_t *failures)
{
	if (failures)
		*failures = 0;
	ban_pick pick = {.rules = rules, .now_ms = now_ms};
	void *v;
	bool added;
	if (ig_idtable_put_evict(b->t, key, sizeof *key, pick_victim, &pick, &v, &added) != IG_OK)
		return IG_BAN_UNTRACKED;
	ban_entry *e = v;
	if (added)
		e->window_start_ms = now_ms;
	if (now_ms < e->window_start_ms || now_ms - e->window_start_ms >= rules->window_ms) {
		e->failures = 0;
		e->window_start_ms = now_ms;
	}
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_fail_ms = now_ms;
	if (failures)
		*failures = e->failures;
	if (rules->limit && e->failures >= rules->limit && e->banned_until_ms <= now_ms) {
		e->banned_until_ms = now_ms + rules->ban_ms;
		return IG_BAN_NOW_BANNED;
	}
	return IG_BAN_COUNTED;
}

size_t ig_ban_count_banned(const ig_ban *b, uint64_t now_ms)
{
	size_t n = 0, cur = 0;
	const ban_entry *e;
	while (b && (e = ig_idtable_next(b->t, &cur)))
		if (e->banned_until_ms > now_ms)
			n++;
	return n;
}

/* ---- per-identity budget ----
 *
 * A token bucket in units of 1/60000 of a check, so that a budget of N per
 * minute refills exactly N units per millisecond with integer arithmetic.
 * Keyed by the id's SipHash under a key drawn at start (8 bytes, not the
 * id itself): a collision between two ids is a 2^-64 event, and the entry
 * stays small. */

#define UNIT 60000ull

typedef struct id_entry {
	uint64_t balance;     /* units, at most per_minute * UNIT */
	uint64_t at_ms;       /* when balance was computed */
} id_entry;

struct ig_ban_ids {
	ig_idtable *t;
	uint64_t full;        /* per_minute * UNIT */
	uint64_t per_ms;      /* refill, units per millisecond (= per_minute) */
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

int ig_ban_ids_new(ig_ban_ids **out, size_t capacity, uint32_t per_minute)
{
	*out = NULL;
	if (capacity == 0 || capacity > ((size_t)1 << 28))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	ig_ban_ids *t = calloc(1, sizeof *t);
	if (!t)
		return IG_ERR_NOMEM;
	size_t n = entries_for(capacity);
	int rc = ig_idtable_new(&t->t, sizeof(uint64_t), sizeof(id_entry), n, n);
	if (rc != IG_OK) {
		free(t);
		return rc;
	}
	crypto_shorthash_keygen(t->hkey);
	ig_ban_ids_set_budget(t, per_minute);
	*out = t;
	return IG_OK;
}

void ig_ban_ids_free(ig_ban_ids *t)
{
	if (!t)
		return;
	ig_idtable_free(t->t);
	sodium_memzero(t->hkey, sizeof t->hkey);
	free(t);
}

void ig_ban_ids_set_budget(ig_ban_ids *t, uint32_t per_minute)
{
	t->full = (uint64_t)per_minute * UNIT;
	t->per_ms = per_minute;
	size_t cur = 0;
	id_entry *e;
	while ((e = ig_idtable_next(t->t, &cur)))
		if (e->balance > t->full)
			e->balance = t->full;
}

static uint64_t id_key(const ig_ban_ids *t, const char *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const uint8_t *)id, strlen(id), t->hkey);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

static uint64_t balance_now(const ig_ban_ids *t, const id_entry *e, uint64_t now_ms)
{
	uint64_t dt = now_ms > e->at_ms ? now_ms - e->at_ms : 0;
	uint64_t room = t->full - e->balance;
	if (t->per_ms && dt >= room / t->per_ms + 1)
		return t->full;
	uint64_t v = e->balance + dt * t->per_ms;
	return v < t->full ? v : t->full;
}

bool ig_ban_ids_allow(const ig_ban_ids *t, const char *id, uint64_t now_ms)
{
	if (!t || !id)
		return true;
	uint64_t k = id_key(t, id);
	const id_entry *e = ig_idtable_find(t->t, &k, sizeof k);
	if (e)
		return balance_now(t, e, now_ms) >= UNIT;
	return t->full >= UNIT;
}

typedef struct ids_pick {
	const ig_ban_ids *t;
	uint64_t now_ms;
} ids_pick;

/* The victim is the entry with the most budget left: a full bucket is the
 * same as no entry, so nothing an attacker built is lost unless every
 * candidate is in debt, and then the least indebted goes. */
static int pick_richest(void *ctx, void *const values[], size_t n)
{
	const ids_pick *p = ctx;
	size_t best = 0;
	uint64_t most = balance_now(p->t, values[0], p->now_ms);
	for (size_t i = 1; i < n; i++) {
		uint64_t v = balance_now(p->t, values[i], p->now_ms);
		if (v > most) {
			most = v;
			best = i;
		}
	}
	return (int)best;
}

void ig_ban_ids_charge(ig_ban_ids *t, const char *id, uint64_t now_ms)
{
	if (!t || !id)
		return;
	uint64_t k = id_key(t, id);
	ids_pick pick = {.t = t, .now_ms = now_ms};
	void *v;
	bool added;
	if (ig_idtable_put_evict(t->t, &k, sizeof k, pick_richest, &pick, &v, &added) != IG_OK)
		return;
	id_entry *e = v;
	if (added) {
		e->balance = t->full;
		e->at_ms = now_ms;
	}
	uint64_t b = balance_now(t, e, now_ms);
	e->balance = b >= UNIT ? b - UNIT : 0;
	e->at_ms = now_ms;
}
