/* l_bootstrap.c — evalhost.bootstrap.means(groups, resamples, seed): the
 * bootstrap's resampling loop in C for lua/evalhost/stats.lua (which keeps
 * a Lua copy of the same loop for hosts without it). */
#include <stdint.h>

#include "evalhost/bootstrap.h"
#include "evalhost/lua_bind.h"

/* groups: an array of non-empty arrays of numbers.  Pushes 1 value: the
 * array of the resamples' means, in draw order.  Misuse raises; the
 * buffers are userdata, so a raise leaks nothing. */
static int l_means(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer resamples = luaL_checkinteger(L, 2);
    lua_Integer seed = luaL_checkinteger(L, 3);
    luaL_argcheck(L, resamples >= 1 && resamples <= EH_BOOTSTRAP_MAX_RESAMPLES, 2, "resamples out of range");
    lua_Integer ngroups = luaL_len(L, 1);
    luaL_argcheck(L, ngroups >= 1, 1, "no groups");
    size_t total = 0;
    for (lua_Integer g = 1; g <= ngroups; g++) {
        if (lua_rawgeti(L, 1, g) != LUA_TTABLE)
            return luaL_error(L, "bootstrap.means: group %d is not a table", (int)g);
        lua_Integer n = luaL_len(L, -1);
        if (n < 1)
            return luaL_error(L, "bootstrap.means: group %d is empty", (int)g);
        total += (size_t)n;
        lua_pop(L, 1);
    }
    double *values = lua_newuserdatauv(L, sizeof(double) * total, 0);
    const double **groups = lua_newuserdatauv(L, sizeof *groups * (size_t)ngroups, 0);
    size_t *sizes = lua_newuserdatauv(L, sizeof *sizes * (size_t)ngroups, 0);
    double *means = lua_newuserdatauv(L, sizeof(double) * (size_t)resamples, 0);
    size_t at = 0;
    for (lua_Integer g = 1; g <= ngroups; g++) {
        lua_rawgeti(L, 1, g);
        lua_Integer n = luaL_len(L, -1);
        groups[g - 1] = values + at;
        sizes[g - 1] = (size_t)n;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            int isnum = 0;
            values[at++] = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                return luaL_error(L, "bootstrap.means: group %d, value %d is not a number", (int)g, (int)i);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    eh_error err = { 0 };
    if (eh_bootstrap_means(groups, sizes, (size_t)ngroups, (size_t)resamples, (uint64_t)seed, means, &err) != EH_OK)
        return luaL_error(L, "%s", err.msg);
    lua_createtable(L, (int)resamples, 0);
    for (lua_Integer b = 0; b < resamples; b++) {
        lua_pushnumber(L, means[b]);
        lua_rawseti(L, -2, b + 1);
    }
    return 1;
}

int eh_open_bootstrap(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "means", l_means },
        { NULL, NULL },
    };
    luaL_newlib(L, funcs);
    return 1;
}
