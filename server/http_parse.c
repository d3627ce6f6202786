/* server/http_parse.c — request framing: the request head and chunked bodies.
 *
 * Decisions (RFC 9112; a hostile client or a proxy in front must not be able
 * to make two parties read one byte stream as different requests):
 * 1. Strict where framing is decided: Content-Length is 1..18 decimal digits
 *    and appears once; Transfer-Encoding is exactly "chunked" and appears
 *    once; both together are refused (§6.3: a smuggling vector), and so is
 *    Transfer-Encoding in HTTP/1.0. Chunk lines end with CRLF, chunk sizes
 *    have at most 15 hex digits (no overflow), and data must end exactly at
 *    the declared size.
 * 2. No control characters in the head (a bare CR, NUL, …) and no obsolete
 *    line folding: each is answered 400 instead of being read leniently.
 * 3. Bounded: 16 KiB of head, 100 header fields, an 8 KiB target (431 / 414),
 *    4 KiB of chunk extensions and trailers per body.
 * 4. Every message names the problem; bytes from the request appear in it
 *    only as printable ASCII (the reply is JSON, which must be UTF-8).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

static int failf(char *err, size_t errsz, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t errsz, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return status;
}

/* Up to 40 bytes of request text, non-printable bytes as '?'. */
static const char *shown(const char *s, size_t n, char out[48]) {
    size_t m = n < 40 ? n : 40, i;
    for (i = 0; i < m; i++) out[i] = (s[i] >= 32 && s[i] < 127 && s[i] != '"' && s[i] != '\\') ? s[i] : '?';
    if (n > m) out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = 0;
    return out;
}

static int is_tchar(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int name_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && !strncasecmp(s, lit, n);
}

typedef struct seen {
    int host, cl, te, api_key, auth, close, keep;
} seen;

static int parse_request_line(const char *s, size_t n, qxs_http_head *h, char *err, size_t errsz) {
    char q[48];
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s) return failf(err, errsz, 400, "malformed request line '%s' (want METHOD /path HTTP/1.1)", shown(s, n, q));
    size_t ml = (size_t)(sp - s);
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)s[i]))
            return failf(err, errsz, 400, "invalid character in the method '%s'", shown(s, ml, q));
    if (ml >= sizeof h->method) return failf(err, errsz, 400, "method '%s' too long", shown(s, ml, q));
    memcpy(h->method, s, ml);
    h->method[ml] = 0;
    const char *t = sp + 1, *end = s + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        return failf(err, errsz, 400, "malformed request line '%s' (want METHOD /path HTTP/1.1)", shown(s, n, q));
    h->target = t;
    h->target_len = (size_t)(sp2 - t);
    if (h->target_len > QXS_HTTP_MAX_TARGET)
        return failf(err, errsz, 414, "request target of %zu bytes exceeds the limit of %d bytes", h->target_len,
                     QXS_HTTP_MAX_TARGET);
    if (t[0] != '/') return failf(err, errsz, 400, "request target '%s' must start with '/'", shown(t, h->target_len, q));
    const char *v = sp2 + 1;
    size_t vl = (size_t)(end - v);
    if (vl != 8 || memcmp(v, "HTTP/", 5) || !isdigit((unsigned char)v[5]) || v[6] != '.' ||
        !isdigit((unsigned char)v[7]))
        return failf(err, errsz, 400, "malformed HTTP version '%s' in the request line", shown(v, vl, q));
    if (v[5] != '1') return failf(err, errsz, 505, "HTTP version %c.%c not supported (HTTP/1.0 and 1.1 are)", v[5], v[7]);
    h->minor = v[7] == '0' ? 0 : 1;
    return 0;
}

static int parse_field(const char *s, size_t n, qxs_http_head *h, seen *sn, char *err, size_t errsz) {
    char q[48], q2[48];
    if (s[0] == ' ' || s[0] == '\t')
        return failf(err, errsz, 400, "header line '%s' starts with whitespace (obsolete line folding)", shown(s, n, q));
    const char *colon = memchr(s, ':', n);
    if (!colon) return failf(err, errsz, 400, "header line '%s' has no ':'", shown(s, n, q));
    size_t nl = (size_t)(colon - s);
    if (nl == 0) return failf(err, errsz, 400, "header line '%s' has an empty name", shown(s, n, q));
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)s[i]))
            return failf(err, errsz, 400, "invalid character in header name '%s'%s", shown(s, nl, q),
                         s[i] == ' ' || s[i] == '\t' ? " (no whitespace before ':')" : "");
    const char *v = colon + 1, *e = s + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t vl = (size_t)(e - v);
    if (name_is(s, nl, "content-length")) {
        if (sn->cl++) return failf(err, errsz, 400, "more than one Content-Length header");
        if (vl == 0 || vl > 18) return failf(err, errsz, 400, "invalid Content-Length '%s'", shown(v, vl, q));
        int64_t x = 0;
        for (size_t i = 0; i < vl; i++) {
            if (!isdigit((unsigned char)v[i]))
                return failf(err, errsz, 400, "invalid Content-Length '%s' (want a decimal byte count)", shown(v, vl, q));
            x = x * 10 + (v[i] - '0');
        }
        h->content_length = x;
    } else if (name_is(s, nl, "transfer-encoding")) {
        if (sn->te++) return failf(err, errsz, 400, "more than one Transfer-Encoding header");
        if (!(vl == 7 && !strncasecmp(v, "chunked", 7)))
            return failf(err, errsz, 400, "Transfer-Encoding '%s' is not supported (only 'chunked')", shown(v, vl, q));
        h->chunked = 1;
    } else if (name_is(s, nl, "host")) {
        if (sn->host++) return failf(err, errsz, 400, "more than one Host header");
    } else if (name_is(s, nl, "expect")) {
        if (!(vl == 12 && !strncasecmp(v, "100-continue", 12)))
            return failf(err, errsz, 417, "Expect '%s' is not supported (only '100-continue')", shown(v, vl, q));
        h->expect_continue = 1;
    } else if (name_is(s, nl, "connection")) {
        for (const char *p = v; p < e;) {
            while (p < e && (*p == ',' || *p == ' ' || *p == '\t')) p++;
            const char *t = p;
            while (p < e && *p != ',' && *p != ' ' && *p != '\t') p++;
            if (name_is(t, (size_t)(p - t), "close")) sn->close = 1;
            else if (name_is(t, (size_t)(p - t), "keep-alive")) sn->keep = 1;
        }
    } else if (name_is(s, nl, "api-key")) {
        if (sn->api_key++) return failf(err, errsz, 400, "more than one api-key header");
        h->api_key = v;
        h->api_key_len = vl;
    } else if (name_is(s, nl, "authorization")) {
        if (sn->auth++) return failf(err, errsz, 400, "more than one Authorization header");
        h->authorization = v;
        h->authorization_len = vl;
    }
    (void)q2;
    return 0;
}

int qxs_http_parse_head(const char *buf, size_t len, qxs_http_head *h, char *err, size_t errsz) {
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    size_t lim = len < QXS_HTTP_MAX_HEAD ? len : QXS_HTTP_MAX_HEAD;
    size_t p = 0;
    /* RFC 9112 §2.2: ignore a few empty lines before the request line */
    for (int skipped = 0; p < lim && (buf[p] == '\r' || buf[p] == '\n'); skipped++) {
        if (skipped == 4) return failf(err, errsz, 400, "empty lines instead of a request line");
        if (buf[p] == '\r') {
            if (p + 1 == lim) return 0;
            if (buf[p + 1] != '\n') return failf(err, errsz, 400, "bare CR (0x0d) in the request head");
            p++;
        }
        p++;
    }
    /* Every byte of the head: no control characters but HTAB, and CR only
     * before LF. Checked before the head is complete so garbage is answered
     * at once, not after 16 KiB or a timeout. */
    size_t end = 0; /* offset just after the empty line ending the head */
    size_t line_start = p, nlines = 0;
    for (size_t i = p; i < lim; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            if (i == line_start || (i == line_start + 1 && buf[line_start] == '\r')) {
                end = i + 1;
                break;
            }
            line_start = i + 1;
            if (++nlines > QXS_HTTP_MAX_HEADERS + 1)
                return failf(err, errsz, 431, "more than %d header fields", QXS_HTTP_MAX_HEADERS);
            continue;
        }
        if (c == '\r') {
            if (i + 1 < lim && buf[i + 1] != '\n') return failf(err, errsz, 400, "bare CR (0x0d) in the request head");
            continue;
        }
        if ((c < 32 && c != '\t') || c == 127)
            return failf(err, errsz, 400, "control character 0x%02x in the request head at byte %zu", c, i);
        if (nlines == 0 && i - p > QXS_HTTP_MAX_TARGET + 64)
            return failf(err, errsz, 414, "request line longer than %d bytes", QXS_HTTP_MAX_TARGET + 64);
    }
    if (!end) {
        if (len >= QXS_HTTP_MAX_HEAD)
            return failf(err, errsz, 431, "request head larger than %d bytes (request line and headers)",
                         QXS_HTTP_MAX_HEAD);
        return 0;
    }
    /* the whole head is in buf[p, end): parse line by line */
    seen sn;
    memset(&sn, 0, sizeof sn);
    int first = 1, rc;
    for (size_t s = p; s < end;) {
        const char *nl = memchr(buf + s, '\n', end - s);
        size_t e = (size_t)(nl - buf), n = e - s;
        if (n && buf[s + n - 1] == '\r') n--;
        if (n == 0) break; /* the empty line */
        rc = first ? parse_request_line(buf + s, n, h, err, errsz) : parse_field(buf + s, n, h, &sn, err, errsz);
        if (rc) return rc;
        first = 0;
        s = e + 1;
    }
    if (sn.cl && sn.te)
        return failf(err, errsz, 400, "both Content-Length and Transfer-Encoding: the body's length is ambiguous");
    if (sn.te && h->minor == 0) return failf(err, errsz, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!sn.host && h->minor == 1) return failf(err, errsz, 400, "missing Host header (required in HTTP/1.1)");
    h->keep_alive = sn.close ? 0 : h->minor == 1 ? 1 : sn.keep;
    h->head_len = end;
    return 1;
}

enum { CK_SIZE, CK_SIZE_WS, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILER_START, CK_TRAILER,
       CK_TRAILER_LF, CK_END_LF };

/* One byte of a chunk extension or trailer line (other than its CR): no
 * control characters, and at most QXS_HTTP_MAX_TRAILER such bytes per body.
 * 0, or the 400 to answer with err set; `where` names the line. */
static int side_byte(qxs_chunked *c, unsigned char ch, const char *where, char *err, size_t errsz) {
    if ((ch < 32 && ch != '\t') || ch == 127) return failf(err, errsz, 400, "control character 0x%02x in %s", ch, where);
    if (++c->side_bytes > QXS_HTTP_MAX_TRAILER)
        return failf(err, errsz, 400, "chunk extensions and trailers above %d bytes", QXS_HTTP_MAX_TRAILER);
    return 0;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int qxs_chunked_feed(qxs_chunked *c, const char *in, size_t n, size_t *used, qxs_chunk_sink *sink, char *err,
                     size_t errsz) {
    size_t i = 0;
    int rc = 0;
    while (i < n && !rc) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case CK_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15) {
                    rc = failf(err, errsz, 400, "chunk size with more than 15 hex digits");
                    break;
                }
                c->remaining = c->remaining * 16 + (uint64_t)v;
            } else if (!c->digits) {
                rc = failf(err, errsz, 400, "chunk size expected, got byte 0x%02x", ch);
                break;
            } else if (ch == ' ' || ch == '\t') c->state = CK_SIZE_WS;
            else if (ch == ';') c->state = CK_EXT;
            else if (ch == '\r') c->state = CK_SIZE_LF;
            else {
                rc = failf(err, errsz, 400, "invalid byte 0x%02x in a chunk size line", ch);
                break;
            }
            i++;
            break;
        }
        case CK_SIZE_WS:
            if (ch == ';') c->state = CK_EXT;
            else if (ch == '\r') c->state = CK_SIZE_LF;
            else if (ch != ' ' && ch != '\t') {
                rc = failf(err, errsz, 400, "invalid byte 0x%02x after a chunk size", ch);
                break;
            }
            i++;
            break;
        case CK_EXT:
            if (ch == '\r') c->state = CK_SIZE_LF;
            else if ((rc = side_byte(c, ch, "a chunk extension", err, errsz))) break;
            i++;
            break;
        case CK_SIZE_LF:
            if (ch != '\n') {
                rc = failf(err, errsz, 400, "chunk size line not ended by CRLF");
                break;
            }
            i++;
            if (c->remaining == 0) c->state = CK_TRAILER_START;
            else if (c->total + c->remaining > sink->limit) {
                rc = failf(err, errsz, 413, "request body exceeds the limit of %llu bytes (a chunk of %llu bytes after %llu)",
                           (unsigned long long)sink->limit, (unsigned long long)c->remaining,
                           (unsigned long long)c->total);
            } else c->state = CK_DATA;
            break;
        case CK_DATA: {
            size_t k = n - i;
            if (k > c->remaining) k = (size_t)c->remaining;
            if (sink->out) memcpy(sink->out + *sink->len, in + i, k);
            *sink->len += k;
            c->total += k;
            c->remaining -= k;
            i += k;
            if (!c->remaining) c->state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
        case CK_DATA_LF:
            if (ch != (c->state == CK_DATA_CR ? '\r' : '\n')) {
                rc = failf(err, errsz, 400, "chunk data not followed by CRLF (the chunk is longer than its size)");
                break;
            }
            i++;
            if (c->state == CK_DATA_LF) {
                c->state = CK_SIZE;
                c->digits = 0;
            } else c->state = CK_DATA_LF;
            break;
        case CK_TRAILER_START:
            c->state = ch == '\r' ? CK_END_LF : CK_TRAILER;
            if (ch == '\r') i++;
            break;
        case CK_TRAILER:
            if (ch == '\r') c->state = CK_TRAILER_LF;
            else if ((rc = side_byte(c, ch, "a chunked trailer", err, errsz))) break;
            i++;
            break;
        case CK_TRAILER_LF:
        case CK_END_LF:
            if (ch != '\n') {
                rc = failf(err, errsz, 400, "chunked trailer line not ended by CRLF");
                break;
            }
            i++;
            if (c->state == CK_END_LF) rc = 1;
            else c->state = CK_TRAILER_START;
            break;
        }
    }
    *used = i;
    return rc;
}

size_t qxs_http_decode_path(const char *t, size_t len, char *out) {
    size_t w = 0;
    for (size_t r = 0; r < len && t[r] != '?' && t[r] != '#';) {
        if (t[r] == '%' && r + 2 < len && isxdigit((unsigned char)t[r + 1]) && isxdigit((unsigned char)t[r + 2])) {
            int v = hexval((unsigned char)t[r + 1]) * 16 + hexval((unsigned char)t[r + 2]);
            if (v != 0) {
                out[w++] = (char)v;
                r += 3;
                continue;
            }
        }
        out[w++] = t[r++];
    }
    out[w] = 0;
    return w;
}

const char *qxs_http_reason(int st) {
    switch (st) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}
