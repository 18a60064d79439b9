/* score_tree.h — the exact probability of every score in a judge's range,
 * whatever the tokenizer makes of its digits.  Qwen's tokenizers spell 10
 * as "1","0": the model's P("1") at the score position is the mass of 1
 * *and* of 10..19.  The tree holds every score's spelling (the judge's own
 * tokenizer), the forward walks it with the KV cache (one batched step over
 * all its nodes), and
 *
 *   P(s) = P(spelling of s) * P(a token that does not continue a number | spelling),
 *
 * renormalised over the range: P(10) = P("1") P("0" | "1") P(end | "10"),
 * P(1) = P("1") P(end | "1").  A token continues a number when its text
 * starts with an ASCII digit.
 *
 *   eh_score_tree *t = eh_score_tree_build(tok, 0, 10, &err);
 *   // forward: logp[v] = log P(t->token[v] | path to t->parent[v]),
 *   //          log_end[v] = log P(no t->cont token | path to v)
 *   double ev = eh_score_tree_probs(t, logp, log_end, probs);   // probs[t->hi - t->lo + 1]
 */
#ifndef EVALHOST_SCORE_TREE_H
#define EVALHOST_SCORE_TREE_H

#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/node.h"
#include "evalhost/tokenizer.h"

#define EH_SCORE_TREE_MAX_VALUES 101   /* score_range spans at most [0, 100] */

typedef struct eh_score_tree {
    int lo, hi;              /* the score range, inclusive */
    int n_nodes;             /* node 0 is the root: the prompt's last token */
    int32_t *token;          /* token[v], v >= 1: the token from parent[v] to v */
    int32_t *parent;         /* parent[v] < v; parent[0] = -1 */
    int32_t *depth;          /* depth[0] = 0 */
    int32_t *node_of;        /* node_of[s - lo]: the node where s's spelling ends */
    int max_depth;           /* the longest spelling, in tokens */
    int32_t *cont;           /* ids of the tokens that continue a number */
    int n_cont;
} eh_score_tree;

/* Spells lo..hi (0 <= lo < hi <= 100) with tok.  EH_EINVAL for a bad
 * range, EH_EFORMAT when a spelling is empty or a token past the vocab. */
eh_score_tree *eh_score_tree_build(eh_tokenizer *tok, int lo, int hi, eh_error *err);
void eh_score_tree_free(eh_score_tree *t);   /* NULL is a no-op */

/* A judge section's score_range: [lo, hi] (default [0, 10]).  EH_EINVAL
 * names a value that is not two integers with 0 <= lo < hi <= 100. */
eh_status eh_score_range_of(const eh_node *spec, int *lo, int *hi, eh_error *err);

/* One item's walk (n_nodes entries each; index 0 of logp unused) → probs
 * over lo..hi summing to 1; returns the expected score, or -1 (probs
 * zero) when every score has probability 0 or an input is NaN. */
double eh_score_tree_probs(const eh_score_tree *t, const double *logp, const double *log_end, double *probs);

#endif
