/* server/search_body.h — a strict, allocation-free parser for the common
 * search body {"vector": [...], "limit": k, "params": {...}}: the hot path
 * of POST /collections/{name}/points/search. */
#ifndef QXS_SEARCH_BODY_H
#define QXS_SEARCH_BODY_H

#include <stddef.h>

typedef struct qxs_search_body {
    long long limit, nprobe, rerank, shortlist; /* -1 where the member is absent */
    int exact, with_vector;          /* -1 where absent, else 0/1 */
} qxs_search_body;

/* 1 when body (len bytes, not NUL-terminated) is a well-formed JSON object
 * whose members are "vector" (exactly d finite numbers, written to vec),
 * optionally "limit" or "top" (1..max_k), "params" (an object of "nprobe"
 * 1..max_nprobe, "rerank" 0..max_k, "shortlist" 0..10 max_k, "exact"
 * true/false) and "with_vector"
 * (true/false), each at most once. 0 for anything else — another member, a
 * null, an escape in a key, a number out of range, a wrong dimension, broken
 * JSON: the caller then parses the body with jansson, which accepts it or
 * gives the documented error, so this parser never decides an error reply. */
int qxs_search_body_parse(const char *body, size_t len, size_t d, long long max_k,
                          long long max_nprobe, float *vec, qxs_search_body *out);

#endif
