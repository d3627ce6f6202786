/* tests/upsert_agree.h — the agreement check between the streaming upsert
 * parser (server/upsert_body.c) and the jansson reading of the same body
 * that the upsert endpoint used before it (and still uses for whatever the
 * parser declines). Shared by tests/test_server.c and the fuzz target
 * server/fuzz/fuzz_api.c ('U'); the includer provides server/upsert_body.h,
 * server/pointid_json.h and <jansson.h>.
 *
 * upsert_agree(body, len, d): -1 when the parser declines; 1 when it accepts
 * and jansson (flags 0, as the endpoint parses; a duplicate member is then
 * the last one, the parser declines those outside payloads) reads the same
 * points: the same count, ids, the
 * same float bits for every vector element, equal payloads (absent, null and
 * {} all meaning none); 0 when it accepts but they differ (a bug). */
#ifndef QX_TEST_UPSERT_AGREE_H
#define QX_TEST_UPSERT_AGREE_H

#include <float.h>
#include <math.h>
#include <string.h>

static int upsert_agree_payload(json_t *fast, json_t *ref) {
    int fast_none = !fast || (json_is_object(fast) && json_object_size(fast) == 0);
    int ref_none = !ref || json_is_null(ref) || (json_is_object(ref) && json_object_size(ref) == 0);
    if (fast_none || ref_none) return fast_none && ref_none;
    return json_is_object(ref) && json_equal(fast, ref);
}

static int upsert_agree(const char *body, size_t len, size_t d) {
    qxs_upsert_body ub;
    if (!qxs_upsert_body_parse(body, len, d, 65536, &ub)) return -1;
    int ok = 0;
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    json_t *pts = j ? json_object_get(j, "points") : NULL, *batch = j ? json_object_get(j, "batch") : NULL;
    json_t *ids = NULL, *vecs = NULL, *pls = NULL;
    if (!json_is_object(j) || json_object_size(j) != 1 || (!pts == !batch)) goto out;
    if (pts) {
        if (!json_is_array(pts) || json_array_size(pts) != ub.n) goto out;
    } else {
        ids = json_object_get(batch, "ids");
        vecs = json_object_get(batch, "vectors");
        pls = json_object_get(batch, "payloads");
        if (!json_is_array(ids) || !json_is_array(vecs) || json_array_size(ids) != ub.n ||
            json_array_size(vecs) != ub.n)
            goto out;
        if (pls && !json_is_null(pls) && (!json_is_array(pls) || json_array_size(pls) != ub.n)) goto out;
        if (json_is_null(pls)) pls = NULL;
    }
    for (size_t i = 0; i < ub.n; i++) {
        json_t *idv, *vv, *plj;
        if (pts) {
            json_t *p = json_array_get(pts, i);
            idv = json_object_get(p, "id");
            vv = json_object_get(p, "vector");
            plj = json_object_get(p, "payload");
        } else {
            idv = json_array_get(ids, i);
            vv = json_array_get(vecs, i);
            plj = pls ? json_array_get(pls, i) : NULL;
        }
        qxs_pid pid;
        char err[128];
        if (qxs_pid_from_json(idv, &pid, err, sizeof err) || !qxs_pid_eq(&pid, &ub.ids[i])) goto out;
        if (!json_is_array(vv) || json_array_size(vv) != d) goto out;
        for (size_t k = 0; k < d; k++) {
            json_t *x = json_array_get(vv, k);
            double f64 = json_number_value(x);
            float f = (float)f64;
            if (!json_is_number(x) || !isfinite(f64) || fabs(f64) > FLT_MAX || memcmp(&f, &ub.x[i * d + k], sizeof f))
                goto out;
        }
        if (!upsert_agree_payload(ub.payload[i], plj)) goto out;
    }
    ok = 1;
out:
    json_decref(j);
    qxs_upsert_body_free(&ub);
    return ok;
}

#endif
