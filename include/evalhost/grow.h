/* grow.h — the one growth rule of the core's arrays, header-only: room for
 * `need` elements of `elem` bytes, the capacity doubling from `first`.
 *
 *   if (eh_grow((void **)&v, &cap, n + 1, sizeof *v, 16)) return oom();
 *   v[n++] = x; */
#ifndef EVALHOST_GROW_H
#define EVALHOST_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* 0 when *p holds at least need elements (reallocating it and raising *cap
 * as needed); -1 when out of memory or the size overflows, *p untouched. */
static inline int eh_grow(void **p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem)
        return -1;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

#endif
