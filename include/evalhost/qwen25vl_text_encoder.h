/* qwen25vl_text_encoder.h — the native editor's Qwen2.5-VL text encoder in
 * libtorch (issue 14; defined in host/models/torch/qwen25vl_text_encoder.cpp).
 * As QwenImageEditPipeline._get_qwen_prompt_embeds runs it: a prompt alone
 * (eh_qwenimage_te_encode) or with its images through Qwen2.5-VL's vision
 * tower (eh_qwenimage_te_encode_images).  The decoder is the Qwen3-VL
 * judge's with q/k/v biases and no QK norm. */
#ifndef EVALHOST_QWEN25VL_TEXT_ENCODER_H
#define EVALHOST_QWEN25VL_TEXT_ENCODER_H

#include "evalhost/native_config.h"
#include "evalhost/torch_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_qwenimage_te eh_qwenimage_te;
struct eh_st_tensor;

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

#ifdef __cplusplus
}
#endif

#endif
