/* server/wal.h — per-collection write-ahead log (internal to the server).
 *
 * A record is [u32 len][u32 crc32(payload)][payload]; the payload starts with
 * [u8 type][u64 lsn][u32 n]. Upserts carry n ids (u64) then n*d floats, deletes
 * n ids. Replay stops at the first record that is short or fails its
 * checksum (a torn tail after a crash), reports how many bytes it dropped and
 * truncates the file there so that new records follow the last good one.
 * Appends are serialized by the caller (the collection's writer mutex);
 * qxs_wal_sync may be called by many threads at once and implements group
 * commit: one fdatasync covers every record written before it started.
 */
#ifndef QXS_WAL_H
#define QXS_WAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define QXS_WAL_UPSERT 1
#define QXS_WAL_DELETE 2
#define QXS_WAL_META 3    /* point ids + payloads: n = body bytes, body opaque here (points_meta.c) */
#define QXS_WAL_HDR 8                  /* len + crc */
#define QXS_WAL_PAYLOAD_HDR 13         /* type + lsn + n */
#define QXS_WAL_MAX_RECORD (1u << 30)  /* a record longer than this is corrupt */

typedef struct qxs_wal {
    int fd;
    uint64_t size;                 /* bytes in the file (after replay: the good prefix) */
    _Atomic uint64_t written_lsn;  /* last lsn handed to write() */
    _Atomic uint64_t synced_lsn;   /* last lsn known to be on disk */
    pthread_mutex_t sync_mu;       /* one fdatasync at a time */
    _Atomic int failed;            /* a write or fsync failed: the log is unusable (read by
                                    * writers under wmu, set under sync_mu too) */
} qxs_wal;

/* One decoded record (pointers into the replay buffer). */
typedef struct qxs_wal_rec {
    int type;
    uint64_t lsn;
    uint32_t n;
    const uint8_t *ids;   /* n little-endian u64 (unaligned); META: the n-byte body */
    const uint8_t *vecs;  /* n*d floats (unaligned), upserts only */
} qxs_wal_rec;

typedef int (*qxs_wal_apply_fn)(void *ctx, const qxs_wal_rec *rec);

/* Open (create) path, replay every good record through fn (fn may be NULL),
 * truncate a torn tail, leave the file open for appends. *dropped receives the
 * bytes discarded (0 for a clean log). d is the vector dimension. */
int qxs_wal_open(qxs_wal *w, const char *path, size_t d, qxs_wal_apply_fn fn, void *ctx,
                 uint64_t *dropped);

/* Decode and check the records of buf[0..len) (the parsing half of
 * qxs_wal_open, exposed for the tests and the fuzz target). Returns the length
 * of the good prefix. */
size_t qxs_wal_parse(const uint8_t *buf, size_t len, size_t d, qxs_wal_apply_fn fn, void *ctx,
                     int *fn_error);

/* Append one record (write() of header + payload). ids: n ids, vecs: n*d
 * floats or NULL for deletes. */
int qxs_wal_append(qxs_wal *w, int type, uint64_t lsn, const int64_t *ids, const float *vecs,
                   uint32_t n, size_t d);

/* Append a META record: len bytes of body (as qxs_meta_encode makes). */
int qxs_wal_append_meta(qxs_wal *w, uint64_t lsn, const uint8_t *body, uint32_t len);

/* Make every record up to lsn durable (group commit). */
int qxs_wal_sync(qxs_wal *w, uint64_t lsn);

/* Replace the log by an empty one (temp file, fsync, rename, fsync dir);
 * called after a snapshot made its records redundant. Caller holds the
 * writer lock. */
int qxs_wal_reset(qxs_wal *w, const char *path);

void qxs_wal_close(qxs_wal *w);

#endif
