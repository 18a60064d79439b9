/* str.h — the two string tests several modules ask (a file's extension, a
 * tensor name's prefix or suffix), header-only. */
#ifndef EVALHOST_STR_H
#define EVALHOST_STR_H

#include <string.h>

static inline int eh_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static inline int eh_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

#endif
