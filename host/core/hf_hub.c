/* hf_hub.c — the local Hugging Face cache, read the way huggingface_hub
 * lays it out (models--Org--Name/{refs,snapshots}); nothing is fetched. */
#include "evalhost/hf_hub.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Hub names: "Org/Name", each part of [A-Za-z0-9._-], not "." or "..". */
static int valid_id(const char *id)
{
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/') || strlen(id) > 200)
        return 0;
    for (const char *p = id; *p; p++)
        if (p != slash && !isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    return strncmp(id, "..", 2) && strncmp(id, "./", 2) && strcmp(slash + 1, "..") && strcmp(slash + 1, ".") &&
           !strstr(id, "--");
}

static int valid_ref(const char *r)
{
    if (!*r || strlen(r) > 80 || !strcmp(r, ".") || !strcmp(r, "..") || strstr(r, ".."))
        return 0;
    for (const char *p = r; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    return 1;
}

static int is_hash(const char *s)
{
    size_t n = strlen(s);
    if (n != 40 && n != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* A local directory; its revision is the snapshot hash when it sits in a
 * cache's snapshots/, else "local". */
static eh_status resolve_path(const char *path, const char *marker, eh_hf_snapshot *out, eh_error *err)
{
    if (!is_dir(path))
        return eh_fail(err, EH_EIO, "model path %s: %s", path,
                       errno == ENOENT ? "no such directory" : "not a directory");
    if (strlen(path) >= sizeof out->dir)
        return eh_fail(err, EH_EINVAL, "model path is too long");
    snprintf(out->dir, sizeof out->dir, "%s", path);
    size_t n = strlen(out->dir);
    while (n > 1 && out->dir[n - 1] == '/')
        out->dir[--n] = 0;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/%s", out->dir, marker);
    if (!is_file(cfg))
        return eh_fail(err, EH_EIO, "model path %s has no %s (not a Hugging Face %s directory?)", path, marker,
                       strcmp(marker, "config.json") ? "pipeline" : "model");
    const char *base = strrchr(out->dir, '/');
    base = base ? base + 1 : out->dir;
    int in_snapshots = base - out->dir >= 11 && !strncmp(base - 11, "/snapshots/", 11);
    snprintf(out->revision, sizeof out->revision, "%s", in_snapshots && is_hash(base) ? base : "local");
    out->cache[0] = 0;
    return EH_OK;
}

eh_status eh_hf_resolve(const char *id, const char *path, const char *revision, eh_hf_snapshot *out, eh_error *err)
{
    return eh_hf_resolve_file(id, path, revision, "config.json", out, err);
}

eh_status eh_hf_resolve_file(const char *id, const char *path, const char *revision, const char *marker,
                             eh_hf_snapshot *out, eh_error *err)
{
    memset(out, 0, sizeof *out);
    if (path && *path)
        return resolve_path(path, marker, out, err);
    if (!id || !*id)
        return eh_fail(err, EH_EINVAL, "no model: give a Hugging Face id (Org/Name) or a path");
    if (!valid_id(id))
        return eh_fail(err, EH_EINVAL,
                       "'%s' is not a Hugging Face model id (Org/Name of letters, digits, '.', '_', '-')", id);
    const char *rev = revision && *revision ? revision : "main";
    if (!valid_ref(rev))
        return eh_fail(err, EH_EINVAL, "%s: bad revision '%s'", id, rev);

    char caches[3][4096];
    int nc = 0;
    const char *v;
    if ((v = getenv("HF_HUB_CACHE")) && *v)
        snprintf(caches[nc++], sizeof caches[0], "%s", v);
    if ((v = getenv("HF_HOME")) && *v)
        snprintf(caches[nc++], sizeof caches[0], "%s/hub", v);
    if ((v = getenv("HOME")) && *v)
        snprintf(caches[nc++], sizeof caches[0], "%s/.cache/huggingface/hub", v);

    char folder[256];
    snprintf(folder, sizeof folder, "models--%s", id);
    char *slash = strchr(folder + 8, '/');
    memmove(slash + 2, slash + 1, strlen(slash + 1) + 1);
    slash[0] = '-', slash[1] = '-';

    char tried[EH_ERROR_MAX] = "";
    size_t tl = 0;
    char why[512] = "";
    for (int i = 0; i < nc; i++) {
        char repo[4400], snap[4600];
        if (snprintf(repo, sizeof repo, "%s/%s", caches[i], folder) >= (int)sizeof repo)
            continue;
        tl += (size_t)snprintf(tried + tl, tl < sizeof tried ? sizeof tried - tl : 0, "%s%s", i ? ", " : "", repo);
        if (tl >= sizeof tried)
            tl = sizeof tried - 1;
        if (!is_dir(repo))
            continue;
        char hash[96] = "";
        if (is_hash(rev)) {
            snprintf(hash, sizeof hash, "%s", rev);
        } else {
            char ref[4500];
            snprintf(ref, sizeof ref, "%s/refs/%s", repo, rev);
            FILE *f = fopen(ref, "r");
            if (!f) {
                if (snprintf(why, sizeof why, "; %s has no refs/%s", repo, rev) < 0)
                    why[0] = 0;
                continue;
            }
            size_t got = fread(hash, 1, sizeof hash - 1, f);
            fclose(f);
            hash[got] = 0;
            while (got && isspace((unsigned char)hash[got - 1]))
                hash[--got] = 0;
            if (!is_hash(hash)) {
                if (snprintf(why, sizeof why, "; %s/refs/%s does not hold a commit hash", repo, rev) < 0)
                    why[0] = 0;
                continue;
            }
        }
        snprintf(snap, sizeof snap, "%s/snapshots/%s", repo, hash);
        char cfg[4700];
        snprintf(cfg, sizeof cfg, "%s/%s", snap, marker);
        if (!is_dir(snap)) {
            snprintf(why, sizeof why, "; snapshot %.60s... is missing (incomplete download?)", hash);
            continue;
        }
        if (!is_file(cfg)) {
            snprintf(why, sizeof why, "; snapshot %.12s has no %s (incomplete download?)", hash, marker);
            continue;
        }
        if (strlen(snap) >= sizeof out->dir)
            return eh_fail(err, EH_EINVAL, "%s: cache path is too long", id);
        snprintf(out->dir, sizeof out->dir, "%s", snap);
        snprintf(out->revision, sizeof out->revision, "%s", hash);
        if (snprintf(out->cache, sizeof out->cache, "%s", caches[i]) >= (int)sizeof out->cache)
            out->cache[0] = 0;
        return EH_OK;
    }
    return eh_fail(err, EH_EIO,
                   "model %s (revision %s) is not on this machine (nothing is downloaded); tried %s%s; fetch it with "
                   "`huggingface-cli download %s%s%s` or give path: to a local copy",
                   id, rev, nc ? tried : "no cache (HF_HUB_CACHE, HF_HOME and HOME unset)", why, id,
                   strcmp(rev, "main") ? " --revision " : "", strcmp(rev, "main") ? rev : "");
}
