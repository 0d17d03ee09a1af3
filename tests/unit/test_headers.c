/*
 * test_headers.c: rules about lib/'s public headers that no single module's
 * tests can see.
 *
 * Why this exists: two rules from the engineering standards are easy to
 * break silently. A verify, open or parse function whose result is ignored
 * treats forged or corrupt input as checked, so each must carry
 * warn_unused_result (IG_NODISCARD) and the compiler must refuse a caller
 * that drops the result. And nothing test-only may sit in a public header:
 * tests inject faults through the I/O hooks passed at open (for the ledger,
 * ig_ledger_open_opts.io), never through a special entry point that a
 * production caller could reach.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_aead.h"
#include "ig_checkpoint.h"
#include "ig_coin.h"
#include "ig_join.h"
#include "ig_keyfile.h"
#include "ig_keys.h"
#include "ig_ledger.h"
#include "ig_policy.h"
#include "ig_token.h"
#include "ig_tokenfmt.h"
#include "testutil.h"

/* __builtin_has_attribute is GCC's (9 and later); the unit tests are built
 * with the project's C compiler, which is GCC. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
#define HAS_NODISCARD(fn) __builtin_has_attribute(fn, warn_unused_result)
#define CAN_CHECK_ATTRIBUTES 1
#else
#define CAN_CHECK_ATTRIBUTES 0
#endif

Test(headers, every_verify_open_and_parse_function_is_nodiscard)
{
#if CAN_CHECK_ATTRIBUTES
	struct {
		const char *name;
		bool nodiscard;
	} fns[] = {
#define FN(f) {#f, HAS_NODISCARD(f)}
		FN(ig_aead_open),
		FN(ig_m2m_open),
		FN(ig_data_parse),
		FN(ig_coin_header_open),
		FN(ig_data_open),
		FN(ig_data_open_redeemed),
		FN(ig_result_open),
		FN(ig_checkpoint_verify),
		FN(ig_join_code_parse),
		FN(ig_join_token_parse),
		FN(ig_join_token_verify),
		FN(ig_keyfile_read),
		FN(ig_keybox_open),
		FN(ig_ledger_open),
		FN(ig_ledger_verify),
		FN(ig_ledger_scan_buffer),
		FN(ig_policy_load),
		FN(ig_policy_parse),
		FN(ig_token_parse),
		FN(ig_token_verify),
		FN(ig_tokenfmt_verify),
#undef FN
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
		cr_expect(fns[i].nodiscard, "%s must be declared IG_NODISCARD (warn_unused_result)", fns[i].name);
#else
	cr_skip_test("this compiler cannot query attributes (__builtin_has_attribute)");
#endif
}

/* True if identifier id (len bytes) is one of ours with a "test" component:
 * ig_ledger_test_fail_write, ig_foo_test; not ig_attest_encode. */
static bool is_test_hook(const char *id, size_t len)
{
	if (len < 3 || strncmp(id, "ig_", 3) != 0)
		return false;
	size_t start = 3;
	for (size_t i = 3; i <= len; i++) {
		if (i == len || id[i] == '_') {
			if (i - start == 4 && strncmp(id + start, "test", 4) == 0)
				return true;
			start = i + 1;
		}
	}
	return false;
}

Test(headers, no_test_hooks_in_public_headers)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/lib", IG_SOURCE_ROOT);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	int headers = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "ig_", 3) != 0 || n < 3 || strcmp(de->d_name + n - 2, ".h") != 0)
			continue;
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		char *text = tu_read_file(path, NULL);
		headers++;
		int line = 1;
		for (const char *p = text; *p;) {
			if (*p == '\n')
				line++;
			if (isalpha((unsigned char)*p) || *p == '_') {
				const char *s = p;
				while (isalnum((unsigned char)*p) || *p == '_')
					p++;
				cr_expect(!is_test_hook(s, (size_t)(p - s)), "%s:%d declares the test hook %.*s; inject "
				          "faults through an ops struct passed at open instead",
				          de->d_name, line, (int)(p - s), s);
				continue;
			}
			p++;
		}
		free(text);
	}
	closedir(d);
	cr_assert_gt(headers, 10, "found only %d public headers in %s", headers, dir);
}

/* The checker itself: it must see a hook and must not see a lookalike. */
Test(headers, test_hook_detector_tells_hooks_from_lookalikes)
{
	const char *hooks[] = {"ig_ledger_test_fail_write", "ig_test_reset", "ig_policy_test"};
	const char *fine[] = {"ig_attest_encode", "ig_attest_rate", "ig_testify", "ledger_test_x", "ig_tests"};
	for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
		cr_expect(is_test_hook(hooks[i], strlen(hooks[i])), "%s", hooks[i]);
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
		cr_expect(!is_test_hook(fine[i], strlen(fine[i])), "%s", fine[i]);
}
