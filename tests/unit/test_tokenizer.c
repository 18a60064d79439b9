/* test_tokenizer.c — the tokenizer against the committed fixture
 * (tests/data/tokenizer/, made by tools/make_tokenizer_fixture.py with the
 * `tokenizers` package; expected ids in expected.txt come from it), and the
 * bad-input paths.
 *
 * `test_tokenizer --dump tokenizer.json lines.bin [add_special]` prints, per
 * NUL-separated text, its ids and the hex of their decoding: the parity test
 * and the bench drive it when the evalhost binary is not there. */
#include "evalhost/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "files.h"

static int dump(int argc, char **argv)
{
    eh_error err;
    eh_tokenizer *tok = eh_tokenizer_load(argv[2], NULL, &err);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    size_t len;
    char *text = slurp(argv[3], &len);
    if (!text) {
        fprintf(stderr, "%s: cannot read\n", argv[3]);
        return 2;
    }
    int add_special = argc > 4 && atoi(argv[4]);
    int timing = argc > 5 && strcmp(argv[5], "--time") == 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t total = 0;
    for (size_t s = 0; s <= len;) {
        size_t e = s;
        while (e < len && text[e])
            e++;
        int32_t *ids;
        size_t n;
        if (eh_tokenizer_encode(tok, text + s, e - s, add_special, &ids, &n, &err) != EH_OK) {
            printf("ERROR %s\n\n", err.msg);
        } else if (timing) {
            total += n;
        } else {
            for (size_t i = 0; i < n; i++)
                printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
            char *dec;
            size_t dl;
            if (eh_tokenizer_decode(tok, ids, n, 0, &dec, &dl, &err) != EH_OK)
                printf("ERROR %s\n", err.msg);
            else {
                for (size_t i = 0; i < dl; i++)
                    printf("%02x", (unsigned char)dec[i]);
                printf("\n");
                free(dec);
            }
        }
        free(ids);
        s = e + 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (timing)
        printf("%zu tokens %.6f s\n", total,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    free(text);
    eh_tokenizer_free(tok);
    return 0;
}

static eh_tokenizer *load_text(const char *json, eh_error *err)
{
    return eh_tokenizer_load_json(json, strlen(json), "t.json", NULL, err);
}

static void test_fixture(void)
{
    eh_error err;
    eh_tokenizer *tok = eh_tokenizer_load("tests/data/tokenizer/tokenizer.json", NULL, &err);
    CHECK(tok != NULL);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    size_t len;
    char *exp = slurp("tests/data/tokenizer/expected.txt", &len);
    CHECK(exp != NULL);
    int lines = 0;
    for (char *line = exp ? strtok(exp, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            CHECK(tab != NULL);
            continue;
        }
        *tab = '\0';
        cJSON *js = cJSON_Parse(line);
        CHECK(cJSON_IsString(js));
        if (!cJSON_IsString(js)) {
            cJSON_Delete(js);
            continue;
        }
        const char *text = js->valuestring;
        int32_t *ids;
        size_t n;
        CHECK_EQ_INT(eh_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err), EH_OK);
        char got[4096] = "";
        size_t k = 0;
        for (size_t i = 0; i < n && k + 16 < sizeof got; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d" : "%d", ids[i]);
        CHECK_EQ_STR(got, tab + 1);
        if (strcmp(text, "Hello world") == 0) {     /* decode gives the text back */
            char *dec;
            CHECK_EQ_INT(eh_tokenizer_decode(tok, ids, n, 0, &dec, NULL, &err), EH_OK);
            CHECK_EQ_STR(dec, text);
            free(dec);
        }
        free(ids);
        cJSON_Delete(js);
        lines++;
    }
    CHECK(lines >= 8);
    free(exp);

    CHECK_EQ_INT(eh_tokenizer_token_to_id(tok, "<|im_start|>", 12), 1);
    CHECK_EQ_INT(eh_tokenizer_token_to_id(tok, "no such token", 13), -1);
    CHECK_EQ_STR(eh_tokenizer_id_to_token(tok, 1), "<|im_start|>");
    CHECK(eh_tokenizer_id_to_token(tok, eh_tokenizer_vocab_size(tok)) == NULL);

    /* special tokens skipped on request */
    int32_t ids2[] = { 1, 46 };
    char *dec;
    CHECK_EQ_INT(eh_tokenizer_decode(tok, ids2, 2, 1, &dec, NULL, &err), EH_OK);
    CHECK_EQ_STR(dec, "H");
    free(dec);

    /* unknown ids are errors, naming the id and its position */
    int32_t bad[] = { 46, 999999 };
    CHECK_EQ_INT(eh_tokenizer_decode(tok, bad, 2, 0, &dec, NULL, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown token id 999999 (at 2)");

    /* invalid UTF-8 is refused with its offset */
    int32_t *ids;
    size_t n;
    CHECK_EQ_INT(eh_tokenizer_encode(tok, "ab\xff", 3, 0, &ids, &n, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "not valid UTF-8 (byte 2)");
    CHECK_EQ_INT(eh_tokenizer_encode(tok, "\xed\xa0\x80", 3, 0, &ids, &n, &err), EH_EINVAL);  /* surrogate */
    CHECK_EQ_INT(eh_tokenizer_encode(tok, "", 0, 0, &ids, &n, &err), EH_OK);
    CHECK_EQ_INT(n, 0);
    free(ids);
    eh_tokenizer_free(tok);
    eh_tokenizer_free(NULL);
}

static void test_limit(void)
{
    eh_error err;
    eh_tokenizer_params p = eh_tokenizer_default_params();
    CHECK_EQ_INT(p.max_input, 1 << 20);
    p.max_input = 16;
    eh_tokenizer *tok = eh_tokenizer_load("tests/data/tokenizer/tokenizer.json", &p, &err);
    CHECK(tok != NULL);
    if (!tok)
        return;
    int32_t *ids;
    size_t n;
    CHECK_EQ_INT(eh_tokenizer_encode(tok, "0123456789abcdef", 16, 0, &ids, &n, &err), EH_OK);   /* at the limit */
    free(ids);
    CHECK_EQ_INT(eh_tokenizer_encode(tok, "0123456789abcdefg", 17, 0, &ids, &n, &err), EH_ELIMIT);  /* one past */
    CHECK_CONTAINS(err.msg, "limits.max_tokenizer_input (16)");
    eh_tokenizer_free(tok);
}

/* A minimal valid tokenizer.json with one component replaced. */
static eh_tokenizer *load_variant(const char *pre, const char *model, eh_error *err)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"added_tokens\": [], \"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": %s,"
             " \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": %s}",
             pre, model);
    return load_text(json, err);
}

#define GOOD_PRE "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}"
#define GOOD_MODEL "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

static void test_bad_files(void)
{
    eh_error err;
    eh_tokenizer *tok = load_variant(GOOD_PRE, GOOD_MODEL, &err);
    CHECK(tok != NULL);
    if (tok) {
        int32_t *ids;
        size_t n;
        CHECK_EQ_INT(eh_tokenizer_encode(tok, "abab", 4, 0, &ids, &n, &err), EH_OK);
        CHECK_EQ_INT(n, 2);     /* GPT-2 regex keeps "abab" one word: ab ab, no merge for (ab, ab) */
        if (n == 2) {
            CHECK_EQ_INT(ids[0], 2);
            CHECK_EQ_INT(ids[1], 2);
        }
        free(ids);
        eh_tokenizer_free(tok);
    }

    CHECK(eh_tokenizer_load("tests/data/tokenizer/missing.json", NULL, &err) == NULL);
    CHECK_EQ_INT(err.code, EH_EIO);
    CHECK_CONTAINS(err.msg, "missing.json");

    size_t len;
    char *full = slurp("tests/data/tokenizer/tokenizer.json", &len);
    CHECK(full != NULL);
    if (full) {     /* truncated file */
        CHECK(eh_tokenizer_load_json(full, len / 2, "half.json", NULL, &err) == NULL);
        CHECK_EQ_INT(err.code, EH_EINVAL);
        CHECK_CONTAINS(err.msg, "half.json: not valid JSON");
        free(full);
    }
    CHECK(load_text("[1, 2]", &err) == NULL);
    CHECK_CONTAINS(err.msg, "not a tokenizer.json");
    CHECK(load_text("", &err) == NULL);
    CHECK_CONTAINS(err.msg, "not valid JSON");

    CHECK(load_variant(GOOD_PRE, "{\"type\": \"WordPiece\", \"vocab\": {}}", &err) == NULL);
    CHECK_EQ_INT(err.code, EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "model WordPiece is not supported");
    CHECK(load_variant("{\"type\": \"Metaspace\", \"replacement\": \"_\"}", GOOD_MODEL, &err) == NULL);
    CHECK_CONTAINS(err.msg, "pre_tokenizer Metaspace is not supported");
    CHECK(load_variant(
              "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<x\"},"
              " \"behavior\": \"Isolated\", \"invert\": false}, " GOOD_PRE "]}",
              GOOD_MODEL, &err) == NULL);
    CHECK_EQ_INT(err.code, EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "regex rejected by PCRE2 at offset");
    CHECK(load_variant("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"x\"}, \"behavior\": \"Contiguous\"}",
                       GOOD_MODEL, &err) == NULL);
    CHECK_CONTAINS(err.msg, "Split behavior Contiguous is not supported");
    CHECK(load_variant("null", GOOD_MODEL, &err) == NULL);
    CHECK_CONTAINS(err.msg, "without ByteLevel is not supported");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}", &err) ==
          NULL);
    CHECK_CONTAINS(err.msg, "merge 0 (a b) uses a token missing from the vocab");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {\"a\": -5}, \"merges\": []}", &err) == NULL);
    CHECK_CONTAINS(err.msg, "vocab entry \"a\" has a bad id");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, \"merges\": []}", &err) == NULL);
    CHECK_CONTAINS(err.msg, "bad id");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}", &err) == NULL);
    CHECK_CONTAINS(err.msg, "id 0 is given to two tokens");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}", &err) == NULL);
    CHECK_CONTAINS(err.msg, "merge 0 is neither");
    CHECK(load_variant(GOOD_PRE, "{\"type\": \"BPE\", \"vocab\": {}, \"merges\": [], \"byte_fallback\": true}", &err) ==
          NULL);
    CHECK_CONTAINS(err.msg, "byte_fallback is not supported");
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--dump") == 0)
        return dump(argc, argv);
    test_fixture();
    test_limit();
    test_bad_files();
    return check_summary("test_tokenizer");
}
