/* hash.h — content hashes for run keys and image checks: XXH3-128 from
 * libxxhash, printed as 32 lowercase hex digits. */
#ifndef EVALHOST_HASH_H
#define EVALHOST_HASH_H

#include <stddef.h>

#include "evalhost/error.h"

#define EH_HASH_HEX 33   /* 32 hex digits + NUL */

void eh_hash_hex(const void *data, size_t len, char out[EH_HASH_HEX]);
/* Streams the file; EH_EIO with the path named on failure. */
eh_status eh_hash_file(const char *path, char out[EH_HASH_HEX], eh_error *err);
/* As eh_hash_file with eh_fs_open_read's flags (EH_FS_NOFOLLOW). */
eh_status eh_hash_file_ex(const char *path, int flags, char out[EH_HASH_HEX], eh_error *err);

#endif
