/* server/search_body.c — the allocation-free parser of the common search
 * body (search_body.h).
 *
 * Decisions:
 * 1. Decline, never judge: whatever this parser does not fully understand it
 *    declines (returns 0) and the body goes to jansson, the reference, so the
 *    replies to odd or broken bodies stay jansson's. What it accepts it reads
 *    exactly as the jansson path does (the token readers of json_scan.c).
 *    tests/long_server_fuzz.sh checks the agreement on random bodies.
 * 2. Why it exists: for a 128-d query jansson builds a tree of 128 reals, one
 *    allocation each, through a byte-at-a-time lexer; under load that was
 *    ~20 % of the server's time (perf on tests/long_server_load.sh).
 */
#include "search_body.h"

#include <string.h>

#include "json_scan.h"

static int integer_in(qxs_js *c, long long lo, long long hi, long long *out) {
    double v;
    int in;
    if (!qxs_js_number(c, &v, &in) || !in || v < (double)lo || v > (double)hi) return 0;
    *out = (long long)v;
    return 1;
}

static int boolean(qxs_js *c, int *out) {
    qxs_js_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && !memcmp(c->p, "true", 4)) return c->p += 4, *out = 1, 1;
    if (left >= 5 && !memcmp(c->p, "false", 5)) return c->p += 5, *out = 0, 1;
    return 0;
}

static int params(qxs_js *c, long long max_k, long long max_nprobe, qxs_search_body *b) {
    if (!qxs_js_eat(c, '{')) return 0;
    if (qxs_js_eat(c, '}')) return 1;
    do {
        char name[16];
        if (!qxs_js_name(c, name, sizeof name)) return 0;
        if (!strcmp(name, "nprobe") && b->nprobe < 0) {
            if (!integer_in(c, 1, max_nprobe, &b->nprobe)) return 0;
        } else if (!strcmp(name, "rerank") && b->rerank < 0) {
            if (!integer_in(c, 0, max_k, &b->rerank)) return 0;
        } else if (!strcmp(name, "shortlist") && b->shortlist < 0) {
            if (!integer_in(c, 0, 10 * max_k, &b->shortlist)) return 0; /* QX_MAX_SHORTLIST */
        } else if (!strcmp(name, "exact") && b->exact < 0) {
            if (!boolean(c, &b->exact)) return 0;
        } else {
            return 0;
        }
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, '}');
}

int qxs_search_body_parse(const char *body, size_t len, size_t d, long long max_k,
                          long long max_nprobe, float *vec, qxs_search_body *out) {
    qxs_search_body b = {.limit = -1, .nprobe = -1, .rerank = -1, .shortlist = -1, .exact = -1, .with_vector = -1};
    qxs_js c = {body, body + len};
    int have_vector = 0, have_params = 0;
    if (!body || d == 0 || !qxs_js_eat(&c, '{')) return 0;
    do {
        char name[16];
        if (!qxs_js_name(&c, name, sizeof name)) return 0;
        if (!strcmp(name, "vector") && !have_vector) {
            if (!qxs_js_floats(&c, d, vec)) return 0;
            have_vector = 1;
        } else if ((!strcmp(name, "limit") || !strcmp(name, "top")) && b.limit < 0) {
            if (!integer_in(&c, 1, max_k, &b.limit)) return 0;
        } else if (!strcmp(name, "params") && !have_params) {
            if (!params(&c, max_k, max_nprobe, &b)) return 0;
            have_params = 1;
        } else if (!strcmp(name, "with_vector") && b.with_vector < 0) {
            if (!boolean(&c, &b.with_vector)) return 0;
        } else {
            return 0;
        }
    } while (qxs_js_eat(&c, ','));
    if (!qxs_js_eat(&c, '}') || !have_vector) return 0;
    qxs_js_ws(&c);
    if (c.p != c.end) return 0;
    *out = b;
    return 1;
}
