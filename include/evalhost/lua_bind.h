/* lua_bind.h — what the Lua bindings (host/lua/l_*.c) share: reaching the
 * host from a lua_State, the one `nil, message` helper, the one handle type
 * (eh_lua_type: close, __gc, __close, __tostring and the closed-handle
 * check for every userdata), the openers of each evalhost.* sub-table and
 * cross-binding accessors. */
#ifndef EVALHOST_LUA_BIND_H
#define EVALHOST_LUA_BIND_H

#include <lua.h>
#include <lauxlib.h>

#include "evalhost/error.h"
#include "evalhost/host.h"
#include "evalhost/image.h"
#include "evalhost/node.h"

/* The host, stored in the registry under "evalhost.host". */
eh_host *eh_lua_host(lua_State *L);

/* World failures in luaL_fileresult's shape: push nil, the message and the
 * status code ("EIO", eh_status_code); return 3 (for `return
 * eh_lua_fail(...)`).  eh_lua_failf: the same three values with a formatted
 * message and the given code. */
int eh_lua_fail(lua_State *L, const eh_error *err);
int eh_lua_failf(lua_State *L, eh_status code, const char *fmt, ...);
/* An optional options table at idx ({no_follow = true}) as eh_fs_open_read
 * flags: the run folder's files are read without following a link. */
int eh_lua_read_flags(lua_State *L, int idx);

/* What a call that returns only success pushes (luaL_fileresult's shape):
 * true when st is EH_OK, else eh_lua_fail's nil, message, code. */
int eh_lua_result(lua_State *L, eh_status st, const eh_error *err);

/* A handle type (liolib's LStream shape; l_meta.c): a userdata whose first
 * member is an eh_lua_handle owning one pointer, NULL once closed.  Each
 * binding describes its type once; the shared functions below do the rest. */
typedef struct eh_lua_handle {
    void *p;                                  /* owned; NULL when closed */
} eh_lua_handle;

typedef struct eh_lua_type {
    const char *mt;                           /* metatable name, "evalhost.Image" */
    const char *what;                         /* "attempt to use a closed <what>" */
    void (*free)(void *p);                    /* releases an open handle's p */
    void (*describe)(lua_State *L, void *p);  /* pushes an open handle's __tostring; NULL: none */
    const char *closed;                       /* a closed handle's __tostring */
    int strict_close;                         /* close() on a closed handle raises too */
} eh_lua_type;

/* The type's metatable, made once: close, __gc and __close free the handle
 * (one function, safe to run twice; close raises when strict_close),
 * __tostring from describe/closed, then the binding's own metamethods (may
 * be NULL) and __index = its methods, each with the nup values on the
 * stack's top as upvalues (luaL_setfuncs'), which stay there. */
void eh_lua_new_type(lua_State *L, const eh_lua_type *t, const luaL_Reg *metamethods, const luaL_Reg *methods, int nup);
/* Pushes a handle born closed (p NULL) with its metatable set, so a failure
 * before it is filled leaves one __gc can collect: size bytes (at least an
 * eh_lua_handle, which comes first) and nuv user values.  Returns it. */
void *eh_lua_handle_new(lua_State *L, const eh_lua_type *t, size_t size, int nuv);
/* The open handle's pointer at idx; raises on another type or a closed one. */
void *eh_lua_handle_check(lua_State *L, int idx, const eh_lua_type *t);

/* Converts between eh_node and Lua values (l_node.c).  eh_lua_push_node
 * pushes 1 value; eh_lua_to_node returns a new tree or NULL with err set
 * (cycles, unsupported types). */
void eh_lua_push_node(lua_State *L, const eh_node *n);
eh_node *eh_lua_to_node(lua_State *L, int idx, eh_error *err);

/* Image userdata (l_image.c): push takes ownership; check raises on a
 * non-Image or closed Image. */
void eh_lua_push_image(lua_State *L, eh_image *img);
eh_image *eh_lua_check_image(lua_State *L, int idx);
eh_image *eh_lua_to_image(lua_State *L, int idx);   /* NULL if not an open Image */

/* Stores host in the registry (main.c, before anything else runs). */
void eh_lua_attach_host(lua_State *L, eh_host *host);
/* The `evalhost` table itself (preloaded as package.preload.evalhost). */
int eh_open_evalhost(lua_State *L);

/* Module openers: each pushes its table (1 value). */
int eh_open_json(lua_State *L);
int eh_open_image(lua_State *L);
int eh_open_image_writer(lua_State *L);  /* evalhost.image_writer (l_image_writer.c) */
int eh_open_dataset(lua_State *L);
int eh_open_model(lua_State *L);
int eh_open_gpu(lua_State *L);
int eh_open_progress(lua_State *L);  /* pushes the evalhost.progress function */
int eh_open_tokenizer(lua_State *L);
int eh_open_vlm(lua_State *L);
int eh_open_journal(lua_State *L);
int eh_open_bootstrap(lua_State *L);  /* evalhost.bootstrap (l_bootstrap.c) */

#endif
