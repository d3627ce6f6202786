/* tests/test_server_http.c — unit tests of the HTTP framing parser
 * (server/http_parse.c): request heads that must parse, each way a head is
 * refused with its status, Content-Length / Transfer-Encoding rules against
 * request smuggling, and the chunked decoder fed byte by byte and in one
 * piece (sizes, extensions, trailers, overflow, the body limit, data longer
 * than its size, a pipelined request left unread).
 * The parser is compiled in directly: it needs nothing but libc. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "../server/http_parse.c"

static int head(const char *raw, qxs_http_head *h, char *err) {
    return qxs_http_parse_head(raw, strlen(raw), h, err, 256);
}

static void test_head_parses(void **state) {
    (void)state;
    qxs_http_head h;
    char err[256];
    const char *raw = "PUT /collections/a/points?wait=true HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                      "api-key:  s3cret \r\nConnection: keep-alive\r\n\r\n{}";
    assert_int_equal(head(raw, &h, err), 1);
    assert_int_equal(h.head_len, strlen(raw) - 2); /* the body is not part of the head */
    assert_string_equal(h.method, "PUT");
    assert_int_equal(h.target_len, strlen("/collections/a/points?wait=true"));
    assert_int_equal(h.content_length, 12);
    assert_int_equal(h.chunked, 0);
    assert_int_equal(h.keep_alive, 1);
    assert_int_equal(h.api_key_len, 6);
    assert_memory_equal(h.api_key, "s3cret", 6);
    /* bare LF line ends, one leading empty line, HTTP/1.0 closes by default */
    assert_int_equal(head("\r\nGET /healthz HTTP/1.0\n\n", &h, err), 1);
    assert_int_equal(h.keep_alive, 0);
    assert_int_equal(h.content_length, -1);
    assert_int_equal(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h, err), 1);
    assert_int_equal(h.keep_alive, 1);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", &h, err), 1);
    assert_int_equal(h.keep_alive, 0);
    assert_int_equal(head("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n",
                          &h, err),
                     1);
    assert_int_equal(h.chunked, 1);
    assert_int_equal(h.expect_continue, 1);
    /* incomplete heads want more bytes, whatever the cut */
    const char *full = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++) assert_int_equal(qxs_http_parse_head(full, n, &h, err, 256), 0);
}

static void test_head_refusals(void **state) {
    (void)state;
    static const struct {
        const char *raw;
        int status;
        const char *msg;
    } cases[] = {
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "invalid Content-Length"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "invalid Content-Length"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", 400, "invalid Content-Length"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n", 400, "more than one Content-Length"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400, "more than one Content-Length"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length and Transfer-Encoding"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "'gzip' is not supported"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "is not supported"},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "more than one Transfer-Encoding"},
        {"PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
        {"GET /x HTTP/1.1\r\n\r\n", 400, "missing Host"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"},
        {"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505, "not supported"},
        {"GET /x HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
        {"GET  /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line"},
        {"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "must start with '/'"},
        {"G(T /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid character in the method"},
        {"GARBAGE\r\n\r\n", 400, "malformed request line"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400, "has no ':'"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n", 400, "no whitespace before ':'"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", 400, "obsolete line folding"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\x01z\r\n\r\n", 400, "control character 0x01"},
        {"GET /x HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, "Expect"},
        {"GET /x HTTP/1.1\r\nHost: a\r\napi-key: a\r\napi-key: b\r\n\r\n", 400, "more than one api-key"},
        {"GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n", 400, "more than one Authorization"},
        {"\r\n\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty lines"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qxs_http_head h;
        char err[256] = "";
        int rc = head(cases[i].raw, &h, err);
        if (rc != cases[i].status || !strstr(err, cases[i].msg)) {
            fprintf(stderr, "case %zu: status %d (want %d), message '%s' (want '%s')\n", i, rc, cases[i].status, err,
                    cases[i].msg);
            fail();
        }
    }
}

static void test_head_limits(void **state) {
    (void)state;
    qxs_http_head h;
    char err[256];
    size_t cap = QXS_HTTP_MAX_HEAD * 2;
    char *b = malloc(cap);
    /* 600 query parameters fit (issue 19: no answer at all before) */
    int n = snprintf(b, cap, "GET /healthz?");
    for (int i = 0; i < 600; i++) n += snprintf(b + n, cap - (size_t)n, "a=b&");
    n += snprintf(b + n, cap - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(qxs_http_parse_head(b, (size_t)n, &h, err, sizeof err), 1);
    /* a target above 8 KiB: 414, decided before the line ends */
    memset(b, 'a', cap);
    memcpy(b, "GET /", 5);
    assert_int_equal(qxs_http_parse_head(b, QXS_HTTP_MAX_TARGET + 100, &h, err, sizeof err), 414);
    /* a head above 16 KiB without its end: 431 */
    n = snprintf(b, cap, "GET / HTTP/1.1\r\n");
    while ((size_t)n < QXS_HTTP_MAX_HEAD + 10) n += snprintf(b + n, cap - (size_t)n, "X-Long: %s\r\n", "vvvvvvvvvvvvvvvvvvvvvv");
    assert_int_equal(qxs_http_parse_head(b, (size_t)n, &h, err, sizeof err), 431);
    /* 101 header fields: 431 */
    n = snprintf(b, cap, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 100; i++) n += snprintf(b + n, cap - (size_t)n, "X-%d: v\r\n", i);
    n += snprintf(b + n, cap - (size_t)n, "\r\n");
    assert_int_equal(qxs_http_parse_head(b, (size_t)n, &h, err, sizeof err), 431);
    free(b);
}

/* Decode a whole chunked body, fed in pieces of `step` bytes. */
static int decode(const char *in, size_t n, size_t step, uint64_t limit, char *out, size_t *outlen, size_t *used_total,
                  char *err) {
    qxs_chunked c;
    memset(&c, 0, sizeof c);
    *outlen = 0;
    qxs_chunk_sink sink = {.out = out, .len = outlen, .limit = limit};
    size_t off = 0;
    for (;;) {
        size_t k = n - off < step ? n - off : step, used = 0;
        int rc = qxs_chunked_feed(&c, in + off, k, &used, &sink, err, 256);
        off += used;
        if (rc || off == n) {
            *used_total = off;
            return rc;
        }
    }
}

static void test_chunked(void **state) {
    (void)state;
    char out[256], err[256];
    size_t len, used;
    const char *body = "5\r\nhello\r\n6;ext=1;q=\"x\"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n";
    size_t blen = strlen(body), pipelined = strlen("GET / HTTP/1.1\r\n");
    for (size_t step = 1; step <= blen; step++) {
        assert_int_equal(decode(body, blen, step, 100, out, &len, &used, err), 1);
        assert_int_equal(len, 11);
        assert_memory_equal(out, "hello world", 11);
        assert_int_equal(used, blen - pipelined); /* the next request stays unread */
    }
    /* hex sizes, upper case, whitespace before the extension */
    assert_int_equal(decode("A \r\n0123456789\r\n0\r\n\r\n", 21, 3, 100, out, &len, &used, err), 1);
    assert_int_equal(len, 10);
    static const struct {
        const char *raw;
        int status;
        const char *msg;
    } bad[] = {
        {"ffffffffffffffff\r\n", 400, "more than 15 hex digits"},
        {"zz\r\n", 400, "chunk size expected"},
        {"\r\n", 400, "chunk size expected"},
        {"5\nhello\r\n0\r\n\r\n", 400, "invalid byte 0x0a"},
        {"3\r\nabcdef\r\n0\r\n\r\n", 400, "longer than its size"},
        {"3\r\nabc\n0\r\n\r\n", 400, "not followed by CRLF"},
        {"3;a\x01\r\nabc\r\n0\r\n\r\n", 400, "control character"},
        {"0\r\nX: 1\n\r\n", 400, "control character 0x0a in a chunked trailer"},
        {"0\r\n\rx", 400, "not ended by CRLF"},
        {"65\r\n", 413, "exceeds the limit of 100 bytes"},
        {"40\r\n" "0123456789012345678901234567890123456789012345678901234567890123" "\r\n" "40\r\n", 413, "after 64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char e[256] = "";
        int rc = decode(bad[i].raw, strlen(bad[i].raw), 1, 100, out, &len, &used, e);
        if (rc != bad[i].status || !strstr(e, bad[i].msg)) {
            fprintf(stderr, "chunk case %zu: status %d (want %d), message '%s' (want '%s')\n", i, rc, bad[i].status, e,
                    bad[i].msg);
            fail();
        }
    }
    /* an unterminated body is not an error by itself: more input is needed */
    assert_int_equal(decode("5\r\nhello\r\n", 10, 4, 100, out, &len, &used, err), 0);
    /* extensions and trailers are bounded */
    char *big = malloc(QXS_HTTP_MAX_TRAILER + 64);
    int n = snprintf(big, 16, "1;");
    memset(big + n, 'e', QXS_HTTP_MAX_TRAILER + 8);
    assert_int_equal(decode(big, (size_t)n + QXS_HTTP_MAX_TRAILER + 8, 7, 100, out, &len, &used, err), 400);
    free(big);
}

static void test_decode_path(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(qxs_http_decode_path("/collections/a%2Db?x=%41", 24, out), 16);
    assert_string_equal(out, "/collections/a-b");
    qxs_http_decode_path("/collections/a%00b", 18, out);
    assert_string_equal(out, "/collections/a%00b"); /* never a NUL */
    qxs_http_decode_path("/c/%2e%2E/%zz%4", 15, out);
    assert_string_equal(out, "/c/../%zz%4");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_parses),
        cmocka_unit_test(test_head_refusals),
        cmocka_unit_test(test_head_limits),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_decode_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
