/* fuzz_journal.c — libFuzzer harness for journal replay (host/core/journal.c:
 * JSON Lines with a header, a torn last line dropped, a damaged middle line
 * refused, the run key compared).
 *
 * README fragment: the input is written as <tmp>/journal.jsonl and opened
 * the way `--resume` and `merge.lua` do.  The first input byte picks the
 * mode: even, read-only replay (no lock, no writes); odd, --resume=force,
 * which may cut a torn line away, then one append, and a second replay
 * that must see the appended line last.  Seeds:
 * tests/fuzz/corpus/journal/.
 *
 *   build-fuzz/fuzz_journal tests/fuzz/corpus/journal -max_total_time=600 */
#include "evalhost/journal.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];   /* the harness's own folder, made once per process */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    data++, size--;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/eh_fuzz_journal.XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, EH_JOURNAL_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    close(fd);

    eh_journal_params p = eh_journal_default_params();
    p.run_key = "fuzz-run";
    p.hostname = "fuzzhost";
    eh_error err;
    if (!(opt & 1)) {
        p.read_only = 1;
        eh_journal *j = eh_journal_open(dir, &p, &err);
        if (!j) {
            if (!err.msg[0]) abort();
            return 0;
        }
        if (!eh_journal_header(j)) abort();
        for (size_t i = 0; i < eh_journal_count(j); i++)
            if (!eh_journal_line(j, i)) abort();
        eh_journal_free(j);
        return 0;
    }
    p.resume = EH_RESUME_FORCE;
    eh_journal *j = eh_journal_open(dir, &p, &err);
    if (!j) {
        if (!err.msg[0]) abort();
        return 0;
    }
    size_t before = eh_journal_count(j);
    static const char line[] = "{\"type\":\"edit\",\"id\":\"fuzz\"}";
    if (eh_journal_append(j, line, sizeof line - 1, &err) != EH_OK) abort();
    eh_journal_free(j);
    p.resume = EH_RESUME_FORCE;
    j = eh_journal_open(dir, &p, &err);
    if (!j) abort();                      /* what we wrote must replay */
    if (eh_journal_count(j) != before + 1) abort();
    if (strcmp(eh_journal_line(j, before), line) != 0) abort();
    eh_journal_free(j);
    return 0;
}
