/* backend_overlap.c — the overlapped-load keys every libtorch backend reads
 * (torch, native judge, native editor):
 *
 *   overlap_load: true          the device copy goes in chunks the first
 *                               forward waits for one by one (torch_shim.h)
 *   overlap_chunk_mb: 64        bytes per chunk, about one layer of the real
 *                               models (a 60 GB judge: ~940 chunks)
 *   overlap_test_delay_us: 0    tests only: sleeps that long per chunk on the
 *                               CPU's copy path, so a forward that did not wait
 *                               would read unfilled memory */
#include "evalhost/backend.h"

#include "evalhost/node.h"

#ifdef EVALHOST_HAVE_TORCH

#define EH_OVERLAP_CHUNK_MB 64.0      /* overlap_chunk_mb's default */
#define EH_OVERLAP_CHUNK_MB_MAX 1e6   /* a chunk of a TB is a blocking copy */
#define EH_OVERLAP_DELAY_US_MAX 1000000

eh_status eh_backend_overlap_options(const eh_model *m, int64_t *chunk_bytes, int *delay_us, eh_error *err)
{
    *chunk_bytes = 0;
    *delay_us = 0;
    const eh_node *c = eh_node_get(m->spec, "overlap_chunk_mb");
    double mb = eh_node_num(m->spec, "overlap_chunk_mb", EH_OVERLAP_CHUNK_MB);
    if ((c && c->type != EH_NODE_INT && c->type != EH_NODE_FLOAT) || !(mb > 0) || mb > EH_OVERLAP_CHUNK_MB_MAX)
        return eh_fail(err, EH_EINVAL, "%s: overlap_chunk_mb must be a number of MB in (0, %g]", m->section,
                       EH_OVERLAP_CHUNK_MB_MAX);
    int64_t d = eh_node_int(m->spec, "overlap_test_delay_us", 0);
    if (d < 0 || d > EH_OVERLAP_DELAY_US_MAX)
        return eh_fail(err, EH_EINVAL, "%s: overlap_test_delay_us must be 0..%d", m->section, EH_OVERLAP_DELAY_US_MAX);
    if (!eh_node_bool(m->spec, "overlap_load", 0))
        return EH_OK;
    *chunk_bytes = (int64_t)(mb * 1e6);
    if (*chunk_bytes < 1)
        *chunk_bytes = 1;
    *delay_us = (int)d;
    return EH_OK;
}

#endif
