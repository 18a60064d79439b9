/* config.c — YAML (libyaml events) to an eh_node tree under the YAML 1.2
 * core schema, with anchors/aliases (expansion capped), `<<` merge keys,
 * duplicate keys and unknown tags rejected with their line and `--set`
 * overrides.  Which keys a config may hold is lua/evalhost/schema.lua's
 * business (checked by lua/evalhost/config_check.lua before the script runs). */
#include "evalhost/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "evalhost/grow.h"

eh_config_limits eh_config_default_limits(void)
{
    eh_config_limits l = { .max_depth = 64, .max_nodes = 1000000, .max_bytes = 16u << 20 };
    return l;
}

/* ---- scalar resolution (YAML 1.2 core schema) ------------------------- */

static int match_all(const char *s, int (*pred)(int))
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!pred((unsigned char)*s))
            return 0;
    return 1;
}

static int is_dec(int c)
{
    return c >= '0' && c <= '9';
}
static int is_oct(int c)
{
    return c >= '0' && c <= '7';
}
static int is_hex(int c)
{
    return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_float_text(const char *s)
{
    const char *p = s;
    int digits = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (is_dec(*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (is_dec(*p)) {
            p++;
            digits++;
        }
    }
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_dec(*p))
            return 0;
        while (is_dec(*p))
            p++;
    }
    return *p == '\0';
}

/* Makes the node for a plain (unquoted, untagged) scalar. */
static eh_node *resolve_plain(const char *s, size_t len)
{
    eh_node *n;
    if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return eh_node_new(EH_NODE_NULL);
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "false") || !strcmp(s, "False") ||
        !strcmp(s, "FALSE")) {
        n = eh_node_new(EH_NODE_BOOL);
        if (n)
            n->u.boolean = (s[0] == 't' || s[0] == 'T');
        return n;
    }
    const char *digits = s + (s[0] == '-' || s[0] == '+');
    int base = 0;
    if (match_all(digits, is_dec))
        base = 10;
    else if (s[0] == '0' && s[1] == 'o' && match_all(s + 2, is_oct))
        base = 8;
    else if (s[0] == '0' && s[1] == 'x' && match_all(s + 2, is_hex))
        base = 16;
    if (base) {
        errno = 0;
        long long v = strtoll(base == 10 ? s : s + 2, NULL, base);
        if (errno == 0) {
            n = eh_node_new(EH_NODE_INT);
            if (n)
                n->u.integer = v;
            return n;
        }
        /* out of range: falls through to float */
    }
    const char *sign_less = s + (s[0] == '-' || s[0] == '+');
    if (base || is_float_text(s) || !strcmp(sign_less, ".inf") || !strcmp(sign_less, ".Inf") ||
        !strcmp(sign_less, ".INF") || !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
        n = eh_node_new(EH_NODE_FLOAT);
        if (!n)
            return NULL;
        if (sign_less[0] == '.' && (sign_less[1] == 'i' || sign_less[1] == 'I'))
            n->u.number = s[0] == '-' ? -INFINITY : INFINITY;
        else if (s[0] == '.' && (s[1] == 'n' || s[1] == 'N'))
            n->u.number = NAN;
        else
            n->u.number = strtod(s, NULL);
        return n;
    }
    return eh_node_new_string(s, len);
}

/* ---- the event-driven builder ----------------------------------------- */

typedef struct anchor {
    char *name;
    eh_node *node;            /* borrowed from the tree being built */
} anchor;

typedef struct builder {
    yaml_parser_t parser;
    const char *name;
    const char *text;         /* the input, for hints about its bytes */
    size_t len;
    const eh_config_limits *limits;
    eh_error *err;
    size_t nodes;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
} builder;

static size_t count_nodes(const eh_node *n)
{
    size_t c = 1;
    if (n->type == EH_NODE_SEQ || n->type == EH_NODE_MAP)
        for (size_t i = 0; i < n->u.list.count; i++)
            c += count_nodes(n->u.list.items[i]);
    return c;
}

static eh_node *fail_at(builder *b, yaml_mark_t mark, eh_status code, const char *fmt, const char *arg)
{
    char what[EH_ERROR_MAX / 2];
    snprintf(what, sizeof what, fmt, arg);
    eh_fail(b->err, code, "%s:%zu:%zu: %s", b->name, (size_t)mark.line + 1, (size_t)mark.column + 1, what);
    return NULL;
}

static eh_node *fail_parser(builder *b)
{
    yaml_mark_t mark = b->parser.problem_mark;
    if (b->parser.error == YAML_READER_ERROR && b->text) {
        /* libyaml gives a reader error (bad UTF-8) a byte offset only: the
         * line and the column (in characters, a BOM none) are counted here */
        size_t off = b->parser.problem_offset < b->len ? b->parser.problem_offset : b->len, col = 0, line = 0;
        size_t i = b->len >= 3 && !memcmp(b->text, "\xEF\xBB\xBF", 3) && off >= 3 ? 3 : 0;
        for (; i < off; i++) {
            unsigned char c = (unsigned char)b->text[i];
            if (c == '\n')
                line++, col = 0;
            else if ((c & 0xC0) != 0x80)
                col++;
        }
        mark.line = line;
        mark.column = col;
        mark.index = off;
    }
    char what[EH_ERROR_MAX / 2];
    /* a tab is the usual culprit of libyaml's "cannot start any token" */
    int tab = b->text && mark.index < b->len && b->text[mark.index] == '\t';
    snprintf(what, sizeof what, "%s%s%s%s", b->parser.problem ? b->parser.problem : "syntax error",
             b->parser.context ? " " : "", b->parser.context ? b->parser.context : "",
             tab ? " (a tab: YAML indents with spaces only)" : "");
    return fail_at(b, mark, EH_EINVAL, "%s", what);
}

static int remember_anchor(builder *b, const char *name, eh_node *node)
{
    if (eh_grow((void **)&b->anchors, &b->cap_anchors, b->n_anchors + 1, sizeof *b->anchors, 8))
        return -1;
    char *copy = strdup(name);
    if (!copy)
        return -1;
    b->anchors[b->n_anchors].name = copy;
    b->anchors[b->n_anchors++].node = node;
    return 0;
}

static const char *core_tag(const char *tag)
{
    static const char prefix[] = "tag:yaml.org,2002:";
    if (!tag)
        return NULL;
    if (strncmp(tag, prefix, sizeof prefix - 1) == 0)
        return tag + sizeof prefix - 1;
    return tag;
}

static eh_node *scalar_node(builder *b, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = core_tag((const char *)ev->data.scalar.tag);
    eh_node *n;
    if (strlen(text) != len)
        return fail_at(b, ev->start_mark, EH_EINVAL, "%s", "NUL byte in a scalar");
    if (tag && strcmp(tag, "!") != 0) {
        if (!strcmp(tag, "str")) {
            n = eh_node_new_string(text, len);
        } else if (!strcmp(tag, "int") || !strcmp(tag, "float") || !strcmp(tag, "bool") || !strcmp(tag, "null")) {
            n = resolve_plain(text, len);
            int ok = n && ((!strcmp(tag, "int") && n->type == EH_NODE_INT) ||
                           (!strcmp(tag, "float") && (n->type == EH_NODE_FLOAT || n->type == EH_NODE_INT)) ||
                           (!strcmp(tag, "bool") && n->type == EH_NODE_BOOL) ||
                           (!strcmp(tag, "null") && n->type == EH_NODE_NULL));
            if (!ok) {
                eh_node_free(n);
                return fail_at(b, ev->start_mark, EH_EINVAL, "value does not match its tag !!%s", tag);
            }
            if (!strcmp(tag, "float") && n->type == EH_NODE_INT) {
                double v = (double)n->u.integer;
                n->type = EH_NODE_FLOAT;
                n->u.number = v;
            }
        } else {
            return fail_at(b, ev->start_mark, EH_EFORMAT,
                           "unsupported tag '%s' (configs are data: only the core schema's tags are allowed)",
                           (const char *)ev->data.scalar.tag);
        }
    } else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag) {
        n = resolve_plain(text, len);
    } else {
        n = eh_node_new_string(text, len);
    }
    if (!n)
        return fail_at(b, ev->start_mark, EH_ENOMEM, "%s", "out of memory");
    return n;
}

static eh_node *parse_node(builder *b, yaml_event_t *ev, int depth);

static int check_collection_tag(builder *b, const yaml_event_t *ev, const char *tag_raw, const char *want)
{
    const char *tag = core_tag(tag_raw);
    if (tag && strcmp(tag, want) != 0) {
        fail_at(b, ev->start_mark, EH_EFORMAT,
                "unsupported tag '%s' (configs are data: only the core schema's tags are allowed)", tag_raw);
        return -1;
    }
    return 0;
}

/* Merges the keys of src (a MAP) into dst where dst lacks them. */
static int merge_into(eh_node *dst, const eh_node *src)
{
    for (size_t i = 0; i < src->u.list.count; i++) {
        if (eh_node_get(dst, src->u.list.keys[i]))
            continue;
        eh_node *c = eh_node_clone(src->u.list.items[i]);
        if (!c || eh_node_set(dst, src->u.list.keys[i], c) != 0)
            return -1;
    }
    return 0;
}

static eh_node *parse_mapping(builder *b, yaml_event_t *start, int depth)
{
    eh_node *map = eh_node_new(EH_NODE_MAP);
    eh_node *pending_merge = NULL;   /* `<<` values apply after explicit keys */
    if (!map)
        return fail_at(b, start->start_mark, EH_ENOMEM, "%s", "out of memory");
    map->line = (int)start->start_mark.line + 1;
    map->col = (int)start->start_mark.column + 1;
    for (;;) {
        yaml_event_t kev;
        if (!yaml_parser_parse(&b->parser, &kev))
            goto parser_fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            fail_at(b, kev.start_mark, EH_EINVAL, "%s", "mapping keys must be scalars");
            yaml_event_delete(&kev);
            goto fail;
        }
        char *key = strdup((const char *)kev.data.scalar.value);
        yaml_mark_t kmark = kev.start_mark;
        int is_merge = kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(key ? key : "", "<<");
        yaml_event_delete(&kev);
        if (!key) {
            fail_at(b, kmark, EH_ENOMEM, "%s", "out of memory");
            goto fail;
        }
        yaml_event_t vev;
        if (!yaml_parser_parse(&b->parser, &vev)) {
            free(key);
            goto parser_fail;
        }
        eh_node *value = parse_node(b, &vev, depth + 1);
        yaml_event_delete(&vev);
        if (!value) {
            free(key);
            goto fail;
        }
        if (is_merge) {
            free(key);
            if (value->type != EH_NODE_MAP && value->type != EH_NODE_SEQ) {
                eh_node_free(value);
                fail_at(b, kmark, EH_EINVAL, "%s", "'<<' merge needs a mapping or a list of mappings");
                goto fail;
            }
            eh_node_free(pending_merge);
            pending_merge = value;
            continue;
        }
        if (eh_node_get(map, key)) {
            const eh_node *first = eh_node_get(map, key);
            char what[EH_ERROR_MAX / 2];
            snprintf(what, sizeof what, "duplicate key '%.60s' (first at line %d)", key, first->line);
            free(key);
            eh_node_free(value);
            fail_at(b, kmark, EH_EINVAL, "%s", what);
            goto fail;
        }
        value->line = (int)kmark.line + 1;
        value->col = (int)kmark.column + 1;
        int rc = eh_node_set(map, key, value);
        free(key);
        if (rc != 0) {
            fail_at(b, kmark, EH_ENOMEM, "%s", "out of memory");
            goto fail;
        }
    }
    if (pending_merge) {
        int rc = 0;
        if (pending_merge->type == EH_NODE_MAP) {
            rc = merge_into(map, pending_merge);
        } else {
            for (size_t i = 0; rc == 0 && i < pending_merge->u.list.count; i++) {
                const eh_node *m = pending_merge->u.list.items[i];
                rc = m->type == EH_NODE_MAP ? merge_into(map, m) : -1;
            }
        }
        eh_node_free(pending_merge);
        pending_merge = NULL;
        if (rc != 0) {
            fail_at(b, start->start_mark, EH_EINVAL, "%s", "'<<' merge needs mappings");
            goto fail;
        }
    }
    return map;
parser_fail:
    fail_parser(b);
fail:
    eh_node_free(pending_merge);
    eh_node_free(map);
    return NULL;
}

static eh_node *parse_sequence(builder *b, yaml_event_t *start, int depth)
{
    eh_node *seq = eh_node_new(EH_NODE_SEQ);
    if (!seq)
        return fail_at(b, start->start_mark, EH_ENOMEM, "%s", "out of memory");
    seq->line = (int)start->start_mark.line + 1;
    seq->col = (int)start->start_mark.column + 1;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&b->parser, &ev)) {
            fail_parser(b);
            eh_node_free(seq);
            return NULL;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return seq;
        }
        eh_node *item = parse_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!item || eh_node_append(seq, item) != 0) {
            if (item)
                fail_at(b, start->start_mark, EH_ENOMEM, "%s", "out of memory");
            eh_node_free(seq);
            return NULL;
        }
    }
}

static eh_node *parse_node(builder *b, yaml_event_t *ev, int depth)
{
    eh_node *n = NULL;
    const char *anchor_name = NULL;
    if (depth > b->limits->max_depth) {
        char lim[64];
        snprintf(lim, sizeof lim, "%d", b->limits->max_depth);
        return fail_at(b, ev->start_mark, EH_ELIMIT, "nesting deeper than limits.max_yaml_depth (%s)", lim);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor_name = (const char *)ev->data.scalar.anchor;
        n = scalar_node(b, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor_name = (const char *)ev->data.sequence_start.anchor;
        if (check_collection_tag(b, ev, (const char *)ev->data.sequence_start.tag, "seq") != 0)
            return NULL;
        n = parse_sequence(b, ev, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        anchor_name = (const char *)ev->data.mapping_start.anchor;
        if (check_collection_tag(b, ev, (const char *)ev->data.mapping_start.tag, "map") != 0)
            return NULL;
        n = parse_mapping(b, ev, depth);
        break;
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        for (size_t i = b->n_anchors; i-- > 0;) {
            if (strcmp(b->anchors[i].name, name) == 0) {
                size_t add = count_nodes(b->anchors[i].node);
                if (b->nodes + add > b->limits->max_nodes) {
                    char lim[64];
                    snprintf(lim, sizeof lim, "%zu", b->limits->max_nodes);
                    return fail_at(b, ev->start_mark, EH_ELIMIT,
                                   "alias expansion exceeds limits.max_yaml_nodes (%s nodes)", lim);
                }
                b->nodes += add;
                n = eh_node_clone(b->anchors[i].node);
                if (!n)
                    return fail_at(b, ev->start_mark, EH_ENOMEM, "%s", "out of memory");
                return n;
            }
        }
        return fail_at(b, ev->start_mark, EH_EINVAL, "unknown alias '*%s'", name);
    }
    default: return fail_at(b, ev->start_mark, EH_EINVAL, "%s", "unexpected YAML event");
    }
    if (!n)
        return NULL;
    if (++b->nodes > b->limits->max_nodes) {
        eh_node_free(n);
        char lim[64];
        snprintf(lim, sizeof lim, "%zu", b->limits->max_nodes);
        return fail_at(b, ev->start_mark, EH_ELIMIT, "more than limits.max_yaml_nodes (%s) nodes", lim);
    }
    if (n->line == 0) {
        n->line = (int)ev->start_mark.line + 1;
        n->col = (int)ev->start_mark.column + 1;
    }
    /* The anchor points into the tree; the tree outlives the builder. */
    if (anchor_name && remember_anchor(b, anchor_name, n) != 0) {
        eh_node_free(n);
        return fail_at(b, ev->start_mark, EH_ENOMEM, "%s", "out of memory");
    }
    return n;
}

eh_node *eh_yaml_parse(const char *text, size_t len, const char *name, const eh_config_limits *limits, eh_error *err)
{
    eh_config_limits dflt = eh_config_default_limits();
    builder b = { .name = name ? name : "<yaml>",
                  .text = text,
                  .len = len,
                  .limits = limits ? limits : &dflt,
                  .err = err };
    eh_node *root = NULL;
    eh_error_clear(
        err);   /* err->code is read below to tell "empty" from "failed"; a caller's stale error must not count */
    if (len > b.limits->max_bytes) {
        eh_fail(err, EH_ELIMIT, "%s: %zu bytes exceeds the config size limit (%zu)", b.name, len, b.limits->max_bytes);
        return NULL;
    }
    if (!yaml_parser_initialize(&b.parser)) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", b.name);
        return NULL;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    int done = 0, docs = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&b.parser, &ev)) {
            fail_parser(&b);
            eh_node_free(root);
            root = NULL;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT: break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                fail_at(&b, ev.start_mark, EH_EINVAL, "%s", "more than one YAML document");
                eh_node_free(root);
                root = NULL;
                done = 1;
            }
            break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default:
            root = parse_node(&b, &ev, 1);
            if (!root)
                done = 1;
            break;
        }
        yaml_event_delete(&ev);
    }
    for (size_t i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    yaml_parser_delete(&b.parser);
    if (!root && docs <= 1 && (!err || err->code == EH_OK))
        root = eh_node_new(EH_NODE_NULL);   /* an empty document */
    return root;
}

eh_node *eh_config_load(const char *path, const eh_config_limits *limits, eh_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eh_fail(err, EH_EIO, "%s: cannot open config: %s", path, strerror(errno));
        return NULL;
    }
    eh_config_limits dflt = eh_config_default_limits();
    const eh_config_limits *lim = limits ? limits : &dflt;
    char *buf = malloc(lim->max_bytes + 1);
    if (!buf) {
        fclose(f);
        eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    size_t len = fread(buf, 1, lim->max_bytes + 1, f);
    int read_error = ferror(f) ? errno : 0;
    fclose(f);
    if (read_error) {
        free(buf);
        /* a folder opens but does not read: say so ("Is a directory") */
        eh_fail(err, EH_EIO, "%s: cannot read config: %s", path, strerror(read_error));
        return NULL;
    }
    eh_node *root = eh_yaml_parse(buf, len, path, lim, err);
    free(buf);
    if (!root)
        return NULL;
    if (root->type == EH_NODE_NULL) {           /* an empty file is an empty config */
        eh_node_free(root);
        root = eh_node_new(EH_NODE_MAP);
        if (!root)
            eh_fail(err, EH_ENOMEM, "%s: out of memory", path);
        return root;
    }
    if (root->type != EH_NODE_MAP) {
        eh_fail(err, EH_EINVAL, "%s:%d:%d: a config must be a mapping of sections", path, root->line, root->col);
        eh_node_free(root);
        return NULL;
    }
    if (eh_config_validate(root, path, err) != EH_OK) {
        eh_node_free(root);
        return NULL;
    }
    return root;
}

eh_node *eh_yaml_parse_value(const char *text, eh_error *err)
{
    if (*text == '\0')
        return eh_node_new_string("", 0);
    eh_node *n = eh_yaml_parse(text, strlen(text), "--set value", NULL, err);
    const char *lead = text + strspn(text, " \t");
    if (n && n->type == EH_NODE_MAP && *lead != '{') {
        /* "a: b" was meant literally far more often than as a mapping; a
         * flow mapping {a: b} is a mapping */
        eh_node_free(n);
        return eh_node_new_string(text, strlen(text));
    }
    return n;
}

/* A --set value has no place in the file: line 0 tells messages to name the
 * assignment instead (its parse gave it "--set value:1:1"). */
static void forget_positions(eh_node *n)
{
    n->line = n->col = 0;
    if (n->type == EH_NODE_SEQ || n->type == EH_NODE_MAP)
        for (size_t i = 0; i < n->u.list.count; i++)
            forget_positions(n->u.list.items[i]);
}

eh_status eh_config_set(eh_node *root, const char *assignment, eh_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return eh_fail(err, EH_EINVAL, "--set %s: expected key.path=value", assignment);
    size_t klen = (size_t)(eq - assignment);
    /* run..out or run. would set another key than the one written */
    int empty_part = assignment[0] == '.' || eq[-1] == '.';
    for (size_t i = 1; i < klen; i++)
        empty_part |= assignment[i] == '.' && assignment[i - 1] == '.';
    if (empty_part)
        return eh_fail(err, EH_EINVAL, "--set %s: empty part in the key '%.*s' (write key.path=value)", assignment,
                       (int)klen, assignment);
    char *path = strndup(assignment, klen);
    if (!path)
        return eh_fail(err, EH_ENOMEM, "out of memory");
    eh_node *value = eh_yaml_parse_value(eq + 1, err);
    if (!value) {
        /* the parser named "--set value:L:C"; name the assignment instead */
        if (err && err->code != EH_ENOMEM) {
            char why[EH_ERROR_MAX];
            const char *m = strstr(err->msg, "--set value:");
            const char *text = m ? strchr(m + 12, ' ') : NULL;
            snprintf(why, sizeof why, "%s", text ? text + 1 : err->msg);
            eh_status code = err->code;
            eh_fail(err, code, "--set %s: the value is not valid YAML: %s", assignment, why);
        }
        free(path);
        return err ? err->code : EH_EINVAL;
    }
    forget_positions(value);
    eh_node *cur = root;
    char *save = NULL;
    char *part = strtok_r(path, ".", &save);
    eh_status rc = EH_OK;
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            if (eh_node_set(cur, part, value) != 0)
                rc = eh_fail(err, EH_ENOMEM, "out of memory");
            value = NULL;
            break;
        }
        eh_node *child = (eh_node *)eh_node_get(cur, part);
        if (!child || child->type != EH_NODE_MAP) {
            if (child && child->type == EH_NODE_SEQ) {
                /* a list's items have no names to set one by: the whole list is set */
                rc = eh_fail(err, EH_EINVAL,
                             "--set %s: '%s' is not a section: %.*s is a list; set the whole list, "
                             "e.g. --set '%.*s=[...]'",
                             assignment, part, (int)(part + strlen(part) - path), assignment,
                             (int)(part + strlen(part) - path), assignment);
                break;
            }
            if (child && child->type != EH_NODE_NULL) {
                rc = eh_fail(err, EH_EINVAL, "--set %s: '%s' is not a section: %.*s holds a value", assignment, part,
                             (int)(part + strlen(part) - path), assignment);
                break;
            }
            child = eh_node_new(EH_NODE_MAP);
            if (!child || eh_node_set(cur, part, child) != 0) {
                rc = eh_fail(err, EH_ENOMEM, "out of memory");
                break;
            }
        }
        cur = child;
        part = next;
    }
    if (!part && rc == EH_OK)
        rc = eh_fail(err, EH_EINVAL, "--set %s: empty key", assignment);
    eh_node_free(value);
    free(path);
    return rc;
}

/* The key's letters without case, '_' or '-': batchSize, batch-size and
 * batch_size all read as "batchsize" (other tools' spellings). */
static size_t fold_key(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '_' || c == '-')
            continue;
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[n] = '\0';
    return n;
}

/* Edits between a and b, a swap of two neighbours counting one (nmae ->
 * name): the optimal-string-alignment distance. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            size_t best = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *eh_nearest_word(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    char w[80], c[80];
    size_t len = fold_key(word, w, sizeof w);
    for (size_t i = 0; candidates[i]; i++) {
        fold_key(candidates[i], c, sizeof c);
        size_t d = edit_distance(w, c);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    /* about one slip per four letters: a suggestion further off than that
     * names an unrelated key (max_tokens is no misspelt backend) */
    size_t allowed = len < 4 ? 1 : len / 4 + 1;
    return best && best_d <= allowed ? best : NULL;
}

eh_status eh_config_validate(const eh_node *root, const char *name, eh_error *err)
{
    if (!root || root->type != EH_NODE_MAP)     /* a list has no keys to read */
        return eh_fail(err, EH_EINVAL, "%s: a config must be a mapping of sections", name);
    return EH_OK;
}
