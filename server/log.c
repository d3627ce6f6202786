/* server/log.c — leveled log lines on stderr. Each line is formatted into one
 * buffer and written with a single write(2), so lines from concurrent request
 * threads never interleave. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "srv.h"

int qxs_log_level_cur = QXS_LOG_INFO;

int qxs_log_level_parse(const char *s) {
    if (!strcmp(s, "error")) return QXS_LOG_ERROR;
    if (!strcmp(s, "warn") || !strcmp(s, "warning")) return QXS_LOG_WARN;
    if (!strcmp(s, "info")) return QXS_LOG_INFO;
    if (!strcmp(s, "debug")) return QXS_LOG_DEBUG;
    return -1;
}

void qxs_log(int level, const char *fmt, ...) {
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > qxs_log_level_cur) return;
    char buf[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                     level < 0 ? "INFO" : names[level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}
