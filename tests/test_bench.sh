#!/usr/bin/env bash
# tests/test_bench.sh BUILD_DIR — a tiny end-to-end `qinx bench` run on siftsmall:
# qinx-rq, faiss-pq and faiss-rq at 8 bytes (1,000 training vectors) and a qinx IVF sweep,
# then two tiny runs: --max-base with the built-in SVG writer, and a budget too small for LSQ.
# Checks: every output file exists; results.jsonl parses and holds the documented keys with
# recalls in [0,1] (`qinx bench --check`, no python/jq needed); the SVGs are SVG; the report
# has its tables; and the bench's IVF point agrees (within 0.02) with `qinx build` +
# `qinx search` on an index built with the same parameters; the report's time-budget section;
# the time plan skipping what does not fit, least important first (--plan-only), and cutting
# FAISS LSQ's encoding rounds before skipping it; FAISS LSQ's stated iteration counts;
# `qinx bench qinco-speed` (its lines, its RQ cache). Skips (77) without the data.
set -euo pipefail
build=${1:?usage: test_bench.sh BUILD_DIR}
qinx=$build/qinx
data=${QX_DATA_DIR:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data}/siftsmall
if [ ! -f "$data/siftsmall_base.fvecs" ]; then
  echo "test_bench: SKIP: $data not found (set QX_DATA_DIR to the shared datasets)"
  exit 77
fi
[ -x "$qinx" ] || { echo "test_bench: FAIL: $qinx not built"; exit 1; }
"$qinx" bench --help | grep -q -- "--methods" || { echo "test_bench: this qinx has no bench command"; exit 1; }

out=$(mktemp -d /tmp/qinx-test-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() { echo "test_bench: FAIL: $*"; exit 1; }

export OMP_WAIT_POLICY=passive # a busy shared machine: don't spin
# nlist 25 <= 1000/39; nprobe 4 is the point compared with qinx search below; a generous
# budget: on a sanitizer build under load the time plan would otherwise skip faiss-rq
"$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --max-train 1000 --bytes 8 \
    --methods qinx-rq,faiss-pq,faiss-rq,qinx-ivfrq --nlist 25 --nprobe 1,4 --rerank 0,20 --k 10 \
    --runs 1 --time-budget 30 --out "$out/b" > "$out/stdout" 2> "$out/stderr" \
  || { cat "$out/stderr"; fail "qinx bench exited with $?"; }

for f in results.jsonl report.md recall_vs_bytes.svg qps_vs_recall.svg; do
  [ -s "$out/b/$f" ] || fail "$f missing or empty"
done
for f in recall_vs_bytes.svg qps_vs_recall.svg; do
  grep -q "<svg" "$out/b/$f" || fail "$f is not an SVG"
done
"$qinx" bench --check "$out/b/results.jsonl" || fail "results.jsonl does not validate"
# the checker itself must catch a broken file
{ head -n1 "$out/b/results.jsonl" | sed 's/"recall@1":[0-9.]*/"recall@1":1.5/'; } > "$out/bad.jsonl"
if "$qinx" bench --check "$out/bad.jsonl" > /dev/null; then fail "--check accepted recall@1 = 1.5"; fi
echo '{"method":"x"' > "$out/bad2.jsonl"
if "$qinx" bench --check "$out/bad2.jsonl" > /dev/null; then fail "--check accepted a truncated line"; fi

for m in qinx-rq faiss-pq faiss-rq; do
  grep -q "\"method\":\"$m\",.*\"kind\":\"exhaustive\",\"bytes\":8," "$out/b/results.jsonl" \
    || fail "no 8-byte exhaustive line for $m"
  grep -q "^| $m | 8 |" "$out/b/report.md" || fail "report.md has no row for $m"
  grep -q "^$m " "$out/stdout" || fail "stdout table has no row for $m"
done
# the Gaussian reference (siftsmall 8 B: the bound is 25,837, from the whole base; qinx RQ
# trained on 1,000 vectors is ~1.15x it) and its ratio column, the method's MSE / bound
g=$(grep "^| 8 | " "$out/b/report.md") || fail "report.md has no Gaussian reference row for 8 B"
bound=$(echo "$g" | cut -d'|' -f3)
ratio=$(echo "$g" | sed -n 's/.*qinx-rq \([0-9.]*\).*/\1/p')
mse=$(grep '"method":"qinx-rq",.*"kind":"exhaustive"' "$out/b/results.jsonl" | sed -n 's/.*"mse":\([0-9.e+]*\).*/\1/p')
echo "test_bench: Gaussian bound $bound, qinx-rq MSE $mse, ratio $ratio"
awk -v b="$bound" -v r="$ratio" -v m="$mse" 'BEGIN { exit !(b > 25000 && b < 26700 && r > 0 && (m / b - r) < 0.001 && (r - m / b) < 0.001) }' \
  || fail "Gaussian reference: bound $bound, ratio $ratio, MSE $mse"
grep -q "^ *8 B: .*MSE / bound: qinx-rq" "$out/stdout" || fail "stdout has no Gaussian reference line"
nivf=$(grep -c '"method":"qinx-ivfrq"' "$out/b/results.jsonl" || true)
[ "$nivf" = 4 ] || fail "expected 4 qinx-ivfrq points (2 nprobe x 2 rerank), got $nivf"
grep -q '"kind":"ivf","bytes":8,' "$out/b/results.jsonl" || fail "IVF lines must count 7 RQ bytes + 1 norm byte = 8"

# the bench's point (nprobe 4, rerank 0) against qinx build + qinx search with the same parameters
line=$(grep '"method":"qinx-ivfrq"' "$out/b/results.jsonl" | grep '"nprobe":4,"rerank":0,')
[ -n "$line" ] || fail "no qinx-ivfrq nprobe=4 rerank=0 point"
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
b_r1=$(echo "$line" | field 'recall@1')
b_r10=$(echo "$line" | field '10-recall@10')
"$qinx" build --base "$data/siftsmall_base.fvecs" --max-train 1000 --bytes 8 --nlist 25 \
    --seed 1234 --out "$out/idx.qinx" --quiet || fail "qinx build failed"
s=$("$qinx" search --index "$out/idx.qinx" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --k 10 --nprobe 4 --json) || fail "qinx search failed"
s_r1=$(echo "$s" | field 'recall@1')
s_r10=$(echo "$s" | field '10-recall@10')
echo "test_bench: bench R@1 $b_r1 10-R@10 $b_r10 | build+search R@1 $s_r1 10-R@10 $s_r10"
awk -v a="$b_r1" -v b="$s_r1" -v c="$b_r10" -v d="$s_r10" \
  'BEGIN { da = a - b; dc = c - d; if (da < 0) da = -da; if (dc < 0) dc = -dc; exit !(da <= 0.02 && dc <= 0.02) }' \
  || fail "bench and qinx search disagree by more than 0.02"

# the time plan's report: total wall time, budget honoured, one row per job
grep -q "^## Time budget" "$out/b/report.md" || fail "report.md has no Time budget section"
grep -q "Total wall time .* budget of 30 minutes: \*\*honoured\*\*" "$out/b/report.md" \
  || fail "report.md does not say the 30-minute budget was honoured"
grep -q "^| qinx-ivfrq | 8 | 1000 | " "$out/b/report.md" || fail "Time budget table has no qinx-ivfrq row"
grep -q '"n_train":1000,' "$out/b/results.jsonl" || fail "results.jsonl lines do not carry n_train"
# re-ranking on and off are two IVF series
grep -q "^| qinx-ivfrq+rerank20 | 8 |" "$out/b/report.md" || fail "no re-ranking series in the IVF table"

# IVF-QINCo starts from the run's IVF-RQ index: same coarse centroids, trained on its residuals
"$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --max-base 2000 --max-train 1000 --nq 20 --bytes 8 --methods qinx-ivfrq,qinx-ivfqinco \
    --nlist 16 --nprobe 2 --rerank 0 --runs 1 --time-budget 2 --plot none --quiet \
    --out "$out/q" > /dev/null 2> "$out/q.stderr" || { cat "$out/q.stderr"; fail "IVF-QINCo bench failed"; }
grep -q "qinx-ivfqinco 8B: started from qinx-ivfrq's trained index" "$out/q/report.md" \
  || fail "IVF-QINCo did not start from IVF-RQ's index"
if grep -q "WARNING" "$out/q/report.md"; then fail "IVF-QINCo's coarse centroids differ from IVF-RQ's"; fi
t_rq=$(grep '"method":"qinx-ivfrq"' "$out/q/results.jsonl" | head -n1 | field train_s)
t_qc=$(grep '"method":"qinx-ivfqinco"' "$out/q/results.jsonl" | head -n1 | field train_s)
awk -v a="$t_rq" -v b="$t_qc" 'BEGIN { exit !(a > 0 && b > a) }' \
  || fail "IVF-QINCo's train seconds ($t_qc) must include IVF-RQ's ($t_rq)"

# the built-in SVG writer (used when gnuplot is absent) on a second, tiny run, on the first
# 2,000 base vectors (--max-base: --gt ignored, ground truth computed for the subset)
"$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --max-base 2000 \
    --nq 20 --max-train 1000 --bytes 4 --methods faiss-pq --plot svg --runs 1 --quiet \
    --out "$out/c" > /dev/null 2>&1 || fail "second run (computed ground truth, --plot svg) failed"
ls "$out"/c/gt-*.ivecs > /dev/null 2>&1 || fail "computed ground truth not cached"
grep -q "</svg>" "$out/c/recall_vs_bytes.svg" || fail "built-in SVG writer output incomplete"
"$qinx" bench --check "$out/c/results.jsonl" > /dev/null || fail "second results.jsonl does not validate"
grep -q '"n_base":2000,' "$out/c/results.jsonl" || fail "--max-base 2000 not applied"
grep -q -- "--gt ignored" "$out/c/report.md" || fail "--max-base with --gt: no note that --gt was ignored"

# a budget too small for FAISS LSQ: the plan skips it with a note, the run still succeeds
"$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --nq 20 --max-train 1000 --bytes 8 \
    --methods faiss-pq,faiss-lsq --time-budget 0.1 --plot none --quiet \
    --out "$out/d" > /dev/null 2>&1 || fail "third run (tiny budget) failed"
grep -q "^| faiss-lsq | 8 | .*skipped" "$out/d/report.md" || fail "FAISS LSQ not skipped by a 6-second budget"
grep -q '"method":"faiss-pq"' "$out/d/results.jsonl" || fail "faiss-pq missing from the tiny-budget run"
# FAISS LSQ runs with the reduced, stated iteration counts (qx_faiss_set_lsq_iters)
"$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --max-base 2000 --nq 20 --max-train 1000 --bytes 4 \
    --methods faiss-lsq --runs 1 --plot none --quiet --out "$out/e" > /dev/null 2>&1 \
  || fail "fourth run (FAISS LSQ) failed"
grep -q '"method":"faiss-lsq","spec":"LSQ4x8 train_iters=[0-9]* train_ils=[0-9]* encode_ils=[0-9]* icm=[0-9]*"' \
    "$out/e/results.jsonl" || fail "faiss-lsq spec does not state its iteration counts"

# the plan drops the least important jobs first (--plan-only: nothing runs): with a budget
# too small for everything, qinx RQ at 32 bytes runs and FAISS RQ 32 B / LSQ go first
p=$("$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
    --gt "$data/siftsmall_groundtruth.ivecs" --bytes 8,16,32 --methods qinx-rq,faiss-rq,faiss-lsq \
    --time-budget 5 --plan-only --plan-speed 0.5 2> /dev/null) || fail "--plan-only failed"
grep -q "^qinx-rq *32  train  10000 " <<<"$p" || { echo "$p"; fail "plan does not run qinx-rq 32 B"; }
grep -q "^faiss-rq *32  skipped" <<<"$p" || { echo "$p"; fail "plan does not drop faiss-rq 32 B first"; }
grep -q "^faiss-lsq *32  skipped" <<<"$p" || { echo "$p"; fail "plan does not drop faiss-lsq 32 B"; }
grep -q "^faiss-rq *8  train" <<<"$p" || { echo "$p"; fail "plan drops faiss-rq 8 B"; }
# FAISS LSQ, least important, is cut before it is skipped: its training down to the floor,
# then its base encoding down to BENCH_LSQ_ENCODE_ILS_MIN local-search rounds (siftsmall at
# 16 B with 1,000 training vectors: encoding dominates; 8 rounds plan 86 s at speed 0.5; at
# 1.7 minutes 5 rounds fit, a round (~5 s) from either edge of the 3-7 the check accepts)
lsq_plan() {
  "$qinx" bench --base "$data/siftsmall_base.fvecs" --queries "$data/siftsmall_query.fvecs" \
      --gt "$data/siftsmall_groundtruth.ivecs" --bytes 16 --max-train 1000 --methods faiss-pq,faiss-lsq \
      --time-budget "$1" --plan-only --plan-speed 0.5 2> /dev/null | grep "^faiss-lsq *16  [ts]"
}
p=$(lsq_plan 3) && grep -q "encode_ils 8$" <<<"$p" || { echo "$p"; fail "plan cuts LSQ with time to spare"; }
p=$(lsq_plan 1.1) && grep -q "encode_ils 2$" <<<"$p" || { echo "$p"; fail "plan does not cut LSQ's encoding to 2 rounds"; }
p=$(lsq_plan 1.7) && grep -q "encode_ils [3-7]$" <<<"$p" || { echo "$p"; fail "plan does not give LSQ the rounds that fit"; }
p=$(lsq_plan 0.5) && grep -q "skipped" <<<"$p" || { echo "$p"; fail "plan runs LSQ below its minimum"; }

# `qinx bench qinco-speed`: a tiny network, 1 epoch; the epoch line, its ratio to the run's
# sgemm rate, and the encoding speed of the vectors after the training ones; the RQ cache
# written, then read back
qs() { "$qinx" bench qinco-speed --base "$data/siftsmall_base.fvecs" --n 1200 --nenc 300 \
    --bytes 2 --epochs 1 --qinco-h 16 --runs 1 --threads 2 --rq-cache "$out/rq2.blob" 2>"$out/qs.err"; }
o=$(qs) || { cat "$out/qs.err"; fail "qinx bench qinco-speed exited with $?"; }
grep -q "^rq: 1200 vectors" <<<"$o" || { echo "$o"; fail "qinco-speed: no RQ line"; }
grep -Eq "^epoch 1: [0-9.]+ s.* [0-9.]+ GFLOP/s +[0-9.]+% of sgemm" <<<"$o" || { echo "$o"; fail "qinco-speed: no epoch line"; }
grep -Eq "^encode: 300 held-out vectors, beam 5 A 8: median [0-9.]+ s = [0-9]+ vectors/s" <<<"$o" \
  || { echo "$o"; fail "qinco-speed: no encoding line"; }
[ -s "$out/rq2.blob" ] || fail "qinco-speed: RQ cache not written"
o=$(qs) && grep -q "^rq: read from" <<<"$o" || { echo "$o"; fail "qinco-speed: RQ cache not read"; }
"$qinx" bench qinco-speed --base "$data/siftsmall_base.fvecs" --n 20000 2>/dev/null \
  && fail "qinco-speed accepted --n beyond the file"
echo "test_bench: PASS"
