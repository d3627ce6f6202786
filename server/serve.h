/* server/serve.h — entry point of `qinx serve` (the HTTP server) and of its
 * helper `qinx serve load` (bulk upload of a vector file over HTTP). */
#ifndef QXS_SERVE_H
#define QXS_SERVE_H

/* argv[0] is "serve". Returns the process exit status. */
int qx_serve_main(int argc, char **argv);

#endif
