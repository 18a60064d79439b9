/* l_model.c — evalhost.model (Model handles) and evalhost.gpu. */
#include <stdlib.h>
#include <string.h>

#include "evalhost/lua_bind.h"
#include "evalhost/model.h"
#ifdef EVALHOST_HAVE_TORCH
#include "evalhost/torch_shim.h"
#endif

#define MODEL_MT "evalhost.Model"

static void model_free(void *m)
{
    eh_model_free(m);
}

static void model_describe(lua_State *L, void *m)
{
    lua_pushfstring(L, "Model(%s: %s/%s, %s)", eh_model_section(m), eh_model_backend_name(m), eh_model_name(m),
                    eh_residency_name(eh_model_state(m)));
}

static const eh_lua_type model_type = {
    .mt = MODEL_MT,
    .what = "Model",
    .free = model_free,
    .describe = model_describe,
    .closed = "Model(closed)",
};

static eh_model *check_model(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &model_type);
}

/* Failures return nil, message, {code = "ENET"|..., whole = bool}.
 * `whole` tells a schedule that the call failed as a whole (server down,
 * out of memory), not one pair, so it stops resumably instead of recording
 * every pair as failed; `code` lets it retry network failures on resume. */
static int push_failure(lua_State *L, const eh_error *err, int whole)
{
    /* eh_lua_fail's nil, message, with a table in the code's place */
    lua_pushnil(L);
    lua_pushstring(L, err && err->msg[0] ? err->msg : "unknown error");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, eh_status_code(err->code));
    lua_setfield(L, -2, "code");
    lua_pushboolean(L, whole);
    lua_setfield(L, -2, "whole");
    return 3;
}

/* A whole-call failure: state problems are script bugs (raise). */
static int call_failed(lua_State *L, const eh_error *err)
{
    if (err->code == EH_ESTATE)
        return luaL_error(L, "%s", err->msg);
    return push_failure(L, err, 1);
}

/* evalhost.model.open(spec [, section]) → Model | nil, err */
static int model_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *section = luaL_optstring(L, 2, NULL);
    if (!section) {
        lua_getfield(L, 1, "section");
        section = lua_isstring(L, -1) ? lua_tostring(L, -1) : "model";
    }
    eh_error err = { 0 };
    eh_node *spec = eh_lua_to_node(L, 1, &err);
    if (!spec)
        return luaL_error(L, "model.open: %s", err.msg);
    eh_lua_handle *lm = eh_lua_handle_new(L, &model_type, sizeof *lm, 0);
    lm->p = eh_model_open(eh_lua_host(L), section, spec, &err);
    eh_node_free(spec);
    if (!lm->p)
        return eh_lua_fail(L, &err);
    return 1;
}

/* load and unload: true, or the whole call's failure. */
static int move_model(lua_State *L, eh_status (*move)(eh_model *, eh_error *))
{
    eh_model *m = check_model(L, 1);
    eh_error err = { 0 };
    if (move(m, &err) != EH_OK)
        return call_failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int model_load(lua_State *L)
{
    return move_model(L, eh_model_load);
}

static int model_unload(lua_State *L)
{
    return move_model(L, eh_model_unload);
}

static int model_state(lua_State *L)
{
    lua_pushstring(L, eh_residency_name(eh_model_state(check_model(L, 1))));
    return 1;
}

static int model_footprint(lua_State *L)
{
    lua_pushinteger(L, eh_model_footprint(check_model(L, 1)));
    return 1;
}

static int model_info(lua_State *L)
{
    eh_model *m = check_model(L, 1);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, eh_model_section(m));
    lua_setfield(L, -2, "section");
    lua_pushstring(L, eh_model_role_of(m) == EH_ROLE_EDITOR ? "editor" : "judge");
    lua_setfield(L, -2, "role");
    lua_pushstring(L, eh_model_backend_name(m));
    lua_setfield(L, -2, "backend");
    lua_pushstring(L, eh_model_name(m));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, eh_model_device(m));
    lua_setfield(L, -2, "device");
    lua_pushstring(L, eh_model_dtype(m));
    lua_setfield(L, -2, "dtype");
    if (*eh_model_host_memory(m)) {   /* after a load: pinned or pageable, and why */
        lua_pushstring(L, eh_model_host_memory(m));
        lua_setfield(L, -2, "host_memory");
    }
    lua_pushinteger(L, eh_model_batch_size(m));
    lua_setfield(L, -2, "batch_size");
    if (eh_model_revision(m)[0]) {
        lua_pushstring(L, eh_model_revision(m));
        lua_setfield(L, -2, "revision");
    }
    return 1;
}

static const char *opt_field_string(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);   /* left on the stack: keeps the string alive */
    if (lua_isnil(L, -1))
        return NULL;
    if (!lua_isstring(L, -1))
        luaL_error(L, "request field '%s' must be a string", key);
    return lua_tostring(L, -1);
}

static const eh_image *opt_field_image(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1))
        return NULL;
    return eh_lua_check_image(L, -1);
}

/* The edit's pictures at idx: an Image, or a list of Images (Picture 1,
 * 2, ... for Qwen-Image-Edit-2509/2511).  The list's pointers live in a
 * userdata stored in anchor (a table that outlives the call). */
static void check_pictures(lua_State *L, int idx, int anchor, eh_edit_request *r)
{
    r->more_images = NULL;
    r->n_more_images = 0;
    if (!lua_istable(L, idx)) {
        r->image = eh_lua_check_image(L, idx);
        return;
    }
    lua_Integer n = luaL_len(L, idx);
    if (n < 1)
        luaL_error(L, "edit: the list of input images is empty");
    if (n > 1024)
        luaL_error(L, "edit: %d input images (at most 1024)", (int)n);
    const eh_image **more = n > 1 ? lua_newuserdatauv(L, sizeof *more * (size_t)(n - 1), 0) : NULL;
    if (more)
        lua_rawseti(L, anchor, luaL_len(L, anchor) + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (!luaL_testudata(L, -1, "evalhost.Image"))
            luaL_error(L, "edit: input image %d is a %s, not an evalhost.Image", (int)i, luaL_typename(L, -1));
        const eh_image *img = eh_lua_check_image(L, -1);
        lua_pop(L, 1);   /* the list keeps it alive */
        if (i == 1)
            r->image = img;
        else
            more[i - 2] = img;
    }
    r->more_images = more;
    r->n_more_images = (size_t)(n - 1);
}

static void fill_edit_request(lua_State *L, int t, int anchor, eh_edit_request *r)
{
    lua_getfield(L, t, "image");
    if (lua_isnil(L, -1))
        luaL_error(L, "edit request needs an 'image'");
    check_pictures(L, lua_gettop(L), anchor, r);
    r->instruction = opt_field_string(L, t, "instruction");
    if (!r->instruction)
        luaL_error(L, "edit request needs an 'instruction'");
    r->options = NULL;
}

#define MAX_CHAT_MESSAGES 64
#define MAX_CHAT_PARTS 256   /* content parts of one request, all messages */

/* A benchmark's layout fields (SPEC §5): images = {Image, ...} in the order
 * the benchmark sends them, text_first, text_only, jpeg_quality. The
 * pointer array is anchored in the table at `anchor` for the call.  How
 * many pictures a judge takes is its backend's to say (the native judge
 * fails a pair past EH_SCORE_MAX_IMAGES by count), so a run's pair fails
 * by name instead of the script raising. */
static void fill_score_layout(lua_State *L, int t, int anchor, eh_score_request *r)
{
    lua_getfield(L, t, "images");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > MAX_CHAT_PARTS)
            luaL_error(L, "score request: 'images' holds %d pictures (1..%d)", (int)n, MAX_CHAT_PARTS);
        const eh_image **list = lua_newuserdatauv(L, sizeof *list * (size_t)n, 0);
        lua_rawseti(L, anchor, luaL_len(L, anchor) + 1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            if (!luaL_testudata(L, -1, "evalhost.Image"))
                luaL_error(L, "score request: images[%d] is a %s, not an evalhost.Image", (int)i, luaL_typename(L, -1));
            list[i - 1] = eh_lua_check_image(L, -1);
            lua_pop(L, 1);   /* the request's list keeps it alive */
        }
        r->images = list;
        r->n_images = (size_t)n;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "text_first");
    r->text_first = lua_toboolean(L, -1);
    lua_getfield(L, t, "text_only");
    r->text_only = lua_toboolean(L, -1);
    lua_getfield(L, t, "jpeg_quality");
    lua_Integer q = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
    if (q < 0 || q > 100)
        luaL_error(L, "score request: jpeg_quality must be 1..100, got %d", (int)q);
    r->jpeg_quality = (int)q;
    lua_pop(L, 3);
}

/* One content part at idx into p: {type = "text", text = s} or
 * {type = "image", image = Image}.  Raises on anything else (a layout bug). */
static void check_chat_part(lua_State *L, int idx, int i, int j, eh_chat_part *p)
{
    if (!lua_istable(L, idx))
        luaL_error(L, "score request: messages[%d].content[%d] is a %s, not a part table", i, j, luaL_typename(L, idx));
    lua_getfield(L, idx, "type");
    const char *type = lua_tostring(L, -1);
    lua_getfield(L, idx, "image");
    lua_getfield(L, idx, "text");
    p->text = NULL;
    p->image = NULL;
    if ((!type || !strcmp(type, "image")) && !lua_isnil(L, -2)) {
        if (!luaL_testudata(L, -2, "evalhost.Image"))
            luaL_error(L, "score request: messages[%d].content[%d].image is a %s, not an evalhost.Image", i, j,
                       luaL_typename(L, -2));
        p->image = eh_lua_check_image(L, -2);
    } else if ((!type || !strcmp(type, "text")) && lua_type(L, -1) == LUA_TSTRING) {
        p->text = lua_tostring(L, -1);   /* the part table (anchored) keeps it */
    } else {
        luaL_error(L,
                   "score request: messages[%d].content[%d] is neither {type = \"text\", text = string} nor "
                   "{type = \"image\", image = Image}",
                   i, j);
    }
    lua_pop(L, 3);
}

/* r->messages from req.messages, or from evalhost.chat.score_messages(req)
 * when the request has none: the one layout every judge backend gets.
 * The list and its arrays are anchored in the table at `anchor`. */
static void fill_score_messages(lua_State *L, int t, int anchor, eh_score_request *r)
{
    luaL_checkstack(L, 12, "score request messages");
    lua_getfield(L, t, "messages");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "evalhost.chat");
        lua_call(L, 1, 1);   /* raises through the caller's protected call */
        lua_getfield(L, -1, "score_messages");
        lua_remove(L, -2);
        lua_pushvalue(L, t);
        lua_call(L, 1, 1);
    }
    int msgs = lua_gettop(L);
    if (!lua_istable(L, msgs))
        luaL_error(L, "score request: messages is a %s, not a list", luaL_typename(L, msgs));
    lua_pushvalue(L, msgs);
    lua_rawseti(L, anchor, luaL_len(L, anchor) + 1);
    lua_Integer n = luaL_len(L, msgs), total = 0;
    if (n < 1 || n > MAX_CHAT_MESSAGES)
        luaL_error(L, "score request: %d messages (1..%d)", (int)n, MAX_CHAT_MESSAGES);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, msgs, i) != LUA_TTABLE)
            luaL_error(L, "score request: messages[%d] is a %s, not a table", (int)i, luaL_typename(L, -1));
        total += lua_getfield(L, -1, "content") == LUA_TTABLE ? luaL_len(L, -1) : 1;
        lua_pop(L, 2);
    }
    if (total > MAX_CHAT_PARTS)
        luaL_error(L, "score request: %d content parts (at most %d)", (int)total, MAX_CHAT_PARTS);
    eh_chat_message *m = lua_newuserdatauv(L, sizeof *m * (size_t)n, 0);
    lua_rawseti(L, anchor, luaL_len(L, anchor) + 1);
    eh_chat_part *parts = lua_newuserdatauv(L, sizeof *parts * (size_t)(total ? total : 1), 0);
    lua_rawseti(L, anchor, luaL_len(L, anchor) + 1);
    size_t k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, msgs, i);
        lua_getfield(L, -1, "role");
        const char *role = lua_tostring(L, -1);
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")))
            luaL_error(L, "score request: messages[%d].role is %s (system, user or assistant)", (int)i,
                       role ? role : luaL_typename(L, -1));
        m[i - 1].role = role;   /* the message table (anchored) keeps it */
        m[i - 1].parts = parts + k;
        lua_getfield(L, -2, "content");
        if (lua_type(L, -1) == LUA_TSTRING) {
            parts[k++] = (eh_chat_part){ .text = lua_tostring(L, -1) };
        } else if (lua_istable(L, -1)) {
            lua_Integer np = luaL_len(L, -1);
            for (lua_Integer j = 1; j <= np; j++) {
                lua_geti(L, -1, j);
                check_chat_part(L, lua_gettop(L), (int)i, (int)j, &parts[k]);
                k++;
                lua_pop(L, 1);
            }
        } else {
            luaL_error(L, "score request: messages[%d].content is a %s (a string or a list of parts)", (int)i,
                       luaL_typename(L, -1));
        }
        m[i - 1].n_parts = (size_t)(parts + k - m[i - 1].parts);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    r->messages = m;
    r->n_messages = (size_t)n;
}

static void fill_score_request(lua_State *L, int t, int anchor, eh_score_request *r)
{
    luaL_checktype(L, t, LUA_TTABLE);
    memset(r, 0, sizeof *r);
    fill_score_layout(L, t, anchor, r);
    r->image = opt_field_image(L, t, "image");
    if (!r->image)
        luaL_error(L, "score request needs an 'image'");
    r->original = opt_field_image(L, t, "original");
    r->instruction = opt_field_string(L, t, "instruction");
    r->description = opt_field_string(L, t, "description");
    r->system_prompt = opt_field_string(L, t, "system_prompt");
    r->user_prompt = opt_field_string(L, t, "user_prompt");
    r->category = opt_field_string(L, t, "category");
    r->id = opt_field_string(L, t, "id");
    fill_score_messages(L, t, anchor, r);
}

/* Pushes a score result table, freeing its text. */
static void push_score_result(lua_State *L, eh_score_result *r)
{
    lua_newtable(L);
    if (!r->ok) {
        lua_pushstring(L, r->err.msg[0] ? r->err.msg : "score failed");
        lua_setfield(L, -2, "error");
        lua_pushstring(L, eh_status_code(r->err.code ? r->err.code : EH_EMODEL));
        lua_setfield(L, -2, "code");
    } else {
        lua_pushnumber(L, r->score);
        lua_setfield(L, -2, "score");
    }
    if (r->text) {
        lua_pushstring(L, r->text);
        lua_setfield(L, -2, "text");
    }
    if (r->has_probs) {
        /* probs[1] is P(score_lo); argmax the most probable score (the lowest on a tie) */
        int n = r->n_probs > 0 && r->n_probs <= EH_SCORE_MAX_VALUES ? r->n_probs : 11, best = 0;
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            lua_pushnumber(L, r->probs[i]);
            lua_rawseti(L, -2, i + 1);
            if (r->probs[i] > r->probs[best])
                best = i;
        }
        lua_setfield(L, -2, "probs");
        lua_pushinteger(L, r->score_lo + best);
        lua_setfield(L, -2, "argmax");
        lua_createtable(L, 2, 0);
        lua_pushinteger(L, r->score_lo);
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, r->score_lo + n - 1);
        lua_rawseti(L, -2, 2);
        lua_setfield(L, -2, "score_range");
    }
    if (r->score_method) {
        lua_pushstring(L, r->score_method);
        lua_setfield(L, -2, "score_method");
    }
    eh_score_result_clear(r);
}

/* Per-call options (a table of settings the backend reads, e.g. seed) as
 * a node; NULL for nil.  Raises on a table that is not plain data. */
static eh_node *edit_options(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    eh_error err = { 0 };
    eh_node *n = eh_lua_to_node(L, idx, &err);
    if (!n)
        luaL_error(L, "edit options: %s", err.msg);
    return n;
}

/* m:edit(img | {img, ...}, instruction [, opts]) → Image | nil, err */
static int model_edit(lua_State *L)
{
    eh_model *m = check_model(L, 1);
    eh_edit_request req = { .instruction = luaL_checkstring(L, 3) };
    lua_settop(L, 4);
    lua_newtable(L);   /* 5: anchor */
    check_pictures(L, 2, 5, &req);
    eh_node *opts = edit_options(L, 4);
    req.options = opts;
    eh_edit_result res;
    eh_error err = { 0 };
    eh_status rc = eh_model_edit_batch(m, &req, &res, 1, &err);
    eh_node_free(opts);
    if (rc != EH_OK)
        return call_failed(L, &err);
    if (!res.image)
        return push_failure(L, &res.err, 0);
    eh_lua_push_image(L, res.image);
    return 1;
}

/* m:edit_batch({{image=, instruction=}, ...}) → {{image=}|{error=}, ...};
 * image may be a list of Images as in m:edit */
static int model_edit_batch(lua_State *L)
{
    eh_model *m = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    lua_settop(L, 2);
    int base = lua_gettop(L);
    eh_edit_request *reqs = lua_newuserdatauv(L, sizeof *reqs * (size_t)(n ? n : 1), 0);
    eh_edit_result *res = lua_newuserdatauv(L, sizeof *res * (size_t)(n ? n : 1), 0);
    lua_newtable(L);   /* base + 3: anchor of the picture lists */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        fill_edit_request(L, lua_gettop(L), base + 3, &reqs[i - 1]);
        /* the request table stays referenced from arg 2: pop our copies */
        lua_settop(L, base + 3);
    }
    /* options last: nothing may raise while their nodes are held */
    eh_node **opts = lua_newuserdatauv(L, sizeof *opts * (size_t)(n ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        lua_getfield(L, -1, "options");
        opts[i - 1] = NULL;
        if (!lua_isnil(L, -1)) {
            eh_error oe = { 0 };
            opts[i - 1] = lua_istable(L, -1) ? eh_lua_to_node(L, lua_gettop(L), &oe) : NULL;
            if (!opts[i - 1]) {
                for (lua_Integer j = 0; j < i - 1; j++)
                    eh_node_free(opts[j]);
                return luaL_error(L, "edit request %d: options must be a table of plain values%s%s", (int)i,
                                  oe.msg[0] ? ": " : "", oe.msg);
            }
        }
        reqs[i - 1].options = opts[i - 1];
        lua_pop(L, 2);
    }
    eh_error err = { 0 };
    eh_status rc = eh_model_edit_batch(m, reqs, res, (size_t)n, &err);
    for (lua_Integer i = 0; i < n; i++)
        eh_node_free(opts[i]);
    if (rc != EH_OK)
        return call_failed(L, &err);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_newtable(L);
        if (res[i].image) {
            eh_lua_push_image(L, res[i].image);
            lua_setfield(L, -2, "image");
        } else {
            lua_pushstring(L, res[i].err.msg[0] ? res[i].err.msg : "edit failed");
            lua_setfield(L, -2, "error");
            lua_pushstring(L, eh_status_code(res[i].err.code ? res[i].err.code : EH_EMODEL));
            lua_setfield(L, -2, "code");
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* m:score(req) → {score=, text=, ...} | nil, err */
static int model_score(lua_State *L)
{
    eh_model *m = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    eh_score_request req;
    lua_newtable(L);   /* anchors the request's picture list */
    fill_score_request(L, 2, lua_gettop(L), &req);
    eh_score_result res;
    eh_error err = { 0 };
    if (eh_model_score_batch(m, &req, &res, 1, &err) != EH_OK)
        return call_failed(L, &err);
    if (!res.ok) {
        eh_error item = res.err;
        if (!item.msg[0])
            eh_fail(&item, item.code ? item.code : EH_EMODEL, "score failed");
        eh_score_result_clear(&res);
        return push_failure(L, &item, 0);
    }
    push_score_result(L, &res);
    return 1;
}

static int model_score_batch(lua_State *L)
{
    eh_model *m = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    int base = lua_gettop(L);
    eh_score_request *reqs = lua_newuserdatauv(L, sizeof *reqs * (size_t)(n ? n : 1), 0);
    eh_score_result *res = lua_newuserdatauv(L, sizeof *res * (size_t)(n ? n : 1), 0);
    lua_newtable(L);   /* anchors the requests' picture lists */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        fill_score_request(L, lua_gettop(L), base + 3, &reqs[i - 1]);
        lua_settop(L, base + 3);
    }
    eh_error err = { 0 };
    if (eh_model_score_batch(m, reqs, res, (size_t)n, &err) != EH_OK)
        return call_failed(L, &err);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        push_score_result(L, &res[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg funcs[] = {
    { "open", model_open },
    { NULL, NULL },
};

/* close (freeing the model once), __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "load", model_load },
    { "unload", model_unload },
    { "state", model_state },
    { "footprint", model_footprint },
    { "info", model_info },
    { "edit", model_edit },
    { "edit_batch", model_edit_batch },
    { "score", model_score },
    { "score_batch", model_score_batch },
    { NULL, NULL },
};

/* The one place this type's metatable is made (lua_bind.h's eh_lua_new_type). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &model_type, NULL, methods, 0);
}

int eh_open_model(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, funcs);
    return 1;
}

/* evalhost.gpu.memory([dev]) → {free=, total=}; zeros without CUDA.  With
 * run.device_memory set, gpu.memory("cpu") is the simulated device:
 * {free = capacity - the loaded CPU models' footprints, total = capacity,
 * simulated = true}. */
static int gpu_memory(lua_State *L)
{
    int64_t free_b = 0, total_b = 0;
    int simulated = 0;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *d = lua_tostring(L, 1);
        if (strcmp(d, "cpu"))
            return luaL_argerror(L, 1, "a CUDA device index or \"cpu\"");
        const eh_host *h = eh_lua_host(L);
        if (h && h->device_capacity > 0) {
            total_b = h->device_capacity;
            free_b = h->device_capacity - h->device_used;
            simulated = 1;
        }
    } else {
        lua_Integer dev = luaL_optinteger(L, 1, 0);
#ifdef EVALHOST_HAVE_TORCH
        eh_error err = { 0 };
        if (eh_torch_cuda_memory((int)dev, &free_b, &total_b, &err) != EH_OK)
            return eh_lua_fail(L, &err);
#else
        (void)dev;
#endif
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, free_b);
    lua_setfield(L, -2, "free");
    lua_pushinteger(L, total_b);
    lua_setfield(L, -2, "total");
    if (simulated) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "simulated");
    }
    return 1;
}

int eh_open_gpu(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "memory", gpu_memory },
        { NULL, NULL },
    };
    luaL_newlib(L, funcs);
    return 1;
}
