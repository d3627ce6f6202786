#!/usr/bin/env bash
# tests/test_server_api.sh — end-to-end: collection lifecycle, points,
# search (Euclid/Cosine/Dot), Qdrant envelopes, metrics, the per-request log
# line, 60+ malformed or hostile requests each with its documented status
# (docs/http-api.md, "Errors"), and API-key authentication. The server must
# stay up throughout.
# Usage: bash tests/test_server_api.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
qx_start "$QX_TMP/data" --max-body 1048576 || exit 1
T=/collections/t1

# ---- lifecycle and points ------------------------------------------------------
qx_expect 200 PUT $T '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_body_has '"status":"ok"' "envelope status ok"
qx_body_has '"time":' "envelope time"
qx_expect 200 PUT $T/points '{"points":[{"id":1,"vector":[1,2,3,4]},{"id":2,"vector":[0,0,0,1]},{"id":3,"vector":[1,2,3,5]}]}'
qx_body_has '"status":"completed"' "upsert completed"
qx_expect 200 POST $T/points/search '{"vector":[1,2,3,4],"limit":2}'
qx_body_has '"result":[{"id":1,"score":0.0},{"id":3,"score":1.0}]' "exact search order and Euclid scores"
qx_expect 200 GET $T/points/2
qx_body_has '"vector":[0.0,0.0,0.0,1.0]' "get point returns the vector"
qx_expect 200 PUT $T/points '{"points":[{"id":2,"vector":[9,9,9,9]},{"id":2,"vector":[5,5,5,5]}]}'
qx_expect 200 GET $T/points/2
qx_body_has '"vector":[5.0,5.0,5.0,5.0]' "duplicate id in a batch: last wins, overwrite works"
qx_expect 200 PUT $T/points '{"batch":{"ids":[10,11],"vectors":[[1,1,1,1],[2,2,2,2]]}}'
qx_expect 200 POST $T/points '{"ids":[10,11,12345]}'
qx_body_has '"id":11,"vector":[2.0,2.0,2.0,2.0]' "retrieve by ids (batch upsert form)"
qx_expect 200 GET $T
qx_body_has '"points_count":5' "collection count"
qx_body_has '"distance":"Euclid"' "collection config"
qx_body_has '"state":"exact"' "index state before any rebuild"
qx_expect 200 POST $T/points/delete '{"points":[10,11,777]}'
qx_body_has '"deleted":2' "delete counts only present ids"
qx_expect 404 GET $T/points/10
qx_expect 200 POST $T/points/search/batch '{"searches":[{"vector":[1,2,3,4],"limit":1},{"vector":[5,5,5,5],"limit":1,"with_vector":true}]}'
qx_body_has '"result":[[{"id":1,"score":0.0}],[{"id":2,"score":0.0,"vector":[5.0,5.0,5.0,5.0]}]]' "search batch"
qx_expect 200 POST $T/points/search '{"vector":[1,2,3,4],"limit":10,"params":{"exact":true}}'
qx_body_has '{"id":2,' "limit above count returns all points"
qx_expect 200 GET /collections
qx_body_has '{"name":"t1"}' "list collections"

qx_expect 200 PUT /collections/cos '{"vectors":{"size":2,"distance":"Cosine"}}'
qx_expect 200 PUT /collections/cos/points '{"points":[{"id":1,"vector":[3,0]},{"id":2,"vector":[0,5]},{"id":3,"vector":[1,1]}]}'
qx_expect 200 POST /collections/cos/points/search '{"vector":[10,0],"limit":3}'
qx_body_has '[{"id":1,"score":1.0},{"id":3,"score":0.70710' "Cosine: similarity, normalised at insert and query"
qx_expect 200 PUT /collections/dot '{"vectors":{"size":2,"distance":"Dot"}}'
qx_expect 200 PUT /collections/dot/points '{"points":[{"id":1,"vector":[1,0]},{"id":2,"vector":[3,1]}]}'
qx_expect 200 POST /collections/dot/points/search '{"vector":[2,1],"limit":2}'
qx_body_has '[{"id":2,"score":7.0},{"id":1,"score":2.0}]' "Dot: inner product, higher first"

# exact search over 300 random points: a stored vector finds itself first
qx_expect 200 PUT /collections/r8 '{"vectors":{"size":8,"distance":"Euclid"}}'
qx_points 0 300 8 7 >"$QX_TMP/p300.json"
qx_expect 200 PUT /collections/r8/points "@$QX_TMP/p300.json"
q=$(awk -v d=8 -v s=7 'BEGIN{srand(s); for(p=0;p<=123;p++){v="["; for(i=0;i<d;i++) v=v (i?",":"") sprintf("%.6f", rand()*2-1); v=v "]"} print v}')
qx_expect 200 POST /collections/r8/points/search "{\"vector\":$q,\"limit\":1}"
qx_body_has '"result":[{"id":123,"score":0.0}]' "stored vector is its own nearest neighbour"

# ---- hostile and malformed requests --------------------------------------------
B=/collections/bad
qx_expect 400 PUT $B '{'
qx_expect 400 PUT $B '[]'
qx_expect 400 PUT $B ''
qx_expect 400 PUT $B '"just a string"'
qx_expect 422 PUT $B '{}'
qx_expect 422 PUT $B '{"vectors":{"distance":"Euclid"}}'
qx_expect 422 PUT $B '{"vectors":{"size":0,"distance":"Euclid"}}'
qx_expect 422 PUT $B '{"vectors":{"size":-1,"distance":"Euclid"}}'
qx_expect 422 PUT $B '{"vectors":{"size":70000,"distance":"Euclid"}}'
qx_expect 422 PUT $B '{"vectors":{"size":"4","distance":"Euclid"}}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Manhattan"}}'
qx_expect 422 PUT $B '{"vectors":{"size":4}}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Euclid"},"quantizer":{"kind":"pq"}}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Euclid"},"quantizer":{"bytes":0}}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Euclid"},"quantizer":{"bytes":65}}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Euclid"},"quantizer":"rq"}'
qx_expect 422 PUT $B '{"vectors":{"size":4,"distance":"Euclid"},"gate":{"min_recall":2}}'
qx_expect 409 PUT $T '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 422 PUT /collections/bad.name '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 422 PUT /collections/$(printf 'a%.0s' $(seq 65)) '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 422 PUT /collections/%2e%2e '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 404 GET /collections/%2e%2e%2fetc
qx_expect 404 GET /collections/../../etc/passwd '' --path-as-is
qx_expect 404 PUT /collections/a%2Fb '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 422 GET '/collections/a%00b'
qx_expect 404 GET /collections/nosuch
qx_expect 404 DELETE /collections/nosuch
qx_expect 404 GET /nosuchpath
qx_expect 404 GET '/collections//points'
qx_expect 405 DELETE /collections
qx_expect 400 PATCH $T
qx_expect 405 GET $T/points/search
qx_expect 405 PUT $T/points/delete '{}'
qx_expect 400 PUT $T/points '{"points":[{"id":1,"vector":[1,2,3,4]}'
qx_expect 422 PUT $T/points '{}'
qx_expect 422 PUT $T/points '{"points":{}}'
qx_expect 422 PUT $T/points '{"points":[]}'
qx_expect 422 PUT $T/points '{"points":[{"vector":[1,2,3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5}]}'
qx_expect 422 PUT $T/points '{"points":[7]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":-5,"vector":[1,2,3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":"abc","vector":[1,2,3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":1.5,"vector":[1,2,3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":99999999999999999999,"vector":[1,2,3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":[1,"2",3,4]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3,1e39]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3,1e400]}]}'
qx_expect 400 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3,NaN]}]}'
qx_expect 400 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3,Infinity]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":[1,2,3,null]}]}'
qx_expect 422 PUT $T/points '{"points":[{"id":5,"vector":"1,2,3,4"}]}'
qx_expect 422 POST $T/points/search '{"limit":3}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"limit":0}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"limit":-1}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"limit":10001}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"limit":"10"}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"limit":1e3}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"params":{"nprobe":0}}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"params":[]}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4],"with_vector":"yes"}'
qx_expect 422 POST $T/points/search '{"vector":[1,2,3,4,5]}'
qx_expect 422 POST /collections/cos/points/search '{"vector":[0,0]}'
qx_expect 400 POST $T/points/search ''
qx_expect 422 POST $T/points/search/batch '{}'
qx_expect 422 POST $T/points/search/batch '{"searches":[{"vector":[1,2,3,4]},{"vector":[1]}]}'
qx_expect 422 POST $T/points/search/batch '{"searches":[{"vector":[1,2,3,4]},{"vector":[1,2,3,4],"limit":"x"}]}'
qx_body_has "searches[1]: 'limit' must be an integer" "batch: a bad limit names its search"
qx_expect 422 POST $T/points/search/batch '{"searches":[{"vector":[1,2,3,4],"params":{"nprobe":0}}]}'
qx_body_has "searches[0]: 'nprobe'" "batch: a bad nprobe names its search"
# the reply's size is bounded (QXS_MAX_REPLY_VALUES = 8e6 numbers): 1024 searches of limit
# 10000 would be 2e7 ids and scores
many=$(printf '{"vector":[1,2,3,4],"limit":10000},%.0s' $(seq 1023))
qx_expect 422 POST $T/points/search/batch "{\"searches\":[${many}{\"vector\":[1,2,3,4],\"limit\":10000}]}"
qx_body_has "more than 8000000 numbers" "batch: oversized reply refused"
# a vector whose squared norm overflows float distances is refused; one just inside is served
qx_expect 200 PUT /collections/big '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 422 PUT /collections/big/points '{"points":[{"id":1,"vector":[1e20,0,0,0]}]}'
qx_body_has "vector too large" "norm overflow refused"
qx_expect 422 POST /collections/big/points/search '{"vector":[0,3e19,0,0]}'
qx_expect 200 PUT /collections/big/points '{"points":[{"id":1,"vector":[1e18,0,0,0]},{"id":2,"vector":[1,0,0,0]}]}'
qx_expect 200 POST /collections/big/points/search '{"vector":[-1e18,0,0,0],"limit":2}'
qx_body_has '"id":1' "large vector found (finite score)"
qx_body_has '"id":2' "both hits returned"
qx_expect 200 DELETE /collections/big
# retrieve is bounded the same way: 65,536 ids with their 1024-d vectors would be 6.7e7 numbers
qx_expect 200 PUT /collections/wide '{"vectors":{"size":1024,"distance":"Dot"}}'
echo "{\"ids\":[$(seq -s, 1 65536)]}" >"$QX_TMP/ids.json"
qx_expect 422 POST /collections/wide/points "@$QX_TMP/ids.json"
qx_body_has "more than 8000000 numbers" "retrieve: oversized reply refused"
echo "{\"ids\":[$(seq -s, 1 65536)],\"with_vector\":false}" >"$QX_TMP/ids.json"
qx_expect 200 POST /collections/wide/points "@$QX_TMP/ids.json"
qx_expect 200 DELETE /collections/wide
qx_expect 422 POST $T/points/delete '{"points":"1"}'
qx_expect 422 POST $T/points/delete '{"points":["x"]}'
qx_expect 404 GET $T/points/999
qx_expect 422 GET $T/points/abc
qx_expect 422 GET $T/points/-1
qx_expect 422 GET $T/points/99999999999999999999
qx_expect 404 GET $T/rebuild/999
qx_expect 422 GET $T/rebuild/x
qx_expect 422 POST $T/rebuild '{}'
qx_expect 422 POST $T/rebuild '{"bytes":"8"}'
qx_expect 422 POST $T/rebuild '{"gate":{"min_used_fractio":0.3}}'
printf '{"vectors":{"size":4,"distance":"Eu\xff\xfeclid"}}' >"$QX_TMP/utf8.json"
qx_expect 400 PUT $B "@$QX_TMP/utf8.json"
printf '{"vectors":{"size":4,"dist\x00ance":"Euclid"}}' >"$QX_TMP/nul.json"
qx_expect 400 PUT $B "@$QX_TMP/nul.json"
# 100 000 nested arrays (jansson's depth limit answers, no stack overflow)
awk 'BEGIN{for(i=0;i<100000;i++) printf "["; for(i=0;i<100000;i++) printf "]"}' >"$QX_TMP/deep.json"
qx_expect 400 PUT $T/points "@$QX_TMP/deep.json"
awk 'BEGIN{printf "{\"points\":["; for(i=0;i<100000;i++) printf "{\"a\":"; printf "1"; for(i=0;i<100000;i++) printf "}"; printf "]}"}' >"$QX_TMP/deep2.json"
qx_expect 400 PUT $T/points "@$QX_TMP/deep2.json"
# bodies over the limit (1 MiB here): declared length, a 100 MB body, chunked upload
head -c 104857600 /dev/zero | tr '\0' ' ' >"$QX_TMP/big.json"
qx_expect 413 PUT $T/points "@$QX_TMP/big.json"
qx_expect 413 PUT $T/points "@$QX_TMP/big.json" -H 'Expect:'
qx_expect 413 PUT $T/points "@$QX_TMP/big.json" -H 'Transfer-Encoding: chunked'
rm -f "$QX_TMP/big.json"
qx_alive "after hostile requests"
qx_expect 200 POST $T/points/search '{"vector":[1,2,3,4],"limit":1}'
qx_body_has '"result":[{"id":1,"score":0.0}]' "data intact after hostile requests"
qx_req GET $T/points/search; qx_body_has '"status":{"error":' "error envelope"

# ---- metrics and the request log -------------------------------------------------
qx_expect 200 GET /metrics
qx_body_has 'qinx_http_requests_total{endpoint="search",code="200"}' "metrics: request counters"
qx_body_has 'qinx_http_request_duration_seconds_bucket{endpoint="upsert",le="+Inf"}' "metrics: latency histogram"
qx_body_has 'qinx_collection_points{collection="t1"} 3' "metrics: points gauge"
qx_body_has 'qinx_index_bytes' "metrics: index bytes"
qx_body_has 'qinx_rebuilds_total{outcome="gate_rejected"}' "metrics: rebuild outcomes"
if grep -q 'POST /collections/t1/points/search endpoint=search status=200' "$QX_LOG"; then qx_ok "request log line"
else qx_fail "no request log line"; fi

# ---- drop and re-create ------------------------------------------------------------
qx_expect 200 DELETE /collections/dot
qx_expect 404 GET /collections/dot
qx_expect 200 PUT /collections/dot '{"vectors":{"size":3,"distance":"Dot"}}'
qx_expect 200 GET /collections/dot
qx_body_has '"points_count":0' "re-created collection is empty"
[ -z "$(ls -A "$QX_TMP/data/collections" | grep '^\.')" ] && qx_ok "no temp dirs left" || qx_fail "temp dirs left"
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "graceful stop" || qx_fail "exit code $QX_RC"

# ---- authentication -------------------------------------------------------------------
qx_start "$QX_TMP/data2" --api-key s3cret || exit 1
qx_expect 200 GET /healthz
qx_expect 401 GET /collections
qx_expect 401 GET /collections '' -H 'api-key: wrong'
qx_expect 401 GET /collections '' -H 'Authorization: Bearer wrong'
qx_expect 401 GET /collections '' -H 'api-key: s3cre'
qx_expect 401 GET /metrics
qx_expect 401 PUT /collections/x '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 200 GET /collections '' -H 'api-key: s3cret'
qx_expect 200 GET /collections '' -H 'Authorization: Bearer s3cret'
qx_expect 200 PUT /collections/x '{"vectors":{"size":4,"distance":"Euclid"}}' -H 'api-key: s3cret'
qx_alive "auth"
qx_stop TERM
qx_finish
