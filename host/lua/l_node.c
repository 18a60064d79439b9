/* l_node.c — the one conversion point between eh_node trees and Lua values
 * (configs, model specs).  YAML null becomes nil in maps (so `if cfg.x`
 * reads naturally) and evalhost.json.null inside sequences (keeps #t). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "evalhost/lua_bind.h"

#define NODE_MAX_DEPTH 64

void eh_lua_push_node(lua_State *L, const eh_node *n)
{
    if (!n) {
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 4, "config too deep");
    switch (n->type) {
    case EH_NODE_NULL: lua_pushnil(L); break;
    case EH_NODE_BOOL: lua_pushboolean(L, n->u.boolean); break;
    case EH_NODE_INT: lua_pushinteger(L, (lua_Integer)n->u.integer); break;
    case EH_NODE_FLOAT: lua_pushnumber(L, n->u.number); break;
    case EH_NODE_STRING: lua_pushlstring(L, n->u.str.data, n->u.str.len); break;
    case EH_NODE_SEQ:
        lua_createtable(L, (int)n->u.list.count, 0);
        for (size_t i = 0; i < n->u.list.count; i++) {
            if (n->u.list.items[i]->type == EH_NODE_NULL)
                lua_pushlightuserdata(L, NULL);   /* evalhost.json.null */
            else
                eh_lua_push_node(L, n->u.list.items[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case EH_NODE_MAP:
        lua_createtable(L, 0, (int)n->u.list.count);
        for (size_t i = 0; i < n->u.list.count; i++) {
            eh_lua_push_node(L, n->u.list.items[i]);
            lua_setfield(L, -2, n->u.list.keys[i]);
        }
        break;
    }
}

/* A table is a sequence when its keys are exactly 1..n (n > 0). */
static size_t sequence_length(lua_State *L, int idx)
{
    size_t n = 0;
    lua_Integer max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1)) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1) {
            lua_pop(L, 1);
            return 0;
        }
        if (k > max)
            max = k;
        n++;
    }
    return (size_t)max == n ? n : 0;
}

static eh_node *to_node(lua_State *L, int idx, int depth, eh_error *err)
{
    idx = lua_absindex(L, idx);
    if (depth > NODE_MAX_DEPTH) {
        eh_fail(err, EH_ELIMIT, "table nested deeper than %d levels (or cyclic)", NODE_MAX_DEPTH);
        return NULL;
    }
    luaL_checkstack(L, 6, "table too deep");
    eh_node *n = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return eh_node_new(EH_NODE_NULL);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return eh_node_new(EH_NODE_NULL);
        break;
    case LUA_TBOOLEAN:
        n = eh_node_new(EH_NODE_BOOL);
        if (n)
            n->u.boolean = lua_toboolean(L, idx);
        return n;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            n = eh_node_new(EH_NODE_INT);
            if (n)
                n->u.integer = (int64_t)lua_tointeger(L, idx);
        } else {
            n = eh_node_new(EH_NODE_FLOAT);
            if (n)
                n->u.number = (double)lua_tonumber(L, idx);
        }
        return n;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return eh_node_new_string(s, len);
    }
    case LUA_TTABLE: {
        size_t seq = sequence_length(L, idx);
        if (seq) {
            n = eh_node_new(EH_NODE_SEQ);
            for (size_t i = 1; n && i <= seq; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i);
                eh_node *c = to_node(L, -1, depth + 1, err);
                lua_pop(L, 1);
                if (!c || eh_node_append(n, c) != 0) {
                    eh_node_free(n);
                    return NULL;
                }
            }
            return n;
        }
        n = eh_node_new(EH_NODE_MAP);
        lua_pushnil(L);
        while (n && lua_next(L, idx) != 0) {
            char keybuf[64];
            const char *key;
            if (lua_type(L, -2) == LUA_TSTRING) {
                key = lua_tostring(L, -2);
            } else if (lua_type(L, -2) == LUA_TNUMBER) {
                if (lua_isinteger(L, -2))
                    snprintf(keybuf, sizeof keybuf, "%lld", (long long)lua_tointeger(L, -2));
                else
                    snprintf(keybuf, sizeof keybuf, "%.17g", (double)lua_tonumber(L, -2));
                key = keybuf;
            } else {
                lua_pop(L, 2);
                eh_node_free(n);
                eh_fail(err, EH_EINVAL, "table keys must be strings or numbers, not %s", luaL_typename(L, -2));
                return NULL;
            }
            eh_node *c = to_node(L, -1, depth + 1, err);
            lua_pop(L, 1);
            if (!c || eh_node_set(n, key, c) != 0) {
                lua_pop(L, 1);
                eh_node_free(n);
                return NULL;
            }
        }
        return n;
    }
    default: break;
    }
    eh_fail(err, EH_EINVAL, "cannot convert a %s to a config value", luaL_typename(L, idx));
    return NULL;
}

eh_node *eh_lua_to_node(lua_State *L, int idx, eh_error *err)
{
    eh_node *n = to_node(L, idx, 0, err);
    if (!n && err && err->code == EH_OK)
        eh_fail(err, EH_ENOMEM, "out of memory");
    return n;
}
