/* verify/derp_report.c — the DERP report: health and drift results, free-form
 * "meta" strings and the gate's pass/fail checks, written as JSON.
 *
 * Decisions:
 * 1. JSON is written by hand with a small growable string buffer: the
 *    library must not depend on jansson (only the server does). The key set
 *    and types are documented in docs/derp.md and pinned by tests.
 * 2. Health and drift are rendered to JSON fragments when they are set, so
 *    the report owns no pointers into the caller's results and can outlive
 *    them.
 * 3. A check has a policy (block or warn, set by name, so the gate can
 *    set policies before its checks exist). The verdict needs every block
 *    check to pass; a failed warn check is a warning then, and a failure
 *    when a block check failed too: drift on its own is news, drift with
 *    lost recall is the fault.
 * 4. Numbers are printed with %.9g (enough to tell every float apart, short
 *    enough to read); NaN and Inf become null, which JSON has and they lack.
 *    The 64-bit seed is a decimal string: many JSON readers (JavaScript,
 *    jansson's json_int_t) cannot hold every uint64 exactly.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "derp_impl.h"
#include "json.h"

#define QX__DERP_NAME_MAX 127
#define QX__DERP_META_VALUE_MAX 4096

/* ---- string builder ------------------------------------------------------------ */

static int sb_grow(qx__derp_sb *b, size_t extra) {
    if (b->err) return -1;
    size_t need;
    if (!qx__add(b->len, extra, &need) || !qx__add(need, 1, &need)) {
        b->err = 1;
        return -1;
    }
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (!qx__mul(cap, 2, &cap)) {
            b->err = 1;
            return -1;
        }
    }
    char *s = qx__realloc(b->s, cap);
    if (!s) {
        b->err = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void qx__derp_sb_puts(qx__derp_sb *b, const char *s) {
    size_t n = strlen(s);
    if (sb_grow(b, n)) return;
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void qx__derp_sb_printf(qx__derp_sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = 1;
        return;
    }
    if (sb_grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void put_sb(void *ctx, const char *p, size_t n) {
    qx__derp_sb *b = ctx;
    if (sb_grow(b, n)) return;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void qx__derp_sb_json_string(qx__derp_sb *b, const char *s) { qx__json_string(put_sb, b, s); }

void qx__derp_sb_json_number(qx__derp_sb *b, double v) {
    if (isfinite(v)) qx__derp_sb_printf(b, "%.9g", v);
    else qx__derp_sb_puts(b, "null");
}

void qx__derp_sb_free(qx__derp_sb *b) {
    qx__free(b->s);
    memset(b, 0, sizeof *b);
}

/* Take the buffer's string (NULL on a sticky error, buffer freed). */
static char *sb_take(qx__derp_sb *b) {
    char *s = b->err ? NULL : b->s;
    if (b->err) qx__free(b->s);
    if (s == NULL && !b->err) s = qx__strdup("");
    memset(b, 0, sizeof *b);
    return s;
}

/* ---- the report ------------------------------------------------------------------ */

typedef struct check {
    char name[QX__DERP_NAME_MAX + 1];
    double value, threshold;
    qx_derp_cmp cmp;
    int pass;
} check;

typedef struct meta {
    char *key, *value;
} meta;

typedef struct policy_entry {
    char name[QX__DERP_NAME_MAX + 1];
    qx_derp_policy policy;
} policy_entry;

struct qx_derp_report {
    qx_derp_opts opts;
    char *health;  /* fragment: "health":{…},"steps":[…] */
    char *drift;   /* fragment: {…} */
    check *checks;
    size_t nchecks, cap_checks;
    meta *meta;
    size_t nmeta, cap_meta;
    policy_entry *policies;
    size_t npolicies, cap_policies;
    int incomplete; /* a check could not be recorded: the report fails */
};

int qx_derp_report_new(qx_derp_report **out, const qx_derp_opts *opts) {
    if (!out) return qx__fail(QX_EINVAL, "report: NULL output");
    *out = NULL;
    qx_derp_opts o;
    int rc = qx__derp_opts_check(opts, &o);
    if (rc) return rc;
    qx_derp_report *r = qx__calloc(1, sizeof *r);
    if (!r) return qx__fail(QX_ENOMEM, "report");
    r->opts = o;
    *out = r;
    return 0;
}

void qx_derp_report_free(qx_derp_report *r) {
    if (!r) return;
    qx__free(r->health);
    qx__free(r->drift);
    qx__free(r->checks);
    for (size_t i = 0; i < r->nmeta; i++) {
        qx__free(r->meta[i].key);
        qx__free(r->meta[i].value);
    }
    qx__free(r->meta);
    qx__free(r->policies);
    qx__free(r);
}

static const char *json_bool(int v) { return v ? "true" : "false"; }

static void put_family(qx__derp_sb *b, const qx_derp_family *f) {
    if (f->P == 0) {
        qx__derp_sb_puts(b, "null");
        return;
    }
    qx__derp_sb_printf(b, "{\"n\":%zu,\"significant\":%zu,\"rejected\":%zu,\"rejected_fraction\":",
                       f->n, f->significant, f->rejected);
    qx__derp_sb_json_number(b, f->rejected_fraction);
    qx__derp_sb_printf(b, ",\"holm_rejected\":%zu,\"p_combined\":", f->holm_rejected);
    qx__derp_sb_json_number(b, f->p_combined);
    qx__derp_sb_printf(b, ",\"reject\":%s,\"D_mean\":", json_bool(f->reject));
    qx__derp_sb_json_number(b, f->D_mean);
    qx__derp_sb_puts(b, ",\"D_max\":");
    qx__derp_sb_json_number(b, f->D_max);
    qx__derp_sb_puts(b, "}");
}

int qx_derp_report_set_health(qx_derp_report *r, const qx_derp_health *h) {
    if (!r || !h || (!h->steps && h->M)) return qx__fail(QX_EINVAL, "report: NULL health");
    qx__derp_sb b = {0};
    qx__derp_sb_puts(&b, "\"health\":{\"kind\":");
    qx__derp_sb_json_string(&b, qx_quantizer_kind_name(h->kind));
    qx__derp_sb_printf(&b, ",\"n\":%zu,\"d\":%zu,\"M\":%zu,\"mse0\":", h->n, h->d, h->M);
    qx__derp_sb_json_number(&b, h->mse0);
    qx__derp_sb_puts(&b, "},\"steps\":[");
    for (size_t m = 0; m < h->M; m++) {
        const qx_derp_step *s = &h->steps[m];
        qx__derp_sb_printf(&b, "%s{\"step\":%zu,\"ksub\":%zu,\"used\":%zu,\"used_fraction\":",
                           m ? "," : "", s->step, s->ksub, s->used);
        qx__derp_sb_json_number(&b, s->used_fraction);
        qx__derp_sb_puts(&b, ",\"perplexity\":");
        qx__derp_sb_json_number(&b, s->perplexity);
        qx__derp_sb_printf(&b, ",\"dead\":%zu,\"mse\":", s->dead);
        qx__derp_sb_json_number(&b, s->mse);
        qx__derp_sb_puts(&b, ",\"mse_drop\":");
        qx__derp_sb_json_number(&b, s->mse_drop);
        qx__derp_sb_puts(&b, ",\"residual_rejected_fraction\":");
        qx__derp_sb_json_number(&b, s->residual.P ? s->residual.rejected_fraction : NAN);
        qx__derp_sb_puts(&b, ",\"residual\":");
        put_family(&b, &s->residual);
        qx__derp_sb_puts(&b, ",\"codebook\":");
        put_family(&b, &s->codebook);
        qx__derp_sb_puts(&b, "}");
    }
    qx__derp_sb_puts(&b, "]");
    char *s = sb_take(&b);
    if (!s) return qx__fail(QX_ENOMEM, "report: health JSON");
    qx__free(r->health);
    r->health = s;
    return 0;
}

int qx_derp_report_set_drift(qx_derp_report *r, const qx_derp_drift *dr) {
    if (!r || !dr) return qx__fail(QX_EINVAL, "report: NULL drift");
    const qx_derp_family *f = &dr->test;
    if (f->P && (!f->D || !f->p)) return qx__fail(QX_EINVAL, "report: drift without results");
    qx__derp_sb b = {0};
    qx__derp_sb_printf(&b, "{\"n_ref\":%zu,\"n\":%zu,\"score\":", f->n_ref, f->n);
    qx__derp_sb_json_number(&b, dr->score);
    qx__derp_sb_puts(&b, ",\"score_mean\":");
    qx__derp_sb_json_number(&b, dr->score_mean);
    qx__derp_sb_puts(&b, ",\"effect\":");
    qx__derp_sb_json_number(&b, dr->effect);
    qx__derp_sb_puts(&b, ",\"effect_mean\":");
    qx__derp_sb_json_number(&b, dr->effect_mean);
    qx__derp_sb_puts(&b, ",\"min_effect\":");
    qx__derp_sb_json_number(&b, f->min_effect);
    qx__derp_sb_puts(&b, ",\"p_combined\":");
    qx__derp_sb_json_number(&b, f->P ? f->p_combined : NAN);
    qx__derp_sb_printf(&b, ",\"significant\":%zu,\"rejected\":%zu,\"rejected_fraction\":",
                       f->significant, f->rejected);
    qx__derp_sb_json_number(&b, f->rejected_fraction);
    qx__derp_sb_printf(&b, ",\"holm_rejected\":%zu,\"reject\":%s,\"top_probes\":[",
                       f->holm_rejected, json_bool(f->reject));
    for (size_t t = 0; t < dr->ntop && t < QX_DERP_TOP_MOVED; t++) {
        size_t p = dr->top[t];
        if (p >= f->P) break;
        qx__derp_sb_printf(&b, "%s{\"probe\":%zu,\"D\":", t ? "," : "", p);
        qx__derp_sb_json_number(&b, f->D[p]);
        qx__derp_sb_puts(&b, ",\"p\":");
        qx__derp_sb_json_number(&b, f->p[p]);
        qx__derp_sb_puts(&b, ",\"W\":");
        qx__derp_sb_json_number(&b, f->W ? f->W[p] : NAN);
        qx__derp_sb_puts(&b, "}");
    }
    qx__derp_sb_puts(&b, "],\"D\":[");
    for (size_t p = 0; p < f->P; p++) {
        if (p) qx__derp_sb_puts(&b, ",");
        qx__derp_sb_json_number(&b, f->D[p]);
    }
    qx__derp_sb_puts(&b, "],\"W\":[");
    for (size_t p = 0; p < f->P; p++) {
        if (p) qx__derp_sb_puts(&b, ",");
        qx__derp_sb_json_number(&b, f->W ? f->W[p] : NAN);
    }
    qx__derp_sb_puts(&b, "]}");
    char *s = sb_take(&b);
    if (!s) return qx__fail(QX_ENOMEM, "report: drift JSON");
    qx__free(r->drift);
    r->drift = s;
    return 0;
}

static int valid_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) return 0;
    return n >= 1 && n <= QX__DERP_NAME_MAX;
}

int qx_derp_report_set_meta(qx_derp_report *r, const char *key, const char *value) {
    if (!r || !key || !value) return qx__fail(QX_EINVAL, "report meta: NULL argument");
    if (!valid_name(key))
        return qx__fail(QX_EINVAL, "report meta: key must be 1..%d printable ASCII characters",
                        QX__DERP_NAME_MAX);
    if (strlen(value) > QX__DERP_META_VALUE_MAX)
        return qx__fail(QX_ELIMIT, "report meta: value of %s longer than %d", key,
                        QX__DERP_META_VALUE_MAX);
    char *v = qx__strdup(value);
    if (!v) return qx__fail(QX_ENOMEM, "report meta");
    for (size_t i = 0; i < r->nmeta; i++)
        if (strcmp(r->meta[i].key, key) == 0) {
            qx__free(r->meta[i].value);
            r->meta[i].value = v;
            return 0;
        }
    char *k = qx__strdup(key);
    if (!k) {
        qx__free(v);
        return qx__fail(QX_ENOMEM, "report meta");
    }
    if (r->nmeta == r->cap_meta) {
        size_t cap = r->cap_meta ? 2 * r->cap_meta : 8;
        meta *m = qx__realloc(r->meta, cap * sizeof *m);
        if (!m) {
            qx__free(k);
            qx__free(v);
            return qx__fail(QX_ENOMEM, "report meta");
        }
        r->meta = m;
        r->cap_meta = cap;
    }
    r->meta[r->nmeta++] = (meta){k, v};
    return 0;
}

static const char *cmp_name(qx_derp_cmp c) {
    switch (c) {
    case QX_DERP_LE: return "<=";
    case QX_DERP_GE: return ">=";
    case QX_DERP_LT: return "<";
    case QX_DERP_GT: return ">";
    }
    return "?";
}

/* A check that cannot be recorded must not let the report pass: a gate
 * that ignores the return code still refuses to publish. */
static int check_lost(qx_derp_report *r, int *pass, int code) {
    r->incomplete = 1;
    if (pass) *pass = 0;
    return code;
}

int qx_derp_report_add_check(qx_derp_report *r, const char *name, double value,
                             double threshold, qx_derp_cmp cmp, int *pass) {
    if (!r) return qx__fail(QX_EINVAL, "report check: NULL report");
    if (!name) return check_lost(r, pass, qx__fail(QX_EINVAL, "report check: NULL name"));
    if (!valid_name(name))
        return check_lost(r, pass, qx__fail(QX_EINVAL, "report check: name must be 1..%d "
                                            "printable ASCII characters", QX__DERP_NAME_MAX));
    if (cmp != QX_DERP_LE && cmp != QX_DERP_GE && cmp != QX_DERP_LT && cmp != QX_DERP_GT)
        return check_lost(r, pass, qx__fail(QX_EINVAL, "report check %s: unknown comparison %d",
                                            name, (int)cmp));
    if (isnan(threshold))
        return check_lost(r, pass, qx__fail(QX_EINVAL, "report check %s: NaN threshold", name));
    if (r->nchecks == r->cap_checks) {
        size_t cap = r->cap_checks ? 2 * r->cap_checks : 8;
        check *c = qx__realloc(r->checks, cap * sizeof *c);
        if (!c) return check_lost(r, pass, qx__fail(QX_ENOMEM, "report check %s", name));
        r->checks = c;
        r->cap_checks = cap;
    }
    /* Comparisons with NaN are false, so a NaN value fails every check. */
    int ok = cmp == QX_DERP_LE ? value <= threshold
           : cmp == QX_DERP_GE ? value >= threshold
           : cmp == QX_DERP_LT ? value < threshold
                               : value > threshold;
    check *c = &r->checks[r->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->value = value;
    c->threshold = threshold;
    c->cmp = cmp;
    c->pass = ok;
    if (pass) *pass = ok;
    return 0;
}

static qx_derp_policy policy_of(const qx_derp_report *r, const char *name) {
    for (size_t i = 0; i < r->npolicies; i++)
        if (strcmp(r->policies[i].name, name) == 0) return r->policies[i].policy;
    return QX_DERP_BLOCK;
}

int qx_derp_report_set_policy(qx_derp_report *r, const char *name, qx_derp_policy policy) {
    if (!r || !name) return qx__fail(QX_EINVAL, "report policy: NULL argument");
    if (!valid_name(name))
        return qx__fail(QX_EINVAL, "report policy: name must be 1..%d printable ASCII characters",
                        QX__DERP_NAME_MAX);
    if (policy != QX_DERP_BLOCK && policy != QX_DERP_WARN)
        return qx__fail(QX_EINVAL, "report policy %s: unknown policy %d", name, (int)policy);
    for (size_t i = 0; i < r->npolicies; i++)
        if (strcmp(r->policies[i].name, name) == 0) {
            r->policies[i].policy = policy;
            return 0;
        }
    if (r->npolicies == r->cap_policies) {
        size_t cap = r->cap_policies ? 2 * r->cap_policies : 8;
        policy_entry *e = qx__realloc(r->policies, cap * sizeof *e);
        if (!e) return qx__fail(QX_ENOMEM, "report policy %s", name);
        r->policies = e;
        r->cap_policies = cap;
    }
    policy_entry *e = &r->policies[r->npolicies++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->policy = policy;
    return 0;
}

/* Every block check passed and nothing was lost. */
static int blocks_pass(const qx_derp_report *r) {
    if (r->incomplete) return 0;
    for (size_t i = 0; i < r->nchecks; i++)
        if (!r->checks[i].pass && policy_of(r, r->checks[i].name) == QX_DERP_BLOCK) return 0;
    return 1;
}

static int outcome(const qx_derp_report *r, size_t i, int blocks_ok) {
    if (r->checks[i].pass) return 0;
    return blocks_ok && policy_of(r, r->checks[i].name) == QX_DERP_WARN ? 1 : -1;
}

int qx_derp_report_check_outcome(const qx_derp_report *r, size_t i, const char **name) {
    if (!r || i >= r->nchecks) return -1;
    if (name) *name = r->checks[i].name;
    return outcome(r, i, blocks_pass(r));
}

size_t qx_derp_report_num_warnings(const qx_derp_report *r) {
    if (!r) return 0;
    int ok = blocks_pass(r);
    size_t n = 0;
    for (size_t i = 0; i < r->nchecks; i++) n += outcome(r, i, ok) == 1;
    return n;
}

int qx_derp_report_passed(const qx_derp_report *r) { return r ? blocks_pass(r) : 0; }

size_t qx_derp_report_num_checks(const qx_derp_report *r) { return r ? r->nchecks : 0; }

int qx_derp_report_json(const qx_derp_report *r, char **json, size_t *len) {
    if (!r || !json) return qx__fail(QX_EINVAL, "report json: NULL argument");
    *json = NULL;
    qx__derp_sb b = {0};
    qx__derp_sb_printf(&b, "{\"version\":%d,\"probes\":%zu,\"alpha\":", QX_DERP_REPORT_VERSION,
                       r->opts.probes);
    qx__derp_sb_json_number(&b, r->opts.alpha);
    qx__derp_sb_printf(&b,
                       ",\"seed\":\"%llu\",\"max_test_n\":%zu,\"rule\":\"holm\","
                       "\"pvalue_one_sample\":\"lilliefors-dallal-wilkinson-1986\","
                       "\"pvalue_two_sample\":\"kolmogorov-stephens-1970\",\"meta\":{",
                       (unsigned long long)r->opts.seed, r->opts.max_test_n);
    for (size_t i = 0; i < r->nmeta; i++) {
        if (i) qx__derp_sb_puts(&b, ",");
        qx__derp_sb_json_string(&b, r->meta[i].key);
        qx__derp_sb_puts(&b, ":");
        qx__derp_sb_json_string(&b, r->meta[i].value);
    }
    qx__derp_sb_puts(&b, "},");
    qx__derp_sb_puts(&b, r->health ? r->health : "\"health\":null,\"steps\":[]");
    qx__derp_sb_puts(&b, ",\"drift\":");
    qx__derp_sb_puts(&b, r->drift ? r->drift : "null");
    qx__derp_sb_puts(&b, ",\"checks\":[");
    int ok = blocks_pass(r);
    for (size_t i = 0; i < r->nchecks; i++) {
        const check *c = &r->checks[i];
        qx__derp_sb_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        qx__derp_sb_json_string(&b, c->name);
        qx__derp_sb_puts(&b, ",\"value\":");
        qx__derp_sb_json_number(&b, c->value);
        qx__derp_sb_puts(&b, ",\"threshold\":");
        qx__derp_sb_json_number(&b, c->threshold);
        int oc = outcome(r, i, ok);
        qx__derp_sb_printf(&b, ",\"cmp\":\"%s\",\"pass\":%s,\"policy\":\"%s\",\"outcome\":\"%s\"}",
                           cmp_name(c->cmp), json_bool(c->pass),
                           policy_of(r, c->name) == QX_DERP_WARN ? "warn" : "block",
                           oc == 0 ? "pass" : oc == 1 ? "warn" : "fail");
    }
    qx__derp_sb_puts(&b, "],\"warnings\":[");
    for (size_t i = 0, k = 0; i < r->nchecks; i++)
        if (outcome(r, i, ok) == 1) {
            if (k++) qx__derp_sb_puts(&b, ",");
            qx__derp_sb_json_string(&b, r->checks[i].name);
        }
    qx__derp_sb_printf(&b, "],\"complete\":%s,\"pass\":%s}", json_bool(!r->incomplete),
                       json_bool(ok));
    size_t n = b.len;
    char *s = sb_take(&b);
    if (!s) return qx__fail(QX_ENOMEM, "report json");
    *json = s;
    if (len) *len = n;
    return 0;
}

void qx_derp_thresholds_init(qx_derp_thresholds *t) {
    if (!t) return;
    t->min_used_fraction = 0.3;
    t->min_perplexity = 0.05;
    t->max_drift_rejected_fraction = 0.25;
    t->max_drift_score = NAN;
}

static int add_if_on(qx_derp_report *r, const char *name, double value, double threshold,
                     qx_derp_cmp cmp, int *all) {
    if (isnan(threshold)) return 0;
    int pass = 0, rc = qx_derp_report_add_check(r, name, value, threshold, cmp, &pass);
    if (rc == 0 && !pass) *all = 0;
    return rc;
}

int qx_derp_report_add_standard_checks(qx_derp_report *r, const qx_derp_health *h,
                                       const qx_derp_drift *dr, const qx_derp_thresholds *t,
                                       int *all_pass) {
    if (!r) return qx__fail(QX_EINVAL, "standard checks: NULL report");
    qx_derp_thresholds def;
    if (!t) {
        qx_derp_thresholds_init(&def);
        t = &def;
    }
    int all = 1, rc = 0;
    if (h) {
        qx_derp_health_summary s;
        rc = qx_derp_health_summarize(h, &s);
        if (rc == 0)
            rc = add_if_on(r, "min_used_fraction", s.min_used_fraction, t->min_used_fraction,
                           QX_DERP_GE, &all);
        if (rc == 0)
            rc = add_if_on(r, "min_perplexity", s.min_perplexity, t->min_perplexity, QX_DERP_GE,
                           &all);
    }
    if (rc == 0 && dr) {
        rc = add_if_on(r, "max_drift_rejected_fraction",
                       dr->test.P ? dr->test.rejected_fraction : NAN,
                       t->max_drift_rejected_fraction, QX_DERP_LE, &all);
        if (rc == 0)
            rc = add_if_on(r, "max_drift_score", dr->test.P ? dr->score : NAN, t->max_drift_score,
                           QX_DERP_LE, &all);
    }
    if (rc == 0 && all_pass) *all_pass = all;
    return rc;
}
