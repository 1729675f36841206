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
  # Routing from the routing topic (`streamscore route`, `streamscore rollout`); until it has a
  # record, the settings (latest version).
  STREAMSCORE_ROUTING_SOURCE=topic STREAMSCORE_METRICS_PORT="${METRICS_PORT}" nohup "${CLI[@]}" serve >"${LOG_FILE}" 2>&1 &
  echo $! >"${PID_FILE}"
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:${METRICS_PORT}/readyz" >/dev/null; then break; fi
    if ! serve_running; then echo "serve exited; its log:"; tail -20 "${LOG_FILE}"; exit 1; fi
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:${METRICS_PORT}/readyz" >/dev/null || { echo "serve is not ready; see ${LOG_FILE}"; exit 1; }
fi

say "producing ${COUNT} synthetic feature events at ${RATE}/s to streamscore.requests"
# With their outcomes (labels drawn from the feature spec's own label rule), so the drift monitor
# below can report realised quality too.
"${CLI[@]}" produce --count "${COUNT}" --rate "${RATE}" --outcomes

say "a few predictions from streamscore.predictions"
"${CLI[@]}" tail --count 5

say "metrics: http://127.0.0.1:${METRICS_PORT}/metrics"
curl -s "http://127.0.0.1:${METRICS_PORT}/metrics" |
  grep -E '^streamscore_(events_consumed_total|predictions_published_total|dead_letters_total|batch_rows_(sum|count)|end_to_end_seconds_(sum|count))' || true

# The drift monitor on the fraud stream: drift and realised quality (AUC, calibration, ...) per
# window of 2,000 outputs, from the outcomes just written; stopped once it has reported.
if [[ "${QUICKSTART_DRIFT:-1}" != "0" ]]; then
  say "drift monitor on fraud: realised quality from the outcomes"
  STREAMSCORE_DRIFT_WINDOW_EVENTS=2000 STREAMSCORE_DRIFT_METRICS_PORT=0 \
    "${CLI[@]}" drift >"${STATE}/drift.log" 2>&1 &
  DRIFT=$!
  QUALITY=""
  for _ in $(seq 1 120); do
    PORT="$(grep -o '"port":[0-9]*' "${STATE}/drift.log" 2>/dev/null | head -1 | cut -d: -f2 || true)"
    if [[ -n "${PORT}" ]]; then
      QUALITY="$(curl -s "http://127.0.0.1:${PORT}/metrics" | grep -E '^streamscore_drift_quality_(auc|precision|recall|ece|outcome_ratio)' || true)"
      [[ -n "${QUALITY}" ]] && break
    fi
    sleep 0.5
  done
  echo "${QUALITY:-no window closed yet; see ${STATE}/drift.log}"
  kill -TERM "${DRIFT}" 2>/dev/null || true
  wait "${DRIFT}" 2>/dev/null || true
fi

# The int8 copy of the heavy model as a shadow of its float32 source, judged on live traffic by the
# drift monitor: a second serve (heavy/1 serving, heavy/2 shadowing) and a drift monitor on topics
# of their own, stopped again once the first report is out. QUICKSTART_INT8=0 skips this part.
if [[ "${QUICKSTART_INT8:-1}" != "0" ]]; then
  say "int8 as a shadow: heavy/1 serves, heavy/2 (its int8 copy) scores the same events; the drift monitor compares them"
  HEAVY=(
    STREAMSCORE_MODEL=heavy STREAMSCORE_MODEL_VERSION=1 STREAMSCORE_SHADOW_VERSIONS=2
    STREAMSCORE_REQUESTS_TOPIC=streamscore.heavy.requests STREAMSCORE_PREDICTIONS_TOPIC=streamscore.heavy.predictions
    STREAMSCORE_SHADOW_TOPIC=streamscore.heavy.predictions.shadow STREAMSCORE_DLQ_TOPIC=streamscore.heavy.dlq
    STREAMSCORE_GROUP_ID=streamscore-heavy STREAMSCORE_DRIFT_TOPIC=streamscore.heavy.drift
    STREAMSCORE_DRIFT_GROUP_ID=streamscore-heavy-drift STREAMSCORE_DRIFT_WINDOW_EVENTS=2000
    STREAMSCORE_METRICS_PORT=0 STREAMSCORE_DRIFT_METRICS_PORT=0
  )
  env "${HEAVY[@]}" "${CLI[@]}" serve >"${STATE}/heavy-serve.log" 2>&1 &
  HEAVY_SERVE=$!
  env "${HEAVY[@]}" "${CLI[@]}" drift >"${STATE}/heavy-drift.log" 2>&1 &
  HEAVY_DRIFT=$!
  for _ in $(seq 1 120); do
    grep -q 'joined consumer group' "${STATE}/heavy-serve.log" 2>/dev/null &&
      grep -q 'joined' "${STATE}/heavy-drift.log" 2>/dev/null && break
    sleep 0.5
  done
  env "${HEAVY[@]}" "${CLI[@]}" produce --count 4000 --rate 2000 >/dev/null
  # The first window of heavy/1 closes at 2,000 outputs; the monitor then serves the comparison.
  DRIFT_PORT="$(grep -o '"port":[0-9]*' "${STATE}/heavy-drift.log" | head -1 | cut -d: -f2 || true)"
  AGREEMENT=""
  for _ in $(seq 1 120); do
    AGREEMENT="$(curl -s "http://127.0.0.1:${DRIFT_PORT}/metrics" | grep -E '^streamscore_drift_shadow_(agreement_ratio|mean_abs_diff|correlation)' || true)"
    [[ -n "${AGREEMENT}" ]] && break
    sleep 0.5
  done
  if [[ -n "${AGREEMENT}" ]]; then
    echo "heavy/1 (fp32, served) against heavy/2 (int8, shadow), first window of 2,000 live events:"
    echo "${AGREEMENT}"
  else
    echo "no drift window closed yet; see ${STATE}/heavy-drift.log"
  fi
  kill -TERM "${HEAVY_SERVE}" "${HEAVY_DRIFT}" 2>/dev/null || true
  wait "${HEAVY_SERVE}" "${HEAVY_DRIFT}" 2>/dev/null || true
fi

cat <<TXT

serve keeps running (pid $(cat "${PID_FILE}")). Try:
  node dist/src/cli.js produce --count 100000 --rate 5000     # more traffic
  node dist/src/cli.js tail --topic streamscore.dlq           # dead letters, if any
  curl -s http://127.0.0.1:${METRICS_PORT}/metrics | grep ^streamscore_
  npm run quickstart -- stop                                   # stop serve and the local stack
TXT
