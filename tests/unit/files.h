/* files.h — the unit tests' whole-file reader and writer, so that a test
 * names the file it reads or writes instead of repeating fopen and fread. */
#ifndef EVALHOST_TEST_FILES_H
#define EVALHOST_TEST_FILES_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file, malloc'd and NUL-terminated, its size in *len; NULL when
 * it cannot be opened or read. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* Writes len bytes to path (replacing it); 0 on success, -1 otherwise. */
static inline int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

#endif
