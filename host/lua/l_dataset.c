/* l_dataset.c — evalhost.dataset: the Dataset userdata over the C index.
 * A pair is a plain table sharing the evalhost.Pair metatable, whose
 * methods decode on demand: pair:image() decodes on every call (never
 * cached: the caller owns and closes each Image).  `pair.image` works too
 * (SPEC §3): __index decodes and returns the Image, which Images' __call
 * turns back into itself, so `pair:image()` on the same key returns it; on a
 * bad image it returns a function that gives `nil, message`.  Which dataset a
 * pair came from is kept in a weak-keyed registry table, so pairs stay
 * plain data for the report. */
#include <stdlib.h>
#include <string.h>

#include "evalhost/dataset.h"
#include "evalhost/lua_bind.h"

#define DATASET_META "evalhost.Dataset"
#define PAIR_META "evalhost.Pair"
#define OWNER_KEY "evalhost.Pair.owner"     /* registry: pair -> {Dataset, c, i} (weak keys) */
#define DECODE_KEY "evalhost.dataset.json"  /* registry: evalhost.json.decode, for nested fields */

typedef struct ldataset {
    eh_lua_handle h;            /* h.p: the eh_dataset, NULL when closed */
    size_t max_string;          /* pass-through strings longer than this wait for pair:field() */
} ldataset;

static void ds_free(void *ds)
{
    eh_dataset_free(ds);
}

static void ds_describe(lua_State *L, void *ds)
{
    lua_pushfstring(L, "evalhost.Dataset (%s, %d pairs)", eh_dataset_path(ds), (int)eh_dataset_total(ds));
}

static const eh_lua_type ds_type = {
    .mt = DATASET_META,
    .what = "Dataset",
    .free = ds_free,
    .describe = ds_describe,
    .closed = "evalhost.Dataset (closed)",
};

static ldataset *check_dataset(lua_State *L, int idx)
{
    eh_lua_handle_check(L, idx, &ds_type);
    return lua_touserdata(L, idx);
}

/* ---- options ------------------------------------------------------------- */

static size_t opt_size(lua_State *L, int idx, const char *key)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok || v < 1)
        luaL_error(L, "dataset.open: option %s must be a positive integer", key);
    return (size_t)v;
}

static const char *opt_string(lua_State *L, int idx, const char *key)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "dataset.open: option %s must be a string (a field name)", key);
    return lua_tostring(L, idx);
}

static eh_dataset_format parse_format(lua_State *L, const char *s)
{
    if (strcmp(s, "auto") == 0)
        return EH_DATASET_AUTO;
    if (strcmp(s, "json") == 0)
        return EH_DATASET_JSON;
    if (strcmp(s, "jsonl") == 0)
        return EH_DATASET_JSONL;
    luaL_error(L, "dataset.open: format must be auto, json or jsonl (got \"%s\")", s);
    return EH_DATASET_AUTO;
}

/* limits = {max_pairs=, max_json_depth=, max_string={id=, instruction=}} */
static void apply_limits(lua_State *L, int t, eh_dataset_params *p)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "max_pairs") == 0) {
            p->max_pairs = opt_size(L, -1, "limits.max_pairs");
        } else if (strcmp(k, "max_json_depth") == 0) {
            p->max_json_depth = (int)opt_size(L, -1, "limits.max_json_depth");
        } else if (strcmp(k, "max_string") == 0 && lua_istable(L, -1)) {
            lua_getfield(L, -1, "id");
            if (!lua_isnil(L, -1))
                p->max_id_len = opt_size(L, -1, "limits.max_string.id");
            lua_getfield(L, -2, "instruction");
            if (!lua_isnil(L, -1))
                p->max_instruction_len = opt_size(L, -1, "limits.max_string.instruction");
            lua_pop(L, 2);
        }   /* other limits.* keys belong to other modules */
        lua_pop(L, 1);
    }
}

/* Field names and format from the config's dataset: section, limits from
 * its limits: section; opts (the second argument) win. */
static eh_dataset_params read_params(lua_State *L, int opts)
{
    eh_dataset_params p = eh_dataset_default_params();
    const eh_node *cfg = eh_lua_host(L)->config;
    const eh_node *dcfg = eh_node_get(cfg, "dataset"), *lim = eh_node_get(cfg, "limits");
    p.field_id = eh_node_str(dcfg, "id", NULL);
    p.field_image = eh_node_str(dcfg, "image", NULL);
    p.field_instruction = eh_node_str(dcfg, "instruction", NULL);
    p.field_description = eh_node_str(dcfg, "description", NULL);
    p.field_category = eh_node_str(dcfg, "category", NULL);
    const char *fmt = eh_node_str(dcfg, "format", NULL);
    if (fmt)
        p.format = parse_format(L, fmt);
    int64_t v;
    if ((v = eh_node_int(lim, "max_pairs", 0)) > 0)
        p.max_pairs = (size_t)v;
    if ((v = eh_node_int(lim, "max_json_depth", 0)) > 0)
        p.max_json_depth = (int)v;
    const eh_node *ms = eh_node_get(lim, "max_string");
    if ((v = eh_node_int(ms, "id", 0)) > 0)
        p.max_id_len = (size_t)v;
    if ((v = eh_node_int(ms, "instruction", 0)) > 0)
        p.max_instruction_len = (size_t)v;
    if (lua_isnoneornil(L, opts))
        return p;
    luaL_checktype(L, opts, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, opts)) {   /* values stay referenced by opts while we open */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "dataset.open: option names are strings");
        const char *k = lua_tostring(L, -2);
        if (strcmp(k, "id") == 0)
            p.field_id = opt_string(L, -1, k);
        else if (strcmp(k, "image") == 0)
            p.field_image = opt_string(L, -1, k);
        else if (strcmp(k, "instruction") == 0)
            p.field_instruction = opt_string(L, -1, k);
        else if (strcmp(k, "description") == 0)
            p.field_description = opt_string(L, -1, k);
        else if (strcmp(k, "category") == 0)
            p.field_category = opt_string(L, -1, k);
        else if (strcmp(k, "format") == 0)
            p.format = parse_format(L, opt_string(L, -1, k));
        else if (strcmp(k, "limits") == 0 && lua_istable(L, -1))
            apply_limits(L, lua_gettop(L), &p);
        else
            luaL_error(L,
                       "dataset.open: unknown option \"%s\" (known: id, image, instruction, "
                       "description, category, format, limits)",
                       k);
        lua_pop(L, 1);
    }
    return p;
}

/* ---- pairs as tables ---------------------------------------------------- */

/* Pushes a field's value: strings unescaped, numbers, booleans, null as
 * evalhost.json.null, arrays and objects through evalhost.json.decode.
 * Returns 0 and pushes nothing when a string cannot be decoded (err set). */
static int push_value(lua_State *L, const eh_dataset_field *f, eh_error *err)
{
    switch (f->type) {
    case EH_JSON_STRING: {
        size_t len;
        char *s = eh_dataset_string(f, &len, err);
        if (!s)
            return 0;
        lua_pushlstring(L, s, len);
        free(s);
        return 1;
    }
    case EH_JSON_NUMBER:
        lua_pushlstring(L, f->raw, f->raw_len);
        if (!lua_stringtonumber(L, lua_tostring(L, -1)))
            lua_pushnumber(L, strtod(lua_tostring(L, -1), NULL));   /* out of Lua's syntax range */
        lua_remove(L, -2);
        return 1;
    case EH_JSON_TRUE:
    case EH_JSON_FALSE: lua_pushboolean(L, f->type == EH_JSON_TRUE); return 1;
    case EH_JSON_NULL:
        lua_pushlightuserdata(L, NULL);   /* evalhost.json.null */
        return 1;
    case EH_JSON_ARRAY:
    case EH_JSON_OBJECT:
        lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
        lua_pushlstring(L, f->raw, f->raw_len);
        lua_call(L, 1, 1);
        return 1;
    }
    return 0;
}

/* Pushes pair (c, i) of the Dataset at index `dsi` as a table. */
static void push_pair(lua_State *L, int dsi, size_t c, size_t i)
{
    ldataset *d = check_dataset(L, dsi);
    eh_dataset_pair p;
    eh_error err = { 0 };
    if (eh_dataset_get(d->h.p, c, i, &p, &err) != EH_OK)
        luaL_error(L, "%s", err.msg);
    lua_createtable(L, 0, 8);
    if (p.id) {
        lua_pushstring(L, p.id);
        lua_setfield(L, -2, "id");
    }
    lua_pushstring(L, p.category);
    lua_setfield(L, -2, "category");
    lua_pushinteger(L, (lua_Integer)p.index);
    lua_setfield(L, -2, "index");
    lua_pushstring(L, p.name);
    lua_setfield(L, -2, "name");
    if (p.error) {
        lua_pushstring(L, p.error);
        lua_setfield(L, -2, "error");
    }
    lua_newtable(L);   /* fields: the pass-through ones */
    for (size_t k = 0; k < p.nfields; k++) {
        eh_dataset_field f;
        eh_dataset_field_at(d->h.p, c, i, k, &f, NULL);
        if (f.role == EH_ROLE_INSTRUCTION || f.role == EH_ROLE_DESCRIPTION) {
            /* over-long text is already the pair's error: not copied */
            if (f.type != EH_JSON_STRING || f.raw_len > 6 * d->max_string || !push_value(L, &f, NULL))
                continue;
            lua_setfield(L, -3, f.role == EH_ROLE_INSTRUCTION ? "instruction" : "description");
        } else if (f.role == EH_ROLE_OTHER) {
            if (f.type == EH_JSON_STRING && f.raw_len > d->max_string)
                continue;   /* big pass-through strings: pair:field(name) */
            lua_pushlstring(L, f.key, f.key_len);
            if (push_value(L, &f, NULL))
                lua_rawset(L, -3);
            else
                lua_pop(L, 1);
        }
    }
    lua_setfield(L, -2, "fields");
    luaL_setmetatable(L, PAIR_META);

    lua_getfield(L, LUA_REGISTRYINDEX, OWNER_KEY);
    lua_pushvalue(L, -2);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, dsi);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)c);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, (lua_Integer)i);
    lua_rawseti(L, -2, 3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* The pair's owner: pushes the Dataset and returns it with c and i. */
static ldataset *pair_owner(lua_State *L, int pi, size_t *c, size_t *i)
{
    luaL_checktype(L, pi, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, OWNER_KEY);
    lua_pushvalue(L, pi);
    if (lua_rawget(L, -2) != LUA_TTABLE)
        luaL_error(L, "not a pair from evalhost.dataset");
    lua_rawgeti(L, -1, 2);
    *c = (size_t)lua_tointeger(L, -1);
    lua_rawgeti(L, -2, 3);
    *i = (size_t)lua_tointeger(L, -1);
    lua_rawgeti(L, -3, 1);
    lua_replace(L, -5);
    lua_pop(L, 3);
    return check_dataset(L, lua_gettop(L));
}

/* "cat/id (#i)" or "cat/#i" for messages. */
static void pair_where(const eh_dataset *ds, size_t c, size_t i, char *buf, size_t n)
{
    eh_dataset_pair p;
    eh_dataset_get(ds, c, i, &p, NULL);
    if (p.id)
        snprintf(buf, n, "%s/%.64s (#%zu)", p.category, p.id, p.index);
    else
        snprintf(buf, n, "%s/#%zu", p.category, p.index);
}

/* pair:image() → Image | nil, "cat/id (#i): image: why" */
static int pair_image(lua_State *L)
{
    size_t c, i;
    ldataset *d = pair_owner(L, 1, &c, &i);
    eh_error err = { 0 };
    eh_dataset_image_ref ref;
    eh_image *img = NULL;
    if (eh_dataset_image(d->h.p, c, i, &ref, &err) == EH_OK) {
        const eh_image_limits *lim = &eh_lua_host(L)->image_limits;
        img = ref.is_path ? eh_image_load(ref.data, lim, &err) : eh_image_decode_b64(ref.data, ref.len, lim, &err);
        eh_dataset_image_ref_release(d->h.p, &ref);
    }
    if (!img) {
        char where[256];
        pair_where(d->h.p, c, i, where, sizeof where);
        return eh_lua_failf(L, err.code, "%s: image: %s", where, err.msg);
    }
    eh_lua_push_image(L, img);
    return 1;
}

/* pair:image_source() → "base64", text | "path", path (the original as
 * the file holds it, undecoded: for ImageWriter:decode off this thread),
 * or nil, err as pair:image. */
static int pair_image_source(lua_State *L)
{
    size_t c, i;
    ldataset *d = pair_owner(L, 1, &c, &i);
    eh_error err = { 0 };
    eh_dataset_image_ref ref;
    if (eh_dataset_image(d->h.p, c, i, &ref, &err) != EH_OK) {
        char where[256];
        pair_where(d->h.p, c, i, where, sizeof where);
        return eh_lua_failf(L, err.code, "%s: image: %s", where, err.msg);
    }
    lua_pushstring(L, ref.is_path ? "path" : "base64");
    lua_pushlstring(L, ref.data, ref.is_path ? strlen(ref.data) : ref.len);
    eh_dataset_image_ref_release(d->h.p, &ref);
    return 2;
}

/* pair:field(name) → any field's value decoded now (nil when absent). */
static int pair_field(lua_State *L)
{
    size_t c, i, klen;
    ldataset *d = pair_owner(L, 1, &c, &i);
    const char *key = luaL_checklstring(L, 2, &klen);
    eh_dataset_pair p;
    eh_dataset_get(d->h.p, c, i, &p, NULL);
    for (size_t k = 0; k < p.nfields; k++) {
        eh_dataset_field f;
        eh_dataset_field_at(d->h.p, c, i, k, &f, NULL);
        if (f.key_len != klen || memcmp(f.key, key, klen) != 0)
            continue;
        eh_error err = { 0 };
        if (push_value(L, &f, &err))
            return 1;
        char where[256];
        pair_where(d->h.p, c, i, where, sizeof where);
        return eh_lua_failf(L, err.code, "%s: %s", where, err.msg);
    }
    lua_pushnil(L);
    return 1;
}

/* ---- Dataset methods ------------------------------------------------------ */

static size_t check_category(lua_State *L, ldataset *d, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    long c = eh_dataset_find_category(d->h.p, name);
    if (c < 0)
        luaL_error(L, "unknown category \"%s\" in %s (check with ds:count first)", name, eh_dataset_path(d->h.p));
    return (size_t)c;
}

static int ds_categories(lua_State *L)
{
    ldataset *d = check_dataset(L, 1);
    size_t n = eh_dataset_ncategories(d->h.p);
    lua_createtable(L, (int)n, 0);
    for (size_t c = 0; c < n; c++) {
        lua_pushstring(L, eh_dataset_category(d->h.p, c));
        lua_rawseti(L, -2, (lua_Integer)c + 1);
    }
    return 1;
}

/* ds:count(cat) → n | nil, "unknown category ..." (a config naming a
 * category the file lacks is data, not a script bug). */
static int ds_count(lua_State *L)
{
    ldataset *d = check_dataset(L, 1);
    const char *name = luaL_checkstring(L, 2);
    long c = eh_dataset_find_category(d->h.p, name);
    if (c < 0)
        return eh_lua_failf(L, EH_EINVAL, "unknown category \"%s\" in %s", name, eh_dataset_path(d->h.p));
    lua_pushinteger(L, (lua_Integer)eh_dataset_count(d->h.p, (size_t)c));
    return 1;
}

/* Iterator state in upvalues: 1 Dataset, 2 category (-1: all), 3 current
 * category, 4 next index. */
static int ds_pairs_next(lua_State *L)
{
    ldataset *d = check_dataset(L, lua_upvalueindex(1));
    lua_Integer only = lua_tointeger(L, lua_upvalueindex(2));
    size_t c = (size_t)lua_tointeger(L, lua_upvalueindex(3));
    size_t i = (size_t)lua_tointeger(L, lua_upvalueindex(4));
    while (c < eh_dataset_ncategories(d->h.p) && i > eh_dataset_count(d->h.p, c)) {
        if (only >= 0)
            return 0;
        c++;
        i = 1;
    }
    if (c >= eh_dataset_ncategories(d->h.p))
        return 0;
    lua_pushinteger(L, (lua_Integer)c);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_replace(L, lua_upvalueindex(4));
    lua_pushinteger(L, (lua_Integer)i);
    push_pair(L, lua_upvalueindex(1), c, i);
    return 2;
}

/* ds:pairs([cat]) → iterator of i, pair (every category in order without cat). */
static int ds_pairs(lua_State *L)
{
    ldataset *d = check_dataset(L, 1);
    lua_Integer c = lua_isnoneornil(L, 2) ? -1 : (lua_Integer)check_category(L, d, 2);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, c);
    lua_pushinteger(L, c < 0 ? 0 : c);
    lua_pushinteger(L, 1);
    lua_pushcclosure(L, ds_pairs_next, 4);
    return 1;
}

/* ds:pair(cat, i) → pair | nil, "no pair #i ..." */
static int ds_pair(lua_State *L)
{
    ldataset *d = check_dataset(L, 1);
    size_t c = check_category(L, d, 2);
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i < 1 || (size_t)i > eh_dataset_count(d->h.p, c))
        return eh_lua_failf(L, EH_EINVAL, "no pair #%lld in category \"%s\" (%zu pairs)", (long long)i,
                            eh_dataset_category(d->h.p, c), eh_dataset_count(d->h.p, c));
    push_pair(L, 1, c, (size_t)i);
    return 1;
}

static int ds_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)eh_dataset_total(check_dataset(L, 1)->h.p));
    return 1;
}

static int ds_path(lua_State *L)
{
    lua_pushstring(L, eh_dataset_path(check_dataset(L, 1)->h.p));
    return 1;
}

static int ds_hash(lua_State *L)
{
    const char *h = eh_dataset_hash(check_dataset(L, 1)->h.p);
    if (!h)
        return eh_lua_failf(L, EH_ENOMEM, "dataset hash: out of memory");
    lua_pushstring(L, h);
    return 1;
}

/* ds:resolve(rel) → the real path of rel inside the dataset's folder, or nil,
 * err: the pair's own image rule, for the paths in its other fields. */
static int ds_resolve(lua_State *L)
{
    ldataset *d = luaL_checkudata(L, 1, DATASET_META);
    if (!d->h.p)
        return luaL_error(L, "attempt to use a closed dataset");
    size_t len;
    const char *rel = luaL_checklstring(L, 2, &len);
    eh_error err = { 0 };
    char *real = eh_dataset_resolve(d->h.p, rel, len, &err);
    if (!real)
        return eh_lua_fail(L, &err);
    lua_pushstring(L, real);
    free(real);
    return 1;
}

/* evalhost.dataset.open(path [, opts]) → Dataset | nil, err */
static int ds_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    eh_dataset_params p = read_params(L, 2);
    ldataset *d = eh_lua_handle_new(L, &ds_type, sizeof *d, 0);
    d->max_string = p.max_instruction_len;
    eh_error err = { 0 };
    d->h.p = eh_dataset_open(path, &p, &err);
    if (!d->h.p)
        return eh_lua_fail(L, &err);
    return 1;
}

/* close, __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg ds_methods[] = {
    { "categories", ds_categories },
    { "count", ds_count },
    { "pairs", ds_pairs },
    { "pair", ds_pair },
    { "path", ds_path },
    { "hash", ds_hash },
    { "resolve", ds_resolve },
    { NULL, NULL },
};

static const luaL_Reg ds_metamethods[] = {
    { "__len", ds_len },
    { NULL, NULL },
};

/* pair.image() after a failed decode: the same nil, message, code again. */
static int image_failed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    return 3;
}

/* Pair __index: "image" decodes (see the top of this file); other keys come
 * from the method table (upvalue 1). */
static int pair_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "image") == 0) {
        lua_settop(L, 1);
        int n = pair_image(L);
        if (n == 1 && !lua_isnil(L, -1))
            return 1;
        lua_pushcclosure(L, image_failed, 2);   /* captures the message and code */
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, lua_upvalueindex(1));
    return 1;
}

static const luaL_Reg pair_methods[] = {
    { "image", pair_image },
    { "image_source", pair_image_source },
    { "field", pair_field },
    { NULL, NULL },
};

/* The Dataset and Pair metatables and the owner table, made once. */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &ds_type, ds_metamethods, ds_methods, 0);
    if (luaL_newmetatable(L, PAIR_META)) {
        luaL_newlib(L, pair_methods);
        lua_pushcclosure(L, pair_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, OWNER_KEY) != LUA_TTABLE) {
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, OWNER_KEY);
    }
    lua_pop(L, 1);
    eh_open_json(L);
    lua_getfield(L, -1, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
    lua_pop(L, 1);
}

int eh_open_dataset(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "open", ds_open },
        { NULL, NULL },
    };
    create_meta(L);
    luaL_newlib(L, funcs);
    return 1;
}
