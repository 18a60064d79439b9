/* model.c — model handles: backend choice, residency moves (timed, counted
 * and logged through the host) and batched edit/score calls. */
#include "evalhost/image_rgb.h"
#include "evalhost/model.h"

#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <stdio.h>

#include "evalhost/backend.h"

void eh_score_result_clear(eh_score_result *r)
{
    if (!r)
        return;
    free(r->text);
    memset(r, 0, sizeof *r);
}

const char *eh_residency_name(eh_residency r)
{
    switch (r) {
    case EH_RES_DISK: return "disk";
    case EH_RES_HOST: return "host";
    case EH_RES_DEVICE: return "device";
    }
    return "?";
}

/* The section with `params:` folded in; keys outside params win. */
static eh_node *merged_spec(const eh_node *spec)
{
    eh_node *out = eh_node_new(EH_NODE_MAP);
    if (!out || !spec || spec->type != EH_NODE_MAP)
        return out;
    const eh_node *params = eh_node_get(spec, "params");
    if (params && params->type == EH_NODE_MAP) {
        for (size_t i = 0; i < params->u.list.count; i++) {
            eh_node *c = eh_node_clone(params->u.list.items[i]);
            if (!c || eh_node_set(out, params->u.list.keys[i], c) != 0)
                goto oom;
        }
    }
    for (size_t i = 0; i < spec->u.list.count; i++) {
        if (!strcmp(spec->u.list.keys[i], "params"))
            continue;
        eh_node *c = eh_node_clone(spec->u.list.items[i]);
        if (!c || eh_node_set(out, spec->u.list.keys[i], c) != 0)
            goto oom;
    }
    return out;
oom:
    eh_node_free(out);
    return NULL;
}

static int ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && ieq_n(s + a - b, suffix, b);
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t h = strlen(hay), n = strlen(needle);
    for (size_t i = 0; i + n <= h; i++)
        if (ieq_n(hay + i, needle, n))
            return 1;
    return 0;
}

/* Picks the backend: `backend:` if given, else inferred from the name, the
 * path or the seed's class_path (unknown class paths map by model name). */
static const char *infer_backend(const eh_node *spec, const char *name)
{
    const char *explicit_backend = eh_node_str(spec, "backend", NULL);
    if (explicit_backend)
        return explicit_backend;
    if (!strcmp(name, "identity") || !strcmp(name, "imageops") || !strcmp(name, "metrics"))
        return "builtin";
    const char *path = eh_node_str(spec, "path", "");
    if (ends_with(path, ".pt") || ends_with(path, ".ts") || ends_with(path, ".torchscript"))
        return "torch";
    if (eh_node_get(spec, "base_url"))
        return "http";
    const char *class_path = eh_node_str(spec, "class_path", "");
    if (contains_ci(name, "qwen") || contains_ci(class_path, "qwen") || *path)
        return "native";
    return NULL;
}

static const eh_backend *find_backend(const char *name)
{
    if (!strcmp(name, "builtin"))
        return &eh_backend_builtin;
#ifdef EVALHOST_HAVE_HTTP
    if (!strcmp(name, "http"))
        return &eh_backend_http;
#endif
#ifdef EVALHOST_HAVE_TORCH
    if (!strcmp(name, "torch"))
        return &eh_backend_torch;
    if (!strcmp(name, "native"))
        return &eh_backend_native;
#endif
    return NULL;
}

/* The backend's state freed, once: a failed open may leave none. */
static void close_impl(eh_model *m)
{
    if (m->impl && m->backend && m->backend->close)
        m->backend->close(m);
    m->impl = NULL;
}

static int role_from_section(const char *section, const eh_node *spec, eh_model_role *role)
{
    const char *r = eh_node_str(spec, "role", NULL);
    if (r) {
        if (!strcmp(r, "editor")) {
            *role = EH_ROLE_EDITOR;
            return 0;
        }
        if (!strcmp(r, "judge")) {
            *role = EH_ROLE_JUDGE;
            return 0;
        }
        return -1;
    }
    if (strstr(section, "editor") || strstr(section, "diffusion")) {
        *role = EH_ROLE_EDITOR;
        return 0;
    }
    if (strstr(section, "judge") || strstr(section, "reward")) {
        *role = EH_ROLE_JUDGE;
        return 0;
    }
    return -1;
}

eh_model *eh_model_open(eh_host *host, const char *section, const eh_node *spec, eh_error *err)
{
    if (!spec || spec->type != EH_NODE_MAP) {
        eh_fail(err, EH_EINVAL, "%s: model section must be a mapping", section);
        return NULL;
    }
    eh_model *m = calloc(1, sizeof *m);
    if (!m) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", section);
        return NULL;
    }
    m->host = host;
    m->spec = merged_spec(spec);
    snprintf(m->section, sizeof m->section, "%s", section);
    if (!m->spec) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", section);
        goto fail;
    }
    if (role_from_section(section, m->spec, &m->role) != 0) {
        eh_fail(err, EH_EINVAL, "%s: cannot tell whether this model edits or judges; set role: editor|judge", section);
        goto fail;
    }
    const char *name = eh_node_str(m->spec, "name", NULL);
    if (!name)
        name = eh_node_str(m->spec, "model_name", NULL);
    if (!name)
        name = eh_node_str(m->spec, "model", NULL);
    if (!name) {
        const char *path = eh_node_str(m->spec, "path", NULL);
        const char *slash = path ? strrchr(path, '/') : NULL;
        name = slash ? slash + 1 : path;
    }
    snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    const char *backend = infer_backend(m->spec, m->name);
    if (!backend) {
        eh_fail(err, EH_EINVAL, "%s: cannot infer the backend (name '%s'); set backend: builtin|torch|http|native",
                section, m->name);
        goto fail;
    }
    m->backend = find_backend(backend);
#ifdef EVALHOST_HAVE_TORCH
    if (m->backend == &eh_backend_native && m->role == EH_ROLE_EDITOR)
        m->backend = &eh_backend_native_editor;
#endif
    if (!m->backend) {
        if (!strcmp(backend, "torch") || !strcmp(backend, "native"))
            eh_fail(err, EH_EFORMAT,
                    "%s: backend '%s' (%s) is not available: this evalhost was built without "
                    "libtorch (build with EVALHOST_TORCH=ON after `make deps`)",
                    section, backend, m->name);
        else if (!strcmp(backend, "http"))
            eh_fail(err, EH_EFORMAT,
                    "%s: backend 'http' (%s) is not available: this evalhost was built without "
                    "libcurl (EVALHOST_HTTP=OFF; rebuild with EVALHOST_HTTP=ON and libcurl4-openssl-dev)",
                    section, m->name);
        else
            eh_fail(err, EH_EINVAL, "%s: unknown backend '%s' (known: builtin, torch, http, native)", section, backend);
        goto fail;
    }
    snprintf(m->device, sizeof m->device, "%s", eh_node_str(m->spec, "device", "cpu"));
    snprintf(m->dtype, sizeof m->dtype, "%s", eh_node_str(m->spec, "dtype", "float32"));
    int64_t bs = eh_node_int(m->spec, "batch_size", 1);
    m->batch_size = bs < 1 ? 1 : bs > 4096 ? 4096 : (int)bs;
    m->activation_bytes = (int64_t)(eh_node_num(m->spec, "activation_mb", 0) * 1e6);
    m->state = EH_RES_DISK;
    if (m->backend->open(m, err) != EH_OK)
        goto fail;
    return m;
fail:
    close_impl(m);
    eh_node_free(m->spec);
    free(m);
    return NULL;
}

void eh_model_free(eh_model *m)
{
    if (!m)
        return;
    if (m->state == EH_RES_DEVICE)
        eh_model_unload(m, NULL);
    close_impl(m);
    if (m->host)
        eh_host_forget_model(m->host, m);
    eh_node_free(m->spec);
    free(m);
}

static void human_bytes(char *buf, size_t n, double b)
{
    const char *units[] = { "B", "KB", "MB", "GB", "TB" };
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* run.device_memory simulates a device of that capacity on the CPU: the
 * models whose device is "cpu" count their footprints against it. */
static int on_simulated_device(const eh_model *m)
{
    return m->host && m->host->device_capacity > 0 && !strcmp(m->device, "cpu");
}

/* The simulated device's out-of-memory: what a CUDA load past the card's
 * capacity returns (EH_ENOMEM), naming the model, its footprint and the
 * capacity, checked where the real copy would fail. */
static eh_status charge_device(eh_model *m, eh_error *err)
{
    if (!on_simulated_device(m))
        return EH_OK;
    int64_t need = eh_model_footprint(m), cap = m->host->device_capacity, used = m->host->device_used;
    if (need > cap - used) {
        char fb[32], cb[32], ub[32];
        human_bytes(fb, sizeof fb, (double)need);
        human_bytes(cb, sizeof cb, (double)cap);
        human_bytes(ub, sizeof ub, (double)used);
        return eh_fail(err, EH_ENOMEM,
                       "%s (%s): cannot move to %s: out of memory: the model's footprint is %s, the "
                       "device's capacity %s (run.device_memory), %s of it in use by other models",
                       m->section, m->name, m->device, fb, cb, ub);
    }
    m->device_charge = need;
    m->host->device_used += need;
    return EH_OK;
}

static void release_device(eh_model *m)
{
    if (m->host && m->device_charge) {
        m->host->device_used -= m->device_charge;
        m->device_charge = 0;
    }
}

eh_status eh_model_load(eh_model *m, eh_error *err)
{
    if (m->state == EH_RES_DEVICE)
        return EH_OK;
    if (m->state == EH_RES_DISK) {
        double t0 = eh_clock();
        if (m->backend->to_host && m->backend->to_host(m, err) != EH_OK)
            return err ? err->code : EH_EMODEL;
        m->state = EH_RES_HOST;
        eh_log(m->host, EH_LOG_DEBUG, "[load] %s (%s) read into host memory in %.2f s", m->section, m->name,
               eh_clock() - t0);
    }
    int64_t bytes = 0;
    double t0 = eh_clock();
    if (charge_device(m, err) != EH_OK)
        return err ? err->code : EH_ENOMEM;
    if (m->backend->to_device(m, &bytes, err) != EH_OK) {
        release_device(m);
        return err ? err->code : EH_EMODEL;
    }
    double dt = eh_clock() - t0;
    m->state = EH_RES_DEVICE;
    eh_host_note_load(m->host, m, m->section, bytes, dt);
    char size[32];
    human_bytes(size, sizeof size, (double)bytes);
    if (bytes > 0 && dt > 0)
        eh_log(m->host, EH_LOG_INFO, "[swap] %s → %s %s in %.2f s (%.1f GB/s)", m->section, m->device, size, dt,
               (double)bytes / dt / 1e9);
    else
        eh_log(m->host, EH_LOG_INFO, "[swap] %s → %s %s in %.2f s", m->section, m->device, size, dt);
    return EH_OK;
}

eh_status eh_model_unload(eh_model *m, eh_error *err)
{
    if (m->state != EH_RES_DEVICE)
        return EH_OK;
    double t0 = eh_clock();
    if (m->backend->off_device && m->backend->off_device(m, err) != EH_OK)
        return err ? err->code : EH_EMODEL;
    double dt = eh_clock() - t0;
    m->state = EH_RES_HOST;
    release_device(m);
    eh_host_note_unload(m->host, m, m->section, dt);
    eh_log(m->host, EH_LOG_INFO, "[swap] %s → host in %.2f s", m->section, dt);
    return EH_OK;
}

eh_residency eh_model_state(const eh_model *m)
{
    return m->state;
}
int64_t eh_model_footprint(const eh_model *m)
{
    return m->backend->footprint ? m->backend->footprint(m) : 0;
}
const char *eh_model_host_memory(const eh_model *m)
{
    const char *s = m->backend->host_memory ? m->backend->host_memory(m) : NULL;
    return s ? s : "";
}
eh_model_role eh_model_role_of(const eh_model *m)
{
    return m->role;
}
const char *eh_model_section(const eh_model *m)
{
    return m->section;
}
const char *eh_model_backend_name(const eh_model *m)
{
    return m->backend->name;
}
const char *eh_model_name(const eh_model *m)
{
    return m->name;
}
const char *eh_model_device(const eh_model *m)
{
    return m->device;
}
const char *eh_model_dtype(const eh_model *m)
{
    return m->dtype;
}
int eh_model_batch_size(const eh_model *m)
{
    return m->batch_size;
}
const char *eh_model_revision(const eh_model *m)
{
    return m->revision;
}

static eh_status check_ready(const eh_model *m, eh_model_role role, const char *what, eh_error *err)
{
    if (m->role != role)
        return eh_fail(err, EH_ESTATE, "%s: this model is %s, it cannot %s", m->section,
                       m->role == EH_ROLE_EDITOR ? "an editor" : "a judge", what);
    if (m->state != EH_RES_DEVICE)
        return eh_fail(err, EH_ESTATE, "%s: model is not loaded (state '%s'); call :load() first", m->section,
                       eh_residency_name(m->state));
    return EH_OK;
}

/* The simulated device's out-of-memory in the middle of a forward: a call
 * of k items needs activation_mb each beyond the weights; when that is
 * more than the device has free, every item of the call fails as a CUDA
 * OOM inside a forward fails them (EH_ENOMEM, the same message each).
 * The eh_error sits at the same place in both result types. */
static int forward_out_of_memory(eh_model *m, size_t k, void *results, size_t res_size)
{
    if (!on_simulated_device(m) || m->activation_bytes <= 0)
        return 0;
    int64_t need = m->activation_bytes * (int64_t)k, free_b = m->host->device_capacity - m->host->device_used;
    if (need <= free_b)
        return 0;
    char nb[32], fb[32], cb[32];
    human_bytes(nb, sizeof nb, (double)need);
    human_bytes(fb, sizeof fb, (double)(free_b > 0 ? free_b : 0));
    human_bytes(cb, sizeof cb, (double)m->host->device_capacity);
    for (size_t j = 0; j < k; j++) {
        char *r = (char *)results + j * res_size;
        eh_error *e = m->role == EH_ROLE_EDITOR ? &((eh_edit_result *)r)->err : &((eh_score_result *)r)->err;
        eh_fail(e, EH_ENOMEM,
                "%s: out of memory in the forward: a batch of %zu needs %s of activations, %s free of "
                "the device's %s (run.device_memory); a smaller batch_size fits",
                m->section, k, nb, fb, cb);
    }
    return 1;
}

/* Runs fn over reqs in chunks of the model's batch_size; stops at the first
 * whole-call failure.  `size` is the size of one request and one result. */
typedef eh_status (*batch_fn)(eh_model *m, const void *reqs, void *results, size_t n, eh_error *err);

static eh_status in_batches(eh_model *m, batch_fn fn, const void *reqs, size_t req_size, void *results, size_t res_size,
                            size_t n, eh_error *err)
{
    memset(results, 0, res_size * n);
    for (size_t i = 0; i < n; i += (size_t)m->batch_size) {
        size_t k = n - i < (size_t)m->batch_size ? n - i : (size_t)m->batch_size;
        if (forward_out_of_memory(m, k, (char *)results + i * res_size, res_size))
            continue;
        eh_status rc = fn(m, (const char *)reqs + i * req_size, (char *)results + i * res_size, k, err);
        if (rc != EH_OK)
            return rc;
    }
    return EH_OK;
}

/* Whether request i stays out of the backend's call; a left-out request's
 * result holds why (set here, or before).  Asked once per request. */
typedef int (*left_out_fn)(eh_model *m, const void *reqs, void *results, size_t i, const void *ctx);

/* Runs fn over each run of requests between the left-out ones, in order;
 * stops at the first whole-call failure (as in_batches). */
static eh_status in_runs(eh_model *m, batch_fn fn, left_out_fn left_out, const void *ctx, const void *reqs,
                         size_t req_size, void *results, size_t res_size, size_t n, eh_error *err)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !left_out(m, reqs, results, j, ctx))
            j++;
        if (j > i) {
            eh_status rc = fn(m, (const char *)reqs + i * req_size, (char *)results + i * res_size, j - i, err);
            if (rc != EH_OK)
                return rc;
        }
        i = j + 1;
    }
    return EH_OK;
}

/* An editor gets RGB pictures: alpha dropped, as PIL's convert("RGB")
 * does before diffusers' pipelines (their VAE takes three channels; the
 * judge composites onto white instead, vlm_pre.c).  Copies into rgb[]
 * (room for 1 + more_images), pointed to by *out; 0, or -1 with r's error. */
static int edit_rgb(const eh_edit_request *r, eh_image **rgb, const eh_image **more, eh_edit_request *out,
                    eh_edit_result *res)
{
    *out = *r;
    size_t pics = 1 + (r->more_images ? r->n_more_images : 0);
    for (size_t k = 0; k < pics; k++) {
        const eh_image *img = k ? r->more_images[k - 1] : r->image;
        if (img && img->channels == 4) {
            rgb[k] = eh_image_drop_alpha(img, &res->err);
            if (!rgb[k])
                return -1;
            img = rgb[k];
        }
        if (k)
            more[k - 1] = img;
        else
            out->image = img;
    }
    if (pics > 1)
        out->more_images = more;
    return 0;
}

static eh_status edit_chunk_rgb(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n,
                                eh_error *err);

static eh_status backend_edit(eh_model *m, const void *reqs, void *results, size_t n, eh_error *err)
{
    return m->backend->edit(m, reqs, results, n, err);
}

static int more_pictures_refused(eh_model *m, const void *reqs, void *results, size_t i, const void *ctx)
{
    (void)ctx;
    const eh_edit_request *r = (const eh_edit_request *)reqs + i;
    if (!r->n_more_images)
        return 0;
    eh_fail(&((eh_edit_result *)results)[i].err, EH_EINVAL,
            "%s: the %s backend takes one input image per edit, not %zu", m->section, m->backend->name,
            r->n_more_images + 1);
    return 1;
}

/* A backend that takes one picture per edit never sees a request with
 * more: those fail by name, the runs between them go through. */
static eh_status edit_chunk(eh_model *m, const void *reqs_, void *results_, size_t n, eh_error *err)
{
    const eh_edit_request *reqs = reqs_;
    eh_edit_result *results = results_;
    int alpha = 0;
    for (size_t i = 0; i < n && !alpha; i++) {
        alpha = reqs[i].image && reqs[i].image->channels == 4;
        for (size_t k = 0; k < reqs[i].n_more_images && !alpha; k++)
            alpha = reqs[i].more_images[k] && reqs[i].more_images[k]->channels == 4;
    }
    if (alpha)
        return edit_chunk_rgb(m, reqs, results, n, err);
    if (m->backend->several_images)
        return m->backend->edit(m, reqs, results, n, err);
    return in_runs(m, backend_edit, more_pictures_refused, NULL, reqs, sizeof *reqs, results, sizeof *results, n, err);
}

static int copy_failed(eh_model *m, const void *reqs, void *results, size_t i, const void *failed)
{
    (void)m, (void)reqs, (void)results;
    return ((const char *)failed)[i];
}

/* edit_chunk over RGB copies of a chunk with alpha somewhere in it. */
static eh_status edit_chunk_rgb(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n,
                                eh_error *err)
{
    size_t per = 1;
    for (size_t i = 0; i < n; i++)
        if (1 + reqs[i].n_more_images > per)
            per = 1 + reqs[i].n_more_images;
    eh_edit_request *cp = calloc(n, sizeof *cp);
    eh_image **rgb = calloc(n * per, sizeof *rgb);
    const eh_image **more = calloc(n * per, sizeof *more);
    char *failed = calloc(n, 1);
    eh_status rc = EH_OK;
    if (!cp || !rgb || !more || !failed) {
        rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
        goto done;
    }
    for (size_t i = 0; i < n; i++)   /* a pair whose copy fails keeps that error; the rest go on */
        failed[i] = edit_rgb(&reqs[i], rgb + i * per, more + i * per, &cp[i], &results[i]) != 0;
    rc = in_runs(m, edit_chunk, copy_failed, failed, cp, sizeof *cp, results, sizeof *results, n, err);
done:
    for (size_t k = 0; rgb && k < n * per; k++)
        eh_image_free(rgb[k]);
    free(cp), free(rgb), free(more), free(failed);
    return rc;
}

static int wants_layout(const eh_score_request *r)
{
    return r->n_images || r->text_first || r->text_only || r->jpeg_quality;
}

static eh_status backend_score(eh_model *m, const void *reqs, void *results, size_t n, eh_error *err)
{
    return m->backend->score(m, reqs, results, n, err);
}

static int layout_refused(eh_model *m, const void *reqs, void *results, size_t i, const void *ctx)
{
    (void)ctx;
    if (!wants_layout((const eh_score_request *)reqs + i))
        return 0;
    eh_fail(&((eh_score_result *)results)[i].err, EH_EINVAL,
            "%s: the %s backend cannot send a benchmark's own judge request (images in its order); "
            "use an http or native judge",
            m->section, m->backend->name);
    return 1;
}

/* A backend without judge_layout (builtin, torch) never sees a
 * benchmark-layout request: those fail by name (its prompt would not be
 * the benchmark's); http and native take them. */
static eh_status score_chunk(eh_model *m, const void *reqs_, void *results_, size_t n, eh_error *err)
{
    const eh_score_request *reqs = reqs_;
    eh_score_result *results = results_;
    if (m->backend->judge_layout)
        return m->backend->score(m, reqs, results, n, err);
    return in_runs(m, backend_score, layout_refused, NULL, reqs, sizeof *reqs, results, sizeof *results, n, err);
}

eh_status eh_model_edit_batch(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n,
                              eh_error *err)
{
    eh_status rc = check_ready(m, EH_ROLE_EDITOR, "edit", err);
    if (rc != EH_OK)
        return rc;
    return in_batches(m, edit_chunk, reqs, sizeof *reqs, results, sizeof *results, n, err);
}

eh_status eh_model_score_batch(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                               eh_error *err)
{
    eh_status rc = check_ready(m, EH_ROLE_JUDGE, "score", err);
    if (rc != EH_OK)
        return rc;
    return in_batches(m, score_chunk, reqs, sizeof *reqs, results, sizeof *results, n, err);
}
