/* tests/test_filter.c — point ids, the filter parser, the filter evaluator
 * and the payload indexes of the server (server/pointid*.c, filter*.c,
 * payload_index.c).
 *
 * The evaluator is checked against a reference written differently: it
 * enumerates every leaf of a payload with its path (array steps dropped)
 * and reads the filter straight from its JSON, so the parser is under test
 * too. Payloads and filters are generated from a fixed seed. The payload
 * indexes are checked against brute force after random writes, and a filter
 * answered through indexes must agree with the same filter on payloads.
 * The server sources are compiled in directly (as in test_server.c). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "../server/filter_eval.c"
#include "../server/filter_parse.c"
#include "../server/payload_index.c"
#include "../server/pointid.c"
#include "../server/pointid_json.c"

/* ---- point ids -------------------------------------------------------------- */

static void test_pid_parse_format(void **state) {
    (void)state;
    qxs_pid p, q;
    char buf[QXS_PID_STRLEN];
    assert_true(qxs_pid_parse("0", 1, &p));
    assert_int_equal(p.kind, QXS_PID_U64);
    assert_true(qxs_pid_parse("9223372036854775807", 19, &p));
    assert_true(p.lo == 9223372036854775807ull);
    assert_false(qxs_pid_parse("9223372036854775808", 19, &p)); /* above 2^63-1 */
    assert_false(qxs_pid_parse("-1", 2, &p));
    assert_false(qxs_pid_parse("", 0, &p));
    const char *canon = "550e8400-e29b-41d4-a716-446655440000";
    const char *forms[] = {"550e8400-e29b-41d4-a716-446655440000", "550E8400-E29B-41D4-A716-446655440000",
                           "550e8400e29b41d4a716446655440000", "{550e8400-e29b-41d4-a716-446655440000}",
                           "urn:uuid:550e8400-e29b-41d4-a716-446655440000"};
    for (size_t i = 0; i < 5; i++) {
        assert_true(qxs_pid_parse(forms[i], strlen(forms[i]), &p));
        assert_int_equal(p.kind, QXS_PID_UUID);
        assert_int_equal(strlen(qxs_pid_format(&p, buf)), 36);
        assert_string_equal(buf, canon);
        if (i) assert_true(qxs_pid_eq(&p, &q));
        q = p;
    }
    const char *bad[] = {"550e8400-e29b-41d4-a716-44665544000",  "550e8400-e29b-41d4-a716-4466554400000",
                         "550e8400-e29b-41d4-a716_446655440000", "550e8400-e29b-41d4-a716-44665544000g",
                         "550e8400e-29b-41d4-a716-446655440000", "{550e8400-e29b-41d4-a716-446655440000",
                         "not-a-uuid"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(qxs_pid_parse(bad[i], strlen(bad[i]), &p));
    /* order: integers first, then UUIDs by value (= by canonical text) */
    qxs_pid a = qxs_pid_u64(UINT64_C(9223372036854775807)), b, c;
    assert_true(qxs_pid_parse("00000000-0000-0000-0000-000000000001", 36, &b));
    assert_true(qxs_pid_parse("00000000-0000-0001-0000-000000000000", 36, &c));
    assert_true(qxs_pid_cmp(&a, &b) < 0);
    assert_true(qxs_pid_cmp(&b, &c) < 0);
    assert_true(qxs_pid_hash(&b) != qxs_pid_hash(&c));
}

static void test_pid_json(void **state) {
    (void)state;
    qxs_pid p;
    char err[200];
    json_t *j = json_string("550E8400-E29B-41D4-A716-446655440000");
    assert_int_equal(qxs_pid_from_json(j, &p, err, sizeof err), 0);
    json_t *o = qxs_pid_to_json(&p);
    assert_string_equal(json_string_value(o), "550e8400-e29b-41d4-a716-446655440000");
    json_decref(o), json_decref(j);
    j = json_integer(42);
    assert_int_equal(qxs_pid_from_json(j, &p, err, sizeof err), 0);
    o = qxs_pid_to_json(&p);
    assert_true(json_is_integer(o) && json_integer_value(o) == 42);
    json_decref(o), json_decref(j);
    json_t *bad[] = {json_integer(-1), json_string("42"), json_string("zzz"), json_real(1.0), json_null(),
                     json_true()};
    for (size_t i = 0; i < 6; i++) {
        err[0] = 0;
        assert_int_equal(qxs_pid_from_json(bad[i], &p, err, sizeof err), -1);
        assert_true(strlen(err) > 10);
        json_decref(bad[i]);
    }
}

/* ---- parser errors ---------------------------------------------------------- */

static void test_parse_errors(void **state) {
    (void)state;
    static const struct {
        const char *json, *path;
    } cases[] = {
        {"{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1}},{\"key\":\"b\",\"match\":{\"value\":2}},"
         "{\"key\":\"c\",\"range\":{\"gt\":\"x\"}}]}", "filter.must[2].range.gt: "},
        {"{\"must\":[{\"key\":\"a\",\"range\":{\"gt\":1,\"foo\":2}}]}", "filter.must[0].range.foo: "},
        {"{\"should\":{\"key\":\"a\",\"match\":{\"valu\":1}}}", "filter.should.match.valu: "},
        {"{\"must_not\":[{\"key\":\"a\",\"match\":{\"any\":[\"x\",1]}}]}", "filter.must_not[0].match.any[1]: "},
        {"{\"must\":[{\"has_id\":[1,\"nope\"]}]}", "filter.must[0].has_id[1]: "},
        {"{\"must\":[{\"has_id\":[-3]}]}", "filter.must[0].has_id[0]: "},
        {"{\"must\":[{\"must\":[{\"key\":\"a..b\",\"match\":{\"value\":1}}]}]}", "filter.must[0].must[0].key: "},
        {"{\"musts\":[]}", "filter.musts: "},
        {"{\"must\":[{\"is_empty\":{\"field\":\"a\"}}]}", "filter.must[0].is_empty.field: "},
        {"{\"must\":[{\"is_null\":{}}]}", "filter.must[0].is_null: "},
        {"{\"must\":[{\"key\":\"a\"}]}", "filter.must[0]: "},
        {"{\"must\":[{\"key\":\"a\",\"geo_radius\":{}}]}", "filter.must[0].geo_radius: "},
        {"{\"min_should\":{\"conditions\":[],\"min_count\":-1}}", "filter.min_should.min_count: "},
        {"{\"min_should\":{\"conditions\":[{\"x\":1}],\"min_count\":1}}", "filter.min_should.conditions[0]: "},
        {"{\"must\":[{\"nested\":{\"key\":\"t\",\"filter\":{\"must\":[{\"has_id\":[1]}]}}}]}",
         "filter.must[0].nested.filter: "},
        {"{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1.5}}]}", "filter.must[0].match.value: "},
        {"{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1},\"range\":{}}]}", "filter.must[0].range: "},
        {"{\"must\":5}", "filter.must: "},
        {"[1]", "filter: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_error_t je;
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, &je);
        assert_non_null(j);
        qxs_filter *f = (qxs_filter *)1;
        char err[512] = "";
        int rc = qxs_filter_parse(j, "filter", &f, err, sizeof err);
        if (rc != -1 || strncmp(err, cases[i].path, strlen(cases[i].path)))
            fail_msg("case %zu: rc %d, error '%s', expected prefix '%s'", i, rc, err, cases[i].path);
        assert_null(f);
        json_decref(j);
    }
    /* null = no filter; a deep but valid filter parses */
    qxs_filter *f = (qxs_filter *)1;
    char err[256];
    assert_int_equal(qxs_filter_parse(json_null(), "filter", &f, err, sizeof err), 0);
    assert_null(f);
    json_t *deep = json_loads("{\"must\":[{\"should\":[{\"must_not\":[{\"key\":\"a[].b\",\"match\":{\"text\":\"x\"}}]}]}]}",
                              0, NULL);
    assert_int_equal(qxs_filter_parse(deep, "filter", &f, err, sizeof err), 0);
    assert_non_null(f);
    qxs_filter_free(f);
    json_decref(deep);
    /* too deep */
    char big[4096] = "", err2[2048];
    for (int i = 0; i < 40; i++) strcat(big, "{\"must\":[");
    strcat(big, "{\"has_id\":[1]}");
    for (int i = 0; i < 40; i++) strcat(big, "]}");
    json_t *jb = json_loads(big, 0, NULL);
    assert_non_null(jb);
    assert_int_equal(qxs_filter_parse(jb, "filter", &f, err2, sizeof err2), -1);
    assert_non_null(strstr(err2, "deeper"));
    json_decref(jb);
}

/* ---- reference evaluator --------------------------------------------------------- */

/* every leaf of a payload: its path with array steps dropped ("tags.name"),
 * null-ness, and the value */
typedef struct rleaf {
    char path[64];
    const json_t *v;
} rleaf;
typedef struct rleaves {
    rleaf a[256];
    int n;
} rleaves;

static void enum_leaves(const json_t *v, const char *path, rleaves *out) {
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) enum_leaves(e, path, out); /* no nested arrays generated */
        return;
    }
    if (path[0] && out->n < 256) {
        snprintf(out->a[out->n].path, sizeof out->a[0].path, "%s", path);
        out->a[out->n++].v = v;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c) {
            char p[64];
            snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "." : "", k);
            enum_leaves(c, p, out);
        }
    }
}

/* the condition's key with "[]" removed */
static void norm_key(const char *k, char *out) {
    size_t o = 0;
    for (size_t i = 0; k[i] && o < 63; i++) {
        if (k[i] == '[' && k[i + 1] == ']') {
            i++;
            continue;
        }
        out[o++] = k[i];
    }
    out[o] = 0;
}

static int ref_scalar_eq(const json_t *a, const json_t *b) {
    if (json_is_string(a) && json_is_string(b)) return !strcmp(json_string_value(a), json_string_value(b));
    if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
    if (json_is_boolean(a) && json_is_boolean(b)) return json_is_true(a) == json_is_true(b);
    return 0;
}

static int ref_filter(const json_t *f, uint64_t id, const json_t *payload);

static int ref_cond(const json_t *c, uint64_t id, const json_t *payload) {
    json_t *x;
    if (json_object_size(c) == 0 || json_object_get(c, "must") || json_object_get(c, "should") || json_object_get(c, "must_not") ||
        json_object_get(c, "min_should"))
        return ref_filter(c, id, payload);
    if ((x = json_object_get(c, "has_id"))) {
        size_t i;
        json_t *e;
        json_array_foreach(x, i, e) if ((uint64_t)json_integer_value(e) == id) return 1;
        return 0;
    }
    rleaves L;
    L.n = 0;
    if (payload) enum_leaves(payload, "", &L);
    const json_t *kc = json_object_get(c, "is_empty") ? json_object_get(c, "is_empty")
                       : json_object_get(c, "is_null") ? json_object_get(c, "is_null")
                       : json_object_get(c, "nested")  ? json_object_get(c, "nested")
                                                       : c;
    char key[64];
    norm_key(json_string_value(json_object_get(kc, "key")), key);
    if (json_object_get(c, "nested")) {
        /* elements of the array at key: objects whose own leaves pass */
        const json_t *arr = payload;
        char *save, kk[64];
        snprintf(kk, sizeof kk, "%s", key);
        for (char *t = strtok_r(kk, ".", &save); t && arr; t = strtok_r(NULL, ".", &save))
            arr = json_object_get(arr, t);
        if (!json_is_array(arr)) return 0;
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) if (json_is_object(e) && ref_filter(json_object_get(kc, "filter"), id, e)) return 1;
        return 0;
    }
    int nonnull = 0, nulls = 0, hit = 0;
    json_t *m = json_object_get(c, "match"), *r = json_object_get(c, "range");
    for (int i = 0; i < L.n; i++) {
        if (strcmp(L.a[i].path, key)) continue;
        const json_t *v = L.a[i].v;
        if (json_is_null(v)) {
            nulls++;
            continue;
        }
        nonnull++;
        if (m && json_object_get(m, "value")) hit |= ref_scalar_eq(v, json_object_get(m, "value"));
        if (m && (json_object_get(m, "any") || json_object_get(m, "except"))) {
            json_t *set = json_object_get(m, "any") ? json_object_get(m, "any") : json_object_get(m, "except");
            int in = 0;
            size_t j;
            json_t *e;
            json_array_foreach(set, j, e) in |= ref_scalar_eq(v, e);
            hit |= json_object_get(m, "any") ? in : !in;
        }
        if (m && json_object_get(m, "text") && json_is_string(v))
            hit |= strstr(json_string_value(v), json_string_value(json_object_get(m, "text"))) != NULL;
        if (r && json_is_number(v)) {
            double d = json_number_value(v);
            json_t *b;
            int ok = 1;
            if ((b = json_object_get(r, "gt"))) ok &= d > json_number_value(b);
            if ((b = json_object_get(r, "gte"))) ok &= d >= json_number_value(b);
            if ((b = json_object_get(r, "lt"))) ok &= d < json_number_value(b);
            if ((b = json_object_get(r, "lte"))) ok &= d <= json_number_value(b);
            hit |= ok;
        }
    }
    if (json_object_get(c, "is_empty")) return nonnull == 0;
    if (json_object_get(c, "is_null")) return nulls > 0;
    if (m && json_object_get(m, "except")) return nonnull == 0 || hit;
    return hit;
}

static int ref_clause(const json_t *cl, int all, uint64_t id, const json_t *payload, int *count) {
    size_t i;
    json_t *c;
    *count = 0;
    json_array_foreach(cl, i, c) *count += ref_cond(c, id, payload);
    return all ? *count == (int)json_array_size(cl) : *count > 0;
}

static int ref_filter(const json_t *f, uint64_t id, const json_t *payload) {
    json_t *x;
    int n;
    if ((x = json_object_get(f, "must")) && !ref_clause(x, 1, id, payload, &n)) return 0;
    if ((x = json_object_get(f, "must_not")) && (ref_clause(x, 0, id, payload, &n), n > 0)) return 0;
    if ((x = json_object_get(f, "should")) && json_array_size(x) && !ref_clause(x, 0, id, payload, &n)) return 0;
    if ((x = json_object_get(f, "min_should"))) {
        ref_clause(json_object_get(x, "conditions"), 0, id, payload, &n);
        if (n < json_integer_value(json_object_get(x, "min_count"))) return 0;
    }
    return 1;
}

/* ---- generators ---------------------------------------------------------------- */

static const char *const COLORS[] = {"red", "green", "blue", "teal", "amber"};
static const char *const WORDS[] = {"alpha", "beta", "gamma", "delta"};

static json_t *gen_payload(tu_rng *r) {
    json_t *p = json_object();
    uint64_t u = tu_rng_next(r);
    if (u % 7 == 0) return p;                       /* empty payload */
    switch (u % 5) {                                /* color: keyword, sometimes an array, null */
    case 0: break;
    case 1: json_object_set_new(p, "color", json_null()); break;
    case 2: {
        json_t *a = json_array();
        for (uint64_t i = 0; i < tu_rng_next(r) % 3; i++) json_array_append_new(a, json_string(COLORS[tu_rng_next(r) % 5]));
        json_object_set_new(p, "color", a);
        break;
    }
    default: json_object_set_new(p, "color", json_string(COLORS[tu_rng_next(r) % 5]));
    }
    if (tu_rng_next(r) % 4) json_object_set_new(p, "n", json_integer((json_int_t)(tu_rng_next(r) % 20) - 5));
    if (tu_rng_next(r) % 3 == 0) json_object_set_new(p, "score", json_real(tu_rng_uniform(r) * 10 - 2));
    else if (tu_rng_next(r) % 2) json_object_set_new(p, "score", json_integer((json_int_t)(tu_rng_next(r) % 8)));
    if (tu_rng_next(r) % 3) json_object_set_new(p, "flag", json_boolean(tu_rng_next(r) % 2));
    if (tu_rng_next(r) % 2) {
        json_t *m = json_object();
        json_object_set_new(m, "lang", json_string(tu_rng_next(r) % 2 ? "en" : "fr"));
        if (tu_rng_next(r) % 2) json_object_set_new(m, "year", json_integer(1990 + (json_int_t)(tu_rng_next(r) % 40)));
        json_object_set_new(p, "meta", m);
    }
    if (tu_rng_next(r) % 2) {
        json_t *t = json_array();
        for (uint64_t i = 0; i < tu_rng_next(r) % 4; i++)
            json_array_append_new(t, json_pack("{s:s, s:I}", "name", WORDS[tu_rng_next(r) % 4], "w",
                                               (json_int_t)(tu_rng_next(r) % 10)));
        json_object_set_new(p, "tags", t);
    }
    if (tu_rng_next(r) % 2) {
        char s[64];
        snprintf(s, sizeof s, "%s and %s", WORDS[tu_rng_next(r) % 4], WORDS[tu_rng_next(r) % 4]);
        json_object_set_new(p, "text", json_string(s));
    }
    return p;
}

static const char *const KEYS_STR[] = {"color", "meta.lang", "tags[].name", "tags.name", "text"};
static const char *const KEYS_NUM[] = {"n", "score", "meta.year", "tags[].w"};

static json_t *gen_filter(tu_rng *r, int depth, int nested_ok);

static json_t *gen_cond(tu_rng *r, int depth, int nested_ok) {
    uint64_t k = tu_rng_next(r) % (depth > 0 ? 11 : 10);
    const char *ks = KEYS_STR[tu_rng_next(r) % 5], *kn = KEYS_NUM[tu_rng_next(r) % 4];
    switch (k) {
    case 0: return json_pack("{s:s, s:{s:s}}", "key", ks, "match", "value", tu_rng_next(r) % 2 ? COLORS[tu_rng_next(r) % 5] : WORDS[tu_rng_next(r) % 4]);
    case 1: return json_pack("{s:s, s:{s:I}}", "key", kn, "match", "value", (json_int_t)(tu_rng_next(r) % 12) - 3);
    case 2: return json_pack("{s:s, s:{s:[s,s]}}", "key", ks, "match", tu_rng_next(r) % 2 ? "any" : "except",
                             COLORS[tu_rng_next(r) % 5], WORDS[tu_rng_next(r) % 4]);
    case 3: return json_pack("{s:s, s:{s:[I,I]}}", "key", kn, "match", tu_rng_next(r) % 2 ? "any" : "except",
                             (json_int_t)(tu_rng_next(r) % 10), (json_int_t)(tu_rng_next(r) % 10));
    case 4: return json_pack("{s:s, s:{s:s}}", "key", ks, "match", "text", WORDS[tu_rng_next(r) % 4] + tu_rng_next(r) % 3);
    case 5: {
        json_t *rg = json_object();
        static const char *const b[] = {"gt", "gte", "lt", "lte"};
        for (int i = 0; i < 4; i++)
            if (tu_rng_next(r) % 2) json_object_set_new(rg, b[i], json_real(tu_rng_uniform(r) * 30 - 5 + (tu_rng_next(r) % 2 ? 1990 : 0)));
        return json_pack("{s:s, s:o}", "key", kn, "range", rg);
    }
    case 6: return json_pack("{s:[I,I,I]}", "has_id", (json_int_t)(tu_rng_next(r) % 50), (json_int_t)(tu_rng_next(r) % 50), (json_int_t)(tu_rng_next(r) % 50));
    case 7: return json_pack("{s:{s:s}}", "is_empty", "key", tu_rng_next(r) % 2 ? ks : kn);
    case 8: return json_pack("{s:{s:s}}", "is_null", "key", tu_rng_next(r) % 2 ? "color" : kn);
    case 9:
        if (nested_ok) {
            json_t *sub = json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:I}}]}", "must", "key", "name", "match", "value",
                                    WORDS[tu_rng_next(r) % 4], "key", "w", "range", "gte", (json_int_t)(tu_rng_next(r) % 10));
            return json_pack("{s:{s:s, s:o}}", "nested", "key", "tags", "filter", sub);
        }
        return json_pack("{s:s, s:{s:b}}", "key", "flag", "match", "value", (int)(tu_rng_next(r) % 2));
    default: return gen_filter(r, depth - 1, nested_ok);
    }
}

static json_t *gen_filter(tu_rng *r, int depth, int nested_ok) {
    json_t *f = json_object();
    static const char *const cl[] = {"must", "should", "must_not"};
    for (int i = 0; i < 3; i++) {
        if (tu_rng_next(r) % 2) continue;
        json_t *a = json_array();
        for (uint64_t j = 0; j < 1 + tu_rng_next(r) % 3; j++) json_array_append_new(a, gen_cond(r, depth, nested_ok));
        json_object_set_new(f, cl[i], a);
    }
    if (tu_rng_next(r) % 5 == 0) {
        json_t *a = json_array();
        for (uint64_t j = 0; j < 1 + tu_rng_next(r) % 3; j++) json_array_append_new(a, gen_cond(r, depth, nested_ok));
        json_object_set_new(f, "min_should", json_pack("{s:o, s:I}", "conditions", a, "min_count", (json_int_t)(tu_rng_next(r) % 3)));
    }
    return f;
}

#define NPTS 400

static void test_eval_vs_reference(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 20261203);
    json_t *pl[NPTS];
    for (int i = 0; i < NPTS; i++) pl[i] = gen_payload(&r);
    long passes = 0, total = 0;
    for (int t = 0; t < 600; t++) {
        json_t *fj = gen_filter(&r, 2, 1);
        qxs_filter *f = NULL;
        char err[512];
        if (qxs_filter_parse(fj, "filter", &f, err, sizeof err)) fail_msg("filter %d: %s", t, err);
        for (int i = 0; i < NPTS; i++) {
            qxs_pid id = qxs_pid_u64((uint64_t)i);
            qxs_fpoint p = {.id = &id, .key = i, .payload = pl[i]};
            int got = qxs_filter_match(f, &p), want = ref_filter(fj, (uint64_t)i, pl[i]);
            if (got != want) {
                char *fs = json_dumps(fj, JSON_COMPACT), *ps = json_dumps(pl[i], JSON_COMPACT);
                fail_msg("filter %d point %d: got %d want %d\nfilter %s\npayload %s", t, i, got, want, fs, ps);
            }
            passes += got;
            total++;
        }
        qxs_filter_free(f);
        json_decref(fj);
    }
    /* the generated cases are neither all-pass nor all-fail */
    assert_true(passes > total / 10 && passes < total * 9 / 10);
    for (int i = 0; i < NPTS; i++) json_decref(pl[i]);
}

/* lazily loaded payloads: loaded once, only when needed */
static int loads;
static json_t *load_fn(void *ctx, int64_t key) {
    loads++;
    json_t **pl = ctx;
    return pl[key] ? json_incref(pl[key]) : NULL;
}

typedef struct bind_ctx {
    qxs_pindex **ix;
    int nix;
    int *bound;
} bind_ctx;

/* bind like the planner: the first index that answers */
static void bind(void *ctx, qxs_cond *c) {
    bind_ctx *b = ctx;
    c->pidx = NULL;
    for (int k = 0; k < b->nix; k++)
        if (qxs_pindex_answers(b->ix[k], c)) {
            c->pidx = b->ix[k];
            (*b->bound)++;
            break;
        }
}

static void test_indexes_agree(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    json_t *pl[NPTS];
    for (int i = 0; i < NPTS; i++) pl[i] = gen_payload(&r);
    static const struct {
        const char *field;
        int type;
    } defs[] = {{"color", QXS_PI_KEYWORD}, {"meta.year", QXS_PI_INTEGER}, {"score", QXS_PI_FLOAT},
                {"flag", QXS_PI_BOOL}, {"meta.lang", QXS_PI_KEYWORD}, {"n", QXS_PI_INTEGER}, {"tags[].name", QXS_PI_KEYWORD}};
    enum { NIX = 7 };
    qxs_pindex *ix[NIX];
    char err[256];
    for (int k = 0; k < NIX; k++) {
        assert_int_equal(qxs_pindex_new(&ix[k], defs[k].field, defs[k].type, err, sizeof err), 0);
        for (int i = 0; i < NPTS; i++) {
            if (qxs_pindex_check(ix[k], pl[i], err, sizeof err)) fail_msg("%s", err);
            /* write twice, with a removal between: stale postings must not count */
            assert_int_equal(qxs_pindex_set(ix[k], i, pl[(i * 7) % NPTS]), 0);
            if (i % 3 == 0) qxs_pindex_remove(ix[k], i);
            assert_int_equal(qxs_pindex_set(ix[k], i, pl[i]), 0);
        }
        assert_true(qxs_pindex_bytes(ix[k]) > 0);
    }
    int bound = 0;
    for (int t = 0; t < 600; t++) {
        json_t *fj = gen_filter(&r, 2, 0);
        qxs_filter *f = NULL;
        assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
        for (int pass = 0; pass < 2; pass++) {
            bind_ctx b = {ix, NIX, &bound};
            if (pass == 1) qxs_filter_walk(f, bind, &b);
            for (int i = 0; i < NPTS; i++) {
                qxs_pid id = qxs_pid_u64((uint64_t)i);
                qxs_fpoint p = {.id = &id, .key = i, .load = load_fn, .load_ctx = pl};
                int got = qxs_filter_match(f, &p);
                qxs_fpoint_done(&p);
                if (got != ref_filter(fj, (uint64_t)i, pl[i])) {
                    char *fs = json_dumps(fj, JSON_COMPACT), *ps = json_dumps(pl[i], JSON_COMPACT);
                    fail_msg("indexed=%d filter %d point %d: got %d\nfilter %s\npayload %s", pass, t, i, got, fs, ps);
                }
            }
        }
        qxs_filter_free(f);
        json_decref(fj);
    }
    assert_true(bound > 300);
    /* a filter that only touches indexed fields never loads a payload */
    json_t *fj = json_loads("{\"must\":[{\"key\":\"color\",\"match\":{\"any\":[\"red\",\"blue\"]}},"
                            "{\"key\":\"meta.year\",\"range\":{\"gte\":2000}}]}", 0, NULL);
    qxs_filter *f;
    assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
    f->must[0].pidx = ix[0];
    f->must[1].pidx = ix[1];
    loads = 0;
    for (int i = 0; i < NPTS; i++) {
        qxs_pid id = qxs_pid_u64((uint64_t)i);
        qxs_fpoint p = {.id = &id, .key = i, .load = load_fn, .load_ctx = pl};
        assert_int_equal(qxs_filter_match(f, &p), ref_filter(fj, (uint64_t)i, pl[i]));
        qxs_fpoint_done(&p);
    }
    assert_int_equal(loads, 0);
    qxs_filter_free(f);
    json_decref(fj);
    for (int k = 0; k < NIX; k++) qxs_pindex_free(ix[k]);
    for (int i = 0; i < NPTS; i++) json_decref(pl[i]);
}

/* counts and key lists against brute force after random writes */
static void collect_key(void *ctx, int64_t key) { ((uint8_t *)ctx)[key]++; }

static void test_index_counts(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 99);
    enum { N = 3000 };
    static json_t *pl[N];
    qxs_pindex *kw, *in;
    char err[256];
    assert_int_equal(qxs_pindex_new(&kw, "k", QXS_PI_KEYWORD, err, sizeof err), 0);
    assert_int_equal(qxs_pindex_new(&in, "v", QXS_PI_INTEGER, err, sizeof err), 0);
    for (int step = 0; step < 20000; step++) {
        int i = (int)(tu_rng_next(&r) % N);
        json_decref(pl[i]);
        pl[i] = NULL;
        if (tu_rng_next(&r) % 5) {
            char s[16];
            snprintf(s, sizeof s, "k%d", (int)(tu_rng_next(&r) % 50));
            pl[i] = json_pack("{s:s, s:I}", "k", s, "v", (json_int_t)(tu_rng_next(&r) % 1000));
            assert_int_equal(qxs_pindex_set(kw, i, pl[i]), 0);
            assert_int_equal(qxs_pindex_set(in, i, pl[i]), 0);
        } else {
            qxs_pindex_remove(kw, i);
            qxs_pindex_remove(in, i);
        }
    }
    size_t live = 0;
    for (int i = 0; i < N; i++) live += pl[i] != NULL;
    assert_int_equal(qxs_pindex_points(kw), live);
    for (int t = 0; t < 100; t++) {
        char fs[200];
        int a = (int)(tu_rng_next(&r) % 1000), b = a + (int)(tu_rng_next(&r) % 300);
        if (t % 2)
            snprintf(fs, sizeof fs, "{\"must\":[{\"key\":\"k\",\"match\":{\"any\":[\"k%d\",\"k%d\",\"nokey\"]}}]}", a % 50, b % 50);
        else snprintf(fs, sizeof fs, "{\"must\":[{\"key\":\"v\",\"range\":{\"gte\":%d,\"lt\":%d}}]}", a, b);
        json_t *fj = json_loads(fs, 0, NULL);
        qxs_filter *f;
        assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
        qxs_pindex *ix = t % 2 ? kw : in;
        assert_true(qxs_pindex_answers(ix, &f->must[0]));
        uint8_t seen[N] = {0};
        int rep = -1;
        assert_int_equal(qxs_pindex_keys(ix, &f->must[0], collect_key, seen, &rep), 0);
        assert_true(rep == 0 || rep == 1);
        long long want = 0;
        for (int i = 0; i < N; i++) {
            qxs_pid id = qxs_pid_u64((uint64_t)i);
            qxs_fpoint p = {.id = &id, .key = i, .payload = pl[i]};
            int m = pl[i] && qxs_filter_match(f, &p);
            want += m;
            if (m != (seen[i] > 0)) fail_msg("%s: key %d listed %d times, matches %d", fs, i, seen[i], m);
            if (!rep && seen[i] > 1) fail_msg("%s: key %d listed %d times, may_repeat 0", fs, i, seen[i]);
        }
        assert_int_equal(qxs_pindex_count(ix, &f->must[0]), want);
        qxs_filter_free(f);
        json_decref(fj);
    }
    /* a fresh single-valued index lists each key once and says so; one
     * point with two values in the range makes it say a key may repeat */
    {
        qxs_pindex *one;
        assert_int_equal(qxs_pindex_new(&one, "v", QXS_PI_INTEGER, err, sizeof err), 0);
        for (int i = 0; i < 100; i++) {
            json_t *pj = json_pack("{s:I}", "v", (json_int_t)i);
            assert_int_equal(qxs_pindex_set(one, i, pj), 0);
            json_decref(pj);
        }
        json_t *fj = json_loads("{\"must\":[{\"key\":\"v\",\"range\":{\"gte\":10,\"lt\":60}}]}", 0, NULL);
        qxs_filter *f;
        assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
        uint8_t seen[N] = {0};
        int rep = -1;
        assert_int_equal(qxs_pindex_keys(one, &f->must[0], collect_key, seen, &rep), 0);
        assert_int_equal(rep, 0);
        for (int i = 0; i < 100; i++) assert_int_equal(seen[i], i >= 10 && i < 60);
        json_t *two = json_pack("{s:[I,I]}", "v", (json_int_t)20, (json_int_t)30);
        assert_int_equal(qxs_pindex_set(one, 5, two), 0);
        memset(seen, 0, sizeof seen);
        assert_int_equal(qxs_pindex_keys(one, &f->must[0], collect_key, seen, &rep), 0);
        assert_int_equal(rep, 1);
        assert_int_equal(seen[5], 2);
        qxs_pindex_remove(one, 5); /* back to single values: the posting of 5 is compacted lazily */
        memset(seen, 0, sizeof seen);
        assert_int_equal(qxs_pindex_keys(one, &f->must[0], collect_key, seen, &rep), 0);
        assert_int_equal(seen[5], 0);
        json_decref(two);
        qxs_filter_free(f);
        json_decref(fj);
        qxs_pindex_free(one);
    }
    /* wrong types are refused with the field named */
    json_t *bad = json_pack("{s:I}", "k", (json_int_t)3);
    assert_int_equal(qxs_pindex_check(kw, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "'k'"));
    assert_non_null(strstr(err, "keyword"));
    json_decref(bad);
    bad = json_pack("{s:[I, f]}", "v", (json_int_t)3, 2.5);
    assert_int_equal(qxs_pindex_check(in, bad, err, sizeof err), -1);
    json_decref(bad);
    /* an emptied index frees its postings */
    for (int i = 0; i < N; i++) qxs_pindex_remove(kw, i), json_decref(pl[i]);
    assert_int_equal(qxs_pindex_points(kw), 0);
    qxs_pindex_free(kw);
    qxs_pindex_free(in);
}

static void test_uuid_index(void **state) {
    (void)state;
    qxs_pindex *ix;
    char err[256];
    assert_int_equal(qxs_pindex_new(&ix, "u", QXS_PI_UUID, err, sizeof err), 0);
    json_t *p = json_pack("{s:s}", "u", "550E8400-E29B-41D4-A716-446655440000");
    assert_int_equal(qxs_pindex_check(ix, p, err, sizeof err), 0);
    assert_int_equal(qxs_pindex_set(ix, 5, p), 0);
    json_t *bad = json_pack("{s:s}", "u", "nope");
    assert_int_equal(qxs_pindex_check(ix, bad, err, sizeof err), -1);
    json_t *fj = json_loads("{\"must\":[{\"key\":\"u\",\"match\":{\"value\":\"550e8400-e29b-41d4-a716-446655440000\"}}]}", 0, NULL);
    qxs_filter *f;
    assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
    assert_true(qxs_pindex_answers(ix, &f->must[0]));
    assert_int_equal(qxs_pindex_count(ix, &f->must[0]), 1);
    f->must[0].pidx = ix;
    qxs_pid id = qxs_pid_u64(5);
    qxs_fpoint pt = {.id = &id, .key = 5};
    assert_int_equal(qxs_filter_match(f, &pt), 1); /* canonical spelling matches through the index */
    qxs_filter_free(f);
    json_decref(fj);
    json_decref(p);
    json_decref(bad);
    qxs_pindex_free(ix);
}

/* The planner's range estimate on a field with one distinct value per point
 * (more value slots than it visits): within 10 % of the exact count at 20 %
 * and 50 %, exact below the sampling size. */
static void test_range_estimate(void **state) {
    (void)state;
    enum { N = 120000 };
    qxs_pindex *ix;
    char err[256];
    assert_int_equal(qxs_pindex_new(&ix, "n", QXS_PI_INTEGER, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        json_t *p = json_pack("{s:i}", "n", i);
        assert_int_equal(qxs_pindex_set(ix, i, p), 0);
        json_decref(p);
    }
    static const char *const fs[] = {"{\"must\":[{\"key\":\"n\",\"range\":{\"gte\":10000,\"lt\":34000}}]}",
                                     "{\"must\":[{\"key\":\"n\",\"range\":{\"lt\":60000}}]}"};
    for (int k = 0; k < 2; k++) {
        json_t *fj = json_loads(fs[k], 0, NULL);
        qxs_filter *f;
        assert_int_equal(qxs_filter_parse(fj, "filter", &f, err, sizeof err), 0);
        long long exact = qxs_pindex_count(ix, &f->must[0]), est = qxs_pindex_estimate(ix, &f->must[0]);
        assert_int_equal(exact, k ? 60000 : 24000);
        assert_true(est > exact * 0.9 && est < exact * 1.1);
        qxs_filter_free(f);
        json_decref(fj);
    }
    qxs_pindex_free(ix);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_parse_format), cmocka_unit_test(test_pid_json),
        cmocka_unit_test(test_parse_errors),     cmocka_unit_test(test_eval_vs_reference),
        cmocka_unit_test(test_indexes_agree),    cmocka_unit_test(test_index_counts),
        cmocka_unit_test(test_uuid_index),       cmocka_unit_test(test_range_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
