/* l_tokenizer.c — evalhost.tokenizer: Tokenizer handles over tokenizer.h.
 *
 *   local tok = assert(evalhost.tokenizer.load("tokenizer.json"))
 *   local ids = tok:encode("hello <|im_end|>")      -- {ids...} | nil, err
 *   local s = tok:decode(ids)                       -- string | nil, err
 *   tok:token_to_id("<|im_end|>")                   -- integer | nil
 *   tok:close()
 *
 * limits.max_tokenizer_input (config) bounds the text per encode. */
#include <stdlib.h>

#include "evalhost/lua_bind.h"
#include "evalhost/tokenizer.h"

#define TOKENIZER_MT "evalhost.Tokenizer"

static void tok_free(void *tok)
{
    eh_tokenizer_free(tok);
}

static void tok_describe(lua_State *L, void *tok)
{
    lua_pushfstring(L, "Tokenizer (%d ids)", (int)eh_tokenizer_vocab_size(tok));
}

/* close() on a closed Tokenizer raises (the handle's strict_close) */
static const eh_lua_type tok_type = {
    .mt = TOKENIZER_MT,
    .what = "Tokenizer",
    .free = tok_free,
    .describe = tok_describe,
    .closed = "Tokenizer (closed)",
    .strict_close = 1,
};

static eh_tokenizer *check_tokenizer(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &tok_type);
}

/* evalhost.tokenizer.load(path) → Tokenizer | nil, err */
static int tok_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    eh_tokenizer_params params = eh_tokenizer_default_params();
    const eh_host *h = eh_lua_host(L);
    const eh_node *lim = h->config ? eh_node_at(h->config, "limits.max_tokenizer_input") : NULL;
    if (lim) {      /* YAML writes 1e6 as a float: take any whole non-negative number */
        double v = lim->type == EH_NODE_INT ? (double)lim->u.integer : lim->type == EH_NODE_FLOAT ? lim->u.number : -1;
        if (!(v >= 0 && v <= 1e15 && v == (double)(int64_t)v))
            return luaL_error(L, "limits.max_tokenizer_input must be a non-negative integer");
        params.max_input = (size_t)v;
    }
    eh_lua_handle *p = eh_lua_handle_new(L, &tok_type, sizeof *p, 0);
    eh_error err = { 0 };
    p->p = eh_tokenizer_load(path, &params, &err);
    if (!p->p)
        return eh_lua_fail(L, &err);
    return 1;
}

/* Protected halves of encode/decode: the C results are malloc'd, so they
 * are pushed under lua_pcall and freed before any error propagates. */
static int push_ids(lua_State *L)
{
    const int32_t *ids = lua_touserdata(L, 1);
    lua_Integer n = lua_tointeger(L, 2);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int push_text(lua_State *L)
{
    lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
    return 1;
}

/* Calls fn(buf, n) protected, frees buf, returns its 1 result or raises. */
static int push_owned(lua_State *L, lua_CFunction fn, void *buf, size_t n)
{
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, buf);
    lua_pushinteger(L, (lua_Integer)n);
    int rc = lua_pcall(L, 2, 1, 0);
    free(buf);
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}

/* tok:encode(text [, add_special]) → {ids} | nil, err */
static int tok_encode(lua_State *L)
{
    eh_tokenizer *tok = check_tokenizer(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    int add_special = lua_toboolean(L, 3);
    int32_t *ids;
    size_t n;
    eh_error err = { 0 };
    if (eh_tokenizer_encode(tok, text, len, add_special, &ids, &n, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    return push_owned(L, push_ids, ids, n);
}

/* tok:decode(ids [, skip_special]) → string | nil, err */
static int tok_decode(lua_State *L)
{
    eh_tokenizer *tok = check_tokenizer(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int skip = lua_toboolean(L, 3);
    lua_Integer n = luaL_len(L, 2);
    /* the ids go into a userdata buffer so a raise below frees them */
    int32_t *ids = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ids, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            return luaL_error(L, "decode: ids[%d] is not an integer", (int)(i + 1));
        lua_pop(L, 1);
        if (v < 0 || v > INT32_MAX)
            return eh_lua_failf(L, EH_EINVAL, "tokenizer: unknown token id %lld (at %d)", (long long)v, (int)(i + 1));
        ids[i] = (int32_t)v;
    }
    char *text;
    size_t len;
    eh_error err = { 0 };
    if (eh_tokenizer_decode(tok, ids, (size_t)n, skip, &text, &len, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    return push_owned(L, push_text, text, len);
}

/* tok:token_to_id(s) → integer | nil */
static int tok_token_to_id(lua_State *L)
{
    eh_tokenizer *tok = check_tokenizer(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    int32_t id = eh_tokenizer_token_to_id(tok, s, len);
    if (id < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, id);
    return 1;
}

/* tok:id_to_token(id) → string | nil */
static int tok_id_to_token(lua_State *L)
{
    eh_tokenizer *tok = check_tokenizer(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    const char *s = id >= 0 && id <= INT32_MAX ? eh_tokenizer_id_to_token(tok, (int32_t)id) : NULL;
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    return 1;
}

static int tok_vocab_size(lua_State *L)
{
    lua_pushinteger(L, eh_tokenizer_vocab_size(check_tokenizer(L, 1)));
    return 1;
}

static const luaL_Reg module_fns[] = {
    { "load", tok_load },
    { NULL, NULL },
};

/* close, __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "encode", tok_encode },           { "decode", tok_decode },         { "token_to_id", tok_token_to_id },
    { "id_to_token", tok_id_to_token }, { "vocab_size", tok_vocab_size }, { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &tok_type, NULL, methods, 0);
}

int eh_open_tokenizer(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, module_fns);
    return 1;
}
