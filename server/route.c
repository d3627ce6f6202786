/* server/route.c — path routing and validation of the names that reach the
 * file system. A collection name becomes a directory name, so it is checked
 * against [A-Za-z0-9_-]{1,64} here and nowhere else can a path segment from a
 * request reach open(): "..", "/", "%2e" (the HTTP edge decodes percent
 * escapes before we see the path) and NUL are all outside the alphabet. */
#include <string.h>

#include "route.h"

int qxs_name_valid(const char *s, size_t len) {
    if (len < 1 || len > 64) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int qxs_parse_id(const char *s, size_t len, int64_t *out) {
    if (len < 1 || len > 19) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) return 0;
    *out = (int64_t)v;
    return 1;
}

/* Split path into at most 6 segments; returns the count or -1 if more. */
static int split(const char *path, const char *seg[6], size_t len[6]) {
    int n = 0;
    const char *p = path;
    if (*p != '/') return -1;
    size_t plen = strlen(path);
    /* one trailing slash is tolerated ("/collections/" == "/collections") */
    if (plen > 1 && path[plen - 1] == '/') plen--;
    const char *end = path + plen;
    p++;
    while (p < end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q) q = end;
        if (n == 6) return -1;
        seg[n] = p;
        len[n] = (size_t)(q - p);
        if (len[n] == 0) return -1; /* "//" */
        n++;
        p = q + 1;
    }
    return n;
}

static int eq(const char *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

void qxs_route_parse(const char *path, qxs_route *r) {
    memset(r, 0, sizeof *r);
    r->id = -1;
    const char *seg[6];
    size_t len[6];
    if (!strcmp(path, "/")) {
        r->ep = QXS_EP_ROOT;
        return;
    }
    int n = split(path, seg, len);
    if (n <= 0) return;
    if (n == 1) {
        if (eq(seg[0], len[0], "healthz")) r->ep = QXS_EP_HEALTHZ;
        else if (eq(seg[0], len[0], "readyz")) r->ep = QXS_EP_READYZ;
        else if (eq(seg[0], len[0], "metrics")) r->ep = QXS_EP_METRICS;
        else if (eq(seg[0], len[0], "collections")) r->ep = QXS_EP_COLLECTIONS;
        return;
    }
    if (!eq(seg[0], len[0], "collections")) return;
    r->name_ok = qxs_name_valid(seg[1], len[1]);
    size_t cl = len[1] < 64 ? len[1] : 64;
    memcpy(r->name, seg[1], cl);
    r->name[cl] = 0;
    if (memchr(r->name, 0, cl)) r->name_ok = 0;
    if (n == 2) {
        r->ep = QXS_EP_COLLECTION;
    } else if (eq(seg[2], len[2], "points")) {
        if (n == 3) r->ep = QXS_EP_POINTS;
        else if (n == 4 && eq(seg[3], len[3], "delete")) r->ep = QXS_EP_DELETE;
        else if (n == 4 && eq(seg[3], len[3], "search")) r->ep = QXS_EP_SEARCH;
        else if (n == 5 && eq(seg[3], len[3], "search") && eq(seg[4], len[4], "batch"))
            r->ep = QXS_EP_SEARCH_BATCH;
        else if (n == 4 && eq(seg[3], len[3], "query")) r->ep = QXS_EP_QUERY;
        else if (n == 5 && eq(seg[3], len[3], "query") && eq(seg[4], len[4], "batch")) r->ep = QXS_EP_QUERY_BATCH;
        else if (n == 4 && eq(seg[3], len[3], "scroll")) r->ep = QXS_EP_SCROLL;
        else if (n == 4 && eq(seg[3], len[3], "count")) r->ep = QXS_EP_PCOUNT;
        else if (n == 4 && eq(seg[3], len[3], "payload")) r->ep = QXS_EP_PAYLOAD;
        else if (n == 5 && eq(seg[3], len[3], "payload") && eq(seg[4], len[4], "delete")) r->ep = QXS_EP_PAYLOAD_DEL;
        else if (n == 5 && eq(seg[3], len[3], "payload") && eq(seg[4], len[4], "clear")) r->ep = QXS_EP_PAYLOAD_CLEAR;
        else if (n == 4) {
            r->ep = QXS_EP_POINT;
            r->id_ok = qxs_pid_parse(seg[3], len[3], &r->pid);
        }
    } else if (n == 3 && eq(seg[2], len[2], "exists")) {
        r->ep = QXS_EP_EXISTS;
    } else if (eq(seg[2], len[2], "index")) {
        if (n == 3) r->ep = QXS_EP_INDEX;
        else if (n == 4 && len[3] < sizeof r->field) {
            r->ep = QXS_EP_INDEX_FIELD;
            memcpy(r->field, seg[3], len[3]);
            r->field[len[3]] = 0;
        }
    } else if (eq(seg[2], len[2], "snapshots")) {
        if (n == 3) r->ep = QXS_EP_SNAPSHOTS;
        else if (n == 4 && eq(seg[3], len[3], "recover")) r->ep = QXS_EP_SNAP_RECOVER;
        else if (n == 4 && len[3] < sizeof r->field) {
            r->ep = QXS_EP_SNAPSHOT;
            memcpy(r->field, seg[3], len[3]);
            r->field[len[3]] = 0;
        }
    } else if (eq(seg[2], len[2], "rebuild")) {
        if (n == 3) r->ep = QXS_EP_REBUILD;
        else if (n == 4) {
            r->ep = QXS_EP_REBUILD_JOB;
            r->id_ok = qxs_parse_id(seg[3], len[3], &r->id);
        }
    }
}

int qxs_route_allows(qxs_ep ep, const char *m, const char **allow) {
    static const char *const allowed[QXS_EP_COUNT] = {
        [QXS_EP_HEALTHZ] = "GET, HEAD",       [QXS_EP_READYZ] = "GET, HEAD",
        [QXS_EP_METRICS] = "GET, HEAD",       [QXS_EP_COLLECTIONS] = "GET, HEAD",
        [QXS_EP_COLLECTION] = "GET, HEAD, PUT, PATCH, DELETE",
        [QXS_EP_POINTS] = "PUT, POST",        [QXS_EP_POINT] = "GET, HEAD",
        [QXS_EP_DELETE] = "POST",             [QXS_EP_SEARCH] = "POST",
        [QXS_EP_SEARCH_BATCH] = "POST",       [QXS_EP_REBUILD] = "GET, HEAD, POST",
        [QXS_EP_REBUILD_JOB] = "GET, HEAD",
        [QXS_EP_ROOT] = "GET, HEAD",          [QXS_EP_EXISTS] = "GET, HEAD",
        [QXS_EP_QUERY] = "POST",              [QXS_EP_QUERY_BATCH] = "POST",
        [QXS_EP_SCROLL] = "POST",             [QXS_EP_PCOUNT] = "POST",
        [QXS_EP_PAYLOAD] = "POST, PUT",       [QXS_EP_PAYLOAD_DEL] = "POST",
        [QXS_EP_PAYLOAD_CLEAR] = "POST",      [QXS_EP_INDEX] = "PUT",
        [QXS_EP_INDEX_FIELD] = "DELETE",
        [QXS_EP_SNAPSHOTS] = "GET, HEAD, POST", [QXS_EP_SNAPSHOT] = "GET, HEAD, DELETE",
        [QXS_EP_SNAP_RECOVER] = "PUT",
    };
    const char *a = ep > QXS_EP_NONE && ep < QXS_EP_COUNT ? allowed[ep] : NULL;
    if (allow) *allow = a ? a : "";
    if (!a) return 0;
    size_t ml = strlen(m);
    if (ml == 0) return 0;
    for (const char *p = a; (p = strstr(p, m)) != NULL; p += ml) {
        int start = p == a || p[-1] == ' ';
        int end = p[ml] == 0 || p[ml] == ',';
        if (start && end) return 1;
    }
    return 0;
}

const char *qxs_ep_label(qxs_ep ep, const char *m) {
    switch (ep) {
    case QXS_EP_HEALTHZ: return "healthz";
    case QXS_EP_READYZ: return "readyz";
    case QXS_EP_METRICS: return "metrics";
    case QXS_EP_COLLECTIONS: return "list_collections";
    case QXS_EP_COLLECTION:
        return !strcmp(m, "PUT") ? "create_collection"
               : !strcmp(m, "DELETE") ? "delete_collection" : "get_collection";
    case QXS_EP_POINTS: return !strcmp(m, "PUT") ? "upsert" : "retrieve";
    case QXS_EP_POINT: return "get_point";
    case QXS_EP_DELETE: return "delete_points";
    case QXS_EP_SEARCH: return "search";
    case QXS_EP_SEARCH_BATCH: return "search_batch";
    case QXS_EP_REBUILD: return !strcmp(m, "POST") ? "rebuild" : "list_rebuilds";
    case QXS_EP_REBUILD_JOB: return "get_rebuild";
    case QXS_EP_QUERY: case QXS_EP_QUERY_BATCH: return "query";
    case QXS_EP_SCROLL: return "scroll";
    case QXS_EP_PCOUNT: return "count";
    case QXS_EP_PAYLOAD: case QXS_EP_PAYLOAD_DEL: case QXS_EP_PAYLOAD_CLEAR: return "payload";
    case QXS_EP_INDEX: case QXS_EP_INDEX_FIELD: return "payload_index";
    case QXS_EP_SNAPSHOTS: case QXS_EP_SNAPSHOT: case QXS_EP_SNAP_RECOVER: return "snapshot";
    default: return "unknown";
    }
}
