/* backend_native.c — the `native` backend: a Qwen3-VL judge (dense or MoE)
 * run in process through libtorch (host/models/torch/qwen3vl.cpp), from the Hugging
 * Face files of its snapshot.  The editor role (Qwen-Image-Edit) is
 * backend_native_editor.c.
 *
 * Spec keys: name (an HF id resolved in the local cache) or path (a model
 * directory), revision (default main), device (cpu, cuda, cuda:N, auto;
 * default auto), dtype (float32, float16, bfloat16), batch_size,
 * score_prefix (text appended after the assistant turn's start, e.g.
 * "Score: "; default none), mode (logits: the default, described below;
 * generate: greedy decoding with a KV cache, up to max_new_tokens (default
 * 512) or a stop token (generation_config.json's eos_token_id, <|im_end|>,
 * <|endoftext|>), the reply parsed by the shared score parser, for
 * prompts that reason before the score; items then run one by one),
 * cpu_copy (tests: the GPU's load path on the CPU), score_range ([lo, hi],
 * 0 <= lo < hi <= 100; default [0, 10]).
 *
 * The prompt is the request's messages (lua/evalhost/chat.lua's layout, the
 * list the http judge sends) rendered as the model's chat template renders
 * them in transformers' apply_chat_template: the snapshot's
 * chat_template.jinja, chat_template.json or tokenizer_config.json, which
 * must be Qwen3-VL's (checked by its markers; none: Qwen3-VL's is assumed):
 * the first message's system turn when it is one, the user turns with each
 * picture as <|vision_start|>, its <|image_pad|> count, <|vision_end|>, the
 * assistant turns' text, then the assistant start and score_prefix.
 * Pictures go to the vision tower in the messages' order (none: a text-only
 * request; more than EH_SCORE_MAX_IMAGES fail the pair by count).  A
 * benchmark's own judge request (judge_layout: its pictures in its order,
 * text first) is rendered the same way; its jpeg_quality makes each picture
 * the one a server decodes from the http judge's data URL (alpha composited
 * onto white, JPEG at that quality, decoded), and text_only (the
 * benchmark's parser reads the reply) needs mode generate, where a reply
 * with no score is the text alone (score NaN), as over http.  With --verbose
 * the prompt's token ids and the pictures' sizes are logged.  The score is
 * exact whatever the tokenizer does with digits (score_tree.h): every score of
 * score_range (default [0, 10]) spelled by the judge's tokenizer, one
 * batched prefill with a KV cache and one batched step over the spellings'
 * tree, P(s) = P(spelling) P(no digit-starting token | spelling)
 * renormalised; the score is the expected value, score_method "logprobs"
 * ("text" in mode generate). */
#ifdef EVALHOST_HAVE_TORCH

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/backend.h"
#include "evalhost/footprint.h"
#include "evalhost/fs.h"
#include "evalhost/hf_hub.h"
#include "evalhost/image_rgb.h"
#include "evalhost/json_file.h"
#include "evalhost/safetensors.h"
#include "evalhost/score_parse.h"
#include "evalhost/score_tree.h"
#include "evalhost/tokenizer.h"
#include "evalhost/native_config.h"
#include "evalhost/qwen3vl.h"
#include "evalhost/torch_shim.h"
#include "evalhost/vlm_pre.h"

typedef struct native_model {
    eh_hf_snapshot snap;
    eh_qwen3vl_config cfg;
    eh_vlm_config vlm;
    eh_tokenizer *tok;
    eh_qwen3vl *q;                /* NULL until the weights are on the host */
    eh_score_tree *tree;          /* the spellings of score_range's scores (owned) */
    char score_prefix[256];
    int generate;                 /* mode: generate */
    int max_new_tokens;
    int32_t stop[8];
    int n_stop;
    int cpu_copy;
    int64_t overlap_chunk;        /* overlap_load: chunk bytes; 0 blocking */
    int overlap_delay_us;
    eh_footprint fp;              /* from the headers at open, at m->dtype */
} native_model;

int eh_backend_pin(const eh_model *m)
{
    if (!m->host || m->host->pin == EH_PIN_AUTO)
        return EH_TORCH_PIN_AUTO;
    return m->host->pin == EH_PIN_ALWAYS ? EH_TORCH_PIN_ALWAYS : EH_TORCH_PIN_NEVER;
}

void eh_backend_log_host(const eh_model *m, int host_kind, const char *note)
{
    if (host_kind == EH_TORCH_HOST_PIN_REFUSED)
        eh_log(m->host, EH_LOG_WARN, "[load] %s: host copy %s", m->section, note);
    else
        eh_log(m->host, EH_LOG_DEBUG, "[load] %s: host copy %s", m->section, note);
}

/* The snapshot's chat template text (malloc'd), as transformers looks for
 * it: chat_template.jinja, chat_template.json, tokenizer_config.json;
 * NULL when there is none.  *from names the file. */
static char *read_chat_template(const char *dir, const char **from)
{
    static const char *const files[] = { "chat_template.jinja", "chat_template.json", "tokenizer_config.json" };
    char p[4200];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        *from = files[i];
        if (i == 0) {
            char *text = NULL;
            size_t len = 0;
            if (eh_fs_read(p, EH_JSON_CONFIG_MAX_BYTES, &text, &len, NULL) == EH_OK)
                return text;
            continue;
        }
        cJSON *j = eh_json_read_object(p, EH_JSON_CONFIG_MAX_BYTES, NULL);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "chat_template"), *x;
        char *text = NULL;
        if (cJSON_IsString(ct))
            text = strdup(ct->valuestring);
        else if (cJSON_IsArray(ct))   /* named templates: the "default" one */
            cJSON_ArrayForEach (x, ct) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(x, "name");
                const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(x, "template");
                if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") && cJSON_IsString(tmpl))
                    text = strdup(tmpl->valuestring);
            }
        cJSON_Delete(j);
        if (text)
            return text;
    }
    return NULL;
}

/* render_prompt writes Qwen3-VL's template only: refuse another by name. */
static eh_status check_chat_template(eh_model *m, const char *dir, eh_error *err)
{
    const char *from = NULL;
    char *text = read_chat_template(dir, &from);
    if (!text) {
        eh_log(m->host, EH_LOG_INFO, "[open] %s: no chat template in %s; Qwen3-VL's is used", m->section, dir);
        return EH_OK;
    }
    const char *why = NULL;
    if (!strstr(text, "<|im_start|>") || !strstr(text, "<|vision_start|><|image_pad|><|vision_end|>"))
        why = "it has no <|im_start|> turns or no <|vision_start|><|image_pad|><|vision_end|> picture";
    else if (strstr(text, "You are a helpful assistant."))
        why = "it adds a default system turn (Qwen2-VL's template)";
    else if (strstr(text, "<think>"))
        why = "it writes <think> (a thinking model's template)";
    free(text);
    if (why)
        return eh_fail(err, EH_EFORMAT, "%s: the chat template in %s/%s is not Qwen3-VL's: %s", m->section, dir, from,
                       why);
    return EH_OK;
}

static eh_status native_open(eh_model *m, eh_error *err)
{
    eh_status rc = eh_torch_backend_open(m, sizeof(native_model), err);
    if (rc != EH_OK)
        return rc;
    native_model *t = m->impl;
    eh_error e = { 0 };
    t->cpu_copy = eh_node_bool(m->spec, "cpu_copy", 0);
    if ((rc = eh_backend_overlap_options(m, &t->overlap_chunk, &t->overlap_delay_us, err)) != EH_OK)
        return rc;
    const char *mode = eh_node_str(m->spec, "mode", "logits");
    if (strcmp(mode, "logits") && strcmp(mode, "generate"))
        return eh_fail(err, EH_EINVAL, "%s: mode '%s' (logits or generate)", m->section, mode);
    t->generate = !strcmp(mode, "generate");
    int64_t mnt = eh_node_int(m->spec, "max_new_tokens", 512);
    if (mnt < 1 || mnt > 32768)
        return eh_fail(err, EH_EINVAL, "%s: max_new_tokens must be 1..32768", m->section);
    t->max_new_tokens = (int)mnt;
    snprintf(t->score_prefix, sizeof t->score_prefix, "%s", eh_node_str(m->spec, "score_prefix", ""));
    const char *id = eh_node_str(m->spec, "name", NULL);
    if (!id)
        id = eh_node_str(m->spec, "model_name", NULL);
    if (!id)
        id = eh_node_str(m->spec, "model", NULL);
    if (eh_hf_resolve(id, eh_node_str(m->spec, "path", NULL), eh_node_str(m->spec, "revision", NULL), &t->snap, &e) !=
        EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    snprintf(m->revision, sizeof m->revision, "%s", t->snap.revision);
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", t->snap.dir);
    if (eh_qwen3vl_config_load(p, &t->cfg, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    snprintf(p, sizeof p, "%s/preprocessor_config.json", t->snap.dir);
    if (eh_vlm_config_load(p, &t->vlm, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    if (t->vlm.patch_size != t->cfg.patch_size || t->vlm.merge_size != t->cfg.merge_size ||
        t->vlm.temporal_patch_size != t->cfg.temporal_patch_size)
        return eh_fail(err, EH_EFORMAT, "%s: preprocessor_config.json and config.json disagree on patch/merge sizes",
                       m->section);
    snprintf(p, sizeof p, "%s/tokenizer.json", t->snap.dir);
    t->tok = eh_tokenizer_load(p, NULL, &e);
    if (!t->tok)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    if (check_chat_template(m, t->snap.dir, err) != EH_OK)
        return err ? err->code : EH_EFORMAT;
    int lo = 0, hi = 10;
    if (eh_score_range_of(m->spec, &lo, &hi, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    t->tree = eh_score_tree_build(t->tok, lo, hi, &e);
    if (!t->tree)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    /* stop tokens: the generation config's eos ids, then the chat's ends */
    snprintf(p, sizeof p, "%s/generation_config.json", t->snap.dir);
    cJSON *gc = eh_json_read_object(p, EH_JSON_CONFIG_MAX_BYTES, NULL),
          *eid = cJSON_GetObjectItemCaseSensitive(gc, "eos_token_id"), *x;
    if (cJSON_IsNumber(eid))
        t->stop[t->n_stop++] = (int32_t)eid->valuedouble;
    if (cJSON_IsArray(eid))
        cJSON_ArrayForEach (x, eid)
            if (cJSON_IsNumber(x) && t->n_stop < 6)
                t->stop[t->n_stop++] = (int32_t)x->valuedouble;
    cJSON_Delete(gc);
    const char *ends[2] = { "<|im_end|>", "<|endoftext|>" };
    for (int i = 0; i < 2; i++) {
        int32_t id = eh_tokenizer_token_to_id(t->tok, ends[i], strlen(ends[i]));
        if (id >= 0)
            t->stop[t->n_stop++] = id;
    }
    /* the footprint before anything is read: every shard's header */
    if (eh_footprint_safetensors(t->snap.dir, m->dtype, &t->fp, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    if (t->fp.full_bytes)
        eh_log(m->host, EH_LOG_INFO,
               "[open] %s: a real-shape stand-in (%s): footprint %.1f GB, the full model's "
               "(%.2f GB of weights here)",
               m->section, t->fp.stand_in, (double)t->fp.full_bytes / 1e9, (double)t->fp.bytes / 1e9);
    eh_log(m->host, EH_LOG_DEBUG, "[open] %s: %s revision %s (%s)", m->section, m->name, t->snap.revision, t->snap.dir);
    return EH_OK;
}

static eh_status native_to_host(eh_model *m, eh_error *err)
{
    native_model *t = m->impl;
    if (t->q)
        return EH_OK;
    eh_error e = { 0 };
    eh_safetensors *st = eh_safetensors_open(t->snap.dir, &e);
    if (!st)
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    eh_torch_options opt = eh_torch_default_options();
    opt.role = EH_TORCH_JUDGE;
    opt.dtype = m->dtype;
    opt.device = m->device;
    opt.cpu_copy = t->cpu_copy;
    opt.pin = (eh_torch_pin)eh_backend_pin(m);
    opt.overlap_chunk_bytes = t->overlap_chunk;
    opt.overlap_test_delay_us = t->overlap_delay_us;
    size_t n = 0;
    const eh_st_tensor **ts = eh_safetensors_list(st, &n, &e);
    if (!ts) {
        eh_safetensors_close(st);
        return eh_fail(err, e.code, "%s: %s", m->section, e.msg);
    }
    eh_status rc = eh_qwen3vl_load(&t->cfg, ts, n, &opt, &t->q, &e);
    free(ts);
    eh_safetensors_close(st);
    if (rc != EH_OK)
        return eh_fail(err, rc, "%s: cannot load %s: %s", m->section, t->snap.dir, e.msg);
    eh_torch_module *tm = eh_qwen3vl_module(t->q);
    eh_backend_log_host(m, eh_torch_module_host_kind(tm), eh_torch_module_host_note(tm));
    return EH_OK;
}

static const char *native_host_memory(const eh_model *m)
{
    const native_model *t = m->impl;
    return t->q ? eh_torch_module_host_note(eh_qwen3vl_module(t->q)) : NULL;
}

static eh_status native_to_device(eh_model *m, int64_t *bytes, eh_error *err)
{
    native_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_torch_module_to_device(eh_qwen3vl_module(t->q), bytes, &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot move to %s: %s", m->section, m->device, e.msg);
    return EH_OK;
}

static eh_status native_off_device(eh_model *m, eh_error *err)
{
    native_model *t = m->impl;
    eh_error e = { 0 };
    if (eh_torch_module_off_device(eh_qwen3vl_module(t->q), &e) != EH_OK)
        return eh_fail(err, e.code, "%s: cannot free %s: %s", m->section, m->device, e.msg);
    return EH_OK;
}

/* Every weight at the model's dtype: the headers' count before load (the
 * full model's for a real-shape stand-in), the module's own after. */
static int64_t native_footprint(const eh_model *m)
{
    const native_model *t = m->impl;
    if (t->fp.full_bytes)
        return t->fp.full_bytes;
    return t->q ? eh_torch_module_footprint(eh_qwen3vl_module(t->q)) : t->fp.bytes;
}

/* A growable string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *g = realloc(b->p, cap);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->p = g, b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* The request's messages as Qwen3-VL's chat template renders them
 * (add_generation_prompt), the k-th picture's pad expanded to its token
 * count, then score_prefix: a system turn only as the first message, an
 * assistant turn's text parts only. */
static char *render_prompt(const native_model *t, const eh_score_request *r, eh_vlm_patches *const *pp)
{
    sbuf b = { 0 };
    int k = 0;
    for (size_t i = 0; i < r->n_messages; i++) {
        const eh_chat_message *msg = &r->messages[i];
        int user = !strcmp(msg->role, "user");
        if (!strcmp(msg->role, "system") && i > 0)
            continue;
        sb_str(&b, "<|im_start|>");
        sb_str(&b, msg->role);
        sb_str(&b, "\n");
        for (size_t j = 0; j < msg->n_parts; j++) {
            const eh_chat_part *p = &msg->parts[j];
            if (p->text) {
                sb_str(&b, p->text);
            } else if (user) {
                sb_str(&b, "<|vision_start|>");
                for (int64_t n = 0; n < pp[k]->tokens; n++)
                    sb_str(&b, "<|image_pad|>");
                sb_str(&b, "<|vision_end|>");
                k++;
            }
        }
        sb_str(&b, "<|im_end|>\n");
    }
    sb_str(&b, "<|im_start|>assistant\n");
    sb_str(&b, t->score_prefix);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* --verbose: the prompt's token ids, for comparing with transformers'. */
static void log_prompt_ids(const eh_model *m, const int32_t *ids, size_t n)
{
    if (!m->host || m->host->log_level > EH_LOG_DEBUG)
        return;
    sbuf b = { 0 };
    char num[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(num, sizeof num, i ? ",%d" : "%d", (int)ids[i]);
        sb_str(&b, num);
    }
    eh_log(m->host, EH_LOG_DEBUG, "[score] %s: prompt ids (%zu): %s", m->section, n, b.p ? b.p : "");
    free(b.p);
}

/* --verbose: each picture's size as the request gave it (before the JPEG
 * round trip and the processor's resize), for checking a protocol's own
 * resizes. */
static void log_picture_sizes(const eh_model *m, const eh_image *const *imgs, int n)
{
    if (!m->host || m->host->log_level > EH_LOG_DEBUG || n == 0)
        return;
    sbuf b = { 0 };
    char one[32];
    for (int i = 0; i < n; i++) {
        snprintf(one, sizeof one, i ? ",%dx%d" : "%dx%d", imgs[i]->width, imgs[i]->height);
        sb_str(&b, one);
    }
    eh_log(m->host, EH_LOG_DEBUG, "[score] %s: pictures (%d): %s", m->section, n, b.p ? b.p : "");
    free(b.p);
}

/* The pictures the template renders, in order: user turns' image parts
 * (the first EH_SCORE_MAX_IMAGES into imgs); returns how many there are. */
static int prompt_images(const eh_score_request *r, const eh_image **imgs)
{
    int n = 0;
    for (size_t i = 0; i < r->n_messages; i++)
        if (!strcmp(r->messages[i].role, "user"))
            for (size_t j = 0; j < r->messages[i].n_parts; j++)
                if (r->messages[i].parts[j].image) {
                    if (n < EH_SCORE_MAX_IMAGES)
                        imgs[n] = r->messages[i].parts[j].image;
                    n++;
                }
    return n;
}

/* One item's walk of the score tree → probabilities over score_range,
 * expected score, argmax, text. */
static void finish_score(eh_model *m, const double *logp, const double *log_end, eh_score_result *res)
{
    native_model *t = m->impl;
    const eh_score_tree *tr = t->tree;
    double expected = eh_score_tree_probs(tr, logp, log_end, res->probs);
    if (expected < 0) {
        eh_fail(&res->err, EH_EMODEL, "%s: the judge gave no finite probability to any score in [%d, %d]", m->section,
                tr->lo, tr->hi);
        return;
    }
    int n = tr->hi - tr->lo + 1, argmax = 0;
    for (int i = 1; i < n; i++)
        if (res->probs[i] > res->probs[argmax])
            argmax = i;
    char text[96];
    snprintf(text, sizeof text, "expected %.2f (argmax %d)", expected, tr->lo + argmax);
    res->text = strdup(text);
    if (!res->text) {
        eh_fail(&res->err, EH_ENOMEM, "%s: out of memory", m->section);
        return;
    }
    res->has_probs = 1;
    res->score_lo = tr->lo;
    res->n_probs = n;
    res->score_method = "logprobs";
    res->score = expected;
    res->ok = 1;
}

/* mode: generate — the greedy reply, its text kept, its score parsed;
 * text_only: a reply without a score is no failure (score NaN). */
static void generate_one(eh_model *m, const eh_qwen3vl_item *item, int text_only, eh_score_result *res)
{
    native_model *t = m->impl;
    int32_t *ids = malloc(sizeof *ids * (size_t)t->max_new_tokens);
    if (!ids) {
        eh_fail(&res->err, EH_ENOMEM, "%s: out of memory", m->section);
        return;
    }
    eh_error e = { 0 };
    int n = 0;
    char *text = NULL;
    size_t len = 0;
    int ok = eh_qwen3vl_generate(t->q, item, t->max_new_tokens, t->stop, t->n_stop, ids, &n, &e) == EH_OK;
    /* ids past the tokenizer (the embedding is padded to a multiple of 64
     * or 128) decode to nothing, as transformers' decode has them */
    int kept = 0;
    for (int i = 0; ok && i < n; i++)
        if (eh_tokenizer_id_to_token(t->tok, ids[i]))
            ids[kept++] = ids[i];
    if (!ok || eh_tokenizer_decode(t->tok, ids, (size_t)kept, 1, &text, &len, &e) != EH_OK) {
        eh_fail(&res->err, e.code ? e.code : EH_EMODEL, "%s: %s", m->section, e.msg);
        free(ids);
        return;
    }
    free(ids);
    eh_score_parsed sp;
    eh_status prc = eh_score_parse_range(text, t->tree->lo, t->tree->hi, &sp, &e);
    if (prc != EH_OK && text_only) {
        res->score = NAN;
        res->text = text;
        res->ok = 1;
        return;
    }
    if (prc != EH_OK) {
        eh_fail(&res->err, e.code ? e.code : EH_EMODEL, "%s: %s", m->section, e.msg);
        free(text);
        return;
    }
    res->score = sp.value;
    res->text = text;
    res->score_method = "text";
    res->ok = 1;
}

/* The picture a server decodes from the http judge's JPEG data URL at
 * quality: the bytes the http judge sends (eh_image_encode_onto_white),
 * decoded as the server's decoder, PIL's, reads them. */
static eh_image *jpeg_round_trip(const eh_image *img, int quality, eh_error *err)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (eh_image_encode_onto_white(img, quality, &bytes, &len, err) != EH_OK)
        return NULL;
    eh_image *out = eh_image_decode(bytes, len, NULL, err);
    free(bytes);
    return out;
}

/* One picture of a request: preprocessed, through the JPEG round trip
 * first when the request asks for a quality. */
static eh_vlm_patches *request_picture(const native_model *t, const eh_image *img, int quality, eh_error *err)
{
    if (quality <= 0)
        return eh_vlm_preprocess(img, &t->vlm, err);
    eh_image *seen = jpeg_round_trip(img, quality, err);
    if (!seen)
        return NULL;
    eh_vlm_patches *p = eh_vlm_preprocess(seen, &t->vlm, err);
    eh_image_free(seen);
    return p;
}

/* Per request: render, tokenize, preprocess; the ready ones go through one
 * batched prefill. */
static eh_status native_score(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                              eh_error *err)
{
    native_model *t = m->impl;
    size_t cap = n ? n : 1;
    eh_qwen3vl_item *items = calloc(cap, sizeof *items);
    size_t *which = calloc(cap, sizeof *which);
    int32_t **ids = calloc(cap, sizeof *ids);
    eh_vlm_patches *(*pp)[EH_SCORE_MAX_IMAGES] = calloc(cap, sizeof *pp);
    const float *(*pdata)[EH_SCORE_MAX_IMAGES] = calloc(cap, sizeof *pdata);
    int(*grids)[3 * EH_SCORE_MAX_IMAGES] = calloc(cap, sizeof *grids);
    double *out = calloc(cap * 2 * (size_t)t->tree->n_nodes, sizeof *out);   /* logp, then log_end */
    if (!items || !which || !ids || !pp || !pdata || !grids || !out) {
        free(items), free(which), free(ids), free(pp), free(pdata), free(grids), free(out);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const eh_score_request *r = &reqs[i];
        eh_error e = { 0 };
        const eh_image *imgs[EH_SCORE_MAX_IMAGES];
        int n_img = prompt_images(r, imgs), ok = 1;
        if (n_img > EH_SCORE_MAX_IMAGES) {
            eh_fail(&results[i].err, EH_EINVAL,
                    "%s: %d pictures in the request's messages; the native judge takes at most %d", m->section, n_img,
                    EH_SCORE_MAX_IMAGES);
            continue;
        }
        if (r->text_only && !t->generate) {
            /* logits mode's reply is the score's distribution, not text */
            eh_fail(&results[i].err, EH_EINVAL,
                    "%s: a benchmark's own judge request is read from the reply's text by its parser: "
                    "set mode: generate on the native judge",
                    m->section);
            continue;
        }
        for (int j = 0; j < n_img && ok; j++) {
            pp[k][j] = request_picture(t, imgs[j], r->jpeg_quality, &e);
            if (!pp[k][j]) {
                eh_fail(&results[i].err, e.code, "%s: %s image: %s", m->section,
                        imgs[j] == r->image      ? "edited"
                        : imgs[j] == r->original ? "original"
                                                 : "a",
                        e.msg);
                ok = 0;
                break;
            }
            pdata[k][j] = pp[k][j]->data;
            grids[k][3 * j] = pp[k][j]->grid_t, grids[k][3 * j + 1] = pp[k][j]->grid_h;
            grids[k][3 * j + 2] = pp[k][j]->grid_w;
        }
        char *text = ok ? render_prompt(t, r, pp[k]) : NULL;
        if (ok && !text) {
            eh_fail(&results[i].err, EH_ENOMEM, "%s: out of memory", m->section);
            ok = 0;
        }
        size_t n_ids = 0;
        if (ok && eh_tokenizer_encode(t->tok, text, strlen(text), 0, &ids[k], &n_ids, &e) != EH_OK) {
            eh_fail(&results[i].err, e.code, "%s: prompt: %s", m->section, e.msg);
            ok = 0;
        }
        free(text);
        if (ok)
            log_prompt_ids(m, ids[k], n_ids), log_picture_sizes(m, imgs, n_img);
        if (!ok) {
            for (int j = 0; j < EH_SCORE_MAX_IMAGES; j++)
                eh_vlm_patches_free(pp[k][j]), pp[k][j] = NULL;
            free(ids[k]), ids[k] = NULL;
            continue;
        }
        items[k].ids = ids[k];
        items[k].n_ids = (int64_t)n_ids;
        items[k].n_images = n_img;
        items[k].patches = pdata[k];
        items[k].grid_thw = grids[k];
        which[k++] = i;
    }
    if (k > 0 && t->generate) {
        for (size_t j = 0; j < k; j++)
            generate_one(m, &items[j], reqs[which[j]].text_only, &results[which[j]]);
    } else if (k > 0) {
        eh_error e = { 0 };
        const eh_score_tree *tr = t->tree;
        size_t nn = (size_t)tr->n_nodes;
        if (eh_qwen3vl_score_tree(t->q, items, (int)k, tr->token, tr->parent, tr->n_nodes, tr->cont, tr->n_cont, out,
                                  out + k * nn, &e) == EH_OK) {
            for (size_t j = 0; j < k; j++)
                finish_score(m, out + j * nn, out + (k + j) * nn, &results[which[j]]);
        } else {
            for (size_t j = 0; j < k; j++)
                eh_fail(&results[which[j]].err, e.code ? e.code : EH_EMODEL, "%s: %s", m->section, e.msg);
        }
    }
    for (size_t j = 0; j < k; j++) {
        for (int q = 0; q < EH_SCORE_MAX_IMAGES; q++)
            eh_vlm_patches_free(pp[j][q]);
        free(ids[j]);
    }
    free(items), free(which), free(ids), free(pp), free(pdata), free(grids), free(out);
    return EH_OK;
}

static void native_close(eh_model *m)
{
    native_model *t = m->impl;
    eh_qwen3vl_free(t->q);
    eh_score_tree_free(t->tree);
    eh_tokenizer_free(t->tok);
    free(t);
}

const eh_backend eh_backend_native = {
    .name = "native",
    .open = native_open,
    .to_host = native_to_host,
    .to_device = native_to_device,
    .off_device = native_off_device,
    .footprint = native_footprint,
    .host_memory = native_host_memory,
    .score = native_score,
    .close = native_close,
    .judge_layout = 1,   /* a benchmark's own judge request: its pictures in order, text first, jpeg_quality */
};

#else
/* Built without libtorch: model.c reports `backend: native` as unavailable. */
typedef int eh_backend_native_unavailable;
#endif
