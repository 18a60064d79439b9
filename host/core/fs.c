/* fs.c — durable file writes and small file-system helpers. */
#include "evalhost/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

eh_status eh_fs_mkdir_p(const char *path, eh_error *err)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return eh_fail(err, EH_EINVAL, "%s: bad folder name", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return eh_fail(err, EH_EIO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    if (!eh_fs_is_dir(path))
        return eh_fail(err, EH_EIO, "%s: exists and is not a folder", path);
    return EH_OK;
}

void eh_fs_dirname(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, n, ".");
    } else if (slash == path) {
        snprintf(buf, n, "/");
    } else {
        snprintf(buf, n, "%.*s", (int)(slash - path), path);
    }
}

static void fsync_dir(const char *path)
{
    char dir[4096];
    eh_fs_dirname(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);   /* best effort: some file systems refuse */
        close(fd);
    }
}

int eh_fs_temp_name(const char *path, char *buf, size_t n)
{
    /* ".<at most EH_FS_TEMP_STEM bytes of the name>.tmp.<pid>" beside path: a
     * name that fits the 255-byte limit itself keeps fitting with the suffix */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dir_len = (size_t)(base - path), keep = strlen(base);
    if (keep > EH_FS_TEMP_STEM) {
        keep = EH_FS_TEMP_STEM;
        while (keep > 0 && ((unsigned char)base[keep] & 0xC0) == 0x80)
            keep--;   /* never cut a UTF-8 sequence */
    }
    int k = snprintf(buf, n, "%.*s.%.*s.tmp.%ld", (int)dir_len, path, (int)keep, base, (long)getpid());
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* The folder fd of path's first components, all but its last `depth`, each
 * of those but the last opened below it with O_NOFOLLOW; *name gets the file
 * name (inside buf). -1 with err when a folder is a link or cannot be opened. */
static int open_parent_nofollow(const char *path, int depth, char *buf, size_t n, const char **name, eh_error *err)
{
    size_t len = strlen(path);
    if (len == 0 || len >= n) {
        eh_fail(err, EH_EINVAL, "%s: bad file name", path);
        return -1;
    }
    memcpy(buf, path, len + 1);
    /* where the last `depth` components start */
    char *start = buf + len;
    for (int k = 0; k < depth && start > buf;) {
        start--;
        if (*start == '/' && start[1] != '/' && start[1] != '\0')
            k++;
    }
    int dfd;
    if (start == buf && *start != '/') {
        dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        *start++ = '\0';
        dfd = open(*buf ? buf : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0) {
        eh_fail(err, EH_EIO, "%s: cannot open folder %s: %s", path, *buf ? buf : "/", strerror(errno));
        return -1;
    }
    char *comp = start;
    for (char *next; (next = strchr(comp, '/')) != NULL; comp = next) {
        *next++ = '\0';
        if (*comp == '\0' || !strcmp(comp, "."))
            continue;
        int sub = strcmp(comp, "..") ? openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (sub < 0) {
            int e = strcmp(comp, "..") ? errno : EINVAL;
            struct stat lst;
            int is_link = e != EINVAL && fstatat(dfd, comp, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
            close(dfd);
            if (is_link || e == EINVAL)
                eh_fail(err, EH_EIO, "%s: folder %s %s (refused: files in the run folder are read as they are)", path,
                        comp, is_link ? "is a symbolic link" : "leaves the folder");
            else
                eh_fail(err, EH_EIO, "%s: cannot open folder %s: %s", path, comp, strerror(e));
            return -1;
        }
        close(dfd);
        dfd = sub;
    }
    *name = comp;
    return dfd;
}

int eh_fs_open_read(const char *path, int flags, eh_error *err)
{
    /* O_NONBLOCK: a FIFO planted where a file was must not hang the open;
     * the file is refused below unless regular, so no read ever blocks */
    int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | ((flags & EH_FS_NOFOLLOW) ? O_NOFOLLOW : 0);
    int depth = (flags & EH_FS_NOFOLLOW) ? flags >> EH_FS_DEPTH_SHIFT : 0;
    int fd;
    if (depth > 1) {
        char buf[4096];
        const char *name = NULL;
        int dfd = open_parent_nofollow(path, depth, buf, sizeof buf, &name, err);
        if (dfd < 0)
            return -1;
        fd = openat(dfd, name, oflags);
        int e = errno;
        close(dfd);
        errno = e;
    } else {
        fd = open(path, oflags);
    }
    if (fd < 0) {
        if (errno == ELOOP && (flags & EH_FS_NOFOLLOW))
            eh_fail(err, EH_EIO, "%s: is a symbolic link (refused: files in the run folder are read as they are)",
                    path);
        else
            eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        eh_fail(err, EH_EIO, "%s: not a regular file", path);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

eh_status eh_fs_write_atomic(const char *path, const void *data, size_t len, eh_error *err)
{
    char tmp[4200];
    if (eh_fs_temp_name(path, tmp, sizeof tmp) != 0)
        return eh_fail(err, EH_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        return eh_fail(err, EH_EIO, "%s: cannot write: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return eh_fail(err, EH_EIO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return eh_fail(err, EH_EIO, "%s: fsync failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return eh_fail(err, EH_EIO, "%s: rename failed: %s", path, strerror(e));
    }
    fsync_dir(path);
    return EH_OK;
}

eh_status eh_fs_read(const char *path, size_t max, char **out, size_t *out_len, eh_error *err)
{
    return eh_fs_read_ex(path, max, 0, out, out_len, err);
}

eh_status eh_fs_read_ex(const char *path, size_t max, int flags, char **out, size_t *out_len, eh_error *err)
{
    int fd = eh_fs_open_read(path, flags, err);
    if (fd < 0)
        return err ? err->code : EH_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return eh_fail(err, EH_EIO, "%s: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (max && size > max) {
        close(fd);
        return eh_fail(err, EH_ELIMIT, "%s: %zu bytes exceeds the limit of %zu", path, size, max);
    }
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return eh_fail(err, EH_ENOMEM, "%s: out of memory (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return EH_OK;
}

eh_status eh_fs_cwd(char *buf, size_t n, eh_error *err)
{
    if (!getcwd(buf, n))
        return eh_fail(err, EH_EIO, "cannot tell the current folder: %s", strerror(errno));
    return EH_OK;
}

int eh_fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int eh_fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

eh_status eh_fs_remove(const char *path, eh_error *err)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return eh_fail(err, EH_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return EH_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **eh_fs_list(const char *dir, eh_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        eh_fail(err, EH_EIO, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n + 2 > cap) {
            cap *= 2;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                eh_fs_list_free((names[n] = NULL, names));
                names = NULL;
                break;
            }
            names = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    if (!names) {
        eh_fail(err, EH_ENOMEM, "%s: out of memory", dir);
        return NULL;
    }
    names[n] = NULL;
    qsort(names, n, sizeof *names, cmp_names);
    return names;
}

void eh_fs_list_free(char **names)
{
    if (!names)
        return;
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}

eh_status eh_fs_mkdir_beneath(const char *root, const char *rel, eh_error *err)
{
    char buf[4096];
    size_t len = strlen(rel);
    if (len == 0 || len >= sizeof buf || rel[0] == '/')
        return eh_fail(err, EH_EINVAL, "%s: bad folder name below %s", rel, root);
    eh_status st = eh_fs_mkdir_p(root, err);   /* root itself may be a link: the user named it */
    if (st != EH_OK)
        return st;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return eh_fail(err, EH_EIO, "%s: cannot open folder: %s", root, strerror(errno));
    memcpy(buf, rel, len + 1);
    /* One component at a time, each opened relative to its parent with
     * O_NOFOLLOW: a symlink planted below root is refused, never followed. */
    for (char *comp = buf, *next; comp; comp = next) {
        next = strchr(comp, '/');
        if (next)
            *next++ = '\0';
        if (*comp == '\0' || !strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            close(dfd);
            return eh_fail(err, EH_EINVAL, "%s/%s: '%s' leaves the folder (refused)", root, rel, comp);
        }
        if (mkdirat(dfd, comp, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            close(dfd);
            return eh_fail(err, EH_EIO, "%s/%s: cannot create folder %s: %s", root, rel, comp, strerror(e));
        }
        int sub = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            int e = errno;
            struct stat lst;
            int is_link = fstatat(dfd, comp, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
            close(dfd);
            if (is_link)
                return eh_fail(err, EH_EIO, "%s/%s: %s is a symbolic link (refused: nothing is written outside %s)",
                               root, rel, comp, root);
            return eh_fail(err, EH_EIO, "%s/%s: cannot open folder %s: %s", root, rel, comp, strerror(e));
        }
        close(dfd);
        dfd = sub;
    }
    close(dfd);
    return EH_OK;
}
