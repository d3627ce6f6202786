/* server/pointid.h — a point's user id: an unsigned 64-bit integer or a UUID
 * (Qdrant's two id kinds), as one small value type the store keys points by.
 *
 * Decisions:
 * 1. One struct for both kinds, {hi, lo, kind}: a u64 id is {0, value,
 *    QXS_PID_U64}; a UUID is its 16 bytes read big-endian into hi (bytes
 *    0..7) and lo (bytes 8..15) with kind QXS_PID_UUID. The kind is part of
 *    the identity: the integer 5 and the UUID 00000000-0000-0000-0000-
 *    000000000005 are different points (Qdrant treats them so too).
 * 2. Total order: kind first (all integers before all UUIDs), then hi, then
 *    lo. Sealed segments keep a permutation sorted in this order, so an id is
 *    found by binary search without a hash map in RAM.
 * 3. On disk (WAL records, segment files) a pid is QXS_PID_DISK = 17 bytes,
 *    [u8 kind][u64 hi LE][u64 lo LE]; qxs_pid_put / qxs_pid_read convert.
 * 4. The IVF index never sees a pid: it is keyed by a 63-bit row key the
 *    store chooses (segment number << 32 | row), see segment.h.
 * Parsing and printing JSON ids (integers, canonical lowercase UUID strings)
 * lives in server/pointid_json.c (the API layer); qxs_pid_format here is
 * for logs and the default printer.
 */
#ifndef QXS_POINTID_H
#define QXS_POINTID_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define QXS_PID_U64 0
#define QXS_PID_UUID 1
#define QXS_PID_DISK 17     /* bytes of an encoded pid */
#define QXS_PID_STRLEN 37   /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL; u64 needs 21 */

typedef struct qxs_pid {
    uint64_t hi, lo;
    uint8_t kind; /* QXS_PID_U64 | QXS_PID_UUID */
} qxs_pid;

static inline qxs_pid qxs_pid_u64(uint64_t v) {
    qxs_pid p = {0, v, QXS_PID_U64};
    return p;
}

/* From the 16 bytes of a UUID in network (RFC 4122) order. */
static inline qxs_pid qxs_pid_uuid(const uint8_t b[16]) {
    qxs_pid p = {0, 0, QXS_PID_UUID};
    for (int i = 0; i < 8; i++) p.hi = (p.hi << 8) | b[i];
    for (int i = 8; i < 16; i++) p.lo = (p.lo << 8) | b[i];
    return p;
}

static inline int qxs_pid_eq(const qxs_pid *a, const qxs_pid *b) {
    return a->kind == b->kind && a->hi == b->hi && a->lo == b->lo;
}

/* <0, 0, >0 in the order of decision 2. */
static inline int qxs_pid_cmp(const qxs_pid *a, const qxs_pid *b) {
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return 0;
}

/* A well-mixed 64-bit hash (for hash maps keyed by pid). */
static inline uint64_t qxs_pid_hash(const qxs_pid *p) {
    uint64_t z = p->lo ^ (p->hi * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)p->kind << 63);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void qxs_pid_put(uint8_t out[QXS_PID_DISK], const qxs_pid *p) {
    out[0] = p->kind;
    memcpy(out + 1, &p->hi, 8);
    memcpy(out + 9, &p->lo, 8);
}

/* 0, or -1 when the kind byte is not a known kind (corrupt input). */
static inline int qxs_pid_read(const uint8_t in[QXS_PID_DISK], qxs_pid *p) {
    p->kind = in[0];
    memcpy(&p->hi, in + 1, 8);
    memcpy(&p->lo, in + 9, 8);
    if (p->kind > QXS_PID_UUID || (p->kind == QXS_PID_U64 && p->hi != 0)) return -1;
    return 0;
}

/* Decimal integer or canonical lowercase UUID text; returns buf. */
static inline char *qxs_pid_format(const qxs_pid *p, char buf[QXS_PID_STRLEN]) {
    if (p->kind == QXS_PID_U64) {
        snprintf(buf, QXS_PID_STRLEN, "%llu", (unsigned long long)p->lo);
    } else {
        snprintf(buf, QXS_PID_STRLEN, "%08x-%04x-%04x-%04x-%04x%08x", (unsigned)(p->hi >> 32),
                 (unsigned)(p->hi >> 16) & 0xffffu, (unsigned)p->hi & 0xffffu, (unsigned)(p->lo >> 48),
                 (unsigned)(p->lo >> 32) & 0xffffu, (unsigned)p->lo);
    }
    return buf;
}

#endif
