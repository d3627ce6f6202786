#!/usr/bin/env bash
# tests/test_server_lib.sh — helpers for the server's end-to-end tests, sourced
# by tests/test_server_*.sh and tests/long_server_*.sh. Run directly (as the
# test suite does, with the build dir) it is a smoke test of the helpers:
# start a server on a free port, /healthz, /readyz, SIGTERM, clean exit.
#
# The server is started with --port 0 (the kernel picks a free port, no race
# with other tests) and the port is read back from its "listening on" line.

qx_init() { # build-dir
  QX_BUILD=${1:?usage: $0 <build-dir>}
  QX_BIN="$QX_BUILD/qinx"
  if [ ! -x "$QX_BIN" ] || ! "$QX_BIN" serve --help >/dev/null 2>&1; then
    echo "SKIP: $QX_BIN has no 'serve' command" >&2; exit 77
  fi
  command -v curl >/dev/null || { echo "SKIP: curl not installed" >&2; exit 77; }
  QX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/qinx-e2e.XXXXXX")
  QX_PIDS=()
  trap qx_cleanup EXIT
  QX_FAILS=0; QX_CHECKS=0
}

qx_cleanup() {
  local p
  for p in "${QX_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ "${QX_FAILS:-0}" -ne 0 ] && [ -n "${QX_LOG:-}" ] && [ -f "$QX_LOG" ]; then
    echo "---- last server log lines ----" >&2; tail -n 30 "$QX_LOG" >&2
  fi
  rm -rf "$QX_TMP"
}

# qx_start DATA_DIR [extra flags...]: start a server, wait until ready; sets
# QX_PID, QX_URL, QX_LOG.
qx_start() {
  local data=$1; shift
  QX_LOG="$QX_TMP/server.$RANDOM.log"
  "$QX_BIN" serve --host 127.0.0.1 --port 0 --data "$data" --threads 4 "$@" >"$QX_LOG" 2>&1 &
  QX_PID=$!
  QX_PIDS+=("$QX_PID")
  local i port=""
  for i in $(seq 1 300); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$QX_LOG" 2>/dev/null | head -1)
    if [ -n "$port" ] && grep -q "ready:" "$QX_LOG" 2>/dev/null; then break; fi
    if ! kill -0 "$QX_PID" 2>/dev/null; then echo "server died at start:" >&2; cat "$QX_LOG" >&2; return 1; fi
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start" >&2; cat "$QX_LOG" >&2; return 1; }
  QX_URL="http://127.0.0.1:$port"
}

# qx_stop [signal]: stop the current server (default SIGTERM) and wait.
qx_stop() {
  local sig=${1:-TERM}
  kill -"$sig" "$QX_PID" 2>/dev/null
  wait "$QX_PID" 2>/dev/null
  QX_RC=$?
}

# qx_req METHOD PATH [BODY|@FILE|''] [curl args...]: sets QX_STATUS and QX_BODY.
qx_req() {
  local m=$1 p=$2; shift 2
  local data=()
  if [ $# -gt 0 ]; then [ -n "$1" ] && data=(--data-binary "$1"); shift; fi
  QX_STATUS=$(curl -s -o "$QX_TMP/body" -w '%{http_code}' -X "$m" -H 'Content-Type: application/json' \
    "${data[@]}" "$@" "$QX_URL$p")
  QX_BODY=$(cat "$QX_TMP/body" 2>/dev/null)
}

qx_ok() { QX_CHECKS=$((QX_CHECKS+1)); echo "ok   $*"; }
qx_fail() { QX_CHECKS=$((QX_CHECKS+1)); QX_FAILS=$((QX_FAILS+1)); echo "FAIL $*" >&2; }

# qx_expect CODE METHOD PATH [BODY] [curl args...]: check the status code.
qx_expect() {
  local want=$1; shift
  qx_req "$@"
  if [ "$QX_STATUS" = "$want" ]; then qx_ok "$want $1 $2"
  else qx_fail "$1 $2: want $want, got $QX_STATUS: ${QX_BODY:0:200}"; fi
}

# qx_body_has SUBSTRING description
qx_body_has() {
  if [[ "$QX_BODY" == *"$1"* ]]; then qx_ok "$2"; else qx_fail "$2: '$1' not in ${QX_BODY:0:300}"; fi
}

# qx_wait_job COLLECTION_PATH JOB [POLLS]: poll a rebuild job every 0.5 s until it
# leaves queued/running (at most POLLS times, default 600); its state in $st.
qx_wait_job() {
  local i
  for i in $(seq 1 "${3:-600}"); do
    qx_req GET "$1/rebuild/$2"
    st=$(echo "$QX_BODY" | sed -n 's/^{"result":{"id":[0-9]*,"state":"\([a-z]*\)".*/\1/p')
    case "$st" in queued|running) sleep 0.5 ;; *) break ;; esac
  done
}

qx_alive() {
  if kill -0 "$QX_PID" 2>/dev/null && curl -sf "$QX_URL/healthz" >/dev/null; then qx_ok "server alive: $*"
  else qx_fail "server died: $*"; fi
}

qx_finish() {
  # a sanitizer build reports into the server logs: any report fails the test
  if grep -l "AddressSanitizer\|LeakSanitizer\|runtime error:" "$QX_TMP"/server.*.log >/dev/null 2>&1; then
    qx_fail "sanitizer report in a server log:"
    grep -h -A15 "AddressSanitizer\|LeakSanitizer\|runtime error:" "$QX_TMP"/server.*.log | head -40 >&2
  fi
  echo "$QX_CHECKS checks, $QX_FAILS failed"
  [ "$QX_FAILS" -eq 0 ]
}

# Random vector of dimension D as a JSON array (awk, seeded).
qx_vec() { # D SEED
  awk -v d="$1" -v s="$2" 'BEGIN{srand(s); printf "["; for(i=0;i<d;i++){printf "%s%.6f", (i?",":""), rand()*2-1} printf "]"}'
}
# JSON body {"points":[...]} of N points with ids FROM..FROM+N-1, dimension D.
qx_points() { # FROM N D SEED
  awk -v f="$1" -v n="$2" -v d="$3" -v s="$4" 'BEGIN{srand(s); printf "{\"points\":[";
    for(p=0;p<n;p++){ printf "%s{\"id\":%d,\"vector\":[", (p?",":""), f+p;
      for(i=0;i<d;i++) printf "%s%.6f", (i?",":""), rand()*2-1; printf "]}" } printf "]}"}'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  qx_init "$@"
  qx_start "$QX_TMP/data" || exit 1
  qx_expect 200 GET /healthz
  qx_expect 200 GET /readyz
  qx_stop TERM
  if [ "$QX_RC" = 0 ] && grep -q "stopped" "$QX_LOG"; then qx_ok "SIGTERM: clean exit"; else qx_fail "SIGTERM exit code $QX_RC"; fi
  qx_finish
fi
