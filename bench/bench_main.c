/* bench/bench_main.c — `qinx bench`: options, data loading, the order in
 * which methods run, and the outputs.
 *
 * Decisions:
 * 1. One run, one dataset: every method sees the same training set (the
 *    --train file, or an evenly spaced sample of at most --max-train base
 *    vectors — the same sample `qinx build --max-train` takes, so an IVF
 *    point here can be reproduced with build + search), the same base and
 *    the same first --nq queries.
 * 2. Order = priority (bench_method_priority): qinx RQ and the FAISS PQ/RQ
 *    baselines, the IVF pair qinx-ivfrq/faiss-ivfpq, QINCo, then the other
 *    FAISS methods, FAISS LSQ last — so a tight budget loses the expensive
 *    extras, never the baselines. Before each (method, bytes) the time plan
 *    (bench_plan.c) decides its training set size or skips it, so the run
 *    ends in time.
 * 3. A method that fails is reported (stderr and the report's notes) and the
 *    run goes on; the exit status is then 1.
 * 4. results.jsonl is rewritten after every measured point (bench_util.c);
 *    report.md and the plots are written at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "bench_impl.h"

static void usage(FILE *f) {
    size_t n;
    const bench_method *m = bench_methods_all(&n);
    fprintf(f,
            "usage: qinx bench --base FILE --queries FILE [--gt FILE] [options]\n"
            "       qinx bench --check DIR/results.jsonl\n"
            "Compares qinx and FAISS quantizers on one dataset: MSE and recall of the codes\n"
            "(exhaustive search over decoded vectors) versus bytes per vector, and single-threaded\n"
            "QPS versus 10-recall@10 of IVF indexes.\n\n"
            "  --base FILE         base vectors (.fvecs/.bvecs)\n"
            "  --queries FILE      query vectors\n"
            "  --gt FILE           ground truth (.ivecs); computed exactly and cached in DIR if absent\n"
            "  --train FILE        training vectors (default: a sample of the base)\n"
            "  --max-train N       at most N training vectors sampled from the base (default 100000)\n"
            "  --nq N              use the first N queries (default all)\n"
            "  --max-base N        use the first N base vectors (default all; smoke tests): the\n"
            "                      ground truth is then computed for that subset, --gt is ignored\n"
            "  --bytes LIST        bytes per vector of the exhaustive methods (default 8,16)\n"
            "  --ivf-bytes LIST    bytes per vector of the IVF methods (default: --bytes)\n"
            "  --methods LIST      comma-separated, or 'all' (default qinx-rq,faiss-pq,faiss-rq):\n"
            "                     ");
    for (size_t i = 0; i < n; i++) fprintf(f, " %s", m[i].name);
    fprintf(f,
            "\n"
            "  --ivf               add the IVF methods qinx-ivfrq and faiss-ivfpq if none is listed\n"
            "  --nlist N           IVF lists (default 1024, capped at n_train/39 for every method)\n"
            "  --nprobe LIST       nprobe sweep (default 1,2,4,8,16,32,64,128)\n"
            "  --rerank LIST       qinx re-ranking shortlists swept too (default 0,100)\n"
            "  --k K               neighbours per IVF query (default 10)\n"
            "  --runs R            timed runs per IVF point, best kept (default 3)\n"
            "  --out DIR           output directory (default bench-out)\n"
            "  --time-budget MIN   whole-run budget in minutes (default 50): slow methods are\n"
            "                      skipped or cut short with a note when it runs out\n"
            "  --threads T         training/encoding threads (default all cores; search uses 1)\n"
            "  --seed S            random seed (default 1234)\n"
            "  --name NAME         dataset name in the outputs (default from the base file name)\n"
            "  --plot MODE         auto (gnuplot if installed, else built-in SVG), gnuplot, svg, none\n"
            "  --quiet             no progress on stderr\n"
            "  --write-gt FILE     only compute the exact top-100 ground truth into FILE (.ivecs)\n"
            "  --plan-only         print the time plan's cost model of every method, simulate the\n"
            "                      plan with measured = S x model seconds, and exit\n"
            "  --plan-speed S      S for --plan-only (default 0.5, about an idle 2-core EPYC)\n"
            "Outputs in DIR: results.jsonl, report.md, recall_vs_bytes.svg, qps_vs_recall.svg.\n");
}

static int parse_list(const char *opt, const char *s, size_t lo, size_t hi, size_t *out, size_t *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || *p == '-' || v < lo || v > hi || (*end && *end != ',') ||
            *n == BENCH_MAX_LIST) {
            fprintf(stderr, "qinx bench: %s expects a comma-separated list of at most %d numbers in "
                            "%zu..%zu, got '%s'\n",
                    opt, BENCH_MAX_LIST, lo, hi, s);
            return -1;
        }
        out[(*n)++] = (size_t)v;
        p = *end ? end + 1 : end;
    }
    if (!*n) {
        fprintf(stderr, "qinx bench: %s is empty\n", opt);
        return -1;
    }
    return 0;
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "qinx bench: %s expects a number in %g..%g, got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int add_method(bench_cfg *c, const char *name) {
    if (!bench_method_find(name)) {
        fprintf(stderr, "qinx bench: unknown method '%s' (see --help)%s\n", name,
                !strcmp(name, "qinx-qinco") || !strcmp(name, "qinx-ivfqinco")
                        ? "; this build has no QINCo quantizer"
                        : "");
        return -1;
    }
    for (size_t i = 0; i < c->nmethods; i++)
        if (!strcmp(c->methods[i], name)) return 0;
    if (c->nmethods == BENCH_MAX_METHODS) return -1;
    c->methods[c->nmethods++] = bench_method_find(name)->name;
    return 0;
}

static int parse_methods(bench_cfg *c, const char *s) {
    if (!strcmp(s, "all")) {
        size_t n;
        const bench_method *m = bench_methods_all(&n);
        for (size_t i = 0; i < n; i++) add_method(c, m[i].name);
        return 0;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (add_method(c, t)) return -1;
    return 0;
}

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static void dataset_name(char *out, size_t len, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, len, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot) *dot = '\0';
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, "_base")) out[n - 5] = '\0';
    for (char *p = out; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            *p = '_';
}

static int load_data(bench_run *r) {
    const bench_cfg *c = r->cfg;
    bench_data *D = r->data;
    /* one row more than --max-base tells whether the file was cut */
    int rc = qx_vecs_read(c->base_path, c->max_base ? c->max_base + 1 : 0, &D->base);
    if (rc) return bench_qx_fail("reading --base", rc);
    int cut = c->max_base && D->base.n > c->max_base;
    if (cut) D->base.n = c->max_base;
    D->d = D->base.d;
    if ((rc = qx_vecs_read(c->query_path, c->nq_max, &D->queries))) return bench_qx_fail("reading --queries", rc);
    if (D->queries.d != D->d) {
        fprintf(stderr, "qinx bench: queries have dimension %zu, the base %zu\n", D->queries.d, D->d);
        return QX_EDIM;
    }
    if (c->train_path) {
        if ((rc = qx_vecs_read(c->train_path, 0, &D->train))) return bench_qx_fail("reading --train", rc);
        if (D->train.d != D->d) {
            fprintf(stderr, "qinx bench: --train has dimension %zu, the base %zu\n", D->train.d, D->d);
            return QX_EDIM;
        }
    } else {
        size_t nt = D->base.n < c->max_train ? D->base.n : c->max_train;
        D->train_is_base = nt == D->base.n;
        if ((rc = qx_matrix_alloc(&D->train, nt, D->d))) return bench_qx_fail("training sample", rc);
        /* the sample of `qinx build --max-train` */
        qx_sample_rows(D->base.data, D->base.n, D->d, nt, D->train.data);
    }
    if (c->write_gt) {
        /* --write-gt: exact ground truth into the named file, nothing else */
        if ((rc = bench_ground_truth(r))) return rc;
        if ((rc = qx_ivecs_write(c->write_gt, D->gt, D->queries.n, D->gt_k)))
            return bench_qx_fail("writing --write-gt", rc);
        bench_log(r, "wrote %s (%zu x %zu)", c->write_gt, D->queries.n, D->gt_k);
        return 0;
    }
    if (c->gt_path && cut)
        bench_note(r, "--gt ignored: the ground truth of the whole base does not hold for its first %zu "
                      "vectors (--max-base); computed exactly instead",
                   c->max_base);
    if (c->gt_path && !cut) {
        size_t gn = 0, gk = 0;
        if ((rc = qx_ivecs_read(c->gt_path, c->nq_max, &D->gt, &gn, &gk))) return bench_qx_fail("reading --gt", rc);
        if (gn < D->queries.n) {
            fprintf(stderr, "qinx bench: %zu queries but ground truth for %zu\n", D->queries.n, gn);
            return QX_EDIM;
        }
        D->gt_k = gk;
    } else if ((rc = bench_ground_truth(r))) {
        return rc;
    }
    for (size_t i = 0; i < D->queries.n * D->gt_k; i++)
        if (D->gt[i] < 0 || (size_t)D->gt[i] >= D->base.n) {
            fprintf(stderr, "qinx bench: ground truth id %d (query %zu) is not a base row (0..%zu)\n",
                    D->gt[i], i / D->gt_k, D->base.n - 1);
            return QX_EFORMAT;
        }
    return 0;
}

int qx_bench_main(int argc, char **argv) {
    static bench_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.out_dir = "bench-out";
    cfg.max_train = 100000;
    cfg.nlist = 1024;
    cfg.k_ivf = 10;
    cfg.runs = 3;
    cfg.budget_min = 50;
    cfg.seed = 1234;
    cfg.plan_speed = 0.5;
    const char *check = NULL, *write_gt = NULL, *bytes_s = "8,16", *ivf_bytes_s = NULL, *methods_s = NULL;
    const char *nprobe_s = "1,2,4,8,16,32,64,128", *rerank_s = "0,100";
    int want_ivf = 0;
    size_t n = 0;
    double dv = 0;
    static const struct option opts[] = {
        {"base", 1, 0, 'b'},      {"queries", 1, 0, 'q'},   {"gt", 1, 0, 'g'},      {"train", 1, 0, 't'},
        {"max-train", 1, 0, 'x'}, {"nq", 1, 0, 'Q'},        {"bytes", 1, 0, 'B'},   {"ivf-bytes", 1, 0, 'I'},
        {"methods", 1, 0, 'm'},   {"ivf", 0, 0, 'v'},       {"nlist", 1, 0, 'n'},   {"nprobe", 1, 0, 'p'},
        {"rerank", 1, 0, 'r'},    {"k", 1, 0, 'k'},         {"runs", 1, 0, 'R'},    {"out", 1, 0, 'o'},
        {"time-budget", 1, 0, 'T'}, {"threads", 1, 0, 'j'}, {"seed", 1, 0, 's'},    {"name", 1, 0, 'N'},
        {"plot", 1, 0, 'P'},      {"quiet", 0, 0, 'z'},     {"check", 1, 0, 'c'},   {"help", 0, 0, 'h'},
        {"write-gt", 1, 0, 'W'},  {"max-base", 1, 0, 'X'},  {"plan-only", 0, 0, 'D'},  {"plan-speed", 1, 0, 'S'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'b': cfg.base_path = optarg; break;
        case 'q': cfg.query_path = optarg; break;
        case 'g': cfg.gt_path = optarg; break;
        case 't': cfg.train_path = optarg; break;
        case 'x': bad = parse_list("--max-train", optarg, 256, (size_t)1 << 40, &cfg.max_train, &n) || n != 1; break;
        case 'X': bad = parse_list("--max-base", optarg, 1, (size_t)1 << 40, &cfg.max_base, &n) || n != 1; break;
        case 'Q': bad = parse_list("--nq", optarg, 1, (size_t)1 << 40, &cfg.nq_max, &n) || n != 1; break;
        case 'B': bytes_s = optarg; break;
        case 'I': ivf_bytes_s = optarg; break;
        case 'm': methods_s = optarg; break;
        case 'v': want_ivf = 1; break;
        case 'n': bad = parse_list("--nlist", optarg, 1, QX_MAX_NLIST, &cfg.nlist, &n) || n != 1; break;
        case 'p': nprobe_s = optarg; break;
        case 'r': rerank_s = optarg; break;
        case 'k': bad = parse_list("--k", optarg, 1, 1000, &cfg.k_ivf, &n) || n != 1; break;
        case 'R': bad = parse_list("--runs", optarg, 1, 100, &cfg.runs, &n) || n != 1; break;
        case 'o': cfg.out_dir = optarg; break;
        case 'T': bad = parse_num("--time-budget", optarg, 0, 1e6, &cfg.budget_min); break;
        case 'j': bad = parse_num("--threads", optarg, 1, 256, &dv); cfg.threads = (int)dv; break;
        case 's': bad = parse_num("--seed", optarg, 0, 1e18, &dv); cfg.seed = (uint64_t)dv; break;
        case 'N': cfg.name = optarg; break;
        case 'P':
            if (!strcmp(optarg, "auto")) cfg.plot = BENCH_PLOT_AUTO;
            else if (!strcmp(optarg, "gnuplot")) cfg.plot = BENCH_PLOT_GNUPLOT;
            else if (!strcmp(optarg, "svg")) cfg.plot = BENCH_PLOT_SVG;
            else if (!strcmp(optarg, "none")) cfg.plot = BENCH_PLOT_NONE;
            else {
                fprintf(stderr, "qinx bench: --plot is auto, gnuplot, svg or none\n");
                bad = 1;
            }
            break;
        case 'z': cfg.quiet = 1; break;
        case 'c': check = optarg; break;
        case 'W': write_gt = optarg; break;
        case 'D': cfg.plan_only = 1; break;
        case 'S': bad = parse_num("--plan-speed", optarg, 0.01, 100, &cfg.plan_speed); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (check) return bench_check_jsonl(check, stdout) ? 1 : 0;
    cfg.write_gt = write_gt;
    if (!cfg.base_path || !cfg.query_path || optind < argc) {
        fprintf(stderr, "qinx bench: --base and --queries are required\n");
        usage(stderr);
        return 2;
    }
    if (parse_list("--bytes", bytes_s, 1, QX_MAX_STEPS, cfg.bytes, &cfg.nbytes) ||
        parse_list("--ivf-bytes", ivf_bytes_s ? ivf_bytes_s : bytes_s, 2, QX_MAX_STEPS + 1, cfg.ivf_bytes,
                   &cfg.nivf_bytes) ||
        parse_list("--nprobe", nprobe_s, 1, QX_MAX_NLIST, cfg.nprobe, &cfg.nnprobe) ||
        parse_list("--rerank", rerank_s, 0, 100000, cfg.rerank, &cfg.nrerank) ||
        parse_methods(&cfg, methods_s ? methods_s : "qinx-rq,faiss-pq,faiss-rq"))
        return 2;
    int have_ivf = 0;
    for (size_t i = 0; i < cfg.nmethods; i++) have_ivf |= bench_method_find(cfg.methods[i])->ivf;
    if (want_ivf && !have_ivf) {
        add_method(&cfg, "qinx-ivfrq");
        add_method(&cfg, "faiss-ivfpq");
    }
    {
        size_t j = (size_t)snprintf(cfg.cmdline, sizeof cfg.cmdline, "qinx");
        for (int i = 0; i < argc && j < sizeof cfg.cmdline; i++)
            j += (size_t)snprintf(cfg.cmdline + j, sizeof cfg.cmdline - j, " %s", argv[i]);
    }
    if (mkdirs(cfg.out_dir)) {
        fprintf(stderr, "qinx bench: cannot create the output directory %s: %s\n", cfg.out_dir,
                strerror(errno));
        return 1;
    }

    static bench_data data;
    memset(&data, 0, sizeof data);
    bench_run run = {0};
    run.cfg = &cfg;
    run.data = &data;
    run.t0 = bench_now();
    run.deadline = run.t0 + cfg.budget_min * 60;
    bench_machine(data.machine, sizeof data.machine, &data.ncores);
    run.train_threads = cfg.threads ? cfg.threads : data.ncores;
    if (cfg.name) dataset_name(data.dataset, sizeof data.dataset, cfg.name);
    else dataset_name(data.dataset, sizeof data.dataset, cfg.base_path);
    bench_set_threads(cfg.threads);

    int rc = load_data(&run), failed = 0;
    if (rc || cfg.write_gt) goto out;
    bench_log(&run, "%s: %zu base x %zu, %zu training, %zu queries, ground truth top-%zu; %s, %d threads",
              data.dataset, data.base.n, data.d, data.train.n, data.queries.n, data.gt_k, data.machine,
              run.train_threads);

    /* by priority (bench_method_priority), then in the order of --methods */
    const bench_method *order[BENCH_MAX_METHODS];
    size_t no = 0;
    for (int pass = 0; pass < 5; pass++)
        for (size_t i = 0; i < cfg.nmethods; i++) {
            const bench_method *m = bench_method_find(cfg.methods[i]);
            if (bench_method_priority(m->name) == pass) order[no++] = m;
        }
    if ((rc = bench_plan_init(&run, order, no))) goto out;
    bench_gauss_reference(&run);
    if (cfg.plan_only) {
        bench_print_gauss(&run, stdout, 0);
        bench_plan_print(&run, stdout);
        bench_plan_simulate(&run, stdout);
        goto out;
    }
    for (size_t i = 0; i < run.njobs; i++) {
        bench_job *j = &run.jobs[i];
        size_t ntrain = 0;
        if ((rc = bench_plan_job(&run, i, &ntrain, &run.qinco_minutes))) goto out;
        if (j->skip_reason) {
            bench_note(&run, "%s at %zu bytes skipped: %s", j->m->name, j->bytes, j->skip_reason);
            continue;
        }
        run.train_n = ntrain;
        run.lsq_encode_ils = j->encode_ils;
        run.train_x = bench_train_subset(&run, ntrain);
        if (!run.train_x) {
            rc = QX_ENOMEM;
            goto out;
        }
        double t = bench_now();
        run.qinco_used_s = NAN;
        int mrc = j->m->run(&run, j->m, j->bytes);
        bench_plan_done(&run, i, bench_now() - t);
        j->qinco_used_s = run.qinco_used_s;
        if (mrc) {
            failed = j->failed = 1;
            bench_note(&run, "%s at %zu bytes FAILED: %s", j->m->name, j->bytes,
                       qx_last_error()[0] ? qx_last_error() : qx_strerror(mrc));
        }
    }
    bench_mark_pareto(&run);
    char plot_note[256] = "";
    if ((rc = bench_write_jsonl(&run)) == 0 && (rc = bench_plots(&run, plot_note, sizeof plot_note)) == 0)
        rc = bench_write_report(&run, plot_note);
    bench_print_tables(&run, stdout);
    bench_plan_report(&run, stdout, 0);
    if (rc == 0)
        bench_log(&run, "wrote %s/results.jsonl, report.md, recall_vs_bytes.svg, qps_vs_recall.svg",
                  cfg.out_dir);
out:
    bench_methods_cleanup();
    qx_matrix_free(&data.base);
    qx_matrix_free(&data.train);
    qx_matrix_free(&data.queries);
    if (data.gt_malloced) free(data.gt);
    else qx_free(data.gt);
    for (size_t i = 0; i < run.nnotes; i++) free(run.notes[i]);
    free(run.notes);
    free(run.res);
    free(run.jobs);
    free(run.sub);
    return rc ? 1 : failed;
}
