/* index/shard_manifest.c — the manifest of a sharded index (qinx/shard.h):
 * writing it atomically, reading it back with every field checked, and the
 * CRC-32 of a shard file.
 *
 * Decisions:
 * 1. Text, one fact per line, so a person can read it and a later reader can
 *    add keys; a trailing CRC-32 line covers every byte before it, so a
 *    flipped digit in a row range or a shard CRC is caught like a flipped
 *    bit in an index file.
 * 2. Shards are named by URI ("file:" today). An unknown scheme is an error
 *    naming it, not a silent skip: a manifest that names a remote shard must
 *    not be served as if it held fewer rows.
 * 3. The manifest is written by the atomic writer (core/file.c): it is the
 *    single commit point of a distributed build; shards are renamed into
 *    place before it, so a manifest never names a shard that is not there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h> /* strtoull; before internal.h poisons malloc */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "qinx/shard.h"

#define QX__MANIFEST_MAGIC "qinx-manifest 1\n"
#define QX__MANIFEST_MAX ((size_t)64 << 20)

int qx_file_crc32(const char *path, uint64_t *bytes, uint32_t *crc) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return qx__fail(e == ENOENT ? QX_ENOTFOUND : QX_EIO, "cannot open '%s': %s", path, strerror(e));
    }
    uint8_t *buf = qx__malloc((size_t)1 << 20);
    if (!buf) {
        close(fd);
        return qx__fail(QX_ENOMEM, "crc of '%s'", path);
    }
    uint32_t c = 0;
    uint64_t n = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, buf, (size_t)1 << 20);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = qx__fail(QX_EIO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (got == 0) break;
        c = qx__crc32(c, buf, (size_t)got);
        n += (uint64_t)got;
    }
    qx__free(buf);
    close(fd);
    if (rc == 0) *bytes = n, *crc = c;
    return rc;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct { char *p; size_t len, cap; int err; } sbuf;

static void add(sbuf *b, const char *fmt, ...) QX__PRINTF(2, 3);
static void add(sbuf *b, const char *fmt, ...) {
    if (b->err) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->err = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = qx__realloc(b->p, cap);
        if (!p) { b->err = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

int qx_manifest_write(const char *path, const qx_manifest *m) {
    if (!path || !m || (m->nshards && !m->shards)) return qx__fail(QX_EINVAL, "manifest_write: NULL argument");
    if (m->nshards == 0 || m->nshards > QX_MAX_SHARDS)
        return qx__fail(QX_EINVAL, "manifest_write: %zu shards outside 1..%d", m->nshards, QX_MAX_SHARDS);
    sbuf b = {0};
    add(&b, "%s", QX__MANIFEST_MAGIC);
    add(&b, "dim %zu\nmetric %s\ncode_size %zu\nnlist %zu\nrows %" PRIu64 "\n", m->d,
        m->metric == QX_METRIC_IP ? "ip" : "l2", m->code_size, m->nlist, m->rows);
    add(&b, "base_bytes %" PRIu64 "\nbase_mtime_ns %" PRId64 "\nshards %zu\n", m->base_bytes,
        m->base_mtime_ns, m->nshards);
    for (size_t i = 0; i < m->nshards; i++) {
        const qx_shard_entry *e = &m->shards[i];
        if (strpbrk(e->uri, " \n\r") || !e->uri[0]) {
            qx__free(b.p);
            return qx__fail(QX_EINVAL, "manifest_write: shard %zu: URI '%s' is empty or has a space", i, e->uri);
        }
        add(&b, "shard %zu rows %" PRIu64 " %" PRIu64 " bytes %" PRIu64 " crc %08" PRIx32 " uri %s\n", i,
            e->row_begin, e->row_end, e->bytes, e->crc, e->uri);
    }
    if (b.err) {
        qx__free(b.p);
        return qx__fail(QX_ENOMEM, "manifest_write");
    }
    add(&b, "crc %08" PRIx32 "\n", qx__crc32(0, b.p, b.len));
    int rc = b.err ? qx__fail(QX_ENOMEM, "manifest_write") : qx__write_atomic(path, b.p, b.len);
    qx__free(b.p);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

int qx_manifest_probe(const char *path) {
    char head[sizeof QX__MANIFEST_MAGIC];
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) return 0;
    ssize_t n = read(fd, head, sizeof head - 1);
    close(fd);
    return n == (ssize_t)sizeof head - 1 && !memcmp(head, QX__MANIFEST_MAGIC, sizeof head - 1);
}

/* Next line of the text (NUL-terminated in place); NULL at the end. */
static char *next_line(char **cur) {
    char *s = *cur;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) *nl = '\0', *cur = nl + 1;
    else *cur = s + strlen(s);
    return s;
}

static int want_u64(const char *path, const char *line, const char *key, uint64_t *v) {
    size_t kl = strlen(key);
    char *end;
    if (!line || strncmp(line, key, kl) || line[kl] != ' ' || line[kl + 1] < '0' || line[kl + 1] > '9')
        return qx__fail(QX_EFORMAT, "manifest '%s': expected '%s <number>', found '%.60s'", path, key,
                        line ? line : "(end of file)");
    errno = 0;
    *v = strtoull(line + kl + 1, &end, 10);
    if (errno || *end) return qx__fail(QX_EFORMAT, "manifest '%s': bad number in '%.60s'", path, line);
    return 0;
}

int qx_manifest_read(const char *path, qx_manifest *m) {
    if (!path || !m) return qx__fail(QX_EINVAL, "manifest_read: NULL argument");
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return qx__fail(e == ENOENT ? QX_ENOTFOUND : QX_EIO, "cannot open manifest '%s': %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (size_t)st.st_size > QX__MANIFEST_MAX) {
        close(fd);
        return qx__fail(QX_EFORMAT, "manifest '%s': empty, unreadable or larger than %zu bytes", path,
                        QX__MANIFEST_MAX);
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *text = qx__malloc(len + 1);
    if (!text) {
        close(fd);
        return qx__fail(QX_ENOMEM, "manifest '%s'", path);
    }
    while (got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    text[got] = '\0';
    int rc = 0;
    if (got != len) rc = qx__fail(QX_EIO, "manifest '%s': short read", path);
    else if (strlen(text) != len || len < sizeof QX__MANIFEST_MAGIC || memcmp(text, QX__MANIFEST_MAGIC, sizeof QX__MANIFEST_MAGIC - 1))
        rc = qx__fail(QX_EFORMAT, "'%s' is not a qinx shard manifest (no 'qinx-manifest 1' first line)", path);
    /* the CRC line: the last line, covering everything before it */
    char *crcl = NULL;
    if (rc == 0) {
        if (len < 15 || text[len - 1] != '\n') rc = qx__fail(QX_EFORMAT, "manifest '%s': truncated (no final CRC line)", path);
        else {
            text[len - 1] = '\0';
            crcl = strrchr(text, '\n');
            text[len - 1] = '\n';
            unsigned long want;
            char *end;
            if (!crcl || strncmp(crcl + 1, "crc ", 4))
                rc = qx__fail(QX_EFORMAT, "manifest '%s': truncated (no final CRC line)", path);
            else if ((want = strtoul(crcl + 5, &end, 16), *end != '\n' || end != crcl + 13))
                rc = qx__fail(QX_EFORMAT, "manifest '%s': bad CRC line", path);
            else if ((uint32_t)want != qx__crc32(0, text, (size_t)(crcl + 1 - text)))
                rc = qx__fail(QX_EFORMAT, "manifest '%s': CRC mismatch (stored %08lx, computed %08" PRIx32 "): corrupt",
                              path, want, qx__crc32(0, text, (size_t)(crcl + 1 - text)));
            else
                crcl[1] = '\0';
        }
    }
    char *cur = text + (rc ? len : sizeof QX__MANIFEST_MAGIC - 1);
    uint64_t d = 0, cs = 0, nlist = 0, rows = 0, bb = 0, bm = 0, ns = 0;
    if (rc == 0) rc = want_u64(path, next_line(&cur), "dim", &d);
    if (rc == 0) {
        char *l = next_line(&cur);
        if (!l || (strcmp(l, "metric l2") && strcmp(l, "metric ip")))
            rc = qx__fail(QX_EFORMAT, "manifest '%s': expected 'metric l2|ip', found '%.60s'", path, l ? l : "(end)");
        else m->metric = strcmp(l, "metric ip") ? QX_METRIC_L2 : QX_METRIC_IP;
    }
    if (rc == 0) rc = want_u64(path, next_line(&cur), "code_size", &cs);
    if (rc == 0) rc = want_u64(path, next_line(&cur), "nlist", &nlist);
    if (rc == 0) rc = want_u64(path, next_line(&cur), "rows", &rows);
    if (rc == 0) rc = want_u64(path, next_line(&cur), "base_bytes", &bb);
    if (rc == 0) rc = want_u64(path, next_line(&cur), "base_mtime_ns", &bm);
    if (rc == 0) rc = want_u64(path, next_line(&cur), "shards", &ns);
    if (rc == 0 && (d == 0 || d > QX_MAX_DIM || cs == 0 || nlist == 0 || nlist > QX_MAX_NLIST || ns == 0 ||
                    ns > QX_MAX_SHARDS))
        rc = qx__fail(QX_EFORMAT, "manifest '%s': dim %" PRIu64 ", code_size %" PRIu64 ", nlist %" PRIu64
                      " or shards %" PRIu64 " out of range", path, d, cs, nlist, ns);
    if (rc == 0 && !(m->shards = qx__calloc((size_t)ns, sizeof *m->shards)))
        rc = qx__fail(QX_ENOMEM, "manifest '%s': %" PRIu64 " shards", path, ns);
    uint64_t next_row = 0;
    for (uint64_t i = 0; rc == 0 && i < ns; i++) {
        char *l = next_line(&cur);
        qx_shard_entry *e = &m->shards[i];
        unsigned long long idx, b, en, by;
        unsigned crc;
        int off = 0;
        if (!l || sscanf(l, "shard %llu rows %llu %llu bytes %llu crc %8x uri %n", &idx, &b, &en, &by, &crc, &off) != 5 ||
            off == 0 || !l[off] || strlen(l + off) >= sizeof e->uri || strchr(l + off, ' '))
            rc = qx__fail(QX_EFORMAT, "manifest '%s': shard %" PRIu64 ": malformed line '%.80s'", path, i, l ? l : "(end)");
        else if (idx != i || b != next_row || en < b || en > rows)
            rc = qx__fail(QX_EFORMAT, "manifest '%s': shard %" PRIu64 ": rows %llu..%llu do not continue at row %" PRIu64,
                          path, i, b, en, next_row);
        else {
            e->row_begin = b, e->row_end = en, e->bytes = by, e->crc = crc;
            snprintf(e->uri, sizeof e->uri, "%s", l + off);
            next_row = en;
        }
    }
    if (rc == 0 && next_row != rows)
        rc = qx__fail(QX_EFORMAT, "manifest '%s': the shards hold rows 0..%" PRIu64 " of %" PRIu64, path, next_row, rows);
    if (rc == 0 && next_line(&cur))
        rc = qx__fail(QX_EFORMAT, "manifest '%s': unexpected lines after the shards", path);
    qx__free(text);
    if (rc) {
        qx_manifest_free(m);
        return rc;
    }
    m->d = (size_t)d, m->code_size = (size_t)cs, m->nlist = (size_t)nlist, m->nshards = (size_t)ns;
    m->rows = rows, m->base_bytes = bb, m->base_mtime_ns = (int64_t)bm;
    return 0;
}

void qx_manifest_free(qx_manifest *m) {
    if (!m) return;
    qx__free(m->shards);
    m->shards = NULL;
    m->nshards = 0;
}

int qx_manifest_shard_path(const char *manifest_path, const qx_shard_entry *e, char *buf, size_t cap) {
    if (strncmp(e->uri, "file:", 5))
        return qx__fail(QX_EINVAL, "shard URI '%s': only file: shards can be opened by this qinx", e->uri);
    const char *p = e->uri + 5;
    int n;
    if (p[0] == '/') {
        n = snprintf(buf, cap, "%s", p);
    } else {
        const char *slash = strrchr(manifest_path, '/');
        n = slash ? snprintf(buf, cap, "%.*s/%s", (int)(slash - manifest_path), manifest_path, p)
                  : snprintf(buf, cap, "%s", p);
    }
    if (n < 0 || (size_t)n >= cap) return qx__fail(QX_EINVAL, "shard URI '%s': path too long", e->uri);
    return 0;
}
