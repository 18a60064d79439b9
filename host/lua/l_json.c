/* l_json.c — evalhost.json: encode/decode through cJSON.  JSON null is
 * evalhost.json.null (a NULL light userdata); an empty table encodes as {}
 * unless its metatable is evalhost.json.array_mt. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/lua_bind.h"

/* Nesting beyond limits.max_json_depth: decode returns nil, err (data);
 * encode raises (a cyclic or absurd table is a script bug). */
static int max_depth(lua_State *L)
{
    int d = eh_lua_host(L)->json_max_depth;
    return d > 0 ? d : 64;
}

/* Depth of a parsed tree, stopping early once past `limit`. */
static int json_depth(const cJSON *item, int limit)
{
    int deepest = 1;
    for (const cJSON *c = item->child; c && deepest <= limit; c = c->next) {
        int d = 1 + json_depth(c, limit);
        if (d > deepest)
            deepest = d;
    }
    return deepest;
}
#define ARRAY_MT "evalhost.json.array_mt"

static void push_json(lua_State *L, const cJSON *item, int depth)
{
    luaL_checkstack(L, 4, "JSON too deep");
    if (cJSON_IsNull(item)) {
        lua_pushlightuserdata(L, NULL);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsArray(item)) {
        lua_createtable(L, cJSON_GetArraySize(item), 0);
        luaL_setmetatable(L, ARRAY_MT);
        lua_Integer i = 1;
        for (const cJSON *c = item->child; c; c = c->next) {
            push_json(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsObject(item)) {
        lua_newtable(L);
        for (const cJSON *c = item->child; c; c = c->next) {
            push_json(L, c, depth + 1);
            lua_setfield(L, -2, c->string);
        }
    } else {
        lua_pushnil(L);
    }
}

static int is_array(lua_State *L, int idx, size_t *len)
{
    size_t n = 0;
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        if (lua_tointeger(L, -1) > max)
            max = lua_tointeger(L, -1);
        n++;
    }
    *len = n;
    if (n == 0) {
        int arr = 0;
        if (lua_getmetatable(L, idx)) {
            luaL_getmetatable(L, ARRAY_MT);
            arr = lua_rawequal(L, -1, -2);
            lua_pop(L, 2);
        }
        return arr;
    }
    return (size_t)max == n;
}

/* Orders object keys by their text, so mixed string/number keys never raise. */
static int key_less(lua_State *L)
{
    const char *a = luaL_tolstring(L, 1, NULL);
    const char *b = luaL_tolstring(L, 2, NULL);
    lua_pushboolean(L, strcmp(a, b) < 0);
    return 1;
}

#define GUARD_MT "evalhost.json.guard"

typedef struct json_guard {
    cJSON *root;
} json_guard;

/* __gc and __close: frees the tree once; later calls do nothing. */
static int guard_gc(lua_State *L)
{
    json_guard *g = luaL_checkudata(L, 1, GUARD_MT);
    cJSON_Delete(g->root);
    g->root = NULL;
    return 0;
}

/* Pushes a guard owning root (may be NULL); its metatable is create_meta's. */
static json_guard *new_guard(lua_State *L, cJSON *root)
{
    json_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->root = root;
    luaL_setmetatable(L, GUARD_MT);
    return g;
}

/* Attaches item under parent (key NULL: array), or makes it the guard's
 * root, at once: whatever to_json has built is always reachable from the
 * guard, so a raise mid-way (a function inside the value, too deep) frees it
 * in guard_gc instead of leaking it. */
static cJSON *attach(json_guard *g, cJSON *parent, const char *key, cJSON *item)
{
    if (!parent)
        g->root = item;
    else if (item && key)
        cJSON_AddItemToObject(parent, key, item);
    else if (item)
        cJSON_AddItemToArray(parent, item);
    return item;
}

/* Builds cJSON from the value at idx into parent (see attach); raises on
 * unsupported values (a script bug). */
static void to_json(lua_State *L, int idx, int depth, json_guard *g, cJSON *parent, const char *key)
{
    idx = lua_absindex(L, idx);
    if (depth > max_depth(L))
        luaL_error(L, "json.encode: table nested deeper than limits.max_json_depth (%d) (or cyclic)", max_depth(L));
    luaL_checkstack(L, 6, "table too deep");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: attach(g, parent, key, cJSON_CreateNull()); return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            attach(g, parent, key, cJSON_CreateNull());
            return;
        }
        break;
    case LUA_TBOOLEAN: attach(g, parent, key, cJSON_CreateBool(lua_toboolean(L, idx))); return;
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        /* JSON has no NaN/Inf */
        attach(g, parent, key, isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull());
        return;
    }
    case LUA_TSTRING: attach(g, parent, key, cJSON_CreateString(lua_tostring(L, idx))); return;
    case LUA_TTABLE: {
        size_t n;
        if (is_array(L, idx, &n)) {
            cJSON *arr = attach(g, parent, key, cJSON_CreateArray());
            for (size_t i = 1; arr && i <= n; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i);
                to_json(L, -1, depth + 1, g, arr, NULL);
                lua_pop(L, 1);
            }
            return;
        }
        /* objects: keys sorted so reports are byte-stable between runs */
        lua_newtable(L);
        int keys = lua_gettop(L);
        lua_Integer nk = 0;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, keys, ++nk);
            }
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "sort");
        lua_remove(L, -2);
        lua_pushvalue(L, keys);
        lua_pushcfunction(L, key_less);
        lua_call(L, 2, 0);
        cJSON *obj = attach(g, parent, key, cJSON_CreateObject());
        for (lua_Integer i = 1; obj && i <= nk; i++) {
            lua_rawgeti(L, keys, i);                    /* key */
            lua_pushvalue(L, -1);
            lua_gettable(L, idx);                       /* key, value */
            const char *k = luaL_tolstring(L, -2, NULL);   /* key, value, key as text */
            to_json(L, -2, depth + 1, g, obj, k);
            lua_pop(L, 3);
        }
        lua_remove(L, keys);
        return;
    }
    default: break;
    }
    luaL_error(L, "json.encode: cannot encode a %s", luaL_typename(L, idx));
}

static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    int pretty = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "pretty");
        pretty = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    json_guard *g = new_guard(L, NULL);
    to_json(L, 1, 0, g, NULL, NULL);
    char *text = g->root ? (pretty ? cJSON_Print(g->root) : cJSON_PrintUnformatted(g->root)) : NULL;
    if (!text)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, text);
    free(text);
    cJSON_Delete(g->root);
    g->root = NULL;
    return 1;
}

static int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *end = NULL;
    /* len + 1: cJSON checks for the terminating NUL inside the given length
     * (Lua strings always have it), else every text fails "at its end" */
    cJSON *root = cJSON_ParseWithLengthOpts(s, len + 1, &end, 1);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= s && at <= s + len ? (size_t)(at - s) : 0;
        return eh_lua_failf(L, EH_EINVAL, "json: invalid JSON at offset %zu", off);
    }
    if (json_depth(root, max_depth(L)) > max_depth(L)) {
        cJSON_Delete(root);
        return eh_lua_failf(L, EH_ELIMIT, "json: nested deeper than limits.max_json_depth (%d)", max_depth(L));
    }
    /* push_json may raise (out of memory); keep root owned by a guard meanwhile */
    json_guard *g = new_guard(L, root);
    push_json(L, root, 0);
    cJSON_Delete(g->root);
    g->root = NULL;
    return 1;
}

static const luaL_Reg funcs[] = {
    { "encode", json_encode },
    { "decode", json_decode },
    { NULL, NULL },
};

/* The guard has no methods: it only frees what encode/decode hold. */
static const luaL_Reg guard_metamethods[] = {
    { "__gc", guard_gc },
    { "__close", guard_gc },
    { NULL, NULL },
};

/* The one place this binding's metatables are made: the guard's and the
 * array marker (a plain tag table named "array", no methods). */
static void create_meta(lua_State *L)
{
    if (luaL_newmetatable(L, GUARD_MT))
        luaL_setfuncs(L, guard_metamethods, 0);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushstring(L, "array");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

int eh_open_json(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, funcs);
    luaL_getmetatable(L, ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
