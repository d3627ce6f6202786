#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build,
# build an index over a real dataset (siftsmall from ../shared/data when it is
# there, else a generated one — said so below), search it with ground truth
# (recall and QPS), then serve it over HTTP on 127.0.0.1 when the server is
# built (scripts/serve-demo.sh) and print an example query.
# Usage: scripts/demo.sh [--no-serve]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p data
data_dir=${QX_DATA_DIR:-../shared/data}
if [ -f "$data_dir/siftsmall/siftsmall_base.fvecs" ]; then
  base=$data_dir/siftsmall/siftsmall_base.fvecs
  queries=$data_dir/siftsmall/siftsmall_query.fvecs
  gt=$data_dir/siftsmall/siftsmall_groundtruth.ivecs
  echo "demo: dataset siftsmall (10,000 x 128) from $data_dir" >&2
  nlist=64
else
  echo "demo: $data_dir/siftsmall not found: using a GENERATED dataset (qinx synth, 100,000 x 64)" >&2
  build/qinx synth --out data/synth --n 100000 --queries 1000 --d 64
  base=data/synth_base.fvecs; queries=data/synth_query.fvecs; gt=data/synth_groundtruth.ivecs
  nlist=256
fi
build/qinx build --base "$base" --out data/demo.qinx --bytes 16 --nlist "$nlist"
build/qinx info --index data/demo.qinx
for np in 4 16; do
  build/qinx search --index data/demo.qinx --queries "$queries" --gt "$gt" --nprobe "$np" --rerank 100
done
if [ "${1:-}" != "--no-serve" ] && [ -x scripts/serve-demo.sh ] && build/qinx serve --help >/dev/null 2>&1; then
  exec scripts/serve-demo.sh
fi
