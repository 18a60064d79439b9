/* qwenimage_vae.h — the native editor's VAE in libtorch (issue 14; defined
 * in host/models/torch/qwenimage_vae.cpp).
 * diffusers' AutoencoderKLQwenImage for single images (one frame): every
 * causal 3-D convolution of a one-frame input only meets its last temporal
 * kernel slice (the earlier ones see the causal zero padding), so the load
 * keeps that slice as a 2-D kernel and the forward is 2-D throughout; the
 * temporal resampling convolutions (time_conv), which a first frame never
 * runs, are not loaded. */
#ifndef EVALHOST_QWENIMAGE_VAE_H
#define EVALHOST_QWENIMAGE_VAE_H

#include "evalhost/native_config.h"
#include "evalhost/torch_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_qwenimage_vae eh_qwenimage_vae;
struct eh_st_tensor;

/* Weights: the tensors under encoder., decoder., quant_conv. and
 * post_quant_conv. among the n given (vae/diffusion_pytorch_model.safetensors),
 * into the host copy in opt->dtype; every one the config needs is checked
 * (present, shape) by a dry pass.  EH_EFORMAT names the tensor. */
eh_status eh_qwenimage_vae_load(const eh_qwenimage_vae_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                                const eh_torch_options *opt, eh_qwenimage_vae **out, eh_error *err);
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

#ifdef __cplusplus
}
#endif

#endif
