/* png.h — evalhost's own PNG codec over libdeflate, behind image.c (use
 * eh_image_decode / eh_image_encode_png, not these).  It decodes
 * non-interlaced 8- and 16-bit PNGs of every colour type, faster than stb
 * and Pillow, and leaves the rarer shapes to stb; it encodes RGB8/RGBA8 with
 * adaptive filtering (libdeflate is a required dependency). */
#ifndef EVALHOST_PNG_H
#define EVALHOST_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/image.h"

/* Returns 1 when it handled the PNG (*out set, or NULL with err naming the
 * defect), 0 when the image needs the general decoder (interlaced, depths
 * below 8, colour keys kept as alpha).  Checks the header's size against
 * limits (NULL: defaults) before allocating. */
int eh_png_decode(const void *bytes, size_t len, const eh_image_limits *limits, eh_image **out, eh_error *err);

/* level 0..9 (0: stored, unfiltered).  A malloc'd buffer the caller frees. */
eh_status eh_png_encode(const eh_image *img, int level, uint8_t **out, size_t *out_len, eh_error *err);

#endif
