/* main.c — the evalhost command line, shaped like lua.c: everything runs in
 * pmain under lua_pcall, errors are printed once at the top.
 *
 *   evalhost SCRIPT [CONFIG] [--set key.path=value]... [--resume[=force]]
 *            [--shard i/N] [--quiet] [--verbose] [--version] [--help]
 *   evalhost list
 *
 * SCRIPT is a path or a name from the scripts folder (two_stage); the Lua
 * library, scripts and configs come from the data root: the source tree for
 * the build-tree binary, <prefix>/share/evalhost for an installed one, with
 * EVALHOST_PATH's folders searched first for Lua modules.
 *
 * Exit codes: 0 success; 1 the run finished with failed pairs, or a data or
 * config problem stopped it; 2 usage error or a bug in the script. */
#define _DEFAULT_SOURCE 1   /* realpath */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "evalhost/config.h"
#include "evalhost/fs.h"
#include "evalhost/lua_bind.h"

#define EXIT_DATA 1
#define EXIT_USAGE 2

/* Compiled in by CMake: the checkout the build-tree binary belongs to, its
 * build folder, and the data folder relative to an installed binary. */
#ifndef EVALHOST_SOURCE_DIR
#define EVALHOST_SOURCE_DIR ""
#endif
#ifndef EVALHOST_BINARY_DIR
#define EVALHOST_BINARY_DIR ""
#endif
#ifndef EVALHOST_DATA_REL
#define EVALHOST_DATA_REL "../share/evalhost"
#endif

typedef struct cli {
    const char *script;
    const char *config;
    const char **sets;
    int n_sets;
    const char **args;     /* extra positional arguments, for the script */
    int n_args;
    const char *shard;
    eh_resume_mode resume;
    int quiet, verbose;
    int list;              /* `evalhost list` */
    char script_buf[PATH_MAX];   /* SCRIPT resolved by name */
    char root[PATH_MAX];   /* the data root ("" when none was found) */
} cli;

/* The one piece of process-wide state: a signal handler can reach nothing
 * else. The first SIGINT/SIGTERM/SIGHUP is noted here and the schedule stops
 * after the item (or batch) under way; a second one ends the process at once. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    if (stop_signal) {
        static const char msg[] = "evalhost: second signal: exiting now\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    stop_signal = sig;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;   /* reads and writes carry on; the schedule polls the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static void usage(FILE *out)
{
    fputs("usage: evalhost SCRIPT [CONFIG] [options] [script args]\n"
          "       evalhost list          the scripts, backends and dataset adapters\n"
          "  SCRIPT                 a path, or a name from the scripts folder (two_stage, rejudge, ...)\n"
          "  --set key.path=value   override a config value (typed like YAML: 1e6, [a,b], true)\n"
          "  --resume[=force]       continue a killed run from its journal (force: accept a changed run)\n"
          "  --shard i/N            process the i-th of N disjoint slices (0-based); also from\n"
          "                         SLURM_PROCID/SLURM_NTASKS, OMPI_COMM_WORLD_RANK/_SIZE, RANK/WORLD_SIZE\n"
          "  --quiet                only warnings and errors\n"
          "  --verbose              debug messages\n"
          "  --version              print the version\n"
          "  --help                 this text\n"
          "example: evalhost two_stage config/example.yaml --set run.out=outputs/x\n",
          out);
}

static int parse_cli(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);   /* c is large: it holds two paths */
    c->sets = calloc((size_t)argc, sizeof *c->sets);
    c->args = calloc((size_t)argc, sizeof *c->args);
    if (!c->sets || !c->args)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("evalhost %s (%s)\n", EVALHOST_VERSION, LUA_RELEASE);
            exit(0);
        } else if (!strcmp(a, "--set")) {
            if (++i == argc) {
                fprintf(stderr, "evalhost: --set needs key.path=value\n");
                return -1;
            }
            c->sets[c->n_sets++] = argv[i];
        } else if (!strncmp(a, "--set=", 6)) {
            c->sets[c->n_sets++] = a + 6;
        } else if (!strcmp(a, "--resume")) {
            c->resume = EH_RESUME_YES;
        } else if (!strcmp(a, "--resume=force")) {
            c->resume = EH_RESUME_FORCE;
        } else if (!strcmp(a, "--shard")) {
            if (++i == argc) {
                fprintf(stderr, "evalhost: --shard needs i/N\n");
                return -1;
            }
            c->shard = argv[i];
        } else if (!strncmp(a, "--shard=", 8)) {
            c->shard = a + 8;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            c->quiet = 1;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            c->verbose = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "evalhost: unknown option '%s' (see --help)\n", a);
            return -1;
        } else if (!c->script) {
            c->script = a;
        } else if (!c->config) {
            c->config = a;
        } else {
            c->args[c->n_args++] = a;
        }
    }
    if (!c->script) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Parses "i/N" into 0 <= i < N. */
static int parse_shard(const char *s, int *index, int *count)
{
    char *end;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/')
        return -1;
    const char *ns = end + 1;
    long n = strtol(ns, &end, 10);
    if (errno || end == ns || *end || n < 1 || n > 100000 || i < 0 || i >= n)
        return -1;
    *index = (int)i;
    *count = (int)n;
    return 0;
}

static int env_int(const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > INT_MAX)
        return 0;
    *out = (int)x;
    return 1;
}

/* --shard wins; else the launcher's environment (Slurm, Open MPI, torchrun). */
static int resolve_shard(eh_host *h, const char *arg)
{
    h->shard_index = 0;
    h->shard_count = 1;
    h->local_rank = -1;
    if (arg) {
        if (parse_shard(arg, &h->shard_index, &h->shard_count) != 0) {
            fprintf(stderr, "evalhost: --shard %s: expected i/N with 0 <= i < N\n", arg);
            return -1;
        }
    } else {
        static const char *const pairs[][2] = {
            { "SLURM_PROCID", "SLURM_NTASKS" },
            { "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE" },
            { "RANK", "WORLD_SIZE" },
        };
        for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
            int i, n;
            if (env_int(pairs[k][0], &i) && env_int(pairs[k][1], &n) && n >= 1 && i < n) {
                h->shard_index = i;
                h->shard_count = n;
                break;
            }
        }
    }
    if (!env_int("LOCAL_RANK", &h->local_rank) && !env_int("SLURM_LOCALID", &h->local_rank))
        env_int("OMPI_COMM_WORLD_LOCAL_RANK", &h->local_rank);
    return 0;
}

/* Image limits from config: image.max_pixels, image.max_side, limits.max_b64_len. */
static void apply_limits(eh_host *h)
{
    h->image_limits = eh_image_default_limits();
    const eh_node *image = eh_node_get(h->config, "image");
    const eh_node *limits = eh_node_get(h->config, "limits");
    h->image_limits.max_pixels = (int64_t)eh_node_num(image, "max_pixels", (double)h->image_limits.max_pixels);
    h->image_limits.max_side = (int)eh_node_int(image, "max_side", h->image_limits.max_side);
    h->image_limits.keep_alpha = eh_node_bool(image, "keep_alpha", h->image_limits.keep_alpha);
    h->image_limits.max_b64_len = (size_t)eh_node_num(limits, "max_b64_len", (double)h->image_limits.max_b64_len);
    h->json_max_depth = (int)eh_node_int(limits, "max_json_depth", 64);
    if (h->json_max_depth < 1)
        h->json_max_depth = 1;
}

static int has_library(const char *root)
{
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/lua/evalhost", root);
    return root[0] && eh_fs_is_dir(probe);
}

/* The data root (lua/, scripts/, config/, examples/): the source tree for the
 * binary in its own build folder, <bin>/EVALHOST_DATA_REL for an installed
 * one; each falls back on the other, then on <bin>/.. .  "" when none has
 * the library. */
static void find_data_root(char *out, size_t n)
{
    out[0] = '\0';
    char exe[PATH_MAX], dir[PATH_MAX], built[PATH_MAX];
    if (!realpath("/proc/self/exe", exe))
        return;
    eh_fs_dirname(exe, dir, sizeof dir);
    char installed[PATH_MAX + 64], parent[PATH_MAX + 8];
    snprintf(installed, sizeof installed, "%s/%s", dir, EVALHOST_DATA_REL);
    snprintf(parent, sizeof parent, "%s/..", dir);
    int in_build = EVALHOST_BINARY_DIR[0] && realpath(EVALHOST_BINARY_DIR, built) && !strcmp(built, dir);
    const char *order[3] = { installed, EVALHOST_SOURCE_DIR, parent };
    if (in_build) {
        order[0] = EVALHOST_SOURCE_DIR;
        order[1] = installed;
    }
    for (int i = 0; i < 3; i++) {
        if (has_library(order[i])) {
            if (!realpath(order[i], out))
                snprintf(out, n, "%s", order[i]);
            return;
        }
    }
}

/* package.path: EVALHOST_PATH's folders (':'-separated) first, then the
 * data root's lua/, then Lua's own. */
static void set_package_path(lua_State *L, const char *root)
{
    const char *env = getenv("EVALHOST_PATH");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (env && *env) {
        char copy[4 * PATH_MAX];
        snprintf(copy, sizeof copy, "%s", env);
        char *save = NULL;
        for (char *part = strtok_r(copy, ":", &save); part; part = strtok_r(NULL, ":", &save)) {
            luaL_addstring(&b, part);
            luaL_addstring(&b, "/?.lua;");
            luaL_addstring(&b, part);
            luaL_addstring(&b, "/?/init.lua;");
        }
    }
    if (root[0]) {
        luaL_addstring(&b, root);
        luaL_addstring(&b, "/lua/?.lua;");
        luaL_addstring(&b, root);
        luaL_addstring(&b, "/lua/?/init.lua;");
    }
    luaL_addstring(&b, old ? old : "");
    luaL_pushresult(&b);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* SCRIPT as given if it is a file, else <root>/scripts/SCRIPT[.lua] for a
 * bare name.  Prints the reason and returns -1 when there is none. */
static int resolve_script(cli *c)
{
    const char *s = c->script;
    if (ends_with(s, ".yaml") || ends_with(s, ".yml") || ends_with(s, ".json")) {
        fprintf(stderr,
                "evalhost: '%s' is a config, not a script: name the script first, "
                "e.g. evalhost two_stage %s (evalhost list shows the scripts)\n",
                s, s);
        return -1;
    }
    if (access(s, R_OK) == 0)
        return 0;
    int err = errno;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "the current folder");
    /* A relative path not found from the cwd (scripts/two_stage.lua run from
     * elsewhere) is looked up in the data root as a bare name is: first as
     * written under the root, then by its last part under <root>/scripts. */
    if (s[0] != '/' && c->root[0]) {
        const char *base = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
        char tried[3][PATH_MAX + 64];
        int n_tried = 0;
        const char *suffixes[] = { "", ".lua" };
        if (strchr(s, '/'))
            snprintf(tried[n_tried++], sizeof tried[0], "%s/%s", c->root, s);
        for (int i = 0; i < 2 && *base; i++) {
            if (i == 1 && ends_with(base, ".lua"))
                break;
            snprintf(tried[n_tried], sizeof tried[0], "%s/scripts/%s%s", c->root, base, suffixes[i]);
            if (n_tried == 0 || strcmp(tried[n_tried], tried[0]) != 0)   /* scripts/x.lua names it already */
                n_tried++;
        }
        for (int i = 0; i < n_tried; i++) {
            if (strlen(tried[i]) < sizeof c->script_buf && !eh_fs_is_dir(tried[i]) && access(tried[i], R_OK) == 0) {
                snprintf(c->script_buf, sizeof c->script_buf, "%s", tried[i]);
                c->script = c->script_buf;
                return 0;
            }
        }
        if (!strchr(s, '/')) {
            fprintf(stderr,
                    "evalhost: cannot read script '%s': %s, and %s/scripts has no %s.lua "
                    "(evalhost list shows the scripts)\n",
                    s, strerror(err), c->root, s);
            return -1;
        }
        fprintf(stderr, "evalhost: cannot read script '%s': %s in %s", s, strerror(err), cwd);
        for (int i = 0; i < n_tried; i++)
            fprintf(stderr, ", nor %s", tried[i]);
        fputs(" (evalhost list shows the scripts)\n", stderr);
        return -1;
    }
    if (s[0] != '/')
        fprintf(stderr, "evalhost: cannot read script '%s': %s in %s (no data folder with scripts/ was found)\n", s,
                strerror(err), cwd);
    else
        fprintf(stderr, "evalhost: cannot read script '%s': %s\n", s, strerror(err));
    return -1;
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

typedef struct pmain_args {
    cli *c;
    eh_host *h;
    int exit_code;
} pmain_args;

/* A script that is no Lua but a YAML mapping is a config given where the
 * script belongs (the script name forgotten). */
static int looks_like_config(const char *path)
{
    char *text;
    size_t len;
    eh_error err = { 0 };
    if (eh_fs_read(path, 1u << 20, &text, &len, &err) != EH_OK)
        return 0;
    eh_node *n = eh_yaml_parse(text, len, path, NULL, &err);
    int yes = n && n->type == EH_NODE_MAP && n->u.list.count > 0;
    eh_node_free(n);
    free(text);
    return yes;
}

/* Requires module `name` and calls its function `fn` with the values above
 * it on the stack (n of them); leaves its results.  A library that cannot be
 * found is named with where it was looked for. */
static void call_library(lua_State *L, const char *name, const char *fn, int n, int nresults, const char *root)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1))
        luaL_error(L,
                   "cannot find the Lua library (module %s) in %s/lua%s; set EVALHOST_PATH to the lua/ folder "
                   "of an evalhost checkout or install",
                   name, root[0] ? root : "(no data folder found)", getenv("EVALHOST_PATH") ? " or EVALHOST_PATH" : "");
    lua_pop(L, 2);
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, -1 - n);
    lua_call(L, n, nresults);
}

/* Checks evalhost.config against lua/evalhost/schema.lua before the script
 * runs: nothing has loaded yet.  Returns 0, or the exit code after printing
 * the messages (1 for the file, 2 for --set). */
static int check_config(lua_State *L, pmain_args *a)
{
    call_library(L, "evalhost.config_check", "host", 0, 3, a->c->root);
    int rc = 0;
    if (!lua_toboolean(L, -3)) {
        fprintf(stderr, "%s\n", lua_tostring(L, -2));
        rc = lua_toboolean(L, -1) ? EXIT_USAGE : EXIT_DATA;
    }
    lua_pop(L, 3);
    return rc;
}

/* run.device_memory and run.pin into the host, after the schema check (which
 * has refused a wrong type or choice with its position); what is left, a
 * size it cannot read, is named at its key's file:line:col or its --set.
 * Returns 0, or the exit code after printing (1 for the file, 2 for --set). */
static int apply_run(pmain_args *a)
{
    eh_error err = { 0 };
    const eh_node *run = eh_node_get(a->h->config, "run");
    if (eh_host_apply_run(a->h, run, &err) == EH_OK)
        return 0;
    const char *key = strstr(err.msg, "run.pin") ? "pin" : "device_memory";
    const char *msg = strncmp(err.msg, "config: ", 8) ? err.msg : err.msg + 8;
    const eh_node *n = eh_node_get(run, key);
    if (n && n->line > 0) {
        fprintf(stderr, "%s:%d:%d: %s\n", a->c->config ? a->c->config : "config", n->line, n->col, msg);
        return EXIT_DATA;
    }
    char full[64];
    snprintf(full, sizeof full, "run.%s=", key);
    for (int i = a->c->n_sets - 1; i >= 0; i--)
        if (!strncmp(a->c->sets[i], full, strlen(full)) || !strncmp(a->c->sets[i], "run=", 4)) {
            fprintf(stderr, "evalhost: --set %s: %s\n", a->c->sets[i], msg);
            return EXIT_USAGE;
        }
    fprintf(stderr, "evalhost: %s\n", msg);
    return EXIT_USAGE;
}

/* Runs in protected mode: opens libraries, loads and calls the script. */
static int pmain(lua_State *L)
{
    pmain_args *a = lua_touserdata(L, 1);
    luaL_openlibs(L);
    eh_lua_attach_host(L, a->h);
    set_package_path(L, a->c->root);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, eh_open_evalhost);
    lua_setfield(L, -2, "evalhost");
    lua_pop(L, 1);
    luaL_requiref(L, "evalhost", eh_open_evalhost, 1);
    lua_createtable(L, a->c->n_args, 0);
    for (int i = 0; i < a->c->n_args; i++) {
        lua_pushstring(L, a->c->args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "args");
    lua_pop(L, 1);

    if ((a->exit_code = check_config(L, a)) != 0 || (a->exit_code = apply_run(a)) != 0)
        return 0;
    if (a->c->list) {
        lua_pushstring(L, a->c->root);
        call_library(L, "evalhost.cli", "list", 1, 0, a->c->root);
        return 0;
    }
    lua_pushcfunction(L, msghandler);
    int handler = lua_gettop(L);
    int lrc = luaL_loadfile(L, a->c->script);
    if (lrc == LUA_ERRSYNTAX && looks_like_config(a->c->script))
        return luaL_error(L,
                          "%s is a config, not a script: name the script first, e.g. evalhost two_stage %s "
                          "(evalhost list shows the scripts)",
                          a->c->script, a->c->script);
    if (lrc != LUA_OK)
        return lua_error(L);   /* a syntax error or a missing script */
    for (int i = 0; i < a->c->n_args; i++)
        lua_pushstring(L, a->c->args[i]);
    if (lua_pcall(L, a->c->n_args, 1, handler) != LUA_OK)
        return lua_error(L);
    a->exit_code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    return 0;
}

int main(int argc, char **argv)
{
    cli c;
    /* A file-size limit or a closed socket must come back as an error from
     * write(), so the run stops cleanly and resumes, not as a signal. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (parse_cli(argc, argv, &c) != 0) {
        free(c.sets);   /* parse_cli allocates before it can fail */
        free(c.args);
        return EXIT_USAGE;
    }
    find_data_root(c.root, sizeof c.root);
    eh_host host;
    memset(&host, 0, sizeof host);
    int rc = 0;
    c.list = !strcmp(c.script, "list") && access(c.script, R_OK) != 0;
    if (c.list && (c.config || c.n_args || c.n_sets)) {
        fprintf(stderr, "evalhost: list takes no arguments (got '%s'): run `evalhost list` alone\n",
                c.config   ? c.config
                : c.n_args ? c.args[0]
                           : c.sets[0]);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!c.list && resolve_script(&c) != 0) {
        rc = EXIT_USAGE;
        goto done;
    }
    host.script_path = c.list ? "" : c.script;
    host.data_dir = c.root;
    host.sets = c.sets;
    host.n_sets = c.n_sets;
    host.config_path = c.config;
    host.resume = c.resume;
    host.quiet = c.quiet;
    host.log_level = c.verbose ? EH_LOG_DEBUG : EH_LOG_INFO;
    host.stderr_tty = isatty(STDERR_FILENO) && !c.quiet;
    host.start_time = eh_clock();
    host.stop_signal = &stop_signal;
    catch_stop_signals();

    eh_error err = { 0 };
    if (c.config) {
        host.config = eh_config_load(c.config, NULL, &err);
        if (!host.config) {
            fprintf(stderr, "%s\n", err.msg);
            rc = EXIT_DATA;
            goto done;
        }
    } else {
        host.config = eh_node_new(EH_NODE_MAP);
    }
    for (int i = 0; i < c.n_sets; i++) {
        if (eh_config_set(host.config, c.sets[i], &err) != EH_OK ||
            eh_config_validate(host.config, "--set", &err) != EH_OK) {
            fprintf(stderr, "evalhost: %s\n", err.msg);
            rc = EXIT_USAGE;
            goto done;
        }
    }
    apply_limits(&host);
    if (resolve_shard(&host, c.shard) != 0) {
        rc = EXIT_USAGE;
        goto done;
    }

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "evalhost: cannot create the Lua state: out of memory\n");
        rc = EXIT_DATA;
        goto done;
    }
    host.L = L;
    pmain_args args = { .c = &c, .h = &host, .exit_code = 0 };
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &args);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "evalhost: %s\n", msg ? msg : "(error object is not a string)");
        rc = EXIT_USAGE;
    } else {
        rc = args.exit_code;
    }
    lua_close(L);   /* runs __gc: models unload, files close */
done:
    eh_node_free(host.config);
    free(c.sets);
    free(c.args);
    return rc;
}
