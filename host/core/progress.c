/* progress.c — tqdm's bar format with correct widths for CJK labels. */
#include "evalhost/progress.h"

#include <stdlib.h>
#include <string.h>

#include "evalhost/host.h"

struct eh_progress {
    char label[256];
    int64_t total, done;
    double start, last_print;
    int last_decile;
    int closed;
    eh_progress_params params;
};

eh_progress_params eh_progress_default_params(void)
{
    eh_progress_params p = { .out = stderr, .tty = 0, .width = 80, .quiet = 0 };
    return p;
}

static int is_wide(unsigned cp)
{
    return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
           (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

int eh_display_width(const char *s)
{
    int w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp;
        int len;
        if (*p < 0x80) {
            cp = *p;
            len = 1;
        } else if ((*p & 0xE0) == 0xC0) {
            cp = *p & 0x1F;
            len = 2;
        } else if ((*p & 0xF0) == 0xE0) {
            cp = *p & 0x0F;
            len = 3;
        } else if ((*p & 0xF8) == 0xF0) {
            cp = *p & 0x07;
            len = 4;
        } else {
            p++;
            w++;
            continue;
        }
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                len = i;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        p += len;
        if (cp >= 0x300 && cp <= 0x36F)
            continue;   /* combining marks take no column */
        w += is_wide(cp) ? 2 : 1;
    }
    return w;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (s < 0 || s > 360000 || s != s) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)s;   /* tqdm truncates */
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void eh_progress_format(char *buf, size_t n, const char *label, int64_t done, int64_t total, double elapsed, int width,
                        int with_bar)
{
    char el[32], eta[32], rate[48];
    fmt_time(el, sizeof el, elapsed);
    double per_s = elapsed > 0 ? (double)done / elapsed : 0;
    if (done > 0 && per_s < 1.0)
        snprintf(rate, sizeof rate, "%.2fs/it", elapsed / (double)done);
    else if (done > 0)
        snprintf(rate, sizeof rate, "%.2fit/s", per_s);
    else
        snprintf(rate, sizeof rate, "?it/s");
    if (done > 0 && total > 0)
        fmt_time(eta, sizeof eta, (double)(total - done) * elapsed / (double)done);
    else
        snprintf(eta, sizeof eta, "?");
    int pct = total > 0 ? (int)(100.0 * (double)done / (double)total) : 0;
    char tail[128];
    snprintf(tail, sizeof tail, "| %lld/%lld [%s<%s, %s]", (long long)done, (long long)total, el, eta, rate);
    if (!with_bar) {
        snprintf(buf, n, "%s: %3d%% %lld/%lld [%s<%s, %s]", label, pct, (long long)done, (long long)total, el, eta,
                 rate);
        return;
    }
    char head[300];
    snprintf(head, sizeof head, "%s: %3d%%|", label, pct);
    int bar_w = width - eh_display_width(head) - eh_display_width(tail);
    if (bar_w < 1)
        bar_w = 1;
    if (bar_w > 100)
        bar_w = 100;
    /* tqdm's bar: full blocks plus one partial eighth */
    static const char *const eighths[] = { " ", "▏", "▎", "▍", "▌", "▋", "▊", "▉" };
    double frac = total > 0 ? (double)done / (double)total : 0;
    if (frac > 1)
        frac = 1;
    int units = (int)(frac * bar_w * 8);
    int full = units / 8, part = units % 8;
    size_t used = (size_t)snprintf(buf, n, "%s", head);
    for (int i = 0; i < bar_w && used + 4 < n; i++) {
        const char *cell = i < full ? "█" : (i == full && part ? eighths[part] : " ");
        size_t cl = strlen(cell);
        memcpy(buf + used, cell, cl);
        used += cl;
    }
    if (used < n)
        snprintf(buf + used, n - used, "%s", tail);
}

eh_progress *eh_progress_new(const char *label, int64_t total, const eh_progress_params *params)
{
    eh_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->params = params ? *params : eh_progress_default_params();
    if (!p->params.out)
        p->params.out = stderr;
    p->start = p->last_print = eh_clock();
    p->last_decile = -1;
    if (p->params.tty && !p->params.quiet)
        eh_progress_tick(p, 0);
    return p;
}

static void print_line(eh_progress *p, int final)
{
    char line[1024];
    double elapsed = eh_clock() - p->start;
    eh_progress_format(line, sizeof line, p->label, p->done, p->total, elapsed, p->params.width, p->params.tty);
    if (p->params.tty)
        fprintf(p->params.out, "\r%s%s", line, final ? "\n" : "");
    else
        fprintf(p->params.out, "%s\n", line);
    fflush(p->params.out);
}

void eh_progress_tick(eh_progress *p, int64_t n)
{
    if (!p || p->closed)
        return;
    p->done += n;
    if (p->params.quiet)
        return;
    double now = eh_clock();
    if (p->params.tty) {
        if (now - p->last_print >= 0.1 || p->done >= p->total || n == 0) {
            p->last_print = now;
            print_line(p, 0);
        }
        return;
    }
    /* plain mode (logs, CI): a line per quarter of the way, or every 30 s */
    int decile = p->total > 0 ? (int)(4 * p->done / p->total) : 0;
    if ((decile != p->last_decile && p->done < p->total) || now - p->last_print >= 30) {
        p->last_decile = decile;
        p->last_print = now;
        print_line(p, 0);
    }
}

void eh_progress_close(eh_progress *p)
{
    if (!p || p->closed)
        return;
    p->closed = 1;
    if (!p->params.quiet)
        print_line(p, 1);
}

void eh_progress_free(eh_progress *p)
{
    if (!p)
        return;
    eh_progress_close(p);
    free(p);
}
