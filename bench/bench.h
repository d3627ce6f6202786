/* bench/bench.h — `qinx-bench` (also run as `qinx bench`): recall versus code
 * size and QPS versus recall, qinx's quantizers against FAISS's on the same
 * data in one run. bench/main.c calls qx_bench_main. */
#ifndef QINX_BENCH_H
#define QINX_BENCH_H

/* Runs the benchmark (or `--check FILE`, which validates a results.jsonl);
 * returns the process exit code: 0 ok, 1 failure, 2 usage error. */
int qx_bench_main(int argc, char **argv);
/* `qinx bench qinco-speed ...` (argv[0] = "qinco-speed"): QINCo training
 * throughput against this run's sgemm rate, and encoding speed. */
int qx_bench_qinco_speed(int argc, char **argv);

#endif
