/* vlm_pre.c — Qwen-VL image preprocessing, step for step as transformers'
 * Qwen2VLImageProcessorPil (what AutoImageProcessor gives without
 * torchvision): smart_resize, Pillow 13's bicubic on uint8, float64 rescale cast to
 * float32, float32 normalise, patchify. */
#include "evalhost/vlm_pre.h"
#include "evalhost/image_rgb.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VLM_MAX_ASPECT 200      /* smart_resize refuses beyond this ratio */
#define VLM_MAX_CONFIG (1 << 20) /* bytes of preprocessor_config.json */

eh_vlm_config eh_vlm_default_config(void)
{
    eh_vlm_config c = {
        .patch_size = 14,
        .temporal_patch_size = 2,
        .merge_size = 2,
        .min_pixels = 56 * 56,
        .max_pixels = 28 * 28 * 1280,
        .do_resize = 1,
        .do_rescale = 1,
        .do_normalize = 1,
        .rescale_factor = 1.0 / 255.0,
        .image_mean = { 0.48145466f, 0.4578275f, 0.40821073f },
        .image_std = { 0.26862954f, 0.26130258f, 0.27577711f },
    };
    return c;
}

/* ---------------------------------------------------------------- config */

static int num_of(const eh_node *n, double *out)
{
    if (!n)
        return 0;
    if (n->type == EH_NODE_INT) {
        *out = (double)n->u.integer;
        return 1;
    }
    if (n->type == EH_NODE_FLOAT) {
        *out = n->u.number;
        return 1;
    }
    return -1;
}

static eh_status get_int(const eh_node *map, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *name,
                         eh_error *err)
{
    double v;
    int r = num_of(eh_node_get(map, key), &v);
    if (r == 0)
        return EH_OK;
    if (r < 0 || v != floor(v) || v < (double)lo || v > (double)hi)
        return eh_fail(err, EH_EINVAL, "%s: %s must be an integer in [%lld, %lld]", name, key, (long long)lo,
                       (long long)hi);
    *out = (int64_t)v;
    return EH_OK;
}

static eh_status get_bool(const eh_node *map, const char *key, int *out, const char *name, eh_error *err)
{
    const eh_node *n = eh_node_get(map, key);
    if (!n || n->type == EH_NODE_NULL)
        return EH_OK;
    if (n->type != EH_NODE_BOOL)
        return eh_fail(err, EH_EINVAL, "%s: %s must be a boolean", name, key);
    *out = n->u.boolean;
    return EH_OK;
}

static eh_status get_triple(const eh_node *map, const char *key, float out[3], int positive, const char *name,
                            eh_error *err)
{
    const eh_node *n = eh_node_get(map, key);
    if (!n || n->type == EH_NODE_NULL)
        return EH_OK;
    double v;
    if (num_of(n, &v) > 0) {
        out[0] = out[1] = out[2] = (float)v;
    } else if (n->type == EH_NODE_SEQ && n->u.list.count == 3) {
        for (int i = 0; i < 3; i++) {
            if (num_of(n->u.list.items[i], &v) <= 0)
                return eh_fail(err, EH_EINVAL, "%s: %s[%d] is not a number", name, key, i + 1);
            out[i] = (float)v;
        }
    } else {
        return eh_fail(err, EH_EINVAL, "%s: %s must be a number or a list of 3", name, key);
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(out[i]) || (positive && !(out[i] > 0)))
            return eh_fail(err, EH_EINVAL, "%s: %s[%d] must be %s", name, key, i + 1, positive ? "positive" : "finite");
    return EH_OK;
}

eh_status eh_vlm_config_from_node(const eh_node *m, const char *name, eh_vlm_config *cfg, eh_error *err)
{
    *cfg = eh_vlm_default_config();
    if (!m || m->type != EH_NODE_MAP)
        return eh_fail(err, EH_EINVAL, "%s: not a preprocessor config (not an object)", name);
    int64_t ps = cfg->patch_size, tps = cfg->temporal_patch_size, ms = cfg->merge_size;
    int64_t minp = cfg->min_pixels, maxp = cfg->max_pixels, resample = 3;
    const eh_node *size = eh_node_get(m, "size");
    eh_status st;
    if (size && size->type == EH_NODE_MAP) {
        if ((st = get_int(size, "shortest_edge", 1, INT64_C(1) << 40, &minp, name, err)) ||
            (st = get_int(size, "longest_edge", 1, INT64_C(1) << 40, &maxp, name, err)) ||
            (st = get_int(size, "min_pixels", 1, INT64_C(1) << 40, &minp, name, err)) ||
            (st = get_int(size, "max_pixels", 1, INT64_C(1) << 40, &maxp, name, err)))
            return st;
    } else if (size && size->type != EH_NODE_NULL) {
        return eh_fail(err, EH_EINVAL, "%s: size must be an object {shortest_edge, longest_edge}", name);
    }
    if ((st = get_int(m, "min_pixels", 1, INT64_C(1) << 40, &minp, name, err)) ||
        (st = get_int(m, "max_pixels", 1, INT64_C(1) << 40, &maxp, name, err)) ||
        (st = get_int(m, "patch_size", 1, 1024, &ps, name, err)) ||
        (st = get_int(m, "temporal_patch_size", 1, 64, &tps, name, err)) ||
        (st = get_int(m, "merge_size", 1, 64, &ms, name, err)) ||
        (st = get_int(m, "resample", 0, 5, &resample, name, err)) ||
        (st = get_bool(m, "do_resize", &cfg->do_resize, name, err)) ||
        (st = get_bool(m, "do_rescale", &cfg->do_rescale, name, err)) ||
        (st = get_bool(m, "do_normalize", &cfg->do_normalize, name, err)) ||
        (st = get_triple(m, "image_mean", cfg->image_mean, 0, name, err)) ||
        (st = get_triple(m, "image_std", cfg->image_std, 1, name, err)))
        return st;
    if (resample != 3)
        return eh_fail(err, EH_EFORMAT, "%s: resample %lld is not supported (only 3, bicubic)", name,
                       (long long)resample);
    double rf;
    int r = num_of(eh_node_get(m, "rescale_factor"), &rf);
    if (r < 0 || (r > 0 && !(rf > 0 && isfinite(rf))))
        return eh_fail(err, EH_EINVAL, "%s: rescale_factor must be a positive number", name);
    if (r > 0)
        cfg->rescale_factor = rf;
    if (minp > maxp)
        return eh_fail(err, EH_EINVAL, "%s: min_pixels %lld exceeds max_pixels %lld", name, (long long)minp,
                       (long long)maxp);
    if (ps * ms > 4096)
        return eh_fail(err, EH_EINVAL, "%s: patch_size*merge_size too large", name);
    cfg->patch_size = (int)ps;
    cfg->temporal_patch_size = (int)tps;
    cfg->merge_size = (int)ms;
    cfg->min_pixels = minp;
    cfg->max_pixels = maxp;
    return EH_OK;
}

/* cJSON → eh_node (objects, arrays, numbers, bools, strings). */
static eh_node *from_cjson(const cJSON *j, int depth)
{
    if (depth > 32)
        return NULL;
    eh_node *n = NULL;
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        n = eh_node_new(cJSON_IsObject(j) ? EH_NODE_MAP : EH_NODE_SEQ);
        const cJSON *it;
        cJSON_ArrayForEach (it, j) {
            eh_node *c = from_cjson(it, depth + 1);
            if (!n || !c || (cJSON_IsObject(j) ? eh_node_set(n, it->string, c) : eh_node_append(n, c))) {
                if (n && !c) {
                    eh_node_free(n);
                    return NULL;
                }
                eh_node_free(n);
                return NULL;
            }
        }
    } else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9e15) {
            n = eh_node_new(EH_NODE_INT);
            if (n)
                n->u.integer = (int64_t)v;
        } else {
            n = eh_node_new(EH_NODE_FLOAT);
            if (n)
                n->u.number = v;
        }
    } else if (cJSON_IsBool(j)) {
        n = eh_node_new(EH_NODE_BOOL);
        if (n)
            n->u.boolean = cJSON_IsTrue(j);
    } else if (cJSON_IsString(j)) {
        n = eh_node_new_string(j->valuestring, strlen(j->valuestring));
    } else {
        n = eh_node_new(EH_NODE_NULL);
    }
    return n;
}

eh_status eh_vlm_config_load(const char *path, eh_vlm_config *cfg, eh_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(VLM_MAX_CONFIG + 1);
    size_t n = buf ? fread(buf, 1, VLM_MAX_CONFIG + 1, f) : 0;
    fclose(f);
    if (!buf)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
    if (n > VLM_MAX_CONFIG) {
        free(buf);
        return eh_fail(err, EH_ELIMIT, "%s: larger than %d bytes", path, VLM_MAX_CONFIG);
    }
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j)
        return eh_fail(err, EH_EINVAL, "%s: not valid JSON", path);
    eh_node *node = from_cjson(j, 0);
    cJSON_Delete(j);
    if (!node)
        return eh_fail(err, EH_EINVAL, "%s: too deeply nested or out of memory", path);
    eh_status st = eh_vlm_config_from_node(node, path, cfg, err);
    eh_node_free(node);
    return st;
}

/* ----------------------------------------------------------- smart_resize */

eh_status eh_vlm_smart_resize(int height, int width, const eh_vlm_config *cfg, int *out_h, int *out_w, eh_error *err)
{
    if (height < 2 || width < 2)
        return eh_fail(err, EH_EINVAL, "vlm: image %dx%d is too small (each side must be at least 2 pixels)", width,
                       height);
    int hi = height > width ? height : width, lo = height > width ? width : height;
    if ((double)hi / lo > VLM_MAX_ASPECT)
        return eh_fail(err, EH_EINVAL, "vlm: image %dx%d: aspect ratio %.1f exceeds %d", width, height, (double)hi / lo,
                       VLM_MAX_ASPECT);
    double factor = (double)cfg->patch_size * cfg->merge_size;
    /* Python's round() is round-half-even: rint in the default mode */
    double h_bar = rint(height / factor) * factor, w_bar = rint(width / factor) * factor;
    if (h_bar * w_bar > (double)cfg->max_pixels) {
        double beta = sqrt((double)((int64_t)height * width) / (double)cfg->max_pixels);
        h_bar = fmax(factor, floor(height / beta / factor) * factor);
        w_bar = fmax(factor, floor(width / beta / factor) * factor);
    } else if (h_bar * w_bar < (double)cfg->min_pixels) {
        double beta = sqrt((double)cfg->min_pixels / (double)((int64_t)height * width));
        h_bar = ceil(height * beta / factor) * factor;
        w_bar = ceil(width * beta / factor) * factor;
    }
    if (h_bar > 65536 || w_bar > 65536 || h_bar < factor || w_bar < factor)
        return eh_fail(err, EH_EINVAL, "vlm: image %dx%d resizes to %.0fx%.0f, outside what the processor can take",
                       width, height, w_bar, h_bar);
    *out_h = (int)h_bar;
    *out_w = (int)w_bar;
    return EH_OK;
}

/* ------------------------------------------------------ PIL bicubic resize */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* PIL's precompute_coeffs for box [0, in) and normalize_coeffs_8bpc:
 * per output index, the first input index, the count, and fixed-point
 * weights (ksize each).  Returns ksize or 0 on OOM. */
static int coeffs(int in_size, int out_size, int **bounds_out, int32_t **kk_out)
{
    double scale = (double)(float)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc((size_t)ksize * sizeof *w);
    int32_t *kk = malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!w || !kk || !bounds) {
        free(w);
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < ksize; x++) {
            double k = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            kk[xx * ksize + x] =
                k < 0 ? (int32_t)(-0.5 + k * (1 << PRECISION_BITS)) : (int32_t)(0.5 + k * (1 << PRECISION_BITS));
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Horizontal pass: rows [y0, y0+rows) of src (w wide) → out_w wide. */
static void pass_h(const uint8_t *src, int w, int ch, int y0, int rows, int out_w, const int *bounds, const int32_t *kk,
                   int ksize, uint8_t *dst)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)(y + y0) * (size_t)w * (size_t)ch;
        uint8_t *orow = dst + (size_t)y * (size_t)out_w * (size_t)ch;
        for (int xx = 0; xx < out_w; xx++) {
            const int32_t *k = kk + (size_t)xx * (size_t)ksize;
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            for (int c = 0; c < ch; c++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++)
                    ss += row[(size_t)(x + xmin) * (size_t)ch + (size_t)c] * k[x];
                orow[(size_t)xx * (size_t)ch + (size_t)c] = clip8(ss);
            }
        }
    }
}

/* Vertical pass: src (w wide) → out_h rows. */
static void pass_v(const uint8_t *src, int w, int ch, int out_h, const int *bounds, const int32_t *kk, int ksize,
                   uint8_t *dst)
{
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = kk + (size_t)yy * (size_t)ksize;
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        uint8_t *orow = dst + (size_t)yy * (size_t)w * (size_t)ch;
        for (int xc = 0; xc < w * ch; xc++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++)
                ss += src[(size_t)(y + ymin) * (size_t)w * (size_t)ch + (size_t)xc] * k[y];
            orow[xc] = clip8(ss);
        }
    }
}

uint8_t *eh_vlm_resize_bicubic(const uint8_t *src, int w, int h, int ch, int out_w, int out_h)
{
    int *bv = NULL, *bh = NULL;
    int32_t *kv = NULL, *kh = NULL;
    uint8_t *tmp = NULL, *out = NULL;
    size_t out_bytes = (size_t)out_w * (size_t)out_h * (size_t)ch;
    if (out_w == w && out_h == h) {
        out = malloc(out_bytes);
        if (out)
            memcpy(out, src, out_bytes);
        return out;
    }
    int ksv = coeffs(h, out_h, &bv, &kv), ksh = ksv ? coeffs(w, out_w, &bh, &kh) : 0;
    out = ksh ? malloc(out_bytes) : NULL;
    if (!out)
        goto done;
    if (out_w == w) {
        pass_v(src, w, ch, out_h, bv, kv, ksv, out);
        goto done;
    }
    if (out_h == h) {
        pass_h(src, w, ch, 0, h, out_w, bh, kh, ksh, out);
        goto done;
    }
    /* Pillow 13 (Resample.c, ImagingResampleInner) runs the vertical pass
     * first when the height shrinks by more than twice what the width
     * does; the orders round differently in between, so ours follows */
    if (h - out_h > 0 && h - out_h > (w - out_w) * 2) {
        tmp = malloc((size_t)w * (size_t)out_h * (size_t)ch);
        if (!tmp) {
            free(out);
            out = NULL;
            goto done;
        }
        pass_v(src, w, ch, out_h, bv, kv, ksv, tmp);
        pass_h(tmp, w, ch, 0, out_h, out_w, bh, kh, ksh, out);
    } else {    /* horizontal first, over the rows the vertical pass reads */
        int y_first = bv[0], y_rows = bv[out_h * 2 - 2] + bv[out_h * 2 - 1] - y_first;
        tmp = malloc((size_t)out_w * (size_t)y_rows * (size_t)ch);
        if (!tmp) {
            free(out);
            out = NULL;
            goto done;
        }
        pass_h(src, w, ch, y_first, y_rows, out_w, bh, kh, ksh, tmp);
        for (int i = 0; i < out_h; i++)
            bv[i * 2] -= y_first;
        pass_v(tmp, out_w, ch, out_h, bv, kv, ksv, out);
    }
done:
    free(bv);
    free(kv);
    free(bh);
    free(kh);
    free(tmp);
    return out;
}

/* ------------------------------------------------------------ preprocess */

void eh_vlm_patches_free(eh_vlm_patches *p)
{
    if (!p)
        return;
    free(p->data);
    free(p);
}

eh_vlm_patches *eh_vlm_preprocess(const eh_image *img, const eh_vlm_config *cfg, eh_error *err)
{
    if (!img || !img->pixels || (img->channels != 3 && img->channels != 4)) {
        eh_fail(err, EH_EINVAL, "vlm: need an RGB image");
        return NULL;
    }
    int rh = img->height, rw = img->width;
    if (eh_vlm_smart_resize(img->height, img->width, cfg, &rh, &rw, err) != EH_OK)
        return NULL;
    if (!cfg->do_resize) {
        rh = img->height;
        rw = img->width;
    }
    int p = cfg->patch_size, m = cfg->merge_size, T = cfg->temporal_patch_size;
    if (rh % (p * m) || rw % (p * m)) {
        eh_fail(err, EH_EINVAL, "vlm: image %dx%d is not a multiple of %d (do_resize is off)", rw, rh, p * m);
        return NULL;
    }
    /* RGBA: composited onto white before the resize, as the processor's
     * convert_to_rgb does (transformers' image_transforms.py) */
    const uint8_t *rgb = img->pixels;
    uint8_t *rgb_owned = NULL;
    eh_image *flat = NULL;
    if (img->channels == 4) {
        flat = eh_image_composite_white(img, err);
        if (!flat)
            return NULL;
        rgb = rgb_owned = flat->pixels;   /* owned through flat */
        flat->pixels = NULL;
        eh_image_free(flat);
    }
    uint8_t *resized = NULL;
    if (rh != img->height || rw != img->width) {
        resized = eh_vlm_resize_bicubic(rgb, img->width, img->height, 3, rw, rh);
        free(rgb_owned);
        rgb_owned = NULL;
        if (!resized) {
            eh_fail(err, EH_ENOMEM, "vlm: out of memory resizing to %dx%d", rw, rh);
            return NULL;
        }
        rgb = resized;
    }
    /* per byte value and channel: the float the processor makes of it */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            lut[c][v] = cfg->do_normalize ? (x - cfg->image_mean[c]) / cfg->image_std[c] : x;
        }
    int gh = rh / p, gw = rw / p;
    eh_vlm_patches *out = calloc(1, sizeof *out);
    int64_t dim = 3LL * T * p * p, rows = (int64_t)gh * gw;
    if (out)
        out->data = malloc((size_t)(rows * dim) * sizeof(float));
    if (!out || !out->data) {
        free(out);
        free(resized);
        free(rgb_owned);
        eh_fail(err, EH_ENOMEM, "vlm: out of memory for %lld patches", (long long)rows);
        return NULL;
    }
    /* row = ((bh*(gw/m) + bw)*m + mh)*m + mw; column = ((c*T + t)*p + ph)*p + pw */
    float *dst = out->data;
    for (int bh = 0; bh < gh / m; bh++)
        for (int bw = 0; bw < gw / m; bw++)
            for (int mh = 0; mh < m; mh++)
                for (int mw = 0; mw < m; mw++) {
                    int y0 = (bh * m + mh) * p, x0 = (bw * m + mw) * p;
                    for (int c = 0; c < 3; c++)
                        for (int t = 0; t < T; t++)
                            for (int ph = 0; ph < p; ph++) {
                                const uint8_t *src = rgb + ((size_t)(y0 + ph) * (size_t)rw + (size_t)x0) * 3 + c;
                                for (int pw = 0; pw < p; pw++)
                                    *dst++ = lut[c][src[pw * 3]];
                            }
                }
    free(resized);
    free(rgb_owned);
    out->rows = rows;
    out->dim = dim;
    out->grid_t = 1;
    out->grid_h = gh;
    out->grid_w = gw;
    out->tokens = rows / ((int64_t)m * m);
    return out;
}
