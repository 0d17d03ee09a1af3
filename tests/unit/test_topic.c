/*
 * test_topic.c: the MQTT matcher decides every access check, so it is
 * compared against a deliberately naive reference matcher on tables of
 * tricky cases and on random topics and filters.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_topic.h"
#include "testutil.h"

/* ---- reference matcher ----------------------------------------------------- */

/* A deliberately naive matcher to compare against: split both strings into
 * arrays of levels and recurse. */
static size_t split(const char *s, char ***out)
{
	size_t n = 1;
	for (const char *p = s; *p; p++)
		n += *p == '/';
	char **lv = calloc(n, sizeof *lv);
	cr_assert_not_null(lv);
	const char *start = s;
	for (size_t i = 0; i < n; i++) {
		const char *slash = strchr(start, '/');
		size_t len = slash ? (size_t)(slash - start) : strlen(start);
		lv[i] = strndup(start, len);
		cr_assert_not_null(lv[i]);
		start = slash ? slash + 1 : start + len;
	}
	*out = lv;
	return n;
}

static void free_levels(char **lv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lv[i]);
	free(lv);
}

static bool ref_match_levels(char **f, size_t nf, char **t, size_t nt)
{
	if (nf == 0)
		return nt == 0;
	if (strcmp(f[0], "#") == 0)
		return true;
	if (nt == 0)
		return false;
	if (strcmp(f[0], "+") != 0 && strcmp(f[0], t[0]) != 0)
		return false;
	return ref_match_levels(f + 1, nf - 1, t + 1, nt - 1);
}

static bool ref_match(const char *filter, const char *topic)
{
	if (!ig_topic_filter_valid(filter) || !ig_topic_valid(topic))
		return false;
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	char **f, **t;
	size_t nf = split(filter, &f), nt = split(topic, &t);
	bool r = ref_match_levels(f, nf, t, nt);
	free_levels(f, nf);
	free_levels(t, nt);
	return r;
}

/* ---- validity ------------------------------------------------------------ */

Test(topic, topic_valid_table)
{
	struct { const char *s; bool ok; } cases[] = {
		{"a", true}, {"/", true}, {"a//b", true}, {"$SYS", true}, {"$SYS/broker/uptime", true},
		{"iotguard/C/dev/dev1/status", true}, {" ", true}, {"a/b/", true}, {"{id}", true},
		{"", false}, {"a+", false}, {"+", false}, {"#", false}, {"a/#", false}, {"a/+/b", false},
		{"a#b", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(ig_topic_valid(cases[i].s), cases[i].ok, "topic '%s'", cases[i].s);
	cr_expect_not(ig_topic_valid(NULL));
}

Test(topic, filter_valid_table)
{
	struct { const char *s; bool ok; } cases[] = {
		{"#", true}, {"+", true}, {"+/+", true}, {"a/#", true}, {"/#", true}, {"+/#", true},
		{"a//", true}, {"/", true}, {"$SYS/#", true}, {"a/+/b/#", true}, {"a", true},
		{"", false}, {"a/#/b", false}, {"a#", false}, {"#a", false}, {"a/b+", false},
		{"+a", false}, {"++", false}, {"a/##", false}, {"#/", false}, {"##", false},
		{"a/+b/c", false}, {"a/#/", false}, {"+#", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(ig_topic_filter_valid(cases[i].s), cases[i].ok, "filter '%s'", cases[i].s);
	cr_expect_not(ig_topic_filter_valid(NULL));
}

Test(topic, length_limits)
{
	char *s = malloc(65537);
	cr_assert_not_null(s);
	memset(s, 'a', 65535);
	s[65535] = '\0';
	cr_expect(ig_topic_valid(s), "65535 bytes is the MQTT maximum and valid");
	cr_expect(ig_topic_filter_valid(s));
	cr_expect(ig_topic_matches(s, s));
	s[65535] = 'a';
	s[65536] = '\0';
	cr_expect_not(ig_topic_valid(s), "65536 bytes does not fit an MQTT string");
	cr_expect_not(ig_topic_filter_valid(s));
	cr_expect_not(ig_topic_matches("#", s));
	free(s);
}

/* ---- matching ------------------------------------------------------------ */

Test(topic, topic_matches_table)
{
	struct { const char *f, *t; bool m; } cases[] = {
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/b", "a", false}, {"a", "a/b", false},
		{"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/+", "a/", true}, {"a/+", "a", false},
		{"a/#", "a", true}, {"a/#", "a/", true}, {"a/#", "a/b/c", true}, {"a/#", "ab", false},
		{"a/#", "b/a", false}, {"#", "a", true}, {"#", "/", true}, {"#", "a/b/c", true},
		{"+", "/", false}, {"+/+", "/", true}, {"/+", "/x", true}, {"+", "/finance", false},
		{"+/+", "/finance", true}, {"/+", "/finance", true},
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/+", "sport/", true}, {"sport/+", "sport", false}, {"+/+/+", "a/b/c", true},
		{"a/b/c/#", "a/b/c", true}, {"a/b/c/#", "a/b", false}, {"A", "a", false},
		/* $-topics */
		{"+", "$SYS", false}, {"#", "$SYS", false}, {"#", "$SYS/x", false}, {"+/x", "$SYS/x", false},
		{"+/#", "$CONTROL/iotguard/v1", false}, {"$SYS/#", "$SYS/x", true}, {"$SYS/#", "$SYS", true},
		{"$SYS/+", "$SYS/x", true}, {"$CONTROL/iotguard/v1", "$CONTROL/iotguard/v1", true},
		{"+/$x", "a/$x", true}, {"a/+", "a/$x", true}, {"a/#", "a/$x", true},
		/* invalid inputs never match */
		{"a/+", "a/+", false}, {"a/#/b", "a/x/b", false}, {"a#", "a#", false}, {"", "", false},
		{"a", "", false}, {"", "a", false}, {"#", "#", false}, {"+", "+", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_expect_eq(ig_topic_matches(cases[i].f, cases[i].t), cases[i].m, "filter '%s' topic '%s'",
		             cases[i].f, cases[i].t);
		cr_expect_eq(ref_match(cases[i].f, cases[i].t), cases[i].m, "reference: filter '%s' topic '%s'",
		             cases[i].f, cases[i].t);
	}
	cr_expect_not(ig_topic_matches(NULL, "a"));
	cr_expect_not(ig_topic_matches("a", NULL));
}

Test(topic, containment_truth_table)
{
	struct { const char *outer, *inner; bool c; } cases[] = {
		{"#", "#", true}, {"#", "a", true}, {"#", "a/b/c", true}, {"#", "+", true},
		{"#", "+/#", true}, {"#", "/", true}, {"#", "a/+/#", true},
		{"#", "$SYS", false}, {"#", "$SYS/#", false}, {"+", "$SYS", false},
		{"+/#", "$SYS/a", false}, {"+/+", "$SYS/a", false}, {"+", "+", true},
		{"$SYS/#", "$SYS/a", true}, {"$SYS/#", "$SYS", true}, {"$SYS/#", "$SYS/#", true},
		{"$SYS/+", "$SYS/+", true}, {"$SYS/+", "$SYS/#", false},
		{"a/#", "a", true}, {"a/#", "a/b", true}, {"a/#", "a/#", true}, {"a/#", "a/+", true},
		{"a/#", "a/+/#", true}, {"a/#", "a/", true}, {"a/#", "#", false}, {"a/#", "+/#", false},
		{"a/#", "+", false}, {"a/#", "b", false}, {"a/#", "ab", false}, {"a/#", "ab/#", false},
		{"a/b/#", "a", false}, {"a/b/#", "a/#", false}, {"a/b/#", "a/+", false},
		{"a/b/#", "a/b", true}, {"a/b/#", "a/b/c/d", true}, {"a/b/#", "a/+/c", false},
		{"a/+", "a/b", true}, {"a/+", "a/+", true}, {"a/+", "a/#", false}, {"a/+", "a", false},
		{"a/+", "a/b/c", false}, {"a/+", "a/", true}, {"a/+", "+/b", false},
		{"a/+/c", "a/b/c", true}, {"a/+/c", "a/+/c", true}, {"a/+/c", "a/+/d", false},
		{"a/+/c", "a/+/c/#", false}, {"a/+/c/#", "a/+/c/#", true}, {"a/+/c/#", "a/x/c", true},
		{"a/b", "a/+", false}, {"a/b", "a/b", true}, {"a/b", "a/b/", false}, {"a/b", "a/#", false},
		{"a/b", "a/b/#", false}, {"a/b", "b/a", false}, {"a", "A", false},
		{"+/+", "a/b", true}, {"+/+", "+/+", true}, {"+/+", "+", false}, {"+/+", "+/+/+", false},
		{"+", "a/b", false}, {"+", "/", false}, {"+/+", "/", true}, {"/#", "/a", true},
		{"/#", "a", false}, {"/", "/", true},
		/* an inner '#' needs an outer '#' at the same or an earlier level */
		{"a/+/#", "a/#", false}, {"a/+/#", "a/b", true}, {"a/+/#", "a/b/#", true},
		{"+/#", "#", false}, {"+/#", "a/#", true}, {"+/#", "a", true},
		/* invalid filters are never contained or containing */
		{"a/#/b", "a", false}, {"a", "a+", false}, {"", "a", false}, {"a", "", false},
		{"#", "a/#/b", false}, {"#", "#/", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(ig_topic_filter_contains(cases[i].outer, cases[i].inner), cases[i].c,
		             "outer '%s' inner '%s'", cases[i].outer, cases[i].inner);
	cr_expect_not(ig_topic_filter_contains(NULL, "a"));
	cr_expect_not(ig_topic_filter_contains("#", NULL));
}


/* ---- fuzz ---------------------------------------------------------------- */

Test(topic, fuzz_matching_agrees_with_reference)
{
	char f[16], t[16];
	for (int i = 0; i < 40000; i++) {
		tu_rand_string(f, 8, "ab$/+#");
		tu_rand_string(t, 8, "ab$/+#");
		bool got = ig_topic_matches(f, t);
		cr_assert_eq(got, ref_match(f, t), "filter '%s' topic '%s'", f, t);
		if (ig_topic_valid(t)) {
			cr_assert(ig_topic_filter_valid(t), "every topic is a filter: '%s'", t);
			cr_assert(ig_topic_matches(t, t), "topic '%s' matches itself", t);
			cr_assert(ig_topic_filter_contains(t, t));
		}
		if (ig_topic_filter_valid(f))
			cr_assert(ig_topic_filter_contains(f, f), "filter '%s' contains itself", f);
		else
			cr_assert_not(ig_topic_filter_contains(f, f));
	}
}

Test(topic, fuzz_containment_is_sound)
{
	/* all topics over a small alphabet, up to 4 bytes */
	static char topics[400][6];
	size_t nt = 0;
	const char alpha[] = "ab$/";
	for (size_t len = 1; len <= 4; len++) {
		size_t total = 1;
		for (size_t i = 0; i < len; i++)
			total *= 4;
		for (size_t v = 0; v < total; v++) {
			size_t x = v;
			for (size_t i = 0; i < len; i++, x /= 4)
				topics[nt][i] = alpha[x % 4];
			topics[nt][len] = '\0';
			cr_assert(ig_topic_valid(topics[nt]));
			nt++;
		}
	}
	size_t contained = 0;
	char o[12], in[12];
	for (int i = 0; i < 6000; i++) {
		tu_rand_string(o, 6, "ab$/+#");
		tu_rand_string(in, 6, "ab$/+#");
		if (!ig_topic_filter_contains(o, in))
			continue;
		contained++;
		for (size_t k = 0; k < nt; k++)
			if (ig_topic_matches(in, topics[k]))
				cr_assert(ig_topic_matches(o, topics[k]), "'%s' claims to contain '%s' but '%s' "
				          "matches only the inner", o, in, topics[k]);
	}
	cr_expect_gt(contained, 50, "the fuzz should exercise containment");
}
