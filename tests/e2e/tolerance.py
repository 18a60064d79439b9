"""The parity tests' tolerances from the arithmetic: the rule of
tests/unit/tolerance.h (read its comment for the derivation), the same
constants and functions for the Python tests.

A compared value ends a chain of n roundings of unit roundoff u on terms
whose magnitudes sum to at most M.  Worst case (Higham's gamma_n):
n*u/(1 - n*u) * M.  Probabilistic (Higham & Mary, SIAM J. Sci. Comput.
2019, Theorem 3.1): with independent mean-zero rounding errors,
(exp(LAMBDA*sqrt(n)*u + n*u^2/(1-u)) - 1) * M, with probability at least
1 - 2*exp(-LAMBDA^2*(1-u)^2/2) a chain (LAMBDA = 8: 2.5e-14; times the
rounded values a test's compared values depend on, by the union bound:
~10^6 for the judge fixtures, 2.5e-8).  The tolerance
is the smaller of the two; two computations compared carry 2n roundings."""
import math

U32 = 2.0 ** -24
U16 = 2.0 ** -11
UBF16 = 2.0 ** -8
LAMBDA = 8.0


def gamma(n, u):
    """The smaller of the worst case and the probabilistic bound, M = 1."""
    worst = n * u / (1 - n * u) if n * u < 1 else math.inf
    prob = math.expm1(LAMBDA * math.sqrt(n) * u + n * u * u / (1 - u))
    return min(worst, prob)


def fail_probability(u):
    """The chance one chain breaks the probabilistic bound."""
    return 2 * math.exp(-LAMBDA ** 2 * (1 - u) ** 2 / 2)


def f32_chain(chain_k, magnitude=1.0):
    """float32 against float32, the sums in another order: two chains of K."""
    return gamma(2 * chain_k, U32) * magnitude


def rounded(roundings, u, both_rounded, magnitude=1.0):
    """R roundings to u; both_rounded: the reference rounds at the same
    points (two chains), else it is float32 (one chain)."""
    return gamma(2 * roundings if both_rounded else roundings, u) * magnitude


def worst(roundings, u, magnitude=1.0):
    """The worst case alone, where the model's gain fails."""
    return roundings * u / (1 - roundings * u) * magnitude if roundings * u < 1 else math.inf
