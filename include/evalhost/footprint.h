/* footprint.h — the bytes a checkpoint's weights will take on the device,
 * from the safetensors headers alone (every shard an index.json names;
 * no tensor data is read), at the dtype the model is loaded in: a float32
 * checkpoint loaded as bfloat16 takes half.
 *
 *   eh_footprint f;
 *   eh_footprint_safetensors("snap/", "bfloat16", &f, &err);
 *   f.bytes       // floating tensors at 2 bytes each, others as stored
 *
 * A real-shape stand-in (tools/make_real_shape.py: the real widths with
 * the layer counts cut) records in its index.json's metadata the floating
 * element count of the full model it stands in for; f.full_bytes is that
 * count at the dtype, so a schedule can be planned against the real job's
 * sizes on a machine that cannot hold it. */
#ifndef EVALHOST_FOOTPRINT_H
#define EVALHOST_FOOTPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

typedef struct eh_footprint {
    int64_t bytes;          /* on the device at the dtype */
    int64_t stored_bytes;   /* the tensors as the files store them */
    int64_t full_bytes;     /* a stand-in's full-size model at the dtype; 0 when not a stand-in */
    int64_t float_numel;    /* floating elements (what the dtype scales) */
    int64_t other_bytes;    /* non-floating tensors, kept as stored */
    int64_t full_numel;     /* a stand-in's full model's floating elements; 0 otherwise */
    char stand_in[160];     /* a stand-in's note ("2 of 48 decoder layers"), "" otherwise */
} eh_footprint;

/* Bytes of one element of a model dtype name (float32, float16, bfloat16
 * and the aliases fp32, fp16, half, bf16); 0 for an unknown name. */
size_t eh_dtype_bytes(const char *dtype);

/* path: a directory, index.json or .safetensors file (as
 * eh_safetensors_open takes).  EH_EIO / EH_EFORMAT as that open fails;
 * EH_EINVAL for an unknown dtype. */
eh_status eh_footprint_safetensors(const char *path, const char *dtype, eh_footprint *out, eh_error *err);
/* The same for a loader that keeps one temporal slice of every 5-D kernel
 * (the Qwen-Image VAE's causal 3-D convolutions, run on still images):
 * such a tensor counts numel / shape[2]. */
eh_status eh_footprint_safetensors_still(const char *path, const char *dtype, eh_footprint *out, eh_error *err);
/* The same without one tensor the loader leaves out (the editor's text
 * encoder has no use for lm_head.weight: 1.1 GB of Qwen2.5-VL-7B's in bf16). */
eh_status eh_footprint_safetensors_without(const char *path, const char *dtype, const char *skip, eh_footprint *out,
                                           eh_error *err);

/* The same checkpoint's device bytes at another dtype's element size (a
 * stand-in's: its full model's). */
int64_t eh_footprint_at(const eh_footprint *f, size_t elem);

/* The metadata keys a stand-in's index.json carries (strings or numbers). */
#define EH_FOOTPRINT_FULL_NUMEL_KEY "evalhost_full_float_numel"
#define EH_FOOTPRINT_STAND_IN_KEY "evalhost_stand_in"

#endif
