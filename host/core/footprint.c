/* footprint.c — device bytes from safetensors headers (see footprint.h). */
#include "evalhost/footprint.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evalhost/json_file.h"
#include "evalhost/safetensors.h"

/* an index.json is small; the Hub's largest are a few MB */
#define INDEX_MAX_BYTES ((size_t)64 << 20)

size_t eh_dtype_bytes(const char *dtype)
{
    static const struct {
        const char *name;
        size_t size;
    } names[] = {
        { "float32", 4 }, { "fp32", 4 }, { "float", 4 },    { "float16", 2 },
        { "fp16", 2 },    { "half", 2 }, { "bfloat16", 2 }, { "bf16", 2 },
    };
    for (size_t i = 0; dtype && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(dtype, names[i].name))
            return names[i].size;
    return 0;
}

static int is_float(eh_st_dtype d)
{
    return d == EH_ST_F16 || d == EH_ST_BF16 || d == EH_ST_F32 || d == EH_ST_F64 || d == EH_ST_F8_E4M3 ||
           d == EH_ST_F8_E5M2;
}

/* The index.json a path opens, if any ("" for a single file). */
static void index_path(const char *path, char *out, size_t n)
{
    struct stat sb;
    out[0] = 0;
    size_t len = strlen(path);
    if (len > 5 && !strcmp(path + len - 5, ".json")) {
        snprintf(out, n, "%s", path);
        return;
    }
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return;
    static const char *const stems[] = { "model", "diffusion_pytorch_model" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(out, n, "%s/%s.safetensors.index.json", path, stems[i]);
        if (stat(out, &sb) == 0)
            return;
    }
    out[0] = 0;
}

/* A stand-in's metadata: the full model's floating element count. */
static eh_status read_stand_in(const char *index, size_t elem, eh_footprint *out, eh_error *err)
{
    cJSON *root = eh_json_read_object(index, INDEX_MAX_BYTES, err);
    if (!root)
        return err ? err->code : EH_EIO;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(md, EH_FOOTPRINT_FULL_NUMEL_KEY);
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(md, EH_FOOTPRINT_STAND_IN_KEY);
    double numel = cJSON_IsNumber(n) ? n->valuedouble : cJSON_IsString(n) ? strtod(n->valuestring, NULL) : 0;
    eh_status rc = EH_OK;
    if (n && !(numel > 0 && numel < 1e15))   /* 10^15 elements: no model is that large */
        rc = eh_fail(err, EH_EFORMAT, "%s: metadata.%s must be a positive element count", index,
                     EH_FOOTPRINT_FULL_NUMEL_KEY);
    else if (n) {
        out->full_numel = (int64_t)numel;
        out->full_bytes = out->full_numel * (int64_t)elem;
        snprintf(out->stand_in, sizeof out->stand_in, "%s", cJSON_IsString(note) ? note->valuestring : "a stand-in");
    }
    cJSON_Delete(root);
    return rc;
}

int64_t eh_footprint_at(const eh_footprint *f, size_t elem)
{
    if (f->full_numel)
        return f->full_numel * (int64_t)elem;
    return f->float_numel * (int64_t)elem + f->other_bytes;
}

static eh_status count(const char *path, const char *dtype, int still, const char *skip, eh_footprint *out,
                       eh_error *err);

eh_status eh_footprint_safetensors(const char *path, const char *dtype, eh_footprint *out, eh_error *err)
{
    return count(path, dtype, 0, NULL, out, err);
}

eh_status eh_footprint_safetensors_still(const char *path, const char *dtype, eh_footprint *out, eh_error *err)
{
    return count(path, dtype, 1, NULL, out, err);
}

eh_status eh_footprint_safetensors_without(const char *path, const char *dtype, const char *skip, eh_footprint *out,
                                           eh_error *err)
{
    return count(path, dtype, 0, skip, out, err);
}

static eh_status count(const char *path, const char *dtype, int still, const char *skip, eh_footprint *out,
                       eh_error *err)
{
    memset(out, 0, sizeof *out);
    size_t elem = eh_dtype_bytes(dtype);
    if (!elem)
        return eh_fail(err, EH_EINVAL, "unknown dtype '%s' (float32, float16, bfloat16)", dtype ? dtype : "(null)");
    eh_safetensors *st = eh_safetensors_open(path, err);
    if (!st)
        return err ? err->code : EH_EIO;
    for (size_t i = 0; i < eh_safetensors_count(st); i++) {
        const eh_st_tensor *t = eh_safetensors_at(st, i);
        out->stored_bytes += (int64_t)t->nbytes;
        if (skip && !strcmp(t->name, skip))
            continue;
        int64_t numel = still && t->ndim == 5 && t->shape[2] > 0 ? t->numel / t->shape[2] : t->numel;
        /* the loaders cast every floating tensor to the model's dtype and
         * keep integer ones (none in these models) as they are */
        out->bytes += is_float(t->dtype) ? numel * (int64_t)elem : (int64_t)t->nbytes;
        out->float_numel += is_float(t->dtype) ? numel : 0;
        out->other_bytes += is_float(t->dtype) ? 0 : (int64_t)t->nbytes;
    }
    eh_safetensors_close(st);
    char index[4200];
    index_path(path, index, sizeof index);
    return index[0] ? read_stand_in(index, elem, out, err) : EH_OK;
}
