/* image_writer.h — saving (and loading) images off the caller's thread.  One worker
 * thread encodes (format from the extension, as eh_image_save), hashes the
 * encoded bytes (XXH3-128, as eh_hash_file would) and writes each image
 * atomically (temp, fsync, rename, fsync the folder); the caller goes on
 * meanwhile and later collects one result per image, in submission order.
 * A result exists only once its file is durable, so a caller that journals
 * an image only from its result keeps "journal after fsync + rename".
 * At most `max_in_flight` images are held (submit waits for room), so
 * memory stays flat however far the caller runs ahead.  Loads go through
 * the same queue (a scorer reads the next images while a model runs); a
 * loaded image counts against max_in_flight until collected. */
#ifndef EVALHOST_IMAGE_WRITER_H
#define EVALHOST_IMAGE_WRITER_H

#include "evalhost/error.h"
#include "evalhost/hash.h"
#include "evalhost/image.h"

typedef struct eh_image_writer eh_image_writer;

typedef struct eh_image_write_result {
    char *path;                 /* malloc'd; the caller frees it */
    eh_status status;           /* EH_OK: written and durable */
    char hash[EH_HASH_HEX];     /* of the file's bytes when status is EH_OK */
    char error[EH_ERROR_MAX];   /* "path: why" otherwise */
    eh_image *image;            /* a load's image, now the caller's; NULL for a write */
} eh_image_write_result;

#define EH_IMAGE_WRITER_DEFAULT_IN_FLIGHT 4

/* max_in_flight <= 0: the default (4). NULL and err on failure. */
eh_image_writer *eh_image_writer_new(int max_in_flight, eh_error *err);

/* Queues img for saving at path and takes ownership of img, whatever the
 * outcome.  Waits while max_in_flight images are queued or being written.
 * EH_ESTATE after eh_image_writer_free began, EH_ENOMEM when the job
 * cannot be made (img is freed). */
eh_status eh_image_writer_submit(eh_image_writer *w, eh_image *img, const char *path, eh_error *err);

/* As submit, with a copy of img (the caller keeps img): the copy goes into
 * the buffer of an image already written when one is large enough. */
eh_status eh_image_writer_submit_copy(eh_image_writer *w, const eh_image *img, const char *path, eh_error *err);

/* Queues a load of path (as eh_image_load with limits; NULL: defaults);
 * its result carries the image.  Waits as submit does; EH_ESTATE instead
 * when only uncollected loads fill the queue (waiting would never end). */
eh_status eh_image_writer_load(eh_image_writer *w, const char *path, const eh_image_limits *limits, eh_error *err);

/* How eh_image_writer_decode reads its data. */
typedef enum eh_image_source { EH_SOURCE_BYTES, EH_SOURCE_BASE64, EH_SOURCE_PATH } eh_image_source;

/* Queues a decode of an image held by the caller (the bytes of a file,
 * base64 text as a benchmark's JSON carries it, or a path), copied now;
 * its result carries the image under the name key, as a load's does.  For
 * decoding a pair's original off the Lua thread while a model runs.
 * Waits and fails as eh_image_writer_load. */
eh_status eh_image_writer_decode(eh_image_writer *w, const char *key, const void *data, size_t len,
                                 eh_image_source kind, const eh_image_limits *limits, eh_error *err);

/* Queues a write of an image decoded (as eh_image_writer_decode reads data)
 * on the writer's thread and, when max_side > 0, shrunk to fit max_side px
 * on its longer side (never enlarged), saved at path as a write is: for
 * the report's thumbnails and originals, made without holding the caller.
 * Its result is a write's; a source that does not decode is its error.
 * Waits and fails as eh_image_writer_submit. */
eh_status eh_image_writer_convert(eh_image_writer *w, const char *path, const void *data, size_t len,
                                  eh_image_source kind, const eh_image_limits *limits, int max_side, eh_error *err);

/* The oldest finished result not yet collected: 1 and *out filled, or 0
 * when none has finished (wait = 0) or nothing is outstanding (wait != 0:
 * waits for the oldest submitted write otherwise). */
int eh_image_writer_collect(eh_image_writer *w, int wait, eh_image_write_result *out);

/* Waits until the oldest job not yet collected has finished (returns at
 * once when there is none): a caller that needs one result waits for no
 * more than the jobs queued before it. */
void eh_image_writer_wait_oldest(eh_image_writer *w);

/* Jobs submitted and not yet collected. */
int eh_image_writer_pending(eh_image_writer *w);

/* Waits until every submitted job finished (results stay collectable). */
void eh_image_writer_flush(eh_image_writer *w);

/* Finishes the queued jobs, joins the worker, drops uncollected results
 * (and their images).
 * NULL is a no-op. */
void eh_image_writer_free(eh_image_writer *w);

#endif
