/*
 * duty_collect.c: the collector: sensor readings paid for with coins.
 *
 * Why this exists: a device's readings are worth something only to whoever
 * pays the bank to read them, so each reading goes out sealed under the
 * keys of one coin (ig_coin_data_seal), and the analyst who redeems that coin
 * answers on our results topic under the coin's result key, which only we
 * and that analyst know. This duty keeps a wallet topped up ahead of need
 * (mint), spends one coin per reading, opens the results, and hands back
 * (refund) coins that went unanswered or are about to expire, so credit is
 * not lost. On a clean stop it hands back every coin it still holds
 * (on_leave, a bounded wait for the bank's answer), because a coin wiped
 * from memory is credit gone for good. When the bank cannot tell whether a
 * mint or a refund was recorded (outcome_unknown), the coins are kept and
 * refunded (again) later, which is right whichever way it went. It logs
 * sequence numbers, sizes and the result text, never a coin or a key.
 */
#include "wallet.h"
#include "ig_json.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_WAIT_US 30000000u        /* a mint or refund unanswered this long is retried */
#define NO_CREDIT_BACKOFF_US 60000000u
#define NO_CREDIT_RETRY_US 1000000u        /* before asking for fewer coins */
#define REFUND_ERROR_BACKOFF_US 60000000u
#define REPORT_PERIOD_US 60000000u
#define NO_PIN_PATIENCE_US 5000000u
#define PAYLOAD_MAX 256
#define DATA_MAX (4 + 2 + 512 + 1 + IG_COIN_NONCE_BYTES + PAYLOAD_MAX + IG_AEAD_TAG_BYTES)
#define RESULT_TEXT_MAX 4096
#define LEAVE_RESULT_GRACE_US 2000000u   /* at stop, how long a paid reading may still be answered */

int ig_collect_init(ig_collect_state *c, unsigned interval_s, const char *stream, unsigned result_timeout_s,
                    const ig_pin_state *pin)
{
	memset(c, 0, sizeof *c);
	if (!stream || !ig_id_valid(stream, strlen(stream)) || interval_s == 0 || result_timeout_s == 0)
		return IG_ERR_INVAL;
	snprintf(c->stream, sizeof c->stream, "%s", stream);
	c->interval_s = interval_s;
	c->result_timeout_s = result_timeout_s;
	c->mint_want = IG_WALLET_MINT_BATCH;
	c->pin = pin;
	ig_wallet_init(&c->wallet);
	return IG_OK;
}

/* ---- readings ------------------------------------------------------------------ */

static bool read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n > 0;
}

int ig_reading_take(ig_reading *r)
{
	char buf[4096], path[64];
	memset(r, 0, sizeof *r);
	if (read_file("/proc/loadavg", buf, sizeof buf)) {
		char *end = NULL;
		errno = 0;
		double v = strtod(buf, &end);
		if (end != buf && errno == 0 && isfinite(v) && v >= 0) {
			r->load = v;
			r->has_load = true;
		}
	}
	if (read_file("/proc/meminfo", buf, sizeof buf)) {
		const char *line = strstr(buf, "MemAvailable:");
		unsigned long long kb;
		if (line && sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
			r->mem_kb = kb;
			r->has_mem = true;
		}
	}
	for (int zone = 0; zone < 10 && !r->has_temp; zone++) {
		snprintf(path, sizeof path, "/sys/class/thermal/thermal_zone%d/temp", zone);
		long long milli;
		if (read_file(path, buf, sizeof buf) && sscanf(buf, "%lld", &milli) == 1 && milli > -100000 &&
		    milli < 200000) {
			r->temp_c = (double)milli / 1000.0;
			r->has_temp = true;
		}
	}
	return r->has_load || r->has_mem || r->has_temp ? IG_OK : IG_ERR_IO;
}

int ig_reading_payload(char *out, size_t cap, uint64_t seq, uint64_t t_ms, const ig_reading *r)
{
	int n = snprintf(out, cap, "{\"seq\":%" PRIu64 ",\"t\":%" PRIu64, seq, t_ms);
	size_t used = n < 0 ? cap : (size_t)n;
	if (used < cap && r->has_load)
		used += (size_t)snprintf(out + used, cap - used, ",\"load\":%.2f", r->load);
	if (used < cap && r->has_mem)
		used += (size_t)snprintf(out + used, cap - used, ",\"mem_kb\":%" PRIu64, r->mem_kb);
	if (used < cap && r->has_temp)
		used += (size_t)snprintf(out + used, cap - used, ",\"temp_c\":%.1f", r->temp_c);
	if (used < cap)
		used += (size_t)snprintf(out + used, cap - used, "}");
	if (used >= cap)
		return IG_ERR_RANGE;
	return (int)used;
}

/* ---- results -------------------------------------------------------------------- */

bool ig_collect_result(ig_collect_state *c, const char *topic, const uint8_t *msg, size_t len, char *out,
                       size_t cap, size_t *out_len, uint64_t *seq)
{
	uint8_t header_hash[IG_HASH_BYTES], payload_key[32], result_key[32];
	if (cap == 0 || ig_coin_result_parse_hash(msg, len, header_hash) != IG_OK)
		return false;
	ig_wallet_coin *coin = ig_wallet_find(&c->wallet, header_hash);
	if (!coin)
		return false;
	ig_coin_keys(coin->coin, payload_key, result_key);
	int n = ig_coin_result_open((uint8_t *)out, cap - 1, msg, len, topic, result_key, header_hash);
	sodium_memzero(payload_key, sizeof payload_key);
	sodium_memzero(result_key, sizeof result_key);
	if (n < 0)
		return false;
	out[n] = '\0';
	*out_len = (size_t)n;
	*seq = coin->seq;
	/* A coin already in a refund request stays until the reply settles it;
	 * the bank will refuse that refund, the coin being spent. */
	if (coin->state != IG_WSLOT_REFUNDING)
		ig_wallet_forget(coin);
	return true;
}

/* Network text goes into logs only as printable ASCII. */
static const char *printable(char *out, size_t cap, const char *in, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (n + 4 >= cap && len > n) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static void report(const ig_collect_state *c)
{
	const ig_collect_counters *k = &c->counters;
	ig_log(IG_LOG_INFO,
	       "collector: sent %" PRIu64 ", results %" PRIu64 ", dropped results %" PRIu64 ", error results %" PRIu64
	       ", skipped (no coin) %" PRIu64 "; wallet: ready %zu, outstanding %zu, to refund %zu, uncertain %zu; minted %"
	       PRIu64 ", refunded %" PRIu64 ", refunds refused %" PRIu64 ", refunds retried %" PRIu64
	       "; kept from mints of unknown outcome %" PRIu64 " (of which never recorded %" PRIu64 ")",
	       k->sent, k->results, k->dropped_results, k->error_results, k->skipped_no_coin,
	       ig_wallet_count(&c->wallet, IG_WSLOT_READY),
	       ig_wallet_count(&c->wallet, IG_WSLOT_OUTSTANDING),
	       ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE) + ig_wallet_count(&c->wallet, IG_WSLOT_REFUNDING),
	       ig_wallet_count(&c->wallet, IG_WSLOT_UNCERTAIN), k->minted, k->refunded, k->refund_refused,
	       k->refund_retried, k->uncertain_minted, k->mint_lost);
}

/* ---- mint and refund --------------------------------------------------------------- */

static void maybe_mint(ig_agent *a, ig_collect_state *c, uint64_t now_us)
{
	if (c->mint_nonce[0] || now_us < c->next_mint_us || ig_wallet_count(&c->wallet, IG_WSLOT_READY) >= IG_WALLET_LOW)
		return;
	size_t room = ig_wallet_count(&c->wallet, IG_WSLOT_EMPTY);
	unsigned count = room < c->mint_want ? (unsigned)room : c->mint_want;
	if (count == 0)
		return;
	if (!ig_ch_box_ensure(a, &c->box, c->pin)) {
		if (!c->warned_no_pin && now_us - c->connected_us > NO_PIN_PATIENCE_US) {
			char why[PATH_MAX + 64];
			ig_log(IG_LOG_WARN, "cannot ask the bank for coins: %s", ig_pin_untrusted_why(c->pin, why, sizeof why));
			c->warned_no_pin = true;
		}
		return;
	}
	char request[128];
	ig_bank_nonce(c->mint_nonce);
	int n = snprintf(request, sizeof request, "{\"type\":\"mint\",\"count\":%u,\"nonce\":\"%s\"}", count,
	                 c->mint_nonce);
	if (n < 0 || (size_t)n >= sizeof request || ig_agent_request(a, request, (size_t)n) != IG_OK) {
		c->mint_nonce[0] = '\0';
		return;
	}
	c->mint_count = count;
	c->mint_sent_us = now_us;
	ig_log(IG_LOG_INFO, "asked the bank for %u coins (wallet: %zu ready)", count,
	       ig_wallet_count(&c->wallet, IG_WSLOT_READY));
}

int ig_collect_refund_prepare(ig_collect_state *c, char *out, size_t cap, uint64_t now_us)
{
	if (c->refund_nonce[0] || now_us < c->next_refund_us || ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE) == 0)
		return 0;
	ig_wallet_coin *batch[IG_COINS_PER_REQUEST];
	size_t n = ig_wallet_refund_batch(&c->wallet, batch, IG_COINS_PER_REQUEST);
	char nonce[IG_BANK_NONCE_HEX + 1];
	ig_bank_nonce(nonce);
	int len = ig_wallet_refund_request(out, cap, batch, n, nonce);
	if (len < 0) {
		ig_wallet_refund_retry(&c->wallet);
		return len;
	}
	memcpy(c->refund_nonce, nonce, sizeof nonce);
	c->refund_sent_us = now_us;
	return len;
}

void ig_collect_refund_unsent(ig_collect_state *c)
{
	ig_wallet_refund_retry(&c->wallet);
	c->refund_nonce[0] = '\0';
}

static void maybe_refund(ig_agent *a, ig_collect_state *c, uint64_t now_us)
{
	if (c->refund_nonce[0] || now_us < c->next_refund_us || ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE) == 0)
		return;
	char *request = sodium_malloc(IG_COLLECT_REFUND_REQUEST_MAX);
	if (!request)
		return;
	int len = ig_collect_refund_prepare(c, request, IG_COLLECT_REFUND_REQUEST_MAX, now_us);
	int rc = len <= 0 ? IG_ERR_RANGE : ig_agent_request(a, request, (size_t)len);
	sodium_free(request);   /* wipes the coins in it */
	if (len <= 0)
		return;
	if (rc != IG_OK) {
		ig_collect_refund_unsent(c);
		return;
	}
	size_t n = 0, answered_late = 0, uncertain = 0, again = 0;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		const ig_wallet_coin *w = &c->wallet.slot[i];
		if (w->state != IG_WSLOT_REFUNDING)
			continue;
		n++;
		answered_late += w->sealed;
		uncertain += w->uncertain_mint;
		again += w->refund_unknown;
	}
	ig_log(IG_LOG_INFO, "asked the bank to refund %zu coins (%zu paid for messages without a result, %zu from mints "
	                    "of unknown outcome, %zu whose earlier refund had an unknown outcome, %zu unused%s)",
	       n, answered_late, uncertain, again, n - answered_late - uncertain, c->leaving ? "; stopping" : "");
}

static void expire_requests(ig_collect_state *c, uint64_t now_us)
{
	if (c->mint_nonce[0] && now_us - c->mint_sent_us > REQUEST_WAIT_US) {
		ig_log(IG_LOG_WARN, "the bank did not answer our mint request within %u s; asking again",
		       REQUEST_WAIT_US / 1000000u);
		c->mint_nonce[0] = '\0';
	}
	if (c->refund_nonce[0] && now_us - c->refund_sent_us > REQUEST_WAIT_US) {
		size_t n = ig_wallet_refund_retry(&c->wallet);
		ig_log(IG_LOG_WARN, "the bank did not answer our refund request within %u s; %zu coins will be offered "
		                    "again", REQUEST_WAIT_US / 1000000u, n);
		c->refund_nonce[0] = '\0';
	}
}

/* Opens the coins boxed in a reply to our mint (a coins answer, or an
 * outcome_unknown error) and puts them in the wallet, READY or UNCERTAIN.
 * The caller has matched the nonce. Returns how many coins were added, 0
 * if they were rejected or lost, or IG_ERR_INVAL if the reply was ignored
 * unopened (a genuine one may still come). */
static int take_coins(ig_agent *a, ig_collect_state *c, const cJSON *msg, bool uncertain, uint64_t *expires_out)
{
	const char *what = uncertain ? "coins of a mint of unknown outcome" : "coins";
	uint64_t expires_at = 0;
	if (ig_json_uint(&expires_at, cJSON_GetObjectItemCaseSensitive(msg, "expires_at"), 1, 1000000000000000ull) !=
	    IG_OK) {
		ig_log(IG_LOG_WARN, "%s ignored: the reply has no valid \"expires_at\"", what);
		return IG_ERR_INVAL;
	}
	if (!ig_ch_box_ensure(a, &c->box, c->pin)) {
		char why[PATH_MAX + 64];
		ig_log(IG_LOG_WARN, "%s refused: %s", what, ig_pin_untrusted_why(c->pin, why, sizeof why));
		return IG_ERR_INVAL;
	}
	uint8_t coins[IG_COINS_PER_REQUEST * IG_COIN_BYTES];
	int n = ig_ch_box_open(coins, sizeof coins, msg, &c->box.bk);
	if (n < 0 || n == 0 || n % IG_COIN_BYTES != 0 || (unsigned)n / IG_COIN_BYTES > c->mint_count) {
		sodium_memzero(coins, sizeof coins);
		ig_log(IG_LOG_ERR, "%s rejected: %s", what,
		       n == IG_ERR_CRYPTO ? "the box is not from the pinned cluster head or was altered"
		                          : "the box is malformed or holds the wrong number of coins");
		return 0;
	}
	int count = n / IG_COIN_BYTES;
	int rc = uncertain ? ig_wallet_add_uncertain(&c->wallet, coins, (size_t)count, expires_at)
	                   : ig_wallet_add(&c->wallet, coins, (size_t)count, expires_at);
	sodium_memzero(coins, sizeof coins);
	if (rc != IG_OK) {
		ig_log(IG_LOG_ERR, "%d %s received but the wallet has no room for them; they are lost", count, what);
		return 0;
	}
	*expires_out = expires_at;
	return count;
}

static bool handle_coins(ig_agent *a, ig_collect_state *c, const cJSON *msg)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	if (!c->mint_nonce[0] || !cJSON_IsString(nonce) || strcmp(nonce->valuestring, c->mint_nonce) != 0) {
		ig_log(IG_LOG_WARN, "coins ignored: their nonce does not match an outstanding mint request of ours");
		return true;
	}
	uint64_t expires_at = 0;
	int taken = take_coins(a, c, msg, false, &expires_at);
	if (taken < 0)
		return true;
	c->mint_nonce[0] = '\0';
	if (taken == 0)
		return true;
	size_t count = (size_t)taken;
	c->counters.minted += count;
	c->mint_failures = 0;
	c->mint_want = IG_WALLET_MINT_BATCH;
	c->warned_no_coin = false;
	uint64_t now_s = ig_now_ms() / 1000u;
	ig_log(IG_LOG_INFO, "received %zu coins from the bank (valid for %" PRId64 " s); wallet: %zu ready", count,
	       (int64_t)(expires_at - now_s), ig_wallet_count(&c->wallet, IG_WSLOT_READY));
	return true;
}

static bool handle_refunded(ig_collect_state *c, const cJSON *msg)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	const cJSON *refunded = cJSON_GetObjectItemCaseSensitive(msg, "refunded");
	const cJSON *refused = cJSON_GetObjectItemCaseSensitive(msg, "refused");
	const cJSON *balance = cJSON_GetObjectItemCaseSensitive(msg, "balance");
	if (!c->refund_nonce[0] || !cJSON_IsString(nonce) || strcmp(nonce->valuestring, c->refund_nonce) != 0) {
		ig_log(IG_LOG_WARN, "refund reply ignored: its nonce does not match an outstanding refund request of ours");
		return true;
	}
	c->refund_nonce[0] = '\0';
	size_t asked = ig_wallet_count(&c->wallet, IG_WSLOT_REFUNDING);
	/* Each refused coin by its hash: those the bank could not record, or
	 * may have recorded, stay to be offered again; the rest are done. */
	ig_refund_tally t = {0};
	char why[256] = "";
	size_t used = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, refused) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(item, "error");
		const cJSON *hash_hex = cJSON_GetObjectItemCaseSensitive(item, "coin_hash");
		uint8_t hash[IG_HASH_BYTES];
		size_t refused_before = t.refused;
		if (!cJSON_IsString(code))
			continue;
		if (!cJSON_IsString(hash_hex) ||
		    ig_hex_decode(hash, sizeof hash, hash_hex->valuestring, strlen(hash_hex->valuestring)) != IG_OK ||
		    !ig_wallet_refund_refused(&c->wallet, hash, code->valuestring, &t))
			continue;   /* not one of ours: the rest below settles it */
		char safe[40];
		if (t.refused == refused_before || used + 48 >= sizeof why)
			continue;
		printable(safe, sizeof safe, code->valuestring, strlen(code->valuestring));
		used += (size_t)snprintf(why + used, sizeof why - used, "%s%s", used ? ", " : " (", safe);
	}
	if (used)
		snprintf(why + used, sizeof why - used, ")");
	/* A refused coin whose hash we cannot match is counted as refused
	 * and wiped with the rest: the bank said no to it. */
	int nrefused = cJSON_IsArray(refused) ? cJSON_GetArraySize(refused) : 0;
	size_t matched = t.refunded_before + t.mint_lost + t.retry + t.refused;
	if ((size_t)nrefused > matched)
		t.refused += (size_t)nrefused - matched;
	ig_wallet_refund_settle(&c->wallet, &t);
	uint64_t ok = 0, bal = 0;
	if (ig_json_uint(&ok, refunded, 0, IG_JSON_UINT_MAX) != IG_OK)
		ok = 0;
	c->counters.refunded += ok + t.refunded_before;
	c->counters.refund_refused += t.refused;
	c->counters.refund_retried += t.retry;
	c->counters.mint_lost += t.mint_lost;
	if (t.retry)
		c->next_refund_us = ig_mono_us() + REFUND_ERROR_BACKOFF_US;
	/* "refunded: N of M coins credited back, K refused" first: operators
	 * and tests read that part. */
	char more[512] = "";
	size_t m = 0;
	if (t.refunded_before)
		m += (size_t)snprintf(more + m, sizeof more - m, "; %zu credited back by an earlier refund of unknown "
		                                                 "outcome", t.refunded_before);
	if (t.uncertain_back && m < sizeof more)
		m += (size_t)snprintf(more + m, sizeof more - m, "; %zu of the coins credited back came from mints "
		                                                 "of unknown outcome (they were recorded after all)", t.uncertain_back);
	if (t.mint_lost && m < sizeof more)
		m += (size_t)snprintf(more + m, sizeof more - m, "; %zu from mints that were never recorded (nothing was "
		                                                 "debited)", t.mint_lost);
	if (t.retry && m < sizeof more)
		m += (size_t)snprintf(more + m, sizeof more - m, "; %zu to offer again in %u s (the bank did not record "
		                                                 "the refund, or does not know whether it did)",
		                      t.retry, REFUND_ERROR_BACKOFF_US / 1000000u);
	if (ig_json_uint(&bal, balance, 0, IG_JSON_UINT_MAX) == IG_OK && m < sizeof more)
		snprintf(more + m, sizeof more - m, "; balance %" PRIu64, bal);
	ig_log(IG_LOG_INFO, "refunded: %" PRIu64 " of %zu coins credited back, %zu refused%s%s",
	       ok, asked, t.refused, why, more);
	return true;
}

/* Bank refusals that may come without a nonce: they can only be about a mint. */
static bool is_mint_only_error(const char *code)
{
	return strcmp(code, "no_credit") == 0 || strcmp(code, "over_limit") == 0;
}

static bool handle_error(ig_agent *a, ig_collect_state *c, const cJSON *msg)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	if (!cJSON_IsString(code))
		return false;
	bool mint = false, refund = false;
	if (cJSON_IsString(nonce)) {
		mint = c->mint_nonce[0] && strcmp(nonce->valuestring, c->mint_nonce) == 0;
		refund = c->refund_nonce[0] && strcmp(nonce->valuestring, c->refund_nonce) == 0;
	} else if (is_mint_only_error(code->valuestring)) {
		mint = c->mint_nonce[0] != '\0';
	}
	char safe[48];
	printable(safe, sizeof safe, code->valuestring, strlen(code->valuestring));
	uint64_t now = ig_mono_us();
	bool unknown = strcmp(code->valuestring, "outcome_unknown") == 0;
	if (mint && unknown) {
		/* The mint may be durable, so its credit may be gone into these
		 * coins: keep them, unspent, and refund them once connected again
		 * (the bank's ledger takes no records until it restarts). */
		uint64_t expires_at = 0;
		int kept = cJSON_GetObjectItemCaseSensitive(msg, "box") ? take_coins(a, c, msg, true, &expires_at) : 0;
		if (kept > 0) {
			c->counters.uncertain_minted += (uint64_t)kept;
			ig_log(IG_LOG_WARN, "the bank cannot tell whether our mint of %u coins was recorded (outcome_unknown): "
			                    "keeping the %d coins it sent, unspent, to refund them once we are connected again "
			                    "(a refund restores the credit if the mint was recorded, and costs nothing if not)",
			       c->mint_count, kept);
		} else {
			ig_log(IG_LOG_WARN, "the bank cannot tell whether our mint of %u coins was recorded (outcome_unknown), "
			                    "and no usable coins came with the answer", c->mint_count);
		}
	}
	if (mint) {
		c->mint_nonce[0] = '\0';
		uint64_t delay;
		if (strcmp(code->valuestring, "no_credit") == 0 && c->mint_count > 1) {
			/* Some credit may be left: ask for less before giving up. */
			c->mint_want = c->mint_count / 2;
			delay = NO_CREDIT_RETRY_US;
			ig_log(IG_LOG_WARN, "the bank has too little credit for %u coins; asking for %u", c->mint_count,
			       c->mint_want);
		} else if (strcmp(code->valuestring, "no_credit") == 0) {
			c->mint_want = IG_WALLET_MINT_BATCH;
			delay = NO_CREDIT_BACKOFF_US;
			ig_log(IG_LOG_ERR, "the bank refused to mint even %u coin: %s has no credit left, so readings stop once "
			                   "the wallet is empty, until an admin adds credit (iotguard credit --id %s --amount N); asking again "
			                   "in %u s",
			       c->mint_count, ig_agent_id(a), ig_agent_id(a), NO_CREDIT_BACKOFF_US / 1000000u);
		} else {
			delay = ig_agent_backoff_us(c->mint_failures);
			if (delay < 5000000u)
				delay = 5000000u;
			if (c->mint_failures < 16)
				c->mint_failures++;
			if (unknown)
				ig_log(IG_LOG_INFO, "asking the bank for fresh coins in %.1f s", (double)delay / 1e6);
			else
				ig_log(IG_LOG_WARN, "the bank refused to mint %u coins (%s); asking again in %.1f s", c->mint_count,
				       safe, (double)delay / 1e6);
		}
		c->next_mint_us = now + delay;
		return true;
	}
	if (refund) {
		c->refund_nonce[0] = '\0';
		size_t n = ig_wallet_refund_retry(&c->wallet);
		c->next_refund_us = now + REFUND_ERROR_BACKOFF_US;
		ig_log(IG_LOG_WARN, "the bank refused our refund of %zu coins (%s); offering them again in %u s", n, safe,
		       REFUND_ERROR_BACKOFF_US / 1000000u);
		return true;
	}
	return false;
}

/* ---- readings out ---------------------------------------------------------------- */

static uint64_t reading_delay_us(unsigned interval_s)
{
	uint64_t permille = 900 + randombytes_uniform(201);   /* +-10% */
	return (uint64_t)interval_s * 1000u * permille;
}

static void collect_once(ig_agent *a, ig_collect_state *c)
{
	uint64_t now_ms = ig_now_ms();
	if (!c->pin->known) {
		c->counters.skipped_no_coin++;
		ig_log(IG_LOG_DEBUG, "reading skipped: no cluster-head key pinned yet");
		return;
	}
	ig_wallet_coin *coin = ig_wallet_take(&c->wallet, now_ms / 1000u);
	if (!coin) {
		c->counters.skipped_no_coin++;
		ig_log(c->warned_no_coin ? IG_LOG_DEBUG : IG_LOG_WARN,
		       "reading skipped: no coin in the wallet (waiting for the bank to mint some)");
		c->warned_no_coin = true;
		return;
	}
	ig_reading r;
	if (ig_reading_take(&r) != IG_OK) {
		ig_log(IG_LOG_WARN, "reading skipped: cannot read /proc/loadavg, /proc/meminfo or a thermal zone");
		return;
	}
	char payload[PAYLOAD_MAX], topic[IG_BANK_TOPIC_MAX];
	uint8_t out[DATA_MAX], header_hash[IG_HASH_BYTES];
	uint64_t seq = c->seq + 1;
	int plen = ig_reading_payload(payload, sizeof payload, seq, now_ms, &r);
	snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/data/%s", ig_agent_cluster(a), ig_agent_id(a), c->stream);
	if (plen < 0)
		return;
	int n = ig_coin_data_seal(out, sizeof out, c->pin->pk, coin->coin, ig_suite_preferred(), ig_agent_id(a), topic,
	                          (const uint8_t *)payload, (size_t)plen, header_hash);
	if (n < 0) {
		ig_log(IG_LOG_ERR, "cannot seal reading %" PRIu64 " (error %d); the coin stays in the wallet", seq, n);
		return;
	}
	c->seq = seq;
	ig_wallet_mark_sent(coin, header_hash, seq, now_ms);
	if (ig_agent_publish(a, topic, out, (size_t)n, 1) != IG_OK) {
		/* The message never left: hand the coin back rather than reuse it. */
		coin->state = IG_WSLOT_REFUND_DUE;
		return;
	}
	c->counters.sent++;
	ig_log(IG_LOG_INFO, "reading seq %" PRIu64 " sent on %s (%d bytes, %d-byte payload); wallet: %zu ready, %zu "
	                    "outstanding",
	       seq, c->stream, n, plen, ig_wallet_count(&c->wallet, IG_WSLOT_READY),
	       ig_wallet_count(&c->wallet, IG_WSLOT_OUTSTANDING));
}

/* ---- the duty --------------------------------------------------------------------- */

static void collect_on_connect(ig_agent *a, void *state)
{
	ig_collect_state *c = state;
	char filter[IG_BANK_TOPIC_MAX];
	uint64_t now = ig_mono_us();
	c->connected_us = now;
	snprintf(filter, sizeof filter, "iotguard/%s/dev/%s/results/+", ig_agent_cluster(a), ig_agent_id(a));
	ig_agent_subscribe(a, filter, 1);
	/* Coins of a mint of unknown outcome wait for this: the broker may have
	 * restarted with its ledger back, so refund them now. If it has not,
	 * the refund is answered storage_failed and offered again later. */
	size_t released = ig_wallet_release_uncertain(&c->wallet);
	if (released)
		ig_log(IG_LOG_INFO, "connected again: offering the bank a refund of %zu coins from mints of unknown outcome",
		       released);
	if (ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE) > 0)
		c->next_refund_us = 0;
	if (!c->next_reading_us)
		c->next_reading_us = now + reading_delay_us(c->interval_s);
	if (!c->next_report_us)
		c->next_report_us = now + REPORT_PERIOD_US;
}

static bool collect_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_collect_state *c = state;
	char collector[IG_ID_MAX + 1], stream[IG_ID_MAX + 1], safe[IG_BANK_TOPIC_MAX];
	if (ig_bank_topic_split(topic, ig_agent_cluster(a), "results", collector, stream) != IG_OK ||
	    strcmp(collector, ig_agent_id(a)) != 0)
		return false;
	char *text = malloc(RESULT_TEXT_MAX);
	char *safe_text = malloc(RESULT_TEXT_MAX);
	size_t n = 0;
	uint64_t seq = 0;
	if (text && safe_text && strcmp(stream, c->stream) == 0 &&
	    ig_collect_result(c, topic, payload, len, text, RESULT_TEXT_MAX, &n, &seq)) {
		c->counters.results++;
		cJSON *json = cJSON_ParseWithLength(text, n);
		const cJSON *code = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "error") : NULL;
		if (cJSON_IsString(code)) {
			/* The analyst burned the coin but could not use the reading. */
			c->counters.error_results++;
			ig_log(IG_LOG_WARN, "error result for seq %" PRIu64 ": %zu bytes: %s", seq, n,
			       printable(safe_text, RESULT_TEXT_MAX, text, n));
		} else {
			ig_log(IG_LOG_INFO, "result for seq %" PRIu64 ": %zu bytes: %s", seq, n,
			       printable(safe_text, RESULT_TEXT_MAX, text, n));
		}
		cJSON_Delete(json);
	} else {
		c->counters.dropped_results++;
		ig_log(IG_LOG_WARN, "dropped result (unknown/tampered): %zu bytes on %s", len,
		       printable(safe, sizeof safe, topic, strlen(topic)));
	}
	free(text);
	free(safe_text);
	return true;
}

static bool collect_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_collect_state *c = state;
	if (strcmp(type, "coins") == 0)
		return handle_coins(a, c, msg);
	if (strcmp(type, "refunded") == 0)
		return handle_refunded(c, msg);
	if (strcmp(type, "error") == 0)
		return handle_error(a, c, msg);
	return false;
}

static void collect_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_collect_state *c = state;
	size_t marked = ig_wallet_sweep(&c->wallet, ig_now_ms(), (uint64_t)c->result_timeout_s * 1000u);
	if (marked)
		ig_log(IG_LOG_DEBUG, "%zu coins to refund (no result within %u s, or near expiry)", marked,
		       c->result_timeout_s);
	expire_requests(c, now_us);
	maybe_refund(a, c, now_us);
	maybe_mint(a, c, now_us);
	if (now_us >= c->next_reading_us) {
		c->next_reading_us = now_us + reading_delay_us(c->interval_s);
		collect_once(a, c);
	}
	if (now_us >= c->next_report_us) {
		c->next_report_us = now_us + REPORT_PERIOD_US;
		report(c);
	}
}

static size_t collect_status(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_collect_state *c = state;
	(void)a;
	int n = snprintf(out, cap, ",\"wallet\":{\"coins\":%zu,\"outstanding\":%zu}",
	                 ig_wallet_count(&c->wallet, IG_WSLOT_READY), ig_wallet_count(&c->wallet, IG_WSLOT_OUTSTANDING));
	return n < 0 ? 0 : (size_t)n;
}

/* Stopping: hand back every coin still held. Unused coins go back at once.
 * A reading already paid for gets a short grace to be answered (an analyst
 * may be redeeming its coin right now; refunding it would waste that
 * work), then its coin goes back too. A mint in flight is waited for,
 * since its coins would otherwise arrive after we left. All of it within
 * the core's bounded IG_AGENT_LEAVE_WAIT_US. */
static bool collect_on_leave(ig_agent *a, void *state, uint64_t now_us)
{
	ig_collect_state *c = state;
	if (!c->leaving) {
		c->leaving = true;
		c->leave_us = now_us;
		c->next_refund_us = 0;
		size_t ready = ig_wallet_count(&c->wallet, IG_WSLOT_READY) + ig_wallet_count(&c->wallet, IG_WSLOT_UNCERTAIN);
		size_t paid = ig_wallet_count(&c->wallet, IG_WSLOT_OUTSTANDING);
		if (ready || paid)
			ig_log(IG_LOG_INFO, "stopping: handing %zu unused coins back to the bank, and the %zu paid for readings "
			                    "that get no result within %u ms",
			       ready, paid, LEAVE_RESULT_GRACE_US / 1000u);
	}
	bool grace = now_us - c->leave_us < LEAVE_RESULT_GRACE_US;
	ig_wallet_cancel(&c->wallet, !grace);
	if (c->mint_nonce[0] || c->refund_nonce[0])
		return true;
	if (ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE) > 0 && now_us >= c->next_refund_us) {
		maybe_refund(a, c, now_us);
		if (c->refund_nonce[0])
			return true;
	}
	/* Nothing in flight: done, unless readings may still be answered. (A
	 * refund refused, or left to offer again later, is not retried within
	 * the stop: the stop report says what is left.) */
	return grace && ig_wallet_count(&c->wallet, IG_WSLOT_OUTSTANDING) > 0;
}

static void collect_on_stop(ig_agent *a, void *state)
{
	ig_collect_state *c = state;
	(void)a;
	report(c);
	size_t held = IG_WALLET_CAP - ig_wallet_count(&c->wallet, IG_WSLOT_EMPTY);
	if (held)
		ig_log(IG_LOG_WARN, "wiping %zu coins the bank did not take back (no connection, or no answer within %u s "
		                    "at stop): their credit is lost",
		       held, IG_AGENT_LEAVE_WAIT_US / 1000000u);
	ig_wallet_wipe(&c->wallet);
	ig_ch_box_wipe(&c->box);
}

const ig_duty_ops ig_duty_collect = {
	.name = "collect",
	.on_connect = collect_on_connect,
	.on_inbox = collect_on_inbox,
	.on_tick = collect_on_tick,
	.on_stop = collect_on_stop,
	.on_message = collect_on_message,
	.status_fields = collect_status,
	.on_leave = collect_on_leave,
};
