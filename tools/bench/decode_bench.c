/* decode_bench.c — times eh_image_decode and raw TurboJPEG on in-memory
 * files; tools/bench/decode builds and drives it beside Pillow.
 *
 *   decode_bench REPS DUMPDIR FILE...
 *
 * Prints one line a file: "path fmt w h ours_ms raw_ms" (medians over REPS;
 * raw_ms is tjDecompressHeader3+tjDecompress2 with a reused handle and
 * buffer, -1 for non-JPEG) and writes our pixels to DUMPDIR/<n>.rgb so the
 * driver can compare them with Pillow's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <turbojpeg.h>

#include "evalhost/image.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s REPS DUMPDIR FILE...\n", argv[0]);
        return 2;
    }
    int reps = atoi(argv[1]);
    double *t = malloc(sizeof(double) * (size_t)reps);
    tjhandle tj = tjInitDecompress();
    for (int f = 3; f < argc; f++) {
        FILE *fp = fopen(argv[f], "rb");
        if (!fp) {
            perror(argv[f]);
            return 1;
        }
        fseek(fp, 0, SEEK_END);
        size_t n = (size_t)ftell(fp);
        fseek(fp, 0, SEEK_SET);
        unsigned char *b = malloc(n);
        if (fread(b, 1, n, fp) != n)
            return 1;
        fclose(fp);

        eh_error err = {0};
        eh_image *img = eh_image_decode(b, n, NULL, &err);     /* warm-up, and the pixels to compare */
        if (!img) {
            fprintf(stderr, "%s: %s\n", argv[f], err.msg);
            return 1;
        }
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            eh_image *x = eh_image_decode(b, n, NULL, &err);
            t[r] = now_ms() - t0;
            eh_image_free(x);
        }
        double ours = median(t, reps), raw = -1;
        eh_image_format fmt = eh_image_sniff(b, n);
        if (fmt == EH_FMT_JPEG) {
            int w, h, ss, cs;
            tjDecompressHeader3(tj, b, n, &w, &h, &ss, &cs);
            unsigned char *px = malloc((size_t)w * h * 3);
            tjDecompress2(tj, b, n, px, w, 0, h, TJPF_RGB, 0);
            for (int r = 0; r < reps; r++) {
                double t0 = now_ms();
                tjDecompressHeader3(tj, b, n, &w, &h, &ss, &cs);
                tjDecompress2(tj, b, n, px, w, 0, h, TJPF_RGB, 0);
                t[r] = now_ms() - t0;
            }
            raw = median(t, reps);
            free(px);
        }
        char dump[4096];
        snprintf(dump, sizeof dump, "%s/%d.rgb", argv[2], f - 3);
        FILE *o = fopen(dump, "wb");
        fwrite(img->pixels, 1, (size_t)img->width * img->height * img->channels, o);
        fclose(o);
        printf("%s %s %d %d %.3f %.3f\n", argv[f], eh_image_format_name(fmt), img->width, img->height, ours, raw);
        fflush(stdout);
        eh_image_free(img);
        free(b);
    }
    tjDestroy(tj);
    free(t);
    return 0;
}
