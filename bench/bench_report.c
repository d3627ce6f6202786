/* bench/bench_report.c — results.jsonl, report.md and the stdout tables.
 *
 * results.jsonl holds one flat JSON object per method × bytes × operating
 * point; values that do not apply (QPS of an exhaustive row, MSE of an IVF
 * point, recall@100 when k < 100) are null rather than absent, so every line
 * has the same keys (checked by `qinx bench --check`). The file is built in
 * memory and written atomically (qx_write_atomic), and rewritten after every
 * method, so it is always complete and parseable. report.md repeats the figures as tables
 * a person reads, and links the plots.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_impl.h"
#include "qinx/core.h"

static void json_num(FILE *f, double v, const char *fmt) {
    if (isnan(v) || isinf(v)) fputs("null", f);
    else fprintf(f, fmt, v);
}

static void json_long(FILE *f, long v) {
    if (v < 0) fputs("null", f);
    else fprintf(f, "%ld", v);
}

int bench_write_jsonl(const bench_run *r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/results.jsonl", r->cfg->out_dir);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        fprintf(stderr, "qinx bench: out of memory for %s\n", path);
        return QX_ENOMEM;
    }
    const bench_data *D = r->data;
    for (size_t i = 0; i < r->nres; i++) {
        const bench_result *p = &r->res[i];
        fputs("{\"dataset\":", f);
        qx_json_fputs(f, D->dataset);
        fputs(",\"method\":", f);
        qx_json_fputs(f, p->method);
        fputs(",\"spec\":", f);
        qx_json_fputs(f, p->spec);
        fprintf(f, ",\"kind\":\"%s\",\"bytes\":%zu,\"mse\":", p->ivf ? "ivf" : "exhaustive", p->bytes);
        json_num(f, p->mse, "%.6g");
        fputs(",\"recall@1\":", f);
        json_num(f, p->r1, "%.4f");
        fputs(",\"recall@10\":", f);
        json_num(f, p->r10, "%.4f");
        fputs(",\"recall@100\":", f);
        json_num(f, p->r100, "%.4f");
        fputs(",\"10-recall@10\":", f);
        json_num(f, p->r10at10, "%.4f");
        fputs(",\"qps\":", f);
        json_num(f, p->qps, "%.1f");
        fputs(",\"nprobe\":", f);
        json_long(f, p->nprobe);
        fputs(",\"rerank\":", f);
        json_long(f, p->rerank);
        fputs(",\"train_s\":", f);
        json_num(f, p->train_s, "%.3f");
        fputs(",\"encode_s\":", f);
        json_num(f, p->encode_s, "%.3f");
        fputs(",\"index_bytes\":", f);
        json_num(f, p->index_bytes, "%.0f");
        fputs(",\"machine\":", f);
        qx_json_fputs(f, D->machine);
        fprintf(f, ",\"threads\":%d,\"pareto\":%s,\"n_base\":%zu,\"n_train\":%zu,\"nq\":%zu}\n",
                p->threads, p->ivf ? (p->pareto ? "true" : "false") : "null", D->base.n, p->n_train,
                D->queries.n);
    }
    int bad = ferror(f);
    if (fclose(f) || bad || qx_write_atomic(path, text, len)) {
        fprintf(stderr, "qinx bench: cannot write %s: %s\n", path, qx_last_error());
        free(text);
        return QX_EIO;
    }
    free(text);
    return 0;
}

static void fnum(char *buf, size_t len, double v, const char *fmt) {
    if (isnan(v)) snprintf(buf, len, "—");
    else snprintf(buf, len, fmt, v);
}

static const double targets[] = {0.5, 0.6, 0.7, 0.8, 0.9};
#define NTARGETS (sizeof targets / sizeof targets[0])

/* Exhaustive table; md = 1 for markdown, 0 for a plain terminal table. */
static void table_exhaustive(const bench_run *r, FILE *f, int md) {
    int any = 0;
    for (size_t i = 0; i < r->nres; i++) any |= !r->res[i].ivf;
    if (!any) return;
    if (md)
        fprintf(f, "| method | bytes | MSE | R@1 | R@10 | R@100 | 10-R@10 | train s | encode s | "
                   "encode vec/s | code |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    else
        fprintf(f, "%-13s %5s %11s %7s %7s %7s %8s %9s %9s %11s\n", "method", "bytes", "MSE", "R@1",
                "R@10", "R@100", "10-R@10", "train_s", "encode_s", "encode/s");
    /* grouped by bytes, in run order within a size */
    size_t sizes[64], ns = 0;
    for (size_t i = 0; i < r->nres; i++) {
        if (r->res[i].ivf) continue;
        size_t j = 0;
        while (j < ns && sizes[j] != r->res[i].bytes) j++;
        if (j == ns && ns < 64) sizes[ns++] = r->res[i].bytes;
    }
    for (size_t a = 1; a < ns; a++)
        for (size_t b = a; b > 0 && sizes[b - 1] > sizes[b]; b--) {
            size_t t = sizes[b];
            sizes[b] = sizes[b - 1];
            sizes[b - 1] = t;
        }
    for (size_t s = 0; s < ns; s++)
        for (size_t i = 0; i < r->nres; i++) {
            const bench_result *p = &r->res[i];
            if (p->ivf || p->bytes != sizes[s]) continue;
            char mse[32], r1[16], r10[16], r100[16], rr[16], tr[16], en[16], vs[16];
            fnum(mse, sizeof mse, p->mse, "%.5g");
            fnum(r1, sizeof r1, p->r1, "%.4f");
            fnum(r10, sizeof r10, p->r10, "%.4f");
            fnum(r100, sizeof r100, p->r100, "%.4f");
            fnum(rr, sizeof rr, p->r10at10, "%.4f");
            fnum(tr, sizeof tr, p->train_s, "%.1f");
            fnum(en, sizeof en, p->encode_s, "%.1f");
            fnum(vs, sizeof vs, p->encode_s > 0 ? r->data->base.n / p->encode_s : NAN, "%.0f");
            if (md)
                fprintf(f, "| %s | %zu | %s | %s | %s | %s | %s | %s | %s | %s | `%s` |\n", p->method,
                        p->bytes, mse, r1, r10, r100, rr, tr, en, vs, p->spec);
            else
                fprintf(f, "%-13s %5zu %11s %7s %7s %7s %8s %9s %9s %11s\n", p->method, p->bytes, mse,
                        r1, r10, r100, rr, tr, en, vs);
        }
}

/* One row per IVF series: QPS at a few 10-recall@10 targets. */
static void table_ivf_targets(const bench_run *r, FILE *f, int md) {
    int any = 0;
    for (size_t i = 0; i < r->nres; i++) any |= r->res[i].ivf;
    if (!any) return;
    if (md) {
        fprintf(f, "| method | bytes | train s | add s |");
        for (size_t t = 0; t < NTARGETS; t++) fprintf(f, " QPS @%.1f |", targets[t]);
        fprintf(f, " best 10-R@10 | index |\n|---|--:|--:|--:|");
        for (size_t t = 0; t < NTARGETS; t++) fprintf(f, "--:|");
        fprintf(f, "--:|---|\n");
    } else {
        fprintf(f, "%-13s %5s %8s %8s", "method", "bytes", "train_s", "add_s");
        for (size_t t = 0; t < NTARGETS; t++) fprintf(f, "  QPS@%.1f", targets[t]);
        fprintf(f, "  best-R10@10\n");
    }
    for (size_t i = 0; i < r->nres; i++) {
        const bench_result *p = &r->res[i];
        if (!p->ivf) continue;
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            if (bench_same_series(&r->res[j], p)) first = 0;
        if (!first) continue;
        double best = 0;
        for (size_t j = i; j < r->nres; j++)
            if (bench_same_series(&r->res[j], p) && r->res[j].r10at10 > best)
                best = r->res[j].r10at10;
        char name[64];
        bench_series_name(p, name, sizeof name);
        if (md) fprintf(f, "| %s | %zu | %.1f | %.1f |", name, p->bytes, p->train_s, p->encode_s);
        else fprintf(f, "%-13s %5zu %8.1f %8.1f", name, p->bytes, p->train_s, p->encode_s);
        for (size_t t = 0; t < NTARGETS; t++) {
            char b[24];
            fnum(b, sizeof b, bench_qps_at(r, p, targets[t]), "%.0f");
            fprintf(f, md ? " %s |" : " %8s", b);
        }
        if (md) fprintf(f, " %.4f | `%s` |\n", best, p->spec);
        else fprintf(f, "  %.4f\n", best);
    }
}

static void table_ivf_points(const bench_run *r, FILE *f) {
    fprintf(f, "| method | bytes | nprobe | rerank | R@1 | R@10 | 10-R@10 | QPS | Pareto |\n"
               "|---|--:|--:|--:|--:|--:|--:|--:|:-:|\n");
    for (size_t i = 0; i < r->nres; i++) {
        const bench_result *p = &r->res[i];
        if (!p->ivf) continue;
        char r1[16], r10[16], rr[16];
        fnum(r1, sizeof r1, p->r1, "%.4f");
        fnum(r10, sizeof r10, p->r10, "%.4f");
        fnum(rr, sizeof rr, p->r10at10, "%.4f");
        fprintf(f, "| %s | %zu | %ld | %ld | %s | %s | %s | %.0f | %s |\n", p->method, p->bytes,
                p->nprobe, p->rerank, r1, r10, rr, p->qps, p->pareto ? "●" : "");
    }
}

void bench_print_tables(const bench_run *r, FILE *f) {
    fprintf(f, "\n== %s: exhaustive search over decoded codes (%zu base, %zu queries) ==\n",
            r->data->dataset, r->data->base.n, r->data->queries.n);
    table_exhaustive(r, f, 0);
    bench_print_gauss(r, f, 0);
    int any = 0;
    for (size_t i = 0; i < r->nres; i++) any |= r->res[i].ivf;
    if (any) {
        fprintf(f, "\n== %s: IVF, single-threaded QPS at 10-recall@10 (Pareto frontier) ==\n",
                r->data->dataset);
        table_ivf_targets(r, f, 0);
    }
    for (size_t i = 0; i < r->nnotes; i++) fprintf(f, "note: %s\n", r->notes[i]);
}

int bench_write_report(const bench_run *r, const char *plot_note) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", r->cfg->out_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "qinx bench: cannot write %s\n", path);
        return QX_EIO;
    }
    const bench_data *D = r->data;
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# qinx bench — %s\n\n", D->dataset);
    fprintf(f, "- Command: `%s`\n", r->cfg->cmdline);
    fprintf(f, "- Machine: %s, %d cores; training/encoding with %d threads, IVF search timed on 1 "
               "thread (best of %zu runs)\n",
            D->machine, D->ncores, r->train_threads, r->cfg->runs);
    fprintf(f, "- Data: %zu base vectors of dimension %zu, %zu training vectors, %zu queries, "
               "ground truth top-%zu\n",
            D->base.n, D->d, D->train.n, D->queries.n, D->gt_k);
    fprintf(f, "- Finished %s after %.1f minutes (time budget %g minutes)\n\n", date,
            (bench_now() - r->t0) / 60, r->cfg->budget_min);
    int any_ex = 0, any_ivf = 0;
    for (size_t i = 0; i < r->nres; i++) {
        any_ex |= !r->res[i].ivf;
        any_ivf |= r->res[i].ivf;
    }
    if (any_ex) {
        fprintf(f, "## Exhaustive search over decoded codes\n\n"
                   "Every method is trained on the same training set and encodes the base; recall is "
                   "that of exact search over the decoded base (the quality of the code itself). MSE = "
                   "mean over base vectors of ||x − x̂||².\n\n");
        table_exhaustive(r, f, 1);
        fprintf(f, "\n");
        bench_print_gauss(r, f, 1);
        fprintf(f, "![recall@1 and 10-recall@10 versus bytes per vector](recall_vs_bytes.svg)\n\n");
    }
    if (any_ivf) {
        fprintf(f, "## IVF search: QPS versus 10-recall@10\n\n"
                   "Single-threaded, whole query batch per call, best of %zu runs per point; k = %zu. "
                   "QPS at a target recall is interpolated on each method's Pareto frontier (— = never "
                   "reached). Bytes count every stored byte per vector except the id.\n\n",
                r->cfg->runs, r->cfg->k_ivf);
        table_ivf_targets(r, f, 1);
        fprintf(f, "\n![QPS versus 10-recall@10](qps_vs_recall.svg)\n\n"
                   "<details><summary>All operating points</summary>\n\n");
        table_ivf_points(r, f);
        fprintf(f, "\n</details>\n\n");
    }
    if (plot_note && *plot_note) fprintf(f, "Plots: %s.\n\n", plot_note);
    bench_plan_report(r, f, 1);
    if (r->nnotes) {
        fprintf(f, "## Notes\n\n");
        for (size_t i = 0; i < r->nnotes; i++) fprintf(f, "- %s\n", r->notes[i]);
        fprintf(f, "\n");
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "qinx bench: cannot write %s\n", path);
        return QX_EIO;
    }
    return 0;
}
