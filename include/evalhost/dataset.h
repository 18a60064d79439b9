/* dataset.h — benchmark files: memory-mapped, indexed in one pass by a
 * strict JSON scanner that records byte ranges, never a DOM.  Strings
 * (including the base64 images) are unescaped only when asked for.
 *
 * Shapes: {cat: {data_pairs: [pair...]}} (the seed's), {cat: [pair...]},
 * [pair...] with a category field, and JSONL (one pair a line).
 * A structurally broken file fails eh_dataset_open with "file:offset: what";
 * a bad pair (missing field, duplicate or unsafe id, invalid UTF-8) is kept
 * with an error string "cat/id (#index): why" and the rest go on. */
#ifndef EVALHOST_DATASET_H
#define EVALHOST_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

typedef struct eh_dataset eh_dataset;

typedef enum eh_dataset_format {
    EH_DATASET_AUTO = 0,    /* .jsonl extension, else by content */
    EH_DATASET_JSON,        /* one JSON value: category map or flat list */
    EH_DATASET_JSONL,       /* one pair object a line */
} eh_dataset_format;

typedef struct eh_dataset_params {
    /* Field names (dataset.<name> in the config); NULL means the default. */
    const char *field_id;           /* default "id" */
    const char *field_image;        /* default "original_image_b64"; while default,
                                       "image", "image_b64", "image_path" are accepted too */
    const char *field_instruction;  /* default "edit_instruction" */
    const char *field_description;  /* default "original_description" */
    const char *field_category;     /* default "category" (flat lists, JSONL) */
    eh_dataset_format format;       /* default EH_DATASET_AUTO (dataset.format) */

    size_t max_pairs;               /* whole file; default 1000000 (limits.max_pairs) */
    int max_json_depth;             /* open containers; default 64 (limits.max_json_depth) */
    size_t max_id_len;              /* bytes; default 256 (limits.max_string.id) */
    size_t max_instruction_len;     /* bytes, instruction and description;
                                       default 65536 (limits.max_string.instruction) */
} eh_dataset_params;

typedef enum eh_json_type {
    EH_JSON_NULL = 0,
    EH_JSON_FALSE,
    EH_JSON_TRUE,
    EH_JSON_NUMBER,
    EH_JSON_STRING,
    EH_JSON_ARRAY,
    EH_JSON_OBJECT,
} eh_json_type;

/* What a field is to the dataset; EH_ROLE_OTHER fields pass through. */
typedef enum eh_field_role {
    EH_ROLE_OTHER = 0,
    EH_ROLE_ID,
    EH_ROLE_IMAGE,
    EH_ROLE_INSTRUCTION,
    EH_ROLE_DESCRIPTION,
    EH_ROLE_CATEGORY,
} eh_field_role;

/* One field of a pair.  key points into the dataset (NUL-terminated,
 * unescaped, valid while the dataset is open).  raw/raw_len is the value's
 * text in the file: a string's content without the quotes and still
 * escaped (unescape with eh_dataset_string), or the whole number, literal,
 * array or object. */
typedef struct eh_dataset_field {
    const char *key;
    size_t key_len;                 /* keys may hold \u0000 */
    eh_json_type type;
    eh_field_role role;
    const char *raw;
    size_t raw_len;
    int escaped;                    /* string holds backslash escapes */
    int bad_utf8;                   /* string holds invalid UTF-8 or a lone surrogate */
} eh_dataset_field;

/* A pair's summary; strings owned by the dataset. */
typedef struct eh_dataset_pair {
    const char *category;
    const char *id;                 /* unescaped; NULL when missing or not a string */
    size_t index;                   /* 1-based within its category */
    const char *name;               /* safe file stem from the id (eh_dataset_safe_name),
                                       "pair_<index>" without an id */
    const char *error;              /* NULL for a good pair, else "cat/id (#i): why[; why]" */
    uint64_t offset;                /* byte offset of the pair in the file */
    size_t nfields;
} eh_dataset_pair;

/* Where a pair's image is: base64 text or a file next to the dataset. */
typedef struct eh_dataset_image_ref {
    int is_path;                    /* 1: data is a resolved path (NUL-terminated) */
    const char *data;               /* base64 text (maybe still "data:...;base64,") or path */
    size_t len;
    char *owned_;                   /* internal: freed by eh_dataset_image_ref_release */
    const char *span_;              /* internal: mapped range dropped on release */
    size_t span_len_;
} eh_dataset_image_ref;

eh_dataset_params eh_dataset_default_params(void);

/* Maps and indexes path.  params may be NULL (defaults).  Returns NULL with
 * err set: EH_EIO (cannot open/map), EH_EINVAL ("file:offset: what" for
 * broken JSON or an unknown shape), EH_ELIMIT (message names the key),
 * EH_ENOMEM. */
eh_dataset *eh_dataset_open(const char *path, const eh_dataset_params *params, eh_error *err);
void eh_dataset_free(eh_dataset *ds);          /* NULL is a no-op */

const char *eh_dataset_path(const eh_dataset *ds);
size_t eh_dataset_size(const eh_dataset *ds);  /* file bytes */
eh_dataset_format eh_dataset_detected_format(const eh_dataset *ds);
size_t eh_dataset_total(const eh_dataset *ds); /* pairs in all categories */
size_t eh_dataset_bad(const eh_dataset *ds);   /* pairs with an error */

/* Categories in file order (flat lists: order of first appearance). */
size_t eh_dataset_ncategories(const eh_dataset *ds);
const char *eh_dataset_category(const eh_dataset *ds, size_t c);   /* NULL out of range */
long eh_dataset_find_category(const eh_dataset *ds, const char *name);  /* -1 when absent */
size_t eh_dataset_count(const eh_dataset *ds, size_t c);

/* i is 1-based.  EH_EINVAL when c or i is out of range. */
eh_status eh_dataset_get(const eh_dataset *ds, size_t c, size_t i, eh_dataset_pair *out, eh_error *err);
eh_status eh_dataset_field_at(const eh_dataset *ds, size_t c, size_t i, size_t k, eh_dataset_field *out, eh_error *err);
/* The first field with the role (not EH_ROLE_OTHER); EH_EINVAL when absent. */
eh_status eh_dataset_field_role(const eh_dataset *ds, size_t c, size_t i, eh_field_role role, eh_dataset_field *out,
                                eh_error *err);

/* Unescapes a string field into a malloc'd NUL-terminated buffer the
 * caller frees; *len (may be NULL) gets its length.  NULL with err for a
 * non-string field, invalid UTF-8 or allocation failure. */
char *eh_dataset_string(const eh_dataset_field *f, size_t *len, eh_error *err);

/* Locates the pair's image: base64 text (pointing into the map when it has
 * no escapes) or a path relative to the dataset's folder, resolved and
 * refused when absolute or escaping the folder (".." or a symlink).
 * Release every successful ref: it frees copies and gives the mapped pages
 * back so RSS does not grow with the pairs visited. */
eh_status eh_dataset_image(const eh_dataset *ds, size_t c, size_t i, eh_dataset_image_ref *ref, eh_error *err);
void eh_dataset_image_ref_release(const eh_dataset *ds, eh_dataset_image_ref *ref);

/* XXH3-128 of the file bytes as 32 lowercase hex digits + NUL; computed on
 * first call by streaming the map once, then cached. */
const char *eh_dataset_hash(eh_dataset *ds);

/* 1 when id can name a file: non-empty, valid UTF-8, no '/', '\\', "..",
 * NUL or control characters, no leading '.'.  No length bound: a long id
 * names its file as a prefix and a hash (the schedule's util.file_stem). */
int eh_dataset_id_safe(const char *id, size_t len);
/* Writes a file stem that always stays inside its folder: unsafe bytes become
 * '_', a leading '.' becomes '_', and when anything changed (or the id was
 * cut to fit) "-<8 hex of the id's hash>" keeps distinct ids distinct.
 * n >= 32 is required (EH_EINVAL otherwise); the result is at most n-1 bytes. */
eh_status eh_dataset_safe_name(const char *id, size_t len, char *buf, size_t n, eh_error *err);
/* The rule a pair's image path obeys, for any path a pair names (its further
 * pictures): rel inside the dataset's folder (no absolute path, no "..", no
 * symlink leading out), as a malloc'd real path; NULL and err otherwise. */
char *eh_dataset_resolve(const eh_dataset *ds, const char *rel, size_t len, eh_error *err);

#endif
