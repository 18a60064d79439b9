/* fuzz_http_reply.c — libFuzzer harness for the http backend's reply
 * readers (host/models/backend_http.c): the judge's chat completion (JSON checks,
 * choices[0].message.content as a string or text parts, the score parser,
 * logprob tokens at the score's position) and the editor's images reply
 * (data[0].b64_json decoded under the image limits, or data[0].url).
 *
 * README fragment: the readers are static, so this file includes
 * backend_http.c itself (its one public symbol renamed) and calls them on
 * a fake response.  The first input byte picks: bit 0, editor reply instead
 * of judge reply; bit 1, content type text/html instead of JSON; bit 2,
 * allow_url_fetch.  A judge reply that is accepted has a score in 0..10 and
 * the logprob distribution, when present, sums to 1; a refused one has a
 * message and no score.  Seeds: tests/fuzz/corpus/http_reply/.
 *
 *   build-fuzz/fuzz_http_reply tests/fuzz/corpus/http_reply -max_total_time=600 */
#define eh_backend_http eh_backend_http_fuzz_copy   /* the core links the real one */
#include "../../host/models/backend_http.c"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    eh_http_response rs;
    memset(&rs, 0, sizeof rs);
    rs.ok = 1;
    rs.status = 200;
    rs.body = malloc(size + 1);     /* as http.c gives it: malloc'd, NUL-terminated */
    if (!rs.body) return 0;
    memcpy(rs.body, data, size);
    rs.body[size] = '\0';
    rs.len = size;
    snprintf(rs.content_type, sizeof rs.content_type, "%s", (opt & 2) ? "text/html" : "application/json");

    http_model hm;
    memset(&hm, 0, sizeof hm);
    hm.limits = eh_image_default_limits();
    hm.limits.max_pixels = 4000000;
    hm.allow_url_fetch = (opt & 4) != 0;
    eh_model m;
    memset(&m, 0, sizeof m);
    m.impl = &hm;
    snprintf(m.section, sizeof m.section, "%s", (opt & 1) ? "editor" : "judge");
    const char *url = "http://127.0.0.1:9/v1/chat/completions?key=x";

    if (opt & 1) {
        eh_error err = { 0 };
        char *fetch = NULL;
        eh_image *img = read_edit_reply(&m, url, &rs, &fetch, &err);
        if (img) {
            if (fetch || img->width <= 0 || img->height <= 0) abort();
            eh_image_free(img);
        } else if (!fetch && !err.msg[0]) {
            abort();
        }
        free(fetch);
    } else {
        eh_score_result res;
        memset(&res, 0, sizeof res);
        int text_only = (opt & 0x80) != 0;   /* a benchmark's parser reads the text */
        read_score_reply(&m, url, &rs, text_only, &res);
        if (res.ok && text_only && !res.text) abort();
        if (res.ok && !(text_only && isnan(res.score))) {
            if (!(res.score >= 0.0 && res.score <= 10.0)) abort();
            if (res.has_probs) {
                double sum = 0;
                for (int i = 0; i < 11; i++) sum += res.probs[i];
                if (fabs(sum - 1.0) > 1e-6) abort();
            }
        } else if (!res.ok && !res.err.msg[0]) {
            abort();   /* a failure always says why (a text-only reply may carry no score: ok) */
        }
        free(res.text);
    }
    free(rs.body);
    return 0;
}
