/* qwenimage.h — the Qwen-Image-Edit pipeline's pieces that need no libtorch
 * (issue 14), as QwenImageEditPipeline (diffusers 0.42.1) does them:
 * the input image's size and preprocessing, latent packing, true CFG.
 * Defined in host/models/qwenimage.c; the models are evalhost/qwenimage_vae.h,
 * qwenimage_dit.h and qwen25vl_text_encoder.h, their configs
 * evalhost/native_config.h, the scheduler evalhost/flowmatch.h. */
#ifndef EVALHOST_QWENIMAGE_H
#define EVALHOST_QWENIMAGE_H

#include <stddef.h>

#include "evalhost/error.h"
#include "evalhost/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* calculate_dimensions(1024 * 1024, width / height): about 1 MP, the
 * aspect kept, each side rounded (half to even, as Python) to 32. */
void eh_qwenimage_dimensions(int width, int height, int *out_w, int *out_h);
/* The same for another target area (Edit-2509's condition images: 384 * 384). */
void eh_qwenimage_dimensions_area(double area, int width, int height, int *out_w, int *out_h);

/* The pipeline's resize: img to eh_qwenimage_dimensions with Pillow's
 * LANCZOS (a copy when the size stays); NULL with err (EH_EINVAL for an
 * image too narrow to resize). */
eh_image *eh_qwenimage_resize(const eh_image *img, eh_error *err);
/* The same to eh_qwenimage_dimensions_area(area, ...). */
eh_image *eh_qwenimage_resize_area(const eh_image *img, double area, eh_error *err);
/* An RGB(A) image as float32 [3, h, w] planes 2 * (v / 255) - 1 (malloc'd). */
float *eh_qwenimage_planes(const eh_image *img, eh_error *err);

/* The VAE's input: img resized to eh_qwenimage_dimensions with Pillow's
 * LANCZOS (eh_image_resize), as float32 [3, *out_h, *out_w] planes
 * 2 * (v / 255) - 1.  malloc'd (caller frees); NULL with err on failure. */
float *eh_qwenimage_preprocess(const eh_image *img, int *out_w, int *out_h, eh_error *err);

/* _pack_latents / _unpack_latents for one frame, as index shuffles:
 * [n, c, h, w] <-> [n, (h/2)*(w/2), c*4]; h and w even. */
void eh_qwenimage_pack(const float *in, int n, int c, int h, int w, float *out);
void eh_qwenimage_unpack(const float *in, int n, int c, int h, int w, float *out);

/* True classifier-free guidance with the pipeline's norm rescaling, per
 * token of dim values: comb = neg + scale * (cond - neg), out = comb *
 * (|cond| / |comb|) (float32 values, norms accumulated in double). */
void eh_qwenimage_true_cfg(const float *cond, const float *neg, size_t tokens, int dim, float scale, float *out);

#ifdef __cplusplus
}
#endif

#endif
