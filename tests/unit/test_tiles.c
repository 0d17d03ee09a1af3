/*
 * test_tiles.c: the C2SP tlog-tiles writer and reader (lib/ledger/tiles.c).
 *
 * Why this exists: tiles are what outside clients (witnesses, monitors, any
 * C2SP tool) read instead of the ledger, so every byte and every file name
 * must be what tlog-tiles.md says, whatever the batch sizes were and however
 * often the writer was reopened. Nodes read back are compared with a tree
 * built in memory from the same leaves; roots with ig_merkle_root_of_hash and
 * with tests/tlog/tiles.py, a reader written from the spec alone; the pinned
 * vectors below were computed by that Python code from the leaves, and are
 * also printed in docs/LEDGER.md section 14.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_merkle.h"
#include "ig_tiles.h"
#include "testutil.h"

/* Entry i of the pinned vectors is the ASCII decimal of i ("0", "1", ...).
 * Computed by tests/tlog/tiles.py from the leaves (not from tiles). */
#define VEC_ROOT_1 "db3426e878068d28d269b6c87172322ce5372b65756d0789001d34835f601c03"
#define VEC_ROOT_256 "828515d033c19d8c901f37eccb8aed919667703486f8d2fff1cf7040321c5db1"
#define VEC_ROOT_70000 "1a4cdfcb66374a0c0dcbef49acbd4976d13ee864fb3cb241fc943cad04f02f7e"
#define VEC_TILE_1_000_SHA256 "ea7b038bc73489c89c31a27ac355aaca65a4ed73f0dd7484e68deb29d30f10a2"
#define VEC_TILE_2_000_P_1 "f025d06ed804859fd274a1bdacadd6e48ea87634aa91e1edb20143f9498cd02b"
#define VEC_ENTRIES_273_P_112_SHA256 "36c3ec44895d1b8098dbe8523078d6750bf09e0f12cd64671ebfe165b7647405"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

/* ---- a log kept in memory: entries and leaf hashes ---- */

typedef struct mlog {
	size_t n, cap;
	uint8_t (*leaf)[32];
	uint8_t **entry;
	size_t *len;
} mlog;

static void mlog_add(mlog *m, const uint8_t *e, size_t len)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 1024;
		m->leaf = realloc(m->leaf, m->cap * 32);
		m->entry = realloc(m->entry, m->cap * sizeof *m->entry);
		m->len = realloc(m->len, m->cap * sizeof *m->len);
		cr_assert(m->leaf && m->entry && m->len);
	}
	m->entry[m->n] = malloc(len ? len : 1);
	memcpy(m->entry[m->n], e, len);
	m->len[m->n] = len;
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, m->leaf[m->n], e, len);
	m->n++;
}

static void mlog_add_decimal(mlog *m, uint64_t i)
{
	char s[24];
	int l = snprintf(s, sizeof s, "%" PRIu64, i);
	mlog_add(m, (const uint8_t *)s, (size_t)l);
}

static void mlog_add_random(mlog *m, size_t maxlen)
{
	size_t len = tu_rand() % (maxlen + 1);
	uint8_t *e = malloc(len ? len : 1);
	tu_rand_bytes(e, len);
	mlog_add(m, e, len);
	free(e);
}

static void mlog_free(mlog *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->entry[i]);
	free(m->leaf);
	free(m->entry);
	free(m->len);
	memset(m, 0, sizeof *m);
}

/* Appends leaves [from, to) of m in one call. */
static void append_range(ig_tiles *t, const mlog *m, size_t from, size_t to)
{
	ig_error err = {0};
	cr_assert_eq(ig_tiles_append(t, (const uint8_t (*)[32])m->leaf + from, (const uint8_t *const *)m->entry + from,
	                             m->len + from, to - from, &err),
	             IG_OK, "%s", err.msg);
	cr_assert_eq(ig_tiles_size(t), to);
}

static ig_tiles *open_tiles(const char *dir, uint64_t size)
{
	ig_tiles *t = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_tiles_open(&t, dir, size, &err), IG_OK, "open at %" PRIu64 ": %s", size, err.msg);
	return t;
}

/* ---- files ---- */

static bool file_exists(const char *dir, const char *rel)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/tlog/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static size_t file_size(const char *dir, const char *rel)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/tlog/%s", dir, rel);
	cr_assert_eq(lstat(p, &st), 0, "%s is missing", p);
	return (size_t)st.st_size;
}

static bool tile_exists(const char *dir, int level, uint64_t n, unsigned w)
{
	char rel[IG_TILES_PATH_MAX];
	cr_assert_eq(ig_tiles_path(rel, sizeof rel, level, n, w), IG_OK);
	return file_exists(dir, rel);
}

static void sha256_file(const char *dir, const char *rel, uint8_t out[32])
{
	char p[4096];
	size_t len;
	snprintf(p, sizeof p, "%s/tlog/%s", dir, rel);
	char *data = tu_read_file(p, &len);
	crypto_hash_sha256(out, (const uint8_t *)data, len);
	free(data);
}

/* Every file under root, as "relpath\n" + SHA-256 lines appended to a
 * growing string, sorted by the walk order of sorted names. */
typedef struct listing {
	char *s;
	size_t len, cap;
} listing;

static void listing_add(listing *l, const char *line)
{
	size_t n = strlen(line);
	if (l->len + n + 1 > l->cap) {
		l->cap = (l->len + n + 1) * 2;
		l->s = realloc(l->s, l->cap);
	}
	memcpy(l->s + l->len, line, n + 1);
	l->len += n;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void list_tree(listing *l, const char *root, const char *rel)
{
	char p[4096];
	snprintf(p, sizeof p, "%s%s%s", root, rel[0] ? "/" : "", rel);
	struct dirent **names;
	int n = scandir(p, &names, NULL, name_cmp);
	cr_assert_geq(n, 0, "scandir %s", p);
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) {
			char sub[4096], full[4200], line[4400];
			snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", nm);
			snprintf(full, sizeof full, "%s/%s", root, sub);
			struct stat st;
			cr_assert_eq(lstat(full, &st), 0);
			if (S_ISDIR(st.st_mode)) {
				list_tree(l, root, sub);
			} else {
				size_t len;
				uint8_t h[32];
				char hex[65];
				char *data = tu_read_file(full, &len);
				crypto_hash_sha256(h, (const uint8_t *)data, len);
				free(data);
				ig_hex_encode(hex, h, 32);
				snprintf(line, sizeof line, "%s %o %s\n", sub, (unsigned)(st.st_mode & 0777), hex);
				listing_add(l, line);
			}
		}
		free(names[i]);
	}
	free(names);
}

static char *list_tlog(const char *dir)
{
	listing l = {0};
	char root[4096];
	snprintf(root, sizeof root, "%s/tlog", dir);
	listing_add(&l, "");
	list_tree(&l, root, "");
	return l.s;
}

/* ---- the reference tree in memory ---- */

/* levels[k][i] = MTH of leaves [i*2^k, (i+1)*2^k), for every full node. */
typedef struct reftree {
	unsigned height;
	uint8_t (*lv[64])[32];
	uint64_t cnt[64];
} reftree;

static void reftree_build(reftree *r, const uint8_t (*leaf)[32], uint64_t n)
{
	memset(r, 0, sizeof *r);
	r->cnt[0] = n;
	r->lv[0] = malloc((n ? n : 1) * 32);
	memcpy(r->lv[0], leaf, n * 32);
	unsigned k = 0;
	while (r->cnt[k] >= 2) {
		r->cnt[k + 1] = r->cnt[k] / 2;
		r->lv[k + 1] = malloc(r->cnt[k + 1] * 32);
		for (uint64_t i = 0; i < r->cnt[k + 1]; i++)
			ig_merkle_hash_node(IG_MERKLE_SHA256, r->lv[k + 1][i], r->lv[k][2 * i], r->lv[k][2 * i + 1]);
		k++;
	}
	r->height = k;
}

static void reftree_free(reftree *r)
{
	for (unsigned k = 0; k <= r->height; k++)
		free(r->lv[k]);
}

static void fold(const uint8_t (*nodes)[32], unsigned count, uint8_t root[32])
{
	uint8_t r[32];
	if (count == 0) {
		ig_merkle_hash_empty(IG_MERKLE_SHA256, root);
		return;
	}
	memcpy(r, nodes[count - 1], 32);
	for (unsigned i = count - 1; i-- > 0;)
		ig_merkle_hash_node(IG_MERKLE_SHA256, r, nodes[i], r);
	memcpy(root, r, 32);
}

/* Every node of the tree of size n (all of them, or a random sample of
 * `sample` per level), read through the tiles, equals the reference; the
 * compact range folds to the root; node outside the tree is refused. */
static void check_tree(const char *dir, const mlog *m, uint64_t n, unsigned sample)
{
	reftree ref;
	ig_tiles_reader *r = NULL;
	ig_error err = {0};
	uint8_t got[32], want[32];

	reftree_build(&ref, (const uint8_t (*)[32])m->leaf, n);
	cr_assert_eq(ig_tiles_reader_open(&r, dir, n, &err), IG_OK, "%s", err.msg);
	for (unsigned k = 0; k <= ref.height && ref.cnt[k] > 0; k++) {
		uint64_t count = ref.cnt[k];
		uint64_t todo = sample == 0 || count <= sample ? count : sample;
		for (uint64_t j = 0; j < todo; j++) {
			uint64_t i = todo == count ? j : (j == 0 ? count - 1 : tu_rand() % count);
			cr_assert_eq(ig_tiles_reader_node(r, k, i, got, &err), IG_OK, "size %" PRIu64 " node %u/%" PRIu64
			             ": %s", n, k, i, err.msg);
			cr_assert_arr_eq(got, ref.lv[k][i], 32, "size %" PRIu64 " node %u/%" PRIu64, n, k, i);
		}
		cr_assert_eq(ig_tiles_reader_node(r, k, count, got, &err), IG_ERR_RANGE, "size %" PRIu64 " node %u/%" PRIu64
		             " is outside", n, k, count);
	}
	uint8_t nodes[64][32];
	unsigned c = 99;
	cr_assert_eq(ig_tiles_compact_range(r, nodes, &c, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(c, (unsigned)__builtin_popcountll(n));
	fold((const uint8_t (*)[32])nodes, c, got);
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m->leaf, n, want);
	cr_assert_arr_eq(got, want, 32, "compact range of size %" PRIu64 " folds to the root", n);
	ig_tiles_reader_close(r);
	reftree_free(&ref);
}

/* Runs tests/tlog/tiles.py on dir at size n and returns the root it prints. */
static void python_root(const char *dir, uint64_t n, const char *flags, char hex[65])
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/tlog/tiles.py %s '%s' %" PRIu64, IG_SOURCE_ROOT, flags, dir,
	         n);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "cannot run %s", cmd);
	char line[256] = "";
	char *got = fgets(line, sizeof line, p);
	int st = pclose(p);
	cr_assert_eq(st, 0, "%s failed (status %d)", cmd, st);
	cr_assert_not_null(got);
	cr_assert_eq(strlen(line), 65, "tiles.py printed '%s'", line);
	memcpy(hex, line, 64);
	hex[64] = '\0';
}

static void assert_python_root(const char *dir, const mlog *m, uint64_t n)
{
	uint8_t want[32];
	char hex[65], whex[65];
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m->leaf, n, want);
	ig_hex_encode(whex, want, 32);
	python_root(dir, n, "", hex);
	cr_assert_str_eq(hex, whex, "tiles.py root at size %" PRIu64, n);
}

/* ---- paths ---- */

Test(tiles, path_encoding_follows_the_spec)
{
	char p[IG_TILES_PATH_MAX];
	struct {
		int level;
		uint64_t n;
		unsigned w;
		const char *want;
	} cases[] = {
		{0, 1234067, 0, "tile/0/x001/x234/067"},
		{0, 0, 0, "tile/0/000"},
		{0, 273, 112, "tile/0/273.p/112"},
		{1, 1, 17, "tile/1/001.p/17"},
		{2, 0, 1, "tile/2/000.p/1"},
		{IG_TILES_ENTRIES, 1234067, 0, "tile/entries/x001/x234/067"},
		{IG_TILES_ENTRIES, 999, 255, "tile/entries/999.p/255"},
		{3, 1000, 0, "tile/3/x001/000"},
		{63, UINT64_MAX, 255, "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_assert_eq(ig_tiles_path(p, sizeof p, cases[i].level, cases[i].n, cases[i].w), IG_OK);
		cr_assert_str_eq(p, cases[i].want);
	}
	cr_assert_eq(ig_tiles_path(p, sizeof p, 64, 0, 0), IG_ERR_RANGE);
	cr_assert_eq(ig_tiles_path(p, sizeof p, -2, 0, 0), IG_ERR_RANGE);
	cr_assert_eq(ig_tiles_path(p, sizeof p, 0, 0, 256), IG_ERR_RANGE);
	cr_assert_eq(ig_tiles_path(p, 10, 0, 0, 0), IG_ERR_RANGE);            /* "tile/0/000" needs 11 */
	cr_assert_eq(ig_tiles_path(p, 11, 0, 0, 0), IG_OK);
	cr_assert_eq(ig_tiles_path(p, 11, 0, 0, 5), IG_ERR_RANGE);
}

Test(tiles, open_read_and_append_results_cannot_be_ignored)
{
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
	cr_assert(__builtin_has_attribute(ig_tiles_open, warn_unused_result));
	cr_assert(__builtin_has_attribute(ig_tiles_append, warn_unused_result));
	cr_assert(__builtin_has_attribute(ig_tiles_reader_open, warn_unused_result));
	cr_assert(__builtin_has_attribute(ig_tiles_reader_node, warn_unused_result));
	cr_assert(__builtin_has_attribute(ig_tiles_reader_entry, warn_unused_result));
	cr_assert(__builtin_has_attribute(ig_tiles_compact_range, warn_unused_result));
#else
	cr_skip_test("this compiler cannot query attributes (__builtin_has_attribute)");
#endif
}

/* ---- the spec's example and the pinned vectors ---- */

Test(tiles, spec_example_of_70000_leaves, .init = setup, .timeout = 60)
{
	const char *dir = tu_scratch_dir("tiles70k");
	mlog m = {0};
	for (uint64_t i = 0; i < 70000; i++)
		mlog_add_decimal(&m, i);
	ig_tiles *t = open_tiles(dir, 0);
	for (size_t at = 0; at < 70000;) {
		size_t b = 1 + tu_rand() % 4096;
		if (b > 70000 - at)
			b = 70000 - at;
		append_range(t, &m, at, at + b);
		at += b;
	}
	/* 273 full level-0 tiles, a level-0 partial of width 112, a full
	 * level-1 tile, a level-1 partial of width 17, a level-2 partial of
	 * width 1; entry bundles like level 0. */
	for (uint64_t n = 0; n < 273; n++) {
		cr_assert(tile_exists(dir, 0, n, 0), "tile 0/%" PRIu64, n);
		cr_assert(tile_exists(dir, IG_TILES_ENTRIES, n, 0), "bundle %" PRIu64, n);
		char rel[IG_TILES_PATH_MAX], prel[IG_TILES_PATH_MAX + 2];
		cr_assert_eq(ig_tiles_path(rel, sizeof rel, 0, n, 0), IG_OK);
		cr_assert_eq(file_size(dir, rel), 8192);
		snprintf(prel, sizeof prel, "%s.p", rel);
		cr_assert(!file_exists(dir, prel), "a full tile's partials are deleted: %s", prel);
	}
	cr_assert(tile_exists(dir, 0, 273, 112));
	cr_assert(!tile_exists(dir, 0, 273, 0));
	cr_assert(!tile_exists(dir, 0, 274, 0));
	cr_assert(tile_exists(dir, IG_TILES_ENTRIES, 273, 112));
	cr_assert(!tile_exists(dir, IG_TILES_ENTRIES, 273, 0));
	cr_assert(tile_exists(dir, 1, 0, 0));
	cr_assert_eq(file_size(dir, "tile/1/000"), 8192);
	cr_assert(tile_exists(dir, 1, 1, 17));
	cr_assert_eq(file_size(dir, "tile/1/001.p/17"), 17 * 32);
	cr_assert(!tile_exists(dir, 1, 1, 0));
	cr_assert(tile_exists(dir, 2, 0, 1));
	cr_assert_eq(file_size(dir, "tile/2/000.p/1"), 32);
	cr_assert(!tile_exists(dir, 2, 0, 0));
	cr_assert(!file_exists(dir, "tile/3"), "no level 3 in a tree of 70000");

	/* The pinned vectors (tests/tlog/tiles.py, from the leaves). */
	uint8_t root[32], h[32];
	ig_tiles_root(t, root);
	tu_assert_hex(root, 32, VEC_ROOT_70000);
	sha256_file(dir, "tile/1/000", h);
	tu_assert_hex(h, 32, VEC_TILE_1_000_SHA256);
	sha256_file(dir, "tile/entries/273.p/112", h);
	tu_assert_hex(h, 32, VEC_ENTRIES_273_P_112_SHA256);
	size_t len;
	char path[4096];
	snprintf(path, sizeof path, "%s/tlog/tile/2/000.p/1", dir);
	char *data = tu_read_file(path, &len);
	tu_assert_hex((const uint8_t *)data, len, VEC_TILE_2_000_P_1);
	free(data);
	ig_tiles_close(t);

	check_tree(dir, &m, 70000, 300);
	char hex[65];
	python_root(dir, 70000, "", hex);
	cr_assert_str_eq(hex, VEC_ROOT_70000);
	/* The same tiles answer for older sizes the tree went through. */
	python_root(dir, 256, "--quick", hex);
	cr_assert_str_eq(hex, VEC_ROOT_256);
	python_root(dir, 1, "--quick", hex);
	cr_assert_str_eq(hex, VEC_ROOT_1);
	mlog_free(&m);
}

Test(tiles, docs_print_the_vectors)
{
	const char *doc = tu_read_doc("LEDGER.md");
	const char *vec[] = {VEC_ROOT_1, VEC_ROOT_256, VEC_ROOT_70000, VEC_TILE_1_000_SHA256, VEC_TILE_2_000_P_1,
	                     VEC_ENTRIES_273_P_112_SHA256, "## 14. Tiles (`tlog/`)", "http_dir"};
	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++)
		cr_expect_not_null(strstr(doc, vec[i]), "docs/LEDGER.md must contain %s", vec[i]);
}

/* ---- nodes at and across tile boundaries ---- */

Test(tiles, nodes_across_tile_boundaries, .init = setup, .timeout = 120)
{
	const char *dir = tu_scratch_dir("tilesb");
	const uint64_t sizes[] = {1, 255, 256, 257, 65535, 65536, 65537};
	mlog m = {0};
	for (uint64_t i = 0; i < 65537; i++)
		mlog_add_random(&m, 40);
	ig_tiles *t = open_tiles(dir, 0);
	uint64_t at = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		append_range(t, &m, at, sizes[i]);
		at = sizes[i];
		uint8_t root[32], want[32];
		ig_tiles_root(t, root);
		ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, at, want);
		cr_assert_arr_eq(root, want, 32, "writer root at %" PRIu64, at);
		check_tree(dir, &m, at, at > 1000 ? 2000 : 0);
	}
	ig_tiles_close(t);
	/* Older sizes still read right once their partials are gone (the full
	 * tile's prefix), every node of every one of them. */
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		check_tree(dir, &m, sizes[i], 0);
	cr_assert(!file_exists(dir, "tile/0/000.p"));
	cr_assert(!file_exists(dir, "tile/1/000.p"));
	cr_assert(tile_exists(dir, 2, 0, 1));
	assert_python_root(dir, &m, 65537);
	assert_python_root(dir, &m, 65536);
	mlog_free(&m);
}

Test(tiles, random_batches_keep_older_partials_until_the_tile_is_full, .init = setup, .timeout = 120)
{
	const char *dir = tu_scratch_dir("tilesr");
	mlog m = {0};
	uint64_t sizes[400];
	unsigned nsizes = 0;
	ig_tiles *t = open_tiles(dir, 0);
	while (m.n < 70000 && nsizes < 400) {
		size_t b = tu_rand() % 3 == 0 ? 1 + tu_rand() % 5 : 1 + tu_rand() % 700;
		size_t from = m.n;
		for (size_t i = 0; i < b; i++)
			mlog_add_random(&m, 300);
		append_range(t, &m, from, m.n);
		sizes[nsizes++] = m.n;
		uint8_t root[32], want[32];
		ig_tiles_root(t, root);
		ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, m.n, want);
		cr_assert_arr_eq(root, want, 32, "writer root at %zu", m.n);
		/* Every size the tree went through keeps its partial at each level
		 * until that tile is full; then the tile's partials are gone. */
		for (unsigned i = 0; i < nsizes; i++) {
			uint64_t s = sizes[i];
			for (int l = IG_TILES_ENTRIES; l < 3; l++) {
				unsigned lv = l < 0 ? 0 : (unsigned)l;
				uint64_t cnt = s >> (8 * lv), ncnt = m.n >> (8 * lv);
				unsigned w = (unsigned)(cnt & 255);
				if (w == 0)
					continue;
				bool full = (cnt >> 8) < (ncnt >> 8);
				cr_assert_eq(tile_exists(dir, l, cnt >> 8, w), !full, "size %" PRIu64 " level %d tile %" PRIu64
				             ".p/%u (now %zu)", s, l, cnt >> 8, w, m.n);
				cr_assert_eq(tile_exists(dir, l, cnt >> 8, 0), full);
			}
		}
		if (nsizes % 40 == 0)
			check_tree(dir, &m, m.n, 500);
	}
	ig_tiles_close(t);
	for (unsigned i = 0; i < nsizes; i += 37)
		check_tree(dir, &m, sizes[i], 200);
	assert_python_root(dir, &m, m.n);
	mlog_free(&m);
}

/* ---- reopening ---- */

Test(tiles, reopen_continues_exactly_as_one_run, .init = setup, .timeout = 120)
{
	const char *one = tu_scratch_dir("tiles1");
	const char *two = tu_scratch_dir("tiles2");
	mlog m = {0};
	umask(022);
	for (size_t i = 0; i < 66000; i++)
		mlog_add_random(&m, 120);
	/* The same batches in both; `two` is closed and reopened between
	 * several of them, at sizes on and off tile boundaries. */
	size_t cuts[] = {0, 1, 255, 256, 300, 511, 512, 4096, 4097, 65535, 65536, 65600, 66000};
	ig_tiles *a = open_tiles(one, 0);
	for (size_t i = 1; i < sizeof cuts / sizeof cuts[0]; i++) {
		append_range(a, &m, cuts[i - 1], cuts[i]);
		ig_tiles *b = open_tiles(two, cuts[i - 1]);
		uint8_t ra[32], rb[32];
		if (cuts[i - 1] > 0) {
			ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, cuts[i - 1], ra);
			ig_tiles_root(b, rb);
			cr_assert_arr_eq(rb, ra, 32, "restored edge at %zu folds to the root", cuts[i - 1]);
		}
		append_range(b, &m, cuts[i - 1], cuts[i]);
		ig_tiles_root(a, ra);
		ig_tiles_root(b, rb);
		cr_assert_arr_eq(ra, rb, 32);
		ig_tiles_close(b);
	}
	ig_tiles_close(a);
	char *la = list_tlog(one), *lb = list_tlog(two);
	cr_assert_str_eq(la, lb, "the reopened run wrote other files");
	cr_assert_not_null(strstr(la, "tile/0/256 644 "), "files are 0644 less the umask (022 here)");
	free(la);
	free(lb);
	mlog_free(&m);
}

Test(tiles, reopen_at_a_smaller_size_drops_what_is_ahead, .init = setup, .timeout = 60)
{
	const char *dir = tu_scratch_dir("tilesrb");
	mlog m = {0}, fork = {0};
	for (size_t i = 0; i < 70000; i++)
		mlog_add_random(&m, 60);
	ig_tiles *t = open_tiles(dir, 0);
	append_range(t, &m, 0, 300);
	append_range(t, &m, 300, 70000);
	ig_tiles_close(t);

	/* Rolled back to 200: 0/000 is full on disk and its partials are gone,
	 * so the edge comes from the full tile's prefix. */
	t = open_tiles(dir, 200);
	cr_assert_eq(ig_tiles_size(t), 200);
	uint8_t root[32], want[32];
	ig_tiles_root(t, root);
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, 200, want);
	cr_assert_arr_eq(root, want, 32);
	cr_assert(tile_exists(dir, 0, 0, 200), "the partial of the current size is written back");
	cr_assert(tile_exists(dir, IG_TILES_ENTRIES, 0, 200));
	cr_assert(!tile_exists(dir, 0, 0, 0), "tiles ahead of the size are gone");
	cr_assert(!tile_exists(dir, 0, 1, 0));
	cr_assert(!tile_exists(dir, 0, 273, 112));
	cr_assert(!tile_exists(dir, IG_TILES_ENTRIES, 0, 0));
	cr_assert(!tile_exists(dir, 1, 0, 0));
	cr_assert(!file_exists(dir, "tile/1/000.p"));
	cr_assert(!file_exists(dir, "tile/1/001.p"));
	cr_assert(!file_exists(dir, "tile/2/000.p"));
	check_tree(dir, &m, 200, 0);

	/* A different history from 200 on (a fork) is written over it. */
	for (size_t i = 0; i < 200; i++)
		mlog_add(&fork, m.entry[i], m.len[i]);
	for (size_t i = 200; i < 70000; i++)
		mlog_add_random(&fork, 60);
	append_range(t, &fork, 200, 70000);
	ig_tiles_close(t);
	check_tree(dir, &fork, 70000, 300);
	assert_python_root(dir, &fork, 70000);

	/* Reopening at the same size restores and keeps everything. */
	char *before = list_tlog(dir);
	t = open_tiles(dir, 70000);
	ig_tiles_root(t, root);
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])fork.leaf, 70000, want);
	cr_assert_arr_eq(root, want, 32);
	ig_tiles_close(t);
	char *after = list_tlog(dir);
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	/* Size 0 starts over. */
	t = open_tiles(dir, 0);
	cr_assert(!file_exists(dir, "tile"));
	ig_tiles_close(t);
	mlog_free(&m);
	mlog_free(&fork);
}

/* A 300-leaf tree (level 0: tile 000 full, 001.p/44; level 1: 000.p/1). */
static void build_300(const char *dir, mlog *m)
{
	for (size_t i = 0; i < 300; i++)
		mlog_add_random(m, 50);
	ig_tiles *t = open_tiles(dir, 0);
	append_range(t, m, 0, 300);
	ig_tiles_close(t);
}

static void expect_refused(const char *dir, uint64_t size, const char *what)
{
	ig_tiles *t = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_tiles_open(&t, dir, size, &err), IG_ERR_CORRUPT, "%s: open must refuse", what);
	cr_assert_null(t);
	cr_assert(strstr(err.msg, "rebuild") != NULL, "%s: the message says what to do: %s", what, err.msg);
}

static void path_of(char *out, size_t cap, const char *dir, const char *rel)
{
	snprintf(out, cap, "%s/tlog/%s", dir, rel);
}

Test(tiles, open_refuses_missing_short_and_garbled_tiles, .init = setup)
{
	char p[4096];
	struct {
		const char *rel;
		int action;   /* 0 delete, 1 truncate by one byte, 2 flip a byte */
		const char *what;
	} cases[] = {
		{"tile/0/001.p/44", 0, "missing level-0 partial"},
		{"tile/0/001.p/44", 1, "short level-0 partial"},
		{"tile/1/000.p/1", 0, "missing level-1 partial"},
		{"tile/1/000.p/1", 1, "short level-1 partial"},
		{"tile/0/000", 0, "missing last full tile"},
		{"tile/0/000", 1, "short last full tile"},
		{"tile/entries/001.p/44", 0, "missing entry bundle"},
		{"tile/entries/001.p/44", 1, "short entry bundle"},
		{"tile/entries/001.p/44", 2, "garbled entry bundle"},
		{"tile/0/001.p/44", 2, "garbled leaf hash"},
		{"tile/entries/000", 0, "missing full entry bundle"},
	};
	const char *scratch = tu_scratch_dir("tilesbad");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dir[2048];
		snprintf(dir, sizeof dir, "%s/%zu", scratch, i);
		cr_assert_eq(mkdir(dir, 0700), 0);
		mlog m = {0};
		build_300(dir, &m);
		path_of(p, sizeof p, dir, cases[i].rel);
		if (cases[i].action == 0) {
			cr_assert_eq(unlink(p), 0, "%s", p);
		} else {
			size_t len;
			char *data = tu_read_file(p, &len);
			if (cases[i].action == 1)
				len--;
			else
				data[len - 1] ^= 0x40;
			tu_write_file(p, data, len);
			free(data);
		}
		expect_refused(dir, 300, cases[i].what);
		mlog_free(&m);
	}
	/* More leaves than the tiles hold. */
	char dir[2048];
	snprintf(dir, sizeof dir, "%s/few", scratch);
	cr_assert_eq(mkdir(dir, 0700), 0);
	mlog m = {0};
	build_300(dir, &m);
	expect_refused(dir, 301, "size 301 over 300 leaves of tiles");
	expect_refused(dir, 600, "size 600 over 300 leaves of tiles");
	/* A garbled level-1 hash cannot be seen at open, but the edge no longer
	 * folds to the root: the caller compares with the signed root. */
	path_of(p, sizeof p, dir, "tile/1/000.p/1");
	size_t len;
	char *data = tu_read_file(p, &len);
	data[0] ^= 1;
	tu_write_file(p, data, len);
	free(data);
	ig_tiles *t = open_tiles(dir, 300);
	uint8_t root[32], want[32];
	ig_tiles_root(t, root);
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, 300, want);
	cr_assert_arr_neq(root, want, 32);
	/* Reset rebuilds from leaf 0. */
	ig_error err = {0};
	cr_assert_eq(ig_tiles_reset(t, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_tiles_size(t), 0);
	append_range(t, &m, 0, 300);
	ig_tiles_root(t, root);
	cr_assert_arr_eq(root, want, 32);
	ig_tiles_close(t);
	t = open_tiles(dir, 300);
	ig_tiles_close(t);
	mlog_free(&m);
}

Test(tiles, symbolic_links_are_never_followed, .init = setup)
{
	const char *dir = tu_scratch_dir("tileslnk");
	const char *outside = tu_scratch_dir("tilesout");
	char p[4096];
	mlog m = {0};
	for (size_t i = 0; i < 300; i++)
		mlog_add_random(&m, 20);

	/* tlog itself a link: refused. */
	snprintf(p, sizeof p, "%s/tlog", dir);
	cr_assert_eq(symlink(outside, p), 0);
	ig_tiles *t = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_tiles_open(&t, dir, 0, &err), IG_ERR_IO);
	cr_assert(strstr(err.msg, "symbolic link") != NULL, "%s", err.msg);
	cr_assert_eq(unlink(p), 0);

	/* tlog/tile/0 a link: the append fails, nothing lands outside, and the
	 * handle stays failed until reset. */
	t = open_tiles(dir, 0);
	snprintf(p, sizeof p, "%s/tlog/tile", dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/tlog/tile/0", dir);
	cr_assert_eq(symlink(outside, p), 0);
	cr_assert_eq(ig_tiles_append(t, (const uint8_t (*)[32])m.leaf, (const uint8_t *const *)m.entry, m.len, 300,
	                             &err),
	             IG_ERR_IO);
	cr_assert(strstr(err.msg, "symbolic link") != NULL, "%s", err.msg);
	DIR *d = opendir(outside);
	int entries = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		entries++;
	closedir(d);
	cr_assert_eq(entries, 2, "nothing was written through the link");
	cr_assert_eq(ig_tiles_append(t, (const uint8_t (*)[32])m.leaf, (const uint8_t *const *)m.entry, m.len, 1, &err),
	             IG_ERR_STATE);
	cr_assert_eq(ig_tiles_publish(t, "o\n0\nx\n", 6, &err), IG_ERR_STATE, "no checkpoint over failed tiles");
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(ig_tiles_reset(t, &err), IG_OK, "%s", err.msg);
	append_range(t, &m, 0, 300);
	ig_tiles_close(t);
	check_tree(dir, &m, 300, 0);

	/* A partial tile replaced by a link to a good copy is not read. */
	snprintf(p, sizeof p, "%s/tlog/tile/0/001.p/44", dir);
	char copy[4096];
	snprintf(copy, sizeof copy, "%s/copy", outside);
	size_t len;
	char *data = tu_read_file(p, &len);
	tu_write_file(copy, data, len);
	free(data);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(symlink(copy, p), 0);
	expect_refused(dir, 300, "a partial tile that is a link");
	ig_tiles_reader *r = NULL;
	uint8_t h[32];
	cr_assert_eq(ig_tiles_reader_open(&r, dir, 300, &err), IG_OK);
	cr_assert_eq(ig_tiles_reader_node(r, 0, 299, h, &err), IG_ERR_CORRUPT, "%s", err.msg);
	ig_tiles_reader_close(r);
	mlog_free(&m);
}

/* ---- entries ---- */

Test(tiles, entries_round_trip, .init = setup, .timeout = 60)
{
	const char *dir = tu_scratch_dir("tilesent");
	mlog m = {0};
	uint8_t *big = calloc(1, 65536);
	tu_rand_bytes(big, 65536);
	mlog_add(&m, big, 0);
	mlog_add(&m, big, 65535);
	for (size_t i = 0; i < 600; i++)
		mlog_add_random(&m, i % 50 == 0 ? 3000 : 100);
	mlog_add(&m, big, 65535);
	ig_tiles *t = open_tiles(dir, 0);
	append_range(t, &m, 0, 2);
	append_range(t, &m, 2, 300);
	append_range(t, &m, 300, m.n);

	/* An entry over 65535 bytes: the batch is refused whole. */
	ig_error err = {0};
	const uint8_t *e2[2] = {big, big};
	size_t l2[2] = {10, 65536};
	uint8_t leaves[2][32] = {{0}};
	cr_assert_eq(ig_tiles_append(t, (const uint8_t (*)[32])leaves, e2, l2, 2, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_tiles_size(t), m.n);
	ig_tiles_close(t);

	ig_tiles_reader *r = NULL;
	cr_assert_eq(ig_tiles_reader_open(&r, dir, m.n, &err), IG_OK, "%s", err.msg);
	uint8_t *buf = malloc(65535);
	size_t len;
	for (size_t i = 0; i < m.n; i++) {
		cr_assert_eq(ig_tiles_reader_entry(r, i, buf, 65535, &len, &err), IG_OK, "entry %zu: %s", i, err.msg);
		cr_assert_eq(len, m.len[i]);
		cr_assert_arr_eq(buf, m.entry[i], len, "entry %zu", i);
	}
	cr_assert_eq(ig_tiles_reader_entry(r, 1, buf, 100, &len, &err), IG_ERR_RANGE);
	cr_assert_eq(len, 65535, "the length it needs");
	cr_assert_eq(ig_tiles_reader_entry(r, m.n, buf, 65535, &len, &err), IG_ERR_RANGE);
	/* Older sizes read their entries from the full bundle's start. */
	ig_tiles_reader_set_size(r, 100);
	cr_assert_eq(ig_tiles_reader_size(r), 100);
	cr_assert_eq(ig_tiles_reader_entry(r, 99, buf, 65535, &len, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(buf, m.entry[99], len);
	cr_assert_eq(ig_tiles_reader_entry(r, 100, buf, 65535, &len, &err), IG_ERR_RANGE);
	ig_tiles_reader_close(r);

	/* A bundle whose entry was changed is caught against the leaf hash. */
	char p[4096];
	path_of(p, sizeof p, dir, "tile/entries/002.p/91");
	size_t flen;
	char *data = tu_read_file(p, &flen);
	data[flen - 1] ^= 1;
	tu_write_file(p, data, flen);
	free(data);
	cr_assert_eq(ig_tiles_reader_open(&r, dir, m.n, &err), IG_OK);
	cr_assert_eq(ig_tiles_reader_entry(r, m.n - 1, buf, 65535, &len, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "does not hash") != NULL, "%s", err.msg);
	ig_tiles_reader_close(r);
	assert_python_root(dir, &m, 512);   /* the full bundles still check */
	free(buf);
	free(big);
	mlog_free(&m);
}

Test(tiles, reader_reports_missing_tiles, .init = setup)
{
	const char *dir = tu_scratch_dir("tilesmiss");
	mlog m = {0};
	build_300(dir, &m);
	ig_tiles_reader *r = NULL;
	ig_error err = {0};
	uint8_t h[32];
	cr_assert_eq(ig_tiles_reader_open(&r, dir, 600, &err), IG_OK);
	cr_assert_eq(ig_tiles_reader_node(r, 0, 599, h, &err), IG_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "tile/0/002.p/88") != NULL, "%s", err.msg);
	ig_tiles_reader_set_size(r, 300);
	cr_assert_eq(ig_tiles_reader_node(r, 0, 299, h, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(h, m.leaf[299], 32);
	cr_assert_eq(ig_tiles_reader_node(r, 64, 0, h, &err), IG_ERR_RANGE);
	cr_assert_eq(ig_tiles_node(dir, 300, 8, 0, h, &err), IG_OK, "%s", err.msg);
	uint8_t want[32];
	ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t (*)[32])m.leaf, 256, want);
	cr_assert_arr_eq(h, want, 32);
	ig_tiles_reader_close(r);
	cr_assert_eq(ig_tiles_reader_open(&r, "/nonexistent-ig-ledger", 1, &err), IG_ERR_NOTFOUND);
	mlog_free(&m);
}

Test(tiles, publish_replaces_the_checkpoint, .init = setup)
{
	const char *dir = tu_scratch_dir("tilescp");
	ig_tiles *t = open_tiles(dir, 0);
	ig_error err = {0};
	mlog m = {0};
	mlog_add_decimal(&m, 0);
	mlog_add_decimal(&m, 1);
	const char *a = "iotguard/demo\n1\nAAAA\n\n— sig\n", *b = "iotguard/demo\n2\nBBBB\n\n— sig\n";
	const char *c = "iotguard/demo\n3\nCCCC\n\n— sig\n";
	/* Never a checkpoint bigger than the tiles. */
	cr_assert_eq(ig_tiles_publish(t, a, strlen(a), &err), IG_ERR_STATE);
	append_range(t, &m, 0, 1);
	cr_assert_eq(ig_tiles_publish(t, a, strlen(a), &err), IG_OK, "%s", err.msg);
	append_range(t, &m, 1, 2);
	cr_assert_eq(ig_tiles_publish(t, b, strlen(b), &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_tiles_publish(t, c, strlen(c), &err), IG_ERR_STATE);
	cr_assert(strstr(err.msg, "size 3") != NULL, "%s", err.msg);
	cr_assert_eq(ig_tiles_publish(t, "origin\nx\n", 10, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_tiles_publish(t, "origin\n2", 8, &err), IG_ERR_INVAL);
	mlog_free(&m);
	char p[4096];
	path_of(p, sizeof p, dir, "checkpoint");
	size_t len;
	char *text = tu_read_file(p, &len);
	cr_assert_eq(len, strlen(b));
	cr_assert_str_eq(text, b);
	free(text);
	cr_assert(!file_exists(dir, ".checkpoint.tmp"));
	ig_tiles_close(t);
}
