/* tests/test_server.c — unit tests of the server's pure parts: the
 * routing and the name/id rules, the load client's float printer (every
 * float it prints parses back to the same float32), that keep paths inside the data directory,
 * the fast search-body parser (what it accepts, what it declines, and its
 * numbers bit-identical to strtod), the streaming upsert-body parser (the
 * same, and agreement with jansson's reading on mutated bodies), and the quarantine of non-finite rows
 * written by older servers (stable partition, ids in the tail, one line each).
 * The server sources are compiled in directly: the test binaries link only
 * the core library, and these files need nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "../server/pointid.c"
#include "../server/route.c"
#include "../server/json_scan.c"
#include "../server/search_body.c"
#include "../server/upsert_body.c"
#include "../server/pointid_json.c"
#include "../server/load.c"
#include "../server/log.c"
#include "../server/repair.c"

/* ---- routing and names -------------------------------------------------------- */

static void test_names_and_ids(void **state) {
    (void)state;
    assert_true(qxs_name_valid("abc_DEF-09", 10));
    assert_true(qxs_name_valid("a", 1));
    char n64[65];
    memset(n64, 'x', 64);
    n64[64] = 0;
    assert_true(qxs_name_valid(n64, 64));
    assert_false(qxs_name_valid(n64, 65 > 64 ? 65 : 0));
    const char *bad[] = {"", ".", "..", "a/b", "a.b", "a b", "%2e", "a\\b", "é", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(qxs_name_valid(bad[i], strlen(bad[i])));
    int64_t id;
    assert_true(qxs_parse_id("0", 1, &id) && id == 0);
    assert_true(qxs_parse_id("9223372036854775807", 19, &id) && id == INT64_MAX);
    assert_false(qxs_parse_id("9223372036854775808", 19, &id));
    assert_false(qxs_parse_id("-1", 2, &id));
    assert_false(qxs_parse_id("+1", 2, &id));
    assert_false(qxs_parse_id("1a", 2, &id));
    assert_false(qxs_parse_id("", 0, &id));
    assert_false(qxs_parse_id("12345678901234567890", 20, &id));
}

static void test_routes(void **state) {
    (void)state;
    struct {
        const char *path;
        qxs_ep ep;
        int name_ok;
    } cases[] = {
        {"/healthz", QXS_EP_HEALTHZ, 0},
        {"/readyz", QXS_EP_READYZ, 0},
        {"/metrics", QXS_EP_METRICS, 0},
        {"/collections", QXS_EP_COLLECTIONS, 0},
        {"/collections/", QXS_EP_COLLECTIONS, 0},
        {"/collections/abc", QXS_EP_COLLECTION, 1},
        {"/collections/abc/points", QXS_EP_POINTS, 1},
        {"/collections/abc/points/42", QXS_EP_POINT, 1},
        {"/collections/abc/points/delete", QXS_EP_DELETE, 1},
        {"/collections/abc/points/search", QXS_EP_SEARCH, 1},
        {"/collections/abc/points/search/batch", QXS_EP_SEARCH_BATCH, 1},
        {"/collections/abc/rebuild", QXS_EP_REBUILD, 1},
        {"/collections/abc/rebuild/7", QXS_EP_REBUILD_JOB, 1},
        {"/collections/..", QXS_EP_COLLECTION, 0},
        {"/collections/../etc/passwd", QXS_EP_NONE, 0},
        {"/collections//points", QXS_EP_NONE, 0},
        {"collections", QXS_EP_NONE, 0},
        {"", QXS_EP_NONE, 0},
        {"/", QXS_EP_ROOT, 0},
        {"/collections/a/b/c/d/e/f/g", QXS_EP_NONE, 0},
        {"/collections/a/points/search/batch/x", QXS_EP_NONE, 0},
        {"/metrics/x", QXS_EP_NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qxs_route r;
        qxs_route_parse(cases[i].path, &r);
        if (r.ep != cases[i].ep) fail_msg("%s: ep %d, want %d", cases[i].path, r.ep, cases[i].ep);
        if (cases[i].ep > QXS_EP_COLLECTIONS) assert_int_equal(r.name_ok, cases[i].name_ok);
    }
    qxs_route r;
    qxs_route_parse("/collections/abc/points/42", &r);
    assert_true(r.id_ok);
    assert_int_equal(r.pid.kind, QXS_PID_U64);
    assert_int_equal(r.pid.lo, 42);
    qxs_route_parse("/collections/abc/points/x1", &r);
    assert_false(r.id_ok);
    qxs_route_parse("/collections/abc/points/550E8400-e29b-41d4-a716-446655440000", &r);
    assert_true(r.id_ok);
    assert_int_equal(r.pid.kind, QXS_PID_UUID);
    qxs_route_parse("/collections/abc/points/query/batch", &r);
    assert_int_equal(r.ep, QXS_EP_QUERY_BATCH);
    qxs_route_parse("/collections/abc/index/meta.lang", &r);
    assert_int_equal(r.ep, QXS_EP_INDEX_FIELD);
    assert_string_equal(r.field, "meta.lang");
    const char *allow;
    assert_true(qxs_route_allows(QXS_EP_COLLECTION, "PUT", &allow));
    assert_true(qxs_route_allows(QXS_EP_COLLECTION, "HEAD", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "POST", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "PU", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "", &allow));
    assert_false(qxs_route_allows(QXS_EP_SEARCH, "GET", &allow));
    assert_string_equal(allow, "POST");
    assert_false(qxs_route_allows(QXS_EP_NONE, "GET", &allow));
}

/* ---- search body fast path ---------------------------------------------- */

static int parse_sb(const char *body, size_t d, float *v, qxs_search_body *b) {
    return qxs_search_body_parse(body, strlen(body), d, 10000, 65536, v, b);
}

static void test_search_body_accepts(void **state) {
    (void)state;
    float v[3];
    qxs_search_body b;
    assert_int_equal(parse_sb("{\"vector\":[1,-2.5,3e2]}", 3, v, &b), 1);
    assert_true(v[0] == 1.0f && v[1] == -2.5f && v[2] == 300.0f);
    assert_true(b.limit == -1 && b.nprobe == -1 && b.rerank == -1 && b.exact == -1 && b.with_vector == -1);
    assert_int_equal(parse_sb(" {\r\n \"limit\" : 7 , \"vector\" : [ 0.1 , 0 , -0 ] ,"
                              "\"params\":{\"nprobe\":16,\"rerank\":0,\"exact\":false},"
                              "\"with_vector\":true}\n", 3, v, &b), 1);
    assert_true(b.limit == 7 && b.nprobe == 16 && b.rerank == 0 && b.exact == 0 && b.with_vector == 1);
    assert_true(v[0] == (float)0.1 && v[1] == 0.0f && !signbit(v[2])); /* "-0" is the integer 0 */
    assert_int_equal(parse_sb("{\"top\":3,\"params\":{},\"vector\":[1,2,3]}", 3, v, &b), 1);
    assert_int_equal(b.limit, 3);
}

static void test_search_body_declines(void **state) {
    (void)state;
    static const char *bodies[] = {
        "", "{}", "[]", "{\"vector\":[1,2]}", "{\"vector\":[1,2,3,4]}", "{\"vector\":[]}",
        "{\"vector\":[1,2,3]", "{\"vector\":[1,2,3]} x", "{\"vector\":[1,2,3],}", "{\"vector\":[1,,3]}",
        "{\"vector\":[1,2,3],\"vector\":[1,2,3]}", "{\"vector\":[1,2,3],\"limit\":1,\"top\":2}",
        "{\"vector\":[1,2,3],\"limit\":0}", "{\"vector\":[1,2,3],\"limit\":10001}",
        "{\"vector\":[1,2,3],\"limit\":2.0}", "{\"vector\":[1,2,3],\"limit\":null}",
        "{\"vector\":[1,2,3],\"limit\":\"5\"}", "{\"vector\":[1,2,3],\"params\":{\"nprobe\":0}}",
        "{\"vector\":[1,2,3],\"params\":{\"rerank\":-1}}", "{\"vector\":[1,2,3],\"params\":{\"hnsw_ef\":8}}",
        "{\"vector\":[1,2,3],\"params\":null}", "{\"vector\":[1,2,3],\"with_vector\":1}",
        "{\"vector\":[1,2,3],\"with_payload\":true}", "{\"vect\\u006fr\":[1,2,3]}",
        "{\"vector\":[1,2,1e39]}", "{\"vector\":[1,2,1e400]}", "{\"vector\":[1,2,1e-400]}",
        "{\"vector\":[1,2,NaN]}", "{\"vector\":[1,2,01]}", "{\"vector\":[1,2,1.]}", "{\"vector\":[1,2,.5]}",
        "{\"vector\":[1,2,+1]}", "{\"vector\":[1,2,1e]}", "{\"vector\":[1,2,1234567890123456]}",
        "{\"vector\":[1,2,\"3\"]}", "{\"vector\":[1,2,true]}", "{\"vector\":[1,2,3],\"exact\":true}",
        "{\"vector\":[1,2,3],\"params\":{\"exact\":tru}}"
    };
    float v[3];
    qxs_search_body b;
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        if (parse_sb(bodies[i], 3, v, &b)) fail_msg("accepted: %s", bodies[i]);
    /* NUL bytes inside the body, given by length */
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,2,3]}\0", 19, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,\0 2,3]}", 20, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,2,3]\0}", 19, 3, 10000, 65536, v, &b), 0);
    /* truncations of a valid body never parse */
    const char *ok = "{\"vector\":[1.5,2,3],\"limit\":5,\"params\":{\"nprobe\":4}}";
    for (size_t n = 0; n < strlen(ok); n++)
        assert_int_equal(qxs_search_body_parse(ok, n, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(parse_sb(ok, 3, v, &b), 1);
}

/* exact_decimal (Clinger's fast path) against strtod, bit for bit. */
static void test_search_body_numbers(void **state) {
    (void)state;
    uint64_t r = 12345;
    size_t fast = 0;
    for (int t = 0; t < 200000; t++) {
        char buf[64];
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int idig = (int)(r >> 60) % 8, fdig = (int)(r >> 56 & 15) + 1, ex = (int)(r >> 40 & 63) - 32;
        size_t n = 0;
        if (r >> 39 & 1) buf[n++] = '-';
        uint64_t x = r ^ (r >> 29);
        if (idig == 0) buf[n++] = '0';
        for (int i = 0; i < idig; i++, x /= 10) buf[n++] = (char)('0' + (i == 0 ? 1 + x % 9 : x % 10));
        buf[n++] = '.';
        for (int i = 0; i < fdig; i++, x /= 7) buf[n++] = (char)('0' + x % 10);
        if (r >> 38 & 1) n += (size_t)snprintf(buf + n, sizeof buf - n, "e%d", ex);
        buf[n] = 0;
        double want = strtod(buf, NULL), got;
        if (qxs_js_exact_decimal(buf, buf + n, &got)) {
            fast++;
            if (memcmp(&got, &want, sizeof got)) fail_msg("%s: %.17g, strtod %.17g", buf, got, want);
        }
    }
    assert_true(fast > 100000); /* the fast path takes most of these */
}

/* Whole bodies {"vector":[x]} with x in every JSON number shape (integer or
 * not, fraction with leading zeros, exponent e/E/+/-, up to 20 digits a
 * part): accepted exactly when the jansson path would accept the number and
 * this parser promises to (not ERANGE, integers up to 15 digits, a finite
 * 32-bit float, a token under 64 bytes), and then bit-identical to it. */
static void test_search_body_number_shapes(void **state) {
    (void)state;
    uint64_t r = 99;
    size_t accepted = 0;
    for (int t = 0; t < 100000; t++) {
        char tok[96], body[128];
        size_t n = 0, idig;
#define RND() (r = r * 6364136223846793005ULL + 1442695040888963407ULL, r >> 33)
        if (RND() % 3 == 0) tok[n++] = '-';
        idig = RND() % 21;
        if (idig == 0) tok[n++] = '0';
        for (size_t i = 0; i < idig; i++) tok[n++] = (char)('0' + (i == 0 ? 1 + RND() % 9 : RND() % 10));
        int integer = 1;
        if (RND() % 2) {
            integer = 0;
            tok[n++] = '.';
            size_t zeros = RND() % 4 == 0 ? RND() % 8 : 0, fd = 1 + RND() % 20;
            for (size_t i = 0; i < zeros; i++) tok[n++] = '0';
            for (size_t i = 0; i < fd; i++) tok[n++] = (char)('0' + RND() % 10);
        }
        if (RND() % 2) {
            integer = 0;
            tok[n++] = RND() % 2 ? 'e' : 'E';
            unsigned sg = (unsigned)(RND() % 3);
            if (sg) tok[n++] = sg == 1 ? '+' : '-';
            unsigned emax = RND() % 2 ? 40 : 400;
            n += (size_t)snprintf(tok + n, sizeof tok - n, "%u", (unsigned)(RND() % emax));
        }
        tok[n] = 0;
#undef RND
        errno = 0;
        double want = integer ? (double)strtoll(tok, NULL, 10) : strtod(tok, NULL);
        int erange = errno == ERANGE;
        size_t digits = n - (tok[0] == '-');
        int expect = !erange && !(integer && digits > 15) && fabs(want) <= FLT_MAX && n <= 63;
        snprintf(body, sizeof body, "{\"vector\":[%s]}", tok);
        float v;
        qxs_search_body b;
        int got = parse_sb(body, 1, &v, &b);
        if (got != expect) fail_msg("%s: parser %s, expected %s", tok, got ? "accepts" : "declines", expect ? "accept" : "decline");
        float w = (float)want;
        if (got && memcmp(&v, &w, sizeof v)) fail_msg("%s: %.9g, jansson path %.9g", tok, v, w);
        accepted += (size_t)got;
    }
    assert_true(accepted > 50000);
    float v;
    qxs_search_body b;
    assert_int_equal(parse_sb("{\"vector\":[-0.0]}", 1, &v, &b), 1);
    assert_true(v == 0.0f && signbit(v)); /* a real -0.0 keeps its sign, as strtod's */
}


/* ---- upsert body fast path ---------------------------------------------- */

#include "upsert_agree.h"

static int agree(const char *body, size_t d) { return upsert_agree(body, strlen(body), d); }

static void test_upsert_body_accepts(void **state) {
    (void)state;
    static const char *bodies[] = {
        "{\"points\":[{\"id\":1,\"vector\":[1,-2.5,3e2]}]}",
        " {\r\n \"points\" : [ { \"vector\" : [ 0.1 , 0 , -0 ] , \"id\" : 0 } , {\"id\":9223372036854775807,"
        "\"vector\":[-0.0,1E-3,12345678901234]} ] } \n",
        "{\"points\":[{\"id\":\"6F9619FF-8B86-D011-B42D-00C04FC964FF\",\"vector\":[1,2,3],\"payload\":{\"a\":\"x\","
        "\"n\":[1,2,{\"b\":\"}]{[\\\"\"}],\"a\":2}},{\"id\":2,\"vector\":[1,2,3],\"payload\":null},"
        "{\"id\":3,\"payload\":{},\"vector\":[1,2,3]}]}",
        "{\"batch\":{\"ids\":[5,\"urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff\"],\"vectors\":[[1,1,1],[2,2,2]]}}",
        "{\"batch\":{\"vectors\":[[1,1,1],[2,2,2]],\"payloads\":[{\"k\":1},null],\"ids\":[5,6]}}",
        "{\"batch\":{\"ids\":[5],\"vectors\":[[1,1,1]],\"payloads\":null}}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]},{\"id\":1,\"vector\":[4,5,6]}]}", /* duplicate ids: both kept */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        if (agree(bodies[i], 3) != 1) fail_msg("not accepted alike: %s", bodies[i]);
    qxs_upsert_body ub;
    const char *b = "{\"points\":[{\"id\":7,\"vector\":[1.5,-0,-0.0],\"payload\":{\"a\":1}},{\"id\":8,\"vector\":[0,0,1]}]}";
    assert_int_equal(qxs_upsert_body_parse(b, strlen(b), 3, 10, &ub), 1);
    assert_int_equal(ub.n, 2);
    assert_true(ub.ids[0].lo == 7 && ub.ids[0].kind == QXS_PID_U64 && ub.ids[1].lo == 8);
    assert_true(ub.x[0] == 1.5f && !signbit(ub.x[1]) && signbit(ub.x[2]) && ub.x[5] == 1.0f);
    assert_true(json_is_object(ub.payload[0]) && ub.payload[1] == NULL);
    qxs_upsert_body_free(&ub);
    assert_null(ub.ids);
    /* many points: the arrays grow past the estimate from the body length */
    size_t n = 3000, cap = n * 64 + 64, len = 0;
    char *big = malloc(cap);
    len += (size_t)snprintf(big + len, cap - len, "{\"points\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s{\"id\":%zu,\"vector\":[%zu,0,1]}", i ? "," : "", i, i);
    len += (size_t)snprintf(big + len, cap - len, "]}");
    assert_int_equal(upsert_agree(big, len, 3), 1);
    assert_int_equal(qxs_upsert_body_parse(big, len, 3, 65536, &ub), 1);
    assert_int_equal(ub.n, n);
    assert_true(ub.x[(n - 1) * 3] == (float)(n - 1) && ub.ids[n - 1].lo == n - 1);
    qxs_upsert_body_free(&ub);
    assert_int_equal(qxs_upsert_body_parse(big, len, 3, n - 1, &ub), 0); /* more than max_points */
    free(big);
}

/* What the streaming parser must leave to jansson (whose replies are the
 * documented errors): broken JSON, wrong dimension, NaN, duplicate members,
 * huge numbers, odd ids, named vectors, other members, unequal lists. */
static void test_upsert_body_declines(void **state) {
    (void)state;
    static const char *bodies[] = {
        "", "{}", "[]", "{\"points\":[]}", "{\"points\":{}}", "{\"points\":null}", "{\"batch\":{}}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,3,4]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,NaN]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,nan]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,Infinity]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,1e39]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,1e400]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,1e-400]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,-3.5e38]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,12345678901234567]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,\"3\"]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,null]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,01]}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,.5]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],}]}", "{\"points\":[{\"id\":1,\"vector\":[1,,3]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]},]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}]} x",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}]", "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}],}",
        "{\"points\":[{\"id\":1,\"id\":2,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{},\"payload\":{}}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}],\"points\":[{\"id\":1,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}],\"batch\":{\"ids\":[1],\"vectors\":[[1,2,3]]}}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3]}],\"wait\":true}",
        "{\"points\":[{\"id\":-1,\"vector\":[1,2,3]}]}", "{\"points\":[{\"id\":-0,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":1.0,\"vector\":[1,2,3]}]}", "{\"points\":[{\"id\":1e3,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":9223372036854775808,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":99999999999999999999,\"vector\":[1,2,3]}]}", "{\"points\":[{\"id\":01,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":\"7\",\"vector\":[1,2,3]}]}", "{\"points\":[{\"id\":null,\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"id\":\"6f9619ff-8b86-d011-b42d-00c04fc964f\\u0066\",\"vector\":[1,2,3]}]}",
        "{\"points\":[{\"vector\":[1,2,3]}]}", "{\"points\":[{\"id\":1}]}",
        "{\"points\":[{\"id\":1,\"vector\":{\"\":[1,2,3]}}]}", "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"x\":1}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":[1]}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":\"a\"}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{\"a\":}}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{\"a\":1}]}",
        "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{\"a\":\"\\x\"}}]}",
        "{\"points\":[1]}", "{\"points\":[null]}",
        "{\"batch\":{\"ids\":[1,2],\"vectors\":[[1,2,3]]}}", "{\"batch\":{\"ids\":[1],\"vectors\":[[1,2,3]],\"payloads\":[]}}",
        "{\"batch\":{\"ids\":[1],\"vectors\":[[1,2,3]],\"payloads\":[{},{}]}}", "{\"batch\":{\"ids\":[],\"vectors\":[]}}",
        "{\"batch\":{\"ids\":[1],\"ids\":[1],\"vectors\":[[1,2,3]]}}", "{\"batch\":{\"ids\":[1]}}",
        "{\"batch\":{\"ids\":[1],\"vectors\":[[1,2,3]],\"extra\":1}}", "{\"batch\":{\"ids\":[1],\"vectors\":{\"\":[[1,2,3]]}}}",
        "{\"pOints\":[{\"id\":1,\"vector\":[1,2,3]}]}", "{\"p\\u006fints\":[{\"id\":1,\"vector\":[1,2,3]}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        if (agree(bodies[i], 3) != -1) fail_msg("accepted: %s", bodies[i]);
    /* a duplicate key inside a payload is the payload's (jansson keeps the
     * last one there, on both paths) */
    assert_int_equal(agree("{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{\"a\":1,\"a\":2}}]}", 3), 1);
    /* NUL bytes and every truncation of a valid body */
    qxs_upsert_body ub;
    assert_int_equal(qxs_upsert_body_parse("{\"points\":[{\"id\":1,\"vector\":[1,\0 2,3]}]}", 38, 3, 10, &ub), 0);
    const char *ok = "{\"batch\":{\"ids\":[1,2],\"vectors\":[[1.5,2,3],[4,5,6]],\"payloads\":[{\"a\":[1,{}]},null]}}";
    for (size_t n = 0; n < strlen(ok); n++) assert_int_equal(qxs_upsert_body_parse(ok, n, 3, 10, &ub), 0);
    assert_int_equal(agree(ok, 3), 1);
    /* payloads nested deeper than the parser takes */
    char deep[2 * 1100 + 128];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":");
    for (int i = 0; i < 1100; i++) deep[n++] = i ? '[' : '{', deep[n++] = i ? ' ' : ' ';
    deep[n] = 0;
    assert_int_equal(agree(deep, 3), -1);
}

/* Random byte-level mutations of valid bodies (fixed seed): whatever the
 * streaming parser accepts, jansson reads identically. */
static void test_upsert_body_mutations(void **state) {
    (void)state;
    static const char *seeds[] = {
        "{\"points\":[{\"id\":1,\"vector\":[1.25,-2e-3,3]},{\"id\":\"6f9619ff8b86d011b42d00c04fc964ff\",\"vector\":[0,1,"
        "-0],\"payload\":{\"a\":\"x\",\"n\":[1,2.5,{\"k\":null}]}}]}",
        "{\"batch\":{\"ids\":[5,6,7],\"vectors\":[[1,1,1],[2.5,2,2],[3,3,3e1]],\"payloads\":[{\"k\":1},null,{}]}}",
    };
    uint64_t r = 2024;
    size_t accepted = 0, runs = 0;
    char buf[512];
    for (int t = 0; t < 60000; t++) {
        const char *sd = seeds[t % 2];
        size_t len = strlen(sd);
        memcpy(buf, sd, len);
        int muts = 1 + (int)((r >> 60) % 3);
        for (int k = 0; k < muts; k++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(r >> 33) % len;
            static const char alphabet[] = "0123456789-+.eE,:[]{}\" nul\\ax";
            char ch = alphabet[(r >> 20) % (sizeof alphabet - 1)];
            switch ((r >> 10) % 3) {
            case 0: buf[at] = ch; break;                          /* replace */
            case 1: memmove(buf + at, buf + at + 1, len - at - 1), len--; break; /* delete */
            default:
                if (len + 1 < sizeof buf) memmove(buf + at + 1, buf + at, len - at), buf[at] = ch, len++; /* insert */
            }
        }
        int a = upsert_agree(buf, len, 3);
        if (a == 0) fail_msg("read differently: %.*s", (int)len, buf);
        accepted += a == 1;
        runs++;
    }
    assert_true(accepted > 1000 && accepted < runs);
}


/* qinx serve load prints 9 significant digits without snprintf: each text
 * parses back (strtof) to the very same float, over random bit patterns and
 * the edges (denormals, powers of ten, FLT_MAX, -0). */
static void test_load_float_printer(void **state) {
    (void)state;
    p10_init();
    char buf[64];
    tu_rng r;
    tu_rng_seed(&r, 42);
    float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, 10.0f, 1e-10f, 9.99999999e8f, 1e9f, 123456789.0f, FLT_MAX, -FLT_MAX,
                    FLT_MIN, 1e-45f, 1.4e-45f, 3e-39f, 0.1f, 0.3f, 1e38f, 9.9999e37f, 100000000.0f, 999999999.0f};
    for (size_t i = 0; i < sizeof edge / sizeof *edge + 2000000; i++) {
        float f;
        if (i < sizeof edge / sizeof *edge) f = edge[i];
        else {
            uint32_t bits = (uint32_t)tu_rng_next(&r);
            memcpy(&f, &bits, 4);
            if (!isfinite(f)) continue;
        }
        int n = fmt_f32(buf, f);
        buf[n] = 0;
        assert_true(n > 0 && n <= 16);
        float g = strtof(buf, NULL);
        if (memcmp(&f, &g, 4) != 0) fail_msg("%.9g printed as %s parses to %.9g", (double)f, buf, (double)g);
    }
}

/* ---- repair: non-finite rows ------------------------------------------------ */

static void test_repair_partition(void **state) {
    (void)state;
    enum { n = 9, d = 3 };
    char dir[] = "/tmp/qx_repair_XXXXXX";
    assert_non_null(mkdtemp(dir));
    qxs_pid ids[n];
    float x[n * d];
    qxs_bytes p[n];
    for (size_t i = 0; i < n; i++) {
        ids[i] = qxs_pid_u64(100 + i);
        for (size_t j = 0; j < d; j++) x[i * d + j] = (float)(10 * i + j);
        p[i] = (qxs_bytes){(const uint8_t *)"{}", (uint32_t)i};
    }
    x[1 * d + 2] = NAN, x[4 * d + 0] = INFINITY, x[8 * d + 1] = -NAN; /* rows 1, 4, 8 */
    size_t k = 0;
    assert_int_equal(qxs_repair_partition(dir, "t", "wal.log", 77, d, ids, x, p, n, &k), 0);
    assert_int_equal(k, 6);
    const size_t good[6] = {0, 2, 3, 5, 6, 7}, bad[3] = {1, 4, 8};
    for (size_t i = 0; i < 6; i++) {
        assert_true(ids[i].lo == 100 + good[i]);
        assert_int_equal(p[i].len, good[i]);
        for (size_t j = 0; j < d; j++) assert_true(x[i * d + j] == (float)(10 * good[i] + j));
    }
    for (size_t i = 0; i < 3; i++) assert_true(ids[6 + i].lo == 100 + bad[i]);
    char path[256], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, QXS_QUARANTINE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t lines = 0;
    while (fgets(line, sizeof line, f)) {
        char want[128];
        snprintf(want, sizeof want, "{\"id\":%zu,\"source\":\"wal.log\",\"lsn\":77,", 100 + bad[lines]);
        assert_true(strncmp(line, want, strlen(want)) == 0);
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 3);
    /* all finite: nothing moved, nothing written */
    assert_int_equal(qxs_repair_partition(dir, "t", "wal.log", 78, d, ids, x, p, 6, &k), 0);
    assert_int_equal(k, 6);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_ids),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_load_float_printer),
        cmocka_unit_test(test_search_body_accepts),
        cmocka_unit_test(test_search_body_declines),
        cmocka_unit_test(test_search_body_numbers),
        cmocka_unit_test(test_search_body_number_shapes),
        cmocka_unit_test(test_upsert_body_accepts),
        cmocka_unit_test(test_upsert_body_declines),
        cmocka_unit_test(test_upsert_body_mutations),
        cmocka_unit_test(test_repair_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
