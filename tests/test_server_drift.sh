#!/usr/bin/env bash
# tests/test_server_drift.sh — live drift monitoring through the server: a
# collection's writes feed its monitor (reference = the first 10,000 writes
# while it has no index; windows of 2,000 writes); stationary writes stay
# "ok"; writes with half of the dimensions scaled by 3 are "drifted" within
# (2 + 1) windows = 6,000 writes; GET /collections/{name} and /metrics say so.
# Part 2 (issue 23): on a collection with an index (reference = its training
# reservoir), a `drifted` event starts a DERP-gated rebuild by itself, once
# per event: stationary writes start none, and the finished job is not
# followed by another until a newer drifted event.
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
qx_start "$QX_TMP/data" || exit 1
T=/collections/drift
D=8
qx_expect 200 PUT $T "{\"vectors\":{\"size\":$D,\"distance\":\"Euclid\"}}"

# N points from id FROM, seed S; SCALE multiplies the first half of the dimensions.
points() { # FROM N SEED SCALE
  awk -v f="$1" -v n="$2" -v d=$D -v s="$3" -v k="$4" 'BEGIN{srand(s); printf "{\"points\":[";
    for(p=0;p<n;p++){ printf "%s{\"id\":%d,\"vector\":[", (p?",":""), f+p;
      for(i=0;i<d;i++) printf "%s%.6f", (i?",":""), (rand()*2-1)*(i<d/2?k:1); printf "]}" } printf "]}"}' > "$QX_TMP/pts.json"
}
state() { qx_req GET $T; echo "$QX_BODY" | jq -r '.result.drift.state'; }

id=0
for b in $(seq 1 14); do # 10,000 reference writes + 2 windows of stationary writes
  points $id 1000 $b 1; id=$((id + 1000))
  qx_req PUT $T/points @"$QX_TMP/pts.json"
  [ "$QX_STATUS" = 200 ] || qx_fail "upsert batch $b: $QX_STATUS ${QX_BODY:0:200}"
done
qx_req GET $T
checks=$(echo "$QX_BODY" | jq '.result.drift.checks')
ref=$(echo "$QX_BODY" | jq -r '.result.drift.reference')
st=$(echo "$QX_BODY" | jq -r '.result.drift.state')
if [ "$st" = ok ] && [ "$checks" = 2 ] && [ "$ref" = first_writes ]; then qx_ok "stationary: ok after 2 checks, reference from the first writes"
else qx_fail "stationary: state $st checks $checks reference $ref: ${QX_BODY:0:400}"; fi

drifted_at=""
for b in $(seq 1 12); do # shifted writes, 500 at a time (6,000 at most)
  points $id 500 $((100 + b)) 3; id=$((id + 500))
  qx_req PUT $T/points @"$QX_TMP/pts.json"
  if [ "$(state)" = drifted ]; then drifted_at=$((b * 500)); break; fi
done
if [ -n "$drifted_at" ] && [ "$drifted_at" -le 6000 ]; then qx_ok "shifted writes: drifted after $drifted_at writes (bound 6000)"
else qx_fail "shifted writes not reported drifted within 6000 writes: ${QX_BODY:0:400}"; fi
qx_req GET $T
eff=$(echo "$QX_BODY" | jq '.result.drift.last.effect')
rf=$(echo "$QX_BODY" | jq '.result.drift.last.rejected_fraction')
echo "last window: rejected fraction $rf, effect $eff sd"
qx_req GET /metrics
qx_body_has 'qinx_collection_drift_state{collection="drift"} 2' "metrics: drift state gauge = 2 (drifted)"
qx_body_has 'qinx_collection_drift_rejected_fraction{collection="drift"}' "metrics: rejected fraction gauge"
qx_body_has 'qinx_collection_recent_code_used_fraction{collection="drift"} NaN' "metrics: code usage NaN without an index"

# ---- part 2: drifted starts a gated rebuild by itself (collection with an index)
T=/collections/drift2
qx_expect 200 PUT $T "{\"vectors\":{\"size\":$D,\"distance\":\"Euclid\"},\"quantizer\":{\"bytes\":4},\"gate\":{\"min_recall\":0}}"
job_state() { qx_req GET "$T/rebuild/$1"; echo "$QX_BODY" | jq -r '.result.state // .result.job.state // empty'; }
auto_job() { grep -o "collection drift2: automatic rebuild, job [0-9]*: the drift monitor reports drifted" "$QX_LOG" | sed -n "$1p" | sed 's/.*job \([0-9]*\):.*/\1/'; }
wait_job() { local st=""; for _ in $(seq 1 240); do st=$(job_state "$1"); [[ "$st" =~ ^(succeeded|rejected|failed|canceled)$ ]] && break; sleep 0.5; done; echo "$st"; }
id=0
for b in $(seq 1 10); do
  points $id 1000 $((200 + b)) 1; id=$((id + 1000))
  qx_expect 200 PUT $T/points @"$QX_TMP/pts.json" >/dev/null
done
qx_req POST $T/rebuild '{}'
j0=$(echo "$QX_BODY" | jq -r '.result.job_id // .result.id // empty')
st=$(wait_job "$j0")
[ "$st" = succeeded ] && qx_ok "drift2: first index published (job $j0)" || qx_fail "drift2: manual rebuild '$st': ${QX_BODY:0:300}"
for b in $(seq 1 4); do # 2 windows of stationary writes against the index's reservoir
  points $id 1000 $((300 + b)) 1; id=$((id + 1000))
  qx_expect 200 PUT $T/points @"$QX_TMP/pts.json" >/dev/null
done
sleep 2.5 # the autoindex check runs once a second
qx_req GET $T
ref=$(echo "$QX_BODY" | jq -r '.result.drift.reference'); st=$(echo "$QX_BODY" | jq -r '.result.drift.state')
[ "$ref" = index ] && [ "$st" = ok ] && [ -z "$(auto_job 1)" ] && qx_ok "drift2: stationary writes against the index: ok, no automatic rebuild" \
  || qx_fail "drift2: reference $ref state $st job '$(auto_job 1)'"
drifted_at=""
for b in $(seq 1 12); do
  points $id 500 $((400 + b)) 3; id=$((id + 500))
  qx_expect 200 PUT $T/points @"$QX_TMP/pts.json" >/dev/null
  if [ "$(state)" = drifted ]; then drifted_at=$((b * 500)); break; fi
done
[ -n "$drifted_at" ] && qx_ok "drift2: drifted after $drifted_at shifted writes" || qx_fail "drift2: shifted writes not drifted within 6000"
j1=""; for _ in $(seq 1 20); do j1=$(auto_job 1); [ -n "$j1" ] && break; sleep 0.5; done
[ -n "$j1" ] && qx_ok "drift2: the drifted event started rebuild job $j1 by itself (logged with its reason)" \
  || qx_fail "drift2: no automatic rebuild after drifted: $(grep -i 'drift2' "$QX_LOG" | tail -3)"
st=$(wait_job "$j1")
[[ "$st" =~ ^(succeeded|rejected)$ ]] && qx_ok "drift2: the automatic job ended '$st' (the DERP gate decided)" || qx_fail "drift2: automatic job ended '$st'"
qx_req GET "$T/rebuild/$j1"
echo "automatic job: $(echo "$QX_BODY" | jq -c '.result | {state, reason: (.reason // .message // null)}' 2>/dev/null)"
qx_req GET $T
st=$(echo "$QX_BODY" | jq -r '.result.drift.state')
if [ "$(echo "$QX_BODY" | jq -r '.result.index.state')" = ivf ] && [ "$st" != drifted ]; then qx_ok "drift2: after the job the monitor starts over (state $st)"
else qx_fail "drift2: after the job: $(echo "$QX_BODY" | jq -c '.result.drift')"; fi
sleep 3
[ -z "$(auto_job 2)" ] && qx_ok "drift2: one job per drifted event (no second start)" || qx_fail "drift2: second job $(auto_job 2) without a new event"
qx_alive "after drift monitoring"
qx_finish
