/*
 * coins.c: the bank's coin index and balances, rebuilt from the ledger.
 *
 * Why this exists: every redeem must learn in O(1) whether a coin was
 * minted, to whom, until when, and whether it is already spent, for up to
 * ten million outstanding coins at no more than 48 bytes of RAM each. A
 * general hash map (a pointer, a malloc'd node and a 32-byte key per coin)
 * would need three times that, so the coins sit by value in one flat
 * linear-probing table of 24-byte slots:
 *
 *   12  first 96 bits of BLAKE2b-256(coin): a prefix of a hash of a secret
 *       random value, which nobody can steer into a collision (10M coins
 *       collide by chance with probability ~10^-15)
 *    4  redeemer tag: 32-bit SipHash, under a key drawn per index, of the
 *       analyst and header hash of the coin's redeem (0 = none), so that
 *       the redeemer's retry of an answer it lost gets the keys again
 *       while anyone else's gets "already spent"
 *    4  expires_at, u32 Unix seconds (clamped at 2^32-1, year 2106)
 *    4  owner index << 4 | in_flight << 2 | state (0 = empty slot)
 *
 * The table is any size (not a power of two): the home slot is a
 * multiply-shift of the hash, it grows by 1.5x at 80% load, and so stays
 * between 53% and 80% full: 30..45 bytes per coin. Deletion (prune) shifts
 * later entries back instead of leaving tombstones, so lookups never slow
 * down with age. Owners (collectors) are few and are kept in an ig_idmap.
 * A replay that knows how many coins are coming sizes the table once
 * (ig_coins_expect), so it never holds an old and a new table at once.
 */
#include "ig_bank.h"
#include "ig_coins.h"

#include "ig_idmap.h"
#include "ig_record.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PREFIX_BYTES 12
#define MIN_CAP 1024u
#define MAX_LOAD_NUM 4 /* grow beyond 4/5 full */
#define MAX_LOAD_DEN 5
#define STATE_MASK 0x3u
#define IN_FLIGHT_BIT 0x4u
#define OWNER_SHIFT 4
#define OWNER_MAX (UINT32_MAX >> OWNER_SHIFT)
/* Tables from this size on are mapped directly and asked for huge pages:
 * filling 10M coins otherwise takes ~100k page faults per table built, and
 * each random probe a TLB miss. */
#define MAP_THRESHOLD (4u << 20)
/* Rough heap cost of one owner beyond its value: the idmap's entry, key
 * copy and slot arrays. Used only by ig_coins_memory. */
#define IDMAP_ENTRY_OVERHEAD 112

typedef struct slot {
	uint8_t prefix[PREFIX_BYTES];
	uint32_t tag;          /* redeemer tag while a redeem is in flight or done; else 0 */
	uint32_t expires_at;
	uint32_t meta;
} slot;
_Static_assert(sizeof(slot) == 24, "a coin slot must stay 24 bytes: the memory budget depends on it");

typedef struct owner {
	uint64_t balance;      /* credit per the ledger */
	uint64_t reserved;     /* promised to mints being written */
	uint64_t outstanding;  /* MINTED coins */
	uint32_t index;
	char id[IG_ID_MAX + 1];
} owner;

struct ig_coins {
	slot *slots;
	uint32_t cap, count, grow_at;
	ig_idmap *owners;      /* id -> owner */
	owner **by_index;      /* owner index -> owner (stable idmap addresses) */
	uint32_t n_owners, by_index_cap;
	uint64_t counts[4];    /* per ig_coin_state */
	uint8_t tag_key[crypto_shorthash_KEYBYTES];
};

/* ---- slots ------------------------------------------------------------------ */

static inline unsigned slot_state(const slot *s) { return s->meta & STATE_MASK; }
static inline uint32_t slot_owner(const slot *s) { return s->meta >> OWNER_SHIFT; }

static inline uint32_t home_of(const uint8_t *prefix, uint32_t cap)
{
	/* The prefix is already uniform when it comes from BLAKE2b; the mix
	 * keeps the table well spread for any input a test feeds it. */
	uint64_t a;
	uint32_t b;
	memcpy(&a, prefix, 8);
	memcpy(&b, prefix + 8, 4);
	uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(((h >> 32) * (uint64_t)cap) >> 32);
}

static inline uint32_t next_slot(uint32_t i, uint32_t cap)
{
	return i + 1 == cap ? 0 : i + 1;
}

/* The slot holding prefix, or the empty slot where it would go. */
static uint32_t probe(const slot *slots, uint32_t cap, const uint8_t *prefix, bool *found)
{
	uint32_t i = home_of(prefix, cap);
	for (;;) {
		const slot *s = &slots[i];
		if (slot_state(s) == 0) {
			*found = false;
			return i;
		}
		if (memcmp(s->prefix, prefix, PREFIX_BYTES) == 0) {
			*found = true;
			return i;
		}
		i = next_slot(i, cap);
	}
}

/* Zeroed slots: calloc for small tables, an anonymous mapping (zero pages
 * for free, huge pages where the kernel allows) for big ones. */
static slot *slots_alloc(uint32_t n)
{
	size_t bytes = (size_t)n * sizeof(slot);
	if (bytes < MAP_THRESHOLD)
		return calloc(n, sizeof(slot));
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it the table still works */
#endif
	return p;
}

static void slots_free(slot *s, uint32_t n)
{
	size_t bytes = (size_t)n * sizeof(slot);
	if (!s)
		return;
	if (bytes < MAP_THRESHOLD)
		free(s);
	else
		(void)munmap(s, bytes);
}

static int rehash(ig_coins *c, uint32_t new_cap)
{
	slot *fresh = slots_alloc(new_cap);
	if (!fresh)
		return IG_ERR_NOMEM;
	for (uint32_t i = 0; i < c->cap; i++) {
		const slot *s = &c->slots[i];
		if (slot_state(s) == 0)
			continue;
		bool found;
		uint32_t j = probe(fresh, new_cap, s->prefix, &found);
		fresh[j] = *s;
	}
	slots_free(c->slots, c->cap);
	c->slots = fresh;
	c->cap = new_cap;
	c->grow_at = (uint32_t)((uint64_t)new_cap * MAX_LOAD_NUM / MAX_LOAD_DEN);
	return IG_OK;
}

/* Makes room for `more` coins before anything is changed, so a mint is
 * applied entirely or not at all. */
static int reserve_slots(ig_coins *c, uint32_t more)
{
	uint64_t need = (uint64_t)c->count + more;
	if (need <= c->grow_at)
		return IG_OK;
	uint64_t new_cap = (uint64_t)c->cap + c->cap / 2;
	uint64_t floor_cap = need * MAX_LOAD_DEN / MAX_LOAD_NUM + 1;
	if (new_cap < floor_cap)
		new_cap = floor_cap;
	if (new_cap > UINT32_MAX)
		return IG_ERR_NOMEM;
	return rehash(c, (uint32_t)new_cap);
}

/* Backward-shift deletion: entries after the hole that may live there move
 * back, so every remaining entry stays reachable from its home slot. */
static void slot_delete(ig_coins *c, uint32_t hole)
{
	uint32_t j = hole;
	for (;;) {
		j = next_slot(j, c->cap);
		if (slot_state(&c->slots[j]) == 0)
			break;
		uint32_t home = home_of(c->slots[j].prefix, c->cap);
		/* j's entry must stay if its home lies cyclically in (hole, j]. */
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		c->slots[hole] = c->slots[j];
		hole = j;
	}
	memset(&c->slots[hole], 0, sizeof c->slots[hole]);
	c->count--;
}

/* ---- owners ------------------------------------------------------------------ */

static owner *owner_get(const ig_coins *c, const char *id)
{
	return id ? ig_idmap_get(c->owners, id) : NULL;
}

static owner *owner_put(ig_coins *c, const char *id)
{
	owner *o = owner_get(c, id);
	if (o)
		return o;
	if (c->n_owners >= OWNER_MAX)
		return NULL;
	if (c->n_owners == c->by_index_cap) {
		uint32_t ncap = c->by_index_cap ? c->by_index_cap * 2 : 16;
		owner **grown = realloc(c->by_index, (size_t)ncap * sizeof *grown);
		if (!grown)
			return NULL;
		c->by_index = grown;
		c->by_index_cap = ncap;
	}
	o = ig_idmap_put(c->owners, id);
	if (!o)
		return NULL;
	o->index = c->n_owners;
	memcpy(o->id, id, strnlen(id, IG_ID_MAX)); /* value is zeroed: NUL-terminated */
	c->by_index[c->n_owners++] = o;
	return o;
}

/* ---- redeemer tags ----------------------------------------------------------- */

/* Keyed, so nobody can pick an (analyst, header) whose tag matches another
 * redeemer's; 0 is reserved for "no tag". The header hash comes first and is
 * fixed-length, so the encoding is unambiguous. */
static uint32_t redeemer_tag(const ig_coins *c, const char *analyst, const uint8_t header_hash[IG_HASH_BYTES])
{
	uint8_t in[IG_HASH_BYTES + IG_ID_MAX], out[crypto_shorthash_BYTES];
	size_t alen = strnlen(analyst, IG_ID_MAX);
	memcpy(in, header_hash, IG_HASH_BYTES);
	memcpy(in + IG_HASH_BYTES, analyst, alen);
	crypto_shorthash(out, in, IG_HASH_BYTES + alen, c->tag_key);
	uint32_t t;
	memcpy(&t, out, sizeof t);
	return t ? t : 1;
}

/* ---- lifecycle ----------------------------------------------------------------- */

ig_coins *ig_coins_new(void)
{
	ig_coins *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->owners = ig_idmap_new(sizeof(owner));
	c->slots = slots_alloc(MIN_CAP);
	c->cap = c->slots ? MIN_CAP : 0;
	if (!c->owners || !c->slots) {
		ig_coins_free(c);
		return NULL;
	}
	c->grow_at = MIN_CAP * MAX_LOAD_NUM / MAX_LOAD_DEN;
	/* Tags are rebuilt from the ledger at every start, so the key need not
	 * outlive the process. */
	randombytes_buf(c->tag_key, sizeof c->tag_key);
	return c;
}

int ig_coins_expect(ig_coins *c, uint64_t more)
{
	if (!c)
		return IG_ERR_INVAL;
	/* The slot count is a u32 and the table stays at most 4/5 full. */
	uint64_t most = (uint64_t)UINT32_MAX * MAX_LOAD_NUM / MAX_LOAD_DEN - 1;
	if (c->count >= most)
		return IG_OK;
	uint64_t limit = most - c->count;
	return reserve_slots(c, (uint32_t)(more < limit ? more : limit));
}

void ig_coins_free(ig_coins *c)
{
	if (!c)
		return;
	slots_free(c->slots, c->cap);
	free(c->by_index);
	if (c->owners)
		ig_idmap_free(c->owners, false);
	sodium_memzero(c->tag_key, sizeof c->tag_key);
	free(c);
}

/* ---- applying records ---------------------------------------------------------- */

static int corrupt(ig_error *err, const ig_record *rec, const uint8_t *hash, const char *why)
{
	char hex[2 * PREFIX_BYTES + 1];
	if (hash) {
		ig_hex_encode(hex, hash, PREFIX_BYTES);
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "ledger record %" PRIu64 " (%s): coin %s...: %s; the ledger is tampered or corrupt",
		                    rec->index, ig_bank_record_type_name(rec->type), hex, why);
	}
	return ig_error_set(err, IG_ERR_CORRUPT, "ledger record %" PRIu64 " (%s): %s; the ledger is tampered or corrupt",
	                    rec->index, ig_bank_record_type_name(rec->type), why);
}

static int decode_failed(ig_error *err, const ig_record *rec, int rc)
{
	if (err)
		(void)ig_error_prefix(err, "ledger record %" PRIu64 ": ", rec->index);
	return rc;
}

static int apply_credit(ig_coins *c, const ig_record *rec, ig_error *err)
{
	ig_credit_rec r;
	int rc = ig_bank_credit_decode(rec->body, rec->body_len, &r, err);
	if (rc != IG_OK)
		return decode_failed(err, rec, rc);
	owner *o = owner_put(c, r.id);
	if (!o)
		return ig_error_set(err, IG_ERR_NOMEM, "ledger record %" PRIu64 ": out of memory for the coin index",
		                    rec->index);
	if (o->balance > UINT64_MAX - r.amount)
		return corrupt(err, rec, NULL, "the credit overflows the balance");
	o->balance += r.amount;
	return IG_OK;
}

static int apply_mint(ig_coins *c, const ig_record *rec, ig_error *err)
{
	/* 2 KiB of hashes: heap, not stack, since the plugin's thread stack
	 * belongs to the broker. */
	ig_mint_rec *r = malloc(sizeof *r);
	if (!r)
		return ig_error_set(err, IG_ERR_NOMEM, "ledger record %" PRIu64 ": out of memory", rec->index);
	int rc = ig_bank_mint_decode(rec->body, rec->body_len, r, err);
	if (rc != IG_OK) {
		rc = decode_failed(err, rec, rc);
		goto done;
	}
	owner *o = owner_get(c, r->owner);
	if (!o || o->balance < r->count) {
		rc = corrupt(err, rec, NULL, "mints more coins than the owner's credit (overdraft)");
		goto done;
	}
	/* Check everything first: a rejected mint leaves the index untouched. */
	for (uint32_t i = 0; i < r->count; i++) {
		bool found;
		(void)probe(c->slots, c->cap, r->hashes[i], &found);
		for (uint32_t k = 0; !found && k < i; k++)
			found = memcmp(r->hashes[k], r->hashes[i], PREFIX_BYTES) == 0;
		if (found) {
			rc = corrupt(err, rec, r->hashes[i], "minted twice");
			goto done;
		}
	}
	if (o->index > OWNER_MAX) {
		rc = corrupt(err, rec, NULL, "too many owners");
		goto done;
	}
	if (reserve_slots(c, r->count) != IG_OK) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "ledger record %" PRIu64 ": out of memory growing the coin index",
		                  rec->index);
		goto done;
	}
	uint32_t expires = r->expires_at > UINT32_MAX ? UINT32_MAX : (uint32_t)r->expires_at;
	for (uint32_t i = 0; i < r->count; i++) {
		bool found;
		uint32_t j = probe(c->slots, c->cap, r->hashes[i], &found);
		slot *s = &c->slots[j];
		memcpy(s->prefix, r->hashes[i], PREFIX_BYTES);
		s->tag = 0;
		s->expires_at = expires;
		s->meta = (o->index << OWNER_SHIFT) | IG_COIN_MINTED;
		c->count++;
	}
	o->balance -= r->count;
	o->outstanding += r->count;
	c->counts[IG_COIN_MINTED] += r->count;
	rc = IG_OK;
done:
	free(r);
	return rc;
}

/* Shared by redeem and refund: the coin must be MINTED and owned by the
 * collector the record names. tag: the redeemer's, or 0. */
static int spend(ig_coins *c, const ig_record *rec, const uint8_t *hash, const char *collector,
                 ig_coin_state to, uint32_t tag, ig_error *err)
{
	bool found;
	uint32_t j = probe(c->slots, c->cap, hash, &found);
	if (!found)
		return corrupt(err, rec, hash, "not in the coin index (never minted, or spent and pruned)");
	slot *s = &c->slots[j];
	unsigned st = slot_state(s);
	if (st == IG_COIN_REDEEMED)
		return corrupt(err, rec, hash, "already redeemed");
	if (st == IG_COIN_REFUNDED)
		return corrupt(err, rec, hash, "already refunded");
	owner *o = c->by_index[slot_owner(s)];
	if (strcmp(o->id, collector) != 0)
		return corrupt(err, rec, hash, "the record names another collector than the coin's owner");
	if (to == IG_COIN_REFUNDED && o->balance == UINT64_MAX)
		return corrupt(err, rec, hash, "the refund overflows the balance");
	s->meta = (s->meta & ~(STATE_MASK | IN_FLIGHT_BIT)) | (uint32_t)to;
	s->tag = tag;
	o->outstanding--;
	c->counts[IG_COIN_MINTED]--;
	c->counts[to]++;
	if (to == IG_COIN_REFUNDED)
		o->balance++;
	return IG_OK;
}

/* A REVOKE ends everything the id held at the bank (docs/LEDGER.md, "State
 * rules"): its balance goes to zero and each of its MINTED coins becomes
 * REFUNDED without returning credit, so nothing survives into a later
 * re-enrolment of the same id. A pure function of the ledger, so the plugin,
 * the CLI and an auditor replaying the records all derive the same state.
 * The scan over the table runs only when the id has coins outstanding and
 * stops once they are all found. */
static int apply_revoke(ig_coins *c, const ig_record *rec, ig_error *err)
{
	ig_revoke rv;
	int rc = ig_record_revoke_decode(rec->body, rec->body_len, &rv, err);
	if (rc != IG_OK)
		return decode_failed(err, rec, rc);
	owner *o = owner_get(c, rv.id);
	if (!o)
		return IG_OK;   /* never credited: nothing to cancel */
	o->balance = 0;
	for (uint32_t i = 0; o->outstanding > 0 && i < c->cap; i++) {
		slot *s = &c->slots[i];
		if (slot_state(s) != IG_COIN_MINTED || slot_owner(s) != o->index)
			continue;
		s->meta = (s->meta & ~(STATE_MASK | IN_FLIGHT_BIT)) | (uint32_t)IG_COIN_REFUNDED;
		s->tag = 0;
		o->outstanding--;
		c->counts[IG_COIN_MINTED]--;
		c->counts[IG_COIN_REFUNDED]++;
	}
	if (o->outstanding != 0)
		return corrupt(err, rec, NULL, "the coin index lost track of the revoked id's coins");
	return IG_OK;
}

int ig_coins_apply(ig_coins *c, const ig_record *rec, ig_error *err)
{
	if (!c || !rec)
		return ig_error_set(err, IG_ERR_INVAL, "coin index: no record given");
	switch (rec->type) {
	case IG_REC_CREDIT:
		return apply_credit(c, rec, err);
	case IG_REC_COIN_MINT:
		return apply_mint(c, rec, err);
	case IG_REC_REVOKE:
		return apply_revoke(c, rec, err);
	case IG_REC_COIN_REDEEM: {
		ig_redeem_rec r;
		int rc = ig_bank_redeem_decode(rec->body, rec->body_len, &r, err);
		if (rc != IG_OK)
			return decode_failed(err, rec, rc);
		/* A record without the header hash (written before redeems were
		 * repeatable) leaves no tag: its analyst's retry is already_spent. */
		uint32_t tag = r.has_header_hash ? redeemer_tag(c, r.analyst, r.header_hash) : 0;
		return spend(c, rec, r.coin_hash, r.collector, IG_COIN_REDEEMED, tag, err);
	}
	case IG_REC_COIN_REFUND: {
		ig_refund_rec r;
		int rc = ig_bank_refund_decode(rec->body, rec->body_len, &r, err);
		if (rc != IG_OK)
			return decode_failed(err, rec, rc);
		return spend(c, rec, r.coin_hash, r.collector, IG_COIN_REFUNDED, 0, err);
	}
	default:
		return IG_OK;
	}
}

/* ---- queries ------------------------------------------------------------------- */

int ig_coins_find(const ig_coins *c, const uint8_t hash[IG_HASH_BYTES], ig_coin_info *info)
{
	if (!c || !hash)
		return IG_ERR_INVAL;
	bool found;
	uint32_t j = probe(c->slots, c->cap, hash, &found);
	if (!found)
		return IG_ERR_NOTFOUND;
	if (info) {
		const slot *s = &c->slots[j];
		info->state = (ig_coin_state)slot_state(s);
		info->in_flight = (s->meta & IN_FLIGHT_BIT) != 0;
		info->expires_at = s->expires_at;
		info->owner = c->by_index[slot_owner(s)]->id;
	}
	return IG_OK;
}

static int mark_in_flight(ig_coins *c, const uint8_t hash[IG_HASH_BYTES], bool on, uint32_t tag)
{
	if (!c || !hash)
		return IG_ERR_INVAL;
	bool found;
	uint32_t j = probe(c->slots, c->cap, hash, &found);
	if (!found)
		return IG_ERR_NOTFOUND;
	slot *s = &c->slots[j];
	if (!on) {
		/* A spent coin keeps its redeemer's tag; a MINTED one forgets the
		 * redeem that failed. */
		if (slot_state(s) == IG_COIN_MINTED)
			s->tag = 0;
		s->meta &= ~IN_FLIGHT_BIT;
		return IG_OK;
	}
	if (slot_state(s) != IG_COIN_MINTED || (s->meta & IN_FLIGHT_BIT))
		return IG_ERR_STATE;
	s->meta |= IN_FLIGHT_BIT;
	s->tag = tag;
	return IG_OK;
}

int ig_coins_set_in_flight(ig_coins *c, const uint8_t hash[IG_HASH_BYTES], bool on)
{
	return mark_in_flight(c, hash, on, 0);
}

int ig_coins_set_redeeming(ig_coins *c, const uint8_t hash[IG_HASH_BYTES], const char *analyst,
                           const uint8_t header_hash[IG_HASH_BYTES])
{
	if (!c || !analyst || !header_hash)
		return IG_ERR_INVAL;
	return mark_in_flight(c, hash, true, redeemer_tag(c, analyst, header_hash));
}

bool ig_coins_redeemed_by(const ig_coins *c, const uint8_t hash[IG_HASH_BYTES], const char *analyst,
                          const uint8_t header_hash[IG_HASH_BYTES])
{
	if (!c || !hash || !analyst || !header_hash)
		return false;
	bool found;
	uint32_t j = probe(c->slots, c->cap, hash, &found);
	if (!found)
		return false;
	const slot *s = &c->slots[j];
	unsigned st = slot_state(s);
	bool redeeming = st == IG_COIN_REDEEMED || (st == IG_COIN_MINTED && (s->meta & IN_FLIGHT_BIT));
	return redeeming && s->tag != 0 && s->tag == redeemer_tag(c, analyst, header_hash);
}

uint64_t ig_coins_balance(const ig_coins *c, const char *id)
{
	const owner *o = c ? owner_get(c, id) : NULL;
	return o ? o->balance : 0;
}

int ig_coins_reserve(ig_coins *c, const char *id, uint64_t n)
{
	if (!c || !id || n == 0)
		return IG_ERR_INVAL;
	owner *o = owner_get(c, id);
	if (!o || o->reserved > o->balance || o->balance - o->reserved < n)
		return IG_ERR_RANGE;
	o->reserved += n;
	return IG_OK;
}

void ig_coins_unreserve(ig_coins *c, const char *id, uint64_t n)
{
	owner *o = c ? owner_get(c, id) : NULL;
	if (o)
		o->reserved = o->reserved > n ? o->reserved - n : 0;
}

uint64_t ig_coins_reserved(const ig_coins *c, const char *id)
{
	const owner *o = c ? owner_get(c, id) : NULL;
	return o ? o->reserved : 0;
}

uint64_t ig_coins_outstanding(const ig_coins *c, const char *id)
{
	const owner *o = c ? owner_get(c, id) : NULL;
	return o ? o->outstanding : 0;
}

uint64_t ig_coins_count(const ig_coins *c, ig_coin_state st)
{
	if (!c || st < IG_COIN_MINTED || st > IG_COIN_REFUNDED)
		return 0;
	return c->counts[st];
}

size_t ig_coins_memory(const ig_coins *c)
{
	if (!c)
		return 0;
	return sizeof *c + (size_t)c->cap * sizeof(slot) + (size_t)c->by_index_cap * sizeof(owner *) +
	       (size_t)c->n_owners * (sizeof(owner) + IDMAP_ENTRY_OVERHEAD);
}

/* Drops spent coins past their expiry from slots [from, to). */
static size_t prune_range(ig_coins *c, uint64_t now, uint32_t from, uint32_t to)
{
	size_t dropped = 0;
	for (uint32_t i = from; i < to && i < c->cap; i++) {
		/* A deletion may shift another entry into slot i: look again. */
		for (;;) {
			slot *s = &c->slots[i];
			unsigned st = slot_state(s);
			if ((st != IG_COIN_REDEEMED && st != IG_COIN_REFUNDED) || (uint64_t)s->expires_at >= now)
				break;
			c->counts[st]--;
			slot_delete(c, i);
			dropped++;
		}
	}
	return dropped;
}

size_t ig_coins_prune_step(ig_coins *c, uint64_t now, uint32_t *cursor, uint32_t max_slots)
{
	if (!c || !cursor)
		return 0;
	if (*cursor >= c->cap)
		*cursor = 0;
	uint32_t from = *cursor, to = max_slots > c->cap - from ? c->cap : from + max_slots;
	size_t dropped = prune_range(c, now, from, to);
	*cursor = to >= c->cap ? 0 : to;
	return dropped;
}

size_t ig_coins_prune(ig_coins *c, uint64_t now)
{
	if (!c)
		return 0;
	size_t dropped = 0;
	for (uint32_t i = 0; i < c->cap; i++) {
		/* A deletion may shift another entry into slot i: look again. Only
		 * entries already visited (or the slot itself) can land here, so
		 * one pass sees every entry. */
		for (;;) {
			slot *s = &c->slots[i];
			unsigned st = slot_state(s);
			if ((st != IG_COIN_REDEEMED && st != IG_COIN_REFUNDED) || (uint64_t)s->expires_at >= now)
				break;
			c->counts[st]--;
			slot_delete(c, i);
			dropped++;
		}
	}
	/* Give memory back once the table is under a quarter full. */
	if (c->cap > MIN_CAP && (uint64_t)c->count * 4 < c->cap) {
		uint64_t target = (uint64_t)c->count * 5 / 3 + 1;
		(void)rehash(c, target < MIN_CAP ? MIN_CAP : (uint32_t)target); /* on NOMEM keep the big table */
	}
	return dropped;
}
