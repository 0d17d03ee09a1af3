/*
 * test_recspec.c: every record body table (lib/ledger/recspecs.c) must say exactly
 * what docs/LEDGER.md section 7 says, so an independent verifier written
 * from the document reads the same records the code writes.
 */
#include <cJSON.h>
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_record.h"
#include "ig_recspec.h"
#include "testutil.h"

#define MAX_SECTIONS 32
#define MAX_ROWS 16

typedef struct doc_row {
	unsigned tag;
	char name[32];
	bool required;
} doc_row;

typedef struct doc_section {
	char title[64];     /* "coin_mint": the heading, lower case, '_' for ' ' */
	unsigned type;
	doc_row rows[MAX_ROWS];
	size_t nrows;
} doc_section;

static const char *next_line(const char *p)
{
	const char *nl = strchr(p, '\n');
	return nl ? nl + 1 : p + strlen(p);
}

/* Reads the "### 7.N Title (type T)" headings of section 7 and the first
 * "| Tag | Name | Value | Required |" table under each. */
static size_t read_sections(doc_section *out)
{
	const char *doc = tu_read_doc("LEDGER.md");
	size_t n = 0;
	for (const char *p = doc; *p; p = next_line(p)) {
		if (strncmp(p, "## ", 3) == 0 && strncmp(p, "## 7.", 5) != 0 && n > 0)
			break; /* past section 7 */
		if (strncmp(p, "### 7.", 6) != 0)
			continue;
		cr_assert_lt(n, MAX_SECTIONS);
		doc_section *s = &out[n++];
		memset(s, 0, sizeof *s);
		const char *title = strchr(p + 6, ' ');
		const char *paren = strstr(p, " (type ");
		cr_assert(title && paren && paren < next_line(p), "heading without (type N): %.60s", p);
		size_t tl = (size_t)(paren - title - 1);
		cr_assert_lt(tl, sizeof s->title);
		for (size_t i = 0; i < tl; i++) {
			char c = title[1 + i];
			s->title[i] = c == ' ' ? '_' : (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		}
		s->type = (unsigned)strtoul(paren + 7, NULL, 10);

		/* first table below the heading */
		const char *q = next_line(p);
		while (*q && strncmp(q, "|----", 5) != 0 && strncmp(q, "### ", 4) != 0)
			q = next_line(q);
		if (strncmp(q, "|----", 5) != 0)
			continue; /* a body with no fields */
		for (q = next_line(q); *q == '|'; q = next_line(q)) {
			cr_assert_lt(s->nrows, MAX_ROWS);
			doc_row *r = &s->rows[s->nrows++];
			char name[64], value_and_required[512];
			size_t len = (size_t)(next_line(q) - q);
			char line[600];
			cr_assert_lt(len, sizeof line);
			memcpy(line, q, len);
			line[len] = '\0';
			cr_assert_eq(sscanf(line, "| %u | %63s |", &r->tag, name), 2, "table row: %s", line);
			cr_assert_lt(strlen(name), sizeof r->name);
			strcpy(r->name, name);
			/* the last cell is "Required" */
			char *end = strrchr(line, '|');
			cr_assert_not_null(end);
			*end = '\0';
			char *last = strrchr(line, '|');
			cr_assert_not_null(last);
			snprintf(value_and_required, sizeof value_and_required, "%s", last + 1);
			r->required = strncmp(value_and_required + strspn(value_and_required, " "), "yes", 3) == 0;
		}
	}
	return n;
}

Test(recspec, every_documented_body_has_a_table_that_matches_it)
{
	static doc_section sections[MAX_SECTIONS];
	size_t n = read_sections(sections);
	cr_assert_geq(n, 11, "docs/LEDGER.md section 7 should document at least 11 bodies, found %zu", n);
	for (size_t i = 0; i < n; i++) {
		const doc_section *s = &sections[i];
		const ig_body_spec *b = ig_recspec_for((uint16_t)s->type);
		cr_assert_not_null(b, "LEDGER.md 7.%zu documents type %u but recspecs.c has no table", i + 1, s->type);
		cr_expect_str_eq(b->what, s->title, "type %u", s->type);
		cr_assert_eq(b->nfields, s->nrows, "%s: %zu fields in recspecs.c, %zu rows in LEDGER.md", b->what,
		             b->nfields, s->nrows);
		for (size_t k = 0; k < b->nfields; k++) {
			const ig_field_spec *f = &b->fields[k];
			cr_expect_eq(f->tag, s->rows[k].tag, "%s field %zu: tag", b->what, k);
			cr_expect_str_eq(f->name, s->rows[k].name, "%s tag %u: name", b->what, f->tag);
			cr_expect_eq(!f->optional, s->rows[k].required, "%s.%s: required", b->what, f->name);
		}
	}
}

Test(recspec, every_table_is_documented)
{
	static doc_section sections[MAX_SECTIONS];
	size_t n = read_sections(sections);
	size_t tables = 0;
	for (unsigned t = 0; t <= UINT16_MAX; t++) {
		const ig_body_spec *b = ig_recspec_for((uint16_t)t);
		if (!b)
			continue;
		tables++;
		cr_expect_eq(b->type, t);
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found |= sections[i].type == t;
		cr_expect(found, "recspecs.c describes type %u (%s) but LEDGER.md section 7 does not", t, b->what);
	}
	cr_expect_eq(tables, n, "one table per documented body");
}

/* The largest body (a mint with 64 hashes) must check and render without
 * allocating a struct: the checker's scratch space holds it. */
Test(recspec, largest_body_checks_and_renders)
{
	static ig_mint_rec m;
	memset(&m, 0, sizeof m);
	strcpy(m.owner, "collector1");
	m.expires_at = 1700000000;
	m.count = IG_COINS_PER_REQUEST;
	tu_seq_bytes(&m.hashes[0][0], sizeof m.hashes, 7);
	static uint8_t body[4096];
	int len = ig_recspec_encode(&ig_recspec_mint, &m, body, sizeof body);
	cr_assert_gt(len, 0);
	ig_error err = {0};
	cr_assert_eq(ig_recspec_check(&ig_recspec_mint, body, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_recspec_check(&ig_recspec_mint, body, (size_t)len - 1, &err), IG_ERR_CORRUPT);
	cJSON *obj = cJSON_CreateObject();
	cr_assert_not_null(obj);
	cr_assert_eq(ig_recspec_body_json(obj, &ig_recspec_mint, body, (size_t)len), IG_OK);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(obj, "coin_hashes")), IG_COINS_PER_REQUEST);
	cJSON_Delete(obj);
}

/* The largest key-ring body (a kp_compromised with 1024 ids, the U32S kind)
 * must check and render in the checker's scratch space, and a U32 field
 * outside its range (a pool of 2^24 + 1) must not decode. */
Test(recspec, largest_kp_body_checks_and_renders)
{
	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = 1;
	strcpy(c.id, "sensor-1");
	c.id_count = IG_KP_REC_RING_MAX;
	for (uint32_t i = 0; i < IG_KP_REC_RING_MAX; i++)
		c.ids[i] = (1u << 24) - IG_KP_REC_RING_MAX + i;
	static uint8_t body[8192];
	int len = ig_recspec_encode(&ig_recspec_kp_compromised, &c, body, sizeof body);
	cr_assert_eq(len, 11 + 11 + 3 + 4 * IG_KP_REC_RING_MAX);
	ig_error err = {0};
	cr_assert_eq(ig_recspec_check(&ig_recspec_kp_compromised, body, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_recspec_check(&ig_recspec_kp_compromised, body, (size_t)len - 1, &err), IG_ERR_CORRUPT);
	cJSON *obj = cJSON_CreateObject();
	cr_assert_not_null(obj);
	cr_assert_eq(ig_recspec_body_json(obj, &ig_recspec_kp_compromised, body, (size_t)len), IG_OK);
	cJSON *ids = cJSON_GetObjectItem(obj, "ids");
	cr_assert_eq(cJSON_GetArraySize(ids), IG_KP_REC_RING_MAX);
	cr_expect_eq(cJSON_GetArrayItem(ids, IG_KP_REC_RING_MAX - 1)->valuedouble, (double)((1u << 24) - 1));
	cJSON_Delete(obj);

	ig_kp_epoch_rec e = {.epoch = 1, .pool = 1u << 24, .ring = 1, .q = 1};
	strcpy(e.reason, "rotate");
	strcpy(e.by, "admin1");
	len = ig_recspec_encode(&ig_recspec_kp_epoch, &e, body, sizeof body);
	cr_assert_gt(len, 0);
	cr_expect_eq(ig_recspec_check(&ig_recspec_kp_epoch, body, (size_t)len, &err), IG_OK, "%s", err.msg);
	/* pool is the TLV at offset 11: 02 0004 01000000 -> 01000001 */
	cr_assert_eq(body[11], IG_TAG_KP_POOL);
	body[17] = 1;
	cr_expect_eq(ig_recspec_check(&ig_recspec_kp_epoch, body, (size_t)len, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "'pool'") && strstr(err.msg, "2..16777216"), "%s", err.msg);
}
