#!/usr/bin/env bash
# tests/long_gate_real.sh — the DERP gate's issue-23 targets on real files,
# end to end through `qinx build --replace` with the default gate:
#  - a candidate trained on the first 80 % of the file in file order (what
#    "the first N vectors" gives) is published, with a drift warning where
#    the sample is visibly unrepresentative, as long as recall holds;
#  - the three planted faults (collapsed codebooks, codebooks trained on
#    another distribution, a corrupt candidate file) are still refused
#    (exit 3, live index byte-identical).
# One line per file with the figures. Files: siftsmall from ../shared/data
# (skipped, and said so, where absent) plus QX_GATE_REAL_FILES
# (colon-separated .fvecs, e.g. Fashion-MNIST and the GloVe-100 base).
# Usage: long_gate_real.sh BUILD_DIR
set -euo pipefail
qinx="$1/qinx"
qinx_fault="$1/qinx-fault"
data=${QX_DATA_DIR:-$(dirname "$0")/../../shared/data}
tmp=$(mktemp -d /tmp/qinx-gate-real-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
files=()
if [ -f "$data/siftsmall/siftsmall_base.fvecs" ]; then files+=("$data/siftsmall/siftsmall_base.fvecs")
else echo "long_gate_real: ../shared/data/siftsmall absent: skipped" >&2; fi
IFS=: read -r -a extra <<<"${QX_GATE_REAL_FILES:-}"
for f in "${extra[@]}"; do [ -n "$f" ] && files+=("$f"); done
[ ${#files[@]} -gt 0 ] || { echo "long_gate_real: no data file: skipped" >&2; exit 77; }

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
checksum() { sha256sum "$1" | cut -d' ' -f1; }
check() { jq -r --arg n "$2" '.checks[] | select(.name == $n) | .value' "$1"; } # REPORT NAME

for base in "${files[@]}"; do
  d=$(od -An -tu4 -N4 "$base" | tr -d ' ')
  n=$(($(stat -c %s "$base") / (4 + 4 * d)))
  m=$((n * 8 / 10))
  nlist=$(awk -v n="$n" -v m="$m" 'BEGIN{k=int(4*sqrt(n)); if(k>int(m/39))k=int(m/39); if(k>1024)k=1024; print k}')
  live=$tmp/live.qinx
  common=(--base "$base" --bytes 8 --nlist "$nlist" --max-train "$m" --train-beam 1 --quiet)
  name=$(basename "$base" .fvecs)
  t0=$(date +%s)
  "$qinx" build "${common[@]}" --out "$live" --seed 1
  before=$(checksum "$live")
  rc=0; "$qinx" build "${common[@]}" --train-sample first --replace "$live" --seed 2 2>"$tmp/err" || rc=$?
  rep=$live.derp.json
  verdict=$(jq -r .meta.verdict "$rep")
  warn=$(jq -c .warnings "$rep")
  drift=$(check "$rep" max_drift_rejected_fraction)
  effect=$(jq -r .drift.effect "$rep")
  rcand=$(check "$rep" min_recall)
  rdrop=$(check "$rep" max_recall_drop)
  [ "$rc" = 0 ] && [ "$verdict" = published ] && [ "$(checksum "$live")" != "$before" ] \
    || fail "$name: ordered 80 % not published (exit $rc, verdict $verdict): $(cat "$tmp/err")"
  line="$name (n $n, d $d, nlist $nlist, 8 B): ordered 80 %: $verdict (exit $rc), warnings $warn, drift rejected fraction $drift (largest W $effect sd), recall@10 candidate $rcand (drop vs live $rdrop)"
  # collapse and mismatch may be caught by any blocking check (which ones depends on the data:
  # on Fashion-MNIST the mismatched training fails perplexity, drift and recall, not the MSE
  # ratio); a corrupt file must fail candidate_loads
  for fault in collapse: mismatch: corrupt:candidate_loads; do
    f=${fault%%:*} check=${fault#*:}
    before=$(checksum "$live")
    rc=0; "$qinx_fault" build "${common[@]}" --replace "$live" --seed 3 --inject-fault "$f" 2>"$tmp/err" || rc=$?
    failed=$(jq -r '[.checks[] | select(.pass == false) | .name] | join(",")' "$rep")
    if [ "$rc" = 3 ] && [ "$(checksum "$live")" = "$before" ] && [ -n "$failed" ] && [[ -z "$check" || ",$failed," == *",$check,"* ]]; then
      line="$line; $f refused ($failed)"
    else
      fail "$name: fault $f: exit $rc, failed checks '$failed' (expected $check): $(tail -3 "$tmp/err")"
      line="$line; $f NOT refused"
    fi
  done
  echo "$line; $(($(date +%s) - t0)) s"
  rm -f "$live" "$live".*
done
[ "$fails" = 0 ] || { echo "long_gate_real: $fails failures" >&2; exit 1; }
echo "long_gate_real: all files behaved" >&2
