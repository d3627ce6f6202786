#!/usr/bin/env bash
# `qinx build` streams its base (issue 24): a 250,000 x 128 .fvecs file
# (129 MB) is indexed by a process held to 96 MB of memory by a cgroup, and
# the same cgroup kills a process that reads the file whole (so the limit is
# real). The peak is the training sample + the codes + one 65536-row chunk,
# whatever the base size. Needs a writable cgroup (v1 memory controller or
# v2 with memory delegated, e.g. as root in CI); skips (77) otherwise.
# Usage: test_build_stream.sh BUILD_DIR
set -euo pipefail
qinx="$1/qinx"
fail() { echo "FAIL: $*" >&2; exit 1; }
limit=$((96 << 20))
# a child of this process's own memory cgroup
if [ -d /sys/fs/cgroup/memory ]; then
  parent=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
  knob=memory.limit_in_bytes; peak_knob=memory.max_usage_in_bytes
else
  parent=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
  knob=memory.max; peak_knob=memory.peak
fi
cg="$parent/qinx-stream-test-$$"
mkdir "$cg" 2>/dev/null && [ -w "$cg/$knob" ] || { echo "SKIP: cannot create a memory cgroup under $parent (needs root and a memory controller)"; exit 77; }
tmp=$(mktemp -d /tmp/qinx-stream-XXXXXX)
trap 'rmdir "$cg" 2>/dev/null; rm -rf "$tmp"' EXIT
echo $limit >"$cg/$knob"
[ -w "$cg/memory.memsw.limit_in_bytes" ] && echo $limit >"$cg/memory.memsw.limit_in_bytes"
[ -w "$cg/memory.swap.max" ] && echo 0 >"$cg/memory.swap.max"
in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && shift && exec "$@"' "$cg" x "$@"; }

# 250,000 rows of 128 finite floats (random bits, exponent's top bit cleared)
python3 - "$tmp/big.fvecs" <<'PY'
import os, struct, sys
n, d = 250000, 128
hdr = struct.pack('<i', d)
mask = int.from_bytes(b'\xff\xff\xff\x3f' * d * 1024, 'little')
with open(sys.argv[1], 'wb') as f:
    for i0 in range(0, n, 1024):
        b = min(1024, n - i0)
        raw = (int.from_bytes(os.urandom(4 * d * 1024), 'little') & mask).to_bytes(4 * d * 1024, 'little')
        f.write(b''.join(hdr + raw[4 * d * r: 4 * d * (r + 1)] for r in range(b)))
PY
size=$(stat -c %s "$tmp/big.fvecs")
[ "$size" -gt "$limit" ] || fail "the file ($size bytes) is not larger than the limit"

rc=0
in_cg "$qinx" build --base "$tmp/big.fvecs" --out "$tmp/big.qinx" --nlist 16 --bytes 4 --beam 1 \
  --train-beam 1 --max-train 5000 --threads 1 2>"$tmp/build.log" || rc=$?
peak=$(cat "$cg/$peak_knob" 2>/dev/null || echo 0)
[ "$rc" = 0 ] || fail "streaming build under a $((limit >> 20)) MB cgroup exited $rc: $(tail -5 "$tmp/build.log")"
grep -q "wrote $tmp/big.qinx: 250000 vectors" "$tmp/build.log" || fail "no summary: $(cat "$tmp/build.log")"
grep -q "\[encode\] 250000 / 250000 rows" "$tmp/build.log" || fail "no rows/ETA progress: $(cat "$tmp/build.log")"

# the control: reading the file whole (search --queries) cannot fit under the same limit
rc=0
in_cg "$qinx" search --index "$tmp/big.qinx" --queries "$tmp/big.fvecs" --k 1 >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "a whole-file read of $size bytes fit under the limit: the limit does not bind"
echo "ok: $size-byte base indexed under a $((limit >> 20)) MB memory cgroup (cgroup peak $((peak >> 20)) MB, page cache included); a whole-file read was refused (exit $rc)"
