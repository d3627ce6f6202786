#!/usr/bin/env bash
# tests/test_server_concurrency.sh — end-to-end concurrency: two bulk writers
# (growing the store, so rows are reallocated under live searches), deletes,
# and four search loops run against one collection at the same time for a few
# seconds; every search must answer 200, every acknowledged point must be
# present, and the server must stay up. Most useful on a sanitizer build.
# Usage: bash tests/test_server_concurrency.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
qx_start "$QX_TMP/data" --threads 6 --log-level warn || exit 1
C=/collections/cc
qx_expect 200 PUT $C '{"vectors":{"size":32,"distance":"Cosine"}}'
qx_points 0 10 32 1 | sed 's/"id":\([0-9]*\)/"id":\1/' >"$QX_TMP/seed.json"
qx_expect 200 PUT $C/points "@$QX_TMP/seed.json"
q=$(qx_vec 32 9)
searcher() {
  local bad=0 i
  for i in $(seq 1 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$QX_URL$C/points/search" \
      -H 'Content-Type: application/json' -d "{\"vector\":$q,\"limit\":5}")
    [ "$code" = 200 ] || bad=$((bad + 1))
  done
  echo "$bad" >"$QX_TMP/search.$1"
}
deleter() {
  local i
  for i in $(seq 1 40); do
    curl -s -o /dev/null -X POST "$QX_URL$C/points/delete" -H 'Content-Type: application/json' \
      -d "{\"points\":[$((1000000 + i)),$((i % 10 + 100))]}"
  done
}
"$QX_BIN" serve load --url "$QX_URL" --collection cc --batch 250 --id-base 100 random:6000:32:1 2>"$QX_TMP/w1.log" & w1=$!
"$QX_BIN" serve load --url "$QX_URL" --collection cc --batch 100 --id-base 200000 random:3000:32:2 2>"$QX_TMP/w2.log" & w2=$!
sp=()
for s in 1 2 3 4; do searcher $s & sp+=($!); done
deleter & dl=$!
wait $w1 && qx_ok "writer 1 acknowledged all batches" || qx_fail "writer 1: $(tail -2 "$QX_TMP/w1.log")"
wait $w2 && qx_ok "writer 2 acknowledged all batches" || qx_fail "writer 2: $(tail -2 "$QX_TMP/w2.log")"
wait "${sp[@]}" "$dl"
for s in 1 2 3 4; do
  [ "$(cat "$QX_TMP/search.$s")" = 0 ] && qx_ok "search loop $s: all 200" || qx_fail "search loop $s: $(cat "$QX_TMP/search.$s") failures"
done
qx_alive "after concurrent load"
qx_expect 200 GET $C
# 10 seed + 6000 + 3000, minus the deleted ids 100..109 that writer 1 may have re-added later
n=$(echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')
[ "$n" -ge 8990 ] && [ "$n" -le 9010 ] && qx_ok "point count $n plausible" || qx_fail "point count $n"
qx_expect 200 GET $C/points/6099
qx_expect 200 GET $C/points/202999
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "graceful stop after the storm" || qx_fail "exit code $QX_RC"
qx_finish
