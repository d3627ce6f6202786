/* core/idmap.h — the library's names for the id map of qinx/idmap.h
 * (internal): the IVF index maps a user id to the location (list, offset)
 * of its entry. */
#ifndef QINX_CORE_IDMAP_H
#define QINX_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/idmap.h"

typedef qx_idmap qx__idmap; /* vals: list << 32 | offset */

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
