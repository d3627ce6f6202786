#!/usr/bin/env bash
# tests/test_server_storage.sh — end-to-end storage (issue 18): small
# checkpoints make many sealed segments, the background merge folds them and
# every point survives (vectors identical, across a restart); GET collection
# reports segments and memory by kind; on_disk false and true answer the
# same; a rebuild streams over segments and re-ranking / with_vector read raw
# vectors from disk; --memory-limit refuses writes with 507; a directory
# written by the server before segments (tests/fixtures/legacy-v1.tar.gz,
# made by commit 9b735d3) opens, is converted, and keeps its points and index;
# a restart after kill -9 replays the log tail with the codes noted in
# wal.codes, and answers the same with that file intact, damaged or missing.
# Usage: bash tests/test_server_storage.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
D="$QX_TMP/data"
C=/collections/seg
count() { qx_req GET "$1"; echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p'; }
field() { echo "$QX_BODY" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1; }

qx_start "$D" --checkpoint-bytes 12000 || exit 1
qx_expect 200 PUT $C '{"vectors":{"size":16,"distance":"Euclid"}}'
qx_expect 200 PUT /collections/ram '{"vectors":{"size":16,"distance":"Euclid","on_disk":false}}'
for b in $(seq 0 29); do
  qx_points $((b * 60)) 60 16 $((b + 1)) >"$QX_TMP/b.json"
  qx_expect 200 PUT $C/points "@$QX_TMP/b.json" >/dev/null
  qx_expect 200 PUT /collections/ram/points "@$QX_TMP/b.json" >/dev/null
done
qx_expect 200 POST $C/points/delete "{\"points\":[$(seq -s, 0 3 299)]}"
qx_expect 200 POST /collections/ram/points/delete "{\"points\":[$(seq -s, 0 3 299)]}"
[ "$(count $C)" = 1700 ] && qx_ok "1700 points after deletes" || qx_fail "count $(count $C)"
qx_expect 200 GET $C
nck=$(grep -c "collection seg: checkpoint at lsn" "$QX_LOG")
[ "$nck" -ge 8 ] && qx_ok "checkpoints sealed $nck segments" || qx_fail "only $nck checkpoints"
qx_body_has '"memory":{"ram_bytes":' "memory reported by kind"
qx_body_has '"on_disk":true' "on_disk defaults to true"
# the merger folds segments once there are 8 or more (it runs every second)
for i in $(seq 1 30); do qx_req GET $C; s=$(field segments_count); [ "${s:-99}" -lt 8 ] && break; sleep 0.5; done
[ "${s:-99}" -lt 8 ] && [ "$s" -lt "$nck" ] && qx_ok "background merge: $nck sealed, $s segments left" || qx_fail "no merge: $s segments"
grep -q "merged [0-9]* segments" "$QX_LOG" && qx_ok "merge logged" || qx_fail "no merge line in the log"
qx_expect 200 GET $C/points/1501
v1501=$(echo "$QX_BODY" | sed -n 's/.*"vector":\(\[[^]]*\]\).*/\1/p')
qx_expect 404 GET $C/points/3
# the same answers from on_disk true and false
q=$(qx_vec 16 777)
qx_req POST $C/points/search "{\"vector\":$q,\"limit\":5,\"params\":{\"exact\":true}}"; a=$(echo "$QX_BODY" | grep -o '"id":[0-9]*' | tr '\n' ' ')
qx_req POST /collections/ram/points/search "{\"vector\":$q,\"limit\":5,\"params\":{\"exact\":true}}"; b=$(echo "$QX_BODY" | grep -o '"id":[0-9]*' | tr '\n' ' ')
[ -n "$a" ] && [ "$a" = "$b" ] && qx_ok "on_disk true and false answer alike ($a)" || qx_fail "on_disk: '$a' vs '$b'"
qx_stop KILL
qx_start "$D" --checkpoint-bytes 12000 || exit 1
[ "$(count $C)" = 1700 ] && qx_ok "1700 points after kill -9 and restart" || qx_fail "count after restart $(count $C)"
qx_expect 200 GET $C/points/1501
qx_body_has "$v1501" "vector identical after merge + restart"
# rebuild over segments; rerank and with_vector read the raw vectors from the segment files
qx_expect 200 POST $C/rebuild '{"train_size":1500,"min_recall":0,"bytes":4}'
for i in $(seq 1 480); do qx_req GET $C/rebuild/1; [[ "$QX_BODY" == *'"state":"succeeded"'* || "$QX_BODY" == *'"state":"rejected"'* || "$QX_BODY" == *'"state":"failed"'* ]] && break; sleep 0.5; done
qx_body_has '"state":"succeeded"' "rebuild over segments published"
qx_req POST $C/points/search "{\"vector\":$v1501,\"limit\":3,\"with_vector\":true,\"params\":{\"rerank\":50}}"
qx_body_has '"id":1501,"score":0.0' "re-ranked search finds the point at distance 0 (raw vector from disk)"
qx_body_has "$v1501" "with_vector returns the raw vector"
qx_req GET $C
[ "$(field indexed_vectors_count)" = 1700 ] && qx_ok "1700 indexed" || qx_fail "indexed $(field indexed_vectors_count)"
qx_body_has '"codes_bytes":' "codes counted"
qx_stop TERM
# --memory-limit: a write past it is refused with 507, nothing written
qx_start "$D" --memory-limit 100000 || exit 1
qx_points 5000 600 16 99 >"$QX_TMP/big.json"
qx_expect 507 PUT $C/points "@$QX_TMP/big.json"
qx_body_has "memory limit" "507 names the limit"
[ "$(count $C)" = 1700 ] && qx_ok "nothing written past the limit" || qx_fail "count $(count $C)"
qx_req GET /metrics
echo "$QX_BODY" | grep -q '^qinx_memory_limit_bytes 100000' && qx_ok "limit in /metrics" || qx_fail "no qinx_memory_limit_bytes"
echo "$QX_BODY" | grep -q 'qinx_collection_ram_bytes{collection="seg",kind="codes"}' && qx_ok "ram by kind in /metrics" || qx_fail "no ram metrics"
qx_stop TERM

# the index's entries live in the segments' codes files: a restart reads them
# (no re-encoding, no raw vectors), and a checkpoint after a few writes writes
# the new segment's codes, not the index
CD="$D/collections/seg"
ls "$CD"/seg-*.codes.* >/dev/null 2>&1 && qx_ok "codes files beside the segments" || qx_fail "no codes files: $(ls "$CD")"
nidx=$(ls "$CD"/index-*.qx | wc -l); idx0=$(ls "$CD"/index-*.qx)
qx_start "$D" || exit 1
qx_req GET $C
[ "$(field indexed_vectors_count)" = 1700 ] && qx_ok "1700 indexed after restart (from codes files)" || qx_fail "indexed after restart $(field indexed_vectors_count)"
qx_req POST $C/points/search "{\"vector\":$v1501,\"limit\":3,\"params\":{\"nprobe\":64}}"
qx_body_has '"id":1501' "index search after restart finds 1501"
qx_points 9000 20 16 55 >"$QX_TMP/few.json"
qx_expect 200 PUT $C/points "@$QX_TMP/few.json" >/dev/null
qx_stop TERM
ck=$(grep "collection seg: checkpoint at lsn" "$QX_LOG" | tail -1 | sed -n 's/.*wrote \([0-9]*\) bytes.*/\1/p')
idx1=$(ls "$CD"/index-*.qx)
[ "$idx0" = "$idx1" ] && [ "${ck:-999999}" -lt 40000 ] && qx_ok "checkpoint after 20 writes: $ck bytes, index file not rewritten ($idx1)" \
  || qx_fail "checkpoint wrote ${ck:-?} bytes; index $idx0 -> $idx1"
qx_start "$D" || exit 1
qx_req GET $C
[ "$(field indexed_vectors_count)" = 1720 ] && qx_ok "1720 indexed after restart" || qx_fail "indexed $(field indexed_vectors_count)"
qx_stop TERM
# a corrupt codes file: the collection is refused with an error naming the file, nothing changed
cf=$(ls "$CD"/seg-*.codes.* | head -1)
cp "$cf" "$QX_TMP/codes.bak"
printf '\xff' | dd of="$cf" bs=1 seek=60 conv=notrunc 2>/dev/null
qx_start "$D" || exit 1
grep -q "recovery failed: .*$(basename "$cf")" "$QX_LOG" && qx_ok "corrupt codes file refused, named: $(grep -o "recovery failed: .*" "$QX_LOG" | head -1 | cut -c1-160)" \
  || qx_fail "corrupt $cf not reported: $(grep -i "seg" "$QX_LOG" | tail -3)"
qx_expect 404 GET $C
qx_stop TERM
out=$("$QX_BIN" serve verify "$D" 2>&1); vrc=$?
[ "$vrc" = 1 ] && [[ "$out" == *"FAIL $cf"* ]] && qx_ok "qinx serve verify names the corrupt codes file" || qx_fail "verify rc $vrc: $out"
cp "$QX_TMP/codes.bak" "$cf"
out=$("$QX_BIN" serve verify "$D" 2>&1); vrc=$?
[ "$vrc" = 0 ] && [[ "$out" == *"all files intact"* ]] && qx_ok "qinx serve verify: all files intact ($(echo "$out" | grep -c '^ok') files)" || qx_fail "verify rc $vrc: $out"
# a flipped byte among a segment's raw vectors: a start does not read them, verify does
sf=$(ls "$CD"/seg-*.dat | head -1)
cp "$sf" "$QX_TMP/seg.bak"
vo=$(od -An -t u8 -j 40 -N 8 "$sf" | tr -d ' ') # off_vecs (segment.h)
printf '\x5a' | dd of="$sf" bs=1 seek=$((vo + 10)) conv=notrunc 2>/dev/null
out=$("$QX_BIN" serve verify "$CD" 2>&1); vrc=$?
[ "$vrc" = 1 ] && [[ "$out" == *"FAIL $sf: checksum mismatch in the raw vectors"* ]] && qx_ok "verify finds a flipped raw-vector byte in $(basename "$sf")" || qx_fail "verify rc $vrc: $out"
cp "$QX_TMP/seg.bak" "$sf"
qx_start "$D" || exit 1
[ "$(count $C)" = 1720 ] && qx_ok "repaired file: collection back (1720 points)" || qx_fail "count $(count $C)"

# restart with a log tail: the index entries of the records written since the
# last checkpoint come from wal.codes (no encoding). Searches answer the same
# before and after kill -9 with wal.codes intact, damaged (its entries are
# skipped and the points encoded again) or missing.
qx_points 9100 200 16 66 >"$QX_TMP/tail1.json"
qx_points 9300 50 16 67 >"$QX_TMP/tail2.json"
qx_expect 200 PUT $C/points "@$QX_TMP/tail1.json" >/dev/null
qx_expect 200 PUT $C/points "@$QX_TMP/tail2.json" >/dev/null
[ -s "$CD/wal.codes" ] && qx_ok "wal.codes beside the log ($(stat -c %s "$CD/wal.codes") bytes)" || qx_fail "no wal.codes: $(ls "$CD")"
answers() { local s out=""; for s in 1 2 3 4 5 6; do
  qx_req POST $C/points/search "{\"vector\":$(qx_vec 16 $((s * 31))),\"limit\":10,\"params\":{\"nprobe\":4}}"
  out+=$(echo "$QX_BODY" | grep -o '"id":[0-9]*,"score":[-0-9.e]*' | tr '\n' ' ')"|"; done; echo "$out"; }
before=$(answers)
[ "$(echo "$before" | grep -o '"id"' | wc -l)" = 60 ] && qx_ok "60 hits before the crash" || qx_fail "hits before: $before"
qx_stop KILL
for mode in intact damaged missing; do
  case $mode in
    damaged) printf '\x01' | dd of="$CD/wal.codes" bs=1 seek=44 conv=notrunc 2>/dev/null ;;
    missing) rm -f "$CD/wal.codes" ;;
  esac
  qx_start "$D" || exit 1
  line=$(grep -o "recovered 1970 points.*" "$QX_LOG")
  want="their codes from wal.codes for 2, encoded for 0"; [ $mode = intact ] || want="their codes from wal.codes for 0, encoded for 2"
  [[ "$line" == *"2 log records replayed, $want"* ]] && qx_ok "wal.codes $mode: $want" || qx_fail "wal.codes $mode: $line"
  after=$(answers)
  [ "$after" = "$before" ] && qx_ok "wal.codes $mode: the same 60 hits and scores after kill -9 and replay" || qx_fail "wal.codes $mode: '$before' vs '$after'"
  qx_stop KILL
done
# the replay that encoded wrote wal.codes again: the next one reads it
qx_start "$D" || exit 1
grep -q "their codes from wal.codes for 2, encoded for 0" "$QX_LOG" && qx_ok "wal.codes rewritten by the replay that encoded" || qx_fail "$(grep -o 'recovered.*' "$QX_LOG")"
qx_stop TERM
qx_start "$D" || exit 1
[ "$(count $C)" = 1970 ] && [ "$(stat -c %s "$CD/wal.codes")" = 32 ] && qx_ok "after a checkpoint: 1970 points, wal.codes empty (header only)" || qx_fail "count $(count $C), wal.codes $(stat -c %s "$CD/wal.codes")"
qx_stop TERM

# upgrade: a data directory of the server before segments
FIX="$(dirname "$0")/fixtures/legacy-v1.tar.gz"
if [ -f "$FIX" ]; then
  U="$QX_TMP/old"; mkdir -p "$U"; tar -xzf "$FIX" -C "$U"
  [ -f "$U/data/collections/legacy/snapshot.bin" ] && [ -s "$U/data/collections/legacy/wal.log" ] \
    && qx_ok "fixture: snapshot.bin + index.qx + a non-empty wal.log" || qx_fail "fixture incomplete"
  want=$(cat "$U/expect.txt")
  qx_start "$U/data" || exit 1
  grep -q "converted from snapshot.bin" "$QX_LOG" && qx_ok "legacy directory converted" || qx_fail "no conversion line"
  [ "$(count /collections/legacy)" = "$want" ] && qx_ok "all $want points after the upgrade" || qx_fail "count $(count /collections/legacy), want $want"
  qx_req GET /collections/legacy
  qx_body_has '"state":"ivf"' "the old index is kept (re-keyed, not rebuilt)"
  qx_expect 200 GET /collections/legacy/points/1234
  qx_body_has "$(cat "$U/p1234.txt")" "vector of point 1234 identical"
  qx_expect 404 GET /collections/legacy/points/7     # deleted in the old log
  v=$(cat "$U/p1234.txt")
  qx_req POST /collections/legacy/points/search "{\"vector\":$v,\"limit\":1,\"params\":{\"rerank\":20}}"
  qx_body_has '"id":1234' "searchable through the upgraded index"
  [ ! -f "$U/data/collections/legacy/snapshot.bin" ] && [ -f "$U/data/collections/legacy/MANIFEST" ] \
    && qx_ok "old files replaced by the manifest and segments" || qx_fail "old files still there"
  qx_stop KILL
  qx_start "$U/data" || exit 1
  [ "$(count /collections/legacy)" = "$want" ] && qx_ok "upgraded directory reopens ($want points)" || qx_fail "reopen count $(count /collections/legacy)"
  qx_stop TERM
  # repair (issue 19): a point stored as NaN by the old server (a Cosine vector whose norm
  # underflowed) is quarantined on upgrade, not loaded: the collection opens green,
  # searches and rebuilds, and the quarantine file names the point once
  Q="$QX_TMP/oldnan"; mkdir -p "$Q"; tar -xzf "$FIX" -C "$Q"
  python3 - "$Q/data/collections/legacy/snapshot.bin" <<'PY'
import struct, sys, zlib
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
d, = struct.unpack_from('<I', b, 8); n, = struct.unpack_from('<Q', b, 16)
row = 50  # id 50 (ids 0-9 are deleted by the old log): its vector becomes NaN in its first coordinate
struct.pack_into('<f', b, 32 + 8 * n + 4 * d * row, float('nan'))
struct.pack_into('<I', b, len(b) - 4, zlib.crc32(bytes(b[8:len(b) - 4])))
open(p, 'wb').write(b)
PY
  qx_start "$Q/data" || exit 1
  grep -q "1 point(s) with a non-finite vector from snapshot.bin" "$QX_LOG" && qx_ok "NaN point reported in the log" || qx_fail "no quarantine line in the log"
  [ "$(count /collections/legacy)" = "$((want - 1))" ] && qx_ok "the other $((want - 1)) points kept" || qx_fail "count $(count /collections/legacy), want $((want - 1))"
  qx_expect 404 GET /collections/legacy/points/50
  qx_req POST /collections/legacy/points/search "{\"vector\":$v,\"limit\":3,\"params\":{\"rerank\":20}}"
  [ "$QX_STATUS" = 200 ] && qx_ok "search answers 200 after the repair" || qx_fail "search $QX_STATUS: $QX_BODY"
  qx_expect 200 POST /collections/legacy/rebuild
  qf="$Q/data/collections/legacy/quarantine.jsonl"
  [ "$(grep -c '"id":50,' "$qf" 2>/dev/null)" = 1 ] && qx_ok "quarantine.jsonl names point 50" || qx_fail "quarantine file: $(cat "$qf" 2>&1)"
  qx_stop KILL
  qx_start "$Q/data" || exit 1
  [ "$(count /collections/legacy)" = "$((want - 1))" ] && qx_ok "repaired directory reopens" || qx_fail "reopen count $(count /collections/legacy)"
  [ "$(wc -l < "$qf")" = 1 ] && qx_ok "quarantined once, not again on reopen" || qx_fail "quarantine lines: $(wc -l < "$qf")"
  qx_stop TERM
else
  qx_fail "fixture $FIX missing"
fi
qx_finish
