/* progress.h — tqdm-style progress bars on a TTY, plain lines elsewhere.
 *   [物理] 编辑图像: 100%|████████| 50/50 [04:10<00:00, 5.01s/it]       */
#ifndef EVALHOST_PROGRESS_H
#define EVALHOST_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct eh_progress eh_progress;

typedef struct eh_progress_params {
    FILE *out;              /* default stderr */
    int tty;                /* 1: redraw one line with \r; 0: plain lines */
    int width;              /* terminal columns; default 80 */
    int quiet;              /* 1: print nothing */
} eh_progress_params;

eh_progress_params eh_progress_default_params(void);
eh_progress *eh_progress_new(const char *label, int64_t total, const eh_progress_params *params);
void eh_progress_tick(eh_progress *p, int64_t n);
void eh_progress_close(eh_progress *p);     /* prints the final line; idempotent */
void eh_progress_free(eh_progress *p);      /* closes first; NULL is a no-op */

/* Formats the bar line as it would be printed (no \r or \n) into buf —
 * the unit tests check it; `elapsed` in seconds. */
void eh_progress_format(char *buf, size_t n, const char *label, int64_t done, int64_t total, double elapsed, int width,
                        int with_bar);
/* Display columns of a UTF-8 string (East Asian wide characters count 2). */
int eh_display_width(const char *s);

#endif
