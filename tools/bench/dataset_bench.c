/* dataset_bench.c — opening a big benchmark: time to the first pair and
 * resident memory, then a walk over every pair as a run would make it
 * (image located, decoded, freed, pages given back).  Built and run by
 * tools/bench/dataset against the build's libevalhost_core.a.
 *
 *   dataset_bench FILE [--cold] [--walk N] [--no-decode]
 *   dataset_bench FILE --evict     (only evict it, for the binary's cold run)
 *
 * --cold evicts FILE from the page cache first (posix_fadvise), so the
 * first-pair time includes reading from disk. */
#define _DEFAULT_SOURCE 1

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "evalhost/dataset.h"
#include "evalhost/image.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User + system CPU seconds so far: on a busy machine the wall clock
 * measures the neighbours too. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec
           + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* VmRSS or VmHWM from /proc/self/status, in MiB. */
static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtod(line + kl + 1, NULL) / 1024.0;
    if (f)
        fclose(f);
    return v;
}

static int evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    fsync(fd);   /* dirty pages cannot be dropped */
    int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [--cold] [--walk N] [--no-decode]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int cold = 0, decode = 1;
    long walk = -1;
    for (int a = 2; a < argc; a++) {
        if (strcmp(argv[a], "--cold") == 0) cold = 1;
        else if (strcmp(argv[a], "--no-decode") == 0) decode = 0;
        else if (strcmp(argv[a], "--walk") == 0 && a + 1 < argc) walk = atol(argv[++a]);
        else if (strcmp(argv[a], "--evict") == 0) return evict(path) ? 1 : 0;
    }
    if (cold && evict(path) != 0)
        fprintf(stderr, "warning: could not evict %s from the page cache\n", path);

    double rss0 = status_mib("VmRSS");
    eh_error err = {0};
    double t0 = now(), c0 = cpu();
    eh_dataset *ds = eh_dataset_open(path, NULL, &err);
    if (!ds) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    double t_index = now() - t0, c_index = cpu() - c0;
    double rss_open = status_mib("VmRSS"), hwm_open = status_mib("VmHWM");

    eh_dataset_pair p;
    eh_dataset_image_ref ref;
    eh_image *img = NULL;
    if (eh_dataset_get(ds, 0, 1, &p, &err) != EH_OK || eh_dataset_image(ds, 0, 1, &ref, &err) != EH_OK) {
        fprintf(stderr, "first pair: %s\n", err.msg);
        return 1;
    }
    if (decode && !(img = ref.is_path ? eh_image_load(ref.data, NULL, &err)
                                      : eh_image_decode_b64(ref.data, ref.len, NULL, &err))) {
        fprintf(stderr, "first image: %s\n", err.msg);
        return 1;
    }
    double t_first = now() - t0, c_first = cpu() - c0;
    int w = img ? img->width : 0, h = img ? img->height : 0;
    eh_image_free(img);
    eh_dataset_image_ref_release(ds, &ref);
    double size_mib = (double)eh_dataset_size(ds) / (1 << 20);

    printf("file          %s (%.0f MiB, %zu pairs, %zu categories, %zu bad)\n", path, size_mib,
           eh_dataset_total(ds), eh_dataset_ncategories(ds), eh_dataset_bad(ds));
    printf("page cache    %s\n", cold ? "cold (evicted before open)" : "warm");
    printf("index         %.3f s wall, %.3f s CPU (%.0f MiB/s)\n", t_index, c_index, size_mib / t_index);
    printf("first pair    %.3f s wall, %.3f s CPU (%s, image %dx%d%s)\n", t_first, c_first, p.id, w, h,
           decode ? " decoded" : " located");
    printf("RSS           %.1f MiB before open, %.1f MiB after open (peak %.1f MiB = %.2f%% of the file)\n",
           rss0, rss_open, hwm_open, 100.0 * hwm_open / size_mib);

    if (walk != 0) {
        size_t n = 0;
        double tw = now();
        for (size_t c = 0; c < eh_dataset_ncategories(ds); c++)
            for (size_t i = 1; i <= eh_dataset_count(ds, c) && (walk < 0 || (long)n < walk); i++) {
                if (eh_dataset_image(ds, c, i, &ref, &err) != EH_OK)
                    continue;
                if (decode) {
                    img = ref.is_path ? eh_image_load(ref.data, NULL, &err)
                                      : eh_image_decode_b64(ref.data, ref.len, NULL, &err);
                    eh_image_free(img);
                }
                eh_dataset_image_ref_release(ds, &ref);
                n++;
            }
        tw = now() - tw;
        double hwm = status_mib("VmHWM");
        printf("walk          %zu pairs in %.2f s (%.1f pairs/s%s); RSS now %.1f MiB, peak %.1f MiB = %.2f%% of the file\n",
               n, tw, (double)n / tw, decode ? ", each image decoded" : "", status_mib("VmRSS"), hwm,
               100.0 * hwm / size_mib);
    }
    eh_dataset_free(ds);
    return 0;
}
