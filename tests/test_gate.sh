#!/usr/bin/env bash
# DERP gate, end to end through `qinx build --replace`: a healthy rebuild is
# published; planted faults — collapsed codebooks, codebooks trained on another
# distribution, a corrupted candidate file — are rejected with exit 3 and the
# live index left byte-identical; reports name the failing check.
# Usage: test_gate.sh BUILD_DIR
set -euo pipefail
qinx="$1/qinx"
qinx_fault="$1/qinx-fault" # test-only build of qinx with --inject-fault
data=${QX_DATA_DIR:-$(dirname "$0")/../../shared/data}
tmp=$(mktemp -d /tmp/qinx-gate-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -f "$data/siftsmall/siftsmall_base.fvecs" ]; then
  base=$data/siftsmall/siftsmall_base.fvecs
else
  echo "test_gate: ../shared/data/siftsmall absent: using generated data" >&2
  "$qinx" synth --out "$tmp/s" --n 10000 --d 64 --queries 10 2>/dev/null
  base=$tmp/s_base.fvecs
fi
live=$tmp/live.qinx
common=(--base "$base" --bytes 8 --nlist 32 --max-train 5000 --train-beam 1 --quiet)
fail() { echo "FAIL: $*" >&2; exit 1; }
checksum() { sha256sum "$1" | cut -d' ' -f1; }

"$qinx" build "${common[@]}" --out "$live" --seed 1
"$qinx" verify --index "$live" --data "$base" >/dev/null || fail "verify of a healthy index failed"

# A healthy rebuild passes and is published.
before=$(checksum "$live")
"$qinx" build "${common[@]}" --replace "$live" --seed 2 || fail "healthy rebuild rejected: $(cat "$live.derp.json")"
[ "$(checksum "$live")" != "$before" ] || fail "healthy rebuild was not published"
grep -q '"verdict":"published"' "$live.derp.json" || fail "report does not say published"
"$qinx" info --index "$live" >/dev/null || fail "published index does not load"

# The production program has no fault injection (only the test-only qinx-fault).
rc=0; "$qinx" build "${common[@]}" --replace "$live" --inject-fault collapse 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "qinx accepted --inject-fault (exit $rc)"

# Planted faults: each rejected with exit 3, live untouched, check named.
expect_reject() {
  local fault=$1 check=$2 before rc=0
  before=$(checksum "$live")
  "$qinx_fault" build "${common[@]}" --replace "$live" --seed 3 --inject-fault "$fault" 2>"$tmp/err" || rc=$?
  [ "$rc" = 3 ] || { cat "$tmp/err" >&2; fail "$fault: exit $rc, expected 3"; }
  [ "$(checksum "$live")" = "$before" ] || fail "$fault: live index changed"
  [ ! -e "$live.candidate" ] || fail "$fault: candidate left behind"
  grep -q '"verdict":"rejected"' "$live.derp.json" || fail "$fault: report does not say rejected"
  grep -qE "\"name\":\"$check\"[^}]*\"pass\":false" "$live.derp.json" || fail "$fault: check $check did not fail: $(cat "$live.derp.json")"
  echo "ok: $fault rejected by $check" >&2
}
expect_reject collapse min_used_fraction
expect_reject mismatch max_mse_ratio
expect_reject corrupt candidate_loads

# Bad gate config: a clear error, nothing published.
before=$(checksum "$live")
printf 'min_recall = lots\n' >"$tmp/bad.gate"
if "$qinx" build "${common[@]}" --replace "$live" --gate "$tmp/bad.gate" 2>"$tmp/err"; then fail "bad config accepted"; fi
grep -q "bad.gate:1" "$tmp/err" || fail "bad config error does not name the line: $(cat "$tmp/err")"
[ "$(checksum "$live")" = "$before" ] || fail "bad config changed the live index"

# The training sample is drawn uniformly over the file by default, and said so.
grep -q '"train_sample":"random: 5000 of ' "$live.derp.json" || fail "report does not record the random training sample"

# Drift is a warning by default: a candidate trained on the first half of the
# file (in file order) with an effect bar low enough to flag it is published
# with a warning while health and recall hold; made a blocking check, the
# same drift refuses it.
printf 'derp.min_effect = 0.01\n' >"$tmp/lowbar.gate"
before=$(checksum "$live")
"$qinx" build "${common[@]}" --train-sample first --replace "$live" --gate "$tmp/lowbar.gate" --seed 5 2>"$tmp/err" \
  || fail "ordered sample with a drift warning was rejected: $(cat "$tmp/err")"
grep -q '"warnings":\["max_drift_rejected_fraction"\]' "$live.derp.json" || fail "no drift warning: $(cat "$live.derp.json")"
grep -q '"outcome":"warn"' "$live.derp.json" || fail "drift check outcome is not warn"
grep -q 'WARNING: max_drift_rejected_fraction' "$tmp/err" || fail "build does not print the warning"
grep -q '"train_sample":"first: the first 5000 of ' "$live.derp.json" || fail "report does not record the ordered sample"
[ "$(checksum "$live")" != "$before" ] || fail "warned rebuild was not published"
printf 'derp.min_effect = 0.01\npolicy.max_drift_rejected_fraction = block\n' >"$tmp/block.gate"
before=$(checksum "$live")
rc=0; "$qinx" build "${common[@]}" --train-sample first --replace "$live" --gate "$tmp/block.gate" --seed 6 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "drift with policy block: exit $rc, expected 3"
[ "$(checksum "$live")" = "$before" ] || fail "blocked drift changed the live index"
grep -qE '"name":"max_drift_rejected_fraction"[^}]*"policy":"block","outcome":"fail"' "$live.derp.json" || fail "blocked drift not reported as fail"

# A strict config rejects an otherwise healthy rebuild.
printf '# demand the impossible\nmin_recall = 1.0\n' >"$tmp/strict.gate"
rc=0; "$qinx" build "${common[@]}" --replace "$live" --gate "$tmp/strict.gate" --seed 4 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "strict gate: exit $rc, expected 3"
[ "$(checksum "$live")" = "$before" ] || fail "strict gate changed the live index"
# Fast-scan: codeword usage is judged per 4-bit step (16 codewords), not per
# byte of two steps (which reads ~0.2–0.5 on a healthy index: the two steps of
# a byte are correlated), and a collapse of the 4-bit steps is refused.
fs=(--base "$base" --bytes 8 --nlist 32 --max-train 5000 --quantizer fastscan --quiet)
"$qinx" build "${fs[@]}" --out "$tmp/fs.qinx" --seed 1
"$qinx" build "${fs[@]}" --replace "$tmp/fs.qinx" --seed 2 2>"$tmp/err" || fail "healthy fast-scan rebuild rejected: $(cat "$tmp/err")"
jq -e '.steps[0].ksub == 16 and .steps[0].used == 16 and ([.steps[] | select(.ksub == 256)] | length) > 0' "$tmp/fs.qinx.derp.json" >/dev/null \
  || fail "fast-scan report: 4-bit bytes not judged per step: $(jq -c '[.steps[] | [.ksub, .used]]' "$tmp/fs.qinx.derp.json")"
before=$(checksum "$tmp/fs.qinx")
rc=0; "$qinx_fault" build "${fs[@]}" --replace "$tmp/fs.qinx" --seed 3 --inject-fault collapse 2>"$tmp/err" || rc=$?
[ "$rc" = 3 ] || fail "fast-scan collapse: exit $rc, expected 3: $(cat "$tmp/err")"
[ "$(checksum "$tmp/fs.qinx")" = "$before" ] || fail "fast-scan collapse changed the live index"
jq -e '[.checks[] | select(.name == "min_used_fraction" and .pass == false)] | length == 1' "$tmp/fs.qinx.derp.json" >/dev/null \
  || fail "fast-scan collapse not refused by min_used_fraction"
echo "ok: fast-scan usage per 4-bit step; collapse refused" >&2

echo "test_gate: all gate checks behaved" >&2
