/*
 * ledger.c: the ledger directory, its files, and opening, creating and
 * auditing a ledger.
 *
 * Why this exists: the cluster head's identity decisions must be provable
 * later and must survive a crash. Everything that touches the directory as a
 * whole lives here: the lock that admits a single writer, the cluster-head
 * key, the atomic replacement of the signed checkpoint, and the facts an
 * open ledger answers (cluster, head, height, checkpoint). The full check of
 * a log is in ledger_scan.c, the group-commit writer in ledger_writer.c
 * (ledger_int.h says why they are split this way).
 *
 * Open scans the whole log before it hands the ledger out: a log shorter
 * than its signed checkpoint, or a bad record inside what the checkpoint
 * covers, is tampering and fails the open; a bad frame past the checkpoint
 * with nothing valid after it is a torn write from a crash, never
 * acknowledged, so a writer open cuts it off. The file is only ever cut at
 * open, never after a failed write, because a concurrent auditor may have it
 * mapped (reading past a shrunken end is SIGBUS).
 */
#include "ig_ledger.h"

#include "ig_checkpoint.h"
#include "ig_custody.h"
#include "ig_keyfile.h"
#include "ig_merkle.h"
#include "ig_record.h"
#include "ig_tiles.h"
#include "ledger_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BATCH 4096

/* ---- files ------------------------------------------------------------------ */

static ssize_t sys_pwrite(void *ctx, const char *file, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	(void)file;
	return pwrite(fd, buf, len, off);
}

static int sys_sync(void *ctx, const char *file, int fd)
{
	(void)ctx;
	return strcmp(file, IG_LEDGER_LOG) == 0 ? fdatasync(fd) : fsync(fd);
}

const ig_ledger_io ledger_sys_io = {.pwrite = sys_pwrite, .sync = sys_sync, .ctx = NULL};

bool ledger_errno_is_full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

int ledger_pwrite_all(const ig_ledger_io *io, const char *file, int fd, const uint8_t *buf, size_t len,
                      uint64_t off, size_t *done)
{
	size_t got = 0;
	int rc = 0;
	while (got < len) {
		ssize_t n = io->pwrite(io->ctx, file, fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		if (n == 0) {
			errno = EIO;
			rc = -1;
			break;
		}
		got += (size_t)n;
	}
	if (done)
		*done = got;
	return rc;
}

/* Temp file -> fsync -> rename -> fsync(dir): a crash leaves either the old
 * checkpoint or the new one, never a mix. */
int ledger_write_checkpoint_file(const ig_ledger_io *io, int dir_fd, const char *dir, const char *text,
                                 size_t len, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_CHECKPOINT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, LEDGER_FILE_MODE);
	if (fd < 0)
		return ig_error_set(err, ledger_errno_is_full(errno) ? IG_ERR_NOSPACE : IG_ERR_IO,
		                    "cannot create %s/%s: %s", dir, IG_LEDGER_CHECKPOINT_TMP, strerror(errno));
	if (ledger_pwrite_all(io, IG_LEDGER_CHECKPOINT_TMP, fd, (const uint8_t *)text, len, 0, NULL) != 0) {
		int e = errno;
		close(fd);
		return ig_error_set(err, ledger_errno_is_full(e) ? IG_ERR_NOSPACE : IG_ERR_IO, "cannot write %s/%s: %s", dir,
		                    IG_LEDGER_CHECKPOINT_TMP, strerror(e));
	}
	if (io->sync(io->ctx, IG_LEDGER_CHECKPOINT_TMP, fd) != 0) {
		int e = errno;
		close(fd);
		return ig_error_set(err, IG_ERR_IO, "fsync of %s/%s failed: %s", dir, IG_LEDGER_CHECKPOINT_TMP,
		                    strerror(e));
	}
	if (close(fd) != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot write %s/%s: %s", dir, IG_LEDGER_CHECKPOINT_TMP,
		                    strerror(errno));
	if (renameat(dir_fd, IG_LEDGER_CHECKPOINT_TMP, dir_fd, IG_LEDGER_CHECKPOINT) != 0)
		return ig_error_set(err, ledger_errno_is_full(errno) ? IG_ERR_NOSPACE : IG_ERR_IO,
		                    "cannot rename %s/%s to %s: %s", dir, IG_LEDGER_CHECKPOINT_TMP, IG_LEDGER_CHECKPOINT,
		                    strerror(errno));
	if (io->sync(io->ctx, ".", dir_fd) != 0)
		return ig_error_set(err, IG_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(errno));
	return IG_OK;
}

int ledger_read_checkpoint_file(int dir_fd, const char *dir, char *out, size_t *len, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_CHECKPOINT, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger checkpoint missing (%s/%s); restore it from a backup or a "
			                    "published ledger head",
			                    dir, IG_LEDGER_CHECKPOINT);
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_CHECKPOINT, strerror(errno));
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, out + got, IG_CHECKPOINT_MAX + 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			return ig_error_set(err, IG_ERR_IO, "cannot read %s/%s: %s", dir, IG_LEDGER_CHECKPOINT, strerror(e));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > IG_CHECKPOINT_MAX) {
			close(fd);
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "ledger checkpoint %s/%s is larger than %d bytes — tampered or corrupt",
			                    dir, IG_LEDGER_CHECKPOINT, IG_CHECKPOINT_MAX);
		}
	}
	close(fd);
	out[got] = '\0';
	*len = got;
	return IG_OK;
}

static int open_dir(const char *dir, ig_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_NOTFOUND,
			                    "ledger %s not found; create it with `iotguard init --ledger %s --cluster NAME`",
			                    dir, dir);
		return ig_error_set(err, IG_ERR_IO, "cannot open ledger directory %s: %s", dir, strerror(errno));
	}
	return fd;
}

static int open_log(int dir_fd, const char *dir, int flags, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_LOG, flags | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ig_error_set(err, IG_ERR_NOTFOUND,
			                    "%s/%s not found: %s is not a ledger; create one with `iotguard init`", dir,
			                    IG_LEDGER_LOG, dir);
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_LOG, strerror(errno));
	}
	return fd;
}

static int take_lock(int dir_fd, const char *dir, ig_error *err)
{
	int fd = openat(dir_fd, IG_LEDGER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open %s/%s: %s", dir, IG_LEDGER_LOCK, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return ig_error_set(err, IG_ERR_LOCKED,
			                    "ledger %s is in use by another writer (is the broker running?); stop it "
			                    "or use the online mode",
			                    dir);
		return ig_error_set(err, IG_ERR_IO, "cannot lock %s/%s: %s", dir, IG_LEDGER_LOCK, strerror(e));
	}
	return fd;
}

static int key_path(char *out, size_t cap, const char *dir, ig_error *err)
{
	int n = snprintf(out, cap, "%s/%s", dir, IG_LEDGER_KEY);
	if (n < 0 || (size_t)n >= cap)
		return ig_error_set(err, IG_ERR_RANGE, "ledger path %s is too long", dir);
	return IG_OK;
}

/* A ledger is sealed when its key exists only as ch.key.sealed: `iotguard
 * custody seal` writes that file before it removes ch.key, so a ch.key that
 * is there always wins. */
static bool key_is_sealed(int dir_fd)
{
	return faccessat(dir_fd, IG_LEDGER_KEY, F_OK, 0) != 0 && errno == ENOENT &&
	       faccessat(dir_fd, IG_CUSTODY_SEALED_FILE, F_OK, 0) == 0;
}

int ledger_open_dir(ig_ledger *l, bool lock, ig_error *err)
{
	int rc = open_dir(l->dir, err);
	if (rc < 0)
		return rc;
	l->dir_fd = rc;
	if (!lock)
		return IG_OK;
	rc = take_lock(l->dir_fd, l->dir, err);
	if (rc < 0)
		return rc;
	l->lock_fd = rc;
	return IG_OK;
}

int ledger_load_key(ig_ledger *l, bool sealed_ok, uint8_t key_pk[IG_PK_BYTES], bool *sealed, ig_error *err)
{
	const char *dir = l->dir;
	int rc;
	*sealed = key_is_sealed(l->dir_fd);
	if (*sealed && !sealed_ok)
		return ig_error_set(err, IG_ERR_SEALED,
		                    "ledger %s is sealed: it holds %s but no %s, so nothing can be appended or signed "
		                    "offline; start the broker and let the custody holders unseal it, or rebuild the key "
		                    "file with `iotguard custody recover`",
		                    dir, IG_CUSTODY_SEALED_FILE, IG_LEDGER_KEY);
	atomic_store(&l->sealed, *sealed);
	if (*sealed)
		return IG_OK;
	char path[PATH_MAX];
	rc = key_path(path, sizeof path, dir, err);
	if (rc == IG_OK)
		rc = ig_keyfile_read(path, l->ch_sk, key_pk, err);
	return rc;
}

void ledger_adopt_scan(ig_ledger *l, const ledger_scan_out *so)
{
	memcpy(l->cluster, so->genesis.cluster, sizeof l->cluster);
	memcpy(l->origin, so->origin, sizeof l->origin);
	l->version = so->version;
	memcpy(l->ch_pk, so->genesis.ch_pk, IG_PK_BYTES);
	memcpy(l->head, so->head, IG_HASH_BYTES);
	memcpy(l->cp_text, so->cp_text, so->cp_len + 1);
	l->cp_len = so->cp_len;
	l->cp = so->cp;
	l->acc = so->acc;
	l->log_end = so->good_bytes;
	l->last_ts = so->last_ts;
	atomic_store(&l->height, so->height);
}

/* ---- open and close --------------------------------------------------------- */

void ledger_free(ig_ledger *l)
{
	if (!l)
		return;
	ledger_pg_free(l->pg);
	if (l->log_fd >= 0)
		close(l->log_fd);
	if (l->lock_fd >= 0)
		close(l->lock_fd); /* drops the flock */
	if (l->event_fd >= 0)
		close(l->event_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
	sodium_memzero(l->ch_sk, sizeof l->ch_sk);
	pthread_cond_destroy(&l->work_cond);
	pthread_cond_destroy(&l->done_cond);
	pthread_mutex_destroy(&l->mu);
	free(l->wbuf);
	free(l->wake);
	ig_tiles_close(l->tiles);
	free(l->tleaf);
	free(l->tentry);
	free(l->tlen);
	free(l->dir);
	free(l);
}

ig_ledger *ledger_alloc(const char *dir)
{
	ig_ledger *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->dir_fd = l->log_fd = l->lock_fd = l->event_fd = -1;
	l->dir = strdup(dir);
	pthread_condattr_t ca;
	bool ok = l->dir != NULL;
	ok = ok && pthread_mutex_init(&l->mu, NULL) == 0;
	ok = ok && pthread_condattr_init(&ca) == 0;
	if (ok) {
		/* The idle grace is timed on the monotonic clock, like ig_mono_us. */
		ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&l->work_cond, &ca) == 0;
		pthread_condattr_destroy(&ca);
	}
	ok = ok && pthread_cond_init(&l->done_cond, NULL) == 0;
	if (!ok) {
		free(l->dir);
		free(l);
		return NULL;
	}
	return l;
}

int ig_ledger_open(ig_ledger **out, const char *dir, const ig_ledger_open_opts *opts, ig_error *err)
{
	static const ig_ledger_open_opts no_opts;
	if (!out || !dir)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open: missing argument");
	*out = NULL;
	if (!opts)
		opts = &no_opts;
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	ig_ledger *l = ledger_alloc(dir);
	if (!l)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory opening ledger %s", dir);
	l->writer = opts->writer;
	l->max_batch = opts->max_batch ? opts->max_batch : DEFAULT_MAX_BATCH;
	l->io = opts->io ? *opts->io : ledger_sys_io;
	int rc;
	if (!l->io.pwrite || !l->io.sync) {
		rc = ig_error_set(err, IG_ERR_INVAL, "ig_ledger_open: an I/O hook table needs both pwrite and sync");
		goto fail;
	}

	rc = ledger_open_dir(l, l->writer, err);
	if (rc < 0)
		goto fail;
	rc = open_log(l->dir_fd, dir, l->writer ? O_RDWR : O_RDONLY, err);
	if (rc < 0)
		goto fail;
	l->log_fd = rc;
	uint8_t key_pk[IG_PK_BYTES];
	bool sealed = false;
	if (l->writer) {
		rc = ledger_load_key(l, opts->sealed_ok, key_pk, &sealed, err);
		if (rc != IG_OK)
			goto fail;
	}

	ledger_scan_out *so = malloc(sizeof *so);
	if (!so) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory opening ledger %s", dir);
		goto fail;
	}
	ledger_scan_in in = {
		.dir = dir,
		.dir_fd = l->dir_fd,
		.log_fd = l->log_fd,
		.expect_pk = l->writer && !sealed ? key_pk : NULL,
		.tree_from_tiles = l->writer,
		.on_record = opts->on_record,
		.ctx = opts->ctx,
		.on_census = opts->on_census,
		.ahead = opts->ahead,
		.progress = opts->progress,
		.progress_ctx = opts->progress_ctx,
	};
	rc = ledger_scan(&in, so, err);
	if (rc == IG_OK && so->torn_bytes > 0) {
		if (l->writer) {
			if (ftruncate(l->log_fd, (off_t)so->good_bytes) != 0 || fsync(l->log_fd) != 0) {
				rc = ig_error_set(err, IG_ERR_IO, "cannot cut the torn tail of %s/%s: %s", dir,
				                  IG_LEDGER_LOG, strerror(errno));
			} else {
				ig_log(IG_LOG_WARN,
				       "ledger %s: record %" PRIu64 " was torn by a crash; cut %" PRIu64
				       " bytes at offset %" PRIu64 " (it was never acknowledged)",
				       dir, so->torn_index, so->torn_bytes, so->good_bytes);
			}
		} else {
			ig_log(IG_LOG_WARN,
			       "ledger %s: %" PRIu64 " bytes of a torn record %" PRIu64 " follow the last valid record "
			       "(a crash or a write in progress); the next writer open cuts them",
			       dir, so->torn_bytes, so->torn_index);
		}
	}
	if (rc != IG_OK) {
		free(so);
		goto fail;
	}
	ledger_adopt_scan(l, so);
	uint64_t cp_last_off = so->cp_last_off;
	free(so);

	if (l->writer) {
		/* Tiles are derived data: a ledger whose tiles cannot be written
		 * still opens, and says so (proofs and the tile mirror lag). */
		ig_error te = {0};
		if (ledger_tiles_start(l, cp_last_off, &te) != IG_OK)
			ig_log(IG_LOG_ERR, "ledger %s: cannot write its tiles in %s/%s/: %s; the ledger works, but serves no "
			       "tiles or proofs until it is reopened with the problem fixed",
			       dir, dir, IG_TILES_SUBDIR, te.msg);
	}

	if (l->writer) {
		rc = ledger_writer_start(l, err);
		if (rc != IG_OK)
			goto fail;
	}
	if (sealed)
		ig_log(IG_LOG_WARN, "ledger %s is sealed (%s, no %s): it is open for reading; appends wait until the "
		       "key is unsealed",
		       dir, IG_CUSTODY_SEALED_FILE, IG_LEDGER_KEY);
	*out = l;
	return IG_OK;
fail:
	ledger_free(l);
	return rc < 0 ? rc : IG_ERR_IO;
}

void ig_ledger_close(ig_ledger *l)
{
	if (!l)
		return;
	if (l->pg)
		ledger_pg_stop(l);
	else
		ledger_writer_stop(l);
	ledger_free(l);
}

/* ---- facts ------------------------------------------------------------------ */

const char *ig_ledger_cluster(const ig_ledger *l) { return l->cluster; }
const uint8_t *ig_ledger_ch_pk(const ig_ledger *l) { return l->ch_pk; }
const uint8_t *ig_ledger_ch_sk(const ig_ledger *l)
{
	return l->writer && !ig_ledger_sealed(l) ? l->ch_sk : NULL;
}

bool ig_ledger_sealed(const ig_ledger *l)
{
	return atomic_load(&((ig_ledger *)l)->sealed);
}

int ig_ledger_unseal(ig_ledger *l, const uint8_t sk[IG_SK_BYTES], ig_error *err)
{
	if (!l || !sk)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_unseal: missing argument");
	if (!ig_ledger_sealed(l))
		return ig_error_set(err, IG_ERR_STATE, "ledger %s is not sealed: it already has its key", l->dir);
	/* The key is rebuilt from the seed, so a key whose two halves disagree
	 * (a seed of another key with this cluster's public key pasted on) is
	 * refused as well as a key of another cluster. */
	uint8_t pk[IG_PK_BYTES], derived[IG_SK_BYTES];
	int ok = crypto_sign_seed_keypair(pk, derived, sk) == 0 &&
	         sodium_memcmp(derived, sk, IG_SK_BYTES) == 0 &&
	         sodium_memcmp(pk, l->ch_pk, IG_PK_BYTES) == 0;
	sodium_memzero(derived, sizeof derived);
	if (!ok)
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "ledger %s: the unsealed key is not the genesis key (its public key differs from the "
		                    "genesis record's ch_pk); the ledger stays sealed",
		                    l->dir);
	return ledger_writer_unseal(l, sk, err);
}

uint64_t ig_ledger_height(const ig_ledger *l)
{
	return atomic_load(&((ig_ledger *)l)->height);
}

void ig_ledger_head(const ig_ledger *l, uint8_t hash[IG_HASH_BYTES])
{
	ig_ledger *m = (ig_ledger *)l; /* the mutex is not part of the ledger's value */
	pthread_mutex_lock(&m->mu);
	memcpy(hash, m->head, IG_HASH_BYTES);
	pthread_mutex_unlock(&m->mu);
}

unsigned ig_ledger_format(const ig_ledger *l)
{
	return atomic_load(&((ig_ledger *)l)->version);
}

int ig_ledger_checkpoint(ig_ledger *l, char *out, size_t cap, ig_checkpoint *cp)
{
	pthread_mutex_lock(&l->mu);
	int len = (int)l->cp_len;
	if (out) {
		if (cap < l->cp_len + 1) {
			pthread_mutex_unlock(&l->mu);
			return IG_ERR_RANGE;
		}
		memcpy(out, l->cp_text, l->cp_len + 1);
	}
	if (cp)
		*cp = l->cp;
	pthread_mutex_unlock(&l->mu);
	return len;
}

/* ---- auditing ------------------------------------------------------------------- */

void ledger_scan_result(const ledger_scan_out *so, ig_verify_result *res)
{
	memset(res, 0, sizeof *res);
	res->height = so->height;
	memcpy(res->head, so->head, IG_HASH_BYTES);
	ig_merkle_root(&so->acc, res->root);
	res->checkpoint_size = so->cp.size;
	res->torn_bytes = so->torn_bytes;
	memcpy(res->cluster, so->genesis.cluster, sizeof res->cluster);
	res->format = so->version;
	res->format_index = so->format_index;
}

int ig_ledger_verify(const char *dir, ig_record_fn on_record, void *ctx,
                     ig_progress_fn progress, void *progress_ctx,
                     ig_verify_result *res, ig_error *err)
{
	if (!dir)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_verify: missing directory");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");
	int dir_fd = open_dir(dir, err);
	if (dir_fd < 0)
		return dir_fd;
	int log_fd = open_log(dir_fd, dir, O_RDONLY, err);
	if (log_fd < 0) {
		close(dir_fd);
		return log_fd;
	}
	ledger_scan_out *so = malloc(sizeof *so);
	int rc;
	if (!so) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory verifying ledger %s", dir);
	} else {
		ledger_scan_in in = {
			.dir = dir,
			.dir_fd = dir_fd,
			.log_fd = log_fd,
			.on_record = on_record,
			.ctx = ctx,
			.progress = progress,
			.progress_ctx = progress_ctx,
		};
		rc = ledger_scan(&in, so, err);
		if (rc == IG_OK && res)
			ledger_scan_result(so, res);
		free(so);
	}
	close(log_fd);
	close(dir_fd);
	return rc;
}

/* ---- init ------------------------------------------------------------------------- */

/* Makes a newly created directory's own entry durable. */
static int fsync_parent(const char *dir, ig_error *err)
{
	char parent[PATH_MAX];
	size_t len = strnlen(dir, sizeof parent);
	if (len >= sizeof parent)
		return ig_error_set(err, IG_ERR_RANGE, "ledger path %s is too long", dir);
	memcpy(parent, dir, len + 1);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	char *slash = strrchr(parent, '/');
	if (!slash)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open %s: %s", parent, strerror(errno));
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "cannot fsync %s: %s", parent, strerror(e));
	return IG_OK;
}

int ig_ledger_init(const char *dir, const char *cluster, uint8_t ch_pk[IG_PK_BYTES], ig_error *err)
{
	return ig_ledger_init_format(dir, cluster, IG_FORMAT_VERSION, ch_pk, err);
}

int ig_ledger_init_format(const char *dir, const char *cluster, unsigned version, uint8_t ch_pk[IG_PK_BYTES],
                          ig_error *err)
{
	if (!dir || !cluster)
		return ig_error_set(err, IG_ERR_INVAL, "ig_ledger_init: missing argument");
	if (version < IG_FORMAT_V1 || version > IG_FORMAT_VERSION)
		return ig_error_set(err, IG_ERR_INVAL, "ledger format %u does not exist: choose 1 or %d", version,
		                    IG_FORMAT_VERSION);
	if (!ig_id_valid(cluster, strnlen(cluster, IG_CLUSTER_MAX + 1)))
		return ig_error_set(err, IG_ERR_INVAL,
		                    "cluster name '%.80s' is invalid: use 1..64 characters from [A-Za-z0-9_.-]", cluster);
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	bool created = false;
	if (mkdir(dir, 0700) == 0)
		created = true;
	else if (errno != EEXIST)
		return ig_error_set(err, IG_ERR_IO, "cannot create ledger directory %s: %s", dir, strerror(errno));
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot open ledger directory %s: %s", dir, strerror(errno));

	int lock_fd = -1, log_fd = -1, rc;
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	if (faccessat(dir_fd, IG_LEDGER_LOG, F_OK, 0) == 0) {
		rc = ig_error_set(err, IG_ERR_EXISTS, "%s already holds a ledger (%s exists); choose an empty directory",
		                  dir, IG_LEDGER_LOG);
		goto out;
	}
	rc = take_lock(dir_fd, dir, err);
	if (rc < 0)
		goto out;
	lock_fd = rc;

	char path[PATH_MAX];
	rc = key_path(path, sizeof path, dir, err);
	if (rc != IG_OK)
		goto out;
	rc = ig_keyfile_generate(pk, sk);
	if (rc != IG_OK) {
		rc = ig_error_set(err, rc, "cannot generate the cluster-head key");
		goto out;
	}
	rc = ig_keyfile_write(path, sk, false, err);
	if (rc != IG_OK) {
		if (rc == IG_ERR_EXISTS)
			ig_error_set(err, rc, "%s exists but %s/%s does not (an earlier init failed?); remove the key file or "
			             "choose an empty directory",
			             path, dir, IG_LEDGER_LOG);
		goto out;
	}

	log_fd = openat(dir_fd, IG_LEDGER_LOG, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, LEDGER_FILE_MODE);
	if (log_fd < 0) {
		rc = ig_error_set(err, errno == EEXIST ? IG_ERR_EXISTS : IG_ERR_IO, "cannot create %s/%s: %s", dir,
		                  IG_LEDGER_LOG, strerror(errno));
		goto out;
	}
	ig_genesis g;
	memset(&g, 0, sizeof g);
	memcpy(g.cluster, cluster, strlen(cluster) + 1);
	memcpy(g.ch_pk, pk, IG_PK_BYTES);
	g.version = (uint16_t)version;
	uint8_t body[256], frame[256 + IG_REC_OVERHEAD];
	int blen = ig_record_genesis_encode(body, sizeof body, &g);
	if (blen < 0) {
		rc = ig_error_set(err, blen, "cannot encode the genesis record");
		goto out;
	}
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.index = 0;
	rec.ts_ms = ig_now_ms();
	rec.type = IG_REC_GENESIS;
	rec.body = body;
	rec.body_len = (uint32_t)blen;
	int flen = ig_record_encode(frame, sizeof frame, &rec);
	if (flen < 0) {
		rc = ig_error_set(err, flen, "cannot encode the genesis record");
		goto out;
	}
	if (ledger_pwrite_all(&ledger_sys_io, IG_LEDGER_LOG, log_fd, frame, (size_t)flen, 0, NULL) != 0 ||
	    fdatasync(log_fd) != 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot write %s/%s: %s", dir, IG_LEDGER_LOG, strerror(errno));
		goto out;
	}

	ig_merkle_acc acc;
	ig_merkle_init_hash(&acc, ledger_tree_hash(version));
	if (acc.hash == IG_MERKLE_SHA256) {
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, (size_t)flen);
		ig_merkle_push(&acc, leaf);
	} else {
		ig_merkle_push(&acc, rec.hash);
	}
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	if (ig_checkpoint_origin(cp.origin, sizeof cp.origin, cluster) < 0) {
		rc = ig_error_set(err, IG_ERR_INVAL, "cluster name '%s' is too long", cluster);
		goto out;
	}
	cp.size = 1;
	ig_merkle_root(&acc, cp.root);
	char text[IG_CHECKPOINT_MAX + 1];
	int tlen = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	if (tlen < 0) {
		rc = ig_error_set(err, tlen, "cannot sign the first checkpoint");
		goto out;
	}
	rc = ledger_write_checkpoint_file(&ledger_sys_io, dir_fd, dir, text, (size_t)tlen, err);
	if (rc != IG_OK)
		goto out;
	if (acc.hash == IG_MERKLE_SHA256) {
		/* The tiles start with the log, so the first open has them. */
		ig_tiles *t;
		rc = ig_tiles_open(&t, dir, 0, err);
		if (rc == IG_OK) {
			uint8_t leaf[IG_HASH_BYTES];
			const uint8_t *entry = frame;
			size_t entry_len = (size_t)flen;
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, (size_t)flen);
			rc = ig_tiles_append(t, (const uint8_t(*)[IG_HASH_BYTES])&leaf, &entry, &entry_len, 1, err);
			if (rc == IG_OK)
				rc = ig_tiles_publish(t, text, (size_t)tlen, err);
			ig_tiles_close(t);
		}
		if (rc != IG_OK)
			goto out;
	}
	if (fsync(dir_fd) != 0) {
		rc = ig_error_set(err, IG_ERR_IO, "cannot fsync directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (created) {
		rc = fsync_parent(dir, err);
		if (rc != IG_OK)
			goto out;
	}
	if (ch_pk)
		memcpy(ch_pk, pk, IG_PK_BYTES);
	rc = IG_OK;
out:
	sodium_memzero(sk, sizeof sk);
	if (log_fd >= 0)
		close(log_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	close(dir_fd);
	return rc;
}
