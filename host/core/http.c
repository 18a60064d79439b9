/* http.c — the HTTP client behind the http backend: one libcurl multi
 * handle per client (so connections are reused across calls), a slot per
 * request with its own retry clock, and a breaker counting server-down
 * failures across calls. */
#include "evalhost/http.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evalhost/host.h"
#include "evalhost/utf8_text.h"

#define BODY_EXCERPT_CHARS 200   /* of a failed reply, quoted in the error */

struct eh_http_client {
    eh_http_params p;
    char *ca_file;              /* owned copy of p.ca_file */
    char what[32];
    CURLM *multi;
    uint64_t rng;               /* splitmix64 state for backoff jitter */
    int consecutive_failures;   /* server-down failures in a row, across calls */
};

typedef enum slot_state { SLOT_PENDING, SLOT_WAITING, SLOT_RUNNING, SLOT_DONE } slot_state;

typedef struct slot {
    slot_state state;
    double not_before;          /* SLOT_WAITING: eh_clock() when the next attempt may start */
    double t_first;
    CURL *easy;
    curl_mime *mime;
    struct curl_slist *headers;
    char *buf;                  /* reply body being received; moves into the response */
    size_t len, cap, max;
    int too_large;
    int replied;                /* a response header arrived in this attempt */
    int no_first_byte;          /* this attempt was cut by first_byte_timeout_s */
    double t_attempt;           /* eh_clock() when this attempt started */
    double first_byte_timeout_s;
    char errbuf[CURL_ERROR_SIZE];   /* libcurl's detailed message for the attempt */
    char url[512];              /* safe form, for messages */
    eh_http_request rq;         /* from prepare, just before the first attempt */
} slot;

eh_http_params eh_http_default_params(void)
{
    eh_http_params p = {
        .connect_timeout_s = 10,
        .timeout_s = 300,
        .retries = 3,
        .backoff_s = 1,
        .backoff_max_s = 60,
        .max_in_flight = 8,
        .max_body = EH_HTTP_DEFAULT_MAX_BODY,
        .breaker_after = 5,
        .first_byte_timeout_s = 120,
        .low_speed_bytes = 1,
        .low_speed_s = 120,
        .verify_tls = 1,
        .ca_file = NULL,
        .what = "http",
        .log = NULL,
        .log_ud = NULL,
    };
    return p;
}

/* a line for the client's log callback */
#define say(c, ...) eh_message((c)->p.log, (c)->p.log_ud, __VA_ARGS__)

void eh_http_safe_url(const char *url, char *buf, size_t n)
{
    if (!n)
        return;
    const char *u = url ? url : "";
    const char *scheme = strstr(u, "://");
    if (scheme && strcspn(u, "/?#@") < (size_t)(scheme - u))
        scheme = NULL;   /* a "://" inside a path or query is not the scheme's (found by fuzz_http_url) */
    const char *host = scheme ? scheme + 3 : u;
    const char *at = NULL;
    for (const char *q = host; *q && *q != '/' && *q != '?' && *q != '#'; q++)
        if (*q == '@')
            at = q;   /* user:password@ — dropped */
    size_t o = 0;
    if (scheme) {
        size_t k = (size_t)(host - u);
        k = k < n - 1 ? k : n - 1;
        memcpy(buf, u, k);
        o = k;
    }
    for (const char *q = at ? at + 1 : host; *q && *q != '?' && *q != '#' && o + 1 < n; q++)
        buf[o++] = *q;
    buf[o] = '\0';
}

static uint64_t next_random(eh_http_client *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

eh_http_client *eh_http_client_new(const eh_http_params *params, eh_error *err)
{
    eh_http_params p = params ? *params : eh_http_default_params();
    if (p.max_in_flight < 1 || p.retries < 0 || p.timeout_s <= 0 || p.connect_timeout_s <= 0 || p.backoff_s < 0) {
        eh_fail(err, EH_EINVAL, "%s: bad HTTP parameters (max_in_flight %d, retries %d, timeout %g s)",
                p.what ? p.what : "http", p.max_in_flight, p.retries, p.timeout_s);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        eh_fail(err, EH_ENET, "%s: libcurl failed to initialise", p.what ? p.what : "http");
        return NULL;
    }
    eh_http_client *c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        eh_fail(err, EH_ENOMEM, "http: out of memory");
        return NULL;
    }
    c->p = p;
    snprintf(c->what, sizeof c->what, "%s", p.what ? p.what : "http");
    c->p.what = c->what;
    c->ca_file = p.ca_file ? strdup(p.ca_file) : NULL;
    c->p.ca_file = c->ca_file;
    c->multi = curl_multi_init();
    /* Jitter only has to differ between processes hitting one server. */
    c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (!c->multi || (p.ca_file && !c->ca_file)) {
        eh_http_client_free(c);
        eh_fail(err, EH_ENOMEM, "%s: out of memory", p.what ? p.what : "http");
        return NULL;
    }
    return c;
}

void eh_http_client_free(eh_http_client *c)
{
    if (!c)
        return;
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->ca_file);
    free(c);
    curl_global_cleanup();
}

int eh_http_consecutive_failures(const eh_http_client *c)
{
    return c->consecutive_failures;
}

void eh_http_response_clear(eh_http_response *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    slot *s = ud;
    size_t n = size * nmemb;
    if (n > s->max - s->len) {
        s->too_large = 1;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data;
    ((slot *)ud)->replied = 1;
    return size * nmemb;
}

/* Cuts an attempt whose server sent nothing within first_byte_timeout_s. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal, (void)ulnow;
    slot *s = ud;
    if (s->replied || dlnow > 0 || s->first_byte_timeout_s <= 0)
        return 0;
    if (eh_clock() - s->t_attempt > s->first_byte_timeout_s) {
        s->no_first_byte = 1;
        return 1;   /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

static void slot_release(eh_http_client *c, slot *s)
{
    if (s->easy) {
        curl_multi_remove_handle(c->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_mime_free(s->mime);
    s->mime = NULL;
    for (struct curl_slist *l = s->headers; l; l = l->next)
        if (!strncmp(l->data, "Authorization:", 14))
            memset(l->data, 0, strlen(l->data));   /* no token left behind in freed memory */
    curl_slist_free_all(s->headers);
    s->headers = NULL;
}

static int add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *l = curl_slist_append(*list, h);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* Starts one attempt; on failure the response is final. */
static eh_status slot_start(eh_http_client *c, slot *s, const eh_http_request *rq, eh_http_response *rs, eh_error *err)
{
    s->len = 0;
    s->too_large = 0;
    s->replied = 0;
    s->no_first_byte = 0;
    s->t_attempt = eh_clock();
    s->first_byte_timeout_s = c->p.first_byte_timeout_s;
    s->errbuf[0] = '\0';
    if (s->buf)
        s->buf[0] = '\0';
    s->max = c->p.max_body;
    s->easy = curl_easy_init();
    if (!s->easy)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory (curl handle)", c->what);
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, rq->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->p.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->p.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)s);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)s);
    if (c->p.low_speed_s > 0 && c->p.low_speed_bytes > 0) {
        /* a trickle (or a stall) below low_speed_bytes/s for low_speed_s ends the attempt */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)c->p.low_speed_bytes);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(c->p.low_speed_s < 1 ? 1 : c->p.low_speed_s));
    }
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->p.max_body);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->p.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->p.verify_tls ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->p.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->p.ca_file);
    /* Big JSON bodies: no "Expect: 100-continue" round trip. */
    if (add_header(&s->headers, "Expect:") != 0)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);
    if (rq->bearer && *rq->bearer) {
        size_t n = strlen(rq->bearer) + 32;
        char *h = malloc(n);
        if (!h)
            return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);
        snprintf(h, n, "Authorization: Bearer %s", rq->bearer);
        int rc = add_header(&s->headers, h);
        memset(h, 0, n);   /* the token lives only in curl's header list */
        free(h);
        if (rc != 0)
            return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);
    }
    if (rq->parts && rq->n_parts) {
        s->mime = curl_mime_init(e);
        if (!s->mime)
            return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);
        for (size_t i = 0; i < rq->n_parts; i++) {
            const eh_http_part *pt = &rq->parts[i];
            curl_mimepart *mp = curl_mime_addpart(s->mime);
            if (!mp || curl_mime_name(mp, pt->name) != CURLE_OK || curl_mime_data(mp, pt->data, pt->len) != CURLE_OK ||
                (pt->filename && curl_mime_filename(mp, pt->filename) != CURLE_OK) ||
                (pt->content_type && curl_mime_type(mp, pt->content_type) != CURLE_OK))
                return eh_fail(err, EH_ENOMEM, "%s: out of memory (multipart)", c->what);
        }
        curl_easy_setopt(e, CURLOPT_MIMEPOST, s->mime);
    } else if (rq->body || (rq->method && !strcmp(rq->method, "POST"))) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s", rq->content_type ? rq->content_type : "application/json");
        if (add_header(&s->headers, ct) != 0)
            return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        return eh_fail(err, EH_ENET, "%s: cannot start a request to %s", c->what, s->url);
    rs->attempts++;
    s->state = SLOT_RUNNING;
    return EH_OK;
}

static int retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return 1;
    default: return 0;
    }
}

/* Statuses that say the server (or our access to it) is unusable, not
 * that this one request was bad: they count towards the breaker. */
static int server_down_status(long status)
{
    return status == 429 || status >= 500 || status == 401 || status == 403 || status == 404;
}

static double backoff_delay(eh_http_client *c, int attempt, double retry_after)
{
    double d = c->p.backoff_s * pow(2.0, attempt - 1);
    if (d > c->p.backoff_max_s)
        d = c->p.backoff_max_s;
    /* Equal jitter: half fixed, half uniform, so clients spread out but never hammer. */
    double u = (double)(next_random(c) >> 11) / 9007199254740992.0;
    d = d * 0.5 + d * 0.5 * u;
    if (retry_after > d)
        d = retry_after < c->p.backoff_max_s ? retry_after : c->p.backoff_max_s;
    return d;
}

/* A finished attempt: success, a retry scheduled, or a final failure.
 * Returns 1 when the request failed for good in a server-down way. */
static int slot_finish(eh_http_client *c, slot *s, CURLcode rc, eh_http_response *rs)
{
    long status = 0;
    char *ct = NULL;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after);
    rs->status = status;
    snprintf(rs->content_type, sizeof rs->content_type, "%s", ct ? ct : "");
    slot_release(c, s);
    double now = eh_clock();

    char bad[600] = "";
    /* a 2xx whose body the caller cannot use (malformed JSON) is the server's
     * failure like a 5xx: retried, counted, never the pair's final record */
    if (rc == CURLE_OK && status >= 200 && status < 300 && !s->too_large && c->p.check_body && !s->rq.any_body &&
        !c->p.check_body(s->buf ? s->buf : "", s->len, rs->content_type, s->url, bad, sizeof bad))
        status = -1;
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        rs->ok = 1;
        rs->body = s->buf ? s->buf : calloc(1, 1);
        rs->len = s->len;
        s->buf = NULL;
        s->cap = s->len = 0;
        rs->seconds = now - s->t_first;
        s->state = SLOT_DONE;
        c->consecutive_failures = 0;
        return 0;
    }
    if (s->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        /* the server's fault, not the pair's: EH_ENET (resume retries it),
         * and it counts towards the breaker; never retried at once */
        eh_fail(&rs->err, EH_ENET, "%s: reply from %s is over limits.max_http_body (%zu bytes)", c->what, s->url,
                c->p.max_body);
        rs->seconds = now - s->t_first;
        s->state = SLOT_DONE;
        c->consecutive_failures++;
        return 1;
    }
    if (s->no_first_byte)
        rc = CURLE_OPERATION_TIMEDOUT;
    int transient = rc == CURLE_OK ? (status == 429 || status >= 500 || status == -1) : retryable_curl(rc);
    /* every failed attempt that says the server is down counts, not each
     * request after all its retries: a silent server trips the breaker after
     * breaker_after timeouts, not breaker_after x (retries + 1) */
    int down = rc != CURLE_OK || server_down_status(status) || status == -1;
    if (down)
        c->consecutive_failures++;
    char why[640];
    if (s->no_first_byte) {
        snprintf(why, sizeof why, "no reply within first_byte_timeout_s (%g s)", c->p.first_byte_timeout_s);
    } else if (status == -1) {
        snprintf(why, sizeof why, "%s", bad);
    } else if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    } else {
        char ex[300];
        eh_score_excerpt(s->buf ? s->buf : "", BODY_EXCERPT_CHARS, ex, sizeof ex);
        snprintf(why, sizeof why, "HTTP %ld%s%s", status, *ex ? ": " : "", ex);
    }
    int tripped = c->p.breaker_after > 0 && c->consecutive_failures >= c->p.breaker_after;
    if (transient && rs->attempts <= c->p.retries && !tripped) {
        double d = backoff_delay(c, rs->attempts, (double)retry_after);
        say(c, "%s: %s from %s; retry %d of %d in %.2f s%s", c->what, why, s->url, rs->attempts, c->p.retries, d,
            retry_after > 0 ? " (Retry-After)" : "");
        s->state = SLOT_WAITING;
        s->not_before = now + d;
        return 0;
    }
    if (status == -1)   /* the body's own message names the URL */
        eh_fail(&rs->err, EH_ENET, "%s: %s (after %d attempt%s)", c->what, why, rs->attempts,
                rs->attempts == 1 ? "" : "s");
    else
        eh_fail(&rs->err, EH_ENET, "%s: %s from %s (after %d attempt%s)", c->what, why, s->url, rs->attempts,
                rs->attempts == 1 ? "" : "s");
    rs->seconds = now - s->t_first;
    s->state = SLOT_DONE;
    if (!down)
        c->consecutive_failures = 0;
    return down;
}

static eh_status copy_request(void *ud, size_t i, eh_http_request *rq, eh_error *err)
{
    (void)err;
    *rq = ((const eh_http_request *)ud)[i];
    return EH_OK;
}

eh_status eh_http_perform(eh_http_client *c, const eh_http_request *reqs, eh_http_response *resps, size_t n,
                          eh_error *err)
{
    return eh_http_perform_lazy(c, n, copy_request, (void *)reqs, resps, err);
}

eh_status eh_http_perform_lazy(eh_http_client *c, size_t n, eh_http_prepare_fn prepare, void *ud,
                               eh_http_response *resps, eh_error *err)
{
    for (size_t i = 0; i < n; i++)
        memset(&resps[i], 0, sizeof resps[i]);
    if (n == 0)
        return EH_OK;
    slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", c->what);

    size_t done = 0, next = 0;   /* next: the lowest slot that may still be pending */
    int running = 0;
    eh_status status = EH_OK;
    while (done < n) {
        /* An open breaker lets one probe through at a time until one succeeds. */
        int probing = c->p.breaker_after > 0 && c->consecutive_failures >= c->p.breaker_after;
        int busy = running;
        for (size_t i = next; probing && i < n; i++)
            busy += slots[i].state == SLOT_WAITING;   /* a probe backing off still holds the one place */
        int limit = probing ? 1 : c->p.max_in_flight;
        double now = eh_clock(), wake = now + 1.0;
        for (size_t i = next; i < n && busy < limit; i++) {
            slot *s = &slots[i];
            if (s->state == SLOT_PENDING || (s->state == SLOT_WAITING && s->not_before <= now)) {
                if (s->state == SLOT_PENDING) {
                    s->t_first = now;
                    if (prepare(ud, i, &s->rq, &resps[i].err) != EH_OK) {
                        if (resps[i].err.code == EH_OK)
                            eh_fail(&resps[i].err, EH_EINVAL, "%s: request %zu could not be built", c->what, i);
                        s->state = SLOT_DONE;
                        done++;
                        continue;
                    }
                    eh_http_safe_url(s->rq.url, s->url, sizeof s->url);
                }
                eh_error serr = { 0 };
                if (slot_start(c, s, &s->rq, &resps[i], &serr) != EH_OK) {
                    slot_release(c, s);
                    resps[i].err = serr;
                    s->state = SLOT_DONE;
                    done++;
                    continue;
                }
                running++;
                busy++;
                /* Put it on the wire now, so the next prepare overlaps this request. */
                int still = 0;
                curl_multi_perform(c->multi, &still);
            }
        }
        for (size_t i = next; i < n; i++)
            if (slots[i].state == SLOT_WAITING && slots[i].not_before < wake)
                wake = slots[i].not_before;
        while (next < n && slots[next].state == SLOT_DONE)
            next++;
        if (done >= n)
            break;

        int still = 0;
        curl_multi_perform(c->multi, &still);
        CURLMsg *msg;
        int left;
        int tripped = 0, finished = 0;
        while ((msg = curl_multi_info_read(c->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            finished++;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            slot *s = (slot *)(void *)priv;
            CURLcode rc = msg->data.result;
            size_t i = (size_t)(s - slots);
            running--;
            slot_finish(c, s, rc, &resps[i]);
            if (s->state == SLOT_DONE)
                done++;
            if (c->p.breaker_after > 0 && c->consecutive_failures >= c->p.breaker_after && !resps[i].ok &&
                s->state == SLOT_DONE) {
                tripped = 1;
                eh_fail(err, EH_ENET,
                        "%s: the server looks down: %d attempts in a row failed (last: %s); stopping so the run "
                        "can be resumed once it is back",
                        c->what, c->consecutive_failures, resps[i].err.msg);
                break;
            }
        }
        if (tripped) {
            say(c, "%s", err ? err->msg : "breaker open");
            for (size_t i = 0; i < n; i++) {
                if (slots[i].state == SLOT_DONE)
                    continue;
                slot_release(c, &slots[i]);
                eh_fail(&resps[i].err, EH_ENET, "%s: not sent%s%s: the server looks down", c->what,
                        slots[i].url[0] ? " to " : "", slots[i].url);
                slots[i].state = SLOT_DONE;
            }
            status = EH_ENET;
            break;
        }
        if (done >= n)
            break;
        if (finished)
            continue;   /* a place came free or a retry is scheduled: start work before waiting */
        double ms = (wake - eh_clock()) * 1000.0;
        int timeout_ms = ms < 1 ? 1 : ms > 1000 ? 1000 : (int)ms;
        if (running > 0)
            curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
        else {
            struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    for (size_t i = 0; i < n; i++) {
        slot_release(c, &slots[i]);
        free(slots[i].buf);
    }
    free(slots);
    return status;
}
