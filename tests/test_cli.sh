#!/usr/bin/env bash
# The qinx command end to end: build → info → search (recall and JSON keys),
# save/load determinism, and bad input (missing, truncated and corrupt files,
# wrong dimension, bad options) failing with a clear message and exit code.
# Usage: test_cli.sh BUILD_DIR
set -euo pipefail
qinx="$1/qinx"
tmp=$(mktemp -d /tmp/qinx-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect CODE PATTERN cmd...: exit code and a stderr pattern
  local code=$1 pat=$2 rc=0; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $(cat "$tmp/err")"
  grep -qE -e "$pat" "$tmp/err" || fail "'$*': stderr lacks /$pat/: $(cat "$tmp/err")"
}

"$qinx" synth --out "$tmp/s" --n 8000 --d 24 --queries 200 --seed 3 2>/dev/null
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/a.qinx" --bytes 8 --nlist 32 --max-train 4000 --train-beam 1 --seed 5 2>"$tmp/build.log"
grep -q "wrote" "$tmp/build.log" || fail "build printed no summary"
"$qinx" info --index "$tmp/a.qinx" --json >"$tmp/info.json"
for key in dim metric quantizer steps code_size nlist ntotal; do
  grep -q "\"$key\":" "$tmp/info.json" || fail "info --json lacks $key"
done
grep -q '"ntotal":8000' "$tmp/info.json" || fail "info: wrong ntotal: $(cat "$tmp/info.json")"
grep -q '"code_size":8' "$tmp/info.json" || fail "info: wrong code size"

# info --mse: reconstruction MSE of the codes over a file's rows; the whole file is the
# row-weighted mean of its two halves, and twice the bytes give a lower MSE
mse() { "$qinx" info --index "$1" --json --mse "$tmp/s_base.fvecs" ${2:+--rows "$2"} \
          | sed -n 's/.*"mse":{"value":\([^,]*\),"vectors":\([0-9]*\).*/\1 \2/p'; }
read -r m_all n_all <<<"$(mse "$tmp/a.qinx")"
read -r m_lo n_lo <<<"$(mse "$tmp/a.qinx" 0:3000)"
read -r m_hi n_hi <<<"$(mse "$tmp/a.qinx" 3000:)"
[ "$n_all/$n_lo/$n_hi" = "8000/3000/5000" ] || fail "info --mse: row counts $n_all/$n_lo/$n_hi"
awk -v a="$m_all" -v l="$m_lo" -v h="$m_hi" 'BEGIN { w = (3000*l + 5000*h) / 8000;
  exit !(a > 0 && (a - w) * (a - w) < 1e-8 * a * a) }' || fail "info --mse: $m_all is not the mean of $m_lo and $m_hi"
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/a4.qinx" --bytes 4 --nlist 32 --max-train 4000 --train-beam 1 --seed 5 2>/dev/null
read -r m4 _ <<<"$(mse "$tmp/a4.qinx")"
awk -v a="$m_all" -v b="$m4" 'BEGIN { exit !(a < 0.9 * b) }' || fail "info --mse: 8 B ($m_all) not below 4 B ($m4)"
"$qinx" info --index "$tmp/a.qinx" --mse "$tmp/s_base.fvecs" --rows 7990:7995 | grep -q "^MSE .* over 5 vectors (rows 7990..7994 of" \
  || fail "info --mse: no MSE line"
"$qinx" synth --out "$tmp/w" --n 1000 --d 16 --queries 10 --seed 4 2>/dev/null
expect 1 "dimension 16, the index 24" "$qinx" info --index "$tmp/a.qinx" --mse "$tmp/w_base.fvecs"
expect 1 "starts at 9000, but .* has 8000 rows" "$qinx" info --index "$tmp/a.qinx" --mse "$tmp/s_base.fvecs" --rows 9000:
expect 2 "--rows 5:3 is empty" "$qinx" info --index "$tmp/a.qinx" --mse "$tmp/s_base.fvecs" --rows 5:3
expect 1 "unknown vector file type" "$qinx" info --index "$tmp/a.qinx" --mse "$tmp/nope"

# a path with a quote and a backslash comes out as a valid JSON string (it was printed raw)
odd="$tmp/say \"hi\" \\ now.qinx"
cp "$tmp/a.qinx" "$odd"
"$qinx" info --index "$odd" --json >"$tmp/odd.json" || fail "info on an odd path failed"
grep -qF '{"index":"'"$tmp"'/say \"hi\" \\ now.qinx","dim":24,' "$tmp/odd.json" \
  || fail "info --json: path not escaped: $(cat "$tmp/odd.json")"
"$qinx" search --index "$odd" --queries "$tmp/s_query.fvecs" --nprobe 2 --json >"$tmp/odd2.json" \
  || fail "search on an odd path failed"
grep -qF '{"index":"'"$tmp"'/say \"hi\" \\ now.qinx","nq":' "$tmp/odd2.json" \
  || fail "search --json: path not escaped: $(cat "$tmp/odd2.json")"

"$qinx" search --index "$tmp/a.qinx" --queries "$tmp/s_query.fvecs" --gt "$tmp/s_groundtruth.ivecs" \
  --nprobe 8 --json >"$tmp/r.json"
for key in recall@1 recall@10 recall@100 10-recall@10 qps nq; do
  grep -q "\"$key\":" "$tmp/r.json" || fail "search --json lacks $key"
done
r10=$(sed -E 's/.*"10-recall@10":([0-9.]+).*/\1/' "$tmp/r.json")
awk -v r="$r10" 'BEGIN { exit !(r >= 0.4 && r <= 1) }' || fail "10-recall@10 $r10 out of the expected range"
# More probes never lose recall on this data; rerank does not hurt.
"$qinx" search --index "$tmp/a.qinx" --queries "$tmp/s_query.fvecs" --gt "$tmp/s_groundtruth.ivecs" \
  --nprobe 32 --rerank 100 --json >"$tmp/r2.json"
r10b=$(sed -E 's/.*"10-recall@10":([0-9.]+).*/\1/' "$tmp/r2.json")
awk -v a="$r10" -v b="$r10b" 'BEGIN { exit !(b >= a - 0.01) }' || fail "nprobe 32 + rerank recall $r10b < $r10"

# Fast-scan with a product-shaped 4-bit part (--fs-shape): info shows the split and the
# shape; its recall is in the range of the RQ index's; a bad shape is refused.
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/p.qinx" --bytes 8 --nlist 32 --max-train 4000 \
  --quantizer fastscan --fs-shape product --fs-steps 14 --seed 5 --quiet
"$qinx" info --index "$tmp/p.qinx" --json >"$tmp/pinfo.json"
grep -q '"fastscan":{"steps4":14,"steps8":0,"shape":"product"}' "$tmp/pinfo.json" \
  || fail "info: fast-scan split: $(cat "$tmp/pinfo.json")"
"$qinx" search --index "$tmp/p.qinx" --queries "$tmp/s_query.fvecs" --gt "$tmp/s_groundtruth.ivecs" \
  --nprobe 8 --shortlist 40 --json >"$tmp/rp.json"
r10p=$(sed -E 's/.*"10-recall@10":([0-9.]+).*/\1/' "$tmp/rp.json")
awk -v r="$r10p" 'BEGIN { exit !(r >= 0.4 && r <= 1) }' || fail "product fast-scan 10-recall@10 $r10p out of range"
expect 2 "fs-shape is residual or product" "$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/x.qinx" \
  --quantizer fastscan --fs-shape cubic
expect 1 "product shape needs M4=26 <= d=24" "$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/x.qinx" \
  --bytes 16 --quantizer fastscan --fs-shape product --fs-steps 26 --quiet
[ ! -e "$tmp/x.qinx" ] || fail "a refused build left an index"

# A QINCo index: the library's default network, and info shows it.
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/q.qinx" --bytes 8 --nlist 16 --max-train 2000 \
  --quantizer qinco --epochs 2 --seed 5 2>"$tmp/q.err"
# one throughput line per epoch, below the sgemm rate measured in the same run (x1.5 for timing
# noise: the reference is one short timing, an epoch on a loaded machine can beat it)
n_ep=$(grep -c "qinco: \[.*epoch .* GFLOP/s (.* of sgemm .*) cores" "$tmp/q.err")
[ "$n_ep" = 2 ] || fail "build: $n_ep per-epoch throughput lines, expected 2: $(cat "$tmp/q.err")"
grep "qinco: \[.*epoch" "$tmp/q.err" | sed -E 's/.* ([0-9.]+) GFLOP\/s \([0-9]+% of sgemm ([0-9.]+)\).*/\1 \2/' |
  awk '{ if (!($1 > 0 && $1 < 1.5 * $2)) exit 1 }' || fail "build: GFLOP/s not below 1.5x the sgemm rate: $(grep GFLOP "$tmp/q.err")"
grep -q "held-out check" "$tmp/q.err" || fail "build: no held-out check line"
"$qinx" info --index "$tmp/q.qinx" --json >"$tmp/qinfo.json"
grep -q '"quantizer":"qinco"' "$tmp/qinfo.json" || fail "info: not a qinco index: $(cat "$tmp/qinfo.json")"
grep -qE '"qinco":\{"L":1,"h":128,"A":8,"beam":5,"context":(true|false),"epochs":2,' "$tmp/qinfo.json" \
  || fail "info: qinco network: $(cat "$tmp/qinfo.json")"
"$qinx" info --index "$tmp/q.qinx" | grep -q "^network .*L=1 .*h=128.*A=8 beam=5" || fail "info: no network line"
grep -q '"qinco"' "$tmp/info.json" && fail "info: an RQ index shows a qinco network"
"$qinx" info --index "$tmp/q.qinx" | grep -q "^training .*GFLOP/s (.*% of this machine's sgemm rate" \
  || fail "info: no training throughput line"
grep -q '"checked":true' "$tmp/qinfo.json" || fail "info: the held-out check is missing: $(cat "$tmp/qinfo.json")"

# --qinco-context off: no context; on (the default): the networks see the list centroid, and
# info says so (unless the build fell back to its RQ, which uses none)
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/qn.qinx" --bytes 8 --nlist 16 --max-train 2000 \
  --quantizer qinco --qinco-context off --epochs 2 --seed 5 2>/dev/null || fail "build --qinco-context off"
"$qinx" info --index "$tmp/qn.qinx" --json | grep -q '"context":false' || fail "info: --qinco-context off shows a context"
cp "$tmp/q.qinx" "$tmp/qc.qinx" # the default build above
"$qinx" info --index "$tmp/qc.qinx" --json >"$tmp/qcinfo.json"
if grep -q '"fallback":false' "$tmp/qcinfo.json"; then
  grep -q '"context":true' "$tmp/qcinfo.json" || fail "info: context model not shown: $(cat "$tmp/qcinfo.json")"
  "$qinx" info --index "$tmp/qc.qinx" | grep -q "^network .*conditioned on the list centroid" || fail "info: no context on the network line"
else
  grep -q '"context":false' "$tmp/qcinfo.json" || fail "info: a fallback RQ shows a context"
fi
"$qinx" search --index "$tmp/qc.qinx" --queries "$tmp/s_query.fvecs" --gt "$tmp/s_groundtruth.ivecs" --nprobe 16 \
  --rerank 50 --json >"$tmp/qc.json" || fail "search on a context index failed"
expect 2 "--qinco-context is on or off, got 'maybe'" "$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/x.qinx" \
  --quantizer qinco --qinco-context maybe

# Never worse than its RQ, on a case built to fail: with 0 epochs the network cannot beat
# its RQ, so the build says so, writes the RQ's codes (the same as an RQ build's) and info
# reports the fallback with its figures.
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/q0.qinx" --bytes 8 --nlist 16 --max-train 2000 \
  --quantizer qinco --epochs 0 --seed 5 --quiet 2>"$tmp/q0.err"
grep -q "QINCo did NOT beat its RQ on .* held-out vectors (MSE .* recall@1 .*): the index holds the RQ's codes" \
  "$tmp/q0.err" || fail "build: no fallback message: $(cat "$tmp/q0.err")"
"$qinx" info --index "$tmp/q0.qinx" | grep -q "^check .*FELL BACK TO THE RQ.*recall@1" \
  || fail "info: no fallback line: $("$qinx" info --index "$tmp/q0.qinx")"
"$qinx" info --index "$tmp/q0.qinx" --json | grep -q '"fallback":true' || fail "info --json: no fallback"
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/r0.qinx" --bytes 8 --nlist 16 --max-train 2000 \
  --seed 5 --quiet
for f in q0 r0; do
  "$qinx" search --index "$tmp/$f.qinx" --queries "$tmp/s_query.fvecs" --k 10 --nprobe 16 --print 30 \
    | grep -v -i "qps\|ms/query" >"$tmp/$f.res"
done
cmp -s "$tmp/q0.res" "$tmp/r0.res" || fail "a QINCo index that fell back answers differently from the RQ index"

# The same build twice gives the same file (determinism for a seed and thread count).
"$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/b.qinx" --bytes 8 --nlist 32 --max-train 4000 --train-beam 1 --seed 5 --quiet
cmp -s "$tmp/a.qinx" "$tmp/b.qinx" || fail "two builds with the same seed differ"

# Bad input.
expect 1 "missing.fvecs" "$qinx" build --base "$tmp/missing.fvecs" --out "$tmp/x.qinx"
head -c 1010 "$tmp/s_base.fvecs" >"$tmp/trunc.fvecs"
expect 1 "trunc.fvecs.*(truncated|record)" "$qinx" build --base "$tmp/trunc.fvecs" --out "$tmp/x.qinx"
head -c 5000 "$tmp/a.qinx" >"$tmp/trunc.qinx"
expect 1 "trunc.qinx" "$qinx" info --index "$tmp/trunc.qinx"
cp "$tmp/a.qinx" "$tmp/flip.qinx"
printf '\xff' | dd of="$tmp/flip.qinx" bs=1 seek=3000 conv=notrunc 2>/dev/null
expect 1 "checksum|corrupt" "$qinx" search --index "$tmp/flip.qinx" --queries "$tmp/s_query.fvecs"
"$qinx" synth --out "$tmp/o" --n 1000 --d 16 --queries 5 2>/dev/null
expect 1 "dimension 16.*24" "$qinx" search --index "$tmp/a.qinx" --queries "$tmp/o_query.fvecs"
expect 2 "--nprobe" "$qinx" search --index "$tmp/a.qinx" --queries "$tmp/s_query.fvecs" --nprobe 0
expect 2 "--bytes" "$qinx" build --base "$tmp/s_base.fvecs" --out "$tmp/x.qinx" --bytes 1
expect 2 "unknown command" "$qinx" frobnicate
# A NaN in a vector file: .fvecs record 3, value 5.
cp "$tmp/o_base.fvecs" "$tmp/nan.fvecs"
printf '\x00\x00\xc0\x7f' | dd of="$tmp/nan.fvecs" bs=1 seek=$((3 * (4 + 16 * 4) + 4 + 5 * 4)) conv=notrunc 2>/dev/null
expect 1 "nan.fvecs.*(NaN|finite)" "$qinx" build --base "$tmp/nan.fvecs" --out "$tmp/x.qinx"
[ ! -e "$tmp/x.qinx" ] || fail "a failed build left an index behind"
# re-running a build overwrites (there is no resume): a build killed mid-way over an existing
# index leaves that index as it was and no temporary file (the index is written to a temporary
# file and renamed only at the end); the rerun writes the new index
cp "$tmp/a.qinx" "$tmp/keep.qinx"
sum=$(cksum <"$tmp/keep.qinx")
kb=(--base "$tmp/s_base.fvecs" --out "$tmp/keep.qinx" --bytes 16 --nlist 32 --max-train 8000 --seed 9)
"$qinx" build "${kb[@]}" >/dev/null 2>"$tmp/kill.log" & pid=$!
for _ in $(seq 600); do grep -q "training sample" "$tmp/kill.log" && break; sleep 0.05; done
kill -9 "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 137 ] || fail "the build was not killed mid-way (exit $rc): $(cat "$tmp/kill.log")"
[ "$(cksum <"$tmp/keep.qinx")" = "$sum" ] || fail "a killed build changed the existing index"
ls "$tmp" | grep -q '^keep\.qinx\.tmp' && fail "a killed build left $(ls "$tmp" | grep keep)"
"$qinx" build "${kb[@]}" --quiet || fail "the rerun failed"
"$qinx" info --index "$tmp/keep.qinx" --json | grep -q '"code_size":16' || fail "the rerun did not replace the index"
echo "test_cli: ok (10-recall@10 $r10 at nprobe 8, $r10b at nprobe 32 + rerank)" >&2
