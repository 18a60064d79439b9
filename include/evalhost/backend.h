/* backend.h — the vtable every model backend fills (builtin, torch, http,
 * native).  Only model.c and the backends include it. */
#ifndef EVALHOST_BACKEND_H
#define EVALHOST_BACKEND_H

#include "evalhost/model.h"

/* A backend leaves out the members it lacks (NULL): no to_host or
 * host_memory when it holds no host copy, no edit for a judge, no score
 * for an editor (the role check keeps those from being called). */
typedef struct eh_backend {
    const char *name;
    /* Reads the spec, checks files; the model starts on disk.  Sets m->impl. */
    eh_status (*open)(eh_model *m, eh_error *err);
    /* disk → host: weights into (pinned) host memory.  May be NULL. */
    eh_status (*to_host)(eh_model *m, eh_error *err);
    /* host → device; *bytes is what was moved. */
    eh_status (*to_device)(eh_model *m, int64_t *bytes, eh_error *err);
    /* device → host: frees device memory, no copy back. */
    eh_status (*off_device)(eh_model *m, eh_error *err);
    int64_t (*footprint)(const eh_model *m);
    /* how the weights' host copy is held, in words (pinned, pageable and
     * why); NULL or "" when the backend holds none */
    const char *(*host_memory)(const eh_model *m);
    eh_status (*edit)(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n, eh_error *err);
    eh_status (*score)(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n, eh_error *err);
    /* Frees m->impl, which may be half filled by a failed open; called only
     * when open set it, and model.c clears it after. */
    void (*close)(eh_model *m);
    /* edit takes requests with more_images (else model.c fails them by name) */
    int several_images;
    /* score takes requests with images/text_first/text_only (a benchmark's layout) */
    int judge_layout;
} eh_backend;

struct eh_model {
    const eh_backend *backend;
    void *impl;                    /* backend state, owned by the backend */
    eh_host *host;
    eh_node *spec;                 /* owned: the section with params: merged in */
    eh_model_role role;
    eh_residency state;
    char section[64];
    char name[256];                /* builtin name, HF id or file name */
    char device[32];               /* "cpu", "cuda:0", ... after resolving "auto" */
    char dtype[16];
    int batch_size;
    char revision[96];             /* weights' revision when known (native: the HF snapshot hash), else "" */
    int64_t device_charge;         /* bytes counted against run.device_memory while loaded */
    int64_t activation_bytes;      /* activation_mb: what a forward needs per item there, beyond the weights */
};

extern const eh_backend eh_backend_builtin;
extern const eh_backend eh_backend_http;
#ifdef EVALHOST_HAVE_TORCH
extern const eh_backend eh_backend_torch;
extern const eh_backend eh_backend_native;          /* Qwen3-VL judge in libtorch (backend_native.c) */
extern const eh_backend eh_backend_native_editor;   /* Qwen-Image-Edit in libtorch (backend_native_editor.c) */
/* device: auto (the local rank's GPU, else cpu), cuda (the local rank's;
 * ranks past the visible GPUs wrap round them, as under srun
 * --gpus-per-task=1), or as given; checked against the libtorch build.
 * Into m->device.  Defined in backend_torch.c, for every libtorch backend. */
eh_status eh_torch_resolve_device(eh_model *m, const char *want, eh_error *err);
/* The start of every libtorch backend's open: m->impl a zeroed impl_size
 * bytes (freed by the backend's close whatever follows), the section's
 * dtype checked and its `device` resolved (above).  Defined in
 * backend_torch.c. */
eh_status eh_torch_backend_open(eh_model *m, size_t impl_size, eh_error *err);
/* run.pin as the shim's eh_torch_pin (auto without a host). */
int eh_backend_pin(const eh_model *m);
/* After a load into host memory: a refused page-locking is a warning
 * (once: the host copy is made once per model), else a debug line. */
void eh_backend_log_host(const eh_model *m, int host_kind, const char *note);
/* overlap_load, overlap_chunk_mb, overlap_test_delay_us (backend_overlap.c):
 * *chunk_bytes 0 for a blocking load; a bad value fails by key name. */
eh_status eh_backend_overlap_options(const eh_model *m, int64_t *chunk_bytes, int *delay_us, eh_error *err);
#endif

#endif
