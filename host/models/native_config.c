/* native_config.c — the native models' configs (evalhost/native_config.h):
 * transformers' config.json of the Qwen3-VL judge and of Qwen-Image's
 * Qwen2.5-VL text encoder, diffusers' vae/, transformer/ and scheduler/
 * configs, read into the structs the libtorch models and the scheduler
 * take.  No libtorch here, so a build without it still checks configs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/error.h"
#include "evalhost/flowmatch.h"
#include "evalhost/json_file.h"
#include "evalhost/native_config.h"

static double jnum(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static int jint(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : dflt;
}

/* A numeric array into out[max]; -1 if present but not numbers or too long,
 * else its length (0 when absent: the caller keeps its defaults). */
static int jfloats(const cJSON *o, const char *k, float *out, int max)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *x;
    if (!a)
        return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > max)
        return -1;
    int i = 0;
    cJSON_ArrayForEach (x, a) {
        if (!cJSON_IsNumber(x))
            return -1;
        out[i++] = (float)x->valuedouble;
    }
    return i;
}

/* Keys no inference forward reads (training, generation, bookkeeping,
 * video): accepted by every loader beside the keys it implements. */
static const char *const k_inert[] = { "_name_or_path",
                                       "_diffusers_version",
                                       "transformers_version",
                                       "architectures",
                                       "dtype",
                                       "torch_dtype",
                                       "initializer_range",
                                       "use_cache",
                                       "bos_token_id",
                                       "eos_token_id",
                                       "pad_token_id",
                                       "attention_dropout",
                                       "dropout",
                                       "router_aux_loss_coef",
                                       "output_router_logits",
                                       "max_position_embeddings",
                                       "video_token_id",
                                       "vision_start_token_id",
                                       "vision_end_token_id",
                                       "tokens_per_second",
                                       "model_type",
                                       "_class_name",
                                       NULL };

static int in_list(const char *k, const char *const *list)
{
    for (; list && *list; list++)
        if (!strcmp(k, *list))
            return 1;
    return 0;
}

/* A loader implements the keys it reads; any other key of o (but the inert
 * ones and evalhost_* bookkeeping) is refused with its name and value, so a
 * config asking for what is not written here fails at open instead of
 * running another model. */
static eh_status check_keys(const cJSON *o, const char *path, const char *where, const char *const *known,
                            const char *const *more, eh_error *err)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, o) {
        const char *k = e->string;
        /* null is the reference's "not set" (sliding_window: null) */
        if (!k || cJSON_IsNull(e) || in_list(k, known) || in_list(k, more) || in_list(k, k_inert) ||
            !strncmp(k, "evalhost_", 9))
            continue;
        char *v = cJSON_PrintUnformatted(e);
        eh_status rc = eh_fail(err, EH_EFORMAT,
                               "%s: %s%s%s = %.80s is not implemented here (refused rather than "
                               "ignored)",
                               path, where, *where ? "." : "", k, v ? v : "?");
        free(v);
        return rc;
    }
    return EH_OK;
}

/* A boolean as transformers and diffusers hold it: JSON true or false
 * (absent or null: dflt).  Anything else ("yes", 1) is refused by name and
 * value: Python would take "yes" as true where a C reader takes it as
 * false, so neither guess is made. */
static eh_status jbool(const cJSON *o, const char *k, int dflt, int *out, const char *path, eh_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return EH_OK;
    }
    if (!cJSON_IsBool(v)) {
        char *s = cJSON_PrintUnformatted(v);
        eh_status rc =
            eh_fail(err, EH_EFORMAT, "%s: %s = %.80s is not a boolean (true or false)", path, k, s ? s : "?");
        free(s);
        return rc;
    }
    *out = cJSON_IsTrue(v);
    return EH_OK;
}

/* A string key that must name what the forward implements (hidden_act):
 * absent takes dflt, which is one of ok. */
static eh_status jchoice(const cJSON *o, const char *k, const char *const *ok, const char *path, const char *where,
                         eh_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        return EH_OK;
    if (cJSON_IsString(v) && in_list(v->valuestring, ok))
        return EH_OK;
    char *s = cJSON_PrintUnformatted(v);
    eh_status rc = eh_fail(err, EH_EFORMAT, "%s: %s%s%s = %.80s is not implemented (%s)", path, where,
                           *where ? "." : "", k, s ? s : "?", ok[0]);
    free(s);
    return rc;
}

/* diffusers' AutoencoderKLQwenImage defaults (the released model's values) */
static const float k_mean[16] = { -0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
                                  0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f };
static const float k_std[16] = { 2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                 3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f };

/* A config file as a JSON object whose `key` (_class_name, model_type)
 * names `want`; NULL with err otherwise. */
static cJSON *read_config(const char *path, const char *key, const char *want, eh_error *err)
{
    cJSON *root = eh_json_read_object(path, EH_JSON_CONFIG_MAX_BYTES, err);
    if (!root)
        return NULL;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, key);
    const char *got = cJSON_IsString(k) ? k->valuestring : "";
    if (strcmp(got, want)) {
        eh_fail(err, EH_EFORMAT, "%s: %s '%s' is not %s", path, key, got, want);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* What the Qwen3-VL forward (host/models/torch/qwen3vl.cpp) implements,
 * key by key; everything else in the file is refused by name and value. */
static eh_status qwen3vl_refuse(const cJSON *root, const cJSON *t, const cJSON *v, const char *path, int moe,
                                eh_error *err)
{
    static const char *const top[] = { "text_config", "vision_config", "image_token_id", "tie_word_embeddings", NULL };
    static const char *const text[] = { "vocab_size",        "hidden_size",         "intermediate_size",
                                        "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                        "head_dim",          "rms_norm_eps",        "rope_parameters",
                                        "rope_scaling",      "rope_theta",          "tie_word_embeddings",
                                        "hidden_act",        "attention_bias",      NULL };
    static const char *const text_moe[] = { "num_experts",         "num_local_experts",
                                            "num_experts_per_tok", "moe_intermediate_size",
                                            "decoder_sparse_step", "mlp_only_layers",
                                            "norm_topk_prob",      NULL };
    static const char *const vision[] = { "depth",
                                          "hidden_size",
                                          "intermediate_size",
                                          "num_heads",
                                          "patch_size",
                                          "temporal_patch_size",
                                          "spatial_merge_size",
                                          "out_hidden_size",
                                          "num_position_embeddings",
                                          "rope_parameters",
                                          "deepstack_visual_indexes",
                                          "hidden_act",
                                          "in_channels",
                                          NULL };
    /* "type": transformers 4's spelling of rope_type, "mrope" for these models */
    static const char *const rope[] = { "rope_type", "type", "rope_theta", "mrope_section", "mrope_interleaved", NULL };
    static const char *const silu[] = { "silu", NULL }, *const gelu_tanh[] = { "gelu_pytorch_tanh", NULL };
    static const char *const rope_types[] = { "default", "mrope", NULL };
    eh_status rc;
    int b;
    /* the MoE keys only for qwen3_vl_moe */
    if ((rc = check_keys(root, path, "", top, NULL, err)) ||
        (rc = check_keys(v, path, "vision_config", vision, NULL, err)) ||
        (rc = check_keys(t, path, "text_config", text, moe ? text_moe : NULL, err)))
        return rc;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(t, "rope_parameters");
    if (!cJSON_IsObject(rp))
        rp = cJSON_GetObjectItemCaseSensitive(t, "rope_scaling");
    if (cJSON_IsObject(rp) && ((rc = check_keys(rp, path, "text_config.rope_parameters", rope, NULL, err)) ||
                               (rc = jchoice(rp, "rope_type", rope_types, path, "text_config.rope_parameters", err)) ||
                               (rc = jchoice(rp, "type", rope_types, path, "text_config.rope_parameters", err))))
        return rc;
    /* the forward interleaves the three axes' frequencies (Qwen3-VL's
     * apply_interleaved_mrope); a chunked layout is Qwen2-VL's */
    if (cJSON_IsObject(rp) && ((rc = jbool(rp, "mrope_interleaved", 1, &b, path, err)) || !b))
        return rc ? rc
                  : eh_fail(err, EH_EFORMAT,
                            "%s: text_config.rope_parameters.mrope_interleaved = false is not "
                            "implemented (Qwen3-VL interleaves)",
                            path);
    if ((rc = jchoice(t, "hidden_act", silu, path, "text_config", err)) ||
        (rc = jchoice(v, "hidden_act", gelu_tanh, path, "vision_config", err)))
        return rc;
    if ((rc = jbool(t, "attention_bias", 0, &b, path, err)) || b)
        return rc ? rc
                  : eh_fail(err, EH_EFORMAT,
                            "%s: text_config.attention_bias = true is not implemented (the "
                            "decoder's projections have no biases)",
                            path);
    if ((rc = jbool(t, "norm_topk_prob", 1, &b, path, err)) || !b)
        return rc ? rc
                  : eh_fail(err, EH_EFORMAT,
                            "%s: text_config.norm_topk_prob = false is not implemented (the "
                            "router renormalises its top-k)",
                            path);
    if ((rc = jbool(root, "tie_word_embeddings", 0, &b, path, err)) ||
        (rc = jbool(t, "tie_word_embeddings", 0, &b, path, err)))
        return rc;
    if (jint(v, "in_channels", 3) != 3)
        return eh_fail(err, EH_EFORMAT, "%s: vision_config.in_channels = %d (RGB: 3)", path, jint(v, "in_channels", 3));
    return EH_OK;
}

/* config.json → the shim's config; defaults are transformers' class
 * defaults.  Only Qwen3-VL model types are accepted. */
eh_status eh_qwen3vl_config_load(const char *path, eh_qwen3vl_config *c, eh_error *err)
{
    cJSON *root = eh_json_read_object(path, EH_JSON_CONFIG_MAX_BYTES, err);
    if (!root)
        return err ? err->code : EH_EFORMAT;
    memset(c, 0, sizeof *c);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : "";
    if (strcmp(type, "qwen3_vl") && strcmp(type, "qwen3_vl_moe")) {
        eh_status rc =
            eh_fail(err, EH_EFORMAT, "%s: model_type '%s' is not one the native judge runs (qwen3_vl, qwen3_vl_moe)",
                    path, type);
        cJSON_Delete(root);
        return rc;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (!cJSON_IsObject(t) || !cJSON_IsObject(v)) {
        cJSON_Delete(root);
        return eh_fail(err, EH_EFORMAT, "%s: text_config or vision_config missing", path);
    }
    eh_status rc = qwen3vl_refuse(root, t, v, path, !strcmp(type, "qwen3_vl_moe"), err);
    if (rc != EH_OK) {
        cJSON_Delete(root);
        return rc;
    }
    c->vocab_size = jint(t, "vocab_size", 151936);
    c->hidden_size = jint(t, "hidden_size", 4096);
    c->intermediate_size = jint(t, "intermediate_size", 22016);
    c->num_layers = jint(t, "num_hidden_layers", 32);
    c->num_heads = jint(t, "num_attention_heads", 32);
    c->num_kv_heads = jint(t, "num_key_value_heads", c->num_heads);
    c->head_dim = jint(t, "head_dim", c->num_heads ? c->hidden_size / c->num_heads : 0);
    c->rms_norm_eps = jnum(t, "rms_norm_eps", 1e-6);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(t, "rope_parameters");
    if (!cJSON_IsObject(rp))
        rp = cJSON_GetObjectItemCaseSensitive(t, "rope_scaling");
    c->rope_theta = jnum(rp, "rope_theta", jnum(t, "rope_theta", 5000000.0));
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(rp, "mrope_section");
    c->mrope_section[0] = 24, c->mrope_section[1] = 20, c->mrope_section[2] = 20;
    if (cJSON_IsArray(ms) && cJSON_GetArraySize(ms) == 3)
        for (int i = 0; i < 3; i++)
            c->mrope_section[i] = (int)cJSON_GetArrayItem(ms, i)->valuedouble;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    /* the 2B/4B models tie the head to the embeddings (said at the top
     * level, and in text_config by some exports) */
    c->tie_word_embeddings =
        cJSON_IsTrue(tie) ||
        cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(t, "tie_word_embeddings"));   /* booleans checked in qwen3vl_refuse */
    if (!strcmp(type, "qwen3_vl_moe")) {
        c->num_experts = jint(t, "num_experts", jint(t, "num_local_experts", 60));
        c->experts_per_tok = jint(t, "num_experts_per_tok", 4);
        c->moe_intermediate_size = jint(t, "moe_intermediate_size", 1408);
        c->decoder_sparse_step = jint(t, "decoder_sparse_step", 1);
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(t, "mlp_only_layers"), *e;
        cJSON_ArrayForEach (e, mo)
            if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 256)
                c->mlp_only[(int)e->valuedouble] = 1;
    }
    c->v_depth = jint(v, "depth", 27);
    c->v_hidden = jint(v, "hidden_size", 1152);
    c->v_intermediate = jint(v, "intermediate_size", 4304);
    c->v_heads = jint(v, "num_heads", 16);
    c->patch_size = jint(v, "patch_size", 16);
    c->temporal_patch_size = jint(v, "temporal_patch_size", 2);
    c->merge_size = jint(v, "spatial_merge_size", 2);
    c->v_out = jint(v, "out_hidden_size", 3584);
    c->num_position_embeddings = jint(v, "num_position_embeddings", 2304);
    c->v_rope_theta = jnum(cJSON_GetObjectItemCaseSensitive(v, "rope_parameters"), "rope_theta", 10000.0);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(v, "deepstack_visual_indexes"), *e;
    cJSON_ArrayForEach (e, ds)
        if (c->n_deepstack < 16)
            c->deepstack[c->n_deepstack++] = (int)e->valuedouble;
    c->image_token_id = jint(root, "image_token_id", 151655);
    cJSON_Delete(root);
    if (c->num_layers > 256)
        return eh_fail(err, EH_EFORMAT, "%s: %d layers (at most 256 supported)", path, c->num_layers);
    return EH_OK;
}

/* What the Qwen2.5-VL text encoder (host/models/torch/qwen25vl_text_encoder.cpp)
 * implements; t is text_config, or the file itself when the text keys are
 * at the top (transformers 4). */
static eh_status te_refuse(const cJSON *root, const cJSON *t, const char *path, eh_error *err)
{
    static const char *const top[] = { "text_config", "vision_config", "image_token_id", "tie_word_embeddings", NULL };
    static const char *const text[] = { "vocab_size",
                                        "hidden_size",
                                        "intermediate_size",
                                        "num_hidden_layers",
                                        "num_attention_heads",
                                        "num_key_value_heads",
                                        "rms_norm_eps",
                                        "rope_parameters",
                                        "rope_scaling",
                                        "rope_theta",
                                        "hidden_act",
                                        "use_sliding_window",
                                        "sliding_window",
                                        "max_window_layers",
                                        "layer_types",
                                        "tie_word_embeddings",
                                        "image_token_id",
                                        "vision_config",
                                        NULL };
    static const char *const vision[] = { "depth",
                                          "hidden_size",
                                          "intermediate_size",
                                          "num_heads",
                                          "out_hidden_size",
                                          "patch_size",
                                          "spatial_merge_size",
                                          "temporal_patch_size",
                                          "window_size",
                                          "fullatt_block_indexes",
                                          "hidden_act",
                                          "in_channels",
                                          "in_chans",
                                          "rope_parameters",
                                          NULL };
    static const char *const rope[] = { "rope_type", "type", "rope_theta", "mrope_section", "mrope_interleaved", NULL };
    static const char *const silu[] = { "silu", NULL }, *const rope_types[] = { "default", "mrope", NULL };
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    eh_status rc;
    int b;
    if ((rc = check_keys(root, path, "", top, t == root ? text : NULL, err)) ||
        (t != root && (rc = check_keys(t, path, "text_config", text, NULL, err))) ||
        (rc = check_keys(v, path, "vision_config", vision, NULL, err)))
        return rc;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(t, "rope_parameters");
    if (!cJSON_IsObject(rp))
        rp = cJSON_GetObjectItemCaseSensitive(t, "rope_scaling");
    if (cJSON_IsObject(rp) && ((rc = check_keys(rp, path, "rope_parameters", rope, NULL, err)) ||
                               (rc = jchoice(rp, "rope_type", rope_types, path, "rope_parameters", err)) ||
                               (rc = jchoice(rp, "type", rope_types, path, "rope_parameters", err))))
        return rc;
    /* Qwen2.5-VL's mrope takes the sections one after the other */
    if (cJSON_IsObject(rp) && ((rc = jbool(rp, "mrope_interleaved", 0, &b, path, err)) || b))
        return rc ? rc
                  : eh_fail(err, EH_EFORMAT,
                            "%s: rope_parameters.mrope_interleaved = true is not implemented "
                            "(Qwen2.5-VL's sections are contiguous)",
                            path);
    if ((rc = jchoice(t, "hidden_act", silu, path, t == root ? "" : "text_config", err)) ||
        (rc = jchoice(v, "hidden_act", silu, path, "vision_config", err)))
        return rc;
    if ((rc = jbool(t, "use_sliding_window", 0, &b, path, err)) || b)
        return rc ? rc
                  : eh_fail(err, EH_EFORMAT,
                            "%s: use_sliding_window = true is not implemented (every layer "
                            "attends to the whole prompt)",
                            path);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(t, "layer_types"), *e;
    cJSON_ArrayForEach (e, lt)
        if (!cJSON_IsString(e) || strcmp(e->valuestring, "full_attention"))
            return eh_fail(err, EH_EFORMAT, "%s: layer_types holds %s, not full_attention (not implemented)", path,
                           cJSON_IsString(e) ? e->valuestring : "a non-string");
    if ((rc = jbool(root, "tie_word_embeddings", 0, &b, path, err)) ||
        (rc = jbool(t, "tie_word_embeddings", 0, &b, path, err)))
        return rc;
    return EH_OK;
}

eh_status eh_qwenimage_te_config_load(const char *path, eh_qwen3vl_config *c, eh_error *err)
{
    cJSON *root = read_config(path, "model_type", "qwen2_5_vl", err);
    if (!root)
        return err ? err->code : EH_EFORMAT;
    memset(c, 0, sizeof *c);
    eh_status rc = EH_OK;
    /* transformers 5 nests the text keys; Qwen-Image-Edit's own file
     * (transformers 4) has them at the top */
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!cJSON_IsObject(t))
        t = root;
    if ((rc = te_refuse(root, t, path, err)) != EH_OK)
        goto done;
    c->vocab_size = jint(t, "vocab_size", 152064);
    c->hidden_size = jint(t, "hidden_size", 8192);
    c->intermediate_size = jint(t, "intermediate_size", 29568);
    c->num_layers = jint(t, "num_hidden_layers", 80);
    c->num_heads = jint(t, "num_attention_heads", 64);
    c->num_kv_heads = jint(t, "num_key_value_heads", 8);
    c->rms_norm_eps = jnum(t, "rms_norm_eps", 1e-6);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(t, "rope_parameters");
    if (!cJSON_IsObject(rp))
        rp = cJSON_GetObjectItemCaseSensitive(t, "rope_scaling");
    c->rope_theta = jnum(cJSON_IsObject(rp) ? rp : t, "rope_theta", jnum(t, "rope_theta", 1000000.0));
    float ms[3] = { 16, 24, 24 };
    if (cJSON_IsObject(rp))
        jfloats(rp, "mrope_section", ms, 3);
    for (int i = 0; i < 3; i++)
        c->mrope_section[i] = (int)ms[i];
    c->image_token_id = jint(root, "image_token_id", jint(t, "image_token_id", 151655));
    /* the vision tower (Qwen2.5-VL-7B's defaults) */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    c->v_depth = jint(v, "depth", 32);
    c->v_hidden = jint(v, "hidden_size", 1280);
    c->v_intermediate = jint(v, "intermediate_size", 3420);
    c->v_heads = jint(v, "num_heads", 16);
    c->v_out = jint(v, "out_hidden_size", 3584);
    c->patch_size = jint(v, "patch_size", 14);
    c->merge_size = jint(v, "spatial_merge_size", 2);
    c->temporal_patch_size = jint(v, "temporal_patch_size", 2);
    c->window_size = jint(v, "window_size", 112);
    c->v_rope_theta = 10000.0;
    float fa[32] = { 7, 15, 23, 31 };
    int nfa = jfloats(v, "fullatt_block_indexes", fa, 32);
    c->n_fullatt = nfa > 0 ? nfa : cJSON_GetObjectItemCaseSensitive(v, "fullatt_block_indexes") ? 0 : 4;
    for (int i = 0; i < c->n_fullatt; i++)
        c->fullatt[i] = (int)fa[i];
    if (nfa < 0) {
        rc = eh_fail(err, EH_EFORMAT, "%s: fullatt_block_indexes must be at most 32 numbers", path);
        goto done;
    }
    if (c->v_depth < 1 || c->v_heads < 1 || c->v_hidden % c->v_heads || (c->v_hidden / c->v_heads) % 4 ||
        c->merge_size < 1 || c->patch_size < 1 || c->temporal_patch_size < 1 ||
        c->window_size < c->merge_size * c->patch_size || c->v_out != c->hidden_size) {
        rc = eh_fail(err, EH_EFORMAT, "%s: inconsistent vision sizes (heads, window, out_hidden_size)", path);
        goto done;
    }
    if (c->num_heads < 1 || c->num_kv_heads < 1 || c->num_heads % c->num_kv_heads || c->hidden_size < 1 ||
        c->hidden_size % c->num_heads || (c->hidden_size / c->num_heads) % 2 || c->vocab_size < 1 ||
        c->num_layers < 1 || c->num_layers > 256 || c->intermediate_size < 1) {
        rc = eh_fail(err, EH_EFORMAT, "%s: inconsistent sizes (heads, hidden_size, layers or vocabulary)", path);
        goto done;
    }
    c->head_dim = c->hidden_size / c->num_heads;
done:
    cJSON_Delete(root);
    return rc;
}

eh_status eh_qwenimage_vae_config_load(const char *path, eh_qwenimage_vae_config *c, eh_error *err)
{
    cJSON *root = read_config(path, "_class_name", "AutoencoderKLQwenImage", err);
    if (!root)
        return err ? err->code : EH_EFORMAT;
    memset(c, 0, sizeof *c);
    eh_status rc = EH_OK;
    static const char *const vae_keys[] = {
        "base_dim",     "z_dim",       "num_res_blocks",      "dim_mult",       "attn_scales",
        "latents_mean", "latents_std", "temperal_downsample", "input_channels", NULL
    };
    if ((rc = check_keys(root, path, "", vae_keys, NULL, err)) != EH_OK)
        goto done;
    if (jint(root, "input_channels", 3) != 3) {
        rc = eh_fail(err, EH_EFORMAT, "%s: input_channels = %d (RGB: 3)", path, jint(root, "input_channels", 3));
        goto done;
    }
    c->base_dim = jint(root, "base_dim", 96);
    c->z_dim = jint(root, "z_dim", 16);
    c->num_res_blocks = jint(root, "num_res_blocks", 2);
    float mult[EH_QWENIMAGE_MAX_LEVELS];
    int n = jfloats(root, "dim_mult", mult, EH_QWENIMAGE_MAX_LEVELS);
    if (n == 0) {
        const float d[4] = { 1, 2, 4, 4 };
        memcpy(mult, d, sizeof d);
        n = 4;
    }
    if (n < 2) {
        rc = eh_fail(err, EH_EFORMAT, "%s: dim_mult must list 2 to %d levels", path, EH_QWENIMAGE_MAX_LEVELS);
        goto done;
    }
    c->n_levels = n;
    for (int i = 0; i < n; i++) {
        c->dim_mult[i] = (int)mult[i];
        if (c->dim_mult[i] < 1 || c->dim_mult[i] > 64 || (float)c->dim_mult[i] != mult[i]) {
            rc = eh_fail(err, EH_EFORMAT, "%s: dim_mult[%d] is not an integer in 1..64", path, i);
            goto done;
        }
    }
    /* diffusers' pipeline takes its latent scale from temperal_downsample,
     * 2^len (default [false, true, true]); the VAE halves the image once per
     * level but the last.  They must agree, or the pipeline would size its
     * latents for another scale than the VAE makes (refused, not guessed).
     * Its values only matter from a second frame on: one frame is 2-D. */
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "temperal_downsample"), *x;
    int n_td = td ? (cJSON_IsArray(td) ? cJSON_GetArraySize(td) : -1) : 3;
    cJSON_ArrayForEach (x, td)
        if (!cJSON_IsBool(x))
            n_td = -1;
    if (n_td != n - 1) {
        rc = eh_fail(err, EH_EFORMAT,
                     "%s: temperal_downsample must list %d booleans for the %d levels of dim_mult "
                     "(the pipeline's scale is 2^len(temperal_downsample))",
                     path, n - 1, n);
        goto done;
    }
    if (c->base_dim < 1 || c->base_dim > 4096 || c->num_res_blocks < 1 || c->num_res_blocks > 16 || c->z_dim < 1 ||
        c->z_dim > EH_QWENIMAGE_MAX_Z) {
        rc = eh_fail(err, EH_EFORMAT, "%s: base_dim, z_dim (1..%d) or num_res_blocks out of range", path,
                     EH_QWENIMAGE_MAX_Z);
        goto done;
    }
    /* attention inside the down blocks: the released model has none, and
     * diffusers' decoder ignores it; refused rather than half supported */
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(root, "attn_scales");
    if (as && (!cJSON_IsArray(as) || cJSON_GetArraySize(as) != 0)) {
        rc = eh_fail(err, EH_EFORMAT, "%s: attn_scales must be empty (attention in the down blocks is not supported)",
                     path);
        goto done;
    }
    int nm = jfloats(root, "latents_mean", c->latents_mean, EH_QWENIMAGE_MAX_Z);
    int ns = jfloats(root, "latents_std", c->latents_std, EH_QWENIMAGE_MAX_Z);
    if (nm == 0 && ns == 0 && c->z_dim == 16) {
        memcpy(c->latents_mean, k_mean, sizeof k_mean);
        memcpy(c->latents_std, k_std, sizeof k_std);
        nm = ns = 16;
    }
    if (nm != c->z_dim || ns != c->z_dim) {
        rc = eh_fail(err, EH_EFORMAT, "%s: latents_mean and latents_std must hold z_dim (%d) numbers", path, c->z_dim);
        goto done;
    }
    for (int i = 0; i < c->z_dim; i++)
        if (!(c->latents_std[i] > 0)) {
            rc = eh_fail(err, EH_EFORMAT, "%s: latents_std[%d] is not positive", path, i);
            goto done;
        }
done:
    cJSON_Delete(root);
    return rc;
}

eh_status eh_qwenimage_dit_config_load(const char *path, eh_qwenimage_dit_config *c, eh_error *err)
{
    cJSON *root = read_config(path, "_class_name", "QwenImageTransformer2DModel", err);
    if (!root)
        return err ? err->code : EH_EFORMAT;
    memset(c, 0, sizeof *c);
    eh_status rc = EH_OK;
    /* Edit-2511's zero_cond_t is in; the other switches change the forward
     * in ways no released editor uses (layered, guidance-distilled) */
    static const char *const dit_keys[] = { "patch_size",
                                            "in_channels",
                                            "out_channels",
                                            "num_layers",
                                            "attention_head_dim",
                                            "num_attention_heads",
                                            "joint_attention_dim",
                                            "axes_dims_rope",
                                            "zero_cond_t",
                                            "use_additional_t_cond",
                                            "use_layer3d_rope",
                                            "guidance_embeds",
                                            "pooled_projection_dim", /* in the signature, read by nothing */
                                            NULL };
    if ((rc = check_keys(root, path, "", dit_keys, NULL, err)) != EH_OK)
        goto done;
    const char *later[] = { "use_additional_t_cond", "use_layer3d_rope", "guidance_embeds" };
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        int on;
        if ((rc = jbool(root, later[i], 0, &on, path, err)) != EH_OK)
            goto done;
        if (on) {
            rc = eh_fail(err, EH_EFORMAT, "%s: %s is not supported yet", path, later[i]);
            goto done;
        }
    }
    if ((rc = jbool(root, "zero_cond_t", 0, &c->zero_cond_t, path, err)) != EH_OK)
        goto done;
    c->patch_size = jint(root, "patch_size", 2);
    c->in_channels = jint(root, "in_channels", 64);
    /* null: diffusers' `out_channels or in_channels` */
    c->out_channels = cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "out_channels"))
                          ? c->in_channels
                          : jint(root, "out_channels", 16);
    c->num_layers = jint(root, "num_layers", 60);
    c->head_dim = jint(root, "attention_head_dim", 128);
    c->num_heads = jint(root, "num_attention_heads", 24);
    c->joint_attention_dim = jint(root, "joint_attention_dim", 3584);
    float ax[3] = { 16, 56, 56 };
    int na = jfloats(root, "axes_dims_rope", ax, 3);
    for (int i = 0; i < 3; i++)
        c->axes_dims_rope[i] = (int)ax[i];
    if (na != 0 && na != 3) {
        rc = eh_fail(err, EH_EFORMAT, "%s: axes_dims_rope must hold 3 numbers", path);
        goto done;
    }
    if (c->patch_size < 1 || c->in_channels < 1 || c->out_channels < 1 || c->num_layers < 1 || c->num_layers > 1024 ||
        c->head_dim < 2 || c->num_heads < 1 || c->joint_attention_dim < 1 ||
        c->axes_dims_rope[0] + c->axes_dims_rope[1] + c->axes_dims_rope[2] != c->head_dim || c->axes_dims_rope[0] % 2 ||
        c->axes_dims_rope[1] % 2 || c->axes_dims_rope[2] % 2) {
        rc = eh_fail(err, EH_EFORMAT,
                     "%s: inconsistent sizes (axes_dims_rope must be even and sum to attention_head_dim)", path);
        goto done;
    }
done:
    cJSON_Delete(root);
    return rc;
}

eh_status eh_flowmatch_config_load(const char *path, eh_flowmatch_config *c, eh_error *err)
{
    cJSON *root = read_config(path, "_class_name", "FlowMatchEulerDiscreteScheduler", err);
    if (!root)
        return err ? err->code : EH_EFORMAT;
    memset(c, 0, sizeof *c);
    eh_status rc = EH_OK;
    static const char *const fm_keys[] = { "num_train_timesteps",
                                           "shift",
                                           "use_dynamic_shifting",
                                           "base_shift",
                                           "max_shift",
                                           "base_image_seq_len",
                                           "max_image_seq_len",
                                           "invert_sigmas",
                                           "shift_terminal",
                                           "use_karras_sigmas",
                                           "use_exponential_sigmas",
                                           "use_beta_sigmas",
                                           "time_shift_type",
                                           "stochastic_sampling",
                                           NULL };
    if ((rc = check_keys(root, path, "", fm_keys, NULL, err)) != EH_OK)
        goto done;
    const char *later[] = { "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
                            "stochastic_sampling" };
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        int on;
        if ((rc = jbool(root, later[i], 0, &on, path, err)) != EH_OK)
            goto done;
        if (on) {
            rc = eh_fail(err, EH_EFORMAT, "%s: %s is not supported", path, later[i]);
            goto done;
        }
    }
    c->num_train_timesteps = jint(root, "num_train_timesteps", 1000);
    c->shift = jnum(root, "shift", 1.0);
    c->base_shift = jnum(root, "base_shift", 0.5);
    c->max_shift = jnum(root, "max_shift", 1.15);
    c->shift_terminal = jnum(root, "shift_terminal", 0.0);
    c->base_image_seq_len = jint(root, "base_image_seq_len", 256);
    c->max_image_seq_len = jint(root, "max_image_seq_len", 4096);
    if ((rc = jbool(root, "use_dynamic_shifting", 0, &c->use_dynamic_shifting, path, err)) != EH_OK)
        goto done;
    const cJSON *tst = cJSON_GetObjectItemCaseSensitive(root, "time_shift_type");
    const char *type = cJSON_IsString(tst) ? tst->valuestring : "exponential";
    c->exponential = !strcmp(type, "exponential");
    if (!c->exponential && strcmp(type, "linear")) {
        rc = eh_fail(err, EH_EFORMAT, "%s: time_shift_type '%s' is neither exponential nor linear", path, type);
        goto done;
    }
    if (c->num_train_timesteps < 1 || c->max_image_seq_len == c->base_image_seq_len || !(c->shift > 0) ||
        c->shift_terminal < 0 || c->shift_terminal >= 1) {
        rc = eh_fail(err, EH_EFORMAT,
                     "%s: num_train_timesteps, shift, shift_terminal or the image_seq_lens out of range", path);
        goto done;
    }
done:
    cJSON_Delete(root);
    return rc;
}
