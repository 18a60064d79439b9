/* fuzz_http_url.c — libFuzzer harness for eh_http_safe_url (host/core/http.c),
 * which turns a URL (from a config, or from an editor server's reply that
 * gives the image by URL) into the form that may appear in messages and
 * reports: no query string, no fragment, no user:password@.
 *
 * README fragment: the first input byte picks the mode.  Even: the rest is
 * the URL.  Odd: the URL is "https://user:<secret>@" followed by the rest,
 * and the secret must never appear in the output.  Always: the output is
 * NUL-terminated inside its buffer (sizes 1..64 and 4096 are tried), holds
 * no '?' or '#', and is no longer than the URL.  This is the only
 * HTTP-reply parser with a public entry point so far; the chat-completion
 * reply reader is static in host/models/backend_http.c.  Seeds:
 * tests/fuzz/corpus/http_url/.
 *
 *   build-fuzz/fuzz_http_url tests/fuzz/corpus/http_url -max_total_time=600 */
#include "evalhost/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "\x01s3cr3t-T0KEN\x01"

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    const char *prefix = (opt & 1) ? "https://user:" SECRET "@" : "";
    size_t plen = strlen(prefix);
    char *url = malloc(plen + size + 1);
    if (!url) return 0;
    memcpy(url, prefix, plen);
    memcpy(url + plen, data, size);
    url[plen + size] = '\0';
    size_t ulen = strlen(url);
    char small[64], big[4096];
    size_t n = (size_t)(opt >> 1) % sizeof small + 1;
    char *bufs[2] = { small, big };
    size_t sizes[2] = { n, sizeof big };
    for (int k = 0; k < 2; k++) {
        char *buf = bufs[k];
        memset(buf, 'Z', sizes[k]);
        eh_http_safe_url(url, buf, sizes[k]);
        char *end = memchr(buf, '\0', sizes[k]);
        if (!end) abort();
        if ((size_t)(end - buf) > ulen) abort();
        if (strchr(buf, '?') || strchr(buf, '#')) abort();
        if ((opt & 1) && !contains(data, size, "s3cr3t") && strstr(buf, "s3cr3t")) abort();
    }
    free(url);
    return 0;
}
