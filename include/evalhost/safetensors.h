/* safetensors.h — read-only access to Hugging Face safetensors weights: one
 * `*.safetensors` file, or the shards a `model.safetensors.index.json`
 * names.  Files are mmapped; every header is bounds-checked (length, JSON,
 * dtype, shape against its byte range, ranges inside the file, no overlap)
 * before a tensor is handed out, so a tensor's bytes are always readable.
 *
 *   eh_safetensors *st = eh_safetensors_open("snap/", &err);   // dir, file or index
 *   const eh_st_tensor *t = eh_safetensors_find(st, "lm_head.weight");
 *   use(t->data, t->dtype, t->shape, t->ndim);
 *   eh_safetensors_close(st);
 */
#ifndef EVALHOST_SAFETENSORS_H
#define EVALHOST_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EH_ST_MAX_DIMS 8

typedef enum eh_st_dtype {
    EH_ST_BOOL = 0,
    EH_ST_U8,
    EH_ST_I8,
    EH_ST_I16,
    EH_ST_U16,
    EH_ST_F16,
    EH_ST_BF16,
    EH_ST_I32,
    EH_ST_U32,
    EH_ST_F32,
    EH_ST_I64,
    EH_ST_U64,
    EH_ST_F64,
    EH_ST_F8_E4M3,
    EH_ST_F8_E5M2,
} eh_st_dtype;

typedef struct eh_st_tensor {
    const char *name;            /* owned by the eh_safetensors */
    eh_st_dtype dtype;
    int ndim;
    int64_t shape[EH_ST_MAX_DIMS];
    int64_t numel;
    const void *data;            /* inside the read-only mapping */
    uint64_t nbytes;
    const char *file;            /* the file it came from (for messages) */
} eh_st_tensor;

typedef struct eh_safetensors eh_safetensors;

/* path: a .safetensors file, a model.safetensors.index.json, or a directory
 * holding either (the index wins).  NULL on failure with err naming the
 * file and, where one is to blame, the tensor: EH_EIO (missing,
 * unreadable), EH_EFORMAT (corrupt, truncated, unknown dtype). */
eh_safetensors *eh_safetensors_open(const char *path, eh_error *err);
void eh_safetensors_close(eh_safetensors *st);            /* NULL is a no-op */

size_t eh_safetensors_count(const eh_safetensors *st);
const eh_st_tensor *eh_safetensors_at(const eh_safetensors *st, size_t i);    /* sorted by name */
const eh_st_tensor *eh_safetensors_find(const eh_safetensors *st, const char *name);   /* or NULL */
uint64_t eh_safetensors_total_bytes(const eh_safetensors *st);
/* Every tensor, sorted by name, as a malloc'd array of *n pointers (what
 * the model loaders take); the caller frees the array, the tensors stay
 * the reader's.  NULL with err (EH_ENOMEM) when it cannot be made. */
const eh_st_tensor **eh_safetensors_list(const eh_safetensors *st, size_t *n, eh_error *err);

/* Drops the mapping's resident pages under t's bytes (madvise
 * MADV_DONTNEED; the file stays, a later read faults them back in): a
 * loader calls it once a tensor is copied, so a load's peak is the copy's
 * buffer, not the copy plus every page of the file it has read. */
void eh_st_tensor_release(const eh_st_tensor *t);

const char *eh_st_dtype_name(eh_st_dtype d);   /* "F32", "BF16", ... */
size_t eh_st_dtype_size(eh_st_dtype d);

#ifdef __cplusplus
}
#endif

#endif
