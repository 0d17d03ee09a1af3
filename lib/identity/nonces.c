/*
 * nonces.c: a bounded set of token nonces with expiry (see ig_nonces.h).
 *
 * Why this exists: single-use tokens need the broker to remember every
 * accepted nonce until its token expires, at connect rates in the thousands
 * per second, without a stall on any one connect. Open addressing with
 * linear probing keeps a lookup to a few cache lines; deletion shifts the
 * following entries back, so no tombstones accumulate; expired entries are
 * found by a round-robin cursor a few slots at a time. Growth doubles the
 * table (amortised O(1) per insert) and stops at the configured maximum.
 */
#include "ig_nonces.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SLOTS 64
#define SWEEP_PER_INSERT 4

typedef struct slot {
	uint8_t nonce[IG_NONCES_NONCE_BYTES];
	uint64_t expires_at;   /* 0 = empty */
} slot;

_Static_assert(sizeof(slot) == IG_NONCES_SLOT_BYTES, "IG_NONCES_SLOT_BYTES is the documented cost per slot");

struct ig_nonces {
	slot *s;
	size_t cap, count, max_entries, max_cap, cursor;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

static size_t home(const ig_nonces *r, const uint8_t nonce[IG_NONCES_NONCE_BYTES], size_t cap)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, nonce, IG_NONCES_NONCE_BYTES, r->hkey);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return (size_t)(v & (cap - 1));
}

int ig_nonces_new(ig_nonces **out, size_t max_entries)
{
	*out = NULL;
	if (max_entries < 16 || max_entries > ((size_t)1 << 30))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	ig_nonces *r = calloc(1, sizeof *r);
	if (!r)
		return IG_ERR_NOMEM;
	r->max_entries = max_entries;
	r->max_cap = MIN_SLOTS;
	while (r->max_cap < 2 * max_entries)
		r->max_cap <<= 1;
	r->cap = MIN_SLOTS;
	r->s = calloc(r->cap, sizeof *r->s);
	if (!r->s) {
		free(r);
		return IG_ERR_NOMEM;
	}
	crypto_shorthash_keygen(r->hkey);
	*out = r;
	return IG_OK;
}

void ig_nonces_free(ig_nonces *r)
{
	if (!r)
		return;
	free(r->s);
	free(r);
}

size_t ig_nonces_count(const ig_nonces *r)
{
	return r->count;
}

size_t ig_nonces_slots(const ig_nonces *r)
{
	return r->cap;
}

static void put(slot *s, size_t cap, size_t h, const slot *e)
{
	size_t i = h;
	while (s[i].expires_at)
		i = (i + 1) & (cap - 1);
	s[i] = *e;
}

static bool grow(ig_nonces *r)
{
	size_t cap = r->cap * 2;
	slot *s = calloc(cap, sizeof *s);
	if (!s)
		return false;
	for (size_t i = 0; i < r->cap; i++)
		if (r->s[i].expires_at)
			put(s, cap, home(r, r->s[i].nonce, cap), &r->s[i]);
	free(r->s);
	r->s = s;
	r->cap = cap;
	r->cursor = 0;
	return true;
}

/* Empties slot i and moves back every later entry of the probe run that
 * would otherwise become unreachable. */
static void delete_at(ig_nonces *r, size_t i)
{
	size_t mask = r->cap - 1, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!r->s[j].expires_at)
			break;
		size_t k = home(r, r->s[j].nonce, r->cap);
		bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		r->s[i] = r->s[j];
		i = j;
	}
	memset(&r->s[i], 0, sizeof r->s[i]);
	r->count--;
}

void ig_nonces_sweep(ig_nonces *r, uint64_t now_s, size_t slots)
{
	for (size_t n = 0; n < slots && r->count > 0; n++) {
		size_t i = r->cursor;
		if (r->s[i].expires_at && r->s[i].expires_at <= now_s)
			delete_at(r, i);   /* look at slot i again: a later entry may have moved into it */
		else
			r->cursor = (i + 1) & (r->cap - 1);
	}
}

size_t ig_nonces_sweep_paced(ig_nonces *r, uint64_t now_s, uint64_t elapsed_ms)
{
	uint64_t want = elapsed_ms >= IG_NONCES_SWEEP_PASS_MS ? r->cap : r->cap * elapsed_ms / IG_NONCES_SWEEP_PASS_MS;
	size_t slots = want < IG_NONCES_SWEEP_MIN ? IG_NONCES_SWEEP_MIN
	             : want > IG_NONCES_SWEEP_MAX ? IG_NONCES_SWEEP_MAX : (size_t)want;
	ig_nonces_sweep(r, now_s, slots);
	return slots;
}

ig_nonces_result ig_nonces_check_add(ig_nonces *r, const uint8_t nonce[IG_NONCES_NONCE_BYTES], uint64_t expires_at,
                                     uint64_t now_s)
{
	ig_nonces_sweep(r, now_s, SWEEP_PER_INSERT);
	size_t mask = r->cap - 1, i = home(r, nonce, r->cap);
	for (; r->s[i].expires_at; i = (i + 1) & mask) {
		if (sodium_memcmp(r->s[i].nonce, nonce, IG_NONCES_NONCE_BYTES) != 0)
			continue;
		if (r->s[i].expires_at > now_s)
			return IG_NONCES_SEEN;
		r->s[i].expires_at = expires_at > now_s ? expires_at : now_s + 1;   /* expired twin: reuse the slot */
		return IG_NONCES_FRESH;
	}
	if (r->count >= r->max_entries) {
		/* Full: look harder for expired nonces before refusing to remember. */
		ig_nonces_sweep(r, now_s, 256);
		if (r->count >= r->max_entries)
			return IG_NONCES_FULL;
	}
	if ((r->count + 1) * 2 > r->cap && (r->cap >= r->max_cap || !grow(r)) && r->count + 1 >= r->cap)
		return IG_NONCES_FULL;
	slot e = {.expires_at = expires_at > now_s ? expires_at : now_s + 1};
	memcpy(e.nonce, nonce, IG_NONCES_NONCE_BYTES);
	put(r->s, r->cap, home(r, nonce, r->cap), &e);
	r->count++;
	return IG_NONCES_FRESH;
}
