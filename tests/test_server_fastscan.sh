#!/usr/bin/env bash
# tests/test_server_fastscan.sh — a collection built with the fast-scan
# quantizer (issue 21) end to end: created with quantizer.kind "fastscan",
# rebuilt through the DERP gate, searched through both request parsers with
# params.shortlist (the 4-bit scan's shortlist) and nprobe, a shortlist out
# of range refused, and the index reloaded after a restart. Then a
# product-shaped collection ("shape":"product","fs_steps":30, what `qinx
# build --fs-shape product --fs-steps 30` makes): the shape reaches the index
# file, 10-recall@10 against the ground truth of siftsmall (synthetic
# clustered data when ../shared/data/siftsmall is absent), the same answers
# after a restart; and the 422s of the two options.
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
qx_wait_job $C "$job" 600
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

# shape and fs_steps: fastscan only, checked as qinx build checks --fs-shape / --fs-steps
P=/collections/pq
bad() { # BODY-QUANTIZER SUBSTRING DESCRIPTION
  qx_expect 422 PUT $P "{\"vectors\":{\"size\":128,\"distance\":\"${DIST:-Euclid}\"},\"quantizer\":$1}"
  qx_body_has "$2" "$3"
}
bad '{"kind":"rq","shape":"product"}' "'quantizer.shape' is a fastscan option, the quantizer kind is rq" "shape with kind rq"
bad '{"bytes":16,"fs_steps":30}' "'quantizer.fs_steps' is a fastscan option" "fs_steps with the default kind (rq)"
bad '{"kind":"qinco","shape":"residual"}' "fastscan option, the quantizer kind is qinco" "shape with kind qinco"
bad '{"kind":"fastscan","shape":"cubic"}' "'quantizer.shape' must be \\\"residual\\\" or \\\"product\\\", got 'cubic'" "unknown shape"
bad '{"kind":"fastscan","shape":1}' "'quantizer.shape' must be" "shape not a string"
bad '{"kind":"fastscan","bytes":16,"fs_steps":"30"}' "'fs_steps' must be an integer" "fs_steps not an integer"
bad '{"kind":"fastscan","bytes":16,"fs_steps":29}' "fs_steps = 29: 4-bit steps must be even" "odd fs_steps"
bad '{"kind":"fastscan","bytes":16,"fs_steps":0}' "'fs_steps' = 0 outside 2..120" "fs_steps below range"
bad '{"kind":"fastscan","bytes":64,"fs_steps":122}' "'fs_steps' = 122 outside 2..120" "fs_steps above range"
bad '{"kind":"fastscan","bytes":16,"fs_steps":32}' "fs_steps = 32: 32 4-bit steps take 16 bytes, more than the 15 code bytes" \
  "fs_steps not fitting in bytes - 1 (Euclid: the norm byte)"
DIST=Dot bad '{"kind":"fastscan","bytes":16,"fs_steps":34}' "more than the 16 code bytes of bytes = 16" "Dot: fs_steps not fitting in bytes"
qx_expect 422 PUT $P '{"vectors":{"size":24,"distance":"Euclid"},"quantizer":{"kind":"fastscan","bytes":16,"shape":"product","fs_steps":26}}'
qx_body_has "the product shape needs at most d = 24" "product shape with more steps than dimensions"
qx_expect 404 GET $P
qx_expect 422 POST $C/rebuild '{"fs_steps":16}'
qx_body_has "more than the 7 code bytes of bytes = 8" "a rebuild's fs_steps checked against its bytes"
qx_expect 422 POST $C/rebuild '{"shape":"cube"}'
qx_expect 200 GET $C
qx_body_has '"kind":"fastscan","bytes":8,"nlist":16,"shape":"residual","fs_steps":8' \
  "a residual collection reports its shape and default 4-bit steps"

# a product-shaped collection: 10,000 x 128 with 100 queries and their exact top 100
S="$(cd "$(dirname "$0")/.." && pwd)/../shared/data/siftsmall/siftsmall"
# measured (nprobe 8, shortlist 100): siftsmall 0.636-0.664 over 6 runs (`qinx build --fs-shape product
# --fs-steps 30` + `qinx search`: 0.651), synthetic 0.496; the bounds leave room for threads
if [ -f "${S}_base.fvecs" ] && [ -f "${S}_query.fvecs" ] && [ -f "${S}_groundtruth.ivecs" ]; then
  src=siftsmall; MIN_RECALL=0.55
else
  S="$QX_TMP/synth"; src="synthetic (qinx synth, siftsmall absent)"; MIN_RECALL=0.40
  "$QX_BIN" synth --out "$S" --n 10000 --queries 100 --d 128 --seed 7 >/dev/null 2>&1 || { qx_fail "qinx synth"; qx_finish; exit 1; }
fi
qx_expect 200 PUT $P '{"vectors":{"size":128,"distance":"Euclid"},"quantizer":{"kind":"fastscan","bytes":16,"shape":"product","fs_steps":30}}'
qx_expect 200 GET $P
qx_body_has '"quantizer":{"kind":"fastscan","bytes":16,"nlist":0,"shape":"product","fs_steps":30}' "GET shows shape product, fs_steps 30"
grep -q '"shape": "product"' "$D/collections/pq/meta.json" && grep -q '"fs_steps": 30' "$D/collections/pq/meta.json" \
  && qx_ok "meta.json keeps shape and fs_steps" || qx_fail "meta.json: $(cat "$D/collections/pq/meta.json")"
"$QX_BIN" serve load --url "$QX_URL" --collection pq --batch 1000 "${S}_base.fvecs" 2>"$QX_TMP/load.log" \
  && qx_ok "loaded $src" || { qx_fail "load: $(cat "$QX_TMP/load.log")"; qx_finish; exit 1; }
qx_expect 200 POST $P/rebuild '{}'
job=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
qx_wait_job $P "$job" 1200
[ "$st" = succeeded ] && qx_ok "product-shape rebuild job $job succeeded" || qx_fail "job state '$st': ${QX_BODY:0:600}"
idx=$(ls "$D"/collections/pq/index-*.qx 2>/dev/null | tail -1)
"$QX_BIN" info --index "$idx" --json >"$QX_TMP/pinfo.json" 2>&1
grep -q '"fastscan":{"steps4":30,"steps8":0,"shape":"product"}' "$QX_TMP/pinfo.json" \
  && qx_ok "the index file holds the product shape, 30 4-bit steps (qinx info)" || qx_fail "info: $(cat "$QX_TMP/pinfo.json")"

# 100 queries in one search/batch; 10-recall@10 against the exact top 10
python3 - "${S}_query.fvecs" >"$QX_TMP/batch.json" <<'PY' || qx_fail "query body"
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); d = struct.unpack_from("<i", raw)[0]; rec = 4 + 4 * d
qs = [list(struct.unpack_from("<%df" % d, raw, i * rec + 4)) for i in range(min(100, len(raw) // rec))]
print(json.dumps({"searches": [{"vector": q, "limit": 10, "params": {"nprobe": 8, "shortlist": 100}} for q in qs]}))
PY
recall() { # reply file -> "recall ids-digest"
  python3 - "$1" "${S}_groundtruth.ivecs" <<'PY'
import hashlib, json, struct, sys
res = json.load(open(sys.argv[1]))["result"]
raw = open(sys.argv[2], "rb").read(); k = struct.unpack_from("<i", raw)[0]
gt = [struct.unpack_from("<%di" % k, raw, i * (4 + 4 * k) + 4)[:10] for i in range(len(res))]
ids = [[p["id"] for p in r] for r in res]
hit = sum(len(set(a) & set(g)) for a, g in zip(ids, gt))
print("%.3f %s" % (hit / (10.0 * len(res)), hashlib.sha1(json.dumps(ids).encode()).hexdigest()))
PY
}
qx_req POST $P/points/search/batch @"$QX_TMP/batch.json"
echo "$QX_BODY" >"$QX_TMP/r1.json"
read -r rec1 dig1 <<<"$(recall "$QX_TMP/r1.json")"
echo "RESULT product fs30 16 B, $src: 10-recall@10 = $rec1 (nprobe 8, shortlist 100)"
awk -v r="${rec1:-0}" -v m="$MIN_RECALL" 'BEGIN{exit !(r >= m)}' \
  && qx_ok "10-recall@10 $rec1 >= $MIN_RECALL" || qx_fail "10-recall@10 '$rec1' < $MIN_RECALL: ${QX_BODY:0:200}"

qx_stop TERM
# collection fs as a server before the shape option wrote it: no shape, no fs_steps
python3 - "$D/collections/fs/meta.json" <<'PY' || qx_fail "rewriting fs/meta.json"
import json, sys
m = json.load(open(sys.argv[1])); m["quantizer"].pop("shape"); m["quantizer"].pop("fs_steps", None)
json.dump(m, open(sys.argv[1], "w"), indent=2, sort_keys=True)
PY
qx_start "$D" || exit 1
qx_expect 200 GET $C
qx_body_has '"shape":"residual","fs_steps":8' "a meta.json without shape opens as residual"
qx_expect 200 GET $P
qx_body_has '"shape":"product","fs_steps":30' "after a restart the collection still reports product"
qx_req POST $P/points/search/batch @"$QX_TMP/batch.json"
echo "$QX_BODY" >"$QX_TMP/r2.json"
read -r rec2 dig2 <<<"$(recall "$QX_TMP/r2.json")"
[ -n "$dig1" ] && [ "$dig1" = "$dig2" ] && qx_ok "the same top-10 ids after a restart (recall $rec2)" \
  || qx_fail "answers changed after a restart: recall $rec1 -> $rec2"
qx_expect 422 POST $P/rebuild '{"bytes":8}'
qx_body_has "fs_steps = 30: 30 4-bit steps take 15 bytes, more than the 7 code bytes of bytes = 8" \
  "a rebuild at fewer bytes keeps the collection's fs_steps, refused"
grep -q "collection fs: recovered 2000 points.*IVF index loaded" "$QX_LOG" && qx_ok "fast-scan index loaded at restart" \
  || qx_fail "index not loaded: $(grep 'collection fs' "$QX_LOG")"
qx_expect 200 POST $C/points/search "{\"vector\":$v117,\"limit\":1,\"params\":{\"shortlist\":10}}"
qx_body_has '"result":[{"id":117,' "search after restart"
# a rebuild body's shape and fs_steps: this job only, the collection's config unchanged
qx_expect 200 POST $C/rebuild '{"shape":"product","fs_steps":8}'
job=$(echo "$QX_BODY" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
qx_wait_job $C "$job" 600
[ "$st" = succeeded ] && qx_ok "rebuild job $job with shape product succeeded" || qx_fail "job state '$st': ${QX_BODY:0:400}"
"$QX_BIN" info --index "$(ls "$D"/collections/fs/index-*.qx | tail -1)" --json >"$QX_TMP/finfo.json" 2>&1
grep -q '"fastscan":{"steps4":8,"steps8":3,"shape":"product"}' "$QX_TMP/finfo.json" \
  && qx_ok "the rebuild body's shape and fs_steps reach the index" || qx_fail "info: $(cat "$QX_TMP/finfo.json")"
qx_expect 200 GET $C
qx_body_has '"shape":"residual","fs_steps":8' "the collection's config keeps its shape"
qx_stop TERM
qx_finish
