/* node.h — a small typed tree (the YAML 1.2 core schema's values), the one
 * representation that config, model specs and backends share.  Lua tables
 * convert to and from it in exactly one place (host/lua/l_node.c). */
#ifndef EVALHOST_NODE_H
#define EVALHOST_NODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum eh_node_type {
    EH_NODE_NULL,
    EH_NODE_BOOL,
    EH_NODE_INT,
    EH_NODE_FLOAT,
    EH_NODE_STRING,
    EH_NODE_SEQ,
    EH_NODE_MAP,
} eh_node_type;

typedef struct eh_node eh_node;
struct eh_node {
    eh_node_type type;
    int line, col;        /* 1-based source position; 0 when built in code */
    union {
        int boolean;
        int64_t integer;
        double number;
        struct {
            char *data;
            size_t len;
        } str;   /* NUL-terminated, owned */
        struct {                                  /* SEQ and MAP */
            eh_node **items;                      /* owned */
            char **keys;                          /* MAP only, owned */
            size_t count, cap;
        } list;
    } u;
};

eh_node *eh_node_new(eh_node_type type);
eh_node *eh_node_new_string(const char *s, size_t len);
void eh_node_free(eh_node *n);                    /* NULL is a no-op */
eh_node *eh_node_clone(const eh_node *n);

/* Appends (SEQ) or sets (MAP, replacing an existing key); takes ownership
 * of child.  Returns 0 or -1 on allocation failure (child freed). */
int eh_node_append(eh_node *seq, eh_node *child);
int eh_node_set(eh_node *map, const char *key, eh_node *child);

/* Lookups; NULL when absent or n is not a MAP. `path` in eh_node_at is
 * dotted ("run.out"). */
const eh_node *eh_node_get(const eh_node *map, const char *key);
const eh_node *eh_node_at(const eh_node *root, const char *path);
const char *eh_node_str(const eh_node *map, const char *key, const char *dflt);
int64_t eh_node_int(const eh_node *map, const char *key, int64_t dflt);
double eh_node_num(const eh_node *map, const char *key, double dflt);
int eh_node_bool(const eh_node *map, const char *key, int dflt);

#endif
