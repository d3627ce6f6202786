/* server/pointid.h — a point id as Qdrant has them: an unsigned 64-bit integer
 * or a UUID. The value type the store keys points by (contract with the
 * storage work, /work/team/iface-storage-qdrant.md); JSON reading and printing
 * live in pointid_json.c.
 *
 * An integer id has kind QXS_PID_U64, hi = 0, lo = the value. A UUID has kind
 * QXS_PID_UUID, hi = its first 8 bytes and lo = its last 8, big-endian, so
 * comparing (hi, lo) orders UUIDs as their canonical text does. Ordering
 * follows Qdrant's: every integer id sorts before every UUID. */
#ifndef QXS_POINTID_H
#define QXS_POINTID_H

#include <stddef.h>
#include <stdint.h>

#define QXS_PID_U64 1
#define QXS_PID_UUID 2
#define QXS_PID_TEXT_MAX 37 /* 36 characters of a canonical UUID + NUL */

typedef struct qxs_pid {
    uint64_t hi, lo;
    uint8_t kind;
} qxs_pid;

static inline qxs_pid qxs_pid_u64(uint64_t v) {
    qxs_pid p = {0, v, QXS_PID_U64};
    return p;
}

static inline int qxs_pid_eq(const qxs_pid *a, const qxs_pid *b) {
    return a->kind == b->kind && a->hi == b->hi && a->lo == b->lo;
}

/* <0, 0, >0 in Qdrant's order (integers first, then UUIDs by value). */
static inline int qxs_pid_cmp(const qxs_pid *a, const qxs_pid *b) {
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return 0;
}

static inline uint64_t qxs_pid_hash(const qxs_pid *p) {
    uint64_t h = p->lo * 0x9E3779B97F4A7C15ull ^ (p->hi + 0x632BE59BD9B4E019ull + p->kind);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

/* Parse text: a decimal integer 0..2^63-1 (no sign; jansson's integers are
 * signed 64-bit, so larger ids could not be answered in JSON) or a
 * UUID (8-4-4-4-12 hex with hyphens, 32 hex digits, either wrapped in {} or
 * prefixed by urn:uuid:; any case). 1 on success, 0 if it is neither. */
int qxs_pid_parse(const char *s, size_t len, qxs_pid *out);
/* Parse only the UUID forms (a JSON string id must be a UUID). */
int qxs_pid_parse_uuid(const char *s, size_t len, qxs_pid *out);
/* Canonical text: decimal, or lowercase 8-4-4-4-12. buf holds at least
 * QXS_PID_TEXT_MAX bytes; returns the length. */
size_t qxs_pid_format(const qxs_pid *p, char *buf);

#endif
