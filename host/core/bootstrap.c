/* bootstrap.c — the bootstrap's resampling loop (see bootstrap.h). */
#include "evalhost/bootstrap.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

eh_status eh_bootstrap_means(const double *const *groups, const size_t *sizes, size_t ngroups, size_t resamples,
                             uint64_t seed, double *means, eh_error *err)
{
    if (ngroups == 0 || resamples == 0)
        return eh_fail(err, EH_EINVAL, "bootstrap: needs at least one group and one resample");
    if (resamples > EH_BOOTSTRAP_MAX_RESAMPLES)
        return eh_fail(err, EH_ELIMIT, "bootstrap: %zu resamples is over the limit of %d", resamples,
                       EH_BOOTSTRAP_MAX_RESAMPLES);
    for (size_t g = 0; g < ngroups; g++)
        if (sizes[g] == 0)
            return eh_fail(err, EH_EINVAL, "bootstrap: group %zu is empty", g + 1);
    uint64_t st = seed, s[4];
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&st);
    for (size_t b = 0; b < resamples; b++) {
        double combined = 0.0;
        for (size_t g = 0; g < ngroups; g++) {
            const double *xs = groups[g];
            size_t n = sizes[g];
            double acc = 0.0;
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rotl(s[1] * 5, 7) * 9;
                uint64_t t = s[1] << 17;
                s[2] ^= s[0];
                s[3] ^= s[1];
                s[1] ^= s[2];
                s[0] ^= s[3];
                s[2] ^= t;
                s[3] = rotl(s[3], 45);
                /* the top 53 bits as a float in [0,1), times n: stats.lua's Rng:index */
                size_t k = (size_t)floor(((double)(r >> 11) * 0x1p-53) * (double)n);
                acc += xs[k];
            }
            double gm = acc / (double)n;
            /* one group: its mean; several: summed in order, then divided (stats.lua's mean_of) */
            combined = ngroups == 1 ? gm : combined + gm;
        }
        means[b] = ngroups == 1 ? combined : combined / (double)ngroups;
    }
    return EH_OK;
}
