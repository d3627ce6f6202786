/* server/json_scan.h — a strict forward reader of JSON tokens for the fast
 * body parsers (search_body.c, upsert_body.c): no tree, no allocation.
 *
 * Every reader returns 1 when the next token is of the shape it promises
 * (and advances past it) and 0 otherwise. 0 means "decline", never "the body
 * is wrong": the fast parsers hand anything they do not fully understand to
 * jansson, the reference, so error replies stay jansson's. Numbers are read
 * exactly as the jansson path reads them (json_scan.c, decision 1). */
#ifndef QXS_JSON_SCAN_H
#define QXS_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct qxs_js {
    const char *p, *end;
} qxs_js;

static inline void qxs_js_ws(qxs_js *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Skip white space, then the character ch. */
static inline int qxs_js_eat(qxs_js *c, char ch) {
    qxs_js_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Skip white space; 1 at the end of the input. */
static inline int qxs_js_at_end(qxs_js *c) {
    qxs_js_ws(c);
    return c->p == c->end;
}

/* A member name of lower-case letters and '_' (no escapes) of at most
 * cap - 1 characters, NUL-terminated into name, and its ':'. */
int qxs_js_name(qxs_js *c, char *name, size_t cap);

/* A JSON number as the jansson path sees it: *integer set for a token
 * without fraction or exponent (then *out is (double) of its json_int_t, so
 * "-0" is +0), else *out is strtod's double. Declines integers of more than
 * 15 digits, tokens of 64 bytes or more, numbers strtod flags ERANGE, and a
 * number at the very end of the input. */
int qxs_js_number(qxs_js *c, double *out, int *integer);

/* An array of exactly d numbers (qxs_js_number), each a finite float32
 * (|x| <= FLT_MAX), rounded to float into vec. */
int qxs_js_floats(qxs_js *c, size_t d, float *vec);

/* A non-negative JSON integer token (no fraction, no exponent) of at most
 * 19 digits that fits in int64_t. */
int qxs_js_uint63(qxs_js *c, uint64_t *out);

/* A string of printable ASCII without escapes; *s, *len: its content. */
int qxs_js_plain_string(qxs_js *c, const char **s, size_t *len);

/* The literal null. */
int qxs_js_null(qxs_js *c);

/* A JSON object, skipped with string and nesting awareness only (its content
 * is not validated: the caller hands [*s, *s + *len) to jansson). Declines
 * nesting deeper than max_depth and an object that does not close. */
int qxs_js_object_span(qxs_js *c, int max_depth, const char **s, size_t *len);

/* Clinger's fast path for the decimal [s, e) (a grammatical JSON number with
 * a fraction or exponent): 1 and the double strtod gives when it applies
 * (at most 19 significant digits, mantissa <= 2^53, |exponent| <= 22, or a
 * zero mantissa), else 0. */
int qxs_js_exact_decimal(const char *s, const char *e, double *out);

#endif
