/* utf8_text.c — text from elsewhere made safe to quote and to keep: the
 * excerpt an error message shows and the sanitized copy a journal stores.
 * Core, so that http.c and the judge backends quote replies the same way
 * without reaching up into host/text. */
#include "evalhost/utf8_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/jscan.h"

char *eh_score_excerpt(const char *text, size_t max_chars, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    size_t o = 0, chars = 0;
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    while (*p && chars < max_chars) {
        /* the strict decoder: surrogates (ED A0..BF) and overlong forms (C0 AF)
         * are invalid too, so an excerpt is always valid UTF-8 */
        size_t cl = eh_utf8_len(p, strnlen((const char *)p, 4));
        if (cl == 0)
            cl = 1;   /* invalid sequence: one byte at a time */
        if (o + cl + 4 > n)
            break;
        if (cl == 1 && (*p < 0x20 || *p == 0x7F || *p >= 0x80))
            buf[o++] = *p >= 0x80 ? '?' : ' ';
        else
            for (size_t k = 0; k < cl; k++)
                buf[o++] = (char)p[k];
        p += cl;
        chars++;
    }
    if (*p && o + 4 <= n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

char *eh_text_sanitize(const char *text, size_t len, size_t max_chars, size_t *out_len, int *cut)
{
    /* worst case: every byte invalid, 3 bytes of U+FFFD each */
    size_t cap = len < SIZE_MAX / 3 ? 3 * len + 1 : SIZE_MAX;
    if (max_chars && max_chars < SIZE_MAX / 4 && 4 * max_chars + 1 < cap)
        cap = 4 * max_chars + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0, o = 0, chars = 0;
    if (cut)
        *cut = 0;
    while (i < len) {
        if (max_chars && chars == max_chars) {
            if (cut)
                *cut = 1;
            break;
        }
        size_t k = p[i] ? eh_utf8_len(p + i, len - i) : 0;
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);   /* U+FFFD for each byte that is no character */
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
        chars++;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}
