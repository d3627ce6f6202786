/* server/http_parse.h — HTTP/1.1 request framing as pure functions over bytes:
 * the request head (request line + header fields) and the chunked body
 * decoder. No sockets here, so the fuzz target and the unit tests drive them
 * directly. Errors carry the HTTP status to answer and a message naming the
 * problem; the caller answers with the JSON envelope and closes. */
#ifndef QXS_HTTP_PARSE_H
#define QXS_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define QXS_HTTP_MAX_HEAD 16384    /* request line + headers, bytes (431 above) */
#define QXS_HTTP_MAX_HEADERS 100   /* header fields per request (431 above) */
#define QXS_HTTP_MAX_TARGET 8192   /* request-target bytes (414 above) */
#define QXS_HTTP_MAX_TRAILER 4096  /* chunk extensions + trailer bytes per body */

typedef struct qxs_http_head {
    char method[16];
    const char *target;     /* into the parsed buffer, target_len bytes */
    size_t target_len;
    int minor;              /* HTTP/1.minor: 0 or 1 */
    int64_t content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding: chunked */
    int expect_continue;    /* Expect: 100-continue */
    int keep_alive;         /* from the version and the Connection header */
    const char *api_key;    /* "api-key" value or NULL (into the buffer) */
    size_t api_key_len;
    const char *authorization; /* "Authorization" value or NULL */
    size_t authorization_len;
    size_t head_len;        /* bytes the head took, its final empty line included */
} qxs_http_head;

/* Parse the request head at the start of buf[0..len). Returns 1 when a whole
 * head was parsed (h filled, h->head_len bytes consumed), 0 when more bytes
 * are needed (len < QXS_HTTP_MAX_HEAD and no error seen yet), or the HTTP
 * status to answer (400, 414, 417, 431, 505) with err filled. */
int qxs_http_parse_head(const char *buf, size_t len, qxs_http_head *h, char *err, size_t errsz);

/* Chunked body decoder (RFC 9112 §7.1). Feed it the bytes after the head;
 * decoded data is appended to out (at most limit bytes in all). */
typedef struct qxs_chunked {
    int state;
    uint64_t remaining;  /* bytes left in the current chunk */
    int digits;          /* hex digits of the current size */
    size_t side_bytes;   /* extension + trailer bytes so far */
    uint64_t total;      /* data bytes decoded so far */
} qxs_chunked;

typedef struct qxs_chunk_sink {
    char *out;       /* decoded bytes go to out[*len ...] */
    size_t *len;
    uint64_t limit;  /* body limit: a chunk that would pass it fails with 413 */
} qxs_chunk_sink;

/* Consume in[0..n): *used receives the bytes consumed. Returns 1 when the
 * last chunk and the trailer are complete (*used stops right after them, so
 * a pipelined request stays unread), 0 when more input is needed, or the
 * HTTP status to answer (400 framing, 413 too large) with err filled. With
 * sink->out NULL the data is counted but not copied. */
int qxs_chunked_feed(qxs_chunked *c, const char *in, size_t n, size_t *used, qxs_chunk_sink *sink, char *err,
                     size_t errsz);

/* Percent-decode path[0..len) into out (size len + 1), stopping at '?'; "%00"
 * stays as the three characters (a NUL would cut a name short; kept, it fails
 * the name check). Returns the decoded length. */
size_t qxs_http_decode_path(const char *target, size_t len, char *out);

/* Reason phrase of a status code ("Not Found"). */
const char *qxs_http_reason(int status);

#endif
