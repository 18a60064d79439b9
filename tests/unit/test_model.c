/* test_model.c — model handles with the builtin backend: residency, the
 * swap count (SPEC §3), edits and the metrics judge, the requests a backend
 * cannot take failed by name around the runs it can, and misuse. */
#include <string.h>

#include "check.h"
#include "model_yaml.h"
#include "evalhost/config.h"
#include "evalhost/model.h"

static eh_image *gradient(int w, int h)
{
    eh_image *img = eh_image_new(w, h, 3, NULL);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = img->pixels + ((size_t)y * w + x) * 3;
            p[0] = (unsigned char)(x * 255 / (w - 1));
            p[1] = (unsigned char)(y * 255 / (h - 1));
            p[2] = (unsigned char)((x + y) & 0xFF);
        }
    return img;
}

static void test_swaps(void)
{
    eh_host host;
    memset(&host, 0, sizeof host);
    host.quiet = 1;
    eh_error err = { 0 };
    eh_model *ed = open_yaml(&host, "editor", "{backend: builtin, name: identity, footprint_mb: 2}", &err);
    eh_model *jd = open_yaml(&host, "reward_model", "{params: {model_name: metrics}}", &err);
    CHECK(ed && jd);
    if (!ed || !jd)
        return;
    CHECK_EQ_STR(eh_model_backend_name(jd), "builtin");
    CHECK_EQ_INT(eh_model_role_of(jd), EH_ROLE_JUDGE);
    CHECK_EQ_STR(eh_residency_name(eh_model_state(ed)), "disk");
    /* two-stage over C = 3 categories: 2C-1 = 5 exchanges */
    for (int c = 0; c < 3; c++) {
        CHECK(eh_model_load(ed, &err) == EH_OK);
        CHECK_EQ_STR(eh_residency_name(eh_model_state(ed)), "device");
        CHECK(eh_model_unload(ed, &err) == EH_OK);
        CHECK_EQ_STR(eh_residency_name(eh_model_state(ed)), "host");
        CHECK(eh_model_load(jd, &err) == EH_OK);
        CHECK(eh_model_unload(jd, &err) == EH_OK);
    }
    CHECK_EQ_INT(host.swaps.count, 5);
    CHECK_EQ_INT(host.swaps.moves, 12);
    CHECK_EQ_INT(host.swaps.bytes, 3 * 2000000);
    /* both resident: loading the second without unloading is no exchange */
    CHECK(eh_model_load(ed, &err) == EH_OK);
    CHECK(eh_model_load(jd, &err) == EH_OK);
    CHECK_EQ_INT(host.swaps.count, 6);   /* jd was the last unloaded; ed's load counted 1 */
    eh_model_stats *s = eh_host_model_stats(&host, "editor");
    CHECK(s && s->loads == 4 && s->unloads == 3);
    eh_model_free(ed);
    eh_model_free(jd);
}

/* Requests the builtin backend cannot take (a second picture, a
 * benchmark's layout) fail by name; the runs around them are edited and
 * scored, an RGBA picture among them included.  ed and jd are loaded. */
static void check_refused_between_runs(eh_model *ed, eh_model *jd, const eh_image *img)
{
    eh_error err = { 0 };
    eh_image *rgba = eh_image_new(64, 48, 4, &err);
    const eh_image *second[1] = { img };
    eh_edit_request reqs[5] = {
        { .image = img, .instruction = "rotate 90 degrees" },
        { .image = img, .instruction = "rotate 90 degrees", .more_images = second, .n_more_images = 1 },
        { .image = rgba, .instruction = "rotate 90 degrees" },
        { .image = img, .instruction = "rotate 90 degrees" },
        { .image = img, .instruction = "rotate 90 degrees", .more_images = second, .n_more_images = 1 },
    };
    eh_edit_result res[5];
    CHECK(eh_model_edit_batch(ed, reqs, res, 5, &err) == EH_OK);
    for (int i = 0; i < 5; i++) {
        if (i == 1 || i == 4) {
            CHECK(!res[i].image);
            CHECK_CONTAINS(res[i].err.msg, "editor: the builtin backend takes one input image per edit, not 2");
        } else {
            CHECK(res[i].image && res[i].image->width == 48 && res[i].image->channels == 3);
        }
        eh_image_free(res[i].image);
    }
    eh_score_request sreq[4] = {
        { .image = img, .original = img, .text_first = 1 },
        { .image = img, .original = img },
        { .image = img, .original = img },
        { .image = img, .original = img, .jpeg_quality = 90 },
    };
    eh_score_result sres[4];
    CHECK(eh_model_score_batch(jd, sreq, sres, 4, &err) == EH_OK);
    CHECK(!sres[0].ok && !sres[3].ok && sres[1].ok && sres[2].ok && sres[1].score == 10.0);
    CHECK_CONTAINS(sres[0].err.msg, "judge: the builtin backend cannot send a benchmark's own judge request");
    CHECK_CONTAINS(sres[3].err.msg, "use an http or native judge");
    for (int i = 0; i < 4; i++)
        eh_score_result_clear(&sres[i]);
    eh_image_free(rgba);
}

static void test_edit_and_score(void)
{
    eh_host host;
    memset(&host, 0, sizeof host);
    host.quiet = 1;
    eh_error err = { 0 };
    eh_model *ed = open_yaml(&host, "editor", "{name: imageops}", &err);
    eh_model *jd = open_yaml(&host, "judge", "{name: metrics}", &err);
    CHECK(ed && jd);
    if (!ed || !jd)
        return;
    eh_image *img = gradient(64, 48);
    eh_edit_request reqs[3] = {
        { .image = img, .instruction = "rotate 90 degrees" },
        { .image = img, .instruction = "把天空变成红色" },
        { .image = img, .instruction = "something unusual" },
    };
    eh_edit_result res[3];
    /* not loaded: a state error, not a data failure */
    CHECK(eh_model_edit_batch(ed, reqs, res, 3, &err) == EH_ESTATE);
    CHECK_CONTAINS(err.msg, "editor: model is not loaded");
    CHECK(eh_model_load(ed, &err) == EH_OK);
    CHECK(eh_model_edit_batch(ed, reqs, res, 3, &err) == EH_OK);
    CHECK(res[0].image && res[0].image->width == 48 && res[0].image->height == 64);
    CHECK(res[1].image && res[1].image->pixels[0] > img->pixels[0]);   /* tinted red */
    CHECK(res[2].image && memcmp(res[2].image->pixels, img->pixels, 64 * 48 * 3) != 0);
    /* deterministic */
    eh_edit_result again;
    CHECK(eh_model_edit_batch(ed, &reqs[2], &again, 1, &err) == EH_OK);
    CHECK(again.image && memcmp(again.image->pixels, res[2].image->pixels, 64 * 48 * 3) == 0);
    eh_image_free(again.image);
    /* a judge cannot edit, an editor cannot score */
    eh_score_request sreq[4] = {
        { .image = img, .original = img },
        { .image = res[0].image, .original = img },
        { .image = res[1].image, .original = img },
        { .image = res[1].image, .original = NULL },
    };
    eh_score_result sres[4];
    CHECK(eh_model_score_batch(ed, sreq, sres, 1, &err) == EH_ESTATE);
    CHECK_CONTAINS(err.msg, "cannot score");
    CHECK(eh_model_load(jd, &err) == EH_OK);
    CHECK(eh_model_score_batch(jd, sreq, sres, 4, &err) == EH_OK);
    CHECK(sres[0].ok && sres[0].score == 10.0);
    CHECK(sres[1].ok && sres[1].score < 10.0 && sres[1].score >= 0.0);
    CHECK(sres[2].ok && sres[2].score < 10.0);
    CHECK_CONTAINS(sres[2].text, "Score: ");
    CHECK(!sres[3].ok);
    CHECK_CONTAINS(sres[3].err.msg, "needs the edited and the original image");
    for (int i = 0; i < 4; i++)
        eh_score_result_clear(&sres[i]);
    check_refused_between_runs(ed, jd, img);
    for (int i = 0; i < 3; i++)
        eh_image_free(res[i].image);
    eh_image_free(img);
    eh_model_free(ed);
    eh_model_free(jd);
}

static void test_open_errors(void)
{
    eh_host host;
    memset(&host, 0, sizeof host);
    eh_error err = { 0 };
    static const struct {
        const char *section, *yaml, *want;
    } cases[] = {
        { "judge", "{backend: builtin, name: nonsense}", "unknown builtin model 'nonsense'" },
        { "judge", "{backend: warp}", "unknown backend 'warp'" },
        { "editor", "{name: metrics}", "builtin 'metrics' is a judge, but this section is an editor" },
        { "thing", "{name: metrics}", "role: editor|judge" },
        { "judge", "{foo: 1}", "cannot infer the backend" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(open_yaml(&host, cases[i].section, cases[i].yaml, &err) == NULL);
        CHECK_CONTAINS(err.msg, cases[i].want);
    }
    eh_model_free(NULL);
}

int main(void)
{
    test_swaps();
    test_edit_and_score();
    test_open_errors();
    return check_summary("test_model");
}
