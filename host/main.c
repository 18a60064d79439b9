/* main.c — the evalhost command line, shaped like lua.c: everything runs in
 * pmain under lua_pcall, errors are printed once at the top.
 *
 *   evalhost SCRIPT [CONFIG] [--set key.path=value]... [--resume[=force]]
 *            [--shard i/N] [--quiet] [--verbose] [--version] [--help]
 *
 * Exit codes: 0 success; 1 the run finished with failed pairs, or a data or
 * config problem stopped it; 2 usage error or a bug in the script. */
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
} cli;

static void usage(FILE *out)
{
    fputs("usage: evalhost SCRIPT [CONFIG] [options] [script args]\n"
          "  --set key.path=value   override a config value (typed like YAML: 1e6, [a,b], true)\n"
          "  --resume[=force]       continue a killed run from its journal (force: accept a changed run)\n"
          "  --shard i/N            process the i-th of N disjoint slices (0-based); also from\n"
          "                         SLURM_PROCID/SLURM_NTASKS, OMPI_COMM_WORLD_RANK/_SIZE, RANK/WORLD_SIZE\n"
          "  --quiet                only warnings and errors\n"
          "  --verbose              debug messages\n"
          "  --version              print the version\n"
          "  --help                 this text\n"
          "example: evalhost scripts/two_stage.lua config/example.yaml --set run.out=outputs/x\n",
          out);
}

static int parse_cli(int argc, char **argv, cli *c)
{
    memset(c, 0, sizeof *c);
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

/* Where the Lua library lives: $EVALHOST_PATH, else beside the binary
 * (<bin>/../lua in the source tree, <prefix>/share/evalhost/lua installed). */
static void find_lua_dir(char *out, size_t n)
{
    const char *env = getenv("EVALHOST_PATH");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    out[0] = '\0';
    if (len <= 0)
        return;
    exe[len] = '\0';
    char dir[PATH_MAX];
    eh_fs_dirname(exe, dir, sizeof dir);
    const char *candidates[] = { "/../lua", "/../share/evalhost/lua" };
    for (size_t i = 0; i < 2; i++) {
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s%s/evalhost", dir, candidates[i]);
        if (eh_fs_is_dir(probe)) {
            probe[strlen(probe) - strlen("/evalhost")] = '\0';
            snprintf(out, n, "%s", probe);
            return;
        }
    }
}

static void set_package_path(lua_State *L)
{
    char dir[PATH_MAX];
    find_lua_dir(dir, sizeof dir);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (dir[0]) {
        /* EVALHOST_PATH may list several folders, separated by ':' */
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", dir);
        char *save = NULL;
        for (char *part = strtok_r(copy, ":", &save); part; part = strtok_r(NULL, ":", &save)) {
            luaL_addstring(&b, part);
            luaL_addstring(&b, "/?.lua;");
            luaL_addstring(&b, part);
            luaL_addstring(&b, "/?/init.lua;");
        }
    }
    luaL_addstring(&b, old ? old : "");
    luaL_pushresult(&b);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
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

/* Runs in protected mode: opens libraries, loads and calls the script. */
static int pmain(lua_State *L)
{
    pmain_args *a = lua_touserdata(L, 1);
    luaL_openlibs(L);
    eh_lua_attach_host(L, a->h);
    set_package_path(L);
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

    lua_pushcfunction(L, msghandler);
    int handler = lua_gettop(L);
    if (luaL_loadfile(L, a->c->script) != LUA_OK)
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
    eh_host host;
    memset(&host, 0, sizeof host);
    host.script_path = c.script;
    host.config_path = c.config;
    host.resume = c.resume;
    host.quiet = c.quiet;
    host.log_level = c.verbose ? EH_LOG_DEBUG : EH_LOG_INFO;
    host.stderr_tty = isatty(STDERR_FILENO) && !c.quiet;
    host.start_time = eh_clock();
    int rc = 0;

    eh_error err = { 0 };
    if (access(c.script, R_OK) != 0) {
        fprintf(stderr, "evalhost: cannot read script '%s': %s\n", c.script, strerror(errno));
        rc = EXIT_USAGE;
        goto done;
    }
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
