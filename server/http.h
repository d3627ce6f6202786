/* server/http.h — start the libmicrohttpd daemon for a server. */
#ifndef QXS_HTTP_H
#define QXS_HTTP_H

#include <sys/socket.h>

#include "srv.h"

struct MHD_Daemon;
struct MHD_Daemon *qxs_http_start(qxs_server *s, struct sockaddr *addr);

#endif
