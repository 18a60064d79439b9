/* torch_shim.h — the C face of libtorch (host/models/torch/torch_shim.cpp, the only C++
 * file).  Opaque handles, C types and eh_error only: no C++ type and no
 * exception crosses this line.  Every function that can fail returns an
 * eh_status and fills err (may be NULL) with one line naming the cause.
 *
 *   eh_torch_module *tm;
 *   eh_torch_options o = eh_torch_default_options();
 *   o.dtype = "bfloat16", o.device = "cuda:0";
 *   eh_torch_module_load("editor.pt", &o, &tm, &err);   // disk → host (pinned, immutable)
 *   eh_torch_module_to_device(tm, &bytes, &err);         // one host→device copy
 *   eh_torch_module_edit(tm, chw, n, h, w, texts, &out, &oh, &ow, &err);
 *   eh_torch_module_off_device(tm, &err);                // frees device memory, no copy back
 *   eh_torch_module_free(tm);
 *
 * Residency: the weights (every tensor attribute: parameters, buffers and
 * plain tensor attributes) live in ONE flat host buffer, pinned when the
 * module's device is CUDA, written once at load and never again.  On the
 * device they live in one flat buffer of the same layout filled by a single
 * copy on a dedicated stream; the module's tensors are views into whichever
 * buffer is current.  On the CPU the host buffer is the device buffer
 * (unless cpu_copy asks for the GPU's path through a second buffer).
 *
 * A module is not thread-safe; use one thread per module. */
#ifndef EVALHOST_TORCH_SHIM_H
#define EVALHOST_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_torch_module eh_torch_module;

typedef enum eh_torch_role { EH_TORCH_EDITOR = 0, EH_TORCH_JUDGE } eh_torch_role;

/* How the host copy is held (eh_torch_module_host_kind). */
typedef enum eh_torch_host_kind {
    EH_TORCH_HOST_PLAIN = 0,      /* pageable: CPU modules */
    EH_TORCH_HOST_REGISTERED,     /* mmap'd and cudaHostRegister'ed: exact size */
    EH_TORCH_HOST_TORCH_PINNED,   /* torch's pinned allocator (rounds up to 2^k) */
} eh_torch_host_kind;

typedef struct eh_torch_options {
    eh_torch_role role;
    const char *dtype;            /* "float32", "float16", "bfloat16" (aliases fp32, fp16, half, bf16) */
    const char *device;           /* "cpu", "cuda", "cuda:N" (resolve "auto" first) */
    int jit_optimize;             /* 0: profiling-executor fusions off, so batches equal single calls */
    int cpu_copy;                 /* CPU only: load copies into a second buffer and retargets, as on a GPU */
} eh_torch_options;

eh_torch_options eh_torch_default_options(void);   /* editor, float32, cpu, no jit fusions, no cpu copy */

/* Library facts.  Without CUDA: available 0, count 0, memory zeros. */
const char *eh_torch_version(void);
int eh_torch_cuda_available(void);
int eh_torch_cuda_device_count(void);
eh_status eh_torch_cuda_memory(int device, int64_t *free_bytes, int64_t *total_bytes, eh_error *err);

/* Checks a dtype / device string; 0 if fine, else -1 with err set. */
eh_status eh_torch_check_dtype(const char *dtype, eh_error *err);
eh_status eh_torch_check_device(const char *device, eh_error *err);

/* disk → host: torch::jit::load on the CPU, checks forward's signature
 * against the role, casts floating tensors to the dtype, packs every tensor
 * into the host buffer.  EH_EIO (file), EH_EFORMAT (not TorchScript, wrong
 * signature), EH_ENOMEM. */
eh_status eh_torch_module_load(const char *path, const eh_torch_options *opt, eh_torch_module **out, eh_error *err);

/* A module built in memory for benchmarks: n_params parameters totalling
 * about `bytes` in the dtype, parameter i filled with ((i % 7) + 1) / 8, and
 * a forward of the role's signature that returns a tensor shaped like its
 * first input, every element the mean over parameters of their mean (so a
 * caller can check the weights arrived intact). */
eh_status eh_torch_module_synthetic(int64_t bytes, int n_params, const eh_torch_options *opt, eh_torch_module **out,
                                    eh_error *err);

void eh_torch_module_free(eh_torch_module *m);          /* NULL is a no-op; frees device memory too */

/* host → device; *bytes = what the copy moved (the footprint on CPU, where
 * nothing is copied).  Idempotent.  On failure (device OOM) the module is
 * left on the host, as it was. */
eh_status eh_torch_module_to_device(eh_torch_module *m, int64_t *bytes, eh_error *err);
/* device → host: the module's tensors point back into the host buffer and
 * the device buffer is freed (and the caching allocator's cache emptied). */
eh_status eh_torch_module_off_device(eh_torch_module *m, eh_error *err);

int64_t eh_torch_module_footprint(const eh_torch_module *m);   /* bytes of all tensors in their dtypes */
int eh_torch_module_tensor_count(const eh_torch_module *m);
int eh_torch_module_on_device(const eh_torch_module *m);       /* 1 between to_device and off_device */
eh_torch_host_kind eh_torch_module_host_kind(const eh_torch_module *m);
/* 1 when forward's text argument is List[str] (one text per batch item);
 * 0 when it is str (a batch must share one text). */
int eh_torch_module_text_is_list(const eh_torch_module *m);

/* Editor: images are n float32 CHW planes in [0,1], contiguous as
 * [n,3,h,w]; texts[n] (with a str signature all must be equal).  On success
 * *out is malloc'd float32 [n,3,*oh,*ow] (caller frees). */
eh_status eh_torch_module_edit(eh_torch_module *m, const float *images, int n, int h, int w, const char *const *texts,
                               float **out, int *oh, int *ow, eh_error *err);

/* Judge: edited [n,3,h,w], original [n,3,h2,w2], prompts[n].  out has room
 * for n*11 doubles; *k is 1 (a score each) or 11 (logits over "0".."10"). */
eh_status eh_torch_module_judge(eh_torch_module *m, const float *edited, int h, int w, const float *original, int h2,
                                int w2, int n, const char *const *prompts, double *out, int *k, eh_error *err);

/* ---- Qwen3-VL (native judge; host/models/backend_native.c) ------------------------
 * The transformers Qwen3VL / Qwen3VLMoe ForConditionalGeneration forward,
 * written in libtorch ops: vision tower (patch embed, learned position
 * table resampled bilinearly, 2-D rotary, blocks, merger, deepstack
 * mergers), multimodal rotary positions, the decoder (dense SwiGLU or MoE
 * experts) and the LM head.  Weights come from safetensors (an
 * eh_safetensors, declared in evalhost/safetensors.h) and live in the same
 * flat host buffer as a TorchScript module's, so residency is the
 * eh_torch_module_* calls on eh_qwen3vl_module(). */
typedef struct eh_qwen3vl eh_qwen3vl;
struct eh_st_tensor;

typedef struct eh_qwen3vl_config {
    /* text: config.json text_config */
    int vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    double rms_norm_eps, rope_theta;
    int mrope_section[3];
    int tie_word_embeddings;
    int num_experts, experts_per_tok, moe_intermediate_size, decoder_sparse_step;   /* num_experts 0: dense */
    unsigned char mlp_only[256];          /* layers that keep a dense MLP in an MoE model */
    /* vision: config.json vision_config */
    int v_depth, v_hidden, v_intermediate, v_heads, patch_size, temporal_patch_size, merge_size, v_out;
    int num_position_embeddings;
    double v_rope_theta;
    int deepstack[16], n_deepstack;
    int image_token_id;
    /* Qwen2.5-VL's vision (the editor's text encoder): windowed attention
     * except in the fullatt blocks */
    int window_size, fullatt[32], n_fullatt;
} eh_qwen3vl_config;

/* Reads a Qwen3-VL config.json (model_type qwen3_vl or qwen3_vl_moe;
 * missing keys take transformers' defaults).  Defined in
 * host/models/backend_native.c.  EH_EIO, EH_EFORMAT (other model types). */
eh_status eh_qwen3vl_config_load(const char *path, eh_qwen3vl_config *cfg, eh_error *err);

/* One prompt: its token ids (image pads already expanded) and its images
 * in order, each rows x (3*temporal_patch*patch^2) floats (eh_vlm_patches). */
typedef struct eh_qwen3vl_item {
    const int32_t *ids;
    int64_t n_ids;
    int n_images;
    const float *const *patches;
    const int *grid_thw;                  /* 3 per image */
} eh_qwen3vl_item;

/* Reads the weights (every tensor under model. and lm_head. among the n
 * safetensors tensors, e.g. eh_safetensors_at(st, 0..count-1)) into the
 * host copy in opt->dtype; checks each one the config needs (present,
 * shape).  EH_EFORMAT names a missing or misshapen tensor.  (The shim
 * reads the structs only, calling nothing of safetensors.c: the torch
 * library links after the core.) */
eh_status eh_qwen3vl_load(const eh_qwen3vl_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                          const eh_torch_options *opt, eh_qwen3vl **out, eh_error *err);
void eh_qwen3vl_free(eh_qwen3vl *q);                       /* NULL is a no-op */
eh_torch_module *eh_qwen3vl_module(eh_qwen3vl *q);         /* for to_device/off_device/footprint */

/* One batched prefill (right-padded, causal: each item's logits equal its
 * own run).  out[i*n_cand + j]: the logit of token cand[j] at item i's
 * last position (-inf for a cand[j] < 0).  full, if not NULL, gets the
 * whole last-position row, n x vocab_size floats. */
eh_status eh_qwen3vl_score(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, const int32_t *cand, int n_cand,
                           double *out, float *full, eh_error *err);

/* Greedy decoding of one prompt with a KV cache (transformers' generate
 * with do_sample=False): up to max_new token ids into out (room for
 * max_new), stopping after the first id in stop[n_stop]; *n_out = count. */
eh_status eh_qwen3vl_generate(eh_qwen3vl *q, const eh_qwen3vl_item *item, int max_new, const int32_t *stop,
                              int n_stop, int32_t *out, int *n_out, eh_error *err);


/* ---- Qwen-Image VAE (native editor, issue 14; not reachable from configs
 * until the whole edit runs) -------------------------------------------------
 * diffusers' AutoencoderKLQwenImage for single images (one frame): every
 * causal 3-D convolution of a one-frame input only meets its last temporal
 * kernel slice (the earlier ones see the causal zero padding), so the load
 * keeps that slice as a 2-D kernel and the forward is 2-D throughout; the
 * temporal resampling convolutions (time_conv), which a first frame never
 * runs, are not loaded. */
typedef struct eh_qwenimage_vae eh_qwenimage_vae;

#define EH_QWENIMAGE_MAX_LEVELS 8
#define EH_QWENIMAGE_MAX_Z 64

typedef struct eh_qwenimage_vae_config {
    int base_dim, z_dim, num_res_blocks;
    int n_levels;                                   /* len(dim_mult) */
    int dim_mult[EH_QWENIMAGE_MAX_LEVELS];
    float latents_mean[EH_QWENIMAGE_MAX_Z], latents_std[EH_QWENIMAGE_MAX_Z];
} eh_qwenimage_vae_config;

/* Reads vae/config.json (_class_name AutoencoderKLQwenImage; missing keys
 * take diffusers' defaults).  Defined in host/models/qwenimage.c.  EH_EIO,
 * EH_EFORMAT (another class, attn_scales, sizes out of range). */
eh_status eh_qwenimage_vae_config_load(const char *path, eh_qwenimage_vae_config *cfg, eh_error *err);

/* Weights: the tensors under encoder., decoder., quant_conv. and
 * post_quant_conv. among the n given (vae/diffusion_pytorch_model.safetensors),
 * into the host copy in opt->dtype; every one the config needs is checked
 * (present, shape) by a dry pass.  EH_EFORMAT names the tensor. */
eh_status eh_qwenimage_vae_load(const eh_qwenimage_vae_config *cfg, const struct eh_st_tensor *const *tensors,
                                size_t n, const eh_torch_options *opt, eh_qwenimage_vae **out, eh_error *err);
void eh_qwenimage_vae_free(eh_qwenimage_vae *v);                 /* NULL is a no-op */
eh_torch_module *eh_qwenimage_vae_module(eh_qwenimage_vae *v);   /* residency */
int eh_qwenimage_vae_scale(const eh_qwenimage_vae *v);           /* pixels per latent: 2^(levels-1) */

/* images: n float32 [3,h,w] planes in [-1,1] (the pipeline's preprocessing),
 * h and w multiples of the scale.  latents (room for n*z_dim*(h/s)*(w/s)):
 * the posterior's mode, normalised as QwenImageEditPipeline does,
 * (z - latents_mean) / latents_std. */
eh_status eh_qwenimage_vae_encode(eh_qwenimage_vae *v, const float *images, int n, int h, int w, float *latents,
                                  eh_error *err);
/* latents: n normalised [z_dim,lh,lw]; images (room for n*3*(lh*s)*(lw*s))
 * in [-1,1], clamped as diffusers clamps. */
eh_status eh_qwenimage_vae_decode(eh_qwenimage_vae *v, const float *latents, int n, int lh, int lw, float *images,
                                  eh_error *err);


/* ---- Qwen-Image MMDiT (native editor, issue 14; not reachable from configs)
 * diffusers' QwenImageTransformer2DModel: dual-stream blocks (timestep
 * modulation, QK RMSNorm, joint attention over text then image tokens),
 * the 3-D rotary positions over several images (the noised latents, then
 * the reference images) and the text rotary after them. */
typedef struct eh_qwenimage_dit eh_qwenimage_dit;

typedef struct eh_qwenimage_dit_config {
    int patch_size, in_channels, out_channels, num_layers, head_dim, num_heads, joint_attention_dim;
    int axes_dims_rope[3];
    /* Edit-2511: the reference images' tokens are modulated with the
     * embedding of timestep 0, the noised latents' with the step's */
    int zero_cond_t;
} eh_qwenimage_dit_config;

/* Reads transformer/config.json (_class_name QwenImageTransformer2DModel).
 * Defined in host/models/qwenimage.c.  EH_EFORMAT for the variants not supported
 * (use_additional_t_cond, use_layer3d_rope, guidance_embeds). */
eh_status eh_qwenimage_dit_config_load(const char *path, eh_qwenimage_dit_config *cfg, eh_error *err);

/* Weights: every tensor the config needs, checked by name and shape
 * (EH_EFORMAT names the tensor), into the host copy in opt->dtype. */
eh_status eh_qwenimage_dit_load(const eh_qwenimage_dit_config *cfg, const struct eh_st_tensor *const *tensors,
                                size_t n, const eh_torch_options *opt, eh_qwenimage_dit **out, eh_error *err);
void eh_qwenimage_dit_free(eh_qwenimage_dit *d);                 /* NULL is a no-op */
eh_torch_module *eh_qwenimage_dit_module(eh_qwenimage_dit *d);   /* residency */
/* The weights' names (sorted), e.g. to map a LoRA's flattened names. */
int eh_qwenimage_dit_weight_count(const eh_qwenimage_dit *d);
const char *eh_qwenimage_dit_weight_name(const eh_qwenimage_dit *d, int i);   /* NULL past the end */
/* A LoRA pair merged into the host copy: module.weight += scale * up @ down
 * (float32, rounded once to the copy's dtype).  down [r, in], up [out, r].
 * Only before the first to_device (EH_ESTATE after); EH_EFORMAT names a
 * module the transformer lacks or shapes that do not fit. */
eh_status eh_qwenimage_dit_add_lora(eh_qwenimage_dit *d, const char *module, const struct eh_st_tensor *down,
                                    const struct eh_st_tensor *up, double scale, eh_error *err);

/* One transformer call for n items sharing one layout:
 *   hidden  [n, tokens, in_channels]: packed latents, the images of
 *           shapes[] (n_shapes triples frames, h, w in patches) in order,
 *           tokens = the sum of their products;
 *   text    [n, txt_len, joint_attention_dim], mask [n, txt_len] (nonzero:
 *           a real token; NULL: all real);
 *   timestep[n]: what the pipeline passes the transformer (t / 1000).
 * out: [n, tokens, patch^2 * out_channels] float32 (caller's room).
 * With zero_cond_t the first image (shapes[0..2]) is the noised one. */
eh_status eh_qwenimage_dit_forward(eh_qwenimage_dit *d, const float *hidden, int n, const int *shapes, int n_shapes,
                                   const float *text, const int32_t *mask, int txt_len, const float *timestep,
                                   float *out, eh_error *err);


/* ---- Qwen-Image: the Qwen2.5-VL text encoder (issue 14) ---------------------
 * As QwenImageEditPipeline._get_qwen_prompt_embeds runs it, text only for
 * now (no vision tower yet: a prompt's image pads are embedded as plain
 * tokens, as the text encoder does without pixel_values).  The decoder is
 * the Qwen3-VL judge's with q/k/v biases and no QK norm. */
typedef struct eh_qwenimage_te eh_qwenimage_te;

/* Reads text_encoder/config.json (model_type qwen2_5_vl; text keys nested
 * in text_config or flat) into the text fields of an eh_qwen3vl_config.
 * Defined in host/models/qwenimage.c.  EH_EIO, EH_EFORMAT. */
eh_status eh_qwenimage_te_config_load(const char *path, eh_qwen3vl_config *cfg, eh_error *err);

/* The language model's weights (model.layers.* as Qwen-Image-Edit stores
 * them, or model.language_model.layers.*), checked by name and shape
 * (EH_EFORMAT names the tensor); vision weights and lm_head are skipped. */
eh_status eh_qwenimage_te_load(const eh_qwen3vl_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                               const eh_torch_options *opt, eh_qwenimage_te **out, eh_error *err);
void eh_qwenimage_te_free(eh_qwenimage_te *te);                 /* NULL is a no-op */
eh_torch_module *eh_qwenimage_te_module(eh_qwenimage_te *te);   /* residency */

/* n prompts of L ids each, right-padded (mask: nonzero for the real
 * tokens, all before the padding; NULL: all real): the last layer's hidden
 * states (after the final norm) of each prompt's real tokens from `drop`
 * on, zero-padded to *out_len = the longest - drop, as float32
 * [n, *out_len, hidden] in out (room for n * (L - drop) * hidden), and
 * their mask [n, *out_len] in out_mask (room for n * (L - drop)).  Every
 * prompt must be longer than drop.  EH_EINVAL for bad ids or masks. */
eh_status eh_qwenimage_te_encode(eh_qwenimage_te *te, const int32_t *ids, const int32_t *mask, int n, int L, int drop,
                                 float *out, int32_t *out_mask, int *out_len, eh_error *err);

/* One prompt with its images, as the pipeline encodes an edit prompt: ids
 * with each image's pads expanded (t*h*w/merge^2 image_token_id in a row,
 * one run per image, in order), patches the processor's pixel_values of
 * all images one after the other (t*h*w rows of 3*temporal*patch^2 each)
 * for grid_thw {t, h, w} per image; out [n_ids - drop, hidden] float32.
 * mrope nonzero: the multimodal rotary positions of get_rope_index (what
 * transformers 4.x computes from the ids); 0: positions 0..n_ids-1 on all
 * three axes, which is what diffusers 0.42.1 gets from transformers 5.x
 * (it does not pass the processor's mm_token_type_ids, without which
 * Qwen2_5_VLModel falls back to sequential positions). */
eh_status eh_qwenimage_te_encode_images(eh_qwenimage_te *te, const int32_t *ids, int n_ids, const float *patches,
                                        const int *grid_thw, int n_images, int drop, int mrope, float *out,
                                        eh_error *err);

/* ---- Qwen-Image pipeline pieces (issue 14) ----------------------------------
 * The initial noise exactly as QwenImageEditPipeline draws it with
 * generator=torch.Generator("cpu").manual_seed(seed): randn of shape
 * [n, 1, channels, lh, lw] on the CPU in `dtype`, then packed 2x2; out is
 * float32 [n, (lh/2)*(lw/2), channels*4].  lh and lw must be even.  (The
 * pipeline's other pieces, which need no libtorch: evalhost/qwenimage.h.) */
/* x[i] = float(dtype(x[i])): torch's rounding to bfloat16/float16 (a
 * no-op for float32), where the pipeline keeps a tensor in the model's dtype. */
eh_status eh_torch_round_floats(float *x, size_t n, const char *dtype, eh_error *err);

eh_status eh_qwenimage_noise(uint64_t seed, int n, int channels, int lh, int lw, const char *dtype, float *out,
                             eh_error *err);

#ifdef __cplusplus
}
#endif

#endif
