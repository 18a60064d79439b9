/* error.h — one error type for every module: a code plus a message the
 * caller can show.  Functions that can fail take `eh_error *err` (may be
 * NULL) and return a code or NULL; the message names what and why. */
#ifndef EVALHOST_ERROR_H
#define EVALHOST_ERROR_H

#include <stdarg.h>

#define EH_ERROR_MAX 512

typedef enum eh_status {
    EH_OK = 0,
    EH_EINVAL,   /* bad argument or bad data (not an image, bad base64, ...) */
    EH_ENOMEM,   /* allocation failed */
    EH_EIO,      /* the file system said no (missing file, disk full, ...) */
    EH_ELIMIT,   /* a configured limit was exceeded (message names the key) */
    EH_EFORMAT,  /* unsupported format or component */
    EH_ESTATE,   /* operation not valid in the current state */
    EH_EMODEL,   /* a model call failed */
    EH_ENET,     /* network failure after retries */
} eh_status;

typedef struct eh_error {
    eh_status code;
    char msg[EH_ERROR_MAX];
} eh_error;

/* Sets err (if not NULL) and returns code, so callers can `return eh_fail(...)`. */
eh_status eh_fail(eh_error *err, eh_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
eh_status eh_vfail(eh_error *err, eh_status code, const char *fmt, va_list ap);
void eh_error_clear(eh_error *err);
const char *eh_status_name(eh_status code);   /* "i/o error": for messages */
const char *eh_status_code(eh_status code);   /* "EIO": what a script tests (the Lua API's third value) */

/* A warning or log line handed to a module's callback: formats at most
 * EH_ERROR_MAX bytes and calls fn(ud, msg); nothing when fn is NULL. */
typedef void (*eh_message_fn)(void *ud, const char *msg);
void eh_message(eh_message_fn fn, void *ud, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
