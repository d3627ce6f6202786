#!/usr/bin/env bash
# tests/test_layering.sh — the library boundary (issue 17), checked on the
# source tree's #include "…" lines, so a leak fails the suite instead of
# waiting for the next review:
#  1. links go downward only: core → quant → index → verify, then server,
#     tools (which dispatches to server) and bench, which use the library
#     through include/qinx/ only;
#  2. a module's _impl.h is included only by that module's own files and by
#     the white-box unit tests in tests/test_*.c (owner's rule: a unit test
#     is part of the module it tests);
#  3. the public headers include only other public headers.
# Usage: test_layering.sh [BUILD_DIR] (the build directory is not used)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$root" <<'EOF'
import os, re, sys
root = sys.argv[1]
rank = {"core": 0, "quant": 1, "index": 2, "verify": 3}
apps = {"server": {"server"}, "tools": {"tools", "server"}, "bench": {"bench"}}
mods = list(rank) + list(apps)
where = {}  # header name -> module that holds it
for m in mods:
    for dp, _, fs in os.walk(os.path.join(root, m)):
        for f in fs:
            if f.endswith(".h"):
                where.setdefault(f, m)
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
bad, files, edges = [], 0, 0

def includes(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, 1):
            mm = inc.match(line)
            if mm:
                yield no, mm.group(1)

for m in mods:
    for dp, _, fs in os.walk(os.path.join(root, m)):
        for f in sorted(fs):
            if not f.endswith((".c", ".h", ".cpp")):
                continue
            path = os.path.join(dp, f)
            rel = os.path.relpath(path, root)
            files += 1
            for no, name in includes(path):
                edges += 1
                base = os.path.basename(name)
                if name.startswith("qinx/"):
                    continue
                if os.path.exists(os.path.join(dp, name)):
                    continue  # the module's own header
                owner = where.get(base)
                if owner is None:
                    continue  # generated or system header written with quotes
                if base.endswith("_impl.h") and owner != m:
                    bad.append(f"{rel}:{no}: includes {owner}/{base}, another module's _impl.h")
                elif m in apps and owner not in apps[m]:
                    bad.append(f"{rel}:{no}: {m}/ includes {owner}/{base}; use include/qinx/")
                elif m in rank and (owner not in rank or rank[owner] > rank[m]):
                    bad.append(f"{rel}:{no}: {m}/ includes {owner}/{base}, an upward link")

for f in sorted(os.listdir(os.path.join(root, "tests"))):
    path = os.path.join(root, "tests", f)
    if not f.endswith((".c", ".h")) or not os.path.isfile(path):
        continue
    for no, name in includes(path):
        base = os.path.basename(name)
        if base.endswith("_impl.h") and not f.startswith("test_"):
            bad.append(f"tests/{f}:{no}: includes {base}; only unit tests (tests/test_*.c) may")

pub = os.path.join(root, "include", "qinx")
for f in sorted(os.listdir(pub)):
    for no, name in includes(os.path.join(pub, f)):
        if not name.startswith("qinx/"):
            bad.append(f"include/qinx/{f}:{no}: public header includes \"{name}\"")

for b in bad:
    print("FAIL", b, file=sys.stderr)
print(f"test_layering: {files} files, {edges} includes, {len(bad)} violations")
sys.exit(1 if bad else 0)
EOF
