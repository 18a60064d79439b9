/* jscan.h — a strict JSON scanner (RFC 8259) over a byte range that records
 * where values are instead of building them; what the dataset index is made
 * with.  Every function that fails sets err to "name:line:col: what" and
 * returns -1: syntax errors are EH_EINVAL, nesting past max_depth EH_ELIMIT
 * naming limits.max_json_depth.  Invalid UTF-8 and lone surrogates in a
 * string are not syntax errors: they set EH_JSTR_BAD for the caller to judge. */
#ifndef EVALHOST_JSCAN_H
#define EVALHOST_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

enum {
    EH_JSTR_ESC = 1,    /* the string holds backslash escapes */
    EH_JSTR_BAD = 2,    /* invalid UTF-8 or a lone \uD800-\uDFFF */
};

typedef struct eh_jscan {
    const uint8_t *b;   /* the text (not NUL-terminated) */
    size_t n, pos;      /* its length and the cursor */
    const char *name;   /* file name for messages */
    int max_depth;      /* open containers allowed (limits.max_json_depth) */
    char *stack;        /* max_depth + 1 bytes of scratch, owned by the caller */
    eh_error *err;
} eh_jscan;

int eh_jscan_fail(eh_jscan *sc, eh_status code, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
int eh_jscan_truncated(eh_jscan *sc);          /* "unexpected end of file (truncated?)" */
void eh_jscan_ws(eh_jscan *sc);                /* skips JSON whitespace */
/* At '"': the content's range (without quotes) and EH_JSTR_* flags; pos
 * ends past the closing quote.  Plain ASCII runs 64 bytes at a time. */
int eh_jscan_string(eh_jscan *sc, size_t *start, size_t *len, unsigned *flags);
int eh_jscan_expect(eh_jscan *sc, char c, const char *what);   /* skips ws, then c */
int eh_jscan_depth(eh_jscan *sc, int depth);   /* -1 when depth > max_depth */
/* Skips ws and reads the next byte into *c; -1 (truncated) at the end. */
int eh_jscan_peek(eh_jscan *sc, uint8_t *c);
/* At '{' or '[' with `depth` containers open around it: checks the depth and
 * steps in.  1: the container was empty (and is consumed); 0: elements follow. */
int eh_jscan_open(eh_jscan *sc, int depth);
/* Reads `"key":`; `what` names the key in the error ("expected <what>"). */
int eh_jscan_key(eh_jscan *sc, const char *what, size_t *start, size_t *len, unsigned *flags);
/* After an element: 1 on ',' (another follows), 0 on `close` (consumed). */
int eh_jscan_next(eh_jscan *sc, char close);
/* Skips one value of any kind, validating it, with `depth` containers
 * already open around it (no recursion: the stack is sc->stack). */
int eh_jscan_skip(eh_jscan *sc, int depth);

/* Length of the valid UTF-8 sequence at s (1..4), 0 when invalid. */
size_t eh_utf8_len(const uint8_t *s, size_t n);
/* Unescapes string content the scanner accepted into out (3*n+1 bytes when
 * lossy, n+1 otherwise), NUL-terminated; returns its length.  Lossy turns
 * invalid UTF-8 and lone surrogates into U+FFFD; otherwise the first one
 * returns (size_t)-1 with *bad at its offset. */
size_t eh_json_unescape(const uint8_t *s, size_t n, char *out, int lossy, size_t *bad);
/* The unescaped length, without building the text. */
size_t eh_json_unescaped_len(const uint8_t *s, size_t n);

#endif
