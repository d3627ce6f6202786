/* bench/bench_util.c — logging, notes, result list, thread control and
 * machine description for `qinx bench`.
 *
 * Thread control: three pools can run the work — qinx's own (QX_THREADS, read
 * at every call), OpenMP inside FAISS and OpenBLAS. Search timings must be
 * single-threaded (the benchmark protocol), so bench_set_threads(1) pins all
 * three and bench_set_threads(0) gives training/encoding every core again.
 * openblas_set_num_threads is referenced weakly: the Debian OpenBLAS has it,
 * a reference BLAS would not, and the bench must still link then.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/error_c.h>

#include "bench_impl.h"

extern void openblas_set_num_threads(int) __attribute__((weak));

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void bench_log(const bench_run *r, const char *fmt, ...) {
    if (r && r->cfg->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%7.1fs] ", r ? bench_now() - r->t0 : 0.0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void bench_note(bench_run *r, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    bench_log(r, "note: %s", buf);
    char **n = realloc(r->notes, sizeof(char *) * (r->nnotes + 1));
    if (!n) return;
    r->notes = n;
    r->notes[r->nnotes] = strdup(buf);
    if (r->notes[r->nnotes]) r->nnotes++;
}

void bench_result_init(bench_result *res, const char *method, size_t bytes) {
    memset(res, 0, sizeof *res);
    snprintf(res->method, sizeof res->method, "%s", method);
    res->bytes = bytes;
    res->mse = res->r1 = res->r10 = res->r100 = res->r10at10 = NAN;
    res->qps = res->train_s = res->encode_s = res->index_bytes = NAN;
    res->nprobe = res->rerank = -1;
}

int bench_add_result(bench_run *r, const bench_result *res) {
    if (r->nres == r->capres) {
        size_t cap = r->capres ? 2 * r->capres : 64;
        bench_result *p = realloc(r->res, sizeof *p * cap);
        if (!p) {
            fprintf(stderr, "qinx bench: out of memory for results\n");
            return QX_ENOMEM;
        }
        r->res = p;
        r->capres = cap;
    }
    r->res[r->nres++] = *res;
    /* Rewrite results.jsonl after every method: a run cut short (budget,
     * crash, ^C) still leaves everything measured so far. */
    return bench_write_jsonl(r);
}

void bench_set_threads(int n) {
    int t = n > 0 ? n : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    char buf[16];
    snprintf(buf, sizeof buf, "%d", t);
    if (n > 0) setenv("QX_THREADS", buf, 1);
    else unsetenv("QX_THREADS");
    omp_set_num_threads(t);
    if (openblas_set_num_threads) openblas_set_num_threads(t);
}

double bench_minutes_left(const bench_run *r) {
    return (r->deadline - bench_now() - r->sim_elapsed) / 60.0;
}

void bench_machine(char *buf, size_t len, int *ncores) {
    snprintf(buf, len, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10)) continue;
            char *p = strchr(line, ':');
            if (!p) continue;
            p++;
            while (*p == ' ' || *p == '\t') p++;
            p[strcspn(p, "\n")] = '\0';
            /* quotes and backslashes would need escaping in JSON; a CPU name
             * never needs them, so drop them */
            size_t j = 0;
            for (size_t i = 0; p[i] && j + 1 < len; i++)
                if (p[i] != '"' && p[i] != '\\' && (unsigned char)p[i] >= 0x20) buf[j++] = p[i];
            buf[j] = '\0';
            break;
        }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *ncores = n > 0 ? (int)n : 1;
}

int bench_faiss_fail(const char *what, int frc) {
    const char *m = faiss_get_last_error();
    fprintf(stderr, "qinx bench: %s failed: %s (FAISS code %d)\n", what, m && *m ? m : "?", frc);
    return QX_EFAISS;
}

int bench_qx_fail(const char *what, int rc) {
    fprintf(stderr, "qinx bench: %s failed: %s (%s)\n", what, qx_last_error(), qx_strerror(rc));
    return rc;
}
