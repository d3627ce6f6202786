/* server/verify_cmd.c — `qinx serve verify DIR`: check every byte of a data
 * directory (or one collection) offline, with the server stopped or not:
 * the manifest, each segment (header, ids, permutation, offsets, and the
 * vector and payload checksums that a start does not read), its tombstone
 * and codes files, the model file, and the write-ahead log. Prints one line
 * per file; exits 1 when anything is damaged, naming the file.
 *
 * Decisions:
 * 1. Read-only: the log is parsed from a copy in memory (qxs_wal_parse),
 *    never opened for writing, so a torn tail is reported, not truncated.
 * 2. Codes files are checked by loading them into the model, exactly as a
 *    start would (qxs_codes_load: checksums and list numbers).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "segcodes.h"
#include "srv.h"

static int report(int rc, const char *what) {
    if (rc) printf("FAIL %s\n", qx_last_error());
    else printf("ok   %s\n", what);
    return rc ? 1 : 0;
}

static int verify_wal(const char *dir, size_t d) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/wal.log", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : report(qx_error_set(QX_EIO, "%s: %s", path, strerror(errno)), path);
    struct stat st;
    uint8_t *buf = NULL;
    int rc = fstat(fd, &st) ? qx_error_set(QX_EIO, "%s: stat failed", path) : 0;
    if (!rc && !(buf = qx_malloc((size_t)st.st_size + 1))) rc = qx_error_set(QX_ENOMEM, "%s", path);
    if (!rc && qxs_read_full(fd, buf, (size_t)st.st_size)) rc = qx_error_set(QX_EIO, "%s: read failed", path);
    close(fd);
    int bad = 0;
    if (!rc) {
        qxs_wal_status ws;
        int fe = 0;
        size_t good = qxs_wal_parse(buf, (size_t)st.st_size, d, NULL, NULL, &fe, &ws);
        char what[PATH_MAX + 160];
        if (ws.corrupt_at >= 0) {
            rc = qx_error_set(QX_EFORMAT, "%s: corrupt record at byte %lld with valid records after it (see `qinx serve "
                              "salvage-wal`)", path, (long long)ws.corrupt_at);
        } else {
            snprintf(what, sizeof what, "%s (%llu records%s)", path, (unsigned long long)ws.records,
                     good < (size_t)st.st_size ? ", a torn tail a start drops" : "");
            bad = report(0, what);
        }
    }
    qx_free(buf);
    return rc ? report(rc, path) : bad;
}

static int verify_collection(const char *dir) {
    qxs_manifest m;
    int rc = qxs_manifest_read(dir, &m), bad = 0;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, QXS_MANIFEST);
    if (rc == QX_ENOTFOUND) {
        printf("ok   %s: no manifest (nothing checkpointed yet, or a directory before segments)\n", dir);
        return 0;
    }
    if (report(rc, path)) return 1;
    qx_ivf *ivf = NULL;
    if (m.index_gen) {
        snprintf(path, sizeof path, "%s/index-%llu.qx", dir, (unsigned long long)m.index_gen);
        bad |= report(qx_ivf_load(path, &ivf), path);
    }
    for (size_t i = 0; i < m.nseg; i++) {
        qxs_seg *g = NULL;
        qxs_seg_name(path, sizeof path, dir, m.segs[i].no);
        rc = qxs_seg_open(dir, m.segs[i].no, m.d, m.segs[i].n, m.segs[i].del_gen, 1, &g);
        if (!rc) rc = qxs_seg_verify(g);
        bad |= report(rc, path);
        if (!rc && ivf && m.segs[i].codes_gen) {
            qxs_codes_name(path, sizeof path, dir, m.segs[i].no, m.segs[i].codes_gen);
            bad |= report(qxs_codes_load(dir, m.segs[i].no, m.segs[i].codes_gen, m.segs[i].n, g->dead, ivf), path);
        }
        qxs_seg_close(g);
    }
    bad |= verify_wal(dir, m.d);
    qx_ivf_free(ivf);
    qxs_manifest_free(&m);
    return bad;
}

int qxs_verify_main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: qinx serve verify DATA | DATA/collections/NAME\n"
                        "Checks every file of the data directory (or of one collection), the raw vectors' and\n"
                        "payloads' checksums included; prints one line per file, exits 1 if any is damaged.\n");
        return 2;
    }
    char cdir[PATH_MAX];
    snprintf(cdir, sizeof cdir, "%s/collections", argv[1]);
    DIR *d = opendir(cdir);
    if (!d) return verify_collection(argv[1]);
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX + 256];
        snprintf(sub, sizeof sub, "%s/%s", cdir, e->d_name);
        bad |= verify_collection(sub);
    }
    closedir(d);
    printf("%s\n", bad ? "damaged files found" : "all files intact");
    return bad;
}
