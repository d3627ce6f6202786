/* server/snapshot.h — collection snapshots (Qdrant's snapshot endpoints):
 * one file holding every file of a collection's directory just after a
 * checkpoint, listed, downloaded, and recovered from. */
#ifndef QXS_SNAPSHOT_H
#define QXS_SNAPSHOT_H

#include <jansson.h>

#include "api.h"
#include "srv.h"

void qxs_snapshot_create(qxs_server *s, qxs_coll *c, qxs_reply *o);
void qxs_snapshot_list(qxs_server *s, const char *coll, qxs_reply *o);
void qxs_snapshot_download(qxs_server *s, const char *coll, const char *name, qxs_reply *o);
void qxs_snapshot_delete(qxs_server *s, const char *coll, const char *name, qxs_reply *o);
/* PUT …/snapshots/recover {"location": "file:///…" or a snapshot name}: replaces the collection */
void qxs_snapshot_recover(qxs_server *s, const char *coll, json_t *b, qxs_reply *o);

#endif
