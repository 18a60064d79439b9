/* npy.h — the parity tests' reader for the references tools/make_*_fixture.py
 * write: a little-endian float32 .npy (format 1 or 2), flattened. */
#ifndef EVALHOST_TEST_NPY_H
#define EVALHOST_TEST_NPY_H

#include <stdlib.h>
#include <string.h>

#include "files.h"

/* malloc'd values and their *count; NULL if the file is not such a .npy. */
static inline float *npy_f32(const char *path, size_t *count)
{
    size_t len = 0;
    unsigned char *b = (unsigned char *)slurp(path, &len);
    if (!b || len < 12 || memcmp(b, "\x93NUMPY", 6) != 0 || (b[6] != 1 && b[6] != 2)) {
        free(b);
        return NULL;
    }
    size_t hl = b[6] == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                          : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    size_t start = (b[6] == 1 ? 10 : 12) + hl;
    char header[512] = "";
    if (start <= len && hl < sizeof header)
        memcpy(header, b + start - hl, hl);
    if (start > len || !strstr(header, "'descr': '<f4'") || (len - start) % 4) {
        free(b);
        return NULL;
    }
    *count = (len - start) / 4;
    float *v = malloc(len - start + 4);
    if (v)
        memcpy(v, b + start, len - start);
    free(b);
    return v;
}

#endif
