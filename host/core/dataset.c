/* dataset.c — benchmark files, mapped and indexed in one pass.
 *
 * The scanner walks the map once, validating JSON strictly, and records for
 * each pair the byte ranges of its fields; nothing big is copied.  Ids,
 * category names and keys are small, so they are unescaped at open time
 * (ids must be checked for duplicates and safety anyway); every other string
 * waits until someone asks.  Pages behind the scanner are given back with
 * MADV_DONTNEED, so opening a 1 GB file does not leave 1 GB resident. */
#define _DEFAULT_SOURCE 1   /* madvise(MADV_DONTNEED), realpath */

#include "evalhost/dataset.h"
#include "evalhost/grow.h"
#include "evalhost/jscan.h"
#include "evalhost/str.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define NONE ((size_t) - 1)
#define RELEASE_STEP ((size_t)8 << 20)    /* give back scanned pages every 8 MiB */
#define READ_AHEAD ((size_t)32 << 20)     /* and ask the kernel for the next 32 MiB */
#define PATH_GUESS_MAX 4096                /* longer image values are never paths */
#define DEFAULT_CATEGORY "default"         /* flat lists and JSONL without a category field */

enum { N_ROLES = EH_ROLE_CATEGORY + 1 };

typedef struct field_rec {
    uint64_t off, len;      /* value's raw range in the map */
    uint32_t key;           /* index into ds->keys */
    uint8_t type, flags;
} field_rec;

typedef struct pair_rec {
    uint64_t off;
    size_t first_field, nfields;
    size_t cat, index;      /* index is 1-based within the category */
    size_t id, name, error; /* arena offsets; NONE when absent */
    int32_t role[N_ROLES];  /* field index within the pair, -1 when absent */
} pair_rec;

typedef struct cat_rec {
    size_t name, name_len;  /* arena */
    int unsafe;             /* not usable as a folder name */
    size_t *pairs, n, cap;  /* global pair indices, owned */
} cat_rec;

typedef struct key_rec {
    size_t str, len;        /* arena */
    uint8_t role, rank;     /* rank 0 is the configured name, >0 an accepted alias */
} key_rec;

/* Open-addressing table of (hash, value+1); 0 marks an empty slot. */
typedef struct htab {
    struct {
        uint64_t h;
        size_t v;
    } *slot;
    size_t cap, n;
} htab;

struct eh_dataset {
    char *path;             /* as given, owned */
    char *dir;              /* realpath of the file's folder, owned */
    int fd;
    uint8_t *map;
    size_t size;
    eh_dataset_format format;
    eh_dataset_params params;
    char *names[N_ROLES];   /* field names, owned copies */

    char *arena;            /* every NUL-terminated string the index keeps */
    size_t arena_len, arena_cap;
    field_rec *fields;
    size_t nfields, fields_cap;
    pair_rec *pairs;
    size_t npairs, pairs_cap;
    cat_rec *cats;
    size_t ncats, cats_cap;
    key_rec *keys;
    size_t nkeys, keys_cap;
    htab key_ht, cat_ht, id_ht;
    size_t nbad;
    int hashed;
    char hash[33];
};

typedef struct scan {
    eh_jscan j;             /* the cursor over the map */
    eh_dataset *ds;
    size_t released;        /* map bytes before this were given back */
} scan;

/* ---- small helpers -------------------------------------------------------- */

static size_t arena_put(eh_dataset *ds, const char *s, size_t len)
{
    if (eh_grow((void **)&ds->arena, &ds->arena_cap, ds->arena_len + len + 1, 1, 16))
        return NONE;
    size_t off = ds->arena_len;
    memcpy(ds->arena + off, s, len);
    ds->arena[off + len] = '\0';
    ds->arena_len += len + 1;
    return off;
}

static const char *astr(const eh_dataset *ds, size_t off)
{
    return off == NONE ? NULL : ds->arena + off;
}

/* Finds the slot for hash h whose value satisfies eq, or the empty slot
 * where it would go.  The table is at most half full. */
typedef int (*ht_eq)(const eh_dataset *ds, size_t v, const void *key, size_t len, size_t extra);

static size_t ht_find(const eh_dataset *ds, const htab *t, uint64_t h, ht_eq eq, const void *key, size_t len,
                      size_t extra)
{
    size_t i = (size_t)h & (t->cap - 1);
    while (t->slot[i].v && !(t->slot[i].h == h && eq(ds, t->slot[i].v - 1, key, len, extra)))
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int ht_reserve(htab *t)
{
    if ((t->n + 1) * 2 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 64;
    void *slot = calloc(cap, sizeof *t->slot);
    if (!slot)
        return -1;
    htab nt = { slot, cap, t->n };
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i].v)
            continue;
        size_t j = (size_t)t->slot[i].h & (cap - 1);
        while (nt.slot[j].v)
            j = (j + 1) & (cap - 1);
        nt.slot[j] = t->slot[i];
    }
    free(t->slot);
    *t = nt;
    return 0;
}

/* Gives the pages behind the cursor back (they are clean file pages: a
 * later touch faults them in again from the page cache) and asks for the
 * next stretch to be read ahead, so a cold file streams at disk speed
 * instead of one page fault at a time. */
static void release_behind(scan *sc)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (sc->j.pos - sc->released < RELEASE_STEP)
        return;
    size_t upto = sc->j.pos / page * page;
    madvise((void *)(sc->j.b + sc->released), upto - sc->released, MADV_DONTNEED);
    sc->released = upto;
    if (upto + READ_AHEAD < sc->j.n)
        madvise((void *)(sc->j.b + upto), READ_AHEAD, MADV_WILLNEED);
}

/* ---- keys, categories, ids ------------------------------------------------ */

static int key_eq(const eh_dataset *ds, size_t v, const void *key, size_t len, size_t extra)
{
    (void)extra;
    return ds->keys[v].len == len && memcmp(ds->arena + ds->keys[v].str, key, len) == 0;
}

static int cat_eq(const eh_dataset *ds, size_t v, const void *key, size_t len, size_t extra)
{
    (void)extra;
    return ds->cats[v].name_len == len && memcmp(ds->arena + ds->cats[v].name, key, len) == 0;
}

static int id_eq(const eh_dataset *ds, size_t v, const void *key, size_t len, size_t extra)
{
    const pair_rec *p = &ds->pairs[v];
    return p->cat == extra && strlen(ds->arena + p->id) == len && memcmp(ds->arena + p->id, key, len) == 0;
}

static const char *const image_aliases[] = { "image", "image_b64", "image_path" };

/* Interns an unescaped key; returns its index or NONE on allocation failure. */
static size_t intern_key(eh_dataset *ds, const char *k, size_t len)
{
    uint64_t h = XXH3_64bits(k, len);
    if (ht_reserve(&ds->key_ht))
        return NONE;
    size_t slot = ht_find(ds, &ds->key_ht, h, key_eq, k, len, 0);
    if (ds->key_ht.slot[slot].v)
        return ds->key_ht.slot[slot].v - 1;
    if (eh_grow((void **)&ds->keys, &ds->keys_cap, ds->nkeys + 1, sizeof *ds->keys, 16))
        return NONE;
    key_rec kr = { arena_put(ds, k, len), len, EH_ROLE_OTHER, 0 };
    if (kr.str == NONE)
        return NONE;
    for (int r = EH_ROLE_ID; r < N_ROLES; r++)
        if (strlen(ds->names[r]) == len && memcmp(ds->names[r], k, len) == 0)
            kr.role = (uint8_t)r;
    if (kr.role == EH_ROLE_OTHER && !ds->params.field_image)
        for (size_t a = 0; a < sizeof image_aliases / sizeof *image_aliases; a++)
            if (strlen(image_aliases[a]) == len && memcmp(image_aliases[a], k, len) == 0) {
                kr.role = EH_ROLE_IMAGE;
                kr.rank = (uint8_t)(a + 1);
            }
    ds->keys[ds->nkeys] = kr;
    ds->key_ht.slot[slot].h = h;
    ds->key_ht.slot[slot].v = ++ds->nkeys;
    ds->key_ht.n++;
    return ds->nkeys - 1;
}

/* A category name with a NUL or a control character cannot be one: it would
 * be cut at the NUL (another category, or none) and split log lines, so the
 * file is refused at open, the name shown escaped. 0 when the name is fine. */
static int refuse_category(scan *sc, size_t at, const char *name, size_t len)
{
    size_t i = 0;
    while (i < len && (uint8_t)name[i] >= 0x20 && name[i] != 0x7f)
        i++;
    if (i == len)
        return 0;
    char shown[160];
    size_t o = 0;
    for (size_t k = 0; k < len && k < 64 && o + 5 < sizeof shown; k++) {
        uint8_t c = (uint8_t)name[k];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", c);
        else
            shown[o++] = (char)c;
    }
    shown[o] = '\0';
    return eh_jscan_fail(&sc->j, EH_EINVAL, at, "category \"%s%s\" holds a %s (refused: a category names a folder)",
                         shown, len > 64 ? "..." : "", name[i] ? "control character" : "NUL byte");
}

static size_t get_category(eh_dataset *ds, const char *name, size_t len, int bad_utf8)
{
    uint64_t h = XXH3_64bits(name, len);
    if (ht_reserve(&ds->cat_ht))
        return NONE;
    size_t slot = ht_find(ds, &ds->cat_ht, h, cat_eq, name, len, 0);
    if (ds->cat_ht.slot[slot].v)
        return ds->cat_ht.slot[slot].v - 1;
    if (eh_grow((void **)&ds->cats, &ds->cats_cap, ds->ncats + 1, sizeof *ds->cats, 16))
        return NONE;
    cat_rec c = { arena_put(ds, name, len), len, bad_utf8 || !eh_dataset_id_safe(name, len), NULL, 0, 0 };
    if (c.name == NONE)
        return NONE;
    ds->cats[ds->ncats] = c;
    ds->cat_ht.slot[slot].h = h;
    ds->cat_ht.slot[slot].v = ++ds->ncats;
    ds->cat_ht.n++;
    return ds->ncats - 1;
}

/* Unescaped copy of a small string into a malloc'd buffer (lossy). */
static char *small_string(const uint8_t *s, size_t n, size_t *len)
{
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    size_t bad;
    *len = eh_json_unescape(s, n, out, 1, &bad);
    return out;
}

/* ---- pairs ---------------------------------------------------------------- */

typedef struct problems {
    char text[EH_ERROR_MAX];
    size_t len;
} problems;

static void problem(problems *pr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void problem(problems *pr, const char *fmt, ...)
{
    if (pr->len + 3 >= sizeof pr->text)
        return;
    if (pr->len)
        pr->len += (size_t)snprintf(pr->text + pr->len, sizeof pr->text - pr->len, "; ");
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(pr->text + pr->len, sizeof pr->text - pr->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        pr->len += (size_t)k < sizeof pr->text - pr->len ? (size_t)k : sizeof pr->text - pr->len - 1;
}

/* The config key naming each role's field: a pair missing its field points
 * at it (the file may spell the field otherwise). */
static const char *const ROLE_KEY[N_ROLES] = {
    [EH_ROLE_ID] = "dataset.id",
    [EH_ROLE_IMAGE] = "dataset.image",
    [EH_ROLE_INSTRUCTION] = "dataset.instruction",
    [EH_ROLE_DESCRIPTION] = "dataset.description",
    [EH_ROLE_CATEGORY] = "dataset.category",
};

static void missing_field(problems *pr, const eh_dataset *ds, int role)
{
    problem(pr, "missing field \"%s\" (the config key %s names it)", ds->names[role], ROLE_KEY[role]);
}

static const field_rec *role_field(const eh_dataset *ds, const pair_rec *p, int role)
{
    return p->role[role] < 0 ? NULL : &ds->fields[p->first_field + (size_t)p->role[role]];
}

/* Checks a text field (instruction, description): returns its unescaped length. */
static void check_text(const eh_dataset *ds, const pair_rec *p, int role, int required, problems *pr)
{
    const field_rec *f = role_field(ds, p, role);
    const char *name = ds->names[role];
    if (!f) {
        if (required)
            missing_field(pr, ds, role);
        return;
    }
    if (f->type != EH_JSON_STRING) {
        problem(pr, "\"%s\" is not a string", name);
        return;
    }
    if (f->flags & EH_JSTR_BAD) {
        problem(pr, "\"%s\" is not valid UTF-8", name);
        return;
    }
    size_t len = (f->flags & EH_JSTR_ESC) ? eh_json_unescaped_len(ds->map + f->off, (size_t)f->len) : (size_t)f->len;
    if (len > ds->params.max_instruction_len)
        problem(pr, "\"%s\" is %zu bytes, over limits.max_string.instruction (%zu)", name, len,
                ds->params.max_instruction_len);
    else if (required && len == 0)
        problem(pr, "\"%s\" is empty", name);
}

/* Files a scanned pair: category, id checks, per-pair problems. */
/* An id as messages show it: at most 64 bytes, control bytes as '?'. */
static void show_id(char *out, size_t n, const char *id, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < 64 && o + 4 < n; i++)
        out[o++] = (uint8_t)id[i] < 0x20 || id[i] == 0x7f ? '?' : id[i];
    if (len > 64 && o + 4 < n)
        o += (size_t)snprintf(out + o, n - o, "...");
    out[o] = '\0';
}

/* is_object: 0 for a list element that is not an object; note: a problem
 * found while scanning (bad field name, duplicate field) or NULL. */
static int finish_pair(scan *sc, pair_rec *p, size_t cat, int is_object, const char *note)
{
    eh_dataset *ds = sc->ds;
    problems pr = { { 0 }, 0 };
    char *tmp = NULL;
    size_t tlen;

    if (!is_object)
        problem(&pr, "pair is not a JSON object");
    if (cat == NONE) {
        const field_rec *f = role_field(ds, p, EH_ROLE_CATEGORY);
        if (f && f->type == EH_JSON_STRING) {
            if (!(tmp = small_string(ds->map + f->off, (size_t)f->len, &tlen)))
                goto nomem;
            if (refuse_category(sc, (size_t)f->off, tmp, tlen)) {
                free(tmp);
                return -1;
            }
            cat = get_category(ds, tmp, tlen, (f->flags & EH_JSTR_BAD) != 0);
            free(tmp);
            tmp = NULL;
        } else {
            if (f)
                problem(&pr, "\"%s\" is not a string", ds->names[EH_ROLE_CATEGORY]);
            cat = get_category(ds, DEFAULT_CATEGORY, strlen(DEFAULT_CATEGORY), 0);
        }
        if (cat == NONE)
            goto nomem;
    }
    if (ds->npairs >= ds->params.max_pairs)
        return eh_jscan_fail(&sc->j, EH_ELIMIT, (size_t)p->off, "more than %zu pairs (limits.max_pairs)",
                             ds->params.max_pairs);
    cat_rec *c = &ds->cats[cat];
    if (c->unsafe)
        problem(&pr, "unsafe category name");
    p->cat = cat;
    p->index = c->n + 1;

    /* id: shown in messages even when unusable, kept only when sound */
    char shown[96] = "";
    const field_rec *f = role_field(ds, p, EH_ROLE_ID);
    if (!f) {
        missing_field(&pr, ds, EH_ROLE_ID);
    } else if (f->type != EH_JSON_STRING && f->type != EH_JSON_NUMBER) {
        problem(&pr, "\"%s\" is not a string", ds->names[EH_ROLE_ID]);
    } else {
        if (f->type == EH_JSON_NUMBER) {
            if (!(tmp = malloc((size_t)f->len + 1)))
                goto nomem;
            memcpy(tmp, ds->map + f->off, (size_t)f->len);
            tmp[tlen = (size_t)f->len] = '\0';
        } else if (!(tmp = small_string(ds->map + f->off, (size_t)f->len, &tlen))) {
            goto nomem;
        }
        show_id(shown, sizeof shown, tmp, tlen);
        if (f->flags & EH_JSTR_BAD) {
            problem(&pr, "id is not valid UTF-8");
        } else if (tlen > ds->params.max_id_len) {
            problem(&pr, "id is %zu bytes, over limits.max_string.id (%zu)", tlen, ds->params.max_id_len);
        } else {
            if (!eh_dataset_id_safe(tmp, tlen))
                problem(&pr, "unsafe id (not usable as a file name)");
            if (memchr(tmp, '\0', tlen) == NULL) {
                uint64_t h = XXH3_64bits_withSeed(tmp, tlen, cat);
                if (ht_reserve(&ds->id_ht))
                    goto nomem;
                size_t slot = ht_find(ds, &ds->id_ht, h, id_eq, tmp, tlen, cat);
                if (ds->id_ht.slot[slot].v) {
                    problem(&pr, "duplicate id (first at #%zu)", ds->pairs[ds->id_ht.slot[slot].v - 1].index);
                } else {
                    ds->id_ht.slot[slot].h = h;
                    ds->id_ht.slot[slot].v = ds->npairs + 1;
                    ds->id_ht.n++;
                }
                if ((p->id = arena_put(ds, tmp, tlen)) == NONE)
                    goto nomem;
            }
        }
    }
    char name[EH_ERROR_MAX];
    if (p->id != NONE)
        eh_dataset_safe_name(astr(ds, p->id), strlen(astr(ds, p->id)), name, 256, NULL);
    else
        snprintf(name, sizeof name, "pair_%zu", p->index);
    if ((p->name = arena_put(ds, name, strlen(name))) == NONE)
        goto nomem;

    if (is_object) {
        check_text(ds, p, EH_ROLE_INSTRUCTION, 1, &pr);
        check_text(ds, p, EH_ROLE_DESCRIPTION, 0, &pr);
        const field_rec *img = role_field(ds, p, EH_ROLE_IMAGE);
        if (!img)
            missing_field(&pr, ds, EH_ROLE_IMAGE);
        else if (img->type != EH_JSON_STRING)
            problem(&pr, "\"%s\" is not a string", ds->keys[img->key].str + ds->arena);
        else if (img->len == 0)
            problem(&pr, "\"%s\" is empty", ds->keys[img->key].str + ds->arena);
        for (size_t k = 0; k < p->nfields; k++) {
            const field_rec *o = &ds->fields[p->first_field + k];
            if (ds->keys[o->key].role == EH_ROLE_OTHER && (o->flags & EH_JSTR_BAD))
                problem(&pr, "\"%s\" is not valid UTF-8", ds->arena + ds->keys[o->key].str);
        }
    }
    if (note)
        problem(&pr, "%s", note);
    if (pr.len) {
        char msg[EH_ERROR_MAX + 256];
        if (shown[0])
            snprintf(msg, sizeof msg, "%s/%s (#%zu): %s", ds->arena + c->name, shown, p->index, pr.text);
        else   /* no usable id: "cat/#3: why" */
            snprintf(msg, sizeof msg, "%s/#%zu: %s", ds->arena + c->name, p->index, pr.text);
        if ((p->error = arena_put(ds, msg, strlen(msg))) == NONE)
            goto nomem;
        ds->nbad++;
    }
    free(tmp);
    if (eh_grow((void **)&c->pairs, &c->cap, c->n + 1, sizeof *c->pairs, 16) ||
        eh_grow((void **)&ds->pairs, &ds->pairs_cap, ds->npairs + 1, sizeof *ds->pairs, 16))
        goto nomem;
    c->pairs[c->n++] = ds->npairs;
    ds->pairs[ds->npairs++] = *p;
    return 0;
nomem:
    free(tmp);
    return eh_jscan_fail(&sc->j, EH_ENOMEM, (size_t)p->off, "out of memory indexing pairs");
}

static pair_rec new_pair(const eh_dataset *ds, size_t off)
{
    pair_rec p;
    memset(&p, 0, sizeof p);
    p.off = off;
    p.first_field = ds->nfields;
    p.id = p.name = p.error = NONE;
    for (int r = 0; r < N_ROLES; r++)
        p.role[r] = -1;
    return p;
}

/* At '{' with `depth` containers open around it: one pair's fields. */
static int scan_pair(scan *sc, int depth, size_t cat)
{
    eh_dataset *ds = sc->ds;
    pair_rec p = new_pair(ds, sc->j.pos);
    uint8_t rank[N_ROLES] = { 0 };
    char problem_text[160] = "";
    int more = eh_jscan_open(&sc->j, depth);
    if (more < 0)
        return -1;
    for (more = !more; more;) {
        size_t ks, kl, vs, vl;
        unsigned kf, vf = 0;
        uint8_t c = 0;
        if (eh_jscan_key(&sc->j, "a string key", &ks, &kl, &kf) || eh_jscan_peek(&sc->j, &c))
            return -1;
        eh_json_type type;
        if (c == '"') {
            type = EH_JSON_STRING;
            if (eh_jscan_string(&sc->j, &vs, &vl, &vf))
                return -1;
        } else {
            vs = sc->j.pos;
            type = c == '{'   ? EH_JSON_OBJECT
                   : c == '[' ? EH_JSON_ARRAY
                   : c == 't' ? EH_JSON_TRUE
                   : c == 'f' ? EH_JSON_FALSE
                   : c == 'n' ? EH_JSON_NULL
                              : EH_JSON_NUMBER;
            if (eh_jscan_skip(&sc->j, depth + 1))
                return -1;
            vl = sc->j.pos - vs;
        }
        size_t key;
        if (kf) {
            size_t klen;
            char *k = small_string(sc->j.b + ks, kl, &klen);
            if (!k)
                return eh_jscan_fail(&sc->j, EH_ENOMEM, ks, "out of memory");
            key = intern_key(ds, k, klen);
            free(k);
            if ((kf & EH_JSTR_BAD) && !problem_text[0])
                snprintf(problem_text, sizeof problem_text, "a field name is not valid UTF-8");
        } else {
            key = intern_key(ds, (const char *)sc->j.b + ks, kl);
        }
        if (key == NONE)
            return eh_jscan_fail(&sc->j, EH_ENOMEM, ks, "out of memory");
        if (eh_grow((void **)&ds->fields, &ds->fields_cap, ds->nfields + 1, sizeof *ds->fields, 16))
            return eh_jscan_fail(&sc->j, EH_ENOMEM, ks, "out of memory");
        field_rec fr = { vs, vl, (uint32_t)key, (uint8_t)type, (uint8_t)vf };
        int role = ds->keys[key].role;
        if (role != EH_ROLE_OTHER) {
            int idx = (int)(ds->nfields - p.first_field);
            if (p.role[role] < 0 || ds->keys[key].rank < rank[role]) {
                p.role[role] = idx;
                rank[role] = ds->keys[key].rank;
            } else if (ds->keys[key].rank == rank[role] && !problem_text[0]) {
                snprintf(problem_text, sizeof problem_text, "duplicate field \"%.100s\"",
                         ds->arena + ds->keys[key].str);
            }
        }
        ds->fields[ds->nfields++] = fr;
        p.nfields++;
        if ((more = eh_jscan_next(&sc->j, '}')) < 0)
            return -1;
    }
    int r = finish_pair(sc, &p, cat, 1, problem_text[0] ? problem_text : NULL);
    release_behind(sc);
    return r;
}

/* An element of a pair list: an object is a pair, anything else a bad pair. */
static int scan_element(scan *sc, int depth, size_t cat)
{
    uint8_t c = 0;
    if (eh_jscan_peek(&sc->j, &c))
        return -1;
    if (c == '{')
        return scan_pair(sc, depth, cat);
    pair_rec p = new_pair(sc->ds, sc->j.pos);
    if (eh_jscan_skip(&sc->j, depth))
        return -1;
    return finish_pair(sc, &p, cat, 0, NULL);
}

/* At '[': a list of pairs. */
static int scan_pair_list(scan *sc, int depth, size_t cat)
{
    int more = eh_jscan_open(&sc->j, depth);
    for (more = more < 0 ? -1 : !more; more > 0;)
        if (scan_element(sc, depth + 1, cat) || (more = eh_jscan_next(&sc->j, ']')) < 0)
            return -1;
    return more;
}

/* The object of {cat: {data_pairs: [...], other: ...}}: finds the list. */
static int scan_category_object(scan *sc, size_t cat)
{
    const char *name = sc->ds->arena + sc->ds->cats[cat].name;
    size_t obj = sc->j.pos;
    int found = 0, more = eh_jscan_open(&sc->j, 1);
    for (more = more < 0 ? -1 : !more; more > 0;) {
        size_t ms, ml;
        unsigned mf;
        uint8_t c = 0;
        if (eh_jscan_key(&sc->j, "a string key", &ms, &ml, &mf) || eh_jscan_peek(&sc->j, &c))
            return -1;
        if (ml == 10 && memcmp(sc->j.b + ms, "data_pairs", 10) == 0 && c == '[') {
            if (found)
                return eh_jscan_fail(&sc->j, EH_EINVAL, ms - 1, "category \"%s\": duplicate \"data_pairs\"", name);
            found = 1;
            if (scan_pair_list(sc, 2, cat))
                return -1;
        } else if (eh_jscan_skip(&sc->j, 2)) {
            return -1;
        }
        more = eh_jscan_next(&sc->j, '}');
    }
    if (more < 0)
        return -1;
    if (!found)
        return eh_jscan_fail(&sc->j, EH_EINVAL, obj, "category \"%s\" has no \"data_pairs\" array", name);
    return 0;
}

/* At '{': {cat: {data_pairs: [...]}} or {cat: [...]}. */
static int scan_category_map(scan *sc)
{
    eh_dataset *ds = sc->ds;
    int more = eh_jscan_open(&sc->j, 0);
    for (more = more < 0 ? -1 : !more; more > 0;) {
        size_t ks, kl, nlen;
        unsigned kf;
        uint8_t c = 0;
        if (eh_jscan_key(&sc->j, "a category name", &ks, &kl, &kf))
            return -1;
        char *name = small_string(sc->j.b + ks, kl, &nlen);
        if (!name)
            return eh_jscan_fail(&sc->j, EH_ENOMEM, ks, "out of memory");
        if (refuse_category(sc, ks, name, nlen)) {
            free(name);
            return -1;
        }
        size_t cat = get_category(ds, name, nlen, (kf & EH_JSTR_BAD) != 0);
        free(name);
        if (cat == NONE)
            return eh_jscan_fail(&sc->j, EH_ENOMEM, ks, "out of memory");
        if (eh_jscan_peek(&sc->j, &c))
            return -1;
        if (c == '[') {
            if (scan_pair_list(sc, 1, cat))
                return -1;
        } else if (c == '{') {
            if (scan_category_object(sc, cat))
                return -1;
        } else {
            return eh_jscan_fail(&sc->j, EH_EINVAL, sc->j.pos,
                                 "category \"%s\": expected an object with \"data_pairs\" or a list of pairs",
                                 ds->arena + ds->cats[cat].name);
        }
        more = eh_jscan_next(&sc->j, '}');
    }
    return more;
}

static int scan_jsonl(scan *sc)
{
    for (;;) {
        eh_jscan_ws(&sc->j);
        if (sc->j.pos >= sc->j.n)
            return 0;
        if (sc->j.b[sc->j.pos] != '{')
            return eh_jscan_fail(&sc->j, EH_EINVAL, sc->j.pos, "expected a pair object (JSONL: one a line)");
        if (scan_pair(sc, 0, NONE))
            return -1;
    }
}

/* A top-level '{' whose first member holds an object or a list is a
 * category map; one whose first member is a scalar is a pair (JSONL). */
static int looks_like_jsonl(scan *sc)
{
    eh_jscan probe = sc->j;
    eh_error quiet;
    probe.err = &quiet;
    probe.pos++;
    eh_jscan_ws(&probe);
    if (probe.pos >= probe.n || probe.b[probe.pos] != '"')
        return 0;
    size_t s, l;
    unsigned f;
    if (eh_jscan_string(&probe, &s, &l, &f) || eh_jscan_expect(&probe, ':', "':'"))
        return 0;
    eh_jscan_ws(&probe);
    return probe.pos < probe.n && probe.b[probe.pos] != '{' && probe.b[probe.pos] != '[';
}

static int scan_file(scan *sc)
{
    eh_dataset *ds = sc->ds;
    if (sc->j.n >= 3 && memcmp(sc->j.b, "\xEF\xBB\xBF", 3) == 0)
        sc->j.pos = 3;   /* a UTF-8 byte order mark */
    eh_jscan_ws(&sc->j);
    if (sc->j.pos >= sc->j.n)
        return eh_jscan_fail(&sc->j, EH_EINVAL, sc->j.pos, "empty file (no benchmark)");
    eh_dataset_format fmt = ds->params.format;
    if (fmt == EH_DATASET_AUTO)
        fmt = eh_ends_with(ds->path, ".jsonl") || (sc->j.b[sc->j.pos] == '{' && looks_like_jsonl(sc)) ? EH_DATASET_JSONL
                                                                                                      : EH_DATASET_JSON;
    ds->format = fmt;
    if (fmt == EH_DATASET_JSONL)
        return scan_jsonl(sc);
    int r;
    if (sc->j.b[sc->j.pos] == '{')
        r = scan_category_map(sc);
    else if (sc->j.b[sc->j.pos] == '[')
        r = scan_pair_list(sc, 0, NONE);
    else
        return eh_jscan_fail(&sc->j, EH_EINVAL, sc->j.pos, "not a benchmark: expected '{' (categories) or '[' (pairs)");
    if (r)
        return r;
    eh_jscan_ws(&sc->j);
    if (sc->j.pos < sc->j.n)
        return eh_jscan_fail(&sc->j, EH_EINVAL, sc->j.pos,
                             "data after the top-level value (JSONL? name the file .jsonl)");
    return 0;
}

/* ---- open / free ---------------------------------------------------------- */

eh_dataset_params eh_dataset_default_params(void)
{
    eh_dataset_params p;
    memset(&p, 0, sizeof p);
    p.format = EH_DATASET_AUTO;
    p.max_pairs = 1000000;
    p.max_json_depth = 64;
    p.max_id_len = 256;
    p.max_instruction_len = 65536;
    return p;
}

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt);
}

eh_dataset *eh_dataset_open(const char *path, const eh_dataset_params *params, eh_error *err)
{
    eh_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    ds->fd = -1;
    ds->params = params ? *params : eh_dataset_default_params();
    if (ds->params.max_json_depth < 1 || ds->params.max_json_depth > 100000) {
        eh_fail(err, EH_EINVAL, "limits.max_json_depth must be 1..100000 (got %d)", ds->params.max_json_depth);
        goto fail;
    }
    const eh_dataset_params *q = &ds->params;
    ds->path = strdup(path);
    ds->names[EH_ROLE_OTHER] = strdup("");
    ds->names[EH_ROLE_ID] = dup_or(q->field_id, "id");
    ds->names[EH_ROLE_IMAGE] = dup_or(q->field_image, "original_image_b64");
    ds->names[EH_ROLE_INSTRUCTION] = dup_or(q->field_instruction, "edit_instruction");
    ds->names[EH_ROLE_DESCRIPTION] = dup_or(q->field_description, "original_description");
    ds->names[EH_ROLE_CATEGORY] = dup_or(q->field_category, "category");
    for (int r = 0; r < N_ROLES; r++)
        if (!ds->names[r] || !ds->path) {
            eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    /* the caller's strings are not kept: point the params at our copies */
    ds->params.field_id = ds->names[EH_ROLE_ID];
    ds->params.field_instruction = ds->names[EH_ROLE_INSTRUCTION];
    ds->params.field_description = ds->names[EH_ROLE_DESCRIPTION];
    ds->params.field_category = ds->names[EH_ROLE_CATEGORY];
    if (ds->params.field_image)
        ds->params.field_image = ds->names[EH_ROLE_IMAGE];

    ds->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (ds->fd < 0 || fstat(ds->fd, &st) != 0) {
        eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        eh_fail(err, EH_EIO, "%s: not a regular file", path);
        goto fail;
    }
    ds->size = (size_t)st.st_size;
    if (ds->size) {
        ds->map = mmap(NULL, ds->size, PROT_READ, MAP_PRIVATE, ds->fd, 0);
        if (ds->map == MAP_FAILED) {
            ds->map = NULL;
            eh_fail(err, EH_EIO, "%s: mmap: %s", path, strerror(errno));
            goto fail;
        }
        madvise(ds->map, ds->size, MADV_SEQUENTIAL);
    }
    {
        char *slash = strrchr(ds->path, '/');
        char *d = slash ? strndup(ds->path, (size_t)(slash - ds->path) + (slash == ds->path)) : strdup(".");
        ds->dir = d ? realpath(d, NULL) : NULL;
        free(d);
        if (!ds->dir) {
            eh_fail(err, EH_EIO, "%s: cannot resolve its folder: %s", path, strerror(errno));
            goto fail;
        }
    }

    scan sc = { { ds->map, ds->size, 0, ds->path, ds->params.max_json_depth,
                  malloc((size_t)ds->params.max_json_depth + 1), err },
                ds,
                0 };
    if (!sc.j.stack) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int r = ds->size ? scan_file(&sc) : eh_jscan_fail(&sc.j, EH_EINVAL, 0, "empty file (no benchmark)");
    free(sc.j.stack);
    if (ds->map && sc.released < ds->size)   /* the last stretch too: pairs fault back in on use */
        madvise(ds->map, ds->size, MADV_DONTNEED);
    if (r)
        goto fail;
    if (ds->map)
        madvise(ds->map, ds->size, MADV_RANDOM);
    return ds;
fail:
    eh_dataset_free(ds);
    return NULL;
}

void eh_dataset_free(eh_dataset *ds)
{
    if (!ds)
        return;
    if (ds->map)
        munmap(ds->map, ds->size);
    if (ds->fd >= 0)
        close(ds->fd);
    for (size_t c = 0; c < ds->ncats; c++)
        free(ds->cats[c].pairs);
    for (int r = 0; r < N_ROLES; r++)
        free(ds->names[r]);
    free(ds->cats);
    free(ds->pairs);
    free(ds->fields);
    free(ds->keys);
    free(ds->arena);
    free(ds->key_ht.slot);
    free(ds->cat_ht.slot);
    free(ds->id_ht.slot);
    free(ds->path);
    free(ds->dir);
    free(ds);
}

/* ---- accessors ------------------------------------------------------------ */

const char *eh_dataset_path(const eh_dataset *ds)
{
    return ds->path;
}
size_t eh_dataset_size(const eh_dataset *ds)
{
    return ds->size;
}
eh_dataset_format eh_dataset_detected_format(const eh_dataset *ds)
{
    return ds->format;
}
size_t eh_dataset_total(const eh_dataset *ds)
{
    return ds->npairs;
}
size_t eh_dataset_bad(const eh_dataset *ds)
{
    return ds->nbad;
}
size_t eh_dataset_ncategories(const eh_dataset *ds)
{
    return ds->ncats;
}

const char *eh_dataset_category(const eh_dataset *ds, size_t c)
{
    return c < ds->ncats ? ds->arena + ds->cats[c].name : NULL;
}

long eh_dataset_find_category(const eh_dataset *ds, const char *name)
{
    if (!ds->cat_ht.cap)
        return -1;
    size_t len = strlen(name);
    size_t slot = ht_find(ds, &ds->cat_ht, XXH3_64bits(name, len), cat_eq, name, len, 0);
    return ds->cat_ht.slot[slot].v ? (long)(ds->cat_ht.slot[slot].v - 1) : -1;
}

size_t eh_dataset_count(const eh_dataset *ds, size_t c)
{
    return c < ds->ncats ? ds->cats[c].n : 0;
}

static const pair_rec *get_pair(const eh_dataset *ds, size_t c, size_t i, eh_error *err)
{
    if (c >= ds->ncats) {
        eh_fail(err, EH_EINVAL, "no category #%zu (dataset has %zu)", c + 1, ds->ncats);
        return NULL;
    }
    if (i < 1 || i > ds->cats[c].n) {
        eh_fail(err, EH_EINVAL, "no pair #%zu in category \"%s\" (%zu pairs)", i, ds->arena + ds->cats[c].name,
                ds->cats[c].n);
        return NULL;
    }
    return &ds->pairs[ds->cats[c].pairs[i - 1]];
}

eh_status eh_dataset_get(const eh_dataset *ds, size_t c, size_t i, eh_dataset_pair *out, eh_error *err)
{
    const pair_rec *p = get_pair(ds, c, i, err);
    if (!p)
        return EH_EINVAL;
    out->category = ds->arena + ds->cats[p->cat].name;
    out->id = astr(ds, p->id);
    out->index = p->index;
    out->name = astr(ds, p->name);
    out->error = astr(ds, p->error);
    out->offset = p->off;
    out->nfields = p->nfields;
    return EH_OK;
}

static void fill_field(const eh_dataset *ds, const field_rec *f, eh_dataset_field *out)
{
    const key_rec *k = &ds->keys[f->key];
    out->key = ds->arena + k->str;
    out->key_len = k->len;
    out->type = (eh_json_type)f->type;
    out->role = (eh_field_role)k->role;
    out->raw = (const char *)ds->map + f->off;
    out->raw_len = (size_t)f->len;
    out->escaped = (f->flags & EH_JSTR_ESC) != 0;
    out->bad_utf8 = (f->flags & EH_JSTR_BAD) != 0;
}

eh_status eh_dataset_field_at(const eh_dataset *ds, size_t c, size_t i, size_t k, eh_dataset_field *out, eh_error *err)
{
    const pair_rec *p = get_pair(ds, c, i, err);
    if (!p)
        return EH_EINVAL;
    if (k >= p->nfields)
        return eh_fail(err, EH_EINVAL, "no field #%zu (pair has %zu)", k + 1, p->nfields);
    fill_field(ds, &ds->fields[p->first_field + k], out);
    return EH_OK;
}

eh_status eh_dataset_field_role(const eh_dataset *ds, size_t c, size_t i, eh_field_role role, eh_dataset_field *out,
                                eh_error *err)
{
    const pair_rec *p = get_pair(ds, c, i, err);
    if (!p)
        return EH_EINVAL;
    if ((int)role <= EH_ROLE_OTHER || (int)role >= N_ROLES || p->role[role] < 0)
        return eh_fail(err, EH_EINVAL, "missing field \"%s\"",
                       (int)role > 0 && (int)role < N_ROLES ? ds->names[role] : "?");
    fill_field(ds, &ds->fields[p->first_field + (size_t)p->role[role]], out);
    return EH_OK;
}

char *eh_dataset_string(const eh_dataset_field *f, size_t *len, eh_error *err)
{
    if (f->type != EH_JSON_STRING) {
        eh_fail(err, EH_EINVAL, "field \"%s\" is not a string", f->key);
        return NULL;
    }
    char *out = malloc(f->raw_len + 1);
    if (!out) {
        eh_fail(err, EH_ENOMEM, "field \"%s\": out of memory (%zu bytes)", f->key, f->raw_len);
        return NULL;
    }
    size_t bad = 0, n;
    if (!f->escaped && !f->bad_utf8) {
        memcpy(out, f->raw, f->raw_len);
        out[n = f->raw_len] = '\0';
    } else if ((n = eh_json_unescape((const uint8_t *)f->raw, f->raw_len, out, 0, &bad)) == NONE) {
        free(out);
        eh_fail(err, EH_EINVAL, "field \"%s\": invalid UTF-8 at byte %zu", f->key, bad);
        return NULL;
    }
    if (len)
        *len = n;
    return out;
}

/* ---- images --------------------------------------------------------------- */

static int b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
           c == '-' || c == '_' || c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Resolves rel inside dir: refuses absolute paths, ".." components and
 * anything whose real path leaves dir (a symlink).  Returns a malloc'd
 * path or NULL with err; *missing is set when the file does not exist. */
static char *resolve_inside(const eh_dataset *ds, const char *rel, size_t len, int *missing, eh_error *err)
{
    *missing = 0;
    if (len == 0 || memchr(rel, '\0', len)) {
        eh_fail(err, EH_EINVAL, "image path is empty or holds NUL");
        return NULL;
    }
    if (rel[0] == '/') {
        eh_fail(err, EH_EINVAL, "image path \"%.200s\" is absolute (refused: paths are relative to the dataset)", rel);
        return NULL;
    }
    for (const char *s = rel; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == rel || s[-1] == '/') && (s[2] == '/' || s[2] == '\0')) {
            eh_fail(err, EH_EINVAL, "image path \"%.200s\" escapes the dataset folder (refused)", rel);
            return NULL;
        }
    size_t dl = strlen(ds->dir);
    char *joined = malloc(dl + 1 + len + 1);
    if (!joined) {
        eh_fail(err, EH_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(joined, ds->dir, dl);
    joined[dl] = '/';
    memcpy(joined + dl + 1, rel, len + 1);
    char *real = realpath(joined, NULL);
    free(joined);
    if (!real) {
        *missing = 1;
        eh_fail(err, EH_EIO, "image file \"%.200s\" (in %.200s): %s", rel, ds->dir, strerror(errno));
        return NULL;
    }
    if (strncmp(real, ds->dir, dl) != 0 || (real[dl] != '/' && strcmp(ds->dir, "/") != 0)) {
        eh_fail(err, EH_EINVAL, "image path \"%.200s\" resolves outside the dataset folder (refused)", rel);
        free(real);
        return NULL;
    }
    return real;
}

char *eh_dataset_resolve(const eh_dataset *ds, const char *rel, size_t len, eh_error *err)
{
    int missing;
    return resolve_inside(ds, rel, len, &missing, err);
}

eh_status eh_dataset_image(const eh_dataset *ds, size_t c, size_t i, eh_dataset_image_ref *ref, eh_error *err)
{
    memset(ref, 0, sizeof *ref);
    const pair_rec *p = get_pair(ds, c, i, err);
    if (!p)
        return EH_EINVAL;
    if (p->role[EH_ROLE_IMAGE] < 0)
        return eh_fail(err, EH_EINVAL, "missing field \"%s\"", ds->names[EH_ROLE_IMAGE]);
    eh_dataset_field f;
    fill_field(ds, &ds->fields[p->first_field + (size_t)p->role[EH_ROLE_IMAGE]], &f);
    if (f.type != EH_JSON_STRING)
        return eh_fail(err, EH_EINVAL, "\"%s\" is not a string", f.key);
    ref->span_ = f.raw;
    ref->span_len_ = f.raw_len;

    /* path or base64?  image_path always names a file; otherwise a short
     * value that cannot be base64, or that names a file beside the dataset */
    int path_mode = strcmp(f.key, "image_path") == 0, maybe_path = 0;
    if (!path_mode && f.raw_len <= PATH_GUESS_MAX && !(f.raw_len >= 5 && memcmp(f.raw, "data:", 5) == 0)) {
        maybe_path = 1;
        for (size_t k = 0; k < f.raw_len && !path_mode; k++)
            if (!b64_char((uint8_t)f.raw[k]))
                path_mode = 1;
    }
    if (path_mode || maybe_path || f.escaped) {
        size_t len;
        char *text = eh_dataset_string(&f, &len, err);
        if (!text)
            return err ? err->code : EH_EINVAL;
        if (path_mode || maybe_path) {
            eh_error perr;
            int missing;
            char *real = resolve_inside(ds, text, len, &missing, &perr);
            if (real) {
                free(text);
                ref->is_path = 1;
                ref->owned_ = real;
                ref->data = real;
                ref->len = strlen(real);
                return EH_OK;
            }
            if (path_mode) {
                free(text);
                if (err)
                    *err = perr;
                return perr.code;
            }
        }
        ref->owned_ = text;
        ref->data = text;
        ref->len = len;
        return EH_OK;
    }
    ref->data = f.raw;
    ref->len = f.raw_len;
    return EH_OK;
}

void eh_dataset_image_ref_release(const eh_dataset *ds, eh_dataset_image_ref *ref)
{
    free(ref->owned_);
    if (ref->span_ && ref->span_len_) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        uintptr_t a = (uintptr_t)ref->span_ / page * page;
        uintptr_t e = (uintptr_t)ref->span_ + ref->span_len_;
        uintptr_t end = (uintptr_t)ds->map + ds->size;
        if (e > end)
            e = end;
        madvise((void *)a, (size_t)(e - a), MADV_DONTNEED);
    }
    memset(ref, 0, sizeof *ref);
}

/* ---- hash and names ------------------------------------------------------- */

const char *eh_dataset_hash(eh_dataset *ds)
{
    if (ds->hashed)
        return ds->hash;
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return NULL;
    XXH3_128bits_reset(st);
    for (size_t off = 0; off < ds->size; off += RELEASE_STEP) {
        size_t n = ds->size - off < RELEASE_STEP ? ds->size - off : RELEASE_STEP;
        XXH3_128bits_update(st, ds->map + off, n);
        madvise(ds->map + off, n, MADV_DONTNEED);
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    /* same text as eh_hash_hex: high 64 bits first */
    snprintf(ds->hash, sizeof ds->hash, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    ds->hashed = 1;
    return ds->hash;
}

int eh_dataset_id_safe(const char *id, size_t len)
{
    /* no length bound here: a long id or category becomes a prefix and a hash
     * when it names a file (the schedule's util.file_stem) */
    if (len == 0 || id[0] == '.')
        return 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)id[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return 0;
        if (c == '.' && i + 1 < len && id[i + 1] == '.')
            return 0;
        size_t k = eh_utf8_len((const uint8_t *)id + i, len - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

eh_status eh_dataset_safe_name(const char *id, size_t len, char *buf, size_t n, eh_error *err)
{
    if (n < 32)
        return eh_fail(err, EH_EINVAL, "eh_dataset_safe_name: buffer of %zu bytes, 32 needed", n);
    if (eh_dataset_id_safe(id, len) && len < n) {
        memcpy(buf, id, len);
        buf[len] = '\0';
        return EH_OK;
    }
    size_t room = n - 1 - 9, o = 0;   /* 9: "-" and 8 hex digits */
    if (room > 200)
        room = 200;
    for (size_t i = 0; i < len && o < room;) {
        uint8_t c = (uint8_t)id[i];
        size_t k = eh_utf8_len((const uint8_t *)id + i, len - i);
        if (c >= 0x80 && k > 1) {
            if (o + k > room)
                break;
            memcpy(buf + o, id + i, k);
            o += k;
            i += k;
            continue;
        }
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                   (c == '.' && o > 0 && buf[o - 1] != '.');
        buf[o++] = keep ? (char)c : '_';
        i++;
    }
    if (o == 0)
        buf[o++] = '_';
    snprintf(buf + o, n - o, "-%08x", (unsigned)(XXH3_64bits(id, len) & 0xffffffffu));
    return EH_OK;
}
