/*
 * durable.c: the directory sync after a create or rename, a whole file
 * replaced by rename, and such a file read back (ig_durable.h says why).
 */
#include "ig_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ig_durable_sync_parent(const char *path, const char *what, ig_error *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return ig_error_set(err, IG_ERR_RANGE, "%s path %s is too long", what, path);
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ig_error_set(err, IG_ERR_IO, "open directory %s to sync the %s: %s", dir, what, strerror(errno));
	int rc = fsync(dfd);
	int saved = errno;
	close(dfd);
	if (rc != 0)
		return ig_error_set(err, IG_ERR_IO, "fsync directory %s: %s", dir, strerror(saved));
	return IG_OK;
}

int ig_durable_replace(const char *path, const void *data, size_t len, const char *what, ig_error *err)
{
	return ig_durable_replace_mode(path, data, len, 0600, what, err);
}

int ig_durable_replace_mode(const char *path, const void *data, size_t len, unsigned mode, const char *what,
                            ig_error *err)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp)
		return ig_error_set(err, IG_ERR_RANGE, "%s path %s is too long", what, path);
	unlink(tmp);  /* a leftover of a crashed run that had this same pid */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot create %s for the %s: %s", tmp, what, strerror(errno));
	const char *failed = NULL;
	char chmod_step[16];   /* "chmod 600": the step as the operator would type it */
	snprintf(chmod_step, sizeof chmod_step, "chmod %o", mode & 07777u);
	if (fchmod(fd, (mode_t)(mode & 07777u)) != 0)   /* whatever the umask */
		failed = chmod_step;
	const uint8_t *p = data;
	for (size_t off = 0; !failed && off < len;) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			failed = "write";
		else
			off += (size_t)w;
	}
	if (!failed && fsync(fd) != 0)
		failed = "fsync";
	int saved = errno;
	if (close(fd) != 0 && !failed) {
		failed = "close";
		saved = errno;
	}
	if (!failed && rename(tmp, path) != 0) {
		failed = "rename";
		saved = errno;
	}
	if (failed) {
		unlink(tmp);
		return ig_error_set(err, IG_ERR_IO, "cannot save the %s %s (%s failed: %s)", what, path, failed,
		                    strerror(saved));
	}
	return ig_durable_sync_parent(path, what, err);
}

int ig_durable_read(char *buf, size_t cap, size_t *len, const char *path, const char *what, ig_error *err)
{
	if (cap == 0)
		return ig_error_set(err, IG_ERR_RANGE, "no room to read the %s %s", what, path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO, "cannot read the %s %s: %s", what,
		                    path, strerror(errno));
	size_t n = 0;
	for (;;) {
		/* One byte more than fits, to tell "exactly full" from "too long". */
		char extra;
		char *to = n < cap - 1 ? buf + n : &extra;
		ssize_t r = read(fd, to, n < cap - 1 ? cap - 1 - n : 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;
			close(fd);
			return ig_error_set(err, IG_ERR_IO, "cannot read the %s %s: %s", what, path, strerror(saved));
		}
		if (r == 0)
			break;
		if (to == &extra) {
			close(fd);
			return ig_error_set(err, IG_ERR_RANGE, "the %s %s is longer than %zu bytes", what, path, cap - 1);
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return IG_OK;
}
