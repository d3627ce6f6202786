/* bench/main.c — the `qinx-bench` program: the benchmark is its own
 * executable, so the production `qinx` does not carry it (`qinx bench` runs
 * the qinx-bench installed beside it, tools/main.c). */
#include "bench.h"

int main(int argc, char **argv) { return qx_bench_main(argc, argv); }
