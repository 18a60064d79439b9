/* image_rgb.c — RGBA to RGB as transformers (onto white) and PIL's
 * convert("RGB") (alpha dropped) do it, and a judge's picture encoded. */
#include <string.h>

#include "evalhost/image_rgb.h"

/* Pillow's AlphaComposite.c for an opaque white destination: coef1 =
 * a*2^7, coef2 = (255-a)*2^7 (its PRECISION_BITS 7), divided by 255 with
 * its SHIFTFORDIV255 and rounded; checked against Pillow for every
 * (value, alpha) pair in tests/unit/test_image_rgb.c's table. */
static uint8_t over_white(unsigned v, unsigned a)
{
    unsigned tmp = v * a * 128u + 255u * (255u - a) * 128u + (0x80u << 7);
    return (uint8_t)((((tmp >> 8) + tmp) >> 8) >> 7);
}

static eh_image *to_rgb(const eh_image *img, int composite, eh_error *err)
{
    if (!img || !img->pixels || (img->channels != 3 && img->channels != 4)) {
        eh_fail(err, EH_EINVAL, "image: need an RGB or RGBA image");
        return NULL;
    }
    if (img->channels == 3)
        return eh_image_clone(img, err);
    eh_image *out = eh_image_alloc(img->width, img->height, 3, err);
    if (!out)
        return NULL;
    size_t np = (size_t)img->width * (size_t)img->height;
    const uint8_t *s = img->pixels;
    uint8_t *d = out->pixels;
    for (size_t i = 0; i < np; i++, s += 4, d += 3) {
        if (composite) {
            d[0] = over_white(s[0], s[3]);
            d[1] = over_white(s[1], s[3]);
            d[2] = over_white(s[2], s[3]);
        } else {
            memcpy(d, s, 3);
        }
    }
    return out;
}

eh_image *eh_image_composite_white(const eh_image *img, eh_error *err)
{
    return to_rgb(img, 1, err);
}

eh_image *eh_image_drop_alpha(const eh_image *img, eh_error *err)
{
    return to_rgb(img, 0, err);
}

eh_status eh_image_encode_onto_white(const eh_image *img, int quality, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (!img || !img->pixels || (img->channels != 3 && img->channels != 4))
        return eh_fail(err, EH_EINVAL, "image: need an RGB or RGBA image");
    eh_image *flat = NULL;
    if (img->channels == 4) {
        flat = eh_image_composite_white(img, err);
        if (!flat)   /* its status is in err; without err, allocation is all that can fail here */
            return err ? err->code : EH_ENOMEM;
        img = flat;
    }
    eh_status rc = quality > 0 ? eh_image_encode_jpeg(img, quality, out, out_len, err)
                               : eh_image_encode_png(img, 3, out, out_len, err);
    eh_image_free(flat);
    return rc;
}
