/* test_group.c — eh_group_gather: groups keep the batch's order, skip done
 * requests, and every request lands in exactly one group. */
#include <stddef.h>

#include "check.h"
#include "evalhost/group.h"

static int same_value(const void *ctx, size_t a, size_t b)
{
    const int *v = ctx;
    return v[a] == v[b];
}

int main(void)
{
    int v[] = { 7, 3, 7, 3, 5, 7 };
    unsigned char done[6] = { 0, 0, 0, 0, 0, 0 };
    done[3] = 1;   /* an earlier failure: joins no group */
    size_t m[6];
    size_t k = eh_group_gather(6, 0, done, m, same_value, v);
    CHECK_EQ_INT(k, 3);
    CHECK_EQ_INT(m[0], 0);
    CHECK_EQ_INT(m[1], 2);
    CHECK_EQ_INT(m[2], 5);
    CHECK(done[0] && done[2] && done[5]);
    k = eh_group_gather(6, 1, done, m, same_value, v);
    CHECK_EQ_INT(k, 1);   /* the other 3 was done already */
    CHECK_EQ_INT(m[0], 1);
    k = eh_group_gather(6, 4, done, m, same_value, v);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(m[0], 4);
    for (int i = 0; i < 6; i++)
        CHECK(done[i]);
    return check_summary("test_group");
}
