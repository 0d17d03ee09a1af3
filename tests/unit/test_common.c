/*
 * test_common.c: the shared vocabulary (roles, ids, hex, errors, byte
 * order, clocks, logging, small durable files) that every other module
 * trusts without checking.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_common.h"
#include "ig_durable.h"
#include "ig_ratewin.h"
#include "testutil.h"

Test(common, init_is_idempotent)
{
	cr_assert_eq(ig_init(), IG_OK);
	cr_assert_eq(ig_init(), IG_OK);
}

Test(common, roles)
{
	cr_assert_str_eq(ig_role_name(IG_ROLE_DEVICE), "device");
	cr_assert_str_eq(ig_role_name(IG_ROLE_ANALYST), "analyst");
	cr_assert_str_eq(ig_role_name(IG_ROLE_MONITOR), "monitor");
	cr_assert_str_eq(ig_role_name(IG_ROLE_ADMIN), "admin");
	cr_assert_str_eq(ig_role_name(IG_ROLE_NONE), "none");
	cr_assert_str_eq(ig_role_name(IG_ROLE_WITNESS), "witness");
	cr_assert_str_eq(ig_role_name(IG_ROLE_BRIDGE), "bridge");
	cr_assert_eq(ig_role_parse("bridge"), IG_ROLE_BRIDGE);
	cr_assert_str_eq(ig_role_name((ig_role)7), "none");
	cr_assert_str_eq(ig_role_name((ig_role)-1), "none");
	cr_assert_str_eq(ig_role_name((ig_role)255), "none");
	for (int r = IG_ROLE_DEVICE; r < IG_ROLE_COUNT; r++)
		cr_assert_eq(ig_role_parse(ig_role_name((ig_role)r)), r);
	cr_assert_eq(ig_role_parse("none"), IG_ROLE_NONE);
	cr_assert_eq(ig_role_parse("Device"), IG_ROLE_NONE);
	cr_assert_eq(ig_role_parse("device "), IG_ROLE_NONE);
	cr_assert_eq(ig_role_parse(""), IG_ROLE_NONE);
	cr_assert_eq(ig_role_parse(NULL), IG_ROLE_NONE);
	/* the on-disk role byte order is fixed */
	cr_assert_eq(IG_ROLE_DEVICE, 1);
	cr_assert_eq(IG_ROLE_ANALYST, 2);
	cr_assert_eq(IG_ROLE_MONITOR, 3);
	cr_assert_eq(IG_ROLE_ADMIN, 4);
	cr_assert_eq(IG_ROLE_WITNESS, 5);
	cr_assert_eq(IG_ROLE_BRIDGE, 6);
	cr_assert_eq(IG_ROLE_COUNT, 7);
}

Test(common, id_valid)
{
	cr_assert(ig_id_valid("a", 1));
	cr_assert(ig_id_valid("sensor-1", 8));
	cr_assert(ig_id_valid("A.b_c-9", 7));
	cr_assert(ig_id_valid("...", 3));
	cr_assert(ig_id_valid("-", 1));
	char s[70];
	memset(s, 'x', sizeof s);
	cr_assert(ig_id_valid(s, 64));
	cr_assert_not(ig_id_valid(s, 65));
	cr_assert_not(ig_id_valid(s, 0));
	cr_assert_not(ig_id_valid("", 0));
	cr_assert_not(ig_id_valid(NULL, 3));
	/* the length, not a NUL, delimits */
	cr_assert(ig_id_valid("ab#", 2));
	cr_assert_not(ig_id_valid("ab\0c", 4));
	/* every byte outside the alphabet is refused, alone and inside an id */
	for (int c = 0; c < 256; c++) {
		bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		            c == '.' || c == '-';
		char one[1] = {(char)c};
		char mid[3] = {'a', (char)c, 'b'};
		cr_assert_eq(ig_id_valid(one, 1), want, "byte 0x%02x", c);
		cr_assert_eq(ig_id_valid(mid, 3), want, "byte 0x%02x inside", c);
	}
	/* MQTT wildcards and separators especially */
	cr_assert_not(ig_id_valid("a/b", 3));
	cr_assert_not(ig_id_valid("+", 1));
	cr_assert_not(ig_id_valid("#", 1));
	cr_assert_not(ig_id_valid("$SYS", 4));
	cr_assert_not(ig_id_valid("caf\xc3\xa9", 5));
}

Test(common, hex_round_trip)
{
	uint8_t in[256], out[256];
	char hex[513];
	tu_seq_bytes(in, 256, 0);
	ig_hex_encode(hex, in, sizeof in);
	cr_assert_eq(strlen(hex), 512);
	cr_assert_eq(strncmp(hex, "000102", 6), 0);
	cr_assert_str_eq(hex + 500, "fafbfcfdfeff", "lowercase");
	cr_assert_eq(ig_hex_decode(out, sizeof out, hex, 512), IG_OK);
	cr_assert_eq(memcmp(in, out, sizeof in), 0);
	ig_hex_encode(hex, in, 0);
	cr_assert_str_eq(hex, "");
}

Test(common, hex_decode_strict)
{
	uint8_t out[4];
	cr_assert_eq(ig_hex_decode(out, 4, "deadbeef", 8), IG_OK);
	cr_assert_eq(ig_get_u32(out), 0xdeadbeef);
	cr_assert_eq(ig_hex_decode(out, 4, "DEADBEEF", 8), IG_OK, "upper case decodes");
	cr_assert_eq(ig_get_u32(out), 0xdeadbeef);
	cr_assert_eq(ig_hex_decode(out, 4, "deadbee", 7), IG_ERR_INVAL, "odd length");
	cr_assert_eq(ig_hex_decode(out, 4, "deadbeef00", 10), IG_ERR_INVAL, "too long");
	cr_assert_eq(ig_hex_decode(out, 4, "deadbe", 6), IG_ERR_INVAL, "too short");
	cr_assert_eq(ig_hex_decode(out, 4, "deadbeeg", 8), IG_ERR_INVAL, "bad char");
	cr_assert_eq(ig_hex_decode(out, 4, "dead beef", 9), IG_ERR_INVAL);
	cr_assert_eq(ig_hex_decode(out, 4, "dead bee", 8), IG_ERR_INVAL, "space inside");
	cr_assert_eq(ig_hex_decode(out, 4, "0xdeadbe", 8), IG_ERR_INVAL);
	cr_assert_eq(ig_hex_decode(out, 4, "dead\0eef", 8), IG_ERR_INVAL, "embedded NUL");
	cr_assert_eq(ig_hex_decode(out, 0, "", 0), IG_OK);
	/* random fuzz: decode never accepts something the strict rule refuses */
	char buf[8];
	for (int i = 0; i < 20000; i++) {
		randombytes_buf(buf, sizeof buf);
		bool valid = true;
		for (int k = 0; k < 8; k++) {
			char c = buf[k];
			valid &= (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		}
		cr_assert_eq(ig_hex_decode(out, 4, buf, 8) == IG_OK, valid);
	}
}

Test(common, error_set)
{
	ig_error err = {0};
	cr_assert_eq(ig_error_set(&err, IG_ERR_IO, "open %s: %s", "x", "denied"), IG_ERR_IO);
	cr_assert_eq(err.code, IG_ERR_IO);
	cr_assert_str_eq(err.msg, "open x: denied");
	cr_assert_eq(ig_error_set(NULL, IG_ERR_CORRUPT, "ignored %d", 1), IG_ERR_CORRUPT, "NULL err is allowed");
	/* overlong messages are truncated, never overflow */
	char big[2000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ig_error_set(&err, IG_ERR_RANGE, "%s", big);
	cr_assert_eq(strlen(err.msg), sizeof err.msg - 1);
}

Test(common, error_prefix)
{
	ig_error err = {0};
	ig_error_set(&err, IG_ERR_CORRUPT, "hash mismatch (tampered or corrupt)");
	cr_assert_eq(ig_error_prefix(&err, "ledger record %d: ", 812), IG_ERR_CORRUPT);
	cr_assert_str_eq(err.msg, "ledger record 812: hash mismatch (tampered or corrupt)");
	cr_assert_eq(err.code, IG_ERR_CORRUPT);
	ig_error_prefix(&err, "open: ");
	cr_assert_str_eq(err.msg, "open: ledger record 812: hash mismatch (tampered or corrupt)");
	cr_assert_eq(ig_error_prefix(NULL, "x"), IG_ERR_INVAL);

	/* prefix onto a full message: truncated at the end, stays terminated */
	char big[600];
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ig_error_set(&err, IG_ERR_IO, "%s", big);
	ig_error_prefix(&err, "PREFIX: ");
	cr_assert_eq(strlen(err.msg), sizeof err.msg - 1);
	cr_assert_eq(strncmp(err.msg, "PREFIX: mmm", 11), 0);

	/* an overlong prefix */
	char longp[400];
	memset(longp, 'p', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	ig_error_set(&err, IG_ERR_IO, "tail");
	ig_error_prefix(&err, "%s", longp);
	cr_assert_lt(strlen(err.msg), sizeof err.msg);
	cr_assert_eq(err.msg[0], 'p');
	cr_assert_not_null(strstr(err.msg, "tail"), "a 255-byte prefix leaves room for the old text");

	/* empty prefix leaves the message alone */
	ig_error_set(&err, IG_ERR_IO, "same");
	ig_error_prefix(&err, "%s", "");
	cr_assert_str_eq(err.msg, "same");
}

Test(common, big_endian)
{
	uint8_t b[8];
	ig_put_u16(b, 0x1234);
	cr_assert_eq(b[0], 0x12);
	cr_assert_eq(b[1], 0x34);
	cr_assert_eq(ig_get_u16(b), 0x1234);
	ig_put_u32(b, 0xa1b2c3d4);
	cr_assert_eq(b[0], 0xa1);
	cr_assert_eq(b[3], 0xd4);
	cr_assert_eq(ig_get_u32(b), 0xa1b2c3d4);
	ig_put_u64(b, 0x0102030405060708ull);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(b[i], i + 1);
	cr_assert_eq(ig_get_u64(b), 0x0102030405060708ull);
	ig_put_u64(b, UINT64_MAX);
	cr_assert_eq(ig_get_u64(b), UINT64_MAX);
	ig_put_u16(b, 0xffff);
	cr_assert_eq(ig_get_u16(b), 0xffff);
}

Test(common, clocks)
{
	uint64_t ms = ig_now_ms();
	cr_assert_gt(ms, 1600000000000ull, "wall clock in milliseconds since 1970");
	cr_assert_lt(ms, 4102444800000ull);
	uint64_t a = ig_mono_us();
	uint64_t b = ig_mono_us();
	cr_assert_geq(b, a, "monotonic");
}

static int log_calls;
static ig_log_level log_last_level;
static char log_last[1100];

static void sink(void *ctx, ig_log_level level, const char *msg)
{
	cr_assert_eq(ctx, (void *)&log_calls);
	log_calls++;
	log_last_level = level;
	snprintf(log_last, sizeof log_last, "%s", msg);
}

Test(common, log_sink)
{
	ig_log_set(sink, &log_calls);
	ig_log(IG_LOG_WARN, "disk %d%% full", 93);
	cr_assert_eq(log_calls, 1);
	cr_assert_eq(log_last_level, IG_LOG_WARN);
	cr_assert_str_eq(log_last, "disk 93% full");
	ig_log(IG_LOG_DEBUG, "debug too");
	cr_assert_eq(log_calls, 2, "the sink sees every level");
	ig_log_set(NULL, NULL);
	ig_log(IG_LOG_DEBUG, "not routed");
	cr_assert_eq(log_calls, 2);
}

/* Key pins, kept log heads and witness states go through these two: a
 * replaced file is whole and private, and a file read back is never cut
 * short silently (one byte too many is an error, a full buffer is not). */
Test(durable, replace_then_read_back_whole_private_and_bounded)
{
	char path[512], link[520], buf[8];
	size_t len = 99;
	ig_error err = {0};
	snprintf(path, sizeof path, "%s/f", tu_scratch_dir("durable"));
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, path, "test file", &err), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_durable_replace(path, "1234567", 7, "test file", &err), IG_OK, "%s", err.msg);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, path, "test file", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(len, 7);
	cr_assert_str_eq(buf, "1234567");
	cr_assert_eq(ig_durable_replace(path, "12345678", 8, "test file", &err), IG_OK);
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, path, "test file", &err), IG_ERR_RANGE);
	cr_assert(strstr(err.msg, "test file") && strstr(err.msg, "longer than 7 bytes"), "%s", err.msg);
	cr_assert_eq(ig_durable_replace(path, "", 0, "test file", &err), IG_OK);
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, path, "test file", &err), IG_OK);
	cr_assert_eq(len, 0);
	snprintf(link, sizeof link, "%s.link", path);
	cr_assert_eq(symlink(path, link), 0);
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, link, "test file", &err), IG_ERR_IO, "a symlink is not followed");
}

/* The dashboard's config.json is public and read by the broker's user: the
 * mode asked for is the mode the file gets, whatever the umask, and a
 * replace keeps the contents whole. */
Test(durable, replace_mode_sets_the_mode_asked_for)
{
	char path[512], buf[16];
	size_t len = 0;
	ig_error err = {0};
	snprintf(path, sizeof path, "%s/public.json", tu_scratch_dir("durable_mode"));
	mode_t old_mask = umask(077);
	int rc = ig_durable_replace_mode(path, "{\"a\":1}", 7, 0644, "test file", &err);
	umask(old_mask);
	cr_assert_eq(rc, IG_OK, "%s", err.msg);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	cr_assert_eq(ig_durable_read(buf, sizeof buf, &len, path, "test file", &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(buf, "{\"a\":1}");
	cr_assert_eq(ig_durable_replace(path, "x", 1, "test file", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "the plain replace stays private");
}

/* The per-identity budget the proof and fleet services share: N per window,
 * the window restarting with the first request after it ended, a refused
 * request not counted, identities apart, and a clock that went back not
 * refusing for ever. */
Test(ratewin, n_per_window_per_identity)
{
	cr_assert_null(ig_ratewin_new(0, 60000), "a budget of 0 is refused");
	cr_assert_null(ig_ratewin_new(3, 0), "a window of 0 ms is refused");
	ig_ratewin *r = ig_ratewin_new(3, 60000);
	cr_assert_not_null(r);
	uint64_t t0 = 1767225600000ull;
	for (int i = 0; i < 3; i++)
		cr_assert(ig_ratewin_take(r, "mon1", t0 + (uint64_t)i), "request %d of 3 is within the budget", i + 1);
	cr_assert_not(ig_ratewin_take(r, "mon1", t0 + 10), "the 4th in the window is refused");
	cr_assert_not(ig_ratewin_take(r, "mon1", t0 + 59999), "still the same window");
	cr_assert(ig_ratewin_take(r, "mon2", t0 + 20), "another identity has its own budget");
	cr_assert(ig_ratewin_take(r, "mon1", t0 + 60000), "a new window starts once the last one ended");
	cr_assert(ig_ratewin_take(r, "mon1", t0 + 60001));
	cr_assert(ig_ratewin_take(r, "mon1", t0 + 60002), "refused requests were not counted");
	cr_assert_not(ig_ratewin_take(r, "mon1", t0 + 60003));
	cr_assert(ig_ratewin_take(r, "mon1", t0 - 5000), "a clock that went back starts a new window");
	ig_ratewin_free(r);
	ig_ratewin_free(NULL);
}
