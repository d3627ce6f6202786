/* bench/main.c — the `qinx-bench` program: the benchmark is its own
 * executable, so the production `qinx` does not carry it (`qinx bench` runs
 * the qinx-bench installed beside it, tools/main.c). `qinx bench qinco-speed`
 * is the QINCo throughput/encoding-speed bench (bench_qinco_speed.c). */
#include <string.h>

#include "bench.h"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "qinco-speed")) return qx_bench_qinco_speed(argc - 1, argv + 1);
    return qx_bench_main(argc, argv);
}
