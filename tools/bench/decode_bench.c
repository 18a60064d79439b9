/* decode_bench.c — the C side of tools/bench/decode.  It loads every FILE
 * into memory, then answers one command a line on stdin so that its Python
 * driver can interleave our decode, raw TurboJPEG and Pillow rep by rep (a
 * busy machine then slows all three alike), each in its own process as in
 * real use:
 *
 *   o I         decode file I with eh_image_decode (+ free); prints ms
 *   r I         tjDecompressHeader3 + tjDecompress2 of file I with a handle
 *               and an output buffer reused across runs; prints ms
 *   d I PATH    writes our pixels of file I to PATH; prints "W H C"
 *
 * A failure prints -1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <turbojpeg.h>

#include "evalhost/image.h"

typedef struct input {
    unsigned char *b;
    size_t n;
    unsigned char *raw_px;      /* TurboJPEG output buffer, kept between runs */
} input;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double run_ours(const input *in)
{
    double t0 = now_ms();
    eh_image *img = eh_image_decode(in->b, in->n, NULL, NULL);
    double t = now_ms() - t0;
    if (!img)
        return -1;
    eh_image_free(img);
    return t;
}

static double run_raw(tjhandle tj, input *in)
{
    int w, h, ss, cs;
    if (!in->raw_px) {
        if (tjDecompressHeader3(tj, in->b, in->n, &w, &h, &ss, &cs) != 0)
            return -1;
        in->raw_px = malloc((size_t)w * h * 3);
        tjDecompress2(tj, in->b, in->n, in->raw_px, w, 0, h, TJPF_RGB, 0);     /* touch the pages */
    }
    double t0 = now_ms();
    if (tjDecompressHeader3(tj, in->b, in->n, &w, &h, &ss, &cs) != 0
        || tjDecompress2(tj, in->b, in->n, in->raw_px, w, 0, h, TJPF_RGB, 0) != 0)
        return -1;
    return now_ms() - t0;
}

static void dump(const input *in, const char *path)
{
    eh_image *img = eh_image_decode(in->b, in->n, NULL, NULL);
    FILE *f = img ? fopen(path, "wb") : NULL;
    if (!f) {
        printf("-1\n");
        eh_image_free(img);
        return;
    }
    fwrite(img->pixels, 1, (size_t)img->width * img->height * img->channels, f);
    fclose(f);
    printf("%d %d %d\n", img->width, img->height, img->channels);
    eh_image_free(img);
}

int main(int argc, char **argv)
{
    int n = argc - 1;
    input *in = calloc((size_t)n + 1, sizeof *in);
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(argv[i + 1], "rb");
        if (!f) {
            perror(argv[i + 1]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        in[i].n = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        in[i].b = malloc(in[i].n);
        if (fread(in[i].b, 1, in[i].n, f) != in[i].n)
            return 1;
        fclose(f);
    }
    tjhandle tj = tjInitDecompress();
    char line[4200], path[4096];
    char cmd;
    int i;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, " %c %d", &cmd, &i) != 2 || i < 0 || i >= n) {
            printf("-1\n");
        } else if (cmd == 'o') {
            printf("%.4f\n", run_ours(&in[i]));
        } else if (cmd == 'r') {
            printf("%.4f\n", run_raw(tj, &in[i]));
        } else if (cmd == 'd' && sscanf(line, " %c %d %4095s", &cmd, &i, path) == 3) {
            dump(&in[i], path);
        } else {
            printf("-1\n");
        }
        fflush(stdout);
    }
    for (i = 0; i < n; i++) {
        free(in[i].b);
        free(in[i].raw_px);
    }
    free(in);
    tjDestroy(tj);
    return 0;
}
