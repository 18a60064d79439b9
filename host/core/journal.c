/* journal.c — the results journal and the output folder's lock.
 *
 * Durability rule: a line is appended with one write() and then fsync()ed
 * before the caller goes on, so a crash can only leave a torn *last* line.
 * A failed or short write is cut back with ftruncate(), so even a full disk
 * leaves a journal that replays. */
#define _DEFAULT_SOURCE   /* flock, gethostname */
#include "evalhost/journal.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evalhost/fs.h"

#define PATH_MAX_LEN 4096
#define HOST_MAX 256
/* Leftover "<name>.tmp.<pid>" files are looked for this deep: out/images/<cat>/x. */
#define SWEEP_DEPTH 3

struct eh_journal {
    char *dir;
    char *path;            /* <dir>/journal.jsonl */
    char *lock_path;       /* <dir>/.lock, NULL when no lock is held */
    int fd;                /* journal, O_APPEND; -1 when read-only */
    int lock_fd;           /* flock()ed; -1 when none */
    off_t size;            /* bytes of whole, valid lines on disk */
    int is_new;
    char *buf;             /* the replayed file; lines point into it (NULs for newlines) */
    char *header;          /* malloc'd header line */
    const char **lines;
    size_t *line_nos;      /* each line's 1-based number in the file, for messages */
    size_t n_lines;
    eh_journal_warn_fn warn;
    void *warn_ud;
};

eh_journal_params eh_journal_default_params(void)
{
    eh_journal_params p;
    memset(&p, 0, sizeof p);
    p.resume = EH_RESUME_NO;
    return p;
}

/* a warning for the journal's callback */
#define warnf(j, ...) eh_message((j)->warn, (j)->warn_ud, __VA_ARGS__)

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- lock ---------------------------------------------------------------- */

/* Parses "pid hostname" from a lock file's text; 0 when it says nothing. */
static int parse_lock(const char *text, long *pid, char host[HOST_MAX])
{
    char fmt[32];
    snprintf(fmt, sizeof fmt, "%%ld %%%ds", HOST_MAX - 1);
    host[0] = '\0';
    return sscanf(text, fmt, pid, host) == 2;
}

static void read_lock_text(int fd, char *out, size_t n)
{
    ssize_t r = pread(fd, out, n - 1, 0);
    out[r > 0 ? r : 0] = '\0';
}

static eh_status lock_acquire(eh_journal *j, const char *host, eh_error *err)
{
    char *path = join_path(j->dir, EH_JOURNAL_LOCK);
    if (!path)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->dir);
    /* The holder unlinks the file before it lets go of the flock, so a file
     * we locked may already be gone: retry on a fresh one. */
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            int e = errno;
            free(path);
            return eh_fail(err, EH_EIO, "output folder %s: cannot create the lock file %s/%s: %s", j->dir, j->dir,
                           EH_JOURNAL_LOCK, strerror(e));
        }
        char text[HOST_MAX + 64];
        long pid = 0;
        char owner[HOST_MAX];
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            read_lock_text(fd, text, sizeof text);
            close(fd);
            free(path);
            if (e == EWOULDBLOCK) {
                if (parse_lock(text, &pid, owner))
                    return eh_fail(err, EH_ESTATE,
                                   "output folder %s is in use by another evalhost (pid %ld on %s, lock file %s/%s): "
                                   "wait for it to finish or choose another run.out",
                                   j->dir, pid, owner, j->dir, EH_JOURNAL_LOCK);
                return eh_fail(err, EH_ESTATE, "output folder %s is in use by another evalhost (lock file %s/%s)",
                               j->dir, j->dir, EH_JOURNAL_LOCK);
            }
            return eh_fail(err, EH_EIO, "output folder %s: cannot lock %s/%s: %s", j->dir, j->dir, EH_JOURNAL_LOCK,
                           strerror(e));
        }
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        read_lock_text(fd, text, sizeof text);
        if (parse_lock(text, &pid, owner) && pid != (long)getpid()) {
            if (strcmp(owner, host) != 0) {
                /* flock may not reach across hosts on a network file system:
                 * only a person can tell whether that run is gone. */
                close(fd);
                eh_fail(err, EH_ESTATE,
                        "output folder %s is locked by pid %ld on host %s (lock file %s/%s); "
                        "if that run is gone, remove the lock file",
                        j->dir, pid, owner, j->dir, EH_JOURNAL_LOCK);
                free(path);
                return EH_ESTATE;
            }
            int alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
            warnf(j, "output folder %s: taking over the stale lock of pid %ld on %s (%s)", j->dir, pid, owner,
                  alive ? "that pid no longer holds it" : "that process is gone");
        }
        int n = snprintf(text, sizeof text, "%ld %s\n", (long)getpid(), host);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n || fsync(fd) != 0) {
            int e = errno;
            unlink(path);
            close(fd);
            free(path);
            return eh_fail(err, EH_EIO, "output folder %s: cannot write the lock file: %s", j->dir, strerror(e));
        }
        j->lock_fd = fd;
        j->lock_path = path;
        return EH_OK;
    }
    free(path);
    return eh_fail(err, EH_ESTATE, "output folder %s: the lock file keeps changing; is another evalhost starting?",
                   j->dir);
}

static void lock_release(eh_journal *j)
{
    if (j->lock_fd < 0)
        return;
    unlink(j->lock_path);   /* before the flock goes, so no one locks a dying file unseen */
    close(j->lock_fd);
    j->lock_fd = -1;
    free(j->lock_path);
    j->lock_path = NULL;
}

/* ---- leftovers ------------------------------------------------------------ */

/* "<anything>.tmp.<digits>": what eh_fs_write_atomic and eh_image_save leave
 * behind when killed between open and rename. */
static int is_temp_name(const char *name)
{
    const char *p = strstr(name, ".tmp.");
    if (!p)
        return 0;
    for (;;) {
        const char *next = strstr(p + 1, ".tmp.");
        if (!next)
            break;
        p = next;
    }
    p += 5;
    if (!*p)
        return 0;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* Removes leftover temp files under dir; we hold the lock, so none of them
 * belongs to a live writer.  Returns how many were removed. */
static int sweep_temps(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = join_path(dir, e->d_name);
        if (!p)
            break;
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth > 1)
                removed += sweep_temps(p, depth - 1);
            else if (S_ISREG(st.st_mode) && is_temp_name(e->d_name) && unlink(p) == 0)
                removed++;
        }
        free(p);
    }
    closedir(d);
    return removed;
}

static eh_status check_empty(const char *dir, eh_error *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return EH_OK;   /* missing: created below */
    if (!S_ISDIR(st.st_mode))
        return eh_fail(err, EH_EIO, "output folder %s exists and is not a folder", dir);
    char **names = eh_fs_list(dir, err);
    if (!names)
        return err ? err->code : EH_EIO;
    size_t n = 0;
    while (names[n])
        n++;
    eh_status rc = EH_OK;
    if (n > 0)
        rc = eh_fail(err, EH_ESTATE,
                     "output folder %s is not empty (%zu entr%s, e.g. '%s'): pass --resume to continue the run "
                     "it holds, or set run.out to a new folder",
                     dir, n, n == 1 ? "y" : "ies", names[0]);
    eh_fs_list_free(names);
    return rc;
}

/* ---- replay ------------------------------------------------------------- */

/* Splits j->buf into lines and checks each is a JSON object.  A damaged tail
 * (torn last line, or invalid lines after the last valid one) is cut off at
 * *keep; a damaged line before a valid one is an error unless forced. */
static eh_status replay(eh_journal *j, size_t len, int force, off_t *keep, eh_error *err)
{
    size_t cap = 16, n = 0;
    const char **lines = malloc(cap * sizeof *lines);
    if (!lines)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->path);
    size_t valid_end = 0;        /* byte offset after the last valid line */
    size_t bad_line = 0;         /* first damaged line (1-based) not yet excused */
    size_t lineno = 0, skipped = 0;
    char *p = j->buf, *end = j->buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl)
            break;                   /* torn: no newline, never fsynced whole */
        *nl = '\0';
        cJSON *doc = cJSON_ParseWithLength(p, (size_t)(nl - p));
        int ok = cJSON_IsObject(doc);
        int is_header = ok && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "type")) &&
                        !strcmp(cJSON_GetObjectItemCaseSensitive(doc, "type")->valuestring, "header");
        cJSON_Delete(doc);
        if (ok) {
            if (bad_line) {
                if (!force) {
                    free(lines);
                    return eh_fail(err, EH_EFORMAT,
                                   "%s: line %zu is damaged (not a JSON object) and later lines are not; "
                                   "the journal was edited or the disk lost data (--resume=force skips it)",
                                   j->path, bad_line);
                }
                skipped++;
                bad_line = 0;
            }
            if (is_header) {
                if (j->header || n > 0) {
                    free(lines);
                    return eh_fail(err, EH_EFORMAT, "%s: line %zu is a second header", j->path, lineno);
                }
                j->header = strdup(p);
                if (!j->header) {
                    free(lines);
                    return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->path);
                }
            } else if (!j->header) {
                free(lines);
                return eh_fail(err, EH_EFORMAT, "%s: line %zu comes before the header (not an evalhost journal?)",
                               j->path, lineno);
            } else {
                if (n == cap) {
                    cap *= 2;
                    const char **grown = realloc(lines, cap * sizeof *lines);
                    if (!grown) {
                        free(lines);
                        return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->path);
                    }
                    lines = grown;
                }
                if (n % 16 == 0) {
                    size_t *nos = realloc(j->line_nos, (n + 16) * sizeof *nos);
                    if (!nos) {
                        free(lines);
                        return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->path);
                    }
                    j->line_nos = nos;
                }
                j->line_nos[n] = lineno;
                lines[n++] = p;
            }
            valid_end = (size_t)(nl + 1 - j->buf);
        } else if (!bad_line) {
            bad_line = lineno;
        }
        p = nl + 1;
    }
    if (skipped)
        warnf(j, "%s: skipped %zu damaged line(s) (--resume=force)", j->path, skipped);
    if (valid_end < len)
        warnf(j, "%s: ignoring a torn last record (%zu bytes at offset %zu); its step is redone", j->path,
              len - valid_end, valid_end);
    j->lines = lines;
    j->n_lines = n;
    *keep = (off_t)valid_end;
    return EH_OK;
}

static char *header_field(const char *header, const char *key)
{
    cJSON *doc = cJSON_Parse(header);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    char *out = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(doc);
    return out;
}

/* The new header: {"type":"header","run_key":K, ...params->header_json}. */
static char *make_header(const eh_journal_params *p, eh_error *err)
{
    cJSON *extra = NULL;
    if (p->header_json) {
        extra = cJSON_Parse(p->header_json);
        if (!cJSON_IsObject(extra)) {
            cJSON_Delete(extra);
            eh_fail(err, EH_EINVAL, "journal: the header must be a JSON object");
            return NULL;
        }
    }
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddStringToObject(h, "type", "header") || !cJSON_AddStringToObject(h, "run_key", p->run_key)) {
        cJSON_Delete(h);
        cJSON_Delete(extra);
        eh_fail(err, EH_ENOMEM, "journal: out of memory");
        return NULL;
    }
    while (extra && extra->child) {
        cJSON *c = cJSON_DetachItemViaPointer(extra, extra->child);
        if (!strcmp(c->string, "type") || !strcmp(c->string, "run_key"))
            cJSON_Delete(c);
        else
            cJSON_AddItemToObject(h, c->string, c);
    }
    cJSON_Delete(extra);
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text)
        eh_fail(err, EH_ENOMEM, "journal: out of memory");
    return text;
}

static eh_status write_line(eh_journal *j, const char *json, size_t len, eh_error *err)
{
    if (memchr(json, '\n', len))
        return eh_fail(err, EH_EINVAL, "%s: a record may not contain a newline", j->path);
    char *line = malloc(len + 1);
    if (!line)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", j->path);
    memcpy(line, json, len);
    line[len] = '\n';
    ssize_t w;
    do {
        w = write(j->fd, line, len + 1);
    } while (w < 0 && errno == EINTR);
    int e = errno;
    free(line);
    if (w != (ssize_t)(len + 1) || fsync(j->fd) != 0) {
        if (w >= 0 && w != (ssize_t)(len + 1))
            e = ENOSPC;   /* a short write: the file system ran out of room or the size limit hit */
        else if (w == (ssize_t)(len + 1))
            e = errno;
        /* cut the partial record back off, so the journal stays replayable */
        if (ftruncate(j->fd, j->size) == 0)
            (void)fsync(j->fd);
        return eh_fail(err, EH_EIO, "%s: cannot append a record: %s", j->path, strerror(e));
    }
    j->size += (off_t)(len + 1);
    return EH_OK;
}

static eh_status load_file(eh_journal *j, size_t *len, eh_error *err)
{
    if (!eh_fs_exists(j->path)) {
        j->buf = calloc(1, 1);
        *len = 0;
        return j->buf ? EH_OK : eh_fail(err, EH_ENOMEM, "out of memory");
    }
    return eh_fs_read(j->path, 0, &j->buf, len, err);
}

eh_journal *eh_journal_open(const char *dir, const eh_journal_params *params, eh_error *err)
{
    eh_journal_params p = params ? *params : eh_journal_default_params();
    if (!dir || !*dir) {
        eh_fail(err, EH_EINVAL, "journal: no output folder given");
        return NULL;
    }
    if (!p.read_only && (!p.run_key || !*p.run_key)) {
        eh_fail(err, EH_EINVAL, "journal: no run key given");
        return NULL;
    }
    eh_journal *j = calloc(1, sizeof *j);
    if (!j) {
        eh_fail(err, EH_ENOMEM, "journal: out of memory");
        return NULL;
    }
    j->fd = j->lock_fd = -1;
    j->warn = p.warn;
    j->warn_ud = p.warn_ud;
    j->dir = strdup(dir);
    j->path = join_path(dir, EH_JOURNAL_FILE);
    if (!j->dir || !j->path) {
        eh_fail(err, EH_ENOMEM, "journal: out of memory");
        goto fail;
    }

    if (p.read_only) {
        if (!eh_fs_exists(j->path)) {
            eh_fail(err, EH_EIO, "%s: no journal in this folder (%s)", dir, EH_JOURNAL_FILE);
            goto fail;
        }
    } else {
        if (p.resume == EH_RESUME_NO && check_empty(dir, err) != EH_OK)
            goto fail;
        if (eh_fs_mkdir_p(dir, err) != EH_OK)
            goto fail;
        char host[HOST_MAX] = "localhost";
        if (p.hostname)
            snprintf(host, sizeof host, "%s", p.hostname);
        else if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[HOST_MAX - 1] = '\0';
        for (char *c = host; *c; c++)   /* one word in the lock file */
            if (isspace((unsigned char)*c))
                *c = '_';
        if (lock_acquire(j, host, err) != EH_OK)
            goto fail;
        if (p.resume != EH_RESUME_NO) {
            int n = sweep_temps(dir, SWEEP_DEPTH);
            if (n > 0)
                warnf(j, "%s: removed %d unfinished temp file(s) of the interrupted run", dir, n);
        }
    }

    size_t len = 0;
    off_t keep = 0;
    if (load_file(j, &len, err) != EH_OK || replay(j, len, p.resume == EH_RESUME_FORCE, &keep, err) != EH_OK)
        goto fail;

    if (j->header && !p.read_only) {
        char *old = header_field(j->header, "run_key");
        int same = old && !strcmp(old, p.run_key);
        if (!same && p.resume != EH_RESUME_FORCE) {
            eh_fail(err, EH_ESTATE,
                    "%s was written by a different run (run key %s, this run %s); "
                    "use --resume=force to continue it anyway, or set run.out to a new folder",
                    j->path, old ? old : "(none)", p.run_key);
            free(old);
            goto fail;
        }
        if (!same)
            warnf(j, "%s: --resume=force: continuing the journal of run %s as run %s", j->path, old ? old : "(none)",
                  p.run_key);
        free(old);
    }
    if (p.read_only) {
        if (!j->header) {
            eh_fail(err, EH_EFORMAT, "%s: no header line (empty or not an evalhost journal)", j->path);
            goto fail;
        }
        return j;
    }

    /* O_NOFOLLOW: a journal.jsonl symlinked out of the folder is refused, never appended to */
    j->fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (j->fd < 0) {
        eh_fail(err, EH_EIO, "%s: cannot open for writing: %s", j->path, strerror(errno));
        goto fail;
    }
    if (keep != (off_t)len) {
        if (ftruncate(j->fd, keep) != 0 || fsync(j->fd) != 0) {
            eh_fail(err, EH_EIO, "%s: cannot cut off the torn record: %s", j->path, strerror(errno));
            goto fail;
        }
    }
    j->size = keep;
    if (!j->header) {
        j->is_new = 1;
        j->header = make_header(&p, err);
        if (!j->header || write_line(j, j->header, strlen(j->header), err) != EH_OK)
            goto fail;
    }
    return j;
fail:
    eh_journal_free(j);
    return NULL;
}

int eh_journal_is_new(const eh_journal *j)
{
    return j->is_new;
}
const char *eh_journal_header(const eh_journal *j)
{
    return j->header;
}
size_t eh_journal_count(const eh_journal *j)
{
    return j->n_lines;
}
const char *eh_journal_line(const eh_journal *j, size_t i)
{
    return i < j->n_lines ? j->lines[i] : NULL;
}
size_t eh_journal_line_no(const eh_journal *j, size_t i)
{
    return i < j->n_lines ? j->line_nos[i] : 0;
}
size_t eh_journal_line_offset(const eh_journal *j, size_t i)
{
    return i < j->n_lines ? (size_t)(j->lines[i] - j->buf) : 0;
}
const char *eh_journal_path(const eh_journal *j)
{
    return j->path;
}

eh_status eh_journal_append(eh_journal *j, const char *json, size_t len, eh_error *err)
{
    if (j->fd < 0)
        return eh_fail(err, EH_ESTATE, "%s: opened read-only", j->path);
    return write_line(j, json, len, err);
}

void eh_journal_free(eh_journal *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    lock_release(j);
    free(j->lines);
    free(j->line_nos);
    free(j->buf);
    free(j->header);
    free(j->path);
    free(j->dir);
    free(j);
}

eh_status eh_journal_read_header(const char *dir, char **out, eh_error *err)
{
    *out = NULL;
    char *path = join_path(dir, EH_JOURNAL_FILE);
    if (!path)
        return eh_fail(err, EH_ENOMEM, "out of memory");
    if (!eh_fs_exists(path)) {
        free(path);
        return EH_OK;
    }
    char *buf;
    size_t len;
    eh_status rc = eh_fs_read(path, 0, &buf, &len, err);
    free(path);
    if (rc != EH_OK)
        return rc;
    char *nl = memchr(buf, '\n', len);
    if (nl) {
        *nl = '\0';
        cJSON *doc = cJSON_Parse(buf);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "type");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "header"))
            *out = strdup(buf);
        cJSON_Delete(doc);
    }
    free(buf);
    return EH_OK;
}
