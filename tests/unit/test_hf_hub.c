/* test_hf_hub.c — resolving model ids through fake hub caches built in a
 * temporary directory: each cache variable in its order, refs → snapshot,
 * a commit hash as revision, local paths, and every way a model can be
 * missing (with the paths tried and the download command in the error). */
#include "evalhost/hf_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define H1 "0123456789abcdef0123456789abcdef01234567"
#define H2 "fedcba9876543210fedcba9876543210fedcba98"

static char root[256];

static void mkdirs(const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

static void put(const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void set(const char *var, const char *rel)
{
    char p[1024];
    if (!rel) {
        unsetenv(var);
        return;
    }
    snprintf(p, sizeof p, "%s/%s", root, rel);
    setenv(var, p, 1);
}

static void build_tree(void)
{
    /* cache A ($HF_HUB_CACHE): Org/Dense at H1 via main, a ref "v2" → H2 */
    mkdirs("a/models--Org--Dense/refs");
    mkdirs("a/models--Org--Dense/snapshots/" H1);
    mkdirs("a/models--Org--Dense/snapshots/" H2);
    put("a/models--Org--Dense/refs/main", H1 "\n");
    put("a/models--Org--Dense/refs/v2", H2);
    put("a/models--Org--Dense/snapshots/" H1 "/config.json", "{}");
    put("a/models--Org--Dense/snapshots/" H2 "/config.json", "{}");
    /* cache B ($HF_HOME/hub): Org/Moe; Org/Broken with a bad ref; Org/Half
     * with a snapshot lacking config.json */
    mkdirs("home/hub/models--Org--Moe/refs");
    mkdirs("home/hub/models--Org--Moe/snapshots/" H2);
    put("home/hub/models--Org--Moe/refs/main", H2);
    put("home/hub/models--Org--Moe/snapshots/" H2 "/config.json", "{}");
    mkdirs("home/hub/models--Org--Broken/refs");
    put("home/hub/models--Org--Broken/refs/main", "not a hash");
    mkdirs("home/hub/models--Org--Half/refs");
    mkdirs("home/hub/models--Org--Half/snapshots/" H1);
    put("home/hub/models--Org--Half/refs/main", H1);
    /* ~/.cache ($HOME): Org/Dense at H2 too (cache A must win) */
    mkdirs("user/.cache/huggingface/hub/models--Org--Dense/refs");
    mkdirs("user/.cache/huggingface/hub/models--Org--Dense/snapshots/" H2);
    put("user/.cache/huggingface/hub/models--Org--Dense/refs/main", H2);
    put("user/.cache/huggingface/hub/models--Org--Dense/snapshots/" H2 "/config.json", "{}");
    mkdirs("local");
    put("local/config.json", "{}");
    mkdirs("noconfig");
}

static void test_resolve(void)
{
    eh_hf_snapshot s;
    eh_error err = { 0 };
    set("HF_HUB_CACHE", "a");
    set("HF_HOME", "home");
    set("HOME", "user");
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, NULL, &s, &err), EH_OK);
    CHECK_EQ_STR(s.revision, H1);
    CHECK_CONTAINS(s.dir, "/a/models--Org--Dense/snapshots/" H1);
    CHECK_CONTAINS(s.cache, "/a");
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, "v2", &s, &err), EH_OK);
    CHECK_EQ_STR(s.revision, H2);
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, H2, &s, &err), EH_OK);
    CHECK_CONTAINS(s.dir, "/snapshots/" H2);
    /* the second cache */
    CHECK_EQ_INT(eh_hf_resolve("Org/Moe", NULL, NULL, &s, &err), EH_OK);
    CHECK_CONTAINS(s.dir, "/home/hub/models--Org--Moe/snapshots/" H2);
    /* without HF_HUB_CACHE, HF_HOME's copy ... and without both, ~/.cache */
    set("HF_HUB_CACHE", NULL);
    set("HF_HOME", NULL);
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, NULL, &s, &err), EH_OK);
    CHECK_CONTAINS(s.dir, "/user/.cache/huggingface/hub/models--Org--Dense/snapshots/" H2);
    set("HF_HUB_CACHE", "a");
    set("HF_HOME", "home");
}

static void test_path(void)
{
    eh_hf_snapshot s;
    eh_error err = { 0 };
    char p[512];
    snprintf(p, sizeof p, "%s/local/", root);
    CHECK_EQ_INT(eh_hf_resolve("Org/Ignored", p, NULL, &s, &err), EH_OK);
    CHECK_EQ_STR(s.revision, "local");
    CHECK(s.dir[strlen(s.dir) - 1] != '/');
    snprintf(p, sizeof p, "%s/a/models--Org--Dense/snapshots/" H2, root);
    CHECK_EQ_INT(eh_hf_resolve(NULL, p, NULL, &s, &err), EH_OK);
    CHECK_EQ_STR(s.revision, H2);   /* a snapshot directory keeps its hash */
    snprintf(p, sizeof p, "%s/noconfig", root);
    CHECK_EQ_INT(eh_hf_resolve(NULL, p, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "has no config.json");
    snprintf(p, sizeof p, "%s/nowhere", root);
    CHECK_EQ_INT(eh_hf_resolve(NULL, p, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "nowhere: no such directory");
}

static void test_missing(void)
{
    eh_hf_snapshot s;
    eh_error err = { 0 };
    CHECK_EQ_INT(eh_hf_resolve("Qwen/Qwen3-VL-8B-Instruct", NULL, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "model Qwen/Qwen3-VL-8B-Instruct (revision main) is not on this machine");
    CHECK_CONTAINS(err.msg, "/a/models--Qwen--Qwen3-VL-8B-Instruct, ");
    CHECK_CONTAINS(err.msg, "/home/hub/models--Qwen--Qwen3-VL-8B-Instruct");
    CHECK_CONTAINS(err.msg, "/user/.cache/huggingface/hub/models--Qwen--Qwen3-VL-8B-Instruct");
    CHECK_CONTAINS(err.msg, "`huggingface-cli download Qwen/Qwen3-VL-8B-Instruct`");
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, "v9", &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "has no refs/v9");
    CHECK_CONTAINS(err.msg, "--revision v9");
    CHECK_EQ_INT(eh_hf_resolve("Org/Broken", NULL, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "does not hold a commit hash");
    CHECK_EQ_INT(eh_hf_resolve("Org/Half", NULL, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "has no config.json (incomplete download?)");
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, "0123456789012345678901234567890123456789", &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "is missing");
    /* malformed ids and revisions never touch the file system */
    const char *bad[] = { "NoSlash", "a/b/c", "../x", "Org/..", "Org/a b", "Org--x/y", "/abs", "Org/" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(eh_hf_resolve(bad[i], NULL, NULL, &s, &err), EH_EINVAL);
        CHECK_CONTAINS(err.msg, "is not a Hugging Face model id");
    }
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, "../../etc", &s, &err), EH_EINVAL);
    CHECK_CONTAINS(err.msg, "bad revision");
    CHECK_EQ_INT(eh_hf_resolve(NULL, NULL, NULL, &s, &err), EH_EINVAL);
    set("HF_HUB_CACHE", NULL);
    set("HF_HOME", NULL);
    set("HOME", NULL);
    CHECK_EQ_INT(eh_hf_resolve("Org/Dense", NULL, NULL, &s, &err), EH_EIO);
    CHECK_CONTAINS(err.msg, "no cache (HF_HUB_CACHE, HF_HOME and HOME unset)");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/eh_hf_hub_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    build_tree();
    test_resolve();
    test_path();
    test_missing();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_summary("test_hf_hub");
}
