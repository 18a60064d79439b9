/* tokenizer.c — byte-level BPE from a Hugging Face tokenizer.json, following
 * the `tokenizers` crate step by step so the ids are the same:
 *
 *   text → split on added tokens (non-normalized ones on the raw text)
 *        → NFC each remaining piece → split on normalized added tokens
 *        → pre-tokenizers (Split regex via PCRE2, ByteLevel, Digits)
 *        → BPE each word over its bytes (lowest merge rank first, leftmost
 *          on ties: a binary heap, as tokenizers' Word::merge_all)
 *        → post-processor (only with add_special).
 *
 * ByteLevel is folded into BPE: a word's initial symbols are the ids of its
 * bytes' GPT-2 characters, so the mapped string is never built. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "evalhost/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "evalhost/grow.h"

#define TOK_MAX_ID (1 << 24)        /* ids above this are refused (hostile files) */
#define TOK_MAX_STEPS 8             /* pre-tokenizer steps after flattening Sequences */
#define TOK_MAX_TEMPLATE 16         /* special tokens in a post-processor template */

/* ---------------------------------------------------------------- hashing */

/* String → id, open addressing; keys point into tok->tokens (not owned). */
typedef struct str_slot {
    const char *s;
    uint32_t len;
    int32_t id;
} str_slot;
typedef struct str_map {
    str_slot *slots;
    size_t mask, count;
} str_map;

static int str_map_init(str_map *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    m->slots = calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
    return m->slots ? 0 : -1;
}

static str_slot *str_map_find(const str_map *m, const char *s, size_t len)
{
    size_t i = (size_t)XXH3_64bits(s, len) & m->mask;
    for (;;) {
        str_slot *e = &m->slots[i];
        if (!e->s || (e->len == len && memcmp(e->s, s, len) == 0))
            return e;
        i = (i + 1) & m->mask;
    }
}

/* (left id, right id) → rank and merged id. */
typedef struct merge_slot {
    uint64_t key;
    int32_t rank, id;
} merge_slot;
typedef struct merge_map {
    merge_slot *slots;
    size_t mask;
} merge_map;
#define MERGE_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static size_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static merge_slot *merge_find(const merge_map *m, uint64_t key)
{
    size_t i = pair_hash(key) & m->mask;
    while (m->slots[i].key != MERGE_EMPTY && m->slots[i].key != key)
        i = (i + 1) & m->mask;
    return &m->slots[i];
}

/* ------------------------------------------------------------ the handle */

typedef struct added_token {
    char *content;
    size_t len;      /* owned */
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_token;

/* A byte trie over added-token contents: leftmost-longest matching as the
 * aho-corasick crate's LeftmostLongest does, for a handful of tokens. */
typedef struct trie_node {
    int32_t child, sibling, token;
    uint8_t byte;
} trie_node;
typedef struct trie {
    trie_node *nodes;
    size_t n, cap;
    int32_t root[256];
} trie;

typedef enum step_kind { STEP_SPLIT, STEP_BYTELEVEL_REGEX } step_kind;
typedef struct pre_step {
    step_kind kind;
    pcre2_code *re;
    int removed;
} pre_step;

typedef struct cache_entry {
    uint64_t hash;
    uint32_t klen, nids;
    uint8_t *blob;
} cache_entry;

struct eh_tokenizer {
    eh_tokenizer_params params;
    char **tokens;                  /* id → string, owned; NULL holes allowed */
    uint8_t *is_special;            /* id → 1 for special added tokens */
    int32_t n_ids;
    str_map vocab;                  /* model vocab and added tokens */
    merge_map merges;
    int32_t byte_id[256];           /* id of each byte's GPT-2 character, -1 if absent */
    int16_t char_byte[0x144];       /* GPT-2 character → byte, -1 elsewhere */
    uint32_t byte_cp[256];          /* byte → GPT-2 character */
    int32_t unk_id;                 /* -1 without unk_token */
    int fuse_unk, ignore_merges, nfc;
    added_token *added;
    size_t n_added;
    trie raw_trie, norm_trie;       /* non-normalized / normalized added tokens */
    pre_step steps[TOK_MAX_STEPS];
    int n_steps;
    pcre2_match_data *md;           /* shared by the steps; sized for the largest */
    int32_t tmpl_pre[TOK_MAX_TEMPLATE], tmpl_post[TOK_MAX_TEMPLATE];
    int n_tmpl_pre, n_tmpl_post;
    /* scratch, grown on demand (why: no allocation per word) */
    struct bpe_sym {
        int32_t id, prev, next, alive;
    } *syms;
    size_t syms_cap;
    struct bpe_heap {
        int32_t rank, pos, id;
    } *heap;
    size_t heap_cap;
    /* word cache: raw word bytes → ids */
    cache_entry *cache;
    size_t cache_mask, cache_count;
};

/* Output vector of ids. */
typedef struct idvec {
    int32_t *v;
    size_t n, cap;
    int oom;
} idvec;

static void idvec_push(idvec *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->oom = 1;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
}

eh_tokenizer_params eh_tokenizer_default_params(void)
{
    eh_tokenizer_params p = { .max_input = 1u << 20, .max_file = 256u << 20, .cache_words = 16384 };
    return p;
}

/* ------------------------------------------------------------- UTF-8 help */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid
 * (overlong, surrogate, > U+10FFFF, truncated) — Rust's str rules. */
static int utf8_len(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;
        if (c == 0xED && s[1] >= 0xA0)
            return 0;
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
              (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* Offset of the first invalid byte, or len when valid. */
static size_t utf8_check(const char *text, size_t len)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = utf8_len(s + i, len - i, &cp);
        if (!k)
            return i;
        i += (size_t)k;
    }
    return len;
}

static int utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust's char::is_whitespace (the White_Space property). */
static int is_white(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* char::is_alphanumeric() || '_' (tokenizers' single_word boundary). */
static int is_word_char(uint32_t c)
{
    if (c == '_')
        return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* Code point ending just before offset `end` (text valid UTF-8), its start in *start. */
static uint32_t utf8_before(const char *text, size_t end, size_t *start)
{
    size_t i = end - 1;
    while (i > 0 && ((uint8_t)text[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp = 0;
    utf8_len((const uint8_t *)text + i, end - i, &cp);
    *start = i;
    return cp;
}

/* NFC is the identity for code points below U+0300 and for blocks that
 * neither decompose nor start a composition's second half; the common
 * case skips utf8proc entirely. */
static int nfc_trivial(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp = 0;
        int k = utf8_len(p + i, len - i, &cp);
        if (!(cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3040 && cp <= 0x3096) ||
              (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1F300 && cp <= 0x1FAFF)))
            return 0;
        i += (size_t)k;
    }
    return 1;
}

/* ------------------------------------------------------------------ trie */

static int trie_add(trie *t, const char *s, size_t len, int32_t token)
{
    /* room for the whole path first: `link` points into nodes */
    if (eh_grow((void **)&t->nodes, &t->cap, t->n + len, sizeof *t->nodes, 64))
        return -1;
    int32_t *link = &t->root[(uint8_t)s[0]];
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t n = *link;
        while (n >= 0 && t->nodes[n].byte != b) {
            link = &t->nodes[n].sibling;
            n = *link;
        }
        if (n < 0) {
            n = (int32_t)t->n++;
            t->nodes[n] = (trie_node){ .child = -1, .sibling = -1, .token = -1, .byte = b };
            *link = n;
        }
        if (i + 1 == len)
            t->nodes[n].token = token;
        link = &t->nodes[n].child;
    }
    return 0;
}

/* Longest token starting at s, its length in *mlen; -1 if none. */
static int32_t trie_longest(const trie *t, const char *s, size_t len, size_t *mlen)
{
    int32_t n = t->root[(uint8_t)s[0]], best = -1;
    for (size_t i = 0; n >= 0;) {
        if (t->nodes[n].token >= 0) {
            best = t->nodes[n].token;
            *mlen = i + 1;
        }
        if (++i == len)
            break;
        uint8_t b = (uint8_t)s[i];
        n = t->nodes[n].child;
        while (n >= 0 && t->nodes[n].byte != b)
            n = t->nodes[n].sibling;
    }
    return best;
}

/* ------------------------------------------------------------------- BPE */

static int heap_less(const struct bpe_heap *a, const struct bpe_heap *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_heap *h, size_t *n, struct bpe_heap e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static struct bpe_heap heap_pop(struct bpe_heap *h, size_t *n)
{
    struct bpe_heap top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void push_pair(eh_tokenizer *t, size_t *hn, int32_t pos)
{
    int32_t nx = t->syms[pos].next;
    if (nx < 0)
        return;
    const merge_slot *m = merge_find(&t->merges, pair_key(t->syms[pos].id, t->syms[nx].id));
    if (m->key != MERGE_EMPTY)
        heap_push(t->heap, hn, (struct bpe_heap){ m->rank, pos, m->id });
}

/* BPE over one word's bytes, appending ids to out.  Returns -1 on OOM. */
static int bpe_word(eh_tokenizer *t, const uint8_t *w, size_t len, idvec *out)
{
    if (t->ignore_merges) {
        /* ignore_merges: a word that is itself in the vocab is one token */
        char buf[1024];
        size_t k = 0;
        for (size_t i = 0; i < len && k + 2 <= sizeof buf; i++) {
            k += (size_t)utf8_put(t->byte_cp[w[i]], buf + k);
        }
        if (len * 2 < sizeof buf) {
            const str_slot *e = str_map_find(&t->vocab, buf, k);
            if (e->s) {
                idvec_push(out, e->id);
                return out->oom ? -1 : 0;
            }
        }
    }
    if (eh_grow((void **)&t->syms, &t->syms_cap, len, sizeof *t->syms, 64) ||
        eh_grow((void **)&t->heap, &t->heap_cap, len, sizeof *t->heap, 64))
        return -1;
    /* initial symbols: one per byte; a byte with no vocab char becomes unk
     * (fused when fuse_unk) or is dropped, as tokenizers' BPE does */
    int32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[w[i]];
        if (id < 0) {
            if (t->unk_id < 0)
                continue;
            if (t->fuse_unk && n > 0 && t->syms[n - 1].id == t->unk_id)
                continue;
            id = t->unk_id;
        }
        t->syms[n] = (struct bpe_sym){ id, n - 1, -1, 1 };
        if (n > 0)
            t->syms[n - 1].next = n;
        n++;
    }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        push_pair(t, &hn, i);
    while (hn) {
        struct bpe_heap top = heap_pop(t->heap, &hn);
        struct bpe_sym *s = &t->syms[top.pos];
        if (!s->alive || s->next < 0)
            continue;
        int32_t nx = s->next;
        const merge_slot *m = merge_find(&t->merges, pair_key(s->id, t->syms[nx].id));
        if (m->key == MERGE_EMPTY || m->id != top.id)
            continue;   /* stale entry */
        s->id = top.id;
        s->next = t->syms[nx].next;
        t->syms[nx].alive = 0;
        if (s->next >= 0)
            t->syms[s->next].prev = top.pos;
        if (s->prev >= 0)
            push_pair(t, &hn, s->prev);
        push_pair(t, &hn, top.pos);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = t->syms[i].next)
        idvec_push(out, t->syms[i].id);
    return out->oom ? -1 : 0;
}

static void cache_clear(eh_tokenizer *t)
{
    if (!t->cache)
        return;
    for (size_t i = 0; i <= t->cache_mask; i++) {
        free(t->cache[i].blob);
        t->cache[i].blob = NULL;
    }
    t->cache_count = 0;
}

/* One word through the cache and BPE. */
static int encode_word(eh_tokenizer *t, const char *w, size_t len, idvec *out)
{
    if (len == 1 && t->byte_id[(uint8_t)w[0]] >= 0) {
        idvec_push(out, t->byte_id[(uint8_t)w[0]]);
        return out->oom ? -1 : 0;
    }
    if (!t->cache || len > 256)
        return bpe_word(t, (const uint8_t *)w, len, out);
    uint64_t h = XXH3_64bits(w, len);
    size_t i = (size_t)h & t->cache_mask;
    while (t->cache[i].blob) {
        cache_entry *e = &t->cache[i];
        if (e->hash == h && e->klen == len && memcmp(e->blob, w, len) == 0) {
            const uint8_t *ids = e->blob + ((len + 3) & ~(size_t)3);
            for (uint32_t k = 0; k < e->nids; k++) {
                int32_t id;
                memcpy(&id, ids + 4 * k, 4);
                idvec_push(out, id);
            }
            return out->oom ? -1 : 0;
        }
        i = (i + 1) & t->cache_mask;
    }
    size_t before = out->n;
    if (bpe_word(t, (const uint8_t *)w, len, out))
        return -1;
    if (t->cache_count >= t->params.cache_words) {
        cache_clear(t);     /* bounded: start over rather than track recency */
        i = (size_t)h & t->cache_mask;
    }
    size_t nids = out->n - before, koff = (len + 3) & ~(size_t)3;
    uint8_t *blob = malloc(koff + nids * 4);
    if (!blob)
        return 0;    /* the cache is an optimisation; the ids are out */
    memcpy(blob, w, len);
    memcpy(blob + koff, out->v + before, nids * 4);
    t->cache[i] = (cache_entry){ h, (uint32_t)len, (uint32_t)nids, blob };
    t->cache_count++;
    return 0;
}

/* ------------------------------------------------------ pre-tokenization */

/* Runs steps[k..] over one piece; words reach encode_word. */
static int pre_tokenize(eh_tokenizer *t, int k, const char *s, size_t len, idvec *out, eh_error *err)
{
    if (len == 0)
        return 0;
    if (k == t->n_steps)
        return encode_word(t, s, len, out);
    const pre_step *st = &t->steps[k];
    size_t off = 0, prev = 0;
    while (off < len) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            eh_fail(err, EH_EINVAL, "tokenizer: pre_tokenizer regex failed: %s", (const char *)msg);
            return -1;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {     /* empty match: tokenizers drops empty pieces; step one char */
            uint32_t cp;
            int n = utf8_len((const uint8_t *)s + ms, len - ms, &cp);
            off = ms + (size_t)(n > 0 ? n : 1);
            continue;
        }
        if (ms > prev && pre_tokenize(t, k + 1, s + prev, ms - prev, out, err))
            return -1;
        if (!st->removed && pre_tokenize(t, k + 1, s + ms, me - ms, out, err))
            return -1;
        prev = off = me;
    }
    if (prev < len && pre_tokenize(t, k + 1, s + prev, len - prev, out, err))
        return -1;
    return out->oom ? -1 : 0;
}

/* A piece between added tokens, already normalized: split on normalized
 * added tokens, pre-tokenize the rest. */
static int encode_normalized(eh_tokenizer *t, const char *s, size_t len, idvec *out, eh_error *err);

/* Splits `s` on the added tokens of `tr` (tokenizers' find_matches:
 * leftmost-longest, then single_word / lstrip / rstrip); between matches
 * calls `rest`.  normalized: the pieces between are already normalized. */
static int split_added(eh_tokenizer *t, const trie *tr, const char *s, size_t len, int normalized, idvec *out,
                       eh_error *err)
{
    size_t start_off = 0, i = 0;
    while (i < len) {
        size_t mlen = 0;
        int32_t ti = tr->n ? trie_longest(tr, s + i, len - i, &mlen) : -1;
        if (ti < 0) {
            i++;
            continue;
        }
        const added_token *a = &t->added[ti];
        size_t start = i, stop = i + mlen;
        if (a->single_word) {
            size_t st;
            int start_space = start == 0 || !is_word_char(utf8_before(s, start, &st));
            uint32_t nc = 0;
            int stop_space = stop == len || (utf8_len((const uint8_t *)s + stop, len - stop, &nc), !is_word_char(nc));
            if (!start_space || !stop_space) {
                i++;
                continue;
            }
        }
        if (a->lstrip) {
            size_t ns = start, st;
            while (ns > start_off && is_white(utf8_before(s, ns, &st)))
                ns = st;
            start = ns;
        }
        if (a->rstrip) {
            uint32_t c;
            int n;
            while (stop < len && (n = utf8_len((const uint8_t *)s + stop, len - stop, &c)) > 0 && is_white(c))
                stop += (size_t)n;
        }
        if (start > start_off) {
            int rc = normalized ? pre_tokenize(t, 0, s + start_off, start - start_off, out, err)
                                : encode_normalized(t, s + start_off, start - start_off, out, err);
            if (rc)
                return -1;
        }
        idvec_push(out, a->id);
        start_off = i = stop;
    }
    if (start_off < len)
        return normalized ? pre_tokenize(t, 0, s + start_off, len - start_off, out, err)
                          : encode_normalized(t, s + start_off, len - start_off, out, err);
    return out->oom ? -1 : 0;
}

static int encode_normalized(eh_tokenizer *t, const char *s, size_t len, idvec *out, eh_error *err)
{
    if (!t->nfc || nfc_trivial(s, len))
        return split_added(t, &t->norm_trie, s, len, 1, out, err);
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) {
        eh_fail(err, n == UTF8PROC_ERROR_NOMEM ? EH_ENOMEM : EH_EINVAL, "tokenizer: NFC failed: %s",
                utf8proc_errmsg(n));
        return -1;
    }
    int rc = split_added(t, &t->norm_trie, (const char *)nfc, (size_t)n, 1, out, err);
    free(nfc);
    return rc;
}

eh_status eh_tokenizer_encode(eh_tokenizer *tok, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n, eh_error *err)
{
    *ids = NULL;
    *n = 0;
    if (len > tok->params.max_input)
        return eh_fail(err, EH_ELIMIT, "tokenizer: input of %zu bytes exceeds limits.max_tokenizer_input (%zu)", len,
                       tok->params.max_input);
    size_t bad = utf8_check(text, len);
    if (bad != len)
        return eh_fail(err, EH_EINVAL, "tokenizer: input is not valid UTF-8 (byte %zu)", bad);
    idvec out = { 0 };
    if (add_special)
        for (int i = 0; i < tok->n_tmpl_pre; i++)
            idvec_push(&out, tok->tmpl_pre[i]);
    int rc = split_added(tok, &tok->raw_trie, text, len, 0, &out, err);
    if (!rc && add_special)
        for (int i = 0; i < tok->n_tmpl_post; i++)
            idvec_push(&out, tok->tmpl_post[i]);
    if (rc || out.oom) {
        free(out.v);
        if (!rc || out.oom)
            return eh_fail(err, EH_ENOMEM, "tokenizer: out of memory encoding %zu bytes", len);
        return err ? err->code : EH_EINVAL;
    }
    *ids = out.v;
    *n = out.n;
    return EH_OK;
}

/* ---------------------------------------------------------------- decode */

eh_status eh_tokenizer_decode(const eh_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, eh_error *err)
{
    *text = NULL;
    if (len)
        *len = 0;
    size_t cap = 64, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_ids || !tok->tokens[ids[i]])
            return eh_fail(err, EH_EINVAL, "tokenizer: unknown token id %ld (at %zu)", (long)ids[i], i + 1);
        cap += strlen(tok->tokens[ids[i]]);
    }
    uint8_t *raw = malloc(cap);
    if (!raw)
        return eh_fail(err, EH_ENOMEM, "tokenizer: out of memory decoding %zu ids", n);
    for (size_t i = 0; i < n; i++) {
        if (skip_special && tok->is_special[ids[i]])
            continue;
        /* ByteLevel decoder: a token whose characters all map to bytes gives
         * those bytes; any other token (an added one) its own UTF-8 */
        const uint8_t *s = (const uint8_t *)tok->tokens[ids[i]];
        size_t sl = strlen((const char *)s), j = 0, k0 = k;
        while (j < sl) {
            uint32_t cp = 0;
            int m = utf8_len(s + j, sl - j, &cp);
            if (m <= 0 || cp >= 0x144 || tok->char_byte[cp] < 0)
                break;
            raw[k++] = (uint8_t)tok->char_byte[cp];
            j += (size_t)m;
        }
        if (j < sl) {
            memcpy(raw + k0, s, sl);
            k = k0 + sl;
        }
    }
    /* from_utf8_lossy: each maximal invalid subpart becomes U+FFFD */
    char *outs = malloc(k * 3 + 1);
    if (!outs) {
        free(raw);
        return eh_fail(err, EH_ENOMEM, "tokenizer: out of memory decoding %zu ids", n);
    }
    size_t o = 0, i = 0;
    while (i < k) {
        uint32_t cp;
        int m = raw[i] < 0x80 ? 1 : utf8_len(raw + i, k - i, &cp);
        if (m > 0) {
            memcpy(outs + o, raw + i, (size_t)m);
            o += (size_t)m;
            i += (size_t)m;
            continue;
        }
        /* length of the maximal prefix of a valid sequence, at least 1 */
        size_t need = raw[i] >= 0xF0 ? 4 : raw[i] >= 0xE0 ? 3 : 2, j = 1;
        if (raw[i] >= 0xC2 && raw[i] <= 0xF4) {
            uint8_t lo = 0x80, hi = 0xBF;
            if (raw[i] == 0xE0)
                lo = 0xA0;
            if (raw[i] == 0xED)
                hi = 0x9F;
            if (raw[i] == 0xF0)
                lo = 0x90;
            if (raw[i] == 0xF4)
                hi = 0x8F;
            if (i + 1 < k && raw[i + 1] >= lo && raw[i + 1] <= hi) {
                j = 2;
                while (j < need && i + j < k && (raw[i + j] & 0xC0) == 0x80)
                    j++;
            }
        }
        memcpy(outs + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += j;
    }
    outs[o] = '\0';
    free(raw);
    *text = outs;
    if (len)
        *len = o;
    return EH_OK;
}

int32_t eh_tokenizer_token_to_id(const eh_tokenizer *tok, const char *s, size_t len)
{
    const str_slot *e = str_map_find(&tok->vocab, s, len);
    return e->s ? e->id : -1;
}

const char *eh_tokenizer_id_to_token(const eh_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids ? tok->tokens[id] : NULL;
}

int32_t eh_tokenizer_vocab_size(const eh_tokenizer *tok)
{
    return tok->n_ids;
}

/* ----------------------------------------------------------------- load */

void eh_tokenizer_free(eh_tokenizer *tok)
{
    if (!tok)
        return;
    if (tok->tokens)
        for (int32_t i = 0; i < tok->n_ids; i++)
            free(tok->tokens[i]);
    free(tok->tokens);
    free(tok->is_special);
    free(tok->vocab.slots);
    free(tok->merges.slots);
    for (size_t i = 0; i < tok->n_added; i++)
        free(tok->added[i].content);
    free(tok->added);
    free(tok->raw_trie.nodes);
    free(tok->norm_trie.nodes);
    for (int i = 0; i < tok->n_steps; i++)
        pcre2_code_free(tok->steps[i].re);
    pcre2_match_data_free(tok->md);
    free(tok->syms);
    free(tok->heap);
    cache_clear(tok);
    free(tok->cache);
    free(tok);
}

#define LOAD_FAIL(code, ...)                                                                                           \
    do {                                                                                                               \
        eh_fail(err, code, __VA_ARGS__);                                                                               \
        return -1;                                                                                                     \
    } while (0)

static const char *type_of(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static int flag(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Integer id in [0, TOK_MAX_ID), or -1. */
static int32_t json_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= TOK_MAX_ID ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return -1;
    return (int32_t)v->valuedouble;
}

static int set_token(eh_tokenizer *t, int32_t id, const char *s, size_t len, const char *name, eh_error *err)
{
    if (t->tokens[id] && (strlen(t->tokens[id]) != len || memcmp(t->tokens[id], s, len) != 0))
        LOAD_FAIL(EH_EINVAL, "%s: id %ld is given to two tokens", name, (long)id);
    if (!t->tokens[id] && !(t->tokens[id] = strndup(s, len)))
        LOAD_FAIL(EH_ENOMEM, "%s: out of memory", name);
    str_slot *e = str_map_find(&t->vocab, s, len);
    if (!e->s) {
        *e = (str_slot){ t->tokens[id], (uint32_t)len, id };
        t->vocab.count++;
    } else
        e->id = id;   /* added tokens override the vocab, as in tokenizers */
    return 0;
}

static int add_regex_step(eh_tokenizer *t, const char *pat, size_t plen, uint32_t extra, int removed, step_kind kind,
                          const char *name, eh_error *err)
{
    if (t->n_steps == TOK_MAX_STEPS)
        LOAD_FAIL(EH_EFORMAT, "%s: more than %d pre-tokenizer steps", name, TOK_MAX_STEPS);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, PCRE2_UTF | PCRE2_UCP | extra, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        LOAD_FAIL(EH_EFORMAT, "%s: pre_tokenizer Split regex rejected by PCRE2 at offset %zu: %s", name, (size_t)eo,
                  (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);    /* falls back to the interpreter */
    t->steps[t->n_steps++] = (pre_step){ kind, re, removed };
    return 0;
}

/* The GPT-2 pattern ByteLevel applies when use_regex is true. */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pre(eh_tokenizer *t, const cJSON *p, const char *name, int *have_bytelevel, eh_error *err)
{
    if (cJSON_IsNull(p) || !p)
        return 0;
    const char *ty = type_of(p);
    if (!ty)
        LOAD_FAIL(EH_EINVAL, "%s: pre_tokenizer has no type", name);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *it;
        if (!cJSON_IsArray(list))
            LOAD_FAIL(EH_EINVAL, "%s: pre_tokenizer Sequence without pretokenizers", name);
        cJSON_ArrayForEach (it, list)
            if (load_pre(t, it, name, have_bytelevel, err))
                return -1;
        return 0;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        const char *b = cJSON_IsString(beh) ? beh->valuestring : "";
        if (!cJSON_IsString(rx) && !cJSON_IsString(lit))
            LOAD_FAIL(EH_EINVAL, "%s: pre_tokenizer Split needs pattern.Regex or pattern.String", name);
        if (flag(p, "invert", 0))
            LOAD_FAIL(EH_EFORMAT, "%s: pre_tokenizer Split with invert is not supported", name);
        if (strcmp(b, "Isolated") != 0 && strcmp(b, "Removed") != 0)
            LOAD_FAIL(EH_EFORMAT, "%s: pre_tokenizer Split behavior %s is not supported (Isolated, Removed)", name, b);
        const char *s = cJSON_IsString(rx) ? rx->valuestring : lit->valuestring;
        return add_regex_step(t, s, strlen(s), cJSON_IsString(rx) ? 0 : PCRE2_LITERAL, b[0] == 'R', STEP_SPLIT, name,
                              err);
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        if (flag(p, "add_prefix_space", 1))
            LOAD_FAIL(EH_EFORMAT, "%s: pre_tokenizer ByteLevel with add_prefix_space is not supported", name);
        *have_bytelevel = 1;
        if (flag(p, "use_regex", 1))
            return add_regex_step(t, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, 0, STEP_BYTELEVEL_REGEX, name, err);
        return 0;
    }
    if (strcmp(ty, "Digits") == 0) {
        const char *pat = flag(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+";
        return add_regex_step(t, pat, strlen(pat), 0, 0, STEP_SPLIT, name, err);
    }
    LOAD_FAIL(EH_EFORMAT, "%s: pre_tokenizer %s is not supported", name, ty);
}

static int load_normalizer(eh_tokenizer *t, const cJSON *n, const char *name, eh_error *err)
{
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *ty = type_of(n);
    if (!ty)
        LOAD_FAIL(EH_EINVAL, "%s: normalizer has no type", name);
    if (strcmp(ty, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *it;
        if (!cJSON_IsArray(list))
            LOAD_FAIL(EH_EINVAL, "%s: normalizer Sequence without normalizers", name);
        cJSON_ArrayForEach (it, list)
            if (load_normalizer(t, it, name, err))
                return -1;
        return 0;
    }
    LOAD_FAIL(EH_EFORMAT, "%s: normalizer %s is not supported", name, ty);
}

static int template_id(eh_tokenizer *t, const cJSON *special_tokens, const char *tokname, int32_t *id, const char *name,
                       eh_error *err)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(special_tokens, tokname);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
    if (cJSON_GetArraySize(ids) != 1 || (*id = json_id(cJSON_GetArrayItem(ids, 0))) < 0 || *id >= t->n_ids)
        LOAD_FAIL(EH_EINVAL, "%s: post_processor special token %s has no single valid id", name, tokname);
    return 0;
}

static int load_post(eh_tokenizer *t, const cJSON *p, const char *name, eh_error *err)
{
    if (!p || cJSON_IsNull(p))
        return 0;
    const char *ty = type_of(p);
    if (!ty)
        LOAD_FAIL(EH_EINVAL, "%s: post_processor has no type", name);
    if (strcmp(ty, "ByteLevel") == 0)
        return 0;     /* offsets only */
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *it;
        cJSON_ArrayForEach (it, list)
            if (load_post(t, it, name, err))
                return -1;
        return 0;
    }
    if (strcmp(ty, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *it;
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        int seen_a = 0;
        cJSON_ArrayForEach (it, single) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                seen_a = 1;
                continue;
            }
            const cJSON *tid = cJSON_GetObjectItemCaseSensitive(tok, "id");
            if (!cJSON_IsString(tid))
                LOAD_FAIL(EH_EINVAL, "%s: post_processor template item is malformed", name);
            int *cnt = seen_a ? &t->n_tmpl_post : &t->n_tmpl_pre;
            if (*cnt == TOK_MAX_TEMPLATE)
                LOAD_FAIL(EH_EFORMAT, "%s: post_processor template too long", name);
            int32_t *dst = seen_a ? t->tmpl_post : t->tmpl_pre;
            if (template_id(t, sp, tid->valuestring, &dst[*cnt], name, err))
                return -1;
            (*cnt)++;
        }
        return 0;
    }
    LOAD_FAIL(EH_EFORMAT, "%s: post_processor %s is not supported", name, ty);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * rest to U+0100 onwards in byte order. */
static uint32_t byte_char(int b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
            n++;
    return 256 + n;
}

static int load_model(eh_tokenizer *t, const cJSON *model, const cJSON *added, const char *name, eh_error *err)
{
    if (!cJSON_IsObject(model))
        LOAD_FAIL(EH_EINVAL, "%s: no model object", name);
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE") != 0)
        LOAD_FAIL(EH_EFORMAT, "%s: model %s is not supported (only BPE)", name, ty);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        LOAD_FAIL(EH_EINVAL, "%s: BPE model needs vocab and merges", name);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *ew = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if ((cJSON_IsString(cs) && cs->valuestring[0]) || (cJSON_IsString(ew) && ew->valuestring[0]))
        LOAD_FAIL(EH_EFORMAT, "%s: BPE continuing_subword_prefix/end_of_word_suffix are not supported", name);
    if (flag(model, "byte_fallback", 0))
        LOAD_FAIL(EH_EFORMAT, "%s: BPE byte_fallback is not supported", name);
    if (cJSON_IsNumber(dr) && dr->valuedouble > 0)
        LOAD_FAIL(EH_EFORMAT, "%s: BPE dropout is not supported", name);
    t->fuse_unk = flag(model, "fuse_unk", 0);
    t->ignore_merges = flag(model, "ignore_merges", 0);

    /* ids: one array over the vocab and the added tokens */
    int32_t max_id = -1;
    size_t n_entries = 0;
    cJSON_ArrayForEach (it, vocab) {
        int32_t id = json_id(it);
        if (id < 0)
            LOAD_FAIL(EH_EINVAL, "%s: vocab entry \"%.40s\" has a bad id", name, it->string);
        if (id > max_id)
            max_id = id;
        n_entries++;
    }
    cJSON_ArrayForEach (it, added) {
        int32_t id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (id < 0 || !cJSON_IsString(c) || !c->valuestring[0])
            LOAD_FAIL(EH_EINVAL, "%s: added_tokens entry needs an id and a non-empty content", name);
        if (id > max_id)
            max_id = id;
        n_entries++;
    }
    t->n_ids = max_id + 1;
    t->tokens = calloc((size_t)t->n_ids + 1, sizeof *t->tokens);
    t->is_special = calloc((size_t)t->n_ids + 1, 1);
    if (!t->tokens || !t->is_special || str_map_init(&t->vocab, n_entries))
        LOAD_FAIL(EH_ENOMEM, "%s: out of memory for %ld ids", name, (long)t->n_ids);
    cJSON_ArrayForEach (it, vocab)
        if (set_token(t, json_id(it), it->string, strlen(it->string), name, err))
            return -1;

    /* merges: "a b" strings or [a, b] pairs; rank = position */
    size_t n_merges = (size_t)cJSON_GetArraySize(merges), cap = 16;
    while (cap < n_merges * 2 + 2)
        cap <<= 1;
    t->merges.slots = malloc(cap * sizeof *t->merges.slots);
    if (!t->merges.slots)
        LOAD_FAIL(EH_ENOMEM, "%s: out of memory for %zu merges", name, n_merges);
    for (size_t i = 0; i < cap; i++)
        t->merges.slots[i].key = MERGE_EMPTY;
    t->merges.mask = cap - 1;
    int32_t rank = 0;
    char *buf = NULL;       /* a+b, grown as needed */
    size_t buf_cap = 0;
    cJSON_ArrayForEach (it, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(buf);
                LOAD_FAIL(EH_EINVAL, "%s: merge %ld \"%.40s\" is not two tokens", name, (long)rank, it->valuestring);
            }
            a = it->valuestring;
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            al = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            bl = strlen(b);
        } else {
            free(buf);
            LOAD_FAIL(EH_EINVAL, "%s: merge %ld is neither \"a b\" nor [a, b]", name, (long)rank);
        }
        if (eh_grow((void **)&buf, &buf_cap, al + bl + 1, 1, 64)) {
            free(buf);
            LOAD_FAIL(EH_ENOMEM, "%s: out of memory", name);
        }
        memcpy(buf, a, al);
        memcpy(buf + al, b, bl);
        int32_t ia = eh_tokenizer_token_to_id(t, a, al), ib = eh_tokenizer_token_to_id(t, b, bl);
        int32_t ic = eh_tokenizer_token_to_id(t, buf, al + bl);
        if (ia < 0 || ib < 0 || ic < 0) {
            free(buf);
            LOAD_FAIL(EH_EINVAL, "%s: merge %ld (%.*s %.*s) uses a token missing from the vocab", name, (long)rank,
                      (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
        }
        merge_slot *m = merge_find(&t->merges, pair_key(ia, ib));
        if (m->key == MERGE_EMPTY)
            *m = (merge_slot){ pair_key(ia, ib), rank, ic };
        rank++;
    }
    free(buf);

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = cJSON_IsString(unk) ? eh_tokenizer_token_to_id(t, unk->valuestring, strlen(unk->valuestring)) : -1;
    if (cJSON_IsString(unk) && t->unk_id < 0)
        LOAD_FAIL(EH_EINVAL, "%s: unk_token is not in the vocab", name);
    return 0;
}

static int load_added(eh_tokenizer *t, const cJSON *added, const char *name, eh_error *err)
{
    size_t n = (size_t)cJSON_GetArraySize(added);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        LOAD_FAIL(EH_ENOMEM, "%s: out of memory", name);
    for (int i = 0; i < 256; i++)
        t->raw_trie.root[i] = t->norm_trie.root[i] = -1;
    const cJSON *it;
    cJSON_ArrayForEach (it, added) {
        added_token *a = &t->added[t->n_added];
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        a->id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"));
        a->special = flag(it, "special", 0);
        a->lstrip = flag(it, "lstrip", 0);
        a->rstrip = flag(it, "rstrip", 0);
        a->single_word = flag(it, "single_word", 0);
        a->normalized = flag(it, "normalized", !a->special);
        if (utf8_check(c, strlen(c)) != strlen(c))
            LOAD_FAIL(EH_EINVAL, "%s: added token %ld is not UTF-8", name, (long)a->id);
        if (set_token(t, a->id, c, strlen(c), name, err))
            return -1;
        t->is_special[a->id] = (uint8_t)a->special;
        if (a->normalized && t->nfc) {      /* matched in normalized text: match its NFC form */
            utf8proc_uint8_t *nf = NULL;
            utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)c, (utf8proc_ssize_t)strlen(c), &nf,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (k <= 0) {
                free(nf);
                LOAD_FAIL(EH_EINVAL, "%s: added token %ld does not normalize", name, (long)a->id);
            }
            a->content = (char *)nf;
            a->len = (size_t)k;
        } else {
            a->content = strdup(c);
            a->len = strlen(c);
        }
        t->n_added++;
        if (!a->content ||
            trie_add(a->normalized ? &t->norm_trie : &t->raw_trie, a->content, a->len, (int32_t)(t->n_added - 1)))
            LOAD_FAIL(EH_ENOMEM, "%s: out of memory", name);
    }
    return 0;
}

eh_tokenizer *eh_tokenizer_load_json(const char *json, size_t len, const char *name, const eh_tokenizer_params *params,
                                     eh_error *err)
{
    eh_tokenizer_params p = params ? *params : eh_tokenizer_default_params();
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : len;
        eh_fail(err, EH_EINVAL, "%s: not valid JSON (near byte %zu of %zu)", name, off, len);
        return NULL;
    }
    eh_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        eh_fail(err, EH_ENOMEM, "%s: out of memory", name);
        return NULL;
    }
    t->params = p;
    int have_bl = 0;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dty = dec && !cJSON_IsNull(dec) ? type_of(dec) : NULL;
    int rc = -1;
    if (!cJSON_IsObject(root))
        eh_fail(err, EH_EINVAL, "%s: not a tokenizer.json (top level is not an object)", name);
    else if (added && !cJSON_IsArray(added))
        eh_fail(err, EH_EINVAL, "%s: added_tokens is not an array", name);
    else if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "truncation")) &&
             cJSON_GetObjectItemCaseSensitive(root, "truncation"))
        eh_fail(err, EH_EFORMAT, "%s: truncation is not supported", name);
    else if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "padding")) &&
             cJSON_GetObjectItemCaseSensitive(root, "padding"))
        eh_fail(err, EH_EFORMAT, "%s: padding is not supported", name);
    else if (dty && strcmp(dty, "ByteLevel") != 0)
        eh_fail(err, EH_EFORMAT, "%s: decoder %s is not supported", name, dty);
    else if (dec && !cJSON_IsNull(dec) && !dty)
        eh_fail(err, EH_EINVAL, "%s: decoder has no type", name);
    else if (!load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), name, err) &&
             !load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), name, &have_bl, err) &&
             !load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), added, name, err) &&
             !load_added(t, added, name, err) &&
             !load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), name, err)) {
        if (!have_bl)
            eh_fail(err, EH_EFORMAT, "%s: pre_tokenizer without ByteLevel is not supported", name);
        else
            rc = 0;
    }
    cJSON_Delete(root);
    if (rc == 0) {
        memset(t->char_byte, 0xFF, sizeof t->char_byte);
        for (int b = 0; b < 256; b++) {
            char u[4];
            uint32_t c = byte_char(b);
            t->char_byte[c] = (int16_t)b;
            t->byte_cp[b] = c;
            t->byte_id[b] = eh_tokenizer_token_to_id(t, u, (size_t)utf8_put(c, u));
        }
        uint32_t max_cap = 0;
        for (int i = 0; i < t->n_steps; i++) {
            uint32_t c = 0;
            pcre2_pattern_info(t->steps[i].re, PCRE2_INFO_CAPTURECOUNT, &c);
            if (c > max_cap)
                max_cap = c;
        }
        t->md = pcre2_match_data_create(max_cap + 1, NULL);
        if (p.cache_words) {
            size_t cap = 16;
            while (cap < p.cache_words * 2)
                cap <<= 1;
            t->cache = calloc(cap, sizeof *t->cache);
            t->cache_mask = cap - 1;
        }
        if (!t->md || (p.cache_words && !t->cache)) {
            eh_fail(err, EH_ENOMEM, "%s: out of memory", name);
            rc = -1;
        }
    }
    if (rc) {
        eh_tokenizer_free(t);
        return NULL;
    }
    return t;
}

eh_tokenizer *eh_tokenizer_load(const char *path, const eh_tokenizer_params *params, eh_error *err)
{
    eh_tokenizer_params p = params ? *params : eh_tokenizer_default_params();
    FILE *f = fopen(path, "rb");
    if (!f) {
        eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= p.max_file) {
                fclose(f);
                free(buf);
                eh_fail(err, EH_ELIMIT, "%s: larger than the %zu bytes allowed for a tokenizer.json", path, p.max_file);
                return NULL;
            }
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > p.max_file)
                cap = p.max_file + 1;
            char *nb = realloc(buf, cap);
            if (!nb) {
                fclose(f);
                free(buf);
                eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || n > p.max_file) {
        free(buf);
        if (bad)
            eh_fail(err, EH_EIO, "%s: read error", path);
        else
            eh_fail(err, EH_ELIMIT, "%s: larger than the %zu bytes allowed for a tokenizer.json", path, p.max_file);
        return NULL;
    }
    eh_tokenizer *t = eh_tokenizer_load_json(buf, n, path, &p, err);
    free(buf);
    return t;
}
