/* host.c — clock, leveled log and the swap accounting of struct eh_host. */
#include "evalhost/host.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double eh_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void eh_log(const eh_host *host, eh_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    if (host && level < host->log_level)
        return;
    if (host && host->quiet && level < EH_LOG_WARN)
        return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* one fputs per line so lines from shards do not interleave mid-line */
    char out[4200];
    /* on a terminal, clear a progress bar drawn on this line first; the bar
     * redraws itself at its next tick */
    const char *clear = host && host->stderr_tty ? "\r\033[K" : "";
    if (level == EH_LOG_INFO)
        snprintf(out, sizeof out, "%s%s\n", clear, line);
    else
        snprintf(out, sizeof out, "%s[%s] %s\n", clear, names[level], line);
    fputs(out, stderr);
}

eh_model_stats *eh_host_model_stats(eh_host *host, const char *name)
{
    for (int i = 0; i < host->n_model_stats; i++)
        if (strcmp(host->model_stats[i].name, name) == 0)
            return &host->model_stats[i];
    if (host->n_model_stats == EH_MAX_MODELS)
        return NULL;
    eh_model_stats *s = &host->model_stats[host->n_model_stats++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* An exchange (SPEC §3) is a load that follows the unload of a different
 * model: unload A + load B = 1.  Loading both without unloading is 0. */
void eh_host_note_load(eh_host *host, const void *model, const char *name, int64_t bytes, double seconds)
{
    if (host->last_unloaded && host->last_unloaded != model)
        host->swaps.count++;
    host->last_unloaded = NULL;
    host->swaps.moves++;
    host->swaps.bytes += bytes;
    host->swaps.seconds += seconds;
    eh_model_stats *s = eh_host_model_stats(host, name);
    if (s) {
        s->loads++;
        s->bytes += bytes;
        s->load_seconds += seconds;
    }
}

void eh_host_note_unload(eh_host *host, const void *model, const char *name, double seconds)
{
    host->last_unloaded = model;
    host->swaps.moves++;
    host->swaps.seconds += seconds;
    eh_model_stats *s = eh_host_model_stats(host, name);
    if (s) {
        s->unloads++;
        s->unload_seconds += seconds;
    }
}

void eh_host_forget_model(eh_host *host, const void *model)
{
    if (host->last_unloaded == model)
        host->last_unloaded = NULL;
}
