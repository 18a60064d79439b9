/* l_image.c — evalhost.image (decode, decode_b64, load) and the Image
 * userdata (`evalhost.Image`).  An Image owns one eh_image; it is born
 * closed (NULL) with its metatable set, then filled, so an error half-way
 * leaves a handle that __gc can collect.  close, __close and __gc are one
 * idempotent function; every other method rejects a closed Image. */
#include <limits.h>
#include <stdlib.h>

#include "evalhost/base64.h"
#include "evalhost/lua_bind.h"

#define IMAGE_MT "evalhost.Image"

static void image_free(void *img)
{
    eh_image_free(img);
}

static void image_describe(lua_State *L, void *p)
{
    const eh_image *img = p;
    lua_pushfstring(L, "Image(%dx%d)", img->width, img->height);
}

static const eh_lua_type image_type = {
    .mt = IMAGE_MT,
    .what = "Image",
    .free = image_free,
    .describe = image_describe,
    .closed = "Image(closed)",
};

static void create_meta(lua_State *L);

/* Pushes a closed Image (1 value) and returns it. */
static eh_lua_handle *new_image(lua_State *L)
{
    create_meta(L);
    return eh_lua_handle_new(L, &image_type, sizeof(eh_lua_handle), 0);
}

void eh_lua_push_image(lua_State *L, eh_image *img)
{
    new_image(L)->p = img;
}

eh_image *eh_lua_check_image(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &image_type);
}

eh_image *eh_lua_to_image(lua_State *L, int idx)
{
    eh_lua_handle *p = luaL_testudata(L, idx, IMAGE_MT);
    return p ? p->p : NULL;
}

static const eh_image_limits *host_limits(lua_State *L)
{
    return &eh_lua_host(L)->image_limits;
}

/* Pushes the Image made from img, or nil, err when img is NULL: the one
 * ending of every function that decodes. */
static int image_result(lua_State *L, eh_lua_handle *p, eh_image *img, const eh_error *err)
{
    if (!img) {
        lua_pop(L, 1);      /* the closed Image made for it */
        return eh_lua_fail(L, err);
    }
    p->p = img;
    return 1;
}

/* ---- evalhost.image ------------------------------------------------- */

/* decode(bytes) and decode_b64(text): the string argument as a file's
 * bytes or as base64 text (a data: URL too). */
static int decode_string(lua_State *L, int b64)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const eh_image_limits *lim = host_limits(L);
    eh_lua_handle *p = new_image(L);
    eh_error err = { 0 };
    eh_image *img = b64 ? eh_image_decode_b64(s, n, lim, &err) : eh_image_decode(s, n, lim, &err);
    return image_result(L, p, img, &err);
}

static int l_decode(lua_State *L)
{
    return decode_string(L, 0);
}

static int l_decode_b64(lua_State *L)
{
    return decode_string(L, 1);
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    eh_image_limits lim = *host_limits(L);
    lim.read_flags = eh_lua_read_flags(L, 2);
    eh_lua_handle *p = new_image(L);
    eh_error err = { 0 };
    return image_result(L, p, eh_image_load(path, &lim, &err), &err);
}

/* ---- methods ------------------------------------------------------------ */

static int m_size(lua_State *L)
{
    eh_image *img = eh_lua_check_image(L, 1);
    lua_pushinteger(L, img->width);
    lua_pushinteger(L, img->height);
    return 2;
}

static int m_channels(lua_State *L)
{
    lua_pushinteger(L, eh_lua_check_image(L, 1)->channels);
    return 1;
}

static int check_side(lua_State *L, int arg)
{
    lua_Integer v = luaL_checkinteger(L, arg);
    luaL_argcheck(L, v > 0 && v <= INT_MAX, arg, "size must be a positive integer");
    return (int)v;
}

/* img:resize(w, h [, filter]) → new Image; the original stays open. */
static int m_resize(lua_State *L)
{
    static const char *const filters[] = { "bilinear", "bicubic", "nearest", "lanczos", NULL };
    eh_image *img = eh_lua_check_image(L, 1);
    int w = check_side(L, 2), h = check_side(L, 3);
    int f = luaL_checkoption(L, 4, "bilinear", filters);
    const eh_image_limits *lim = host_limits(L);
    if ((int64_t)w * h > lim->max_pixels)
        return eh_lua_failf(L, EH_ELIMIT, "resize: %dx%d exceeds image.max_pixels (%lld)", w, h,
                            (long long)lim->max_pixels);
    if (w > lim->max_side || h > lim->max_side)
        return eh_lua_failf(L, EH_ELIMIT, "resize: %dx%d exceeds image.max_side (%d)", w, h, lim->max_side);
    eh_lua_handle *p = new_image(L);
    eh_error err = { 0 };
    return image_result(L, p, eh_image_resize(img, w, h, (eh_resize_filter)f, &err), &err);
}

/* Pushes buf as a Lua string (1 value) and frees it. */
static int push_bytes(lua_State *L, uint8_t *buf, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)buf, n);   /* may raise: copy before freeing */
    free(buf);
    luaL_pushresult(&b);
    return 1;
}

/* img:png([level]) and img:jpeg([quality]): the file's bytes as a string,
 * or nil, err; setting -1 is the encoder's default. */
static int push_encoded(lua_State *L, const eh_image *img, eh_image_format fmt, int setting)
{
    uint8_t *buf;
    size_t n;
    eh_error err = { 0 };
    eh_status st = fmt == EH_FMT_JPEG ? eh_image_encode_jpeg(img, setting, &buf, &n, &err)
                                      : eh_image_encode_png(img, setting, &buf, &n, &err);
    if (st != EH_OK)
        return eh_lua_fail(L, &err);
    return push_bytes(L, buf, n);
}

static int m_png(lua_State *L)
{
    eh_image *img = eh_lua_check_image(L, 1);
    lua_Integer level = luaL_optinteger(L, 2, -1);
    luaL_argcheck(L, level >= -1 && level <= 9, 2, "level must be 0..9");
    return push_encoded(L, img, EH_FMT_PNG, (int)level);
}

static int m_jpeg(lua_State *L)
{
    eh_image *img = eh_lua_check_image(L, 1);
    lua_Integer q = luaL_optinteger(L, 2, -1);
    luaL_argcheck(L, q == -1 || (q >= 1 && q <= 100), 2, "quality must be 1..100");
    return push_encoded(L, img, EH_FMT_JPEG, (int)q);
}

/* img:save(path) → true, or nil, err (format from the extension, atomic). */
static int m_save(lua_State *L)
{
    eh_image *img = eh_lua_check_image(L, 1);
    const char *path = luaL_checkstring(L, 2);
    eh_error err = { 0 };
    return eh_lua_result(L, eh_image_save(img, path, &err), &err);
}

/* img:b64([format]) → base64 of the image encoded as format (png default). */
static int m_b64(lua_State *L)
{
    static const char *const names[] = { "png", "jpeg", "jpg", "webp", "bmp", NULL };
    static const eh_image_format fmts[] = { EH_FMT_PNG, EH_FMT_JPEG, EH_FMT_JPEG, EH_FMT_WEBP, EH_FMT_BMP };
    eh_image *img = eh_lua_check_image(L, 1);
    eh_image_format fmt = fmts[luaL_checkoption(L, 2, "png", names)];
    uint8_t *buf;
    size_t n, tn;
    eh_error err = { 0 };
    if (eh_image_encode(img, fmt, &buf, &n, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    char *text = eh_b64_encode(buf, n, &tn);
    free(buf);
    if (!text)
        return eh_lua_failf(L, EH_ENOMEM, "b64: out of memory for %zu bytes", n);
    return push_bytes(L, (uint8_t *)text, tn);
}

/* img(...) returns img: lets `pair.image` (an Image) also serve
 * `pair:image()` (see l_dataset.c). */
static int m_call(lua_State *L)
{
    luaL_checkudata(L, 1, IMAGE_MT);
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg functions[] = {
    { "decode", l_decode },
    { "decode_b64", l_decode_b64 },
    { "load", l_load },
    { NULL, NULL },
};

/* close, __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "size", m_size }, { "channels", m_channels }, { "resize", m_resize }, { "png", m_png },
    { "jpeg", m_jpeg }, { "save", m_save },         { "b64", m_b64 },       { NULL, NULL },
};

static const luaL_Reg metamethods[] = {
    { "__call", m_call },
    { NULL, NULL },
};

/* Makes the metatable on first use, from the opener or from the first push
 * by another binding (a model may return an Image before any decode). */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &image_type, metamethods, methods, 0);
}

int eh_open_image(lua_State *L)
{
    create_meta(L);
    luaL_newlib(L, functions);
    return 1;
}
