/* fuzz_dataset.c — libFuzzer harness for the benchmark indexer
 * (host/core/dataset.c: the mmap'd one-pass strict JSON scanner, the four shapes,
 * per-pair errors, lazy unescaping, image references, safe file names).
 *
 * README fragment: the first input byte picks the format (auto, JSON,
 * JSONL) and whether tight limits are used (max_pairs 8, max_json_depth 8,
 * id 16 bytes, instruction 64 bytes), the rest is written to a file in a
 * private temporary folder and opened, since the indexer maps a path.
 * Every pair, field and string is then visited as a script would; each
 * pair's file stem must be a safe name.  Seeds: tests/fuzz/corpus/dataset/.
 *
 *   build-fuzz/fuzz_dataset tests/fuzz/corpus/dataset -max_total_time=600 */
#include "evalhost/dataset.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The harness's own scratch file, made once per process (libFuzzer runs
 * inputs one after another in one thread). */
static char scratch[64];

static const char *scratch_path(void)
{
    if (!scratch[0]) {
        char dir[] = "/tmp/eh_fuzz_dataset.XXXXXX";
        if (!mkdtemp(dir)) abort();
        snprintf(scratch, sizeof scratch, "%s/bench.json", dir);
    }
    return scratch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    const char *path = scratch_path();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    close(fd);

    eh_dataset_params p = eh_dataset_default_params();
    p.format = (eh_dataset_format)(opt % 3);
    if (opt & 4) {
        p.max_pairs = 8;
        p.max_json_depth = 8;
        p.max_id_len = 16;
        p.max_instruction_len = 64;
    }
    if (opt & 8) p.field_image = "img";
    eh_error err;
    eh_dataset *ds = eh_dataset_open(path, &p, &err);
    if (!ds) {
        if (!err.msg[0]) abort();
        return 0;
    }
    size_t total = 0;
    for (size_t c = 0; c < eh_dataset_ncategories(ds); c++) {
        const char *cat = eh_dataset_category(ds, c);
        if (!cat || eh_dataset_find_category(ds, cat) < 0) abort();
        size_t n = eh_dataset_count(ds, c);
        total += n;
        for (size_t i = 1; i <= n; i++) {
            eh_dataset_pair pair;
            if (eh_dataset_get(ds, c, i, &pair, &err) != EH_OK) abort();
            if (!pair.name || !eh_dataset_id_safe(pair.name, strlen(pair.name))) abort();
            for (size_t k = 0; k < pair.nfields; k++) {
                eh_dataset_field f;
                if (eh_dataset_field_at(ds, c, i, k, &f, &err) != EH_OK) abort();
                if (f.type == EH_JSON_STRING) {
                    size_t len = 0;
                    char *s = eh_dataset_string(&f, &len, &err);
                    if (s && s[len] != '\0') abort();
                    if (!s && !err.msg[0]) abort();
                    free(s);
                }
            }
            eh_dataset_image_ref ref;
            if (eh_dataset_image(ds, c, i, &ref, &err) == EH_OK)
                eh_dataset_image_ref_release(ds, &ref);
            if (pair.id) {
                char buf[64];
                if (eh_dataset_safe_name(pair.id, strlen(pair.id), buf, sizeof buf, &err) != EH_OK) abort();
                if (!eh_dataset_id_safe(buf, strlen(buf))) abort();
            }
        }
        eh_dataset_pair none;
        if (eh_dataset_get(ds, c, n + 1, &none, &err) == EH_OK) abort();
    }
    if (total != eh_dataset_total(ds)) abort();
    if (strlen(eh_dataset_hash(ds)) != 32) abort();
    eh_dataset_free(ds);
    return 0;
}
