/* server/points_meta.c — point ids and payloads per row key (points_meta.h).
 *
 * Decisions:
 * 1. Payloads are opaque compact JSON bytes, one allocation per point, parsed
 *    only when a reply or an unindexed filter condition needs them.
 * 2. Allocated keys are never reused (a deleted UUID's slot stays free), so a
 *    replayed log can never map a key to the wrong point; the cost is 17
 *    bytes per UUID ever written.
 * 3. meta.bin is written before snapshot.bin at a checkpoint: if a crash
 *    falls between them, the log still holds everything after the older
 *    snapshot, and re-applying META records is idempotent (they carry keys
 *    and whole payloads).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "points_meta.h"
#include "wal.h"

#define META_MAGIC "QXMETA01"

typedef struct blob {
    uint32_t len;
    char data[];
} blob;

void qxs_pmeta_init(qxs_pmeta *m) { memset(m, 0, sizeof *m); }

void qxs_pmeta_free(qxs_pmeta *m) {
    for (size_t i = 0; i < m->payloads.cap; i++)
        if (m->payloads.used[i]) qx_free((void *)(uintptr_t)m->payloads.vals[i]);
    qx_idmap_free(&m->payloads);
    qx_free(m->tab);
    qx_free(m->apids);
    memset(m, 0, sizeof *m);
}

/* apids[i].kind holds USED | kind for a slot in use, 0 for a free one */
#define USED 0x80

static int slot_is(const qxs_pid *q, const qxs_pid *p) {
    return (q->kind & USED) && (q->kind & 0x7f) == p->kind && q->hi == p->hi && q->lo == p->lo;
}

static uint64_t slot_hash(const qxs_pid *q) {
    qxs_pid t = *q;
    t.kind &= 0x7f;
    return qxs_pid_hash(&t);
}

static int identity(const qxs_pid *p) { return p->kind == QXS_PID_U64 && p->lo < (uint64_t)QXS_KEY_ALLOC_BASE; }

static const qxs_pid *apid(const qxs_pmeta *m, int64_t key) {
    if (key < QXS_KEY_ALLOC_BASE || (size_t)(key - QXS_KEY_ALLOC_BASE) >= m->napids) return NULL;
    return &m->apids[key - QXS_KEY_ALLOC_BASE];
}

int64_t qxs_pmeta_key(const qxs_pmeta *m, const qxs_pid *pid) {
    if (identity(pid)) return (int64_t)pid->lo;
    if (!m->tabcap) return -1;
    for (size_t h = qxs_pid_hash(pid) & (m->tabcap - 1); m->tab[h]; h = (h + 1) & (m->tabcap - 1)) {
        const qxs_pid *q = apid(m, m->tab[h]);
        if (q && slot_is(q, pid)) return m->tab[h];
    }
    return -1;
}

qxs_pid qxs_pmeta_pid(const qxs_pmeta *m, int64_t key) {
    const qxs_pid *q = apid(m, key);
    if (q && (q->kind & USED)) {
        qxs_pid r = *q;
        r.kind &= 0x7f;
        return r;
    }
    return qxs_pid_u64((uint64_t)key);
}

const char *qxs_pmeta_payload(const qxs_pmeta *m, int64_t key, uint32_t *len) {
    uint64_t v;
    if (!qx_idmap_get(&m->payloads, key, &v)) {
        *len = 0;
        return NULL;
    }
    const blob *b = (const blob *)(uintptr_t)v;
    *len = b->len;
    return b->data;
}

int qxs_pmeta_assign(const qxs_pmeta *m, const qxs_pid *pids, size_t n, int64_t *keys) {
    /* new non-identity pids of this batch, deduplicated in a scratch table */
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    size_t *t = NULL; /* index + 1 into pids */
    int64_t next = QXS_KEY_ALLOC_BASE + (int64_t)m->napids;
    for (size_t i = 0; i < n; i++) {
        int64_t k = qxs_pmeta_key(m, &pids[i]);
        if (k >= 0) {
            keys[i] = k;
            continue;
        }
        if (!t && !(t = qx_calloc(cap, sizeof *t))) return qx_error_set(QX_ENOMEM, "key assignment");
        size_t h = qxs_pid_hash(&pids[i]) & (cap - 1);
        for (; t[h]; h = (h + 1) & (cap - 1))
            if (qxs_pid_eq(&pids[t[h] - 1], &pids[i])) break;
        if (t[h]) keys[i] = keys[t[h] - 1];
        else {
            t[h] = i + 1;
            keys[i] = next++;
        }
    }
    qx_free(t);
    return 0;
}

static int tab_insert(qxs_pmeta *m, const qxs_pid *pid, int64_t key) {
    if ((m->count + 1) * 2 > m->tabcap) {
        size_t cap = m->tabcap ? m->tabcap * 2 : 64;
        int64_t *t = qx_calloc(cap, sizeof *t);
        if (!t) return qx_error_set(QX_ENOMEM, "point id map");
        for (size_t i = 0; i < m->tabcap; i++) {
            if (!m->tab[i]) continue;
            size_t h = slot_hash(apid(m, m->tab[i])) & (cap - 1);
            while (t[h]) h = (h + 1) & (cap - 1);
            t[h] = m->tab[i];
        }
        qx_free(m->tab);
        m->tab = t;
        m->tabcap = cap;
    }
    size_t h = qxs_pid_hash(pid) & (m->tabcap - 1);
    while (m->tab[h]) h = (h + 1) & (m->tabcap - 1);
    m->tab[h] = key;
    m->count++;
    return 0;
}

static void tab_remove(qxs_pmeta *m, int64_t key) {
    const qxs_pid *pid = apid(m, key);
    if (!pid || !(pid->kind & USED) || !m->tabcap) return;
    size_t mask = m->tabcap - 1, h = slot_hash(pid) & mask;
    while (m->tab[h] && m->tab[h] != key) h = (h + 1) & mask;
    if (!m->tab[h]) return;
    /* backward-shift deletion keeps probe chains unbroken */
    size_t i = h;
    for (size_t j = (i + 1) & mask; m->tab[j]; j = (j + 1) & mask) {
        size_t home = slot_hash(apid(m, m->tab[j])) & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->tab[i] = m->tab[j];
            i = j;
        }
    }
    m->tab[i] = 0;
    m->count--;
}

static void set_payload(qxs_pmeta *m, int64_t key, blob *b) {
    uint64_t old;
    if (qx_idmap_get(&m->payloads, key, &old)) {
        m->payload_bytes -= ((blob *)(uintptr_t)old)->len;
        qx_free((void *)(uintptr_t)old);
        if (!b) qx_idmap_del(&m->payloads, key);
    }
    if (b) {
        qx_idmap_put(&m->payloads, key, (uint64_t)(uintptr_t)b); /* reserved by the caller */
        m->payload_bytes += b->len;
    }
}

int qxs_pmeta_apply(qxs_pmeta *m, const qxs_meta_ent *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t key = e[i].key;
        if (key < 0) return qx_error_set(QX_EFORMAT, "negative key in point metadata");
        if (key >= QXS_KEY_ALLOC_BASE) {
            size_t slot = (size_t)(key - QXS_KEY_ALLOC_BASE);
            if (slot > (size_t)1 << 40) return qx_error_set(QX_EFORMAT, "allocated key out of range");
            if (slot >= m->capapids) {
                size_t cap = m->capapids ? m->capapids : 64;
                while (cap <= slot) cap *= 2;
                qxs_pid *a = qx_realloc(m->apids, cap * sizeof *a);
                if (!a) return qx_error_set(QX_ENOMEM, "point ids");
                memset(a + m->capapids, 0, (cap - m->capapids) * sizeof *a);
                m->apids = a;
                m->capapids = cap;
            }
            if (slot >= m->napids) m->napids = slot + 1;
            if (!(m->apids[slot].kind & USED)) {
                m->apids[slot] = e[i].pid;
                m->apids[slot].kind |= USED;
                if (tab_insert(m, &e[i].pid, key)) {
                    m->apids[slot].kind = 0;
                    return QX_ENOMEM;
                }
            }
        }
        if (e[i].len == QXS_PAYLOAD_KEEP) continue;
        blob *b = NULL;
        if (e[i].len) {
            if (!(b = qx_malloc(sizeof *b + e[i].len))) return qx_error_set(QX_ENOMEM, "payload");
            b->len = e[i].len;
            memcpy(b->data, e[i].payload, e[i].len);
            if (qx_idmap_reserve(&m->payloads, m->payloads.count + 1)) {
                qx_free(b);
                return qx_error_set(QX_ENOMEM, "payload map");
            }
        }
        set_payload(m, key, b);
    }
    return 0;
}

void qxs_pmeta_forget(qxs_pmeta *m, int64_t key) {
    set_payload(m, key, NULL);
    const qxs_pid *p = apid(m, key);
    if (p && (p->kind & USED)) {
        tab_remove(m, key);
        m->apids[key - QXS_KEY_ALLOC_BASE].kind = 0;
    }
}

/* ---- log record bodies ------------------------------------------------------ */

#define ENT_HDR 29 /* key 8, kind 1, hi 8, lo 8, len 4 */

int qxs_meta_encode(const qxs_meta_ent *e, size_t n, uint8_t **out, size_t *len) {
    size_t total = 4;
    for (size_t i = 0; i < n; i++) total += ENT_HDR + (e[i].len == QXS_PAYLOAD_KEEP ? 0 : e[i].len);
    uint8_t *b = qx_malloc(total), *p = b;
    if (!b) return qx_error_set(QX_ENOMEM, "log record of %zu bytes", total);
    uint32_t n32 = (uint32_t)n;
    memcpy(p, &n32, 4), p += 4;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, &e[i].key, 8), p += 8;
        *p++ = e[i].pid.kind;
        memcpy(p, &e[i].pid.hi, 8), p += 8;
        memcpy(p, &e[i].pid.lo, 8), p += 8;
        memcpy(p, &e[i].len, 4), p += 4;
        if (e[i].len != QXS_PAYLOAD_KEEP && e[i].len) memcpy(p, e[i].payload, e[i].len), p += e[i].len;
    }
    *out = b;
    *len = total;
    return 0;
}

int qxs_meta_decode(const uint8_t *buf, size_t len, qxs_meta_ent **out, size_t *nout) {
    uint32_t n;
    if (len < 4) return qx_error_set(QX_EFORMAT, "short point metadata record");
    memcpy(&n, buf, 4);
    if (n > len / ENT_HDR) return qx_error_set(QX_EFORMAT, "point metadata record count %u too large", n);
    qxs_meta_ent *e = qx_calloc(n ? n : 1, sizeof *e);
    if (!e) return qx_error_set(QX_ENOMEM, "point metadata");
    size_t off = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < ENT_HDR) goto bad;
        memcpy(&e[i].key, buf + off, 8);
        e[i].pid.kind = buf[off + 8];
        memcpy(&e[i].pid.hi, buf + off + 9, 8);
        memcpy(&e[i].pid.lo, buf + off + 17, 8);
        memcpy(&e[i].len, buf + off + 25, 4);
        off += ENT_HDR;
        if (e[i].pid.kind != QXS_PID_U64 && e[i].pid.kind != QXS_PID_UUID) goto bad;
        if (e[i].len != QXS_PAYLOAD_KEEP) {
            if (e[i].len > len - off || e[i].len > QXS_MAX_PAYLOAD) goto bad;
            e[i].payload = (const char *)buf + off;
            off += e[i].len;
        }
    }
    if (off != len) goto bad;
    *out = e;
    *nout = n;
    return 0;
bad:
    qx_free(e);
    return qx_error_set(QX_EFORMAT, "malformed point metadata record");
}

/* ---- meta.bin ------------------------------------------------------------------ */

typedef struct wbuf {
    qx_afile f;
    int rc;
    uint32_t crc;
    uint8_t buf[1 << 16];
    size_t n;
} wbuf;

static void wflush(wbuf *w) {
    if (!w->rc && w->n) w->rc = qx_afile_write(&w->f, w->buf, w->n);
    w->n = 0;
}

static void wput(wbuf *w, const void *p, size_t len, int crc) {
    if (crc) w->crc = qx_crc32(w->crc, p, len);
    const uint8_t *s = p;
    while (len) {
        size_t k = sizeof w->buf - w->n < len ? sizeof w->buf - w->n : len;
        memcpy(w->buf + w->n, s, k);
        w->n += k, s += k, len -= k;
        if (w->n == sizeof w->buf) wflush(w);
    }
}

int qxs_pmeta_save(const qxs_pmeta *m, uint64_t lsn, const char *path) {
    wbuf *w = qx_malloc(sizeof *w);
    if (!w) return qx_error_set(QX_ENOMEM, "write buffer");
    w->rc = qx_afile_open(&w->f, path);
    if (w->rc) {
        qx_free(w);
        return w->rc;
    }
    w->crc = 0, w->n = 0;
    wput(w, META_MAGIC, 8, 0);
    uint64_t napids = m->napids, npl = m->payloads.count;
    wput(w, &lsn, 8, 1);
    wput(w, &napids, 8, 1);
    for (size_t i = 0; i < m->napids; i++) {
        wput(w, &m->apids[i].kind, 1, 1);
        wput(w, &m->apids[i].hi, 8, 1);
        wput(w, &m->apids[i].lo, 8, 1);
    }
    wput(w, &npl, 8, 1);
    for (size_t i = 0; i < m->payloads.cap; i++) {
        if (!m->payloads.used[i]) continue;
        const blob *b = (const blob *)(uintptr_t)m->payloads.vals[i];
        wput(w, &m->payloads.keys[i], 8, 1);
        wput(w, &b->len, 4, 1);
        wput(w, b->data, b->len, 1);
    }
    uint32_t crc = w->crc;
    wput(w, &crc, 4, 0);
    wflush(w);
    int rc = w->rc ? w->rc : qx_afile_commit(&w->f);
    if (w->rc) qx_afile_abort(&w->f);
    qx_free(w);
    return rc;
}

int qxs_pmeta_load(qxs_pmeta *m, const char *path, uint64_t *lsn) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return qx_error_set(QX_ENOTFOUND, "%s: absent", path);
        return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return qx_error_set(QX_EIO, "stat %s", path);
    }
    size_t len = (size_t)st.st_size, got = 0;
    uint8_t *b = qx_malloc(len ? len : 1);
    if (!b) {
        close(fd);
        return qx_error_set(QX_ENOMEM, "%s: %zu bytes", path, len);
    }
    while (got < len) {
        ssize_t r = read(fd, b + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    int rc = 0;
    uint32_t crc;
    if (got != len || len < 8 + 8 + 8 + 8 + 4 || memcmp(b, META_MAGIC, 8)) goto bad;
    memcpy(&crc, b + len - 4, 4);
    if (qx_crc32(0, b + 8, len - 12) != crc) goto bad;
    size_t off = 8;
    uint64_t napids, npl;
    memcpy(lsn, b + off, 8), off += 8;
    memcpy(&napids, b + off, 8), off += 8;
    if (napids > (len - off) / 17) goto bad;
    for (uint64_t i = 0; i < napids; i++, off += 17) {
        qxs_meta_ent e = {.key = QXS_KEY_ALLOC_BASE + (int64_t)i, .len = QXS_PAYLOAD_KEEP};
        e.pid.kind = b[off];
        memcpy(&e.pid.hi, b + off + 1, 8);
        memcpy(&e.pid.lo, b + off + 9, 8);
        if (!(e.pid.kind & USED)) continue;
        e.pid.kind &= 0x7f;
        if ((rc = qxs_pmeta_apply(m, &e, 1))) goto out;
    }
    if (len - off < 8 + 4) goto bad;
    memcpy(&npl, b + off, 8), off += 8;
    for (uint64_t i = 0; i < npl; i++) {
        qxs_meta_ent e;
        if (len - 4 - off < 12) goto bad;
        memcpy(&e.key, b + off, 8);
        memcpy(&e.len, b + off + 8, 4);
        off += 12;
        if (e.len > len - 4 - off || e.len == QXS_PAYLOAD_KEEP) goto bad;
        e.payload = (const char *)b + off;
        e.pid = qxs_pmeta_pid(m, e.key);
        off += e.len;
        if ((rc = qxs_pmeta_apply(m, &e, 1))) goto out;
    }
    if (off != len - 4) goto bad;
    goto out;
bad:
    rc = qx_error_set(QX_EFORMAT, "%s: corrupt point metadata (truncated or checksum mismatch)", path);
out:
    qx_free(b);
    return rc;
}

void qxs_pmeta_each_payload(const qxs_pmeta *m, void (*fn)(void *, int64_t, const char *, uint32_t), void *ctx) {
    for (size_t i = 0; i < m->payloads.cap; i++) {
        if (!m->payloads.used[i]) continue;
        const blob *b = (const blob *)(uintptr_t)m->payloads.vals[i];
        fn(ctx, m->payloads.keys[i], b->data, b->len);
    }
}
