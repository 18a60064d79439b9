/* base64.h — RFC 4648 base64: standard and URL-safe alphabets, optional
 * padding, whitespace ignored, an optional "data:<mime>;base64," prefix. */
#ifndef EVALHOST_BASE64_H
#define EVALHOST_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

/* Decodes into a malloc'd buffer (*out, *out_len).  Bad input is EH_EINVAL
 * with "bad base64 at offset N". */
eh_status eh_b64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len, eh_error *err);
/* Encodes (standard alphabet, padded) into a malloc'd NUL-terminated string. */
char *eh_b64_encode(const void *bytes, size_t len, size_t *out_len);
size_t eh_b64_decoded_max(size_t text_len);

#endif
