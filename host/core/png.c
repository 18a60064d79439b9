/* png.c — evalhost's PNG codec over libdeflate (see png.h): whole-buffer
 * inflate of the joined IDAT data, SSE2 unfiltering of RGB8/RGBA8 rows
 * straight into the image where the layouts agree, and an encoder with
 * libpng's adaptive filter heuristic.  libdeflate is required (CMake). */
#include "evalhost/png.h"

#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */

/* With p = a + b - c: |p-a| = |b-c|, |p-b| = |a-c|, |p-c| = |a+b-2c|. */
static inline uint8_t paeth(int a, int b, int c)
{
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* SSE2 Sub/Avg/Paeth for 3- and 4-byte pixels (8-bit RGB and RGBA), the
 * shapes of nearly every photo PNG: one pixel per step with its channels in
 * parallel, after libpng's filter_sse2_intrinsics.c.  A 3-byte pixel is
 * loaded as 4 bytes while 4 remain in the row and stored as 3, so that an
 * in-place row never loses a byte it has not read. */
static inline __m128i load4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}

static inline __m128i load3(const uint8_t *p)
{
    return _mm_cvtsi32_si128((int)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16));
}

static inline __m128i load_px(const uint8_t *p, size_t left, size_t bpp)
{
    return bpp == 4 || left >= 4 ? load4(p) : load3(p);
}

static inline void store_px(uint8_t *p, __m128i v, size_t bpp)
{
    int32_t x = _mm_cvtsi128_si32(v);
    if (bpp == 4) {
        memcpy(p, &x, 4);
    } else {
        memcpy(p, &x, 2);
        p[2] = (uint8_t)(x >> 16);
    }
}

static inline __m128i abs_i16(__m128i x)
{
    __m128i neg = _mm_cmplt_epi16(x, _mm_setzero_si128());
    return _mm_sub_epi16(_mm_xor_si128(x, neg), neg);
}

static inline __m128i select_i16(__m128i c, __m128i t, __m128i e)
{
    return _mm_or_si128(_mm_and_si128(c, t), _mm_andnot_si128(c, e));
}

/* bpp is 3 or 4, a constant after inlining; prior is not NULL for 3 and 4. */
static inline __attribute__((always_inline)) void unfilter_sse2(int ft, const uint8_t *in, uint8_t *out,
                                                                const uint8_t *prior, size_t n, size_t bpp)
{
    const __m128i zero = _mm_setzero_si128();
    size_t left = n;
    if (ft == 1) {
        __m128i a = zero;
        for (; left >= bpp; left -= bpp, in += bpp, out += bpp) {
            a = _mm_add_epi8(a, load_px(in, left, bpp));
            store_px(out, a, bpp);
        }
    } else if (ft == 3) {
        __m128i a = zero;
        const __m128i one = _mm_set1_epi8(1);
        for (; left >= bpp; left -= bpp, in += bpp, out += bpp, prior += bpp) {
            __m128i b = load_px(prior, left, bpp);
            __m128i avg = _mm_avg_epu8(a, b);   /* rounds up; PNG truncates: */
            avg = _mm_sub_epi8(avg, _mm_and_si128(_mm_xor_si128(a, b), one));
            a = _mm_add_epi8(load_px(in, left, bpp), avg);
            store_px(out, a, bpp);
        }
    } else {
        __m128i a = zero, b = zero, c;
        for (; left >= bpp; left -= bpp, in += bpp, out += bpp, prior += bpp) {
            c = b;
            b = _mm_unpacklo_epi8(load_px(prior, left, bpp), zero);
            __m128i d = _mm_unpacklo_epi8(load_px(in, left, bpp), zero);
            __m128i pa = _mm_sub_epi16(b, c);           /* p - a */
            __m128i pb = _mm_sub_epi16(a, c);           /* p - b */
            __m128i pc = _mm_add_epi16(pa, pb);         /* p - c */
            pa = abs_i16(pa);
            pb = abs_i16(pb);
            pc = abs_i16(pc);
            __m128i m = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
            __m128i pred = select_i16(_mm_cmpeq_epi16(m, pa), a, select_i16(_mm_cmpeq_epi16(m, pb), b, c));
            a = _mm_add_epi8(d, pred);                  /* bytes wrap mod 256; high bytes stay 0 */
            store_px(out, _mm_packus_epi16(a, a), bpp);
        }
    }
}

static int unfilter_row_sse2(int ft, const uint8_t *in, uint8_t *out, const uint8_t *prior, size_t n, size_t bpp)
{
    if (bpp == 4)
        unfilter_sse2(ft, in, out, prior, n, 4);
    else
        unfilter_sse2(ft, in, out, prior, n, 3);
    return 0;
}
#endif

/* Undoes one row's filter: out[i] = in[i] + predictor.  prior is the row
 * above (already unfiltered) or NULL for the first row; in and out may be
 * the same buffer. */
static int unfilter_row(int ft, const uint8_t *in, uint8_t *out, const uint8_t *prior, size_t n, size_t bpp)
{
    size_t i;
#if defined(__SSE2__)
    if ((bpp == 3 || bpp == 4) && (ft == 1 || ((ft == 3 || ft == 4) && prior)))
        return unfilter_row_sse2(ft, in, out, prior, n, bpp);
#endif
    switch (ft) {
    case 0:
        if (in != out)
            memcpy(out, in, n);
        return 0;
    case 1:
        if (in != out)
            memcpy(out, in, bpp);
        for (i = bpp; i < n; i++)
            out[i] = (uint8_t)(in[i] + out[i - bpp]);
        return 0;
    case 2:
        if (!prior) {
            if (in != out)
                memcpy(out, in, n);
        } else {
            for (i = 0; i < n; i++)
                out[i] = (uint8_t)(in[i] + prior[i]);
        }
        return 0;
    case 3:
        if (!prior) {
            if (in != out)
                memcpy(out, in, bpp);
            for (i = bpp; i < n; i++)
                out[i] = (uint8_t)(in[i] + (out[i - bpp] >> 1));
        } else {
            for (i = 0; i < bpp; i++)
                out[i] = (uint8_t)(in[i] + (prior[i] >> 1));
            for (; i < n; i++)
                out[i] = (uint8_t)(in[i] + ((out[i - bpp] + prior[i]) >> 1));
        }
        return 0;
    case 4:
        if (!prior) {       /* Paeth with a zero row above is Sub */
            if (in != out)
                memcpy(out, in, bpp);
            for (i = bpp; i < n; i++)
                out[i] = (uint8_t)(in[i] + out[i - bpp]);
        } else {
            for (i = 0; i < bpp; i++)
                out[i] = (uint8_t)(in[i] + prior[i]);
            for (; i < n; i++)
                out[i] = (uint8_t)(in[i] + paeth(out[i - bpp], prior[i], prior[i - bpp]));
        }
        return 0;
    }
    return -1;
}

typedef struct png_info {
    uint32_t w, h;
    int depth, ct, interlace;
    const uint8_t *plte;
    size_t plte_n;              /* entries */
    const uint8_t *trns;
    size_t trns_n;              /* bytes */
    const uint8_t *idat;        /* the first IDAT's data */
    size_t idat_len;            /* sum over all IDAT chunks */
    int idat_chunks;
} png_info;

/* Walks the chunks: header, palette, transparency and where the image data
 * lies.  EH_OK, or an error naming the defect. */
static eh_status png_read_chunks(const uint8_t *b, size_t len, png_info *pi, eh_error *err)
{
    memset(pi, 0, sizeof *pi);
    size_t i = 8;
    int seen_ihdr = 0, seen_iend = 0;
    while (i < len) {
        if (len - i < 12)
            return eh_fail(err, EH_EINVAL, "truncated PNG (chunk header cut at byte %zu)", i);
        uint32_t n = be32(b + i);
        const uint8_t *type = b + i + 4, *d = b + i + 8;
        if (n > len - i - 12)
            return eh_fail(err, EH_EINVAL, "truncated PNG (chunk %.4s of %u bytes runs past the end at byte %zu)",
                           (const char *)type, n, len);
        if (!seen_ihdr) {
            if (memcmp(type, "IHDR", 4) != 0 || n != 13)
                return eh_fail(err, EH_EINVAL, "corrupt PNG (first chunk is not IHDR)");
            pi->w = be32(d);
            pi->h = be32(d + 4);
            pi->depth = d[8];
            pi->ct = d[9];
            pi->interlace = d[12];
            seen_ihdr = 1;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            if (!pi->idat)
                pi->idat = d;
            pi->idat_len += n;
            pi->idat_chunks++;
        } else if (memcmp(type, "PLTE", 4) == 0) {
            pi->plte = d;
            pi->plte_n = n / 3;
        } else if (memcmp(type, "tRNS", 4) == 0) {
            pi->trns = d;
            pi->trns_n = n;
        } else if (memcmp(type, "IEND", 4) == 0) {
            seen_iend = 1;
            break;
        }
        i += 12 + (size_t)n;
    }
    if (!seen_ihdr)
        return eh_fail(err, EH_EINVAL, "truncated PNG (no IHDR)");
    if (!seen_iend)
        return eh_fail(err, EH_EINVAL, "truncated PNG (no IEND chunk)");
    if (!pi->idat)
        return eh_fail(err, EH_EINVAL, "corrupt PNG (no IDAT chunk)");
    return EH_OK;
}

static int png_samples(int ct)
{
    switch (ct) {
    case 0: return 1;
    case 2: return 3;
    case 3: return 1;
    case 4: return 2;
    case 6: return 4;
    }
    return 0;
}

/* Converts one unfiltered row to RGB8/RGBA8.  16-bit samples keep their high
 * byte (what libpng's strip_16 and stb do). */
static void png_convert_row(const png_info *pi, const uint8_t *in, uint8_t *out, int oc)
{
    size_t w = pi->w;
    int step = pi->depth == 16 ? 2 : 1;
    switch (pi->ct) {
    case 0:
        for (size_t x = 0; x < w; x++, in += step, out += oc) {
            out[0] = out[1] = out[2] = in[0];
            if (oc == 4)
                out[3] = 255;
        }
        break;
    case 4:
        for (size_t x = 0; x < w; x++, in += 2 * step, out += oc) {
            out[0] = out[1] = out[2] = in[0];
            if (oc == 4)
                out[3] = in[step];
        }
        break;
    case 2:
        for (size_t x = 0; x < w; x++, in += 3 * step, out += oc) {
            out[0] = in[0];
            out[1] = in[step];
            out[2] = in[2 * step];
            if (oc == 4)
                out[3] = 255;
        }
        break;
    case 6:
        for (size_t x = 0; x < w; x++, in += 4 * step, out += oc) {
            out[0] = in[0];
            out[1] = in[step];
            out[2] = in[2 * step];
            if (oc == 4)
                out[3] = in[3 * step];
        }
        break;
    case 3:
        for (size_t x = 0; x < w; x++, out += oc) {
            size_t k = in[x];
            if (k < pi->plte_n) {
                memcpy(out, pi->plte + 3 * k, 3);
            } else {
                out[0] = out[1] = out[2] = 0;   /* out-of-range index: black, as libpng */
            }
            if (oc == 4)
                out[3] = k < pi->trns_n ? pi->trns[k] : 255;
        }
        break;
    }
}

int eh_png_decode(const void *bytes, size_t len, const eh_image_limits *limits, eh_image **out, eh_error *err)
{
    const uint8_t *b = bytes;
    eh_image_limits def = eh_image_default_limits();
    const eh_image_limits *lim = limits ? limits : &def;
    *out = NULL;
    png_info pi;
    if (png_read_chunks(b, len, &pi, err) != EH_OK)
        return 1;
    if (eh_image_check_size(pi.w, pi.h, lim, err) != EH_OK)
        return 1;
    int ns = png_samples(pi.ct);
    if (!ns || (pi.depth != 8 && pi.depth != 16 && pi.depth != 1 && pi.depth != 2 && pi.depth != 4)) {
        eh_fail(err, EH_EINVAL, "corrupt PNG (colour type %d with bit depth %d)", pi.ct, pi.depth);
        return 1;
    }
    if (pi.interlace || pi.depth < 8 || (pi.ct == 3 && pi.depth != 8))
        return 0;
    if (lim->keep_alpha && pi.trns && (pi.ct == 0 || pi.ct == 2))
        return 0;
    if (pi.ct == 3 && !pi.plte) {
        eh_fail(err, EH_EINVAL, "corrupt PNG (palette image without PLTE)");
        return 1;
    }
    int oc = lim->keep_alpha && (pi.ct == 4 || pi.ct == 6 || (pi.ct == 3 && pi.trns)) ? 4 : 3;
    size_t bpp = (size_t)ns * (size_t)(pi.depth / 8);
    size_t rowbytes = (size_t)pi.w * bpp;
    size_t stride = rowbytes + 1;
    size_t raw_n = stride * pi.h;

    eh_image *img = eh_image_alloc((int)pi.w, (int)pi.h, oc, err);
    uint8_t *raw = malloc(raw_n);
    uint8_t *joined = NULL;
    struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
    if (!img || !raw || !dec) {
        if (img)
            eh_fail(err, EH_ENOMEM, "PNG: out of memory for %zu bytes of image data", raw_n);
        goto fail;
    }
    const uint8_t *z = pi.idat;
    if (pi.idat_chunks > 1) {
        /* The zlib stream is split over chunks: join it (compressed, small). */
        joined = malloc(pi.idat_len);
        if (!joined) {
            eh_fail(err, EH_ENOMEM, "PNG: out of memory for %zu bytes of IDAT", pi.idat_len);
            goto fail;
        }
        size_t o = 0, i = 8;
        while (o < pi.idat_len) {
            uint32_t n = be32(b + i);
            if (memcmp(b + i + 4, "IDAT", 4) == 0) {
                memcpy(joined + o, b + i + 8, n);
                o += n;
            }
            i += 12 + (size_t)n;
        }
        z = joined;
    }
    size_t got = 0;
    enum libdeflate_result r = libdeflate_zlib_decompress(dec, z, pi.idat_len, raw, raw_n, &got);
    if (r == LIBDEFLATE_BAD_DATA) {
        eh_fail(err, EH_EINVAL, "corrupt PNG (bad compressed image data)");
        goto fail;
    }
    /* INSUFFICIENT_SPACE: more data than the rows need; like libpng, ignore the excess. */
    if (r == LIBDEFLATE_SUCCESS && got < raw_n) {
        eh_fail(err, EH_EINVAL, "truncated PNG (image data ends after %zu of %zu bytes)", got, raw_n);
        goto fail;
    }
    uint8_t *prev = NULL;
    /* Unfilter straight into the image when its rows are the PNG's rows. */
    int direct = pi.depth == 8 && ((pi.ct == 2 && oc == 3) || (pi.ct == 6 && oc == 4));
    size_t out_stride = (size_t)pi.w * (size_t)oc;
    for (uint32_t y = 0; y < pi.h; y++) {
        uint8_t *row = raw + (size_t)y * stride;
        uint8_t *dst = direct ? img->pixels + (size_t)y * out_stride : row + 1;
        if (unfilter_row(row[0], row + 1, dst, prev, rowbytes, bpp) != 0) {
            eh_fail(err, EH_EINVAL, "corrupt PNG (filter type %d in row %u)", row[0], y);
            goto fail;
        }
        if (!direct)
            png_convert_row(&pi, dst, img->pixels + (size_t)y * out_stride, oc);
        prev = dst;
    }
    libdeflate_free_decompressor(dec);
    free(joined);
    free(raw);
    *out = img;
    return 1;
fail:
    libdeflate_free_decompressor(dec);
    free(joined);
    free(raw);
    eh_image_free(img);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */

/* Sum of absolute values of a filtered row taken as signed bytes: the usual
 * heuristic (libpng's) for picking the filter that compresses best. */
static uint64_t row_cost(const uint8_t *r, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += r[i] < 128 ? r[i] : 256 - r[i];
    return s;
}

/* Filters one row for the encoder.  prior is the row above, or a row of
 * zeros for the first one, so that no loop needs a branch and GCC can
 * vectorise them (every input is an original pixel). */
static void filter_row(int ft, const uint8_t *restrict cur, const uint8_t *restrict prior, uint8_t *restrict out,
                       size_t n, size_t bpp)
{
    size_t i;
    switch (ft) {
    case 0: memcpy(out, cur, n); break;
    case 1:
        memcpy(out, cur, bpp);
        for (i = bpp; i < n; i++)
            out[i] = (uint8_t)(cur[i] - cur[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++)
            out[i] = (uint8_t)(cur[i] - prior[i]);
        break;
    case 3:
        for (i = 0; i < bpp; i++)
            out[i] = (uint8_t)(cur[i] - (prior[i] >> 1));
        for (; i < n; i++)
            out[i] = (uint8_t)(cur[i] - ((cur[i - bpp] + prior[i]) >> 1));
        break;
    default:
        for (i = 0; i < bpp; i++)
            out[i] = (uint8_t)(cur[i] - prior[i]);     /* Paeth with a = c = 0 picks b */
        for (; i < n; i++)
            out[i] = (uint8_t)(cur[i] - paeth(cur[i - bpp], prior[i], prior[i - bpp]));
        break;
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t *put_chunk(uint8_t *o, const char *type, const uint8_t *d, uint32_t n)
{
    put_be32(o, n);
    memcpy(o + 4, type, 4);
    if (n)
        memcpy(o + 8, d, n);
    uint32_t crc = libdeflate_crc32(0, o + 4, (size_t)n + 4);
    put_be32(o + 8 + n, crc);
    return o + 12 + n;
}

eh_status eh_png_encode(const eh_image *img, int level, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    size_t C = (size_t)img->channels, rowbytes = (size_t)img->width * C, stride = rowbytes + 1;
    size_t raw_n = stride * (size_t)img->height;
    uint8_t *raw = malloc(raw_n), *trial = malloc(rowbytes), *zero_row = calloc(rowbytes, 1), *z = NULL, *png = NULL;
    struct libdeflate_compressor *cmp = libdeflate_alloc_compressor(level);
    eh_status st = EH_OK;
    if (!raw || !trial || !zero_row || !cmp) {
        st = eh_fail(err, EH_ENOMEM, "png: out of memory for %zu bytes", raw_n);
        goto done;
    }
    for (int y = 0; y < img->height; y++) {
        const uint8_t *cur = img->pixels + (size_t)y * rowbytes;
        const uint8_t *prior = y ? cur - rowbytes : zero_row;
        uint8_t *row = raw + (size_t)y * stride;
        int best = 0;
        if (level > 0 && level < 3) {
            /* fast levels: one fixed filter (Up: cheap, good on photos);
             * trying all five costs more than the deflate itself */
            best = 2;
            filter_row(2, cur, prior, row + 1, rowbytes, C);
        } else {
            filter_row(0, cur, prior, row + 1, rowbytes, C);
        }
        if (level >= 3) {
            /* Adaptive filtering; level 0 asks for speed, so rows stay unfiltered. */
            uint64_t best_cost = row_cost(row + 1, rowbytes);
            for (int ft = 1; ft <= 4; ft++) {
                filter_row(ft, cur, prior, trial, rowbytes, C);
                uint64_t c = row_cost(trial, rowbytes);
                if (c < best_cost) {
                    best_cost = c;
                    best = ft;
                    memcpy(row + 1, trial, rowbytes);
                }
            }
        }
        row[0] = (uint8_t)best;
    }
    size_t zcap = libdeflate_zlib_compress_bound(cmp, raw_n);
    z = malloc(zcap);
    if (!z) {
        st = eh_fail(err, EH_ENOMEM, "png: out of memory for %zu bytes", zcap);
        goto done;
    }
    size_t zn = libdeflate_zlib_compress(cmp, raw, raw_n, z, zcap);
    if (zn == 0) {
        st = eh_fail(err, EH_EINVAL, "png: compression failed");
        goto done;
    }
    const size_t max_chunk = (size_t)1 << 30;
    size_t nchunks = (zn + max_chunk - 1) / max_chunk;
    png = malloc(8 + 25 + zn + 12 * nchunks + 12);
    if (!png) {
        st = eh_fail(err, EH_ENOMEM, "png: out of memory for %zu bytes", zn);
        goto done;
    }
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)img->width);
    put_be32(ihdr + 4, (uint32_t)img->height);
    ihdr[8] = 8;
    ihdr[9] = img->channels == 4 ? 6 : 2;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *o = put_chunk(png + 8, "IHDR", ihdr, 13);
    for (size_t off = 0; off < zn; off += max_chunk) {
        size_t k = zn - off < max_chunk ? zn - off : max_chunk;
        o = put_chunk(o, "IDAT", z + off, (uint32_t)k);
    }
    o = put_chunk(o, "IEND", NULL, 0);
    *out = png;
    *out_len = (size_t)(o - png);
    png = NULL;
done:
    libdeflate_free_compressor(cmp);
    free(raw);
    free(trial);
    free(zero_row);
    free(z);
    free(png);
    return st;
}
