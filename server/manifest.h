/* server/manifest.h — the list of a collection's live sealed segments, the
 * log position they cover and the index file that goes with them
 * (internal to the server).
 *
 * File MANIFEST in the collection directory, replaced by atomic rename
 * (qx_write_atomic): it is the commit point of every checkpoint, merge and
 * rebuild. Binary, little-endian:
 *   "QXMAN001", u32 version (2), u32 d, u64 lsn (log records with lsn <= this
 *   are in the segments), u32 next_seg (number of the mutable segment),
 *   u32 nseg, u64 index_gen (index-<gen>.qx, 0 = no index), u64 reserved,
 *   nseg x {u32 no, u32 0, u64 n rows, u64 del_gen (seg-<no>.del.<gen>, 0 = none),
 *           u64 codes_gen (seg-<no>.codes.<gen>, 0 = none)},
 *   u32 crc32 of every byte before it.
 * Version 2 (this one): index-<gen>.qx is the model only (qx_ivf_save_model)
 * and each segment's entries are in its codes file (segcodes.h). Version 1
 * (read, never written) had 24-byte entries without codes_gen, and its
 * index file held every entry; the next checkpoint writes version 2.
 * Any change of any byte is caught (magic, size or checksum), and the error
 * names the file.
 */
#ifndef QXS_MANIFEST_H
#define QXS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define QXS_MANIFEST "MANIFEST"
#define QXS_MANIFEST_MAX_SEGS 65536
#define QXS_MANIFEST_VERSION 2

typedef struct qxs_manifest_seg {
    uint32_t no;
    uint64_t n, del_gen, codes_gen;
} qxs_manifest_seg;

typedef struct qxs_manifest {
    int version; /* as read (encode writes QXS_MANIFEST_VERSION) */
    size_t d;
    uint64_t lsn;
    uint32_t next_seg;
    uint64_t index_gen;
    size_t nseg;
    qxs_manifest_seg *segs; /* qx_malloc'ed */
} qxs_manifest;

/* Encode into a new buffer (qx_free). */
int qxs_manifest_encode(const qxs_manifest *m, uint8_t **buf, size_t *len);
/* Decode buf; path only names the file in errors (QX_EFORMAT). */
int qxs_manifest_decode(const uint8_t *buf, size_t len, const char *path, qxs_manifest *m);
/* dir/MANIFEST: write atomically / read (QX_ENOTFOUND when absent). */
int qxs_manifest_write(const char *dir, const qxs_manifest *m);
int qxs_manifest_read(const char *dir, qxs_manifest *m);
void qxs_manifest_free(qxs_manifest *m);

#endif
