/* check.h — the unit tests' whole framework: CHECK records a failure and
 * goes on, CHECK_EQ_* print both sides, check_summary() prints the closing
 * line and returns the exit code. */
#ifndef EVALHOST_CHECK_H
#define EVALHOST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_passes;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (cond)                                                                                                      \
            check_passes++;                                                                                            \
        else {                                                                                                         \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                             \
    do {                                                                                                               \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                                                \
        if (check_a_ == check_b_)                                                                                      \
            check_passes++;                                                                                            \
        else {                                                                                                         \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, check_a_, check_b_); \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                                             \
    do {                                                                                                               \
        const char *check_a_ = (a), *check_b_ = (b);                                                                   \
        if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0)                                                   \
            check_passes++;                                                                                            \
        else {                                                                                                         \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b,                  \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                                   \
        }                                                                                                              \
    } while (0)

/* Substring check, for error messages. */
#define CHECK_CONTAINS(hay, needle)                                                                                    \
    do {                                                                                                               \
        const char *check_h_ = (hay), *check_n_ = (needle);                                                            \
        if (check_h_ && strstr(check_h_, check_n_))                                                                    \
            check_passes++;                                                                                            \
        else {                                                                                                         \
            check_failures++;                                                                                          \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,                             \
                    check_h_ ? check_h_ : "(null)", check_n_);                                                         \
        }                                                                                                              \
    } while (0)

static inline int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passes, check_failures);
    return check_failures ? 1 : 0;
}

/* What a test that cannot do its main part returns: ctest's SKIP_RETURN_CODE
 * (77, as automake's) when what did run passed, so the run shows the test
 * skipped with the reason instead of green; 1 when something failed. */
#define CHECK_SKIP_RC 77
static inline int check_skipped(const char *name, const char *why)
{
    printf("%s: SKIPPED: %s (%d passed, %d failed before)\n", name, why, check_passes, check_failures);
    return check_failures ? 1 : CHECK_SKIP_RC;
}

#endif
