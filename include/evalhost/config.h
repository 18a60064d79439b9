/* config.h — YAML config loading (libyaml, YAML 1.2 core schema) into an
 * eh_node tree and `--set key.path=value` overrides (whose nodes have line 0:
 * no place in the file). */
#ifndef EVALHOST_CONFIG_H
#define EVALHOST_CONFIG_H

#include "evalhost/error.h"
#include "evalhost/node.h"

typedef struct eh_config_limits {
    int max_depth;          /* nesting depth of maps/sequences; default 64 (limits.max_yaml_depth) */
    size_t max_nodes;       /* nodes after alias expansion; default 1000000 (limits.max_yaml_nodes) */
    size_t max_bytes;       /* size of the YAML text; default 16 MiB */
} eh_config_limits;

eh_config_limits eh_config_default_limits(void);

/* Parses YAML text.  `name` is used in messages ("config.yaml:3:5: ...").
 * Returns a tree (MAP for a config) or NULL with err set. */
eh_node *eh_yaml_parse(const char *text, size_t len, const char *name, const eh_config_limits *limits, eh_error *err);

/* Reads and parses a config file; it must be a mapping. */
eh_node *eh_config_load(const char *path, const eh_config_limits *limits, eh_error *err);

/* Parses one YAML scalar or flow value as `--set` does ("1e6" → float,
 * "[a,b]" → seq, "no" → string). */
eh_node *eh_yaml_parse_value(const char *text, eh_error *err);

/* Applies "a.b.c=value" to root, creating maps on the way. */
eh_status eh_config_set(eh_node *root, const char *assignment, eh_error *err);

/* Checks that root is a mapping (a config's shape); which keys it may hold
 * is checked in Lua against lua/evalhost/schema.lua.  `name` prefixes the
 * message. */
eh_status eh_config_validate(const eh_node *root, const char *name, eh_error *err);

/* Nearest of `candidates` (NULL-terminated) to `word` by edit distance, or NULL. */
const char *eh_nearest_word(const char *word, const char *const *candidates);

#endif
