/* hash.c — XXH3-128 over memory and files. */
#include "evalhost/hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

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
    FILE *f = fopen(path, "rb");
    if (!f)
        return eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
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
