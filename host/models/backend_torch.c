/* backend_torch.c — the `torch` backend: a TorchScript editor
 * `forward(Tensor img, str instruction) -> Tensor` or judge
 * `forward(Tensor edited, Tensor original, str prompt) -> Tensor` (scores,
 * or logits over "0".."10" whose expected value is the score), through the
 * C API of host/models/torch/residency.cpp (evalhost/torch_shim.h).  Spec keys: path, device (cpu, cuda, cuda:N,
 * auto; default auto), dtype (float32, float16, bfloat16), batch_size,
 * jit_optimize (default false), cpu_copy (default false: on the CPU a load
 * moves nothing; true takes the GPU's path through a second buffer, for
 * tests), and for benchmarks synthetic_bytes +
 * synthetic_params instead of a path (a weight-only model built in memory).
 *
 * A batch is split into groups of equal image size (and, for a forward whose
 * text argument is a single str, equal text); each group is one forward. */
#ifdef EVALHOST_HAVE_TORCH

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evalhost/backend.h"
#include "evalhost/group.h"
#include "evalhost/torch_shim.h"

typedef struct torch_model {
    eh_torch_module *tm;         /* NULL until the model is on the host */
    char path[4096];
    int64_t file_bytes;          /* footprint estimate until the weights are read */
    int64_t synthetic_bytes;     /* > 0: no file, a synthetic model */
    int synthetic_params;
    int jit_optimize;
    int cpu_copy;
    int64_t overlap_chunk;      /* overlap_load: chunk bytes; 0 blocking */
    int overlap_delay_us;
} torch_model;

/* "auto" → the local rank's GPU when CUDA is usable, else the CPU; "cuda" →
 * the local rank's GPU.  The result is written to m->device.  One rule for
 * every libtorch backend (torch, native judge, native editor): backend.h. */
eh_status eh_torch_resolve_device(eh_model *m, const char *want, eh_error *err)
{
    int rank = m->host && m->host->local_rank >= 0 ? m->host->local_rank : 0;
    /* under `srun --gpus-per-task=1` each rank sees one GPU whatever its
     * local rank: wrap around the visible devices */
    int visible = eh_torch_cuda_available() ? eh_torch_cuda_device_count() : 0;
    if (visible > 0)
        rank %= visible;
    if (!strcmp(want, "auto")) {
        if (visible > 0)
            snprintf(m->device, sizeof m->device, "cuda:%d", rank);
        else
            snprintf(m->device, sizeof m->device, "cpu");
    } else if (!strcmp(want, "cuda")) {
        snprintf(m->device, sizeof m->device, "cuda:%d", rank);
    } else {
        snprintf(m->device, sizeof m->device, "%s", want);
    }
    eh_error e = { 0 };
    if (eh_torch_check_device(m->device, &e) != EH_OK)
        return eh_fail(err, EH_EINVAL, "%s: %s", m->section, e.msg);
    return EH_OK;
}

/* Refuses at open what cannot be a TorchScript file: missing, unreadable,
 * not a regular file, or not a zip archive (TorchScript files are zips). */
static eh_status check_file(eh_model *m, torch_model *t, eh_error *err)
{
    struct stat st;
    if (stat(t->path, &st) != 0)
        return eh_fail(err, EH_EIO, "%s: model file %s: %s", m->section, t->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return eh_fail(err, EH_EIO, "%s: model file %s is not a regular file", m->section, t->path);
    FILE *f = fopen(t->path, "rb");
    if (!f)
        return eh_fail(err, EH_EIO, "%s: model file %s: %s", m->section, t->path, strerror(errno));
    unsigned char magic[4] = { 0 };
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got < 4 || memcmp(magic, "PK\x03\x04", 4) != 0)
        return eh_fail(err, EH_EFORMAT,
                       "%s: model file %s is not a TorchScript archive (%s; expected a zip written by "
                       "torch.jit.save)",
                       m->section, t->path, got < 4 ? "shorter than 4 bytes" : "no zip header");
    t->file_bytes = (int64_t)st.st_size;
    return EH_OK;
}

/* m->impl allocated, the section's dtype checked against libtorch and its
 * `device` resolved into m->device: what every libtorch backend's open does
 * first (backend.h). */
eh_status eh_torch_backend_open(eh_model *m, size_t impl_size, eh_error *err)
{
    m->impl = calloc(1, impl_size);
    if (!m->impl)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    eh_error e = { 0 };
    if (eh_torch_check_dtype(m->dtype, &e) != EH_OK)
        return eh_fail(err, EH_EINVAL, "%s: %s", m->section, e.msg);
    return eh_torch_resolve_device(m, eh_node_str(m->spec, "device", "auto"), err);
}

static eh_status torch_open(eh_model *m, eh_error *err)
{
    eh_status rc = eh_torch_backend_open(m, sizeof(torch_model), err);
    if (rc != EH_OK)
        return rc;
    torch_model *t = m->impl;
    t->jit_optimize = eh_node_bool(m->spec, "jit_optimize", 0);
    t->cpu_copy = eh_node_bool(m->spec, "cpu_copy", 0);
    if ((rc = eh_backend_overlap_options(m, &t->overlap_chunk, &t->overlap_delay_us, err)) != EH_OK)
        return rc;
    t->synthetic_bytes = eh_node_int(m->spec, "synthetic_bytes", 0);
    if (t->synthetic_bytes > 0) {
        int64_t np = eh_node_int(m->spec, "synthetic_params", 1000);
        if (np < 1 || np > 1000000 || np > t->synthetic_bytes)
            return eh_fail(err, EH_EINVAL, "%s: synthetic_params must be 1..1000000 and at most synthetic_bytes",
                           m->section);
        t->synthetic_params = (int)np;
        if (!m->name[0])
            snprintf(m->name, sizeof m->name, "synthetic");
        return EH_OK;
    }
    const char *path = eh_node_str(m->spec, "path", NULL);
    if (!path || !*path)
        return eh_fail(err, EH_EINVAL, "%s: the torch backend needs path: (a TorchScript file from torch.jit.save)",
                       m->section);
    if (strlen(path) >= sizeof t->path)
        return eh_fail(err, EH_EINVAL, "%s: path is too long", m->section);
    snprintf(t->path, sizeof t->path, "%s", path);
    return check_file(m, t, err);
}

static eh_status torch_to_host(eh_model *m, eh_error *err)
{
    torch_model *t = m->impl;
    if (t->tm)
        return EH_OK;
    eh_torch_options opt = eh_torch_default_options();
    opt.role = m->role == EH_ROLE_EDITOR ? EH_TORCH_EDITOR : EH_TORCH_JUDGE;
    opt.dtype = m->dtype;
    opt.device = m->device;
    opt.jit_optimize = t->jit_optimize;
    opt.cpu_copy = t->cpu_copy;
    opt.pin = (eh_torch_pin)eh_backend_pin(m);
    opt.overlap_chunk_bytes = t->overlap_chunk;
    opt.overlap_test_delay_us = t->overlap_delay_us;
    eh_error e = { 0 };
    eh_status rc = t->synthetic_bytes > 0
                       ? eh_torch_module_synthetic(t->synthetic_bytes, t->synthetic_params, &opt, &t->tm, &e)
                       : eh_torch_module_load(t->path, &opt, &t->tm, &e);
    if (rc != EH_OK)
        return eh_fail(err, rc, "%s: cannot load %s: %s", m->section,
                       t->synthetic_bytes > 0 ? "synthetic model" : t->path, e.msg);
    eh_log(m->host, EH_LOG_DEBUG, "[load] %s: %d tensors, %.3f GB %s in host memory (%s)", m->section,
           eh_torch_module_tensor_count(t->tm), (double)eh_torch_module_footprint(t->tm) / 1e9, m->dtype,
           eh_torch_module_host_note(t->tm));
    if (eh_torch_module_host_kind(t->tm) == EH_TORCH_HOST_PIN_REFUSED)
        eh_backend_log_host(m, EH_TORCH_HOST_PIN_REFUSED, eh_torch_module_host_note(t->tm));
    return EH_OK;
}

static eh_status torch_to_device(eh_model *m, int64_t *bytes, eh_error *err)
{
    torch_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_torch_module_to_device(t->tm, bytes, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot move to %s: %s", m->section, m->device, e.msg);
    return EH_OK;
}

static eh_status torch_off_device(eh_model *m, eh_error *err)
{
    torch_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_torch_module_off_device(t->tm, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot free %s: %s", m->section, m->device, e.msg);
    return EH_OK;
}

static const char *torch_host_memory(const eh_model *m)
{
    const torch_model *t = m->impl;
    return t->tm ? eh_torch_module_host_note(t->tm) : NULL;
}

static int64_t torch_footprint(const eh_model *m)
{
    const torch_model *t = m->impl;
    if (t->tm)
        return eh_torch_module_footprint(t->tm);
    return t->synthetic_bytes > 0 ? t->synthetic_bytes : t->file_bytes;
}

/* Fills a [k,3,h,w] float batch from k images of one size. */
static float *stack_images(const eh_image *const *imgs, size_t k, eh_error *err)
{
    size_t plane = 3 * (size_t)imgs[0]->width * (size_t)imgs[0]->height;
    float *batch = malloc(sizeof(float) * plane * k);
    if (!batch) {
        eh_fail(err, EH_ENOMEM, "out of memory for a batch of %zu images", k);
        return NULL;
    }
    for (size_t i = 0; i < k; i++) {
        float *chw = eh_image_to_chw(imgs[i], err);
        if (!chw) {
            free(batch);
            return NULL;
        }
        memcpy(batch + i * plane, chw, sizeof(float) * plane);
        free(chw);
    }
    return batch;
}

static int same_text(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* What eh_group_gather's `same` sees: a group shares its size(s) and,
 * unless the module takes a list of texts, its text. */
typedef struct group_ctx {
    const void *reqs;
    int text_list;
} group_ctx;

static int same_edit_group(const void *ctx, size_t a, size_t b)
{
    const group_ctx *g = ctx;
    const eh_edit_request *reqs = g->reqs;
    return reqs[a].image->width == reqs[b].image->width && reqs[a].image->height == reqs[b].image->height &&
           (g->text_list || same_text(reqs[a].instruction, reqs[b].instruction));
}

static eh_status torch_edit(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n, eh_error *err)
{
    torch_model *t = m->impl;
    unsigned char *done = calloc(n ? n : 1, 1);
    size_t *members = malloc(sizeof *members * (n ? n : 1));
    const eh_image **imgs = malloc(sizeof *imgs * (n ? n : 1));
    const char **texts = malloc(sizeof *texts * (n ? n : 1));
    if (!done || !members || !imgs || !texts) {
        free(done), free(members), free(imgs), free(texts);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    }
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].image) {
            eh_fail(&results[i].err, EH_EINVAL, "%s: no input image", m->section);
            done[i] = 1;
        }
    }
    group_ctx gc = { reqs, eh_torch_module_text_is_list(t->tm) };
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        size_t k = eh_group_gather(n, i, done, members, same_edit_group, &gc);
        for (size_t j = 0; j < k; j++) {
            imgs[j] = reqs[members[j]].image;
            texts[j] = reqs[members[j]].instruction ? reqs[members[j]].instruction : "";
        }
        eh_error e = { 0 };
        float *out = NULL;
        int oh = 0, ow = 0;
        float *batch = stack_images(imgs, k, &e);
        if (batch && eh_torch_module_edit(t->tm, batch, (int)k, imgs[0]->height, imgs[0]->width, texts, &out, &oh, &ow,
                                          &e) == EH_OK) {
            size_t plane = 3 * (size_t)oh * (size_t)ow;
            for (size_t j = 0; j < k; j++) {
                eh_edit_result *r = &results[members[j]];
                r->image = eh_image_from_chw(out + j * plane, ow, oh, &r->err);
            }
        } else {
            for (size_t j = 0; j < k; j++)
                eh_fail(&results[members[j]].err, e.code ? e.code : EH_EMODEL, "%s: %s", m->section, e.msg);
        }
        free(out);
        free(batch);
    }
    free(done), free(members), free(imgs), free(texts);
    return EH_OK;
}

static const char *judge_prompt(const eh_score_request *r)
{
    if (r->user_prompt)
        return r->user_prompt;
    return r->instruction ? r->instruction : "";
}

static int same_score_group(const void *ctx, size_t a, size_t b)
{
    const group_ctx *g = ctx;
    const eh_score_request *r = g->reqs;
    int text_list = g->text_list;
    return r[a].image->width == r[b].image->width && r[a].image->height == r[b].image->height &&
           r[a].original->width == r[b].original->width && r[a].original->height == r[b].original->height &&
           (text_list || same_text(judge_prompt(&r[a]), judge_prompt(&r[b])));
}

/* One item's score from its model output: a score (k = 1) or logits over
 * "0".."10" (k = 11), whose softmax expectation is the score. */
static void finish_score(eh_model *m, const double *v, int k, eh_score_result *res)
{
    char text[96];
    if (k == 1) {
        if (!isfinite(v[0])) {
            eh_fail(&res->err, EH_EMODEL, "%s: the judge returned a non-finite score", m->section);
            return;
        }
        double s = v[0] < 0 ? 0 : v[0] > 10 ? 10 : v[0];
        if (s != v[0])
            snprintf(text, sizeof text, "score %.4g clamped to %.0f", v[0], s);
        else
            snprintf(text, sizeof text, "score %.2f", s);
        res->score = s;
    } else {
        double mx = -INFINITY;
        for (int i = 0; i < 11; i++) {
            if (!isfinite(v[i])) {
                eh_fail(&res->err, EH_EMODEL, "%s: the judge returned a non-finite logit for \"%d\"", m->section, i);
                return;
            }
            if (v[i] > mx)
                mx = v[i];
        }
        double sum = 0, expected = 0;
        int argmax = 0;
        for (int i = 0; i < 11; i++) {
            res->probs[i] = exp(v[i] - mx);
            sum += res->probs[i];
            if (v[i] > v[argmax])
                argmax = i;
        }
        for (int i = 0; i < 11; i++) {
            res->probs[i] /= sum;
            expected += i * res->probs[i];
        }
        res->has_probs = 1;
        res->score = expected;
        snprintf(text, sizeof text, "expected %.2f (argmax %d)", expected, argmax);
    }
    res->text = strdup(text);
    if (!res->text) {
        eh_fail(&res->err, EH_ENOMEM, "%s: out of memory", m->section);
        res->has_probs = 0;
        return;
    }
    res->ok = 1;
}

static eh_status torch_score(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                             eh_error *err)
{
    torch_model *t = m->impl;
    unsigned char *done = calloc(n ? n : 1, 1);
    size_t *members = malloc(sizeof *members * (n ? n : 1));
    const eh_image **eds = malloc(sizeof *eds * (n ? n : 1));
    const eh_image **origs = malloc(sizeof *origs * (n ? n : 1));
    const char **texts = malloc(sizeof *texts * (n ? n : 1));
    double *out = malloc(sizeof *out * 11 * (n ? n : 1));
    if (!done || !members || !eds || !origs || !texts || !out) {
        free(done), free(members), free(eds), free(origs), free(texts), free(out);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    }
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].image || !reqs[i].original) {
            eh_fail(&results[i].err, EH_EINVAL, "%s: the torch judge needs the edited and the original image",
                    m->section);
            done[i] = 1;
        }
    }
    group_ctx gc = { reqs, eh_torch_module_text_is_list(t->tm) };
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        size_t k = eh_group_gather(n, i, done, members, same_score_group, &gc);
        for (size_t j = 0; j < k; j++) {
            eds[j] = reqs[members[j]].image;
            origs[j] = reqs[members[j]].original;
            texts[j] = judge_prompt(&reqs[members[j]]);
        }
        eh_error e = { 0 };
        int kk = 0;
        float *be = stack_images(eds, k, &e);
        float *bo = be ? stack_images(origs, k, &e) : NULL;
        if (bo && eh_torch_module_judge(t->tm, be, eds[0]->height, eds[0]->width, bo, origs[0]->height, origs[0]->width,
                                        (int)k, texts, out, &kk, &e) == EH_OK) {
            for (size_t j = 0; j < k; j++)
                finish_score(m, out + j * (size_t)kk, kk, &results[members[j]]);
        } else {
            for (size_t j = 0; j < k; j++)
                eh_fail(&results[members[j]].err, e.code ? e.code : EH_EMODEL, "%s: %s", m->section, e.msg);
        }
        free(be);
        free(bo);
    }
    free(done), free(members), free(eds), free(origs), free(texts), free(out);
    return EH_OK;
}

static void torch_close(eh_model *m)
{
    torch_model *t = m->impl;
    eh_torch_module_free(t->tm);
    free(t);
}

const eh_backend eh_backend_torch = {
    .name = "torch",
    .open = torch_open,
    .to_host = torch_to_host,
    .to_device = torch_to_device,
    .off_device = torch_off_device,
    .footprint = torch_footprint,
    .host_memory = torch_host_memory,
    .edit = torch_edit,
    .score = torch_score,
    .close = torch_close,
};

#else
/* Built without libtorch: model.c reports `backend: torch` as unavailable. */
typedef int eh_backend_torch_unavailable;
#endif
