#!/usr/bin/env bash
# scripts/bench-glove.sh [ivf|exhaustive|all] — the GloVe-100 figures of docs/benchmarks.md.
# Needs data/glove100 (scripts/fetch-glove.sh) and build/qinx (QINX overrides).
# Training: 50,000 base vectors (evenly spaced sample); 2,000 queries; outputs under
# bench-out/glove100-{ivf,exhaustive}/. Runs niced: the machine is shared.
#   ivf:        qinx-ivfrq vs faiss-ivfpq (OPQ16_96,IVF1024,PQ16x8np) at 16 bytes, nlist 1024
#   exhaustive: qinx-rq, faiss-rq, faiss-pq at 8 and 16 bytes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qinx=${QINX:-$root/build/qinx}
d=${GLOVE_DIR:-$root/data/glove100}
what=${1:-all}
[ -f "$d/glove100_angular_base.fvecs" ] || { echo "run scripts/fetch-glove.sh first" >&2; exit 1; }
# FAISS's and qinx's OpenMP threads sleep instead of spinning while waiting: on a loaded
# machine spinning threads steal the cores the work needs.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
common=(--base "$d/glove100_angular_base.fvecs" --queries "$d/glove100_angular_query.fvecs"
        --gt "$d/glove100_angular_groundtruth.ivecs" --nq 2000 --max-train 50000 --name glove100)
if [ "$what" = ivf ] || [ "$what" = all ]; then
  nice "$qinx" bench "${common[@]}" --methods qinx-ivfrq,faiss-ivfpq --ivf-bytes 16 --nlist 1024 \
      --nprobe 1,2,4,8,16,32,64,128 --rerank 0,100 --runs 3 --time-budget 45 \
      --out "$root/bench-out/glove100-ivf" "${@:2}"
fi
if [ "$what" = exhaustive ] || [ "$what" = all ]; then
  nice "$qinx" bench "${common[@]}" --methods qinx-rq,faiss-pq,faiss-rq --bytes 8,16 \
      --time-budget 60 --out "$root/bench-out/glove100-exhaustive" "${@:2}"
fi
