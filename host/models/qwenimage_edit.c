/* qwenimage_edit.c — QwenImageEditPipeline and QwenImageEditPlusPipeline
 * (diffusers 0.42.1) in process: the text encoder, transformer and VAE of
 * host/models/torch/ (evalhost/qwen25vl_text_encoder.h, qwenimage_dit.h,
 * qwenimage_vae.h) composed as the pipelines' __call__ compose them (see
 * evalhost/qwenimage_edit.h). */
#ifdef EVALHOST_HAVE_TORCH

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/footprint.h"
#include "evalhost/group.h"
#include "evalhost/json_file.h"
#include "evalhost/native_config.h"
#include "evalhost/qwen25vl_text_encoder.h"
#include "evalhost/qwenimage.h"
#include "evalhost/qwenimage_edit.h"
#include "evalhost/qwenimage_dit.h"
#include "evalhost/qwenimage_vae.h"
#include "evalhost/safetensors.h"
#include "evalhost/str.h"
#include "evalhost/tokenizer.h"
#include "evalhost/torch_shim.h"
#include "evalhost/vlm_pre.h"

/* prompt_template_encode of both pipelines up to the user's turn; Edit
 * then puts its image's pads, Edit-Plus "Picture i: " before each image's,
 * then the prompt and TEMPLATE_TAIL.  The first 64 tokens
 * (prompt_template_encode_start_idx) of the encoder's output are dropped,
 * whatever the tokenizer made of them. */
#define TEMPLATE_HEAD                                                                                                  \
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "         \
    "background), then explain how the user's text instruction should alter or modify the image. Generate a "          \
    "new image that meets the user's requirements while maintaining consistency with the original input where "        \
    "appropriate.<|im_end|>\n<|im_start|>user\n"
#define TEMPLATE_TAIL "<|im_end|>\n<|im_start|>assistant\n"
#define TEMPLATE_DROP 64
/* Edit-Plus: the text encoder sees each picture at about 384x384
 * (CONDITION_IMAGE_SIZE), the VAE at about 1 MP (VAE_IMAGE_SIZE) */
#define PLUS_CONDITION_AREA (384.0 * 384.0)
/* pictures per edit: the pipeline has no bound; each is ~1 MP of latents */
#define MAX_PICTURES 16
/* a prompt is a sentence, not a book: tokens after the template */
#define MAX_PROMPT_BYTES (64 * 1024)

#define CONFIG_MAX_BYTES ((size_t)16 << 20)

enum { TE, DIT, VAE, N_PARTS };
static const char *const part_dir[N_PARTS] = { "text_encoder", "transformer", "vae" };

struct eh_qwenimage_edit {
    char dir[4096];
    eh_qwenimage_vae_config vae_cfg;
    eh_qwenimage_dit_config dit_cfg;
    eh_qwen3vl_config te_cfg;
    eh_flowmatch_config sched;
    eh_vlm_config vlm;
    eh_tokenizer *tok;
    eh_qwenimage_te *te;
    eh_qwenimage_dit *dit;
    eh_qwenimage_vae *vae;
    char dtype[16];
    eh_footprint fp[N_PARTS];  /* each part's headers, read at open */
    int lora_pairs;
    int plus;                  /* QwenImageEditPlusPipeline: several pictures, 384² conditions */
};

typedef struct prep_item {
    int ok;
    int n_pic;                 /* pictures */
    int w[MAX_PICTURES], h[MAX_PICTURES];   /* each picture's VAE input (the ~1 MP size) */
    float *planes[MAX_PICTURES];            /* [3, h, w] in [-1, 1] */
    int ow, oh;                /* the output */
    float *cond, *neg;         /* [len, hidden] */
    int cond_len, neg_len;
    uint64_t seed;
} prep_item;

struct eh_qwenimage_prepared {
    int n;
    int cfg;                   /* true CFG runs */
    prep_item *it;
};

eh_qwenimage_edit_params eh_qwenimage_edit_default_params(void)
{
    eh_qwenimage_edit_params p = { .steps = 50, .true_cfg_scale = 4.0, .negative_prompt = " " };
    return p;
}

/* ---- open ------------------------------------------------------------------ */

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* model_index.json names the pipeline: QwenImageEditPipeline (Edit) or
 * QwenImageEditPlusPipeline (Edit-2509/2511). */
static eh_status check_index(const char *dir, int *plus, eh_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    cJSON *root = eh_json_read_object(path, CONFIG_MAX_BYTES, err);
    if (!root)
        return err ? err->code : EH_EIO;
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    const char *cls = cJSON_IsString(cn) ? cn->valuestring : "";
    eh_status rc = EH_OK;
    *plus = !strcmp(cls, "QwenImageEditPlusPipeline");
    if (!*plus && strcmp(cls, "QwenImageEditPipeline"))
        rc = eh_fail(err, EH_EFORMAT, "%s: _class_name '%s' is not QwenImageEditPipeline or QwenImageEditPlusPipeline",
                     path, cls);
    cJSON_Delete(root);
    return rc;
}

static eh_status part_footprint(const char *dir, const char *part, eh_footprint *out, eh_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, part);
    /* the VAE keeps one temporal slice of its causal 3-D kernels */
    if (!strcmp(part, "vae"))
        return eh_footprint_safetensors_still(path, "float32", out, err);
    if (!strcmp(part, "text_encoder"))   /* the pipeline takes hidden states: no LM head */
        return eh_footprint_safetensors_without(path, "float32", "lm_head.weight", out, err);
    return eh_footprint_safetensors(path, "float32", out, err);
}

eh_status eh_qwenimage_edit_open(const char *dir, eh_qwenimage_edit **out, eh_error *err)
{
    *out = NULL;
    eh_qwenimage_edit *p = calloc(1, sizeof *p);
    if (!p)
        return eh_fail(err, EH_ENOMEM, "out of memory");
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    char path[4200];
    eh_status rc = check_index(dir, &p->plus, err);
#define STEP(expr)                                                                                                     \
    if (rc == EH_OK)                                                                                                   \
        rc = (expr);
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    STEP(eh_qwenimage_vae_config_load(path, &p->vae_cfg, err));
    snprintf(path, sizeof path, "%s/transformer/config.json", dir);
    STEP(eh_qwenimage_dit_config_load(path, &p->dit_cfg, err));
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    STEP(eh_qwenimage_te_config_load(path, &p->te_cfg, err));
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    STEP(eh_flowmatch_config_load(path, &p->sched, err));
    snprintf(path, sizeof path, "%s/processor/preprocessor_config.json", dir);
    STEP(eh_vlm_config_load(path, &p->vlm, err));
#undef STEP
    if (rc == EH_OK) {
        /* the processor's tokenizer is the one the pipeline uses; tokenizer/ is the text-to-image pipeline's */
        snprintf(path, sizeof path, "%s/processor/tokenizer.json", dir);
        if (!file_exists(path))
            snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", dir);
        p->tok = eh_tokenizer_load(path, NULL, err);
        if (!p->tok)
            rc = err ? err->code : EH_EIO;
    }
    if (rc == EH_OK) {
        const eh_qwen3vl_config *t = &p->te_cfg;
        int32_t pad = eh_tokenizer_token_to_id(p->tok, "<|image_pad|>", 13);
        if (pad != t->image_token_id)
            rc = eh_fail(err, EH_EFORMAT,
                         "%s: the tokenizer's <|image_pad|> is %d, the text encoder's image_token_id %d", dir, pad,
                         t->image_token_id);
        else if (p->vlm.patch_size != t->patch_size || p->vlm.merge_size != t->merge_size ||
                 p->vlm.temporal_patch_size != t->temporal_patch_size)
            rc = eh_fail(err, EH_EFORMAT,
                         "%s: processor/preprocessor_config.json and text_encoder/config.json "
                         "disagree on patch/merge sizes",
                         dir);
        else if (p->dit_cfg.joint_attention_dim != t->hidden_size)
            rc = eh_fail(err, EH_EFORMAT,
                         "%s: the transformer's joint_attention_dim %d is not the text encoder's "
                         "hidden_size %d",
                         dir, p->dit_cfg.joint_attention_dim, t->hidden_size);
        else if (p->dit_cfg.in_channels != 4 * p->vae_cfg.z_dim || p->dit_cfg.out_channels != p->vae_cfg.z_dim ||
                 p->dit_cfg.patch_size != 2)
            rc = eh_fail(err, EH_EFORMAT,
                         "%s: the transformer (in %d, out %d, patch %d) does not fit the VAE's "
                         "z_dim %d packed 2x2",
                         dir, p->dit_cfg.in_channels, p->dit_cfg.out_channels, p->dit_cfg.patch_size, p->vae_cfg.z_dim);
        /* the pictures are resized to multiples of 32 (calculate_dimensions)
         * and their latents packed 2x2: 2 x the VAE's scale must divide 32 */
        else if (p->vae_cfg.n_levels > 5)
            rc = eh_fail(err, EH_EFORMAT,
                         "%s: a VAE of %d levels (scale %d): the pipeline's 32-pixel sizes do not "
                         "pack into its latents (at most 5 levels)",
                         dir, p->vae_cfg.n_levels, 1 << (p->vae_cfg.n_levels - 1));
    }
    for (int i = 0; i < N_PARTS && rc == EH_OK; i++)
        rc = part_footprint(dir, part_dir[i], &p->fp[i], err);
    if (rc != EH_OK) {
        eh_qwenimage_edit_free(p);
        return rc;
    }
    *out = p;
    return EH_OK;
}

void eh_qwenimage_edit_free(eh_qwenimage_edit *p)
{
    if (!p)
        return;
    eh_qwenimage_te_free(p->te);
    eh_qwenimage_dit_free(p->dit);
    eh_qwenimage_vae_free(p->vae);
    eh_tokenizer_free(p->tok);
    free(p);
}

eh_flowmatch_config *eh_qwenimage_edit_scheduler(eh_qwenimage_edit *p)
{
    return &p->sched;
}

int eh_qwenimage_edit_max_pictures(const eh_qwenimage_edit *p)
{
    return p->plus ? MAX_PICTURES : 1;
}

static eh_torch_module *part_module(const eh_qwenimage_edit *p, int part)
{
    switch (part) {
    case TE: return p->te ? eh_qwenimage_te_module(p->te) : NULL;
    case DIT: return p->dit ? eh_qwenimage_dit_module(p->dit) : NULL;
    default: return p->vae ? eh_qwenimage_vae_module(p->vae) : NULL;
    }
}

int64_t eh_qwenimage_edit_footprint(const eh_qwenimage_edit *p, int which, const char *dtype)
{
    int64_t total = 0;
    size_t elem = eh_dtype_bytes(dtype) ? eh_dtype_bytes(dtype) : 4;
    for (int i = 0; i < N_PARTS; i++) {
        if (!(which & (1 << i)))
            continue;
        eh_torch_module *m = part_module(p, i);
        /* a stand-in part counts as the full model it stands in for */
        total += m && !p->fp[i].full_numel ? eh_torch_module_footprint(m) : eh_footprint_at(&p->fp[i], elem);
    }
    return total;
}

const char *eh_qwenimage_edit_host_note(const eh_qwenimage_edit *p, int *refused)
{
    *refused = 0;
    for (int i = 0; i < N_PARTS; i++) {
        eh_torch_module *m = part_module(p, i);
        if (m && eh_torch_module_host_kind(m) == EH_TORCH_HOST_PIN_REFUSED) {
            *refused = 1;
            return eh_torch_module_host_note(m);
        }
    }
    eh_torch_module *d = part_module(p, DIT);
    return d ? eh_torch_module_host_note(d) : NULL;
}

const char *eh_qwenimage_edit_stand_in(const eh_qwenimage_edit *p)
{
    for (int i = 0; i < N_PARTS; i++)
        if (p->fp[i].full_numel)
            return p->fp[i].stand_in;
    return NULL;
}

/* ---- load and LoRA ------------------------------------------------------------ */

typedef struct tensor_list {
    eh_safetensors *st;
    const eh_st_tensor **ts;
    size_t n;
} tensor_list;

static eh_status open_part(const char *dir, const char *part, tensor_list *l, eh_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, part);
    l->st = eh_safetensors_open(path, err);
    if (!l->st)
        return err ? err->code : EH_EIO;
    if (!(l->ts = eh_safetensors_list(l->st, &l->n, err))) {
        eh_safetensors_close(l->st);
        return err ? err->code : EH_ENOMEM;
    }
    return EH_OK;
}

static void close_part(tensor_list *l)
{
    free(l->ts);
    eh_safetensors_close(l->st);
    memset(l, 0, sizeof *l);
}

/* A scalar tensor's value (LoRA alphas are stored as F32, BF16 or F16). */
static int scalar_value(const eh_st_tensor *t, double *out)
{
    if (t->numel != 1)
        return 0;
    if (t->dtype == EH_ST_F32) {
        float f;
        memcpy(&f, t->data, 4);
        *out = f;
    } else if (t->dtype == EH_ST_F64) {
        memcpy(out, t->data, 8);
    } else if (t->dtype == EH_ST_BF16) {
        uint16_t h;
        memcpy(&h, t->data, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        *out = f;
    } else if (t->dtype == EH_ST_F16) {
        uint16_t h;
        memcpy(&h, t->data, 2);
        int e = (h >> 10) & 31, m = h & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(m + 1024, e - 25);
        *out = h & 0x8000 ? -v : v;
    } else {
        return 0;
    }
    return 1;
}

/* The transformer's module for a LoRA name after its prefix: dotted as
 * diffusers names it, or flattened with underscores (lora_unet_), matched
 * against the transformer's own weights. */
static int lora_module(const eh_qwenimage_dit *d, const char *name, int flat, char *out, size_t cap)
{
    int n = eh_qwenimage_dit_weight_count(d);
    for (int i = 0; i < n; i++) {
        const char *w = eh_qwenimage_dit_weight_name(d, i);
        size_t len = strlen(w);
        if (len < 8 || strcmp(w + len - 7, ".weight"))
            continue;
        len -= 7;
        if (strlen(name) != len)
            continue;
        size_t k = 0;
        for (; k < len; k++)
            if (name[k] != (flat && w[k] == '.' ? '_' : w[k]))
                break;
        if (k == len && (flat || !strncmp(name, w, len))) {
            snprintf(out, cap, "%.*s", (int)len, w);
            return 1;
        }
    }
    return 0;
}

static eh_status merge_lora(eh_qwenimage_edit *p, const eh_qwenimage_lora *l, eh_error *err)
{
    eh_error e = { 0 };
    eh_safetensors *st = eh_safetensors_open(l->path, &e);
    if (!st)
        return eh_fail(err, e.code, "LoRA %s", e.msg);
    size_t n = eh_safetensors_count(st);
    eh_status rc = EH_OK;
    int pairs = 0;
    for (size_t i = 0; i < n && rc == EH_OK; i++) {
        const eh_st_tensor *t = eh_safetensors_at(st, i);
        const char *name = t->name;
        const char *down_sfx = NULL, *up_sfx = NULL;
        if (eh_ends_with(name, ".lora_down.weight"))
            down_sfx = ".lora_down.weight", up_sfx = ".lora_up.weight";
        else if (eh_ends_with(name, ".lora_A.weight"))
            down_sfx = ".lora_A.weight", up_sfx = ".lora_B.weight";
        if (!down_sfx) {
            if (eh_ends_with(name, ".alpha") || eh_ends_with(name, ".lora_up.weight") ||
                eh_ends_with(name, ".lora_B.weight"))
                continue; /* read with their down/A half */
            rc = eh_fail(err, EH_EFORMAT,
                         "LoRA %s: tensor '%s' is not a LoRA pair's (lora_A/lora_B, "
                         "lora_down/lora_up, alpha); full-weight diffs are not supported",
                         l->path, name);
            break;
        }
        char base[1024], key[1100], module[1024];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(down_sfx)), name);
        snprintf(key, sizeof key, "%s%s", base, up_sfx);
        const eh_st_tensor *up = eh_safetensors_find(st, key);
        if (!up) {
            rc = eh_fail(err, EH_EFORMAT, "LoRA %s: '%s' has no '%s'", l->path, name, key);
            break;
        }
        double scale = l->scale, alpha;
        snprintf(key, sizeof key, "%s.alpha", base);
        const eh_st_tensor *at = eh_safetensors_find(st, key);
        if (at) {
            if (!scalar_value(at, &alpha) || t->ndim < 1 || t->shape[0] < 1) {
                rc = eh_fail(err, EH_EFORMAT, "LoRA %s: '%s' is not a float scalar", l->path, key);
                break;
            }
            scale *= alpha / (double)t->shape[0]; /* alpha / rank, as kohya and diffusers scale */
        }
        /* the prefixes diffusers strips: diffusion_model., transformer.,
         * lora_unet_ (flattened), and PEFT's adapter name default. */
        const char *m = base;
        int flat = 0;
        if (eh_starts_with(m, "diffusion_model."))
            m += strlen("diffusion_model.");
        else if (eh_starts_with(m, "transformer."))
            m += strlen("transformer.");
        else if (eh_starts_with(m, "lora_unet_"))
            m += strlen("lora_unet_"), flat = 1;
        char plain[1024];
        snprintf(plain, sizeof plain, "%s", m);
        char *dflt = strstr(plain, ".default");
        if (dflt && (dflt[8] == 0 || dflt[8] == '.'))
            memmove(dflt, dflt + 8, strlen(dflt + 8) + 1);
        if (!lora_module(p->dit, plain, flat, module, sizeof module)) {
            rc = eh_fail(err, EH_EFORMAT, "LoRA %s: '%s' matches no layer of the transformer", l->path, name);
            break;
        }
        if (eh_qwenimage_dit_add_lora(p->dit, module, t, up, scale, &e) != EH_OK) {
            rc = eh_fail(err, e.code, "LoRA %s: %s", l->path, e.msg);
            break;
        }
        pairs++;
    }
    if (rc == EH_OK && pairs == 0)
        rc = eh_fail(err, EH_EFORMAT, "LoRA %s: no LoRA pairs in it", l->path);
    p->lora_pairs += pairs;
    eh_safetensors_close(st);
    return rc;
}

eh_status eh_qwenimage_edit_load(eh_qwenimage_edit *p, const eh_qwenimage_load_options *o,
                                 const eh_qwenimage_lora *loras, int n_loras, eh_error *err)
{
    if (p->dit)
        return EH_OK;
    eh_torch_options opt = eh_torch_default_options();
    opt.role = EH_TORCH_EDITOR;
    opt.dtype = o->dtype;
    opt.device = o->device;
    opt.cpu_copy = o->cpu_copy;
    opt.pin = (eh_torch_pin)o->pin;
    snprintf(p->dtype, sizeof p->dtype, "%s", o->dtype ? o->dtype : "float32");
    tensor_list l = { 0 };
    eh_error e = { 0 };
    eh_status rc = open_part(p->dir, "text_encoder", &l, err);
    if (rc == EH_OK) {
        rc = eh_qwenimage_te_load(&p->te_cfg, l.ts, l.n, &opt, &p->te, &e);
        if (rc != EH_OK)
            eh_fail(err, rc, "%s/text_encoder: %s", p->dir, e.msg);
        close_part(&l);
    }
    if (rc == EH_OK && (rc = open_part(p->dir, "transformer", &l, err)) == EH_OK) {
        rc = eh_qwenimage_dit_load(&p->dit_cfg, l.ts, l.n, &opt, &p->dit, &e);
        if (rc != EH_OK)
            eh_fail(err, rc, "%s/transformer: %s", p->dir, e.msg);
        close_part(&l);
    }
    if (rc == EH_OK && (rc = open_part(p->dir, "vae", &l, err)) == EH_OK) {
        rc = eh_qwenimage_vae_load(&p->vae_cfg, l.ts, l.n, &opt, &p->vae, &e);
        if (rc != EH_OK)
            eh_fail(err, rc, "%s/vae: %s", p->dir, e.msg);
        close_part(&l);
    }
    for (int i = 0; i < n_loras && rc == EH_OK; i++)
        rc = merge_lora(p, &loras[i], err);
    if (rc != EH_OK) {
        eh_qwenimage_te_free(p->te), eh_qwenimage_dit_free(p->dit), eh_qwenimage_vae_free(p->vae);
        p->te = NULL, p->dit = NULL, p->vae = NULL;
        p->lora_pairs = 0;
    }
    return rc;
}

int eh_qwenimage_edit_loaded(const eh_qwenimage_edit *p)
{
    return p->dit != NULL;
}

int eh_qwenimage_edit_lora_pairs(const eh_qwenimage_edit *p)
{
    return p->lora_pairs;
}

/* ---- residency ---------------------------------------------------------------- */

eh_status eh_qwenimage_edit_to_device(eh_qwenimage_edit *p, int which, int64_t *bytes, eh_error *err)
{
    *bytes = 0;
    if (!p->dit)
        return eh_fail(err, EH_ESTATE, "the editor's weights are not in host memory");
    for (int i = 0; i < N_PARTS; i++) {
        if (!(which & (1 << i)))
            continue;
        int64_t b = 0;
        eh_error e = { 0 };
        if (eh_torch_module_to_device(part_module(p, i), &b, &e) != EH_OK)
            return eh_fail(err, e.code, "%s: %s", part_dir[i], e.msg);
        *bytes += b;
    }
    return EH_OK;
}

eh_status eh_qwenimage_edit_off_device(eh_qwenimage_edit *p, int which, eh_error *err)
{
    eh_status rc = EH_OK;
    for (int i = 0; i < N_PARTS; i++) {
        eh_torch_module *m = part_module(p, i);
        eh_error e = { 0 };
        if ((which & (1 << i)) && m && eh_torch_module_off_device(m, &e) != EH_OK && rc == EH_OK)
            rc = eh_fail(err, e.code, "%s: %s", part_dir[i], e.msg);
    }
    return rc;
}

int eh_qwenimage_edit_on_device(const eh_qwenimage_edit *p)
{
    int bits = 0;
    for (int i = 0; i < N_PARTS; i++) {
        eh_torch_module *m = part_module(p, i);
        if (m && eh_torch_module_on_device(m))
            bits |= 1 << i;
    }
    return bits;
}

/* ---- phase 1: prompts ---------------------------------------------------------- */

/* The template's text with each picture's pads expanded (as
 * Qwen2VLProcessor expands them before tokenizing), tokenized, then
 * through the encoder with the pictures; *out [*len, hidden] malloc'd.
 * patches: the pictures' rows one after the other, grids[3 * n_pic]. */
static eh_status encode_prompt(eh_qwenimage_edit *p, const char *prompt, const float *patches, const int *grids,
                               int n_pic, int mrope, float **out, int *len, eh_error *err)
{
    size_t plen = strlen(prompt);
    if (plen > MAX_PROMPT_BYTES)
        return eh_fail(err, EH_ELIMIT, "prompt of %zu bytes (at most %d)", plen, MAX_PROMPT_BYTES);
    static const char pad[] = "<|image_pad|>", open_[] = "<|vision_start|>", close_[] = "<|vision_end|>";
    const int m2 = p->te_cfg.merge_size * p->te_cfg.merge_size;
    size_t cap = sizeof TEMPLATE_HEAD + plen + sizeof TEMPLATE_TAIL;
    for (int i = 0; i < n_pic; i++)
        cap += 32 + sizeof open_ + sizeof close_ +
               (size_t)grids[3 * i] * grids[3 * i + 1] * grids[3 * i + 2] / m2 * (sizeof pad - 1);
    char *text = malloc(cap), *w = text;
    if (!text)
        return eh_fail(err, EH_ENOMEM, "out of memory");
    w += sprintf(w, "%s", TEMPLATE_HEAD);
    for (int i = 0; i < n_pic; i++) {
        if (p->plus)
            w += sprintf(w, "Picture %d: ", i + 1);
        w += sprintf(w, "%s", open_);
        for (int64_t k = (int64_t)grids[3 * i] * grids[3 * i + 1] * grids[3 * i + 2] / m2; k > 0; k--)
            memcpy(w, pad, sizeof pad - 1), w += sizeof pad - 1;
        w += sprintf(w, "%s", close_);
    }
    memcpy(w, prompt, plen), w += plen;
    w += sprintf(w, "%s", TEMPLATE_TAIL);
    int32_t *ids = NULL;
    size_t n = 0;
    eh_error e = { 0 };
    eh_status rc = eh_tokenizer_encode(p->tok, text, (size_t)(w - text), 1, &ids, &n, &e);
    free(text);
    if (rc != EH_OK)
        return eh_fail(err, rc, "prompt: %s", e.msg);
    if (n <= TEMPLATE_DROP) {
        free(ids);
        return eh_fail(err, EH_EFORMAT, "the edit template is %zu tokens, not more than the %d the pipeline drops", n,
                       TEMPLATE_DROP);
    }
    *len = (int)(n - TEMPLATE_DROP);
    *out = malloc(sizeof **out * (size_t)*len * (size_t)p->te_cfg.hidden_size);
    if (!*out) {
        free(ids);
        return eh_fail(err, EH_ENOMEM, "out of memory");
    }
    rc = eh_qwenimage_te_encode_images(p->te, ids, (int)n, patches, grids, n_pic, TEMPLATE_DROP, mrope, *out, &e);
    free(ids);
    if (rc != EH_OK) {
        free(*out), *out = NULL;
        return eh_fail(err, rc, "text encoder: %s", e.msg);
    }
    return EH_OK;
}

static void prep_item_clear(prep_item *it)
{
    for (int i = 0; i < MAX_PICTURES; i++)
        free(it->planes[i]);
    free(it->cond), free(it->neg);
    memset(it, 0, sizeof *it);
}

/* One item's pictures: each resized to ~1 MP for the VAE; the text
 * encoder's condition (Edit: that same picture; Plus: the picture at
 * ~384²) through the Qwen2-VL processor, the rows of all pictures in one
 * array; then the prompt and the negative prompt encoded with them. */

/* Pixels per latent: the VAE halves the image at every level but the last
 * (the config agrees with diffusers' 2^len(temperal_downsample), checked in
 * native_config.c), so a 3-level VAE's latents are a quarter, not an eighth. */
static int latent_scale(const eh_qwenimage_edit *p)
{
    return 1 << (p->vae_cfg.n_levels - 1);
}

static int prepare_item(eh_qwenimage_edit *p, const eh_qwenimage_edit_item *item,
                        const eh_qwenimage_edit_params *params, int cfg, prep_item *it, eh_error *e)
{
    const eh_image *pics[MAX_PICTURES];
    if (!item->image || !item->prompt)
        return eh_fail(e, EH_EINVAL, "no image or no prompt"), 0;
    if (item->n_more_images >= (size_t)eh_qwenimage_edit_max_pictures(p))
        return eh_fail(e, EH_EINVAL,
                       p->plus ? "%zu input images (at most %d)"
                               : "%zu input images: Qwen-Image-Edit (QwenImageEditPipeline) takes %d; "
                                 "Edit-2509/2511 (QwenImageEditPlusPipeline) take several",
                       item->n_more_images + 1, eh_qwenimage_edit_max_pictures(p)),
               0;
    int n_pic = 1 + (int)item->n_more_images;
    pics[0] = item->image;
    for (int i = 1; i < n_pic; i++)
        if (!(pics[i] = item->more_images[i - 1]))
            return eh_fail(e, EH_EINVAL, "input image %d is missing", i + 1), 0;
    eh_vlm_patches *pt[MAX_PICTURES] = { 0 };
    float *rows = NULL;
    int grids[3 * MAX_PICTURES], ok = 0, bad = -1; /* bad: the picture that failed */
    size_t total = 0;
    it->n_pic = n_pic;
    it->seed = item->seed;
    for (int i = 0; i < n_pic; i++) {
        bad = i;
        eh_image *rs = eh_qwenimage_resize(pics[i], e);
        if (!rs)
            goto out;
        it->w[i] = rs->width, it->h[i] = rs->height;
        it->planes[i] = eh_qwenimage_planes(rs, e);
        eh_image *cond = !it->planes[i] ? NULL
                         : p->plus      ? eh_qwenimage_resize_area(pics[i], PLUS_CONDITION_AREA, e)
                                        : rs;
        pt[i] = cond ? eh_vlm_preprocess(cond, &p->vlm, e) : NULL;
        if (cond != rs)
            eh_image_free(cond);
        eh_image_free(rs);
        if (!pt[i])
            goto out;
        grids[3 * i] = pt[i]->grid_t, grids[3 * i + 1] = pt[i]->grid_h, grids[3 * i + 2] = pt[i]->grid_w;
        total += (size_t)pt[i]->rows * pt[i]->dim;
    }
    bad = -1;
    /* output: the requested size, else the last picture's ~1 MP size, floored
     * to the pipeline's multiple_of (the VAE's scale x 2, for the 2x2 packing) */
    const int mult = 2 * latent_scale(p);
    it->ow = (params->width > 0 ? params->width : it->w[n_pic - 1]) / mult * mult;
    it->oh = (params->height > 0 ? params->height : it->h[n_pic - 1]) / mult * mult;
    if (it->ow < 16 || it->oh < 16 || it->ow > 8192 || it->oh > 8192) {
        eh_fail(e, EH_EINVAL, "output size %dx%d (16..8192 per side)", it->ow, it->oh);
        goto out;
    }
    if (!(rows = malloc(sizeof *rows * (total ? total : 1)))) {
        eh_fail(e, EH_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0, at = 0; i < (size_t)n_pic; i++) {
        size_t k = (size_t)pt[i]->rows * pt[i]->dim;
        memcpy(rows + at, pt[i]->data, sizeof *rows * k);
        at += k;
    }
    ok = encode_prompt(p, item->prompt, rows, grids, n_pic, params->mrope, &it->cond, &it->cond_len, e) == EH_OK &&
         (!cfg || encode_prompt(p, params->negative_prompt, rows, grids, n_pic, params->mrope, &it->neg, &it->neg_len,
                                e) == EH_OK);
out:
    if (bad >= 0 && n_pic > 1) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        eh_fail(e, e->code, "input image %d: %s", bad + 1, msg);
    }
    for (int i = 0; i < n_pic; i++)
        eh_vlm_patches_free(pt[i]);
    free(rows);
    return ok;
}

eh_qwenimage_prepared *eh_qwenimage_edit_prepare(eh_qwenimage_edit *p, const eh_qwenimage_edit_item *items, int n,
                                                 const eh_qwenimage_edit_params *params, eh_error *item_errs,
                                                 eh_error *err)
{
    if (!p->te || !eh_torch_module_on_device(eh_qwenimage_te_module(p->te))) {
        eh_fail(err, EH_ESTATE, "the text encoder is not loaded");
        return NULL;
    }
    if (params->steps < 1 || params->steps > 1000) {
        eh_fail(err, EH_EINVAL, "num_inference_steps %d (1..1000)", params->steps);
        return NULL;
    }
    eh_qwenimage_prepared *b = calloc(1, sizeof *b);
    if (!b || !(b->it = calloc((size_t)(n > 0 ? n : 1), sizeof *b->it))) {
        free(b);
        eh_fail(err, EH_ENOMEM, "out of memory");
        return NULL;
    }
    b->n = n;
    b->cfg = params->true_cfg_scale > 1 && params->negative_prompt != NULL;
    for (int i = 0; i < n; i++) {
        prep_item *it = &b->it[i];
        it->ok = prepare_item(p, &items[i], params, b->cfg, it, &item_errs[i]);
        if (!it->ok)
            prep_item_clear(it);
    }
    return b;
}

void eh_qwenimage_prepared_free(eh_qwenimage_prepared *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n; i++)
        prep_item_clear(&b->it[i]);
    free(b->it);
    free(b);
}

/* ---- phase 2: the denoising loop -------------------------------------------------- */

/* Right-pads the items' embeddings to the longest with a mask. */
static void pad_text(const prep_item *const *g, int k, int neg, int hidden, float *text, int32_t *mask, int L)
{
    for (int j = 0; j < k; j++) {
        const float *src = neg ? g[j]->neg : g[j]->cond;
        int len = neg ? g[j]->neg_len : g[j]->cond_len;
        memcpy(text + (size_t)j * L * hidden, src, sizeof *text * (size_t)len * hidden);
        memset(text + ((size_t)j * L + len) * hidden, 0, sizeof *text * (size_t)(L - len) * hidden);
        for (int t = 0; t < L; t++)
            mask[(size_t)j * L + t] = t < len;
    }
}

/* diffusers' numpy_to_pil: (x / 2 + 0.5).clamp(0, 1), then * 255 rounded
 * half to even, in float32. */
static eh_image *to_image(const float *planes, int w, int h, eh_error *err)
{
    eh_image *img = eh_image_new(w, h, 3, err);
    if (!img)
        return NULL;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float q = planes[((size_t)c * h + y) * w + x] / 2.0f + 0.5f;
                q = q > 0 ? (q > 1 ? 1 : q) : 0; /* NaN → 0 as well: never an out-of-range cast */
                img->pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)nearbyintf(q * 255.0f);
            }
    return img;
}

/* One group of items of the same sizes: the transformer's batch.  Its
 * tokens per item: the noised latents (out_tok), then each picture's
 * latents (pic_tok[i]), as the pipelines concatenate them. */
static eh_status denoise_group(eh_qwenimage_edit *p, const prep_item *const *g, int k, int cfg,
                               const eh_qwenimage_edit_params *params, eh_image **out, eh_error *err)
{
    const int z = p->vae_cfg.z_dim, ch = 4 * z, hidden = p->te_cfg.hidden_size, s = latent_scale(p),
              n_pic = g[0]->n_pic;
    const int ow = g[0]->ow, oh = g[0]->oh, olw = ow / s, olh = oh / s;
    const size_t out_tok = (size_t)(olw / 2) * (olh / 2);
    size_t tok = out_tok, pic_tok[MAX_PICTURES], max_px = (size_t)ow * oh, max_lat = (size_t)olw * olh;
    int shapes[3 * (MAX_PICTURES + 1)] = { 1, olh / 2, olw / 2 };
    for (int i = 0; i < n_pic; i++) {
        int lw = g[0]->w[i] / s, lh = g[0]->h[i] / s;
        pic_tok[i] = (size_t)(lw / 2) * (lh / 2);
        tok += pic_tok[i];
        shapes[3 * (i + 1)] = 1, shapes[3 * (i + 1) + 1] = lh / 2, shapes[3 * (i + 1) + 2] = lw / 2;
        max_px = (size_t)g[0]->w[i] * g[0]->h[i] > max_px ? (size_t)g[0]->w[i] * g[0]->h[i] : max_px;
        max_lat = (size_t)lw * lh > max_lat ? (size_t)lw * lh : max_lat;
    }
    int Lc = 0, Ln = 0;
    for (int j = 0; j < k; j++) {
        Lc = g[j]->cond_len > Lc ? g[j]->cond_len : Lc;
        Ln = g[j]->neg_len > Ln ? g[j]->neg_len : Ln;
    }
    int half = strcmp(p->dtype, "float32") && strcmp(p->dtype, "fp32") && strcmp(p->dtype, "float");
    /* planes: one picture index of all k items (VAE in), or the output (VAE out) */
    float *planes = malloc(sizeof *planes * (size_t)k * 3 * max_px);
    float *lat = malloc(sizeof *lat * (size_t)k * z * max_lat);
    float *hid = malloc(sizeof *hid * (size_t)k * tok * ch);
    float *x = malloc(sizeof *x * (size_t)k * out_tok * ch);
    float *v = malloc(sizeof *v * (size_t)k * tok * ch);
    float *vn = cfg ? malloc(sizeof *vn * (size_t)k * tok * ch) : NULL;
    float *guided = malloc(sizeof *guided * out_tok * ch);
    float *tc = malloc(sizeof *tc * (size_t)k * Lc * hidden),
          *tn = cfg ? malloc(sizeof *tn * (size_t)k * Ln * hidden) : NULL;
    int32_t *mc = malloc(sizeof *mc * (size_t)k * Lc), *mn = cfg ? malloc(sizeof *mn * (size_t)k * Ln) : NULL;
    float *sig = malloc(sizeof *sig * (size_t)(params->steps + 1)), *ts = malloc(sizeof *ts * (size_t)params->steps);
    float *tsv = malloc(sizeof *tsv * (size_t)k);
    /* CFG in one call: the conditional and the negative halves as one batch
     * of 2k (text padded to the longer, masked), one transformer pass a
     * step where diffusers makes two; twice the activations */
    const int one_call = cfg && params->cfg_one_call;
    const int L2 = Lc > Ln ? Lc : Ln;
    float *hid2 = one_call ? malloc(sizeof *hid2 * (size_t)2 * k * tok * ch) : NULL;
    float *v2 = one_call ? malloc(sizeof *v2 * (size_t)2 * k * tok * ch) : NULL;
    float *t2 = one_call ? malloc(sizeof *t2 * (size_t)2 * k * L2 * hidden) : NULL;
    int32_t *m2 = one_call ? malloc(sizeof *m2 * (size_t)2 * k * L2) : NULL;
    float *ts2 = one_call ? malloc(sizeof *ts2 * (size_t)2 * k) : NULL;
    eh_status rc = EH_OK;
    eh_error e = { 0 };
    if (!planes || !lat || !hid || !x || !v || (cfg && (!vn || !tn || !mn)) || !guided || !tc || !mc || !sig || !ts ||
        !tsv || (one_call && (!hid2 || !v2 || !t2 || !m2 || !ts2))) {
        rc = eh_fail(err, EH_ENOMEM, "out of memory for a batch of %d %dx%d edits", k, ow, oh);
        goto done;
    }
    /* each picture's latents, packed after the noise: [noise | picture 1 | ...] per item */
    for (int i = 0, off = (int)out_tok; i < n_pic; off += (int)pic_tok[i], i++) {
        const int w = g[0]->w[i], h = g[0]->h[i], lw = w / s, lh = h / s;
        for (int j = 0; j < k; j++)
            memcpy(planes + (size_t)j * 3 * w * h, g[j]->planes[i], sizeof *planes * 3 * (size_t)w * h);
        if ((rc = eh_qwenimage_vae_encode(p->vae, planes, k, h, w, lat, &e)) != EH_OK) {
            eh_fail(err, rc, "VAE encode: %s", e.msg);
            goto done;
        }
        for (int j = 0; j < k; j++)
            eh_qwenimage_pack(lat + (size_t)j * z * lw * lh, 1, z, lh, lw, hid + ((size_t)j * tok + off) * ch);
    }
    for (int j = 0; j < k; j++)
        if ((rc = eh_qwenimage_noise(g[j]->seed, 1, z, olh, olw, p->dtype, x + (size_t)j * out_tok * ch, &e)) !=
            EH_OK) {
            eh_fail(err, rc, "noise: %s", e.msg);
            goto done;
        }
    if (half && (rc = eh_torch_round_floats(hid, (size_t)k * tok * ch, p->dtype, &e)) != EH_OK) {
        eh_fail(err, rc, "%s", e.msg);
        goto done;
    }
    pad_text(g, k, 0, hidden, tc, mc, Lc);
    if (cfg)
        pad_text(g, k, 1, hidden, tn, mn, Ln);
    if (one_call) {
        pad_text(g, k, 0, hidden, t2, m2, L2);
        pad_text(g, k, 1, hidden, t2 + (size_t)k * L2 * hidden, m2 + (size_t)k * L2, L2);
    }
    if ((rc = eh_flowmatch_schedule(&p->sched, params->steps, (int)out_tok, sig, ts, &e)) != EH_OK) {
        eh_fail(err, rc, "scheduler: %s", e.msg);
        goto done;
    }
    for (int i = 0; i < params->steps; i++) {
        /* timestep.to(latents.dtype) / 1000, in that dtype */
        float t = ts[i];
        eh_torch_round_floats(&t, 1, p->dtype, NULL);
        t /= 1000.0f;
        eh_torch_round_floats(&t, 1, p->dtype, NULL);
        for (int j = 0; j < k; j++) {
            tsv[j] = t;
            memcpy(hid + (size_t)j * tok * ch, x + (size_t)j * out_tok * ch, sizeof *x * out_tok * ch);
        }
        if (one_call) {
            memcpy(hid2, hid, sizeof *hid * (size_t)k * tok * ch);
            memcpy(hid2 + (size_t)k * tok * ch, hid, sizeof *hid * (size_t)k * tok * ch);
            for (int j = 0; j < 2 * k; j++)
                ts2[j] = t;
            rc = eh_qwenimage_dit_forward(p->dit, hid2, 2 * k, shapes, n_pic + 1, t2, m2, L2, ts2, v2, &e);
            if (rc == EH_OK) {
                memcpy(v, v2, sizeof *v * (size_t)k * tok * ch);
                memcpy(vn, v2 + (size_t)k * tok * ch, sizeof *vn * (size_t)k * tok * ch);
            }
        } else if ((rc = eh_qwenimage_dit_forward(p->dit, hid, k, shapes, n_pic + 1, tc, mc, Lc, tsv, v, &e)) ==
                       EH_OK &&
                   cfg) {
            rc = eh_qwenimage_dit_forward(p->dit, hid, k, shapes, n_pic + 1, tn, mn, Ln, tsv, vn, &e);
        }
        if (rc != EH_OK) {
            eh_fail(err, rc, "transformer, step %d: %s", i + 1, e.msg);
            goto done;
        }
        for (int j = 0; j < k; j++) {
            float *xj = x + (size_t)j * out_tok * ch;
            const float *vj = v + (size_t)j * tok * ch; /* the first out_tok tokens: the noised latents' */
            if (cfg) {
                eh_qwenimage_true_cfg(vj, vn + (size_t)j * tok * ch, out_tok, ch, (float)params->true_cfg_scale,
                                      guided);
                vj = guided;
            }
            if (!half) {
                eh_flowmatch_step(xj, vj, out_tok * ch, sig[i], sig[i + 1]);
                continue;
            }
            /* the scheduler's step in a half dtype: the model output and
             * dt * output stay in it, the sum in float32, rounded back */
            if (vj != guided)
                memcpy(guided, vj, sizeof *guided * out_tok * ch);
            eh_torch_round_floats(guided, out_tok * ch, p->dtype, NULL);
            float dt = sig[i + 1] - sig[i];
            for (size_t q = 0; q < out_tok * ch; q++)
                guided[q] *= dt;
            eh_torch_round_floats(guided, out_tok * ch, p->dtype, NULL);
            for (size_t q = 0; q < out_tok * ch; q++)
                xj[q] += guided[q];
            eh_torch_round_floats(xj, out_tok * ch, p->dtype, NULL);
        }
    }
    for (int j = 0; j < k; j++)
        eh_qwenimage_unpack(x + (size_t)j * out_tok * ch, 1, z, olh, olw, lat + (size_t)j * z * olw * olh);
    if ((rc = eh_qwenimage_vae_decode(p->vae, lat, k, olh, olw, planes, &e)) != EH_OK) {
        eh_fail(err, rc, "VAE decode: %s", e.msg);
        goto done;
    }
    for (int j = 0; j < k && rc == EH_OK; j++)
        if (!(out[j] = to_image(planes + (size_t)j * 3 * ow * oh, ow, oh, err)))
            rc = err->code;
done:
    free(hid2), free(v2), free(t2), free(m2), free(ts2);
    free(planes), free(lat), free(hid), free(x), free(v), free(vn), free(guided), free(tc), free(tn), free(mc),
        free(mn), free(sig), free(ts), free(tsv);
    return rc;
}

/* Items that can share the transformer's batch: the same output and
 * picture sizes. */
static int same_layout(const prep_item *a, const prep_item *b)
{
    if (a->ow != b->ow || a->oh != b->oh || a->n_pic != b->n_pic)
        return 0;
    for (int i = 0; i < a->n_pic; i++)
        if (a->w[i] != b->w[i] || a->h[i] != b->h[i])
            return 0;
    return 1;
}

/* eh_group_gather's `same` over the prepared items (ctx: the item array). */
static int same_layout_at(const void *ctx, size_t a, size_t b)
{
    const prep_item *it = ctx;
    return same_layout(&it[a], &it[b]);
}

eh_status eh_qwenimage_edit_denoise(eh_qwenimage_edit *p, eh_qwenimage_prepared *b,
                                    const eh_qwenimage_edit_params *params, eh_image **out, eh_error *item_errs,
                                    eh_error *err)
{
    int need = EH_QIE_TRANSFORMER | EH_QIE_VAE;
    if (!p->dit || (eh_qwenimage_edit_on_device(p) & need) != need)
        return eh_fail(err, EH_ESTATE, "the transformer and the VAE are not loaded");
    for (int i = 0; i < b->n; i++)
        out[i] = NULL;
    const prep_item **g = malloc(sizeof *g * (size_t)(b->n > 0 ? b->n : 1));
    size_t *idx = malloc(sizeof *idx * (size_t)(b->n > 0 ? b->n : 1));
    unsigned char *done = calloc((size_t)(b->n > 0 ? b->n : 1), 1);
    eh_image **res = malloc(sizeof *res * (size_t)(b->n > 0 ? b->n : 1));
    if (!g || !idx || !done || !res) {
        free(g), free(idx), free(done), free(res);
        return eh_fail(err, EH_ENOMEM, "out of memory");
    }
    for (int i = 0; i < b->n; i++)
        done[i] = !b->it[i].ok; /* failed items join no group */
    for (int i = 0; i < b->n; i++) {
        if (done[i])
            continue;
        int k = (int)eh_group_gather((size_t)b->n, (size_t)i, done, idx, same_layout_at, b->it);
        for (int j = 0; j < k; j++)
            g[j] = &b->it[idx[j]];
        eh_error e = { 0 };
        for (int j = 0; j < k; j++)
            res[j] = NULL;
        if (denoise_group(p, g, k, b->cfg, params, res, &e) == EH_OK) {
            for (int j = 0; j < k; j++)
                out[idx[j]] = res[j];
        } else {
            for (int j = 0; j < k; j++) {
                eh_image_free(res[j]);
                item_errs[idx[j]] = e;
            }
        }
    }
    free(g), free(idx), free(done), free(res);
    return EH_OK;
}

#else
typedef int eh_qwenimage_edit_unavailable;
#endif
