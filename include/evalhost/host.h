/* host.h — the one place for process-wide state: the Lua state, the loaded
 * config, command-line options, limits and the swap accounting.  There is no
 * other mutable global; bindings reach it through eh_lua_host(). */
#ifndef EVALHOST_HOST_H
#define EVALHOST_HOST_H

#include <signal.h>
#include <stdint.h>

#include "evalhost/error.h"
#include "evalhost/image.h"
#include "evalhost/node.h"

struct lua_State;

#define EH_MAX_MODELS 16

typedef enum eh_resume_mode { EH_RESUME_NO = 0, EH_RESUME_YES, EH_RESUME_FORCE } eh_resume_mode;
typedef enum eh_log_level { EH_LOG_DEBUG = 0, EH_LOG_INFO, EH_LOG_WARN, EH_LOG_ERROR } eh_log_level;

/* run.pin: page-lock the host copy of a CUDA model's weights (auto: try,
 * and fall back to pageable copies for a model whose registration the
 * driver refuses; always: such a refusal fails the load; never: pageable). */
typedef enum eh_pin_mode { EH_PIN_AUTO = 0, EH_PIN_ALWAYS, EH_PIN_NEVER } eh_pin_mode;

typedef struct eh_swap_stats {
    int64_t count;          /* exchanges of the GPU between models (SPEC §3) */
    int64_t moves;          /* individual load/unload moves */
    int64_t bytes;          /* bytes moved host->device */
    double seconds;         /* time spent in moves */
} eh_swap_stats;

typedef struct eh_model_stats {
    char name[64];          /* the model's section name ("editor", "judge") */
    int64_t loads, unloads, bytes;
    double load_seconds, unload_seconds;
} eh_model_stats;

typedef struct eh_host {
    struct lua_State *L;
    const char *script_path;
    const char *config_path;
    eh_node *config;                /* owned; after --set overrides */
    const char *const *sets;        /* the --set assignments, in order (borrowed from argv) */
    int n_sets;
    const char *data_dir;           /* lua/, scripts/, config/, examples/ ("" unknown; borrowed) */
    char *script_text_hash;         /* hex, owned (hash of the script file) */

    eh_resume_mode resume;
    int quiet;
    int stderr_tty;                 /* progress bars only on a TTY */
    int shard_index, shard_count;   /* 0/1 without sharding */
    int local_rank;                 /* GPU index from LOCAL_RANK & co; -1 unknown */
    eh_log_level log_level;
    double start_time;              /* eh_clock() at start */

    eh_image_limits image_limits;   /* from config image.* */
    int json_max_depth;             /* limits.max_json_depth for evalhost.json; default 64 */

    eh_swap_stats swaps;
    eh_model_stats model_stats[EH_MAX_MODELS];
    int n_model_stats;
    const void *last_unloaded;      /* model unloaded and not yet followed by a load (swap counting) */
    int failures;                   /* data failures reported by scripts (exit code 1) */

    /* run.device_memory: the capacity of a simulated device (0: none).
     * Models on "cpu" then count their footprints against it while
     * loaded, and a load past it fails as a CUDA out-of-memory does. */
    int64_t device_capacity, device_used;
    eh_pin_mode pin;                /* run.pin */
    /* The first SIGINT/SIGTERM/SIGHUP's number, set by main.c's handler
     * (0: none yet); the schedule polls it between items. NULL: no handler. */
    const volatile sig_atomic_t *stop_signal;
} eh_host;

double eh_clock(void);              /* monotonic seconds */
void eh_log(const eh_host *host, eh_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Swap accounting, called by the model module on every move. */
eh_model_stats *eh_host_model_stats(eh_host *host, const char *name);
void eh_host_note_load(eh_host *host, const void *model, const char *name, int64_t bytes, double seconds);
void eh_host_note_unload(eh_host *host, const void *model, const char *name, double seconds);
void eh_host_forget_model(eh_host *host, const void *model);   /* on model free */

/* "80GB", "141 GB", "40GiB", "512MB", or a plain byte count (decimal
 * units: GB = 10^9; GiB = 2^30).  0 on success, -1 for anything else. */
int eh_parse_bytes(const char *s, int64_t *out);
/* The run section's device keys (run.device_memory, run.pin) into host;
 * EH_EINVAL naming the key for a bad value. */
eh_status eh_host_apply_run(eh_host *host, const eh_node *run, eh_error *err);

#endif
