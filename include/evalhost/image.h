/* image.h — decoded images (RGB8, or RGBA8 when asked), strict decoding by
 * magic bytes, encoding and atomic saving.  Dimensions are checked against
 * the limits from the header, before any pixel buffer is allocated. */
#ifndef EVALHOST_IMAGE_H
#define EVALHOST_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

typedef struct eh_image {
    int width, height;
    int channels;           /* 3 (RGB) or 4 (RGBA) */
    uint8_t *pixels;        /* row-major, width*channels bytes a row, owned */
} eh_image;

typedef struct eh_image_limits {
    int64_t max_pixels;     /* width*height; default 64e6 (image.max_pixels) */
    int max_side;           /* either side; default 65535 (image.max_side) */
    size_t max_b64_len;     /* base64 text length; default 1 GiB (limits.max_b64_len) */
    int keep_alpha;         /* 1: RGBA8 kept for sources with alpha (image.keep_alpha); default 1 */
    int read_flags;         /* eh_image_load's file open flags (EH_FS_NOFOLLOW); default 0 */
} eh_image_limits;

typedef enum eh_image_format {
    EH_FMT_UNKNOWN = 0,
    EH_FMT_PNG,
    EH_FMT_JPEG,
    EH_FMT_BMP,
    EH_FMT_GIF,
    EH_FMT_WEBP,
} eh_image_format;

typedef enum eh_resize_filter {
    EH_FILTER_BILINEAR = 0,
    EH_FILTER_BICUBIC,
    EH_FILTER_NEAREST,
    EH_FILTER_LANCZOS,
} eh_resize_filter;

eh_image_limits eh_image_default_limits(void);

eh_image *eh_image_new(int width, int height, int channels, eh_error *err);  /* zeroed */
eh_image *eh_image_alloc(int width, int height, int channels, eh_error *err);  /* pixels not initialised */
void eh_image_free(eh_image *img);                 /* NULL is a no-op */
eh_image *eh_image_clone(const eh_image *img, eh_error *err);

/* EH_OK when a width x height image is within limits (NULL: defaults);
 * else EH_ELIMIT "image WxH exceeds image.max_pixels (N)" (or max_side), or
 * EH_EINVAL for a zero size.  Decoders call it before allocating. */
eh_status eh_image_check_size(int64_t width, int64_t height, const eh_image_limits *limits, eh_error *err);

eh_image_format eh_image_sniff(const void *bytes, size_t len);
const char *eh_image_format_name(eh_image_format fmt);
eh_image_format eh_image_format_from_path(const char *path);   /* by extension, for saving */

/* limits may be NULL (defaults).  On failure NULL and err names the
 * problem: "truncated JPEG (...)", "not an image (first bytes 3c 68 74 6d)",
 * "image 100000x100000 exceeds image.max_pixels (64000000)", ... (EH_ELIMIT
 * for limits, EH_EINVAL for bad data, EH_EIO for files).  JPEG: EXIF
 * orientation applied, CMYK converted as Pillow does, any libjpeg warning
 * but "extraneous bytes" refused.  16-bit samples keep their high byte;
 * GIF gives its first frame.  Safe to call from several threads. */
eh_image *eh_image_decode(const void *bytes, size_t len, const eh_image_limits *limits, eh_error *err);
eh_image *eh_image_decode_b64(const char *text, size_t len, const eh_image_limits *limits, eh_error *err);
eh_image *eh_image_load(const char *path, const eh_image_limits *limits, eh_error *err);

/* Separable resampling as Pillow's resize (kernel widened when shrinking,
 * so downscaling averages areas; 22-bit fixed-point weights; RGBA through
 * premultiplied colour): the results are Pillow's bytes exactly.
 * Deterministic; a new image, img untouched. */
eh_image *eh_image_resize(const eh_image *img, int width, int height, eh_resize_filter filter, eh_error *err);

/* Encoders return a malloc'd buffer the caller frees.  PNG level: 0..9 (-1:
 * 6); JPEG quality 1..100 (<= 0: 90; 4:4:4 chroma from 90 up, else 4:2:0).
 * eh_image_encode: png, jpeg, bmp, webp (lossy, quality 90); gif refused. */
eh_status eh_image_encode_png(const eh_image *img, int level, uint8_t **out, size_t *out_len, eh_error *err);
eh_status eh_image_encode_jpeg(const eh_image *img, int quality, uint8_t **out, size_t *out_len, eh_error *err);
eh_status eh_image_encode(const eh_image *img, eh_image_format fmt, uint8_t **out, size_t *out_len, eh_error *err);

/* Writes to "<path>.tmp.<pid>", fsyncs, renames (eh_fs_write_atomic); format
 * from the extension (png when none, EH_EFORMAT for an unknown one).  On
 * failure nothing is left behind. */
/* Encodes in the format the path's extension names (png when it has none);
 * errors name the path.  What eh_image_save and the image writer write. */
eh_status eh_image_encode_for_path(const eh_image *img, const char *path, uint8_t **out, size_t *out_len,
                                   eh_error *err);
eh_status eh_image_save(const eh_image *img, const char *path, eh_error *err);

/* Float CHW planes in [0,1], malloc'd (3*w*h floats; alpha dropped). */
float *eh_image_to_chw(const eh_image *img, eh_error *err);
/* From float CHW in [0,1] (clamped), channels 3. */
eh_image *eh_image_from_chw(const float *chw, int width, int height, eh_error *err);

#endif
