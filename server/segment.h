/* server/segment.h — the two kinds of segment a collection's points live in
 * (internal to the server).
 *
 * A *sealed* segment is one immutable file seg-<no>.dat (ids, raw vectors,
 * payload bytes, a permutation of its rows sorted by id) read through mmap,
 * plus a tombstone bitmap kept in RAM and persisted at checkpoints as
 * seg-<no>.del.<gen> (a new generation each time it changes, named by the
 * manifest). The *mutable* segment holds the rows written since the last
 * checkpoint in RAM, behind the write-ahead log; a checkpoint writes it out
 * as a sealed segment with the same number and the same row order, so the
 * row keys the IVF index holds stay valid.
 *
 * Row key: the IVF's 64-bit id of a row is (segment number << 32) | row
 * (segment numbers < 2^31, so keys are >= 0). Rows are append-only: an
 * upsert of an existing id marks its old row dead (tombstone) and appends a
 * new row, in whatever segment the old one was.
 *
 * Segment file layout (little-endian; sections 64-byte aligned, the vectors
 * 4096-byte aligned):
 *   header (QXS_SEG_HDR bytes): "QXSEG001", u32 version, u32 d, u64 n,
 *     u64 off_pids, off_perm, off_vecs, off_poff, off_pblob, pblob_len,
 *     file_len, u32 crc_meta (pids, perm, poff), u32 crc_vecs, u32 crc_pblob,
 *     u32 crc_hdr (every header byte before it)
 *   pids  n x 17 bytes (pointid.h disk form), row order
 *   perm  n x u32, rows sorted by pid (qxs_pid_cmp), ties by row
 *   vecs  n x d float32
 *   poff  (n + 1) x u64 offsets into pblob (row r's payload = [poff[r], poff[r+1]))
 *   pblob payload bytes
 * Opening checks the header, the file length and crc_meta; it does not read
 * the vectors or payloads (restart reads no raw vectors). Their checksums are
 * checked by qxs_seg_verify: before a merge reads a segment, before a
 * rebuild encodes, at open when on_disk = 0 copies the vectors, and by
 * `qinx serve verify`.
 *
 * Tombstone file: "QXDEL001", u32 no, u32 0, u64 n, u64 ndead, bitmap
 * ((n + 63) / 64 u64 words), u32 crc of everything before it.
 */
#ifndef QXS_SEGMENT_H
#define QXS_SEGMENT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "pointid.h"

#define QXS_SEG_HDR 4096
#define QXS_MAX_PAYLOAD 65536u   /* bytes of one point's payload */
#define QXS_SEG_MAX_ROWS 0xFFFFFFF0u
#define QXS_SEG_MAX_NO 0x7FFFFFFFu

/* Opaque payload bytes (compact JSON written by the API); len 0 = none. */
typedef struct qxs_bytes {
    const uint8_t *data;
    uint32_t len;
} qxs_bytes;

static inline int64_t qxs_rowkey(uint32_t seg, uint32_t row) { return (int64_t)(((uint64_t)seg << 32) | row); }
static inline uint32_t qxs_rowkey_seg(int64_t key) { return (uint32_t)((uint64_t)key >> 32); }
static inline uint32_t qxs_rowkey_row(int64_t key) { return (uint32_t)key; }

static inline int qxs_bit_get(const uint64_t *bm, size_t i) { return (int)((bm[i >> 6] >> (i & 63)) & 1u); }
static inline void qxs_bit_set(uint64_t *bm, size_t i) { bm[i >> 6] |= (uint64_t)1 << (i & 63); }

/* Ask for transparent huge pages over [p, p + len) (a hint, for buffers of
 * 8 MB and more that are about to be filled: one page fault per 2 MB). */
void qxs_hint_huge_pages(void *p, size_t len);

/* ---- pid -> row hash map (the mutable segment's live rows) ----------------- */
typedef struct qxs_pidmap {
    qxs_pid *keys;
    uint32_t *rows; /* UINT32_MAX = empty slot */
    size_t cap, count;
} qxs_pidmap;
int qxs_pidmap_reserve(qxs_pidmap *m, size_t n);
int qxs_pidmap_put(qxs_pidmap *m, const qxs_pid *k, uint32_t row); /* insert or overwrite */
int qxs_pidmap_get(const qxs_pidmap *m, const qxs_pid *k, uint32_t *row);
int qxs_pidmap_del(qxs_pidmap *m, const qxs_pid *k);
void qxs_pidmap_free(qxs_pidmap *m);

/* ---- mutable segment ------------------------------------------------------ */
typedef struct qxs_mseg {
    uint32_t no;
    size_t d, n, cap;
    qxs_pid *pids;
    float *vecs;        /* cap * d, 64-byte aligned */
    uint64_t *poff;     /* cap + 1 */
    uint8_t *pblob;
    size_t pblob_cap;
    uint64_t *dead;     /* (cap + 63) / 64 words */
    size_t ndead;
    qxs_pidmap map;     /* live rows */
} qxs_mseg;

void qxs_mseg_init(qxs_mseg *m, uint32_t no, size_t d);
void qxs_mseg_free(qxs_mseg *m);
/* Room for `more` rows and `pbytes` payload bytes, so appends cannot fail. */
int qxs_mseg_reserve(qxs_mseg *m, size_t more, size_t pbytes);
/* Append a live row (after qxs_mseg_reserve); returns its row. */
uint32_t qxs_mseg_append(qxs_mseg *m, const qxs_pid *id, const float *x, const uint8_t *p, uint32_t plen);
void qxs_mseg_kill(qxs_mseg *m, uint32_t row);
static inline const float *qxs_mseg_vec(const qxs_mseg *m, uint32_t row) { return m->vecs + (size_t)row * m->d; }
/* RAM the mutable segment holds (bytes). */
size_t qxs_mseg_bytes(const qxs_mseg *m);

/* ---- sealed segments ------------------------------------------------------- */
typedef struct qxs_seg {
    uint32_t no;
    size_t d, n;
    int fd;
    uint8_t *map;
    size_t map_len;
    const uint8_t *pids;
    const uint8_t *perm;   /* n u32 (aligned in the file, read through memcpy anyway) */
    const float *vecs;     /* into map, or vecs_ram */
    float *vecs_ram;       /* on_disk = 0: the vectors copied into RAM */
    const uint8_t *poff;
    const uint8_t *pblob;
    uint64_t pblob_len;
    uint32_t crc_vecs, crc_pblob;
    uint64_t *dead;        /* RAM bitmap */
    size_t ndead;
    uint64_t del_gen;      /* generation of the tombstone file on disk (0: none) */
    int del_dirty;         /* dead changed since del_gen was written */
    uint64_t codes_gen;    /* seg-<no>.codes.<gen> holds its IVF entries (0: none; segcodes.h) */
    char path[PATH_MAX];
} qxs_seg;

/* File names inside a collection directory. */
void qxs_seg_name(char *out, size_t cap, const char *dir, uint32_t no);
void qxs_del_name(char *out, size_t cap, const char *dir, uint32_t no, uint64_t gen);

/* Write the rows of a mutable segment as seg-<no>.dat (temporary file,
 * fsync, rename, directory fsync). *bytes receives the file size. */
int qxs_seg_write(const char *dir, const qxs_mseg *m, uint64_t *bytes);

/* Open seg-<no>.dat (n rows expected, as the manifest says) and, when
 * del_gen > 0, its tombstone file. on_disk = 0 copies the vectors into RAM.
 * A missing, short or corrupt file is QX_EFORMAT / QX_EIO with its path. */
int qxs_seg_open(const char *dir, uint32_t no, size_t d, uint64_t n, uint64_t del_gen, int on_disk,
                 qxs_seg **out);
void qxs_seg_close(qxs_seg *s);

/* Write the tombstones as seg-<no>.del.<gen> (atomically) and take gen as the
 * current generation; the previous file is left for the caller to remove
 * once the manifest that names gen is durable. */
int qxs_seg_save_dead(qxs_seg *s, const char *dir, uint64_t gen, uint64_t *bytes);

/* Row holding id and not dead, or -1. */
long qxs_seg_find(const qxs_seg *s, const qxs_pid *id);
void qxs_seg_pid(const qxs_seg *s, uint32_t row, qxs_pid *id);
static inline const float *qxs_seg_vec(const qxs_seg *s, uint32_t row) { return s->vecs + (size_t)row * s->d; }
/* Payload bytes of a row (pointer into the mapping) and their length. */
const uint8_t *qxs_seg_payload(const qxs_seg *s, uint32_t row, uint32_t *len);
void qxs_seg_kill(qxs_seg *s, uint32_t row);
/* Check the vector and payload checksums (reads the whole file). */
int qxs_seg_verify(const qxs_seg *s);
/* RAM held (tombstones, and the vectors when on_disk = 0). */
size_t qxs_seg_ram_bytes(const qxs_seg *s);

#endif
