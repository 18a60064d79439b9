/* backend_http.c — models behind an OpenAI-compatible server (vLLM, SGLang,
 * llama.cpp, hosted APIs): the judge over /v1/chat/completions, the editor
 * over /v1/images/edits (one picture as `image`, several as `image[]`
 * parts), residency mapped to vLLM's /sleep and /wake_up.
 *
 * Spec keys (section or params:): base_url (required), model/name,
 * api_key_env, max_in_flight (8; also batch_size's default), retries (3),
 * timeout_s (300), connect_timeout_s (10), backoff_s (1), backoff_max_s
 * (60), breaker_after (5), verify_tls (true), ca_file, max_tokens (512),
 * seed (0), logprobs (true), top_logprobs (20), image_format (jpeg|png; jpeg because
 * encoding PNG costs ~25x more host time per request and then bounds
 * throughput), jpeg_quality (95), extra_body (map merged into each request body),
 * sleep_mode (false), sleep_level (1), sleep_path ("/sleep?level=<sleep_level>",
 * vLLM), wake_path ("/wake_up"; SGLang: /release_memory_occupation and
 * /resume_memory_occupation), allow_url_fetch (false),
 * footprint_mb (0; what the server holds on the GPU, for the schedule),
 * score_range ([lo, hi], default [0, 10]: the logprobs' range).
 *
 * The judge's request is the request's messages, as lua/evalhost/chat.lua
 * built them (the same list the native judge renders): sent in order, each
 * picture an image_url part with a data URL (alpha composited onto white,
 * then image_format), a message of one text part as a string. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalhost/backend.h"
#include "evalhost/base64.h"
#include "evalhost/http.h"
#include "evalhost/image_rgb.h"
#include "evalhost/score_logprobs.h"
#include "evalhost/score_tree.h"
#include "evalhost/score_parse.h"

#define DEFAULT_MAX_TOKENS 512
#define DEFAULT_TOP_LOGPROBS 20
/* limits.max_reply_chars: the characters of a judge's reply kept (journal,
 * report); a reply is parsed whole, only what is kept is cut */
#define DEFAULT_MAX_REPLY_CHARS 65536

typedef struct http_model {
    eh_http_client *client;
    char *api_base;           /* ".../v1" */
    char *root;               /* base without "/v1", for /sleep and /wake_up */
    char *api_key;            /* from the environment; owned, wiped on close */
    int64_t max_tokens, seed;
    int logprobs, top_logprobs;
    int score_lo, score_hi;   /* score_range */
    int warned_no_logprobs;   /* said once per run */
    int jpeg;                 /* send images as JPEG instead of PNG */
    int jpeg_quality;
    int sleep_mode;
    char sleep_path[256], wake_path[256];   /* POSTed under root by unload/load */
    int allow_url_fetch;
    int64_t footprint;
    size_t max_reply_chars;   /* limits.max_reply_chars */
    eh_image_limits limits;   /* for the editor's reply images */
} http_model;

static int is_json_type(const char *ct);

/* eh_http_params.check_body: a reply that is not a JSON object is the
 * server's failure (a proxy's error page, a torn body), retried like a 5xx. */
static int json_body_ok(const char *body, size_t len, const char *ct, const char *url, char *why, size_t n)
{
    char ex[300];
    eh_score_excerpt(body, EH_SCORE_EXCERPT_CHARS, ex, sizeof ex);
    if (!is_json_type(ct)) {
        snprintf(why, n, "reply from %s has content type '%s', not JSON: \"%s\"", url, ct && *ct ? ct : "(none)", ex);
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok)
        snprintf(why, n, "malformed JSON reply from %s: \"%s\"", url, ex);
    return ok;
}

static void http_log(void *ud, const char *msg)
{
    eh_model *m = ud;
    eh_log(m->host, EH_LOG_WARN, "%s", msg);
}

static char *str_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* "http://h:8000", "http://h:8000/", "http://h:8000/v1" → api base and root. */
static eh_status split_base_url(http_model *h, const char *base, const char *section, eh_error *err)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    char *b = malloc(n + 1);
    if (!b)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", section);
    memcpy(b, base, n);
    b[n] = '\0';
    if (n >= 3 && !strcmp(b + n - 3, "/v1")) {
        h->api_base = b;
        h->root = malloc(n - 2);
        if (h->root) {
            memcpy(h->root, b, n - 3);
            h->root[n - 3] = '\0';
        }
    } else {
        h->root = b;
        h->api_base = str_concat(b, "/v1");
    }
    if (!h->api_base || !h->root)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", section);
    return EH_OK;
}

static eh_status http_open(eh_model *m, eh_error *err)
{
    http_model *h = calloc(1, sizeof *h);
    if (!h)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    m->impl = h;
    const eh_node *s = m->spec;
    const char *base = eh_node_str(s, "base_url", NULL);
    if (!base || !*base)
        return eh_fail(err, EH_EINVAL, "%s: backend http needs base_url (e.g. http://127.0.0.1:8000)", m->section);
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return eh_fail(err, EH_EINVAL, "%s: base_url must start with http:// or https://", m->section);
    if (!m->name[0])
        return eh_fail(err, EH_EINVAL, "%s: backend http needs model: (the name the server serves)", m->section);
    if (split_base_url(h, base, m->section, err) != EH_OK)
        return err ? err->code : EH_ENOMEM;

    const char *key_env = eh_node_str(s, "api_key_env", NULL);
    if (key_env) {
        const char *key = getenv(key_env);
        if (!key || !*key)
            return eh_fail(err, EH_EINVAL, "%s: api_key_env names %s, which is not set in the environment", m->section,
                           key_env);
        h->api_key = strdup(key);
        if (!h->api_key)
            return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    }

    eh_http_params p = eh_http_default_params();
    p.max_in_flight = (int)eh_node_int(s, "max_in_flight", p.max_in_flight);
    p.retries = (int)eh_node_int(s, "retries", p.retries);
    p.timeout_s = eh_node_num(s, "timeout_s", p.timeout_s);
    p.connect_timeout_s = eh_node_num(s, "connect_timeout_s", p.connect_timeout_s);
    p.backoff_s = eh_node_num(s, "backoff_s", p.backoff_s);
    p.backoff_max_s = eh_node_num(s, "backoff_max_s", p.backoff_max_s);
    p.breaker_after = (int)eh_node_int(s, "breaker_after", p.breaker_after);
    p.first_byte_timeout_s = eh_node_num(s, "first_byte_timeout_s", p.first_byte_timeout_s);
    p.low_speed_bytes = (long)eh_node_int(s, "low_speed_bytes", p.low_speed_bytes);
    p.low_speed_s = eh_node_num(s, "low_speed_s", p.low_speed_s);
    if (p.first_byte_timeout_s < 0 || p.low_speed_bytes < 0 || p.low_speed_s < 0)
        return eh_fail(err, EH_EINVAL, "%s: first_byte_timeout_s, low_speed_bytes and low_speed_s must be >= 0",
                       m->section);
    p.check_body = json_body_ok;
    p.verify_tls = eh_node_bool(s, "verify_tls", 1);
    p.ca_file = eh_node_str(s, "ca_file", NULL);
    const eh_node *limits = m->host && m->host->config ? eh_node_get(m->host->config, "limits") : NULL;
    double max_body = eh_node_num(limits, "max_http_body", (double)p.max_body);
    if (max_body < 1)
        return eh_fail(err, EH_EINVAL, "%s: limits.max_http_body must be positive", m->section);
    p.max_body = (size_t)max_body;
    double max_reply = eh_node_num(limits, "max_reply_chars", DEFAULT_MAX_REPLY_CHARS);
    if (max_reply < 1)
        return eh_fail(err, EH_EINVAL, "%s: limits.max_reply_chars must be positive", m->section);
    h->max_reply_chars = (size_t)max_reply;
    p.what = m->section;
    p.log = http_log;
    p.log_ud = m;
    if (p.max_in_flight < 1 || p.max_in_flight > 1024)
        return eh_fail(err, EH_EINVAL, "%s: max_in_flight must be 1..1024, got %d", m->section, p.max_in_flight);
    h->client = eh_http_client_new(&p, err);
    if (!h->client)
        return err ? err->code : EH_ENET;

    h->max_tokens = eh_node_int(s, "max_tokens", DEFAULT_MAX_TOKENS);
    h->seed = eh_node_int(s, "seed", 0);
    h->logprobs = eh_node_bool(s, "logprobs", 1);
    h->top_logprobs = (int)eh_node_int(s, "top_logprobs", DEFAULT_TOP_LOGPROBS);
    eh_error rerr = { 0 };
    if (eh_score_range_of(s, &h->score_lo, &h->score_hi, &rerr) != EH_OK)
        return eh_fail(err, EH_EINVAL, "%s: %s", m->section, rerr.msg);
    const char *fmt = eh_node_str(s, "image_format", "jpeg");
    if (strcmp(fmt, "png") != 0 && strcmp(fmt, "jpeg") != 0 && strcmp(fmt, "jpg") != 0)
        return eh_fail(err, EH_EINVAL, "%s: image_format must be png or jpeg, got '%s'", m->section, fmt);
    h->jpeg = fmt[0] == 'j';
    h->jpeg_quality = (int)eh_node_int(s, "jpeg_quality", 95);
    if (h->jpeg_quality < 1 || h->jpeg_quality > 100)
        return eh_fail(err, EH_EINVAL, "%s: jpeg_quality must be 1..100, got %d", m->section, h->jpeg_quality);
    h->sleep_mode = eh_node_bool(s, "sleep_mode", 0);
    char dflt_sleep[64];
    snprintf(dflt_sleep, sizeof dflt_sleep, "/sleep?level=%d", (int)eh_node_int(s, "sleep_level", 1));
    snprintf(h->sleep_path, sizeof h->sleep_path, "%s", eh_node_str(s, "sleep_path", dflt_sleep));
    snprintf(h->wake_path, sizeof h->wake_path, "%s", eh_node_str(s, "wake_path", "/wake_up"));
    if (h->sleep_path[0] != '/' || h->wake_path[0] != '/')
        return eh_fail(err, EH_EINVAL, "%s: sleep_path and wake_path must start with '/'", m->section);
    h->allow_url_fetch = eh_node_bool(s, "allow_url_fetch", 0);
    h->footprint = (int64_t)(eh_node_num(s, "footprint_mb", 0) * 1e6);
    h->limits = m->host ? m->host->image_limits : eh_image_default_limits();
    const eh_node *extra = eh_node_get(s, "extra_body");
    if (extra && extra->type != EH_NODE_MAP)
        return eh_fail(err, EH_EINVAL, "%s: extra_body must be a mapping", m->section);
    /* Without an explicit batch_size, a batch is what the server takes at once. */
    if (!eh_node_get(s, "batch_size"))
        m->batch_size = p.max_in_flight;
    if (!eh_node_get(s, "device"))
        snprintf(m->device, sizeof m->device, "remote");
    return EH_OK;
}

/* POST root/<path> with an empty body (sleep, wake_up). */
static eh_status post_control(eh_model *m, const char *path, eh_error *err)
{
    http_model *h = m->impl;
    char *url = str_concat(h->root, path);
    if (!url)
        return eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
    /* "{}": vLLM ignores the body, SGLang's endpoints want a JSON object. */
    eh_http_request rq = { .method = "POST",
                           .url = url,
                           .body = "{}",
                           .body_len = 2,
                           .bearer = h->api_key,
                           .any_body = 1 };
    eh_http_response rs;
    eh_error cerr = { 0 };
    eh_status rc = eh_http_perform(h->client, &rq, &rs, 1, &cerr);
    free(url);
    if (rc == EH_OK && !rs.ok) {
        eh_fail(&cerr, rs.err.code, "%s", rs.err.msg);
        rc = rs.err.code ? rs.err.code : EH_ENET;
    }
    eh_http_response_clear(&rs);
    if (rc != EH_OK)
        return eh_fail(err, rc,
                       "%s (sleep_mode needs vLLM started with --enable-sleep-mode and "
                       "VLLM_SERVER_DEV_MODE=1)",
                       cerr.msg);
    return EH_OK;
}

static eh_status http_to_device(eh_model *m, int64_t *bytes, eh_error *err)
{
    http_model *h = m->impl;
    *bytes = h->footprint;
    return h->sleep_mode ? post_control(m, h->wake_path, err) : EH_OK;
}

static eh_status http_off_device(eh_model *m, eh_error *err)
{
    http_model *h = m->impl;
    if (!h->sleep_mode)
        return EH_OK;
    return post_control(m, h->sleep_path, err);
}

static int64_t http_footprint(const eh_model *m)
{
    return ((const http_model *)m->impl)->footprint;
}

/* ---- request building ----------------------------------------------- */

/* eh_node → cJSON (extra_body); NULL on allocation failure. */
static cJSON *node_to_json(const eh_node *n)
{
    switch (n->type) {
    case EH_NODE_NULL: return cJSON_CreateNull();
    case EH_NODE_BOOL: return cJSON_CreateBool(n->u.boolean);
    case EH_NODE_INT: return cJSON_CreateNumber((double)n->u.integer);
    case EH_NODE_FLOAT: return cJSON_CreateNumber(n->u.number);
    case EH_NODE_STRING: return cJSON_CreateString(n->u.str.data);
    case EH_NODE_SEQ:
    case EH_NODE_MAP: {
        cJSON *o = n->type == EH_NODE_SEQ ? cJSON_CreateArray() : cJSON_CreateObject();
        for (size_t i = 0; o && i < n->u.list.count; i++) {
            cJSON *c = node_to_json(n->u.list.items[i]);
            if (!c) {
                cJSON_Delete(o);
                return NULL;
            }
            if (n->type == EH_NODE_SEQ)
                cJSON_AddItemToArray(o, c);
            else if (cJSON_GetObjectItemCaseSensitive(o, n->u.list.keys[i]))
                cJSON_ReplaceItemInObjectCaseSensitive(o, n->u.list.keys[i], c);
            else
                cJSON_AddItemToObject(o, n->u.list.keys[i], c);
        }
        return o;
    }
    }
    return NULL;
}

static int merge_extra(cJSON *body, const eh_node *extra)
{
    if (!extra || extra->type != EH_NODE_MAP)
        return 0;
    for (size_t i = 0; i < extra->u.list.count; i++) {
        cJSON *c = node_to_json(extra->u.list.items[i]);
        if (!c)
            return -1;
        const char *k = extra->u.list.keys[i];
        if (cJSON_GetObjectItemCaseSensitive(body, k))
            cJSON_ReplaceItemInObjectCaseSensitive(body, k, c);
        else
            cJSON_AddItemToObject(body, k, c);
    }
    return 0;
}

/* "data:image/jpeg;base64,..." for img (png under image_format: png); malloc'd. */
static char *image_data_url(const http_model *h, const eh_image *img, int quality, eh_error *err)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int q = !h->jpeg ? 0 : quality > 0 ? quality : h->jpeg_quality;   /* 0: png */
    if (eh_image_encode_onto_white(img, q, &bytes, &len, err) != EH_OK)
        return NULL;
    size_t b64_len = 0;
    char *b64 = eh_b64_encode(bytes, len, &b64_len);
    free(bytes);
    if (!b64) {
        eh_fail(err, EH_ENOMEM, "out of memory (base64 of %zu bytes)", len);
        return NULL;
    }
    const char *prefix = q > 0 ? "data:image/jpeg;base64," : "data:image/png;base64,";
    char *url = str_concat(prefix, b64);
    free(b64);
    if (!url)
        eh_fail(err, EH_ENOMEM, "out of memory");
    return url;
}

static int contains_ci(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

/* One content part as the chat-completions API takes it: a text part, or
 * the picture as an image_url data URL. */
static cJSON *chat_part(const http_model *h, const eh_chat_part *p, int quality, eh_error *err)
{
    cJSON *part = cJSON_CreateObject();
    if (!part) {
        eh_fail(err, EH_ENOMEM, "out of memory");
        return NULL;
    }
    if (p->text) {
        if (cJSON_AddStringToObject(part, "type", "text") && cJSON_AddStringToObject(part, "text", p->text))
            return part;
        cJSON_Delete(part);
        eh_fail(err, EH_ENOMEM, "out of memory");
        return NULL;
    }
    char *url = image_data_url(h, p->image, quality, err);
    cJSON *iu = url ? cJSON_CreateObject() : NULL;
    int ok = iu && cJSON_AddStringToObject(iu, "url", url) && cJSON_AddStringToObject(part, "type", "image_url");
    free(url);
    if (!ok) {
        cJSON_Delete(part);
        cJSON_Delete(iu);
        if (!err || !err->code)
            eh_fail(err, EH_ENOMEM, "out of memory");
        return NULL;
    }
    cJSON_AddItemToObject(part, "image_url", iu);
    return part;
}

/* The request's messages (lua/evalhost/chat.lua's layout) as JSON: a
 * message of one text part keeps a string content (the templates render
 * both alike), any other a list of parts in order. */
static cJSON *chat_messages(const http_model *h, const eh_score_request *r, eh_error *err)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; list && i < r->n_messages; i++) {
        const eh_chat_message *m = &r->messages[i];
        cJSON *msg = cJSON_CreateObject();
        if (!msg || !cJSON_AddItemToArray(list, msg) || !cJSON_AddStringToObject(msg, "role", m->role))
            goto oom;
        if (m->n_parts == 1 && m->parts[0].text) {
            if (!cJSON_AddStringToObject(msg, "content", m->parts[0].text))
                goto oom;
            continue;
        }
        cJSON *content = cJSON_AddArrayToObject(msg, "content");
        if (!content)
            goto oom;
        for (size_t k = 0; k < m->n_parts; k++) {
            cJSON *part = chat_part(h, &m->parts[k], r->jpeg_quality, err);
            if (!part) {
                cJSON_Delete(list);
                return NULL;
            }
            cJSON_AddItemToArray(content, part);
        }
    }
    if (list)
        return list;
oom:
    cJSON_Delete(list);
    eh_fail(err, EH_ENOMEM, "out of memory");
    return NULL;
}

/* The chat-completions body for one score request; malloc'd JSON text. */
static char *score_body(eh_model *m, const eh_score_request *r, eh_error *err)
{
    http_model *h = m->impl;
    if (!r->n_messages) {
        eh_fail(err, EH_EINVAL, "%s: score request has no messages (evalhost.chat builds them)", m->section);
        return NULL;
    }
    eh_error perr = { 0 };
    cJSON *body = cJSON_CreateObject(), *messages = chat_messages(h, r, &perr);
    char *text = NULL;
    if (!messages) {
        cJSON_Delete(body);
        eh_fail(err, perr.code ? perr.code : EH_ENOMEM, "%s: %s", m->section, perr.msg);
        return NULL;
    }
    if (!body) {
        cJSON_Delete(messages);
        goto oom;
    }
    cJSON_AddItemToObject(body, "model", cJSON_CreateString(m->name));
    cJSON_AddItemToObject(body, "messages", messages);
    cJSON_AddNumberToObject(body, "temperature", 0);
    cJSON_AddNumberToObject(body, "max_tokens", (double)h->max_tokens);
    cJSON_AddNumberToObject(body, "seed", (double)h->seed);
    if (h->logprobs) {
        cJSON_AddBoolToObject(body, "logprobs", 1);
        cJSON_AddNumberToObject(body, "top_logprobs", h->top_logprobs);
    }
    if (merge_extra(body, eh_node_get(m->spec, "extra_body")) != 0)
        goto oom;
    text = cJSON_PrintUnformatted(body);
    if (!text)
        goto oom;
    cJSON_Delete(body);
    return text;
oom:
    cJSON_Delete(body);
    eh_fail(err, EH_ENOMEM, "%s: out of memory building the request", m->section);
    return NULL;
}

/* ---- reply reading ---------------------------------------------------- */

static int is_json_type(const char *ct)
{
    return contains_ci(ct, "json");
}

/* The reply's JSON, or NULL with err saying what was wrong with it. */
static cJSON *reply_json(eh_model *m, const char *url, const eh_http_response *rs, eh_error *err)
{
    char ex[300], safe[256];
    eh_http_safe_url(url, safe, sizeof safe);
    eh_score_excerpt(rs->body, EH_SCORE_EXCERPT_CHARS, ex, sizeof ex);
    if (!is_json_type(rs->content_type)) {
        eh_fail(err, EH_ENET, "%s: reply from %s has content type '%s', not JSON: \"%s\"", m->section, safe,
                rs->content_type[0] ? rs->content_type : "(none)", ex);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(rs->body, rs->len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        eh_fail(err, EH_ENET, "%s: malformed JSON reply from %s: \"%s\"", m->section, safe, ex);
        return NULL;
    }
    return j;
}

/* choices[0].message.content as one string (a string, or an array of text parts). */
static char *reply_text(const cJSON *choice)
{
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content))
        return strdup(content->valuestring);
    if (!cJSON_IsArray(content))
        return NULL;
    size_t total = 1;
    const cJSON *p;
    cJSON_ArrayForEach (p, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(t))
            total += strlen(t->valuestring);
    }
    char *s = malloc(total);
    if (!s)
        return NULL;
    s[0] = '\0';
    cJSON_ArrayForEach (p, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(t))
            strcat(s, t->valuestring);
    }
    return s;
}

/* The logprob entry of the token that spells the score: the token covering
 * the parsed number's first byte when the tokens spell the text, else the
 * first token spelling an integer 0..10 that agrees with the parsed score. */
static const cJSON *score_token(const cJSON *tokens, const eh_score_parsed *parsed, const cJSON **next)
{
    size_t off = 0;
    const cJSON *t, *found = NULL;
    cJSON_ArrayForEach (t, tokens) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(t, "token");
        if (!cJSON_IsString(tok))
            break;
        size_t len = strlen(tok->valuestring);
        if (parsed->offset >= off && parsed->offset < off + len) {
            if (eh_score_token_value(tok->valuestring) >= 0)
                found = t;
            break;
        }
        off += len;
    }
    if (!found) {
        int want = (int)floor(parsed->value);
        cJSON_ArrayForEach (t, tokens) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(t, "token");
            int v = cJSON_IsString(tok) ? eh_score_token_value(tok->valuestring) : -1;
            if (v >= 0) {
                if (v == want || (want == 10 && v == 1))
                    found = t;
                break;
            }
        }
    }
    *next = found ? found->next : NULL;
    return found;
}

/* positions read after the score's first token: the rest of a spelling
 * of at most three digits, and the token after it */
#define SCORE_POSITIONS 4
#define MAX_TOP_LOGPROBS 1000

/* Fills res->score/probs from the logprobs at the score's positions,
 * combined along the observed path (score_logprobs.h); 0 when they do not
 * cover it. */
static int score_from_logprobs(const http_model *h, const cJSON *choice, const eh_score_parsed *parsed,
                               eh_score_result *res, int *dropped)
{
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(choice, "logprobs");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "content");
    if (!cJSON_IsArray(tokens))
        return 0;
    const cJSON *next = NULL;
    const cJSON *at = score_token(tokens, parsed, &next);
    if (!at)
        return 0;
    eh_lp_position pos[SCORE_POSITIONS];
    eh_lp_cand *cands[SCORE_POSITIONS] = { 0 };
    size_t n_pos = 0;
    int ok = 1;
    for (const cJSON *e = at; e && n_pos < SCORE_POSITIONS && ok; e = e->next) {
        const cJSON *tt = cJSON_GetObjectItemCaseSensitive(e, "token");
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(e, "logprob");
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
        int n = cJSON_IsArray(top) ? cJSON_GetArraySize(top) : 0;
        if (!cJSON_IsString(tt) || n > MAX_TOP_LOGPROBS || (n_pos == 0 && n == 0))
            break;
        eh_lp_cand *c = n ? calloc((size_t)n, sizeof *c) : NULL;
        if (n && !c) {
            ok = 0;
            break;
        }
        size_t k = 0;
        const cJSON *x;
        cJSON_ArrayForEach (x, top) {
            const cJSON *xt = cJSON_GetObjectItemCaseSensitive(x, "token");
            const cJSON *xl = cJSON_GetObjectItemCaseSensitive(x, "logprob");
            if (cJSON_IsString(xt) && cJSON_IsNumber(xl))
                c[k++] = (eh_lp_cand){ xt->valuestring, xl->valuedouble };
        }
        cands[n_pos] = c;
        pos[n_pos++] = (eh_lp_position){ tt->valuestring, cJSON_IsNumber(tl) ? tl->valuedouble : -INFINITY, c, k };
    }
    double ev = 0;
    eh_lp_method how = ok && n_pos
                           ? eh_score_from_positions(pos, n_pos, h->score_lo, h->score_hi, res->probs, &ev, dropped)
                           : EH_LP_NONE;
    for (size_t i = 0; i < n_pos; i++)
        free(cands[i]);
    if (how == EH_LP_NONE)
        return 0;
    res->score = ev;
    res->has_probs = 1;
    res->score_lo = h->score_lo;
    res->n_probs = h->score_hi - h->score_lo + 1;
    res->score_method = how == EH_LP_EXACT ? "logprobs" : "logprobs-approx";
    return 1;
}

/* Cuts res->text to limits.max_reply_chars characters, saying so at its end. */
static void keep_reply(eh_model *m, eh_score_result *res)
{
    http_model *h = m->impl;
    int cut = 0;
    size_t len = 0;
    char *kept = eh_text_sanitize(res->text, strlen(res->text), h->max_reply_chars, &len, &cut);
    if (!kept || !cut) {
        free(kept);
        return;
    }
    char note[96];
    int k = snprintf(note, sizeof note, " [... cut at limits.max_reply_chars = %zu]", h->max_reply_chars);
    char *grown = realloc(kept, len + (size_t)k + 1);
    if (!grown) {
        free(kept);
        return;
    }
    memcpy(grown + len, note, (size_t)k + 1);
    free(res->text);
    res->text = grown;
}

/* text_only: the caller parses the text (a benchmark's rule), so a reply
 * without a score the host reads is no failure; score is NaN then. */
static void read_score_reply(eh_model *m, const char *url, const eh_http_response *rs, int text_only,
                             eh_score_result *res)
{
    http_model *h = m->impl;
    cJSON *j = reply_json(m, url, rs, &res->err);
    if (!j)
        return;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *choice = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    char *raw = choice ? reply_text(choice) : NULL;
    char *text = NULL;
    size_t text_len = 0;
    if (raw) {
        /* valid UTF-8 before it is parsed or kept: an invalid byte must neither
         * hide a score after it nor reach the journal and the report */
        text = eh_text_sanitize(raw, strlen(raw), 0, &text_len, NULL);
        free(raw);
    }
    if (!text) {
        char ex[300];
        eh_score_excerpt(rs->body, EH_SCORE_EXCERPT_CHARS, ex, sizeof ex);
        eh_fail(&res->err, EH_EMODEL, "%s: reply has no choices[0].message.content: \"%s\"", m->section, ex);
        cJSON_Delete(j);
        return;
    }
    res->text = text;
    if (!m->revision[0]) {
        /* what the server says it serves pins the judge in the report */
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(j, "system_fingerprint");
        if (cJSON_IsString(model) && model->valuestring[0])
            snprintf(m->revision, sizeof m->revision, "%s%s%s", model->valuestring,
                     cJSON_IsString(fp) && fp->valuestring[0] ? " " : "", cJSON_IsString(fp) ? fp->valuestring : "");
    }
    eh_score_parsed parsed;
    eh_error perr = { 0 };
    eh_status prc = eh_score_parse_range(text, h->score_lo, h->score_hi, &parsed, &perr);
    keep_reply(m, res);
    if (prc != EH_OK && text_only) {
        res->score = NAN;
        res->ok = 1;
        cJSON_Delete(j);
        return;
    }
    if (prc != EH_OK) {
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
        int cut = cJSON_IsString(fr) && !strcmp(fr->valuestring, "length");
        eh_fail(&res->err, EH_EMODEL, "%s: %s%s", m->section, perr.msg,
                cut ? " (the reply was cut at max_tokens)" : "");
        cJSON_Delete(j);
        return;
    }
    int dropped = 0;
    if (!score_from_logprobs(h, choice, &parsed, res, &dropped)) {
        res->score = parsed.value;
        res->score_method = "text";
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(choice, "logprobs");
        if (h->logprobs && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(lp, "content")) && !h->warned_no_logprobs) {
            /* transformers serve (5.24) drops logprobs with a log line of its own */
            h->warned_no_logprobs = 1;
            eh_log(m->host, EH_LOG_WARN,
                   "%s: the server's replies carry no logprobs although they were asked for; "
                   "scores are the replies' parsed text (score_method: text)",
                   m->section);
        }
    }
    if (dropped)
        eh_log(m->host, EH_LOG_WARN, "%s: %d non-finite logprob(s) at the score ignored (%s)", m->section, dropped,
               res->has_probs ? "expected score from the others" : "the reply's score used");
    res->ok = 1;
    cJSON_Delete(j);
}

/* What prepare_score needs to build request i when its turn comes. */
typedef struct score_batch {
    eh_model *m;
    const eh_score_request *reqs;
    const char *url;
    char **bodies;            /* bodies[i] owned here until the batch ends */
} score_batch;

static eh_status prepare_score(void *ud, size_t i, eh_http_request *rq, eh_error *err)
{
    score_batch *b = ud;
    http_model *h = b->m->impl;
    b->bodies[i] = score_body(b->m, &b->reqs[i], err);
    if (!b->bodies[i])
        return err->code ? err->code : EH_EINVAL;   /* this pair fails; the others go out */
    *rq = (eh_http_request){ .url = b->url,
                             .content_type = "application/json",
                             .body = b->bodies[i],
                             .body_len = strlen(b->bodies[i]),
                             .bearer = h->api_key };
    return EH_OK;
}

static eh_status http_score(eh_model *m, const eh_score_request *reqs, eh_score_result *results, size_t n,
                            eh_error *err)
{
    http_model *h = m->impl;
    char *url = str_concat(h->api_base, "/chat/completions");
    eh_http_response *rs = calloc(n ? n : 1, sizeof *rs);
    char **bodies = calloc(n ? n : 1, sizeof *bodies);
    eh_status rc = EH_OK;
    if (!url || !rs || !bodies) {
        rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
        goto done;
    }
    score_batch b = { .m = m, .reqs = reqs, .url = url, .bodies = bodies };
    rc = eh_http_perform_lazy(h->client, n, prepare_score, &b, rs, err);
    for (size_t i = 0; i < n; i++) {
        if (rs[i].ok)
            read_score_reply(m, url, &rs[i], reqs[i].text_only, &results[i]);
        else
            results[i].err = rs[i].err;
        eh_http_response_clear(&rs[i]);
    }
done:
    for (size_t i = 0; bodies && i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(rs);
    free(url);
    return rc;
}

/* ---- editor: /v1/images/edits ---------------------------------------- */

/* A multipart field's text for an extra_body scalar; NULL for others. */
static const char *scalar_text(const eh_node *n, char *buf, size_t len)
{
    switch (n->type) {
    case EH_NODE_STRING: return n->u.str.data;
    case EH_NODE_INT: snprintf(buf, len, "%lld", (long long)n->u.integer); return buf;
    case EH_NODE_FLOAT: snprintf(buf, len, "%.17g", n->u.number); return buf;
    case EH_NODE_BOOL: return n->u.boolean ? "true" : "false";
    default: return NULL;
    }
}

/* pictures one edit uploads: gpt-image-1's limit for image[] */
#define MAX_EDIT_PICTURES 16

typedef struct edit_job {
    uint8_t *png[MAX_EDIT_PICTURES];
    size_t png_len[MAX_EDIT_PICTURES];
    char filename[MAX_EDIT_PICTURES][24];
    eh_http_part parts[32 + MAX_EDIT_PICTURES];
    char scratch[16][40];
    size_t n_parts;
} edit_job;

/* One picture is the form's `image`; several are `image[]` parts in order,
 * as OpenAI's API takes them (and servers of Qwen-Image-Edit-2509). */
static eh_status edit_parts(eh_model *m, const eh_edit_request *r, edit_job *job, eh_error *err)
{
    if (!r->image)
        return eh_fail(err, EH_EINVAL, "%s: edit request has no image", m->section);
    if (r->n_more_images >= MAX_EDIT_PICTURES)
        return eh_fail(err, EH_EINVAL, "%s: %zu input images (at most %d per upload)", m->section, r->n_more_images + 1,
                       MAX_EDIT_PICTURES);
    size_t pics = 1 + r->n_more_images;
    eh_http_part *p = job->parts;
    size_t n = 0;
    p[n++] = (eh_http_part){ .name = "model", .data = m->name, .len = strlen(m->name) };
    p[n++] = (eh_http_part){ .name = "prompt",
                             .data = r->instruction ? r->instruction : "",
                             .len = r->instruction ? strlen(r->instruction) : 0 };
    for (size_t k = 0; k < pics; k++) {
        const eh_image *img = k ? r->more_images[k - 1] : r->image;
        if (!img)
            return eh_fail(err, EH_EINVAL, "%s: input image %zu is missing", m->section, k + 1);
        if (eh_image_encode_png(img, 3, &job->png[k], &job->png_len[k], err) != EH_OK)
            return err ? err->code : EH_EINVAL;
        snprintf(job->filename[k], sizeof job->filename[k], pics > 1 ? "image_%zu.png" : "image.png", k + 1);
        p[n++] = (eh_http_part){ .name = pics > 1 ? "image[]" : "image",
                                 .data = job->png[k],
                                 .len = job->png_len[k],
                                 .filename = job->filename[k],
                                 .content_type = "image/png" };
    }
    p[n++] = (eh_http_part){ .name = "response_format", .data = "b64_json", .len = 8 };
    p[n++] = (eh_http_part){ .name = "n", .data = "1", .len = 1 };
    const eh_node *extra = eh_node_get(m->spec, "extra_body");
    size_t scratch = 0;
    for (size_t i = 0; extra && extra->type == EH_NODE_MAP && i < extra->u.list.count; i++) {
        if (n == sizeof job->parts / sizeof job->parts[0] || scratch == sizeof job->scratch / sizeof job->scratch[0])
            return eh_fail(err, EH_ELIMIT, "%s: extra_body has too many fields for a multipart upload", m->section);
        const char *v = scalar_text(extra->u.list.items[i], job->scratch[scratch], sizeof job->scratch[0]);
        if (!v)
            return eh_fail(err, EH_EINVAL, "%s: extra_body.%s must be a scalar for /v1/images/edits", m->section,
                           extra->u.list.keys[i]);
        if (v == job->scratch[scratch])
            scratch++;
        size_t j = 0;
        while (j < n && strcmp(p[j].name, extra->u.list.keys[i]) != 0)
            j++;
        p[j] = (eh_http_part){ .name = extra->u.list.keys[i], .data = v, .len = strlen(v) };
        if (j == n)
            n++;
    }
    job->n_parts = n;
    return EH_OK;
}

/* data[0].b64_json → image, or data[0].url to fetch (*fetch_url, malloc'd). */
static eh_image *read_edit_reply(eh_model *m, const char *url, const eh_http_response *rs, char **fetch_url,
                                 eh_error *err)
{
    http_model *h = m->impl;
    cJSON *j = reply_json(m, url, rs, err);
    if (!j)
        return NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *d0 = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, 0) : NULL;
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(d0, "b64_json");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(d0, "url");
    eh_image *img = NULL;
    if (cJSON_IsString(b64)) {
        eh_error derr = { 0 };
        img = eh_image_decode_b64(b64->valuestring, strlen(b64->valuestring), &h->limits, &derr);
        if (!img)
            eh_fail(err, derr.code, "%s: edited image in the reply: %s", m->section, derr.msg);
    } else if (cJSON_IsString(u)) {
        if (!strncmp(u->valuestring, "data:", 5)) {
            eh_error derr = { 0 };
            img = eh_image_decode_b64(u->valuestring, strlen(u->valuestring), &h->limits, &derr);
            if (!img)
                eh_fail(err, derr.code, "%s: edited image in the reply: %s", m->section, derr.msg);
        } else if (!h->allow_url_fetch) {
            eh_fail(err, EH_EMODEL,
                    "%s: the server answered with an image URL instead of b64_json; set "
                    "allow_url_fetch: true to fetch it",
                    m->section);
        } else if (strncmp(u->valuestring, "http://", 7) != 0 && strncmp(u->valuestring, "https://", 8) != 0) {
            eh_fail(err, EH_EMODEL, "%s: image URL in the reply is not http(s)", m->section);
        } else {
            *fetch_url = strdup(u->valuestring);
            if (!*fetch_url)
                eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
        }
    } else {
        char ex[300];
        eh_score_excerpt(rs->body, EH_SCORE_EXCERPT_CHARS, ex, sizeof ex);
        eh_fail(err, EH_EMODEL, "%s: reply has no data[0].b64_json or data[0].url: \"%s\"", m->section, ex);
    }
    cJSON_Delete(j);
    return img;
}

typedef struct edit_batch {
    eh_model *m;
    const eh_edit_request *reqs;
    const char *url;
    edit_job *jobs;           /* jobs[i] owned here until the batch ends */
} edit_batch;

static eh_status prepare_edit(void *ud, size_t i, eh_http_request *rq, eh_error *err)
{
    edit_batch *b = ud;
    http_model *h = b->m->impl;
    eh_status rc = edit_parts(b->m, &b->reqs[i], &b->jobs[i], err);
    if (rc != EH_OK)
        return rc;
    *rq = (eh_http_request){ .url = b->url,
                             .parts = b->jobs[i].parts,
                             .n_parts = b->jobs[i].n_parts,
                             .bearer = h->api_key };
    return EH_OK;
}

static eh_status http_edit(eh_model *m, const eh_edit_request *reqs, eh_edit_result *results, size_t n, eh_error *err)
{
    http_model *h = m->impl;
    size_t cap = n ? n : 1;
    char *url = str_concat(h->api_base, "/images/edits");
    edit_job *jobs = calloc(cap, sizeof *jobs);
    eh_http_request *rq = calloc(cap, sizeof *rq);
    eh_http_response *rs = calloc(cap, sizeof *rs);
    char **fetch = calloc(cap, sizeof *fetch);
    size_t *map = calloc(cap, sizeof *map);
    eh_status rc = EH_OK;
    if (!url || !jobs || !rq || !rs || !fetch || !map) {
        rc = eh_fail(err, EH_ENOMEM, "%s: out of memory", m->section);
        goto done;
    }
    edit_batch b = { .m = m, .reqs = reqs, .url = url, .jobs = jobs };
    rc = eh_http_perform_lazy(h->client, n, prepare_edit, &b, rs, err);
    for (size_t i = 0; i < n; i++) {
        if (rs[i].ok)
            results[i].image = read_edit_reply(m, url, &rs[i], &fetch[i], &results[i].err);
        else
            results[i].err = rs[i].err;
        eh_http_response_clear(&rs[i]);
    }
    if (rc != EH_OK)
        goto done;
    /* Second round: images the server handed out by URL (allow_url_fetch). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (fetch[i]) {
            rq[k] = (eh_http_request){ .method = "GET", .url = fetch[i], .any_body = 1 };
            map[k++] = i;
        }
    if (k) {
        rc = eh_http_perform(h->client, rq, rs, k, err);
        for (size_t j = 0; j < k; j++) {
            eh_edit_result *res = &results[map[j]];
            if (rs[j].ok) {
                eh_error derr = { 0 };
                res->image = eh_image_decode(rs[j].body, rs[j].len, &h->limits, &derr);
                if (!res->image)
                    eh_fail(&res->err, derr.code, "%s: edited image fetched from the reply's URL: %s", m->section,
                            derr.msg);
            } else {
                res->err = rs[j].err;
            }
            eh_http_response_clear(&rs[j]);
        }
    }
done:
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; jobs && k < MAX_EDIT_PICTURES; k++)
            free(jobs[i].png[k]);
        if (fetch)
            free(fetch[i]);
    }
    free(jobs);
    free(rq);
    free(rs);
    free(fetch);
    free(map);
    free(url);
    return rc;
}

static void http_close(eh_model *m)
{
    http_model *h = m->impl;
    eh_http_client_free(h->client);
    if (h->api_key) {
        memset(h->api_key, 0, strlen(h->api_key));
        free(h->api_key);
    }
    free(h->api_base);
    free(h->root);
    free(h);
}

const eh_backend eh_backend_http = {
    .name = "http",
    .open = http_open,
    .to_device = http_to_device,
    .off_device = http_off_device,
    .footprint = http_footprint,
    .edit = http_edit,
    .score = http_score,
    .close = http_close,
    .several_images = 1,   /* image[] parts */
    .judge_layout = 1,     /* a benchmark's own judge request (images in order, text first) */
};
