/* http.h — a small HTTP client over the libcurl multi interface for the
 * model servers: many requests at once (at most max_in_flight), retries
 * with exponential backoff and jitter on 429/5xx/timeouts/resets honouring
 * Retry-After, a cap on reply size and a circuit breaker.
 *
 *   eh_http_params p = eh_http_default_params();
 *   eh_http_client *c = eh_http_client_new(&p, &err);
 *   eh_http_perform(c, reqs, resps, n, &err);   // resps[i] answers reqs[i]
 *   ... eh_http_response_clear(&resps[i]) ...
 *   eh_http_client_free(c);
 *
 * Messages name the URL without its query string and never contain the
 * bearer token. */
#ifndef EVALHOST_HTTP_H
#define EVALHOST_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

#define EH_HTTP_DEFAULT_MAX_BODY ((size_t)64 << 20)   /* limits.max_http_body */

typedef struct eh_http_client eh_http_client;

typedef struct eh_http_params {
    double connect_timeout_s;   /* TCP (+TLS) connect, per attempt; default 10 */
    double timeout_s;           /* whole attempt, upload to last byte; default 300 */
    int retries;                /* extra attempts on 429, 5xx, timeouts, resets; default 3 */
    double backoff_s;           /* first retry delay, doubled per retry, equal jitter; default 1 */
    double backoff_max_s;       /* cap on one delay, Retry-After included; default 60 */
    int max_in_flight;          /* requests on the wire at once; default 8 */
    size_t max_body;            /* reply bytes; default 64 MiB (limits.max_http_body) */
    int breaker_after;          /* consecutive failed attempts that stop a call; 0 never; default 5 */
    double first_byte_timeout_s; /* an attempt with no reply byte by then is cut (retried); 0 off; default 120 */
    long low_speed_bytes;       /* with low_speed_s: curl's CURLOPT_LOW_SPEED_LIMIT, bytes/s; default 1 */
    double low_speed_s;         /* ... below it this long cuts the attempt (a stall too); 0 off; default 120 */
    /* Whether a 2xx body is usable (NULL: any is): 0 and why filled makes the
     * attempt a server failure (retried, counted by the breaker, EH_ENET). */
    int (*check_body)(const char *body, size_t len, const char *content_type, const char *url, char *why,
                      size_t why_len);
    int verify_tls;             /* verify the server's certificate and name; default 1 */
    const char *ca_file;        /* extra CA bundle (PEM); default NULL (the system's) */
    const char *what;           /* prefix of messages ("judge"); default "http" */
    /* Called for each retry and breaker event; may be NULL. */
    void (*log)(void *ud, const char *msg);
    void *log_ud;
} eh_http_params;

typedef struct eh_http_part {   /* one multipart/form-data field */
    const char *name;
    const void *data;
    size_t len;
    const char *filename;       /* NULL: a plain field */
    const char *content_type;   /* NULL: libcurl's default */
} eh_http_part;

typedef struct eh_http_request {
    const char *method;         /* "GET" or "POST"; NULL: POST with a body or parts, else GET */
    const char *url;
    const char *content_type;   /* of body ("application/json") */
    const void *body;           /* borrowed until eh_http_perform returns */
    size_t body_len;
    const eh_http_part *parts;  /* multipart upload instead of body */
    size_t n_parts;
    const char *bearer;         /* "Authorization: Bearer <token>" when set; never in messages */
    int any_body;               /* 1: params.check_body does not apply (control endpoints, image bytes) */
} eh_http_request;

typedef struct eh_http_response {
    int ok;                     /* 1: a 2xx reply within the limits */
    long status;                /* last HTTP status seen; 0 when none arrived */
    char *body;                 /* malloc'd, NUL-terminated, owned by the response */
    size_t len;
    char content_type[128];
    int attempts;
    double seconds;             /* first attempt to final answer, backoff included */
    eh_error err;               /* when !ok: what failed, where, after how many attempts */
} eh_http_response;

eh_http_params eh_http_default_params(void);
eh_http_client *eh_http_client_new(const eh_http_params *params, eh_error *err);
void eh_http_client_free(eh_http_client *c);   /* NULL is a no-op */

/* Runs n requests, at most max_in_flight at a time; resps[i] answers
 * reqs[i].  A failed request is resps[i].err and does not fail the call.
 * The call fails (EH_ENET) only when the breaker opens: breaker_after
 * attempts in a row failed in a way that says the server is down (network
 * errors, timeouts, 5xx, 429, 401/403/404, an over-limit or unusable body);
 * the requests not yet
 * answered then fail with "not sent".  After that, calls probe one request
 * at a time until one succeeds. */
eh_status eh_http_perform(eh_http_client *c, const eh_http_request *reqs, eh_http_response *resps, size_t n,
                          eh_error *err);
void eh_http_response_clear(eh_http_response *r);

/* The same with requests built on demand: prepare(ud, i, rq, err) fills
 * request i just before its first attempt, so building the next request
 * (encoding images) overlaps those on the wire.  A prepare failure fails
 * that request only (resps[i].err is the err it filled).  What rq points
 * to must stay valid until the call returns. */
typedef eh_status (*eh_http_prepare_fn)(void *ud, size_t i, eh_http_request *rq, eh_error *err);
eh_status eh_http_perform_lazy(eh_http_client *c, size_t n, eh_http_prepare_fn prepare, void *ud,
                               eh_http_response *resps, eh_error *err);

/* Consecutive server-down failures so far (0 after any success). */
int eh_http_consecutive_failures(const eh_http_client *c);

/* The URL without query string or credentials, for messages. */
void eh_http_safe_url(const char *url, char *buf, size_t n);

#endif
