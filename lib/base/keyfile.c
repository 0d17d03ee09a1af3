/*
 * keyfile.c: Ed25519 secret keys on disk.
 *
 * Why this exists: a secret key that leaks through a world-readable file, a
 * half-written file after a crash, or a stale copy left in memory defeats
 * every signature the project relies on. All key files go through here so
 * the rules hold in one place: created 0600 whatever the umask, written
 * completely before anyone can see them, refused when others can read them,
 * and wiped from memory as soon as the key is derived.
 */
#include "ig_keyfile.h"
#include "ig_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX_LEN (sizeof IG_KEYFILE_PREFIX - 1)
#define HEX_LEN (2 * IG_SEED_BYTES)
#define LINE_LEN (PREFIX_LEN + HEX_LEN + 1) /* with the trailing newline */

int ig_keyfile_generate(uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	if (crypto_sign_keypair(pk, sk) != 0)
		return IG_ERR_CRYPTO;
	return IG_OK;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Creates path exclusively, never through a symlink, with mode 0600 forced
 * by fchmod so a permissive umask cannot widen it, and fills it. */
static int create_and_fill(const char *path, const char *line, size_t len, ig_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return ig_error_set(err, IG_ERR_EXISTS,
			                    "key file %s already exists; refusing to replace it (remove it first or choose another path)",
			                    path);
		return ig_error_set(err, IG_ERR_IO, "create key file %s: %s", path, strerror(errno));
	}
	const char *what = NULL;
	if (fchmod(fd, 0600) != 0)
		what = "chmod 600";
	else if (write_all(fd, line, len) != 0)
		what = "write";
	else if (fsync(fd) != 0)
		what = "fsync";
	int saved = errno;
	if (close(fd) != 0 && !what) {
		what = "close";
		saved = errno;
	}
	if (what) {
		unlink(path);
		return ig_error_set(err, IG_ERR_IO, "%s key file %s: %s", what, path, strerror(saved));
	}
	return IG_OK;
}

int ig_keyfile_write(const char *path, const uint8_t sk[IG_SK_BYTES], bool overwrite, ig_error *err)
{
	if (!path || !*path || !sk)
		return ig_error_set(err, IG_ERR_INVAL, "key file write: missing path or key");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	/* The file holds only the seed; the libsodium secret key is seed || pk. */
	char line[LINE_LEN + 1];
	memcpy(line, IG_KEYFILE_PREFIX, PREFIX_LEN);
	ig_hex_encode(line + PREFIX_LEN, sk, IG_SEED_BYTES);
	line[LINE_LEN - 1] = '\n';
	line[LINE_LEN] = '\0';

	int rc;
	if (!overwrite) {
		rc = create_and_fill(path, line, LINE_LEN, err);
	} else {
		/* Readers must see either the old key or the new one, never a mix. */
		char tmp[PATH_MAX];
		uint32_t salt = randombytes_random();
		int n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%08x", path, (long)getpid(), salt);
		if (n < 0 || (size_t)n >= sizeof tmp) {
			rc = ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long", path);
		} else {
			rc = create_and_fill(tmp, line, LINE_LEN, err);
			if (rc == IG_OK && rename(tmp, path) != 0) {
				rc = ig_error_set(err, IG_ERR_IO, "rename %s to %s: %s", tmp, path, strerror(errno));
				unlink(tmp);
			}
		}
	}
	sodium_memzero(line, sizeof line);
	if (rc != IG_OK)
		return rc;
	return ig_durable_sync_parent(path, "key file", err);
}

static bool all_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/* The file's bytes, wherever they came from (a file, the fuzzer, a test),
 * go through this one parser, so a buffer and a path are held to the same
 * rules. name only labels the messages. */
int ig_keyfile_parse(uint8_t sk[IG_SK_BYTES], uint8_t pk[IG_PK_BYTES], const void *buf, size_t len, const char *name,
                     ig_error *err)
{
	if (!sk || !pk || (!buf && len))
		return ig_error_set(err, IG_ERR_INVAL, "key file parse: missing input or output buffer");
	if (!name)
		name = "(buffer)";
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");
	const char *text = buf;
	int rc = IG_OK;
	size_t body = len;
	if (body > 0 && text[body - 1] == '\n')
		body--;
	if (body < PREFIX_LEN || memcmp(text, IG_KEYFILE_PREFIX, PREFIX_LEN) != 0)
		rc = ig_error_set(err, IG_ERR_INVAL,
		                  "key file %s does not start with \"%s\"; it is not an iotguard key (create one with iotguard keygen)",
		                  name, IG_KEYFILE_PREFIX);
	else if (body != PREFIX_LEN + HEX_LEN)
		rc = ig_error_set(err, IG_ERR_INVAL,
		                  "key file %s has the wrong length; expected the prefix, 64 lowercase hex characters and a newline",
		                  name);
	else if (!all_lower_hex(text + PREFIX_LEN, HEX_LEN))
		rc = ig_error_set(err, IG_ERR_INVAL, "key file %s: the seed must be 64 lowercase hex characters", name);

	uint8_t seed[IG_SEED_BYTES];
	if (rc == IG_OK && ig_hex_decode(seed, sizeof seed, text + PREFIX_LEN, HEX_LEN) != IG_OK)
		rc = ig_error_set(err, IG_ERR_INVAL, "key file %s: the seed is not valid hex", name);
	if (rc == IG_OK && crypto_sign_seed_keypair(pk, sk, seed) != 0)
		rc = ig_error_set(err, IG_ERR_CRYPTO, "key file %s: deriving the key pair failed", name);
	sodium_memzero(seed, sizeof seed);
	if (rc != IG_OK) {
		sodium_memzero(sk, IG_SK_BYTES);
		sodium_memzero(pk, IG_PK_BYTES);
	}
	return rc;
}

int ig_keyfile_read(const char *path, uint8_t sk[IG_SK_BYTES], uint8_t pk[IG_PK_BYTES], ig_error *err)
{
	if (!path || !*path || !sk || !pk)
		return ig_error_set(err, IG_ERR_INVAL, "key file read: missing path or output buffer");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "libsodium failed to initialise");

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO, "open key file %s: %s", path,
		                    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int saved = errno;
		close(fd);
		return ig_error_set(err, IG_ERR_IO, "stat key file %s: %s", path, strerror(saved));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ig_error_set(err, IG_ERR_INVAL, "key file %s is not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return ig_error_set(err, IG_ERR_INVAL, "key file %s is readable by others (mode %04o); run chmod 600 %s",
		                    path, (unsigned)(st.st_mode & 07777), path);
	}

	/* One byte more than the longest valid file, to notice trailing junk. */
	char buf[LINE_LEN + 2];
	size_t len = 0;
	int rc = IG_OK;
	for (;;) {
		if (len == sizeof buf)
			break;
		ssize_t n = read(fd, buf + len, sizeof buf - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = ig_error_set(err, IG_ERR_IO, "read key file %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);

	if (rc == IG_OK)
		rc = ig_keyfile_parse(sk, pk, buf, len, path, err);
	sodium_memzero(buf, sizeof buf);
	if (rc != IG_OK) {
		sodium_memzero(sk, IG_SK_BYTES);
		sodium_memzero(pk, IG_PK_BYTES);
	}
	return rc;
}
