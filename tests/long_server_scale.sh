#!/usr/bin/env bash
# tests/long_server_scale.sh — scale figures of issue 18 (label long):
# QX_SCALE_N points (default 1,000,000) x 128-d, clustered (qinx synth), 16-byte
# RQ codes. The collection is made the way a user upgrading would have it: a
# data directory of the layout before segments (snapshot.bin, written here
# from the synth file) that the server converts when it opens it (timed).
# Loading over HTTP is measured separately on QX_LOAD_N points (default
# 100,000; `qinx serve load random:N:128:7`), against QX_OLD_BIN (the server
# before segments) in the same run when given. Prints RESULT lines:
#   load points/s over HTTP; conversion time; rebuild time; RssAnon of the server after the
#   rebuild (and the issue's bound 2 x (code + id bytes) + 64 MB); the bytes
#   a checkpoint writes after 1 % new writes against the collection's bytes;
#   restart-to-ready time; HTTP search QPS (wrk, rerank 100) with raw vectors
#   on disk (warm page cache) and in RAM; re-ranked search latency p50/p99
#   with a cold page cache (the segment files' pages dropped before each
#   query with posix_fadvise DONTNEED).
#   Restart is timed twice: after a clean stop (nothing to replay), and from
#   process start to the first successful search after kill -9 with a log
#   tail of QX_TAIL_N points (default N / 100, at most 120,000 so that the
#   tail stays under the 64 MiB checkpoint threshold; its size is printed).
# QX_SCALE_DATA=DIR: the data directory; if it holds collection "big"
# already (an earlier run's conversion), that is used in place of the synth
# and the conversion, else it is made there and kept after the run. DIR is
# modified (rebuild, new writes).
# Usage: bash tests/long_server_scale.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
command -v wrk >/dev/null || { echo "SKIP: wrk not installed (apt-get install wrk): the HTTP QPS figures need it" >&2; exit 77; }
[ -n "${QX_SCALE_BIN:-}" ] && QX_BIN=$QX_SCALE_BIN
N=${QX_SCALE_N:-1000000}
D=${QX_SCALE_DATA:-"$QX_TMP/data"}
C=/collections/big
CD="$D/collections/big"
rss() { awk '/^RssAnon/ {print $2 * 1024}' /proc/"$QX_PID"/status; }
# qx_start gives up waiting for "ready:" after 15 s; opening millions of points takes longer
wait_ready() {
  for _ in $(seq 1 7200); do
    grep -q "ready:" "$QX_LOG" && return 0
    kill -0 "$QX_PID" 2>/dev/null || { qx_fail "server died while opening"; return 1; }
    sleep 0.5
  done
  qx_fail "not ready after an hour"; return 1
}

LN=${QX_LOAD_N:-100000}
loadrate() { # BIN -> points/s of a fresh server loading LN points over HTTP
  local bin=$1 dd="$QX_TMP/load-$RANDOM"
  "$bin" serve --host 127.0.0.1 --port 0 --data "$dd" --log-level warn >"$dd.log" 2>&1 & local pid=$!
  local port=""
  for _ in $(seq 1 200); do port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dd.log" | head -1); grep -q "ready:" "$dd.log" && [ -n "$port" ] && break; sleep 0.05; done
  "$bin" serve load --url "http://127.0.0.1:$port" --collection l --distance Euclid --batch 1000 "random:$LN:128:7" 2>&1 |
    sed -n 's/.*(\([0-9]*\) points\/s).*/\1/p' | tail -1
  kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$dd"
}
new_rate=$(loadrate "$QX_BIN")
old_rate=""; [ -n "${QX_OLD_BIN:-}" ] && old_rate=$(loadrate "$QX_OLD_BIN")
echo "RESULT load: $LN points x 128-d over HTTP (batch 1000): $new_rate points/s${old_rate:+; the server before segments, same run: $old_rate points/s}"
cat /proc/loadavg | sed 's/^/RESULT machine load average: /'

# the 1M collection: snapshot.bin of the old layout, converted at open
REUSE=0; [ -n "${QX_SCALE_DATA:-}" ] && [ -f "$CD/meta.json" ] && REUSE=1
if [ "$REUSE" = 0 ]; then
"$QX_BIN" synth --out "$QX_TMP/s" --n "$N" --queries 1 --d 128 --clusters 256 --seed 7 >/dev/null 2>&1 || { qx_fail "synth"; qx_finish; }
mkdir -p "$CD"
python3 - "$QX_TMP/s_base.fvecs" "$CD" "$N" <<'PY'
import array, struct, sys, zlib, json
src, cd, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = 128
rec = 4 + 4 * d
ids = array.array("q", range(n))
with open(src, "rb") as f, open(cd + "/snapshot.bin", "wb") as out:
    hdr = b"QXSNAP01" + struct.pack("<IIQQ", d, 0, n, 0)
    crc = zlib.crc32(hdr[8:])
    out.write(hdr); out.write(ids.tobytes()); crc = zlib.crc32(ids.tobytes(), crc)
    left = n
    while left:
        k = min(left, 65536)
        buf = f.read(k * rec)
        a = array.array("f"); a.frombytes(buf)
        v = array.array("f")
        for i in range(k): v.extend(a[i * (d + 1) + 1:(i + 1) * (d + 1)])
        b = v.tobytes(); out.write(b); crc = zlib.crc32(b, crc); left -= k
    out.write(struct.pack("<I", crc & 0xffffffff))
json.dump({"name": "big", "vectors": {"size": d, "distance": "Euclid"}, "quantizer": {"kind": "rq", "bytes": 16, "nlist": 0},
           "gate": {"min_recall": 0.3}, "created": 0}, open(cd + "/meta.json", "w"))
PY
fi
qx_start "$D" || exit 1
wait_ready || { qx_finish; exit 1; }
opened=$(sed -n 's/.*collection big: recovered .* in \([0-9.]*\) s.*/\1/p' "$QX_LOG")
if [ "$REUSE" = 1 ]; then echo "RESULT open of the prepared $N-point data directory (no conversion): $opened s"
else echo "RESULT conversion of a $N-point snapshot.bin to segments at open: $opened s"; fi
[ "$(qx_req GET $C; echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')" = "$N" ] && qx_ok "$N points after the conversion" || qx_fail "count after conversion"
TRAIN=${QX_SCALE_TRAIN:-65536}
NLIST=${QX_SCALE_NLIST:-1024} # the automatic 4 sqrt(N) (4,000 at 1M) gives the gate's nprobe-16 recall 0.20 on this data
MINR=${QX_SCALE_MIN_RECALL:-0.15} # 16-byte codes, no re-ranking: 10-recall@10 ~0.19 at 1M on this data
qx_expect 200 POST $C/rebuild '{"bytes":16,"train_size":'$TRAIN',"nlist":'$NLIST',"min_recall":'$MINR'}'
tr=$(date +%s.%N)
for i in $(seq 1 7200); do
  qx_req GET $C/rebuild/1
  [[ "$QX_BODY" =~ \"state\":\"(succeeded|rejected|failed|canceled)\" ]] && break
  sleep 0.5
done
qx_body_has '"state":"succeeded"' "rebuild of $N points published"
echo "RESULT rebuild: $(awk -v a="$tr" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s (bytes 16, train $TRAIN, nlist $NLIST, min_recall $MINR)"
qx_req GET $C/rebuild/1
echo "RESULT gate: $(echo "$QX_BODY" | grep -o '"name":"server.heldout_recall","value":[0-9.]*' | head -1)"
sleep 12 # let the allocator return freed pages (jemalloc decay is 10 s)
r=$(rss)
bound=$(( 2 * (16 + 8) * N + 64 * 1024 * 1024 ))
qx_req GET $C
mem=$(echo "$QX_BODY" | grep -o '"memory":{[^}]*}' | head -1)
echo "RESULT memory after rebuild: RssAnon $r bytes ($(( r / 1048576 )) MiB); bound 2 x (code + id bytes) + 64 MB = $bound ($(( bound / 1048576 )) MiB); accounted $mem"
[ "$r" -le "$bound" ] && qx_ok "RssAnon within the bound" || qx_fail "RssAnon $r above $bound"
qx_req POST $C/points/search "{\"vector\":$(qx_vec 128 5),\"limit\":10,\"params\":{\"rerank\":100}}"
[ "$QX_STATUS" = 200 ] && qx_ok "re-ranked search answers" || qx_fail "search: $QX_BODY"
# 1 % new writes, then the checkpoint at shutdown
m=$(( N / 100 ))
"$QX_BIN" serve load --url "$QX_URL" --collection big --batch 1000 --id-base "$N" "random:$m:128:8" 2>"$QX_TMP/l1.txt" \
  || qx_fail "1 % load: $(tail -2 "$QX_TMP/l1.txt")"
qx_stop TERM
ck=$(grep "collection big: checkpoint at lsn" "$QX_LOG" | tail -1 | sed -n 's/.*wrote \([0-9]*\) bytes.*/\1/p')
cb=$(du -sb "$CD" | cut -f1)
echo "RESULT checkpoint after 1 % new writes ($m points): $ck bytes written, collection $cb bytes on disk: $(awk -v a="$ck" -v b="$cb" 'BEGIN{printf "%.2f", 100 * a / b}') %"
ls -l "$CD"
# restart to ready (replays nothing after a clean stop; see the crash line below for a log tail)
qx_start "$D" || exit 1
wait_ready || { qx_finish; exit 1; }
grep -o "ready: .*" "$QX_LOG"
echo "RESULT restart: $(sed -n 's/.*collection big: recovered .* in \([0-9.]*\) s.*/\1/p' "$QX_LOG") s to open the collection ($(sed -n 's/.*ready: .* in \([0-9.]*\) s/\1/p' "$QX_LOG") s to ready)"
# restart after kill -9 with a log tail, timed from process start to the
# first search answered
T=${QX_TAIL_N:-$(( N / 100 < 120000 ? N / 100 : 120000 ))}
"$QX_BIN" serve load --url "$QX_URL" --collection big --batch 1000 --id-base "$(( N + m ))" "random:$T:128:9" 2>"$QX_TMP/l2.txt" \
  || qx_fail "tail load: $(tail -2 "$QX_TMP/l2.txt")"
qx_stop KILL
wal=$(stat -c %s "$CD/wal.log")
qbody1="{\"vector\":$(qx_vec 128 3),\"limit\":10}"
for rep in 1 2; do
  QX_LOG="$QX_TMP/server.tail$rep.log"
  t0=$(date +%s.%N)
  "$QX_BIN" serve --host 127.0.0.1 --port 0 --data "$D" --threads 4 >"$QX_LOG" 2>&1 &
  QX_PID=$!; QX_PIDS+=("$QX_PID"); port=""
  for _ in $(seq 1 60000); do
    [ -z "$port" ] && port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$QX_LOG" | head -1)
    if [ -n "$port" ] && [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
         --data-binary "$qbody1" "http://127.0.0.1:$port$C/points/search")" = 200 ]; then break; fi
    kill -0 "$QX_PID" 2>/dev/null || { qx_fail "server died at restart"; break; }
    sleep 0.02
  done
  t1=$(date +%s.%N)
  QX_URL="http://127.0.0.1:$port"
  echo "RESULT restart after kill -9 with a log tail of $T points ($wal bytes): $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}') s from process start to the first search answered (run $rep; $(grep -o 'recovered .*' "$QX_LOG"))"
  [ "$(qx_req GET $C; echo "$QX_BODY" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')" = "$(( N + m + T ))" ] \
    && qx_ok "every point after the restart with a log tail" || qx_fail "count after the restart with a log tail: $QX_BODY"
  [ "$rep" = 1 ] && qx_stop KILL
done
cat /proc/loadavg | sed 's/^/RESULT machine load average: /'
# HTTP QPS, raw vectors on disk (warm), rerank 100
qbody() { echo "{\"vector\":$(qx_vec 128 "$1"),\"limit\":10,\"params\":{\"nprobe\":16,\"rerank\":100}}"; }
for s in $(seq 1 200); do qbody "$s"; done >"$QX_TMP/queries.txt"
cat >"$QX_TMP/wrk.lua" <<'LUA'
local bodies = {}
for line in io.lines(os.getenv("QF")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/collections/big/points/search", {["Content-Type"] = "application/json"}, bodies[i])
end
LUA
qps() { QF="$QX_TMP/queries.txt" wrk -t2 -c8 -d10s -s "$QX_TMP/wrk.lua" "$QX_URL" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }
qps >/dev/null # warm the page cache
q_disk=$(qps)
qx_stop TERM
sed -i 's/"on_disk": true/"on_disk": false/' "$CD/meta.json"
qx_start "$D" || exit 1
wait_ready || { qx_finish; exit 1; }
echo "RESULT restart with on_disk false (reads the raw vectors into RAM): $(sed -n 's/.*collection big: recovered .* in \([0-9.]*\) s.*/\1/p' "$QX_LOG") s"
qps >/dev/null
q_ram=$(qps)
if [ -n "$q_disk" ] && [ -n "$q_ram" ]; then
  echo "RESULT HTTP QPS (wrk 8 connections, 10 s, nprobe 16, rerank 100): on disk $q_disk, in RAM $q_ram, ratio $(awk -v a="$q_disk" -v b="$q_ram" 'BEGIN{printf "%.2f", a / b}')"
else qx_fail "HTTP QPS not measured (wrk missing or failed: '$q_disk' / '$q_ram')"; fi
qx_stop TERM
sed -i 's/"on_disk": false/"on_disk": true/' "$CD/meta.json"
qx_start "$D" || exit 1
wait_ready || { qx_finish; exit 1; }
# cold cache: drop the segment files' pages before every query
python3 - "$CD" "$QX_URL" "$QX_TMP/queries.txt" <<'PY'
import glob, os, sys, time, urllib.request
d, url, qf = sys.argv[1], sys.argv[2], sys.argv[3]
bodies = [l.strip() for l in open(qf)][:100]
segs = glob.glob(d + "/seg-*.dat")
lat = []
for b in bodies:
    for s in segs:
        fd = os.open(s, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
    req = urllib.request.Request(url + "/collections/big/points/search", data=b.encode(), headers={"Content-Type": "application/json"})
    t = time.perf_counter(); urllib.request.urlopen(req).read(); lat.append(time.perf_counter() - t)
lat.sort()
print("RESULT cold-cache rerank 100 (nprobe 16, %d queries): p50 %.2f ms, p99 %.2f ms" % (len(lat), 1000 * lat[len(lat) // 2], 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]))
PY
qx_stop TERM
qx_finish
