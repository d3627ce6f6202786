#!/usr/bin/env bash
# scripts/bench-siftsmall.sh — the siftsmall report of docs/benchmarks.md in one `qinx bench`
# run of under 10 minutes: every exhaustive method (qinx-rq, qinx-qinco, faiss-pq, faiss-opq,
# faiss-rq, faiss-lsq) at 8 and 16 bytes trained on the 10,000 base vectors, 100 queries, and
# the IVF curves (qinx-ivfrq, qinx-ivfqinco, faiss-ivfpq, faiss-ivfrq) at 16 bytes, nlist 256
# (= 10,000/39), qinx with and without re-ranking. The 9.5-minute time budget plans the run
# (ends within 10 minutes): FAISS OPQ/IVF-RQ may train on down to 5,000 of the 10,000, QINCo's
# training time may be cut, and what does not fit is skipped with a note, least important
# first (FAISS LSQ 16 B first; qinx's jobs last); report.md's "Time budget" section lists
# planned and actual seconds per method. --plan-only prints the plan without running it.
# Needs ../shared/data/siftsmall (QX_DATA_DIR overrides ../shared/data) and build/qinx
# (QINX overrides). Env: METHODS, OUT, BYTES (default 8,16). Extra arguments are passed to
# `qinx bench` (e.g. --time-budget 30).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qinx=${QINX:-$root/build/qinx}
d=${QX_DATA_DIR:-$root/../shared/data}/siftsmall
[ -f "$d/siftsmall_base.fvecs" ] || { echo "bench-siftsmall: $d not found" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # see scripts/bench-glove.sh
methods=${METHODS:-qinx-rq,faiss-pq,faiss-rq,faiss-opq,qinx-ivfrq,faiss-ivfpq,faiss-ivfrq,qinx-ivfqinco,qinx-qinco,faiss-lsq}
start=$(date +%s)
nice "$qinx" bench --base "$d/siftsmall_base.fvecs" --queries "$d/siftsmall_query.fvecs" \
    --gt "$d/siftsmall_groundtruth.ivecs" --name siftsmall --methods "$methods" \
    --bytes "${BYTES:-8,16}" --ivf-bytes 16 --nlist 256 --nprobe 1,2,4,8,16,32,64 --rerank 0,100 \
    --time-budget 9.5 --out "${OUT:-$root/bench-out/siftsmall}" "$@"
echo "bench-siftsmall: total wall time $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s" >&2
