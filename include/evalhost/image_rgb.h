/* image_rgb.h — an image with alpha made RGB, the two ways the references
 * do it: the VLM image processors of transformers composite it onto white
 * (convert_to_rgb), diffusers' pipelines take what PIL's convert("RGB")
 * gives (the alpha dropped); and the bytes a judge receives. */
#ifndef EVALHOST_IMAGE_RGB_H
#define EVALHOST_IMAGE_RGB_H

#include "evalhost/image.h"

/* A new RGB image: img composited onto opaque white with Pillow's
 * Image.alpha_composite arithmetic (its bytes exactly), as transformers'
 * convert_to_rgb does for RGBA, LA and palette-with-transparency
 * sources; an RGB img is copied. */
eh_image *eh_image_composite_white(const eh_image *img, eh_error *err);

/* A new RGB image: img's alpha dropped (PIL's convert("RGB")); an RGB img
 * is copied. */
eh_image *eh_image_drop_alpha(const eh_image *img, eh_error *err);

/* img as a judge receives it: composited onto white (the pixels
 * transformers' processor, and so the native judge, sees, whatever a
 * server does with alpha), then JPEG at quality 1..100, or PNG (level 3)
 * for quality 0.  A malloc'd buffer the caller frees; the http judge sends
 * it, the native one decodes it back.  EH_EINVAL "image: need an RGB or
 * RGBA image" for anything else; else the encoder's errors. */
eh_status eh_image_encode_onto_white(const eh_image *img, int quality, uint8_t **out, size_t *out_len, eh_error *err);

#endif
