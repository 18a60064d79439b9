/* test_score_logprobs.c — a score's distribution from a reply's logprob
 * positions (score_logprobs.h): "10" as "1","0" combined along the path
 * (exact), a single-digit reply whose "1" alternative could start 10
 * (approximate: the next position's conditionals borrowed, as opik's
 * G-Eval parser since comet-ml/opik#8152), a one-token "10", a leading
 * space, 1..5 and 0..100 ranges, the observed token missing from its own
 * top list, non-finite logprobs dropped, nothing usable. */
#include <math.h>
#include <stdio.h>

#include "check.h"
#include "evalhost/score_logprobs.h"

#define NEAR(a, b) CHECK(fabs((a) - (b)) < 1e-9)

static void test_ten_split(void)
{
    /* "1" 0.9 / "9" 0.1; then "0" 0.8 / "<|im_end|>" 0.2 after "1"; then the end for sure */
    eh_lp_cand c0[] = { { "1", log(0.9) }, { "9", log(0.1) } };
    eh_lp_cand c1[] = { { "0", log(0.8) }, { "<|im_end|>", log(0.2) } };
    eh_lp_cand c2[] = { { "<|im_end|>", 0.0 } };
    eh_lp_position pos[] = { { "1", log(0.9), c0, 2 }, { "0", log(0.8), c1, 2 }, { "<|im_end|>", 0, c2, 1 } };
    double probs[11], ev;
    int dropped = 0;
    CHECK(eh_score_from_positions(pos, 3, 0, 10, probs, &ev, &dropped) == EH_LP_EXACT);
    NEAR(probs[10], 0.72);
    NEAR(probs[1], 0.18);
    NEAR(probs[9], 0.1);
    NEAR(ev, 7.2 + 0.18 + 0.9);
    CHECK_EQ_INT(dropped, 0);
    /* range 1..5: "10" is out of it, "1" keeps only its ending mass */
    double p5[5];
    CHECK(eh_score_from_positions(pos, 3, 1, 5, p5, &ev, &dropped) == EH_LP_EXACT);
    NEAR(p5[0], 1.0);   /* only 1 in range: 0.18 renormalised */
    NEAR(ev, 1.0);
    /* 0..100: "10" then the end; "100" would need a third digit */
    double p100[101];
    CHECK(eh_score_from_positions(pos, 3, 0, 100, p100, &ev, &dropped) == EH_LP_APPROX);   /* "9" may start 90..99 */
    NEAR(p100[10], 0.72);
    NEAR(p100[1], 0.18);
}

static void test_single_digit_with_one_alternative(void)
{
    /* observed "7"; "1" beside it could be 1 or 10: P(0 | "7") is borrowed */
    eh_lp_cand c0[] = { { "7", log(0.6) }, { "1", log(0.3) }, { "8", log(0.1) } };
    eh_lp_cand c1[] = { { "<|im_end|>", log(0.95) }, { "0", log(0.05) } };
    eh_lp_position pos[] = { { "7", log(0.6), c0, 3 }, { "<|im_end|>", log(0.95), c1, 2 } };
    double probs[11], ev;
    CHECK(eh_score_from_positions(pos, 2, 0, 10, probs, &ev, NULL) == EH_LP_APPROX);
    /* 7: 0.6 * 0.95 (its "0" continuation makes 70, out of range); 1: 0.3 * 0.95; 10: 0.3 * 0.05; 8: 0.1 */
    double z = 0.6 * 0.95 + 0.3 * 0.95 + 0.3 * 0.05 + 0.1;
    NEAR(probs[7], 0.57 / z);
    NEAR(probs[1], 0.285 / z);
    NEAR(probs[10], 0.015 / z);
    NEAR(probs[8], 0.1 / z);
    /* 1..5 has no two-digit score: nothing borrowed, exact */
    double p5[5];
    CHECK(eh_score_from_positions(pos, 2, 1, 5, p5, &ev, NULL) == EH_LP_EXACT);
    NEAR(p5[0], 1.0);
}

static void test_one_token_and_space(void)
{
    /* an OpenAI-style tokenizer: " 10" and " 9" are one token each */
    eh_lp_cand c0[] = { { " 10", log(0.7) }, { " 9", log(0.2) }, { " great", log(0.1) } };
    eh_lp_cand c1[] = { { "/", log(0.99) }, { "0", log(0.01) } };
    eh_lp_position pos[] = { { " 10", log(0.7), c0, 3 }, { "/", log(0.99), c1, 2 } };
    double probs[11], ev;
    CHECK(eh_score_from_positions(pos, 2, 0, 10, probs, &ev, NULL) == EH_LP_EXACT);
    double z = 0.7 * 0.99 + 0.2;
    NEAR(probs[10], 0.693 / z);
    NEAR(probs[9], 0.2 / z);
    /* the number ending inside a token: "7." */
    eh_lp_cand d0[] = { { "7.", log(0.5) }, { "8", log(0.5) } };
    eh_lp_position q[] = { { "7.", log(0.5), d0, 2 } };
    CHECK(eh_score_from_positions(q, 1, 0, 10, probs, &ev, NULL) == EH_LP_EXACT);
    NEAR(probs[7], 0.5);
    NEAR(probs[8], 0.5);
}

static void test_observed_missing_and_bad(void)
{
    /* the observed "5" is not in its own top list: its logprob is used */
    eh_lp_cand c0[] = { { "6", log(0.3) } };
    eh_lp_position pos[] = { { "5", log(0.2), c0, 1 } };
    double probs[11], ev;
    int dropped = 0;
    CHECK(eh_score_from_positions(pos, 1, 0, 10, probs, &ev, &dropped) == EH_LP_EXACT);
    NEAR(probs[5], 0.4);
    NEAR(probs[6], 0.6);
    /* +inf and NaN logprobs are dropped and counted */
    eh_lp_cand c1[] = { { "6", INFINITY }, { "4", NAN }, { "3", log(0.1) } };
    eh_lp_position p1[] = { { "3", log(0.1), c1, 3 } };
    CHECK(eh_score_from_positions(p1, 1, 0, 10, probs, &ev, &dropped) == EH_LP_EXACT);
    CHECK_EQ_INT(dropped, 2);
    NEAR(probs[3], 1.0);
    /* no digit at the score position: nothing */
    eh_lp_cand c2[] = { { "great", 0 } };
    eh_lp_position p2[] = { { "great", 0, c2, 1 } };
    CHECK(eh_score_from_positions(p2, 1, 0, 10, probs, &ev, NULL) == EH_LP_NONE);
    CHECK(eh_score_from_positions(NULL, 0, 0, 10, probs, &ev, NULL) == EH_LP_NONE);
}

int main(void)
{
    test_ten_split();
    test_single_digit_with_one_alternative();
    test_one_token_and_space();
    test_observed_missing_and_bad();
    return check_summary("score_logprobs");
}
