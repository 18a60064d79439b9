/* fuzz_base64.c — libFuzzer harness for eh_b64_decode (host/core/base64.c).
 *
 * README fragment: the input is base64 text as a benchmark or a server reply
 * would hold it (either alphabet, padding optional, whitespace, a
 * "data:image/...;base64," prefix).  Checked beyond "no crash": a failure
 * names an offset inside the text; a success never writes more than
 * eh_b64_decoded_max() bytes, and re-encoding the bytes decodes back to
 * the same bytes.  Seeds: tests/fuzz/corpus/base64/.
 *
 *   make fuzz-smoke                      # every harness, 5 s each
 *   build-fuzz/fuzz_base64 tests/fuzz/corpus/base64 -max_total_time=600 */
#include "evalhost/base64.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eh_error err;
    uint8_t *out = NULL;
    size_t n = 0;
    if (eh_b64_decode((const char *)data, size, &out, &n, &err) != EH_OK) {
        if (!strstr(err.msg, "base64")) abort();    /* an error must say what it is about */
        return 0;
    }
    if (n > eh_b64_decoded_max(size)) abort();
    size_t elen = 0;
    char *enc = eh_b64_encode(out, n, &elen);
    if (!enc) abort();
    uint8_t *back = NULL;
    size_t bn = 0;
    if (eh_b64_decode(enc, elen, &back, &bn, &err) != EH_OK) abort();
    if (bn != n || (n && memcmp(back, out, n) != 0)) abort();
    free(back);
    free(enc);
    free(out);
    return 0;
}
