/*
 * wallet.c: the collector's coins, and what both bank duties share.
 *
 * Why this exists: a coin is money and a key at once. Spent twice, it lets
 * the bank refuse the second message; lost, it is credit gone; logged, it
 * opens a payload. So the wallet keeps every coin in exactly one state,
 * spends each once, remembers which message it paid for until the result
 * comes back, hands back what will not be used and wipes every coin the
 * moment it leaves. The table is small and scanned linearly: a collector
 * holds tens of coins, not millions (that is the bank's problem).
 */
#include "wallet.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

void ig_wallet_init(ig_wallet *w) { memset(w, 0, sizeof *w); }

size_t ig_wallet_count(const ig_wallet *w, ig_wallet_slot_state st)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++)
		n += w->slot[i].state == st;
	return n;
}

static int add_as(ig_wallet *w, const uint8_t *coins, size_t n, uint64_t expires_at, ig_wallet_slot_state st)
{
	if (n > ig_wallet_count(w, IG_WSLOT_EMPTY))
		return IG_ERR_RANGE;
	size_t added = 0;
	for (size_t i = 0; i < IG_WALLET_CAP && added < n; i++) {
		ig_wallet_coin *c = &w->slot[i];
		if (c->state != IG_WSLOT_EMPTY)
			continue;
		memset(c, 0, sizeof *c);
		memcpy(c->coin, coins + added * IG_COIN_BYTES, IG_COIN_BYTES);
		c->expires_at = expires_at;
		c->state = st;
		c->uncertain_mint = st == IG_WSLOT_UNCERTAIN;
		added++;
	}
	return IG_OK;
}

int ig_wallet_add(ig_wallet *w, const uint8_t *coins, size_t n, uint64_t expires_at)
{
	return add_as(w, coins, n, expires_at, IG_WSLOT_READY);
}

/* Never spent: if the mint was lost, the bank knows no such coin, and a
 * reading paid with one would go out and never be answered. A refund is
 * the one use that is right whichever way the mint went. */
int ig_wallet_add_uncertain(ig_wallet *w, const uint8_t *coins, size_t n, uint64_t expires_at)
{
	return add_as(w, coins, n, expires_at, IG_WSLOT_UNCERTAIN);
}

size_t ig_wallet_release_uncertain(ig_wallet *w)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		if (w->slot[i].state == IG_WSLOT_UNCERTAIN) {
			w->slot[i].state = IG_WSLOT_REFUND_DUE;
			n++;
		}
	}
	return n;
}

ig_wallet_coin *ig_wallet_take(ig_wallet *w, uint64_t now_s)
{
	ig_wallet_coin *best = NULL;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		ig_wallet_coin *c = &w->slot[i];
		if (c->state != IG_WSLOT_READY || c->expires_at <= now_s + IG_WALLET_MIN_LIFE_S)
			continue;
		/* Soonest expiry first, so coins are used rather than refunded. */
		if (!best || c->expires_at < best->expires_at)
			best = c;
	}
	return best;
}

void ig_wallet_mark_sent(ig_wallet_coin *c, const uint8_t header_hash[IG_HASH_BYTES], uint64_t seq, uint64_t now_ms)
{
	memcpy(c->header_hash, header_hash, IG_HASH_BYTES);
	c->seq = seq;
	c->sent_ms = now_ms;
	c->sealed = true;
	c->state = IG_WSLOT_OUTSTANDING;
}

ig_wallet_coin *ig_wallet_find(ig_wallet *w, const uint8_t header_hash[IG_HASH_BYTES])
{
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		ig_wallet_coin *c = &w->slot[i];
		if (c->state != IG_WSLOT_EMPTY && c->sealed && sodium_memcmp(c->header_hash, header_hash, IG_HASH_BYTES) == 0)
			return c;
	}
	return NULL;
}

void ig_wallet_forget(ig_wallet_coin *c) { sodium_memzero(c, sizeof *c); }

size_t ig_wallet_sweep(ig_wallet *w, uint64_t now_ms, uint64_t result_timeout_ms)
{
	uint64_t now_s = now_ms / 1000u;
	size_t marked = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		ig_wallet_coin *c = &w->slot[i];
		bool due = false;
		if (c->state == IG_WSLOT_OUTSTANDING)
			/* Once expired nobody can redeem it any more, so waiting is pointless. */
			due = now_ms - c->sent_ms >= result_timeout_ms || c->expires_at <= now_s;
		else if (c->state == IG_WSLOT_READY)
			due = c->expires_at <= now_s + IG_WALLET_MIN_LIFE_S;
		if (due) {
			c->state = IG_WSLOT_REFUND_DUE;
			marked++;
		}
	}
	return marked;
}

size_t ig_wallet_cancel(ig_wallet *w, bool outstanding)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		ig_wallet_coin *c = &w->slot[i];
		if (c->state == IG_WSLOT_READY || c->state == IG_WSLOT_UNCERTAIN ||
		    (outstanding && c->state == IG_WSLOT_OUTSTANDING)) {
			c->state = IG_WSLOT_REFUND_DUE;
			n++;
		}
	}
	return n;
}

size_t ig_wallet_refund_batch(ig_wallet *w, ig_wallet_coin **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP && n < max; i++) {
		if (w->slot[i].state != IG_WSLOT_REFUND_DUE)
			continue;
		w->slot[i].state = IG_WSLOT_REFUNDING;
		out[n++] = &w->slot[i];
	}
	return n;
}

bool ig_wallet_refund_refused(ig_wallet *w, const uint8_t coin_hash[IG_HASH_BYTES], const char *code,
                              ig_refund_tally *t)
{
	ig_wallet_coin *c = NULL;
	for (size_t i = 0; i < IG_WALLET_CAP && !c; i++) {
		uint8_t h[IG_HASH_BYTES];
		if (w->slot[i].state != IG_WSLOT_REFUNDING)
			continue;
		ig_coin_hash(h, w->slot[i].coin);
		if (sodium_memcmp(h, coin_hash, IG_HASH_BYTES) == 0)
			c = &w->slot[i];
	}
	if (!c)
		return false;
	bool unknown = strcmp(code, "outcome_unknown") == 0;
	if (unknown || strcmp(code, "storage_failed") == 0) {
		/* Not recorded, or maybe recorded: offering it again is safe
		 * either way (a recorded refund then answers already_refunded). */
		c->refund_unknown |= unknown;
		c->state = IG_WSLOT_REFUND_DUE;
		t->retry++;
		return true;
	}
	bool already = strcmp(code, "already_refunded") == 0, unknown_coin = strcmp(code, "unknown_coin") == 0;
	if (c->refund_unknown && (already || unknown_coin)) {
		/* Our earlier refund was recorded (a coin the bank has since
		 * pruned is unknown to it). That refund was of a known coin, so
		 * even an uncertain mint was durable: the credit came back. */
		t->refunded_before++;
		t->uncertain_back += c->uncertain_mint;
	} else if (unknown_coin && c->uncertain_mint) {
		/* The mint was never recorded: nothing was debited. */
		t->mint_lost++;
	} else {
		t->refused++;
	}
	ig_wallet_forget(c);
	return true;
}

size_t ig_wallet_refund_settle(ig_wallet *w, ig_refund_tally *t)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		if (w->slot[i].state == IG_WSLOT_REFUNDING) {
			if (t) {
				t->refunded++;
				t->uncertain_back += w->slot[i].uncertain_mint;
			}
			ig_wallet_forget(&w->slot[i]);
			n++;
		}
	}
	return n;
}

size_t ig_wallet_refund_retry(ig_wallet *w)
{
	size_t n = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		if (w->slot[i].state == IG_WSLOT_REFUNDING) {
			w->slot[i].state = IG_WSLOT_REFUND_DUE;
			n++;
		}
	}
	return n;
}

void ig_wallet_wipe(ig_wallet *w) { sodium_memzero(w, sizeof *w); }

int ig_wallet_refund_request(char *out, size_t cap, ig_wallet_coin *const *coins, size_t n, const char *nonce)
{
	char hex[2 * IG_COIN_BYTES + 1];
	if (n == 0 || n > IG_COINS_PER_REQUEST)
		return IG_ERR_RANGE;
	int k = snprintf(out, cap, "{\"type\":\"refund\",\"coins\":[");
	if (k < 0 || (size_t)k >= cap)
		return IG_ERR_RANGE;
	size_t used = (size_t)k;
	for (size_t i = 0; i < n; i++) {
		ig_hex_encode(hex, coins[i]->coin, IG_COIN_BYTES);
		k = snprintf(out + used, cap - used, "%s\"%s\"", i ? "," : "", hex);
		sodium_memzero(hex, sizeof hex);
		if (k < 0 || (size_t)k >= cap - used)
			return IG_ERR_RANGE;
		used += (size_t)k;
	}
	k = snprintf(out + used, cap - used, "],\"nonce\":\"%s\"}", nonce);
	if (k < 0 || (size_t)k >= cap - used)
		return IG_ERR_RANGE;
	return (int)(used + (size_t)k);
}

/* ---- boxes from the cluster head ------------------------------------------------ */

int ig_ch_box_open(uint8_t *out, size_t cap, const cJSON *msg, const ig_box_key *bk)
{
	const cJSON *nonce_hex = cJSON_GetObjectItemCaseSensitive(msg, "box_nonce");
	const cJSON *box_b64 = cJSON_GetObjectItemCaseSensitive(msg, "box");
	uint8_t nonce[crypto_box_NONCEBYTES];
	if (!cJSON_IsString(nonce_hex) || !cJSON_IsString(box_b64) ||
	    ig_hex_decode(nonce, sizeof nonce, nonce_hex->valuestring, strlen(nonce_hex->valuestring)) != IG_OK)
		return IG_ERR_INVAL;
	size_t b64_len = strlen(box_b64->valuestring);
	/* Base64 of a box that would fit: at most 4 characters per 3 bytes. */
	if (b64_len / 4 > (cap + crypto_box_MACBYTES + 2) / 3 + 1)
		return IG_ERR_RANGE;
	size_t box_cap = b64_len / 4 * 3 + 3;
	uint8_t *box = sodium_malloc(box_cap);
	if (!box)
		return IG_ERR_NOMEM;
	size_t box_len = 0;
	int rc = IG_ERR_INVAL;
	if (sodium_base642bin(box, box_cap, box_b64->valuestring, b64_len, NULL, &box_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 || box_len < crypto_box_MACBYTES)
		goto done;
	rc = IG_ERR_RANGE;
	if (box_len - crypto_box_MACBYTES > cap)
		goto done;
	rc = IG_ERR_CRYPTO;
	if (crypto_box_open_easy_afternm(out, box, box_len, nonce, bk->k) != 0)
		goto done;
	rc = (int)(box_len - crypto_box_MACBYTES);
done:
	sodium_free(box);
	return rc;
}

void ig_bank_nonce(char out[IG_BANK_NONCE_HEX + 1])
{
	uint8_t raw[IG_BANK_NONCE_HEX / 2];
	randombytes_buf(raw, sizeof raw);
	ig_hex_encode(out, raw, sizeof raw);
}

/* ---- topics --------------------------------------------------------------------- */

/* Copies the next level of *p into out (a valid id) and moves past it. */
static bool take_level(const char **p, char out[IG_ID_MAX + 1], bool last)
{
	const char *end = strchr(*p, '/');
	size_t n = end ? (size_t)(end - *p) : strlen(*p);
	if ((end != NULL) == last || n == 0 || n > IG_ID_MAX || !ig_id_valid(*p, n))
		return false;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n + (end ? 1 : 0);
	return true;
}

static bool take_literal(const char **p, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

int ig_bank_topic_split(const char *topic, const char *cluster, const char *kind, char collector[IG_ID_MAX + 1],
                        char stream[IG_ID_MAX + 1])
{
	char level[IG_ID_MAX + 1];
	const char *p = topic;
	if (!take_literal(&p, "iotguard/") || !take_level(&p, level, false) || strcmp(level, cluster) != 0 ||
	    !take_literal(&p, "dev/") || !take_level(&p, collector, false) || !take_level(&p, level, false) ||
	    strcmp(level, kind) != 0 || !take_level(&p, stream, true))
		return IG_ERR_INVAL;
	return IG_OK;
}
