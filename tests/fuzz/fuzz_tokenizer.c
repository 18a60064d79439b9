/* fuzz_tokenizer.c — libFuzzer harness for the tokenizer.json loader and
 * the encoder (host/text/tokenizer.c: cJSON, vocab and merges, added tokens,
 * NFC, PCRE2 Split, byte-level BPE, decode).
 *
 * README fragment: the first input byte picks the mode.  Even: the rest is
 * a tokenizer.json, loaded with eh_tokenizer_load_json; when it loads, a
 * fixed sentence is encoded and decoded with it.  Odd: the rest is text,
 * encoded with the small Qwen2-structured tokenizer from the seed corpus
 * (tests/fuzz/corpus/tokenizer/qwen2_small.json, read once via
 * $EVALHOST_SRC or the working folder) with add_special from bit 1, and
 * every id must decode.  max_input is 4096 bytes, so one input past it
 * checks limits.max_tokenizer_input.  Seeds: tests/fuzz/corpus/tokenizer/.
 *
 *   build-fuzz/fuzz_tokenizer tests/fuzz/corpus/tokenizer -max_total_time=600 */
#include "evalhost/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static eh_tokenizer *fixed;   /* loaded once per process, freed at exit */

static void free_fixed(void) { eh_tokenizer_free(fixed); }

static eh_tokenizer *fixed_tokenizer(const eh_tokenizer_params *p)
{
    if (fixed) return fixed;
    const char *src = getenv("EVALHOST_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/tokenizer/qwen2_small.json", src ? src : ".");
    eh_error err;
    fixed = eh_tokenizer_load(path, p, &err);
    if (!fixed) {
        fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root or set EVALHOST_SRC)\n", err.msg);
        abort();
    }
    atexit(free_fixed);
    return fixed;
}

static void roundtrip(eh_tokenizer *tok, const char *text, size_t len, int add_special)
{
    eh_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    if (eh_tokenizer_encode(tok, text, len, add_special, &ids, &n, &err) != EH_OK) {
        if (!err.msg[0]) abort();
        return;
    }
    int32_t vs = eh_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vs) abort();
    char *dec = NULL;
    size_t dl = 0;
    if (eh_tokenizer_decode(tok, ids, n, 0, &dec, &dl, &err) != EH_OK) abort();
    if (dec[dl] != '\0') abort();
    free(dec);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    eh_tokenizer_params p = eh_tokenizer_default_params();
    p.max_input = 4096;
    p.cache_words = 64;
    if (opt & 1) {
        roundtrip(fixed_tokenizer(&p), (const char *)data, size, (opt >> 1) & 1);
        return 0;
    }
    eh_error err;
    eh_tokenizer *tok = eh_tokenizer_load_json((const char *)data, size, "fuzz.json", &p, &err);
    if (!tok) {
        if (!err.msg[0]) abort();
        return 0;
    }
    static const char sentence[] = "Replace the sky with <|im_start|> a café 图像 123 don't!";
    roundtrip(tok, sentence, sizeof sentence - 1, 1);
    eh_tokenizer_free(tok);
    return 0;
}
