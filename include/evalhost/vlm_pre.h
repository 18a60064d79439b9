/* vlm_pre.h — the Qwen2-VL / Qwen2.5-VL / Qwen3-VL image processor, as
 * transformers' default (PIL backend) Qwen2VLImageProcessor computes it:
 * smart_resize to multiples of patch_size*merge_size within min/max
 * pixels, PIL's bicubic resample on 8-bit RGB, rescale and normalise in
 * float32, temporal duplication, and the patch layout the vision tower
 * reads.  Results match transformers bit for bit on RGB input. */
#ifndef EVALHOST_VLM_PRE_H
#define EVALHOST_VLM_PRE_H

#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/image.h"
#include "evalhost/node.h"

typedef struct eh_vlm_config {
    int patch_size;           /* pixels per patch side; default 14 (Qwen3-VL: 16) */
    int temporal_patch_size;  /* frames per patch (an image is repeated); default 2 */
    int merge_size;           /* patches merged per side into one token; default 2 */
    int64_t min_pixels;       /* size.shortest_edge / min_pixels; default 56*56 */
    int64_t max_pixels;       /* size.longest_edge / max_pixels; default 28*28*1280 */
    int do_resize, do_rescale, do_normalize;   /* default 1 */
    double rescale_factor;    /* default 1/255 */
    float image_mean[3];      /* default OpenAI CLIP mean */
    float image_std[3];       /* default OpenAI CLIP std */
} eh_vlm_config;

/* Qwen2-VL's defaults (the class attributes of the processor). */
eh_vlm_config eh_vlm_default_config(void);

/* Fills cfg from a preprocessor_config.json tree (defaults first; `size`
 * {shortest_edge, longest_edge} and then min_pixels/max_pixels override,
 * as the processor's __init__ does).  EH_EINVAL names a bad field,
 * EH_EFORMAT an unsupported option (resample other than bicubic). */
eh_status eh_vlm_config_from_node(const eh_node *cfg_node, const char *name, eh_vlm_config *cfg, eh_error *err);
/* Same, from a preprocessor_config.json file. */
eh_status eh_vlm_config_load(const char *path, eh_vlm_config *cfg, eh_error *err);

/* Qwen's smart_resize: *out_h, *out_w.  EH_EINVAL when the aspect ratio
 * exceeds 200 or a side is below 2 pixels. */
eh_status eh_vlm_smart_resize(int height, int width, const eh_vlm_config *cfg, int *out_h, int *out_w, eh_error *err);

typedef struct eh_vlm_patches {
    float *data;            /* rows x dim floats, row-major, owned */
    int64_t rows;           /* grid_t * grid_h * grid_w */
    int64_t dim;            /* 3 * temporal_patch_size * patch_size^2 */
    int grid_t, grid_h, grid_w;
    int64_t tokens;         /* <|image_pad|> tokens: rows / merge_size^2 */
} eh_vlm_patches;

/* Preprocesses one RGB image (RGBA: composited onto white first, as the
 * processor's convert_to_rgb does). */
eh_vlm_patches *eh_vlm_preprocess(const eh_image *img, const eh_vlm_config *cfg, eh_error *err);
void eh_vlm_patches_free(eh_vlm_patches *p);      /* NULL is a no-op */

/* PIL's Image.resize(..., BICUBIC) on interleaved 8-bit pixels (channels
 * 1..4); a new malloc'd buffer or NULL on OOM. */
uint8_t *eh_vlm_resize_bicubic(const uint8_t *src, int w, int h, int channels, int out_w, int out_h);

#endif
