/* test_image_writer.c — the background image writer: results in submission
 * order, each file durable and decoding to the pixels given, its hash the
 * file's; errors (missing folder, unknown format) reported per image with
 * the path named while later writes go on; the in-flight bound holds; free
 * finishes queued writes; copies reuse written buffers exactly; loads in
 * order with writes, bounded until collected, limits applied. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "evalhost/base64.h"
#include "evalhost/fs.h"
#include "evalhost/image_writer.h"

static eh_image *pattern(int w, int h, int seed)
{
    eh_image *img = eh_image_new(w, h, 3, NULL);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img->pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)((x * 7 + y * 13 + c * 50 + seed * 31) ^ (x * y));
    return img;
}

static int same_pixels(const eh_image *a, const eh_image *b)
{
    return a && b && a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * a->channels) == 0;
}

int main(void)
{
    char dir[] = "/tmp/test_image_writer.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[1100];
    eh_error err = { 0 };

    /* ordered results, durable files, hashes of the files */
    enum { N = 12 };
    eh_image_writer *w = eh_image_writer_new(2, &err);
    CHECK(w != NULL);
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/p%02d.png", dir, i);
        CHECK_EQ_INT(eh_image_writer_submit(w, pattern(320, 200, i), path, &err), EH_OK);
    }
    CHECK(eh_image_writer_pending(w) >= 1);
    eh_image_writer_flush(w);
    CHECK_EQ_INT(eh_image_writer_pending(w), N);
    for (int i = 0; i < N; i++) {
        eh_image_write_result r;
        CHECK_EQ_INT(eh_image_writer_collect(w, 0, &r), 1);
        snprintf(path, sizeof path, "%s/p%02d.png", dir, i);
        CHECK_EQ_STR(r.path, path);
        CHECK_EQ_INT(r.status, EH_OK);
        char want[EH_HASH_HEX];
        CHECK_EQ_INT(eh_hash_file(path, want, NULL), EH_OK);
        CHECK_EQ_STR(r.hash, want);
        eh_image *back = eh_image_load(path, NULL, NULL), *orig = pattern(320, 200, i);
        CHECK(same_pixels(back, orig));
        eh_image_free(back);
        eh_image_free(orig);
        free(r.path);
    }
    eh_image_write_result none;
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &none), 0);   /* nothing outstanding: no wait */
    CHECK_EQ_INT(eh_image_writer_pending(w), 0);

    /* errors are per image, named, in order; the writes after them go on */
    snprintf(path, sizeof path, "%s/missing/a.png", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(8, 8, 1), path, &err), EH_OK);
    snprintf(path, sizeof path, "%s/b.tiff", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(8, 8, 2), path, &err), EH_OK);
    snprintf(path, sizeof path, "%s/c.jpg", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(8, 8, 3), path, &err), EH_OK);
    eh_image_write_result r;
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status == EH_EIO);
    CHECK_CONTAINS(r.error, "/missing/a.png");
    CHECK_CONTAINS(r.error, "No such file or directory");
    free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK_EQ_INT(r.status, EH_EFORMAT);
    CHECK_CONTAINS(r.error, "b.tiff: unsupported image format for saving");
    free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK_EQ_INT(r.status, EH_OK);
    CHECK_CONTAINS(r.path, "/c.jpg");
    eh_image *jpg = eh_image_load(r.path, NULL, NULL);
    CHECK(jpg && jpg->width == 8);
    eh_image_free(jpg);
    free(r.path);
    snprintf(path, sizeof path, "%s/missing/a.png", dir);
    CHECK(access(path, F_OK) != 0);
    eh_image_writer_free(w);

    /* the bound: with one image in flight, a second submit returns only
     * once the first is written, so its result is there without waiting */
    w = eh_image_writer_new(1, &err);
    snprintf(path, sizeof path, "%s/one.png", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(1000, 1000, 4), path, &err), EH_OK);
    snprintf(path, sizeof path, "%s/two.png", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(1000, 1000, 5), path, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_collect(w, 0, &r), 1);
    CHECK_CONTAINS(r.path, "/one.png");
    CHECK_EQ_INT(r.status, EH_OK);
    free(r.path);
    /* free finishes what is queued (the result is dropped, the file is not) */
    snprintf(path, sizeof path, "%s/three.png", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(600, 400, 6), path, &err), EH_OK);
    eh_image_writer_free(w);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/two.png", dir);
    CHECK(access(path, F_OK) == 0);
    eh_image_writer_free(NULL);

    /* copies: the caller keeps its image; a written image's buffer is
     * reused for a later copy, a smaller one included, pixels exact */
    w = eh_image_writer_new(2, &err);
    eh_image *big = pattern(300, 200, 8), *small = pattern(120, 90, 9);
    for (int round = 0; round < 3; round++) {
        snprintf(path, sizeof path, "%s/big%d.png", dir, round);
        CHECK_EQ_INT(eh_image_writer_submit_copy(w, big, path, &err), EH_OK);
        snprintf(path, sizeof path, "%s/small%d.png", dir, round);
        CHECK_EQ_INT(eh_image_writer_submit_copy(w, small, path, &err), EH_OK);
        eh_image_writer_flush(w);
        for (int k = 0; k < 2; k++) {
            CHECK_EQ_INT(eh_image_writer_collect(w, 0, &r), 1);
            CHECK_EQ_INT(r.status, EH_OK);
            eh_image *back = eh_image_load(r.path, NULL, NULL);
            CHECK(same_pixels(back, k == 0 ? big : small));
            eh_image_free(back);
            free(r.path);
        }
    }
    eh_image *again = pattern(300, 200, 8);
    CHECK(same_pixels(big, again));     /* the caller's image untouched */
    eh_image_free(again);
    eh_image_free(big);
    eh_image_free(small);
    eh_image_writer_free(w);

    /* loads share the queue: a load after a write sees the written file;
     * loaded images count until collected, and a queue full of them is
     * refused rather than waited on forever */
    w = eh_image_writer_new(2, &err);
    snprintf(path, sizeof path, "%s/l.png", dir);
    CHECK_EQ_INT(eh_image_writer_submit(w, pattern(64, 48, 7), path, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_load(w, path, NULL, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status == EH_OK && r.image == NULL);
    free(r.path);
    snprintf(path, sizeof path, "%s/nothere.png", dir);
    CHECK_EQ_INT(eh_image_writer_load(w, path, NULL, &err), EH_OK);
    eh_image_writer_flush(w);
    snprintf(path, sizeof path, "%s/l.png", dir);
    eh_error full = { 0 };
    CHECK_EQ_INT(eh_image_writer_load(w, path, NULL, &full), EH_ESTATE);
    CHECK_CONTAINS(full.msg, "2 loads not collected (in flight at most 2;");
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK_CONTAINS(r.path, "/l.png");
    eh_image *want = pattern(64, 48, 7);
    CHECK(r.status == EH_OK && same_pixels(r.image, want));
    eh_image_free(want);
    eh_image_free(r.image);
    free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status == EH_EIO && r.image == NULL);
    CHECK_CONTAINS(r.error, "nothere.png");
    free(r.path);
    eh_image_limits tiny = eh_image_default_limits();
    tiny.max_pixels = 100;
    snprintf(path, sizeof path, "%s/l.png", dir);
    CHECK_EQ_INT(eh_image_writer_load(w, path, &tiny, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_load(w, path, NULL, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status == EH_ELIMIT && r.image == NULL);
    CHECK_CONTAINS(r.error, "exceeds image.max_pixels (100)");
    free(r.path);
    eh_image_writer_free(w);     /* the second load's image is dropped with it */

    /* decodes: a PNG's bytes, the same as base64 (a data: URL) and as a
     * path, each under its key and in order; bad base64 and bytes that are
     * no image come back as results with the decoder's message; wait_oldest
     * returns once the first is done */
    w = eh_image_writer_new(8, &err);
    eh_image *src = pattern(40, 30, 3);
    uint8_t *png = NULL;
    size_t png_len = 0;
    CHECK_EQ_INT(eh_image_encode(src, EH_FMT_PNG, &png, &png_len, &err), EH_OK);
    size_t b64_len = 0;
    char *b64 = eh_b64_encode(png, png_len, &b64_len);
    char *url = malloc(b64_len + 64);
    snprintf(url, b64_len + 64, "data:image/png;base64,%s", b64);
    snprintf(path, sizeof path, "%s/l.png", dir);
    CHECK_EQ_INT(eh_image_writer_decode(w, "bytes", png, png_len, EH_SOURCE_BYTES, NULL, &err), EH_OK);
    free(png);   /* copied at submit */
    CHECK_EQ_INT(eh_image_writer_decode(w, "b64", url, strlen(url), EH_SOURCE_BASE64, NULL, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_decode(w, "path", path, strlen(path), EH_SOURCE_PATH, NULL, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_decode(w, "junk", "@@@@", 4, EH_SOURCE_BASE64, NULL, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_decode(w, "noimage", "hello", 5, EH_SOURCE_BYTES, NULL, &err), EH_OK);
    eh_image_writer_wait_oldest(w);
    CHECK_EQ_INT(eh_image_writer_collect(w, 0, &r), 1);
    CHECK(!strcmp(r.path, "bytes") && r.status == EH_OK && same_pixels(r.image, src));
    eh_image_free(r.image), free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(!strcmp(r.path, "b64") && r.status == EH_OK && same_pixels(r.image, src));
    eh_image_free(r.image), free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    want = pattern(64, 48, 7);   /* l.png, written above */
    CHECK(!strcmp(r.path, "path") && r.status == EH_OK && same_pixels(r.image, want));
    eh_image_free(want), eh_image_free(r.image), free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(!strcmp(r.path, "junk") && r.status != EH_OK && r.image == NULL);
    CHECK_CONTAINS(r.error, "bad base64 at offset 0");
    free(r.path);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(!strcmp(r.path, "noimage") && r.status != EH_OK && r.image == NULL);
    CHECK_CONTAINS(r.error, "not an image (first bytes 68 65 6c 6c 6f)");
    free(r.path);
    eh_image_writer_wait_oldest(w);   /* nothing outstanding: returns */
    CHECK_EQ_INT(eh_image_writer_collect(w, 0, &r), 0);
    /* converts (the report's thumbnails): a 40x30 PNG from base64 shrunk to
     * fit 20 px is 20x15 and equals eh_image_resize's; max_side 0 and a
     * bound above the size keep it; a bad source is the write's error, named
     * by the output path, and nothing is written */
    char tpath[1100], kpath[1100], bpath[1100];
    snprintf(tpath, sizeof tpath, "%s/t.png", dir);
    snprintf(kpath, sizeof kpath, "%s/k.png", dir);
    snprintf(bpath, sizeof bpath, "%s/bad.jpg", dir);
    CHECK_EQ_INT(eh_image_writer_convert(w, tpath, url, strlen(url), EH_SOURCE_BASE64, NULL, 20, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_convert(w, kpath, url, strlen(url), EH_SOURCE_BASE64, NULL, 40, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_convert(w, bpath, "hello", 5, EH_SOURCE_BYTES, NULL, 20, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(!strcmp(r.path, tpath) && r.status == EH_OK && r.image == NULL && strlen(r.hash) > 0);
    free(r.path);
    eh_image *t = eh_image_load(tpath, NULL, &err);
    eh_image *tw = eh_image_resize(src, 20, 15, EH_FILTER_BILINEAR, &err);
    CHECK(t && tw && t->width == 20 && t->height == 15 && same_pixels(t, tw));
    eh_image_free(t), eh_image_free(tw);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status == EH_OK);
    free(r.path);
    t = eh_image_load(kpath, NULL, &err);
    CHECK(t && same_pixels(t, src));
    eh_image_free(t);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status != EH_OK && r.image == NULL);
    CHECK_CONTAINS(r.error, "bad.jpg: ");
    CHECK_CONTAINS(r.error, "not an image");
    CHECK(!eh_fs_exists(bpath));
    free(r.path);
    /* a source path that is a symbolic link, with EH_FS_NOFOLLOW in the
     * limits (an edited image read back from the run folder): refused */
    char lpath[1100];
    snprintf(lpath, sizeof lpath, "%s/link.png", dir);
    CHECK(symlink(kpath, lpath) == 0);
    eh_image_limits nofollow = eh_image_default_limits();
    nofollow.read_flags = EH_FS_NOFOLLOW;
    CHECK_EQ_INT(eh_image_writer_convert(w, bpath, lpath, strlen(lpath), EH_SOURCE_PATH, &nofollow, 20, &err), EH_OK);
    CHECK_EQ_INT(eh_image_writer_collect(w, 1, &r), 1);
    CHECK(r.status != EH_OK);
    CHECK_CONTAINS(r.error, "symbolic link");
    CHECK(!eh_fs_exists(bpath));
    free(r.path);

    free(b64), free(url);
    eh_image_free(src);
    eh_image_writer_free(w);

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return check_summary("test_image_writer");
}
