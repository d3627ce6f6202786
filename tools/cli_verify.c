/* tools/cli_verify.c — `qinx verify`: the DERP report of an existing index
 * (codebook health, drift of --data against the training reservoir saved in
 * the index, and the recall check when --data is the file the index was
 * built from, ids = row numbers). Exit status 0 when every check passes,
 * 3 when one fails. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_print_report(const qx_derp_report *rep, int json) {
    if (json) {
        char *s = NULL;
        if (qx_derp_report_json(rep, &s, NULL) != 0) return;
        printf("%s\n", s);
        qx_free(s);
        return;
    }
    /* The checks, one per line, with their policy and outcome. */
    char *s = NULL;
    if (qx_derp_report_json(rep, &s, NULL) != 0) return;
    printf("%-28s %12s %12s  %-6s %s\n", "check", "value", "threshold", "policy", "result");
    const char *p = strstr(s, "\"checks\"");
    for (size_t i = 0; p && i < qx_derp_report_num_checks(rep); i++) {
        if (!(p = strstr(p, "{\"name\":\""))) break;
        const char *name = NULL;
        int oc = qx_derp_report_check_outcome(rep, i, &name);
        double v = 0, t = 0;
        const char *vv = strstr(p, "\"value\":"), *tt = strstr(p, "\"threshold\":");
        const char *pol = strstr(p, "\"policy\":\"");
        if (vv) v = strtod(vv + 8, NULL);
        if (tt) t = strtod(tt + 12, NULL);
        printf("%-28s %12.4f %12.4f  %-6s %s\n", name ? name : "?", v, t,
               pol && !strncmp(pol + 10, "warn", 4) ? "warn" : "block",
               oc == 0 ? "pass" : oc == 1 ? "WARN" : "FAIL");
        p += 9;
    }
    size_t nw = qx_derp_report_num_warnings(rep);
    if (nw) {
        printf("warnings (%zu, not blocking):", nw);
        for (size_t i = 0; i < qx_derp_report_num_checks(rep); i++) {
            const char *name = NULL;
            if (qx_derp_report_check_outcome(rep, i, &name) == 1) printf(" %s", name);
        }
        printf("\n");
    }
    qx_free(s);
}

int qx_cli_verify(int argc, char **argv) {
    const char *index_path = NULL, *data_path = NULL, *gate_path = NULL;
    int json = 0;
    static const struct option opts[] = {{"index", 1, 0, 'i'}, {"data", 1, 0, 'd'},
                                         {"gate", 1, 0, 'g'},  {"json", 0, 0, 'j'},
                                         {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': index_path = optarg; break;
        case 'd': data_path = optarg; break;
        case 'g': gate_path = optarg; break;
        case 'j': json = 1; break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: qinx verify --index INDEX [--data FILE] [--gate CONFIG] [--json]\n"
                    "  --data FILE   the vectors the index holds (row number = id): adds drift and\n"
                    "                recall checks; without it, health is measured on the training\n"
                    "                reservoir saved in the index\n"
                    "  --gate CONFIG thresholds (docs/derp.md); defaults otherwise\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!index_path || optind < argc) {
        fprintf(stderr, "usage: qinx verify --index INDEX [--data FILE] [--gate CONFIG] [--json]\n");
        return 2;
    }
    qx_gate_config cfg;
    qx_gate_config_init(&cfg);
    int rc = gate_path ? qx_gate_config_load(gate_path, &cfg) : 0;
    if (rc) return cli_fail("verify", rc);
    qx_ivf *ivf = NULL;
    qx_matrix data = {0};
    qx_derp_report *rep = NULL;
    int passed = 0;
    if ((rc = qx_ivf_load(index_path, &ivf))) return cli_fail("verify", rc);
    const float *x;
    size_t n;
    if (data_path) {
        if ((rc = qx_vecs_read(data_path, 0, &data))) goto out;
        x = data.data;
        n = data.n;
    } else {
        const qx_derp_reservoir *r = qx_ivf_reservoir(ivf);
        if (!r) {
            fprintf(stderr, "qinx verify: %s holds no training reservoir; give --data FILE\n", index_path);
            qx_ivf_free(ivf);
            return 1;
        }
        x = qx_derp_reservoir_data(r);
        n = qx_derp_reservoir_size(r);
        cfg.queries = 0; /* ids of the reservoir are not index ids */
    }
    rc = qx_gate_evaluate(ivf, NULL, x, NULL, n, &cfg, &rep, &passed);
    if (rc == 0) {
        qx_derp_report_set_meta(rep, "index", index_path);
        qx_derp_report_set_meta(rep, "stage", "verify");
        cli_print_report(rep, json);
    }
out:
    if (rc) cli_fail("verify", rc);
    qx_derp_report_free(rep);
    qx_matrix_free(&data);
    qx_ivf_free(ivf);
    return rc ? 1 : passed ? 0 : 3;
}
