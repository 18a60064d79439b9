/* qwenimage_dit.h — the native editor's MMDiT in libtorch (issue 14;
 * defined in host/models/torch/qwenimage_dit.cpp), and the pipeline's
 * initial noise.
 * diffusers' QwenImageTransformer2DModel: dual-stream blocks (timestep
 * modulation, QK RMSNorm, joint attention over text then image tokens),
 * the 3-D rotary positions over several images (the noised latents, then
 * the reference images) and the text rotary after them. */
#ifndef EVALHOST_QWENIMAGE_DIT_H
#define EVALHOST_QWENIMAGE_DIT_H

#include "evalhost/native_config.h"
#include "evalhost/torch_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_qwenimage_dit eh_qwenimage_dit;
struct eh_st_tensor;

/* Weights: every tensor the config needs, checked by name and shape
 * (EH_EFORMAT names the tensor), into the host copy in opt->dtype. */
eh_status eh_qwenimage_dit_load(const eh_qwenimage_dit_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                                const eh_torch_options *opt, eh_qwenimage_dit **out, eh_error *err);
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

/* The initial noise exactly as QwenImageEditPipeline draws it with
 * generator=torch.Generator("cpu").manual_seed(seed): randn of shape
 * [n, 1, channels, lh, lw] on the CPU in `dtype`, then packed 2x2; out is
 * float32 [n, (lh/2)*(lw/2), channels*4].  lh and lw must be even.  (The
 * pipeline's other pieces, which need no libtorch: evalhost/qwenimage.h.) */
eh_status eh_qwenimage_noise(uint64_t seed, int n, int channels, int lh, int lw, const char *dtype, float *out,
                             eh_error *err);

#ifdef __cplusplus
}
#endif

#endif
