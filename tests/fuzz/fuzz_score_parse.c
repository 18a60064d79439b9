/* fuzz_score_parse.c — libFuzzer harness for the judge-reply score parser
 * (host/text/score_parse.c: PCRE2 patterns for JSON, labels, bold, fractions,
 * 分, <think> blocks) and the excerpt used in its error messages.
 *
 * README fragment: a server reply is untrusted text.  A parsed score must
 * lie in 0..10 and its span inside the reply; a reply without a score is an
 * error that quotes an excerpt, never a 0.  The excerpt must stay inside its
 * buffer and be NUL-terminated.  Seeds: tests/fuzz/corpus/score_parse/.
 *
 *   build-fuzz/fuzz_score_parse tests/fuzz/corpus/score_parse -max_total_time=600 */
#include "evalhost/score_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t tlen = strlen(text);
    eh_score_parsed p;
    eh_error err;
    if (eh_score_parse(text, &p, &err) == EH_OK) {
        if (!(p.value >= 0.0 && p.value <= 10.0)) abort();
        if (p.offset > tlen || p.len > tlen - p.offset) abort();
        if (!p.rule) abort();
    } else if (!strstr(err.msg, "score")) {
        abort();
    }
    char buf[64];
    eh_score_excerpt(text, 20, buf, sizeof buf);
    if (memchr(buf, '\0', sizeof buf) == NULL) abort();
    int v = eh_score_token_value(text);
    if (v < -1 || v > 10) abort();
    free(text);
    return 0;
}
