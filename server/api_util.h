/* server/api_util.h — helpers shared by the endpoint files (api.c,
 * api_points.c): replies, body and field parsing, vectors, scores, point
 * ids, payload selection and point JSON. */
#ifndef QXS_API_UTIL_H
#define QXS_API_UTIL_H

#include <jansson.h>

#include "api.h"
#include "filter.h"
#include "pointid_json.h"
#include "srv.h"

void qxs_api_fail(qxs_reply *o, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qxs_api_ok(qxs_reply *o, json_t *result);
int qxs_api_status(int qx_code);
json_t *qxs_api_body(const char *body, size_t len, qxs_reply *o, int required);
int qxs_api_int(json_t *obj, const char *key, long long lo, long long hi, long long def, long long *out,
                qxs_reply *o);
int qxs_api_bool(json_t *obj, const char *key, int def, int *out, qxs_reply *o);
void qxs_api_name_failure(qxs_reply *o, const char *what);
int qxs_api_vector(json_t *v, const qxs_coll *c, float *out, qxs_reply *o, const char *what);
int qxs_api_finish_vector(const qxs_coll *c, float *out, qxs_reply *o, const char *what);
double qxs_api_score(qxs_distance d, float dist);
json_t *qxs_api_vector_json(const float *v, size_t d);

/* api_points.c */
int qxs_api_pid(json_t *v, qxs_pid *out, qxs_reply *o, const char *what);
/* with_payload: true/false, [fields], {"include": [...]}, {"exclude": [...]} */
typedef struct qxs_psel {
    int mode; /* 0 none, 1 all, 2 include, 3 exclude */
    json_t *fields;
} qxs_psel;
int qxs_api_psel(json_t *v, int def, qxs_psel *out, qxs_reply *o);
/* {"id", ["score"], ["payload"], ["vector"]} of a point (vec NULL: no vector) */
json_t *qxs_api_point(const qxs_coll *c, const qxs_pid *id, const float *vec, const uint8_t *payload, uint32_t plen,
                      const qxs_psel *ps, const double *score);
/* "filter" of a body parsed (NULL if absent); -1 with o filled on error */
int qxs_api_filter(json_t *b, const char *key, qxs_filter **f, qxs_reply *o);

void qxs_api_upsert(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o);
/* the upsert body without jansson; 0 when declined (then qxs_api_upsert) */
int qxs_api_upsert_fast(qxs_server *s, qxs_coll *c, const char *body, size_t len, qxs_reply *o);
void qxs_api_delete(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o);
void qxs_api_retrieve(qxs_coll *c, json_t *b, qxs_reply *o);
void qxs_api_get_point(qxs_coll *c, const qxs_pid *pid, qxs_reply *o);
void qxs_api_scroll(qxs_coll *c, json_t *b, qxs_reply *o);
void qxs_api_count(qxs_coll *c, json_t *b, qxs_reply *o);
/* mode: 's' set, 'o' overwrite, 'd' delete keys, 'c' clear */
void qxs_api_payload(qxs_server *s, qxs_coll *c, json_t *b, int mode, qxs_reply *o);
void qxs_api_index_create(qxs_coll *c, json_t *b, qxs_reply *o);
void qxs_api_index_drop(qxs_coll *c, const char *field, qxs_reply *o);
/* api.c: POST …/points/query and …/query/batch */
void qxs_api_query(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o);
void qxs_api_query_batch(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o);
/* the search behind search and query (f: the filter, bound and planned
 * here; may be NULL): hits as point objects; NULL and o filled on error */
json_t *qxs_api_run_search(qxs_server *s, qxs_coll *c, const float *q, const qxs_search_opts *so, qxs_filter *f,
                           int wv, const qxs_psel *ps, size_t offset, const double *score_threshold, qxs_reply *o,
                           const char *what);

#endif
