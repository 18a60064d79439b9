/* score_tree.c — the spellings of a judge's scores as a token tree, and
 * the scores' probabilities from a walk over it (score_tree.h). */
#include "evalhost/score_tree.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eh_score_tree_free(eh_score_tree *t)
{
    if (!t)
        return;
    free(t->token);
    free(t->parent);
    free(t->depth);
    free(t->node_of);
    free(t->cont);
    free(t);
}

/* the child of v reached by tok, or -1 */
static int child(const eh_score_tree *t, int v, int32_t tok)
{
    for (int u = v + 1; u < t->n_nodes; u++)
        if (t->parent[u] == v && t->token[u] == tok)
            return u;
    return -1;
}

/* Tokens whose text starts with a digit: the raw token must hold a digit
 * byte somewhere (byte-level BPE keeps digits as themselves), then its
 * decoded text is checked. */
static eh_status find_cont(eh_score_tree *t, eh_tokenizer *tok, eh_error *err)
{
    int32_t V = eh_tokenizer_vocab_size(tok), cap = 64;
    t->cont = malloc(sizeof *t->cont * (size_t)cap);
    if (!t->cont)
        return eh_fail(err, EH_ENOMEM, "score tree: out of memory");
    for (int32_t id = 0; id < V; id++) {
        const char *s = eh_tokenizer_id_to_token(tok, id);
        if (!s || !strpbrk(s, "0123456789"))
            continue;
        char *text = NULL;
        size_t len = 0;
        eh_error e = { 0 };
        if (eh_tokenizer_decode(tok, &id, 1, 0, &text, &len, &e) != EH_OK)
            continue;
        int digit = len > 0 && text[0] >= '0' && text[0] <= '9';
        free(text);
        if (!digit)
            continue;
        if (t->n_cont == cap) {
            int32_t *g = realloc(t->cont, sizeof *g * (size_t)(cap *= 2));
            if (!g)
                return eh_fail(err, EH_ENOMEM, "score tree: out of memory");
            t->cont = g;
        }
        t->cont[t->n_cont++] = id;
    }
    return EH_OK;
}

eh_score_tree *eh_score_tree_build(eh_tokenizer *tok, int lo, int hi, eh_error *err)
{
    if (lo < 0 || hi <= lo || hi - lo + 1 > EH_SCORE_TREE_MAX_VALUES || hi > 100) {
        eh_fail(err, EH_EINVAL, "score_range [%d, %d]: need 0 <= lo < hi <= 100", lo, hi);
        return NULL;
    }
    eh_score_tree *t = calloc(1, sizeof *t);
    int n = hi - lo + 1, cap = 1 + 3 * n;   /* at most three tokens a spelling below 1000 */
    if (t) {
        t->lo = lo, t->hi = hi;
        t->token = calloc((size_t)cap, sizeof *t->token);
        t->parent = calloc((size_t)cap, sizeof *t->parent);
        t->depth = calloc((size_t)cap, sizeof *t->depth);
        t->node_of = calloc((size_t)n, sizeof *t->node_of);
    }
    if (!t || !t->token || !t->parent || !t->depth || !t->node_of) {
        eh_score_tree_free(t);
        eh_fail(err, EH_ENOMEM, "score tree: out of memory");
        return NULL;
    }
    t->n_nodes = 1;
    t->parent[0] = -1;
    for (int s = lo; s <= hi; s++) {
        char d[16];
        snprintf(d, sizeof d, "%d", s);
        int32_t *ids = NULL;
        size_t k = 0;
        if (eh_tokenizer_encode(tok, d, strlen(d), 0, &ids, &k, err) != EH_OK) {
            eh_score_tree_free(t);
            return NULL;
        }
        if (k == 0 || k > 3) {
            free(ids);
            eh_score_tree_free(t);
            eh_fail(err, EH_EFORMAT, "score tree: the tokenizer spells \"%s\" with %zu tokens", d, k);
            return NULL;
        }
        int v = 0;
        for (size_t j = 0; j < k; j++) {
            int u = child(t, v, ids[j]);
            if (u < 0) {
                u = t->n_nodes++;
                t->token[u] = ids[j];
                t->parent[u] = v;
                t->depth[u] = t->depth[v] + 1;
                if (t->depth[u] > t->max_depth)
                    t->max_depth = t->depth[u];
            }
            v = u;
        }
        free(ids);
        t->node_of[s - lo] = v;
    }
    if (find_cont(t, tok, err) != EH_OK) {
        eh_score_tree_free(t);
        return NULL;
    }
    return t;
}

double eh_score_tree_probs(const eh_score_tree *t, const double *logp, const double *log_end, double *probs)
{
    int n = t->hi - t->lo + 1;
    double lp[EH_SCORE_TREE_MAX_VALUES], mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        int v = t->node_of[i];
        double a = log_end[v];
        for (int u = v; u > 0; u = t->parent[u])
            a += logp[u];
        if (isnan(a)) {
            memset(probs, 0, sizeof *probs * (size_t)n);
            return -1;
        }
        lp[i] = a;
        if (a > mx)
            mx = a;
    }
    if (mx == -INFINITY) {
        memset(probs, 0, sizeof *probs * (size_t)n);
        return -1;
    }
    double sum = 0, ev = 0;
    for (int i = 0; i < n; i++)
        sum += probs[i] = exp(lp[i] - mx);
    for (int i = 0; i < n; i++) {
        probs[i] /= sum;
        ev += (t->lo + i) * probs[i];
    }
    return ev;
}

eh_status eh_score_range_of(const eh_node *spec, int *lo, int *hi, eh_error *err)
{
    *lo = 0, *hi = 10;
    const eh_node *r = eh_node_get(spec, "score_range");
    if (!r)
        return EH_OK;
    int64_t v[2] = { 0, 0 };
    int ok = r->type == EH_NODE_SEQ && r->u.list.count == 2;
    for (int i = 0; ok && i < 2; i++) {
        const eh_node *x = r->u.list.items[i];
        /* a number from Lua or JSON may arrive as a float: integral ones count */
        if (x->type == EH_NODE_INT)
            v[i] = x->u.integer;
        else if (x->type == EH_NODE_FLOAT && x->u.number == floor(x->u.number) && fabs(x->u.number) < 1e9)
            v[i] = (int64_t)x->u.number;
        else
            ok = 0;
    }
    if (!ok)
        return eh_fail(err, EH_EINVAL, "score_range must be two integers [lo, hi], e.g. [0, 10] or [1, 5]");
    int64_t a = v[0], b = v[1];
    if (a < 0 || b <= a || b > 100)
        return eh_fail(err, EH_EINVAL, "score_range [%lld, %lld]: need 0 <= lo < hi <= 100", (long long)a,
                       (long long)b);
    *lo = (int)a, *hi = (int)b;
    return EH_OK;
}
