#!/usr/bin/env bash
# tests/long_server_crash.sh — crash loop (label long): two writers upsert
# batches of 10 points (and now and then delete an older batch) in a loop,
# a third client starts rebuilds, and the server checkpoints every ~35 log
# records (--checkpoint-bytes 20000: sealing segments, writing tombstones,
# index files and the manifest), while it is killed with kill -9 at random
# moments, QX_CRASH_ROUNDS times (default 25): during loads, checkpoints and
# rebuilds. After every restart: every acknowledged upsert is present with
# its exact vector and searchable (a stored vector finds itself), every
# acknowledged delete is absent, and no batch is half-present (an
# unacknowledged in-flight batch is all there or not at all). The end line
# counts the checkpoints, merges and rebuilds the kills interrupted or
# followed, and how many replayed records took their codes from wal.codes.
# Each round also finds the newest batch through the index (all lists
# probed, re-ranked) once a rebuild has published one; QX_CRASH_INDEX_FIRST=1
# publishes one before the first kill.
# Usage: bash tests/long_server_crash.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
[ -n "${QX_TEST_BIN:-}" ] && QX_BIN=$QX_TEST_BIN
ROUNDS=${QX_CRASH_ROUNDS:-25}
D="$QX_TMP/data"
C=/collections/crash
DIM=8
FLAGS=(--checkpoint-bytes "${QX_CRASH_CKPT:-20000}")
qx_start "$D" "${FLAGS[@]}" || exit 1
qx_expect 200 PUT $C "{\"vectors\":{\"size\":$DIM,\"distance\":\"Euclid\"}}"
# rebuilds, one after another (422 below 1000 points, 409 while one runs)
rebuilder() {
  while :; do
    curl -s -o /dev/null -X POST "$1$C/rebuild" -H 'Content-Type: application/json' \
      -d '{"train_size":2000,"min_recall":0,"gate":{"min_used_fraction":0,"min_perplexity":0,"max_drift_rejected_fraction":1,"max_mse_ratio":1000,"max_recall_drop":1}}' || return
    sleep 0.3
  done
}

# writer W: batches b = W, W+2, W+4, ... (ids 10b..10b+9, vectors seeded by b)
writer() {
  local w=$1 url=$2 b=$3 ops="$QX_TMP/ops.$1"
  while :; do
    if [ $((b % 7)) -eq 5 ] && [ "$b" -ge 20 ]; then
      local del=$((b - 12))
      echo "try D $del" >>"$ops"
      if curl -sf -o /dev/null -X POST "$url$C/points/delete" -H 'Content-Type: application/json' \
        -d "{\"points\":[$(seq -s, $((del * 10)) $((del * 10 + 9)))]}"; then echo "ack D $del" >>"$ops"; else return; fi
    fi
    qx_points $((b * 10)) 10 $DIM $b >"$QX_TMP/w$w.json"
    echo "try U $b" >>"$ops"
    if curl -sf -o /dev/null -X PUT "$url$C/points" -H 'Content-Type: application/json' --data-binary "@$QX_TMP/w$w.json"; then
      echo "ack U $b" >>"$ops"
    else
      return
    fi
    b=$((b + 2))
  done
}
next0=0; next1=1
verify() {
  # expected state from acknowledged ops; batches whose last op was not acknowledged are "either"
  local maxb ids
  maxb=$(cat "$QX_TMP"/ops.* 2>/dev/null | awk '{print $3}' | sort -n | tail -1)
  [ -n "$maxb" ] || return 0
  # the id list goes through a file: after ~2,300 batches it is above the 128 KiB a single
  # command-line argument may hold
  echo "{\"ids\":[$(seq -s, 0 $((maxb * 10 + 9)))],\"with_vector\":false}" >"$QX_TMP/ids.json"
  qx_req POST $C/points "@$QX_TMP/ids.json"
  echo "$QX_BODY" | grep -o '"id":[0-9]*' | cut -d: -f2 | awk '{c[int($1/10)]++} END{for(b in c) print b, c[b]}' >"$QX_TMP/present"
  cat "$QX_TMP"/ops.* | awk -v pf="$QX_TMP/present" '
    BEGIN { while ((getline l < pf) > 0) { split(l, a, " "); have[a[1]] = a[2] } }
    $1=="try" { last[$3] = "?" $2 }
    $1=="ack" { st[$3] = $2; last[$3] = "" }
    END {
      bad = 0
      for (b in have) if (have[b] != 10) { print "half-present batch " b ": " have[b] " of 10"; bad++ }
      for (b in st) {
        if (last[b] != "") continue             # an unacknowledged op came after: either state
        if (st[b] == "U" && have[b] != 10) { print "acknowledged batch " b " missing (" have[b]+0 "/10)"; bad++ }
        if (st[b] == "D" && have[b] > 0) { print "acknowledged delete of batch " b " not applied"; bad++ }
      }
      exit bad > 0
    }' >"$QX_TMP/verify.txt"
}

total_acked=0
ckpts=0; rb_started=0; rb_done=0; merges=0; wc_used=0; wc_enc=0
# QX_CRASH_PRELOAD batches written before the first kill (so that rebuilds,
# which need 1000 points, run from the first round on a slow machine)
PRE=${QX_CRASH_PRELOAD:-0}
for b in $(seq 0 $((PRE - 1))); do
  qx_points $((b * 10)) 10 $DIM $b >"$QX_TMP/pre.json"
  echo "try U $b" >>"$QX_TMP/ops.$((b % 2))"
  curl -sf -o /dev/null -X PUT "$QX_URL$C/points" -H 'Content-Type: application/json' --data-binary "@$QX_TMP/pre.json" \
    && echo "ack U $b" >>"$QX_TMP/ops.$((b % 2))"
done
[ "$PRE" -gt 0 ] && next0=$(( (PRE + 1) / 2 * 2 )) && next1=$(( PRE / 2 * 2 + 1 ))
# QX_CRASH_INDEX_FIRST=1: publish an index before the first kill, so that every
# round writes into an indexed collection (each write is encoded and noted in
# wal.codes, each replay takes the codes from there) while further rebuilds
# are killed mid-way
if [ "${QX_CRASH_INDEX_FIRST:-0}" = 1 ]; then
  qx_req POST $C/rebuild '{"train_size":1000,"min_recall":0,"gate":{"min_used_fraction":0,"min_perplexity":0,"max_drift_rejected_fraction":1,"max_mse_ratio":1000,"max_recall_drop":1}}'
  for _ in $(seq 1 600); do qx_req GET $C/rebuild/1; [[ "$QX_BODY" =~ \"state\":\"(succeeded|rejected|failed)\" ]] && break; sleep 0.5; done
  qx_body_has '"state":"succeeded"' "an index published before the first kill"
fi
for round in $(seq 1 "$ROUNDS"); do
  writer 0 "$QX_URL" $next0 & w0=$!
  writer 1 "$QX_URL" $next1 & w1=$!
  rebuilder "$QX_URL" & w2=$!
  sleep "$(awk -v s="$round" 'BEGIN{srand(s); printf "%.2f", 0.3 + rand() * 2.2}')"
  kill -9 "$QX_PID"; wait "$QX_PID" 2>/dev/null
  wait $w0 $w1 2>/dev/null
  kill $w2 2>/dev/null; wait $w2 2>/dev/null
  ckpts=$((ckpts + $(grep -c "checkpoint at lsn" "$QX_LOG")))
  rb_started=$((rb_started + $(grep -c "POST /collections/crash/rebuild .*status=200" "$QX_LOG")))
  rb_done=$((rb_done + $(grep -c "rebuild job [0-9]* \(succeeded\|rejected\|failed\)" "$QX_LOG")))
  merges=$((merges + $(grep -c "merged [0-9]* segments" "$QX_LOG")))
  qx_start "$D" "${FLAGS[@]}" || { qx_fail "restart $round"; break; }
  rl=$(grep -o "their codes from wal.codes for [0-9]*, encoded for [0-9]*" "$QX_LOG" | head -1)
  wc_used=$((wc_used + $(echo "$rl" | awk '{print $6}' | tr -d ,))); wc_enc=$((wc_enc + $(echo "$rl" | awk '{print $9}')))
  if verify; then
    acked=$(grep -h '^ack U' "$QX_TMP"/ops.* | wc -l)
    qx_ok "round $round: $acked acknowledged batches all present and whole"
  else
    qx_fail "round $round: $(head -5 "$QX_TMP/verify.txt")"
  fi
  # searchable: the newest acknowledged batch's first vector finds itself
  lastb=$(grep -h '^ack U' "$QX_TMP"/ops.* | awk '{print $3}' | sort -n | tail -1)
  if [ -n "$lastb" ] && ! grep -q "^ack D $lastb\$" "$QX_TMP"/ops.*; then
    v=$(awk -v d=$DIM -v s="$lastb" 'BEGIN{srand(s); printf "["; for(i=0;i<d;i++) printf "%s%.6f", (i?",":""), rand()*2-1; printf "]"}')
    qx_req POST $C/points/search "{\"vector\":$v,\"limit\":1,\"params\":{\"exact\":true}}"
    [[ "$QX_BODY" == *"\"id\":$((lastb * 10)),\"score\":0.0"* ]] && qx_ok "round $round: batch $lastb searchable" \
      || qx_fail "round $round: batch $lastb not found by search: ${QX_BODY:0:200}"
    # and through the index (every list probed, re-ranked), when one is published: its entry
    # came from a codes file, from wal.codes or from encoding at replay
    qx_req POST $C/points/search "{\"vector\":$v,\"limit\":1,\"params\":{\"nprobe\":1048576,\"rerank\":10}}"
    [[ "$QX_BODY" == *"\"id\":$((lastb * 10)),\"score\":0.0"* ]] && qx_ok "round $round: batch $lastb found through the index" \
      || qx_fail "round $round: batch $lastb not found through the index: ${QX_BODY:0:200}"
  fi
  # resume after the highest batch each writer tried
  m0=$(awk '{print $3}' "$QX_TMP/ops.0" 2>/dev/null | sort -n | tail -1); next0=$(( ${m0:-0} + 2 ))
  m1=$(awk '{print $3}' "$QX_TMP/ops.1" 2>/dev/null | sort -n | tail -1); next1=$(( ${m1:-1} + 2 ))
done
echo "RESULT crash loop: $ROUNDS kill -9 rounds, $(grep -h '^ack U' "$QX_TMP"/ops.* | wc -l) acknowledged upserts, $(grep -h '^ack D' "$QX_TMP"/ops.* | wc -l) deletes, $ckpts checkpoints, $merges merges, $rb_started rebuilds started, $rb_done finished before a kill (the others were killed mid-rebuild); replays took the codes of $wc_used log records from wal.codes and encoded $wc_enc"
qx_stop TERM
qx_finish
