/* l_host.c — the `evalhost` table: host context in the registry, the one
 * `nil, message` helper, and the small primitives (log, clock, swaps, hash,
 * fs, yaml, shard).  Sub-modules register themselves through their openers. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evalhost/config.h"
#include "evalhost/fs.h"
#include "evalhost/hash.h"
#include "evalhost/lua_bind.h"

#define HOST_KEY "evalhost.host"

eh_host *eh_lua_host(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY);
    eh_host *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!h)
        luaL_error(L, "evalhost: no host attached to this Lua state");
    return h;
}

int eh_lua_fail(lua_State *L, const eh_error *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err && err->msg[0] ? err->msg : "unknown error");
    lua_pushstring(L, eh_status_code(err ? err->code : EH_EINVAL));
    return 3;
}

int eh_lua_failf(lua_State *L, eh_status code, const char *fmt, ...)
{
    char msg[EH_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, eh_status_code(code));
    return 3;
}

int eh_lua_result(lua_State *L, eh_status st, const eh_error *err)
{
    if (st != EH_OK)
        return eh_lua_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

int eh_lua_read_flags(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "no_follow");
    int flags = lua_toboolean(L, -1) ? EH_FS_NOFOLLOW : 0;
    lua_pop(L, 1);
    /* depth = n: the folders above the file that the run made are not followed either */
    lua_getfield(L, idx, "depth");
    lua_Integer depth = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    if (depth < 0 || depth > 64)
        luaL_error(L, "read options: depth must be 0..64 (got %d)", (int)depth);
    return flags | EH_FS_DEPTH(depth);
}

/* ---- log, clock, swaps ---------------------------------------------- */

static int l_log(lua_State *L)
{
    static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
    int level = luaL_checkoption(L, 1, NULL, levels);
    int n = lua_gettop(L);
    /* string.format(fmt, ...) */
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    for (int i = 2; i <= n; i++)
        lua_pushvalue(L, i);
    lua_call(L, n - 1, 1);
    eh_log(eh_lua_host(L), (eh_log_level)level, "%s", lua_tostring(L, -1));
    return 0;
}

/* evalhost.interrupted() → the first stop signal's number and name
 * (2, "SIGINT"), or nil: the schedule stops between items when set. */
static int l_interrupted(lua_State *L)
{
    const eh_host *h = eh_lua_host(L);
    int sig = h->stop_signal ? (int)*h->stop_signal : 0;
    if (!sig) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, sig);
    lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal");
    return 2;
}

static int l_clock(lua_State *L)
{
    lua_pushnumber(L, eh_clock());
    return 1;
}

/* Sets field key of the table on top (loslib's setfield). */
static void set_integer(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

static void set_number(lua_State *L, const char *key, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static int l_swaps(lua_State *L)
{
    eh_host *h = eh_lua_host(L);
    lua_createtable(L, 0, 5);
    set_integer(L, "count", h->swaps.count);
    set_integer(L, "moves", h->swaps.moves);
    set_integer(L, "bytes", h->swaps.bytes);
    set_number(L, "seconds", h->swaps.seconds);
    lua_newtable(L);
    for (int i = 0; i < h->n_model_stats; i++) {
        const eh_model_stats *s = &h->model_stats[i];
        lua_createtable(L, 0, 5);
        set_integer(L, "loads", s->loads);
        set_integer(L, "unloads", s->unloads);
        set_integer(L, "bytes", s->bytes);
        set_number(L, "load_seconds", s->load_seconds);
        set_number(L, "unload_seconds", s->unload_seconds);
        lua_setfield(L, -2, s->name);
    }
    lua_setfield(L, -2, "by_model");
    return 1;
}

static int l_shard(lua_State *L)
{
    eh_host *h = eh_lua_host(L);
    lua_createtable(L, 0, 3);
    set_integer(L, "index", h->shard_index);
    set_integer(L, "count", h->shard_count);
    set_integer(L, "local_rank", h->local_rank);
    return 1;
}

/* ---- hash ------------------------------------------------------------ */

static int l_hash(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[EH_HASH_HEX];
    eh_hash_hex(s, len, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_hash_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char hex[EH_HASH_HEX];
    eh_error err = { 0 };
    if (eh_hash_file_ex(path, eh_lua_read_flags(L, 2), hex, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    lua_pushstring(L, hex);
    return 1;
}

/* ---- fs -------------------------------------------------------------- */

/* fs.mkdir(path) and fs.remove(path): true, or nil, message, code. */
static int path_call(lua_State *L, eh_status (*fn)(const char *, eh_error *))
{
    eh_error err = { 0 };
    return eh_lua_result(L, fn(luaL_checkstring(L, 1), &err), &err);
}

static int l_fs_mkdir(lua_State *L)
{
    return path_call(L, eh_fs_mkdir_p);
}

/* evalhost.fs.mkdir_beneath(root, rel): folders for outputs; a symlink
 * planted below root is refused, not followed. */
static int l_fs_mkdir_beneath(lua_State *L)
{
    eh_error err = { 0 };
    return eh_lua_result(L, eh_fs_mkdir_beneath(luaL_checkstring(L, 1), luaL_checkstring(L, 2), &err), &err);
}

static int l_fs_write(lua_State *L)
{
    size_t len;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    eh_error err = { 0 };
    return eh_lua_result(L, eh_fs_write_atomic(path, data, len, &err), &err);
}

static int l_fs_read(lua_State *L)
{
    char *buf;
    size_t len;
    eh_error err = { 0 };
    if (eh_fs_read_ex(luaL_checkstring(L, 1), (size_t)luaL_optinteger(L, 2, 0), eh_lua_read_flags(L, 3), &buf, &len,
                      &err) != EH_OK)
        return eh_lua_fail(L, &err);
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

static int stream_close(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok = fclose(p->f) == 0;
    return luaL_fileresult(L, ok, NULL);
}

/* evalhost.fs.open(path [, {no_follow=, depth=}]) -> a Lua file for reading
 * (io's type: lines, read, seek), opened as eh_fs_open_read does: never
 * blocking, regular files only, links refused as the options say. */
static int l_fs_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int flags = eh_lua_read_flags(L, 2);
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->f = NULL;
    p->closef = NULL;   /* a closed file until opened */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    eh_error err = { 0 };
    int fd = eh_fs_open_read(path, flags, &err);
    if (fd < 0)
        return eh_lua_fail(L, &err);
    p->f = fdopen(fd, "rb");
    if (!p->f) {
        int e = errno;
        close(fd);
        errno = e;
        return luaL_fileresult(L, 0, path);
    }
    p->closef = stream_close;
    return 1;
}

static int l_fs_exists(lua_State *L)
{
    lua_pushboolean(L, eh_fs_exists(luaL_checkstring(L, 1)));
    return 1;
}

static int l_fs_is_dir(lua_State *L)
{
    lua_pushboolean(L, eh_fs_is_dir(luaL_checkstring(L, 1)));
    return 1;
}

/* evalhost.fs.cwd(): the current folder's absolute path, for messages that
 * name where a relative path was looked for. */
static int l_fs_cwd(lua_State *L)
{
    char buf[4096];
    eh_error err = { 0 };
    if (eh_fs_cwd(buf, sizeof buf, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    lua_pushstring(L, buf);
    return 1;
}

static int l_fs_remove(lua_State *L)
{
    return path_call(L, eh_fs_remove);
}

static int l_fs_list(lua_State *L)
{
    eh_error err = { 0 };
    char **names = eh_fs_list(luaL_checkstring(L, 1), &err);
    if (!names)
        return eh_lua_fail(L, &err);
    lua_newtable(L);
    for (lua_Integer i = 0; names[i]; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    eh_fs_list_free(names);
    return 1;
}

/* ---- yaml ------------------------------------------------------------ */

static int push_yaml_result(lua_State *L, eh_node *root, const eh_error *err)
{
    if (!root)
        return eh_lua_fail(L, err);
    eh_lua_push_node(L, root);
    eh_node_free(root);
    return 1;
}

static int l_yaml_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *buf;
    size_t len;
    eh_error err = { 0 };
    eh_config_limits lim = eh_config_default_limits();
    if (eh_fs_read(path, lim.max_bytes, &buf, &len, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    eh_node *root = eh_yaml_parse(buf, len, path, &lim, &err);
    free(buf);
    return push_yaml_result(L, root, &err);
}

static int l_yaml_parse(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    eh_error err = { 0 };
    eh_node *root = eh_yaml_parse(text, len, luaL_optstring(L, 2, "<yaml>"), NULL, &err);
    return push_yaml_result(L, root, &err);
}

/* ---- config positions, nearest word ----------------------------------- */

/* evalhost.config_position(key, ...): line, col of that key in the config
 * file (string keys for mappings, 1-based integers for lists), or nil when
 * it is absent or came from --set. */
static int l_config_position(lua_State *L)
{
    const eh_node *n = eh_lua_host(L)->config;
    int top = lua_gettop(L);
    for (int i = 1; i <= top && n; i++) {
        if (n->type == EH_NODE_MAP) {
            n = eh_node_get(n, luaL_checkstring(L, i));
        } else if (n->type == EH_NODE_SEQ && lua_isinteger(L, i)) {
            lua_Integer k = lua_tointeger(L, i);
            n = k >= 1 && (size_t)k <= n->u.list.count ? n->u.list.items[k - 1] : NULL;
        } else {
            n = NULL;
        }
    }
    if (!n || n->line <= 0)
        return 0;
    lua_pushinteger(L, n->line);
    lua_pushinteger(L, n->col);
    return 2;
}

/* evalhost.nearest(word, {candidates}): the closest by edit distance, or nil
 * when none is close enough to help. */
static int l_nearest(lua_State *L)
{
    const char *word = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n > 4096)
        return luaL_error(L, "nearest: at most 4096 candidates");
    const char **c = lua_newuserdatauv(L, sizeof *c * (size_t)(n + 1), 0);   /* freed by the GC */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        c[i - 1] = luaL_checkstring(L, -1);
        lua_pop(L, 1);   /* the string stays alive in the table */
    }
    c[n] = NULL;
    const char *best = eh_nearest_word(word, c);
    if (!best)
        return 0;
    lua_pushstring(L, best);
    return 1;
}

/* ---- the evalhost table ------------------------------------------------ */

typedef struct submodule {
    const char *name;
    lua_CFunction open;
} submodule;

static const submodule submodules[] = {
    { "json", eh_open_json },         { "model", eh_open_model },         { "gpu", eh_open_gpu },
    { "progress", eh_open_progress }, { "image", eh_open_image },         { "image_writer", eh_open_image_writer },
    { "dataset", eh_open_dataset },   { "tokenizer", eh_open_tokenizer }, { "vlm", eh_open_vlm },
    { "journal", eh_open_journal },   { "bootstrap", eh_open_bootstrap }, { NULL, NULL },
};

/* luaopen for `require "evalhost"` (preloaded): pushes the table. */
int eh_open_evalhost(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "log", l_log },
        { "clock", l_clock },
        { "interrupted", l_interrupted },
        { "swaps", l_swaps },
        { "shard", l_shard },
        { "hash", l_hash },
        { "hash_file", l_hash_file },
        { "config_position", l_config_position },
        { "nearest", l_nearest },
        { NULL, NULL },
    };
    static const luaL_Reg fs_funcs[] = {
        { "mkdir", l_fs_mkdir },
        { "mkdir_beneath", l_fs_mkdir_beneath },
        { "write", l_fs_write },
        { "read", l_fs_read },
        { "exists", l_fs_exists },
        { "is_dir", l_fs_is_dir },
        { "remove", l_fs_remove },
        { "cwd", l_fs_cwd },
        { "list", l_fs_list },
        { "open", l_fs_open },
        { NULL, NULL },
    };
    static const luaL_Reg yaml_funcs[] = {
        { "load", l_yaml_load },
        { "parse", l_yaml_parse },
        { NULL, NULL },
    };
    eh_host *h = eh_lua_host(L);
    luaL_newlib(L, funcs);
    luaL_newlib(L, fs_funcs);
    lua_setfield(L, -2, "fs");
    luaL_newlib(L, yaml_funcs);
    lua_setfield(L, -2, "yaml");
    for (const submodule *m = submodules; m->name; m++) {
        m->open(L);
        lua_setfield(L, -2, m->name);
    }
    lua_pushstring(L, EVALHOST_VERSION);
    lua_setfield(L, -2, "version");
    eh_lua_push_node(L, h->config);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_setfield(L, -2, "config");
    lua_pushstring(L, h->config_path ? h->config_path : "");
    lua_setfield(L, -2, "config_path");
    lua_pushstring(L, h->script_path ? h->script_path : "");
    lua_setfield(L, -2, "script_path");
    lua_pushstring(L, h->data_dir ? h->data_dir : "");
    lua_setfield(L, -2, "data_dir");
    lua_createtable(L, 0, 2);
#ifdef EVALHOST_HAVE_TORCH
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "torch");
#ifdef EVALHOST_HAVE_HTTP
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "http");
    lua_setfield(L, -2, "features");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, h->resume == EH_RESUME_FORCE ? "force" : h->resume == EH_RESUME_YES ? "yes" : "no");
    lua_setfield(L, -2, "resume");
    lua_pushboolean(L, h->quiet);
    lua_setfield(L, -2, "quiet");
    lua_createtable(L, h->n_sets, 0);
    for (int i = 0; i < h->n_sets; i++) {
        lua_pushstring(L, h->sets[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "sets");
    lua_setfield(L, -2, "options");
    return 1;
}

void eh_lua_attach_host(lua_State *L, eh_host *host)
{
    lua_pushlightuserdata(L, host);
    lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
}
