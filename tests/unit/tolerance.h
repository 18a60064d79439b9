/* tolerance.h — the parity tests' tolerances from the arithmetic, not from
 * the runs that happened to pass; tests/e2e/tolerance.py is the same rule
 * for the Python tests.
 *
 * A compared value is the end of a chain of n roundings (float32 sums in
 * some order: n = the chain's K, the terms summed one after another along
 * it; low precision: n = R, the stored results rounded to p bits along it),
 * each a relative error |delta| <= u (u = 2^-24 float32, 2^-11 float16,
 * 2^-8 bfloat16), on terms whose magnitudes sum to at most M.
 *
 * Worst case (Higham's gamma_n): |error| <= n*u/(1 - n*u) * M.  It is
 * reached only when every rounding goes the same way at its limit, which
 * round-to-nearest on varied data does not do: over long chains it is so
 * loose that a test under it cannot fail.
 *
 * Probabilistic (Higham & Mary, "A new approach to probabilistic rounding
 * error analysis", SIAM J. Sci. Comput. 41(5), 2019, Theorem 3.1 and its
 * inner products): with the deltas independent and of mean zero,
 * |error| <= gamma~_n(lambda) * M, gamma~_n(lambda) =
 * exp(lambda*sqrt(n)*u + n*u^2/(1-u)) - 1 (~ lambda*sqrt(n)*u), with
 * probability at least 1 - 2*exp(-lambda^2*(1-u)^2/2) for each term's chain
 * (by the union bound, a sum of T terms fails with at most T times that).
 * Round-to-nearest is deterministic: the independence is a model, one
 * Higham & Mary find holds on varied data (not on constant or integer data).
 * TOL_LAMBDA = 8: 2*exp(-32) = 2.5e-14 a chain.  By the union bound a
 * test fails by chance with at most that times the rounded values its
 * compared values depend on: ~10^6 for the judge fixtures (tokens x width
 * x stored results x layers: 2.5e-8), ~10^9 for the whole edit's VAE
 * encoding of a 1248x832 picture (2.5e-5); lambda = 6 (3.0e-8 a chain)
 * would give 3e-2 and ~30 there.  Past n = lambda^2 = 64 roundings the
 * probabilistic bound is the smaller, by sqrt(n)/lambda; both hold, so
 * the tolerance is the smaller one (a chain of a few roundings keeps the
 * worst case).
 *
 * Two computations compared (ours against transformers', a batch against
 * one item): each carries its own n independent roundings, so the
 * difference is one error over 2n of them (the same model) — 2n below.
 *
 * What the model cannot give: M.  The tests take M from the layers (unit
 * RMS activations after norms against weights of std 0.02: terms summing
 * to under 1) or from the reference's largest output; where a model's gain
 * from a rounding to the output is larger than M says (attention made sharp
 * by modulation, the VAE decoder's upsampling), the measured error reaches
 * the probabilistic bound and the test says so and keeps another bound. */
#ifndef EVALHOST_TEST_TOLERANCE_H
#define EVALHOST_TEST_TOLERANCE_H

#include <math.h>

#define U_F32 (1.0 / 16777216.0)   /* 2^-24 */
#define U_F16 (1.0 / 2048.0)       /* 2^-11 */
#define U_BF16 (1.0 / 256.0)       /* 2^-8 */
#define TOL_LAMBDA 8.0

/* The smaller of the worst case and the probabilistic bound on n roundings
 * of unit roundoff u, relative to M = 1. */
static inline double tol_gamma(double n, double u)
{
    double worst = n * u < 1 ? n * u / (1 - n * u) : INFINITY;
    double prob = expm1(TOL_LAMBDA * sqrt(n) * u + n * u * u / (1 - u));
    return prob < worst ? prob : worst;
}

/* The chance one term chain breaks the probabilistic bound (a message). */
static inline double tol_fail_probability(double u)
{
    return 2 * exp(-TOL_LAMBDA * TOL_LAMBDA * (1 - u) * (1 - u) / 2);
}

/* float32 against float32, the same ops with their sums in another order:
 * two chains of chain_k roundings. */
static inline double tol_f32_chain(double chain_k, double magnitude)
{
    return tol_gamma(2 * chain_k, U_F32) * magnitude;
}

/* roundings to u along the chain; both_rounded: the reference rounds at
 * the same points too (two chains), else it is float32 (one chain). */
static inline double tol_rounded(double roundings, double u, int both_rounded, double magnitude)
{
    return tol_gamma(both_rounded ? 2 * roundings : roundings, u) * magnitude;
}

/* The worst case alone, for the chains where the model's gain fails. */
static inline double tol_worst(double roundings, double u, double magnitude)
{
    return roundings * u < 1 ? roundings * u / (1 - roundings * u) * magnitude : INFINITY;
}

#endif
