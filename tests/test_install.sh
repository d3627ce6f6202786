#!/usr/bin/env bash
# tests/test_install.sh BUILD_DIR — the library as a user gets it: `cmake --install`
# into a temporary prefix, then tests/install/qinx_user.c (creates, saves, loads and
# searches an RQ and a QINCo index) built against the installed files only:
#   1. with `pkg-config --cflags --libs qinx` (libqinx.so), run;
#   2. against the installed static libqinx.a (`pkg-config --static`), run, and
#      checked not to need libqinx.so; and tests/install/qinx_load.c, which only
#      loads and searches, opens the QINCo index from the archive too;
# and the installed qinx.pc points into the prefix it was installed to, and
# libqinx.so exports only qx_ and faiss_ names.
set -euo pipefail
build=${1:?usage: test_install.sh BUILD_DIR}
src=$(cd "$(dirname "$0")" && pwd)/install/qinx_user.c
load_src=$(dirname "$src")/qinx_load.c
tmp=$(mktemp -d /tmp/qinx-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install"
pc=$(find "$tmp/prefix" -name qinx.pc | head -1)
[ -n "$pc" ] || fail "no qinx.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir qinx)
incdir=$(pkg-config --variable=includedir qinx)
[ "$(cd "$libdir" && pwd -P)" = "$(cd "$(dirname "$(dirname "$pc")")" && pwd -P)" ] \
  || fail "qinx.pc libdir $libdir is not where it was installed"
[ -f "$incdir/qinx/qinx.h" ] || fail "qinx.pc includedir $incdir holds no qinx/qinx.h"
[ -f "$libdir/libqinx.a" ] || fail "no libqinx.a in $libdir"

# 1. shared, exactly as pkg-config says
cc -std=c11 -Wall -Werror -o "$tmp/user_shared" "$src" $(pkg-config --cflags --libs qinx) \
  -Wl,-rpath,"$libdir" || fail "build against libqinx.so"
"$tmp/user_shared" "$tmp" || fail "program linked with libqinx.so"
bad=$(nm -D --defined-only "$libdir/libqinx.so" | awk '{print $3}' | grep -Ev '^(qx_[a-z]|faiss_)' || true)
[ -z "$bad" ] || fail "libqinx.so exports other names: $(echo $bad | head -c 300)"

# 2. static: the archive, then the private dependencies pkg-config lists
cc -std=c11 -Wall -Werror -o "$tmp/user_static" "$src" $(pkg-config --cflags qinx) \
  "$libdir/libqinx.a" $(pkg-config --libs --static qinx | sed 's/-lqinx\b//') \
  || fail "build against libqinx.a"
if readelf -d "$tmp/user_static" | grep -q 'libqinx\.so'; then fail "static build needs libqinx.so"; fi
"$tmp/user_static" "$tmp" || fail "program linked with libqinx.a"
# a static program that only loads: QINCo must come with qx_ivf_load (no weak symbols)
cc -std=c11 -Wall -Werror -o "$tmp/load_static" "$load_src" $(pkg-config --cflags qinx) \
  "$libdir/libqinx.a" $(pkg-config --libs --static qinx | sed 's/-lqinx\b//') || fail "build qinx_load"
"$tmp/load_static" "$tmp/qinco.qinx" 16 || fail "a static load-only program cannot open a QINCo index"
"$tmp/load_static" "$tmp/rq.qinx" 16 || fail "a static load-only program cannot open an RQ index"
# ... also against the build tree's archive, one object per source file, where a weak
# reference would not pull QINCo in
cc -std=c11 -Wall -Werror -o "$tmp/load_static_tree" "$load_src" $(pkg-config --cflags qinx) \
  "$build/libqinx.a" $(pkg-config --libs --static qinx | sed 's/-lqinx\b//') || fail "build qinx_load (tree)"
"$tmp/load_static_tree" "$tmp/qinco.qinx" 16 || fail "a load-only program linked with the tree's archive cannot open a QINCo index"
# the installed archive exports what libqinx.so exports: qx_ and faiss_ names, no qx__ internals
bad=$(nm -g --defined-only "$libdir/libqinx.a" | awk 'NF == 3 && $3 ~ /^qx_/ {print $3}' | grep -Ev '^qx_[a-z]' || true)
[ -z "$bad" ] || fail "libqinx.a exports internal symbols: $(echo $bad | head -c 300)"
echo "test_install: ok (shared and static; prefix $tmp/prefix)"
