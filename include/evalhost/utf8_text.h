/* utf8_text.h — text from a server or a file made safe to quote and to keep
 * (host/core/utf8_text.c).  Core: http.c quotes bodies with it, the judge
 * backends quote and keep replies with it (score_parse.h includes this).
 *
 *   char ex[256];
 *   eh_score_excerpt(body, 200, ex, sizeof ex);   // for an error message
 *   char *kept = eh_text_sanitize(reply, len, 0, &n, NULL);   // valid UTF-8 */
#ifndef EVALHOST_UTF8_TEXT_H
#define EVALHOST_UTF8_TEXT_H

#include <stddef.h>

/* Writes the first `max_chars` UTF-8 characters of text into buf (size n),
 * control characters as spaces, "..." appended when cut.  Returns buf. */
char *eh_score_excerpt(const char *text, size_t max_chars, char *buf, size_t n);

/* Text from a server made safe to parse and to keep: len bytes of text as
 * valid UTF-8, each byte that starts no valid sequence (surrogates and
 * overlong forms included) replaced by U+FFFD, NUL bytes too; at most
 * max_chars characters (0: no cap), *cut set when more followed.  Malloc'd,
 * NUL-terminated; NULL when out of memory. */
char *eh_text_sanitize(const char *text, size_t len, size_t max_chars, size_t *out_len, int *cut);

#endif
