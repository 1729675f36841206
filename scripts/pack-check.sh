#!/usr/bin/env bash
# The published package, checked as a user gets it: `npm pack`, install the tarball into an empty
# folder outside the checkout, then run the installed command: --version, --help, and
# `models list` with --models-dir and with STREAMSCORE_MODELS_DIR. Also: a LICENSE, no source maps.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/streamscore-pack.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say() { printf '[pack-check] %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  exit 1
}

tarball="$(npm pack --silent --pack-destination "$WORK" | tail -n 1)"
say "packed ${tarball}"
listing="$(tar -tzf "${WORK}/${tarball}")"
grep -qx 'package/LICENSE' <<<"$listing" || fail "no LICENSE in the package"
grep -qx 'package/dist/src/cli.js' <<<"$listing" || fail "no dist/src/cli.js in the package"
if grep -q '\.map$' <<<"$listing"; then fail "source maps in the package: $(grep '\.map$' <<<"$listing" | head -3)"; fi

mkdir -p "${WORK}/app"
cd "${WORK}/app"
npm init -y >/dev/null
# A machine that cannot reach onnxruntime-node's CUDA feed skips that download (CPU only).
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --prefer-offline "${WORK}/${tarball}" \
  >"${WORK}/install.log" 2>&1 || {
  cat "${WORK}/install.log"
  fail "npm install of the tarball"
}
version="$(npx --no-install streamscore --version)"
say "npx streamscore --version: ${version}"
[[ "$version" == "streamscore $(node -p "require('${REPO}/package.json').version")"* ]] || fail "version ${version}"
npx --no-install streamscore --help | grep -q '^  serve ' || fail "--help does not list serve"
npx --no-install streamscore models list --models-dir "${REPO}/models" | grep -q fraud ||
  fail "models list --models-dir did not list the fraud model"
STREAMSCORE_MODELS_DIR="${REPO}/models" npx --no-install streamscore models list | grep -q fraud ||
  fail "models list with STREAMSCORE_MODELS_DIR did not list the fraud model"
say "1 passed, 0 failed"
