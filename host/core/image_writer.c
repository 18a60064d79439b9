/* image_writer.c — one worker thread saving (or loading) images in
 * submission order.  Jobs form one FIFO list: `todo` points at the first
 * the worker has not started, `head` at the oldest not yet collected.  A
 * write keeps its image until written, a load its image until collected:
 * that is what `holding` bounds.  A written image's buffer is kept (at
 * most max of them) for the next eh_image_writer_submit_copy: copying into
 * pages already mapped costs a fraction of faulting in fresh ones. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/fs.h"
#include "evalhost/image_writer.h"

typedef struct job {
    struct job *next;
    eh_image *img;               /* a write's, owned until written */
    size_t cap;                  /* bytes img->pixels can hold */
    int load;                    /* 1: a load or decode (res.image), 0: a write */
    eh_image_limits limits;      /* a load's */
    char *src;                   /* a decode's copy of its data (NULL: load res.path) */
    size_t src_len;
    eh_image_source kind;
    int convert;                 /* a write whose image is decoded from src on the thread */
    int max_side;                /* a convert's bound on the longer side (0: as decoded) */
    int done;
    eh_image_write_result res;
} job;

struct eh_image_writer {
    pthread_mutex_t mu;
    pthread_cond_t work;         /* worker: a job arrived, or quit */
    pthread_cond_t finished;     /* callers: a job finished */
    pthread_t thread;
    job *head, *tail, *todo;
    int holding;                 /* writes not finished + loads not collected */
    int unfinished;              /* jobs queued or running */
    int writes_unfinished;       /* of which writes: each will free a place */
    int pending;                 /* jobs not yet collected */
    int max;
    int quit;
    eh_image **pool;             /* max slots: written images, pixels kept */
    size_t *pool_cap;
    int pool_n;
};

static size_t image_bytes(const eh_image *img)
{
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

/* Under the lock: keeps img's buffer for a later copy, or frees it. */
static void recycle(eh_image_writer *w, eh_image *img, size_t cap)
{
    if (!img)
        return;
    if (w->pool_n < w->max) {
        w->pool[w->pool_n] = img;
        w->pool_cap[w->pool_n++] = cap;
    } else {
        eh_image_free(img);
    }
}

/* Encode as eh_image_save does, hash the bytes, write them durably. */
static void write_one(job *j)
{
    eh_image_write_result *r = &j->res;
    eh_error e = { 0 };
    uint8_t *buf;
    size_t n;
    if (eh_image_encode_for_path(j->img, r->path, &buf, &n, &e) != EH_OK)
        goto fail;
    eh_hash_hex(buf, n, r->hash);
    eh_status st = eh_fs_write_atomic(r->path, buf, n, &e);
    free(buf);
    if (st != EH_OK)
        goto fail;
    r->status = EH_OK;
    return;
fail:
    r->status = e.code ? e.code : EH_EIO;
    r->hash[0] = '\0';
    snprintf(r->error, sizeof r->error, "%s", e.msg[0] ? e.msg : "image writer: unknown error");
}

static void load_one(job *j)
{
    eh_image_write_result *r = &j->res;
    eh_error e = { 0 };
    if (!j->src)
        r->image = eh_image_load(r->path, &j->limits, &e);
    else if (j->kind == EH_SOURCE_BASE64)
        r->image = eh_image_decode_b64(j->src, j->src_len, &j->limits, &e);
    else if (j->kind == EH_SOURCE_PATH)
        r->image = eh_image_load(j->src, &j->limits, &e);
    else
        r->image = eh_image_decode(j->src, j->src_len, &j->limits, &e);
    free(j->src);
    j->src = NULL;
    r->status = r->image ? EH_OK : (e.code ? e.code : EH_EIO);
    snprintf(r->error, sizeof r->error, "%s", r->image ? "" : e.msg);
}

/* A convert: decode src, shrink to fit max_side, then write as any write.
 * A failure to decode is the write's result, named by its source. */
static void convert_one(job *j)
{
    eh_image_write_result *r = &j->res;
    eh_error e = { 0 };
    eh_image *img;
    if (j->kind == EH_SOURCE_BASE64)
        img = eh_image_decode_b64(j->src, j->src_len, &j->limits, &e);
    else if (j->kind == EH_SOURCE_PATH)
        img = eh_image_load(j->src, &j->limits, &e);
    else
        img = eh_image_decode(j->src, j->src_len, &j->limits, &e);
    free(j->src);
    j->src = NULL;
    if (img && j->max_side > 0 && (img->width > j->max_side || img->height > j->max_side)) {
        double s = (double)j->max_side / (double)(img->width > img->height ? img->width : img->height);
        int tw = (int)(img->width * s + 0.5), th = (int)(img->height * s + 0.5);
        eh_image *t = eh_image_resize(img, tw > 0 ? tw : 1, th > 0 ? th : 1, EH_FILTER_BILINEAR, &e);
        eh_image_free(img);
        img = t;
    }
    if (!img) {
        r->status = e.code ? e.code : EH_EIO;
        /* "path: why", the path cut first if the two do not fit */
        int n = snprintf(r->error, sizeof r->error, "%s: ", r->path);
        size_t at = n < 0 ? 0 : (size_t)n < sizeof r->error ? (size_t)n : sizeof r->error - 1;
        snprintf(r->error + at, sizeof r->error - at, "%s", e.msg[0] ? e.msg : "cannot decode");
        return;
    }
    j->img = img;
    j->cap = image_bytes(img);
    write_one(j);
}

static void *worker(void *arg)
{
    eh_image_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo && !w->quit)
            pthread_cond_wait(&w->work, &w->mu);
        if (!w->todo)
            break;              /* quit, and every queued write is done */
        job *j = w->todo;
        w->todo = j->next;
        pthread_mutex_unlock(&w->mu);
        if (j->load)
            load_one(j);
        else if (j->convert)
            convert_one(j);
        else
            write_one(j);
        pthread_mutex_lock(&w->mu);
        recycle(w, j->img, j->cap);
        j->img = NULL;
        j->done = 1;
        w->unfinished--;
        if (!j->load) {
            w->writes_unfinished--;
            w->holding--;
        }
        pthread_cond_broadcast(&w->finished);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

eh_image_writer *eh_image_writer_new(int max_in_flight, eh_error *err)
{
    eh_image_writer *w = calloc(1, sizeof *w);
    if (!w) {
        eh_fail(err, EH_ENOMEM, "image writer: out of memory");
        return NULL;
    }
    w->max = max_in_flight > 0 ? max_in_flight : EH_IMAGE_WRITER_DEFAULT_IN_FLIGHT;
    w->pool = calloc((size_t)w->max, sizeof *w->pool);
    w->pool_cap = calloc((size_t)w->max, sizeof *w->pool_cap);
    if (!w->pool || !w->pool_cap) {
        free(w->pool);
        free(w->pool_cap);
        free(w);
        eh_fail(err, EH_ENOMEM, "image writer: out of memory");
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->finished, NULL);
    int rc = pthread_create(&w->thread, NULL, worker, w);
    if (rc != 0) {
        eh_fail(err, EH_ENOMEM, "image writer: cannot start its thread: %s", strerror(rc));
        pthread_cond_destroy(&w->finished);
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->mu);
        free(w->pool);
        free(w->pool_cap);
        free(w);
        return NULL;
    }
    return w;
}

/* Appends j once there is room; frees j (and its image) on failure. */
static eh_status enqueue(eh_image_writer *w, job *j, eh_error *err)
{
    eh_status st = EH_OK;
    pthread_mutex_lock(&w->mu);
    while (w->holding >= w->max && w->writes_unfinished > 0 && !w->quit)
        pthread_cond_wait(&w->finished, &w->mu);
    if (w->quit)
        st = eh_fail(err, EH_ESTATE, "image writer: closed (%s)", j->res.path);
    else if (w->holding >= w->max)
        st = eh_fail(err, EH_ESTATE, "image writer: %d loads not collected (in flight at most %d; %s)", w->holding,
                     w->max, j->res.path);
    if (st != EH_OK) {
        pthread_mutex_unlock(&w->mu);
        free(j->src);
        free(j->res.path);
        eh_image_free(j->img);
        free(j);
        return st;
    }
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    if (!w->todo)
        w->todo = j;
    w->holding++;
    w->pending++;
    w->unfinished++;
    if (!j->load)
        w->writes_unfinished++;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return EH_OK;
}

static job *new_job(const char *path, eh_image *img, eh_error *err)
{
    job *j = calloc(1, sizeof *j);
    char *p = j ? strdup(path) : NULL;
    if (!p) {
        free(j);
        eh_image_free(img);
        eh_fail(err, EH_ENOMEM, "image writer: out of memory for %s", path);
        return NULL;
    }
    j->img = img;
    j->cap = img ? image_bytes(img) : 0;
    j->res.path = p;
    return j;
}

eh_status eh_image_writer_submit(eh_image_writer *w, eh_image *img, const char *path, eh_error *err)
{
    job *j = new_job(path, img, err);
    return j ? enqueue(w, j, err) : EH_ENOMEM;
}

eh_status eh_image_writer_submit_copy(eh_image_writer *w, const eh_image *img, const char *path, eh_error *err)
{
    size_t need = image_bytes(img), cap = need;
    eh_image *c = NULL;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->pool_n; i++) {
        if (w->pool_cap[i] >= need) {
            c = w->pool[i];
            cap = w->pool_cap[i];
            w->pool[i] = w->pool[w->pool_n - 1];
            w->pool_cap[i] = w->pool_cap[--w->pool_n];
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (c) {
        c->width = img->width;
        c->height = img->height;
        c->channels = img->channels;
        memcpy(c->pixels, img->pixels, need);
    } else if (!(c = eh_image_clone(img, err))) {
        return err ? err->code : EH_ENOMEM;
    }
    job *j = new_job(path, c, err);
    if (!j)
        return EH_ENOMEM;
    j->cap = cap;
    return enqueue(w, j, err);
}

eh_status eh_image_writer_load(eh_image_writer *w, const char *path, const eh_image_limits *limits, eh_error *err)
{
    job *j = new_job(path, NULL, err);
    if (!j)
        return EH_ENOMEM;
    j->load = 1;
    j->limits = limits ? *limits : eh_image_default_limits();
    return enqueue(w, j, err);
}

/* The source copied into j (a path NUL-terminated for eh_image_load); frees j on failure. */
static eh_status copy_source(job *j, const void *data, size_t len, eh_image_source kind, eh_error *err)
{
    j->src = malloc(len + 1);
    if (!j->src) {
        eh_status st = eh_fail(err, EH_ENOMEM, "image writer: out of memory for %s (%zu bytes)", j->res.path, len);
        free(j->res.path);
        free(j);
        return st;
    }
    memcpy(j->src, data, len);
    j->src[len] = '\0';
    j->src_len = len;
    j->kind = kind;
    return EH_OK;
}

eh_status eh_image_writer_convert(eh_image_writer *w, const char *path, const void *data, size_t len,
                                  eh_image_source kind, const eh_image_limits *limits, int max_side, eh_error *err)
{
    job *j = new_job(path, NULL, err);
    if (!j)
        return EH_ENOMEM;
    eh_status st = copy_source(j, data, len, kind, err);
    if (st != EH_OK)
        return st;
    j->convert = 1;
    j->max_side = max_side > 0 ? max_side : 0;
    j->limits = limits ? *limits : eh_image_default_limits();
    return enqueue(w, j, err);
}

eh_status eh_image_writer_decode(eh_image_writer *w, const char *key, const void *data, size_t len,
                                 eh_image_source kind, const eh_image_limits *limits, eh_error *err)
{
    job *j = new_job(key, NULL, err);
    if (!j)
        return EH_ENOMEM;
    eh_status st = copy_source(j, data, len, kind, err);
    if (st != EH_OK)
        return st;
    j->load = 1;
    j->limits = limits ? *limits : eh_image_default_limits();
    return enqueue(w, j, err);
}

int eh_image_writer_collect(eh_image_writer *w, int wait, eh_image_write_result *out)
{
    pthread_mutex_lock(&w->mu);
    while (wait && w->head && !w->head->done)
        pthread_cond_wait(&w->finished, &w->mu);
    job *j = w->head;
    if (!j || !j->done) {
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    w->pending--;
    if (j->load)
        w->holding--;
    pthread_cond_broadcast(&w->finished);
    pthread_mutex_unlock(&w->mu);
    *out = j->res;
    free(j);
    return 1;
}

void eh_image_writer_wait_oldest(eh_image_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->head && !w->head->done)
        pthread_cond_wait(&w->finished, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

int eh_image_writer_pending(eh_image_writer *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->pending;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void eh_image_writer_flush(eh_image_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->unfinished > 0)
        pthread_cond_wait(&w->finished, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void eh_image_writer_free(eh_image_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->finished);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (job *j = w->head; j;) {
        job *next = j->next;
        eh_image_free(j->img);
        eh_image_free(j->res.image);
        free(j->res.path);
        free(j);
        j = next;
    }
    for (int i = 0; i < w->pool_n; i++)
        eh_image_free(w->pool[i]);
    free(w->pool);
    free(w->pool_cap);
    pthread_cond_destroy(&w->finished);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
