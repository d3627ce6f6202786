#!/usr/bin/env bash
# Install what is missing, build, and run the default test suite (everything
# but the tests labelled "long"). With --asan, also build with AddressSanitizer
# and UndefinedBehaviorSanitizer (build-asan/) and run the unit tests there.
# Usage: scripts/test.sh [--asan] [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
asan=0
if [ "${1:-}" = "--asan" ]; then asan=1; shift; fi
scripts/setup.sh build
ctest --test-dir build -LE long --output-on-failure -j2 "$@"
if [ $asan = 1 ]; then
  cmake -S . -B build-asan -DQX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j"$(nproc)" >&2
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -L unit --output-on-failure -j2 "$@"
fi
