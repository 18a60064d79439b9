/* backend_builtin.c — models that need no weights, so every schedule runs
 * anywhere: editors `identity` and `imageops` (deterministic edits read
 * from the instruction) and the judge `metrics` (a 0–10 preservation score
 * from SSIM, PSNR and L1 against the original).  Options: delay_ms (per
 * item, to make runs long for kill/resume tests), load_ms (per load) and
 * footprint_mb (the device bytes it claims, so swap figures are non-zero). */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evalhost/backend.h"

typedef enum builtin_kind { BUILTIN_IDENTITY, BUILTIN_IMAGEOPS, BUILTIN_METRICS } builtin_kind;

typedef struct builtin_model {
    builtin_kind kind;
    int64_t delay_ms, load_ms;
    int64_t footprint;
} builtin_model;

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static eh_status builtin_open(eh_model *m, eh_error *err)
{
    builtin_model *b = calloc(1, sizeof *b);
    if (!b)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    m->impl = b;
    if (!strcmp(m->name, "identity"))
        b->kind = BUILTIN_IDENTITY;
    else if (!strcmp(m->name, "imageops"))
        b->kind = BUILTIN_IMAGEOPS;
    else if (!strcmp(m->name, "metrics"))
        b->kind = BUILTIN_METRICS;
    else
        return eh_fail(err, EH_EINVAL, "%s: unknown builtin model '%s' (known: identity, imageops, metrics)",
                       m->section, m->name);
    int is_editor = b->kind != BUILTIN_METRICS;
    if (is_editor != (m->role == EH_ROLE_EDITOR))
        return eh_fail(err, EH_EINVAL, "%s: builtin '%s' is %s, but this section is %s", m->section, m->name,
                       is_editor ? "an editor" : "a judge", m->role == EH_ROLE_EDITOR ? "an editor" : "a judge");
    b->delay_ms = eh_node_int(m->spec, "delay_ms", 0);
    b->load_ms = eh_node_int(m->spec, "load_ms", 0);
    b->footprint = (int64_t)(eh_node_num(m->spec, "footprint_mb", 0) * 1e6);
    snprintf(m->device, sizeof m->device, "cpu");   /* builtins always run on the CPU */
    return EH_OK;
}

static eh_status builtin_to_device(eh_model *m, int64_t *bytes, eh_error *err)
{
    (void)err;
    builtin_model *b = m->impl;
    sleep_ms(b->load_ms);
    *bytes = b->footprint;
    return EH_OK;
}

static eh_status builtin_off_device(eh_model *m, eh_error *err)
{
    (void)m;
    (void)err;
    return EH_OK;
}

static int64_t builtin_footprint(const eh_model *m)
{
    return ((const builtin_model *)m->impl)->footprint;
}

/* ---- imageops: the edits ---------------------------------------------- */

static uint8_t clamp_u8(double v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5);
}

static void op_tint(eh_image *img, const uint8_t rgb[3], double amount)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->pixels + i * (size_t)img->channels;
        for (int c = 0; c < 3; c++)
            p[c] = clamp_u8(p[c] * (1 - amount) + rgb[c] * amount);
    }
}

static void op_scale(eh_image *img, double f)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            img->pixels[i * (size_t)img->channels + (size_t)c] =
                clamp_u8(img->pixels[i * (size_t)img->channels + (size_t)c] * f);
}

static void op_gray(eh_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = img->pixels + i * (size_t)img->channels;
        uint8_t y = clamp_u8(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
        p[0] = p[1] = p[2] = y;
    }
}

static void op_invert(eh_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            img->pixels[i * (size_t)img->channels + (size_t)c] ^= 0xFF;
}

static void op_flip(eh_image *img, int vertical)
{
    int w = img->width, h = img->height, ch = img->channels;
    for (int y = 0; y < (vertical ? h / 2 : h); y++) {
        for (int x = 0; x < (vertical ? w : w / 2); x++) {
            uint8_t *a = img->pixels + ((size_t)y * w + x) * ch;
            uint8_t *b = vertical ? img->pixels + ((size_t)(h - 1 - y) * w + x) * ch
                                  : img->pixels + ((size_t)y * w + (w - 1 - x)) * ch;
            for (int c = 0; c < ch; c++) {
                uint8_t t = a[c];
                a[c] = b[c];
                b[c] = t;
            }
        }
    }
}

/* Rotates clockwise by 90° steps; returns a new image (or NULL). */
static eh_image *op_rotate(const eh_image *img, int quarter_turns, eh_error *err)
{
    quarter_turns &= 3;
    int w = img->width, h = img->height, ch = img->channels;
    int nw = quarter_turns % 2 ? h : w, nh = quarter_turns % 2 ? w : h;
    eh_image *out = eh_image_new(nw, nh, ch, err);
    if (!out)
        return NULL;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int nx, ny;
            switch (quarter_turns) {
            case 1:
                nx = h - 1 - y;
                ny = x;
                break;
            case 2:
                nx = w - 1 - x;
                ny = h - 1 - y;
                break;
            case 3:
                nx = y;
                ny = w - 1 - x;
                break;
            default:
                nx = x;
                ny = y;
                break;
            }
            memcpy(out->pixels + ((size_t)ny * nw + nx) * ch, img->pixels + ((size_t)y * w + x) * ch, (size_t)ch);
        }
    }
    return out;
}

/* Separable box blur of radius r; in place through one scratch row/column. */
static eh_status op_blur(eh_image *img, int r, eh_error *err)
{
    int w = img->width, h = img->height, ch = img->channels;
    int longest = w > h ? w : h;
    uint8_t *line = malloc((size_t)longest * (size_t)ch);
    if (!line)
        return eh_fail(err, EH_ENOMEM, "blur: out of memory");
    for (int pass = 0; pass < 2; pass++) {
        int outer = pass ? w : h, inner = pass ? h : w;
        for (int o = 0; o < outer; o++) {
            for (int i = 0; i < inner; i++) {
                size_t idx = pass ? ((size_t)i * w + o) : ((size_t)o * w + i);
                memcpy(line + (size_t)i * ch, img->pixels + idx * ch, (size_t)ch);
            }
            for (int i = 0; i < inner; i++) {
                int lo = i - r < 0 ? 0 : i - r, hi = i + r >= inner ? inner - 1 : i + r;
                size_t idx = pass ? ((size_t)i * w + o) : ((size_t)o * w + i);
                for (int c = 0; c < ch; c++) {
                    int sum = 0;
                    for (int k = lo; k <= hi; k++)
                        sum += line[(size_t)k * ch + c];
                    img->pixels[idx * ch + c] = (uint8_t)(sum / (hi - lo + 1));
                }
            }
        }
    }
    free(line);
    return EH_OK;
}

typedef struct colour_word {
    const char *word;
    uint8_t rgb[3];
} colour_word;

static const colour_word colours[] = {
    { "red", { 220, 30, 30 } },     { "红", { 220, 30, 30 } },      { "green", { 30, 180, 60 } },
    { "绿", { 30, 180, 60 } },      { "blue", { 30, 60, 220 } },    { "蓝", { 30, 60, 220 } },
    { "yellow", { 240, 220, 30 } }, { "黄", { 240, 220, 30 } },     { "purple", { 140, 40, 180 } },
    { "紫", { 140, 40, 180 } },     { "orange", { 250, 140, 20 } }, { "橙", { 250, 140, 20 } },
    { "pink", { 250, 150, 190 } },  { "粉", { 250, 150, 190 } },    { "white", { 250, 250, 250 } },
    { "白", { 250, 250, 250 } },
};

static int has_any(const char *text, const char *const *words)
{
    for (; *words; words++)
        if (strstr(text, *words))
            return 1;
    return 0;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Applies every operation the instruction names, in a fixed order; when it
 * names none, one change picked by a hash of the instruction. */
static eh_image *imageops_edit(const eh_image *src, const char *instruction, eh_error *err)
{
    char text[4096];
    size_t n = strlen(instruction);
    if (n >= sizeof text)
        n = sizeof text - 1;
    for (size_t i = 0; i < n; i++)
        text[i] = (char)tolower((unsigned char)instruction[i]);
    text[n] = '\0';

    eh_image *img = eh_image_clone(src, err);
    if (!img)
        return NULL;
    int applied = 0;
    static const char *const w_rotate[] = { "rotate", "旋转", "turn ", NULL };
    static const char *const w_flip_v[] = { "upside", "vertical", "上下", "垂直", NULL };
    static const char *const w_flip[] = { "flip", "mirror", "翻转", "镜像", NULL };
    static const char *const w_blur[] = { "blur", "模糊", "soft", NULL };
    static const char *const w_bright[] = { "bright", "lighter", "变亮", "提亮", "明亮", "白天", NULL };
    static const char *const w_dark[] = { "dark", "night", "dim", "变暗", "暗", "夜", NULL };
    static const char *const w_gray[] = { "gray", "grey", "black and white", "黑白", "灰", NULL };
    static const char *const w_invert[] = { "invert", "negative", "反色", "负片", NULL };

    if (has_any(text, w_rotate)) {
        int turns = strstr(text, "180")                                                          ? 2
                    : (strstr(text, "270") || strstr(text, "counter") || strstr(text, "逆时针")) ? 3
                                                                                                 : 1;
        eh_image *r = op_rotate(img, turns, err);
        eh_image_free(img);
        if (!r)
            return NULL;
        img = r;
        applied++;
    }
    if (has_any(text, w_flip) || has_any(text, w_flip_v)) {
        op_flip(img, has_any(text, w_flip_v));
        applied++;
    }
    if (has_any(text, w_gray)) {
        op_gray(img);
        applied++;
    }
    for (size_t i = 0; i < sizeof colours / sizeof colours[0]; i++) {
        if (strstr(text, colours[i].word)) {
            op_tint(img, colours[i].rgb, 0.45);
            applied++;
            break;
        }
    }
    if (has_any(text, w_bright)) {
        op_scale(img, 1.35);
        applied++;
    } else if (has_any(text, w_dark)) {
        op_scale(img, 0.6);
        applied++;
    }
    if (has_any(text, w_invert)) {
        op_invert(img);
        applied++;
    }
    if (has_any(text, w_blur)) {
        if (op_blur(img, 3, err) != EH_OK) {
            eh_image_free(img);
            return NULL;
        }
        applied++;
    }
    if (!applied) {
        uint32_t h = fnv1a(instruction);
        switch (h % 4) {
        case 0: {
            uint8_t rgb[3] = { (uint8_t)(h >> 8), (uint8_t)(h >> 16), (uint8_t)(h >> 24) };
            op_tint(img, rgb, 0.15 + (double)(h % 7) * 0.05);
            break;
        }
        case 1: op_scale(img, 1.1 + (double)(h % 5) * 0.05); break;
        case 2: op_scale(img, 0.9 - (double)(h % 5) * 0.05); break;
        default:
            if (op_blur(img, 1 + (int)(h % 3), err) != EH_OK) {
                eh_image_free(img);
                return NULL;
            }
            break;
        }
    }
    return img;
}

static eh_status builtin_edit(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n,
                              eh_error *err)
{
    (void)err;
    builtin_model *b = m->impl;
    for (size_t i = 0; i < n; i++) {
        sleep_ms(b->delay_ms);
        if (!reqs[i].image) {
            eh_fail(&results[i].err, EH_EINVAL, "%s: no input image", m->section);
            continue;
        }
        if (b->kind == BUILTIN_IDENTITY)
            results[i].image = eh_image_clone(reqs[i].image, &results[i].err);
        else
            results[i].image =
                imageops_edit(reqs[i].image, reqs[i].instruction ? reqs[i].instruction : "", &results[i].err);
    }
    return EH_OK;
}

/* ---- metrics: the judge ------------------------------------------------ */

typedef struct image_metrics {
    double l1;      /* mean absolute difference, 0..1 */
    double psnr;    /* dB, capped at 60 */
    double ssim;    /* mean over 8x8 blocks of luma */
} image_metrics;

static double luma(const uint8_t *p)
{
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

static void compare_images(const eh_image *a, const eh_image *b, image_metrics *out)
{
    int w = a->width, h = a->height;
    double abs_sum = 0, sq_sum = 0;
    size_t count = (size_t)w * (size_t)h;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *pa = a->pixels + i * (size_t)a->channels, *pb = b->pixels + i * (size_t)b->channels;
        for (int c = 0; c < 3; c++) {
            double d = (double)pa[c] - (double)pb[c];
            abs_sum += fabs(d);
            sq_sum += d * d;
        }
    }
    double mse = sq_sum / (3.0 * (double)count);
    out->l1 = abs_sum / (3.0 * (double)count) / 255.0;
    out->psnr = mse <= 1e-10 ? 60.0 : fmin(60.0, 10.0 * log10(255.0 * 255.0 / mse));
    const double c1 = 6.5025, c2 = 58.5225;   /* (0.01*255)^2, (0.03*255)^2 */
    double ssim_sum = 0;
    int blocks = 0;
    int bs = w < 8 || h < 8 ? 1 : 8;
    for (int by = 0; by + bs <= h; by += bs) {
        for (int bx = 0; bx + bs <= w; bx += bs) {
            double ma = 0, mb = 0, va = 0, vb = 0, cov = 0;
            for (int y = by; y < by + bs; y++) {
                for (int x = bx; x < bx + bs; x++) {
                    size_t i = (size_t)y * w + x;
                    double ya = luma(a->pixels + i * a->channels), yb = luma(b->pixels + i * b->channels);
                    ma += ya;
                    mb += yb;
                    va += ya * ya;
                    vb += yb * yb;
                    cov += ya * yb;
                }
            }
            double k = (double)bs * bs;
            ma /= k;
            mb /= k;
            va = va / k - ma * ma;
            vb = vb / k - mb * mb;
            cov = cov / k - ma * mb;
            ssim_sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            blocks++;
        }
    }
    out->ssim = blocks ? ssim_sum / blocks : 1.0;
}

static void metrics_score(eh_model *m, const eh_score_request *req, eh_score_result *res)
{
    if (!req->image || !req->original) {
        eh_fail(&res->err, EH_EINVAL, "%s: the metrics judge needs the edited and the original image", m->section);
        return;
    }
    const eh_image *edited = req->image;
    eh_image *resized = NULL;
    if (edited->width != req->original->width || edited->height != req->original->height) {
        resized = eh_image_resize(edited, req->original->width, req->original->height, EH_FILTER_BILINEAR, &res->err);
        if (!resized)
            return;
        edited = resized;
    }
    image_metrics mt;
    compare_images(req->original, edited, &mt);
    eh_image_free(resized);
    double ssim = mt.ssim < 0 ? 0 : mt.ssim > 1 ? 1 : mt.ssim;
    double score = 10.0 * (0.4 * ssim + 0.3 * (1.0 - mt.l1) + 0.3 * fmin(mt.psnr, 40.0) / 40.0);
    score = round(score * 100.0) / 100.0;
    char text[160];
    snprintf(text, sizeof text, "SSIM %.4f, PSNR %.2f dB, L1 %.4f. Score: %.2f", mt.ssim, mt.psnr, mt.l1, score);
    res->text = strdup(text);
    if (!res->text) {
        eh_fail(&res->err, EH_ENOMEM, "%s: out of memory", m->section);
        return;
    }
    res->score = score;
    res->ok = 1;
}

static eh_status builtin_score(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                               eh_error *err)
{
    (void)err;
    builtin_model *b = m->impl;
    for (size_t i = 0; i < n; i++) {
        sleep_ms(b->delay_ms);
        metrics_score(m, &reqs[i], &results[i]);
    }
    return EH_OK;
}

static void builtin_close(eh_model *m)
{
    free(m->impl);
}

const eh_backend eh_backend_builtin = {
    .name = "builtin",
    .open = builtin_open,
    .to_device = builtin_to_device,
    .off_device = builtin_off_device,
    .footprint = builtin_footprint,
    .edit = builtin_edit,
    .score = builtin_score,
    .close = builtin_close,
};
