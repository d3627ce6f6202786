/* bench/bench_svg.c — a small line/scatter chart written as SVG by the
 * program itself, the fallback when gnuplot is not installed (and
 * `--plot svg`). Linear or log axes, a light grid, one colour per series,
 * markers at the points, optional joining lines, a legend on the right.
 * Deliberately plain: it must read well with no tool but a browser.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_impl.h"

static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define NPAL (sizeof palette / sizeof palette[0])

enum { W = 960, H = 600, ML = 80, MR = 250, MT = 50, MB = 60 };

typedef struct axis {
    double lo, hi;
    int log;
} axis;

static double tr(const axis *a, double v) {
    return a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                  : (v - a->lo) / (a->hi - a->lo);
}

static void fit(axis *a, double lo, double hi) {
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (a->log) {
        if (lo <= 0) lo = hi > 0 ? hi / 10 : 1;
        a->lo = pow(10, floor(log10(lo)));
        a->hi = pow(10, ceil(log10(hi)));
        if (a->hi <= a->lo) a->hi = a->lo * 10;
    } else {
        double span = hi - lo;
        if (span <= 0) span = fabs(hi) > 0 ? fabs(hi) : 1;
        double step = pow(10, floor(log10(span / 5)));
        if (span / step > 10) step *= 2;
        a->lo = floor(lo / step) * step;
        a->hi = ceil(hi / step) * step;
        if (a->hi <= a->lo) a->hi = a->lo + step;
    }
}

static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* Ticks: decades (with 2 and 5) on a log axis, ~6 round steps on a linear one. */
static size_t ticks(const axis *a, double *t, size_t max) {
    size_t n = 0;
    if (a->log) {
        for (double dec = a->lo; dec <= a->hi * 1.0001 && n < max; dec *= 10) {
            const double m[3] = {1, 2, 5};
            for (int i = 0; i < 3 && n < max; i++)
                if (dec * m[i] <= a->hi * 1.0001 && (i == 0 || a->hi / a->lo <= 1e3)) t[n++] = dec * m[i];
        }
    } else {
        double span = a->hi - a->lo, step = pow(10, floor(log10(span / 5)));
        if (span / step > 10) step *= 2;
        for (double v = a->lo; v <= a->hi + step * 1e-6 && n < max; v += step) t[n++] = v;
    }
    return n;
}

int bench_svg_chart(const char *path, const char *title, const char *xlabel, const char *ylabel,
                    const bench_series *s, size_t ns, int logx, int logy) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "qinx bench: cannot write %s\n", path);
        return QX_EIO;
    }
    axis ax = {0, 1, logx}, ay = {0, 1, logy};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            double x = s[i].x[j], y = s[i].y[j];
            if (!isfinite(x) || !isfinite(y) || (logx && x <= 0) || (logy && y <= 0)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    fit(&ax, xlo, xhi);
    fit(&ay, ylo, yhi);
    const double pw = W - ML - MR, ph = H - MT - MB;
#define PX(v) (ML + pw * tr(&ax, (v)))
#define PY(v) (MT + ph * (1 - tr(&ay, (v))))
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%g\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", ML + pw / 2);
    esc(f, title);
    fprintf(f, "</text>\n");
    double t[64];
    size_t nt = ticks(&ax, t, 64);
    for (size_t i = 0; i < nt; i++) {
        double x = PX(t[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, MT, x,
                MT + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x, MT + ph + 18, t[i]);
    }
    nt = ticks(&ay, t, 64);
    for (size_t i = 0; i < nt; i++) {
        double y = PY(t[i]);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, y,
                ML + pw, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, y + 4, t[i]);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n",
            ML, MT, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", ML + pw / 2, H - 18);
    esc(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">",
            MT + ph / 2);
    esc(f, ylabel);
    fprintf(f, "</text>\n");
    for (size_t i = 0; i < ns; i++) {
        const char *col = palette[(size_t)s[i].color % NPAL];
        if (s[i].lines && s[i].n > 1) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col,
                    s[i].dashed ? " stroke-dasharray=\"6,4\"" : "");
            for (size_t j = 0; j < s[i].n; j++)
                if (isfinite(s[i].x[j]) && isfinite(s[i].y[j]) && (!logx || s[i].x[j] > 0) &&
                    (!logy || s[i].y[j] > 0))
                    fprintf(f, "%.1f,%.1f ", PX(s[i].x[j]), PY(s[i].y[j]));
            fprintf(f, "\"/>\n");
        }
        for (size_t j = 0; j < s[i].n; j++) {
            if (!isfinite(s[i].x[j]) || !isfinite(s[i].y[j]) || (logx && s[i].x[j] <= 0) ||
                (logy && s[i].y[j] <= 0))
                continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s/>\n", PX(s[i].x[j]),
                    PY(s[i].y[j]), s[i].lines ? 3 : 2, col, s[i].lines ? "" : " fill-opacity=\"0.45\"");
        }
        double ly = MT + 10 + 20.0 * i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                ML + pw + 15, ly, ML + pw + 45, ly, col,
                s[i].dashed ? " stroke-dasharray=\"6,4\"" : (s[i].lines ? "" : " stroke-dasharray=\"1,4\""));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", ML + pw + 52, ly + 4);
        esc(f, s[i].name);
        fprintf(f, "</text>\n");
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "qinx bench: cannot write %s\n", path);
        return QX_EIO;
    }
    return 0;
}
