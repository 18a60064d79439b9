/* test_vlm_pre.c — Qwen-VL preprocessing: smart_resize against values from
 * transformers' smart_resize, config parsing (both key styles, bad fields),
 * the normalised value of a flat image, the patch layout, bad sizes.
 * Bit-level parity with transformers is tests/e2e/test_vlm_parity.py. */
#include "evalhost/vlm_pre.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static eh_node *num_node(int64_t v)
{
    eh_node *n = eh_node_new(EH_NODE_INT);
    n->u.integer = v;
    return n;
}

static void test_smart_resize(void)
{
    eh_vlm_config c = eh_vlm_default_config();
    c.max_pixels = 12845056;
    eh_error err;
    int h = 0, w = 0;
    /* expected values: transformers' smart_resize(h, w, factor, min, max) */
    CHECK_EQ_INT(eh_vlm_smart_resize(1000, 27, &c, &h, &w, &err), EH_OK);
    CHECK_EQ_INT(h, 1008);
    CHECK_EQ_INT(w, 28);
    CHECK_EQ_INT(eh_vlm_smart_resize(3000, 4000, &c, &h, &w, &err), EH_OK);
    CHECK_EQ_INT(h, 2996);
    CHECK_EQ_INT(w, 4004);
    CHECK_EQ_INT(eh_vlm_smart_resize(2, 2, &c, &h, &w, &err), EH_OK);
    CHECK_EQ_INT(h, 56);
    CHECK_EQ_INT(w, 56);
    c.max_pixels = 200000;
    CHECK_EQ_INT(eh_vlm_smart_resize(517, 333, &c, &h, &w, &err), EH_OK);
    CHECK_EQ_INT(h, 504);
    CHECK_EQ_INT(w, 336);
    c.patch_size = 16;
    c.min_pixels = 65536;
    c.max_pixels = 16777216;
    CHECK_EQ_INT(eh_vlm_smart_resize(3000, 4000, &c, &h, &w, &err), EH_OK);
    CHECK_EQ_INT(h, 3008);
    CHECK_EQ_INT(w, 4000);

    CHECK_EQ_INT(eh_vlm_smart_resize(1, 1, &c, &h, &w, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "image 1x1 is too small");
    CHECK_EQ_INT(eh_vlm_smart_resize(400, 2, &c, &h, &w, &err), EH_OK);        /* ratio 200: at the limit */
    CHECK_EQ_INT(eh_vlm_smart_resize(402, 2, &c, &h, &w, &err), EH_EINVAL);    /* 201: past it */
    CHECK_CONTAINS(err.msg, "aspect ratio 201.0 exceeds 200");
}

static void test_config(void)
{
    eh_error err;
    eh_vlm_config c;
    eh_node *m = eh_node_new(EH_NODE_MAP), *size = eh_node_new(EH_NODE_MAP);
    eh_node_set(size, "shortest_edge", num_node(65536));
    eh_node_set(size, "longest_edge", num_node(16777216));
    eh_node_set(m, "size", size);
    eh_node_set(m, "patch_size", num_node(16));
    CHECK_EQ_INT(eh_vlm_config_from_node(m, "cfg", &c, &err), EH_OK);
    CHECK_EQ_INT(c.min_pixels, 65536);
    CHECK_EQ_INT(c.max_pixels, 16777216);
    CHECK_EQ_INT(c.patch_size, 16);
    eh_node_set(m, "max_pixels", num_node(1000000));      /* min/max_pixels override size, as __init__ does */
    CHECK_EQ_INT(eh_vlm_config_from_node(m, "cfg", &c, &err), EH_OK);
    CHECK_EQ_INT(c.max_pixels, 1000000);
    eh_node_set(m, "patch_size", eh_node_new_string("big", 3));
    CHECK_EQ_INT(eh_vlm_config_from_node(m, "cfg", &c, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "cfg: patch_size must be an integer");
    eh_node_set(m, "patch_size", num_node(14));
    eh_node_set(m, "resample", num_node(2));
    CHECK_EQ_INT(eh_vlm_config_from_node(m, "cfg", &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "resample 2 is not supported");
    eh_node_set(m, "resample", num_node(3));
    eh_node_set(m, "min_pixels", num_node(2000000));
    CHECK_EQ_INT(eh_vlm_config_from_node(m, "cfg", &c, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "min_pixels 2000000 exceeds max_pixels 1000000");
    eh_node_free(m);
    CHECK_EQ_INT(eh_vlm_config_load("tests/data/no-such-config.json", &c, &err), EH_EIO);
}

static void test_preprocess(void)
{
    eh_error err;
    eh_vlm_config c = eh_vlm_default_config();
    /* flat 56x56 image of 128: no resize, every value (128/255 - mean)/std */
    eh_image img = { 56, 56, 3, malloc(56 * 56 * 3) };
    memset(img.pixels, 128, 56 * 56 * 3);
    eh_vlm_patches *p = eh_vlm_preprocess(&img, &c, &err);
    CHECK(p != NULL);
    if (p) {
        CHECK_EQ_INT(p->grid_t, 1);
        CHECK_EQ_INT(p->grid_h, 4);
        CHECK_EQ_INT(p->grid_w, 4);
        CHECK_EQ_INT(p->rows, 16);
        CHECK_EQ_INT(p->dim, 3 * 2 * 14 * 14);
        CHECK_EQ_INT(p->tokens, 4);
        float want = ((float)(128.0 / 255.0) - 0.48145466f) / 0.26862954f;
        CHECK(fabsf(p->data[0] - want) < 1e-7f);
        CHECK(fabsf(want - 0.076336145f) < 1e-6f);     /* numpy's float32 result */
    }
    eh_vlm_patches_free(p);
    /* layout: a bright pixel at (y=14, x=0) is patch (1,0) = row 2 (merge order), column 0 and its copy at 196 */
    memset(img.pixels, 0, 56 * 56 * 3);
    img.pixels[(14 * 56 + 0) * 3] = 255;
    p = eh_vlm_preprocess(&img, &c, &err);
    CHECK(p != NULL);
    if (p) {
        float hi = (1.0f - 0.48145466f) / 0.26862954f;
        CHECK(fabsf(p->data[2 * p->dim + 0] - hi) < 1e-6f);
        CHECK(fabsf(p->data[2 * p->dim + 196] - hi) < 1e-6f);     /* temporal duplicate */
        CHECK(p->data[1 * p->dim + 0] < 0);
    }
    eh_vlm_patches_free(p);
    eh_vlm_patches_free(NULL);
    img.width = img.height = 1;
    CHECK(eh_vlm_preprocess(&img, &c, &err) == NULL);
    CHECK_CONTAINS(err.msg, "too small");
    free(img.pixels);
}

static void test_resize_identity(void)
{
    uint8_t src[4 * 3 * 3];
    for (int i = 0; i < (int)sizeof src; i++)
        src[i] = (uint8_t)(i * 7);
    uint8_t *same = eh_vlm_resize_bicubic(src, 4, 3, 3, 4, 3);
    CHECK(same && memcmp(same, src, sizeof src) == 0);
    free(same);
    uint8_t flat[10 * 10 * 3];
    memset(flat, 77, sizeof flat);
    uint8_t *up = eh_vlm_resize_bicubic(flat, 10, 10, 3, 23, 7);   /* a flat image stays flat */
    int ok = up != NULL;
    for (int i = 0; up && i < 23 * 7 * 3; i++)
        ok &= up[i] == 77;
    CHECK(ok);
    free(up);
}

int main(void)
{
    test_smart_resize();
    test_config();
    test_preprocess();
    test_resize_identity();
    return check_summary("test_vlm_pre");
}
