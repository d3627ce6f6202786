#!/usr/bin/env bash
# tests/test_server_rebuild.sh — end-to-end rebuild: a background job trains
# an IVF-RQ index while searches and writes continue, the DERP gate passes,
# the index is swapped in, writes made during training are caught up, a
# second rebuild during the first is 409, a gate that cannot pass (min_recall
# 1.0) leaves the live index serving, and the index survives SIGTERM and
# kill -9 restarts.
# Usage: bash tests/test_server_rebuild.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
D="$QX_TMP/data"
C=/collections/rb
qx_start "$D" || exit 1
qx_expect 200 PUT $C '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"kind":"rq","bytes":4,"nlist":16}}'
"$QX_BIN" serve load --url "$QX_URL" --collection rb --batch 500 random:2000:16:5 2>"$QX_TMP/load.log" \
  && qx_ok "bulk load of 2000 points" || { qx_fail "load: $(cat "$QX_TMP/load.log")"; exit 1; }
vec() { qx_req GET $C/points/$1; echo "$QX_BODY" | sed -n 's/.*"vector":\(\[[^]]*\]\).*/\1/p'; }
v117=$(vec 117)

wait_job() { # JOB -> final state in JOB_STATE, body in QX_BODY
  local i
  for i in $(seq 1 600); do
    qx_req GET $C/rebuild/$1
    JOB_STATE=$(echo "$QX_BODY" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
    case "$JOB_STATE" in queued|running) sleep 0.5 ;; *) return 0 ;; esac
  done
}

qx_expect 200 POST $C/rebuild '{}'
job=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
qx_expect 409 POST $C/rebuild '{}'
# writes and searches while the job trains
qx_points 5000 100 16 77 >"$QX_TMP/new.json"
qx_expect 200 PUT $C/points "@$QX_TMP/new.json"
qx_expect 200 POST $C/points/delete "{\"points\":[$(seq -s, 0 49)]}"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":1}"
qx_body_has '"result":[{"id":117,"score":0.0}]' "exact search answers during the rebuild"
v5050=$(vec 5050)
wait_job "$job"
[ "$JOB_STATE" = succeeded ] && qx_ok "rebuild job $job succeeded" || qx_fail "job state '$JOB_STATE': ${QX_BODY:0:400}"
qx_body_has '"checks":[' "job carries the gate report"
qx_body_has '"name":"server.heldout_recall"' "report has the held-out recall check"
qx_body_has '"name":"min_used_fraction"' "report has the DERP codebook usage check"
qx_body_has '"name":"max_mse_ratio"' "report has the library gate's MSE-ratio check (its recall check is the held-out one: the rebuild streams)"
qx_expect 200 GET $C
qx_body_has '"state":"ivf"' "index swapped in"
qx_body_has '"indexed_vectors":2050' "writes made during training caught up (2000 + 100 - 50)"
qx_body_has '"last_rebuild_report":' "collection shows the last report"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":5,\"params\":{\"nprobe\":16,\"rerank\":50}}"
qx_body_has '"result":[{"id":117,"score":0.0}' "IVF search + re-ranking finds the point"
qx_expect 200 POST $C/points/search "{\"vector\":$v5050,\"limit\":1,\"params\":{\"nprobe\":16,\"rerank\":50}}"
qx_body_has '"result":[{"id":5050,' "point written during training is in the new index"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"params\":{\"nprobe\":4}}"
qx_body_has '"id":117' "IVF search without re-ranking"
ls "$D"/collections/rb/index-*.qx >/dev/null 2>&1 && [ -f "$D/collections/rb/report.json" ] && qx_ok "index file and report.json on disk" \
  || qx_fail "index-*.qx / report.json missing"

# a gate that cannot pass: live index stays
qx_expect 200 POST $C/rebuild '{"min_recall":1.0}'
job2=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
wait_job "$job2"
[ "$JOB_STATE" = rejected ] && qx_ok "gate rejected job $job2" || qx_fail "job2 state '$JOB_STATE'"
qx_body_has '"pass":false' "report marks the failed check"
qx_body_has '"error":"gate failed: ' "job error names the failed checks"
qx_expect 200 GET $C
qx_body_has '"indexed_vectors":2050' "live index kept after a rejected rebuild"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":1,\"params\":{\"rerank\":20}}"
qx_body_has '"result":[{"id":117,"score":0.0}]' "search still served by the old index"
qx_expect 200 GET /metrics
qx_body_has 'qinx_rebuilds_total{outcome="published"} 1' "metrics: published"
qx_body_has 'qinx_gate_outcomes_total{outcome="fail"} 1' "metrics: gate failure"
qx_expect 200 GET $C/rebuild
qx_body_has "\"id\":$job2" "job list"

# restarts keep the index; kill -9 replays later writes into it
qx_stop TERM
qx_start "$D" || exit 1
grep -q "collection rb: recovered 2050 points.*IVF index loaded" "$QX_LOG" && qx_ok "index loaded at restart" || qx_fail "index not loaded"
qx_points 6000 10 16 78 >"$QX_TMP/more.json"
qx_expect 200 PUT $C/points "@$QX_TMP/more.json"
qx_stop KILL
qx_start "$D" || exit 1
qx_expect 200 GET $C
qx_body_has '"indexed_vectors":2060' "kill -9: WAL replayed into the loaded index"
qx_alive "after restarts"
qx_stop TERM
qx_finish
