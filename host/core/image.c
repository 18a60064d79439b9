/* image.c — strict decoding by magic bytes, encoding, resizing and atomic
 * saving of RGB8/RGBA8 images.
 *
 * JPEG goes through TurboJPEG (EXIF orientation applied here, CMYK converted
 * to RGB), PNG through our own chunk reader over libdeflate (stb_image for
 * interlaced or sub-byte PNGs), BMP and GIF
 * through stb_image, WebP through libwebp.  Every decoder reads the
 * dimensions from the header and checks them against eh_image_limits before
 * it allocates the pixel buffer; every failure frees what it made and returns
 * NULL with a message, so a caller never sees a partial image. */
#include "evalhost/image.h"
#include "evalhost/base64.h"
#include "evalhost/fs.h"
#include "evalhost/png.h"

#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>
#include <webp/decode.h>
#include <webp/encode.h>

/* stb is vendored code: its warnings are not ours to fix. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define EH_DEFAULT_MAX_PIXELS 64000000
#define EH_DEFAULT_MAX_SIDE 65535
#define EH_DEFAULT_MAX_B64 ((size_t)1 << 30)
#define EH_DEFAULT_PNG_LEVEL                                                                                           \
    2   /* saves are on the per-pair path: the fast filter + deflate level (README, Performance) */
#define EH_DEFAULT_JPEG_QUALITY 90

eh_image_limits eh_image_default_limits(void)
{
    eh_image_limits l = {
        .max_pixels = EH_DEFAULT_MAX_PIXELS,
        .max_side = EH_DEFAULT_MAX_SIDE,
        .max_b64_len = EH_DEFAULT_MAX_B64,
        .keep_alpha = 1,   /* the judge composites alpha onto white (issue 19) */
    };
    return l;
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */

static eh_image *image_alloc(int width, int height, int channels, int zero, eh_error *err)
{
    if (width <= 0 || height <= 0 || (channels != 3 && channels != 4)) {
        eh_fail(err, EH_EINVAL, "image: bad geometry %dx%d with %d channels", width, height, channels);
        return NULL;
    }
    size_t n = (size_t)width * (size_t)height;
    if (n > SIZE_MAX / (size_t)channels) {
        eh_fail(err, EH_ENOMEM, "image: %dx%d is too large to address", width, height);
        return NULL;
    }
    n *= (size_t)channels;
    eh_image *img = malloc(sizeof *img);
    uint8_t *px = zero ? calloc(n, 1) : malloc(n);
    if (!img || !px) {
        free(img);
        free(px);
        eh_fail(err, EH_ENOMEM, "image: out of memory for %dx%dx%d", width, height, channels);
        return NULL;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->pixels = px;
    return img;
}

eh_image *eh_image_new(int width, int height, int channels, eh_error *err)
{
    return image_alloc(width, height, channels, 1, err);
}

eh_image *eh_image_alloc(int width, int height, int channels, eh_error *err)
{
    return image_alloc(width, height, channels, 0, err);
}

void eh_image_free(eh_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    free(img);
}

static size_t image_bytes(const eh_image *img)
{
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

eh_image *eh_image_clone(const eh_image *img, eh_error *err)
{
    eh_image *c = image_alloc(img->width, img->height, img->channels, 0, err);
    if (c)
        memcpy(c->pixels, img->pixels, image_bytes(img));
    return c;
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */

eh_image_format eh_image_sniff(const void *bytes, size_t len)
{
    const uint8_t *b = bytes;
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        return EH_FMT_PNG;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return EH_FMT_JPEG;
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return EH_FMT_GIF;
    if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return EH_FMT_WEBP;
    if (len >= 2 && b[0] == 'B' && b[1] == 'M')
        return EH_FMT_BMP;
    return EH_FMT_UNKNOWN;
}

const char *eh_image_format_name(eh_image_format fmt)
{
    switch (fmt) {
    case EH_FMT_PNG: return "png";
    case EH_FMT_JPEG: return "jpeg";
    case EH_FMT_BMP: return "bmp";
    case EH_FMT_GIF: return "gif";
    case EH_FMT_WEBP: return "webp";
    case EH_FMT_UNKNOWN: break;
    }
    return "unknown";
}

static int ext_is(const char *ext, const char *want)
{
    for (; *ext && *want; ext++, want++)
        if ((*ext | 0x20) != *want)
            return 0;
    return *ext == '\0' && *want == '\0';
}

eh_image_format eh_image_format_from_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot)
        return EH_FMT_UNKNOWN;
    dot++;
    if (ext_is(dot, "png"))
        return EH_FMT_PNG;
    if (ext_is(dot, "jpg") || ext_is(dot, "jpeg"))
        return EH_FMT_JPEG;
    if (ext_is(dot, "bmp"))
        return EH_FMT_BMP;
    if (ext_is(dot, "gif"))
        return EH_FMT_GIF;
    if (ext_is(dot, "webp"))
        return EH_FMT_WEBP;
    return EH_FMT_UNKNOWN;
}

/* The one place where header dimensions meet the configured limits. */
eh_status eh_image_check_size(int64_t w, int64_t h, const eh_image_limits *limits, eh_error *err)
{
    eh_image_limits def = eh_image_default_limits();
    const eh_image_limits *lim = limits ? limits : &def;
    if (w <= 0 || h <= 0)
        return eh_fail(err, EH_EINVAL, "image has no pixels (%lldx%lld in the header)", (long long)w, (long long)h);
    if (w > lim->max_pixels / h)       /* w*h > max_pixels without overflowing int64 */
        return eh_fail(err, EH_ELIMIT, "image %lldx%lld exceeds image.max_pixels (%lld)", (long long)w, (long long)h,
                       (long long)lim->max_pixels);
    if (w > lim->max_side || h > lim->max_side)
        return eh_fail(err, EH_ELIMIT, "image %lldx%lld exceeds image.max_side (%d)", (long long)w, (long long)h,
                       lim->max_side);
    return EH_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */

/* What the markers before the scan tell us beyond TurboJPEG's header. */
typedef struct jpeg_meta {
    int orientation;        /* EXIF 1..8, 1 when absent or unreadable */
    int adobe;              /* an APP14 "Adobe" marker: CMYK is stored inverted */
} jpeg_meta;

static int tiff_u16(const uint8_t *p, int le)
{
    return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1];
}

static uint32_t tiff_u32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : be32(p);
}

/* Orientation tag (0x0112) of IFD0 in a TIFF block; 1 when absent or bad. */
static int exif_orientation(const uint8_t *t, size_t n)
{
    if (n < 8)
        return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I')
        le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        le = 0;
    else
        return 1;
    if (tiff_u16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = tiff_u32(t + 4, le);
    if (ifd > n || n - ifd < 2)
        return 1;
    int count = tiff_u16(t + ifd, le);
    for (int k = 0; k < count; k++) {
        size_t e = (size_t)ifd + 2 + (size_t)k * 12;
        if (e + 12 > n)
            break;
        if (tiff_u16(t + e, le) == 0x0112) {
            int type = tiff_u16(t + e + 2, le);
            int v = type == 3 ? tiff_u16(t + e + 8, le) : type == 4 ? (int)tiff_u32(t + e + 8, le) : 1;
            return v >= 1 && v <= 8 ? v : 1;
        }
    }
    return 1;
}

static jpeg_meta jpeg_scan_markers(const uint8_t *p, size_t n)
{
    jpeg_meta m = { 1, 0 };
    size_t i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xff)
            break;
        uint8_t marker = p[i + 1];
        if (marker == 0xff) {           /* fill byte */
            i++;
            continue;
        }
        if (marker == 0xda || marker == 0xd9)   /* start of scan, end of image */
            break;
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
            i += 2;
            continue;
        }
        size_t seg = (size_t)p[i + 2] << 8 | p[i + 3];
        if (seg < 2 || i + 2 + seg > n)
            break;
        const uint8_t *d = p + i + 4;
        size_t dn = seg - 2;
        if (marker == 0xe1 && dn >= 6 && memcmp(d, "Exif\0\0", 6) == 0)
            m.orientation = exif_orientation(d + 6, dn - 6);
        else if (marker == 0xee && dn >= 5 && memcmp(d, "Adobe", 5) == 0)
            m.adobe = 1;
        i += 2 + seg;
    }
    return m;
}

/* Copies one tile of an orientation transform: output pixels (x0..x1,
 * y0..y1) from src + origin + x*dx + y*dy.  C is a constant after inlining. */
static inline void orient_tile(const uint8_t *src, uint8_t *dst, size_t ow, ptrdiff_t origin, ptrdiff_t dx,
                               ptrdiff_t dy, int x0, int x1, int y0, int y1, size_t C)
{
    for (int y = y0; y < y1; y++) {
        const uint8_t *s = src + origin + (ptrdiff_t)y * dy + (ptrdiff_t)x0 * dx;
        uint8_t *o = dst + ((size_t)y * ow + (size_t)x0) * C;
        for (int x = x0; x < x1; x++, s += dx, o += C)
            memcpy(o, s, C);
    }
}

static inline void swap_px(uint8_t *a, uint8_t *b, size_t C)
{
    uint8_t t[4];
    memcpy(t, a, C);
    memcpy(a, b, C);
    memcpy(b, t, C);
}

/* Mirrors (2), turns by 180 degrees (3) or flips (4) in place: pixel i
 * swaps with its image under the transform, no second buffer. */
static void orient_in_place(eh_image *img, int o)
{
    size_t C = (size_t)img->channels, W = (size_t)img->width, H = (size_t)img->height;
    uint8_t *p = img->pixels;
    if (o == 2) {
        for (size_t y = 0; y < H; y++)
            for (size_t x = 0; x < W / 2; x++)
                swap_px(p + (y * W + x) * C, p + (y * W + W - 1 - x) * C, C);
    } else if (o == 3) {
        for (size_t i = 0, n = W * H; i < n / 2; i++)
            swap_px(p + i * C, p + (n - 1 - i) * C, C);
    } else {
        for (size_t y = 0; y < H / 2; y++)
            for (size_t i = 0; i < W; i++)
                swap_px(p + (y * W + i) * C, p + ((H - 1 - y) * W + i) * C, C);
    }
}

/* Applies EXIF orientation o (2..8) the way Pillow's exif_transpose does.
 * Takes img and returns the result (img itself for 2..4), or NULL with err
 * after freeing img.  For the transposing ones (5..8), output pixel (x, y)
 * comes from source byte origin + x*dx + y*dy, copied in 64x64 tiles that
 * keep the column walk inside the cache. */
static eh_image *apply_orientation(eh_image *src, int o, eh_error *err)
{
    if (o <= 4) {
        orient_in_place(src, o);
        return src;
    }
    int W = src->width, H = src->height;
    size_t C = (size_t)src->channels;
    eh_image *dst = image_alloc(H, W, src->channels, 0, err);
    if (!dst) {
        eh_image_free(src);
        return NULL;
    }
    ptrdiff_t px = (ptrdiff_t)C, row = (ptrdiff_t)W * px, origin, dx, dy;
    switch (o) {
    case 5:
        origin = 0;
        dx = row;
        dy = px;
        break;
    case 6:
        origin = (H - 1) * row;
        dx = -row;
        dy = px;
        break;
    case 7:
        origin = (H - 1) * row + (W - 1) * px;
        dx = -row;
        dy = -px;
        break;
    default:
        origin = (W - 1) * px;
        dx = row;
        dy = -px;
        break;     /* 8 */
    }
    const int T = 64;
    int ow = dst->width, oh = dst->height;
    for (int ty = 0; ty < oh; ty += T)
        for (int tx = 0; tx < ow; tx += T) {
            int x1 = tx + T < ow ? tx + T : ow, y1 = ty + T < oh ? ty + T : oh;
            if (C == 3)
                orient_tile(src->pixels, dst->pixels, (size_t)ow, origin, dx, dy, tx, x1, ty, y1, 3);
            else
                orient_tile(src->pixels, dst->pixels, (size_t)ow, origin, dx, dy, tx, x1, ty, y1, 4);
        }
    eh_image_free(src);
    return dst;
}

/* a*b/255 rounded, as Pillow's MULDIV255 (so CMYK matches its conversion). */
static uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

static eh_image *decode_jpeg(const uint8_t *b, size_t len, const eh_image_limits *lim, eh_error *err)
{
    if (len > ULONG_MAX) {
        eh_fail(err, EH_ELIMIT, "JPEG of %zu bytes is too large", len);
        return NULL;
    }
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        eh_fail(err, EH_ENOMEM, "JPEG: cannot start the decoder (%s)", tjGetErrorStr2(NULL));
        return NULL;
    }
    eh_image *img = NULL, *cmyk = NULL;
    int w = 0, h = 0, subsamp = -1, cs = -1;   /* a header cut short "succeeds" without setting them */
    if (tjDecompressHeader3(tj, b, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        eh_fail(err, EH_EINVAL, "bad JPEG header (%s)", tjGetErrorStr2(tj));
        goto done;
    }
    if (eh_image_check_size(w, h, lim, err) != EH_OK)
        goto done;
    jpeg_meta meta = jpeg_scan_markers(b, len);
    int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    img = image_alloc(w, h, is_cmyk ? 4 : 3, 0, err);
    if (!img)
        goto done;
    /* A warning is a refusal (libjpeg filled in pixels it could not read,
     * and a partial image must never pass for a real one), except junk
     * between segments, which loses nothing and is common in camera files.
     * TurboJPEG reports the last warning, so any later one still refuses.
     * LIMITSCANS refuses progressive files of more than 500 scans, a known
     * way to make a small file cost minutes of CPU. */
    if (tjDecompress2(tj, b, (unsigned long)len, img->pixels, w, 0, h, is_cmyk ? TJPF_CMYK : TJPF_RGB,
                      TJFLAG_LIMITSCANS) != 0) {
        const char *why = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) == TJERR_WARNING && strstr(why, "extraneous bytes before marker"))
            goto decoded;
        if (strstr(why, "Premature end"))
            eh_fail(err, EH_EINVAL, "truncated JPEG (%s)", why);
        else
            eh_fail(err, EH_EINVAL, "corrupt JPEG (%s)", why);
        eh_image_free(img);
        img = NULL;
        goto done;
    }
decoded:
    if (is_cmyk) {
        /* Pillow's cmyk2rgb on the un-inverted values: R = (255-C)(255-K)/255. */
        cmyk = img;
        img = image_alloc(w, h, 3, 0, err);
        if (!img)
            goto done;
        size_t n = (size_t)w * h;
        const uint8_t *s = cmyk->pixels;
        uint8_t *o = img->pixels;
        for (size_t i = 0; i < n; i++, s += 4, o += 3) {
            int c = s[0], m = s[1], y = s[2], k = s[3];
            if (!meta.adobe) {
                c = 255 - c;
                m = 255 - m;
                y = 255 - y;
                k = 255 - k;
            }
            o[0] = muldiv255(c, k);
            o[1] = muldiv255(m, k);
            o[2] = muldiv255(y, k);
        }
    }
    if (meta.orientation != 1)
        img = apply_orientation(img, meta.orientation, err);
done:
    eh_image_free(cmyk);
    tjDestroy(tj);
    return img;
}

/* ------------------------------------------------------------------------ */
/* stb (PNG fallback, BMP, GIF) and WebP                                    */

static eh_image *decode_stb(const uint8_t *b, size_t len, eh_image_format fmt, const eh_image_limits *lim,
                            eh_error *err)
{
    const char *name = fmt == EH_FMT_PNG ? "PNG" : fmt == EH_FMT_GIF ? "GIF" : "BMP";
    if (len > INT_MAX) {
        eh_fail(err, EH_ELIMIT, "%s of %zu bytes is too large", name, len);
        return NULL;
    }
    int w, h, comp;
    if (!stbi_info_from_memory(b, (int)len, &w, &h, &comp)) {
        eh_fail(err, EH_EINVAL, "bad %s header (%s)", name, stbi_failure_reason());
        return NULL;
    }
    if (w <= 0 || h <= 0) {     /* stb reads zeros past a short header */
        eh_fail(err, EH_EINVAL, "corrupt %s (header gives %dx%d)", name, w, h);
        return NULL;
    }
    if (eh_image_check_size(w, h, lim, err) != EH_OK)
        return NULL;
    /* stb grows its IDAT buffer to a chunk's claimed length before reading
     * it, so a 100-byte PNG could ask for 2 GB: check the lengths first. */
    for (size_t i = 8; fmt == EH_FMT_PNG && i < len;) {
        if (len - i < 8) {
            eh_fail(err, EH_EINVAL, "truncated PNG (chunk header cut at byte %zu)", i);
            return NULL;
        }
        size_t n = (size_t)b[i] << 24 | (size_t)b[i + 1] << 16 | (size_t)b[i + 2] << 8 | b[i + 3];
        if (n > len - i - 8) {
            eh_fail(err, EH_EINVAL, "truncated PNG (chunk %.4s of %zu bytes runs past the end at byte %zu)",
                    (const char *)b + i + 4, n, len);
            return NULL;
        }
        if (memcmp(b + i + 4, "IEND", 4) == 0)
            break;
        i += 12 + n;
    }
    int want = lim->keep_alpha && (comp == 2 || comp == 4) ? 4 : 3;
    int w2, h2, c2;
    uint8_t *px = stbi_load_from_memory(b, (int)len, &w2, &h2, &c2, want);
    if (!px) {
        const char *why = stbi_failure_reason();
        int trunc = why && (strstr(why, "unexpected end") || strstr(why, "no IEND") || strstr(why, "outofdata") ||
                            strstr(why, "truncated"));
        eh_fail(err, EH_EINVAL, "%s %s (%s)", trunc ? "truncated" : "corrupt", name, why ? why : "?");
        return NULL;
    }
    if (w2 != w || h2 != h) {
        stbi_image_free(px);
        eh_fail(err, EH_EINVAL, "corrupt %s (header says %dx%d, data %dx%d)", name, w, h, w2, h2);
        return NULL;
    }
    eh_image *img = malloc(sizeof *img);
    if (!img) {
        stbi_image_free(px);
        eh_fail(err, EH_ENOMEM, "image: out of memory");
        return NULL;
    }
    img->width = w;
    img->height = h;
    img->channels = want;
    img->pixels = px;       /* stb allocates with malloc (STBI_MALLOC): ours to free */
    return img;
}

static eh_image *decode_webp(const uint8_t *b, size_t len, const eh_image_limits *lim, eh_error *err)
{
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(b, len, &f);
    if (st != VP8_STATUS_OK) {
        eh_fail(err, EH_EINVAL, "%s WebP (status %d)", st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated" : "bad", (int)st);
        return NULL;
    }
    if (eh_image_check_size(f.width, f.height, lim, err) != EH_OK)
        return NULL;
    if (f.has_animation) {
        eh_fail(err, EH_EFORMAT, "animated WebP is not supported");
        return NULL;
    }
    int oc = lim->keep_alpha && f.has_alpha ? 4 : 3;
    eh_image *img = image_alloc(f.width, f.height, oc, 0, err);
    if (!img)
        return NULL;
    size_t n = image_bytes(img);
    int stride = f.width * oc;
    uint8_t *ok = oc == 4 ? WebPDecodeRGBAInto(b, len, img->pixels, n, stride)
                          : WebPDecodeRGBInto(b, len, img->pixels, n, stride);
    if (!ok) {
        eh_image_free(img);
        eh_fail(err, EH_EINVAL, "corrupt or truncated WebP");
        return NULL;
    }
    return img;
}

eh_image *eh_image_decode(const void *bytes, size_t len, const eh_image_limits *limits, eh_error *err)
{
    eh_image_limits def = eh_image_default_limits();
    const eh_image_limits *lim = limits ? limits : &def;
    const uint8_t *b = bytes;
    if (len == 0) {
        eh_fail(err, EH_EINVAL, "not an image (empty, 0 bytes)");
        return NULL;
    }
    eh_image_format fmt = eh_image_sniff(b, len);
    switch (fmt) {
    case EH_FMT_JPEG: return decode_jpeg(b, len, lim, err);
    case EH_FMT_PNG: {
        /* stb refuses some huge headers with a vague message: check first. */
        if (len >= 24 && memcmp(b + 12, "IHDR", 4) == 0 &&
            eh_image_check_size(be32(b + 16), be32(b + 20), lim, err) != EH_OK)
            return NULL;
        /* our libdeflate decoder first (several times faster); stb for what
         * it hands back (interlaced, depths below 8, colour keys) */
        eh_image *img;
        if (eh_png_decode(b, len, lim, &img, err))
            return img;
        return decode_stb(b, len, fmt, lim, err);
    }
    case EH_FMT_BMP:
    case EH_FMT_GIF: return decode_stb(b, len, fmt, lim, err);
    case EH_FMT_WEBP: return decode_webp(b, len, lim, err);
    case EH_FMT_UNKNOWN: break;
    }
    char hex[3 * 8 + 1] = "";
    size_t k = len < 8 ? len : 8, at = 0;
    for (size_t i = 0; i < k; i++)
        at += (size_t)snprintf(hex + at, sizeof hex - at, i ? " %02x" : "%02x", b[i]);
    eh_fail(err, EH_EINVAL, "not an image (first bytes %s)", hex);
    return NULL;
}

eh_image *eh_image_decode_b64(const char *text, size_t len, const eh_image_limits *limits, eh_error *err)
{
    eh_image_limits def = eh_image_default_limits();
    const eh_image_limits *lim = limits ? limits : &def;
    if (len > lim->max_b64_len) {
        eh_fail(err, EH_ELIMIT, "base64 text of %zu bytes exceeds limits.max_b64_len (%zu)", len, lim->max_b64_len);
        return NULL;
    }
    uint8_t *bytes;
    size_t n;
    if (eh_b64_decode(text, len, &bytes, &n, err) != EH_OK)
        return NULL;
    eh_image *img = eh_image_decode(bytes, n, lim, err);
    free(bytes);
    return img;
}

/* ------------------------------------------------------------------------ */
/* Loading and saving                                                       */

eh_image *eh_image_load(const char *path, const eh_image_limits *limits, eh_error *err)
{
    char *buf;
    size_t n;
    if (eh_fs_read_ex(path, 0, limits ? limits->read_flags : 0, &buf, &n, err) != EH_OK)
        return NULL;
    eh_error e = { 0 };
    eh_image *img = eh_image_decode(buf, n, limits, &e);
    free(buf);
    if (!img)
        eh_fail(err, e.code, "%s: %s", path, e.msg);
    return img;
}

eh_status eh_image_encode_for_path(const eh_image *img, const char *path, uint8_t **out, size_t *out_len, eh_error *err)
{
    eh_image_format fmt = eh_image_format_from_path(path);
    if (fmt == EH_FMT_UNKNOWN) {
        const char *slash = strrchr(path, '/');
        if (strchr(slash ? slash : path, '.'))
            return eh_fail(err, EH_EFORMAT, "%s: unsupported image format for saving (use .png, .jpg, .bmp or .webp)",
                           path);
        fmt = EH_FMT_PNG;
    }
    eh_error e = { 0 };
    if (eh_image_encode(img, fmt, out, out_len, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", path, e.msg);
    return EH_OK;
}

eh_status eh_image_save(const eh_image *img, const char *path, eh_error *err)
{
    uint8_t *buf;
    size_t n;
    eh_status st = eh_image_encode_for_path(img, path, &buf, &n, err);
    if (st != EH_OK)
        return st;
    st = eh_fs_write_atomic(path, buf, n, err);   /* temp, fsync, rename, fsync dir */
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

/* Growable buffer for stb_image_write's callback. */
typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} membuf;

static void membuf_write(void *ctx, void *data, int size)
{
    membuf *m = ctx;
    if (m->oom || size <= 0)
        return;
    if (m->n + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->n + (size_t)size)
            cap *= 2;
        uint8_t *p = realloc(m->p, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

eh_status eh_image_encode_png(const eh_image *img, int level, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (level < 0)
        level = EH_DEFAULT_PNG_LEVEL;
    if (level > 9)
        return eh_fail(err, EH_EINVAL, "png: level %d out of range 0..9", level);
    return eh_png_encode(img, level, out, out_len, err);
}

eh_status eh_image_encode_jpeg(const eh_image *img, int quality, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (quality <= 0)
        quality = EH_DEFAULT_JPEG_QUALITY;
    if (quality > 100)
        return eh_fail(err, EH_EINVAL, "jpeg: quality %d out of range 1..100", quality);
    tjhandle tj = tjInitCompress();
    if (!tj)
        return eh_fail(err, EH_ENOMEM, "jpeg: cannot start the encoder (%s)", tjGetErrorStr2(NULL));
    unsigned char *jb = NULL;
    unsigned long jn = 0;
    /* High qualities ask for colour detail too: keep full-resolution chroma. */
    int subsamp = quality >= 90 ? TJSAMP_444 : TJSAMP_420;
    eh_status st = EH_OK;
    if (tjCompress2(tj, img->pixels, img->width, 0, img->height, img->channels == 4 ? TJPF_RGBA : TJPF_RGB, &jb, &jn,
                    subsamp, quality, 0) != 0) {
        st = eh_fail(err, EH_EINVAL, "jpeg: encoding failed (%s)", tjGetErrorStr2(tj));
    } else if (!(*out = malloc(jn))) {
        st = eh_fail(err, EH_ENOMEM, "jpeg: out of memory for %lu bytes", jn);
    } else {
        memcpy(*out, jb, jn);   /* tjAlloc'd buffers need tjFree; ours are free()d */
        *out_len = jn;
    }
    tjFree(jb);
    tjDestroy(tj);
    return st;
}

eh_status eh_image_encode(const eh_image *img, eh_image_format fmt, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    switch (fmt) {
    case EH_FMT_PNG: return eh_image_encode_png(img, -1, out, out_len, err);
    case EH_FMT_JPEG: return eh_image_encode_jpeg(img, -1, out, out_len, err);
    case EH_FMT_BMP: {
        membuf m = { 0 };
        if (!stbi_write_bmp_to_func(membuf_write, &m, img->width, img->height, img->channels, img->pixels) || m.oom) {
            free(m.p);
            return eh_fail(err, EH_ENOMEM, "bmp: encoding failed");
        }
        *out = m.p;
        *out_len = m.n;
        return EH_OK;
    }
    case EH_FMT_WEBP: {
        uint8_t *wb = NULL;
        int stride = img->width * img->channels;
        size_t n = img->channels == 4
                       ? WebPEncodeRGBA(img->pixels, img->width, img->height, stride, EH_DEFAULT_JPEG_QUALITY, &wb)
                       : WebPEncodeRGB(img->pixels, img->width, img->height, stride, EH_DEFAULT_JPEG_QUALITY, &wb);
        if (n == 0 || !(*out = malloc(n))) {
            WebPFree(wb);
            return eh_fail(err, EH_ENOMEM, "webp: encoding failed");
        }
        memcpy(*out, wb, n);
        *out_len = n;
        WebPFree(wb);
        return EH_OK;
    }
    case EH_FMT_GIF:
    case EH_FMT_UNKNOWN: break;
    }
    return eh_fail(err, EH_EFORMAT, "cannot encode %s images", eh_image_format_name(fmt));
}

/* ------------------------------------------------------------------------ */
/* Resizing: separable convolution in Pillow's manner, so that downscaling  */
/* widens the kernel (area averaging) and results stay close to Pillow's.   */

#define EH_PI 3.14159265358979323846

static double f_bilinear(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double f_bicubic(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= EH_PI;
    return sin(x) / x;
}

static double f_lanczos(double x)
{
    return x > -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
}

/* Weights are fixed point with 22 fractional bits, as Pillow's: integer
 * sums are faster than float conversions and give Pillow's own rounding. */
#define EH_RESIZE_BITS 22

typedef struct taps {
    int ksize;
    int *lo, *n;        /* first input index and tap count per output index */
    int32_t *k;         /* ksize weights per output index, normalised, fixed point */
} taps;

static void taps_free(taps *t)
{
    free(t->lo);
    free(t->n);
    free(t->k);
}

static int taps_make(taps *t, int in, int out, eh_resize_filter f)
{
    double (*fn)(double) = f == EH_FILTER_BICUBIC ? f_bicubic : f == EH_FILTER_LANCZOS ? f_lanczos : f_bilinear;
    double support = f == EH_FILTER_BICUBIC ? 2.0 : f == EH_FILTER_LANCZOS ? 3.0 : 1.0;
    double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    support *= fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->lo = malloc(sizeof(int) * (size_t)out);
    t->n = malloc(sizeof(int) * (size_t)out);
    t->k = malloc(sizeof(int32_t) * (size_t)out * (size_t)t->ksize);
    double *tmp = malloc(sizeof(double) * (size_t)t->ksize);
    if (!t->lo || !t->n || !t->k || !tmp) {
        free(tmp);
        taps_free(t);
        return -1;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ss = 1.0 / fscale, ww = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        int n = hi - lo;
        if (n > t->ksize)
            n = t->ksize;
        for (int x = 0; x < n; x++) {
            tmp[x] = fn((x + lo - center + 0.5) * ss);
            ww += tmp[x];
        }
        int32_t *k = t->k + (size_t)xx * t->ksize;
        for (int x = 0; x < n; x++) {
            double v = (ww != 0.0 ? tmp[x] / ww : 0.0) * (1 << EH_RESIZE_BITS);
            k[x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        t->lo[xx] = lo;
        t->n[xx] = n;
    }
    free(tmp);
    return 0;
}

static uint8_t clamp8(float v)
{
    v += 0.5f;
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
}

/* Fixed-point sum (with its rounding half already added) to a byte. */
static inline uint8_t clip_fixed(int32_t v)
{
    v >>= EH_RESIZE_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One output row of the horizontal pass; C is a constant after inlining,
 * so the channel loop unrolls and the sums stay in registers. */
static inline void resample_h_row(const uint8_t *in, uint8_t *out, int ow, const taps *t, int C)
{
    for (int xx = 0; xx < ow; xx++) {
        const int32_t *k = t->k + (size_t)xx * t->ksize;
        const uint8_t *p = in + (size_t)t->lo[xx] * C;
        int32_t acc[4];
        for (int c = 0; c < C; c++)
            acc[c] = 1 << (EH_RESIZE_BITS - 1);
        for (int j = 0; j < t->n[xx]; j++, p += C)
            for (int c = 0; c < C; c++)
                acc[c] += k[j] * p[c];
        for (int c = 0; c < C; c++)
            out[(size_t)xx * C + c] = clip_fixed(acc[c]);
    }
}

static void resample_h(const eh_image *src, eh_image *dst, const taps *t)
{
    int C = src->channels;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = src->pixels + (size_t)y * src->width * C;
        uint8_t *out = dst->pixels + (size_t)y * dst->width * C;
        if (C == 3)
            resample_h_row(in, out, dst->width, t, 3);
        else
            resample_h_row(in, out, dst->width, t, 4);
    }
}

/* Vertical pass: each output byte sums its column over the taps' rows,
 * four columns at a time so the sums stay in registers. */
static int resample_v(const eh_image *src, eh_image *dst, const taps *t)
{
    size_t rowbytes = (size_t)src->width * src->channels;
    const int32_t half = 1 << (EH_RESIZE_BITS - 1);
    for (int yy = 0; yy < dst->height; yy++) {
        const int32_t *k = t->k + (size_t)yy * t->ksize;
        const uint8_t *in = src->pixels + (size_t)t->lo[yy] * rowbytes;
        uint8_t *out = dst->pixels + (size_t)yy * rowbytes;
        int n = t->n[yy];
        size_t i = 0;
        for (; i + 4 <= rowbytes; i += 4) {
            int32_t a0 = half, a1 = half, a2 = half, a3 = half;
            const uint8_t *p = in + i;
            for (int j = 0; j < n; j++, p += rowbytes) {
                a0 += k[j] * p[0];
                a1 += k[j] * p[1];
                a2 += k[j] * p[2];
                a3 += k[j] * p[3];
            }
            out[i] = clip_fixed(a0);
            out[i + 1] = clip_fixed(a1);
            out[i + 2] = clip_fixed(a2);
            out[i + 3] = clip_fixed(a3);
        }
        for (; i < rowbytes; i++) {
            int32_t a = half;
            const uint8_t *p = in + i;
            for (int j = 0; j < n; j++, p += rowbytes)
                a += k[j] * *p;
            out[i] = clip_fixed(a);
        }
    }
    return 0;
}

/* Nearest neighbour as Pillow's: the source coordinate advances by the
 * scale through repeated addition (its rounding, not ours, decides ties). */
static eh_image *resize_nearest(const eh_image *img, int width, int height, eh_error *err)
{
    eh_image *dst = image_alloc(width, height, img->channels, 0, err);
    int *xs = malloc(sizeof(int) * (size_t)width);
    if (!dst || !xs) {
        eh_image_free(dst);
        free(xs);
        eh_fail(err, EH_ENOMEM, "resize: out of memory for %dx%d", width, height);
        return NULL;
    }
    double sx = (double)img->width / width, sy = (double)img->height / height;
    double xo = sx * 0.5, yo = sy * 0.5;
    for (int x = 0; x < width; x++, xo += sx)
        xs[x] = (int)xo < img->width ? (int)xo : img->width - 1;
    size_t C = (size_t)img->channels;
    for (int y = 0; y < height; y++, yo += sy) {
        int iy = (int)yo < img->height ? (int)yo : img->height - 1;
        const uint8_t *in = img->pixels + (size_t)iy * img->width * C;
        uint8_t *out = dst->pixels + (size_t)y * width * C;
        for (int x = 0; x < width; x++)
            memcpy(out + (size_t)x * C, in + (size_t)xs[x] * C, C);
    }
    free(xs);
    return dst;
}

static eh_image *resample(const eh_image *img, int width, int height, eh_resize_filter filter, eh_error *err)
{
    eh_image *mid = NULL, *dst = NULL;
    taps th = { 0 }, tv = { 0 };
    const eh_image *cur = img;
    if (width != img->width) {
        if (taps_make(&th, img->width, width, filter) != 0 ||
            !(mid = image_alloc(width, img->height, img->channels, 0, err)))
            goto oom;
        resample_h(img, mid, &th);
        cur = mid;
    }
    if (height != img->height) {
        if (taps_make(&tv, img->height, height, filter) != 0 ||
            !(dst = image_alloc(width, height, img->channels, 0, err)) || resample_v(cur, dst, &tv) != 0)
            goto oom;
        eh_image_free(mid);
    } else {
        dst = mid;
    }
    taps_free(&th);
    taps_free(&tv);
    return dst;
oom:
    taps_free(&th);
    taps_free(&tv);
    eh_image_free(mid);
    eh_image_free(dst);
    eh_fail(err, EH_ENOMEM, "resize: out of memory for %dx%d", width, height);
    return NULL;
}

eh_image *eh_image_resize(const eh_image *img, int width, int height, eh_resize_filter filter, eh_error *err)
{
    if (width <= 0 || height <= 0) {
        eh_fail(err, EH_EINVAL, "resize: bad size %dx%d", width, height);
        return NULL;
    }
    if (width == img->width && height == img->height)
        return eh_image_clone(img, err);
    if (filter == EH_FILTER_NEAREST)
        return resize_nearest(img, width, height, err);
    if (img->channels == 3)
        return resample(img, width, height, filter, err);
    /* RGBA as Pillow does it: resample premultiplied colour ("RGBa"), so
     * transparent pixels lend no colour to their neighbours, then divide. */
    eh_image *pre = eh_image_clone(img, err);
    if (!pre)
        return NULL;
    size_t n = (size_t)img->width * img->height;
    for (uint8_t *p = pre->pixels; n--; p += 4)
        for (int c = 0; c < 3; c++)
            p[c] = muldiv255(p[c], p[3]);
    eh_image *dst = resample(pre, width, height, filter, err);
    eh_image_free(pre);
    if (!dst)
        return NULL;
    n = (size_t)width * height;
    for (uint8_t *p = dst->pixels; n--; p += 4)
        if (p[3] != 0 && p[3] != 255)
            for (int c = 0; c < 3; c++) {
                int v = 255 * p[c] / p[3];
                p[c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return dst;
}

/* ------------------------------------------------------------------------ */
/* Float CHW views for model backends                                       */

float *eh_image_to_chw(const eh_image *img, eh_error *err)
{
    size_t plane = (size_t)img->width * img->height, C = (size_t)img->channels;
    float *chw = malloc(sizeof(float) * 3 * plane);
    if (!chw) {
        eh_fail(err, EH_ENOMEM, "image: out of memory for a %dx%d float view", img->width, img->height);
        return NULL;
    }
    const float inv = 1.0f / 255.0f;
    const uint8_t *p = img->pixels;
    for (size_t i = 0; i < plane; i++, p += C) {
        chw[i] = p[0] * inv;
        chw[plane + i] = p[1] * inv;
        chw[2 * plane + i] = p[2] * inv;
    }
    return chw;
}

eh_image *eh_image_from_chw(const float *chw, int width, int height, eh_error *err)
{
    eh_image *img = image_alloc(width, height, 3, 0, err);
    if (!img)
        return NULL;
    size_t plane = (size_t)width * height;
    uint8_t *p = img->pixels;
    for (size_t i = 0; i < plane; i++, p += 3)
        for (int c = 0; c < 3; c++) {
            float v = chw[(size_t)c * plane + i] * 255.0f;
            p[c] = v != v ? 0 : clamp8(v);     /* NaN from a model becomes black, not UB */
        }
    return img;
}
