/* test_score_parse.c — the judge-reply parser on a table of replies shaped
 * like what VLM judges write (English, Chinese, JSON, markdown, reasoning
 * traces), replies with no score (error quoting the reply, never 0), and the
 * logprob expectation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "evalhost/score_parse.h"

typedef struct reply_case {
    const char *text;
    double want;          /* expected score */
    const char *number;   /* the text the score was read from (its span) */
} reply_case;

static const reply_case good[] = {
    { "Score: 7", 7, "7" },
    { "7/10", 7, "7" },
    { "{\"score\": 7}", 7, "7" },
    { "**8**", 8, "8" },
    { "评分：7分", 7, "7" },
    { "8.5", 8.5, "8.5" },
    { "  9\n", 9, "9" },
    { "10", 10, "10" },
    { "0", 0, "0" },
    { "Score: 0/10. The edit ignored the instruction entirely.", 0, "0" },
    { "The sky was turned red as asked, and the rest of the scene is preserved, though the clouds lost some "
      "detail.\n\nScore: 8",
      8, "8" },
    { "```json\n{\n  \"reasoning\": \"The car is blue now, but its wheels changed shape.\",\n  \"score\": 6\n}\n```", 6,
      "6" },
    { "{\"instruction_following\": 9, \"preservation\": 7, \"score\": \"8\"}", 8, "8" },
    { "**Analysis**: The edited image rotates the picture by 90 degrees, as asked. 3 objects are visible.\n"
      "**Score:** 9/10",
      9, "9" },
    { "Instruction following score: 8\nVisual quality score: 6\nOverall score: 7", 7, "7" },
    { "Score: 7\n\nReasoning: a score of 10 would require the reflection to change too.", 7, "7" },
    { "I would give this edit a score of 6 out of 10, because the snow covers only half the scene.", 6, "6" },
    { "The horizontal flip is correct, but 2 people near the edge were cropped. Rating: 7.5/10", 7.5, "7.5" },
    { "分析：天空已经变成红色，但建筑物的颜色也被改变了。\n评分：6分", 6, "6" },
    { "编辑基本完成了指令要求，画面自然。\n最终得分：8", 8, "8" },
    { "该图像很好地执行了编辑指令（满分10分），我给出8分。", 8, "8" },
    { "评分（0-10）：9", 9, "9" },
    { "Score (0-10): 4", 4, "4" },
    { "The edit is mostly right.\n\n**8**", 8, "8" },
    { "Final score: **5**", 5, "5" },
    { "<think>The user asks for a blue car. The car has 4 wheels; score 2 would be too low... Let me weigh: 7/10 "
      "or 8/10.</think>\nScore: 8",
      8, "8" },
    { "The image was darkened; objects and layout are preserved. Overall, 9 out of 10.", 9, "9" },
    { "Rating: 4/5", 8, "4" },
    { "score: 85/100", 8.5, "85" },
    { "SCORE = 3", 3, "3" },
    { "总分：6.5", 6.5, "6.5" },
    { "The water in the cup is frozen, ice texture is convincing.\nScore: 9.", 9, "9" },
};

static const char *const no_score[] = {
    "The image shows 3 cats sitting on a sofa next to 2 dogs.",
    "I cannot evaluate this image.",
    "",
    "Score: N/A",
    "Score: -1",
    "The steps are 1/5 done.",
    "<think>I think it deserves Score: 7</think>",
};

static void test_good_replies(void)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        eh_score_parsed p;
        eh_error err = { 0 };
        eh_status rc = eh_score_parse(good[i].text, &p, &err);
        if (rc != EH_OK) {
            fprintf(stderr, "case %zu (%s): %s\n", i, good[i].text, err.msg);
            CHECK(0);
            continue;
        }
        if (fabs(p.value - good[i].want) > 1e-9)
            fprintf(stderr, "case %zu (%s): got %g by rule %s, want %g\n", i, good[i].text, p.value, p.rule,
                    good[i].want);
        CHECK(fabs(p.value - good[i].want) < 1e-9);
        CHECK(p.len == strlen(good[i].number) && !memcmp(good[i].text + p.offset, good[i].number, p.len));
    }
}

static void test_no_score(void)
{
    for (size_t i = 0; i < sizeof no_score / sizeof no_score[0]; i++) {
        eh_score_parsed p = { .value = 42 };
        eh_error err = { 0 };
        eh_status rc = eh_score_parse(no_score[i], &p, &err);
        if (rc == EH_OK)
            fprintf(stderr, "no-score case %zu (%s) parsed as %g by %s\n", i, no_score[i], p.value, p.rule);
        CHECK_EQ_INT(rc, EH_EMODEL);
        CHECK_CONTAINS(err.msg, "judge reply has no score in 0..10");
        CHECK(p.value == 42);   /* untouched: no 0 leaks out */
    }
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_score_parse("The image shows 3 cats sitting on a sofa.", NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "\"The image shows 3 cats sitting on a sofa.\"");
    CHECK_EQ_INT(eh_score_parse("Score: 85", NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "(found 85)");
    CHECK_EQ_INT(eh_score_parse(NULL, NULL, &err), EH_EINVAL);
}

/* A judge's score_range: only numbers in it count, fractions scale to its
 * top, and the error names the range. */
static void test_range(void)
{
    eh_score_parsed p;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_score_parse_range("Score: 85", 0, 100, &p, &err), EH_OK);
    CHECK(p.value == 85);
    CHECK_EQ_INT(eh_score_parse_range("Overall 72/100, final score 85/100", 0, 100, &p, &err), EH_OK);
    CHECK(p.value == 85);
    CHECK_EQ_INT(eh_score_parse_range("Rating: 4/5", 1, 5, &p, &err), EH_OK);
    CHECK(p.value == 4);
    CHECK_EQ_INT(eh_score_parse_range("Rating: 4/5", 0, 10, &p, &err), EH_OK);
    CHECK(p.value == 8);
    CHECK_EQ_INT(eh_score_parse_range("4 out of 5", 1, 5, &p, &err), EH_OK);
    CHECK(p.value == 4);
    /* a 7 is no score on a 1..5 scale, nor a 0: the last one in range wins */
    CHECK_EQ_INT(eh_score_parse_range("Score: 3. Later: Score: 7", 1, 5, &p, &err), EH_OK);
    CHECK(p.value == 3);
    CHECK_EQ_INT(eh_score_parse_range("Score: 7", 1, 5, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "judge reply has no score in 1..5 (found 7)");
    CHECK_EQ_INT(eh_score_parse_range("Score: 0", 1, 5, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "no score in 1..5 (found 0)");
    CHECK_EQ_INT(eh_score_parse_range("Score: 101", 0, 100, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "no score in 0..100 (found 101)");
    CHECK_EQ_INT(eh_score_parse_range("Score: 5", 5, 5, NULL, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "range 5..5");
}

/* The error quotes the first 200 characters, whole UTF-8 characters only,
 * newlines flattened, and fits the error buffer even for CJK text. */
static void test_excerpt(void)
{
    char long_text[1200];
    for (int i = 0; i < 300; i++)
        long_text[i] = (char)('a' + i % 26);
    long_text[300] = '\0';
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_score_parse(long_text, NULL, &err), EH_EMODEL);
    char want[210];
    memcpy(want, long_text, 200);
    memcpy(want + 200, "...\"", 5);
    CHECK_CONTAINS(err.msg, want);

    char cjk[1200] = "";
    for (int i = 0; i < 300; i++)
        strcat(cjk, "图");
    CHECK_EQ_INT(eh_score_parse(cjk, NULL, &err), EH_EMODEL);
    CHECK(strlen(err.msg) < sizeof err.msg - 1);   /* not cut by the buffer */
    const char *q = strchr(err.msg, '"');
    CHECK(q != NULL);
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)q + 1; *p && *p != '"'; p++)
        chars += (*p & 0xC0) != 0x80;
    CHECK(chars >= 100 && chars <= 203);   /* whole characters, at most 200 + "..." */

    char buf[64];
    CHECK_EQ_STR(eh_score_excerpt("line one\nline two", 200, buf, sizeof buf), "line one line two");
    CHECK_EQ_STR(eh_score_excerpt("评分很高", 2, buf, sizeof buf), "评分...");
    CHECK_EQ_STR(eh_score_excerpt("abcdef", 3, buf, sizeof buf), "abc...");
}

static void test_tokens(void)
{
    CHECK_EQ_INT(eh_score_token_value("7"), 7);
    CHECK_EQ_INT(eh_score_token_value(" 7"), 7);
    CHECK_EQ_INT(eh_score_token_value("10"), 10);
    CHECK_EQ_INT(eh_score_token_value("0"), 0);
    CHECK_EQ_INT(eh_score_token_value("11"), -1);
    CHECK_EQ_INT(eh_score_token_value("7."), -1);
    CHECK_EQ_INT(eh_score_token_value(""), -1);
    CHECK_EQ_INT(eh_score_token_value("Score"), -1);
    CHECK_EQ_INT(eh_score_token_value("100"), -1);
}

static void test_expected(void)
{
    /* 7 with p=0.6, 8 with p=0.3, "Score" (not a digit) with p=0.1 → renormalised over the digits. */
    const char *tok[] = { "7", "8", "Score" };
    double lp[] = { log(0.6), log(0.3), log(0.1) };
    double probs[11];
    double ev = eh_score_expected(tok, lp, 3, probs);
    CHECK(fabs(ev - (7 * 0.6 + 8 * 0.3) / 0.9) < 1e-12);
    CHECK(fabs(probs[7] - 2.0 / 3.0) < 1e-12 && fabs(probs[8] - 1.0 / 3.0) < 1e-12 && probs[0] == 0);

    /* Very negative log probabilities must not underflow to 0/0. */
    const char *tok2[] = { " 9", "10" };
    double lp2[] = { -1000.0, -1000.0 - log(3.0) };
    ev = eh_score_expected(tok2, lp2, 2, probs);
    CHECK(fabs(ev - (9 * 0.75 + 10 * 0.25)) < 1e-9);

    /* Two spellings of one value add up. */
    const char *tok3[] = { "3", " 3", "4" };
    double lp3[] = { log(0.25), log(0.25), log(0.5) };
    ev = eh_score_expected(tok3, lp3, 3, probs);
    CHECK(fabs(probs[3] - 0.5) < 1e-12 && fabs(ev - 3.5) < 1e-12);

    const char *tok4[] = { "Score", ":" };
    double lp4[] = { -0.1, -2.0 };
    CHECK(eh_score_expected(tok4, lp4, 2, probs) < 0);
}

int main(void)
{
    test_good_replies();
    test_no_score();
    test_excerpt();
    test_range();
    test_tokens();
    test_expected();
    return check_summary("test_score_parse");
}
