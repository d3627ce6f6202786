#!/usr/bin/env bash
# tests/test_server_durability.sh — end-to-end durability: kill -9 then
# restart replays the write-ahead log; a torn last record (cut short, or
# garbage appended) is ignored with a warning and never half-applied; new
# writes after such a recovery survive the next restart; a flipped byte in
# the middle of the log (record 26 of 50) turns the collection red with the
# byte offset, keeps the file, refuses writes, and `qinx serve salvage-wal`
# then recovers every other record; SIGTERM checkpoints (sealed segments +
# manifest + empty log); a corrupt segment fails only its collection, and
# re-creating that collection is refused (409) without touching its files.
# Usage: bash tests/test_server_durability.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
D="$QX_TMP/data"
C=/collections/dur
W="$D/collections/dur/wal.log"
count() { qx_req GET $C; echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p'; }
present() { # FROM N -> how many of ids FROM..FROM+N-1 exist
  local ids; ids=$(seq -s, "$1" $(($1 + $2 - 1)))
  qx_req POST $C/points "{\"ids\":[$ids],\"with_vector\":false}"
  echo "$QX_BODY" | grep -o '"id":' | wc -l
}

qx_start "$D" || exit 1
qx_expect 200 PUT $C '{"vectors":{"size":8,"distance":"Euclid"}}'
for b in 0 1 2; do
  qx_points $((b * 100)) 100 8 $((b + 1)) >"$QX_TMP/b.json"
  qx_expect 200 PUT $C/points "@$QX_TMP/b.json"
done
qx_expect 200 POST $C/points/delete "{\"points\":[$(seq -s, 0 9)]}"
qx_expect 200 GET $C/points/150
v150=$(echo "$QX_BODY" | sed -n 's/.*"vector":\(\[[^]]*\]\).*/\1/p')
qx_stop KILL
[ -s "$W" ] && qx_ok "write-ahead log holds the writes" || qx_fail "empty WAL after kill -9"

qx_start "$D" || exit 1
[ "$(count)" = 290 ] && qx_ok "kill -9 + restart: 290 points replayed" || qx_fail "count $(count), want 290"
qx_expect 404 GET $C/points/5
qx_expect 200 GET $C/points/150
qx_body_has "$v150" "vector bytes identical after replay"
grep -q "log records replayed" "$QX_LOG" && qx_ok "recovery logged" || qx_fail "no recovery line"

# torn tail 1: the last record cut short (a crash in the middle of write())
qx_points 400 50 8 11 >"$QX_TMP/a.json"; qx_expect 200 PUT $C/points "@$QX_TMP/a.json"
qx_points 450 50 8 12 >"$QX_TMP/b.json"; qx_expect 200 PUT $C/points "@$QX_TMP/b.json"
qx_stop KILL
size=$(stat -c %s "$W"); truncate -s $((size - 37)) "$W"
qx_start "$D" || exit 1
grep -q "dropped a torn write-ahead log tail of [0-9]* bytes" "$QX_LOG" && qx_ok "torn tail warned" || qx_fail "no torn-tail warning"
[ "$(present 400 50)" = 50 ] && qx_ok "batch before the torn record intact" || qx_fail "batch A: $(present 400 50)/50"
[ "$(present 450 50)" = 0 ] && qx_ok "torn batch entirely absent (not half-present)" || qx_fail "torn batch: $(present 450 50)/50 present"
qx_alive "after torn tail"

# torn tail 2: garbage after the last record (length field pointing past EOF, bad CRC)
qx_points 500 20 8 13 >"$QX_TMP/c.json"; qx_expect 200 PUT $C/points "@$QX_TMP/c.json"
qx_stop KILL
printf '\x40\x00\x00\x00\xde\xad\xbe\xefgarbage-garbage' >>"$W"
qx_start "$D" || exit 1
grep -c "dropped a torn write-ahead log tail" "$QX_LOG" | grep -q . && qx_ok "garbage tail warned" || qx_fail "no warning for garbage tail"
[ "$(present 500 20)" = 20 ] && qx_ok "records before garbage kept" || qx_fail "batch C: $(present 500 20)/20"
# writes after the recovery must land after the good prefix, not behind the garbage
qx_points 600 20 8 14 >"$QX_TMP/d.json"; qx_expect 200 PUT $C/points "@$QX_TMP/d.json"
qx_stop KILL
qx_start "$D" || exit 1
[ "$(present 600 20)" = 20 ] && qx_ok "write after a torn-tail recovery survives the next crash" || qx_fail "batch D: $(present 600 20)/20"
n_before=$(count)

# SIGTERM: checkpoint, empty log, same state after restart
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "SIGTERM exit 0" || qx_fail "SIGTERM exit $QX_RC"
[ -f "$D/collections/dur/MANIFEST" ] && ls "$D"/collections/dur/seg-*.dat >/dev/null 2>&1 && [ ! -s "$W" ] \
  && qx_ok "shutdown checkpoint: segments and manifest written, log emptied" || qx_fail "no checkpoint at shutdown"
qx_start "$D" || exit 1
[ "$(count)" = "$n_before" ] && qx_ok "state identical after checkpoint restart ($n_before points)" || qx_fail "count $(count) != $n_before"
qx_expect 200 GET $C/points/150
qx_body_has "$v150" "vector identical after the checkpoint"

# corruption before the tail (issue 19, item 9): 50 acknowledged batches, a
# flipped byte in record 26: red with the byte offset, nothing truncated,
# writes refused; salvage keeps the 49 good records
qx_expect 200 PUT /collections/mid '{"vectors":{"size":4,"distance":"Euclid"}}'
for b in $(seq 0 49); do
  qx_expect 200 PUT /collections/mid/points "{\"points\":[{\"id\":$((1000 + b)),\"vector\":[$b,1,2,3]},{\"id\":$((2000 + b)),\"vector\":[$b,3,2,1]}]}" >/dev/null
done
qx_stop KILL
MW="$D/collections/mid/wal.log"
rec=$(( $(stat -c %s "$MW") / 50 ))     # every record has the same size here
off=$(( 25 * rec + 30 ))                 # inside record 26
printf '\x5a' | dd of="$MW" bs=1 seek=$off conv=notrunc 2>/dev/null
sum=$(cksum <"$MW")
qx_start "$D" || exit 1
qx_expect 200 GET /collections/mid
qx_body_has '"status":"red"' "mid-log corruption: collection red"
qx_body_has "byte offset $(( 25 * rec ))" "the reason names the byte offset of record 26"
qx_body_has '"points_count":50' "the 25 batches before the damage are served"
qx_expect 500 PUT /collections/mid/points '{"points":[{"id":1,"vector":[1,1,1,1]}]}'
qx_body_has "read-only" "writes refused on a red collection"
qx_expect 409 POST /collections/mid/rebuild '{}'
qx_body_has "read-only" "a rebuild of a red collection is refused (issue 19, item 8)"
qx_stop TERM
[ "$(cksum <"$MW")" = "$sum" ] && qx_ok "the damaged log is kept byte for byte (no truncation, no checkpoint)" \
  || qx_fail "the damaged log was changed"
"$QX_BIN" serve salvage-wal "$D/collections/mid" >"$QX_TMP/salvage.out" 2>&1 \
  && grep -q "kept 49 valid records" "$QX_TMP/salvage.out" && qx_ok "salvage-wal kept 49 of 50 records" \
  || qx_fail "salvage-wal: $(cat "$QX_TMP/salvage.out")"
ls "$D"/collections/mid/wal.log.corrupt-* >/dev/null 2>&1 && qx_ok "salvage kept the original" || qx_fail "no backup of the original"
qx_start "$D" || exit 1
qx_expect 200 GET /collections/mid
qx_body_has '"status":"green"' "green after salvage"
qx_body_has '"points_count":98' "98 points: every batch but the damaged one"
qx_expect 200 PUT /collections/mid/points '{"points":[{"id":1,"vector":[1,1,1,1]}]}'

# a corrupt segment fails its own collection only; the server stays up
qx_expect 200 PUT /collections/other '{"vectors":{"size":2,"distance":"Dot"}}'
qx_expect 200 PUT /collections/other/points '{"points":[{"id":1,"vector":[1,2]}]}'
qx_stop TERM
SEG=$(ls "$D"/collections/dur/seg-*.dat | head -1)
printf 'XXXX' | dd of="$SEG" bs=1 seek=40 conv=notrunc 2>/dev/null
qx_start "$D" || exit 1
grep -q "collection dur: recovery failed: .*seg-.*checksum" "$QX_LOG" && qx_ok "corrupt segment detected by checksum, file named" || qx_fail "corrupt segment not reported"
qx_expect 404 GET $C
qx_expect 200 GET /collections/other/points/1
qx_alive "after a corrupt segment"
# re-creating the collection that failed to load must not touch its files (they are the only
# copy of its data until someone repairs them): 409, naming the directory
seg_sum=$(cksum <"$SEG")
qx_expect 409 PUT $C '{"vectors":{"size":8,"distance":"Euclid"}}'
qx_body_has "exists on disk" "re-create of an unloaded collection refused"
[ "$(cksum <"$SEG")" = "$seg_sum" ] && [ -f "$D/collections/dur/meta.json" ] \
  && qx_ok "its files are untouched" || qx_fail "re-create attempt changed or deleted the unloaded collection's files"
qx_stop TERM
qx_finish
