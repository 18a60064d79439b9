/* tokenizer_bench.c — the C side of tools/bench/tokenizer: encodes every
 * NUL-separated text of a buffer (one call, so Python's ctypes overhead is
 * not in the figure) and returns the token count, or -1 on error. */
#include <stdio.h>
#include <stdlib.h>

#include "evalhost/tokenizer.h"

eh_tokenizer *bench_load(const char *path)
{
    eh_error err;
    eh_tokenizer *t = eh_tokenizer_load(path, NULL, &err);
    if (!t) fprintf(stderr, "%s\n", err.msg);
    return t;
}

long long bench_encode_all(eh_tokenizer *tok, const char *buf, size_t len)
{
    long long total = 0;
    for (size_t s = 0; s <= len; ) {
        size_t e = s;
        while (e < len && buf[e]) e++;
        int32_t *ids;
        size_t n;
        eh_error err;
        if (eh_tokenizer_encode(tok, buf + s, e - s, 0, &ids, &n, &err) != EH_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return -1;
        }
        total += (long long)n;
        free(ids);
        s = e + 1;
    }
    return total;
}

void bench_free(eh_tokenizer *tok) { eh_tokenizer_free(tok); }
