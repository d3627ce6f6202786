/* server/payload_indexes.h — a collection's set of payload indexes, kept
 * current through the store's change hook (API layer; see
 * /work/team/iface-storage-qdrant.md). */
#ifndef QXS_PAYLOAD_INDEXES_H
#define QXS_PAYLOAD_INDEXES_H

#include <jansson.h>

#include "filter.h"
#include "srv.h"

typedef struct qxs_pidxset qxs_pidxset;

/* The collection's set, made on first use: definitions from indexes.json,
 * indexes built from every stored payload, the hook installed. NULL only if
 * out of memory or the definitions are corrupt (qx_last_error()). */
struct qxs_pidxset *qxs_pidx_get(qxs_coll *c);

/* Readers (checks, filter bindings, searches) hold the set's read lock for
 * as long as they use a bound index: create/drop take it for writing. */
void qxs_pidx_rdlock(struct qxs_pidxset *p);
void qxs_pidx_unlock(struct qxs_pidxset *p);
/* Payload operations (set / overwrite / delete keys / clear) read each
 * payload, compute the new one and write it: they hold this mutex from the
 * read to the durable write, so two of them on one collection never lose
 * each other's change. Taken before the read lock above. */
void qxs_pidx_rmw_lock(struct qxs_pidxset *p);
void qxs_pidx_rmw_unlock(struct qxs_pidxset *p);
/* Does payload fit every index? 0, or -1 with err naming the field. */
int qxs_pidx_check(struct qxs_pidxset *p, const json_t *payload, char *err, size_t errcap);
/* Bind each condition of f to an index that answers it. */
void qxs_pidx_bind(struct qxs_pidxset *p, qxs_filter *f);

/* Create (QX_EINVAL naming the point when a stored value does not fit) /
 * drop (QX_ENOTFOUND); persisted in indexes.json. */
int qxs_pidx_create(qxs_coll *c, const char *field, int type);
int qxs_pidx_drop(qxs_coll *c, const char *field);
/* {"field": {"data_type": …, "points": n}} and the bytes all indexes hold. */
json_t *qxs_pidx_schema(struct qxs_pidxset *p, size_t *bytes);

#endif
