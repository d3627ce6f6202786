#!/usr/bin/env bash
# tests/long_server_fuzz.sh — libFuzzer over the server's request handling,
# the WAL parser, and the HTTP edge: the framing parser in process and raw
# bytes over a real socket to the edge serving the same handlers
# (server/fuzz/fuzz_api.c), with ASan + UBSan, for a fixed time
# (QX_FUZZ_SECONDS, default 60) from a seed corpus of valid and hostile
# requests. Fails on any crash, leak, sanitizer report, 500 reply, reply
# that is not well framed or not the JSON envelope, or a hang (8 s; connections the kernel never delivered to the accept queue are noted, not counted).
# Needs clang with libFuzzer (exit 77 otherwise) and the build dir's libqinx.a.
# Usage: bash tests/long_server_fuzz.sh <build-dir>
set -u
B=${1:?usage: $0 <build-dir>}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECS=${QX_FUZZ_SECONDS:-60}
command -v clang >/dev/null || { echo "SKIP: clang not installed" >&2; exit 77; }
[ -f "$B/libqinx.a" ] || { echo "SKIP: $B/libqinx.a not built" >&2; exit 77; }
W=$(mktemp -d "${TMPDIR:-/tmp}/qinx-fuzzw.XXXXXX") # not matched by the glob below, which other runs use too
trap 'rm -rf "$W" /tmp/qinx-fuzz.??????' EXIT
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$SRC/include" -I"$SRC/server" \
    "$SRC/server/fuzz/fuzz_api.c" "$SRC"/server/{api,api_points,collection,store,segment,manifest,wal,route,metrics,log,json_scan,search_body,upsert_body,http,http_parse,pointid,pointid_json,payload_indexes,filter_plan,snapshot,filter_parse,filter_eval,payload_index,drift,repair,rowmap,segcodes}.c \
    "$B/libqinx.a" $(pkg-config --cflags --libs jansson) -lfaiss -lopenblas -llapack -lstdc++ -lgomp -lm -lpthread \
    -o "$W/fuzz_api" 2>"$W/cc.log"; then
  if grep -q "fuzzer" "$W/cc.log"; then echo "SKIP: libFuzzer unavailable" >&2; cat "$W/cc.log" >&2; exit 77; fi
  cat "$W/cc.log" >&2; exit 1
fi
mkdir -p "$W/corpus"
i=0
seed() { i=$((i+1)); printf '%s' "$1" >"$W/corpus/s$i"; }
seed $'F{"must":[{"key":"a","match":{"any":["x","z"]}},{"key":"c","range":{"gte":1}}],"should":[{"is_empty":{"key":"b"}}]}'
seed $'F{"must_not":[{"nested":{"key":"t","filter":{"must":[{"key":"n","match":{"value":"q"}}]}}}],"min_should":{"conditions":[{"has_id":[1]},{"key":"d.f[].g","range":{"lt":3}}],"min_count":1}}'
seed $'PUT /collections/f/points\n{"points":[{"id":"6F9619FF-8B86-D011-B42D-00C04FC964FF","vector":[1,2,3,4],"payload":{"a":"x","n":[1,2]}}]}'
seed $'POST /collections/f/points/query\n{"query":[1,2,3,4],"filter":{"must":[{"key":"a","match":{"value":"x"}}]},"with_payload":["a"],"limit":3,"offset":1}'
seed $'POST /collections/f/points/scroll\n{"filter":{"should":[{"key":"n","range":{"gte":1}}]},"limit":1,"offset":1}'
seed $'POST /collections/f/points/payload\n{"payload":{"b":true},"filter":{"must":[{"has_id":[1]}]}}'
seed $'PUT /collections/f/index\n{"field_name":"a","field_schema":"keyword"}'
seed $'POST /collections/f/points/count\n{"filter":{"must_not":[{"is_empty":{"key":"a"}}]}}'
seed $'PUT /collections/f/points\n{"points":[{"id":1,"vector":[1,2,3,4]},{"id":2,"vector":[0,0,0,1]}]}'
seed $'PUT /collections/f/points\n{"batch":{"ids":[5,6],"vectors":[[1,1,1,1],[2,2,2,2]]}}'
seed $'POST /collections/f/points/search\n{"vector":[1,2,3,4],"limit":2,"params":{"nprobe":4,"rerank":10,"exact":true},"with_vector":true}'
seed $'POST /collections/c/points/search/batch\n{"searches":[{"vector":[1,0,0,0],"limit":1},{"vector":[0,1,0,0]}]}'
seed $'POST /collections/f/points/delete\n{"points":[1,2,3]}'
seed $'POST /collections/f/points\n{"ids":[1,5],"with_vector":false}'
seed $'GET /collections/f/points/5\n'
seed $'GET /collections/f\n'
seed $'GET /collections\n'
seed $'PUT /collections/g\n{"vectors":{"size":3,"distance":"Dot"},"quantizer":{"kind":"rq","bytes":4,"nlist":8},"gate":{"min_recall":0.5}}'
seed $'DELETE /collections/g\n'
seed $'POST /collections/f/rebuild\n{"bytes":8}'
seed $'GET /metrics\n'
seed 'S{"vector":[1.5,-2e-3,0,-0],"limit":3,"params":{"nprobe":4,"rerank":10,"exact":true},"with_vector":false}'
seed 'S {"top":1, "vector":[ 123456789012345, 0.1e22, 9e-30, 3.4028234e38 ], "params":{}}'
seed 'U{"points":[{"id":1,"vector":[1.25,-2e-3,3,0]},{"id":"6f9619ff8b86d011b42d00c04fc964ff","vector":[0,1,-0,4e1],"payload":{"a":"x","n":[1,2.5,{"k":null}]}}]}'
seed 'U{"batch":{"ids":[5,6],"vectors":[[1,1,1,1],[2.5,2,2,2E-2]],"payloads":[{"k":"}\""},null]}}'
seed $'PUT /collections/f/points\n{"points":[{"id":1e400,"vector":[1,2,3,NaN]}]}'
seed $'PUT /collections/%2e%2e/points\n[[[[[[[[[[[[]]]]]]]]]]]]'
# raw HTTP for the edge ('H': over a socket) and the framing parser ('P')
seed $'HGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
seed $'HPUT /collections/f/points HTTP/1.1\r\nHost: x\r\nContent-Length: 45\r\n\r\n{"points":[{"id":9,"vector":[1,2,3,4]}]}    '
seed $'HPOST /collections/f/points/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10;x=y\r\n{"vector":[1,2,3\r\n5\r\n,4]}\r\n0\r\nX-T: 1\r\n\r\n'
seed $'HPUT /collections/f/points HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n'
seed $'HPOST /collections/c/points/search HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 23\r\napi-key: k\r\n\r\n{"vector":[1e-40,0,0,0]}'
seed $'HHEAD /collections/f HTTP/1.1\r\nHost: x\r\n\r\nGET /collections/f/points/1?a=b&c=d HTTP/1.0\r\n\r\n'
seed $'PGET /x%41?q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
seed $'PPUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n X: folded\r\n\r\n'
printf 'W\x15\x00\x00\x00\x00\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00' >"$W/corpus/wal"
echo "fuzzing for $SECS s"
"$W/fuzz_api" -artifact_prefix="$W/" -error_exitcode=1 -max_total_time="$SECS" -max_len=4096 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 "$W/corpus" >"$W/fuzz.log" 2>&1
rc=$?
grep -av "^    #\|^#[0-9]\|NEW_FUNC" "$W/fuzz.log" | tail -25
[ $rc -eq 0 ] && echo "RESULT fuzz: clean after $SECS s ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$W/fuzz.log" | grep -o '[0-9]*$') executions)"
exit $rc
