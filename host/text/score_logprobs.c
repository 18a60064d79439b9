/* score_logprobs.c — a score's distribution combined along a reply's
 * logprob positions (score_logprobs.h). */
#include "evalhost/score_logprobs.h"

#include <math.h>
#include <string.h>

#define MAX_DIGITS 3   /* scores up to 100 */

typedef struct walk {
    const eh_lp_position *pos;
    size_t n_pos, k;           /* k: the observed spelling's length in positions */
    int lo, hi;
    double w[101];
    int approx, dropped;
} walk;

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* the leading digit run of s: its length (0: none) */
static size_t digit_run(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* "7" + "5" → 75 when the spelling is a score's (no leading zero, <= 3
 * digits); -1 otherwise */
static int value_of(const char *prefix, size_t plen, const char *run, size_t rlen)
{
    if (plen + rlen == 0 || plen + rlen > MAX_DIGITS)
        return -1;
    char d[MAX_DIGITS + 1];
    memcpy(d, prefix, plen);
    memcpy(d + plen, run, rlen);
    d[plen + rlen] = 0;
    if (d[0] == '0' && plen + rlen > 1)
        return -1;
    int v = 0;
    for (size_t i = 0; d[i]; i++)
        v = v * 10 + (d[i] - '0');
    return v;
}

static void add(walk *w, int v, double p)
{
    if (v >= w->lo && v <= w->hi)
        w->w[v - w->lo] += p;
}

/* an in-range score longer than v's spelling starts with it */
static int extended(const walk *w, int v)
{
    return v > 0 && (long)v * 10 <= w->hi;
}

static double prob(walk *w, double lp)
{
    if (!isfinite(lp)) {
        if (lp != -INFINITY)
            w->dropped++;
        return 0;
    }
    return exp(lp);
}

/* The number so far is s (slen digits) with probability p; the next
 * token is at position d; exact: s is the observed path's. */
static void from(walk *w, size_t d, const char *s, size_t slen, double p, int exact)
{
    if (d >= w->n_pos) {   /* the reply ended after the number */
        add(w, value_of(s, slen, "", 0), p);
        return;
    }
    const eh_lp_position *at = &w->pos[d];
    double digit_mass = 0;
    int seen_obs = 0;
    for (size_t i = 0; i <= at->n_top; i++) {
        /* i == n_top: the observed token, when the list left it out */
        const char *tok = i < at->n_top ? at->top[i].token : at->token;
        double lp = i < at->n_top ? at->top[i].logprob : at->logprob;
        if (!tok)
            continue;
        int is_obs = exact && d < w->k && !strcmp(tok, at->token);
        if (i == at->n_top && (seen_obs || !is_obs))
            continue;
        seen_obs |= is_obs;
        size_t r = digit_run(tok);
        if (!r)
            continue;
        double q = prob(w, lp);
        digit_mass += q;
        int v = value_of(s, slen, tok, r);
        if (v < 0 || v > w->hi)
            continue;
        if (tok[r]) {   /* the number ends inside the token ("7." "5/") */
            add(w, v, p * q);
        } else if (is_obs) {
            char ns[MAX_DIGITS + 1];
            memcpy(ns, s, slen);
            memcpy(ns + slen, tok, r);
            from(w, d + 1, ns, slen + r, p * q, 1);
        } else if (extended(w, v)) {
            char ns[MAX_DIGITS + 1];
            memcpy(ns, s, slen);
            memcpy(ns + slen, tok, r);
            w->approx = 1;   /* its continuation borrowed from the observed path */
            from(w, d + 1, ns, slen + r, p * q, 0);
        } else {
            add(w, v, p * q);
        }
    }
    double end = 1 - digit_mass;
    add(w, value_of(s, slen, "", 0), p * (end > 0 ? end : 0));
}

eh_lp_method eh_score_from_positions(const eh_lp_position *pos, size_t n_pos, int lo, int hi, double *probs,
                                     double *expected, int *dropped)
{
    if (!pos || n_pos == 0 || lo < 0 || hi < lo || hi > 100)
        return EH_LP_NONE;
    walk w = { .pos = pos, .n_pos = n_pos, .lo = lo, .hi = hi };
    /* the observed spelling: the first token's digits (after any leading
     * space), then following all-digit tokens */
    const char *first = pos[0].token ? skip_ws(pos[0].token) : "";
    size_t r0 = digit_run(first);
    if (!r0)
        return EH_LP_NONE;
    w.k = 1;
    if (!first[r0])
        while (w.k < n_pos && pos[w.k].token && digit_run(pos[w.k].token) && !pos[w.k].token[digit_run(pos[w.k].token)])
            w.k++;
    /* position 0: its candidates start the number (leading spaces dropped) */
    const eh_lp_position *at = &pos[0];
    int seen_obs = 0;
    for (size_t i = 0; i <= at->n_top; i++) {
        const char *tok = i < at->n_top ? at->top[i].token : at->token;
        double lp = i < at->n_top ? at->top[i].logprob : at->logprob;
        if (!tok)
            continue;
        int is_obs = !strcmp(tok, at->token);
        if (i == at->n_top && (seen_obs || !is_obs))
            continue;
        seen_obs |= is_obs;
        const char *t = skip_ws(tok);
        size_t r = digit_run(t);
        int v = value_of("", 0, t, r);
        if (!r || v < 0 || v > hi)
            continue;
        double q = prob(&w, lp);
        if (t[r]) {
            add(&w, v, q);
        } else if (is_obs) {
            from(&w, 1, t, r, q, 1);
        } else if (extended(&w, v)) {
            w.approx = 1;
            from(&w, 1, t, r, q, 0);
        } else {
            add(&w, v, q);
        }
    }
    if (dropped)
        *dropped += w.dropped;
    int n = hi - lo + 1;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += w.w[i];
    if (!(sum > 0))
        return EH_LP_NONE;
    double ev = 0;
    for (int i = 0; i < n; i++) {
        probs[i] = w.w[i] / sum;
        ev += (lo + i) * probs[i];
    }
    *expected = ev;
    return w.approx ? EH_LP_APPROX : EH_LP_EXACT;
}
