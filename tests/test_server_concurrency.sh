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
# Every acknowledged point that no delete touched must be there, each one checked:
# seed 0..9, writer 1's 110..6099, writer 2's 200000..202999 (9,000 ids). Ids
# 100..109 raced with the deleter (either order is right), so they may or may not be.
n=$(echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')
missing=0
check_ids() { # FROM TO
  local from=$1 to=$2 lo hi want got
  for ((lo = from; lo <= to; lo += 1000)); do
    hi=$((lo + 999 > to ? to : lo + 999))
    qx_req POST $C/points "{\"ids\":[$(seq -s, "$lo" "$hi")],\"with_vector\":false}"
    want=$((hi - lo + 1))
    got=$(grep -o '"id":[0-9]*' <<<"$QX_BODY" | sort -u | wc -l)
    [ "$QX_STATUS" = 200 ] && [ "$got" = "$want" ] || { missing=$((missing + want - got)); echo "ids $lo..$hi: $got of $want (HTTP $QX_STATUS)" >&2; }
  done
}
check_ids 0 9
check_ids 110 6099
check_ids 200000 202999
[ "$missing" = 0 ] && qx_ok "all 9000 acknowledged, undeleted points present" || qx_fail "$missing acknowledged points missing"
[ "$n" -ge 9000 ] && [ "$n" -le 9010 ] && qx_ok "point count $n (9000 + the raced ids 100..109 still there)" || qx_fail "point count $n"
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "graceful stop after the storm" || qx_fail "exit code $QX_RC"
qx_finish
