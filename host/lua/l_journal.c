/* l_journal.c — evalhost.journal: the results journal as a Lua type.
 *
 *   local j, err, old = evalhost.journal.open(dir, run_key [, opts])
 *     opts = {header = {...} (extra header fields), resume = "no"|"yes"|"force"
 *             (default evalhost.options.resume)}; on a run-key mismatch `old`
 *             is the journal's header, so the caller can say what changed.
 *   j:done(stage, cat, id) -> a replayed step's record table or nil
 *   j:record(stage, cat, id, tbl) -> true, or nil and a message (disk full ...)
 *   j:each() -> an iterator over the step lines replayed at open, in file
 *     order, each {stage=, category=, id=, record=, line=, offset=} decoded
 *     when reached (offset: where the line starts in the file)
 *   j:entries() -> the same entries as one list
 *   j:record_run(tbl), j:runs() -> {{record=, line=}, ...}: each process's own line
 *   j:header(), j:is_new(), j:path(), j:close()
 *   evalhost.journal.read(dir) -> header, entries (read-only, no lock: merge)
 *   evalhost.journal.header(dir) -> header table or nil (no lock)
 *
 * A step line is {"type":"step","stage":..,"category":..,"id":..,"record":{..}};
 * a later line for the same step replaces the earlier one. */
#include <stdlib.h>
#include <string.h>

#include "evalhost/journal.h"
#include "evalhost/lua_bind.h"

#define JOURNAL_MT "evalhost.Journal"
/* user values of the userdata */
#define UV_INDEX 1   /* "stage\tcat\tid" -> record, built by the first j:done */
/* upvalues of every function here: json.encode, json.decode */
#define UP_ENCODE lua_upvalueindex(1)
#define UP_DECODE lua_upvalueindex(2)

static void journal_free(void *j)
{
    eh_journal_free(j);   /* releases the lock */
}

static void journal_describe(lua_State *L, void *j)
{
    lua_pushfstring(L, "evalhost.Journal (%s)", eh_journal_path(j));
}

static const eh_lua_type journal_type = {
    .mt = JOURNAL_MT,
    .what = "journal",
    .free = journal_free,
    .describe = journal_describe,
    .closed = "evalhost.Journal (closed)",
};

static eh_journal *check_journal(lua_State *L, int idx)
{
    return eh_lua_handle_check(L, idx, &journal_type);
}

static void warn_to_log(void *ud, const char *msg)
{
    eh_log((const eh_host *)ud, EH_LOG_WARN, "%s", msg);
}

/* Decodes a JSON text with the upvalue decoder: pushes the value or nil. */
static void decode(lua_State *L, const char *text)
{
    lua_pushvalue(L, UP_DECODE);
    lua_pushstring(L, text);
    lua_call(L, 1, 1);
}

static void push_key(lua_State *L, const char *stage, const char *cat, const char *id)
{
    lua_pushfstring(L, "%s\t%s\t%s", stage, cat, id);
}

/* Pushes the entry of j's line i and returns 1, or pushes nothing and
 * returns 0 when the line is not a step. Nothing is decoded ahead: a
 * resumed run of 100k pairs holds one entry at a time, not all of them. */
static int push_entry(lua_State *L, const eh_journal *j, size_t i)
{
    decode(L, eh_journal_line(j, i));
    int e = lua_gettop(L);
    if (!lua_istable(L, e) || lua_getfield(L, e, "type") != LUA_TSTRING || strcmp(lua_tostring(L, -1), "step") != 0) {
        lua_settop(L, e - 1);   /* other line types are not steps */
        return 0;
    }
    lua_getfield(L, e, "stage");
    lua_getfield(L, e, "category");
    lua_getfield(L, e, "id");
    int ok = lua_isstring(L, -3) && lua_isstring(L, -2) && lua_isstring(L, -1);
    lua_settop(L, e);
    if (!ok) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushinteger(L, (lua_Integer)eh_journal_line_no(j, i));
    lua_setfield(L, e, "line");   /* where a bad record is, for its message */
    lua_pushinteger(L, (lua_Integer)eh_journal_line_offset(j, i));
    lua_setfield(L, e, "offset");
    return 1;
}

/* Pushes the list of j's step entries. */
static void push_entries(lua_State *L, const eh_journal *j)
{
    lua_newtable(L);
    lua_Integer n = 0;
    for (size_t i = 0; i < eh_journal_count(j); i++)
        if (push_entry(L, j, i))
            lua_rawseti(L, -2, ++n);
}

static eh_resume_mode resume_option(lua_State *L, int opts, eh_host *h)
{
    static const char *const modes[] = { "no", "yes", "force" };
    if (lua_getfield(L, opts, "resume") == LUA_TNIL) {
        lua_pop(L, 1);
        return h->resume;
    }
    const char *s = lua_tostring(L, -1);
    for (int m = 0; s && m < 3; m++) {
        if (!strcmp(s, modes[m])) {
            lua_pop(L, 1);
            return (eh_resume_mode)m;
        }
    }
    luaL_error(L, "journal.open: opts.resume must be \"no\", \"yes\" or \"force\" (got %s)",
               luaL_tolstring(L, -1, NULL));
    return EH_RESUME_NO;
}

/* Pushes the header of dir's journal as a table, or nil. */
static void push_old_header(lua_State *L, const char *dir)
{
    char *text = NULL;
    eh_error err = { 0 };
    if (eh_journal_read_header(dir, &text, &err) == EH_OK && text) {
        decode(L, text);
        free(text);
    } else {
        lua_pushnil(L);
    }
}

/* A closed Journal with its user value (UV_INDEX). */
static eh_lua_handle *new_journal(lua_State *L)
{
    return eh_lua_handle_new(L, &journal_type, sizeof(eh_lua_handle), 1);
}

static int l_open(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    else {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    eh_host *h = eh_lua_host(L);
    eh_journal_params p = eh_journal_default_params();
    p.run_key = key;
    p.resume = resume_option(L, 3, h);
    p.warn = warn_to_log;
    p.warn_ud = h;
    if (lua_getfield(L, 3, "header") == LUA_TTABLE) {
        lua_pushvalue(L, UP_ENCODE);
        lua_insert(L, -2);
        lua_call(L, 1, 1);
        p.header_json = lua_tostring(L, -1);   /* stays on the stack until open returns */
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "journal.open: opts.header must be a table");
    }
    eh_lua_handle *lj = new_journal(L);
    eh_error err = { 0 };
    lj->p = eh_journal_open(dir, &p, &err);
    if (!lj->p) {
        eh_lua_fail(L, &err);
        /* journal.open's third value is another run's header (the schedule
         * explains the difference from it), so no code there */
        lua_pop(L, 1);
        if (err.code != EH_ESTATE || strstr(err.msg, "different run") == NULL)
            return 2;
        push_old_header(L, dir);
        return 3;
    }
    return 1;
}

static int l_read(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    eh_journal_params p = eh_journal_default_params();
    p.read_only = 1;
    p.resume = EH_RESUME_FORCE;   /* a damaged middle line is skipped with a warning */
    p.warn = warn_to_log;
    p.warn_ud = eh_lua_host(L);
    eh_lua_handle *lj = new_journal(L);   /* owns j until it is collected, even if Lua raises */
    eh_error err = { 0 };
    lj->p = eh_journal_open(dir, &p, &err);
    if (!lj->p)
        return eh_lua_fail(L, &err);
    decode(L, eh_journal_header(lj->p));
    push_entries(L, lj->p);
    eh_journal_free(lj->p);
    lj->p = NULL;
    return 2;
}

static int l_header_of(lua_State *L)
{
    push_old_header(L, luaL_checkstring(L, 1));
    return 1;
}

/* ---- methods ---------------------------------------------------------- */

static int m_done(lua_State *L)
{
    eh_journal *j = check_journal(L, 1);
    const char *stage = luaL_checkstring(L, 2);
    const char *cat = luaL_checkstring(L, 3);
    const char *id = luaL_checkstring(L, 4);
    if (lua_getiuservalue(L, 1, UV_INDEX) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);   /* a later line for a step replaces the earlier one */
        for (size_t i = 0; i < eh_journal_count(j); i++) {
            if (!push_entry(L, j, i))
                continue;
            lua_getfield(L, -1, "stage");
            lua_getfield(L, -2, "category");
            lua_getfield(L, -3, "id");
            push_key(L, lua_tostring(L, -3), lua_tostring(L, -2), lua_tostring(L, -1));
            lua_getfield(L, -5, "record");
            lua_settable(L, -7);
            lua_pop(L, 4);
        }
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, UV_INDEX);
    }
    push_key(L, stage, cat, id);
    lua_gettable(L, -2);
    return 1;
}

static int m_record(lua_State *L)
{
    eh_journal *j = check_journal(L, 1);
    const char *stage = luaL_checkstring(L, 2);
    const char *cat = luaL_checkstring(L, 3);
    const char *id = luaL_checkstring(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_settop(L, 5);
    lua_createtable(L, 0, 5);      /* 6: the line */
    lua_pushliteral(L, "step");
    lua_setfield(L, 6, "type");
    lua_pushvalue(L, 2);
    lua_setfield(L, 6, "stage");
    lua_pushvalue(L, 3);
    lua_setfield(L, 6, "category");
    lua_pushvalue(L, 4);
    lua_setfield(L, 6, "id");
    lua_pushvalue(L, 5);
    lua_setfield(L, 6, "record");
    lua_pushvalue(L, UP_ENCODE);
    lua_pushvalue(L, 6);
    lua_call(L, 1, 1);             /* 7: the text; a record that cannot be encoded is a script bug */
    size_t len;
    const char *text = lua_tolstring(L, 7, &len);
    eh_error err = { 0 };
    if (eh_journal_append(j, text, len, &err) != EH_OK)
        return eh_lua_fail(L, &err);
    /* neither indexed nor appended to the entries: j:done and j:entries are
     * the replayed lines, and a reference to every new record would keep the
     * whole run in memory (flat memory, issue 20: the schedule reads its own
     * records back from the file) */
    (void)stage;
    (void)cat;
    (void)id;
    lua_pushboolean(L, 1);
    return 1;
}

/* A process's own line (not a step): {"type":"run","record":{..}}. */
#define RUN_PREFIX "{\"type\":\"run\",\"record\":"

/* j:record_run(tbl) -> true, or nil and a message: this process's swaps and
 * timings, so that a resumed run's report covers every process. */
static int m_record_run(lua_State *L)
{
    eh_journal *j = check_journal(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, RUN_PREFIX);
    lua_pushvalue(L, UP_ENCODE);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    luaL_addvalue(&b);   /* the encoded record (a script bug raised in encode) */
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    eh_error err = { 0 };
    return eh_lua_result(L, eh_journal_append(j, text, len, &err), &err);
}

/* j:runs() -> {{record=, line=}, ...}: the run lines replayed, in file order. */
static int m_runs(lua_State *L)
{
    eh_journal *j = check_journal(L, 1);
    lua_newtable(L);
    lua_Integer n = 0;
    for (size_t i = 0; i < eh_journal_count(j); i++) {
        const char *line = eh_journal_line(j, i);
        if (strncmp(line, RUN_PREFIX, sizeof RUN_PREFIX - 1) != 0)
            continue;
        decode(L, line);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushinteger(L, (lua_Integer)eh_journal_line_no(j, i));
        lua_setfield(L, -2, "line");
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

static int m_entries(lua_State *L)
{
    push_entries(L, check_journal(L, 1));
    return 1;
}

/* upvalues of the iterator: encode and decode (as every function here),
 * the journal, the next line's index */
#define UP_EACH_JOURNAL lua_upvalueindex(3)
#define UP_EACH_NEXT lua_upvalueindex(4)

static int each_next(lua_State *L)
{
    eh_journal *j = check_journal(L, UP_EACH_JOURNAL);
    size_t i = (size_t)lua_tointeger(L, UP_EACH_NEXT);
    int found = 0;
    while (i < eh_journal_count(j) && !found)
        found = push_entry(L, j, i++);
    lua_pushinteger(L, (lua_Integer)i);
    lua_replace(L, UP_EACH_NEXT);
    return found;
}

static int m_each(lua_State *L)
{
    check_journal(L, 1);
    lua_pushvalue(L, UP_ENCODE);
    lua_pushvalue(L, UP_DECODE);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, each_next, 4);
    return 1;
}

static int m_header(lua_State *L)
{
    eh_journal *j = check_journal(L, 1);
    decode(L, eh_journal_header(j));
    return 1;
}

static int m_is_new(lua_State *L)
{
    lua_pushboolean(L, eh_journal_is_new(check_journal(L, 1)));
    return 1;
}

static int m_path(lua_State *L)
{
    lua_pushstring(L, eh_journal_path(check_journal(L, 1)));
    return 1;
}

/* close (releasing the lock), __gc, __close and __tostring are the handle's (lua_bind.h) */
static const luaL_Reg methods[] = {
    { "done", m_done },     { "record", m_record },         { "entries", m_entries },
    { "each", m_each },     { "record_run", m_record_run }, { "runs", m_runs },
    { "header", m_header }, { "is_new", m_is_new },         { "path", m_path },
    { NULL, NULL },
};

/* Expects the two upvalues (encode, decode) on top of the stack; leaves them. */
static void create_meta(lua_State *L)
{
    eh_lua_new_type(L, &journal_type, NULL, methods, 2);
}

int eh_open_journal(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "open", l_open },
        { "read", l_read },
        { "header", l_header_of },
        { NULL, NULL },
    };
    eh_open_json(L);
    lua_getfield(L, -1, "encode");
    lua_getfield(L, -2, "decode");
    lua_remove(L, -3);
    create_meta(L);
    luaL_newlibtable(L, funcs);
    lua_insert(L, -3);
    luaL_setfuncs(L, funcs, 2);
    lua_pushstring(L, EH_JOURNAL_FILE);
    lua_setfield(L, -2, "file");
    return 1;
}
