/*
 * tiles.c: C2SP tlog-tiles of a format-2 ledger in DIR/tlog/.
 *
 * Why this exists: see ig_tiles.h. The writer keeps only the right edge of
 * the tree in memory (the partial tile of each level, at most 255 hashes,
 * and the partial entry bundle), so an append costs one node hash per leaf
 * on average (a full tile's hash is computed once, when it completes) and a
 * batch writes its completed tiles plus one partial per level. Tiles are
 * derived from the ledger, so nothing is fsynced: after a crash the ledger's
 * open checks the edge against the signed root, or rebuilds.
 *
 * Every directory below DIR/tlog/ is opened one component at a time with
 * O_NOFOLLOW, and files are opened and renamed relative to those
 * descriptors, so a symbolic link planted inside DIR/tlog/ can never make
 * the writer (the broker) write, or a reader read, outside it.
 */
#include "ig_tiles.h"

#include "ig_merkle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TILE_BYTES (IG_TILES_WIDTH * IG_HASH_BYTES)
#define DIR_MODE 0755
#define FILE_MODE 0644
#define DCACHE_SLOTS 12
#define READER_SLOTS 8
#define KIND_ENTRIES IG_TILES_LEVELS   /* dirty[] index of the entry bundle */

/* ---- paths ---- */

int ig_tiles_path(char *out, size_t cap, int level, uint64_t n, unsigned width)
{
	char groups[48];   /* 7 groups of up to 5 characters */
	size_t gl = 0;
	unsigned d[8];
	int nd = 0;

	if (level < IG_TILES_ENTRIES || level > 63 || width > 255 || out == NULL || cap == 0)
		return IG_ERR_RANGE;
	/* Base-1000 digits, most significant first; 2^64 has 7 of them. */
	do {
		d[nd++] = (unsigned)(n % 1000);
		n /= 1000;
	} while (n > 0);
	for (int i = nd - 1; i >= 0; i--) {
		int w = snprintf(groups + gl, sizeof groups - gl, i > 0 ? "x%03u/" : "%03u", d[i]);
		gl += (size_t)w;
	}
	int w;
	if (level == IG_TILES_ENTRIES)
		w = snprintf(out, cap, "tile/entries/%s", groups);
	else
		w = snprintf(out, cap, "tile/%d/%s", level, groups);
	if (w < 0 || (size_t)w >= cap)
		return IG_ERR_RANGE;
	if (width > 0) {
		int w2 = snprintf(out + w, cap - (size_t)w, ".p/%u", width);
		if (w2 < 0 || (size_t)w2 >= cap - (size_t)w)
			return IG_ERR_RANGE;
	}
	return IG_OK;
}

/* Splits "a/b/c" into dir "a/b" and name "c" (in place). */
static const char *split_path(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash == NULL)
		return NULL;
	*slash = '\0';
	return slash + 1;
}

static int io_code(int e)
{
	return e == ENOSPC || e == EDQUOT ? IG_ERR_NOSPACE : IG_ERR_IO;
}

/* ---- directories under DIR/tlog, walked without following links ---- */

typedef struct tdir {
	int root;                                   /* DIR/tlog */
	struct {
		char path[IG_TILES_PATH_MAX];
		int fd;
	} c[DCACHE_SLOTS];
	unsigned next;
} tdir;

static void tdir_init(tdir *d)
{
	d->root = -1;
	for (unsigned i = 0; i < DCACHE_SLOTS; i++)
		d->c[i].fd = -1;
	d->next = 0;
}

/* Closes cached descriptors of rel and everything below it ("" = all). */
static void tdir_forget(tdir *d, const char *rel)
{
	size_t len = strlen(rel);
	for (unsigned i = 0; i < DCACHE_SLOTS; i++) {
		if (d->c[i].fd < 0)
			continue;
		if (len == 0 || (strncmp(d->c[i].path, rel, len) == 0 &&
		                 (d->c[i].path[len] == '\0' || d->c[i].path[len] == '/'))) {
			close(d->c[i].fd);
			d->c[i].fd = -1;
		}
	}
}

static void tdir_fini(tdir *d)
{
	tdir_forget(d, "");
	if (d->root >= 0)
		close(d->root);
	d->root = -1;
}

/* A descriptor of directory rel (relative to DIR/tlog; "" is DIR/tlog),
 * owned by the cache: the caller never closes it. With create, missing
 * directories are made. 0 or -errno (ELOOP/ENOTDIR for a link or a file
 * where a directory should be). */
static int tdir_open(tdir *d, const char *rel, int create, int *fd_out)
{
	if (rel[0] == '\0') {
		*fd_out = d->root;
		return 0;
	}
	for (unsigned i = 0; i < DCACHE_SLOTS; i++)
		if (d->c[i].fd >= 0 && strcmp(d->c[i].path, rel) == 0) {
			*fd_out = d->c[i].fd;
			return 0;
		}
	char buf[IG_TILES_PATH_MAX];
	if (strlen(rel) >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, rel, strlen(rel) + 1);
	int cur = d->root;
	char *save = NULL;
	for (char *comp = strtok_r(buf, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
		int fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, DIR_MODE) != 0 && errno != EEXIST) {
				int e = errno;
				if (cur != d->root)
					close(cur);
				return -e;
			}
			fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			int e = errno;
			if (cur != d->root)
				close(cur);
			return -e;
		}
		if (cur != d->root)
			close(cur);
		cur = fd;
	}
	unsigned s = d->next++ % DCACHE_SLOTS;
	if (d->c[s].fd >= 0)
		close(d->c[s].fd);
	memcpy(d->c[s].path, rel, strlen(rel) + 1);
	d->c[s].fd = cur;
	*fd_out = cur;
	return 0;
}

/* Removes name (a file, a link, or a directory tree) inside dirfd, never
 * following links. A missing name is not an error. 0 or -errno. */
static int remove_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *dp = fdopendir(fd);
	if (dp == NULL) {
		int e = errno;
		close(fd);
		return -e;
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = remove_at(fd, de->d_name);
	}
	closedir(dp);
	if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

/* Writes a whole file at rel (relative to DIR/tlog) through a temporary
 * name and rename, creating its directories. */
static int write_rel(tdir *d, const char *where, const char *rel, const uint8_t *data, size_t len, ig_error *err)
{
	char dir[IG_TILES_PATH_MAX], tmp[IG_TILES_PATH_MAX + 8];
	const char *name;
	int dfd = -1, rc;

	if (strlen(rel) >= sizeof dir)
		return ig_error_set(err, IG_ERR_RANGE, "tiles %s: path %s is too long", where, rel);
	memcpy(dir, rel, strlen(rel) + 1);
	name = split_path(dir);
	if (name == NULL) {
		name = rel;
		dir[0] = '\0';
	}
	rc = tdir_open(d, dir, 1, &dfd);
	if (rc != 0)
		return ig_error_set(err, io_code(-rc), "tiles %s: cannot create directory tlog/%s: %s; check the "
		                    "permissions of %s/tlog and that nothing in it is a symbolic link", where, dir,
		                    strerror(-rc), where);
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, FILE_MODE);
	if (fd < 0)
		return ig_error_set(err, io_code(errno), "tiles %s: cannot create tlog/%s/%s: %s", where, dir, tmp,
		                    strerror(errno));
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : ENOSPC;
			close(fd);
			(void)unlinkat(dfd, tmp, 0);
			return ig_error_set(err, io_code(e), "tiles %s: cannot write tlog/%s: %s", where, rel, strerror(e));
		}
		off += (size_t)w;
	}
	if (close(fd) != 0) {
		int e = errno;
		(void)unlinkat(dfd, tmp, 0);
		return ig_error_set(err, io_code(e), "tiles %s: cannot write tlog/%s: %s", where, rel, strerror(e));
	}
	if (renameat(dfd, tmp, dfd, name) != 0) {
		int e = errno;
		(void)unlinkat(dfd, tmp, 0);
		return ig_error_set(err, io_code(e), "tiles %s: cannot rename tlog/%s/%s to %s: %s", where, dir, tmp, name,
		                    strerror(e));
	}
	return IG_OK;
}

/* Reads file rel into a malloc'd buffer (exact_len 0: any length up to
 * max_len). 0, or -errno (-ENOENT when it or a directory is missing,
 * -EFBIG for a wrong length, -EINVAL for something that is not a regular
 * file). */
static int read_rel(tdir *d, const char *rel, size_t exact_len, size_t max_len, uint8_t **out, size_t *out_len)
{
	char dir[IG_TILES_PATH_MAX];
	const char *name;
	int dfd = -1, rc;

	if (strlen(rel) >= sizeof dir)
		return -ENAMETOOLONG;
	memcpy(dir, rel, strlen(rel) + 1);
	name = split_path(dir);
	if (name == NULL) {
		name = rel;
		dir[0] = '\0';
	}
	int fd = -1;
	for (int attempt = 0; fd < 0; attempt++) {
		rc = tdir_open(d, dir, 0, &dfd);
		if (rc != 0)
			return rc == -ENOTDIR || rc == -ELOOP ? -EINVAL : rc;
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != ENOENT || attempt > 0 || dir[0] == '\0')
			return errno == ELOOP ? -EINVAL : -errno;
		/* A cached directory may have been deleted (a writer removes a
		 * completed tile's .p directory) and made again: look it up anew. */
		tdir_forget(d, dir);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	size_t len = (size_t)st.st_size;
	if ((exact_len != 0 && len != exact_len) || (exact_len == 0 && len > max_len)) {
		close(fd);
		*out_len = len;
		return -EFBIG;
	}
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t r = read(fd, buf + off, len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EFBIG;   /* shrank under us */
			free(buf);
			close(fd);
			return -e;
		}
		off += (size_t)r;
	}
	close(fd);
	*out = buf;
	*out_len = len;
	return 0;
}

static int exists_rel(tdir *d, const char *rel, size_t *len_out)
{
	char dir[IG_TILES_PATH_MAX];
	const char *name;
	int dfd = -1;

	memcpy(dir, rel, strlen(rel) + 1);
	name = split_path(dir);
	if (tdir_open(d, dir, 0, &dfd) != 0)
		return 0;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (len_out)
		*len_out = (size_t)st.st_size;
	return 1;
}

/* Removes tile rel (a full tile path) and its `.p` directory. */
static int remove_tile(tdir *d, const char *rel)
{
	char dir[IG_TILES_PATH_MAX], pdir[IG_TILES_PATH_MAX + 2];
	const char *name;
	int dfd = -1;

	memcpy(dir, rel, strlen(rel) + 1);
	name = split_path(dir);
	if (tdir_open(d, dir, 0, &dfd) != 0)
		return 0;   /* its directory is missing: so is it */
	snprintf(pdir, sizeof pdir, "%s.p", rel);
	tdir_forget(d, pdir);
	snprintf(pdir, sizeof pdir, "%s.p", name);
	int rc = remove_at(dfd, pdir);
	if (rc == 0 && unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

/* ---- hashing ---- */

/* MTH of a perfect run of n (a power of two, <= 256) hashes. */
static void perfect_root(const uint8_t (*h)[IG_HASH_BYTES], unsigned n, uint8_t out[IG_HASH_BYTES])
{
	uint8_t tmp[IG_TILES_WIDTH / 2][IG_HASH_BYTES];

	if (n == 1) {
		memcpy(out, h[0], IG_HASH_BYTES);
		return;
	}
	for (unsigned i = 0; i < n / 2; i++)
		ig_merkle_hash_node(IG_MERKLE_SHA256, tmp[i], h[2 * i], h[2 * i + 1]);
	for (unsigned m = n / 2; m > 1; m /= 2)
		for (unsigned i = 0; i < m / 2; i++)
			ig_merkle_hash_node(IG_MERKLE_SHA256, tmp[i], tmp[2 * i], tmp[2 * i + 1]);
	memcpy(out, tmp[0], IG_HASH_BYTES);
}

/* Folds a compact range (largest first) into the root. */
static void fold(const uint8_t (*nodes)[IG_HASH_BYTES], unsigned count, uint8_t root[IG_HASH_BYTES])
{
	if (count == 0) {
		ig_merkle_hash_empty(IG_MERKLE_SHA256, root);
		return;
	}
	uint8_t r[IG_HASH_BYTES];
	memcpy(r, nodes[count - 1], IG_HASH_BYTES);
	for (unsigned i = count - 1; i-- > 0;)
		ig_merkle_hash_node(IG_MERKLE_SHA256, r, nodes[i], r);
	memcpy(root, r, IG_HASH_BYTES);
}

/* How many hashes level l has in a tree of size s: s / 256^l. Its
 * rightmost tile is number count >> 8, of width count & 255 (0: none). */
static uint64_t level_count(uint64_t s, unsigned l)
{
	return l >= 8 ? 0 : s >> (8 * l);
}

/* ---- entry bundles ---- */

/* Walks a bundle: the offset of entry k and its length, or -1 if the bytes
 * end before it. */
static int bundle_find(const uint8_t *b, size_t len, unsigned k, size_t *off, size_t *elen)
{
	size_t p = 0;
	for (unsigned i = 0;; i++) {
		if (p + 2 > len)
			return -1;
		size_t l = ig_get_u16(b + p);
		if (p + 2 + l > len)
			return -1;
		if (i == k) {
			*off = p + 2;
			*elen = l;
			return 0;
		}
		p += 2 + l;
	}
}

/* ---- writer ---- */

struct ig_tiles {
	char dir[PATH_MAX];                 /* the ledger directory, for messages */
	tdir d;
	uint64_t size;
	unsigned count[IG_TILES_LEVELS];    /* hashes in the rightmost (partial) tile of each level */
	uint8_t (*edge)[IG_TILES_WIDTH][IG_HASH_BYTES];
	uint8_t *bundle;                    /* the partial entry bundle */
	size_t bundle_len, bundle_cap;
	int dirty[IG_TILES_LEVELS + 1];     /* partial to write at the end of the batch */
	int failed;
};

static int open_tlog(tdir *d, const char *ledger_dir, int create, ig_error *err)
{
	int dfd = open(ledger_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO,
		                    "tiles: cannot open ledger directory %s: %s", ledger_dir, strerror(errno));
	if (create && mkdirat(dfd, IG_TILES_SUBDIR, DIR_MODE) != 0 && errno != EEXIST) {
		int e = errno;
		close(dfd);
		return ig_error_set(err, io_code(e), "tiles: cannot create %s/%s: %s; check the directory's permissions",
		                    ledger_dir, IG_TILES_SUBDIR, strerror(e));
	}
	d->root = openat(dfd, IG_TILES_SUBDIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	close(dfd);
	if (d->root < 0)
		return ig_error_set(err, e == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO,
		                    "tiles: cannot open %s/%s: %s%s", ledger_dir, IG_TILES_SUBDIR, strerror(e),
		                    e == ELOOP || e == ENOTDIR ? " (it must be a directory, not a symbolic link)" : "");
	return IG_OK;
}

static int bundle_reserve(ig_tiles *t, size_t more)
{
	if (t->bundle_len + more <= t->bundle_cap)
		return 0;
	size_t cap = t->bundle_cap ? t->bundle_cap : 65536;
	while (cap < t->bundle_len + more)
		cap *= 2;
	uint8_t *p = realloc(t->bundle, cap);
	if (p == NULL)
		return -1;
	t->bundle = p;
	t->bundle_cap = cap;
	return 0;
}

/* Deletes the `.p` directories of tiles n, n+1, ... (and those full tiles)
 * beyond what a tree of size s has, level by level: the log was rolled back
 * and those files belong to a history that no longer exists. Partials of
 * the rightmost tile wider than the current width go too. */
static int prune_beyond(ig_tiles *t, uint64_t s, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];

	if (s == 0) {
		tdir_forget(&t->d, "");
		int rc = remove_at(t->d.root, "tile");
		if (rc != 0)
			return ig_error_set(err, IG_ERR_IO, "tiles %s: cannot remove old tiles in tlog/tile: %s", t->dir,
			                    strerror(-rc));
		return IG_OK;
	}
	for (int l = IG_TILES_ENTRIES; l < IG_TILES_LEVELS; l++) {
		unsigned lv = l < 0 ? 0 : (unsigned)l;
		uint64_t cnt = level_count(s, lv);
		uint64_t n = cnt >> 8;
		unsigned w = (unsigned)(cnt & 255);
		int rc = 0;

		/* The rightmost tile: its full form and wider partials are ahead. */
		(void)ig_tiles_path(rel, sizeof rel, l, n, 0);
		int dfd = -1;
		char dir[IG_TILES_PATH_MAX + 2];
		memcpy(dir, rel, strlen(rel) + 1);
		const char *name = split_path(dir);
		if (tdir_open(&t->d, dir, 0, &dfd) == 0) {
			if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
				rc = -errno;
			char pdir[IG_TILES_PATH_MAX + 2];
			snprintf(pdir, sizeof pdir, "%s.p", name);
			int pfd = w == 0 ? -1 : openat(dfd, pdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (w == 0) {
				char prel[IG_TILES_PATH_MAX + 2];
				snprintf(prel, sizeof prel, "%s.p", rel);
				tdir_forget(&t->d, prel);
				int r1 = remove_at(dfd, pdir);
				if (r1 != 0 && rc == 0)
					rc = r1;
			} else if (pfd >= 0) {
				DIR *dp = fdopendir(pfd);
				if (dp == NULL) {
					close(pfd);
				} else {
					struct dirent *de;
					while ((de = readdir(dp)) != NULL) {
						char *end;
						if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
							continue;
						unsigned long v = strtoul(de->d_name, &end, 10);
						if (*end != '\0' || v > w || de->d_name[0] == '0') {
							int r1 = remove_at(pfd, de->d_name);
							if (r1 != 0 && rc == 0)
								rc = r1;
						}
					}
					closedir(dp);
				}
			}
		}
		/* Tiles to the right of it. */
		for (uint64_t m = n + 1;; m++) {
			size_t flen;
			char prel[IG_TILES_PATH_MAX + 2];
			(void)ig_tiles_path(rel, sizeof rel, l, m, 0);
			snprintf(prel, sizeof prel, "%s.p", rel);
			int has_p = 0;
			memcpy(dir, prel, strlen(prel) + 1);
			name = split_path(dir);
			if (tdir_open(&t->d, dir, 0, &dfd) == 0) {
				struct stat st;
				has_p = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
			}
			if (!exists_rel(&t->d, rel, &flen) && !has_p)
				break;
			int r2 = remove_tile(&t->d, rel);
			if (r2 != 0 && rc == 0)
				rc = r2;
		}
		if (rc != 0)
			return ig_error_set(err, IG_ERR_IO, "tiles %s: cannot remove tiles beyond size %" PRIu64
			                    " at level %d: %s", t->dir, s, l, strerror(-rc));
	}
	return IG_OK;
}

/* The first w hashes of tile n at level l: its partial of width w, else
 * the beginning of the full tile (a writer that went further already
 * deleted the partial). */
static int load_edge_tile(ig_tiles *t, unsigned l, uint64_t n, unsigned w, int *from_full, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)ig_tiles_path(rel, sizeof rel, (int)l, n, w);
	int rc = read_rel(&t->d, rel, (size_t)w * IG_HASH_BYTES, 0, &buf, &len);
	*from_full = 0;
	if (rc == -ENOENT) {
		(void)ig_tiles_path(rel, sizeof rel, (int)l, n, 0);
		rc = read_rel(&t->d, rel, TILE_BYTES, 0, &buf, &len);
		*from_full = 1;
		if (rc == -ENOENT) {
			(void)ig_tiles_path(rel, sizeof rel, (int)l, n, w);
			return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is missing (nor is there a full tile): "
			                    "the tiles do not cover %" PRIu64 " leaves; rebuild them", t->dir, rel, t->size);
		}
	}
	if (rc == -EFBIG || rc == -EINVAL)
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is %s (%zu bytes, want %zu); rebuild the tiles",
		                    t->dir, rel, rc == -EINVAL ? "not a regular file" : "of the wrong length", len,
		                    *from_full ? (size_t)TILE_BYTES : (size_t)w * IG_HASH_BYTES);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "tiles %s: cannot read tlog/%s: %s", t->dir, rel, strerror(-rc));
	memcpy(t->edge[l], buf, (size_t)w * IG_HASH_BYTES);
	free(buf);
	return IG_OK;
}

static int load_edge_bundle(ig_tiles *t, uint64_t n, unsigned w, int *from_full, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	const size_t max = (size_t)IG_TILES_WIDTH * (2 + IG_TILES_ENTRY_MAX);

	(void)ig_tiles_path(rel, sizeof rel, IG_TILES_ENTRIES, n, w);
	int rc = read_rel(&t->d, rel, 0, max, &buf, &len);
	*from_full = 0;
	if (rc == -ENOENT) {
		(void)ig_tiles_path(rel, sizeof rel, IG_TILES_ENTRIES, n, 0);
		rc = read_rel(&t->d, rel, 0, max, &buf, &len);
		*from_full = 1;
		if (rc == -ENOENT) {
			(void)ig_tiles_path(rel, sizeof rel, IG_TILES_ENTRIES, n, w);
			return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is missing (nor is there a full bundle): "
			                    "the tiles do not cover %" PRIu64 " leaves; rebuild them", t->dir, rel, t->size);
		}
	}
	if (rc == -EFBIG || rc == -EINVAL)
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is %s; rebuild the tiles", t->dir, rel,
		                    rc == -EINVAL ? "not a regular file" : "too long");
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "tiles %s: cannot read tlog/%s: %s", t->dir, rel, strerror(-rc));
	/* Exactly w entries (a partial), or at least w (a full bundle's start),
	 * each hashing to its leaf in the level-0 edge. */
	size_t p = 0;
	for (unsigned i = 0; i < w; i++) {
		size_t off, elen;
		uint8_t h[IG_HASH_BYTES];
		if (bundle_find(buf + p, len - p, 0, &off, &elen) != 0) {
			free(buf);
			return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s ends inside entry %u (want %u entries); "
			                    "rebuild the tiles", t->dir, rel, i, w);
		}
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, h, buf + p + off, elen);
		if (memcmp(h, t->edge[0][i], IG_HASH_BYTES) != 0) {
			free(buf);
			return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: entry %u of tlog/%s does not hash to its leaf in "
			                    "the level-0 tile; rebuild the tiles", t->dir, i, rel);
		}
		p += off + elen;
	}
	if (!*from_full && p != len) {
		free(buf);
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s has %zu bytes after its %u entries; rebuild "
		                    "the tiles", t->dir, rel, len - p, w);
	}
	if (bundle_reserve(t, p) != 0) {
		free(buf);
		return ig_error_set(err, IG_ERR_NOMEM, "tiles %s: out of memory", t->dir);
	}
	memcpy(t->bundle, buf, p);
	t->bundle_len = p;
	free(buf);
	return IG_OK;
}

static int write_partials(ig_tiles *t, ig_error *err);

/* Restores the right edge of a tree of size s from the files. */
static int restore(ig_tiles *t, uint64_t s, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];
	int rc, from_full;

	t->size = s;
	for (unsigned l = 0; l < IG_TILES_LEVELS; l++) {
		uint64_t cnt = level_count(s, l);
		if (cnt == 0)
			break;
		uint64_t n = cnt >> 8;
		unsigned w = (unsigned)(cnt & 255);
		/* The last full tile of the level proves the tiles reach this far. */
		for (int k = (l == 0 ? IG_TILES_ENTRIES : (int)l); n > 0 && k <= (int)l; k++) {
			size_t flen = 0;
			(void)ig_tiles_path(rel, sizeof rel, k, n - 1, 0);
			if (!exists_rel(&t->d, rel, &flen))
				return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is missing: the tiles do not "
				                    "cover %" PRIu64 " leaves; rebuild them", t->dir, rel, s);
			if ((k >= 0 && flen != TILE_BYTES) || (k < 0 && flen < 2 * IG_TILES_WIDTH))
				return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is short (%zu bytes); rebuild "
				                    "the tiles", t->dir, rel, flen);
		}
		t->count[l] = w;
		if (w == 0)
			continue;
		rc = load_edge_tile(t, l, n, w, &from_full, err);
		if (rc != IG_OK)
			return rc;
		t->dirty[l] = from_full;
	}
	if (t->count[0] > 0) {
		rc = load_edge_bundle(t, s >> 8, t->count[0], &from_full, err);
		if (rc != IG_OK)
			return rc;
		t->dirty[KIND_ENTRIES] = from_full;
	}
	rc = prune_beyond(t, s, err);
	if (rc != IG_OK)
		return rc;
	return write_partials(t, err);
}

static void reset_memory(ig_tiles *t)
{
	t->size = 0;
	memset(t->count, 0, sizeof t->count);
	memset(t->dirty, 0, sizeof t->dirty);
	t->bundle_len = 0;
	t->failed = 0;
}

int ig_tiles_open(ig_tiles **out, const char *ledger_dir, uint64_t size, ig_error *err)
{
	*out = NULL;
	if (ledger_dir == NULL || strlen(ledger_dir) >= PATH_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "tiles: the ledger directory name is missing or too long");
	ig_tiles *t = calloc(1, sizeof *t);
	if (t != NULL)
		t->edge = calloc(IG_TILES_LEVELS, sizeof *t->edge);
	if (t == NULL || t->edge == NULL) {
		free(t);
		return ig_error_set(err, IG_ERR_NOMEM, "tiles %s: out of memory", ledger_dir);
	}
	memcpy(t->dir, ledger_dir, strlen(ledger_dir) + 1);
	tdir_init(&t->d);
	int rc = open_tlog(&t->d, ledger_dir, 1, err);
	if (rc == IG_OK)
		rc = size == 0 ? prune_beyond(t, 0, err) : restore(t, size, err);
	if (rc != IG_OK) {
		ig_tiles_close(t);
		return rc;
	}
	*out = t;
	return IG_OK;
}

int ig_tiles_reset(ig_tiles *t, ig_error *err)
{
	reset_memory(t);
	int rc = prune_beyond(t, 0, err);
	if (rc != IG_OK)
		t->failed = 1;
	return rc;
}

/* Writes the partial tile of the current size at every level that changed
 * in this batch, and the partial entry bundle. */
static int write_partials(ig_tiles *t, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];

	for (unsigned l = 0; l < IG_TILES_LEVELS; l++) {
		if (!t->dirty[l])
			continue;
		t->dirty[l] = 0;
		if (t->count[l] == 0)
			continue;
		(void)ig_tiles_path(rel, sizeof rel, (int)l, level_count(t->size, l) >> 8, t->count[l]);
		int rc = write_rel(&t->d, t->dir, rel, t->edge[l][0], (size_t)t->count[l] * IG_HASH_BYTES, err);
		if (rc != IG_OK)
			return rc;
	}
	if (t->dirty[KIND_ENTRIES]) {
		t->dirty[KIND_ENTRIES] = 0;
		if (t->count[0] > 0) {
			(void)ig_tiles_path(rel, sizeof rel, IG_TILES_ENTRIES, t->size >> 8, t->count[0]);
			int rc = write_rel(&t->d, t->dir, rel, t->bundle, t->bundle_len, err);
			if (rc != IG_OK)
				return rc;
		}
	}
	return IG_OK;
}

/* Deletes the `.p` directory of tile n of level l (or of the entry
 * bundle): the full tile is in place, so its partials are no longer needed. */
static int remove_tile_partials(ig_tiles *t, int l, uint64_t n, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX], pname[IG_TILES_PATH_MAX + 2];
	const char *name;
	int dfd = -1;

	(void)ig_tiles_path(rel, sizeof rel, l, n, 0);
	snprintf(pname, sizeof pname, "%s.p", rel);
	tdir_forget(&t->d, pname);
	name = split_path(rel);
	if (tdir_open(&t->d, rel, 0, &dfd) != 0)
		return IG_OK;
	snprintf(pname, sizeof pname, "%s.p", name);
	int rc = remove_at(dfd, pname);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "tiles %s: cannot remove tlog/%s/%s: %s", t->dir, rel, pname,
		                    strerror(-rc));
	return IG_OK;
}

/* Tile l has just filled up (its 256th hash arrived): write it, hash it
 * into the level above, and delete its partials. */
static int complete_tile(ig_tiles *t, unsigned l, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];
	uint64_t n = (level_count(t->size, l) >> 8) - 1;
	int rc;

	(void)ig_tiles_path(rel, sizeof rel, (int)l, n, 0);
	rc = write_rel(&t->d, t->dir, rel, t->edge[l][0], TILE_BYTES, err);
	if (rc != IG_OK)
		return rc;
	rc = remove_tile_partials(t, (int)l, n, err);
	if (rc != IG_OK)
		return rc;
	if (l == 0) {
		(void)ig_tiles_path(rel, sizeof rel, IG_TILES_ENTRIES, n, 0);
		rc = write_rel(&t->d, t->dir, rel, t->bundle, t->bundle_len, err);
		if (rc != IG_OK)
			return rc;
		rc = remove_tile_partials(t, IG_TILES_ENTRIES, n, err);
		if (rc != IG_OK)
			return rc;
		t->bundle_len = 0;
		t->dirty[KIND_ENTRIES] = 0;
	}
	t->count[l] = 0;
	t->dirty[l] = 0;
	if (l + 1 < IG_TILES_LEVELS) {
		perfect_root((const uint8_t (*)[IG_HASH_BYTES])t->edge[l], IG_TILES_WIDTH, t->edge[l + 1][t->count[l + 1]]);
		t->count[l + 1]++;
		t->dirty[l + 1] = 1;
		if (t->count[l + 1] == IG_TILES_WIDTH)
			return complete_tile(t, l + 1, err);
	}
	return IG_OK;
}

int ig_tiles_append(ig_tiles *t, const uint8_t (*leaf)[IG_HASH_BYTES], const uint8_t *const *entry,
                    const size_t *entry_len, size_t n, ig_error *err)
{
	if (t->failed)
		return ig_error_set(err, IG_ERR_STATE, "tiles %s: an earlier write failed, so the tiles miss leaves; "
		                    "they are rebuilt when the ledger is opened again", t->dir);
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (entry_len[i] > IG_TILES_ENTRY_MAX)
			return ig_error_set(err, IG_ERR_RANGE, "tiles %s: entry %" PRIu64 " is %zu bytes, over the %u an "
			                    "entry bundle can hold; nothing was appended", t->dir, t->size + i, entry_len[i],
			                    IG_TILES_ENTRY_MAX);
		bytes += 2 + entry_len[i];
	}
	if (n > UINT64_MAX - t->size)
		return ig_error_set(err, IG_ERR_RANGE, "tiles %s: the tree cannot grow past 2^64 leaves", t->dir);
	/* The bundle never holds more than 256 entries, but reserving the batch
	 * (capped) up front keeps the loop free of allocation failures. */
	if (bundle_reserve(t, bytes < (size_t)IG_TILES_WIDTH * (2 + IG_TILES_ENTRY_MAX) ? bytes
	                                      : (size_t)IG_TILES_WIDTH * (2 + IG_TILES_ENTRY_MAX)) != 0)
		return ig_error_set(err, IG_ERR_NOMEM, "tiles %s: out of memory; nothing was appended", t->dir);

	for (size_t i = 0; i < n; i++) {
		if (bundle_reserve(t, 2 + entry_len[i]) != 0) {
			t->failed = 1;
			return ig_error_set(err, IG_ERR_NOMEM, "tiles %s: out of memory", t->dir);
		}
		memcpy(t->edge[0][t->count[0]], leaf[i], IG_HASH_BYTES);
		t->count[0]++;
		ig_put_u16(t->bundle + t->bundle_len, (uint16_t)entry_len[i]);
		if (entry_len[i] > 0)
			memcpy(t->bundle + t->bundle_len + 2, entry[i], entry_len[i]);
		t->bundle_len += 2 + entry_len[i];
		t->size++;
		t->dirty[0] = 1;
		t->dirty[KIND_ENTRIES] = 1;
		if (t->count[0] == IG_TILES_WIDTH) {
			int rc = complete_tile(t, 0, err);
			if (rc != IG_OK) {
				t->failed = 1;
				return rc;
			}
		}
	}
	int rc = write_partials(t, err);
	if (rc != IG_OK)
		t->failed = 1;
	return rc;
}

int ig_tiles_publish(ig_tiles *t, const char *checkpoint_text, size_t len, ig_error *err)
{
	/* A published checkpoint must never name tiles that are not there: its
	 * size (the second line, C2SP tlog-checkpoint) is at most the tiles'. */
	const char *nl = memchr(checkpoint_text, '\n', len);
	uint64_t size = 0;
	size_t i = nl ? (size_t)(nl - checkpoint_text) + 1 : len;
	size_t digits = 0;
	for (; i < len && checkpoint_text[i] >= '0' && checkpoint_text[i] <= '9' && digits < 20; i++, digits++)
		size = size * 10 + (uint64_t)(checkpoint_text[i] - '0');
	if (digits == 0 || digits == 20 || i >= len || checkpoint_text[i] != '\n')
		return ig_error_set(err, IG_ERR_INVAL, "tiles %s: the checkpoint to publish has no tree size on its "
		                    "second line", t->dir);
	if (t->failed || size > t->size)
		return ig_error_set(err, IG_ERR_STATE, "tiles %s: not publishing a checkpoint of size %" PRIu64 ": the "
		                    "tiles hold %s%" PRIu64 " leaves", t->dir, size, t->failed ? "an incomplete set of " : "",
		                    t->size);
	return write_rel(&t->d, t->dir, "checkpoint", (const uint8_t *)checkpoint_text, len, err);
}

uint64_t ig_tiles_size(const ig_tiles *t)
{
	return t->size;
}

void ig_tiles_root(const ig_tiles *t, uint8_t root[IG_HASH_BYTES])
{
	uint8_t nodes[64][IG_HASH_BYTES];
	unsigned count = 0;

	/* Each level's partial tile splits into perfect runs by the bits of its
	 * width, largest first; the levels go from the top down. */
	for (unsigned l = IG_TILES_LEVELS; l-- > 0;) {
		unsigned off = 0;
		for (unsigned b = 8; b-- > 0;) {
			if (!(t->count[l] & (1u << b)))
				continue;
			perfect_root((const uint8_t (*)[IG_HASH_BYTES])t->edge[l] + off, 1u << b, nodes[count++]);
			off += 1u << b;
		}
	}
	fold((const uint8_t (*)[IG_HASH_BYTES])nodes, count, root);
}

void ig_tiles_close(ig_tiles *t)
{
	if (t == NULL)
		return;
	tdir_fini(&t->d);
	free(t->edge);
	free(t->bundle);
	free(t);
}

/* ---- reader ---- */

struct ig_tiles_reader {
	char dir[PATH_MAX];
	tdir d;
	uint64_t size;
	struct {
		int used;
		unsigned level, width;
		uint64_t n;
		uint8_t data[TILE_BYTES];
	} slot[READER_SLOTS];
	unsigned next;
	uint8_t *bundle;                 /* the last entry bundle read */
	size_t bundle_len;
	uint64_t bundle_n;
	int bundle_used;
};

int ig_tiles_reader_open(ig_tiles_reader **out, const char *ledger_dir, uint64_t size, ig_error *err)
{
	*out = NULL;
	if (ledger_dir == NULL || strlen(ledger_dir) >= PATH_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "tiles: the ledger directory name is missing or too long");
	ig_tiles_reader *r = calloc(1, sizeof *r);
	if (r == NULL)
		return ig_error_set(err, IG_ERR_NOMEM, "tiles %s: out of memory", ledger_dir);
	memcpy(r->dir, ledger_dir, strlen(ledger_dir) + 1);
	tdir_init(&r->d);
	int rc = open_tlog(&r->d, ledger_dir, 0, err);
	if (rc != IG_OK) {
		free(r);
		return rc;
	}
	r->size = size;
	*out = r;
	return IG_OK;
}

void ig_tiles_reader_set_size(ig_tiles_reader *r, uint64_t size)
{
	if (size == r->size)
		return;
	r->size = size;
	for (unsigned i = 0; i < READER_SLOTS; i++)
		r->slot[i].used = 0;
	r->bundle_used = 0;
}

uint64_t ig_tiles_reader_size(const ig_tiles_reader *r)
{
	return r->size;
}

void ig_tiles_reader_close(ig_tiles_reader *r)
{
	if (r == NULL)
		return;
	tdir_fini(&r->d);
	free(r->bundle);
	free(r);
}

/* Width of tile n of level l in the reader's tree: 256 if full, the
 * partial's width if it is the rightmost, 0 if it does not exist. */
static unsigned tile_width(uint64_t size, int l, uint64_t n)
{
	uint64_t cnt = level_count(size, l < 0 ? 0 : (unsigned)l);
	if (n < (cnt >> 8))
		return IG_TILES_WIDTH;
	if (n == (cnt >> 8))
		return (unsigned)(cnt & 255);
	return 0;
}

/* Reads file rel of the given exact length (partial), else the prefix of
 * the full form (its partials are deleted once it exists). */
static int reader_read(ig_tiles_reader *r, int l, uint64_t n, unsigned w, size_t full_exact, size_t max,
                       uint8_t **buf, size_t *len, ig_error *err)
{
	char rel[IG_TILES_PATH_MAX];
	int rc;

	(void)ig_tiles_path(rel, sizeof rel, l, n, w == IG_TILES_WIDTH ? 0 : w);
	if (w == IG_TILES_WIDTH) {
		rc = read_rel(&r->d, rel, full_exact, max, buf, len);
	} else {
		rc = read_rel(&r->d, rel, full_exact ? (size_t)w * IG_HASH_BYTES : 0, max, buf, len);
		if (rc == -ENOENT) {
			char full[IG_TILES_PATH_MAX];
			(void)ig_tiles_path(full, sizeof full, l, n, 0);
			rc = read_rel(&r->d, full, full_exact, max, buf, len);
			if (rc != -ENOENT)
				memcpy(rel, full, sizeof rel);
		}
	}
	if (rc == -ENOENT)
		return ig_error_set(err, IG_ERR_NOTFOUND, "tiles %s: tlog/%s is missing (tree size %" PRIu64 "); the "
		                    "tiles are rebuilt when the ledger is opened", r->dir, rel, r->size);
	if (rc == -EFBIG || rc == -EINVAL)
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: tlog/%s is %s; the tiles are rebuilt when the ledger "
		                    "is opened", r->dir, rel, rc == -EINVAL ? "not a regular file" : "of the wrong length");
	if (rc != 0)
		return ig_error_set(err, rc == -ENOMEM ? IG_ERR_NOMEM : IG_ERR_IO, "tiles %s: cannot read tlog/%s: %s",
		                    r->dir, rel, strerror(-rc));
	return IG_OK;
}

/* The hashes of tile n at level l (width w > 0), from the cache or disk. */
static int reader_tile(ig_tiles_reader *r, unsigned l, uint64_t n, unsigned w, const uint8_t **data, ig_error *err)
{
	for (unsigned i = 0; i < READER_SLOTS; i++)
		if (r->slot[i].used && r->slot[i].level == l && r->slot[i].n == n && r->slot[i].width == w) {
			*data = r->slot[i].data;
			return IG_OK;
		}
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = reader_read(r, (int)l, n, w, TILE_BYTES, 0, &buf, &len, err);
	if (rc != IG_OK)
		return rc;
	unsigned s = r->next++ % READER_SLOTS;
	memcpy(r->slot[s].data, buf, (size_t)w * IG_HASH_BYTES);
	free(buf);
	r->slot[s].used = 1;
	r->slot[s].level = l;
	r->slot[s].n = n;
	r->slot[s].width = w;
	*data = r->slot[s].data;
	return IG_OK;
}

int ig_tiles_reader_node(void *reader, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err)
{
	ig_tiles_reader *r = reader;

	if (level >= 64 || index >= (r->size >> level))
		return ig_error_set(err, IG_ERR_RANGE, "tiles %s: node %u/%" PRIu64 " is not inside a tree of %" PRIu64
		                    " leaves", r->dir, level, index, r->size);
	unsigned l = level / 8, k = level % 8;
	uint64_t pos = index << k;            /* first hash of the run at tile level l */
	uint64_t n = pos >> 8;
	unsigned w = tile_width(r->size, (int)l, n);
	const uint8_t *data;
	int rc = reader_tile(r, l, n, w, &data, err);
	if (rc != IG_OK)
		return rc;
	perfect_root((const uint8_t (*)[IG_HASH_BYTES])data + (pos & 255), 1u << k, out);
	return IG_OK;
}

int ig_tiles_reader_entry(ig_tiles_reader *r, uint64_t index, uint8_t *buf, size_t cap, size_t *len, ig_error *err)
{
	uint8_t leaf[IG_HASH_BYTES], h[IG_HASH_BYTES];
	int rc;

	*len = 0;
	if (index >= r->size)
		return ig_error_set(err, IG_ERR_RANGE, "tiles %s: entry %" PRIu64 " is not inside a tree of %" PRIu64
		                    " leaves", r->dir, index, r->size);
	rc = ig_tiles_reader_node(r, 0, index, leaf, err);
	if (rc != IG_OK)
		return rc;
	uint64_t n = index >> 8;
	unsigned w = tile_width(r->size, IG_TILES_ENTRIES, n);
	if (!r->bundle_used || r->bundle_n != n) {
		uint8_t *b = NULL;
		size_t blen = 0;
		rc = reader_read(r, IG_TILES_ENTRIES, n, w, 0, (size_t)IG_TILES_WIDTH * (2 + IG_TILES_ENTRY_MAX), &b,
		                 &blen, err);
		if (rc != IG_OK)
			return rc;
		free(r->bundle);
		r->bundle = b;
		r->bundle_len = blen;
		r->bundle_n = n;
		r->bundle_used = 1;
	}
	size_t off, elen;
	if (bundle_find(r->bundle, r->bundle_len, (unsigned)(index & 255), &off, &elen) != 0) {
		r->bundle_used = 0;
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: the entry bundle of entry %" PRIu64 " ends before it; "
		                    "the tiles are rebuilt when the ledger is opened", r->dir, index);
	}
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, h, r->bundle + off, elen);
	if (memcmp(h, leaf, IG_HASH_BYTES) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "tiles %s: entry %" PRIu64 " in its bundle does not hash to its "
		                    "leaf in the level-0 tile; the tiles are rebuilt when the ledger is opened", r->dir, index);
	*len = elen;
	if (elen > cap)
		return ig_error_set(err, IG_ERR_RANGE, "tiles %s: entry %" PRIu64 " is %zu bytes, over the %zu-byte buffer",
		                    r->dir, index, elen, cap);
	memcpy(buf, r->bundle + off, elen);
	return IG_OK;
}

int ig_tiles_compact_range(ig_tiles_reader *r, uint8_t (*nodes)[IG_HASH_BYTES], unsigned *count, ig_error *err)
{
	unsigned c = 0;

	*count = 0;
	for (unsigned b = 64; b-- > 0;) {
		if (!(r->size & ((uint64_t)1 << b)))
			continue;
		/* The subtree for bit b starts after the larger ones: at the size
		 * with bits b and below cleared. */
		uint64_t start = b == 63 ? 0 : (r->size >> (b + 1)) << (b + 1);
		int rc = ig_tiles_reader_node(r, b, start >> b, nodes[c], err);
		if (rc != IG_OK)
			return rc;
		c++;
	}
	*count = c;
	return IG_OK;
}

int ig_tiles_node(const char *ledger_dir, uint64_t size, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES],
                  ig_error *err)
{
	ig_tiles_reader *r;
	int rc = ig_tiles_reader_open(&r, ledger_dir, size, err);
	if (rc != IG_OK)
		return rc;
	rc = ig_tiles_reader_node(r, level, index, out, err);
	ig_tiles_reader_close(r);
	return rc;
}
