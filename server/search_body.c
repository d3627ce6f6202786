/* server/search_body.c — the allocation-free parser of the common search
 * body (search_body.h).
 *
 * Decisions:
 * 1. Decline, never judge: whatever this parser does not fully understand it
 *    declines (returns 0) and the body goes to jansson, the reference, so the
 *    replies to odd or broken bodies stay jansson's. What it accepts it reads
 *    exactly as the jansson path does: an integer token as a json_int_t
 *    converted to double (so "-0" is +0), any other number through strtod,
 *    then (float) — the same bits. Integers of more than 15 digits, numbers
 *    that strtod flags (ERANGE) and tokens over 63 bytes are declined.
 *    tests/long_server_fuzz.sh checks the agreement on random bodies.
 * 2. Why it exists: for a 128-d query jansson builds a tree of 128 reals, one
 *    allocation each, through a byte-at-a-time lexer; under load that was
 *    ~20 % of the server's time (perf on tests/long_server_load.sh).
 */
#include "search_body.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Clinger's fast path needs every double operation rounded once, to double
 * (no x87 extended precision, no -ffast-math reassociation). */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0 || defined(__FAST_MATH__)
#error "search_body.c: exact_decimal needs FLT_EVAL_METHOD == 0 and no -ffast-math"
#endif

typedef struct cur {
    const char *p, *end;
} cur;

static void skip_ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int eat(cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* A member name of lower-case letters and '_' (no escapes), and its ':'. */
static int member_name(cur *c, char *name, size_t cap) {
    if (!eat(c, '"')) return 0;
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (!((ch >= 'a' && ch <= 'z') || ch == '_') || n + 1 >= cap) return 0;
        name[n++] = ch;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    name[n] = 0;
    return eat(c, ':');
}

/* Clinger's fast path: a decimal m·10^e with m <= 2^53 and |e| <= 22 is one
 * correctly rounded IEEE multiplication or division of two exact doubles,
 * hence the very double strtod returns. 0 (use strtod) otherwise. [s, e) is a
 * grammatical JSON number. */
static int exact_decimal(const char *s, const char *e, double *out) {
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    int neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    int sig = 0, e10 = 0, in_frac = 0;
    for (; p < e && (is_digit(*p) || *p == '.'); p++) {
        if (*p == '.') {
            in_frac = 1;
            continue;
        }
        if (sig > 0 || *p != '0') { /* leading zeros are not significant digits */
            if (++sig > 19) return 0;
            m = m * 10 + (uint64_t)(*p - '0');
        }
        e10 -= in_frac;
    }
    if (p < e) { /* the exponent: [eE][+-]?digits */
        p++;
        int eneg = *p == '-', x = 0;
        if (*p == '+' || *p == '-') p++;
        for (; p < e; p++) {
            if (x > 1000) return 0;
            x = x * 10 + (*p - '0');
        }
        e10 += eneg ? -x : x;
    }
    if (m > (UINT64_C(1) << 53)) return 0;
    double v = (double)m;
    if (m != 0) {
        if (e10 < -22 || e10 > 22) return 0;
        v = e10 < 0 ? v / p10[-e10] : v * p10[e10];
    }
    *out = neg ? -v : v;
    return 1;
}

/* A JSON number (RFC 8259 grammar); *integer: no fraction, no exponent. */
static int number(cur *c, double *out, int *integer) {
    skip_ws(c);
    const char *s = c->p, *e = c->end, *p = s;
    if (p < e && *p == '-') p++;
    if (p >= e) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9')
        while (p < e && is_digit(*p)) p++;
    else return 0;
    int in = 1;
    if (p < e && *p == '.') {
        const char *q = ++p;
        while (p < e && is_digit(*p)) p++;
        if (p == q) return 0;
        in = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        const char *q = p;
        while (p < e && is_digit(*p)) p++;
        if (p == q) return 0;
        in = 0;
    }
    size_t n = (size_t)(p - s);
    if (p >= e || n > 63) return 0; /* a valid body never ends in a number */
    if (in && n - (*s == '-') > 15) return 0;
    double v;
    if (!in && exact_decimal(s, p, &v)) {
        c->p = p;
        *out = v;
        *integer = 0;
        return 1;
    }
    char buf[64], *end;
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    v = in ? (double)strtoll(buf, &end, 10) : strtod(buf, &end);
    if (end != buf + n || errno == ERANGE) return 0;
    c->p = p;
    *out = v;
    *integer = in;
    return 1;
}

static int integer_in(cur *c, long long lo, long long hi, long long *out) {
    double v;
    int in;
    if (!number(c, &v, &in) || !in || v < (double)lo || v > (double)hi) return 0;
    *out = (long long)v;
    return 1;
}

static int boolean(cur *c, int *out) {
    skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && !memcmp(c->p, "true", 4)) return c->p += 4, *out = 1, 1;
    if (left >= 5 && !memcmp(c->p, "false", 5)) return c->p += 5, *out = 0, 1;
    return 0;
}

static int vector(cur *c, size_t d, float *vec) {
    if (!eat(c, '[')) return 0;
    size_t n = 0;
    do {
        double v;
        int in;
        if (n == d || !number(c, &v, &in) || !(fabs(v) <= FLT_MAX)) return 0;
        vec[n++] = (float)v;
    } while (eat(c, ','));
    return n == d && eat(c, ']');
}

static int params(cur *c, long long max_k, long long max_nprobe, qxs_search_body *b) {
    if (!eat(c, '{')) return 0;
    if (eat(c, '}')) return 1;
    do {
        char name[16];
        if (!member_name(c, name, sizeof name)) return 0;
        if (!strcmp(name, "nprobe") && b->nprobe < 0) {
            if (!integer_in(c, 1, max_nprobe, &b->nprobe)) return 0;
        } else if (!strcmp(name, "rerank") && b->rerank < 0) {
            if (!integer_in(c, 0, max_k, &b->rerank)) return 0;
        } else if (!strcmp(name, "shortlist") && b->shortlist < 0) {
            if (!integer_in(c, 0, 10 * max_k, &b->shortlist)) return 0; /* QX_MAX_SHORTLIST */
        } else if (!strcmp(name, "exact") && b->exact < 0) {
            if (!boolean(c, &b->exact)) return 0;
        } else {
            return 0;
        }
    } while (eat(c, ','));
    return eat(c, '}');
}

int qxs_search_body_parse(const char *body, size_t len, size_t d, long long max_k,
                          long long max_nprobe, float *vec, qxs_search_body *out) {
    qxs_search_body b = {.limit = -1, .nprobe = -1, .rerank = -1, .shortlist = -1, .exact = -1, .with_vector = -1};
    cur c = {body, body + len};
    int have_vector = 0, have_params = 0;
    if (!body || d == 0 || !eat(&c, '{')) return 0;
    do {
        char name[16];
        if (!member_name(&c, name, sizeof name)) return 0;
        if (!strcmp(name, "vector") && !have_vector) {
            if (!vector(&c, d, vec)) return 0;
            have_vector = 1;
        } else if ((!strcmp(name, "limit") || !strcmp(name, "top")) && b.limit < 0) {
            if (!integer_in(&c, 1, max_k, &b.limit)) return 0;
        } else if (!strcmp(name, "params") && !have_params) {
            if (!params(&c, max_k, max_nprobe, &b)) return 0;
            have_params = 1;
        } else if (!strcmp(name, "with_vector") && b.with_vector < 0) {
            if (!boolean(&c, &b.with_vector)) return 0;
        } else {
            return 0;
        }
    } while (eat(&c, ','));
    if (!eat(&c, '}') || !have_vector) return 0;
    skip_ws(&c);
    if (c.p != c.end) return 0;
    *out = b;
    return 1;
}
