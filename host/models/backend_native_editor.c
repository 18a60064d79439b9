/* backend_native_editor.c — `backend: native` for the editor role:
 * Qwen-Image-Edit (diffusers layout) run in process through libtorch, the
 * pipeline of host/models/qwenimage_edit.c.  One Model handle, one residency for
 * its three components (text encoder, transformer, VAE).
 *
 * Spec keys (any may sit under params:): name (HF id in the local cache) or
 * path (a pipeline folder), revision; device, dtype, batch_size (model.c);
 * num_inference_steps (50), true_cfg_scale (4.0), negative_prompt (" ";
 * false turns CFG off: YAML's null reaches Lua as nil, i.e. unset), seed (0: every item's noise comes from its own CPU
 * generator seeded so, as diffusers called per image), width/height (the
 * output; default the input's ~1 MP size), text_encoder_positions
 * (sequential: what diffusers 0.42.1 with transformers 5 feeds; mrope:
 * get_rope_index's, as transformers 4.x computed them), offload_text_encoder
 * (keep only the transformer and VAE on the GPU between prompts),
 * cfg_one_call (true CFG's conditional and negative passes as one
 * transformer call of twice the batch; default false), lora (a
 * path, or a list of paths or {path, scale}), lora_scale (default weight,
 * 1.0), scheduler (overrides of scheduler_config.json: shift, base_shift,
 * max_shift, shift_terminal (0 or false: none), use_dynamic_shifting,
 * base_image_seq_len, max_image_seq_len, time_shift_type), cpu_copy
 * (tests: the GPU's copy path on the CPU).
 *
 * Per-call options (Model:edit's third argument, edit_batch's `options`):
 * seed, num_inference_steps, true_cfg_scale, negative_prompt, width, height. */
#ifdef EVALHOST_HAVE_TORCH

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/backend.h"
#include "evalhost/group.h"
#include "evalhost/hf_hub.h"
#include "evalhost/qwenimage_edit.h"
#include "evalhost/torch_shim.h"

#define MAX_LORAS 16

typedef struct editor_model {
    eh_hf_snapshot snap;
    eh_qwenimage_edit *pipe;
    eh_qwenimage_edit_params params;
    char negative[4096];
    int has_negative;
    uint64_t seed;
    int offload_te;
    int cpu_copy;
    eh_qwenimage_lora loras[MAX_LORAS];
    char lora_paths[MAX_LORAS][4096];
    int n_loras;
} editor_model;

static eh_status read_loras(eh_model *m, editor_model *t, eh_error *err)
{
    const eh_node *l = eh_node_get(m->spec, "lora");
    double dflt = eh_node_num(m->spec, "lora_scale", 1.0);
    if (!l || l->type == EH_NODE_NULL)
        return EH_OK;
    size_t n = l->type == EH_NODE_SEQ ? l->u.list.count : 1;
    if (n > MAX_LORAS)
        return eh_fail(err, EH_EINVAL, "%s: lora: at most %d files", m->section, MAX_LORAS);
    for (size_t i = 0; i < n; i++) {
        const eh_node *e = l->type == EH_NODE_SEQ ? l->u.list.items[i] : l;
        const char *path = NULL;
        double scale = dflt;
        if (e->type == EH_NODE_STRING) {
            path = e->u.str.data;
        } else if (e->type == EH_NODE_MAP) {
            path = eh_node_str(e, "path", NULL);
            scale = eh_node_num(e, "scale", dflt);
        }
        if (!path || !*path)
            return eh_fail(err, EH_EINVAL, "%s: lora[%zu] must be a path or {path:, scale:}", m->section, i);
        snprintf(t->lora_paths[i], sizeof t->lora_paths[i], "%s", path);
        t->loras[i].path = t->lora_paths[i];
        t->loras[i].scale = scale;
    }
    t->n_loras = (int)n;
    return EH_OK;
}

/* scheduler: {...} over scheduler_config.json */
static eh_status read_scheduler(eh_model *m, editor_model *t, eh_error *err)
{
    const eh_node *s = eh_node_get(m->spec, "scheduler");
    if (!s)
        return EH_OK;
    if (s->type != EH_NODE_MAP)
        return eh_fail(err, EH_EINVAL, "%s: scheduler must be a mapping of scheduler_config.json keys", m->section);
    eh_flowmatch_config *c = eh_qwenimage_edit_scheduler(t->pipe);
    static const char *const known[] = { "shift",
                                         "base_shift",
                                         "max_shift",
                                         "shift_terminal",
                                         "use_dynamic_shifting",
                                         "base_image_seq_len",
                                         "max_image_seq_len",
                                         "time_shift_type" };
    for (size_t i = 0; i < s->u.list.count; i++) {
        const char *k = s->u.list.keys[i];
        size_t j = 0;
        while (j < sizeof known / sizeof *known && strcmp(k, known[j]))
            j++;
        if (j == sizeof known / sizeof *known)
            return eh_fail(err, EH_EINVAL,
                           "%s: scheduler.%s is not a setting of the FlowMatch Euler scheduler "
                           "(shift, base_shift, max_shift, shift_terminal, use_dynamic_shifting, base_image_seq_len, "
                           "max_image_seq_len, time_shift_type)",
                           m->section, k);
    }
    c->shift = eh_node_num(s, "shift", c->shift);
    c->base_shift = eh_node_num(s, "base_shift", c->base_shift);
    c->max_shift = eh_node_num(s, "max_shift", c->max_shift);
    const eh_node *term = eh_node_get(s, "shift_terminal");
    if (term)
        c->shift_terminal =
            term->type == EH_NODE_NULL || term->type == EH_NODE_BOOL ? 0 : eh_node_num(s, "shift_terminal", 0);
    c->use_dynamic_shifting = eh_node_bool(s, "use_dynamic_shifting", c->use_dynamic_shifting);
    c->base_image_seq_len = (int)eh_node_int(s, "base_image_seq_len", c->base_image_seq_len);
    c->max_image_seq_len = (int)eh_node_int(s, "max_image_seq_len", c->max_image_seq_len);
    const char *tst = eh_node_str(s, "time_shift_type", NULL);
    if (tst && strcmp(tst, "exponential") && strcmp(tst, "linear"))
        return eh_fail(err, EH_EINVAL, "%s: scheduler.time_shift_type '%s' (exponential or linear)", m->section, tst);
    if (tst)
        c->exponential = !strcmp(tst, "exponential");
    if (c->base_image_seq_len >= c->max_image_seq_len || c->shift <= 0 || c->shift_terminal < 0 ||
        c->shift_terminal >= 1)
        return eh_fail(err, EH_EINVAL,
                       "%s: scheduler: base_image_seq_len must be below max_image_seq_len, shift "
                       "positive, shift_terminal in [0, 1)",
                       m->section);
    return EH_OK;
}

/* The generation settings, from the spec or a call's options over them. */
static eh_status read_params(eh_model *m, const eh_node *o, eh_qwenimage_edit_params *p, uint64_t *seed, eh_error *err)
{
    int64_t steps = eh_node_int(o, "num_inference_steps", eh_node_int(o, "steps", p->steps));
    if (steps < 1 || steps > 1000)
        return eh_fail(err, EH_EINVAL, "%s: num_inference_steps must be 1..1000", m->section);
    p->steps = (int)steps;
    p->true_cfg_scale = eh_node_num(o, "true_cfg_scale", p->true_cfg_scale);
    int64_t w = eh_node_int(o, "width", p->width), h = eh_node_int(o, "height", p->height);
    if (w < 0 || h < 0 || w > 8192 || h > 8192 || (w && w < 16) || (h && h < 16))
        return eh_fail(err, EH_EINVAL, "%s: width and height must be 16..8192 (or 0 for the input's size)", m->section);
    p->width = (int)w, p->height = (int)h;
    int64_t s = eh_node_int(o, "seed", (int64_t)*seed);
    if (s < 0)
        return eh_fail(err, EH_EINVAL, "%s: seed must be 0 or more", m->section);
    *seed = (uint64_t)s;
    const eh_node *neg = eh_node_get(o, "negative_prompt");
    if (neg && (neg->type == EH_NODE_NULL || (neg->type == EH_NODE_BOOL && !neg->u.boolean)))
        p->negative_prompt = NULL;
    else if (neg && neg->type == EH_NODE_STRING)
        p->negative_prompt = neg->u.str.data;
    else if (neg)
        return eh_fail(err, EH_EINVAL, "%s: negative_prompt must be a string or false", m->section);
    return EH_OK;
}

static int resident_parts(const editor_model *t);

static eh_status editor_open(eh_model *m, eh_error *err)
{
    eh_status rc = eh_torch_backend_open(m, sizeof(editor_model), err);
    if (rc != EH_OK)
        return rc;
    editor_model *t = m->impl;
    eh_error e = { 0 };
    t->cpu_copy = eh_node_bool(m->spec, "cpu_copy", 0);
    t->offload_te = eh_node_bool(m->spec, "offload_text_encoder", 0);
    const char *id = eh_node_str(m->spec, "name", NULL);
    if (!id)
        id = eh_node_str(m->spec, "model_name", NULL);
    if (!id)
        id = eh_node_str(m->spec, "model", NULL);
    /* the pipeline's root has model_index.json, not config.json */
    if (eh_hf_resolve_file(id, eh_node_str(m->spec, "path", NULL), eh_node_str(m->spec, "revision", NULL),
                           "model_index.json", &t->snap, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    snprintf(m->revision, sizeof m->revision, "%s", t->snap.revision);
    if (eh_qwenimage_edit_open(t->snap.dir, &t->pipe, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    t->params = eh_qwenimage_edit_default_params();
    const char *pos = eh_node_str(m->spec, "text_encoder_positions", "sequential");
    if (strcmp(pos, "sequential") && strcmp(pos, "mrope"))
        return eh_fail(err, EH_EINVAL, "%s: text_encoder_positions '%s' (sequential or mrope)", m->section, pos);
    t->params.mrope = !strcmp(pos, "mrope");
    /* cfg_one_call: true CFG's two passes as one batch of 2n (twice the
     * activations); off by default, diffusers' order */
    t->params.cfg_one_call = eh_node_bool(m->spec, "cfg_one_call", 0);
    if ((rc = read_params(m, m->spec, &t->params, &t->seed, err)) != EH_OK)
        return rc;
    if (t->params.negative_prompt) {   /* the spec's string lives in m->spec; keep a copy anyway */
        snprintf(t->negative, sizeof t->negative, "%s", t->params.negative_prompt);
        t->params.negative_prompt = t->negative;
    }
    if ((rc = read_loras(m, t, err)) != EH_OK || (rc = read_scheduler(m, t, err)) != EH_OK)
        return rc;
    eh_log(m->host, EH_LOG_DEBUG, "[open] %s: %s revision %s (%s), %d LoRA file(s)", m->section, m->name,
           t->snap.revision, t->snap.dir, t->n_loras);
    const char *stand_in = eh_qwenimage_edit_stand_in(t->pipe);
    if (stand_in)
        eh_log(m->host, EH_LOG_INFO, "[open] %s: a real-shape stand-in (%s): footprint %.1f GB, the full model's",
               m->section, stand_in, (double)eh_qwenimage_edit_footprint(t->pipe, resident_parts(t), m->dtype) / 1e9);
    return EH_OK;
}

static eh_status editor_to_host(eh_model *m, eh_error *err)
{
    editor_model *t = m->impl;
    if (eh_qwenimage_edit_loaded(t->pipe))
        return EH_OK;
    eh_qwenimage_load_options o = { .dtype = m->dtype,
                                    .device = m->device,
                                    .cpu_copy = t->cpu_copy,
                                    .pin = eh_backend_pin(m) };
    eh_error e = { 0 };
    if (eh_qwenimage_edit_load(t->pipe, &o, t->loras, t->n_loras, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot load %s: %s", m->section, t->snap.dir, e.msg);
    int refused = 0;
    const char *note = eh_qwenimage_edit_host_note(t->pipe, &refused);
    eh_backend_log_host(m, refused ? EH_TORCH_HOST_PIN_REFUSED : EH_TORCH_HOST_PLAIN, note ? note : "");
    if (t->n_loras)
        eh_log(m->host, EH_LOG_INFO, "[load] %s: %d LoRA pair(s) from %d file(s) merged into the transformer",
               m->section, eh_qwenimage_edit_lora_pairs(t->pipe), t->n_loras);
    return EH_OK;
}

static int resident_parts(const editor_model *t)
{
    return t->offload_te ? EH_QIE_TRANSFORMER | EH_QIE_VAE : EH_QIE_ALL;
}

static eh_status editor_to_device(eh_model *m, int64_t *bytes, eh_error *err)
{
    editor_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_qwenimage_edit_to_device(t->pipe, resident_parts(t), bytes, &e) != EH_OK) {
        eh_qwenimage_edit_off_device(t->pipe, EH_QIE_ALL, NULL);   /* all or nothing */
        return eh_fail(err, e.code, "%s: cannot move to %s: %s", m->section, m->device, e.msg);
    }
    return EH_OK;
}

static eh_status editor_off_device(eh_model *m, eh_error *err)
{
    editor_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_qwenimage_edit_off_device(t->pipe, EH_QIE_ALL, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot free %s: %s", m->section, m->device, e.msg);
    return EH_OK;
}

static const char *editor_host_memory(const eh_model *m)
{
    const editor_model *t = m->impl;
    int refused = 0;
    return eh_qwenimage_edit_loaded(t->pipe) ? eh_qwenimage_edit_host_note(t->pipe, &refused) : NULL;
}

static int64_t editor_footprint(const eh_model *m)
{
    const editor_model *t = m->impl;
    return eh_qwenimage_edit_footprint(t->pipe, resident_parts(t), m->dtype);
}

/* Requests with the same per-call settings go through the pipeline
 * together (items of one size share the transformer's batch). */
/* eh_group_gather's `same`: one group shares every setting the pipeline
 * takes per batch (a schedule rarely mixes them). */
static int same_settings(const void *ctx, size_t i, size_t j)
{
    const eh_qwenimage_edit_params *a = (const eh_qwenimage_edit_params *)ctx + i;
    const eh_qwenimage_edit_params *b = (const eh_qwenimage_edit_params *)ctx + j;
    int same_neg = (!a->negative_prompt && !b->negative_prompt) ||
                   (a->negative_prompt && b->negative_prompt && !strcmp(a->negative_prompt, b->negative_prompt));
    return a->steps == b->steps && a->true_cfg_scale == b->true_cfg_scale && a->width == b->width &&
           a->height == b->height && same_neg;
}

static eh_status editor_edit(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n, eh_error *err)
{
    editor_model *t = m->impl;
    eh_qwenimage_edit_item *items = calloc(n ? n : 1, sizeof *items);
    eh_qwenimage_edit_params *params = calloc(n ? n : 1, sizeof *params);
    unsigned char *done = calloc(n ? n : 1, 1);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    /* the requests reordered into groups of equal settings: group g is
     * sorted[gstart[g] .. gstart[g + 1]), request idx[q] at position q */
    eh_qwenimage_edit_item *sorted = calloc(n ? n : 1, sizeof *sorted);
    eh_error *gerrs = calloc(n ? n : 1, sizeof *gerrs);
    eh_image **gout = calloc(n ? n : 1, sizeof *gout);
    eh_qwenimage_prepared **preps = calloc(n ? n : 1, sizeof *preps);
    size_t *gstart = calloc(n + 1, sizeof *gstart), ng = 0, k = 0;
    eh_status rc = EH_OK;
    if (!items || !params || !done || !idx || !sorted || !gerrs || !gout || !preps || !gstart) {
        rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        params[i] = t->params;
        items[i].image = reqs[i].image;
        items[i].more_images = reqs[i].more_images;
        items[i].n_more_images = reqs[i].n_more_images;
        items[i].prompt = reqs[i].instruction;
        items[i].seed = t->seed;
        eh_error e = { 0 };
        if (reqs[i].options && read_params(m, reqs[i].options, &params[i], &items[i].seed, &e) != EH_OK) {
            results[i].err = e;
            done[i] = 1;
        }
    }
    if (t->offload_te) {
        int64_t b = 0;
        eh_error e = { 0 };
        double t0 = eh_clock();
        if (eh_qwenimage_edit_to_device(t->pipe, EH_QIE_TEXT_ENCODER, &b, &e) != EH_OK) {
            rc = eh_fail(err, e.code, "%s: cannot move the text encoder to %s: %s", m->section, m->device, e.msg);
            goto out;
        }
        eh_log(m->host, EH_LOG_DEBUG, "[load] %s: text encoder in (%.2f s)", m->section, eh_clock() - t0);
    }
    /* group by identical settings (a schedule rarely mixes them) */
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        gstart[ng] = k;
        k += eh_group_gather(n, i, done, idx + k, same_settings, params);
        for (size_t q = gstart[ng]; q < k; q++)
            sorted[q] = items[idx[q]];
        eh_error e = { 0 };
        preps[ng] = eh_qwenimage_edit_prepare(t->pipe, sorted + gstart[ng], (int)(k - gstart[ng]), &params[i],
                                              gerrs + gstart[ng], &e);
        if (!preps[ng])
            for (size_t q = gstart[ng]; q < k; q++)
                gerrs[q] = e;
        ng++;
    }
    gstart[ng] = k;
    if (t->offload_te)   /* the prompts are encoded: the encoder leaves before the denoise */
        eh_qwenimage_edit_off_device(t->pipe, EH_QIE_TEXT_ENCODER, NULL);
    for (size_t g = 0; g < ng; g++) {
        if (!preps[g])
            continue;
        eh_error e = { 0 };
        if (eh_qwenimage_edit_denoise(t->pipe, preps[g], &params[idx[gstart[g]]], gout + gstart[g], gerrs + gstart[g],
                                      &e) != EH_OK)
            for (size_t q = gstart[g]; q < gstart[g + 1]; q++)
                gerrs[q] = e;
        eh_qwenimage_prepared_free(preps[g]);
    }
    for (size_t q = 0; q < k; q++) {
        results[idx[q]].image = gout[q];
        if (!gout[q])
            eh_fail(&results[idx[q]].err, gerrs[q].code ? gerrs[q].code : EH_EMODEL, "%s: %s", m->section,
                    gerrs[q].msg[0] ? gerrs[q].msg : "edit failed");
    }
out:
    free(items), free(params), free(done), free(idx);
    free(preps), free(gstart), free(sorted), free(gerrs), free(gout);
    return rc;
}

static void editor_close(eh_model *m)
{
    editor_model *t = m->impl;
    eh_qwenimage_edit_free(t->pipe);
    free(t);
}

const eh_backend eh_backend_native_editor = {
    .name = "native",
    .open = editor_open,
    .to_host = editor_to_host,
    .to_device = editor_to_device,
    .off_device = editor_off_device,
    .footprint = editor_footprint,
    .host_memory = editor_host_memory,
    .edit = editor_edit,
    .close = editor_close,
    .several_images = 1,   /* Edit-2509/2511; Edit's own limit of 1 is the pipeline's to state */
};

#else
typedef int eh_backend_native_editor_unavailable;
#endif
