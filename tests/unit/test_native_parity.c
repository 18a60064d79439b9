/* test_native_parity.c — the native Qwen3-VL forward against transformers'
 * reference (tests/data/qwen3vl/{dense,moe}, tools/make_qwen3vl_fixture.py):
 * with the reference's input ids and our own preprocessing of its two
 * images, the whole last-position logits row must match transformers' within
 * the bounds logit_tolerance derives (tolerance.h), with the same argmax; a batch
 * of unequal prompts must give each item its one-by-one logits.  Prints the
 * max differences, as llm.c's test_gpt2 does.  The score path through the
 * model API (our chat rendering and tokenizer) is
 * tests/e2e/test_native_parity.py. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "files.h"
#include "npy.h"
#include "tensors.h"
#include "tolerance.h"
#include "evalhost/image.h"
#include "evalhost/safetensors.h"
#include "evalhost/vlm_pre.h"

#ifdef EVALHOST_HAVE_TORCH
#include "evalhost/native_config.h"
#include "evalhost/qwen3vl.h"
#include "evalhost/torch_shim.h"

/* The longest sequence a fixture here runs (the prompt with its image
 * pads, or one image's patches): a bound on the attention's value sums. */
#define MAX_SEQ 1024

/* float32: both sides run the same ops in float32, so only the order of
 * float sums differs (tolerance.h): the K of a logit's chain, as
 * tests/e2e's reorder_tolerance adds it up — per decoder layer q/k/v
 * (hidden), the scores (head_dim) and values (the sequence), o_proj
 * (heads * head_dim), the MLP in (hidden) and out (intermediate); per
 * vision block the same over its widths; our patch embedding, a matmul
 * where transformers runs Conv3d (3 * temporal * patch^2 terms); the LM
 * head (hidden).  M = 1: each sum follows a norm against weights of std
 * 0.02, so its terms' magnitudes sum to under 1. */
static double f32_chain(const eh_qwen3vl_config *c)
{
    double mlp = c->moe_intermediate_size > c->intermediate_size ? c->moe_intermediate_size : c->intermediate_size;
    double text =
        c->num_layers * (2.0 * c->hidden_size + c->head_dim + MAX_SEQ + (double)c->num_heads * c->head_dim + mlp) +
        c->hidden_size;
    double vision = c->v_depth * (3.0 * c->v_hidden + c->v_hidden / c->v_heads + MAX_SEQ + c->v_intermediate);
    return text + vision + 3.0 * c->temporal_patch_size * c->patch_size * c->patch_size;
}

/* Low precision: the stored results along a logit's chain (tests/e2e's
 * bf16_roundings): norm, q/k/v, q/k norm, rope, scores, values, o_proj,
 * residual, norm, gate/up, act * up, down, residual — 13 a decoder layer,
 * one more for an MoE's routing weights; 12 a vision block (no q/k norm);
 * then the patch embedding, the position add, the merger's norm, two
 * linears and activation, the deepstack add, the final norm, the LM head. */
static double roundings(const eh_qwen3vl_config *c)
{
    return c->num_layers * (13.0 + (c->num_experts > 0)) + c->v_depth * 12.0 + 9;
}

/* float32 against transformers' float32 (a reordering); float16 against
 * its float32 (ours rounds, the reference does not: u a rounding);
 * bfloat16 against its bfloat16 (both round: 2u). */
static double logit_tolerance(const eh_qwen3vl_config *c, const char *dtype)
{
    if (!strcmp(dtype, "float16"))
        return tol_rounded(roundings(c), U_F16, 0, 1);
    if (!strcmp(dtype, "bfloat16"))
        return tol_rounded(roundings(c), U_BF16, 1, 1);
    return tol_f32_chain(f32_chain(c), 1);
}

typedef struct fixture {
    char dir[512];
    eh_qwen3vl_config cfg;
    eh_vlm_config vlm;
    int32_t *ids;
    int64_t n_ids;
    eh_vlm_patches *pp[2];
    const float *pdata[2];
    int grid[6];
    int32_t gen[32], gen_nostop[32];    /* transformers' greedy continuations */
    int n_gen, n_gen_nostop;
    int32_t eos;
} fixture;

static int fixture_open(fixture *fx, const char *kind)
{
    eh_error err = { 0 };
    char p[600];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "tests/data/qwen3vl/%s", kind);
    snprintf(p, sizeof p, "%s/config.json", fx->dir);
    CHECK_EQ_INT(eh_qwen3vl_config_load(p, &fx->cfg, &err), EH_OK);
    snprintf(p, sizeof p, "%s/preprocessor_config.json", fx->dir);
    CHECK_EQ_INT(eh_vlm_config_load(p, &fx->vlm, &err), EH_OK);
    snprintf(p, sizeof p, "%s/reference.json", fx->dir);
    size_t len = 0;
    char *text = slurp(p, &len);
    cJSON *ref = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    CHECK(ref != NULL);
    if (!ref)
        return -1;
    const cJSON *ids = cJSON_GetObjectItem(ref, "input_ids"), *e;
    fx->n_ids = cJSON_GetArraySize(ids);
    fx->ids = malloc(sizeof *fx->ids * (size_t)fx->n_ids);
    int64_t i = 0;
    cJSON_ArrayForEach (e, ids)
        fx->ids[i++] = (int32_t)e->valuedouble;
    const cJSON *g = cJSON_GetObjectItem(ref, "generate");
    cJSON_ArrayForEach (e, cJSON_GetObjectItem(g, "ids"))
        if (fx->n_gen < 32)
            fx->gen[fx->n_gen++] = (int32_t)e->valuedouble;
    cJSON_ArrayForEach (e, cJSON_GetObjectItem(g, "ids_nostop"))
        if (fx->n_gen_nostop < 32)
            fx->gen_nostop[fx->n_gen_nostop++] = (int32_t)e->valuedouble;
    CHECK(fx->n_gen > 0 && fx->n_gen_nostop == 16);
    const cJSON *grids = cJSON_GetObjectItem(ref, "image_grid_thw");
    const char *names[2] = { "edited.png", "original.png" };
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", fx->dir, names[k]);
        eh_image *img = eh_image_load(p, NULL, &err);
        CHECK(img != NULL);
        fx->pp[k] = img ? eh_vlm_preprocess(img, &fx->vlm, &err) : NULL;
        eh_image_free(img);
        CHECK(fx->pp[k] != NULL);
        if (!fx->pp[k])
            return cJSON_Delete(ref), -1;
        fx->pdata[k] = fx->pp[k]->data;
        fx->grid[3 * k] = fx->pp[k]->grid_t, fx->grid[3 * k + 1] = fx->pp[k]->grid_h;
        fx->grid[3 * k + 2] = fx->pp[k]->grid_w;
        const cJSON *g = cJSON_GetArrayItem(grids, k);   /* our grids are transformers' */
        for (int d = 0; d < 3; d++)
            CHECK_EQ_INT(fx->grid[3 * k + d], (int)cJSON_GetArrayItem(g, d)->valuedouble);
    }
    cJSON_Delete(ref);
    snprintf(p, sizeof p, "%s/generation_config.json", fx->dir);
    text = slurp(p, &len);
    cJSON *gc = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    fx->eos = (int32_t)cJSON_GetObjectItem(gc, "eos_token_id")->valuedouble;
    cJSON_Delete(gc);
    return 0;
}

static void fixture_close(fixture *fx)
{
    free(fx->ids);
    eh_vlm_patches_free(fx->pp[0]);
    eh_vlm_patches_free(fx->pp[1]);
}

static eh_qwen3vl *load_model(fixture *fx, const char *dtype)
{
    eh_error err = { 0 };
    eh_safetensors *st = NULL;
    size_t n = 0;
    const eh_st_tensor **ts = open_tensors(fx->dir, NULL, &st, &n, &err);
    CHECK(ts != NULL);
    if (!ts)
        return NULL;
    eh_torch_options o = eh_torch_default_options();
    o.role = EH_TORCH_JUDGE;
    o.dtype = dtype;
    eh_qwen3vl *q = NULL;
    CHECK_EQ_INT(eh_qwen3vl_load(&fx->cfg, ts, n, &o, &q, &err), EH_OK);
    free(ts);
    if (!q)
        fprintf(stderr, "load: %s\n", err.msg);
    eh_safetensors_close(st);
    int64_t bytes = 0;
    if (q)
        CHECK_EQ_INT(eh_torch_module_to_device(eh_qwen3vl_module(q), &bytes, &err), EH_OK);
    return q;
}

static int argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return (int)best;
}

static void test_logits(const char *kind, const char *dtype, const char *npy)
{
    fixture fx;
    if (fixture_open(&fx, kind) != 0) {
        fixture_close(&fx);
        return;
    }
    double tol = logit_tolerance(&fx.cfg, dtype);
    eh_qwen3vl *q = load_model(&fx, dtype);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", fx.dir, npy);
    size_t V = 0;
    float *ref = npy_f32(p, &V);
    CHECK(ref != NULL);
    CHECK_EQ_INT(V, fx.cfg.vocab_size);
    if (q && ref) {
        eh_qwen3vl_item it = { fx.ids, fx.n_ids, 2, fx.pdata, fx.grid };
        float *full = malloc(sizeof(float) * V);
        double digits[1];
        int32_t cand = 0;
        eh_error err = { 0 };
        CHECK_EQ_INT(eh_qwen3vl_score(q, &it, 1, &cand, 1, digits, full, &err), EH_OK);
        double maxd = 0;
        for (size_t i = 0; i < V; i++)
            maxd = fmax(maxd, fabs((double)full[i] - ref[i]));
        printf("%s %s: max |logit - transformers| over %zu logits = %.3g (tolerance %.3g)\n", kind, dtype, V, maxd,
               tol);
        CHECK(maxd <= tol);
        CHECK_EQ_INT(argmax(full, V), argmax(ref, V));
        free(full);
    }
    free(ref);
    eh_qwen3vl_free(q);
    fixture_close(&fx);
}

/* The model as load_model loads it, but with the float32 tensor name
 * scaled by scale (tensors.h's scale_tensor). */
static eh_qwen3vl *load_mutant(fixture *fx, const char *dtype, const char *name, float scale)
{
    eh_error err = { 0 };
    eh_safetensors *st = NULL;
    size_t n = 0;
    const eh_st_tensor **ts = open_tensors(fx->dir, NULL, &st, &n, &err);
    CHECK(ts != NULL);
    if (!ts)
        return NULL;
    eh_st_tensor mut;
    float *data = scale_tensor(ts, n, name, scale, &mut);
    CHECK(data != NULL);
    eh_torch_options o = eh_torch_default_options();
    o.role = EH_TORCH_JUDGE;
    o.dtype = dtype;
    eh_qwen3vl *q = NULL;
    CHECK_EQ_INT(eh_qwen3vl_load(&fx->cfg, ts, n, &o, &q, &err), EH_OK);
    free(ts);
    free(data);
    eh_safetensors_close(st);
    int64_t bytes = 0;
    if (q)
        CHECK_EQ_INT(eh_torch_module_to_device(eh_qwen3vl_module(q), &bytes, &err), EH_OK);
    return q;
}

/* The bounds can fail: a computation changed past rounding noise must
 * break them.  float32: the final norm's weight scaled by 1 + 1e-3, and
 * the whole forward in float16 (an op in lower precision); bfloat16: that
 * weight scaled by 1 + 1/8 (bfloat16 keeps 8 bits, so its bound is ~1/16
 * of the largest logit here: a smaller change hides in it). */
static void test_mutants_fail(const char *kind)
{
    static const struct {
        const char *dtype, *npy;
        float scale;
    } cases[] = { { "float32", "logits_fp32.npy", 1.001f },
                  { "float16", "logits_fp32.npy", 1.0f },
                  { "bfloat16", "logits_bf16.npy", 1.125f } };
    fixture fx;
    if (fixture_open(&fx, kind) != 0) {
        fixture_close(&fx);
        return;
    }
    size_t V = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", fx.dir, cases[c].npy);
        float *ref = npy_f32(p, &V);
        eh_qwen3vl *q = load_mutant(&fx, cases[c].dtype, "model.language_model.norm.weight", cases[c].scale);
        /* float16's mutant is its dtype: it must fail float32's bound */
        double tol = logit_tolerance(&fx.cfg, cases[c].scale == 1.0f ? "float32" : cases[c].dtype);
        CHECK(ref != NULL && q != NULL);
        if (ref && q) {
            eh_qwen3vl_item it = { fx.ids, fx.n_ids, 2, fx.pdata, fx.grid };
            float *full = malloc(sizeof(float) * V);
            double digits[1], maxd = 0;
            int32_t cand = 0;
            eh_error err = { 0 };
            CHECK_EQ_INT(eh_qwen3vl_score(q, &it, 1, &cand, 1, digits, full, &err), EH_OK);
            for (size_t i = 0; i < V; i++)
                maxd = fmax(maxd, fabs((double)full[i] - ref[i]));
            printf("%s mutant %s, final norm x %g: max |logit - transformers| = %.3g, must exceed %.3g\n", kind,
                   cases[c].dtype, cases[c].scale, maxd, tol);
            CHECK(maxd > tol);
            free(full);
        }
        free(ref);
        eh_qwen3vl_free(q);
    }
    fixture_close(&fx);
}

/* Three prompts of different lengths and image counts in one batch: each
 * row equals its own one-item run. */
static void test_batch(const char *kind)
{
    fixture fx;
    if (fixture_open(&fx, kind) != 0) {
        fixture_close(&fx);
        return;
    }
    eh_qwen3vl *q = load_model(&fx, "float32");
    if (!q) {
        fixture_close(&fx);
        return;
    }
    /* item 1: the prompt cut after the first image's vision_end (one image);
     * item 2: ten text tokens only */
    int64_t cut = 0;
    for (int64_t i = 0, seen = 0; i < fx.n_ids; i++) {
        if (fx.ids[i] == fx.cfg.image_token_id)
            seen = 1;
        else if (seen) {
            cut = i + 1;
            break;
        }
    }
    int32_t text_ids[10] = { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
    eh_qwen3vl_item items[3] = {
        { fx.ids, fx.n_ids, 2, fx.pdata, fx.grid },
        { fx.ids, cut, 1, fx.pdata, fx.grid },
        { text_ids, 10, 0, NULL, NULL },
    };
    size_t V = (size_t)fx.cfg.vocab_size;
    float *batch = malloc(sizeof(float) * V * 3), *one = malloc(sizeof(float) * V);
    double d[3];
    int32_t cand = 0;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_qwen3vl_score(q, items, 3, &cand, 1, d, batch, &err), EH_OK);
    double maxd = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(eh_qwen3vl_score(q, &items[i], 1, &cand, 1, d, one, &err), EH_OK);
        for (size_t k = 0; k < V; k++)
            maxd = fmax(maxd, fabs((double)batch[i * V + k] - one[k]));
    }
    /* a batch against one item: other GEMM shapes, the same float32 ops */
    double tol = tol_f32_chain(f32_chain(&fx.cfg), 1);
    printf("%s batch of 3 (lengths %lld, %lld, 10): max |batched - one by one| = %.3g (tolerance %.3g)\n", kind,
           (long long)fx.n_ids, (long long)cut, maxd, tol);
    CHECK(maxd <= tol);
    free(batch);
    free(one);

    /* bad input comes back as an error naming the cause */
    int32_t bad_ids[3] = { 1, 99999, 2 };
    eh_qwen3vl_item bad = { bad_ids, 3, 0, NULL, NULL };
    CHECK_EQ_INT(eh_qwen3vl_score(q, &bad, 1, &cand, 1, d, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "token id 99999 is outside the vocabulary");
    eh_qwen3vl_item missing = { fx.ids, fx.n_ids, 1, fx.pdata, fx.grid };
    CHECK_EQ_INT(eh_qwen3vl_score(q, &missing, 1, &cand, 1, d, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "more image placeholders than images");
    eh_qwen3vl_item extra = { text_ids, 10, 1, fx.pdata, fx.grid };
    CHECK_EQ_INT(eh_qwen3vl_score(q, &extra, 1, &cand, 1, d, NULL, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "1 images but 0 placeholders");
    /* unloaded: refused */
    CHECK_EQ_INT(eh_torch_module_off_device(eh_qwen3vl_module(q), &err), EH_OK);
    CHECK_EQ_INT(eh_qwen3vl_score(q, items, 1, &cand, 1, d, NULL, &err), EH_ESTATE);
    eh_qwen3vl_free(q);
    fixture_close(&fx);
}

/* Greedy decoding with the KV cache gives transformers' generate ids, with
 * the stop token and without (all 16 steps). */
static void test_generate(const char *kind)
{
    fixture fx;
    if (fixture_open(&fx, kind) != 0) {
        fixture_close(&fx);
        return;
    }
    eh_qwen3vl *q = load_model(&fx, "float32");
    if (q) {
        eh_qwen3vl_item it = { fx.ids, fx.n_ids, 2, fx.pdata, fx.grid };
        int32_t out[32];
        int n_out = 0;
        eh_error err = { 0 };
        CHECK_EQ_INT(eh_qwen3vl_generate(q, &it, 16, &fx.eos, 1, out, &n_out, &err), EH_OK);
        CHECK_EQ_INT(n_out, fx.n_gen);
        int same = n_out == fx.n_gen && !memcmp(out, fx.gen, sizeof(int32_t) * (size_t)n_out);
        CHECK(same);
        CHECK_EQ_INT(eh_qwen3vl_generate(q, &it, 16, NULL, 0, out, &n_out, &err), EH_OK);
        CHECK_EQ_INT(n_out, 16);
        int same2 = n_out == 16 && !memcmp(out, fx.gen_nostop, sizeof(int32_t) * 16);
        CHECK(same2);
        printf("%s generate: %d tokens with stop, 16 without: %s transformers' greedy ids\n", kind, fx.n_gen,
               same && same2 ? "equal to" : "DIFFERENT from");
    }
    eh_qwen3vl_free(q);
    fixture_close(&fx);
}

/* Weights that do not fit the config are refused with the tensor named. */
static void test_bad_weights(void)
{
    fixture fx;
    if (fixture_open(&fx, "dense") != 0) {
        fixture_close(&fx);
        return;
    }
    eh_error err = { 0 };
    eh_safetensors *st = NULL;
    size_t n = 0;
    const eh_st_tensor **ts = open_tensors(fx.dir, NULL, &st, &n, &err);
    CHECK(ts != NULL);
    eh_torch_options o = eh_torch_default_options();
    o.role = EH_TORCH_JUDGE;
    eh_qwen3vl *q = NULL;
    eh_qwen3vl_config c = fx.cfg;
    c.intermediate_size = 100;
    CHECK_EQ_INT(eh_qwen3vl_load(&c, ts, n, &o, &q, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "weight 'model.language_model.layers.0.mlp.gate_proj.weight' has shape [128, 64]");
    c = fx.cfg;
    c.num_layers = 3;
    CHECK_EQ_INT(eh_qwen3vl_load(&c, ts, n, &o, &q, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "weight 'model.language_model.layers.2.self_attn.q_proj.weight' is missing");
    c = fx.cfg;
    c.num_kv_heads = 3;
    CHECK_EQ_INT(eh_qwen3vl_load(&c, ts, n, &o, &q, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "config: inconsistent sizes");
    CHECK(q == NULL);
    free(ts);
    eh_safetensors_close(st);
    CHECK_EQ_INT(eh_qwen3vl_config_load("tests/data/qwen3vl/dense/preprocessor_config.json", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "model_type '' is not one the native judge runs");
    fixture_close(&fx);
}

int main(void)
{
    test_logits("dense", "float32", "logits_fp32.npy");
    test_logits("moe", "float32", "logits_fp32.npy");
    /* no float16 reference: against float32's, within bfloat16's tolerance */
    test_logits("dense", "float16", "logits_fp32.npy");
    test_logits("moe", "float16", "logits_fp32.npy");
    test_logits("dense", "bfloat16", "logits_bf16.npy");
    test_logits("moe", "bfloat16", "logits_bf16.npy");
    test_batch("dense");
    test_batch("moe");
    test_mutants_fail("dense");
    test_mutants_fail("moe");
    test_generate("dense");
    test_generate("moe");
    test_bad_weights();
    return check_summary("test_native_parity");
}

#else
int main(void)
{
    return check_skipped("test_native_parity", "built without libtorch, nothing to check");
}
#endif
