#!/usr/bin/env bash
# False alarms of the DERP gate: healthy gated rebuilds of siftsmall over 50
# seeds (each trains on a different seeded sample and k-means start) at the
# default thresholds, each over the live index the previous one published
# (so the recall-drop check runs too); the gate may reject at most 2.
# Label long (~10 s each).
# Usage: long_gate_false_alarms.sh BUILD_DIR [SEEDS]
set -euo pipefail
qinx="$1/qinx"
seeds=${2:-50}
data=${QX_DATA_DIR:-$(dirname "$0")/../../shared/data}
base=$data/siftsmall/siftsmall_base.fvecs
[ -f "$base" ] || { echo "SKIPPED: $base not found (../shared/data absent)" >&2; exit 77; }
tmp=$(mktemp -d /tmp/qinx-fa-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
common=(--base "$base" --bytes 8 --nlist 32 --max-train 5000 --train-beam 1 --quiet)
"$qinx" build "${common[@]}" --out "$tmp/live.qinx" --seed 0
rejected=0
for s in $(seq 1 "$seeds"); do
  rc=0
  "$qinx" build "${common[@]}" --replace "$tmp/live.qinx" --seed "$s" 2>/dev/null || rc=$?
  if [ "$rc" = 3 ]; then
    rejected=$((rejected + 1))
    echo "seed $s rejected: $(grep -o '"name":"[a-z_]*","value":[^,]*,"threshold":[^,]*,"cmp":"[^"]*","pass":false' "$tmp/live.qinx.derp.json" | tr '\n' ' ')" >&2
  elif [ "$rc" != 0 ]; then
    echo "FAIL: seed $s: build exited $rc" >&2; exit 1
  fi
done
echo "long_gate_false_alarms: $rejected of $seeds healthy rebuilds rejected (allowed: 2)" >&2
[ "$rejected" -le 2 ]
