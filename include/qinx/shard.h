/* qinx/shard.h — an index split into shards, tied together by a manifest.
 *
 * A distributed build (`mpirun … qinx-mpi build --mpi`) writes one ordinary
 * index file per rank, each holding the rows of one contiguous range with
 * the SAME trained model (coarse centroids, quantizer, norm levels), and a
 * manifest naming them. The manifest is a short text file:
 *
 *   qinx-manifest 1
 *   dim 128
 *   metric l2
 *   code_size 16
 *   nlist 1024
 *   rows 1000000
 *   base_bytes 516000000
 *   base_mtime_ns 1733270000123456789
 *   shards 2
 *   shard 0 rows 0 500000 bytes 8412345 crc 1a2b3c4d uri file:out.qinx.6d2f.shard-0-of-2
 *   shard 1 rows 500000 1000000 bytes 8412399 crc 5e6f7a8b uri file:out.qinx.6d2f.shard-1-of-2
 *   crc 0c0ffee0
 *
 * The last line is the CRC-32 of every byte before it. Row ranges must tile
 * [0, rows) in order. A shard's location is a URI: `file:` + a path, relative
 * to the manifest's directory unless absolute. Other schemes (a shard served
 * by another host) are refused today with a clear error, so a later reader
 * can add them without changing the format. Each shard's size and CRC-32 are
 * checked before it is loaded: a missing, truncated, replaced or corrupt
 * shard is refused, naming the shard.
 *
 * Searching: every shard is searched with the same parameters and the
 * per-shard top-k lists are merged (smallest L2 distance / largest inner
 * product first). Because the shards share one trained model, a probed
 * list of the whole index is the union of that list's parts in the shards:
 * without re-ranking the merged top-k are the single index's top-k (up to
 * the order of equal scores); with a re-ranking shortlist each shard keeps
 * its own shortlist, so the union re-ranks at least as many candidates.
 * Conventions: qinx/defs.h. A const qx_sharded may be searched from many
 * threads at once (each call makes its own search contexts).
 */
#ifndef QINX_SHARD_H
#define QINX_SHARD_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

#include "qinx/core.h"
#include "qinx/ivf.h"

QX_BEGIN_DECLS

#define QX_MAX_SHARDS 65536

typedef struct qx_shard_entry {
    uint64_t row_begin, row_end; /* rows [begin, end) of the base */
    uint64_t bytes;              /* file size */
    uint32_t crc;                /* CRC-32 of the whole file */
    char uri[QX_PATH_CAP];       /* "file:<path>" */
} qx_shard_entry;

typedef struct qx_manifest {
    size_t d, nlist, code_size, nshards;
    qx_metric metric;
    uint64_t rows;                 /* total rows (the base's) */
    uint64_t base_bytes;           /* the base file's size and mtime at build time (0 = unknown) */
    int64_t base_mtime_ns;
    qx_shard_entry *shards;        /* nshards entries (qx_free'd by qx_manifest_free) */
} qx_manifest;

/* Write m atomically (temp file, fsync, rename) at path. */
int qx_manifest_write(const char *path, const qx_manifest *m);
/* Read and validate (magic, every field, CRC, row ranges). Free with
 * qx_manifest_free. QX_EFORMAT for a damaged manifest, QX_ENOTFOUND missing. */
int qx_manifest_read(const char *path, qx_manifest *out);
void qx_manifest_free(qx_manifest *m);
/* 1 if path starts with the manifest's first line, 0 otherwise (or unreadable). */
int qx_manifest_probe(const char *path);
/* The path of shard i's file (its file: URI resolved against the
 * manifest's directory) into buf. QX_EINVAL for a scheme other than file:. */
int qx_manifest_shard_path(const char *manifest_path, const qx_shard_entry *e, char *buf, size_t cap);

/* Size and CRC-32 of a whole file. */
int qx_file_crc32(const char *path, uint64_t *bytes, uint32_t *crc);

typedef struct qx_sharded qx_sharded;

/* Read the manifest, check every shard's size and CRC, load them and check
 * that they share one trained model and match the manifest. */
int qx_sharded_open(qx_sharded **out, const char *manifest_path);
void qx_sharded_free(qx_sharded *s); /* NULL-safe */
size_t qx_sharded_count(const qx_sharded *s);
const qx_ivf *qx_sharded_shard(const qx_sharded *s, size_t i);
const qx_manifest *qx_sharded_manifest(const qx_sharded *s);

/* k nearest neighbours of nq queries over all shards: as qx_ivf_search
 * (dist and ids nq*k, caller-owned, padded with ±inf and -1). */
int qx_sharded_search(const qx_sharded *s, const float *queries, size_t nq, size_t k,
                      const qx_search_params *params, float *dist, int64_t *ids);

/* One index holding every shard's entries (verified and appended in row
 * order, one shard in memory at a time besides the result): byte for byte
 * the index a single build over all rows writes. */
int qx_sharded_merge(const char *manifest_path, qx_ivf **out);

/* Append every entry of src to dst (lists in order, src's entries after
 * dst's): src must hold the same trained model (QX_EINVAL otherwise) and no
 * id already in dst (QX_EEXIST). Shards appended in row order give the
 * index a single build over all rows writes, byte for byte. */
int qx_ivf_append(qx_ivf *dst, const qx_ivf *src);

QX_END_DECLS
#endif
