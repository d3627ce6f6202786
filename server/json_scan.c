/* server/json_scan.c — the token readers of json_scan.h.
 *
 * Decisions:
 * 1. Numbers read as the jansson path reads them: an integer token becomes
 *    its json_int_t converted to double (so "-0" is +0), any other number
 *    strtod's double; the callers then round to float, exactly as
 *    (float)json_number_value() does. Most numbers never reach strtod (which
 *    with its locale look-up and multi-precision fallback was ~21 % of the
 *    server's time in a load): one pass over the token checks the RFC 8259
 *    grammar and accumulates the significant digits; Clinger's fast path
 *    (W. D. Clinger, "How to read floating point numbers accurately", PLDI
 *    1990) then gives strtod's very double when the mantissa m <= 2^53 and
 *    |e| <= 22, since m and 10^|e| are exact doubles and one IEEE
 *    multiplication or division rounds once. The 9-significant-digit floats
 *    `qinx serve load` prints always take it; anything else goes to strtod.
 * 2. Integers of more than 15 digits, tokens of 64 bytes or more and ERANGE
 *    are declined rather than reproduced (jansson's overflow rules, json_int_t
 *    rounding to double): rare, and the jansson path answers them.
 */
#include "json_scan.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Clinger's fast path needs every double operation rounded once, to double
 * (no x87 extended precision, no -ffast-math reassociation). */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0 || defined(__FAST_MATH__)
#error "json_scan.c: the fast decimal path needs FLT_EVAL_METHOD == 0 and no -ffast-math"
#endif

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

int qxs_js_name(qxs_js *c, char *name, size_t cap) {
    if (!qxs_js_eat(c, '"')) return 0;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (!((ch >= 'a' && ch <= 'z') || ch == '_') || n + 1 >= cap) return 0;
        name[n++] = ch;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    name[n] = 0;
    return qxs_js_eat(c, ':');
}

/* A number token scanned: its end, and m·10^e10 from its first 19
 * significant digits (slow: more digits, or a huge exponent). */
typedef struct num {
    const char *end;
    uint64_t m;
    int e10, neg, integer, slow;
} num;

/* The RFC 8259 number at s (not beyond e), in one pass. 0: not a number. */
static int scan_number(const char *s, const char *e, num *o) {
    const char *p = s;
    uint64_t m = 0;
    int sig = 0, e10 = 0, slow = 0;
    o->neg = p < e && *p == '-';
    p += o->neg;
    if (p >= e) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9')
        for (; p < e && is_digit(*p); p++) {
            if (++sig > 19) slow = 1, e10++; /* digits past the 19th only scale */
            else m = m * 10 + (uint64_t)(*p - '0');
        }
    else return 0;
    o->integer = 1;
    if (p < e && *p == '.') {
        const char *q = ++p;
        for (; p < e && is_digit(*p); p++) {
            if (m == 0 && *p == '0') { /* leading zeros are not significant */
                e10--;
                continue;
            }
            if (++sig > 19) slow = 1;
            else m = m * 10 + (uint64_t)(*p - '0'), e10--;
        }
        if (p == q) return 0;
        o->integer = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = p < e && *p == '-', x = 0;
        if (p < e && (*p == '+' || *p == '-')) p++;
        const char *q = p;
        for (; p < e && is_digit(*p); p++)
            if (x > 100000) slow = 1;
            else x = x * 10 + (*p - '0');
        if (p == q) return 0;
        e10 += eneg ? -x : x;
        o->integer = 0;
    }
    o->end = p;
    o->m = m;
    o->e10 = e10;
    o->slow = slow;
    return 1;
}

/* Clinger: 1 and the correctly rounded double of ±m·10^e10 when exact. */
static int clinger(const num *n, double *out) {
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (n->slow || n->m > (UINT64_C(1) << 53)) return 0;
    double v = (double)n->m;
    if (n->m != 0) {
        if (n->e10 < -22 || n->e10 > 22) return 0;
        v = n->e10 < 0 ? v / p10[-n->e10] : v * p10[n->e10];
    }
    *out = n->neg ? -v : v;
    return 1;
}

int qxs_js_exact_decimal(const char *s, const char *e, double *out) {
    num n;
    if (!scan_number(s, e, &n) || n.end != e) return 0;
    return clinger(&n, out);
}

int qxs_js_number(qxs_js *c, double *out, int *integer) {
    qxs_js_ws(c);
    num n;
    if (!scan_number(c->p, c->end, &n)) return 0;
    size_t len = (size_t)(n.end - c->p);
    if (n.end >= c->end || len > 63) return 0; /* a valid body never ends in a number */
    if (n.integer) {
        if (len - (size_t)n.neg > 15) return 0;
        *out = (double)(n.neg ? -(int64_t)n.m : (int64_t)n.m); /* as json_int_t: "-0" is +0 */
    } else if (!clinger(&n, out)) {
        char buf[64], *end;
        memcpy(buf, c->p, len);
        buf[len] = 0;
        errno = 0;
        double v = strtod(buf, &end);
        if (end != buf + len || errno == ERANGE) return 0;
        *out = v;
    }
    *integer = n.integer;
    c->p = n.end;
    return 1;
}

int qxs_js_floats(qxs_js *c, size_t d, float *vec) {
    if (!qxs_js_eat(c, '[')) return 0;
    size_t n = 0;
    do {
        double v;
        int in;
        if (n == d || !qxs_js_number(c, &v, &in) || !(fabs(v) <= FLT_MAX)) return 0;
        vec[n++] = (float)v;
    } while (qxs_js_eat(c, ','));
    return n == d && qxs_js_eat(c, ']');
}

int qxs_js_uint63(qxs_js *c, uint64_t *out) {
    qxs_js_ws(c);
    const char *p = c->p, *e = c->end;
    if (p >= e || !is_digit(*p)) return 0;
    uint64_t v = 0;
    int nd = 0;
    if (*p == '0') p++, nd = 1;
    else
        for (; p < e && is_digit(*p); p++) {
            if (++nd > 19) return 0;
            v = v * 10 + (uint64_t)(*p - '0');
        }
    if (p >= e || *p == '.' || *p == 'e' || *p == 'E' || is_digit(*p) || v > (uint64_t)INT64_MAX) return 0;
    *out = v;
    c->p = p;
    return 1;
}

int qxs_js_plain_string(qxs_js *c, const char **s, size_t *len) {
    if (!qxs_js_eat(c, '"')) return 0;
    const char *b = c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') return 0;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    *s = b;
    *len = (size_t)(c->p - b);
    c->p++;
    return 1;
}

int qxs_js_null(qxs_js *c) {
    qxs_js_ws(c);
    if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) {
        c->p += 4;
        return 1;
    }
    return 0;
}

int qxs_js_object_span(qxs_js *c, int max_depth, const char **s, size_t *len) {
    qxs_js_ws(c);
    const char *p = c->p, *e = c->end;
    if (p >= e || *p != '{') return 0;
    int depth = 0;
    for (; p < e; p++) {
        char ch = *p;
        if (ch == '"') {
            for (p++; p < e && *p != '"'; p++)
                if (*p == '\\' && ++p >= e) return 0;
            if (p >= e) return 0;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max_depth) return 0;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0) {
                if (ch != '}') return 0;
                *s = c->p;
                *len = (size_t)(p + 1 - c->p);
                c->p = p + 1;
                return 1;
            }
        }
    }
    return 0;
}
