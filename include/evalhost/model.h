/* model.h — model handles (editor or judge) behind one backend vtable, with
 * residency disk → host → device and every move counted by the host.
 *
 *   eh_model *m = eh_model_open(host, "judge", spec, &err);   // state: disk
 *   eh_model_load(m, &err);                                   // → device
 *   eh_model_score_batch(m, reqs, results, n, &err);
 *   eh_model_unload(m, &err);                                 // → host
 *   eh_model_free(m);
 */
#ifndef EVALHOST_MODEL_H
#define EVALHOST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/host.h"
#include "evalhost/image.h"
#include "evalhost/node.h"

typedef struct eh_model eh_model;

typedef enum eh_model_role { EH_ROLE_EDITOR = 0, EH_ROLE_JUDGE } eh_model_role;
typedef enum eh_residency { EH_RES_DISK = 0, EH_RES_HOST, EH_RES_DEVICE } eh_residency;

typedef struct eh_edit_request {
    const eh_image *image;
    const char *instruction;
    const eh_node *options;          /* per-call options (seed, steps, ...); may be NULL */
    /* further input pictures (Qwen-Image-Edit-2509/2511: "Picture 2", ...);
     * a backend that takes one picture fails such a request by itself */
    const eh_image *const *more_images;
    size_t n_more_images;
} eh_edit_request;

typedef struct eh_edit_result {
    eh_image *image;                 /* owned by the caller; NULL on failure */
    eh_error err;
} eh_edit_result;

#define EH_SCORE_MAX_IMAGES 16   /* pictures the native judge takes in one request */

/* The judge's chat (lua/evalhost/chat.lua builds it): OpenAI-style
 * messages whose content parts are a text or a picture (exactly one set).
 * The http judge sends them as content parts, the native judge renders
 * them with its model's chat template. */
typedef struct eh_chat_part {
    const char *text;
    const eh_image *image;
} eh_chat_part;

typedef struct eh_chat_message {
    const char *role;                /* system, user or assistant */
    const eh_chat_part *parts;
    size_t n_parts;
} eh_chat_message;

typedef struct eh_score_request {
    const eh_image *image;           /* the edited image */
    const eh_image *original;        /* may be NULL */
    const char *instruction, *description, *system_prompt, *user_prompt, *category, *id;
    /* A benchmark's own layout (its official judge request): when images is
     * set, exactly these pictures in this order, unlabelled, replace
     * original + image; text_first puts the prompt before them (VIEScore,
     * ImgEdit, RISEBench do); text_only: a reply with no score the host can
     * read is no failure (the benchmark's parser reads the text);
     * jpeg_quality > 0 overrides the model's for this request. A backend
     * without the capability fails such a request by name (model.c). */
    const eh_image *const *images;
    size_t n_images;
    int text_first, text_only, jpeg_quality;
    /* the chat every judge backend uses (http, native); the fields above
     * are what it was built from */
    const eh_chat_message *messages;
    size_t n_messages;
} eh_score_request;

/* values a judge's score_range may hold: [0, 100] at most */
#define EH_SCORE_MAX_VALUES 101

typedef struct eh_score_result {
    int ok;                          /* 0: err says why; score is meaningless */
    double score;                    /* in the judge's score_range (default 0..10) */
    char *text;                      /* judge text, malloc'd, owned by the result */
    double probs[EH_SCORE_MAX_VALUES]; /* P(score_lo + i) when has_probs */
    int has_probs;
    int score_lo, n_probs;           /* the range probs covers; n_probs 0: 0..10 (11 values) */
    const char *score_method;        /* static: "logprobs", "logprobs-approx", "text"; NULL: unsaid */
    eh_error err;
} eh_score_result;

void eh_score_result_clear(eh_score_result *r);   /* frees text */

/* section: the config section name ("editor", "judge", "diffusion_model",
 * "reward_model"), used in messages and to infer the role.  spec: that
 * section (params: merged in).  Returns NULL with err naming the model. */
eh_model *eh_model_open(eh_host *host, const char *section, const eh_node *spec, eh_error *err);
void eh_model_free(eh_model *m);                  /* NULL is a no-op; unloads first */

eh_status eh_model_load(eh_model *m, eh_error *err);     /* → device (via host) */
eh_status eh_model_unload(eh_model *m, eh_error *err);   /* device → host, no copy back */
eh_residency eh_model_state(const eh_model *m);
const char *eh_residency_name(eh_residency r);
/* Bytes the weights take on the device at the model's dtype, known before
 * anything loads: native models from every shard's safetensors header
 * (floating tensors at the dtype's size; LoRAs merge and add nothing; a
 * real-shape stand-in counts as its full model), then the held tensors'
 * own bytes; builtin and http: footprint_mb; torch: the file's size until
 * it is read. */
int64_t eh_model_footprint(const eh_model *m);
/* How the host copy of the weights is held ("pinned (cudaHostRegister)",
 * "pageable: page-locking ... failed ..."); "" when none is held. */
const char *eh_model_host_memory(const eh_model *m);

eh_model_role eh_model_role_of(const eh_model *m);
const char *eh_model_section(const eh_model *m);
const char *eh_model_backend_name(const eh_model *m);
const char *eh_model_name(const eh_model *m);
const char *eh_model_device(const eh_model *m);
const char *eh_model_dtype(const eh_model *m);
int eh_model_batch_size(const eh_model *m);
const char *eh_model_revision(const eh_model *m);   /* "" when unknown (native: the HF snapshot hash) */

/* Batches: results[i] filled for each request; a per-item failure is in
 * results[i].err and does not fail the call.  The return value is non-OK
 * only when the whole call failed (wrong role, not loaded). */
eh_status eh_model_edit_batch(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n,
                              eh_error *err);
eh_status eh_model_score_batch(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                               eh_error *err);

#endif
