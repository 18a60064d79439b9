/* tolerance.h — the parity tests' tolerances from the arithmetic, not from
 * the runs that happened to pass (the same rules as tests/e2e's
 * reorder_tolerance):
 *
 * float32, the same ops in another order (another library's kernels, other
 *   GEMM shapes, a batch against one item): a sum of K terms taken in
 *   another order moves by at most K*u times the sum of the terms'
 *   magnitudes (Higham's gamma_K, u = 2^-24), and a value at the end of a
 *   chain of such sums by at most the chain's K added up, times u, times the
 *   magnitude M the sums run at (tol_f32_chain).
 * low precision, a value rounded to p significant bits (u = 2^-p) at each
 *   of R stored results along its chain: against a float32 reference each
 *   rounding is at most u relative; against a reference rounded at the same
 *   points but summed in another order the two may land one rounding apart,
 *   2u; with a gain of at most 1 from each result to the output (unit-RMS
 *   activations after norms, small weights) the output moves by at most
 *   R * u (or 2u) * M (tol_rounded). */
#ifndef EVALHOST_TEST_TOLERANCE_H
#define EVALHOST_TEST_TOLERANCE_H

#define U_F32 (1.0 / 16777216.0)   /* 2^-24 */
#define U_F16 (1.0 / 2048.0)       /* 2^-11 */
#define U_BF16 (1.0 / 256.0)       /* 2^-8 */

static inline double tol_f32_chain(double chain_k, double magnitude)
{
    return chain_k * U_F32 * magnitude;
}

/* both_rounded: the reference rounds at the same points too (2u a step). */
static inline double tol_rounded(double roundings, double u, int both_rounded, double magnitude)
{
    return roundings * (both_rounded ? 2 * u : u) * magnitude;
}

#endif
