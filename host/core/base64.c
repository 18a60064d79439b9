/* base64.c — RFC 4648 base64 decoding (both alphabets, optional padding,
 * whitespace ignored, "data:...;base64," prefix) and standard encoding.
 * The decoder runs a four-characters-at-a-time fast loop and falls back to a
 * careful loop at whitespace, padding or a bad byte, so benchmark files of
 * hundreds of MB decode at memory speed. */
#include "evalhost/base64.h"

#include <stdlib.h>
#include <string.h>

/* Decoding table: 0..63 a sextet, WS whitespace, PAD '=', BAD anything else.
 * '+' and '-' both mean 62, '/' and '_' both mean 63 (standard and URL-safe). */
enum { B64_WS = 0x40, B64_PAD = 0x41, B64_BAD = 0xff };

static const uint8_t b64_table[256] = {
#define X B64_BAD
    X,  X,  X,  X,  X,  X,  X,  X,  X,  B64_WS, B64_WS, B64_WS, B64_WS, B64_WS, X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      B64_WS, X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  62,
    X,  62, X,  63, 52, 53, 54, 55, 56, 57,     58,     59,     60,     61,     X,  X,  X,  B64_PAD, X,  X,  X,  0,
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10,     11,     12,     13,     14,     15, 16, 17, 18,      19, 20, 21, 22,
    23, 24, 25, X,  X,  X,  X,  63, X,  26,     27,     28,     29,     30,     31, 32, 33, 34,      35, 36, 37, 38,
    39, 40, 41, 42, 43, 44, 45, 46, 47, 48,     49,     50,     51,     X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,      X,  X,  X,  X,       X,  X,  X,  X,
    X,  X,  X,  X,  X,  X,  X,  X,  X,  X,      X,      X,      X,      X,
#undef X
};

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t eh_b64_decoded_max(size_t text_len)
{
    return text_len / 4 * 3 + 3;
}

/* Skips a "data:<mime>;base64," prefix.  Returns the offset of the payload,
 * or (size_t)-1 for a data URL that is not base64. */
static size_t skip_data_prefix(const char *text, size_t len)
{
    if (len < 5 || memcmp(text, "data:", 5) != 0)
        return 0;
    const char *comma = memchr(text, ',', len);
    if (!comma)
        return (size_t)-1;
    size_t c = (size_t)(comma - text);
    if (c < 5 + 7 || memcmp(comma - 7, ";base64", 7) != 0)
        return (size_t)-1;
    return c + 1;
}

static eh_status bad_at(eh_error *err, size_t off, const char *why)
{
    return eh_fail(err, EH_EINVAL, "bad base64 at offset %zu (%s)", off, why);
}

eh_status eh_b64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len, eh_error *err)
{
    *out = NULL;
    *out_len = 0;
    size_t i = skip_data_prefix(text, len);
    if (i == (size_t)-1)
        return bad_at(err, 0, "data URL without ;base64,");

    uint8_t *buf = malloc(eh_b64_decoded_max(len - i) + 1);
    if (!buf)
        return eh_fail(err, EH_ENOMEM, "base64: out of memory for %zu bytes", len);
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *o = buf;
    uint32_t acc = 0;
    int n = 0;              /* sextets in acc */
    size_t pad_at = (size_t)-1;

    while (i < len) {
        /* Fast path: four plain sextets at a quad boundary. */
        if (n == 0) {
            while (i + 4 <= len) {
                uint32_t a = b64_table[s[i]], b = b64_table[s[i + 1]];
                uint32_t c = b64_table[s[i + 2]], d = b64_table[s[i + 3]];
                if ((a | b | c | d) & 0xc0)
                    break;
                uint32_t v = a << 18 | b << 12 | c << 6 | d;
                o[0] = (uint8_t)(v >> 16);
                o[1] = (uint8_t)(v >> 8);
                o[2] = (uint8_t)v;
                o += 3;
                i += 4;
            }
            if (i >= len)
                break;
        }
        uint8_t t = b64_table[s[i]];
        if (t < 64) {
            if (pad_at != (size_t)-1) {
                free(buf);
                return bad_at(err, i, "data after padding");
            }
            acc = acc << 6 | t;
            if (++n == 4) {
                o[0] = (uint8_t)(acc >> 16);
                o[1] = (uint8_t)(acc >> 8);
                o[2] = (uint8_t)acc;
                o += 3;
                acc = 0;
                n = 0;
            }
        } else if (t == B64_PAD) {
            if (pad_at == (size_t)-1) {
                if (n < 2) {
                    free(buf);
                    return bad_at(err, i, "misplaced padding");
                }
                pad_at = i;
            }
        } else if (t != B64_WS) {
            free(buf);
            return bad_at(err, i, "invalid character");
        }
        i++;
    }
    if (n == 1) {
        free(buf);
        return bad_at(err, len, "truncated: one stray character at the end");
    }
    if (n == 2) {
        *o++ = (uint8_t)(acc >> 4);
    } else if (n == 3) {
        *o++ = (uint8_t)(acc >> 10);
        *o++ = (uint8_t)(acc >> 2);
    }
    *out = buf;
    *out_len = (size_t)(o - buf);
    return EH_OK;
}

char *eh_b64_encode(const void *bytes, size_t len, size_t *out_len)
{
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    const uint8_t *s = bytes;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = b64_alphabet[(v >> 6) & 63];
        o[3] = b64_alphabet[v & 63];
        o += 4;
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        o[0] = b64_alphabet[v >> 18];
        o[1] = b64_alphabet[(v >> 12) & 63];
        o[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    *o = '\0';
    if (out_len)
        *out_len = n;
    return out;
}
