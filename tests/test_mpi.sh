#!/usr/bin/env bash
# The distributed build end to end (issue 24), quick enough for the default
# suite: `mpirun -n 2 qinx-mpi build --mpi` on SIFT10K, the manifest and its
# shards, `qinx search` over the manifest, `qinx merge` giving the bytes of a
# one-process build, a rebuild over the same --out, and the refusals: ranks
# that disagree on parameters, a base file changed during the build, a rank
# killed mid-build (no index left behind, the rerun succeeds and removes a dead
# job's temporary shards; a rerun killed over a complete index leaves it
# intact), a missing shard, a corrupt shard, a corrupt manifest.
# Skips (77) without qinx-mpi / mpirun or without ../shared/data/siftsmall.
# Usage: test_mpi.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/mpi_env.sh"
data="$data/siftsmall"
expect() { # expect CODE PATTERN cmd...: exit code (any nonzero for "fail") and a stderr pattern
  local code=$1 pat=$2 rc=0; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$code" = fail ]; then [ "$rc" != 0 ] || fail "'$*' succeeded, expected a failure"
  else [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $(cat "$tmp/err")"; fi
  grep -qE -e "$pat" "$tmp/err" || fail "'$*': stderr lacks /$pat/: $(cat "$tmp/err")"
}
# two ranks on whatever cores there are; no pinning, so a rank's threads see
# the same CPUs as a plain run
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun=(mpirun --oversubscribe --bind-to none)
base="$data/siftsmall_base.fvecs"
opts=(--nlist 16 --bytes 4 --beam 1 --train-beam 1 --max-train 2000 --threads 1 --seed 3)

# 1. P = 2: a manifest, two shards, no temporary files; progress and figures on stderr
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$base" --out "$tmp/p2.qinx" "${opts[@]}" 2>"$tmp/p2.log" \
  || fail "mpirun -n 2 build failed: $(cat "$tmp/p2.log")"
grep -q "wrote $tmp/p2.qinx: 10000 vectors in 2 shards" "$tmp/p2.log" || fail "no summary: $(cat "$tmp/p2.log")"
grep -q "communication (MPI transfers)" "$tmp/p2.log" || fail "no communication figures"
grep -q "10000 / 10000 rows" "$tmp/p2.log" || fail "no rows-encoded progress: $(cat "$tmp/p2.log")"
# waiting ranks sleep (Open MPI's blocking calls would busy-poll a core while rank 0 trains):
# the CPU a rank uses while waiting is a small part of the time it waits
wait_s=$(sed -n 's/.*waiting for other ranks: mean \([0-9.]*\)s.*/\1/p' "$tmp/p2.log")
wait_cpu=$(sed -n 's/.*CPU used while waiting: mean \([0-9.]*\)s.*/\1/p' "$tmp/p2.log")
[ -n "$wait_s" ] && [ -n "$wait_cpu" ] || fail "no waiting figures: $(tail -1 "$tmp/p2.log")"
awk -v w="$wait_s" -v c="$wait_cpu" 'BEGIN { exit !(c <= 0.2 * w + 0.05) }' \
  || fail "waiting ranks used ${wait_cpu}s of CPU in ${wait_s}s of waiting (busy-polling?)"
[ "$(head -1 "$tmp/p2.qinx")" = "qinx-manifest 1" ] || fail "--out is not a manifest"
[ "$(ls "$tmp" | grep -c '^p2\.qinx\..*\.shard-[01]-of-2$')" = 2 ] || fail "expected 2 shards: $(ls "$tmp")"
ls "$tmp" | grep -q '\.tmp$' && fail "temporary files left: $(ls "$tmp")"
grep -q "^shard 1 rows 5000 10000 " "$tmp/p2.qinx" || fail "manifest row ranges: $(cat "$tmp/p2.qinx")"
"$qinx" info --index "$tmp/p2.qinx" >"$tmp/info" || fail "info on the manifest failed"
[ "$(grep -c '  ok$' "$tmp/info")" = 2 ] || fail "info: expected 2 shards ok: $(cat "$tmp/info")"

# 2. search over the manifest: recall, and the same answers as the merged index
q=(--queries "$data/siftsmall_query.fvecs" --gt "$data/siftsmall_groundtruth.ivecs" --nprobe 16 --json)
"$qinx" search --index "$tmp/p2.qinx" "${q[@]}" >"$tmp/s2.json" || fail "search over the manifest failed"
grep -q '"shards":2' "$tmp/s2.json" || fail "search did not search 2 shards: $(cat "$tmp/s2.json")"
r100=$(sed 's/.*"recall@100":\([0-9.]*\).*/\1/' "$tmp/s2.json")
awk -v r="$r100" 'BEGIN { exit !(r >= 0.6) }' || fail "recall@100 $r100 < 0.6 over the shards"
"$qinx" merge --index "$tmp/p2.qinx" --out "$tmp/merged.qinx" 2>/dev/null || fail "merge failed"
"$qinx" search --index "$tmp/merged.qinx" "${q[@]}" >"$tmp/sm.json"
# the same figures: equal distances (4-byte codes tie often) are ordered by id
# in one index and in the merge of the shards alike
for key in recall@1 recall@10 recall@100 10-recall@10; do
  [ "$(val "$tmp/s2.json" $key)" = "$(val "$tmp/sm.json" $key)" ] \
    || fail "$key over the shards differs from the merged index: $(cat "$tmp/s2.json") vs $(cat "$tmp/sm.json")"
done

# 3. P = 2 merged = the one-process streaming build, byte for byte (rank 0 trains
# on the same sample rows and every rank encodes with the broadcast model)
"$qinx" build --base "$base" --out "$tmp/one.qinx" "${opts[@]}" --quiet || fail "plain build failed"
cmp -s "$tmp/merged.qinx" "$tmp/one.qinx" || fail "P=2 merged index differs from the one-process build"

# 4. a rebuild over the same --out replaces the manifest and removes the old shards
old=$(ls "$tmp" | grep '^p2\.qinx\..*\.shard-0-of-2$')
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$base" --out "$tmp/p2.qinx" "${opts[@]}" --quiet || fail "rebuild failed"
[ -e "$tmp/$old" ] && fail "the old shard $old was not removed"
[ "$(ls "$tmp" | grep -c '^p2\.qinx\..*\.shard-')" = 2 ] || fail "rebuild left $(ls "$tmp")"

# 5. ranks that disagree on parameters: refused before any work, nothing written
expect fail "rank 1 disagrees on parameters: it has '--bytes 8', rank 0 has '--bytes 4'" \
  "${mpirun[@]}" -n 1 "$qmpi" build --mpi --base "$base" --out "$tmp/bad.qinx" "${opts[@]}" --bytes 4 \
  : -n 1 "$qmpi" build --mpi --base "$base" --out "$tmp/bad.qinx" "${opts[@]}" --bytes 8
ls "$tmp" | grep -q '^bad\.qinx' && fail "a disagreeing job wrote $(ls "$tmp" | grep bad)"

# 6. the base file changes during the build (touched once the sample is read)
cp "$base" "$tmp/base.fvecs"
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$tmp/base.fvecs" --out "$tmp/chg.qinx" "${opts[@]}" \
  --nlist 64 --max-train 5000 >/dev/null 2>"$tmp/chg.log" & pid=$!
for _ in $(seq 600); do grep -q "training sample" "$tmp/chg.log" && break; sleep 0.05; done
touch "$tmp/base.fvecs"
rc=0; wait $pid || rc=$?
[ "$rc" != 0 ] || fail "a build whose base changed succeeded: $(cat "$tmp/chg.log")"
grep -q "changed while it was read" "$tmp/chg.log" || fail "no clear message: $(cat "$tmp/chg.log")"
ls "$tmp" | grep -q '^chg\.qinx' && fail "a failed job left $(ls "$tmp" | grep chg)"

# 7. a rank killed mid-build: the job fails, no index; the rerun succeeds and clears temporaries
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$base" --out "$tmp/kill.qinx" "${opts[@]}" --nlist 64 \
  --max-train 5000 >/dev/null 2>"$tmp/kill.log" & pid=$!
for _ in $(seq 600); do grep -q "training sample" "$tmp/kill.log" && break; sleep 0.05; done
victim=$(pgrep -P "$pid" | tail -1)   # a rank: a child of this mpirun (by parent PID)
[ -n "$victim" ] || fail "no rank process found under mpirun $pid"
kill -9 "$victim"
rc=0; wait $pid || rc=$?
[ "$rc" != 0 ] || fail "the job succeeded with a rank killed"
[ -e "$tmp/kill.qinx" ] && fail "a killed job left an index"
ls "$tmp" | grep -q '^kill\.qinx\..*\.shard-[01]-of-2$' && fail "a killed job left shards"
# a job that died while writing leaves OUT.<tag>.shard-r-of-P.tmp: the next run removes them
touch "$tmp/kill.qinx.0badc0de.shard-1-of-2.tmp" "$tmp/kill.qinx.0badc0de.shard-0-of-2.tmp"
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$base" --out "$tmp/kill.qinx" "${opts[@]}" --quiet || fail "rerun failed"
ls "$tmp" | grep -q '\.tmp$' && fail "the rerun left temporary files: $(ls "$tmp")"
"$qinx" search --index "$tmp/kill.qinx" "${q[@]}" >/dev/null || fail "the rerun's index does not search"
# a rerun killed over a complete index: that index (manifest and shards) stays usable as it was
sum=$(cat "$tmp"/kill.qinx* | cksum)
"${mpirun[@]}" -n 2 "$qmpi" build --mpi --base "$base" --out "$tmp/kill.qinx" "${opts[@]}" --nlist 64 \
  --max-train 5000 >/dev/null 2>"$tmp/kill2.log" & pid=$!
for _ in $(seq 600); do grep -q "training sample" "$tmp/kill2.log" && break; sleep 0.05; done
victim=$(pgrep -P "$pid" | tail -1)
[ -n "$victim" ] || fail "no rank process found under mpirun $pid"
kill -9 "$victim"
rc=0; wait $pid || rc=$?
[ "$rc" != 0 ] || fail "the job succeeded with a rank killed"
[ "$(cat "$tmp"/kill.qinx* | cksum)" = "$sum" ] || fail "a killed rerun changed the complete index: $(ls "$tmp")"
"$qinx" search --index "$tmp/kill.qinx" "${q[@]}" >/dev/null || fail "the complete index no longer searches"

# 8. a missing shard, a corrupt shard, a corrupt manifest: refused, naming what is wrong
s1=$(ls "$tmp"/p2.qinx.*.shard-1-of-2)
mv "$s1" "$tmp/away"
expect 1 "shard 1 .*missing" "$qinx" search --index "$tmp/p2.qinx" "${q[@]}"
mv "$tmp/away" "$s1"
s0=$(ls "$tmp"/p2.qinx.*.shard-0-of-2)
cp "$s0" "$tmp/s0.bak"
printf '\x5a' | dd of="$s0" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect 1 "shard 0 .*corrupt" "$qinx" search --index "$tmp/p2.qinx" "${q[@]}"
expect 1 "shard 0 .*corrupt" "$qinx" merge --index "$tmp/p2.qinx" --out "$tmp/m2.qinx"
rc=0; "$qinx" info --index "$tmp/p2.qinx" >"$tmp/info" || rc=$?
[ "$rc" = 1 ] && grep -q "shard 0 .*CORRUPT" "$tmp/info" || fail "info did not flag the corrupt shard: $(cat "$tmp/info")"
cp "$tmp/s0.bak" "$s0"
sed -i 's/^rows 10000$/rows 10001/' "$tmp/p2.qinx"
expect 1 "CRC mismatch" "$qinx" search --index "$tmp/p2.qinx" "${q[@]}"
echo "ok: mpirun -n 2 build, search over shards (recall@100 $r100), merge = one-process build, refusals"
