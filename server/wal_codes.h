/* server/wal_codes.h — the codes of the write-ahead log's records (internal
 * to the server).
 *
 * Why: replaying the log tail at restart re-encoded every point written since
 * the last checkpoint. Encoding (RQ beam search) costs ~100-200 us a point on
 * this machine, so a 64 MiB log (~126,000 128-d points) added ~10-20 s to a
 * restart, and a 256 MiB one a minute. wal.codes keeps, for each log record
 * written while the index was the manifest's model, the IVF list and code
 * bytes the index gave its points; replay takes them from there instead of
 * encoding.
 *
 * It is a cache, not a source of truth: it is written after the log record
 * (not fsynced), and an entry is used only when it matches its record
 * exactly (same lsn, point count and record checksum) and the file's model
 * generation is the loaded model's; anything else (missing, torn, corrupt,
 * another model) is skipped and those points are encoded as before. A
 * checkpoint empties it together with the log.
 *
 * Layout (little-endian): header 32 bytes: "QXWCD001", u32 version (1),
 * u32 code_size, u64 model generation, u32 nlist, u32 crc of bytes 0..27.
 * Entries: u32 body length, u32 crc of the body, body: u64 lsn, u32 record
 * checksum, u32 n, n x {u32 list (UINT32_MAX: not indexed), code_size bytes}.
 */
#ifndef QXS_WAL_CODES_H
#define QXS_WAL_CODES_H

#include <stddef.h>
#include <stdint.h>

#define QXS_WCODES_FILE "wal.codes"

typedef struct qxs_wcodes {
    int fd;            /* -1: not written (no index, or a model not yet checkpointed) */
    uint64_t gen;      /* model generation of the entries */
    size_t cs, nlist;
    /* entries read at open, for replay */
    uint8_t *old;
    size_t old_len, old_pos;
    uint64_t used, missed; /* replayed records that found / did not find their entry */
} qxs_wcodes;

void qxs_wcodes_init(qxs_wcodes *w);
/* replay: read path's entries if its header says (gen, cs, nlist) (else
 * none). Then start the file again, empty, for that model: replay appends
 * the entries of the records it applies. gen 0: no index; the file is
 * removed and nothing is written. Errors are not fatal (the caller logs
 * and goes on without the cache). */
int qxs_wcodes_open(qxs_wcodes *w, const char *path, uint64_t gen, size_t cs, size_t nlist, int replay);
/* The entry of record (lsn, crc, n) among those read at open: 1 and
 * pointers into the buffer (lists: n u32, unaligned; codes: after each
 * list), else 0. Entries are looked up in increasing lsn order. */
int qxs_wcodes_find(qxs_wcodes *w, uint64_t lsn, uint32_t crc, uint32_t n, const uint8_t **entries);
/* Entries are n x {u32 list, cs code bytes} records. */
static inline size_t qxs_wcodes_rec(const qxs_wcodes *w) { return 4 + w->cs; }
/* Append the entry of record (lsn, crc): entries = n records as above. On
 * a write error the file is dropped (fd -1): later records are encoded at
 * replay, as without the cache. */
void qxs_wcodes_append(qxs_wcodes *w, uint64_t lsn, uint32_t crc, uint32_t n, const uint8_t *entries);
/* Drop the entries read at open (after replay). */
void qxs_wcodes_done_replay(qxs_wcodes *w);
void qxs_wcodes_close(qxs_wcodes *w);

#endif
