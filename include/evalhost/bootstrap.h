/* bootstrap.h — the percentile bootstrap's resampling loop (bootstrap.c),
 * the one hot loop of the report's statistics: 2000 resamples of 100k
 * pairs are 2e8 draws.  lua/evalhost/stats.lua owns the method (seed,
 * percentiles, which groups); this file only draws, with the same
 * generator and the same float operations in the same order as the Lua
 * fallback, so both give the same bits. */
#ifndef EVALHOST_BOOTSTRAP_H
#define EVALHOST_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

/* Most resamples one call draws (report.bootstrap.resamples' bound). */
#define EH_BOOTSTRAP_MAX_RESAMPLES 1000000

/* For each of `resamples` resamples: draw sizes[g] values with replacement
 * from every group g (xoshiro256** seeded by splitmix64(seed), one draw per
 * value, groups in order), take each group's mean, and store in means[b]
 * the group mean (one group) or the mean of the group means.  Every size
 * must be > 0.  means has room for `resamples` doubles (caller owns it). */
eh_status eh_bootstrap_means(const double *const *groups, const size_t *sizes, size_t ngroups, size_t resamples,
                             uint64_t seed, double *means, eh_error *err);

#endif
