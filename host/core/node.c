/* node.c — the typed tree shared by config, model specs and backends. */
#include "evalhost/node.h"

#include <stdlib.h>
#include <string.h>

eh_node *eh_node_new(eh_node_type type)
{
    eh_node *n = calloc(1, sizeof *n);
    if (n)
        n->type = type;
    return n;
}

eh_node *eh_node_new_string(const char *s, size_t len)
{
    eh_node *n = eh_node_new(EH_NODE_STRING);
    if (!n)
        return NULL;
    n->u.str.data = malloc(len + 1);
    if (!n->u.str.data) {
        free(n);
        return NULL;
    }
    memcpy(n->u.str.data, s, len);
    n->u.str.data[len] = '\0';
    n->u.str.len = len;
    return n;
}

void eh_node_free(eh_node *n)
{
    if (!n)
        return;
    if (n->type == EH_NODE_STRING) {
        free(n->u.str.data);
    } else if (n->type == EH_NODE_SEQ || n->type == EH_NODE_MAP) {
        for (size_t i = 0; i < n->u.list.count; i++) {
            eh_node_free(n->u.list.items[i]);
            if (n->u.list.keys)
                free(n->u.list.keys[i]);
        }
        free(n->u.list.items);
        free(n->u.list.keys);
    }
    free(n);
}

eh_node *eh_node_clone(const eh_node *n)
{
    if (!n)
        return NULL;
    if (n->type == EH_NODE_STRING) {
        eh_node *c = eh_node_new_string(n->u.str.data, n->u.str.len);
        if (c) {
            c->line = n->line;
            c->col = n->col;
        }
        return c;
    }
    eh_node *c = eh_node_new(n->type);
    if (!c)
        return NULL;
    c->line = n->line;
    c->col = n->col;
    if (n->type != EH_NODE_SEQ && n->type != EH_NODE_MAP) {
        c->u = n->u;
        return c;
    }
    for (size_t i = 0; i < n->u.list.count; i++) {
        eh_node *item = eh_node_clone(n->u.list.items[i]);
        int rc =
            item ? (n->type == EH_NODE_MAP ? eh_node_set(c, n->u.list.keys[i], item) : eh_node_append(c, item)) : -1;
        if (rc != 0) {
            eh_node_free(c);
            return NULL;
        }
    }
    return c;
}

static int grow(eh_node *n)
{
    if (n->u.list.count < n->u.list.cap)
        return 0;
    size_t cap = n->u.list.cap ? n->u.list.cap * 2 : 4;
    eh_node **items = realloc(n->u.list.items, cap * sizeof *items);
    if (!items)
        return -1;
    n->u.list.items = items;
    if (n->type == EH_NODE_MAP) {
        char **keys = realloc(n->u.list.keys, cap * sizeof *keys);
        if (!keys)
            return -1;
        n->u.list.keys = keys;
    }
    n->u.list.cap = cap;
    return 0;
}

int eh_node_append(eh_node *seq, eh_node *child)
{
    if (!seq || seq->type != EH_NODE_SEQ || grow(seq) != 0) {
        eh_node_free(child);
        return -1;
    }
    seq->u.list.items[seq->u.list.count++] = child;
    return 0;
}

int eh_node_set(eh_node *map, const char *key, eh_node *child)
{
    if (!map || map->type != EH_NODE_MAP) {
        eh_node_free(child);
        return -1;
    }
    for (size_t i = 0; i < map->u.list.count; i++) {
        if (strcmp(map->u.list.keys[i], key) == 0) {
            eh_node_free(map->u.list.items[i]);
            map->u.list.items[i] = child;
            return 0;
        }
    }
    char *k = strdup(key);
    if (!k || grow(map) != 0) {
        free(k);
        eh_node_free(child);
        return -1;
    }
    map->u.list.keys[map->u.list.count] = k;
    map->u.list.items[map->u.list.count++] = child;
    return 0;
}

const eh_node *eh_node_get(const eh_node *map, const char *key)
{
    if (!map || map->type != EH_NODE_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->u.list.count; i++)
        if (strcmp(map->u.list.keys[i], key) == 0)
            return map->u.list.items[i];
    return NULL;
}

const eh_node *eh_node_at(const eh_node *root, const char *path)
{
    char part[256];
    const eh_node *n = root;
    while (n && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof part)
            return NULL;
        memcpy(part, path, len);
        part[len] = '\0';
        n = eh_node_get(n, part);
        path += len + (dot ? 1 : 0);
    }
    return n;
}

const char *eh_node_str(const eh_node *map, const char *key, const char *dflt)
{
    const eh_node *n = eh_node_get(map, key);
    return n && n->type == EH_NODE_STRING ? n->u.str.data : dflt;
}

int64_t eh_node_int(const eh_node *map, const char *key, int64_t dflt)
{
    const eh_node *n = eh_node_get(map, key);
    if (!n)
        return dflt;
    if (n->type == EH_NODE_INT)
        return n->u.integer;
    if (n->type == EH_NODE_FLOAT)
        return (int64_t)n->u.number;
    return dflt;
}

double eh_node_num(const eh_node *map, const char *key, double dflt)
{
    const eh_node *n = eh_node_get(map, key);
    if (!n)
        return dflt;
    if (n->type == EH_NODE_INT)
        return (double)n->u.integer;
    if (n->type == EH_NODE_FLOAT)
        return n->u.number;
    return dflt;
}

int eh_node_bool(const eh_node *map, const char *key, int dflt)
{
    const eh_node *n = eh_node_get(map, key);
    return n && n->type == EH_NODE_BOOL ? n->u.boolean : dflt;
}
