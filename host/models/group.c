/* group.c — see group.h. */
#include "evalhost/group.h"

size_t eh_group_gather(size_t n, size_t first, unsigned char *done, size_t *members, eh_group_same_fn same,
                       const void *ctx)
{
    size_t k = 0;
    for (size_t j = first; j < n; j++) {
        if (done[j] || (j != first && !same(ctx, first, j)))
            continue;
        done[j] = 1;
        members[k++] = j;
    }
    return k;
}
