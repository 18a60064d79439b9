/* l_vlm.c — evalhost.vlm: Qwen-VL image preprocessing over vlm_pre.h.
 *
 *   local r = assert(evalhost.vlm.preprocess(img, "preprocessor_config.json"))
 *   r.grid_thw   -- {t, h, w}
 *   r.tokens     -- number of <|image_pad|> tokens for the prompt
 *   r.patches    -- Patches: :shape() → rows, dim; :get(row, col); :bytes()
 *                   (float32, native order, row-major); :close()
 *
 * The config is a preprocessor_config.json path or a table of the same
 * keys.  evalhost.vlm.smart_resize(h, w, config) → h, w. */
#include <stdlib.h>

#include "evalhost/lua_bind.h"
#include "evalhost/vlm_pre.h"

#define PATCHES_MT "evalhost.Patches"

static void patches_free(void *p)
{
    eh_vlm_patches_free(p);
}

static void patches_describe(lua_State *L, void *p)
{
    const eh_vlm_patches *vp = p;
    lua_pushfstring(L, "Patches (%I x %I)", (lua_Integer)vp->rows, (lua_Integer)vp->dim);
}

/* close() on a closed Patches raises (the handle's strict_close) */
static const eh_lua_type patches_type = {
    .mt = PATCHES_MT,
    .what = "Patches",
    .free = patches_free,
    .describe = patches_describe,
    .closed = "Patches (closed)",
    .strict_close = 1,
};

static eh_vlm_patches *check_patches(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &patches_type);
}

/* Reads the config argument at idx: a path or a table.  Data failures
 * (missing file, bad field) come back in err. */
static eh_status read_config(lua_State *L, int idx, eh_vlm_config *cfg, eh_error *err)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return eh_vlm_config_load(lua_tostring(L, idx), cfg, err);
    if (lua_isnoneornil(L, idx)) {
        *cfg = eh_vlm_default_config();
        return EH_OK;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    eh_node *n = eh_lua_to_node(L, idx, err);
    if (!n)
        return err->code ? err->code : EH_EINVAL;
    eh_status st = eh_vlm_config_from_node(n, "vlm config", cfg, err);
    eh_node_free(n);
    return st;
}

/* evalhost.vlm.preprocess(img, config) → {patches=, grid_thw=, tokens=} | nil, err */
static int vlm_preprocess(lua_State *L)
{
    eh_image *img = eh_lua_check_image(L, 1);
    eh_vlm_config cfg;
    eh_error err = { 0 };
    if (read_config(L, 2, &cfg, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    lua_createtable(L, 0, 3);
    eh_lua_handle *lp = eh_lua_handle_new(L, &patches_type, sizeof *lp, 0);
    eh_vlm_patches *p = eh_vlm_preprocess(img, &cfg, &err);
    lp->p = p;
    if (!p)
        return eh_lua_fail(L, &err);
    lua_setfield(L, -2, "patches");
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, p->grid_t);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, p->grid_h);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, p->grid_w);
    lua_rawseti(L, -2, 3);
    lua_setfield(L, -2, "grid_thw");
    lua_pushinteger(L, p->tokens);
    lua_setfield(L, -2, "tokens");
    return 1;
}

/* evalhost.vlm.smart_resize(h, w [, config]) → h, w | nil, err */
static int vlm_smart_resize(lua_State *L)
{
    lua_Integer h = luaL_checkinteger(L, 1), w = luaL_checkinteger(L, 2);
    luaL_argcheck(L, h > 0 && h <= 1 << 20, 1, "height out of range");
    luaL_argcheck(L, w > 0 && w <= 1 << 20, 2, "width out of range");
    eh_vlm_config cfg;
    eh_error err = { 0 };
    int oh, ow;
    if (read_config(L, 3, &cfg, &err) != EH_OK || eh_vlm_smart_resize((int)h, (int)w, &cfg, &oh, &ow, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    lua_pushinteger(L, oh);
    lua_pushinteger(L, ow);
    return 2;
}

static int patches_shape(lua_State *L)
{
    eh_vlm_patches *p = check_patches(L, 1);
    lua_pushinteger(L, p->rows);
    lua_pushinteger(L, p->dim);
    return 2;
}

/* p:get(row, col), 1-based */
static int patches_get(lua_State *L)
{
    eh_vlm_patches *p = check_patches(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2), c = luaL_checkinteger(L, 3);
    luaL_argcheck(L, r >= 1 && r <= p->rows, 2, "row out of range");
    luaL_argcheck(L, c >= 1 && c <= p->dim, 3, "column out of range");
    lua_pushnumber(L, p->data[(r - 1) * p->dim + (c - 1)]);
    return 1;
}

static int patches_bytes(lua_State *L)
{
    eh_vlm_patches *p = check_patches(L, 1);
    lua_pushlstring(L, (const char *)p->data, (size_t)(p->rows * p->dim) * sizeof(float));
    return 1;
}

static const luaL_Reg module_fns[] = {
    { "preprocess", vlm_preprocess },
    { "smart_resize", vlm_smart_resize },
    { NULL, NULL },
};

/* close, __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "shape", patches_shape },
    { "get", patches_get },
    { "bytes", patches_bytes },
    { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &patches_type, NULL, methods, 0);
}

int eh_open_vlm(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, module_fns);
    return 1;
}
