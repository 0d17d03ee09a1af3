/*
 * ig_topic.h: MQTT topic names, topic filters, and matching between them.
 *
 * Why this exists: the policy (ig_policy.h), the bank's stream topics and
 * the tests all need the same answer to "does this filter match this topic"
 * and "is every topic this filter matches also matched by that one". Keeping
 * the matcher apart from the policy file format, as Mosquitto keeps
 * util_topic.c apart from its ACL code, lets each be read and tested alone.
 *
 * Rules (MQTT 3.1.1 section 4.7, MQTT 5 section 4.7):
 *   - '+' matches exactly one level, '#' matches the parent level and any
 *     number of levels below it ("a/#" matches "a", "a/", "a/b/c");
 *   - a filter starting with a wildcard never matches a topic starting with
 *     '$', so $CONTROL and $SYS rights must always be granted explicitly.
 * Containment is decided level by level and errs on the side of "no": it
 * only answers yes when the structure proves it, which is what an access
 * check needs.
 */
#ifndef IG_TOPIC_H
#define IG_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IG_TOPIC_LEN_MAX 65535u    /* MQTT strings carry a 16-bit length */

/* Topic name matches filter; false when either is invalid or NULL. */
bool ig_topic_matches(const char *filter, const char *topic);
/* Every topic matched by `inner` is also matched by `outer`. */
bool ig_topic_filter_contains(const char *outer, const char *inner);
/* Valid topic name (no wildcards) / valid filter. */
bool ig_topic_valid(const char *topic);
bool ig_topic_filter_valid(const char *filter);

/* Length of a valid topic name / filter, or 0 when invalid, NULL or empty.
 * One pass, so callers that need both validity and length pay once. */
size_t ig_topic_length(const char *topic);
size_t ig_topic_filter_length(const char *filter);

/* ---- compiled filters ----------------------------------------------------
 *
 * A caller that checks the same filter many times (the policy) splits it
 * into levels once and matches the levels. A level may name a slot whose
 * text is supplied at match time (the policy's {cluster} and {id}), so
 * substitution costs no allocation. Both representations are walked by the
 * same cursor, so there is one matching algorithm for both.
 */
enum ig_topic_level_kind {
	IG_TOPIC_LEVEL_LITERAL = 0,
	IG_TOPIC_LEVEL_PLUS,
	IG_TOPIC_LEVEL_HASH,
	IG_TOPIC_LEVEL_SLOT,     /* compiled only: text comes from slots[slot] */
	IG_TOPIC_LEVEL_NEVER,    /* matches nothing (a slot whose value is invalid) */
};

#define IG_TOPIC_SLOTS 2

typedef struct ig_topic_level {
	const char *text;
	uint32_t len;
	uint8_t kind;
	uint8_t slot;            /* IG_TOPIC_LEVEL_SLOT: index into the slots */
} ig_topic_level;

/* A slot's value: valid = false makes every level naming it LEVEL_NEVER. */
typedef struct ig_topic_slot {
	const char *text;
	uint32_t len;
	bool valid;
} ig_topic_slot;

typedef struct ig_topic_cursor {
	/* text mode */
	const char *p, *end;
	/* compiled mode (levels != NULL) */
	const ig_topic_level *levels;
	uint32_t count, next;
	const ig_topic_slot *slots;
	bool done;
} ig_topic_cursor;

/* Walks `len` bytes of a topic or filter already checked valid. */
void ig_topic_cursor_text(ig_topic_cursor *c, const char *s, size_t len);
/* Walks compiled levels; slots has IG_TOPIC_SLOTS entries (or NULL when no
 * level is a slot). */
void ig_topic_cursor_levels(ig_topic_cursor *c, const ig_topic_level *levels, uint32_t count,
                            const ig_topic_slot *slots);
/* Next level; false when there are none left. Slots come back as literals
 * holding the slot text, or IG_TOPIC_LEVEL_NEVER. */
bool ig_topic_cursor_next(ig_topic_cursor *c, ig_topic_level *out);

/* Does the rule (a filter) match the topic / contain the inner filter?
 * Both cursors must walk valid input; they are consumed. */
bool ig_topic_cursor_matches(ig_topic_cursor *rule, ig_topic_cursor *topic);
bool ig_topic_cursor_contains(ig_topic_cursor *outer, ig_topic_cursor *inner);

#endif
