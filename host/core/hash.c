/* hash.c — XXH3-128 over memory and files. */
#include "evalhost/hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "evalhost/fs.h"

static void to_hex(XXH128_hash_t h, char out[EH_HASH_HEX])
{
    snprintf(out, EH_HASH_HEX, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

void eh_hash_hex(const void *data, size_t len, char out[EH_HASH_HEX])
{
    to_hex(XXH3_128bits(data, len), out);
}

eh_status eh_hash_file(const char *path, char out[EH_HASH_HEX], eh_error *err)
{
    return eh_hash_file_ex(path, 0, out, err);
}

eh_status eh_hash_file_ex(const char *path, int flags, char out[EH_HASH_HEX], eh_error *err)
{
    /* a regular file only: a FIFO or /dev/zero would never end */
    int fd = eh_fs_open_read(path, flags, err);
    if (fd < 0)
        return err ? err->code : EH_EIO;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
    }
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        fclose(f);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
    }
    XXH3_128bits_reset(st);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        XXH3_128bits_update(st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (!bad)
        to_hex(XXH3_128bits_digest(st), out);
    XXH3_freeState(st);
    return bad ? eh_fail(err, EH_EIO, "%s: read error", path) : EH_OK;
}
