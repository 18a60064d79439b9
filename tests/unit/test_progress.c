/* test_progress.c — tqdm's line format and CJK display widths. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "evalhost/progress.h"

int main(void)
{
    CHECK_EQ_INT(eh_display_width("abc"), 3);
    CHECK_EQ_INT(eh_display_width("[物理] 编辑图像"), 15);
    CHECK_EQ_INT(eh_display_width("e\xcc\x81"), 1);   /* e + combining acute */

    char line[1024];
    eh_progress_format(line, sizeof line, "[物理] 编辑图像", 50, 50, 250.5, 80, 1);
    CHECK_CONTAINS(line, "[物理] 编辑图像: 100%|");
    CHECK_CONTAINS(line, "| 50/50 [04:10<00:00, 5.01s/it]");
    CHECK_EQ_INT(eh_display_width(line), 80);

    eh_progress_format(line, sizeof line, "[x] edit", 5, 10, 1.25, 60, 1);
    CHECK_CONTAINS(line, "[x] edit:  50%|");
    CHECK_CONTAINS(line, "| 5/10 [00:01<00:01, 4.00it/s]");
    CHECK_EQ_INT(eh_display_width(line), 60);

    eh_progress_format(line, sizeof line, "[x] edit", 0, 10, 0, 60, 0);
    CHECK_EQ_STR(line, "[x] edit:   0% 0/10 [00:00<?, ?it/s]");

    /* plain mode writes whole lines, one per quarter and a final one */
    FILE *f = tmpfile();
    eh_progress_params p = eh_progress_default_params();
    p.out = f;
    p.tty = 0;
    eh_progress *bar = eh_progress_new("[环境] 评分", 4, &p);
    for (int i = 0; i < 4; i++)
        eh_progress_tick(bar, 1);
    eh_progress_free(bar);
    rewind(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    CHECK(strchr(buf, '\r') == NULL);
    CHECK_CONTAINS(buf, "[环境] 评分: 100% 4/4 [");
    int lines = 0;
    for (char *c = buf; *c; c++)
        lines += *c == '\n';
    CHECK_EQ_INT(lines, 4);

    /* quiet prints nothing */
    f = tmpfile();
    p.out = f;
    p.quiet = 1;
    bar = eh_progress_new("q", 3, &p);
    eh_progress_tick(bar, 3);
    eh_progress_free(bar);
    CHECK_EQ_INT(ftell(f), 0);
    fclose(f);
    return check_summary("test_progress");
}
