/* test_journal.c — the results journal and the output-folder lock on a real
 * file system: replay, torn and damaged lines, run keys, held/stale/foreign
 * locks, leftover temp files, a write past RLIMIT_FSIZE, a folder the process
 * may not write. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "evalhost/fs.h"
#include "evalhost/journal.h"

typedef struct warnings {
    int n;
    char last[EH_ERROR_MAX];
} warnings;

static void on_warn(void *ud, const char *msg)
{
    warnings *w = ud;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

static eh_journal_params params(const char *key, eh_resume_mode mode, warnings *w)
{
    eh_journal_params p = eh_journal_default_params();
    p.run_key = key;
    p.resume = mode;
    p.warn = on_warn;
    p.warn_ud = w;
    p.header_json = "{\"parts\":{\"dataset\":\"d1\"},\"type\":\"ignored\"}";
    return p;
}

/* A test's journal folder under root and what its opens share: the start
 * of most tests here. */
typedef struct jdir {
    char dir[512], path[600];   /* the folder and its journal.jsonl */
    warnings w;
    eh_error err;
    eh_journal_params p;
} jdir;

/* Opens root/sub with run key key and mode (CHECKed to succeed). */
static eh_journal *jdir_open(jdir *d, const char *root, const char *sub, const char *key, eh_resume_mode mode)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s/%s", root, sub);
    snprintf(d->path, sizeof d->path, "%s/journal.jsonl", d->dir);
    d->p = params(key, mode, &d->w);
    eh_journal *j = eh_journal_open(d->dir, &d->p, &d->err);
    CHECK(j != NULL);
    if (!j)
        fprintf(stderr, "%s\n", d->err.msg);
    return j;
}

static char *slurp(const char *path)
{
    char *buf = NULL;
    size_t len;
    if (eh_fs_read(path, 0, &buf, &len, NULL) != EH_OK)
        return NULL;
    return buf;
}

static void append_bytes(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ_INT(write(fd, text, len), (long long)len);
        close(fd);
    }
}

static void append_raw(const char *path, const char *text)
{
    append_bytes(path, text, strlen(text));
}

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ_INT(write(fd, "x", 1), 1);
        close(fd);
    }
}

static void test_new_append_replay(const char *root)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/basic/out", root);   /* parents are created */
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    warnings w = { 0 };
    eh_error err = { 0 };
    eh_journal_params p = params("key-1", EH_RESUME_NO, &w);
    eh_journal *j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);
    if (!j) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(eh_journal_is_new(j));
    CHECK_EQ_STR(eh_journal_header(j), "{\"type\":\"header\",\"run_key\":\"key-1\",\"parts\":{\"dataset\":\"d1\"}}");
    const char *rec1 = "{\"type\":\"step\",\"stage\":\"edit\",\"id\":\"p1\"}";
    const char *rec2 = "{\"type\":\"step\",\"stage\":\"score\",\"id\":\"p1\",\"record\":{\"score\":7.5}}";
    CHECK_EQ_INT(eh_journal_append(j, rec1, strlen(rec1), &err), EH_OK);
    CHECK_EQ_INT(eh_journal_append(j, rec2, strlen(rec2), &err), EH_OK);
    CHECK_EQ_INT(eh_journal_append(j, "{\"a\":\n1}", 8, &err), EH_EINVAL);   /* a newline would split the record */
    CHECK_CONTAINS(err.msg, "newline");
    char lock[600];
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    char *text = slurp(lock);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld ", (long)getpid());
    CHECK(text && strncmp(text, pid, strlen(pid)) == 0);   /* "pid host" */
    free(text);
    eh_journal_free(j);
    CHECK(!eh_fs_exists(lock));                            /* released on free */

    /* without --resume the folder is now "not empty" */
    CHECK(eh_journal_open(dir, &p, &err) == NULL);
    CHECK_EQ_INT(err.code, EH_ESTATE);
    CHECK_CONTAINS(err.msg, "is not empty");
    CHECK_CONTAINS(err.msg, "--resume");

    p.resume = EH_RESUME_YES;
    j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);
    if (j) {
        CHECK(!eh_journal_is_new(j));
        CHECK_EQ_INT(eh_journal_count(j), 2);
        CHECK_EQ_STR(eh_journal_line(j, 0), rec1);
        CHECK_EQ_STR(eh_journal_line(j, 1), rec2);
        CHECK(eh_journal_line(j, 2) == NULL);
        /* where each line starts in the file: after the header, then after rec1 */
        const char *hdr = eh_journal_header(j);
        CHECK_EQ_INT(eh_journal_line_offset(j, 0), strlen(hdr) + 1);
        CHECK_EQ_INT(eh_journal_line_offset(j, 1), strlen(hdr) + 1 + strlen(rec1) + 1);
        eh_journal_free(j);
    }
    CHECK_EQ_INT(w.n, 0);

    /* read-only: no lock file, appends refused */
    eh_journal_params ro = eh_journal_default_params();
    ro.read_only = 1;
    j = eh_journal_open(dir, &ro, &err);
    CHECK(j != NULL);
    if (j) {
        CHECK(!eh_fs_exists(lock));
        CHECK_EQ_INT(eh_journal_count(j), 2);
        CHECK_EQ_INT(eh_journal_append(j, rec1, strlen(rec1), &err), EH_ESTATE);
        eh_journal_free(j);
    }
    char *hdr = NULL;
    CHECK_EQ_INT(eh_journal_read_header(dir, &hdr, &err), EH_OK);
    CHECK(hdr && strstr(hdr, "\"key-1\""));
    free(hdr);
    eh_journal_free(NULL);
}

static void test_torn_and_damaged(const char *root)
{
    jdir d;
    eh_journal *j = jdir_open(&d, root, "torn", "k", EH_RESUME_NO);
    if (!j)
        return;
    CHECK_EQ_INT(eh_journal_append(j, "{\"n\":1}", 7, &d.err), EH_OK);
    eh_journal_free(j);
    append_raw(d.path, "{\"n\":2,\"half");   /* killed mid-write: no newline */

    d.p.resume = EH_RESUME_YES;
    j = eh_journal_open(d.dir, &d.p, &d.err);
    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_EQ_INT(eh_journal_count(j), 1);
    CHECK_EQ_INT(d.w.n, 1);
    CHECK_CONTAINS(d.w.last, "torn last record");
    CHECK_EQ_INT(eh_journal_append(j, "{\"n\":3}", 7, &d.err), EH_OK);
    eh_journal_free(j);
    char *text = slurp(d.path);
    CHECK(text && strstr(text, "half") == NULL);                /* cut away before appending */
    CHECK(text && strstr(text, "{\"n\":1}\n{\"n\":3}\n") != NULL);
    free(text);

    /* zeros after the last line (a file system that lost the tail) */
    append_bytes(d.path, "\0\0\0\n", 4);
    d.w.n = 0;
    j = eh_journal_open(d.dir, &d.p, &d.err);
    CHECK(j != NULL);
    if (j) {
        CHECK_EQ_INT(eh_journal_count(j), 2);
        CHECK_EQ_INT(d.w.n, 1);
        eh_journal_free(j);
    }

    /* damage before a valid line: refused, naming the line; force skips it */
    append_raw(d.path, "not json\n{\"n\":4}\n");
    j = eh_journal_open(d.dir, &d.p, &d.err);
    CHECK(j == NULL);
    CHECK_EQ_INT(d.err.code, EH_EFORMAT);
    CHECK_CONTAINS(d.err.msg, "line 4 is damaged");
    d.p.resume = EH_RESUME_FORCE;
    d.w.n = 0;
    j = eh_journal_open(d.dir, &d.p, &d.err);
    CHECK(j != NULL);
    if (j) {
        CHECK_EQ_INT(eh_journal_count(j), 3);
        CHECK_EQ_STR(eh_journal_line(j, 2), "{\"n\":4}");
        CHECK_CONTAINS(d.w.last, "skipped 1 damaged line");
        eh_journal_free(j);
    }

    /* a step line before any header: not our journal */
    char dir2[512], path2[600];
    snprintf(dir2, sizeof dir2, "%s/noheader", root);
    snprintf(path2, sizeof path2, "%s/journal.jsonl", dir2);
    CHECK_EQ_INT(eh_fs_mkdir_p(dir2, NULL), EH_OK);
    CHECK_EQ_INT(eh_fs_write_atomic(path2, "{\"type\":\"step\"}\n", 16, NULL), EH_OK);
    d.p.resume = EH_RESUME_YES;
    CHECK(eh_journal_open(dir2, &d.p, &d.err) == NULL);
    CHECK_CONTAINS(d.err.msg, "before the header");
}

static void test_run_key(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/key", root);
    warnings w = { 0 };
    eh_error err = { 0 };
    eh_journal_params p = params("run-A", EH_RESUME_YES, &w);   /* --resume on a missing folder starts */
    eh_journal *j = eh_journal_open(dir, &p, &err);
    CHECK(j && eh_journal_is_new(j));
    eh_journal_free(j);
    p.run_key = "run-B";
    CHECK(eh_journal_open(dir, &p, &err) == NULL);
    CHECK_EQ_INT(err.code, EH_ESTATE);
    CHECK_CONTAINS(err.msg, "different run (run key run-A, this run run-B)");
    CHECK_CONTAINS(err.msg, "--resume=force");
    p.resume = EH_RESUME_FORCE;
    j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);
    CHECK_CONTAINS(w.last, "--resume=force");
    if (j)
        CHECK(strstr(eh_journal_header(j), "run-A") != NULL);   /* the old header stays */
    eh_journal_free(j);

    /* --resume on an empty folder simply starts */
    char empty[512];
    snprintf(empty, sizeof empty, "%s/empty", root);
    CHECK_EQ_INT(eh_fs_mkdir_p(empty, NULL), EH_OK);
    p.resume = EH_RESUME_NO;
    j = eh_journal_open(empty, &p, &err);
    CHECK(j && eh_journal_is_new(j));
    eh_journal_free(j);

    p.header_json = "[1,2]";
    char other[512];
    snprintf(other, sizeof other, "%s/badheader", root);
    CHECK(eh_journal_open(other, &p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "header must be a JSON object");
    p.run_key = NULL;
    CHECK(eh_journal_open(other, &p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "no run key");
}

static void test_locks(const char *root)
{
    char dir[512], lock[600];
    snprintf(dir, sizeof dir, "%s/lock", root);
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    warnings w = { 0 };
    eh_error err = { 0 };
    eh_journal_params p = params("k", EH_RESUME_YES, &w);
    p.hostname = "node-a";
    eh_journal *j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);

    /* held: a second open (another open file description) is refused */
    eh_journal *j2 = eh_journal_open(dir, &p, &err);
    CHECK(j2 == NULL);
    CHECK_EQ_INT(err.code, EH_ESTATE);
    CHECK_CONTAINS(err.msg, "in use by another evalhost");
    char pid[64];
    snprintf(pid, sizeof pid, "pid %ld on node-a", (long)getpid());
    CHECK_CONTAINS(err.msg, pid);
    eh_journal_free(j);

    /* stale: a dead process of this host left its lock behind */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    char text[128];
    int n = snprintf(text, sizeof text, "%ld node-a\n", (long)child);
    CHECK_EQ_INT(eh_fs_write_atomic(lock, text, (size_t)n, NULL), EH_OK);
    w.n = 0;
    j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);
    CHECK_EQ_INT(w.n, 1);
    CHECK_CONTAINS(w.last, "taking over the stale lock");
    CHECK_CONTAINS(w.last, "that process is gone");
    eh_journal_free(j);

    /* another host's lock is never taken over */
    n = snprintf(text, sizeof text, "%ld node-b\n", (long)child);
    CHECK_EQ_INT(eh_fs_write_atomic(lock, text, (size_t)n, NULL), EH_OK);
    CHECK(eh_journal_open(dir, &p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "on host node-b");
    CHECK_CONTAINS(err.msg, "remove the lock file");
    CHECK(eh_fs_exists(lock));
    unlink(lock);
}

static void test_sweep(const char *root)
{
    char dir[512], cat[600], a[700], b[700], c[700], d[700];
    snprintf(dir, sizeof dir, "%s/sweep", root);
    snprintf(cat, sizeof cat, "%s/images/cat", dir);
    CHECK_EQ_INT(eh_fs_mkdir_p(cat, NULL), EH_OK);
    snprintf(a, sizeof a, "%s/p1.png.tmp.4242", cat);
    snprintf(b, sizeof b, "%s/p1.png", cat);
    snprintf(c, sizeof c, "%s/notes.tmp.x", cat);
    snprintf(d, sizeof d, "%s/report.json.tmp.7", dir);
    touch(a);
    touch(b);
    touch(c);
    touch(d);
    warnings w = { 0 };
    eh_error err = { 0 };
    eh_journal_params p = params("k", EH_RESUME_YES, &w);
    eh_journal *j = eh_journal_open(dir, &p, &err);
    CHECK(j != NULL);
    eh_journal_free(j);
    CHECK(!eh_fs_exists(a));
    CHECK(!eh_fs_exists(d));
    CHECK(eh_fs_exists(b));
    CHECK(eh_fs_exists(c));
    CHECK_CONTAINS(w.last, "removed 2 unfinished temp file(s)");
}

/* Runs fn(ctx, msg) in a child process (limits and uids are per process);
 * returns fn's exit code and copies the child's error message into msg. */
typedef int (*child_fn)(void *ctx, eh_error *err);

static int in_child(child_fn fn, void *ctx, char *msg, size_t n)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        eh_error err = { 0 };
        int rc = fn(ctx, &err);
        if (write(fds[1], err.msg, strlen(err.msg)) < 0)
            _exit(4);
        _exit(rc);
    }
    close(fds[1]);
    ssize_t r = read(fds[0], msg, n - 1);
    msg[r > 0 ? r : 0] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

typedef struct fsize_ctx {
    const char *dir;
    off_t limit;
    eh_journal_params p;
} fsize_ctx;

static int append_past_limit(void *ctx, eh_error *err)
{
    fsize_ctx *c = ctx;
    signal(SIGXFSZ, SIG_IGN);   /* the write fails instead of killing */
    eh_journal *j = eh_journal_open(c->dir, &c->p, err);
    if (!j)
        return 3;
    struct rlimit rl = { (rlim_t)c->limit, (rlim_t)c->limit };
    setrlimit(RLIMIT_FSIZE, &rl);
    char rec[100];
    memset(rec, 'x', sizeof rec);
    memcpy(rec, "{\"s\":\"", 6);
    memcpy(rec + sizeof rec - 2, "\"}", 2);
    eh_status rc = eh_journal_append(j, rec, sizeof rec, err);
    eh_journal_free(j);
    return rc == EH_EIO ? 0 : 5;
}

static int open_as_nobody(void *ctx, eh_error *err)
{
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 3;
    eh_journal_params p = eh_journal_default_params();
    p.run_key = "k";
    eh_journal *j = eh_journal_open(ctx, &p, err);
    return j == NULL && err->code == EH_EIO ? 0 : 5;
}

/* A write past RLIMIT_FSIZE fails part-way: the record is cut back off and
 * the journal still replays (runs in a child: the limit is per process). */
static void test_file_size_limit(const char *root)
{
    jdir d;
    eh_journal *j = jdir_open(&d, root, "fsize", "k", EH_RESUME_NO);
    eh_journal_free(j);
    struct stat st;
    CHECK(stat(d.path, &st) == 0);
    off_t before = st.st_size;

    fsize_ctx ctx = { d.dir, before + 20, d.p };
    ctx.p.resume = EH_RESUME_YES;
    char msg[EH_ERROR_MAX];
    CHECK_EQ_INT(in_child(append_past_limit, &ctx, msg, sizeof msg), 0);
    CHECK_CONTAINS(msg, "cannot append a record");
    CHECK(stat(d.path, &st) == 0);
    CHECK_EQ_INT(st.st_size, before);   /* the partial record was cut off */
    d.p.resume = EH_RESUME_YES;
    d.w.n = 0;
    j = eh_journal_open(d.dir, &d.p, &d.err);
    CHECK(j != NULL);
    CHECK_EQ_INT(d.w.n, 0);
    if (j)
        CHECK_EQ_INT(eh_journal_count(j), 0);
    eh_journal_free(j);
}

/* A folder this process may not write: clear error, nothing half-made.
 * Root writes anywhere, so the child drops to nobody first. */
static void test_read_only_folder(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ro", root);
    CHECK_EQ_INT(eh_fs_mkdir_p(dir, NULL), EH_OK);
    CHECK(chmod(root, 0755) == 0);
    CHECK(chmod(dir, 0555) == 0);
    char msg[EH_ERROR_MAX];
    CHECK_EQ_INT(in_child(open_as_nobody, dir, msg, sizeof msg), 0);
    CHECK_CONTAINS(msg, "cannot create the lock file");
    CHECK_CONTAINS(msg, "Permission denied");
    chmod(dir, 0755);
}

int main(void)
{
    char root[] = "/tmp/eh_journal_test_XXXXXX";
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_new_append_replay(root);
    test_torn_and_damaged(root);
    test_run_key(root);
    test_locks(root);
    test_sweep(root);
    test_file_size_limit(root);
    test_read_only_folder(root);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_summary("test_journal");
}
