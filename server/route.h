/* server/route.h — URL routing and name/id validation (pure functions). */
#ifndef QXS_ROUTE_H
#define QXS_ROUTE_H

#include <stdint.h>

#include "pointid_text.h"

typedef enum qxs_ep {
    QXS_EP_NONE = 0,     /* no such path: 404 */
    QXS_EP_HEALTHZ,      /* GET /healthz */
    QXS_EP_READYZ,       /* GET /readyz */
    QXS_EP_METRICS,      /* GET /metrics */
    QXS_EP_COLLECTIONS,  /* GET /collections */
    QXS_EP_COLLECTION,   /* GET PUT DELETE /collections/{name} */
    QXS_EP_POINTS,       /* PUT (upsert) POST (retrieve) /collections/{name}/points */
    QXS_EP_POINT,        /* GET /collections/{name}/points/{id} */
    QXS_EP_DELETE,       /* POST …/points/delete */
    QXS_EP_SEARCH,       /* POST …/points/search */
    QXS_EP_SEARCH_BATCH, /* POST …/points/search/batch */
    QXS_EP_REBUILD,      /* POST (start) GET (list) /collections/{name}/rebuild */
    QXS_EP_REBUILD_JOB,  /* GET …/rebuild/{job} */
    QXS_EP_ROOT,         /* GET / */
    QXS_EP_EXISTS,       /* GET …/exists */
    QXS_EP_QUERY,        /* POST …/points/query */
    QXS_EP_QUERY_BATCH,  /* POST …/points/query/batch */
    QXS_EP_SCROLL,       /* POST …/points/scroll */
    QXS_EP_PCOUNT,       /* POST …/points/count */
    QXS_EP_PAYLOAD,      /* POST (set) PUT (overwrite) …/points/payload */
    QXS_EP_PAYLOAD_DEL,  /* POST …/points/payload/delete */
    QXS_EP_PAYLOAD_CLEAR,/* POST …/points/payload/clear */
    QXS_EP_INDEX,        /* PUT …/index */
    QXS_EP_INDEX_FIELD,  /* DELETE …/index/{field} */
    QXS_EP_SNAPSHOTS,    /* GET (list) POST (create) …/snapshots */
    QXS_EP_SNAPSHOT,     /* GET (download) DELETE …/snapshots/{name} */
    QXS_EP_SNAP_RECOVER, /* PUT …/snapshots/recover */
    QXS_EP_COUNT
} qxs_ep;

typedef struct qxs_route {
    qxs_ep ep;
    char name[65];   /* collection name when the path has one */
    int name_ok;     /* the name matched [A-Za-z0-9_-]{1,64} */
    int id_ok;       /* the {id}/{job} segment is a decimal in 0..2^63-1 */
    int64_t id;      /* job id */
    qxs_pid pid;     /* point id ({id} of …/points/{id}: an integer or a UUID) */
    char field[129]; /* {field} of …/index/{field}, {name} of …/snapshots/{name} */
} qxs_route;

/* Map a path (query string already removed) to an endpoint. */
void qxs_route_parse(const char *path, qxs_route *r);
/* Is method allowed on ep? Fills allow (e.g. "GET, PUT, DELETE") for 405. */
int qxs_route_allows(qxs_ep ep, const char *method, const char **allow);
/* Metric label of an endpoint ("search", "upsert" depends on the method). */
const char *qxs_ep_label(qxs_ep ep, const char *method);

/* [A-Za-z0-9_-]{1,64} */
int qxs_name_valid(const char *s, size_t len);
/* Decimal 0..2^63-1, no sign, no leading '+', at most 19 digits. */
int qxs_parse_id(const char *s, size_t len, int64_t *out);

#endif
