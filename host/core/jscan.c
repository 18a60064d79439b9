/* jscan.c — a strict JSON scanner over a byte range that records where
 * things are instead of building values: strings (with flags saying whether
 * they hold escapes or invalid UTF-8), numbers and literals are validated
 * and skipped; containers are skipped without recursion.  The dataset index
 * is built on it; unescaping happens later, when a string is wanted. */
#include "evalhost/jscan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), 0 when invalid. */
size_t eh_utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0) {
        len = 3;
        lo = 0xA0;
    } else if (c >= 0xE1 && c <= 0xEC)
        len = 3;
    else if (c == 0xED) {
        len = 3;
        hi = 0x9F;
    } else if (c >= 0xEE && c <= 0xEF)
        len = 3;
    else if (c == 0xF0) {
        len = 4;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4) {
        len = 4;
        hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

static int hex4(const uint8_t *s, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unescapes the content of a string the scanner accepted (so escapes are
 * well formed) into out, which holds 3*n+1 bytes when lossy, n+1 otherwise.
 * Invalid UTF-8 and lone surrogates become U+FFFD when lossy; otherwise the
 * first one stops it and returns (size_t)-1 with *bad at its offset. */
size_t eh_json_unescape(const uint8_t *s, size_t n, char *out, int lossy, size_t *bad)
{
    size_t o = 0, i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == '\\') {
            uint8_t e = s[i + 1];
            if (e != 'u') {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                out[o++] = to[strchr(from, e) - from];
                i += 2;
                continue;
            }
            unsigned cp, lo;
            hex4(s + i + 2, &cp);
            i += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
                hex4(s + i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                if (!lossy) {
                    *bad = i - 6;
                    return (size_t)-1;
                }
                cp = 0xFFFD;
            }
            o += put_utf8(out + o, cp);
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t k = eh_utf8_len(s + i, n - i);
            if (k) {
                memcpy(out + o, s + i, k);
                o += k;
                i += k;
            } else {
                if (!lossy) {
                    *bad = i;
                    return (size_t)-1;
                }
                o += put_utf8(out + o, 0xFFFD);
                i++;
            }
        }
    }
    out[o] = '\0';
    return o;
}

/* Length of the unescaped text of a string the scanner accepted, without
 * building it (invalid bytes count as themselves). */
size_t eh_json_unescaped_len(const uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            o++;
            i++;
        } else if (s[i + 1] != 'u') {
            o++;
            i += 2;
        } else {
            unsigned cp = 0;
            hex4(s + i + 2, &cp);
            i += 6;
            o += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;   /* a surrogate pair: 3 + 1 below */
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                unsigned lo = 0;
                if (hex4(s + i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    o += 1;
                    i += 6;
                }
            }
        }
    }
    return o;
}

/* 1-based line and column (in characters, UTF-8 continuation bytes not
 * counted) of byte offset off: what an editor jumps to, so a leading BOM
 * (invisible there) is no column.  Only on the error path, so a plain count. */
static void line_col(const uint8_t *b, size_t n, size_t off, size_t *line, size_t *col)
{
    if (off > n)
        off = n;
    *line = 1;
    *col = 1;
    size_t start = n >= 3 && off >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0;
    for (size_t i = start; i < off; i++) {
        if (b[i] == '\n') {
            ++*line;
            *col = 1;
        } else if ((b[i] & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

int eh_jscan_fail(eh_jscan *sc, eh_status code, size_t off, const char *fmt, ...)
{
    char what[EH_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t line, col;
    line_col(sc->b, sc->n, off, &line, &col);
    eh_fail(sc->err, code, "%s:%zu:%zu: %s", sc->name, line, col, what);
    return -1;
}

int eh_jscan_truncated(eh_jscan *sc)
{
    return eh_jscan_fail(sc, EH_EINVAL, sc->n, "unexpected end of file (truncated?)");
}

void eh_jscan_ws(eh_jscan *sc)
{
    const uint8_t *b = sc->b;
    size_t i = sc->pos, n = sc->n;
    while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
        i++;
    sc->pos = i;
}

#define ONES 0x0101010101010101ULL
#define HIGH 0x8080808080808080ULL
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGH)

#if defined(__GNUC__)
/* 1 when any of 64 bytes needs a closer look: '"', '\\', a control byte or
 * a non-ASCII byte (negative as int8).  GCC/Clang vector extensions become
 * SSE2/NEON compares, four 16-byte blocks at a time. */
typedef int8_t v16 __attribute__((vector_size(16)));

static inline v16 special16(const uint8_t *p)
{
    v16 x;
    memcpy(&x, p, 16);
    return (x == '"') | (x == '\\') | (x < 0x20);
}

static int special64(const uint8_t *p)
{
    v16 m = special16(p) | special16(p + 16) | special16(p + 32) | special16(p + 48);
    uint64_t w[2];
    memcpy(w, &m, 16);
    return (w[0] | w[1]) != 0;
}
#else
static int special64(const uint8_t *p)
{
    (void)p;
    return 1;   /* the eight-byte loop below does the work */
}
#endif

/* At '"': records the content's range and flags, leaves pos past the close.
 * Eight bytes at a time while they are plain ASCII: base64 runs at memory
 * speed. */
int eh_jscan_string(eh_jscan *sc, size_t *start, size_t *len, unsigned *flags)
{
    const uint8_t *b = sc->b;
    size_t n = sc->n, i = sc->pos + 1;
    unsigned fl = 0;
    *start = i;
    for (;;) {
        while (i + 64 <= n && !special64(b + i))
            i += 64;
        while (i + 8 <= n) {
            uint64_t x;
            memcpy(&x, b + i, 8);
            uint64_t stop =
                HAS_ZERO(x ^ (ONES * '"')) | HAS_ZERO(x ^ (ONES * '\\')) | ((x - ONES * 0x20) & ~x & HIGH) | (x & HIGH);
            if (stop)
                break;
            i += 8;
        }
        if (i >= n)
            return eh_jscan_fail(sc, EH_EINVAL, *start - 1, "unterminated string (truncated?)");
        uint8_t c = b[i];
        if (c == '"') {
            *len = i - *start;
            *flags = fl;
            sc->pos = i + 1;
            return 0;
        }
        if (c == '\\') {
            fl |= EH_JSTR_ESC;
            if (i + 1 >= n)
                return eh_jscan_truncated(sc);
            uint8_t e = b[i + 1];
            if (e == 'u') {
                unsigned cp, lo;
                if (i + 6 > n)
                    return eh_jscan_truncated(sc);
                if (hex4(b + i + 2, &cp))
                    return eh_jscan_fail(sc, EH_EINVAL, i, "bad \\u escape");
                i += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 6 <= n && b[i] == '\\' && b[i + 1] == 'u' && hex4(b + i + 2, &lo) == 0 && lo >= 0xDC00 &&
                        lo <= 0xDFFF)
                        i += 6;
                    else
                        fl |= EH_JSTR_BAD;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fl |= EH_JSTR_BAD;
                }
            } else if (e && strchr("\"\\/bfnrt", e)) {
                i += 2;
            } else {
                return eh_jscan_fail(sc, EH_EINVAL, i, "bad escape '\\%c' in string", e >= 0x20 && e < 0x7f ? e : '?');
            }
        } else if (c < 0x20) {
            return eh_jscan_fail(sc, EH_EINVAL, i, "control character 0x%02x in string", c);
        } else if (c < 0x80) {
            i++;
        } else {
            size_t k = eh_utf8_len(b + i, n - i);
            if (k) {
                i += k;
            } else {
                fl |= EH_JSTR_BAD;
                i++;
            }
        }
    }
}

static int digits(eh_jscan *sc)
{
    size_t s = sc->pos;
    while (sc->pos < sc->n && sc->b[sc->pos] >= '0' && sc->b[sc->pos] <= '9')
        sc->pos++;
    return sc->pos > s ? 0 : -1;
}

static int scan_number(eh_jscan *sc)
{
    size_t start = sc->pos;
    if (sc->b[sc->pos] == '-')
        sc->pos++;
    if (sc->pos < sc->n && sc->b[sc->pos] == '0')
        sc->pos++;
    else if (digits(sc))
        goto bad;
    if (sc->pos < sc->n && sc->b[sc->pos] == '.') {
        sc->pos++;
        if (digits(sc))
            goto bad;
    }
    if (sc->pos < sc->n && (sc->b[sc->pos] == 'e' || sc->b[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->n && (sc->b[sc->pos] == '+' || sc->b[sc->pos] == '-'))
            sc->pos++;
        if (digits(sc))
            goto bad;
    }
    return 0;
bad:
    if (sc->pos >= sc->n)
        return eh_jscan_truncated(sc);
    return eh_jscan_fail(sc, EH_EINVAL, start, "bad number");
}

static int scan_literal(eh_jscan *sc)
{
    static const char *const lits[] = { "true", "false", "null" };
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (sc->b[sc->pos] != (uint8_t)lits[k][0])
            continue;
        if (sc->n - sc->pos < l) {
            if (memcmp(sc->b + sc->pos, lits[k], sc->n - sc->pos) == 0)
                return eh_jscan_truncated(sc);
            break;
        }
        if (memcmp(sc->b + sc->pos, lits[k], l) == 0) {
            sc->pos += l;
            return 0;
        }
        break;
    }
    return eh_jscan_fail(sc, EH_EINVAL, sc->pos, "unexpected character '%c'",
                         sc->b[sc->pos] >= 0x20 && sc->b[sc->pos] < 0x7f ? sc->b[sc->pos] : '?');
}

int eh_jscan_expect(eh_jscan *sc, char c, const char *what)
{
    eh_jscan_ws(sc);
    if (sc->pos >= sc->n)
        return eh_jscan_truncated(sc);
    if (sc->b[sc->pos] != (uint8_t)c)
        return eh_jscan_fail(sc, EH_EINVAL, sc->pos, "expected %s", what);
    sc->pos++;
    return 0;
}

int eh_jscan_depth(eh_jscan *sc, int depth)
{
    if (depth > sc->max_depth)
        return eh_jscan_fail(sc, EH_ELIMIT, sc->pos, "nesting deeper than %d (limits.max_json_depth)", sc->max_depth);
    return 0;
}

int eh_jscan_peek(eh_jscan *sc, uint8_t *c)
{
    eh_jscan_ws(sc);
    if (sc->pos >= sc->n)
        return eh_jscan_truncated(sc);
    *c = sc->b[sc->pos];
    return 0;
}

int eh_jscan_open(eh_jscan *sc, int depth)
{
    char close = sc->b[sc->pos] == '{' ? '}' : ']';
    uint8_t c = 0;
    if (eh_jscan_depth(sc, depth + 1))
        return -1;
    sc->pos++;
    if (eh_jscan_peek(sc, &c))
        return -1;
    if (c != (uint8_t)close)
        return 0;
    sc->pos++;
    return 1;
}

int eh_jscan_key(eh_jscan *sc, const char *what, size_t *start, size_t *len, unsigned *flags)
{
    uint8_t c = 0;
    if (eh_jscan_peek(sc, &c))
        return -1;
    if (c != '"')
        return eh_jscan_fail(sc, EH_EINVAL, sc->pos, "expected %s", what);
    return eh_jscan_string(sc, start, len, flags) || eh_jscan_expect(sc, ':', "':'") ? -1 : 0;
}

int eh_jscan_next(eh_jscan *sc, char close)
{
    uint8_t c = 0;
    if (eh_jscan_peek(sc, &c))
        return -1;
    sc->pos++;
    if (c == ',')
        return 1;
    if (c == (uint8_t)close)
        return 0;
    return eh_jscan_fail(sc, EH_EINVAL, sc->pos - 1, "expected ',' or '%c'", close);
}

/* Skips one value, validating it, without recursion: `depth` containers
 * are already open around it. */
int eh_jscan_skip(eh_jscan *sc, int depth)
{
    const int base = depth;
    size_t s, l;
    unsigned fl;
    uint8_t c = 0;
    for (;;) {
        if (eh_jscan_peek(sc, &c))
            return -1;
        if (c == '{' || c == '[') {
            int empty = eh_jscan_open(sc, depth);
            if (empty < 0)
                return -1;
            if (!empty) {
                sc->stack[depth++] = c == '{' ? '}' : ']';
                if (c == '{' && eh_jscan_key(sc, "a string key", &s, &l, &fl))
                    return -1;
                continue;
            }
        } else if (c == '"') {
            if (eh_jscan_string(sc, &s, &l, &fl))
                return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (scan_number(sc))
                return -1;
        } else if (scan_literal(sc)) {
            return -1;
        }
        /* a value ended: close containers or move to the next element */
        for (;;) {
            if (depth == base)
                return 0;
            char close = sc->stack[depth - 1];
            int more = eh_jscan_next(sc, close);
            if (more < 0)
                return -1;
            if (!more) {
                depth--;
                continue;
            }
            if (close == '}' && eh_jscan_key(sc, "a string key", &s, &l, &fl))
                return -1;
            break;
        }
    }
}
