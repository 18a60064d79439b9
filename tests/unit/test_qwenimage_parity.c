/* test_qwenimage_parity.c — the native editor's parts (issue 14) against
 * diffusers 0.42.1 on the tiny random fixtures of
 * tools/make_qwenimage_fixture.py (tests/data/qwenimage):
 *   VAE encode: our normalised latents of reference/vae_image.npy must be
 *     diffusers' encode → mode → (z - mean) / std within vae_tol (the float32
 *     bound on a reordering of its sums, tolerance.h);
 *   VAE decode: our pixels from reference/vae_latents.npy must be
 *     diffusers' decode(latents / (1 / std) + mean) within vae_tol;
 *   a batch of two images equals each one alone; the GPU's copy path
 *   (cpu_copy) gives the same numbers; bfloat16 stays within one rounding
 *   a stored result (vae_tol).
 * Prints the max differences, as test_native_parity.c does.  Bad input:
 * configs of another class or with attn_scales, a missing weight, sizes
 * that are not multiples of the VAE's scale, a module not on its device.
 * The configs are checked without libtorch too.
 *   transformer: one QwenImageTransformer2DModel call (two images' tokens,
 *     7 text tokens, timestep 0.6) within dit_tol; masked text padding
 *     leaves the image output unchanged;
 *   scheduler (plain C, also without libtorch): FlowMatchEuler schedules
 *     for 5 (steps, sequence length) pairs and one step, bit-equal;
 *   the pipeline's packing (plain C) and its seeded initial noise, bit-equal;
 *   a whole 2-step edit with true CFG from prompt embeddings (everything but
 *   the text encoder and the input resize) against QwenImageEditPipeline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "files.h"
#include "npy.h"
#include "tensors.h"
#include "tolerance.h"
#include "evalhost/flowmatch.h"
#include "evalhost/image.h"
#include "evalhost/native_config.h"
#include "evalhost/qwen25vl_text_encoder.h"
#include "evalhost/qwenimage.h"
#include "evalhost/qwenimage_dit.h"
#include "evalhost/qwenimage_vae.h"
#include "evalhost/safetensors.h"
#include "evalhost/torch_shim.h"

#define FIX "tests/data/qwenimage"

/* The fixture's reference.json (NULL if missing or unreadable). */
static cJSON *read_reference(void)
{
    size_t len = 0;
    char *buf = slurp(FIX "/reference/reference.json", &len);
    cJSON *root = buf ? cJSON_ParseWithLength(buf, len) : NULL;
    free(buf);
    return root;
}

static void test_config(void)
{
    eh_error err = { 0 };
    eh_qwenimage_vae_config c;
    CHECK_EQ_INT(eh_qwenimage_vae_config_load(FIX "/vae/config.json", &c, &err), EH_OK);
    CHECK_EQ_INT(c.base_dim, 4);
    CHECK_EQ_INT(c.z_dim, 16);
    CHECK_EQ_INT(c.n_levels, 4);
    CHECK_EQ_INT(c.dim_mult[2], 4);
    CHECK_EQ_INT(c.num_res_blocks, 2);
    CHECK(fabsf(c.latents_mean[0] + 0.7571f) < 1e-6f && fabsf(c.latents_std[15] - 1.916f) < 1e-6f);

    CHECK_EQ_INT(eh_qwenimage_vae_config_load(FIX "/transformer/config.json", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "_class_name 'QwenImageTransformer2DModel' is not AutoencoderKLQwenImage");
    CHECK_EQ_INT(eh_qwenimage_vae_config_load(FIX "/vae/none.json", &c, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "none.json: cannot open");

    const char *bad[][2] = {
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"attn_scales\": [0.5]}", "attn_scales must be empty" },
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"z_dim\": 4}", "must hold z_dim (4) numbers" },
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"dim_mult\": [1, 2.5]}", "dim_mult[1] is not an integer" },
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"latents_std\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0],"
          " \"latents_mean\": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}",
          "latents_std[15] is not positive" },
        { "[1, 2]", "not a JSON object" },
        /* 3 levels need 2 temporal flags: the pipeline's scale is 2^len(temperal_downsample) */
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"dim_mult\": [1, 2, 4]}",
          "temperal_downsample must list 2 booleans for the 3 levels" },
        { "{\"_class_name\": \"AutoencoderKLQwenImage\", \"is_residual\": true}",
          "is_residual = true is not implemented here" },
    };
    char path[] = "/tmp/eh_qwenimage_cfg_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i][0], f);
        fclose(f);
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(eh_qwenimage_vae_config_load(path, &c, &err), EH_EFORMAT);
        CHECK_CONTAINS(err.msg, bad[i][1]);
    }
    const char *bad_dit[][2] = {
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"use_additional_t_cond\": true}",
          "use_additional_t_cond is not supported" },
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"guidance_embeds\": true}",
          "guidance_embeds is not supported" },
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"axes_dims_rope\": [16, 56, 54]}",
          "axes_dims_rope must be even and sum to attention_head_dim" },
        /* booleans as diffusers holds them: "yes" is neither true nor false */
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"zero_cond_t\": \"yes\"}",
          "zero_cond_t = \"yes\" is not a boolean" },
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"guidance_embeds\": 1}",
          "guidance_embeds = 1 is not a boolean" },
        /* a key the transformer does not implement is refused by name and value */
        { "{\"_class_name\": \"QwenImageTransformer2DModel\", \"use_layer3d_rope_v2\": false}",
          "use_layer3d_rope_v2 = false is not implemented here" },
    };
    eh_qwenimage_dit_config dc;
    for (size_t i = 0; i < sizeof bad_dit / sizeof bad_dit[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad_dit[i][0], f);
        fclose(f);
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(eh_qwenimage_dit_config_load(path, &dc, &err), EH_EFORMAT);
        CHECK_CONTAINS(err.msg, bad_dit[i][1]);
    }
    /* defaults are the released model's */
    FILE *f = fopen(path, "w");
    fputs("{\"_class_name\": \"QwenImageTransformer2DModel\", \"out_channels\": null}", f);
    fclose(f);
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(path, &dc, &err), EH_OK);
    CHECK(dc.num_layers == 60 && dc.num_heads == 24 && dc.head_dim == 128 && dc.joint_attention_dim == 3584);
    CHECK_EQ_INT(dc.out_channels, 64);   /* null: in_channels */
    CHECK_EQ_INT(dc.zero_cond_t, 0);
    f = fopen(path, "w");
    fputs("{\"_class_name\": \"QwenImageTransformer2DModel\", \"zero_cond_t\": true}", f);   /* Edit-2511 */
    fclose(f);
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(path, &dc, &err), EH_OK);
    CHECK_EQ_INT(dc.zero_cond_t, 1);
    remove(path);
}

/* The scheduler is plain C: bit-equal to diffusers' schedules (float32
 * sigmas and timesteps) for each step count and sequence length of the
 * fixture, and its Euler step equal to scheduler.step's output. */

static void test_scheduler(void)
{
    eh_error err = { 0 };
    eh_flowmatch_config c;
    CHECK_EQ_INT(eh_flowmatch_config_load(FIX "/scheduler/scheduler_config.json", &c, &err), EH_OK);
    CHECK(c.use_dynamic_shifting && c.exponential && c.max_image_seq_len == 8192);
    cJSON *ref = read_reference(), *cs;
    CHECK(ref != NULL);
    if (!ref)
        return;
    const cJSON *sch = cJSON_GetObjectItem(ref, "scheduler");
    int n_cases = 0, worst = 0;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(sch, "cases")) {
        int steps = (int)cJSON_GetObjectItem(cs, "steps")->valuedouble;
        int seq = (int)cJSON_GetObjectItem(cs, "image_seq_len")->valuedouble;
        CHECK(fabs(eh_flowmatch_mu(&c, seq) - cJSON_GetObjectItem(cs, "mu")->valuedouble) < 1e-12);
        float sig[64], ts[64];
        CHECK(steps < 63);
        CHECK_EQ_INT(eh_flowmatch_schedule(&c, steps, seq, sig, ts, &err), EH_OK);
        const cJSON *rs = cJSON_GetObjectItem(cs, "sigmas"), *rt = cJSON_GetObjectItem(cs, "timesteps");
        CHECK_EQ_INT(cJSON_GetArraySize(rs), steps + 1);
        int bad = 0;
        for (int i = 0; i <= steps; i++)
            bad += sig[i] != (float)cJSON_GetArrayItem(rs, i)->valuedouble;
        for (int i = 0; i < steps; i++)
            bad += ts[i] != (float)cJSON_GetArrayItem(rt, i)->valuedouble;
        if (bad)
            fprintf(stderr, "schedule %d steps, seq %d: %d values differ from diffusers\n", steps, seq, bad);
        worst = bad > worst ? bad : worst;
        CHECK_EQ_INT(bad, 0);
        n_cases++;
    }
    CHECK_EQ_INT(n_cases, 5);
    printf("flowmatch: %d schedules bit-equal to diffusers' (worst: %d values differ)\n", n_cases, worst);
    /* the step: index 1 of the 4-step schedule at sequence length 1024 */
    size_t ns = 0, nv = 0, np = 0;
    float *x = npy_f32(FIX "/reference/step_sample.npy", &ns), *v = npy_f32(FIX "/reference/step_model_out.npy", &nv);
    float *prev = npy_f32(FIX "/reference/step_prev.npy", &np);
    CHECK(x && v && prev && ns == 24 * 64 && nv == ns && np == ns);
    if (x && v && prev && ns == 24 * 64 && nv == ns && np == ns) {
        float sig[5], ts[4];
        eh_flowmatch_schedule(&c, 4, 1024, sig, ts, &err);
        eh_flowmatch_step(x, v, ns, sig[1], sig[2]);
        size_t differ = 0;
        for (size_t i = 0; i < ns; i++)
            differ += x[i] != prev[i];
        printf("flowmatch: step differs from diffusers' in %zu of %zu values\n", differ, ns);
        CHECK_EQ_INT(differ, 0);
    }
    free(x), free(v), free(prev);
    /* the input image's size: calculate_dimensions for the fixture's sizes */
    const cJSON *dims = cJSON_GetObjectItem(ref, "dimensions"), *dm;
    int n_dims = 0;
    cJSON_ArrayForEach (dm, dims) {
        int w = (int)cJSON_GetArrayItem(dm, 0)->valuedouble, h = (int)cJSON_GetArrayItem(dm, 1)->valuedouble, ow, oh;
        eh_qwenimage_dimensions(w, h, &ow, &oh);
        CHECK_EQ_INT(ow, (int)cJSON_GetArrayItem(dm, 2)->valuedouble);
        CHECK_EQ_INT(oh, (int)cJSON_GetArrayItem(dm, 3)->valuedouble);
        n_dims++;
    }
    CHECK_EQ_INT(n_dims, 10);
    cJSON_Delete(ref);
    /* Edit-2509's condition size: calculate_dimensions(384 * 384, w / h), values from diffusers */
    static const int cond[4][4] = { { 300, 200, 480, 320 },
                                    { 160, 240, 320, 480 },
                                    { 4000, 30, 4448, 32 },
                                    { 1920, 1080, 512, 288 } };
    for (int i = 0; i < 4; i++) {
        int ow, oh;
        eh_qwenimage_dimensions_area(384.0 * 384.0, cond[i][0], cond[i][1], &ow, &oh);
        CHECK(ow == cond[i][2] && oh == cond[i][3]);
    }
    CHECK_EQ_INT(eh_flowmatch_schedule(&c, 0, 1024, NULL, NULL, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "scheduler: 0 steps (at least 1)");
    /* one step with shift_terminal: diffusers' stretch is 0/0 (NaN); ours refuses */
    float s1[2], t1[1];
    CHECK_EQ_INT(eh_flowmatch_schedule(&c, 1, 1024, s1, t1, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "1 step(s) with shift_terminal 0.02: the terminal stretch divides by zero");
    c.shift_terminal = 0;
    CHECK_EQ_INT(eh_flowmatch_schedule(&c, 1, 1024, s1, t1, &err), EH_OK);
    CHECK(s1[0] == 1.0f && s1[1] == 0.0f && t1[0] == 1000.0f);
    CHECK_EQ_INT(eh_flowmatch_config_load(FIX "/vae/config.json", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "'AutoencoderKLQwenImage' is not FlowMatchEulerDiscreteScheduler");
}

/* pack/unpack against the pipeline's _pack_latents (the VAE latents' 4x6
 * corner), and unpack inverts pack */
static void test_pack(void)
{
    size_t nl = 0, np = 0;
    float *lat = npy_f32(FIX "/reference/vae_latents.npy", &nl),
          *ref = npy_f32(FIX "/reference/packed_latents.npy", &np);
    CHECK(lat && ref && nl == 16 * 5 * 7 && np == 16 * 4 * 6);
    if (lat && ref && nl == 16 * 5 * 7 && np == 16 * 4 * 6) {
        float corner[16 * 4 * 6], packed[16 * 4 * 6], back[16 * 4 * 6];
        for (int c = 0; c < 16; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 6; x++)
                    corner[(c * 4 + y) * 6 + x] = lat[(c * 5 + y) * 7 + x];
        eh_qwenimage_pack(corner, 1, 16, 4, 6, packed);
        CHECK(memcmp(packed, ref, sizeof packed) == 0);
        eh_qwenimage_unpack(packed, 1, 16, 4, 6, back);
        CHECK(memcmp(back, corner, sizeof back) == 0);
    }
    free(lat), free(ref);
    /* an image so thin that the pipeline's size rounds a side to 0 */
    eh_error err = { 0 };
    eh_image *thin = eh_image_new(20000, 1, 3, &err);
    int w = -1, h = -1;
    CHECK(thin != NULL);
    CHECK(thin && eh_qwenimage_preprocess(thin, &w, &h, &err) == NULL);
    CHECK_CONTAINS(err.msg, "image 20000x1: too narrow for the editor (it would be resized to 144800x0)");
    CHECK(w == -1 && h == -1);
    eh_image_free(thin);
}

#ifdef EVALHOST_HAVE_TORCH

/* float32: both sides run the same ops in float32 (our 2-D convolutions
 * are diffusers' 3-D ones without the zero frames), so only the order of
 * float sums differs (tolerance.h): the K of the chain of sums an output
 * ends, every 3x3 convolution 9 x its input channels, along diffusers'
 * AutoencoderKLQwenImage — encoding: conv_in, num_res_blocks resnets of two
 * convolutions a level, a resampling convolution between levels, the
 * middle's two resnets around a one-head attention (C, the tokens, C), the
 * head's convolution, quant_conv (2 z_dim); decoding: post_quant_conv
 * (z_dim), conv_in, the middle, num_res_blocks + 1 resnets a level and the
 * resampling, the head.  M: the values' scale, unit-RMS after each norm and
 * at most 1 at the outputs (latents of std 1, pixels in [-1,1]).
 * Low precision (ours in bfloat16 against diffusers' float32): one 2^-8
 * rounding at each stored result, seven a resnet (norm, activation,
 * convolution, twice, and the add), the attention's five, one a resampling,
 * three in the head. */
static int vae_dim(const eh_qwenimage_vae_config *c, int level)
{
    return c->base_dim * c->dim_mult[level];
}

static double vae_chain(const eh_qwenimage_vae_config *c, int decode, int tokens)
{
    int L = c->n_levels, top = vae_dim(c, L - 1);
    double k = 2 * (2 * 9.0 * top) + top + tokens + top;   /* the middle */
    k += 9.0 * top;                                        /* the head */
    if (!decode) {
        k += 9.0 * 3 + 2.0 * c->z_dim;
        for (int i = 0, in = vae_dim(c, 0); i < L; in = vae_dim(c, i), i++)
            k += 9.0 * in + 9.0 * vae_dim(c, i) * (2 * c->num_res_blocks - 1) + (i + 1 < L ? 9.0 * vae_dim(c, i) : 0);
    } else {
        k += c->z_dim + 9.0 * c->z_dim;
        for (int i = L - 1, in = top; i >= 0; in = vae_dim(c, i), i--)
            k += 9.0 * in + 9.0 * vae_dim(c, i) * (2 * c->num_res_blocks + 1) + (i > 0 ? 9.0 * vae_dim(c, i) : 0);
    }
    return k;
}

static double vae_roundings(const eh_qwenimage_vae_config *c, int decode)
{
    int blocks = c->num_res_blocks + (decode ? 1 : 0);
    return c->n_levels * blocks * 7.0 + (c->n_levels - 1) + 2 * 7.0 + 5 + 3 + 2;
}

/* The fixture's VAE config (the bounds are the config's, not the runs'). */
static eh_qwenimage_vae_config vae_config(void)
{
    eh_qwenimage_vae_config c;
    eh_error err = { 0 };
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(eh_qwenimage_vae_config_load(FIX "/vae/config.json", &c, &err), EH_OK);
    return c;
}

/* 40x56 pixels: 5x7 latents, the middle's attention over 35 tokens */
#define VAE_TOKENS 35
/* float32 (a batch against one item too) and bfloat16, encode and decode.
 * Encoding: the probabilistic bound (tolerance.h).  Decoding: its
 * upsampling convolutions sum terms larger than the [-1,1] pixels they
 * make, so M = 1 under-counts there and the probabilistic bound does not
 * hold — the bfloat16 decode measures 0.26 where it gives 0.33 (the encode
 * 0.008 of 0.28), the float32 decode 1.4e-5..4.2e-5 (with the CPU's load)
 * where it gives 4.2e-5.  float32 keeps the worst case gamma_2K (4.5e-4);
 * bfloat16's, gamma_R = 0.77, would pass anything, so it stays at the
 * first-order R u = 0.43 — not derived (no bound on the decoder's gain),
 * 1.7x the measured. */
static double vae_tol(const eh_qwenimage_vae_config *c, int bf16, int decode)
{
    if (decode)
        return bf16 ? vae_roundings(c, 1) * U_BF16 : tol_worst(2 * vae_chain(c, 1, VAE_TOKENS), U_F32, 1);
    return bf16 ? tol_rounded(vae_roundings(c, 0), U_BF16, 0, 1) : tol_f32_chain(vae_chain(c, 0, VAE_TOKENS), 1);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;   /* a NaN makes the maximum NaN, which fails every bound */
    }
    return m;
}

/* The tensors of one weights file, but the one named skip (NULL: all),
 * as a malloc'd list of *k; *st stays open (the caller closes it after
 * the load).  NULL with err when the file does not open. */
static eh_qwenimage_vae *load_vae_mutant(const char *dtype, int cpu_copy, const char *skip, const char *scaled,
                                         float scale, eh_error *err);

static eh_qwenimage_vae *load_vae(const char *dtype, int cpu_copy, const char *skip, eh_error *err)
{
    return load_vae_mutant(dtype, cpu_copy, skip, NULL, 1, err);
}

/* load_vae with the float32 tensor scaled (NULL: none) times scale. */
static eh_qwenimage_vae *load_vae_mutant(const char *dtype, int cpu_copy, const char *skip, const char *scaled,
                                         float scale, eh_error *err)
{
    eh_qwenimage_vae_config c;
    if (eh_qwenimage_vae_config_load(FIX "/vae/config.json", &c, err) != EH_OK)
        return NULL;
    eh_safetensors *st = NULL;
    size_t k = 0;
    const eh_st_tensor **ts = open_tensors(FIX "/vae/diffusion_pytorch_model.safetensors", skip, &st, &k, err);
    if (!ts)
        return NULL;
    eh_st_tensor mut;
    float *data = scaled ? scale_tensor(ts, k, scaled, scale, &mut) : NULL;
    if (scaled)
        CHECK(data != NULL);
    eh_torch_options o = eh_torch_default_options();
    o.dtype = dtype;
    o.cpu_copy = cpu_copy;
    eh_qwenimage_vae *v = NULL;
    eh_qwenimage_vae_load(&c, ts, k, &o, &v, err);
    free(ts);
    free(data);
    eh_safetensors_close(st);   /* the host copy is ours: the mapping may go */
    return v;
}

typedef struct refs {
    float *image, *latents, *decoded;
    size_t n_image, n_latents, n_decoded;
} refs;

static int refs_load(refs *r)
{
    memset(r, 0, sizeof *r);
    r->image = npy_f32(FIX "/reference/vae_image.npy", &r->n_image);
    r->latents = npy_f32(FIX "/reference/vae_latents.npy", &r->n_latents);
    r->decoded = npy_f32(FIX "/reference/vae_decoded.npy", &r->n_decoded);
    CHECK(r->image && r->latents && r->decoded);
    /* [1,3,1,40,56] and [1,16,1,5,7] (make_qwenimage_fixture.py) */
    CHECK_EQ_INT(r->n_image, 3 * 40 * 56);
    CHECK_EQ_INT(r->n_latents, 16 * 5 * 7);
    CHECK_EQ_INT(r->n_decoded, 3 * 40 * 56);
    return r->image && r->latents && r->decoded && r->n_image == 3 * 40 * 56 && r->n_latents == 16 * 5 * 7 &&
                   r->n_decoded == r->n_image
               ? 0
               : -1;
}

static void refs_free(refs *r)
{
    free(r->image);
    free(r->latents);
    free(r->decoded);
}

/* encode and decode against diffusers; returns the two max diffs */
static void parity(const refs *r, const char *dtype, int cpu_copy, double etol, double dtol, double *enc_d,
                   double *dec_d)
{
    eh_error err = { 0 };
    *enc_d = *dec_d = INFINITY;
    eh_qwenimage_vae *v = load_vae(dtype, cpu_copy, NULL, &err);
    CHECK(v != NULL);
    if (!v) {
        fprintf(stderr, "load: %s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(eh_qwenimage_vae_scale(v), 8);
    int64_t bytes = 0;
    CHECK_EQ_INT(eh_torch_module_to_device(eh_qwenimage_vae_module(v), &bytes, &err), EH_OK);
    float *lat = malloc(sizeof *lat * r->n_latents), *img = malloc(sizeof *img * r->n_decoded);
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, r->image, 1, 40, 56, lat, &err), EH_OK);
    *enc_d = max_diff(lat, r->latents, r->n_latents);
    CHECK_EQ_INT(eh_qwenimage_vae_decode(v, r->latents, 1, 5, 7, img, &err), EH_OK);
    *dec_d = max_diff(img, r->decoded, r->n_decoded);
    printf("qwenimage vae %s%s: encode max |diff| %.3g (tolerance %g), decode max |diff| %.3g (tolerance %g)\n", dtype,
           cpu_copy ? " (cpu_copy)" : "", *enc_d, etol, *dec_d, dtol);
    CHECK(*enc_d <= etol);
    CHECK(*dec_d <= dtol);
    free(lat);
    free(img);
    eh_qwenimage_vae_free(v);
}

static void test_parity(const refs *r)
{
    eh_qwenimage_vae_config vc = vae_config();
    double e32, d32, e, d;
    parity(r, "float32", 0, vae_tol(&vc, 0, 0), vae_tol(&vc, 0, 1), &e32, &d32);
    parity(r, "float32", 1, vae_tol(&vc, 0, 0), vae_tol(&vc, 0, 1), &e, &d);
    CHECK(e == e32 && d == d32);   /* same ops on the same numbers: bit equal */
    parity(r, "bfloat16", 0, vae_tol(&vc, 1, 0), vae_tol(&vc, 1, 1), &e, &d);
    /* bfloat16 must be worse than float32, or the dtype was not applied;
     * as a mutant of float32's (an op in lower precision) it breaks its bounds */
    CHECK(e > e32 && d > d32);
    CHECK(e > vae_tol(&vc, 0, 0) && d > vae_tol(&vc, 0, 1));
}

/* The float32 bounds can fail: a weight scaled by 1 + 1e-3 at the end of
 * the encoder (quant_conv) and the start of the decoder (post_quant_conv)
 * must break them. */
static void test_mutants_fail(const refs *r)
{
    eh_qwenimage_vae_config vc = vae_config();
    const char *names[2] = { "quant_conv.weight", "post_quant_conv.weight" };
    for (int k = 0; k < 2; k++) {
        eh_error err = { 0 };
        eh_qwenimage_vae *v = load_vae_mutant("float32", 0, NULL, names[k], 1.001f, &err);
        CHECK(v != NULL);
        if (!v)
            continue;
        int64_t bytes = 0;
        CHECK_EQ_INT(eh_torch_module_to_device(eh_qwenimage_vae_module(v), &bytes, &err), EH_OK);
        size_t n = k ? r->n_decoded : r->n_latents;
        float *out = malloc(sizeof *out * n);
        CHECK_EQ_INT(k ? eh_qwenimage_vae_decode(v, r->latents, 1, 5, 7, out, &err)
                       : eh_qwenimage_vae_encode(v, r->image, 1, 40, 56, out, &err),
                     EH_OK);
        double d = max_diff(out, k ? r->decoded : r->latents, n), tol = vae_tol(&vc, 0, k);
        printf("qwenimage vae mutant %s x 1.001: %s max |diff| %.3g, must exceed %.3g\n", names[k],
               k ? "decode" : "encode", d, tol);
        CHECK(d > tol);
        free(out);
        eh_qwenimage_vae_free(v);
    }
}

/* a batch of two (the image, and it upside down) equals one by one */
static void test_batch(const refs *r)
{
    eh_qwenimage_vae_config vc = vae_config();
    eh_error err = { 0 };
    eh_qwenimage_vae *v = load_vae("float32", 0, NULL, &err);
    CHECK(v != NULL);
    if (!v)
        return;
    int64_t bytes = 0;
    eh_torch_module_to_device(eh_qwenimage_vae_module(v), &bytes, &err);
    size_t ni = r->n_image, nl = r->n_latents;
    float *two = malloc(sizeof *two * 2 * ni), *lat2 = malloc(sizeof *lat2 * 2 * nl), *lat = malloc(sizeof *lat * nl);
    memcpy(two, r->image, sizeof *two * ni);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 40; y++)
            memcpy(two + ni + (c * 40 + y) * 56, r->image + (c * 40 + 39 - y) * 56, sizeof(float) * 56);
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, two, 2, 40, 56, lat2, &err), EH_OK);
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, two + ni, 1, 40, 56, lat, &err), EH_OK);
    double d1 = max_diff(lat2 + nl, lat, nl), d0 = max_diff(lat2, r->latents, nl);
    printf("qwenimage vae batch of 2: item 1 vs alone %.3g, item 0 vs diffusers %.3g (tolerance %.3g)\n", d1, d0,
           vae_tol(&vc, 0, 0));
    CHECK(d1 <= vae_tol(&vc, 0, 0));
    CHECK(d0 <= vae_tol(&vc, 0, 0));
    CHECK(max_diff(lat, r->latents, nl) > 0.01);   /* the flipped image is another input */
    float *img2 = malloc(sizeof *img2 * 2 * ni);
    CHECK_EQ_INT(eh_qwenimage_vae_decode(v, lat2, 2, 5, 7, img2, &err), EH_OK);
    float *img = malloc(sizeof *img * ni);
    CHECK_EQ_INT(eh_qwenimage_vae_decode(v, lat, 1, 5, 7, img, &err), EH_OK);
    double dd = max_diff(img2 + ni, img, ni);
    printf("qwenimage vae decode batch of 2: item 1 vs alone %.3g (tolerance %.3g)\n", dd, vae_tol(&vc, 0, 1));
    CHECK(dd <= vae_tol(&vc, 0, 1));
    free(two), free(lat2), free(lat), free(img2), free(img);
    eh_qwenimage_vae_free(v);
}

static void test_bad_input(const refs *r)
{
    eh_error err = { 0 };
    eh_qwenimage_vae *v = load_vae("float32", 0, "decoder.up_blocks.2.upsamplers.0.resample.1.bias", &err);
    CHECK(v == NULL);
    CHECK_EQ_INT(err.code, EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "weights: weight 'decoder.up_blocks.2.upsamplers.0.resample.1.bias' is missing");
    memset(&err, 0, sizeof err);
    v = load_vae("float32", 0, NULL, &err);
    CHECK(v != NULL);
    if (!v)
        return;
    float lat[16 * 5 * 7];
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, r->image, 1, 40, 56, lat, &err), EH_ESTATE);
    CHECK_CONTAINS(err.msg, "model is not loaded");
    int64_t bytes = 0;
    CHECK_EQ_INT(eh_torch_module_to_device(eh_qwenimage_vae_module(v), &bytes, &err), EH_OK);
    CHECK(bytes > 0);
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, r->image, 1, 42, 56, lat, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "vae encode: 56x42 is not a positive multiple of 8");
    CHECK_EQ_INT(eh_qwenimage_vae_decode(v, r->latents, 1, 0, 7, lat, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "vae decode: latents 7x0 (n 1) are empty");
    CHECK_EQ_INT(eh_torch_module_off_device(eh_qwenimage_vae_module(v), &err), EH_OK);
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, r->image, 1, 40, 56, lat, &err), EH_ESTATE);
    eh_qwenimage_vae_free(v);

    /* another model's weights under the VAE's config */
    eh_qwenimage_vae_config c;
    CHECK_EQ_INT(eh_qwenimage_vae_config_load(FIX "/vae/config.json", &c, &err), EH_OK);
    c.z_dim = 8;   /* the files' latents have 16 channels */
    eh_safetensors *st = NULL;
    size_t n = 0;
    const eh_st_tensor **ts = open_tensors(FIX "/vae/diffusion_pytorch_model.safetensors", NULL, &st, &n, &err);
    eh_torch_options o = eh_torch_default_options();
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(eh_qwenimage_vae_load(&c, ts, n, &o, &v, &err), EH_EFORMAT);
    CHECK(v == NULL);
    CHECK_CONTAINS(err.msg, "weights: weight 'post_quant_conv.weight' has shape [16, 16, 1, 1] where 8 input channels");
    free(ts);
    eh_safetensors_close(st);
}

/* ---- the transformer ------------------------------------------------------
 * float32: the same ops (measured: bit equal here; another CPU's kernels
 * may order the sums otherwise): the K of an output's chain of sums
 * (tolerance.h) — the timestep embedding (256, then the width), img_in
 * (in_channels), txt_in (joint_attention_dim), per block the modulation
 * and q/k/v (the width), the scores (head_dim) and values (the tokens), the
 * output projection (the width), the MLP in (the width) and out (4x), then
 * norm_out's modulation and proj_out (the width) — times M, the outputs'
 * largest magnitude (3.2 here: unit-RMS values after each norm, scaled by
 * the modulation).  bfloat16 is not derived: its modulated, softmax-sharp
 * attention amplifies a rounding past the one-rounding-a-result bound
 * (diffusers' own bfloat16 lands 0.85 max and 0.15 mean from its float32
 * on this fixture); ours must stay within 1.5x of that. */
#define DIT_TOKENS 31   /* two 1x3x4 images and 7 text tokens */
#define DIT_BF16_TOL 1.3
#define DIT_BF16_MEAN_TOL 0.23

static double dit_chain(const eh_qwenimage_dit_config *c, int tokens)
{
    double w = (double)c->num_heads * c->head_dim;
    return 256 + w + c->in_channels + c->joint_attention_dim +
           c->num_layers * (w + w + c->head_dim + tokens + w + w + 4 * w) + w + w;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

static double dit_tol(const float *ref, size_t n)
{
    eh_qwenimage_dit_config c;
    eh_error err = { 0 };
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(FIX "/transformer/config.json", &c, &err), EH_OK);
    return tol_f32_chain(dit_chain(&c, DIT_TOKENS), max_abs(ref, n));
}

static double mean_diff(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] - (double)b[i]);
    return s / (double)n;
}

static eh_qwenimage_dit *load_dit(const char *dtype, const char *skip, eh_error *err)
{
    eh_qwenimage_dit_config c;
    if (eh_qwenimage_dit_config_load(FIX "/transformer/config.json", &c, err) != EH_OK)
        return NULL;
    eh_safetensors *st = NULL;
    size_t k = 0;
    const eh_st_tensor **ts = open_tensors(FIX "/transformer/diffusion_pytorch_model.safetensors", skip, &st, &k, err);
    if (!ts)
        return NULL;
    eh_torch_options o = eh_torch_default_options();
    o.dtype = dtype;
    eh_qwenimage_dit *d = NULL;
    eh_qwenimage_dit_load(&c, ts, k, &o, &d, err);
    free(ts);
    eh_safetensors_close(st);
    int64_t bytes = 0;
    if (d && eh_torch_module_to_device(eh_qwenimage_dit_module(d), &bytes, err) != EH_OK) {
        eh_qwenimage_dit_free(d);
        return NULL;
    }
    return d;
}

static void test_dit(void)
{
    size_t nh = 0, ne = 0, no = 0;
    float *hidden = npy_f32(FIX "/reference/dit_hidden.npy", &nh);
    float *enc = npy_f32(FIX "/reference/dit_encoder.npy", &ne);
    float *ref = npy_f32(FIX "/reference/dit_out.npy", &no);
    CHECK(hidden && enc && ref);
    /* [1,24,64], [1,7,24], [1,24,64]: two 1x3x4 images, 7 text tokens */
    CHECK_EQ_INT(nh, 24 * 64);
    CHECK_EQ_INT(ne, 7 * 24);
    CHECK_EQ_INT(no, 24 * 64);
    if (!hidden || !enc || !ref || nh != 24 * 64 || ne != 7 * 24 || no != 24 * 64)
        goto out;
    const int shapes[6] = { 1, 3, 4, 1, 3, 4 };
    const int32_t ones[7] = { 1, 1, 1, 1, 1, 1, 1 };
    const float t = 0.6f;
    float got[24 * 64];
    eh_error err = { 0 };
    double d32 = INFINITY;
    const char *dtypes[2] = { "float32", "bfloat16" };
    for (int k = 0; k < 2; k++) {
        eh_qwenimage_dit *d = load_dit(dtypes[k], NULL, &err);
        CHECK(d != NULL);
        if (!d) {
            fprintf(stderr, "load: %s\n", err.msg);
            continue;
        }
        CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, shapes, 2, enc, ones, 7, &t, got, &err), EH_OK);
        double diff = max_diff(got, ref, no), tol = k ? DIT_BF16_TOL : dit_tol(ref, no);
        double mean = mean_diff(got, ref, no);
        printf("qwenimage transformer %s: max |diff| %.3g (tolerance %g), mean |diff| %.3g\n", dtypes[k], diff, tol,
               mean);
        CHECK(diff <= tol);
        CHECK(mean <= (k ? DIT_BF16_MEAN_TOL : tol));
        if (k == 0) {
            d32 = diff;
            /* the wrong timestep or image layout (mutants) must break the bound */
            float t2 = 0.5f;
            CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, shapes, 2, enc, NULL, 7, &t2, got, &err), EH_OK);
            CHECK(max_diff(got, ref, no) > tol);
            const int other[6] = { 1, 4, 3, 1, 3, 4 };
            CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, other, 2, enc, NULL, 7, &t, got, &err), EH_OK);
            CHECK(max_diff(got, ref, no) > tol);
            /* a batch of two: item 1 with its text padded by 3 masked tokens
             * of garbage gives item 0's image output */
            float h2[2 * 24 * 64], e2[2 * 10 * 24], o2[2 * 24 * 64];
            int32_t m2[20];
            memcpy(h2, hidden, sizeof(float) * nh);
            memcpy(h2 + nh, hidden, sizeof(float) * nh);
            for (int i = 0; i < 20; i++)
                m2[i] = (i % 10) < 7 ? 1 : (i < 10);   /* item 0: 10 real tokens; item 1: 7 then 3 pads */
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < 10; i++)
                    for (int j = 0; j < 24; j++)
                        e2[(b * 10 + i) * 24 + j] = i < 7 ? enc[i * 24 + j] : 5.0f * (float)((i * 24 + j) % 7) - 15.0f;
            CHECK_EQ_INT(eh_qwenimage_dit_forward(d, h2, 2, shapes, 2, e2, m2, 10, (const float[]){ 0.6f, 0.6f }, o2,
                                                  &err),
                         EH_OK);
            double pad = max_diff(o2 + no, ref, no), unmasked = max_diff(o2, ref, no);
            printf("qwenimage transformer: padded text (3 masked) vs diffusers %.3g; the same tokens unmasked %.3g\n",
                   pad, unmasked);
            CHECK(pad <= dit_tol(ref, no));
            CHECK(unmasked > 1e-3);   /* the mask is what kept them out */
        } else {
            CHECK(diff > d32);
        }
        eh_qwenimage_dit_free(d);
    }
    /* bad input */
    eh_qwenimage_dit *d = load_dit("float32", "transformer_blocks.1.attn.norm_added_k.weight", &err);
    CHECK(d == NULL);
    CHECK_CONTAINS(err.msg, "weights: weight 'transformer_blocks.1.attn.norm_added_k.weight' is missing");
    eh_qwenimage_dit_config c;
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(FIX "/transformer/config.json", &c, &err), EH_OK);
    CHECK_EQ_INT(c.num_layers, 2);
    CHECK_EQ_INT(c.axes_dims_rope[1], 6);
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(FIX "/vae/config.json", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "'AutoencoderKLQwenImage' is not QwenImageTransformer2DModel");
    d = load_dit("float32", NULL, &err);
    CHECK(d != NULL);
    if (d) {
        const int empty[3] = { 1, 0, 4 };
        CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, empty, 1, enc, NULL, 7, &t, got, &err), EH_EINVAL);
        CHECK_CONTAINS(err.msg, "transformer: image 0 has an empty shape");
        CHECK_EQ_INT(eh_torch_module_off_device(eh_qwenimage_dit_module(d), &err), EH_OK);
        CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, shapes, 2, enc, NULL, 7, &t, got, &err), EH_ESTATE);
        CHECK_CONTAINS(err.msg, "model is not loaded");
        eh_qwenimage_dit_free(d);
    }
out:
    free(hidden), free(enc), free(ref);
}

/* the initial noise: torch's CPU generator, seed 42, as the pipeline draws
 * it, bit for bit in float32 and bfloat16 */
static void test_noise(void)
{
    const char *dt[2] = { "float32", "bfloat16" };
    const char *files[2] = { FIX "/reference/noise_float32.npy", FIX "/reference/noise_bfloat16.npy" };
    eh_error err = { 0 };
    for (int k = 0; k < 2; k++) {
        size_t nr = 0;
        float *ref = npy_f32(files[k], &nr);
        CHECK(ref && nr == 2 * 12 * 64);
        float got[2 * 12 * 64];
        CHECK_EQ_INT(eh_qwenimage_noise(42, 2, 16, 6, 8, dt[k], got, &err), EH_OK);
        if (ref && nr == 2 * 12 * 64) {
            CHECK(memcmp(got, ref, sizeof got) == 0);
            CHECK_EQ_INT(eh_qwenimage_noise(43, 2, 16, 6, 8, dt[k], got, &err), EH_OK);
            CHECK(memcmp(got, ref, sizeof got) != 0);   /* the seed matters */
        }
        free(ref);
    }
    float one[64];
    CHECK_EQ_INT(eh_qwenimage_noise(42, 1, 16, 3, 8, "float32", one, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "noise: 1 items of 16 x 8x3 latents (positive, height and width even)");
    CHECK_EQ_INT(eh_qwenimage_noise(42, 1, 16, 2, 2, "float8", one, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown dtype 'float8'");
}

/* A whole edit from prompt embeddings, composed of the pieces above as the
 * editor will compose them, against QwenImageEditPipeline (2 steps, true
 * CFG 4.0, seed 42, a 300x200 input the pipeline resizes to 1248x832,
 * 128x128 output).  The bound (float32 reorderings, tolerance.h) adds the
 * chains one output ends: the VAE encoding of the 1248x832 input (its
 * middle attending over 104x156 latents), per step two transformer calls
 * over the 8x8 output tokens, the 52x78 image tokens and the text, mixed by
 * true CFG (neg + s (cond - neg) carries each call's error up to 2s - 1
 * times), the decoding of 16x16 latents; M: the largest magnitude the
 * transformer returns (at least 1, the latents' scale), and the
 * postprocess x / 2 + 0.5 halves it.  Each piece's bound is tolerance.h's
 * for its own chain (the gain 2s - 1 multiplies a bound, it adds no
 * roundings), the pieces' bounds added. */
#define EDIT_CFG 4.0

static void test_edit(void)
{
    size_t np = 0, nn = 0, no = 0;
    float *pe = npy_f32(FIX "/reference/edit_prompt.npy", &np), *ne = npy_f32(FIX "/reference/edit_negative.npy", &nn);
    float *ref = npy_f32(FIX "/reference/edit_out.npy", &no);
    CHECK(pe && ne && ref && np == 7 * 24 && nn == 5 * 24 && no == 3 * 128 * 128);
    eh_error err = { 0 };
    eh_qwenimage_vae *v = load_vae("float32", 0, NULL, &err);
    eh_qwenimage_dit *d = load_dit("float32", NULL, &err);
    eh_flowmatch_config fc;
    CHECK_EQ_INT(eh_flowmatch_config_load(FIX "/scheduler/scheduler_config.json", &fc, &err), EH_OK);
    CHECK(v && d);
    int64_t bytes = 0;
    if (v)
        eh_torch_module_to_device(eh_qwenimage_vae_module(v), &bytes, &err);
    const int O = 128, OL = O / 8;   /* output, its latents */
    eh_image *img = eh_image_new(300, 200, 3, &err);
    for (int y = 0; img && y < 200; y++)
        for (int xx = 0; xx < 300; xx++)
            for (int c = 0; c < 3; c++)
                img->pixels[((size_t)y * 300 + xx) * 3 + c] =
                    (uint8_t)((3 * xx + 5 * y + 70 * c + (xx * y) % 13) % 256);
    int W = 0, H = 0;
    float *px = img ? eh_qwenimage_preprocess(img, &W, &H, &err) : NULL;
    eh_image_free(img);
    CHECK(px != NULL);
    CHECK(W == 1248 && H == 832);
    const int LW = W / 8, LH = H / 8;
    const size_t img_tok = (size_t)(LW / 2) * (LH / 2), out_tok = (size_t)(OL / 2) * (OL / 2);
    float *lat = malloc(sizeof *lat * 16 * LW * LH);
    float *hidden = malloc(sizeof *hidden * (out_tok + img_tok) * 64);
    float *cond = malloc(sizeof *cond * (out_tok + img_tok) * 64),
          *neg = malloc(sizeof *neg * (out_tok + img_tok) * 64);
    float guided[64 * 64], x[64 * 64], z[16 * 16 * 16], pix[3 * 128 * 128];
    if (!pe || !ne || !ref || np != 7 * 24 || nn != 5 * 24 || no != 3 * 128 * 128 || !v || !d || !px || W != 1248 ||
        H != 832)
        goto out;
    CHECK_EQ_INT(eh_qwenimage_vae_encode(v, px, 1, H, W, lat, &err), EH_OK);
    eh_qwenimage_pack(lat, 1, 16, LH, LW, hidden + out_tok * 64);   /* the image latents follow the noise */
    CHECK_EQ_INT(eh_qwenimage_noise(42, 1, 16, OL, OL, "float32", x, &err), EH_OK);
    double m = 1;   /* the largest |transformer output| */
    float sig[3], ts[2];
    CHECK_EQ_INT(eh_flowmatch_schedule(&fc, 2, (int)out_tok, sig, ts, &err), EH_OK);
    const int shapes[6] = { 1, OL / 2, OL / 2, 1, LH / 2, LW / 2 };
    for (int i = 0; i < 2; i++) {
        memcpy(hidden, x, sizeof x);
        float t = ts[i] / 1000.0f;
        CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, shapes, 2, pe, NULL, 7, &t, cond, &err), EH_OK);
        CHECK_EQ_INT(eh_qwenimage_dit_forward(d, hidden, 1, shapes, 2, ne, NULL, 5, &t, neg, &err), EH_OK);
        m = fmax(m, fmax(max_abs(cond, out_tok * 64), max_abs(neg, out_tok * 64)));
        eh_qwenimage_true_cfg(cond, neg, out_tok, 64, (float)EDIT_CFG, guided);   /* the first out_tok tokens */
        eh_flowmatch_step(x, guided, out_tok * 64, sig[i], sig[i + 1]);
    }
    eh_qwenimage_unpack(x, 1, 16, OL, OL, z);
    CHECK_EQ_INT(eh_qwenimage_vae_decode(v, z, 1, OL, OL, pix, &err), EH_OK);
    for (size_t i = 0; i < 3 * 128 * 128; i++) {   /* postprocess: x / 2 + 0.5, clamped */
        float q = pix[i] / 2.0f + 0.5f;
        pix[i] = q < 0 ? 0 : q > 1 ? 1 : q;
    }
    eh_qwenimage_vae_config vc = vae_config();
    eh_qwenimage_dit_config dc;
    memset(&dc, 0, sizeof dc);
    CHECK_EQ_INT(eh_qwenimage_dit_config_load(FIX "/transformer/config.json", &dc, &err), EH_OK);
    /* the pieces' bounds added, each carried by its gain: the steps' calls
     * by 2s - 1, the decoder's worst case (vae_tol's reason) */
    double tol = 0.5 * m *
                 (tol_f32_chain(vae_chain(&vc, 0, LW * LH), 1) +
                  2 * (2 * EDIT_CFG - 1) * tol_f32_chain(dit_chain(&dc, (int)(out_tok + img_tok) + 7), 1) +
                  tol_worst(2 * vae_chain(&vc, 1, OL * OL), U_F32, 1));
    double diff = max_diff(pix, ref, no);
    printf("qwenimage edit (2 steps, true CFG 4, seed 42, from prompt embeddings): max |diff| %.3g (tolerance %.3g)\n",
           diff, tol);
    CHECK(diff <= tol);
out:
    free(pe), free(ne), free(ref), free(px), free(lat), free(hidden), free(cond), free(neg);
    eh_qwenimage_vae_free(v);
    eh_qwenimage_dit_free(d);
}

#endif

/* The text encoder's config (no libtorch needed): the fixture's
 * transformers-5 file with its text keys nested, and refusals. */
static void test_te_config(void)
{
    eh_error err = { 0 };
    eh_qwen3vl_config c;
    CHECK_EQ_INT(eh_qwenimage_te_config_load(FIX "/text_encoder/config.json", &c, &err), EH_OK);
    CHECK_EQ_INT(c.hidden_size, 24);
    CHECK_EQ_INT(c.num_layers, 2);
    CHECK_EQ_INT(c.num_heads, 2);
    CHECK_EQ_INT(c.num_kv_heads, 1);
    CHECK_EQ_INT(c.head_dim, 12);
    CHECK_EQ_INT(c.vocab_size, 384);
    CHECK_EQ_INT(c.intermediate_size, 40);
    CHECK_EQ_INT(c.image_token_id, 5);   /* <|image_pad|> in the fixture's tokenizer */
    CHECK_EQ_INT(c.mrope_section[1], 2);
    CHECK(c.rope_theta == 1000000.0 && c.rms_norm_eps == 1e-6);
    CHECK(c.v_depth == 2 && c.v_hidden == 16 && c.v_heads == 2 && c.v_out == 24 && c.window_size == 56);
    CHECK(c.n_fullatt == 1 && c.fullatt[0] == 1 && c.merge_size == 2 && c.patch_size == 14);
    CHECK_EQ_INT(eh_qwenimage_te_config_load(FIX "/vae/config.json", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "model_type '' is not qwen2_5_vl");
}

#ifdef EVALHOST_HAVE_TORCH

/* float32: the same ops as transformers up to the order of float sums
 * (tolerance.h): the K of an output's chain — per decoder layer q/k/v
 * (hidden), the scores (head_dim) and values (the sequence), o_proj
 * (heads * head_dim), the MLP in (hidden) and out (intermediate); with
 * images the vision tower's blocks over their widths, the patch embedding
 * (3 * temporal * patch^2) and the merger — times M, the outputs' largest
 * magnitude (unit-RMS hidden states after the final norm). */
#define TE_MAX_SEQ 256   /* the longest prompt or image patch run here */

static double te_tol(const float *ref, size_t n)
{
    eh_qwen3vl_config c;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_qwenimage_te_config_load(FIX "/text_encoder/config.json", &c, &err), EH_OK);
    double text = c.num_layers * (2.0 * c.hidden_size + c.head_dim + TE_MAX_SEQ + (double)c.num_heads * c.head_dim +
                                  c.intermediate_size);
    double vision = c.v_depth * (3.0 * c.v_hidden + c.v_hidden / c.v_heads + TE_MAX_SEQ + c.v_intermediate) +
                    3.0 * c.temporal_patch_size * c.patch_size * c.patch_size + 4.0 * c.v_hidden;
    return tol_f32_chain(text + vision, max_abs(ref, n));
}

static eh_qwenimage_te *load_te(const char *skip, eh_error *err)
{
    eh_qwen3vl_config c;
    if (eh_qwenimage_te_config_load(FIX "/text_encoder/config.json", &c, err) != EH_OK)
        return NULL;
    eh_safetensors *st = NULL;
    size_t k = 0;
    const eh_st_tensor **ts = open_tensors(FIX "/text_encoder/model.safetensors", skip, &st, &k, err);
    if (!ts)
        return NULL;
    eh_torch_options o = eh_torch_default_options();
    o.dtype = "float32";
    eh_qwenimage_te *te = NULL;
    eh_qwenimage_te_load(&c, ts, k, &o, &te, err);
    free(ts);
    eh_safetensors_close(st);
    int64_t bytes = 0;
    if (te && eh_torch_module_to_device(eh_qwenimage_te_module(te), &bytes, err) != EH_OK) {
        eh_qwenimage_te_free(te);
        return NULL;
    }
    return te;
}

/* _get_qwen_prompt_embeds of two right-padded prompts (73 and 70 tokens,
 * the first 64 dropped) against diffusers' own, then each prompt alone
 * (its embeddings must not depend on the other's padding), then bad input. */
static void test_text_encoder(void)
{
    size_t ne = 0;
    float *ref = npy_f32(FIX "/reference/te_embeds.npy", &ne);
    CHECK(ref != NULL);
    cJSON *root = read_reference();
    CHECK(root != NULL);
    const cJSON *t = cJSON_GetObjectItem(root, "text_encoder");
    const cJSON *jids = cJSON_GetObjectItem(t, "ids"), *jmask = cJSON_GetObjectItem(t, "mask");
    const cJSON *jem = cJSON_GetObjectItem(t, "embeds_mask");
    int n = cJSON_GetArraySize(jids), L = cJSON_GetArraySize(cJSON_GetArrayItem(jids, 0));
    int drop = (int)cJSON_GetObjectItem(t, "drop")->valuedouble;
    /* [2, 73] ids, [2, 9, 24] embeddings (make_qwenimage_fixture.py) */
    CHECK(n == 2 && L == 73 && drop == 64 && ne == 2 * 9 * 24);
    eh_error err = { 0 };
    eh_qwenimage_te *te = load_te(NULL, &err);
    CHECK(te != NULL);
    if (!ref || n != 2 || L != 73 || drop != 64 || ne != 2 * 9 * 24 || !te) {
        printf("text encoder not checked: %s\n", err.msg);
        goto out;
    }
    int32_t ids[2 * 73], mask[2 * 73], omask[2 * 9], rmask[2 * 9];
    float got[2 * 9 * 24];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < L; j++) {
            ids[i * L + j] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(jids, i), j)->valuedouble;
            mask[i * L + j] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(jmask, i), j)->valuedouble;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 9; j++)
            rmask[i * 9 + j] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(jem, i), j)->valuedouble;
    int ol = 0;
    CHECK_EQ_INT(eh_qwenimage_te_encode(te, ids, mask, 2, L, drop, got, omask, &ol, &err), EH_OK);
    CHECK_EQ_INT(ol, 9);
    CHECK(memcmp(omask, rmask, sizeof rmask) == 0);
    double diff = max_diff(got, ref, ne);
    printf("qwenimage text encoder (2 prompts, right-padded, prefix 64 dropped, float32): max |diff| %.3g "
           "(tolerance %g)\n",
           diff, te_tol(ref, ne));
    CHECK(diff <= te_tol(ref, ne));
    /* the second prompt alone (70 tokens): 6 rows, no padding */
    CHECK_EQ_INT(eh_qwenimage_te_encode(te, ids + L, NULL, 1, 70, drop, got, omask, &ol, &err), EH_OK);
    CHECK_EQ_INT(ol, 6);
    diff = max_diff(got, ref + 9 * 24, 6 * 24);
    printf("qwenimage text encoder (the second prompt alone): max |diff| %.3g\n", diff);
    CHECK(diff <= te_tol(ref, ne));

    /* bad input */
    CHECK_EQ_INT(eh_qwenimage_te_encode(te, ids, mask, 2, L, 71, got, omask, &ol, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "prompt 1 has 70 tokens, not more than the 71 dropped");
    mask[L + 72] = 1;   /* a real token after the second prompt's padding */
    CHECK_EQ_INT(eh_qwenimage_te_encode(te, ids, mask, 2, L, drop, got, omask, &ol, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "prompt 1 has a real token at 72 after padding");
    mask[L + 72] = 0;
    ids[5] = 384;
    CHECK_EQ_INT(eh_qwenimage_te_encode(te, ids, mask, 2, L, drop, got, omask, &ol, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "prompt 0: token id 384 is outside the vocabulary (384)");
    eh_qwenimage_te_free(te);
    te = load_te("model.layers.1.self_attn.k_proj.bias", &err);
    CHECK(te == NULL);
    CHECK_CONTAINS(err.msg, "weight 'model.language_model.layers.1.self_attn.k_proj.bias' is missing");
out:
    cJSON_Delete(root);
    free(ref);
    eh_qwenimage_te_free(te);
}

/* One prompt with an image through the vision tower (windowed and full
 * blocks, the merger) and the mrope positions, against diffusers'
 * _get_qwen_prompt_embeds with the processor's pixel_values. */
static void test_text_encoder_image(void)
{
    size_t np = 0, ne = 0;
    float *px = npy_f32(FIX "/reference/te_image_pixels.npy", &np);
    float *ref = npy_f32(FIX "/reference/te_image_embeds.npy", &ne);
    cJSON *root = read_reference();
    const cJSON *t = cJSON_GetObjectItem(root, "text_encoder_image");
    const cJSON *jids = cJSON_GetObjectItem(t, "ids"), *jg = cJSON_GetObjectItem(t, "grid_thw");
    int n_ids = cJSON_GetArraySize(jids);
    /* 83 ids (64 + 1 + 12 + 1 + 5), a 1x6x8 grid of 1176-float patches, [1, 19, 24] */
    CHECK(px && ref && n_ids == 83 && np == 48 * 1176 && ne == 19 * 24 && cJSON_GetArraySize(jg) == 3);
    eh_error err = { 0 };
    eh_qwenimage_te *te = load_te(NULL, &err);
    CHECK(te != NULL);
    if (!px || !ref || n_ids != 83 || np != 48 * 1176 || ne != 19 * 24 || !te)
        goto out;
    int32_t ids[83];
    int grid[3];
    float got[19 * 24];
    for (int j = 0; j < 83; j++)
        ids[j] = (int32_t)cJSON_GetArrayItem(jids, j)->valuedouble;
    for (int j = 0; j < 3; j++)
        grid[j] = (int)cJSON_GetArrayItem(jg, j)->valuedouble;
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, grid, 1, 64, 0, got, &err), EH_OK);
    double diff = max_diff(got, ref, ne);
    printf("qwenimage text encoder with an image as the pipeline (1x6x8 patches, windowed + full blocks, float32): "
           "max |diff| %.3g (tolerance %g)\n",
           diff, te_tol(ref, ne));
    CHECK(diff <= te_tol(ref, ne));
    /* get_rope_index's positions, against transformers given the
     * processor's mm_token_type_ids (the two references differ by 4.7e-3) */
    size_t nm = 0;
    float *mref = npy_f32(FIX "/reference/te_image_mrope.npy", &nm);
    CHECK(mref && nm == ne);
    CHECK(max_diff(mref, ref, ne) > 1e-3);
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, grid, 1, 64, 1, got, &err), EH_OK);
    diff = mref && nm == ne ? max_diff(got, mref, ne) : INFINITY;
    printf("qwenimage text encoder with an image, mrope positions: max |diff| %.3g (tolerance %.3g)\n", diff,
           te_tol(ref, ne));
    CHECK(diff <= te_tol(ref, ne));
    free(mref);
    /* bad input: a pad missing, a grid the merge does not divide */
    ids[70] = 3;
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, grid, 1, 64, 0, got, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "image 1 has 5 pads where its grid needs 12");
    ids[70] = 5;
    int odd[3] = { 1, 6, 7 };
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, odd, 1, 64, 1, got, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "image 1 grid 1x6x7 (sides multiples of merge_size 2)");
    int small[3] = { 1, 4, 8 };
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, small, 1, 64, 1, got, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "image 1 has more pads than the 8 its grid needs");
    /* two grids for one run of pads */
    int two[6] = { 1, 6, 8, 1, 2, 2 };
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, 83, px, two, 2, 64, 0, got, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "1 complete runs of image pads for 2 images");
out:
    cJSON_Delete(root);
    free(px);
    free(ref);
    eh_qwenimage_te_free(te);
}

/* One prompt with two images (Edit-2509's "Picture 1: ... Picture 2: ..."):
 * each image through the vision tower on its own, their pads in order,
 * sequential and get_rope_index positions, against transformers. */
static void test_text_encoder_images(void)
{
    size_t np = 0, ne = 0, nm = 0;
    float *px = npy_f32(FIX "/reference/te_images_pixels.npy", &np);
    float *ref = npy_f32(FIX "/reference/te_images_embeds.npy", &ne);
    float *mref = npy_f32(FIX "/reference/te_images_mrope.npy", &nm);
    cJSON *root = read_reference();
    const cJSON *t = cJSON_GetObjectItem(root, "text_encoder_images");
    const cJSON *jids = cJSON_GetObjectItem(t, "ids"), *jg = cJSON_GetObjectItem(t, "grid_thw");
    int n_ids = cJSON_GetArraySize(jids), grid[6] = { 0 };
    int64_t rows = 0;
    for (int i = 0; i < 2 && cJSON_GetArraySize(jg) == 2; i++) {
        for (int j = 0; j < 3; j++)
            grid[3 * i + j] = (int)cJSON_GetArrayItem(cJSON_GetArrayItem(jg, i), j)->valuedouble;
        rows += (int64_t)grid[3 * i] * grid[3 * i + 1] * grid[3 * i + 2];
    }
    eh_error err = { 0 };
    eh_qwenimage_te *te = load_te(NULL, &err);
    int ok = px && ref && mref && te && n_ids > 64 && rows > 0 && np == (size_t)rows * 1176 &&
             ne == (size_t)(n_ids - 64) * 24 && nm == ne;
    CHECK(ok);
    if (!ok)
        goto out;
    int32_t *ids = malloc(sizeof *ids * (size_t)n_ids);
    float *got = malloc(sizeof *got * ne);
    for (int j = 0; j < n_ids; j++)
        ids[j] = (int32_t)cJSON_GetArrayItem(jids, j)->valuedouble;
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, n_ids, px, grid, 2, 64, 0, got, &err), EH_OK);
    double diff = max_diff(got, ref, ne);
    printf("qwenimage text encoder with two images (%dx%d and %dx%d patches), sequential positions: max |diff| "
           "%.3g (tolerance %g)\n",
           grid[1], grid[2], grid[4], grid[5], diff, te_tol(ref, ne));
    CHECK(diff <= te_tol(ref, ne));
    CHECK(max_diff(mref, ref, ne) > 1e-3);   /* the two position schemes do differ here */
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, n_ids, px, grid, 2, 64, 1, got, &err), EH_OK);
    diff = max_diff(got, mref, ne);
    printf("qwenimage text encoder with two images, mrope positions: max |diff| %.3g (tolerance %.3g)\n", diff,
           te_tol(ref, ne));
    CHECK(diff <= te_tol(ref, ne));
    /* one grid for two runs */
    CHECK_EQ_INT(eh_qwenimage_te_encode_images(te, ids, n_ids, px, grid, 1, 64, 0, got, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "more runs of image pads than the 1 images");
    free(ids);
    free(got);
out:
    cJSON_Delete(root);
    free(px), free(ref), free(mref);
    eh_qwenimage_te_free(te);
}

#endif

int main(void)
{
    test_config();
    test_scheduler();
    test_pack();
    test_te_config();
#ifdef EVALHOST_HAVE_TORCH
    refs r;
    if (refs_load(&r) == 0) {
        test_parity(&r);
        test_batch(&r);
        test_mutants_fail(&r);
        test_bad_input(&r);
    }
    refs_free(&r);
    test_dit();
    test_noise();
    test_edit();
    test_text_encoder();
    test_text_encoder_image();
    test_text_encoder_images();
    return check_summary("test_qwenimage_parity");
#else
    /* the configs, scheduler and packing ran; the models did not */
    return check_skipped("test_qwenimage_parity", "built without libtorch; the forward is not checked");
#endif
}
