/* server/fuzz/fuzz_api.c — libFuzzer target over the server's request
 * handling: routing, JSON parsing and validation of every endpoint, the
 * collection operations they reach (upsert, delete, search, get, create,
 * drop) on a scratch data directory, and the write-ahead-log parser.
 * Input: "METHOD PATH\nBODY" (a first byte 'W' fuzzes the WAL parser with
 * the rest; 'S' checks that what the fast search-body parser accepts, jansson
 * reads the same way; 'F' parses the rest as a filter body and evaluates what
 * parses on a few payloads, with and without payload indexes). Rebuilds are stubbed (they start threads). Not part of the CMake
 * build (server/fuzz/ is outside the server/*.c glob); tests/long_server_fuzz.sh
 * compiles it with clang -fsanitize=fuzzer,address,undefined and runs it. */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/ivf.h"
#include "filter.h"
#include "payload_index.h"
#include "search_body.h"
#include "srv.h"
#include "wal.h"

int qxs_rebuild_start(qxs_server *s, qxs_coll *c, const qxs_rebuild_params *p, uint64_t *job_id) {
    (void)s, (void)c, (void)p, (void)job_id;
    return qx_error_set(QX_ELIMIT, "rebuilds are not fuzzed");
}

static qxs_server srv;

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    qxs_log_level_cur = QXS_LOG_ERROR;
    char tmpl[] = "/tmp/qinx-fuzz.XXXXXX";
    const char *dir = mkdtemp(tmpl);
    if (!dir) abort();
    snprintf(srv.cfg.data, sizeof srv.cfg.data, "%s", dir);
    srv.cfg.max_body = 1 << 20;
    pthread_rwlock_init(&srv.reg_rw, NULL);
    if (qxs_registry_load(&srv)) abort();
    atomic_store(&srv.ready, 1);
    qxs_coll_params p = {.d = 4, .distance = QXS_EUCLID, .quant_kind = QX_QUANT_RQ, .bytes = 8};
    qxs_coll_create(&srv, "f", &p);
    p.distance = QXS_COSINE;
    qxs_coll_create(&srv, "c", &p);
}

static int count_rec(void *ctx, const qxs_wal_rec *r) {
    (*(size_t *)ctx) += r->n;
    return 0;
}

/* The fast search-body parser against jansson: whatever it accepts must be a
 * JSON object without duplicate members that jansson parses to the same
 * vector bits and parameters, and that passes the jansson path's checks
 * (ranges, finite 32-bit floats). */
static void check_int(const json_t *x, long long got, long long lo, long long hi) {
    if (got < 0 ? x != NULL
                : !json_is_integer(x) || json_integer_value(x) != got || got < lo || got > hi)
        abort();
}

static void check_bool(const json_t *x, int got) {
    if (got < 0 ? x != NULL : !json_is_boolean(x) || json_is_true(x) != got) abort();
}

static void check_search_body(const char *body, size_t len) {
    float v[4];
    qxs_search_body b;
    if (!qxs_search_body_parse(body, len, 4, QX_MAX_K, QX_MAX_NLIST, v, &b)) return;
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) abort();
    json_t *vec = json_object_get(j, "vector");
    if (!json_is_array(vec) || json_array_size(vec) != 4) abort();
    for (size_t i = 0; i < 4; i++) {
        json_t *x = json_array_get(vec, i);
        double f64 = json_number_value(x);
        float f = (float)f64;
        if (!json_is_number(x) || !isfinite(f64) || fabs(f64) > FLT_MAX || memcmp(&f, &v[i], sizeof f)) abort();
    }
    if (json_object_get(j, "limit") && json_object_get(j, "top")) abort();
    json_t *lim = json_object_get(j, "limit") ? json_object_get(j, "limit") : json_object_get(j, "top");
    check_int(lim, b.limit, 1, QX_MAX_K);
    json_t *p = json_object_get(j, "params");
    if (p && !json_is_object(p)) abort();
    check_int(p ? json_object_get(p, "nprobe") : NULL, b.nprobe, 1, QX_MAX_NLIST);
    check_int(p ? json_object_get(p, "rerank") : NULL, b.rerank, 0, QX_MAX_K);
    check_bool(p ? json_object_get(p, "exact") : NULL, b.exact);
    check_bool(json_object_get(j, "with_vector"), b.with_vector);
    json_decref(j);
}

static void fuzz_bind(void *ctx, qxs_cond *c) {
    qxs_pindex **ix = ctx;
    for (int k = 0; k < 4; k++)
        if (qxs_pindex_answers(ix[k], c)) {
            c->pidx = ix[k];
            return;
        }
}

/* Mode 'F': any JSON through the filter parser; a filter that parses is
 * evaluated on fixed payloads, from the payloads and through indexes, and
 * both must agree. */
static void check_filter(const char *body, size_t len) {
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (!j) return;
    qxs_filter *f = NULL;
    char err[512];
    if (qxs_filter_parse(j, "filter", &f, err, sizeof err) == 0) {
        static const char *const pls[] = {
            "{}", "{\"a\":1,\"b\":\"x\",\"c\":[1,2,null],\"d\":{\"e\":true,\"f\":[{\"g\":2.5}]}}",
            "{\"a\":[\"x\",\"y\"],\"b\":null,\"t\":[{\"n\":\"q\",\"w\":3},{\"n\":\"r\"}]}"};
        static const struct { const char *k; int t; } ixs[] = {{"a", QXS_PI_KEYWORD}, {"c", QXS_PI_INTEGER},
                                                              {"d.f[].g", QXS_PI_FLOAT}, {"d.e", QXS_PI_BOOL}};
        qxs_pindex *ix[4] = {0};
        json_t *pj[3];
        for (int i = 0; i < 3; i++) pj[i] = json_loads(pls[i], 0, NULL);
        for (int k = 0; k < 4; k++) {
            if (qxs_pindex_new(&ix[k], ixs[k].k, ixs[k].t, err, sizeof err)) abort();
            for (int i = 0; i < 3; i++)
                if (!qxs_pindex_check(ix[k], pj[i], err, sizeof err) && qxs_pindex_set(ix[k], i, pj[i])) abort();
        }
        int plain[3];
        qxs_pid id = qxs_pid_u64(1);
        for (int i = 0; i < 3; i++) {
            qxs_fpoint p = {.id = &id, .key = i, .payload = pj[i]};
            plain[i] = qxs_filter_match(f, &p);
        }
        qxs_filter_walk(f, fuzz_bind, ix);
        for (int i = 0; i < 3; i++) {
            /* only payloads every index accepted are comparable */
            int all = 1;
            for (int k = 0; k < 4; k++) all &= !qxs_pindex_check(ix[k], pj[i], err, sizeof err);
            qxs_fpoint p = {.id = &id, .key = i, .payload = pj[i]};
            if (all && qxs_filter_match(f, &p) != plain[i]) abort();
        }
        for (int k = 0; k < 4; k++) qxs_pindex_free(ix[k]);
        for (int i = 0; i < 3; i++) json_decref(pj[i]);
    } else if (!strstr(err, "filter")) {
        abort(); /* every refusal names where */
    }
    qxs_filter_free(f);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    if (size > 0 && data[0] == 'F') {
        check_filter((const char *)data + 1, size - 1);
        return 0;
    }
    if (size > 0 && data[0] == 'W') {
        size_t n = 0;
        int e;
        size_t good = qxs_wal_parse(data + 1, size - 1, 4, count_rec, &n, &e);
        if (good > size - 1) abort();
        return 0;
    }
    if (size > 0 && data[0] == 'S') {
        check_search_body((const char *)data + 1, size - 1);
        return 0;
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - data) : size;
    if (head > 512) return 0;
    char line[513];
    memcpy(line, data, head);
    line[head] = 0;
    if (strlen(line) != head) return 0; /* NUL in the request line: MHD would not deliver it */
    char *sp = strchr(line, ' ');
    if (!sp) return 0;
    *sp = 0;
    const char *method = line, *path = sp + 1;
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t blen = nl ? size - head - 1 : 0;
    /* keep the scratch directory small: at most a few collections */
    if (!strcmp(method, "PUT") && strncmp(path, "/collections/", 13) == 0 && srv.ncolls >= 8) return 0;
    qxs_route r;
    qxs_route_parse(path, &r);
    qxs_reply rep;
    qxs_api_handle(&srv, &r, method, body, blen, &rep);
    if (rep.status < 200 || rep.status > 599) abort();
    if (rep.status == 200 && !rep.result && !rep.raw) abort();
    if (rep.status != 200 && !rep.err[0]) abort();
    if (rep.status == 500) {
        fprintf(stderr, "500: %s\n", rep.err);
        abort(); /* nothing a request can send should be an internal error */
    }
    json_decref(rep.result);
    qx_free(rep.raw);
    return 0;
}
