/* fs.h — the file operations results depend on: mkdir -p, atomic durable
 * writes (temp file in the same folder, fsync, rename, fsync the folder),
 * bounded reads and sorted listings. */
#ifndef EVALHOST_FS_H
#define EVALHOST_FS_H

#include <stddef.h>

#include "evalhost/error.h"

eh_status eh_fs_mkdir_p(const char *path, eh_error *err);
/* mkdir -p of root (may be a symlink: the user named it), then of rel below
 * it, each component opened relative to its parent with O_NOFOLLOW: a
 * symlink below root, a ".." component, or an absolute rel is refused
 * (EH_EIO/EH_EINVAL).  "." components are skipped. */
eh_status eh_fs_mkdir_beneath(const char *root, const char *rel, eh_error *err);
eh_status eh_fs_write_atomic(const char *path, const void *data, size_t len, eh_error *err);
/* How much of a file's name its temporary sibling keeps: the temp name
 * ".<stem>.tmp.<pid>" stays under the 255-byte name limit for any name. */
#define EH_FS_TEMP_STEM 200
/* The temporary name eh_fs_write_atomic writes path through; -1 when it
 * does not fit n bytes. */
int eh_fs_temp_name(const char *path, char *buf, size_t n);
/* eh_fs_open_read / eh_fs_read_ex flags. EH_FS_NOFOLLOW: a symbolic link
 * as the last component is refused (files read back from the run folder).
 * EH_FS_DEPTH(n) with it: the last n components (the file and the n-1
 * folders above it, the ones evalhost made below the run folder) are each
 * opened relative to the one above with O_NOFOLLOW, so a folder swapped for a
 * link is refused too; what lies above them (the run folder the user named)
 * is followed. */
#define EH_FS_NOFOLLOW 1
#define EH_FS_DEPTH_SHIFT 8
#define EH_FS_DEPTH(n) ((int)(n) << EH_FS_DEPTH_SHIFT)
/* Opens path for reading without blocking on a FIFO or device, refused
 * unless a regular file: an fd, or -1 with err. */
int eh_fs_open_read(const char *path, int flags, eh_error *err);
/* Reads a whole file (at most max bytes; 0 = no limit) into a malloc'd
 * NUL-terminated buffer; refused unless a regular file. */
eh_status eh_fs_read(const char *path, size_t max, char **out, size_t *out_len, eh_error *err);
eh_status eh_fs_read_ex(const char *path, size_t max, int flags, char **out, size_t *out_len, eh_error *err);
int eh_fs_exists(const char *path);
int eh_fs_is_dir(const char *path);
eh_status eh_fs_remove(const char *path, eh_error *err);
/* Sorted names (no "." or ".."), NULL-terminated, malloc'd; free with eh_fs_list_free. */
char **eh_fs_list(const char *dir, eh_error *err);
void eh_fs_list_free(char **names);
/* The directory part of path into buf ("." when none). */
void eh_fs_dirname(const char *path, char *buf, size_t n);
/* The current folder's absolute path into buf. */
eh_status eh_fs_cwd(char *buf, size_t n, eh_error *err);

#endif
