/* l_image_writer.c — evalhost.image_writer.new([{in_flight = n}]) and the
 * ImageWriter userdata (`evalhost.ImageWriter`): images saved (or loaded)
 * by a worker thread while Lua goes on (image_writer.h).  Born closed, then filled;
 * close, __close and __gc are one idempotent function, which finishes the
 * queued writes first; every other method rejects a closed writer. */
#include <stdlib.h>

#include "evalhost/image_writer.h"
#include "evalhost/lua_bind.h"

#define WRITER_MT "evalhost.ImageWriter"
#define WRITER_MAX_IN_FLIGHT 64
#define CONVERT_MAX_SIDE 65535     /* a thumbnail bound past any image the limits let in */

static void writer_free(void *w)
{
    eh_image_writer_free(w);   /* finishes the queued writes first */
}

static void writer_describe(lua_State *L, void *w)
{
    lua_pushfstring(L, "ImageWriter(%d pending)", eh_image_writer_pending(w));
}

static const eh_lua_type writer_type = {
    .mt = WRITER_MT,
    .what = "ImageWriter",
    .free = writer_free,
    .describe = writer_describe,
    .closed = "ImageWriter(closed)",
};

static eh_image_writer *check_writer(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &writer_type);
}

/* new([opts]) → ImageWriter, or nil, err when its thread cannot start. */
static int l_new(lua_State *L)
{
    lua_Integer n = EH_IMAGE_WRITER_DEFAULT_IN_FLIGHT;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "in_flight");
        if (!lua_isnil(L, -1)) {
            int ok;
            n = lua_tointegerx(L, -1, &ok);
            luaL_argcheck(L, ok && n >= 1 && n <= WRITER_MAX_IN_FLIGHT, 1, "in_flight must be an integer 1..64");
        }
        lua_pop(L, 1);
    }
    eh_lua_handle *p = eh_lua_handle_new(L, &writer_type, sizeof *p, 0);
    eh_error err = { 0 };
    p->p = eh_image_writer_new((int)n, &err);
    if (!p->p)
        return eh_lua_fail(L, &err);
    return 1;
}

/* w:submit(img, path) → true, or nil, err (out of memory).  The writer
 * saves a copy; the caller may close img at once.  Waits while the writer
 * holds in_flight images. */
static int m_submit(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    eh_image *img = eh_lua_check_image(L, 2);
    const char *path = luaL_checkstring(L, 3);
    eh_error err = { 0 };
    /* a copy: the Image stays the caller's to close, as after img:save */
    return eh_lua_result(L, eh_image_writer_submit_copy(w, img, path, &err), &err);
}

/* w:load(path [, {no_follow=}]) → true, or nil, err (out of memory; in_flight loaded Images
 * not collected yet).  The Image comes back from collect/flush, loaded
 * under the host's image limits. */
static int m_load(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    const char *path = luaL_checkstring(L, 2);
    eh_image_limits lim = eh_lua_host(L)->image_limits;
    lim.read_flags = eh_lua_read_flags(L, 3);
    eh_error err = { 0 };
    return eh_lua_result(L, eh_image_writer_load(w, path, &lim, &err), &err);
}

/* The data argument at arg and its kind at arg + 1: "bytes" (the default:
 * a file's bytes), "base64" (base64 text, a data: URL too) or "path" (a
 * file to load). */
typedef struct source {
    const char *data;
    size_t len;
    eh_image_source kind;
} source;

static source check_source(lua_State *L, int arg)
{
    static const char *const kinds[] = { "bytes", "base64", "path", NULL };
    static const eh_image_source as[] = { EH_SOURCE_BYTES, EH_SOURCE_BASE64, EH_SOURCE_PATH };
    source src;
    src.data = luaL_checklstring(L, arg, &src.len);
    src.kind = as[luaL_checkoption(L, arg + 1, "bytes", kinds)];
    return src;
}

/* w:decode(key, data [, kind]) → true, or nil, err: data (check_source's)
 * decoded on the writer's thread, under the host's image limits; its result
 * is {path = key, image = } or {path = key, error = }.  What
 * pair:image_source() returns fits as it is. */
static int m_decode(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    const char *key = luaL_checkstring(L, 2);
    source src = check_source(L, 3);
    eh_error err = { 0 };
    eh_status st = eh_image_writer_decode(w, key, src.data, src.len, src.kind, &eh_lua_host(L)->image_limits, &err);
    return eh_lua_result(L, st, &err);
}

/* w:convert(path, data [, kind [, max_side [, {no_follow=}]]]) → true, or
 * nil, err: data (as w:decode reads it) decoded on the writer's thread,
 * shrunk to fit max_side px when given, saved at path; its result is a
 * write's {path=, hash=} or {path=, error=}.  no_follow: a "path" source
 * that is a symbolic link is refused (a file read back from the run folder). */
static int m_convert(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    const char *path = luaL_checkstring(L, 2);
    source src = check_source(L, 3);
    lua_Integer side = luaL_optinteger(L, 5, 0);
    luaL_argcheck(L, side >= 0 && side <= CONVERT_MAX_SIDE, 5, "max_side must be 0..65535");
    eh_image_limits lim = eh_lua_host(L)->image_limits;
    lim.read_flags = eh_lua_read_flags(L, 6);
    eh_error err = { 0 };
    return eh_lua_result(L, eh_image_writer_convert(w, path, src.data, src.len, src.kind, &lim, (int)side, &err), &err);
}

/* Pushes the list of finished results: a write's {path=, hash=}, a load's
 * {path=, image=}, either's {path=, error=}. */
static int push_results(lua_State *L, eh_image_writer *w)
{
    lua_newtable(L);
    eh_image_write_result r;
    for (lua_Integer i = 1; eh_image_writer_collect(w, 0, &r); i++) {
        if (r.image)
            eh_lua_push_image(L, r.image);   /* first: from here the Image owns it */
        lua_createtable(L, 0, 2);
        lua_pushstring(L, r.path);
        free(r.path);       /* the string is Lua's now: nothing below leaks it */
        lua_setfield(L, -2, "path");
        if (r.image) {
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, "image");
            lua_remove(L, -2);
        } else {
            lua_pushstring(L, r.status == EH_OK ? r.hash : r.error);
            lua_setfield(L, -2, r.status == EH_OK ? "hash" : "error");
        }
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* w:collect([wait]) → the results finished so far, oldest first (maybe
 * none); wait true: at least the oldest outstanding one, waited for. */
static int m_collect(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    if (lua_toboolean(L, 2))
        eh_image_writer_wait_oldest(w);
    return push_results(L, w);
}

/* w:flush() → waits for every submitted write, then as collect. */
static int m_flush(lua_State *L)
{
    eh_image_writer *w = check_writer(L, 1);
    eh_image_writer_flush(w);
    return push_results(L, w);
}

/* w:pending() → images submitted and not yet collected. */
static int m_pending(lua_State *L)
{
    lua_pushinteger(L, eh_image_writer_pending(check_writer(L, 1)));
    return 1;
}

static const luaL_Reg functions[] = {
    { "new", l_new },
    { NULL, NULL },
};

/* close, __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "submit", m_submit },   { "load", m_load },   { "decode", m_decode },   { "convert", m_convert },
    { "collect", m_collect }, { "flush", m_flush }, { "pending", m_pending }, { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &writer_type, NULL, methods, 0);
}

int eh_open_image_writer(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, functions);
    return 1;
}
