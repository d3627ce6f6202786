#!/usr/bin/env bash
# tests/long_server_load.sh — load test (label long): a 100k x 128 collection
# (qinx synth, clustered), a gated IVF-RQ rebuild, then wrk on loopback with
# 16 connections posting searches (limit 10, nprobe 16) for 20 s; reports QPS
# and p50/p90/p99 latency, and compares with the in-process `qinx search`
# QPS on the very same index file and queries (1 and 2 threads; each the
# median of 5 timed passes over the 10,000 queries, ~0.5 s each: a
# sustained rate like wrk's 20-second average, where a best-of-3 of 50 ms
# passes swung 2x with the machine). Target: HTTP QPS >= 60% of the better
# in-process figure.
# Environment: QX_LOAD_N (default 100000), QX_LOAD_SECONDS (20), QX_LOAD_NPROBE (16),
# QX_LOAD_KIND (quantizer: rq, the default, or fastscan), QX_LOAD_BYTES (8),
# QX_LOAD_SHORTLIST (fastscan: params.shortlist, default 0 = automatic).
# Usage: bash tests/long_server_load.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
command -v wrk >/dev/null || { echo "SKIP: wrk not installed" >&2; exit 77; }
N=${QX_LOAD_N:-100000}; SECS=${QX_LOAD_SECONDS:-20}; NPROBE=${QX_LOAD_NPROBE:-16}
KIND=${QX_LOAD_KIND:-rq}; BYTES=${QX_LOAD_BYTES:-8}; SL=${QX_LOAD_SHORTLIST:-0}
S="$QX_TMP/synth"
"$QX_BIN" synth --out "$S" --n "$N" --queries 10000 --d 128 --seed 7 >/dev/null 2>&1 || { qx_fail "qinx synth"; qx_finish; exit 1; }
qx_start "$QX_TMP/data" --threads 4 --log-level warn || exit 1
qx_expect 200 PUT /collections/load '{"vectors":{"size":128,"distance":"Euclid"},"quantizer":{"kind":"'"$KIND"'","bytes":'"$BYTES"'}}'
t0=$(date +%s.%N)
"$QX_BIN" serve load --url "$QX_URL" --collection load --batch 2000 "${S}_base.fvecs" 2>"$QX_TMP/load.log" \
  && qx_ok "$(tail -1 "$QX_TMP/load.log")" || { qx_fail "load: $(tail -3 "$QX_TMP/load.log")"; qx_finish; exit 1; }
qx_expect 200 POST /collections/load/rebuild '{"train_size":20000,"min_recall":0.1,"gate":{"min_used_fraction":0.3}}'
job=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
t1=$(date +%s)
while :; do
  qx_req GET /collections/load/rebuild/$job
  st=$(echo "$QX_BODY" | sed -n 's/^{"result":{"id":[0-9]*,"state":"\([a-z]*\)".*/\1/p')
  case "$st" in queued|running) sleep 2 ;; *) break ;; esac
done
[ "$st" = succeeded ] && qx_ok "rebuild of $N points in $(( $(date +%s) - t1 )) s" || { qx_fail "rebuild: $(echo "$QX_BODY" | grep -o '"error":"[^"]*"'); checks:"
       echo "$QX_BODY" | grep -o '"checks":\[[^]]*\]' | sed 's/},{/}\n{/g' >&2; qx_finish; exit 1; }

# queries as JSON bodies, one per line (od prints each .fvecs record on one line; field 1 is the dim)
od -An -v -t f4 -w$((4 + 4 * 128)) "${S}_query.fvecs" |
  awk -v np="$NPROBE" -v sl="$SL" '{printf "{\"vector\":["; for(i=2;i<=NF;i++) printf "%s%s", (i>2?",":""), $i; printf "],\"limit\":10,\"params\":{\"nprobe\":%d,\"shortlist\":%d}}\n", np, sl}' >"$QX_TMP/bodies.txt"
cat >"$QX_TMP/search.lua" <<LUA
-- requests are formatted once, up front: wrk shares the 2 cores with the
-- server, so the load generator should spend as little of them as it can
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local reqs = {}
for line in io.lines("$QX_TMP/bodies.txt") do
  reqs[#reqs + 1] = wrk.format(nil, "/collections/load/points/search", nil, line)
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
LUA
qx_req POST /collections/load/points/search "$(head -1 "$QX_TMP/bodies.txt")"
qx_body_has '"score"' "search body accepted"
wrk -t2 -c16 -d"${SECS}s" --latency -s "$QX_TMP/search.lua" "$QX_URL" >"$QX_TMP/wrk.txt" 2>&1
cat "$QX_TMP/wrk.txt"
qps=$(awk '/Requests\/sec/{print $2}' "$QX_TMP/wrk.txt")
p50=$(awk '$1=="50%"{print $2}' "$QX_TMP/wrk.txt"); p99=$(awk '$1=="99%"{print $2}' "$QX_TMP/wrk.txt")
non2xx=$(awk '/Non-2xx/{print $NF}' "$QX_TMP/wrk.txt")
[ -z "$non2xx" ] && qx_ok "no non-2xx replies under load" || qx_fail "$non2xx non-2xx replies"
qx_alive "after load"
qx_stop TERM

IDX=$(ls "$QX_TMP"/data/collections/load/index-*.qx | tail -1)
inproc() { local r; for r in 1 2 3 4 5; do
    "$QX_BIN" search --index "$IDX" --queries "${S}_query.fvecs" --k 10 --nprobe "$NPROBE" --shortlist "$SL" --threads "$1" --runs 1 --print 0 2>&1 |
      grep -io '[0-9.]* *QPS\|QPS[^0-9]*[0-9.]*' | grep -o '[0-9.]*' | head -1
  done | sort -g | awk '{v[NR] = $1} END {if (NR == 5) print v[3]}'; }  # empty (a failure below) unless 5 passes reported
q1=$(inproc 1); q2=$(inproc 2)
echo "RESULT load: n=$N d=128 kind=$KIND bytes=$BYTES shortlist=$SL nprobe=$NPROBE limit=10 connections=16 server-threads=4 cores=$(nproc)"
echo "RESULT http: QPS=$qps p50=$p50 p99=$p99"
echo "RESULT in-process qinx search (median of 5): QPS(1 thread)=$q1 QPS(2 threads)=$q2"
best=$(awk -v a="${q1:-0}" -v b="${q2:-0}" 'BEGIN{print (a > b ? a : b)}')
if [ -n "$qps" ] && [ -n "$q1" ] && [ -n "$q2" ] && awk -v b="$best" 'BEGIN{exit !(b > 0)}'; then
  ratio=$(awk -v a="$qps" -v b="$best" 'BEGIN{printf "%.2f", a/b}')
  echo "RESULT http / best in-process = $ratio (target >= 0.60)"
  awk -v r="$ratio" 'BEGIN{exit !(r >= 0.6)}' && qx_ok "HTTP QPS >= 60% of in-process" || qx_fail "HTTP QPS ratio $ratio < 0.60"
else
  qx_fail "could not measure (http '$qps', in-process '$q1' / '$q2')"
fi
qx_finish
