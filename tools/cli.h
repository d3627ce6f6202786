/* tools/cli.h — shared pieces of the `qinx` subcommands. */
#ifndef QINX_CLI_H
#define QINX_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/qinx.h"

int qx_cli_build(int argc, char **argv);
int qx_cli_search(int argc, char **argv);
int qx_cli_info(int argc, char **argv);
int qx_cli_verify(int argc, char **argv);
int qx_cli_synth(int argc, char **argv);
int qx_cli_merge(int argc, char **argv);

/* Progress reporter on stderr: animated (\r) on a terminal, one line per
 * stage otherwise; silent when quiet. Pass &cli_progress as ctx. */
typedef struct cli_progress {
    int quiet, tty;
    char stage[64];
    double last_f, t0, last_t;
} cli_progress;
void cli_progress_init(cli_progress *p, int quiet);
void cli_progress_fn(void *ctx, const char *stage, double fraction);
void cli_progress_done(cli_progress *p);
void cli_log(const cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print a DERP report: its JSON, or a table of its checks. */
void cli_print_report(const qx_derp_report *rep, int json);

/* Monotonic seconds. */
double cli_now(void);

/* Parse a positive integer option value (whole string, within [lo, hi]). */
int cli_parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out);

/* Print "qinx <cmd>: <message>" from qx_last_error() and return exit code 1. */
int cli_fail(const char *cmd, int rc);


#endif
