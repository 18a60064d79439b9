/* score_logprobs.h — a score's distribution from an OpenAI-style reply's
 * logprobs, combined across the positions that spell it.
 *
 * A server gives, at each generated position, the observed token and its
 * top_logprobs, each conditioned on the *observed* tokens before it.  A
 * score spelled by several tokens ("10" = "1","0" for Qwen) is combined
 * along the observed path: P(10) = P("1") P("0" | "1") P(end | "10"),
 * P(1) = P("1") P(end | "1"), where P(end | x) is 1 minus the listed
 * candidates that start with a digit (the unlisted tail counts as an end).
 * A candidate off the observed path whose spelling an in-range score
 * continues (a "1" beside an observed "7") borrows the next position's
 * conditionals from the observed token, P("1") P(b | "7"), as opik's
 * G-Eval parser does since comet-ml/opik#8152: the only combination the
 * data carries, and then the result says "logprobs-approx".  Candidates
 * whose score nothing in range continues count as ending there.  The
 * weights are renormalised over [lo, hi]. */
#ifndef EVALHOST_SCORE_LOGPROBS_H
#define EVALHOST_SCORE_LOGPROBS_H

#include <stddef.h>

typedef struct eh_lp_cand {
    const char *token;
    double logprob;
} eh_lp_cand;

typedef struct eh_lp_position {
    const char *token;          /* the observed token */
    double logprob;             /* its log probability */
    const eh_lp_cand *top;      /* the alternatives (top_logprobs) */
    size_t n_top;
} eh_lp_position;

typedef enum eh_lp_method { EH_LP_NONE = 0, EH_LP_EXACT, EH_LP_APPROX } eh_lp_method;

/* pos[0] is the score's first token, pos[1..] what followed it (the
 * spelling's other tokens, then at least the one after, when the reply has
 * it).  probs gets hi-lo+1 values, *expected the mean.  EH_LP_NONE when no
 * candidate spells a score in range (probs untouched).  *dropped counts
 * non-finite log probabilities ignored. */
eh_lp_method eh_score_from_positions(const eh_lp_position *pos, size_t n_pos, int lo, int hi, double *probs,
                                     double *expected, int *dropped);

#endif
