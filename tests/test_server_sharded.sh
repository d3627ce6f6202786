#!/usr/bin/env bash
# tests/test_server_sharded.sh — `qinx serve --sharded NAME=MANIFEST` (issue 24):
# a sharded index written by `mpirun -n 2 qinx-mpi build --mpi` (SIFT10K, two
# shards) served as one read-only collection beside a stored one. Checks: the
# collection's info and listing; search/batch answers = `qinx search` over the
# same manifest for all 100 queries (ids in order, scores = the distances),
# with ids from both shards; query, offset, score_threshold, count; every
# write refused with 403 and nothing changed on disk; reads the index cannot
# answer (stored vectors, payloads, filters, exact) refused by name; the
# stored collection unaffected; start-up refused (exit 1, the cause named)
# for a corrupt shard, a missing manifest, a name clash with a stored
# collection, a name given twice; a malformed flag exits 2.
# Skips (77) without qinx-mpi / mpirun / SIFT10K / python3.
# Usage: bash tests/test_server_sharded.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
QMPI="$QX_BUILD/qinx-mpi"
DATA_DIR="${QX_DATA_DIR:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data}/siftsmall"
[ -x "$QMPI" ] && command -v mpirun >/dev/null || { echo "SKIP: no qinx-mpi or mpirun (Open MPI)"; exit 77; }
[ -f "$DATA_DIR/siftsmall_base.fvecs" ] || { echo "SKIP: no $DATA_DIR/siftsmall_base.fvecs"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
T=$QX_TMP
M="$T/idx/sift.qinx"
mkdir -p "$T/idx"
mpirun -n 2 --oversubscribe --bind-to none "$QMPI" build --mpi --base "$DATA_DIR/siftsmall_base.fvecs" --out "$M" \
  --nlist 16 --bytes 8 --beam 1 --train-beam 1 --max-train 2000 --threads 1 --seed 3 --quiet 2>"$T/build.log" \
  && qx_ok "mpirun -n 2 build: a manifest and 2 shards" || { qx_fail "build: $(cat "$T/build.log")"; exit 1; }
Q="$DATA_DIR/siftsmall_query.fvecs"
"$QX_BIN" search --index "$M" --queries "$Q" --k 10 --nprobe 8 --print 100 >"$T/cli.txt" 2>&1 \
  || { qx_fail "qinx search over the manifest: $(cat "$T/cli.txt")"; exit 1; }
sum_before=$(cat "$T"/idx/* | cksum)

qx_start "$T/data" --sharded "sift=$M" || exit 1
grep -q "sharded collection sift: 10000 points, d=128, Euclid, 2 shards" "$QX_LOG" \
  && qx_ok "start-up log names the sharded collection" || qx_fail "no start-up line: $(cat "$QX_LOG")"
qx_expect 200 PUT /collections/plain '{"vectors":{"size":4,"distance":"Euclid"}}'
qx_expect 200 GET /collections
qx_body_has '"name":"sift"' "sharded collection listed"
qx_body_has '"name":"plain"' "stored collection listed beside it"
qx_expect 200 GET /collections/sift
for s in '"read_only":true' '"points_count":10000' '"distance":"Euclid"' '"size":128' '"shards_count":2' \
         '"rows":[5000,10000]' '"status":"green"'; do qx_body_has "$s" "info has $s"; done
qx_expect 200 GET /collections/sift/exists
qx_body_has '"exists":true' "exists"

# all 100 queries in one search/batch = qinx search over the same manifest
python3 - "$Q" >"$T/batch.json" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
d = struct.unpack_from("<i", raw, 0)[0]
qs = [list(struct.unpack_from("<%df" % d, raw, i * (4 + 4 * d) + 4)) for i in range(len(raw) // (4 + 4 * d))]
json.dump({"searches": [{"vector": q, "limit": 10, "params": {"nprobe": 8}} for q in qs]}, sys.stdout)
EOF
qx_expect 200 POST /collections/sift/points/search/batch "@$T/batch.json"
echo "$QX_BODY" >"$T/served.json"
if python3 - "$T/served.json" "$T/cli.txt" <<'EOF'
import json, re, sys
served = json.load(open(sys.argv[1]))["result"]
cli = {}
for line in open(sys.argv[2]):
    m = re.match(r"query (\d+): (.*)", line)
    if m:
        cli[int(m.group(1))] = [(int(a), float(b)) for a, b in re.findall(r"(\d+)\(([^)]*)\)", m.group(2))]
assert len(served) == 100 and len(cli) == 100, (len(served), len(cli))
ids = set()
for i, hits in enumerate(served):
    got = [h["id"] for h in hits]
    want = [a for a, _ in cli[i]]
    assert got == want, "query %d: served %s, qinx search %s" % (i, got, want)
    for h, (_, dist) in zip(hits, cli[i]):  # Euclid score = sqrt of the squared distance
        assert abs(h["score"] ** 2 - dist) <= 2e-3 * dist + 1e-3, (i, h, dist)
    ids.update(got)
assert min(ids) < 5000 <= max(ids), "hits from one shard only"
EOF
then qx_ok "search/batch of 100 queries = qinx search over the manifest (ids, order, scores; both shards)"
else qx_fail "served answers differ from qinx search"; fi
q0=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["searches"][0]["vector"]))' "$T/batch.json")
first10=$(python3 -c 'import json,sys; print([h["id"] for h in json.load(open(sys.argv[1]))["result"][0]])' "$T/served.json")
qx_expect 200 POST /collections/sift/points/query "{\"query\":{\"nearest\":$q0},\"limit\":10,\"params\":{\"hnsw_ef\":64}}"
got=$(echo "$QX_BODY" | python3 -c 'import json,sys; print([h["id"] for h in json.load(sys.stdin)["result"]["points"]])')
[ "$got" = "$first10" ] && qx_ok "query {nearest} (hnsw_ef 64 = nprobe 8) = search" || qx_fail "query: $got vs $first10"
qx_expect 200 POST /collections/sift/points/search "{\"vector\":$q0,\"limit\":5,\"offset\":5,\"params\":{\"nprobe\":8}}"
got=$(echo "$QX_BODY" | python3 -c 'import json,sys; print([h["id"] for h in json.load(sys.stdin)["result"]])')
want=$(python3 -c "print($first10[5:])")
[ "$got" = "$want" ] && qx_ok "offset 5 limit 5 = hits 5..9" || qx_fail "offset: $got vs $want"
# a threshold between two distinct scores (equal ones tie: duplicates)
read -r thr want < <(python3 -c 'import json,sys
r = [h["score"] for h in json.load(open(sys.argv[1]))["result"][0]]
j = next(j for j in range(2, len(r)) if r[j] > r[j - 1])
print((r[j - 1] + r[j]) / 2, j)' "$T/served.json")
qx_expect 200 POST /collections/sift/points/search "{\"vector\":$q0,\"limit\":10,\"score_threshold\":$thr,\"params\":{\"nprobe\":8}}"
n=$(echo "$QX_BODY" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]))')
[ "$n" = "$want" ] && qx_ok "score_threshold keeps the $want nearer hits" || qx_fail "score_threshold $thr: $n hits, want $want"
qx_expect 200 POST /collections/sift/points/count '{"exact":true}'
qx_body_has '"count":10000' "count = rows"

# writes: 403, naming what the collection is and how to change it
P4='{"points":[{"id":1,"vector":[1,2,3,4]}]}'
qx_expect 403 PUT /collections/sift/points "$P4"
qx_body_has 'read-only sharded index' "upsert refused as read-only"
qx_body_has 'restart the server with --sharded sift=' "the refusal says how to change it"
qx_expect 403 POST /collections/sift/points/delete '{"points":[1]}'
qx_expect 403 POST /collections/sift/points/payload '{"payload":{"a":1},"points":[1]}'
qx_expect 403 PUT /collections/sift/index '{"field_name":"a","field_schema":"keyword"}'
qx_expect 403 PUT /collections/sift '{"vectors":{"size":128,"distance":"Euclid"}}'
qx_expect 403 PATCH /collections/sift '{"optimizers_config":{"indexing_threshold":10}}'
qx_expect 403 DELETE /collections/sift
qx_expect 403 POST /collections/sift/rebuild '{}'
qx_expect 403 POST /collections/sift/snapshots
qx_expect 403 PUT /collections/sift/snapshots/recover '{"location":"file:///nonexistent"}'
# reads that need what the index does not hold
qx_expect 403 GET /collections/sift/points/5
qx_body_has 'no stored vectors or payloads' "get point refused, saying why"
qx_expect 403 POST /collections/sift/points/scroll '{}'
qx_expect 403 POST /collections/sift/points '{"ids":[1]}'
qx_expect 422 POST /collections/sift/points/search "{\"vector\":$q0,\"filter\":{\"must\":[{\"key\":\"a\",\"match\":{\"value\":1}}]}}"
qx_body_has 'holds no payloads' "filter refused, saying why"
qx_expect 422 POST /collections/sift/points/search "{\"vector\":$q0,\"with_vector\":true}"
qx_expect 422 POST /collections/sift/points/search "{\"vector\":$q0,\"params\":{\"exact\":true}}"
qx_expect 422 POST /collections/sift/points/query '{"query":5}'
qx_expect 422 POST /collections/sift/points/search '{"vector":[1,2,3]}'
qx_body_has 'expected 128, got 3' "wrong dimension named"
qx_expect 400 POST /collections/sift/points/search '{"vector":['
qx_expect 200 GET /collections/sift
qx_body_has '"points_count":10000' "still 10000 points after the refused writes"
# the stored collection beside it works as usual
qx_expect 200 PUT /collections/plain/points "$P4"
qx_expect 200 POST /collections/plain/points/search '{"vector":[1,2,3,4],"limit":1}'
qx_body_has '"id":1' "stored collection searched"
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "clean stop" || qx_fail "stop: exit $QX_RC"
[ "$(cat "$T"/idx/* | cksum)" = "$sum_before" ] && qx_ok "manifest and shards unchanged" || qx_fail "index files changed"
[ ! -e "$T/data/collections/sift" ] && qx_ok "nothing of 'sift' in the data directory" || qx_fail "data/collections/sift exists"

# start-up refusals: nothing served, exit 1, the cause in the log
refused() { # WANT_RC PATTERN DESCRIPTION serve-args...
  local want=$1 pat=$2 what=$3 rc=0; shift 3
  timeout 60 "$QX_BIN" serve --host 127.0.0.1 --port 0 --data "$T/data" "$@" >"$T/refused.log" 2>&1 || rc=$?
  if [ "$rc" = "$want" ] && grep -qE -e "$pat" "$T/refused.log"; then qx_ok "$what: exit $rc"
  else qx_fail "$what: exit $rc (want $want), log: $(tail -3 "$T/refused.log")"; fi
}
mkdir -p "$T/bad" && cp "$T"/idx/* "$T/bad/"
s1=$(ls "$T/bad" | grep 'shard-1-of-2$')
printf '\x5a' | dd of="$T/bad/$s1" bs=1 seek=3000 conv=notrunc status=none
refused 1 "shard 1 .*corrupt" "a corrupt shard refuses start-up" --sharded "sift=$T/bad/sift.qinx"
refused 1 "nosuch.qinx" "a missing manifest refuses start-up" --sharded "sift=$T/nosuch.qinx"
refused 1 "stored collection 'plain' exists" "a name clash with a stored collection" --sharded "plain=$M"
refused 1 "given twice" "a name given twice" --sharded "a=$M" --sharded "a=$M"
refused 2 "NAME=MANIFEST" "--sharded without '='" --sharded "$M"
refused 2 "must match" "--sharded with a bad name" --sharded "a/b=$M"
qx_finish
