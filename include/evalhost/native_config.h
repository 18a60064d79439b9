/* native_config.h — the native models' configs as transformers and diffusers
 * write them (config.json, vae/, transformer/, text_encoder/ and
 * scheduler/ of a snapshot), read into plain structs the libtorch models
 * take (evalhost/qwen3vl.h, qwen25vl_text_encoder.h, qwenimage_vae.h,
 * qwenimage_dit.h) and the scheduler (evalhost/flowmatch.h).  Defined in
 * host/models/native_config.c; nothing here needs libtorch, so a build
 * without it still checks configs.  Missing keys take the reference
 * classes' defaults; every loader returns EH_EIO (file) or EH_EFORMAT
 * naming the file and the key. */
#ifndef EVALHOST_NATIVE_CONFIG_H
#define EVALHOST_NATIVE_CONFIG_H

#include "evalhost/error.h"
#include "evalhost/flowmatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Qwen3-VL (the native judge) and Qwen2.5-VL (the editor's text
 * encoder, which runs as a Qwen3-VL with features switched off) ---------- */
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

/* A Qwen3-VL config.json (model_type qwen3_vl or qwen3_vl_moe). */
eh_status eh_qwen3vl_config_load(const char *path, eh_qwen3vl_config *cfg, eh_error *err);

/* text_encoder/config.json (model_type qwen2_5_vl; text keys nested in
 * text_config or flat) into an eh_qwen3vl_config. */
eh_status eh_qwenimage_te_config_load(const char *path, eh_qwen3vl_config *cfg, eh_error *err);

/* ---- Qwen-Image VAE ------------------------------------------------------ */
#define EH_QWENIMAGE_MAX_LEVELS 8
#define EH_QWENIMAGE_MAX_Z 64

typedef struct eh_qwenimage_vae_config {
    int base_dim, z_dim, num_res_blocks;
    int n_levels;                                   /* len(dim_mult) */
    int dim_mult[EH_QWENIMAGE_MAX_LEVELS];
    float latents_mean[EH_QWENIMAGE_MAX_Z], latents_std[EH_QWENIMAGE_MAX_Z];
} eh_qwenimage_vae_config;

/* vae/config.json (_class_name AutoencoderKLQwenImage).  EH_EFORMAT also
 * for attn_scales and sizes out of range. */
eh_status eh_qwenimage_vae_config_load(const char *path, eh_qwenimage_vae_config *cfg, eh_error *err);

/* ---- Qwen-Image MMDiT ---------------------------------------------------- */
typedef struct eh_qwenimage_dit_config {
    int patch_size, in_channels, out_channels, num_layers, head_dim, num_heads, joint_attention_dim;
    int axes_dims_rope[3];
    /* Edit-2511: the reference images' tokens are modulated with the
     * embedding of timestep 0, the noised latents' with the step's */
    int zero_cond_t;
} eh_qwenimage_dit_config;

/* transformer/config.json (_class_name QwenImageTransformer2DModel).
 * EH_EFORMAT for the variants not supported (use_additional_t_cond,
 * use_layer3d_rope, guidance_embeds). */
eh_status eh_qwenimage_dit_config_load(const char *path, eh_qwenimage_dit_config *cfg, eh_error *err);

/* ---- the scheduler ------------------------------------------------------- */
/* scheduler/scheduler_config.json (_class_name
 * FlowMatchEulerDiscreteScheduler).  EH_EFORMAT for the options not written
 * in flowmatch.c (karras/exponential/beta sigmas, invert_sigmas,
 * stochastic_sampling). */
eh_status eh_flowmatch_config_load(const char *path, eh_flowmatch_config *cfg, eh_error *err);

#ifdef __cplusplus
}
#endif

#endif
