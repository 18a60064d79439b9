/* test_http.c — the HTTP client without a server: URLs in messages lose
 * their credentials and query, bad parameters are refused, a refused
 * connection is retried then reported (never with the bearer token), and
 * the breaker fails the call once enough requests in a row failed.  The
 * scripted-server cases live in tests/e2e/test_http_backend.py. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "evalhost/http.h"

/* A port nothing listens on: bind-free and refused at once on loopback. */
#define REFUSED_URL "http://127.0.0.1:1/v1/chat/completions?key=SECRETQUERY"
#define TOKEN "sk-unit-secret-token"

static void test_safe_url(void)
{
    char buf[128];
    eh_http_safe_url("https://user:pw@api.example.com/v1/chat?key=abc#x", buf, sizeof buf);
    CHECK_EQ_STR(buf, "https://api.example.com/v1/chat");
    eh_http_safe_url("http://127.0.0.1:8000/v1/images/edits", buf, sizeof buf);
    CHECK_EQ_STR(buf, "http://127.0.0.1:8000/v1/images/edits");
    eh_http_safe_url("http://h/p@q?x", buf, sizeof buf);   /* '@' in the path is not a credential */
    CHECK_EQ_STR(buf, "http://h/p@q");
    eh_http_safe_url("http://very-long-host-name.example/", buf, 12);
    CHECK_EQ_STR(buf, "http://very");
}

static void test_params(void)
{
    eh_http_params p = eh_http_default_params();
    CHECK_EQ_INT(p.max_in_flight, 8);
    CHECK_EQ_INT(p.retries, 3);
    CHECK_EQ_INT(p.breaker_after, 5);
    CHECK_EQ_INT(p.verify_tls, 1);
    CHECK(p.max_body == (size_t)64 << 20);
    eh_error err = { 0 };
    p.max_in_flight = 0;
    p.what = "judge";
    CHECK(eh_http_client_new(&p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "judge: bad HTTP parameters (max_in_flight 0");
    eh_http_client_free(NULL);
}

/* A "judge" client with these knobs; fast backoff so the tests take no time. */
static eh_http_client *judge_client(int retries, int max_in_flight, int breaker_after)
{
    eh_http_params p = eh_http_default_params();
    p.retries = retries;
    p.max_in_flight = max_in_flight;
    p.breaker_after = breaker_after;
    p.backoff_s = 0.01;
    p.connect_timeout_s = 2;
    p.what = "judge";
    eh_error err = { 0 };
    eh_http_client *c = eh_http_client_new(&p, &err);
    CHECK(c != NULL);
    return c;
}

static void test_refused_is_retried_then_reported(void)
{
    eh_http_client *c = judge_client(2, 8, 0);
    if (!c)
        return;
    eh_error err = { 0 };
    eh_http_request rq = { .url = REFUSED_URL, .body = "{}", .body_len = 2, .bearer = TOKEN };
    eh_http_response rs;
    CHECK_EQ_INT(eh_http_perform(c, &rq, &rs, 1, &err), EH_OK);   /* one failed request is not a failed call */
    CHECK(!rs.ok);
    CHECK_EQ_INT(rs.attempts, 3);
    CHECK_EQ_INT(rs.err.code, EH_ENET);
    CHECK_CONTAINS(rs.err.msg, "judge: ");
    CHECK_CONTAINS(rs.err.msg, "from http://127.0.0.1:1/v1/chat/completions (after 3 attempts)");
    CHECK(!strstr(rs.err.msg, "SECRETQUERY") && !strstr(rs.err.msg, TOKEN));
    CHECK(rs.seconds >= 0.01);   /* two backoffs of at least half of 0.01 s and 0.02 s */
    CHECK_EQ_INT(eh_http_consecutive_failures(c), 3);   /* the breaker counts attempts, not requests */
    eh_http_response_clear(&rs);
    eh_http_client_free(c);
}

static void test_breaker(void)
{
    eh_http_client *c = judge_client(0, 1, 2);
    if (!c)
        return;
    eh_error err = { 0 };
    eh_http_request rq[4];
    for (int i = 0; i < 4; i++)
        rq[i] = (eh_http_request){ .url = REFUSED_URL, .body = "{}", .body_len = 2 };
    eh_http_response rs[4];
    CHECK_EQ_INT(eh_http_perform(c, rq, rs, 4, &err), EH_ENET);
    CHECK_CONTAINS(err.msg, "judge: the server looks down: 2 attempts in a row failed");
    CHECK(!strstr(err.msg, "judge: judge:"));
    CHECK_EQ_INT(rs[0].attempts, 1);
    CHECK_EQ_INT(rs[1].attempts, 1);
    CHECK_EQ_INT(rs[2].attempts, 0);   /* never sent */
    CHECK_CONTAINS(rs[2].err.msg, "judge: not sent: the server looks down");
    CHECK_CONTAINS(rs[3].err.msg, "not sent");
    for (int i = 0; i < 4; i++)
        eh_http_response_clear(&rs[i]);
    /* Still down: the next call probes with one request and fails at once. */
    eh_error err2 = { 0 };
    CHECK_EQ_INT(eh_http_perform(c, rq, rs, 2, &err2), EH_ENET);
    CHECK_EQ_INT(rs[0].attempts, 1);
    CHECK_EQ_INT(rs[1].attempts, 0);
    for (int i = 0; i < 2; i++)
        eh_http_response_clear(&rs[i]);
    CHECK_EQ_INT(eh_http_perform(c, rq, rs, 0, &err2), EH_OK);   /* an empty batch sends nothing */
    eh_http_client_free(c);
}

int main(void)
{
    test_safe_url();
    test_params();
    test_refused_is_retried_then_reported();
    test_breaker();
    return check_summary("test_http");
}
