/* l_progress.c — evalhost.progress(label, total) → Progress bar. */
#include "evalhost/lua_bind.h"
#include "evalhost/progress.h"

#define PROGRESS_MT "evalhost.Progress"

static void progress_free(void *bar)
{
    eh_progress_free(bar);   /* finishes the bar */
}

static const eh_lua_type progress_type = {
    .mt = PROGRESS_MT,
    .what = "Progress",
    .free = progress_free,
};

static eh_progress *check_progress(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &progress_type);
}

static int progress_new(lua_State *L)
{
    const char *label = luaL_checkstring(L, 1);
    lua_Integer total = luaL_checkinteger(L, 2);
    eh_host *h = eh_lua_host(L);
    eh_lua_handle *p = eh_lua_handle_new(L, &progress_type, sizeof *p, 0);
    eh_progress_params params = eh_progress_default_params();
    params.tty = h->stderr_tty;
    params.quiet = h->quiet;
    p->p = eh_progress_new(label, total, &params);
    if (!p->p)
        return luaL_error(L, "progress: out of memory");
    return 1;
}

static int progress_tick(lua_State *L)
{
    eh_progress_tick(check_progress(L, 1), luaL_optinteger(L, 2, 1));
    return 0;
}

/* close, __close and __gc (finishing the bar once) are the handle's: lua_bind.h */
static const luaL_Reg methods[] = {
    { "tick", progress_tick },
    { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &progress_type, NULL, methods, 0);
}

int eh_open_progress(lua_State *L)
{
    create_meta(L);
    lua_pushcfunction(L, progress_new);
    return 1;
}
