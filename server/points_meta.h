/* server/points_meta.h — what a collection keeps per point besides its
 * vector: the user's point id (u64 or UUID) and the payload (compact JSON
 * bytes), keyed by the store's row key.
 *
 * Row keys: an integer id below QXS_KEY_ALLOC_BASE (2^62) is its own key, so
 * collections written before payloads existed, and the fast search path,
 * are unchanged; every other id (UUIDs, integers >= 2^62) gets a key
 * allocated from QXS_KEY_ALLOC_BASE up, recorded in the write-ahead log so
 * replay gives the same keys. Not thread-safe: the collection's locks guard
 * it (writers under wmu + write side of rw, readers under the read side).
 */
#ifndef QXS_POINTS_META_H
#define QXS_POINTS_META_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/idmap.h"
#include "pointid.h"
#include "store.h"

#define QXS_KEY_ALLOC_BASE (INT64_C(1) << 62)
#define QXS_PAYLOAD_KEEP UINT32_MAX        /* in a meta entry: leave the payload as is */

typedef struct qxs_pmeta {
    int64_t *tab;          /* pid -> allocated key (open addressing on the pid's hash, 0 = empty) */
    size_t tabcap, count;
    qxs_pid *apids;        /* pid of allocated key QXS_KEY_ALLOC_BASE + i (kind 0: free) */
    size_t napids, capapids;
    qx_idmap payloads;    /* key -> (uintptr_t) blob */
    size_t payload_bytes;
} qxs_pmeta;

/* One point's entry of a META log record. */
typedef struct qxs_meta_ent {
    int64_t key;
    qxs_pid pid;
    uint32_t len;          /* payload bytes; 0 = none; QXS_PAYLOAD_KEEP = unchanged */
    const char *payload;
} qxs_meta_ent;

void qxs_pmeta_init(qxs_pmeta *m);
void qxs_pmeta_free(qxs_pmeta *m);

/* Key of pid, or -1 if it has none. */
int64_t qxs_pmeta_key(const qxs_pmeta *m, const qxs_pid *pid);
/* Keys for n pids about to be written (the same pid twice gets one key; new
 * UUIDs get the next allocated keys). Changes nothing. 0 or QX_ENOMEM. */
int qxs_pmeta_assign(const qxs_pmeta *m, const qxs_pid *pids, size_t n, int64_t *keys);
/* pid of a key (any key: identity keys map back to their integer). */
qxs_pid qxs_pmeta_pid(const qxs_pmeta *m, int64_t key);
/* Payload bytes of key (NULL, *len = 0 if none). */
const char *qxs_pmeta_payload(const qxs_pmeta *m, int64_t key, uint32_t *len);

/* Apply entries (replay and live writes): map pid <-> key, set payloads.
 * 0 or QX_ENOMEM (nothing changed for the failing entry). */
int qxs_pmeta_apply(qxs_pmeta *m, const qxs_meta_ent *e, size_t n);
/* Forget a deleted key (its pid mapping and payload). */
void qxs_pmeta_forget(qxs_pmeta *m, int64_t key);

/* META record body <-> entries. encode: *out (qx_free) and *len. decode:
 * entries point into buf; qx_free(*out). QX_EFORMAT on a malformed body. */
int qxs_meta_encode(const qxs_meta_ent *e, size_t n, uint8_t **out, size_t *len);
int qxs_meta_decode(const uint8_t *buf, size_t len, qxs_meta_ent **out, size_t *n);

/* meta.bin: every mapping and payload at lsn (atomic replace) / load
 * (QX_ENOTFOUND if absent, QX_EFORMAT if corrupt). */
int qxs_pmeta_save(const qxs_pmeta *m, uint64_t lsn, const char *path);
int qxs_pmeta_load(qxs_pmeta *m, const char *path, uint64_t *lsn);

/* every key with a payload (for index rebuilds): fn(ctx, key, bytes, len) */
void qxs_pmeta_each_payload(const qxs_pmeta *m, void (*fn)(void *, int64_t, const char *, uint32_t), void *ctx);

#endif
