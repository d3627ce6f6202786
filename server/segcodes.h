/* server/segcodes.h — a sealed segment's IVF entries, written once (internal
 * to the server).
 *
 * seg-<no>.codes.<gen> holds, for every row of segment <no>, the IVF list
 * and code bytes the index generation <gen> (index-<gen>.qx, the model)
 * gave it. It is written when the segment is sealed (or made by a merge),
 * and for every segment again only when a rebuild publishes a new model, so
 * a checkpoint writes the codes of the rows written since the last one, not
 * the whole index. Restart reads these files, not the raw vectors.
 *
 * Layout (little-endian): header 48 bytes: "QXCOD001", u32 version (1),
 * u32 segment no, u64 rows n, u64 gen, u32 code_size, u32 nlist, u32 0,
 * u32 crc of bytes 0..43; then n records {u32 list (UINT32_MAX: the row is
 * not in the index), code_size bytes}; then u32 crc of the records.
 */
#ifndef QXS_SEGCODES_H
#define QXS_SEGCODES_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/ivf.h"

void qxs_codes_name(char *out, size_t cap, const char *dir, uint32_t no, uint64_t gen);
/* Write the entries of rows 0..n-1 of segment no as ivf holds them
 * (atomically). *bytes receives the file size. ivf is only read. */
int qxs_codes_write(const char *dir, uint32_t no, uint64_t gen, size_t n, const qx_ivf *ivf, uint64_t *bytes);
/* Read seg-<no>.codes.<gen> (n rows expected) and add the entries of the
 * rows not marked in dead (bitmap, may be NULL) to ivf. A missing, short or
 * corrupt file is QX_EFORMAT / QX_EIO naming it (ivf may then hold part of
 * the entries: the caller drops it). */
int qxs_codes_load(const char *dir, uint32_t no, uint64_t gen, size_t n, const uint64_t *dead, qx_ivf *ivf);

/* Several files at once (restart): every file is checked (header, list
 * numbers, checksum) before anything is added; then the lists of ivf (and
 * the rows of rm when not NULL) are reserved at their exact final size and
 * the entries of the rows not marked dead are added. Errors name the file;
 * on error ivf holds none of the entries unless the add itself failed. */
typedef struct qxs_rowmap qxs_rowmap;
typedef struct qxs_codes_src {
    uint32_t no;
    uint64_t gen;
    size_t n;
    const uint64_t *dead; /* may be NULL */
} qxs_codes_src;
int qxs_codes_load_all(const char *dir, const qxs_codes_src *src, size_t k, qx_ivf *ivf, qxs_rowmap *rm);

/* Read exactly len bytes (retrying short reads and EINTR): 0, or -1 on an
 * error or end of file. */
int qxs_read_full(int fd, void *buf, size_t len);

#endif
