/* host.c — clock, leveled log and the swap accounting of struct eh_host. */
#include "evalhost/host.h"

#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
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
    char raw[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Names from datasets and replies from servers reach the log: a control
     * character is written as an escape, so an ESC sequence never reaches the
     * terminal and a newline never splits (or forges) a log line. */
    char line[4096];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && o + 5 < sizeof line; p++) {
        if (*p >= 0x20 && *p != 0x7F) {
            line[o++] = (char)*p;
        } else if (*p == '\t') {
            line[o++] = ' ';
        } else if (*p == '\n' || *p == '\r') {
            line[o++] = '\\';
            line[o++] = *p == '\n' ? 'n' : 'r';
        } else {
            o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", *p);
        }
    }
    line[o] = '\0';
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

int eh_parse_bytes(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double scale;
    } units[] = {
        { "", 1 },      { "B", 1 },        { "KB", 1e3 },        { "MB", 1e6 },           { "GB", 1e9 },
        { "TB", 1e12 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 }, { "TiB", 1099511627776.0 },
    };
    if (!s)
        return -1;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0))
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].unit)) {
            double b = v * units[i].scale;
            if (b > 9e18)
                return -1;
            *out = (int64_t)(b + 0.5);
            return 0;
        }
    return -1;
}

eh_status eh_host_apply_run(eh_host *host, const eh_node *run, eh_error *err)
{
    host->device_capacity = 0;
    host->pin = EH_PIN_AUTO;
    const eh_node *dm = eh_node_get(run, "device_memory");
    if (dm && dm->type != EH_NODE_NULL) {
        int64_t b = -1;
        if (dm->type == EH_NODE_INT)
            b = dm->u.integer;
        else if (dm->type == EH_NODE_STRING && eh_parse_bytes(dm->u.str.data, &b) != 0)
            b = -1;
        if (b <= 0)
            return eh_fail(err, EH_EINVAL, "config: run.device_memory must be a size such as 80GB, 141GB or 40GiB");
        host->device_capacity = b;
    }
    const eh_node *pn = eh_node_get(run, "pin");
    const char *pin = !pn || pn->type == EH_NODE_NULL ? "auto" : pn->type == EH_NODE_STRING ? pn->u.str.data : NULL;
    if (!pin || (strcmp(pin, "auto") && strcmp(pin, "always") && strcmp(pin, "never")))
        return eh_fail(err, EH_EINVAL, "config: run.pin must be auto, always or never");
    host->pin = !strcmp(pin, "always") ? EH_PIN_ALWAYS : !strcmp(pin, "never") ? EH_PIN_NEVER : EH_PIN_AUTO;
    return EH_OK;
}
