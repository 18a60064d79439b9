/* qwenimage.c — the Qwen-Image-Edit pipeline's pieces that need no libtorch
 * (evalhost/qwenimage.h): the input image's size and preprocessing, latent
 * packing, true CFG.  The configs are read in native_config.c, the
 * scheduler is flowmatch.c, the models are in host/models/torch/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/error.h"
#include "evalhost/image.h"
#include "evalhost/qwenimage.h"

/* The one index map of packing: packed[b, i*(w/2) + j, ch*4 + di*2 + dj] is
 * planar[b, ch, 2i + di, 2j + dj]; unpack walks the same map the other way. */
static void pack_map(const float *in, int n, int c, int h, int w, float *out, int to_packed)
{
    size_t hw = (size_t)(h / 2) * (size_t)(w / 2);
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t tok = (size_t)(y / 2) * (size_t)(w / 2) + (size_t)(x / 2);
                    size_t k = (size_t)ch * 4 + (size_t)(y % 2) * 2 + (size_t)(x % 2);
                    size_t packed = ((size_t)b * hw + tok) * (size_t)c * 4 + k;
                    size_t planar = (((size_t)b * c + ch) * h + y) * w + x;
                    if (to_packed)
                        out[packed] = in[planar];
                    else
                        out[planar] = in[packed];
                }
}

void eh_qwenimage_pack(const float *in, int n, int c, int h, int w, float *out)
{
    pack_map(in, n, c, h, w, out, 1);
}

void eh_qwenimage_unpack(const float *in, int n, int c, int h, int w, float *out)
{
    pack_map(in, n, c, h, w, out, 0);
}

void eh_qwenimage_true_cfg(const float *cond, const float *neg, size_t tokens, int dim, float scale, float *out)
{
    for (size_t t = 0; t < tokens; t++) {
        const float *c = cond + t * (size_t)dim, *u = neg + t * (size_t)dim;
        float *o = out + t * (size_t)dim;
        double cn = 0, on = 0;
        for (int i = 0; i < dim; i++) {
            o[i] = u[i] + scale * (c[i] - u[i]);
            cn += (double)c[i] * c[i];
            on += (double)o[i] * o[i];
        }
        float r = (float)sqrt(cn) / (float)sqrt(on);
        for (int i = 0; i < dim; i++)
            o[i] = o[i] * r;
    }
}

void eh_qwenimage_dimensions(int width, int height, int *out_w, int *out_h)
{
    eh_qwenimage_dimensions_area(1024.0 * 1024.0, width, height, out_w, out_h);
}

void eh_qwenimage_dimensions_area(double area, int width, int height, int *out_w, int *out_h)
{
    double ratio = (double)width / (double)height;
    double w = sqrt(area * ratio), h = w / ratio;
    *out_w = (int)nearbyint(w / 32) * 32;   /* the default rounding mode: half to even, as Python's round */
    *out_h = (int)nearbyint(h / 32) * 32;
}

float *eh_qwenimage_planes(const eh_image *src, eh_error *err)
{
    int w = src->width, h = src->height, ch = src->channels;
    float *out = malloc(sizeof *out * 3 * (size_t)w * (size_t)h);
    if (!out) {
        eh_fail(err, EH_ENOMEM, "out of memory for a %dx%d image", w, h);
        return NULL;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                /* numpy: astype(float32) / 255.0 in float32; torch: 2.0 * x - 1.0 */
                float u = (float)src->pixels[((size_t)y * w + x) * ch + c] / 255.0f;
                out[((size_t)c * h + y) * w + x] = 2.0f * u - 1.0f;
            }
    return out;
}

eh_image *eh_qwenimage_resize(const eh_image *img, eh_error *err)
{
    return eh_qwenimage_resize_area(img, 1024.0 * 1024.0, err);
}

eh_image *eh_qwenimage_resize_area(const eh_image *img, double area, eh_error *err)
{
    int w, h;
    eh_qwenimage_dimensions_area(area, img->width, img->height, &w, &h);
    if (w < 32 || h < 32) {
        eh_fail(err, EH_EINVAL, "image %dx%d: too narrow for the editor (it would be resized to %dx%d)", img->width,
                img->height, w, h);
        return NULL;
    }
    return eh_image_resize(img, w, h, EH_FILTER_LANCZOS, err);   /* Pillow: a copy at the same size */
}

float *eh_qwenimage_preprocess(const eh_image *img, int *out_w, int *out_h, eh_error *err)
{
    eh_image *rs = eh_qwenimage_resize(img, err);
    float *out = rs ? eh_qwenimage_planes(rs, err) : NULL;
    if (out)
        *out_w = rs->width, *out_h = rs->height;
    eh_image_free(rs);
    return out;
}
