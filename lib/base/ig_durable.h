/*
 * ig_durable.h: making a new or renamed file's directory entry durable.
 *
 * Why this exists: fsync of a file does not make its name durable; after a
 * create or a rename the directory holding it must be synced too, or a crash
 * can lose the file that was already acknowledged (a key file, a witness's
 * state). Every writer of such a file needs the same few lines, and most
 * want the whole replace-by-rename sequence around them.
 */
#ifndef IG_DURABLE_H
#define IG_DURABLE_H

#include "ig_common.h"

/* fsyncs the directory that holds path ("." for a bare name). `what` names
 * the file in error messages ("key file", "witness state"). IG_OK, or
 * IG_ERR_RANGE / IG_ERR_IO with err saying what failed. */
int ig_durable_sync_parent(const char *path, const char *what, ig_error *err);

/* Replaces path with data[0..len) so that a crash leaves either the old
 * file or the whole new one: a temporary file next to it (mode 0600, as
 * every file iotguard keeps may hold or guard secrets), fsync, rename, and
 * the directory sync. IG_OK, or IG_ERR_RANGE / IG_ERR_IO saying which step
 * failed; the old file is untouched then. */
int ig_durable_replace(const char *path, const void *data, size_t len, const char *what, ig_error *err);
/* The same with the new file's mode given (whatever the umask), for the few
 * files that hold only public data another user must read: the dashboard's
 * config.json (0644), served by a broker running as another user. */
int ig_durable_replace_mode(const char *path, const void *data, size_t len, unsigned mode, const char *what,
                            ig_error *err);

/* Reads such a small file back whole into buf (at most cap - 1 bytes, then a
 * NUL; *len gets the byte count), not following a symlink at path. IG_OK;
 * IG_ERR_NOTFOUND if it does not exist; IG_ERR_RANGE if it is longer than
 * cap - 1 bytes; IG_ERR_IO otherwise. err names `what` and the path. */
int ig_durable_read(char *buf, size_t cap, size_t *len, const char *path, const char *what, ig_error *err);

#endif
