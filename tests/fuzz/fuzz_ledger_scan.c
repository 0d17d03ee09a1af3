/* tests/fuzz/fuzz_ledger_scan.c: fuzzes the full check of a ledger log.
 *
 * Why this exists: `iotguard verify` and every broker start read ledger.log
 * and checkpoint files that an attacker with disk access may have crafted;
 * the scan must refuse them with a message, never crash or read out of
 * bounds. ig_ledger_scan_buffer runs the very scan open() runs, on memory,
 * with the state replay's hooks (census sizing, prefetch hints, ig_state
 * body checks and rules), as the broker uses them.
 *
 * Input: a 2-byte big-endian checkpoint length, the checkpoint text, then
 * the log bytes. The seed is the docs' three-record ledger (LEDGER.md §12)
 * with its signed checkpoint, so the fuzzer starts from a log that passes.
 * Invariants on success: the records applied are exactly 0..height-1 in
 * order, height >= the checkpoint's size, and the torn bytes are the log's
 * bytes past the last valid record. */
#include "fuzz_common.h"
#include "ig_ledger.h"
#include "ig_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct counted {
	ig_state *st;
	ig_ledger_open_opts inner;   /* the replay's own hooks */
	uint64_t next;
	int census_calls;
	uint64_t census_records;
} counted;

static int count_then_apply(void *ctx, const ig_record *rec, ig_error *err)
{
	counted *c = ctx;
	FUZZ_ASSERT(rec->index == c->next);
	FUZZ_ASSERT(c->census_calls == 1);
	c->next++;
	return c->inner.on_record(c->inner.ctx, rec, err);
}

static void census(void *ctx, const ig_ledger_census *cs)
{
	counted *c = ctx;
	c->census_calls++;
	c->census_records = cs->records;
	c->inner.on_census(c->inner.ctx, cs);
}

static void ahead(void *ctx, const ig_record *rec)
{
	counted *c = ctx;
	c->inner.ahead(c->inner.ctx, rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ig_init() != IG_OK)
		abort();
	if (size < 2)
		return 0;
	size_t cp_len = (size_t)data[0] << 8 | data[1];
	if (cp_len > size - 2)
		cp_len = size - 2;
	const char *cp = (const char *)data + 2;
	const uint8_t *log = data + 2 + cp_len;
	size_t log_len = size - 2 - cp_len;

	counted c = {.st = ig_state_new()};
	if (!c.st)
		abort();
	ig_state_replay_opts(c.st, &c.inner);
	ig_ledger_open_opts opts = {
		.on_record = count_then_apply, .on_census = census, .ahead = ahead, .ctx = &c,
	};
	ig_verify_result res;
	ig_error err = {0};
	int rc = ig_ledger_scan_buffer(log, log_len, cp, cp_len, &opts, &res, &err);
	if (rc == IG_OK) {
		FUZZ_ASSERT(res.height == c.next);
		FUZZ_ASSERT(res.height >= res.checkpoint_size);
		FUZZ_ASSERT(res.height <= c.census_records);
		FUZZ_ASSERT(res.torn_bytes < log_len);
	} else {
		FUZZ_ASSERT(err.msg[0] != '\0');
	}
	ig_state_free(c.st);
	return 0;
}
