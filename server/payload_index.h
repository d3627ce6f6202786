/* server/payload_index.h — in-memory payload indexes (Qdrant's keyword,
 * integer, float, bool and uuid field indexes) for one field of one
 * collection.
 *
 * An index maps the store's row key of each point to the non-null leaf
 * values of its field (the forward side, which answers filter conditions
 * without parsing payloads) and each distinct value to the points that hold
 * it (the inverted side, which gives counts for the planner and the points
 * that pass a selective condition). Not thread-safe: writes under the
 * collection's write lock, reads under its read lock.
 */
#ifndef QXS_PAYLOAD_INDEX_H
#define QXS_PAYLOAD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "filter.h"

enum { QXS_PI_KEYWORD = 1, QXS_PI_INTEGER, QXS_PI_FLOAT, QXS_PI_BOOL, QXS_PI_UUID };

typedef struct qxs_pindex qxs_pindex;

/* "keyword", "integer", "float", "bool", "uuid" -> type, or 0. */
int qxs_pindex_type_parse(const char *name);
const char *qxs_pindex_type_name(int type);

/* New empty index of field (a key path, filter.h) and type; 0 or -1 (err). */
int qxs_pindex_new(qxs_pindex **out, const char *field, int type, char *err, size_t errcap);
void qxs_pindex_free(qxs_pindex *ix);
const char *qxs_pindex_field(const qxs_pindex *ix);
int qxs_pindex_type(const qxs_pindex *ix);

/* Does every non-null value of the field in payload fit the index type?
 * 0, or -1 with err ("payload field 'n': \"x\" is not an integer (the field
 * has an integer index)"). payload may be NULL. */
int qxs_pindex_check(const qxs_pindex *ix, const json_t *payload, char *err, size_t errcap);
/* Replace key's values by those of payload (NULL or none: key leaves the
 * index). Call qxs_pindex_check first: values of the wrong type are skipped.
 * 0 or QX_ENOMEM. */
int qxs_pindex_set(qxs_pindex *ix, int64_t key, const json_t *payload);
void qxs_pindex_remove(qxs_pindex *ix, int64_t key);

/* key's values, through fn (stop when it returns nonzero); returns the count
 * visited. */
size_t qxs_pindex_each(const qxs_pindex *ix, int64_t key, qxs_leaf_fn fn, void *ctx);

/* Can the index stand for the payload in this condition (same key, a
 * condition kind and type it holds exactly)? */
int qxs_pindex_answers(const qxs_pindex *ix, const qxs_cond *c);
/* Points the condition selects: exact for single-valued fields, an upper
 * bound otherwise; -1 when the index cannot tell (except, is_empty). */
long long qxs_pindex_count(const qxs_pindex *ix, const qxs_cond *c);
/* The same, sampled for a range over more than 65,536 value slots (the
 * planner's estimate: a few per cent off at 20 %, cheap at any cardinality). */
long long qxs_pindex_estimate(const qxs_pindex *ix, const qxs_cond *c);
/* Every key that has a value passing c (match value/any, range), through fn,
 * in no particular order. A key may come more than once only where
 * *may_repeat (may be NULL) is set: a field with several values per point,
 * or postings not yet compacted. 0, or -1 when the index cannot list them. */
int qxs_pindex_keys(const qxs_pindex *ix, const qxs_cond *c, void (*fn)(void *ctx, int64_t key), void *ctx,
                    int *may_repeat);

size_t qxs_pindex_points(const qxs_pindex *ix); /* keys with at least one value */
size_t qxs_pindex_bytes(const qxs_pindex *ix);  /* memory held */

#endif
