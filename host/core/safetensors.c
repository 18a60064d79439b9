/* safetensors.c — safetensors files and sharded indexes, mmapped and
 * checked before use.  The format: 8 bytes little-endian header length N,
 * N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...,
 * "__metadata__": {...}}, then the data; offsets are relative to the data.
 * Every check here is what stands between a hostile file and a read past a
 * mapping, so each one names the file and the tensor. */
#define _DEFAULT_SOURCE   /* madvise (MADV_DONTNEED): POSIX's posix_madvise does nothing on Linux */
#include "evalhost/safetensors.h"
#include "evalhost/grow.h"
#include "evalhost/str.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest header accepted: real ones are well under 10 MB (the Rust crate
 * caps at 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_INDEX ((off_t)64 << 20)

typedef struct st_map {
    char *path;
    void *base;
    size_t len;
} st_map;

struct eh_safetensors {
    st_map *maps;
    size_t n_maps;
    eh_st_tensor *tensors;
    size_t count, cap;
    uint64_t total;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [EH_ST_BOOL] = { "BOOL", 1 }, [EH_ST_U8] = { "U8", 1 },           [EH_ST_I8] = { "I8", 1 },
    [EH_ST_I16] = { "I16", 2 },   [EH_ST_U16] = { "U16", 2 },         [EH_ST_F16] = { "F16", 2 },
    [EH_ST_BF16] = { "BF16", 2 }, [EH_ST_I32] = { "I32", 4 },         [EH_ST_U32] = { "U32", 4 },
    [EH_ST_F32] = { "F32", 4 },   [EH_ST_I64] = { "I64", 8 },         [EH_ST_U64] = { "U64", 8 },
    [EH_ST_F64] = { "F64", 8 },   [EH_ST_F8_E4M3] = { "F8_E4M3", 1 }, [EH_ST_F8_E5M2] = { "F8_E5M2", 1 },
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *eh_st_dtype_name(eh_st_dtype d)
{
    return (size_t)d < N_DTYPES ? dtypes[d].name : "?";
}
size_t eh_st_dtype_size(eh_st_dtype d)
{
    return (size_t)d < N_DTYPES ? dtypes[d].size : 0;
}

static int parse_dtype(const char *s, eh_st_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (eh_st_dtype)i;
            return 0;
        }
    return -1;
}

void eh_safetensors_close(eh_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->count; i++)
        free((char *)st->tensors[i].name);
    for (size_t i = 0; i < st->n_maps; i++) {
        if (st->maps[i].base)
            munmap(st->maps[i].base, st->maps[i].len);
        free(st->maps[i].path);
    }
    free(st->maps);
    free(st->tensors);
    free(st);
}

size_t eh_safetensors_count(const eh_safetensors *st)
{
    return st->count;
}
uint64_t eh_safetensors_total_bytes(const eh_safetensors *st)
{
    return st->total;
}

const eh_st_tensor *eh_safetensors_at(const eh_safetensors *st, size_t i)
{
    return i < st->count ? &st->tensors[i] : NULL;
}

const eh_st_tensor **eh_safetensors_list(const eh_safetensors *st, size_t *n, eh_error *err)
{
    const eh_st_tensor **ts = malloc(sizeof *ts * (st->count ? st->count : 1));
    if (!ts) {
        eh_fail(err, EH_ENOMEM, "out of memory for %zu tensor names", st->count);
        return NULL;
    }
    for (size_t i = 0; i < st->count; i++)
        ts[i] = &st->tensors[i];
    *n = st->count;
    return ts;
}

void eh_st_tensor_release(const eh_st_tensor *t)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!t || !t->nbytes || page <= 0)
        return;
    /* whole pages only: a neighbour's bytes on the edge pages stay mapped */
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)page - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const eh_st_tensor *)a)->name, ((const eh_st_tensor *)b)->name);
}

const eh_st_tensor *eh_safetensors_find(const eh_safetensors *st, const char *name)
{
    eh_st_tensor key = { .name = name };
    if (!st->count)
        return NULL;
    return bsearch(&key, st->tensors, st->count, sizeof key, by_name);
}

/* Maps a whole file read-only; the map is recorded in st for close. */
static st_map *map_file(eh_safetensors *st, const char *path, eh_error *err)
{
    st_map *grown = realloc(st->maps, sizeof *grown * (st->n_maps + 1));
    if (!grown) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    st->maps = grown;
    st_map *m = &st->maps[st->n_maps];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (!m->path) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    st->n_maps++;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        eh_fail(err, EH_EIO, "%s: not a regular file", path);
        return NULL;
    }
    if (sb.st_size < 8) {
        close(fd);
        eh_fail(err, EH_EFORMAT, "%s: truncated safetensors file (%lld bytes; the header length alone is 8)", path,
                (long long)sb.st_size);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        eh_fail(err, EH_EIO, "%s: mmap: %s", path, strerror(errno));
        return NULL;
    }
    m->base = p;
    m->len = (size_t)sb.st_size;
    return m;
}

static int push_tensor(eh_safetensors *st, const eh_st_tensor *t)
{
    if (eh_grow((void **)&st->tensors, &st->cap, st->count + 1, sizeof *st->tensors, 64))
        return -1;
    st->tensors[st->count++] = *t;
    return 0;
}

typedef struct range {
    uint64_t begin, end;
    const char *name;
} range;

static int by_begin(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Reads one tensor's header entry; 0 or -1 with err set. */
static int read_entry(const cJSON *e, const char *file, uint64_t data_len, eh_st_tensor *t, eh_error *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': header entry is not an object", file, name), -1;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || parse_dtype(dt->valuestring, &t->dtype) != 0)
        return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': unknown or missing dtype%s%s", file, name,
                       cJSON_IsString(dt) ? " " : "", cJSON_IsString(dt) ? dt->valuestring : ""),
               -1;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > EH_ST_MAX_DIMS)
        return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': shape is not an array of at most %d sizes", file, name,
                       EH_ST_MAX_DIMS),
               -1;
    uint64_t numel = 1;
    int nd = 0;
    const cJSON *d;
    cJSON_ArrayForEach (d, shape) {
        /* cJSON holds numbers as doubles: exact up to 2^53, far above any size */
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9007199254740992.0 ||
            d->valuedouble != (double)(uint64_t)d->valuedouble)
            return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': shape holds a non-integer or negative size", file, name),
                   -1;
        uint64_t v = (uint64_t)d->valuedouble;
        if (v && numel > UINT64_MAX / v)
            return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': shape overflows", file, name), -1;
        numel *= v;
        t->shape[nd++] = (int64_t)v;
    }
    t->ndim = nd;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': data_offsets is not [begin, end]", file, name), -1;
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 ||
        en < b || en > 9007199254740992.0 || b != (double)(uint64_t)b || en != (double)(uint64_t)en)
        return eh_fail(err, EH_EFORMAT, "%s: tensor '%s': bad data_offsets", file, name), -1;
    uint64_t begin = (uint64_t)b, end = (uint64_t)en;
    size_t es = eh_st_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es || numel * es != end - begin)
        return eh_fail(err, EH_EFORMAT,
                       "%s: tensor '%s': %s shape of %llu elements needs %llu bytes but data_offsets give %llu", file,
                       name, eh_st_dtype_name(t->dtype), (unsigned long long)numel,
                       (unsigned long long)(numel <= UINT64_MAX / es ? numel * es : UINT64_MAX),
                       (unsigned long long)(end - begin)),
               -1;
    if (end > data_len)
        return eh_fail(err, EH_EFORMAT,
                       "%s: tensor '%s': data ends at byte %llu of a %llu-byte data section (truncated file?)", file,
                       name, (unsigned long long)end, (unsigned long long)data_len),
               -1;
    t->numel = (int64_t)numel;
    t->nbytes = end - begin;
    t->data = (const void *)(uintptr_t)begin;   /* rebased by the caller */
    return 0;
}

/* Parses one mapped file's header and appends its tensors.  `only`: when
 * not NULL, the index's weight map; tensors it assigns elsewhere are an
 * error (a shard must hold what the index says it holds). */
static eh_status load_file(eh_safetensors *st, const char *path, eh_error *err)
{
    st_map *m = map_file(st, path, err);
    if (!m)
        return err ? err->code : EH_EIO;
    const unsigned char *p = m->base;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER)
        return eh_fail(err, EH_EFORMAT, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors file?)",
                       path, (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > m->len - 8)
        return eh_fail(err, EH_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)",
                       path, (unsigned long long)hlen, m->len);
    if (hlen < 2 || p[8] != '{')
        return eh_fail(err, EH_EFORMAT, "%s: header is not a JSON object", path);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eh_fail(err, EH_EFORMAT, "%s: header is not valid JSON", path);
    }
    uint64_t data_len = m->len - 8 - hlen;
    const unsigned char *data = p + 8 + hlen;
    int n = cJSON_GetArraySize(root);
    range *ranges = malloc(sizeof *ranges * (size_t)(n ? n : 1));
    if (!ranges) {
        cJSON_Delete(root);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
    }
    size_t nr = 0;
    eh_status rc = EH_OK;
    const cJSON *e;
    cJSON_ArrayForEach (e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = eh_fail(err, EH_EFORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            continue;
        }
        eh_st_tensor t = { 0 };
        if (read_entry(e, path, data_len, &t, err) != 0) {
            rc = EH_EFORMAT;
            break;
        }
        uint64_t begin = (uint64_t)(uintptr_t)t.data;
        t.data = data + begin;
        t.file = m->path;
        t.name = strdup(e->string);
        if (!t.name || push_tensor(st, &t) != 0) {
            free((char *)t.name);
            rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
            break;
        }
        st->total += t.nbytes;
        ranges[nr++] = (range){ begin, begin + t.nbytes, st->tensors[st->count - 1].name };
    }
    if (rc == EH_OK) {
        /* two tensors sharing bytes would let a write through one (we never
         * write, but a converter might) or a lie in the header pass unseen */
        qsort(ranges, nr, sizeof *ranges, by_begin);
        for (size_t i = 1; i < nr; i++)
            if (ranges[i].begin < ranges[i - 1].end && ranges[i].end > ranges[i].begin) {
                rc = eh_fail(err, EH_EFORMAT, "%s: tensor '%s' overlaps tensor '%s' in the data section", path,
                             ranges[i].name, ranges[i - 1].name);
                break;
            }
    }
    free(ranges);
    cJSON_Delete(root);
    return rc;
}

static char *read_small(const char *path, size_t *len, eh_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > ST_MAX_INDEX) {
        fclose(f);
        eh_fail(err, EH_EFORMAT, "%s: unreadable or larger than %lld bytes", path, (long long)ST_MAX_INDEX);
        return NULL;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    *len = fread(buf, 1, (size_t)sb.st_size, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* The index's shards: each named once, each a plain file name beside the
 * index (no directories, so an index cannot point outside its snapshot). */
static eh_status load_index(eh_safetensors *st, const char *index_path, eh_error *err)
{
    size_t len = 0;
    char *text = read_small(index_path, &len, err);
    if (!text)
        return err ? err->code : EH_EIO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return eh_fail(err, EH_EFORMAT, "%s: not a safetensors index (no weight_map object)", index_path);
    }
    char dir[4096];
    const char *slash = strrchr(index_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - index_path) : 1, slash ? index_path : ".");
    eh_status rc = EH_OK;
    const cJSON *e;
    /* shards in first-mention order, each loaded once */
    const char **shards = calloc((size_t)cJSON_GetArraySize(wm) + 1, sizeof *shards);
    size_t ns = 0;
    if (!shards)
        rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", index_path);
    cJSON_ArrayForEach (e, wm) {
        if (rc != EH_OK)
            break;
        if (!cJSON_IsString(e) || !*e->valuestring || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..") ||
            !strcmp(e->valuestring, ".")) {
            rc = eh_fail(err, EH_EFORMAT, "%s: tensor '%s' maps to a bad shard name (a file beside the index expected)",
                         index_path, e->string);
            break;
        }
        size_t j = 0;
        while (j < ns && strcmp(shards[j], e->valuestring))
            j++;
        if (j == ns)
            shards[ns++] = e->valuestring;
    }
    size_t before = st->count;
    for (size_t j = 0; rc == EH_OK && j < ns; j++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, shards[j]);
        rc = load_file(st, path, err);
    }
    if (rc == EH_OK) {
        if (st->count)   /* qsort's base must not be NULL, even for 0 items */
            qsort(st->tensors, st->count, sizeof *st->tensors, by_name);
        /* every mapped name must be in the shard the index names, and no
         * shard may hold a tensor the index does not know of */
        cJSON_ArrayForEach (e, wm) {
            const eh_st_tensor *t = eh_safetensors_find(st, e->string);
            if (!t) {
                rc = eh_fail(err, EH_EFORMAT, "%s: tensor '%s' is not in its shard %s", index_path, e->string,
                             e->valuestring);
                break;
            }
            if (!eh_ends_with(t->file, e->valuestring)) {
                rc = eh_fail(err, EH_EFORMAT, "%s: tensor '%s' is in %s, not in %s as the index says", index_path,
                             e->string, t->file, e->valuestring);
                break;
            }
        }
        if (rc == EH_OK && st->count - before != (size_t)cJSON_GetArraySize(wm))
            rc = eh_fail(err, EH_EFORMAT, "%s: the shards hold %zu tensors but the index maps %d", index_path,
                         st->count - before, cJSON_GetArraySize(wm));
    }
    free(shards);
    cJSON_Delete(root);
    return rc;
}

eh_safetensors *eh_safetensors_open(const char *path, eh_error *err)
{
    eh_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    struct stat sb;
    eh_status rc;
    if (stat(path, &sb) != 0) {
        rc = eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        /* transformers' names, then diffusers' (a component folder) */
        static const char *const stems[] = { "model", "diffusion_pytorch_model" };
        char p[4200];
        rc = EH_EIO;
        int found = 0;
        for (size_t i = 0; i < 2 && !found; i++) {
            snprintf(p, sizeof p, "%s/%s.safetensors.index.json", path, stems[i]);
            if (access(p, F_OK) == 0) {
                rc = load_index(st, p, err);
                found = 1;
                break;
            }
            snprintf(p, sizeof p, "%s/%s.safetensors", path, stems[i]);
            if (access(p, F_OK) == 0) {
                rc = load_file(st, p, err);
                found = 1;
            }
        }
        if (!found)
            rc = eh_fail(err, EH_EIO,
                         "%s: no model.safetensors(.index.json) or diffusion_pytorch_model.safetensors"
                         "(.index.json) in this directory",
                         path);
    } else if (eh_ends_with(path, ".json")) {
        rc = load_index(st, path, err);
    } else {
        rc = load_file(st, path, err);
    }
    if (rc == EH_OK) {
        if (st->count)   /* qsort's base must not be NULL, even for 0 items */
            qsort(st->tensors, st->count, sizeof *st->tensors, by_name);
        for (size_t i = 1; i < st->count; i++)
            if (!strcmp(st->tensors[i].name, st->tensors[i - 1].name)) {
                rc = eh_fail(err, EH_EFORMAT, "%s: tensor '%s' appears twice (in %s and %s)", path, st->tensors[i].name,
                             st->tensors[i - 1].file, st->tensors[i].file);
                break;
            }
    }
    if (rc != EH_OK) {
        eh_safetensors_close(st);
        return NULL;
    }
    return st;
}
