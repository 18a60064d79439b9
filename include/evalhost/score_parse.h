/* score_parse.h — reading a 0..10 score out of a judge's reply, shared by
 * every judge backend (http, native).
 *
 *   eh_score_parsed p;
 *   if (eh_score_parse(reply, &p, &err) == EH_OK) use(p.value);
 *   // else err.msg: "judge reply has no score in 0..10: \"<first 200 chars>\""
 *
 * A reply without a recognisable score is an error, never a 0. */
#ifndef EVALHOST_SCORE_PARSE_H
#define EVALHOST_SCORE_PARSE_H

#include <stddef.h>

#include "evalhost/error.h"
#include "evalhost/utf8_text.h"   /* eh_score_excerpt, eh_text_sanitize: core, quoted by every judge */

#define EH_SCORE_EXCERPT_CHARS 200   /* characters of the reply quoted in errors */

typedef struct eh_score_parsed {
    double value;           /* in the range parsed for (0..10) */
    size_t offset, len;     /* byte span of the number in the reply (for locating logprob tokens) */
    const char *rule;       /* which form matched: "json", "label", "bare", "fraction", "bold", "fen" */
} eh_score_parsed;

/* Recognised forms, most explicit first; within a form the last occurrence
 * wins (a final verdict follows the reasoning): {"score": 7}, `Score: 7`,
 * `Overall rating: **8**`, `评分：7分`, a bare `8.5`, `7/10`, `7 out of 10`,
 * `**8**`, `7分`.  Text inside <think>...</think> is ignored. */
eh_status eh_score_parse(const char *text, eh_score_parsed *out, eh_error *err);

/* The same for a judge's score_range lo..hi (0 <= lo < hi <= 100): only
 * numbers in it count, and a fraction over 5, 10 or 100 is scaled to hi
 * ("4/5" is 4 on 1..5, 8 on 0..10).  eh_score_parse is lo 0, hi 10. */
eh_status eh_score_parse_range(const char *text, int lo, int hi, eh_score_parsed *out, eh_error *err);

/* The integer 0..10 a token spells ("7", " 7", "10"), or -1. */
int eh_score_token_value(const char *token);

/* Expected score over the candidate tokens at the score position:
 * logprob[i] is the log probability of tokens[i]; those spelling 0..10 are
 * renormalised into probs[11] (summing to 1) and the expectation returned.
 * Returns -1 when no candidate spells 0..10. */
double eh_score_expected(const char *const *tokens, const double *logprob, size_t n, double probs[11]);

#endif
