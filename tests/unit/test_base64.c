/* test_base64.c — RFC 4648 vectors, both alphabets, optional padding,
 * whitespace, data URLs, and every kind of bad input with its offset. */
#include <stdlib.h>

#include "check.h"
#include "files.h"
#include "evalhost/base64.h"

static char *read_text(const char *rel, size_t *len)
{
    char path[1024];
    const char *src = getenv("EVALHOST_SRC");
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    return slurp(path, len);
}

/* Decodes s and compares with want (NUL-terminated). */
static void check_decodes(const char *s, const char *want)
{
    uint8_t *out;
    size_t n;
    eh_error err = { 0 };
    eh_status st = eh_b64_decode(s, strlen(s), &out, &n, &err);
    CHECK_EQ_INT(st, EH_OK);
    if (st != EH_OK) {
        fprintf(stderr, "  decoding \"%s\": %s\n", s, err.msg);
        return;
    }
    CHECK_EQ_INT(n, strlen(want));
    CHECK(n == strlen(want) && memcmp(out, want, n) == 0);
    free(out);
}

static void check_fails(const char *s, const char *msg)
{
    uint8_t *out = (uint8_t *)"untouched";
    size_t n = 99;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_b64_decode(s, strlen(s), &out, &n, &err), EH_EINVAL);
    CHECK(out == NULL);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_STR(err.msg, msg);
}

/* The file rel fails to decode with a message containing msg. */
static void check_file_fails(const char *rel, const char *msg)
{
    size_t len;
    char *t = read_text(rel, &len);
    CHECK(t != NULL);
    if (!t)
        return;
    uint8_t *out;
    size_t n;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_b64_decode(t, len, &out, &n, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, msg);
    free(t);
}

int main(void)
{
    /* RFC 4648 §10 vectors, padded and unpadded. */
    static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        size_t n;
        char *e = eh_b64_encode(plain[i], strlen(plain[i]), &n);
        CHECK_EQ_STR(e, coded[i]);
        CHECK_EQ_INT(n, strlen(coded[i]));
        free(e);
        check_decodes(coded[i], plain[i]);
        char unpadded[16];
        snprintf(unpadded, sizeof unpadded, "%s", coded[i]);
        char *eq = strchr(unpadded, '=');
        if (eq)
            *eq = '\0';
        check_decodes(unpadded, plain[i]);
    }

    /* Both alphabets: bytes fb ff bf encode to "+/+/" or "-_-_". */
    check_decodes("+/+/", "\xfb\xff\xbf");
    check_decodes("-_-_", "\xfb\xff\xbf");
    check_decodes("+_-/", "\xfb\xff\xbf");
    /* Whitespace anywhere, including inside a quad and after padding. */
    check_decodes(" Zm9v\r\nYm\tFy\n", "foobar");
    check_decodes("Zm9vYg=\n=\n", "foob");
    /* data URL prefixes. */
    check_decodes("data:image/png;base64,Zm9vYmFy", "foobar");
    check_decodes("data:;base64,Zm8", "fo");

    /* Bad input names the offset of the first bad byte. */
    check_fails("Zm9v!mFy", "bad base64 at offset 4 (invalid character)");
    check_fails("Zm9vYmFy\x80", "bad base64 at offset 8 (invalid character)");
    check_fails("Zg==Zg==", "bad base64 at offset 4 (data after padding)");
    check_fails("Z===", "bad base64 at offset 1 (misplaced padding)");
    check_fails("=", "bad base64 at offset 0 (misplaced padding)");
    check_fails("Zm9vY", "bad base64 at offset 5 (truncated: one stray character at the end)");
    check_fails("data:image/png,Zm9v", "bad base64 at offset 0 (data URL without ;base64,)");
    check_fails("data:image/png;base64,Zm9v*", "bad base64 at offset 26 (invalid character)");

    /* The committed hostile files. */
    check_file_fails("tests/data/bad/bad_base64.txt", "bad base64 at offset 100 (invalid character)");
    check_file_fails("tests/data/bad/truncated_base64.txt", "(truncated: one stray character at the end)");

    /* Round trips of pseudo-random bytes of every length up to 300, also
     * through the URL-safe alphabet with the padding dropped. */
    uint32_t seed = 12345;
    for (size_t n = 0; n <= 300; n++) {
        uint8_t buf[300];
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            buf[i] = (uint8_t)(seed >> 24);
        }
        size_t elen;
        char *e = eh_b64_encode(buf, n, &elen);
        CHECK_EQ_INT(elen, (n + 2) / 3 * 4);
        uint8_t *d;
        size_t dn;
        eh_error err = { 0 };
        CHECK_EQ_INT(eh_b64_decode(e, elen, &d, &dn, &err), EH_OK);
        CHECK(dn == n && memcmp(d, buf, n) == 0);
        CHECK(dn <= eh_b64_decoded_max(elen));
        free(d);
        for (char *p = e; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        while (elen && e[elen - 1] == '=')
            e[--elen] = '\0';
        CHECK_EQ_INT(eh_b64_decode(e, elen, &d, &dn, &err), EH_OK);
        CHECK(dn == n && memcmp(d, buf, n) == 0);
        free(d);
        free(e);
    }
    return check_summary("test_base64");
}
