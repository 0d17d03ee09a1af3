/*
 * ban.c: bounded tables of login failures per address and per identity.
 *
 * Why this exists: see ig_ban.h. The earlier design kept one entry per hash
 * slot, so two addresses that shared a slot wiped each other's count and an
 * attacker alternating between them was never banned. Here every key is
 * compared exactly, each bucket holds IG_BAN_WAYS entries, and eviction
 * skips live bans. Bucket choice uses SipHash under a key drawn at start, so
 * an attacker cannot aim many addresses at one bucket.
 */
#include "ig_ban.h"

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

static uint64_t siphash(const uint8_t hkey[crypto_shorthash_KEYBYTES], const void *data, size_t len)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, data, len, hkey);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

static size_t buckets_for(size_t capacity)
{
	size_t want = (capacity + IG_BAN_WAYS - 1) / IG_BAN_WAYS, n = 1;
	while (n < want)
		n <<= 1;
	return n;
}

/* ---- per-address table ---- */

typedef struct ban_entry {
	ig_ban_addr key;
	bool used;
	uint32_t failures;
	uint64_t window_start_ms;
	uint64_t last_fail_ms;
	uint64_t banned_until_ms;
} ban_entry;

struct ig_ban {
	ban_entry *e;
	size_t buckets;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

int ig_ban_new(ig_ban **out, size_t capacity)
{
	*out = NULL;
	if (capacity == 0 || capacity > ((size_t)1 << 28))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	ig_ban *b = calloc(1, sizeof *b);
	if (!b)
		return IG_ERR_NOMEM;
	b->buckets = buckets_for(capacity);
	b->e = calloc(b->buckets * IG_BAN_WAYS, sizeof *b->e);
	if (!b->e) {
		free(b);
		return IG_ERR_NOMEM;
	}
	crypto_shorthash_keygen(b->hkey);
	*out = b;
	return IG_OK;
}

void ig_ban_free(ig_ban *b)
{
	if (!b)
		return;
	free(b->e);
	free(b);
}

size_t ig_ban_capacity(const ig_ban *b)
{
	return b->buckets * IG_BAN_WAYS;
}

static ban_entry *bucket_of(const ig_ban *b, const ig_ban_addr *key)
{
	size_t i = (size_t)(siphash(b->hkey, key, sizeof *key) & (b->buckets - 1));
	return &b->e[i * IG_BAN_WAYS];
}

static ban_entry *find(const ig_ban *b, const ig_ban_addr *key)
{
	ban_entry *e = bucket_of(b, key);
	for (int w = 0; w < IG_BAN_WAYS; w++)
		if (e[w].used && e[w].key.kind == key->kind && memcmp(e[w].key.bytes, key->bytes, 16) == 0)
			return &e[w];
	return NULL;
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

ig_ban_outcome ig_ban_failed(ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules, uint64_t now_ms,
                             uint32_t *failures)
{
	if (failures)
		*failures = 0;
	ban_entry *e = find(b, key);
	if (!e) {
		/* A free or forgotten entry first; else the non-banned one whose
		 * last failure is oldest. A live ban is never the victim. */
		ban_entry *bucket = bucket_of(b, key), *victim = NULL;
		for (int w = 0; w < IG_BAN_WAYS && !victim; w++)
			if (!bucket[w].used || !recent(&bucket[w], rules->window_ms, now_ms))
				victim = &bucket[w];
		for (int w = 0; w < IG_BAN_WAYS && !victim; w++) {
			ban_entry *c = &bucket[w];
			if (c->banned_until_ms <= now_ms) {
				for (int v = w + 1; v < IG_BAN_WAYS; v++)
					if (bucket[v].banned_until_ms <= now_ms && bucket[v].last_fail_ms < c->last_fail_ms)
						c = &bucket[v];
				victim = c;
			}
		}
		if (!victim)
			return IG_BAN_UNTRACKED;
		memset(victim, 0, sizeof *victim);
		victim->used = true;
		victim->key = *key;
		victim->window_start_ms = now_ms;
		e = victim;
	}
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
	size_t n = 0;
	for (size_t i = 0; b && i < b->buckets * IG_BAN_WAYS; i++)
		if (b->e[i].used && b->e[i].banned_until_ms > now_ms)
			n++;
	return n;
}

/* ---- per-identity budget ----
 *
 * A token bucket in units of 1/60000 of a check, so that a budget of N per
 * minute refills exactly N units per millisecond with integer arithmetic. */

#define UNIT 60000ull

typedef struct id_entry {
	uint64_t hash;        /* SipHash of the id; 0 = free */
	uint64_t balance;     /* units, at most per_minute * UNIT */
	uint64_t at_ms;       /* when balance was computed */
} id_entry;

struct ig_ban_ids {
	id_entry *e;
	size_t buckets;
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
	t->buckets = buckets_for(capacity);
	t->e = calloc(t->buckets * IG_BAN_WAYS, sizeof *t->e);
	if (!t->e) {
		free(t);
		return IG_ERR_NOMEM;
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
	free(t->e);
	free(t);
}

void ig_ban_ids_set_budget(ig_ban_ids *t, uint32_t per_minute)
{
	t->full = (uint64_t)per_minute * UNIT;
	t->per_ms = per_minute;
	for (size_t i = 0; i < t->buckets * IG_BAN_WAYS; i++)
		if (t->e[i].balance > t->full)
			t->e[i].balance = t->full;
}

static uint64_t id_hash(const ig_ban_ids *t, const char *id)
{
	uint64_t h = siphash(t->hkey, id, strlen(id));
	return h ? h : 1;
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
	uint64_t h = id_hash(t, id);
	const id_entry *b = &t->e[(h & (t->buckets - 1)) * IG_BAN_WAYS];
	for (int w = 0; w < IG_BAN_WAYS; w++)
		if (b[w].hash == h)
			return balance_now(t, &b[w], now_ms) >= UNIT;
	return t->full >= UNIT;
}

void ig_ban_ids_charge(ig_ban_ids *t, const char *id, uint64_t now_ms)
{
	if (!t || !id)
		return;
	uint64_t h = id_hash(t, id);
	id_entry *b = &t->e[(h & (t->buckets - 1)) * IG_BAN_WAYS], *e = NULL;
	for (int w = 0; w < IG_BAN_WAYS && !e; w++)
		if (b[w].hash == h)
			e = &b[w];
	if (!e) {
		/* The victim is the entry with the most budget left: a full bucket
		 * is the same as no entry, so nothing an attacker built is lost
		 * unless every way is in debt, and then the least indebted goes. */
		uint64_t best = 0;
		for (int w = 0; w < IG_BAN_WAYS; w++) {
			uint64_t v = b[w].hash ? balance_now(t, &b[w], now_ms) : UINT64_MAX;
			if (!e || v > best) {
				e = &b[w];
				best = v;
			}
		}
		e->hash = h;
		e->balance = t->full;
		e->at_ms = now_ms;
	}
	uint64_t v = balance_now(t, e, now_ms);
	e->balance = v >= UNIT ? v - UNIT : 0;
	e->at_ms = now_ms;
}
