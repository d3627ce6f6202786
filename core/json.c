/* core/json.c — the one JSON string escaper (see json.h), and its FILE form
 * for programs (qx_json_fputs, qinx/core.h). */
#include <stdio.h>

#include "json.h"
#include "qinx/core.h"

void qx__json_string(void (*put)(void *ctx, const char *p, size_t n), void *ctx, const char *s) {
    static const char hex[] = "0123456789abcdef";
    put(ctx, "\"", 1);
    const char *run = s; /* bytes copied as they are, not yet written */
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u != '"' && u != '\\' && u >= 0x20) continue;
        if (c > run) put(ctx, run, (size_t)(c - run));
        if (u == '"' || u == '\\') {
            char e[2] = {'\\', (char)u};
            put(ctx, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[u >> 4], hex[u & 15]};
            put(ctx, e, 6);
        }
        run = c + 1;
    }
    const char *end = run;
    while (*end) end++;
    if (end > run) put(ctx, run, (size_t)(end - run));
    put(ctx, "\"", 1);
}

static void put_file(void *ctx, const char *p, size_t n) { fwrite(p, 1, n, (FILE *)ctx); }

void qx_json_fputs(FILE *f, const char *s) { qx__json_string(put_file, f, s); }
