/* qwen3vl.h — the native judge's model in libtorch (issue 12; defined in
 * host/models/torch/qwen3vl.cpp, driven by host/models/backend_native.c). */
#ifndef EVALHOST_QWEN3VL_H
#define EVALHOST_QWEN3VL_H

#include "evalhost/native_config.h"
#include "evalhost/torch_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The transformers Qwen3VL / Qwen3VLMoe ForConditionalGeneration forward,
 * written in libtorch ops: vision tower (patch embed, learned position
 * table resampled bilinearly, 2-D rotary, blocks, merger, deepstack
 * mergers), multimodal rotary positions, the decoder (dense SwiGLU or MoE
 * experts) and the LM head.  Weights come from safetensors (an
 * eh_safetensors, declared in evalhost/safetensors.h) and live in the same
 * flat host buffer as a TorchScript module's, so residency is the
 * eh_torch_module_* calls on eh_qwen3vl_module(). */
typedef struct eh_qwen3vl eh_qwen3vl;
struct eh_st_tensor;

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

/* The score tree's walk (score_tree.h) for n prompts: one batched prefill
 * with a KV cache, then one batched step over every node's path of every
 * item (each row attends to its own prompt's cache).  For item i and node
 * v (index i*n_nodes + v): logp = log P(token[v] | prompt, path to
 * parent[v]) (0 at the root), log_end = log P(a token not in cont |
 * prompt, path to v).  EH_EINVAL for a malformed tree. */
eh_status eh_qwen3vl_score_tree(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, const int32_t *token,
                                const int32_t *parent, int n_nodes, const int32_t *cont, int n_cont, double *logp,
                                double *log_end, eh_error *err);

/* Greedy decoding of one prompt with a KV cache (transformers' generate
 * with do_sample=False): up to max_new token ids into out (room for
 * max_new), stopping after the first id in stop[n_stop]; *n_out = count. */
eh_status eh_qwen3vl_generate(eh_qwen3vl *q, const eh_qwen3vl_item *item, int max_new, const int32_t *stop, int n_stop,
                              int32_t *out, int *n_out, eh_error *err);

#ifdef __cplusplus
}
#endif

#endif
