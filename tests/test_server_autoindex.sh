#!/usr/bin/env bash
# tests/test_server_autoindex.sh — automatic indexing (issue 18): a collection
# with optimizers_config.indexing_threshold T starts a DERP-gated rebuild by
# itself once it holds more than T unindexed points (none before), searches
# answer while it runs, and the index it publishes covers every point; a
# rejected automatic rebuild is not retried in a loop but only after another
# T writes; indexing_threshold 0 (the default) never starts one.
# Usage: bash tests/test_server_autoindex.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
qx_start "$QX_TMP/data" || exit 1
field() { echo "$QX_BODY" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }
job_state() { qx_req GET "$1/rebuild/$2"; echo "$QX_BODY" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p' | head -1; }
# job ids are server-wide: the Nth automatic job of collection NAME, from the log
auto_job() { grep -o "collection $1: automatic rebuild, job [0-9]*" "$QX_LOG" | sed -n "$2p" | grep -o '[0-9]*$'; }
wait_auto() { # NAME NTH: wait until it exists; prints its id
  local j=""; for _ in $(seq 1 120); do j=$(auto_job "$1" "$2"); [ -n "$j" ] && break; sleep 0.5; done; echo "$j"; }
load() { # COLL FROM N SEED
  qx_points "$2" "$3" 16 "$4" >"$QX_TMP/p.json"
  qx_expect 200 PUT "$1/points" "@$QX_TMP/p.json" >/dev/null
}
A=/collections/auto
B=/collections/strict
C=/collections/manual
qx_expect 200 PUT $A '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"bytes":4},"gate":{"min_recall":0},"optimizers_config":{"indexing_threshold":1500}}'
qx_expect 200 PUT $B '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"bytes":4},"gate":{"min_recall":1},"optimizers_config":{"indexing_threshold":1500}}'
qx_expect 200 PUT $C '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"bytes":4},"gate":{"min_recall":0}}'
qx_req GET $A
qx_body_has '"indexing_threshold":1500' "indexing_threshold stored"

# below the threshold: nothing starts (the check runs every second)
load $A 0 1200 1
load $C 0 2000 3
sleep 3
[ -z "$(auto_job auto 1)" ] && [ -z "$(auto_job manual 1)" ] && qx_ok "below the threshold: no rebuild" || qx_fail "started below the threshold"
# past it: a rebuild starts by itself; searches answer while it runs
load $A 1200 600 2
q=$(qx_vec 16 9)
st="" searched=0 started=0 ja=""
for i in $(seq 1 240); do
  qx_req POST $A/points/search "{\"vector\":$q,\"limit\":5}"
  [ "$QX_STATUS" = 200 ] && searched=$((searched + 1))
  [ -z "$ja" ] && ja=$(auto_job auto 1)
  [ -n "$ja" ] && st=$(job_state $A "$ja") && started=1
  [[ "$st" =~ ^(succeeded|rejected|failed|canceled)$ ]] && break
  sleep 0.5
done
[ "$started" = 1 ] && qx_ok "1800 > 1500 unindexed points: rebuild job $ja started by itself" || qx_fail "no automatic rebuild"
[ "$st" = succeeded ] && qx_ok "automatic rebuild published (gate passed)" || qx_fail "automatic rebuild ended '$st': ${QX_BODY:0:300}"
[ "$searched" -ge 1 ] && [ "$searched" = "$i" ] && qx_ok "searches answered during it ($searched of $i)" || qx_fail "searches $searched of $i"
grep -q "collection auto: automatic rebuild, job [0-9]*: 1800 unindexed points > 1500" "$QX_LOG" && qx_ok "logged with its reason" \
  || qx_fail "no log line: $(grep -i automatic "$QX_LOG" | head -2)"
qx_req GET $A
[ "$(field indexed_vectors_count)" = 1800 ] && qx_ok "1800 indexed" || qx_fail "indexed $(field indexed_vectors_count)"
# writes after it are indexed at once: no second rebuild
load $A 1800 1700 4
sleep 3
[ -z "$(auto_job auto 2)" ] && qx_ok "no second automatic rebuild" || qx_fail "second rebuild $(auto_job auto 2)"
qx_req GET $A
[ "$(field indexed_vectors_count)" = 3500 ] && qx_ok "later writes indexed without a rebuild (3500)" || qx_fail "indexed $(field indexed_vectors_count)"

# a rejected automatic rebuild is not retried in a loop
load $B 0 1600 5
jb=$(wait_auto strict 1)
[ -n "$jb" ] && qx_ok "strict: automatic job $jb started" || qx_fail "strict: no automatic job"
for i in $(seq 1 240); do st=$(job_state $B "$jb"); [[ "$st" =~ ^(succeeded|rejected|failed|canceled)$ ]] && break; sleep 0.5; done
[ "$st" = rejected ] && qx_ok "min_recall 1: automatic rebuild rejected by the gate" || qx_fail "strict job $jb ended '$st'"
sleep 3
[ -z "$(auto_job strict 2)" ] && qx_ok "no retry in a loop after the rejection" || qx_fail "retried at once: job $(auto_job strict 2)"
load $B 1600 1600 6
jb2=$(wait_auto strict 2)
[ -n "$jb2" ] && qx_ok "retried after another 1500 writes (job $jb2)" || qx_fail "no retry after 1600 more writes"
[ -z "$(auto_job manual 1)" ] && qx_ok "indexing_threshold 0: never started" || qx_fail "manual collection got a job"
for i in $(seq 1 240); do st=$(job_state $B "$jb2"); [[ "$st" =~ ^(succeeded|rejected|failed|canceled)$ ]] && break; sleep 0.5; done
qx_stop TERM
qx_finish
