/*
 * durable.c: the directory sync after a create or rename (ig_durable.h says
 * why).
 */
#include "ig_durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
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
