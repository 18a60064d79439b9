/* group.h — the one grouping of equal requests in a batch.  A backend that
 * runs a batch as a few forwards (one per shape, per settings) walks the
 * requests in order and gathers each not-yet-done request with every later
 * one its `same` calls equal; the groups keep the batch's order. */
#ifndef EVALHOST_GROUP_H
#define EVALHOST_GROUP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether requests a and b (indices into what ctx describes) share a forward. */
typedef int (*eh_group_same_fn)(const void *ctx, size_t a, size_t b);

/* Gathers the group that starts at `first` (not done): every j >= first not
 * yet done with same(ctx, first, j), in order, into members[], marking each
 * done.  Returns the group's size (>= 1, first included). */
size_t eh_group_gather(size_t n, size_t first, unsigned char *done, size_t *members, eh_group_same_fn same,
                       const void *ctx);

#ifdef __cplusplus
}
#endif

#endif
