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
#include <sys/stat.h>

#include "ig_aead.h"
#include "ig_checkpoint.h"
#include "ig_coin.h"
#include "ig_join.h"
#include "ig_keyfile.h"
#include "ig_keybox.h"
#include "ig_ledger.h"
#include "ig_m2m.h"
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
		FN(ig_coin_data_parse),
		FN(ig_coin_header_open),
		FN(ig_coin_data_open),
		FN(ig_coin_data_open_redeemed),
		FN(ig_coin_result_open),
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
 * ig_ledger_test_fail_write, ig_foo_test; not ig_record_attest_encode. */
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

/* Calls fn for every public header (ig_*.h) under dir, in lib/'s
 * subfolders too; returns how many. */
typedef void (*header_fn)(const char *path, const char *name, void *ctx);
static int walk_public_headers(const char *dir, header_fn fn, void *ctx)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	int headers = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[8192];
		int pn = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		cr_assert(pn > 0 && (size_t)pn < sizeof path, "path too long under %s", dir);
		struct stat stt;
		cr_assert_eq(stat(path, &stt), 0, "cannot stat %s", path);
		if (S_ISDIR(stt.st_mode)) {
			headers += walk_public_headers(path, fn, ctx);
			continue;
		}
		size_t n = strlen(de->d_name);
		if (n < 6 || strncmp(de->d_name, "ig_", 3) != 0 || strcmp(de->d_name + n - 2, ".h") != 0)
			continue;
		fn(path, de->d_name, ctx);
		headers++;
	}
	closedir(d);
	return headers;
}

static void check_no_hooks(const char *path, const char *name, void *ctx)
{
	(void)ctx;
	char *text = tu_read_file(path, NULL);
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
			          name, line, (int)(p - s), s);
			continue;
		}
		p++;
	}
	free(text);
}

Test(headers, no_test_hooks_in_public_headers)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/lib", IG_SOURCE_ROOT);
	int headers = walk_public_headers(dir, check_no_hooks, NULL);
	cr_assert_gt(headers, 10, "found only %d public headers under %s", headers, dir);
}

/* The checker itself: it must see a hook and must not see a lookalike. */
Test(headers, test_hook_detector_tells_hooks_from_lookalikes)
{
	const char *hooks[] = {"ig_ledger_test_fail_write", "ig_test_reset", "ig_policy_test"};
	const char *fine[] = {"ig_record_attest_encode", "ig_attest_rate", "ig_testify", "ledger_test_x", "ig_tests"};
	for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
		cr_expect(is_test_hook(hooks[i], strlen(hooks[i])), "%s", hooks[i]);
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
		cr_expect(!is_test_hook(fine[i], strlen(fine[i])), "%s", fine[i]);
}

/* ---- one concept, one prefix ---------------------------------------------
 *
 * libsodium's rule: a header is one concept and its name is the prefix of
 * everything it declares (ig_pool.h declares ig_pool_init, ig_pool_mix...),
 * so a reader finds a function's home from its name alone. The check reads
 * every lib/ig_*.h (subfolders too), drops comments and preprocessor lines,
 * and takes as declared function names the ig_ identifiers directly before
 * "(" outside any braces or parentheses: that skips function-pointer
 * typedefs and struct members, which are not functions of the header. */

/* Headers allowed to break the rule. The test fails while a listed header
 * passes, so an entry cannot outlive its reason. */
static const char *const prefix_allowlist[] = {
	/* The one exception, on purpose: the shared vocabulary every file uses
	 * (errors, hex, byte order, roles, clocks, logging, ig_init), as
	 * libsodium keeps sodium_* helpers in utils.h. */
	"ig_common.h",
};

static bool prefix_allowlisted(const char *header)
{
	for (size_t i = 0; i < sizeof prefix_allowlist / sizeof prefix_allowlist[0]; i++)
		if (strcmp(prefix_allowlist[i], header) == 0)
			return true;
	return false;
}

/* Copies text with comments replaced by a space and preprocessor lines
 * (with their backslash continuations) removed, and string and character
 * literals emptied. Caller frees. */
static char *strip_comments_and_directives(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(n + 1);
	cr_assert_not_null(out);
	size_t o = 0;
	bool line_start = true;
	for (size_t i = 0; i < n;) {
		if (text[i] == '/' && text[i + 1] == '*') {
			const char *end = strstr(text + i + 2, "*/");
			i = end ? (size_t)(end - text) + 2 : n;
			out[o++] = ' ';
			continue;
		}
		if (text[i] == '/' && text[i + 1] == '/') {
			while (i < n && text[i] != '\n')
				i++;
			continue;
		}
		if (line_start && text[i] == '#') {
			while (i < n && !(text[i] == '\n' && text[i - 1] != '\\'))
				i++;
			continue;
		}
		if (text[i] == '"' || text[i] == '\'') {
			/* Kept as an empty literal, so nothing inside counts as code. */
			char q = text[i++];
			while (i < n && text[i] != q)
				i += text[i] == '\\' && i + 1 < n ? 2 : 1;
			if (i < n)
				i++;
			out[o++] = q;
			out[o++] = q;
			line_start = false;
			continue;
		}
		if (text[i] == '\n')
			line_start = true;
		else if (text[i] != ' ' && text[i] != '\t')
			line_start = false;
		out[o++] = text[i++];
	}
	out[o] = '\0';
	return out;
}

/* Calls found(name, len, ctx) for each function a header declares: an ig_
 * identifier followed by "(" at brace and parenthesis depth 0. */
static void declared_functions(const char *text, void (*found)(const char *name, size_t len, void *ctx), void *ctx)
{
	char *code = strip_comments_and_directives(text);
	int braces = 0, parens = 0;
	for (const char *p = code; *p;) {
		if (isalpha((unsigned char)*p) || *p == '_') {
			const char *s = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			size_t len = (size_t)(p - s);
			const char *q = p;
			while (isspace((unsigned char)*q))
				q++;
			if (*q == '(' && braces == 0 && parens == 0 && len > 3 && strncmp(s, "ig_", 3) == 0)
				found(s, len, ctx);
			continue;
		}
		if (*p == '{')
			braces++;
		else if (*p == '}')
			braces--;
		else if (*p == '(')
			parens++;
		else if (*p == ')')
			parens--;
		p++;
	}
	free(code);
}

/* The prefix rule for a header named "ig_X.h": "ig_X" or "ig_X_...". */
static bool has_header_prefix(const char *header, const char *name, size_t len)
{
	size_t plen = strlen(header) - 2; /* without ".h" */
	if (len < plen || strncmp(name, header, plen) != 0)
		return false;
	return len == plen || name[plen] == '_';
}

typedef struct prefix_scan {
	const char *header;    /* base name, "ig_pool.h" */
	char bad[1024];        /* the names breaking the rule, space separated */
	int nbad;
	int nfound;
} prefix_scan;

static void check_prefix(const char *name, size_t len, void *ctx)
{
	prefix_scan *ps = ctx;
	ps->nfound++;
	if (has_header_prefix(ps->header, name, len))
		return;
	size_t used = strlen(ps->bad);
	if (used + len + 2 < sizeof ps->bad)
		snprintf(ps->bad + used, sizeof ps->bad - used, "%s%.*s", used ? " " : "", (int)len, name);
	ps->nbad++;
}

typedef struct prefix_totals {
	int headers;
	int functions;
} prefix_totals;

static void check_prefixes(const char *path, const char *name, void *ctx)
{
	prefix_totals *tot = ctx;
	size_t n = strlen(name);
	char *text = tu_read_file(path, NULL);
	prefix_scan ps = {.header = name};
	declared_functions(text, check_prefix, &ps);
	free(text);
	tot->headers++;
	tot->functions += ps.nfound;
	if (prefix_allowlisted(name)) {
		cr_expect_gt(ps.nbad, 0, "%s now declares only %.*s* functions: remove it from prefix_allowlist",
		             path, (int)(n - 2), name);
		if (ps.nbad > 0)
			fprintf(stderr, "headers: allowlisted, still to rename: %s: %s\n", path, ps.bad);
		return;
	}
	cr_expect_eq(ps.nbad, 0, "%s declares %s: a header declares only names with its prefix %.*s; rename "
	             "them or move them to a header named by their prefix", path, ps.bad, (int)(n - 2), name);
}

Test(headers, every_function_has_its_headers_prefix)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/lib", IG_SOURCE_ROOT);
	prefix_totals tot = {0};
	walk_public_headers(dir, check_prefixes, &tot);
	cr_assert_gt(tot.headers, 10, "found only %d public headers under %s", tot.headers, dir);
	cr_assert_gt(tot.functions, 100, "found only %d declared functions under %s", tot.functions, dir);
}

static void collect_name(const char *name, size_t len, void *ctx)
{
	char *names = ctx;
	size_t used = strlen(names);
	snprintf(names + used, 512 - used, "%s%.*s", used ? " " : "", (int)len, name);
}

/* The checker itself: what counts as a declaration, and the prefix rule. */
Test(headers, prefix_checker_finds_declarations_and_applies_the_rule)
{
	const char *text = "/* ig_in_comment(void); */\n"
	                   "// ig_in_line_comment(x);\n"
	                   "#define IG_X(a) ig_in_macro(a)\n"
	                   "#define IG_Y \\\n  ig_in_continued_macro(1)\n"
	                   "typedef int (*ig_pool_fn)(ig_pool *p);\n"
	                   "typedef struct ig_pool_ops { int (*ig_member)(void); void (*cb)(int ig_arg); } x;\n"
	                   "const char *s = \"ig_in_string(\";\n"
	                   "int ig_pool_mix(ig_pool *p, size_t n) IG_NODISCARD;\n"
	                   "void\nig_pool (void);\n"
	                   "ig_suite ig_suite_parse(const char *name);\n";
	char names[512] = "";
	declared_functions(text, collect_name, names);
	cr_expect_str_eq(names, "ig_pool_mix ig_pool ig_suite_parse");

	cr_expect(has_header_prefix("ig_pool.h", "ig_pool_mix", 11));
	cr_expect(has_header_prefix("ig_pool.h", "ig_pool", 7));
	cr_expect(!has_header_prefix("ig_pool.h", "ig_poolx", 8));
	cr_expect(!has_header_prefix("ig_pool.h", "ig_pol_mix", 10));
	cr_expect(!has_header_prefix("ig_entropy.h", "ig_pool_mix", 11));
	cr_expect(has_header_prefix("ig_svc_bank.h", "ig_svc_bank_new", 15));
	cr_expect(!has_header_prefix("ig_svc_bank.h", "ig_svc_keys_new", 15));
}
