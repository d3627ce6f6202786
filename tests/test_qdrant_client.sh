#!/usr/bin/env bash
# tests/test_qdrant_client.sh — conformance with Qdrant's official JavaScript
# client (@qdrant/js-client-rest, pinned below) against `qinx serve`: every
# supported method, results checked against brute force
# (tests/client/qdrant_conformance.mjs). The client is installed from npm into
# a cache directory outside the repository; the test skips (77) only when node
# or npm is missing or the registry cannot be reached.
set -u
. "$(dirname "$0")/test_server_lib.sh"
qx_init "$1"
CLIENT_VERSION=1.19.0
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm not installed (scripts/setup.sh installs them)" >&2; exit 77; }
NPMDIR=${QX_NPM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qinx-qdrant-client-$CLIENT_VERSION}
if [ ! -f "$NPMDIR/node_modules/@qdrant/js-client-rest/package.json" ]; then
  mkdir -p "$NPMDIR"
  if ! timeout 300 npm install --prefix "$NPMDIR" --no-audit --no-fund "@qdrant/js-client-rest@$CLIENT_VERSION" >"$QX_TMP/npm.log" 2>&1; then
    echo "SKIP: npm could not install @qdrant/js-client-rest@$CLIENT_VERSION (registry unreachable?):" >&2
    tail -5 "$QX_TMP/npm.log" >&2; exit 77
  fi
fi
qx_start "$QX_TMP/data"
cp "$(dirname "$0")/client/qdrant_conformance.mjs" "$NPMDIR/"
node "$NPMDIR/qdrant_conformance.mjs" "$QX_URL" "$QX_TMP/data"; rc=$?
# snapshot download (the client has no call for it): the file as created
qx_req PUT /collections/snapdl '{"vectors":{"size":2,"distance":"Dot"}}'
qx_req PUT /collections/snapdl/points '{"points":[{"id":3,"vector":[1,0],"payload":{"t":"x"}}]}'
qx_req POST /collections/snapdl/snapshots
name=$(printf '%s' "$QX_BODY" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
curl -s -o "$QX_TMP/dl.snapshot" "$QX_URL/collections/snapdl/snapshots/$name"
if cmp -s "$QX_TMP/dl.snapshot" "$QX_TMP/data/snapshots/snapdl/$name"; then qx_ok "snapshot download = the file"; else qx_fail "snapshot download differs"; fi
# a larger snapshot (4 MB of vectors), streamed from the file: byte-for-byte, by a client
# reading slowly (the socket fills: the send resumes where it stopped), on a kept-alive
# connection that then answers another request; HEAD gives the size; no descriptor leaks
qx_req PUT /collections/snapbig '{"vectors":{"size":64,"distance":"Euclid"}}'
qx_points 0 16000 64 5 >"$QX_TMP/big.json"
qx_expect 200 PUT /collections/snapbig/points "@$QX_TMP/big.json" >/dev/null
qx_req POST /collections/snapbig/snapshots
big=$(printf '%s' "$QX_BODY" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
fds0=$(ls /proc/$QX_PID/fd | wc -l)
curl -s --limit-rate 2M -o "$QX_TMP/big.snapshot" "$QX_URL/collections/snapbig/snapshots/$big" -o "$QX_TMP/hz.txt" "$QX_URL/healthz"
if cmp -s "$QX_TMP/big.snapshot" "$QX_TMP/data/snapshots/snapbig/$big" && [ -s "$QX_TMP/hz.txt" ]; then
  qx_ok "large snapshot streamed byte-for-byte ($(stat -c %s "$QX_TMP/big.snapshot") bytes, slow reader), connection reused"
else qx_fail "large snapshot download differs or the connection was not reusable"; fi
len=$(curl -sI "$QX_URL/collections/snapbig/snapshots/$big" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')
[ "$len" = "$(stat -c %s "$QX_TMP/data/snapshots/snapbig/$big")" ] && qx_ok "HEAD: Content-Length = the file's size" || qx_fail "HEAD Content-Length '$len'"
for _ in 1 2 3 4 5 6 7 8 9 10; do curl -s -o /dev/null "$QX_URL/collections/snapbig/snapshots/$big"; done
fds1=$(ls /proc/$QX_PID/fd | wc -l)
[ "$fds1" -le "$fds0" ] && qx_ok "no descriptor left open after 12 downloads ($fds0 -> $fds1)" || qx_fail "descriptors $fds0 -> $fds1"
qx_expect 422 PUT /collections/snapdl/snapshots/recover '{"location":"file:///etc/passwd"}'
qx_expect 422 PUT /collections/snapdl/snapshots/recover '{"location":"http://example.com/x.snapshot"}'
qx_expect 404 GET /collections/snapdl/snapshots/snapdl-1-1.snapshot
# payloads and UUIDs survive kill -9 (in the log with their points)
qx_req PUT /collections/dur '{"vectors":{"size":2,"distance":"Euclid"}}'
qx_req PUT '/collections/dur/points?wait=true' '{"points":[{"id":"6F9619FF-8B86-D011-B42D-00C04FC964FF","vector":[1,2],"payload":{"k":"v"}},{"id":7,"vector":[3,4],"payload":{"a":[1,2]}}]}'
qx_req POST /collections/dur/points/payload '{"payload":{"x":1},"points":[7]}'
# concurrent payload updates of one point each set their own key: none is lost (payload
# operations are read-modify-write, serialized per collection)
cpids=()
for k in $(seq 1 24); do
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' "$QX_URL/collections/dur/points/payload" \
       --data-binary "{\"payload\":{\"c$k\":$k},\"points\":[7]}" & cpids+=($!)
done
wait "${cpids[@]}"
qx_req POST /collections/dur/points '{"ids":[7],"with_vector":false}'
lost=0; for k in $(seq 1 24); do [[ "$QX_BODY" == *"\"c$k\":$k"* ]] || lost=$((lost+1)); done
if [ $lost -eq 0 ]; then qx_ok "24 concurrent payload sets on one point: none lost"; else qx_fail "$lost of 24 concurrent payload sets lost: ${QX_BODY:0:300}"; fi
qx_req POST /collections/dur/points/payload/delete "{\"keys\":[$(seq -s, 1 24 | sed 's/\([0-9]*\)/"c\1"/g')],\"points\":[7]}"
qx_expect 422 PATCH /collections/dur '{"optimizers_config":{"indexing_threshold":-1}}'
qx_expect 422 PATCH /collections/dur '{"nosuch":1}'
qx_expect 200 PATCH /collections/dur '{"optimizers_config":{"indexing_threshold":777},"hnsw_config":{"m":4}}'
qx_stop KILL
qx_start "$QX_TMP/data"
qx_req GET /collections/dur
qx_body_has '"indexing_threshold":777' 'PATCHed indexing_threshold kept across kill -9'
qx_req POST /collections/dur/points '{"ids":["6f9619ff-8b86-d011-b42d-00c04fc964ff",7],"with_vector":false}'
qx_body_has '"id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","payload":{"k":"v"}' 'payloads and UUIDs after kill -9'
qx_body_has '"id":7,"payload":{"a":[1,2],"x":1}' 'payload update after kill -9'
qx_stop TERM
qx_start "$QX_TMP/data"
qx_req POST /collections/dur/points '{"ids":["6f9619ff-8b86-d011-b42d-00c04fc964ff",7],"with_vector":false}'
qx_body_has '"id":7,"payload":{"a":[1,2],"x":1}' 'payloads after a checkpoint (clean restart)'
[ $rc -eq 0 ] || QX_FAILS=$((QX_FAILS+1))
qx_finish
