#!/usr/bin/env bash
# tests/long_bench_siftsmall.sh BUILD_DIR — (label "long") the documented siftsmall bench
# (scripts/bench-siftsmall.sh, every method at 8 and 16 bytes plus the IVF curves) with a
# 20-minute budget; checks the outputs validate, that qinx RQ and FAISS RQ both have 8- and
# 16-byte lines, that qinx RQ's MSE is within 10 % of FAISS RQ's and better than PQ's at
# equal bytes, and that more bytes never raise a method's MSE. Skips (77) without the data.
set -euo pipefail
build=${1:?usage: long_bench_siftsmall.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${QX_DATA_DIR:-$root/../shared/data}
[ -f "$data/siftsmall/siftsmall_base.fvecs" ] || { echo "long_bench_siftsmall: SKIP: no $data/siftsmall"; exit 77; }
out=$(mktemp -d /tmp/qinx-long-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
QINX=$build/qinx OUT=$out QX_DATA_DIR=$data "$root/scripts/bench-siftsmall.sh" --time-budget 20 --quiet > "$out/stdout"
"$build/qinx" bench --check "$out/results.jsonl"
for f in report.md recall_vs_bytes.svg qps_vs_recall.svg; do [ -s "$out/$f" ] || { echo "FAIL: no $f"; exit 1; }; done
mse() { grep "\"method\":\"$1\"" "$out/results.jsonl" | grep "\"bytes\":$2," | sed -n 's/.*"mse":\([0-9.e+-]*\).*/\1/p' | head -n1; }
for b in 8 16; do
  q=$(mse qinx-rq $b); f=$(mse faiss-rq $b); p=$(mse faiss-pq $b)
  [ -n "$q" ] && [ -n "$f" ] && [ -n "$p" ] || { echo "FAIL: missing MSE at $b bytes"; exit 1; }
  echo "long_bench_siftsmall: $b bytes MSE qinx-rq $q faiss-rq $f faiss-pq $p"
  awk -v q="$q" -v f="$f" -v p="$p" 'BEGIN { exit !(q <= 1.10 * f && q < p) }' || { echo "FAIL at $b bytes"; exit 1; }
done
for m in qinx-rq faiss-rq faiss-pq; do
  awk -v a="$(mse $m 8)" -v b="$(mse $m 16)" 'BEGIN { exit !(b < a) }' || { echo "FAIL: $m MSE did not drop from 8 to 16 bytes"; exit 1; }
done
echo "long_bench_siftsmall: PASS"
