/* server/pointid_json.h — point ids to and from JSON (jansson). */
#ifndef QXS_POINTID_JSON_H
#define QXS_POINTID_JSON_H

#include <jansson.h>

#include "pointid_text.h"

/* A JSON integer >= 0 or a UUID string. 0, or -1 with a message in err
 * (the caller answers 422). jansson reads integers as signed 64-bit, so an
 * integer id above 2^63-1 fails when the body is parsed (also 422). */
int qxs_pid_from_json(const json_t *v, qxs_pid *out, char *err, size_t errcap);
/* JSON integer or canonical lowercase UUID string (NULL if out of memory). */
json_t *qxs_pid_to_json(const qxs_pid *p);

#endif
