/* l_progress.c — evalhost.progress(label, total) → Progress bar. */
#include "evalhost/lua_bind.h"
#include "evalhost/progress.h"

#define PROGRESS_MT "evalhost.Progress"

typedef struct lprogress {
    eh_progress *bar;   /* NULL when closed */
} lprogress;

static lprogress *check_progress(lua_State *L, int idx)
{
    lprogress *p = luaL_checkudata(L, idx, PROGRESS_MT);
    if (!p->bar)
        luaL_error(L, "attempt to use a closed Progress");
    return p;
}

static int progress_new(lua_State *L)
{
    const char *label = luaL_checkstring(L, 1);
    lua_Integer total = luaL_checkinteger(L, 2);
    eh_host *h = eh_lua_host(L);
    lprogress *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->bar = NULL;
    luaL_setmetatable(L, PROGRESS_MT);
    eh_progress_params params = eh_progress_default_params();
    params.tty = h->stderr_tty;
    params.quiet = h->quiet;
    p->bar = eh_progress_new(label, total, &params);
    if (!p->bar)
        return luaL_error(L, "progress: out of memory");
    return 1;
}

static int progress_tick(lua_State *L)
{
    lprogress *p = check_progress(L, 1);
    eh_progress_tick(p->bar, luaL_optinteger(L, 2, 1));
    return 0;
}

/* close, __close and __gc: finishes the bar once; later calls do nothing. */
static int progress_close(lua_State *L)
{
    lprogress *p = luaL_checkudata(L, 1, PROGRESS_MT);
    eh_progress_free(p->bar);
    p->bar = NULL;
    return 0;
}

static const luaL_Reg methods[] = {
    { "tick", progress_tick },
    { "close", progress_close },
    { NULL, NULL },
};

static const luaL_Reg metamethods[] = {
    { "__gc", progress_close },
    { "__close", progress_close },
    { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, PROGRESS_MT, metamethods, methods);
}

int eh_open_progress(lua_State *L)
{
    create_meta(L);
    lua_pushcfunction(L, progress_new);
    return 1;
}
