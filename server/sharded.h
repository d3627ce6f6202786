/* server/sharded.h — read-only collections served from a sharded index
 * (`qinx serve --sharded NAME=MANIFEST`, the manifest of qinx/shard.h).
 * See sharded.c for what is answered and what is refused. */
#ifndef QXS_SHARDED_H
#define QXS_SHARDED_H

#include "api.h"
#include "route.h"
#include "srv.h"

/* Open every --sharded collection of s->cfg (manifest read, every shard's
 * size and CRC-32 checked, shards loaded). A name that is also a stored
 * collection (registered, or a directory under DATA/collections), a name
 * given twice, or a manifest or shard that cannot be read fails it all:
 * nothing is served (the server stops; start-up is the operator's command
 * and a half-served index would answer with silently missing rows).
 * Call once, after qxs_registry_load and before the server is ready. */
int qxs_sharded_open_all(qxs_server *s);
void qxs_sharded_free_all(qxs_server *s);

/* The sharded collection called name, or NULL. No lock: the set is fixed
 * once the server is ready. */
const qxs_sharded_coll *qxs_sharded_find(const qxs_server *s, const char *name);

/* The name of sharded collection i < s->nsharded. */
const char *qxs_sharded_name(const qxs_server *s, size_t i);

/* Every request whose path names a sharded collection (r->name). */
void qxs_sharded_handle(qxs_server *s, const qxs_sharded_coll *sc, const qxs_route *r, const char *method,
                        const char *body, size_t len, qxs_reply *o);

#endif
