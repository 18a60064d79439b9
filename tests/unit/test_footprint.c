/* test_footprint.c — footprints from safetensors headers (sharded, at the
 * load dtype, a real-shape stand-in's full size), sizes and run.* keys,
 * and the simulated device of run.device_memory: its accounting, a load
 * past it failing as a CUDA out-of-memory does, and the exchanges of a
 * two-stage order on it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model_yaml.h"
#include "evalhost/config.h"
#include "evalhost/footprint.h"
#include "evalhost/host.h"
#include "evalhost/model.h"
#include "evalhost/safetensors.h"

static char dir[256];

static void write_file(const char *name, const void *data, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* One safetensors file: the header JSON given, then `data` zero bytes. */
static void write_st(const char *name, const char *header, size_t data)
{
    size_t hl = strlen(header), n = 8 + hl + data;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xFF);
    memcpy(b + 8, header, hl);
    write_file(name, b, n);
    free(b);
}

static void write_text(const char *name, const char *text)
{
    write_file(name, text, strlen(text));
}

/* Two shards: a [4, 8] F32 and a [16] F32 in one, an [8] I64 and a [2, 3]
 * BF16 in the other: 128 + 64 + 64 + 12 bytes as stored. */
static void sharded(const char *metadata)
{
    write_st("model-00001-of-00002.safetensors",
             "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[0,128]},"
             "\"b.bias\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[128,192]}}",
             192);
    write_st("model-00002-of-00002.safetensors",
             "{\"c.index\":{\"dtype\":\"I64\",\"shape\":[8],\"data_offsets\":[0,64]},"
             "\"d.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[64,76]}}",
             76);
    char idx[1024];
    snprintf(idx, sizeof idx,
             "{\"metadata\":{\"total_size\":268%s},\"weight_map\":{\"a.weight\":\"model-00001-of-00002.safetensors\","
             "\"b.bias\":\"model-00001-of-00002.safetensors\",\"c.index\":\"model-00002-of-00002.safetensors\","
             "\"d.weight\":\"model-00002-of-00002.safetensors\"}}",
             metadata);
    write_text("model.safetensors.index.json", idx);
}

static void test_headers(void)
{
    eh_error err = { 0 };
    eh_footprint f;
    sharded("");
    CHECK(eh_footprint_safetensors(dir, "float32", &f, &err) == EH_OK);
    CHECK_EQ_INT(f.stored_bytes, 128 + 64 + 64 + 12);
    CHECK_EQ_INT(f.bytes, (32 + 16 + 6) * 4 + 64);   /* BF16 widened, I64 kept */
    CHECK_EQ_INT(f.float_numel, 54);
    CHECK_EQ_INT(f.full_bytes, 0);
    CHECK(eh_footprint_safetensors(dir, "bfloat16", &f, &err) == EH_OK);
    CHECK_EQ_INT(f.bytes, 54 * 2 + 64);               /* float32 as bfloat16: half */
    CHECK(eh_footprint_safetensors(dir, "bf16", &f, &err) == EH_OK);
    CHECK_EQ_INT(f.bytes, 54 * 2 + 64);
    CHECK_EQ_INT(eh_footprint_at(&f, 4), 54 * 4 + 64);
    /* the index itself, as a path */
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(eh_footprint_safetensors(p, "float16", &f, &err) == EH_OK);
    CHECK_EQ_INT(f.bytes, 54 * 2 + 64);
    CHECK(eh_footprint_safetensors(dir, "int8", &f, &err) == EH_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown dtype 'int8'");

    /* a real-shape stand-in: the full model's element count wins */
    sharded(",\"evalhost_full_float_numel\":31070754032,\"evalhost_stand_in\":\"2 of 48 decoder layers\"");
    CHECK(eh_footprint_safetensors(dir, "bfloat16", &f, &err) == EH_OK);
    CHECK_EQ_INT(f.full_bytes, 62141508064LL);
    CHECK_EQ_INT(f.bytes, 54 * 2 + 64);
    CHECK_EQ_STR(f.stand_in, "2 of 48 decoder layers");
    CHECK_EQ_INT(eh_footprint_at(&f, 4), 4 * 31070754032LL);
    sharded(",\"evalhost_full_float_numel\":\"lots\"");
    CHECK(eh_footprint_safetensors(dir, "bfloat16", &f, &err) == EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "evalhost_full_float_numel must be a positive element count");

    /* a shard the index names that is not there: the reader's error */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    CHECK(eh_footprint_safetensors(dir, "bfloat16", &f, &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "model-00002-of-00002.safetensors");
}

/* A tensor's mapping pages dropped after its copy read back the same. */
static void test_release(void)
{
    enum { N = 4096 };   /* 16 KiB: whole pages inside the tensor */
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4096],\"data_offsets\":[0,16384]}}";
    size_t hl = strlen(hdr);
    unsigned char *b = calloc(1, 8 + hl + 4 * N);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xFF);
    memcpy(b + 8, hdr, hl);
    for (int i = 0; i < N; i++) {
        float v = (float)i * 0.5f;
        memcpy(b + 8 + hl + 4 * (size_t)i, &v, 4);
    }
    write_file("release.safetensors", b, 8 + hl + 4 * N);
    free(b);
    char p[512];
    snprintf(p, sizeof p, "%s/release.safetensors", dir);
    eh_error err = { 0 };
    eh_safetensors *st = eh_safetensors_open(p, &err);
    CHECK(st != NULL);
    if (!st)
        return;
    const eh_st_tensor *t = eh_safetensors_find(st, "w");
    /* memcpy: the header's length leaves the data unaligned for a float load */
    float before, after, mid;
    memcpy(&before, (const unsigned char *)t->data + 4 * (size_t)(N - 1), 4);
    eh_st_tensor_release(t);
    eh_st_tensor_release(NULL);   /* a no-op */
    memcpy(&after, (const unsigned char *)t->data + 4 * (size_t)(N - 1), 4);
    memcpy(&mid, (const unsigned char *)t->data + 4 * (size_t)(N / 2), 4);
    CHECK(before == (float)(N - 1) * 0.5f && after == before && mid == (float)(N / 2) * 0.5f);
    eh_safetensors_close(st);
}

static void test_sizes_and_keys(void)
{
    int64_t b = 0;
    CHECK(eh_parse_bytes("80GB", &b) == 0 && b == 80000000000LL);
    CHECK(eh_parse_bytes("141 GB", &b) == 0 && b == 141000000000LL);
    CHECK(eh_parse_bytes("40GiB", &b) == 0 && b == 40LL << 30);
    CHECK(eh_parse_bytes("1.5gb", &b) == 0 && b == 1500000000LL);
    CHECK(eh_parse_bytes("4096", &b) == 0 && b == 4096);
    CHECK(eh_parse_bytes("80 GX", &b) != 0);
    CHECK(eh_parse_bytes("-1GB", &b) != 0);
    CHECK(eh_parse_bytes("GB", &b) != 0);

    eh_host h;
    memset(&h, 0, sizeof h);
    eh_error err = { 0 };
    const char *y = "{device_memory: 80GB, pin: never}";
    eh_node *run = eh_yaml_parse(y, strlen(y), "run", NULL, &err);
    CHECK(eh_host_apply_run(&h, run, &err) == EH_OK);
    CHECK_EQ_INT(h.device_capacity, 80000000000LL);
    CHECK_EQ_INT(h.pin, EH_PIN_NEVER);
    eh_node_free(run);
    CHECK(eh_host_apply_run(&h, NULL, &err) == EH_OK);   /* no run section: nothing simulated, pin auto */
    CHECK_EQ_INT(h.device_capacity, 0);
    CHECK_EQ_INT(h.pin, EH_PIN_AUTO);
    const char *bad[][2] = {
        { "{device_memory: lots}", "run.device_memory must be a size such as 80GB" },
        { "{device_memory: 0}", "run.device_memory must be a size" },
        { "{pin: sometimes}", "run.pin must be auto, always or never" },
        { "{pin: true}", "run.pin must be auto, always or never" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run = eh_yaml_parse(bad[i][0], strlen(bad[i][0]), "run", NULL, &err);
        CHECK(eh_host_apply_run(&h, run, &err) == EH_EINVAL);
        CHECK_CONTAINS(err.msg, bad[i][1]);
        eh_node_free(run);
    }
}

/* The job's sizes (tools/make_real_shape.py --footprints, bfloat16):
 * Qwen-Image-Edit-2509 57.7 GB, Qwen3-VL-30B-A3B 62.1 GB. */
static void test_simulated_device(void)
{
    eh_host h;
    memset(&h, 0, sizeof h);
    h.quiet = 1;
    eh_error err = { 0 };
    eh_model *ed = open_yaml(&h, "editor", "{name: identity, footprint_mb: 57699}", &err);
    eh_model *jd = open_yaml(&h, "judge", "{name: metrics, footprint_mb: 62142}", &err);
    CHECK(ed && jd);
    if (!ed || !jd)
        return;
    /* 80 GB: one at a time; the two-stage order over 5 categories is 9 exchanges */
    h.device_capacity = 80000000000LL;
    CHECK(eh_model_load(ed, &err) == EH_OK);
    CHECK_EQ_INT(h.device_used, 57699000000LL);
    CHECK(eh_model_load(jd, &err) == EH_ENOMEM);
    CHECK_CONTAINS(err.msg, "judge (metrics): cannot move to cpu: out of memory: the model's footprint is 62.1 GB, "
                            "the device's capacity 80.0 GB (run.device_memory), 57.7 GB of it in use by other models");
    CHECK_EQ_STR(eh_residency_name(eh_model_state(jd)), "host");
    CHECK_EQ_INT(h.device_used, 57699000000LL);   /* the failed load charged nothing */
    CHECK(eh_model_unload(ed, &err) == EH_OK);
    CHECK_EQ_INT(h.device_used, 0);
    CHECK(eh_model_load(jd, &err) == EH_OK);
    for (int c = 1; c < 5; c++) {
        CHECK(eh_model_unload(jd, &err) == EH_OK);
        CHECK(eh_model_load(ed, &err) == EH_OK);
        CHECK(eh_model_unload(ed, &err) == EH_OK);
        CHECK(eh_model_load(jd, &err) == EH_OK);
    }
    CHECK_EQ_INT(h.swaps.count, 9);
    CHECK(eh_model_unload(jd, &err) == EH_OK);
    CHECK_EQ_INT(h.device_used, 0);

    /* 141 GB: both stay */
    h.device_capacity = 141000000000LL;
    CHECK(eh_model_load(ed, &err) == EH_OK);
    CHECK(eh_model_load(jd, &err) == EH_OK);
    CHECK_EQ_INT(h.device_used, 57699000000LL + 62142000000LL);
    CHECK(eh_model_unload(ed, &err) == EH_OK && eh_model_unload(jd, &err) == EH_OK);

    /* 40 GB: the editor alone does not fit, named with its footprint */
    h.device_capacity = 40000000000LL;
    CHECK(eh_model_load(ed, &err) == EH_ENOMEM);
    CHECK_CONTAINS(err.msg, "editor (identity): cannot move to cpu: out of memory: the model's footprint is 57.7 GB, "
                            "the device's capacity 40.0 GB");
    CHECK_EQ_INT(h.device_used, 0);
    eh_model_free(ed);
    eh_model_free(jd);
    CHECK_EQ_INT(h.device_used, 0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/eh_test_footprint_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_headers();
    test_release();
    test_sizes_and_keys();
    test_simulated_device();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_footprint");
}
