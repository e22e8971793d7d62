#!/usr/bin/env bash
# Start slotd with sensible defaults (TCP 127.0.0.1:7400, HTTP 127.0.0.1:7401,
# journal in ./data). Extra arguments go to slotd: scripts/run.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target slotd >/dev/null
exec build/server/slotd "$@"
