/* server/snapshot.c — collection snapshots (snapshot.h).
 *
 * Decisions:
 * 1. A snapshot is the collection's MANIFEST, the segment and tombstone
 *    files it names, the index file, meta.json and the log tail, frozen by
 *    hard links under the writer mutex right after a checkpoint (see
 *    stage_files); the archive is written from the links afterwards, with
 *    writers and searches going on.
 * 2. The file is qinx's own archive, not Qdrant's tar: magic "QXSNAP\0\1",
 *    u32 file count, per file [u16 name length][name][u64 size][bytes], then
 *    a CRC-32 of everything after the magic. It is checked whole before a
 *    recovery touches anything.
 * 3. Snapshots live in <data>/snapshots/<collection>/; names are
 *    <collection>-<unix seconds>-<n>.snapshot. Recovery reads only from
 *    there (a name, or a file:// URL inside that directory); other
 *    locations (http, other paths) are refused: a request never makes the
 *    server read or fetch arbitrary files.
 * 4. Recovery replaces the collection: the files are unpacked into a
 *    temporary directory, the old collection is dropped, the directory is
 *    renamed into place and opened. A snapshot that fails to open leaves
 *    no collection of that name (the files stay on disk for inspection).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "route.h"
#include "snapshot.h"

static const char MAGIC[8] = {'Q', 'X', 'S', 'N', 'A', 'P', 0, 1};
#define SUFFIX ".snapshot"

static int snap_dir(qxs_server *s, const char *coll, char *out, size_t cap, int create) {
    char top[PATH_MAX];
    if (snprintf(top, sizeof top, "%s/snapshots", s->cfg.data) >= (int)sizeof top ||
        snprintf(out, cap, "%s/%s", top, coll) >= (int)cap)
        return qx_error_set(QX_EINVAL, "path too long");
    if (create) {
        if (mkdir(top, 0755) && errno != EEXIST) return qx_error_set(QX_EIO, "mkdir %s: %s", top, strerror(errno));
        if (mkdir(out, 0755) && errno != EEXIST) return qx_error_set(QX_EIO, "mkdir %s: %s", out, strerror(errno));
    }
    return 0;
}

/* a snapshot name is <collection-alphabet, '-'>.snapshot: no path can hide in it */
static int name_ok(const char *n) {
    size_t l = strlen(n), sl = strlen(SUFFIX);
    return l > sl && l < 200 && !strcmp(n + l - sl, SUFFIX) && qxs_name_valid(n, l - sl);
}

typedef struct wr {
    qx_afile f;
    uint32_t crc;
    int bad;
} wr;

static void put(wr *w, const void *p, size_t n) {
    w->crc = qx_crc32(w->crc, p, n);
    if (!w->bad && qx_afile_write(&w->f, p, n)) w->bad = 1;
}

static int is_temp(const char *n) {
    size_t nl = strlen(n);
    return n[0] == '.' || (nl > 4 && !strcmp(n + nl - 4, ".tmp")) || strstr(n, ".tmp.") != NULL;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char fp[PATH_MAX + 300];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(fp, sizeof fp, "%s/%s", dir, e->d_name) < (int)sizeof fp) unlink(fp);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* Copy the first len bytes of src to a new file dst. */
static int copy_prefix(const char *src, const char *dst, uint64_t len) {
    int in = open(src, O_RDONLY | O_CLOEXEC), rc = 0;
    if (in < 0) return qx_error_set(QX_EIO, "open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) rc = qx_error_set(QX_EIO, "create %s: %s", dst, strerror(errno));
    char buf[1 << 16];
    while (!rc && len) {
        ssize_t k = read(in, buf, len < sizeof buf ? (size_t)len : sizeof buf);
        if (k <= 0) rc = qx_error_set(QX_EIO, "%s ended before %llu more bytes", src, (unsigned long long)len);
        else if (!(rc = qx_write_all(out, buf, (size_t)k))) len -= (uint64_t)k;
    }
    close(in);
    if (out >= 0) close(out);
    return rc;
}

/* The collection's state, frozen under its writer mutex: a checkpoint (so
 * the manifest covers every acknowledged write), then every file of the
 * directory hard-linked into stage. Segments, tombstone files, index files,
 * the manifest and meta.json are never rewritten in place (each change is a
 * new file renamed into place), so the links keep exactly this state while
 * writers go on; only the log is appended in place, so its written bytes are
 * copied (none right after the checkpoint; copied all the same so the
 * snapshot never depends on that). Where a link is impossible (another file
 * system), the file is copied. Writers wait only for the checkpoint and the
 * links, not for the archive. */
static int stage_files(qxs_coll *c, const char *stage) {
    if (mkdir(stage, 0755)) return qx_error_set(QX_EIO, "mkdir %s: %s", stage, strerror(errno));
    pthread_mutex_lock(&c->wmu);
    int rc = atomic_load(&c->dropped) ? qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name)
                                      : qxs_coll_checkpoint(c);
    DIR *dd = rc ? NULL : opendir(c->dir);
    if (!rc && !dd) rc = qx_error_set(QX_EIO, "opendir %s: %s", c->dir, strerror(errno));
    struct dirent *e;
    while (!rc && (e = readdir(dd)) != NULL) {
        char src[PATH_MAX + 300], dst[PATH_MAX + 300];
        struct stat st;
        /* wal.codes is a cache appended after each write (a link would keep
         * growing); the snapshot's log tail is just checkpointed, empty */
        if (is_temp(e->d_name) || !strcmp(e->d_name, QXS_WCODES_FILE)) continue;
        if (snprintf(src, sizeof src, "%s/%s", c->dir, e->d_name) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", stage, e->d_name) >= (int)sizeof dst) {
            rc = qx_error_set(QX_EINVAL, "path too long: %s/%s", stage, e->d_name);
            break;
        }
        if (stat(src, &st) || !S_ISREG(st.st_mode)) continue;
        if (!strcmp(e->d_name, "wal.log")) rc = copy_prefix(src, dst, c->wal.size);
        else if (link(src, dst)) rc = copy_prefix(src, dst, (uint64_t)st.st_size);
    }
    if (dd) closedir(dd);
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* Pack every file of stage into the archive w (format in decision 2). */
static int pack_files(const char *stage, wr *w) {
    DIR *dd = opendir(stage);
    if (!dd) return qx_error_set(QX_EIO, "opendir %s: %s", stage, strerror(errno));
    uint32_t nf = 0;
    struct dirent *e;
    int rc = 0;
    for (int pass = 0; !rc && pass < 2; pass++) { /* count, then write */
        rewinddir(dd);
        if (pass == 1) put(w, &nf, 4);
        while (!rc && (e = readdir(dd)) != NULL) {
            char fp[PATH_MAX + 300];
            struct stat st;
            size_t nl = strlen(e->d_name);
            if (e->d_name[0] == '.' || snprintf(fp, sizeof fp, "%s/%s", stage, e->d_name) >= (int)sizeof fp ||
                stat(fp, &st) || !S_ISREG(st.st_mode))
                continue;
            if (pass == 0) {
                nf++;
                continue;
            }
            FILE *in = fopen(fp, "rb");
            if (!in) {
                rc = qx_error_set(QX_EIO, "open %s: %s", fp, strerror(errno));
                break;
            }
            uint16_t l16 = (uint16_t)nl;
            uint64_t sz = (uint64_t)st.st_size, left = sz;
            put(w, &l16, 2);
            put(w, e->d_name, nl);
            put(w, &sz, 8);
            char buf[1 << 16];
            while (left) {
                size_t k = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in);
                if (!k) break;
                put(w, buf, k);
                left -= k;
            }
            fclose(in);
            if (left) rc = qx_error_set(QX_EIO, "%s changed size while copied", fp);
        }
    }
    closedir(dd);
    return rc;
}

void qxs_snapshot_create(qxs_server *s, qxs_coll *c, qxs_reply *o) {
    static _Atomic unsigned seq;
    char dir[PATH_MAX], path[PATH_MAX + 300], stage[PATH_MAX + 300], name[256];
    if (snap_dir(s, c->name, dir, sizeof dir, 1)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return;
    }
    if (atomic_load(&c->failed)) {
        qxs_api_fail(o, 409, "collection '%s' is read-only (%s): no checkpoint, so no snapshot", c->name,
                     c->red_reason);
        return;
    }
    long now = (long)time(NULL);
    snprintf(name, sizeof name, "%s-%ld-%u%s", c->name, now, atomic_fetch_add(&seq, 1), SUFFIX);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(stage, sizeof stage, "%s/.stage-%s", dir, name);
    int rc = stage_files(c, stage);
    wr w = {.crc = 0, .bad = 0};
    if (!rc && !(rc = qx_afile_open(&w.f, path))) {
        if (qx_afile_write(&w.f, MAGIC, 8)) w.bad = 1;
        rc = pack_files(stage, &w);
        uint32_t crc = w.crc;
        if (!w.bad && qx_afile_write(&w.f, &crc, 4)) w.bad = 1;
        if (!rc && w.bad) rc = qx_error_set(QX_EIO, "writing %s failed: %s", path, qx_last_error());
        if (rc) qx_afile_abort(&w.f);
        else rc = qx_afile_commit(&w.f);
    }
    remove_tree(stage);
    if (rc) {
        int st = qxs_api_status(rc);
        qxs_api_fail(o, st == 404 ? 404 : 500, "snapshot failed: %s", qx_last_error());
        return;
    }
    struct stat st;
    stat(path, &st);
    char iso[32];
    struct tm tm;
    time_t t = (time_t)now;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
    qxs_api_ok(o, json_pack("{s:s, s:s, s:I, s:n}", "name", name, "creation_time", iso, "size",
                            (json_int_t)st.st_size, "checksum"));
}

void qxs_snapshot_list(qxs_server *s, const char *coll, qxs_reply *o) {
    char dir[PATH_MAX];
    if (snap_dir(s, coll, dir, sizeof dir, 0)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return;
    }
    json_t *arr = json_array();
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && arr && (e = readdir(dd)) != NULL) {
        if (!name_ok(e->d_name)) continue;
        char fp[PATH_MAX + 300], iso[32];
        struct stat st;
        snprintf(fp, sizeof fp, "%s/%s", dir, e->d_name);
        if (stat(fp, &st)) continue;
        struct tm tm;
        gmtime_r(&st.st_mtime, &tm);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:n}", "name", e->d_name, "creation_time", iso,
                                             "size", (json_int_t)st.st_size, "checksum"));
    }
    if (dd) closedir(dd);
    qxs_api_ok(o, arr);
}

/* The whole file (caller frees), or NULL with o filled (404 / 422 / 500). */
static uint8_t *read_snapshot(qxs_server *s, const char *coll, const char *name, size_t *len, qxs_reply *o) {
    char dir[PATH_MAX], fp[PATH_MAX + 300];
    if (!name_ok(name)) {
        qxs_api_fail(o, 422, "'%.100s' is not a snapshot name (<collection>-<time>-<n>.snapshot)", name);
        return NULL;
    }
    if (snap_dir(s, coll, dir, sizeof dir, 0)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return NULL;
    }
    snprintf(fp, sizeof fp, "%s/%s", dir, name);
    FILE *f = fopen(fp, "rb");
    if (!f) {
        qxs_api_fail(o, 404, "snapshot '%s' of collection '%s' not found", name, coll);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = sz > 0 ? qx_malloc((size_t)sz) : NULL;
    if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        qx_free(b);
        fclose(f);
        qxs_api_fail(o, 500, "reading snapshot %s failed", fp);
        return NULL;
    }
    fclose(f);
    *len = (size_t)sz;
    return b;
}

/* Streamed from the file (sendfile), not read into memory: a snapshot is as
 * large as the collection's files. The open descriptor keeps the bytes
 * readable even if the snapshot is deleted meanwhile. */
void qxs_snapshot_download(qxs_server *s, const char *coll, const char *name, qxs_reply *o) {
    char dir[PATH_MAX], fp[PATH_MAX + 300];
    if (!name_ok(name)) {
        qxs_api_fail(o, 422, "'%.100s' is not a snapshot name (<collection>-<time>-<n>.snapshot)", name);
        return;
    }
    if (snap_dir(s, coll, dir, sizeof dir, 0)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return;
    }
    snprintf(fp, sizeof fp, "%s/%s", dir, name);
    int fd = open(fp, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0) close(fd);
        if (e == ENOENT) qxs_api_fail(o, 404, "snapshot '%s' of collection '%s' not found", name, coll);
        else qxs_api_fail(o, 500, "snapshot '%s': %s", name, strerror(e));
        return;
    }
    o->status = 200;
    o->raw_file = 1;
    o->raw_fd = fd;
    o->raw_fd_len = (size_t)st.st_size;
    o->content_type = "application/octet-stream";
}

void qxs_snapshot_delete(qxs_server *s, const char *coll, const char *name, qxs_reply *o) {
    char dir[PATH_MAX], fp[PATH_MAX + 300];
    if (!name_ok(name)) {
        qxs_api_fail(o, 422, "'%.100s' is not a snapshot name", name);
        return;
    }
    if (snap_dir(s, coll, dir, sizeof dir, 0)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return;
    }
    snprintf(fp, sizeof fp, "%s/%s", dir, name);
    if (unlink(fp)) qxs_api_fail(o, errno == ENOENT ? 404 : 500, "snapshot '%s': %s", name, strerror(errno));
    else qxs_api_ok(o, json_true());
}

/* Check the archive whole; 0 or -1 (o filled). */
static int check_archive(const uint8_t *b, size_t len, qxs_reply *o) {
    if (len < 16 || memcmp(b, MAGIC, 8)) return qxs_api_fail(o, 422, "not a qinx snapshot (bad magic)"), -1;
    uint32_t crc;
    memcpy(&crc, b + len - 4, 4);
    if (qx_crc32(0, b + 8, len - 12) != crc) return qxs_api_fail(o, 422, "snapshot checksum mismatch"), -1;
    return 0;
}

void qxs_snapshot_recover(qxs_server *s, const char *coll, json_t *body, qxs_reply *o) {
    json_t *loc = json_object_get(body, "location");
    if (!json_is_string(loc)) {
        qxs_api_fail(o, 422, "missing or non-string 'location' (a snapshot name or a file:// URL of one)");
        return;
    }
    const char *l = json_string_value(loc), *name = l;
    char dir[PATH_MAX];
    if (snap_dir(s, coll, dir, sizeof dir, 0)) {
        qxs_api_fail(o, 500, "%s", qx_last_error());
        return;
    }
    if (!strncmp(l, "file://", 7)) {
        const char *p = l + 7, *slash = strrchr(p, '/');
        size_t dl = strlen(dir);
        char real[PATH_MAX], realdir[PATH_MAX];
        if (!slash || !realpath(dir, realdir) || (size_t)(slash - p) >= sizeof real) {
            qxs_api_fail(o, 422, "location %.200s is not a snapshot of collection '%s' on this server", l, coll);
            return;
        }
        memcpy(real, p, (size_t)(slash - p));
        real[slash - p] = 0;
        char rd[PATH_MAX];
        (void)dl;
        if (!realpath(real, rd) || strcmp(rd, realdir)) {
            qxs_api_fail(o, 422, "location %.200s is outside %s: qinx recovers only from its own snapshots", l, dir);
            return;
        }
        name = slash + 1;
    } else if (strstr(l, "://")) {
        qxs_api_fail(o, 422, "location %.200s: only snapshot names and file:// URLs are supported", l);
        return;
    }
    size_t len;
    uint8_t *b = read_snapshot(s, coll, name, &len, o);
    if (!b) return;
    if (check_archive(b, len, o)) {
        qx_free(b);
        return;
    }
    /* unpack into a temporary directory (ignored by the registry: starts with '.') */
    static _Atomic unsigned seq;
    char tmp[PATH_MAX + 128], final[PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s/collections/.recover-%s-%d-%u", s->cfg.data, coll, (int)getpid(),
             atomic_fetch_add(&seq, 1));
    snprintf(final, sizeof final, "%s/collections/%s", s->cfg.data, coll);
    int rc = mkdir(tmp, 0755) ? qx_error_set(QX_EIO, "mkdir %s: %s", tmp, strerror(errno)) : 0;
    size_t off = 8;
    uint32_t nf = 0;
    if (!rc) memcpy(&nf, b + off, 4), off += 4;
    for (uint32_t i = 0; !rc && i < nf; i++) {
        uint16_t nl;
        uint64_t sz;
        if (len - 4 - off < 2) goto bad;
        memcpy(&nl, b + off, 2), off += 2;
        if (len - 4 - off < (size_t)nl + 8 || nl == 0 || nl > 255) goto bad;
        char fn[256];
        memcpy(fn, b + off, nl), fn[nl] = 0, off += nl;
        if (strchr(fn, '/') || fn[0] == '.' || memchr(fn, 0, nl)) goto bad;
        memcpy(&sz, b + off, 8), off += 8;
        if (sz > len - 4 - off) goto bad;
        char fp[PATH_MAX + 512];
        snprintf(fp, sizeof fp, "%s/%s", tmp, fn);
        int fd = open(fp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = qx_error_set(QX_EIO, "create %s: %s", fp, strerror(errno));
            break;
        }
        rc = qx_write_all(fd, b + off, (size_t)sz);
        if (!rc && fsync(fd)) rc = qx_error_set(QX_EIO, "fsync %s", fp);
        close(fd);
        off += (size_t)sz;
    }
    if (!rc && off != len - 4) goto bad;
    qx_free(b);
    b = NULL;
    if (!rc) {
        int d = qxs_coll_drop(s, coll);
        if (d && d != QX_ENOTFOUND) rc = d;
    }
    if (!rc && rename(tmp, final)) rc = qx_error_set(QX_EIO, "rename %s: %s", tmp, strerror(errno));
    if (!rc) {
        qx_fsync_dir(final);
        rc = qxs_coll_load(s, coll);
    }
    if (rc) qxs_api_fail(o, qxs_api_status(rc) == 500 ? 500 : 422, "recovery failed: %s", qx_last_error());
    else qxs_api_ok(o, json_true());
    return;
bad:
    qx_free(b);
    qxs_api_fail(o, 422, "snapshot archive is malformed");
}
