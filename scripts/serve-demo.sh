#!/usr/bin/env bash
# scripts/serve-demo.sh — start `qinx serve` on 127.0.0.1:6333 with a demo
# collection: build if needed, load SIFT10K (../shared/data/siftsmall beside
# the checkout) or, without it, 10 000 generated 128-d vectors, train an IVF
# index with a gated rebuild, run an example search, and leave the server
# running (its PID and how to stop it are printed at the end).
# Usage: scripts/serve-demo.sh [--port N]     (environment: QINX_DEMO_PORT)
# Everything lives under ./data/: data/qinx-demo/ (collections),
# data/qinx-demo.log (server log), data/qinx-demo.pid.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${QINX_DEMO_PORT:-6333}
[ "${1:-}" = "--port" ] && PORT=${2:?--port needs a value}
URL="http://127.0.0.1:$PORT"
BIN=${QINX_BIN:-build/qinx}
say() { printf '\n== %s\n' "$*"; }

if ! "$BIN" serve --help >/dev/null 2>&1; then
  say "building qinx (scripts/setup.sh)"
  scripts/setup.sh build
fi
"$BIN" serve --help >/dev/null 2>&1 || { echo "serve-demo: build/qinx has no 'serve' command" >&2; exit 1; }
command -v curl >/dev/null || { echo "serve-demo: curl is required (apt-get install curl)" >&2; exit 1; }

mkdir -p data
PIDFILE=data/qinx-demo.pid LOG=data/qinx-demo.log DATA=data/qinx-demo
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  say "stopping the previous demo server (PID $(cat "$PIDFILE"))"
  kill "$(cat "$PIDFILE")"
  for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
fi
if curl -s -o /dev/null "$URL/healthz"; then
  echo "serve-demo: something already answers on $URL; stop it or use --port N" >&2; exit 1
fi
rm -rf "$DATA"

SIFT=../shared/data/siftsmall/siftsmall_base.fvecs
if [ -f "$SIFT" ]; then
  SRC=$SIFT; WHAT="SIFT10K base vectors ($SIFT)"
else
  SRC=random:10000:128:42; WHAT="10 000 generated 128-d clustered vectors (no ../shared/data/siftsmall here)"
fi

say "starting: $BIN serve --host 127.0.0.1 --port $PORT --data $DATA   (log: $LOG)"
nohup "$BIN" serve --host 127.0.0.1 --port "$PORT" --data "$DATA" --threads 4 >"$LOG" 2>&1 &
PID=$!
echo "$PID" >"$PIDFILE"
for _ in $(seq 100); do curl -sf -o /dev/null "$URL/readyz" && break; sleep 0.1; done
curl -sf -o /dev/null "$URL/readyz" || { echo "serve-demo: server did not start:" >&2; cat "$LOG" >&2; exit 1; }

say "creating collection 'demo' and loading $WHAT"
curl -s -X PUT "$URL/collections/demo" -H 'Content-Type: application/json' \
  -d '{"vectors":{"size":128,"distance":"Euclid"},"quantizer":{"kind":"rq","bytes":8}}'
echo
"$BIN" serve load --url "$URL" --collection demo --batch 1000 "$SRC"

say "rebuilding: train IVF + RQ in the background, DERP gate, swap (searches continue meanwhile)"
JOB=$(curl -s -X POST "$URL/collections/demo/rebuild" | sed -n 's/.*"job_id":\([0-9]*\).*/\1/p')
[ -n "$JOB" ] || { echo "serve-demo: rebuild did not start" >&2; exit 1; }
STATE=running
while :; do
  R=$(curl -s "$URL/collections/demo/rebuild/$JOB")
  STATE=$(echo "$R" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
  STAGE=$(echo "$R" | sed -n 's/^{"result":{"id":[0-9]*,"state":"[a-z]*","stage":"\([^"]*\)".*/\1/p')
  PROG=$(echo "$R" | sed -n 's/.*"progress":\([0-9.e-]*\).*/\1/p')
  PCT=$(awk -v p="${PROG:-0}" 'BEGIN{print p*100}')
  if [ -t 1 ]; then # animated only on a terminal; one line per stage elsewhere
    printf '\r   job %s: %-10s %-40s %5.1f%%' "$JOB" "$STATE" "$STAGE" "$PCT"
  elif [ "$STAGE" != "${LAST_STAGE:-}" ]; then
    printf '   job %s: %-10s %-40s %5.1f%%\n' "$JOB" "$STATE" "$STAGE" "$PCT"
    LAST_STAGE=$STAGE
  fi
  case "$STATE" in queued|running) sleep 1 ;; *) break ;; esac
done
echo
echo "$R" | grep -o '"checks":\[[^]]*\]' | sed 's/},{/}\n   {/g; s/"checks":\[/   /; s/\]$//'
[ "$STATE" = succeeded ] || echo "   (the gate did not pass: the collection keeps answering with exact search)"

say "example search (the query is stored point 42; body in data/qinx-demo-query.json)"
V=$(curl -s "$URL/collections/demo/points/42" | sed -n 's/.*"vector":\(\[[^]]*\]\).*/\1/p')
printf '{"vector": %s, "limit": 5, "params": {"nprobe": 16, "rerank": 50}}\n' "$V" >data/qinx-demo-query.json
CMD="curl -s -X POST $URL/collections/demo/points/search -H 'Content-Type: application/json' -d @data/qinx-demo-query.json"
echo "\$ $CMD"
eval "$CMD"
echo
echo "\$ curl -s $URL/collections/demo"
curl -s "$URL/collections/demo" | cut -c1-400
echo "…"

say "the server keeps running: PID $PID, $URL, log $LOG"
echo "   API reference: docs/http-api.md      metrics: curl $URL/metrics"
echo "   stop it with:  kill $PID      (graceful: finishes requests, checkpoints, exits)"
