#!/usr/bin/env bash
# scripts/fetch-fashion-mnist.sh — Fashion-MNIST (Zalando, MIT) as a 784-d benchmark set
# under data/fashion-mnist/ (gitignored), from Debian's dataset-fashion-mnist package.
#
#   scripts/fetch-fashion-mnist.sh [OUT_DIR]      (default: data/fashion-mnist)
#
# Base: the 60,000 training images; queries: the first 1,000 test images; pixels 0..255 as
# float32 (.fvecs). Ground truth: exact top-100 by `qinx bench --write-gt` (needs build/qinx,
# or QINX=path/to/qinx). Installs the package with apt-get when missing (as root, or via sudo).
# Needs: node (the IDX files are gzip'ed; scripts/idx-to-fvecs.js converts them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/fashion-mnist}
qinx=${QINX:-$root/build/qinx}
nq=${NQ:-1000}

if ! dpkg -s dataset-fashion-mnist > /dev/null 2>&1; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "fetch-fashion-mnist: installing dataset-fashion-mnist ..." >&2
  $sudo apt-get install -y --no-install-recommends dataset-fashion-mnist > /dev/null
fi
find_idx() { # the package's file whose name contains $1
  dpkg -L dataset-fashion-mnist | grep -E "/$1(\.gz)?$" | head -n1
}
train=$(find_idx train-images-idx3-ubyte)
test=$(find_idx t10k-images-idx3-ubyte)
if [ -z "$train" ] || [ -z "$test" ]; then
  echo "fetch-fashion-mnist: IDX image files not found in dataset-fashion-mnist:" >&2
  dpkg -L dataset-fashion-mnist >&2
  exit 1
fi
command -v node > /dev/null || { echo "fetch-fashion-mnist: node is required" >&2; exit 1; }
mkdir -p "$out"
node "$root/scripts/idx-to-fvecs.js" "$train" "$out/fashion-mnist_base.fvecs"
node "$root/scripts/idx-to-fvecs.js" "$test" "$out/fashion-mnist_query.fvecs" "$nq"
[ -x "$qinx" ] || { echo "fetch-fashion-mnist: $qinx not found: build qinx first (or set QINX)" >&2; exit 1; }
"$qinx" bench --base "$out/fashion-mnist_base.fvecs" --queries "$out/fashion-mnist_query.fvecs" \
    --write-gt "$out/fashion-mnist_groundtruth.ivecs" --out "$out" --quiet
(cd "$out" && sha256sum fashion-mnist_base.fvecs fashion-mnist_query.fvecs \
    fashion-mnist_groundtruth.ivecs > SHA256SUMS)
echo "fetch-fashion-mnist: ready in $out:" >&2
ls -l "$out" >&2
