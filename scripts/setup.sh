#!/usr/bin/env bash
# Install the Debian 12 packages qinx needs (only those missing) and build it.
# Usage: scripts/setup.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential cmake pkg-config libfaiss-dev libopenblas-dev liblapack-dev
      libjemalloc-dev libcmocka-dev libjansson-dev curl python3 gnuplot-nox
      openmpi-bin libopenmpi-dev    # Open MPI: qinx-mpi, the distributed build (optional to CMake)
      wrk)                          # HTTP load generator of the long server tests (ctest -L long)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm run the Qdrant client conformance test (tests/test_qdrant_client.sh). Checked by
# command, not package: a NodeSource nodejs ships npm itself and conflicts with Debian's npm.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  command -v node >/dev/null || missing+=(nodejs)
  missing+=(npm)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
build=${1:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >&2
