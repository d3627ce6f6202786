#!/usr/bin/env bash
# tests/test_server_fastscan.sh — a collection built with the fast-scan
# quantizer (issue 21) end to end: created with quantizer.kind "fastscan",
# rebuilt through the DERP gate, searched through both request parsers with
# params.shortlist (the 4-bit scan's shortlist) and nprobe, a shortlist out
# of range refused, and the index reloaded after a restart.
# Usage: bash tests/test_server_fastscan.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
D="$QX_TMP/data"
C=/collections/fs
qx_start "$D" || exit 1
qx_expect 422 PUT /collections/bad '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"kind":"fastscn"}}'
qx_body_has 'rq, qinco or fastscan' "unknown quantizer kind names the three"
qx_expect 200 PUT $C '{"vectors":{"size":16,"distance":"Euclid"},"quantizer":{"kind":"fastscan","bytes":8,"nlist":16}}'
"$QX_BIN" serve load --url "$QX_URL" --collection fs --batch 500 random:2000:16:5 2>"$QX_TMP/load.log" \
  && qx_ok "bulk load of 2000 points" || { qx_fail "load: $(cat "$QX_TMP/load.log")"; exit 1; }
qx_req GET $C/points/117
v117=$(echo "$QX_BODY" | sed -n 's/.*"vector":\(\[[^]]*\]\).*/\1/p')

qx_expect 200 POST $C/rebuild '{}'
job=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
for i in $(seq 1 600); do
  qx_req GET $C/rebuild/$job
  st=$(echo "$QX_BODY" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
  case "$st" in queued|running) sleep 0.5 ;; *) break ;; esac
done
[ "$st" = succeeded ] && qx_ok "fast-scan rebuild job $job succeeded" || qx_fail "job state '$st': ${QX_BODY:0:400}"
qx_expect 200 GET $C
qx_body_has '"state":"ivf"' "index swapped in"
qx_body_has '"kind":"fastscan"' "collection reports the fast-scan quantizer"

# fast parser (vector, limit, params only) and the jansson path (with_payload)
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"params\":{\"nprobe\":4,\"shortlist\":40}}"
qx_body_has '"result":[{"id":117,' "fast-scan search with params.shortlist finds the point"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"with_payload\":false,\"params\":{\"nprobe\":4,\"shortlist\":40}}"
qx_body_has '"result":[{"id":117,' "the same through the general parser"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"params\":{\"nprobe\":4,\"shortlist\":40,\"rerank\":20}}"
qx_body_has '"result":[{"id":117,"score":0.0}' "shortlist + raw re-ranking: exact score"
qx_expect 422 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"params\":{\"shortlist\":100001}}"
qx_body_has 'shortlist' "a shortlist out of range is refused, named"
qx_expect 422 POST $C/points/search "{\"vector\":$v117,\"limit\":3,\"params\":{\"shortlist\":-1}}"

qx_stop TERM
qx_start "$D" || exit 1
grep -q "collection fs: recovered 2000 points.*IVF index loaded" "$QX_LOG" && qx_ok "fast-scan index loaded at restart" \
  || qx_fail "index not loaded: $(grep 'collection fs' "$QX_LOG")"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":1,\"params\":{\"shortlist\":10}}"
qx_body_has '"result":[{"id":117,' "search after restart"
qx_stop TERM
qx_finish
