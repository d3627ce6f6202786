#!/usr/bin/env bash
# tests/test_server_edge.sh — the HTTP edge under hostile clients (issue 19):
# framing (Content-Length, chunked, smuggling), oversized heads, the JSON
# envelope on every error, timeouts, connection floods and the lingering
# close after an early 413 (raw sockets: tests/http_edge_probe.py); an empty
# API key refused at start; Cosine vectors too small to normalise refused
# with 422 at upsert and at search.
# Usage: bash tests/test_server_edge.sh <build-dir>
source "$(dirname "$0")/test_server_lib.sh"
qx_init "$@"
command -v python3 >/dev/null || { echo "SKIP: python3 not installed" >&2; exit 77; }
# the flood case opens 1010 sockets in the probe and the server holds up to 50 of them
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 1100 ]; then
  echo "SKIP: open-files limit $(ulimit -n) < 1100" >&2; exit 77
fi

# ---- an empty API key refuses to start -------------------------------------------
empty_key_refused() { # description, then the command
  local what=$1; shift
  local out rc
  out=$(timeout 10 "$@" 2>&1); rc=$?
  if [ "$rc" = 2 ] && [[ "$out" == *"is empty"* ]]; then qx_ok "$what"
  else qx_fail "$what: exit $rc: ${out:0:200}"; fi
}
empty_key_refused "api_key_flag_empty_refuses_to_start" "$QX_BIN" serve --port 0 --data "$QX_TMP/k" --api-key ''
empty_key_refused "api_key_env_empty_refuses_to_start" env QINX_API_KEY= "$QX_BIN" serve --port 0 --data "$QX_TMP/k"
echo '{"api_key": ""}' >"$QX_TMP/k.json"
empty_key_refused "api_key_config_empty_refuses_to_start" "$QX_BIN" serve --port 0 --data "$QX_TMP/k" --config "$QX_TMP/k.json"
[ ! -e "$QX_TMP/k" ] && qx_ok "no data directory created by a refused start" || qx_fail "refused start created $QX_TMP/k"

# ---- the HTTP edge ------------------------------------------------------------------
qx_start "$QX_TMP/data" --header-timeout 2 --idle-timeout 3 --max-body 1M --max-connections-per-client 50 \
  --log-level warn || exit 1
port=${QX_URL##*:}
python3 "$(dirname "$0")/http_edge_probe.py" 127.0.0.1 "$port" >"$QX_TMP/probe.out" 2>&1
while IFS= read -r line; do
  case "$line" in
    "ok   "*) qx_ok "${line#ok   }" ;;
    "FAIL "*) qx_fail "${line#FAIL }" ;;
    *) echo "$line" ;;
  esac
done <"$QX_TMP/probe.out"
qx_alive "after the probes"
qx_expect 200 GET /metrics
qx_body_has "qinx_http_connections_evicted_total" "metrics: evicted connections counted"
qx_body_has "qinx_http_connections_refused_total 1" "metrics: refused connection counted"

# ---- Cosine: vectors too small to normalise are refused -------------------------------
C=/collections/cos
qx_expect 200 PUT $C '{"vectors":{"size":3,"distance":"Cosine"}}'
qx_expect 422 PUT $C/points '{"points":[{"id":1,"vector":[1e-40,0,0]}]}'
qx_body_has "below 1.18e-38" "cosine_tiny_norm_upsert_gets_422"
qx_expect 422 PUT $C/points '{"batch":{"ids":[1],"vectors":[[1e-39,1e-39,1e-39]]}}'
qx_expect 200 PUT $C/points '{"points":[{"id":1,"vector":[1e-30,0,0]},{"id":2,"vector":[0,1,0]}]}'
qx_expect 422 POST $C/points/search '{"vector":[1e-40,0,0],"limit":1}'
qx_body_has "below 1.18e-38" "cosine_tiny_norm_query_gets_422"
qx_expect 422 POST $C/points/search/batch '{"searches":[{"vector":[0,0,1e-41]}]}'
qx_expect 200 POST $C/points/search '{"vector":[1,0,0],"limit":2}'
qx_body_has '"result":[{"id":1,"score":1.0}' "cosine: a small but normal vector is stored normalised"
qx_expect 200 GET $C/points/1
qx_body_has '"vector":[1.0,0.0,0.0]' "cosine: GET returns the normalised vector"
qx_stop TERM
[ "$QX_RC" = 0 ] && qx_ok "graceful stop" || qx_fail "exit code $QX_RC"
qx_finish
