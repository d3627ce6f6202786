/* bench/bench_check.c — `qinx bench --check results.jsonl`: validates the
 * output of a run without needing python or jq (neither is a project
 * dependency), so the end-to-end test runs on a bare Debian.
 *
 * The parser accepts exactly what bench_report.c writes and what a reader
 * may rely on: one flat JSON object per line whose values are strings,
 * numbers, true/false or null (no nesting). Checks: every documented key
 * present; recalls null or in [0, 1]; bytes a positive integer; MSE of an
 * exhaustive line a number >= 0; QPS and nprobe of an IVF line positive.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_impl.h"

enum { V_STR, V_NUM, V_BOOL, V_NULL };

typedef struct kv {
    char key[32];
    int type;
    double num;
    char str[256];
} kv;

#define MAXKV 48

static const char *skip(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

/* Parses a JSON string at p (after the quote); NULL on error. */
static const char *parse_str(const char *p, char *out, size_t len) {
    size_t j = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            c = *p++;
            switch (c) {
            case '"': case '\\': case '/': break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
                c = '?';
                break;
            default: return NULL;
            }
        } else if ((unsigned char)c < 0x20) {
            return NULL;
        }
        if (j + 1 < len) out[j++] = c;
    }
    if (*p != '"') return NULL;
    out[j] = '\0';
    return p + 1;
}

/* One line -> key/values; returns the count or -1 with *err set. */
static int parse_line(const char *p, kv *kvs, const char **err) {
    int n = 0;
    p = skip(p);
    if (*p++ != '{') return *err = "not a JSON object", -1;
    p = skip(p);
    if (*p == '}') return 0;
    for (;;) {
        if (n == MAXKV) return *err = "too many keys", -1;
        kv *e = &kvs[n];
        memset(e, 0, sizeof *e);
        p = skip(p);
        if (*p++ != '"' || !(p = parse_str(p, e->key, sizeof e->key))) return *err = "bad key", -1;
        p = skip(p);
        if (*p++ != ':') return *err = "missing ':'", -1;
        p = skip(p);
        if (*p == '"') {
            e->type = V_STR;
            if (!(p = parse_str(p + 1, e->str, sizeof e->str))) return *err = "bad string", -1;
        } else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
            e->type = V_BOOL;
            e->num = *p == 't';
            p += *p == 't' ? 4 : 5;
        } else if (!strncmp(p, "null", 4)) {
            e->type = V_NULL;
            p += 4;
        } else if (*p == '-' || isdigit((unsigned char)*p)) {
            char *end;
            e->type = V_NUM;
            e->num = strtod(p, &end);
            if (end == p || !isfinite(e->num)) return *err = "bad number", -1;
            p = end;
        } else {
            return *err = "bad value (nested or not JSON)", -1;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(kvs[i].key, e->key)) return *err = "duplicate key", -1;
        n++;
        p = skip(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}') return *err = "missing ',' or '}'", -1;
        p = skip(p);
        if (*p) return *err = "text after the object", -1;
        return n;
    }
}

static const kv *get(const kv *kvs, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(kvs[i].key, key)) return &kvs[i];
    return NULL;
}

static const char *required[] = {"dataset",  "method",   "spec",        "kind",       "bytes",
                                 "mse",      "recall@1", "recall@10",   "recall@100", "10-recall@10",
                                 "qps",      "nprobe",   "rerank",      "train_s",    "encode_s",
                                 "index_bytes", "machine", "threads",   "pareto",     "n_base",
                                 "n_train",  "nq"};

int bench_check_jsonl(const char *path, FILE *out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(out, "%s: cannot open\n", path);
        return 1;
    }
    static char line[65536];
    kv kvs[MAXKV];
    size_t ln = 0, nex = 0, nivf = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        const char *err = NULL;
        int n = parse_line(line, kvs, &err);
        if (n < 0) {
            fprintf(out, "%s:%zu: %s\n", path, ln, err);
            bad++;
            continue;
        }
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
            if (!get(kvs, n, required[i])) {
                fprintf(out, "%s:%zu: key \"%s\" missing\n", path, ln, required[i]);
                bad++;
            }
        const char *recalls[] = {"recall@1", "recall@10", "recall@100", "10-recall@10"};
        for (int i = 0; i < 4; i++) {
            const kv *e = get(kvs, n, recalls[i]);
            if (e && !(e->type == V_NULL || (e->type == V_NUM && e->num >= 0 && e->num <= 1))) {
                fprintf(out, "%s:%zu: %s must be null or in [0,1]\n", path, ln, recalls[i]);
                bad++;
            }
        }
        const kv *r1 = get(kvs, n, "recall@1");
        if (r1 && r1->type != V_NUM) {
            fprintf(out, "%s:%zu: recall@1 must be a number\n", path, ln);
            bad++;
        }
        const kv *b = get(kvs, n, "bytes"), *kind = get(kvs, n, "kind"), *m = get(kvs, n, "method");
        if (b && !(b->type == V_NUM && b->num >= 1 && b->num == floor(b->num))) {
            fprintf(out, "%s:%zu: bytes must be a positive integer\n", path, ln);
            bad++;
        }
        if (m && (m->type != V_STR || !m->str[0])) {
            fprintf(out, "%s:%zu: method must be a non-empty string\n", path, ln);
            bad++;
        }
        if (kind && kind->type == V_STR && !strcmp(kind->str, "ivf")) {
            nivf++;
            const kv *q = get(kvs, n, "qps"), *np = get(kvs, n, "nprobe");
            if (!q || q->type != V_NUM || q->num <= 0 || !np || np->type != V_NUM || np->num < 1) {
                fprintf(out, "%s:%zu: an ivf line needs qps > 0 and nprobe >= 1\n", path, ln);
                bad++;
            }
        } else if (kind && kind->type == V_STR && !strcmp(kind->str, "exhaustive")) {
            nex++;
            const kv *mse = get(kvs, n, "mse");
            if (!mse || mse->type != V_NUM || mse->num < 0) {
                fprintf(out, "%s:%zu: an exhaustive line needs mse >= 0\n", path, ln);
                bad++;
            }
        } else {
            fprintf(out, "%s:%zu: kind must be \"exhaustive\" or \"ivf\"\n", path, ln);
            bad++;
        }
    }
    fclose(f);
    if (ln == 0) {
        fprintf(out, "%s: empty\n", path);
        return 1;
    }
    if (bad) {
        fprintf(out, "%s: %zu problem(s) in %zu lines\n", path, bad, ln);
        return 1;
    }
    fprintf(out, "%s: %zu lines OK (%zu exhaustive, %zu ivf)\n", path, ln, nex, nivf);
    return 0;
}
