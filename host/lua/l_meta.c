/* l_meta.c — the one way a binding makes its type's metatable (see
 * lua_bind.h): the first call registers it, a later one (another binding
 * pushing that type first) finds it made. */
#include "evalhost/lua_bind.h"

void eh_lua_new_type(lua_State *L, const char *name, const luaL_Reg *metamethods, const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, name)) {
        luaL_setfuncs(L, metamethods, 0);
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
