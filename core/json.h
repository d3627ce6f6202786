/* core/json.h — the one JSON string escaper (internal, qx__). Rule: '"' and
 * '\\' get a backslash, every other byte below 0x20 is written \u00XX, all
 * else (UTF-8 included) is copied; names and paths may hold any byte but NUL.
 * The DERP report builds its JSON in memory through `put`; programs stream
 * to a FILE with qx_json_fputs (qinx/core.h). */
#ifndef QINX_CORE_JSON_H
#define QINX_CORE_JSON_H

#include <stddef.h>

/* Write s as a JSON string, quotes included, through put(ctx, bytes, n). */
void qx__json_string(void (*put)(void *ctx, const char *p, size_t n), void *ctx, const char *s);

#endif
