/* bench/bench_plot.c — the two plots of a bench run:
 *   recall_vs_bytes.svg  R@1 (solid) and 10-recall@10 (dashed) versus bytes per
 *                        vector, one colour per exhaustive method;
 *   qps_vs_recall.svg    single-threaded QPS (log scale) versus 10-recall@10,
 *                        every operating point faint, the Pareto frontier of
 *                        each IVF method × bytes as a line.
 * gnuplot (Debian's gnuplot-nox) draws them when it is on PATH: the data go
 * to DIR/plot-data/NAME.dat and the script to DIR/plots.gp, so a person can
 * restyle them. Otherwise, or with --plot svg, bench_svg.c writes the same
 * charts itself. A gnuplot failure falls back to the built-in writer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_impl.h"

#define MAXS 64

typedef struct chart {
    bench_series s[MAXS];
    double *buf[MAXS]; /* owned x then y storage of each series */
    size_t ns;
} chart;

static bench_series *add_series(chart *c, const char *name, size_t cap, int color, int lines, int dashed) {
    if (c->ns == MAXS) return NULL;
    double *b = calloc(2 * (cap ? cap : 1), sizeof(double));
    if (!b) return NULL;
    bench_series *s = &c->s[c->ns];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->x = b;
    s->y = b + cap;
    s->color = color;
    s->lines = lines;
    s->dashed = dashed;
    c->buf[c->ns++] = b;
    return s;
}

static void push(bench_series *s, double x, double y) {
    ((double *)s->x)[s->n] = x;
    ((double *)s->y)[s->n] = y;
    s->n++;
}

static void chart_free(chart *c) {
    for (size_t i = 0; i < c->ns; i++) free(c->buf[i]);
    c->ns = 0;
}

/* Sort a series by x (insertion sort: a handful of points). */
static void sort_x(bench_series *s) {
    double *x = (double *)s->x, *y = (double *)s->y;
    for (size_t i = 1; i < s->n; i++)
        for (size_t j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1], x[j - 1] = t;
            t = y[j];
            y[j] = y[j - 1], y[j - 1] = t;
        }
}

static void build_bytes_chart(const bench_run *r, chart *c) {
    const char *names[MAXS];
    size_t nn = 0;
    for (size_t i = 0; i < r->nres; i++) {
        if (r->res[i].ivf) continue;
        size_t j = 0;
        while (j < nn && strcmp(names[j], r->res[i].method)) j++;
        if (j == nn && nn < MAXS / 2) names[nn++] = r->res[i].method;
    }
    for (size_t m = 0; m < nn; m++) {
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "%s R@1", names[m]);
        snprintf(n2, sizeof n2, "%s 10-R@10", names[m]);
        bench_series *a = add_series(c, n1, r->nres, (int)m, 1, 0);
        bench_series *b = add_series(c, n2, r->nres, (int)m, 1, 1);
        if (!a || !b) return;
        for (size_t i = 0; i < r->nres; i++) {
            const bench_result *p = &r->res[i];
            if (p->ivf || strcmp(p->method, names[m])) continue;
            push(a, (double)p->bytes, p->r1);
            push(b, (double)p->bytes, p->r10at10);
        }
        sort_x(a);
        sort_x(b);
    }
}

static void build_qps_chart(const bench_run *r, chart *c) {
    size_t first[MAXS], nn = 0;
    for (size_t i = 0; i < r->nres; i++) {
        const bench_result *p = &r->res[i];
        if (!p->ivf) continue;
        size_t j = 0;
        while (j < nn && !bench_same_series(&r->res[first[j]], p)) j++;
        if (j == nn && nn < MAXS / 2) first[nn++] = i;
    }
    /* one colour per method, dashed = re-ranking, point shape per byte size */
    const char *meth[MAXS];
    size_t nmeth = 0, sizes[MAXS], nsizes = 0;
    for (size_t m = 0; m < nn; m++) {
        const bench_result *h = &r->res[first[m]];
        size_t a = 0, b = 0;
        while (a < nmeth && strcmp(meth[a], h->method)) a++;
        if (a == nmeth) meth[nmeth++] = h->method;
        while (b < nsizes && sizes[b] != h->bytes) b++;
        if (b == nsizes) sizes[nsizes++] = h->bytes;
    }
    for (size_t m = 0; m < nn; m++) {
        const bench_result *h = &r->res[first[m]];
        char name[64], n1[80], n2[80];
        size_t a = 0, b = 0;
        while (strcmp(meth[a], h->method)) a++;
        while (sizes[b] != h->bytes) b++;
        bench_series_name(h, name, sizeof name);
        snprintf(n1, sizeof n1, "%s %zuB", name, h->bytes);
        snprintf(n2, sizeof n2, "%s %zuB (all)", name, h->bytes);
        bench_series *front = add_series(c, n1, r->nres, (int)a, 1, h->rerank > 0);
        bench_series *all = add_series(c, n2, r->nres, (int)a, 0, 0);
        if (!front || !all) return;
        front->point = all->point = (int)b;
        for (size_t i = 0; i < r->nres; i++) {
            const bench_result *p = &r->res[i];
            if (!bench_same_series(p, h)) continue;
            push(all, p->r10at10, p->qps);
            if (p->pareto) push(front, p->r10at10, p->qps);
        }
        sort_x(front);
    }
}

static void shell_quote(char *out, size_t len, const char *s) {
    size_t j = 0;
    if (j + 1 < len) out[j++] = '\'';
    for (; *s && j + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(out + j, "'\\''", 4);
            j += 4;
        } else {
            out[j++] = *s;
        }
    }
    if (j + 1 < len) out[j++] = '\'';
    out[j] = '\0';
}

/* gnuplot point types: filled circle, square, triangle, diamond (the hollow one is n - 1) */
static const int gp_filled[] = {7, 5, 9, 13};
static const char *gp_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* Writes the data files of chart c (prefix tag) and its part of the script. */
static int gp_chart(const bench_run *r, FILE *gp, const chart *c, const char *tag, const char *out,
                    const char *title, const char *xl, const char *yl, int logx, int logy,
                    const char *yrange) {
    fprintf(gp, "set output '%s'\nset title '%s'\nset xlabel '%s'\nset ylabel '%s'\nset yrange %s\n",
            out, title, xl, yl, yrange);
    fprintf(gp, logx ? "set logscale x 2\n" : "unset logscale x\n");
    fprintf(gp, logy ? "set logscale y\n" : "unset logscale y\n");
    if (logx) {
        fprintf(gp, "set xtics (");
        int first = 1;
        double seen[64];
        size_t nseen = 0;
        for (size_t i = 0; i < c->ns; i++)
            for (size_t j = 0; j < c->s[i].n; j++) {
                size_t k = 0;
                while (k < nseen && seen[k] != c->s[i].x[j]) k++;
                if (k < nseen || nseen == 64) continue;
                seen[nseen++] = c->s[i].x[j];
                fprintf(gp, "%s%g", first ? "" : ", ", c->s[i].x[j]);
                first = 0;
            }
        /* a margin on both sides: ticks on the border of an autoscaled log axis get lost */
        double lo = INFINITY, hi = -INFINITY;
        for (size_t k = 0; k < nseen; k++) {
            if (seen[k] < lo) lo = seen[k];
            if (seen[k] > hi) hi = seen[k];
        }
        if (nseen && lo > 0) fprintf(gp, ")\nset xrange [%g:%g]\n", lo / 1.25, hi * 1.25);
        else fprintf(gp, ")\nset xrange [*:*]\n");
    } else {
        fprintf(gp, "set xtics autofreq\nset xrange [*:*]\n");
    }
    size_t nonempty = 0;
    for (size_t i = 0; i < c->ns; i++) nonempty += c->s[i].n > 0;
    if (!nonempty) {
        /* an exhaustive-only (or IVF-only) run: an empty frame with a label.
         * "plot NaN" fails under a log axis ("all points y value undefined")
         * and takes the whole script down with it. */
        fprintf(gp, "unset logscale x\nunset logscale y\nset xtics autofreq\n"
                    "set label 1 'no such points in this run' at graph 0.5,0.5 center\n"
                    "plot [0:1][0:1] 2 notitle\nunset label 1\n");
        return 0;
    }
    fprintf(gp, "plot ");
    int any = 0;
    for (size_t i = 0; i < c->ns; i++) {
        const bench_series *s = &c->s[i];
        if (!s->n) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/plot-data/%s%zu.dat", r->cfg->out_dir, tag, i);
        FILE *d = fopen(path, "w");
        if (!d) return QX_EIO;
        fprintf(d, "# %s\n", s->name);
        for (size_t j = 0; j < s->n; j++)
            if (isfinite(s->x[j]) && isfinite(s->y[j])) fprintf(d, "%.6g %.6g\n", s->x[j], s->y[j]);
        fclose(d);
        const char *col = gp_colors[(size_t)s->color % 10];
        fprintf(gp, "%s'plot-data/%s%zu.dat' ", any ? ", \\\n     " : "", tag, i);
        if (s->lines)
            fprintf(gp, "with linespoints lw 2 pt %d ps 0.7 dt %d lc rgb '%s' title '%s'",
                    gp_filled[(size_t)s->point % 4], s->dashed ? 2 : 1, col, s->name);
        else
            fprintf(gp, "with points pt %d ps 0.6 lc rgb '%s' notitle", gp_filled[(size_t)s->point % 4] - 1,
                    col);
        any = 1;
    }
    fprintf(gp, "\n");
    return 0;
}

static int run_gnuplot(const bench_run *r, chart *cb, chart *cq) {
    char dir[4200], path[4200], cmd[9000], q[4400];
    snprintf(dir, sizeof dir, "%s/plot-data", r->cfg->out_dir);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/plots.gp", r->cfg->out_dir);
    FILE *gp = fopen(path, "w");
    if (!gp) return QX_EIO;
    fprintf(gp, "# gnuplot script written by `qinx bench`; run from this directory: gnuplot plots.gp\n"
                "set terminal svg size 960,600 font 'sans,12' noenhanced background rgb 'white'\n"
                "set grid\nset key outside right top\n");
    int rc = gp_chart(r, gp, cb, "bytes", "recall_vs_bytes.svg", "Recall of the code (exhaustive search)",
                      "bytes per vector", "recall@1 (solid), 10-recall@10 (dashed)", 1, 0, "[0:1]");
    if (rc == 0)
        rc = gp_chart(r, gp, cq, "qps", "qps_vs_recall.svg", "IVF: QPS vs 10-recall@10 (1 thread)",
                      "10-recall@10", "queries per second", 0, 1, "[*:*]");
    fclose(gp);
    if (rc) return rc;
    shell_quote(q, sizeof q, r->cfg->out_dir);
    snprintf(cmd, sizeof cmd, "cd %s && gnuplot plots.gp 2> plots.log", q);
    return system(cmd) == 0 ? 0 : QX_EIO;
}

int bench_plots(const bench_run *r, char *note, size_t note_len) {
    chart cb = {0}, cq = {0};
    build_bytes_chart(r, &cb);
    build_qps_chart(r, &cq);
    int mode = r->cfg->plot, rc = 0;
    if (mode == BENCH_PLOT_NONE) {
        snprintf(note, note_len, "not drawn (--plot none)");
        chart_free(&cb);
        chart_free(&cq);
        return 0;
    }
    if (mode == BENCH_PLOT_AUTO || mode == BENCH_PLOT_GNUPLOT) {
        int have = system("command -v gnuplot > /dev/null 2>&1") == 0;
        if (have && run_gnuplot(r, &cb, &cq) == 0) {
            snprintf(note, note_len, "drawn by gnuplot (script and data: plots.gp, plot-data/)");
            chart_free(&cb);
            chart_free(&cq);
            return 0;
        }
        if (mode == BENCH_PLOT_GNUPLOT)
            fprintf(stderr, "qinx bench: gnuplot %s; writing the SVG plots myself\n",
                    have ? "failed (see plots.log)" : "not found");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/recall_vs_bytes.svg", r->cfg->out_dir);
    rc = bench_svg_chart(path, "Recall of the code (exhaustive search)", "bytes per vector",
                         "recall@1 (solid), 10-recall@10 (dashed)", cb.s, cb.ns, 1, 0);
    snprintf(path, sizeof path, "%s/qps_vs_recall.svg", r->cfg->out_dir);
    if (rc == 0)
        rc = bench_svg_chart(path, "IVF: QPS vs 10-recall@10 (1 thread)", "10-recall@10",
                             "queries per second", cq.s, cq.ns, 0, 1);
    snprintf(note, note_len, "SVG written by qinx bench (gnuplot %s)",
             mode == BENCH_PLOT_SVG ? "not used: --plot svg" : "not available");
    chart_free(&cb);
    chart_free(&cq);
    return rc;
}
