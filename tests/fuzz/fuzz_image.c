/* fuzz_image.c — libFuzzer harness for eh_image_decode (host/core/image.c): one
 * harness for every format, picked by magic bytes as the host does (JPEG via
 * TurboJPEG with EXIF, PNG, BMP and GIF via stb / libdeflate, WebP via
 * libwebp).
 *
 * README fragment: the first input byte picks options (keep_alpha, and the
 * base64 path through eh_image_decode_b64), the rest is the file.  The pixel
 * limit is lowered to 4 MP so that a header promising a huge image is
 * refused before allocation instead of spending the run on memset; a
 * decoded image must honour the limits and its channel count.  Seeds, one
 * folder per format: tests/fuzz/corpus/image/{png,jpeg,bmp,gif,webp}/.
 *
 *   build-fuzz/fuzz_image tests/fuzz/corpus/image/{png,jpeg,bmp,gif,webp} -max_total_time=600 */
#include "evalhost/base64.h"
#include "evalhost/image.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    eh_image_limits lim = eh_image_default_limits();
    lim.max_pixels = 4000000;
    lim.max_side = 8192;
    lim.keep_alpha = opt & 1;
    eh_error err;
    eh_image *img;
    if (opt & 2) {
        size_t tlen = 0;
        char *text = eh_b64_encode(data, size, &tlen);
        if (!text) abort();
        img = eh_image_decode_b64(text, tlen, &lim, &err);
        free(text);
    } else {
        img = eh_image_decode(data, size, &lim, &err);
    }
    if (!img) {
        if (!err.msg[0]) abort();               /* never silent */
        return 0;
    }
    if (img->width <= 0 || img->height <= 0 || (int64_t)img->width * img->height > lim.max_pixels ||
        img->width > lim.max_side || img->height > lim.max_side)
        abort();
    if (img->channels != 3 && !(img->channels == 4 && lim.keep_alpha)) abort();
    /* touch every byte: ASan catches a buffer shorter than w*h*c */
    size_t bytes = (size_t)img->width * img->height * img->channels;
    unsigned sum = 0;
    for (size_t i = 0; i < bytes; i++) sum += img->pixels[i];
    if (sum == 0xffffffffu) abort();            /* keeps the loop */
    eh_image_free(img);
    return 0;
}
