#!/usr/bin/env bash
# From nothing to predictions flowing: starts the local Kafka + schema registry, runs
# `streamscore serve` in the background, produces synthetic feature events, prints a few
# predictions and where the metrics are. `scripts/quickstart.sh stop` stops serve and the stack.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=".quickstart"
PID_FILE="${STATE}/serve.pid"
LOG_FILE="${STATE}/serve.log"
METRICS_PORT="${STREAMSCORE_METRICS_PORT:-9464}"
COUNT="${QUICKSTART_EVENTS:-5000}"
RATE="${QUICKSTART_RATE:-2000}"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

serve_running() { [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null; }

if [[ "${1:-}" == "stop" ]]; then
  if serve_running; then
    kill -TERM "$(cat "${PID_FILE}")"
    for _ in $(seq 1 60); do serve_running || break; sleep 0.5; done
    echo "serve stopped"
  fi
  rm -f "${PID_FILE}"
  bash scripts/stack.sh down
  exit 0
fi

[[ -d node_modules ]] || { say "installing dependencies"; npm ci --no-audit --no-fund; }
[[ -f dist/src/cli.js ]] || npm run build
# Node 22 or later: the one on PATH, or one scripts/node.sh fetches into the project's cache (it
# says so in one line).
NODE="$(bash scripts/node.sh -p process.execPath)"
CLI=("${NODE}" dist/src/cli.js)

say "starting the local Kafka broker and schema registry (first run downloads them, later runs take seconds)"
bash scripts/stack.sh up
eval "$(bash scripts/stack.sh status | grep -E '^(KAFKA_BROKERS|SCHEMA_REGISTRY_URL)=' | sed 's/^/export /')"

mkdir -p "${STATE}"
if serve_running; then
  say "streamscore serve is already running (pid $(cat "${PID_FILE}"))"
else
  say "starting streamscore serve (model fraud, latest version); log: ${LOG_FILE}"
  STREAMSCORE_METRICS_PORT="${METRICS_PORT}" nohup "${CLI[@]}" serve >"${LOG_FILE}" 2>&1 &
  echo $! >"${PID_FILE}"
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:${METRICS_PORT}/readyz" >/dev/null; then break; fi
    if ! serve_running; then echo "serve exited; its log:"; tail -20 "${LOG_FILE}"; exit 1; fi
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:${METRICS_PORT}/readyz" >/dev/null || { echo "serve is not ready; see ${LOG_FILE}"; exit 1; }
fi

say "producing ${COUNT} synthetic feature events at ${RATE}/s to streamscore.requests"
"${CLI[@]}" produce --count "${COUNT}" --rate "${RATE}"

say "a few predictions from streamscore.predictions"
"${CLI[@]}" tail --count 5

say "metrics: http://127.0.0.1:${METRICS_PORT}/metrics"
curl -s "http://127.0.0.1:${METRICS_PORT}/metrics" |
  grep -E '^streamscore_(events_consumed_total|predictions_published_total|dead_letters_total|batch_rows_(sum|count)|end_to_end_seconds_(sum|count))' || true

cat <<TXT

serve keeps running (pid $(cat "${PID_FILE}")). Try:
  node dist/src/cli.js produce --count 100000 --rate 5000     # more traffic
  node dist/src/cli.js tail --topic streamscore.dlq           # dead letters, if any
  curl -s http://127.0.0.1:${METRICS_PORT}/metrics | grep ^streamscore_
  npm run quickstart -- stop                                   # stop serve and the local stack
TXT
