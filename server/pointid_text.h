/* server/pointid_text.h — point ids from text (URL path segments and JSON
 * strings); no JSON library needed, so routing can use it. */
#ifndef QXS_POINTID_TEXT_H
#define QXS_POINTID_TEXT_H

#include <stddef.h>

#include "pointid.h"

/* A decimal integer 0..2^63-1 (no sign; jansson's integers are signed 64-bit,
 * so larger ids could not be answered in JSON) or a UUID (8-4-4-4-12 hex with
 * hyphens, 32 hex digits, either wrapped in {} or prefixed by urn:uuid:; any
 * case). 1 on success, 0 if it is neither. */
int qxs_pid_parse(const char *s, size_t len, qxs_pid *out);
/* Only the UUID forms (a JSON string id must be a UUID). */
int qxs_pid_parse_uuid(const char *s, size_t len, qxs_pid *out);

#endif
