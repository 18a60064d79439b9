/* qwenimage_edit.h — the whole Qwen-Image-Edit pipeline in process (issue
 * 14), step for step as diffusers' QwenImageEditPipeline (0.42.1) runs it:
 * the input resized to about 1 MP (LANCZOS), the prompt and the negative
 * prompt encoded by the Qwen2.5-VL text encoder with the edit template and
 * the image's vision tokens, VAE latents of the input, seeded noise, the
 * FlowMatch Euler loop over the MMDiT with true CFG, VAE decode.
 * Edit-2509/2511 folders (QwenImageEditPlusPipeline) take several
 * pictures: each seen by the text encoder at about 384x384 after
 * "Picture i: ", each packed into the transformer's input at about 1 MP;
 * the output size is the last picture's.
 *
 *   eh_qwenimage_edit *p;
 *   eh_qwenimage_edit_open("snap/", &p, &err);          // configs, tokenizer, processor
 *   eh_qwenimage_edit_load(p, &opt, loras, n_loras, &err);   // weights → host (+ LoRA)
 *   eh_qwenimage_edit_to_device(p, EH_QIE_ALL, &bytes, &err);
 *   eh_qwenimage_prepared *b = eh_qwenimage_edit_prepare(p, items, n, &params, errs, &err);  // text encoder
 *   eh_qwenimage_edit_denoise(p, b, &params, out_images, errs, &err);                         // transformer, VAE
 *   eh_qwenimage_prepared_free(b);
 *
 * The two phases let a caller keep the text encoder off the GPU while the
 * transformer runs (offload_text_encoder).  Defined in host/models/qwenimage_edit.c. */
#ifndef EVALHOST_QWENIMAGE_EDIT_H
#define EVALHOST_QWENIMAGE_EDIT_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/flowmatch.h"
#include "evalhost/image.h"

typedef struct eh_qwenimage_edit eh_qwenimage_edit;
typedef struct eh_qwenimage_prepared eh_qwenimage_prepared;

/* which components a residency call moves */
enum { EH_QIE_TEXT_ENCODER = 1, EH_QIE_TRANSFORMER = 2, EH_QIE_VAE = 4, EH_QIE_ALL = 7 };

typedef struct eh_qwenimage_lora {
    const char *path;          /* a .safetensors file */
    double scale;              /* the adapter weight (diffusers' set_adapters / fuse_lora lora_scale) */
} eh_qwenimage_lora;

typedef struct eh_qwenimage_load_options {
    const char *dtype;         /* float32, bfloat16, float16 */
    const char *device;        /* cpu, cuda:N (resolved) */
    int cpu_copy;              /* tests: the GPU's copy path on the CPU */
    int pin;                   /* run.pin as eh_torch_pin (0: auto) */
} eh_qwenimage_load_options;

typedef struct eh_qwenimage_edit_params {
    int steps;                 /* num_inference_steps */
    double true_cfg_scale;     /* CFG runs when > 1 and negative_prompt is not NULL */
    const char *negative_prompt;
    int width, height;         /* output size; 0: the input's ~1 MP size (the pipeline's default) */
    int mrope;                 /* text encoder positions: 1 get_rope_index's, 0 sequential (diffusers 0.42.1) */
    int cfg_one_call;          /* true CFG's two transformer passes as one batch of 2n (twice the activations) */
} eh_qwenimage_edit_params;

/* Model card defaults: 50 steps, true CFG 4.0, negative prompt " ". */
eh_qwenimage_edit_params eh_qwenimage_edit_default_params(void);

typedef struct eh_qwenimage_edit_item {
    const eh_image *image;     /* RGB (or RGBA, alpha dropped); Picture 1 */
    const char *prompt;
    uint64_t seed;             /* the CPU generator's seed for this item's noise */
    const eh_image *const *more_images;   /* Edit-Plus: Pictures 2.. */
    size_t n_more_images;
} eh_qwenimage_edit_item;

/* dir: a diffusers-layout snapshot (model_index.json, text_encoder/,
 * transformer/, vae/, scheduler/, processor/ or tokenizer/).  Reads and
 * cross-checks every config; no weights.  EH_EIO names a missing file,
 * EH_EFORMAT an unsupported pipeline class or option. */
eh_status eh_qwenimage_edit_open(const char *dir, eh_qwenimage_edit **out, eh_error *err);
void eh_qwenimage_edit_free(eh_qwenimage_edit *p);              /* NULL is a no-op */

/* The scheduler's settings from scheduler_config.json, for a caller to
 * override (e.g. Lightning's shifts) before the first edit. */
eh_flowmatch_config *eh_qwenimage_edit_scheduler(eh_qwenimage_edit *p);

/* Pictures one edit takes: 1 (Edit), or up to 16 (Edit-2509/2511). */
int eh_qwenimage_edit_max_pictures(const eh_qwenimage_edit *p);

/* Device bytes of the parts in `which` at `dtype`: from every shard's
 * header before load (a float32 file loaded as bfloat16 counts half), the
 * host copy's after.  LoRAs merge into the transformer's own weights and
 * add nothing.  A real-shape stand-in part (footprint.h) counts as the
 * full model it stands in for, before and after. */
int64_t eh_qwenimage_edit_footprint(const eh_qwenimage_edit *p, int which, const char *dtype);
/* A stand-in part's note ("2 of 60 blocks"), or NULL when none is one. */
const char *eh_qwenimage_edit_stand_in(const eh_qwenimage_edit *p);
/* How the loaded parts' host copies are held: the first part whose
 * page-locking was refused, else the transformer's; NULL before load. */
const char *eh_qwenimage_edit_host_note(const eh_qwenimage_edit *p, int *refused);

/* Weights into the host copy in opt->dtype, the LoRAs merged into the
 * transformer (their names as diffusers accepts them: diffusers/PEFT
 * lora_A/lora_B, kohya lora_down/lora_up with alpha, diffusion_model. or
 * lora_unet_ prefixes).  A LoRA tensor that matches no layer is an error. */
eh_status eh_qwenimage_edit_load(eh_qwenimage_edit *p, const eh_qwenimage_load_options *opt,
                                 const eh_qwenimage_lora *loras, int n_loras, eh_error *err);
int eh_qwenimage_edit_loaded(const eh_qwenimage_edit *p);
/* Number of LoRA pairs merged by the load. */
int eh_qwenimage_edit_lora_pairs(const eh_qwenimage_edit *p);

eh_status eh_qwenimage_edit_to_device(eh_qwenimage_edit *p, int which, int64_t *bytes, eh_error *err);
eh_status eh_qwenimage_edit_off_device(eh_qwenimage_edit *p, int which, eh_error *err);
int eh_qwenimage_edit_on_device(const eh_qwenimage_edit *p);    /* EH_QIE_* bits */

/* Phase 1 (text encoder on its device): resize, preprocess and encode each
 * item's prompt and the negative prompt.  An item that cannot be prepared
 * (image too small, prompt too long) gets item_errs[i] set and is skipped
 * by the denoise; NULL with err only when nothing could run at all. */
eh_qwenimage_prepared *eh_qwenimage_edit_prepare(eh_qwenimage_edit *p, const eh_qwenimage_edit_item *items, int n,
                                                 const eh_qwenimage_edit_params *params, eh_error *item_errs,
                                                 eh_error *err);
void eh_qwenimage_prepared_free(eh_qwenimage_prepared *b);      /* NULL is a no-op */

/* Phase 2 (transformer and VAE on their device): items of one size run as
 * one batch.  out[i]: the edited image (caller frees) or NULL with
 * item_errs[i].  Returns EH_OK unless the call itself failed. */
eh_status eh_qwenimage_edit_denoise(eh_qwenimage_edit *p, eh_qwenimage_prepared *b,
                                    const eh_qwenimage_edit_params *params, eh_image **out, eh_error *item_errs,
                                    eh_error *err);

#endif
