#!/usr/bin/env bash
# Build and run every test (unit + integration) through CTest.
#   scripts/test.sh              RelWithDebInfo build in build/
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
dir=build; flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan; flags=(-DSLOTD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # A small quarantine keeps RSS-bound assertions meaningful under ASan.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir" && ctest --output-on-failure -j2
