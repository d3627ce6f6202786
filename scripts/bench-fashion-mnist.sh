#!/usr/bin/env bash
# scripts/bench-fashion-mnist.sh — the Fashion-MNIST report of docs/benchmarks.md in one
# `qinx bench` run: every exhaustive method at 8, 16 and 32 bytes and the IVF curves at
# 16 bytes (nlist 256 = 10,000/39, qinx with and without re-ranking), on the 60,000 × 784
# base, 1,000 queries, 10,000 training vectors (evenly spaced sample of the base). d = 784
# makes every vector ~8x the work of a GloVe one: the 60-minute time budget plans the run,
# skipping with a note what cannot fit (report.md, section "Time budget").
# Needs data/fashion-mnist (scripts/fetch-fashion-mnist.sh; FMNIST_DIR overrides) and
# build/qinx (QINX overrides). Env: METHODS, OUT, BYTES (default 8,16,32). Extra arguments
# are passed to `qinx bench`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qinx=${QINX:-$root/build/qinx}
d=${FMNIST_DIR:-$root/data/fashion-mnist}
[ -f "$d/fashion-mnist_base.fvecs" ] || { echo "run scripts/fetch-fashion-mnist.sh first" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # see scripts/bench-glove.sh
methods=${METHODS:-qinx-rq,faiss-pq,faiss-rq,faiss-opq,qinx-ivfrq,faiss-ivfpq,faiss-ivfrq,qinx-ivfqinco,qinx-qinco,faiss-lsq}
start=$(date +%s)
nice "$qinx" bench --base "$d/fashion-mnist_base.fvecs" --queries "$d/fashion-mnist_query.fvecs" \
    --gt "$d/fashion-mnist_groundtruth.ivecs" --name fashion-mnist --max-train 10000 \
    --methods "$methods" --bytes "${BYTES:-8,16,32}" --ivf-bytes 16 --nlist 256 \
    --nprobe 1,2,4,8,16,32,64,128 --rerank 0,100 --runs 3 --time-budget 60 \
    --out "${OUT:-$root/bench-out/fashion-mnist}" "$@"
echo "bench-fashion-mnist: total wall time $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s" >&2
