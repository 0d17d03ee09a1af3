/*
 * topic.c: MQTT topic/filter validation and matching (see ig_topic.h).
 *
 * Why this exists: the access check runs for every SUBSCRIBE and every
 * delivered message, so matching is only a walk over the topic with memchr
 * and short memcmp calls: no allocation, no copies, no repeated strlen.
 */
#include "ig_topic.h"

#include <string.h>

void ig_topic_cursor_text(ig_topic_cursor *c, const char *s, size_t len)
{
	memset(c, 0, sizeof *c);
	c->p = s;
	c->end = s + len;
}

void ig_topic_cursor_levels(ig_topic_cursor *c, const ig_topic_level *levels, uint32_t count,
                            const ig_topic_slot *slots)
{
	memset(c, 0, sizeof *c);
	c->levels = levels;
	c->count = count;
	c->slots = slots;
}

static ig_topic_level classify(const char *s, uint32_t len)
{
	ig_topic_level l = {s, len, IG_TOPIC_LEVEL_LITERAL, 0};
	if (len == 1 && s[0] == '+')
		l.kind = IG_TOPIC_LEVEL_PLUS;
	else if (len == 1 && s[0] == '#')
		l.kind = IG_TOPIC_LEVEL_HASH;
	return l;
}

bool ig_topic_cursor_next(ig_topic_cursor *c, ig_topic_level *out)
{
	if (c->done)
		return false;
	if (c->levels) {
		if (c->next >= c->count) {
			c->done = true;
			return false;
		}
		*out = c->levels[c->next++];
		if (out->kind == IG_TOPIC_LEVEL_SLOT) {
			const ig_topic_slot *s = c->slots && out->slot < IG_TOPIC_SLOTS ? &c->slots[out->slot] : NULL;
			if (s)
				*out = (ig_topic_level){s->text, s->len,
				                        s->valid ? IG_TOPIC_LEVEL_LITERAL : IG_TOPIC_LEVEL_NEVER, 0};
			else
				*out = (ig_topic_level){"", 0, IG_TOPIC_LEVEL_NEVER, 0};
		}
		return true;
	}
	const char *slash = memchr(c->p, '/', (size_t)(c->end - c->p));
	const char *stop = slash ? slash : c->end;
	*out = classify(c->p, (uint32_t)(stop - c->p));
	if (slash)
		c->p = slash + 1;
	else
		c->done = true;
	return true;
}

static bool literal_equal(const ig_topic_level *a, const ig_topic_level *b)
{
	return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

static bool dollar_level(const ig_topic_level *l)
{
	return l->kind == IG_TOPIC_LEVEL_LITERAL && l->len > 0 && l->text[0] == '$';
}

bool ig_topic_cursor_matches(ig_topic_cursor *rule, ig_topic_cursor *topic)
{
	bool first = true;
	for (;;) {
		ig_topic_level r = {0}, t = {0};
		bool have_r = ig_topic_cursor_next(rule, &r);
		bool have_t = ig_topic_cursor_next(topic, &t);
		if (have_r && r.kind == IG_TOPIC_LEVEL_HASH)
			return !(first && dollar_level(&t));
		if (!have_r || !have_t)
			return have_r == have_t;
		switch (r.kind) {
		case IG_TOPIC_LEVEL_PLUS:
			if (first && dollar_level(&t))
				return false;
			break;
		case IG_TOPIC_LEVEL_LITERAL:
			if (!literal_equal(&r, &t))
				return false;
			break;
		default:
			return false;
		}
		first = false;
	}
}

bool ig_topic_cursor_contains(ig_topic_cursor *outer, ig_topic_cursor *inner)
{
	bool first = true;
	for (;;) {
		ig_topic_level o = {0}, i = {0};
		bool have_o = ig_topic_cursor_next(outer, &o);
		bool have_i = ig_topic_cursor_next(inner, &i);
		/* An outer '#' covers everything below here, including the parent
		 * level, except that at the top it never covers $-topics. */
		if (have_o && o.kind == IG_TOPIC_LEVEL_HASH)
			return !(first && dollar_level(&i));
		if (!have_o || !have_i)
			return have_o == have_i;
		/* An inner '#' needs an outer '#' at this level or above. */
		if (i.kind == IG_TOPIC_LEVEL_HASH)
			return false;
		switch (o.kind) {
		case IG_TOPIC_LEVEL_PLUS:
			if (first && dollar_level(&i))
				return false;
			break;
		case IG_TOPIC_LEVEL_LITERAL:
			if (i.kind != IG_TOPIC_LEVEL_LITERAL || !literal_equal(&o, &i))
				return false;
			break;
		default:
			return false;
		}
		first = false;
	}
}

/* ---- validation ---------------------------------------------------------- */

size_t ig_topic_length(const char *topic)
{
	if (!topic)
		return 0;
	size_t n = 0;
	for (; topic[n]; n++) {
		if (topic[n] == '+' || topic[n] == '#' || n >= IG_TOPIC_LEN_MAX)
			return 0;
	}
	return n;
}

size_t ig_topic_filter_length(const char *filter)
{
	if (!filter)
		return 0;
	size_t n = 0, level_start = 0;
	bool wildcard_in_level = false, hash_seen = false;
	for (; filter[n]; n++) {
		char c = filter[n];
		if (n >= IG_TOPIC_LEN_MAX || hash_seen)
			return 0;          /* too long, or something follows '#' */
		if (c == '/') {
			level_start = n + 1;
			wildcard_in_level = false;
		} else if (c == '+' || c == '#') {
			if (n != level_start)
				return 0;      /* wildcard shares its level */
			wildcard_in_level = true;
			hash_seen = c == '#';
		} else if (wildcard_in_level) {
			return 0;          /* "+x" */
		}
	}
	return n;
}

bool ig_topic_valid(const char *topic)
{
	return ig_topic_length(topic) > 0;
}

bool ig_topic_filter_valid(const char *filter)
{
	return ig_topic_filter_length(filter) > 0;
}

bool ig_topic_matches(const char *filter, const char *topic)
{
	size_t flen = ig_topic_filter_length(filter);
	size_t tlen = ig_topic_length(topic);
	if (flen == 0 || tlen == 0)
		return false;
	ig_topic_cursor rule, subject;
	ig_topic_cursor_text(&rule, filter, flen);
	ig_topic_cursor_text(&subject, topic, tlen);
	return ig_topic_cursor_matches(&rule, &subject);
}

bool ig_topic_filter_contains(const char *outer, const char *inner)
{
	size_t olen = ig_topic_filter_length(outer);
	size_t ilen = ig_topic_filter_length(inner);
	if (olen == 0 || ilen == 0)
		return false;
	ig_topic_cursor o, i;
	ig_topic_cursor_text(&o, outer, olen);
	ig_topic_cursor_text(&i, inner, ilen);
	return ig_topic_cursor_contains(&o, &i);
}
