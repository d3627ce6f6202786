/* server/api.h — request handlers: a parsed route + method + body in, a status
 * and a JSON result (or an error message) out. No HTTP here, so the fuzz
 * target can drive the handlers directly. */
#ifndef QXS_API_H
#define QXS_API_H

#include <jansson.h>
#include <stddef.h>

#include "route.h"
#include "srv.h"

typedef struct qxs_reply {
    int status;
    json_t *result;           /* success: the "result" member (owned) */
    char err[512];            /* failure: the message */
    char *raw;                /* non-JSON body (metrics), qx_free'd by the caller */
    size_t raw_len;
    const char *content_type; /* for raw or raw_fd */
    int raw_fd;               /* a file body instead of raw (raw_fd_len bytes, sent with
                               * sendfile, closed by the caller): set raw_file too */
    int raw_file;
    size_t raw_fd_len;
    const char *allow;        /* for 405 */
} qxs_reply;

void qxs_api_handle(qxs_server *s, const qxs_route *r, const char *method, const char *body,
                    size_t len, qxs_reply *out);

#endif
