/* test_safetensors.c — the safetensors reader on files the `safetensors`
 * package wrote (tests/data/safetensors/make.py): values, dtypes, shapes,
 * a two-shard index; and hostile files, each refused with the file and,
 * where one is to blame, the tensor named. */
#include "evalhost/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define DIR "tests/data/safetensors/"

static void test_good(void)
{
    eh_error err = { 0 };
    eh_safetensors *st = eh_safetensors_open(DIR "good.safetensors", &err);
    CHECK(st != NULL);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(eh_safetensors_count(st), 3);
    CHECK_EQ_STR(eh_safetensors_at(st, 0)->name, "a");   /* sorted by name */
    const eh_st_tensor *a = eh_safetensors_find(st, "a");
    CHECK(a && a->dtype == EH_ST_F32 && a->ndim == 2 && a->shape[0] == 3 && a->shape[1] == 4 && a->numel == 12);
    if (a) {
        const float *v = a->data;
        CHECK(v[0] == 0.0f && v[5] == 5.0f / 8 && v[11] == 11.0f / 8);
    }
    const eh_st_tensor *b = eh_safetensors_find(st, "b");
    CHECK(b && b->dtype == EH_ST_I64 && b->nbytes == 24);
    if (b) {
        int64_t v[3];
        memcpy(v, b->data, sizeof v);   /* the data section need not be 8-aligned */
        CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3);
    }
    const eh_st_tensor *c = eh_safetensors_find(st, "c");
    CHECK(c && c->dtype == EH_ST_F16 && c->nbytes == 12);
    if (c) {
        uint16_t h0;
        memcpy(&h0, c->data, 2);
        CHECK_EQ_INT(h0, 0xC100);   /* -2.5 in IEEE half */
    }
    CHECK(eh_safetensors_find(st, "zz") == NULL);
    CHECK_EQ_INT(eh_safetensors_total_bytes(st), 48 + 24 + 12);
    CHECK_EQ_STR(eh_st_dtype_name(EH_ST_BF16), "BF16");
    eh_safetensors_close(st);
    eh_safetensors_close(NULL);
}

static void test_sharded(void)
{
    eh_error err = { 0 };
    /* the directory finds its index */
    eh_safetensors *st = eh_safetensors_open(DIR "sharded", &err);
    CHECK(st != NULL);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(eh_safetensors_count(st), 3);
    const eh_st_tensor *w = eh_safetensors_find(st, "layer.1.w");
    CHECK(w && w->dtype == EH_ST_F16 && w->shape[0] == 2 && w->shape[1] == 3);
    if (w)
        CHECK_CONTAINS(w->file, "model-00002-of-00002.safetensors");
    const eh_st_tensor *b = eh_safetensors_find(st, "layer.0.b");
    CHECK(b && strstr(b->file, "00001"));
    eh_safetensors_close(st);
}

/* A diffusers component folder names its weights diffusion_pytorch_model.* */
static void test_diffusers_folder(void)
{
    eh_error err = { 0 };
    eh_safetensors *st = eh_safetensors_open("tests/data/qwenimage/vae", &err);
    CHECK(st != NULL);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(eh_safetensors_count(st) > 0);
    CHECK_CONTAINS(eh_safetensors_at(st, 0)->file, "diffusion_pytorch_model.safetensors");
    eh_safetensors_close(st);
}

static void expect_refused(const char *path, eh_status code, const char *needle, const char *needle2)
{
    eh_error err = { 0 };
    eh_safetensors *st = eh_safetensors_open(path, &err);
    CHECK(st == NULL);
    eh_safetensors_close(st);
    CHECK_EQ_INT(err.code, code);
    CHECK_CONTAINS(err.msg, needle);
    if (needle2)
        CHECK_CONTAINS(err.msg, needle2);
}

static void test_hostile(void)
{
    expect_refused(DIR "nope.safetensors", EH_EIO, "nope.safetensors", "No such file");
    expect_refused(DIR "tiny.safetensors", EH_EFORMAT, "tiny.safetensors: truncated", NULL);
    expect_refused(DIR "truncated.safetensors", EH_EFORMAT, "truncated.safetensors: tensor 'c'", "truncated file?");
    expect_refused(DIR "hugelen.safetensors", EH_EFORMAT, "hugelen.safetensors: header length", "limit");
    expect_refused(DIR "pastend.safetensors", EH_EFORMAT, "pastend.safetensors: header length", "past the end");
    expect_refused(DIR "notjson.safetensors", EH_EFORMAT, "notjson.safetensors", "not valid JSON");
    expect_refused(DIR "notobject.safetensors", EH_EFORMAT, "notobject.safetensors", "not a JSON object");
    expect_refused(DIR "baddtype.safetensors", EH_EFORMAT, "tensor 'a'", "dtype F13");
    expect_refused(DIR "badshape.safetensors", EH_EFORMAT, "tensor 'a'", "needs 60 bytes but data_offsets give 48");
    expect_refused(DIR "negshape.safetensors", EH_EFORMAT, "tensor 'a'", "negative");
    expect_refused(DIR "overlap.safetensors", EH_EFORMAT, "overlaps", NULL);
    expect_refused(DIR "badoffsets.safetensors", EH_EFORMAT, "tensor 'b': bad data_offsets", NULL);
    expect_refused(DIR "sharded/escape.index.json", EH_EFORMAT, "tensor 'layer.1.w'", "bad shard name");
    expect_refused(DIR "sharded/missing.index.json", EH_EFORMAT, "tensor 'layer.9.w' is not in its shard", NULL);
    expect_refused(DIR "sharded/unlisted.index.json", EH_EFORMAT, "the shards hold 3 tensors but the index maps 2",
                   NULL);
    expect_refused(DIR "sharded/wrongshard.index.json", EH_EFORMAT, "tensor 'layer.0.b' is in", "not in");
    expect_refused(DIR, EH_EIO, "no model.safetensors", NULL);
}

/* Mutations of the good file (bytes of the length, the header and the data
 * flipped, set to digits or quotes, the file cut): each either opens with
 * every tensor inside the file, or is refused naming the file. Run under
 * ASan in test-asan, so a read past the mapping shows. */
static void test_mutations(void)
{
    FILE *f = fopen(DIR "good.safetensors", "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    unsigned char good[4096];
    size_t len = fread(good, 1, sizeof good, f);
    fclose(f);
    char path[64];
    snprintf(path, sizeof path, "/tmp/eh_st_mut_%d.safetensors", (int)getpid());
    uint32_t rng = 12345;
    int opened = 0, refused = 0, bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        unsigned char buf[4096];
        memcpy(buf, good, len);
        size_t n = len;
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            rng = rng * 1103515245u + 12345u;
            size_t at = (rng >> 8) % (iter % 3 ? 8 + 200 : len);   /* mostly the length and the header */
            static const char repl[] = "0123456789\"{}[],:-eE.9";
            buf[at] =
                (rng >> 4) & 1 ? (unsigned char)repl[(rng >> 12) % (sizeof repl - 1)] : buf[at] ^ (1u << (rng % 8));
        }
        if (iter % 10 == 0)
            n = (rng >> 3) % len;
        FILE *w = fopen(path, "wb");
        if (!w)
            break;
        fwrite(buf, 1, n, w);
        fclose(w);
        eh_error err = { 0 };
        eh_safetensors *st = eh_safetensors_open(path, &err);
        if (st) {
            opened++;
            for (size_t i = 0; i < eh_safetensors_count(st); i++) {
                const eh_st_tensor *t = eh_safetensors_at(st, i);
                volatile unsigned char sum = 0;   /* touch every byte: ASan checks the bounds */
                for (uint64_t k = 0; k < t->nbytes; k++)
                    sum ^= ((const unsigned char *)t->data)[k];
                (void)sum;
                if ((const unsigned char *)t->data + t->nbytes > (const unsigned char *)t->data + n)
                    bad++;
            }
            eh_safetensors_close(st);
        } else {
            refused++;
            if (!strstr(err.msg, path))
                bad++;
        }
    }
    unlink(path);
    printf("mutations: %d opened, %d refused\n", opened, refused);
    CHECK(refused > 1000);
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    test_good();
    test_sharded();
    test_diffusers_folder();
    test_hostile();
    test_mutations();
    return check_summary("test_safetensors");
}
