/* tools/progress.c — progress lines on stderr for long CLI steps.
 * On a terminal the line is redrawn in place (\r) at most 10 times a second;
 * elsewhere (logs, CI) a stage prints one line when it starts and one when it
 * ends, so logs stay short. --quiet silences both. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, int quiet) {
    memset(p, 0, sizeof *p);
    p->quiet = quiet;
    p->tty = isatty(2);
    p->t0 = p->last_t = now();
    p->last_f = -1;
}

static void finish_line(cli_progress *p) {
    if (p->stage[0] && p->tty) fprintf(stderr, "\n");
}

void cli_progress_fn(void *ctx, const char *stage, double f) {
    cli_progress *p = ctx;
    if (p->quiet) return;
    double t = now();
    if (strncmp(p->stage, stage, sizeof p->stage - 1) != 0) {
        finish_line(p);
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        p->last_f = -1;
        if (!p->tty) fprintf(stderr, "[%7.1fs] %s ...\n", t - p->t0, stage);
    }
    if (p->tty) {
        if (t - p->last_t < 0.1 && f < 1.0 && p->last_f >= 0) return;
        fprintf(stderr, "\r[%7.1fs] %-28s %5.1f%%", t - p->t0, stage, 100.0 * f);
        fflush(stderr);
    } else if (f >= 1.0 && p->last_f < 1.0) {
        fprintf(stderr, "[%7.1fs] %s done\n", t - p->t0, stage);
    }
    p->last_t = t;
    p->last_f = f;
}

void cli_progress_done(cli_progress *p) {
    if (!p->quiet) finish_line(p);
    p->stage[0] = '\0';
}

void cli_log(const cli_progress *p, const char *fmt, ...) {
    if (p && p->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
