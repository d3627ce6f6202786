#!/usr/bin/env bash
# tests/test_server_drift.sh — live drift monitoring through the server: a
# collection's writes feed its monitor (reference = the first 10,000 writes
# while it has no index; windows of 2,000 writes); stationary writes stay
# "ok"; writes with half of the dimensions scaled by 3 are "drifted" within
# (2 + 1) windows = 6,000 writes; GET /collections/{name} and /metrics say so.
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
qx_alive "after drift monitoring"
qx_finish
