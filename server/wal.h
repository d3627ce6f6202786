/* server/wal.h — per-collection write-ahead log (internal to the server).
 *
 * A record is [u32 len][u32 crc32(payload)][payload]; the payload starts with
 * [u8 type][u64 lsn][u32 n]. Types:
 *   QXS_WAL_UPSERT2  n pids (17 bytes each, pointid.h), n*d floats, n u32
 *                    payload lengths, the payload bytes
 *   QXS_WAL_DELETE2  n pids
 *   QXS_WAL_PAYLOAD  n pids, n u32 payload lengths, the payload bytes (the
 *                    whole new payload of each point)
 *   QXS_WAL_UPSERT / QXS_WAL_DELETE (1, 2): the format before segments
 *                    (u64 ids, no payloads); read for upgrades, never written.
 * Replay applies every good record in order. What follows the last good
 * record decides what happens (issue 19, item 9):
 *   - nothing, or bytes that hold no valid record further on: a torn tail
 *     (a write cut short by a crash, never acknowledged). It is dropped and
 *     the file truncated there;
 *   - a valid record further on (newer lsn, good checksum): corruption before
 *     the tail. Replay stops, the file is left as it is, and the collection
 *     is read-only ("red") with the byte offset; qxs_wal_salvage (the
 *     `qinx serve salvage-wal` command) rewrites the log keeping every valid
 *     record after the damage.
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

#include "pointid.h"
#include "segment.h"

#define QXS_WAL_UPSERT 1    /* legacy, read only */
#define QXS_WAL_DELETE 2    /* legacy, read only */
#define QXS_WAL_UPSERT2 3
#define QXS_WAL_DELETE2 4
#define QXS_WAL_PAYLOAD 5
#define QXS_WAL_HDR 8                  /* len + crc */
#define QXS_WAL_PAYLOAD_HDR 13         /* type + lsn + n */
#define QXS_WAL_MAX_RECORD (1u << 30)  /* a record longer than this is corrupt */

typedef struct qxs_wal {
    int fd;
    uint64_t size;                 /* bytes in the file (after replay: the good prefix) */
    _Atomic uint64_t written_lsn;  /* last lsn handed to write() */
    _Atomic uint64_t synced_lsn;   /* last lsn known to be on disk */
    pthread_mutex_t sync_mu;       /* one fdatasync at a time */
    _Atomic int failed;            /* a write or fsync failed, or the log is corrupt: no appends */
    uint32_t last_crc;             /* checksum of the last record appended (wal_codes.h pairs by it) */
} qxs_wal;

/* One decoded record (pointers into the replay buffer, unaligned). */
typedef struct qxs_wal_rec {
    int type;               /* QXS_WAL_UPSERT2, QXS_WAL_DELETE2 or QXS_WAL_PAYLOAD (legacy types
                             * are reported as their new equivalents, with legacy = 1) */
    int legacy;             /* ids are u64 (8 bytes) instead of 17-byte pids */
    uint64_t lsn;
    uint32_t n;
    uint32_t crc;           /* the record's checksum, as stored */
    const uint8_t *ids;
    const uint8_t *vecs;    /* n*d floats (upserts) */
    const uint8_t *plens;   /* n u32 (upserts and payload records; NULL for legacy) */
    const uint8_t *pdata;   /* the payload bytes, back to back */
} qxs_wal_rec;

/* The i-th id of a record (0, or -1 for a malformed pid). */
int qxs_wal_rec_pid(const qxs_wal_rec *r, uint32_t i, qxs_pid *id);

typedef int (*qxs_wal_apply_fn)(void *ctx, const qxs_wal_rec *rec);

/* What replay found. */
typedef struct qxs_wal_status {
    uint64_t records;       /* good records */
    uint64_t last_lsn;
    uint64_t dropped;       /* torn tail bytes removed */
    int64_t corrupt_at;     /* byte offset of corruption before the tail, or -1 */
    uint64_t next_valid;    /* offset of the first valid record after it */
} qxs_wal_status;

/* Open (create) path, replay every good record through fn (fn may be NULL).
 * A torn tail is truncated and the log is left open for appends. On
 * corruption before the tail the records before it are applied, the file is
 * not touched, st->corrupt_at is set, the log refuses appends (failed) and
 * 0 is returned; qx_last_error() then names the file and the offset. */
int qxs_wal_open(qxs_wal *w, const char *path, size_t d, qxs_wal_apply_fn fn, void *ctx, qxs_wal_status *st);

/* The parsing half of qxs_wal_open (tests, fuzz target, salvage): decode and
 * check buf[0..len), calling fn for each good record. Returns the length of
 * the good prefix; st (may be NULL) gets what follows. */
size_t qxs_wal_parse(const uint8_t *buf, size_t len, size_t d, qxs_wal_apply_fn fn, void *ctx, int *fn_error,
                     qxs_wal_status *st);

/* Append one record. ids: n pids; vecs: n*d floats (upserts); p: n payloads
 * (upserts, may be NULL = none; payload records). */
int qxs_wal_append(qxs_wal *w, int type, uint64_t lsn, const qxs_pid *ids, const float *vecs, const qxs_bytes *p,
                   uint32_t n, size_t d);
/* Legacy writer (tests and the upgrade fixture only): type 1/2 with u64 ids. */
int qxs_wal_append_legacy(qxs_wal *w, int type, uint64_t lsn, const int64_t *ids, const float *vecs, uint32_t n,
                          size_t d);

/* Make every record up to lsn durable (group commit). */
int qxs_wal_sync(qxs_wal *w, uint64_t lsn);

/* Replace the log by an empty one (temp file, fsync, rename, fsync dir);
 * called after a checkpoint made its records redundant. Caller holds the
 * writer lock. */
int qxs_wal_reset(qxs_wal *w, const char *path);

void qxs_wal_close(qxs_wal *w);

/* Rewrite the log at path keeping every valid record: the good prefix and
 * each valid record found after damage. The original is kept as
 * path.corrupt-<unix time>. *kept / *lost_bytes report what happened. The
 * server must not be running on that collection. */
int qxs_wal_salvage(const char *path, size_t d, uint64_t *kept, uint64_t *lost_bytes, char *backup, size_t backup_cap);


#endif
