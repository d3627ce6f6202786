#!/usr/bin/env bash
# Same index at any P (issue 24): `mpirun -n P qinx-mpi build --mpi` for P = 1, 2, 3
# (oversubscribed) against the one-process `qinx build` with the same options,
# on SIFT10K at 16 bytes (and on BigANN10K .bvecs, and on GloVe-100 when a base
# built by scripts/fetch-glove.sh is in data/): the merged shards must be
# byte-identical to the one-process index, and the recall of each manifest
# (searched shard by shard) must equal the one-process index's.
# Skips (77) without qinx-mpi / mpirun or the shared data.
# Usage: long_mpi_equivalence.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/mpi_env.sh"

check() { # name base queries gt extra-options...
  local name=$1 base=$2 queries=$3 gt=$4; shift 4
  local opts=(--bytes 16 --nlist 64 --train-beam 1 --max-train 20000 --threads 1 --seed 7 --quiet "$@")
  "$qinx" build --base "$base" --out "$tmp/$name-one.qinx" "${opts[@]}" || fail "$name: one-process build"
  local q=(--queries "$queries" --gt "$gt" --nprobe 16 --json)
  "$qinx" search --index "$tmp/$name-one.qinx" "${q[@]}" >"$tmp/$name-one.json"
  for P in 1 2 3; do
    mpirun -n $P --oversubscribe --bind-to none "$qmpi" build --mpi --base "$base" --out "$tmp/$name-p$P.qinx" \
      "${opts[@]}" || fail "$name: mpirun -n $P build"
    "$qinx" merge --index "$tmp/$name-p$P.qinx" --out "$tmp/$name-p$P-merged.qinx" --quiet
    cmp -s "$tmp/$name-p$P-merged.qinx" "$tmp/$name-one.qinx" || fail "$name: P=$P merged differs from the one-process index"
    "$qinx" search --index "$tmp/$name-p$P.qinx" "${q[@]}" >"$tmp/$name-p$P.json"
    for key in recall@1 recall@10 recall@100 10-recall@10; do
      [ "$(val "$tmp/$name-p$P.json" $key)" = "$(val "$tmp/$name-one.json" $key)" ] \
        || fail "$name: P=$P $key $(val "$tmp/$name-p$P.json" $key) vs one-process $(val "$tmp/$name-one.json" $key)"
    done
    echo "$name P=$P: bit-identical; recall@1 $(val "$tmp/$name-p$P.json" recall@1), 10-recall@10 $(val "$tmp/$name-p$P.json" 10-recall@10) (= one process)"
  done
}

s="$data/siftsmall"
check sift "$s/siftsmall_base.fvecs" "$s/siftsmall_query.fvecs" "$s/siftsmall_groundtruth.ivecs"
b="$data/bigann10k"
[ -f "$b/bigann10k_base.bvecs" ] && check bigann "$b/bigann10k_base.bvecs" "$b/bigann10k_query.bvecs" "$b/bigann10k_groundtruth.ivecs"
g="${QX_GLOVE_DIR:-$root/data/glove100}"
if [ -f "$g/glove100_angular_base.fvecs" ]; then
  check glove "$g/glove100_angular_base.fvecs" "$g/glove100_angular_query.fvecs" \
    "$g/glove100_angular_groundtruth.ivecs" --nlist 1024 --max-train 100000
else
  echo "GloVe-100: no base at $g/glove100_angular_base.fvecs (scripts/fetch-glove.sh builds it): not checked"
fi
