#!/usr/bin/env bash
# scripts/bench-siftsmall.sh — the siftsmall figures of docs/benchmarks.md: every exhaustive
# method at 8 and 16 bytes, trained on the 10,000 base vectors, 100 queries, and a small IVF
# comparison (nlist 256 = 10,000/39 cap) at 16 bytes. Output: bench-out/siftsmall/.
# Needs ../shared/data/siftsmall (QX_DATA_DIR overrides ../shared/data) and build/qinx
# (QINX overrides). Extra arguments are passed to `qinx bench` (e.g. --time-budget 30).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qinx=${QINX:-$root/build/qinx}
d=${QX_DATA_DIR:-$root/../shared/data}/siftsmall
[ -f "$d/siftsmall_base.fvecs" ] || { echo "bench-siftsmall: $d not found" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # see scripts/bench-glove.sh
methods=${METHODS:-qinx-rq,faiss-rq,faiss-pq,faiss-opq,faiss-lsq,qinx-ivfrq,faiss-ivfpq,faiss-ivfrq}
[ -z "${METHODS:-}" ] && "$qinx" bench --help | grep -q qinx-qinco && methods=$methods,qinx-qinco
nice "$qinx" bench --base "$d/siftsmall_base.fvecs" --queries "$d/siftsmall_query.fvecs" \
    --gt "$d/siftsmall_groundtruth.ivecs" --name siftsmall --methods "$methods" \
    --bytes 8,16 --ivf-bytes 16 --nlist 256 --nprobe 1,2,4,8,16,32,64 --rerank 0,100 \
    --time-budget 50 --out "${OUT:-$root/bench-out/siftsmall}" "$@"
