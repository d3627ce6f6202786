#!/usr/bin/env bash
# scripts/bench-glove.sh — the GloVe-100 report of docs/benchmarks.md in ONE `qinx bench` run:
# every method (qinx-rq, qinx-qinco, faiss-pq, faiss-opq, faiss-rq, faiss-lsq) exhaustive at
# 8 and 16 bytes, and the IVF curves (qinx-ivfrq, qinx-ivfqinco, faiss-ivfpq, faiss-ivfrq) at
# 16 bytes, nlist 1024, nprobe 1..128, qinx with and without re-ranking 100 candidates.
# Training: 50,000 base vectors (evenly spaced sample); 2,000 queries. The time budget
# (58 minutes, so the whole report ends within the hour) plans the run: the slowest FAISS
# trainings may use a subsample of the 50,000 (10,000 for the baselines, down to 5,000 for
# OPQ/IVF-RQ), QINCo's training time may be cut to 60 s per job, and what still cannot fit is
# skipped, least important first (FAISS LSQ 16 B, then LSQ 8 B, ...; qinx's jobs last) —
# every such decision is a note in report.md, whose "Time budget" section lists planned and
# actual seconds per method and the total wall time.
#   scripts/bench-glove.sh [ivf|exhaustive|all] [extra qinx bench options]
#   e.g. --time-budget 30, --bytes 8,16,32, --plan-only (print the plan, run nothing)
# Env: QINX (binary, default build/qinx), GLOVE_DIR (default data/glove100, from
# scripts/fetch-glove.sh), OUT (default bench-out/glove100), METHODS (default all ten).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qinx=${QINX:-$root/build/qinx}
d=${GLOVE_DIR:-$root/data/glove100}
[ -f "$d/glove100_angular_base.fvecs" ] || { echo "run scripts/fetch-glove.sh first" >&2; exit 1; }
# FAISS's and qinx's OpenMP threads sleep instead of spinning while waiting: on a shared
# machine spinning threads steal the cores the work needs.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# the old first argument (ivf | exhaustive | all) still selects a part
case "${1:-}" in
  ivf) shift; METHODS=${METHODS:-qinx-ivfrq,faiss-ivfpq,faiss-ivfrq,qinx-ivfqinco} ;;
  exhaustive) shift; METHODS=${METHODS:-qinx-rq,faiss-pq,faiss-rq,faiss-opq,qinx-qinco,faiss-lsq} ;;
  all) shift ;;
esac
methods=${METHODS:-qinx-rq,faiss-pq,faiss-rq,faiss-opq,qinx-ivfrq,faiss-ivfpq,faiss-ivfrq,qinx-ivfqinco,qinx-qinco,faiss-lsq}
start=$(date +%s)
nice "$qinx" bench --base "$d/glove100_angular_base.fvecs" --queries "$d/glove100_angular_query.fvecs" \
    --gt "$d/glove100_angular_groundtruth.ivecs" --nq 2000 --max-train 50000 --name glove100 \
    --methods "$methods" --bytes 8,16 --ivf-bytes 16 --nlist 1024 \
    --nprobe 1,2,4,8,16,32,64,128 --rerank 0,100 --runs 3 --time-budget 58 \
    --out "${OUT:-$root/bench-out/glove100}" "$@"
echo "bench-glove: total wall time $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s" >&2
