/* test_reliability.c — the C mechanisms of issue 20 on their own: server
 * text made valid UTF-8 (U+FFFD for surrogates, overlong forms, stray
 * bytes; a character cap), excerpts that stay valid UTF-8, the logprob
 * expectation ignoring +inf, reads that refuse a FIFO, a device and (with
 * EH_FS_NOFOLLOW) a link without blocking, and temp names that fit the
 * 255-byte file-name limit for any name. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "evalhost/fs.h"
#include "evalhost/hash.h"
#include "evalhost/jscan.h"
#include "evalhost/score_parse.h"

static int valid_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = eh_utf8_len((const uint8_t *)s + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static void test_sanitize(void)
{
    /* a lone surrogate, an overlong '/', a stray byte, then the score */
    const char bad[] = "\xed\xa0\x80 \xc0\xaf \xff Score: 7 \xe4\xb8\xad";
    size_t len = 0;
    int cut = -1;
    char *s = eh_text_sanitize(bad, sizeof bad - 1, 0, &len, &cut);
    CHECK(s != NULL && valid_utf8(s) && cut == 0 && len == strlen(s));
    CHECK(strstr(s, "\xef\xbf\xbd") != NULL && strstr(s, "\xed\xa0\x80") == NULL && strstr(s, "\xc0\xaf") == NULL);
    CHECK_CONTAINS(s, "Score: 7 \xe4\xb8\xad");   /* valid text passes unchanged */
    eh_score_parsed p;
    eh_error err = { 0 };
    CHECK(eh_score_parse(s, &p, &err) == EH_OK && p.value == 7);
    free(s);
    /* the cap counts characters, never cuts one */
    s = eh_text_sanitize("\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad", 9, 2, &len, &cut);
    CHECK(s && cut == 1 && len == 6 && valid_utf8(s));
    free(s);
    char ex[300];
    eh_score_excerpt(bad, 50, ex, sizeof ex);
    CHECK(valid_utf8(ex));
}

static void test_infinite_logprob(void)
{
    const char *toks[] = { "7", "8", "9" };
    double lps[] = { INFINITY, log(0.5), log(0.5) };
    double probs[11];
    double ev = eh_score_expected(toks, lps, 3, probs);
    CHECK(isfinite(ev) && fabs(ev - 8.5) < 1e-9);
    double none[] = { INFINITY, -INFINITY, NAN };
    CHECK(eh_score_expected(toks, none, 3, probs) == -1);
}

static void test_reads(const char *dir)
{
    char fifo[512], link[512], reg[512], hex[EH_HASH_HEX];
    snprintf(fifo, sizeof fifo, "%s/fifo.png", dir);
    snprintf(link, sizeof link, "%s/zero.png", dir);
    snprintf(reg, sizeof reg, "%s/file.png", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(symlink("/dev/zero", link) == 0);
    eh_error err = { 0 };
    CHECK(eh_fs_write_atomic(reg, "abc", 3, &err) == EH_OK);
    char *buf = NULL;
    size_t n = 0;
    /* neither hangs: a FIFO with no writer, a device without end */
    CHECK(eh_fs_read(fifo, 0, &buf, &n, &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "not a regular file");
    CHECK(eh_hash_file(link, hex, &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "not a regular file");
    CHECK(eh_hash_file_ex(link, EH_FS_NOFOLLOW, hex, &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "symbolic link");
    CHECK(eh_fs_read_ex(reg, 0, EH_FS_NOFOLLOW, &buf, &n, &err) == EH_OK && n == 3 && !memcmp(buf, "abc", 3));
    free(buf);
    unlink(fifo);
    unlink(link);
    unlink(reg);
}

static void test_temp_names(const char *dir)
{
    char name[600], tmp[700];
    /* a 251-byte name plus ".png": the final name fits, so must its temp */
    int k = snprintf(name, sizeof name, "%s/", dir);
    memset(name + k, 'i', 251);
    memcpy(name + k + 251, ".png", 5);
    CHECK(eh_fs_temp_name(name, tmp, sizeof tmp) == 0);
    const char *base = strrchr(tmp, '/') + 1;
    CHECK(strlen(base) <= 255 && base[0] == '.');
    eh_error err = { 0 };
    CHECK(eh_fs_write_atomic(name, "x", 1, &err) == EH_OK);
    unlink(name);
    /* never cut inside a UTF-8 sequence */
    k = snprintf(name, sizeof name, "%s/", dir);
    for (int i = 0; i < 80; i++)
        memcpy(name + k + 3 * i, "\xe4\xb8\xad", 3);
    name[k + 240] = '\0';
    CHECK(eh_fs_temp_name(name, tmp, sizeof tmp) == 0);
    char *stem = strrchr(tmp, '/') + 2;
    *strstr(stem, ".tmp.") = '\0';
    CHECK(valid_utf8(stem) && strlen(stem) <= EH_FS_TEMP_STEM);
}

int main(void)
{
    char dir[] = "/tmp/eh_reliability_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_sanitize();
    test_infinite_logprob();
    test_reads(dir);
    test_temp_names(dir);
    rmdir(dir);
    return check_summary("reliability");
}
