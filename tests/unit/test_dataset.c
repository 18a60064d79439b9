/* test_dataset.c — the benchmark index: every shape, escapes, per-pair
 * errors with their exact text, structural failures with file:line:col, the
 * limits at and one past, image references and safe file names. */
#define _DEFAULT_SOURCE 1   /* mkstemps */

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "evalhost/dataset.h"

static char fx_buf[4096];

/* A fixture under tests/data/datasets (ctest runs from the source root). */
static const char *fx(const char *name)
{
    const char *src = getenv("EVALHOST_SRC");
    snprintf(fx_buf, sizeof fx_buf, "%s/tests/data/datasets/%s", src ? src : ".", name);
    return fx_buf;
}

/* Writes text to a fresh temp file with the given suffix; caller unlinks. */
static char *tmp_file(const char *text, size_t len, const char *suffix)
{
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/test_dataset_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        perror("tmp_file");
        exit(2);
    }
    close(fd);
    return path;
}

static eh_dataset *open_text(const char *text, const eh_dataset_params *p, eh_error *err, char **path_out)
{
    char *path = tmp_file(text, strlen(text), ".json");
    eh_dataset *ds = eh_dataset_open(path, p, err);
    if (path_out)
        *path_out = path;
    else {
        unlink(path);
        free(path);
    }
    return ds;
}

static const char *pair_error(const eh_dataset *ds, size_t c, size_t i)
{
    eh_dataset_pair p;
    if (eh_dataset_get(ds, c, i, &p, NULL) != EH_OK)
        return "(no such pair)";
    return p.error;
}

/* The unescaped value of a field by role. */
static char *role_string(const eh_dataset *ds, size_t c, size_t i, eh_field_role role)
{
    eh_dataset_field f;
    if (eh_dataset_field_role(ds, c, i, role, &f, NULL) != EH_OK)
        return NULL;
    return eh_dataset_string(&f, NULL, NULL);
}

static int find_field(const eh_dataset *ds, size_t c, size_t i, const char *key, eh_dataset_field *out)
{
    eh_dataset_pair p;
    eh_dataset_get(ds, c, i, &p, NULL);
    for (size_t k = 0; k < p.nfields; k++) {
        eh_dataset_field_at(ds, c, i, k, out, NULL);
        if (strcmp(out->key, key) == 0)
            return 1;
    }
    return 0;
}

static void test_seed_shape(void)
{
    eh_error err = { 0 };
    eh_dataset *ds = eh_dataset_open(fx("seed.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(eh_dataset_detected_format(ds), EH_DATASET_JSON);
    CHECK_EQ_INT(eh_dataset_ncategories(ds), 3);
    CHECK_EQ_STR(eh_dataset_category(ds, 0), "物理");
    CHECK_EQ_STR(eh_dataset_category(ds, 1), "环境");
    CHECK_EQ_STR(eh_dataset_category(ds, 2), "empty");
    CHECK(eh_dataset_category(ds, 3) == NULL);
    CHECK_EQ_INT(eh_dataset_find_category(ds, "环境"), 1);
    CHECK_EQ_INT(eh_dataset_find_category(ds, "社会"), -1);
    CHECK_EQ_INT(eh_dataset_count(ds, 0), 2);
    CHECK_EQ_INT(eh_dataset_count(ds, 1), 1);
    CHECK_EQ_INT(eh_dataset_count(ds, 2), 0);
    CHECK_EQ_INT(eh_dataset_total(ds), 3);
    CHECK_EQ_INT(eh_dataset_bad(ds), 0);

    eh_dataset_pair p;
    CHECK_EQ_INT(eh_dataset_get(ds, 0, 1, &p, &err), EH_OK);
    CHECK_EQ_STR(p.id, "pair_001");
    CHECK_EQ_STR(p.name, "pair_001");
    CHECK_EQ_STR(p.category, "物理");
    CHECK_EQ_INT(p.index, 1);
    CHECK(p.error == NULL);
    CHECK_EQ_INT(p.nfields, 6);

    /* escapes: \" \n \uXXXX and a surrogate pair (U+1F600) */
    char *ins = role_string(ds, 0, 1, EH_ROLE_INSTRUCTION);
    CHECK_EQ_STR(ins, "把球变成红色 \"quoted\" 中\xF0\x9F\x98\x80\n");
    free(ins);
    char *desc = role_string(ds, 0, 1, EH_ROLE_DESCRIPTION);
    CHECK_EQ_STR(desc, "a ball");
    free(desc);

    /* unknown fields pass through as raw spans with their types */
    eh_dataset_field f;
    CHECK(find_field(ds, 0, 1, "difficulty", &f));
    CHECK_EQ_INT(f.type, EH_JSON_NUMBER);
    CHECK_EQ_INT(f.role, EH_ROLE_OTHER);
    CHECK_EQ_INT(f.raw_len, 1);
    CHECK(f.raw[0] == '3');
    CHECK(find_field(ds, 0, 1, "tags", &f));
    CHECK_EQ_INT(f.type, EH_JSON_ARRAY);
    CHECK(f.raw_len == strlen("[\"a\", {\"b\": null}]") && memcmp(f.raw, "[\"a\", {\"b\": null}]", f.raw_len) == 0);
    CHECK(find_field(ds, 0, 2, "source", &f));
    CHECK_EQ_INT(f.type, EH_JSON_STRING);

    /* images: base64 in place, a data URL kept for the decoder, and an
     * escaped one ("\/") unescaped into a copy */
    eh_dataset_image_ref ref;
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 1, &ref, &err), EH_OK);
    CHECK_EQ_INT(ref.is_path, 0);
    CHECK(ref.len > 20 && memcmp(ref.data, "iVBORw0KGgo", 11) == 0);
    size_t first_len = ref.len;
    eh_dataset_image_ref_release(ds, &ref);
    CHECK(ref.data == NULL);
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 2, &ref, &err), EH_OK);
    CHECK(memcmp(ref.data, "data:image/png;base64,iVBOR", 27) == 0);
    eh_dataset_image_ref_release(ds, &ref);
    CHECK_EQ_INT(eh_dataset_image(ds, 1, 1, &ref, &err), EH_OK);
    CHECK(ref.owned_ != NULL);
    CHECK_EQ_INT(ref.len, first_len);
    CHECK(memchr(ref.data, '\\', ref.len) == NULL);
    eh_dataset_image_ref_release(ds, &ref);

    /* out of range is an error, not a crash */
    CHECK_EQ_INT(eh_dataset_get(ds, 0, 3, &p, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "no pair #3 in category \"物理\" (2 pairs)");
    CHECK_EQ_INT(eh_dataset_get(ds, 0, 0, &p, &err), EH_EINVAL);
    CHECK_EQ_INT(eh_dataset_get(ds, 9, 1, &p, &err), EH_EINVAL);

    /* the hash is XXH3-128 of the bytes, high half first */
    FILE *fp = fopen(fx("seed.json"), "rb");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    XXH128_hash_t h = XXH3_128bits(buf, n);
    char want[33];
    snprintf(want, sizeof want, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    CHECK_EQ_STR(eh_dataset_hash(ds), want);
    CHECK_EQ_STR(eh_dataset_hash(ds), want);   /* cached */
    CHECK_EQ_INT(eh_dataset_size(ds), n);
    eh_dataset_free(ds);
}

static void test_category_lists_and_aliases(void)
{
    eh_error err = { 0 };
    eh_dataset *ds = eh_dataset_open(fx("catlist.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_ncategories(ds), 2);
    CHECK_EQ_INT(eh_dataset_count(ds, 0), 2);
    CHECK_EQ_INT(eh_dataset_bad(ds), 0);
    eh_dataset_field f;
    CHECK_EQ_INT(eh_dataset_field_role(ds, 0, 1, EH_ROLE_IMAGE, &f, &err), EH_OK);
    CHECK_EQ_STR(f.key, "image");
    CHECK_EQ_INT(eh_dataset_field_role(ds, 0, 2, EH_ROLE_IMAGE, &f, &err), EH_OK);
    CHECK_EQ_STR(f.key, "image_b64");
    /* the configured name wins over an alias, whatever the order */
    CHECK_EQ_INT(eh_dataset_field_role(ds, 1, 1, EH_ROLE_IMAGE, &f, &err), EH_OK);
    CHECK_EQ_STR(f.key, "original_image_b64");
    eh_dataset_free(ds);

    /* configured field names: the aliases are then not accepted */
    eh_dataset_params p = eh_dataset_default_params();
    p.field_image = "image";
    p.field_instruction = "prompt";
    ds = open_text("{\"c\": [{\"id\": \"a\", \"image\": \"QUJD\", \"prompt\": \"go\"},"
                   " {\"id\": \"b\", \"image_b64\": \"QUJD\", \"prompt\": \"go\"}]}",
                   &p, &err, NULL);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK(pair_error(ds, 0, 1) == NULL);
    CHECK_EQ_STR(pair_error(ds, 0, 2), "c/b (#2): missing field \"image\" (the config key dataset.image names it)");
    char *ins = role_string(ds, 0, 1, EH_ROLE_INSTRUCTION);
    CHECK_EQ_STR(ins, "go");
    free(ins);
    eh_dataset_free(ds);
}

static void test_flat_and_jsonl(void)
{
    eh_error err = { 0 };
    eh_dataset *ds = eh_dataset_open(fx("flat.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_ncategories(ds), 3);
    CHECK_EQ_STR(eh_dataset_category(ds, 0), "物理");
    CHECK_EQ_STR(eh_dataset_category(ds, 1), "社会");
    CHECK_EQ_STR(eh_dataset_category(ds, 2), "default");
    CHECK_EQ_INT(eh_dataset_count(ds, 0), 2);
    eh_dataset_pair p;
    eh_dataset_get(ds, 0, 2, &p, NULL);
    CHECK_EQ_STR(p.id, "f3");
    CHECK_EQ_INT(p.index, 2);
    eh_dataset_get(ds, 2, 1, &p, NULL);
    CHECK_EQ_STR(p.id, "f4");
    CHECK(p.error == NULL);
    eh_dataset_free(ds);

    ds = eh_dataset_open(fx("pairs.jsonl"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_detected_format(ds), EH_DATASET_JSONL);
    CHECK_EQ_INT(eh_dataset_total(ds), 3);
    CHECK_EQ_INT(eh_dataset_count(ds, 0), 2);
    eh_dataset_free(ds);

    /* JSONL content under a .json name is found by content */
    ds = eh_dataset_open(fx("lines.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_detected_format(ds), EH_DATASET_JSONL);
    CHECK_EQ_INT(eh_dataset_total(ds), 2);
    eh_dataset_free(ds);

    /* a broken JSONL line fails the open at its line and column */
    const char *bad =
        "{\"id\": \"a\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"x\"}\n{\"id\": \"b\",,}\n";
    char *path = tmp_file(bad, strlen(bad), ".jsonl");
    CHECK(eh_dataset_open(path, NULL, &err) == NULL);
    char want[256];
    snprintf(want, sizeof want, "%s:2:12: expected a string key", path);
    CHECK_EQ_STR(err.msg, want);
    unlink(path);
    free(path);
}

static void test_escapes(void)
{
    eh_error err = { 0 };
    eh_dataset *ds =
        open_text("[{\"id\": \"e\", \"original_image_b64\": \"QUJD\","
                  " \"edit_instruction\": \"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0041\\u00e9\\u4e2d\\uD83D\\uDE00\"}]",
                  NULL, &err, NULL);
    CHECK(ds != NULL);
    if (!ds)
        return;
    char *s = role_string(ds, 0, 1, EH_ROLE_INSTRUCTION);
    CHECK_EQ_STR(s, "q\" b\\ s/ \b\f\n\r\t A\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
    free(s);
    eh_dataset_free(ds);

    /* syntax errors in strings are structural: file:line:col: what */
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        { "[{\"id\": \"a\\x\"}]", ":1:11: bad escape '\\x' in string" },
        { "[{\"id\": \"a\\u12G4\"}]", ":1:11: bad \\u escape" },
        { "[{\"id\": \"a\tb\"}]", ":1:11: control character 0x09 in string" },
        { "[{\"id\": 01}]", ":1:10: expected ',' or '}'" },
        { "[{\"id\": -}]", ":1:9: bad number" },
        { "[{\"id\": tru}]", ":1:9: unexpected character 't'" },
        { "[{\"id\": \"a\"} {\"id\": \"b\"}]", ":1:14: expected ',' or ']'" },
        { "{\"c\": []} {\"d\": []}", ":1:11: data after the top-level value (JSONL? name the file .jsonl)" },
        { "{\"c\": 5}\n]", ":2:1: expected a pair object (JSONL: one a line)" },
        { "{\"c\": {\"pairs\": []}}", ":1:7: category \"c\" has no \"data_pairs\" array" },
        { "\"just a string\"", ":1:1: not a benchmark: expected '{' (categories) or '[' (pairs)" },
        { "   \n", ":2:1: empty file (no benchmark)" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char *path;
        eh_error e = { 0 };
        ds = open_text(bad[k].text, NULL, &e, &path);
        CHECK(ds == NULL);
        eh_dataset_free(ds);
        char want[256];
        snprintf(want, sizeof want, "%s%s", path, bad[k].msg);
        if (bad[k].msg[1] == ' ') {   /* offset not pinned: just the message */
            CHECK_CONTAINS(e.msg, bad[k].msg + 2);
        } else {
            CHECK_EQ_STR(e.msg, want);
        }
        CHECK_EQ_INT(e.code, EH_EINVAL);
        unlink(path);
        free(path);
    }
}

static void test_structural_failures(void)
{
    eh_error err = { 0 };
    /* cut inside a base64 string: the error points at the string's quote,
     * which is the file's last quote */
    CHECK(eh_dataset_open(fx("truncated.json"), NULL, &err) == NULL);
    FILE *fp = fopen(fx("truncated.json"), "rb");
    char text[4096];
    size_t size = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[size] = '\0';
    char want[4200];
    /* line:col of the last quote: lines counted, the column in characters */
    const char *q = strrchr(text, '"');
    long line = 1, col = 1;
    for (const char *c = text; c < q; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else if ((*c & 0xC0) != 0x80)
            col++;
    }
    snprintf(want, sizeof want, "%s:%ld:%ld: unterminated string (truncated?)", fx("truncated.json"), line, col);
    CHECK_EQ_STR(err.msg, want);
    CHECK_EQ_INT(err.code, EH_EINVAL);
    /* cut between values */
    char *cut;
    CHECK(open_text("{\"c\": [{\"id\": \"a\"", NULL, &err, &cut) == NULL);
    snprintf(want, sizeof want, "%s:1:18: unexpected end of file (truncated?)", cut);
    CHECK_EQ_STR(err.msg, want);
    unlink(cut);
    free(cut);

    CHECK(eh_dataset_open(fx("notjson.json"), NULL, &err) == NULL);
    snprintf(want, sizeof want, "%s:1:1: not a benchmark: expected '{' (categories) or '[' (pairs)",
             fx("notjson.json"));
    CHECK_EQ_STR(err.msg, want);

    CHECK(eh_dataset_open(fx("no-such-file.json"), NULL, &err) == NULL);
    CHECK_EQ_INT(err.code, EH_EIO);
    CHECK_CONTAINS(err.msg, "no-such-file.json: No such file or directory");

    char *path = tmp_file("", 0, ".json");
    CHECK(eh_dataset_open(path, NULL, &err) == NULL);
    CHECK_CONTAINS(err.msg, ":1:1: empty file (no benchmark)");
    unlink(path);
    free(path);
    eh_dataset_free(NULL);
}

static void test_hostile_pairs(void)
{
    eh_error err = { 0 };
    eh_dataset *ds = eh_dataset_open(fx("hostile.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(eh_dataset_total(ds), 14);
    CHECK_EQ_INT(eh_dataset_bad(ds), 13);
    CHECK(pair_error(ds, 0, 1) == NULL);
    CHECK_EQ_STR(pair_error(ds, 0, 2), "h/pair_001 (#2): duplicate id (first at #1)");
    CHECK_EQ_STR(pair_error(ds, 0, 3), "h/../x (#3): unsafe id (not usable as a file name)");
    CHECK_EQ_STR(pair_error(ds, 0, 4), "h//etc (#4): unsafe id (not usable as a file name)");
    CHECK_EQ_STR(pair_error(ds, 0, 5), "h/nul?id (#5): unsafe id (not usable as a file name)");
    CHECK_EQ_STR(pair_error(ds, 0, 6), "h/no_instruction (#6): missing field \"edit_instruction\" "
                                       "(the config key dataset.instruction names it)");
    CHECK_EQ_STR(pair_error(ds, 0, 7), "h/#7: missing field \"id\" (the config key dataset.id names it)");
    CHECK_EQ_STR(pair_error(ds, 0, 8), "h/no_image (#8): missing field \"original_image_b64\" "
                                       "(the config key dataset.image names it)");
    CHECK_EQ_STR(pair_error(ds, 0, 9), "h/bad_utf8 (#9): \"edit_instruction\" is not valid UTF-8");
    CHECK_EQ_STR(pair_error(ds, 0, 10), "h/lone_surrogate (#10): \"edit_instruction\" is not valid UTF-8");
    CHECK_EQ_STR(pair_error(ds, 0, 11), "h/#11: pair is not a JSON object; missing field \"id\" "
                                        "(the config key dataset.id names it)");
    CHECK_EQ_STR(pair_error(ds, 0, 12), "h/.hidden (#12): unsafe id (not usable as a file name)");
    CHECK_EQ_STR(pair_error(ds, 0, 13), "h/ctl? (#13): unsafe id (not usable as a file name)");
    CHECK_EQ_STR(pair_error(ds, 0, 14), "h/7 (#14): duplicate field \"edit_instruction\"");

    /* names derived from bad ids stay inside the output folder */
    eh_dataset_pair p;
    for (size_t i = 1; i <= 14; i++) {
        eh_dataset_get(ds, 0, i, &p, NULL);
        CHECK(eh_dataset_id_safe(p.name, strlen(p.name)));
    }
    eh_dataset_get(ds, 0, 3, &p, NULL);
    CHECK_EQ_STR(p.id, "../x");
    CHECK(strcmp(p.name, "../x") != 0);
    eh_dataset_get(ds, 0, 5, &p, NULL);
    CHECK(p.id == NULL);               /* an id holding NUL is not kept */
    CHECK_EQ_STR(p.name, "pair_5");
    eh_dataset_get(ds, 0, 14, &p, NULL);
    CHECK_EQ_STR(p.id, "7");          /* numeric ids are their text */

    /* a field with invalid UTF-8 cannot be read as a string */
    eh_dataset_field f;
    eh_dataset_field_role(ds, 0, 9, EH_ROLE_INSTRUCTION, &f, NULL);
    CHECK(f.bad_utf8);
    CHECK(eh_dataset_string(&f, NULL, &err) == NULL);
    CHECK_EQ_STR(err.msg, "field \"edit_instruction\": invalid UTF-8 at byte 4");
    eh_dataset_field_role(ds, 0, 10, EH_ROLE_INSTRUCTION, &f, NULL);
    CHECK(eh_dataset_string(&f, NULL, &err) == NULL);
    CHECK_EQ_STR(err.msg, "field \"edit_instruction\": invalid UTF-8 at byte 0");
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 8, &(eh_dataset_image_ref){ 0 }, &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "missing field \"original_image_b64\"");
    eh_dataset_free(ds);

    /* unsafe category names mark every pair of the category */
    ds = open_text("{\"../evil\": [{\"id\": \"a\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"x\"}],"
                   " \"ok\": [{\"id\": \"a\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"x\"}]}",
                   NULL, &err, NULL);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_STR(pair_error(ds, 0, 1), "../evil/a (#1): unsafe category name");
    CHECK(pair_error(ds, 1, 1) == NULL);   /* same id, other category: not a duplicate */
    eh_dataset_free(ds);
}

/* {"c": [{"id": "a", ..., "deep": [[...]]}]}: depth 3 + levels */
static char *nested(int levels)
{
    size_t n = 200 + 2 * (size_t)levels;
    char *s = malloc(n);
    int o =
        snprintf(s, n,
                 "{\"c\": [{\"id\": \"a\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"x\", \"deep\": ");
    for (int k = 0; k < levels; k++)
        s[o++] = '[';
    for (int k = 0; k < levels; k++)
        s[o++] = ']';
    snprintf(s + o, n - (size_t)o, "}]}");
    return s;
}

static void test_depth_limit(void)
{
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_dataset_default_params().max_json_depth, 64);
    char *at = nested(61), *past = nested(62);
    eh_dataset *ds = open_text(at, NULL, &err, NULL);
    CHECK(ds != NULL);
    if (ds) {
        eh_dataset_field f;
        CHECK(find_field(ds, 0, 1, "deep", &f));
        CHECK_EQ_INT(f.raw_len, 122);
    }
    eh_dataset_free(ds);
    char *path;
    CHECK(open_text(past, NULL, &err, &path) == NULL);
    char want[256];
    snprintf(want, sizeof want, "%s:1:144: nesting deeper than 64 (limits.max_json_depth)", path);
    CHECK_EQ_STR(err.msg, want);
    CHECK_EQ_INT(err.code, EH_ELIMIT);
    unlink(path);
    free(path);
    free(at);
    free(past);

    eh_dataset_params p = eh_dataset_default_params();
    p.max_json_depth = 4;
    at = nested(1);
    past = nested(2);
    ds = open_text(at, &p, &err, NULL);
    CHECK(ds != NULL);
    eh_dataset_free(ds);
    CHECK(open_text(past, &p, &err, NULL) == NULL);
    CHECK_CONTAINS(err.msg, "nesting deeper than 4 (limits.max_json_depth)");
    /* the pair object itself counts */
    p.max_json_depth = 2;
    CHECK(open_text(at, &p, &err, NULL) == NULL);
    CHECK_CONTAINS(err.msg, ":1:8: nesting deeper than 2 (limits.max_json_depth)");
    free(at);
    free(past);
}

static char *many_pairs(int n)
{
    size_t cap = 64 + (size_t)n * 96;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "[");
    for (int i = 1; i <= n; i++)
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"id\": \"p%d\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"x\"}",
                              i > 1 ? "," : "", i);
    snprintf(s + o, cap - o, "]");
    return s;
}

static void test_pair_limit(void)
{
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_dataset_default_params().max_pairs, 1000000);
    eh_dataset_params p = eh_dataset_default_params();
    p.max_pairs = 5;
    char *at = many_pairs(5), *past = many_pairs(6);
    eh_dataset *ds = open_text(at, &p, &err, NULL);
    CHECK(ds != NULL);
    if (ds)
        CHECK_EQ_INT(eh_dataset_total(ds), 5);
    eh_dataset_free(ds);
    CHECK(open_text(past, &p, &err, NULL) == NULL);
    CHECK_CONTAINS(err.msg, "more than 5 pairs (limits.max_pairs)");
    CHECK_EQ_INT(err.code, EH_ELIMIT);
    free(at);
    free(past);
}

static void test_string_limits(void)
{
    eh_error err = { 0 };
    eh_dataset_params p = eh_dataset_default_params();
    CHECK_EQ_INT(p.max_id_len, 256);
    CHECK_EQ_INT(p.max_instruction_len, 65536);
    p.max_id_len = 8;
    p.max_instruction_len = 3;
    eh_dataset *ds =
        open_text("[{\"id\": \"12345678\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"abc\"},"
                  " {\"id\": \"123456789\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"abcd\"},"
                  " {\"id\": \"u1\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"\\u4e2d\"},"
                  " {\"id\": \"u2\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"\\u4e2da\"},"
                  " {\"id\": \"d\", \"original_image_b64\": \"QUJD\", \"edit_instruction\": \"ab\","
                  " \"original_description\": \"long\"}]",
                  &p, &err, NULL);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK(pair_error(ds, 0, 1) == NULL);
    CHECK_EQ_STR(pair_error(ds, 0, 2), "default/123456789 (#2): id is 9 bytes, over limits.max_string.id (8); "
                                       "\"edit_instruction\" is 4 bytes, over limits.max_string.instruction (3)");
    CHECK(pair_error(ds, 0, 3) == NULL);
    CHECK_EQ_STR(pair_error(ds, 0, 4),
                 "default/u2 (#4): \"edit_instruction\" is 4 bytes, over limits.max_string.instruction (3)");
    CHECK_EQ_STR(pair_error(ds, 0, 5),
                 "default/d (#5): \"original_description\" is 4 bytes, over limits.max_string.instruction (3)");
    eh_dataset_free(ds);
}

static void test_image_paths(void)
{
    eh_error err = { 0 };
    eh_dataset *ds = eh_dataset_open(fx("paths.json"), NULL, &err);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_bad(ds), 0);   /* paths are checked when the image is asked for */
    eh_dataset_image_ref ref;
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 1, &ref, &err), EH_OK);
    CHECK_EQ_INT(ref.is_path, 1);
    CHECK_CONTAINS(ref.data, "/tests/data/datasets/img/red.png");
    CHECK(ref.data[0] == '/');
    eh_dataset_image_ref_release(ds, &ref);

    CHECK_EQ_INT(eh_dataset_image(ds, 0, 2, &ref, &err), EH_OK);   /* guessed: not base64, file exists */
    CHECK_EQ_INT(ref.is_path, 1);
    CHECK_CONTAINS(ref.data, "/img/red.png");
    eh_dataset_image_ref_release(ds, &ref);

    CHECK_EQ_INT(eh_dataset_image(ds, 0, 3, &ref, &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "image path \"../datasets/img/red.png\" escapes the dataset folder (refused)");
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 4, &ref, &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "image path \"/etc/passwd\" is absolute (refused: paths are relative to the dataset)");
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 5, &ref, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "image file \"img/nope.png\" (in ");
    CHECK_CONTAINS(err.msg, "No such file or directory");
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 6, &ref, &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "image path \"../../etc/passwd\" escapes the dataset folder (refused)");
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 7, &ref, &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "image path \"img/link.png\" resolves outside the dataset folder (refused)");
    eh_dataset_free(ds);

    /* a short base64 value that begins like an absolute path ("/9j/" is
     * every JPEG) stays base64 */
    ds = open_text("[{\"id\": \"j\", \"original_image_b64\": \"/9j/4AAQSkZJRg==\", \"edit_instruction\": \"x\"}]", NULL,
                   &err, NULL);
    CHECK(ds != NULL);
    if (!ds)
        return;
    CHECK_EQ_INT(eh_dataset_image(ds, 0, 1, &ref, &err), EH_OK);
    CHECK_EQ_INT(ref.is_path, 0);
    CHECK(ref.len == 16 && memcmp(ref.data, "/9j/4AAQSkZJRg==", 16) == 0);
    eh_dataset_image_ref_release(ds, &ref);
    eh_dataset_free(ds);
}

static void test_safe_names(void)
{
    char buf[256], buf2[256];
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_dataset_safe_name("pair_001", 8, buf, sizeof buf, &err), EH_OK);
    CHECK_EQ_STR(buf, "pair_001");
    CHECK_EQ_INT(eh_dataset_safe_name("物理_1", strlen("物理_1"), buf, sizeof buf, &err), EH_OK);
    CHECK_EQ_STR(buf, "物理_1");

    static const char *hostile[] = { "../x", "/etc", "..", ".", "", "a/../../b", "a\\b", ".hidden", "x\ny" };
    for (size_t k = 0; k < sizeof hostile / sizeof *hostile; k++) {
        const char *id = hostile[k];
        CHECK(!eh_dataset_id_safe(id, strlen(id)));
        CHECK_EQ_INT(eh_dataset_safe_name(id, strlen(id), buf, sizeof buf, &err), EH_OK);
        CHECK(eh_dataset_id_safe(buf, strlen(buf)));
    }
    /* distinct ids keep distinct names */
    eh_dataset_safe_name("a/b", 3, buf, sizeof buf, NULL);
    eh_dataset_safe_name("a\\b", 3, buf2, sizeof buf2, NULL);
    CHECK(strcmp(buf, buf2) != 0);
    CHECK(strncmp(buf, "a_b-", 4) == 0);
    /* NUL inside the id */
    CHECK(!eh_dataset_id_safe("a\0b", 3));
    eh_dataset_safe_name("a\0b", 3, buf, sizeof buf, NULL);
    CHECK(eh_dataset_id_safe(buf, strlen(buf)));
    /* long: safe (its file name is a prefix and a hash), and a safe name of it
     * made for a small buffer is cut on a character boundary */
    char longid[400];
    for (int i = 0; i < 133; i++)
        memcpy(longid + 3 * i, "中", 3);
    CHECK(eh_dataset_id_safe(longid, 399));
    CHECK_EQ_INT(eh_dataset_safe_name(longid, 399, buf, 64, &err), EH_OK);
    CHECK(strlen(buf) <= 63);
    CHECK(eh_dataset_id_safe(buf, strlen(buf)));
    CHECK_EQ_INT(eh_dataset_safe_name("x", 1, buf, 16, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "32 needed");
    /* invalid UTF-8 is replaced, never copied */
    CHECK(!eh_dataset_id_safe("a\xff", 2));
    eh_dataset_safe_name("a\xff", 2, buf, sizeof buf, NULL);
    CHECK(eh_dataset_id_safe(buf, strlen(buf)));
}

int main(void)
{
    test_seed_shape();
    test_category_lists_and_aliases();
    test_flat_and_jsonl();
    test_escapes();
    test_structural_failures();
    test_hostile_pairs();
    test_depth_limit();
    test_pair_limit();
    test_string_limits();
    test_image_paths();
    test_safe_names();
    return check_summary("test_dataset");
}
