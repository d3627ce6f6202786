#!/usr/bin/env bash
# kill -9 at random moments of a gated rebuild (`qinx build --replace`), 20
# times: afterwards the live index must load, and be either byte-identical to
# what it was or the new candidate the gate had already published (then the
# report beside it says so). Generated data keeps each build to a few seconds.
# Usage: test_gate_kill.sh BUILD_DIR [ROUNDS]
set -euo pipefail
qinx="$1/qinx"
rounds=${2:-20}
tmp=$(mktemp -d /tmp/qinx-kill-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$qinx" synth --out "$tmp/s" --n 6000 --d 32 --queries 10 --seed 7 2>/dev/null
live=$tmp/live.qinx
common=(--base "$tmp/s_base.fvecs" --bytes 6 --nlist 16 --train-beam 1 --quiet --threads 1)
"$qinx" build "${common[@]}" --out "$live" --seed 1
# How long does one gated rebuild take? Kill points are drawn over that span.
t0=$(date +%s%N)
"$qinx" build "${common[@]}" --replace "$live" --seed 2 >/dev/null 2>&1 || true
span_ms=$(( ($(date +%s%N) - t0) / 1000000 + 50 ))
echo "test_gate_kill: one gated rebuild takes ~${span_ms} ms; $rounds kills" >&2
RANDOM=12345
published=0 untouched=0
for i in $(seq 1 "$rounds"); do
  before=$(sha256sum "$live" | cut -d' ' -f1)
  rm -f "$live.derp.json"
  "$qinx" build "${common[@]}" --replace "$live" --seed $((i + 10)) >/dev/null 2>&1 &
  pid=$!
  delay=$(( RANDOM % (span_ms * 6 / 5) )) # some land after the publish, too
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  "$qinx" info --index "$live" >/dev/null || { echo "FAIL: round $i (kill at ${delay} ms): live index unreadable" >&2; exit 1; }
  after=$(sha256sum "$live" | cut -d' ' -f1)
  if [ "$after" = "$before" ]; then
    untouched=$((untouched + 1))
  elif [ -f "$live.derp.json" ] && grep -q '"pass":true}$' "$live.derp.json"; then
    published=$((published + 1))
  else
    echo "FAIL: round $i (kill at ${delay} ms): live index changed without a passing report" >&2
    exit 1
  fi
  rm -f "$live.candidate" # a killed build may leave its candidate; it is never read as live
done
echo "test_gate_kill: $rounds kills: $untouched left the old index, $published had already published a verified one" >&2
