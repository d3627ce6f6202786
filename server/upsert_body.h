/* server/upsert_body.h — a strict streaming parser for the upsert body of
 * PUT /collections/{name}/points: the hot path of loading. It reads ids and
 * vectors without building a JSON tree; only payload objects go to jansson.
 *
 * Accepted shapes (Qdrant's), members in any order, each at most once:
 *   {"points": [{"id": ID, "vector": [d numbers], "payload": {…}|null}, …]}
 *   {"batch": {"ids": [ID, …], "vectors": [[d numbers], …],
 *              "payloads": [{…}|null, …]|null}}
 * ID: an integer 0..2^63-1 or a UUID string (qxs_pid_parse_uuid).
 * Anything else — another member, a named vector, an empty list, more than
 * max_points points, unequal batch lengths, a number it does not read exactly
 * (json_scan.h), a wrong dimension, broken JSON — is declined: the caller
 * then parses the body with jansson, which accepts it or gives the
 * documented error, so this parser never decides an error reply. */
#ifndef QXS_UPSERT_BODY_H
#define QXS_UPSERT_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "pointid.h"

typedef struct qxs_upsert_body {
    size_t n;         /* points, in body order (duplicates kept) */
    qxs_pid *ids;     /* n (qx_malloc) */
    float *x;         /* n x d, each number rounded to float as the jansson
                       * path rounds it (qx_aligned_alloc); not yet checked or
                       * normalised (qxs_api_finish_vector) */
    json_t **payload; /* n (qx_calloc): NULL where absent or null; owned */
} qxs_upsert_body;

/* 1 and *out filled (free with qxs_upsert_body_free) when body (len bytes,
 * no NUL inside) is of the accepted shapes with 1..max_points points of
 * dimension d; 0 otherwise (also when out of memory), with *out empty. */
int qxs_upsert_body_parse(const char *body, size_t len, size_t d, size_t max_points, qxs_upsert_body *out);

/* NULL-safe; leaves *b empty. */
void qxs_upsert_body_free(qxs_upsert_body *b);

#endif
