/* score_parse.c — the judge-reply score parser (PCRE2, UTF-8) and the
 * logprob expectation over "0".."10".  Patterns are compiled per call: a
 * few microseconds against a judge call of seconds, and no shared state. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "evalhost/score_parse.h"

#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number that is not the tail of a longer one or a negative. */
#define NUM "(?<![0-9.\\-])([0-9]{1,3}(?:\\.[0-9]+)?)(?![0-9])"
/* The denominator of "7/10" in the rules below: 10, or the range's top
 * ("(10|5)" for 1..5), filled in when the rule is compiled. */
#define DEN "(@DEN@)"

typedef enum pick { PICK_LAST, PICK_LABEL } pick;

typedef struct rule {
    const char *name;
    const char *pattern;   /* group 1: the number; group 2 (optional): a denominator */
    pick pick;
} rule;

/* Most explicit first; the first rule with an in-range match decides. */
static const rule rules[] = {
    { "json", "\"(?:score|rating|overall_score|final_score|评分|得分)\"\\s*:\\s*\"?\\s*" NUM, PICK_LAST },
    { "label",
      "(?<![a-z_])((?:final|overall|total)[\\s_-]*)?(?:score[sd]?|rating|grade)(?![a-z])"
      "|(最终|总)?(?:评分|得分|分数|打分)"
      "|总分",
      PICK_LABEL },
    { "bare", "\\A\\s*(?:\\*\\*)?\\s*" NUM "\\s*(?:/\\s*" DEN ")?\\s*(?:\\*\\*)?\\s*[.。]?\\s*\\z", PICK_LAST },
    { "fraction", NUM "\\s*(?:/|out\\s+of)\\s*" DEN "(?![0-9]|\\.[0-9])", PICK_LAST },
    { "bold", "\\*\\*\\s*" NUM "\\s*(?:/\\s*" DEN ")?\\s*\\*\\*", PICK_LAST },
    { "fen", "(?<!满分)" NUM "\\s*分(?!制)", PICK_LAST },
};

/* What may sit between a label and its number: an optional "(0-10)", then
 * markdown, colons and a few linking words ("is", "of", "为"). */
static const char label_tail[] =
    "\\G(?:\\s*[(（][^)）\\n]{0,40}[)）])?(?:[\\s*_:：=\\[]|is\\b|was\\b|of\\b|would\\s+be\\b|为|是)*+" NUM
    "(?:\\s*(?:/|out\\s+of)\\s*([0-9]{1,3})(?![0-9]))?";

typedef struct candidate {
    int found;
    double value;
    size_t off, len;
} candidate;

static pcre2_code *compile(const char *pattern)
{
    int ec;
    PCRE2_SIZE eo;
    return pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_CASELESS, &ec, &eo, NULL);
}

/* A rule's pattern with its denominator filled in (DEN). */
static pcre2_code *compile_rule(const char *pattern, int hi)
{
    const char *at = strstr(pattern, "@DEN@");
    if (!at)
        return compile(pattern);
    char den[16], buf[512];
    snprintf(den, sizeof den, hi == 10 ? "10" : "10|%d", hi);
    int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - pattern), pattern, den, at + strlen("@DEN@"));
    return n > 0 && (size_t)n < sizeof buf ? compile(buf) : NULL;
}

/* Value of group 1 scaled by the denominator in group 2 (when present) to
 * the range's top; -1 when the denominator is not one a score uses. */
static double group_value(const char *s, const PCRE2_SIZE *ov, int rc, int num_group, int hi)
{
    char buf[32];
    size_t len = ov[2 * num_group + 1] - ov[2 * num_group];
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s + ov[2 * num_group], len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    int den_group = num_group + 1;
    if (rc > den_group && ov[2 * den_group] != PCRE2_UNSET) {
        double den = strtod(s + ov[2 * den_group], NULL);
        if (den == hi)
            ;   /* "4/5" on a 1..5 scale is 4 */
        else if (den == 5 || den == 10 || den == 100)
            v = v * hi / den;
        else
            return -1;
    }
    return v;
}

/* True when only whitespace or markdown decoration precedes pos on its line. */
static int at_line_start(const char *s, size_t pos)
{
    while (pos > 0) {
        char c = s[pos - 1];
        if (c == '\n')
            return 1;
        if (c != ' ' && c != '\t' && c != '*' && c != '#' && c != '-' && c != '>' && c != '_')
            return 0;
        pos--;
    }
    return 1;
}

/* Label rule: qualified labels (final/overall/total, 最终/总) win, last
 * first; then the last label that starts a line (the verdict line); then the
 * first label anywhere (later mentions tend to be hypotheticals). */
typedef struct range {
    int lo, hi;
} range;

static int in_range(double v, range r)
{
    return v >= r.lo && v <= r.hi;
}

static void scan_label(const char *s, size_t n, pcre2_code *re, pcre2_code *tail, pcre2_match_data *md, range rg,
                       candidate *out, double *out_of_range)
{
    candidate qualified = { 0 }, line = { 0 }, first = { 0 };
    PCRE2_SIZE start = 0;
    while (start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        PCRE2_SIZE lstart = ov[0], lend = ov[1];
        int is_qualified = (rc > 1 && ov[2] != PCRE2_UNSET) || (rc > 2 && ov[4] != PCRE2_UNSET) ||
                           (lend - lstart == strlen("总分") && !memcmp(s + lstart, "总分", lend - lstart));
        int trc = pcre2_match(tail, (PCRE2_SPTR)s, n, lend, 0, md, NULL);
        if (trc > 0) {
            PCRE2_SIZE *tv = pcre2_get_ovector_pointer(md);
            double v = group_value(s, tv, trc, 1, rg.hi);
            candidate c = { 1, v, tv[2], tv[3] - tv[2] };
            if (in_range(v, rg)) {
                if (is_qualified)
                    qualified = c;
                if (at_line_start(s, lstart))
                    line = c;
                if (!first.found)
                    first = c;
            } else if (v >= 0 && *out_of_range < 0) {
                *out_of_range = v;
            }
        }
        start = lend > start ? lend : start + 1;
    }
    *out = qualified.found ? qualified : line.found ? line : first;
}

static void scan_last(const char *s, size_t n, pcre2_code *re, pcre2_match_data *md, range rg, candidate *out,
                      double *out_of_range)
{
    PCRE2_SIZE start = 0;
    while (start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        double v = group_value(s, ov, rc, 1, rg.hi);
        if (in_range(v, rg))
            *out = (candidate){ 1, v, ov[2], ov[3] - ov[2] };
        else if (v >= 0 && *out_of_range < 0)
            *out_of_range = v;
        start = ov[1] > start ? ov[1] : start + 1;
    }
}

/* Blanks <think>...</think> with spaces, keeping byte offsets. */
static void blank_thinking(char *s)
{
    char *close = strstr(s, "</think>");
    char *open = strstr(s, "<think>");
    if (close && (!open || open > close)) {   /* the server dropped the opening tag */
        memset(s, ' ', (size_t)(close - s) + strlen("</think>"));
        open = strstr(close, "<think>");
    }
    while (open) {
        close = strstr(open, "</think>");
        char *end = close ? close + strlen("</think>") : open + strlen(open);
        memset(open, ' ', (size_t)(end - open));
        open = close ? strstr(end, "<think>") : NULL;
    }
}

eh_status eh_score_parse(const char *text, eh_score_parsed *out, eh_error *err)
{
    return eh_score_parse_range(text, 0, 10, out, err);
}

eh_status eh_score_parse_range(const char *text, int lo, int hi, eh_score_parsed *out, eh_error *err)
{
    if (lo < 0 || hi <= lo || hi > 100)
        return eh_fail(err, EH_EINVAL, "score parser: range %d..%d (0 <= lo < hi <= 100)", lo, hi);
    range rg = { lo, hi };
    if (!text)
        return eh_fail(err, EH_EINVAL, "judge reply is empty");
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    pcre2_code *tail = compile(label_tail);
    if (!s || !md || !tail) {
        free(s);
        pcre2_match_data_free(md);
        pcre2_code_free(tail);
        return eh_fail(err, EH_ENOMEM, "score parser: out of memory");
    }
    memcpy(s, text, n + 1);
    blank_thinking(s);
    candidate best = { 0 };
    double out_of_range = -1;
    const char *rule_name = NULL;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0] && !best.found; i++) {
        pcre2_code *re = compile_rule(rules[i].pattern, hi);
        if (!re)
            continue;   /* cannot happen with the fixed patterns; the unit test compiles each */
        if (rules[i].pick == PICK_LABEL)
            scan_label(s, n, re, tail, md, rg, &best, &out_of_range);
        else
            scan_last(s, n, re, md, rg, &best, &out_of_range);
        pcre2_code_free(re);
        rule_name = rules[i].name;
    }
    free(s);
    pcre2_match_data_free(md);
    pcre2_code_free(tail);
    if (!best.found) {
        char ex[420];
        eh_score_excerpt(text, EH_SCORE_EXCERPT_CHARS, ex, sizeof ex);
        if (out_of_range >= 0)
            return eh_fail(err, EH_EMODEL, "judge reply has no score in %d..%d (found %g): \"%s\"", lo, hi,
                           out_of_range, ex);
        return eh_fail(err, EH_EMODEL, "judge reply has no score in %d..%d: \"%s\"", lo, hi, ex);
    }
    if (out) {
        out->value = best.value;
        out->offset = best.off;
        out->len = best.len;
        out->rule = rule_name;
    }
    return EH_OK;
}

int eh_score_token_value(const char *token)
{
    if (!token)
        return -1;
    while (*token == ' ' || *token == '\t' || *token == '\n')
        token++;
    int v = 0, digits = 0;
    for (; *token >= '0' && *token <= '9'; token++, digits++)
        if (digits < 3)     /* more digits are refused below; don't let v overflow */
            v = v * 10 + (*token - '0');
    while (*token == ' ' || *token == '\t' || *token == '\n')
        token++;
    if (*token || digits == 0 || digits > 2 || v > 10)
        return -1;
    return v;
}

double eh_score_expected(const char *const *tokens, const double *logprob, size_t n, double probs[11])
{
    double p[11] = { 0 }, total = 0, best = -INFINITY;
    /* only finite log probabilities count: +inf would make every other one
     * 0 and the expectation NaN (the caller notes what it dropped) */
    for (size_t i = 0; i < n; i++)
        if (eh_score_token_value(tokens[i]) >= 0 && isfinite(logprob[i]) && logprob[i] > best)
            best = logprob[i];
    if (best == -INFINITY)
        return -1;
    /* Subtract the largest log probability first so exp() cannot underflow to 0 for all. */
    for (size_t i = 0; i < n; i++) {
        int v = eh_score_token_value(tokens[i]);
        if (v < 0 || !isfinite(logprob[i]))
            continue;
        double e = exp(logprob[i] - best);
        p[v] += e;
        total += e;
    }
    double ev = 0;
    for (int v = 0; v <= 10; v++) {
        p[v] /= total;
        ev += v * p[v];
        if (probs)
            probs[v] = p[v];
    }
    return ev;
}
