/* server/http.h — the HTTP/1.1 edge of a server (http.c): listen, serve with
 * worker threads, stop. */
#ifndef QXS_HTTP_H
#define QXS_HTTP_H

#include <stdio.h>
#include <sys/socket.h>

#include "srv.h"

typedef struct qxs_http qxs_http;
/* Bind addr and start s->cfg.threads workers; NULL with errno on failure. */
qxs_http *qxs_http_start(qxs_server *s, const struct sockaddr *addr, socklen_t addrlen);
/* The bound port (the one the kernel chose for port 0). */
int qxs_http_port(const qxs_http *h);
/* Stop accepting, let requests in progress finish (up to 10 s), close every
 * connection, join the workers, free h. */
void qxs_http_stop(qxs_http *h);
/* Test hook: every worker's connections and the connection table, read
 * without locks (for a debugger or a hung fuzz run, not for production). */
void qxs_http_debug_dump(const qxs_http *h, FILE *f);
/* Test hook: is fd a connection of the table (read without locks)? */
int qxs_http_debug_fd_live(const qxs_http *h, int fd);
/* Test hook: connections in the table (read without locks). */
size_t qxs_http_debug_live(const qxs_http *h);
/* Test hook: qx_now() of the latest admission or state change in the table (0 if empty). */
double qxs_http_debug_newest(const qxs_http *h);

#endif
