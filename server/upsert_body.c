/* server/upsert_body.c — the streaming parser of upsert bodies
 * (upsert_body.h).
 *
 * Decisions:
 * 1. Why it exists: loading 128-d points over HTTP spent ~75 % of the
 *    server's time in jansson building and freeing a tree of 128 reals a
 *    point (one allocation each, a byte-at-a-time lexer, strtod with its
 *    locale look-up; perf during `qinx serve load`). Here numbers go
 *    straight into the float rows (json_scan.c) and only payload objects,
 *    which the server keeps as JSON text anyway, are parsed by jansson.
 * 2. Decline, never judge (as search_body.c): what this parser accepts, the
 *    jansson path would accept with the same ids, the same float bits and
 *    equal payloads; everything else is left to that path, so replies to
 *    odd or broken bodies (400 malformed JSON, 422 wrong dimension, NaN,
 *    duplicate members, huge numbers, ...) stay exactly what they were.
 *    Duplicate member names are declined because jansson keeps the last one.
 *    tests/test_server.c and tests/long_server_fuzz.sh ('U') check the
 *    agreement.
 * 3. A payload object is found by a string- and nesting-aware skip and then
 *    parsed alone by jansson; deeper than PAYLOAD_DEPTH is declined, so the
 *    whole-body parse (whose depth limit counts the 3 enclosing levels)
 *    could not have refused what is accepted here.
 * 4. The point arrays start at a size estimated from the body's length
 *    (a 128-d point takes ~1.5 kB as text) and double when that is short.
 */
#include "upsert_body.h"

#include <string.h>

#include "json_scan.h"
#include "pointid_text.h"
#include "qinx/alloc.h"
#include "qinx/core.h"

#define PAYLOAD_DEPTH 1024

typedef struct acc {
    size_t d, max, cap;
    size_t nids, nvec, npl; /* filled entries of each array */
    qxs_pid *ids;
    float *x;
    json_t **pl;
} acc;

/* Room for need entries in every array. */
static int grow(acc *a, size_t need) {
    if (need <= a->cap) return 1;
    if (need > a->max) return 0;
    size_t cap = a->cap ? a->cap * 2 : 64;
    if (cap < need) cap = need;
    if (cap > a->max) cap = a->max;
    size_t xb;
    if (!qx_size_mul3(cap, a->d, sizeof(float), &xb)) return 0;
    qxs_pid *ids = qx_realloc(a->ids, cap * sizeof *ids);
    if (!ids) return 0;
    a->ids = ids;
    json_t **pl = qx_realloc(a->pl, cap * sizeof *pl);
    if (!pl) return 0;
    memset(pl + a->cap, 0, (cap - a->cap) * sizeof *pl);
    a->pl = pl;
    float *x = qx_aligned_alloc(xb);
    if (!x) return 0;
    if (a->x) memcpy(x, a->x, a->nvec * a->d * sizeof(float));
    qx_aligned_free(a->x);
    a->x = x;
    a->cap = cap;
    return 1;
}

static int point_id(qxs_js *c, qxs_pid *out) {
    uint64_t v;
    const char *s;
    size_t len;
    if (qxs_js_uint63(c, &v)) {
        *out = qxs_pid_u64(v);
        return 1;
    }
    return qxs_js_plain_string(c, &s, &len) && qxs_pid_parse_uuid(s, len, out);
}

/* null (none) or an object parsed by jansson into *out. */
static int payload(qxs_js *c, json_t **out) {
    const char *s;
    size_t len;
    if (qxs_js_null(c)) return 1;
    if (!qxs_js_object_span(c, PAYLOAD_DEPTH, &s, &len)) return 0;
    *out = json_loadb(s, len, 0, NULL);
    return *out != NULL;
}

/* {"id": …, "vector": […], "payload": …} as point i. */
static int point(qxs_js *c, acc *a, size_t i) {
    int have_id = 0, have_vec = 0, have_pl = 0;
    if (!qxs_js_eat(c, '{')) return 0;
    do {
        char name[8];
        if (!qxs_js_name(c, name, sizeof name)) return 0;
        if (!strcmp(name, "id") && !have_id) {
            if (!point_id(c, &a->ids[i])) return 0;
            have_id = 1;
        } else if (!strcmp(name, "vector") && !have_vec) {
            if (!qxs_js_floats(c, a->d, a->x + i * a->d)) return 0;
            have_vec = 1;
        } else if (!strcmp(name, "payload") && !have_pl) {
            if (!payload(c, &a->pl[i])) return 0;
            have_pl = 1;
        } else {
            return 0;
        }
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, '}') && have_id && have_vec;
}

static int points(qxs_js *c, acc *a) {
    if (!qxs_js_eat(c, '[') || qxs_js_eat(c, ']')) return 0; /* an empty list is the jansson path's 422 */
    do {
        size_t i = a->nids;
        if (!grow(a, i + 1)) return 0;
        a->nids = a->nvec = a->npl = i + 1; /* entry i is freed on a decline, filled or not */
        if (!point(c, a, i)) return 0;
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, ']');
}

/* The three lists of the batch form, each counted on its own. */
static int id_list(qxs_js *c, acc *a) {
    if (!qxs_js_eat(c, '[') || qxs_js_eat(c, ']')) return 0;
    do {
        if (!grow(a, a->nids + 1) || !point_id(c, &a->ids[a->nids])) return 0;
        a->nids++;
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, ']');
}

static int vector_list(qxs_js *c, acc *a) {
    if (!qxs_js_eat(c, '[') || qxs_js_eat(c, ']')) return 0;
    do {
        if (!grow(a, a->nvec + 1) || !qxs_js_floats(c, a->d, a->x + a->nvec * a->d)) return 0;
        a->nvec++;
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, ']');
}

static int payload_list(qxs_js *c, acc *a, int *given) {
    if (qxs_js_null(c)) return 1; /* "payloads": null is no payloads */
    *given = 1;
    if (!qxs_js_eat(c, '[') || qxs_js_eat(c, ']')) return 0;
    do {
        if (!grow(a, a->npl + 1)) return 0;
        a->npl++;
        if (!payload(c, &a->pl[a->npl - 1])) return 0;
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, ']');
}

static int batch(qxs_js *c, acc *a) {
    int have_ids = 0, have_vecs = 0, have_pls = 0, pls_given = 0;
    if (!qxs_js_eat(c, '{')) return 0;
    do {
        char name[16];
        if (!qxs_js_name(c, name, sizeof name)) return 0;
        if (!strcmp(name, "ids") && !have_ids) {
            if (!id_list(c, a)) return 0;
            have_ids = 1;
        } else if (!strcmp(name, "vectors") && !have_vecs) {
            if (!vector_list(c, a)) return 0;
            have_vecs = 1;
        } else if (!strcmp(name, "payloads") && !have_pls) {
            if (!payload_list(c, a, &pls_given)) return 0;
            have_pls = 1;
        } else {
            return 0;
        }
    } while (qxs_js_eat(c, ','));
    return qxs_js_eat(c, '}') && have_ids && have_vecs && a->nids == a->nvec && (!pls_given || a->npl == a->nids);
}

void qxs_upsert_body_free(qxs_upsert_body *b) {
    if (!b) return;
    for (size_t i = 0; b->payload && i < b->n; i++) json_decref(b->payload[i]);
    qx_free(b->payload);
    qx_free(b->ids);
    qx_aligned_free(b->x);
    memset(b, 0, sizeof *b);
}

int qxs_upsert_body_parse(const char *body, size_t len, size_t d, size_t max_points, qxs_upsert_body *out) {
    memset(out, 0, sizeof *out);
    if (!body || d == 0 || max_points == 0) return 0;
    acc a = {.d = d, .max = max_points};
    size_t est = len / (d * 12 + 16) + 1; /* decision 4 */
    qxs_js c = {body, body + len};
    int ok = grow(&a, est < max_points ? est : max_points) && qxs_js_eat(&c, '{');
    if (ok) {
        char name[8];
        ok = qxs_js_name(&c, name, sizeof name);
        if (ok && !strcmp(name, "points")) ok = points(&c, &a);
        else if (ok && !strcmp(name, "batch")) ok = batch(&c, &a);
        else ok = 0;
        ok = ok && qxs_js_eat(&c, '}') && qxs_js_at_end(&c);
    }
    size_t filled = a.npl > a.nids ? a.npl : a.nids; /* payload entries to release on a decline */
    qxs_upsert_body b = {.n = ok ? a.nids : filled, .ids = a.ids, .x = a.x, .payload = a.pl};
    if (!ok) {
        qxs_upsert_body_free(&b);
        return 0;
    }
    *out = b;
    return 1;
}
