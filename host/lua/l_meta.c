/* l_meta.c — the one way a binding makes its handle type (see lua_bind.h):
 * liolib's shape, where one aux_close and tofile serve every file.  The
 * type's description rides as an upvalue of the functions made here. */
#include "evalhost/lua_bind.h"

static const eh_lua_type *type_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* close, __close and __gc: frees the handle once; later calls do nothing. */
static int handle_gc(lua_State *L)
{
    const eh_lua_type *t = type_of(L);
    eh_lua_handle *h = luaL_checkudata(L, 1, t->mt);
    t->free(h->p);
    h->p = NULL;
    return 0;
}

/* close of a strict_close type: a closed handle is a script error. */
static int handle_close(lua_State *L)
{
    eh_lua_handle_check(L, 1, type_of(L));
    return handle_gc(L);
}

static int handle_tostring(lua_State *L)
{
    const eh_lua_type *t = type_of(L);
    eh_lua_handle *h = luaL_checkudata(L, 1, t->mt);
    if (h->p)
        t->describe(L, h->p);
    else
        lua_pushstring(L, t->closed);
    return 1;
}

/* Sets field name of the table on top to fn with the type as its upvalue. */
static void set_typed(lua_State *L, const eh_lua_type *t, const char *name, lua_CFunction fn)
{
    lua_pushlightuserdata(L, (void *)t);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
}

/* Registers l in the table on top with copies of the nup values that end
 * `above` slots below it (the caller's upvalues). */
static void set_funcs(lua_State *L, const luaL_Reg *l, int nup, int above)
{
    for (int i = 0; i < nup; i++)
        lua_pushvalue(L, -(nup + above));
    luaL_setfuncs(L, l, nup);
}

void eh_lua_new_type(lua_State *L, const eh_lua_type *t, const luaL_Reg *metamethods, const luaL_Reg *methods, int nup)
{
    if (luaL_newmetatable(L, t->mt)) {
        set_typed(L, t, "__gc", handle_gc);
        set_typed(L, t, "__close", handle_gc);
        if (t->describe)
            set_typed(L, t, "__tostring", handle_tostring);
        if (metamethods)
            set_funcs(L, metamethods, nup, 1);
        lua_newtable(L);
        set_funcs(L, methods, nup, 2);
        set_typed(L, t, "close", t->strict_close ? handle_close : handle_gc);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void *eh_lua_handle_new(lua_State *L, const eh_lua_type *t, size_t size, int nuv)
{
    eh_lua_handle *h = lua_newuserdatauv(L, size, nuv);
    h->p = NULL;
    luaL_setmetatable(L, t->mt);
    return h;
}

void *eh_lua_handle_check(lua_State *L, int idx, const eh_lua_type *t)
{
    eh_lua_handle *h = luaL_checkudata(L, idx, t->mt);
    if (!h->p)
        luaL_error(L, "attempt to use a closed %s", t->what);
    return h->p;
}
