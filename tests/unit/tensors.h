/* tensors.h — the parity tests' weights: a safetensors file or folder
 * opened and its tensors listed as the native loaders take them. */
#ifndef EVALHOST_TEST_TENSORS_H
#define EVALHOST_TEST_TENSORS_H

#include <stdlib.h>
#include <string.h>

#include "evalhost/safetensors.h"

/* The tensors of path (skip: one name left out, e.g. to test a missing
 * weight; NULL: none), malloc'd, their count in *k; *st stays open for
 * them (the caller closes it after the load).  NULL with err set or out of
 * memory, nothing left open. */
static inline const eh_st_tensor **open_tensors(const char *path, const char *skip, eh_safetensors **st, size_t *k,
                                                eh_error *err)
{
    *k = 0;
    *st = eh_safetensors_open(path, err);
    if (!*st)
        return NULL;
    size_t n = eh_safetensors_count(*st);
    const eh_st_tensor **ts = malloc(sizeof *ts * (n + 1));
    for (size_t i = 0; ts && i < n; i++)
        if (!skip || strcmp(eh_safetensors_at(*st, i)->name, skip))
            ts[(*k)++] = eh_safetensors_at(*st, i);
    if (!ts) {
        eh_safetensors_close(*st);
        *st = NULL;
    }
    return ts;
}

/* A mutant weight for the "bound must fail" cases: the float32 tensor
 * name in ts[0..k) replaced by *mut, a copy scaled by scale (the mapping is
 * read-only); its data malloc'd, the caller frees it after the load (the
 * loaders copy).  NULL when the tensor is missing or not float32. */
static inline float *scale_tensor(const eh_st_tensor **ts, size_t k, const char *name, float scale, eh_st_tensor *mut)
{
    for (size_t i = 0; i < k; i++) {
        if (strcmp(ts[i]->name, name) || ts[i]->dtype != EH_ST_F32)
            continue;
        float *data = malloc(ts[i]->nbytes);
        if (!data)
            return NULL;
        *mut = *ts[i];
        for (int64_t j = 0; j < mut->numel; j++)
            data[j] = ((const float *)mut->data)[j] * scale;
        mut->data = data;
        ts[i] = mut;
        return data;
    }
    return NULL;
}

#endif
