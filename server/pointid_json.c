/* server/pointid_json.c — point ids to and from JSON (pointid_json.h).
 *
 * Decisions:
 * 1. A JSON id is an integer or a UUID string; a string of digits is not an
 *    id ("7" is refused, as Qdrant does), but the URL form /points/7 is.
 */
#include <stdio.h>
#include <string.h>

#include "pointid_json.h"

int qxs_pid_from_json(const json_t *v, qxs_pid *out, char *err, size_t errcap) {
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0) {
            snprintf(err, errcap, "point id %lld is negative (ids are unsigned integers or UUIDs)", (long long)x);
            return -1;
        }
        *out = qxs_pid_u64((uint64_t)x);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (qxs_pid_parse_uuid(s, json_string_length(v), out)) return 0;
        snprintf(err, errcap, "point id \"%.40s%s\" is not a valid UUID (ids are unsigned integers or UUIDs)", s,
                 json_string_length(v) > 40 ? "..." : "");
        return -1;
    }
    snprintf(err, errcap, "a point id must be an unsigned integer or a UUID string");
    return -1;
}

json_t *qxs_pid_to_json(const qxs_pid *p) {
    if (p->kind != QXS_PID_UUID) return json_integer((json_int_t)p->lo);
    char buf[QXS_PID_STRLEN];
    return json_string(qxs_pid_format(p, buf));
}
