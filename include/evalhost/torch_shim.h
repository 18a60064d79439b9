/* torch_shim.h — the C face of libtorch's residency and TorchScript modules
 * (host/models/torch/residency.cpp; host/models/torch/ holds the only C++).
 * Opaque handles, C types and eh_error only: no C++ type and no exception
 * crosses this line; the native models' own faces are evalhost/qwen3vl.h,
 * qwen25vl_text_encoder.h, qwenimage_vae.h and qwenimage_dit.h.  Every function that can fail returns an
 * eh_status and fills err (may be NULL) with one line naming the cause.
 *
 *   eh_torch_module *tm;
 *   eh_torch_options o = eh_torch_default_options();
 *   o.dtype = "bfloat16", o.device = "cuda:0";
 *   eh_torch_module_load("editor.pt", &o, &tm, &err);   // disk → host (pinned, immutable)
 *   eh_torch_module_to_device(tm, &bytes, &err);         // one host→device copy
 *   eh_torch_module_edit(tm, chw, n, h, w, texts, &out, &oh, &ow, &err);
 *   eh_torch_module_off_device(tm, &err);                // frees device memory, no copy back
 *   eh_torch_module_free(tm);
 *
 * Residency: the weights (every tensor attribute: parameters, buffers and
 * plain tensor attributes) live in ONE flat host buffer, pinned when the
 * module's device is CUDA, written once at load and never again.  On the
 * device they live in one flat buffer of the same layout filled by a single
 * copy on a dedicated stream; the module's tensors are views into whichever
 * buffer is current.  On the CPU the host buffer is the device buffer
 * (unless cpu_copy asks for the GPU's path through a second buffer).
 *
 * A module is not thread-safe; use one thread per module. */
#ifndef EVALHOST_TORCH_SHIM_H
#define EVALHOST_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_torch_module eh_torch_module;

typedef enum eh_torch_role { EH_TORCH_EDITOR = 0, EH_TORCH_JUDGE } eh_torch_role;

/* How the host copy is held (eh_torch_module_host_kind). */
typedef enum eh_torch_host_kind {
    EH_TORCH_HOST_PLAIN = 0,      /* pageable: CPU modules */
    EH_TORCH_HOST_REGISTERED,     /* mmap'd and cudaHostRegister'ed: exact size */
    EH_TORCH_HOST_TORCH_PINNED,   /* torch's pinned allocator (rounds up to 2^k) */
    EH_TORCH_HOST_PIN_REFUSED,    /* pageable: page-locking was refused (run.pin: auto) */
} eh_torch_host_kind;

/* run.pin for a CUDA module's host copy (and a CPU one with cpu_copy under
 * the test hook EVALHOST_TEST_PIN_REFUSE, which makes every page-locking
 * fail): auto page-locks it and, when the driver refuses (the locked-memory
 * limit, 118 GB for two models of the job), falls back to pageable copies
 * for that module (eh_torch_module_host_note says why); always fails the
 * load instead; never does not try. */
typedef enum eh_torch_pin { EH_TORCH_PIN_AUTO = 0, EH_TORCH_PIN_ALWAYS, EH_TORCH_PIN_NEVER } eh_torch_pin;

typedef struct eh_torch_options {
    eh_torch_role role;
    const char *dtype;            /* "float32", "float16", "bfloat16" (aliases fp32, fp16, half, bf16) */
    const char *device;           /* "cpu", "cuda", "cuda:N" (resolve "auto" first) */
    int jit_optimize;             /* 0: profiling-executor fusions off, so batches equal single calls */
    int cpu_copy;                 /* CPU only: load copies into a second buffer and retargets, as on a GPU */
    /* > 0: an overlapped load.  to_device returns once the copy is queued in
     * chunks of about this many bytes (cut on tensor boundaries) with an
     * event per chunk (CUDA: the copy stream; CPU with cpu_copy: a copier
     * thread); a native forward's weight lookup waits for the chunk holding
     * that weight only, so the first forward after a load computes layer i
     * while layer i+1 is still on the wire.  A TorchScript forward waits
     * for the whole copy (on the GPU, not the host).  0: one blocking copy. */
    int64_t overlap_chunk_bytes;
    int overlap_test_delay_us; /* tests: the CPU copier sleeps this long per chunk, the buffer NaN bytes until then */
    eh_torch_pin pin; /* run.pin (default auto) */
} eh_torch_options;

eh_torch_options eh_torch_default_options(void); /* editor, float32, cpu, no jit fusions, no cpu copy */

/* Library facts.  Without CUDA: available 0, count 0, memory zeros. */
const char *eh_torch_version(void);
int eh_torch_cuda_available(void);
int eh_torch_cuda_device_count(void);
eh_status eh_torch_cuda_memory(int device, int64_t *free_bytes, int64_t *total_bytes, eh_error *err);

/* Checks a dtype / device string; 0 if fine, else -1 with err set. */
eh_status eh_torch_check_dtype(const char *dtype, eh_error *err);
eh_status eh_torch_check_device(const char *device, eh_error *err);

/* disk → host: torch::jit::load on the CPU, checks forward's signature
 * against the role, casts floating tensors to the dtype, packs every tensor
 * into the host buffer.  EH_EIO (file), EH_EFORMAT (not TorchScript, wrong
 * signature), EH_ENOMEM. */
eh_status eh_torch_module_load(const char *path, const eh_torch_options *opt, eh_torch_module **out, eh_error *err);

/* A module built in memory for benchmarks: n_params parameters totalling
 * about `bytes` in the dtype, parameter i filled with ((i % 7) + 1) / 8, and
 * a forward of the role's signature that returns a tensor shaped like its
 * first input, every element the mean over parameters of their mean (so a
 * caller can check the weights arrived intact). */
eh_status eh_torch_module_synthetic(int64_t bytes, int n_params, const eh_torch_options *opt, eh_torch_module **out,
                                    eh_error *err);

void eh_torch_module_free(eh_torch_module *m); /* NULL is a no-op; frees device memory too */

/* host → device; *bytes = what the copy moved (the footprint on CPU, where
 * nothing is copied).  Idempotent.  On failure (device OOM) the module is
 * left on the host, as it was. */
eh_status eh_torch_module_to_device(eh_torch_module *m, int64_t *bytes, eh_error *err);
/* device → host: the module's tensors point back into the host buffer and
 * the device buffer is freed (and the caching allocator's cache emptied). */
eh_status eh_torch_module_off_device(eh_torch_module *m, eh_error *err);

int64_t eh_torch_module_footprint(const eh_torch_module *m); /* bytes of all tensors in their dtypes */
int eh_torch_module_tensor_count(const eh_torch_module *m);
int eh_torch_module_on_device(const eh_torch_module *m); /* 1 between to_device and off_device */
eh_torch_host_kind eh_torch_module_host_kind(const eh_torch_module *m);
/* How the host copy is held, in words ("pinned (cudaHostRegister)", "pageable:
 * page-locking 62.1 GB was refused (cudaHostRegister error 2)", ...). */
const char *eh_torch_module_host_note(const eh_torch_module *m);
/* 1 when forward's text argument is List[str] (one text per batch item);
 * 0 when it is str (a batch must share one text). */
int eh_torch_module_text_is_list(const eh_torch_module *m);

/* Editor: images are n float32 CHW planes in [0,1], contiguous as
 * [n,3,h,w]; texts[n] (with a str signature all must be equal).  On success
 * *out is malloc'd float32 [n,3,*oh,*ow] (caller frees). */
eh_status eh_torch_module_edit(eh_torch_module *m, const float *images, int n, int h, int w, const char *const *texts,
                               float **out, int *oh, int *ow, eh_error *err);

/* Judge: edited [n,3,h,w], original [n,3,h2,w2], prompts[n].  out has room
 * for n*11 doubles; *k is 1 (a score each) or 11 (logits over "0".."10"). */
eh_status eh_torch_module_judge(eh_torch_module *m, const float *edited, int h, int w, const float *original, int h2,
                                int w2, int n, const char *const *prompts, double *out, int *k, eh_error *err);

/* x[i] = float(dtype(x[i])): torch's rounding to bfloat16/float16 (a
 * no-op for float32), where the Qwen-Image pipeline keeps a tensor in the
 * model's dtype. */
eh_status eh_torch_round_floats(float *x, size_t n, const char *dtype, eh_error *err);

#ifdef __cplusplus
}
#endif

#endif
