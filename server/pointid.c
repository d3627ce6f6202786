/* server/pointid.c — parsing point ids from text (pointid_text.h); printing
 * is qxs_pid_format in pointid.h.
 *
 * Decisions:
 * 1. UUIDs are accepted in the forms Qdrant's parser takes (hyphenated,
 *    32 plain hex digits, {braced}, urn:uuid:) and in any case, and always
 *    printed canonical: lowercase 8-4-4-4-12. Two spellings of one UUID are
 *    the same point.
 * 2. No version or variant check: Qdrant accepts any 128-bit value.
 */
#include <stdio.h>
#include <string.h>

#include "pointid_text.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int qxs_pid_parse_uuid(const char *s, size_t len, qxs_pid *out) {
    if (len == 45 && !strncmp(s, "urn:uuid:", 9)) s += 9, len -= 9;
    else if (len == 38 && s[0] == '{' && s[37] == '}') s += 1, len -= 2;
    int hyph;
    if (len == 36) hyph = 1;
    else if (len == 32) hyph = 0;
    else return 0;
    uint64_t w[2] = {0, 0};
    int nd = 0;
    for (size_t i = 0; i < len; i++) {
        if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-') return 0;
            continue;
        }
        int v = hexval(s[i]);
        if (v < 0) return 0;
        w[nd / 16] = w[nd / 16] << 4 | (uint64_t)v;
        nd++;
    }
    if (nd != 32) return 0;
    out->kind = QXS_PID_UUID;
    out->hi = w[0];
    out->lo = w[1];
    return 1;
}

int qxs_pid_parse(const char *s, size_t len, qxs_pid *out) {
    if (len >= 1 && len <= 19) {
        uint64_t v = 0;
        size_t i = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10) return 0; /* JSON integers are signed 64-bit */
            v = v * 10 + d;
        }
        if (i == len) {
            *out = qxs_pid_u64(v);
            return 1;
        }
    }
    return qxs_pid_parse_uuid(s, len, out);
}


