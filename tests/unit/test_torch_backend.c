/* test_torch_backend.c — the libtorch shim's C contract, without Lua or
 * Python: argument checks and their messages, a synthetic module's
 * residency moves (plain and through a second buffer), byte counts, forward
 * results read back from the weights, batches, and errors per role.  The
 * TorchScript-file cases run end to end in tests/e2e/test_torch_backend.py. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "tolerance.h"

#ifdef EVALHOST_HAVE_TORCH
#include "evalhost/torch_shim.h"

/* parameter i of a synthetic model holds ((i % 7) + 1) / 8 */
static double synthetic_mean(int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += ((i % 7) + 1) / 8.0;
    return s / n;
}

static void test_checks(void)
{
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_torch_check_dtype("bfloat16", &err), EH_OK);
    CHECK_EQ_INT(eh_torch_check_dtype("bf16", &err), EH_OK);
    CHECK_EQ_INT(eh_torch_check_dtype("float64", &err), EH_EINVAL);
    CHECK_EQ_STR(err.msg, "unknown dtype 'float64' (float32, float16 or bfloat16)");
    CHECK_EQ_INT(eh_torch_check_device("cpu", &err), EH_OK);
    CHECK_EQ_INT(eh_torch_check_device("cuda:x", &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "bad device 'cuda:x'");
    CHECK_EQ_INT(eh_torch_check_device("metal", &err), EH_EINVAL);
    if (!eh_torch_cuda_available()) {
        CHECK_EQ_INT(eh_torch_cuda_device_count(), 0);
        CHECK_EQ_INT(eh_torch_check_device("cuda", &err), EH_EINVAL);
        CHECK_CONTAINS(err.msg, "CUDA is not available");
        int64_t f = -1, t = -1;
        CHECK_EQ_INT(eh_torch_cuda_memory(0, &f, &t, &err), EH_OK);
        CHECK_EQ_INT(f, 0);
        CHECK_EQ_INT(t, 0);
    }
    CHECK(eh_torch_version()[0] != '\0');
}

static void test_load_errors(void)
{
    eh_error err = { 0 };
    eh_torch_module *m = (eh_torch_module *)1;
    eh_torch_options o = { .role = EH_TORCH_EDITOR, .dtype = "float32", .device = "cpu" };
    CHECK_EQ_INT(eh_torch_module_load("/nonexistent/editor.pt", &o, &m, &err), EH_EIO);
    CHECK(m == NULL);
    CHECK_EQ_STR(err.msg, "/nonexistent/editor.pt: No such file or directory");
    char path[4096];
    const char *src = getenv("EVALHOST_SRC");
    snprintf(path, sizeof path, "%s/tests/data/bad/not_an_image.png", src ? src : ".");
    CHECK_EQ_INT(eh_torch_module_load(path, &o, &m, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "not_an_image.png: ");
    CHECK_CONTAINS(err.msg, "(not a TorchScript archive?)");
    CHECK(strchr(err.msg, '\n') == NULL);
    o.dtype = "int4";
    CHECK_EQ_INT(eh_torch_module_synthetic(1000, 10, &o, &m, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "unknown dtype 'int4'");
    o.dtype = "float32";
    CHECK_EQ_INT(eh_torch_module_synthetic(5, 10, &o, &m, &err), EH_EINVAL);
    eh_torch_module_free(NULL);
}

static void test_editor_residency(int cpu_copy)
{
    eh_error err = { 0 };
    eh_torch_module *m = NULL;
    eh_torch_options o = { .role = EH_TORCH_EDITOR, .dtype = "float16", .device = "cpu", .cpu_copy = cpu_copy };
    CHECK_EQ_INT(eh_torch_module_synthetic(20000, 10, &o, &m, &err), EH_OK);
    if (!m)
        return;
    CHECK_EQ_INT(eh_torch_module_tensor_count(m), 10);
    CHECK_EQ_INT(eh_torch_module_footprint(m), 10 * (20000 / 10 / 2) * 2);
    CHECK_EQ_INT(eh_torch_module_host_kind(m), EH_TORCH_HOST_PLAIN);
    CHECK_EQ_INT(eh_torch_module_text_is_list(m), 0);

    float img[2 * 3 * 2 * 2] = { 0 }, *out = NULL;
    const char *texts[2] = { "a", "a" };
    int oh = 0, ow = 0;
    CHECK_EQ_INT(eh_torch_module_edit(m, img, 1, 2, 2, texts, &out, &oh, &ow, &err), EH_ESTATE);
    CHECK_EQ_STR(err.msg, "module is not loaded");

    for (int round = 0; round < 2; round++) {
        int64_t bytes = -1;
        CHECK_EQ_INT(eh_torch_module_to_device(m, &bytes, &err), EH_OK);
        /* a copy moves the padded buffer (10 tensors of 2000 bytes, 256-aligned); no copy counts the footprint */
        CHECK_EQ_INT(bytes, cpu_copy ? 10 * 2048 : 20000);
        CHECK_EQ_INT(eh_torch_module_to_device(m, &bytes, &err), EH_OK); /* already there: nothing moves */
        CHECK_EQ_INT(bytes, 0);
        CHECK_EQ_INT(eh_torch_module_edit(m, img, 2, 2, 2, texts, &out, &oh, &ow, &err), EH_OK);
        CHECK_EQ_INT(oh, 2);
        CHECK_EQ_INT(ow, 2);
        if (out) {
            float want = (float)synthetic_mean(10);
            /* the means are exact (k/8 in float16, summed in double); the
             * output is the mean rounded once to float16 */
            double tol = tol_rounded(1, U_F16, 0, fabs(want));
            int close = 1;
            for (int i = 0; i < 2 * 3 * 2 * 2; i++)
                close &= fabs((double)out[i] - want) <= tol;
            CHECK(close);
            free(out);
            out = NULL;
        }
        CHECK_EQ_INT(eh_torch_module_off_device(m, &err), EH_OK);
        CHECK_EQ_INT(eh_torch_module_off_device(m, &err), EH_OK);
    }
    double scores[11];
    int k = 0;
    CHECK_EQ_INT(eh_torch_module_to_device(m, &(int64_t){ 0 }, &err), EH_OK);
    CHECK_EQ_INT(eh_torch_module_judge(m, img, 2, 2, img, 2, 2, 1, texts, scores, &k, &err), EH_ESTATE);
    CHECK_EQ_STR(err.msg, "this module is an editor");
    /* a str-typed forward refuses mixed texts in one batch */
    const char *mixed[2] = { "a", "b" };
    CHECK_EQ_INT(eh_torch_module_edit(m, img, 2, 2, 2, mixed, &out, &oh, &ow, &err), EH_EMODEL);
    CHECK_CONTAINS(err.msg, "group items by text");
    CHECK(out == NULL);
    eh_torch_module_free(m); /* while on the device */
}

static void test_judge(void)
{
    eh_error err = { 0 };
    eh_torch_module *m = NULL;
    eh_torch_options o = { .role = EH_TORCH_JUDGE, .dtype = "float32", .device = "cpu", .cpu_copy = 1 };
    CHECK_EQ_INT(eh_torch_module_synthetic(4000, 7, &o, &m, &err), EH_OK);
    if (!m)
        return;
    int64_t bytes = 0;
    CHECK_EQ_INT(eh_torch_module_to_device(m, &bytes, &err), EH_OK);
    float a[3 * 3 * 4 * 5] = { 0 }, b[3 * 3 * 2 * 2] = { 0 };
    const char *p[3] = { "x", "x", "x" };
    double out[33];
    int k = 0;
    CHECK_EQ_INT(eh_torch_module_judge(m, a, 4, 5, b, 2, 2, 3, p, out, &k, &err), EH_OK);
    CHECK_EQ_INT(k, 1);
    for (int i = 0; i < 3; i++)
        CHECK(fabs(out[i] - 10.0 * synthetic_mean(7)) < 1e-5);
    eh_torch_module_free(m);
}

int main(void)
{
    test_checks();
    test_load_errors();
    test_editor_residency(0);
    test_editor_residency(1);
    test_judge();
    return check_summary("test_torch_backend");
}

#else

int main(void)
{
    return check_skipped("test_torch_backend", "built without libtorch (EVALHOST_TORCH=OFF or Torch not found)");
}

#endif
