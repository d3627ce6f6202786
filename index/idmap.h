/* index/idmap.h — open-addressing hash map from 64-bit user id to the
 * location (list, offset) of its entry. Linear probing with backward-shift
 * deletion (no tombstones), load factor kept under 1/2. */
#ifndef QINX_IDMAP_H
#define QINX_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct qx__idmap {
    int64_t *keys;
    uint64_t *vals; /* list << 32 | offset */
    uint8_t *used;
    size_t cap, count; /* cap is a power of two or 0 */
} qx__idmap;

int qx__idmap_reserve(qx__idmap *m, size_t n);
/* Insert or overwrite. */
int qx__idmap_put(qx__idmap *m, int64_t key, uint64_t val);
/* 1 and *val if present, else 0. */
int qx__idmap_get(const qx__idmap *m, int64_t key, uint64_t *val);
/* 1 if removed, 0 if absent. */
int qx__idmap_del(qx__idmap *m, int64_t key);
void qx__idmap_free(qx__idmap *m);

static inline uint64_t qx__loc(uint32_t list, uint32_t off) {
    return ((uint64_t)list << 32) | off;
}

#endif
